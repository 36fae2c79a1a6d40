#!/usr/bin/python3
"""Probe overhead: the probes-ON build against the probes-OFF build.

    loadtests/overhead.py [--runs 9] [--duration 5] [--reps 3] ...   (--help lists all)
    make bench-overhead runs it with the defaults, in about 10 minutes.

This is a benchmark, not a test: it measures and prints, and fails (exit 1)
only when something did not work: a build, the stack, a response other than
the expected 200 or 201, a server that died. Whether the goals are met is in
the table it prints, not in its exit status, because on a shared machine a
throughput figure is a measurement with noise, not a pass/fail fact.

It builds both variants from the current tree with the same CMake flags apart
from HOTPLATE_PROBES, in build directories of its own (build-bench-on/ and
build-bench-off/, so a developer's build/ is neither rebuilt nor raced),
recreates a private stack in .hotplate/bench, seeds it at scale 0.01, and
measures two routes:

- menu: GET /restaurants/{id}/menu, served from the Redis cache (X-Cache: hit);
- checkout: POST /orders, a new order per request, with the flag
  payment_latency_ms=0 so that the route's CPU cost is measured and not the
  payment simulator's timer.

Two measurements per route:

1. Throughput. Both servers run side by side, one worker thread each (so the
   server, not the machine's spare core, is the bottleneck), and wrk (closed
   loop, one thread) loads one at a time, alternating ON, OFF, ON, OFF...
   after a warm-up of each. Reported: each build's median requests/s with its
   min-max, the ratio of the medians, and the median of the ON/OFF ratios of
   adjacent runs (which share the machine's conditions) with a 95%
   distribution-free interval, so the noise is visible next to the 2% goal.
   The server's CPU time per request (utime + stime over the run) is reported
   the same way, as a ratio only.
2. Instructions per request. Each build runs under callgrind with one worker
   thread, answers N1 sequential requests and is stopped with SIGTERM; then
   again with N2. (Ir(N2) - Ir(N1)) / (N2 - N1) of the worker thread cancels
   startup, readiness polling and shutdown. Callgrind counts instructions,
   not time, so this figure barely depends on the machine's load; the
   repetitions (--reps) show what noise is left. Callgrind does not see the
   vDSO, so the script also counts clock_gettime calls per request and prices
   the probes' extra ones with pg_test_timing, except the reads of the
   thread's CPU clock (hp_thread_cpu_ns, counted by name), which are system
   calls natively too and are priced by a measurement of their own. Callgrind runs with
   --cache-sim=yes, and the simulated cache misses per request are reported
   too: the probes touch memory of their own, which instructions do not show.

3. Continuous profiling. Two servers of the probes-ON build side by side,
   one with the flag profile_every_s=0 (off) and one with profile_every_s=10
   (a 5 s CPU profile and heap window every 10 s, each then encoded to
   pprof's format by a child process and written to a folder), and wrk
   alternating between them on the cached menu, one 10 s run each, so every
   run of the profiling server holds exactly one round. Reported like the
   throughput above, with the share of time a profile runs (5 s in 10 here;
   10 s in 60 in the local stack), since the cost grows with it.

Everything it starts (servers, the stack) is stopped on every exit path, and a
watchdog bounds the whole run (--time-limit, default 900 s). Raw outputs
(wrk lines, callgrind files, server logs) stay in .hotplate/bench/overhead/ for
a post-mortem. Only the Python standard library is used; run it with Debian's
/usr/bin/python3, with PYTHONPATH=tests from the repository's root (it uses
tests/hplib; make bench-overhead sets it).
"""

import argparse
import fcntl
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time

# Shared with make bench and make lab: the error that voids a run, and the stack's env file.
from bench_proc import BenchError, read_env_file
from hplib import process, stats
from hplib.process import Exited
from hplib.server import Server
from hplib.stack import Stack
from hplib.tokens import read_tokens

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
HOME = os.path.join(REPO, ".hotplate", "bench")
OUT = os.path.join(HOME, "overhead")
BUILDS = (("on", "ON"), ("off", "OFF"))  # (name, HOTPLATE_PROBES value); ON first in every pair
ROUTES = ("menu", "checkout")
ROUTE_TITLES = {"menu": "GET /restaurants/{id}/menu (cached)", "checkout": "POST /orders"}
THROUGHPUT_GOAL = 0.98  # ON/OFF requests/s: at most 2% fewer with the probes
INSTRUCTIONS_GOAL = 1.03  # ON/OFF instructions per request: at most 3% more
CP_EVERY = 10  # continuous profiling's interval in the measurement, s (a profile of half of it, see above)
READY_SECONDS = 60
READY_SECONDS_VALGRIND = 180
STOP_SECONDS = 30
# Under callgrind every request takes ~50 times longer, so the client-side
# deadlines inside the server must not fire where a native run would not.
VALGRIND_TIMEOUT_ENV = {
    "HOTPLATE_DB_TIMEOUT_MS": "120000",
    "HOTPLATE_STATEMENT_TIMEOUT_MS": "120000",
    "HOTPLATE_POOL_TIMEOUT_MS": "120000",
    "HOTPLATE_REDIS_TIMEOUT_MS": "120000",
    "HOTPLATE_PAYMENT_TIMEOUT_MS": "120000",
}

