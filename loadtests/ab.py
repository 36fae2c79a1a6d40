#!/usr/bin/python3
"""Two builds of the server, one route, one run: the before and after of an
optimization of the default path.

    loadtests/ab.py --before-rev REV [--after-rev REV2] [--path /restaurants/{rid}] [--statement restaurant_get] [--rounds 5]
    loadtests/ab.py --before-rev REV [--after-rev REV2] --orders
    make bench-ab REV=43fd16a                       (the same, from the Makefile)

It builds REV (in build-ab-before/, from `git worktree add` of REV in a
temporary folder) and the current tree (in build-ab-after/), recreates a
private stack in .hotplate/ab, seeds it at scale 0.1, and then alternates, in
each round: wrk (`-t1 -c32`, closed loop, after a warm-up) against the before
server and the after server, the before server first in odd rounds and the
after server first in even ones, one worker thread each (and, on the after
server, the ceiling path, /healthz by default), and pgbench (32
clients, one thread, prepared) running the named statement's SQL as each
build declares it (`hotplate describe --json`), its $1 bound to the same id
the route reads. So a change of a statement's text shows in pgbench, and a
change of the C code around it in wrk.

It prints a Markdown block: each round's figures, the medians, after ÷ before
with its Mann-Whitney p-value (tests/hplib/stats.compare), and the after
route's share of the after statement's pgbench rate (the database ceiling of
a single-statement read). On this shared machine these are measurements with
noise: medians and ratios of one run, never absolute truths.

--before-serve and --after-serve give each server arguments of its own; with
the same revision on both sides (and the same CMake arguments) the tree is
built once, and the run compares two ways of running one build, for example
--db-readers 1 against 2.

With --orders, the route is POST /orders instead (payment_latency_ms=0 on
both servers, so that the simulator's timer is not what is measured): wrk
replays a request file of one-line carts at the seed's open restaurants,
each with an Idempotency-Key of its own (loadtests/replay.lua, as make bench
does), and no pgbench runs, since the two builds may send the checkout as
different statements. That is how a change of the checkout's round trips is
measured.

Like make bench it fails only when something did not work (a build, the
stack, a response other than 200). It uses tests/hplib: run it with
PYTHONPATH=tests:loadtests, as the Makefile does.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import tempfile

import bench_proc
import bench_workload as wl
from hplib import stats
from hplib.describe import describe
from hplib.process import ProcessError, run

REPO = bench_proc.REPO


def build_tree(src, build_dir, cmake_args):
    """Configures and builds the server from src into a fresh build_dir; returns the binary's copy."""
    # CMake refuses a cache made for another source folder, and the before build's sources move every run.
    shutil.rmtree(build_dir, ignore_errors=True)
    run(["cmake", "-S", src, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", *cmake_args], 300)
    run(["cmake", "--build", build_dir, "--target", "hotplate", "-j2"], 900)
    # The server runs from a copy whose name does not contain "hotplate" (see bench_proc.build).
    copy = os.path.join(build_dir, "hpab-server")
    shutil.copy2(os.path.join(build_dir, "hotplate"), copy)
    return copy


def build_rev(rev, build_dir, cmake_args):
    """Builds the server at git revision rev (a temporary worktree) into build_dir."""
    src = tempfile.mkdtemp(prefix="hotplate-ab-")
    try:
        run(["git", "-C", REPO, "worktree", "add", "--detach", "-f", src, rev], 120)
        return build_tree(src, build_dir, cmake_args)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", src], check=False, capture_output=True)
        shutil.rmtree(src, ignore_errors=True)


def wrk_rps(port, path, duration):
    out = run(["wrk", "-t1", "-c32", f"-d{duration}s", "--timeout", "10s", f"http://127.0.0.1:{port}{path}"], duration + 60)
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m or "Non-2xx" in out:
        raise ProcessError(f"wrk on {path}: no rate, or responses other than 2xx:\n{out[-1500:]}")
    return float(m.group(1))


def wrk_orders(port, requests_file, duration, seq_prefix):
    w = bench_proc.wrk(port, requests_file, 32, duration, seq_prefix)
    if w["status_4xx"] + w["status_5xx"] + w["socket_errors"]:
        raise ProcessError(f"wrk on POST /orders: answers other than 2xx or socket errors: {w}")
    return w["rps"]


def statement_script(desc, name, rid):
    sql = " ".join(desc.sql(name).split()).replace("$1", str(rid))
    if re.search(r"\$\d", sql):
        raise ProcessError(f"statement {name} takes more than one parameter; ab.py binds only $1")
    return sql + ";\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-rev", required=True, help="git revision of the before build")
    ap.add_argument("--after-rev", default="",
                    help="git revision of the after build (default: the current tree), to measure one commit alone")
    ap.add_argument("--before-serve", default="", help="extra arguments of the before server (one string), e.g. '--db-readers 1'")
    ap.add_argument("--after-serve", default="", help="extra arguments of the after server (one string), e.g. '--db-readers 2'")
    ap.add_argument("--before-cmake", default="", help="extra CMake arguments of the before build (one string)")
    ap.add_argument("--after-cmake", default="", help="extra CMake arguments of the after build, e.g. "
                    "'-DCMAKE_BUILD_TYPE=Release' (with --before-rev HEAD: a build flag's effect alone)")
    ap.add_argument("--path", default="/restaurants/{rid}", help="the route's path; {rid} is a restaurant id")
    ap.add_argument("--statement", default="restaurant_get", help="the named statement pgbench runs, with $1 = rid")
    ap.add_argument("--ceiling", default="/healthz",
                    help="a path wrk also loads on the after server in each round, the route's HTTP ceiling ('' for none)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured load")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--orders", action="store_true",
                    help="measure POST /orders (payment_latency_ms=0) instead of --path; no pgbench, no ceiling")
    a = ap.parse_args()

    progress = bench_proc.Progress(0)
    try:
        progress.log(f"building {a.before_rev} and the current tree")
        before = build_rev(a.before_rev, os.path.join(REPO, "build-ab-before"), shlex.split(a.before_cmake))
        after_dir = os.path.join(REPO, "build-ab-after")
        if a.after_rev == a.before_rev and a.after_cmake == a.before_cmake:
            after = before  # one build, two ways of running it (--before-serve, --after-serve)
        else:
            after = (build_rev(a.after_rev, after_dir, shlex.split(a.after_cmake)) if a.after_rev
                     else build_tree(REPO, after_dir, shlex.split(a.after_cmake)))
        env, tokens = bench_proc.fresh_stack(os.path.join(REPO, ".hotplate", "ab"), after, a.scale, progress)
        rid = int(bench_proc.psql_rows(env, "SELECT min(id) FROM restaurants")[0][0])
        path = "POST /orders" if a.orders else a.path.format(rid=rid)
        logs = os.path.join(REPO, ".hotplate", "ab")
        if a.orders:
            data = wl.Data(env, tokens)
            orders_file = wl.write_requests(os.path.join(logs, "orders.req"), wl.orders(data, 20000, 8, data.need_open(), max_lines=1))
            scripts, a.ceiling, extra = {}, "", ["--flag", "payment_latency_ms=0"]
        else:
            scripts = {k: statement_script(describe(b), a.statement, rid) for k, b in (("before", before), ("after", after))}
            extra = []
        serve = {"before": shlex.split(a.before_serve), "after": shlex.split(a.after_serve)}

        def load(port, duration):
            """One measured load on the route; each orders run has idempotency keys of its own (bench_proc.seq_base)."""
            if not a.orders:
                return wrk_rps(port, path, duration)
            return wrk_orders(port, orders_file, duration, bench_proc.seq_base())
        rps = {"before": [], "after": []}
        tps = {"before": [], "after": []}
        ceiling = []
        for rnd in range(1, a.rounds + 1):
            # The two builds take turns at going first (bench_proc.rotated).
            for k, binary in bench_proc.rotated((("before", before), ("after", after)), rnd - 1):
                server = bench_proc.start_server(binary, env, 1, os.path.join(logs, f"server-{k}.log"), extra + serve[k])
                try:
                    load(server.port, 2)  # warm-up: connections, prepared statements, caches
                    rps[k].append(load(server.port, a.duration))
                    if k == "after" and a.ceiling:
                        ceiling.append(wrk_rps(server.port, a.ceiling, a.duration))
                finally:
                    server.stop()
            for k in scripts:
                t = bench_proc.pgbench(env, scripts[k], os.path.join(logs, f"pgbench-{k}.sql"), 32, a.duration)
                tps[k].append(t["tps"])
            progress.log(f"round {rnd}: http {rps['before'][-1]:.0f} -> {rps['after'][-1]:.0f} req/s" +
                         (f", pgbench {tps['before'][-1]:.0f} -> {tps['after'][-1]:.0f} tps" if scripts else ""))
    finally:
        bench_proc.stop_all()

    head = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], 30).strip()
    cm = "".join(f" --{k}-cmake {shlex.quote(v)}" for k, v in (("before", a.before_cmake), ("after", a.after_cmake)) if v)
    cm += "".join(f" --{k}-serve {shlex.quote(v)}" for k, v in (("before", a.before_serve), ("after", a.after_serve)) if v)
    what = "--orders" if a.orders else f"--path {a.path} --statement {a.statement}"
    after_what = f"--after-rev {a.after_rev} " if a.after_rev else ""
    after_is = f"revision {a.after_rev}" if a.after_rev else f"the tree at {head}"
    print(f"loadtests/ab.py --before-rev {a.before_rev} {after_what}{cm.lstrip()}{' ' if cm else ''}{what} "
          f"--rounds {a.rounds} --duration {a.duration}{f' --scale {a.scale:g}' if a.scale != 0.1 else ''} "
          f"(after: {after_is}, {os.cpu_count()} cores)\n")
    if a.orders:
        print("| round | POST /orders before (req/s) | POST /orders after |")
        print("|---|---|---|")
        for i in range(a.rounds):
            print(f"| {i + 1} | {rps['before'][i]:,.0f} | {rps['after'][i]:,.0f} |")
    else:
        print("| round | GET before (req/s) | GET after | pgbench before (tps) | pgbench after |")
        print("|---|---|---|---|---|")
        for i in range(a.rounds):
            print(f"| {i + 1} | {rps['before'][i]:,.0f} | {rps['after'][i]:,.0f} | {tps['before'][i]:,.0f} | {tps['after'][i]:,.0f} |")
    print()
    for label, xs in ((path if a.orders else "GET " + path, rps), (f"pgbench {a.statement}", tps)):
        if not xs["before"]:
            continue
        c = stats.compare(xs["before"], xs["after"], higher_is_better=True)
        print(f"- {label}: median {c['before_median']:,.0f} -> {c['after_median']:,.0f}, "
              f"after ÷ before {c['after_median'] / c['before_median']:.2f} (p = {c['p']:.3f}, {c['verdict']})")
    if not tps["after"]:
        return
    shares = sorted(r / t for r, t in zip(rps["after"], tps["after"]))
    print(f"- the after route's share of pgbench running its statement: median {stats.median(shares):.2f} "
          f"(rounds {shares[0]:.2f}-{shares[-1]:.2f})")
    if ceiling:
        for k in ("before", "after"):
            shares = sorted(r / c for r, c in zip(rps[k], ceiling))
            print(f"- the {k} route's share of the after server's GET {a.ceiling} ({', '.join(f'{c:,.0f}' for c in ceiling)} "
                  f"req/s): median {stats.median(shares):.2f} (rounds {shares[0]:.2f}-{shares[-1]:.2f})")


if __name__ == "__main__":
    main()
