"""The alert rules and the Alertmanager routing, checked statically.

promtool checks the rule file and runs its unit tests; a deliberately broken
copy of the rules must fail those unit tests (so they can fail at all); every
alert must carry a severity, a runbook that resolves to a heading of
docs/MONITORING.md, and a unit test in which it fires; and amtool checks that
warnings, criticals and escalations reach the receivers the routing promises.
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROM = os.path.join(REPO, "deploy", "prometheus")
AM = os.path.join(REPO, "deploy", "alertmanager", "alertmanager.yml")


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def alerts():
    return [r for g in load(os.path.join(PROM, "alerts.yml"))["groups"] for r in g["rules"] if "alert" in r]


def run(argv, cwd=None):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    p = run(["promtool", "check", "rules", os.path.join(PROM, "alerts.yml")])
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtool_unit_tests_pass():
    p = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=PROM)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_unit_tests_fail_on_a_wrong_threshold(tmp_path):
    """The error-rate threshold raised from 1% to 5% must break its unit test:
    the tests pin the thresholds, they do not merely run."""
    shutil.copy(os.path.join(PROM, "alerts_test.yml"), tmp_path)
    with open(os.path.join(PROM, "alerts.yml"), encoding="utf-8") as f:
        text = f.read()
    broken = text.replace("[1m])) > 0.01", "[1m])) > 0.05")
    assert broken != text, "the error-rate threshold moved; update this test"
    (tmp_path / "alerts.yml").write_text(broken)
    p = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=str(tmp_path))
    assert p.returncode != 0
    assert "HotplateErrorRateHigh" in p.stdout + p.stderr


def test_every_alert_is_labelled_and_has_a_runbook(repo):
    with open(os.path.join(repo, "docs", "MONITORING.md"), encoding="utf-8") as f:
        doc = f.read()
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", doc, re.M)}
    names = set()
    for r in alerts():
        assert r["alert"] not in names, "duplicate alert name %s" % r["alert"]
        names.add(r["alert"])
        assert r.get("labels", {}).get("severity") in ("warning", "critical"), r["alert"]
        rb = r.get("annotations", {}).get("runbook", "")
        assert rb.startswith("docs/MONITORING.md#"), (r["alert"], rb)
        assert rb.split("#", 1)[1] in anchors, "%s: runbook %s has no matching heading" % (r["alert"], rb)
        assert r.get("annotations", {}).get("summary"), r["alert"]


def test_every_alert_fires_in_a_unit_test():
    tests = load(os.path.join(PROM, "alerts_test.yml"))["tests"]
    fired = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c.get("exp_alerts")}
    quiet = [c["alertname"] for t in tests for c in t["alert_rule_test"] if not c.get("exp_alerts")]
    missing = {r["alert"] for r in alerts()} - fired
    assert not missing, "alerts without a unit test in which they fire: %s" % sorted(missing)
    assert len(quiet) >= 5, "too few cases where an alert must stay quiet"


def test_issue_alerts_are_all_there():
    """The alerts issue 6 lists, by what they watch."""
    exprs = {r["alert"]: r["expr"] for r in alerts()}
    want = {
        "HotplateRouteLatencyHigh": "hotplate_http_request_duration_seconds_bucket",
        "HotplateErrorRateHigh": 'code="5xx"',
        "Hotplate5xxSpike": "offset",
        "HotplateCpuHigh": "process_cpu_seconds_total",
        "HotplateRssGrowing": "process_resident_memory_bytes",
        "HotplateHeapGrowing": "hotplate_heap_allocated_bytes",
        "HotplateDbPoolSaturated": "hotplate_db_pool_in_use",
        "HotplateSlowStatements": "hotplate_db_statement_duration_seconds_bucket",
        "HotplateCacheHitRatioLow": "hotplate_cache_lookups_total",
        "HotplateEventLoopLag": "hotplate_event_loop_lag_seconds_bucket",
    }
    for name, needle in want.items():
        assert name in exprs, name
        assert needle in exprs[name], (name, needle)


def test_alertmanager_config_is_valid():
    p = run(["amtool", "check-config", AM])
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize(
    "labels,receivers",
    [
        (["severity=warning", "alertname=HotplateCpuHigh"], "team-warning"),
        (["severity=critical", "alertname=HotplateErrorRateHigh"], "oncall-critical"),
        (["severity=critical", "escalate=true", "alertname=HotplateEscalation"], "escalation,oncall-critical"),
    ],
)
def test_alertmanager_routes(labels, receivers):
    p = run(["amtool", "config", "routes", "test", "--config.file=" + AM] + labels)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == receivers


def test_critical_repeats_faster_than_warning():
    route = load(AM)["route"]
    by_receiver = {r["receiver"]: r for r in route["routes"]}
    from daemons import seconds

    crit = seconds(by_receiver["oncall-critical"].get("repeat_interval", route["repeat_interval"]))
    warn = seconds(by_receiver["team-warning"].get("repeat_interval", route["repeat_interval"]))
    assert crit < warn
    esc = [r for r in load(os.path.join(PROM, "alerts.yml"))["groups"] if r["name"] == "hotplate-escalation"][0]["rules"][0]
    assert esc["labels"]["escalate"] == "true" and seconds(esc["for"]) > 0


@pytest.mark.parametrize("doc", ["MONITORING.md", "SCALING.md"])
def test_doc_links_resolve(repo, doc):
    """Every relative link of the monitoring docs (runbooks to labs, docs to each other) names a file that exists."""
    path = os.path.join(repo, "docs", doc)
    with open(path, encoding="utf-8") as f:
        links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", f.read())
    local = [l for l in links if "://" not in l]
    assert local
    for l in local:
        assert os.path.exists(os.path.join(os.path.dirname(path), l)), "%s links to missing %s" % (doc, l)
