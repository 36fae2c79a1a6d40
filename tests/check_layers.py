#!/usr/bin/env python3
"""The layer check of `make test`: includes point down only, and no module
includes itself in a circle.

hotplate's C code is four layers and the file that wires them
(docs/ARCHITECTURE.md):

    common/base     clock, log, flags, json, router, cursor, token, histogram, ...
    common/runtime  thread, http (params, errors), probes, db, redis, server
    services/       the API: handlers, statements, routes
    profiling/      the admin listener: perf, metrics, pg, doctor, pprof
    main.c          the wiring: route tables, statements, hooks, observers

A file may include its own layer and the layers below it, where profiling
sits beside services and never includes it: what profiling needs to know of
the API (routes, statements, their attributes) reaches it through the tables
main.c hands to the runtime. Within the tree a module is a .c/.h pair; the
graph of modules (a module depends on every module whose header one of its
files includes) must have no cycle, inside a layer or across layers.

The check reads the files as text: an #include "..." line whose path names a
project file is an edge. Every offending edge is printed as
`file:line: includes path (layer -> layer)`, every cycle as a chain of
modules, and the exit status is 1 when there is any.
"""

import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Include paths are resolved against these, in order (CMakeLists.txt's hpcore).
INCLUDE_DIRS = [REPO, os.path.join(REPO, "common")]

LAYERS = ["base", "runtime", "services", "profiling", "main"]

# What each layer may include (its own layer always).
ALLOWED = {
    "base": {"base"},
    "runtime": {"base", "runtime"},
    "services": {"base", "runtime", "services"},
    "profiling": {"base", "runtime", "profiling"},
    "main": set(LAYERS),
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(rel):
    """@return the layer of a project path, or None when it is outside them (tests, tools)."""
    if rel.startswith("common/base/"):
        return "base"
    if rel.startswith("common/runtime/"):
        return "runtime"
    if rel.startswith("services/"):
        return "services"
    if rel.startswith("profiling/"):
        return "profiling"
    if rel == "main.c":
        return "main"
    return None


def sources():
    for top in ("common", "services", "profiling"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(root, f), REPO)
    if os.path.exists(os.path.join(REPO, "main.c")):
        yield "main.c"


def resolve(inc, from_rel):
    """@return the project path an include names, or None for a system or generated header."""
    for base in [os.path.dirname(os.path.join(REPO, from_rel))] + INCLUDE_DIRS:
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(p) and p.startswith(REPO + os.sep):
            return os.path.relpath(p, REPO)
    return None


def module_of(rel):
    return os.path.splitext(rel)[0]


def edges():
    """Yields (file, line number, included path) for every project include."""
    for rel in sources():
        with open(os.path.join(REPO, rel), encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if m is None:
                    continue
                target = resolve(m.group(1), rel)
                if target is not None:
                    yield rel, n, target


def find_cycles(graph):
    """@return the cycles of a module graph, each as a list of modules (Tarjan's strongly connected components)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check():
    """@return the list of problems, as printable lines."""
    problems = []
    graph = {}
    for rel, n, target in edges():
        a, b = layer_of(rel), layer_of(target)
        if a is None or b is None:
            continue
        if b not in ALLOWED[a]:
            problems.append("%s:%d: includes %s (%s -> %s: %s may include %s only)"
                            % (rel, n, target, a, b, a, ", ".join(l for l in LAYERS if l in ALLOWED[a])))
        ma, mb = module_of(rel), module_of(target)
        if ma != mb:
            graph.setdefault(ma, set()).add(mb)
    for comp in find_cycles(graph):
        members = set(comp)
        # One concrete chain through the component, for the message.
        chain, v = [comp[0]], comp[0]
        while True:
            nxt = sorted(w for w in graph[v] if w in members)
            v = next((w for w in nxt if w not in chain), nxt[0])
            chain.append(v)
            if v == comp[0] or len(chain) > len(comp) + 1:
                break
        problems.append("include cycle: " + " -> ".join(chain))
    return problems


def main():
    problems = check()
    for p in problems:
        print(p)
    if problems:
        print("layers: %d problem(s); see docs/ARCHITECTURE.md for what each folder may include" % len(problems))
        return 1
    print("layers: every include points down, and no module includes itself in a circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
