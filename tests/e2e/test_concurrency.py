"""Concurrent writers (issue 6, concurrency part).

16 client threads write at once for ~12 s: creating issues, setting the same
issue's title+nosy, setting their own issues, and adding messages to one
shared issue. Afterwards:

* no call faulted (in particular no "database is locked"), none timed out;
* every acknowledged create exists with the values sent;
* the shared issues' journals hold exactly one entry per acknowledged write,
  every acknowledged title appears in the title history (no lost update),
  the final title is the one written last, every acknowledged message is
  linked (no lost ``messages=+id``), ``activity`` is not older than any
  acknowledged write, and the whole ``issue__journal`` row count equals
  creates + effective sets;
* the database is sound (``PRAGMA integrity_check`` is ``ok``; on PostgreSQL,
  every id sequence is past its class's highest id).

On PostgreSQL, writers of different items run in parallel and writers of one
item queue on its row lock; journal rows are put in commit order by their
transactions' commit timestamps there (the test cluster tracks them) where
sqlite has ``rowid``.

A second test adds another process-level writer on the same SQLite file (a
plain sqlite3 connection taking the write lock repeatedly, as a Roundup
process or roundup-admin would) and checks that our writes wait instead of
failing.
"""

import ast
import datetime
import re
import sqlite3
import threading
import time

import pytest

from hostile_util import (
    RssWatch,
    _attack_counter,  # noqa: F401 - autouse fixture (attack counter)
    assert_healthy,
    proxy,
)

DURATION = 10.0
THREADS = 16


def roundup_date(text):
    """'<Date 2026-11-29.04:03:17.518>' -> aware UTC datetime."""
    m = re.match(r"<Date (\d{4})-(\d\d)-(\d\d)\.(\d\d):(\d\d):(\d\d)\.(\d{3})>", text)
    assert m, text
    y, mo, d, h, mi, s, ms = map(int, m.groups())
    return datetime.datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=datetime.timezone.utc)


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.errors = []
        self.creates = []        # (issue id, title)
        self.shared = []         # (start, end, title, nosy)
        self.own = {}            # tid -> list of (start, end, title)
        self.messages = []       # (msg id, start, end, linked?)
        self.calls = 0

    def error(self, what, exc):
        with self.lock:
            self.errors.append("%s: %r" % (what, exc))


def storm(server, setup, log, duration, threads, extra_check=None):
    stop_at = time.monotonic() + duration
    S, M = setup["shared"], setup["msgs"]
    nosy_pool = setup["nosy_pool"]

    def worker(tid):
        if tid % 2 == 0:
            p = proxy(server, timeout=60)
        else:
            p = proxy(server, "joe", "secret", timeout=60)
        role = tid % 4
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            t0 = time.time()
            try:
                if role == 0:
                    title = "c-%d-%d" % (tid, n)
                    iid = p.create("issue", "title=" + title)
                    with log.lock:
                        log.creates.append((iid, title))
                elif role == 1:
                    title = "s-%d-%d" % (tid, n)
                    nosy = sorted({nosy_pool[(tid + n) % len(nosy_pool)],
                                   nosy_pool[(tid * n) % len(nosy_pool)]}, key=int)
                    p.set("issue" + S, "title=" + title, "nosy=" + ",".join(nosy))
                    with log.lock:
                        log.shared.append((t0, time.time(), title, nosy))
                elif role == 2:
                    own = setup["own"][tid]
                    title = "o-%d-%d" % (tid, n)
                    p.set("issue" + own, "title=" + title)
                    with log.lock:
                        log.own.setdefault(tid, []).append((t0, time.time(), title))
                else:
                    mid = p.create("msg", "content=m-%d-%d" % (tid, n), "author=1")
                    p.set("issue" + M, "messages=+" + mid)
                    with log.lock:
                        log.messages.append((mid, t0, time.time()))
                with log.lock:
                    log.calls += 1
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                log.error("thread %d op %d" % (tid, n), e)

    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(duration + 90)
    assert not any(t.is_alive() for t in ths), "client threads hung"


def make_setup(server, threads):
    admin = proxy(server)
    nosy_pool = ["1", "3"] + [admin.create("user", "username=cu%d" % i, "roles=User")
                              for i in range(4)]
    shared = admin.create("issue", "title=shared-0")
    msgs = admin.create("issue", "title=messages-0")
    own = {tid: admin.create("issue", "title=own-%d" % tid)
           for tid in range(threads) if tid % 4 == 2}
    return {"shared": shared, "msgs": msgs, "own": own, "nosy_pool": nosy_pool,
            "journal_before": server.tracker.sql("select count(*) from issue__journal")[0][0]}


def journal(server, iid):
    order = server.tracker.commit_order
    return server.tracker.sql(
        "select 0, date, action, params from issue__journal where nodeid = ? "
        "order by %s" % order, (int(iid),))


