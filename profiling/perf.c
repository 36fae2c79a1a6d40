/*
 * perf: /debug/perf and /metrics (see perf.h).
 *
 * Both views are built from one merge of every worker's probes, so they always
 * agree. The merge reads other threads' counters with relaxed atomic loads;
 * the numbers of one response are therefore a near-instant, not an exact
 * snapshot, which is what Prometheus and Envoy's admin stats promise too.
 */
#include "profiling/perf.h"
#include "services/payment.h"
#include "common/db.h"
#include "common/flags.h"
#include "common/http.h"
#include "common/router.h"
#include "common/server.h"
#include "profiling/admin.h"
#include "profiling/alerts.h"
#include "profiling/doctor.h"
#include "profiling/logs.h"
#include "profiling/pg.h"
#include "profiling/probes.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* jemalloc's control interface, when the binary links jemalloc (sanitizer builds do not). */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

static const int hp__windows[] = {10, 60};
static uint64_t hp__start_wall_us;

/* ---- heap sampler (admin thread) ------------------------------------------------------------ */

#define HP_HEAP_SAMPLES 64

typedef struct st_hp_heap_stats_t {
    uint64_t allocated, active, resident, mapped, retained, metadata;
} hp_heap_stats_t;

static struct {
    h2o_timeout_t tick;
    h2o_timeout_entry_t entry;
    hp_thread_t *thr;
    /* One sample a second; only the admin thread touches these. */
    int64_t at_s[HP_HEAP_SAMPLES];
    uint64_t allocated[HP_HEAP_SAMPLES], resident[HP_HEAP_SAMPLES];
    size_t next, count;
} hp__heap;

static int hp__heap_read(hp_heap_stats_t *st)
{
    if (mallctl == NULL)
        return -1;
    /* jemalloc caches its statistics; writing the epoch refreshes them. */
    uint64_t epoch = 1;
    size_t len = sizeof(epoch);
    if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
        return -1;
    struct {
        const char *name;
        uint64_t *out;
    } fields[] = {{"stats.allocated", &st->allocated}, {"stats.active", &st->active},     {"stats.resident", &st->resident},
                  {"stats.mapped", &st->mapped},       {"stats.retained", &st->retained}, {"stats.metadata", &st->metadata}};
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i) {
        size_t v = 0;
        len = sizeof(v);
        if (mallctl(fields[i].name, &v, &len, NULL, 0) != 0)
            return -1;
        *fields[i].out = v;
    }
    return 0;
}

static void hp__heap_tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    hp_heap_stats_t st;
    if (hp__heap_read(&st) == 0) {
        size_t i = hp__heap.next;
        hp__heap.at_s[i] = hp_probe_now_s();
        hp__heap.allocated[i] = st.allocated;
        hp__heap.resident[i] = st.resident;
        hp__heap.next = (i + 1) % HP_HEAP_SAMPLES;
        if (hp__heap.count < HP_HEAP_SAMPLES)
            ++hp__heap.count;
    }
    if (!atomic_load(&hp__heap.thr->stopping))
        h2o_timeout_link(hp__heap.thr->loop, &hp__heap.tick, &hp__heap.entry);
}

void hp_perf_admin_thread_init(hp_thread_t *thr)
{
    hp__start_wall_us = hp_wall_us();
    hp__heap.thr = thr;
    h2o_timeout_init(thr->loop, &hp__heap.tick, 1000);
    hp__heap.entry.cb = hp__heap_tick;
    hp__heap_tick(&hp__heap.entry);
    hp_alerts_admin_thread_init(thr);
}

void hp_perf_admin_thread_dispose(hp_thread_t *thr)
{
    hp_alerts_admin_thread_dispose(thr);
    if (h2o_timeout_is_linked(&hp__heap.entry))
        h2o_timeout_unlink(&hp__heap.entry);
}

/* Growth of a sampled series in bytes per second over about `seconds`, or 0 with too few samples. */
static double hp__heap_growth(const uint64_t *series, int seconds)
{
    if (hp__heap.count < 2)
        return 0;
    size_t last = (hp__heap.next + HP_HEAP_SAMPLES - 1) % HP_HEAP_SAMPLES, first = last;
    for (size_t k = 1; k < hp__heap.count; ++k) {
        size_t i = (last + HP_HEAP_SAMPLES - k) % HP_HEAP_SAMPLES;
        if (hp__heap.at_s[last] - hp__heap.at_s[i] > seconds)
            break;
        first = i;
    }
    int64_t dt = hp__heap.at_s[last] - hp__heap.at_s[first];
    return dt > 0 ? ((double)series[last] - (double)series[first]) / (double)dt : 0;
}

/* ---- process figures -------------------------------------------------------------------------- */

typedef struct st_hp_proc_stats_t {
    double cpu_user_s, cpu_system_s, start_time_s;
    uint64_t rss_bytes, vsize_bytes, threads, fds, max_fds, ctx_voluntary, ctx_involuntary;
} hp_proc_stats_t;

