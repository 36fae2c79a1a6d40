#!/usr/bin/python3
"""Where a checkout's CPU goes, process by process, next to pgbench's checkout
ceilings: the account behind make lab's checkout goals.

    PYTHONPATH=tests:loadtests loadtests/cpu_split.py [--home .hotplate/ab] [--rounds 3] [--duration 6] [--serve ARGS] [BINARY]

Each round runs three loads of 32 connections in turn, for --duration seconds
each, each round starting with the next of them, on one private stack (--home: created, migrated and seeded at scale
0.01 when it has no env file yet, reused after; `--home .hotplate/lab` runs on
make lab's stack at its scale):

- POST /orders: `wrk -t1 -c32` replaying one-line carts (the orders load of
  make lab's ceilings) against one `hotplate serve --threads 1` with
  payment_latency_ms=0 (and --serve's arguments, "--db-pool 16" say);
- pgbench's checkout one statement at a time, and
- pgbench's checkout inside \\startpipeline (the two scripts make lab's
  ceilings run, loadtests/bench_ceilings.py, with the same settings).

Inside each load, after 1.5 s for connections to settle, it reads utime
and stime of every process of interest from /proc at two instants a few
seconds apart, and the orders inserted in between (orders_id_seq's
last_value, which every order insert advances at once, unlike the statistics
views). It prints, per load, the orders per second of that window and the CPU
microseconds per order of: the server's busiest thread (the worker) and its
other threads; the PostgreSQL backends of the load (the server's read
connections, the ones whose last statement is a SELECT, apart from its
transaction connections; or pgbench's); other client connections;
PostgreSQL's own processes (WAL writer, checkpointer, autovacuum...);
Redis; the load generator; their sum; and the whole machine's busy time
from /proc/stat, whose excess over the sum is the kernel's threads and
everything else on the machine. Medians of the rounds; the rounds' ranges
below. On a shared machine these are one run's
figures, to compare with each other, not absolute truths.

Everything started here is stopped on every exit path.
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time

import ab_servers
import bench_ceilings
import bench_proc as bp
import bench_report
import bench_workload as wl
from hplib.describe import describe

TICK = os.sysconf("SC_CLK_TCK")
CONNS = 32
SETTLE_S = 1.5  # pgbench connects its 32 clients at the start; the window opens after that

# The rows of the account, in the order printed.
PARTS = [
    ("server_worker", "hotplate: the worker thread"),
    ("server_other", "hotplate: its other threads"),
    ("backends_read", "PostgreSQL: the server's read connections"),
    ("backends_txn", "PostgreSQL: the server's transaction connections"),
    ("backends_pgbench", "PostgreSQL: pgbench's connections"),
    ("backends_other", "PostgreSQL: other client connections"),
    ("pg_own", "PostgreSQL: its own processes (WAL writer, checkpointer, autovacuum...)"),
    ("redis", "Redis"),
    ("generator", "the load generator (wrk or pgbench)"),
    ("sum", "sum of the above"),
    ("machine", "the whole machine's busy time (/proc/stat)"),
]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", nargs="?", default=os.path.join(bp.REPO, "build", "hotplate"))
    p.add_argument("--home", default=ab_servers.HOME, help="the stack's folder (default .hotplate/ab)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per load (the window is this less about 2.5 s)")
    p.add_argument("--serve", default="", help="more `hotplate serve` arguments for the server, as one string")
    a = p.parse_args(argv)
    a.binary = os.path.abspath(a.binary)
    if a.duration < 4:
        p.error("--duration must be at least 4 seconds")
    return a


def cpu_s(path):
    """utime + stime in seconds from a /proc stat file, or None when it is gone."""
    try:
        with open(path) as f:
            x = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(x[11]) + int(x[12])) / TICK  # fields 14 and 15 of proc(5)


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / TICK


def orders_seq(env):
    return int(bp.psql(env, "SELECT last_value FROM orders_id_seq"))


def pg_roles(env):
    """{pid: part} for PostgreSQL's processes: the client backends by application_name (and, for the server's, by
    whether their last statement was a SELECT), the rest as PostgreSQL's own."""
    roles = {}
    for line in bp.psql(env, "SELECT pid, backend_type, coalesce(application_name, ''), "
                             "upper(left(ltrim(coalesce(query, '')), 6)) FROM pg_stat_activity").splitlines():
        pid, btype, app, head = (line.split("\t") + ["", "", ""])[:4]
        if btype != "client backend":
            roles[int(pid)] = "pg_own"
        elif app == "hotplate":
            roles[int(pid)] = "backends_read" if head == "SELECT" else "backends_txn"
        elif app == "pgbench":
            roles[int(pid)] = "backends_pgbench"
        else:
            roles[int(pid)] = "backends_other"  # the HA monitor, an index build, a psql of someone's
    return roles


