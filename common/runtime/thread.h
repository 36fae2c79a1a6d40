/*
 * thread: the per-worker-thread context.
 *
 * Each worker thread owns one h2o evloop, its own SO_REUSEPORT listener, its own
 * PostgreSQL connections and its own Redis connection. Nothing in here is shared
 * with another thread, so request-path code touches it without locks; the few
 * values read across threads (the in-flight count) are atomics, and only read.
 *
 * The runtime's own clients are fields here. A service's per-thread state (the
 * payment simulator, the recently-viewed list, the menu cache's flights) is
 * the service's: thread-local in its own file, created and freed by the
 * thread hooks main.c hands to the server (runtime/server.h), so this struct
 * names no service.
 */
#ifndef HP_THREAD_H
#define HP_THREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <h2o.h>

#include "base/config.h"

struct st_hp_db_t;
struct st_hp_route_t;
struct st_hp_probes_t;
struct st_hp_redis_t;

typedef struct st_hp_thread_t {
    int index;    /* workers 0..n-1; the admin thread is n */
    int is_admin; /* serves the debug and metrics routes instead of the API */
    pthread_t tid;
    const hp_config_t *cfg;
    const struct st_hp_route_t *routes; /* what this thread's listener answers */
    size_t num_routes;
    int db_pool_size;              /* transaction connections of this thread */
    int db_readers;                /* pipelined read connections of this thread */
    struct st_hp_probes_t *probes; /* this thread's counters and histograms (common/runtime/probes.h) */
    h2o_evloop_t *loop;
    h2o_context_t ctx; /* h2o's per-thread context; requests find their thread through it */
    h2o_accept_ctx_t accept_ctx;
    int listen_fd; /* bound by the main thread, wrapped by the worker once its loop exists */
    h2o_socket_t *listener;
    struct st_hp_db_t *db;
    struct st_hp_redis_t *redis;
    /* Timeouts of fixed durations; h2o 2.2.5 keeps one list per duration. */
    h2o_timeout_t zero_timeout;  /* 0 ms: runs a callback on the next loop iteration */
    h2o_timeout_t retry_timeout; /* 1 s: reconnect attempts */
    h2o_timeout_t db_timeout;
    h2o_timeout_t pool_timeout;
    h2o_timeout_t redis_timeout;
    h2o_timeout_t payment_timeout;
    h2o_timeout_t lag_timeout; /* 100 ms: the event-loop lag probe */
    h2o_timeout_entry_t lag_entry;
    uint64_t lag_scheduled_ns;
    _Atomic uint64_t inflight; /* requests accepted and not yet answered */
    uint64_t request_id_seed;  /* random per thread, drawn once at start */
    uint64_t request_id_seq;   /* requests this thread has named */
    /* Readiness, published for /readyz on any thread: written by this thread only. */
    _Atomic int pg_reader_ready; /* pipelined read connections prepared (at least one answers reads) */
    _Atomic int pg_txn_ready;    /* transaction connections prepared */
    _Atomic int redis_ready;
    _Atomic int stopping; /* set by the main thread on SIGTERM */
} hp_thread_t;

/** @return the worker thread that owns an h2o context */
static inline hp_thread_t *hp_thread_from_ctx(h2o_context_t *ctx)
{
    return H2O_STRUCT_FROM_MEMBER(hp_thread_t, ctx, ctx);
}

/**
 * Runs cb on the next loop iteration. The entry must stay alive until then; it
 * is how hotplate reports errors asynchronously, so that no callback is ever
 * invoked from inside the call that scheduled it.
 */
static inline void hp_thread_defer(hp_thread_t *thr, h2o_timeout_entry_t *entry, h2o_timeout_cb cb)
{
    entry->cb = cb;
    h2o_timeout_link(thr->ctx.loop, &thr->zero_timeout, entry);
}

#endif
