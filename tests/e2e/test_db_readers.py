"""Several pipelined read connections per thread (--db-readers): a read stuck
behind a lock no longer holds up the reads queued after it.

A worker thread sends its reads pipelined on its read connection, and one
PostgreSQL backend runs them one after another, so one read that waits (here
on another session's ACCESS EXCLUSIVE lock on promotions, which a quote's
pricing reads) holds up every read behind it on that connection. With two
connections, runtime/db.c sends a new read to an idle one, or to the one
whose oldest outstanding read is the youngest.

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

from hplib.client import assert_status


def wait_for_lock_waiter(db, timeout=10):
    # A hotplate backend waiting for the test's own lock on promotions, not any hotplate backend waiting for some lock:
    # one left waiting by an earlier test's server made a fresh-clone run send the GET before the quote's read.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if db.val("""SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE NOT l.granted AND l.relation = 'promotions'::regclass AND a.application_name = 'hotplate'"""):
            return
        time.sleep(0.02)
    pytest.fail("no hotplate backend waited on the lock")


@pytest.mark.parametrize("readers", [1, 2])
def test_a_read_behind_a_lock_holds_up_only_its_own_connection(start_server, world, db, mk_cart, readers):
    # One worker thread, so the quote and the GET share its read connections; lock_timeout long enough that the
    # quote waits as long as the test holds the lock, and no longer than the test's bounds.
    s = start_server(threads=1, name="readers-%d" % readers,
                     env={"HOTPLATE_DB_READERS": str(readers), "HOTPLATE_LOCK_TIMEOUT_MS": "3000"})
    body = mk_cart()
    headers = {"Authorization": "Bearer " + world.a["token"]}
    quote = {}

    def send_quote():
        r = requests.post(s.base + "/cart/quote", json=body, headers=headers, timeout=30)
        quote["status"], quote["done"] = r.status_code, time.monotonic()

    lock = psycopg2.connect(os.environ["HOTPLATE_PG_URL"], application_name="schema-migration")
    t = threading.Thread(target=send_quote)
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE promotions IN ACCESS EXCLUSIVE MODE")
        t.start()
        wait_for_lock_waiter(db)
        sent = time.monotonic()
        r = requests.get(s.base + "/restaurants/%d" % world.rid, timeout=30)
        waited = time.monotonic() - sent
        assert_status(r, 200)
        if readers == 2:
            # Answered on the other connection while the quote still waits: the lock is still ours.
            assert "done" not in quote, quote
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
