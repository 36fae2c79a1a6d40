/*
 * merge: the workers' probes summed (see merge.h).
 */
#include "profiling/merge.h"
#include "base/flags.h"
#include "runtime/db.h"
#include "runtime/server.h"

#include <stdlib.h>
#include <string.h>

const int hp_stats_windows[HP_STATS_COUNT_WINDOWS] = {10, 60, 300};

static uint64_t hp__ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void hp_stats_merge_window(hp_merged_hist_t *m, const hp_hist_window_t *w, int64_t now_s)
{
    hp_hist_window_merge(&m->total, w, 0, now_s);
    for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k)
        hp_hist_window_merge(&m->win[k], w, hp_stats_windows[k], now_s);
}

void hp_stats_merge_route(hp_merged_route_t *m, hp_route_probe_t *rp, int64_t now_s)
{
    m->count += hp__ld(&rp->count);
    m->inflight += atomic_load_explicit(&rp->inflight, memory_order_relaxed);
    for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
        m->by_class[c] += hp__ld(&rp->by_class[c]);
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
        m->stage_ns[s] += hp__ld(&rp->stage_ns[s]);
    /* A window of N seconds is the current slot plus the N / HP_ROUTE_SLOT_SECONDS before it. */
    int64_t cur = now_s / HP_ROUTE_SLOT_SECONDS;
    for (size_t i = 0; i != HP_ROUTE_SLOTS; ++i) {
        int64_t e = atomic_load_explicit(&rp->slot_epoch[i], memory_order_acquire);
        if (e < 0 || e > cur)
            continue;
        for (size_t k = 0; k != HP_STATS_COUNT_WINDOWS; ++k) {
            int64_t back = (hp_stats_windows[k] + HP_ROUTE_SLOT_SECONDS - 1) / HP_ROUTE_SLOT_SECONDS;
            if (e < cur - back)
                continue;
            for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
                m->win_by_class[k][c] += hp__ld(&rp->slot_by_class[i][c]);
            if (k < HP_STATS_HIST_WINDOWS)
                for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
                    m->win_stage_ns[k][s] += hp__ld(&rp->slot_stage_ns[i][s]);
        }
    }
    hp_stats_merge_window(&m->latency, &rp->latency, now_s);
}

/*
 * Clearing a merge for the next one. Every snapshot in a merge is written
 * only by adding a histogram or a snapshot with records into it (an empty
 * histogram is skipped: hp_hist_merge_into), so one whose count and span are
 * still 0 is still all zero and is left alone. The alerts merge once a
 * second; a memset of the whole hp_stats_t there was 5.2 MB a second, two
 * thirds of the admin thread's time under a cached-menu load.
 */
static void hp__snapshot_clear(hp_hist_snapshot_t *s)
{
    if (s->count != 0 || s->seconds != 0 || s->sum_ns != 0 || s->max_ns != 0 || s->clamped != 0)
        memset(s, 0, sizeof(*s));
}

static void hp__merged_hist_clear(hp_merged_hist_t *h)
{
    hp__snapshot_clear(&h->total);
    for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k)
        hp__snapshot_clear(&h->win[k]);
}

/* The histograms are the last member of a route's and a statement's merge, so what comes before is their counters. */
_Static_assert(offsetof(hp_merged_route_t, latency) + sizeof(hp_merged_hist_t) == sizeof(hp_merged_route_t), "latency last");
_Static_assert(offsetof(hp_merged_stmt_t, latency) + sizeof(hp_merged_hist_t) == sizeof(hp_merged_stmt_t), "latency last");

/* Zeroes m as memset would, given that m holds a merge: every field but the snapshots, and the snapshots a merge wrote. */
static void hp__stats_clear(hp_stats_t *m)
{
    char *base = (char *)m;
    memset(base, 0, offsetof(hp_stats_t, route));
    for (size_t i = 0; i != HP_PROBE_MAX_ROUTES + 1; ++i) {
        hp_merged_route_t *r = i < HP_PROBE_MAX_ROUTES ? &m->route[i] : &m->unrouted;
        memset(r, 0, offsetof(hp_merged_route_t, latency));
        hp__merged_hist_clear(&r->latency);
    }
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
        hp__merged_hist_clear(&m->stages[s]);
    memset(base + offsetof(hp_stats_t, num_stmts), 0, offsetof(hp_stats_t, stmt) - offsetof(hp_stats_t, num_stmts));
    for (size_t i = 0; i != HP_PROBE_MAX_STMTS; ++i) {
        memset(&m->stmt[i], 0, offsetof(hp_merged_stmt_t, latency));
        hp__merged_hist_clear(&m->stmt[i].latency);
    }
    memset(base + offsetof(hp_stats_t, counter), 0, offsetof(hp_stats_t, hist) - offsetof(hp_stats_t, counter));
    for (size_t i = 0; i != HP_HIST__COUNT; ++i)
        hp__merged_hist_clear(&m->hist[i]);
    size_t after = offsetof(hp_stats_t, hist) + sizeof(m->hist);
    memset(base + after, 0, sizeof(*m) - after);
}

