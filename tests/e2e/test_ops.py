"""Running our server in production: exit codes, signals, systemd readiness and
socket activation, trusted proxies, /health, and logs that never show passwords.

These tests drive our binary only (``ours_only``): Roundup's standalone server
has none of these features.
"""

import base64
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xmlrpc.client

import pytest

from harness import (
    ADMIN_PASSWORD,
    READY_RE,
    Server,
    copy_tracker,
    pg_cluster,
    raw_post,
    set_config_option,
)

pytestmark = pytest.mark.ours_only

RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def template_tracker(ours_target, tmp_path_factory):
    """One initialised tracker, copied by the tests that break or change it."""
    return ours_target.make_tracker(tmp_path_factory.mktemp("ops-template") / "demo")


@pytest.fixture
def tracker_copy(template_tracker, tmp_path):
    """A private copy of the template tracker (and of its database), named
    ``demo``."""
    return copy_tracker(template_tracker, tmp_path / "demo")


def run(ours_target, *args, env=None, timeout=RUN_TIMEOUT):
    """Run the binary to completion; return the CompletedProcess."""
    return subprocess.run([str(ours_target.binary), *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_exit(proc, code, pattern):
    assert proc.returncode == code, (
        "expected exit %d, got %d\nstdout:\n%s\nstderr:\n%s"
        % (code, proc.returncode, proc.stdout, proc.stderr))
    assert re.search(pattern, proc.stderr), (
        "stderr does not match %r:\n%s" % (pattern, proc.stderr))
    # One line, prefixed with the program name.
    assert "roundup-xmlrpc-server: " in proc.stderr


def set_option(tracker, section, name, value):
    """Set ``name = value`` in ``[section]`` of the tracker's config.ini."""
    config = tracker.home / "config.ini"
    text = config.read_text()
    header = "[%s]\n" % section
    assert header in text
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = text[start:end]
    line = "%s = %s" % (name, value)
    body, n = re.subn(r"(?m)^%s\s*=.*$" % re.escape(name), line, body)
    if n == 0:
        body = line + "\n" + body
    config.write_text(text[:start] + body + text[end:])


def log_text(server):
    server._stderr.flush()
    return server.log.read_text(errors="replace")


# --------------------------------------------------------------------------
# Exit codes (src/cli.rs `exit`)


def test_exit_3_missing_tracker(ours_target, tmp_path):
    proc = run(ours_target, "-i", tmp_path / "nope", "--port", "0")
    assert_exit(proc, 3, r"nope: does not exist")
    proc = run(ours_target, "--port", "0")
    assert_exit(proc, 3, r"no tracker given")


def test_exit_4_bad_schema_names_file_and_line(ours_target, tracker_copy):
    schema = tracker_copy.home / "schema.toml"
    lines = schema.read_text().count("\n")
    with open(schema, "a") as f:
        f.write("this is [not toml\n")
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 4, r"schema\.toml:%d(:\d+)?: " % (lines + 1))


def test_exit_5_port_in_use(ours_target, tracker_copy):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run(ours_target, "-i", tracker_copy.home, "--port", port)
    assert_exit(proc, 5, r"cannot listen on 127\.0\.0\.1:%d: .*in use" % port)


def test_exit_6_unreadable_database(ours_target, tracker_copy):
    if tracker_copy.backend == "postgresql":
        con = pg_cluster().connect(tracker_copy.pg_name)
        try:
            con.cursor().execute("update schema set schema = 'not a python literal'")
        finally:
            con.close()
    else:
        tracker_copy.db_path.write_bytes(b"this is not an sqlite database\n" * 64)
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 6, r"cannot open database")


@pytest.mark.postgresql_only
def test_exit_6_missing_postgresql_database(ours_target, tracker_copy):
    set_config_option(tracker_copy.home, "rdbms", "name", "no_such_database")
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 6, r'PostgreSQL database "no_such_database": does not exist; '
                         r'`roundup-xmlrpc-server init` creates a tracker')


