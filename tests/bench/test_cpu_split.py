"""loadtests/cpu_split.py's account on made-up snapshots: per-order CPU by
part, the busiest server thread as the worker, processes that started inside
the window left out, and a window without orders refused. Mechanisms, never a
figure of this machine's."""

import pytest

import bench_proc as bp
import cpu_split


def snap(t, orders, machine, **cpu):
    """A snapshot as cpu_split.snapshot() makes it; cpu: name=(part, seconds), name "tidN"/"pidN"."""
    return {"t": t, "orders": orders, "machine": machine,
            "cpu": {(k[:3], int(k[3:])): v for k, v in cpu.items()}}


def test_per_order_microseconds_by_part():
    a0 = snap(10.0, 1000, 50.0, tid1=("server", 1.0), tid2=("server", 5.0), pid7=("backends_read", 2.0),
              pid8=("backends_txn", 3.0), pid9=("pg_own", 0.5), pid11=("generator", 0.1))
    a1 = snap(12.0, 3000, 51.2, tid1=("server", 1.02), tid2=("server", 5.2), pid7=("backends_read", 2.1),
              pid8=("backends_txn", 3.6), pid9=("pg_own", 0.5), pid11=("generator", 0.15),
              pid12=("backends_txn", 9.0))  # a backend that started inside the window: left out
    r = cpu_split.account(a0, a1)
    assert r["rate"] == pytest.approx(1000.0)  # 2,000 orders in 2 s
    assert r["server_worker"] == pytest.approx(100.0)  # 0.2 s of the busiest thread over 2,000 orders
    assert r["server_other"] == pytest.approx(10.0)
    assert r["backends_read"] == pytest.approx(50.0)
    assert r["backends_txn"] == pytest.approx(300.0)
    assert r["pg_own"] == pytest.approx(0.0)
    assert r["generator"] == pytest.approx(25.0)
    assert r["sum"] == pytest.approx(485.0)
    assert r["machine"] == pytest.approx(600.0)


def test_a_window_without_orders_is_refused():
    a = snap(1.0, 5, 1.0, tid1=("server", 1.0))
    with pytest.raises(bp.BenchError, match="no order"):
        cpu_split.account(a, dict(a, t=2.0))


def test_the_table_has_a_column_per_load_and_leaves_out_empty_rows():
    rows = {"POST /orders": [dict.fromkeys([k for k, _ in cpu_split.PARTS] + ["rate"], 0.0) for _ in range(3)]}
    for i, r in enumerate(rows["POST /orders"]):
        r.update(rate=1000.0 + i, server_worker=50.0 + i, sum=50.0 + i, machine=60.0)
    text = cpu_split.fmt_table(rows)
    assert "| orders per second in the window | 1,001 |" in text
    assert "| hotplate: the worker thread | 51 |" in text and "| sum of the above | **51** |" in text
    assert "Redis" not in text  # zero on every load
    assert "rounds 1,000, 1,001, 1,002 orders/s" in text
