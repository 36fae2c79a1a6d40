"""The PostgreSQL debug endpoints on the admin listener (profiling/pg.c):
/debug/pg/statements maps pg_stat_statements rows to hotplate's statement
names and resets them, /debug/pg/tables reports scan counters with the
missing-index signal, /debug/pg/explain runs EXPLAIN ANALYZE of named
statements only and rolls back what they write, and /debug/pg/slow reads slow
statements and their auto_explain plans from PostgreSQL's log.

pg_stat_statements and the table counters are cluster-wide, so each test
starts its own server and only counts what it did itself; the suite runs one
test at a time, so no other test's traffic reaches these statements meanwhile.
"""
import os
import re
import threading
import time

import pytest
import requests

from hplib.describe import describe as describe_binary

from hplib.client import Client, assert_error, assert_status, describe, new_key, perf
from hplib.db import DB, checkout_snapshot

HERE = os.path.dirname(os.path.abspath(__file__))
STATEMENT_LISTS = [os.path.join(HERE, "..", "..", "services", "statements.h"), os.path.join(HERE, "..", "..", "profiling", "pg.h")]
TOKEN = "pg-debug-admin-token"
PG_PATHS = ["/debug/pg/statements", "/debug/pg/tables", "/debug/pg/explain", "/debug/pg/slow"]


def statement_names():
    """Every registered statement's name, in id order: the services' list
    (services/statements.h), then the admin endpoints' (profiling/pg.h). The
    headers are read as well as the binary, so that a statement that one has
    and the other lacks is caught."""
    names = []
    for path in STATEMENT_LISTS:
        with open(path, encoding="utf-8") as f:
            names += re.findall(r"^\s*X\((\w+),", f.read(), re.M)
    assert len(names) >= 20 and len(names) == len(set(names)), names
    binary = [st["name"] for st in describe_binary(os.environ["HOTPLATE_BIN"]).doc["statements"]]
    assert binary == names, (binary, names)
    return names


def admin_get(s, path, token=None, **params):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return requests.get(s.admin_base + path, params=params, headers=headers, timeout=30)


def statements_by_name(s, limit=100):
    """{name: total calls} over the rows of /debug/pg/statements (a statement may have several rows)."""
    doc = assert_status(admin_get(s, "/debug/pg/statements", limit=limit), 200)
    calls = {}
    for row in doc["statements"]:
        if row["name"] is not None:
            calls[row["name"]] = calls.get(row["name"], 0) + row["calls"]
    return doc, calls


def explain(s, statement, args=None, token=None):
    params = {"statement": statement}
    if args is not None:
        params["args"] = args
    return admin_get(s, "/debug/pg/explain", token=token, **params)


def table(doc, name):
    for t in doc["tables"]:
        if t["table"] == name and t["schema"] == "public":
            return t
    raise AssertionError("table %s missing from /debug/pg/tables: %s" % (name, [t["table"] for t in doc["tables"]]))


def settle(s, timeout=15.0):
    """Waits until every thread's PostgreSQL connections answer. start_server returns after one /readyz
    200, which only the worker that answered it vouches for (and /readyz never covers the admin thread),
    so right after a start a request may still meet a connection that is preparing (503 db_unavailable).
    Twenty 200s in a row, each on a fresh connection, spread over the workers."""
    deadline = time.monotonic() + timeout
    while True:
        r = admin_get(s, "/debug/pg/tables")
        if r.status_code == 200 or time.monotonic() > deadline:
            assert_status(r, 200)
            break
        time.sleep(0.05)
    ok = 0
    while ok < 20:
        r = requests.get(s.base + "/readyz", timeout=10)
        ok = ok + 1 if r.status_code == 200 else 0
        if ok == 0:
            assert time.monotonic() < deadline, describe(r)
            time.sleep(0.05)
    return s


@pytest.fixture
def pg_server(start_server):
    # The menu cache is off so every menu request reaches menu_get.
    return settle(start_server(threads=2, name="pgdebug", flags=["menu_cache=off"]))


def test_pg_routes_are_not_on_the_api_port(server):
    settle(server)  # the session server may have just started, and the world fixture needs it whole
    for path in PG_PATHS:
        r = requests.get(server.base + path, params={"statement": "order_get"}, timeout=10)
        assert r.status_code == 404, "%s answered %d on the API port" % (path, r.status_code)
    r = requests.post(server.base + "/debug/pg/statements/reset", timeout=10)
    assert r.status_code in (404, 405), describe(r)


