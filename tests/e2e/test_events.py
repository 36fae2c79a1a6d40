"""POST /orders/{id}/events: the status machine, who may move it, and that a
refused transition leaves the status unchanged."""

import pytest

from hplib.client import assert_error, assert_status

HAPPY = ["accepted", "preparing", "ready", "picked_up", "delivered"]
ALL = ["placed", "accepted", "preparing", "ready", "picked_up", "delivered", "cancelled"]


def status_of(db, oid):
    return db.val("SELECT status FROM orders WHERE id = %s", (oid,))


def event(client, oid, status, token):
    return client.post("/orders/%d/events" % oid, {"status": status}, token=token)


def test_owner_happy_path(client, db, world, place_order):
    o = place_order()
    oid = o["id"]
    for st in HAPPY:
        b = assert_status(event(client, oid, st, world.owner), 200)
        assert b["id"] == oid and b["status"] == st, b
        assert status_of(db, oid) == st
    g = assert_status(client.get("/orders/%d" % oid, token=world.a["token"]), 200)
    assert g["status"] == "delivered"
    # Terminal: nothing moves a delivered order.
    for st in ALL:
        assert_error(event(client, oid, st, world.owner), 409, "invalid_transition")
    assert status_of(db, oid) == "delivered"


def test_customer_cancel_from_placed(client, db, world, place_order):
    o = place_order()
    b = assert_status(event(client, o["id"], "cancelled", world.a["token"]), 200)
    assert b["status"] == "cancelled" and status_of(db, o["id"]) == "cancelled"
    assert_error(event(client, o["id"], "cancelled", world.a["token"]), 409, "invalid_transition")
    assert_error(event(client, o["id"], "accepted", world.owner), 409, "invalid_transition")
    assert status_of(db, o["id"]) == "cancelled"


def test_customer_cancel_from_accepted(client, db, world, place_order):
    o = place_order()
    assert_status(event(client, o["id"], "accepted", world.owner), 200)
    assert_status(event(client, o["id"], "cancelled", world.a["token"]), 200)
    assert status_of(db, o["id"]) == "cancelled"


def test_customer_cannot_cancel_from_preparing(client, db, world, place_order):
    o = place_order()
    assert_status(event(client, o["id"], "accepted", world.owner), 200)
    assert_status(event(client, o["id"], "preparing", world.owner), 200)
    assert_error(event(client, o["id"], "cancelled", world.a["token"]), 409, "invalid_transition")
    assert status_of(db, o["id"]) == "preparing"


def test_owner_cancel_from_placed(client, db, world, place_order):
    o = place_order()
    assert_status(event(client, o["id"], "cancelled", world.owner), 200)
    assert status_of(db, o["id"]) == "cancelled"


def test_customer_may_only_cancel(client, db, world, place_order):
    """placed -> accepted is a transition the machine allows, but not to the
    customer: an authenticated caller who is not allowed gets 403 forbidden
    (409 is for transitions the machine itself does not allow)."""
    o = place_order()
    assert_error(event(client, o["id"], "accepted", world.a["token"]), 403, "forbidden")
    assert status_of(db, o["id"]) == "placed"
    assert_status(event(client, o["id"], "accepted", world.owner), 200)
    assert_error(event(client, o["id"], "preparing", world.a["token"]), 403, "forbidden")
    assert status_of(db, o["id"]) == "accepted"


@pytest.mark.parametrize("target", ["placed", "preparing", "ready", "picked_up", "delivered"])
def test_invalid_transition_from_placed(client, db, world, place_order, target):
    o = place_order()
    assert_error(event(client, o["id"], target, world.owner), 409, "invalid_transition")
    assert status_of(db, o["id"]) == "placed"


def test_no_skipping_and_no_going_back(client, db, world, place_order):
    o = place_order()
    oid = o["id"]
    for st in ["accepted", "preparing"]:
        assert_status(event(client, oid, st, world.owner), 200)
    for bad in ["accepted", "placed", "picked_up", "delivered", "cancelled"]:
        assert_error(event(client, oid, bad, world.owner), 409, "invalid_transition")
        assert status_of(db, oid) == "preparing"


def test_events_access(client, db, world, place_order):
    o = place_order()
    path = "/orders/%d/events" % o["id"]
    assert_error(client.post(path, {"status": "cancelled"}), 401, "unauthorized")
    assert_error(client.post(path, {"status": "cancelled"}, token="nope-e2e"), 401, "unauthorized")
    # Someone else's order is 404 (ids do not leak), for customers and owners.
    assert_error(client.post(path, {"status": "cancelled"}, token=world.b["token"]), 404, "not_found")
    assert_error(client.post(path, {"status": "accepted"}, token=world.owner2), 404, "not_found")
    assert status_of(db, o["id"]) == "placed"
    big = db.val("SELECT max(id) FROM orders") + 100000
    assert_error(client.post("/orders/%d/events" % big, {"status": "accepted"}, token=world.owner), 404, "not_found")
    assert_error(client.post("/orders/0/events", {"status": "accepted"}, token=world.owner), 400, "bad_param")


@pytest.mark.parametrize(
    "body,code",
    [
        ({"status": "teleported"}, "invalid_field"),
        ({"status": "ACCEPTED"}, "invalid_field"),
        ({"status": 1}, "invalid_field"),
        ({"status": None}, {"invalid_field", "missing_field"}),
        ({}, "missing_field"),
        ({"status": "accepted", "note": "x"}, "unknown_field"),
        (["accepted"], {"invalid_field", "bad_json"}),
        (b"{", "bad_json"),
        (b'{"status": "acc\xffepted"}', "bad_json"),
        (b'{"status": "\\ud800"}', {"bad_json", "invalid_field"}),
        (b'{"status": "accepted\\u0000"}', {"bad_json", "invalid_field"}),
        (b"[" * 100 + b"]" * 100, {"too_deep", "bad_json"}),
        (b'{"status": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}', {"too_deep", "invalid_field"}),
    ],
)
def test_events_bad_body(client, db, world, place_order, body, code):
    o = place_order()
    events = db.val("SELECT count(*) FROM order_events WHERE order_id = %s", (o["id"],))
    assert_error(client.post("/orders/%d/events" % o["id"], body, token=world.owner), 400, code)
    assert status_of(db, o["id"]) == "placed"
    assert db.val("SELECT count(*) FROM order_events WHERE order_id = %s", (o["id"],)) == events