@pytest.mark.postgresql_only
def test_exit_8_postgresql_unreachable(ours_target, tracker_copy, tmp_path):
    """No server at the configured place: one line naming server, database and
    role, exit status 8, within the connect timeout (not a hang)."""
    set_config_option(tracker_copy.home, "rdbms", "host", str(tmp_path / "nosocket"))
    t0 = time.monotonic()
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert time.monotonic() - t0 < 15
    assert_exit(proc, 8, r'cannot connect to PostgreSQL \(database "%s" on %s:5432 as rxs\): '
                % (tracker_copy.pg_name, re.escape(str(tmp_path / "nosocket"))))
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_exit_7_bad_config(ours_target, tracker_copy):
    set_option(tracker_copy, "xmlrpc_server", "no_such_option", "1")
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 7, r"config\.ini.*no_such_option.*unknown option")


def test_exit_7_bad_trusted_proxies_in_config(ours_target, tracker_copy):
    set_option(tracker_copy, "xmlrpc_server", "trusted_proxies", "10.0.0.0/99")
    proc = run(ours_target, "-i", tracker_copy.home, "--port", "0")
    assert_exit(proc, 7, r"trusted_proxies")


def test_exit_2_usage(ours_target, tracker_copy):
    proc = run(ours_target, "--no-such-flag")
    assert proc.returncode == 2, proc.stderr
    proc = run(ours_target, "-i", tracker_copy.home, "--trusted-proxy", "nonsense")
    assert_exit(proc, 2, r"--trusted-proxy nonsense")
    proc = run(ours_target, "-i", tracker_copy.home, "--forwarded-header", "via")
    assert proc.returncode == 2, proc.stderr
    # Serving options before a subcommand make it a NAME=DIR argument.
    proc = run(ours_target, "-V", "demo", tracker_copy.home)
    assert_exit(proc, 2, r"`demo` is a subcommand: put options after it")


def test_help_texts(ours_target):
    for args in ([], ["init"], ["demo"]):
        long = run(ours_target, *args, "--help")
        short = run(ours_target, *args, "-h")
        assert long.returncode == 0 and short.returncode == 0
        assert "Usage: roundup-xmlrpc-server" in long.stdout
        assert len(long.stdout) > len(short.stdout)
    top = run(ours_target, "--help").stdout
    for flag in ("--instance", "--port", "--bind", "--trusted-proxy",
                 "--forwarded-header", "--encoding", "--verbose", "--version"):
        assert flag in top
    init = run(ours_target, "init", "--help").stdout
    for flag in ("--admin-password", "--template", "--set"):
        assert flag in init
    version = run(ours_target, "--version")
    assert re.match(r"roundup-xmlrpc-server \d+\.\d+\.\d+", version.stdout)


def test_demo_subcommand(ours_target, tmp_path):
    proc = subprocess.Popen([str(ours_target.binary), "demo", str(tmp_path / "demo"),
                             "--port", "0", "-V"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("created demo tracker ")
        m = READY_RE.match(proc.stdout.readline())
        assert m, finish(proc)
        line = proc.stdout.readline()
        url = "http://admin:admin@localhost:%s/demo/xmlrpc" % m.group(2)
        assert line == "demo tracker at %s\n" % url
        server = xmlrpc.client.ServerProxy(url, allow_none=True)
        assert server.list("user") == ["admin", "anonymous", "demo"]
        assert server.list("issue", "id") == ["1"]
        assert server.lookup("user", "demo") == "3"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


# --------------------------------------------------------------------------
# Signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0(ours_target, tracker_copy, signum):
    srv = Server(ours_target, tracker_copy).start()
    assert srv.admin().lookup("user", "admin") == "1"
    # An idle keep-alive connection must not hold the shutdown up.
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    idle.request("GET", "/health")
    assert idle.getresponse().read() == b"ok\n"
    started = time.monotonic()
    srv.proc.send_signal(signum)
    rc = srv.proc.wait(15)
    srv._stderr.close()
    idle.close()
    assert rc == 0, log_text(srv)
    assert time.monotonic() - started < 5
    assert "shutting down" in srv.log.read_text()


def test_sigterm_with_stalled_client_exits_0(ours_target, tracker_copy):
    """A client stuck in the middle of a request cannot keep the server alive."""
    srv = Server(ours_target, tracker_copy).start()
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    # Authenticated: a caller who may not call is answered without waiting for
    # the body.
    stalled.sendall(b"POST /demo/xmlrpc HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                    + basic("admin", ADMIN_PASSWORD).encode()
                    + b"\r\nContent-Length: 100\r\n\r\n<?xml")
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(25)
    finally:
        stalled.close()
        srv._stderr.close()
    log = srv.log.read_text()
    assert rc == 0, log
    assert "grace period over" in log


# --------------------------------------------------------------------------
# /health


def test_health(ours_target, tracker_copy):
    with Server(ours_target, tracker_copy) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"ok\n")
        assert resp.getheader("Content-Type", "").startswith("text/plain")
        conn.request("HEAD", "/health")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"")
        conn.request("POST", "/health", body=b"x")
        resp = conn.getresponse()
        assert resp.status == 405
        assert resp.getheader("Allow") == "GET, HEAD"
        resp.read()
        conn.close()
        assert re.search(r"request peer=127\.0\.0\.1:\d+ method=GET path=/health status=200",
                         log_text(srv))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_bind_used_without_command_line(ours_target, tracker_copy):
    """[xmlrpc_server] bind gives the address when --port/--bind are absent."""
    port = free_port()
    set_option(tracker_copy, "xmlrpc_server", "bind", "127.0.0.1:%d" % port)
    cmd = [str(ours_target.binary), "-i", str(tracker_copy.home)]
    with Server(ours_target, tracker_copy, command=cmd) as srv:
        assert srv.port == port
        assert srv.admin().display("status1", "name") == {"name": "unread"}


