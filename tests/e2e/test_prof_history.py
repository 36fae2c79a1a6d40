"""Continuous profiling (issue 15): with profile_every_s set, the server keeps
a CPU profile and a heap window per round in a bounded folder, lists them at
/debug/pprof/history, serves each one and merges a time range, and a profile
someone asks for preempts the one being saved.

The profiles are read with Debian's `go tool pprof` (test_pprof_proto.py's
helper), so what is checked is what a user's tool sees.
"""

import json
import os
import time

import pytest
import requests

from hplib.client import assert_error, describe, perf
from hplib.server import SUITE_FLAGS, Server
from test_pprof_proto import GO, go_pprof, top_rows

pytestmark = pytest.mark.skipif(GO is None, reason="go is not installed (deploy/deps.sh installs golang-go)")


def history(s, **params):
    r = requests.get(s.admin_base + "/debug/pprof/history", params=params, timeout=10)
    assert r.status_code == 200, describe(r)
    return r.json()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


@pytest.fixture
def hist_server(env, server_env, tmp_path):
    started = []

    def start(every, keep=2, folder=None, name="history"):
        folder = folder or str(tmp_path / "profiles")
        os.makedirs(tmp_path / name, exist_ok=True)
        s = Server(env["bin"], tmp_path / name, name=name, threads=1, flags=SUITE_FLAGS + ["profile_every_s=%d" % every],
                   args=["--profile-dir", folder, "--profile-keep", str(keep)], env=dict(server_env))
        s.start()
        s.folder = folder
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def heap_expected(s):
    heap = perf(s, "heap")["heap"]
    return heap.get("allocator") == "jemalloc"


def test_rounds_are_kept_bounded_listed_served_and_merged(hist_server, tmp_path):
    s = hist_server(every=2, keep=2)
    kinds = ["cpu", "heap"] if heap_expected(s) else ["cpu"]
    # Rounds start every 2 s with 1 s profiles: after four rounds the folder holds the newest two of each kind.
    doc = wait_for(lambda: (lambda d: d if d["rounds"]["saved"] >= 4 * len(kinds) else None)(history(s)), 40, "four rounds")
    assert doc["enabled"] and doc["every_s"] == 2 and doc["seconds"] == 1 and doc["keep"] == 2, doc
    assert doc["dir"] == s.folder and doc["rounds"]["failed"] == 0, doc
    profiles = doc["profiles"]
    for kind in kinds:
        mine = [p for p in profiles if p["kind"] == kind]
        assert len(mine) == 2, profiles
        assert mine[0]["unix_s"] >= mine[1]["unix_s"], "not newest first: %s" % mine
    on_disk = sorted(os.listdir(s.folder))
    assert len([f for f in on_disk if f.endswith(".pb.gz")]) == 2 * len(kinds), on_disk
    assert not [f for f in on_disk if f.endswith(".part")], on_disk
    p = profiles[0]
    assert p["flags"]["profile_every_s"] == "2" and p["commit"] and p["seconds"] == 1 and p["bytes"] > 0, p
    with open(os.path.join(s.folder, p["id"] + ".json")) as f:
        assert json.load(f)["id"] == p["id"]

    # One profile, as a user's pprof reads it: the commit and the flags are in its comments.
    cpu = [q for q in profiles if q["kind"] == "cpu"]
    r = requests.get(s.admin_base + cpu[0]["url"], timeout=10)
    assert r.status_code == 200 and r.content[:2] == b"\x1f\x8b", describe(r)
    path = tmp_path / "one.pb.gz"
    path.write_bytes(r.content)
    out, _ = go_pprof(["-top", str(path)], tmp_path)
    assert "Type: cpu" in out and "hotplate commit " + p["commit"] in out and "profile_every_s=2" in out, out[:2000]

    # The range [oldest, newest] of the CPU profiles, merged by the server.
    lo, hi = cpu[-1]["unix_s"], cpu[0]["unix_s"]
    out, _ = go_pprof(["-top", s.admin_base + "/debug/pprof/history?merge=cpu&from=%d&to=%d" % (lo, hi)], tmp_path)
    assert "merged from 2 profiles" in out and "Type: cpu" in out, out[:2000]
    if "heap" in kinds:
        out, _ = go_pprof(["-top", s.admin_base + "/debug/pprof/history?merge=heap"], tmp_path)
        assert "Type: inuse_space" in out and "merged from 2 profiles" in out, out[:2000]

    # Bad requests are 4xx in JSON, and nothing outside the kept list is ever read.
    base = s.admin_base + "/debug/pprof/history"
    assert_error(requests.get(base + "?merge=svg", timeout=10), 400, "bad_param")
    assert_error(requests.get(base + "?kind=all", timeout=10), 400, "bad_param")
    assert_error(requests.get(base + "?id=../../etc/passwd", timeout=10), 404, "not_found")
    assert_error(requests.get(base + "?merge=cpu&from=1&to=2", timeout=10), 404, "not_found")
    assert_error(requests.get(base + "?merge=cpu&from=x", timeout=10), 400, "bad_param")
    assert requests.get(s.base + "/debug/pprof/history", timeout=10).status_code == 404


def test_a_restart_reads_the_folder_back(hist_server, tmp_path):
    folder = str(tmp_path / "kept")
    s = hist_server(every=2, keep=3, folder=folder, name="first")
    wait_for(lambda: history(s)["rounds"]["saved"] >= 1, 30, "a saved profile")
    s.stop()
    # A profile being written when the server died is a .part file; the next start removes it.
    with open(os.path.join(folder, "20260101T000000Z-cpu.pb.gz.part"), "wb") as f:
        f.write(b"half")
    before = {f for f in os.listdir(folder) if f.endswith(".pb.gz")}
    s2 = hist_server(every=0, keep=3, folder=folder, name="second")
    doc = history(s2)
    assert not doc["enabled"] and doc["rounds"]["started"] == 0, doc
    assert {p["id"] + ".pb.gz" for p in doc["profiles"]} == before, (doc["profiles"], before)
    assert not [f for f in os.listdir(folder) if f.endswith(".part")]
    r = requests.get(s2.admin_base + doc["profiles"][0]["url"], timeout=10)
    assert r.status_code == 200 and r.content[:2] == b"\x1f\x8b", describe(r)


def test_a_requested_profile_preempts_the_saved_one(hist_server, tmp_path):
    # 20 s between rounds, 10 s profiles: the first round starts within a second and samples for ten.
    s = hist_server(every=20, keep=2)
    wait_for(lambda: history(s)["rounds"]["started"] >= 1, 10, "the first round")
    r = requests.get(s.admin_base + "/debug/pprof/profile", params={"seconds": "1"}, timeout=40)
    assert r.status_code == 200, describe(r)  # not 409: the request took the profiler
    doc = history(s)
    assert doc["rounds"]["preempted"] >= 1, doc["rounds"]
    assert not [p for p in doc["profiles"] if p["kind"] == "cpu"], doc["profiles"]
    # Switched off at runtime, no round starts again.
    requests.post(s.admin_base + "/debug/flags", json={"profile_every_s": 0}, timeout=10).raise_for_status()
    started = history(s)["rounds"]["started"]
    time.sleep(1.5)
    doc = history(s)
    assert not doc["enabled"] and doc["rounds"]["started"] == started, doc
