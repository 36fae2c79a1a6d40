/*
 * fuzz_body: the gates every JSON request body passes before a validator sees
 * it, for the libFuzzer drivers of tests/fuzz.
 *
 * runtime/params.c's hp_body_json() takes a live request and answers it on
 * failure, so a driver cannot call it without a server around it. This helper
 * applies the same three gates in the same order, through the same public
 * pieces (hp_json_depth_ok with HP_JSON_MAX_DEPTH, json_loadb with
 * JSON_REJECT_DUPLICATES, an object at the top), so the validator under test
 * receives exactly the documents the server would hand it. If those gates
 * change in json.c, change them here too.
 */
#ifndef HP_FUZZ_BODY_H
#define HP_FUZZ_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/errors.h"
#include "base/json.h"
#include "runtime/http.h"

/** @return the parsed body (the caller decrefs it), or NULL when the server would answer 400 before validation */
static inline json_t *hp_fuzz_body(const uint8_t *data, size_t size)
{
    if (size == 0 || size > HP_MAX_BODY)
        return NULL;
    if (!hp_json_depth_ok((const char *)data, size, HP_JSON_MAX_DEPTH))
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/**
 * Checks the contract of a validation failure: a 4xx status, a code, and a
 * NUL-terminated message that is not empty. Aborts (a finding) otherwise.
 */
static inline void hp_fuzz_check_err(const hp_json_err_t *err)
{
    if ((unsigned)err->code >= HP_E__COUNT || hp_errors[err->code].status < 400 || hp_errors[err->code].status > 499)
        abort();
    if (memchr(err->message, '\0', sizeof(err->message)) == NULL || err->message[0] == '\0')
        abort();
}

#endif
