/*
 * json: body parsing and validation helpers (see json.h).
 */
#include "common/json.h"
#include "common/clock.h"

#include <stdio.h>
#include <string.h>

int hp_json_depth_ok(const char *p, size_t len, int max_depth)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = p[i];
        if (in_string) {
            if (c == '\\') {
                /* Skip the escaped character, whatever it is; a backslash at the very end has none. */
                if (++i == len)
                    break;
            } else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return 0;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return 1;
}

static json_t *hp__json_parse_body(hp_req_t *r);

json_t *hp_json_parse_body(hp_req_t *r)
{
    uint64_t start = hp_probe_clock();
    json_t *doc = hp__json_parse_body(r);
    hp_probe_stage_add(&r->probe, HP_STAGE_parse, hp_probe_clock() - start);
    return doc;
}

static json_t *hp__json_parse_body(hp_req_t *r)
{
    h2o_iovec_t body = r->h2o->entity;
    if (body.base == NULL || body.len == 0) {
        hp_respond_error(r, 400, "bad_json", "a JSON object body is required");
        return NULL;
    }
    if (!hp_json_depth_ok(body.base, body.len, HP_JSON_MAX_DEPTH)) {
        hp_respond_error(r, 400, "too_deep", "JSON nesting is limited to 8 levels");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        hp_respond_error(r, 400, "bad_json", msg);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        hp_respond_error(r, 400, "bad_json", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

static void hp__err(hp_json_err_t *err, int status, const char *code, const char *fmt, const char *key)
{
    err->status = status;
    err->code = code;
    snprintf(err->message, sizeof(err->message), fmt, key);
}

int hp_json_only_fields(const json_t *obj, const char *const *allowed, size_t num_allowed, hp_json_err_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        (void)value;
        size_t i;
        for (i = 0; i != num_allowed; ++i)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (i == num_allowed) {
            char shown[48];
            snprintf(shown, sizeof(shown), "%.40s", key);
            /* The key came from the client: keep only printable ASCII in the message. */
            for (char *p = shown; *p != '\0'; ++p)
                if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
                    *p = '?';
            hp__err(err, 400, "unknown_field", "unknown field %s", shown);
            return -1;
        }
    }
    return 0;
}

int hp_json_int(const json_t *obj, const char *key, int64_t min, int64_t max, int required, int64_t *out, hp_json_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        if (required) {
            hp__err(err, 400, "missing_field", "missing field %s", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer(v)) {
        hp__err(err, 400, "invalid_field", "field %s must be an integer", key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        hp__err(err, 400, "invalid_field", "field %s is out of range", key);
        return -1;
    }
    *out = x;
    return 1;
}

void hp_json_respond_err(hp_req_t *r, const hp_json_err_t *err)
{
    hp_respond_error(r, err->status, err->code, err->message);
}
