"""Every external wait has a deadline that maps to a clear JSON error, and a
SIGTERM drains in-flight requests before the server exits.

Each case provokes the real wait (a held PostgreSQL row lock, a slow payment
gateway, a busy Redis, a one-connection pool) on a dedicated server with a
short deadline, then asserts the documented status and code, and that nothing
was written.
"""
import signal
import subprocess
import threading
import time

from hplib.client import Client, assert_error, assert_status, new_key, perf
from hplib.db import DB

# Holds Redis busy for about a second: a script is atomic, so every other client waits behind it.
BUSY_LUA = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] " \
           "repeat local n = redis.call('TIME') until (n[1] * 1000000 + n[2]) - s > 1000000 return 1"


def redis_cli(url, args):
    """Runs one command with Debian's redis-cli against HOTPLATE_REDIS_URL (unix:// or redis://)."""
    if url.startswith("unix://"):
        target = ["-s", url[len("unix://"):]]
    else:
        hostport = url[len("redis://"):].rstrip("/")
        host, _, port = hostport.partition(":")
        target = ["-h", host, "-p", port or "6379"]
    subprocess.run(["redis-cli"] + target + args, check=True, capture_output=True, timeout=30)


def orders_with_key(db, key):
    return db.val("SELECT count(*) FROM orders WHERE idempotency_key = %s", (key,))


class RowLock:
    """Holds FOR UPDATE on one menu item from a separate connection."""

    def __init__(self, env, item):
        self.db = DB(env["pg_url"], autocommit=False, application_name="hotplate-e2e-locker")
        self.db.exec("SELECT id FROM menu_items WHERE id = %s FOR UPDATE", (item,))

    def release(self):
        try:
            self.db.conn.rollback()
        finally:
            self.db.close()


