"""Helpers shared by the end-to-end tests: targets, trackers, servers, faults.

Two *targets* can be driven by the same tests:

* ``ours``    -- the Rust ``roundup-xmlrpc-server`` binary (env ``RXS_BIN``,
                 default ``<repo>/target/debug/roundup-xmlrpc-server``);
* ``roundup`` -- Roundup 2.6.0's real standalone XML-RPC server, started by
                 ``scripts/roundup-reference-server`` on a tracker made with
                 ``roundup-admin install classic sqlite`` + ``initialise``.

Both serve a tracker whose directory is called ``demo`` so that the endpoint
``http://127.0.0.1:PORT/demo/xmlrpc`` is the same for both.
"""

import base64
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import xmlrpc.client
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE_SERVER = REPO / "scripts" / "roundup-reference-server"
DEFAULT_BIN = REPO / "target" / "debug" / "roundup-xmlrpc-server"

ADMIN_PASSWORD = "sekrit"
TRACKER_NAME = "demo"
READY_RE = re.compile(r"^listening on (http://127\.0\.0\.1:(\d+))/\s*$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Prefixes of Roundup fault strings.
USAGE = "<class 'roundup.exceptions.UsageError'>:"
UNAUTH = "<class 'roundup.exceptions.Unauthorised'>:"


def tracker_settings(home):
    """The ``--set`` values of our ``init`` (= Roundup config options)."""
    return {
        "admin_email": "admin@example.com",
        "mail_domain": "example.com",
        "mail_debug": str(Path(home) / "mail.log"),
        "tracker_web": "http://localhost:8917/demo/",
    }


def missing_tool(reason):
    """A test cannot run because the machine lacks a tool (Roundup, nginx, ...):
    skipped on a developer's machine, a failure where ``RXS_REQUIRE_TOOLS`` is
    set (CI sets it, so no test passes there by skipping)."""
    __tracebackhide__ = True
    if os.environ.get("RXS_REQUIRE_TOOLS"):
        pytest.fail("required tool missing (RXS_REQUIRE_TOOLS is set): " + reason,
                    pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------
# Trackers


class Tracker:
    """A tracker home directory on disk."""

    def __init__(self, home):
        self.home = Path(home)
        self.name = self.home.name

    @property
    def db_path(self):
        return self.home / "db" / "db"

    @property
    def mail_log(self):
        return self.home / "mail.log"

    def sql(self, query, params=()):
        """Run a read-only query on the tracker's sqlite database."""
        uri = "file:%s?mode=ro" % urllib.parse.quote(str(self.db_path))
        con = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()

    def file_path(self, classname, itemid):
        """Where Roundup keeps the content of a FileClass item."""
        n = int(itemid)
        return (self.home / "db" / "files" / classname / str(n // 1000)
                / ("%s%d" % (classname, n)))

    def mail_text(self, timeout=10.0):
        """The mail debug file, once everything queued is delivered: our server
        sends mail from its outbox (db/outbox/) after the call has answered."""
        outbox = self.home / "db" / "outbox"
        deadline = time.monotonic() + timeout
        while any(outbox.glob("*.mail")) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.mail_log.read_text() if self.mail_log.exists() else ""


# --------------------------------------------------------------------------
# Targets


class Target:
    name = None

    def make_tracker(self, home):
        raise NotImplementedError

    def server_command(self, tracker, name=None):
        raise NotImplementedError


class OursTarget(Target):
    """The Rust binary under test."""

    name = "ours"

    def __init__(self, binary=None):
        self.binary = Path(binary or os.environ.get("RXS_BIN") or DEFAULT_BIN)

    def check(self):
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            pytest.fail(
                "roundup-xmlrpc-server binary not found at %s: run `cargo build` "
                "in %s first (or set RXS_BIN, or use --target=roundup / "
                "E2E_TARGET=roundup to run against Roundup 2.6.0)"
                % (self.binary, REPO), pytrace=False)

    def make_tracker(self, home):
        self.check()
        home = Path(home)
        cmd = [str(self.binary), "init", str(home),
               "--admin-password", ADMIN_PASSWORD]
        for key, value in tracker_settings(home).items():
            cmd += ["--set", "%s=%s" % (key, value)]
        run_checked(cmd, "init")
        tracker = Tracker(home)
        if not tracker.db_path.is_file():
            pytest.fail("`%s` exited 0 but did not create %s"
                        % (" ".join(cmd), tracker.db_path), pytrace=False)
        return tracker

    def server_command(self, tracker, name=None):
        """``-i DIR`` form, or Roundup's ``NAME=DIR`` form when name is given."""
        if name is not None:
            return [str(self.binary), "--port", "0", "--bind", "127.0.0.1",
                    "%s=%s" % (name, tracker.home)]
        return [str(self.binary), "-i", str(tracker.home),
                "--port", "0", "--bind", "127.0.0.1"]


class RoundupTarget(Target):
    """Roundup 2.6.0's standalone server (reference behaviour).

    ``install`` + ``initialise`` cost ~2 s (PBKDF2 and template copying), so a
    pristine tracker is made once per session and copied; only the mail debug
    path in config.ini depends on the tracker home and is rewritten.
    """

    name = "roundup"

    def __init__(self, cache_dir):
        self.cache_dir = Path(cache_dir)
        self._template = None
        self._lock = threading.Lock()

    @staticmethod
    def available():
        try:
            import roundup.instance  # noqa: F401
            import roundup.xmlrpc  # noqa: F401
        except ImportError:
            return False
        return True

    def check(self):
        if not self.available():
            missing_tool("roundup 2.6.0 is not importable "
                         "(pip install -r tests/requirements.txt)")

    def _admin(self, home, *args):
        exe = shutil.which("roundup-admin")
        cmd = ([exe] if exe else [sys.executable, "-m", "roundup.scripts.roundup_admin"])
        run_checked(cmd + ["-i", str(home)] + list(args), "roundup-admin")

    def _make_template(self):
        with self._lock:
            if self._template is None:
                home = self.cache_dir / TRACKER_NAME
                settings = ",".join("%s=%s" % kv for kv in tracker_settings(home).items())
                self._admin(home, "install", "classic", "sqlite", settings)
                self._admin(home, "initialise", ADMIN_PASSWORD)
                self._template = home
        return self._template

    def make_tracker(self, home):
        self.check()
        template = self._make_template()
        home = Path(home)
        shutil.copytree(template, home)
        config = home / "config.ini"
        old = "debug = %s\n" % (template / "mail.log")
        text = config.read_text()
        assert old in text, "mail debug setting not found in config.ini"
        config.write_text(text.replace(old, "debug = %s\n" % (home / "mail.log")))
        return Tracker(home)

    def server_command(self, tracker, name=None):
        return [sys.executable, str(REFERENCE_SERVER), "--port", "0",
                "%s=%s" % (name or tracker.name, tracker.home)]


def run_checked(cmd, what):
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail("%s failed (exit %s): %s\nstdout:\n%s\nstderr:\n%s"
                    % (what, proc.returncode, " ".join(cmd), proc.stdout,
                       proc.stderr), pytrace=False)
    return proc


# --------------------------------------------------------------------------
# Servers


class Server:
    """A running server process serving one tracker."""

    def __init__(self, target, tracker, command=None, path=None):
        self.target = target
        self.tracker = tracker
        self.command = command or target.server_command(tracker)
        self.path = path if path is not None else "/%s/xmlrpc" % tracker.name
        self.proc = None
        self.base = None
        self.output = []
        self.log = tracker.home.parent / ("server-%s.log" % tracker.name)

    # -- lifecycle --------------------------------------------------------

    def start(self):
        self._stderr = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        line = _readline_with_timeout(self.proc, START_TIMEOUT)
        m = READY_RE.match(line.decode("utf-8", "replace")) if line else None
        if not m:
            rc = self.proc.poll()
            self._kill()
            why = ("it exited with status %s" % rc if rc is not None
                   else "none within %ss" % START_TIMEOUT)
            pytest.fail("server did not print the ready line `listening on "
                        "http://127.0.0.1:PORT/` (%s): %s\nfirst line: %r\n"
                        "stderr:\n%s" % (why, " ".join(self.command), line,
                                         self.stderr_text()), pytrace=False)
        self.base = m.group(1)
        self.port = int(m.group(2))
        # Keep draining stdout so that the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def stderr_text(self):
        self._stderr.flush()
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; the server must exit with status 0 within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self._stderr.close()
            assert rc in (None, 0), "server died early with status %s\n%s" % (
                rc, self.stderr_text())
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            pytest.fail("server did not exit within %ss of SIGTERM" % STOP_TIMEOUT)
        finally:
            self._stderr.close()
        assert rc == 0, "server exited with status %s after SIGTERM\n%s" % (
            rc, self.log.read_text(errors="replace")[-4000:])

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- clients ----------------------------------------------------------

    @property
    def url(self):
        return self.base + self.path

    def url_for(self, user=None, password=None, path=None):
        netloc = self.base[len("http://"):]
        if user is not None:
            cred = urllib.parse.quote(user, safe="")
            if password is not None:
                cred += ":" + urllib.parse.quote(password, safe="")
            netloc = cred + "@" + netloc
        return "http://%s%s" % (netloc, self.path if path is None else path)

    def proxy(self, user=None, password=None, path=None, transport=None):
        """An ``xmlrpc.client.ServerProxy`` with Basic credentials in the URL."""
        return xmlrpc.client.ServerProxy(self.url_for(user, password, path),
                                         allow_none=True, transport=transport)

    def admin(self):
        return self.proxy("admin", ADMIN_PASSWORD)


def checklist_setup(server):
    """Section 14 setup: admin creates joe/secret (User), who must be user3."""
    uid = server.admin().create(
        "user", "username=joe", "password=secret", "roles=User",
        "address=joe@example.com")
    assert uid == "3"


def _readline_with_timeout(proc, timeout):
    result = []

    def read():
        result.append(proc.stdout.readline())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return result[0] if result else None


# --------------------------------------------------------------------------
# Calls


def fault(method, *args):
    """Call ``method(*args)``, which must fail with an XML-RPC fault; return
    ``(faultCode, faultString)``."""
    try:
        result = method(*args)
    except xmlrpc.client.Fault as f:
        return f.faultCode, f.faultString
    pytest.fail("expected a Fault, got %s" % _short(result))


def protocol_error(method, *args):
    """Call ``method(*args)``, which must fail at the HTTP level; return the
    ``xmlrpc.client.ProtocolError``."""
    try:
        result = method(*args)
    except xmlrpc.client.ProtocolError as e:
        return e
    pytest.fail("expected an HTTP error, got %s" % _short(result))


def _short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class RecordingTransport(xmlrpc.client.Transport):
    """A Transport remembering the raw body of the last response."""

    last_body = b""

    def parse_response(self, response):
        body = response.read()
        self.last_body = body
        p, u = self.getparser()
        p.feed(body)
        p.close()
        return u.close()


def raw_post(server, body, headers=None, method="POST", path=None,
             auth=("admin", ADMIN_PASSWORD)):
    """Send a raw HTTP request; return ``(status, headers, body, version)``."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    hdrs = {"Content-Type": "text/xml"}
    if auth is not None:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        hdrs["Authorization"] = "Basic " + token
    hdrs.update(headers or {})
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    try:
        conn.request(method, path or server.path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data, resp.version
    finally:
        conn.close()


def set_config_option(tracker, section, name, value):
    """Set ``name = value`` in ``[section]`` of the tracker's config.ini
    (replacing the option, or a commented-out ``#name =`` line, if present)."""
    config = tracker.home / "config.ini"
    text = config.read_text()
    header = "[%s]\n" % section
    assert header in text, "no [%s] in %s" % (section, config)
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = text[start:end]
    line = "%s = %s" % (name, value)
    body, n = re.subn(r"(?m)^#?%s\s*=.*$" % re.escape(name), line, body, count=1)
    if n == 0:
        body = line + "\n" + body
    config.write_text(text[:start] + body + text[end:])
