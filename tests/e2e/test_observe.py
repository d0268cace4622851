"""Running and observing our server: JSON and text logs, ``GET /metrics``,
``/health`` when the database cannot be read, and ``--bind`` with a host name.

These tests drive our binary only (``ours_only``): Roundup's standalone server
has none of these features. ``/metrics`` is parsed with the parsers of the
official Python client (``prometheus_client``, in tests/requirements.txt), for
the Prometheus text format and for OpenMetrics. The database is made unreadable
the way a broken or half-migrated database is: another process renames the
user table away (and back), so every read of a login fails in SQLite itself.
"""

import http.client
import json
import math
import re
import sqlite3
import subprocess
import time
import xmlrpc.client

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from harness import (ADMIN_PASSWORD, READY_RE, Server, Tracker, copy_tracker, raw_post,
                     set_config_option)

pytestmark = pytest.mark.ours_only

RUN_TIMEOUT = 60

# A user name that tries everything a Basic header lets through (ASCII control
# characters are refused there): quotes, '=', spaces, a Unicode line separator,
# NEL, a bidi override, a forged line, and far more than 200 characters (no
# colon: Basic credentials end the user name at the first one).
HOSTILE_USER = ('ev"il x=1 \u2028 2031-01-01T00.00.00.000000Z  INFO call forged=1'
                '\u0085\u202e' + "y" * 400)
# A method name with a real newline (XML-RPC method names may hold one).
HOSTILE_METHOD = 'bad\n2031-01-01T00:00:00.000000Z  INFO call user=admin forged"x'
# What must never appear raw in a log file.
RAW_FORBIDDEN = ("\u2028", "\u0085", "\u202e")

# The label values the server may produce, whatever clients send.
OUTCOMES = {"ok", "fault", "invalid", "refused", "deadline", "error"}
METHODS = {"schema", "list", "display", "create", "set", "lookup", "filter", "action",
           "system.listMethods", "system.methodHelp", "system.methodSignature",
           "system.multicall", "other", "none"}


@pytest.fixture(scope="module")
def template_tracker(ours_target, tmp_path_factory):
    return ours_target.make_tracker(tmp_path_factory.mktemp("observe-template") / "demo")


@pytest.fixture
def tracker(template_tracker, tmp_path):
    return copy_tracker(template_tracker, tmp_path / "demo")


def serve(ours_target, tracker, *extra):
    return Server(ours_target, tracker,
                  command=ours_target.server_command(tracker) + list(extra))


def log_lines(srv):
    if not srv._stderr.closed:
        srv._stderr.flush()
    return srv.log.read_text(encoding="utf-8").splitlines()


def call_body(method, *params):
    return xmlrpc.client.dumps(params, method).encode()


def hostile_traffic(srv):
    """One of each kind of log line: a call, a fault, a failed login with a
    hostile user name, a refusal (anonymous has no Xmlrpc Access), a bad
    document, a hostile method name, a 404."""
    assert srv.admin().lookup("user", "admin") == "1"
    assert raw_post(srv, call_body("lookup", "user", "nobody"))[0] == 200
    status, _, _, _ = raw_post(srv, call_body("lookup", "user", "admin"),
                               auth=(HOSTILE_USER, "wrong"))
    assert status == 403
    assert raw_post(srv, call_body("schema"), auth=None)[0] == 200
    assert raw_post(srv, b"<methodCall>")[0] == 200
    assert raw_post(srv, call_body(HOSTILE_METHOD))[0] == 200
    assert raw_post(srv, call_body("schema"), path="/nowhere")[0] == 404


def expected_cut(value, limit=200):
    """What a field shows of ``value``: its first 200 characters and a marker."""
    if len(value) <= limit:
        return value
    kept = value[:limit]
    return "%s…(%d more bytes)" % (kept, len(value.encode()) - len(kept.encode()))


# --------------------------------------------------------------------------
# Logs


