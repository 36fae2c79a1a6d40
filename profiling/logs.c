/*
 * logs: counters, rings and spikes of the log lines (see logs.h).
 */
#include "profiling/logs.h"
#include "base/clock.h"
#include "base/timefmt.h"
#include "runtime/http.h"
#include "runtime/params.h"
#include "runtime/server.h"
#include "profiling/merge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HP_LOGS_LEVELS 4
#define HP_LOGS_SLOTS 320 /* one per second: the spike's 300 s plus slack for the slot being written */
#define HP_LOGS_ERROR_RING 32
#define HP_LOGS_TIMEOUT_RING 16

static const int hp__logs_windows[] = {10, 60, 300};
#define HP_LOGS_NUM_WINDOWS (sizeof(hp__logs_windows) / sizeof(hp__logs_windows[0]))

/* One second's counts, or (in hp__logs.total) the counts since start. Answers per route are the probes' (runtime/probes.h). */
typedef struct st_hp_logs_counts_t {
    _Atomic uint64_t level[HP_LOGS_LEVELS];
    _Atomic uint64_t code[HP_E__COUNT]; /* answers by error code (base/errors.h) */
    _Atomic uint64_t timeouts;
} hp_logs_counts_t;

typedef struct st_hp_logs_slot_t {
    _Atomic int64_t second; /* the second counted here; -1 while being reset, 0 when never used */
    hp_logs_counts_t c;
} hp_logs_slot_t;

/* One remembered line: copies, since the strings it came with belong to a request pool. */
typedef struct st_hp_logs_entry_t {
    uint64_t ts_us;
    int status; /* 0 for an event line */
    char method[8], route[64], code[32], request_id[HP_REQUEST_ID_MAX + 1], trace_id[33], text[160];
} hp_logs_entry_t;

typedef struct st_hp_logs_ring_t {
    hp_logs_entry_t e[HP_LOGS_ERROR_RING];
    size_t cap, next, count;
} hp_logs_ring_t;

static struct {
    hp_logs_counts_t total;
    hp_logs_slot_t slots[HP_LOGS_SLOTS];
    pthread_mutex_t rings;
    hp_logs_ring_t errors, timeouts;
} hp__logs = {.rings = PTHREAD_MUTEX_INITIALIZER, .errors = {.cap = HP_LOGS_ERROR_RING}, .timeouts = {.cap = HP_LOGS_TIMEOUT_RING}};

static int64_t hp__logs_now_s(void)
{
    return (int64_t)(hp_now_ns() / 1000000000u) + 1; /* + 1: second 0 would look like a never-used slot */
}

