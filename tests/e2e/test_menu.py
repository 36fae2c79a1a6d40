"""GET /restaurants/{id}/menu (shape, order, cache) and
PATCH /restaurants/{id}/menu/items/{item_id} (auth, validation, invalidation)."""

import json
import time

import pytest

from hplib.client import Client, assert_error, assert_status, describe

ITEM_FIELDS = {"id", "name", "description", "price_cents", "available", "stock", "modifiers"}


def db_menu(db, rid):
    items = db.all(
        """SELECT id, category, name, description, price_cents, available, stock, position
             FROM menu_items WHERE restaurant_id = %s ORDER BY position, id""",
        (rid,),
    )
    mods = db.all(
        """SELECT m.id, m.item_id, m.name, m.price_delta_cents FROM item_modifiers m
             JOIN menu_items mi ON mi.id = m.item_id WHERE mi.restaurant_id = %s ORDER BY m.id""",
        (rid,),
    )
    by_item = {}
    for m in mods:
        by_item.setdefault(m["item_id"], []).append(m)
    return items, by_item


def check_item(obj, row, mods):
    assert set(obj) >= ITEM_FIELDS, "menu item lacks %s: %s" % (ITEM_FIELDS - set(obj), obj)
    for k in ("id", "name", "description", "price_cents", "available", "stock"):
        assert obj[k] == row[k], "item %d field %s: got %r, db %r" % (row["id"], k, obj[k], row[k])
    got = sorted((m["id"], m["name"], m["price_delta_cents"]) for m in obj["modifiers"])
    exp = sorted((m["id"], m["name"], m["price_delta_cents"]) for m in mods)
    assert got == exp, "item %d modifiers: got %s, db %s" % (row["id"], got, exp)


def check_menu(body, db, rid):
    assert set(body) >= {"restaurant_id", "version", "categories"}, body
    assert body["restaurant_id"] == rid
    assert body["version"] == db.val("SELECT menu_version FROM restaurants WHERE id = %s", (rid,))
    items, mods = db_menu(db, rid)
    names = [c["name"] for c in body["categories"]]
    assert names == sorted(names), "categories not sorted by name: %s" % names
    assert len(names) == len(set(names)), "category repeated: %s" % names
    assert set(names) == {i["category"] for i in items}
    for cat in body["categories"]:
        exp = [i for i in items if i["category"] == cat["name"]]
        assert [o["id"] for o in cat["items"]] == [i["id"] for i in exp], "category %r: items not by position then id" % cat["name"]
        for o, row in zip(cat["items"], exp):
            check_item(o, row, mods.get(row["id"], []))


def menu_item(body, item_id):
    for cat in body["categories"]:
        for it in cat["items"]:
            if it["id"] == item_id:
                return it
    raise AssertionError("item %d not in menu" % item_id)


def test_menu_matches_db(client, db, world):
    for rid in (world.rid3, world.rid):
        world.refresh(rid)  # earlier tests edited menus by SQL, behind the cache's back
        r = client.get("/restaurants/%d/menu" % rid)
        check_menu(assert_status(r, 200), db, rid)


def test_menu_cache_miss_then_hit(client, db, world):
    rid = world.rid3
    world.refresh(rid)  # an owner's PATCH invalidates the cached menu
    r1 = client.get("/restaurants/%d/menu" % rid)
    b1 = assert_status(r1, 200)
    assert r1.headers.get("X-Cache") == "miss", describe(r1)
    # The fill may land a moment after the first answer; allow it one second.
    for _ in range(20):
        r2 = client.get("/restaurants/%d/menu" % rid)
        b2 = assert_status(r2, 200)
        assert r2.headers.get("X-Cache") in ("hit", "miss"), describe(r2)
        assert b2 == b1, "cached menu differs from the fresh one"
        if r2.headers.get("X-Cache") == "hit":
            break
        time.sleep(0.05)
    assert r2.headers.get("X-Cache") == "hit", "menu never served from the cache\n" + describe(r2)
    check_menu(b2, db, rid)


def compact(body):
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_menu_and_patch_answers_are_compact_json(client, world):
    # PostgreSQL renders these documents (services/statements.h); json_build_object and json_agg would put a space around
    # every colon and after every comma, 13.5% of a menu's bytes on every cached read. A miss, a hit and a PATCH answer are
    # each exactly the compact serialisation of what they parse to.
    rid = world.rid
    world.refresh(rid)
    path = "/restaurants/%d/menu" % rid
    seen = set()
    for _ in range(20):
        r = client.get(path)
        assert r.content == compact(assert_status(r, 200)), describe(r)
        seen.add(r.headers.get("X-Cache"))
        if "hit" in seen:
            break
        time.sleep(0.05)
    assert seen >= {"miss", "hit"}, seen
    item = menu_item(assert_status(client.get(path), 200), world.item_spare)
    r = client.patch(patch_path(world), {"price_cents": item["price_cents"]}, token=world.owner)
    assert r.content == compact(assert_status(r, 200)), describe(r)


