/*
 * router: method and path to route (see router.h).
 */
#include "base/router.h"
#include "base/decimal.h"

#include <stdio.h>
#include <string.h>

int hp_parse_id(const char *s, size_t len, int64_t *out)
{
    int64_t v;
    if (len == 0 || len > 16 || s[0] == '0' || hp_decimal(s, len, &v) != 0)
        return -1;
    if (v > HP_ID_MAX)
        return -1;
    *out = v;
    return 0;
}

/*
 * Matches one pattern against a path. @return 1 on a shape match (with *bad_id
 * set when an id segment did not parse), 0 otherwise.
 *
 * One walk over both strings, a byte at a time: every route of the table is
 * tried against every request, and most of them differ from the path within
 * the first few bytes, so a match that stops there costs a few instructions.
 * (Measuring each segment with strchr and memchr first cost about 1,000
 * instructions a cached-menu request under callgrind, on 30 routes.)
 */
static int hp__match_pattern(const char *pattern, const char *path, size_t path_len, int64_t *ids, size_t *num_ids, int *bad_id)
{
    const char *pp = pattern, *p = path, *end = path + path_len;
    *num_ids = 0;
    *bad_id = 0;
    while (*pp != '\0') {
        if (p == end || *p != '/' || *pp != '/')
            return 0;
        ++pp, ++p;
        if (pp[0] == '{' && pp[1] == 'i' && pp[2] == 'd' && pp[3] == '}' && (pp[4] == '/' || pp[4] == '\0')) {
            /* A whole segment of "{id}": the path's segment, whatever it is, up to its end. */
            const char *seg = p;
            while (p != end && *p != '/')
                ++p;
            if (p == seg || *num_ids == HP_ROUTE_MAX_IDS)
                return 0;
            if (hp_parse_id(seg, (size_t)(p - seg), &ids[*num_ids]) != 0)
                *bad_id = 1;
            ++*num_ids;
            pp += 4;
            continue;
        }
        /* A literal segment: the same bytes, and the path's segment ends where the pattern's does. */
        for (; *pp != '/' && *pp != '\0'; ++pp, ++p)
            if (p == end || *p != *pp)
                return 0;
        if (p != end && *p != '/')
            return 0;
    }
    return p == end;
}

hp_route_status_t hp_router_match(const hp_route_t *routes, size_t num_routes, const char *method, size_t method_len,
                                  const char *path, size_t path_len, hp_route_match_t *m)
{
    memset(m, 0, sizeof(*m));
    m->status = HP_ROUTE_NOT_FOUND;
    size_t allow_len = 0;
    for (size_t i = 0; i != num_routes; ++i) {
        int64_t ids[HP_ROUTE_MAX_IDS] = {0};
        size_t num_ids;
        int bad_id;
        if (!hp__match_pattern(routes[i].pattern, path, path_len, ids, &num_ids, &bad_id))
            continue;
        if (strlen(routes[i].method) == method_len && memcmp(routes[i].method, method, method_len) == 0) {
            m->route = &routes[i];
            memcpy(m->ids, ids, sizeof(ids));
            m->num_ids = num_ids;
            m->status = bad_id ? HP_ROUTE_BAD_ID : HP_ROUTE_FOUND;
            return m->status;
        }
        /* Same path, other method: remember it for the Allow header. */
        /* Whole method names only: one that does not fit is left out rather than cut. */
        size_t need = (allow_len != 0 ? 2 : 0) + strlen(routes[i].method);
        if (allow_len + need < sizeof(m->allow)) {
            snprintf(m->allow + allow_len, sizeof(m->allow) - allow_len, "%s%s", allow_len != 0 ? ", " : "", routes[i].method);
            allow_len += need;
        } else {
            m->allow[allow_len] = '\0';
        }
        m->status = HP_ROUTE_METHOD_NOT_ALLOWED;
    }
    return m->status;
}
