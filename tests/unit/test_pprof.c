/*
 * Unit tests of the profile.proto path: the gperftools and jemalloc readers
 * (profiling/pprof_legacy.c) on canned bytes, good and broken; the encoder
 * (profiling/pprof_proto.c) read back with protobuf-c after gunzipping, for
 * the sample types, values, mappings and the heap's unsampling and jemalloc
 * frames; and the symbolizer (profiling/symbolize.c) on this very process.
 * The routes and `go tool pprof` are tests/e2e/test_pprof_proto.py's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <link.h>
#include <gelf.h>
#include <sys/auxv.h>
#include <math.h>
#include <zlib.h>

#include "profiling/pprof_fold.h"
#include "profiling/pprof_legacy.h"
#include "profiling/pprof_proto.h"
#include "profiling/symbolize.h"
#include "profile.pb-c.h"

/* ---- canned files ---------------------------------------------------------------------------- */

static const char maps_text[] = "555555554000-555555556000 r--p 00000000 fe:00 42   /srv/hotplate\n"
                                "555555556000-55555555a000 r-xp 00002000 fe:00 42   /srv/hotplate\n"
                                "7ffff7c00000-7ffff7c20000 r-xp 00010000 fe:00 7    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n"
                                "7ffff7e00000-7ffff7e80000 r-xp 00028000 fe:00 9    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
                                "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0    [stack]\n";

/* A gperftools CPU profile: period 10000 µs, stacks {3: a <- b}, {0: dropped}, {2: c}, the trailer, the maps. */
static size_t canned_cpu(char *buf, size_t cap)
{
    uint64_t w[] = {0, 3, 0, 10000, 0, 3, 2, 0x555555556100, 0x555555556200, 0, 1, 0x555555556300, 2, 1, 0x7ffff7e00010, 0, 1, 0};
    size_t n = sizeof(w);
    assert_true(n + sizeof(maps_text) <= cap);
    memcpy(buf, w, n);
    memcpy(buf + n, maps_text, sizeof(maps_text) - 1);
    return n + sizeof(maps_text) - 1;
}

static const char canned_heap[] = "heap_v2/524288\n"
                                  "  t*: 5: 1048576 [9: 2097152]\n"
                                  "  t0: 5: 1048576 [9: 2097152]\n"
                                  "@ 0x7ffff7c00100 0x7ffff7c00200 0x555555556101 0x555555556201\n"
                                  "  t*: 4: 1048576 [8: 2097152]\n"
                                  "  t0: 4: 1048576 [8: 2097152]\n"
                                  "@ 0x555555556301\n"
                                  "  t*: 0: 0 [0: 0]\n"
                                  "@ 0x7ffff7c00100 0x555555556401\n"
                                  "  t*: 0: 0 [1: 64]\n"
                                  "\n"
                                  "MAPPED_LIBRARIES:\n"
                                  "555555556000-55555555a000 r-xp 00002000 fe:00 42   /srv/hotplate\n"
                                  "7ffff7c00000-7ffff7c20000 r-xp 00010000 fe:00 7    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n";

/*
 * Every test but the maps reader's reads the canned files from a pool of its
 * own: setup gives it the pool and teardown clears it, so that no test can
 * leave its pool behind on a failed assertion's early return.
 */
static h2o_mem_pool_t pool;
static const char *err;

static int setup(void **state)
{
    (void)state;
    h2o_mem_init_pool(&pool);
    err = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h2o_mem_clear_pool(&pool);
    return 0;
}

/* The canned CPU profile read into raw; buf holds the file's bytes and its length is returned. */
static size_t read_cpu(char *buf, size_t cap, hp_pprof_raw_t *raw)
{
    size_t len = canned_cpu(buf, cap);
    assert_int_equal(hp_pprof_parse_cpu(&pool, buf, len, raw, &err), 0);
    return len;
}

/* The canned heap profile read into raw. */
static void read_heap(hp_pprof_raw_t *raw)
{
    assert_int_equal(hp_pprof_parse_heap(&pool, canned_heap, sizeof(canned_heap) - 1, raw, &err), 0);
}

/* ---- the readers ----------------------------------------------------------------------------- */