def test_command_line_port_beats_config_bind(ours_target, tracker_copy):
    port = free_port()
    set_option(tracker_copy, "xmlrpc_server", "bind", "127.0.0.1:%d" % port)
    with Server(ours_target, tracker_copy) as srv:  # --port 0
        assert srv.port != port


def test_config_limits_applied(ours_target, tracker_copy):
    """max_request_bytes bounds bodies (413); max_connections caps
    connections (503 above it); request_timeout_sec bounds a slow sender."""
    set_option(tracker_copy, "xmlrpc_server", "max_request_bytes", "2000")
    set_option(tracker_copy, "xmlrpc_server", "max_connections", "3")
    set_option(tracker_copy, "xmlrpc_server", "request_timeout_sec", "2")
    with Server(ours_target, tracker_copy) as srv:
        small = xmlrpc.client.dumps(("status1", "name"), "display").encode()
        assert raw_post(srv, small)[0] == 200
        big = xmlrpc.client.dumps(("x" * 3000,), "lookup").encode()
        assert raw_post(srv, big)[0] == 413
        # Three idle connections fill the cap; a fourth is refused.
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                for _ in range(3)]
        try:
            time.sleep(0.3)
            extra = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100).startswith(b"HTTP/1.1 503")
            extra.close()
        finally:
            for c in held:
                c.close()
        # A request whose body never completes is cut off after ~2 s, not 30.
        time.sleep(0.3)
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        slow.sendall(b"POST /demo/xmlrpc HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                     + basic("admin", ADMIN_PASSWORD).encode()
                     + b"\r\nContent-Length: 100\r\n\r\n<?xml")
        started = time.monotonic()
        data = slow.recv(1000)
        elapsed = time.monotonic() - started
        slow.close()
        assert elapsed < 10, elapsed
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data


def test_call_rate_limit(ours_target, tracker_copy):
    """[web] api_calls_per_interval: the call after the budget gets 429 with
    Retry-After and X-RateLimit-* headers; the limit is per user."""
    set_option(tracker_copy, "web", "api_calls_per_interval", "3")
    set_option(tracker_copy, "web", "api_interval_in_sec", "60")
    with Server(ours_target, tracker_copy) as srv:
        body = xmlrpc.client.dumps(("status1", "name"), "display").encode()
        for _ in range(3):
            assert raw_post(srv, body)[0] == 200
        status, headers, data, _ = raw_post(srv, body)
        assert status == 429, data
        assert headers["Retry-After"] == "20"
        assert headers["X-RateLimit-Limit"] == "3"
        assert headers["X-RateLimit-Limit-Period"] == "60"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert b"Please wait: 20 seconds" in data
        # Anonymous callers have a budget of their own.
        assert raw_post(srv, body, auth=None)[0] == 200


def test_no_call_rate_limit_by_default(ours_target, tracker_copy):
    with Server(ours_target, tracker_copy) as srv:
        body = xmlrpc.client.dumps(("status1", "name"), "display").encode()
        assert all(raw_post(srv, body)[0] == 200 for _ in range(30))


# --------------------------------------------------------------------------
# systemd: readiness notification and socket activation


