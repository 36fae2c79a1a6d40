"""HTTP-level abuse over raw sockets: the server answers or closes, never dies,
and keeps serving everyone else. Also keep-alive reuse across error answers."""

import socket

import pytest
import requests

from hplib.client import Client, assert_error, assert_status


def raw_exchange(port, data, read_timeout=3.0):
    """Sends bytes, half-closes, and returns whatever comes back (bounded)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        s.settimeout(read_timeout)
        out = b""
        try:
            while len(out) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, OSError):
            pass
        return out
    finally:
        s.close()


CASES = {
    "junk-line": b"GARBAGE\r\n\r\n",
    "binary": bytes(range(256)) * 4,
    "bad-version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "huge-header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n",
    "many-headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n",
    "short-body": b"POST /cart/quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
    "bad-content-length": b"POST /cart/quote HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    "nonnumeric-content-length": b"POST /cart/quote HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    "bad-chunked": b"POST /cart/quote HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "huge-chunk-size": b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nIdempotency-Key: k\r\n\r\nffffffffffffffff\r\nabc",
    "http10-no-host": b"GET /healthz HTTP/1.0\r\n\r\n",
    "long-path": b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-path": b"GET /restaurants/1\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "encoded-slash": b"GET /restaurants/%2F1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "dotdot": b"GET /restaurants/../healthz/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_http_does_not_hurt(server, name):
    out = raw_exchange(server.port, CASES[name])
    if out:
        status_line = out.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1."), out[:200]
        code = int(status_line.split()[1])
        assert code < 500, "%s got %r" % (name, out[:300])
    if name == "http10-no-host":
        assert out.startswith(b"HTTP/1.") and b" 200 " in out.split(b"\r\n", 1)[0], out[:200]
    assert server.alive(), "server died on %s" % name
    assert requests.get(server.base + "/healthz", timeout=5).status_code == 200


def test_keepalive_across_errors(server, world):
    """One connection carries successes and every kind of 4xx in turn."""
    sess = requests.Session()
    c = Client(server.base)
    h = {"Authorization": "Bearer " + world.a["token"], "Content-Type": "application/json"}
    for _ in range(5):
        r = sess.get(server.base + "/healthz", timeout=5)
        assert r.status_code == 200
        assert sess.get(server.base + "/nope", timeout=5).status_code == 404
        assert sess.post(server.base + "/healthz", timeout=5).status_code == 405
        r = sess.post(server.base + "/cart/quote", data=b"{", headers=h, timeout=5)
        assert_error(r, 400, "bad_json")
        r = sess.get(server.base + "/restaurants/%d/menu" % world.rid, timeout=5)
        assert r.status_code == 200
        r = sess.post(server.base + "/cart/quote", data=b"[" * 50 + b"]" * 50, headers=h, timeout=5)
        assert_error(r, 400, "too_deep")
    assert_status(c.get("/readyz"), 200)


def test_many_idle_connections(server):
    """200 idle connections do not stop the server from answering."""
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        assert requests.get(server.base + "/healthz", timeout=5).status_code == 200
    finally:
        for s in socks:
            s.close()
    assert requests.get(server.base + "/healthz", timeout=5).status_code == 200
