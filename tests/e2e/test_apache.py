"""Our server behind Apache httpd as a TLS proxy, configured from contrib/apache.conf.

The counterpart of test_nginx.py: Roundup's "advanced client" over https through
Apache, the http -> https redirect, a client's own X-Forwarded-For dropped,
pooled upstream connections, and request bodies over a limit answered with an
intact 413 (see proxy_limits.py, shared with test_nginx.py).

Needs Debian's ``apache2`` and ``openssl`` (``apt-get install -y apache2
openssl``); fails under RXS_REQUIRE_TOOLS (CI), skipped otherwise. Apache runs in
the foreground as a child of the test, with a private configuration (pid file,
logs, mutexes and runtime files in a temporary directory) that loads the modules
contrib/apache.conf names and includes it with ports, certificate and upstream
substituted. Apache's mod_proxy cannot pick its source address, so the server
sees 127.0.0.1 either way: a trusted proxy shows as the X-Forwarded-For value
(``127.0.0.1:0``, no port), an untrusted one with its ephemeral port.
"""

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import xmlrpc.client as xmlrpclib

import pytest

import proxy_limits
from harness import ADMIN_PASSWORD, REPO, Server, fault

pytestmark = pytest.mark.ours_only

CONTRIB = REPO / "contrib" / "apache.conf"
MODULES = "/usr/lib/apache2/modules"


def find_program(name):
    return shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name) if os.access(p, os.X_OK)), None)


APACHE = find_program("apache2")
OPENSSL = find_program("openssl")

if not (APACHE and OPENSSL and os.path.isdir(MODULES)):
    _reason = ("Debian's apache2 and openssl are needed (apt-get install -y apache2 "
               "openssl); missing: %s" % ", ".join(
                   n for n, ok in (("apache2", APACHE), ("openssl", OPENSSL),
                                   (MODULES, os.path.isdir(MODULES))) if not ok))
    if os.environ.get("RXS_REQUIRE_TOOLS"):
        raise RuntimeError("required tool missing (RXS_REQUIRE_TOOLS is set): " + _reason)
    pytest.skip(_reason, allow_module_level=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text, old, new, count=None):
    """``text.replace(old, new)``, insisting that ``old`` occurs (``count`` times)."""
    found = text.count(old)
    assert found and (count is None or found == count), (
        "contrib/apache.conf changed: %r found %d times" % (old, found))
    return text.replace(old, new)


def apache_config(tmp, upstream_port, https_port, http_port, cert, key):
    """contrib/apache.conf, pointed at our server and at files in ``tmp``, inside
    the server-wide settings that Debian's /etc/apache2/apache2.conf would give."""
    site = CONTRIB.read_text()
    site = substitute(site, "<VirtualHost *:80>", "<VirtualHost 127.0.0.1:%d>" % http_port, 1)
    site = substitute(site, "<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % https_port, 1)
    site = substitute(site, "ServerName tracker.example.com", "ServerName localhost")
    site = substitute(site, "Redirect permanent / https://tracker.example.com/",
                      "Redirect permanent / https://localhost/", 1)
    site = substitute(site, "/etc/ssl/certs/tracker.example.com.pem", str(cert), 1)
    site = substitute(site, "/etc/ssl/private/tracker.example.com.key", str(key), 1)
    site = substitute(site, "http://127.0.0.1:8000/", "http://127.0.0.1:%d/" % upstream_port, 2)
    modules = "\n".join("LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in (
        "mpm_event", "authz_core", "alias", "headers", "ssl", "socache_shmcb", "proxy",
        "proxy_http"))
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    return """%s
%sServerRoot %s
ServerName localhost
PidFile %s
DefaultRuntimeDir %s
Mutex file:%s default
ErrorLog %s
LogLevel info proxy:debug proxy_http:debug
LogFormat "%%h %%>s %%r %%I" small
CustomLog %s small
Listen 127.0.0.1:%d
Listen 127.0.0.1:%d
# One child process, so that its upstream connection pool is the only one.
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
Timeout 60
%s
""" % (modules, user, tmp, tmp / "apache.pid", tmp, tmp, tmp / "error.log", tmp / "access.log",
       http_port, https_port, site)


