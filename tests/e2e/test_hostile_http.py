"""Hostile HTTP over raw sockets (issue 6, HTTP part).

For every attack: a 4xx (or, where the request is legitimate HTTP, a clean
answer) within a time bound, the server then answers a normal call promptly,
its memory stays bounded, and smuggled/embedded writes never run.

The limits checked are ours (ServerConfig defaults: body 16 MiB, head 64 KiB /
100 fields, header timeout 10 s, body timeout 30 s, idle 60 s, 1024
connections); Roundup's single-threaded standalone server has none of them,
hence ``ours_only``.
"""

import base64
import gzip
import os
import socket
import struct
import threading
import time
import zlib

import pytest

from harness import ADMIN_PASSWORD, Server, set_config_option
from hostile_util import (
    RssWatch,
    _attack_counter,  # noqa: F401 - autouse fixture (attack counter)
    assert_healthy,
    assert_no_leak,
    auth_header,
    call_body,
    connect,
    exchange,
    first_response,
    open_fds,
    parse_answer,
    pbkdf2_password,
    parse_responses,
    proxy,
    read_response,
    recv_all,
    request_bytes,
)

pytestmark = pytest.mark.ours_only

MB = 1 << 20


def marker_exists(server, name):
    return name in proxy(server).list("keyword")


LIST = call_body("list", "status")


def smuggled(server, name):
    """A complete second request that would create keyword ``name``."""
    return request_bytes(server, call_body("create", "keyword", "name=" + name))


def chunked(body):
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


