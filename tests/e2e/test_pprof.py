"""The profiling endpoints on the admin listener (profiling/prof.c).

GET /debug/pprof/profile takes a CPU profile of the running server with
gperftools (raw pprof, folded stacks or a flame graph SVG); POST
/debug/heap/profile takes a jemalloc heap profile (raw or folded). Under load
from a background generator, the profiles must name hotplate's own functions
and their raw files be readable by google-pprof and jeprof. One profile of each kind at a
time (409), bounded parameters (400), the admin token (401), never on the API
port, and a client that hangs up frees the profiler at once.

The profiled server is shared by this module and writes its temp files into a
directory of its own, so the tests can check that every profile cleans up.
Profiles are 1 to 3 seconds; every HTTP call and subprocess has a timeout.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from hplib.client import assert_error, describe
from hplib.server import SUITE_FLAGS, Server

# What a profile may take beyond its `seconds`: the server's pprof-encode child
# reads the binaries' symbols and DWARF, under a second here, slower on a
# loaded machine.
CONVERT_SLACK = 30
TOOL_TIMEOUT = 60
# Request-path frames that prove hotplate's own code was sampled by name
# (a trailing "_" matches a prefix): the request's entry and handlers, and the
# callbacks that carry the load's two routes on when PostgreSQL or Redis
# answers (the quote's hp__quote_authed, hp__cart_on_result, hp__parse_cart;
# the menu's hp__menu_on_cache), since a short profile can catch the quote only
# in those. The thread entry hp__thread_main is on every stack, busy or idle,
# so it proves nothing and is not counted.
HP_FRAMES = ("hp__on_req", "hp_total_compute", "hp_handle_", "hp__quote_", "hp__cart_", "hp__parse_cart", "hp__menu_")


@pytest.fixture(scope="module")
def prof_server(env, server_env, tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("pprof-tmp")
    e = dict(server_env)
    e["TMPDIR"] = str(tmpdir)
    # Four times gperftools' default rate: a 3 s profile of a server that make test's other lanes leave a fraction of
    # a core still holds enough samples in hotplate's own code, not only in the system calls around it (whose stacks
    # break in libc, which has no frame pointers).
    e["CPUPROFILE_FREQUENCY"] = "400"
    s = Server(env["bin"], tmp_path_factory.mktemp("pprof"), name="pprof", threads=2, flags=SUITE_FLAGS, env=e)
    s.start()
    s.tmpdir = str(tmpdir)
    yield s
    s.stop()


class Load:
    """Background traffic for the length of a `with` block: quotes (JSON
    parsing, pricing) and cached menu reads, from four threads. (With two, a
    fresh-clone run once got a 2-second profile of 2 samples, all in
    epoll_wait: Python clients on a busy machine left the server idle.)"""

    def __init__(self, server, world, cart_body):
        self.base = server.base
        self.token = world.a["token"]
        self.menu = "/restaurants/%d/menu" % world.rid
        self.cart = cart_body
        self.stop = threading.Event()
        self.statuses = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def _run(self):
        sess = requests.Session()
        hdr = {"Authorization": "Bearer " + self.token}
        n = 0
        while not self.stop.is_set():
            try:
                if n % 2 == 0:
                    r = sess.post(self.base + "/cart/quote", json=self.cart, headers=hdr, timeout=5)
                else:
                    r = sess.get(self.base + self.menu, timeout=5)
                code = r.status_code
            except requests.RequestException:
                code = "error"
            with self.lock:
                self.statuses[code] = self.statuses.get(code, 0) + 1
            n += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(0.2)  # the first requests are in flight before the profile starts
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        assert self.statuses.get(200, 0) > 0, "the load generator got no 200s: %s" % self.statuses


@pytest.fixture
def load(prof_server, world, mk_cart):
    return lambda: Load(prof_server, world, mk_cart())


def cpu_profile(s, seconds, fmt=None, **kw):
    params = {"seconds": str(seconds)}
    if fmt:
        params["format"] = fmt
    return requests.get(s.admin_base + "/debug/pprof/profile", params=params, timeout=seconds + CONVERT_SLACK, **kw)


def heap_profile(s, seconds, fmt=None, **kw):
    params = {"seconds": str(seconds)}
    if fmt:
        params["format"] = fmt
    return requests.post(s.admin_base + "/debug/heap/profile", params=params, timeout=seconds + CONVERT_SLACK, **kw)


def folded_frames(text):
    """Parses folded stacks; every line must be `frame;frame... count`."""
    frames = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        assert stack and count.isdigit() and int(count) > 0, "malformed folded line: %r" % line
        frames.update(stack.split(";"))
    return frames


def names_handlers(frames):
    return any(f == h or (h.endswith("_") and f.startswith(h)) for f in frames for h in HP_FRAMES)


def names_hotplate(frames):
    return any(f.startswith("hp_") and f != "hp__thread_main" for f in frames)


def assert_no_temp_files(s):
    # A profile's files go away once its response is built; allow the tick (100 ms) to run.
    deadline = time.monotonic() + 3
    while os.listdir(s.tmpdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(s.tmpdir) == [], "profile temp files left behind: %s" % os.listdir(s.tmpdir)


def assert_status_ok(r):
    assert r.status_code == 200, describe(r)


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip("%s is not installed (deploy/deps.sh installs it)" % name)


def test_cpu_profile_folded_names_hotplate_functions(prof_server, load):
    with load():
        r = cpu_profile(prof_server, 3, "folded")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/plain")
    frames = folded_frames(r.text)
    assert frames, "an empty CPU profile under load"
    assert names_handlers(frames), "no hotplate request frame among %d frames: %s" % (len(frames), sorted(frames)[:60])
    # The server's own symbolization (pprof-encode --folded) names a stripped library's static functions by file and
    # offset, as the proto does; Debian's libh2o is stripped and its static functions are on every request's stack.
    assert any(re.search(r"\.so[\d.]*\+0x[0-9a-f]+$", f) for f in frames), sorted(frames)[:60]
    assert_no_temp_files(prof_server)


def text_report(tool, binary, path):
    """`TOOL --text BINARY PROFILE` (google-pprof or jeprof), bounded by TOOL_TIMEOUT."""
    return subprocess.run([tool, "--text", binary, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT)


def test_cpu_profile_pprof_is_read_by_google_pprof(prof_server, load, env, tmp_path):
    need_tool("google-pprof")
    with load():
        r = cpu_profile(prof_server, 2, "gperftools")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "application/octet-stream"
    path = tmp_path / "cpu.prof"
    path.write_bytes(r.content)
    p = text_report("google-pprof", env["bin"], path)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "google-pprof --text failed (%d):\n%s\n%s" % (p.returncode, out, p.stderr.decode()[-2000:])
    assert "Total:" in out, out[:2000]
    assert "hp_" in out, "no hotplate function in google-pprof's report:\n" + out[:3000]
    assert_no_temp_files(prof_server)


def test_cpu_profile_svg_is_a_flame_graph(prof_server, load):
    with load():
        r = cpu_profile(prof_server, 2, "svg")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"] == "image/svg+xml"
    root = ET.fromstring(r.content)  # well-formed XML, or this raises
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text or "" for t in root.iter(ns + "text")]
    titles = [t.text or "" for t in root.iter(ns + "title")]
    assert any("samples)" in t for t in texts), "no heading with the sample count: %s" % texts[:5]
    assert len(list(root.iter(ns + "rect"))) > 5
    frames = {t.split(" (")[0] for t in titles}
    assert names_hotplate(frames), "no hotplate frame in the flame graph: %s" % sorted(frames)[:60]


def test_heap_profile_is_read_by_jeprof(prof_server, load, env, tmp_path):
    need_tool("jeprof")
    with load():
        r = heap_profile(prof_server, 1)
    if r.status_code == 501:
        pytest.skip("this binary has no jemalloc heap profiling: " + r.text)
    assert r.status_code == 200, describe(r)
    assert r.content.startswith(b"heap_v2/"), r.content[:200]
    path = tmp_path / "heap.prof"
    path.write_bytes(r.content)
    p = text_report("jeprof", env["bin"], path)
    assert p.returncode == 0, "jeprof --text failed (%d):\n%s\n%s" % (p.returncode, p.stdout.decode(), p.stderr.decode()[-2000:])
    # The folded form is plain text in the folded grammar (possibly empty: only live sampled objects count).
    r = heap_profile(prof_server, 1, "folded")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/plain")
    folded_frames(r.text)
    assert_no_temp_files(prof_server)


def test_one_profile_of_each_kind_at_a_time(prof_server):
    first = {}

    def run():
        first["r"] = cpu_profile(prof_server, 2)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(0.5)
    assert_error(cpu_profile(prof_server, 1), 409, "profile_in_progress")
    # A heap profile is another kind, and may run alongside (unless the binary has no jemalloc).
    h = heap_profile(prof_server, 1)
    assert h.status_code in (200, 501), describe(h)
    t.join(timeout=2 + CONVERT_SLACK)
    assert first["r"].status_code == 200, describe(first["r"])
    # Free again once the first is answered.
    assert_status_ok(cpu_profile(prof_server, 1))


def test_bad_parameters_are_400(prof_server):
    bad_seconds = ["seconds=0", "seconds=61", "seconds=-1", "seconds=1.5", "seconds=abc", "seconds=", "seconds=99999999999"]
    for q in bad_seconds + ["format=xml"]:
        r = requests.get(prof_server.admin_base + "/debug/pprof/profile?" + q, timeout=10)
        assert_error(r, 400, "bad_param")
    for q in ["seconds=0", "seconds=61", "format=png", "format=pprof", "lg_sample=5", "lg_sample=30"]:
        r = requests.post(prof_server.admin_base + "/debug/heap/profile?" + q, timeout=10)
        assert_error(r, 400, "bad_param")
    # Nothing was started by a refused request.
    assert_status_ok(cpu_profile(prof_server, 1))


def test_routes_are_not_on_the_api_port(prof_server):
    for method, path in [("GET", "/debug/pprof/profile?seconds=1"), ("POST", "/debug/heap/profile?seconds=1"),
                         ("GET", "/debug/heap/profile"), ("POST", "/debug/pprof/profile")]:
        r = requests.request(method, prof_server.base + path, timeout=10)
        assert r.status_code == 404, "%s %s answered %d on the API port" % (method, path, r.status_code)


def test_client_hanging_up_stops_the_profile(prof_server):
    """A client that leaves mid-profile frees the profiler within a tick, not after its 30 s."""
    for path, method in [("/debug/pprof/profile", "GET"), ("/debug/heap/profile", "POST")]:
        with socket.create_connection(("127.0.0.1", prof_server.admin_port), timeout=5) as sock:
            sock.sendall(("%s %s?seconds=30 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % (method, path)).encode())
            time.sleep(0.5)
        t0 = time.monotonic()
        r = None
        while time.monotonic() - t0 < 5:
            r = requests.request(method, prof_server.admin_base + path, params={"seconds": "1"}, timeout=1 + CONVERT_SLACK)
            if r.status_code != 409:
                break
            time.sleep(0.1)
        assert r.status_code in (200, 501), "%s still busy after its client left\n%s" % (path, describe(r))
    assert_no_temp_files(prof_server)


def process_gone(pid):
    """True when pid has exited (a zombie counts: it runs no more)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def children_running(pid, marker):
    """Pids of pid's child processes whose command line holds marker."""
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                with open("/proc/%d/cmdline" % k, "rb") as f:
                    if marker in f.read():
                        found.append(k)
            except OSError:
                pass
    return found


