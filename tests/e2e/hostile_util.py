"""Helpers of the hostile-input suite (test_hostile_*.py, test_concurrency.py,
test_crash.py): raw HTTP over sockets, XML-RPC bodies, fault parsing, the
server's resident memory, "is the server still fine" probes, and the attack
counter printed at the end of the run ("attacks tried: N, passed: M").

Only the standard library and pytest are used.
"""

import base64
import http.client
import os
import re
import socket
import threading
import time
import xmlrpc.client

import pytest

from harness import ADMIN_PASSWORD

# Words that must never appear in a fault a client sees: they would mean that
# a storage error (or the SQL text itself) leaked through.
SQL_LEAK_RE = re.compile(
    r"sqlite|syntax error|no such column|no such table|unrecognized token|"
    r"OperationalError|IntegrityError|ProgrammingError|near \"|"
    r"database is locked|constraint failed|SELECT |INSERT |UPDATE |"
    r"rusqlite|panicked|RUST_BACKTRACE|thread '",
    re.IGNORECASE)

DEFAULT_TIMEOUT = 15.0


# --------------------------------------------------------------------------
# Attack counter


class AttackCounter:
    """Counts every test item of the hostile modules as one attack (a
    parametrised case is one attack; ``test_control_*`` positive controls do
    not count) and prints the totals in the terminal summary. Expected failures (known server bugs, ``xfail``) are attacks
    that did not pass."""

    name = "hostile-attack-counter"
    modules = ("test_hostile_xml.py", "test_hostile_http.py",
               "test_hostile_app.py", "test_concurrency.py", "test_crash.py")

    def __init__(self):
        self.tried = 0
        self.passed = 0
        self.known_bugs = []
        self.failed = []
        self.skipped = 0

    def _ours(self, nodeid):
        # Positive controls (test_control_*) are not attacks.
        return (any(m in nodeid for m in self.modules)
                and "::test_control_" not in nodeid)

    def pytest_runtest_logreport(self, report):
        if not self._ours(report.nodeid):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.skipped and not hasattr(report, "wasxfail"):
                self.skipped += 1
                return
            self.tried += 1
            if hasattr(report, "wasxfail"):
                if report.skipped:          # xfail: the bug is still there
                    self.known_bugs.append(report.nodeid)
                else:                       # xpass (strict: reported as failure)
                    self.failed.append(report.nodeid)
            elif report.passed:
                self.passed += 1
            else:
                self.failed.append(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.tried and not self.skipped:
            return
        tr = terminalreporter
        tr.section("hostile-input suite")
        tr.write_line("attacks tried: %d, passed: %d, known server bugs "
                      "(xfail): %d, failed: %d, skipped: %d"
                      % (self.tried, self.passed, len(self.known_bugs),
                         len(self.failed), self.skipped))
        for nodeid in self.known_bugs:
            tr.write_line("  BUG (xfail): %s" % nodeid)


@pytest.fixture(scope="session", autouse=True)
def _attack_counter(request):
    """Registers the counter plugin once per session (imported by every
    hostile module, which makes it an autouse fixture there)."""
    pm = request.config.pluginmanager
    if not pm.has_plugin(AttackCounter.name):
        pm.register(AttackCounter(), AttackCounter.name)
    yield


# --------------------------------------------------------------------------
# Servers that may die


class MortalServer:
    """``with MortalServer(target, tracker) as srv`` -- a harness Server whose
    teardown tolerates a crashed process (for tests that expect a crash, or
    kill -9 it themselves). A dead server is restarted with ``restart()``."""

    def __init__(self, target, tracker):
        from harness import Server
        self._cls = Server
        self.target = target
        self.tracker = tracker
        self.server = None

    def start(self):
        self.server = self._cls(self.target, self.tracker).start()
        return self.server

    def restart(self):
        self.close()
        return self.start()

    def close(self):
        srv = self.server
        if srv is None:
            return
        self.server = None
        try:
            if srv.proc.poll() is None:
                srv.stop()
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
            try:
                srv._stderr.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Process state


def rss_kb(pid):
    """VmRSS of a process in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def hwm_kb(pid):
    """VmHWM (peak resident memory so far) of a process in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def thread_count(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class RssWatch:
    """``with RssWatch(server, limit_mb=200): ...`` asserts that the server's
    resident memory (VmRSS after the block) and its peak (VmHWM, the
    high-water mark, which only moves when a new peak is reached) both grew
    by less than ``limit_mb`` over the block."""

    def __init__(self, server, limit_mb=200, peak_mb=None):
        self.pid = server.proc.pid
        self.limit_kb = limit_mb * 1024
        self.peak_kb = (peak_mb if peak_mb is not None else limit_mb) * 1024

    def __enter__(self):
        self.before = rss_kb(self.pid)
        self.hwm_before = hwm_kb(self.pid)
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is not None:
            return
        self.after = rss_kb(self.pid)
        self.hwm_after = hwm_kb(self.pid)
        assert self.after - self.before < self.limit_kb, (
            "server RSS grew from %d KiB to %d KiB (limit +%d KiB)"
            % (self.before, self.after, self.limit_kb))
        # The peak may legitimately be above the RSS before the block; only
        # the part above the previous high-water mark and above the starting
        # RSS counts.
        peak_growth = self.hwm_after - max(self.before, 0)
        if self.hwm_after > self.hwm_before:
            assert peak_growth < self.peak_kb, (
                "server peak RSS reached %d KiB from %d KiB (limit +%d KiB)"
                % (self.hwm_after, self.before, self.peak_kb))


class RssSampler(threading.Thread):
    """Samples the server's RSS every 50 ms in the background (peak)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()

    def run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, AssertionError):
                return
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self.join(2)
        return self.peak


def pbkdf2_password(plaintext, rounds):
    """A pre-hashed Roundup password value ``{PBKDF2}rounds$salt$digest``
    (PBKDF2-HMAC-SHA1, Roundup's h64 encoding) with a chosen cost."""
    import hashlib

    def h64(data):
        return base64.b64encode(data, b"./").strip(b"=\n").decode()

    raw_salt = os.urandom(20)
    digest = hashlib.pbkdf2_hmac("sha1", plaintext.encode(), raw_salt, rounds, 20)
    return "{PBKDF2}%d$%s$%s" % (rounds, h64(raw_salt), h64(digest))


# --------------------------------------------------------------------------
# XML-RPC bodies and answers


def call_body(method, *params):
    """The XML of a ``<methodCall>`` (bytes)."""
    return xmlrpc.client.dumps(tuple(params), methodname=method,
                               allow_none=True).encode("utf-8")


def wrap_params(params_xml, method="list"):
    """A methodCall with raw ``<param>`` XML inside (str → bytes)."""
    if isinstance(params_xml, str):
        params_xml = params_xml.encode("utf-8")
    return (b"<?xml version='1.0'?>\n<methodCall><methodName>" +
            method.encode() + b"</methodName><params>" + params_xml +
            b"</params></methodCall>")


def auth_header(user="admin", password=ADMIN_PASSWORD):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return "Basic " + token


def parse_answer(body):
    """``('fault', code, string)`` or ``('ok', value)`` for an XML-RPC
    response body; raises AssertionError when it is not XML-RPC at all."""
    try:
        params, _ = xmlrpc.client.loads(body, use_builtin_types=True)
    except xmlrpc.client.Fault as f:
        return ("fault", f.faultCode, f.faultString)
    except Exception as e:  # noqa: BLE001 - anything else is a bad answer
        raise AssertionError("response is not XML-RPC (%s): %r"
                             % (e, body[:300]))
    return ("ok", params[0] if params else None)


def assert_no_leak(text, sent=()):
    """A fault string must not disclose SQL or internals. Client-supplied
    strings in ``sent`` (which a fault may legitimately echo) are ignored."""
    text = text or ""
    for s in sent:
        text = text.replace(s, "")
    m = SQL_LEAK_RE.search(text)
    assert not m, "internal detail leaked to the client (%r): %r" % (
        m.group(0), text[:500])


def post(server, body, headers=None, path=None, timeout=DEFAULT_TIMEOUT,
         auth=("admin", ADMIN_PASSWORD), method="POST"):
    """One request over a fresh http.client connection; returns
    ``(status, headers, body, elapsed_seconds)``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    hdrs = {"Content-Type": "text/xml"}
    if auth is not None:
        hdrs["Authorization"] = auth_header(*auth)
    hdrs.update(headers or {})
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    t0 = time.monotonic()
    try:
        conn.request(method, path or server.path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data, time.monotonic() - t0
    finally:
        conn.close()


def rpc_fault(server, body, limit=10.0, **kw):
    """POSTs ``body``: the answer must be HTTP 200 with an XML-RPC fault that
    leaks nothing, within ``limit`` seconds; returns ``(code, string)``."""
    status, _, data, elapsed = post(server, body, **kw)
    assert elapsed < limit, "answer took %.1f s (limit %s s)" % (elapsed, limit)
    assert status == 200, "HTTP %s: %r" % (status, data[:300])
    ans = parse_answer(data)
    assert ans[0] == "fault", "expected a fault, got %r" % (ans,)
    assert_no_leak(ans[2])
    return ans[1], ans[2]


class TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def proxy(server, user="admin", password=ADMIN_PASSWORD, timeout=DEFAULT_TIMEOUT):
    """A ServerProxy with a socket timeout (None user = anonymous)."""
    return server.proxy(user, password if user is not None else None,
                        transport=TimeoutTransport(timeout))


def assert_healthy(server, limit=3.0):
    """The server answers a normal authenticated call within ``limit`` s."""
    assert server.proc.poll() is None, (
        "server process died (status %s)\n%s" % (server.proc.returncode,
                                                 server.stderr_text()))
    t0 = time.monotonic()
    names = proxy(server, timeout=limit + 5).list("status")
    elapsed = time.monotonic() - t0
    assert "unread" in names, names
    assert elapsed < limit, "normal call took %.2f s" % elapsed
    return elapsed


# --------------------------------------------------------------------------
# Raw sockets


def connect(server, timeout=DEFAULT_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_bytes(server, body=b"", headers=None, method="POST", path=None,
                  auth=("admin", ADMIN_PASSWORD), version="HTTP/1.1",
                  content_length=True):
    """A raw request (bytes). ``headers`` is a list of (name, value) pairs or
    ready-made ``bytes`` lines; values may be bytes."""
    lines = [("%s %s %s" % (method, path or server.path, version)).encode()]
    hdrs = [("Host", "127.0.0.1:%d" % server.port), ("Content-Type", "text/xml")]
    if auth is not None:
        hdrs.append(("Authorization", auth_header(*auth)))
    if content_length:
        hdrs.append(("Content-Length", str(len(body))))
    for h in list(hdrs) + list(headers or []):
        if isinstance(h, bytes):
            lines.append(h)
        else:
            name, value = h
            if not isinstance(value, bytes):
                value = str(value).encode("latin-1")
            lines.append(name.encode("latin-1") + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def recv_all(sock, deadline, limit=64 << 20):
    """Reads until EOF or the deadline; returns ``(data, how)`` with how in
    ``eof``, ``reset``, ``timeout``."""
    chunks = []
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), "timeout"
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), "reset"
        if not b:
            return b"".join(chunks), "eof"
        chunks.append(b)
        total += len(b)
        if total > limit:
            return b"".join(chunks), "limit"


def read_response(sock, deadline, no_body=False):
    """Reads one response from ``sock`` (None on close/timeout first)."""
    buf = b""
    while True:
        resps, _ = parse_responses(buf, no_body)
        if resps:
            return resps[0]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            return None
        if not b:
            return None
        buf += b


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<Response %s %r %r>" % (self.status, self.headers, self.body[:200])


def parse_responses(data, no_body=False):
    """Splits raw bytes into complete HTTP/1.x responses (Content-Length
    framing only, which is what the server uses; ``no_body`` for answers to
    HEAD). Returns ``(responses, rest)``."""
    out = []
    while data:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            break
        head = data[:head_end].decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3}) ?(.*)", head[0])
        if not m:
            break
        headers = []
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        length = 0
        for k, v in headers:
            if k.lower() == "content-length" and not no_body:
                length = int(v)
        if len(data) < head_end + 4 + length:
            break
        body = data[head_end + 4: head_end + 4 + length]
        out.append(Response(int(m.group(2)), m.group(3), headers, body, m.group(1)))
        data = data[head_end + 4 + length:]
    return out, data


def exchange(server, raw, wait=10.0, sock=None):
    """Sends ``raw`` (bytes or a list of bytes sent one after the other) on a
    new connection, half-closes nothing, and reads until the server closes or
    ``wait`` seconds pass. Returns ``(responses, rest, how, elapsed)``."""
    s = sock or connect(server)
    t0 = time.monotonic()
    try:
        for part in (raw if isinstance(raw, list) else [raw]):
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        data, how = recv_all(s, t0 + wait)
    finally:
        s.close()
    responses, rest = parse_responses(data)
    return responses, rest, how, time.monotonic() - t0


def first_response(server, raw, wait=10.0):
    """Sends ``raw`` and returns ``(first response or None, elapsed)``, read
    as soon as it is complete (does not wait for the connection to close)."""
    no_body = raw.startswith(b"HEAD ")
    s = connect(server)
    t0 = time.monotonic()
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while True:
            resps, _ = parse_responses(buf, no_body)
            if resps:
                return resps[0], time.monotonic() - t0
            left = t0 + wait - time.monotonic()
            if left <= 0:
                return None, time.monotonic() - t0
            s.settimeout(left)
            try:
                b = s.recv(65536)
            except socket.timeout:
                return None, time.monotonic() - t0
            except (ConnectionResetError, BrokenPipeError):
                return None, time.monotonic() - t0
            if not b:
                resps, _ = parse_responses(buf, no_body)
                return (resps[0] if resps else None), time.monotonic() - t0
            buf += b
    finally:
        s.close()
