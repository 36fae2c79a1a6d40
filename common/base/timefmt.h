/*
 * timefmt: RFC 3339 timestamps in UTC, the one formatter of every time the
 * server writes (log lines, JSON documents, the alerts' webhook).
 */
#ifndef HP_TIMEFMT_H
#define HP_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Room for the longest timestamp written, NUL included ("2026-12-02T19:26:50.123456Z"). */
#define HP_TIME_RFC3339_MAX 40

/**
 * Writes wall_us (microseconds since the epoch) as "YYYY-MM-DDTHH:MM:SS[.f]Z".
 * @param digits fractional digits: 0 (whole seconds), 3 (milliseconds) or 6 (microseconds)
 * @return buf
 */
char *hp_time_rfc3339(char *buf, size_t len, uint64_t wall_us, int digits);

#endif
