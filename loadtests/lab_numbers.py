#!/usr/bin/python3
"""Pastes the numbers of a real make lab or make bench run into the labs.

    loadtests/lab_numbers.py reports/<timestamp>            rewrite docs/labs/*.md
    loadtests/lab_numbers.py reports/<timestamp> --print    print the sections, write nothing
    loadtests/lab_numbers.py reports/<timestamp> --check    exit 1 when a lab differs from the report

Each lab (docs/labs/NN-name.md) ends with a section between two markers named
after its flag:

    <!-- lab-numbers:menu_cache:begin -->
    ...
    <!-- lab-numbers:menu_cache:end -->

For every scenario in the report's report.json, this script replaces what is
between the markers of that flag with: the command and the report it comes
from, the machine, the tree and the settings, the scenario's load, its table
of metrics (the same rows as the scenario's table in report.md, main metrics
marked), the top of its profiles, and its before/after CPU diff: the first
lines of `go tool pprof -top -diff_base`, the differential flame graph, and,
for a fix that deletes CPU work, the function it removed, taken from the
diff's largest drop; for the other fixes, what the diff does and does not
show. Labs whose flag the report did not run
are left as they are and listed on stderr, so a make bench of one scenario
updates one lab only. Nothing is typed by hand: the docs carry the harness's
figures exactly as it formatted them (the formatting functions are
loadtests/bench_report.py's).

The layout of report.json is the one loadtests/bench.py writes (version 1).
report.json does not record the command line, so the command shown is rebuilt
from the report's mode and settings: make lab, make bench SCENARIO=..., or
make bench BASELINE=..., with QUICK=1 for quick runs, and the loadtests/bench.py
options for any setting that differs from what those make targets use.

Standard library only; run it with Debian's /usr/bin/python3, from the
repository's root with PYTHONPATH=tests (it uses tests/hplib). Exit status 0
when done, 1 with --check when a lab is out of date, 2 on bad input.
"""

import argparse
import json
import os
import re
import sys

import bench_pprof
import bench_report  # the harness's own formatting, so the labs show its figures as report.md does
from bench_scenarios import BY_FLAG, METRICS

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.realpath(os.path.join(HERE, ".."))

# What loadtests/bench.py uses when only --quick (or nothing) is given; a
# setting that differs is shown as a bench.py option, so the command in the
# lab reproduces the run. These copy bench.py's parse_args defaults and must be
# kept in step with them; a report that records its own command line (a
# "command" key) is shown as recorded instead, and then these are not used.
DEFAULTS = {
    False: {"runs": 6, "duration": 3.0, "warmup": 2.0, "profile_seconds": 3, "scale": 0.2},
    True: {"runs": 5, "duration": 1.0, "warmup": 1.0, "profile_seconds": 2, "scale": 0.05},
}
COMMON_DEFAULTS = {"open_fraction": 0.5, "threads": 1, "regression_threshold": 10.0}
OPTION = {"runs": "--runs", "duration": "--duration", "warmup": "--warmup", "profile_seconds": "--profile-seconds",
          "scale": "--scale", "open_fraction": "--open-fraction", "threads": "--threads",
          "regression_threshold": "--regression-threshold"}

MARKER = re.compile(r"(<!-- lab-numbers:(?P<flag>[a-z0-9_]+):begin -->\n)(?P<body>.*?)(<!-- lab-numbers:(?P=flag):end -->)", re.S)


def fail(msg):
    print(f"lab_numbers: {msg}", file=sys.stderr)
    sys.exit(2)


def load_report(path):
    """(report dict, report directory as given) from a reports/<timestamp> directory or its report.json."""
    d = path[:-len("report.json")].rstrip("/") if path.endswith("report.json") else path.rstrip("/")
    try:
        with open(os.path.join(d, "report.json")) as f:
            report = json.load(f)
    except OSError as e:
        fail(f"cannot read {d}/report.json: {e.strerror} (give the reports/<timestamp> directory of a finished run)")
    except json.JSONDecodeError as e:
        fail(f"{d}/report.json is not JSON: {e}")
    if report.get("version") != 1 or "scenarios" not in report:
        fail(f"{d}/report.json has layout version {report.get('version')!r}; this script reads version 1")
    return report, d


