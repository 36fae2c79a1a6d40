/*
 * stats: the one declaration of every scalar stat the probes keep.
 *
 * Three lists, one per kind: counters (only ever go up), gauges (go up and
 * down) and histograms (latencies, with windows). A line here is the whole
 * of a stat's definition: it generates the per-thread field the recording
 * site increments (runtime/probes.h), the merge across threads, its key in
 * /debug/perf and its line in /metrics (profiling/merge.c, perf.c,
 * metrics.c), and the embedded alerts and the doctor read it from the merged
 * snapshot by its id. Adding a counter is one line here and one
 * hp_probe_count() where it happens (docs/ARCHITECTURE.md has the recipe);
 * tests/monitoring/test_metrics_doc.py checks that docs/PROFILING.md names
 * its metric.
 *
 * The routes, stages and statements have families of their own (per route,
 * per stage, per statement: runtime/probes.h), written out once each too.
 *
 * Columns:
 *   id       the C name: HP_COUNTER_<id>, HP_GAUGE_<id>, HP_HIST_<id>
 *   section  where /debug/perf shows it (HP_STAT_SECTION_LIST)
 *   key      its key in that section
 *   metric   its Prometheus name; lines of one family (the same name with
 *            other labels) are adjacent, and the first one's help is printed
 *   labels   its Prometheus labels, "" for none
 *   help     one sentence for # HELP
 */
#ifndef HP_STATS_H
#define HP_STATS_H

/* X(id, parent, key): the /debug/perf sections the lists below fill; parent is another section, or none. */
#define HP_STAT_SECTION_LIST(X)                                                                                                    \
    X(pool, none, "pool")                                                                                                          \
    X(cache, none, "cache")                                                                                                        \
    X(loop, none, "loop")                                                                                                          \
    X(payments, loop, "payments")                                                                                                  \
    X(recent, none, "recent")                                                                                                      \
    X(log, none, "log")

#define HP_COUNTER_LIST(X)                                                                                                         \
    X(pool_acquired, pool, "acquired", "hotplate_db_pool_acquired_total", "", "Transaction connections handed to a request.")      \
    X(pool_timeouts, pool, "timeouts", "hotplate_db_pool_timeouts_total", "", "Waits for a connection that gave up.")              \
    X(pool_batches, pool, "batches", "hotplate_db_pool_batches_total", "",                                                         \
      "Batches of statements sent on transaction connections, each one round trip (rollbacks not counted).")                       \
    X(read_batches, pool, "read_batches", "hotplate_db_read_batches_total", "",                                                    \
      "Batches of reads sent on the pipelined read connections, one Sync and one write each.")                                     \
    X(read_spills, pool, "read_spills", "hotplate_db_read_spills_total", "",                                                       \
      "Reads sent past the first read connection because its oldest read was older than 2 ms (--db-readers above 1).")             \
    X(replica_reads, pool, "replica_reads", "hotplate_db_replica_reads_total", "served=\"standby\"",                               \
      "Standby-eligible reads (replica_reads=on) by where they ran: standby, primary_fallback (no standby), primary_fresh.")       \
    X(replica_fallbacks, pool, "replica_fallbacks", "hotplate_db_replica_reads_total", "served=\"primary_fallback\"", "")          \
    X(replica_fresh, pool, "replica_fresh", "hotplate_db_replica_reads_total", "served=\"primary_fresh\"", "")                     \
    X(cache_hits, cache, "hits", "hotplate_cache_lookups_total", "result=\"hit\"", "Menu cache lookups by result.")                \
    X(cache_misses, cache, "misses", "hotplate_cache_lookups_total", "result=\"miss\"", "")                                        \
    X(cache_errors, cache, "errors", "hotplate_cache_lookups_total", "result=\"error\"", "")                                       \
    X(cache_local_hits, cache, "local_hits", "hotplate_cache_local_hits_total", "",                                                \
      "Menu cache hits answered from the worker thread's own copy, with no Redis round trip (menu_cache=local).")                  \
    X(cache_loads, cache, "loads", "hotplate_cache_loads_total", "", "Menus loaded from PostgreSQL by the menu read path.")        \
    X(cache_coalesced, cache, "coalesced", "hotplate_cache_coalesced_total", "",                                                   \
      "Menu reads answered with another request's load on the same thread.")                                                       \
    X(cache_lease_waits, cache, "lease_waits", "hotplate_cache_lease_waits_total", "",                                             \
      "Menu loads that found the Redis lease taken and polled for its result.")                                                    \
    X(redis_switches, cache, "sentinel_switches", "hotplate_redis_sentinel_switches_total", "",                                    \
      "+switch-master messages about hotplate's Redis primary received, one per worker thread per failover (Sentinel mode).")      \
    X(accepted, loop, "connections_accepted", "hotplate_connections_accepted_total", "", "Client connections accepted.")           \
    X(pay_authorized, payments, "authorized", "hotplate_payment_authorizations_total", "result=\"authorized\"",                    \
      "Authorizations the payment gateway simulator answered, by result.")                                                         \
    X(pay_declined, payments, "declined", "hotplate_payment_authorizations_total", "result=\"declined\"", "")                      \
    X(pay_timed_out, payments, "timed_out", "hotplate_payment_timeouts_total", "",                                                 \
      "Authorizations the caller stopped waiting for.")                                                                            \
    X(pay_voided, payments, "voided", "hotplate_payment_voids_total", "", "Authorizations voided because no order owns them.")     \
    X(log_dropped, log, "dropped", "hotplate_log_lines_dropped_total", "",                                                         \
      "Log lines a loop thread dropped because its log buffer was full (the writer thread behind).")

