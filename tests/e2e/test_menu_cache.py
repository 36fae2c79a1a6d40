"""The menu_cache flag's integration test: what the Redis menu cache changes.

Mechanisms, never timings. Counters come from the admin listener's
/debug/perf: the menu_get statement's calls and the cache section's loads
(menus loaded from PostgreSQL), hits, misses, errors, coalesced and
lease_waits. Redis is read and written with a minimal RESP client over the
stack's socket (redis-py is not packaged in Debian).

- Single flight: a cold menu read by ~40 concurrent clients spread over two
  server threads costs exactly one PostgreSQL load, every client gets the same
  body, and the lease the load took is released by its store.
- menu_cache=off (switched at runtime): N reads are N loads and no hits.
- menu_cache=redis again: after a warm-up, N reads are N hits and no loads.
- The cached entry has a TTL no longer than --menu-cache-ttl-s.
- Redis unreachable: the menu is 200 with X-Cache: error, and counted.
- menu_cache=local (the default): per-thread copies answer hot reads with no
  Redis command (Redis's own command count stays at about one GET per thread
  per copy's lifetime), a PATCH on any thread is never followed by a stale
  read on another, another replica's PATCH shows within the copies' stated
  age (HP_MENU_LOCAL_MAX_AGE_MS, 1 s), and menu_cache=redis keeps no copies.
"""

import http.client
import json
import os
import socket
import time
import types

import pytest
import requests

from hplib.client import Client, assert_status, describe, perf
from hplib.process import free_port

N_CONCURRENT = 40
N_SEQUENTIAL = 8
TTL_S = 120
LOCAL_MAX_AGE_S = 1.0  # services/menu_local.h: HP_MENU_LOCAL_MAX_AGE_MS


# ---------------------------------------------------------------- a minimal Redis client


def _redis_connect(url, timeout=5.0):
    if url.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(url[len("unix://"):])
        return s
    assert url.startswith("redis://"), url
    hostport = url[len("redis://"):].rstrip("/")
    host, _, port = hostport.partition(":")
    return socket.create_connection((host, int(port or 6379)), timeout=timeout)


