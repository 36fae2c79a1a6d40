"""The test suites' HTTP client and what they assert about every response.

Client sends each request on a fresh connection with a hard timeout, so a
hung server fails a test instead of hanging it, and requests spread over the
server's SO_REUSEPORT listeners like independent clients. assert_error checks
the documented error shape {"error": {"code", "message"}}; describe() turns a
response into the paragraph an assertion message shows.

Uses python3-requests (the tests' Response objects); the load tests talk to
the server through hplib.server.Server.request() instead.
"""

import json
import re
import uuid
from urllib.parse import urlencode

import requests

# Hard bound on any single HTTP exchange with the server under test.
HTTP_TIMEOUT = 10.0

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


class Client:
    """A tiny HTTP client bound to one server (base URL) and, optionally, one bearer token."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def as_(self, token):
        return Client(self.base, token)

    def headers(self, token=None, extra=None):
        h = {}
        t = token if token is not None else self.token
        if t:
            h["Authorization"] = "Bearer " + t
        if extra:
            h.update(extra)
        return h

    def request(self, method, path, *, json_body=None, data=None, headers=None, token=None, timeout=HTTP_TIMEOUT, raw_headers=False):
        h = headers if raw_headers else self.headers(token, headers)
        if json_body is not None:
            data = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        elif data is not None:
            h.setdefault("Content-Type", "application/json")
        return requests.request(method, self.base + path, data=data, headers=h, timeout=timeout, allow_redirects=False)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        if isinstance(body, (bytes, bytearray)):
            return self.request("POST", path, data=bytes(body), **kw)
        return self.request("POST", path, json_body=body, **kw)

    def patch(self, path, body=None, **kw):
        if isinstance(body, (bytes, bytearray)):
            return self.request("PATCH", path, data=bytes(body), **kw)
        return self.request("PATCH", path, json_body=body, **kw)

    def order(self, body, key=None, **kw):
        """POST /orders with an Idempotency-Key (a fresh one unless given)."""
        extra = dict(kw.pop("headers", None) or {})
        extra["Idempotency-Key"] = key if key is not None else new_key()
        return self.post("/orders", body, headers=extra, **kw)


def new_key():
    return "e2e-" + uuid.uuid4().hex


def describe(r):
    """One-paragraph description of a response, for assertion messages."""
    body = r.text
    if len(body) > 600:
        body = body[:600] + "...(%d bytes)" % len(r.content)
    return "%s %s -> %s %s\nheaders: %s\nbody: %s" % (
        r.request.method,
        r.request.url,
        r.status_code,
        r.reason,
        dict(r.headers),
        body,
    )


def body_json(r):
    try:
        return r.json()
    except ValueError:
        raise AssertionError("response body is not JSON:\n" + describe(r))


def assert_status(r, status):
    assert r.status_code == status, "expected %s\n%s" % (status, describe(r))
    return body_json(r) if r.content else None


def perf(server, sections=None):
    """The server's GET /debug/perf on its admin listener, as a dict: every section, or the comma-separated ones named."""
    params = {"section": sections} if sections else None
    return assert_status(requests.get(server.admin_base + "/debug/perf", params=params, timeout=HTTP_TIMEOUT), 200)


def assert_error(r, status, code=None):
    """Asserts an error response: the status, the documented body shape
    {"error": {"code": str, "message": str}}, and the code (a string or a set
    of acceptable strings). `status` may also be a set. Returns the code."""
    statuses = status if isinstance(status, (set, frozenset, tuple, list)) else {status}
    assert r.status_code in statuses, "expected status %s%s\n%s" % (
        sorted(statuses),
        " code %s" % (code,) if code else "",
        describe(r),
    )
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), "error Content-Type %r\n%s" % (ctype, describe(r))
    b = body_json(r)
    assert isinstance(b, dict) and set(b) == {"error"}, "bad error shape\n" + describe(r)
    e = b["error"]
    assert isinstance(e, dict) and {"code", "message"} <= set(e), "bad error shape\n" + describe(r)
    assert isinstance(e["code"], str) and e["code"], describe(r)
    assert isinstance(e["message"], str) and e["message"], "empty message\n" + describe(r)
    if code is not None:
        codes = code if isinstance(code, (set, frozenset, tuple, list)) else {code}
        assert e["code"] in codes, "expected code %s\n%s" % (sorted(codes), describe(r))
    assert r.headers.get("X-Request-Id"), "no X-Request-Id on error\n" + describe(r)
    return e["code"]


def walk_pages(client, path, params, key, limit, max_pages=500):
    """Follows next_cursor from the first page to the end. Returns the list of
    items and the number of pages; fails on a loop or an unbounded walk."""
    items = []
    cursor = None
    seen_cursors = set()
    pages = 0
    while True:
        q = dict(params)
        q["limit"] = str(limit)
        if cursor is not None:
            q["cursor"] = cursor
        r = client.get(path + "?" + urlencode(q))
        b = assert_status(r, 200)
        assert set(b) >= {key, "next_cursor"}, describe(r)
        page = b[key]
        assert isinstance(page, list) and len(page) <= limit, describe(r)
        items.extend(page)
        pages += 1
        cursor = b["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor, describe(r)
        assert page, "empty page with a next_cursor\n" + describe(r)
        assert cursor not in seen_cursors, "cursor repeated: " + cursor
        seen_cursors.add(cursor)
        assert pages < max_pages, "pagination did not end after %d pages" % pages
    return items, pages
