"""Canned reports for the report tests: the shape loadtests/bench.py builds,
with fixed numbers, so report generation is tested without a server."""

from bench_scenarios import BY_FLAG, METRICS
from hplib import stats


def openloop(rate, p99_us, errors=0, count=100):
    lat = {"count": count, "mean_us": p99_us / 3, "p50_us": p99_us / 4, "p90_us": p99_us / 2, "p99_us": p99_us,
           "p999_us": p99_us * 1.5, "max_us": p99_us * 2}
    status = {"2xx": count - errors, "5xx": errors}
    return {"sent": count, "errors": errors, "latency": lat,
            "steps": [{"rate": rate, "sent": count, "errors": errors, "status": status, "socket_errors": 0, "timeouts": 0, "latency": lat}]}


def scenario(flag, before, after, labels=("before", "after")):
    sc = BY_FLAG[flag]
    samples = {labels[0]: {k: list(before.get(k, [None] * 5)) for k in METRICS},
               labels[1]: {k: list(after.get(k, [None] * 5)) for k in METRICS}}
    values = {labels[0]: sc.before, labels[1]: sc.after} if labels == ("before", "after") else {labels[0]: sc.after, labels[1]: sc.after}
    return {"flag": flag, "title": sc.title, "load": sc.load, "connections": sc.connections, "main": list(sc.main), "notes": sc.notes,
            "extra_flags": sc.flags, "warmup_rps": {labels[0]: 1000.0, labels[1]: 5000.0}, "open_rate": 500.0, "values": values,
            "samples": samples, "raw": {labels[0]: [], labels[1]: []},
            "profiles": {labels[0]: {"cpu": {"file": f"profiles/{flag}-before-cpu.folded",
                                             "top": [{"function": "hp_total__compute_naive", "self": 80, "self_share": 0.8,
                                                      "inclusive_share": 0.9}], "watch": {"hp_total__compute_naive": 0.9}},
                                     "explain:order_history": {"file": "profiles/x.json",
                                                               "summary": {"top_node": "Limit", "seq_scans": ["orders"], "index_scans": [],
                                                                           "execution_time_ms": 12.5}}},
                         labels[1]: {"cpu": {"error": "501 not_supported"}}},
            "compare": {k: stats.compare(samples[labels[0]][k], samples[labels[1]][k], METRICS[k].higher_is_better)
                        for k in METRICS}}


DIFF_TOP = ["File: hotplate", "Type: cpu", "Duration: 4s, Total samples = 1.08s (27.00%)",
            "Showing nodes accounting for -0.49s, 45.37% of 1.08s total",
            "      flat  flat%   sum%        cum   cum%",
            "    -0.23s 21.30% 21.30%     -0.25s 23.15%  hp_total__compute_naive",
            "     0.02s  1.85% 19.44%      0.02s  1.85%  writev"]


def cpu_diff(flag, drop="hp_total__compute_naive"):
    """What loadtests/bench_pprof.py's cpu_diff returns for a scenario, canned."""
    return {"flame_diff": f"profiles/{flag}-cpu-diff.svg",
            "command": f"go tool pprof -top -diff_base profiles/{flag}-before-cpu.pb.gz profiles/{flag}-after-cpu.pb.gz",
            "cum_command": f"go tool pprof -top -cum -normalize -diff_base profiles/{flag}-before-cpu.pb.gz "
                           f"profiles/{flag}-after-cpu.pb.gz",
            "totals": {"before": "Duration: 3s, Total samples = 1.08s (36.00%)", "after": "Duration: 3s, Total samples = 0.97s (32.33%)"},
            "top_file": f"profiles/{flag}-cpu-diff.txt", "cum_file": f"profiles/{flag}-cpu-diff-cum.txt", "top": list(DIFF_TOP),
            "largest_drop": drop and {"function": drop, "cum": "-250ms", "cum_pct": 23.15, "cum_s": -0.25}}


def report(mode="lab"):
    labels = ("before", "after")
    scs = [
        scenario("menu_cache", {"rps": [2400, 1900, 3600, 2800, 2600], "p99_ms": [5.6, 2.3, 434.1, 3.1, 7.7],
                                "pg_calls_per_req": [1.0] * 5, "cache_hit_ratio": [0.0] * 5},
                 {"rps": [17000, 14300, 26600, 16000, 18500], "p99_ms": [2.8, 1.2, 3.8, 2.5, 3.0],
                  "pg_calls_per_req": [0.0] * 5, "cache_hit_ratio": [100.0] * 5}, labels),
        scenario("order_total", {"rps": [100, 101, 99, 102, 98], "cpu_us_per_req": [900, 910, 905, 899, 902]},
                 {"rps": [100, 103, 97, 101, 99], "cpu_us_per_req": [400, 405, 401, 399, 398]}, labels),
    ]
    scs[1]["cpu_diff"] = cpu_diff("order_total")
    r = {"version": 1, "timestamp": "20260101T000000Z", "mode": mode,
         "machine": {"cpus": 2, "cpu": "canned CPU", "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1"},
         "git": {"commit": "abc1234", "dirty": False}, "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [2.0, 2.0, 2.0],
         "settings": {"runs": 5, "duration": 1, "warmup": 1, "profile_seconds": 1, "open_fraction": 0.5, "scale": 0.05, "threads": 1,
                      "quick": True, "regression_threshold": 10.0},
         "scenarios": scs, "skipped": ["leak: the server has no such flag yet; scenario skipped"], "elapsed_s": 42.0}
    r["ceilings"] = {"connections": 32, "rounds": 2,
                     "samples": {"healthz": [40000, 42000], "healthz_nolog": [41000, 42500], "menu_cached": [18000, 19000], "menu_uncached": [1400, 1500],
                                 "pgbench_menu": [4600, 4700], "orders": [600, None], "pgbench_checkout": [1700, 1800],
                                 "restaurant_get": [14500, 15500], "pgbench_pk": [58000, 62000], "pgbench_checkout_pipeline": [2900, 3100]},
                     "menu_half_peak_openloop": [openloop(9000, 2500), openloop(9000, 3100)], "payment_latency_ms_for_orders": 0}
    steps = [dict(openloop(r_, p)["steps"][0]) for r_, p in [(100, 900), (200, 1500), (300, 150000), (100, 800)]]
    steps[2] = dict(openloop(300, 150000, errors=7)["steps"][0])
    r["peak_hour"] = {"mix": {"browse": 1, "menu": 2}, "closed_loop_peak_rps": 280.0, "shape": [0.4, 0.7, 1.1, 0.4], "step_seconds": 2,
                      "openloop": {"steps": steps}, "saturation_p99_ms": 100.0, "saturation_rate": 300}
    return r