def patch_path(world, item_id=None, rid=None):
    return "/restaurants/%d/menu/items/%d" % (rid or world.rid, item_id or world.item_spare)


def test_patch_price_invalidates_and_bumps_version(client, db, world):
    item = world.item_spare
    path = "/restaurants/%d/menu" % world.rid
    before = assert_status(client.get(path), 200)
    client.get(path)  # make sure it is cached
    old_price = menu_item(before, item)["price_cents"]
    new_price = old_price + 111 if old_price < 900000 else old_price - 111
    r = client.patch(patch_path(world), {"price_cents": new_price}, token=world.owner)
    obj = assert_status(r, 200)
    assert set(obj) >= ITEM_FIELDS, describe(r)
    assert obj["id"] == item and obj["price_cents"] == new_price, describe(r)
    try:
        assert db.val("SELECT price_cents FROM menu_items WHERE id = %s", (item,)) == new_price
        versions = []
        for _ in range(6):
            r = client.get(path)
            b = assert_status(r, 200)
            got = menu_item(b, item)["price_cents"]
            assert got == new_price, "menu served the old price %d after PATCH (X-Cache %s)" % (got, r.headers.get("X-Cache"))
            versions.append(b["version"])
        assert min(versions) > before["version"], "version did not increase: %d -> %s" % (before["version"], versions)
        assert obj == menu_item(b, item), "PATCH answer differs from the menu item"
    finally:
        assert_status(client.patch(patch_path(world), {"price_cents": old_price}, token=world.owner), 200)
    b = assert_status(client.get(path), 200)
    assert menu_item(b, item)["price_cents"] == old_price


def test_patch_available_and_stock(client, db, world, items_state):
    item = world.item_spare
    path = "/restaurants/%d/menu" % world.rid
    client.get(path)
    for body, check in [
        ({"available": False}, lambda it: it["available"] is False),
        ({"stock": 7}, lambda it: it["stock"] == 7),
        ({"stock": None, "available": True}, lambda it: it["stock"] is None and it["available"] is True),
        ({"stock": 0}, lambda it: it["stock"] == 0),
        ({"stock": 1000000, "price_cents": 0}, lambda it: it["stock"] == 1000000 and it["price_cents"] == 0),
    ]:
        v0 = db.val("SELECT menu_version FROM restaurants WHERE id = %s", (world.rid,))
        r = client.patch(patch_path(world), body, token=world.owner)
        obj = assert_status(r, 200)
        assert check(obj), "PATCH %s answered %s" % (body, obj)
        b = assert_status(client.get(path), 200)
        assert check(menu_item(b, item)), "menu after PATCH %s shows %s" % (body, menu_item(b, item))
        assert b["version"] > v0
        row = db.one("SELECT available, stock, price_cents FROM menu_items WHERE id = %s", (item,))
        assert check(dict(row, id=item)), "db after PATCH %s: %s" % (body, row)
    saved = [s for s in world.saved_items if s["id"] == item][0]
    assert_status(client.patch(patch_path(world), {"price_cents": saved["price_cents"]}, token=world.owner), 200)


def _state(db, world):
    return db.one(
        """SELECT mi.price_cents, mi.available, mi.stock, r.menu_version
             FROM menu_items mi JOIN restaurants r ON r.id = mi.restaurant_id WHERE mi.id = %s""",
        (world.item_spare,),
    )


def test_patch_auth(client, db, world, tokens):
    before = _state(db, world)
    body = {"price_cents": 4242}
    assert_error(client.patch(patch_path(world), body), 401, "unauthorized")
    assert_error(client.patch(patch_path(world), body, token="not-a-real-token-e2e"), 401, "unauthorized")
    r = client.request("PATCH", patch_path(world), json_body=body, headers={"Authorization": "Basic " + world.owner}, raw_headers=True)
    assert_error(r, 401, "unauthorized")
    r = client.request("PATCH", patch_path(world), json_body=body, headers={"Authorization": "Bearer"}, raw_headers=True)
    assert_error(r, 401, "unauthorized")
    r = client.request("PATCH", patch_path(world), json_body=body, headers={"Authorization": "Bearer " + "a" * 4000}, raw_headers=True)
    assert_error(r, 401, "unauthorized")
    assert_error(client.patch(patch_path(world), body, token=world.owner2), 403, "forbidden")
    assert_error(client.patch(patch_path(world), body, token=world.a["token"]), 403, "forbidden")
    assert _state(db, world) == before, "a rejected PATCH changed the item"


