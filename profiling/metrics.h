/*
 * metrics: GET /metrics, the Prometheus text format of the merged probes (see metrics.c).
 */
#ifndef HP_METRICS_H
#define HP_METRICS_H

#include <stddef.h>

#include "base/router.h"

/** GET /metrics, for the admin route table. */
extern const hp_route_t hp_metrics_routes[];
extern const size_t hp_metrics_num_routes;

#endif