static void test_cpu_reader(void **state)
{
    (void)state;
    char buf[2048];
    hp_pprof_raw_t raw;
    read_cpu(buf, sizeof(buf), &raw);
    assert_int_equal(raw.period, 10000);
    assert_int_equal(raw.num_samples, 2); /* the record with a count of 0 is no sample */
    assert_int_equal(raw.samples[0].v[0], 3);
    assert_int_equal(raw.samples[0].depth, 2);
    assert_int_equal(raw.samples[0].pcs[0], 0x555555556100);
    assert_int_equal(raw.samples[0].pcs[1], 0x555555556200);
    assert_int_equal(raw.samples[1].v[0], 2);
    assert_int_equal(raw.samples[1].pcs[0], 0x7ffff7e00010);
    assert_int_equal(raw.maps_len, sizeof(maps_text) - 1);
    assert_memory_equal(raw.maps, maps_text, raw.maps_len);

    /* Every prefix is refused or read, never read past its end (ASan watches the copies). */
    for (size_t cut = 0; cut < sizeof(uint64_t) * 18; ++cut) {
        char *copy = malloc(cut + 1);
        memcpy(copy, buf, cut);
        assert_int_equal(hp_pprof_parse_cpu(&pool, copy, cut, &raw, &err), -1);
        free(copy);
    }
    /* A depth beyond the file or the bound, a zero period, a bad header. */
    uint64_t deep[] = {0, 3, 0, 10000, 0, 1, 1000, 0x1};
    assert_int_equal(hp_pprof_parse_cpu(&pool, (char *)deep, sizeof(deep), &raw, &err), -1);
    uint64_t zero[] = {0, 3, 0, 0, 0, 0, 1, 0};
    assert_int_equal(hp_pprof_parse_cpu(&pool, (char *)zero, sizeof(zero), &raw, &err), -1);
    uint64_t hdr[] = {1, 3, 0, 100, 0, 0, 1, 0};
    assert_int_equal(hp_pprof_parse_cpu(&pool, (char *)hdr, sizeof(hdr), &raw, &err), -1);
    assert_non_null(strstr(err, "header"));
}

static void test_heap_reader(void **state)
{
    (void)state;
    hp_pprof_raw_t raw;
    read_heap(&raw);
    assert_int_equal(raw.period, 524288);
    assert_int_equal(raw.num_samples, 2); /* the all-zero stack is dropped, the freed-but-allocated one kept */
    const hp_pprof_raw_sample_t *a = &raw.samples[0], *b = &raw.samples[1];
    assert_int_equal(a->depth, 4);
    assert_int_equal(a->pcs[0], 0x7ffff7c00100);
    assert_int_equal(a->pcs[3], 0x555555556201);
    assert_int_equal(a->v[0], 4);
    assert_int_equal(a->v[1], 1048576);
    assert_int_equal(a->v[2], 8);
    assert_int_equal(a->v[3], 2097152);
    assert_int_equal(b->v[0], 0);
    assert_int_equal(b->v[2], 1);
    assert_int_equal(b->v[3], 64);
    assert_non_null(memmem(raw.maps, raw.maps_len, "libjemalloc.so.2", 16));

    static const char *const bad[] = {
        "heap_v1/524288\nMAPPED_LIBRARIES:\n",                                           /* another version */
        "heap_v2/0\nMAPPED_LIBRARIES:\n",                                                /* no sample rate */
        "heap_v2/524288\n@ 0x10\n  t*: 1: 16 [1: 16]\n",                                 /* no maps section */
        "heap_v2/524288\n@ 0xzz\n  t*: 1: 16 [1: 16]\nMAPPED_LIBRARIES:\n",              /* a bad address */
        "heap_v2/524288\n@ 0x99999999999999999\n  t*: 1: 1 [1: 1]\nMAPPED_LIBRARIES:\n", /* 68 bits */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        assert_int_equal(hp_pprof_parse_heap(&pool, bad[i], strlen(bad[i]), &raw, &err), -1);
    /* A malformed count line is not a sample, and not an error either. */
    static const char odd[] = "heap_v2/2\n@ 0x10\n  t*: 1 16 [1: 16]\nMAPPED_LIBRARIES:\n";
    assert_int_equal(hp_pprof_parse_heap(&pool, odd, sizeof(odd) - 1, &raw, &err), 0);
    assert_int_equal(raw.num_samples, 0);
}

static void test_maps_reader(void **state)
{
    (void)state;
    const char *p = maps_text, *end = maps_text + sizeof(maps_text) - 1;
    hp_pprof_map_t m;
    assert_int_equal(hp_pprof_map_next(&p, end, &m), 1);
    assert_int_equal(m.start, 0x555555554000);
    assert_int_equal(m.exec, 0);
    assert_int_equal(hp_pprof_map_next(&p, end, &m), 1);
    assert_int_equal(m.limit, 0x55555555a000);
    assert_int_equal(m.offset, 0x2000);
    assert_int_equal(m.exec, 1);
    assert_int_equal(m.path_len, strlen("/srv/hotplate"));
    assert_memory_equal(m.path, "/srv/hotplate", m.path_len);
    for (int i = 0; i != 3; ++i)
        assert_int_equal(hp_pprof_map_next(&p, end, &m), 1);
    assert_memory_equal(m.path, "[stack]", 7);
    assert_int_equal(hp_pprof_map_next(&p, end, &m), 0);
    const char junk[] = "not a maps line\n10-5 r-xp 0 0:0 0 /x\n";
    p = junk;
    assert_int_equal(hp_pprof_map_next(&p, junk + sizeof(junk) - 1, &m), -1);
    assert_int_equal(hp_pprof_map_next(&p, junk + sizeof(junk) - 1, &m), -1); /* a limit below its start */
    assert_int_equal(hp_pprof_map_next(&p, junk + sizeof(junk) - 1, &m), 0);
}

/* ---- the encoder ----------------------------------------------------------------------------- */

static Perftools__Profiles__Profile *decode(const unsigned char *gz, size_t len)
{
    assert_true(len > 2 && gz[0] == 0x1f && gz[1] == 0x8b);
    size_t cap = 1 << 20;
    unsigned char *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)gz;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    inflateEnd(&z);
    Perftools__Profiles__Profile *p = perftools__profiles__profile__unpack(NULL, n, out);
    free(out);
    assert_non_null(p);
    return p;
}

