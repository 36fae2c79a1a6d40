"""Fixtures of the hotplate monitoring suite.

The static checks (rule files, Alertmanager routes, the compose file, the
Grafana dashboards, the log shipping configuration) need only the repository
and Debian's promtool and amtool. The live ones (Prometheus and Alertmanager
against a running server, nginx in front of two servers, /debug/logs) start
real processes: servers through tests/e2e/hpe2e.py, which this suite imports
rather than copies, and the daemons through `daemons.py`; each has a private
directory and free loopback ports and is stopped on every exit path.

Without HOTPLATE_BIN the live tests are skipped, as in tests/e2e.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

import hpe2e  # noqa: E402
import daemons  # noqa: E402


def _cleanup():
    hpe2e.kill_servers()
    daemons.kill_all()


def pytest_configure(config):
    hpe2e.arm_watchdog(config, "monitoring", "HOTPLATE_MONITORING_DEADLINE", 600, _cleanup)


def pytest_unconfigure(config):
    _cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    rep.sections += hpe2e.log_sections(0)
    for d in list(daemons.DAEMONS):
        rep.sections.append(("daemon log: " + d.name, d.log_tail()))


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
    started = []

    def _start(threads=2, flags=(), env=None, name="server", ready_timeout=30.0, wait_ready=True):
        e = {"HOTPLATE_PG_URL": live_env["HOTPLATE_PG_URL"], "HOTPLATE_REDIS_URL": live_env["HOTPLATE_REDIS_URL"]}
        e.update(env or {})
        s = hpe2e.ServerProcess(live_env["HOTPLATE_BIN"], tmp_path / name, name=name, threads=threads, flags=flags, env=e,
                                ready_timeout=ready_timeout)
        started.append(s)
        s.start(wait_ready=wait_ready)
        return s

    yield _start
    for s in started:
        s.kill()
