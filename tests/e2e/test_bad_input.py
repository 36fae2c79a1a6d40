"""Every class of bad checkout input, against both POST /cart/quote and
POST /orders: each answer is the documented 4xx with the error shape and code,
never a 5xx, and the database is unchanged (row counts of orders, order_items,
payments, order_events, and every item's stock).

Where docs/API.md leaves the exact code open (for example a JSON array where an
object is expected could be `bad_json` or `invalid_field`) a case accepts the
reasonable set and says so.
"""

import json

import pytest

import requests

from hplib.client import Client, assert_error, assert_status, new_key
from hplib.db import checkout_snapshot

ENDPOINTS = ["quote", "order"]


def ok_line(w):
    return {"item_id": w.item_plain, "quantity": 1}


def body(w, **over):
    b = {"restaurant_id": w.rid, "items": [ok_line(w)]}
    for k, v in over.items():
        if v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def line(w, **over):
    l = ok_line(w)
    for k, v in over.items():
        if v is DROP:
            l.pop(k, None)
        else:
            l[k] = v
    return body(w, items=[l])


DROP = object()


def raw(template):
    """A raw body built from a template with {rid} and {item} holes."""
    return lambda w: template.replace(b"{rid}", str(w.rid).encode()).replace(b"{item}", str(w.item_plain).encode())


def nested_items(depth):
    return lambda w: ('{"restaurant_id": %d, "items": ' % w.rid + "[" * depth + "]" * depth + "}").encode()


BAD_JSON = "bad_json"
INVALID = "invalid_field"
ARR_OR_INVALID = {"bad_json", "invalid_field"}

