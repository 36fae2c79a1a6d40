"""A smoke run against the ASan+UBSan build (HOTPLATE_ASAN_BIN): the main
routes and a few hostile bodies, then SIGTERM. The process must exit 0 and
its stderr must hold no sanitizer report."""

import os

import pytest

from hplib.client import Client, assert_error, assert_status, new_key

SANITIZER_MARKS = ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer"]


@pytest.fixture
def asan_server(env, start_server):
    if not env["asan_bin"]:
        pytest.skip("HOTPLATE_ASAN_BIN is not set")
    if not os.access(env["asan_bin"], os.X_OK):
        pytest.fail("HOTPLATE_ASAN_BIN=%s is not executable" % env["asan_bin"])
    extra = {}
    if "ASAN_OPTIONS" not in os.environ:
        extra["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lsan.supp")
    if "LSAN_OPTIONS" not in os.environ and os.path.exists(supp):
        # libh2o's per-thread state lives until exit by design (tests/lsan.supp).
        extra["LSAN_OPTIONS"] = "suppressions=" + os.path.abspath(supp)
    if "UBSAN_OPTIONS" not in os.environ:
        extra["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return start_server(threads=2, name="asan", binary=env["asan_bin"], env=extra, ready_timeout=60)


def test_asan_smoke(asan_server, db, world):
    s = asan_server
    c = Client(s.base)
    cust = c.as_(world.a["token"])
    assert assert_status(c.get("/healthz"), 200) == {"status": "ok"}
    assert_status(c.get("/readyz"), 200)
    assert_status(c.get("/restaurants?limit=3"), 200)
    assert_status(c.get("/restaurants/%d" % world.rid), 200)
    for _ in range(2):
        assert_status(c.get("/restaurants/%d/menu" % world.rid), 200)
    cart = {
        "restaurant_id": world.rid,
        "items": [
            {"item_id": world.item_mod, "quantity": 2, "modifier_ids": world.mods[world.item_mod][:1]},
            {"item_id": world.item_plain, "quantity": 1},
        ],
        "tip_cents": 100,
    }
    assert_status(cust.post("/cart/quote", cart), 200)
    key = new_key()
    o = assert_status(cust.order(cart, key=key), 201)
    assert assert_status(cust.order(cart, key=key), 201)["id"] == o["id"]
    assert_status(cust.get("/orders/%d" % o["id"]), 200)
    assert_status(cust.get("/users/%d/orders?limit=2" % world.a["id"]), 200)
    assert_status(c.post("/orders/%d/events" % o["id"], {"status": "accepted"}, token=world.owner), 200)
    assert_error(cust.post("/cart/quote", b'{"restaurant_id": 1,'), 400, "bad_json")
    assert_error(cust.order(b'{"restaurant_id\xff": 1}'), 400, "bad_json")
    assert_error(cust.post("/cart/quote", b"[" * 30000), 400, {"too_deep", "bad_json"})
    assert_error(cust.post("/cart/quote", {"restaurant_id": world.rid, "items": []}), 422, "empty_cart")
    assert_error(cust.post("/cart/quote", b"{" + b" " * 70000 + b"}"), 413, "body_too_large")
    assert_error(c.get("/restaurants?cursor=garbage"), 400, "bad_cursor")
    assert_error(c.get("/no/such/route"), 404, "not_found")
    assert_error(c.request("DELETE", "/healthz"), 405, "method_not_allowed")
    assert_error(c.patch("/restaurants/%d/menu/items/%d" % (world.rid, world.item_spare), {"bogus": 1}, token=world.owner), 400)

    rc = s.stop(timeout=60)
    err = s.stderr_text()
    found = [m for m in SANITIZER_MARKS if m in err]
    assert not found, "sanitizer reports in stderr: %s\n%s" % (found, s.log_report(80))
    assert rc == 0, "ASan server exit code on SIGTERM: %r\n%s" % (rc, s.log_report(80))
