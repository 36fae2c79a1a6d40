"""Fixtures of the hotplate end-to-end suite.

`make test` gives the suite a built server (HOTPLATE_BIN), a private migrated
and seeded PostgreSQL (HOTPLATE_PG_URL), a Redis (HOTPLATE_REDIS_URL) and the
seed's bearer tokens (HOTPLATE_TOKENS). One server with --threads 2 is shared
by the session; tests that need a special server start their own through
`start_server`.

The `world` fixture picks the cast once per session: three customers, a main
restaurant R (made always-open for the session), a second restaurant R2 with a
different owner, and the items the order tests use. It records what it changes
and puts it back at the end.

The shared hooks (hplib.pytest_hooks) skip the suite without HOTPLATE_BIN,
append to a failing test's report the log tails of every server it ran
against (and of the session's), and end the whole run if it exceeds
HOTPLATE_E2E_DEADLINE seconds (default 1500), so a hung server can never hang
`make test`.
"""

import os

import psycopg2
import pytest

from hplib.client import Client, assert_status, describe
from hplib.db import DB
from hplib.server import SUITE_FLAGS, Server, Servers
from hplib.tokens import read_tokens, token_hash

pytest_plugins = ["hplib.pytest_hooks"]

HERE = os.path.dirname(os.path.abspath(__file__))
ASAN_BIN = os.environ.get("HOTPLATE_ASAN_BIN")


def pytest_configure(config):
    # Imported here, after pytest loaded it as a plugin: importing it first
    # would keep pytest from rewriting its module.
    from hplib import pytest_hooks

    pytest_hooks.configure(config, "e2e", HERE, "HOTPLATE_E2E_DEADLINE", 1500, needs_bin="the e2e suite", keep=("session",))


# ---------------------------------------------------------------- environment


def _need(name):
    v = os.environ.get(name)
    if not v:
        pytest.fail("%s is not set; `make test` must provide it" % name)
    return v


@pytest.fixture(scope="session")
def env():
    binary = _need("HOTPLATE_BIN")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail("HOTPLATE_BIN=%s is not an executable file" % binary)
    return {
        "bin": binary,
        "asan_bin": ASAN_BIN,
        "pg_url": _need("HOTPLATE_PG_URL"),
        "redis_url": _need("HOTPLATE_REDIS_URL"),
        "tokens": _need("HOTPLATE_TOKENS"),
    }


@pytest.fixture(scope="session")
def server_env(env):
    return {"HOTPLATE_PG_URL": env["pg_url"], "HOTPLATE_REDIS_URL": env["redis_url"]}


@pytest.fixture(scope="session")
def db(env):
    d = DB(env["pg_url"])
    yield d
    d.close()


@pytest.fixture(scope="session")
def server(env, server_env, tmp_path_factory):
    s = Server(env["bin"], tmp_path_factory.mktemp("server"), name="session", threads=2, flags=SUITE_FLAGS, env=server_env)
    s.start()
    yield s
    alive = s.alive()
    rc = s.stop()
    if alive:
        assert rc == 0, "session server exit code on SIGTERM: %r\n%s" % (rc, s.log_report())
    else:
        pytest.fail("session server died during the run (exit %r)\n%s" % (rc, s.log_report()))


@pytest.fixture
def client(server):
    return Client(server.base)


@pytest.fixture
def start_server(env, server_env, tmp_path):
    """Starts a dedicated server: start_server(threads=1, flags=[...],
    env={...}, name=..., binary=..., wait_ready=True). Servers still running
    at teardown are killed."""
    servers = Servers(env["bin"], server_env, tmp_path, name="dedicated")
    yield servers.start
    servers.close()


# ---------------------------------------------------------------- tokens and cast


