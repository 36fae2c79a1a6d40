"""Differential flame graphs: two folded profiles ("a;b;c 12" per line) to one SVG.

    render(before_text, after_text, title) -> SVG text

The graph is the after profile's flame graph (width is the share of after's
samples, the root at the bottom, children sorted by name) with each frame
coloured by how its share changed: red where the frame, with everything
above it on its stack, holds a larger share of after's samples than of
before's, blue where it holds a smaller one, near white where nothing moved.
Shares are normalized by each profile's total, so two profiles of different
lengths or rates compare. The colour's depth is the change over the largest
change in the graph. Each frame's tooltip gives both counts, both shares and
the change in percentage points. Stacks that only before has cannot be drawn
on after's shape; the heading says how many of before's samples they hold,
and `go tool pprof -diff_base` lists them.

Why Python here and not C next to profiling/flame.c: flame.c draws the one
profile the server was asked for, inside the server; this one is drawn by the
harness after a run, from the two folded files it has already stored, and is
tested with the rest of the harness (tests/bench) on canned stacks. No flame
graph library is packaged in Debian 12 (apt-cache search flamegraph finds
none), so it is ours. Standard library only.
"""

from xml.sax.saxutils import escape

WIDTH = 1200
PAD_X = 10
TOP = 64  # the heading's three lines
BOTTOM = 16
ROW = 16
FONT = 12
CHAR_W = 7.2
# Frames narrower than this (pixels) are not drawn, nor their subtrees: it
# bounds the rectangles per row to WIDTH / MIN_WIDTH, so the SVG stays small.
MIN_WIDTH = 0.1
MAX_NAME = 512


def parse_folded(text):
    """{stack tuple (root first): count} of folded stacks; lines that are not "stack count" are skipped."""
    stacks = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or int(count) == 0:
            continue
        key = tuple(stack.split(";"))
        stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


def prefix_counts(stacks):
    """{stack prefix: samples with that prefix}: a frame's inclusive count, keyed by its path from the root."""
    incl = {}
    for stack, c in stacks.items():
        for i in range(1, len(stack) + 1):
            incl[stack[:i]] = incl.get(stack[:i], 0) + c
    return incl


def colour(t):
    """rgb() for a change t in [-1, 1]: red for growth, blue for shrinkage, near white for none."""
    t = max(-1.0, min(1.0, t))
    fade = round(235 - 200 * abs(t))
    if t >= 0:
        return f"rgb(255,{fade},{fade})" if t > 0 else "rgb(235,235,235)"
    return f"rgb({fade},{fade},255)"


def frames(before, after):
    """The rectangles of after's graph: [(path, x share, width share, after count, before count, delta points)].
    x and width are shares of after's total; delta is after's share minus before's, in percentage points."""
    inc_a, inc_b = prefix_counts(after), prefix_counts(before)
    tot_a, tot_b = sum(after.values()), sum(before.values())
    out = []
    if tot_a == 0:
        return out, tot_a, tot_b
    children = {}
    for path in inc_a:
        children.setdefault(path[:-1], []).append(path)
    # Walk from the roots, each level's children by name, as a flame graph lays them out.
    todo = [((), 0.0)]
    while todo:
        parent, x = todo.pop()
        for path in sorted(children.get(parent, []), key=lambda p: p[-1]):
            a, b = inc_a[path], inc_b.get(path, 0)
            w = a / tot_a
            delta = 100 * (a / tot_a - (b / tot_b if tot_b else 0.0))
            out.append((path, x, w, a, b, delta))
            todo.append((path, x))
            x += w
    return out, tot_a, tot_b


def render(before_text, after_text, title="differential flame graph"):
    """The SVG of after's stacks coloured by their change against before (see the module's comment)."""
    before, after = parse_folded(before_text), parse_folded(after_text)
    rects, tot_a, tot_b = frames(before, after)
    usable = WIDTH - 2 * PAD_X
    drawn = [r for r in rects if r[2] * usable >= MIN_WIDTH]
    depth = max((len(r[0]) for r in drawn), default=0)
    height = TOP + BOTTOM + max(depth, 1) * ROW
    scale = max((abs(r[5]) for r in drawn), default=0.0) or 1.0
    inc_a = prefix_counts(after)
    only_before = sum(c for s, c in before.items() if s not in inc_a)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">',
           f"<style>text{{font-family:monospace;font-size:{FONT}px;fill:#000}}rect:hover{{stroke:#000;stroke-width:0.5}}</style>",
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>',
           f'<text x="{PAD_X}" y="18" font-weight="bold">{escape(title)}</text>',
           f'<text x="{PAD_X}" y="36">width: after\'s samples ({tot_a} in all); colour: share of after minus share of before '
           f'(before: {tot_b} samples), red grew, blue shrank, deepest at {scale:.2f} points</text>',
           f'<text x="{PAD_X}" y="52">not drawn: {only_before} of before\'s samples on stacks after does not have'
           f"{' (see the pprof diff)' if only_before else ''}</text>"]
    if not drawn:
        out.append(f'<text x="{PAD_X}" y="{TOP + ROW}">no samples in the after profile</text>')
    for path, x, w, a, b, delta in drawn:
        name = path[-1]
        shown = name if len(name) <= MAX_NAME else name[:MAX_NAME] + ".."
        px, pw = PAD_X + x * usable, w * usable
        y = height - BOTTOM - len(path) * ROW
        tip = (f"{shown}: after {a} samples ({100 * a / tot_a:.2f}%), before {b} samples "
               f"({100 * b / tot_b if tot_b else 0.0:.2f}%), change {delta:+.2f} points")
        out.append(f'<g class="frame"><title>{escape(tip)}</title><rect x="{px:.2f}" y="{y}" width="{pw:.2f}" '
                   f'height="{ROW - 1}" fill="{colour(delta / scale)}"/>')
        chars = int((pw - 4) / CHAR_W)
        if chars >= 3:
            label = name if len(name) <= chars else name[:chars - 2] + ".."
            out.append(f'<text x="{px + 2:.2f}" y="{y + ROW - 4}">{escape(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
