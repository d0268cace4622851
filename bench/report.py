#!/usr/bin/env python3
"""Turn a bench/run results directory into the markdown report.

Usage: report.py OUT_DIR

Reads OUT/machine.txt, runs.tsv (one line per wrk run), groups.tsv (server CPU and
memory per workload and connection count) and extra.txt (seeding, idle connections,
start-up), prints markdown: the machine, the targets, a summary table, one table
per workload, seeding, idle connections and start-up.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

DESCRIPTIONS = {
    "display": "display('issueN') — every property",
    "display3": "display('issueN', 'title', 'status', 'priority')",
    "list_titles": "list('issue', 'title')",
    "filter_title": "filter('issue', None, {'title': WORD})",
    "filter_status": "filter('issue', None, {'status': ID})",
    "lookup": "lookup('status', 'chatting')",
    "schema": "schema()",
    "multicall": "system.multicall of 10 × display('issueN', 3 props)",
    "create": "create('issue', title, priority, nosy)",
    "set": "set('issueN', title, priority)",
}


def kv(fields):
    out = {}
    for f in fields:
        if "=" in f:
            k, v = f.split("=", 1)
            out[k] = v
    return out


def load(out):
    machine = kv((out / "machine.txt").read_text().splitlines())
    runs = defaultdict(list)  # (label, size, workload, conns) -> [run dict]
    order = []
    for line in (out / "runs.tsv").read_text().splitlines():
        label, size, w, c, _r, rest = line.split("\t", 5)
        key = (label, int(size), w, int(c))
        if key not in runs:
            order.append(key)
        d = {k: int(v) for k, v in kv(rest.split()).items()}
        d["rps"] = d["requests"] / (d["duration_us"] / 1e6) if d["duration_us"] else 0.0
        runs[key].append(d)
    groups = {}
    for line in (out / "groups.tsv").read_text().splitlines():
        label, size, w, c, total, cpu, hwm, rss = line.split("\t")
        groups[(label, int(size), w, int(c))] = {
            "total": int(total), "cpu": float(cpu), "hwm": int(hwm or 0), "rss": int(rss or 0)}
    extra = []
    for line in (out / "extra.txt").read_text().splitlines():
        kind, *fields = line.split()
        d = kv(fields)
        d["kind"] = kind
        extra.append(d)
    return machine, runs, order, groups, extra


class Stats:
    """Aggregated figures of one (label, size, workload, conns) group."""

    def __init__(self, rs, g):
        rps = [r["rps"] for r in rs]
        self.rps, self.rps_min, self.rps_max = statistics.median(rps), min(rps), max(rps)
        answered = [r for r in rs if r["requests"]] or rs
        self.p50 = statistics.median(r["p50_us"] for r in answered) / 1000
        self.p99 = statistics.median(r["p99_us"] for r in answered) / 1000
        self.errors = sum(r["faults"] + r["status"] + r["timeout"] + r["read"] + r["write"]
                          + r["connect"] for r in rs)
        self.requests = sum(r["requests"] for r in rs)
        self.cpu = g["cpu"] if g and self.requests else float("nan")
        self.hwm = g["hwm"] / 1024 if g else float("nan")


def num(x):
    """Thousands separated by a space, as the README does; one decimal below 100."""
    if x != x:
        return "–"
    if x < 100 and x != int(x):
        return "%.1f" % x
    return "{:,.0f}".format(x).replace(",", " ")


def ms(x):
    if x != x or x <= 0:
        return "–"
    return "%.2f" % x if x < 10 else "%.1f" % x if x < 100 else "%.0f" % x


def ms3(x):
    """CPU per call: three decimals below 1 ms."""
    if x != x or x <= 0:
        return "–"
    return "%.3f" % x if x < 1 else ms(x)


def ratio(a, b):
    if not b or a != a or b != b or a <= 0:
        return "–"
    return "%.2f×" % (a / b) if a / b < 100 else "%.0f×" % (a / b)


def main():
    out = Path(sys.argv[1])
    machine, runs, order, groups, extra = load(out)
    stats = {k: Stats(v, groups.get(k)) for k, v in runs.items()}
    workloads = list(dict.fromkeys(k[2] for k in order))
    conns = sorted(set(k[3] for k in order))
    sizes = sorted(set(k[1] for k in order if k[0] == "server"))
    main_size = max([s for s in sizes if s <= 10000] or sizes or [0])

    def floor(w, c):
        return stats.get(("floor", 0, w, c))

    p = print
    p("Machine: %s × %s, %s RAM, Linux %s; wrk %s, rustc %s; load average at start %s."
      % (machine.get("nproc"), machine.get("cpu"), machine.get("mem"), machine.get("kernel"),
         machine.get("wrk"), machine.get("rustc"), machine.get("loadavg")))
    p("Run: `bench/run %s` on %s, commit %s (profile `profiling`); tracker database: %s."
      % (machine.get("args", ""), machine.get("date"), machine.get("commit", "unknown"),
         machine.get("backend", "sqlite")))
    p()

    # ---------------------------------------------------------------- targets
    p("#### Targets (%s-issue tracker)" % num(main_size))
    p()
    p("| target | measured | met |")
    p("|---|---|---|")

    def row(name, measured, ok):
        p("| %s | %s | %s |" % (name, measured, "yes" if ok else "**no**"))

    c_hi = max(conns) if conns else 16
    # Issue 14's targets: server CPU per call (the steady figure when the server is
    # pinned to one CPU and wrk to the other), throughput against the floor measured
    # in the same run, peak RSS.
    s, f = stats.get(("server", main_size, "display", c_hi)), floor("display", c_hi)
    if s and f:
        row("display issue, %d conns: ≤ 0.030 ms CPU per call, ≥ 50 %% of the floor's "
            "req/s" % c_hi,
            "%s ms; %s req/s = %.0f %% of %s (floor %s ms CPU)"
            % (ms3(s.cpu), num(s.rps), 100 * s.rps / f.rps, num(f.rps), ms3(f.cpu)),
            s.cpu <= 0.030 and s.rps >= 0.5 * f.rps)
    for w, limit in (("list_titles", 2.0), ("filter_title", 0.6), ("create", 0.15),
                     ("set", 0.12)):
        cpus = [stats[k].cpu for k in stats if k[0] == "server" and k[1] == main_size
                and k[2] == w]
        if cpus:
            row("%s over %s issues: ≤ %s ms server CPU per call" % (w, num(main_size),
                                                                    limit),
                "%s ms (worst connection count)" % ms3(max(cpus)), max(cpus) <= limit)
    s = stats.get(("server", main_size, "create", c_hi))
    if s:
        row("create, %d conns: ≥ 5 000 req/s" % c_hi, "%s req/s" % num(s.rps),
            s.rps >= 5000)
    hwms = [(stats[k].hwm, k) for k in stats if k[0] == "server" and k[1] <= 10000]
    if hwms:
        peak, k = max(hwms)
        row("peak RSS under load ≤ 25 MB", "%.1f MB (%s, %d conns, %s issues)"
            % (peak, k[2], k[3], num(k[1])), peak <= 25)
    for e in extra:
        if e["kind"] == "IDLE" and e.get("label") == "server" and \
                int(e.get("size", 0)) == main_size:
            d = int(e["delta_kb"]) / 1024
            row("1 000 idle keep-alive connections ≤ 50 MB more",
                "+%.1f MB (%s answered)" % (d, e["ok"]), d <= 50 and e["ok"] == e["count"])
        if e["kind"] == "STARTUP" and int(e.get("size", 0)) == main_size:
            first = float(e["first_ms"])
            row("start-up to first `schema` answer ≤ 100 ms",
                "%s ms (listening after %s ms, `/health` after %s ms)"
                % (ms(first), ms(float(e["ready_ms"])), ms(float(e["health_ms"]))),
                first <= 100)
    p()

    # ---------------------------------------------------------------- CPU per call
    p("#### Server CPU per call (ms; utime + stime of the whole process over all runs "
      "of a cell, divided by the calls answered)")
    p()
    p("With the server pinned (`%s`), this is the steady figure: it does not depend on "
      "how busy the other CPU is." % machine.get("pin", "not pinned"))
    p()
    head = ["workload", "conns", "floor"] + ["%s issues" % num(size) for size in sizes]
    p("| " + " | ".join(head) + " |")
    p("|" + "---|" * len(head))
    for w in workloads:
        for c in conns:
            f = floor(w, c)
            cells = [w, str(c), ms3(f.cpu) if f else "–"]
            for size in sizes:
                s = stats.get(("server", size, w, c))
                cells.append(ms3(s.cpu) if s else "–")
            p("| " + " | ".join(cells) + " |")
    p()

    # ---------------------------------------------------------------- summary
    p("#### Summary (median of runs; ×floor = ratio to examples/floor)")
    p()
    head = ["workload", "conns", "floor req/s"]
    for size in sizes:
        head.append("%s issues: req/s (×floor)" % num(size))
    head += ["p50 / p99 ms", "CPU ms/req", "peak RSS MB", "errors"]
    if any(k[0] == "roundup" for k in stats):
        head.append("Roundup 2.6 req/s")
    p("| " + " | ".join(head) + " |")
    p("|" + "---|" * len(head))
    for w in workloads:
        for c in conns:
            f = floor(w, c)
            cells = [w, str(c), num(f.rps) if f else "–"]
            for size in sizes:
                s = stats.get(("server", size, w, c))
                cells.append("%s (%s)" % (num(s.rps), ratio(s.rps, f.rps if f else 0))
                             if s else "–")
            s = stats.get(("server", main_size, w, c))
            if s:
                cells += ["%s / %s" % (ms(s.p50), ms(s.p99)), ms3(s.cpu), "%.1f" % s.hwm,
                          str(s.errors)]
            else:
                cells += ["–"] * 4
            r = [stats[k] for k in stats if k[0] == "roundup" and k[2] == w and k[3] == c]
            if "Roundup 2.6 req/s" in head:
                cells.append("%.1f" % r[0].rps if r else "–")
            p("| " + " | ".join(cells) + " |")
    p()
    p("p50 / p99, CPU and RSS columns are for the %s-issue tracker." % num(main_size))
    if "Roundup 2.6 req/s" in head:
        p("Roundup's standalone server has no `system.multicall`: its multicall requests "
          "all end in a fault.")
    p()

    # ---------------------------------------------------------------- two daemons
    if any(k[0] == "server2" for k in stats):
        p("#### Two daemons on one PostgreSQL database (connections split between them)")
        p()
        p("| workload | conns | issues | daemons | 1 daemon req/s | 2 daemons req/s | 2 / 1 | "
          "2 daemons p50 / p99 ms | errors |")
        p("|---|---|---|---|---|---|---|---|---|")
        for one_l, two_l, how in (("server", "server2", "any core"),
                                  ("server1c", "server2c", "one core each")):
            for w in workloads:
                for c in conns:
                    for size in sizes:
                        one, two = stats.get((one_l, size, w, c)), stats.get((two_l, size, w, c))
                        if not two:
                            continue
                        p("| %s | %d | %s | %s | %s | %s | %s | %s / %s | %d |"
                          % (w, c, num(size), how, num(one.rps) if one else "–", num(two.rps),
                             ratio(two.rps, one.rps if one else 0), ms(two.p50), ms(two.p99),
                             two.errors))
        p()

    # ---------------------------------------------------------------- per workload
    p("#### Per workload")
    for w in workloads:
        p()
        p("**%s** — `%s`" % (w, DESCRIPTIONS.get(w, w)))
        p()
        p("| target | conns | req/s median [min–max] | ×floor | p50 ms | p99 ms (×floor) | "
          "errors | CPU ms/req (×floor) | peak RSS MB |")
        p("|---|---|---|---|---|---|---|---|---|")
        for k in order:
            if k[2] != w:
                continue
            s, f = stats[k], floor(w, k[3])
            name = {"floor": "floor", "server": "server %s" % num(k[1]),
                    "roundup": "Roundup 2.6 %s" % num(k[1])}.get(k[0], k[0])
            p("| %s | %d | %s [%s–%s] | %s | %s | %s (%s) | %d | %s (%s) | %.1f |" % (
                name, k[3], num(s.rps), num(s.rps_min), num(s.rps_max),
                ratio(s.rps, f.rps) if f else "–", ms(s.p50), ms(s.p99),
                ratio(s.p99, f.p99) if f else "–", s.errors, ms3(s.cpu),
                ratio(s.cpu, f.cpu) if f and f.cpu else "–", s.hwm))
    p()

    # ---------------------------------------------------------------- the rest
    p("#### Seeding through the API (multicall batches of 200 creates)")
    p()
    p("| issues | creates (users + messages + issues) | seconds | creates/s |")
    p("|---|---|---|---|")
    for e in extra:
        if e["kind"] == "SEED":
            p("| %s | %s | %s | %s |" % (num(int(e["issues"])), num(int(e["creates"])),
                                         e["seconds"],
                                         num(int(e["creates"]) / float(e["seconds"]))))
    p()
    p("#### Memory, 1 000 idle keep-alive connections, start-up")
    p()
    p("RSS at rest: a fresh process after one call. After the mix: at the end of the "
      "workload mix. Start-up: exec to the `listening on` line / to `GET /health` / to "
      "the first authenticated `schema` answer, median of 5.")
    p()
    p("| target | RSS at rest MB | after the mix MB | with 1 000 idle conns MB | "
      "start-up ms |")
    p("|---|---|---|---|---|")
    rows = defaultdict(dict)
    for e in extra:
        key = (e.get("label"), e.get("size", ""))
        rows[key][e["kind"]] = e
    for (label, size), d in rows.items():
        if "BASE" not in d:
            continue
        name = label + (" " + num(int(size)) if size else "")
        idle = d.get("IDLE")
        st = d.get("STARTUP")
        loaded = d.get("LOADED")
        p("| %s | %.1f | %s | %s | %s |" % (
            name, int(d["BASE"]["rss_kb"]) / 1024,
            "%.1f" % (int(loaded["rss_kb"]) / 1024) if loaded else "–",
            "%.1f (+%.1f; %s/%s answered)" % (int(idle["rss_after_kb"]) / 1024,
                                             int(idle["delta_kb"]) / 1024, idle["ok"],
                                             idle["count"]) if idle else "–",
            "%s / %s / %s" % (ms(float(st["ready_ms"])), ms(float(st["health_ms"])),
                              ms(float(st["first_ms"]))) if st else "–"))


if __name__ == "__main__":
    main()
