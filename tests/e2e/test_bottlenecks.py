"""The bottleneck flags: each one switches a real mechanism, and these tests
assert the mechanism, not a timing.

- orders_user_id_index: the index is dropped and created CONCURRENTLY, and the
  order_history plan flips between a Seq Scan and an Index Scan; the shell
  command does the same, and a server started without the flag reports what
  the database has.
- order_history: batched is 3 statements per page, n_plus_one 1 + 2N, with the
  same response.
- order_total: naive and once give the same totals, and under quote load the
  CPU profile's top function is the naive one (once: absent).
- checkout_txn: long holds the stock row locks across the payment call, so
  concurrent checkouts of one item time out on the lock (504 lock_timeout)
  and nothing is written for them; short does not.
- db_pool: small hands out one connection per thread, so a second checkout
  waits in the pool; sized does not; switching back mid-wait frees it.
- leak: on makes the heap grow with every menu view, off keeps it flat and
  gives the leaked memory back.

menu_cache has its own file (test_menu_cache.py).
"""
import collections
import os
import subprocess
import threading
import time

import pytest
import requests

from hplib.client import Client, assert_error, assert_status, new_key, perf
from test_timeouts import RowLock

INDEX = "orders_user_id_created_at_idx"


# ---------------------------------------------------------------- helpers


def statement_counts(s):
    return {st["name"]: st["count"] for st in perf(s, "statements")["statements"]}


def set_flags(s, **flags):
    r = requests.post(s.admin_base + "/debug/flags", json=flags, timeout=10)
    doc = assert_status(r, 200)
    for k, v in flags.items():
        assert doc["flags"][k]["value"] == str(v), doc
    return doc


def wait_index_action(s, target, timeout=60):
    """Waits until the index thread has brought the database to `target`; returns the action."""
    deadline = time.monotonic() + timeout
    while True:
        doc = assert_status(requests.get(s.admin_base + "/debug/flags", timeout=10), 200)
        a = doc["actions"]["orders_user_id_index"]
        if a["state"] in ("done", "failed") and a["target"] == target:
            assert a["state"] == "done", a
            assert doc["flags"]["orders_user_id_index"]["value"] == target, doc
            return a
        assert time.monotonic() < deadline, "the index action never finished: %s" % a
        time.sleep(0.1)


def index_valid(db):
    return db.val(
        "SELECT coalesce(bool_and(i.indisvalid), false) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
        (INDEX,),
    )


def index_exists(db):
    return db.val("SELECT count(*) FROM pg_class WHERE relname = %s", (INDEX,)) == 1


def explain_history(s):
    r = requests.get(s.admin_base + "/debug/pg/explain", params={"statement": "order_history"}, timeout=30)
    return assert_status(r, 200)["summary"]


def run_index_cli(env, *args):
    e = dict(os.environ, HOTPLATE_PG_URL=env["pg_url"])
    return subprocess.run([env["bin"], "index", *args], env=e, capture_output=True, text=True, timeout=120)