static void hp__add(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/*
 * The slot of second `now`, reset first if it still holds an older second.
 * The thread that wins the reset zeroes it; a thread that arrives during the
 * reset gets NULL and its line goes uncounted in the windows (it is still
 * counted in the totals), which loses at most a few lines at a second's start.
 */
static hp_logs_counts_t *hp__slot(int64_t now)
{
    hp_logs_slot_t *s = &hp__logs.slots[now % HP_LOGS_SLOTS];
    int64_t sec = atomic_load_explicit(&s->second, memory_order_acquire);
    if (sec == now)
        return &s->c;
    if (sec < 0 || sec > now || !atomic_compare_exchange_strong(&s->second, &sec, -1))
        return NULL;
    for (size_t i = 0; i != sizeof(s->c) / sizeof(_Atomic uint64_t); ++i)
        atomic_store_explicit((_Atomic uint64_t *)&s->c + i, 0, memory_order_relaxed);
    atomic_store_explicit(&s->second, now, memory_order_release);
    return &s->c;
}

static void hp__copy(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

static void hp__ring_push(hp_logs_ring_t *ring, const hp_logs_entry_t *e)
{
    ring->e[ring->next] = *e;
    ring->next = (ring->next + 1) % ring->cap;
    if (ring->count < ring->cap)
        ++ring->count;
}

void hp_logs_note_request(const hp_log_request_t *r, hp_log_level_t level)
{
    /* The request's end, which the HTTP seam read for its duration, spares a clock read per request. */
    hp_logs_counts_t *slot = hp__slot(r->end_ns != 0 ? (int64_t)(r->end_ns / 1000000000u) + 1 : hp__logs_now_s());
    int code = r->error >= 0 && r->error < HP_E__COUNT ? r->error : -1;
    int timeout = code >= 0 && hp_error_def((hp_error_t)code)->is_timeout;
    hp_logs_counts_t *cs[] = {&hp__logs.total, slot};
    for (size_t k = 0; k != 2; ++k) {
        if (cs[k] == NULL)
            continue;
        hp__add(&cs[k]->level[level]);
        if (code >= 0)
            hp__add(&cs[k]->code[code]);
        if (timeout)
            hp__add(&cs[k]->timeouts);
    }
    if (level < HP_LOG_ERROR && !timeout)
        return;
    hp_logs_entry_t e = {.ts_us = hp_wall_us(), .status = r->status};
    hp__copy(e.method, sizeof(e.method), r->method);
    hp__copy(e.route, sizeof(e.route), r->route);
    hp__copy(e.code, sizeof(e.code), code >= 0 ? hp_errors[code].code : NULL);
    hp__copy(e.request_id, sizeof(e.request_id), r->request_id);
    hp__copy(e.trace_id, sizeof(e.trace_id), r->trace_id);
    hp__copy(e.text, sizeof(e.text), r->error_reason);
    pthread_mutex_lock(&hp__logs.rings);
    if (level >= HP_LOG_ERROR)
        hp__ring_push(&hp__logs.errors, &e);
    if (timeout)
        hp__ring_push(&hp__logs.timeouts, &e);
    pthread_mutex_unlock(&hp__logs.rings);
}

void hp_logs_note_event(hp_log_level_t level, const char *msg)
{
    hp_logs_counts_t *slot = hp__slot(hp__logs_now_s());
    hp__add(&hp__logs.total.level[level]);
    if (slot != NULL)
        hp__add(&slot->level[level]);
    if (level < HP_LOG_ERROR)
        return;
    hp_logs_entry_t e = {.ts_us = hp_wall_us()};
    hp__copy(e.text, sizeof(e.text), msg);
    pthread_mutex_lock(&hp__logs.rings);
    hp__ring_push(&hp__logs.errors, &e);
    pthread_mutex_unlock(&hp__logs.rings);
}

/* ---- reading ---------------------------------------------------------------------------------- */

static uint64_t hp__ld(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/*
 * Sums the slots of the seconds in (now - from_ago, now - to_ago], into out (plain numbers).
 * A slot being reset or holding a second outside the range is skipped.
 */
typedef struct st_hp_logs_sum_t {
    uint64_t level[HP_LOGS_LEVELS], code[HP_E__COUNT], timeouts;
} hp_logs_sum_t;

static void hp__sum_counts(hp_logs_sum_t *out, const hp_logs_counts_t *c)
{
    for (size_t i = 0; i != HP_LOGS_LEVELS; ++i)
        out->level[i] += hp__ld(&c->level[i]);
    for (size_t i = 0; i != HP_E__COUNT; ++i)
        out->code[i] += hp__ld(&c->code[i]);
    out->timeouts += hp__ld(&c->timeouts);
}

static void hp__sum_range(hp_logs_sum_t *out, int64_t now, int from_ago, int to_ago)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i != HP_LOGS_SLOTS; ++i) {
        const hp_logs_slot_t *s = &hp__logs.slots[i];
        int64_t sec = atomic_load_explicit((_Atomic int64_t *)&s->second, memory_order_acquire);
        if (sec <= 0 || sec > now - to_ago || sec <= now - from_ago)
            continue;
        hp__sum_counts(out, &s->c);
    }
}

/* Error lines in the seconds (now - from_ago, now - to_ago]. */
static uint64_t hp__errors_between(int64_t now, int from_ago, int to_ago)
{
    uint64_t n = 0;
    for (size_t i = 0; i != HP_LOGS_SLOTS; ++i) {
        const hp_logs_slot_t *s = &hp__logs.slots[i];
        int64_t sec = atomic_load_explicit((_Atomic int64_t *)&s->second, memory_order_acquire);
        if (sec > 0 && sec <= now - to_ago && sec > now - from_ago)
            n += hp__ld(&s->c.level[HP_LOG_ERROR]);
    }
    return n;
}

void hp_logs_spike(hp_logs_spike_t *out)
{
    int64_t now = hp__logs_now_s();
    /* Whole seconds only: the current one is still filling. */
    uint64_t recent = hp__errors_between(now, HP_LOGS_SPIKE_WINDOW_S + 1, 1);
    uint64_t before = hp__errors_between(now, HP_LOGS_SPIKE_WINDOW_S + HP_LOGS_SPIKE_BASELINE_S + 1, HP_LOGS_SPIKE_WINDOW_S + 1);
    out->rate_per_s = (double)recent / HP_LOGS_SPIKE_WINDOW_S;
    out->baseline_per_s = (double)before / HP_LOGS_SPIKE_BASELINE_S;
    out->spike = out->rate_per_s >= HP_LOGS_SPIKE_MIN_RATE && out->rate_per_s >= HP_LOGS_SPIKE_FACTOR * out->baseline_per_s;
}

static json_t *hp__levels_json(const uint64_t *level)
{
    json_t *o = json_object();
    for (int i = 0; i != HP_LOGS_LEVELS; ++i)
        json_object_set_new(o, hp_log_level_name((hp_log_level_t)i), json_integer((json_int_t)level[i]));
    return o;
}

static json_t *hp__codes_json(const uint64_t *code)
{
    json_t *o = json_object();
    for (size_t i = 0; i != HP_E__COUNT; ++i)
        if (code[i] != 0)
            json_object_set_new(o, hp_errors[i].code, json_integer((json_int_t)code[i]));
    return o;
}

/*
 * One route's answers over the windows and since start, from the probes:
 * lines are its answers, errors those with an error code (4xx and 5xx).
 */
static void hp__route_add(json_t *o, const hp_merged_route_t *m, char keys[][16])
{
    for (size_t k = 0; k <= HP_STATS_COUNT_WINDOWS; ++k) {
        const uint64_t *cls = k < HP_STATS_COUNT_WINDOWS ? m->win_by_class[k] : m->by_class;
        uint64_t lines = 0;
        for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
            lines += cls[c];
        json_t *w = json_object_get(o, keys[k]);
        json_int_t had_lines = json_integer_value(json_object_get(w, "lines")),
                   had_errors = json_integer_value(json_object_get(w, "errors"));
        json_object_set_new(
            o, keys[k],
            json_pack("{sI sI}", "lines", had_lines + (json_int_t)lines, "errors", had_errors + (json_int_t)(cls[4] + cls[5])));
    }
}

/*
 * Every route's answers: the API's merged over the workers, then the admin
 * listener's. The view counts by method and pattern, as a reader of the log
 * lines would, so a pattern both listeners serve (GET /healthz) is one entry.
 */
static json_t *hp__routes_json(char keys[][16])
{
    json_t *list = json_array();
    hp_stats_t *m = hp_stats_merge_new();
    hp_merged_route_t *one = malloc(sizeof(*one));
    if (m == NULL || one == NULL) {
        free(m);
        free(one);
        return list;
    }
    for (size_t i = 0; i <= m->num_routes; ++i) {
        const hp_route_t *rt = i < m->num_routes ? &m->routes[i] : NULL;
        json_t *o = json_pack("{ss ss}", "method", rt != NULL ? rt->method : "*", "route", rt != NULL ? rt->pattern : "(unrouted)");
        hp__route_add(o, i < m->num_routes ? &m->route[i] : &m->unrouted, keys);
        json_array_append_new(list, o);
    }
    hp_thread_t *admin = hp_server_admin_thread();
    if (admin != NULL && admin->probes != NULL) {
        size_t n = admin->num_routes < HP_PROBE_MAX_ROUTES ? admin->num_routes : HP_PROBE_MAX_ROUTES;
        for (size_t i = 0; i != n; ++i) {
            memset(one, 0, sizeof(*one));
            hp_stats_merge_route(one, &admin->probes->routes[i], m->now_s);
            const hp_route_t *rt = &admin->routes[i];
            json_t *o = NULL, *e;
            size_t k;
            json_array_foreach(list, k, e) if (strcmp(json_string_value(json_object_get(e, "method")), rt->method) == 0 &&
                                               strcmp(json_string_value(json_object_get(e, "route")), rt->pattern) == 0) o = e;
            if (o == NULL) {
                o = json_pack("{ss ss}", "method", rt->method, "route", rt->pattern);
                json_array_append_new(list, o);
            }
            hp__route_add(o, one, keys);
        }
    }
    free(one);
    free(m);
    return list;
}

static json_t *hp__ring_json(const hp_logs_ring_t *ring, size_t limit)
{
    json_t *list = json_array();
    for (size_t k = 0; k != ring->count && k != limit; ++k) {
        const hp_logs_entry_t *e = &ring->e[(ring->next + ring->cap - 1 - k) % ring->cap];
        char ts[HP_TIME_RFC3339_MAX];
        hp_time_rfc3339(ts, sizeof(ts), e->ts_us, 6);
        json_t *o = json_pack("{ss}", "ts", ts);
        if (e->status != 0) {
            json_object_set_new(o, "kind", json_string("request"));
            json_object_set_new(o, "method", json_string(e->method));
            json_object_set_new(o, "route", json_string(e->route));
            json_object_set_new(o, "status", json_integer(e->status));
            json_object_set_new(o, "error", e->code[0] != '\0' ? json_string(e->code) : json_null());
            json_object_set_new(o, "request_id", json_string(e->request_id));
            json_object_set_new(o, "trace_id", e->trace_id[0] != '\0' ? json_string(e->trace_id) : json_null());
            json_object_set_new(o, "reason", e->text[0] != '\0' ? json_string(e->text) : json_null());
        } else {
            json_object_set_new(o, "kind", json_string("event"));
            json_object_set_new(o, "msg", json_string(e->text));
        }
        json_array_append_new(list, o);
    }
    return list;
}

static void hp__logs_get(hp_req_t *r)
{
    int limit;
    if (hp_param_limit(r, 10, HP_LOGS_ERROR_RING, &limit) != 0)
        return;
    int64_t now = hp__logs_now_s();
    hp_logs_sum_t *sums = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(hp_logs_sum_t) * (HP_LOGS_NUM_WINDOWS + 1));
    char keys[HP_LOGS_NUM_WINDOWS + 1][16];
    for (size_t k = 0; k != HP_LOGS_NUM_WINDOWS; ++k) {
        /* The last `window` whole seconds plus the current, partial one. */
        hp__sum_range(&sums[k], now, hp__logs_windows[k] + 1, 0);
        snprintf(keys[k], sizeof(keys[k]), "%ds", hp__logs_windows[k]);
    }
    memset(&sums[HP_LOGS_NUM_WINDOWS], 0, sizeof(sums[0]));
    hp__sum_counts(&sums[HP_LOGS_NUM_WINDOWS], &hp__logs.total);
    strcpy(keys[HP_LOGS_NUM_WINDOWS], "total");

    json_t *levels = json_object(), *codes = json_object(), *timeouts = json_object(), *routes = hp__routes_json(keys);
    for (size_t k = 0; k <= HP_LOGS_NUM_WINDOWS; ++k) {
        json_object_set_new(levels, keys[k], hp__levels_json(sums[k].level));
        json_object_set_new(codes, keys[k], hp__codes_json(sums[k].code));
        json_object_set_new(timeouts, keys[k], json_integer((json_int_t)sums[k].timeouts));
    }
    hp_logs_spike_t sp;
    hp_logs_spike(&sp);
    pthread_mutex_lock(&hp__logs.rings);
    json_t *last_errors = hp__ring_json(&hp__logs.errors, (size_t)limit),
           *last_timeouts = hp__ring_json(&hp__logs.timeouts, (size_t)limit);
    pthread_mutex_unlock(&hp__logs.rings);
    json_object_set_new(timeouts, "last", last_timeouts);
    json_t *doc =
        json_pack("{s[iii] so so so so so s{si si sf sf sf sf sb}}", "windows_s", hp__logs_windows[0], hp__logs_windows[1],
                  hp__logs_windows[2], "levels", levels, "routes", routes, "error_codes", codes, "timeouts", timeouts,
                  "last_errors", last_errors, "spike", "window_s", HP_LOGS_SPIKE_WINDOW_S, "baseline_s", HP_LOGS_SPIKE_BASELINE_S,
                  "rate_per_s", sp.rate_per_s, "baseline_per_s", sp.baseline_per_s, "min_rate_per_s", HP_LOGS_SPIKE_MIN_RATE,
                  "factor", HP_LOGS_SPIKE_FACTOR, "spike", sp.spike);
    const char *path;
    uint64_t bytes, rotations;
    if (hp_log_file_info(&path, &bytes, &rotations))
        json_object_set_new(doc, "file",
                            json_pack("{ss sI sI}", "path", path, "bytes", (json_int_t)bytes, "rotations", (json_int_t)rotations));
    else
        json_object_set_new(doc, "file", json_null());
    hp_respond_json(r, 200, doc);
}

