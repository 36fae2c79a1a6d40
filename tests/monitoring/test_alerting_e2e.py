"""End to end: the real rules in Debian's Prometheus, the real routing in
Debian's Alertmanager, against a running hotplate, on loopback.

Prometheus scrapes the server's /metrics every second and evaluates a fast
copy of deploy/prometheus/alerts.yml (every `for:` and every range scaled
down by daemons.fast_rules, expressions and thresholds untouched);
Alertmanager runs deploy/alertmanager/alertmanager.yml with its webhook URLs
pointed at a receiver in this test and its intervals in seconds.

- Menu load with the cache on: HotplateCacheHitRatioLow stays quiet.
  menu_cache=off under the same load: it fires and reaches the warning
  webhook. menu_cache=redis again: the webhook gets its resolution.
- A second scrape target that nobody listens on: HotplateDown fires, the
  critical webhook gets it more than once (repeat), and after the escalation
  rule's `for:` HotplateEscalation reaches the escalation webhook.

Everything is bounded: the load stops with the test, every wait has a
deadline, and the whole test takes well under 90 s.
"""

import os
import threading
import time

import pytest
import requests
import yaml

import daemons
from hplib.process import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Waits, in seconds, for each stage; generous against a noisy 2-core machine.
FIRE_TIMEOUT = 40
RESOLVE_TIMEOUT = 40