def order_behind_row_lock(s, env, world, key):
    """Customer A orders R's plain item while another connection holds its
    row lock; the server must give up with a 504 db_timeout."""
    lock = RowLock(env, world.item_plain)
    try:
        r = Client(s.base, world.a["token"]).order(
            {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=key, timeout=15
        )
        assert_error(r, 504, "db_timeout")
    finally:
        lock.release()


def test_statement_timeout_is_504_db_timeout(start_server, db, env, world, items_state):
    items_state(world.item_plain, stock=50, available=True)
    s = start_server(threads=1, name="stmt-timeout", env={"HOTPLATE_STATEMENT_TIMEOUT_MS": "300"})
    key = new_key()
    order_behind_row_lock(s, env, world, key)
    assert orders_with_key(db, key) == 0
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 50


def test_client_deadline_is_504_and_the_transaction_rolls_back(start_server, db, env, world, items_state):
    """A client deadline shorter than the statement timeout: the server keeps PostgreSQL's statement_timeout
    under it (runtime/db.c), so PostgreSQL ends the blocked statement itself, the batch's COMMIT never
    commits, and nothing is written. (A PostgreSQL that stops answering: tests/e2e/test_checkout_batch.py.)"""
    items_state(world.item_plain, stock=50, available=True)
    s = start_server(threads=1, name="client-deadline", env={"HOTPLATE_DB_TIMEOUT_MS": "300"})
    key = new_key()
    order_behind_row_lock(s, env, world, key)
    # The abandoned stock decrement runs once the lock is gone, then the queued ROLLBACK undoes it.
    deadline = time.monotonic() + 10
    while db.val("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hotplate' AND state = 'idle in transaction'"):
        assert time.monotonic() < deadline, "a server connection stayed idle in transaction"
        time.sleep(0.05)
    assert orders_with_key(db, key) == 0
    assert db.val("SELECT stock FROM menu_items WHERE id = %s", (world.item_plain,)) == 50
    # The connection went back to the pool clean: the next checkout works.
    r = Client(s.base, world.a["token"]).order(
        {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=new_key(), timeout=15
    )
    assert_status(r, 201)


def test_pool_wait_is_503_pool_exhausted(start_server, db, env, world, items_state):
    items_state(world.item_plain, stock=50, available=True)
    s = start_server(
        threads=1, name="pool", env={"HOTPLATE_DB_POOL": "1", "HOTPLATE_POOL_TIMEOUT_MS": "200", "HOTPLATE_LOCK_TIMEOUT_MS": "60000"}
    )
    lock = RowLock(env, world.item_plain)
    held = {}
    first_key, second_key = new_key(), new_key()

    def first():
        held["r"] = Client(s.base, world.a["token"]).order(
            {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=first_key, timeout=20
        )

    t = threading.Thread(target=first, daemon=True)
    try:
        t.start()
        # Wait until the first checkout holds the only transaction connection, blocked on our lock.
        deadline = time.monotonic() + 10
        while not db.val("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hotplate' AND wait_event_type = 'Lock'"):
            assert time.monotonic() < deadline, "the first checkout never waited on the row lock"
            time.sleep(0.02)
        other = world.item_spare
        r = Client(s.base, world.b["token"]).order(
            {"restaurant_id": world.rid, "items": [{"item_id": other, "quantity": 1}]}, key=second_key, timeout=15
        )
        assert_error(r, 503, "pool_exhausted")
    finally:
        lock.release()
    t.join(timeout=20)
    assert_status(held["r"], 201)
    assert orders_with_key(db, second_key) == 0


def test_payment_timeout_is_504_and_nothing_is_written(start_server, db, world):
    s = start_server(
        threads=1, name="payment-timeout", flags=["payment_latency_ms=2000"], env={"HOTPLATE_PAYMENT_TIMEOUT_MS": "100"}
    )
    key = new_key()
    r = Client(s.base, world.a["token"]).order(
        {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=key, timeout=15
    )
    assert_error(r, 504, "payment_timeout")
    assert orders_with_key(db, key) == 0
    # The gateway still answers, about 2 s later, and the authorization nobody waited for is voided.
    deadline = time.monotonic() + 20
    while True:
        pay = perf(s, "loop")["loop"]["payments"]
        if pay["voided"] == 1:
            break
        assert time.monotonic() < deadline, "the timed-out authorization was never voided: %s" % pay
        time.sleep(0.1)
    assert pay == {"authorized": 1, "declined": 0, "timed_out": 1, "voided": 1}, pay


def test_busy_redis_times_out_and_the_menu_comes_from_postgres(start_server, env, world):
    # menu_cache=redis: the thread's own copy (the default, local) would answer this read without asking Redis.
    s = start_server(threads=1, name="redis-timeout", flags=["menu_cache=redis"], env={"HOTPLATE_REDIS_TIMEOUT_MS": "100"})
    c = Client(s.base)
    path = "/restaurants/%d/menu" % world.rid
    assert_status(c.get(path), 200)
    busy = threading.Thread(target=redis_cli, args=(env["redis_url"], ["EVAL", BUSY_LUA, "0"]), daemon=True)
    busy.start()
    time.sleep(0.2)  # the script is running; Redis answers nobody else until it ends
    r = c.get(path, timeout=10)
    busy.join(timeout=10)
    assert_status(r, 200)
    assert r.headers.get("X-Cache") == "error", r.headers


def test_sigterm_drains_in_flight_requests(start_server, db, world):
    # 800 ms mean: the simulator's longest jitter (3x, 2.4 s) stays inside the 3 s payment deadline.
    s = start_server(threads=1, name="drain", flags=["payment_latency_ms=800"])
    key = new_key()
    result = {}

    def post():
        result["r"] = Client(s.base, world.a["token"]).order(
            {"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=key, timeout=20
        )

    t = threading.Thread(target=post, daemon=True)
    t.start()
    # SIGTERM only once the checkout is in flight (the probes say so), waiting on the payment gateway.
    deadline = time.monotonic() + 10
    while True:
        doc = perf(s, "routes")
        orders = [r for r in doc["routes"] if r["method"] == "POST" and r["route"] == "/orders"][0]
        if orders["in_flight"] == 1:
            break
        assert time.monotonic() < deadline, "the checkout never became in flight"
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    t.join(timeout=20)
    assert "r" in result, "the in-flight checkout got no answer"
    assert_status(result["r"], 201)
    assert orders_with_key(db, key) == 1
    assert s.proc.wait(timeout=20) == 0