def test_statements_are_named_and_reset(pg_server, world):
    s = pg_server
    assert_status(requests.post(s.admin_base + "/debug/pg/statements/reset", timeout=10), 200)
    c = Client(s.base, world.a["token"])
    n = 7
    for _ in range(n):
        assert_status(c.get("/restaurants/%d/menu" % world.rid), 200)
        assert_status(c.get("/users/%d/orders" % world.a["id"]), 200)
    doc, calls = statements_by_name(s)
    for name in ("menu_get", "auth_token", "order_history"):
        assert calls.get(name, 0) >= n, "%s: %s calls after %d requests\n%s" % (name, calls.get(name), n, doc)
    row = next(r for r in doc["statements"] if r["name"] == "order_history")
    for k in ("calls", "rows", "shared_blks_hit", "shared_blks_read", "temp_blks_read", "temp_blks_written"):
        assert isinstance(row[k], int) and row[k] >= 0, (k, row)
    for k in ("total_exec_time_ms", "mean_exec_time_ms", "max_exec_time_ms", "stddev_exec_time_ms"):
        assert isinstance(row[k], float) and row[k] >= 0, (k, row)
    assert row["hit_ratio"] is None or 0 <= row["hit_ratio"] <= 1, row
    assert "FROM orders o WHERE o.user_id = $1" in row["query"] and len(row["query"]) <= 500, row
    assert isinstance(doc["tracked"], int) and doc["tracked"] >= len(doc["statements"])
    # Ordered by total execution time, and limit is honoured and checked.
    times = [r["total_exec_time_ms"] for r in doc["statements"]]
    assert times == sorted(times, reverse=True)
    assert len(assert_status(admin_get(s, "/debug/pg/statements", limit=2), 200)["statements"]) <= 2
    for bad in ("0", "101", "x"):
        assert_error(admin_get(s, "/debug/pg/statements", limit=bad), 400, "bad_param")

    assert assert_status(requests.post(s.admin_base + "/debug/pg/statements/reset", timeout=10), 200) == {"reset": True}
    _, calls = statements_by_name(s)
    for name in ("menu_get", "order_history"):
        assert calls.get(name, 0) == 0, "%s still has %s calls after the reset" % (name, calls.get(name))
    # After a reset pg_stat_statements stores the prepared text verbatim (before it, with its constants
    # replaced by placeholders); the mapping must hold either way.
    for _ in range(3):
        assert_status(c.get("/users/%d/orders" % world.a["id"]), 200)
    _, calls = statements_by_name(s)
    assert calls.get("order_history", 0) >= 3, calls



def test_transaction_statements_are_planned_once_per_connection(start_server, db, world, items_state):
    """The transaction connections run generic plans (plan_cache_mode, runtime/db.c): order_place is
    planned once per connection, not at every execution, which PostgreSQL does by itself because its
    arrays make the generic plan look dearer. pg_stat_statements counts the plans once track_planning
    is on for the server's role, and /debug/pg/statements reports them."""
    role = db.val("SELECT current_user")
    admin = DB(os.environ["HOTPLATE_PG_ADMIN_URL"])
    n = 30
    try:
        admin.exec('ALTER ROLE "%s" SET pg_stat_statements.track_planning = on' % role)
        s = settle(start_server(threads=1, name="plans", flags=["payment_latency_ms=0"]))
        items_state(world.item_plain, stock=None, available=True)
        assert_status(requests.post(s.admin_base + "/debug/pg/statements/reset", timeout=10), 200)
        c = Client(s.base, world.a["token"])
        body = {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}
        for _ in range(n):
            assert_status(c.order(body, key=new_key()), 201)
        doc = assert_status(admin_get(s, "/debug/pg/statements", limit=100), 200)
        pool = perf(s, "pool")["pool"]
    finally:
        admin.exec('ALTER ROLE "%s" RESET pg_stat_statements.track_planning' % role)
        admin.close()
    rows = [r for r in doc["statements"] if r["name"] == "order_place"]
    assert rows, doc
    calls, plans = sum(r["calls"] for r in rows), sum(r["plans"] for r in rows)
    assert all(isinstance(r["total_plan_time_ms"], float) for r in rows), rows
    assert calls == n, rows
    assert 1 <= plans <= pool["size"], "order_place: %d plans for %d calls on %d transaction connections" % (plans, calls, pool["size"])

def missing_index_rule(t):
    """The rule profiling/pg.c documents, recomputed from the counters it reports."""
    return (
        t["n_live_tup"] >= 1000
        and t["seq_scan"] >= 50
        and t["seq_tup_read"] // t["seq_scan"] >= 1000
        and t["seq_tup_read"] >= 10 * t["idx_tup_fetch"]
    )


