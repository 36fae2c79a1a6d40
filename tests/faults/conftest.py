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

The servers, the stack, the HTTP client, the database helper and the hooks
(skip without HOTPLATE_BIN, watchdog, log tails on a failed test) come from
hplib, shared with the other suites.

What each test measured goes to a JSON-lines file (the `record` fixture):
HOTPLATE_FAULTS_RECORD when set (tests/faults/record.py sets it and renders
docs/RELIABILITY.md from it), otherwise a file in the stack's directory.
"""

import atexit
import contextlib
import os
import shutil
import tempfile

import psycopg2
import pytest

from hplib import process
from hplib import stack as hpstack
from hplib.client import perf
from hplib.db import DB
from hplib.record import append_row
from hplib.server import Servers
from hplib.tokens import read_tokens
from load import Load

pytest_plugins = ["hplib.pytest_hooks"]

HERE = os.path.dirname(os.path.abspath(__file__))
# Absolute, because each server runs in a directory of its own.
BIN = os.path.abspath(os.environ["HOTPLATE_BIN"]) if os.environ.get("HOTPLATE_BIN") else None
MIGRATIONS = os.environ.get("HOTPLATE_MIGRATIONS_DIR", hpstack.MIGRATIONS)
# Bound on any one stack.sh or hotplate command the fixtures run.
COMMAND_TIMEOUT = 180

# The stacks not destroyed yet: the session's, until a cleanup takes it.
_STACKS = []


def _destroy_stacks():
    while _STACKS:
        st = _STACKS.pop()
        try:
            st.run("destroy", check=False)
        finally:
            shutil.rmtree(st.home, ignore_errors=True)


def _cleanup():
    process.kill_all()
    _destroy_stacks()


atexit.register(_cleanup)


def pytest_configure(config):
    # Imported here, after pytest loaded it as a plugin (see tests/e2e/conftest.py).
    from hplib import pytest_hooks

    pytest_hooks.configure(config, "faults", HERE, "HOTPLATE_FAULTS_DEADLINE", 900, needs_bin="the fault suite",
                           cleanup=_destroy_stacks)


@pytest.fixture(scope="session")
def stack():
    """The suite's own stack, migrated and seeded at scale 0.01."""
    # /tmp keeps the socket paths short; stack.sh opens the directory to the
    # PostgreSQL system user when it runs as root.
    home = tempfile.mkdtemp(prefix="hp-faults-", dir="/tmp")
    st = hpstack.Stack(home, timeout=COMMAND_TIMEOUT)
    _STACKS.append(st)
    try:
        st.up()
        env = dict(os.environ)
        env.update(st.env)
        st.tokens = os.path.join(home, "tokens.tsv")
        st.migrate_and_seed(BIN, env, 0.01, st.tokens, migrations=MIGRATIONS, timeout=COMMAND_TIMEOUT)
        yield st
    finally:
        _cleanup()


class ReconnectingDB:
    """hplib.db.DB that opens a new connection when PostgreSQL dropped the old
    one: the suite restarts PostgreSQL, and the session's connection is one of
    the victims."""

    def __init__(self, url):
        self.url = url
        self.d = DB(url, application_name="hotplate-faults")

    def _call(self, name, *args):
        try:
            return getattr(self.d, name)(*args)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            self.d.close()
            self.d = DB(self.url, application_name="hotplate-faults")
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
    return make_cast(stack.tokens, db)


def make_cast(tokens, db):
    """The Cast of a seeded stack: its tokens file and a database helper on it."""
    c = Cast()
    by_kind = read_tokens(tokens)
    c.customers = [{"id": ident, "token": tok} for ident, tok in by_kind.get("customer", [])]
    c.owners = {ident: tok for ident, tok in by_kind.get("owner", [])}
    c.all_tokens = [x["token"] for x in c.customers] + list(c.owners.values())
    c.rid = db.val(
        "SELECT r.id FROM restaurants r WHERE (SELECT count(*) FROM menu_items m WHERE m.restaurant_id = r.id) >= 3 ORDER BY r.id LIMIT 1"
    )
    c.rid2 = db.val("SELECT id FROM restaurants WHERE id <> %s ORDER BY id LIMIT 1", (c.rid,))
    db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = ANY(%s)", ([c.rid, c.rid2],))
    db.exec("UPDATE menu_items SET available = true, stock = NULL WHERE restaurant_id = ANY(%s)", ([c.rid, c.rid2],))
    c.items = [r["id"] for r in db.all("SELECT id FROM menu_items WHERE restaurant_id = %s ORDER BY id LIMIT 3", (c.rid,))]
    return c


