"""The scenarios of make bench and make lab, one entry each, and the metrics
every run records.

A scenario is a runtime flag (common/base/flags.h, set with POST /debug/flags) with
a "before" value (the bottleneck) and an "after" value (the optimized
default), the load that exposes the difference, the metrics that show it
(`main`: the ones the summary table prints; every run records all of
METRICS), and the profiles that show the cause. Adding a scenario is adding
one entry to SCENARIOS.
"""

from dataclasses import dataclass, field
from typing import Callable

import bench_workload as wl


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    fmt: str = "{:,.1f}"


METRICS = {m.key: m for m in [
    Metric("rps", "throughput (closed loop)", "req/s", True, "{:,.0f}"),
    Metric("p50_ms", "p50 latency (open loop)", "ms", False, "{:,.3f}"),
    Metric("p90_ms", "p90 latency (open loop)", "ms", False, "{:,.3f}"),
    Metric("p99_ms", "p99 latency (open loop)", "ms", False, "{:,.3f}"),
    Metric("p999_ms", "p99.9 latency (open loop)", "ms", False, "{:,.3f}"),
    Metric("max_ms", "max latency (open loop)", "ms", False, "{:,.3f}"),
    Metric("error_rate", "error rate (non-2xx, socket errors, timeouts)", "%", False, "{:,.2f}"),
    Metric("cpu_us_per_req", "server CPU time per request", "µs", False, "{:,.1f}"),
    Metric("db_ms_per_req", "PostgreSQL execution time per request", "ms", False, "{:,.3f}"),
    Metric("pg_calls_per_req", "PostgreSQL statements per request", "calls", False, "{:,.2f}"),
    Metric("cache_hit_ratio", "cache hit ratio (hits / lookups; 0 without lookups)", "%", True, "{:,.1f}"),
    Metric("heap_bytes_per_req", "heap growth per request (jemalloc allocated)", "B", False, "{:,.1f}"),
    Metric("pool_wait_us", "mean wait for a transaction connection", "µs", False, "{:,.1f}"),
]}


@dataclass(frozen=True)
class Scenario:
    flag: str
    before: str
    after: str
    title: str
    load: str
    workload: Callable  # (data, n, seed) -> [request bytes]
    main: tuple
    profiles: tuple  # "cpu", "heap", "explain:<statement>"
    connections: int = 32
    flags: dict = field(default_factory=dict)  # other flags for both variants
    prepare: Callable = None  # (data) -> None, before the scenario's runs
    watch: tuple = ()  # functions whose share of the profiles the report gives: the cause and its fix
    notes: str = ""
    # What the fix takes away. cpu_fix: the fix deletes CPU work, so the function whose samples shrank most in
    # the before/after CPU diff is the one it removed (the labs name it from the diff, never from here); the
    # other fixes remove waits or round trips, and `fix` says which, for the labs to say what the diff can show.
    cpu_fix: bool = False
    fix: str = ""


def _checkout_hot(data, n, seed):
    # A few popular restaurants, their stock-tracked items: concurrent checkouts contend on the same stock rows.
    items = data.tracked_items(3)
    return wl.orders(data, n, seed, items, max_lines=3)


def _checkout_prepare(data):
    data.restock(list(data.tracked_items(3)))


def _orders_many(data, n, seed):
    return wl.orders(data, n, seed, data.open_items, max_lines=3)


SCENARIOS = [
    Scenario("menu_cache", "off", "redis", "Menu cache (Redis cache-aside)",
             "GET /restaurants/{id}/menu, restaurants by Zipf popularity (s = 1.1)",
             lambda d, n, s: wl.menu_zipf(d, n, s),
             ("rps", "p99_ms", "pg_calls_per_req", "cache_hit_ratio"), ("cpu",), connections=32,
             fix="a PostgreSQL query per request (the menu comes from Redis)"),
    Scenario("orders_user_id_index", "off", "on", "Index on orders(user_id, created_at)",
             "GET /users/{id}/orders for customers with heavy-tailed history lengths",
             lambda d, n, s: wl.history(d, n, s),
             ("rps", "p99_ms", "db_ms_per_req"), ("explain:order_history", "cpu"), connections=16,
             notes="the flag creates or drops the index CONCURRENTLY; the harness waits for it before measuring",
             fix="a sequential scan inside PostgreSQL"),
    Scenario("order_history", "n_plus_one", "batched", "Order history: N+1 queries against batched",
             "GET /users/{id}/orders for customers with heavy-tailed history lengths",
             lambda d, n, s: wl.history(d, n, s),
             ("rps", "p99_ms", "pg_calls_per_req"), ("cpu",), connections=16,
             fix="round trips to PostgreSQL (the N+1 queries become batched ones)"),
    Scenario("order_total", "naive", "once", "Order total computed once against per line",
             "POST /cart/quote with catering carts (150 to 200 lines, modifiers included; the API takes 200)",
             lambda d, n, s: wl.large_quotes(d, n, s),
             ("rps", "p99_ms", "cpu_us_per_req"), ("cpu",), connections=16,
             watch=("hp_total__compute_naive", "hp_total__compute_once"), cpu_fix=True,
             fix="CPU work: the per-line lookups and recomputation of the naive total"),
    Scenario("checkout_txn", "long", "short", "Checkout transaction held across the payment call",
             "POST /orders on 3 popular restaurants' stock-tracked items, concurrent",
             _checkout_hot, ("rps", "p99_ms", "error_rate"), ("cpu",), connections=128,
             prepare=_checkout_prepare,
             notes="the payment simulator keeps its default latency, which is what a long transaction holds locks across",
             fix="lock waits (no transaction is held across the payment call)"),
    Scenario("db_pool", "small", "sized", "Transaction pool sized to the load",
             "POST /orders at high concurrency across all open restaurants",
             _orders_many, ("rps", "p99_ms", "pool_wait_us"), ("cpu",), connections=96,
             fix="waits for a transaction connection"),
    Scenario("leak", "on", "off", "Recently-viewed list that never evicts (a leak)",
             "GET /restaurants/{id}/menu with customers' Authorization headers",
             lambda d, n, s: wl.menu_zipf(d, n, s, with_auth=True),
             ("heap_bytes_per_req", "rps", "p99_ms"), ("heap",), connections=32, watch=("hp_recent_record",),
             fix="heap growth (an unbounded recently-viewed list)"),
]

BY_FLAG = {s.flag: s for s in SCENARIOS}
