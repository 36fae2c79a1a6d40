"""Unit tests of loadtests/lab_numbers.py's CPU diff lines on canned reports
(tests/bench/canned.py): the function a CPU fix removed is the one the
report's diff names, whatever it is; a fix that is not a CPU change names no
function; a scenario without a diff gets no lines; and the section is pasted
between a lab's markers."""

import json

import bench_report
import canned
import lab_numbers


def test_a_cpu_fix_names_the_function_from_the_diff():
    r = canned.report()
    sc = r["scenarios"][1]
    assert sc["flag"] == "order_total"
    text = lab_numbers.section(r, "reports/x", sc)
    assert "**The function the fix removed**, from the diff: `hp_total__compute_naive`" in text and "by 250 ms" in text
    # The name is the diff's, not the script's: another report's drop is what the lab names.
    sc["cpu_diff"] = canned.cpu_diff("order_total", drop="hp_something_else")
    text = lab_numbers.section(r, "reports/x", sc)
    assert "from the diff: `hp_something_else`" in text and "hp_total__compute_naive`, whose" not in text
    assert "`go tool pprof -top -diff_base profiles/order_total-before-cpu.pb.gz" in text
    assert "differential flame graph (`reports/x/profiles/order_total-cpu-diff.svg`)" in text
    block = text.split("```\n", 1)[1].split("\n```", 1)[0]
    assert block.splitlines() == canned.DIFF_TOP
    # A diff where nothing shrank names nothing.
    sc["cpu_diff"] = canned.cpu_diff("order_total", drop=None)
    assert "does not name the function the fix removed" in lab_numbers.section(r, "reports/x", sc)


def test_a_side_without_samples_names_nothing():
    r = canned.report()
    sc = r["scenarios"][1]
    sc["cpu_diff"]["totals"]["before"] = "Duration: 3s, Total samples = 0"
    text = lab_numbers.section(r, "reports/x", sc)
    assert "The before CPU profile holds no sample" in text and "The function the fix removed" not in text
    assert "each side's own profile: before: Duration: 3s, Total samples = 0; after: Duration: 3s" in text


def test_other_fixes_say_what_the_diff_shows():
    r = canned.report()
    sc = r["scenarios"][0]
    assert sc["flag"] == "menu_cache"
    sc["cpu_diff"] = canned.cpu_diff("menu_cache", drop="hp__conn_on_readable")
    text = lab_numbers.section(r, "reports/x", sc)
    assert "The function the fix removed" not in text
    assert "This fix removes a PostgreSQL query per request" in text and "names no function it removed" in text
    assert "`hp__conn_on_readable` by 250 ms, is where the server's CPU time moved" in text


def test_no_diff_no_lines_and_a_failed_diff_says_why():
    r = canned.report()
    sc = r["scenarios"][0]
    assert "CPU diff" not in lab_numbers.section(r, "reports/x", sc)
    sc["cpu_diff"] = {"error": "go is not installed"}
    text = lab_numbers.section(r, "reports/x", sc)
    assert "- CPU diff: go is not installed" in text and "removed" not in text


def test_pasted_between_the_markers(tmp_path):
    out = tmp_path / "20260101T000000Z"
    bench_report.write_all(canned.report(), str(out), str(tmp_path))
    labs = tmp_path / "labs"
    labs.mkdir()
    lab = labs / "04-order-total.md"
    lab.write_text("# lab\n\n<!-- lab-numbers:order_total:begin -->\nold\n<!-- lab-numbers:order_total:end -->\n")
    assert lab_numbers.main([str(out), "--labs-dir", str(labs)]) == 0
    text = lab.read_text()
    assert "\nold\n" not in text and "from the diff: `hp_total__compute_naive`" in text
    assert lab_numbers.main([str(out), "--labs-dir", str(labs), "--check"]) == 0
    # The report.json the harness wrote keeps the diff as the script reads it.
    assert json.loads((out / "report.json").read_text())["scenarios"][1]["cpu_diff"]["largest_drop"]["function"] == \
        "hp_total__compute_naive"



def test_quick_command_matches_the_harness_defaults():
    # bench.py --quick profiles for 2 s; a quick report with that setting is plain `make bench ... QUICK=1`.
    r = canned.report(mode="bench")
    r["settings"]["profile_seconds"] = 2
    assert lab_numbers.command(r) == "make bench SCENARIO=menu_cache,order_total QUICK=1"
