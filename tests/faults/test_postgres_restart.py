"""PostgreSQL stopped and started again under load.

The server must stay up; while PostgreSQL is down, routes that need it answer
503 (a JSON error, at once, not a hang), the menu route keeps serving what
Redis has cached, and /healthz stays 200. When PostgreSQL is back, the
server's reconnect loop (common/runtime/db.c, one attempt a second per connection)
reconnects and prepares every statement again within 5 seconds, and checkout
works again.
"""

import time

from conftest import cache_menus, cart
from hplib.client import Client, assert_status, describe
from load import Load, wait_until

WORKERS = 4
# The bound on reconnecting and re-preparing after PostgreSQL returns.
RECOVERY_BOUND_S = 5.0
OUTAGE_S = 3.0


def test_postgres_restart_mid_load(stack, start_server, cast, record):
    s = start_server("pg-restart", threads=2, flags=["payment_latency_ms=0"])
    token = cast.customers[0]["token"]
    menu = "/restaurants/%d/menu" % cast.rid
    c = Client(s.base, token)
    cache_menus(c, [menu])

    routes = [
        ("restaurant", "GET", "/restaurants/%d" % cast.rid, {}),
        ("menu", "GET", menu, {}),
        ("quote", "POST", "/cart/quote", {"json": cart(cast)}),
    ]

    def make(idx, n):
        name, method, path, kw = routes[(idx + n) % len(routes)]
        kw = dict(kw, headers={"Authorization": "Bearer " + token})
        return name, method, s.base + path, kw

    load = Load(make, WORKERS, max_seconds=60).start()
    time.sleep(1.0)
    t_stop0 = time.monotonic()
    stack.run("pg-stop")
    t_stop1 = time.monotonic()
    try:
        saw_503 = wait_until(lambda: c.get("/restaurants/%d" % cast.rid).status_code == 503, 10)
        assert saw_503, "no 503 from a database route with PostgreSQL down"
        time.sleep(OUTAGE_S)
        assert s.alive(), "the server died while PostgreSQL was down"
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json().get("postgres") == "down", describe(r)
    finally:
        t_back0 = time.monotonic()
        stack.run("pg-start")
        t_back1 = time.monotonic()
    stack.read_env()
    assert stack.pg_url == s.env_overrides["HOTPLATE_PG_URL"], "PostgreSQL came back on another port"

    back = wait_until(lambda: c.get("/restaurants/%d" % cast.rid).status_code == 200, 30, interval=0.02)
    recovered_after = time.monotonic() - t_back1
    assert back, "database routes did not recover within 30 s"
    assert recovered_after <= RECOVERY_BOUND_S, "database routes recovered %.1f s after PostgreSQL" % recovered_after
    assert wait_until(lambda: c.get("/readyz").status_code == 200, RECOVERY_BOUND_S), "/readyz did not recover"
    time.sleep(1.0)
    load.stop()
    outcomes = load.join()

    # Statements are prepared again: every route that uses them answers, checkout included.
    assert_status(c.post("/cart/quote", cart(cast)), 200)
    assert_status(c.order(cart(cast)), 201)

    assert s.alive()
    dropped = [o for o in outcomes if o.status is None]
    assert not dropped, "requests without an answer (the server must stay up): %s" % [o.error for o in dropped[:3]]
    during = [o for o in outcomes if o.t0 >= t_stop1 and o.t1 <= t_back0]
    db_during = [o for o in during if o.tag != "menu"]
    assert db_during, "no database request was sent during the outage"
    bad = [(o.tag, o.status, o.code) for o in db_during if o.status != 503]
    assert not bad, "database routes during the outage must answer 503: %s" % bad[:5]
    for o in db_during:
        assert o.code, "a 503 without an error code"
    menu_all = [o for o in outcomes if o.tag == "menu"]
    menu_bad = [(o.status, o.code) for o in menu_all if o.status != 200]
    assert not menu_bad, "the cached menu was not served throughout: %s" % menu_bad[:5]
    menu_during = [o for o in during if o.tag == "menu"]
    assert menu_during and all(o.headers.get("X-Cache") == "hit" for o in menu_during), sorted(set(o.headers.get("X-Cache") for o in menu_during))
    other_5xx = [(o.tag, o.status, o.code) for o in outcomes if o.status >= 500 and not (t_stop0 <= o.t1 and o.t0 <= t_back1 + RECOVERY_BOUND_S)]
    assert not other_5xx, "5xx outside the outage: %s" % other_5xx[:5]

    record(
        fault="PostgreSQL stopped for %.0f s under load, then started" % (t_back0 - t_stop1),
        load="%d clients: restaurant, menu and quote routes" % WORKERS,
        requests=len(outcomes),
        during_outage=len(during),
        db_503=len(db_during),
        menu_served_from_cache=len(menu_during),
        pg_start_s=round(t_back1 - t_back0, 2),
        recovered_s=round(recovered_after, 2),
        lost=0,
        duplicates=0,
    )
