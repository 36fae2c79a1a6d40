/*
 * pprof_legacy: the gperftools CPU and jemalloc heap profile readers (see
 * pprof_legacy.h).
 *
 * Both formats are read without trusting a byte of them: every word and
 * every line is bounds-checked against the input, stacks deeper than
 * HP_PPROF_MAX_DEPTH are refused, and a number too large for 64 bits makes
 * the line malformed. The input is never written to and need not be
 * NUL-terminated or aligned.
 */
#include "profiling/pprof_legacy.h"

#include <string.h>

/* ---- the sample list ------------------------------------------------------------------------- */

/* Appends a sample to out (growing its array in the pool by doubling). @return the new sample */
static hp_pprof_raw_sample_t *hp__pprof_push(h2o_mem_pool_t *pool, hp_pprof_raw_t *out, size_t *cap)
{
    if (out->num_samples == *cap) {
        size_t ncap = *cap != 0 ? *cap * 2 : 256;
        hp_pprof_raw_sample_t *n = h2o_mem_alloc_pool(pool, ncap * sizeof(*n));
        if (out->num_samples != 0)
            memcpy(n, out->samples, out->num_samples * sizeof(*n));
        out->samples = n;
        *cap = ncap;
    }
    hp_pprof_raw_sample_t *s = &out->samples[out->num_samples++];
    memset(s, 0, sizeof(*s));
    return s;
}

/* ---- gperftools ------------------------------------------------------------------------------ */

static uint64_t hp__pprof_word(const char *p, size_t i)
{
    uint64_t w;
    memcpy(&w, p + i * sizeof(w), sizeof(w)); /* the input need not be aligned */
    return w;
}

int hp_pprof_parse_cpu(h2o_mem_pool_t *pool, const char *p, size_t len, hp_pprof_raw_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    out->kind = HP_PPROF_RAW_CPU;
    size_t n = len / sizeof(uint64_t), cap = 0;
    /* The header: a zero count, its length in words (3 in every version written), version 0, the period, padding. */
    if (n < 5 || hp__pprof_word(p, 0) != 0 || hp__pprof_word(p, 1) < 3 || hp__pprof_word(p, 1) > n - 2 ||
        hp__pprof_word(p, 2) != 0) {
        *err = "not a gperftools CPU profile (bad header)";
        return -1;
    }
    out->period = hp__pprof_word(p, 3);
    if (out->period == 0 || out->period > 1000000000) {
        *err = "the CPU profile's sampling period is out of range";
        return -1;
    }
    size_t i = 2 + (size_t)hp__pprof_word(p, 1);
    for (;;) {
        if (n - i < 3) {
            *err = "the CPU profile ends before its trailer";
            return -1;
        }
        uint64_t count = hp__pprof_word(p, i), depth = hp__pprof_word(p, i + 1);
        if (count == 0 && depth == 1 && hp__pprof_word(p, i + 2) == 0) {
            i += 3;
            break;
        }
        if (depth == 0 || depth > HP_PPROF_MAX_DEPTH || depth > n - i - 2) {
            *err = "a CPU profile record has a depth out of range";
            return -1;
        }
        if (count != 0) {
            hp_pprof_raw_sample_t *s = hp__pprof_push(pool, out, &cap);
            uint64_t *pcs = h2o_mem_alloc_pool(pool, (size_t)depth * sizeof(*pcs));
            memcpy(pcs, p + (i + 2) * sizeof(uint64_t), (size_t)depth * sizeof(*pcs));
            s->pcs = pcs;
            s->depth = (uint32_t)depth;
            s->v[0] = count;
        }
        i += 2 + (size_t)depth;
    }
    out->maps = p + i * sizeof(uint64_t);
    out->maps_len = len - i * sizeof(uint64_t);
    return 0;
}

/* ---- jemalloc -------------------------------------------------------------------------------- */

/* The line at *p (without its newline), moving *p past it. @return 0 at the end */
static int hp__pprof_line(const char **p, const char *end, const char **line, size_t *line_len)
{
    if (*p >= end)
        return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *line_len = (size_t)((nl != NULL ? nl : end) - *p);
    *p = nl != NULL ? nl + 1 : end;
    return 1;
}

