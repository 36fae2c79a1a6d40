/*
 * dashboard: GET /debug/, the one-page dashboard the admin listener serves (see dashboard.c).
 */
#ifndef HP_DASHBOARD_H
#define HP_DASHBOARD_H

#include <stddef.h>

#include "base/router.h"

/** The dashboard's routes, for the admin route table. */
extern const hp_route_t hp_dashboard_routes[];
extern const size_t hp_dashboard_num_routes;

#endif
