"""A quick bench of one scenario end to end, as CI runs it under make test:
loadtests/bench.py --quick --scenario menu_cache against the test stack
(HOTPLATE_BIN, HOTPLATE_PG_URL, HOTPLATE_REDIS_URL, HOTPLATE_TOKENS), then the
same tree against that report as a baseline.

It asserts the report's structure and the mechanisms (ABAB order, the flag
really switched, the profiles captured in folded stacks and pprof's format,
their diff and differential flame graph, history appended), never a
performance figure: whether the cache helps is the benchmark's answer, not a
test's. Skipped without HOTPLATE_BIN."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BENCH = os.path.join(REPO, "loadtests", "bench.py")
BIN = os.environ.get("HOTPLATE_BIN")
SVG = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.skipif(not BIN or not os.environ.get("HOTPLATE_PG_URL"),
                                reason="needs the make test environment (HOTPLATE_BIN, HOTPLATE_PG_URL, ...)")


def run_bench(args, timeout):
    # The harness imports tests/hplib, as `make bench` gives it.
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "tests"))
    p = subprocess.run([sys.executable, BENCH, "--use-env-stack", "--quick"] + args, capture_output=True, text=True, timeout=timeout,
                       env=env)
    return p


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    p = run_bench(["--scenario", "menu_cache", "--reports-dir", str(d), "--time-limit", "200"], 240)
    assert p.returncode == 0, p.stderr[-3000:]
    [stamp] = [e for e in os.listdir(d) if e != "history.jsonl"]
    return d, d / stamp, p


def test_report_files(first):
    _, out, p = first
    for f in ("report.md", "report.json", "server.log"):
        assert (out / f).is_file(), f
    assert (out / "charts" / "menu_cache.png").is_file()
    assert (out / "profiles" / "menu_cache-before-cpu.folded").stat().st_size > 0
    assert (out / "profiles" / "menu_cache-after-cpu.folded").stat().st_size > 0
    # The terminal table and the progress display.
    assert p.stdout.splitlines()[0].split()[:2] == ["scenario", "metric"]
    assert "menu_cache: run 5 of 5, after" in p.stderr and "left]" in p.stderr


def test_cpu_profiles_in_pprof_format_and_their_diff(first):
    # Shapes, never figures: the .pb.gz files are gzip, pprof's diff has its header and columns, the flame graph
    # is an SVG whose frames are coloured and carry both counts.
    _, out, _ = first
    for side in ("before", "after"):
        with open(out / "profiles" / f"menu_cache-{side}-cpu.pb.gz", "rb") as f:
            assert f.read(2) == b"\x1f\x8b"
    r = json.loads((out / "report.json").read_text())
    d = r["scenarios"][0]["cpu_diff"]
    root = ET.parse(out / d["flame_diff"]).getroot()
    fills = [g.find(SVG + "rect").get("fill") for g in root.iter(SVG + "g")]
    assert fills and all(re.fullmatch(r"rgb\(\d+,\d+,\d+\)", f) for f in fills)
    tips = [g.find(SVG + "title").text for g in root.iter(SVG + "g")]
    assert all(re.search(r"after \d+ samples .* before \d+ samples .* change [+-][\d.]+ points", t) for t in tips)
    if shutil.which("go") is None:
        assert "go is not installed" in d["error"]
        return
    assert "error" not in d, d
    assert d["command"] == ("go tool pprof -top -diff_base profiles/menu_cache-before-cpu.pb.gz "
                            "profiles/menu_cache-after-cpu.pb.gz")
    assert "Type: cpu" in d["top"] and any(line.startswith("Duration:") for line in d["top"])
    assert any(line.split() == ["flat", "flat%", "sum%", "cum", "cum%"] for line in d["top"])
    assert (out / d["top_file"]).read_text().splitlines()[:len(d["top"])] == d["top"]
    assert "Type: cpu" in (out / d["cum_file"]).read_text()
    assert d["largest_drop"] is None or set(d["largest_drop"]) >= {"function", "cum", "cum_s"}
    md = (out / "report.md").read_text()
    assert f"`{d['command']}`" in md and "[profiles/menu_cache-cpu-diff.svg](profiles/menu_cache-cpu-diff.svg)" in md


def test_report_json_structure(first):
    _, out, _ = first
    r = json.loads((out / "report.json").read_text())
    assert r["mode"] == "bench" and r["settings"]["runs"] == 5
    [sc] = r["scenarios"]
    assert sc["flag"] == "menu_cache" and sc["values"] == {"before": "off", "after": "redis"}
    for label in ("before", "after"):
        assert len(sc["samples"][label]["rps"]) == 5
        assert all(x > 0 for x in sc["samples"][label]["rps"])
        assert len(sc["raw"][label]) == 5
        for run in sc["raw"][label]:
            assert run["wrk"]["requests"] > 0 and run["openloop"]["sent"] > 0
            # Every switch of the flag is followed by unmeasured load before the run's first snapshot.
            assert run["settle"]["requests"] > 0 and run["settle"]["seconds"] >= 0.9
    # The flag really switched: with the cache off no request is a hit and
    # each one runs the menu statement; with Redis, hits.
    assert max(sc["samples"]["before"]["cache_hit_ratio"]) == 0
    assert min(sc["samples"]["before"]["pg_calls_per_req"]) >= 0.99
    assert min(sc["samples"]["after"]["cache_hit_ratio"]) > 0
    for key in sc["main"]:
        c = sc["compare"][key]
        assert c["verdict"] in ("improved", "regressed", "not significant", "no data")
        if c["verdict"] != "no data":
            assert 0 <= c["p"] <= 1 and c["before_ci"][0] <= c["before_median"] <= c["before_ci"][1]
    ceil = r["ceilings"]
    assert set(ceil["samples"]) == {"healthz", "healthz_nolog", "menu_cached", "menu_uncached", "pgbench_menu", "restaurant_get",
                                    "pgbench_pk", "orders", "pgbench_checkout", "pgbench_checkout_pipeline"}
    assert ceil["samples"]["pgbench_menu"][0] > 0 and ceil["samples"]["healthz"][0] > 0 and ceil["samples"]["healthz_nolog"][0] > 0
    assert ceil["samples"]["restaurant_get"][0] > 0 and ceil["samples"]["pgbench_pk"][0] > 0
    md = (out / "report.md").read_text()
    assert "| scenario | metric | before | after | change | significance |" in md and "## Goals and ceilings" in md


def test_baseline_history_and_regression_exit_3(first):
    """One baseline run (each costs half a minute of the lane) against a copy of
    the first report whose throughput is multiplied by 1000: the current tree
    must come out as a regression (exit 3, the line on stdout), and the run is
    appended to the history with its baseline."""
    d, out, _ = first
    r = json.loads((out / "report.json").read_text())
    sc = r["scenarios"][0]
    sc["samples"]["after"]["rps"] = [x * 1000 for x in sc["samples"]["after"]["rps"]]
    fake = d.parent / (d.name + "-fake-baseline")
    fake.mkdir()
    (fake / "report.json").write_text(json.dumps(r))
    p = run_bench(["--baseline", str(fake), "--reports-dir", str(d), "--time-limit", "150"], 200)
    assert p.returncode == 3, p.stderr[-3000:]
    assert "REGRESSION beyond 10.0%: menu_cache rps" in p.stdout
    lines = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    assert [x["mode"] for x in lines] == ["bench", "baseline"]
    assert lines[1]["baseline"] == str(fake)
    [stamp] = [e for e in os.listdir(d) if e not in ("history.jsonl", out.name)]
    r = json.loads((d / stamp / "report.json").read_text())
    [sc] = r["scenarios"]
    assert list(sc["values"]) == ["current"] and len(sc["samples"]["current"]["rps"]) == 5
    assert "ceilings" not in r
    assert r["verdict"]["regressions"]
