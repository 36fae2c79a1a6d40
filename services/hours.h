/*
 * hours: a restaurant's opening hours, decided in C.
 *
 * The schema keeps hours as minutes after midnight UTC (open_minute,
 * close_minute; close < open means the restaurant closes after midnight, and
 * 0..1440 or equal minutes mean open around the clock), and
 * migrations/0003_is_open defines hp_is_open() with the same rule. The routes
 * no longer call that function: its body is a SELECT with a FROM clause, which
 * PostgreSQL does not inline (EXPLAIN VERBOSE shows the call in the output
 * list), so every row pays a call through the SQL-function executor. pgbench
 * put restaurant_get at about half the rate of the same query without it
 * (docs/BENCHMARKS.md). Here it is two comparisons on columns the statements
 * already return, against the minute of the server's own
 * clock, taken once per request.
 */
#ifndef HP_HOURS_H
#define HP_HOURS_H

#include <stdint.h>

#include "base/clock.h"

/** @return the current minute after midnight UTC (0..1439), by the wall clock */
static inline int hp_hours_minute_now(void)
{
    return (int)((hp_wall_us() / 60000000u) % 1440u);
}

/** @return whether hours [open_minute, close_minute) contain minute m, as hp_is_open() decides */
static inline int hp_hours_open(int open_minute, int close_minute, int m)
{
    if (open_minute < close_minute)
        return m >= open_minute && m < close_minute;
    return m >= open_minute || m < close_minute;
}

#endif