T0 = time.monotonic()


class TimeLimit(BenchError):
    pass


class ServerGone(BenchError):
    """A server exited with status 0 before this script stopped it: something
    else on this shared machine sent it SIGTERM."""


def log(msg):
    print(f"[overhead {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout, **kw):
    """hplib.process.run (killed after timeout seconds, returns its stdout),
    but stderr goes to the terminal unless the call captures it: psql's and
    git's notices must not mix with the output this script parses."""
    kw.setdefault("stderr", None)
    return process.run(cmd, timeout, tail_lines=30, **kw)


# ---------------------------------------------------------------- builds


def build(name, probes):
    """Configures and builds the hotplate binary in build-bench-NAME; returns its path."""
    d = os.path.join(REPO, f"build-bench-{name}")
    log(f"building probes {probes} in {os.path.relpath(d, REPO)}")
    run(["cmake", "-S", REPO, "-B", d, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DHOTPLATE_PROBES={probes}"], 300,
        stderr=subprocess.STDOUT)
    run(["cmake", "--build", d, "--target", "hotplate", "-j2"], 600, stderr=subprocess.STDOUT)
    binary = os.path.join(d, "hotplate")
    # The USDT notes are the visible trace of the probes: ON must have them and
    # OFF none, or the OFF build did not compile the probes out.
    notes = run(["readelf", "-n", binary], 60).count("stapsdt")
    if (notes > 0) != (probes == "ON"):
        raise BenchError(f"{binary}: {notes} USDT notes with HOTPLATE_PROBES={probes}")
    # The servers run from a copy whose name and path do not contain
    # "hotplate", so that someone's `pkill -f hotplate` on this shared machine
    # does not end a measurement half-way.
    copy = os.path.join(d, f"hpbench-{name}")
    shutil.copy2(binary, copy)
    return copy


# ---------------------------------------------------------------- stack


def stack(cmd):
    Stack(HOME).run(cmd)


def read_stack_env():
    return read_env_file(os.path.join(HOME, "env"))


def base_env(stack_env):
    """The caller's environment without its HOTPLATE_* settings, plus the stack's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPLATE_")}
    env.update(stack_env)
    return env


def psql(env, sql):
    return run(["psql", env["HOTPLATE_PG_URL"], "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], 60, env=env).strip()


def pick_target(env):
    """A restaurant open now and for the next hour (always-open ones first) and one
    of its available items with untracked stock, so every checkout is a 201."""
    row = psql(env, """
        SELECT r.id, i.id FROM restaurants r JOIN menu_items i ON i.restaurant_id = r.id
        WHERE i.available AND i.stock IS NULL
          AND hp_is_open(r.open_minute, r.close_minute, now())
          AND hp_is_open(r.open_minute, r.close_minute, now() + interval '1 hour')
        ORDER BY (r.open_minute = 0 AND r.close_minute = 1440) DESC, r.id, i.id LIMIT 1""")
    if not row:
        raise BenchError("no restaurant open for the next hour with an available, untracked item")
    rid, iid = (int(x) for x in row.split("|"))
    return rid, iid


# ---------------------------------------------------------------- servers


def start_server(label, binary, env, threads, extra_args, callgrind_out=None):
    """Starts one hotplate serve process (under callgrind with callgrind_out)
    in exactly env, its output in OUT/server-LABEL.log, and returns it (an
    hplib.server.Server) once GET /readyz answers 200. A server that exits
    with 0 before that was stopped by someone else: ServerGone.

    Every server started stays in hplib.process.STARTED, so a signal that
    interrupts a stop leaves it to the final cleanup in main()."""
    wrapper = []
    if callgrind_out is not None:
        # Relative to cwd=OUT, which keeps ".hotplate" out of the command line (see build()).
        wrapper = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--cache-sim=yes",
                   f"--callgrind-out-file={os.path.relpath(callgrind_out, OUT)}"]
    s = Server(binary, OUT, name=label, threads=threads, args=extra_args, base_env=env, log_path=os.path.join(OUT, f"server-{label}.log"),
               wrapper=wrapper, ready_timeout=READY_SECONDS_VALGRIND if wrapper else READY_SECONDS, probe_timeout=30, interval=0.2,
               stop_timeout=STOP_SECONDS)
    try:
        return s.start()
    except Exited as e:
        raise (ServerGone if e.returncode == 0 else BenchError)(
            f"server {label} exited with {e.returncode} before it was ready; see {s.log_path}") from e


def stop(s):
    """SIGTERM, then SIGKILL after STOP_SECONDS; returns the exit status."""
    if s.stop() is None:
        log(f"server {s.name} ignored SIGTERM for {STOP_SECONDS}s and was killed")
    return s.proc.returncode


# ---------------------------------------------------------------- a sequential client


class Client:
    """Sends the benchmark's requests one at a time on one keep-alive connection and
    checks every answer, so a run never counts an error as a request."""

    def __init__(self, port, target, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.rid, self.iid = target
        self.token = token
        self.prefix = "cg-" + secrets.token_hex(4)
        self.counter = 0

    def menu(self):
        self.conn.request("GET", f"/restaurants/{self.rid}/menu")
        resp = self.conn.getresponse()
        resp.read()
        if resp.status != 200 or resp.getheader("X-Cache") != "hit":
            raise BenchError(f"menu: status {resp.status}, X-Cache {resp.getheader('X-Cache')} (expected 200, hit)")

    def checkout(self):
        self.counter += 1
        body = f'{{"restaurant_id":{self.rid},"items":[{{"item_id":{self.iid},"quantity":1}}]}}'
        self.conn.request("POST", "/orders", body=body, headers={
            "Authorization": f"Bearer {self.token}", "Idempotency-Key": f"{self.prefix}-{self.counter}",
            "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 201:
            raise BenchError(f"checkout: status {resp.status}: {data[:200]!r}")

    def close(self):
        self.conn.close()


def warm_menu(port, target):
    """Loads the menu into Redis (a miss stores it) and checks that the next read hits."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(2):
        c.request("GET", f"/restaurants/{target[0]}/menu")
        r = c.getresponse()
        r.read()
    c.close()
    if r.status != 200 or r.getheader("X-Cache") != "hit":
        raise BenchError(f"menu not cached after a warm-up read: {r.status} X-Cache {r.getheader('X-Cache')}")


# ---------------------------------------------------------------- throughput


def wrk(args, port, route, target, tokens_file, duration, tag):
    if route == "menu":
        cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "-s", os.path.join(REPO, "loadtests", "report.lua"),
               f"http://127.0.0.1:{port}/restaurants/{target[0]}/menu"]
    else:
        cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "-s", os.path.join(REPO, "loadtests", "checkout.lua"),
               f"http://127.0.0.1:{port}", "--", f"{tag}-{secrets.token_hex(4)}", str(target[0]), str(target[1]),
               os.path.relpath(tokens_file, OUT)]
    # cwd=OUT keeps ".hotplate" out of wrk's command line too (see build()).
    out = run(cmd, duration + 60, stderr=subprocess.STDOUT, cwd=OUT)
    process.trim_logs()  # between runs, the servers' request logs are cut to a bounded size
    with open(os.path.join(OUT, "wrk.txt"), "a") as f:
        f.write(f"== {tag}: {' '.join(cmd)}\n{out}\n")
    m = re.search(r"^HPBENCH requests=(\d+) duration_us=(\d+) status_errors=(\d+) socket_errors=(\d+)$", out, re.M)
    if not m:
        raise BenchError(f"wrk printed no HPBENCH line for {tag}")
    reqs, us, status_errors, socket_errors = (int(x) for x in m.groups())
    if status_errors or socket_errors or reqs == 0:
        raise BenchError(f"{tag}: {reqs} requests, {status_errors} error statuses, {socket_errors} socket errors")
    return reqs / (us / 1e6), reqs


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks (1/100 s)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after the ")"


