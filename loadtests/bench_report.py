"""Reports of make bench and make lab: report.json, report.md, charts, the
terminal table, reports/history.jsonl, and the regression verdict of a
baseline comparison.

Everything here works from the report dictionary loadtests/bench.py builds
(the same one report.json holds), so tests/bench/test_report.py exercises it
on canned data without a server. Charts need Debian's python3-matplotlib; when
it is missing the report says so and everything else is still written.
"""

import json
import os
import platform
import subprocess

from bench_pprof import fmt_seconds
from bench_scenarios import METRICS
from hplib.stats import median_present as median

# The minimums of issue 12 ("the optimized paths at their ceilings"): each optimized route as a share of what the
# HTTP server or PostgreSQL does at all on the same machine, in the same run.
GOALS = [
    # (key, title, numerator samples, denominator samples, goal)
    ("menu_cached_vs_healthz", "cached GET /restaurants/{id}/menu / GET /healthz (req/s)", "menu_cached", "healthz", 0.6),
    ("menu_uncached_vs_pgbench", "uncached GET /restaurants/{id}/menu / pgbench menu_get (req/s / tps)", "menu_uncached",
     "pgbench_menu", 0.75),
    ("orders_vs_pgbench", "POST /orders / pgbench checkout transaction, one statement at a time (req/s / tps)", "orders",
     "pgbench_checkout", 1.0),
    ("orders_vs_pgbench_pipeline", "POST /orders / pgbench checkout transaction in \\startpipeline (req/s / tps)", "orders",
     "pgbench_checkout_pipeline", 0.8),
    ("restaurant_vs_pk", "GET /restaurants/{id} / pgbench bare primary-key lookup (req/s / tps)", "restaurant_get", "pgbench_pk", 0.6),
    ("healthz_vs_nolog", "GET /healthz / the same with request_log=off (req/s): the request log's cost", "healthz", "healthz_nolog",
     0.97),
]
P99_GOAL_MS = 2.0


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    osname = platform.platform()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "os": osname, "kernel": platform.release()}


def git_state():
    repo = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=30).stdout.strip() != ""
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    return {"commit": rev or None, "dirty": dirty}


def folded_share(text, functions):
    """{function: inclusive share} of the named functions in folded stacks: the share of
    samples (or bytes) with the function anywhere on the stack. A scenario names the
    functions that are its cause (hp_total__compute_naive, hp_recent_record, ...)."""
    incl, total = dict.fromkeys(functions, 0), 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = set(stack.split(";"))
        for f in functions:
            if f in frames:
                incl[f] += int(count)
    return {f: (c / total if total else 0.0) for f, c in incl.items()}


def folded_top(text, n=8):
    """The functions with the most samples (or bytes) in folded stacks ("a;b;c 12" per line):
    [{"function", "self", "self_share", "inclusive_share"}], by self count."""
    self_c, incl, total = {}, {}, 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + c
        for f in set(frames):
            incl[f] = incl.get(f, 0) + c
    if total == 0:
        return []
    top = sorted(self_c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"function": f, "self": c, "self_share": c / total, "inclusive_share": incl[f] / total} for f, c in top]


# ---------------------------------------------------------------- formatting


def fmt_value(key, v):
    if v is None:
        return "n/a"
    return METRICS[key].fmt.format(v)


def fmt_median(key, cmp, side):
    med = cmp.get(f"{side}_median")
    if med is None:
        return "n/a"
    lo, hi = cmp[f"{side}_ci"]
    return f"{fmt_value(key, med)} [{fmt_value(key, lo)}–{fmt_value(key, hi)}]"


def fmt_change(cmp):
    if cmp.get("change") is None:
        return "n/a"
    return f"{cmp['change'] * 100:+.1f}%"


def fmt_significance(cmp):
    if cmp.get("verdict") == "no data":
        return "no data"
    if cmp["verdict"] == "not significant":
        return f"not significant (p={cmp['p']:.3f})"
    return f"{cmp['verdict']}, significant (p={cmp['p']:.3f})"


def step_errors(s):
    """An open-loop step's errors, broken down when there are any."""
    if not s["errors"]:
        return "0"
    st = s.get("status", {})
    kinds = s.get("error_kinds")  # openloop's answers by status and error code; older reports have classes only
    if kinds:
        parts = [f"{k['count']} {k['status'] or ''} {k['code'] or 'without a code'}".replace("  ", " ") for k in kinds]
    else:
        parts = [f"{st[k]} {k}" for k in ("4xx", "5xx") if st.get(k)]
    if s.get("socket_errors"):
        parts.append(f"{s['socket_errors']} socket")
    if s.get("timeouts"):
        parts.append(f"{s['timeouts']} timeouts")
    return f"{s['errors']}" + (f" ({', '.join(parts)})" if parts else "")


