/*
 * clock: the one clock read that is not inline (see clock.h).
 */
#include "base/clock.h"

uint64_t hp_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
