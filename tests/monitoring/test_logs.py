"""Logs: the W3C traceparent, GET /debug/logs and the rotating log file.

- traceparent: a valid one is continued (same trace-id, a new span whose
  parent is the caller's), anything else starts a new trace; the response
  always carries the traceparent of the request's span, and the log line the
  same ids.
- /debug/logs counts lines by level, route and error code, keeps the last
  errors and timeouts with their request and trace ids, and reports an error
  spike when a burst of errors arrives against a quiet baseline.
- --log-file writes the same JSON lines as stdout to a file that rotates at
  its size limit, keeping the configured number of old files.
"""

import json
import os
import re
import subprocess
import time

import pytest
import requests

from hplib.client import assert_error
from hplib.process import free_port

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def request_lines(server):
    return [json.loads(l) for l in server.stdout_lines() if '"msg":"request"' in l]


def request_line(server, request_id):
    """The log line of one request. A worker thread writes the lines of a turn of its loop at the end of that turn,
    after the responses have gone out, so the client can hold its answer before the line is in the file: wait for
    it, within a bound."""
    deadline = time.monotonic() + 5
    while True:
        found = [l for l in request_lines(server) if l["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert found, "no log line for request %s" % request_id
            return found[0]
        time.sleep(0.02)


@pytest.fixture
def server(start_server):
    return start_server(threads=2, name="logs")


def test_traceparent_is_continued(server):
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = requests.get(server.base + "/healthz", headers={"traceparent": "00-%s-%s-01" % (trace, parent)}, timeout=5)
    m = TP.match(r.headers["traceparent"])
    assert m, r.headers["traceparent"]
    assert m.group(1) == trace and m.group(2) != parent and m.group(3) == "01"
    rid = r.headers["x-request-id"]
    line = request_line(server, rid)
    assert line["trace_id"] == trace and line["parent_id"] == parent and line["span_id"] == m.group(2)


@pytest.mark.parametrize("given", [
    None,
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace-id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent-id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has no more fields
    "garbage",
])
def test_invalid_or_absent_traceparent_starts_a_trace(server, given):
    headers = {"traceparent": given} if given else {}
    r = requests.get(server.base + "/healthz", headers=headers, timeout=5)
    m = TP.match(r.headers["traceparent"])
    assert m, r.headers["traceparent"]
    assert m.group(1) != "0" * 32 and m.group(1) != "4bf92f3577b34da6a3ce929d0e0e4736"
    line = request_line(server, r.headers["x-request-id"])
    assert line["trace_id"] == m.group(1) and "parent_id" not in line


def test_later_version_with_more_fields_is_continued(server):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = requests.get(server.base + "/healthz", headers={"traceparent": "01-%s-00f067aa0ba902b7-00-more" % trace}, timeout=5)
    m = TP.match(r.headers["traceparent"])
    assert m and m.group(1) == trace and m.group(3) == "00"


def test_each_request_gets_its_own_trace(server):
    ids = {TP.match(requests.get(server.base + "/healthz", timeout=5).headers["traceparent"]).group(1) for _ in range(20)}
    assert len(ids) == 20


def test_debug_logs_counts_and_last_errors(server):
    s = requests.Session()
    for _ in range(5):
        assert s.get(server.base + "/healthz", timeout=5).status_code == 200
    for _ in range(3):
        assert s.get(server.base + "/no/such/route", timeout=5).status_code == 404
    r = s.get(server.base + "/restaurants/abc", timeout=5)
    assert r.status_code == 400
    doc = s.get(server.admin_base + "/debug/logs", timeout=5).json()
    assert doc["windows_s"] == [10, 60, 300]
    for w in ("10s", "60s", "300s", "total"):
        assert set(doc["levels"][w]) == {"debug", "info", "warn", "error"}
    routes = {(x["method"], x["route"]): x for x in doc["routes"]}
    assert routes[("GET", "/healthz")]["total"]["lines"] >= 5
    assert routes[("GET", "/healthz")]["total"]["errors"] == 0
    assert routes[("GET", "/restaurants/{id}")]["10s"]["errors"] == 1
    assert doc["error_codes"]["10s"]["not_found"] == 3
    assert sum(doc["error_codes"]["total"].values()) >= 4
    # 4xx answers are info lines, not errors: only the 503s of /readyz before the server was ready are there.
    assert all(e["status"] >= 500 for e in doc["last_errors"] if e["kind"] == "request"), doc["last_errors"]
    assert doc["spike"]["spike"] is False
    assert doc["file"] is None
    bad = s.get(server.admin_base + "/debug/logs?limit=0", timeout=5)
    assert_error(bad, 400, "bad_param")


def test_errors_timeouts_and_spike(start_server, live_env):
    """A server whose database is unreachable answers 503 db_unavailable; a
    burst of them is an error spike against an empty baseline, and each shows
    in the last errors with its request and trace ids. Timeouts: the payment
    simulator slower than the payment deadline."""
    s = start_server(threads=1, name="nodb", wait_ready=False,
                     env={"HOTPLATE_PG_URL": "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=1" % free_port()})
    sess = requests.Session()
    sent = []
    for _ in range(90):
        r = sess.get(s.base + "/restaurants/1", timeout=5)
        assert r.status_code == 503
        sent.append(r.headers["x-request-id"])
    # The spike looks at whole seconds only; wait for the current one to end.
    deadline = time.monotonic() + 5
    doc = None
    while time.monotonic() < deadline:
        doc = sess.get(s.admin_base + "/debug/logs?limit=20", timeout=5).json()
        if doc["spike"]["spike"]:
            break
        time.sleep(0.2)
    assert doc["spike"]["spike"] is True, doc["spike"]
    assert doc["spike"]["rate_per_s"] >= 1 and doc["spike"]["baseline_per_s"] == 0
    assert doc["error_codes"]["60s"]["db_unavailable"] >= 90
    assert doc["levels"]["60s"]["error"] >= 90
    # The spike itself makes the embedded Hotplate5xxSpike alert fire, and a
    # critical alert is an error line too: it may already sit in front of the
    # requests in the ring, as an event.
    last = doc["last_errors"]
    assert len(last) == 20
    events = [e for e in last if e["kind"] == "event"]
    assert all(e["msg"].startswith("alert ") for e in events), events
    reqs = [e for e in last if e["kind"] == "request"]
    assert [e["request_id"] for e in reqs[:5]] == sent[:-6:-1]
    assert all(e["status"] == 503 and e["error"] == "db_unavailable" for e in reqs)
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["trace_id"]) for e in reqs)
    metrics = sess.get(s.admin_base + "/metrics", timeout=5).text
    assert re.search(r'^hotplate_log_error_codes_total\{code="db_unavailable"\} (\d+)$', metrics, re.M)
    assert "hotplate_log_error_spike 1" in metrics


