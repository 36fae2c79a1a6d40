"""The pytest hooks the suites share (tests/e2e, tests/faults, tests/monitoring).

It is a plugin: each suite's conftest.py says
`pytest_plugins = ["hplib.pytest_hooks"]` and calls configure() from its
pytest_configure with what is its own (name, deadline, cleanup). It is not
given as `-p hplib.pytest_hooks` in pytest.ini's addopts because pytest
imports `-p` plugins before it applies the ini's `pythonpath`, when hplib is
not importable yet; conftest files are imported after.

For a configured suite it:
- skips the suite's tests when HOTPLATE_BIN is not set and the suite needs a
  built server;
- arms a watchdog that ends a run longer than the suite's deadline: it prints
  the log tails of every process started, runs the cleanup, and exits 3, so a
  hung test can never hang `make test`;
- appends to a failed test's report the log tails of the processes it
  started (or of every process, for suites whose processes outlive a test),
  and of the long-lived ones it names (`keep`);
- runs the cleanup at the end of the run: kill every process started
  (hplib.process.STARTED), then the suite's own cleanup.
"""

import os
import sys
import threading
import time

import pytest

from . import process

# Configured suites by their directory; a test belongs to the suite it lives under.
_SUITES = {}


class Suite:
    def __init__(self, name, home, deadline_env, deadline_s, needs_bin, logs_since_test, keep, cleanup):
        self.name = name
        self.home = os.path.abspath(home)
        self.deadline_env = deadline_env
        self.deadline_s = deadline_s
        self.needs_bin = needs_bin
        self.logs_since_test = logs_since_test
        self.keep = tuple(keep)
        self.extra_cleanup = cleanup

    def cleanup(self):
        """Stops every process started, whatever state each is in, then the suite's own things."""
        process.kill_all()
        if self.extra_cleanup is not None:
            self.extra_cleanup()


def configure(config, name, home, deadline_env, deadline_s, needs_bin=None, logs_since_test=True, keep=(), cleanup=None):
    """Configures the suite whose tests live below `home`.

    name: the suite in the watchdog's message; deadline_env, deadline_s: the
    environment variable with the run's bound in seconds, and its default.
    needs_bin: when the suite needs a built server, the phrase that names it
    in the skip reason ("the e2e suite"); then, without HOTPLATE_BIN, its
    tests are skipped and no watchdog is armed. logs_since_test: a failed test
    shows the logs of the processes started during it (True) or of all of
    them; keep: names of processes whose logs every failed test shows.
    cleanup: called after every process was killed, at the end of the run and
    from the watchdog."""
    suite = Suite(name, home, deadline_env, deadline_s, needs_bin, logs_since_test, keep, cleanup)
    _SUITES[suite.home] = suite
    if needs_bin and not os.environ.get("HOTPLATE_BIN"):
        return
    _arm_watchdog(config, suite)


def _suite_of(item):
    path = str(getattr(item, "fspath", ""))
    for home, suite in _SUITES.items():
        if path.startswith(home + os.sep):
            return suite
    return None


def _arm_watchdog(config, suite):
    deadline = int(os.environ.get(suite.deadline_env, str(suite.deadline_s)))

    def fire():
        # pytest holds fd 2 while a test runs, and os._exit would drop what it
        # captured: give the terminal back first so the report is seen.
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            try:
                capman.suspend_global_capture(in_=True)
            except Exception:
                pass
        sys.stderr.write("\n*** hotplate %s: run exceeded %ds, stopping everything ***\n" % (suite.name, deadline))
        for p in list(process.STARTED):
            try:
                sys.stderr.write(p.log_report(20) + "\n")
            except Exception:
                pass
        try:
            suite.cleanup()
        finally:
            sys.stderr.flush()
            os._exit(3)

    t = threading.Timer(deadline, fire)
    t.daemon = True
    t.start()


def log_sections(t0, keep=()):
    """The (title, text) report sections of a failed test: the log tails of
    the processes started at or after t0 and of those named in keep."""
    return [(p.section + ": " + p.name, p.log_report()) for p in list(process.STARTED) if p.name in keep or (p.started_at or 0) >= t0]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("HOTPLATE_BIN"):
        return
    for item in items:
        suite = _suite_of(item)
        if suite is not None and suite.needs_bin:
            item.add_marker(pytest.mark.skip(
                reason="HOTPLATE_BIN is not set: %s needs a built server (run it through `make test`)" % suite.needs_bin))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._hp_t0 = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    suite = _suite_of(item)
    if not rep.failed or suite is None:
        return
    rep.sections += log_sections(getattr(item, "_hp_t0", 0) if suite.logs_since_test else 0, keep=suite.keep)


def pytest_unconfigure(config):
    # Never leave a process behind, whatever happened.
    for suite in list(_SUITES.values()):
        suite.cleanup()
