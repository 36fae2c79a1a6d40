/*
 * Unit tests of services/cart's pure parser, hp_cart_from_json: a full cart is
 * read field by field, and each class of bad body gets the status and code the
 * API documents (400 missing_field, invalid_field, unknown_field; 422
 * empty_cart, too_many_lines). Pricing needs PostgreSQL and is left to e2e.
 *
 * Documents are written as JSON text and parsed with json_loads, so a test
 * reads like the body a client would send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/cart.h"
#include "hp_test.h"

/* Parses text as a cart. @return hp_cart_from_json's result */
static int parse(const char *text, hp_cart_t *cart, hp_json_err_t *err)
{
    json_t *doc = hp_test_doc(text);
    memset(err, 0, sizeof(*err));
    int rc = hp_cart_from_json(doc, cart, err);
    json_decref(doc);
    return rc;
}

static void assert_ok(const char *text, hp_cart_t *cart)
{
    hp_json_err_t err;
    if (parse(text, cart, &err) != 0)
        fail_msg("refused (%d %s: %s): %s", hp_error_def(err.code)->status, hp_error_def(err.code)->code, err.message, text);
}

static void assert_refused(const char *text, int status, const char *code)
{
    hp_cart_t cart;
    hp_json_err_t err;
    if (parse(text, &cart, &err) != -1)
        fail_msg("accepted: %s", text);
    hp_test_assert_err(text, &err, status, code, NULL);
}

/* A body of n lines {"item_id": i+1, "quantity": 1}. */
static char *body_with_lines(size_t n)
{
    size_t cap = 64 + n * 40, o = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    o += (size_t)snprintf(buf + o, cap - o, "{\"restaurant_id\":1,\"items\":[");
    for (size_t i = 0; i != n; ++i)
        o += (size_t)snprintf(buf + o, cap - o, "%s{\"item_id\":%zu,\"quantity\":1}", i != 0 ? "," : "", i + 1);
    snprintf(buf + o, cap - o, "]}");
    return buf;
}

/* --- accepted ----------------------------------------------------------------- */

static void test_full_cart_parsed(void **state)
{
    (void)state;
    hp_cart_t cart;
    assert_ok("{\"restaurant_id\":12,"
              " \"items\":[{\"item_id\":101,\"quantity\":2,\"modifier_ids\":[7,8]},"
              "            {\"item_id\":102,\"quantity\":99}],"
              " \"tip_cents\":250,"
              " \"delivery\":{\"lat\":38.7223,\"lon\":-9.1393}}",
              &cart);
    assert_int_equal(cart.restaurant_id, 12);
    assert_int_equal(cart.num_lines, 2);
    assert_int_equal(cart.lines[0].item_id, 101);
    assert_int_equal(cart.lines[0].quantity, 2);
    assert_int_equal(cart.lines[0].num_modifier_ids, 2);
    assert_int_equal(cart.lines[0].modifier_ids[0], 7);
    assert_int_equal(cart.lines[0].modifier_ids[1], 8);
    assert_int_equal(cart.lines[1].item_id, 102);
    assert_int_equal(cart.lines[1].quantity, 99);
    assert_int_equal(cart.lines[1].num_modifier_ids, 0);
    assert_int_equal(cart.tip_cents, 250);
    assert_int_equal(cart.has_delivery, 1);
    assert_true(cart.delivery_lat == 38.7223);
    assert_true(cart.delivery_lon == -9.1393);
}

static void test_minimal_cart_has_defaults(void **state)
{
    (void)state;
    hp_cart_t cart;
    memset(&cart, 0xa5, sizeof(cart));
    assert_ok("{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}]}", &cart);
    assert_int_equal(cart.num_lines, 1);
    assert_int_equal(cart.tip_cents, 0);
    assert_int_equal(cart.has_delivery, 0);
    assert_true(cart.delivery_lat == 0 && cart.delivery_lon == 0);
    assert_int_equal(cart.lines[0].num_modifier_ids, 0);
    /* Only the header is zeroed (services/cart.h): a line past num_lines keeps what was there. */
    assert_int_equal(cart.lines[1].quantity, (int32_t)0xa5a5a5a5);
}

static void test_field_order_does_not_matter(void **state)
{
    (void)state;
    hp_cart_t cart;
    assert_ok("{\"delivery\":{\"lon\":2,\"lat\":1},\"items\":[{\"quantity\":3,\"modifier_ids\":[],\"item_id\":4}],"
              "\"tip_cents\":0,\"restaurant_id\":9}",
              &cart);
    assert_int_equal(cart.restaurant_id, 9);
    assert_int_equal(cart.lines[0].item_id, 4);
    assert_int_equal(cart.lines[0].quantity, 3);
    assert_true(cart.delivery_lat == 1.0);
    assert_true(cart.delivery_lon == 2.0);
}

static void test_two_hundred_lines_ok(void **state)
{
    (void)state;
    hp_cart_t cart;
    char *text = body_with_lines(HP_TOTAL_MAX_LINES);
    assert_int_equal(HP_TOTAL_MAX_LINES, 200);
    assert_ok(text, &cart);
    assert_int_equal(cart.num_lines, 200);
    assert_int_equal(cart.lines[199].item_id, 200);
    free(text);
}

