#!/usr/bin/python3
"""Runs the bottleneck labs (docs/labs/NN-*.md) and pastes what their commands print.

    loadtests/labdocs.py                     run every lab, rewrite its generated regions
    loadtests/labdocs.py --lab 04            one lab (a number or a file name)
    loadtests/labdocs.py --quick --check     quick mode: run every step, check the
                                             outputs' shape, write nothing in docs/

A lab is a Markdown file whose commands a program can run. Its parts:

    <!-- lab-docs:config scale=1 threads=2 quick-scale=0.05 -->

        The lab's stack: seed scale, server threads, and the scale of a quick
        run. Optional; the defaults are below (DEFAULT_CONFIG). ha=1 makes the
        stack highly available (HA=1 deploy/stack.sh up: a standby, Sentinel;
        its env names the replica, which the server reads); serve-args="..."
        adds arguments to the server's command line; step-timeout= and
        quick-step-timeout= bound each step (seconds).

    <!-- lab-docs:header:begin --> ... <!-- lab-docs:header:end -->

        Rewritten with the commit, the date, the machine and the command.

    ```sh step=NAME
    commands
    ```

        A step: run in order, in one bash process per lab (so variables and
        background jobs carry from one step to the next), from the repository's
        root, with the README's prerequisites already set (API, ADMIN, TOKENS,
        TOKEN, USER_ID, OWNER and the private stack's HOTPLATE_* variables).
        The name is optional; charts and pictures refer to steps by it.

    <!-- lab-docs:out:begin expect="REGEX" set="NAME=REGEX" -->
    ```
    what the step printed
    ```
    <!-- lab-docs:out:end -->

        The output region of the step just above it, replaced by what the step
        printed (stdout and stderr, as a terminal shows them). Every expect=
        is a regular expression the output must match, in quick mode too: the
        shape the text describes (a function in the profile, a plan node, a
        doctor finding), never a figure. expect-full= is checked only at the
        lab's own scale. set= takes a number out of the output (the regex's
        first group) for the prose.

    <!--=EXPR-->870<!--/-->

        A number in the prose: EXPR is arithmetic on set= names, optionally
        followed by a format (`naive_us / once_us :.0f`). The text between is
        rewritten with its value, so a sentence quoting a figure quotes this run.

    <!-- lab-docs:chart file=NAME.png title="..." bars="LABEL=STEP,LABEL=STEP" -->

        A before/after chart (throughput and p99 from the named steps' wrk
        --latency outputs), drawn with matplotlib into docs/labs/img/NAME.png.

    <!-- lab-docs:stages file=NAME.png title="..." bars="LABEL=STEP,LABEL=STEP#2" -->

        Where a request's time goes, before and after: the route's stage means
        (/debug/perf's stage_mean_us, a {"parse":..,"db":..} object) found in
        the named steps' outputs (#N: the step's N-th such object), drawn as
        stacked bars into docs/labs/img/NAME.png. The picture of a cause that
        is waiting (a pool, a lock, a round trip), which a CPU flame graph does
        not show.

    <!-- lab-docs:picture from=PATH file=NAME.svg -->

        A file a step wrote (a flame graph, say), copied to docs/labs/img/.

Each lab gets a private stack of its own (.hotplate/labdocs-NN), migrated and
seeded at its scale, and a server started as `make up` starts it (continuous
profiling on). Quick mode (make test) seeds at the quick scale and shortens every
wait: wrk's -d, sleep, and a profile URL's seconds= are cut to at most 1 s, and
the server samples CPU profiles at 400 Hz so that second holds samples. It
fails when a step exits non-zero, prints nothing where an output is expected,
or misses an expect=; it never fails on a figure. A set= that finds nothing
fails a full run but not a quick one (a line such as wrk's Non-2xx count is
printed only when its figure is not zero). A full run rewrites a lab only when
all of that held, and refuses a rewrite that would touch hand-written text.

Standard library only, plus matplotlib for charts; run it from the repository's
root with PYTHONPATH=tests:loadtests and Debian's /usr/bin/python3.
"""