def test_json_logs(ours_target, tracker):
    with serve(ours_target, tracker, "--log-format", "json") as srv:
        hostile_traffic(srv)
    text = srv.log.read_text(encoding="utf-8")
    for raw in RAW_FORBIDDEN:
        assert raw not in text, "%r written raw" % raw
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    for line in lines:
        assert {"timestamp", "level", "message"} <= set(line), line
        # One unit for durations: duration_ms, a number, in every line that has one.
        assert "ms" not in line and "duration" not in line, line
        if "duration_ms" in line:
            assert isinstance(line["duration_ms"], (int, float)), line
            assert 0 <= line["duration_ms"] < 60_000
    calls = [line for line in lines if line["message"] == "call"]
    ok = [c for c in calls if c["method"] == "lookup" and c["outcome"] == "ok"]
    assert len(ok) == 1, calls
    call = ok[0]
    assert call["tracker"] == "demo" and call["user"] == "admin", call
    assert re.fullmatch(r"127\.0\.0\.1:\d+", call["peer"]), call
    assert "proxy" not in call, "no proxy: no proxy field"
    fault = [c for c in calls if c["method"] == "lookup" and c["outcome"] == "fault"]
    assert fault and fault[0]["fault_code"] == 1, calls
    # The hostile method name is one JSON string, the newline JSON-escaped.
    hostile = [c for c in calls if c["method"] == HOSTILE_METHOD]
    assert len(hostile) == 1 and hostile[0]["outcome"] == "fault", calls
    # The failed login names the user tried: exactly (JSON's own escaping), cut.
    failed = [line for line in lines if line["message"] == "invalid login"]
    assert len(failed) == 1, lines
    assert failed[0]["user"] == expected_cut(HOSTILE_USER)
    assert failed[0]["tracker"] == "demo" and failed[0]["level"] == "INFO"
    refused = [line for line in lines if line["message"] == "refused: no Xmlrpc Access"]
    assert refused and refused[0]["user"] == "anonymous", lines
    assert refused[0]["outcome"] == "refused" and refused[0]["fault_code"] == 403
    bad = [line for line in lines if line["message"] == "bad request document"]
    assert bad and bad[0]["outcome"] == "invalid" and bad[0]["fault_code"] == -32700
    requests = [line for line in lines if line["message"] == "request"]
    assert any(r["path"] == "/nowhere" and r["status"] == 404 for r in requests), requests


TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z +(TRACE|DEBUG|INFO|WARN|ERROR) \S")


def test_text_logs(ours_target, tracker):
    with serve(ours_target, tracker) as srv:
        hostile_traffic(srv)
    text = srv.log.read_text(encoding="utf-8")
    for raw in RAW_FORBIDDEN:
        assert raw not in text, "%r written raw" % raw
    lines = text.splitlines()
    for line in lines:
        assert TEXT_LINE.match(line), "a line that is not a log line: %r" % line
        assert not line.startswith("2031"), "a forged line: %r" % line
        assert " ms=" not in line and " duration=" not in line, line
    assert any(re.search(r" call peer=127\.0\.0\.1:\d+ user=admin method=lookup outcome=ok "
                         r"duration_ms=[\d.]+ tracker=demo$", line) for line in lines), text
    assert any(re.search(r" call .*method=lookup outcome=fault fault_code=1 duration_ms=[\d.]+ "
                         r"tracker=demo$", line) for line in lines), text
    # The hostile user: quoted, escaped, cut.
    user = [line for line in lines if " invalid login " in line]
    assert len(user) == 1
    assert ('user="ev\\"il x=1 \\u{2028} 2031-01-01T00.00.00.000000Z  INFO call forged=1'
            '\\u{85}\\u{202e}yyy') in user[0], user[0]
    assert re.search(r'yyy…\(\d+ more bytes\)" duration_ms=[\d.]+ tracker=demo$', user[0]), user[0]
    method = [line for line in lines if "method=\"bad\\n2031" in line]
    assert len(method) == 1, text


def test_log_format_from_config(ours_target, tracker):
    set_config_option(tracker, "xmlrpc_server", "log_format", "json")
    with serve(ours_target, tracker) as srv:
        assert srv.admin().lookup("user", "admin") == "1"
    lines = log_lines(srv)
    assert lines
    calls = [json.loads(line) for line in lines if '"message":"call"' in line]
    assert calls and calls[0]["user"] == "admin"
    for line in lines:
        json.loads(line)
    # The command line wins.
    with serve(ours_target, tracker, "--log-format", "text") as srv:
        assert srv.admin().lookup("user", "admin") == "1"
    assert any(re.search(r" call peer=\S+ user=admin", line) for line in log_lines(srv))


