"""Unit tests of loadtests/flame_diff.py (the differential flame graph) and of
loadtests/bench_pprof.py's reading of `go tool pprof -top` listings, on canned
folded stacks and a canned listing."""

import re
import xml.etree.ElementTree as ET

import bench_pprof
import flame_diff

SVG = "{http://www.w3.org/2000/svg}"

# Before: the naive total holds most of the quote; after: the once total, a smaller share, and more writev.
BEFORE = ("main;loop;hp_quote;hp_total__compute_naive 60\n"
          "main;loop;hp_quote;hp_json 20\n"
          "main;loop;writev 20\n")
AFTER = ("main;loop;hp_quote;hp_total__compute_once 10\n"
         "main;loop;hp_quote;hp_json 40\n"
         "main;loop;writev 150\n"
         "not a folded line\n")


def frames_of(svg):
    """{frame name: (fill, tooltip)} of a rendered SVG; it must be well-formed XML."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter(SVG + "g"):
        tip = g.find(SVG + "title").text
        rect = g.find(SVG + "rect")
        out[tip.split(":", 1)[0]] = (rect.get("fill"), tip, float(rect.get("x")), float(rect.get("width")))
    return out


def rgb(fill):
    return tuple(int(x) for x in re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill).groups())


def test_parse_and_prefix_counts():
    st = flame_diff.parse_folded(AFTER)
    assert st[("main", "loop", "writev")] == 150 and len(st) == 3
    inc = flame_diff.prefix_counts(st)
    assert inc[("main",)] == 200 and inc[("main", "loop", "hp_quote")] == 50


def test_frames_are_after_s_stacks_coloured_by_their_normalized_change():
    f = frames_of(flame_diff.render(BEFORE, AFTER, "t"))
    # After's stacks only: the naive total, which after does not have, is not drawn.
    assert set(f) == {"main", "loop", "hp_quote", "hp_total__compute_once", "hp_json", "writev"}
    # writev: 20% of before, 75% of after: grew, red (the largest change, so the deepest red).
    assert rgb(f["writev"][0]) == (255, 35, 35)
    # hp_quote: 80% of before, 25% of after: shrank, blue; as much as writev grew, so as deep.
    assert rgb(f["hp_quote"][0]) == (35, 35, 255)
    # hp_json: 20% of both: no change, grey-white.
    assert rgb(f["hp_json"][0]) == (235, 235, 235)
    # The root holds every sample of both: unchanged too, although after has twice the samples (normalized).
    assert rgb(f["main"][0]) == (235, 235, 235)
    # The once total is new: 5 points of growth out of 55, a light red.
    r, g, b = rgb(f["hp_total__compute_once"][0])
    assert r == 255 and 200 < g == b < 235
    tip = f["writev"][1]
    assert "after 150 samples (75.00%)" in tip and "before 20 samples (20.00%)" in tip and "change +55.00 points" in tip


def test_layout_widths_follow_after_and_children_are_sorted():
    f = frames_of(flame_diff.render(BEFORE, AFTER))
    usable = flame_diff.WIDTH - 2 * flame_diff.PAD_X
    assert abs(f["main"][3] - usable) < 0.01
    assert abs(f["writev"][3] - 0.75 * usable) < 0.01
    # Children by name: hp_quote before writev, both starting where their parent starts.
    assert f["hp_quote"][2] == f["loop"][2] < f["writev"][2]
    assert f["hp_json"][2] == f["hp_quote"][2] < f["hp_total__compute_once"][2]


def test_heading_counts_what_cannot_be_drawn():
    svg = flame_diff.render(BEFORE, AFTER)
    assert "not drawn: 60 of before" in svg
    assert "(200 in all)" in svg and "before: 100 samples" in svg


def test_empty_and_hostile_input():
    svg = flame_diff.render("", "")
    ET.fromstring(svg)
    assert "no samples in the after profile" in svg
    # Names are escaped; a profile with no before still renders (every frame is growth).
    f = frames_of(flame_diff.render("", "main;operator<<&\"x\" 5\n"))
    assert rgb(f['operator<<&"x"'][0])[0] == 255


def test_tiny_frames_are_not_drawn():
    after = "main;big 1000000\nmain;tiny 1\n"
    f = frames_of(flame_diff.render(after, after))
    assert "big" in f and "tiny" not in f


LISTING = """File: hpbench-server
Type: cpu
Time: Dec 3, 2026 at 8:00am (UTC)
Duration: 4s, Total samples = 3.50s (87.50%)
Showing nodes accounting for -1.20s, 34.29% of 3.50s total
      flat  flat%   sum%        cum   cum%
    -1.50s 42.86% 42.86%     -1.90s 54.29%  hp_total__compute_naive
     0.20s  5.71% 48.57%      0.20s  5.71%  writev
    -150ms  4.29% 52.86%     -150ms  4.29%  hp_total__find_item_linear
      10ms  0.29% 53.14%     -1.60s 45.71%  hp_quote
         0     0% 53.14%      0.30s  8.57%  hp_total__compute_once
"""


def test_parse_top_and_the_largest_drop():
    header, rows = bench_pprof.parse_top(LISTING)
    assert header[1] == "Type: cpu" and header[-1].split() == ["flat", "flat%", "sum%", "cum", "cum%"]
    assert [r["function"] for r in rows][:2] == ["hp_total__compute_naive", "writev"]
    assert rows[2]["flat"] == "-150ms" and rows[0]["cum_pct"] == 54.29
    assert bench_pprof.largest_drop(rows)["function"] == "hp_total__compute_naive"
    assert bench_pprof.largest_drop(rows, key="flat")["function"] == "hp_total__compute_naive"
    assert bench_pprof.largest_drop([r for r in rows if not r["cum"].startswith("-")]) is None
    assert bench_pprof.value("-1.5s") == -1.5 and bench_pprof.value("10ms") == 0.01 and bench_pprof.value("0") == 0
    assert bench_pprof.value("12parsecs") is None
    assert bench_pprof.no_samples("Duration: 3s, Total samples = 0 ") and bench_pprof.no_samples("Total samples = 0")
    assert not bench_pprof.no_samples("Duration: 3s, Total samples = 0.50s (16.67%)") and not bench_pprof.no_samples(None)
