"""A scenario's CPU profiles before and after, compared: `go tool pprof -top
-diff_base` on the stored .pb.gz files, and a differential flame graph of the
stored folded stacks (loadtests/flame_diff.py).

    cpu_diff(out_dir, flag, before_profile, after_profile, work_dir) -> {...}

The profiles are what loadtests/bench.py stored in reports/<timestamp>/
profiles/: for each side, FLAG-SIDE-cpu.folded (GET /debug/pprof/profile?
format=folded) and FLAG-SIDE-cpu.pb.gz (the same route's default, gzipped
profile.proto symbolized by the server), taken one after the other under the
same load. pprof runs as tests/e2e/test_pprof_proto.py runs it: PPROF_TMPDIR
and HOME in the run's work/ folder, PPROF_BINARY_PATH pointing at nothing, so
it writes nothing outside the report and names what the server named.

Two listings are kept. `-top -diff_base` is pprof's plain diff (a value is
after's CPU time minus before's, sorted by own time); its first TOP_LINES
lines go into the report. `-top -cum -normalize -diff_base` scales before to
after's total first, and the largest drop on the stack is taken from it: the
function whose share of the samples, with its callees, shrank most. The
normalization is what makes that a property of the fix and not of the load:
the two windows do not hold the same CPU time (a faster variant may keep the
server busier, or less busy when the load generator is what saturates), and
without it the threads' roots, which hold every sample, would shrink or grow
by the whole difference and top the list. A fix that deletes a function's
work shows there as that function: its callers keep the rest of their work,
its callees cannot lose more than it did. loadtests/lab_numbers.py names it
in the labs whose fix is a CPU change.
"""

import os
import re
import shutil
import subprocess

import flame_diff

TOP_LINES = 20  # lines of `go tool pprof -top -diff_base` in report.md and report.json (the header included)
CUM_NODES = 400  # nodes of the -cum listing the largest drop is looked for in
GO_TIMEOUT = 120

ROW = re.compile(r"^\s*(-?[\d.]+[a-zµ]*)\s+(-?[\d.]+)%\s+(-?[\d.]+)%\s+(-?[\d.]+[a-zµ]*)\s+(-?[\d.]+)%\s+(.+?)\s*$")
UNITS = {"": 1.0, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "mins": 60.0, "min": 60.0, "hrs": 3600.0, "h": 3600.0}


def go_binary():
    return shutil.which("go")


def value(text):
    """A value of pprof's -top listing as a number ("-1.25s" -> -1.25; "10ms" -> 0.01; "42" -> 42); None if it is not one."""
    m = re.fullmatch(r"(-?[\d.]+)([a-zµ]*)", text)
    if not m or m.group(2) not in UNITS:
        return None
    return float(m.group(1)) * UNITS[m.group(2)]


def fmt_seconds(v):
    """A CPU time in seconds as a reader wants it: "1.25 s", "70 ms", "40 µs"."""
    a = abs(v)
    if a >= 1:
        return f"{v:.2f} s"
    if a >= 1e-3:
        return f"{v * 1e3:.0f} ms"
    return f"{v * 1e6:.0f} µs"


def no_samples(total_line):
    """Whether a "Duration: 3s, Total samples = 0" line says the profile holds no sample."""
    return bool(total_line) and re.search(r"Total samples = 0(\s|$)", total_line) is not None


def parse_top(text):
    """(header lines, rows) of a `go tool pprof -top` listing; a row is {flat, flat_pct, cum, cum_pct, function},
    flat and cum as printed ("-0.52s") and the percentages as numbers."""
    header, rows = [], []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows.append({"flat": m.group(1), "flat_pct": float(m.group(2)), "cum": m.group(4), "cum_pct": float(m.group(5)),
                         "function": m.group(6)})
        elif not rows:
            header.append(line)
    return header, rows


