/*
 * admission: overload control (see admission.h).
 */
#include "common/admission.h"

#include <string.h>

/* Routes that must answer whatever the load; see the header. */
static int hp__admission_exempt(const hp_route_t *route)
{
    return route != NULL && (strcmp(route->pattern, "/healthz") == 0 || strcmp(route->pattern, "/readyz") == 0);
}

int hp_admission_admit(hp_req_t *r)
{
    /*
     * The gauge already counts r itself (hp_req_create), and only this thread
     * changes it, so a relaxed load is exact here: the limit is a per-thread
     * bound with no cross-thread coordination on the request path.
     */
    uint64_t inflight = atomic_load_explicit(&r->thr->inflight, memory_order_relaxed);
    if (inflight <= (uint64_t)r->thr->cfg->max_inflight || hp__admission_exempt(r->route))
        return 1;
    hp_add_header(r, "retry-after", HP_ADMISSION_RETRY_AFTER_S);
    hp_respond_error(r, 503, "overloaded", "the server is at its in-flight limit; retry after the Retry-After delay");
    return 0;
}

int hp_admission_head_ok(hp_req_t *r)
{
    const h2o_req_t *req = r->h2o;
    size_t bytes = req->input.path.len;
    for (size_t i = 0; i != req->headers.size && bytes <= HP_MAX_HEAD_BYTES; ++i)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    if (bytes <= HP_MAX_HEAD_BYTES)
        return 1;
    hp_respond_error(r, 431, "headers_too_large", "the request line and headers are limited to 16 KiB");
    return 0;
}