import argparse
import ast
import datetime
import glob
import json
import operator
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from hplib.process import ProcessError
from hplib.server import Server
from hplib.stack import Stack

import bench_report

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LABS = os.path.join(REPO, "docs", "labs")
IMG = os.path.join(LABS, "img")
DEFAULT_CONFIG = {"scale": "1", "threads": "2", "quick-scale": "0.02", "step-timeout": "180", "quick-step-timeout": "60",
                  "ha": "0", "serve-args": ""}

CONFIG = re.compile(r"<!-- lab-docs:config (?P<attrs>.*?) -->")
HEADER = re.compile(r"(<!-- lab-docs:header:begin -->\n)(.*?)(<!-- lab-docs:header:end -->)", re.S)
STEP = re.compile(r"^```sh step(?:=(?P<name>[\w-]+))?\n(?P<code>.*?)^```\n", re.S | re.M)
OUT = re.compile(r"^<!-- lab-docs:out:begin(?P<attrs>[^>]*?)-->\n(?P<body>.*?)^<!-- lab-docs:out:end -->\n", re.S | re.M)
VALUE = re.compile(r"<!--=(?P<expr>.*?)-->(?P<text>.*?)<!--/-->", re.S)
CHART = re.compile(r"<!-- lab-docs:chart (?P<attrs>.*?) -->")
PICTURE = re.compile(r"<!-- lab-docs:picture (?P<attrs>.*?) -->")
STAGES = re.compile(r"<!-- lab-docs:stages (?P<attrs>.*?) -->")
STAGE_OBJECT = re.compile(r'\{"parse":[^{}]*\}')
# /debug/perf's stages (common/runtime/probes.h), in the order a request meets them, each with a colour of its own.
STAGE_COLORS = {"parse": "#bdbdbd", "auth": "#9bbb59", "cache": "#f79646", "pool": "#c0504d", "db": "#4f81bd",
                "compute": "#8064a2", "payment": "#4bacc6", "render": "#d99694", "other": "#7f7f7f"}
ATTR = re.compile(r'([\w-]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))')

# Quick mode shadows three commands so the lab's own text runs unchanged but
# short: each wait the text asks for is cut to at most a second.
QUICK_PRELUDE = r"""
wrk() { local a=() x; for x in "$@"; do case $x in -d*) a+=(-d1s) ;; *) a+=("$x") ;; esac; done; command wrk "${a[@]}"; }
sleep() { command sleep "$(awk -v s="${1%s}" 'BEGIN { print (s > 1) ? 1 : s }')"; }
curl() { local a=() x; for x in "$@"; do a+=("$(sed -E 's/([?&]seconds=)[0-9]+/\11/' <<<"$x")"); done; command curl "${a[@]}"; }
"""


def attrs(text):
    """[(key, value)] of a marker's key=value and key="value" pairs, in order."""
    return [(m.group(1), m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)) for m in ATTR.finditer(text or "")]