def command(report):
    """The command that produced the report, rebuilt from its mode and settings (report.json has no argv)."""
    if report.get("command"):
        return report["command"]
    st = report.get("settings", {})
    quick = bool(st.get("quick"))
    mode = report.get("mode")
    if mode == "lab":
        cmd = ["make", "lab"]
    elif mode == "baseline":
        cmd = ["make", "bench", f"BASELINE={(report.get('baseline') or {}).get('path')}"]
    else:
        cmd = ["make", "bench", "SCENARIO=" + ",".join(sc["flag"] for sc in report["scenarios"])]
    if quick:
        cmd.append("QUICK=1")
    defaults = dict(COMMON_DEFAULTS, **DEFAULTS[quick])
    extra = []
    for key, default in defaults.items():
        if key in st and st[key] is not None and st[key] != default:
            extra += [OPTION[key], f"{st[key]:g}" if isinstance(st[key], float) else str(st[key])]
    if extra:
        # make passes no bench.py options through, so the run was bench.py's own command line.
        args = ["--lab"] if mode == "lab" else (["--baseline", cmd[2].split("=", 1)[1]] if mode == "baseline" else
                                                [a for sc in report["scenarios"] for a in ("--scenario", sc["flag"])])
        cmd = ["loadtests/bench.py"] + args + (["--quick"] if quick else []) + extra
    return " ".join(cmd)


def _plain_median(cmp, side):
    med = cmp.get(f"{side}_median")
    if med is None:
        return "n/a"
    lo, hi = cmp.get(f"{side}_ci") or (med, med)
    return f"{med:,.3f} [{lo:,.3f}–{hi:,.3f}]"


def metric_rows(sc):
    """The scenario's table rows, filtered and formatted as bench_report.markdown does for report.md."""
    rows = []
    for k, c in sc["compare"].items():
        if c.get("verdict") == "no data" or not (k in sc["main"] or c.get("before_median") or c.get("after_median")):
            continue
        if k in METRICS:
            title, before, after = (f"{METRICS[k].title} ({METRICS[k].unit})", bench_report.fmt_median(k, c, "before"),
                                    bench_report.fmt_median(k, c, "after"))
        else:
            # A metric this tree's harness no longer knows (an older report): its key and plain numbers.
            title, before, after = k, _plain_median(c, "before"), _plain_median(c, "after")
        rows.append((title + (" **main**" if k in sc["main"] else ""), before, after, bench_report.fmt_change(c),
                     bench_report.fmt_significance(c)))
    return rows


def profile_lines(sc, report_dir):
    """The report's lines for the profiles and plans, each side named with its value."""
    return bench_report.profile_lines(sc, where=lambda f: f"`{report_dir}/{f}`",
                                      name=lambda label: f"{label} ({sc['values'].get(label)})")


def section(report, report_dir, sc):
    """The Markdown that goes between the flag's markers."""
    mc, g, st = report["machine"], report.get("git", {}), report["settings"]
    flag = sc["flag"]
    values = sc["values"]
    how = (f"produced by `{report['command']}`" if report.get("command") else
           f"produced by a run of `{command(report)}` (as the report's mode and settings say)")
    lines = [f"Pasted by `loadtests/lab_numbers.py {report_dir}` from `{report_dir}/report.md` (run {report['timestamp']}), "
             f"{how}. Do not edit by hand: run the harness and the script again.", "",
             f"- machine: {mc['cpus']} CPUs, {mc['cpu']}, {mc['os']}, kernel {mc['kernel']}; load generators, PostgreSQL "
             "and Redis on the same machine",
             f"- tree: {g.get('commit')}{' with uncommitted changes' if g.get('dirty') else ''}; load average at start "
             + " ".join(f"{x:.2f}" for x in report.get("load_average_start", [])),
             f"- settings: {st['runs']} runs of each value alternated after a warm-up, "
             + (f"each after a {st['settle']:g} s settle at its value, " if st.get("settle") else "")
             + f"{st['duration']:g} s closed loop then {st['duration']:g} s open loop each; server --threads {st['threads']}; "
             f"seed scale {st['scale']:g}",
             f"- load: {sc['load']}; {sc['connections']} connections closed loop; open loop at {sc['open_rate']:,.0f} req/s",
             "- before = " + f"`{flag}={values.get('before')}`" + ", after = " + f"`{flag}={values.get('after')}`"
             + "; warm-up peaks: " + ", ".join(f"{k} {v:,.0f} req/s" for k, v in sc.get("warmup_rps", {}).items()), "",
             bench_report.md_table(("metric", "before: median [CI]", "after: median [CI]", "change", "significance"),
                                   metric_rows(sc)), ""]
    prof = profile_lines(sc, report_dir)
    if prof:
        lines += prof + [""]
    diff = diff_lines(sc, report_dir)
    if diff:
        lines += diff + [""]
    return "\n".join(lines)


def shrink(drop):
    """How much a drop of the diff took away, as a positive time ("250 ms"); as pprof printed it in older reports."""
    return bench_pprof.fmt_seconds(-drop["cum_s"]) if drop.get("cum_s") is not None else drop["cum"]


