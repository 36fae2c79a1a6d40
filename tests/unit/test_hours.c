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

/* A window from open to close (minutes of the day), a minute, and whether the window is open at that minute. */
static const struct {
    int open, close, minute, want;
} cases[] = {
    /* A same-day window is closed at its closing minute. */
    {600, 1320, 599, 0},
    {600, 1320, 600, 1},
    {600, 1320, 1319, 1},
    {600, 1320, 1320, 0},
    {600, 1320, 0, 0},
    /* 18:00 to 02:00 wraps past midnight: open on both sides of it. */
    {1080, 120, 1080, 1},
    {1080, 120, 1439, 1},
    {1080, 120, 0, 1},
    {1080, 120, 119, 1},
    {1080, 120, 120, 0},
    {1080, 120, 1079, 0},
};

static void test_windows(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i)
        if (hp_hours_open(cases[i].open, cases[i].close, cases[i].minute) != cases[i].want)
            fail_msg("%d..%d at %d: want %s", cases[i].open, cases[i].close, cases[i].minute, cases[i].want ? "open" : "closed");
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
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_around_the_clock),
        cmocka_unit_test(test_minute_now_is_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
