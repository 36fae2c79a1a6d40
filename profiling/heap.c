/*
 * heap: jemalloc's statistics (see heap.h).
 */
#include "profiling/heap.h"
#include "runtime/probes.h"

#include <errno.h>
#include <stdio.h>

/*
 * The build says whether the process runs on jemalloc (CMakeLists.txt): the
 * sanitizer builds keep ASan's allocator, which cannot share the process
 * with another malloc, and have no statistics to read.
 */
#if HOTPLATE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

int hp_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
#if HOTPLATE_JEMALLOC
    return mallctl(name, oldp, oldlenp, newp, newlen);
#else
    (void)name, (void)oldp, (void)oldlenp, (void)newp, (void)newlen;
    return ENOENT;
#endif
}

int hp_heap_has_jemalloc(void)
{
    return HOTPLATE_JEMALLOC;
}

#define HP_HEAP_SAMPLES 64

static struct {
    h2o_timeout_t tick;
    h2o_timeout_entry_t entry;
    hp_thread_t *thr;
    /* One sample a second; only the admin thread touches these. */
    int64_t at_s[HP_HEAP_SAMPLES];
    uint64_t allocated[HP_HEAP_SAMPLES], resident[HP_HEAP_SAMPLES];
    size_t next, count;
} hp__heap;

int hp_heap_read(hp_heap_stats_t *st)
{
    if (!hp_heap_has_jemalloc())
        return -1;
    /* jemalloc caches its statistics; writing the epoch refreshes them. */
    uint64_t epoch = 1;
    size_t len = sizeof(epoch);
    if (hp_mallctl("epoch", &epoch, &len, &epoch, len) != 0)
        return -1;
    struct {
        const char *name;
        uint64_t *out;
    } fields[] = {
#define HP__HEAP_FIELD(f) {"stats." #f, &st->f},
        HP_HEAP_STAT_LIST(HP__HEAP_FIELD)
#undef HP__HEAP_FIELD
    };
    for (size_t i = 0; i != sizeof(fields) / sizeof(fields[0]); ++i) {
        size_t v = 0;
        len = sizeof(v);
        if (hp_mallctl(fields[i].name, &v, &len, NULL, 0) != 0)
            return -1;
        *fields[i].out = v;
    }
    return 0;
}

static void hp__heap_tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    hp_heap_stats_t st;
    if (hp_heap_read(&st) == 0) {
        size_t i = hp__heap.next;
        hp__heap.at_s[i] = hp_probe_now_s();
        hp__heap.allocated[i] = st.allocated;
        hp__heap.resident[i] = st.resident;
        hp__heap.next = (i + 1) % HP_HEAP_SAMPLES;
        if (hp__heap.count < HP_HEAP_SAMPLES)
            ++hp__heap.count;
    }
    if (!atomic_load(&hp__heap.thr->stopping))
        h2o_timeout_link(hp__heap.thr->loop, &hp__heap.tick, &hp__heap.entry);
}

int hp_heap_admin_thread_init(hp_thread_t *thr)
{
    hp__heap.thr = thr;
    h2o_timeout_init(thr->loop, &hp__heap.tick, 1000);
    hp__heap.entry.cb = hp__heap_tick;
    hp__heap_tick(&hp__heap.entry);
    return 0;
}

void hp_heap_admin_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    if (h2o_timeout_is_linked(&hp__heap.entry))
        h2o_timeout_unlink(&hp__heap.entry);
}

double hp_heap_growth(int resident, int seconds)
{
    const uint64_t *series = resident ? hp__heap.resident : hp__heap.allocated;
    if (hp__heap.count < 2)
        return 0;
    size_t last = (hp__heap.next + HP_HEAP_SAMPLES - 1) % HP_HEAP_SAMPLES, first = last;
    for (size_t k = 1; k < hp__heap.count; ++k) {
        size_t i = (last + HP_HEAP_SAMPLES - k) % HP_HEAP_SAMPLES;
        if (hp__heap.at_s[last] - hp__heap.at_s[i] > seconds)
            break;
        first = i;
    }
    int64_t dt = hp__heap.at_s[last] - hp__heap.at_s[first];
    return dt > 0 ? ((double)series[last] - (double)series[first]) / (double)dt : 0;
}

/*
 * jemalloc's heap profiler stores each sampled small allocation in the
 * smallest large size class (16 KiB with 4 KiB pages), and counts all of it in
 * stats.allocated. While the doctor profiles the heap, every sampled object
 * that stays alive (an entry of a bounded list, say, until it is evicted) adds
 * 16 KiB, so a healthy heap seems to grow through the window by tens of KB/s
 * and falls back once those objects are freed. The doctor's trend leaves that
 * size class out; a real leak of 16 KiB objects is the price, and the heap
 * profile still shows it.
 */
double hp_heap_allocated_trend(void)
{
    hp_heap_stats_t hs;
    if (hp_heap_read(&hs) != 0)
        return -1;
    size_t size = 0, live = 0, len = sizeof(size);
    char name[64];
    if (hp_mallctl("arenas.lextent.0.size", &size, &len, NULL, 0) != 0)
        return (double)hs.allocated;
    len = sizeof(live);
    /* 4096 is MALLCTL_ARENAS_ALL, all arenas merged (spelled out: the header is absent from sanitizer builds). */
    snprintf(name, sizeof(name), "stats.arenas.%u.lextents.0.curlextents", 4096u);
    if (hp_mallctl(name, &live, &len, NULL, 0) != 0)
        return (double)hs.allocated;
    return (double)hs.allocated - (double)size * (double)live;
}
