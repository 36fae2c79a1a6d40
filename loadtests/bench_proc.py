"""Processes of make bench and make lab: the private stack, the server, the
admin API, and the load tools (wrk, loadtests/openloop, pgbench), each bounded
by a timeout and stopped on every exit path.

Everything started here is registered in LIVE and stopped by stop_all(), which
loadtests/bench.py calls from its finally block and its signal handlers.
Only the Python standard library is used.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
READY_SECONDS = 60
STOP_SECONDS = 30

LIVE = []  # Popen objects and Server instances not yet stopped


class BenchError(Exception):
    """Something did not work; the run is void and exits non-zero."""


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


def run(cmd, timeout, **kw):
    """Runs cmd to completion (killed after timeout seconds); returns stdout, raises BenchError on failure."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    try:
        p = subprocess.run(cmd, timeout=timeout, check=False, text=True, **kw)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{os.path.basename(cmd[0])} did not finish within {timeout}s") from e
    if p.returncode != 0:
        tail = "\n".join((p.stdout or "").splitlines()[-20:])
        raise BenchError(f"{' '.join(cmd)} exited with {p.returncode}" + (f"; its last lines:\n{tail}" if tail else ""))
    return p.stdout


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
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^export (\w+)='(.*)'$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    if "HOTPLATE_PG_URL" not in env or "HOTPLATE_REDIS_URL" not in env:
        raise BenchError(f"{path} lacks HOTPLATE_PG_URL or HOTPLATE_REDIS_URL")
    return env


def stack(cmd, home):
    run([os.path.join(REPO, "deploy", "stack.sh"), cmd, "--home", home], 180)


def fresh_stack(home, binary, scale, progress):
    """Recreates the private stack in home, migrates and seeds it; returns (env, tokens file)."""
    progress.log(f"stack: recreating {os.path.relpath(home, REPO)} and seeding at scale {scale}")
    stack("destroy", home)
    stack("up", home)
    env = server_env(read_env_file(os.path.join(home, "env")))
    tokens = os.path.join(home, "tokens.tsv")
    run([binary, "migrate", "--dir", os.path.join(REPO, "migrations")], 300, env=env)
    run([binary, "seed", "--scale", str(scale), "--tokens", tokens, "--dir", os.path.join(REPO, "migrations")], 900, env=env)
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One hotplate serve process that the harness owns, with its admin API."""

    def __init__(self, binary, env, threads, log_path, extra_args=()):
        self.port, self.admin_port = free_port(), free_port()
        self.log_path = log_path
        self.token = env.get("HOTPLATE_ADMIN_TOKEN")
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}",
               "--threads", str(threads), "--menu-cache-ttl-s", "86400"] + list(extra_args)
        with open(log_path, "w") as logf:
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        LIVE.append(self)
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited with {self.proc.returncode} before it was ready; see {log_path}")
            try:
                status, _ = self.request("GET", "/readyz", admin=False, timeout=10)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the server was not ready within {READY_SECONDS}s; see {log_path}")
            time.sleep(0.2)

    def request(self, method, path, body=None, admin=True, timeout=120, headers=None):
        """One request on a fresh connection; returns (status, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port if admin else self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if admin and self.token:
                h["Authorization"] = f"Bearer {self.token}"
            if body is not None:
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def admin_json(self, method, path, body=None, timeout=120):
        status, data = self.request(method, path, body=None if body is None else json.dumps(body), timeout=timeout)
        if status != 200:
            raise BenchError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)

    def flags(self):
        return self.admin_json("GET", "/debug/flags")

    def cpu_seconds(self):
        """utime + stime of the server (all its threads), in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in LIVE:
            LIVE.remove(self)
        return self.proc.returncode


def stop_all():
    """Stops every process this harness started and has not stopped yet, newest first."""
    for p in reversed(list(LIVE)):
        try:
            if isinstance(p, Server):
                p.stop()
            else:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
                LIVE.remove(p)
        except Exception as e:  # keep stopping the others
            print(f"[bench] could not stop {p}: {e}", file=sys.stderr)


# ---------------------------------------------------------------- load tools


def wrk(port, requests_file, connections, duration, seq_prefix):
    """Closed-loop wrk replaying a request file (loadtests/replay.lua); returns
    {"requests", "duration_s", "rps", "status_4xx", "status_5xx", "socket_errors"}."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s",
           os.path.join(REPO, "loadtests", "replay.lua"), f"http://127.0.0.1:{port}", "--", requests_file, str(seq_prefix)]
    out = run(cmd, duration + 60)
    m = re.search(r"^HPREPLAY requests=(\d+) duration_us=(\d+) status_4xx=(\d+) status_5xx=(\d+) socket_errors=(\d+)$",
                  out, re.M)
    if not m:
        raise BenchError(f"wrk printed no HPREPLAY line:\n{out[-2000:]}")
    reqs, us, s4, s5, sock = (int(x) for x in m.groups())
    return {"requests": reqs, "duration_s": us / 1e6, "rps": reqs / (us / 1e6) if us else 0.0,
            "status_4xx": s4, "status_5xx": s5, "socket_errors": sock}


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
    """The open-loop generator; returns its JSON summary."""
    total = sum(float(step.split(":")[1]) for step in schedule.split(","))
    out = run([binary, "--port", str(port), "--requests", requests_file, "--schedule", schedule,
               "--connections", str(connections), "--timeout-ms", str(timeout_ms)],
              total + timeout_ms / 1000 + 60, stderr=subprocess.PIPE)
    return json.loads(out)


def pgbench(env, script_text, script_path, clients, duration):
    """pgbench with a custom script (prepared statements, one thread); returns transactions/s
    excluding connection time, and the failed transactions."""
    with open(script_path, "w") as f:
        f.write(script_text)
    out = run([PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "1", "-T", str(duration), "-f", script_path,
               env["HOTPLATE_PG_URL"]], duration + 120, env=env)
    m = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", out, re.M)
    if not m:
        raise BenchError(f"pgbench printed no tps line:\n{out[-2000:]}")
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    return {"tps": float(m.group(1)), "failed": int(failed.group(1)) if failed else 0}
