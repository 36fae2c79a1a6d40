/*
 * pprof_index: GET /debug/pprof/ (an index page) and /debug/pprof/symbol
 * (pprof's symbolizer protocol), the parts of Go's net/http/pprof that are
 * not profiles. The profiles themselves are prof.h's.
 */
#ifndef HP_PPROF_INDEX_H
#define HP_PPROF_INDEX_H

#include <stddef.h>

#include "base/router.h"

/* The routes, for the admin route table. */
extern const hp_route_t hp_pprof_index_routes[];
extern const size_t hp_pprof_index_num_routes;

#endif
