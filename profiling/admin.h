/*
 * admin: the admin listener (127.0.0.1:8081 by default): debug and metrics
 * routes, never served on the API port.
 *
 * Each profiling module exports its own small route table; the admin table is
 * their concatenation, built once at startup. Mutating endpoints call
 * hp_admin_authorized() first: when HOTPLATE_ADMIN_TOKEN is set, they require
 * `Authorization: Bearer <token>`, compared in constant time.
 */
#ifndef HP_ADMIN_H
#define HP_ADMIN_H

#include <stddef.h>

#include <jansson.h>

#include "common/http.h"
#include "common/router.h"

/** Builds the admin route table (once, before threads start). @return the table; *num its length */
const hp_route_t *hp_admin_routes(size_t *num);

/**
 * For mutating debug endpoints. @return 1 when allowed; 0 after answering 401
 * (no token configured means allowed: the listener is loopback-only then).
 */
int hp_admin_authorized(hp_req_t *r);

/** @return every flag with its value, default, choices and doc (a new object) */
json_t *hp_admin_flags_json(void);

/* Route tables the profiling modules export (each ends where its count says). */
extern const hp_route_t hp_perf_routes[];
extern const size_t hp_perf_num_routes;
extern const hp_route_t hp_pg_routes[] __attribute__((weak));
extern const size_t hp_pg_num_routes __attribute__((weak));
extern const hp_route_t hp_prof_routes[] __attribute__((weak));
extern const size_t hp_prof_num_routes __attribute__((weak));
/* The doctor (profiling/doctor_collect.c) is in the hpcore archive, so its table is referenced strongly. */
extern const hp_route_t hp_doctor_routes[];
extern const size_t hp_doctor_num_routes;
extern const hp_route_t hp_dashboard_routes[] __attribute__((weak));
extern const size_t hp_dashboard_num_routes __attribute__((weak));

#endif
