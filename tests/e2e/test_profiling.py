"""The built-in probes and the admin listener: counts are exact, time lands in
the right stage, statements are named, the /debug/perf schema holds, /metrics
passes promtool, flags switch at runtime, and the admin surface is protected.

Each test that counts starts its own server, so no other test's traffic can
blur the numbers.
"""
import shutil
import subprocess
import time

import pytest
import requests

from hplib.client import Client, assert_error, assert_status, new_key

SECTIONS = ["server", "routes", "stages", "statements", "pool", "cache", "loop", "heap", "process", "flags", "slow"]
HIST_KEYS = {"count", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"}


def perf(s, section=None, token=None):
    params = {"section": section} if section else None
    headers = {"Authorization": "Bearer " + token} if token else {}
    r = requests.get(s.admin_base + "/debug/perf", params=params, headers=headers, timeout=10)
    return assert_status(r, 200)


def route(doc, method, pattern):
    for r in doc["routes"]:
        if r["method"] == method and r["route"] == pattern:
            return r
    raise AssertionError("route %s %s missing from /debug/perf" % (method, pattern))


def statement(doc, name):
    for st in doc["statements"]:
        if st["name"] == name:
            return st
    raise AssertionError("statement %s missing from /debug/perf" % name)


def test_debug_routes_are_not_on_the_api_port(server):
    for path in ["/debug/perf", "/metrics", "/debug/flags", "/debug/", "/debug/pprof/profile", "/debug/pg/statements"]:
        r = requests.get(server.base + path, timeout=10)
        assert r.status_code == 404, "%s answered %d on the API port" % (path, r.status_code)
    r = requests.post(server.base + "/debug/flags", json={"menu_cache": "off"}, timeout=10)
    assert r.status_code in (404, 405)


def test_counts_are_exact(start_server, world):
    s = start_server(threads=2, name="counts")
    c = Client(s.base)
    n_menu, n_missing = 37, 5
    for _ in range(n_menu):
        assert_status(c.get("/restaurants/%d/menu" % world.rid), 200)
    for _ in range(n_missing):
        assert c.get("/restaurants/999999999").status_code == 404
    doc = perf(s)
    menu = route(doc, "GET", "/restaurants/{id}/menu")
    assert menu["count"] == n_menu
    assert menu["by_class"]["2xx"] == n_menu
    assert menu["latency"]["total"]["count"] == n_menu
    assert menu["latency"]["10s"]["count"] == n_menu
    assert menu["in_flight"] == 0
    one = route(doc, "GET", "/restaurants/{id}")
    assert one["count"] == n_missing and one["by_class"]["4xx"] == n_missing
    # Each menu request was exactly one cache lookup; only misses went to PostgreSQL.
    cache = doc["cache"]
    assert cache["hits"] + cache["misses"] + cache["errors"] == n_menu
    assert statement(doc, "menu_get")["count"] == cache["misses"] + cache["errors"]
    assert statement(doc, "restaurant_get")["count"] == n_missing
    assert statement(doc, "restaurant_get")["rows"] == 0


def test_time_lands_in_its_stage(start_server, world):
    """Checkouts wait about 300 ms on the payment simulator: that time must show up as payment, not db or other."""
    s = start_server(threads=1, name="stages", flags=["payment_latency_ms=300"])
    c = Client(s.base, world.a["token"])

    def order():
        assert_status(c.order({"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=new_key()), 201)

    # A fresh server's first checkout also waits for its transaction connections
    # to connect and prepare their statements, which on a loaded machine can
    # take longer than the payment: that is db time too, but not what this test
    # is about. So one checkout warms up, and the means are of the n after it.
    order()
    before = route(perf(s), "POST", "/orders")
    assert before["count"] == 1
    n = 3
    for _ in range(n):
        order()
    orders = route(perf(s), "POST", "/orders")
    assert orders["count"] == 1 + n

    def since_warmup(after, warm):
        return (after * (1 + n) - warm) / n

    means = {k: since_warmup(v, before["stage_mean_us"]["total"][k]) for k, v in orders["stage_mean_us"]["total"].items()}
    # The simulator's shortest jitter is half the mean latency (150 ms); h2o's millisecond timers may fire a little early.
    assert means["payment"] >= 140_000, means
    assert means["payment"] > means["db"] and means["payment"] > means["other"], means
    assert means["auth"] > 0 and means["parse"] > 0 and means["compute"] > 0 and means["render"] > 0, means
    total_mean = since_warmup(orders["latency"]["total"]["mean_us"], before["latency"]["total"]["mean_us"])
    assert sum(means.values()) == pytest.approx(total_mean, rel=0.05), (means, total_mean)


def test_perf_schema_and_sections(server, client):
    client.get("/healthz")
    # On a freshly seeded database the seed's statements fill the top rows, so
    # this test, run first, resets the counts and then runs a named statement.
    reset = requests.post(server.admin_base + "/debug/pg/statements/reset", timeout=10)
    assert reset.status_code == 200, reset.text
    assert client.get("/restaurants/1").status_code == 200
    doc = perf(server)
    assert set(SECTIONS) <= set(doc), sorted(doc)
    assert "pg" not in doc  # the pg section costs a round trip and is only given on request
    assert doc["server"]["probes"] is True
    for r in doc["routes"]:
        assert {"method", "route", "count", "in_flight", "by_class", "latency", "windows", "stage_mean_us"} <= set(r)
        for w in ("10s", "60s", "total"):
            assert HIST_KEYS <= set(r["latency"][w]), r["latency"][w]
        assert set(r["stage_mean_us"]["total"]) == {"parse", "auth", "cache", "pool", "db", "compute", "payment", "render", "other"}
    for name in ("parse", "auth", "cache", "pool", "db", "compute", "payment", "render"):
        assert HIST_KEYS <= set(doc["stages"][name]["total"])
    assert {"size", "in_use", "waiting", "acquired", "timeouts", "wait"} <= set(doc["pool"])
    assert {"hits", "misses", "errors", "hit_ratio", "latency"} <= set(doc["cache"])
    assert {"connections_accepted", "lag"} <= set(doc["loop"])
    assert {"cpu_user_s", "cpu_system_s", "rss_bytes", "threads", "fds", "ctx_switches_voluntary"} <= set(doc["process"])
    assert doc["process"]["rss_bytes"] > 0 and doc["process"]["threads"] >= 2
    assert {"threshold_ms", "requests"} <= set(doc["slow"])
    assert "menu_cache" in doc["flags"]
    names = [st["name"] for st in doc["statements"]]
    assert "order_history" in names and "auth_token" in names
    only = perf(server, section="routes,cache")
    assert set(only) == {"routes", "cache"}
    pg = perf(server, section="pg")["pg"]
    assert isinstance(pg["statements"], list) and pg["statements"], pg
    assert {"name", "calls", "total_exec_time_ms", "mean_exec_time_ms", "query"} <= set(pg["statements"][0])
    assert any(st["name"] is not None for st in pg["statements"]), "no pg_stat_statements row mapped to a hotplate statement"
    assert_error(requests.get(server.admin_base + "/debug/perf", params={"section": "nope"}, timeout=10), 400, "bad_param")


def test_loop_lag_is_measured(start_server):
    s = start_server(threads=1, name="lag")
    time.sleep(1.2)  # the 100 ms lag timer fires about ten times
    lag = perf(s, section="loop")["loop"]["lag"]["total"]
    assert lag["count"] >= 5


def test_metrics_pass_promtool(server, client, world):
    client.get("/restaurants/%d/menu" % world.rid)
    r = requests.get(server.admin_base + "/metrics", timeout=10)
    assert r.status_code == 200
    # requests joins repeated headers with ", ": exactly one Content-Type, the exposition format's.
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"]
    text = r.text
    for name in ("hotplate_http_requests_total", "hotplate_http_request_duration_seconds_bucket", "hotplate_stage_duration_seconds_count",
                 "hotplate_db_statement_duration_seconds_sum", "hotplate_db_pool_in_use", "hotplate_cache_lookups_total",
                 "hotplate_event_loop_lag_seconds_count", "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_start_time_seconds"):
        assert name in text, name
    assert 'route="/restaurants/{id}/menu"' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: deploy/deps.sh installs Debian's prometheus package")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def test_flags_switch_at_runtime(start_server, world):
    s = start_server(threads=2, name="flags")
    c = Client(s.base)
    path = "/restaurants/%d/menu" % world.rid
    c.get(path)
    assert c.get(path).headers["X-Cache"] == "hit"
    r = requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "off"}, timeout=10)
    assert assert_status(r, 200)["flags"]["menu_cache"]["value"] == "off"
    assert all(c.get(path).headers["X-Cache"] == "bypass" for _ in range(4))  # both threads see it
    assert perf(s, section="flags")["flags"]["menu_cache"]["value"] == "off"
    # A bad request changes nothing, not even its valid part.
    bad = requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "redis", "order_total": "fast"}, timeout=10)
    assert_error(bad, 400)
    assert requests.get(s.admin_base + "/debug/flags", timeout=10).json()["flags"]["menu_cache"]["value"] == "off"
    assert_error(requests.post(s.admin_base + "/debug/flags", json={"no_such_flag": "x"}, timeout=10), 400, "unknown_flag")
    assert_status(requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "redis"}, timeout=10), 200)
    assert c.get(path).headers["X-Cache"] in ("hit", "miss")


