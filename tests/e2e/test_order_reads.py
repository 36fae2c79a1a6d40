"""GET /orders/{id} (who may see an order) and GET /users/{id}/orders
(newest first, keyset pagination compared with SQL)."""

import datetime

import pytest

from hplib.client import RFC3339_UTC, assert_error, assert_status, walk_pages
from hplib.oracle import BREAKDOWN


def parse_ts(s):
    assert RFC3339_UTC.match(s), "not RFC 3339 UTC: %r" % s
    base = s[:19]
    frac = s[20:-1] if len(s) > 20 else ""
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    if frac:
        t += datetime.timedelta(microseconds=int((frac + "000000")[:6]))
    return t


def check_against_db(db, o):
    row = db.one(
        "SELECT o.*, r.name AS restaurant_name FROM orders o JOIN restaurants r ON r.id = o.restaurant_id WHERE o.id = %s",
        (o["id"],),
    )
    for k in ["user_id", "restaurant_id", "restaurant_name", "status"] + BREAKDOWN:
        assert o[k] == row[k], "order %d %s: got %r, db %r" % (o["id"], k, o[k], row[k])
    # The answer is at most as precise as the database; seconds must agree.
    got = parse_ts(o["created_at"])
    assert abs((got - row["created_at"]).total_seconds()) < 1.0, (o["created_at"], row["created_at"])
    items = db.all("SELECT item_id, name, quantity, unit_price_cents, line_total_cents, modifier_ids FROM order_items WHERE order_id = %s ORDER BY id", (o["id"],))
    assert isinstance(o["items"], list) and len(o["items"]) == len(items), "order %d items" % o["id"]
    assert sorted((i["item_id"], i["quantity"], i["line_total_cents"]) for i in o["items"]) == sorted(
        (i["item_id"], i["quantity"], i["line_total_cents"]) for i in items
    )
    for i in o["items"]:
        assert set(i) >= {"item_id", "name", "quantity", "unit_price_cents", "line_total_cents", "modifier_ids"}, i


def test_get_order_visibility(client, db, world, place_order, tokens):
    o = place_order()
    path = "/orders/%d" % o["id"]
    assert assert_status(client.get(path, token=world.a["token"]), 200) == o
    owner_view = assert_status(client.get(path, token=world.owner), 200)
    assert owner_view["id"] == o["id"] and owner_view["user_id"] == world.a["id"]
    assert_error(client.get(path, token=world.b["token"]), 404, "not_found")
    assert_error(client.get(path, token=world.owner2), 404, "not_found")
    assert_error(client.get(path), 401, "unauthorized")
    assert_error(client.get(path, token="nope-e2e"), 401, "unauthorized")


def test_get_order_unknown_and_bad_ids(client, db, world):
    big = db.val("SELECT max(id) FROM orders") + 100000
    assert_error(client.get("/orders/%d" % big, token=world.a["token"]), 404, "not_found")
    for bad in ("0", "-1", "abc", "1e3", "9223372036854775808"):
        assert_error(client.get("/orders/" + bad, token=world.a["token"]), 400, "bad_param")


def test_seeded_order_of_customer(client, db, world):
    """A seeded historical order: same fields as in PostgreSQL; payment may be null."""
    oid = db.val("SELECT id FROM orders WHERE user_id = %s AND idempotency_key IS NULL ORDER BY id LIMIT 1", (world.a["id"],))
    if oid is None:
        pytest.skip("the most active customer has no seeded orders")
    o = assert_status(client.get("/orders/%d" % oid, token=world.a["token"]), 200)
    check_against_db(db, o)
    pay = db.all("SELECT authorization_id, amount_cents, status FROM payments WHERE order_id = %s", (oid,))
    if pay:
        assert o["payment"] == pay[0]
    else:
        assert o["payment"] is None


@pytest.mark.parametrize("limit", [3, 50])
def test_user_orders_all_pages(client, db, world, place_order, limit):
    """Walking every page yields each of the user's orders exactly once, newest first."""
    place_order()  # at least one fresh order
    c = client.as_(world.a["token"])
    # A developer's stack that has run the suites many times holds thousands of A's orders: bound the walk by them.
    n = db.val("SELECT count(*) FROM orders WHERE user_id = %s", (world.a["id"],))
    got, pages = walk_pages(c, "/users/%d/orders" % world.a["id"], {}, "orders", limit, max_pages=n // limit + 2)
    exp = db.all("SELECT id, created_at FROM orders WHERE user_id = %s ORDER BY created_at DESC, id DESC", (world.a["id"],))
    ids = [o["id"] for o in got]
    assert len(ids) == len(set(ids)), "an order appears twice across pages"
    assert sorted(ids) == sorted(e["id"] for e in exp), "pages do not cover exactly the user's orders"
    ts = [parse_ts(o["created_at"]) for o in got]
    assert all(a >= b for a, b in zip(ts, ts[1:])), "orders not newest first"
    # With equal timestamps the doc does not fix the order; otherwise it must match SQL.
    exp_created = {e["id"]: e["created_at"] for e in exp}
    assert [exp_created[i] for i in ids] == sorted((exp_created[i] for i in ids), reverse=True)
    for o in got:
        assert "payment" not in o, "list entries carry no payment"
        assert o["user_id"] == world.a["id"]
        assert o["restaurant_name"], o
        assert o["items"], "order %d has no items" % o["id"]
    for o in got[:5] + got[-3:]:
        check_against_db(db, o)


def test_user_orders_default_limit(client, db, world):
    b = assert_status(client.get("/users/%d/orders" % world.a["id"], token=world.a["token"]), 200)
    n = db.val("SELECT count(*) FROM orders WHERE user_id = %s", (world.a["id"],))
    assert len(b["orders"]) == min(10, n)
    if n > 10:
        assert b["next_cursor"] is not None
    elif n < 10:
        assert b["next_cursor"] is None


def test_user_orders_access(client, db, world):
    path = "/users/%d/orders" % world.a["id"]
    assert_error(client.get(path), 401, "unauthorized")
    assert_error(client.get(path, token="nope-e2e"), 401, "unauthorized")
    assert_error(client.get(path, token=world.b["token"]), 404, "not_found")
    assert_error(client.get(path, token=world.owner), 404, "not_found")
    big = db.val("SELECT max(id) FROM users") + 1000
    assert_error(client.get("/users/%d/orders" % big, token=world.a["token"]), 404, "not_found")


@pytest.mark.parametrize("query,code", [
    ("limit=0", "bad_param"),
    ("limit=51", "bad_param"),
    ("limit=x", "bad_param"),
    ("limit=-5", "bad_param"),
    ("cursor=garbage", "bad_cursor"),
    ("cursor=AAAAAAAAAAAA", "bad_cursor"),
])
def test_user_orders_bad_params(client, world, query, code):
    r = client.get("/users/%d/orders?%s" % (world.a["id"], query), token=world.a["token"])
    assert_error(r, 400, code)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "9223372036854775808"])
def test_user_orders_bad_user_id(client, world, bad):
    assert_error(client.get("/users/%s/orders" % bad, token=world.a["token"]), 400, "bad_param")
