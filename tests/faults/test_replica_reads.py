"""Read scaling (issue 17, item 4): replica_reads=on sends the uncached menu
and the order history to the streaming standby of an HA stack
(deploy/stack.sh with HA=1 exports HOTPLATE_PG_REPLICA_URL), keeps a
customer's own fresh order visible, and never fails a read because of the
standby.

1. The standby runs the statements: pg_stat_statements on the standby counts
   menu_get and order_history calls (matched by fragments of their SQL), the
   primary's count of them does not move, and pool.replica_reads counts them.
2. Read-your-writes: the stack's synchronous_commit = on waits for the
   standby's flush, not its replay, so a read from the standby right after
   a commit can miss it. The tests make that certain rather than occasional:
   the standby replays commits APPLY_DELAY_MS late (recovery_min_apply_delay),
   and the test checks on the standby itself that the order (or the new
   price) is not there yet. Yet a customer who just ordered reads their
   history at once, 60 times over, and the newest order is the one just
   placed every time; a menu read right after its PATCH shows the new price;
   pool.replica_fresh shows those reads were held on the primary until the
   standby's replay position passed the commit's LSN.
   Across replicas of the application: a second server on the same stack
   knows nothing of the first one's commits. The checkout's (and the
   PATCH's) response sets the hp_lsn cookie, and the second server, given
   it, shows the order (and the price) every time; without it, it misses
   the order in most rounds, so the window the cookie closes is real.
3. With the standby's backends SIGSTOPped (connections open, no answer),
   reads answer 200 from the primary within the standby's deadline (half
   --db-timeout-ms), and the standby serves again once released.
4. With the standby stopped (a fast shutdown), menu and history reads still
   answer 200 from the primary, counted in pool.replica_fallbacks.

The HA stack is this module's own (like test_failover.py's), on 127.0.0.1
and unix sockets only, and the loads are a few hundred requests.
"""

import contextlib
import os
import re
import signal
import time
import uuid

import psycopg2
import pytest

from conftest import cart, ha_servers, perf_section
from hplib.client import Client, assert_status
from load import wait_until

# Reads right after a checkout: each one is a chance for the standby to miss the order.
RYW_ROUNDS = 60
MENU_READS = 40
# The standby's recovery_min_apply_delay while the read-your-writes tests run: it holds every commit back on the standby
# for this long (after its flush, which is what synchronous_commit = on waits for), so a read there right after a
# commit misses it every time instead of now and then, and the tests show the check closing that window.
APPLY_DELAY_MS = 300
# The server's --db-timeout-ms; a read on the standby gets half of it before the standby counts as down.
DB_TIMEOUT_MS = 2000


def _conf(home):
    """stack.conf's variables (RUN_ROOT, PG_STANDBY_DIR, ...)."""
    out = {}
    with open(os.path.join(home, "stack.conf"), encoding="utf-8") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.rstrip("\n").split("=", 1)
                out[k] = v.strip("'\"")
    return out


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """An HA stack, migrated and seeded at scale 0.01, and one server on it with replica_reads=on."""
    # A standby read's deadline is half of --db-timeout-ms: 1 s for the hung standby test.
    with ha_servers("hp-rr-", tmp_path_factory.mktemp("rr"), {"HOTPLATE_DB_TIMEOUT_MS": str(DB_TIMEOUT_MS)}) as st:
        assert st.env.get("HOTPLATE_PG_REPLICA_URL"), "stack.sh exported no HOTPLATE_PG_REPLICA_URL"
        st.standby_url = "postgresql://postgres@127.0.0.1:%s/hotplate" % st.env["HOTPLATE_PG_STANDBY_PORT"]
        st.primary_url = "postgresql://postgres@127.0.0.1:%s/hotplate" % st.env["HOTPLATE_PG_PORT"]
        # The standby URL goes to the servers' environment: each one reads it at start.
        st.servers.env["HOTPLATE_PG_REPLICA_URL"] = st.env["HOTPLATE_PG_REPLICA_URL"]
        # menu_cache=off: every menu read is the uncached one, the statement this is about.
        st.server = st.servers.start("rr", threads=2, flags=["replica_reads=on", "menu_cache=off", "payment_latency_ms=1"])
        yield st


