/*
 * Unit tests of common/runtime/replica: the pg_lsn parser, the routing
 * decision of a standby-eligible read, and the read-your-writes table (its
 * atomic maximum, key 0, and the bound that a bucket shared by two keys only
 * errs towards the primary).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/replica.h"

static int parse(const char *s, uint64_t *out)
{
    return hp_replica_parse_lsn(s, strlen(s), out);
}

static void test_parse_lsn(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_int_equal(parse("0/0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(parse("16/B374D848", &v), 0);
    assert_true(v == ((UINT64_C(0x16) << 32) | UINT64_C(0xB374D848)));
    assert_int_equal(parse("ffffffff/ffffffff", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(parse("0/3000148", &v), 0);
    assert_true(v == UINT64_C(0x3000148));
    /* Comparison of positions follows the numbers, not the text. */
    uint64_t a, b;
    assert_int_equal(parse("0/FFFFFFFF", &a), 0);
    assert_int_equal(parse("1/0", &b), 0);
    assert_true(a < b);
}

static void test_parse_lsn_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {"",     "/",           "0/",          "/0",   "0",    "0/0/0", "g/0",
                                "0/x1", "123456789/0", "0/123456789", " 0/0", "0/0 ", "-1/0",  "0//0"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        uint64_t v = 42;
        assert_int_equal(parse(bad[i], &v), -1);
        assert_true(v == 42);
    }
    /* A length that cuts the text short is honoured: "1/2" read as "1/". */
    uint64_t v;
    assert_int_equal(hp_replica_parse_lsn("1/2", 2, &v), -1);
}

static void test_route(void **state)
{
    (void)state;
    hp_replica_mark_t none = {0, 0}, fresh = {1000, 0}, window = {0, 5000};
    /* Off, or no standby configured: an ordinary read, whatever else holds. */
    assert_int_equal(hp_replica_route(0, 1, &none, 0, 0), HP_REPLICA_PRIMARY_OFF);
    assert_int_equal(hp_replica_route(0, 0, &fresh, 0, 0), HP_REPLICA_PRIMARY_OFF);
    /* On with the standby down: a fallback, whatever the key. */
    assert_int_equal(hp_replica_route(1, 0, &none, 2000, 0), HP_REPLICA_PRIMARY_DOWN);
    /* A read with no commit of its own goes to the standby, even before the first replay poll. */
    assert_int_equal(hp_replica_route(1, 1, &none, 0, 0), HP_REPLICA_STANDBY);
    /* A commit the standby has not replayed keeps the read on the primary; replayed (equal or past), it does not. */
    assert_int_equal(hp_replica_route(1, 1, &fresh, 0, 0), HP_REPLICA_PRIMARY_FRESH);
    assert_int_equal(hp_replica_route(1, 1, &fresh, 999, 0), HP_REPLICA_PRIMARY_FRESH);
    assert_int_equal(hp_replica_route(1, 1, &fresh, 1000, 0), HP_REPLICA_STANDBY);
    assert_int_equal(hp_replica_route(1, 1, &fresh, 1001, 0), HP_REPLICA_STANDBY);
    /* A commit of unknown position holds the read on the primary until its deadline, replayed or not. */
    assert_int_equal(hp_replica_route(1, 1, &window, UINT64_MAX, 4999), HP_REPLICA_PRIMARY_FRESH);
    assert_int_equal(hp_replica_route(1, 1, &window, UINT64_MAX, 5000), HP_REPLICA_STANDBY);
}

