"""POST /orders: rows written, idempotency (also under concurrency), stock,
opening hours, and the Idempotency-Key header."""

import json
import threading

import pytest

from hplib.client import RFC3339_UTC, Client, assert_error, assert_status, describe, new_key
from hplib.db import checkout_snapshot
from hplib.oracle import BREAKDOWN, check_breakdown, closed_window, minute_now

ORDER_FIELDS = {"id", "user_id", "restaurant_id", "restaurant_name", "status", "created_at", "items", "payment"} | set(BREAKDOWN)


def check_order_rows(db, order, user_id, key):
    """The order, its items and its payment exist in PostgreSQL as answered."""
    row = db.one("SELECT * FROM orders WHERE id = %s", (order["id"],))
    assert row["user_id"] == user_id and row["restaurant_id"] == order["restaurant_id"]
    assert row["status"] == order["status"] == "placed"
    assert row["idempotency_key"] == key
    for k in BREAKDOWN:
        assert row[k] == order[k], "orders.%s = %r, answer says %r" % (k, row[k], order[k])
    items = db.all("SELECT * FROM order_items WHERE order_id = %s ORDER BY id", (order["id"],))
    assert len(items) == len(order["items"])
    for dbi, oi in zip(items, order["items"]):
        for k in ("item_id", "name", "quantity", "unit_price_cents", "line_total_cents"):
            assert dbi[k] == oi[k], "order_items.%s = %r, answer says %r" % (k, dbi[k], oi[k])
        assert sorted(dbi["modifier_ids"]) == sorted(oi.get("modifier_ids") or [])
        assert dbi["line_total_cents"] == dbi["unit_price_cents"] * dbi["quantity"]
    assert sum(i["line_total_cents"] for i in items) == row["subtotal_cents"]
    pays = db.all("SELECT * FROM payments WHERE order_id = %s", (order["id"],))
    assert len(pays) == 1, "expected one payment row, got %d" % len(pays)
    p = pays[0]
    assert p["amount_cents"] == row["total_cents"]
    assert p["status"] == "authorized"
    assert order["payment"] == {"authorization_id": p["authorization_id"], "amount_cents": p["amount_cents"], "status": "authorized"}


def test_order_created(client, db, world, mk_cart):
    m1 = world.mods[world.item_mod]
    body = mk_cart([(world.item_mod, 2, m1[:1]), (world.item_plain, 1, [])], tip_cents=150)
    quote = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    key = new_key()
    before = checkout_snapshot(db)
    r = client.order(body, key=key, token=world.a["token"])
    o = assert_status(r, 201)
    assert r.headers.get("Idempotent-Replayed") in (None, "false"), describe(r)
    assert set(o) >= ORDER_FIELDS, "order object lacks %s" % (ORDER_FIELDS - set(o))
    assert o["user_id"] == world.a["id"] and o["restaurant_id"] == world.rid and o["status"] == "placed"
    assert o["restaurant_name"] == db.val("SELECT name FROM restaurants WHERE id = %s", (world.rid,))
    assert RFC3339_UTC.match(o["created_at"]), o["created_at"]
    check_breakdown(db, body, o, world.a["id"], world.rid)
    for k in BREAKDOWN:
        assert o[k] == quote[k], "order %s = %d but the quote said %d" % (k, o[k], quote[k])
    check_order_rows(db, o, world.a["id"], key)
    after = checkout_snapshot(db)
    assert after["orders"] == before["orders"] + 1 and after["payments"] == before["payments"] + 1
    assert after["order_items"] == before["order_items"] + 2
    # GET answers the same order.
    g = assert_status(client.get("/orders/%d" % o["id"], token=world.a["token"]), 200)
    assert g == o, "GET /orders/{id} differs from the POST answer"


