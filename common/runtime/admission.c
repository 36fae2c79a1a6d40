/*
 * admission: overload control (see admission.h).
 */
#include "runtime/admission.h"
#include "base/token.h"

#include <string.h>
#include <strings.h>

/* Routes that must answer whatever the load (liveness and readiness; see the header) say so in their flags. */
static int hp__admission_exempt(const hp_route_t *route)
{
    return route != NULL && (route->flags & HP_ROUTE_ALWAYS_ADMIT) != 0;
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
    hp_respond_error(r, HP_E_overloaded, NULL);
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
    hp_respond_error(r, HP_E_headers_too_large, NULL);
    return 0;
}

int hp_admission_token_ok(hp_req_t *r)
{
    const char *want = r->thr->cfg->admin_token;
    if (want == NULL || r->route == NULL || (r->route->flags & HP_ROUTE_ADMIN_TOKEN) == 0)
        return 1;
    h2o_iovec_t hdr = hp_req_header(r, "authorization");
    if (hdr.base != NULL && hdr.len > 7 && strncasecmp(hdr.base, "Bearer ", 7) == 0) {
        /* Hash both sides so the comparison is constant-time and independent of the token's length. */
        uint8_t a[32], b[32];
        hp_token_hash(hdr.base + 7, hdr.len - 7, a);
        hp_token_hash(want, strlen(want), b);
        if (hp_token_equal(a, b))
            return 1;
    }
    hp_add_header(r, "www-authenticate", "Bearer realm=\"hotplate admin\"");
    hp_respond_error(r, HP_E_unauthorized, "this debug endpoint needs the admin token (HOTPLATE_ADMIN_TOKEN)");
    return 0;
}
