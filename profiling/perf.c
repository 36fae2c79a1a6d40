/*
 * perf: /debug/perf (see perf.h).
 */
#include "profiling/perf.h"
#include "base/clock.h"
#include "base/flags.h"
#include "base/timefmt.h"
#include "runtime/db.h"
#include "runtime/http.h"
#include "runtime/params.h"
#include "runtime/pgha.h"
#include "runtime/server.h"
#include "profiling/admin.h"
#include "profiling/alerts.h"
#include "profiling/heap.h"
#include "profiling/merge.h"
#include "profiling/pg.h"
#include "profiling/procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t hp__start_wall_us;

int hp_perf_admin_thread_init(hp_thread_t *thr)
{
    (void)thr;
    hp__start_wall_us = hp_wall_us();
    return 0;
}

static uint64_t hp__ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static json_t *hp__hist_json(const hp_hist_snapshot_t *s)
{
    json_t *o = json_pack("{sI sf sI sI sI sI sI}", "count", (json_int_t)s->count, "mean_us", hp_hist_mean(s) / 1000.0, "p50_us",
                          (json_int_t)(hp_hist_quantile(s, 0.50) / 1000), "p90_us", (json_int_t)(hp_hist_quantile(s, 0.90) / 1000),
                          "p99_us", (json_int_t)(hp_hist_quantile(s, 0.99) / 1000), "p999_us",
                          (json_int_t)(hp_hist_quantile(s, 0.999) / 1000), "max_us", (json_int_t)(s->max_ns / 1000));
    if (s->seconds > 0) {
        json_object_set_new(o, "seconds", json_real(s->seconds));
        json_object_set_new(o, "rate_per_s", json_real((double)s->count / s->seconds));
    }
    return o;
}

static json_t *hp__merged_hist_json(const hp_merged_hist_t *m)
{
    json_t *o = json_object();
    for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k) {
        char key[16];
        snprintf(key, sizeof(key), "%ds", hp_stats_windows[k]);
        json_object_set_new(o, key, hp__hist_json(&m->win[k]));
    }
    json_object_set_new(o, "total", hp__hist_json(&m->total));
    return o;
}

static json_t *hp__classes_json(const uint64_t *by_class)
{
    return json_pack("{sI sI sI sI sI}", "1xx", (json_int_t)by_class[1], "2xx", (json_int_t)by_class[2], "3xx",
                     (json_int_t)by_class[3], "4xx", (json_int_t)by_class[4], "5xx", (json_int_t)by_class[5]);
}

/* Mean time per request in each stage, and "other": the rest of the end-to-end mean. */
static json_t *hp__stage_means_json(const uint64_t *stage_ns, uint64_t count, const hp_hist_snapshot_t *latency)
{
    json_t *o = json_object();
    double sum = 0;
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s) {
        double mean = count != 0 ? (double)stage_ns[s] / (double)count / 1000.0 : 0;
        sum += mean;
        json_object_set_new(o, hp_stage_name((hp_stage_t)s), json_real(mean));
    }
    double total = hp_hist_mean(latency) / 1000.0, other = total - sum;
    json_object_set_new(o, "other", json_real(other > 0 ? other : 0));
    return o;
}

static json_t *hp__route_json(const hp_route_t *route, const hp_merged_route_t *m)
{
    json_t *windows = hp__merged_hist_json(&m->latency), *stages = json_object(), *errors = json_object();
    for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k) {
        char key[16];
        snprintf(key, sizeof(key), "%ds", hp_stats_windows[k]);
        uint64_t n = m->latency.win[k].count;
        json_object_set_new(stages, key, hp__stage_means_json(m->win_stage_ns[k], n, &m->latency.win[k]));
        uint64_t bad = m->win_by_class[k][5];
        json_object_set_new(errors, key,
                            json_pack("{so sf}", "by_class", hp__classes_json(m->win_by_class[k]), "error_rate_5xx",
                                      n != 0 ? (double)bad / (double)n : 0.0));
    }
    json_object_set_new(stages, "total", hp__stage_means_json(m->stage_ns, m->count, &m->latency.total));
    return json_pack("{ss ss sI sI so so so so}", "method", route != NULL ? route->method : "*", "route",
                     route != NULL ? route->pattern : "(unrouted)", "count", (json_int_t)m->count, "in_flight",
                     (json_int_t)m->inflight, "by_class", hp__classes_json(m->by_class), "latency", windows, "windows", errors,
                     "stage_mean_us", stages);
}

