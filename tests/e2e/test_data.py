"""Data safety: FileClass content, the mail outbox, a missing or read-only database.

Content files (``src/store/files.rs`` has the protocol):

* a reader never sees content of a transaction that has not committed, and
  ``kill -9`` while content is being installed leaves files that match the
  committed rows (system calls slowed down and failed with ``strace``, which
  works on any build);
* ``kill -9`` at each step of the protocol (the debug build's failpoints,
  ``RXS_FAILPOINTS``), then a restart: the item's name (a row) and its content
  (a file) are both the old or both the new ones, and no staged file is left;
* a failing step (writing the staged file, COMMIT, the rename) never loses the
  committed content: the call fails cleanly, or (after COMMIT) succeeds and the
  content is installed later.

Mail: nosy mail goes to ``db/outbox/`` with the transaction and is delivered
by a background thread, so a silent SMTP server does not delay the answer, a
dead one loses nothing (delivered once a server listens), nor does a restart
or a ``kill -9`` right after the commit.

Database: ``serve`` refuses a tracker whose database is missing (an unmounted
volume) with one line naming the path, and creates nothing; a database the
daemon cannot write is called read-only in plain words, at start-up and on a
write.

The e2e tests run the debug binary; the failpoint tests fail (not skip) with a
release build, where failpoints do not exist.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path

import pytest

from harness import ADMIN_PASSWORD, Server, copy_tracker
from hostile_util import MortalServer, assert_no_leak, proxy

pytestmark = pytest.mark.ours_only

V1, V2 = "first content [v1]", "second content [v2]"


# --------------------------------------------------------------------------
# Helpers


def started(target, tracker, env=None, command=None):
    """A started Server with extra environment variables."""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return Server(target, tracker, command=command).start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def server_pid(srv):
    """The daemon's pid (under strace, the traced child)."""
    if Path(srv.command[0]).name != "strace":
        return srv.proc.pid
    children = Path("/proc/%d/task/%d/children" % (srv.proc.pid, srv.proc.pid))
    pids = children.read_text().split()
    assert len(pids) == 1, pids
    return int(pids[0])


def kill9(srv):
    pid = server_pid(srv)
    os.kill(pid, signal.SIGKILL)
    srv.proc.wait(15)
    srv._stderr.close()


def stop(srv):
    """SIGTERM to the daemon itself (strace would only detach); it exits 0."""
    if srv.proc.poll() is None:
        os.kill(server_pid(srv), signal.SIGTERM)
        assert srv.proc.wait(15) == 0, srv.stderr_text()
    srv._stderr.close()


def died(srv, timeout=15):
    """Waits for the server to die by itself; returns its status."""
    try:
        rc = srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        srv._kill()
        pytest.fail("the server did not die at the failpoint (a release build has none)")
    srv._stderr.close()
    return rc


def file_state(srv, fid):
    """(name, content) of file<fid> as one call sees them."""
    v = proxy(srv, timeout=30).display("file" + fid, "name", "content")
    return v.get("name"), v.get("content")


def staged_leftovers(tracker):
    return sorted(str(p.relative_to(tracker.home))
                  for p in (tracker.home / "db").rglob("*.rxs-*.tmp"))


def check_files_match_rows(tracker):
    """Every live file row has its content file, and nothing is left staged."""
    for (fid,) in tracker.sql("select id from _file where __retired__ = 0"):
        assert tracker.file_path("file", fid).is_file(), "file%s has no content" % fid
    assert staged_leftovers(tracker) == []


def strace_command(target, tracker, *inject):
    """The server command under strace, injecting faults into renames."""
    exe = shutil.which("strace")
    assert exe, "strace is needed (apt-get install strace)"
    cmd = [exe, "-f", "-qq", "-o", "/dev/null",
           "-e", "trace=rename,renameat,renameat2"]
    for i in inject:
        cmd += ["-e", "inject=rename,renameat,renameat2:" + i]
    return cmd + target.server_command(tracker)


