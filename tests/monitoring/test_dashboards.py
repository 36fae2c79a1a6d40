"""The Grafana dashboards: they parse, they cover what issue 6 asks for, every
query is valid PromQL (promtool checks them as recording rules), and every
metric they or the alert rules use exists: hotplate's own names in a running
server's /metrics, the exporters' names in the list below.
"""

import json
import os
import re
import subprocess

import pytest
import requests
import yaml

import promql

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DASH = os.path.join(REPO, "deploy", "grafana", "dashboards")

# Metric names of the exporters in deploy/docker-compose.yml, which cannot run
# here. postgres_exporter v0.15: its stat_statements collector
# (--collector.stat_statements, --collector.stat_statements.include_query) and
# its default pg_stat_database and pg_stat_activity queries; redis_exporter
# v1.58: INFO's stats, memory and clients, and commandstats.
EXPORTER_METRICS = {
    "pg_stat_statements_calls_total", "pg_stat_statements_seconds_total", "pg_stat_statements_rows_total",
    "pg_stat_statements_query_id", "pg_stat_database_blks_hit", "pg_stat_database_blks_read", "pg_stat_activity_count",
    "redis_keyspace_hits_total", "redis_keyspace_misses_total", "redis_commands_total", "redis_memory_used_bytes",
    "redis_connected_clients",
}


def dashboards():
    out = {}
    for fn in sorted(os.listdir(DASH)):
        assert fn.endswith(".json"), fn
        with open(os.path.join(DASH, fn), encoding="utf-8") as f:
            out[fn] = json.load(f)
    return out


def exprs():
    for fn, d in dashboards().items():
        for p in d["panels"]:
            for t in p.get("targets", []):
                yield fn, p["title"], t["expr"]


def concrete(expr):
    """The expression with Grafana's variables replaced by values Prometheus accepts."""
    e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", e)


def test_dashboards_parse_and_are_distinct():
    ds = dashboards()
    assert len(ds) >= 5
    uids = [d["uid"] for d in ds.values()]
    assert len(set(uids)) == len(uids)
    for fn, d in ds.items():
        assert d["uid"] + ".json" == fn
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), fn
        assert all(p.get("targets") for p in d["panels"] if p["type"] != "row"), fn


def test_dashboards_cover_the_issue():
    titles = " | ".join("%s: %s" % (d["title"], p["title"]) for d in dashboards().values() for p in d["panels"]).lower()
    for needle in ("requests/s by route", "5xx share by route", "p99 latency by route", "stage", "pool utilisation",
                   "waiting for a connection", "threads", "event-loop lag", "rss", "heap", "top 10 statements",
                   "redis", "firing alerts"):
        assert needle in titles, needle


def test_every_query_is_valid_promql(tmp_path):
    rules = [{"record": "dashboard:check_%d" % i, "expr": concrete(e)} for i, (_, _, e) in enumerate(exprs())]
    assert len(rules) > 20
    (tmp_path / "dash.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    p = subprocess.run(["promtool", "check", "rules", str(tmp_path / "dash.yml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def rule_exprs():
    with open(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [("alerts.yml", r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_metric_name_extraction_sees_names():
    names = promql.metric_names('sum by (route) (rate(hotplate_http_requests_total{code="5xx",route=~"$route"}[1m])) / on (job) up')
    assert names == {"hotplate_http_requests_total", "up"}


def test_every_metric_used_exists(start_server):
    """Each name the rules and dashboards use is on a live server's /metrics
    (after some traffic, so that lazily created series exist too), built into
    Prometheus, or one of the exporters' names above."""
    s = start_server(threads=1, name="metrics")
    requests.get(s.base + "/restaurants/1/menu", timeout=5)
    text = requests.get(s.admin_base + "/metrics", timeout=5).text
    exposed = promql.exposed_names(text)
    assert "hotplate_http_requests_total" in exposed
    # A sanitizer build has no jemalloc, hence no heap gauges; the release build must have them.
    allocator = requests.get(s.admin_base + "/debug/perf?section=heap", timeout=5).json()["heap"]["allocator"]
    if allocator != "jemalloc":
        exposed |= {"hotplate_heap_%s_bytes" % k for k in ("allocated", "active", "resident", "mapped", "retained", "metadata")}
    missing = []
    for where, title, e in list(exprs()) + rule_exprs():
        for name in promql.metric_names(e):
            if name not in exposed and name not in EXPORTER_METRICS and name not in promql.BUILTIN:
                missing.append((where, title, name))
    assert not missing, missing