static const char *str(const Perftools__Profiles__Profile *p, int64_t i)
{
    assert_true(i >= 0 && (size_t)i < p->n_string_table);
    return p->string_table[i];
}

static const Perftools__Profiles__Location *location(const Perftools__Profiles__Profile *p, uint64_t id)
{
    for (size_t i = 0; i != p->n_location; ++i)
        if (p->location[i]->id == id)
            return p->location[i];
    fail_msg("no location %llu", (unsigned long long)id);
    return NULL;
}

/* raw encoded with symtab t (or none) and meta, and decoded back; *gz is the encoder's output, the caller's to free. */
static Perftools__Profiles__Profile *encoded(const hp_pprof_raw_t *raw, hp_symtab_t *t, const hp_pprof_meta_t *meta,
                                             unsigned char **gz)
{
    size_t gz_len = 0;
    *gz = NULL;
    assert_int_equal(hp_pprof_encode(raw, t, meta, gz, &gz_len, &err), 0);
    return decode(*gz, gz_len);
}

static void test_encode_cpu_unsymbolized(void **state)
{
    (void)state;
    char buf[2048];
    hp_pprof_raw_t raw;
    read_cpu(buf, sizeof(buf), &raw);
    hp_pprof_meta_t meta = {.kind = HP_PPROF_CPU,
                            .time_ns = 1700000000000000000,
                            .duration_ns = 3000000000,
                            .comments = {"commit abc"},
                            .num_comments = 1};
    unsigned char *gz = NULL;
    Perftools__Profiles__Profile *p = encoded(&raw, NULL, &meta, &gz);
    assert_string_equal(str(p, 0), "");
    assert_int_equal(p->n_sample_type, 2);
    assert_string_equal(str(p, p->sample_type[0]->type), "samples");
    assert_string_equal(str(p, p->sample_type[1]->unit), "nanoseconds");
    assert_string_equal(str(p, p->period_type->type), "cpu");
    assert_int_equal(p->period, 10000000);
    assert_int_equal(p->duration_nanos, 3000000000);
    assert_int_equal(p->time_nanos, 1700000000000000000);
    assert_string_equal(str(p, p->comment[0]), "commit abc");
    assert_int_equal(p->n_sample, 2);
    assert_int_equal(p->sample[0]->value[0], 3);
    assert_int_equal(p->sample[0]->value[1], 30000000);
    /* The leaf is exact; the caller's return address is recorded one byte back, on its call instruction. */
    assert_int_equal(p->sample[0]->n_location_id, 2);
    assert_int_equal(location(p, p->sample[0]->location_id[0])->address, 0x555555556100);
    assert_int_equal(location(p, p->sample[0]->location_id[1])->address, 0x5555555561ff);
    /* The executable lines of the maps, the binary first; unsymbolized, so no line and no function claims. */
    assert_int_equal(p->n_mapping, 3);
    assert_string_equal(str(p, p->mapping[0]->filename), "/srv/hotplate");
    assert_int_equal(p->mapping[0]->memory_start, 0x555555556000);
    assert_int_equal(p->mapping[0]->file_offset, 0x2000);
    assert_false(p->mapping[0]->has_functions);
    assert_int_equal(location(p, p->sample[1]->location_id[0])->mapping_id, p->mapping[2]->id);
    assert_int_equal(location(p, p->sample[0]->location_id[0])->n_line, 0);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz);
    /* A heap meta on a CPU file is refused. */
    meta.kind = HP_PPROF_HEAP;
    size_t gz_len = 0;
    assert_int_equal(hp_pprof_encode(&raw, NULL, &meta, &gz, &gz_len, &err), -1);
}