def test_tables_report_counters(pg_server):
    doc = assert_status(admin_get(pg_server, "/debug/pg/tables"), 200)
    assert "seq_scan" in doc["missing_index_rule"], doc["missing_index_rule"]
    t = table(doc, "orders")
    for k in ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_live_tup", "n_dead_tup", "table_bytes", "index_bytes"):
        assert isinstance(t[k], int) and t[k] >= 0, (k, t)
    assert t["n_live_tup"] > 0 and t["table_bytes"] > 0, t
    for name in ("users", "restaurants", "menu_items", "order_items", "payments"):
        table(doc, name)
    for t in doc["tables"]:
        assert t["missing_index_signal"] is missing_index_rule(t), t


def test_tables_count_scans(pg_server, world):
    s = pg_server
    start = table(assert_status(admin_get(s, "/debug/pg/tables"), 200), "orders")
    c = Client(s.base, world.a["token"])
    n = 20
    for _ in range(n):
        assert_status(c.get("/users/%d/orders" % world.a["id"]), 200)
    # Backends flush their table counters at most once a second, so give them a few.
    deadline = time.monotonic() + 15
    while True:
        t = table(assert_status(admin_get(s, "/debug/pg/tables"), 200), "orders")
        if t["idx_scan"] >= start["idx_scan"] + n or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert t["idx_scan"] >= start["idx_scan"] + n, (start, t)


def test_explain_every_statement(pg_server, db):
    before = checkout_snapshot(db)
    for name in statement_names():
        r = explain(pg_server, name)
        b = assert_status(r, 200)
        assert b["statement"] == name and b["args_source"] == "sample" and b["rolled_back"] is True, describe(r)
        assert isinstance(b["plan"], list) and b["plan"], describe(r)
        assert b["summary"]["top_node"], describe(r)
    # order_insert, stock_decrement, menu_item_patch and order_transition all wrote, inside a rolled-back transaction.
    assert checkout_snapshot(db) == before


def test_explain_order_insert_leaves_no_row(pg_server, db):
    before = checkout_snapshot(db)
    b = assert_status(explain(pg_server, "order_insert"), 200)
    assert b["summary"]["execution_time_ms"] is not None, b["summary"]
    assert len(b["args"]) == 17, b["args"]
    assert checkout_snapshot(db) == before


def test_explain_follows_the_orders_index(pg_server, db):
    """order_history reads orders through orders_user_id_created_at_idx (migration 0002), already in
    created_at order (an Incremental Sort only breaks ties on id). Without that index PostgreSQL does not fall back to a sequential scan: the UNIQUE (user_id,
    idempotency_key) index still finds a user's orders, through a bitmap scan, and every one of them is then
    sorted to return the newest 21."""
    s = pg_server
    idx = "orders_user_id_created_at_idx"
    b = assert_status(explain(s, "order_history"), 200)
    assert {"relation": "orders", "index": idx} in b["summary"]["index_scans"], b["summary"]
    assert "orders" not in b["summary"]["seq_scans"] and "Sort" not in b["summary"]["sorts"], b["summary"]
    assert b["summary"]["execution_time_ms"] >= 0 and b["summary"]["planning_time_ms"] >= 0, b["summary"]
    try:
        db.exec("DROP INDEX " + idx)
        db.exec("ANALYZE orders")
        b = assert_status(explain(s, "order_history"), 200)
        summary = b["summary"]
        assert idx not in str(b["plan"]), summary
        assert "orders" in summary["seq_scans"] or "orders" in summary["bitmap_heap_scans"], summary
        assert "Sort" in summary["sorts"], summary
    finally:
        db.exec("CREATE INDEX IF NOT EXISTS %s ON orders (user_id, created_at DESC)" % idx)
        db.exec("ANALYZE orders")
    b = assert_status(explain(s, "order_history"), 200)
    assert {"relation": "orders", "index": idx} in b["summary"]["index_scans"], b["summary"]


def test_explain_with_args(pg_server, world):
    s = pg_server
    b = assert_status(explain(s, "order_history", '[%d, null, null, 5]' % world.a["id"]), 200)
    assert b["args_source"] == "request" and b["args"] == ["'%d'" % world.a["id"], "NULL", "NULL", "'5'"], b
    # A quote in a string argument stays inside its literal.
    b = assert_status(explain(s, "order_by_idempotency_key", '[1, "x\'); DROP TABLE orders; --\\\\"]'), 200)
    assert b["args"][1].startswith("E'") or b["args"][1].startswith("'"), b["args"]
    assert_status(explain(s, "order_get", '["1"]'), 200)
    assert_status(explain(s, "txn_begin", "[]"), 200)