def _read_reply(f):
    line = f.readline()
    assert line.endswith(b"\r\n"), "truncated Redis reply: %r" % line
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError("Redis error: %s" % rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise AssertionError("unknown Redis reply %r" % line)


def redis_cmd(*args):
    """Runs one command against HOTPLATE_REDIS_URL and returns its decoded reply."""
    s = _redis_connect(os.environ["HOTPLATE_REDIS_URL"])
    try:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        s.sendall(b"".join(parts))
        with s.makefile("rb") as f:
            return _read_reply(f)
    finally:
        s.close()


# ---------------------------------------------------------------- counters


def counters(s):
    doc = perf(s)
    c = dict(doc["cache"])
    c["menu_get"] = next(st["count"] for st in doc["statements"] if st["name"] == "menu_get")
    return c


def delta(after, before):
    return {k: after[k] - before[k]
            for k in ("hits", "local_hits", "misses", "errors", "loads", "coalesced", "lease_waits", "menu_get")}


def set_flag(s, value):
    r = requests.post(s.admin_base + "/debug/flags", json={"menu_cache": value}, timeout=10)
    assert r.status_code == 200, describe(r)
    got = requests.get(s.admin_base + "/debug/flags", timeout=10).json()["flags"]["menu_cache"]["value"]
    assert got == value


def menu_path(rid):
    return "/restaurants/%d/menu" % rid


@pytest.fixture
def rid(db):
    """A restaurant no other test edits: the one with the highest id."""
    return db.val("SELECT max(id) FROM restaurants")


@pytest.fixture
def cached_server(start_server):
    s = start_server(threads=2, name="menu-cache", flags=["menu_cache=redis"], env={"HOTPLATE_MENU_CACHE_TTL_S": str(TTL_S)})
    assert perf(s)["server"]["probes"], "the counters this test reads need a build with probes"
    return s


class _Resp:
    """What the tests read of a response, shaped like requests.Response so describe() works."""

    def __init__(self, url, raw):
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = requests.structures.CaseInsensitiveDict(raw.getheaders())
        self.content = raw.read()
        self.text = self.content.decode("utf-8", "replace")
        self.request = types.SimpleNamespace(method="GET", url=url)


def is_ok(r):
    return isinstance(r, _Resp) and r.status_code == 200


def explain(r):
    return describe(r) if isinstance(r, _Resp) else repr(r)


def concurrent_gets(base, path, n):
    """n GETs on n connections opened beforehand, then sent back to back from one thread.

    Threads released by a barrier were not enough on a loaded machine: Python
    starts them one at a time under the GIL, each still had to connect, and the
    first read could finish its load and store before the second was even
    sent. Here every connection is open before the first byte of a request, and
    the n requests leave within a millisecond or two, so the server's event
    loops find them queued together. Returns the responses (or the exceptions)
    in order."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    conns, out = [], [None] * n
    try:
        for _ in range(n):
            c = http.client.HTTPConnection(host, int(port), timeout=20)
            c.connect()
            conns.append(c)
        for c in conns:
            c.request("GET", path)
        for i, c in enumerate(conns):
            try:
                out[i] = _Resp(base + path, c.getresponse())
            except Exception as e:  # reported by the caller with the others
                out[i] = e
    finally:
        for c in conns:
            c.close()
    return out


def wait_cached(rid, attempts=100):
    """The store lands a moment after the first answers; waits (bounded) until the entry is in Redis."""
    for _ in range(attempts):
        if redis_cmd("GET", "hp:menu:%d" % rid) is not None:
            return
        time.sleep(0.05)
    raise AssertionError("menu %d never reached Redis" % rid)


# ---------------------------------------------------------------- tests


def test_cold_menu_under_concurrent_reads_is_one_load(cached_server, rid):
    """Single flight: per-thread coalescing plus the Redis lease make a cold menu one PostgreSQL load."""
    s = cached_server
    concurrent_misses = 0
    # A burst whose first answer lands before the rest were even sent would prove nothing,
    # so bursts repeat (bounded) until one had several misses in flight together.
    for _ in range(5):
        redis_cmd("DEL", "hp:menu:%d" % rid, "hp:menulock:%d" % rid)
        before = counters(s)
        rs = concurrent_gets(s.base, menu_path(rid), N_CONCURRENT)
        bad = [r for r in rs if not is_ok(r)]
        assert not bad, "failed reads: %s" % [explain(r) for r in bad][:3]
        bodies = {r.content for r in rs}
        assert len(bodies) == 1, "concurrent readers got %d different bodies" % len(bodies)
        assert {r.headers.get("X-Cache") for r in rs} <= {"hit", "miss"}, [r.headers.get("X-Cache") for r in rs]
        d = delta(counters(s), before)
        assert d["hits"] + d["misses"] == N_CONCURRENT and d["errors"] == 0, d
        # The single-flight assertion: one PostgreSQL load however many readers missed.
        assert d["menu_get"] == 1, "menu_get ran %d times for one cold menu: %s" % (d["menu_get"], d)
        assert d["loads"] == 1, d
        # Every miss but the one that loaded was served by another's load: a follower on its
        # thread, a lease loser that polled, or a leader whose lease attempt found the stored menu.
        assert d["coalesced"] + d["lease_waits"] <= d["misses"] - 1, d
        wait_cached(rid)
        # The store released the lease it held.
        assert redis_cmd("EXISTS", "hp:menulock:%d" % rid) == 0
        concurrent_misses = max(concurrent_misses, d["misses"])
        if d["misses"] >= 2:
            break
    assert concurrent_misses >= 2, "no burst had two reads miss together; the test exercised nothing"


def test_flag_switches_loads_and_hits(cached_server, rid):
    """off: N reads, N loads, no hits. redis again: after a warm-up, N reads, N hits, no loads."""
    s = cached_server
    c = Client(s.base)
    set_flag(s, "off")
    before = counters(s)
    for _ in range(N_SEQUENTIAL):
        r = c.get(menu_path(rid))
        assert_status(r, 200)
        assert r.headers.get("X-Cache") == "bypass", describe(r)
    d = delta(counters(s), before)
    assert d["menu_get"] == N_SEQUENTIAL and d["loads"] == N_SEQUENTIAL, d
    assert d["hits"] == 0 and d["misses"] == 0 and d["errors"] == 0, d

    set_flag(s, "redis")
    redis_cmd("DEL", "hp:menu:%d" % rid)
    first = c.get(menu_path(rid))
    body = assert_status(first, 200)
    assert first.headers.get("X-Cache") == "miss", describe(first)
    wait_cached(rid)
    before = counters(s)
    for _ in range(N_SEQUENTIAL):
        r = c.get(menu_path(rid))
        assert assert_status(r, 200) == body
        assert r.headers.get("X-Cache") == "hit", describe(r)
    d = delta(counters(s), before)
    assert d["hits"] == N_SEQUENTIAL and d["misses"] == 0, d
    assert d["menu_get"] == 0 and d["loads"] == 0, d

    # The entry expires on its own, no later than the configured TTL.
    ttl = redis_cmd("TTL", "hp:menu:%d" % rid)
    assert 0 < ttl <= TTL_S, "TTL of the cached menu: %r (configured %d)" % (ttl, TTL_S)


def test_redis_down_is_served_from_postgres_and_counted(start_server, rid):
    port = free_port()  # nothing listens there
    s = start_server(threads=1, name="menu-redis-down", env={"HOTPLATE_REDIS_URL": "redis://127.0.0.1:%d" % port},
                     wait_ready=False)
    c = Client(s.base)
    # PostgreSQL connects asynchronously after start; wait (bounded) until it is up, so only Redis is down.
    for _ in range(100):
        r = c.get("/readyz")
        if r.status_code == 503 and r.json().get("postgres") == "ok":
            break
        time.sleep(0.1)
    assert r.json() == {"status": "not_ready", "postgres": "ok", "redis": "down"}, describe(r)
    before = counters(s)
    for _ in range(3):
        r = c.get(menu_path(rid))
        assert_status(r, 200)
        assert r.headers.get("X-Cache") == "error", describe(r)
    d = delta(counters(s), before)
    assert d["errors"] == 3 and d["hits"] == 0, d
    assert d["loads"] == 3 and d["menu_get"] == 3, d
    assert s.alive()


def test_clients_leaving_mid_flight_leave_the_rest_answered(cached_server, rid):
    """Readers that disconnect while a cold menu loads (possibly the flight's leader) never strand the others."""
    s = cached_server
    for _ in range(3):
        redis_cmd("DEL", "hp:menu:%d" % rid, "hp:menulock:%d" % rid)
        quitters = []
        for _ in range(10):
            q = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            q.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % menu_path(rid).encode())
            quitters.append(q)
        for q in quitters:
            q.close()
        rs = concurrent_gets(s.base, menu_path(rid), 10)
        assert all(is_ok(r) for r in rs), [explain(r) for r in rs]
        assert len({r.content for r in rs}) == 1
    assert s.alive()
    assert perf(s)["cache"]["errors"] == 0


# ---------------------------------------------------------------- menu_cache=local


def redis_calls(command):
    """Redis's own count of calls of one command (INFO commandstats)."""
    info = redis_cmd("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else info
    for line in info.splitlines():
        if line.startswith("cmdstat_%s:" % command):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def owner_patch(base, db, tokens, rid, price_delta):
    """An owner's PATCH of the restaurant's first item's price; returns (item id, old price, new price)."""
    item = db.one("SELECT id, price_cents FROM menu_items WHERE restaurant_id = %s ORDER BY id LIMIT 1", (rid,))
    new = item["price_cents"] + price_delta
    r = Client(base, tokens["owner_by_restaurant"][rid]).patch("/restaurants/%d/menu/items/%d" % (rid, item["id"]),
                                                               {"price_cents": new})
    assert_status(r, 200)
    return item["id"], item["price_cents"], new


def price_in(body, item_id):
    for cat in body["categories"]:
        for it in cat["items"]:
            if it["id"] == item_id:
                return it["price_cents"]
    raise AssertionError("item %d not in the menu" % item_id)


def test_local_copies_answer_without_redis(start_server, rid):
    s = start_server(threads=2, name="menu-local")
    assert requests.get(s.admin_base + "/debug/flags", timeout=10).json()["flags"]["menu_cache"]["value"] == "local"
    c = Client(s.base)
    c.get(menu_path(rid))
    wait_cached(rid)
    n = 300
    before, gets0, t0 = counters(s), redis_calls("get"), time.monotonic()
    for _ in range(n):
        r = c.get(menu_path(rid))
        assert r.status_code == 200 and r.headers.get("X-Cache") == "hit", describe(r)
    elapsed, d, gets = time.monotonic() - t0, delta(counters(s), before), redis_calls("get") - gets0
    # Each of the two threads looks Redis up once per copy's lifetime and answers the rest from its copy (one
    # connection stays on one thread, but the client may open another, which can land on the other thread).
    bound = 2 * (int(elapsed / LOCAL_MAX_AGE_S) + 2)
    assert gets <= bound, "%d Redis GETs for %d cached reads in %.1f s (at most %d expected)" % (gets, n, elapsed, bound)
    assert d["hits"] == n and d["local_hits"] >= n - bound, d
    assert d["menu_get"] == 0 and d["misses"] == 0, d


def test_patch_is_never_followed_by_a_stale_copy_on_any_thread(start_server, db, tokens, rid):
    s = start_server(threads=2, name="menu-local-patch")
    host, port = s.base.split("//", 1)[1].rsplit(":", 1)
    # Several connections, so that both threads hold a copy (the kernel spreads the accepts).
    conns = [http.client.HTTPConnection(host, int(port), timeout=20) for _ in range(8)]

    def read(c):
        c.request("GET", menu_path(rid))
        resp = c.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return json.loads(body)

    try:
        for c in conns:
            read(c)
        before = counters(s)
        for c in conns:
            read(c)
        assert delta(counters(s), before)["local_hits"] >= 2, "the warm reads came from no copy: nothing was tested"
        for delta_cents in (7, -7, 13, -13):
            item, old, new = owner_patch(s.base, db, tokens, rid, delta_cents)
            for c in conns:
                got = price_in(read(c), item)
                assert got == new, "a read after the PATCH saw %d, not %d" % (got, new)
    finally:
        for c in conns:
            c.close()


def test_another_replicas_patch_shows_within_the_stated_age(start_server, db, tokens, rid):
    a = start_server(threads=1, name="replica-a")
    b = start_server(threads=1, name="replica-b")
    cb = Client(b.base)
    cb.get(menu_path(rid))
    wait_cached(rid)
    cb.get(menu_path(rid))  # b's thread now holds a copy
    item, old, new = owner_patch(a.base, db, tokens, rid, 11)
    try:
        t0 = time.monotonic()
        seen_new_at = None
        while time.monotonic() - t0 < LOCAL_MAX_AGE_S + 2.0:
            got = price_in(assert_status(cb.get(menu_path(rid)), 200), item)
            if got == new:
                seen_new_at = time.monotonic() - t0
                break
            assert got == old, got
            time.sleep(0.02)
        assert seen_new_at is not None, "replica b never showed replica a's PATCH"
        # The copy's age bounds the lag (plus a margin for this loaded machine's scheduling).
        assert seen_new_at <= LOCAL_MAX_AGE_S + 0.5, "replica b served the old price for %.2f s" % seen_new_at
        for _ in range(20):
            assert price_in(assert_status(cb.get(menu_path(rid)), 200), item) == new
    finally:
        owner_patch(a.base, db, tokens, rid, -11)


def test_redis_mode_keeps_no_copies(cached_server, rid):
    s = cached_server
    c = Client(s.base)
    c.get(menu_path(rid))
    wait_cached(rid)
    before, gets0 = counters(s), redis_calls("get")
    for _ in range(N_SEQUENTIAL):
        assert c.get(menu_path(rid)).headers.get("X-Cache") == "hit"
    d = delta(counters(s), before)
    assert d["hits"] == N_SEQUENTIAL and d["local_hits"] == 0, d
    assert redis_calls("get") - gets0 >= N_SEQUENTIAL