@contextlib.contextmanager
def ha_stack(prefix):
    """An HA stack of a module's own (deploy/stack.sh up with HA=1: a primary with a sync standby, Redis with
    Sentinel) in a temporary home, migrated and seeded at scale 0.01, with its Cast (st.cast) and a reconnecting
    database helper (st.db); destroyed when the block ends, whatever happened."""
    home = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    st = hpstack.Stack(home, timeout=COMMAND_TIMEOUT)
    _STACKS.append(st)
    db = None
    try:
        process.run([hpstack.STACK_SH, "up", "--home", home], COMMAND_TIMEOUT, env=dict(os.environ, HA="1"))
        st.read_env()
        assert st.env.get("HOTPLATE_HA") == "1", st.env
        env = dict(os.environ)
        env.update(st.env)
        st.tokens = os.path.join(home, "tokens.tsv")
        st.migrate_and_seed(BIN, env, 0.01, st.tokens, migrations=MIGRATIONS, timeout=COMMAND_TIMEOUT)
        db = ReconnectingDB(st.pg_url)
        st.cast = make_cast(st.tokens, db)
        st.db = db
        yield st
    finally:
        if db is not None:
            db.close()
        if st in _STACKS:
            _STACKS.remove(st)
        st.run("destroy", check=False)


@contextlib.contextmanager
def ha_servers(prefix, workdir, env=None):
    """ha_stack(prefix), with st.servers: a graceful Servers on the stack's URLs (and env), its logs in workdir; every
    server started through it is stopped when the block ends, before the stack goes."""
    with ha_stack(prefix) as st:
        st.servers = Servers(BIN, dict({"HOTPLATE_PG_URL": st.pg_url, "HOTPLATE_REDIS_URL": st.redis_url}, **(env or {})),
                             str(workdir), graceful=True)
        try:
            yield st
        finally:
            st.servers.close()


def perf_section(server, name):
    """One section of the server's GET /debug/perf (pool, cache, loop, ...), as a dict."""
    return perf(server, name)[name]


def cart(c, i=0):
    """A small valid cart for restaurant c.rid; i varies the lines."""
    return {
        "restaurant_id": c.rid,
        "items": [{"item_id": c.items[i % len(c.items)], "quantity": 1 + i % 3}, {"item_id": c.items[(i + 1) % len(c.items)], "quantity": 1}],
    }


def menu_paths(c):
    """The menus of the cast's two restaurants."""
    return ["/restaurants/%d/menu" % c.rid, "/restaurants/%d/menu" % c.rid2]


def cache_menus(client, paths, through=""):
    """Reads each menu until an answer comes from the cache, at most five times (through names the cache's way).

    The load's leader answers before its store in Redis is acknowledged, so a read right behind it on another thread
    can find the lease still held, poll, and be answered with the stored menu as a "miss"; the one after that hits."""
    for p in paths:
        seen = [client.get(p).headers.get("X-Cache") for _ in range(5)]
        assert "hit" in seen[1:], "the menu did not get cached%s: %s" % (through, seen)


def menu_load(base, paths, workers, max_seconds):
    """A started Load of `workers` clients that read the menus in turn, each outcome tagged "menu"."""

    def make(idx, n):
        return "menu", "GET", base + paths[(idx + n) % len(paths)], {}

    return Load(make, workers, max_seconds=max_seconds).start()


@pytest.fixture
def start_server(stack, tmp_path):
    """Starts a server against the suite's stack; every one is stopped at the end of the test."""
    servers = Servers(BIN, {"HOTPLATE_PG_URL": stack.pg_url, "HOTPLATE_REDIS_URL": stack.redis_url}, tmp_path, graceful=True)
    yield servers.start
    servers.close()


@pytest.fixture(scope="session")
def record_path(stack):
    return os.environ.get("HOTPLATE_FAULTS_RECORD") or os.path.join(stack.home, "faults.jsonl")


@pytest.fixture
def record(record_path, request):
    """record(fault=..., load=..., requests=..., orders_checked=..., lost=..., duplicates=..., **more)
    appends one row for docs/RELIABILITY.md."""

    def _record(**row):
        append_row(request.node.name, path=record_path, **row)

    return _record
