#!/usr/bin/python3
"""The soak: the customer journey at half its peak for half an hour, and
whether anything drifts.

    make soak                                  # 30 one-minute steps, about 33 minutes
    loadtests/soak.py --minutes 10 --fraction 0.5 --threads 2 --scale 0.01 --step-s 60
    loadtests/soak.py --quick --use-env-stack  # 3 steps of 4 s on the environment's stack (tests/bench)

It builds build-soak/ (the server and loadtests/openloop), recreates a private
stack in .hotplate/soak and seeds it (or, with --use-env-stack, uses
HOTPLATE_BIN, HOTPLATE_PG_URL, HOTPLATE_REDIS_URL and HOTPLATE_TOKENS), starts
one server, measures the journey mix's closed-loop peak with wrk (64
connections), and then drives the same mix open loop at --fraction of that
peak, in one-minute steps, with loadtests/openloop. At the end of every step
it reads the server's /debug/perf (process and heap sections: RSS, jemalloc's
allocated and resident bytes, file descriptors, threads; pool: transaction
connections in use) and PostgreSQL's pg_stat_activity (hotplate's backends),
and takes the step's p99 and error count from the generator.

Then, per series, an ordinary least-squares line over the steps: the slope per
minute with its 95% interval (Student's t, scipy's when python3-scipy is
installed, else 2.0), and a verdict. "flat" means the interval contains zero,
or the fitted change over the whole run is under 5% of the series' median
(and under 1 MiB for byte series, one descriptor or backend for counts): a
leak shows as "growing". Memory settles in its first minutes (arenas,
caches, the recently-viewed lists filling up), so the fit leaves out the
first --settle steps (default: the first fifth).

A benchmark, not a test: it exits 1 only when something did not work (a
build, the stack, the server dying), never on a verdict. It writes
reports/soak-<timestamp>/soak.json and soak.md, and prints soak.md. It uses
tests/hplib: run it with PYTHONPATH=tests, as `make soak` does.
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time

import bench_proc as bp
import bench_workload as wl
from hplib import process, stats
from hplib.process import ProcessError

REPO = bp.REPO
REQUESTS_PER_FILE = 20000


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30, help="length of the open-loop run (default 30)")
    p.add_argument("--step-s", type=float, default=60, help="one sample per step (default 60 s)")
    p.add_argument("--fraction", type=float, default=0.5, help="the open-loop rate as a fraction of the closed-loop peak")
    p.add_argument("--threads", type=int, default=2, help="server worker threads")
    p.add_argument("--scale", type=float, default=0.01, help="seed scale of the private stack")
    p.add_argument("--settle", type=int, help="steps left out of the trend fit (default: a fifth of them)")
    p.add_argument("--quick", action="store_true", help="3 steps of 4 s: the shape of a run, for tests/bench")
    p.add_argument("--use-env-stack", action="store_true", help="use the environment's stack, server binary and tokens")
    p.add_argument("--reports-dir", default=os.path.join(REPO, "reports"))
    a = p.parse_args(argv)
    if a.quick:
        a.minutes, a.step_s = 0.2, 4
    a.steps = max(2, int(round(a.minutes * 60 / a.step_s)))
    if a.settle is None:
        a.settle = a.steps // 5
    if a.steps - a.settle < 2:
        p.error("fewer than two steps are left for the trend after --settle")
    return a


def t_critical(df):
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:
        return 2.0


def trend(xs, ys):
    """Least squares y = a + b x: (slope b, its 95% half-interval)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    if n <= 2:
        return b, None
    resid = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(resid / (n - 2) / sxx)
    return b, t_critical(n - 2) * se


# (key, title, unit, the smallest change over the run that counts)
SERIES = [
    ("rss_bytes", "RSS", "bytes", 1 << 20),
    ("heap_allocated", "heap allocated (jemalloc)", "bytes", 1 << 20),
    ("heap_resident", "heap resident (jemalloc)", "bytes", 1 << 20),
    ("fds", "file descriptors", "count", 1),
    ("threads", "threads", "count", 1),
    ("pool_in_use", "transaction connections in use", "count", 1),
    ("pg_backends", "hotplate's PostgreSQL backends", "count", 1),
    ("p99_ms", "p99 latency", "ms", 0),
]


