"""Background processes that a test or a load test owns, and commands run to
completion.

A Process writes its output to files in a directory of its own and is added
to STARTED the moment it starts. STARTED is never pruned: a watchdog, a
failed test's report or a final cleanup finds every process this Python
process ever started, whatever happened to the code that started it. Every
wait has a bound: stop() escalates from SIGTERM to SIGKILL, and wait_http()
gives up after its timeout.

Standard library only (the load tests import it).
"""

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

# Every Process started, oldest first; see the module docstring.
STARTED = []
_LOCK = threading.Lock()


class ProcessError(RuntimeError):
    """A process or command did not work: it failed to start, exited early,
    never answered, or a command exited non-zero. The load tests call it
    BenchError (loadtests/bench_proc.py): the run is void."""


class Exited(ProcessError):
    """The process exited while we waited for it; returncode says how."""

    def __init__(self, message, returncode):
        super().__init__(message)
        self.returncode = returncode


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A server under a benchmark's load writes its request log, one JSON line a
# request: on this machine a cached-menu run of 175,000 requests/s writes
# about 35 MB a second, so one `make lab` left a 3 GB server.log and one
# `loadtests/overhead.py --runs 21` 20 GB of logs, and the disk filled. The
# harnesses keep the log on, since its cost is part of what they measure, and
# call trim_logs() after each load run instead, when the servers are idle.
LOG_TRIM_LIMIT = 256 << 20
LOG_KEEP_HEAD = 1 << 20
LOG_KEEP_TAIL = 16 << 20


