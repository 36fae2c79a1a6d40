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