def test_idempotent_replay(client, db, world, mk_cart):
    body = mk_cart([(world.item_plain, 2, [])])
    key = new_key()
    o1 = assert_status(client.order(body, key=key, token=world.a["token"]), 201)
    before = checkout_snapshot(db)
    r2 = client.order(body, key=key, token=world.a["token"])
    o2 = assert_status(r2, 201)
    assert r2.headers.get("Idempotent-Replayed") == "true", describe(r2)
    assert o2["id"] == o1["id"]
    assert {k: o2[k] for k in BREAKDOWN} == {k: o1[k] for k in BREAKDOWN}
    assert checkout_snapshot(db) == before, "a replay wrote to the database"
    assert db.val("SELECT count(*) FROM orders WHERE user_id = %s AND idempotency_key = %s", (world.a["id"], key)) == 1


def test_same_key_other_user_is_another_order(client, db, world, mk_cart):
    key = new_key()
    body = mk_cart([(world.item_plain, 1, [])])
    oa = assert_status(client.order(body, key=key, token=world.a["token"]), 201)
    rb = client.order(body, key=key, token=world.b["token"])
    ob = assert_status(rb, 201)
    assert ob["id"] != oa["id"] and ob["user_id"] == world.b["id"]
    assert rb.headers.get("Idempotent-Replayed") in (None, "false")


def test_concurrent_same_key_one_order(server, db, world, mk_cart, items_state):
    """20 concurrent POSTs with one key: one order, one payment, one stock
    decrement, and every answer 201 with that order's id."""
    items_state(world.item_plain, stock=500)
    key = new_key()
    body = mk_cart([(world.item_plain, 3, [])])
    before = checkout_snapshot(db)
    n = 20
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        c = Client(server.base, world.a["token"])
        try:
            barrier.wait(timeout=10)
            r = c.order(body, key=key, timeout=30)
            results[i] = (r.status_code, r.text, r.headers.get("Idempotent-Replayed"))
        except Exception as e:  # recorded and asserted below
            results[i] = (None, repr(e), None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    rows = db.all("SELECT id FROM orders WHERE user_id = %s AND idempotency_key = %s", (world.a["id"], key))
    assert len(rows) == 1, "%d orders for one idempotency key" % len(rows)
    oid = rows[0]["id"]
    after = checkout_snapshot(db)
    assert after["orders"] == before["orders"] + 1
    assert after["payments"] == before["payments"] + 1
    assert db.val("SELECT count(*) FROM payments WHERE order_id = %s", (oid,)) == 1
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 497, "stock decremented more than once"
    bad = [r for r in results if r[0] != 201]
    assert not bad, "non-201 answers to concurrent retries: %s" % bad[:5]
    ids = {json.loads(r[1])["id"] for r in results}
    assert ids == {oid}, ids
    replayed = sum(1 for r in results if r[2] == "true")
    assert replayed == n - 1, "expected %d answers with Idempotent-Replayed: true, got %d" % (n - 1, replayed)


def test_stock_decrement(client, db, world, mk_cart, items_state):
    items_state(world.item_plain, stock=10)
    o = assert_status(client.order(mk_cart([(world.item_plain, 3, [])]), token=world.a["token"]), 201)
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 7
    # Two lines of the same item count together.
    assert_status(client.order(mk_cart([(world.item_plain, 2, []), (world.item_plain, 2, [])]), token=world.a["token"]), 201)
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 3
    # Exactly the remaining stock is fine and leaves zero.
    assert_status(client.order(mk_cart([(world.item_plain, 3, [])]), token=world.a["token"]), 201)
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 0
    # Untracked stock stays untracked.
    assert_status(client.order(mk_cart([(world.item_spare, 5, [])]), token=world.a["token"]), 201)
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_spare,)) is None
    assert o["id"]


@pytest.mark.parametrize(
    "stock,lines",
    [
        (0, [1]),
        (2, [3]),
        (3, [2, 2]),
        (98, [99]),
    ],
)
def test_out_of_stock_409(client, db, world, mk_cart, items_state, stock, lines):
    items_state(world.item_plain, stock=stock)
    body = mk_cart([(world.item_plain, q, []) for q in lines] + [(world.item_spare, 1, [])])
    before = checkout_snapshot(db)
    assert_error(client.order(body, token=world.a["token"]), 409, "out_of_stock")
    assert checkout_snapshot(db) == before, "a rejected checkout wrote to the database"
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == stock


