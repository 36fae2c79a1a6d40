/*
 * router: maps a method and a path to a route, as pure code.
 *
 * A route pattern is a path whose segments are literals or "{id}"; an id
 * segment matches any non-empty segment, and the router then parses it as a
 * positive integer below 2^53 (so it survives JSON clients that use doubles).
 * A path that fits a pattern but carries a malformed id is reported as such,
 * so the caller can answer 400 rather than 404. The matcher takes (ptr, len)
 * and touches no globals, so it can be unit-tested and fuzzed directly.
 */
#ifndef HP_ROUTER_H
#define HP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct st_hp_req_t;

#define HP_ROUTE_MAX_IDS 2
#define HP_ID_MAX 9007199254740991LL /* 2^53 - 1 */

typedef void (*hp_handler_fn)(struct st_hp_req_t *r);

/* A route's attributes, read by the code that must treat some routes apart. */
enum {
    HP_ROUTE_ALWAYS_ADMIT = 1 << 0, /* never refused by admission control: liveness and readiness */
    HP_ROUTE_ADMIN_TOKEN = 1 << 1,  /* needs the admin token when one is configured (it changes how the process runs) */
    HP_ROUTE_AUTH = 1 << 2,         /* needs a customer's or an owner's bearer token */
    HP_ROUTE_MENU_CACHE = 1 << 3,   /* answered through the menu cache: its 2xx answers are the hit ratio's denominator */
};

typedef struct st_hp_route_t {
    const char *method;  /* "GET", "POST", "PATCH" */
    const char *pattern; /* "/restaurants/{id}/menu" */
    hp_handler_fn handler;
    unsigned flags; /* HP_ROUTE_* */
} hp_route_t;

typedef enum {
    HP_ROUTE_FOUND = 0,
    HP_ROUTE_NOT_FOUND = 1,
    HP_ROUTE_METHOD_NOT_ALLOWED = 2,
    HP_ROUTE_BAD_ID = 3,
} hp_route_status_t;

typedef struct st_hp_route_match_t {
    hp_route_status_t status;
    const hp_route_t *route; /* FOUND and BAD_ID: the route */
    int64_t ids[HP_ROUTE_MAX_IDS];
    size_t num_ids;
    char allow[64]; /* METHOD_NOT_ALLOWED: "GET, PATCH" */
} hp_route_match_t;

/**
 * Matches a request against the table. path must not include the query string.
 * @return m->status
 */
hp_route_status_t hp_router_match(const hp_route_t *routes, size_t num_routes, const char *method, size_t method_len,
                                  const char *path, size_t path_len, hp_route_match_t *m);

/**
 * Parses a decimal id in 1..HP_ID_MAX with no sign, spaces or leading zeros.
 * @return 0, or -1 when malformed or out of range
 */
int hp_parse_id(const char *s, size_t len, int64_t *out);

/** @return the route's method, for logs */
static inline const char *hp_route_method_name(const hp_route_t *route)
{
    return route->method;
}

#endif
