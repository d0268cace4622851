"""Crashes and storage failures (issue 6, crash part).

* ``kill -9`` in the middle of a write storm from 8 threads, twice, then a
  restart on the same tracker: the database is sound (sqlite:
  ``PRAGMA integrity_check``), every create
  and set acknowledged before the kill is there, every acknowledged
  ``create('file', 'content=...')`` has its content file with exactly the
  bytes sent, no file row lacks its content, and acknowledged ids are never
  handed out again.
* Disk full (a 8 MiB tmpfs filled up) and read-only storage (the tmpfs
  remounted read-only; root ignores file permissions, so chmod would prove
  nothing): writes answer a clean fault within a time bound, reads keep
  working, and after space/write access comes back everything works and
  nothing is corrupt. Skipped with a message where mount is not permitted.
  (With trackers on PostgreSQL only the content files and the mail outbox are
  on that file system.)
"""

import random
import signal
import subprocess
import threading
import time
import xmlrpc.client

import pytest

from hostile_util import (
    MortalServer,
    _attack_counter,  # noqa: F401 - autouse fixture (attack counter)
    assert_healthy,
    assert_no_leak,
    proxy,
)
from harness import missing_tool

pytestmark = pytest.mark.ours_only   # kill -9 / mounts under our server only

ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            " .,;:!?-_=+*/()[]{}<>&'\"\n\t\u00e9\u00fc\u4e2d\u20ac")


def random_text(rng, n):
    # Framed by non-blanks: Roundup strips prop=value values (content too).
    return "[" + "".join(rng.choice(ALPHABET) for _ in range(n)) + "]"


class Storm:
    """8 writer threads; records what was acknowledged and what was in flight
    when the connection died."""

    def __init__(self, server, own, seed):
        self.server = server
        self.own = own
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.creates = []        # acked (id, title)
        self.sets = {}           # iid -> list of acked titles
        self.inflight_sets = {}  # iid -> title being written when it died
        self.files = []          # acked (id, content)
        self.inflight_files = []  # contents of file creates in flight
        self.errors = []
        self.stop = threading.Event()
        self.seed = seed

    def worker(self, tid):
        rng = random.Random(self.seed * 100 + tid)
        p = proxy(self.server, timeout=30)
        n = 0
        role = tid % 3
        while not self.stop.is_set():
            n += 1
            try:
                if role == 0:
                    title = "crash-%d-%d-%d" % (self.seed, tid, n)
                    iid = p.create("issue", "title=" + title)
                    with self.lock:
                        self.creates.append((iid, title))
                elif role == 1:
                    iid = self.own[tid]
                    title = "own-%d-%d-%d" % (self.seed, tid, n)
                    with self.lock:
                        self.inflight_sets[iid] = title
                    p.set("issue" + iid, "title=" + title)
                    with self.lock:
                        self.sets.setdefault(iid, []).append(title)
                        self.inflight_sets.pop(iid, None)
                else:
                    content = random_text(rng, rng.choice([10, 1000, 50_000, 300_000]))
                    with self.lock:
                        self.inflight_files.append(content)
                    fid = p.create("file", "content=" + content, "name=f%d" % n,
                                   "type=text/plain")
                    with self.lock:
                        self.files.append((fid, content))
                        self.inflight_files.remove(content)
            except xmlrpc.client.Fault as f:
                with self.lock:
                    self.errors.append(("fault", f.faultCode, f.faultString))
                return
            except (OSError, xmlrpc.client.ProtocolError, http_errors()) as e:
                return   # the server died under us: expected after the kill

    def run_and_kill(self, ms, seconds):
        ths = [threading.Thread(target=self.worker, args=(i,), daemon=True)
               for i in range(8)]
        for t in ths:
            t.start()
        time.sleep(seconds)
        ms.server.proc.send_signal(signal.SIGKILL)
        ms.server.proc.wait(10)
        self.stop.set()
        for t in ths:
            t.join(35)
        assert not any(t.is_alive() for t in ths)


def http_errors():
    import http.client
    return http.client.HTTPException