def trim_log(path, limit=LOG_TRIM_LIMIT, head=LOG_KEEP_HEAD, keep=LOG_KEEP_TAIL):
    """Cuts a log longer than limit bytes down to its first head bytes (the
    start-up and flag lines) and its last keep bytes (the latest run), whole
    lines only, with a line between them that says how much was cut; returns
    the bytes cut. The server's log files are opened O_APPEND (start()), so its
    next write lands after what is kept. Lines written in the milliseconds the
    rewrite takes can be lost or land out of order: an idle server seldom
    writes any, and the logs are kept for diagnosis, never counted."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    if size <= limit:
        return 0
    with open(path, "rb") as f:
        h = f.read(head)
        h = h[:h.rfind(b"\n") + 1]
        start = max(len(h), size - keep)
        f.seek(start)
        t = f.read()
        if start != len(h):  # from the first whole line on
            skip = t.find(b"\n") + 1
            t, start = t[skip:], start + skip
    cut = start - len(h)
    os.truncate(path, 0)
    with open(path, "ab") as f:
        f.write(h + b"--- %d bytes of this log were cut here by the harness (hplib.process.trim_log) ---\n" % cut + t)
    return cut


def trim_logs():
    """trim_log() on the log files of every process started; returns the bytes cut."""
    with _LOCK:
        paths = {path for p in STARTED for path in (p.stdout_path, p.stderr_path)}
    return sum(trim_log(path) for path in sorted(paths))


def tail(path, lines=40, max_bytes=64 * 1024):
    """Returns the last `lines` lines of a file (at most max_bytes read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except OSError as e:
        return "<unreadable: %s>" % e
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def run(cmd, timeout, tail_lines=20, **kw):
    """Runs cmd to completion (killed after `timeout` seconds, stdin empty)
    and returns its stdout as text; stderr goes with it unless the caller
    says otherwise.
    Raises ProcessError on a timeout or a non-zero exit, with the output's
    last tail_lines lines."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    try:
        p = subprocess.run(cmd, timeout=timeout, check=False, text=True, **kw)
    except subprocess.TimeoutExpired as e:
        raise ProcessError(f"{os.path.basename(cmd[0])} did not finish within {timeout}s") from e
    if p.returncode != 0:
        last = "\n".join((p.stdout or "").splitlines()[-tail_lines:])
        raise ProcessError(f"{' '.join(cmd)} exited with {p.returncode}" + (f"; its last lines:\n{last}" if last else ""))
    return p.stdout


def http_get(url, timeout):
    """GET url on a fresh connection; returns (status, body bytes). Raises
    OSError or http.client.HTTPException when nothing (valid) answers."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", (u.path or "/") + ("?" + u.query if u.query else ""))
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Process:
    """One background process, its output in files.

    stdout and stderr go together to workdir/<name>.log, or to stdout_path and
    stderr_path when given (the same path twice is one file). Files are opened
    for appending, so a restart under the same name keeps the earlier run's
    lines for a post-mortem. With new_session the process gets a session of its
    own, so that a terminal's Ctrl-C or a group kill aimed at the test run
    never reaches it (its owner stops it). stop() gives SIGTERM stop_timeout
    seconds before SIGKILL."""

    # The title of its log in a failed test's report: "<section>: <name>".
    section = "process log"

    def __init__(self, name, argv, workdir, env=None, stdout_path=None, stderr_path=None, new_session=False, stop_timeout=20.0):
        self.name = name
        self.argv = list(argv)
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.env = env
        self.stdout_path = str(stdout_path or os.path.join(self.workdir, name + ".log"))
        self.stderr_path = str(stderr_path or self.stdout_path)
        self.new_session = new_session
        self.stop_timeout = stop_timeout
        self.proc = self.returncode = self.started_at = None
        self._files = []  # the open log files, closed once it is gone

    @property
    def log_path(self):
        return self.stdout_path

    def start(self, banner=None):
        """Starts the process (again, when it ran before); banner, when given,
        is written to its stderr file first, to tell runs apart in the file."""
        self._close_files()
        out = open(self.stdout_path, "ab")
        err = out if self.stderr_path == self.stdout_path else open(self.stderr_path, "ab")
        self._files = [out] if err is out else [out, err]
        if banner:
            err.write(banner.encode())
            err.flush()
        self.returncode = None
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.workdir, env=self.env,
                                     start_new_session=self.new_session)
        self.started_at = time.monotonic()
        with _LOCK:
            if self not in STARTED:
                STARTED.append(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url, timeout=30.0, ok=(200,), probe_timeout=2.0, interval=0.2):
        """Waits until GET url answers with a status in `ok` (any status when ok
        is None); returns the status. Raises Exited when the process exits
        first and ProcessError at the timeout, both with the log tails."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self._close_files()
                raise Exited("%s exited with %s before %s answered\n%s" % (self.name, rc, url, self.log_report(20)), rc)
            try:
                status, body = http_get(url, probe_timeout)
                if ok is None or status in ok:
                    return status
                last = "%s %s" % (status, body[:200].decode("utf-8", "replace"))
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(interval)
        raise ProcessError("%s did not answer %s within %.0fs (last: %s)\n%s" % (self.name, url, timeout, last, self.log_report(20)))

    def stop(self, timeout=None):
        """SIGTERM, wait up to `timeout` (default stop_timeout), then SIGKILL;
        returns the exit code (negative for a signal), or None when it had to
        be killed."""
        if timeout is None:
            timeout = self.stop_timeout
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.returncode = None
        else:
            self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def kill(self):
        """SIGKILL when it still runs; never raises for a process that is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in self._files:
            if not f.closed:
                f.close()

    def log_tail(self, lines=40):
        """The last lines of its stdout file (all its output when there is one file)."""
        return tail(self.stdout_path, lines)

    def log_report(self, lines=30):
        """Its state and the tails of its log files, for a failure message."""
        state = "running" if self.alive() else "exit %s" % self.returncode
        if self.stderr_path == self.stdout_path:
            return "--- %s (%s) log tail:\n%s" % (self.name, state, tail(self.stdout_path, lines))
        return "--- %s (%s) stdout tail:\n%s\n--- %s stderr tail:\n%s" % (
            self.name, state, tail(self.stdout_path, lines), self.name, tail(self.stderr_path, lines))

    def stdout_lines(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def kill_all():
    """Kills every process started here that still runs, whatever state each is in."""
    with _LOCK:
        started = list(STARTED)
    for p in started:
        try:
            p.kill()
        except Exception:  # keep killing the others
            pass


def stop_all():
    """Stops (SIGTERM, then SIGKILL) every process started here that still runs, newest first."""
    with _LOCK:
        started = list(STARTED)
    for p in reversed(started):
        if p.alive():
            p.stop()
