"""deploy/nginx/nginx.conf for real: Debian's nginx in front of two hotplate
processes on loopback.

The test runs the same two files that compose mounts, with only the upstream
addresses, the listen address and the pid and log paths rewritten. It checks
that both replicas receive traffic (by their own /metrics counters and by the
X-Upstream header), and that when one replica is killed, nginx routes to the
other: GETs in flight are retried there and succeed, a checkout in flight on
the dead replica fails with 502 (nginx never resends a POST), and every
request after the kill succeeds on the survivor.
"""

import re
import shutil
import threading
import time

import pytest
import requests

import daemons
from hplib.client import describe, new_key



def test_nginx_balances_and_fails_over(start_server, tmp_path, shop):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (deploy/deps.sh installs nginx-light)")
    # The simulator jitters each payment between 0.5 and 3 times its mean; a 10 s deadline keeps the slowest under it.
    env = {"HOTPLATE_PAYMENT_TIMEOUT_MS": "10000"}
    a = start_server(threads=1, name="replica-a", env=env)
    b = start_server(threads=1, name="replica-b", env=env)
    ng, lb = daemons.start_nginx(tmp_path, a, b)
    try:

        # Both replicas receive traffic.
        route = "/restaurants/{id}"
        before = {s.name: daemons.route_count(s, "GET", route) for s in (a, b)}
        seen = set()
        s = requests.Session()
        for _ in range(60):
            r = s.get("%s/restaurants/%d" % (lb, shop["rid"]), timeout=5)
            assert r.status_code == 200, describe(r)
            seen.add(r.headers["X-Upstream"])
        assert seen == {"127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port}
        after = {x.name: daemons.route_count(x, "GET", route) for x in (a, b)}
        gained = {k: after[k] - before[k] for k in after}
        assert all(g > 0 for g in gained.values()) and sum(gained.values()) == 60, gained

        # A checkout in flight on each replica: the payment simulator holds each
        # for 0.75 to 4.5 s, so both are still running when replica a dies.
        for x in (a, b):
            r = requests.post(x.admin_base + "/debug/flags", json={"payment_latency_ms": "1500"}, timeout=5)
            assert r.status_code == 200, r.text
        results = {}

        def checkout(i):
            hdr = {"Authorization": "Bearer " + shop["token"], "Idempotency-Key": new_key()}
            body = {"restaurant_id": shop["rid"], "items": [{"item_id": shop["item"], "quantity": 1}]}
            try:
                r = requests.post(lb + "/orders", json=body, headers=hdr, timeout=20)
                results[i] = (r.status_code, r.headers.get("X-Upstream"), r.text[:200])
            except requests.RequestException as e:
                results[i] = (None, None, str(e))

        threads = [threading.Thread(target=checkout, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        # Wait until each replica has one checkout in flight, then kill a.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            inflight = [int(m) for x in (a, b) for m in re.findall(
                r'^hotplate_http_requests_in_flight\{method="POST",route="/orders"\} (\d+)$',
                requests.get(x.admin_base + "/metrics", timeout=5).text, re.M)]
            if inflight == [1, 1]:
                break
            time.sleep(0.05)
        assert inflight == [1, 1], "checkouts were not spread one per replica: %r" % inflight
        a.kill()
        for th in threads:
            th.join(20)
        codes = sorted((c if c is not None else 0) for c, _, _ in results.values())
        assert codes == [201, 502], results
        ok = [u for c, u, _ in results.values() if c == 201]
        assert ok == ["127.0.0.1:%d" % b.port], results

        # After the kill every request succeeds, on b.
        requests.post(b.admin_base + "/debug/flags", json={"payment_latency_ms": "40"}, timeout=5)
        for i in range(20):
            r = s.get("%s/restaurants/%d" % (lb, shop["rid"]), timeout=5)
            assert r.status_code == 200, describe(r)
            # "a, b" when nginx tried the dead replica first and moved on.
            assert r.headers["X-Upstream"].endswith("127.0.0.1:%d" % b.port), r.headers["X-Upstream"]
        hdr = {"Authorization": "Bearer " + shop["token"], "Idempotency-Key": new_key()}
        r = s.post(lb + "/orders", json={"restaurant_id": shop["rid"], "items": [{"item_id": shop["item"], "quantity": 1}]},
                   headers=hdr, timeout=15)
        assert r.status_code == 201, describe(r)
        assert r.headers["X-Upstream"] == "127.0.0.1:%d" % b.port
    finally:
        ng.stop()
