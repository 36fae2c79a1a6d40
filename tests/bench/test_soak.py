"""make soak's harness (loadtests/soak.py): its trend verdicts on made-up
series, and a quick run end to end against the test stack (3 steps of 4 s),
whose report must have every step's samples and every series' verdict. It
asserts the shape and the arithmetic, never a figure of the run: whether the
server drifts over half an hour is `make soak`'s answer, not a test's."""

import json
import os
import random
import subprocess
import sys

import pytest

import soak

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KEYS = {"minute", "rss_bytes", "heap_allocated", "heap_resident", "fds", "threads", "pool_in_use", "pg_backends", "p99_ms",
        "errors"}


def test_trend_recovers_a_known_slope():
    xs = [float(i) for i in range(20)]
    b, half = soak.trend(xs, [3.0 + 2.5 * x for x in xs])
    assert b == pytest.approx(2.5) and half == pytest.approx(0, abs=1e-9)
    rng = random.Random(7)
    b, half = soak.trend(xs, [100 + 2.5 * x + rng.gauss(0, 1) for x in xs])
    assert b - half <= 2.5 <= b + half


def test_a_leak_grows_and_noise_is_flat():
    minutes = [float(i) for i in range(30)]
    leak = [200e6 + 3e6 * m for m in minutes]  # 3 MB a minute
    assert soak.verdict("rss_bytes", leak, minutes, 6)["verdict"] == "growing"
    rng = random.Random(3)
    noise = [200e6 + rng.gauss(0, 2e5) for _ in minutes]
    assert soak.verdict("rss_bytes", noise, minutes, 6)["verdict"] == "flat"
    # A tiny but steady drift is flat while its whole change stays under the floor (1 MiB here).
    creep = [200e6 + 1000 * m for m in minutes]
    v = soak.verdict("rss_bytes", creep, minutes, 6)
    assert v["verdict"] == "flat" and v["fitted_change"] == pytest.approx(1000 * 23)
    # The settling steps are left out: a jump in the first minutes does not read as growth.
    settling = [100e6 if m < 6 else 200e6 for m in minutes]
    assert soak.verdict("rss_bytes", settling, minutes, 6)["verdict"] == "flat"
    assert soak.verdict("p99_ms", [None] * 30, minutes, 6)["verdict"] == "no data"


@pytest.mark.skipif(not os.environ.get("HOTPLATE_BIN") or not os.environ.get("HOTPLATE_PG_URL"),
                    reason="needs the make test environment (HOTPLATE_BIN, HOTPLATE_PG_URL, ...)")
def test_quick_soak_end_to_end(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "tests"))
    p = subprocess.run([sys.executable, os.path.join(REPO, "loadtests", "soak.py"), "--quick", "--use-env-stack",
                        "--reports-dir", str(tmp_path)], capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    [d] = os.listdir(tmp_path)
    r = json.loads((tmp_path / d / "soak.json").read_text())
    assert r["settings"]["steps"] == 3 and len(r["steps"]) == 3
    for s in r["steps"]:
        assert KEYS <= set(s), sorted(KEYS - set(s))
        assert s["rss_bytes"] > 0 and s["fds"] > 0 and s["threads"] >= 2 and s["pg_backends"] >= 1
    assert [s["minute"] for s in r["steps"]] == sorted(s["minute"] for s in r["steps"])
    assert r["peak_rps"] > 0 and r["sent"] > 0
    assert set(r["trends"]) == {k for k, _, _, _ in soak.SERIES}
    assert all(t["verdict"] in ("flat", "growing", "shrinking", "no data") for t in r["trends"].values())
    md = (tmp_path / d / "soak.md").read_text()
    assert md == p.stdout.rstrip("\n") + "\n"
    assert "| step | minute | RSS |" in md and "| series | first | last | slope |" in md and "Verdict: " in md
