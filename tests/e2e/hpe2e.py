"""Helpers for the hotplate end-to-end suite.

The suite drives the real server binary against the private PostgreSQL and
Redis that `make test` brings up. This module holds what every test file
needs: starting and stopping a server process (with its logs captured to
files), a small HTTP client with hard timeouts, a thin PostgreSQL helper, the
error-shape assertion, and the database snapshot that proves a rejected
checkout wrote nothing.

Every wait here has a bound: HTTP calls carry a timeout, process waits carry a
timeout, and SQL statements run under statement_timeout.
"""

import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg2
import psycopg2.extras
import requests

# Hard bound on any single HTTP exchange with the server under test.
HTTP_TIMEOUT = 10.0

# Every server process started by the suite, so that a failing test can show
# their log tails and the watchdog can kill them.
SERVERS = []
_SERVERS_LOCK = threading.Lock()

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

# Server flags given to every server the suite starts, on top of the
# per-test ones. Empty by default; HOTPLATE_E2E_FLAGS ("a=1 b=2") adds more.
EXTRA_FLAGS = [f for f in os.environ.get("HOTPLATE_E2E_FLAGS", "").split() if f]


def arm_watchdog(config, suite, env_name, default_s, cleanup):
    """Bounds a whole suite run: after $env_name (or default_s) seconds it
    prints the servers' log tails, calls cleanup (which must stop every process
    the suite started) and exits 3, so a hung test can never hang CI."""
    deadline = int(os.environ.get(env_name, str(default_s)))

    def fire():
        # pytest holds fd 2 while a test runs, and os._exit would drop what it
        # captured: give the terminal back first so the report is seen.
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            try:
                capman.suspend_global_capture(in_=True)
            except Exception:
                pass
        sys.stderr.write("\n*** hotplate %s: run exceeded %ds, stopping everything ***\n" % (suite, deadline))
        for s in list(SERVERS):
            try:
                sys.stderr.write(s.log_report(20) + "\n")
            except Exception:
                pass
        try:
            cleanup()
        finally:
            sys.stderr.flush()
            os._exit(3)

    t = threading.Timer(deadline, fire)
    t.daemon = True
    t.start()


def kill_servers():
    """Stops every server the suite started, whatever state each is in."""
    for s in list(SERVERS):
        try:
            s.kill()
        except Exception:
            pass


