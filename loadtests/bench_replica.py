#!/usr/bin/python3
"""Read scaling, measured: the database-bound reads with replica_reads off and
on, alternated in one run (issue 17, item 4).

    PYTHONPATH=tests:loadtests loadtests/bench_replica.py [--rounds 5] [--duration 3] [--threads 1] [--scale 0.05] \\
        [--binary build/hotplate]
    make bench-replica                               (the same, from the Makefile)

It recreates a private HA stack in .hotplate/replica (deploy/stack.sh up with
HA=1: a primary and a synchronous streaming standby), seeds it at --scale, and
starts one server with menu_cache=off (so every menu read is the uncached
menu_get) and the standby's URL (HOTPLATE_PG_REPLICA_URL from the stack's env
file). Two loads, each a request file replayed by wrk -t1 -c32 for --duration
seconds after a one-second warm-up: the menu of restaurants drawn by Zipf
popularity, and the first page of order history of customers who have one.
In each round, for each load, the flag is switched with POST /debug/flags
and both values run, in an order that alternates between rounds (off then on,
on then off), so drift on this shared machine falls on both equally. Each run
also checks where the reads went: with the flag on, pool.replica_reads must
grow by at least the run's requests and nothing may fall back; off, it must
not move. A non-200 answer fails the run.

It prints a Markdown block for docs/BENCHMARKS.md: each round's throughput,
the medians, on ÷ off with the per-round ratios' range, and the Mann-Whitney
p-value (tests/hplib/stats.compare). The primary, the standby, the server
and wrk share this machine's cores, so moving reads to a standby on the same
machine adds no CPU: what it can win is PostgreSQL's own work spread over
two instances, and what it costs is a second connection per thread. The ratio
is reported as measured, above 1 or not.

Without --binary it builds build-bench/ (as make bench does). Everything
started here is stopped on every exit path, and the stack is destroyed.
"""

import argparse
import datetime
import os
import sys
import time

import bench_proc as bp
import bench_workload as wl
from hplib import process
from hplib import stats
from hplib.stack import STACK_SH, Stack

HOME = os.path.join(bp.REPO, ".hotplate", "replica")
LOADS = ("menu", "history")
CONNECTIONS = 32


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", type=float, default=0.05)
    p.add_argument("--binary", help="a built hotplate (default: build build-bench/ from this tree)")
    return p.parse_args(argv)


def ha_stack(binary, scale):
    """Recreates the HA stack in HOME, migrated and seeded; returns (server env, tokens file)."""
    st = Stack(HOME, timeout=300)
    st.run("destroy", check=False)
    process.run([STACK_SH, "up", "--home", HOME], 300, env=dict(os.environ, HA="1"))
    stack_env = bp.read_env_file(os.path.join(HOME, "env"))
    if not stack_env.get("HOTPLATE_PG_REPLICA_URL"):
        raise bp.BenchError("the HA stack's env file has no HOTPLATE_PG_REPLICA_URL")
    env = bp.server_env(stack_env)
    tokens = os.path.join(HOME, "tokens.tsv")
    st.migrate_and_seed(binary, env, scale, tokens, timeout=900)
    return env, tokens


def set_flag(server, value):
    server.admin_json("POST", "/debug/flags", {"replica_reads": value})
    got = server.admin_json("GET", "/debug/perf?section=flags")["flags"]["replica_reads"]["value"]
    if got != value:
        raise bp.BenchError(f"replica_reads is {got}, asked {value}")


def pool(server):
    return server.admin_json("GET", "/debug/perf?section=pool")["pool"]


