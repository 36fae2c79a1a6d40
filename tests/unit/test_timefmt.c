/*
 * Unit tests of common/base/timefmt: hp_time_rfc3339 against gmtime_r and
 * strftime on known instants (checked with `date -u -d @SECONDS`), every day
 * around leap years and century years, a stream of pseudo-random instants up
 * to the year 9999 with each precision, snprintf's truncation, and the years
 * past 9999, which take the old path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/timefmt.h"

/* 9999-12-31T23:59:59.999999Z, the last instant with a four-digit year. */
#define LAST_US 253402300799999999ull

/*
 * What gmtime_r, strftime and snprintf write for wall_us with the given
 * fractional digits. The truncation test cuts on purpose, which gcc warns of
 * where it can see the sizes.
 */
#pragma GCC diagnostic ignored "-Wformat-truncation"
static void reference(char *buf, size_t len, uint64_t wall_us, int digits)
{
    time_t sec = (time_t)(wall_us / 1000000);
    struct tm tm;
    assert_non_null(gmtime_r(&sec, &tm));
    char date[64];
    assert_true(strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) > 0);
    unsigned frac = (unsigned)(wall_us % 1000000);
    if (digits == 6)
        snprintf(buf, len, "%s.%06uZ", date, frac);
    else if (digits == 3)
        snprintf(buf, len, "%s.%03uZ", date, frac / 1000);
    else
        snprintf(buf, len, "%sZ", date);
}

static void check(uint64_t wall_us, int digits)
{
    char got[HP_TIME_RFC3339_MAX], want[HP_TIME_RFC3339_MAX];
    assert_ptr_equal(hp_time_rfc3339(got, sizeof(got), wall_us, digits), got);
    reference(want, sizeof(want), wall_us, digits);
    if (strcmp(got, want) != 0)
        fail_msg("%llu us, %d digits: got %s, want %s", (unsigned long long)wall_us, digits, got, want);
}

static void test_known_instants(void **state)
{
    (void)state;
    char buf[HP_TIME_RFC3339_MAX];
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), 0, 0), "1970-01-01T00:00:00Z");
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), 1796684215989289ull, 6), "2026-12-07T22:56:55.989289Z");
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), 1796684215989289ull, 3), "2026-12-07T22:56:55.989Z");
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), 951782400000000ull, 0), "2000-02-29T00:00:00Z");
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), 5000001, 6), "1970-01-01T00:00:05.000001Z");
    assert_string_equal(hp_time_rfc3339(buf, sizeof(buf), LAST_US, 6), "9999-12-31T23:59:59.999999Z");
}

static void test_every_day_around_leap_and_century_years(void **state)
{
    (void)state;
    /* 1968-2104 and 2396-2404: ordinary leap years, 2000 and 2400 (leap), 2100 (not), and the epoch. */
    static const struct {
        int64_t from_day, to_day; /* days since 1970-01-01 */
    } spans[] = {{-1, 49700}, {155000, 158600}};
    for (size_t s = 0; s != sizeof(spans) / sizeof(spans[0]); ++s)
        for (int64_t d = spans[s].from_day < 0 ? 0 : spans[s].from_day; d <= spans[s].to_day; ++d) {
            uint64_t day_us = (uint64_t)d * 86400 * 1000000;
            check(day_us, 0);
            check(day_us + 86399999999ull, 6); /* the day's last microsecond */
        }
}

static void test_random_instants_each_precision(void **state)
{
    (void)state;
    uint64_t z = 12345;
    for (int i = 0; i != 200000; ++i) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t us = (z >> 1) % (LAST_US + 1);
        check(us, i % 3 == 0 ? 0 : i % 3 == 1 ? 3 : 6);
    }
}

static void test_truncates_as_snprintf(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 28; ++len) {
        char got[32], want[32];
        memset(got, '#', sizeof(got));
        memset(want, '#', sizeof(want));
        hp_time_rfc3339(got, len, 1796684215989289ull, 6);
        reference(want, len, 1796684215989289ull, 6);
        assert_memory_equal(got, want, sizeof(got));
    }
}

static void test_years_past_9999_take_the_old_path(void **state)
{
    (void)state;
    check(LAST_US + 1, 6);
    check(LAST_US + 1, 0);
    check(300000000000000000ull, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_instants),
        cmocka_unit_test(test_every_day_around_leap_and_century_years),
        cmocka_unit_test(test_random_instants_each_precision),
        cmocka_unit_test(test_truncates_as_snprintf),
        cmocka_unit_test(test_years_past_9999_take_the_old_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
