/*
 * Unit tests of common/router: every API route is found with its ids, near
 * misses of a path are 404 and not a crash or a wrong route, a known path with
 * another method is 405 with the Allow list in table order, and malformed ids
 * are reported as BAD_ID (400) rather than 404.
 *
 * The table below copies the method and pattern of every line of
 * services/routes.h with dummy handlers, so these tests pin the matcher, not
 * the handlers. test_copied_table_matches_real_table catches a route that was
 * renamed or removed there without updating this copy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/router.h"
#include "services/handlers.h"
#include "services/routes.h"

/* One dummy per route: a match is identified by its index in ROUTES. */
static void dummy(struct st_hp_req_t *r)
{
    (void)r;
}

enum {
    R_HEALTHZ,
    R_READYZ,
    R_RESTAURANT_LIST,
    R_RESTAURANT_GET,
    R_MENU_GET,
    R_MENU_ITEM_PATCH,
    R_QUOTE,
    R_ORDER_CREATE,
    R_ORDER_GET,
    R_ORDER_EVENT,
    R_ORDER_HISTORY,
    R__COUNT
};

static const hp_route_t ROUTES[R__COUNT] = {
    [R_HEALTHZ] = {"GET", "/healthz", dummy, 0},
    [R_READYZ] = {"GET", "/readyz", dummy, 0},
    [R_RESTAURANT_LIST] = {"GET", "/restaurants", dummy, 0},
    [R_RESTAURANT_GET] = {"GET", "/restaurants/{id}", dummy, 0},
    [R_MENU_GET] = {"GET", "/restaurants/{id}/menu", dummy, 0},
    [R_MENU_ITEM_PATCH] = {"PATCH", "/restaurants/{id}/menu/items/{id}", dummy, 0},
    [R_QUOTE] = {"POST", "/cart/quote", dummy, 0},
    [R_ORDER_CREATE] = {"POST", "/orders", dummy, 0},
    [R_ORDER_GET] = {"GET", "/orders/{id}", dummy, 0},
    [R_ORDER_EVENT] = {"POST", "/orders/{id}/events", dummy, 0},
    [R_ORDER_HISTORY] = {"GET", "/users/{id}/orders", dummy, 0},
};

/* Matches a NUL-terminated method and path against ROUTES. */
static hp_route_status_t match(const char *method, const char *path, hp_route_match_t *m)
{
    return hp_router_match(ROUTES, R__COUNT, method, strlen(method), path, strlen(path), m);
}

static void assert_found(const char *method, const char *path, int route, size_t num_ids, int64_t id0, int64_t id1)
{
    hp_route_match_t m;
    assert_int_equal(match(method, path, &m), HP_ROUTE_FOUND);
    assert_int_equal(m.status, HP_ROUTE_FOUND);
    assert_ptr_equal(m.route, &ROUTES[route]);
    assert_int_equal(m.num_ids, num_ids);
    if (num_ids >= 1)
        assert_int_equal(m.ids[0], id0);
    if (num_ids >= 2)
        assert_int_equal(m.ids[1], id1);
}

static void assert_status(const char *method, const char *path, hp_route_status_t want)
{
    hp_route_match_t m;
    hp_route_status_t got = match(method, path, &m);
    if (got != want)
        fail_msg("%s %s: status %d, want %d", method, path, (int)got, (int)want);
    assert_int_equal(m.status, want);
}

/* --- found ------------------------------------------------------------------ */

static void test_every_route_found_with_its_ids(void **state)
{
    (void)state;
    assert_found("GET", "/healthz", R_HEALTHZ, 0, 0, 0);
    assert_found("GET", "/readyz", R_READYZ, 0, 0, 0);
    assert_found("GET", "/restaurants", R_RESTAURANT_LIST, 0, 0, 0);
    assert_found("GET", "/restaurants/7", R_RESTAURANT_GET, 1, 7, 0);
    assert_found("GET", "/restaurants/12/menu", R_MENU_GET, 1, 12, 0);
    assert_found("PATCH", "/restaurants/3/menu/items/45", R_MENU_ITEM_PATCH, 2, 3, 45);
    assert_found("POST", "/cart/quote", R_QUOTE, 0, 0, 0);
    assert_found("POST", "/orders", R_ORDER_CREATE, 0, 0, 0);
    assert_found("GET", "/orders/9007199254740991", R_ORDER_GET, 1, HP_ID_MAX, 0);
    assert_found("POST", "/orders/1/events", R_ORDER_EVENT, 1, 1, 0);
    assert_found("GET", "/users/100/orders", R_ORDER_HISTORY, 1, 100, 0);
}

