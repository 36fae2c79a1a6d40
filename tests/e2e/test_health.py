"""Health, readiness, request ids, routing errors (404/405) and the request log."""

import json
import os
import re
import subprocess
import time

import pytest

from hplib.client import Client, assert_error, assert_status, describe
from hplib.process import free_port


def test_healthz(client):
    r = client.get("/healthz")
    assert assert_status(r, 200) == {"status": "ok"}
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)


def test_readyz(client):
    r = client.get("/readyz")
    assert assert_status(r, 200) == {"status": "ready", "postgres": "ok", "redis": "ok"}


def test_request_id_generated_and_unique(client):
    ids = set()
    for path in ("/healthz", "/readyz", "/restaurants?limit=1", "/no/such/route"):
        r = client.get(path)
        rid = r.headers.get("X-Request-Id")
        assert rid, "no X-Request-Id\n" + describe(r)
        # 16 hex digits of a per-thread sequence's hash, then 8 of the thread's seed (runtime/http.c).
        assert re.fullmatch(r"[0-9a-f]{24}", rid), describe(r)
        ids.add(rid)
    assert len(ids) == 4, "generated request ids repeat: %s" % ids
    assert len({rid[:16] for rid in ids}) == 4, ids


def test_server_header_on_answers_and_errors(client):
    # One Server header, added by runtime/http.c rather than by libh2o's sprintf of a configured name.
    for path in ("/healthz", "/restaurants/0", "/no/such/route"):
        r = client.get(path)
        assert r.raw.headers.getlist("Server") == ["hotplate"], describe(r)


@pytest.mark.parametrize("rid", ["abc", "e2e-req_1.2:3", "x" * 64])
def test_request_id_echoed(client, rid):
    r = client.get("/healthz", headers={"X-Request-Id": rid})
    assert r.headers.get("X-Request-Id") == rid, describe(r)
    r = client.get("/restaurants/0", headers={"X-Request-Id": rid})  # also on errors
    assert r.headers.get("X-Request-Id") == rid, describe(r)


@pytest.mark.parametrize("rid", ["x" * 65, "has space", 'quo"te', "new\\line", "<script>"])
def test_request_id_unsafe_not_echoed(client, rid):
    r = client.get("/healthz", headers={"X-Request-Id": rid})
    assert r.status_code == 200, describe(r)
    got = r.headers.get("X-Request-Id")
    assert got and got != rid, "unsafe request id echoed or missing\n" + describe(r)
    assert 1 <= len(got) <= 64


@pytest.mark.parametrize(
    "path",
    ["/", "/nope", "/restaurants/1/nope", "/restaurants/1/menu/items", "/orders/1/nope", "/users/1", "/healthz/x", "/cart"],
)
def test_unknown_route_404(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/readyz", "GET"),
        ("POST", "/restaurants", "GET"),
        ("DELETE", "/restaurants/1", "GET"),
        ("PUT", "/restaurants/1/menu", "GET"),
        ("GET", "/restaurants/1/menu/items/1", "PATCH"),
        ("DELETE", "/restaurants/1/menu/items/1", "PATCH"),
        ("GET", "/cart/quote", "POST"),
        ("GET", "/orders", "POST"),
        ("PUT", "/orders/1", "GET"),
        ("POST", "/orders/1", "GET"),
        ("GET", "/orders/1/events", "POST"),
        ("DELETE", "/users/1/orders", "GET"),
    ],
)
def test_wrong_method_405(client, method, path, allowed):
    r = client.request(method, path, data=b"{}")
    assert_error(r, 405, "method_not_allowed")
    allow = [m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()]
    assert allowed in allow, "Allow header does not list %s\n%s" % (allowed, describe(r))
    assert method not in allow, describe(r)


