"""Unit tests of loadtests/bench_report.py on canned reports (tests/bench/
canned.py): the files a run writes, the structure of report.json and
report.md, the terminal table, history.jsonl, the regression verdict of a
baseline comparison, and the folded-profile summary."""

import json
import sys

import pytest

import bench_report
import canned
from bench_scenarios import METRICS
from hplib import stats


def test_write_all_writes_every_output(tmp_path):
    out = tmp_path / "20260101T000000Z"
    r = canned.report()
    bench_report.write_all(r, str(out), str(tmp_path))
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    data = json.loads((out / "report.json").read_text())
    for key in ("timestamp", "mode", "machine", "git", "settings", "scenarios", "ceilings", "peak_hour", "verdict"):
        assert key in data
    for sc in data["scenarios"]:
        assert set(sc["compare"]) >= set(sc["main"])
        for label in sc["values"]:
            assert all(len(v) == 5 for v in sc["samples"][label].values())
    hist = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(hist) == 1
    line = json.loads(hist[0])
    assert line["timestamp"] == "20260101T000000Z"
    assert set(line["scenarios"]) == {"menu_cache", "order_total"}
    # A second run appends, it does not overwrite.
    bench_report.write_all(canned.report(), str(tmp_path / "second"), str(tmp_path))
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 2


