"""Fixtures of the hotplate monitoring suite.

The static checks (rule files, Alertmanager routes, the compose file, the
Grafana dashboards, the log shipping configuration) need only the repository
and Debian's promtool and amtool. The live ones (Prometheus and Alertmanager
against a running server, nginx in front of two servers, /debug/logs) start
real processes: servers through hplib.server and the daemons through
`daemons.py`; each has a private directory and free loopback ports and is
stopped on every exit path.

The shared hooks (hplib.pytest_hooks) bound the run (HOTPLATE_MONITORING_DEADLINE,
default 600 s), kill every server and daemon at the end, and append to a
failed test's report the logs of every server and daemon of the session:
its processes often outlive a test. Without HOTPLATE_BIN the live tests skip
themselves (the live_env fixture), the static ones run.
"""

import os

import pytest

from hplib.db import DB
from hplib.server import Servers

pytest_plugins = ["hplib.pytest_hooks"]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def pytest_configure(config):
    # Imported here, after pytest loaded it as a plugin (see tests/e2e/conftest.py).
    from hplib import pytest_hooks

    pytest_hooks.configure(config, "monitoring", HERE, "HOTPLATE_MONITORING_DEADLINE", 600, logs_since_test=False)


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def live_env():
    """The environment a live test needs; skips the test when it is absent."""
    need = ["HOTPLATE_BIN", "HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL", "HOTPLATE_TOKENS"]
    missing = [n for n in need if not os.environ.get(n)]
    if missing:
        pytest.skip("%s not set: the live monitoring tests need a built server and the test stack (make test)" % ", ".join(missing))
    return {n: os.environ[n] for n in need}


@pytest.fixture
def start_server(live_env, tmp_path):
    """start_server(threads=2, flags=[...], env={...}, name=..., wait_ready=True) as in tests/e2e; killed at teardown."""
    env = {"HOTPLATE_PG_URL": live_env["HOTPLATE_PG_URL"], "HOTPLATE_REDIS_URL": live_env["HOTPLATE_REDIS_URL"]}
    servers = Servers(live_env["HOTPLATE_BIN"], env, tmp_path)
    yield servers.start
    servers.close()


@pytest.fixture
def shop(live_env):
    """A restaurant made open all day (restored afterwards), a plain item and a customer token."""
    db = DB(live_env["HOTPLATE_PG_URL"])
    with open(live_env["HOTPLATE_TOKENS"], encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    # The last customer: tests/e2e's cast are the first ones, and this test's orders stay out of their histories.
    token = [r[2] for r in rows if r[0] == "customer"][-1]
    row = db.one(
        """SELECT r.id AS rid, mi.id AS item, r.open_minute, r.close_minute
             FROM restaurants r JOIN menu_items mi ON mi.restaurant_id = r.id
            WHERE mi.available AND (mi.stock IS NULL OR mi.stock >= 100)
              AND NOT EXISTS (SELECT 1 FROM item_modifiers m WHERE m.item_id = mi.id)
            ORDER BY r.id DESC, mi.id LIMIT 1""")
    assert row, "no restaurant with an available plain item in the seed"
    db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = %s", (row["rid"],))
    try:
        yield {"rid": row["rid"], "item": row["item"], "token": token}
    finally:
        db.exec("UPDATE restaurants SET open_minute = %s, close_minute = %s WHERE id = %s",
                (row["open_minute"], row["close_minute"], row["rid"]))
        db.close()