void hp_logs_metrics(FILE *f)
{
    hp_logs_sum_t total = {0};
    hp__sum_counts(&total, &hp__logs.total);
    fprintf(f, "# HELP hotplate_log_lines_total Log lines by level, counted whether or not the level filter printed them.\n"
               "# TYPE hotplate_log_lines_total counter\n");
    for (int i = 0; i != HP_LOGS_LEVELS; ++i)
        fprintf(f, "hotplate_log_lines_total{level=\"%s\"} %llu\n", hp_log_level_name((hp_log_level_t)i),
                (unsigned long long)total.level[i]);
    fprintf(f, "# HELP hotplate_log_error_codes_total Answers by JSON error code.\n"
               "# TYPE hotplate_log_error_codes_total counter\n");
    for (size_t i = 0; i != HP_E__COUNT; ++i)
        if (total.code[i] != 0)
            fprintf(f, "hotplate_log_error_codes_total{code=\"%s\"} %llu\n", hp_errors[i].code, (unsigned long long)total.code[i]);
    fprintf(f,
            "# HELP hotplate_log_timeouts_total Answers with a timeout error code.\n"
            "# TYPE hotplate_log_timeouts_total counter\nhotplate_log_timeouts_total %llu\n",
            (unsigned long long)total.timeouts);
    hp_logs_spike_t sp;
    hp_logs_spike(&sp);
    fprintf(f,
            "# HELP hotplate_log_error_spike 1 while error lines spike against their baseline (see /debug/logs).\n"
            "# TYPE hotplate_log_error_spike gauge\nhotplate_log_error_spike %d\n",
            sp.spike);
}

const hp_log_observer_t hp_logs_observer = {hp_logs_note_request, hp_logs_note_event};

const hp_route_t hp_logs_routes[] = {
    {"GET", "/debug/logs", hp__logs_get, 0},
};
const size_t hp_logs_num_routes = sizeof(hp_logs_routes) / sizeof(hp_logs_routes[0]);