def test_converter_is_killed_when_the_client_leaves(start_server, tmp_path):
    """A conversion whose client hangs up is killed, process group and all, and the job ends. The converter
    (pprof-encode, a child of the server) is stopped with SIGSTOP as soon as it appears, so that it is still
    running when the client leaves, however fast it would have been."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    s = start_server(threads=1, name="pprof-kill", env={"TMPDIR": str(tmpdir)})
    child = None
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", s.admin_port), timeout=5) as sock:
            sock.sendall(b"GET /debug/pprof/profile?seconds=1&format=folded HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 10
            while child is None and time.monotonic() < deadline:
                kids = children_running(s.proc.pid, b"pprof-encode")
                if kids:
                    child = kids[0]
                    os.kill(child, signal.SIGSTOP)
                    break
                time.sleep(0.002)
            if child is not None:
                break
            sock.recv(65536)  # it finished before it was seen: take the answer and try again
    assert child is not None, "no pprof-encode child was seen in five profiles"
    assert not process_gone(child)
    deadline = time.monotonic() + 3
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_gone(child), "the converter outlived its client"
    # The job is over: the next profile is not refused as in progress, and no temp file is left.
    deadline = time.monotonic() + 3
    while True:
        r = cpu_profile(s, 1, "folded")
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_status_ok(r)
    assert os.listdir(tmpdir) == [], os.listdir(tmpdir)


def test_admin_token_guards_profiles(start_server):
    token = "pprof-e2e-token"
    s = start_server(threads=1, name="pproftoken", env={"HOTPLATE_ADMIN_TOKEN": token})
    assert_error(heap_profile(s, 1), 401, "unauthorized")
    assert_error(heap_profile(s, 1, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert_error(cpu_profile(s, 1), 401, "unauthorized")
    hdr = {"Authorization": "Bearer " + token}
    r = heap_profile(s, 1, headers=hdr)
    assert r.status_code in (200, 501), describe(r)
    assert_status_ok(cpu_profile(s, 1, headers=hdr))


def test_asan_build_profiles(env, start_server):
    """The sanitizer build keeps ASan's allocator: the heap profile is 501, the CPU profile works."""
    if not env["asan_bin"]:
        pytest.skip("HOTPLATE_ASAN_BIN is not set")
    extra = {}
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lsan.supp")
    if "LSAN_OPTIONS" not in os.environ and os.path.exists(supp):
        extra["LSAN_OPTIONS"] = "suppressions=" + os.path.abspath(supp)
    s = start_server(threads=1, name="pprof-asan", binary=env["asan_bin"], env=extra, ready_timeout=60)
    assert_error(heap_profile(s, 1), 501, "not_supported")
    r = cpu_profile(s, 1, "folded")
    assert r.status_code in (200, 501), describe(r)
    if r.status_code == 200:
        folded_frames(r.text)
    assert s.stop() == 0, s.log_report()
    err = s.stderr_text()
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in err, s.log_report(60)
