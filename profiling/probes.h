/*
 * probes: the compiled-in timing probes.
 *
 * Every worker thread owns one hp_probes_t. Request-path code records into its
 * own thread's probes with plain loads and stores on _Atomic fields (one
 * writer per field, so no locked instruction and no lock); the admin thread
 * reads every thread's probes and merges them (perf.c). With the CMake option
 * HOTPLATE_PROBES=OFF every hp_probe_* call below compiles to nothing, which is
 * what the overhead benchmark compares against.
 *
 * What is measured:
 * - per route: count, responses by status class, in flight, latency histogram,
 *   and the time its requests spent in each stage;
 * - per stage: a histogram of the time one request spent in it;
 * - per named statement: count, errors, rows, latency histogram;
 * - the transaction pool: in use, waiting, acquisitions, timeouts, wait histogram;
 * - the cache: hits, misses, errors, command latency, and the single-flight
 *   events of the menu cache (PostgreSQL loads, coalesced followers, lease waits);
 * - the loop: lag (how late a 100 ms timer fires) and connections accepted;
 * - a ring of the last slow requests with their stages and statements.
 *
 * Stages. A request is either running on the loop (parse, compute, render) or
 * waiting (auth's token lookup, cache, pool, db, payment); waits of one kind
 * that overlap (pipelined statements) count once, as wall time. "other" is the
 * rest of the end-to-end time (routing, logging, the loop's other work).
 *
 * USDT probes (sys/sdt.h): hotplate:request__start, request__done,
 * query__start and query__done; see docs/PROFILING.md for a bpftrace example.
 */
#ifndef HP_PROBES_H
#define HP_PROBES_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/clock.h"
#include "profiling/histogram.h"

#ifndef HOTPLATE_PROBES
#define HOTPLATE_PROBES 1
#endif

#if HOTPLATE_PROBES
#include <sys/sdt.h>
#define HP_USDT2(name, a, b) DTRACE_PROBE2(hotplate, name, a, b)
#define HP_USDT3(name, a, b, c) DTRACE_PROBE3(hotplate, name, a, b, c)
#define HP_USDT4(name, a, b, c, d) DTRACE_PROBE4(hotplate, name, a, b, c, d)
#else
/* The arguments are type-checked but never evaluated, so a helper whose only caller is a probe still counts as used. */
#define HP_USDT2(name, a, b)                                                                                                       \
    do {                                                                                                                           \
        if (0) {                                                                                                                   \
            (void)(a), (void)(b);                                                                                                  \
        }                                                                                                                          \
    } while (0)
#define HP_USDT3(name, a, b, c)                                                                                                    \
    do {                                                                                                                           \
        if (0) {                                                                                                                   \
            (void)(a), (void)(b), (void)(c);                                                                                       \
        }                                                                                                                          \
    } while (0)
#define HP_USDT4(name, a, b, c, d)                                                                                                 \
    do {                                                                                                                           \
        if (0) {                                                                                                                   \
            (void)(a), (void)(b), (void)(c), (void)(d);                                                                            \
        }                                                                                                                          \
    } while (0)
#endif

/* What the menu cache's single flight counts, besides the lookup result (see services/menus.c). */
typedef enum {
    HP_CACHE_EV_LOAD,       /* a menu loaded from PostgreSQL */
    HP_CACHE_EV_COALESCED,  /* a request answered with another request's load on its thread */
    HP_CACHE_EV_LEASE_WAIT, /* a load that found another holder of the Redis lease and polled for its result */
} hp_cache_event_t;

#define HP_STAGE_LIST(X) X(parse) X(auth) X(cache) X(pool) X(db) X(compute) X(payment) X(render)

typedef enum {
#define HP__STAGE_ID(name) HP_STAGE_##name,
    HP_STAGE_LIST(HP__STAGE_ID)
#undef HP__STAGE_ID
        HP_STAGE__COUNT
} hp_stage_t;

#define HP_PROBE_MAX_ROUTES 32
#define HP_PROBE_MAX_STMTS 64
#define HP_PROBE_STATUS_CLASSES 6 /* index status / 100: 1xx..5xx, 0 unused */
#define HP_SLOW_RING 32
#define HP_SLOW_MAX_STMTS 8

