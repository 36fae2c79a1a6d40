/*
 * libFuzzer driver: request paths and their numeric parameters
 * (common/base/router.c hp_router_match over the server's own route table, and
 * hp_parse_id).
 *
 * The first input byte picks the method, the rest is the path. Invariants: a
 * match names a route of that method with at most HP_ROUTE_MAX_IDS ids, each
 * in 1..2^53-1; "method not allowed" lists the allowed methods; hp_parse_id
 * accepts only plain decimal digits without a leading zero, in range.
 */
#include "base/router.h"
#include "services/routes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "get", ""};
    if (size == 0)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    const char *path = (const char *)data + 1;
    size_t len = size - 1;

    hp_route_match_t m;
    memset(&m, 0, sizeof(m));
    hp_route_status_t st = hp_router_match(hp_api_routes, HP_API__COUNT, method, strlen(method), path, len, &m);
    switch (st) {
    case HP_ROUTE_FOUND:
        if (m.route == NULL || strcmp(m.route->method, method) != 0 || m.num_ids > HP_ROUTE_MAX_IDS)
            abort();
        for (size_t i = 0; i != m.num_ids; ++i)
            if (m.ids[i] < 1 || m.ids[i] > HP_ID_MAX)
                abort();
        break;
    case HP_ROUTE_METHOD_NOT_ALLOWED:
        if (memchr(m.allow, '\0', sizeof(m.allow)) == NULL || m.allow[0] == '\0')
            abort();
        break;
    case HP_ROUTE_BAD_ID:
        if (m.route == NULL)
            abort();
        break;
    case HP_ROUTE_NOT_FOUND:
        break;
    default:
        abort();
    }

    int64_t id = 0;
    if (hp_parse_id(path, len, &id) == 0) {
        if (id < 1 || id > HP_ID_MAX || len == 0 || path[0] == '0')
            abort();
        for (size_t i = 0; i != len; ++i)
            if (path[i] < '0' || path[i] > '9')
                abort();
    }
    return 0;
}