static void hp__proc_read(hp_proc_stats_t *ps)
{
    memset(ps, 0, sizeof(*ps));
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) != NULL) {
            /* The command name may hold spaces; fields resume after its closing parenthesis. */
            char *p = strrchr(buf, ')');
            unsigned long utime = 0, stime = 0, vsize = 0;
            long threads = 0, rss = 0;
            unsigned long long starttime = 0;
            if (p != NULL &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d %llu %lu %ld", &utime,
                       &stime, &threads, &starttime, &vsize, &rss) == 6) {
                ps->cpu_user_s = (double)utime / (double)ticks;
                ps->cpu_system_s = (double)stime / (double)ticks;
                ps->threads = (uint64_t)threads;
                ps->vsize_bytes = vsize;
                ps->rss_bytes = (uint64_t)rss * (uint64_t)page;
                ps->start_time_s = (double)starttime / (double)ticks;
            }
        }
        fclose(f);
    }
    if ((f = fopen("/proc/stat", "r")) != NULL) {
        unsigned long long btime;
        while (fgets(buf, sizeof(buf), f) != NULL)
            if (sscanf(buf, "btime %llu", &btime) == 1)
                ps->start_time_s += (double)btime;
        fclose(f);
    }
    /* Context switches are per thread in procfs; the process's are the sum over its tasks. */
    DIR *tasks = opendir("/proc/self/task");
    if (tasks != NULL) {
        struct dirent *t;
        while ((t = readdir(tasks)) != NULL) {
            if (t->d_name[0] == '.')
                continue;
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", t->d_name);
            if ((f = fopen(path, "r")) == NULL)
                continue;
            unsigned long long v;
            while (fgets(buf, sizeof(buf), f) != NULL) {
                if (sscanf(buf, "voluntary_ctxt_switches: %llu", &v) == 1)
                    ps->ctx_voluntary += v;
                else if (sscanf(buf, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
                    ps->ctx_involuntary += v;
            }
            fclose(f);
        }
        closedir(tasks);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                ++ps->fds;
        closedir(d);
        if (ps->fds != 0)
            --ps->fds; /* the directory stream's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ps->max_fds = rl.rlim_cur;
}

/* ---- merging the workers' probes ----------------------------------------------------------- */

/* A histogram family merged across workers: since start and over each window. */
typedef struct st_hp_merged_hist_t {
    hp_hist_snapshot_t total;
    hp_hist_snapshot_t win[sizeof(hp__windows) / sizeof(hp__windows[0])];
} hp_merged_hist_t;

#define HP_NUM_WINDOWS (sizeof(hp__windows) / sizeof(hp__windows[0]))

typedef struct st_hp_merged_route_t {
    uint64_t count, by_class[HP_PROBE_STATUS_CLASSES], stage_ns[HP_STAGE__COUNT];
    uint64_t win_by_class[HP_NUM_WINDOWS][HP_PROBE_STATUS_CLASSES], win_stage_ns[HP_NUM_WINDOWS][HP_STAGE__COUNT];
    int64_t inflight;
    hp_merged_hist_t latency;
} hp_merged_route_t;

typedef struct st_hp_merged_t {
    int64_t now_s;
    size_t num_workers;
    const hp_route_t *routes;
    size_t num_routes;
    hp_merged_route_t route[HP_PROBE_MAX_ROUTES], unrouted;
    hp_merged_hist_t stages[HP_STAGE__COUNT];
    struct {
        uint64_t count, errors, rows;
        hp_merged_hist_t latency;
    } stmt[HP_PROBE_MAX_STMTS];
    int64_t pool_in_use, pool_waiting;
    uint64_t pool_acquired, pool_timeouts, pool_size;
    hp_merged_hist_t pool_wait;
    uint64_t cache_hits, cache_misses, cache_errors;
    uint64_t cache_loads, cache_coalesced, cache_lease_waits;
    hp_merged_hist_t cache_latency, loop_lag, payment_latency;
    uint64_t pay_authorized, pay_declined, pay_timed_out, pay_voided;
    uint64_t accepted;
} hp_merged_t;

static uint64_t hp__ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void hp__merge_window(hp_merged_hist_t *m, const hp_hist_window_t *w, int64_t now_s)
{
    hp_hist_window_merge(&m->total, w, 0, now_s);
    for (size_t k = 0; k != HP_NUM_WINDOWS; ++k)
        hp_hist_window_merge(&m->win[k], w, hp__windows[k], now_s);
}

static void hp__merge_route(hp_merged_route_t *m, hp_route_probe_t *rp, int64_t now_s)
{
    m->count += hp__ld(&rp->count);
    m->inflight += atomic_load_explicit(&rp->inflight, memory_order_relaxed);
    for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
        m->by_class[c] += hp__ld(&rp->by_class[c]);
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
        m->stage_ns[s] += hp__ld(&rp->stage_ns[s]);
    int64_t cur = now_s / HP_HIST_SLOT_SECONDS;
    for (size_t k = 0; k != HP_NUM_WINDOWS; ++k) {
        int64_t back = (hp__windows[k] + HP_HIST_SLOT_SECONDS - 1) / HP_HIST_SLOT_SECONDS;
        for (size_t i = 0; i != HP_HIST_SLOTS; ++i) {
            int64_t e = atomic_load_explicit(&rp->slot_epoch[i], memory_order_acquire);
            if (e < 0 || e > cur || e < cur - back)
                continue;
            for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
                m->win_by_class[k][c] += hp__ld(&rp->slot_by_class[i][c]);
            for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
                m->win_stage_ns[k][s] += hp__ld(&rp->slot_stage_ns[i][s]);
        }
    }
    hp__merge_window(&m->latency, &rp->latency, now_s);
}

/* @return a merged copy of every worker's probes (malloc'd; the caller frees it) */
static void hp__merge_into(hp_merged_t *m);

static hp_merged_t *hp__merge_all(void)
{
    hp_merged_t *m = calloc(1, sizeof(*m));
    if (m != NULL)
        hp__merge_into(m);
    return m;
}

/* Merges every worker's probes into m, which must be zeroed. */
static void hp__merge_into(hp_merged_t *m)
{
    m->now_s = hp_probe_now_s();
    hp_thread_t *workers = hp_server_workers(&m->num_workers);
    for (size_t t = 0; t != m->num_workers; ++t) {
        hp_thread_t *thr = &workers[t];
        hp_probes_t *p = thr->probes;
        if (p == NULL)
            continue;
        m->routes = thr->routes;
        m->num_routes = thr->num_routes < HP_PROBE_MAX_ROUTES ? thr->num_routes : HP_PROBE_MAX_ROUTES;
        for (size_t i = 0; i != m->num_routes; ++i)
            hp__merge_route(&m->route[i], &p->routes[i], m->now_s);
        hp__merge_route(&m->unrouted, &p->unrouted, m->now_s);
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            hp__merge_window(&m->stages[s], &p->stages[s], m->now_s);
        for (size_t i = 0; i != HP_PROBE_MAX_STMTS && i != hp_db_num_stmts(); ++i) {
            m->stmt[i].count += hp__ld(&p->stmts[i].count);
            m->stmt[i].errors += hp__ld(&p->stmts[i].errors);
            m->stmt[i].rows += hp__ld(&p->stmts[i].rows);
            hp__merge_window(&m->stmt[i].latency, &p->stmts[i].latency, m->now_s);
        }
        m->pool_in_use += atomic_load_explicit(&p->pool_in_use, memory_order_relaxed);
        m->pool_waiting += atomic_load_explicit(&p->pool_waiting, memory_order_relaxed);
        m->pool_acquired += hp__ld(&p->pool_acquired);
        m->pool_timeouts += hp__ld(&p->pool_timeouts);
        /* The size in effect: db_pool=small caps every thread's pool at one connection (common/db.c). */
        m->pool_size += hp_flag_get(HP_FLAG_db_pool) == HP_DB_POOL_SMALL ? 1 : (uint64_t)thr->db_pool_size;
        hp__merge_window(&m->pool_wait, &p->pool_wait, m->now_s);
        m->cache_hits += hp__ld(&p->cache_hits);
        m->cache_misses += hp__ld(&p->cache_misses);
        m->cache_errors += hp__ld(&p->cache_errors);
        m->cache_loads += hp__ld(&p->cache_loads);
        m->cache_coalesced += hp__ld(&p->cache_coalesced);
        m->cache_lease_waits += hp__ld(&p->cache_lease_waits);
        hp__merge_window(&m->cache_latency, &p->cache_latency, m->now_s);
        hp__merge_window(&m->loop_lag, &p->loop_lag, m->now_s);
        hp__merge_window(&m->payment_latency, &p->payment_latency, m->now_s);
        const hp_payment_stats_t *ps = hp_payment_stats(thr);
        if (ps != NULL) {
            m->pay_authorized += hp__ld((_Atomic uint64_t *)&ps->authorized);
            m->pay_declined += hp__ld((_Atomic uint64_t *)&ps->declined);
            m->pay_timed_out += hp__ld((_Atomic uint64_t *)&ps->timed_out);
            m->pay_voided += hp__ld((_Atomic uint64_t *)&ps->voided);
        }
        m->accepted += hp__ld(&p->accepted);
    }
}

/* ---- /debug/perf ---------------------------------------------------------------------------- */

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
    for (size_t k = 0; k != HP_NUM_WINDOWS; ++k) {
        char key[16];
        snprintf(key, sizeof(key), "%ds", hp__windows[k]);
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
    for (size_t k = 0; k != HP_NUM_WINDOWS; ++k) {
        char key[16];
        snprintf(key, sizeof(key), "%ds", hp__windows[k]);
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
                char ts_buf[40];
                time_t sec = (time_t)(ts / 1000000);
                struct tm tm;
                gmtime_r(&sec, &tm);
                strftime(ts_buf, sizeof(ts_buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
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
static const char *const hp__sections[] = {"server", "routes",  "stages", "statements", "pool",   "cache", "loop",
                                           "heap",   "process", "flags",  "slow",       "alerts", "pg"};

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

static json_t *hp__perf_doc(hp_req_t *r, const char *sel)
{
    hp_merged_t *m = hp__merge_all();
    json_t *doc = json_object();
    if (m == NULL)
        return doc;
    if (hp__want(sel, "server"))
        json_object_set_new(doc, "server",
                            json_pack("{ss sf sI sI sb s[ii] sI ss}", "name", "hotplate", "uptime_s",
                                      (double)(hp_wall_us() - hp__start_wall_us) / 1e6, "pid", (json_int_t)getpid(), "threads",
                                      (json_int_t)m->num_workers, "probes", HOTPLATE_PROBES, "windows_s", hp__windows[0],
                                      hp__windows[1], "slot_s", (json_int_t)HP_HIST_SLOT_SECONDS, "admin_thread",
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
        for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS; ++i)
            json_array_append_new(stmts,
                                  json_pack("{ss sI sI sI so}", "name", hp_db_stmt_name((int)i), "count",
                                            (json_int_t)m->stmt[i].count, "errors", (json_int_t)m->stmt[i].errors, "rows",
                                            (json_int_t)m->stmt[i].rows, "latency", hp__merged_hist_json(&m->stmt[i].latency)));
        json_object_set_new(doc, "statements", stmts);
    }
    if (hp__want(sel, "pool"))
        json_object_set_new(doc, "pool",
                            json_pack("{sI sI sI sI sI so}", "size", (json_int_t)m->pool_size, "in_use", (json_int_t)m->pool_in_use,
                                      "waiting", (json_int_t)m->pool_waiting, "acquired", (json_int_t)m->pool_acquired, "timeouts",
                                      (json_int_t)m->pool_timeouts, "wait", hp__merged_hist_json(&m->pool_wait)));
    if (hp__want(sel, "cache")) {
        uint64_t lookups = m->cache_hits + m->cache_misses + m->cache_errors;
        json_object_set_new(doc, "cache",
                            json_pack("{sI sI sI sf sI sI sI so}", "hits", (json_int_t)m->cache_hits, "misses",
                                      (json_int_t)m->cache_misses, "errors", (json_int_t)m->cache_errors, "hit_ratio",
                                      lookups != 0 ? (double)m->cache_hits / (double)lookups : 0.0, "loads",
                                      (json_int_t)m->cache_loads, "coalesced", (json_int_t)m->cache_coalesced, "lease_waits",
                                      (json_int_t)m->cache_lease_waits, "latency", hp__merged_hist_json(&m->cache_latency)));
    }
    if (hp__want(sel, "loop"))
        json_object_set_new(doc, "loop",
                            json_pack("{sI so so s{sI sI sI sI}}", "connections_accepted", (json_int_t)m->accepted, "lag",
                                      hp__merged_hist_json(&m->loop_lag), "payment_latency",
                                      hp__merged_hist_json(&m->payment_latency), "payments", "authorized",
                                      (json_int_t)m->pay_authorized, "declined", (json_int_t)m->pay_declined, "timed_out",
                                      (json_int_t)m->pay_timed_out, "voided", (json_int_t)m->pay_voided));
    if (hp__want(sel, "heap")) {
        hp_heap_stats_t hs;
        if (hp__heap_read(&hs) == 0) {
            json_t *growth = json_object();
            for (size_t k = 0; k != HP_NUM_WINDOWS; ++k) {
                char key[16];
                snprintf(key, sizeof(key), "%ds", hp__windows[k]);
                json_object_set_new(growth, key,
                                    json_pack("{sf sf}", "allocated_bytes_per_s",
                                              hp__heap_growth(hp__heap.allocated, hp__windows[k]), "resident_bytes_per_s",
                                              hp__heap_growth(hp__heap.resident, hp__windows[k])));
            }
            json_object_set_new(doc, "heap",
                                json_pack("{ss sI sI sI sI sI sI so}", "allocator", "jemalloc", "allocated",
                                          (json_int_t)hs.allocated, "active", (json_int_t)hs.active, "resident",
                                          (json_int_t)hs.resident, "mapped", (json_int_t)hs.mapped, "retained",
                                          (json_int_t)hs.retained, "metadata", (json_int_t)hs.metadata, "growth", growth));
        } else {
            json_object_set_new(doc, "heap", json_pack("{ss}", "allocator", "system (no jemalloc statistics in this build)"));
        }
    }
    if (hp__want(sel, "process")) {
        hp_proc_stats_t ps;
        hp__proc_read(&ps);
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
        hp_respond_error(r, 400, "bad_param", "section must be a comma-separated list of section names");
        return;
    }
    if (found > 0) {
        /* Every name must be a known section, so a typo is an error rather than an empty document. */
        char *copy = h2o_strdup(&r->h2o->pool, sel.base, sel.len).base, *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            size_t i;
            for (i = 0; i != sizeof(hp__sections) / sizeof(hp__sections[0]) && strcmp(tok, hp__sections[i]) != 0; ++i)
                ;
            if (i == sizeof(hp__sections) / sizeof(hp__sections[0])) {
                hp_respond_error(r, 400, "bad_param", hp_pool_printf(r, "unknown section %.40s", tok));
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

/* ---- the embedded alerts' samples ----------------------------------------------------------- */

/* CPUs this process may run on: its affinity mask, which taskset and cpusets narrow. */
static int hp__cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Executions slower than le_ns in a snapshot, counted as /metrics does: count minus the le bucket. */
static uint64_t hp__count_over(const hp_hist_snapshot_t *s, uint64_t le_ns)
{
    uint64_t under = 0;
    for (size_t b = 0; b + 1 < HP_HIST_BUCKETS && hp_hist_bucket_low(b + 1) - 1 <= le_ns; ++b)
        under += s->buckets[b];
    return s->count - under;
}

static double hp__per_s(uint64_t n, const hp_hist_snapshot_t *s, int window_s)
{
    return (double)n / (s->seconds > 0 ? s->seconds : (double)window_s);
}

/*
 * CPU seconds and RSS from /proc/self/stat with open(2) and read(2) into the
 * stack: the sampler runs every second, and unlike hp__proc_read() it neither
 * allocates (fopen, opendir) nor walks every task and descriptor.
 */
static void hp__proc_cpu_rss(double *cpu_s, double *rss_bytes)
{
    char buf[1024];
    *cpu_s = *rss_bytes = 0;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    long rss = 0;
    if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
                            &utime, &stime, &rss) == 3) {
        *cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
        *rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
    }
}

void hp_perf_alert_sample(hp_alert_sample_t *s)
{
    /* Only the admin thread samples; one merge buffer, zeroed each time, spares a large allocation a second. */
    static hp_merged_t *merged;
    memset(s, 0, sizeof(*s));
    s->at_s = hp_probe_now_s();
    s->cpus = hp__cpus();
    hp__proc_cpu_rss(&s->cpu_s, &s->rss_bytes);
    hp_heap_stats_t hs;
    s->heap_bytes = hp__heap_read(&hs) == 0 ? (double)hs.allocated : -1;
    hp_logs_spike_t sp;
    hp_logs_spike(&sp);
    s->error_rate_per_s = sp.rate_per_s;
    s->error_baseline_per_s = sp.baseline_per_s;
    if (merged == NULL && (merged = malloc(sizeof(*merged))) == NULL)
        return;
    hp_merged_t *m = merged;
    memset(m, 0, sizeof(*m));
    hp__merge_into(m);
    /* The rules' one-minute windows are the probes' 60 s windows. */
    const size_t w = 1;
    const int window_s = hp__windows[w];
    s->pool_in_use = (double)m->pool_in_use;
    s->pool_size = (double)m->pool_size;
    s->pool_timeouts = (double)m->pool_timeouts;
    s->cache_hits = (double)m->cache_hits;
    s->loop_lag_p99_s = m->loop_lag.win[w].count != 0 ? (double)hp_hist_quantile(&m->loop_lag.win[w], 0.99) / 1e9 : 0;
    for (size_t i = 0; i != m->num_routes; ++i) {
        const hp_hist_snapshot_t *lat = &m->route[i].latency.win[w];
        if (strcmp(m->routes[i].pattern, "/restaurants/{id}/menu") == 0 && strcmp(m->routes[i].method, "GET") == 0)
            s->menu_ok = (double)m->route[i].by_class[2];
        s->routes[s->num_routes].method = m->routes[i].method;
        s->routes[s->num_routes].pattern = m->routes[i].pattern;
        s->routes[s->num_routes].rate_per_s = hp__per_s(lat->count, lat, window_s);
        s->routes[s->num_routes].p99_s = lat->count != 0 ? (double)hp_hist_quantile(lat, 0.99) / 1e9 : 0;
        s->routes[s->num_routes].ratio_5xx = lat->count != 0 ? (double)m->route[i].win_by_class[w][5] / (double)lat->count : 0;
        ++s->num_routes;
    }
    for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS; ++i) {
        const hp_hist_snapshot_t *lat = &m->stmt[i].latency.win[w];
        s->stmts[s->num_stmts].name = hp_db_stmt_name((int)i);
        s->stmts[s->num_stmts].slow_per_s = hp__per_s(hp__count_over(lat, 100000000u), lat, window_s);
        ++s->num_stmts;
    }
}

/* ---- the doctor's snapshots (profiling/doctor.c) -------------------------------------------- */

/*
 * jemalloc's heap profiler stores each sampled small allocation in the
 * smallest large size class (16 KiB with 4 KiB pages), and counts all of it in
 * stats.allocated. While the doctor profiles the heap, every sampled object
 * that stays alive (an entry of a bounded list, say, until it is evicted) adds
 * 16 KiB, so a healthy heap seems to grow through the window by tens of KB/s
 * and falls back once those objects are freed. The doctor's trend leaves that
 * size class out; a real leak of 16 KiB objects is the price, and the heap
 * profile still shows it.
 */
double hp_perf_heap_allocated_trend(void)
{
    hp_heap_stats_t hs;
    if (hp__heap_read(&hs) != 0)
        return -1;
    size_t size = 0, live = 0, len = sizeof(size);
    char name[64];
    if (mallctl("arenas.lextent.0.size", &size, &len, NULL, 0) != 0)
        return (double)hs.allocated;
    len = sizeof(live);
    /* 4096 is MALLCTL_ARENAS_ALL, all arenas merged; the header is not included, as mallctl is weak here. */
    snprintf(name, sizeof(name), "stats.arenas.%u.lextents.0.curlextents", 4096u);
    if (mallctl(name, &live, &len, NULL, 0) != 0)
        return (double)hs.allocated;
    return (double)hs.allocated - (double)size * (double)live;
}

void hp_perf_doctor_sample(hp_doctor_snapshot_t *s)
{
    s->at_s = (double)hp_now_ns() / 1e9;
    hp_heap_stats_t hs;
    s->heap_bytes = hp__heap_read(&hs) == 0 ? (double)hs.allocated : -1;
    hp_merged_t *m = hp__merge_all();
    if (m == NULL)
        return;
    s->threads = m->num_workers;
    for (size_t i = 0; i != m->num_routes && s->num_routes != HP_DOCTOR_MAX_ROUTES; ++i) {
        hp_doctor_route_t *d = &s->routes[s->num_routes++];
        d->method = m->routes[i].method;
        d->pattern = m->routes[i].pattern;
        d->count = m->route[i].count;
        memcpy(d->by_class, m->route[i].by_class, sizeof(d->by_class));
        memcpy(d->stage_ns, m->route[i].stage_ns, sizeof(d->stage_ns));
        d->latency_ns = m->route[i].latency.total.sum_ns;
    }
    for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS && s->num_stmts != HP_DOCTOR_MAX_STMTS; ++i) {
        hp_doctor_stmt_t *d = &s->stmts[s->num_stmts++];
        d->name = hp_db_stmt_name((int)i);
        d->count = m->stmt[i].count;
        d->errors = m->stmt[i].errors;
        d->rows = m->stmt[i].rows;
        d->time_ns = m->stmt[i].latency.total.sum_ns;
    }
    s->pool_size = m->pool_size;
    s->pool_in_use = m->pool_in_use;
    s->pool_waiting = m->pool_waiting;
    s->pool_acquired = m->pool_acquired;
    s->pool_timeouts = m->pool_timeouts;
    s->pool_wait_count = m->pool_wait.total.count;
    s->pool_wait_ns = m->pool_wait.total.sum_ns;
    s->cache_hits = m->cache_hits;
    s->cache_misses = m->cache_misses;
    s->cache_errors = m->cache_errors;
    s->cache_loads = m->cache_loads;
    s->loop_lag_p99_ns = m->loop_lag.win[0].count != 0 ? hp_hist_quantile(&m->loop_lag.win[0], 0.99) : 0;
    free(m);
}

/* ---- /metrics ------------------------------------------------------------------------------- */

/* Bucket bounds in seconds: from 100 µs to 10 s, in 1-2.5-5 steps. */
static const double hp__le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* Writes one Prometheus histogram (le buckets from our log-linear buckets, then _sum and _count). */
static void hp__prom_hist(FILE *f, const char *name, const char *labels, const hp_hist_snapshot_t *s)
{
    uint64_t cum = 0;
    size_t b = 0;
    for (size_t k = 0; k != sizeof(hp__le) / sizeof(hp__le[0]); ++k) {
        uint64_t le_ns = (uint64_t)(hp__le[k] * 1e9);
        /* A bucket counts under `le` when all of it lies at or below the bound. */
        while (b + 1 < HP_HIST_BUCKETS && hp_hist_bucket_low(b + 1) - 1 <= le_ns)
            cum += s->buckets[b++];
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, labels[0] != '\0' ? "," : "", hp__le[k],
                (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, labels[0] != '\0' ? "," : "", (unsigned long long)s->count);
    fprintf(f, "%s_sum{%s} %.9f\n", name, labels, (double)s->sum_ns / 1e9);
    fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)s->count);
}

static void hp__metrics(hp_req_t *r)
{
    hp_merged_t *m = hp__merge_all();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (m == NULL || f == NULL) {
        free(m);
        if (f != NULL)
            fclose(f);
        free(text);
        hp_respond_error(r, 503, "out_of_memory", "cannot build the metrics");
        return;
    }
    char labels[256];
    static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

    fprintf(f, "# HELP hotplate_http_requests_total Requests answered, by route and status class.\n"
               "# TYPE hotplate_http_requests_total counter\n");
    for (size_t i = 0; i <= m->num_routes; ++i) {
        const hp_merged_route_t *mr = i < m->num_routes ? &m->route[i] : &m->unrouted;
        for (size_t c = 1; c != HP_PROBE_STATUS_CLASSES; ++c)
            fprintf(f, "hotplate_http_requests_total{method=\"%s\",route=\"%s\",code=\"%s\"} %llu\n",
                    i < m->num_routes ? m->routes[i].method : "*", i < m->num_routes ? m->routes[i].pattern : "(unrouted)",
                    classes[c], (unsigned long long)mr->by_class[c]);
    }
    fprintf(f, "# HELP hotplate_http_requests_in_flight Requests being handled now.\n"
               "# TYPE hotplate_http_requests_in_flight gauge\n");
    for (size_t i = 0; i != m->num_routes; ++i)
        fprintf(f, "hotplate_http_requests_in_flight{method=\"%s\",route=\"%s\"} %lld\n", m->routes[i].method, m->routes[i].pattern,
                (long long)m->route[i].inflight);
    fprintf(f, "# HELP hotplate_http_request_duration_seconds End-to-end request latency.\n"
               "# TYPE hotplate_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i != m->num_routes; ++i) {
        snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"", m->routes[i].method, m->routes[i].pattern);
        hp__prom_hist(f, "hotplate_http_request_duration_seconds", labels, &m->route[i].latency.total);
    }
    fprintf(f, "# HELP hotplate_route_stage_seconds_total Time requests of a route spent in each stage.\n"
               "# TYPE hotplate_route_stage_seconds_total counter\n");
    for (size_t i = 0; i != m->num_routes; ++i)
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            fprintf(f, "hotplate_route_stage_seconds_total{method=\"%s\",route=\"%s\",stage=\"%s\"} %.9f\n", m->routes[i].method,
                    m->routes[i].pattern, hp_stage_name((hp_stage_t)s), (double)m->route[i].stage_ns[s] / 1e9);
    fprintf(f, "# HELP hotplate_stage_duration_seconds Time one request spent in a stage.\n"
               "# TYPE hotplate_stage_duration_seconds histogram\n");
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s) {
        snprintf(labels, sizeof(labels), "stage=\"%s\"", hp_stage_name((hp_stage_t)s));
        hp__prom_hist(f, "hotplate_stage_duration_seconds", labels, &m->stages[s].total);
    }
    fprintf(f, "# HELP hotplate_db_statement_duration_seconds Latency of each named statement.\n"
               "# TYPE hotplate_db_statement_duration_seconds histogram\n");
    for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS; ++i) {
        snprintf(labels, sizeof(labels), "statement=\"%s\"", hp_db_stmt_name((int)i));
        hp__prom_hist(f, "hotplate_db_statement_duration_seconds", labels, &m->stmt[i].latency.total);
    }
    fprintf(f, "# HELP hotplate_db_statement_errors_total Statements that failed.\n"
               "# TYPE hotplate_db_statement_errors_total counter\n");
    for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS; ++i)
        fprintf(f, "hotplate_db_statement_errors_total{statement=\"%s\"} %llu\n", hp_db_stmt_name((int)i),
                (unsigned long long)m->stmt[i].errors);
    fprintf(f, "# HELP hotplate_db_statement_rows_total Rows returned or affected.\n"
               "# TYPE hotplate_db_statement_rows_total counter\n");
    for (size_t i = 0; i != hp_db_num_stmts() && i != HP_PROBE_MAX_STMTS; ++i)
        fprintf(f, "hotplate_db_statement_rows_total{statement=\"%s\"} %llu\n", hp_db_stmt_name((int)i),
                (unsigned long long)m->stmt[i].rows);
    fprintf(f,
            "# HELP hotplate_db_pool_connections Transaction connections, all threads.\n"
            "# TYPE hotplate_db_pool_connections gauge\nhotplate_db_pool_connections %llu\n"
            "# HELP hotplate_db_pool_in_use Transaction connections held now.\n"
            "# TYPE hotplate_db_pool_in_use gauge\nhotplate_db_pool_in_use %lld\n"
            "# HELP hotplate_db_pool_waiting Requests waiting for a transaction connection.\n"
            "# TYPE hotplate_db_pool_waiting gauge\nhotplate_db_pool_waiting %lld\n"
            "# HELP hotplate_db_pool_timeouts_total Waits for a connection that gave up.\n"
            "# TYPE hotplate_db_pool_timeouts_total counter\nhotplate_db_pool_timeouts_total %llu\n"
            "# HELP hotplate_db_pool_wait_seconds Time spent waiting for a transaction connection.\n"
            "# TYPE hotplate_db_pool_wait_seconds histogram\n",
            (unsigned long long)m->pool_size, (long long)m->pool_in_use, (long long)m->pool_waiting,
            (unsigned long long)m->pool_timeouts);
    hp__prom_hist(f, "hotplate_db_pool_wait_seconds", "", &m->pool_wait.total);
    fprintf(f,
            "# HELP hotplate_cache_lookups_total Menu cache lookups by result.\n"
            "# TYPE hotplate_cache_lookups_total counter\n"
            "hotplate_cache_lookups_total{result=\"hit\"} %llu\nhotplate_cache_lookups_total{result=\"miss\"} %llu\n"
            "hotplate_cache_lookups_total{result=\"error\"} %llu\n"
            "# HELP hotplate_cache_loads_total Menus loaded from PostgreSQL by the menu read path.\n"
            "# TYPE hotplate_cache_loads_total counter\nhotplate_cache_loads_total %llu\n"
            "# HELP hotplate_cache_coalesced_total Menu reads answered with another request's load on the same thread.\n"
            "# TYPE hotplate_cache_coalesced_total counter\nhotplate_cache_coalesced_total %llu\n"
            "# HELP hotplate_cache_lease_waits_total Menu loads that found the Redis lease taken and polled for its result.\n"
            "# TYPE hotplate_cache_lease_waits_total counter\nhotplate_cache_lease_waits_total %llu\n"
            "# HELP hotplate_cache_command_duration_seconds Latency of Redis commands.\n"
            "# TYPE hotplate_cache_command_duration_seconds histogram\n",
            (unsigned long long)m->cache_hits, (unsigned long long)m->cache_misses, (unsigned long long)m->cache_errors,
            (unsigned long long)m->cache_loads, (unsigned long long)m->cache_coalesced, (unsigned long long)m->cache_lease_waits);
    hp__prom_hist(f, "hotplate_cache_command_duration_seconds", "", &m->cache_latency.total);
    fprintf(f, "# HELP hotplate_event_loop_lag_seconds How late the loops' 100 ms timer fires.\n"
               "# TYPE hotplate_event_loop_lag_seconds histogram\n");
    hp__prom_hist(f, "hotplate_event_loop_lag_seconds", "", &m->loop_lag.total);
    fprintf(f, "# HELP hotplate_payment_duration_seconds Latency of the payment gateway simulator.\n"
               "# TYPE hotplate_payment_duration_seconds histogram\n");
    hp__prom_hist(f, "hotplate_payment_duration_seconds", "", &m->payment_latency.total);
    fprintf(f,
            "# HELP hotplate_payment_authorizations_total Authorizations the payment gateway simulator answered, by result.\n"
            "# TYPE hotplate_payment_authorizations_total counter\n"
            "hotplate_payment_authorizations_total{result=\"authorized\"} %llu\n"
            "hotplate_payment_authorizations_total{result=\"declined\"} %llu\n"
            "# HELP hotplate_payment_timeouts_total Authorizations the caller stopped waiting for.\n"
            "# TYPE hotplate_payment_timeouts_total counter\nhotplate_payment_timeouts_total %llu\n"
            "# HELP hotplate_payment_voids_total Authorizations voided because no order owns them.\n"
            "# TYPE hotplate_payment_voids_total counter\nhotplate_payment_voids_total %llu\n",
            (unsigned long long)m->pay_authorized, (unsigned long long)m->pay_declined, (unsigned long long)m->pay_timed_out,
            (unsigned long long)m->pay_voided);
    fprintf(f,
            "# HELP hotplate_connections_accepted_total Client connections accepted.\n"
            "# TYPE hotplate_connections_accepted_total counter\nhotplate_connections_accepted_total %llu\n",
            (unsigned long long)m->accepted);
    hp_heap_stats_t hs;
    if (hp__heap_read(&hs) == 0) {
        const struct {
            const char *name;
            uint64_t v;
        } heap[] = {{"allocated", hs.allocated}, {"active", hs.active},     {"resident", hs.resident},
                    {"mapped", hs.mapped},       {"retained", hs.retained}, {"metadata", hs.metadata}};
        for (size_t i = 0; i != sizeof(heap) / sizeof(heap[0]); ++i)
            fprintf(f,
                    "# HELP hotplate_heap_%s_bytes jemalloc stats.%s.\n# TYPE hotplate_heap_%s_bytes gauge\nhotplate_heap_%s_bytes "
                    "%llu\n",
                    heap[i].name, heap[i].name, heap[i].name, heap[i].name, (unsigned long long)heap[i].v);
    }
    hp_proc_stats_t ps;
    hp__proc_read(&ps);
    fprintf(f,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
            "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\nprocess_open_fds %llu\n"
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n"
            "# HELP process_threads Number of OS threads in the process.\n"
            "# TYPE process_threads gauge\nprocess_threads %llu\n",
            ps.cpu_user_s + ps.cpu_system_s, (unsigned long long)ps.rss_bytes, (unsigned long long)ps.vsize_bytes,
            (unsigned long long)ps.fds, (unsigned long long)ps.max_fds, ps.start_time_s, (unsigned long long)ps.threads);
    fprintf(f,
            "# HELP hotplate_cpus CPUs the process may run on (its affinity mask), the denominator of HotplateCpuHigh.\n"
            "# TYPE hotplate_cpus gauge\nhotplate_cpus %d\n",
            hp__cpus());
    hp_logs_metrics(f);
    hp_alerts_metrics(f);
    fclose(f);
    free(m);
    h2o_iovec_t body = h2o_strdup(&r->h2o->pool, text, len);
    free(text);
    hp_add_header(r, "content-type", "text/plain; version=0.0.4; charset=utf-8");
    hp_respond_raw(r, 200, body);
}

const hp_route_t hp_perf_routes[] = {
    {"GET", "/debug/perf", hp__perf},
    {"GET", "/metrics", hp__metrics},
};
const size_t hp_perf_num_routes = sizeof(hp_perf_routes) / sizeof(hp_perf_routes[0]);
