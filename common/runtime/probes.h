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
 * - the scalar stats of runtime/stats.h, each declared there once: counters
 *   (pool acquisitions and timeouts, cache lookups and single-flight events,
 *   payments, connections accepted), gauges (pool in use and waiting) and
 *   histograms (pool wait, Redis command latency, loop lag, payment latency);
 * - per route: count, responses by status class, in flight, latency histogram,
 *   and the time its requests spent in each stage, also per 5 s slot over the
 *   last five minutes (the windows of /debug/perf and /debug/logs);
 * - per stage: a histogram of the time one request spent in it;
 * - per named statement: count, errors, rows, latency histogram;
 * - a ring of the last slow requests with their stages and statements.
 *
 * Stages. A request is either running on the loop (parse, compute, render) or
 * waiting (auth's token lookup, cache, pool, db, payment); waits of one kind
 * that overlap (pipelined statements) count once, as wall time. Compute counts
 * the thread's CPU time (hp_probe_cpu_clock), so preemption by the rest of the
 * machine lands in "other" instead. "other" is the
 * rest of the end-to-end time (routing, logging, the loop's other work).
 *
 * USDT probes (sys/sdt.h): hotplate:request__start, request__done,
 * query__start and query__done; see docs/PROFILING.md for a bpftrace example.
 */
#ifndef HP_PROBES_H
#define HP_PROBES_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/histogram.h"
#include "runtime/stats.h"

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
    int started; /* counted in its route's in-flight gauge */
    uint64_t stage_ns[HP_STAGE__COUNT];
    uint64_t stage_since[HP_STAGE__COUNT];
    uint16_t stage_pending[HP_STAGE__COUNT];
    uint8_t num_stmts;
    uint16_t stmt_ids[HP_SLOW_MAX_STMTS];
    uint64_t stmt_ns[HP_SLOW_MAX_STMTS];
} hp_req_probe_t;

/* A route's counters are also kept per slot of this many seconds, over the last HP_ROUTE_SLOTS slots (five minutes and the current
 * one). */
#define HP_ROUTE_SLOT_SECONDS 5
#define HP_ROUTE_SLOTS 61

/* Counters of one route, also kept per time slot for the rolling windows. */
typedef struct st_hp_route_probe_t {
    _Atomic uint64_t count;
    _Atomic uint64_t by_class[HP_PROBE_STATUS_CLASSES];
    _Atomic int64_t inflight;
    _Atomic uint64_t stage_ns[HP_STAGE__COUNT];
    hp_hist_window_t latency;
    _Atomic int64_t slot_epoch[HP_ROUTE_SLOTS];
    _Atomic uint64_t slot_by_class[HP_ROUTE_SLOTS][HP_PROBE_STATUS_CLASSES];
    _Atomic uint64_t slot_stage_ns[HP_ROUTE_SLOTS][HP_STAGE__COUNT];
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
    _Atomic uint64_t counters[HP_COUNTER__COUNT]; /* runtime/stats.h */
    _Atomic int64_t gauges[HP_GAUGE__COUNT];
    hp_hist_window_t hists[HP_HIST__COUNT];
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

/** hp_now_ns_once for probe-only timings: 0, and no read, with the probes off. */
static inline uint64_t hp_probe_clock_once(uint64_t *now)
{
#if HOTPLATE_PROBES
    return hp_now_ns_once(now);
#else
    (void)now;
    return 0;
#endif
}

/**
 * The clock of the compute stage: the thread's CPU time with probes on, 0 with
 * them off. The compute stage is pure computation on the loop, so its wall
 * time differs from its CPU time only by the time the kernel ran something
 * else; on a busy two-core machine that preemption alone once made a clean
 * checkout's pricing average 334 us and the doctor call it a hot spot.
 */
static inline uint64_t hp_probe_cpu_clock(void)
{
#if HOTPLATE_PROBES
    return hp_thread_cpu_ns();
#else
    return 0;
#endif
}

/** @return monotonic seconds, the clock the windows use */
static inline int64_t hp_probe_now_s(void)
{
    return (int64_t)(hp_now_ns() / 1000000000u);
}

struct st_hp_thread_t;
struct st_hp_route_t;

#if HOTPLATE_PROBES

/*
 * Called by the http seam (runtime/http.c): a routed request starts, counted
 * in its route's in-flight gauge, and a request ends with its status (route
 * NULL for one that matched no route). The probes take the pieces of the
 * request they count, so they know nothing of the request type itself.
 */
void hp_probe_request_start(struct st_hp_thread_t *thr, const struct st_hp_route_t *route, hp_req_probe_t *p,
                            const char *request_id);
void hp_probe_request_done(struct st_hp_thread_t *thr, const struct st_hp_route_t *route, hp_req_probe_t *p, const char *request_id,
                           uint64_t start_ns, uint64_t end_ns, int status);

/* A synchronous stretch of work on the loop (parse, compute, render). */
static inline void hp_probe_stage_add(hp_req_probe_t *p, hp_stage_t stage, uint64_t ns)
{
    p->stage_ns[stage] += ns;
}

/*
 * A wait that may overlap others of its kind: counted once as wall time. now
 * is the caller's shared clock read (hp_now_ns_once), taken only if needed.
 */
static inline void hp_probe_wait_begin(hp_req_probe_t *p, hp_stage_t stage, uint64_t *now)
{
    if (p->stage_pending[stage]++ == 0)
        p->stage_since[stage] = hp_now_ns_once(now);
}

static inline void hp_probe_wait_end(hp_req_probe_t *p, hp_stage_t stage, uint64_t *now)
{
    if (p->stage_pending[stage] != 0 && --p->stage_pending[stage] == 0)
        p->stage_ns[stage] += hp_ns_since(hp_now_ns_once(now), p->stage_since[stage]);
}

/*
 * A statement finished on thr at now_ns, after ns; p is its request's probe
 * state, or NULL when no request waits for it any more.
 */
void hp_probe_stmt_done(struct st_hp_thread_t *thr, hp_req_probe_t *p, int stmt, uint64_t ns, uint64_t now_ns, uint64_t rows,
                        int error);

/** Adds n to a counter of thr's (runtime/stats.h). */
void hp_probe_count(struct st_hp_thread_t *thr, hp_counter_t id, uint64_t n);
/** Moves a gauge of thr's by delta. */
void hp_probe_gauge(struct st_hp_thread_t *thr, hp_gauge_t id, int64_t delta);
/** Records one value, in nanoseconds, observed at now_ns (the monotonic clock), into a histogram of thr's. */
void hp_probe_observe(struct st_hp_thread_t *thr, hp_hist_id_t id, uint64_t ns, uint64_t now_ns);

#else

static inline void hp_probe_request_start(struct st_hp_thread_t *thr, const struct st_hp_route_t *route, hp_req_probe_t *p,
                                          const char *request_id)
{
    (void)thr, (void)route, (void)p, (void)request_id;
}
static inline void hp_probe_request_done(struct st_hp_thread_t *thr, const struct st_hp_route_t *route, hp_req_probe_t *p,
                                         const char *request_id, uint64_t start_ns, uint64_t end_ns, int status)
{
    (void)thr, (void)route, (void)p, (void)request_id, (void)start_ns, (void)end_ns, (void)status;
}
static inline void hp_probe_stage_add(hp_req_probe_t *p, hp_stage_t stage, uint64_t ns)
{
    (void)p, (void)stage, (void)ns;
}
static inline void hp_probe_wait_begin(hp_req_probe_t *p, hp_stage_t stage, uint64_t *now)
{
    (void)p, (void)stage, (void)now;
}
static inline void hp_probe_wait_end(hp_req_probe_t *p, hp_stage_t stage, uint64_t *now)
{
    (void)p, (void)stage, (void)now;
}
static inline void hp_probe_stmt_done(struct st_hp_thread_t *thr, hp_req_probe_t *p, int stmt, uint64_t ns, uint64_t now_ns,
                                      uint64_t rows, int error)
{
    (void)thr, (void)p, (void)stmt, (void)ns, (void)now_ns, (void)rows, (void)error;
}
static inline void hp_probe_count(struct st_hp_thread_t *thr, hp_counter_t id, uint64_t n)
{
    (void)thr, (void)id, (void)n;
}
static inline void hp_probe_gauge(struct st_hp_thread_t *thr, hp_gauge_t id, int64_t delta)
{
    (void)thr, (void)id, (void)delta;
}
static inline void hp_probe_observe(struct st_hp_thread_t *thr, hp_hist_id_t id, uint64_t ns, uint64_t now_ns)
{
    (void)thr, (void)id, (void)ns, (void)now_ns;
}

#endif

/*
 * Begins a wait of a request's in stage that is also timed on its own (a pool
 * wait, a Redis command, a payment: each has its histogram), with one clock
 * read for both. @return its start, for hp_probe_observe; 0 with the probes off
 */
static inline uint64_t hp_probe_timed_wait_begin(hp_req_probe_t *p, hp_stage_t stage)
{
    uint64_t now = 0, start = hp_probe_clock_once(&now);
    hp_probe_wait_begin(p, stage, &now);
    return start;
}

/** @return the name of a stage */
const char *hp_stage_name(hp_stage_t stage);

#endif
