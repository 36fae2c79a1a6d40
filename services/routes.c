/*
 * routes: the API's route table (see routes.h).
 */
#include "services/routes.h"
#include "services/handlers.h"
#include "services/recent.h"

const hp_route_t hp_api_routes[HP_API__COUNT] = {
#define HP__API_ROUTE_DEF(id, method, pattern, handler, flags) {method, pattern, handler, flags},
    HP_API_ROUTE_LIST(HP__API_ROUTE_DEF)
#undef HP__API_ROUTE_DEF
};