def _pool(s):
    return perf_section(s, "pool")


# Fragments of menu_get's and order_history's SQL without constants: pg_stat_statements may store a statement prepared
# through the protocol with its constants normalised to placeholders (profiling/pg.c says when), so the exact text cannot
# be matched, and these fragments occur in no other statement.
FRAGMENTS = {"menu": "%r.menu_version, coalesce((SELECT array_to_json(array_agg(cat %",
             "history": "%FROM orders o WHERE o.user_id = $1 AND ($2::bigint IS NULL OR%"}


def _calls(url, pattern):
    """pg_stat_statements' calls of the statements whose text is LIKE pattern on one node (0 before the first call)."""
    conn = psycopg2.connect(url, application_name="hotplate-faults", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE %s", (pattern,))
            return cur.fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def _apply_delay(st, ms):
    """The standby replays commits ms late while the block runs (ALTER SYSTEM on the standby, then a reload)."""
    conn = psycopg2.connect(st.standby_url, application_name="hotplate-faults", connect_timeout=5)
    conn.autocommit = True

    def setting(value):
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET recovery_min_apply_delay = %s", (value,))
            cur.execute("SELECT pg_reload_conf()")

    try:
        setting("%dms" % ms)
        # A reload is asynchronous: wait until the standby's own sessions see the new value.
        assert wait_until(lambda: _show(conn, "recovery_min_apply_delay") == "%dms" % ms, 5), _show(conn, "recovery_min_apply_delay")
        yield conn
    finally:
        try:
            setting("0")
        finally:
            conn.close()
    # The held-back commits replay now; the reads after this block find them on the standby.
    time.sleep(ms / 1000 + 0.2)


def _show(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting(%s)", (name,))
        return cur.fetchone()[0]


def _standby_ready(st, s=None):
    """Waits until each worker thread's standby connection serves reads (the counter moves on a probe read)."""
    s = s or st.server
    c = Client(s.base)

    def probe():
        before = _pool(s)["replica_reads"]
        for _ in range(8):
            c.get("/restaurants/%d/menu" % st.cast.rid)
        return _pool(s)["replica_reads"] - before >= 8

    return wait_until(probe, 15, interval=0.2)


def _standby_backends(st):
    """hotplate's connections to the standby node, as the standby counts them."""
    conn = psycopg2.connect(st.standby_url, application_name="hotplate-faults", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hotplate' AND backend_type = 'client backend'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_standby_gets_as_many_read_connections_as_the_primary(ha):
    # Sending the reads to the standby must not leave them fewer backends than on the primary: with two read
    # connections a thread there and one on the standby, the uncached menu lost a third of its throughput
    # (docs/BENCHMARKS.md, read scaling). The admin thread has none there.
    st = ha
    assert _standby_ready(st)
    readers = _pool(st.server)["readers"]
    assert readers >= 2, readers
    assert wait_until(lambda: _standby_backends(st) == readers, 10, interval=0.2), (_standby_backends(st), readers)


def test_standby_serves_menu_and_history(ha, record):
    st = ha
    s = st.server
    assert _standby_ready(st), "the standby read connections never became ready: %s" % _pool(s)
    before = {(node, name): _calls(url, sql) for node, url in (("standby", st.standby_url), ("primary", st.primary_url))
              for name, sql in FRAGMENTS.items()}
    pool0 = _pool(s)
    # A customer with no checkout in this run: nothing keeps their reads on the primary.
    cust = st.cast.customers[-1]
    c = Client(s.base)
    me = Client(s.base, token=cust["token"])
    rids = [st.cast.rid, st.cast.rid2]
    for i in range(MENU_READS):
        assert_status(c.get("/restaurants/%d/menu" % rids[i % 2]), 200)
        assert_status(me.get("/users/%d/orders" % cust["id"]), 200)
    pool1 = _pool(s)
    after = {k: _calls(st.standby_url if k[0] == "standby" else st.primary_url, FRAGMENTS[k[1]]) for k in before}
    delta = {"%s_%s" % k: after[k] - before[k] for k in before}
    record(fault="none (replica_reads=on, HA stack)", load="%d menu + %d history reads, replica_reads=on" % (MENU_READS, MENU_READS), requests=2 * MENU_READS,
           lost=0, duplicates=0, replica_reads=pool1["replica_reads"] - pool0["replica_reads"],
           **{"%s_calls" % k: v for k, v in delta.items()})
    assert delta["standby_menu"] >= MENU_READS, delta
    assert delta["standby_history"] >= MENU_READS, delta
    assert delta["primary_menu"] == 0 and delta["primary_history"] == 0, delta
    # The history is three statements a page (the page, its items, its restaurants' names) when it has orders, one otherwise.
    assert pool1["replica_reads"] - pool0["replica_reads"] >= 2 * MENU_READS, (pool0, pool1)
    assert pool1["replica_fallbacks"] == pool0["replica_fallbacks"], (pool0, pool1)


def test_customer_sees_own_order_at_once(ha, record):
    st = ha
    s = st.server
    assert _standby_ready(st)
    pool0 = _pool(s)
    standby_missing = 0
    stale = []
    run = uuid.uuid4().hex[:8]
    with _apply_delay(st, APPLY_DELAY_MS) as standby:
        for i in range(RYW_ROUNDS):
            cust = st.cast.customers[i % 4]
            me = Client(s.base, token=cust["token"])
            r = me.post("/orders", cart(st.cast, i), headers={"Idempotency-Key": "rr-%s-%d" % (run, i)})
            assert_status(r, 201)
            oid = r.json()["id"]
            # What a read on the standby finds at this moment: the case read-your-writes closes.
            with standby.cursor() as cur:
                cur.execute("SELECT count(*) FROM orders WHERE id = %s", (oid,))
                standby_missing += cur.fetchone()[0] == 0
            h = me.get("/users/%d/orders?limit=1" % cust["id"])
            assert_status(h, 200)
            got = [o["id"] for o in h.json()["orders"]]
            if got[:1] != [oid]:
                stale.append((i, oid, got))
    pool1 = _pool(s)
    fresh = pool1["replica_fresh"] - pool0["replica_fresh"]
    record(fault="none (replica_reads=on, HA stack)", load="%d checkouts each followed at once by the customer's history" % RYW_ROUNDS, requests=2 * RYW_ROUNDS,
           orders_checked=RYW_ROUNDS, lost=len(stale), duplicates=0, held_on_primary=fresh, standby_lacked_order=standby_missing,
           apply_delay_ms=APPLY_DELAY_MS)
    assert not stale, "history reads missed the order just placed: %s" % stale[:5]
    # The window was real: the standby lacked most of the orders when the history was read.
    assert standby_missing >= RYW_ROUNDS // 2, standby_missing
    # Those reads waited for the replay on the primary: the page and its two statements each round.
    assert fresh >= 3 * standby_missing, (pool0, pool1)
    # Once the standby replayed the commits (_apply_delay waited for that), the same customers' reads go back to it.
    pool2 = _pool(s)
    cust = st.cast.customers[0]
    assert_status(Client(s.base, token=cust["token"]).get("/users/%d/orders" % cust["id"]), 200)
    assert _pool(s)["replica_reads"] > pool2["replica_reads"]


def test_menu_read_after_patch_sees_new_price(ha, record):
    """The owner's PATCH notes its commit position for the restaurant, so the next uncached read waits for the replay on the primary."""
    st = ha
    s = st.server
    # The tokens file keys owners' tokens by their restaurant.
    rid = st.db.val("SELECT min(restaurant_id) FROM menu_items WHERE restaurant_id = ANY(%s)", ([int(k) for k in st.cast.owners],))
    assert rid is not None, "no restaurant with an owner token has a menu"
    item = st.db.val("SELECT min(id) FROM menu_items WHERE restaurant_id = %s", (rid,))
    c = Client(s.base)
    boss = Client(s.base, token=st.cast.owners[rid] if rid in st.cast.owners else st.cast.owners[str(rid)])
    pool0 = _pool(s)
    stale = []
    standby_old = 0
    with _apply_delay(st, APPLY_DELAY_MS) as standby:
        for i in range(20):
            price = 1000 + i
            assert_status(boss.patch("/restaurants/%d/menu/items/%d" % (rid, item), {"price_cents": price}), 200)
            with standby.cursor() as cur:
                cur.execute("SELECT price_cents FROM menu_items WHERE id = %s", (item,))
                standby_old += cur.fetchone()[0] != price
            doc = c.get("/restaurants/%d/menu" % rid).json()
            seen = [it["price_cents"] for cat in doc["categories"] for it in cat["items"] if it["id"] == item]
            if seen != [price]:
                stale.append((i, price, seen))
    pool1 = _pool(s)
    record(fault="none (replica_reads=on, HA stack)", load="20 menu PATCHes each followed at once by the menu", requests=40,
           lost=len(stale), duplicates=0, held_on_primary=pool1["replica_fresh"] - pool0["replica_fresh"],
           standby_had_old_price=standby_old, apply_delay_ms=APPLY_DELAY_MS)
    assert not stale, stale[:5]
    assert standby_old >= 10, standby_old


@pytest.fixture(scope="module")
def other(ha):
    """A second replica of the application on the same HA stack, as behind a load balancer: it never sees the first
    server's commits, so only the read-your-writes cookie can tell it about them."""
    s = ha.servers.start("rr-b", threads=2, flags=["replica_reads=on", "menu_cache=off", "payment_latency_ms=1"])
    assert _standby_ready(ha, s), "the second server's standby connections never became ready: %s" % _pool(s)
    return s


def _lsn_cookie(r):
    """The hp_lsn cookie a write's response sets: its value, after checking the attributes the docs promise."""
    header = r.headers.get("Set-Cookie", "")
    m = re.match(r"hp_lsn=([0-9A-F]{1,8}/[0-9A-F]{1,8}); Path=/; Max-Age=(\d+); HttpOnly; SameSite=Lax$", header)
    assert m, "no read-your-writes cookie on the write's response: %r" % header
    assert int(m.group(2)) > 0
    return m.group(1)


def _lsn_value(text):
    hi, lo = text.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def test_cookie_carries_own_order_to_other_replica(ha, other, record):
    """A checkout on one server, the customer's history at once on another: the cookie keeps that read on the primary
    until the other server's view of the standby's replay passed the commit, and without it the window is real."""
    st = ha
    a, b = st.server, other
    assert _standby_ready(st)
    pool0 = _pool(b)
    stale, missed_without, standby_missing = [], 0, 0
    lsns = []
    run = uuid.uuid4().hex[:8]
    with _apply_delay(st, APPLY_DELAY_MS) as standby:
        for i in range(RYW_ROUNDS // 2):
            cust = st.cast.customers[4 + i % 4]
            r = Client(a.base, token=cust["token"]).post("/orders", cart(st.cast, i), headers={"Idempotency-Key": "rrx-%s-%d" % (run, i)})
            assert_status(r, 201)
            oid = r.json()["id"]
            lsns.append(_lsn_value(_lsn_cookie(r)))
            with standby.cursor() as cur:
                cur.execute("SELECT count(*) FROM orders WHERE id = %s", (oid,))
                standby_missing += cur.fetchone()[0] == 0
            on_b = Client(b.base, token=cust["token"])
            # Without the cookie, the other server knows nothing of the commit and reads the lagging standby.
            h = on_b.get("/users/%d/orders?limit=1" % cust["id"])
            assert_status(h, 200)
            missed_without += [o["id"] for o in h.json()["orders"]][:1] != [oid]
            # With it, as a browser or any cookie-keeping client behind nginx sends it back.
            h = on_b.get("/users/%d/orders?limit=1" % cust["id"], headers={"Cookie": "theme=dark; hp_lsn=" + r.cookies["hp_lsn"]})
            assert_status(h, 200)
            got = [o["id"] for o in h.json()["orders"]]
            if got[:1] != [oid]:
                stale.append((i, oid, got))
        # A retry of the last checkout, as a client whose first answer was lost sends it: the replay carries a position
        # too, at or past the commit's, and it is enough for the other server.
        rep = Client(a.base, token=cust["token"]).post("/orders", cart(st.cast, i), headers={"Idempotency-Key": "rrx-%s-%d" % (run, i)})
        assert_status(rep, 201)
        assert rep.headers.get("Idempotent-Replayed") == "true" and rep.json()["id"] == oid
        assert _lsn_value(_lsn_cookie(rep)) >= lsns[-1], (rep.headers, lsns[-1])
        h = Client(b.base, token=cust["token"]).get("/users/%d/orders?limit=1" % cust["id"], headers={"Cookie": "hp_lsn=" + rep.cookies["hp_lsn"]})
        assert [o["id"] for o in h.json()["orders"]][:1] == [oid], h.text
    pool1 = _pool(b)
    fresh = pool1["replica_fresh"] - pool0["replica_fresh"]
    record(fault="none (replica_reads=on, HA stack, two servers)",
           load="%d checkouts on one server, each followed at once by the history on the other, with and without the cookie" % (RYW_ROUNDS // 2),
           requests=3 * (RYW_ROUNDS // 2), orders_checked=RYW_ROUNDS // 2, lost=len(stale), duplicates=0,
           missed_without_cookie=missed_without, standby_lacked_order=standby_missing, held_on_primary=fresh,
           apply_delay_ms=APPLY_DELAY_MS)
    assert not stale, "history reads with the cookie missed the order just placed on the other server: %s" % stale[:5]
    # The window was real on the other server: without the cookie, most reads missed the order.
    assert standby_missing >= RYW_ROUNDS // 4, standby_missing
    assert missed_without >= RYW_ROUNDS // 4, (missed_without, standby_missing)
    # The commits' positions only grow, and the cookie reads were the ones held on the primary.
    assert lsns == sorted(lsns), lsns
    assert fresh >= standby_missing, (pool0, pool1)


def test_cookie_carries_menu_patch_to_other_replica(ha, other, record):
    """The owner's PATCH on one server sets the cookie too: the owner's next uncached menu read on another server shows
    the new price, while the standby still has the old one."""
    st = ha
    rid = st.db.val("SELECT min(restaurant_id) FROM menu_items WHERE restaurant_id = ANY(%s)", ([int(k) for k in st.cast.owners],))
    item = st.db.val("SELECT max(id) FROM menu_items WHERE restaurant_id = %s", (rid,))
    token = st.cast.owners[rid] if rid in st.cast.owners else st.cast.owners[str(rid)]
    boss_a, boss_b = Client(st.server.base, token=token), Client(other.base, token=token)
    stale, standby_old = [], 0
    with _apply_delay(st, APPLY_DELAY_MS) as standby:
        for i in range(10):
            price = 2000 + i
            r = boss_a.patch("/restaurants/%d/menu/items/%d" % (rid, item), {"price_cents": price})
            assert_status(r, 200)
            cookie = _lsn_cookie(r)
            with standby.cursor() as cur:
                cur.execute("SELECT price_cents FROM menu_items WHERE id = %s", (item,))
                standby_old += cur.fetchone()[0] != price
            doc = boss_b.get("/restaurants/%d/menu" % rid, headers={"Cookie": "hp_lsn=" + cookie}).json()
            seen = [it["price_cents"] for cat in doc["categories"] for it in cat["items"] if it["id"] == item]
            if seen != [price]:
                stale.append((i, price, seen))
    record(fault="none (replica_reads=on, HA stack, two servers)", load="10 menu PATCHes on one server, each followed at once by the owner's menu read on the other",
           requests=20, lost=len(stale), duplicates=0, standby_had_old_price=standby_old, apply_delay_ms=APPLY_DELAY_MS)
    assert not stale, stale[:5]
    assert standby_old >= 5, standby_old


def test_standby_hung_reads_answer_from_primary(ha, record):
    """The standby's backends that serve the server are SIGSTOPped: they keep their connections open and never answer.
    Each read still answers 200, from the primary, within the standby's deadline (half --db-timeout-ms) plus the
    primary's time, and the threads reconnect to the standby (whose postmaster still runs) once it is released."""
    st = ha
    s = st.server
    assert _standby_ready(st)
    conn = psycopg2.connect(st.standby_url, application_name="hotplate-faults", connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'hotplate'")
            pids = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    assert pids, "no backend of the server's standby connections on the standby"
    pool0 = _pool(s)
    cust = st.cast.customers[-3]
    c = Client(s.base)
    me = Client(s.base, token=cust["token"])
    answers = []
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(10):
            t0 = time.monotonic()
            r = c.get("/restaurants/%d/menu" % st.cast.rid) if i % 2 == 0 else me.get("/users/%d/orders" % cust["id"])
            answers.append((r.status_code, time.monotonic() - t0))
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    pool1 = _pool(s)
    slowest = max(t for _, t in answers)
    record(fault="PostgreSQL standby backends SIGSTOPped (replica_reads=on, HA stack)", load="10 menu and history reads, one at a time",
           requests=len(answers), lost=0, duplicates=0, non_200=sum(1 for code, _ in answers if code != 200),
           slowest_s=round(slowest, 2), standby_deadline_ms=DB_TIMEOUT_MS // 2,
           fallbacks=pool1["replica_fallbacks"] - pool0["replica_fallbacks"])
    assert all(code == 200 for code, _ in answers), answers
    # At most one read per thread waits out the deadline; the rest find the standby down and go to the primary at once.
    assert slowest < DB_TIMEOUT_MS / 2 / 1000 + 1.0, answers
    assert pool1["replica_fallbacks"] > pool0["replica_fallbacks"], (pool0, pool1)
    # Released, the standby serves again: the threads' new connections reach fresh backends.
    assert _standby_ready(st), "the standby connections did not come back: %s" % _pool(s)


def test_standby_stopped_reads_fall_back(ha, record):
    """The last test of the module: it stops the standby, which the fixture's destroy cleans up."""
    st = ha
    s = st.server
    assert _standby_ready(st)
    conf = _conf(st.home)
    pidfile = os.path.join(conf["RUN_ROOT"], "pg", conf.get("PG_STANDBY_DIR", "data-b"), "postmaster.pid")
    with open(pidfile, encoding="utf-8") as f:
        pid = int(f.readline())
    pool0 = _pool(s)
    cust = st.cast.customers[-2]
    c = Client(s.base)
    me = Client(s.base, token=cust["token"])
    statuses = []
    t0 = time.monotonic()
    # SIGINT is PostgreSQL's fast shutdown: it ends the sessions, so the server's standby connections fail under the reads.
    os.kill(pid, signal.SIGINT)
    while time.monotonic() - t0 < 3.0:
        statuses.append(c.get("/restaurants/%d/menu" % st.cast.rid).status_code)
        statuses.append(me.get("/users/%d/orders" % cust["id"]).status_code)
    assert wait_until(lambda: not os.path.exists(pidfile), 20), "the standby did not stop"
    for _ in range(20):
        statuses.append(c.get("/restaurants/%d/menu" % st.cast.rid2).status_code)
        statuses.append(me.get("/users/%d/orders" % cust["id"]).status_code)
    pool1 = _pool(s)
    bad = [x for x in statuses if x != 200]
    record(fault="PostgreSQL standby fast shutdown (replica_reads=on, HA stack)", load="menu and history reads, replica_reads=on", requests=len(statuses), lost=0,
           duplicates=0, non_200=len(bad), fallbacks=pool1["replica_fallbacks"] - pool0["replica_fallbacks"])
    assert not bad, "reads failed while the standby was down: %d of %d (%s)" % (len(bad), len(statuses), sorted(set(bad)))
    assert pool1["replica_fallbacks"] - pool0["replica_fallbacks"] >= 40, (pool0, pool1)