def content_ok(tracker, fid, content):
    path = tracker.file_path("file", fid)
    assert path.is_file(), "content file of file%s missing (%s)" % (fid, path)
    data = path.read_bytes()
    assert data == content.encode("utf-8"), (
        "file%s: %d bytes on disk, %d sent" % (fid, len(data), len(content.encode())))


def check_after_restart(srv, storms, extra):
    """``extra``: fid -> content of files created by earlier checks."""
    tracker = srv.tracker
    assert tracker.consistent()
    admin = proxy(srv, timeout=30)
    titles = dict(zip(admin.filter("issue", None, {}), admin.list("issue", "title")))
    acked_ids = set()
    for st in storms:
        assert not st.errors, st.errors[:3]
        for iid, title in st.creates:
            acked_ids.add(iid)
            assert titles.get(iid) == title, ("acknowledged create lost", iid, title)
        for iid, written in st.sets.items():
            final = titles.get(iid)
            allowed = {written[-1], st.inflight_sets.get(iid)}
            # A later storm may have written it again.
            later = [t for s2 in storms[storms.index(st) + 1:]
                     for t in s2.sets.get(iid, []) + [s2.inflight_sets.get(iid)]]
            assert final in allowed or final in later, (
                "acknowledged set lost", iid, written[-3:], final)
        for fid, content in st.files:
            acked_ids.add(("file", fid))
            content_ok(tracker, fid, content)
            assert admin.display("file" + fid, "content") == {"content": content}
    # No file row without its complete content (in-flight creates included).
    inflight = {c for st in storms for c in st.inflight_files}
    known = {fid: c for st in storms for fid, c in st.files}
    known.update(extra)
    for fid, content in extra.items():
        content_ok(tracker, fid, content)
    for (fid,) in tracker.sql("select id from _file where __retired__ = 0"):
        fid = str(fid)
        path = tracker.file_path("file", fid)
        assert path.is_file(), "file%s has a row but no content" % fid
        if fid in known:
            continue
        data = path.read_bytes().decode("utf-8")
        assert data in inflight, "file%s content is not something sent" % fid
    # Acknowledged ids are never reused.
    new_issue = admin.create("issue", "title=after crash")
    assert new_issue not in acked_ids
    new_file = admin.create("file", "content=after", "name=a")
    assert ("file", new_file) not in acked_ids and new_file not in extra
    content_ok(tracker, new_file, "after")
    extra[new_file] = "after"


def test_kill_9_during_write_storm(target, make_tracker):
    tracker = make_tracker()
    with MortalServer(target, tracker) as ms:
        srv = ms.start()
        admin = proxy(srv)
        own = {tid: admin.create("issue", "title=own-start-%d" % tid)
               for tid in range(8) if tid % 3 == 1}
        storms = []
        extra = {}
        for round_ in range(2):
            st = Storm(srv, own, seed=round_ + 1)
            st.run_and_kill(ms, 2.5)
            storms.append(st)
            assert st.creates and st.files and st.sets, "storm did nothing"
            srv = ms.restart()
            check_after_restart(srv, storms, extra)
            for s in storms:
                s.server = srv
        assert_healthy(srv)


# --------------------------------------------------------------------------
# Disk full and read-only storage


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)])
    if r.returncode != 0:
        missing_tool("cannot mount a size-limited tmpfs here (%s); disk-full and "
                     "read-only storage tests need root with mount permission"
                     % (r.stderr.strip() or r.returncode))
    try:
        yield mnt
    finally:
        if run(["umount", str(mnt)]).returncode != 0:
            run(["umount", "-l", str(mnt)])


def clean_write_fault(call, *args, limit=15.0):
    t0 = time.monotonic()
    try:
        result = call(*args)
    except xmlrpc.client.Fault as f:
        assert time.monotonic() - t0 < limit, "fault took %.1f s" % (time.monotonic() - t0)
        assert_no_leak(f.faultString)
        return ("fault", f.faultCode, f.faultString)
    assert time.monotonic() - t0 < limit
    return ("ok", result)


def fill(mnt):
    """Fills the file system; returns the filler path."""
    filler = mnt / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    # Squeeze out the last partial blocks.
    i = 0
    while True:
        try:
            with open(mnt / ("f%d" % i), "wb") as f:
                f.write(b"\0" * 512)
            i += 1
        except OSError:
            break
    return filler