static json_t *hp__slow_json(void)
{
    size_t num;
    hp_thread_t *workers = hp_server_workers(&num);
    json_t *list = json_array();
    for (size_t t = 0; t != num; ++t) {
        hp_probes_t *p = workers[t].probes;
        if (p == NULL)
            continue;
        for (size_t i = 0; i != HP_SLOW_RING; ++i) {
            hp_slow_entry_t *e = &p->slow[i];
            /* Seqlock read: retry while the writer is mid-entry, give up after a few tries. */
            for (int attempt = 0; attempt != 4; ++attempt) {
                uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
                if (seq == 0 || (seq & 1) != 0)
                    continue;
                uint64_t ts = hp__ld(&e->ts_us), route = hp__ld(&e->route), status = hp__ld(&e->status),
                         dur = hp__ld(&e->duration_ns), thread = hp__ld(&e->thread), nst = hp__ld(&e->num_stmts);
                uint64_t stages[HP_STAGE__COUNT], stmts[HP_SLOW_MAX_STMTS], rid[4];
                for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
                    stages[s] = hp__ld(&e->stage_ns[s]);
                for (size_t s = 0; s != HP_SLOW_MAX_STMTS; ++s)
                    stmts[s] = hp__ld(&e->stmts[s]);
                for (size_t s = 0; s != 4; ++s)
                    rid[s] = hp__ld(&e->request_id[s]);
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq)
                    continue;
                char id[33] = "";
                memcpy(id, rid, 32);
                char ts_buf[HP_TIME_RFC3339_MAX];
                hp_time_rfc3339(ts_buf, sizeof(ts_buf), ts, 0);
                const hp_route_t *rt = route < workers[t].num_routes ? &workers[t].routes[route] : NULL;
                json_t *st = json_object(), *sq = json_array();
                for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
                    if (stages[s] != 0)
                        json_object_set_new(st, hp_stage_name((hp_stage_t)s), json_integer((json_int_t)(stages[s] / 1000)));
                for (size_t s = 0; s != nst && s != HP_SLOW_MAX_STMTS; ++s)
                    json_array_append_new(sq, json_pack("{ss sI}", "statement", hp_db_stmt_name((int)(stmts[s] >> 48)), "us",
                                                        (json_int_t)((stmts[s] & 0xffffffffffffull) / 1000)));
                json_array_append_new(list,
                                      json_pack("{ss sI ss ss sI sI sI ss so so}", "ts", ts_buf, "ts_us", (json_int_t)ts, "method",
                                                rt != NULL ? rt->method : "-", "route", rt != NULL ? rt->pattern : "-", "status",
                                                (json_int_t)status, "duration_us", (json_int_t)(dur / 1000), "thread",
                                                (json_int_t)thread, "request_id", id, "stages_us", st, "statements", sq));
                break;
            }
        }
    }
    /* Newest first. */
    size_t n = json_array_size(list);
    for (size_t i = 1; i < n; ++i)
        for (size_t j = i; j > 0; --j) {
            json_t *a = json_array_get(list, j - 1), *b = json_array_get(list, j);
            if (json_integer_value(json_object_get(a, "ts_us")) >= json_integer_value(json_object_get(b, "ts_us")))
                break;
            json_incref(a), json_incref(b);
            json_array_set_new(list, j - 1, b);
            json_array_set_new(list, j, a);
        }
    return json_pack("{sI so}", "threshold_ms", (json_int_t)hp_flag_get(HP_FLAG_slow_request_ms), "requests", list);
}

