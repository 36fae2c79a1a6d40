/*
 * admin: the admin listener's own routes: its /healthz, and the flags
 * (GET and POST /debug/flags).
 *
 * The admin listener (127.0.0.1:8081 by default) serves the debug and
 * metrics routes, never on the API port. Each profiling module exports its
 * own small route table; main.c concatenates them into the admin table. The
 * mutating routes carry HP_ROUTE_ADMIN_TOKEN, which the dispatcher checks
 * (runtime/admission.h).
 */
#ifndef HP_ADMIN_H
#define HP_ADMIN_H

#include <stddef.h>

#include <jansson.h>

#include "base/router.h"

/** @return every flag with its value, default, choices and doc (a new object) */
json_t *hp_admin_flags_json(void);

/**
 * Installs what GET /debug/flags reports as "actions": the state of a flag
 * that acts outside the process (orders_user_id_index building its index),
 * as a new JSON object. main.c wires it; without one the actions are {}.
 */
void hp_admin_set_actions(json_t *(*actions)(void));

/** The admin listener's own routes. */
extern const hp_route_t hp_admin_own_routes[];
extern const size_t hp_admin_own_num_routes;

#endif