/* Per-request probe state, embedded in hp_req_t. */
typedef struct st_hp_req_probe_t {
    uint64_t stage_ns[HP_STAGE__COUNT];
    uint64_t stage_since[HP_STAGE__COUNT];
    uint16_t stage_pending[HP_STAGE__COUNT];
    uint8_t num_stmts;
    uint16_t stmt_ids[HP_SLOW_MAX_STMTS];
    uint64_t stmt_ns[HP_SLOW_MAX_STMTS];
} hp_req_probe_t;

/* Counters of one route, also kept per time slot for the rolling windows. */
typedef struct st_hp_route_probe_t {
    _Atomic uint64_t count;
    _Atomic uint64_t by_class[HP_PROBE_STATUS_CLASSES];
    _Atomic int64_t inflight;
    _Atomic uint64_t stage_ns[HP_STAGE__COUNT];
    hp_hist_window_t latency;
    _Atomic int64_t slot_epoch[HP_HIST_SLOTS];
    _Atomic uint64_t slot_by_class[HP_HIST_SLOTS][HP_PROBE_STATUS_CLASSES];
    _Atomic uint64_t slot_stage_ns[HP_HIST_SLOTS][HP_STAGE__COUNT];
} hp_route_probe_t;

typedef struct st_hp_stmt_probe_t {
    _Atomic uint64_t count, errors, rows;
    hp_hist_window_t latency;
} hp_stmt_probe_t;

/* One slow request, as words so that readers on other threads never race the writer (seqlock). */
typedef struct st_hp_slow_entry_t {
    _Atomic uint64_t seq; /* odd while being written */
    _Atomic uint64_t ts_us, route, status, duration_ns, thread;
    _Atomic uint64_t stage_ns[HP_STAGE__COUNT];
    _Atomic uint64_t num_stmts;
    _Atomic uint64_t stmts[HP_SLOW_MAX_STMTS]; /* statement id << 48 | ns */
    _Atomic uint64_t request_id[4];            /* up to 32 characters */
} hp_slow_entry_t;

typedef struct st_hp_probes_t {
    hp_route_probe_t routes[HP_PROBE_MAX_ROUTES];
    hp_route_probe_t unrouted; /* 404s, 405s and other requests that matched no route */
    hp_hist_window_t stages[HP_STAGE__COUNT];
    hp_stmt_probe_t stmts[HP_PROBE_MAX_STMTS];
    _Atomic int64_t pool_in_use, pool_waiting;
    _Atomic uint64_t pool_acquired, pool_timeouts;
    hp_hist_window_t pool_wait;
    _Atomic uint64_t cache_hits, cache_misses, cache_errors;
    /* Single flight (services/menus.c): menu loads from PostgreSQL, requests that waited for another's load, lease losers that
     * polled. */
    _Atomic uint64_t cache_loads, cache_coalesced, cache_lease_waits;
    hp_hist_window_t cache_latency;
    hp_hist_window_t loop_lag;
    _Atomic uint64_t accepted;
    hp_hist_window_t payment_latency;
    _Atomic uint64_t slow_next; /* total slow requests recorded; the ring index is this modulo HP_SLOW_RING */
    hp_slow_entry_t slow[HP_SLOW_RING];
} hp_probes_t;

/** Allocates and initializes a thread's probes. @return NULL on OOM */
hp_probes_t *hp_probes_new(void);
void hp_probes_free(hp_probes_t *p);

/** The single-writer increment: a relaxed load and store, no locked instruction. */
static inline void hp_probe_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

static inline void hp_probe_gauge_add(_Atomic int64_t *g, int64_t v)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + v, memory_order_relaxed);
}

/**
 * The clock of probe-only timings: a clock read with probes on, 0 with them
 * off, so a build without probes does not pay for reads nobody uses.
 */
static inline uint64_t hp_probe_clock(void)
{
#if HOTPLATE_PROBES
    return hp_now_ns();
#else
    return 0;
#endif
}

/** @return monotonic seconds, the clock the windows use */
static inline int64_t hp_probe_now_s(void)
{
    return (int64_t)(hp_now_ns() / 1000000000u);
}

struct st_hp_req_t;
struct st_hp_thread_t;

#if HOTPLATE_PROBES

