"""Two hotplate replicas behind Debian's nginx (deploy/nginx, as test_nginx.py
runs it), one SIGKILLed in the middle of a checkout load, with clients that
retry the way the API asks them to: the same Idempotency-Key again after a
502, 503 or 504, or a connection that closed without an answer.

What must hold (issue 17, item 5): nginx never replays a POST by itself (a
checkout in flight on the dead replica comes back 502 and it is the client
that retries), the retries lose nothing and duplicate nothing (every key
ends with exactly one order, and every 201 names an order that exists with
that key), and the survivor carries the load on its own after the kill.
"""

import re
import shutil
import threading
import time
import uuid

import pytest
import requests

import daemons
from hplib.db import DB
from hplib.record import append_row

CLIENTS = 4
RETRY_STATUSES = (502, 503, 504)
MAX_ATTEMPTS = 30
LOAD_AFTER_KILL_S = 2.0
MAX_SECONDS = 60
# How long the load may take to have served 10 orders with one in flight on replica a: in make test the four lanes
# share two cores, and a fresh-clone run once served only 10 orders in 15 s.
READY_S = 30


def in_flight(server):
    text = requests.get(server.admin_base + "/metrics", timeout=5).text
    m = re.search(r'^hotplate_http_requests_in_flight\{method="POST",route="/orders"\} (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


def test_sigkill_one_replica_under_checkout_load_loses_and_duplicates_nothing(start_server, tmp_path, shop, live_env):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (deploy/deps.sh installs nginx-light)")
    a = start_server(threads=1, name="replica-a", flags=["payment_latency_ms=30"])
    b = start_server(threads=1, name="replica-b", flags=["payment_latency_ms=30"])
    ng, lb = daemons.start_nginx(tmp_path, a, b)
    run = uuid.uuid4().hex[:10]
    stop = threading.Event()
    lock = threading.Lock()
    finals = {}  # key -> (status, order id or None, attempts)
    retried = []  # (key, status or error) of every attempt that asked for a retry
    answered = []  # (client, monotonic time) of every 201
    attempts = [0]
    body = {"restaurant_id": shop["rid"], "items": [{"item_id": shop["item"], "quantity": 1}]}
    t_end = time.monotonic() + MAX_SECONDS

    def client(idx):
        s = requests.Session()
        n = 0
        while not stop.is_set() and time.monotonic() < t_end:
            key = "replica-%s-%d-%d" % (run, idx, n)
            n += 1
            hdr = {"Authorization": "Bearer " + shop["token"], "Idempotency-Key": key}
            final = None
            for attempt in range(1, MAX_ATTEMPTS + 1):
                with lock:
                    attempts[0] += 1
                try:
                    r = s.post(lb + "/orders", json=body, headers=hdr, timeout=15)
                except requests.RequestException as e:
                    with lock:
                        retried.append((key, type(e).__name__))
                    s = requests.Session()
                    time.sleep(0.05)
                    continue
                if r.status_code in RETRY_STATUSES:
                    with lock:
                        retried.append((key, r.status_code))
                    time.sleep(0.05)
                    continue
                final = (r.status_code, r.json().get("id") if r.status_code == 201 else r.text[:200], attempt)
                if r.status_code == 201:
                    with lock:
                        answered.append((idx, time.monotonic()))
                break
            with lock:
                finals[key] = final

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    try:
        for th in threads:
            th.start()
        # Kill a while one of its checkouts is in flight, once both replicas have served some.
        # One reading of replica a's in-flight gauge decides, and the assertion checks that reading: asking /metrics again
        # would race the checkout it saw, which can finish in the tens of milliseconds one /metrics answer takes under load.
        deadline = time.monotonic() + READY_S
        seen = 0
        while time.monotonic() < deadline:
            with lock:
                done = sum(1 for f in finals.values() if f and f[0] == 201)
            seen = in_flight(a) if done >= 10 else 0
            if seen >= 1:
                break
            time.sleep(0.005)
        assert done >= 10 and seen >= 1, "the load never had a checkout in flight on replica a"
        b_before = daemons.route_count(b, "POST", "/orders")
        a.kill()
        t_kill = time.monotonic()
        time.sleep(LOAD_AFTER_KILL_S)
        stop.set()
        for th in threads:
            th.join(MAX_SECONDS)
        assert not any(th.is_alive() for th in threads), "a client did not finish"
        b_after = daemons.route_count(b, "POST", "/orders")
    finally:
        stop.set()
        ng.stop()

    # Every key ended with a 201 (the survivor answered its retries), none gave up.
    bad = {k: f for k, f in finals.items() if f is None or f[0] != 201}
    assert not bad, "keys that did not end in a 201: %s" % list(bad.items())[:5]
    # nginx did not replay the in-flight POST: the client saw the failure and retried.
    assert retried, "no attempt failed when replica a died: the kill tested nothing"
    # The survivor carried the load after the kill.
    assert b_after - b_before >= CLIENTS, (b_before, b_after)
    assert time.monotonic() - t_kill >= LOAD_AFTER_KILL_S

    db = DB(live_env["HOTPLATE_PG_URL"])
    try:
        rows = db.all("SELECT idempotency_key AS key, id FROM orders WHERE idempotency_key LIKE %s", ("replica-%s-%%" % run,))
    finally:
        db.close()
    by_key = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row["id"])
    dup = {k: ids for k, ids in by_key.items() if len(ids) > 1}
    assert not dup, "keys with more than one order: %s" % list(dup.items())[:5]
    lost = {k: f[1] for k, f in finals.items() if by_key.get(k) != [f[1]]}
    assert not lost, "201s whose order is missing or another: %s" % list(lost.items())[:5]
    assert set(by_key) == set(finals), "orders of keys no client finished: %s" % sorted(set(by_key) - set(finals))[:5]

    # docs/RELIABILITY.md's row (tests/faults/record.py runs this test too). Recovered: the kill until every client
    # had a 201 again, so the slowest client's retries through nginx to the survivor.
    firsts = [min((t for c, t in answered if c == i and t > t_kill), default=None) for i in range(CLIENTS)]
    append_row("test_sigkill_one_replica_under_checkout_load_loses_and_duplicates_nothing",
               fault="one of two hotplate replicas behind nginx SIGKILLed mid-checkout (tests/monitoring)",
               load="%d clients, POST /orders through nginx, retried with the same Idempotency-Key, payment latency 30 ms"
               % CLIENTS,
               requests=attempts[0], orders_checked=len(finals), lost=len(lost), duplicates=len(dup),
               retried_attempts=len(retried), survivor_orders_after_kill=b_after - b_before,
               recovered_s=round(max(firsts) - t_kill, 2) if None not in firsts else None)
