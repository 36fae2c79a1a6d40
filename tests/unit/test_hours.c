/*
 * Unit tests of services/hours.h: the opening-hours rule that replaced the
 * per-row hp_is_open() call in the restaurant statements. The cases are the
 * schema's (migrations/0003_is_open): a same-day window is closed at its
 * closing minute, a window that wraps past midnight is open on both sides of
 * it, 0..1440 and equal minutes are open around the clock. The e2e tests of
 * tests/e2e/test_restaurants.py check the same rule against every seeded
 * restaurant through the routes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "services/hours.h"

static void test_same_day_window(void **state)
{
    (void)state;
    assert_false(hp_hours_open(600, 1320, 599));
    assert_true(hp_hours_open(600, 1320, 600));
    assert_true(hp_hours_open(600, 1320, 1319));
    assert_false(hp_hours_open(600, 1320, 1320));
    assert_false(hp_hours_open(600, 1320, 0));
}

static void test_window_past_midnight(void **state)
{
    (void)state;
    /* 18:00 to 02:00 */
    assert_true(hp_hours_open(1080, 120, 1080));
    assert_true(hp_hours_open(1080, 120, 1439));
    assert_true(hp_hours_open(1080, 120, 0));
    assert_true(hp_hours_open(1080, 120, 119));
    assert_false(hp_hours_open(1080, 120, 120));
    assert_false(hp_hours_open(1080, 120, 1079));
}

static void test_around_the_clock(void **state)
{
    (void)state;
    for (int m = 0; m != 1440; ++m) {
        assert_true(hp_hours_open(0, 1440, m));
        assert_true(hp_hours_open(300, 300, m));
    }
}

static void test_minute_now_is_in_range(void **state)
{
    (void)state;
    int m = hp_hours_minute_now();
    assert_in_range(m, 0, 1439);
    /* The wall clock's minute of the day, computed another way. */
    uint64_t s = hp_wall_us() / 1000000u;
    int again = (int)((s / 60) % 1440);
    assert_true(again == m || again == (m + 1) % 1440);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_day_window),
        cmocka_unit_test(test_window_past_midnight),
        cmocka_unit_test(test_around_the_clock),
        cmocka_unit_test(test_minute_now_is_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
