"""Our server behind nginx as a TLS proxy, configured from contrib/nginx.conf.

Runs the "advanced client" of Roundup's XML-RPC doc (SafeTransport with
Referer/Origin/X-Requested-With headers) over https through nginx, and checks
that the server logs the client address from X-Forwarded-For only when the
proxy is trusted.

Needs the ``nginx`` and ``openssl`` programs (``apt-get install -y nginx-light
openssl``); skipped without them. nginx runs in the foreground as a child of
the test, with every path (pid, logs, temp files) in a temporary directory.
The proxy reaches the server from 127.0.0.2 (``proxy_bind``), the client comes
from 127.0.0.1: the server sees 127.0.0.2 unless it trusts the proxy.
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

CONTRIB = REPO / "contrib" / "nginx.conf"
PROXY_ADDR = "127.0.0.2"


def find_program(name):
    return shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name) if os.access(p, os.X_OK)), None)


NGINX = find_program("nginx")
OPENSSL = find_program("openssl")

if not (NGINX and OPENSSL):
    _reason = ("nginx and openssl are needed (apt-get install -y nginx-light openssl); "
               "missing: %s" % ", ".join(n for n, p in (("nginx", NGINX), ("openssl", OPENSSL))
                                         if not p))
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
        "contrib/nginx.conf changed: %r found %d times" % (old, found))
    return text.replace(old, new)


def nginx_config(tmp, upstream_port, https_port, http_port, cert, key):
    """contrib/nginx.conf, pointed at our server and at files in ``tmp``, wrapped
    in the main and http contexts that /etc/nginx/nginx.conf would provide."""
    site = CONTRIB.read_text()
    site = substitute(site, "server 127.0.0.1:8000;", "server 127.0.0.1:%d;" % upstream_port, 1)
    site = substitute(site, "listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % https_port, 1)
    site = substitute(site, "listen [::]:443 ssl;", "", 1)
    site = substitute(site, "listen 80;", "listen 127.0.0.1:%d;" % http_port, 1)
    site = substitute(site, "listen [::]:80;", "", 1)
    site = substitute(site, "server_name tracker.example.com;", "server_name localhost;")
    site = substitute(site, "/etc/ssl/certs/tracker.example.com.pem", str(cert), 1)
    site = substitute(site, "/etc/ssl/private/tracker.example.com.key", str(key), 1)
    site = substitute(site, "proxy_pass http://roundup_xmlrpc;",
                      "proxy_pass http://roundup_xmlrpc;\n        proxy_bind %s;" % PROXY_ADDR)
    temp = "\n".join("    %s_temp_path %s;" % (kind, tmp / kind)
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    return """%sworker_processes 1;
pid %s;
error_log %s info;
events { worker_connections 64; }
http {
    access_log %s;
%s
%s
}
""" % (user, tmp / "nginx.pid", tmp / "error.log", tmp / "access.log", temp, site)


def make_cert(tmp):
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def wait_for_port(port, proc, log, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("nginx exited with %s:\n%s" % (proc.returncode, log.read_text()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not listen on %d within %ss:\n%s" % (port, timeout, log.read_text()))


class Nginx:
    def __init__(self, tmp, upstream_port):
        self.tmp = tmp
        self.https_port = free_port()
        self.http_port = free_port()
        self.cert, key = make_cert(tmp)
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(nginx_config(tmp, upstream_port, self.https_port,
                                          self.http_port, self.cert, key))
        self.error_log = tmp / "error.log"
        test = subprocess.run([NGINX, "-t", "-e", str(self.error_log), "-p", str(tmp),
                               "-c", str(self.conf)], capture_output=True, text=True,
                              timeout=60)
        assert test.returncode == 0, "nginx -t: %s\n%s" % (test.stderr, self.conf.read_text())
        self.proc = subprocess.Popen(
            [NGINX, "-e", str(self.error_log), "-p", str(tmp), "-c", str(self.conf),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.https_port, self.proc, self.error_log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ssl_context(self):
        return ssl.create_default_context(cafile=str(self.cert))


@contextlib.contextmanager
def proxied_server(target, tmp_path, trusted, max_request_bytes=None):
    """(server, nginx) with a tracker set up like the doc's demo tracker (users
    admin/admin and demo/demo, issue1); the server trusts the proxy or not."""
    tracker = target.make_tracker(tmp_path / "demo")
    if max_request_bytes:
        proxy_limits.set_max_request_bytes(tracker, max_request_bytes)
    command = target.server_command(tracker)
    if trusted:
        command += ["--trusted-proxy", PROXY_ADDR]
    with Server(target, tracker, command=command) as srv:
        setup = srv.proxy("admin", ADMIN_PASSWORD)
        setup.set("user1", "password=admin")
        admin = srv.proxy("admin", "admin")
        assert admin.create("user", "username=demo", "password=demo",
                            "roles=User", "address=demo@example.com") == "3"
        assert admin.create("issue", "title=yes, it works", "priority=1",
                            "status=2") == "1"
        tmp = tmp_path / "nginx"
        tmp.mkdir()
        nginx = Nginx(tmp, srv.port)
        try:
            yield srv, nginx
        finally:
            nginx.stop()


@pytest.fixture(params=[True, False], ids=["trusted", "untrusted"])
def proxied(request, ours_target, tmp_path):
    """(trusted, server, nginx), once with and once without --trusted-proxy."""
    with proxied_server(ours_target, tmp_path, request.param) as (srv, nginx):
        yield request.param, srv, nginx


@pytest.fixture
def untrusted_proxied(ours_target, tmp_path):
    """(server, nginx), the server not trusting the proxy (its log shows the
    proxy's address and port)."""
    with proxied_server(ours_target, tmp_path, False) as pair:
        yield pair


def advanced_client(nginx):
    """The doc's advanced client, with https to nginx and an SSL context that
    trusts the test certificate."""
    hostname = "localhost:%d" % nginx.https_port
    path = "/demo"
    user_pw = "admin:admin"

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
        'https://%s@%s%s/xmlrpc' % (user_pw, hostname, path),
        transport=SpecialTransport(context=nginx.ssl_context()),
        verbose=False,
        allow_none=True)


