"""Payment declines and timeouts under a checkout load.

The gateway simulator declines a share of authorizations (payment_failure_pct)
and is slower than the client deadline for some (payment_latency_ms against
--payment-timeout-ms). Every checkout must end as exactly one of: 201 with
its order, items and payment written; 402 payment_declined; or 504
payment_timeout; and a 402 or 504 leaves no order behind for its key. A
timed-out authorization is voided when the gateway answers late: the
simulator's counters in /debug/perf (loop.payments) show every one of them.

The single-request forms of both are in tests/e2e (test_orders.py
test_payment_declined_writes_nothing, test_timeouts.py
test_payment_timeout_is_504_and_nothing_is_written); this is the same under
concurrency.
"""

import time
import uuid

from conftest import cart
from hplib.client import perf
from load import Load

WORKERS = 8
REQUESTS = 400


def _check(db, outcomes):
    by_status = {}
    lost = 0
    for o in outcomes:
        c, key, body = o.tag
        assert o.status is not None, "no answer: %s" % o.error
        assert (o.status, o.code) in {(201, None), (402, "payment_declined"), (504, "payment_timeout")}, (o.status, o.code)
        by_status[o.status] = by_status.get(o.status, 0) + 1
        rows = db.all("SELECT id FROM orders WHERE user_id = %s AND idempotency_key = %s", (c["id"], key))
        if o.status == 201:
            ok = (
                len(rows) == 1
                and rows[0]["id"] == o.body["id"]
                and db.val("SELECT count(*) FROM order_items WHERE order_id = %s", (rows[0]["id"],)) == len(body["items"])
                and db.val("SELECT count(*) FROM payments WHERE order_id = %s", (rows[0]["id"],)) == 1
            )
            lost += not ok
        else:
            assert not rows, "a %d checkout left an order behind: %s" % (o.status, rows)
    return by_status, lost


def _load(s, cast, run):
    def make(idx, n):
        c = cast.customers[idx % len(cast.customers)]
        key = "pay-%s-%d-%d" % (run, idx, n)
        body = cart(cast, n)
        headers = {"Authorization": "Bearer " + c["token"], "Idempotency-Key": key}
        return (c, key, body), "POST", s.base + "/orders", {"json": body, "headers": headers}

    return Load(make, WORKERS, max_requests=REQUESTS, max_seconds=60).run()


def _run(s, db, cast, failed):
    """The load on s, checked: some checkouts created and some failed with status `failed`, and none lost."""
    outcomes = _load(s, cast, uuid.uuid4().hex[:8])
    by_status, lost = _check(db, outcomes)
    assert by_status.get(201) and by_status.get(failed), by_status
    assert lost == 0
    return outcomes, by_status, lost


def _record(record, fault, outcomes, by_status, lost, **failed):
    """One row for docs/RELIABILITY.md; failed names each row's key for a status, e.g. declined_402=402."""
    record(
        fault=fault,
        load="%d clients, %d checkouts" % (WORKERS, len(outcomes)),
        requests=len(outcomes),
        orders_checked=len(outcomes),
        created=by_status.get(201, 0),
        lost=lost,
        duplicates=0,
        **{key: by_status.get(status, 0) for key, status in failed.items()},
    )


def test_declines_under_load(start_server, db, cast, record):
    s = start_server("declines", threads=2, flags=["payment_failure_pct=40", "payment_latency_ms=10"])
    outcomes, by_status, lost = _run(s, db, cast, 402)
    _record(record, "payment gateway declining 40% of authorizations", outcomes, by_status, lost, declined_402=402)


def test_timeouts_under_load(start_server, db, cast, record):
    # A 100 ms deadline against a 60 ms mean with a right-skewed jitter: some
    # authorizations arrive in time and some do not.
    s = start_server("pay-timeouts", threads=2, flags=["payment_latency_ms=60"], env={"HOTPLATE_PAYMENT_TIMEOUT_MS": "100"})
    outcomes, by_status, lost = _run(s, db, cast, 504)
    # Each 504 is one authorization nobody waited for; once the gateway has answered them all, each is voided.
    deadline = time.monotonic() + 30
    while True:
        pay = perf(s, "loop")["loop"]["payments"]
        # (voided can be higher: an authorization whose client left after it was granted is voided too)
        if pay["timed_out"] == by_status[504] and pay["voided"] >= pay["timed_out"]:
            break
        assert time.monotonic() < deadline, "timed-out authorizations not all voided: %s, %d answered 504" % (pay, by_status[504])
        time.sleep(0.2)
    _record(
        record,
        "payment gateway slower than the 100 ms deadline for part of the authorizations",
        outcomes,
        by_status,
        lost,
        timed_out_504=504,
    )