static void test_copied_table_matches_real_table(void **state)
{
    (void)state;
    for (size_t i = 0; i != R__COUNT; ++i) {
        size_t k;
        for (k = 0; k != HP_API__COUNT; ++k)
            if (strcmp(hp_api_routes[k].method, ROUTES[i].method) == 0 && strcmp(hp_api_routes[k].pattern, ROUTES[i].pattern) == 0)
                break;
        if (k == HP_API__COUNT)
            fail_msg("%s %s is no longer in services/routes.h: update this copy", ROUTES[i].method, ROUTES[i].pattern);
    }
}

static void test_matcher_reads_only_path_len_bytes(void **state)
{
    (void)state;
    /* An exact-size heap copy with no NUL: any read past path_len is an ASan error. */
    static const char path[] = "/restaurants/12/menu";
    size_t len = sizeof(path) - 1;
    char *p = malloc(len);
    assert_non_null(p);
    memcpy(p, path, len);
    hp_route_match_t m;
    assert_int_equal(hp_router_match(ROUTES, R__COUNT, "GET", 3, p, len, &m), HP_ROUTE_FOUND);
    assert_ptr_equal(m.route, &ROUTES[R_MENU_GET]);
    assert_int_equal(m.ids[0], 12);
    /* A prefix of the same buffer is another route. */
    assert_int_equal(hp_router_match(ROUTES, R__COUNT, "GET", 3, p, strlen("/restaurants/12"), &m), HP_ROUTE_FOUND);
    assert_ptr_equal(m.route, &ROUTES[R_RESTAURANT_GET]);
    free(p);
}

/* --- not found -------------------------------------------------------------- */

static void test_near_miss_paths_not_found(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "",
        "/",
        "healthz",
        "/healthz/",
        "//healthz",
        "/healthz/x",
        "/health",
        "/healthzz",
        "/HEALTHZ",
        "/restaurants/",
        "/restaurants//menu",
        "/restaurants/1/",
        "/restaurants/1//",
        "/restaurants/1/menu/",
        "/restaurants/1/menu/items",
        "/restaurants/1/menu/items/",
        "/restaurants/1/menu/items/2/",
        "/restaurants/1/menu/items/2/x",
        "/restaurants//menu/items/2",
        "/restaurants/1/menu//2",
        "/restaurants/1/2",
        "/orders/",
        "/orders//events",
        "/orders/1/events/",
        "/orders/1/events/2",
        "/users//orders",
        "/users/1/orders/",
        "/users/1",
        "/cart",
        "/cart/quote/",
        "/cart//quote",
    };
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        assert_status("GET", paths[i], HP_ROUTE_NOT_FOUND);
        assert_status("POST", paths[i], HP_ROUTE_NOT_FOUND);
        assert_status("PATCH", paths[i], HP_ROUTE_NOT_FOUND);
    }
}

static void test_not_found_carries_no_route(void **state)
{
    (void)state;
    hp_route_match_t m;
    assert_int_equal(match("GET", "/nope", &m), HP_ROUTE_NOT_FOUND);
    assert_null(m.route);
    assert_int_equal(m.num_ids, 0);
    assert_string_equal(m.allow, "");
}

static void test_query_string_is_not_stripped_by_matcher(void **state)
{
    (void)state;
    /* The caller (common/runtime/server.c) cuts the path at query_at; the matcher sees whatever it is given. */
    assert_status("GET", "/restaurants?limit=5", HP_ROUTE_NOT_FOUND);
    assert_status("GET", "/orders/5?x=1", HP_ROUTE_BAD_ID);
    static const char full[] = "/orders/5?x=1";
    hp_route_match_t m;
    assert_int_equal(hp_router_match(ROUTES, R__COUNT, "GET", 3, full, strlen("/orders/5"), &m), HP_ROUTE_FOUND);
    assert_ptr_equal(m.route, &ROUTES[R_ORDER_GET]);
    assert_int_equal(m.ids[0], 5);
}