def check_outcome(server, setup, log):
    admin = proxy(server)
    assert not log.errors, "%d calls failed, e.g. %s" % (len(log.errors), log.errors[:5])
    text = server.stderr_text()
    assert "database is locked" not in text and "storage failure" not in text, text[-2000:]
    assert log.calls > 50, "too few calls completed (%d)" % log.calls

    # Every acknowledged create exists with the title sent.
    if log.creates:
        ids = [i for i, _ in log.creates]
        assert len(set(ids)) == len(ids), "an id was handed out twice"
        titles = dict(zip(admin.filter("issue", None, {}), admin.list("issue", "title")))
        for iid, title in log.creates:
            assert titles.get(iid) == title, (iid, title, titles.get(iid))

    # Shared issue: one journal entry per acknowledged set, title history.
    S = setup["shared"]
    rows = journal(server, S)
    assert rows[0][2] == "create"
    sets = [r for r in rows[1:] if r[2] == "set"]
    assert len(rows) == 1 + len(log.shared), (len(rows), len(log.shared))
    assert len(sets) == len(log.shared)
    final = admin.display("issue" + S, "title", "nosy", "activity")
    # The old titles recorded in the journal, in commit order, plus the final
    # title are exactly the initial title and every acknowledged title.
    olds = [ast.literal_eval(r[3]).get("title") for r in sets]
    history = olds + [final["title"]]
    assert history[0] == "shared-0"
    acked = [t for _, _, t, _ in log.shared]
    assert sorted(history[1:]) == sorted(acked), "lost or phantom title writes"
    # The final value was written by a call that ended after every other
    # call started (it cannot be overtaken).
    if log.shared:
        last_start = max(s for s, _, _, _ in log.shared)
        writer = [w for w in log.shared if w[2] == final["title"]]
        assert writer and writer[0][1] >= last_start - 0.001, writer
        assert final["nosy"] == writer[0][3], (final["nosy"], writer[0][3])
        act = roundup_date(final["activity"])
        assert act >= utc(last_start) - datetime.timedelta(milliseconds=50), (
            act, utc(last_start))
        assert act <= utc(time.time()) + datetime.timedelta(seconds=1)
    dates = [r[1] for r in rows]
    assert dates == sorted(dates), "journal dates not in commit order"

    # Own issues: the last acknowledged title of each thread is final, and the
    # journal has one entry per set.
    for tid, writes in log.own.items():
        iid = setup["own"][tid]
        assert admin.display("issue" + iid, "title")["title"] == writes[-1][2]
        assert len(journal(server, iid)) == 1 + len(writes)

    # Messages: every acknowledged link is there (no lost messages=+id).
    M = setup["msgs"]
    linked = set(admin.display("issue" + M, "messages")["messages"])
    missing = [m for m, _, _ in log.messages if m not in linked]
    assert not missing, "lost messages=+id updates: %s" % missing[:10]
    assert len(journal(server, M)) == 1 + len(log.messages)

    # Whole-table count: creates + effective sets, nothing else.
    total = server.tracker.sql("select count(*) from issue__journal")[0][0]
    expected = (setup["journal_before"] + len(log.creates) + len(log.shared) +
                sum(len(w) for w in log.own.values()) + len(log.messages))
    assert total == expected, (total, expected)
    assert server.tracker.consistent()
    assert_healthy(server)


def test_sixteen_concurrent_writers(pristine_server):
    srv = pristine_server
    proxy(srv).create("user", "username=joe", "password=secret", "roles=User",
                      "address=joe@example.com")
    setup = make_setup(srv, THREADS)
    log = Log()
    with RssWatch(srv, limit_mb=200):
        storm(srv, setup, log, DURATION, THREADS)
    check_outcome(srv, setup, log)


@pytest.mark.sqlite_only
def test_writers_survive_an_external_sqlite_writer(pristine_server):
    """Another process-level connection keeps taking the write lock (100 ms
    holds, like a Roundup process or roundup-admin); our writes must wait
    (busy timeout) rather than fail with "database is locked"."""
    srv = pristine_server
    proxy(srv).create("user", "username=joe", "password=secret", "roles=User",
                      "address=joe@example.com")
    setup = make_setup(srv, 8)
    log = Log()
    stop = threading.Event()
    holds = [0]

    def locker():
        con = sqlite3.connect(str(srv.tracker.db_path), timeout=30,
                              isolation_level=None)
        try:
            while not stop.is_set():
                con.execute("BEGIN IMMEDIATE")
                con.execute("update ids set num = num where name = 'issue'")
                time.sleep(0.1)
                con.execute("COMMIT")
                holds[0] += 1
                time.sleep(0.05)
        finally:
            con.close()

    th = threading.Thread(target=locker, daemon=True)
    th.start()
    try:
        storm(srv, setup, log, 6.0, 8)
    finally:
        stop.set()
        th.join(10)
    assert holds[0] > 10, "the external writer did not get the lock"
    check_outcome(srv, setup, log)