static void test_encode_heap_unsamples_and_drops_jemalloc_frames(void **state)
{
    (void)state;
    hp_pprof_raw_t raw;
    read_heap(&raw);
    for (int allocs = 0; allocs != 2; ++allocs) {
        hp_pprof_meta_t meta = {.kind = allocs ? HP_PPROF_ALLOCS : HP_PPROF_HEAP};
        unsigned char *gz = NULL;
        Perftools__Profiles__Profile *p = encoded(&raw, NULL, &meta, &gz);
        assert_int_equal(p->n_sample_type, 4);
        static const char *const types[] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
        for (int i = 0; i != 4; ++i)
            assert_string_equal(str(p, p->sample_type[i]->type), types[i]);
        assert_string_equal(str(p, p->default_sample_type), allocs ? "alloc_space" : "inuse_space");
        assert_string_equal(str(p, p->period_type->unit), "bytes");
        assert_int_equal(p->period, 524288);
        /* The first sample: 4 objects of 256 KiB in use, sampled every 512 KiB: each stands for 1/(1-e^-0.5) of itself. */
        const Perftools__Profiles__Sample *s = p->sample[0];
        double scale = 1.0 / (1.0 - exp(-0.5));
        assert_int_equal(s->value[2], (int64_t)(4 * scale));
        assert_int_equal(s->value[3], (int64_t)(1048576 * scale));
        assert_int_equal(s->value[1], (int64_t)(2097152 * scale));
        /* jemalloc's two frames are gone: the leaf is the allocator's caller, one byte back. */
        assert_int_equal(s->n_location_id, 2);
        assert_int_equal(location(p, s->location_id[0])->address, 0x555555556100);
        /* Allocated and freed in the window: nothing in use, its allocation counted. */
        assert_int_equal(p->sample[1]->value[2], 0);
        assert_true(p->sample[1]->value[1] >= 64);
        perftools__profiles__profile__free_unpacked(p, NULL);
        free(gz);
    }
}

/* ---- the merge ------------------------------------------------------------------------------- */

static void test_merge_adds_samples_and_dedupes_the_tables(void **state)
{
    (void)state;
    char buf[2048];
    hp_pprof_raw_t raw, heap;
    read_cpu(buf, sizeof(buf), &raw);
    read_heap(&heap);
    unsigned char *gz[3];
    size_t gz_len[3];
    hp_pprof_meta_t m1 = {.kind = HP_PPROF_CPU, .time_ns = 1000, .duration_ns = 10, .comments = {"commit a"}, .num_comments = 1};
    hp_pprof_meta_t m2 = {.kind = HP_PPROF_CPU, .time_ns = 2000, .duration_ns = 10, .comments = {"commit a"}, .num_comments = 1};
    hp_pprof_meta_t m3 = {.kind = HP_PPROF_HEAP};
    assert_int_equal(hp_pprof_encode(&raw, NULL, &m1, &gz[0], &gz_len[0], &err), 0);
    assert_int_equal(hp_pprof_encode(&raw, NULL, &m2, &gz[1], &gz_len[1], &err), 0);
    assert_int_equal(hp_pprof_encode(&heap, NULL, &m3, &gz[2], &gz_len[2], &err), 0);

    unsigned char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(hp_pprof_merge((const unsigned char *const *)gz, gz_len, 2, &out, &out_len, &err), 0);
    Perftools__Profiles__Profile *p = decode(out, out_len);
    /* Both profiles' samples; the same addresses in the same mappings are one location each. */
    assert_int_equal(p->n_sample, 4);
    assert_int_equal(p->n_location, 3);
    assert_int_equal(p->n_mapping, 3);
    int64_t total = 0;
    for (size_t i = 0; i != p->n_sample; ++i)
        total += p->sample[i]->value[0];
    assert_int_equal(total, 2 * (3 + 2));
    assert_int_equal(p->time_nanos, 1000);
    assert_int_equal(p->duration_nanos, 1010);
    /* The comments once each, and a note of the merge. */
    assert_int_equal(p->n_comment, 2);
    assert_string_equal(str(p, p->comment[0]), "commit a");
    assert_string_equal(str(p, p->comment[1]), "merged from 2 profiles");
    assert_string_equal(str(p, p->sample_type[1]->type), "cpu");
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(out);

    /* A CPU and a heap profile do not merge; nor does something that is no profile. */
    const unsigned char *mixed[] = {gz[0], gz[2]};
    size_t mixed_len[] = {gz_len[0], gz_len[2]};
    assert_int_equal(hp_pprof_merge(mixed, mixed_len, 2, &out, &out_len, &err), -1);
    assert_non_null(strstr(err, "sample types"));
    const unsigned char junk[] = "not gzip";
    const unsigned char *bad[] = {junk};
    size_t bad_len[] = {sizeof(junk)};
    assert_int_equal(hp_pprof_merge(bad, bad_len, 1, &out, &out_len, &err), -1);
    assert_int_equal(hp_pprof_merge(bad, bad_len, 0, &out, &out_len, &err), -1);
    for (int i = 0; i != 3; ++i)
        free(gz[i]);
}