def log_sections(t0, keep=()):
    """The (title, text) report sections of a failed test: the log tails of
    the servers it started (at or after t0) and of the long-lived ones named
    in keep."""
    return [("hotplate logs: " + s.name, s.log_report()) for s in list(SERVERS) if s.name in keep or (s.started_at or 0) >= t0]


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=40, max_bytes=64 * 1024):
    """Returns the last `lines` lines of a file (at most max_bytes read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        return "<unreadable: %s>" % e
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """One `hotplate serve` process listening on 127.0.0.1:<free port>.

    stdout and stderr go to files in `workdir`. start() returns once
    GET /readyz answers 200 (or, with wait_ready=False, once GET /healthz
    answers at all), and raises with the log tails if the process dies or
    does not get there in time. stop() sends SIGTERM and returns the exit code.
    """

    def __init__(self, binary, workdir, name="server", threads=2, flags=(), env=None, ready_timeout=30.0):
        self.binary = binary
        self.workdir = str(workdir)
        self.name = name
        self.threads = threads
        self.flags = list(flags) + EXTRA_FLAGS
        self.env_overrides = dict(env or {})
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.admin_port = None
        self.returncode = None
        os.makedirs(self.workdir, exist_ok=True)
        self.stdout_path = os.path.join(self.workdir, name + ".stdout.log")
        self.stderr_path = os.path.join(self.workdir, name + ".stderr.log")
        self.started_at = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_base(self):
        """The admin listener (debug and metrics routes)."""
        return "http://127.0.0.1:%d" % self.admin_port

    def argv(self):
        a = [self.binary, "serve", "--listen", "127.0.0.1:%d" % self.port, "--admin-listen", "127.0.0.1:%d" % self.admin_port,
             "--threads", str(self.threads)]
        for f in self.flags:
            a += ["--flag", f]
        return a

    def start(self, wait_ready=True):
        last_err = None
        for attempt in range(3):
            self.port = free_port()
            self.admin_port = free_port()
            while self.admin_port == self.port:  # two draws can return the same just-freed port
                self.admin_port = free_port()
            env = dict(os.environ)
            env.update(self.env_overrides)
            self._out = open(self.stdout_path, "ab")
            self._err = open(self.stderr_path, "ab")
            banner = ("--- %s attempt %d: %s\n" % (self.name, attempt, " ".join(self.argv()))).encode()
            self._err.write(banner)
            self._err.flush()
            self.proc = subprocess.Popen(
                self.argv(), stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir
            )
            self.started_at = time.monotonic()
            with _SERVERS_LOCK:
                SERVERS.append(self)
            try:
                self._wait_up(wait_ready)
                return self
            except _PortTaken as e:
                last_err = e
                continue
        raise RuntimeError("%s could not bind a port: %s" % (self.name, last_err))

    def _wait_up(self, wait_ready):
        deadline = time.monotonic() + self.ready_timeout
        path = "/readyz" if wait_ready else "/healthz"
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self._close_files()
                err = tail(self.stderr_path, 20)
                if "in use" in err.lower() and "--- %s attempt" % self.name in err:
                    raise _PortTaken(err)
                raise RuntimeError(
                    "%s exited with %s before it was ready\n--- stderr tail:\n%s\n--- stdout tail:\n%s"
                    % (self.name, rc, err, tail(self.stdout_path, 20))
                )
            try:
                r = requests.get(self.base + path, timeout=1.0)
                last = "%s %s" % (r.status_code, r.text[:200])
                if r.status_code == 200 or not wait_ready:
                    return
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError(
            "%s not ready within %.0fs (last %s: %s)\n--- stderr tail:\n%s"
            % (self.name, self.ready_timeout, path, last, tail(self.stderr_path, 20))
        )

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20.0):
        """SIGTERM, wait up to `timeout`, SIGKILL if needed; returns the exit code
        (negative for a signal, or None when it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.returncode = None
                self._close_files()
                return None
        else:
            self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f is not None and not f.closed:
                f.close()

    def log_report(self, lines=30):
        return "--- %s (%s) stdout tail:\n%s\n--- %s stderr tail:\n%s" % (
            self.name,
            "running" if self.alive() else "exit %s" % self.returncode,
            tail(self.stdout_path, lines),
            self.name,
            tail(self.stderr_path, lines),
        )

    def stdout_lines(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class _PortTaken(Exception):
    pass


class Client:
    """A tiny HTTP client bound to one server, with a hard timeout on every call.

    Each call opens a fresh connection unless `session` is given, so requests
    spread over the server's SO_REUSEPORT listeners like independent clients.
    """

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


def token_hash(token):
    return hashlib.sha256(token.encode()).digest()


class DB:
    """An autocommit psycopg2 connection with a statement timeout."""

    def __init__(self, url, autocommit=True, statement_timeout_ms=15000, application_name="hotplate-e2e"):
        self.conn = psycopg2.connect(
            url,
            connect_timeout=5,
            application_name=application_name,
            options="-c statement_timeout=%d" % statement_timeout_ms,
        )
        self.conn.autocommit = autocommit

    def all(self, sql, args=None):
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as c:
            c.execute(sql, args)
            return [dict(r) for r in c.fetchall()]

    def one(self, sql, args=None):
        rows = self.all(sql, args)
        assert len(rows) == 1, "expected one row from %s %s, got %d" % (sql, args, len(rows))
        return rows[0]

    def val(self, sql, args=None):
        with self.conn.cursor() as c:
            c.execute(sql, args)
            row = c.fetchone()
            return None if row is None else row[0]

    def exec(self, sql, args=None):
        with self.conn.cursor() as c:
            c.execute(sql, args)
            return c.rowcount

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


SNAPSHOT_SQL = """
SELECT (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM order_items) AS order_items,
       (SELECT count(*) FROM payments) AS payments,
       (SELECT count(*) FROM order_events) AS order_events,
       (SELECT max(id) FROM orders) AS max_order_id,
       (SELECT md5(coalesce(string_agg(id::text || ':' || coalesce(stock::text, '-'), ',' ORDER BY id), ''))
          FROM menu_items) AS stock_digest
"""


def checkout_snapshot(db):
    """What a rejected checkout must leave untouched: row counts of orders,
    order_items, payments and order_events, and every item's stock."""
    return db.one(SNAPSHOT_SQL)


def minute_now(db):
    """The current minute after midnight UTC, by the database's clock."""
    return int(db.val("SELECT (extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC'))::int"))


def is_open(open_minute, close_minute, m):
    """Opening hours as the schema defines them (migrations/0003_is_open):
    minutes after midnight UTC, close < open meaning the restaurant closes
    after midnight, and equal minutes meaning open around the clock."""
    if open_minute < close_minute:
        return open_minute <= m < close_minute
    return m >= open_minute or m < close_minute


def hhmm(minutes):
    return "%02d:%02d" % (minutes // 60, minutes % 60)


def closed_window(m):
    """(open_minute, close_minute) for a two-hour opening that starts two hours
    from minute `m`, so the restaurant is closed at `m` (and for the next two
    hours). Both values respect the schema's ranges."""
    o = (m + 120) % 1440
    c = (m + 240) % 1440
    if c == 0:
        c = 1440
    assert not is_open(o, c, m)
    return o, c


def refresh_menu(base, db, restaurant_id, owner_token):
    """Makes the server drop its cached menu of a restaurant.

    Direct SQL edits bypass the server, so its Redis cache may still hold the
    pre-edit menu. The documented way to invalidate it is an owner's PATCH,
    which "bumps the menu version and invalidates the cached menu before
    answering": this sets one item's price to its current value."""
    item = db.one("SELECT id, price_cents FROM menu_items WHERE restaurant_id = %s ORDER BY id LIMIT 1", (restaurant_id,))
    r = Client(base, owner_token).patch(
        "/restaurants/%d/menu/items/%d" % (restaurant_id, item["id"]), {"price_cents": item["price_cents"]}
    )
    assert r.status_code == 200, "menu refresh PATCH failed\n" + describe(r)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


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


def urlencode(q):
    from urllib.parse import urlencode as _u

    return _u(q)


# ---------------------------------------------------------------- pricing checks

BREAKDOWN = [
    "subtotal_cents",
    "discount_cents",
    "tax_cents",
    "delivery_fee_cents",
    "service_fee_cents",
    "small_order_fee_cents",
    "tip_cents",
    "total_cents",
]


def haversine_m(lat1, lon1, lat2, lon2):
    r = 6371000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def expected_lines(db, body):
    out = []
    for line in body["items"]:
        item = db.one("SELECT name, price_cents, category FROM menu_items WHERE id = %s", (line["item_id"],))
        mids = line.get("modifier_ids", [])
        delta = 0
        for mid in mids:
            delta += db.val("SELECT price_delta_cents FROM item_modifiers WHERE id = %s", (mid,))
        unit = max(0, item["price_cents"] + delta)
        out.append(
            {
                "item_id": line["item_id"],
                "name": item["name"],
                "quantity": line["quantity"],
                "unit_price_cents": unit,
                "line_total_cents": unit * line["quantity"],
                "modifier_ids": mids,
                "category": item["category"],
            }
        )
    return out


def best_discount(db, rid, lines):
    """The best single active promotion, as services/order_total.h describes it."""
    best = 0
    for p in db.all("SELECT kind, value, min_subtotal_cents, category FROM promotions WHERE restaurant_id = %s AND active", (rid,)):
        eligible = sum(l["line_total_cents"] for l in lines if p["category"] is None or l["category"] == p["category"])
        if eligible == 0 or eligible < p["min_subtotal_cents"]:
            continue
        d = eligible * p["value"] / 10000.0 if p["kind"] == "percent" else p["value"]
        best = max(best, min(d, eligible))
    return best


def check_breakdown(db, body, q, user_id, rid):
    """Checks a quote (or an order) against the cart and the database."""
    for k in BREAKDOWN:
        assert isinstance(q.get(k), int) and q[k] >= 0, "%s missing or not a non-negative integer: %s" % (k, q)
    exp = expected_lines(db, body)
    key = "lines" if "lines" in q else "items"
    got = q[key]
    assert len(got) == len(exp), q
    for g, e in zip(got, exp):
        for k in ("item_id", "name", "quantity", "unit_price_cents", "line_total_cents"):
            assert g[k] == e[k], "line %s: %s got %r, expected %r" % (e["item_id"], k, g[k], e[k])
        assert sorted(g.get("modifier_ids") or []) == sorted(e["modifier_ids"]), (g, e)
    assert q["subtotal_cents"] == sum(e["line_total_cents"] for e in exp)
    assert q["discount_cents"] <= q["subtotal_cents"]
    assert q["tip_cents"] == body.get("tip_cents", 0)
    assert q["total_cents"] == (
        q["subtotal_cents"]
        - q["discount_cents"]
        + q["tax_cents"]
        + q["delivery_fee_cents"]
        + q["service_fee_cents"]
        + q["small_order_fee_cents"]
        + q["tip_cents"]
    ), "total is not subtotal - discount + tax + fees + tip: %s" % q
    # Tax: the restaurant city's rate on (subtotal - discount), rounded half up
    # (services/order_total.h; docs/API.md is silent on the formula).
    rate = db.val("SELECT c.tax_rate_bp FROM restaurants r JOIN cities c ON c.id = r.city_id WHERE r.id = %s", (rid,))
    base = q["subtotal_cents"] - q["discount_cents"]
    assert q["tax_cents"] == (base * rate + 5000) // 10000, "tax %d on %d at %d bp" % (q["tax_cents"], base, rate)
    # Discount: the best eligible promotion (rounding may differ by a cent).
    assert abs(q["discount_cents"] - best_discount(db, rid, exp)) <= 1, "discount %d, best promotion gives %.2f" % (
        q["discount_cents"],
        best_discount(db, rid, exp),
    )
    return exp
