"""Fixtures of the hotplate fault suite (issue 7).

The suite injects faults into a real stack: it stops and restarts PostgreSQL,
kills Redis, SIGKILLs the server in the middle of a checkout load, and
overloads it. None of that may disturb the other suites, so the session
starts a stack of its own (deploy/stack.sh up --home <temporary directory>),
migrates and seeds it at scale 0.01, and destroys it at the end whatever
happened. Everything listens on 127.0.0.1 or a unix socket, every load is
bounded in requests and seconds, and every process the suite starts is
stopped on every exit path (teardown, atexit, and a watchdog that ends a run
longer than HOTPLATE_FAULTS_DEADLINE seconds, default 900).

The server process, HTTP client and database helpers come from
tests/e2e/hpe2e.py, imported through sys.path rather than copied.

What each test measured goes to a JSON-lines file (the `record` fixture):
HOTPLATE_FAULTS_RECORD when set (tests/faults/record.py sets it and renders
docs/RELIABILITY.md from it), otherwise a file in the stack's directory.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import hpe2e  # noqa: E402

# Absolute, because each server runs in a directory of its own.
BIN = os.path.abspath(os.environ["HOTPLATE_BIN"]) if os.environ.get("HOTPLATE_BIN") else None
STACK = os.path.join(REPO, "deploy", "stack.sh")
MIGRATIONS = os.environ.get("HOTPLATE_MIGRATIONS_DIR", os.path.join(REPO, "migrations"))
# Bound on any one stack.sh or hotplate command the fixtures run.
COMMAND_TIMEOUT = 180


def _in_suite(item):
    return str(getattr(item, "fspath", "")).startswith(HERE + os.sep)


def pytest_collection_modifyitems(config, items):
    if BIN:
        return
    skip = pytest.mark.skip(reason="HOTPLATE_BIN is not set: the fault suite needs a built server (run it through `make test`)")
    for item in items:
        if _in_suite(item):
            item.add_marker(skip)


# ---------------------------------------------------------------- the stack


class Stack:
    """A private PostgreSQL and Redis under `home`, driven through deploy/stack.sh."""

    def __init__(self, home):
        self.home = home
        self.env = {}
        self.up = False

    def run(self, *args, check=True):
        r = subprocess.run(
            [STACK, *args, "--home", self.home],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=COMMAND_TIMEOUT,
        )
        if check and r.returncode != 0:
            raise RuntimeError("stack.sh %s failed (%d):\n%s" % (" ".join(args), r.returncode, r.stdout.decode(errors="replace")))
        return r

    def start(self):
        self.up = True
        self.run("up")
        self.read_env()

    def read_env(self):
        env = {}
        with open(os.path.join(self.home, "env"), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("export ") and "=" in line:
                    k, v = line[len("export ") :].split("=", 1)
                    env[k] = v.strip("'")
        self.env = env

    @property
    def pg_url(self):
        return self.env["HOTPLATE_PG_URL"]

    @property
    def redis_url(self):
        return self.env["HOTPLATE_REDIS_URL"]

    def destroy(self):
        if not self.up:
            return
        self.up = False
        try:
            self.run("destroy", check=False)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


_STACKS = []


def _cleanup():
    hpe2e.kill_servers()
    for st in _STACKS:
        try:
            st.destroy()
        except Exception:
            pass


atexit.register(_cleanup)


def pytest_configure(config):
    if not BIN:
        return
    hpe2e.arm_watchdog(config, "faults", "HOTPLATE_FAULTS_DEADLINE", 900, _cleanup)


def pytest_unconfigure(config):
    _cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._hp_t0 = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or not _in_suite(item):
        return
    rep.sections += hpe2e.log_sections(getattr(item, "_hp_t0", 0))


def _hotplate(*args, env):
    r = subprocess.run(
        [BIN, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT
    )
    if r.returncode != 0:
        raise RuntimeError("hotplate %s failed (%d):\n%s" % (" ".join(args), r.returncode, r.stdout.decode(errors="replace")))


@pytest.fixture(scope="session")
def stack():
    """The suite's own stack, migrated and seeded at scale 0.01."""
    # /tmp keeps the socket paths short; stack.sh opens the directory to the
    # PostgreSQL system user when it runs as root.
    home = tempfile.mkdtemp(prefix="hp-faults-", dir="/tmp")
    st = Stack(home)
    _STACKS.append(st)
    try:
        st.start()
        env = dict(os.environ)
        env.update(st.env)
        _hotplate("migrate", "--dir", MIGRATIONS, env=env)
        st.tokens = os.path.join(home, "tokens.tsv")
        _hotplate("seed", "--scale", "0.01", "--tokens", st.tokens, "--dir", MIGRATIONS, env=env)
        yield st
    finally:
        _cleanup()