def test_behind_a_trusted_proxy_lines_name_client_and_proxy(ours_target, tracker):
    with serve(ours_target, tracker, "--trusted-proxy", "127.0.0.1",
               "--log-format", "json") as srv:
        fwd = {"X-Forwarded-For": "203.0.113.9"}
        assert raw_post(srv, call_body("lookup", "user", "admin"), headers=fwd)[0] == 200
        assert raw_post(srv, call_body("schema"), headers=fwd,
                        auth=("nosuchuser", "x"))[0] == 403
    lines = [json.loads(line) for line in log_lines(srv)]
    interesting = [line for line in lines
                   if line["message"] in ("call", "invalid login", "request")]
    assert {line["message"] for line in interesting} == {"call", "invalid login", "request"}
    for line in interesting:
        assert line["peer"] == "203.0.113.9:0", line
        assert re.fullmatch(r"127\.0\.0\.1:\d+", line["proxy"]), line
    failed = [line for line in lines if line["message"] == "invalid login"]
    assert failed[0]["user"] == "nosuchuser"


def test_rate_limit_lines_name_client_and_user(ours_target, tracker):
    set_config_option(tracker, "web", "api_calls_per_interval", "1")
    set_config_option(tracker, "web", "api_failed_login_limit", "1")
    with serve(ours_target, tracker, "--trusted-proxy", "127.0.0.1",
               "--log-format", "json") as srv:
        fwd = {"X-Forwarded-For": "198.51.100.7"}
        body = call_body("schema")
        assert raw_post(srv, body, headers=fwd)[0] == 200
        assert raw_post(srv, body, headers=fwd)[0] == 429
        assert raw_post(srv, body, headers=fwd, auth=("admin", "wrong"))[0] == 403
        assert raw_post(srv, body, headers=fwd, auth=("admin", "wrong"))[0] == 429
    lines = [json.loads(line) for line in log_lines(srv)]
    for message in ("call-rate limit reached", "failed-login limit reached"):
        found = [line for line in lines if line["message"] == message]
        assert len(found) == 1, (message, lines)
        assert found[0]["peer"] == "198.51.100.7:0" and found[0]["user"] == "admin"
        assert found[0]["tracker"] == "demo" and found[0]["level"] == "WARN"


# --------------------------------------------------------------------------
# /metrics


