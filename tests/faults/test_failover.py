"""Failover of the engines themselves, on an HA stack (deploy/stack.sh with
HA=1): a PostgreSQL primary with a synchronous streaming standby, and a Redis
primary with a replica watched by Sentinel.

PostgreSQL: under a checkout load whose clients retry every non-201 with the
same Idempotency-Key (honouring Retry-After), `deploy/stack.sh failover`
SIGKILLs the primary and promotes the standby. hotplate is not told: its
reconnect loop (common/runtime/db.c) opens connections with libpq's
multi-host URL and target_session_attrs=read-write, which skips the dead host
and, once promoted, lands on the standby. Requests in flight get JSON 503s
with Retry-After, never a 500; every order answered 201 exists afterwards
(synchronous_standby_names: a commit is acknowledged only once the standby
has it), no key has two orders, and checkout answers again within 10 s of the
kill. /readyz, /metrics and /debug/perf then name the new primary and count
the failover (common/runtime/pgha.c).

Redis: under a menu load, the Redis primary is SIGKILLed; Sentinel promotes
the replica, and the menu route never answers 5xx. hotplate learns of the
promotion from Sentinel's +switch-master message, to which each worker
thread keeps a subscription (common/runtime/redis.c): every thread acts on
it (cache.sentinel_switches in /debug/perf, and its log line), rather than
waiting for its reconnect loop to ask Sentinel again.

The HA stack is this module's own (a second temporary home), so the other
fault tests keep their single-node stack.
"""

import threading
import time
import uuid

import requests

from conftest import cache_menus, cart, ha_servers, menu_load, menu_paths, perf_section
from hplib.client import HTTP_TIMEOUT, Client, assert_status, describe
from load import wait_until

import pytest

WORKERS = 6
# The kill comes once this many orders were answered 201, so the check covers real orders.
KILL_AFTER_CREATED = 40
# The bound: checkout answers again within this long after the kill.
RECOVERY_BOUND_S = 10.0
# Each client gives up on one order after this long (the bound of the whole load).
ORDER_DEADLINE_S = 30.0
MAX_SECONDS = 60.0


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """An HA stack, migrated and seeded at scale 0.01, and one server on it."""
    with ha_servers("hp-ha-", tmp_path_factory.mktemp("ha")) as st:
        st.server = st.servers.start("ha", threads=2, flags=["payment_latency_ms=20"])
        yield st


def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class RetryingCheckouts:
    """Clients that each place orders one after another, retrying an order
    with the same Idempotency-Key until it is answered 201: after a 503 they
    wait what Retry-After says, after a dropped connection a tenth of a
    second. Every answer is kept as (t0, t1, key, status, code, retry_after)."""

    def __init__(self, base, cast, run):
        self.base, self.cast, self.run = base, cast, run
        self.answers = []
        self.created = {}  # key -> (order id, customer id, body)
        self.unfinished = []  # keys given up on at the deadline
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []

    def _worker(self, idx):
        c = self.cast.customers[idx % len(self.cast.customers)]
        s = requests.Session()
        n = 0
        t_end = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and time.monotonic() < t_end:
            key = "fo-%s-%d-%d" % (self.run, idx, n)
            body = cart(self.cast, n)
            headers = {"Authorization": "Bearer " + c["token"], "Idempotency-Key": key}
            give_up = time.monotonic() + ORDER_DEADLINE_S
            while True:
                t0 = time.monotonic()
                try:
                    r = s.post(self.base + "/orders", json=body, headers=headers, timeout=HTTP_TIMEOUT)
                except requests.RequestException:
                    with self.lock:
                        self.answers.append((t0, time.monotonic(), key, None, None, None))
                    s.close()
                    s = requests.Session()
                    wait = 0.1
                else:
                    code = None
                    if r.status_code != 201:
                        try:
                            code = r.json()["error"]["code"]
                        except (ValueError, KeyError, TypeError):
                            code = "not-json"
                    with self.lock:
                        self.answers.append((t0, time.monotonic(), key, r.status_code, code, r.headers.get("Retry-After")))
                        if r.status_code == 201:
                            self.created[key] = (r.json()["id"], c["id"], body)
                    if r.status_code == 201:
                        break
                    if r.status_code != 503:
                        break  # anything else is a failure the test reports
                    wait = min(float(r.headers.get("Retry-After") or 1), 1.0)
                if time.monotonic() + wait > give_up:
                    with self.lock:
                        self.unfinished.append(key)
                    break
                time.sleep(wait)  # the client's back-off, as Retry-After asks
            n += 1
        s.close()

    def start(self):
        for i in range(WORKERS):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def count_created(self):
        with self.lock:
            return len(self.created)

    def first_201_after(self, t):
        with self.lock:
            return min((a[1] for a in self.answers if a[3] == 201 and a[0] >= t), default=None)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(ORDER_DEADLINE_S + HTTP_TIMEOUT + 10)
        assert not any(t.is_alive() for t in self.threads), "checkout clients did not finish"