class ReconnectingDB:
    """hpe2e.DB that opens a new connection when PostgreSQL dropped the old
    one: the suite restarts PostgreSQL, and the session's connection is one of
    the victims."""

    def __init__(self, url):
        self.url = url
        self.d = hpe2e.DB(url, application_name="hotplate-faults")

    def _call(self, name, *args):
        try:
            return getattr(self.d, name)(*args)
        except (hpe2e.psycopg2.OperationalError, hpe2e.psycopg2.InterfaceError):
            self.d.close()
            self.d = hpe2e.DB(self.url, application_name="hotplate-faults")
            return getattr(self.d, name)(*args)

    def all(self, sql, args=None):
        return self._call("all", sql, args)

    def one(self, sql, args=None):
        return self._call("one", sql, args)

    def val(self, sql, args=None):
        return self._call("val", sql, args)

    def exec(self, sql, args=None):
        return self._call("exec", sql, args)

    def close(self):
        self.d.close()


@pytest.fixture(scope="session")
def db(stack):
    d = ReconnectingDB(stack.pg_url)
    yield d
    d.close()


class Cast:
    """Who and what the tests order: customers with their tokens, one
    restaurant open around the clock, and its items, available and with
    untracked stock so that no load ever runs out."""


@pytest.fixture(scope="session")
def cast(stack, db):
    c = Cast()
    c.customers = []
    c.owners = {}
    with open(stack.tokens, encoding="utf-8") as f:
        for line in f:
            kind, ident, tok = line.rstrip("\n").split("\t")
            if kind == "customer":
                c.customers.append({"id": int(ident), "token": tok})
            elif kind == "owner":
                c.owners[int(ident)] = tok
    c.all_tokens = [x["token"] for x in c.customers] + list(c.owners.values())
    c.rid = db.val(
        "SELECT r.id FROM restaurants r WHERE (SELECT count(*) FROM menu_items m WHERE m.restaurant_id = r.id) >= 3 ORDER BY r.id LIMIT 1"
    )
    c.rid2 = db.val("SELECT id FROM restaurants WHERE id <> %s ORDER BY id LIMIT 1", (c.rid,))
    db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = ANY(%s)", ([c.rid, c.rid2],))
    db.exec("UPDATE menu_items SET available = true, stock = NULL WHERE restaurant_id = ANY(%s)", ([c.rid, c.rid2],))
    c.items = [r["id"] for r in db.all("SELECT id FROM menu_items WHERE restaurant_id = %s ORDER BY id LIMIT 3", (c.rid,))]
    return c


def cart(c, i=0):
    """A small valid cart for restaurant c.rid; i varies the lines."""
    return {
        "restaurant_id": c.rid,
        "items": [{"item_id": c.items[i % len(c.items)], "quantity": 1 + i % 3}, {"item_id": c.items[(i + 1) % len(c.items)], "quantity": 1}],
    }


@pytest.fixture
def start_server(stack, tmp_path):
    """Starts a server against the suite's stack; every one is stopped at the end of the test."""
    started = []

    def _start(name, threads=2, flags=(), env=None, wait_ready=True):
        e = {"HOTPLATE_PG_URL": stack.pg_url, "HOTPLATE_REDIS_URL": stack.redis_url}
        e.update(env or {})
        s = hpe2e.ServerProcess(BIN, tmp_path / name, name=name, threads=threads, flags=flags, env=e)
        started.append(s)
        s.start(wait_ready=wait_ready)
        return s

    yield _start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def record_path(stack):
    return os.environ.get("HOTPLATE_FAULTS_RECORD") or os.path.join(stack.home, "faults.jsonl")


@pytest.fixture
def record(record_path, request):
    """record(fault=..., load=..., requests=..., orders_checked=..., lost=..., duplicates=..., **more)
    appends one row for docs/RELIABILITY.md."""

    def _record(**row):
        row.setdefault("test", request.node.name)
        with open(record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    return _record