/* Section names, in the order they appear. */
/* The sections this file builds itself; the stat sections (pool, cache, loop, recent, log) are runtime/stats.h's. */
static const char *const hp__sections[] = {"server", "routes", "stages", "statements", "heap",       "process",
                                           "flags",  "slow",   "alerts", "pg",         "postgres_ha"};

/* @return 1 when tok names a section of /debug/perf */
static int hp__section_known(const char *tok)
{
    for (size_t i = 0; i != sizeof(hp__sections) / sizeof(hp__sections[0]); ++i)
        if (strcmp(tok, hp__sections[i]) == 0)
            return 1;
    for (size_t i = 0; i != HP_STAT_SECTION__COUNT; ++i)
        if (hp_stat_sections[i].parent == HP_STAT_SECTION_none && strcmp(tok, hp_stat_sections[i].key) == 0)
            return 1;
    return 0;
}

static int hp__want(const char *sel, const char *name)
{
    if (sel == NULL)
        return strcmp(name, "pg") != 0; /* pg costs a PostgreSQL round trip: only on request */
    size_t n = strlen(name);
    for (const char *p = sel; (p = strstr(p, name)) != NULL; p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/*
 * The sections that runtime/stats.h's lists fill (pool, cache, loop and its
 * payments): every stat under its key, then the few figures derived from
 * them. A section that was not asked for is left NULL.
 */
static void hp__stat_sections(const hp_stats_t *m, const char *sel, json_t **out)
{
    for (size_t i = 0; i != HP_STAT_SECTION__COUNT; ++i) {
        hp_stat_section_t top = (hp_stat_section_t)i;
        while (hp_stat_sections[top].parent != HP_STAT_SECTION_none)
            top = hp_stat_sections[top].parent;
        out[i] = hp__want(sel, hp_stat_sections[top].key) ? json_object() : NULL;
    }
    for (size_t i = 0; i != HP_COUNTER__COUNT; ++i)
        if (out[hp_counter_defs[i].section] != NULL)
            json_object_set_new(out[hp_counter_defs[i].section], hp_counter_defs[i].key, json_integer((json_int_t)m->counter[i]));
    for (size_t i = 0; i != HP_GAUGE__COUNT; ++i)
        if (out[hp_gauge_defs[i].section] != NULL)
            json_object_set_new(out[hp_gauge_defs[i].section], hp_gauge_defs[i].key, json_integer((json_int_t)m->gauge[i]));
    for (size_t i = 0; i != HP_HIST__COUNT; ++i)
        if (out[hp_hist_defs[i].section] != NULL)
            json_object_set_new(out[hp_hist_defs[i].section], hp_hist_defs[i].key, hp__merged_hist_json(&m->hist[i]));
    if (out[HP_STAT_SECTION_pool] != NULL) {
        json_object_set_new(out[HP_STAT_SECTION_pool], "size", json_integer((json_int_t)m->pool_size));
        json_object_set_new(out[HP_STAT_SECTION_pool], "readers", json_integer((json_int_t)m->readers));
        json_object_set_new(out[HP_STAT_SECTION_pool], "readers_ready", json_integer((json_int_t)m->readers_ready));
    }
    if (out[HP_STAT_SECTION_cache] != NULL) {
        uint64_t hits = m->counter[HP_COUNTER_cache_hits],
                 lookups = hits + m->counter[HP_COUNTER_cache_misses] + m->counter[HP_COUNTER_cache_errors];
        json_object_set_new(out[HP_STAT_SECTION_cache], "hit_ratio",
                            json_real(lookups != 0 ? (double)hits / (double)lookups : 0.0));
    }
    /* Nested sections go into their parents. */
    for (size_t i = 0; i != HP_STAT_SECTION__COUNT; ++i) {
        hp_stat_section_t parent = hp_stat_sections[i].parent;
        if (parent != HP_STAT_SECTION_none && out[i] != NULL)
            json_object_set_new(out[parent], hp_stat_sections[i].key, out[i]);
    }
}

static json_t *hp__perf_doc(hp_req_t *r, const char *sel)
{
    hp_stats_t *m = hp_stats_merge_new();
    json_t *doc = json_object();
    if (m == NULL)
        return doc;
    if (hp__want(sel, "server"))
        json_object_set_new(doc, "server",
                            json_pack("{ss sf sI sI sb s[ii] sI ss}", "name", "hotplate", "uptime_s",
                                      (double)(hp_wall_us() - hp__start_wall_us) / 1e6, "pid", (json_int_t)getpid(), "threads",
                                      (json_int_t)m->num_workers, "probes", HOTPLATE_PROBES, "windows_s", hp_stats_windows[0],
                                      hp_stats_windows[1], "slot_s", (json_int_t)HP_HIST_SLOT_SECONDS, "admin_thread",
                                      r->thr->is_admin ? "yes" : "no"));
    if (hp__want(sel, "routes")) {
        json_t *routes = json_array();
        for (size_t i = 0; i != m->num_routes; ++i)
            json_array_append_new(routes, hp__route_json(&m->routes[i], &m->route[i]));
        json_array_append_new(routes, hp__route_json(NULL, &m->unrouted));
        json_object_set_new(doc, "routes", routes);
    }
    if (hp__want(sel, "stages")) {
        json_t *stages = json_object();
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            json_object_set_new(stages, hp_stage_name((hp_stage_t)s), hp__merged_hist_json(&m->stages[s]));
        json_object_set_new(doc, "stages", stages);
    }
    if (hp__want(sel, "statements")) {
        json_t *stmts = json_array();
        for (size_t i = 0; i != m->num_stmts; ++i)
            json_array_append_new(stmts,
                                  json_pack("{ss sI sI sI so}", "name", hp_db_stmt_name((int)i), "count",
                                            (json_int_t)m->stmt[i].count, "errors", (json_int_t)m->stmt[i].errors, "rows",
                                            (json_int_t)m->stmt[i].rows, "latency", hp__merged_hist_json(&m->stmt[i].latency)));
        json_object_set_new(doc, "statements", stmts);
    }
    json_t *sections[HP_STAT_SECTION__COUNT];
    hp__stat_sections(m, sel, sections);
    for (size_t i = 0; i != HP_STAT_SECTION__COUNT; ++i)
        if (sections[i] != NULL && hp_stat_sections[i].parent == HP_STAT_SECTION_none)
            json_object_set_new(doc, hp_stat_sections[i].key, sections[i]);
    if (hp__want(sel, "postgres_ha")) {
        /* runtime/pgha.c's watcher: which host is primary, the standbys' lag and the failovers seen. */
        hp_pgha_snapshot_t ha;
        hp_pgha_snapshot(&ha);
        json_object_set_new(doc, "postgres_ha",
                            ha.enabled ? json_pack("{sb sb ss si si sI sf sI sf ss sf}", "enabled", 1, "connected", ha.connected,
                                                   "primary", ha.primary, "standbys", ha.standbys, "sync_standbys",
                                                   ha.sync_standbys, "replication_lag_bytes", (json_int_t)ha.lag_bytes,
                                                   "replication_lag_s", ha.lag_seconds, "failovers", (json_int_t)ha.failovers,
                                                   "last_failover_unix_s", (double)ha.last_failover_us / 1e6, "previous_primary",
                                                   ha.previous, "polled_unix_s", (double)ha.polled_us / 1e6)
                                       : json_pack("{sb}", "enabled", 0));
    }
    if (hp__want(sel, "heap")) {
        hp_heap_stats_t hs;
        if (hp_heap_read(&hs) == 0) {
            json_t *growth = json_object();
            for (size_t k = 0; k != HP_STATS_HIST_WINDOWS; ++k) {
                char key[16];
                snprintf(key, sizeof(key), "%ds", hp_stats_windows[k]);
                json_object_set_new(growth, key,
                                    json_pack("{sf sf}", "allocated_bytes_per_s", hp_heap_growth(0, hp_stats_windows[k]),
                                              "resident_bytes_per_s", hp_heap_growth(1, hp_stats_windows[k])));
            }
            json_t *heap = json_pack("{ss so}", "allocator", "jemalloc", "growth", growth);
#define HP__HEAP_JSON(f) json_object_set_new(heap, #f, json_integer((json_int_t)hs.f));
            HP_HEAP_STAT_LIST(HP__HEAP_JSON)
#undef HP__HEAP_JSON
            json_object_set_new(doc, "heap", heap);
        } else {
            json_object_set_new(doc, "heap", json_pack("{ss}", "allocator", "system (no jemalloc statistics in this build)"));
        }
    }
    if (hp__want(sel, "process")) {
        hp_proc_stats_t ps;
        hp_proc_read(&ps);
        json_object_set_new(doc, "process",
                            json_pack("{sf sf sI sI sI sI sI sI sI}", "cpu_user_s", ps.cpu_user_s, "cpu_system_s", ps.cpu_system_s,
                                      "rss_bytes", (json_int_t)ps.rss_bytes, "vsize_bytes", (json_int_t)ps.vsize_bytes, "threads",
                                      (json_int_t)ps.threads, "fds", (json_int_t)ps.fds, "max_fds", (json_int_t)ps.max_fds,
                                      "ctx_switches_voluntary", (json_int_t)ps.ctx_voluntary, "ctx_switches_involuntary",
                                      (json_int_t)ps.ctx_involuntary));
    }
    if (hp__want(sel, "flags"))
        json_object_set_new(doc, "flags", hp_admin_flags_json());
    if (hp__want(sel, "slow"))
        json_object_set_new(doc, "slow", hp__slow_json());
    if (hp__want(sel, "alerts"))
        json_object_set_new(doc, "alerts", hp_alerts_json());
    free(m);
    return doc;
}

/* The pg section arrives after one round trip on the admin thread's own connection. */
static void hp__perf_on_pg(hp_req_t *r, void *ud, json_t *pg)
{
    json_t *doc = ud;
    json_object_set_new(pg, "more",
                        json_pack("{ss ss ss ss}", "statements", "/debug/pg/statements", "tables", "/debug/pg/tables", "explain",
                                  "/debug/pg/explain?statement=NAME", "slow", "/debug/pg/slow"));
    json_object_set_new(doc, "pg", pg);
    hp_respond_json(r, 200, json_incref(doc)); /* the response takes its own reference */
}

/* The request pool owns the document: freed with the request, answered or not. */
static void hp__perf_doc_dispose(void *p)
{
    json_decref(*(json_t **)p);
}

static void hp__perf(hp_req_t *r)
{
    h2o_iovec_t sel;
    int found = hp_query_param(r, "section", &sel);
    if (found < 0) {
        hp_respond_error(r, HP_E_bad_param, "section must be a comma-separated list of section names");
        return;
    }
    if (found > 0) {
        /* Every name must be a known section, so a typo is an error rather than an empty document. */
        char *copy = h2o_strdup(&r->h2o->pool, sel.base, sel.len).base, *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            if (!hp__section_known(tok)) {
                hp_respond_error(r, HP_E_bad_param, hp_pool_printf(r, "unknown section %.40s", tok));
                return;
            }
        }
    }
    json_t *doc = hp__perf_doc(r, found > 0 ? sel.base : NULL);
    if (found > 0 && hp__want(sel.base, "pg")) {
        /*
         * The request pool holds the document's reference, so it is freed with
         * the request whether or not the pg callback runs (a failed statement is
         * answered by the pg module; a client may leave mid-query).
         */
        json_t **hold = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*hold), hp__perf_doc_dispose);
        *hold = doc;
        hp_pg_statements_doc(r, 10, hp__perf_on_pg, doc);
        return;
    }
    hp_respond_json(r, 200, doc);
}

const hp_route_t hp_perf_routes[] = {
    {"GET", "/debug/perf", hp__perf, 0},
};
const size_t hp_perf_num_routes = sizeof(hp_perf_routes) / sizeof(hp_perf_routes[0]);