def test_charts_are_png_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    r = canned.report()
    bench_report.write_all(r, str(tmp_path), str(tmp_path))
    for name in ("menu_cache.png", "order_total.png", "peak_hour.png"):
        with open(tmp_path / "charts" / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "![menu_cache](charts/menu_cache.png)" in (tmp_path / "report.md").read_text()


def test_markdown_has_the_summary_goals_and_significance(tmp_path):
    r = canned.report()
    bench_report.write_all(r, str(tmp_path), str(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "| scenario | metric | before | after | change | significance |" in md
    # Throughput 2,400 -> 17,000 over 5 runs each, fully separated: significant.
    assert "improved, significant (p=0.008)" in md
    # p99 of menu_cache: the before runs scatter from 2.3 to 434 ms, overlapping the after runs: not significant.
    assert "not significant" in md
    # order_total throughput did not change: printed as not significant.
    row = next(line for line in md.splitlines() if line.startswith("| order_total | throughput"))
    assert "not significant" in row
    assert "## Goals and ceilings" in md and "| cached GET /restaurants/{id}/menu / GET /healthz (req/s) | 0.45: 18,500 / 41,000" in md
    assert "≥ 0.6 | no |" in md
    # The primary-key read against the bare lookup, and the checkout against the pipelined transaction.
    assert "| GET /restaurants/{id} / pgbench bare primary-key lookup (req/s / tps) | 0.25: 15,000 / 60,000 (rounds 0.25–0.25) | ≥ 0.6 | no |" in md
    assert "| POST /orders / pgbench checkout transaction in \\startpipeline (req/s / tps) | 0.20: 600 / 3,000" in md
    assert "| cached menu p99 at half its peak rate (9,000 req/s, open loop) | 2.80 ms (rounds 2.50–3.10) | ≤ 2.0 ms | no |" in md
    # The orders ceiling round with errors is left out, not counted as 0.
    assert "| POST /orders (payment_latency_ms=0) | 600 | 600 |" in md
    assert "cached menu p99 at half its peak rate (9,000 req/s, open loop) | 2.80 ms" in md
    assert "Saturation" in md and "**300 req/s**" in md
    assert "| 3 | 300 | 100 | 7 (7 5xx) |" in md  # the peak-hour step's errors, broken down
    assert "`hp_total__compute_naive` 80.0%" in md and "on the stack (inclusive share): `hp_total__compute_naive` 90.0%" in md
    assert "top node Limit, seq scans ['orders']" in md
    assert "failed: 501 not_supported" in md
    assert "skipped: leak" in md
    assert "93.8%" in md  # the interval's real coverage with 5 runs


def test_markdown_has_the_cpu_diff(tmp_path):
    r = canned.report()
    bench_report.write_all(r, str(tmp_path), str(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert "differential flame graph ([profiles/order_total-cpu-diff.svg](profiles/order_total-cpu-diff.svg))" in md
    assert ("`go tool pprof -top -diff_base profiles/order_total-before-cpu.pb.gz profiles/order_total-after-cpu.pb.gz`"
            in md)
    assert "largest drop on the stack, from `go tool pprof -top -cum -normalize -diff_base" in md
    assert "`hp_total__compute_naive` -250 ms" in md
    # The diff's first lines, as pprof printed them, in a code block.
    block = md.split("the first lines of the diff:\n\n```\n", 1)[1].split("\n```", 1)[0]
    assert block.splitlines() == canned.DIFF_TOP
    # A scenario without a diff (menu_cache's after profile failed here) gets no diff lines.
    menu = md.split("## menu_cache", 1)[1].split("## order_total", 1)[0]
    assert "CPU diff" not in menu
    # A diff that failed says why.
    r["scenarios"][1]["cpu_diff"] = {"error": "go is not installed"}
    assert "- CPU diff: go is not installed" in bench_report.markdown(r, [], None)


def test_terminal_table():
    text = bench_report.terminal(canned.report())
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["scenario", "metric"]
    assert any(line.startswith("menu_cache") and "improved, significant" in line for line in lines)
    assert any("saturation" in line and "300 req/s" in line for line in lines)


def test_regressions_need_significance_and_the_threshold():
    r = canned.report(mode="baseline")
    v = bench_report.regressions(r, 10.0)
    # menu_cache's throughput rose, its calls fell: improvements, not regressions.
    assert not v["regressions"]
    assert {(e["flag"], e["metric"]) for e in v["improvements"]} >= {("menu_cache", "rps"), ("order_total", "cpu_us_per_req")}
    # Swap before and after: the same differences are now significant regressions.
    for sc in r["scenarios"]:
        for k, c in list(sc["compare"].items()):
            s = sc["samples"]
            sc["compare"][k] = stats.compare(s["after"][k], s["before"][k], METRICS[k].higher_is_better)
    v = bench_report.regressions(r, 10.0)
    assert ("menu_cache", "rps") in {(e["flag"], e["metric"]) for e in v["regressions"]}
    # A threshold above the change lets it pass.
    assert not [e for e in bench_report.regressions(r, 1000.0)["regressions"] if e["metric"] == "rps" and e["flag"] == "menu_cache"]


def test_folded_top():
    text = "main;loop;hp_total__compute_naive 80\nmain;loop;writev 15\nmain;other 5\nbad line\n"
    top = bench_report.folded_top(text)
    assert top[0] == {"function": "hp_total__compute_naive", "self": 80, "self_share": 0.8, "inclusive_share": 0.8}
    assert [t["function"] for t in top] == ["hp_total__compute_naive", "writev", "other"]
    assert bench_report.folded_top("") == []
    share = bench_report.folded_share("main;hp_quote;hp_total__compute_naive 80\nmain;writev 20\n", ("hp_total__compute_naive", "hp_x"))
    assert share == {"hp_total__compute_naive": 0.8, "hp_x": 0.0}


def test_bench_doc_pastes_between_the_markers(tmp_path, monkeypatch):
    import bench_doc
    out = tmp_path / "20260101T000000Z"
    r = canned.report()
    bench_report.write_all(r, str(out), str(tmp_path))
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# title\n\nbefore\n\n{bench_doc.BEGIN}\nold text\n{bench_doc.END}\n\nafter\n")
    monkeypatch.setattr(bench_doc, "DOC", str(doc))
    monkeypatch.setattr(sys, "argv", ["bench_doc.py", str(out)])
    assert bench_doc.main() == 0
    text = doc.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "old text" not in text
    # The summary table is the one make lab prints, unchanged.
    assert bench_report.terminal(json.loads((out / "report.json").read_text())) in text
    assert "| goal | measured (median) | goal | met |" in text and "| step | rate (req/s) |" in text
    # Profile files are named, not linked (reports/ is not in the repository).
    assert "/profiles/x.json`): top node Limit" in text and "](profiles/" not in text


def test_step_errors_names_each_kind_of_answer():
    """openloop's error_kinds (status and error code) break a step's errors down; a report without them keeps the classes."""
    step = {"errors": 9, "status": {"2xx": 91, "5xx": 9}, "socket_errors": 2, "timeouts": 0,
            "error_kinds": [{"status": 503, "code": "overloaded", "count": 5}, {"status": 503, "code": "pool_exhausted", "count": 1},
                            {"status": 502, "code": "", "count": 1}]}
    assert bench_report.step_errors(step) == "9 (5 503 overloaded, 1 503 pool_exhausted, 1 502 without a code, 2 socket)"
    del step["error_kinds"]
    assert bench_report.step_errors(step) == "9 (9 5xx, 2 socket)"
