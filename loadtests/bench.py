#!/usr/bin/python3
"""Before/after benchmarks of hotplate's scenarios: make bench and make lab.

    loadtests/bench.py [--scenario FLAG ...] [--quick]          make bench [SCENARIO=menu_cache]
    loadtests/bench.py --lab [--quick]                          make lab [QUICK=1]
    loadtests/bench.py --baseline reports/<timestamp>           make bench BASELINE=reports/<timestamp>
    loadtests/bench.py --help                                   every knob

A scenario is a runtime flag with a bottleneck value ("before") and the
optimized default ("after"); loadtests/bench_scenarios.py lists them. For each
one the harness loads the same request file (loadtests/bench_workload.py)
against one server, switching the flag with POST /debug/flags:

1. warm-up: each value once, closed loop (wrk), to find both peaks;
2. runs, alternated before, after, before, after... (--runs of each, at least
   5). A run is a closed-loop wrk run (throughput, and around it the server's
   CPU time, pg_stat_statements reset before and read after, the cache, pool
   and heap sections of /debug/perf), then an open-loop run (loadtests/
   openloop) at a fixed arrival rate, the same for both values: --open-fraction
   of the lower of the two peaks. Latency is measured from each request's
   intended send time, so it is free of coordinated omission;
3. profiles of each value under load: a CPU profile, a heap profile, or the
   EXPLAIN of the statement concerned, as the scenario lists. A CPU profile
   is stored as folded stacks and in pprof's format, and the two sides are
   compared (loadtests/bench_pprof.py): `go tool pprof -top -diff_base` and a
   differential flame graph (loadtests/flame_diff.py).

Each metric is compared with medians, distribution-free confidence intervals
of the medians, and a two-sided Mann-Whitney U test (tests/hplib/stats.py);
a difference that is not significant at 5% is printed as such.

The same run measures the ceilings (loadtests/bench_ceilings.py): GET /healthz
throughput (and again with request_log=off, the request log's cost), and pgbench on the menu and checkout SQL at the same concurrency;
and, with --lab or --peak-hour, a peak-hour shape (lunch and dinner ramps in a
few seconds per step) on the customer journey mix, with the rate at which p99
crosses --saturation-p99-ms.

Output: a table on stdout, and reports/<timestamp>/ with report.md,
report.json, charts/*.png and profiles/; one summary line is appended to
reports/history.jsonl. With --baseline, the scenarios of a saved report are
run at the current defaults and compared with its "after" runs: the exit
status is 3 when a main metric regressed significantly by more than
--regression-threshold. Otherwise the exit status is 0, or 1 when something
did not work (a build, the stack, the server, a tool), never because of a goal.

Everything is started here and stopped on every exit path; a watchdog
(--time-limit) bounds the run. By default the harness builds build-bench/ and
recreates a private stack in .hotplate/lab; --use-env-stack instead uses the
stack of the environment (HOTPLATE_PG_URL, HOTPLATE_REDIS_URL, HOTPLATE_BIN,
HOTPLATE_TOKENS), as tests/bench does under make test.

The harness uses tests/hplib: run it with PYTHONPATH=tests from the
repository's root, as the make targets do.
"""

import argparse
import datetime
import json
import os
import signal
import sys
import time
import zlib

import bench_ceilings
import bench_pprof
import bench_proc as bp
import bench_report
import bench_workload as wl
from bench_scenarios import BY_FLAG, METRICS, SCENARIOS
from hplib import stats
from hplib.describe import describe

