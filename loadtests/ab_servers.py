#!/usr/bin/python3
"""Several servers side by side on one route, alternated: a before/after across
builds (two trees, or a tree and a patched copy), where make lab's flags can
only compare values inside one binary.

    PYTHONPATH=tests loadtests/ab_servers.py [--rounds 9] [--duration 3] [--path /healthz] \\
        [--orders] [--ratio A/B ...] [--callgrind N1,N2] LABEL=BINARY[,flag=value...] ...

Each LABEL names one `hotplate serve --threads 1` process of BINARY with the
given runtime flags, all started at once against one stack (.hotplate/ab,
created, migrated and seeded at scale 0.01 on the first run, reused after).
Each round runs `wrk -t1 -c32` for --duration seconds against every server in
turn, each round starting with the next server in the order given
(bench_proc.rotated), with loadtests/bench_proc.py's wrk (the request-file
replay of make lab's ceilings), and records throughput and the
server's CPU time per request (utime + stime of all its threads over the run).
It prints the medians, and for each --ratio A/B the ratio of the medians with
the per-round ratios' median and range.

With --orders the load is POST /orders instead of --path: one-line carts at
restaurants that stay open, replayed under idempotency keys of each run's own
(so no checkout is a replay), with payment_latency_ms=0 on every server. Its
throughput is PostgreSQL's to give; the server's CPU time per checkout is the
figure that compares two builds of the server.

With --callgrind N1,N2 it instead runs each server under callgrind
(--separate-threads=yes) for N1 and then N2 sequential keep-alive requests and
prints (Ir(N2) - Ir(N1)) / (N2 - N1) per thread kind: the worker (the one
that dispatched requests), the log's writer thread, and the rest (the admin
thread's per-second work, startup and shutdown, which the subtraction only
partly cancels). Callgrind counts user-space instructions, not system calls.

Everything started here is stopped on every exit path.
"""

import argparse
import glob
import http.client
import json
import os
import sys

import bench_proc as bp
import bench_workload as wl
import overhead
from hplib import stats
from hplib.server import Server
from hplib.stack import Stack

HOME = os.path.join(bp.REPO, ".hotplate", "ab")
OUT = os.path.join(HOME, "out")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("servers", nargs="+", help="LABEL=BINARY[,flag=value...]")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--path", default="/healthz")
    p.add_argument("--ratio", action="append", default=[], help="A/B: print A's median over B's (repeatable)")
    p.add_argument("--callgrind", help="N1,N2: instructions per request under callgrind instead of throughput")
    p.add_argument("--orders", action="store_true",
                   help="load POST /orders (one-line carts, payment_latency_ms=0 on every server) instead of --path")
    a = p.parse_args(argv)
    a.specs = []
    for s in a.servers:
        label, _, rest = s.partition("=")
        parts = rest.split(",")
        a.specs.append((label, os.path.abspath(parts[0]), parts[1:]))
    return a


def stack_env(binary, home=HOME):
    """The environment of the stack in home: created, migrated and seeded at scale 0.01 the first time, brought up after."""
    if not os.path.exists(os.path.join(home, "env")) or not os.path.exists(os.path.join(home, "tokens.tsv")):
        env, _ = bp.fresh_stack(home, binary, 0.01, bp.Progress(60))
        return env
    Stack(home).run("up")
    return bp.server_env(bp.read_env_file(os.path.join(home, "env")))


def flag_args(flags):
    return [x for f in flags for x in ("--flag", f)]


