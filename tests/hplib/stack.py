"""The private PostgreSQL and Redis that deploy/stack.sh runs under a home
directory, and the env file it writes there (HOTPLATE_PG_URL and friends).

Every command has a bound, and a failed one raises process.ProcessError with
the last lines it printed. Standard library only (the load tests import it).
"""

import os
import re

from .process import ProcessError, run

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STACK_SH = os.path.join(REPO, "deploy", "stack.sh")
MIGRATIONS = os.path.join(REPO, "migrations")


def read_env(path):
    """The variables of an env file (`export NAME='value'` lines) as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^export (\w+)='(.*)'$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


class Stack:
    """The stack under `home`; each stack.sh command is bounded by `timeout` seconds."""

    def __init__(self, home, timeout=180):
        self.home = home
        self.timeout = timeout
        self.env = {}

    def run(self, *args, check=True):
        """deploy/stack.sh ARGS --home HOME; returns what it printed. With check=False a failure is ignored."""
        try:
            return run([STACK_SH, *args, "--home", self.home], self.timeout)
        except ProcessError:
            if check:
                raise
            return None

    def up(self):
        """Starts the stack (a no-op when it runs) and reads its env file."""
        self.run("up")
        return self.read_env()

    def read_env(self):
        """Reads the env file again (a restarted PostgreSQL may move); returns the variables."""
        self.env = read_env(os.path.join(self.home, "env"))
        return self.env

    @property
    def pg_url(self):
        return self.env["HOTPLATE_PG_URL"]

    @property
    def redis_url(self):
        return self.env["HOTPLATE_REDIS_URL"]

    def migrate_and_seed(self, binary, env, scale, tokens, migrations=MIGRATIONS, timeout=900):
        """`hotplate migrate`, then `hotplate seed --scale S --tokens PATH`, in env; each bounded by timeout."""
        run([binary, "migrate", "--dir", migrations], timeout, env=env)
        run([binary, "seed", "--scale", str(scale), "--tokens", tokens, "--dir", migrations], timeout, env=env)