def get(srv, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def scrape(srv, headers=None):
    """{(sample name, frozenset(labels)): value} of /metrics, parsed as the
    Prometheus text format by prometheus_client's parser."""
    status, headers, body = get(srv, "/metrics", headers)
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("roundup_xmlrpc_"), family.name
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, "duplicate sample %r" % (key,)
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def calls(samples, method, outcome):
    return value(samples, "roundup_xmlrpc_calls_total", tracker="demo", method=method,
                 outcome=outcome)


def check_labels(samples):
    """Every label value is from a fixed set, whatever clients sent."""
    for (name, labels), _ in samples.items():
        labels = dict(labels)
        if "tracker" in labels:
            assert labels["tracker"] == "demo", (name, labels)
        if "method" in labels:
            assert labels["method"] in METHODS, (name, labels)
        if "outcome" in labels:
            assert labels["outcome"] in OUTCOMES, (name, labels)
        if "limit" in labels:
            assert labels["limit"] in ("logins", "calls"), (name, labels)


def rename_table(tracker, old, new):
    """Renames a table of the live database from another process (SQLite takes
    the write lock; the server's prepared statements then fail). On PostgreSQL
    as the cluster's superuser; the server's statements then fail the same way."""
    if tracker.backend == "postgresql":
        import psycopg2
        con = psycopg2.connect(host=tracker.pg_host, user="postgres", dbname=tracker.pg_name)
        try:
            con.autocommit = True
            con.cursor().execute('ALTER TABLE "%s" RENAME TO "%s"' % (old, new))
        finally:
            con.close()
        return
    con = sqlite3.connect(str(tracker.db_path), timeout=30, isolation_level=None)
    try:
        con.execute("ALTER TABLE %s RENAME TO %s" % (old, new))
    finally:
        con.close()


def test_metrics_move_with_calls_logins_limits_and_storage_errors(ours_target, tracker):
    set_config_option(tracker, "web", "api_failed_login_limit", "2")
    with serve(ours_target, tracker) as srv:
        before = scrape(srv)
        check_labels(before)
        # The served tracker's counters exist from the start, at 0.
        assert ("roundup_xmlrpc_failed_logins_total",
                frozenset({("tracker", "demo")})) in before
        assert value(before, "roundup_xmlrpc_calls_in_flight") == 0
        assert value(before, "roundup_xmlrpc_open_connections") >= 1

        admin = srv.admin()
        assert admin.lookup("user", "admin") == "1"
        assert admin.lookup("user", "admin") == "1"
        assert raw_post(srv, call_body("lookup", "user", "nobody"))[0] == 200
        assert raw_post(srv, call_body(HOSTILE_METHOD))[0] == 200
        assert raw_post(srv, call_body('made"up{method="x"}'))[0] == 200
        assert raw_post(srv, b"<methodCall>")[0] == 200
        assert raw_post(srv, call_body("schema"), auth=None)[0] == 200
        for _ in range(2):
            assert raw_post(srv, call_body("schema"), auth=("joe", "nope"))[0] == 403
        assert raw_post(srv, call_body("schema"), auth=("joe", "nope"))[0] == 429
        assert raw_post(srv, call_body("schema"), path="/nowhere")[0] == 404
        idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        idle.connect()
        time.sleep(0.2)
        after = scrape(srv)
        idle.close()
        check_labels(after)
        assert calls(after, "lookup", "ok") == 2
        assert calls(after, "lookup", "fault") == 1
        assert calls(after, "other", "fault") == 2, "made-up method names count as other"
        assert calls(after, "none", "invalid") == 1
        # Anonymous without Xmlrpc Access, two failed logins, one lockout.
        assert calls(after, "none", "refused") == 4
        assert value(after, "roundup_xmlrpc_failed_logins_total", tracker="demo") == 2
        assert value(after, "roundup_xmlrpc_limiter_refusals_total", tracker="demo",
                     limit="logins") == 1
        assert value(after, "roundup_xmlrpc_limiter_refusals_total", tracker="demo",
                     limit="calls") == 0
        assert value(after, "roundup_xmlrpc_http_responses_total", code="404") == 1
        assert value(after, "roundup_xmlrpc_http_responses_total", code="403") == 2
        assert value(after, "roundup_xmlrpc_open_connections") >= 2
        assert value(after, "roundup_xmlrpc_calls_in_flight") == 0
        # The latency histogram, in seconds: every call observed, buckets cumulative.
        count = value(after, "roundup_xmlrpc_call_duration_seconds_count", tracker="demo")
        assert count == 10
        inf = value(after, "roundup_xmlrpc_call_duration_seconds_bucket", tracker="demo",
                    le="+Inf")
        assert inf == count
        total = value(after, "roundup_xmlrpc_call_duration_seconds_sum", tracker="demo")
        assert 0 < total < 60 * count
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                         if name == "roundup_xmlrpc_call_duration_seconds_bucket")
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert buckets[0][0] == 0.001 and math.isinf(buckets[-1][0])

        # Storage errors: the user table renamed away under the running server.
        assert value(after, "roundup_xmlrpc_storage_errors_total", tracker="demo") == 0
        rename_table(tracker, "_user", "_user_away")
        try:
            err = pytest.raises(xmlrpc.client.Fault, admin.lookup, "status", "chatting")
            assert "database error" in err.value.faultString
            broken = scrape(srv)
        finally:
            rename_table(tracker, "_user_away", "_user")
        assert value(broken, "roundup_xmlrpc_storage_errors_total", tracker="demo") >= 1
        assert calls(broken, "none", "error") == 1
        assert admin.lookup("status", "chatting") == "3"
        assert calls(scrape(srv), "lookup", "ok") == 3