REPO = bp.REPO
REQUESTS_PER_FILE = 20000
FLAG_ACTION_SECONDS = 300


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", action="append", default=[], help="a scenario flag (repeatable; default: all)")
    p.add_argument("--lab", action="store_true", help="all scenarios, ceilings and the peak-hour shape, then a summary")
    p.add_argument("--quick", action="store_true", help="shorter runs and a smaller seed (make lab QUICK=1)")
    p.add_argument("--baseline", help="a saved report directory (or its report.json) to compare the current tree with")
    p.add_argument("--regression-threshold", type=float, default=10.0,
                   help="percent change of a main metric, in its bad direction, that fails a baseline comparison (default 10)")
    p.add_argument("--runs", type=int, help="runs of each value, at least 5 (default 6, quick 5; with --baseline, the baseline's)")
    p.add_argument("--duration", type=float, help="seconds per closed-loop and per open-loop run (default 3, quick 1)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per value (default 2, quick 1)")
    p.add_argument("--settle", type=float,
                   help="seconds of unmeasured load after each switch of the flag, before a run is measured (default 1)")
    p.add_argument("--profile-seconds", type=int, help="seconds per profile (default 3, quick 2)")
    p.add_argument("--open-fraction", type=float, help="open-loop rate as a share of the lower peak (default 0.5)")
    p.add_argument("--scale", type=float, help="seed scale (default 0.2, quick 0.05)")
    p.add_argument("--threads", type=int, help="server worker threads (default 1: the server, not the spare core, is measured)")
    p.add_argument("--peak-hour", action="store_true", help="run the peak-hour shape (always with --lab)")
    p.add_argument("--no-ceilings", action="store_true", help="skip the ceilings")
    p.add_argument("--mix", help="steps per journey of the peak-hour mix, e.g. browse=1,menu=2,quote=1,order=1,history=1,order_get=1")
    p.add_argument("--saturation-p99-ms", type=float,
                   help="p99 that marks saturation in the peak-hour shape (default: twice the lightest step's p99, at least 5 ms)")
    p.add_argument("--reports-dir", default=os.path.join(REPO, "reports"), help="where reports/<timestamp>/ and history.jsonl go")
    p.add_argument("--use-env-stack", action="store_true", help="use the environment's stack, server binary and tokens")
    p.add_argument("--time-limit", type=int, help="watchdog in seconds (default 1500, quick 420)")
    a = p.parse_args(argv)
    check_args(p, a)
    return a


def apply_defaults(a, baseline=None):
    """Fills what the command line left unset: from the baseline's settings when
    comparing with one (the same runs, durations, seed scale and threads, so the
    load is the same), then from the defaults (shorter with --quick)."""
    if baseline:
        for k, v in baseline.get("settings", {}).items():
            if k == "quick":
                a.quick = a.quick or bool(v)
            elif k in ("runs", "duration", "warmup", "settle", "profile_seconds", "scale", "open_fraction",
                       "threads") and getattr(a, k) is None:
                setattr(a, k, v)
    q = a.quick
    a.open_fraction = a.open_fraction or 0.5
    a.threads = a.threads or 1
    a.runs = a.runs or (5 if q else 6)
    a.duration = a.duration or (1.0 if q else 3.0)
    a.warmup = a.warmup or (1.0 if q else 2.0)
    # wrk runs whole seconds, so 1 s is the shortest settle there is.
    a.settle = a.settle or 1.0
    # Quick runs still profile for 2 s: at gperftools' 100 Hz, 1 s of a server sharing the machine with make test's
    # other lanes once gave no sample at all.
    a.profile_seconds = a.profile_seconds or (2 if q else 3)
    a.scale = a.scale or (0.05 if q else 0.2)
    a.time_limit = a.time_limit or (420 if q else 1500)
    return a


def check_args(p, a):
    if a.runs is not None and a.runs < 5:
        p.error("--runs must be at least 5: fewer cannot show a significant difference with the Mann-Whitney U test")
    unknown = [s for s in a.scenario if s not in BY_FLAG]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(BY_FLAG)}")
    if a.baseline and a.scenario:
        p.error("--baseline runs the scenarios of the baseline; do not combine it with --scenario")