class Lab:
    """One lab file, parsed: its config, steps (in order) and what hangs off them."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-3]
        self.number = self.name.split("-", 1)[0]
        with open(path) as f:
            self.text = f.read()
        m = CONFIG.search(self.text)
        self.config = dict(DEFAULT_CONFIG, **dict(attrs(m.group("attrs") if m else "")))
        self.steps = []  # dicts: name, code, out (attrs or None), start, end
        outs = list(OUT.finditer(self.text))
        for i, s in enumerate(STEP.finditer(self.text)):
            step = {"index": i, "name": s.group("name") or f"step{i + 1}", "code": s.group("code"), "out": None}
            # The output region belongs to this step when only blank lines separate them.
            for o in outs:
                if o.start() >= s.end() and self.text[s.end():o.start()].strip() == "":
                    step["out"] = attrs(o.group("attrs"))
                    break
            self.steps.append(step)

    def step(self, name):
        for s in self.steps:
            if s["name"] == name:
                return s
        raise KeyError(f"{self.name}: no step named {name}")


def run_lab(lab, args, workdir, bin_path):
    """Starts the lab's stack and server, runs its steps in one bash; returns {step index: (rc, output)}."""
    quick = args.quick
    scale = lab.config["quick-scale" if quick else "scale"]
    lab.load_at_start = " ".join(open("/proc/loadavg").read().split()[:3])
    home = os.path.join(REPO, ".hotplate", f"labdocs-{lab.number}")
    stack = Stack(home, timeout=300)
    stack.run("destroy", check=False)
    os.makedirs(home, exist_ok=True)
    os.environ["HA"] = lab.config["ha"]  # read by stack.sh up, and recorded in the stack's own conf
    try:
        stack_env = stack.up()
    finally:
        del os.environ["HA"]
    env = dict(os.environ)
    env.update(stack_env)
    tokens = os.path.join(home, "tokens.tsv")
    t0 = time.monotonic()
    stack.migrate_and_seed(bin_path, env, scale, tokens)
    print(f"labdocs: {lab.name}: stack in {home}, seeded at scale {scale} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    # Quick mode cuts every profile to 1 s. At gperftools' 100 Hz, on a CI machine whose other lanes left the
    # server a fifth of a core, that was 20 samples, and one run's held none of lab 04's hp_total__compute_naive;
    # at 400 Hz the same second holds four times the samples. A full run keeps the default, which the text quotes.
    server = Server(bin_path, home, name="hotplate", threads=int(lab.config["threads"]), base_env=env,
                    env={"CPUPROFILE_FREQUENCY": "400"} if quick else None,
                    args=["--flag", "profile_every_s=60", "--profile-dir", os.path.join(home, "profiles")]
                    + shlex.split(lab.config["serve-args"]), ready_timeout=60)
    try:
        server.start()
        return run_steps(lab, args, workdir, env, server, tokens, home)
    finally:
        try:
            server.stop()
        except ProcessError as e:
            print(f"labdocs: {lab.name}: server stop: {e}", file=sys.stderr)
        stack.run("down", check=False)


def prelude(server, tokens, home, quick):
    lines = ["set +e", "cd " + shlex.quote(REPO),
             f"API={server.base} ADMIN={server.admin_base}",
             f"TOKENS={shlex.quote(tokens)}",
             "TOKEN=$(awk '$1==\"customer\"{print $3; exit}' $TOKENS)",
             "USER_ID=$(awk '$1==\"customer\"{print $2; exit}' $TOKENS)",
             "OWNER=$(awk '$1==\"owner\" && $2==1 {print $3}' $TOKENS)",
             f". {shlex.quote(os.path.join(home, 'env'))}"]
    return "\n".join(lines) + "\n" + (QUICK_PRELUDE if quick else "")


def run_steps(lab, args, workdir, env, server, tokens, home):
    os.makedirs(workdir, exist_ok=True)
    for f in glob.glob(os.path.join(workdir, "*.out")) + glob.glob(os.path.join(workdir, "*.rc")):
        os.remove(f)
    script = [prelude(server, tokens, home, args.quick)]
    for s in lab.steps:
        out, rc = (os.path.join(workdir, f"{s['index']:02d}.{x}") for x in ("out", "rc"))
        # The step's text runs as written; its output and status go to files the
        # runner watches, so a step that hangs is named and stopped.
        script.append(f"{{\n{s['code']}\n}} >{shlex.quote(out)} 2>&1 </dev/null\necho $? >{shlex.quote(rc)}\n")
    path = os.path.join(workdir, "lab.sh")
    with open(path, "w") as f:
        f.write("\n".join(script))
    limit = float(lab.config["quick-step-timeout" if args.quick else "step-timeout"])
    proc = subprocess.Popen(["bash", path], cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(workdir, "lab.stderr"), "w"))
    results, current, started = {}, 0, time.monotonic()
    try:
        while current < len(lab.steps):
            rcf = os.path.join(workdir, f"{current:02d}.rc")
            if os.path.exists(rcf) and open(rcf).read().strip() != "":
                with open(os.path.join(workdir, f"{current:02d}.out"), errors="replace") as f:
                    output = f.read().replace("\r\n", "\n")  # curl -i's header lines: checks and the doc see plain lines
                results[current] = (int(open(rcf).read()), output)
                print(f"labdocs: {lab.name}: step {lab.steps[current]['name']}: exit {results[current][0]}, "
                      f"{time.monotonic() - started:.1f} s", file=sys.stderr)
                current, started = current + 1, time.monotonic()
                continue
            if proc.poll() is not None and not os.path.exists(rcf):
                raise ProcessError(f"{lab.name}: bash ended before step {lab.steps[current]['name']}")
            if time.monotonic() - started > limit:
                raise ProcessError(f"{lab.name}: step {lab.steps[current]['name']} ran over {limit:.0f} s")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # A step's background load (wrk ... &) must not outlive the lab.
        subprocess.run(["pkill", "-KILL", "-f", re.escape(server.base)], check=False)
    return results