def snapshot(env, server, generator):
    """The CPU seconds of each process of interest, by part, and the order sequence, at one instant."""
    roles = pg_roles(env)
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        name = comm(pid)
        if name == "postgres":
            roles.setdefault(pid, "pg_own")  # the postmaster and the processes the view does not list
        elif name == "redis-server":
            roles[pid] = "redis"
    cpu = {}
    for pid, part in roles.items():
        v = cpu_s(f"/proc/{pid}/stat")
        if v is not None:
            cpu[("pid", pid)] = (part, v)
    if server is not None:
        base = f"/proc/{server.proc.pid}/task"
        for tid in os.listdir(base):
            v = cpu_s(f"{base}/{tid}/stat")
            if v is not None:
                cpu[("tid", int(tid))] = ("server", v)
    v = cpu_s(f"/proc/{generator.pid}/stat")
    if v is not None:
        cpu[("pid", generator.pid)] = ("generator", v)
    return {"t": time.monotonic(), "orders": orders_seq(env), "cpu": cpu, "machine": machine_busy_s()}


def account(a0, a1):
    """Per-order CPU microseconds by part, between two snapshots (processes present in both only)."""
    n = a1["orders"] - a0["orders"]
    if n <= 0:
        raise bp.BenchError("no order was inserted in the measured window")
    parts = {k: 0.0 for k, _ in PARTS}
    server = []
    for key, (part, v1) in a1["cpu"].items():
        if key not in a0["cpu"]:
            continue  # started inside the window: a psql of ours, a new backend
        d = v1 - a0["cpu"][key][1]
        if part == "server":
            server.append(d)
        else:
            parts[part] += d
    if server:
        server.sort()
        parts["server_worker"] = server[-1]
        parts["server_other"] = sum(server[:-1])
    out = {k: v * 1e6 / n for k, v in parts.items()}
    out["sum"] = sum(out[k] for k, _ in PARTS if k not in ("sum", "machine"))
    out["machine"] = (a1["machine"] - a0["machine"]) * 1e6 / n
    out["rate"] = n / (a1["t"] - a0["t"])
    return out


def measure(env, server, proc, duration):
    """Two snapshots inside a load that proc is running; stops proc and returns the account."""
    try:
        time.sleep(SETTLE_S)
        s0 = snapshot(env, server, proc)
        time.sleep(duration - SETTLE_S - 1.0)
        s1 = snapshot(env, server, proc)
    finally:
        bp.wait_proc(proc, duration + 60)
    if proc.returncode not in (0, None):
        raise bp.BenchError(f"{proc.args[0]} exited with {proc.returncode}")
    return account(s0, s1)