class Bench:
    """One harness run: the server, the data, the results."""

    def __init__(self, args, progress, out_dir):
        self.args, self.progress, self.out = args, progress, out_dir
        self.work = os.path.join(out_dir, "work")
        self.profiles = os.path.join(out_dir, "profiles")
        for d in (self.work, self.profiles):
            os.makedirs(d, exist_ok=True)

    # ------------------------------------------------------------ flags

    def flag_values(self):
        return {k: v["value"] for k, v in self.server.admin_json("GET", "/debug/perf?section=flags")["flags"].items()}

    def set_flags(self, flags):
        """POSTs the flags and waits for any asynchronous action they start (the
        index scenario's CREATE/DROP INDEX CONCURRENTLY) to be done."""
        if not flags:
            return
        self.server.admin_json("POST", "/debug/flags", flags)
        deadline = time.monotonic() + FLAG_ACTION_SECONDS
        while True:
            status, body = self.server.request("GET", "/debug/flags")
            actions = {}
            if status == 200 and body.strip():
                actions = json.loads(body).get("actions") or {}
            pending = {k: a for k, a in actions.items() if k in flags and a.get("state") != "done"}
            failed = {k: a for k, a in pending.items() if a.get("state") == "failed"}
            if failed:
                raise bp.BenchError(f"flag action failed: {failed}")
            if not pending:
                break
            if time.monotonic() > deadline:
                raise bp.BenchError(f"flag actions still running after {FLAG_ACTION_SECONDS}s: {pending}")
            time.sleep(0.2)
        values = self.flag_values()
        wrong = {k: values.get(k) for k, v in flags.items() if str(values.get(k)) != str(v)}
        if wrong:
            raise bp.BenchError(f"flags not applied: asked {flags}, server has {wrong}")

    # ------------------------------------------------------------ one run

    def perf(self):
        return self.server.admin_json("GET", "/debug/perf?section=cache,pool,heap")

    def settle(self, req_file, connections):
        """Unmeasured load between a switch of the flag and the run that measures its value.

        A switch takes effect on the server's next requests, and some values
        act on state that the other value left behind: leak=off trims each
        thread's list at its next view, freeing what the leak=on run before it
        had kept. Measured from the switch, the off run's heap growth was that
        release, about -70 B a request, not the flat heap of a bounded list.
        The settle lets such one-off work happen before the run's first
        snapshot, under the same load, so every run measures its value's
        steady state."""
        w = bp.wrk(self.server.port, req_file, connections, self.args.settle, bp.seq_base())
        return {"seconds": w["duration_s"], "requests": w["requests"]}

    def one_run(self, req_file, connections, rate, record_raw):
        """A closed-loop run then an open-loop run at `rate`; returns the metrics."""
        a = self.args
        self.server.admin_json("POST", "/debug/pg/statements/reset")
        p0, c0 = self.perf(), self.server.cpu_seconds()
        w = bp.wrk(self.server.port, req_file, connections, a.duration, bp.seq_base())
        c1, p1 = self.server.cpu_seconds(), self.perf()
        stmts = self.server.admin_json("GET", "/debug/pg/statements?limit=100")["statements"]
        ol = None
        if rate:
            ol = bp.openloop(self.openloop_bin, self.server.port, req_file, f"{rate:.1f}:{a.duration}",
                             max(connections, 64), 5000)
        m = metrics_of(w, ol, c1 - c0, p0, p1, stmts)
        record_raw.append({"wrk": w, "openloop": ol, "cpu_s": c1 - c0,
                           "statements": [{k: s.get(k) for k in ("name", "calls", "total_exec_time_ms", "rows", "hit_ratio")}
                                          for s in stmts[:10]]})
        if not self.server.alive():
            raise bp.BenchError(f"the server died; see {self.server.log_path}")
        return m

    # ------------------------------------------------------------ profiles

    def capture_profiles(self, name, kinds, req_file, connections, watch=()):
        """Each profile kind under load (wrk in the background); returns {kind: summary}."""
        out = {}
        secs = self.args.profile_seconds
        for kind in kinds:
            path_base = os.path.join(self.profiles, name)
            if kind.startswith("explain:"):
                stmt = kind.split(":", 1)[1]
                plan = self.server.admin_json("GET", f"/debug/pg/explain?statement={stmt}")
                with open(f"{path_base}-explain-{stmt}.json", "w") as f:
                    json.dump(plan, f, indent=1)
                out[kind] = {"file": os.path.relpath(f"{path_base}-explain-{stmt}.json", self.out), "summary": plan.get("summary")}
                continue
            # A CPU profile is taken twice under the same load, one window after the other: pprof's profile.proto
            # (the pprof diff), then folded stacks (the report's top functions and the differential flame graph).
            # A window's conversion (the server's pprof-encode child) can take seconds on a loaded machine, so the
            # proto comes first and wrk runs until both have answered, then is stopped: a fixed wrk duration once
            # ended before the second window began, which then sampled an idle server.
            cpu = kind == "cpu"
            wrk_p = bp.start_wrk(self.server.port, req_file, connections, 2 * secs + 130 if cpu else secs + 3, bp.seq_base(),
                                 os.path.join(self.work, f"{name}-{kind}-wrk.txt"))
            proto = None
            try:
                time.sleep(0.5)
                if cpu:
                    proto = self.server.request("GET", f"/debug/pprof/profile?seconds={secs}", timeout=secs + 60)
                    status, body = self.server.request("GET", f"/debug/pprof/profile?seconds={secs}&format=folded", timeout=secs + 60)
                else:
                    status, body = self.server.request("POST", f"/debug/heap/profile?seconds={secs}&format=folded", timeout=secs + 60)
            finally:
                if cpu and wrk_p.poll() is None:
                    wrk_p.send_signal(signal.SIGINT)  # wrk prints its summary and exits
                bp.wait_proc(wrk_p, secs + 30)
            path = f"{path_base}-{kind}.folded"
            if status != 200:
                out[kind] = {"error": f"{status} {body[:200].decode(errors='replace')}"}
                continue
            with open(path, "wb") as f:
                f.write(body)
            text = body.decode(errors="replace")
            out[kind] = {"file": os.path.relpath(path, self.out), "top": bench_report.folded_top(text),
                         "watch": bench_report.folded_share(text, watch)}
            if proto is not None:
                if proto[0] == 200:
                    with open(f"{path_base}-{kind}.pb.gz", "wb") as f:
                        f.write(proto[1])
                    out[kind]["pprof"] = os.path.relpath(f"{path_base}-{kind}.pb.gz", self.out)
                else:
                    out[kind]["pprof_error"] = f"{proto[0]} {proto[1][:200].decode(errors='replace')}"
        return out

    # ------------------------------------------------------------ a scenario

    def scenario(self, sc, baseline_sc=None):
        a, prog = self.args, self.progress
        req_file = wl.write_requests(os.path.join(self.work, f"{sc.flag}.req"),
                                     sc.workload(self.data, REQUESTS_PER_FILE, zlib.crc32(sc.flag.encode())))
        if sc.prepare:
            sc.prepare(self.data)
        self.set_flags(sc.flags)
        result = {"flag": sc.flag, "title": sc.title, "load": sc.load, "connections": sc.connections,
                  "main": list(sc.main), "notes": sc.notes, "extra_flags": sc.flags}
        if baseline_sc is None:
            variants = [("before", sc.before), ("after", sc.after)]
        else:
            variants = [("current", sc.after)]
        peaks = {}
        for label, value in variants:
            prog.log(f"{sc.flag}: warm-up of {sc.flag}={value}")
            self.set_flags({sc.flag: value})
            peaks[label] = bp.wrk(self.server.port, req_file, sc.connections, a.warmup, bp.seq_base())["rps"]
            prog.advance(a.warmup + 1)
        rate = baseline_sc["open_rate"] if baseline_sc else a.open_fraction * min(peaks.values())
        result.update({"warmup_rps": peaks, "open_rate": rate})
        samples = {label: {k: [] for k in METRICS} for label, _ in variants}
        raw = {label: [] for label, _ in variants}
        for i in range(a.runs):
            for label, value in variants:
                prog.log(f"{sc.flag}: run {i + 1} of {a.runs}, {label} ({sc.flag}={value}); open loop at {rate:,.0f} req/s")
                settle = None
                if len(variants) > 1:
                    self.set_flags({sc.flag: value})
                    settle = self.settle(req_file, sc.connections)
                m = self.one_run(req_file, sc.connections, rate, raw[label])
                raw[label][-1]["settle"] = settle
                for k in METRICS:
                    samples[label][k].append(m.get(k))
                prog.advance(2 * a.duration + 1 + (a.settle + 1 if settle else 0))
        result["values"] = {label: value for label, value in variants}
        result["samples"], result["raw"] = samples, raw
        result["profiles"] = {}
        for label, value in variants:
            prog.log(f"{sc.flag}: profiles of {sc.flag}={value}: {', '.join(sc.profiles)}")
            self.set_flags({sc.flag: value})
            result["profiles"][label] = self.capture_profiles(f"{sc.flag}-{label}", sc.profiles, req_file, sc.connections, sc.watch)
            prog.advance((len(sc.profiles) + ("cpu" in sc.profiles)) * (a.profile_seconds + 1))
        self.set_flags({sc.flag: sc.after})
        self.set_flags(self.defaults_of(sc.flags))
        cpu = [result["profiles"].get(label, {}).get("cpu") for label in ("before", "after")]
        if all(cpu) and not any("error" in p for p in cpu):
            prog.log(f"{sc.flag}: go tool pprof -diff_base and the differential flame graph")
            result["cpu_diff"] = bench_pprof.cpu_diff(self.out, sc.flag, cpu[0], cpu[1], self.work)
        if baseline_sc is None:
            result["compare"] = {k: stats.compare(samples["before"][k], samples["after"][k], METRICS[k].higher_is_better)
                                 for k in METRICS}
        else:
            # A baseline made by a baseline run has "current" where a plain run has "after".
            base = baseline_sc["samples"].get("after") or baseline_sc["samples"]["current"]
            result["compare"] = {k: stats.compare(base[k], samples["current"][k],
                                                        METRICS[k].higher_is_better) for k in METRICS}
        return result

    def defaults_of(self, flags):
        if not flags:
            return {}
        d = self.server.admin_json("GET", "/debug/perf?section=flags")["flags"]
        return {k: d[k]["default"] for k in flags}

    # ------------------------------------------------------------ ceilings

    def orders_ceiling_load(self, orders_file, conns):
        """POST /orders with payment_latency_ms=0, as a function returning its req/s (None when an answer failed)."""
        def load():
            self.set_flags({"payment_latency_ms": "0"})
            try:
                w = bp.wrk(self.server.port, orders_file, conns, self.args.duration, bp.seq_base())
            finally:
                self.set_flags(self.defaults_of({"payment_latency_ms": 0}))
            return w["rps"] if w["status_4xx"] + w["status_5xx"] + w["socket_errors"] == 0 else None
        return load

    def ceilings(self):
        """The HTTP and database ceilings and the routes they bound, alternated, in this run."""
        a, prog = self.args, self.progress
        conns = 32
        # Six rounds: the log pair takes turns every round and the three checkout loads every third, so each order
        # comes up equally often, and a median of six is steadier on this shared machine than one of three.
        rounds = 1 if a.quick else 6
        files = {
            "healthz": wl.write_requests(os.path.join(self.work, "healthz.req"), [wl.http_request("GET", "/healthz")]),
            "menu": wl.write_requests(os.path.join(self.work, "ceiling-menu.req"), wl.menu_zipf(self.data, REQUESTS_PER_FILE, 7)),
            "restaurant": wl.write_requests(os.path.join(self.work, "ceiling-restaurant.req"),
                                            wl.restaurant_gets(self.data, REQUESTS_PER_FILE, 9)),
        }
        # The statements' SQL as this server prepares it.
        desc = describe(self.binary)
        scripts = {"menu": bench_ceilings.menu_script(self.env, desc), "pk": bench_ceilings.pk_script(self.env)}
        # Checkouts need a restaurant open for the whole run; a small seed at night may have none.
        if self.data.open_items:
            files["orders"] = wl.write_requests(os.path.join(self.work, "ceiling-orders.req"),
                                                wl.orders(self.data, REQUESTS_PER_FILE, 8, self.data.open_items, max_lines=1))
            scripts["checkout"] = bench_ceilings.checkout_script(self.env, desc, self.data)
            scripts["checkout_pipeline"] = bench_ceilings.checkout_pipeline_script(self.env, desc, self.data)
        else:
            prog.log("ceilings: no restaurant open for the next two hours; POST /orders and its pgbench ceiling are not measured")
        res = {k: [] for k in ("healthz", "healthz_nolog", "menu_cached", "menu_uncached", "pgbench_menu", "restaurant_get", "pgbench_pk",
                               "orders", "pgbench_checkout", "pgbench_checkout_pipeline")}
        for i in range(rounds):
            prog.log(f"ceilings: round {i + 1} of {rounds} (healthz with and without the request log, menu cached and uncached, "
                     f"pgbench menu_get, GET /restaurants/{{id}}, pgbench primary-key lookup, orders, pgbench checkout one "
                     f"statement at a time and pipelined; {conns} connections)")
            # The request log's cost: the same server and load with request_log=off, next to the run with it on.
            # The pair comes right after the previous round's checkouts, whose PostgreSQL work (WAL, autovacuum)
            # can outlast them, so the two runs take turns at going first rather than the log-on run always
            # paying for it.
            pair = [("healthz", "on"), ("healthz_nolog", "off")]
            for key, value in pair if i % 2 == 0 else pair[::-1]:
                self.set_flags({"request_log": value})
                res[key].append(bp.wrk(self.server.port, files["healthz"], conns, a.duration, 0)["rps"])
            self.set_flags({"request_log": "on"})
            self.set_flags({"menu_cache": "local"})
            res["menu_cached"].append(bp.wrk(self.server.port, files["menu"], conns, a.duration, 0)["rps"])
            self.set_flags({"menu_cache": "off"})
            res["menu_uncached"].append(bp.wrk(self.server.port, files["menu"], conns, a.duration, 0)["rps"])
            self.set_flags({"menu_cache": "local"})
            res["pgbench_menu"].append(bp.pgbench(self.env, scripts["menu"], os.path.join(self.work, "pgbench-menu.sql"),
                                                  conns, max(1, int(a.duration)))["tps"])
            # A primary-key read: the route against the bare lookup, next to each other.
            res["restaurant_get"].append(bp.wrk(self.server.port, files["restaurant"], conns, a.duration, 0)["rps"])
            res["pgbench_pk"].append(bp.pgbench(self.env, scripts["pk"], os.path.join(self.work, "pgbench-pk.sql"),
                                                conns, max(1, int(a.duration)))["tps"])
            if "orders" in files:
                # The three checkout loads take turns at going first: the load after a write-heavy one inherits its
                # dirty buffers (and the WAL that brings a checkpoint nearer), which cost a route or pgbench up to
                # a third more CPU per order here (loadtests/cpu_split.py, whose rounds rotate the same way).
                checkout = [("orders", self.orders_ceiling_load(files["orders"], conns)),
                            ("pgbench_checkout", lambda: bp.pgbench(self.env, scripts["checkout"], os.path.join(
                                self.work, "pgbench-checkout.sql"), conns, max(1, int(a.duration)))["tps"]),
                            ("pgbench_checkout_pipeline", lambda: bp.pgbench(self.env, scripts["checkout_pipeline"], os.path.join(
                                self.work, "pgbench-checkout-pipeline.sql"), conns, max(1, int(a.duration)))["tps"])]
                for key, load in bp.rotated(checkout, i):
                    res[key].append(load())
            prog.advance(10 * a.duration + 10)
        peak = stats.median(res["menu_cached"])
        prog.log(f"ceilings: cached menu open loop at half its peak ({peak / 2:,.0f} req/s)")
        half = [bp.openloop(self.openloop_bin, self.server.port, files["menu"], f"{peak / 2:.1f}:{a.duration}", 64, 5000)
                for _ in range(rounds)]
        prog.advance(rounds * (a.duration + 1))
        return {"connections": conns, "rounds": rounds, "samples": res, "menu_half_peak_openloop": half,
                "payment_latency_ms_for_orders": 0}

    # ------------------------------------------------------------ peak hour

    def peak_hour(self):
        a, prog = self.args, self.progress
        mix = wl.parse_mix(a.mix)
        req = wl.write_requests(os.path.join(self.work, "mix.req"), wl.journeys(self.data, REQUESTS_PER_FILE, 11, mix))
        prog.log("peak hour: measuring the journey mix's closed-loop peak")
        peak = bp.wrk(self.server.port, req, 64, max(2.0, a.warmup), bp.seq_base())["rps"]
        step_s = 2 if a.quick else 4
        shape = [0.2, 0.4, 0.6, 0.8, 1.0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 0.2]
        schedule = ",".join(f"{max(1.0, f * peak):.1f}:{step_s}" for f in shape)
        prog.log(f"peak hour: {len(shape)} steps of {step_s}s from {0.2 * peak:,.0f} to {1.3 * peak:,.0f} req/s (open loop)")
        ol = bp.openloop(self.openloop_bin, self.server.port, req, schedule, 512, 5000)
        prog.advance(len(shape) * step_s + 3)
        # Without --saturation-p99-ms the threshold is twice the p99 of the lightest
        # step (at least 5 ms): the mix's p99 includes the payment simulator's wait,
        # so an absolute figure would say more about that wait than about load.
        threshold = a.saturation_p99_ms
        if threshold is None:
            light = min(ol["steps"], key=lambda st: st["rate"])
            threshold = max(5.0, 2 * light["latency"]["p99_us"] / 1000)
        sat = stats.saturation_rate(ol["steps"], threshold * 1000)
        return {"mix": mix, "closed_loop_peak_rps": peak, "shape": shape, "step_seconds": step_s, "openloop": ol,
                "saturation_p99_ms": threshold, "saturation_threshold_given": a.saturation_p99_ms is not None,
                "saturation_rate": sat}