static void test_table(void **state)
{
    (void)state;
    hp_replica_reset();
    hp_replica_mark_t m = hp_replica_mark(7);
    assert_true(m.lsn == 0 && m.until_ns == 0);
    /* The largest position wins: a late note of an older commit never lowers it. */
    hp_replica_note_lsn(7, 500);
    hp_replica_note_lsn(7, 300);
    assert_true(hp_replica_mark(7).lsn == 500);
    hp_replica_note_lsn(7, 900);
    assert_true(hp_replica_mark(7).lsn == 900);
    hp_replica_note_until(7, 100);
    hp_replica_note_until(7, 50);
    assert_true(hp_replica_mark(7).until_ns == 100);
    /* Key 0 is a read without a key: never noted, never held. */
    hp_replica_note_lsn(0, 12345);
    m = hp_replica_mark(0);
    assert_true(m.lsn == 0 && m.until_ns == 0);
    /* Restaurants (negated ids) and customers live in one table. */
    hp_replica_note_lsn(-7, 77);
    assert_true(hp_replica_mark(-7).lsn >= 77);
    hp_replica_reset();
    assert_true(hp_replica_mark(7).lsn == 0);
}

static void test_table_never_forgets(void **state)
{
    (void)state;
    /*
     * More keys than buckets: whatever shares a bucket, every key still
     * reads a mark at least as large as its own note, so no read of a
     * customer who ordered goes to a standby that lacks the order.
     */
    hp_replica_reset();
    const int64_t n = 3 * HP_REPLICA_BUCKETS;
    for (int64_t k = 1; k <= n; ++k)
        hp_replica_note_lsn(k, (uint64_t)k * 10);
    for (int64_t k = 1; k <= n; ++k)
        assert_true(hp_replica_mark(k).lsn >= (uint64_t)k * 10);
    size_t distinct = 0;
    /* Dense ids spread out: of 64 neighbours noted in turn, nearly every one finds its bucket still empty. */
    hp_replica_reset();
    for (int64_t k = 1; k <= 64; ++k) {
        if (hp_replica_mark(k).lsn == 0)
            ++distinct;
        hp_replica_note_lsn(k, 1);
    }
    assert_true(distinct >= 60);
    hp_replica_reset();
}

static int cookie(const char *s, uint64_t *out)
{
    return hp_replica_cookie_lsn(s, strlen(s), out);
}

static void test_cookie(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(cookie("hp_lsn=0/3000060", &v), 0);
    assert_true(v == 0x3000060);
    /* Among other cookies, with RFC 6265's spaces, quotes, and a trailing semicolon. */
    assert_int_equal(cookie("a=1; hp_lsn=16/B374D848; b=2", &v), 0);
    assert_true(v == (UINT64_C(0x16) << 32 | 0xB374D848));
    assert_int_equal(cookie("session=x;hp_lsn=\"1/2\" ;", &v), 0);
    assert_true(v == (UINT64_C(1) << 32 | 2));
    /* A name that only ends or starts like ours is another cookie. */
    assert_int_equal(cookie("xhp_lsn=1/2", &v), -1);
    assert_int_equal(cookie("hp_lsnx=1/2", &v), -1);
    /* Absent, empty or not a position: no position, never a guess. */
    assert_int_equal(cookie("", &v), -1);
    assert_int_equal(cookie(";;; ", &v), -1);
    assert_int_equal(cookie("hp_lsn=", &v), -1);
    assert_int_equal(cookie("hp_lsn=123", &v), -1);
    assert_int_equal(cookie("hp_lsn=1/2/3", &v), -1);
    assert_int_equal(cookie("hp_lsn=\"", &v), -1);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[HP_REPLICA_LSN_TEXT];
    const uint64_t lsns[] = {0, 0x3000060, UINT64_C(0x16) << 32 | 0xB374D848, UINT64_MAX};
    for (size_t i = 0; i != sizeof(lsns) / sizeof(lsns[0]); ++i) {
        uint64_t back = 1;
        hp_replica_format_lsn(lsns[i], buf);
        assert_int_equal(parse(buf, &back), 0);
        assert_true(back == lsns[i]);
    }
    /* PostgreSQL's own spelling: upper-case halves without leading zeros. */
    assert_string_equal(hp_replica_format_lsn(UINT64_C(0x16) << 32 | 0xB374D848, buf), "16/B374D848");
    assert_string_equal(hp_replica_format_lsn(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lsn),
        cmocka_unit_test(test_parse_lsn_rejects),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_never_forgets),
        cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
