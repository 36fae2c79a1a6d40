/*
 * doctor: GET /debug/doctor on the admin listener, the last step of the
 * profiling workflow done by the server itself. It watches the traffic that
 * is running for a short window, then names its bottlenecks, ranked: for each
 * one the kind, the routes it hurts and its share of their time, the numbers
 * it rests on, how sure it is, and a concrete fix.
 *
 *   GET /debug/doctor?seconds=N&format=json|md    (N from 1 to 60, default 10)
 *
 * It reads only what the server already measures: a snapshot of the merged
 * probes (routes, stages, statements, pool, cache, loop lag, heap) at the
 * start and at the end of the window, pg_stat_user_tables at both ends,
 * pg_stat_activity sampled during the window, and EXPLAIN of the statements
 * that took the most time in it (with a hypothetical index from hypopg when
 * that extension is installed, to check a proposed CREATE INDEX), and a
 * reading of PostgreSQL's health at the end (pg_health.h: long and idle
 * transactions, connections, unused and duplicate indexes, VACUUM and
 * ANALYZE, the buffer cache), whose rules are doctor_health.c's.
 *
 * The split: doctor_collect.c gathers the snapshots on the admin thread
 * without ever blocking its loop (a timer, and queries on the admin thread's
 * own connections); this file's hp_doctor_evaluate() is a pure function of
 * two snapshots, so tests/unit/test_doctor.c drives every rule with canned
 * snapshots. The rules' thresholds are the one table HP_DOCTOR_THRESHOLDS,
 * which the report carries and docs/DOCTOR.md explains.
 */
#ifndef HP_DOCTOR_H
#define HP_DOCTOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/flags.h"
#include "runtime/probes.h"
#include "runtime/pgha.h"
#include "profiling/merge.h"
#include "base/router.h"
#include "profiling/plan.h"
#include "profiling/pg_health.h"

/*
 * X(name, value, unit, doc): every threshold the rules use. A route or a
 * statement is judged on its activity inside the window (the difference of
 * the two snapshots), so every share below is of the window's time.
 */
