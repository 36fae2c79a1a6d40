"""Helpers of the monitoring suite: third-party daemons on loopback, a webhook
receiver, and the rewrite that turns the real rule and routing files into
their fast test copies.

Every daemon (Prometheus, Alertmanager, nginx) runs from Debian's package
with a private directory, listens on 127.0.0.1 only, and logs to a file in
its directory. A Daemon is an hplib.process.Process, so the shared hooks show
its log when a test fails and kill it on every exit path. Every wait is
bounded.
"""

import http.server
import json
import os
import re
import threading
import time

import requests

from hplib.process import Process, free_port

NGINX = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy", "nginx")


class Daemon(Process):
    """A third-party daemon, its output in workdir/<name>.log. It runs in a
    session of its own, so that stopping it never signals the test run."""

    section = "daemon log"

    def __init__(self, name, argv, workdir, env=None):
        super().__init__(name, argv, workdir, env=env, new_session=True, stop_timeout=10.0)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST: (path, parsed JSON body)."""

    def __init__(self, fail_first=0):
        received = self.received = []
        cond = self.cond = threading.Condition()
        failures = [fail_first]  # answer this many POSTs with 500 first

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsable": body.decode("utf-8", "replace")}
                with cond:
                    received.append((self.path, doc, dict(self.headers)))
                    cond.notify_all()
                    fail = failures[0] > 0
                    failures[0] -= fail
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_for(self, pred, timeout):
        """Waits until pred(path, doc) holds for some received POST; returns it, or None at the timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.received:
                    if pred(item[0], item[1]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- fast copies of the real configuration ------------------------------------------------------

_DUR = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(d):
    m = _DUR.match(str(d))
    if not m:
        raise ValueError("not a simple duration: %r" % d)
    return int(m.group(1)) * _UNITS[m.group(2)]


def scaled(d, factor, floor):
    """A duration string divided by factor, at least floor seconds, in whole seconds."""
    return "%ds" % max(floor, round(seconds(d) / factor))


def fast_rules(doc, for_factor=60, for_floor=2, range_factor=12, range_floor=5):
    """Returns the rule groups with every `for:` and every range or offset in
    the expressions scaled down, so that a rule written for minutes fires in
    seconds. Expressions, thresholds, labels and annotations are untouched:
    the test exercises the real rules, only faster."""
    def expr_sub(m):
        return m.group(1) + scaled(m.group(2), range_factor, range_floor) + m.group(3)

    for g in doc["groups"]:
        g["interval"] = "1s"
        for r in g["rules"]:
            if "for" in r:
                r["for"] = scaled(r["for"], for_factor, for_floor) if seconds(r["for"]) > 0 else "0s"
            e = re.sub(r"(\[)(\d+[smh])(\])", expr_sub, r["expr"])
            e = re.sub(r"(offset )(\d+[smh])()", expr_sub, e)
            r["expr"] = e
    return doc


# ---------------------------------------------------------------- nginx in front of two servers


def nginx_copy(tmp, port, upstreams):
    """Writes the test copy of the two files into tmp and returns the main file's path."""
    with open(os.path.join(NGINX, "nginx.conf"), encoding="utf-8") as f:
        main = f.read()
    with open(os.path.join(NGINX, "hotplate-upstream.conf"), encoding="utf-8") as f:
        up = f.read()
    main2 = main.replace("pid /run/nginx.pid;", "pid %s/nginx.pid;" % tmp)
    main2 = main2.replace("listen 80 ", "listen 127.0.0.1:%d " % port)
    main2 = main2.replace("access_log /dev/stdout", "access_log %s/access.log" % tmp)
    main2 = main2.replace("error_log /dev/stderr", "error_log %s/error.log" % tmp)
    assert main2.count(str(tmp)) == 3 and "127.0.0.1:%d" % port in main2, "nginx.conf changed shape; update nginx_copy"
    for name, addr in upstreams.items():
        assert name in up, name
        up = up.replace(name, addr)
    (tmp / "nginx.conf").write_text(main2)
    (tmp / "hotplate-upstream.conf").write_text(up)
    return str(tmp / "nginx.conf")


def route_count(server, method, route):
    text = requests.get(server.admin_base + "/metrics", timeout=5).text
    total = 0
    pat = re.compile(r'^hotplate_http_requests_total\{method="%s",route="%s",code="[0-9]xx"\} (\d+)$' % (method, re.escape(route)), re.M)
    for m in pat.finditer(text):
        total += int(m.group(1))
    return total


def start_nginx(tmp_path, a, b):
    """deploy/nginx's two files, rewritten by nginx_copy, in front of servers a and b: checked with
    `nginx -t`, then started and answering /healthz. Returns (the Daemon, the balancer's base URL)."""
    port = free_port()
    ndir = tmp_path / "nginx"
    ndir.mkdir()
    conf = nginx_copy(ndir, port, {"hotplate-1:8080": "127.0.0.1:%d" % a.port, "hotplate-2:8080": "127.0.0.1:%d" % b.port})
    t = Daemon("nginx-test", ["nginx", "-t", "-p", str(ndir), "-c", conf, "-e", str(ndir / "error.log")], ndir).start()
    assert t.proc.wait(15) == 0, t.log_tail()
    ng = Daemon("nginx", ["nginx", "-p", str(ndir), "-c", conf, "-e", str(ndir / "error.log"), "-g", "daemon off;"], ndir).start()
    lb = "http://127.0.0.1:%d" % port
    try:
        ng.wait_http(lb + "/healthz")
    except Exception:
        ng.stop()
        raise
    return ng, lb