#define HP_GAUGE_LIST(X)                                                                                                           \
    X(pool_in_use, pool, "in_use", "hotplate_db_pool_in_use", "", "Transaction connections held now.")                             \
    X(pool_waiting, pool, "waiting", "hotplate_db_pool_waiting", "", "Requests waiting for a transaction connection.")             \
    X(recent_entries, recent, "entries", "hotplate_recent_entries", "",                                                            \
      "Entries in the recently-viewed lists behind GET /trending, all threads (bounded unless leak=on).")

/* X(id, section, key, metric, help): latencies in nanoseconds, shown in microseconds and exported in seconds. */
#define HP_HIST_LIST(X)                                                                                                            \
    X(pool_wait, pool, "wait", "hotplate_db_pool_wait_seconds", "Time spent waiting for a transaction connection.")                \
    X(cache_latency, cache, "latency", "hotplate_cache_command_duration_seconds", "Latency of Redis commands.")                    \
    X(loop_lag, loop, "lag", "hotplate_event_loop_lag_seconds", "How late the loops' 100 ms timer fires.")                         \
    X(payment_latency, loop, "payment_latency", "hotplate_payment_duration_seconds", "Latency of the payment gateway simulator.")

typedef enum {
#define HP__SECTION_ID(id, parent, key) HP_STAT_SECTION_##id,
    HP_STAT_SECTION_LIST(HP__SECTION_ID)
#undef HP__SECTION_ID
        HP_STAT_SECTION__COUNT,
    HP_STAT_SECTION_none = -1
} hp_stat_section_t;

typedef enum {
#define HP__COUNTER_ID(id, section, key, metric, labels, help) HP_COUNTER_##id,
    HP_COUNTER_LIST(HP__COUNTER_ID)
#undef HP__COUNTER_ID
        HP_COUNTER__COUNT
} hp_counter_t;

typedef enum {
#define HP__GAUGE_ID(id, section, key, metric, labels, help) HP_GAUGE_##id,
    HP_GAUGE_LIST(HP__GAUGE_ID)
#undef HP__GAUGE_ID
        HP_GAUGE__COUNT
} hp_gauge_t;

typedef enum {
#define HP__HIST_ID(id, section, key, metric, help) HP_HIST_##id,
    HP_HIST_LIST(HP__HIST_ID)
#undef HP__HIST_ID
        HP_HIST__COUNT
} hp_hist_id_t;

/* What the lists say about one stat, as a table for code that walks them all. */
typedef struct st_hp_stat_def_t {
    const char *id;
    hp_stat_section_t section;
    const char *key, *metric, *labels, *help;
} hp_stat_def_t;

typedef struct st_hp_stat_section_def_t {
    const char *key;
    hp_stat_section_t parent;
} hp_stat_section_def_t;

extern const hp_stat_def_t hp_counter_defs[HP_COUNTER__COUNT];
extern const hp_stat_def_t hp_gauge_defs[HP_GAUGE__COUNT];
extern const hp_stat_def_t hp_hist_defs[HP_HIST__COUNT];
extern const hp_stat_section_def_t hp_stat_sections[HP_STAT_SECTION__COUNT];

#endif