#define HP_DOCTOR_THRESHOLDS(X)                                                                                                    \
    X(min_route_requests, 20, "requests", "a route is judged only with at least this many requests in the window")                 \
    X(min_stmt_calls, 20, "calls", "a statement is judged only with at least this many executions in the window")                  \
    X(medium_share, 0.2, "share", "a finding whose impact (share of its route's time) reaches this is medium severity")            \
    X(high_share, 0.5, "share", "a finding whose impact reaches this is high severity")                                            \
    X(stage_match, 0.25, "ratio", "the auth statement: its count and time are within this of the auth stage's")                    \
    X(uncached_calls_min, 0.7, "calls/request", "uncached hot read: least executions of the read per request of its route")        \
    X(uncached_calls_max, 1.5, "calls/request", "uncached hot read: most executions of the read per request of its route")         \
    X(uncached_db_share, 0.5, "share", "uncached hot read: least share of the route's time spent waiting for PostgreSQL")          \
    X(uncached_route_share, 0.2, "share", "uncached hot read: least share of all requests in the window the route gets (hot)")     \
    X(uncached_cache_lookups, 0.1, "lookups/request", "uncached hot read: fewer cache lookups per request than this is a bypass")  \
    X(nplus1_calls, 3, "calls/request", "N+1: least executions of a child statement per execution of its parent")                  \
    X(nplus1_rows_match, 0.25, "ratio", "N+1: a child runs once per row of its parent when its count is within this of the rows")  \
    X(nplus1_db_share, 0.5, "share", "N+1: least share of the route's PostgreSQL wait the children take")                          \
    X(fit_slack, 1.2, "ratio", "a statement fits a route when its time is at most this times the route's PostgreSQL wait")         \
    X(index_min_scans, 10, "scans", "missing index: least sequential scans of the table in the window")                            \
    X(index_rows_per_scan, 1000, "rows", "missing index: least rows each sequential scan reads")                                   \
    X(index_seq_over_idx, 10, "ratio", "missing index: rows read by sequential scans over rows fetched through indexes")           \
    X(cpu_loop_share, 0.5, "share", "CPU hot spot: least share of the route's time spent computing on the loop")                   \
    X(cpu_compute_us, 150, "us", "CPU hot spot: or this much of the server's own computation per request (high at 10x)")           \
    X(cpu_fn_share, 0.05, "share",                                                                                                 \
      "CPU hot spot: under cpu_compute_us, least share of the CPU samples for the fix to name a function")                         \
    X(lock_sample_share, 0.3, "share", "lock wait: least share of pg_stat_activity samples with a lock waiter or a long idle txn") \
    X(lock_min_samples, 4, "samples", "lock wait: least pg_stat_activity samples taken in the window")                             \
    X(lock_min_ms, 25, "ms", "lock wait: a lock waiter or an idle-in-transaction backend counts after this long")                  \
    X(lock_victim_db_share, 0.5, "share",                                                                                          \
      "lock wait: another application's locks hurt the route with the most 5xx among those this much in the database")             \
    X(pool_share, 0.03, "share", "pool saturation: least share of the route's time spent waiting for a transaction connection")    \
    X(leak_bytes_per_request, 100, "bytes",                                                                                        \
      "memory growth: least heap growth per request of the busiest route (the fitted trend)")                                      \
    X(leak_min_bytes, 131072, "bytes", "memory growth: least heap growth over the window (the fitted trend)")                      \
    X(leak_medium_bytes_per_s, 102400, "bytes/s",                                                                                  \
      "memory growth: below this trend the finding stays low (caches and buffers warming up grow the heap that fast too)")         \
    X(leak_sigmas, 3, "sigmas", "memory growth: the trend must be this many standard errors above zero")                           \
    X(leak_late_ratio, 0.5, "ratio",                                                                                               \
      "memory growth: levelled off when the second half's trend is below this share of the whole one's")                           \
    X(leak_level_sigmas, 2, "sigmas",                                                                                              \
      "memory growth: levelled off only when the first half's trend is also this many standard errors above the second's")         \
    X(error_ratio, 0.05, "share", "error spike: least share of a route's answers that are 5xx")                                    \
    X(error_min, 5, "responses", "error spike: least 5xx answers of a route in the window")                                        \
    X(loop_lag_ms, 50, "ms", "event-loop stall: p99 lag of the loops' 100 ms timer over the last 10 s (high at 4x)")               \
    X(loop_busy_share, 0.25, "share", "event-loop stall: least share of the loops' time spent running requests' own work")         \
    X(pg_query_s, 60, "s", "PostgreSQL health: a statement running this long is long-running (medium; high at 10x)")               \
    X(pg_xact_s, 60, "s", "PostgreSQL health: a transaction open this long is long-running (medium; high at 10x)")                 \
    X(pg_idle_txn_s, 5, "s", "PostgreSQL health: a session idle in its transaction this long (medium; high at 10x)")               \
    X(pg_conn_share, 0.8, "share", "PostgreSQL health: connections in use over max_connections less the reserved ones (medium)")   \
    X(pg_conn_high_share, 0.95, "share", "PostgreSQL health: the same share from which the finding is high")                       \
    X(pg_unused_scans, 50, "scans",                                                                                                \
      "PostgreSQL health: an index scanned fewer times than this since the statistics reset is unused")                            \
    X(pg_index_min_bytes, 65536, "bytes", "PostgreSQL health: an unused or duplicate index smaller than this is left alone")       \
    X(pg_index_medium_bytes, 104857600, "bytes",                                                                                   \
      "PostgreSQL health: an unused or duplicate index this large makes the finding medium (below it, low)")                       \
    X(pg_dead_rows, 10000, "rows", "PostgreSQL health: VACUUM is due from this many dead tuples in a table")                       \
    X(pg_dead_share, 0.2, "share", "PostgreSQL health: and from this share of the table's tuples dead (medium)")                   \
    X(pg_analyze_rows, 10000, "rows", "PostgreSQL health: ANALYZE is due from this many rows modified since the last analyze")     \
    X(pg_analyze_share, 0.2, "share", "PostgreSQL health: and from this share of the table's live rows (low: a risk to plans)")    \
    X(pg_cache_hit, 0.99, "ratio", "PostgreSQL health: a table or index buffer cache hit ratio below this is low (PgHero's)")      \
    X(pg_cache_hit_medium, 0.95, "ratio", "PostgreSQL health: a hit ratio below this makes the finding medium")                    \
    X(pg_cache_min_blocks, 10000, "blocks", "PostgreSQL health: a hit ratio is judged over at least this many block accesses")     \
    X(pg_seq_min_rows, 10000, "rows", "PostgreSQL health: a table of at least this many live rows is large")                       \
    X(pg_seq_min_scans, 10, "scans",                                                                                               \
      "foreign sequential scans: least sequential scans of a large table in the window no plan of ours explains")                  \
    X(pg_seq_medium_rows_s, 1000000, "rows/s",                                                                                     \
      "foreign sequential scans: rows those scans read per second that make the finding medium")                                   \
    X(pg_standby_lag_bytes, 16777216, "bytes", "standby: WAL the slowest standby has still to replay that makes it lagging")       \
    X(pg_standby_lag_s, 5, "s", "standby: or its replay_lag in seconds")