/* Called by the http seam. */
void hp_probe_request_start(struct st_hp_req_t *r);
void hp_probe_request_done(struct st_hp_req_t *r, int status);

/* A synchronous stretch of work on the loop (parse, compute, render). */
static inline void hp_probe_stage_add(hp_req_probe_t *p, hp_stage_t stage, uint64_t ns)
{
    p->stage_ns[stage] += ns;
}

/* A wait that may overlap others of its kind: counted once as wall time. */
static inline void hp_probe_wait_begin(hp_req_probe_t *p, hp_stage_t stage)
{
    if (p->stage_pending[stage]++ == 0)
        p->stage_since[stage] = hp_now_ns();
}

static inline void hp_probe_wait_end(hp_req_probe_t *p, hp_stage_t stage)
{
    if (p->stage_pending[stage] != 0 && --p->stage_pending[stage] == 0)
        p->stage_ns[stage] += hp_now_ns() - p->stage_since[stage];
}

/* Statement, pool, cache, payment and loop probes; thr is the recording thread. */
void hp_probe_stmt_done(struct st_hp_thread_t *thr, struct st_hp_req_t *r, int stmt, uint64_t ns, uint64_t rows, int error);
void hp_probe_pool_wait_done(struct st_hp_thread_t *thr, uint64_t ns, int timed_out);
void hp_probe_pool_gauges(struct st_hp_thread_t *thr, int64_t in_use_delta, int64_t waiting_delta);
void hp_probe_cache_result(struct st_hp_thread_t *thr, int hit, int error);
void hp_probe_cache_latency(struct st_hp_thread_t *thr, uint64_t ns);
void hp_probe_cache_event(struct st_hp_thread_t *thr, hp_cache_event_t ev);
void hp_probe_payment_latency(struct st_hp_thread_t *thr, uint64_t ns);
void hp_probe_loop_lag(struct st_hp_thread_t *thr, uint64_t ns);
void hp_probe_accepted(struct st_hp_thread_t *thr);

#else

static inline void hp_probe_request_start(struct st_hp_req_t *r)
{
    (void)r;
}
static inline void hp_probe_request_done(struct st_hp_req_t *r, int status)
{
    (void)r, (void)status;
}
static inline void hp_probe_stage_add(hp_req_probe_t *p, hp_stage_t stage, uint64_t ns)
{
    (void)p, (void)stage, (void)ns;
}
static inline void hp_probe_wait_begin(hp_req_probe_t *p, hp_stage_t stage)
{
    (void)p, (void)stage;
}
static inline void hp_probe_wait_end(hp_req_probe_t *p, hp_stage_t stage)
{
    (void)p, (void)stage;
}
static inline void hp_probe_stmt_done(struct st_hp_thread_t *thr, struct st_hp_req_t *r, int stmt, uint64_t ns, uint64_t rows,
                                      int error)
{
    (void)thr, (void)r, (void)stmt, (void)ns, (void)rows, (void)error;
}
static inline void hp_probe_pool_wait_done(struct st_hp_thread_t *thr, uint64_t ns, int timed_out)
{
    (void)thr, (void)ns, (void)timed_out;
}
static inline void hp_probe_pool_gauges(struct st_hp_thread_t *thr, int64_t in_use_delta, int64_t waiting_delta)
{
    (void)thr, (void)in_use_delta, (void)waiting_delta;
}
static inline void hp_probe_cache_result(struct st_hp_thread_t *thr, int hit, int error)
{
    (void)thr, (void)hit, (void)error;
}
static inline void hp_probe_cache_latency(struct st_hp_thread_t *thr, uint64_t ns)
{
    (void)thr, (void)ns;
}
static inline void hp_probe_cache_event(struct st_hp_thread_t *thr, hp_cache_event_t ev)
{
    (void)thr, (void)ev;
}
static inline void hp_probe_payment_latency(struct st_hp_thread_t *thr, uint64_t ns)
{
    (void)thr, (void)ns;
}
static inline void hp_probe_loop_lag(struct st_hp_thread_t *thr, uint64_t ns)
{
    (void)thr, (void)ns;
}
static inline void hp_probe_accepted(struct st_hp_thread_t *thr)
{
    (void)thr;
}

#endif

/** @return the name of a stage */
const char *hp_stage_name(hp_stage_t stage);

#endif