@pytest.fixture(scope="session")
def tokens(env, db):
    """Parses the tokens file and checks every token against users.token_hash.

    Returns {"customers": [{"id", "token"}...] in file order,
             "owner_by_restaurant": {rid: token}, "user_by_token": {token: (id, role)}}."""
    by_kind = read_tokens(env["tokens"])
    assert set(by_kind) <= {"customer", "owner"}, "tokens file has unknown kinds %s" % sorted(set(by_kind) - {"customer", "owner"})
    customers = [{"id": ident, "token": tok} for ident, tok in by_kind.get("customer", [])]
    owners = {ident: tok for ident, tok in by_kind.get("owner", [])}
    assert len(customers) >= 3, "need at least 3 customer tokens"
    assert len(owners) >= 2, "need at least 2 owner tokens"
    all_tokens = [c["token"] for c in customers] + list(owners.values())
    rows = db.all(
        "SELECT id, role, token_hash FROM users WHERE token_hash = ANY(%s)",
        ([psycopg2.Binary(token_hash(t)) for t in set(all_tokens)],),
    )
    by_hash = {bytes(r["token_hash"]): (r["id"], r["role"]) for r in rows}
    user_by_token = {}
    for t in set(all_tokens):
        u = by_hash.get(token_hash(t))
        assert u is not None, "a token in the tokens file matches no users.token_hash"
        user_by_token[t] = u
    for c in customers:
        assert user_by_token[c["token"]] == (c["id"], "customer"), "customer token does not belong to user %d" % c["id"]
    for rid, t in owners.items():
        uid, role = user_by_token[t]
        assert role == "owner"
        assert db.val("SELECT owner_id FROM restaurants WHERE id = %s", (rid,)) == uid, "owner token of restaurant %d" % rid
    return {"customers": customers, "owner_by_restaurant": owners, "user_by_token": user_by_token}


class World:
    pass


def refresh_menu(base, db, restaurant_id, owner_token):
    """Makes the server drop its cached menu of a restaurant.

    Direct SQL edits bypass the server, so its Redis cache may still hold the
    pre-edit menu. The documented way to invalidate it is an owner's PATCH,
    which "bumps the menu version and invalidates the cached menu before
    answering": this sets one item's price to its current value."""
    item = db.one("SELECT id, price_cents FROM menu_items WHERE restaurant_id = %s ORDER BY id LIMIT 1", (restaurant_id,))
    r = Client(base, owner_token).patch(
        "/restaurants/%d/menu/items/%d" % (restaurant_id, item["id"]), {"price_cents": item["price_cents"]}
    )
    assert r.status_code == 200, "menu refresh PATCH failed\n" + describe(r)


