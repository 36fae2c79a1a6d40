"""pprof's own format (issue 15): the profiles answer as gzipped profile.proto,
symbolized by the server, and the real client reads them.

Every check here runs Debian's `go tool pprof` (golang-go) against a running
server under load, the way a newcomer types it: pointed at the URL, or at a
downloaded file. PPROF_BINARY_PATH points nowhere, so the names pprof prints
come from the profile itself, not from binaries it found on this machine.
"""

import os
import re
import shutil
import subprocess
import threading
import time

import pytest
import requests

from hplib.client import assert_error, describe
from test_pprof import CONVERT_SLACK, HP_FRAMES, Load, load, prof_server  # noqa: F401 (fixtures)
from test_bottlenecks import big_cart, catering_options, heap_allocated, set_flags  # noqa: F401 (fixture)

GO = shutil.which("go")
GO_TIMEOUT = 120
# What libc's system call wrappers are called in a profile of the cached menu and the quote (reads, writes, epoll).
LIBC_SYSCALLS = {"read", "__read", "write", "__write", "__libc_write", "writev", "__writev", "send", "__send", "recv",
                 "__recv", "epoll_wait", "epoll_ctl", "__GI___libc_write", "__GI___libc_read", "sendmsg", "__libc_sendmsg"}

pytestmark = pytest.mark.skipif(GO is None, reason="go is not installed (deploy/deps.sh installs golang-go)")


