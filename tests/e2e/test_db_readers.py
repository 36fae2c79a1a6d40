"""Several pipelined read connections per thread (--db-readers): a read stuck
behind a lock no longer holds up the reads queued after it.

A worker thread sends its reads pipelined on its read connection, and one
PostgreSQL backend runs them one after another, so one read that waits (here
on another session's ACCESS EXCLUSIVE lock on promotions, which a quote's
pricing reads) holds up every read behind it on that connection. With two
connections, runtime/db.c sends a new read to the first one that is idle or
whose oldest outstanding read is younger than 2 ms, else to the one whose
oldest outstanding read is the youngest: cheap reads stay batched on the
first connection, and a read behind a stuck one spills to the next, which the
pool section counts (read_spills, read_batches).

The test holds the lock itself for as long as it needs, so nothing here
depends on timing: with one read connection, a GET of a restaurant sent while
the quote waits can only be answered after the quote has given up
(lock_timeout, 504), seconds later; with two, it is answered while the quote
still waits.
"""
import os
import threading
import time

import psycopg2
import pytest
import requests

from hplib.client import assert_status, perf


def pool(s):
    return perf(s, "pool")["pool"]


def wait_for_readers(s, timeout=10):
    # /readyz needs one prepared read connection per thread; a second one still preparing when the test takes its
    # lock would wait on the lock itself (PREPARE of the pricing statements reads promotions), and the GET would
    # find no other connection to go to.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = pool(s)
        if p["readers_ready"] == p["readers"]:
            return
        time.sleep(0.02)
    pytest.fail("the read connections were never all prepared: %s" % pool(s))


def wait_for_lock_waiter(db, since, timeout=10):
    # A backend of this test's server waiting for the test's own lock on promotions, not any hotplate backend waiting
    # for some lock: one left waiting by an earlier test's server made a fresh-clone run send the GET before the quote's
    # read, and so did a backend of another server still running in the suite, waiting on promotions too. The server's
    # backends are the hotplate ones that started after `since`, taken just before the server started.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if db.val("""SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE NOT l.granted AND l.relation = 'promotions'::regclass AND a.application_name = 'hotplate'
                        AND a.backend_start >= %s""", (since,)):
            return
        time.sleep(0.02)
    pytest.fail("no hotplate backend waited on the lock")


@pytest.mark.parametrize("readers", [1, 2])
def test_a_read_behind_a_lock_holds_up_only_its_own_connection(start_server, world, db, mk_cart, readers):
    # One worker thread, so the quote and the GET share its read connections; lock_timeout long enough that the
    # quote waits as long as the test holds the lock, and no longer than the test's bounds.
    since = db.val("SELECT clock_timestamp()")
    s = start_server(threads=1, name="readers-%d" % readers,
                     env={"HOTPLATE_DB_READERS": str(readers), "HOTPLATE_LOCK_TIMEOUT_MS": "3000"})
    body = mk_cart()
    headers = {"Authorization": "Bearer " + world.a["token"]}
    quote = {}

    def send_quote():
        r = requests.post(s.base + "/cart/quote", json=body, headers=headers, timeout=30)
        quote["status"], quote["done"] = r.status_code, time.monotonic()

    wait_for_readers(s)
    assert pool(s)["readers"] == readers
    spills_before = pool(s)["read_spills"]
    lock = psycopg2.connect(os.environ["HOTPLATE_PG_URL"], application_name="schema-migration")
    t = threading.Thread(target=send_quote)
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE promotions IN ACCESS EXCLUSIVE MODE")
        t.start()
        wait_for_lock_waiter(db, since)
        sent = time.monotonic()
        r = requests.get(s.base + "/restaurants/%d" % world.rid, timeout=30)
        waited = time.monotonic() - sent
        assert_status(r, 200)
        if readers == 2:
            # Answered on the other connection while the quote still waits: the lock is still ours.
            assert "done" not in quote, quote
            # The quote's stuck read made the first connection's head old, so the GET's read spilled past it.
            assert pool(s)["read_spills"] > spills_before
        else:
            assert pool(s)["read_spills"] == spills_before == 0
    finally:
        lock.rollback()
        lock.close()
        t.join(timeout=30)
    if readers == 1:
        # Queued behind the quote's read: answered only when the quote gave up on the lock (lock_timeout, 3 s after
        # its read began; the GET was sent moments after that read started to wait).
        assert quote["status"] == 504 and waited >= 1.0, (quote, waited)
    else:
        # Once the lock went, the quote was priced.
        assert quote["status"] == 200, quote


def test_the_reads_of_one_request_stay_in_one_batch_on_the_first_connection(start_server, world, mk_cart):
    # A quote sends its four pricing reads in one loop iteration. With two read connections they still go out as
    # one batch on the first one, which is keeping up (its head is younger than 2 ms), rather than split across
    # both: a second backend pays only when the first is the limit, and two shallow batches cost more system calls
    # than one deep one. One worker thread, and nothing else loads the server, so no read has to wait.
    s = start_server(threads=1, name="readers-batch", env={"HOTPLATE_DB_READERS": "2"})
    wait_for_readers(s)
    headers = {"Authorization": "Bearer " + world.a["token"]}
    body = mk_cart()
    assert_status(requests.post(s.base + "/cart/quote", json=body, headers=headers, timeout=30), 200)  # warm
    before = pool(s)
    n = 20
    for _ in range(n):
        assert_status(requests.post(s.base + "/cart/quote", json=body, headers=headers, timeout=30), 200)
    after = pool(s)
    assert after["read_spills"] == before["read_spills"], (before, after)
    # At most two batches a quote: the token look-up (when it is not cached) and the four pricing reads together.
    # Split across two connections, the pricing reads alone would take two or three.
    assert after["read_batches"] - before["read_batches"] <= 2 * n, (before, after)
