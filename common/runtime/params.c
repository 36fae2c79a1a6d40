/*
 * params: query parameters and bodies (see params.h).
 */
#include "runtime/params.h"
#include "base/cursor.h"

#include <stdio.h>
#include <string.h>

static int hp__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hp_query_param(hp_req_t *r, const char *name, h2o_iovec_t *out)
{
    h2o_req_t *req = r->h2o;
    if (req->input.query_at == SIZE_MAX)
        return 0;
    const char *p = req->input.path.base + req->input.query_at + 1, *end = req->input.path.base + req->input.path.len;
    size_t name_len = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq != NULL ? eq : pair_end;
        if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq != NULL ? eq + 1 : pair_end;
            size_t vlen = (size_t)(pair_end - v);
            char *dst = h2o_mem_alloc_pool(&req->pool, vlen + 1);
            size_t o = 0;
            for (size_t i = 0; i < vlen; ++i) {
                if (v[i] == '%') {
                    int hi, lo;
                    if (i + 2 >= vlen || (hi = hp__hexval(v[i + 1])) < 0 || (lo = hp__hexval(v[i + 2])) < 0)
                        return -1;
                    dst[o++] = (char)(hi * 16 + lo);
                    i += 2;
                } else if (v[i] == '+') {
                    dst[o++] = ' ';
                } else {
                    dst[o++] = v[i];
                }
            }
            dst[o] = '\0';
            if (memchr(dst, '\0', o) != NULL)
                return -1; /* an encoded NUL would truncate the value in SQL and C alike */
            *out = h2o_iovec_init(dst, o);
            return 1;
        }
        p = pair_end + 1;
    }
    return 0;
}

int hp_param_int(hp_req_t *r, const char *name, int64_t lo, int64_t hi, int64_t def, int64_t *out)
{
    h2o_iovec_t v;
    int found = hp_query_param(r, name, &v);
    if (found == 0) {
        *out = def;
        return 0;
    }
    /* Digits only, at most 15 of them: no sign, no spaces, nothing that strtoll would quietly accept. */
    int64_t n = 0;
    int ok = found > 0 && v.len != 0 && v.len <= 15;
    for (size_t i = 0; ok && i != v.len; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            ok = 0;
        else
            n = n * 10 + (v.base[i] - '0');
    }
    if (!ok || n < lo || n > hi) {
        hp_respond_error(r, HP_E_bad_param,
                         hp_pool_printf(r, "%s must be an integer from %lld to %lld", name, (long long)lo, (long long)hi));
        return -1;
    }
    *out = n;
    return 0;
}

int hp_param_limit(hp_req_t *r, int def, int max, int *out)
{
    int64_t n;
    if (hp_param_int(r, "limit", 1, max, def, &n) != 0)
        return -1;
    *out = (int)n;
    return 0;
}

int hp_param_choice(hp_req_t *r, const char *name, const char *const *choices, int def, int *out, const char *what)
{
    h2o_iovec_t v;
    int found = hp_query_param(r, name, &v);
    if (found == 0) {
        *out = def;
        return 0;
    }
    for (int i = 0; found > 0 && choices[i] != NULL; ++i) {
        if (strlen(choices[i]) == v.len && memcmp(choices[i], v.base, v.len) == 0) {
            *out = i;
            return 0;
        }
    }
    hp_respond_error(r, HP_E_bad_param, what);
    return -1;
}

int hp_param_text(hp_req_t *r, const char *name, size_t max_bytes, const char **out)
{
    h2o_iovec_t v;
    int found = hp_query_param(r, name, &v);
    *out = NULL;
    if (found == 0)
        return 0;
    json_t *check = found > 0 && v.len <= max_bytes ? json_stringn(v.base, v.len) : NULL; /* jansson rejects invalid UTF-8 */
    if (check == NULL) {
        hp_respond_error(r, HP_E_bad_param,
                         hp_pool_printf(r, "parameter %s must be UTF-8 text of at most %zu bytes", name, max_bytes));
        return -1;
    }
    json_decref(check);
    *out = v.base;
    return 1;
}

int hp_param_cursor(hp_req_t *r, uint8_t kind, int *present, int64_t *k1, int64_t *k2)
{
    h2o_iovec_t v;
    int found = hp_query_param(r, "cursor", &v);
    *present = 0;
    if (found == 0)
        return 0;
    if (found < 0 || hp_cursor_decode(v.base, v.len, kind, k1, k2) != 0) {
        hp_respond_error(r, HP_E_bad_cursor, NULL);
        return -1;
    }
    *present = 1;
    return 0;
}

static json_t *hp__body_json(hp_req_t *r)
{
    h2o_iovec_t body = r->h2o->entity;
    if (body.base == NULL || body.len == 0) {
        hp_respond_error(r, HP_E_bad_json, "a JSON object body is required");
        return NULL;
    }
    if (!hp_json_depth_ok(body.base, body.len, HP_JSON_MAX_DEPTH)) {
        hp_respond_error(r, HP_E_too_deep, NULL);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        hp_respond_error(r, HP_E_bad_json,
                         hp_pool_printf(r, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text));
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        hp_respond_error(r, HP_E_bad_json, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

json_t *hp_body_json(hp_req_t *r)
{
    uint64_t start = hp_probe_clock();
    json_t *doc = hp__body_json(r);
    hp_probe_stage_add(&r->probe, HP_STAGE_parse, hp_probe_clock() - start);
    return doc;
}

void hp_respond_json_err(hp_req_t *r, const hp_json_err_t *err)
{
    hp_respond_error(r, err->code, err->message);
}
