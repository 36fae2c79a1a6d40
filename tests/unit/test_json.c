/*
 * Unit tests of common/json's pure parts: the nesting scan that runs before
 * jansson sees a body (exact limit, strings skipped, escapes honoured, hostile
 * input refused early and never read past its length), strict objects, and the
 * typed integer getter with its documented 400 codes and messages.
 *
 * hp_json_parse_body needs an h2o request and is left to the e2e tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/json.h"
#include "hp_test.h"

/* --- hp_json_depth_ok ----------------------------------------------------- */

/* Texts and whether the scan accepts them at a depth limit, HP_JSON_MAX_DEPTH but where a row says otherwise. */
static const struct {
    const char *text;
    int max_depth, ok;
} depth_cases[] = {
    /* Eight levels are the limit, of arrays and objects alike. */
    {"[[[[[[[[]]]]]]]]", HP_JSON_MAX_DEPTH, 1},
    {"[[[[[[[[[]]]]]]]]]", HP_JSON_MAX_DEPTH, 0},
    {"{\"a\":{\"b\":{\"c\":{\"d\":[[[[1]]]]}}}}", HP_JSON_MAX_DEPTH, 1},
    {"{\"a\":{\"b\":{\"c\":{\"d\":[[[[[1]]]]]}}}}", HP_JSON_MAX_DEPTH, 0},
    /* Nesting counts, not the total of brackets: twenty siblings of depth 2 are never deeper than 2. */
    {"[[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]]", HP_JSON_MAX_DEPTH, 1},
    {"[[]]", 2, 1},
    {"[[[]]]", 2, 0},
    {"", HP_JSON_MAX_DEPTH, 1},
    {"42", HP_JSON_MAX_DEPTH, 1},
    /* Brackets in strings are not nesting; a key may hold brackets too. */
    {"{\"k\":\"[[[[[[[[[[[[{{{{{{{{{{\"}", HP_JSON_MAX_DEPTH, 1},
    {"[\"[[[[[[[[[[\",\"{{{{{{{{{{\"]", HP_JSON_MAX_DEPTH, 1},
    {"{\"[[[[[[[[[[[[\":1}", HP_JSON_MAX_DEPTH, 1},
    /* \" does not end the string, so the brackets after it are still inside. */
    {"[\"a\\\"[[[[[[[[[[\"]", HP_JSON_MAX_DEPTH, 1},
    /* \\ ends in a backslash; the quote after it does end the string. */
    {"[\"a\\\\\"[[[[[[[[[]]]]]]]]]]", HP_JSON_MAX_DEPTH, 0},
    {"[\"a\\\\\",[[[[[[[]]]]]]]]", HP_JSON_MAX_DEPTH, 1},
    /* \u0022 is a quote character, not a string end. */
    {"[\"\\u0022[[[[[[[[[[\"]", HP_JSON_MAX_DEPTH, 1},
    /* An unterminated string hides the rest. Not the scan's job to refuse: jansson reports bad_json. The scan just must
       not count inside. */
    {"[\"abc", HP_JSON_MAX_DEPTH, 1},
    {"\"[[[[[[[[[[[[[[[[[[", HP_JSON_MAX_DEPTH, 1},
};

static void test_depth_cases(void **state)
{
    (void)state;
    assert_int_equal(HP_JSON_MAX_DEPTH, 8);
    for (size_t i = 0; i != HP_NELEMS(depth_cases); ++i)
        if (hp_json_depth_ok(depth_cases[i].text, strlen(depth_cases[i].text), depth_cases[i].max_depth) != depth_cases[i].ok)
            fail_msg("%s at depth %d: want %s", depth_cases[i].text, depth_cases[i].max_depth,
                     depth_cases[i].ok ? "accepted" : "refused");
}

/*
 * Regression: hp_json_depth_ok once read past the buffer when the last byte of
 * the text was a backslash inside a string (`["\` with len 3): the escape skip
 * moved i to len and the loop's ++i to len + 1, so `i != len` never held again
 * and the scan ran past the buffer. hp_json_parse_body calls it on the raw request body, so any client
 * can trigger the overread. The bytes after len below close the string and open
 * sixteen arrays, so an unbounded scan returns 0; the expected answer for the
 * first three bytes is 1 (depth 1).
 */
static void test_depth_trailing_backslash_stays_in_bounds(void **state)
{
    (void)state;
    /* len 3 covers `["\`; the rest is a guard that a bounded scan never sees. */
    static const char buf[] = "[\"\\x\"[[[[[[[[[[[[[[[[";
    assert_true(hp_json_depth_ok(buf, 3, HP_JSON_MAX_DEPTH));
    assert_true(hp_json_depth_ok(buf, 2, HP_JSON_MAX_DEPTH));
}

