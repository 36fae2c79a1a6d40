/*
 * libFuzzer driver: query strings (common/runtime/http.c hp_query_param), the
 * ?city=&cuisine=&open_now=&limit=&cursor= of the listings.
 *
 * hp_query_param reads only the request's path, its query offset and its
 * pool, so the driver builds a bare h2o request around the input instead of
 * starting a server. Invariants: the result is -1, 0 or 1; a value found is
 * NUL-terminated, holds no NUL (an encoded %00 is refused), and is never
 * longer than the query it came from.
 */
#include "runtime/params.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"city", "cuisine", "open_now", "limit", "cursor", "minutes", ""};
    static const char prefix[] = "/restaurants?";
    const size_t plen = sizeof(prefix) - 1;
    char *path = malloc(plen + size);
    memcpy(path, prefix, plen);
    memcpy(path + plen, data, size);

    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req.input.path = h2o_iovec_init(path, plen + size);
    req.input.query_at = plen - 1;
    hp_req_t r;
    memset(&r, 0, sizeof(r));
    r.h2o = &req;

    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        h2o_iovec_t v = {NULL, 0};
        int found = hp_query_param(&r, names[i], &v);
        if (found < -1 || found > 1)
            abort();
        if (found == 1) {
            if (v.base == NULL || v.len > size || v.base[v.len] != '\0' || memchr(v.base, '\0', v.len) != NULL)
                abort();
        }
    }
    h2o_mem_clear_pool(&req.pool);
    free(path);
    return 0;
}