def throughput(args, binaries, env, target, tokens_file):
    """Alternating wrk runs against two servers that run side by side; returns
    {route: {"on": [req/s...], "off": [...]}} and the same for the server's CPU
    time per request, list index = pair number.

    CPU time per request is printed next to throughput because, on a shared
    machine, throughput mostly follows the share of the CPU the server got,
    while its CPU time per request does not."""
    extra = ["--flag", "payment_latency_ms=0", "--menu-cache-ttl-s", "86400"]
    servers, restarts = {}, 0

    def start(name):
        servers[name] = start_server(f"throughput-{name}-{restarts}", binaries[name], env, args.server_threads, extra)

    def pair(route, i):
        rps, per_req = {}, {}
        for name, _ in BUILDS:
            pid = servers[name].proc.pid
            before = cpu_ticks(pid)
            rps[name], reqs = wrk(args, servers[name].port, route, target, tokens_file, args.duration, f"{route}-{name}-{i + 1}")
            per_req[name] = (cpu_ticks(pid) - before) / reqs
        return rps, per_req

    results, cpu = {}, {}
    try:
        for name, _ in BUILDS:
            start(name)
        warm_menu(servers["on"].port, target)
        for route in ROUTES:
            for name, _ in BUILDS:
                log(f"{route}: warm-up of probes {name} ({args.warmup}s)")
                wrk(args, servers[name].port, route, target, tokens_file, args.warmup, f"{route}-{name}-warmup")
            results[route] = {name: [] for name, _ in BUILDS}
            cpu[route] = {name: [] for name, _ in BUILDS}
            i = 0
            while i < args.runs:
                try:
                    rps, per_req = pair(route, i)
                except (BenchError, OSError) as e:
                    # A server that exited with 0 got a SIGTERM from someone else
                    # on this shared machine: start it again and redo the pair.
                    gone = [name for name, _ in BUILDS if servers[name].proc.poll() == 0]
                    if not gone or restarts >= 3:
                        raise
                    restarts += 1
                    log(f"{route}: pair {i + 1}: servers {gone} were stopped from outside ({e}); restarting them")
                    for name in gone:
                        stop(servers[name])
                        start(name)
                    continue
                for name, _ in BUILDS:
                    results[route][name].append(rps[name])
                    cpu[route][name].append(per_req[name])
                log(f"{route}: pair {i + 1}/{args.runs}: ON {rps['on']:.0f} req/s, OFF {rps['off']:.0f} req/s")
                i += 1
            if route == "menu":
                for s in servers.values():
                    warm_menu(s.port, target)  # still served from the cache at the end
    finally:
        for s in servers.values():
            stop(s)
    for s in servers.values():
        if s.proc.returncode != 0:
            raise BenchError(f"server {s.name} exited with {s.proc.returncode}; see {s.log_path}")
    return results, cpu