/* ---- folding --------------------------------------------------------------------------------- */

/*
 * A heap profile by hand: main calls work, which inlines helper; one location
 * has no lines (an unsymbolized library frame). Folded by the default sample
 * type, inuse_space, equal stacks added, a zero value left out.
 */
static void test_fold(void **state)
{
    (void)state;
    char *strings[] = {"", "alloc_space", "bytes", "inuse_space", "main", "work", "helper", "/usr/lib/libx.so.1"};
    Perftools__Profiles__ValueType vt[2];
    Perftools__Profiles__ValueType *types[] = {&vt[0], &vt[1]};
    for (int i = 0; i != 2; ++i) {
        perftools__profiles__value_type__init(&vt[i]);
        vt[i].type = i == 0 ? 1 : 3;
        vt[i].unit = 2;
    }
    Perftools__Profiles__Function fn[3];
    Perftools__Profiles__Function *fns[] = {&fn[0], &fn[1], &fn[2]};
    for (int i = 0; i != 3; ++i) {
        perftools__profiles__function__init(&fn[i]);
        fn[i].id = (uint64_t)i + 1;
        fn[i].name = 4 + i; /* main, work, helper */
    }
    Perftools__Profiles__Mapping map;
    Perftools__Profiles__Mapping *maps[] = {&map};
    perftools__profiles__mapping__init(&map);
    map.id = 1;
    map.memory_start = 0x7000;
    map.memory_limit = 0x9000;
    map.filename = 7;
    Perftools__Profiles__Line ln[4];
    Perftools__Profiles__Line *main_lines[] = {&ln[0]}, *work_lines[] = {&ln[1], &ln[2]}, *work2_lines[] = {&ln[3]};
    uint64_t ln_fn[] = {1, 3, 2, 2}; /* main; helper inlined into work; work */
    for (int i = 0; i != 4; ++i) {
        perftools__profiles__line__init(&ln[i]);
        ln[i].function_id = ln_fn[i];
    }
    Perftools__Profiles__Location loc[4];
    Perftools__Profiles__Location *locs[] = {&loc[0], &loc[1], &loc[2], &loc[3]};
    for (int i = 0; i != 4; ++i) {
        perftools__profiles__location__init(&loc[i]);
        loc[i].id = (uint64_t)i + 1;
    }
    loc[0].line = main_lines, loc[0].n_line = 1;
    loc[1].line = work_lines, loc[1].n_line = 2;
    loc[2].mapping_id = 1, loc[2].address = 0x7abc; /* no lines */
    loc[3].line = work2_lines, loc[3].n_line = 1;
    /* Leaf first, as samples list their locations. */
    uint64_t st_inline[] = {2, 1}, st_lib[] = {3, 4, 1}, st_zero[] = {4, 1};
    int64_t v1[] = {100, 10}, v2[] = {100, 5}, v3[] = {100, 7}, v4[] = {100, 0};
    Perftools__Profiles__Sample sm[4];
    Perftools__Profiles__Sample *samples[] = {&sm[0], &sm[1], &sm[2], &sm[3]};
    uint64_t *stacks[] = {st_inline, st_inline, st_lib, st_zero};
    size_t depths[] = {2, 2, 3, 2};
    int64_t *values[] = {v1, v2, v3, v4};
    for (int i = 0; i != 4; ++i) {
        perftools__profiles__sample__init(&sm[i]);
        sm[i].location_id = stacks[i], sm[i].n_location_id = depths[i];
        sm[i].value = values[i], sm[i].n_value = 2;
    }
    Perftools__Profiles__Profile p = PERFTOOLS__PROFILES__PROFILE__INIT;
    p.string_table = strings, p.n_string_table = 8;
    p.sample_type = types, p.n_sample_type = 2;
    p.default_sample_type = 3;
    p.function = fns, p.n_function = 3;
    p.mapping = maps, p.n_mapping = 1;
    p.location = locs, p.n_location = 4;
    p.sample = samples, p.n_sample = 4;

    char *out = NULL;
    size_t len = 0;
    assert_int_equal(hp_pprof_fold(&p, &out, &len, &err), 0);
    static const char want[] = "main;work;helper[inline] 15\n"
                               "main;work;libx.so.1+0xabc 7\n";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(out, want, len);
    free(out);

    /* Without a default, the first sample type; a sample naming a location the profile lacks is refused. */
    p.default_sample_type = 0;
    assert_int_equal(hp_pprof_fold(&p, &out, &len, &err), 0);
    static const char first[] = "main;work 100\nmain;work;helper[inline] 200\nmain;work;libx.so.1+0xabc 100\n";
    assert_int_equal(len, sizeof(first) - 1);
    assert_memory_equal(out, first, len);
    free(out);
    st_zero[0] = 9;
    assert_int_equal(hp_pprof_fold(&p, &out, &len, &err), -1);
    assert_non_null(strstr(err, "location"));
}