@pytest.fixture(scope="session")
def world(db, tokens, server):
    w = World()
    cs = tokens["customers"]
    w.a, w.b, w.c = cs[0], cs[1], cs[2]
    owners = tokens["owner_by_restaurant"]
    a_city = db.val("SELECT city_id FROM users WHERE id = %s", (w.a["id"],))
    stats = db.all(
        """SELECT r.id, r.owner_id, r.city_id,
                  count(DISTINCT mi.id) AS items,
                  count(DISTINCT mi.id) FILTER (WHERE m.id IS NOT NULL) AS items_with_mods
             FROM restaurants r
             JOIN menu_items mi ON mi.restaurant_id = r.id
             LEFT JOIN item_modifiers m ON m.item_id = mi.id
            WHERE r.id = ANY(%s)
            GROUP BY r.id""",
        (list(owners),),
    )
    cands = [s for s in stats if s["items"] >= 4 and s["items_with_mods"] >= 2]
    assert cands, "no restaurant with an owner token, 4+ items and 2+ items with modifiers in the seed"
    cands.sort(key=lambda s: (s["city_id"] != a_city, -s["items_with_mods"], -s["items"], s["id"]))
    r = cands[0]
    w.rid, w.r_owner_id = r["id"], r["owner_id"]
    w.owner = owners[w.rid]
    others = [s for s in stats if s["owner_id"] != w.r_owner_id and s["items_with_mods"] >= 1]
    assert others, "no second restaurant with a different owner and an item with modifiers"
    others.sort(key=lambda s: (-s["items_with_mods"], s["id"]))
    w.rid2 = others[0]["id"]
    w.owner2 = owners[w.rid2]
    # R3: a restaurant for read-only menu tests, untouched by the order tests.
    rest = [s for s in stats if s["id"] not in (w.rid, w.rid2) and s["items"] >= 1]
    w.rid3 = rest[0]["id"] if rest else w.rid2
    w.owner3 = owners[w.rid3]
    w.refresh = lambda rid: refresh_menu(server.base, db, rid, owners[rid])

    w.saved_restaurant = db.one("SELECT open_minute, close_minute FROM restaurants WHERE id = %s", (w.rid,))
    w.saved_items = db.all(
        "SELECT id, price_cents, available, stock FROM menu_items WHERE restaurant_id = ANY(%s)", ([w.rid, w.rid2],)
    )
    mod_items = db.all(
        """SELECT mi.id FROM menu_items mi
            WHERE mi.restaurant_id = %s AND EXISTS (SELECT 1 FROM item_modifiers m WHERE m.item_id = mi.id)
            ORDER BY mi.id""",
        (w.rid,),
    )
    plain = db.all(
        """SELECT mi.id, EXISTS (SELECT 1 FROM item_modifiers m WHERE m.item_id = mi.id) AS has_mods
             FROM menu_items mi WHERE mi.restaurant_id = %s ORDER BY mi.id""",
        (w.rid,),
    )
    w.item_mod = mod_items[0]["id"]
    w.item_mod2 = mod_items[1]["id"]
    # Prefer items without modifiers for the plain and spare roles.
    rest = [p for p in plain if p["id"] not in (w.item_mod, w.item_mod2)]
    rest.sort(key=lambda p: (p["has_mods"], p["id"]))
    w.item_plain, w.item_spare = rest[0]["id"], rest[1]["id"]
    w.items = [w.item_mod, w.item_mod2, w.item_plain, w.item_spare]
    w.mods = {
        i: [m["id"] for m in db.all("SELECT id FROM item_modifiers WHERE item_id = %s ORDER BY id", (i,))] for i in w.items
    }
    w.item2_mod = db.val(
        """SELECT mi.id FROM menu_items mi WHERE mi.restaurant_id = %s
              AND EXISTS (SELECT 1 FROM item_modifiers m WHERE m.item_id = mi.id) ORDER BY mi.id LIMIT 1""",
        (w.rid2,),
    )
    w.item2_modifier = db.val("SELECT min(id) FROM item_modifiers WHERE item_id = %s", (w.item2_mod,))

    # R is open around the clock for the session; its test items are available
    # and untracked unless a test says otherwise.
    db.exec("UPDATE restaurants SET open_minute = 0, close_minute = 1440 WHERE id = %s", (w.rid,))
    db.exec("UPDATE menu_items SET available = true, stock = NULL WHERE id = ANY(%s)", (w.items,))
    db.exec("UPDATE menu_items SET available = true WHERE id = %s", (w.item2_mod,))
    w.refresh(w.rid)
    w.refresh(w.rid2)
    yield w
    db.exec(
        "UPDATE restaurants SET open_minute = %s, close_minute = %s WHERE id = %s",
        (w.saved_restaurant["open_minute"], w.saved_restaurant["close_minute"], w.rid),
    )
    for it in w.saved_items:
        db.exec(
            "UPDATE menu_items SET price_cents = %s, available = %s, stock = %s WHERE id = %s",
            (it["price_cents"], it["available"], it["stock"], it["id"]),
        )
    w.refresh(w.rid)
    w.refresh(w.rid2)


def cart(world, lines=None, **extra):
    """A checkout body for restaurant R; `lines` is [(item_id, qty, [mods])]."""
    if lines is None:
        lines = [(world.item_plain, 1, [])]
    body = {
        "restaurant_id": world.rid,
        "items": [dict({"item_id": i, "quantity": q}, **({"modifier_ids": m} if m else {})) for i, q, m in lines],
    }
    body.update(extra)
    return body


@pytest.fixture
def mk_cart(world):
    return lambda lines=None, **extra: cart(world, lines, **extra)


@pytest.fixture
def items_state(db, world):
    """Lets a test change R's test items by SQL; puts them back afterwards
    (available, untracked stock) and refreshes the cached menu both times."""

    def set_item(item_id, **cols):
        sets = ", ".join("%s = %%s" % k for k in cols)
        db.exec("UPDATE menu_items SET " + sets + " WHERE id = %s", tuple(cols.values()) + (item_id,))
        world.refresh(db.val("SELECT restaurant_id FROM menu_items WHERE id = %s", (item_id,)))

    yield set_item
    db.exec("UPDATE menu_items SET available = true, stock = NULL WHERE id = ANY(%s)", (world.items,))
    world.refresh(world.rid)


@pytest.fixture
def place_order(client, world):
    """Places an order at R for customer A (or `token`) and returns its JSON."""

    def _place(lines=None, token=None, key=None, **extra):
        r = client.as_(token or world.a["token"]).order(cart(world, lines, **extra), key=key)
        return assert_status(r, 201)

    return _place
