"""The profiling dashboard (GET /debug/ on the admin listener) in a real browser.

Starts a dedicated server with an admin token and runs the browser test in
tests/browser (Debian's /usr/bin/chromium driven by playwright-core from Node):
it sends traffic, checks that what the page renders agrees with /debug/perf,
and switches the menu_cache flag from the page. The test saves a full-page
screenshot under reports/ (git-ignored; HOTPLATE_REPORTS_DIR moves it), also
when it fails.

Skipped only when the browser or the test's node_modules are missing; `make
test` installs both (deploy/deps.sh and deploy/test.sh), so in CI it runs.
"""

import os
import re
import secrets
import shutil
import subprocess

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
SCRIPT = os.path.join(BROWSER_DIR, "dashboard.test.mjs")
CHROMIUM = "/usr/bin/chromium"
# The script bounds itself at 90 s; this is the backstop should Node itself hang.
RUN_TIMEOUT = 150


def _missing():
    if not os.access(CHROMIUM, os.X_OK):
        return "%s is missing (deploy/deps.sh installs Debian's chromium)" % CHROMIUM
    if shutil.which("node") is None:
        return "node is missing (deploy/deps.sh installs nodejs)"
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        return "tests/browser/node_modules is missing (deploy/test.sh runs npm ci there)"
    return None


def test_dashboard_page_headers(start_server):
    """The page itself, without a browser: one HTML content type and the lock-down headers."""
    s = start_server(threads=1, name="dashboard-headers")
    for path in ("/debug/", "/debug"):
        r = requests.get(s.admin_base + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers.get("Content-Type") == "text/html; charset=utf-8", r.headers
        assert "default-src 'none'" in r.headers.get("Content-Security-Policy", ""), r.headers
        assert "<title>hotplate" in r.text and "/debug/perf" in r.text
        # Self-contained: no script, style, image or link is fetched from another origin.
        assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""", r.text)
    # The API listener does not serve it.
    assert requests.get(s.base + "/debug/", timeout=10).status_code == 404


def test_dashboard_in_browser(start_server, record_property):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    token = secrets.token_hex(16)
    s = start_server(threads=2, env={"HOTPLATE_ADMIN_TOKEN": token}, name="dashboard")
    reports = os.environ.get("HOTPLATE_REPORTS_DIR") or os.path.join(ROOT, "reports")
    screenshot = os.path.join(reports, "dashboard.png")
    env = dict(os.environ)
    env.update(
        {
            "HOTPLATE_ADMIN_URL": s.admin_base,
            "HOTPLATE_API_URL": s.base,
            "HOTPLATE_ADMIN_TOKEN": token,
            "HOTPLATE_SCREENSHOT": screenshot,
        }
    )
    p = subprocess.run(
        ["node", SCRIPT],
        cwd=BROWSER_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=RUN_TIMEOUT,
    )
    out = p.stdout.decode("utf-8", "replace")
    record_property("screenshot", screenshot)
    print(out)
    print("dashboard screenshot: %s" % screenshot)
    assert p.returncode == 0, "browser test exited %d (screenshot: %s)\n%s" % (p.returncode, screenshot, out)
    assert os.path.isfile(screenshot), "no screenshot at %s\n%s" % (screenshot, out)