def removed_line(sc):
    """What the before/after CPU diff says about the function the fix removed, or None without a diff.

    The name comes from the diff in the report (its largest normalized drop on the stack,
    loadtests/bench_pprof.py), never from this script: for a scenario whose fix deletes CPU work
    (bench_scenarios.py's cpu_fix) that is the function the fix removed. The other fixes remove a
    wait or a round trip, so their diff names no removed function, and the line says so."""
    d = sc.get("cpu_diff")
    if not d or d.get("error"):
        return None
    drop = d.get("largest_drop")
    meta = BY_FLAG.get(sc["flag"])
    empty = [side for side, t in (d.get("totals") or {}).items() if bench_pprof.no_samples(t)]
    if empty:
        return (f"The {' and '.join(empty)} CPU profile holds no sample (the server waited through the window), so the diff "
                "compares nothing and names no function.")
    if meta is not None and meta.cpu_fix:
        if drop:
            return (f"**The function the fix removed**, from the diff: `{drop['function']}`, whose CPU time with its "
                    f"callees shrank most, by {shrink(drop)} (before scaled to after's total).")
        return "The diff shows no function shrinking, so this run does not name the function the fix removed."
    what = meta.fix if meta is not None and meta.fix else "something other than CPU work"
    text = f"This fix removes {what}, not a function's CPU work, so the diff names no function it removed"
    if drop:
        text += (f"; its largest drop on the stack, `{drop['function']}` by {shrink(drop)}, is where the server's CPU time "
                 "moved between the two windows, not the cause")
    return text + "."


def diff_lines(sc, report_dir):
    """The CPU diff's lines for the lab: the function removed (or why none is), the flame graph, pprof's listing."""
    d = sc.get("cpu_diff")
    if not d:
        return []
    lines = bench_report.cpu_diff_lines(sc, where=lambda f: f"`{report_dir}/{f}`")
    removed = removed_line(sc)
    return ([removed, ""] if removed else []) + lines


def rewrite(text, flag, body):
    """text with the flag's marked section replaced by body; None when the markers are missing."""
    found = False

    def repl(m):
        nonlocal found
        if m.group("flag") != flag:
            return m.group(0)
        found = True
        return m.group(1) + body + m.group(4)

    out = MARKER.sub(repl, text)
    return out if found else None


def main(argv=None):
    p = argparse.ArgumentParser(description="Paste a bench/lab report's numbers into docs/labs/*.md between their markers.")
    p.add_argument("report", help="reports/<timestamp> (or its report.json) of a finished make lab or make bench run")
    p.add_argument("--labs-dir", default=os.path.join(REPO, "docs", "labs"), help="where the labs are (default docs/labs)")
    p.add_argument("--print", action="store_true", help="print the sections instead of writing them")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a lab differs from the report")
    a = p.parse_args(argv)
    report, report_dir = load_report(a.report)
    # Shown relative to the repository when it lies inside it, as the command a reader would type.
    absdir = os.path.realpath(report_dir)
    if absdir.startswith(REPO + os.sep):
        report_dir = os.path.relpath(absdir, REPO)
    if a.print:
        for sc in report["scenarios"]:
            print(f"<!-- lab-numbers:{sc['flag']}:begin -->\n{section(report, report_dir, sc)}<!-- lab-numbers:{sc['flag']}:end -->\n")
        return 0
    try:
        labs = sorted(f for f in os.listdir(a.labs_dir) if re.match(r"\d\d-.*\.md$", f))
    except OSError as e:
        fail(f"cannot list {a.labs_dir}: {e.strerror}")
    texts = {}
    for name in labs:
        with open(os.path.join(a.labs_dir, name)) as f:
            texts[name] = f.read()
    marked = {m.group("flag"): name for name, t in texts.items() for m in MARKER.finditer(t)}
    stale = []
    for sc in report["scenarios"]:
        flag = sc["flag"]
        body = section(report, report_dir, sc)
        name = marked.get(flag)
        if name is None:
            print(f"lab_numbers: no lab has the markers of {flag}; not pasted", file=sys.stderr)
            continue
        new = rewrite(texts[name], flag, body)
        if new != texts[name]:
            stale.append(name)
            texts[name] = new
            if not a.check:
                path = os.path.join(a.labs_dir, name)
                with open(path + ".tmp", "w") as f:
                    f.write(new)
                os.replace(path + ".tmp", path)
        print(f"lab_numbers: {flag}: {'differs in' if a.check and name in stale else 'pasted into' if name in stale else 'unchanged in'} "
              f"{os.path.relpath(os.path.join(a.labs_dir, name), os.getcwd())}", file=sys.stderr)
    ran = {sc["flag"] for sc in report["scenarios"]}
    for flag in sorted(set(marked) - ran):
        print(f"lab_numbers: {flag}: not in this report; {marked[flag]} left as it was", file=sys.stderr)
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
