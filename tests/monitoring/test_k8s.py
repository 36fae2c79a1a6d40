"""The Kubernetes manifests of docs/SCALING.md, checked for structure (no
cluster here): the autoscalers target the Deployment, the CPU target has CPU
requests to be a share of, ports and probes agree with the server's
listeners and routes, every HOTPLATE_* variable is one the server reads,
and the p99 query of prometheus-adapter is valid PromQL over names the
server exposes.
"""

import os
import re
import subprocess

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
K8S = os.path.join(REPO, "deploy", "k8s")


def docs(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(ds, kind):
    return [d for d in ds if d["kind"] == kind]


def test_deployment_service_and_cpu_autoscaler():
    ds = docs("hotplate.yaml")
    dep = by_kind(ds, "Deployment")[0]
    svc = by_kind(ds, "Service")[0]
    hpa = by_kind(ds, "HorizontalPodAutoscaler")[0]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert int(env["HOTPLATE_LISTEN"].rsplit(":", 1)[1]) == ports["http"]
    assert int(env["HOTPLATE_ADMIN_LISTEN"].rsplit(":", 1)[1]) == ports["admin"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ports["admin"])
    # Beyond loopback the admin listener needs a token.
    assert "HOTPLATE_ADMIN_TOKEN" in env
    with open(os.path.join(REPO, "common", "base", "config.c"), encoding="utf-8") as f:
        read = set(re.findall(r'"(HOTPLATE_[A-Z_]+)"', f.read()))
    for k in env:
        assert k in read or k in ("HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL"), k
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["port"] in ports
    # The pod outlives the server's drain.
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] * 1000 > int(env["HOTPLATE_SHUTDOWN_GRACE_MS"])
    # One worker thread per CPU requested.
    assert float(c["resources"]["requests"]["cpu"]) == float(env["HOTPLATE_THREADS"])
    assert svc["spec"]["ports"][0]["targetPort"] in ports
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]}
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"][0]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["type"] == "Utilization"
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_p99_autoscaler(tmp_path):
    ds = docs("prometheus-adapter.yaml")
    cm = by_kind(ds, "ConfigMap")[0]
    hpa = by_kind(ds, "HorizontalPodAutoscaler")[0]
    rule = yaml.safe_load(cm["data"]["config.yaml"])["rules"][0]
    name = rule["name"]["as"]
    pods = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"][0]["pods"]
    assert pods["metric"]["name"] == name
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind(docs("hotplate.yaml"), "Deployment")[0]["metadata"]["name"]
    # The query, with the adapter's template fields filled in, is valid PromQL.
    q = rule["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod").replace("<<.LabelMatchers>>", 'namespace="x",pod="y"')
    (tmp_path / "q.yml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "q:check", "expr": q}]}]}))
    p = subprocess.run(["promtool", "check", "rules", str(tmp_path / "q.yml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'route="/orders"' in q and "hotplate_http_request_duration_seconds_bucket" in q
    # The target is under the latency alert's threshold, so scaling starts before paging.
    with open(os.path.join(REPO, "deploy", "prometheus", "alerts.yml"), encoding="utf-8") as f:
        alerts = {r["alert"]: r for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
    threshold = float(re.search(r"\)\s*>\s*([0-9.]+)", alerts["HotplateRouteLatencyHigh"]["expr"]).group(1))
    target = pods["target"]["averageValue"]
    value = float(target[:-1]) / 1000 if target.endswith("m") else float(target)
    assert value < threshold