def fast_alertmanager(receiver):
    with open(os.path.join(REPO, "deploy", "alertmanager", "alertmanager.yml"), encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for rcv in doc["receivers"]:
        for w in rcv.get("webhook_configs", []):
            w["url"] = receiver.url("/hotplate/" + rcv["name"])
    doc["global"]["resolve_timeout"] = "10s"
    doc["route"].update({"group_wait": "1s", "group_interval": "2s", "repeat_interval": "30s"})
    for r in doc["route"]["routes"]:
        for k in ("group_wait", "group_interval"):
            r.pop(k, None)
        if "repeat_interval" in r:
            # Keep the order of the real file: critical repeats sooner than warning.
            r["repeat_interval"] = "4s" if r["receiver"] == "oncall-critical" else "20s"
    return doc


def alerts_in(doc):
    """(status, alertname, labels) of every alert in one Alertmanager webhook payload."""
    return [(a["status"], a["labels"].get("alertname"), a["labels"]) for a in doc.get("alerts", [])]


def posted(path_suffix, alertname, status):
    def pred(path, doc):
        return path.endswith(path_suffix) and any(s == status and n == alertname for s, n, _ in alerts_in(doc))

    return pred


@pytest.fixture
def receiver():
    r = daemons.WebhookReceiver()
    yield r
    r.close()


def test_cache_alert_fires_and_resolves_and_criticals_escalate(start_server, tmp_path, receiver):
    server = start_server(threads=2, name="alerting")
    admin = server.admin_base
    dead_port = free_port()  # a target nobody listens on

    am_port, prom_port = free_port(), free_port()
    am_dir, prom_dir = tmp_path / "alertmanager", tmp_path / "prometheus"
    am_dir.mkdir()
    prom_dir.mkdir()
    (am_dir / "alertmanager.yml").write_text(yaml.safe_dump(fast_alertmanager(receiver)))
    with open(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"), encoding="utf-8") as f:
        rules = daemons.fast_rules(yaml.safe_load(f))
    (prom_dir / "alerts.yml").write_text(yaml.safe_dump(rules))
    (prom_dir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": ["alerts.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:%d" % am_port]}]}]},
        "scrape_configs": [{"job_name": "hotplate", "static_configs": [
            {"targets": ["127.0.0.1:%d" % server.admin_port, "127.0.0.1:%d" % dead_port]}]}],
    }))

    am = daemons.Daemon("alertmanager", [
        "prometheus-alertmanager", "--config.file=alertmanager.yml", "--storage.path=" + str(am_dir / "data"),
        "--web.listen-address=127.0.0.1:%d" % am_port, "--cluster.listen-address=",
    ], am_dir).start()
    prom = daemons.Daemon("prometheus", [
        "prometheus", "--config.file=prometheus.yml", "--storage.tsdb.path=" + str(prom_dir / "data"),
        "--web.listen-address=127.0.0.1:%d" % prom_port, "--rules.alert.resend-delay=1s",
    ], prom_dir).start()
    stop = threading.Event()
    load = None
    try:
        am.wait_http("http://127.0.0.1:%d/-/ready" % am_port)
        prom.wait_http("http://127.0.0.1:%d/-/ready" % prom_port)

        ids = [r["id"] for r in requests.get(server.base + "/restaurants?limit=5", timeout=5).json()["restaurants"]]
        assert ids, "the seed has no restaurants"
        served = [0]

        def menu_load():
            # About a hundred menus a second, far above the rule's guard of 1/s
            # and far below what the machine can serve.
            s = requests.Session()
            deadline = time.monotonic() + 85
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                r = s.get("%s/restaurants/%d/menu" % (server.base, ids[i % len(ids)]), timeout=5)
                if r.status_code == 200:
                    served[0] += 1
                i += 1
                stop.wait(0.01)

        load = threading.Thread(target=menu_load, daemon=True)
        load.start()

        def query(q):
            r = requests.get("http://127.0.0.1:%d/api/v1/query" % prom_port, params={"query": q}, timeout=5)
            r.raise_for_status()
            return r.json()["data"]["result"]

        # The cache works: the ratio is there and high, and the alert is quiet.
        expr = ('sum(rate(hotplate_cache_lookups_total{result="hit"}[10s])) / '
                'sum(rate(hotplate_http_requests_total{route="/restaurants/{id}/menu",code="2xx"}[10s]))')
        deadline = time.monotonic() + 30
        ratio = None
        while time.monotonic() < deadline:
            res = query(expr)
            if res and float(res[0]["value"][1]) > 0.5:
                ratio = float(res[0]["value"][1])
                break
            time.sleep(0.5)
        assert ratio is not None, "Prometheus never saw a cache hit ratio over 50%% with the cache on: %r" % query(expr)
        assert receiver.wait_for(posted("team-warning", "HotplateCacheHitRatioLow", "firing"), 0) is None

        # The bottleneck: the same load with the cache off.
        r = requests.post(admin + "/debug/flags", json={"menu_cache": "off"}, timeout=5)
        assert r.status_code == 200, r.text
        got = receiver.wait_for(posted("team-warning", "HotplateCacheHitRatioLow", "firing"), FIRE_TIMEOUT)
        assert got is not None, "HotplateCacheHitRatioLow never reached the warning webhook; received: %r" % [
            (p, alerts_in(d)) for p, d, _ in receiver.received]
        labels = [l for s, n, l in alerts_in(got[1]) if n == "HotplateCacheHitRatioLow"][0]
        assert labels["severity"] == "warning"
        assert labels["instance"] == "127.0.0.1:%d" % server.admin_port
        assert got[1]["receiver"] == "team-warning"

        # The fix: the alert resolves.
        r = requests.post(admin + "/debug/flags", json={"menu_cache": "redis"}, timeout=5)
        assert r.status_code == 200, r.text
        got = receiver.wait_for(posted("team-warning", "HotplateCacheHitRatioLow", "resolved"), RESOLVE_TIMEOUT)
        assert got is not None, "HotplateCacheHitRatioLow never resolved"
        assert served[0] > 100

        # Meanwhile the dead target has paged, been repeated, and escalated.
        dead = "127.0.0.1:%d" % dead_port
        esc = receiver.wait_for(posted("escalation", "HotplateEscalation", "firing"), FIRE_TIMEOUT)
        assert esc is not None, "no escalation; received: %r" % [(p, alerts_in(d)) for p, d, _ in receiver.received]
        esc_labels = [l for s, n, l in alerts_in(esc[1]) if n == "HotplateEscalation"][0]
        assert esc_labels["escalated_alert"] == "HotplateDown" and esc_labels["instance"] == dead
        pages = [d for p, d, _ in receiver.received
                 if p.endswith("oncall-critical") and any(n == "HotplateDown" and s == "firing" for s, n, _ in alerts_in(d))]
        assert len(pages) >= 2, "HotplateDown was not repeated to the critical webhook: %d notification(s)" % len(pages)
        # The live server itself never went down.
        assert not any(n == "HotplateDown" and l["instance"] != dead
                       for _, d, _ in receiver.received for s, n, l in alerts_in(d))
    finally:
        stop.set()
        if load is not None:
            load.join(10)
        prom.stop()
        am.stop()
