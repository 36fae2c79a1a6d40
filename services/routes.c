/*
 * routes: the API's route table, the one list of what the server answers.
 */
#include "services/handlers.h"
#include "services/recent.h"

const hp_route_t hp_api_routes[] = {
    {"GET", "/healthz", hp_handle_healthz},
    {"GET", "/readyz", hp_handle_readyz},
    {"GET", "/restaurants", hp_handle_restaurant_list},
    {"GET", "/restaurants/{id}", hp_handle_restaurant_get},
    {"GET", "/restaurants/{id}/menu", hp_handle_menu_get},
    {"GET", "/trending", hp_handle_trending},
    {"PATCH", "/restaurants/{id}/menu/items/{id}", hp_handle_menu_item_patch},
    {"POST", "/cart/quote", hp_handle_quote},
    {"POST", "/orders", hp_handle_order_create},
    {"GET", "/orders/{id}", hp_handle_order_get},
    {"POST", "/orders/{id}/events", hp_handle_order_event},
    {"GET", "/users/{id}/orders", hp_handle_order_history},
};

const size_t hp_api_num_routes = sizeof(hp_api_routes) / sizeof(hp_api_routes[0]);