def continuous(args, binary, env, target, tokens_file):
    """Alternating wrk runs on the cached menu against two servers of the same
    binary, continuous profiling off and on (profile_every_s=CP_EVERY); returns
    ({"on": [req/s...], "off": [...]}, the same for CPU time per request)."""
    folder = os.path.join(OUT, "profiles")
    extra = ["--flag", "payment_latency_ms=0", "--menu-cache-ttl-s", "86400"]
    flags = {"on": ["--flag", f"profile_every_s={CP_EVERY}", "--profile-dir", folder, "--profile-keep", "4"],
             "off": ["--flag", "profile_every_s=0"]}
    servers = {}
    rps = {"on": [], "off": []}
    cpu = {"on": [], "off": []}
    try:
        for name in ("on", "off"):
            servers[name] = start_server(f"continuous-{name}", binary, env, args.server_threads, extra + flags[name])
            warm_menu(servers[name].port, target)
        for name in ("on", "off"):
            wrk(args, servers[name].port, "menu", target, tokens_file, args.warmup, f"continuous-{name}-warmup")
        for i in range(args.runs):
            for name in ("on", "off"):
                pid = servers[name].proc.pid
                before = cpu_ticks(pid)
                r, reqs = wrk(args, servers[name].port, "menu", target, tokens_file, CP_EVERY, f"continuous-{name}-{i + 1}")
                rps[name].append(r)
                cpu[name].append((cpu_ticks(pid) - before) / reqs)
            log(f"continuous profiling: pair {i + 1}/{args.runs}: ON {rps['on'][-1]:.0f} req/s, OFF {rps['off'][-1]:.0f} req/s")
        saved = json.loads(http_get(servers["on"].admin_port, "/debug/pprof/history"))["rounds"]
    finally:
        for s in servers.values():
            stop(s)
    if saved["saved"] == 0 or saved["failed"] != 0:
        raise BenchError(f"continuous profiling saved no profile (or failed some): {saved}")
    return rps, cpu, saved


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise BenchError(f"GET {path}: {r.status}")
    return body


# ---------------------------------------------------------------- instructions


def callgrind_totals(path):
    """The totals line of a profile as {event: count}: Ir, and with --cache-sim
    the simulated misses I1mr, D1mr, D1mw (first level) and ILmr, DLmr, DLmw
    (last level)."""
    events, totals = None, None
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("totals:", "summary:")):
                totals = [int(x) for x in line.split()[1:]]
    if events is None or totals is None:
        raise BenchError(f"{path}: no events or totals line")
    return dict(zip(events, totals))


def callgrind_calls(path, callee):
    """How many calls the profile records to functions whose name starts with callee.

    Callgrind's format names a function once, as "fn=(id) name", and later by
    its id alone; every call arc is a "calls=COUNT ..." line after the callee's
    "cfn=" line."""
    names, callee_name, total = {}, None, 0
    pattern = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    with open(path) as f:
        for line in f:
            m = pattern.match(line.rstrip("\n"))
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    callee_name = names.get(m.group(1), "")
            elif line.startswith("calls=") and callee_name is not None and callee_name.startswith(callee):
                total += int(line[6:].split()[0])
    return total