def largest_drop(rows, key="cum"):
    """The row whose value (cum by default) fell most, or None when none fell."""
    best = None
    for r in rows:
        v = value(r[key])
        if v is not None and v < 0 and (best is None or v < value(best[key])):
            best = r
    return best


def go_pprof(args, work_dir):
    """Runs `go tool pprof ARGS` with its files kept in work_dir; returns (status, stdout, stderr)."""
    home = os.path.join(work_dir, "pprof-home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, PPROF_TMPDIR=home, HOME=home, PPROF_BINARY_PATH=os.path.join(home, "no-binaries"))
    try:
        p = subprocess.run([go_binary(), "tool", "pprof"] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=GO_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, "", f"go tool pprof took more than {GO_TIMEOUT}s"
    return p.returncode, p.stdout, p.stderr


def cpu_diff(out_dir, flag, before, after, work_dir):
    """Compares a scenario's before and after CPU profiles (the summaries bench.py keeps: "file" for the folded
    stacks, "pprof" for the .pb.gz, both relative to out_dir). Writes profiles/FLAG-cpu-diff.txt (the -top
    listing), FLAG-cpu-diff-cum.txt (-top -cum -normalize) and FLAG-cpu-diff.svg; returns what report.json keeps, or
    {"error": why} when there is nothing to compare or pprof failed."""
    res = {}
    if before.get("file") and after.get("file"):
        with open(os.path.join(out_dir, before["file"])) as f:
            b = f.read()
        with open(os.path.join(out_dir, after["file"])) as f:
            a = f.read()
        svg = os.path.join(out_dir, "profiles", f"{flag}-cpu-diff.svg")
        with open(svg, "w") as f:
            f.write(flame_diff.render(b, a, f"{flag}: after's CPU profile, coloured by its change against before"))
        res["flame_diff"] = os.path.relpath(svg, out_dir)
    if not (before.get("pprof") and after.get("pprof")):
        res["error"] = "no pprof profile on both sides: " + "; ".join(p.get("pprof_error", "not taken") for p in (before, after)
                                                                      if not p.get("pprof"))
        return res
    if go_binary() is None:
        res["error"] = "go is not installed (deploy/deps.sh installs golang-go), so there is no pprof diff"
        return res
    base, new = before["pprof"], after["pprof"]
    # The command as a reader types it from the report's directory.
    res["command"] = f"go tool pprof -top -diff_base {base} {new}"
    listings = {}
    res["cum_command"] = f"go tool pprof -top -cum -normalize -diff_base {base} {new}"
    for key, extra in (("top", []), ("cum", ["-cum", "-normalize", f"-nodecount={CUM_NODES}"])):
        rc, out, err = go_pprof(["-top"] + extra + ["-diff_base", os.path.join(out_dir, base), os.path.join(out_dir, new)], work_dir)
        if rc != 0:
            res["error"] = f"go tool pprof failed ({rc}): {(err or out).strip()[-500:]}"
            return res
        path = os.path.join(out_dir, "profiles", f"{flag}-cpu-diff{'' if key == 'top' else '-cum'}.txt")
        with open(path, "w") as f:
            f.write(out)
        res[f"{key}_file"] = os.path.relpath(path, out_dir)
        listings[key] = out
    # Each side's own duration and sample total, as pprof prints them: a side with no samples (a server that
    # waited through the window) makes a diff that can name nothing, and the report says so.
    res["totals"] = {}
    for side, f in (("before", base), ("after", new)):
        rc, out, _ = go_pprof(["-top", "-nodecount=1", os.path.join(out_dir, f)], work_dir)
        res["totals"][side] = next((line.strip() for line in out.splitlines() if line.startswith("Duration:")), None)
    res["top"] = listings["top"].splitlines()[:TOP_LINES]
    _, rows = parse_top(listings["cum"])
    drop = largest_drop(rows)
    res["largest_drop"] = drop and {"function": drop["function"], "cum": drop["cum"], "cum_pct": drop["cum_pct"],
                                    "cum_s": value(drop["cum"])}
    return res
