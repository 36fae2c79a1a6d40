"""Slow clients (slowloris style) must not exhaust the server.

Hundreds of connections send their request headers, or their body, one byte
at a time. h2o's HTTP/1 request timeout (--header-timeout-ms, set in
common/runtime/server.c) bounds how long a request may take to arrive however it is
paced, so the server closes every one of them; no handler runs for a request
that never completed; and requests from normal clients are served all along.
"""

import socket
import time

import requests

from hplib.client import assert_status
from load import wait_until

HEADER_TIMEOUT_MS = 1000
SLOW_HEADERS = 150
SLOW_BODIES = 50
TRICKLE_S = 0.2
# Bound on the whole trickle: the server must have closed everything well before.
TRICKLE_LIMIT_S = 15.0


def _open(port, head):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(head)
    s.setblocking(False)
    return s


def _closed(sock):
    """True once the server has closed the connection (EOF or reset)."""
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_headers_and_bodies(start_server, cast, record):
    s = start_server("slow", threads=2, env={"HOTPLATE_HEADER_TIMEOUT_MS": str(HEADER_TIMEOUT_MS)})
    fds_before = requests.get(s.admin_base + "/debug/perf?section=process", timeout=5).json()["process"]["fds"]
    socks = [_open(s.port, b"GET /restaurants/%d HTTP/1.1\r\nHost: x\r\n" % cast.rid) for _ in range(SLOW_HEADERS)]
    socks += [
        _open(s.port, b"POST /cart/quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{")
        for _ in range(SLOW_BODIES)
    ]
    open_ = set(range(len(socks)))
    served = []
    t0 = time.monotonic()
    try:
        while open_ and time.monotonic() - t0 < TRICKLE_LIMIT_S:
            for i in list(open_):
                if _closed(socks[i]):
                    open_.discard(i)
                    continue
                try:
                    socks[i].send(b"X-Slow: 1\r\n" if i < SLOW_HEADERS else b" ")
                except OSError:
                    open_.discard(i)
            # A normal client is served while the slow ones hold their sockets.
            r = requests.get(s.base + "/restaurants/%d" % cast.rid, timeout=5)
            served.append(r.status_code)
            time.sleep(TRICKLE_S)
        elapsed = time.monotonic() - t0
    finally:
        for sk in socks:
            sk.close()

    assert not open_, "%d slow connections still open after %.0f s" % (len(open_), TRICKLE_LIMIT_S)
    assert served and all(st == 200 for st in served), "normal requests failed beside the slow ones: %s" % served
    assert s.alive()
    # No request ever reached a handler: h2o closed them before they were complete.
    lines = [l for l in s.stdout_lines() if '"msg":"request"' in l]
    assert not any('"route":"/cart/quote"' in l for l in lines), "a slow body reached the quote handler"
    # The sockets are released, so the descriptors return to where they were.
    assert wait_until(
        lambda: requests.get(s.admin_base + "/debug/perf?section=process", timeout=5).json()["process"]["fds"] <= fds_before + 5, 10
    ), "file descriptors not released after the slow clients were closed"
    assert_status(requests.get(s.base + "/healthz", timeout=5), 200)
    assert elapsed < TRICKLE_LIMIT_S
    record(
        fault="slow clients: %d connections trickling headers and %d trickling bodies, a byte every %.1f s"
        % (SLOW_HEADERS, SLOW_BODIES, TRICKLE_S),
        load="one normal client beside them; --header-timeout-ms %d" % HEADER_TIMEOUT_MS,
        requests=len(served),
        all_closed_after_s=round(elapsed, 1),
        lost=0,
        duplicates=0,
    )
