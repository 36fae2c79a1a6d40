#!/usr/bin/python3
"""Pastes the doctor's reports from an end-to-end run into docs/DOCTOR.md.

    HOTPLATE_DOCTOR_REPORTS=DIR ... pytest tests/e2e/test_doctor.py   # writes DIR/<server name>.md
    tests/e2e/doctor_doc.py DIR                                       # rewrites the reports in docs/DOCTOR.md
    tests/e2e/doctor_doc.py --only DIR                                # only those DIR has a report of

With --only, the servers DIR has no report of keep their blocks, and the
provenance paragraph (which speaks for the whole run) is left alone: a
section pasted that way says where its report comes from itself.

Each report in the doc sits in a ~~~markdown block after the line that names
its server (server `doctor-...`). The block is replaced with DIR/<server>.md,
shortened to its findings: the "Observed routes" table is kept for the clean
run only. The paragraph that starts "These reports were pasted" says which
commit and day the reports come from. Nothing is typed by hand.

Exit status: 0 done, 2 bad usage or a report missing.
"""

import datetime
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(REPO, "docs", "DOCTOR.md")
SERVER_LINE = re.compile(r"server `(doctor-[a-z0-9-]+)`")
CLEAN = "doctor-clean"
PROVENANCE = re.compile(r"^These reports were (pasted|produced)\b.*$", re.M)


def shorten(name, text):
    """The report as the doc shows it: without the routes table, except for the clean run."""
    if name != CLEAN:
        text = text.split("\n## Observed routes", 1)[0]
    return text.rstrip() + "\n"


def paste(doc, reports, only=False):
    """Returns doc with every server's block replaced by reports[server]; raises KeyError for a missing one
    (with only, a server without a report keeps its block)."""
    lines = doc.splitlines(keepends=True)
    out, i, seen = [], 0, []
    while i < len(lines):
        out.append(lines[i])
        m = SERVER_LINE.search(lines[i])
        i += 1
        if not m:
            continue
        name = m.group(1)
        if only and name not in reports:
            continue
        # The block follows the server's line, after blank lines only.
        j = i
        while j < len(lines) and lines[j].strip() == "":
            j += 1
        if j == len(lines) or lines[j].rstrip() != "~~~markdown":
            continue
        end = j + 1
        while end < len(lines) and lines[end].rstrip() != "~~~":
            end += 1
        if end == len(lines):
            raise ValueError("the block of %s never closes" % name)
        out += lines[i:j + 1]
        out.append(shorten(name, reports[name]))
        out.append(lines[end])
        seen.append(name)
        i = end + 1
    return "".join(out), seen


def provenance(commit, day):
    return ("These reports were pasted by `tests/e2e/doctor_doc.py DIR` from a run of the command above at commit %s, "
            "on %s. The runs were made on the shared 2-core development machine, whose other load shows in the "
            "latencies. The rules judge shares and ratios, which is why the ranking holds on such a machine anyway. "
            "Each report is shortened to its findings. Its \"Observed routes\" table is kept only for the clean run."
            % (commit, day))


def git_commit():
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return (rev or "unknown") + (" with uncommitted changes" if dirty else "")


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    if "--help" in flags or "-h" in argv:
        print(__doc__)
        return 0
    if len(args) != 1 or flags - {"--help", "--only"}:
        print("usage: tests/e2e/doctor_doc.py [--only] DIR", file=sys.stderr)
        return 2
    rdir = args[0]
    if not os.path.isdir(rdir):
        print("doctor_doc: %s is not a directory" % rdir, file=sys.stderr)
        return 2
    reports = {}
    for f in sorted(os.listdir(rdir)):
        if f.endswith(".md"):
            with open(os.path.join(rdir, f), encoding="utf-8") as fh:
                reports[f[:-3]] = fh.read()
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    try:
        new, seen = paste(doc, reports, only="--only" in flags)
    except KeyError as e:
        print("doctor_doc: no report of %s in %s" % (e.args[0], rdir), file=sys.stderr)
        return 2
    except ValueError as e:
        print("doctor_doc: %s" % e, file=sys.stderr)
        return 2
    if not seen:
        print("doctor_doc: no server block found in %s" % DOC, file=sys.stderr)
        return 2
    mtime = max(os.path.getmtime(os.path.join(rdir, n + ".md")) for n in seen)
    day = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%d")
    if "--only" not in flags:
        new = PROVENANCE.sub(lambda _: provenance(git_commit(), day), new, count=1)
    with open(DOC, "w", encoding="utf-8") as fh:
        fh.write(new)
    print("doctor_doc: pasted %d reports (%s) into %s" % (len(seen), ", ".join(seen), os.path.relpath(DOC, REPO)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
