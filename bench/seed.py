#!/usr/bin/env python3
"""Seed a classic tracker through its XML-RPC API, timing each phase.

Usage: seed.py URL --issues N [--users U] [--batch B]

URL carries the admin credentials (http://admin:PW@127.0.0.1:PORT/xmlrpc). Creates
U users, then N messages (one per issue), then N issues (a four-word title, a
priority, a status, 2-3 nosy users, one message), in system.multicall batches of B
creates. Deterministic (fixed random seed). Prints one human line per phase and a
final ``SEED key=value ...`` line for bench/run.
"""

import argparse
import random
import sys
import time
import xmlrpc.client

WORDS = ("crash login page error slow search mail report button export import "
         "timeout unicode layout printer cache upgrade config backup restore session "
         "token index query filter sort upload download window menu theme locale").split()


def batches(calls, size):
    """Run (method, args) calls in multicall batches; returns the created ids."""
    ids = []
    for start in range(0, len(calls), size):
        multi = xmlrpc.client.MultiCall(SERVER)
        for method, args in calls[start:start + size]:
            getattr(multi, method)(*args)
        ids.extend(multi())  # raises xmlrpc.client.Fault on the first failed call
    return ids


def phase(name, calls, size):
    t0 = time.perf_counter()
    ids = batches(calls, size)
    dt = time.perf_counter() - t0
    print("  %-8s %7d creates in %7.2f s  (%6.0f creates/s)"
          % (name, len(calls), dt, len(calls) / dt if dt else 0), flush=True)
    return ids, dt


def main():
    global SERVER
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--issues", type=int, required=True)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--batch", type=int, default=200)
    a = p.parse_args()
    SERVER = xmlrpc.client.ServerProxy(a.url, allow_none=True)
    rnd = random.Random(20240607)

    users = [("create", ("user", "username=user%d" % i, "address=user%d@example.com" % i,
                         "realname=User %d" % i, "roles=User"))
             for i in range(1, a.users + 1)]
    user_ids, t_users = phase("users", users, a.batch)

    msgs = [("create", ("msg", "content=%s" % " ".join(rnd.choice(WORDS) for _ in range(20)),
                        "author=%s" % rnd.choice(user_ids), "date=.")) for _ in range(a.issues)]
    msg_ids, t_msgs = phase("messages", msgs, a.batch)

    issues = []
    for m in msg_ids:
        nosy = sorted(set(rnd.sample(user_ids, rnd.randint(2, 3))), key=int)
        issues.append(("create", ("issue",
                                  "title=%s" % " ".join(rnd.choice(WORDS) for _ in range(4)),
                                  "priority=%d" % rnd.randint(1, 5),
                                  "status=%d" % rnd.randint(1, 8),
                                  "nosy=%s" % ",".join(nosy),
                                  "messages=%s" % m)))
    issue_ids, t_issues = phase("issues", issues, a.batch)
    if issue_ids and issue_ids[-1] != str(a.issues):
        sys.exit("seed.py: expected the last issue to be issue%d, got issue%s (not a fresh "
                 "tracker?)" % (a.issues, issue_ids[-1]))
    total = t_users + t_msgs + t_issues
    n = len(users) + len(msgs) + len(issues)
    print("  total    %7d creates in %7.2f s  (%6.0f creates/s)" % (n, total, n / total))
    print("SEED issues=%d creates=%d seconds=%.2f users_s=%.2f msgs_s=%.2f issues_s=%.2f"
          % (a.issues, n, total, t_users, t_msgs, t_issues))


if __name__ == "__main__":
    main()