typedef enum {
#define HP__DOCTOR_TH_ID(name, value, unit, doc) HP_DOCTOR_TH_##name,
    HP_DOCTOR_THRESHOLDS(HP__DOCTOR_TH_ID)
#undef HP__DOCTOR_TH_ID
        HP_DOCTOR_TH__COUNT
} hp_doctor_th_t;

typedef struct st_hp_doctor_threshold_t {
    const char *name;
    double value;
    const char *unit, *doc;
} hp_doctor_threshold_t;

/** @return the threshold table entry of id */
const hp_doctor_threshold_t *hp_doctor_threshold(hp_doctor_th_t id);

/*
 * X(id, title, flag, good value, database): the kinds of finding; flag is the
 * server's own switch for that cause (base/flags.h) and good the value that
 * removes it, or -1 and -1 when no flag makes the cause; database is 1 when
 * the finding says the database is where the time goes, and then its evidence
 * says what PostgreSQL's backends waited on in the window.
 */
#define HP_DOCTOR_KINDS(X)                                                                                                         \
    X(missing_index, "missing index", HP_FLAG_orders_user_id_index, HP_orders_user_id_index_on, 1)                                 \
    X(n_plus_one, "N+1", HP_FLAG_order_history, HP_order_history_batched, 1)                                                       \
    X(uncached_hot_read, "uncached hot read", HP_FLAG_menu_cache, HP_menu_cache_redis, 1)                                          \
    X(cpu_hot_spot, "CPU hot spot", HP_FLAG_order_total, HP_order_total_once, 0)                                                   \
    X(lock_wait, "lock wait or long transaction", HP_FLAG_checkout_txn, HP_checkout_txn_short, 1)                                  \
    X(pool_saturation, "pool saturation", HP_FLAG_db_pool, HP_db_pool_sized, 0)                                                    \
    X(memory_growth, "memory growth", HP_FLAG_leak, HP_leak_off, 0)                                                                \
    X(error_spike, "error or timeout spike", -1, -1, 0)                                                                            \
    X(event_loop_stall, "event-loop stall", -1, -1, 0)                                                                             \
    X(pg_long_running, "long-running query or transaction", -1, -1, 0)                                                             \
    X(pg_idle_in_transaction, "session idle in transaction", -1, -1, 0)                                                            \
    X(pg_connections, "connections near max_connections", -1, -1, 0)                                                               \
    X(pg_duplicate_index, "duplicate index", -1, -1, 0)                                                                            \
    X(pg_unused_index, "unused index", -1, -1, 0)                                                                                  \
    X(pg_invalid_index, "invalid index", -1, -1, 0)                                                                                \
    X(pg_vacuum, "VACUUM due", -1, -1, 0)                                                                                          \
    X(pg_analyze, "ANALYZE due (stale statistics)", -1, -1, 0)                                                                     \
    X(pg_cache_hit, "low buffer cache hit ratio", -1, -1, 0)                                                                       \
    X(pg_foreign_seq_scan, "another application's sequential scans", -1, -1, 0)                                                    \
    X(pg_standby, "standby missing or lagging", -1, -1, 0)