/* ---- the symbolizer -------------------------------------------------------------------------- */

/* This process's maps text, as a profile file carries its process's. @return its length */
static size_t self_maps(char *buf, size_t size)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    fclose(f);
    return n;
}

/* One CPU sample of this process at pcs (leaf first), encoded with symtab t and decoded back; *gz is the caller's to free. */
static Perftools__Profiles__Profile *encoded_self(hp_symtab_t *t, uint64_t *pcs, uint32_t depth, unsigned char **gz)
{
    static char maps[65536];
    size_t n = self_maps(maps, sizeof(maps));
    hp_pprof_raw_sample_t rs = {.pcs = pcs, .depth = depth, .v = {5}};
    hp_pprof_raw_t raw = {.kind = HP_PPROF_RAW_CPU, .period = 1000, .samples = &rs, .num_samples = 1, .maps = maps, .maps_len = n};
    hp_pprof_meta_t meta = {.kind = HP_PPROF_CPU};
    return encoded(&raw, t, &meta, gz);
}

static void test_symbolizes_this_process(void **state)
{
    (void)state;
    hp_symtab_t *t = hp_symtab_open_self(&err);
    assert_non_null(t);
    hp_sym_t sym;
    uint64_t fn = (uint64_t)(uintptr_t)&hp_pprof_parse_heap;
    assert_int_equal(hp_symtab_lookup(t, fn + 4, &sym), 1);
    assert_non_null(sym.function);
    assert_string_equal(sym.function, "hp_pprof_parse_heap");
    assert_int_equal(sym.function_start, fn);
    assert_non_null(sym.file);
    assert_non_null(strstr(sym.file, "pprof_legacy.c"));
    assert_true(sym.line > 0);
    /* libc's exported functions are named from its dynamic symbols (getpid: one no sanitizer intercepts). */
    assert_int_equal(hp_symtab_lookup(t, (uint64_t)(uintptr_t)&getpid + 1, &sym), 1);
    assert_non_null(sym.module);
    assert_non_null(strstr(sym.module, "libc.so"));
    assert_non_null(sym.function);
    /* Nothing is mapped at address 16. */
    assert_int_equal(hp_symtab_lookup(t, 16, &sym), 0);
    hp_symtab_close(t);

    /* The same through a maps text, as pprof-encode reads one from a profile, and through the encoder. */
    static char maps[65536];
    size_t n = self_maps(maps, sizeof(maps));
    t = hp_symtab_open_maps(maps, n, &err);
    assert_non_null(t);
    uint64_t pcs[] = {fn + 4, (uint64_t)(uintptr_t)&test_symbolizes_this_process + 9};
    unsigned char *gz = NULL;
    Perftools__Profiles__Profile *p = encoded_self(t, pcs, 2, &gz);
    const Perftools__Profiles__Location *leaf = location(p, p->sample[0]->location_id[0]);
    const Perftools__Profiles__Location *caller = location(p, p->sample[0]->location_id[1]);
    assert_int_equal(leaf->n_line, 1);
    assert_string_equal(str(p, p->function[leaf->line[0]->function_id - 1]->name), "hp_pprof_parse_heap");
    assert_string_equal(str(p, p->function[caller->line[0]->function_id - 1]->name), "test_symbolizes_this_process");
    assert_true(p->mapping[0]->has_functions);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz);
    hp_symtab_close(t);
}

