"""loadtests/openloop against a server that closes idle keep-alive connections
(--header-timeout-ms 1000): with --idle-ms under that, the generator reopens an
idle connection before the server closes it, so a request never races the
server's close; with --idle-ms over it, the server's closes reach idle
connections, which is the race's premise. Mechanisms, never a figure."""

import json
import os
import subprocess

import pytest

from hplib.server import Server

BIN = os.environ.get("HOTPLATE_BIN")
pytestmark = pytest.mark.skipif(not BIN or not os.environ.get("HOTPLATE_PG_URL"),
                                reason="needs the make test environment (HOTPLATE_BIN, HOTPLATE_PG_URL, ...)")

# Bursts with a lull between them longer than the server's idle timeout: the lull leaves connections idle.
SCHEDULE = "200:0.3,1:2,200:0.3"


def run_openloop(port, requests, idle_ms):
    binary = os.path.join(os.path.dirname(os.path.realpath(BIN)), "openloop")
    p = subprocess.run([binary, "--port", str(port), "--requests", str(requests), "--schedule", SCHEDULE, "--connections", "8",
                        "--idle-ms", str(idle_ms)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.fixture
def server(tmp_path):
    s = Server(BIN, tmp_path, threads=1, args=["--header-timeout-ms", "1000"])
    s.start()
    yield s
    s.stop()


def test_idle_connections_are_reopened_before_the_server_closes_them(server, tmp_path):
    req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    requests = tmp_path / "healthz.req"
    requests.write_bytes(b"%d\n" % len(req) + req)

    under = run_openloop(server.port, requests, 200)
    assert under["idle_ms"] == 200 and under["idle_reopened"] > 0, under
    assert under["errors"] == 0 and under["socket_errors"] == 0 and under["connect_errors"] == 0, under
    assert under["status"]["2xx"] == under["sent"], under

    assert under["idle_closed"] == 0, under

    # Over the server's timeout, nothing is reopened and the server's closes arrive on idle connections. They are counted
    # as idle_closed: no request was on them, so they are neither the requests' errors nor failed connections.
    over = run_openloop(server.port, requests, 60000)
    assert over["idle_reopened"] == 0, over
    assert over["idle_closed"] > 0, over
    # (A request sent as the server's close is under way may still fail as a socket error: that race is the premise.)
    assert over["connect_errors"] == 0, over
