/*
 * pprof_legacy: readers of the two profile files the server's profilers
 * write, so that they can be turned into pprof's profile.proto
 * (pprof_proto.c):
 *
 * - gperftools' CPU profile (ProfilerStart): native 64-bit words, a header
 *   [0, 3, 0, period in µs, 0], then one record per distinct stack
 *   [count, depth, pc_1 ... pc_depth] with the interrupted pc first, a
 *   trailer [0, 1, 0], and the text of /proc/self/maps at the time it ended;
 * - jemalloc's heap profile (prof.dump, "heap_v2/RATE"): a "t*:" total line,
 *   then per stack a line "@ 0xPC 0xPC ..." (innermost first) followed by
 *   "  t*: curobjs: curbytes [accumobjs: accumbytes]" and per-thread lines,
 *   and after "MAPPED_LIBRARIES:" the text of /proc/self/maps.
 *
 * Both are pure: (pool, ptr, len) in, everything they return lives in the
 * pool (the maps text points into the input), nothing global, so they can be
 * unit-tested on canned bytes and fuzzed.
 */
#ifndef HP_PPROF_LEGACY_H
#define HP_PPROF_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/memory.h>

/* The deepest stack accepted; gperftools records at most 64 frames, jemalloc 128. */
#define HP_PPROF_MAX_DEPTH 256

typedef enum { HP_PPROF_RAW_CPU = 0, HP_PPROF_RAW_HEAP } hp_pprof_raw_kind_t;

/* One stack and what was counted on it. */
typedef struct st_hp_pprof_raw_sample_t {
    const uint64_t *pcs; /* innermost first; pcs[0] is where the sample was taken */
    uint32_t depth;
    /*
     * CPU: v[0] samples. Heap: v[0] objects and v[1] bytes in use at the dump,
     * v[2] objects and v[3] bytes allocated since the profile's reset, all as
     * sampled (pprof_proto.c scales them to estimates of the true totals).
     */
    uint64_t v[4];
} hp_pprof_raw_sample_t;

typedef struct st_hp_pprof_raw_t {
    hp_pprof_raw_kind_t kind;
    /* CPU: the sampling period in µs. Heap: the mean bytes between samples (2^lg_sample). */
    uint64_t period;
    hp_pprof_raw_sample_t *samples;
    size_t num_samples;
    const char *maps; /* the /proc/self/maps text inside the input, not NUL-terminated */
    size_t maps_len;
} hp_pprof_raw_t;

/**
 * Reads a gperftools CPU profile. Stacks with a count of 0 are dropped.
 * @return 0, or -1 with *err set to why the bytes are not one
 */
int hp_pprof_parse_cpu(h2o_mem_pool_t *pool, const char *p, size_t len, hp_pprof_raw_t *out, const char **err);

/**
 * Reads a jemalloc heap_v2 profile. Stacks whose counts are all 0 (sampled,
 * then freed, with nothing accumulated) are dropped.
 * @return 0, or -1 with *err set
 */
int hp_pprof_parse_heap(h2o_mem_pool_t *pool, const char *p, size_t len, hp_pprof_raw_t *out, const char **err);

/* One line of a /proc/PID/maps text. */
typedef struct st_hp_pprof_map_t {
    uint64_t start, limit, offset;
    int exec;         /* the mapping is executable ('x' in its permissions) */
    const char *path; /* the pathname column, not NUL-terminated; len 0 for an anonymous mapping */
    size_t path_len;
} hp_pprof_map_t;

/**
 * Reads the line at *p of a maps text (before end) and moves *p past it.
 * @return 1 with *out filled; 0 at the end; -1 for a line that is not one
 *         (skipped: *p has moved past it)
 */
int hp_pprof_map_next(const char **p, const char *end, hp_pprof_map_t *out);

#endif