def test_slow_ring_records_stages_and_statements(start_server, world):
    s = start_server(threads=1, name="slow", flags=["slow_request_ms=50", "payment_latency_ms=200"])
    c = Client(s.base, world.a["token"])
    c.get("/healthz")  # fast: not slow
    assert_status(c.order({"restaurant_id": world.rid, "items": [{"item_id": world.item_plain, "quantity": 1}]}, key=new_key()), 201)
    slow = perf(s, section="slow")["slow"]
    assert slow["threshold_ms"] == 50
    reqs = slow["requests"]
    assert len(reqs) == 1, reqs
    e = reqs[0]
    assert e["route"] == "/orders" and e["method"] == "POST" and e["status"] == 201
    assert e["duration_us"] >= 50_000
    assert e["stages_us"]["payment"] >= 90_000  # at least half of 200 ms, less h2o's millisecond timer slack
    names = [st["statement"] for st in e["statements"]]
    assert "auth_token" in names and "order_place" in names, names
    assert len(e["request_id"]) > 0


def test_admin_token_protects_mutations(start_server):
    s = start_server(threads=1, name="token", env={"HOTPLATE_ADMIN_TOKEN": "s3cret-admin"})
    assert_error(requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "off"}, timeout=10), 401, "unauthorized")
    r = requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "off"}, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert_error(r, 401, "unauthorized")
    assert requests.get(s.admin_base + "/debug/flags", timeout=10).json()["flags"]["menu_cache"]["value"] == "local"
    r = requests.post(s.admin_base + "/debug/flags", json={"menu_cache": "off"}, headers={"Authorization": "Bearer s3cret-admin"},
                      timeout=10)
    assert assert_status(r, 200)["flags"]["menu_cache"]["value"] == "off"
    # Reading stays open on the loopback listener.
    assert_status(requests.get(s.admin_base + "/debug/perf", params={"section": "server"}, timeout=10), 200)


def test_admin_beyond_loopback_needs_a_token(env, server_env):
    argv = [env["bin"], "serve", "--listen", "127.0.0.1:1", "--admin-listen", "0.0.0.0:1", "--threads", "1"]
    p = subprocess.run(argv, env=dict(server_env), capture_output=True, timeout=30)
    assert p.returncode != 0
    assert b"HOTPLATE_ADMIN_TOKEN" in p.stderr, p.stderr


def test_usdt_probes_are_in_the_binary(env):
    """readelf lists the USDT notes bpftrace attaches to (docs/PROFILING.md has the bpftrace lines)."""
    out = subprocess.run(["readelf", "-n", env["bin"]], capture_output=True, timeout=60, check=True).stdout.decode()
    names = {line.split("Name:")[1].strip() for line in out.splitlines() if "Name:" in line}
    assert {"request__start", "request__done", "query__start", "query__done"} <= names, names
    assert "Provider: hotplate" in out