@pytest.fixture
def notify_socket(monkeypatch):
    """A NOTIFY_SOCKET (datagram) that the server inherits through the environment."""
    tmp = tempfile.mkdtemp(prefix="rxs-notify-", dir="/tmp")
    path = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_sd_notify_ready_and_stopping(ours_target, tracker_copy, notify_socket):
    srv = Server(ours_target, tracker_copy).start()
    ready = notify_socket.recv(4096).decode()
    assert "READY=1" in ready.splitlines()
    assert "STATUS=serving 1 tracker on http://127.0.0.1:%d/" % srv.port in ready
    assert srv.admin().lookup("user", "admin") == "1"
    srv.stop()
    stopping = notify_socket.recv(4096).decode()
    assert "STOPPING=1" in stopping.splitlines()


def spawn_with_listener(ours_target, args, listener, listen_pid="self"):
    """Start the binary with ``listener`` as fd 3 and LISTEN_FDS=1, as systemd does.

    ``listen_pid``: "self" (the server's own pid, through ``exec``), or a fixed value.
    """
    fd = listener.fileno()
    env = dict(os.environ, LISTEN_FDS="1")
    env.pop("LISTEN_PID", None)
    pid = '$$' if listen_pid == "self" else str(listen_pid)
    cmd = ["/bin/sh", "-c", 'LISTEN_PID=%s exec "$0" "$@"' % pid,
           str(ours_target.binary), *map(str, args)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, pass_fds=(3,),
                            preexec_fn=lambda: os.dup2(fd, 3))


def finish(proc, stop=True):
    """Wait for the process (after SIGTERM if ``stop``); return (rc, stdout, stderr)."""
    if stop and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_socket_activation_overrides_bind_and_port(ours_target, tracker_copy):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    proc = spawn_with_listener(
        ours_target, ["-i", tracker_copy.home, "--port", "1", "--bind", "127.0.0.9"],
        listener)
    listener.close()  # the server holds its own copy
    try:
        line = proc.stdout.readline().decode()
        assert line == "listening on http://127.0.0.1:%d/\n" % port, finish(proc)
        proxy = xmlrpc.client.ServerProxy(
            "http://admin:%s@127.0.0.1:%d/demo/xmlrpc" % (ADMIN_PASSWORD, port))
        assert proxy.lookup("user", "admin") == "1"
    finally:
        rc, out, err = finish(proc)
    assert rc == 0, err
    assert "using the socket passed by systemd" in err


def test_socket_activation_for_another_pid_is_ignored(ours_target, tracker_copy):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    proc = spawn_with_listener(ours_target, ["-i", tracker_copy.home, "--port", "0"],
                               listener, listen_pid=1)
    try:
        m = READY_RE.match(proc.stdout.readline().decode())
        assert m and int(m.group(2)) != port, finish(proc)
    finally:
        listener.close()
        rc, out, err = finish(proc)
    assert rc == 0, err


