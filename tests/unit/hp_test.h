/*
 * Helpers the cmocka unit tests share, so that a fixture or a check that
 * several test files need is written once. Header-only, because every file
 * under tests/unit/test_*.c is a test program of its own (CMakeLists.txt
 * globs them) and a shared source file would need a build rule.
 *
 * Include it after <cmocka.h>: the helpers fail the running test with
 * cmocka's assertions.
 */
#ifndef HP_TEST_H
#define HP_TEST_H

#include <string.h>

#include <jansson.h>

#include "base/json.h"

/* The number of elements of a case table. */
#define HP_NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Parses a test document written as JSON text; the caller decrefs it. A text that does not parse fails the test. */
static inline json_t *hp_test_doc(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (doc == NULL)
        fail_msg("test document does not parse: %s: %s", text, jerr.text);
    return doc;
}

/*
 * Checks the error a refused body left in err: the HTTP status and code of
 * its error, and its message, exactly when message is given and as some
 * text when it is NULL. what names the body in a failure's message.
 */
static inline void hp_test_assert_err(const char *what, const hp_json_err_t *err, int status, const char *code, const char *message)
{
    const hp_error_def_t *got = hp_error_def(err->code);
    if (got->status != status || strcmp(got->code, code) != 0)
        fail_msg("%s: got %d %s (%s), want %d %s", what, got->status, got->code, err->message, status, code);
    if (message != NULL)
        assert_string_equal(err->message, message);
    else
        assert_true(err->message[0] != '\0');
}

#endif