def metrics_of(w, ol, cpu_s, p0, p1, stmts):
    """One run's metrics from the wrk result, the open-loop summary, the server's
    CPU seconds, two /debug/perf snapshots and the pg_stat_statements rows."""
    reqs = w["requests"]
    bad = w["status_4xx"] + w["status_5xx"] + w["socket_errors"]
    # Throughput counts the answers that were not errors: a run whose requests queue past the pool's timeout
    # answers 5xx fast, and counting those would rate a bottleneck at its error rate (checkout_txn=long did
    # 3,590 req/s of 97% errors in one run at fb2b949, against 70 in its others).
    m = {"rps": (reqs - min(bad, reqs)) / w["duration_s"] if w["duration_s"] else 0.0}
    total = reqs
    if ol:
        bad += ol["errors"]
        total += ol["sent"]
        lat = ol["latency"]
        if lat["count"] > 0:
            for k in ("p50", "p90", "p99", "p999", "max"):
                m[f"{k}_ms"] = lat[f"{k}_us"] / 1000
    m["error_rate"] = 100 * bad / total if total else None
    if reqs > 0:
        m["cpu_us_per_req"] = cpu_s * 1e6 / reqs
        named = [s for s in stmts if s.get("name") and not s["name"].startswith("debug_")]
        m["db_ms_per_req"] = sum(s["total_exec_time_ms"] for s in named) / reqs
        m["pg_calls_per_req"] = sum(s["calls"] for s in named) / reqs
        m["heap_bytes_per_req"] = (p1["heap"]["allocated"] - p0["heap"]["allocated"]) / reqs
    # Hits over lookups; 0 when the run made no lookup at all, which is what a
    # bypassed cache (menu_cache=off) does, so before and after compare on the same footing.
    if reqs > 0:
        d = {k: p1["cache"][k] - p0["cache"][k] for k in ("hits", "misses", "errors")}
        lookups = d["hits"] + d["misses"] + d["errors"]
        m["cache_hit_ratio"] = 100 * d["hits"] / lookups if lookups else 0.0
    w0, w1 = p0["pool"]["wait"]["total"], p1["pool"]["wait"]["total"]
    if w1["count"] > w0["count"]:
        m["pool_wait_us"] = (w1["count"] * w1["mean_us"] - w0["count"] * w0["mean_us"]) / (w1["count"] - w0["count"])
    return m


