"""The one class that runs `hotplate serve` for the test suites and the load
tests, and Servers, what the suites' start_server fixtures hand out.

A Server listens on two free loopback ports (the API and the admin listener),
writes its output to files (stdout and stderr apart, or one log file), and
start() returns once it answers: GET /readyz with 200, or with
wait_ready=False GET /healthz with anything. When another process took a
port between our draw and the server's bind, start() draws again, up to
three times. It is a process.Process, so the watchdog, a failed test's report
and the final cleanup find it in process.STARTED.

Standard library only (the load tests import it): readiness and request()
use http.client. The tests' richer client is hplib.client.
"""

import http.client
import json
import os

from .process import Exited, Process, ProcessError, free_port, tail

# Flags every server a test suite starts gets on top of its own: none unless
# HOTPLATE_E2E_FLAGS ("a=1 b=2") says so. The load tests never add them: a
# benchmark runs with the flags it chose.
SUITE_FLAGS = [f for f in os.environ.get("HOTPLATE_E2E_FLAGS", "").split() if f]


class Server(Process):
    """One `hotplate serve` process on 127.0.0.1.

    binary and workdir (its cwd and where its logs go); threads and flags
    (each a `--flag NAME=VALUE`), then args appended as they are; wrapper
    goes before the binary (valgrind and its options). The environment is
    base_env (default: this process's) updated with env. Logs go to
    workdir/<name>.stdout.log and .stderr.log, or both to log_path.
    ready_timeout bounds start(); each readiness probe has probe_timeout and
    they come every interval seconds (a server under valgrind needs more of
    both). stop() waits stop_timeout for SIGTERM to work before SIGKILL."""

    section = "hotplate logs"

    def __init__(self, binary, workdir, name="server", threads=2, flags=(), args=(), env=None, base_env=None, log_path=None,
                 wrapper=(), ready_timeout=30.0, probe_timeout=1.0, interval=0.05, stop_timeout=20.0):
        if log_path:
            out = err = log_path
        else:
            out, err = (os.path.join(str(workdir), name + suffix) for suffix in (".stdout.log", ".stderr.log"))
        super().__init__(name, [], workdir, stdout_path=out, stderr_path=err, stop_timeout=stop_timeout)
        self.binary = binary
        self.threads = threads
        self.flags = list(flags)
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.env_overrides = dict(env or {})
        self.base_env = base_env
        # How start() waits: wait_http's bounds.
        self.readiness = {"timeout": ready_timeout, "probe_timeout": probe_timeout, "interval": interval}
        self.port = self.admin_port = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_base(self):
        """The admin listener (debug and metrics routes)."""
        return "http://127.0.0.1:%d" % self.admin_port

    @property
    def token(self):
        """The admin token the server was given, sent by request() on the admin listener."""
        return self.env.get("HOTPLATE_ADMIN_TOKEN") if self.env else None

    def serve_argv(self):
        a = self.wrapper + [self.binary, "serve", "--listen", "127.0.0.1:%d" % self.port, "--admin-listen",
                            "127.0.0.1:%d" % self.admin_port, "--threads", str(self.threads)]
        for f in self.flags:
            a += ["--flag", f]
        return a + self.args

    def start(self, wait_ready=True):
        env = dict(os.environ if self.base_env is None else self.base_env)
        env.update(self.env_overrides)
        self.env = env
        path, ok = ("/readyz", (200,)) if wait_ready else ("/healthz", None)
        last_err = None
        for attempt in range(3):
            self.port = free_port()
            self.admin_port = free_port()
            while self.admin_port == self.port:  # two draws can return the same just-freed port
                self.admin_port = free_port()
            self.argv = self.serve_argv()
            # The banner marks this attempt in the stderr file, which holds every attempt's lines.
            super().start(banner="--- %s attempt %d: %s\n" % (self.name, attempt, " ".join(self.argv)))
            try:
                self.wait_http(self.base + path, ok=ok, **self.readiness)
                return self
            except Exited as e:
                err = tail(self.stderr_path, 20)
                if "in use" in err.lower() and "--- %s attempt" % self.name in err:
                    last_err = e
                    continue
                raise
        raise ProcessError("%s could not bind a port: %s" % (self.name, last_err))

    def request(self, method, path, body=None, admin=True, timeout=120, headers=None):
        """One request on a fresh connection, to the admin listener unless
        admin=False (with the admin token when the server has one); returns
        (status, body bytes)."""
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
        """An admin request with a JSON body (when given) that must answer 200; returns the parsed JSON."""
        status, data = self.request(method, path, body=None if body is None else json.dumps(body), timeout=timeout)
        if status != 200:
            raise ProcessError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)

    def cpu_seconds(self):
        """utime + stime of the server (all its threads), in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15 of proc(5)


class Servers:
    """The servers one test starts, as the suites' start_server fixtures hand
    them out: start(name, threads=2, flags=[...], env={...}, binary=...,
    wait_ready=True, ready_timeout=30.0) starts a Server in workdir/<name>
    with the suite's binary and environment (env updates it) and flags plus
    SUITE_FLAGS. close() kills every one still running, or with graceful
    stops it (SIGTERM first)."""

    def __init__(self, binary, env, workdir, name="server", graceful=False):
        self.binary = binary
        self.env = dict(env)
        self.workdir = str(workdir)
        self.name = name
        self.graceful = graceful
        self.started = []

    def start(self, name=None, threads=2, flags=(), env=None, binary=None, wait_ready=True, ready_timeout=30.0):
        name = name or self.name
        e = dict(self.env)
        e.update(env or {})
        s = Server(binary or self.binary, os.path.join(self.workdir, name), name=name, threads=threads, flags=list(flags) + SUITE_FLAGS,
                   env=e, ready_timeout=ready_timeout)
        self.started.append(s)
        return s.start(wait_ready=wait_ready)

    def close(self):
        for s in self.started:
            if self.graceful:
                s.stop()
            else:
                s.kill()
