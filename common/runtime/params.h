/*
 * params: what a request carries besides its path, read with the answer for
 * bad input built in.
 *
 * Every reader here either gives the handler a value or answers 400 with the
 * documented code (bad_param, bad_cursor, bad_json, too_deep) and returns -1
 * (or NULL), so a handler's validation is a chain of calls that each return
 * early, and every route words the same mistake the same way.
 */
#ifndef HP_PARAMS_H
#define HP_PARAMS_H

#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "base/json.h"
#include "runtime/http.h"

/**
 * Finds a query-string parameter, percent-decoded into the pool.
 * @return 1 and *out when present (possibly empty), 0 when absent, -1 when malformed
 */
int hp_query_param(hp_req_t *r, const char *name, h2o_iovec_t *out);

/**
 * Reads an integer parameter in [lo, hi] (decimal digits, no sign), def when absent.
 * @return 0, or -1 after answering 400 bad_param "NAME must be an integer from LO to HI"
 */
int hp_param_int(hp_req_t *r, const char *name, int64_t lo, int64_t hi, int64_t def, int64_t *out);

/** ?limit= in 1..max, def when absent. @return 0, or -1 after answering 400 */
int hp_param_limit(hp_req_t *r, int def, int max, int *out);

/**
 * Reads a parameter that must be one of `choices` (a NULL-terminated list),
 * setting *out to its index, or def when absent.
 * @param what the sentence of the 400 answer ("format must be json or md")
 * @return 0, or -1 after answering 400 bad_param
 */
int hp_param_choice(hp_req_t *r, const char *name, const char *const *choices, int def, int *out, const char *what);

/**
 * Reads an optional text parameter: valid UTF-8, at most max_bytes.
 * @return 0 (absent: *out NULL), 1, or -1 after answering 400
 */
int hp_param_text(hp_req_t *r, const char *name, size_t max_bytes, const char **out);

/** Reads ?cursor= of the given kind (base/cursor.h). @return 0 (with *present), or -1 after answering 400 bad_cursor */
int hp_param_cursor(hp_req_t *r, uint8_t kind, int *present, int64_t *k1, int64_t *k2);

/**
 * Parses the request body as one JSON object, counted in the parse stage. On
 * failure answers 400 (bad_json or too_deep) and returns NULL. The caller
 * owns the result.
 */
json_t *hp_body_json(hp_req_t *r);

/** Answers the validation error of base/json.h's checks. */
void hp_respond_json_err(hp_req_t *r, const hp_json_err_t *err);

#endif
