/*
 * clock: monotonic and wall-clock time in the units the rest of hotplate uses.
 *
 * Durations are measured with CLOCK_MONOTONIC in nanoseconds and reported in
 * microseconds; a thread's CPU time measures pure computation; wall-clock time
 * is only used for log timestamps.
 */
#ifndef HP_CLOCK_H
#define HP_CLOCK_H

#include <stdint.h>
#include <time.h>

/** @return monotonic time in nanoseconds */
static inline uint64_t hp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/**
 * @return *now, first reading the monotonic clock into it if it is still 0.
 * Events that happen at one moment (a statement sent, its request's database
 * stretch and its probe stage beginning; a batch of results read in one
 * system call) share one read this way instead of taking one each: a
 * checkout read the clock 84 times with the probes on and 23 with them off.
 */
static inline uint64_t hp_now_ns_once(uint64_t *now)
{
    if (*now == 0)
        *now = hp_now_ns();
    return *now;
}

/*
 * @return the time from since to a shared reading now, 0 if since is later.
 * A shared reading can predate a stretch that began after it: a callback run
 * for one result of a drain sends a statement, and libpq, its socket full,
 * reads that statement's answer in the same drain.
 */
static inline uint64_t hp_ns_since(uint64_t now, uint64_t since)
{
    return now > since ? now - since : 0;
}

/**
 * @return the calling thread's CPU time in nanoseconds. Unlike the monotonic
 * clock it stops while the thread is preempted, so a stretch of pure
 * computation measured with it does not grow when the machine is busy. It is a
 * real system call (no vDSO; about ten times a monotonic read here), so it is
 * kept off paths that run per request on every route. It is defined in
 * clock.c, not inline, so that a profile counts its calls by name:
 * loadtests/overhead.py prices them apart from the vDSO reads.
 */
uint64_t hp_thread_cpu_ns(void);

/** @return wall-clock time in microseconds since the epoch */
static inline uint64_t hp_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
