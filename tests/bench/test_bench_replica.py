"""The read-scaling harness's report (loadtests/bench_replica.py) on canned
rounds: every round's row, the medians, on ÷ off, the per-round ratios'
range and the p-value, and its command line, so that docs/BENCHMARKS.md can
paste it. No server: the measurement itself is make bench-replica's."""

import re

import bench_replica


def canned():
    a = bench_replica.parse_args(["--rounds", "3", "--duration", "2", "--threads", "1", "--scale", "0.05"])
    results = {"menu": {"off": [1000.0, 1100.0, 900.0], "on": [1000.0, 1210.0, 810.0]},
               "history": {"off": [500.0, 400.0, 600.0], "on": [1000.0, 800.0, 1200.0]}}
    return a, results


def test_report_rows_and_ratios():
    a, results = canned()
    text = bench_replica.render(a, results, 1764806400)
    assert "`loadtests/bench_replica.py --rounds 3 --duration 2 --threads 1 --scale 0.05`" in text
    assert "Measured 2025-12-04 00:00 UTC" in text
    rows = [l for l in text.splitlines() if re.match(r"\| (menu|history) \| \d \|", l)]
    assert len(rows) == 6
    assert "| menu | 2 | 1,100 | 1,210 | 1.100 |" in rows
    assert "| history | 3 | 600 | 1,200 | 2.000 |" in rows
    summary = {l.split(" | ")[0].strip("| "): l for l in text.splitlines() if re.match(r"\| (menu|history) \| [\d,]+ \|", l)}
    # Medians: menu 1,000 off and 1,000 on; history 500 and 1,000.
    assert summary["menu"].startswith("| menu | 1,000 | 1,000 | 1.000 | 0.900 to 1.100 (median 1.000) |")
    assert summary["history"].startswith("| history | 500 | 1,000 | 2.000 | 2.000 to 2.000 (median 2.000) |")
    # Three rounds a side cannot separate anything at the 5% level: the p-value is printed as it is.
    p = float(summary["history"].rstrip(" |").rsplit("| ", 1)[1])
    assert 0 < p <= 1


def test_defaults_are_short():
    a = bench_replica.parse_args([])
    # About two minutes on this machine: a benchmark someone runs, not a soak.
    assert a.rounds * len(bench_replica.LOADS) * 2 * (a.duration + 1) < 180
    assert a.binary is None