def test_socket_activation_rejects_a_unix_socket(ours_target, tracker_copy):
    tmp = tempfile.mkdtemp(prefix="rxs-unix-", dir="/tmp")
    try:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.path.join(tmp, "sock"))
        listener.listen()
        proc = spawn_with_listener(ours_target, ["-i", tracker_copy.home], listener)
        listener.close()
        rc, out, err = finish(proc, stop=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 5, err
    assert "socket activation" in err


# --------------------------------------------------------------------------
# Trusted proxies


def call_with_headers(server, headers):
    body = xmlrpc.client.dumps(("user", "admin"), "lookup").encode()
    status, _, data, _ = raw_post(server, body, headers=headers)
    assert status == 200 and b"<string>1</string>" in data


def test_forwarded_for_ignored_by_default(ours_target, tracker_copy):
    with Server(ours_target, tracker_copy) as srv:
        call_with_headers(srv, {"X-Forwarded-For": "203.0.113.9"})
        log = log_text(srv)
    assert re.search(r"call peer=127\.0\.0\.1:\d+ user=admin method=lookup", log)
    assert "203.0.113.9" not in log


def test_trusted_proxies_from_config(ours_target, tracker_copy):
    set_option(tracker_copy, "xmlrpc_server", "trusted_proxies", "10.9.9.9, 127.0.0.1")
    with Server(ours_target, tracker_copy) as srv:
        call_with_headers(srv, {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
        log = log_text(srv)
    assert re.search(r"call peer=203\.0\.113\.9:0 user=admin method=lookup", log), log
    assert "198.51.100.1" not in log
    assert "10.9.9.9/32, 127.0.0.1/32" in log


def test_command_line_trusted_proxy_and_forwarded_header(ours_target, tracker_copy):
    # The command line replaces config.ini's list.
    set_option(tracker_copy, "xmlrpc_server", "trusted_proxies", "10.9.9.9")
    cmd = ours_target.server_command(tracker_copy) + [
        "--trusted-proxy", "127.0.0.0/8", "--forwarded-header", "forwarded"]
    with Server(ours_target, tracker_copy, command=cmd) as srv:
        call_with_headers(srv, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https',
                                "X-Forwarded-For": "203.0.113.9"})
        log = log_text(srv)
    assert re.search(r"call peer=\[2001:db8::7\]:4711 user=admin", log), log
    assert "203.0.113.9" not in log


# --------------------------------------------------------------------------
# Logs


SECRET = "Zq7-Tr0mb0ne-Xylo!"
WRONG = "Wr0ng-Bassoon-Qx9?"
NEW_SECRET = "N3w-Ocarina-Vv8#"


def basic(user, password):
    return base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def test_logs_never_show_passwords(ours_target, tracker_copy, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "trace")
    monkeypatch.delenv("NO_COLOR", raising=False)
    cmd = ours_target.server_command(tracker_copy) + ["-V"]
    with Server(ours_target, tracker_copy, command=cmd) as srv:
        admin = srv.admin()
        uid = admin.create("user", "username=carol", "password=" + SECRET,
                           "roles=User", "address=carol@example.com")
        carol = srv.proxy("carol", SECRET)
        assert carol.lookup("user", "@current_user") == uid
        for password in (WRONG, SECRET + "x"):
            err = pytest.raises(xmlrpc.client.ProtocolError,
                                srv.proxy("carol", password).lookup, "user", "carol")
            assert err.value.errcode == 403
        admin.set("user" + uid, "password=" + NEW_SECRET)
        assert srv.proxy("carol", NEW_SECRET).lookup("user", "carol") == uid
        # A multicall that sets a password, and one that fails after doing so.
        multi = xmlrpc.client.MultiCall(admin)
        multi.set("user" + uid, "password=" + SECRET)
        multi.set("user" + uid, "password=" + NEW_SECRET, "nosuchprop=1")
        results = multi().results
        assert results[0] == [{"password": SECRET}] or isinstance(results[0], list)
        assert results[1]["faultCode"] == 1
        # A malformed request body and a malformed Authorization header that
        # both carry the password.
        body = ("<?xml version='1.0'?><methodCall><methodName>set</methodName>"
                "<params><param><value><string>password=%s</string></value>"
                "</param><param><value><strin" % SECRET).encode()
        raw_post(srv, body)
        raw_post(srv, b"<x/>", auth=None,
                 headers={"Authorization": "Basic " + base64.b64encode(
                     SECRET.encode()).decode()})
        raw_post(srv, b"<x/>", auth=None, headers={"Authorization": "Basic " + SECRET})
        raw_post(srv, b"<x/>", auth=None, headers={"Authorization": "Digest " + SECRET})
        # A rejected request is logged at debug level.
        raw_post(srv, b"<x/>", path="/nowhere")
        admin_token = basic("admin", ADMIN_PASSWORD)
    log = srv.log.read_text(errors="replace")
    out = b"".join(srv.output).decode(errors="replace")
    assert "call" in log and "request" in log, "no request logged at all:\n" + log
    assert "DEBUG" in log, "-V / RUST_LOG=trace had no effect"
    for text in (log, out):
        for secret in (SECRET, NEW_SECRET, WRONG, SECRET + "x", ADMIN_PASSWORD):
            assert secret not in text, "password %r logged:\n%s" % (secret, text)
        for user, password in (("carol", SECRET), ("carol", WRONG),
                               ("carol", NEW_SECRET), ("admin", ADMIN_PASSWORD)):
            assert basic(user, password) not in text, "Authorization header logged"
        assert admin_token not in text
        assert base64.b64encode(SECRET.encode()).decode() not in text
    # stderr is a file here: no colour escape sequences.
    assert "\x1b[" not in log