static void test_depth_reads_only_len_bytes(void **state)
{
    (void)state;
    /* Exact-size heap copy with no NUL: ASan catches any read past len. */
    static const char text[] = "{\"a\":[1,2,{\"b\":\"x\\\"y\"}]}";
    size_t len = sizeof(text) - 1;
    char *p = malloc(len);
    assert_non_null(p);
    memcpy(p, text, len);
    assert_true(hp_json_depth_ok(p, len, HP_JSON_MAX_DEPTH));
    free(p);
    /* And the limit is judged on the first len bytes only. */
    assert_true(hp_json_depth_ok("[[[[[[[[[[[[", 8, HP_JSON_MAX_DEPTH));
}

static void test_depth_ten_thousand_brackets_refused_early(void **state)
{
    (void)state;
    enum { N = 10000 };
    char *p = malloc(N);
    assert_non_null(p);
    memset(p, '[', N);
    assert_false(hp_json_depth_ok(p, N, HP_JSON_MAX_DEPTH));
    memset(p, '{', N);
    assert_false(hp_json_depth_ok(p, N, HP_JSON_MAX_DEPTH));
    free(p);

    /*
     * The scan must stop at the ninth opener rather than walk the whole body.
     * A page of '[' is followed by an unreadable page and the length claims
     * both: a scan that stopped early never touches the second page, and one
     * that did not would fault there. This checks the mechanism, not a time.
     */
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    memset(map, '[', (size_t)page);
    assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    assert_false(hp_json_depth_ok(map, (size_t)page * 2, HP_JSON_MAX_DEPTH));
    munmap(map, (size_t)page * 2);
}

/* --- hp_json_only_fields -------------------------------------------------- */

static const char *const ALLOWED[] = {"restaurant_id", "items", "tip_cents"};

static void test_only_fields_accepts_subset_and_empty(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    json_t *doc = hp_test_doc("{\"items\":[],\"tip_cents\":1}");
    assert_int_equal(hp_json_only_fields(doc, ALLOWED, 3, &err), 0);
    json_decref(doc);
    doc = hp_test_doc("{}");
    assert_int_equal(hp_json_only_fields(doc, ALLOWED, 3, &err), 0);
    assert_int_equal(hp_json_only_fields(doc, NULL, 0, &err), 0);
    json_decref(doc);
}

static void test_only_fields_refuses_unknown_with_400(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    json_t *doc = hp_test_doc("{\"items\":[],\"coupon\":\"FREE\"}");
    assert_int_equal(hp_json_only_fields(doc, ALLOWED, 3, &err), -1);
    hp_test_assert_err("a coupon", &err, 400, "unknown_field", "unknown field coupon");
    json_decref(doc);
}

static void test_only_fields_is_case_and_prefix_exact(void **state)
{
    (void)state;
    static const char *const docs[] = {"{\"Items\":1}", "{\"item\":1}", "{\"itemsx\":1}", "{\"\":1}", "{\"items \":1}"};
    for (size_t i = 0; i != HP_NELEMS(docs); ++i) {
        hp_json_err_t err = {0};
        json_t *doc = hp_test_doc(docs[i]);
        if (hp_json_only_fields(doc, ALLOWED, 3, &err) != -1)
            fail_msg("%s accepted", docs[i]);
        assert_string_equal(hp_error_def(err.code)->code, "unknown_field");
        json_decref(doc);
    }
}

static void test_only_fields_message_sanitizes_key(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    json_t *doc = hp_test_doc("{\"a\\\"b\\\\c\\n\\u00e9\":1}"); /* a"b\c<LF>é (é is two UTF-8 bytes) */
    assert_int_equal(hp_json_only_fields(doc, ALLOWED, 3, &err), -1);
    assert_string_equal(err.message, "unknown field a?b?c???");
    json_decref(doc);
}

static void test_only_fields_message_truncates_long_key(void **state)
{
    (void)state;
    char text[256], key[201];
    memset(key, 'k', 200);
    key[200] = '\0';
    snprintf(text, sizeof(text), "{\"%s\":1}", key);
    hp_json_err_t err = {0};
    json_t *doc = hp_test_doc(text);
    assert_int_equal(hp_json_only_fields(doc, ALLOWED, 3, &err), -1);
    assert_string_equal(err.message, "unknown field kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"); /* 40 */
    json_decref(doc);
}

/* --- hp_json_int ---------------------------------------------------------- */

/* hp_json_int on key of the document text. @return its result */
static int int_of(const char *text, const char *key, int64_t lo, int64_t hi, int required, int64_t *v, hp_json_err_t *err)
{
    json_t *doc = hp_test_doc(text);
    int rc = hp_json_int(doc, key, lo, hi, required, v, err);
    json_decref(doc);
    return rc;
}

