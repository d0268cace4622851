#!/usr/bin/env python3
"""Time a server from exec to its first successful authenticated ``schema`` answer.

Usage: startup.py [--runs 5] [--path /xmlrpc] [--auth B64] -- COMMAND...

COMMAND is run with ``--port P`` appended (a free loopback port). For each run,
the clock starts just before exec; the script polls (every 0.5 ms, at most 20 s)
``GET /health`` until it answers 200, then a ``schema`` call until one returns HTTP
200 without a fault (the first one pays the password hash: PBKDF2 unless cached),
then stops the server with SIGTERM. Prints ``STARTUP ready_ms=... health_ms=...
first_ms=...`` with the medians of the runs (ready = the ``listening on`` line on
stdout) and the individual first-answer times.
"""

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import threading
import time

BODY = (b"<?xml version='1.0'?>\n<methodCall><methodName>schema</methodName>"
        b"<params></params></methodCall>\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def try_health(port):
    """True when ``GET /health`` answers 200 (no authentication involved)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def try_schema(port, path, auth):
    """True when an authenticated ``schema`` call answers 200 without a fault."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, BODY, {"Content-Type": "text/xml",
                                          "Authorization": "Basic " + auth})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and b"<fault>" not in body
    except OSError:
        return False
    finally:
        conn.close()


def one_run(cmd, path, auth):
    port = free_port()
    ready = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd + ["--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)

    def watch():
        for line in proc.stdout:
            if "listening on" in line and not ready:
                ready.append(time.perf_counter() - t0)

    threading.Thread(target=watch, daemon=True).start()
    health = first = None
    deadline = t0 + 20
    while time.perf_counter() < deadline and proc.poll() is None:
        if try_health(port):
            health = time.perf_counter() - t0
            break
        time.sleep(0.0005)
    while health is not None and time.perf_counter() < deadline and proc.poll() is None:
        if try_schema(port, path, auth):
            first = time.perf_counter() - t0
            break
        time.sleep(0.0005)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if first is None:
        raise SystemExit("startup.py: no successful schema answer within 20 s")
    return (ready[0] if ready else float("nan")), health, first


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--path", default="/xmlrpc")
    p.add_argument("--auth", default="YWRtaW46YWRtaW4=")
    p.add_argument("command", nargs="+")
    a = p.parse_args()
    runs = [one_run(a.command, a.path, a.auth) for _ in range(a.runs)]
    ready = statistics.median(r for r, _, _ in runs) * 1000
    health = statistics.median(h for _, h, _ in runs) * 1000
    first = statistics.median(f for _, _, f in runs) * 1000
    print("STARTUP ready_ms=%.1f health_ms=%.1f first_ms=%.1f runs_first_ms=%s"
          % (ready, health, first, ",".join("%.1f" % (f * 1000) for _, _, f in runs)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