def pgbench_proc(env, script_path, duration):
    p = subprocess.Popen([bp.PGBENCH, "-n", "-M", "prepared", "-c", str(CONNS), "-j", "1", "-T", str(int(duration)), "-f",
                          script_path, env["HOTPLATE_PG_URL"]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env={**env, "PGOPTIONS": "-c plan_cache_mode=force_generic_plan"})
    bp.LIVE.append(p)
    return p


def fmt_table(results):
    loads = list(results)
    med = {l: {k: statistics.median(r[k] for r in results[l]) for k in results[l][0]} for l in loads}
    lines = ["| CPU µs per order (median of the rounds) | " + " | ".join(loads) + " |",
             "|---|" + "---|" * len(loads),
             "| orders per second in the window | " + " | ".join(f"{med[l]['rate']:,.0f}" for l in loads) + " |"]
    for key, title in PARTS:
        if all(med[l][key] < 0.05 for l in loads):
            continue
        cells = [f"**{med[l][key]:,.0f}**" if key == "sum" else f"{med[l][key]:,.0f}" for l in loads]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines.append("")
    for l in loads:
        rates = ", ".join(f"{r['rate']:,.0f}" for r in results[l])
        sums = ", ".join(f"{r['sum']:,.0f}" for r in results[l])
        lines.append(f"- {l}: rounds {rates} orders/s; sums {sums} µs per order")
    return "\n".join(lines)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    out = os.path.join(a.home, "out")
    os.makedirs(out, exist_ok=True)
    return bp.run_tool("cpu_split", lambda: split(a, out))


def split(a, out):
    """The rounds and the printed account; returns the exit code."""
    env = ab_servers.stack_env(a.binary, a.home)
    data = wl.Data(env, os.path.join(a.home, "tokens.tsv"))
    if not data.open_items:
        raise bp.BenchError("no restaurant is open for the next two hours in this seed: no checkout can be measured")
    desc = describe(a.binary)
    scripts = {"pgbench, one statement at a time": bench_ceilings.checkout_script(env, desc, data),
               "pgbench, \\startpipeline": bench_ceilings.checkout_pipeline_script(env, desc, data)}
    paths = {}
    for i, (label, text) in enumerate(scripts.items()):
        paths[label] = os.path.join(out, f"cpu-split-{i}.sql")
        with open(paths[label], "w") as f:
            f.write(text)
    req = wl.write_requests(os.path.join(out, "cpu-split-orders.req"),
                            wl.orders(data, 20000, 8, data.open_items, max_lines=1))
    server = bp.start_server(a.binary, env, 1, os.path.join(out, "cpu-split-server.log"),
                             ab_servers.flag_args(["payment_latency_ms=0"]) + shlex.split(a.serve))
    bp.wrk(server.port, req, CONNS, 2, bp.seq_base())  # warm-up: connections, plans, caches
    http = "POST /orders"
    results = {http: [], **{label: [] for label in scripts}}
    def http_load(i):
        seq, wrk_out = bp.seq_base(), os.path.join(out, "cpu-split-wrk.out")
        m = measure(env, server, bp.start_wrk(server.port, req, CONNS, a.duration, seq, wrk_out), a.duration)
        with open(wrk_out) as f:
            w = bp.parse_replay_line(f.read())
        bp.refuse_replays("wrk", w["replayed"], w["requests"], seq)
        if w["status_4xx"] + w["status_5xx"] + w["socket_errors"]:
            raise bp.BenchError(f"POST /orders: answers other than 2xx or socket errors in round {i + 1}: {w}")
        return m

    loads = [(http, http_load)] + [(label, lambda i, p=paths[label]: measure(env, None, pgbench_proc(env, p, a.duration),
                                                                           a.duration)) for label in scripts]
    for i in range(a.rounds):
        # Each round starts with another load: the load after a write-heavy one inherits its dirty buffers and its
        # checkpoint, and no load should always be the one that pays.
        for label, load in bp.rotated(loads, i):
            results[label].append(load(i))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]['rate']:,.0f}/s" for k, v in results.items()), file=sys.stderr,
              flush=True)
    git, host = bench_report.git_state(), bench_report.machine()
    serve = f" --serve {shlex.quote(a.serve)}" if a.serve else ""
    print(f"loadtests/cpu_split.py --home {os.path.relpath(a.home, bp.REPO)} --rounds {a.rounds} --duration {a.duration:g}{serve} "
          f"(tree {git['commit']}{' with changes' if git['dirty'] else ''}; {host['cpus']} CPUs, {host['cpu']})\n")
    print(fmt_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