def verdict(key, values, minutes, settle):
    xs = [m for m, v in zip(minutes, values) if v is not None][settle:]
    ys = [v for v in values if v is not None][settle:]
    if len(ys) < 2:
        return {"verdict": "no data"}
    slope, half = trend(xs, ys)
    span = xs[-1] - xs[0]
    change = slope * span
    floor = next(f for k, _, _, f in SERIES if k == key)
    med = stats.median(ys)
    small = abs(change) < max(0.05 * abs(med), floor)
    flat = (half is not None and slope - half <= 0 <= slope + half) or small
    ci = None if half is None else [slope - half, slope + half]
    return {"slope_per_min": slope, "slope_ci": ci, "fitted_change": change, "median": med,
            "first": ys[0], "last": ys[-1], "verdict": "flat" if flat else ("growing" if slope > 0 else "shrinking")}


def sample(server, env):
    doc = server.admin_json("GET", "/debug/perf?section=process,heap,pool")
    proc, heap, pool = doc["process"], doc.get("heap", {}), doc["pool"]
    rows = bp.psql_rows(env, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'hotplate%'")
    return {"rss_bytes": proc["rss_bytes"], "fds": proc["fds"], "threads": proc["threads"],
            "heap_allocated": heap.get("allocated"), "heap_resident": heap.get("resident"),
            "pool_in_use": pool["in_use"], "pg_backends": int(rows[0][0])}


def fmt(key, v, per_min=False):
    """A sample in its unit (MiB, ms, a count), or a slope of it per minute (KiB/min, ms/min, /min)."""
    if v is None:
        return "-"
    unit = next(u for k, _, u, _ in SERIES if k == key)
    sign = "+" if per_min else ""
    if unit == "bytes":
        return f"{v / 1024:{sign},.1f} KiB/min" if per_min else f"{v / (1 << 20):,.1f} MiB"
    if unit == "ms":
        return f"{v:{sign},.3f} ms/min" if per_min else f"{v:,.2f} ms"
    return f"{v:{sign},.3f}/min" if per_min else f"{v:,.0f}"


def report_md(r):
    a = r["settings"]
    out = [f"# Soak: the journey at {a['fraction']:.0%} of its peak for {a['steps']} steps of {a['step_s']:g} s",
           "",
           f"`{r['command']}` at {r['commit']} on {r['started']}, {os.cpu_count()} cores, server `--threads {a['threads']}`, "
           f"seed scale {a['scale']}. Closed-loop peak {r['peak_rps']:,.0f} req/s (wrk, 64 connections); "
           f"open loop at {r['rate']:,.0f} req/s ({r['sent']:,} requests, {r['errors']:,} errors).",
           "",
           "| step | minute | RSS | heap allocated | heap resident | fds | threads | txn connections in use | PG backends "
           "| p99 | errors |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(r["steps"]):
        out.append(f"| {i + 1} | {s['minute']:.2f} | " + " | ".join(fmt(k, s.get(k)) for k in
                   ("rss_bytes", "heap_allocated", "heap_resident", "fds", "threads", "pool_in_use", "pg_backends", "p99_ms"))
                   + f" | {s['errors']} |")
    left_out = f"the first {a['settle']} left out while memory settles" if a["settle"] else "none left out"
    out += ["", f"Trend over steps {a['settle'] + 1} to {a['steps']} ({left_out}): "
            "least-squares slope with its 95% interval; flat when the interval contains zero or the fitted change over the "
            "run is under 5% of the median (and under 1 MiB, or one, for bytes and counts).", "",
            "| series | first | last | slope | 95% interval | verdict |", "|---|---|---|---|---|---|"]
    for key, title, _, _ in SERIES:
        v = r["trends"][key]
        if v["verdict"] == "no data":
            out.append(f"| {title} | - | - | - | - | no data |")
            continue
        ci = "-" if v["slope_ci"] is None else " to ".join(fmt(key, x, True) for x in v["slope_ci"])
        out.append(f"| {title} | {fmt(key, v['first'])} | {fmt(key, v['last'])} | {fmt(key, v['slope_per_min'], True)} "
                   f"| {ci} | {v['verdict']} |")
    growing = [t for k, t, _, _ in SERIES if r["trends"][k]["verdict"] == "growing"]
    out += ["", "Verdict: " + ("flat: no series grows." if not growing else "growing: " + ", ".join(growing) + ".")]
    return "\n".join(out) + "\n"


def main(argv=None):
    a = parse(argv if argv is not None else sys.argv[1:])
    # The tree the server is built from: read now, before a long run lets the checkout move on.
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    progress = bp.Progress(a.steps * a.step_s + 120)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.join(a.reports_dir, "soak-" + stamp)
    os.makedirs(out_dir, exist_ok=True)
    try:
        if a.use_env_stack:
            binary = os.environ["HOTPLATE_BIN"]
            openloop_bin = os.environ.get("HOTPLATE_OPENLOOP_BIN", os.path.join(os.path.dirname(binary), "openloop"))
            env = bp.server_env({k: os.environ[k] for k in ("HOTPLATE_PG_URL", "HOTPLATE_REDIS_URL")})
            tokens = os.environ["HOTPLATE_TOKENS"]
        else:
            progress.log("building build-soak/ (hotplate and openloop)")
            binary, openloop_bin = bp.build(os.path.join(REPO, "build-soak"))
            env, tokens = bp.fresh_stack(os.path.join(REPO, ".hotplate", "soak"), binary, a.scale, progress)
        server = bp.start_server(binary, env, a.threads, os.path.join(out_dir, "server.log"))
        data = wl.Data(env, tokens)
        req = wl.write_requests(os.path.join(out_dir, "mix.req"), wl.journeys(data, REQUESTS_PER_FILE, 11))
        progress.log("measuring the journey mix's closed-loop peak")
        peak = bp.wrk(server.port, req, 64, 3 if a.quick else 10, bp.seq_base())["rps"]
        rate = max(1.0, a.fraction * peak)
        schedule = ",".join(f"{rate:.1f}:{a.step_s:g}" for _ in range(a.steps))
        progress.log(f"open loop: {a.steps} steps of {a.step_s:g} s at {rate:,.0f} req/s")
        base = bp.seq_base()  # the journeys' orders are new ones, not replays of the peak's
        cmd = [openloop_bin, "--port", str(server.port), "--requests", req, "--schedule", schedule, "--connections", "512",
               "--timeout-ms", "5000", "--seq-base", str(base)]
        ol_out = os.path.join(out_dir, "openloop.json")
        with open(ol_out, "w") as f:
            ol = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        bp.LIVE.append(ol)
        t0 = time.monotonic()
        samples = []
        for i in range(a.steps):
            # Sampled at each step's end, from the run's own clock, so a slow sample does not shift the next.
            time.sleep(max(0.0, t0 + (i + 1) * a.step_s - time.monotonic()))
            if not server.alive():
                raise ProcessError("the server died during the soak")
            s = sample(server, env)
            s["minute"] = (time.monotonic() - t0) / 60
            process.trim_logs()  # under load: a few lines can be lost (hplib.process.trim_log)
            samples.append(s)
            progress.log(f"step {i + 1} of {a.steps}: RSS {fmt('rss_bytes', s['rss_bytes'])}, "
                         f"heap {fmt('heap_allocated', s['heap_allocated'])}, fds {s['fds']}")
        bp.wait_proc(ol, 120)
        if ol.returncode != 0:
            raise ProcessError(f"openloop exited with {ol.returncode}: {ol.stderr.read().decode()[-1500:]}")
        with open(ol_out) as f:
            summary = json.load(f)
        bp.refuse_replays("openloop", summary["replayed"], summary["completed"], base)
        for s, st in zip(samples, summary["steps"]):
            s["p99_ms"] = st["latency"]["p99_us"] / 1000 if st["latency"]["count"] else None
            s["errors"] = st.get("errors", 0)
        server.stop()
    finally:
        bp.stop_all()

    minutes = [s["minute"] for s in samples]
    r = {"command": "loadtests/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]), "commit": commit,
         "started": stamp, "settings": {k: getattr(a, k) for k in ("minutes", "step_s", "steps", "fraction", "threads",
                                                                      "scale", "settle", "quick")},
         "peak_rps": peak, "rate": rate, "sent": summary["sent"], "errors": summary["errors"], "steps": samples,
         "trends": {k: verdict(k, [s.get(k) for s in samples], minutes, a.settle) for k, _, _, _ in SERIES}}
    with open(os.path.join(out_dir, "soak.json"), "w") as f:
        json.dump(r, f, indent=1)
    md = report_md(r)
    with open(os.path.join(out_dir, "soak.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"written: {os.path.relpath(out_dir, REPO)}/soak.md and soak.json", file=sys.stderr)


if __name__ == "__main__":
    main()