def concurrently(n, fn):
    """Runs fn(i) for i in 0..n-1 on n threads released together; returns the results in order."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait(timeout=10)
        out[i] = fn(i)

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert all(o is not None for o in out), "a request did not finish"
    return out


# ---------------------------------------------------------------- orders_user_id_index


@pytest.fixture
def index_restored(env, db):
    yield
    # Whatever happened, the next tests find the index as the migrations made it.
    if not index_valid(db):
        r = run_index_cli(env, "orders_user_id", "on")
        assert r.returncode == 0, r.stderr
    assert index_valid(db)


def test_index_flag_drops_and_creates_the_index_and_the_plan_flips(start_server, db, index_restored):
    s = start_server(threads=1, name="index-flag")
    wait_index_action(s, "on")
    set_flags(s, orders_user_id_index="off")
    a = wait_index_action(s, "off")
    assert a["error"] is None
    assert not index_exists(db)
    plan = explain_history(s)
    assert plan["has_seq_scan"] and "orders" in plan["seq_scans"], plan
    assert not any(ix["index"] == INDEX for ix in plan["index_scans"] + plan["bitmap_index_scans"]), plan

    set_flags(s, orders_user_id_index="on")
    wait_index_action(s, "on")
    assert index_valid(db)
    plan = explain_history(s)
    assert not plan["has_seq_scan"], plan
    assert any(ix["relation"] == "orders" and ix["index"] == INDEX for ix in plan["index_scans"]), plan
    # The change and its outcome are in the log.
    text = "\n".join(s.stdout_lines())
    assert "flag orders_user_id_index set to off" in text and "index orders_user_id on: applied" in text, text[-2000:]


def test_index_command_and_a_server_started_without_the_flag_agree(start_server, env, db, index_restored):
    bad = run_index_cli(env, "orders_user_id", "maybe")
    assert bad.returncode == 2 and "usage" in bad.stderr
    r = run_index_cli(env, "orders_user_id", "off")
    assert r.returncode == 0, r.stderr
    assert "index orders_user_id off" in r.stdout
    assert not index_exists(db)
    # No --flag: the server reports what the database has, and changes nothing.
    s = start_server(threads=1, name="index-detect")
    wait_index_action(s, "off")
    assert not index_exists(db)
    assert explain_history(s)["has_seq_scan"]
    r = run_index_cli(env, "orders_user_id", "on")
    assert r.returncode == 0, r.stderr
    assert index_valid(db)
    # Running it again is harmless (IF NOT EXISTS).
    assert run_index_cli(env, "orders_user_id", "on").returncode == 0


# ---------------------------------------------------------------- order_history


def test_order_history_n_plus_one_sends_one_plus_two_n_statements(start_server, world, place_order):
    for _ in range(4):
        place_order(token=world.c["token"])
    s = start_server(threads=1, name="history")
    c = Client(s.base, world.c["token"])
    path = "/users/%d/orders?limit=3" % world.c["id"]

    before = statement_counts(s)
    batched = assert_status(c.get(path), 200)
    after = statement_counts(s)
    delta = {k: after[k] - before[k] for k in after}
    assert len(batched["orders"]) == 3 and batched["next_cursor"]
    assert (delta["order_history"], delta["order_items_for"], delta["restaurant_names"]) == (1, 1, 1), delta
    assert delta["order_items_of"] == 0 and delta["restaurant_name_of"] == 0, delta

    set_flags(s, order_history="n_plus_one")
    before = statement_counts(s)
    n1 = assert_status(c.get(path), 200)
    after = statement_counts(s)
    delta = {k: after[k] - before[k] for k in after}
    assert delta["order_history"] == 1, delta
    assert delta["order_items_of"] == 3 and delta["restaurant_name_of"] == 3, delta
    assert delta["order_items_for"] == 0 and delta["restaurant_names"] == 0, delta
    # The same document either way, the next page included.
    assert n1 == batched
    nxt = "/users/%d/orders?limit=3&cursor=%s" % (world.c["id"], n1["next_cursor"])
    page2_n1 = assert_status(c.get(nxt), 200)
    set_flags(s, order_history="batched")
    assert assert_status(c.get(nxt), 200) == page2_n1


# ---------------------------------------------------------------- order_total


def big_cart(db, world, lines=200):
    """A catering-sized cart at R: every available item in turn, each with its modifiers (at most 10)."""
    rows = db.all(
        """SELECT mi.id, coalesce(array_agg(m.id ORDER BY m.id) FILTER (WHERE m.id IS NOT NULL), '{}') AS mods
             FROM menu_items mi LEFT JOIN item_modifiers m ON m.item_id = mi.id
            WHERE mi.restaurant_id = %s AND mi.available GROUP BY mi.id ORDER BY mi.id""",
        (world.rid,),
    )
    items = []
    for i in range(lines):
        row = rows[i % len(rows)]
        line = {"item_id": row["id"], "quantity": 1 + i % 3}
        if row["mods"]:
            line["modifier_ids"] = list(row["mods"])[:10]
        items.append(line)
    return {"restaurant_id": world.rid, "items": items, "tip_cents": 250}


def own_samples(folded):
    """Samples per function from folded stacks, as a flat profile by function: inlined frames count in the
    function they were inlined into, and so do the order-total module's static helpers (hp_total__*, other
    than the compute functions), which a build without inlining shows as frames of their own."""
    own = collections.Counter()
    for line in folded.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        i = len(frames) - 1
        while i > 0 and (
            frames[i].endswith("[inline]")
            or (frames[i].startswith("hp_total__") and not frames[i].startswith("hp_total__compute_"))
        ):
            i -= 1
        own[frames[i]] += int(count)
    return own


def profile_under_quote_load(s, token, body, seconds=4):
    stop = threading.Event()
    statuses = collections.Counter()

    def load():
        sess = requests.Session()
        while not stop.is_set():
            r = sess.post(s.base + "/cart/quote", json=body, headers={"Authorization": "Bearer " + token}, timeout=10)
            statuses[r.status_code] += 1

    ts = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        time.sleep(0.3)
        r = requests.get(s.admin_base + "/debug/pprof/profile", params={"seconds": seconds, "format": "folded"},
                         timeout=seconds + 60)
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=20)
    assert set(statuses) == {200}, statuses
    assert r.status_code == 200, r.text[:500]
    return own_samples(r.text)


@pytest.fixture
def catering_options(db, world):
    """Gives every available item at R ten options (sizes, sides, extras), as a
    caterer's menu has, for the length of one test; takes them away after.

    The seed gives an item one or two modifiers at most. With so few, the naive
    total's lookups over a 200-line cart cost about as much CPU as encoding the
    200-line answer, and which of the two tops a short profile is a coin toss.
    With a caterer's options, re-resolving every earlier line's modifiers on
    every line is the quadratic work that dominates, as it does in production."""
    ids = [row["id"] for row in db.all(
        """INSERT INTO item_modifiers (item_id, name, price_delta_cents)
           SELECT mi.id, 'catering option ' || g, 25 * g
             FROM menu_items mi CROSS JOIN generate_series(1, 10) g
            WHERE mi.restaurant_id = %s AND mi.available
              AND g > (SELECT count(*) FROM item_modifiers m WHERE m.item_id = mi.id)
           RETURNING id""",
        (world.rid,),
    )]
    world.refresh(world.rid)
    yield ids
    db.exec("DELETE FROM item_modifiers WHERE id = ANY(%s)", (ids,))
    world.refresh(world.rid)


def test_order_total_naive_equals_once_and_tops_the_cpu_profile(start_server, db, world, catering_options):
    s = start_server(threads=1, name="order-total")
    body = big_cart(db, world)
    c = Client(s.base, world.a["token"])
    once = assert_status(c.post("/cart/quote", body), 200)
    set_flags(s, order_total="naive")
    naive = assert_status(c.post("/cart/quote", body), 200)
    assert naive == once and len(naive["lines"]) == 200
    assert all(len(line["modifier_ids"]) == 10 for line in body["items"])

    own = profile_under_quote_load(s, world.a["token"], body)
    top = own.most_common(5)
    assert top[0][0] == "hp_total__compute_naive", "naive is not the top function: %s" % top

    set_flags(s, order_total="once")
    own = profile_under_quote_load(s, world.a["token"], body, seconds=2)
    assert own["hp_total__compute_naive"] == 0, own.most_common(5)


# ---------------------------------------------------------------- checkout_txn


def test_checkout_txn_long_holds_the_stock_lock_across_the_payment(start_server, db, world, items_state):
    items_state(world.item_plain, stock=100, available=True)
    # The payment takes 1 to 6 s (the simulator's jitter, 0.5 to 3 times 2 s) and a row-lock wait ends after
    # 0.8 s, so with the lock held across the payment, the checkouts behind the first one cannot get it in time.
    # With the short transaction a lock is held for one round trip; 0.8 s leaves room for a sanitized server on a
    # busy machine, where a 0.3 s wait once ran out behind a short transaction (a fresh-clone CI run, whose
    # checkouts spent 570 ms in the database each).
    s = start_server(
        threads=1,
        name="checkout-txn",
        flags=["payment_latency_ms=2000"],
        env={"HOTPLATE_LOCK_TIMEOUT_MS": "800", "HOTPLATE_PAYMENT_TIMEOUT_MS": "10000"},
    )
    body = {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}
    tokens = [world.a["token"], world.b["token"], world.c["token"], world.a["token"]]

    def order(i):
        key = new_key()
        return key, Client(s.base, tokens[i]).order(body, key=key, timeout=30)

    stock0 = db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,))
    short = concurrently(4, order)
    assert [r.status_code for _, r in short] == [201] * 4, [r.text for _, r in short]
    stock1 = db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,))
    assert stock1 == stock0 - 4

    set_flags(s, checkout_txn="long")
    errors_before = {st["name"]: st["errors"] for st in perf(s, "statements")["statements"]}["stock_decrement"]
    long = concurrently(4, order)
    codes = collections.Counter(r.status_code for _, r in long)
    assert set(codes) <= {201, 504} and codes[201] >= 1 and codes[504] >= 1, [(r.status_code, r.text) for _, r in long]
    for key, r in long:
        if r.status_code == 504:
            assert_error(r, 504, "lock_timeout")
            assert db.val("SELECT count(*) FROM orders WHERE idempotency_key = %s", (key,)) == 0
        else:
            assert db.val("SELECT count(*) FROM orders WHERE idempotency_key = %s", (key,)) == 1
    # Every rolled-back checkout gave its stock back; every committed one took exactly its quantity.
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == stock1 - codes[201]
    # Visible in the probes (the statement that waited failed) and in the log (the 504s with their code).
    errors_after = {st["name"]: st["errors"] for st in perf(s, "statements")["statements"]}["stock_decrement"]
    assert errors_after - errors_before == codes[504]
    logged = [ln for ln in s.stdout_lines() if "lock_timeout" in ln and "/orders" in ln]
    assert len(logged) >= codes[504], logged


# ---------------------------------------------------------------- db_pool


def wait_pool(s, pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        pool = perf(s, "pool")["pool"]
        if pred(pool):
            return pool
        assert time.monotonic() < deadline, "%s never happened: %s" % (what, pool)
        time.sleep(0.05)


def test_db_pool_small_makes_a_second_checkout_wait(start_server, db, env, world, items_state):
    items_state(world.item_plain, stock=50, available=True)
    s = start_server(
        threads=1,
        name="db-pool",
        flags=["db_pool=small", "payment_latency_ms=0"],
        env={"HOTPLATE_DB_POOL": "4", "HOTPLATE_POOL_TIMEOUT_MS": "20000", "HOTPLATE_LOCK_TIMEOUT_MS": "60000"},
    )
    assert perf(s, "pool")["pool"]["size"] == 1
    locked = {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}
    free = {"restaurant_id": world.rid, "items": [{"item_id": world.item_spare, "quantity": 1}]}
    results = {}

    def go(name, token, body):
        def run():
            results[name] = Client(s.base, token).order(body, key=new_key(), timeout=40)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    lock = RowLock(env, world.item_plain)
    try:
        # A holds the only connection, blocked on our row lock; B must wait in the pool for it.
        ta = go("a", world.a["token"], locked)
        wait_pool(s, lambda p: p["in_use"] == 1, "A holding the connection")
        tb = go("b", world.b["token"], free)
        wait_pool(s, lambda p: p["waiting"] == 1, "B waiting for the pool")
        # Safe mid-load: back to sized, and the next acquire hands B a free connection at once.
        set_flags(s, db_pool="sized")
        tc = go("c", world.c["token"], free)
        tb.join(timeout=20)
        tc.join(timeout=20)
        assert_status(results["b"], 201)
        assert_status(results["c"], 201)
        assert ta.is_alive(), "A finished while its row was locked"
        assert perf(s, "pool")["pool"]["size"] == 4
    finally:
        lock.release()
    ta.join(timeout=20)
    assert_status(results["a"], 201)
    assert perf(s, "pool")["pool"]["wait"]["total"]["max_us"] > 0


# ---------------------------------------------------------------- leak


def heap_allocated(s):
    heap = perf(s, "heap")["heap"]
    if heap.get("allocator") != "jemalloc":
        pytest.skip("the heap section needs jemalloc (a sanitizer build has its own allocator)")
    return heap["allocated"]


def views(s, rid, n, ua):
    def run(k):
        sess = requests.Session()
        for _ in range(k):
            r = sess.get(s.base + "/restaurants/%d/menu" % rid, headers={"User-Agent": ua}, timeout=10)
            assert r.status_code == 200, r.text

    per = n // 4
    ts = [threading.Thread(target=run, args=(per,), daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)


def test_leak_on_grows_the_heap_per_view_and_off_gives_it_back(start_server, world):
    s = start_server(threads=1, name="leak", flags=["payment_latency_ms=0"])
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) hotplate-e2e/1.0 " + "x" * 60
    n = 2000
    # Fill the bounded list (1024 entries per thread) first, so that off is measured at its steady state.
    views(s, world.rid3, 1200, ua)
    # The embedded alerts' first evaluation, a second after the start, allocates the merged snapshot it keeps
    # (about 5 MB, once): measure after it, or a fast machine counts it as off's growth.
    deadline = time.monotonic() + 10
    while perf(s, "alerts")["alerts"]["evaluations"] < 1:
        assert time.monotonic() < deadline, "the embedded alerts never evaluated"
        time.sleep(0.1)
    a0 = heap_allocated(s)
    views(s, world.rid3, n, ua)
    a1 = heap_allocated(s)
    set_flags(s, leak="on")
    views(s, world.rid3, n, ua)
    a2 = heap_allocated(s)
    off_growth, on_growth = a1 - a0, a2 - a1
    # Each leaked view keeps an entry of about 200 bytes (the User-Agent copy and the list links).
    assert on_growth >= n * 150 // 2, (off_growth, on_growth)
    assert off_growth < on_growth / 3, (off_growth, on_growth)
    trending = assert_status(requests.get(s.base + "/trending?minutes=5", timeout=10), 200)
    # The bounded list kept its last 1024 views, the leaking one every view since.
    assert trending["restaurants"][0] == {"restaurant_id": world.rid3, "views": 1024 + n}
    # Back to off: the next view trims the list to its bound and the heap comes back down.
    set_flags(s, leak="off")
    views(s, world.rid3, 4, ua)
    a3 = heap_allocated(s)
    assert a3 < a2 - on_growth // 2, (a2, a3, on_growth)
