/*
 * json: field validation on top of jansson, as pure code.
 *
 * jansson parses and validates UTF-8; this module adds what an API needs on
 * top: a nesting limit checked before parsing (so a hostile body cannot make
 * the parser recurse deeply), strict objects (unknown fields are errors), and
 * typed getters with ranges that fail with the documented 400 codes. Reading
 * a request's body and answering the error are runtime/params.h's.
 */
#ifndef HP_JSON_H
#define HP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/errors.h"

#define HP_JSON_MAX_DEPTH 8

/**
 * Scans a JSON text for its nesting depth, skipping strings. Pure; takes
 * (ptr, len) so it can be fuzzed.
 * @return 1 when the depth is at most max_depth, 0 otherwise
 */
int hp_json_depth_ok(const char *p, size_t len, int max_depth);

/* Validation outcome of the pure field checks below; the status is the code's. */
typedef struct st_hp_json_err_t {
    hp_error_t code;
    char message[128];
} hp_json_err_t;

/** Fills err with a code and a message. @return -1, for `return hp_json_fail(...)` */
int hp_json_fail(hp_json_err_t *err, hp_error_t code, const char *message);

/** @return 0, or -1 with err filled when obj has a key outside allowed */
int hp_json_only_fields(const json_t *obj, const char *const *allowed, size_t num_allowed, hp_json_err_t *err);

/**
 * Reads an integer field in [min, max].
 * @return 1 when read, 0 when absent (and not required), -1 with err filled
 */
int hp_json_int(const json_t *obj, const char *key, int64_t min, int64_t max, int required, int64_t *out, hp_json_err_t *err);

#endif
