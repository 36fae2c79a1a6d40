"""docs/PROFILING.md names every metric the server exports.

The scalar stats are declared once, in common/runtime/stats.h, and
`hotplate describe --json` prints that list with each stat's metric name: each
of them must be in the metric table of docs/PROFILING.md. A live server's
/metrics (after some traffic) has the other families too (per route, stage and
statement, heap, process, logs, alerts): each family it exposes must be
documented as well, so a metric cannot be added without its line in the doc.
The reverse direction, that every metric the alert rules and dashboards use
exists, is test_dashboards.py's test_every_metric_used_exists.
"""

import itertools
import os
import re

import pytest
import requests

import hplib.describe


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(REPO, "docs", "PROFILING.md")


def documented():
    """The metric names in PROFILING.md's backquoted spans, with hotplate_heap_{a,b}_bytes style braces expanded."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    names = set()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # code blocks: their backquotes would pair up the rest wrongly
    for span in re.findall(r"`([^`\n]+)`", text):
        # Only a metric name, with at most a brace list of its variants: not the JSON and PromQL spans around them.
        if not re.fullmatch(r"[a-z_][a-z0-9_]*(\{[a-z0-9_,]+\}[a-z0-9_]*)?", span):
            continue
        parts = re.split(r"\{([^}]*)\}", span)
        # parts alternates literal text and brace lists: expand the product.
        choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
        for combo in itertools.product(*choices):
            name = "".join(combo)
            if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                names.add(name)
    return names


def describe():
    binary = os.environ.get("HOTPLATE_BIN")
    if not binary:
        pytest.skip("HOTPLATE_BIN not set: needs a built server (make test)")
    return hplib.describe.describe(binary).doc


def test_documented_names_are_read():
    names = documented()
    assert "hotplate_http_requests_total" in names
    assert "hotplate_heap_allocated_bytes" in names and "hotplate_heap_metadata_bytes" in names


def test_every_declared_stat_is_documented():
    doc = describe()
    stats = doc["stats"]
    assert {s["kind"] for s in stats} == {"counter", "gauge", "histogram"}, stats
    missing = sorted({s["metric"] for s in stats} - documented())
    assert not missing, "declared in common/runtime/stats.h but not in docs/PROFILING.md: %s" % missing


def test_every_exported_family_is_documented(start_server):
    s = start_server(threads=1, name="metricsdoc")
    requests.get(s.base + "/restaurants/1/menu", timeout=5)
    requests.get(s.base + "/no/such/route", timeout=5)
    text = requests.get(s.admin_base + "/metrics", timeout=5).text
    families = {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, re.M)}
    assert "hotplate_http_requests_total" in families and "process_cpu_seconds_total" in families
    missing = sorted(families - documented())
    assert not missing, "exported on /metrics but not in docs/PROFILING.md: %s" % missing