def server_log(srv):
    srv._stderr.flush()
    return srv.log.read_text(errors="replace")


def test_advanced_client_through_nginx(proxied):
    trusted, srv, nginx = proxied
    roundup_server = advanced_client(nginx)

    schema = roundup_server.schema()
    assert sorted(schema) == ["file", "issue", "keyword", "msg", "priority",
                              "query", "status", "user"]
    assert roundup_server.display('user2', 'username') == {"username": "anonymous"}
    assert roundup_server.display('issue1', 'status') == {"status": "2"}
    assert roundup_server.filter('user', ['1', '2', '3'], {'username': 'demo'}) == ["3"]

    # this will fail with a fault
    assert fault(roundup_server.filter, 'usr', ['0', '2', '3'],
                 {'username': 'demo'}) == (
        1, "<class 'KeyError'>:'There is no class called \"usr\"'")

    # The proxy replaces a client's own X-Forwarded-For by the client address.
    conn = http.client.HTTPSConnection("localhost", nginx.https_port,
                                       context=nginx.ssl_context(), timeout=30)
    conn.request("GET", "/health", headers={"X-Forwarded-For": "198.51.100.66"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"ok\n")
    conn.close()

    # /metrics is not forwarded from the internet.
    conn = http.client.HTTPSConnection("localhost", nginx.https_port,
                                       context=nginx.ssl_context(), timeout=30)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 404 and b"roundup_xmlrpc" not in resp.read()
    conn.close()

    log = server_log(srv)
    assert "path=/metrics" not in log
    calls = re.findall(r"call peer=(\S+) user=admin method=(\S+)", log)
    assert [m for _, m in calls][-5:] == ["schema", "display", "display", "filter", "filter"]
    peers = {p for p, _ in calls[-5:]}
    health = re.findall(r"request peer=(\S+) method=GET path=/health status=200", log)
    assert len(health) == 1
    if trusted:
        # The address nginx put in X-Forwarded-For (no port: ":0").
        assert peers == {"127.0.0.1:0"}, log
        assert health == ["127.0.0.1:0"], log
    else:
        assert {p.rsplit(":", 1)[0] for p in peers} == {PROXY_ADDR}, log
        assert health[0].startswith(PROXY_ADDR + ":"), log
    assert "198.51.100.66" not in log


def test_plain_http_redirects_to_https(untrusted_proxied):
    srv, nginx = untrusted_proxied
    conn = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=30)
    conn.request("POST", "/demo/xmlrpc", body=b"<x/>")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 301
    assert resp.getheader("Location") == "https://localhost/demo/xmlrpc"


def test_upstream_keepalive(untrusted_proxied):
    """Calls through nginx reuse its kept-alive connection to the server."""
    srv, nginx = untrusted_proxied
    for _ in range(5):
        # A new client connection to nginx each time.
        assert advanced_client(nginx).lookup("user", "admin") == "1"
    log = server_log(srv)
    peers = re.findall(r"call peer=(\S+) user=admin method=lookup", log)
    assert len(peers) == 5
    assert len(set(peers)) == 1, "nginx opened a connection per request: %s" % peers


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
@pytest.mark.parametrize("case", proxy_limits.CASES, ids=[c.id for c in proxy_limits.CASES])
def test_over_limit_body_is_answered_413(ours_target, tmp_path, case, expect):
    """Bodies over nginx's limit or the tracker's reach the client as 413 (see
    proxy_limits.py); nginx and the server are fine afterwards."""
    with proxied_server(ours_target, tmp_path, False,
                        max_request_bytes=case.server_limit) as (srv, nginx):
        proxy_limits.check_413(
            nginx.https_port, nginx.ssl_context(), case, expect,
            lambda: nginx.error_log.read_text(errors="replace") + "\n--- server:\n"
            + server_log(srv))
        assert advanced_client(nginx).lookup("user", "admin") == "1"