/* --- method not allowed ----------------------------------------------------- */

/* A known path asked with another method: 405, with the methods the path takes (NULL: not checked here). */
static const struct {
    const char *method, *path, *allow;
} not_allowed[] = {
    {"POST", "/restaurants/1", "GET"},
    {"GET", "/restaurants/1/menu/items/2", "PATCH"},
    {"GET", "/cart/quote", "POST"},
    {"DELETE", "/orders/1", "GET"},
    /* The method is case-sensitive. */
    {"get", "/healthz", "GET"},
    {"Post", "/orders", "POST"},
    /* It is compared by its length too. */
    {"GE", "/healthz", NULL},
    {"GETX", "/healthz", NULL},
    {"", "/healthz", NULL},
};

static void test_wrong_method_lists_allowed_methods(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(not_allowed) / sizeof(not_allowed[0]); ++i) {
        hp_route_match_t m;
        if (match(not_allowed[i].method, not_allowed[i].path, &m) != HP_ROUTE_METHOD_NOT_ALLOWED)
            fail_msg("%s %s is not 405", not_allowed[i].method, not_allowed[i].path);
        assert_null(m.route);
        if (not_allowed[i].allow != NULL)
            assert_string_equal(m.allow, not_allowed[i].allow);
    }
}

static void test_method_compared_by_length(void **state)
{
    (void)state;
    hp_route_match_t m;
    /* "GET" is a prefix of the buffer but method_len says 3. */
    assert_int_equal(hp_router_match(ROUTES, R__COUNT, "GETX", 3, "/healthz", 8, &m), HP_ROUTE_FOUND);
}

static void test_allow_lists_every_method_in_table_order(void **state)
{
    (void)state;
    static const hp_route_t table[] = {
        {"GET", "/things/{id}", dummy, 0},
        {"POST", "/things", dummy, 0},
        {"PATCH", "/things/{id}", dummy, 0},
        {"DELETE", "/things/{id}", dummy, 0},
    };
    hp_route_match_t m;
    assert_int_equal(hp_router_match(table, 4, "PUT", 3, "/things/1", 9, &m), HP_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, PATCH, DELETE");
    /* A method that exists on the path is found even after others were collected. */
    assert_int_equal(hp_router_match(table, 4, "DELETE", 6, "/things/1", 9, &m), HP_ROUTE_FOUND);
    assert_ptr_equal(m.route, &table[3]);
    assert_int_equal(m.ids[0], 1);
}

/*
 * Regression: in hp_router_match, when the Allow list outgrew m->allow[64], the
 * snprintf that did not fit still wrote a truncated method name into the buffer, and
 * allow_len is not advanced, so the list ended in a partial method. With ten
 * 8-letter methods on one path the result is
 * "METHOD01, ..., METHOD06, MET". Expected: whole method names only.
 * The real table has one method per path, so the server cannot hit it today.
 */
static void test_allow_overflow_keeps_whole_methods(void **state)
{
    (void)state;
    static const hp_route_t table[] = {
        {"METHOD01", "/x", dummy, 0}, {"METHOD02", "/x", dummy, 0}, {"METHOD03", "/x", dummy, 0}, {"METHOD04", "/x", dummy, 0},
        {"METHOD05", "/x", dummy, 0}, {"METHOD06", "/x", dummy, 0}, {"METHOD07", "/x", dummy, 0}, {"METHOD08", "/x", dummy, 0},
        {"METHOD09", "/x", dummy, 0}, {"METHOD10", "/x", dummy, 0},
    };
    hp_route_match_t m;
    assert_int_equal(hp_router_match(table, 10, "GET", 3, "/x", 2, &m), HP_ROUTE_METHOD_NOT_ALLOWED);
    assert_true(strlen(m.allow) < sizeof(m.allow));
    /* Every comma-separated entry is one of the table's methods. */
    char copy[sizeof(m.allow)];
    memcpy(copy, m.allow, sizeof(copy));
    for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (strlen(tok) != 8 || strncmp(tok, "METHOD", 6) != 0)
            fail_msg("partial method \"%s\" in Allow \"%s\"", tok, m.allow);
    }
}

/* --- bad ids ---------------------------------------------------------------- */