def summary_rows(report):
    """(scenario, metric, before, after, change, significance) for every main metric."""
    rows = []
    for sc in report["scenarios"]:
        vals = sc["values"]
        for key in sc["main"]:
            cmp = sc["compare"][key]
            m = METRICS[key]
            before_label = "baseline" if report["mode"] == "baseline" else vals["before"]
            after_label = "current" if report["mode"] == "baseline" else vals["after"]
            rows.append((sc["flag"], f"{m.title} ({m.unit})", f"{before_label}: {fmt_median(key, cmp, 'before')}",
                         f"{after_label}: {fmt_median(key, cmp, 'after')}", fmt_change(cmp), fmt_significance(cmp)))
    return rows


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def goal_rows(ceil):
    """(goal, measured, goal value, met) from the ceilings' samples."""
    s = ceil["samples"]
    rows = []
    for _, title, num, den, goal in GOALS:
        # A report from before a row existed has no samples for it.
        a, b = median(s.get(num, [])), median(s.get(den, []))
        if a is None or b is None or b == 0:
            rows.append((title, "n/a", f"≥ {goal}", "not measured"))
            continue
        pairs = [x / y for x, y in zip(s[num], s[den]) if x is not None and y]
        spread = f" (rounds {min(pairs):.2f}–{max(pairs):.2f})" if len(pairs) > 1 else ""
        ratio = a / b
        rows.append((title, f"{ratio:.2f}: {a:,.0f} / {b:,.0f}{spread}", f"≥ {goal}", "yes" if ratio >= goal else "no"))
    p99s = [o["latency"]["p99_us"] / 1000 for o in ceil["menu_half_peak_openloop"] if o["latency"]["count"] > 0]
    errs = sum(o["errors"] for o in ceil["menu_half_peak_openloop"])
    if p99s:
        p = median(p99s)
        rate = ceil["menu_half_peak_openloop"][0]["steps"][0]["rate"]
        rows.append((f"cached menu p99 at half its peak rate ({rate:,.0f} req/s, open loop)",
                     f"{p:.2f} ms" + (f" (rounds {min(p99s):.2f}–{max(p99s):.2f})" if len(p99s) > 1 else "") +
                     (f", {errs} errors" if errs else ""), f"≤ {P99_GOAL_MS} ms", "yes" if p <= P99_GOAL_MS and not errs else "no"))
    return rows


def ceiling_rows(ceil):
    names = {"healthz": "GET /healthz (HTTP ceiling)", "healthz_nolog": "GET /healthz, request_log=off",
             "menu_cached": "GET menu, cached (menu_cache=local, the default)",
             "menu_uncached": "GET menu, uncached (menu_cache=off)", "pgbench_menu": "pgbench menu_get (database ceiling)",
             "restaurant_get": "GET /restaurants/{id} (a primary-key read)",
             "pgbench_pk": "pgbench SELECT * FROM restaurants WHERE id = $1 (database ceiling)",
             "orders": "POST /orders (payment_latency_ms=0)",
             "pgbench_checkout": "pgbench checkout transaction, one statement at a time (database ceiling)",
             "pgbench_checkout_pipeline": "pgbench checkout transaction in \\startpipeline (database ceiling)"}
    rows = []
    for k, title in names.items():
        xs = [x for x in ceil["samples"].get(k, []) if x is not None]
        rows.append((title, f"{median(xs):,.0f}" if xs else "not measured (errors, or nothing to measure)", ", ".join(f"{x:,.0f}" for x in xs)))
    return rows


def regressions(report, threshold_pct):
    """Main metrics that changed significantly in their bad direction by more than threshold_pct."""
    out, better = [], []
    for sc in report["scenarios"]:
        for key in sc["main"]:
            cmp = sc["compare"][key]
            if cmp.get("change") is None:
                continue
            entry = {"flag": sc["flag"], "metric": key, "change": cmp["change"], "p": cmp["p"]}
            if cmp["verdict"] == "regressed" and abs(cmp["change"]) * 100 > threshold_pct:
                out.append(entry)
            elif cmp["verdict"] == "improved":
                better.append(entry)
    return {"regressions": out, "improvements": better}