/* The layout hp__stats_clear walks: the members in this order, with nothing between the arrays it clears apart. */
_Static_assert(offsetof(hp_stats_t, route) < offsetof(hp_stats_t, unrouted) &&
                   offsetof(hp_stats_t, unrouted) + sizeof(hp_merged_route_t) == offsetof(hp_stats_t, stages) &&
                   offsetof(hp_stats_t, stages) + sizeof(((hp_stats_t *)0)->stages) == offsetof(hp_stats_t, num_stmts) &&
                   offsetof(hp_stats_t, stmt) + sizeof(((hp_stats_t *)0)->stmt) == offsetof(hp_stats_t, counter) &&
                   offsetof(hp_stats_t, route) + sizeof(((hp_stats_t *)0)->route) == offsetof(hp_stats_t, unrouted),
               "hp_stats_t's layout as hp__stats_clear walks it");

void hp_stats_merge(hp_stats_t *m)
{
    size_t n;
    hp_thread_t *workers = hp_server_workers(&n);
    hp_stats_merge_from(m, workers, n, 0);
}

void hp_stats_merge_again(hp_stats_t *m)
{
    size_t n;
    hp_thread_t *workers = hp_server_workers(&n);
    hp_stats_merge_from(m, workers, n, 1);
}

void hp_stats_merge_from(hp_stats_t *m, hp_thread_t *workers, size_t num_workers, int again)
{
    if (again)
        hp__stats_clear(m);
    else
        memset(m, 0, sizeof(*m));
    m->now_s = hp_probe_now_s();
    m->num_stmts = hp_db_num_stmts() < HP_PROBE_MAX_STMTS ? hp_db_num_stmts() : HP_PROBE_MAX_STMTS;
    m->num_workers = num_workers;
    for (size_t t = 0; t != m->num_workers; ++t) {
        hp_thread_t *thr = &workers[t];
        hp_probes_t *p = thr->probes;
        if (p == NULL)
            continue;
        m->routes = thr->routes;
        m->num_routes = thr->num_routes < HP_PROBE_MAX_ROUTES ? thr->num_routes : HP_PROBE_MAX_ROUTES;
        for (size_t i = 0; i != m->num_routes; ++i)
            hp_stats_merge_route(&m->route[i], &p->routes[i], m->now_s);
        hp_stats_merge_route(&m->unrouted, &p->unrouted, m->now_s);
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            hp_stats_merge_window(&m->stages[s], &p->stages[s], m->now_s);
        for (size_t i = 0; i != m->num_stmts; ++i) {
            m->stmt[i].count += hp__ld(&p->stmts[i].count);
            m->stmt[i].errors += hp__ld(&p->stmts[i].errors);
            m->stmt[i].rows += hp__ld(&p->stmts[i].rows);
            hp_stats_merge_window(&m->stmt[i].latency, &p->stmts[i].latency, m->now_s);
        }
        for (size_t i = 0; i != HP_COUNTER__COUNT; ++i)
            m->counter[i] += hp__ld(&p->counters[i]);
        for (size_t i = 0; i != HP_GAUGE__COUNT; ++i)
            m->gauge[i] += atomic_load_explicit(&p->gauges[i], memory_order_relaxed);
        for (size_t i = 0; i != HP_HIST__COUNT; ++i)
            hp_stats_merge_window(&m->hist[i], &p->hists[i], m->now_s);
        /* The size in effect: db_pool=small caps every thread's pool at one connection (runtime/db.c). */
        m->pool_size += hp_flag_get(HP_FLAG_db_pool) == HP_db_pool_small ? 1 : (uint64_t)thr->db_pool_size;
        m->readers += (uint64_t)thr->db_readers;
        m->readers_ready += (uint64_t)atomic_load(&thr->pg_reader_ready);
    }
}

uint64_t hp_stats_requests_answered(void)
{
    size_t num_workers;
    hp_thread_t *workers = hp_server_workers(&num_workers);
    uint64_t n = 0;
    for (size_t t = 0; t != num_workers; ++t) {
        hp_probes_t *p = workers[t].probes;
        size_t routes = workers[t].num_routes < HP_PROBE_MAX_ROUTES ? workers[t].num_routes : HP_PROBE_MAX_ROUTES;
        if (p == NULL)
            continue;
        for (size_t i = 0; i != routes; ++i)
            n += atomic_load_explicit(&p->routes[i].count, memory_order_relaxed);
    }
    return n;
}

hp_stats_t *hp_stats_merge_new(void)
{
    hp_stats_t *m = malloc(sizeof(*m));
    if (m != NULL)
        hp_stats_merge(m);
    return m;
}

void hp_stats_scalars_of(const hp_stats_t *m, hp_stats_scalars_t *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->counter, m->counter, sizeof(out->counter));
    memcpy(out->gauge, m->gauge, sizeof(out->gauge));
    for (size_t i = 0; i != HP_HIST__COUNT; ++i) {
        hp_hist_summary_t *h = &out->hist[i];
        h->count = m->hist[i].total.count;
        h->sum_ns = m->hist[i].total.sum_ns;
        for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k) {
            h->win_count[k] = m->hist[i].win[k].count;
            h->p99_ns[k] = h->win_count[k] != 0 ? hp_hist_quantile(&m->hist[i].win[k], 0.99) : 0;
        }
    }
    out->pool_size = m->pool_size;
}

uint64_t hp_stats_count_over(const hp_hist_snapshot_t *s, uint64_t le_ns)
{
    uint64_t under = 0;
    for (size_t b = 0; b + 1 < HP_HIST_BUCKETS && hp_hist_bucket_low(b + 1) - 1 <= le_ns; ++b)
        under += s->buckets[b];
    return s->count - under;
}