def go_pprof(args, tmp_path, timeout=GO_TIMEOUT):
    env = dict(os.environ, PPROF_TMPDIR=str(tmp_path), HOME=str(tmp_path), PPROF_BINARY_PATH=str(tmp_path / "no-binaries"))
    p = subprocess.run([GO, "tool", "pprof"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, "go tool pprof %s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode, out[-3000:], err[-3000:])
    return out, err


TOP_LINE = re.compile(r"^\s*(-?[\d.]+\w*)\s+(-?[\d.]+)%\s+(-?[\d.]+)%\s+(-?[\d.]+\w*)\s+(-?[\d.]+)%\s+(.+?)\s*$")


def top_rows(out):
    """`go tool pprof -top` rows as (name, flat%, cum%), in the order printed. pprof prints a diff's percentages
    unsigned; a row whose value is negative gets negative percentages here."""
    rows = []
    for line in out.splitlines():
        m = TOP_LINE.match(line)
        if m:
            flat = float(m.group(2)) * (-1 if m.group(1).startswith("-") else 1)
            cum = float(m.group(5)) * (-1 if m.group(4).startswith("-") else 1)
            # pprof marks a function it saw only inlined "NAME (inline)": the name is the function's all the same.
            name = m.group(6)[:-len(" (inline)")] if m.group(6).endswith(" (inline)") else m.group(6)
            rows.append((name, flat, cum))
    return rows


def test_go_pprof_reads_the_cpu_profile_by_url_with_every_frame_named(prof_server, load, tmp_path):
    url = prof_server.admin_base + "/debug/pprof/profile?seconds=3"
    with load():
        out, err = go_pprof(["-top", "-nodecount=400", url], tmp_path)
    assert "Type: cpu" in out, out[:2000]
    rows = top_rows(out)
    names = {n for n, _, _ in rows}
    assert rows, out[:2000]
    assert any(n.startswith(f) for n in names for f in HP_FRAMES), "no hotplate handler in pprof's top:\n" + out[:4000]
    assert names & LIBC_SYSCALLS, "no libc system call wrapper by name in pprof's top:\n" + out[:4000]
    # What the issue saw: libc's samples as one unnamed [libc.so.6] frame. None may carry more than 1% now, the
    # kernel's vDSO (clock_gettime) included: it is no file on disk, and the symbolizer names it from its own
    # process's image of the same kernel's vDSO (profiling/symbolize.c).
    unnamed = [(n, flat) for n, flat, _ in rows if flat > 1.0 and (n.startswith("[") or n.startswith("libc.so"))]
    assert not unnamed, "frames without a name above 1%%: %s\n%s" % (unnamed, out[:4000])
    # Symbolized by the server: pprof had nothing to look up (no symbolizer call, no binary found).
    assert "symbol" not in err.lower() or "no symbols" not in err.lower(), err


def test_cpu_profile_is_gzipped_proto_by_default_and_gperftools_on_request(prof_server, load):
    with load():
        r = requests.get(prof_server.admin_base + "/debug/pprof/profile", params={"seconds": "1"}, timeout=1 + CONVERT_SLACK)
        g = requests.get(prof_server.admin_base + "/debug/pprof/profile", params={"seconds": "1", "format": "gperftools"},
                         timeout=1 + CONVERT_SLACK)
    assert r.status_code == 200, describe(r)
    assert r.content[:2] == b"\x1f\x8b", r.content[:20]  # gzip
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert "hotplate-cpu.pb.gz" in r.headers["Content-Disposition"]
    assert g.status_code == 200, describe(g)
    assert g.content[:16] == b"\0" * 8 + b"\x03" + b"\0" * 7, g.content[:16]  # gperftools' header: 0, 3


def test_remote_symbolization_of_the_gperftools_file_goes_through_debug_pprof_symbol(prof_server, load, tmp_path):
    """The profiler's own file has addresses only; pprof pointed at its URL posts them to /debug/pprof/symbol."""
    url = prof_server.admin_base + "/debug/pprof/profile?seconds=2&format=gperftools"
    with load():
        out, err = go_pprof(["-symbolize=remote", "-top", "-nodecount=400", url], tmp_path)
    names = {n for n, _, _ in top_rows(out)}
    assert any(n.startswith(f) for n in names for f in HP_FRAMES), "remote symbolization named no handler:\n%s\n%s" % (
        out[:3000], err[-2000:])


def test_symbol_endpoint_answers_pprofs_protocol(prof_server, load, tmp_path):
    r = requests.get(prof_server.admin_base + "/debug/pprof/symbol", timeout=10)
    assert r.status_code == 200 and r.text == "num_symbols: 1\n", describe(r)
    # Addresses pprof's -raw listing gives for a profile's locations, looked up again one by one.
    with load():
        resp = requests.get(prof_server.admin_base + "/debug/pprof/profile", params={"seconds": "2"}, timeout=2 + CONVERT_SLACK)
    assert resp.status_code == 200, describe(resp)
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(resp.content)
    raw, _ = go_pprof(["-raw", str(path)], tmp_path)
    # A location's lines list the functions inlined at its address innermost first; the last is the function whose
    # symbol covers the address, which is what the symbol route names.
    located, addr = {}, None
    for line in raw.splitlines():
        m = re.match(r"^\s*\d+: (0x[0-9a-f]+) M=\d+ (\S+)", line)
        if m:
            addr = int(m.group(1), 16)
            located[addr] = m.group(2)
        elif addr is not None and re.match(r"^\s{8,}(\S+) ", line):
            located[addr] = line.split()[0]
        else:
            addr = None
    located = {a: name for a, name in located.items() if name.startswith("hp_")}
    assert located, raw[:3000]
    addrs = list(located)[:20]
    body = "+".join("%#x" % a for a in addrs) + "+bogus+0x1"
    r = requests.post(prof_server.admin_base + "/debug/pprof/symbol", data=body, timeout=10)
    assert r.status_code == 200, describe(r)
    lines = r.text.splitlines()
    assert lines[0] == "num_symbols: 1", r.text[:500]
    answered = {int(a, 16): name for a, name in (line.split(" ", 1) for line in lines[1:])}
    for a in addrs:
        assert answered.get(a) == located[a], (hex(a), answered.get(a), located[a])
    assert 1 not in answered  # nothing is mapped at 0x1


def test_heap_profile_names_the_leak_site(start_server, world, tmp_path):
    s = start_server(threads=1, name="pprof-leak", flags=["payment_latency_ms=0"])
    heap_allocated(s)  # skips on a build without jemalloc (the sanitizer builds)
    set_flags(s, leak="on")
    ua = "Mozilla/5.0 (X11; Linux x86_64) hotplate-e2e/1.0 " + "x" * 60
    stop = threading.Event()

    def views():
        sess = requests.Session()
        while not stop.is_set():
            sess.get(s.base + "/restaurants/%d/menu" % world.rid3, headers={"User-Agent": ua}, timeout=10)

    ts = [threading.Thread(target=views, daemon=True) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        # One sample per 8 KiB allocated (lg_sample 13) rather than 128 KiB: the views leak about 200 bytes each, a few
        # hundred kilobytes in the window, which the default rate would sample a handful of times.
        # The alerts sampler allocates its one merge buffer (megabytes, kept for the process's life) at its first tick
        # after the start: a window that held that tick would show it as the biggest live site, rightly.
        time.sleep(1.5)
        out, _ = go_pprof(["-sample_index=inuse_space", "-top", "-cum", "-nodecount=60",
                           s.admin_base + "/debug/pprof/heap?seconds=3&lg_sample=13"], tmp_path)
        # The same window as a flame graph, drawn by the server: its counts are bytes, and the leak is a frame of it.
        svg = requests.get(s.admin_base + "/debug/pprof/heap?seconds=3&lg_sample=13&format=svg", timeout=3 + CONVERT_SLACK)
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=20)
        set_flags(s, leak="off")
    if "Type: inuse_space" not in out:
        pytest.fail("not an inuse_space profile:\n" + out[:2000])
    rows = top_rows(out)
    leak = [cum for n, _, cum in rows if n == "hp_recent_record"]
    assert leak and leak[0] >= 50, "the leak's allocation site does not hold most of the live bytes:\n" + out[:4000]
    own = [(flat, n) for n, flat, _ in rows if n.startswith("hp_")]
    assert max(own)[1] == "hp_recent_record", "another of hotplate's sites holds more:\n" + out[:4000]
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml", describe(svg)
    assert "hotplate heap profile, bytes in use after 3 s (" in svg.text and "samples" not in svg.text, svg.text[:1000]
    assert re.search(r"<title>hp_recent_record \(\d+ bytes, [\d.]+%\)</title>", svg.text), svg.text[:3000]


def test_allocs_profile_shows_alloc_space_first(prof_server, load, tmp_path):
    heap_allocated(prof_server)
    with load():
        out, _ = go_pprof(["-top", prof_server.admin_base + "/debug/pprof/allocs?seconds=2"], tmp_path)
    assert "Type: alloc_space" in out, out[:2000]
    names = {n for n, _, _ in top_rows(out)}
    assert any(n.startswith("hp_") or n.startswith("h2o_") for n in names), out[:3000]


def test_diff_base_shows_the_naive_total_shrinking(start_server, db, world, catering_options, tmp_path):  # noqa: F811
    s = start_server(threads=1, name="pprof-diff")
    body = big_cart(db, world)
    token = world.a["token"]

    def profile(path):
        stop = threading.Event()
        statuses = {}

        def quotes():
            sess = requests.Session()
            while not stop.is_set():
                r = sess.post(s.base + "/cart/quote", json=body, headers={"Authorization": "Bearer " + token}, timeout=10)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        ts = [threading.Thread(target=quotes, daemon=True) for _ in range(3)]
        for t in ts:
            t.start()
        try:
            time.sleep(0.3)
            r = requests.get(s.admin_base + "/debug/pprof/profile", params={"seconds": "3"}, timeout=3 + CONVERT_SLACK)
        finally:
            stop.set()
            for t in ts:
                t.join(timeout=20)
        assert set(statuses) == {200}, statuses
        assert r.status_code == 200, describe(r)
        path.write_bytes(r.content)

    set_flags(s, order_total="naive")
    profile(tmp_path / "naive.pb.gz")
    set_flags(s, order_total="once")
    profile(tmp_path / "once.pb.gz")
    out, _ = go_pprof(["-top", "-cum", "-nodecount=400", "-diff_base", str(tmp_path / "naive.pb.gz"),
                       str(tmp_path / "once.pb.gz")], tmp_path)
    cum = {n: c for n, _, c in top_rows(out)}
    assert cum.get("hp_total__compute_naive", 0) < 0, "the naive total did not shrink:\n" + out[:4000]


def test_index_page_lists_the_profiles(prof_server):
    r = requests.get(prof_server.admin_base + "/debug/pprof/", timeout=10)
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/html")
    for href in ['href="profile?seconds=10"', 'href="heap?seconds=10"', 'href="allocs?seconds=10"', 'href="history"', 'href="symbol"']:
        assert href in r.text, href


def saved_cpu_profile(prof_server, load, tmp_path):
    """A 2 s CPU profile under load in gperftools' own format, saved as tmp_path/cpu.prof."""
    with load():
        r = requests.get(prof_server.admin_base + "/debug/pprof/profile", params={"seconds": "2", "format": "gperftools"},
                         timeout=2 + CONVERT_SLACK)
    assert r.status_code == 200, describe(r)
    raw = tmp_path / "cpu.prof"
    raw.write_bytes(r.content)
    return raw


def test_pprof_encode_converts_a_saved_profile(prof_server, load, env, tmp_path):
    raw = saved_cpu_profile(prof_server, load, tmp_path)
    out_path = tmp_path / "cpu.pb.gz"
    with open(out_path, "wb") as f:
        p = subprocess.run([env["bin"], "pprof-encode", "cpu", str(raw), "--seconds", "2", "--comment", "saved"],
                           stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    out, _ = go_pprof(["-top", "-nodecount=400", str(out_path)], tmp_path)
    assert "Duration: 2s" in out, out[:1000]
    assert any(n.startswith(f) for n, _, _ in top_rows(out) for f in HP_FRAMES), out[:3000]
    # Not a profile: a clear message and a failing status, no output.
    bad = tmp_path / "bad.prof"
    bad.write_bytes(b"not a profile\n")
    p = subprocess.run([env["bin"], "pprof-encode", "heap", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 1 and p.stdout == b"", (p.returncode, p.stdout[:100])
    assert b"not a jemalloc heap profile" in p.stderr, p.stderr


def traces_as_folded(out):
    """`go tool pprof -traces` output as {folded stack: value}: each trace is leaf first, an inlined frame
    "NAME (inline)"; folded stacks are root first, an inlined frame NAME[inline]."""
    stacks, frames, value = {}, None, 0

    def flush():
        if frames:
            key = ";".join(reversed(frames))
            stacks[key] = stacks.get(key, 0) + value

    for line in out.splitlines():
        if line.startswith("-----------+"):
            flush()
            frames, value = [], 0
            continue
        if frames is None or not line.strip():
            continue
        m = re.match(r"^\s*(\d+)\s{3}(\S.*)$", line) if not frames else None
        name = m.group(2) if m else line.strip()
        if m:
            value = int(m.group(1))
        frames.append(name[:-len(" (inline)")] + "[inline]" if name.endswith(" (inline)") else name)
    flush()
    return stacks


def test_folded_stacks_are_the_protos_stacks(prof_server, load, env, tmp_path):
    """format=folded is made from the server's own symbolization (pprof-encode --folded): the same stacks, frame for
    frame, inlined frames included, as go tool pprof reads from the proto of the same raw profile. So a stripped
    library's static function is FILE+0xOFFSET in both, never the exported symbol before it."""
    raw = saved_cpu_profile(prof_server, load, tmp_path)
    proto = tmp_path / "cpu.pb.gz"
    with open(proto, "wb") as f:
        p = subprocess.run([env["bin"], "pprof-encode", "cpu", str(raw)], stdout=f, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    p = subprocess.run([env["bin"], "pprof-encode", "cpu", str(raw), "--folded"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    folded = {}
    for line in p.stdout.decode().splitlines():
        stack, _, count = line.rpartition(" ")
        assert stack not in folded, "a stack twice in the folded output: " + stack
        folded[stack] = int(count)
    assert folded, "an empty CPU profile under load"
    # -symbolize=none: the names as the profile carries them. pprof would otherwise demangle the C++ names of the
    # sanitizer runtime's frames (the ASan build's), which the server keeps as the symbol table spells them.
    out, _ = go_pprof(["-traces", "-sample_index=samples", "-symbolize=none", str(proto)], tmp_path)
    assert folded == traces_as_folded(out), (sorted(set(folded) ^ set(traces_as_folded(out)))[:10])
    assert any("[inline]" in stack for stack in folded), "no inlined frame in %d stacks" % len(folded)


def test_heap_routes_refuse_bad_parameters(prof_server):
    for path in ["/debug/pprof/heap", "/debug/pprof/allocs"]:
        for q in ["seconds=0", "seconds=61", "format=png", "format=xml", "lg_sample=5"]:
            assert_error(requests.get(prof_server.admin_base + path + "?" + q, timeout=10), 400, "bad_param")
    for path in ["/debug/pprof/heap", "/debug/pprof/allocs", "/debug/pprof/", "/debug/pprof/symbol"]:
        r = requests.get(prof_server.base + path, timeout=10)
        assert r.status_code == 404, "%s answered %d on the API port" % (path, r.status_code)
