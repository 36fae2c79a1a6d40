/*
 * routes: the API's route table, the one list of what the server answers.
 *
 * X(id, method, pattern, handler, flags): the list generates the route ids
 * (HP_API_<id>, the index of the route in hp_api_routes, which the statement
 * list names its owning route by) and the table the server dispatches on.
 * A route's flags are its attributes (base/router.h): what admission control,
 * the alerts and the doctor need to know of it, so no code compares a
 * pattern's text.
 */
#ifndef HP_ROUTES_H
#define HP_ROUTES_H

#include <stddef.h>

#include "base/router.h"

#define HP_API_ROUTE_LIST(X)                                                                                                       \
    X(healthz, "GET", "/healthz", hp_handle_healthz, HP_ROUTE_ALWAYS_ADMIT)                                                        \
    X(readyz, "GET", "/readyz", hp_handle_readyz, HP_ROUTE_ALWAYS_ADMIT)                                                           \
    X(restaurant_list, "GET", "/restaurants", hp_handle_restaurant_list, 0)                                                        \
    X(restaurant_get, "GET", "/restaurants/{id}", hp_handle_restaurant_get, 0)                                                     \
    X(menu_get, "GET", "/restaurants/{id}/menu", hp_handle_menu_get, HP_ROUTE_MENU_CACHE)                                          \
    X(trending, "GET", "/trending", hp_handle_trending, 0)                                                                         \
    X(menu_item_patch, "PATCH", "/restaurants/{id}/menu/items/{id}", hp_handle_menu_item_patch, HP_ROUTE_AUTH)                     \
    X(quote, "POST", "/cart/quote", hp_handle_quote, HP_ROUTE_AUTH)                                                                \
    X(order_create, "POST", "/orders", hp_handle_order_create, HP_ROUTE_AUTH)                                                      \
    X(order_get, "GET", "/orders/{id}", hp_handle_order_get, HP_ROUTE_AUTH)                                                        \
    X(order_event, "POST", "/orders/{id}/events", hp_handle_order_event, HP_ROUTE_AUTH)                                            \
    X(order_history, "GET", "/users/{id}/orders", hp_handle_order_history, HP_ROUTE_AUTH)

typedef enum {
#define HP__API_ROUTE_ID(id, method, pattern, handler, flags) HP_API_##id,
    HP_API_ROUTE_LIST(HP__API_ROUTE_ID)
#undef HP__API_ROUTE_ID
        HP_API__COUNT,
    HP_API_NONE = -1 /* a statement that no one route owns */
} hp_api_route_t;

/** The API's route table, in hp_api_route_t order. */
extern const hp_route_t hp_api_routes[HP_API__COUNT];

#endif