typedef enum {
#define HP__DOCTOR_KIND_ID(id, title, flag, good, database) HP_DOCTOR_##id,
    HP_DOCTOR_KINDS(HP__DOCTOR_KIND_ID)
#undef HP__DOCTOR_KIND_ID
        HP_DOCTOR_KIND__COUNT
} hp_doctor_kind_t;

/** @return the kind's identifier ("missing_index") and, in *title, its title ("missing index") */
const char *hp_doctor_kind_name(hp_doctor_kind_t kind, const char **title);

typedef enum { HP_DOCTOR_LOW = 0, HP_DOCTOR_MEDIUM, HP_DOCTOR_HIGH } hp_doctor_level_t;

/** @return "low", "medium" or "high" */
const char *hp_doctor_level_name(hp_doctor_level_t level);

#define HP_DOCTOR_MAX_ROUTES HP_PROBE_MAX_ROUTES
#define HP_DOCTOR_MAX_STMTS HP_PROBE_MAX_STMTS
#define HP_DOCTOR_MAX_TABLES 32
#define HP_DOCTOR_MAX_PLANS 24
#define HP_DOCTOR_MAX_HEAP 256
#define HP_DOCTOR_MAX_HOT 5 /* functions of the CPU profile kept in a snapshot */

/* One frame of a profile's top: the function and what it counts (CPU samples, or heap bytes in use). */
typedef struct st_hp_doctor_hot_t {
    char fn[96];
    uint64_t n;
} hp_doctor_hot_t;

/* One route's counters since start (strings point into the route table, static storage). */
typedef struct st_hp_doctor_route_t {
    const char *method, *pattern;
    uint64_t count, by_class[HP_PROBE_STATUS_CLASSES];
    uint64_t latency_ns;                /* sum of the end-to-end latencies */
    uint64_t stage_ns[HP_STAGE__COUNT]; /* time spent in each stage */
} hp_doctor_route_t;

/* One named statement's counters since start. */
typedef struct st_hp_doctor_stmt_t {
    const char *name; /* static storage (the statement list) */
    int is_read;      /* its list says it only reads: safe to EXPLAIN, and a candidate for a cache */
    int route;        /* the route its list says it belongs to (an index into the snapshot's routes), or -1 */
    uint64_t count, errors, rows, time_ns;
} hp_doctor_stmt_t;

/* One table of pg_stat_user_tables (cumulative counters). */
typedef struct st_hp_doctor_table_t {
    char name[64];
    int64_t seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_live_tup;
} hp_doctor_table_t;

/*
 * A session at the root of the lock waits of hotplate's backends (the end
 * snapshot only): it holds what they wait for and waits for nobody itself.
 * pg_stat_activity and pg_locks, read at the ticks of the window in which a
 * backend of ours waited on a lock; the fields are those of its last sample.
 */