# Each case: builder(server) -> raw bytes, allowed statuses of the first
# response (None = the server may also close without answering), and an
# optional keyword name that must not exist afterwards.
def _cases():
    c = {}

    def add(name, build, statuses, marker=None):
        c[name] = (build, statuses, marker)

    R = request_bytes
    # Content-Length
    add("cl_overflow", lambda s: R(s, LIST, content_length=False, headers=[
        ("Content-Length", "99999999999999999999999")]), {400, 413})
    add("cl_negative", lambda s: R(s, LIST, content_length=False, headers=[
        ("Content-Length", "-1")]), {400})
    add("cl_not_a_number", lambda s: R(s, LIST, content_length=False, headers=[
        ("Content-Length", "12abc")]), {400})
    add("cl_plus_sign", lambda s: R(s, LIST, content_length=False, headers=[
        ("Content-Length", "+%d" % len(LIST))]), {400})
    add("cl_list", lambda s: R(s, LIST, content_length=False, headers=[
        ("Content-Length", "%d, 5" % len(LIST))]), {400})
    add("cl_two_different", lambda s: R(s, LIST, headers=[
        ("Content-Length", str(len(LIST) + 5))]), {400})
    add("cl_over_limit_no_body", lambda s: R(s, b"", content_length=False, headers=[
        ("Content-Length", str(17 * MB))]), {413})
    add("cl_over_limit_expect_100", lambda s: R(s, b"", content_length=False, headers=[
        ("Content-Length", str(17 * MB)), ("Expect", "100-continue")]), {413})
    add("cl_huge_expect_100", lambda s: R(s, b"", content_length=False, headers=[
        ("Content-Length", str(1 << 62)), ("Expect", "100-continue")]), {413, 400})
    # Transfer-Encoding and CL+TE smuggling shapes: either refused (400/501)
    # or answered once with the connection closed; the smuggled request
    # behind the chunked body must never run.
    for tag, hdrs in {
        "cl_te": [("Transfer-Encoding", "chunked")],
        "te_leading_space": [("Transfer-Encoding", " chunked")],
        "te_capitalised": [("Transfer-Encoding", "Chunked")],
        "te_twice": [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
        "te_identity_then_chunked": [("Transfer-Encoding", "identity"),
                                     ("Transfer-Encoding", "chunked")],
        "te_tab": [b"Transfer-Encoding:\tchunked"],
        "te_chunked_identity": [("Transfer-Encoding", "chunked, identity")],
        "te_xchunked": [("Transfer-Encoding", "xchunked")],
        "te_space_before_colon": [b"Transfer-Encoding : chunked"],
        "te_obs_fold": [b"X-Foo: bar\r\n Transfer-Encoding: chunked"],
        "te_nul": [b"Transfer-Encoding: chunked\x00"],
        "te_vertical_tab": [b"Transfer-Encoding:\x0bchunked"],
    }.items():
        name = "hxsmug-" + tag.replace("_", "")
        add("smuggle_" + tag,
            (lambda h, n: lambda s: R(s, chunked(LIST) + smuggled(s, n), headers=h))(hdrs, name),
            {200, 400, 501}, name)
    add("smuggle_te_cl_small", lambda s: R(
        s, chunked(LIST) + smuggled(s, "hxsmug-tecl"), content_length=False,
        headers=[("Transfer-Encoding", "chunked"), ("Content-Length", "4")]),
        {200, 400}, "hxsmug-tecl")
    add("smuggle_te_http10", lambda s: R(
        s, chunked(LIST) + smuggled(s, "hxsmug-http10"), content_length=False,
        version="HTTP/1.0", headers=[("Transfer-Encoding", "chunked")]),
        {400}, "hxsmug-http10")
    # Chunked framing errors
    for tag, body in {
        "chunk_size_overflow": b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "chunk_size_negative": b"-1\r\nabc\r\n0\r\n\r\n",
        "chunk_size_not_hex": b"zz\r\nabc\r\n0\r\n\r\n",
        "chunk_missing_crlf": b"3\r\nabcdef\r\n0\r\n\r\n",
        "chunk_extension_flood": b"3;" + b"e" * 100_000 + b"\r\nabc\r\n0\r\n\r\n",
        "chunk_trailer_flood": b"0\r\n" + b"X-T: v\r\n" * 20_000 + b"\r\n",
    }.items():
        add(tag, (lambda b: lambda s: R(s, b, content_length=False, headers=[
            ("Transfer-Encoding", "chunked")]))(body), {400, 413, 431, 200})
    # Request line and head
    add("uri_100k", lambda s: R(s, LIST, path="/demo/xmlrpc?" + "a" * 100_000),
        {414, 431, 400})
    add("header_70KiB", lambda s: R(s, LIST, headers=[("X-Big", "a" * 70_000)]), {431})
    add("header_name_70KiB", lambda s: R(s, LIST, headers=[("X" * 70_000, "v")]),
        {431, 400})
    add("headers_200", lambda s: R(s, LIST, headers=[
        ("X-H%d" % i, "v") for i in range(200)]), {431})
    add("header_many_continuations", lambda s: R(s, LIST, headers=[
        b"X-A: a" + b"\r\n b" * 5000]), {400, 431})
    add("header_nul_value", lambda s: R(s, LIST, headers=[b"X-A: a\x00b"]), {400})
    add("header_bad_name", lambda s: R(s, LIST, headers=[b"X A(b): c"]), {400})
    add("header_no_colon", lambda s: R(s, LIST, headers=[b"JustAWord"]), {400})
    add("header_utf8_value", lambda s: R(s, LIST, headers=[
        ("X-U", "\u00e9\u4e2d".encode())]), {200, 400})
    add("bare_lf_line_ends", lambda s: R(s, LIST).replace(b"\r\n", b"\n"), {200, 400})
    add("lowercase_method", lambda s: R(s, LIST, method="post"), {400, 405, 501})
    add("unknown_method", lambda s: R(s, LIST, method="BREW"), {405, 400, 501})
    add("long_method", lambda s: R(s, LIST, method="X" * 70_000), {400, 405, 431, 501})
    add("http_version_2", lambda s: R(s, LIST, version="HTTP/2.0"), {400, 505})
    add("http_version_garbage", lambda s: R(s, LIST, version="HTTP/1.x"), {400, 505})
    add("http2_preface", lambda s: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64,
        {400, 405, 505, None})
    add("tls_client_hello", lambda s: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" +
        b"\x00" * 200, {400, None})
    add("request_line_only_spaces", lambda s: b"    \r\n\r\n", {400, None})
    add("asterisk_target", lambda s: R(s, LIST, path="*"), {400, 404})
    add("absolute_form_target", lambda s: R(
        s, LIST, path="http://evil.example/demo/xmlrpc"), {200, 400, 404})
    add("path_traversal", lambda s: R(s, LIST, path="/../../../etc/passwd"), {404, 400})
    add("path_encoded_traversal", lambda s: R(s, LIST, path="/%2e%2e/%2e%2e/etc/passwd"),
        {404, 400})
    add("path_nul", lambda s: R(s, LIST, path="/demo%00/xmlrpc"), {404, 400})
    add("path_bad_percent", lambda s: R(s, LIST, path="/%zz%/xmlrpc"), {404, 400})
    add("path_raw_utf8", lambda s: R(s, LIST).replace(
        b"/demo/xmlrpc", "/d\u00e9mo/xmlrpc".encode(), 1), {404, 400})
    # Methods and paths
    for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"):
        add("method_" + m, (lambda m: lambda s: R(s, b"" if m in ("GET", "HEAD") else LIST,
                                                   method=m))(m), {405})
    add("method_CONNECT", lambda s: R(s, b"", method="CONNECT", path="127.0.0.1:22"),
        {400, 404, 405})
    add("post_health", lambda s: R(s, LIST, path="/health"), {405})
    add("unknown_tracker_path", lambda s: R(s, LIST, path="/nosuch/xmlrpc"), {404})
    # Content-Encoding
    add("content_encoding_br", lambda s: R(s, LIST, headers=[
        ("Content-Encoding", "br")]), {415})
    add("content_encoding_gzip_twice", lambda s: R(
        s, gzip.compress(gzip.compress(LIST)), headers=[("Content-Encoding", "gzip, gzip")]),
        {415})
    add("content_encoding_corrupt_gzip", lambda s: R(s, b"\x1f\x8b\x08\x00garbage" * 10,
                                                       headers=[("Content-Encoding", "gzip")]),
        {400})
    add("content_encoding_truncated_gzip", lambda s: R(
        s, gzip.compress(LIST)[:-12], headers=[("Content-Encoding", "gzip")]), {400})
    add("content_encoding_gzip_bad_crc", lambda s: R(
        s, gzip.compress(LIST)[:-8] + b"\0" * 8, headers=[("Content-Encoding", "gzip")]),
        {400})
    return c


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_http(server, case):
    build, statuses, marker = CASES[case]
    raw = build(server)
    with RssWatch(server, limit_mb=100):
        resp, elapsed = first_response(server, raw, wait=8)
    assert elapsed < 6, "no answer/close within 6 s (%.1f s)" % elapsed
    if resp is None:
        assert None in statuses, "connection closed without a response"
    else:
        assert resp.status in statuses, resp
        if resp.status == 200:
            ans = parse_answer(resp.body)
            if ans[0] == "fault":
                assert_no_leak(ans[2])
        assert b"root:" not in resp.body
    assert_healthy(server)
    if marker:
        assert not marker_exists(server, marker), "smuggled request ran"


def test_control_99_headers_and_gzip_request_work(server):
    """Controls: legal requests near the limits are served."""
    raw = request_bytes(server, LIST, headers=[("X-H%d" % i, "v") for i in range(90)])
    resp, _ = first_response(server, raw)
    assert resp.status == 200 and parse_answer(resp.body)[0] == "ok"
    raw = request_bytes(server, gzip.compress(LIST), headers=[("Content-Encoding", "gzip")])
    resp, _ = first_response(server, raw)
    assert resp.status == 200 and parse_answer(resp.body)[0] == "ok"


# --------------------------------------------------------------------------
# Big bodies


def gzip_bomb(gib=1):
    """A gzip stream of ``gib`` GiB of zeros (~1 MB), built without ever
    holding the decompressed data: a full flush makes every 1 MiB block of
    zeros compress to the same bytes."""
    zeros = b"\0" * MB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    n = 1024 * gib
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(zeros, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first + block * (n - 1) +
            c.flush() + struct.pack("<II", crc, (n * MB) & 0xFFFFFFFF))


@pytest.fixture(scope="module")
def bomb():
    return gzip_bomb(1)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_gzip_bomb(server, bomb, framing):
    if framing == "chunked":
        body = b"".join(b"%x\r\n%s\r\n" % (min(65536, len(bomb) - i), bomb[i:i + 65536])
                        for i in range(0, len(bomb), 65536)) + b"0\r\n\r\n"
        raw = request_bytes(server, body, content_length=False, headers=[
            ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")])
    else:
        raw = request_bytes(server, bomb, headers=[("Content-Encoding", "gzip")])
    with RssWatch(server, limit_mb=200):
        resp, elapsed = first_response(server, raw, wait=20)
    assert resp is not None and resp.status == 413, resp
    assert elapsed < 10, elapsed
    assert_healthy(server)


def test_gzip_many_members_bomb(server):
    """10 000 concatenated gzip members of 4 KiB of zeros each = 40 MiB."""
    member = gzip.compress(b"\0" * 4096)
    raw = request_bytes(server, member * 10_000, headers=[("Content-Encoding", "gzip")])
    with RssWatch(server, limit_mb=200):
        resp, elapsed = first_response(server, raw, wait=20)
    assert resp is not None and resp.status == 413, resp
    assert elapsed < 10
    assert_healthy(server)


def test_chunked_body_past_the_limit(server):
    """A chunked body (no Content-Length) that never ends: 413 once 16 MiB
    are exceeded, while the client is still sending."""
    sock = connect(server, timeout=20)
    head = request_bytes(server, b"", content_length=False,
                         headers=[("Transfer-Encoding", "chunked")])
    chunk = b"%x\r\n" % MB + b"x" * MB + b"\r\n"
    stop = threading.Event()

    def sender():
        try:
            sock.sendall(head)
            for _ in range(64):
                if stop.is_set():
                    return
                sock.sendall(chunk)
        except OSError:
            pass

    with RssWatch(server, limit_mb=200):
        th = threading.Thread(target=sender, daemon=True)
        t0 = time.monotonic()
        th.start()
        data, how = recv_all(sock, t0 + 20)
        stop.set()
        elapsed = time.monotonic() - t0
        sock.close()
        th.join(5)
    resps, _ = parse_responses(data)
    assert resps and resps[0].status == 413, (data[:200], how)
    assert elapsed < 15
    assert_healthy(server)


# --------------------------------------------------------------------------
# Pipelining


STATUS_NAMES = ["unread", "deferred", "chatting", "need-eg", "in-progress"]


def test_pipelining_answers_all_in_order(server):
    raw = b"".join(request_bytes(server, call_body("lookup", "status", n))
                   for n in STATUS_NAMES)
    resps, rest, how, elapsed = exchange(server, raw, wait=1.5)
    assert len(resps) == len(STATUS_NAMES), (resps, rest[:200], how)
    got = [parse_answer(r.body) for r in resps]
    assert got == [("ok", str(i + 1)) for i in range(len(STATUS_NAMES))], got


def test_pipelining_mixed_with_errors(server):
    """A 404 and a health check in the middle do not disturb the order; a
    malformed request ends the connection after the earlier answers. (An
    error answered before its body was read closes the connection by design,
    so the 404 here has an empty body.)"""
    R = request_bytes
    raw = (R(server, call_body("lookup", "status", "unread")) +
           R(server, b"", path="/nosuch") +
           R(server, b"", method="GET", path="/health") +
           R(server, call_body("lookup", "status", "deferred")) +
           b"GARBAGE / HTTP/1.1\r\nX\r\n\r\n" +
           R(server, call_body("create", "keyword", "name=hx-after-garbage")))
    resps, rest, how, elapsed = exchange(server, raw, wait=5)
    statuses = [r.status for r in resps]
    assert statuses[:4] == [200, 404, 200, 200], resps
    assert parse_answer(resps[0].body) == ("ok", "1")
    assert parse_answer(resps[3].body) == ("ok", "2")
    assert statuses[4:] in ([400], []), statuses
    assert how == "eof", "connection not closed after the malformed request"
    assert not marker_exists(server, "hx-after-garbage")


def test_pipelined_flood_without_reading(server):
    """2000 pipelined schema() calls (a few KB of answer each) from a client
    that never reads: memory stays bounded (backpressure) and others are
    served."""
    one = request_bytes(server, call_body("schema"))
    sock = connect(server, timeout=5)
    sent = [0]

    def sender():
        try:
            for _ in range(2000):
                sock.sendall(one)
                sent[0] += 1
        except OSError:
            pass

    with RssWatch(server, limit_mb=100):
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        time.sleep(2)
        for _ in range(5):
            assert_healthy(server, limit=1.0)
        sock.close()
        th.join(5)
    assert_healthy(server)


# --------------------------------------------------------------------------
# Authorization


def b64(raw):
    return base64.b64encode(raw).decode()


AUTH_CASES = {
    "basic_alone": ("Basic", {400}),
    "basic_space": ("Basic ", {400}),
    "basic_bangs": ("Basic !!!", {400}),
    "basic_bangs4": ("Basic !!!!", {400}),
    "basic_bad_padding": ("Basic YWRtaW46c2Vrcml0=", {400}),
    "basic_trailing_junk": ("Basic " + b64(b"admin:sekrit") + " junk", {400}),
    "basic_decoded_invalid_utf8": ("Basic " + b64(b"adm\xffin:sekrit"), {400}),
    "basic_raw_invalid_utf8": (b"Basic \xff\xfe\xfd", {400}),
    "basic_control_chars": ("Basic " + b64(b"admin:sekrit\x00"), {400}),
    "basic_newline_user": ("Basic " + b64(b"admin\n:sekrit"), {400}),
    "basic_10KB": ("Basic " + "A" * 10_000, {400}),
    "basic_10KB_valid_b64": ("Basic " + b64(b"admin:" + b"x" * 7500), {400, 403}),
    # ours: no ':' is malformed (400); Roundup: admin with no password -> 403
    "basic_user_only": ("Basic " + b64(b"admin"), {400, 403}),
    "basic_wrong_password": ("Basic " + b64(b"admin:wrong"), {403}),
    "basic_case_user": ("Basic " + b64(b"ADMIN:" + ADMIN_PASSWORD.encode()), {403}),
    "basic_padded_user": ("Basic " + b64(b" admin:" + ADMIN_PASSWORD.encode()), {403}),
    "basic_sql_user": ("Basic " + b64(b"admin' --:x"), {403}),
    "basic_sql_user2": ("Basic " + b64(b"' or '1'='1:' or '1'='1"), {403}),
    "basic_nonexistent": ("Basic " + b64(b"nosuchuser:x"), {403}),
    "basic_empty_user_pw": ("Basic " + b64(b":sekrit"), {403}),
    "basic_anonymous_empty_pw": ("Basic " + b64(b"anonymous:"), {403}),
    "bearer": ("Bearer abc.def.ghi", {200, 401, 403}),
    "digest": ('Digest username="admin", realm="x", response="0"', {200, 401, 403}),
    "scheme_only_garbage": ("\x7f\x7f", {200, 400, 403}),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_malformed_authorization(server, case):
    value, statuses = AUTH_CASES[case]
    if isinstance(value, str):
        value = value.encode("latin-1")
    raw = request_bytes(server, call_body("create", "keyword", "name=hxauth-" + case),
                        auth=None, headers=[(b"Authorization: " + value)])
    resp, elapsed = first_response(server, raw)
    assert elapsed < 10  # one PBKDF2 (250 000 rounds) on a loaded debug build
    assert resp is not None
    assert resp.status in statuses, resp
    if resp.status == 200:
        # Treated as anonymous, which may not call anything in classic.
        assert parse_answer(resp.body)[:2] == ("fault", 403), resp.body[:300]
    assert_healthy(server)
    assert not marker_exists(server, "hxauth-" + case)


def test_two_authorization_headers_do_not_mix(server):
    """joe's name with admin's password in two headers must not log in."""
    raw = request_bytes(server, call_body("set", "user3", "roles=Admin"), auth=None,
                        headers=[("Authorization", "Basic " + b64(b"joe:" + b"sekrit")),
                                 ("Authorization", auth_header())])
    resp, _ = first_response(server, raw)
    assert resp is not None and resp.status in (400, 403), resp
    assert proxy(server).display("user3", "roles") == {"roles": "User"}


def test_failed_login_limiter_does_not_lock_out_others(pristine_server):
    """Hammering one account with wrong passwords ends in 429 for that
    account; a different user from the same address still gets in."""
    srv = pristine_server
    proxy(srv).create("user", "username=victim", "password=right", "roles=User")
    statuses = []
    for i in range(15):
        raw = request_bytes(srv, LIST, auth=("victim", "wrong%d" % i))
        resp, _ = first_response(srv, raw)
        statuses.append(resp.status)
    assert 429 in statuses, statuses
    assert set(statuses) <= {403, 429}, statuses
    raw = request_bytes(srv, LIST, auth=("victim", "right"))
    resp, _ = first_response(srv, raw)
    assert resp.status == 429, "locked-out account still logs in: %s" % resp
    assert_healthy(srv)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def failed_login_limit(tracker):
    import configparser
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(tracker.home / "config.ini")
    return cp.getint("web", "api_failed_login_limit", fallback=4)


def test_concurrent_wrong_passwords_are_limited_before_hashing(pristine_server):
    """20 concurrent wrong passwords for one account: at most about
    ``api_failed_login_limit`` of them may cost a password hash; the rest
    must be refused (429) without hashing."""
    srv = pristine_server
    # Pre-hashed passwords with a known, moderate cost keep the test short.
    for name in ("target", "calib"):
        proxy(srv).create("user", "username=" + name, "roles=User",
                          "password=" + pbkdf2_password("right", 300_000))
    limit = failed_login_limit(srv.tracker)
    pid = srv.proc.pid
    # Calibrate: the CPU cost of one failed login (one PBKDF2 verification).
    c0 = cpu_seconds(pid)
    for i in range(2):
        resp, _ = first_response(srv, request_bytes(srv, LIST, auth=("calib", "bad%d" % i)))
        assert resp.status == 403
    one_hash = max((cpu_seconds(pid) - c0) / 2, 0.02)
    raw = request_bytes(srv, LIST, auth=("target", "wrong"))
    n = 20
    socks = [connect(srv, timeout=60) for _ in range(n)]
    c0 = cpu_seconds(pid)
    t0 = time.monotonic()
    for s in socks:
        s.sendall(raw)
    statuses = []
    for s in socks:
        resp = read_response(s, t0 + 60)
        statuses.append(resp.status if resp else None)
        s.close()
    used = cpu_seconds(pid) - c0
    elapsed = time.monotonic() - t0
    assert set(statuses) <= {403, 429}, statuses
    assert statuses.count(403) <= limit, statuses
    assert used <= (limit + 2) * one_hash, (
        "%d concurrent wrong passwords cost %.1f CPU-s (one hash = %.2f s, "
        "limit %d): answered %s in %.1f s" % (n, used, one_hash, limit,
                                              sorted(set(statuses)), elapsed))


def test_forwarded_headers_do_not_evade_the_address_limiter(pristine_server):
    """Without trusted proxies, X-Forwarded-For / Forwarded are ignored: 50
    failed logins under ever-changing fake client addresses (and user names,
    so that the per-user limit never triggers) still hit the per-address
    limit of the real peer."""
    srv = pristine_server
    limit = failed_login_limit(srv.tracker)
    statuses = []
    for i in range(limit * 10 + 10):
        raw = request_bytes(srv, LIST, auth=("ghost%d" % i, "x"), headers=[
            ("X-Forwarded-For", "10.%d.%d.%d" % (i % 250, i // 250, i % 7)),
            ("Forwarded", "for=192.0.2.%d" % (i % 250)),
            ("X-Real-IP", "198.51.100.%d" % (i % 250))])
        resp, _ = first_response(srv, raw)
        statuses.append(resp.status)
    assert set(statuses) <= {403, 429}, statuses
    assert statuses[-1] == 429 and statuses.count(429) >= 5, statuses


# --------------------------------------------------------------------------
# Slow clients: slowloris, lying Content-Length, dribbled bodies (one test so
# that their timeouts run in parallel).


@pytest.fixture
def uncapped_server(target, make_tracker):
    """A fresh server without the per-address connection cap (64), for the
    floods below, which come from one address (127.0.0.1) and test the other
    limits; the per-address cap is tested in test_security_requests.py."""
    tracker = make_tracker()
    set_config_option(tracker, "xmlrpc_server", "max_connections_per_address", "0")
    with Server(target, tracker) as srv:
        yield srv


def _now():
    return time.monotonic()


def test_slow_clients_do_not_block_others(uncapped_server):
    srv = uncapped_server
    fds_before = open_fds(srv.proc.pid)
    results = {"loris": [], "lying": [], "dribble": [], "halfhead": []}
    lock = threading.Lock()
    t_start = _now()

    def record(kind, sock, t_open, data, how):
        with lock:
            results[kind].append((_now() - t_open, data, how))

    def slowloris(i):
        try:
            s = connect(srv, timeout=40)
        except OSError as e:
            record("loris", None, _now(), b"", "connect-failed %s" % e)
            return
        t_open = _now()
        head = request_bytes(srv, LIST)[:-2 - len(LIST)]  # never completes
        try:
            for j, byte in enumerate(head):
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                try:
                    b = s.recv(4096)
                    record("loris", s, t_open, b, "eof" if not b else "data")
                    return
                except socket.timeout:
                    pass
                if _now() - t_open > 25:
                    record("loris", s, t_open, b"", "still-open")
                    return
        except (ConnectionResetError, BrokenPipeError):
            record("loris", s, t_open, b"", "reset")
        finally:
            s.close()

    def lying(i):
        s = connect(srv, timeout=45)
        t_open = _now()
        raw = request_bytes(srv, b"", content_length=False,
                            headers=[("Content-Length", "1000")]) + b"<methodCall>"
        try:
            s.sendall(raw)
            data, how = recv_all(s, t_open + 40)
        finally:
            s.close()
        record("lying", s, t_open, data, how)

    def dribble(i):
        s = connect(srv, timeout=45)
        t_open = _now()
        body = LIST
        head = request_bytes(srv, body)[:-len(body)]
        try:
            s.sendall(head)
            data = b""
            how = "timeout"
            for byte in body:
                s.settimeout(2.0)
                try:
                    b = s.recv(4096)
                    data, how = b, ("eof" if not b else "data")
                    if b:
                        more, how = recv_all(s, _now() + 3)
                        data += more
                    break
                except socket.timeout:
                    pass
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    how = "reset"
                    break
                if _now() - t_open > 40:
                    break
        finally:
            s.close()
        record("dribble", s, t_open, data, how)

    def halfhead(i):
        s = connect(srv, timeout=40)
        t_open = _now()
        try:
            s.sendall(b"POST /demo/xmlrpc HTTP/1.1\r\nHost: x\r\n")
            data, how = recv_all(s, t_open + 25)
        finally:
            s.close()
        record("halfhead", s, t_open, data, how)

    threads = ([threading.Thread(target=slowloris, args=(i,), daemon=True) for i in range(220)] +
               [threading.Thread(target=lying, args=(i,), daemon=True) for i in range(5)] +
               [threading.Thread(target=dribble, args=(i,), daemon=True) for i in range(3)] +
               [threading.Thread(target=halfhead, args=(i,), daemon=True) for i in range(20)])
    with RssWatch(srv, limit_mb=100):
        for t in threads:
            t.start()
        time.sleep(1.0)
        # Meanwhile a normal client keeps getting prompt answers.
        latencies = []
        while any(t.is_alive() for t in threads) and _now() - t_start < 45:
            latencies.append(assert_healthy(srv, limit=2.0))
            time.sleep(0.25)
        for t in threads:
            t.join(5)
    assert max(latencies) < 2.0, max(latencies)
    assert len(latencies) > 20
    # Slowloris and half heads: closed without response by the 10 s header
    # timeout (a little slack for scheduling).
    for kind in ("loris", "halfhead"):
        outcomes = results[kind]
        assert len(outcomes) == (220 if kind == "loris" else 20)
        bad = [(round(t, 1), d[:40], how) for t, d, how in outcomes
               if how not in ("eof", "reset") or t > 14]
        assert not bad, "%s connections not closed in time: %r" % (kind, bad[:5])
        # ... and really held until then (not refused at once).
        early = [round(t, 1) for t, _, _ in outcomes if t < 8]
        assert not early, "%s connections closed early: %r" % (kind, early[:5])
    # Lying Content-Length and dribbled bodies: 408 after the 30 s body timeout.
    for kind in ("lying", "dribble"):
        for t, data, how in results[kind]:
            resps, _ = parse_responses(data)
            assert resps and resps[0].status == 408, (kind, data[:200], how)
            assert 25 < t < 36, (kind, t)
    time.sleep(0.5)
    # The authenticated lying and dribbling clients were authorized (a login
    # read each, at once) before their bodies stalled: the store keeps up to 16
    # idle SQLite reader connections (2 fds each) from that burst; on PostgreSQL
    # the pool keeps up to 24 connections (a socket and its runtime's epoll and
    # waker: 3 fds each). 248 leaked sockets would be far more.
    pooled = 3 * 24 if srv.tracker.backend == "postgresql" else 2 * 16
    assert open_fds(srv.proc.pid) <= fds_before + 5 + pooled, "file descriptors leaked"


# --------------------------------------------------------------------------
# Connection floods


def test_idle_keepalive_flood(uncapped_server):
    """500 keep-alive connections, each after one answered request, sit idle;
    a normal client is still served promptly; closing them frees the fds."""
    srv = uncapped_server
    # Warm the credential cache: 500 concurrent first logins would each run
    # PBKDF2 (~0.6 s of CPU), which is the subject of another test.
    assert_healthy(srv)
    fds_before = open_fds(srv.proc.pid)
    socks = []
    with RssWatch(srv, limit_mb=100):
        try:
            raw = request_bytes(srv, call_body("lookup", "status", "unread"))
            for i in range(500):
                s = connect(srv, timeout=10)
                s.sendall(raw)
                socks.append(s)
            for s in socks:
                buf = b""
                while not parse_responses(buf)[0]:
                    b = s.recv(65536)
                    assert b, "idle connection closed early"
                    buf += b
                assert parse_answer(parse_responses(buf)[0][0].body) == ("ok", "1")
            assert open_fds(srv.proc.pid) >= fds_before + 450
            for _ in range(5):
                assert_healthy(srv, limit=1.0)
        finally:
            for s in socks:
                s.close()
    # The store keeps up to 16 idle SQLite reader connections (2 fds each)
    # after a burst of concurrent calls; 500 leaked sockets would be far more.
    slack = 40
    deadline = _now() + 5
    while open_fds(srv.proc.pid) > fds_before + slack and _now() < deadline:
        time.sleep(0.1)
    assert open_fds(srv.proc.pid) <= fds_before + slack, "fds not released"
    assert_healthy(srv)


def test_connection_cap(uncapped_server):
    """Connections above the 1024 cap get a quick 503 (not a hang); once the
    flood goes away the server is immediately usable again."""
    srv = uncapped_server
    socks = []
    try:
        for i in range(1024):
            socks.append(connect(srv, timeout=5))
        time.sleep(0.5)
        extra = []
        for i in range(20):
            s = connect(srv, timeout=5)
            t0 = _now()
            data, how = recv_all(s, t0 + 3)
            extra.append((_now() - t0, data[:12], how))
            s.close()
        rejected = [e for e in extra if e[1] == b"HTTP/1.1 503"]
        assert len(rejected) >= 15, extra
        assert all(t < 1.0 for t, _, _ in rejected), extra
    finally:
        for s in socks:
            s.close()
    deadline = _now() + 3
    while True:
        try:
            assert_healthy(srv, limit=1.0)
            break
        except Exception:
            if _now() > deadline:
                raise
            time.sleep(0.1)
