"""Processes of make bench and make lab: the private stack, the server, the
admin API, and the load tools (wrk, loadtests/openloop, pgbench), each bounded
by a timeout and stopped on every exit path.

The server is an hplib.server.Server and the stack an hplib.stack.Stack, the
ones the test suites use. Every process started here is stopped by
stop_all(), which loadtests/bench.py calls from its finally block and its
signal handlers: the load tools in LIVE, the server through
hplib.process.STARTED. Only the Python standard library is used (tests/hplib
included).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from hplib import process
from hplib.process import ProcessError, run
from hplib.server import Server
from hplib.stack import Stack, read_env

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
READY_SECONDS = 60
STOP_SECONDS = 30

LIVE = []  # the load tools' Popen objects not yet stopped

# Something did not work; the run is void and exits non-zero. It is hplib's
# error, so a failure inside hplib (a command, the server) voids the run the
# same way.
BenchError = ProcessError


class Progress:
    """The progress display on stderr: phase, run k of n, and time left.

    The time left is the planned seconds not yet done, scaled by how long the
    done part really took against its plan, so it corrects itself as it runs."""

    def __init__(self, planned_s):
        self.t0 = time.monotonic()
        self.planned = max(planned_s, 1.0)
        self.done = 0.0

    def advance(self, planned_s):
        self.done += planned_s

    def left_s(self):
        elapsed = time.monotonic() - self.t0
        if self.done <= 0:
            return self.planned
        return max(0.0, (self.planned - self.done) * elapsed / self.done)

    def log(self, msg):
        elapsed, left = int(time.monotonic() - self.t0), int(self.left_s())
        print(f"[bench {elapsed // 60}m{elapsed % 60:02d}s | ~{left // 60}m{left % 60:02d}s left] {msg}", file=sys.stderr, flush=True)


def build(build_dir):
    """Builds the server and the open-loop generator from the current tree in build_dir
    (never a developer's build/); returns (hotplate copy, openloop)."""
    run(["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], 300)
    run(["cmake", "--build", build_dir, "--target", "hotplate", "openloop", "-j2"], 900)
    # The server runs from a copy whose name does not contain "hotplate", so a
    # `pkill -f hotplate` elsewhere on this shared machine does not end a run.
    copy = os.path.join(build_dir, "hpbench-server")
    shutil.copy2(os.path.join(build_dir, "hotplate"), copy)
    return copy, os.path.join(build_dir, "openloop")


# ---------------------------------------------------------------- the stack


def read_env_file(path):
    """The stack's env file, which must give both URLs."""
    env = read_env(path)
    if "HOTPLATE_PG_URL" not in env or "HOTPLATE_REDIS_URL" not in env:
        raise BenchError(f"{path} lacks HOTPLATE_PG_URL or HOTPLATE_REDIS_URL")
    return env


def stack(cmd, home):
    Stack(home).run(cmd)


def fresh_stack(home, binary, scale, progress):
    """Recreates the private stack in home, migrates and seeds it; returns (env, tokens file)."""
    progress.log(f"stack: recreating {os.path.relpath(home, REPO)} and seeding at scale {scale}")
    st = Stack(home)
    st.run("destroy")
    st.run("up")
    env = server_env(read_env_file(os.path.join(home, "env")))
    tokens = os.path.join(home, "tokens.tsv")
    st.migrate_and_seed(binary, env, scale, tokens, timeout=900)
    return env, tokens


def server_env(stack_env):
    """The caller's environment without its HOTPLATE_* settings (a developer's flags
    must not leak into a benchmark), plus the stack's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPLATE_")}
    env.update(stack_env)
    env["PATH"] = os.path.dirname(PGBENCH) + ":" + env.get("PATH", "/usr/bin:/bin")
    return env


def psql(env, sql):
    return run(["psql", env["HOTPLATE_PG_URL"], "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql], 120,
               env=env, stderr=subprocess.PIPE).strip()


def psql_rows(env, sql):
    out = psql(env, sql)
    return [line.split("\t") for line in out.splitlines() if line]


# ---------------------------------------------------------------- the server


def start_server(binary, env, threads, log_path, extra_args=()):
    """Starts the one hotplate serve process that the harness owns, in exactly
    env (no HOTPLATE_E2E_FLAGS: a benchmark runs with the flags it chose), its
    output in log_path; returns it once GET /readyz answers 200."""
    s = Server(binary, os.path.dirname(log_path), threads=threads, args=["--menu-cache-ttl-s", "86400", *extra_args], base_env=env,
               log_path=log_path, ready_timeout=READY_SECONDS, probe_timeout=10, interval=0.2, stop_timeout=STOP_SECONDS)
    return s.start()


def run_tool(name, body):
    """Runs body(), a load-test command's work, and returns its exit code: 1, with "NAME: FAILED: why" on stderr, when it
    raised BenchError. Every process started here is stopped on every path."""
    try:
        return body()
    except BenchError as e:
        print(f"{name}: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        stop_all()


def stop_all():
    """Stops every process this harness started and has not stopped yet: the
    load tools (newest first), then the server."""
    for p in reversed(list(LIVE)):
        try:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            LIVE.remove(p)
        except Exception as e:  # keep stopping the others
            print(f"[bench] could not stop {p}: {e}", file=sys.stderr)
    try:
        process.stop_all()
    except Exception as e:
        print(f"[bench] could not stop the server: {e}", file=sys.stderr)


# ---------------------------------------------------------------- load tools

_last_seq_base = [0]


def seq_base():
    """The base of one load run's Idempotency-Key numbers (replay.lua and loadtests/openloop add a counter to it): the
    wall clock in microseconds, and above this process's previous base. A run of n requests lasts longer than n
    microseconds, so runs made one after another never share a key, in one process or across processes that reuse a
    stack (ab_servers.py, cpu_split.py). A key an earlier run used is answered with that run's order (a replay), and the
    run would measure replays instead of checkouts: wrk() and openloop() refuse a run that got any."""
    _last_seq_base[0] = max(time.time_ns() // 1000, _last_seq_base[0] + 1)
    return _last_seq_base[0]


def rotated(items, i):
    """items in the order that round i runs them: round 0 as given, each next round starting with the next one, so
    that what a load leaves behind (dirty buffers after checkouts) does not always fall on the same one."""
    items = list(items)
    k = i % len(items) if items else 0
    return items[k:] + items[:k]


def refuse_replays(tool, replayed, answers, base):
    if replayed:
        raise BenchError(f"{tool}: {replayed} of {answers} answers were replays of Idempotency-Keys an earlier run had used "
                         f"(sequence base {base}): the run measured replays, not checkouts")


def wrk(port, requests_file, connections, duration, seq_prefix):
    """Closed-loop wrk replaying a request file (loadtests/replay.lua), its Idempotency-Keys numbered from seq_prefix
    (seq_base() for a load that places orders); returns parse_replay_line()'s dict. Raises BenchError when any
    answer was a replay."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s",
           os.path.join(REPO, "loadtests", "replay.lua"), f"http://127.0.0.1:{port}", "--", requests_file, str(seq_prefix)]
    out = run(cmd, duration + 60)
    w = parse_replay_line(out)
    process.trim_logs()  # the server is idle now: its request log is cut to a bounded size
    refuse_replays("wrk", w["replayed"], w["requests"], seq_prefix)
    return w


def parse_replay_line(out):
    """replay.lua's summary line in wrk's output, as {"requests", "duration_s", "rps", "status_4xx", "status_5xx",
    "socket_errors", "replayed"}."""
    m = re.search(r"^HPREPLAY requests=(\d+) duration_us=(\d+) status_4xx=(\d+) status_5xx=(\d+) socket_errors=(\d+) "
                  r"replayed=(\d+)$", out, re.M)
    if not m:
        raise BenchError(f"wrk printed no HPREPLAY line:\n{out[-2000:]}")
    reqs, us, s4, s5, sock, rp = (int(x) for x in m.groups())
    return {"requests": reqs, "duration_s": us / 1e6, "rps": reqs / (us / 1e6) if us else 0.0,
            "status_4xx": s4, "status_5xx": s5, "socket_errors": sock, "replayed": rp}


def start_wrk(port, requests_file, connections, duration, seq_prefix, out_path):
    """wrk in the background (for a profile taken while it runs); returns its Popen."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s",
           os.path.join(REPO, "loadtests", "replay.lua"), f"http://127.0.0.1:{port}", "--", requests_file, str(seq_prefix)]
    with open(out_path, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    LIVE.append(p)
    return p


def wait_proc(p, timeout):
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in LIVE:
        LIVE.remove(p)


def openloop(binary, port, requests_file, schedule, connections, timeout_ms):
    """The open-loop generator, its Idempotency-Keys numbered from seq_base(); returns its JSON summary. Raises
    BenchError when any answer was a replay."""
    total = sum(float(step.split(":")[1]) for step in schedule.split(","))
    base = seq_base()
    out = run([binary, "--port", str(port), "--requests", requests_file, "--schedule", schedule,
               "--connections", str(connections), "--timeout-ms", str(timeout_ms), "--seq-base", str(base)],
              total + timeout_ms / 1000 + 60, stderr=subprocess.PIPE)
    process.trim_logs()
    summary = json.loads(out)
    refuse_replays("openloop", summary["replayed"], summary["completed"], base)
    return summary


def pgbench(env, script_text, script_path, clients, duration):
    """pgbench with a custom script (prepared statements, one thread); returns transactions/s
    excluding connection time, and the failed transactions."""
    with open(script_path, "w") as f:
        f.write(script_text)
    # pgbench's -T clock starts before its clients have connected: on a busy machine 32 connections can take the
    # whole of a quick run's 1 s, and it then processes no transaction at all. Its rate excludes the connection time,
    # so a longer run measures the same thing.
    duration = max(duration, 3)
    # The server's connections run generic plans (plan_cache_mode, common/runtime/db.c); pgbench's run with the same setting,
    # so that a ceiling never differs from the route by how often PostgreSQL plans.
    out = run([PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(duration), "-f", script_path,
               env["HOTPLATE_PG_URL"]], duration + 120, env={**env, "PGOPTIONS": "-c plan_cache_mode=force_generic_plan"})
    m = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", out, re.M)
    if not m:
        raise BenchError(f"pgbench printed no tps line:\n{out[-2000:]}")
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    return {"tps": float(m.group(1)), "failed": int(failed.group(1)) if failed else 0}
