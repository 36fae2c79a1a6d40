/*
 * merge: every worker's probes summed into one snapshot, on the admin thread.
 *
 * /debug/perf, /metrics, the embedded alerts and the doctor all read the
 * server's figures from here, so they always agree. The merge reads other
 * threads' counters with relaxed atomic loads; the numbers of one snapshot
 * are therefore a near-instant, not an exact snapshot, which is what
 * Prometheus and Envoy's admin stats promise too.
 *
 * Two shapes: hp_stats_t, the whole merge (histograms with their windows, per
 * route, stage and statement), and hp_stats_scalars_t, the scalar stats of
 * runtime/stats.h with a summary of each histogram, small enough to keep by
 * value (the alerts keep sixteen minutes of them, the doctor two).
 */
#ifndef HP_MERGE_H
#define HP_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"
#include "base/router.h"
#include "runtime/probes.h"

/* The windows, in seconds: histograms and stage times over the first two, answer counts over all three. */
#define HP_STATS_HIST_WINDOWS 2
#define HP_STATS_COUNT_WINDOWS 3
extern const int hp_stats_windows[HP_STATS_COUNT_WINDOWS]; /* 10, 60, 300 */

/* A histogram family merged across workers: since start and over each window. */
typedef struct st_hp_merged_hist_t {
    hp_hist_snapshot_t total;
    hp_hist_snapshot_t win[HP_STATS_HIST_WINDOWS];
} hp_merged_hist_t;

typedef struct st_hp_merged_route_t {
    uint64_t count, by_class[HP_PROBE_STATUS_CLASSES], stage_ns[HP_STAGE__COUNT];
    uint64_t win_by_class[HP_STATS_COUNT_WINDOWS][HP_PROBE_STATUS_CLASSES];
    uint64_t win_stage_ns[HP_STATS_HIST_WINDOWS][HP_STAGE__COUNT];
    int64_t inflight;
    hp_merged_hist_t latency;
} hp_merged_route_t;

typedef struct st_hp_merged_stmt_t {
    uint64_t count, errors, rows;
    hp_merged_hist_t latency;
} hp_merged_stmt_t;

typedef struct st_hp_stats_t {
    int64_t now_s;
    size_t num_workers;
    const hp_route_t *routes; /* the workers' route table */
    size_t num_routes;
    hp_merged_route_t route[HP_PROBE_MAX_ROUTES], unrouted;
    hp_merged_hist_t stages[HP_STAGE__COUNT];
    size_t num_stmts;
    hp_merged_stmt_t stmt[HP_PROBE_MAX_STMTS];
    uint64_t counter[HP_COUNTER__COUNT];
    int64_t gauge[HP_GAUGE__COUNT];
    hp_merged_hist_t hist[HP_HIST__COUNT];
    uint64_t pool_size;              /* transaction connections in effect: db_pool=small caps each thread's at one */
    uint64_t readers, readers_ready; /* the workers' pipelined read connections (--db-readers each), and those prepared */
} hp_stats_t;

/* A histogram in a few numbers. */
typedef struct st_hp_hist_summary_t {
    uint64_t count, sum_ns;                    /* since start */
    uint64_t p99_ns[HP_STATS_HIST_WINDOWS];    /* over each window; 0 without samples */
    uint64_t win_count[HP_STATS_HIST_WINDOWS]; /* samples in each window */
} hp_hist_summary_t;

/* The scalar stats of runtime/stats.h, by id, as of one merge. */
typedef struct st_hp_stats_scalars_t {
    uint64_t counter[HP_COUNTER__COUNT];
    int64_t gauge[HP_GAUGE__COUNT];
    hp_hist_summary_t hist[HP_HIST__COUNT];
    uint64_t pool_size;
} hp_stats_scalars_t;

/** Merges every worker's probes into m (which need not be zeroed). */
void hp_stats_merge(hp_stats_t *m);

/**
 * The same into m, which must hold a merge already (of hp_stats_merge or of
 * this): only what that merge wrote is cleared first, which for a caller that
 * merges into one buffer again and again (the alerts, once a second) is a
 * small part of the 5 MB hp_stats_merge zeroes.
 */
void hp_stats_merge_again(hp_stats_t *m);

struct st_hp_thread_t;
/** Either of the two over the given workers' probes (again: m holds a merge), for tests. */
void hp_stats_merge_from(hp_stats_t *m, struct st_hp_thread_t *workers, size_t num_workers, int again);

/** @return a new merge (malloc'd; free() it), or NULL when out of memory */
hp_stats_t *hp_stats_merge_new(void);

/**
 * The requests the workers have answered, all routes: only the routes' counts
 * summed, none of the histograms hp_stats_merge() adds up, so that a caller a
 * few times a second (the doctor's heap readings) costs next to nothing.
 */
uint64_t hp_stats_requests_answered(void);

/** Copies the scalars of a merge. */
void hp_stats_scalars_of(const hp_stats_t *m, hp_stats_scalars_t *out);

/** Merges a histogram window of one thread into m: since start and each window. */
void hp_stats_merge_window(hp_merged_hist_t *m, const hp_hist_window_t *w, int64_t now_s);

/** Adds one thread's probe of a route into m. */
void hp_stats_merge_route(hp_merged_route_t *m, hp_route_probe_t *rp, int64_t now_s);

/** @return executions slower than le_ns in a snapshot, counted as /metrics does (count minus the le bucket) */
uint64_t hp_stats_count_over(const hp_hist_snapshot_t *s, uint64_t le_ns);

#endif