def clean(output):
    """A step's output as the doc shows it: no trailing blanks, tabs kept, no colour codes."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    return "\n".join(line.rstrip() for line in output.rstrip("\n").splitlines())


def check(lab, results, quick):
    """[problem] of the run: failed steps, empty outputs, missed expect=."""
    problems = []
    for s in lab.steps:
        rc, out = results.get(s["index"], (None, ""))
        if rc != 0:
            problems.append(f"step {s['name']} exited {rc}: {clean(out)[-400:]}")
        if s["out"] is None:
            continue
        if clean(out) == "":
            problems.append(f"step {s['name']} printed nothing")
        for key, rx in s["out"]:
            if key == "expect" or (key == "expect-full" and not quick):
                if not re.search(rx, out, re.M):
                    problems.append(f"step {s['name']}: output does not match {rx!r}: {clean(out)[:400]!r}")
    return problems


def values(lab, results, strict=True):
    """{name: float} of every set= in the lab's output regions; a missing match raises, unless not strict
    (a quick run: whether a line such as wrk's Non-2xx count is printed at all can depend on a figure)."""
    v = {}
    for s in lab.steps:
        for key, spec in s["out"] or []:
            if key != "set":
                continue
            name, rx = spec.split("=", 1)
            m = re.search(rx, results[s["index"]][1], re.M)
            if not m:
                if not strict:
                    continue
                raise ValueError(f"{lab.name}: step {s['name']}: set {name}: no match for {rx!r}")
            v[name] = float(m.group(1).replace(",", ""))
    return v


OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expr, v):
    """Arithmetic on set= names only: numbers, names, + - * / and parentheses."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.BinOp) and type(n.op) in OPS:
            return OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.Name):
            return v[n.id]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        raise ValueError(f"not arithmetic: {expr!r}")
    body, _, fmt = expr.partition(":")
    x = ev(ast.parse(body.strip(), mode="eval"))
    return format(x, fmt.strip() or "g")


def wrk_figures(output):
    """(req/s, p99 ms) of a wrk --latency output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", output, re.M)
    if not rps or not p99:
        raise ValueError("not a wrk --latency output")
    ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), ms