typedef struct st_hp_doctor_blocker_t {
    int pid;
    int own;            /* its application_name is hotplate's: one of our own transactions */
    int depth;          /* the longest chain seen: 1 blocks one of our backends directly, 2 blocks a session that does, ... */
    int samples;        /* ticks in which it was at the root of a wait */
    int waiters;        /* our backends waiting behind it, at most, in one tick */
    char app[64];       /* application_name, "" when it set none */
    char client[48];    /* client address, or "local" (a Unix socket) */
    char state[32];     /* active, idle in transaction, ... */
    double xact_ms;     /* age of its transaction; 0 outside one */
    double idle_ms;     /* how long it has sat idle in that transaction; negative when it is not idle in one */
    char query[160];    /* its last query, literals replaced (hp_pg_query_shape) */
    char relations[96]; /* the tables it holds locks on that can block a row lock, comma separated */
    char lock_mode[32]; /* the strongest of those locks' modes ("AccessExclusiveLock": a schema change), "" when none */
} hp_doctor_blocker_t;

#define HP_DOCTOR_MAX_BLOCKERS 4
#define HP_DOCTOR_MAX_WAITS 16 /* distinct wait events kept from a window's samples */

/* One wait event, counted over a window: each sample adds one per active backend of ours waiting on it. */
typedef struct st_hp_doctor_wait_t {
    char event[48]; /* "CPU" (active, waiting on nothing), or wait_event_type:wait_event ("IO:DataFileRead") */
    int samples;
} hp_doctor_wait_t;

/* What EXPLAIN said about one statement (the end snapshot only). */
typedef struct st_hp_doctor_plan_t {
    char stmt[48];
    hp_plan_read_t plan; /* its costliest filtered sequential scan and the index that asks for (profiling/plan.h) */
    double hypo_cost;    /* the cost with that index as a hypothetical index (hypopg); negative when not checked */
    char hypo_note[128]; /* why it was not checked, or "" */
} hp_doctor_plan_t;

/*
 * Everything the rules read, at one instant. Counters are cumulative; the
 * rules use the difference of two snapshots. Fields marked (end) are filled in
 * the end snapshot only and describe the window as a whole.
 */
typedef struct st_hp_doctor_snapshot_t {
    double at_s;    /* monotonic seconds */
    size_t threads; /* worker threads (event loops) */
    size_t num_routes;
    hp_doctor_route_t routes[HP_DOCTOR_MAX_ROUTES];
    size_t num_stmts;
    hp_doctor_stmt_t stmts[HP_DOCTOR_MAX_STMTS];
    hp_stats_scalars_t stats; /* the merged scalar stats (runtime/stats.h): pool, cache, loop lag */
    double heap_bytes;        /* jemalloc stats.allocated; negative without jemalloc */
    size_t heap_n;            /* (end) readings of the heap through the window, for the fit of its trend */
    double heap_t[HP_DOCTOR_MAX_HEAP], heap_v[HP_DOCTOR_MAX_HEAP]; /* seconds into the window, and stats.allocated */
    double heap_q[HP_DOCTOR_MAX_HEAP]; /* the requests answered by then, all routes (0 everywhere: not recorded) */
    int tables_ok;                     /* the tables below were read */
    size_t num_tables;
    hp_doctor_table_t tables[HP_DOCTOR_MAX_TABLES];
    /* (end) pg_stat_activity samples taken during the window */
    int activity_samples, activity_lock_samples, activity_idle_txn_samples;
    double activity_max_xact_ms;
    size_t num_waits; /* (end) what hotplate's active backends waited on, the most first */
    hp_doctor_wait_t waits[HP_DOCTOR_MAX_WAITS];
    int wait_samples;    /* (end) backend-samples of active hotplate backends in the window: the waits' total */
    size_t num_blockers; /* (end) the sessions at the root of those lock waits, the most seen first */
    hp_doctor_blocker_t blockers[HP_DOCTOR_MAX_BLOCKERS];
    size_t num_plans; /* (end) */
    hp_doctor_plan_t plans[HP_DOCTOR_MAX_PLANS];
    /* (end) the CPU profile the doctor took over the window: the functions with the most samples of their own */
    int profile_ok;
    uint64_t profile_samples;
    size_t num_hot, num_hp_hot;
    hp_doctor_hot_t hot[HP_DOCTOR_MAX_HOT], hp_hot[HP_DOCTOR_MAX_HOT]; /* all functions; hotplate's own (hp_*) */
    /* (end) the heap profile of the window: bytes in use by allocation site, the deepest hotplate frame (hp_*) */
    int heap_profile_ok;
    uint64_t heap_profile_bytes;
    size_t num_heap_hot;
    hp_doctor_hot_t heap_hot[HP_DOCTOR_MAX_HOT];
    int flags[HP_FLAG__COUNT]; /* the server's flags, for the fixes that name one */
    hp_pgha_snapshot_t ha;     /* (end) the primary and its standbys as runtime/pgha.c last saw them (enabled 0: one host) */
    int health_ok;             /* the reading of PostgreSQL's health below was taken (pg_health_collect.c); the start's only
                                  for pg_stat_statements */
    hp_pg_health_t health;
} hp_doctor_snapshot_t;