def make_cert(tmp):
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    # Apache's workers (www-data) never read it: the key is loaded before they start.
    return cert, key


def wait_for_port(port, proc, log, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("apache2 exited with %s:\n%s" % (
                proc.returncode, log.read_text() if log.exists() else ""))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("apache2 did not listen on %d within %ss:\n%s" % (
        port, timeout, log.read_text() if log.exists() else ""))


class Apache:
    def __init__(self, tmp, upstream_port):
        self.tmp = tmp
        os.chmod(tmp, 0o755)
        self.https_port = free_port()
        self.http_port = free_port()
        self.cert, key = make_cert(tmp)
        self.conf = tmp / "apache2.conf"
        self.conf.write_text(apache_config(tmp, upstream_port, self.https_port,
                                           self.http_port, self.cert, key))
        self.error_log = tmp / "error.log"
        test = subprocess.run([APACHE, "-t", "-f", str(self.conf)], capture_output=True,
                              text=True, timeout=60)
        assert test.returncode == 0, "apache2 -t: %s\n%s" % (test.stderr, self.conf.read_text())
        self.proc = subprocess.Popen([APACHE, "-f", str(self.conf), "-DFOREGROUND"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        wait_for_port(self.https_port, self.proc, self.error_log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGWINCH)  # graceful stop
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ssl_context(self):
        return ssl.create_default_context(cafile=str(self.cert))

    def log(self):
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""


@contextlib.contextmanager
def proxied_server(target, tmp_path, trusted, max_request_bytes=None):
    """(server, apache) with a tracker set up like the doc's demo tracker (users
    admin/admin and demo/demo, issue1); the server trusts the proxy or not."""
    tracker = target.make_tracker(tmp_path / "demo")
    if max_request_bytes:
        proxy_limits.set_max_request_bytes(tracker, max_request_bytes)
    command = target.server_command(tracker)
    if trusted:
        command += ["--trusted-proxy", "127.0.0.1"]
    with Server(target, tracker, command=command) as srv:
        setup = srv.proxy("admin", ADMIN_PASSWORD)
        setup.set("user1", "password=admin")
        admin = srv.proxy("admin", "admin")
        assert admin.create("user", "username=demo", "password=demo",
                            "roles=User", "address=demo@example.com") == "3"
        assert admin.create("issue", "title=yes, it works", "priority=1",
                            "status=2") == "1"
        tmp = tmp_path / "apache"
        tmp.mkdir()
        apache = Apache(tmp, srv.port)
        try:
            yield srv, apache
        finally:
            apache.stop()


@pytest.fixture(params=[True, False], ids=["trusted", "untrusted"])
def proxied(request, ours_target, tmp_path):
    """(trusted, server, apache), once with and once without --trusted-proxy."""
    with proxied_server(ours_target, tmp_path, request.param) as (srv, apache):
        yield request.param, srv, apache


@pytest.fixture
def untrusted_proxied(ours_target, tmp_path):
    with proxied_server(ours_target, tmp_path, False) as pair:
        yield pair


def advanced_client(apache):
    """The doc's advanced client, with https to Apache and an SSL context that
    trusts the test certificate."""
    hostname = "localhost:%d" % apache.https_port
    path = "/demo"

    class SpecialTransport(xmlrpclib.SafeTransport):

        def send_content(self, connection, request_body):
            connection.putheader("Referer", "https://%s%s/" % (hostname, path))
            connection.putheader("Origin", "https://%s" % hostname)
            connection.putheader("X-Requested-With", "XMLHttpRequest")
            connection.putheader("Content-Type", "text/xml")
            connection.putheader("Content-Length", str(len(request_body)))
            connection.endheaders()
            if request_body:
                connection.send(request_body)

    return xmlrpclib.ServerProxy(
        "https://admin:admin@%s%s/xmlrpc" % (hostname, path),
        transport=SpecialTransport(context=apache.ssl_context()),
        allow_none=True)


def server_log(srv):
    srv._stderr.flush()
    return srv.log.read_text(errors="replace")


def test_advanced_client_through_apache(proxied):
    trusted, srv, apache = proxied
    roundup_server = advanced_client(apache)

    schema = roundup_server.schema()
    assert sorted(schema) == ["file", "issue", "keyword", "msg", "priority",
                              "query", "status", "user"]
    assert roundup_server.display("user2", "username") == {"username": "anonymous"}
    assert roundup_server.display("issue1", "status") == {"status": "2"}
    assert roundup_server.filter("user", ["1", "2", "3"], {"username": "demo"}) == ["3"]
    assert fault(roundup_server.filter, "usr", ["0", "2", "3"], {"username": "demo"}) == (
        1, "<class 'KeyError'>:'There is no class called \"usr\"'")

    # Apache drops a client's own X-Forwarded-For and sends the client address.
    conn = http.client.HTTPSConnection("localhost", apache.https_port,
                                       context=apache.ssl_context(), timeout=30)
    conn.request("GET", "/health", headers={"X-Forwarded-For": "198.51.100.66"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"ok\n")
    assert resp.getheader("Strict-Transport-Security") == "max-age=63072000"
    conn.close()

    log = server_log(srv)
    calls = re.findall(r"call peer=(\S+) user=admin method=(\S+)", log)
    assert [m for _, m in calls][-5:] == ["schema", "display", "display", "filter", "filter"]
    peers = {p for p, _ in calls[-5:]}
    health = re.findall(r"request peer=(\S+) method=GET path=/health status=200", log)
    assert len(health) == 1, log
    if trusted:
        # The address Apache put in X-Forwarded-For (no port: ":0").
        assert peers == {"127.0.0.1:0"}, log
        assert health == ["127.0.0.1:0"], log
    else:
        assert all(re.fullmatch(r"127\.0\.0\.1:[1-9]\d*", p) for p in peers), log
        assert re.fullmatch(r"127\.0\.0\.1:[1-9]\d*", health[0]), log
    assert "198.51.100.66" not in log


def test_plain_http_redirects_to_https(untrusted_proxied):
    srv, apache = untrusted_proxied
    calls = server_log(srv).count("call peer=")
    conn = http.client.HTTPConnection("127.0.0.1", apache.http_port, timeout=30)
    conn.request("POST", "/demo/xmlrpc", body=b"<x/>")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 301
    assert resp.getheader("Location") == "https://localhost/demo/xmlrpc"
    assert server_log(srv).count("call peer=") == calls, "the redirect reached the server"


def test_upstream_keepalive(untrusted_proxied):
    """Calls through Apache reuse its pooled connection to the server."""
    srv, apache = untrusted_proxied
    for _ in range(5):
        assert advanced_client(apache).lookup("user", "admin") == "1"
    log = server_log(srv)
    peers = re.findall(r"call peer=(\S+) user=admin method=lookup", log)
    assert len(peers) == 5
    assert len(set(peers)) == 1, "Apache opened a connection per request: %s" % peers


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
@pytest.mark.parametrize("case", proxy_limits.CASES, ids=[c.id for c in proxy_limits.CASES])
def test_over_limit_body_is_answered_413(ours_target, tmp_path, case, expect):
    with proxied_server(ours_target, tmp_path, False,
                        max_request_bytes=case.server_limit) as (srv, apache):
        proxy_limits.check_413(apache.https_port, apache.ssl_context(), case, expect,
                               lambda: apache.log() + "\n--- server:\n" + server_log(srv))
        # The server is fine afterwards, and so is the proxy.
        assert advanced_client(apache).lookup("user", "admin") == "1"