def ro_phase(target, tracker, first, fid2, big):
    cmd = target.server_command(tracker)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = b""
        t0 = time.monotonic()
        # The ready line, or an exit with a message, within 15 s.
        import select
        while time.monotonic() - t0 < 15:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                break
            if proc.poll() is not None:
                break
        if not line.startswith(b"listening on "):
            rc = proc.wait(15)
            err = proc.stderr.read().decode(errors="replace")
            assert rc != 0 and err.strip(), (
                "no ready line and no clear error (rc %s): %r" % (rc, err))
            assert_no_leak(err.replace("sqlite", "SQLite-db"))
            # In plain words, not SQLite's "attempt to write a readonly database".
            assert "the tracker database is read-only (read-only file system)" in err, err
            return
        port = int(line.split(b":")[-1].strip(b"/\n"))
        p = xmlrpc.client.ServerProxy(
            "http://admin:sekrit@127.0.0.1:%d/demo/xmlrpc" % port, allow_none=True)
        assert p.display("issue" + first, "title") == {"title": "before full"}
        assert p.display("file" + fid2, "content") == {"content": big}
        assert "unread" in p.list("status")
        writes = [(p.create, "file", "content=ro", "name=ro")]
        if tracker.backend == "sqlite":
            writes += [(p.create, "issue", "title=on read-only"),
                       (p.set, "issue" + first, "title=changed on ro")]
        # (On PostgreSQL only the content files are on the read-only file
        # system: writes without content still succeed.)
        for call in writes:
            res = clean_write_fault(*call)
            assert res[0] == "fault", "write on a read-only file system: %r" % (res,)
        assert p.display("issue" + first, "title") == {"title": "before full"}
        assert "ro" not in p.list("file", "name")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_disk_full_and_read_only_storage(target, make_tracker, small_fs):
    from harness import copy_tracker
    tracker = copy_tracker(make_tracker(), small_fs / "demo")
    with MortalServer(target, tracker) as ms:
        srv = ms.start()
        admin = proxy(srv, timeout=30)
        first = admin.create("issue", "title=before full")
        fid = admin.create("file", "content=small before", "name=b")

        # ---- disk full
        filler = fill(small_fs)
        big = "x" * 300_000
        res = clean_write_fault(admin.create, "file", "content=" + big, "name=toobig")
        assert res[0] == "fault", "a 300 KB file was stored on a full disk?"
        for i in range(5):
            r = clean_write_fault(admin.create, "issue", "title=full-%d" % i)
            if r[0] == "fault":
                break
        # Reads keep working.
        assert admin.display("issue" + first, "title") == {"title": "before full"}
        assert admin.display("file" + fid, "content") == {"content": "small before"}
        assert "unread" in admin.list("status")
        assert_healthy(srv)

        # ---- space comes back
        filler.unlink()
        for p in small_fs.glob("f[0-9]*"):
            p.unlink()
        fid2 = admin.create("file", "content=" + big, "name=after-full")
        assert admin.display("file" + fid2, "content") == {"content": big}
        assert "toobig" not in admin.list("file", "name")
        assert tracker.consistent()

        # ---- read-only storage. A mount with files open for writing cannot
        # be remounted read-only, so the server is stopped first and started
        # again on the read-only file system: it must either refuse to start
        # with a clear message (ours: saying the database is read-only), or
        # serve reads and refuse writes cleanly.
        srv.stop()
        ms.server = None
        r = run(["mount", "-o", "remount,ro", str(small_fs)])
        assert r.returncode == 0, r.stderr
        try:
            ro_phase(target, tracker, first, fid2, big)
        finally:
            assert run(["mount", "-o", "remount,rw", str(small_fs)]).returncode == 0
        srv = ms.start()
        admin = proxy(srv, timeout=30)
        iid = admin.create("issue", "title=after read-only")
        assert admin.display("issue" + iid, "title") == {"title": "after read-only"}
        names = admin.list("issue", "title")
        assert "on read-only" not in names
        assert tracker.consistent()
        for (f,) in tracker.sql("select id from _file where __retired__ = 0"):
            assert tracker.file_path("file", str(f)).is_file()
        srv.stop()
        ms.server = None
