"""The alerts the server evaluates itself (profiling/alerts.c), for the
embedded default where no Prometheus runs.

- Its rules are the Prometheus rules: for every embedded rule, the rule of
  the same name in deploy/prometheus/alerts.yml has the same severity,
  comparison, threshold, traffic guard and `for:`.
- End to end: a burst of 503s (the database unreachable) is an error spike;
  Hotplate5xxSpike fires, shows in /debug/perf and /metrics, and is POSTed to
  the webhook, which refuses the first attempt; the server retries after its
  backoff and the second attempt is delivered.
- A webhook that never answers does not hold anything up: requests keep
  being answered while the notification waits, and the attempt is abandoned
  at its deadline and counted.
"""

import os
import re
import socket
import subprocess
import time

import pytest
import requests
import yaml

import daemons
from hplib.process import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def prom_rules():
    with open(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def comparisons(expr):
    """(op, number) of every comparison with a literal in an expression, in order; `5 *` factors included."""
    return [(m.group(1), float(m.group(2))) for m in re.finditer(r"([<>])\s*([0-9]+(?:\.[0-9]+)?)\b", expr)]


@pytest.fixture
def nodb_env():
    return {"HOTPLATE_PG_URL": "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=1" % free_port()}


def test_embedded_rules_are_the_prometheus_rules(start_server):
    s = start_server(threads=1, name="rules")
    embedded = requests.get(s.admin_base + "/debug/perf?section=alerts", timeout=5).json()["alerts"]["rules"]
    prom = prom_rules()
    assert len(embedded) >= 12
    for e in embedded:
        p = prom[e["name"]]
        assert p["labels"]["severity"] == e["severity"], e["name"]
        assert daemons.seconds(p["for"]) == e["for_s"], e["name"]
        cmps = comparisons(p["expr"])
        assert cmps, e["name"]
        assert cmps[0] == (e["op"], e["threshold"]), (e["name"], cmps)
        if e["guard"] > 0:
            # The traffic guard is the last comparison, after `and`.
            assert re.search(r"\band\b", p["expr"]) and cmps[-1] == (">", e["guard"]), (e["name"], cmps)
        else:
            assert len(cmps) == 1, (e["name"], cmps)


def test_spike_fires_and_the_webhook_retries(start_server, nodb_env):
    receiver = daemons.WebhookReceiver(fail_first=1)
    try:
        env = dict(nodb_env, HOTPLATE_ALERT_WEBHOOK=receiver.url("/embedded"))
        s = start_server(threads=1, name="spike", env=env, wait_ready=False)
        sess = requests.Session()
        for _ in range(90):
            assert sess.get(s.base + "/restaurants/1", timeout=5).status_code == 503

        def spike(path, doc):
            return path == "/embedded" and doc.get("status") == "firing" and doc["alerts"][0]["labels"]["alertname"] == "Hotplate5xxSpike"

        first = receiver.wait_for(spike, 10)
        assert first is not None, "no notification; received %r" % receiver.received
        # The first attempt was answered 500; the retry comes after the 1 s backoff.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len([1 for p, d, _ in receiver.received if spike(p, d)]) < 2:
            time.sleep(0.1)
        posts = [d for p, d, _ in receiver.received if spike(p, d)]
        assert len(posts) == 2 and posts[0] == posts[1]
        alert = posts[0]["alerts"][0]
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"] == "127.0.0.1:%d" % s.admin_port
        assert alert["annotations"]["runbook"] == "docs/MONITORING.md#hotplate5xxspike"
        assert posts[0]["version"] == "4" and alert["startsAt"].endswith("Z")

        doc = sess.get(s.admin_base + "/debug/perf?section=alerts", timeout=5).json()["alerts"]
        active = [a for a in doc["active"] if a["name"] == "Hotplate5xxSpike"]
        assert active and active[0]["state"] == "firing"
        assert doc["webhook"]["sent"] == 1 and doc["webhook"]["failed_attempts"] == 1 and doc["webhook"]["dropped"] == 0
        metrics = sess.get(s.admin_base + "/metrics", timeout=5).text
        assert 'hotplate_alert_firing{alert="Hotplate5xxSpike",severity="critical"} 1' in metrics
        assert 'hotplate_alert_firing{alert="HotplateCpuHigh",severity="warning"} 0' in metrics
        assert "hotplate_alert_webhook_sent_total 1" in metrics
        # The transition is in the log too.
        assert any('"msg":"alert Hotplate5xxSpike firing' in l for l in s.stdout_lines())
        # And on the dashboard: Debian's Chromium renders /debug/ and its script polls /debug/perf.
        dom = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000",
                              "--dump-dom", s.admin_base + "/debug/"], capture_output=True, text=True, timeout=60).stdout
        row = re.search(r'<tr data-testid="alert-row" data-alert="Hotplate5xxSpike">(.*?)</tr>', dom)
        assert row, "no Hotplate5xxSpike row on the dashboard"
        assert ">critical<" in row.group(1) and ">firing<" in row.group(1)
    finally:
        receiver.close()


def test_a_silent_webhook_blocks_nothing(start_server, nodb_env):
    # A listening socket nobody accepts from: the kernel completes the
    # handshake, the request is written, and no answer ever comes.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        env = dict(nodb_env, HOTPLATE_ALERT_WEBHOOK="http://127.0.0.1:%d/hook" % silent.getsockname()[1])
        s = start_server(threads=1, name="silent", env=env, wait_ready=False)
        sess = requests.Session()
        for _ in range(90):
            assert sess.get(s.base + "/restaurants/1", timeout=5).status_code == 503
        # While the notification waits on the receiver, every request is still answered.
        deadline = time.monotonic() + 15
        stats = None
        answered = 0
        while time.monotonic() < deadline:
            assert sess.get(s.base + "/healthz", timeout=5).status_code == 200
            answered += 1
            stats = sess.get(s.admin_base + "/debug/perf?section=alerts", timeout=5).json()["alerts"]["webhook"]
            if stats["failed_attempts"] >= 1:
                break
            time.sleep(0.1)
        assert stats["failed_attempts"] >= 1, stats  # abandoned at the attempt's deadline
        assert stats["sent"] == 0 and stats["queued"] == 1  # and kept for a retry
        assert answered > 10
    finally:
        silent.close()