def test_rotating_log_file(start_server, tmp_path):
    path = tmp_path / "hp.log"
    s = start_server(threads=2, name="rotate",
                     env={"HOTPLATE_LOG_FILE": str(path), "HOTPLATE_LOG_FILE_MAX_MB": "1", "HOTPLATE_LOG_FILE_KEEP": "2"})
    sess = requests.Session()
    # About 300 bytes a line: at least two rotations of 1 MiB take some 8000 requests, which wrk sends in a second or
    # two where a Python loop took a minute on a busy machine. One connection, so one thread writes the lines, one
    # request after another, and the file's order is stdout's.
    info = None
    for _ in range(20):
        r = subprocess.run(["wrk", "-t1", "-c1", "-d1s", s.base + "/healthz"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        info = sess.get(s.admin_base + "/debug/logs", timeout=5).json()["file"]
        if info["rotations"] >= 2:
            break
    last = sess.get(s.base + "/healthz", timeout=5).headers["x-request-id"]
    request_line(s, last)  # written at the end of its loop turn
    # The writer thread writes each chunk to stdout first and then to the file, so the line can be on stdout a moment
    # before it is in the file (base/log.c, hp__log_write_out): wait for the file too, within a bound.
    deadline = time.monotonic() + 5
    while last not in path.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.02)
    info = sess.get(s.admin_base + "/debug/logs", timeout=5).json()["file"]
    assert info["path"] == str(path) and info["rotations"] >= 2
    files = sorted(os.listdir(tmp_path))
    assert "hp.log" in files and "hp.log.1" in files and "hp.log.2" in files
    assert "hp.log.3" not in files, files
    assert os.path.getsize(str(path) + ".1") >= 1 << 20
    # The file holds exactly stdout's lines, in order, from where the oldest kept file starts.
    file_lines = []
    for name in ("hp.log.2", "hp.log.1", "hp.log"):
        with open(tmp_path / name, encoding="utf-8") as f:
            file_lines += f.read().splitlines()
    for l in file_lines:
        json.loads(l)
    out = s.stdout_lines()
    start = out.index(file_lines[0])
    assert out[start:start + len(file_lines)] == file_lines
    assert any('"request_id":"%s"' % last in l for l in file_lines[-50:])