# ---------------------------------------------------------------- outputs


def terminal(report):
    rows = summary_rows(report)
    header = ("scenario", "metric", "before", "after", "change", "significance")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    for s in report.get("skipped", []):
        out.append(f"skipped: {s}")
    if "ceilings" in report:
        out.append("")
        for g in goal_rows(report["ceilings"]):
            out.append(f"goal: {g[0]}: {g[1]} (goal {g[2]}): {g[3]}")
    if "peak_hour" in report:
        ph = report["peak_hour"]
        sat = ph["saturation_rate"]
        out.append("")
        out.append(f"peak hour: closed-loop peak {ph['closed_loop_peak_rps']:,.0f} req/s; saturation (p99 > {ph['saturation_p99_ms']:.1f} ms"
                   f" or errors): " + (f"{sat:,.0f} req/s" if sat else "not reached"))
    return "\n".join(out)


def charts(report, out_dir):
    """PNG charts; returns their paths relative to out_dir, or an explanation when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "charts skipped: python3-matplotlib is not installed"
    d = os.path.join(out_dir, "charts")
    os.makedirs(d, exist_ok=True)
    paths = []
    for sc in report["scenarios"]:
        keys = list(sc["main"])
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for i, (label, value) in enumerate(sc["values"].items()):
                ys = [y for y in sc["samples"][label][key] if y is not None]
                ax.scatter([i] * len(ys), ys, alpha=0.7, label=f"{label}: {value}")
                if ys:
                    ax.hlines(median(ys), i - 0.25, i + 0.25, colors="black")
            ax.set_xticks(range(len(sc["values"])))
            ax.set_xticklabels([f"{lab}\n{v}" for lab, v in sc["values"].items()])
            ax.set_title(f"{METRICS[key].title}", fontsize=8)
            ax.set_ylabel(METRICS[key].unit)
            ax.set_xlim(-0.6, len(sc["values"]) - 0.4)
        fig.suptitle(f"{sc['flag']}: per run, line = median", fontsize=9)
        fig.tight_layout()
        p = os.path.join(d, f"{sc['flag']}.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(os.path.relpath(p, out_dir))
    if "peak_hour" in report:
        ph = report["peak_hour"]
        steps = ph["openloop"]["steps"]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        xs = range(len(steps))
        ax.bar(xs, [s["rate"] for s in steps], color="#ccd", label="arrival rate (req/s)")
        ax.set_ylabel("req/s")
        ax2 = ax.twinx()
        for q, style in (("p50_us", "g-o"), ("p99_us", "r-o")):
            ax2.plot(xs, [s["latency"][q] / 1000 if s["latency"]["count"] else None for s in steps], style, label=q.replace("_us", ""))
        ax2.set_yscale("log")
        ax2.set_ylabel("latency (ms, log)")
        ax2.axhline(ph["saturation_p99_ms"], color="r", linestyle=":", linewidth=1)
        ax.set_xlabel(f"step ({ph['step_seconds']} s each)")
        ax.set_title("peak hour: journey mix, open loop", fontsize=9)
        ax2.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        p = os.path.join(d, "peak_hour.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(os.path.relpath(p, out_dir))
    return paths, None


def profile_lines(sc, where=lambda f: f"[{f}]({f})", name=lambda label: label):
    """One Markdown list line per captured profile or plan of a scenario; where(file)
    renders the file's name (a link relative to report.md by default) and name(label)
    the side it was taken on. Older reports may lack a file or a top list."""
    lines = []
    for label, profs in sc.get("profiles", {}).items():
        side = name(label)
        for kind, p in profs.items():
            if "error" in p:
                lines.append(f"- {side} {kind} profile: failed: {p['error']}")
                continue
            at = where(p["file"]) if p.get("file") else "not saved"
            if kind.startswith("explain:"):
                s = p.get("summary") or {}
                lines.append(f"- {side} plan of `{kind.split(':', 1)[1]}` ({at}): top node {s.get('top_node')}, "
                             f"seq scans {s.get('seq_scans')}, index scans {s.get('index_scans')}, "
                             f"execution {s.get('execution_time_ms')} ms")
            else:
                # An empty CPU profile means the server did not run; an empty heap profile means that no sampled
                # allocation of the window was still held at its end, which is what a bounded heap gives.
                top = ", ".join(f"`{t['function']}` {t['self_share'] * 100:.1f}%" for t in p.get("top", [])[:5]) or \
                    ("no samples (no sampled allocation of the window was still held at its end)" if kind == "heap"
                     else "no samples (the server was waiting, not running)")
                watched = ", ".join(f"`{f}` {v * 100:.1f}%" for f, v in p.get("watch", {}).items())
                lines.append(f"- {side} {kind} profile ({at}), top by self share: {top}"
                             + (f"; on the stack (inclusive share): {watched}" if watched else ""))
    return lines


def cpu_diff_lines(sc, where=lambda f: f"[{f}]({f})"):
    """The Markdown lines of a scenario's CPU diff (loadtests/bench_pprof.py): the differential flame graph,
    the first lines of `go tool pprof -top -diff_base` in a code block, and the largest drop on the stack;
    where(file) renders a file's name. Nothing for a scenario without one (no CPU profile, or a baseline run)."""
    d = sc.get("cpu_diff")
    if not d:
        return []
    lines = []
    if d.get("flame_diff"):
        lines.append(f"- differential flame graph ({where(d['flame_diff'])}): after's CPU stacks, red where a frame's share "
                     "grew against before, blue where it shrank")
    if d.get("error"):
        lines.append(f"- CPU diff: {d['error']}")
        return lines
    drop = d.get("largest_drop")
    tot = d.get("totals") or {}
    if tot:
        lines.append("- each side's own profile: " + "; ".join(f"{side}: {tot.get(side) or 'unknown'}" for side in ("before", "after")))
    lines.append(f"- CPU diff, `{d['command']}` in the report's folder (the listing: {where(d['top_file'])}); "
                 f"largest drop on the stack, from `{d['cum_command']}` ({where(d['cum_file'])}): "
                 + (f"`{drop['function']}` " + (fmt_seconds(drop["cum_s"]) if drop.get("cum_s") is not None else drop["cum"])
                    if drop else
                    "none (nothing shrank)") + "; the first lines of the diff:")
    lines += ["", "```"] + d["top"] + ["```"]
    return lines


