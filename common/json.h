/*
 * json: request-body parsing and field validation on top of jansson.
 *
 * jansson parses and validates UTF-8; this module adds what an API needs on
 * top: a nesting limit checked before parsing (so a hostile body cannot make
 * the parser recurse deeply), strict objects (unknown fields are errors), and
 * typed getters with ranges that answer with the documented 400 codes.
 */
#ifndef HP_JSON_H
#define HP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/http.h"

#define HP_JSON_MAX_DEPTH 8

/**
 * Scans a JSON text for its nesting depth, skipping strings. Pure; takes
 * (ptr, len) so it can be fuzzed.
 * @return 1 when the depth is at most max_depth, 0 otherwise
 */
int hp_json_depth_ok(const char *p, size_t len, int max_depth);

/**
 * Parses the request body as one JSON object. On failure answers 400
 * (bad_json or too_deep) and returns NULL. The caller owns the result.
 */
json_t *hp_json_parse_body(hp_req_t *r);

/* Validation outcome of the pure field checks below. */
typedef struct st_hp_json_err_t {
    int status;
    const char *code;
    char message[128];
} hp_json_err_t;

/** @return 0, or -1 with err filled when obj has a key outside allowed */
int hp_json_only_fields(const json_t *obj, const char *const *allowed, size_t num_allowed, hp_json_err_t *err);

/**
 * Reads an integer field in [min, max].
 * @return 1 when read, 0 when absent (and not required), -1 with err filled
 */
int hp_json_int(const json_t *obj, const char *key, int64_t min, int64_t max, int required, int64_t *out, hp_json_err_t *err);

/** Answers the error in err. */
void hp_json_respond_err(hp_req_t *r, const hp_json_err_t *err);

#endif