static int hp__pprof_starts(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* An unsigned number in `base` (10 or 16) at *s (before end), moving *s past it. @return 0, or -1 when there is none or it
 * overflows */
static int hp__pprof_num(const char **s, const char *end, int base, uint64_t *out)
{
    uint64_t v = 0;
    const char *q = *s;
    for (; q < end; ++q) {
        int d;
        if (*q >= '0' && *q <= '9')
            d = *q - '0';
        else if (base == 16 && *q >= 'a' && *q <= 'f')
            d = *q - 'a' + 10;
        else if (base == 16 && *q >= 'A' && *q <= 'F')
            d = *q - 'A' + 10;
        else
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (q == *s)
        return -1;
    *s = q;
    *out = v;
    return 0;
}

/* Skips the characters of `set` at *s. */
static void hp__pprof_skip(const char **s, const char *end, const char *set)
{
    while (*s < end && strchr(set, **s) != NULL && **s != '\0')
        ++*s;
}

/* "  t*: curobjs: curbytes [accumobjs: accumbytes]" into v[0..3]. @return 0, or -1 when malformed */
static int hp__pprof_counts(const char *s, const char *end, uint64_t v[4])
{
    hp__pprof_skip(&s, end, " ");
    if (end - s < 3 || memcmp(s, "t*:", 3) != 0)
        return -1;
    s += 3;
    for (int k = 0; k != 4; ++k) {
        hp__pprof_skip(&s, end, k == 2 ? " [" : " ");
        if (hp__pprof_num(&s, end, 10, &v[k]) != 0)
            return -1;
        if (k != 3) {
            hp__pprof_skip(&s, end, " ");
            if (k != 1 && (s == end || *s++ != ':'))
                return -1;
        }
    }
    hp__pprof_skip(&s, end, " ");
    return s < end && *s == ']' ? 0 : -1;
}

int hp_pprof_parse_heap(h2o_mem_pool_t *pool, const char *p, size_t len, hp_pprof_raw_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    out->kind = HP_PPROF_RAW_HEAP;
    const char *cur = p, *end = p + len, *line, *hdr;
    size_t line_len, cap = 0;
    if (!hp__pprof_line(&cur, end, &line, &line_len) || !hp__pprof_starts(line, line_len, "heap_v2/")) {
        *err = "not a jemalloc heap profile (no heap_v2 header)";
        return -1;
    }
    hdr = line + 8;
    if (hp__pprof_num(&hdr, line + line_len, 10, &out->period) != 0 || out->period == 0) {
        *err = "the heap profile's sample rate is not a positive number";
        return -1;
    }
    uint64_t pcs[HP_PPROF_MAX_DEPTH];
    uint32_t depth = 0;
    int in_stack = 0;
    while (hp__pprof_line(&cur, end, &line, &line_len)) {
        const char *le = line + line_len;
        if (hp__pprof_starts(line, line_len, "MAPPED_LIBRARIES:")) {
            out->maps = cur;
            out->maps_len = (size_t)(end - cur);
            return 0;
        }
        if (line_len != 0 && line[0] == '@') {
            const char *s = line + 1;
            depth = 0;
            for (;;) {
                hp__pprof_skip(&s, le, " ");
                if (s == le)
                    break;
                if (le - s < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || depth == HP_PPROF_MAX_DEPTH) {
                    *err = "a heap profile stack is malformed or too deep";
                    return -1;
                }
                s += 2;
                if (hp__pprof_num(&s, le, 16, &pcs[depth++]) != 0) {
                    *err = "a heap profile stack has a bad address";
                    return -1;
                }
            }
            in_stack = depth != 0;
            continue;
        }
        uint64_t v[4];
        if (!in_stack || hp__pprof_counts(line, le, v) != 0)
            continue; /* the totals before the first stack, per-thread lines, blank lines */
        in_stack = 0; /* the stack's one t*: line is read; its per-thread lines follow */
        if ((v[0] | v[1] | v[2] | v[3]) == 0)
            continue;
        hp_pprof_raw_sample_t *smp = hp__pprof_push(pool, out, &cap);
        uint64_t *copy = h2o_mem_alloc_pool(pool, depth * sizeof(*copy));
        memcpy(copy, pcs, depth * sizeof(*copy));
        smp->pcs = copy;
        smp->depth = depth;
        memcpy(smp->v, v, sizeof(v));
    }
    *err = "the heap profile has no MAPPED_LIBRARIES section";
    return -1;
}

/* ---- /proc/PID/maps -------------------------------------------------------------------------- */

int hp_pprof_map_next(const char **p, const char *end, hp_pprof_map_t *out)
{
    const char *line;
    size_t line_len;
    do {
        if (!hp__pprof_line(p, end, &line, &line_len))
            return 0;
    } while (line_len == 0);
    /* start-limit perms offset dev inode [path] */
    const char *s = line, *le = line + line_len;
    memset(out, 0, sizeof(*out));
    if (hp__pprof_num(&s, le, 16, &out->start) != 0 || s == le || *s++ != '-' || hp__pprof_num(&s, le, 16, &out->limit) != 0 ||
        out->limit < out->start)
        return -1;
    hp__pprof_skip(&s, le, " ");
    if (le - s < 4)
        return -1;
    out->exec = s[2] == 'x';
    s += 4;
    hp__pprof_skip(&s, le, " ");
    if (hp__pprof_num(&s, le, 16, &out->offset) != 0)
        return -1;
    /* The device (major:minor) and the inode, then blanks before the path. */
    for (int field = 0; field != 2; ++field) {
        hp__pprof_skip(&s, le, " ");
        while (s < le && *s != ' ')
            ++s;
    }
    hp__pprof_skip(&s, le, " ");
    out->path = s;
    out->path_len = (size_t)(le - s);
    return 1;
}