def markdown(report, chart_paths, chart_note):
    r = report
    mc, g = r["machine"], r["git"]
    st = r["settings"]
    lines = [f"# hotplate benchmark report {r['timestamp']} ({r['mode']})", ""]
    lines += [f"- machine: {mc['cpus']} CPUs, {mc['cpu']}, {mc['os']}, kernel {mc['kernel']}; load generators, PostgreSQL and Redis on the same machine",
              f"- tree: {g.get('commit')}{' with uncommitted changes' if g.get('dirty') else ''}",
              f"- load average (1, 5, 15 min) at start / end: {' '.join(f'{x:.2f}' for x in r['load_average_start'])} / "
              f"{' '.join(f'{x:.2f}' for x in r.get('load_average_end', []))}",
              f"- settings: {st['runs']} runs of each value alternated ABAB after a warm-up; "
              + (f"{st['settle']:g} s of unmeasured load after each switch of the flag, then " if st.get("settle") else "")
              + f"{st['duration']:g} s closed loop (wrk -t1) then "
              f"{st['duration']:g} s open loop (loadtests/openloop at {st['open_fraction']:g} × the lower warm-up peak) per run; "
              f"server --threads {st['threads']}; seed scale {st['scale']:g}",
              "- statistics: medians with distribution-free confidence intervals of the median (order statistics; coverage "
              "printed when below 95%), two-sided Mann-Whitney U test at 5%",
              f"- elapsed: {r.get('elapsed_s', 0):.0f} s", ""]
    if r.get("baseline"):
        b = r["baseline"]
        lines += [f"Compared with the baseline {b['path']} ({b.get('timestamp')}, tree {(b.get('git') or {}).get('commit')}): "
                  "before = the baseline's after runs, after = this tree at its defaults.", ""]
    lines += ["## Summary", "", md_table(("scenario", "metric", "before", "after", "change", "significance"), summary_rows(r)), ""]
    for s in r.get("skipped", []):
        lines.append(f"- skipped: {s}")
    if r.get("ceilings"):
        c = r["ceilings"]
        lines += ["", "## Goals and ceilings", "",
                  f"Measured in this run, {c['rounds']} round(s) alternated, {c['connections']} connections for wrk and pgbench "
                  "(pgbench -M prepared -j 1, the SQL of services/statements.h).", "",
                  md_table(("goal", "measured (median)", "goal", "met"), goal_rows(c)), "",
                  md_table(("load", "req/s or tps, median", "rounds"), ceiling_rows(c)), ""]
    if r.get("peak_hour"):
        ph = r["peak_hour"]
        sat = ph["saturation_rate"]
        lines += ["", "## Peak hour", "",
                  f"The journey mix ({', '.join(f'{k}={v}' for k, v in ph['mix'].items())} per journey), open loop, "
                  f"{len(ph['shape'])} steps of {ph['step_seconds']} s as multiples of its closed-loop peak "
                  f"({ph['closed_loop_peak_rps']:,.0f} req/s): lunch ramp, lull, dinner ramp, night. Saturation "
                  f"(first step on the way up where p99 > {ph['saturation_p99_ms']:.1f} ms"
                  + ("" if ph.get("saturation_threshold_given", True) else ", twice the lightest step's p99,")
                  + " or a request failed): "
                  + (f"**{sat:,.0f} req/s**." if sat else "**not reached**."), "",
                  md_table(("step", "rate (req/s)", "sent", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"),
                           [(i + 1, f"{s['rate']:,.0f}", s["sent"], step_errors(s)) + tuple(
                               f"{s['latency'][q] / 1000:.2f}" if s["latency"]["count"] else "n/a"
                               for q in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"))
                            for i, s in enumerate(ph["openloop"]["steps"])]), ""]
    for sc in r["scenarios"]:
        lines += ["", f"## {sc['flag']}: {sc['title']}", "",
                  f"- load: {sc['load']}; {sc['connections']} connections closed loop; open loop at {sc['open_rate']:,.0f} req/s",
                  "- values: " + ", ".join(f"{k} = `{sc['flag']}={v}`" for k, v in sc["values"].items())
                  + "; warm-up peaks: " + ", ".join(f"{k} {v:,.0f} req/s" for k, v in sc["warmup_rps"].items())]
        if sc.get("notes"):
            lines.append(f"- note: {sc['notes']}")
        if sc.get("extra_flags"):
            lines.append(f"- other flags for both: {sc['extra_flags']}")
        lines += ["", md_table(("metric", "before: median [CI]", "after: median [CI]", "change", "significance"),
                               [(f"{METRICS[k].title} ({METRICS[k].unit})" + (" **main**" if k in sc["main"] else ""),
                                 fmt_median(k, c, "before"), fmt_median(k, c, "after"), fmt_change(c), fmt_significance(c))
                                for k, c in sc["compare"].items()
                                if c.get("verdict") != "no data" and (k in sc["main"] or c["before_median"] or c["after_median"])]), ""]
        cov = {c.get("before_ci_coverage") for c in sc["compare"].values() if c.get("before_ci_coverage")}
        if cov and min(cov) < 0.95:
            lines += [f"(With {st['runs']} runs the widest interval, [min, max], covers the median with probability "
                      f"{min(cov) * 100:.1f}%.)", ""]
        lines += profile_lines(sc)
        lines += cpu_diff_lines(sc)
        chart = f"charts/{sc['flag']}.png"
        if chart in chart_paths:
            lines += ["", f"![{sc['flag']}]({chart})"]
    if "charts/peak_hour.png" in chart_paths:
        lines += ["", "![peak hour](charts/peak_hour.png)"]
    if chart_note:
        lines += ["", chart_note]
    return "\n".join(lines) + "\n"


def history_line(report, verdict):
    return {"timestamp": report["timestamp"], "mode": report["mode"], "git": report["git"],
            "baseline": (report.get("baseline") or {}).get("path"),
            "scenarios": {sc["flag"]: {k: {"before": sc["compare"][k].get("before_median"), "after": sc["compare"][k].get("after_median"),
                                           "change": sc["compare"][k].get("change"), "p": sc["compare"][k].get("p"),
                                           "verdict": sc["compare"][k].get("verdict")} for k in sc["main"]}
                          for sc in report["scenarios"]},
            "regressions": verdict["regressions"]}


def write_all(report, out_dir, reports_dir):
    """Writes report.json, charts, report.md, and appends to history.jsonl; returns the regression verdict."""
    os.makedirs(out_dir, exist_ok=True)
    verdict = regressions(report, report["settings"]["regression_threshold"])
    report["verdict"] = verdict
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    paths, note = charts(report, out_dir)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(report, paths, note))
    with open(os.path.join(reports_dir, "history.jsonl"), "a") as f:
        f.write(json.dumps(history_line(report, verdict)) + "\n")
    return verdict