def test_postgres_failover_loses_nothing(ha, record):
    s, cast, db = ha.server, ha.cast, ha.db
    old_primary = "127.0.0.1:%s" % ha.env["HOTPLATE_PG_PORT"]
    r = Client(s.base).get("/readyz")
    assert r.status_code == 200 and r.json().get("postgres_primary") == old_primary, describe(r)
    assert wait_until(lambda: Client(s.base).get("/readyz").json().get("standbys") == 1, 5), "the watcher saw no standby"
    # The guarantee under test: a commit waits for the standby's flush.
    assert db.val("SELECT sync_state FROM pg_stat_replication") == "sync"

    load = RetryingCheckouts(s.base, cast, uuid.uuid4().hex[:10]).start()
    assert wait_until(lambda: load.count_created() >= KILL_AFTER_CREATED, 30), "the load created only %d orders" % load.count_created()
    t_kill = time.monotonic()
    ha.run("failover")  # SIGKILL the primary, promote the standby
    t_promoted = time.monotonic()
    ha.read_env()
    new_primary = "127.0.0.1:%s" % ha.env["HOTPLATE_PG_PORT"]
    assert new_primary != old_primary

    # Recovered: the first 201 sent after the first failure the kill caused
    # (stack.sh takes a moment before its SIGKILL lands, and orders answered
    # by the old primary before it do not count).
    def first_failure():
        with load.lock:
            return min((a[1] for a in load.answers if a[3] != 201 and a[1] >= t_kill), default=None)

    assert wait_until(lambda: first_failure() is not None, RECOVERY_BOUND_S), "the kill caused no failed request"
    t_fail = first_failure()
    assert wait_until(lambda: load.first_201_after(t_fail) is not None, RECOVERY_BOUND_S + 5, interval=0.02), "checkout never came back"
    recovered_s = load.first_201_after(t_fail) - t_kill
    time.sleep(1.0)
    load.join()
    assert s.alive(), "the server died in the failover"
    assert recovered_s <= RECOVERY_BOUND_S, "checkout answered again %.1f s after the kill" % recovered_s

    # Every answer was a 201 or a JSON 503 with Retry-After; never a 500, never a dropped connection.
    answers = load.answers
    bad = [(a[3], a[4]) for a in answers if a[3] not in (201, 503)]
    assert not bad, "answers other than 201 and 503: %s" % bad[:5]
    no_retry_after = [a[4] for a in answers if a[3] == 503 and (a[5] is None or a[4] in (None, "not-json"))]
    assert not no_retry_after, "503s without a JSON error or Retry-After: %s" % no_retry_after[:5]
    during = [a for a in answers if a[3] == 503]
    assert not load.unfinished, "orders never answered 201: %s" % load.unfinished[:5]

    # Every 201 exists on the new primary with its items and its payment.
    lost = []
    for key, (oid, uid, body) in load.created.items():
        row = db.all("SELECT user_id, idempotency_key FROM orders WHERE id = %s", (oid,))
        items = db.val("SELECT count(*) FROM order_items WHERE order_id = %s", (oid,))
        pay = db.val("SELECT count(*) FROM payments WHERE order_id = %s AND status = 'authorized'", (oid,))
        if not row or row[0]["user_id"] != uid or row[0]["idempotency_key"] != key or items != len(body["items"]) or pay != 1:
            lost.append((oid, key, row, items, pay))
    assert not lost, "orders answered 201 but missing or incomplete after the failover: %s" % lost[:5]
    keys = sorted({a[2] for a in answers})
    dup = db.all(
        "SELECT idempotency_key, user_id, count(*) AS n FROM orders WHERE idempotency_key = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1",
        (keys,),
    )
    assert not dup, "keys with more than one order: %s" % dup[:5]
    assert db.val("SELECT count(*) FROM orders WHERE idempotency_key = ANY(%s)", (keys,)) == len(load.created)

    # The server names the new primary and counts the failover.
    c = Client(s.base)
    assert wait_until(lambda: c.get("/readyz").json().get("postgres_primary") == new_primary, 5), describe(c.get("/readyz"))
    ready = c.get("/readyz").json()
    assert ready["failovers"] == 1 and ready["standbys"] == 0, ready
    metrics = requests.get(s.admin_base + "/metrics", timeout=HTTP_TIMEOUT).text
    assert _metric(metrics, "hotplate_pg_failovers_total") == 1, [l for l in metrics.splitlines() if "hotplate_pg_" in l]
    assert 'hotplate_pg_primary_info{host="%s"} 1' % new_primary in metrics
    perf = requests.get(s.admin_base + "/debug/perf?section=postgres_ha", timeout=HTTP_TIMEOUT).json()["postgres_ha"]
    assert perf["primary"] == new_primary and perf["previous_primary"] == old_primary and perf["failovers"] == 1, perf
    assert perf["last_failover_unix_s"] > 0
    # The doctor names what the failover left behind: a primary with no standby to fail over to next.
    report = assert_status(requests.get(s.admin_base + "/debug/doctor", params={"seconds": 1}, timeout=60), 200)
    f = report["findings"][0]
    assert f["kind"] == "pg_standby" and f["severity"] == "high", report["findings"]
    assert "No standby streams from the primary %s" % new_primary in f["summary"], f
    assert "pg_rewind" in f["fix"]["text"] and any("from %s to %s" % (old_primary, new_primary) in e for e in f["evidence"]), f
    assert report["signals"]["postgres_ha"]["standbys"] == 0, report["signals"]["postgres_ha"]

    record(
        fault="PostgreSQL primary SIGKILLed, standby promoted (deploy/stack.sh failover), HA stack",
        load="%d clients, POST /orders retried with the same Idempotency-Key, payment latency 20 ms" % WORKERS,
        requests=len(answers),
        orders_checked=len(load.created),
        keys=len(keys),
        answered_503=len(during),
        failover_command_s=round(t_promoted - t_kill, 2),
        first_failure_s=round(t_fail - t_kill, 2),
        recovered_s=round(recovered_s, 2),
        lost=len(lost),
        duplicates=len(dup),
    )


