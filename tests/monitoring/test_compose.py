"""The docker compose stack, checked without a Docker engine.

No engine runs on these machines, so the file is read with a YAML parser and
held against everything it refers to: every file it mounts or builds from
exists; every service it depends on, and every host name that nginx,
Prometheus, Alertmanager, Grafana, Fluent Bit and Kibana are configured to
reach, is a service of the file, on a port that service listens on; the
environment variables given to hotplate are ones the server reads; and the
Dockerfile builds from debian:bookworm-slim with the packages of
deploy/deps.sh and installs a runtime package for every shared library the
binary needs.
"""

import configparser
import json
import os
import re
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, "deploy")


def load_yaml(rel):
    with open(os.path.join(DEPLOY, rel), encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose():
    return load_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def listen_port(value):
    return int(value.rsplit(":", 1)[1])


# The port each third-party image listens on inside the network, from its
# configuration in the compose file where it has one, else the image's default.
def service_port(name, svc):
    env = env_of(svc)
    if name.startswith("hotplate-"):
        return {listen_port(env["HOTPLATE_LISTEN"]), listen_port(env["HOTPLATE_ADMIN_LISTEN"])}
    if name == "alert-sink":
        return {int(env["HTTP_PORT"])}
    if name == "postgres-exporter":
        return {int(a.rsplit(":", 1)[1]) for a in svc["command"] if a.startswith("--web.listen-address=")}
    if name == "redis-exporter":
        return {listen_port(env["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"])}
    defaults = {"postgres": 5432, "redis": 6379, "nginx": 80, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000,
                "elasticsearch": 9200, "kibana": 5601}
    return {defaults[name]} if name in defaults else set()


def assert_reaches(services, host, port, where):
    assert host in services, "%s refers to %r, which is not a compose service" % (where, host)
    assert port in service_port(host, services[host]), "%s: %s does not listen on %d" % (where, host, port)


def test_services(services):
    want = {"postgres", "redis", "setup", "hotplate-1", "hotplate-2", "nginx", "prometheus", "alertmanager", "alert-sink",
            "grafana", "postgres-exporter", "redis-exporter", "elasticsearch", "kibana", "fluent-bit", "kibana-setup"}
    assert set(services) == want
    heavy = {"elasticsearch", "kibana", "fluent-bit", "kibana-setup"}
    for name, svc in services.items():
        assert (svc.get("profiles") == ["logs"]) == (name in heavy), name


def test_every_mounted_and_built_file_exists(compose, services):
    named = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith("."):
                assert os.path.exists(os.path.join(DEPLOY, src)), "%s mounts missing %s" % (name, src)
            else:
                assert src in named, "%s uses undeclared volume %s" % (name, src)
        if "build" in svc:
            ctx = os.path.join(DEPLOY, svc["build"]["context"])
            assert os.path.isfile(os.path.join(ctx, svc["build"]["dockerfile"])), name


def test_dependencies_and_networks(compose, services):
    nets = set(compose.get("networks") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for d in deps:
            assert d in services, "%s depends on unknown %s" % (name, d)
            # A service outside the logs profile must not need one inside it.
            if not svc.get("profiles"):
                assert not services[d].get("profiles"), "%s depends on profiled %s" % (name, d)
        for n in svc.get("networks", []):
            assert n in nets, name


def test_published_ports_are_loopback_and_distinct(services):
    seen = set()
    for name, svc in services.items():
        for p in svc.get("ports", []):
            host, hport, cport = p.split(":")
            assert host == "127.0.0.1", "%s publishes %s beyond loopback" % (name, p)
            assert hport not in seen, "host port %s published twice" % hport
            seen.add(hport)
            assert int(cport) in service_port(name, svc), "%s publishes %s but listens elsewhere" % (name, p)


def test_hotplate_environment(services):
    with open(os.path.join(REPO, "common", "base", "config.c"), encoding="utf-8") as f:
        src = f.read()
    read = set(re.findall(r'"(HOTPLATE_[A-Z_]+)"', src))
    for name in ("hotplate-1", "hotplate-2"):
        env = env_of(services[name])
        for k in env:
            if k.startswith("HOTPLATE_") and k not in ("HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL"):
                assert k in read, "%s sets %s, which the server does not read" % (name, k)
        pg = urlparse(env["HOTPLATE_PG_URL"])
        assert_reaches(services, pg.hostname, pg.port, name + " HOTPLATE_PG_URL")
        rd = urlparse(env["HOTPLATE_REDIS_URL"])
        assert_reaches(services, rd.hostname, rd.port, name + " HOTPLATE_REDIS_URL")
        assert env["HOTPLATE_ADMIN_TOKEN"].startswith("${HOTPLATE_ADMIN_TOKEN:?"), "the admin token must be required"
    logs = {env_of(services[n])["HOTPLATE_LOG_FILE"] for n in ("hotplate-1", "hotplate-2")}
    assert len(logs) == 2, "the replicas must write different log files"


def test_nginx_upstreams_are_the_replicas(services):
    with open(os.path.join(DEPLOY, "nginx", "hotplate-upstream.conf"), encoding="utf-8") as f:
        ups = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", f.read(), re.M)
    assert sorted(h for h, _ in ups) == ["hotplate-1", "hotplate-2"]
    for h, p in ups:
        assert int(p) == listen_port(env_of(services[h])["HOTPLATE_LISTEN"])
        assert_reaches(services, h, int(p), "nginx upstream")
    mounts = [v.split(":")[1] for v in services["nginx"]["volumes"]]
    assert "/etc/nginx/nginx.conf" in mounts and "/etc/nginx/hotplate-upstream.conf" in mounts


def test_prometheus_targets_and_rules(services):
    prom = load_yaml("prometheus/prometheus.yml")
    jobs = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in prom["scrape_configs"]}
    assert sorted(jobs["hotplate"]) == ["hotplate-1:8081", "hotplate-2:8081"]
    for job, targets in jobs.items():
        for t in targets:
            host, port = t.rsplit(":", 1)
            if host != "localhost":
                assert_reaches(services, host, int(port), "prometheus job %s" % job)
    for am in prom["alerting"]["alertmanagers"]:
        for t in am["static_configs"][0]["targets"]:
            host, port = t.rsplit(":", 1)
            assert_reaches(services, host, int(port), "prometheus alerting")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    for rf in prom["rule_files"]:
        assert mounts.get("/etc/prometheus/" + rf) == "./prometheus/" + rf
    p = subprocess.run(["promtool", "check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_alertmanager_webhooks_reach_a_service(services):
    am = load_yaml("alertmanager/alertmanager.yml")
    for r in am["receivers"]:
        for w in r["webhook_configs"]:
            u = urlparse(w["url"])
            assert_reaches(services, u.hostname, u.port, "alertmanager receiver %s" % r["name"])


def test_grafana_provisioning(services):
    ds = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    for d in ds:
        u = urlparse(d["url"])
        assert_reaches(services, u.hostname, u.port, "grafana datasource %s" % d["name"])
    uids = {d["uid"] for d in ds}
    prov = load_yaml("grafana/provisioning/dashboards/hotplate.yml")["providers"][0]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[prov["options"]["path"]] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    home = env_of(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(prov["options"]["path"] + "/")
    assert os.path.isfile(os.path.join(DEPLOY, "grafana", "dashboards", os.path.basename(home)))
    for fn in os.listdir(os.path.join(DEPLOY, "grafana", "dashboards")):
        with open(os.path.join(DEPLOY, "grafana", "dashboards", fn), encoding="utf-8") as f:
            d = json.load(f)
        for p in d["panels"]:
            if p["type"] != "row":
                assert p["datasource"]["uid"] in uids, (fn, p["title"])


def test_log_pipeline_reaches_elasticsearch(services):
    cp = configparser.ConfigParser(strict=False, delimiters=(" ",))
    cp.optionxform = str
    with open(os.path.join(DEPLOY, "logging", "fluent-bit.conf"), encoding="utf-8") as f:
        # Fluent Bit's format is INI-like with repeated section names; number them.
        text, n = [], 0
        for line in f:
            if line.strip().startswith("["):
                n += 1
                line = line.strip()[:-1] + ".%d]\n" % n
            text.append(line.lstrip() if not line.lstrip().startswith("#") else "")
    cp.read_string("".join(text))
    out = [cp[s] for s in cp.sections() if s.startswith("[OUTPUT") or s.startswith("OUTPUT")]
    assert out and out[0]["Name"].strip() == "es"
    assert_reaches(services, out[0]["Host"].strip(), int(out[0]["Port"]), "fluent-bit output")
    inp = [cp[s] for s in cp.sections() if s.startswith("INPUT")][0]
    path = inp["Path"].strip()
    fb_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["fluent-bit"]["volumes"]}
    log_dir = os.path.dirname(path)
    assert fb_mounts.get(log_dir) == "hotplate-logs"
    for n in ("hotplate-1", "hotplate-2"):
        f = env_of(services[n])["HOTPLATE_LOG_FILE"]
        assert os.path.dirname(f) == log_dir and f.endswith(".log")
        assert "hotplate-logs:" + log_dir in services[n]["volumes"]
    svc = cp[[s for s in cp.sections() if s.startswith("SERVICE")][0]]
    parsers = svc["Parsers_File"].strip()
    assert fb_mounts.get(parsers) == "./logging/parsers.conf"
    assert "/fluent-bit/etc/hotplate/fluent-bit.conf" in services["fluent-bit"]["command"]
    kib = json.loads(env_of(services["kibana"])["ELASTICSEARCH_HOSTS"])
    for h in kib:
        u = urlparse(h)
        assert_reaches(services, u.hostname, u.port, "kibana")


def test_kibana_saved_objects():
    with open(os.path.join(DEPLOY, "logging", "kibana-saved-objects.ndjson"), encoding="utf-8") as f:
        objs = [json.loads(l) for l in f if l.strip()]
    ids = {(o["type"], o["id"]) for o in objs}
    searches = {o["id"]: o for o in objs if o["type"] == "search"}
    assert "hotplate-errors-and-timeouts" in searches and "hotplate-timeouts" in searches
    for o in searches.values():
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids
        q = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
        for field in re.findall(r"\b([a-z_]+) :", q):
            assert field in ("level", "status", "error", "msg", "duration_us"), field
    q = json.loads(searches["hotplate-timeouts"]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
    # Every timeout error code the server can send is matched by the search.
    with open(os.path.join(REPO, "common", "base", "errors.h"), encoding="utf-8") as f:
        codes = set(re.findall(r"X\(([a-z_]*timeout[a-z_]*),", f.read()))
    assert codes, "no timeout codes found in common/base/errors.h"
    for c in codes:
        assert "*timeout*" in q or c in q


def dockerfile_stages():
    with open(os.path.join(DEPLOY, "Dockerfile"), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append({"from": line.split()[1], "pkgs": set(), "copies": []})
        elif line.startswith("RUN ") and "apt-get install" in line:
            seg = line.split("apt-get install", 1)[1].split("&&")[0]
            stages[-1]["pkgs"] |= {w for w in seg.split() if not w.startswith("-")}
        elif line.startswith("COPY ") and "--from" not in line:
            stages[-1]["copies"].append(line.split()[1])
    return stages


def test_dockerfile_is_multistage_bookworm_with_the_local_packages():
    stages = dockerfile_stages()
    assert len(stages) >= 2 and all(s["from"] == "debian:bookworm-slim" for s in stages)
    with open(os.path.join(DEPLOY, "deps.sh"), encoding="utf-8") as f:
        deps = f.read()
    block = deps.split("packages=(", 1)[1].split("\n)\n", 1)[0]
    listed = {w for line in block.splitlines() for w in line.split("#", 1)[0].split()}
    build = stages[0]["pkgs"]
    assert build <= listed, "build stage installs packages deps.sh does not: %s" % sorted(build - listed)
    for lib in ("libh2o-evloop-dev", "libpq-dev", "libhiredis-dev", "libjemalloc-dev", "libjansson-dev"):
        assert lib in build
    for src in stages[0]["copies"]:
        assert os.path.exists(os.path.join(REPO, src)), src


def test_runtime_stage_provides_every_needed_library():
    """Each DT_NEEDED library of the built server belongs to a package that the
    runtime stage installs (or to libc6, which the base image has)."""
    binary = os.environ.get("HOTPLATE_BIN") or os.path.join(REPO, "build", "hotplate")
    if not os.path.isfile(binary):
        pytest.skip("no built server to read DT_NEEDED from")
    runtime = dockerfile_stages()[-1]["pkgs"]
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout)
    assert needed
    if any(n.startswith(("libasan", "libubsan", "libtsan")) for n in needed):
        pytest.skip("%s is a sanitizer build; the image builds the release binary" % binary)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    for lib in needed:
        real = os.path.realpath(paths[lib])
        owner = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", paths[lib]], capture_output=True, text=True)
        pkg = owner.stdout.split(":", 1)[0]
        assert pkg == "libc6" or pkg in runtime, "%s comes from %s, which the runtime stage does not install" % (lib, pkg)


# ---------------------------------------------------------------- the HA override (docker-compose.ha.yml)

HA_PORTS = {"postgres-standby": 5432, "redis-replica": 6379, "redis-sentinel": 26379}


def merge(base, over, key=None):
    """docker compose's merge of an override file: mappings merge key by key, a service's volumes by their target
    path, any other sequence (a command) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if key == "volumes" and isinstance(base, list) and isinstance(over, list):
        by_target = {v.split(":")[1]: v for v in base}
        by_target.update({v.split(":")[1]: v for v in over})
        return list(by_target.values())
    return over


@pytest.fixture(scope="module")
def ha_services(compose):
    return merge(compose, load_yaml("docker-compose.ha.yml"))["services"]


def read_deploy(rel):
    with open(os.path.join(DEPLOY, rel), encoding="utf-8") as f:
        return f.read()


def test_ha_override_is_a_whole_topology(ha_services):
    assert {"postgres-standby", "redis-replica", "redis-sentinel"} <= set(ha_services)
    named = set(load_yaml("docker-compose.yml").get("volumes") or {}) | set(load_yaml("docker-compose.ha.yml").get("volumes") or {})
    for name, svc in ha_services.items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            assert os.path.exists(os.path.join(DEPLOY, src)) if src.startswith(".") else src in named, (name, v)
        deps = svc.get("depends_on") or {}
        for d in deps:
            assert d in ha_services, "%s depends on unknown %s" % (name, d)
    # The migrations commit through the synchronous standby, so setup waits for it.
    assert "postgres-standby" in ha_services["setup"]["depends_on"]


def test_ha_servers_reach_both_hosts_and_sentinel(ha_services):
    def reaches(host, port, where):
        assert host in ha_services, "%s refers to %r, which is not a service" % (where, host)
        assert port == HA_PORTS.get(host) or port in service_port(host, ha_services[host]), (where, host, port)

    for name in ("hotplate-1", "hotplate-2"):
        env = env_of(ha_services[name])
        m = re.match(r"^postgresql://[^@]+@([^/]+)/hotplate\?target_session_attrs=read-write$", env["HOTPLATE_PG_URL"])
        assert m, env["HOTPLATE_PG_URL"]
        hosts = [h.rsplit(":", 1) for h in m.group(1).split(",")]
        assert [h for h, _ in hosts] == ["postgres", "postgres-standby"], hosts
        for h, p in hosts:
            reaches(h, int(p), name + " HOTPLATE_PG_URL")
        rd = urlparse(env["HOTPLATE_REDIS_URL"])
        assert rd.scheme == "sentinel" and rd.path == "/hotplate", env["HOTPLATE_REDIS_URL"]
        reaches(rd.hostname, rd.port, name + " HOTPLATE_REDIS_URL")
        # The rest of the base environment stays (the log file of each replica among it).
        assert env["HOTPLATE_LOG_FILE"].endswith(name + ".log") and env["HOTPLATE_ADMIN_TOKEN"].startswith("${HOTPLATE_ADMIN_TOKEN:?")


def test_ha_names_agree_across_the_scripts(compose, ha_services):
    primary = ha_services["postgres"]["command"]
    # The primary keeps every base setting, and adds those of a synchronous standby.
    base = compose["services"]["postgres"]["command"]
    assert primary[:len(base)] == base
    settings = dict(primary[i + 1].split("=", 1) for i, a in enumerate(primary) if a == "-c")
    standby_sh, primary_sh, sentinel_sh = (read_deploy(p) for p in ("postgres/ha-standby.sh", "postgres/ha-primary.sh",
                                                                   "redis/sentinel.sh"))
    # The standby connects with the application_name the primary waits for, through the slot the primary made.
    assert "application_name=%s" % settings["synchronous_standby_names"] in standby_sh
    slot = re.search(r"pg_create_physical_replication_slot\('(\w+)'\)", primary_sh).group(1)
    assert "-S %s " % slot in standby_sh
    assert "host replication replicator all scram-sha-256" in primary_sh and "-U replicator" in standby_sh
    # A promoted standby commits without a standby of its own.
    assert "synchronous_standby_names= " in standby_sh
    # Sentinel watches the primary under the name of the servers' URL; the replica follows that primary.
    name = urlparse(env_of(ha_services["hotplate-1"])["HOTPLATE_REDIS_URL"]).path.strip("/")
    assert "sentinel monitor %s ${REDIS_PRIMARY_HOST} 6379 1" % name in sentinel_sh
    env = env_of(ha_services["redis-sentinel"])
    assert env["REDIS_PRIMARY_HOST"] in ha_services
    rep = ha_services["redis-replica"]["command"]
    assert rep[rep.index("--replicaof") + 1] in ha_services and rep[rep.index("--replicaof") + 2] == "6379"
    # The scripts parse.
    for p in ("postgres/ha-standby.sh", "postgres/ha-primary.sh"):
        subprocess.run(["bash", "-n", os.path.join(DEPLOY, p)], check=True)
    subprocess.run(["sh", "-n", os.path.join(DEPLOY, "redis/sentinel.sh")], check=True)