static void test_boundary_values_accepted(void **state)
{
    (void)state;
    hp_cart_t cart;
    assert_ok("{\"restaurant_id\":9007199254740991,\"items\":[{\"item_id\":9007199254740991,\"quantity\":1,"
              "\"modifier_ids\":[1,2,3,4,5,6,7,8,9,9007199254740991]}],\"tip_cents\":100000,"
              "\"delivery\":{\"lat\":-90,\"lon\":180}}",
              &cart);
    assert_int_equal(cart.restaurant_id, 9007199254740991LL);
    assert_int_equal(cart.lines[0].num_modifier_ids, 10);
    assert_int_equal(cart.lines[0].modifier_ids[9], 9007199254740991LL);
    assert_int_equal(cart.tip_cents, 100000);
    assert_true(cart.delivery_lat == -90.0);
    assert_true(cart.delivery_lon == 180.0);
    assert_ok(
        "{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"tip_cents\":0,\"delivery\":{\"lat\":90,\"lon\":-180}}",
        &cart);
}

/* --- refused ------------------------------------------------------------------ */

/* Bodies refused, each with the status and code the API documents for it. */
static const struct {
    const char *text;
    int status;
    const char *code;
} refused[] = {
    /* missing required fields */
    {"{\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "missing_field"},
    {"{\"restaurant_id\":1}", 400, "missing_field"},
    {"{}", 400, "missing_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"quantity\":1}]}", 400, "missing_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":1}]}", 400, "missing_field"},
    /* wrong top-level types */
    {"{\"restaurant_id\":\"1\",\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1.0,\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":null,\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":0,\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":9007199254740992,\"items\":[{\"item_id\":5,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":{}}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":null}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":\"[]\"}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"tip_cents\":\"5\"}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"tip_cents\":1.5}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":null}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":[1,2]}", 400, "invalid_field"},
    /* wrong line types */
    {"{\"restaurant_id\":1,\"items\":[5]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[null]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[[5,1]]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":\"5\",\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":0,\"quantity\":1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":true}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":7}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":null}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[\"7\"]}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[7.0]}]}", 400, "invalid_field"},
    /* unknown fields */
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"coupon\":\"X\"}", 400, "unknown_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"Restaurant_id\":1}", 400, "unknown_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"price_cents\":1}]}", 400, "unknown_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifiers\":[1]}]}", 400, "unknown_field"},
    /* no lines is 422 empty_cart */
    {"{\"restaurant_id\":1,\"items\":[]}", 422, "empty_cart"},
    /* quantity out of range */
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":0}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":100}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":-1}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":4294967297}]}", 400, "invalid_field"},
    /* modifier_ids limits */
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[1,2,3,4,5,6,7,8,9,10,11]}]}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[0]}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[-3]}]}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1,\"modifier_ids\":[9007199254740992]}]}", 400, "invalid_field"},
    /* tip out of range */
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"tip_cents\":-1}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"tip_cents\":100001}", 400, "invalid_field"},
    /* delivery errors */
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":91,\"lon\":0}}", 400, "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":-90.0001,\"lon\":0}}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":0,\"lon\":-181}}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":0,\"lon\":180.5}}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":\"1\",\"lon\":0}}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":0,\"lon\":null}}", 400,
     "invalid_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":0}}", 400, "missing_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lon\":0}}", 400, "missing_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{}}", 400, "missing_field"},
    {"{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1}],\"delivery\":{\"lat\":0,\"lon\":0,\"alt\":5}}", 400,
     "unknown_field"},
};

static void test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i != HP_NELEMS(refused); ++i)
        assert_refused(refused[i].text, refused[i].status, refused[i].code);
}

static void test_error_in_later_line_is_reported(void **state)
{
    (void)state;
    hp_cart_t cart;
    hp_json_err_t err;
    assert_int_equal(parse("{\"restaurant_id\":1,\"items\":[{\"item_id\":5,\"quantity\":1},{\"item_id\":5,\"quantity\":1},{\"item_"
                           "id\":5,\"quantity\":1,\"modifier_ids\":[0]}]}",
                           &cart, &err),
                     -1);
    hp_test_assert_err("a bad modifier in items[2]", &err, 400, "invalid_field", NULL);
    assert_non_null(strstr(err.message, "items[2]"));
}

static void test_two_hundred_one_lines_is_422_too_many_lines(void **state)
{
    (void)state;
    char *text = body_with_lines(HP_TOTAL_MAX_LINES + 1);
    assert_refused(text, 422, "too_many_lines");
    free(text);
    text = body_with_lines(1000);
    assert_refused(text, 422, "too_many_lines");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_cart_parsed),
        cmocka_unit_test(test_minimal_cart_has_defaults),
        cmocka_unit_test(test_field_order_does_not_matter),
        cmocka_unit_test(test_two_hundred_lines_ok),
        cmocka_unit_test(test_boundary_values_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_error_in_later_line_is_reported),
        cmocka_unit_test(test_two_hundred_one_lines_is_422_too_many_lines),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