def one_run(server, req_file, value, duration, seq):
    """Warm-up, then the measured wrk run; returns its throughput after checking the answers and where the reads went."""
    set_flag(server, value)
    bp.wrk(server.port, req_file, CONNECTIONS, 1.0, seq)
    p0 = pool(server)
    w = bp.wrk(server.port, req_file, CONNECTIONS, duration, seq + 1)
    p1 = pool(server)
    if w["status_4xx"] or w["status_5xx"] or w["socket_errors"]:
        raise bp.BenchError(f"replica_reads={value}: non-200 answers or socket errors: {w}")
    moved = p1["replica_reads"] - p0["replica_reads"]
    fell = p1["replica_fallbacks"] - p0["replica_fallbacks"]
    if value == "on" and (moved < w["requests"] or fell):
        raise bp.BenchError(f"replica_reads=on: {moved} standby reads for {w['requests']} requests, {fell} fallbacks")
    if value == "off" and moved:
        raise bp.BenchError(f"replica_reads=off: {moved} reads went to the standby")
    return w["rps"]


def render(a, results, started):
    out = []
    w = out.append
    when = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"Measured {when}: `loadtests/bench_replica.py --rounds {a.rounds} --duration {a.duration:g} --threads {a.threads} "
      f"--scale {a.scale:g}` (wrk -t1 -c{CONNECTIONS}, one server thread per --threads, menu_cache=off; load average at "
      f"the end {os.getloadavg()[0]:.2f}).")
    w("")
    w("| load | round | replica_reads=off req/s | replica_reads=on req/s | on ÷ off |")
    w("|---|---:|---:|---:|---:|")
    for load in LOADS:
        for i, (off, on) in enumerate(zip(results[load]["off"], results[load]["on"])):
            w(f"| {load} | {i + 1} | {off:,.0f} | {on:,.0f} | {on / off:.3f} |")
    w("")
    w("| load | median off req/s | median on req/s | on ÷ off (medians) | per-round ratios | Mann-Whitney p |")
    w("|---|---:|---:|---:|---|---:|")
    for load in LOADS:
        off, on = results[load]["off"], results[load]["on"]
        c = stats.compare(off, on, higher_is_better=True)
        ratios = [b / x for x, b in zip(off, on)]
        w(f"| {load} | {c['before_median']:,.0f} | {c['after_median']:,.0f} | {c['after_median'] / c['before_median']:.3f} | "
          f"{min(ratios):.3f} to {max(ratios):.3f} (median {stats.median(ratios):.3f}) | {c['p']:.3f} |")
    return "\n".join(out)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    progress = bp.Progress(a.rounds * len(LOADS) * 2 * (a.duration + 2) + 120)
    out_dir = os.path.join(HOME, "out")
    try:
        if a.binary:
            binary = os.path.abspath(a.binary)
        else:
            progress.log("building build-bench/")
            binary, _ = bp.build(os.path.join(bp.REPO, "build-bench"))
        progress.log(f"stack: recreating {os.path.relpath(HOME, bp.REPO)} with HA=1, seeding at scale {a.scale}")
        env, tokens = ha_stack(binary, a.scale)
        os.makedirs(out_dir, exist_ok=True)
        data = wl.Data(env, tokens)
        files = {}
        for load, reqs in (("menu", wl.menu_zipf(data, 20000, 1)), ("history", wl.history(data, 20000, 2, limit=10))):
            files[load] = os.path.join(out_dir, f"{load}.req")
            wl.write_requests(files[load], reqs)
        server = bp.start_server(binary, env, a.threads, os.path.join(out_dir, "server.log"), ["--flag", "menu_cache=off"])
        # The standby connections come up beside the primary's; the flag's first run checks that they serve.
        time.sleep(1.0)
        results = {load: {"off": [], "on": []} for load in LOADS}
        seq = 1
        for r in range(a.rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for load in LOADS:
                for value in order:
                    rps = one_run(server, files[load], value, a.duration, seq)
                    seq += 2
                    results[load][value].append(rps)
                    progress.log(f"round {r + 1}/{a.rounds} {load} replica_reads={value}: {rps:,.0f} req/s")
        server.stop()
        print(render(a, results, started))
        return 0
    except (bp.BenchError, KeyboardInterrupt, OSError) as e:
        print(f"bench_replica: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        bp.stop_all()
        try:
            Stack(HOME, timeout=300).run("destroy", check=False)
        except bp.BenchError as e:
            print(f"bench_replica: destroying the stack: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