def throughput(a, env):
    extra = ["payment_latency_ms=0"] if a.orders else []
    servers = {label: bp.start_server(binary, env, 1, os.path.join(OUT, f"{label}.log"), flag_args(extra + flags))
               for label, binary, flags in a.specs}
    if a.orders:
        # 20,000 one-line carts at restaurants open for the next two hours; every
        # run replays them under keys of its own (bench_proc.seq_base), so no
        # checkout is answered as a replay, not even of an earlier invocation's
        # orders on this reused stack.
        data = wl.Data(env, os.path.join(HOME, "tokens.tsv"))
        req = wl.write_requests(os.path.join(OUT, "orders.req"), wl.orders(data, 20000, 8, data.need_open(), max_lines=1))
    else:
        req = wl.write_requests(os.path.join(OUT, "ab.req"), [wl.http_request("GET", a.path)])

    def load(port, duration):
        return bp.wrk(port, req, 32, duration, bp.seq_base())

    for s in servers.values():
        load(s.port, 1)  # warm-up
    rps = {label: [] for label in servers}
    cpu = {label: [] for label in servers}
    for i in range(a.rounds):
        for label, s in bp.rotated(servers.items(), i):
            c0 = s.cpu_seconds()
            w = load(s.port, a.duration)
            if w["status_4xx"] + w["status_5xx"] + w["socket_errors"]:
                raise bp.BenchError(f"{label}: errors in round {i + 1}: {w}")
            cpu[label].append((s.cpu_seconds() - c0) * 1e6 / max(1, w["requests"]))
            rps[label].append(w["rps"])
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rps.items()), file=sys.stderr, flush=True)
    for label in servers:
        print(f"{label}: median {stats.median(rps[label]):,.0f} req/s, CPU {stats.median(cpu[label]):.2f} us/request "
              f"(rounds: {', '.join(f'{x:,.0f}' for x in rps[label])})")
    for r in a.ratio:
        x, y = r.split("/")
        pairs = [p / q for p, q in zip(rps[x], rps[y])]
        cpairs = [p / q for p, q in zip(cpu[x], cpu[y])]
        print(f"{x}/{y}: throughput {stats.median(rps[x]) / stats.median(rps[y]):.3f} (per-round median {stats.median(pairs):.3f}, "
              f"range {min(pairs):.3f}-{max(pairs):.3f}); CPU per request {stats.median(cpairs):.3f}")
    print(json.dumps({"rps": rps, "cpu_us_per_request": cpu}))


def callgrind_run(env, label, binary, flags, n, path):
    out = os.path.join(OUT, f"callgrind.{label}.{n}.out")
    for f in glob.glob(out + "*"):
        os.remove(f)
    s = Server(binary, OUT, name=f"callgrind-{label}-{n}", threads=1, args=["--flag", "slow_request_ms=600000", *flag_args(flags)],
               base_env=dict(env, **overhead.VALGRIND_TIMEOUT_ENV), ready_timeout=180, probe_timeout=10, interval=0.5,
               stop_timeout=60, wrapper=["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"])
    s.start()
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    for _ in range(n):
        c.request("GET", path)
        resp = c.getresponse()
        resp.read()
        if resp.status != 200:
            raise bp.BenchError(f"{s.name}: GET {path} answered {resp.status}")
    c.close()
    if s.stop() != 0:
        raise bp.BenchError(f"{s.name} did not exit cleanly; see {s.log_path}")
    ir = {}
    for f in glob.glob(out + "-*"):
        with open(f, errors="replace") as fh:
            text = fh.read()
        kind = "worker" if "hp__on_req" in text and "hp_stats_merge" not in text else "writer" if "hp__log_writer_main" in text else "rest"
        ir[kind] = ir.get(kind, 0) + overhead.callgrind_totals(f)["Ir"]
    return ir


def instructions(a, env):
    n1, n2 = (int(x) for x in a.callgrind.split(","))
    for label, binary, flags in a.specs:
        r1, r2 = (callgrind_run(env, label, binary, flags, n, a.path) for n in (n1, n2))
        per = {k: (r2.get(k, 0) - r1.get(k, 0)) / (n2 - n1) for k in sorted(set(r1) | set(r2))}
        print(f"{label}: instructions per request " + ", ".join(f"{k} {v:,.0f}" for k, v in per.items()), flush=True)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(OUT, exist_ok=True)

    def body():
        env = stack_env(a.specs[0][1])
        if a.callgrind:
            instructions(a, env)
        else:
            throughput(a, env)
        return 0
    return bp.run_tool("ab_servers", body)


if __name__ == "__main__":
    sys.exit(main())