CASES = [
    # -- not JSON, or not UTF-8
    ("empty-body", lambda w: b"", 400, BAD_JSON),
    ("not-json", lambda w: b"hello", 400, BAD_JSON),
    ("truncated", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1}'), 400, BAD_JSON),
    ("single-quotes", raw(b"{'restaurant_id': {rid}}"), 400, BAD_JSON),
    ("trailing-comma", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1},]}'), 400, BAD_JSON),
    ("trailing-garbage", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1}]} x'), 400, BAD_JSON),
    ("two-documents", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1}]}{}'), 400, BAD_JSON),
    ("nan", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": NaN}]}'), 400, BAD_JSON),
    ("invalid-utf8-key", raw(b'{"restaurant_id\xff": {rid}, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, BAD_JSON),
    ("invalid-utf8-outside", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1}]\xfe}'), 400, BAD_JSON),
    ("overlong-utf8", raw(b'{"restaurant_id": {rid}, "\xc0\xaf": 1, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, BAD_JSON),
    ("truncated-utf8", raw(b'{"restaurant_id": {rid}, "\xe2\x82": 1, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, BAD_JSON),
    ("lone-surrogate", raw(b'{"restaurant_id": {rid}, "\\ud800": 1, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, {"bad_json", "unknown_field"}),
    ("nul-in-key", raw(b'{"restaurant_id": {rid}, "a\\u0000": 1, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, {"bad_json", "unknown_field"}),
    ("huge-int-literal", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 99999999999999999999999}]}'), 400, ARR_OR_INVALID),
    ("huge-real-literal", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1e400}]}'), 400, ARR_OR_INVALID),
    # -- nesting
    ("nesting-100-in-items", nested_items(100), 400, "too_deep"),
    ("nesting-20-in-items", nested_items(20), 400, "too_deep"),
    ("nesting-100-top", lambda w: b"[" * 100 + b"]" * 100, 400, "too_deep"),
    ("nesting-100-objects", lambda w: b'{"a":' * 100 + b"1" + b"}" * 100, 400, "too_deep"),
    ("nesting-30000-unclosed", lambda w: b"[" * 30000, 400, {"too_deep", "bad_json"}),
    # -- wrong top-level type
    ("top-array", lambda w: b"[]", 400, ARR_OR_INVALID),
    ("top-null", lambda w: b"null", 400, ARR_OR_INVALID),
    ("top-number", lambda w: b"12", 400, ARR_OR_INVALID),
    ("top-string", lambda w: b'"cart"', 400, ARR_OR_INVALID),
    # -- missing fields
    ("missing-restaurant", lambda w: body(w, restaurant_id=DROP), 400, "missing_field"),
    ("missing-items", lambda w: body(w, items=DROP), 400, "missing_field"),
    ("missing-item-id", lambda w: line(w, item_id=DROP), 400, "missing_field"),
    ("missing-quantity", lambda w: line(w, quantity=DROP), 400, "missing_field"),
    ("missing-delivery-lon", lambda w: body(w, delivery={"lat": 38.7}), 400, "missing_field"),
    # -- unknown fields
    ("unknown-top", lambda w: body(w, coupon="FREE"), 400, "unknown_field"),
    ("unknown-top-case", lambda w: body(w, Items=[ok_line(w)]), 400, "unknown_field"),
    ("unknown-line", lambda w: line(w, note="extra"), 400, "unknown_field"),
    ("unknown-delivery", lambda w: body(w, delivery={"lat": 38.7, "lon": -9.1, "alt": 3}), 400, "unknown_field"),
    ("unknown-user-id", lambda w: body(w, user_id=w.b["id"]), 400, "unknown_field"),
    # -- wrong types and out-of-range values
    ("restaurant-string", lambda w: body(w, restaurant_id=str(w.rid)), 400, INVALID),
    ("restaurant-zero", lambda w: body(w, restaurant_id=0), 400, INVALID),
    ("restaurant-negative", lambda w: body(w, restaurant_id=-1), 400, INVALID),
    ("restaurant-2p63", lambda w: body(w, restaurant_id=2**63), 400, ARR_OR_INVALID),
    ("restaurant-real", lambda w: body(w, restaurant_id=w.rid + 0.5), 400, INVALID),
    ("restaurant-1e3", raw(b'{"restaurant_id": 1e3, "items": [{"item_id": {item}, "quantity": 1}]}'), 400, INVALID),
    ("restaurant-bool", lambda w: body(w, restaurant_id=True), 400, INVALID),
    ("restaurant-null", lambda w: body(w, restaurant_id=None), 400, {"invalid_field", "missing_field"}),
    ("items-object", lambda w: body(w, items={"0": ok_line(w)}), 400, INVALID),
    ("items-string", lambda w: body(w, items="all"), 400, INVALID),
    ("line-not-object", lambda w: body(w, items=[w.item_plain]), 400, INVALID),
    ("item-id-string", lambda w: line(w, item_id=str(w.item_plain)), 400, INVALID),
    ("item-id-real", lambda w: line(w, item_id=w.item_plain + 0.25), 400, INVALID),
    ("quantity-zero", lambda w: line(w, quantity=0), 400, INVALID),
    ("quantity-negative", lambda w: line(w, quantity=-1), 400, INVALID),
    ("quantity-100", lambda w: line(w, quantity=100), 400, INVALID),
    ("quantity-2p31", lambda w: line(w, quantity=2**31), 400, INVALID),
    ("quantity-2p32-plus-1", lambda w: line(w, quantity=2**32 + 1), 400, INVALID),
    ("quantity-2p63", lambda w: line(w, quantity=2**63), 400, ARR_OR_INVALID),
    ("quantity-min-int64", lambda w: line(w, quantity=-(2**63)), 400, INVALID),
    ("quantity-real", lambda w: line(w, quantity=1.5), 400, INVALID),
    ("quantity-1e1", raw(b'{"restaurant_id": {rid}, "items": [{"item_id": {item}, "quantity": 1e1}]}'), 400, INVALID),
    ("quantity-string", lambda w: line(w, quantity="2"), 400, INVALID),
    ("quantity-bool", lambda w: line(w, quantity=True), 400, INVALID),
    ("quantity-null", lambda w: line(w, quantity=None), 400, {"invalid_field", "missing_field"}),
    ("modifiers-not-array", lambda w: line(w, modifier_ids=5), 400, INVALID),
    ("modifiers-strings", lambda w: line(w, modifier_ids=["x"]), 400, INVALID),
    ("modifiers-eleven", lambda w: line(w, item_id=w.item_mod, modifier_ids=(w.mods[w.item_mod] * 11)[:11]), 400, INVALID),
    ("modifiers-nested", lambda w: line(w, modifier_ids=[[1]]), 400, INVALID),
    ("tip-negative", lambda w: body(w, tip_cents=-1), 400, INVALID),
    ("tip-too-big", lambda w: body(w, tip_cents=100001), 400, INVALID),
    ("tip-string", lambda w: body(w, tip_cents="5"), 400, INVALID),
    ("tip-real", lambda w: body(w, tip_cents=1.5), 400, INVALID),
    ("delivery-string", lambda w: body(w, delivery="home"), 400, INVALID),
    ("delivery-lat-string", lambda w: body(w, delivery={"lat": "38.7", "lon": -9.1}), 400, INVALID),
    ("delivery-lat-91", lambda w: body(w, delivery={"lat": 91.0, "lon": -9.1}), 400, INVALID),
    ("delivery-lon-181", lambda w: body(w, delivery={"lat": 38.7, "lon": 181.0}), 400, INVALID),
    # -- semantic: the cart itself
    ("empty-cart", lambda w: body(w, items=[]), 422, "empty_cart"),
    ("201-lines", lambda w: body(w, items=[ok_line(w)] * 201), 422, "too_many_lines"),
    ("unknown-item", lambda w: line(w, item_id=w.max_item + 1000), 422, "unknown_item"),
    ("foreign-item", lambda w: line(w, item_id=w.item2_mod), 422, "unknown_item"),
    ("foreign-item-second-line", lambda w: body(w, items=[ok_line(w), {"item_id": w.item2_mod, "quantity": 1}]), 422, "unknown_item"),
    ("item-id-zero", lambda w: line(w, item_id=0), {400, 422}, {"invalid_field", "unknown_item"}),
    ("unknown-modifier", lambda w: line(w, item_id=w.item_mod, modifier_ids=[w.max_modifier + 1000]), 422, "unknown_modifier"),
    ("modifier-of-other-item", lambda w: line(w, item_id=w.item_mod, modifier_ids=[w.mods[w.item_mod2][0]]), 422, "unknown_modifier"),
    ("modifier-of-other-restaurant", lambda w: line(w, item_id=w.item_mod, modifier_ids=[w.item2_modifier]), 422, "unknown_modifier"),
    ("modifier-on-plain-item", lambda w: line(w, item_id=w.item_spare, modifier_ids=[w.mods[w.item_mod][0]]), 422, "unknown_modifier"),
    ("unknown-restaurant", lambda w: body(w, restaurant_id=w.max_restaurant + 1000), {404, 422}, {"not_found", "unknown_item"}),
]


@pytest.fixture(scope="module")
def w(world, db):
    world.max_item = db.val("SELECT max(id) FROM menu_items")
    world.max_modifier = db.val("SELECT max(id) FROM item_modifiers")
    world.max_restaurant = db.val("SELECT max(id) FROM restaurants")
    return world


def send(client, w, endpoint, payload, **kw):
    c = client.as_(w.a["token"])
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    if endpoint == "quote":
        return c.post("/cart/quote", payload, **kw)
    return c.order(payload, **kw)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("name,make,status,code", CASES, ids=[c[0] for c in CASES])
def test_bad_checkout(client, db, w, endpoint, name, make, status, code):
    if name == "modifier-on-plain-item" and w.mods.get(w.item_spare):
        pytest.skip("the spare item has modifiers of its own")
    payload = make(w)
    before = checkout_snapshot(db)
    r = send(client, w, endpoint, payload)
    assert_error(r, status, code)
    assert checkout_snapshot(db) == before, "a rejected %s wrote to the database (%s)" % (endpoint, name)
    assert client.get("/healthz", timeout=5).status_code == 200, "server unhealthy after %s" % name


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unavailable_item_422(client, db, w, items_state, endpoint):
    items_state(w.item_spare, available=False)
    before = checkout_snapshot(db)
    r = send(client, w, endpoint, line(w, item_id=w.item_spare))
    assert_error(r, 422, "unavailable_item")
    assert checkout_snapshot(db) == before


def padded(w, size):
    """A valid cart body padded with spaces to exactly `size` bytes."""
    b = json.dumps(body(w)).encode()
    assert len(b) < size
    return b[:-1] + b" " * (size - len(b)) + b"}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("size", [65537, 1 << 20])
def test_body_too_large_413(client, db, w, endpoint, size):
    before = checkout_snapshot(db)
    r = send(client, w, endpoint, padded(w, size))
    assert_error(r, 413, "body_too_large")
    assert checkout_snapshot(db) == before


def test_body_too_large_chunked_413(client, db, w):
    """A chunked body (no Content-Length) over 64 KiB is refused as well."""

    def gen():
        b = padded(w, 70000)
        for i in range(0, len(b), 8192):
            yield b[i : i + 8192]

    before = checkout_snapshot(db)
    h = {"Authorization": "Bearer " + w.a["token"], "Content-Type": "application/json", "Idempotency-Key": new_key()}
    try:
        r = requests.post(client.base + "/orders", data=gen(), headers=h, timeout=10)
    except requests.ConnectionError as e:
        pytest.fail("connection dropped instead of a 413 answer: %r" % e)
    assert_error(r, 413, "body_too_large")
    assert checkout_snapshot(db) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_exactly_64k_accepted(client, db, w, endpoint):
    r = send(client, w, endpoint, padded(w, 65536))
    assert_status(r, 200 if endpoint == "quote" else 201)


def test_bad_token_forms(client, db, w):
    before = checkout_snapshot(db)
    b = json.dumps(body(w)).encode()
    forms = [
        "",
        "Bearer",
        "Bearer ",
        "Basic " + w.a["token"],
        w.a["token"],
        "Bearer " + w.a["token"] + "x",
        "Bearer " + w.a["token"][:-1],
        "Bearer " + "z" * 8000,
    ]
    for auth in forms:
        h = {"Content-Type": "application/json", "Idempotency-Key": new_key()}
        if auth:
            h["Authorization"] = auth
        r = client.request("POST", "/orders", data=b, headers=h, raw_headers=True)
        assert_error(r, 401, "unauthorized")
    assert checkout_snapshot(db) == before


def test_server_survives_bad_input(server):
    """After all the abuse above, the shared server is still up and ready."""
    c = Client(server.base)
    assert c.get("/readyz").status_code == 200
    assert server.alive()