def test_sigterm_exit_zero_and_request_log(start_server):
    """A dedicated server: requests are logged as one JSON line each, with the
    documented fields, and SIGTERM ends the process with exit code 0."""
    s = start_server(threads=2, name="logcheck")
    c = Client(s.base)
    marks = {}
    for i, path in enumerate(["/healthz", "/restaurants?limit=2", "/no/such/route"]):
        rid = "e2e-log-%d-%d" % (i, time.time_ns() % 10**9)
        r = c.get(path, headers={"X-Request-Id": rid})
        marks[rid] = (path, r.status_code)
    rc = s.stop()
    assert rc == 0, "exit code on SIGTERM: %r\n%s" % (rc, s.log_report())
    logged = {}
    for line in s.stdout_lines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail("stdout line that looks like JSON is not JSON: %r" % line[:300])
        if obj.get("request_id") in marks:
            logged[obj["request_id"]] = obj
    missing = set(marks) - set(logged)
    assert not missing, "requests missing from the stdout log: %s\n%s" % (missing, s.log_report())
    for rid, obj in logged.items():
        path, status = marks[rid]
        for field in ("ts", "level", "request_id", "method", "route", "status", "duration_us", "db_us", "cache"):
            assert field in obj, "log line lacks %s: %s" % (field, obj)
        assert obj["method"] == "GET", obj
        assert obj["status"] == status, obj
        assert isinstance(obj["duration_us"], int) and obj["duration_us"] >= 0, obj
        assert isinstance(obj["db_us"], int) and 0 <= obj["db_us"], obj


def test_readyz_redis_down(start_server):
    """With Redis unreachable the process runs, /readyz says which dependency is
    down, and the menu is still served from PostgreSQL, with an X-Cache value
    from the documented set."""
    port = free_port()
    s = start_server(threads=1, name="redis-down", env={"HOTPLATE_REDIS_URL": "redis://127.0.0.1:%d" % port}, wait_ready=False)
    c = Client(s.base)
    assert assert_status(c.get("/healthz"), 200) == {"status": "ok"}
    deadline = time.monotonic() + 5
    # PostgreSQL connects asynchronously after start; wait until it is up, so only Redis is down.
    while True:
        r = c.get("/readyz")
        if (r.status_code == 503 and r.json().get("postgres") == "ok") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 503, describe(r)
    assert r.json() == {"status": "not_ready", "postgres": "ok", "redis": "down"}, describe(r)
    rid = c.get("/restaurants?limit=1").json()["restaurants"][0]["id"]
    r = c.get("/restaurants/%d/menu" % rid, timeout=10)
    assert r.status_code == 200, describe(r)
    # docs/API.md: with Redis failing, the menu comes from PostgreSQL and says so with X-Cache: error.
    assert r.headers.get("X-Cache") == "error", describe(r)
    assert s.alive()


def test_readyz_postgres_down(start_server):
    """With PostgreSQL unreachable the process runs, /healthz is 200, /readyz is
    503 naming postgres, and a database route fails with 503 db_unavailable."""
    port = free_port()
    url = "postgresql://hotplate@127.0.0.1:%d/hotplate?connect_timeout=2" % port
    s = start_server(threads=1, name="pg-down", env={"HOTPLATE_PG_URL": url}, wait_ready=False)
    c = Client(s.base)
    assert assert_status(c.get("/healthz"), 200) == {"status": "ok"}
    # Redis connects asynchronously on every thread; wait for it, so only PostgreSQL is down.
    deadline = time.monotonic() + 5
    while True:
        r = c.get("/readyz")
        if r.json().get("redis") == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 503, describe(r)
    assert r.json() == {"status": "not_ready", "postgres": "down", "redis": "ok"}, describe(r)
    assert_error(c.get("/restaurants/1", timeout=15), {503, 504}, {"db_unavailable", "db_timeout"})
    assert s.alive()


@pytest.mark.parametrize("flag", ["no_such_flag=1", "menu_cache=sometimes", "payment_failure_pct=101", "payment_latency_ms=x"])
def test_bad_flag_rejected_at_startup(env, server_env, flag, tmp_path):
    """An unknown flag or a bad value stops the server at startup with a
    non-zero exit code (flags.h: unknown names and bad values are errors)."""
    argv = [env["bin"], "serve", "--listen", "127.0.0.1:%d" % free_port(), "--threads", "1", "--flag", flag]
    e = dict(os.environ)
    e.update(server_env)
    try:
        p = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, capture_output=True, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("server kept running with --flag %s" % flag)
    assert p.returncode != 0, "exit code 0 with --flag %s" % flag
    assert p.stderr.strip(), "no message on stderr for --flag %s" % flag