def load_baseline(path):
    f = path if path.endswith(".json") else os.path.join(path, "report.json")
    with open(f) as fh:
        return json.load(fh)


def plan_seconds(args, scenarios):
    per = 2 * (args.warmup + 1) + 2 * args.runs * (2 * args.duration + 1 + args.settle + 1) + 2 * 3 * (args.profile_seconds + 1)
    total = len(scenarios) * per
    if not args.no_ceilings:
        total += (1 if args.quick else 3) * (8 * args.duration + 8)
    if args.lab or args.peak_hour:
        total += 12 * (2 if args.quick else 4) + 6
    return total


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    baseline = load_baseline(args.baseline) if args.baseline else None
    apply_defaults(args, baseline=baseline)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.join(args.reports_dir, stamp)
    if baseline:
        wanted = [s["flag"] for s in baseline["scenarios"]]
        args.no_ceilings = True
    else:
        wanted = args.scenario or [s.flag for s in SCENARIOS]
    progress = bp.Progress(plan_seconds(args, wanted))

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(signal.Signals(sig).name)

    def on_alarm(_sig, _frame):
        raise bp.BenchError(f"the watchdog stopped the run after {args.time_limit}s (--time-limit)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.time_limit)
    home = os.path.join(REPO, ".hotplate", "lab")
    own_stack = not args.use_env_stack
    started = time.time()
    try:
        bench = Bench(args, progress, out_dir)
        if own_stack:
            progress.log("building build-bench/ (hotplate and openloop)")
            binary, bench.openloop_bin = bp.build(os.path.join(REPO, "build-bench"))
            env, tokens = bp.fresh_stack(home, binary, args.scale, progress)
        else:
            binary = os.environ["HOTPLATE_BIN"]
            bench.openloop_bin = os.environ.get("HOTPLATE_OPENLOOP_BIN", os.path.join(os.path.dirname(binary), "openloop"))
            env = bp.server_env({k: os.environ[k] for k in ("HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL")})
            tokens = os.environ["HOTPLATE_TOKENS"]
        bench.binary, bench.env = binary, env
        bench.data = wl.Data(env, tokens)
        bench.server = bp.start_server(binary, env, args.threads, os.path.join(out_dir, "server.log"))
        known = bench.flag_values()
        report = {"version": 1, "timestamp": stamp, "mode": "baseline" if baseline else ("lab" if args.lab else "bench"),
                  "machine": bench_report.machine(), "git": bench_report.git_state(), "load_average_start": os.getloadavg(),
                  "settings": {k: getattr(args, k) for k in ("runs", "duration", "warmup", "settle", "profile_seconds", "open_fraction",
                                                             "scale", "threads", "quick", "regression_threshold")},
                  "scenarios": [], "skipped": []}
        if baseline:
            report["baseline"] = {"path": args.baseline, "timestamp": baseline.get("timestamp"), "git": baseline.get("git")}
        if not args.no_ceilings:
            report["ceilings"] = bench.ceilings()
        for flag in wanted:
            sc = BY_FLAG.get(flag)
            if sc is None or flag not in known:
                msg = f"{flag}: the server has no such flag yet; scenario skipped"
                progress.log(msg)
                report["skipped"].append(msg)
                continue
            base_sc = next(s for s in baseline["scenarios"] if s["flag"] == flag) if baseline else None
            report["scenarios"].append(bench.scenario(sc, base_sc))
        if args.lab or args.peak_hour:
            report["peak_hour"] = bench.peak_hour()
        report["load_average_end"] = os.getloadavg()
        report["elapsed_s"] = time.time() - started
        bench.server.stop()
        if bench.server.proc.returncode not in (0, None):
            raise bp.BenchError(f"the server exited with {bench.server.proc.returncode}; see {bench.server.log_path}")
        verdict = bench_report.write_all(report, out_dir, args.reports_dir)
        print(bench_report.terminal(report))
        print(f"\nreport: {os.path.relpath(out_dir, os.getcwd())}/report.md", flush=True)
        if baseline and verdict["regressions"]:
            print(f"REGRESSION beyond {args.regression_threshold}%: " +
                  "; ".join(f"{r['flag']} {r['metric']} {r['change'] * 100:+.1f}% (p={r['p']:.3f})" for r in verdict["regressions"]))
            return 3
        return 0
    except (bp.BenchError, KeyboardInterrupt, OSError, json.JSONDecodeError) as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        bp.stop_all()
        if own_stack:
            try:
                bp.stack("down", home)
            except bp.BenchError as e:
                print(f"bench: stopping the stack: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