def make_file_tracker(target, make_tracker):
    """A tracker holding file1 = (n1, V1); returns (tracker, fid)."""
    tracker = make_tracker()
    with Server(target, tracker) as srv:
        fid = srv.admin().create("file", "content=" + V1, "name=n1", "type=text/plain")
    return tracker, fid


@pytest.fixture
def file_tracker(target, make_tracker):
    return make_file_tracker(target, make_tracker)


# --------------------------------------------------------------------------
# Content: readers and kill -9 while the content is installed


def test_reader_never_sees_uncommitted_content_and_kill_while_installing(
        target, file_tracker):
    """Every rename of the daemon is held for 2 s after it happened. Readers
    asking during that time get the old name with the old content or the new
    name with the new content; then kill -9 in the middle, restart, and the
    file on disk matches the committed row. (Before: the content was renamed
    into place before COMMIT: readers saw the old name with missing or new
    content, and after the kill the new content stayed beside the old row.)"""
    tracker, fid = file_tracker
    srv = started(target, tracker,
                  command=strace_command(target, tracker, "delay_exit=2000000"))
    try:
        writer_done = []

        def write():
            try:
                proxy(srv, timeout=30).set("file" + fid, "content=" + V2, "name=n2")
                writer_done.append("ok")
            except Exception as e:  # noqa: BLE001 - killed below
                writer_done.append(repr(e))

        w = threading.Thread(target=write, daemon=True)
        w.start()
        seen = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.2:
            seen.append(file_state(srv, fid))
            time.sleep(0.05)
        bad = [s for s in seen if s not in (("n1", V1), ("n2", V2))]
        assert not bad, "a reader saw a name with another state's content: %r" % bad[:3]
        kill9(srv)
        w.join(30)
    finally:
        if srv.proc.poll() is None:
            srv._kill()
    srv = Server(target, tracker).start()
    try:
        assert file_state(srv, fid) in (("n1", V1), ("n2", V2))
        on_disk = tracker.file_path("file", fid).read_text()
        (name,), = tracker.sql("select _name from _file where id = ?", (int(fid),))
        assert (name, on_disk) in (("n1", V1), ("n2", V2)), (name, on_disk)
        check_files_match_rows(tracker)
    finally:
        srv.stop()


def test_failed_rename_never_loses_committed_content(target, make_tracker):
    """Renames fail with EIO (all but the first, then all of them). The
    previous content is never lost: the call fails and nothing changed, or it
    succeeds (the rename comes after COMMIT) and the new content is served and
    installed at the next start. (Before: the old content was moved aside, the
    second rename failed, and the clean-up deleted the only copy.)"""
    for failing in ("2+", "1+"):
        check_failed_rename(target, make_tracker, failing)


def check_failed_rename(target, make_tracker, failing):
    tracker, fid = make_file_tracker(target, make_tracker)
    srv = started(target, tracker, command=strace_command(
        target, tracker, "error=EIO:when=" + failing))
    try:
        p = proxy(srv, timeout=30)
        try:
            p.set("file" + fid, "content=" + V2, "name=n2")
        except xmlrpc.client.Fault as f:
            assert_no_leak(f.faultString)
        state = file_state(srv, fid)
        assert state in (("n1", V1), ("n2", V2)), (failing, state)
        # Another write of the same file while installs still fail: a clean
        # answer either way, and a consistent state.
        try:
            p.set("file" + fid, "content=third", "name=n3")
        except xmlrpc.client.Fault as f:
            assert_no_leak(f.faultString)
        state = file_state(srv, fid)
        assert state in (("n1", V1), ("n2", V2), ("n3", "third")), (failing, state)
    finally:
        stop(srv)
    srv = Server(target, tracker).start()
    try:
        assert file_state(srv, fid) == state
        assert tracker.file_path("file", fid).read_text() == state[1]
        check_files_match_rows(tracker)
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Content: kill -9 and errors at each step (failpoints)

KILL_STEPS = {
    # step: does the new state survive?
    "content.after_stage": False,
    "content.before_commit": False,
    "content.after_commit": True,
    "content.after_rename": True,
}


