/*
 * perf: GET /debug/perf on the admin listener, one JSON document of
 * everything the probes know, in sections (?section=a,b picks some). It is
 * built from one merge of every worker's probes (profiling/merge.h); it never
 * asks PostgreSQL anything unless the pg section is requested.
 */
#ifndef HP_PERF_H
#define HP_PERF_H

#include <stddef.h>

#include "base/router.h"
#include "runtime/thread.h"

/** Notes when the server started, for the uptime: a thread hook of the admin thread (main.c). */
int hp_perf_admin_thread_init(hp_thread_t *thr);

/** GET /debug/perf, for the admin route table. */
extern const hp_route_t hp_perf_routes[];
extern const size_t hp_perf_num_routes;

#endif
