"""Over-limit request bodies through a TLS proxy (test_nginx.py, test_apache.py):
the client must get the 413 intact, whoever answers it (the proxy's own limit
is 16 MiB like the server's; a tracker may set a lower max_request_bytes, and
then the server answers while the proxy is still sending the body)."""

import base64
import collections
import re
import socket
import ssl
import time

Case = collections.namedtuple("Case", "id body server_limit")

MIB = 1024 * 1024

CASES = [
    # Over both limits (the proxy's 16 MiB and the server's default).
    Case("17MB", 17 * 1000 * 1000 + 17 * MIB // 1000, None),
    # Over the tracker's max_request_bytes (1 MiB), under the proxy's: the server
    # answers 413 as soon as it sees Content-Length, the proxy is still sending.
    Case("2MB-over-tracker-limit", 2 * MIB, MIB),
    Case("12MB-over-tracker-limit", 12 * MIB, MIB),
]


def set_max_request_bytes(tracker, limit):
    config = tracker.home / "config.ini"
    text = config.read_text()
    assert "[xmlrpc_server]" in text
    text = re.sub(r"(?m)^max_request_bytes\s*=.*\n", "", text)
    text = text.replace("[xmlrpc_server]\n",
                        "[xmlrpc_server]\nmax_request_bytes = %d\n" % limit, 1)
    config.write_text(text)


def read_status(f):
    """The status of the first final (non-1xx) response on ``f``; its headers."""
    while True:
        line = f.readline(65536)
        if not line:
            return None, {}
        status = int(line.split()[1])
        headers = {}
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if status >= 200:
            return status, headers
        if status == 100:
            return 100, headers


def post(port, context, path, length, expect):
    """POSTs ``length`` bytes to ``path`` over TLS as admin; returns (status,
    headers, how the send went). With ``expect``, sends `Expect: 100-continue`
    and the body only after `100 Continue`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    f = sock.makefile("rb")
    auth = base64.b64encode(b"admin:admin").decode()
    head = ("POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic %s\r\n"
            "Content-Type: text/xml\r\nContent-Length: %d\r\n%s\r\n"
            % (path, auth, length, "Expect: 100-continue\r\n" if expect else ""))
    sock.sendall(head.encode())
    sent = "head only"
    try:
        if expect:
            sock.settimeout(10)
            status, headers = read_status(f)
            if status != 100:
                return status, headers, sent
            sock.settimeout(60)
        chunk = b"<" + b"x" * (256 * 1024 - 1)
        left = length
        while left:
            n = min(left, len(chunk))
            sock.sendall(chunk[:n])
            left -= n
        sent = "whole body"
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout) as e:
        sent = "send failed after %d of %d bytes: %r" % (length - left, length, e)
    try:
        status, headers = read_status(f)
    except (ConnectionResetError, ssl.SSLError, socket.timeout, OSError) as e:
        return None, {}, sent + "; reading the answer failed: %r" % e
    finally:
        sock.close()
    return status, headers, sent


def check_413(port, context, case, expect, logs):
    start = time.monotonic()
    status, headers, sent = post(port, context, "/demo/xmlrpc", case.body, expect)
    assert status == 413, "%s (expect=%s): got %s (%s) after %.1f s; %s\n%s" % (
        case.id, expect, status, headers, time.monotonic() - start, sent, logs())