def test_metrics_in_openmetrics(ours_target, tracker):
    with serve(ours_target, tracker) as srv:
        assert srv.admin().lookup("user", "admin") == "1"
        status, headers, body = get(srv, "/metrics", {
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["roundup_xmlrpc_calls"].type == "counter"
    assert families["roundup_xmlrpc_call_duration_seconds"].type == "histogram"
    ok = [s for s in families["roundup_xmlrpc_calls"].samples
          if s.labels == {"tracker": "demo", "method": "lookup", "outcome": "ok"}]
    assert [s.value for s in ok] == [1]


def test_metrics_only_for_allowed_clients(ours_target, tracker):
    fwd = {"X-Forwarded-For": "203.0.113.9"}
    with serve(ours_target, tracker, "--trusted-proxy", "127.0.0.1") as srv:
        # Loopback may read; a client forwarded by the proxy is the internet.
        assert get(srv, "/metrics")[0] == 200
        status, _, body = get(srv, "/metrics", fwd)
        assert status == 403, body
        assert b"roundup_xmlrpc" not in body
        status, headers, _ = get(srv, "/metrics", method="POST")
        assert (status, headers["Allow"]) == (405, "GET, HEAD")
        assert get(srv, "/metrics", method="HEAD")[:1] == (200,)
    with serve(ours_target, tracker, "--trusted-proxy", "127.0.0.1",
               "--metrics-allow", "203.0.113.0/24") as srv:
        assert get(srv, "/metrics", fwd)[0] == 200
        # The list replaces the default: loopback may no longer read.
        assert get(srv, "/metrics")[0] == 403
    set_config_option(tracker, "xmlrpc_server", "metrics_allow", "203.0.113.9")
    with serve(ours_target, tracker, "--trusted-proxy", "127.0.0.1") as srv:
        assert get(srv, "/metrics", fwd)[0] == 200
        assert get(srv, "/metrics", {"X-Forwarded-For": "203.0.113.10"})[0] == 403


# --------------------------------------------------------------------------
# /health


def test_health_is_503_while_the_database_cannot_be_read(ours_target, tracker):
    with serve(ours_target, tracker) as srv:
        assert get(srv, "/health")[:3:2] == (200, b"ok\n")
        rename_table(tracker, "_user", "_user_away")
        try:
            time.sleep(1.1)  # past the cached result of the last check
            status, headers, body = get(srv, "/health")
            assert status == 503, body
            assert body == b"unavailable: cannot read the database of tracker demo\n"
            assert headers["Content-Type"].startswith("text/plain")
            assert str(tracker.home).encode() not in body
            assert get(srv, "/health", method="HEAD")[0] == 503
            samples = scrape(srv)
            assert value(samples, "roundup_xmlrpc_storage_errors_total", tracker="demo") >= 1
        finally:
            rename_table(tracker, "_user_away", "_user")
        time.sleep(1.1)
        assert get(srv, "/health")[:3:2] == (200, b"ok\n")
    log = "\n".join(log_lines(srv))
    assert "health check failed" in log
    # SQLite's and PostgreSQL's words for the missing table.
    assert "no such table" in log or "does not exist" in log, \
        "the cause is in the log, not in the answer"


def test_health_is_cheap(ours_target, tracker):
    """Checks are one at a time and reused for a second: a burst of checks reads
    the database once or twice, and never writes."""
    with serve(ours_target, tracker) as srv:
        mtime = tracker.db_path.stat().st_mtime_ns if tracker.backend == "sqlite" else None
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        started = time.monotonic()
        for _ in range(200):
            conn.request("GET", "/health")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"ok\n")
        elapsed = time.monotonic() - started
        conn.close()
        assert elapsed < 10, elapsed
        if mtime is not None:
            assert tracker.db_path.stat().st_mtime_ns == mtime


# --------------------------------------------------------------------------
# --bind with a host name


def run(ours_target, *args):
    return subprocess.run([str(ours_target.binary), *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def test_bind_localhost(ours_target, tracker):
    cmd = [str(ours_target.binary), "-i", str(tracker.home), "--port", "0",
           "--bind", "localhost"]
    with Server(ours_target, tracker, command=cmd) as srv:
        # localhost is 127.0.0.1 (IPv4 first): the ready line says so.
        assert READY_RE.match("listening on %s/" % srv.base)
        proxy = xmlrpc.client.ServerProxy(
            "http://admin:%s@localhost:%d/demo/xmlrpc" % (ADMIN_PASSWORD, srv.port))
        assert proxy.lookup("user", "admin") == "1"


def test_bind_localhost_in_demo(ours_target, tmp_path):
    proc = subprocess.Popen([str(ours_target.binary), "demo", str(tmp_path / "demo"),
                             "--port", "0", "--bind", "localhost"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("created demo tracker ")
        m = READY_RE.match(proc.stdout.readline())
        assert m
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_bind_unresolvable_name_exits_5(ours_target, tracker):
    proc = run(ours_target, "-i", tracker.home, "--port", "0",
               "--bind", "no-such-host.invalid")
    assert proc.returncode == 5, proc.stderr
    assert re.search(r"^roundup-xmlrpc-server: --bind no-such-host\.invalid: cannot resolve "
                     r"\"no-such-host\.invalid\": ", proc.stderr, re.M), proc.stderr
    assert "listening" not in proc.stdout
    # In JSON, the last word is a JSON line too.
    proc = run(ours_target, "-i", tracker.home, "--port", "0", "--log-format", "json",
               "--bind", "no-such-host.invalid")
    assert proc.returncode == 5
    last = json.loads(proc.stderr.splitlines()[-1])
    assert last["level"] == "ERROR" and last["exit_status"] == 5
    assert "cannot resolve" in last["message"]
    for line in proc.stderr.splitlines():
        json.loads(line)
