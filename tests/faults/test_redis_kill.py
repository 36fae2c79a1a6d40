"""Redis SIGKILLed under a menu load, then started again.

The menu route must fall back to PostgreSQL with no 5xx at all while Redis is
gone (the cache is an optimisation, never a dependency), the server must stay
up, and once Redis is back the server reconnects (common/runtime/redis.c) and serves
menus from the cache again.
"""

import time

from conftest import cache_menus, menu_load, menu_paths
from hplib.client import Client, assert_status, describe
from load import wait_until

WORKERS = 4
OUTAGE_S = 3.0
RECOVERY_BOUND_S = 5.0


def test_redis_kill_mid_load(stack, start_server, cast, record):
    s = start_server("redis-kill", threads=2)
    c = Client(s.base)
    paths = menu_paths(cast)
    cache_menus(c, paths)
    load = menu_load(s.base, paths, WORKERS, 60)
    time.sleep(1.0)
    stack.run("redis-kill")
    t_kill = time.monotonic()
    try:
        time.sleep(OUTAGE_S)
        assert s.alive(), "the server died with Redis"
        r = c.get(paths[0])
        assert_status(r, 200)
        assert r.headers.get("X-Cache") != "hit", "a menu came from a Redis that is dead\n" + describe(r)
    finally:
        t_back0 = time.monotonic()
        stack.run("redis-start")
        t_back1 = time.monotonic()

    back = wait_until(lambda: c.get(paths[0]).headers.get("X-Cache") == "hit", 30, interval=0.05)
    recovered_after = time.monotonic() - t_back1
    assert back, "menus did not come from Redis again within 30 s"
    assert recovered_after <= RECOVERY_BOUND_S, "the cache came back %.1f s after Redis" % recovered_after
    assert wait_until(lambda: c.get("/readyz").status_code == 200, RECOVERY_BOUND_S)
    time.sleep(0.5)
    load.stop()
    outcomes = load.join()

    assert s.alive()
    dropped = [o for o in outcomes if o.status is None]
    assert not dropped, "menu requests without an answer: %s" % [o.error for o in dropped[:3]]
    not_ok = [(o.status, o.code) for o in outcomes if o.status != 200]
    assert not not_ok, "the menu route must answer 200 throughout: %s" % not_ok[:5]
    during = [o for o in outcomes if o.t0 >= t_kill and o.t1 <= t_back0]
    assert during, "no menu request during the outage"
    from_pg = [o for o in during if o.headers.get("X-Cache") != "hit"]
    assert from_pg, "no menu came from PostgreSQL during the outage"

    record(
        fault="Redis SIGKILLed for %.0f s under load, then started" % (t_back0 - t_kill),
        load="%d clients: menu route" % WORKERS,
        requests=len(outcomes),
        during_outage=len(during),
        menu_5xx=0,
        recovered_s=round(recovered_after, 2),
        lost=0,
        duplicates=0,
    )