@pytest.mark.parametrize("step", list(KILL_STEPS))
def test_kill_at_each_step_files_match_the_committed_rows(target, file_tracker, step):
    tracker, fid = file_tracker
    srv = started(target, tracker, env={"RXS_FAILPOINTS": step + "=kill"})
    with pytest.raises((OSError, xmlrpc.client.ProtocolError, ConnectionError)):
        proxy(srv, timeout=30).set("file" + fid, "content=" + V2, "name=n2")
    assert died(srv) == -signal.SIGKILL
    srv = Server(target, tracker).start()
    try:
        want = ("n2", V2) if KILL_STEPS[step] else ("n1", V1)
        assert file_state(srv, fid) == want
        assert tracker.file_path("file", fid).read_text() == want[1]
        check_files_match_rows(tracker)
        # A create killed at the same step: its row and its file together.
        srv.stop()
        srv = started(target, tracker, env={"RXS_FAILPOINTS": step + "=kill"})
        with pytest.raises((OSError, xmlrpc.client.ProtocolError, ConnectionError)):
            proxy(srv, timeout=30).create("file", "content=created", "name=c")
        assert died(srv) == -signal.SIGKILL
        srv = Server(target, tracker).start()
        names = proxy(srv).list("file", "name")
        assert ("c" in names) == KILL_STEPS[step], names
        check_files_match_rows(tracker)
        new = proxy(srv).create("file", "content=after", "name=after")
        assert file_state(srv, new) == ("after", "after")
    finally:
        srv.stop()


@pytest.mark.parametrize("step,committed", [
    ("content.stage", False), ("content.commit", False), ("content.rename", True)])
def test_failing_step_keeps_files_consistent(target, file_tracker, step, committed):
    """Writing the staged file fails, or COMMIT fails: a clean fault, nothing
    changed. The rename after COMMIT fails: the call succeeds, the new content
    is served from the staged file and installed at the next start."""
    tracker, fid = file_tracker
    srv = started(target, tracker, env={"RXS_FAILPOINTS": step + "=error"})
    try:
        p = proxy(srv, timeout=30)
        if committed:
            p.set("file" + fid, "content=" + V2, "name=n2")
        else:
            with pytest.raises(xmlrpc.client.Fault) as f:
                p.set("file" + fid, "content=" + V2, "name=n2")
            assert_no_leak(f.value.faultString)
        want = ("n2", V2) if committed else ("n1", V1)
        assert file_state(srv, fid) == want
        assert "failpoint %s: error" % step in srv.stderr_text(), "no failpoint"
        if not committed:
            assert tracker.file_path("file", fid).read_text() == V1
            assert staged_leftovers(tracker) == []
    finally:
        srv.stop()
    srv = Server(target, tracker).start()
    try:
        assert file_state(srv, fid) == want
        assert tracker.file_path("file", fid).read_text() == want[1]
        check_files_match_rows(tracker)
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# Mail outbox


