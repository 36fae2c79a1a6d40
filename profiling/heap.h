/*
 * heap: jemalloc's statistics, read on demand and sampled once a second on
 * the admin thread, so /debug/perf can report the heap's growth over its
 * windows. A build without jemalloc (the sanitizer builds) has none: every
 * reader then says so rather than inventing figures.
 */
#ifndef HP_HEAP_H
#define HP_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/thread.h"

typedef struct st_hp_heap_stats_t {
    uint64_t allocated, active, resident, mapped, retained, metadata;
} hp_heap_stats_t;

/* X(field): the statistics read, each jemalloc's stats.<field> and exported as hotplate_heap_<field>_bytes. */
#define HP_HEAP_STAT_LIST(X) X(allocated) X(active) X(resident) X(mapped) X(retained) X(metadata)

/** @return 1 when the process runs on jemalloc, 0 in the sanitizer builds */
int hp_heap_has_jemalloc(void);

/** jemalloc's mallctl(3), or ENOENT without jemalloc. @return 0 or an errno value */
int hp_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/** Refreshes and reads jemalloc's statistics. @return 0, or -1 without jemalloc */
int hp_heap_read(hp_heap_stats_t *st);

/**
 * @return the growth of stats.allocated (resident with `resident` set) in
 * bytes per second over about `seconds`, from the once-a-second samples, or 0
 * with too few samples
 */
double hp_heap_growth(int resident, int seconds);

/**
 * @return jemalloc's stats.allocated now less the smallest large size class,
 * where the heap profiler keeps its samples (see heap.c), or -1 without jemalloc
 */
double hp_heap_allocated_trend(void);

/** The once-a-second sampler: a thread hook of the admin thread (main.c). */
int hp_heap_admin_thread_init(hp_thread_t *thr);
void hp_heap_admin_thread_dispose(hp_thread_t *thr);

#endif
