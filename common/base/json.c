/*
 * json: body parsing and validation helpers (see json.h).
 */
#include "base/json.h"

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

int hp_json_fail(hp_json_err_t *err, hp_error_t code, const char *message)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", message);
    return -1;
}

static void hp__err(hp_json_err_t *err, hp_error_t code, const char *fmt, const char *key)
{
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
            hp__err(err, HP_E_unknown_field, "unknown field %s", shown);
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
            hp__err(err, HP_E_missing_field, "missing field %s", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer(v)) {
        hp__err(err, HP_E_invalid_field, "field %s must be an integer", key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        hp__err(err, HP_E_invalid_field, "field %s is out of range", key);
        return -1;
    }
    *out = x;
    return 1;
}
