#!/usr/bin/env python3
"""Measure what idle keep-alive connections cost a server in resident memory.

Usage: idle.py --port P --pid PID [--count 1000] [--path /xmlrpc] [--auth B64]

Opens COUNT connections to 127.0.0.1:P, sends one XML-RPC lookup on each (so every
connection is a real keep-alive connection, past the server's first-request
deadline) and reads the answer, then holds them all idle, reads the server's
VmRSS, closes them. Prints ``IDLE count=... ok=... rss_before_kb=...
rss_after_kb=... delta_kb=...``.
"""

import argparse
import asyncio
import resource

BODY = (b"<?xml version='1.0'?>\n<methodCall><methodName>lookup</methodName><params>"
        b"<param><value><string>status</string></value></param>"
        b"<param><value><string>chatting</string></value></param></params></methodCall>\n")


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


async def one(port, path, auth, hold, answered):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            "Authorization: Basic %s\r\nContent-Length: %d\r\n\r\n"
            % (path, auth, len(BODY))).encode()
    writer.write(head + BODY)
    await writer.drain()
    status = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    ok = b" 200 " in status
    answered.append(ok)
    await hold.wait()
    writer.close()
    return ok


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--path", default="/xmlrpc")
    p.add_argument("--auth", default="YWRtaW46YWRtaW4=")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.count + 256) if hard != resource.RLIM_INFINITY else a.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    before = rss_kb(a.pid)
    hold = asyncio.Event()
    answered = []
    tasks = []
    for start in range(0, a.count, 100):  # connect in waves of 100
        for _ in range(start, min(a.count, start + 100)):
            tasks.append(asyncio.create_task(one(a.port, a.path, a.auth, hold, answered)))
        await asyncio.sleep(0.05)
    for _ in range(600):  # wait (bounded, 30 s) until every connection is answered
        failed = sum(1 for t in tasks if t.done())  # only failures finish early
        if len(answered) + failed >= len(tasks):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let the server settle into the idle state
    after = rss_kb(a.pid)
    hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    print("IDLE count=%d ok=%d rss_before_kb=%d rss_after_kb=%d delta_kb=%d"
          % (a.count, ok, before, after, after - before))


if __name__ == "__main__":
    asyncio.run(main())