def draw_chart(lab, results, spec, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = dict(attrs(spec))
    bars = [b.split("=", 1) for b in a["bars"].split(",")]
    figs = [wrk_figures(results[lab.step(step)["index"]][1]) for _, step in bars]
    labels = [label for label, _ in bars]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6.4, 2.6), dpi=80)
    colors = ["#c0504d", "#4f81bd", "#9bbb59", "#8064a2"][:len(bars)]
    ax1.bar(labels, [f[0] for f in figs], color=colors)
    ax1.set_title("throughput (req/s), higher is better", fontsize=9)
    ax2.bar(labels, [f[1] for f in figs], color=colors)
    ax2.set_title("p99 latency (ms), lower is better", fontsize=9)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=8)
    fig.suptitle(a.get("title", lab.name), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no version string: the file changes only with the figures
    plt.close(fig)


def stage_means(output, n=1):
    """The n-th stage-means object ({"parse": us, ..., "other": us}) in a step's output."""
    found = STAGE_OBJECT.findall(output)
    if len(found) < n:
        raise ValueError(f"no stage means #{n} in the output")
    return json.loads(found[n - 1])


def stage_rows(lab, results, spec):
    """[(label, stage means)] of a stage picture's bars, each from its step's output; raises ValueError or KeyError
    when a step or its stage means are missing."""
    rows = []
    for label, ref in (b.split("=", 1) for b in dict(attrs(spec))["bars"].split(",")):
        step, _, n = ref.partition("#")
        rows.append((label, stage_means(results[lab.step(step)["index"]][1], int(n or 1))))
    return rows


def draw_stages(lab, results, spec, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = dict(attrs(spec))
    rows = stage_rows(lab, results, spec)
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * len(rows)), dpi=80)
    for i, (label, st) in enumerate(rows):
        left = 0.0
        for name, color in STAGE_COLORS.items():
            ms = st.get(name, 0) / 1000.0
            ax.barh(i, ms, left=left, color=color, label=name if i == 0 else None)
            left += ms
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean time per request (ms), by stage", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.45 if len(rows) < 3 else -0.3), frameon=False)
    ax.set_title(a.get("title", lab.name), fontsize=10)
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def tree_state():
    """The commit the run starts from, and whether the tree differed from it then. Taken once, before any lab is
    rewritten: the labs a run has already regenerated are its own output, not changes it ran."""
    g = bench_report.git_state()
    return (g["commit"] or "unknown") + (" with uncommitted changes" if g["dirty"] else "")


def provenance(lab, args):
    mc = bench_report.machine()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = getattr(lab, "load_at_start", None) or " ".join(open("/proc/loadavg").read().split()[:3])
    tree = getattr(args, "tree", None) or tree_state()
    return (f"_Generated by `make lab-docs LAB={lab.number}` (`loadtests/labdocs.py`) at tree {tree}, {when}, on "
            f"{mc['cpus']} CPUs ({mc['cpu']}), {mc['os']}, load average {load} at the start; the stack seeded at scale "
            f"{lab.config['scale']}, the server with `--threads {lab.config['threads']}`. Every output block between "
            f"`lab-docs` markers, every figure in the prose marked for it, and the pictures are from that run; do not edit "
            f"them by hand._\n")


def rewrite(lab, results, args):
    """The lab's text with every generated part replaced from this run."""
    text = lab.text
    v = values(lab, results)
    by_end = {}
    for s in lab.steps:
        if s["out"] is not None:
            by_end[s["index"]] = clean(results[s["index"]][1])
    # Output regions, in order: the n-th step with an output owns the n-th region after it.
    pieces, pos = [], 0
    steps_iter = iter(lab.steps)
    for m in STEP.finditer(text):
        s = next(steps_iter)
        pieces.append(text[pos:m.end()])
        pos = m.end()
        if s["out"] is None:
            continue
        o = OUT.search(text, pos)
        pieces.append(text[pos:o.start()])
        begin = text[o.start():o.start() + text[o.start():].index("\n") + 1]
        pieces.append(begin + "```\n" + by_end[s["index"]] + "\n```\n<!-- lab-docs:out:end -->\n")
        pos = o.end()
    pieces.append(text[pos:])
    text = "".join(pieces)
    text = VALUE.sub(lambda m: f"<!--={m.group('expr')}-->{evaluate(m.group('expr'), v)}<!--/-->", text)
    text = HEADER.sub(lambda m: m.group(1) + provenance(lab, args) + m.group(3), text)
    os.makedirs(IMG, exist_ok=True)
    for m in CHART.finditer(text):
        draw_chart(lab, results, m.group("attrs"), os.path.join(IMG, dict(attrs(m.group("attrs")))["file"]))
    for m in STAGES.finditer(text):
        draw_stages(lab, results, m.group("attrs"), os.path.join(IMG, dict(attrs(m.group("attrs")))["file"]))
    for m in PICTURE.finditer(text):
        a = dict(attrs(m.group("attrs")))
        shutil.copyfile(a["from"], os.path.join(IMG, a["file"]))
    return text