/*
 * A call inlined twice: leaf() into mid() into outer(), both by force so that
 * every build (the sanitizer one at -O1 too) has the inlined instances in its
 * DWARF. Each records the line it calls from, and capture() its return
 * address, which lies in leaf's code inside outer's body.
 */
static struct {
    uintptr_t ret;
    int leaf_line, mid_line, outer_line;
} inl;

__attribute__((noinline)) static void capture(void)
{
    inl.ret = (uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0));
    __asm__ volatile("" ::: "memory");
}

static inline __attribute__((always_inline)) void leaf(void)
{
    inl.leaf_line = __LINE__ + 1;
    capture();
}

static inline __attribute__((always_inline)) void mid(void)
{
    inl.mid_line = __LINE__ + 1;
    leaf();
}

__attribute__((noinline)) static void outer(void)
{
    inl.outer_line = __LINE__ + 1;
    mid();
    __asm__ volatile("" ::: "memory");
}

/* An address in inlined code names each inlined function, innermost first, at its line, and the symbol's function last. */
static void test_names_inlined_functions(void **state)
{
    (void)state;
    outer();
    hp_symtab_t *t = hp_symtab_open_self(&err);
    assert_non_null(t);
    hp_sym_t sym;
    assert_int_equal(hp_symtab_lookup(t, inl.ret - 1, &sym), 1);
    assert_non_null(sym.function);
    assert_string_equal(sym.function, "outer");
    assert_int_equal(sym.num_inlined, 2);
    assert_string_equal(sym.inlined[0].function, "leaf");
    assert_int_equal(sym.inlined[0].line, inl.leaf_line);
    assert_string_equal(sym.inlined[1].function, "mid");
    assert_int_equal(sym.inlined[1].line, inl.mid_line);
    assert_int_equal(sym.line, inl.outer_line);
    assert_non_null(sym.file);
    assert_non_null(strstr(sym.file, "test_pprof.c"));
    assert_non_null(strstr(sym.inlined[1].file, "test_pprof.c"));
    /* Code inlined nowhere has no chain: capture()'s own first instructions. */
    assert_int_equal(hp_symtab_lookup(t, (uint64_t)(uintptr_t)&capture + 1, &sym), 1);
    assert_int_equal(sym.num_inlined, 0);

    /* The encoder gives the location one line per function, in pprof's order: the innermost first. */
    uint64_t pcs[] = {inl.ret - 1};
    unsigned char *gz = NULL;
    Perftools__Profiles__Profile *p = encoded_self(t, pcs, 1, &gz);
    const Perftools__Profiles__Location *loc = location(p, p->sample[0]->location_id[0]);
    assert_int_equal(loc->n_line, 3);
    static const char *const want[] = {"leaf", "mid", "outer"};
    for (size_t i = 0; i != 3; ++i)
        assert_string_equal(str(p, p->function[loc->line[i]->function_id - 1]->name), want[i]);
    assert_int_equal(loc->line[2]->line, inl.outer_line);
    perftools__profiles__profile__free_unpacked(p, NULL);
    free(gz);
    hp_symtab_close(t);
}

/* The address of the vDSO's clock_gettime in this process, read from the image's dynamic symbols; 0 when there is none. */
static uint64_t vdso_clock_gettime(void)
{
    const char *base = (const char *)getauxval(AT_SYSINFO_EHDR);
    if (base == NULL)
        return 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    elf_version(EV_CURRENT);
    Elf *e = elf_memory((char *)base, (size_t)eh->e_shoff + (size_t)eh->e_shnum * eh->e_shentsize);
    uint64_t addr = 0;
    for (Elf_Scn *scn = NULL; e != NULL && addr == 0 && (scn = elf_nextscn(e, scn)) != NULL;) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != SHT_DYNSYM)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        for (size_t i = 0; d != NULL && i != sh.sh_size / sh.sh_entsize; ++i) {
            GElf_Sym sym;
            const char *name = gelf_getsym(d, (int)i, &sym) != NULL ? elf_strptr(e, sh.sh_link, sym.st_name) : NULL;
            if (name != NULL && strcmp(name, "__vdso_clock_gettime") == 0)
                addr = (uint64_t)(uintptr_t)base + sym.st_value; /* the image is linked at 0 */
        }
    }
    if (e != NULL)
        elf_end(e);
    return addr;
}

