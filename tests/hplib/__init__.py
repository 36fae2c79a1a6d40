"""hplib: the one Python library of hotplate's test suites and load tests.

Each module has one job:

- process: a background process we own (its log files, bounded stop and kill,
  the registry that lets a watchdog or a failed test find it), and run(), a
  command run to completion under a timeout;
- server: the one class that starts a `hotplate serve` on free loopback
  ports and waits for it, and Servers, the start_server fixtures' helper;
- stack: the private PostgreSQL and Redis of deploy/stack.sh, and its env file;
- describe: the binary's own description of itself (`hotplate describe --json`):
  routes, statements and their SQL, flags, errors, stats;
- tokens: the seed's tokens file;
- stats: medians, confidence intervals of the median, the Mann-Whitney U test;
- client: the tests' HTTP client with hard timeouts and the error-shape checks;
- db: the tests' PostgreSQL helper and the checkout snapshot;
- oracle: what a price breakdown and opening hours must be, computed from the
  database independently of the server;
- pytest_hooks: the hooks the suites share (watchdog, log tails on failure,
  skipping without a built server), a plugin each conftest.py loads.

process, server, stack, describe, tokens and stats use the Python standard
library only, because the load tests (loadtests/*.py) import them and must run
where python3-requests and python3-psycopg2 are missing; client, db, oracle
and pytest_hooks are for the pytest suites and may use both.

How it is found, without any sys.path edit: each suite's pytest.ini has
`pythonpath = ..` (tests/), and the Makefile targets and tests that run
loadtests/*.py set PYTHONPATH=<repo>/tests.

This file imports nothing, so that importing one module never drags in
another's dependencies.
"""