def test_redis_sentinel_failover_menu_never_5xx(ha, record):
    s, cast = ha.server, ha.cast
    c = Client(s.base)
    paths = menu_paths(cast)
    cache_menus(c, paths, " through Sentinel's primary")
    switches0 = perf_section(s, "cache")["sentinel_switches"]
    load = menu_load(s.base, paths, 4, 40)
    time.sleep(1.0)
    t_kill = time.monotonic()
    ha.run("redis-kill-primary")  # returns once Sentinel named the replica primary
    t_promoted = time.monotonic()

    def cached_again():
        r = c.get(paths[0])
        return r.status_code == 200 and c.get(paths[0]).headers.get("X-Cache") == "hit"

    assert wait_until(cached_again, RECOVERY_BOUND_S + 5, interval=0.05), "menus never came from the cache again"
    recovered_s = time.monotonic() - t_kill
    time.sleep(1.0)
    load.stop()
    outcomes = load.join()
    assert s.alive()
    assert recovered_s <= RECOVERY_BOUND_S, "the cache served again %.1f s after the kill" % recovered_s
    bad = [(o.status, o.code, o.error) for o in outcomes if o.status is None or o.status >= 500]
    assert not bad, "the menu route answered 5xx or dropped: %s" % bad[:5]
    assert all(o.status == 200 for o in outcomes), sorted({o.status for o in outcomes})
    assert assert_status(c.get("/readyz"), 200)["redis"] == "ok"
    # The mechanism: each worker thread acted on the +switch-master message about its primary, once.
    switches = perf_section(s, "cache")["sentinel_switches"] - switches0
    assert switches == s.threads, "threads that acted on +switch-master: %d of %d" % (switches, s.threads)

    def logged():
        # The log's writer thread drains the loops' buffers in its own time (common/base/log.c).
        text = ""
        for path in {s.stdout_path, s.stderr_path}:
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read()
        return "per +switch-master from sentinel" in text

    assert wait_until(logged, 5, interval=0.1), "no thread logged the switch"

    record(
        fault="Redis primary SIGKILLed, Sentinel promotes the replica, HA stack",
        load="4 clients, GET /restaurants/{id}/menu",
        requests=len(outcomes),
        server_5xx=len(bad),
        sentinel_failover_s=round(t_promoted - t_kill, 2),
        threads_switched_by_message=switches,
        recovered_s=round(recovered_s, 2),
        lost=0,
        duplicates=0,
    )