static void test_bad_ids_reported_with_route(void **state)
{
    (void)state;
    static const char *const ids[] = {
        "0",
        "-1",
        "+1",
        "01",
        "00",
        "1e3",
        "1.0",
        "0x10",
        " 1",
        "1 ",
        "abc",
        "9007199254740992", /* 2^53 */
        "9999999999999999",
        "10000000000000000",    /* 17 digits */
        "12345678901234567890", /* 20 digits */
        "%31",
        "\xd9\xa1",     /* ARABIC-INDIC DIGIT ONE */
        "\xef\xbc\x91", /* FULLWIDTH DIGIT ONE */
        "1\xff",
    };
    for (size_t i = 0; i != sizeof(ids) / sizeof(ids[0]); ++i) {
        char path[64];
        snprintf(path, sizeof(path), "/orders/%s", ids[i]);
        hp_route_match_t m;
        if (match("GET", path, &m) != HP_ROUTE_BAD_ID)
            fail_msg("id \"%s\": status %d, want BAD_ID", ids[i], (int)m.status);
        assert_ptr_equal(m.route, &ROUTES[R_ORDER_GET]);
    }
}

static void test_bad_second_id_is_bad_id(void **state)
{
    (void)state;
    hp_route_match_t m;
    assert_int_equal(match("PATCH", "/restaurants/1/menu/items/0", &m), HP_ROUTE_BAD_ID);
    assert_ptr_equal(m.route, &ROUTES[R_MENU_ITEM_PATCH]);
    assert_int_equal(match("PATCH", "/restaurants/x/menu/items/1", &m), HP_ROUTE_BAD_ID);
    assert_int_equal(match("GET", "/restaurants/01/menu", &m), HP_ROUTE_BAD_ID);
    assert_int_equal(match("GET", "/users/-5/orders", &m), HP_ROUTE_BAD_ID);
}

static void test_bad_id_with_wrong_method_is_method_not_allowed(void **state)
{
    (void)state;
    /* The path shape is known; the method is checked before the id matters. */
    hp_route_match_t m;
    assert_int_equal(match("POST", "/orders/abc", &m), HP_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
}

static void test_parse_id_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t want;
    } cases[] = {
        {"1", 1},
        {"9", 9},
        {"10", 10},
        {"42", 42},
        {"1000000", 1000000},
        {"4294967296", 4294967296LL},
        {"9007199254740990", 9007199254740990LL},
        {"9007199254740991", 9007199254740991LL},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        int64_t v = -7;
        if (hp_parse_id(cases[i].s, strlen(cases[i].s), &v) != 0)
            fail_msg("\"%s\" refused", cases[i].s);
        assert_int_equal(v, cases[i].want);
    }
}

static void test_parse_id_rejects_without_writing(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    "0",        "-1",  "01", "1e3", "9007199254740992",    "12345678901234567890",
                                      "%31", "\xd9\xa1", "1/2", "1a", "a1",  "18446744073709551617"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int64_t v = -7;
        if (hp_parse_id(bad[i], strlen(bad[i]), &v) != -1)
            fail_msg("\"%s\" accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, -7);
    }
}

static void test_parse_id_reads_only_len_bytes(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(hp_parse_id("12x", 2, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(hp_parse_id("123", 0, &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_found_with_its_ids),
        cmocka_unit_test(test_copied_table_matches_real_table),
        cmocka_unit_test(test_matcher_reads_only_path_len_bytes),
        cmocka_unit_test(test_near_miss_paths_not_found),
        cmocka_unit_test(test_not_found_carries_no_route),
        cmocka_unit_test(test_query_string_is_not_stripped_by_matcher),
        cmocka_unit_test(test_wrong_method_lists_allowed_methods),
        cmocka_unit_test(test_method_compared_by_length),
        cmocka_unit_test(test_allow_lists_every_method_in_table_order),
        cmocka_unit_test(test_allow_overflow_keeps_whole_methods),
        cmocka_unit_test(test_bad_ids_reported_with_route),
        cmocka_unit_test(test_bad_second_id_is_bad_id),
        cmocka_unit_test(test_bad_id_with_wrong_method_is_method_not_allowed),
        cmocka_unit_test(test_parse_id_accepts),
        cmocka_unit_test(test_parse_id_rejects_without_writing),
        cmocka_unit_test(test_parse_id_reads_only_len_bytes),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