#define HP_DOCTOR_MAX_FINDINGS 24
#define HP_DOCTOR_MAX_EVIDENCE 8
#define HP_DOCTOR_MAX_FINDING_ROUTES 4

typedef struct st_hp_doctor_finding_t {
    hp_doctor_kind_t kind;
    hp_doctor_level_t severity, confidence;
    double impact; /* share of the first route's time the cause takes (memory growth: see the rule), 0..1 */
    size_t num_routes;
    int routes[HP_DOCTOR_MAX_FINDING_ROUTES]; /* indices into the snapshots' routes; the first is the most hurt */
    double route_share[HP_DOCTOR_MAX_FINDING_ROUTES];
    char summary[256];
    size_t num_evidence;
    char evidence[HP_DOCTOR_MAX_EVIDENCE][256];
    char fix[512];
    char sql[512];   /* a statement to run (several: separated by ";\n"), or "" */
    char flag[64];   /* "name=value": the server's switch for this cause when it is set the other way, or "" */
    char check[256]; /* how the fix was checked (a hypothetical index's cost), or "" */
} hp_doctor_finding_t;

/**
 * Reads a CPU profile's folded stacks ("frame;frame;... count" lines) into
 * s->hot: the functions with the most samples of their own, most first,
 * where a frame that was inlined ("fn[inline]") counts in the function it was
 * inlined into, as a flat profile shows it. Sets profile_ok and
 * profile_samples. Pure: no I/O.
 */
void hp_doctor_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s);

/**
 * Reads a heap profile's folded stacks (the count is bytes in use) into
 * s->heap_hot: allocation sites, each stack counted in its deepest hotplate
 * frame (hp_*: the code that called the allocator), or its leaf when it has
 * none. Sets heap_profile_ok and heap_profile_bytes. Pure: no I/O.
 */
void hp_doctor_heap_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s);

/**
 * Runs every rule on the window between two snapshots of the same server and
 * ranks the findings: by severity, then by impact. Pure: reads only its
 * arguments.
 * @param out receives at most max findings, most important first
 * @return the number written
 */
size_t hp_doctor_evaluate(const hp_doctor_snapshot_t *before, const hp_doctor_snapshot_t *after, hp_doctor_finding_t *out,
                          size_t max);

/** @return the report as a JSON document (a new object); window_s is the length observed */
json_t *hp_doctor_json(const hp_doctor_snapshot_t *before, const hp_doctor_snapshot_t *after, const hp_doctor_finding_t *f,
                       size_t n, const char *const *notes, size_t num_notes);

/** @return the report as Markdown, malloc'd (the caller frees it), or NULL when out of memory */
char *hp_doctor_markdown(const json_t *report);

/**
 * Fills a snapshot's probe part (routes, statements, the scalar stats, the
 * heap and the flags) from the merged probes; admin thread only.
 */
void hp_doctor_sample(hp_doctor_snapshot_t *s);

/* GET /debug/doctor, for the admin route table (doctor_collect.c). */
extern const hp_route_t hp_doctor_routes[];
extern const size_t hp_doctor_num_routes;

#endif
