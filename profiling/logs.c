/*
 * logs: counters, rings and spikes of the log lines (see logs.h).
 */
#include "profiling/logs.h"
#include "common/clock.h"
#include "common/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HP_LOGS_LEVELS 4
#define HP_LOGS_MAX_ROUTES 48
#define HP_LOGS_MAX_CODES 48
#define HP_LOGS_SLOTS 320 /* one per second: the spike's 300 s plus slack for the slot being written */
#define HP_LOGS_ERROR_RING 32
#define HP_LOGS_TIMEOUT_RING 16

static const int hp__logs_windows[] = {10, 60, 300};
#define HP_LOGS_NUM_WINDOWS (sizeof(hp__logs_windows) / sizeof(hp__logs_windows[0]))

/* One second's counts, or (in hp__logs.total) the counts since start. */
typedef struct st_hp_logs_counts_t {
    _Atomic uint64_t level[HP_LOGS_LEVELS];
    _Atomic uint64_t route_lines[HP_LOGS_MAX_ROUTES], route_errors[HP_LOGS_MAX_ROUTES];
    _Atomic uint64_t code[HP_LOGS_MAX_CODES];
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
    /* Interned keys: written under `intern` once each, then published by the release store of the count. */
    pthread_mutex_t intern;
    struct {
        const char *method_ptr, *pattern_ptr; /* the pointers first seen, for the common fast path */
        char method[8], pattern[64];
    } routes[HP_LOGS_MAX_ROUTES];
    _Atomic size_t num_routes;
    struct {
        const char *ptr;
        char code[32];
    } codes[HP_LOGS_MAX_CODES];
    _Atomic size_t num_codes;
    hp_logs_counts_t total;
    hp_logs_slot_t slots[HP_LOGS_SLOTS];
    pthread_mutex_t rings;
    hp_logs_ring_t errors, timeouts;
} hp__logs = {.intern = PTHREAD_MUTEX_INITIALIZER,
              .rings = PTHREAD_MUTEX_INITIALIZER,
              .errors = {.cap = HP_LOGS_ERROR_RING},
              .timeouts = {.cap = HP_LOGS_TIMEOUT_RING}};

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

/* @return the route's index, interning it on first sight, or -1 when the table is full */
static int hp__route_index(const char *method, const char *pattern)
{
    size_t n = atomic_load_explicit(&hp__logs.num_routes, memory_order_acquire);
    for (size_t i = 0; i != n; ++i)
        if (hp__logs.routes[i].pattern_ptr == pattern && hp__logs.routes[i].method_ptr == method)
            return (int)i;
    for (size_t i = 0; i != n; ++i)
        if (strcmp(hp__logs.routes[i].pattern, pattern) == 0 && strcmp(hp__logs.routes[i].method, method) == 0)
            return (int)i;
    int idx = -1;
    pthread_mutex_lock(&hp__logs.intern);
    n = atomic_load_explicit(&hp__logs.num_routes, memory_order_relaxed);
    for (size_t i = 0; i != n && idx < 0; ++i)
        if (strcmp(hp__logs.routes[i].pattern, pattern) == 0 && strcmp(hp__logs.routes[i].method, method) == 0)
            idx = (int)i;
    if (idx < 0 && n != HP_LOGS_MAX_ROUTES) {
        hp__copy(hp__logs.routes[n].method, sizeof(hp__logs.routes[n].method), method);
        hp__copy(hp__logs.routes[n].pattern, sizeof(hp__logs.routes[n].pattern), pattern);
        /* Only a static route pattern's pointer is stable; the unrouted method may come from a request pool. */
        hp__logs.routes[n].pattern_ptr = pattern;
        hp__logs.routes[n].method_ptr = method;
        atomic_store_explicit(&hp__logs.num_routes, n + 1, memory_order_release);
        idx = (int)n;
    }
    pthread_mutex_unlock(&hp__logs.intern);
    return idx;
}

/* @return the error code's index, interning it on first sight, or -1 when the table is full */
static int hp__code_index(const char *code)
{
    size_t n = atomic_load_explicit(&hp__logs.num_codes, memory_order_acquire);
    for (size_t i = 0; i != n; ++i)
        if (hp__logs.codes[i].ptr == code || strcmp(hp__logs.codes[i].code, code) == 0)
            return (int)i;
    int idx = -1;
    pthread_mutex_lock(&hp__logs.intern);
    n = atomic_load_explicit(&hp__logs.num_codes, memory_order_relaxed);
    for (size_t i = 0; i != n && idx < 0; ++i)
        if (strcmp(hp__logs.codes[i].code, code) == 0)
            idx = (int)i;
    if (idx < 0 && n != HP_LOGS_MAX_CODES) {
        hp__copy(hp__logs.codes[n].code, sizeof(hp__logs.codes[n].code), code);
        hp__logs.codes[n].ptr = code;
        atomic_store_explicit(&hp__logs.num_codes, n + 1, memory_order_release);
        idx = (int)n;
    }
    pthread_mutex_unlock(&hp__logs.intern);
    return idx;
}