def test_restaurant_closed_409(client, db, world, mk_cart):
    m = minute_now(db)
    o, c = closed_window(m)
    db.exec("UPDATE restaurants SET open_minute = %s, close_minute = %s WHERE id = %s", (o, c, world.rid))
    try:
        before = checkout_snapshot(db)
        assert_error(client.order(mk_cart(), token=world.a["token"]), 409, "restaurant_closed")
        assert checkout_snapshot(db) == before
        r = assert_status(client.get("/restaurants/%d" % world.rid), 200)
        assert r["open_now"] is False
    finally:
        db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = %s", (world.rid,))
    assert_status(client.order(mk_cart(), token=world.a["token"]), 201)


def test_restaurant_closed_after_midnight_wrap(client, db, world, mk_cart):
    """Hours that wrap past midnight (close < open) and contain now are open."""
    m = minute_now(db)
    if m >= 20:
        o, c = m - 5, 1  # open from a few minutes ago until 00:01
    else:
        o, c = 1400, m + 5  # open since 23:20 until a few minutes from now
    assert o > c
    db.exec("UPDATE restaurants SET open_minute = %s, close_minute = %s WHERE id = %s", (o, c, world.rid))
    try:
        assert_status(client.order(mk_cart(), token=world.a["token"]), 201)
        assert assert_status(client.get("/restaurants/%d" % world.rid), 200)["open_now"] is True
    finally:
        db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = %s", (world.rid,))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Idempotency-Key": ""},
        {"Idempotency-Key": "k" * 65},
        {"Idempotency-Key": "has\ttab"},
        {"Idempotency-Key": "caf\xe9"},
    ],
    ids=["absent", "empty", "65-chars", "tab", "non-ascii"],
)
def test_bad_idempotency_key_400(client, db, world, mk_cart, headers):
    before = checkout_snapshot(db)
    r = client.post("/orders", mk_cart(), headers=headers, token=world.a["token"])
    assert_error(r, 400, "missing_idempotency_key")
    assert checkout_snapshot(db) == before


def test_idempotency_key_64_chars_ok(client, db, world, mk_cart):
    key = ("e2e64" + new_key())[:64].ljust(64, "z")
    o = assert_status(client.order(mk_cart(), key=key, token=world.a["token"]), 201)
    assert db.val("SELECT idempotency_key FROM orders WHERE id = %s", (o["id"],)) == key


def test_order_auth(client, db, world, mk_cart):
    before = checkout_snapshot(db)
    assert_error(client.order(mk_cart()), 401, "unauthorized")
    assert_error(client.order(mk_cart(), token="nope-e2e"), 401, "unauthorized")
    assert_error(client.order(mk_cart(), token=world.owner), 403, "forbidden")
    assert checkout_snapshot(db) == before


def test_payment_declined_writes_nothing(start_server, db, world, mk_cart, items_state):
    """With the gateway simulator declining everything, checkout answers
    402 payment_declined and writes no order, no payment and no stock change."""
    s = start_server(threads=1, name="declines", flags=["payment_failure_pct=100", "payment_latency_ms=0"])
    c = Client(s.base, world.a["token"])
    items_state(world.item_plain, stock=20)
    before = checkout_snapshot(db)
    key = new_key()
    assert_error(c.order(mk_cart([(world.item_plain, 2, [])]), key=key), 402, "payment_declined")
    assert checkout_snapshot(db) == before, "a declined checkout wrote to the database"
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 20
    # The same key is not burnt by a decline: a retry is judged again (and declined again).
    assert_error(c.order(mk_cart([(world.item_plain, 2, [])]), key=key), 402, "payment_declined")
    assert checkout_snapshot(db) == before
