/*
 * perf: GET /debug/perf (one JSON document of everything the probes know) and
 * GET /metrics (the same data in Prometheus text format 0.0.4), both on the
 * admin listener. Reading merges every worker thread's probes; it never asks
 * PostgreSQL anything unless the pg section is requested.
 *
 * Also samples the jemalloc heap once a second on the admin thread, so the heap
 * section can report growth over the windows.
 */
#ifndef HP_PERF_H
#define HP_PERF_H

#include "common/thread.h"

/** Starts the heap sampler; call on the admin thread once its loop exists. */
void hp_perf_admin_thread_init(hp_thread_t *thr);
/** Stops it. */
void hp_perf_admin_thread_dispose(hp_thread_t *thr);

#endif