def test_explain_refuses_what_is_not_a_named_statement(pg_server):
    s = pg_server
    assert_error(explain(s, "no_such_statement"), 400, "unknown_statement")
    assert_error(explain(s, "SELECT 1"), 400, "unknown_statement")
    assert_error(explain(s, "order_get; DROP TABLE orders"), 400, "unknown_statement")
    assert_error(admin_get(s, "/debug/pg/explain"), 400, "bad_param")
    for args in ("[1]", "[1, 2, 3, 4, 5]", "{}", "1", "nope", "[true, null, null, 5]", "[[1], null, null, 5]", '["x"'):
        assert_error(explain(s, "order_history", args), 400, "bad_args")
    # Well-formed, but PostgreSQL refuses the value for the parameter's type.
    e = assert_error(explain(s, "order_history", '["abc", null, null, 5]'), 400, "bad_args")
    assert e == "bad_args"


def test_admin_token_guards_reset_and_explain(start_server):
    s = settle(start_server(threads=1, name="pgtoken", env={"HOTPLATE_ADMIN_TOKEN": TOKEN}))
    assert_error(requests.post(s.admin_base + "/debug/pg/statements/reset", timeout=10), 401, "unauthorized")
    assert_error(explain(s, "order_get"), 401, "unauthorized")
    assert_error(explain(s, "order_get", token="wrong"), 401, "unauthorized")
    hdr = {"Authorization": "Bearer " + TOKEN}
    assert_status(requests.post(s.admin_base + "/debug/pg/statements/reset", headers=hdr, timeout=10), 200)
    assert_status(explain(s, "order_get", token=TOKEN), 200)
    # Reads stay open.
    assert_status(admin_get(s, "/debug/pg/statements"), 200)
    assert_status(admin_get(s, "/debug/pg/tables"), 200)


def test_slow_without_a_log(start_server):
    s = start_server(threads=1, name="pgnolog", env={"HOTPLATE_PG_LOG": ""})
    assert_error(admin_get(s, "/debug/pg/slow"), 404, "no_log")
    s2 = start_server(threads=1, name="pgbadlog", env={"HOTPLATE_PG_LOG": "/nonexistent/postgresql.log"})
    e = admin_get(s2, "/debug/pg/slow")
    assert_error(e, 404, "no_log")
    assert "/nonexistent/postgresql.log" in e.json()["error"]["message"]


def test_slow_shows_a_lock_wait(pg_server, env, db, world):
    """A statement held up by a row lock shows in /debug/pg/slow, named, with its plan and parameters."""
    if not os.environ.get("HOTPLATE_PG_LOG"):
        pytest.skip("HOTPLATE_PG_LOG is not set (make test sets it from the stack's env file)")
    s = pg_server
    seen = {(e["at"], e["pid"]) for e in assert_status(admin_get(s, "/debug/pg/slow", limit=100), 200)["slow"]}
    item = db.one("SELECT id, price_cents FROM menu_items WHERE id = %s", (world.item_spare,))
    # Hold the item's row lock for 400 ms; the owner's PATCH waits for it, so menu_item_patch takes over
    # log_min_duration_statement (100 ms) and auto_explain logs its plan.
    locker = DB(env["pg_url"], autocommit=False, application_name="hotplate-e2e-locker")
    result = {}
    try:
        with locker.conn.cursor() as cur:
            cur.execute("SELECT id FROM menu_items WHERE id = %s FOR UPDATE", (item["id"],))

            def patch():
                result["r"] = Client(s.base, world.owner).patch(
                    "/restaurants/%d/menu/items/%d" % (world.rid, item["id"]), {"price_cents": item["price_cents"]}
                )

            t = threading.Thread(target=patch)
            t.start()
            time.sleep(0.4)
            locker.conn.commit()
            t.join(15)
    finally:
        locker.close()
    assert_status(result["r"], 200)

    deadline = time.monotonic() + 10
    while True:
        doc = assert_status(admin_get(s, "/debug/pg/slow", limit=100), 200)
        new = [e for e in doc["slow"] if (e["at"], e["pid"]) not in seen and e["name"] == "menu_item_patch"]
        if new or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert new, "no new menu_item_patch entry in /debug/pg/slow:\n%s" % doc
    e = new[0]
    assert e["duration_ms"] >= 250, e
    assert e["kind"] == "execute" and e["prepared_statement"] == "menu_item_patch", e
    assert "'%d'" % item["id"] in (e["parameters"] or ""), e
    assert e["plan"] is not None and e["plan_summary"]["top_node"], e
    assert "menu_items" in str(e["plan"]), e
    for bad in ("0", "101"):
        assert_error(admin_get(s, "/debug/pg/slow", limit=bad), 400, "bad_param")

