"""The load tools' Idempotency-Keys: a checkout load measures checkouts only
when its keys are new. Run twice from the same sequence base, the second run
is answered with the first run's orders (201s marked idempotent-replayed).
wrk's replay.lua and loadtests/openloop count such answers and the harness
refuses the run; bench_proc.seq_base() gives each run keys of its own, within
one process and across processes that reuse a stack. Mechanisms, never a
figure. Needs the make test environment."""

import json
import os
import time

import pytest

import bench_proc as bp
import bench_workload as wl
from hplib.process import run
from hplib.server import Server

BIN = os.environ.get("HOTPLATE_BIN")
pytestmark = pytest.mark.skipif(not BIN or not os.environ.get("HOTPLATE_PG_URL") or not os.environ.get("HOTPLATE_TOKENS"),
                                reason="needs the make test environment (HOTPLATE_BIN, HOTPLATE_PG_URL, HOTPLATE_TOKENS)")


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    """A server (payment_latency_ms=0) and a file of 50 one-line checkouts at restaurants that stay open."""
    tmp = tmp_path_factory.mktemp("replay-keys")
    s = Server(BIN, tmp, threads=1, flags=["payment_latency_ms=0"])
    s.start()
    env = bp.server_env({k: os.environ[k] for k in ("HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL")})
    data = wl.Data(env, os.environ["HOTPLATE_TOKENS"])
    path = wl.write_requests(str(tmp / "orders.req"), wl.orders(data, 50, 3, data.need_open(), max_lines=1))
    yield s, path
    s.stop()


def test_seq_bases_never_repeat_and_follow_the_clock():
    bases = [bp.seq_base() for _ in range(1000)]
    assert all(b < c for b, c in zip(bases, bases[1:]))
    # Microseconds of the wall clock, so that a later process starts above an earlier one's runs.
    assert abs(bases[-1] - time.time_ns() // 1000) < 60 * 10 ** 6


def test_wrk_counts_replays_and_the_harness_refuses_them(orders):
    server, path = orders
    base = bp.seq_base()
    first = bp.wrk(server.port, path, 4, 1, base)
    assert first["requests"] > 0 and first["replayed"] == 0, first
    assert first["status_4xx"] + first["status_5xx"] + first["socket_errors"] == 0, first
    # The same base again: the first run's keys, so its orders come back instead of new ones.
    with pytest.raises(bp.BenchError, match=r"replays of Idempotency-Keys"):
        bp.wrk(server.port, path, 4, 1, base)
    # A base of its own: new orders again.
    again = bp.wrk(server.port, path, 4, 1, bp.seq_base())
    assert again["requests"] > 0 and again["replayed"] == 0, again


def test_openloop_counts_replays(orders):
    server, path = orders
    binary = os.path.join(os.path.dirname(os.path.realpath(BIN)), "openloop")
    # bench_proc.openloop numbers each run from seq_base(): nothing is replayed, twice in a row.
    for _ in range(2):
        summary = bp.openloop(binary, server.port, path, "40:1", 4, 5000)
        assert summary["completed"] == 40 and summary["replayed"] == 0, summary
    # One base twice: every answer of the second run is the first run's order.
    base = str(bp.seq_base())
    out = [run([binary, "--port", str(server.port), "--requests", path, "--schedule", "40:1", "--connections", "4",
                "--seq-base", base], 60) for _ in range(2)]
    first, second = (json.loads(o) for o in out)
    assert first["replayed"] == 0 and first["status"]["2xx"] == 40, first
    assert second["replayed"] == 40 and second["status"]["2xx"] == 40, second