def hand_written(text):
    """The text with every generated part emptied: what a rewrite must leave byte for byte."""
    text = OUT.sub(lambda m: m.group(0)[:m.group(0).index("\n") + 1] + "<!-- lab-docs:out:end -->\n", text)
    text = HEADER.sub(lambda m: m.group(1) + m.group(3), text)
    return VALUE.sub(lambda m: f"<!--={m.group('expr')}--><!--/-->", text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lab", action="append", help="a lab's number or file name (repeatable); default every lab")
    p.add_argument("--quick", action="store_true", help="small scale, short waits (make test)")
    p.add_argument("--check", action="store_true", help="check the outputs' shape and write nothing in docs/")
    p.add_argument("--bin", default=os.path.join(REPO, "build", "hotplate"))
    p.add_argument("--out", default=os.path.join(REPO, ".hotplate", "labdocs-out"), help="where each step's output is kept")
    args = p.parse_args()
    if args.quick and not args.check:
        p.error("--quick writes nothing: its figures are not the lab's; add --check")
    paths = sorted(glob.glob(os.path.join(LABS, "[0-9][0-9]-*.md")))
    if args.lab:
        paths = [x for x in paths if any(os.path.basename(x).startswith(want) or os.path.basename(x) == want for want in args.lab)]
        if not paths:
            p.error(f"no lab matches {args.lab}")
    failed = []
    args.tree = tree_state()
    for path in paths:
        lab = Lab(path)
        if not lab.steps:
            print(f"labdocs: {lab.name}: no steps; skipped", file=sys.stderr)
            continue
        t0 = time.monotonic()
        try:
            results = run_lab(lab, args, os.path.join(args.out, lab.name), args.bin)
        except (ProcessError, OSError) as e:
            failed.append(f"{lab.name}: {e}")
            continue
        problems = check(lab, results, args.quick)
        if not problems:
            # The prose's figures must be found in this run's outputs and evaluate; in a quick run, one whose line
            # was not printed, or a zero divisor, is a figure's doing and passes.
            try:
                v = values(lab, results, strict=not args.quick)
                for m in VALUE.finditer(lab.text):
                    try:
                        evaluate(m.group("expr"), v)
                    except (ZeroDivisionError, KeyError):
                        if not args.quick:
                            raise
            except (ValueError, KeyError, ZeroDivisionError) as e:
                problems.append(f"a figure in the prose: {e}")
            # A picture's inputs are shapes: a stage picture needs its stage means, quick or not.
            for m in STAGES.finditer(lab.text):
                try:
                    stage_rows(lab, results, m.group("attrs"))
                except (ValueError, KeyError) as e:
                    problems.append(f"a stage picture: {e}")
        if problems:
            failed += [f"{lab.name}: {x}" for x in problems]
            continue
        if not args.check:
            text = rewrite(lab, results, args)
            if hand_written(text) != hand_written(lab.text):  # the promise of the markers, kept by construction and checked
                failed.append(f"{lab.name}: the rewrite would change hand-written text; not written")
                continue
            with open(path, "w") as f:
                f.write(text)
        print(f"labdocs: {lab.name}: {len(lab.steps)} steps ok in {time.monotonic() - t0:.0f} s"
              + ("" if args.check else ", rewritten"), file=sys.stderr)
    for f in failed:
        print(f"labdocs: FAILED {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
