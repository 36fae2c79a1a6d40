#!/usr/bin/python3
"""Pastes a real make lab's results into docs/BENCHMARKS.md.

    make lab                                       # writes reports/<timestamp>/
    loadtests/bench_doc.py reports/<timestamp>     # rewrites the section between the markers

The section between `<!-- make-lab:begin -->` and `<!-- make-lab:end -->` is
replaced with: when and on what the run was made (from report.json), the
summary table exactly as make lab printed it (bench_report.terminal, the
function that printed it), the goals and ceilings and the peak-hour tables
exactly as report.md has them, and the lines of report.md that show the
causes (the plans and the profiles' watched functions). Nothing is typed by
hand; the verdict in prose ("Are the goals met?") follows the end marker and
is a person's reading of these figures, to be rewritten with each new run.

It uses tests/hplib: run it with PYTHONPATH=tests from the repository's root.
"""

import json
import os
import sys

import bench_report

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOC = os.path.join(REPO, "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- make-lab:begin -->", "<!-- make-lab:end -->"


def md_section(md, title):
    """The body of a '## title' section of report.md."""
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 3)
    return md[start:end if end >= 0 else len(md)].split("\n", 1)[1].strip()


def section(report_dir):
    r = json.load(open(os.path.join(report_dir, "report.json")))
    md = open(os.path.join(report_dir, "report.md")).read()
    rel = os.path.relpath(os.path.realpath(report_dir), REPO)
    mc, g = r["machine"], r["git"]
    la0 = " ".join(f"{x:.2f}" for x in r["load_average_start"])
    la1 = " ".join(f"{x:.2f}" for x in r["load_average_end"])
    when = f"{r['timestamp'][:4]}-{r['timestamp'][4:6]}-{r['timestamp'][6:8]} {r['timestamp'][9:11]}:{r['timestamp'][11:13]} UTC"
    out = [BEGIN, "### Results of a real `make lab`", "",
           f"Made with `{'make lab QUICK=1' if r['settings']['quick'] else 'make lab'}` at {when}, on tree {g.get('commit')}"
           + (" with uncommitted changes" if g.get("dirty") else "") + f", in {r['elapsed_s']:.0f} s inside the harness. "
           f"Machine: {mc['cpus']} CPUs, {mc['cpu']}, {mc['os']}; the load generators, PostgreSQL and Redis on the same cores. "
           f"Load average (1, 5, 15 min) at the start {la0}, at the end {la1}. The full report was `{rel}/report.md` "
           "(reports/ is not in the repository). This section was written by `loadtests/bench_doc.py " + rel + "`.", "",
           "The summary table, as `make lab` printed it:", "", "```", bench_report.terminal(r), "```", ""]
    if r.get("ceilings"):
        out += ["Goals and ceilings, from report.md:", "", md_section(md, "Goals and ceilings"), ""]
    if r.get("peak_hour"):
        out += ["Peak hour, from report.md:", "", md_section(md, "Peak hour"), ""]
    # report.md links into its own directory, which is not in the repository: name the files instead.
    causes = [line for sc in r["scenarios"] for line in bench_report.profile_lines(sc, lambda f: f"`{rel}/{f}`")
              if "plan of" in line or "on the stack" in line]
    if causes:
        out += ["The plans and profiles that show the causes, from report.md (before = the bottleneck, after = the default):", ""]
        out += causes + [""]
    out.append(END)
    return "\n".join(out)


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(sys.argv[1], "report.json")):
        print(f"{sys.argv[1]}: no report.json there (give a reports/<timestamp> directory)", file=sys.stderr)
        return 2
    text = open(DOC).read()
    if BEGIN not in text or END not in text:
        print(f"{DOC}: the markers {BEGIN} and {END} are missing", file=sys.stderr)
        return 1
    start, end = text.index(BEGIN), text.index(END) + len(END)
    # The new section is built before the file is opened for writing, so a bad report never truncates the doc.
    pasted = section(sys.argv[1])
    with open(DOC, "w") as f:
        f.write(text[:start] + pasted + text[end:])
    print(f"{os.path.relpath(DOC)}: results of {sys.argv[1]} pasted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