def worker_thread_file(out):
    """The profile of the one API worker thread of a --threads 1 server.

    With --separate-threads=yes callgrind writes one file per thread, numbered
    in creation order: the main thread (which only waits for a signal), the
    index thread (services/pgindex.c), the worker (every request runs there,
    probes included) and the admin thread (common/runtime/server.c starts the
    workers, then the admin thread). The worker is told apart by what it ran:
    it dispatched requests (hp__on_req) and never merged the probes
    (hp_stats_merge), which only the admin thread does. The admin thread
    samples jemalloc's statistics and merges the probes once a second in both
    builds: that is work per second, not per request, and under callgrind's
    slowdown it would otherwise show up as several per cent of every request."""
    files = sorted(f for f in os.listdir(os.path.dirname(out)) if f.startswith(os.path.basename(out) + "-"))
    workers = []
    for f in files:
        with open(os.path.join(os.path.dirname(out), f), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if "hp__on_req" in text and "hp_stats_merge" not in text:
            workers.append(f)
    if len(workers) != 1:
        raise BenchError(f"{out}: expected one worker thread's file among {files}, found {workers}")
    return os.path.join(os.path.dirname(out), workers[0])


def callgrind_run(binary, name, env, route, n, rep, target, token):
    """Runs one server under callgrind for n requests; returns the worker thread's
    Ir, clock_gettime calls and simulated first- and last-level cache misses."""
    out = os.path.join(OUT, f"callgrind.{route}.{name}.{n}.rep{rep + 1}.out")
    vg_env = dict(env, **VALGRIND_TIMEOUT_ENV)
    # slow_request_ms: under callgrind every request is "slow"; filling the slow
    # ring is not what the probes cost on a normal request, so it is kept out.
    extra = ["--flag", "payment_latency_ms=0", "--flag", "slow_request_ms=600000", "--menu-cache-ttl-s", "86400"]
    s = start_server(f"callgrind-{route}-{name}-{n}", binary, vg_env, 1, extra, callgrind_out=out)
    try:
        c = Client(s.port, target, token)
        send = c.menu if route == "menu" else c.checkout
        try:
            for _ in range(n):
                send()
        except (OSError, http.client.HTTPException) as e:
            gone = s.proc.poll() == 0
            raise (ServerGone if gone else BenchError)(f"server {s.name}: {e!r}; see {s.log_path}") from e
        c.close()
    finally:
        rc = stop(s)
    if rc != 0:
        raise BenchError(f"server {s.name} exited with {rc}; see {s.log_path}")
    worker = worker_thread_file(out)
    t = callgrind_totals(worker)
    return {"ir": t["Ir"], "clock": callgrind_calls(worker, "clock_gettime"), "cpu_clock": callgrind_calls(worker, "hp_thread_cpu_ns"),
            "l1": t["I1mr"] + t["D1mr"] + t["D1mw"], "ll": t["ILmr"] + t["DLmr"] + t["DLmw"]}


def instructions(args, binaries, env, target, token):
    """Returns {metric: {route: {"on": [per request, one per repetition], "off": [...]}}}
    for the metrics of callgrind_run ("ir", "clock", "cpu_clock", "l1", "ll"), and the raw figures.

    Repetition i pairs the i-th N1 run with the i-th N2 run. The repetitions
    differ only by what callgrind cannot make deterministic (how PostgreSQL's
    and Redis's answers are split across reads, how many readiness polls the
    startup took), so their range shows that noise."""
    raw = {}
    for rep in range(args.reps):
        for n in (args.n1, args.n2):
            for route in ROUTES:
                for name, _ in BUILDS:
                    log(f"callgrind: {route}, probes {name}, {n} requests (repetition {rep + 1}/{args.reps})")
                    try:
                        raw[(route, name, n, rep)] = callgrind_run(binaries[name], name, env, route, n, rep, target, token)
                    except ServerGone as e:
                        # Once: other people's scripts on this machine stop servers too.
                        log(f"{e}; running it again")
                        raw[(route, name, n, rep)] = callgrind_run(binaries[name], name, env, route, n, rep, target, token)

    def per_request(metric):
        return {route: {name: [(raw[(route, name, args.n2, rep)][metric] - raw[(route, name, args.n1, rep)][metric])
                               / (args.n2 - args.n1) for rep in range(args.reps)] for name, _ in BUILDS} for route in ROUTES}

    return {metric: per_request(metric) for metric in ("ir", "clock", "cpu_clock", "l1", "ll")}, raw


def clock_read_ns():
    """The cost of one clock read on this machine, from PostgreSQL's pg_test_timing,
    or None when it is not installed or says nothing usable."""
    tool = "/usr/lib/postgresql/15/bin/pg_test_timing"
    if not os.access(tool, os.X_OK):
        return None
    try:
        out = run([tool, "-d", "1"], 30, stderr=subprocess.STDOUT)
    except BenchError:
        return None
    m = re.search(r"Per loop time including overhead: ([\d.]+) ns", out)
    return float(m.group(1)) if m else None


def cpu_clock_extra_ns(loops=5, n=300000):
    """What a read of the thread's CPU clock costs more than a monotonic one, in ns:
    the median over loops of n reads each, timed in this Python. The CPU clock has
    no vDSO path, so each read is a system call; the interpreter's own cost per
    call is the same in both loops and cancels in the difference."""
    def per_read(clock):
        read, start = time.clock_gettime_ns, time.perf_counter_ns()
        for _ in range(n):
            read(clock)
        return (time.perf_counter_ns() - start) / n
    return stats.median([per_read(time.CLOCK_THREAD_CPUTIME_ID) - per_read(time.CLOCK_MONOTONIC) for _ in range(loops)])


# ---------------------------------------------------------------- report


def machine():
    model = "unknown"
    for line in run(["lscpu"], 30).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    osname = "unknown"
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    return os.cpu_count(), model, osname


def git_state():
    try:
        head = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], 30).strip()
        dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], 30).strip()
    except BenchError:
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def fmt_int(x):
    return f"{x:,.0f}"