struct libc_base {
    uint64_t bias;
    char path[512];
};

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct libc_base *b = data;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "/libc.so.6") == NULL)
        return 0;
    b->bias = info->dlpi_addr;
    snprintf(b->path, sizeof(b->path), "%s", info->dlpi_name);
    return 1;
}

/* A PLT stub has no symbol; it is named NAME@plt from the relocation of the slot it jumps through (libc's own .plt here). */
static void test_names_plt_stubs(void **state)
{
    (void)state;
    struct libc_base b = {0};
    if (dl_iterate_phdr(find_libc, &b) == 0)
        skip();
    elf_version(EV_CURRENT);
    FILE *f = fopen(b.path, "rb");
    assert_non_null(f);
    Elf *e = elf_begin(fileno(f), ELF_C_READ, NULL);
    assert_non_null(e);
    size_t shstrndx;
    assert_int_equal(elf_getshdrstrndx(e, &shstrndx), 0);
    GElf_Shdr plt = {0};
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e, scn)) != NULL;) {
        GElf_Shdr sh;
        const char *name = gelf_getshdr(scn, &sh) != NULL ? elf_strptr(e, shstrndx, sh.sh_name) : NULL;
        if (name != NULL && strcmp(name, ".plt") == 0)
            plt = sh;
    }
    elf_end(e);
    fclose(f);
    if (plt.sh_size < 32)
        skip(); /* a libc without stubs of its own */
    hp_symtab_t *t = hp_symtab_open_self(&err);
    assert_non_null(t);
    /* Every stub after PLT0 is named, an address in its middle as well as its first byte, and each name is kept once. */
    size_t named = 0;
    for (uint64_t a = b.bias + plt.sh_addr + 16; a < b.bias + plt.sh_addr + plt.sh_size; a += 16) {
        hp_sym_t sym, mid;
        assert_int_equal(hp_symtab_lookup(t, a, &sym), 1);
        if (sym.function == NULL)
            fail_msg("the stub at libc+0x%llx has no name", (unsigned long long)(a - b.bias));
        size_t n = strlen(sym.function);
        assert_true(n > 4 && strcmp(sym.function + n - 4, "@plt") == 0);
        assert_int_equal(sym.function_start, a);
        assert_int_equal(hp_symtab_lookup(t, a + 7, &mid), 1);
        assert_ptr_equal(mid.function, sym.function);
        ++named;
    }
    assert_true(named > 0);
    /* PLT0, the resolver's trampoline, jumps through no slot of a function: unnamed. */
    hp_sym_t sym;
    assert_int_equal(hp_symtab_lookup(t, b.bias + plt.sh_addr + 2, &sym), 1);
    assert_null(sym.function);
    hp_symtab_close(t);
}

/* The vDSO maps no file, so its frames are named from this process's own image (profiling/symbolize.c). */
static void test_symbolizes_the_vdso(void **state)
{
    (void)state;
    uint64_t fn = vdso_clock_gettime();
    if (fn == 0)
        skip();
    static char maps[65536];
    size_t n = self_maps(maps, sizeof(maps));
    hp_symtab_t *t = hp_symtab_open_maps(maps, n, &err);
    assert_non_null(t);
    hp_sym_t sym;
    assert_int_equal(hp_symtab_lookup(t, fn + 2, &sym), 1);
    assert_non_null(sym.module);
    assert_string_equal(sym.module, "[vdso]");
    assert_non_null(sym.function);
    assert_non_null(strstr(sym.function, "clock_gettime"));
    assert_int_equal(sym.function_start, fn);
    hp_symtab_close(t);
    /* A [vdso] mapping of another size is another kernel's: left unnamed rather than misnamed. */
    static const char other[] = "7ffff7fc1000-7ffff7fd1000 r-xp 00000000 00:00 0   [vdso]\n";
    t = hp_symtab_open_maps(other, sizeof(other) - 1, &err);
    assert_non_null(t);
    assert_int_equal(hp_symtab_lookup(t, 0x7ffff7fc1000 + 0x100, &sym), 1);
    assert_null(sym.function);
    hp_symtab_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cpu_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heap_reader, setup, teardown),
        cmocka_unit_test(test_maps_reader),
        cmocka_unit_test_setup_teardown(test_encode_cpu_unsymbolized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_heap_unsamples_and_drops_jemalloc_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_adds_samples_and_dedupes_the_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbolizes_this_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbolizes_the_vdso, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_plt_stubs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_inlined_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
