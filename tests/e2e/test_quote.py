"""POST /cart/quote: the breakdown is complete, self-consistent and priced from
the database, and nothing is written."""

import pytest

from hplib.client import Client, assert_error, assert_status, describe
from hplib.db import checkout_snapshot
from hplib.oracle import BREAKDOWN, check_breakdown, haversine_m

def test_quote_breakdown(client, db, world, mk_cart):
    m1, m2 = world.mods[world.item_mod], world.mods[world.item_mod2]
    body = mk_cart(
        [(world.item_mod, 2, m1[:2]), (world.item_plain, 3, []), (world.item_mod2, 1, m2[:1])],
        tip_cents=250,
        delivery=dict(db.one("SELECT lat + 0.01 AS lat, lon - 0.01 AS lon FROM restaurants WHERE id = %s", (world.rid,))),
    )
    before = checkout_snapshot(db)
    r = client.post("/cart/quote", body, token=world.a["token"])
    q = assert_status(r, 200)
    assert checkout_snapshot(db) == before, "POST /cart/quote wrote to the database"
    assert set(q) >= {"restaurant_id", "currency", "lines", "distance_m", "promotion_id"} | set(BREAKDOWN), describe(r)
    assert q["restaurant_id"] == world.rid and q["currency"] == "EUR"
    check_breakdown(db, body, q, world.a["id"], world.rid)
    rest = db.one("SELECT lat, lon FROM restaurants WHERE id = %s", (world.rid,))
    d = haversine_m(rest["lat"], rest["lon"], body["delivery"]["lat"], body["delivery"]["lon"])
    assert isinstance(q["distance_m"], int) and abs(q["distance_m"] - d) <= 2 + d * 0.003, (q["distance_m"], d)
    if q["promotion_id"] is None:
        assert q["discount_cents"] == 0
    else:
        assert db.val("SELECT restaurant_id FROM promotions WHERE id = %s AND active", (q["promotion_id"],)) == world.rid


def test_quote_defaults_to_home_location(client, db, world, mk_cart):
    body = mk_cart([(world.item_plain, 1, [])])
    q = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    home = db.one("SELECT lat, lon FROM users WHERE id = %s", (world.a["id"],))
    rest = db.one("SELECT lat, lon FROM restaurants WHERE id = %s", (world.rid,))
    d = haversine_m(rest["lat"], rest["lon"], home["lat"], home["lon"])
    assert abs(q["distance_m"] - d) <= 2 + d * 0.003, "distance %s, home is %.0f m away" % (q["distance_m"], d)
    assert q["tip_cents"] == 0
    check_breakdown(db, body, q, world.a["id"], world.rid)


def test_quote_two_hundred_lines_and_max_tip(client, db, world, mk_cart):
    body = mk_cart([(world.item_plain, 1, [])] * 100 + [(world.item_mod, 99, world.mods[world.item_mod][:1])] * 100, tip_cents=100000)
    before = checkout_snapshot(db)
    q = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    assert len(q["lines"]) == 200
    check_breakdown(db, body, q, world.a["id"], world.rid)
    assert checkout_snapshot(db) == before


def test_quote_ten_modifiers_ok(client, db, world, mk_cart):
    mods = world.mods[world.item_mod]
    ids = (mods * 10)[:10]
    body = mk_cart([(world.item_mod, 1, ids)])
    r = client.post("/cart/quote", body, token=world.a["token"])
    # Repeating a modifier is not forbidden by the doc; if accepted, each counts.
    if r.status_code == 200:
        check_breakdown(db, body, r.json(), world.a["id"], world.rid)
    else:
        assert_error(r, 400, "invalid_field")


def test_quote_auth(client, db, world, mk_cart):
    before = checkout_snapshot(db)
    assert_error(client.post("/cart/quote", mk_cart()), 401, "unauthorized")
    assert_error(client.post("/cart/quote", mk_cart(), token="nope-e2e"), 401, "unauthorized")
    # "Auth: customer": an owner is authenticated but not allowed.
    assert_error(client.post("/cart/quote", mk_cart(), token=world.owner), 403, "forbidden")
    assert checkout_snapshot(db) == before


def test_quote_unavailable_and_closed_do_not_write(client, db, world, mk_cart, items_state):
    items_state(world.item_spare, available=False)
    before = checkout_snapshot(db)
    r = client.post("/cart/quote", mk_cart([(world.item_spare, 1, [])]), token=world.a["token"])
    assert_error(r, 422, "unavailable_item")
    assert checkout_snapshot(db) == before


@pytest.mark.parametrize("n", [1, 7])
def test_quote_repeatable(client, world, mk_cart, n):
    body = mk_cart([(world.item_plain, n, [])])
    a = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    b = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    assert a == b


def test_naive_total_mode_agrees(start_server, client, db, world, mk_cart):
    """The order_total=naive code path prices a cart exactly like the default."""
    m1, m2 = world.mods[world.item_mod], world.mods[world.item_mod2]
    lines = [(world.item_mod, 3, m1[:2]), (world.item_plain, 2, []), (world.item_mod2, 1, m2[:1])] * 10
    body = mk_cart(lines, tip_cents=321)
    s = start_server(threads=1, name="naive", flags=["order_total=naive"])
    naive = assert_status(Client(s.base, world.a["token"]).post("/cart/quote", body), 200)
    once = assert_status(client.post("/cart/quote", body, token=world.a["token"]), 200)
    assert naive == once
    check_breakdown(db, body, naive, world.a["id"], world.rid)