def test_patch_not_on_menu_404(client, db, world):
    before = _state(db, world)
    foreign = world.item2_mod  # an item of R2, under R's path
    foreign_price = db.val("SELECT price_cents FROM menu_items WHERE id = %s", (foreign,))
    assert_error(client.patch(patch_path(world, item_id=foreign), {"price_cents": 1}, token=world.owner), 404, "not_found")
    big = db.val("SELECT max(id) FROM menu_items") + 1000
    assert_error(client.patch(patch_path(world, item_id=big), {"price_cents": 1}, token=world.owner), 404, "not_found")
    assert _state(db, world) == before
    assert db.val("SELECT price_cents FROM menu_items WHERE id = %s", (foreign,)) == foreign_price


@pytest.mark.parametrize(
    "body,code",
    [
        ({"price_cents": -1}, "invalid_field"),
        ({"price_cents": 1000001}, "invalid_field"),
        ({"price_cents": "12"}, "invalid_field"),
        ({"price_cents": 12.5}, "invalid_field"),
        ({"price_cents": None}, "invalid_field"),
        ({"price_cents": True}, "invalid_field"),
        ({"price_cents": 2**63}, {"invalid_field", "bad_json"}),
        ({"available": "yes"}, "invalid_field"),
        ({"available": 1}, "invalid_field"),
        ({"available": None}, "invalid_field"),
        ({"stock": -1}, "invalid_field"),
        ({"stock": 1000001}, "invalid_field"),
        ({"stock": "3"}, "invalid_field"),
        ({"stock": 1.5}, "invalid_field"),
        ({"name": "x"}, "unknown_field"),
        ({"price_cents": 100, "bogus": 1}, "unknown_field"),
        ({}, {"missing_field", "invalid_field"}),
        ([], {"invalid_field", "bad_json"}),
        ([{"price_cents": 1}], {"invalid_field", "bad_json"}),
        ("str", {"invalid_field", "bad_json"}),
        (None, {"invalid_field", "bad_json", "missing_field"}),
    ],
)
def test_patch_bad_body_400(client, db, world, body, code):
    before = _state(db, world)
    r = client.request("PATCH", patch_path(world), data=json.dumps(body).encode(), token=world.owner)
    assert_error(r, 400, code)
    assert _state(db, world) == before, "a rejected PATCH changed the item"


@pytest.mark.parametrize("raw", [b"", b"{", b'{"price_cents": 1', b"{'price_cents': 1}", b'{"price_cents": 1} x', b'{"price_cents\xff": 1}'])
def test_patch_malformed_json_400(client, db, world, raw):
    before = _state(db, world)
    assert_error(client.patch(patch_path(world), raw, token=world.owner), 400, "bad_json")
    assert _state(db, world) == before


@pytest.mark.parametrize("suffix", ["0", "-1", "abc", "1e3", "9223372036854775808"])
def test_patch_bad_item_id_400(client, world, suffix):
    r = client.patch("/restaurants/%d/menu/items/%s" % (world.rid, suffix), {"price_cents": 1}, token=world.owner)
    assert_error(r, 400, "bad_param")


def test_menu_served_per_thread_consistently(server, db, world):
    """Fresh connections spread over both server threads agree on the menu."""
    world.refresh(world.rid3)
    c = Client(server.base)
    bodies = [assert_status(c.get("/restaurants/%d/menu" % world.rid3), 200) for _ in range(6)]
    assert all(b == bodies[0] for b in bodies)
    check_menu(bodies[0], db, world.rid3)


def test_menu_cache_off_bypasses(start_server, client, db, world):
    """With menu_cache=off every menu answer is built from PostgreSQL (X-Cache: bypass)."""
    world.refresh(world.rid3)
    s = start_server(threads=1, name="nocache", flags=["menu_cache=off"])
    c = Client(s.base)
    for _ in range(2):
        r = c.get("/restaurants/%d/menu" % world.rid3)
        b = assert_status(r, 200)
        assert r.headers.get("X-Cache") == "bypass", describe(r)
    check_menu(b, db, world.rid3)
    assert b == assert_status(client.get("/restaurants/%d/menu" % world.rid3), 200)