def median_ci(xs):
    """hplib.stats.median_ci at 95% (for 9 values, the 2nd and 8th, 96%):
    (low, high, coverage), or None when even [min, max] covers less than 95%,
    as with 5 values or fewer."""
    ci = stats.median_ci(xs, 0.95)
    return ci if ci[2] >= 0.95 else None


def verdict(ci, ok):
    """yes when the whole interval meets the goal, no when none of it does, otherwise
    the noise is wider than the goal and the run cannot tell."""
    if ci is None:
        return "not determined (too few runs)"
    if ok(ci[0]) and ok(ci[1]):
        return "yes"
    if not ok(ci[0]) and not ok(ci[1]):
        return "no"
    return "not determined: the noise is wider than the goal"


def paired_cell(on, off):
    """Ratio of the medians, then the median of the pair ratios with its interval."""
    pairs = [a / b for a, b in zip(on, off)]
    ci = median_ci(pairs)
    cell = f"{stats.median(on) / stats.median(off):.3f}; pairs: median {stats.median(pairs):.3f}"
    if ci is not None:
        cell += f", {ci[2]:.0%} CI {ci[0]:.3f}–{ci[1]:.3f}"
    return cell, ci


def report(args, tp, cpu, cg, target, info, cp):
    ir, clocks, cpu_clocks = cg["ir"], cg["clock"], cg["cpu_clock"]
    ncpu, model, osname = info["machine"]
    print()
    print("### Probe overhead: results")
    print()
    print(f"- machine: {ncpu} CPUs (nproc), {model}, {osname}; wrk, PostgreSQL and Redis on the same machine")
    print(f"- tree: {info['git']}; both builds RelWithDebInfo, identical but for -DHOTPLATE_PROBES")
    print(f"- load average (1, 5, 15 min) at start / end: {info['load_start']} / {info['load_end']}")
    print(f"- servers: --threads {args.server_threads}, --flag payment_latency_ms=0; "
          f"menu of restaurant {target[0]}, checkout of item {target[1]} (quantity 1)")
    print(f"- throughput: wrk -t1 -c{args.connections} -d{args.duration}s, {args.runs} runs per build and route, "
          f"alternating ON, OFF, ON, OFF, after a {args.warmup}s warm-up of each")
    print(f"- instructions: callgrind, --threads 1, the API worker thread's Ir, sequential requests on one "
          f"connection, (Ir({args.n2}) - Ir({args.n1})) / {args.n2 - args.n1}, {args.reps} repetitions")
    print()
    print("| route | measure | probes ON | probes OFF | ON / OFF | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for route in ROUTES:
        title = ROUTE_TITLES[route]
        on, off = tp[route]["on"], tp[route]["off"]
        cell, ci = paired_cell(on, off)
        print(f"| {title} | requests/s, median (min–max) | {fmt_int(stats.median(on))} ({fmt_int(min(on))}–{fmt_int(max(on))}) "
              f"| {fmt_int(stats.median(off))} ({fmt_int(min(off))}–{fmt_int(max(off))}) | {cell} "
              f"| ≥ {THROUGHPUT_GOAL:.2f} | {verdict(ci, lambda x: x >= THROUGHPUT_GOAL)} |")
        cell, ci = paired_cell(cpu[route]["on"], cpu[route]["off"])
        print(f"| {title} | server CPU time per request (ratio only) | | | {cell} "
              f"| ≤ {1 / THROUGHPUT_GOAL:.3f} (the throughput goal, when the server is the bottleneck) "
              f"| {verdict(ci, lambda x: x <= 1 / THROUGHPUT_GOAL)} |")
        ion, ioff = ir[route]["on"], ir[route]["off"]
        worst = max(ion) / min(ioff)  # the least favourable pairing of the repetitions
        iratio = statistics.mean(ion) / statistics.mean(ioff)
        met = "yes" if worst <= INSTRUCTIONS_GOAL else "no" if iratio > INSTRUCTIONS_GOAL else "not determined"
        print(f"| {title} | instructions per request, mean (min–max) | {fmt_int(statistics.mean(ion))} "
              f"({fmt_int(min(ion))}–{fmt_int(max(ion))}) | {fmt_int(statistics.mean(ioff))} ({fmt_int(min(ioff))}–{fmt_int(max(ioff))}) "
              f"| {iratio:.3f} (at most {worst:.3f}) | ≤ {INSTRUCTIONS_GOAL:.2f} | {met} |")
    print()
    # Valgrind hides the vDSO, so under callgrind clock_gettime is a system call
    # whose work is not counted in Ir; natively it is a vDSO call of a few tens
    # of nanoseconds. The probes add clock reads, so this is the part of their
    # cost that the instruction counts above leave out.
    print("Clock reads per request (clock_gettime calls in the callgrind profiles; a system call under valgrind, so "
          "their cost is not in the instruction counts; natively a vDSO call, except the reads of the thread's CPU "
          "clock, hp_thread_cpu_ns, which are system calls there too):")
    print()
    clock_ns, extra_ns = info.get("clock_ns"), info.get("cpu_clock_extra_ns")
    for route in ROUTES:
        con, coff = statistics.mean(clocks[route]["on"]), statistics.mean(clocks[route]["off"])
        son, soff = statistics.mean(cpu_clocks[route]["on"]), statistics.mean(cpu_clocks[route]["off"])
        line = (f"- {route}: ON {con:.1f}, OFF {coff:.1f}, {con - coff:+.1f} with the probes; of them CPU-clock system calls "
                f"ON {son:.1f}, OFF {soff:.1f}")
        if clock_ns is not None:
            cpu_off_ns = stats.median(cpu[route]["off"]) * 1e9 / os.sysconf("SC_CLK_TCK")
            cost = (con - coff) * clock_ns + (son - soff) * extra_ns
            line += (f"; at {clock_ns:.1f} ns per read and {clock_ns + extra_ns:.0f} ns per CPU-clock read that is about "
                     f"{cost / cpu_off_ns:.1%} of the OFF build's median server CPU time per request")
        print(line)
    if clock_ns is not None:
        print()
        print(f"(pg_test_timing -d 1 on this machine: {clock_ns:.2f} ns per clock read, loop overhead included; a read of "
              f"the thread's CPU clock costs {extra_ns:.0f} ns more, timed against a monotonic read in python3.)")
    print()
    # Instructions are not the whole of a request's CPU time: the probes also
    # touch memory of their own (counters and histogram buckets), and a miss
    # costs more than an instruction. Callgrind's cache simulation counts the
    # misses deterministically (one thread alone, so with no other process's
    # cache pressure; it does not say what a miss costs here).
    worst_ll = max(abs(x) for route in ROUTES for name, _ in BUILDS for x in cg["ll"][route][name])
    print(f"First-level cache misses per request, instruction and data (callgrind --cache-sim=yes; last-level "
          f"misses are at most {worst_ll:.0f} per request in any repetition of either build):")
    print()
    for route in ROUTES:
        l1on, l1off = statistics.mean(cg["l1"][route]["on"]), statistics.mean(cg["l1"][route]["off"])
        print(f"- {route}: ON {l1on:,.0f}, OFF {l1off:,.0f}, {l1on / l1off - 1:+.1%} with the probes")
    print()
    cp_rps, cp_cpu, cp_rounds = cp
    seconds = min(CP_EVERY // 2, 10)
    print(f"Continuous profiling (probes-ON build, {ROUTE_TITLES['menu']}, wrk -t1 -c{args.connections} -d{CP_EVERY}s, "
          f"{args.runs} pairs; ON is profile_every_s={CP_EVERY}: a {seconds} s CPU profile and heap window in every run, "
          f"{cp_rounds['saved']} profiles saved, {cp_rounds['preempted']} preempted):")
    print()
    print("| measure | profiling ON | profiling OFF | ON / OFF |")
    print("|---|---|---|---|")
    on, off = cp_rps["on"], cp_rps["off"]
    print(f"| requests/s, median (min–max) | {fmt_int(stats.median(on))} ({fmt_int(min(on))}–{fmt_int(max(on))}) "
          f"| {fmt_int(stats.median(off))} ({fmt_int(min(off))}–{fmt_int(max(off))}) | {paired_cell(on, off)[0]} |")
    print(f"| server CPU time per request (ratio only) | | | {paired_cell(cp_cpu['on'], cp_cpu['off'])[0]} |")
    print()
    # The local stack's setting, profile_every_s=60, takes a 10 s profile every 60 s: the cost measured here
    # (a profile half the time) scales by the share of time a profile runs. A cost whose interval holds 0 is noise.
    share = (10 / 60) / (seconds / CP_EVERY)
    pairs = [a / b for a, b in zip(on, off)]
    ci = median_ci(pairs)
    line = (f"A profile runs {seconds / CP_EVERY:.0%} of the time here and {10 / 60:.0%} of the time in the local stack "
            f"(profile_every_s=60: 10 s in 60). Scaled by that share, the throughput cost there is "
            f"{(1 - stats.median(pairs)) * share:+.1%} (paired median)")
    if ci is not None:
        line += f", 96% interval {(1 - ci[1]) * share:+.1%} to {(1 - ci[0]) * share:+.1%}"
        if ci[0] <= 1 <= ci[1]:
            line += ": not distinguishable from zero at this machine's noise"
    print(line + ".")
    print()
    print("Per-run requests/s, in the order they ran (ON/OFF pairs):")
    print()
    for route in ROUTES:
        pairs = ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(tp[route]["on"], tp[route]["off"]))
        print(f"- {route}: {pairs}")
    print(f"- menu, continuous profiling: {', '.join(f'{a:.0f}/{b:.0f}' for a, b in zip(cp_rps['on'], cp_rps['off']))}")
    sys.stdout.flush()


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="wrk runs per build and route (default 9)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per build and route (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--server-threads", type=int, default=1, help="worker threads of the servers under wrk (default 1)")
    ap.add_argument("--n1", type=int, default=100, help="requests in the shorter callgrind run (default 100)")
    ap.add_argument("--n2", type=int, default=400, help="requests in the longer callgrind run (default 400)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each callgrind pair (default 3)")
    ap.add_argument("--time-limit", type=int, default=900, help="abort after this many seconds (default 900)")
    args = ap.parse_args()
    if args.runs < 6 or args.n2 <= args.n1 or args.n1 < 1 or args.duration < 1 or args.warmup < 1 or args.reps < 1:
        ap.error("need --runs >= 6 (for a 95% interval of the median), --n2 > --n1 >= 1, --duration >= 1, --warmup >= 1, --reps >= 1")
    for tool in ("cmake", "wrk", "valgrind", "psql", "readelf"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found; run deploy/deps.sh (and apt-get install wrk valgrind)")

    # SIGTERM and SIGHUP unwind like Ctrl-C, and the watchdog like an error,
    # so the finally clause below stops the servers and the stack every time.
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(signal.Signals(sig).name)

    def on_alarm(_sig, _frame):
        raise TimeLimit(f"the run took longer than --time-limit {args.time_limit}s")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.time_limit)

    # Two runs in one checkout would destroy each other's stack.
    os.makedirs(HOME, exist_ok=True)
    lock = open(HOME + ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError(f"another overhead benchmark holds {HOME}.lock") from None

    info = {"machine": machine(), "git": git_state(), "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    binaries = {name: build(name, probes) for name, probes in BUILDS}
    stack_started = False
    try:
        # A fresh stack each time, so every run starts from the same data.
        stack("destroy")
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
        stack_started = True
        stack("up")
        env = base_env(read_stack_env())
        tokens_file = os.path.join(HOME, "tokens.tsv")
        Stack(HOME).migrate_and_seed(binaries["on"], env, 0.01, tokens_file, timeout=300)
        target = pick_target(env)
        token = read_tokens(tokens_file)["customer"][0][1]
        log(f"menu of restaurant {target[0]}, checkout of item {target[1]}")

        # The cache is shared by every server of this run: fill it once.
        s = start_server("warm", binaries["on"], env, 1, ["--menu-cache-ttl-s", "86400"])
        try:
            warm_menu(s.port, target)
        finally:
            stop(s)

        cg, raw = instructions(args, binaries, env, target, token)
        for key, value in sorted(raw.items()):
            log(f"callgrind {key}: worker thread {value}")
        info["clock_ns"] = clock_read_ns()
        info["cpu_clock_extra_ns"] = cpu_clock_extra_ns()
        tp, cpu = throughput(args, binaries, env, target, tokens_file)
        cp = continuous(args, binaries["on"], env, target, tokens_file)
    finally:
        signal.alarm(0)  # the cleanup below has bounds of its own
        process.stop_all()
        if stack_started:
            try:
                stack("down")
            except BenchError as e:
                log(f"stopping the stack failed: {e}")
    info["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(args, tp, cpu, cg, target, info, cp)
    log(f"done; raw outputs in {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"FAILED: {e}")
        sys.exit(1)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'SIGINT'})")
        sys.exit(130)