class SmtpSink:
    """A minimal SMTP server on 127.0.0.1: records each message's data.
    ``silent=True`` accepts connections and never answers (a hung server)."""

    def __init__(self, port=0, silent=False):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.silent = silent
        self.messages = []
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if not self.silent:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 sink ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                    conn.sendall(b"250 sink\r\n")
                elif cmd == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    self.messages.append(data.decode("utf-8", "replace"))
                    conn.sendall(b"250 queued\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def wait(self, n=1, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def use_smtp(tracker, port, tracker_email=None):
    """Points the tracker's [mail] at 127.0.0.1:port (no debug file)."""
    config = tracker.home / "config.ini"
    lines = []
    section = None
    for line in config.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()
        if section == "[mail]":
            key = line.lstrip("#").split("=", 1)[0].strip()
            if key == "debug":
                line = "debug = "
            elif key == "host":
                line = "host = 127.0.0.1"
            elif key == "port":
                line = "port = %d" % port
        if section == "[tracker]" and tracker_email and line.startswith("email ="):
            line = "email = " + tracker_email
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")


def nosy_message(srv, text):
    """Creates joe (once) and a message; returns (joe's id, the message id)."""
    admin = srv.admin()
    if "joe" not in admin.list("user"):
        admin.create("user", "username=joe", "password=secret", "roles=User",
                     "address=joe@example.com")
    return admin.lookup("user", "joe"), admin.create("msg", "content=" + text, "author=1")


def nosy_issue(srv, text, joe, m):
    """Creates an issue with message m whose nosy list is joe: one mail to joe.
    Returns the seconds the call took."""
    t0 = time.monotonic()
    proxy(srv, timeout=60).create("issue", "title=mail " + text, "messages=" + m,
                                  "nosy=" + joe)
    return time.monotonic() - t0


def nosy_mail(srv, text):
    return nosy_issue(srv, text, *nosy_message(srv, text))


def outbox(tracker):
    return sorted((tracker.home / "db" / "outbox").glob("*.mail"))


def test_silent_smtp_server_does_not_delay_the_answer(target, make_tracker):
    """The SMTP server accepts and never answers. (Before: the call waited
    for the SMTP timeout, 30 s.)"""
    sink = SmtpSink(silent=True)
    tracker = make_tracker()
    use_smtp(tracker, sink.port, tracker_email="tracker@example.com")
    try:
        with Server(target, tracker) as srv:
            took = nosy_mail(srv, "hung server")
            assert took < 3.0, "the call took %.1f s" % took
            assert len(outbox(tracker)) == 1
    finally:
        sink.close()


def test_dead_smtp_server_mail_is_kept_and_sent_when_it_comes_up(target, make_tracker):
    """Nothing listens on the mail port: the call answers at once, the mail
    stays queued, and is delivered once a server listens. (Before: the send
    failed, was logged, and the mail was gone.)"""
    port = free_port()
    tracker = make_tracker()
    use_smtp(tracker, port)
    with Server(target, tracker) as srv:
        took = nosy_mail(srv, "dead server")
        assert took < 3.0, "the call took %.1f s" % took
        time.sleep(2.0)             # a few failed attempts
        assert len(outbox(tracker)) == 1, "the mail is not kept"
        sink = SmtpSink(port)
        try:
            got = sink.wait(1)
            assert len(got) == 1, "not delivered once the SMTP server is up"
            assert "dead server" in got[0] and "joe@example.com" in got[0]
            # [tracker] email = issue_tracker gets [mail] domain, as in Roundup.
            assert "From: admin <issue_tracker@example.com>" in got[0], got[0]
            deadline = time.monotonic() + 10
            while outbox(tracker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert outbox(tracker) == []
            time.sleep(1.0)
            assert len(sink.messages) == 1, "delivered more than once"
        finally:
            sink.close()


def test_restart_loses_no_mail(target, make_tracker):
    """Mail queued while the SMTP server is down survives a restart, and so
    does mail of a call killed right after its COMMIT."""
    port = free_port()
    tracker = make_tracker()
    use_smtp(tracker, port)
    with Server(target, tracker) as srv:
        nosy_mail(srv, "before restart")
        joe, m = nosy_message(srv, "killed after commit")
    assert len(outbox(tracker)) == 1
    # kill -9 after the commit, before anything is renamed into place.
    srv = started(target, tracker, env={"RXS_FAILPOINTS": "content.after_commit=kill"})
    with pytest.raises((OSError, xmlrpc.client.ProtocolError, ConnectionError)):
        nosy_issue(srv, "killed after commit", joe, m)
    assert died(srv) == -signal.SIGKILL
    assert len(outbox(tracker)) == 1 and len(staged_leftovers(tracker)) == 1
    sink = SmtpSink(port)
    try:
        with Server(target, tracker) as srv:
            got = sink.wait(2)
            texts = "\n".join(got)
            assert "before restart" in texts, "queued mail lost in the restart"
            assert "killed after commit" in texts, "mail of a committed call lost"
            assert len(got) == 2, got
            assert "mail killed after commit" in srv.admin().list("issue", "title")
    finally:
        sink.close()
    check_files_match_rows(tracker)


# --------------------------------------------------------------------------
# Missing and read-only databases


def run_server(target, tracker, user=None, timeout=20):
    """Runs the server expecting it to exit at once; returns (rc, stdout, stderr)."""
    cmd = target.server_command(tracker)
    if user:
        cmd = ["setpriv", "--reuid=%s" % user, "--regid=%s" % user, "--clear-groups"] + cmd
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("the server started (no exit within %ss): %r" % (timeout, e.stdout))
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("how", [
    "db-dir-missing", pytest.param("db-dir-empty", marks=pytest.mark.sqlite_only)])
def test_missing_database_refuses_to_start(target, make_tracker, how):
    """db/ missing, or an empty mount point: no ready line, one clear line
    naming db/db, exit status 6, and nothing created. (Before: a fresh empty
    database was created and served.) With the tracker on PostgreSQL, db/
    holds the content files and the mail outbox: missing, it is refused too
    (an empty one is a tracker without files yet)."""
    tracker = make_tracker()
    db = tracker.home / "db"
    shutil.rmtree(db)
    if how == "db-dir-empty":
        db.mkdir()
    rc, out, err = run_server(target, tracker)
    assert "listening on" not in out
    assert rc == 6, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    if tracker.backend == "postgresql":
        assert str(db) in lines[0] and "does not exist" in lines[0], err
    else:
        assert str(db / "db") in lines[0] and "no tracker database" in lines[0], err
    assert "init" in lines[0], err
    assert sorted(os.listdir(tracker.home)) == sorted(
        ["config.ini", "schema.toml", "initial_data.toml"]
        + (["db"] if how == "db-dir-empty" else [])), os.listdir(tracker.home)
    if how == "db-dir-empty":
        assert os.listdir(db) == []


@pytest.fixture
def nobody_tracker(make_tracker):
    """A tracker in a directory the user nobody can reach and read (not write)."""
    base = Path(tempfile.mkdtemp(prefix="rxs-nobody-"))
    base.chmod(0o755)
    home = base / "demo"
    copy = copy_tracker(make_tracker(), home)
    for p in [home, *home.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield copy
    shutil.rmtree(base, ignore_errors=True)


def test_unwritable_database_refuses_to_start_saying_read_only(target, nobody_tracker):
    """The daemon's user (nobody) may read but not write the database: it
    refuses to start and says so in plain words. (Before: SQLite's "attempt to
    write a readonly database", or an error about opening the file.)"""
    rc, out, err = run_server(target, nobody_tracker, user="65534")
    assert "listening on" not in out
    assert rc == 6, (rc, err)
    assert "the tracker database is read-only (permission denied)" in err, err
    assert str(nobody_tracker.home / "db") in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


def test_content_directory_turning_read_only_is_reported_in_plain_words(
        target, nobody_tracker):
    """Serving as nobody, the content directory stops being writable: a write
    of content answers that the tracker database is read-only, the data is
    unchanged, and writes work again once it is writable."""
    home = nobody_tracker.home
    subprocess.run(["chown", "-R", "65534:65534", str(home)], check=True)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + \
        target.server_command(nobody_tracker)
    with Server(target, nobody_tracker, command=cmd) as srv:
        admin = srv.admin()
        fid = admin.create("file", "content=" + V1, "name=n1")
        files = home / "db" / "files"
        files.chmod(0o555)
        (files / "file").chmod(0o555)
        (files / "file" / "0").chmod(0o555)
        try:
            with pytest.raises(xmlrpc.client.Fault) as f:
                admin.set("file" + fid, "content=" + V2, "name=n2")
            assert "the tracker database is read-only" in f.value.faultString
            assert_no_leak(f.value.faultString)
            assert file_state(srv, fid) == ("n1", V1)
        finally:
            for d in (files, files / "file", files / "file" / "0"):
                d.chmod(0o755)
        admin.set("file" + fid, "content=" + V2, "name=n2")
        assert file_state(srv, fid) == ("n2", V2)