/* Timeouts: the error codes of every deadline the server enforces (common/http.c). */
static int hp__is_timeout(const char *code)
{
    return code != NULL && (strstr(code, "timeout") != NULL || strcmp(code, "pool_exhausted") == 0);
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
    hp_logs_counts_t *slot = hp__slot(hp__logs_now_s());
    int route = hp__route_index(r->method != NULL ? r->method : "-", r->route != NULL ? r->route : "-");
    int code = r->error_code != NULL ? hp__code_index(r->error_code) : -1;
    int timeout = hp__is_timeout(r->error_code);
    hp_logs_counts_t *cs[] = {&hp__logs.total, slot};
    for (size_t k = 0; k != 2; ++k) {
        if (cs[k] == NULL)
            continue;
        hp__add(&cs[k]->level[level]);
        if (route >= 0) {
            hp__add(&cs[k]->route_lines[route]);
            if (r->error_code != NULL)
                hp__add(&cs[k]->route_errors[route]);
        }
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
    hp__copy(e.code, sizeof(e.code), r->error_code);
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
    uint64_t level[HP_LOGS_LEVELS], route_lines[HP_LOGS_MAX_ROUTES], route_errors[HP_LOGS_MAX_ROUTES], code[HP_LOGS_MAX_CODES],
        timeouts;
} hp_logs_sum_t;

static void hp__sum_counts(hp_logs_sum_t *out, const hp_logs_counts_t *c)
{
    for (size_t i = 0; i != HP_LOGS_LEVELS; ++i)
        out->level[i] += hp__ld(&c->level[i]);
    for (size_t i = 0; i != HP_LOGS_MAX_ROUTES; ++i) {
        out->route_lines[i] += hp__ld(&c->route_lines[i]);
        out->route_errors[i] += hp__ld(&c->route_errors[i]);
    }
    for (size_t i = 0; i != HP_LOGS_MAX_CODES; ++i)
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

static json_t *hp__codes_json(const uint64_t *code, size_t num_codes)
{
    json_t *o = json_object();
    for (size_t i = 0; i != num_codes; ++i)
        if (code[i] != 0)
            json_object_set_new(o, hp__logs.codes[i].code, json_integer((json_int_t)code[i]));
    return o;
}

static json_t *hp__ring_json(const hp_logs_ring_t *ring, size_t limit)
{
    json_t *list = json_array();
    for (size_t k = 0; k != ring->count && k != limit; ++k) {
        const hp_logs_entry_t *e = &ring->e[(ring->next + ring->cap - 1 - k) % ring->cap];
        char ts[96];
        time_t sec = (time_t)(e->ts_us / 1000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (unsigned)(e->ts_us % 1000000));
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
    h2o_iovec_t v;
    long limit = 10;
    int found = hp_query_param(r, "limit", &v);
    if (found > 0) {
        char *end;
        limit = strtol(v.base, &end, 10);
        if (v.len == 0 || *end != '\0' || limit < 1 || limit > HP_LOGS_ERROR_RING)
            found = -1;
    }
    if (found < 0) {
        hp_respond_error(r, 400, "bad_param", "limit must be an integer from 1 to 32");
        return;
    }
    int64_t now = hp__logs_now_s();
    size_t num_routes = atomic_load_explicit(&hp__logs.num_routes, memory_order_acquire);
    size_t num_codes = atomic_load_explicit(&hp__logs.num_codes, memory_order_acquire);
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

    json_t *levels = json_object(), *codes = json_object(), *routes = json_array(), *timeouts = json_object();
    for (size_t k = 0; k <= HP_LOGS_NUM_WINDOWS; ++k) {
        json_object_set_new(levels, keys[k], hp__levels_json(sums[k].level));
        json_object_set_new(codes, keys[k], hp__codes_json(sums[k].code, num_codes));
        json_object_set_new(timeouts, keys[k], json_integer((json_int_t)sums[k].timeouts));
    }
    for (size_t i = 0; i != num_routes; ++i) {
        json_t *o = json_pack("{ss ss}", "method", hp__logs.routes[i].method, "route", hp__logs.routes[i].pattern);
        for (size_t k = 0; k <= HP_LOGS_NUM_WINDOWS; ++k)
            json_object_set_new(
                o, keys[k],
                json_pack("{sI sI}", "lines", (json_int_t)sums[k].route_lines[i], "errors", (json_int_t)sums[k].route_errors[i]));
        json_array_append_new(routes, o);
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
    size_t num_codes = atomic_load_explicit(&hp__logs.num_codes, memory_order_acquire);
    fprintf(f, "# HELP hotplate_log_error_codes_total Answers by JSON error code.\n"
               "# TYPE hotplate_log_error_codes_total counter\n");
    for (size_t i = 0; i != num_codes; ++i)
        fprintf(f, "hotplate_log_error_codes_total{code=\"%s\"} %llu\n", hp__logs.codes[i].code, (unsigned long long)total.code[i]);
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

const hp_route_t hp_logs_routes[] = {
    {"GET", "/debug/logs", hp__logs_get},
};
const size_t hp_logs_num_routes = sizeof(hp_logs_routes) / sizeof(hp_logs_routes[0]);