static void test_int_reads_value(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    int64_t v = 0;
    json_t *doc = hp_test_doc("{\"n\":42,\"neg\":-5,\"big\":9007199254740991}");
    assert_int_equal(hp_json_int(doc, "n", 1, 100, 1, &v, &err), 1);
    assert_int_equal(v, 42);
    assert_int_equal(hp_json_int(doc, "neg", -10, 0, 0, &v, &err), 1);
    assert_int_equal(v, -5);
    assert_int_equal(hp_json_int(doc, "big", 1, 9007199254740991LL, 1, &v, &err), 1);
    assert_int_equal(v, 9007199254740991LL);
    json_decref(doc);
}

static void test_int_missing_required_is_400_missing_field(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    int64_t v = 77;
    assert_int_equal(int_of("{\"other\":1}", "quantity", 1, 99, 1, &v, &err), -1);
    hp_test_assert_err("no quantity", &err, 400, "missing_field", "missing field quantity");
    assert_int_equal(v, 77);
}

static void test_int_missing_optional_returns_0_untouched(void **state)
{
    (void)state;
    hp_json_err_t err = {.code = HP_E__COUNT};
    int64_t v = 77;
    assert_int_equal(int_of("{}", "tip_cents", 0, 100, 0, &v, &err), 0);
    assert_int_equal(v, 77);
    assert_int_equal(err.code, HP_E__COUNT);
}

static void test_int_wrong_types_are_400_invalid_field(void **state)
{
    (void)state;
    /* null is present, so it is a wrong type even for an optional field. */
    static const char *const docs[] = {"{\"n\":1.0}",  "{\"n\":\"1\"}", "{\"n\":true}", "{\"n\":false}",
                                       "{\"n\":null}", "{\"n\":[1]}",   "{\"n\":{}}",   "{\"n\":1e2}"};
    for (size_t i = 0; i != HP_NELEMS(docs); ++i) {
        for (int required = 0; required != 2; ++required) {
            hp_json_err_t err = {0};
            int64_t v = 77;
            if (int_of(docs[i], "n", 0, 1000, required, &v, &err) != -1)
                fail_msg("%s accepted (required %d)", docs[i], required);
            hp_test_assert_err(docs[i], &err, 400, "invalid_field", "field n must be an integer");
            assert_int_equal(v, 77);
        }
    }
}

static void test_int_range_boundaries(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
    } cases[] = {
        {"{\"q\":1}", 1},
        {"{\"q\":99}", 1},
        {"{\"q\":0}", 0},
        {"{\"q\":100}", 0},
        {"{\"q\":-1}", 0},
        {"{\"q\":-9223372036854775808}", 0},
        {"{\"q\":9223372036854775807}", 0},
    };
    for (size_t i = 0; i != HP_NELEMS(cases); ++i) {
        hp_json_err_t err = {0};
        int64_t v = 77;
        int rc = int_of(cases[i].text, "q", 1, 99, 1, &v, &err);
        if (cases[i].ok) {
            assert_int_equal(rc, 1);
            assert_int_not_equal(v, 77);
        } else {
            if (rc != -1)
                fail_msg("%s accepted in 1..99", cases[i].text);
            hp_test_assert_err(cases[i].text, &err, 400, "invalid_field", "field q is out of range");
            assert_int_equal(v, 77);
        }
    }
}

static void test_int_full_int64_range(void **state)
{
    (void)state;
    hp_json_err_t err = {0};
    int64_t v = 0;
    json_t *doc = hp_test_doc("{\"lo\":-9223372036854775808,\"hi\":9223372036854775807}");
    assert_int_equal(hp_json_int(doc, "lo", INT64_MIN, INT64_MAX, 1, &v, &err), 1);
    assert_true(v == INT64_MIN);
    assert_int_equal(hp_json_int(doc, "hi", INT64_MIN, INT64_MAX, 1, &v, &err), 1);
    assert_true(v == INT64_MAX);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_cases),
        cmocka_unit_test(test_depth_trailing_backslash_stays_in_bounds),
        cmocka_unit_test(test_depth_reads_only_len_bytes),
        cmocka_unit_test(test_depth_ten_thousand_brackets_refused_early),
        cmocka_unit_test(test_only_fields_accepts_subset_and_empty),
        cmocka_unit_test(test_only_fields_refuses_unknown_with_400),
        cmocka_unit_test(test_only_fields_is_case_and_prefix_exact),
        cmocka_unit_test(test_only_fields_message_sanitizes_key),
        cmocka_unit_test(test_only_fields_message_truncates_long_key),
        cmocka_unit_test(test_int_reads_value),
        cmocka_unit_test(test_int_missing_required_is_400_missing_field),
        cmocka_unit_test(test_int_missing_optional_returns_0_untouched),
        cmocka_unit_test(test_int_wrong_types_are_400_invalid_field),
        cmocka_unit_test(test_int_range_boundaries),
        cmocka_unit_test(test_int_full_int64_range),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
