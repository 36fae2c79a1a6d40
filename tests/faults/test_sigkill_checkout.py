"""hotplate SIGKILLed in the middle of a checkout load, then restarted.

Every order that was answered 201 must exist with its items and its payment,
and retrying every Idempotency-Key that was sent (answered or not) must give
at most one order per key: the order the key already has, never a second one.
The mechanism under test is checkout's single transaction (order, items and
payment commit together or not at all) and the unique index on
(idempotency_key, user_id); the kill lands while requests are at every stage,
because the payment simulator keeps each checkout in flight for tens of
milliseconds.
"""

import uuid

from conftest import cart
from hplib.client import Client, assert_status, describe
from load import Load, wait_until

WORKERS = 8
# The kill comes once this many orders were answered 201, so the check covers
# real orders; the budget and the time limit bound the load if it never does.
KILL_AFTER_CREATED = 80
MAX_REQUESTS = 3000
MAX_SECONDS = 30


def test_sigkill_during_checkout_loses_nothing(start_server, db, cast, record):
    s = start_server("sigkill", threads=2, flags=["payment_latency_ms=20"])
    run = uuid.uuid4().hex[:12]
    customers = cast.customers[:WORKERS]

    def make(idx, n):
        c = customers[idx % len(customers)]
        key = "kill-%s-%d-%d" % (run, idx, n)
        body = cart(cast, n)
        headers = {"Authorization": "Bearer " + c["token"], "Idempotency-Key": key, "Content-Type": "application/json"}
        return (c, key, body), "POST", s.base + "/orders", {"json": body, "headers": headers}

    load = Load(make, WORKERS, max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS).start()
    wait_until(lambda: load.count(lambda o: o.status == 201) >= KILL_AFTER_CREATED, MAX_SECONDS)
    s.kill()  # SIGKILL: no drain, no goodbye
    load.stop()
    outcomes = load.join()
    created = [o for o in outcomes if o.status == 201]
    unanswered = [o for o in outcomes if o.status is None]
    assert len(created) >= KILL_AFTER_CREATED, "the load created only %d orders before the kill" % len(created)
    other = [o for o in outcomes if o.status not in (201, None)]
    assert not other, "unexpected answers before the kill: %s" % [(o.status, o.code) for o in other[:5]]

    # Restart on the same database, as an orchestrator would.
    s2 = start_server("sigkill-restarted", threads=2, flags=["payment_latency_ms=0"])

    # Every 201 exists, with its items and its payment.
    lost = []
    for o in created:
        c, key, body = o.tag
        oid = o.body["id"]
        row = db.all("SELECT user_id, idempotency_key FROM orders WHERE id = %s", (oid,))
        items = db.val("SELECT count(*) FROM order_items WHERE order_id = %s", (oid,))
        pay = db.val("SELECT count(*) FROM payments WHERE order_id = %s AND status = 'authorized'", (oid,))
        if not row or row[0]["user_id"] != c["id"] or row[0]["idempotency_key"] != key or items != len(body["items"]) or pay != 1:
            lost.append((oid, key, row, items, pay))
    assert not lost, "orders answered 201 but missing or incomplete after the kill: %s" % lost[:5]

    # Retrying every key sent gives the key's one order: the same id for the
    # 201s, and for the unanswered ones either the order that committed
    # before the kill or a new one, never two.
    first_id = {o.tag[1]: o.body["id"] for o in created}
    replayed_unanswered = 0
    for o in created + unanswered:
        c, key, body = o.tag
        r = Client(s2.base, c["token"]).order(body, key=key)
        b = assert_status(r, 201)
        if key in first_id:
            assert b["id"] == first_id[key], "a retried key got another order\n" + describe(r)
            assert r.headers.get("Idempotent-Replayed") == "true", describe(r)
        elif r.headers.get("Idempotent-Replayed") == "true":
            replayed_unanswered += 1
    keys = [o.tag[1] for o in created + unanswered]
    dup = db.all(
        "SELECT idempotency_key, user_id, count(*) AS n FROM orders WHERE idempotency_key = ANY(%s) "
        "GROUP BY 1, 2 HAVING count(*) > 1",
        (keys,),
    )
    assert not dup, "keys with more than one order: %s" % dup[:5]
    assert db.val("SELECT count(*) FROM orders WHERE idempotency_key = ANY(%s)", (keys,)) == len(keys)
    # Nothing half-written anywhere: every order of the run has items and a payment.
    orphans = db.val(
        "SELECT count(*) FROM orders o WHERE o.idempotency_key = ANY(%s) AND (NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)"
        " OR NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id))",
        (keys,),
    )
    assert orphans == 0

    record(
        fault="hotplate SIGKILL during checkout, then restart",
        load="%d clients, POST /orders, payment latency 20 ms" % WORKERS,
        requests=len(outcomes),
        orders_checked=len(created),
        keys_retried=len(keys),
        unanswered=len(unanswered),
        unanswered_committed=replayed_unanswered,
        lost=len(lost),
        duplicates=len(dup),
    )
