/*
 * pprof_proto: the profile.proto encoder and `hotplate pprof-encode` (see
 * pprof_proto.h).
 *
 * The encoder deduplicates as pprof expects: one string per distinct text
 * (index 0 is ""), one Function per distinct (name, source file), one
 * Location per distinct address, one Mapping per executable line of the
 * maps text (the main binary first, since it is mapped lowest). The tables
 * are hashed with a small open-addressing index written here: none of the
 * libraries hotplate links has a hash table, and glib would be a new
 * dependency for forty lines.
 *
 * Addresses: a sample's first pc is where the CPU was (gperftools takes it
 * from the signal's context); every other pc is a return address, which
 * points after the call, possibly into the next line or even the next
 * function. Those are looked up and recorded as pc - 1, the way pprof and
 * every unwinder do. jemalloc's stacks are all return addresses, and start
 * inside jemalloc itself (its backtrace and allocation functions), so a heap
 * sample's frames in libjemalloc are dropped and the first caller of the
 * allocator is the leaf, as jeprof shows it.
 */
#include "profiling/pprof_proto.h"
#include "runtime/migrate.h"
#include "profiling/pprof_fold.h"
#include "profile.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- the index ------------------------------------------------------------------------------- */

/* Slots of (hash, index + 1); 0 marks an empty slot. Equality is the caller's, by index. */
typedef struct st_hp__pidx_t {
    uint64_t *hash;
    uint32_t *val;
    size_t cap, n;
} hp__pidx_t;

typedef int (*hp__pidx_eq)(void *ud, uint32_t idx, const void *key);

static uint64_t hp__fnv(const void *p, size_t len, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i != len; ++i)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static void hp__pidx_grow(h2o_mem_pool_t *pool, hp__pidx_t *x)
{
    size_t cap = x->cap != 0 ? x->cap * 2 : 1024;
    uint64_t *hash = h2o_mem_alloc_pool(pool, cap * sizeof(*hash));
    uint32_t *val = h2o_mem_alloc_pool(pool, cap * sizeof(*val));
    memset(val, 0, cap * sizeof(*val));
    for (size_t i = 0; i != x->cap; ++i) {
        if (x->val[i] == 0)
            continue;
        size_t j = x->hash[i] & (cap - 1);
        while (val[j] != 0)
            j = (j + 1) & (cap - 1);
        hash[j] = x->hash[i];
        val[j] = x->val[i];
    }
    x->hash = hash;
    x->val = val;
    x->cap = cap;
}

/* @return the index stored for key, or -1 with *slot where it would go */
static int64_t hp__pidx_find(hp__pidx_t *x, uint64_t h, hp__pidx_eq eq, void *ud, const void *key, size_t *slot)
{
    size_t j = h & (x->cap - 1);
    for (; x->val[j] != 0; j = (j + 1) & (x->cap - 1))
        if (x->hash[j] == h && eq(ud, x->val[j] - 1, key))
            return x->val[j] - 1;
    *slot = j;
    return -1;
}

/* @return the index stored for key, or -1; an index that has no slots yet gets its first ones. */
static int64_t hp__pidx_lookup(h2o_mem_pool_t *pool, hp__pidx_t *x, uint64_t h, hp__pidx_eq eq, void *ud, const void *key)
{
    size_t slot;
    if (x->cap == 0)
        hp__pidx_grow(pool, x);
    return hp__pidx_find(x, h, eq, ud, key, &slot);
}

static void hp__pidx_put(h2o_mem_pool_t *pool, hp__pidx_t *x, uint64_t h, hp__pidx_eq eq, void *ud, const void *key, uint32_t idx)
{
    size_t slot;
    if ((x->n + 1) * 2 > x->cap)
        hp__pidx_grow(pool, x);
    if (hp__pidx_find(x, h, eq, ud, key, &slot) < 0) {
        x->hash[slot] = h;
        x->val[slot] = idx + 1;
        ++x->n;
    }
}

/* ---- the builder ----------------------------------------------------------------------------- */

typedef struct st_hp__pb_t {
    h2o_mem_pool_t pool;
    hp_symtab_t *syms;
    char **strings;
    size_t num_strings, cap_strings;
    hp__pidx_t string_idx;
    Perftools__Profiles__Function **functions;
    size_t num_functions, cap_functions;
    hp__pidx_t function_idx;
    Perftools__Profiles__Location **locations;
    size_t num_locations, cap_locations;
    hp__pidx_t location_idx;
    Perftools__Profiles__Mapping **mappings;
    size_t num_mappings;
    int *mapping_is_jemalloc; /* per mapping: the file is jemalloc (its frames leave heap samples) */
} hp__pb_t;

/* Grows a pool array of pointers by doubling. */
static void *hp__pb_grow(hp__pb_t *b, void *arr, size_t n, size_t *cap)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap != 0 ? *cap * 2 : 256;
    void **a = h2o_mem_alloc_pool(&b->pool, ncap * sizeof(void *));
    if (n != 0)
        memcpy(a, arr, n * sizeof(void *));
    *cap = ncap;
    return a;
}

static int hp__pb_string_eq(void *ud, uint32_t idx, const void *key)
{
    return strcmp(((hp__pb_t *)ud)->strings[idx], key) == 0;
}

/* The string table index of s (added when new). */
static int64_t hp__pb_string(hp__pb_t *b, const char *s)
{
    size_t len = strlen(s);
    uint64_t h = hp__fnv(s, len, 0xcbf29ce484222325ull);
    int64_t found = hp__pidx_lookup(&b->pool, &b->string_idx, h, hp__pb_string_eq, b, s);
    if (found >= 0)
        return found;
    b->strings = hp__pb_grow(b, b->strings, b->num_strings, &b->cap_strings);
    char *copy = h2o_mem_alloc_pool(&b->pool, len + 1);
    memcpy(copy, s, len + 1);
    uint32_t idx = (uint32_t)b->num_strings++;
    b->strings[idx] = copy;
    hp__pidx_put(&b->pool, &b->string_idx, h, hp__pb_string_eq, b, s, idx);
    return idx;
}

typedef struct {
    int64_t name, file;
} hp__pb_fkey_t;

static int hp__pb_function_eq(void *ud, uint32_t idx, const void *key)
{
    const Perftools__Profiles__Function *f = ((hp__pb_t *)ud)->functions[idx];
    const hp__pb_fkey_t *k = key;
    return f->name == k->name && f->filename == k->file;
}

/* The id of the Function (name, file) (added when new). */
static uint64_t hp__pb_function(hp__pb_t *b, const char *name, const char *file)
{
    hp__pb_fkey_t k = {hp__pb_string(b, name), hp__pb_string(b, file)};
    uint64_t h = hp__fnv(&k, sizeof(k), 0xcbf29ce484222325ull);
    int64_t found = hp__pidx_lookup(&b->pool, &b->function_idx, h, hp__pb_function_eq, b, &k);
    if (found >= 0)
        return b->functions[found]->id;
    b->functions = hp__pb_grow(b, b->functions, b->num_functions, &b->cap_functions);
    Perftools__Profiles__Function *f = h2o_mem_alloc_pool(&b->pool, sizeof(*f));
    perftools__profiles__function__init(f);
    uint32_t idx = (uint32_t)b->num_functions++;
    f->id = idx + 1;
    f->name = f->system_name = k.name;
    f->filename = k.file;
    b->functions[idx] = f;
    hp__pidx_put(&b->pool, &b->function_idx, h, hp__pb_function_eq, b, &k, idx);
    return f->id;
}

/* The mapping that holds addr, or -1. The mappings are sorted by address (a maps text is). */
static int64_t hp__pb_mapping_of(const hp__pb_t *b, uint64_t addr)
{
    size_t lo = 0, hi = b->num_mappings;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < b->mappings[mid]->memory_start)
            hi = mid;
        else if (addr >= b->mappings[mid]->memory_limit)
            lo = mid + 1;
        else
            return (int64_t)mid;
    }
    return -1;
}

static const char *hp__pb_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* A new Location with the next id; the caller stores it at b->locations[*idx] once it is filled in. */
static Perftools__Profiles__Location *hp__pb_new_location(hp__pb_t *b, uint32_t *idx)
{
    b->locations = hp__pb_grow(b, b->locations, b->num_locations, &b->cap_locations);
    Perftools__Profiles__Location *loc = h2o_mem_alloc_pool(&b->pool, sizeof(*loc));
    perftools__profiles__location__init(loc);
    *idx = (uint32_t)b->num_locations++;
    loc->id = *idx + 1;
    return loc;
}

static int hp__pb_location_eq(void *ud, uint32_t idx, const void *key)
{
    return ((hp__pb_t *)ud)->locations[idx]->address == *(const uint64_t *)key;
}

/* The id of the Location at addr (symbolized and added when new). */
static uint64_t hp__pb_location(hp__pb_t *b, uint64_t addr)
{
    uint64_t h = addr * 0x9e3779b97f4a7c15ull;
    int64_t found = hp__pidx_lookup(&b->pool, &b->location_idx, h, hp__pb_location_eq, b, &addr);
    if (found >= 0)
        return b->locations[found]->id;
    uint32_t idx;
    Perftools__Profiles__Location *loc = hp__pb_new_location(b, &idx);
    loc->address = addr;
    int64_t m = hp__pb_mapping_of(b, addr);
    if (m >= 0)
        loc->mapping_id = b->mappings[m]->id;
    if (b->syms != NULL) {
        hp_sym_t sym;
        hp_symtab_lookup(b->syms, addr, &sym);
        const char *module = sym.module != NULL ? sym.module : m >= 0 ? b->strings[b->mappings[m]->filename] : NULL;
        char fallback[300];
        const char *name = sym.function;
        if (name == NULL) {
            /* No symbol covers the address: name it after its file and offset, as pprof does, so the frame is still told apart. */
            if (module != NULL)
                snprintf(fallback, sizeof(fallback), "%s+0x%llx", hp__pb_basename(module),
                         (unsigned long long)(addr - (sym.module != NULL ? sym.module_start : b->mappings[m]->memory_start)));
            else
                snprintf(fallback, sizeof(fallback), "0x%llx", (unsigned long long)addr);
            name = fallback;
        }
        /* pprof's order: the innermost inlined function first, the function the symbol names last. */
        loc->n_line = sym.num_inlined + 1;
        loc->line = h2o_mem_alloc_pool(&b->pool, loc->n_line * sizeof(*loc->line));
        for (size_t i = 0; i != loc->n_line; ++i) {
            const hp_sym_inlined_t *in = i != sym.num_inlined ? &sym.inlined[i] : NULL;
            const char *file = in != NULL ? in->file : sym.file;
            Perftools__Profiles__Line *line = h2o_mem_alloc_pool(&b->pool, sizeof(*line));
            perftools__profiles__line__init(line);
            line->function_id = hp__pb_function(b, in != NULL ? in->function : name,
                                                file != NULL     ? file
                                                : module != NULL ? module
                                                                 : "");
            line->line = in != NULL ? in->line : sym.line;
            loc->line[i] = line;
        }
    }
    b->locations[idx] = loc;
    hp__pidx_put(&b->pool, &b->location_idx, h, hp__pb_location_eq, b, &addr, idx);
    return loc->id;
}

/* One Mapping per executable line of the maps text. */
static void hp__pb_mappings(hp__pb_t *b, const char *maps, size_t len)
{
    size_t cap = 0;
    const char *p = maps, *end = maps + len;
    hp_pprof_map_t m;
    int rc;
    while ((rc = hp_pprof_map_next(&p, end, &m)) != 0) {
        if (rc < 0 || !m.exec || m.path_len == 0 || m.limit == m.start)
            continue;
        if (b->num_mappings != 0 && m.start < b->mappings[b->num_mappings - 1]->memory_limit)
            continue; /* not sorted or overlapping: not a maps text the kernel wrote; keep the search sound */
        size_t n = b->num_mappings;
        size_t old_cap = cap;
        b->mappings = hp__pb_grow(b, b->mappings, n, &cap);
        if (cap != old_cap) {
            int *flags = h2o_mem_alloc_pool(&b->pool, cap * sizeof(*flags));
            if (n != 0)
                memcpy(flags, b->mapping_is_jemalloc, n * sizeof(*flags));
            b->mapping_is_jemalloc = flags;
        }
        char *path = h2o_mem_alloc_pool(&b->pool, m.path_len + 1);
        memcpy(path, m.path, m.path_len);
        path[m.path_len] = '\0';
        Perftools__Profiles__Mapping *mp = h2o_mem_alloc_pool(&b->pool, sizeof(*mp));
        perftools__profiles__mapping__init(mp);
        mp->id = n + 1;
        mp->memory_start = m.start;
        mp->memory_limit = m.limit;
        mp->file_offset = m.offset;
        mp->filename = hp__pb_string(b, path);
        mp->has_functions = mp->has_filenames = mp->has_line_numbers = b->syms != NULL;
        b->mappings[n] = mp;
        b->mapping_is_jemalloc[n] = strstr(hp__pb_basename(path), "libjemalloc") != NULL;
        b->num_mappings = n + 1;
    }
}

static Perftools__Profiles__ValueType *hp__pb_value_type(hp__pb_t *b, const char *type, const char *unit)
{
    Perftools__Profiles__ValueType *v = h2o_mem_alloc_pool(&b->pool, sizeof(*v));
    perftools__profiles__value_type__init(v);
    v->type = hp__pb_string(b, type);
    v->unit = hp__pb_string(b, unit);
    return v;
}

/* pprof's estimate of the true (objects, bytes) behind a sampled pair at the given sampling interval. */
static void hp__pb_unsample(uint64_t objects, uint64_t bytes, uint64_t rate, int64_t *o, int64_t *s)
{
    if (objects == 0 || bytes == 0) {
        *o = *s = 0;
        return;
    }
    double scale = rate > 1 ? 1.0 / (1.0 - exp(-((double)bytes / (double)objects) / (double)rate)) : 1.0;
    *o = (int64_t)((double)objects * scale);
    *s = (int64_t)((double)bytes * scale);
}

/* gzip (RFC 1952) of len bytes, what pprof's readers expect of a .pb.gz. @return 0, or -1 */
static int hp__pb_gzip(const unsigned char *in, size_t len, unsigned char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

/* Packs and gzips a profile. @return 0 with *out (malloc'd), or -1 with *err set */
static int hp__pb_pack(const Perftools__Profiles__Profile *prof, unsigned char **out, size_t *out_len, const char **err)
{
    size_t packed_len = perftools__profiles__profile__get_packed_size(prof);
    unsigned char *packed = malloc(packed_len != 0 ? packed_len : 1);
    if (packed == NULL) {
        *err = "out of memory";
        return -1;
    }
    perftools__profiles__profile__pack(prof, packed);
    int rc = hp__pb_gzip(packed, packed_len, out, out_len);
    free(packed);
    if (rc != 0)
        *err = "zlib could not compress the profile";
    return rc;
}

/* Gives prof the builder's tables. */
static void hp__pb_set_tables(hp__pb_t *b, Perftools__Profiles__Profile *prof)
{
    prof->mapping = b->mappings;
    prof->n_mapping = b->num_mappings;
    prof->location = b->locations;
    prof->n_location = b->num_locations;
    prof->function = b->functions;
    prof->n_function = b->num_functions;
    prof->string_table = b->strings;
    prof->n_string_table = b->num_strings;
}

/* Gives prof the builder's tables, then packs and gzips it. */
static int hp__pb_pack_tables(hp__pb_t *b, Perftools__Profiles__Profile *prof, unsigned char **out, size_t *out_len,
                              const char **err)
{
    hp__pb_set_tables(b, prof);
    return hp__pb_pack(prof, out, out_len, err);
}

/* The encoder's one body: folded (hp_pprof_fold's text in *out) or not (the gzipped proto). */
static int hp__pprof_encode_as(const hp_pprof_raw_t *raw, hp_symtab_t *syms, const hp_pprof_meta_t *meta, int folded,
                               unsigned char **out, size_t *out_len, const char **err)
{
    if ((raw->kind == HP_PPROF_RAW_CPU) != (meta->kind == HP_PPROF_CPU)) {
        *err = "the profile's kind does not match its file";
        return -1;
    }
    hp__pb_t b;
    memset(&b, 0, sizeof(b));
    h2o_mem_init_pool(&b.pool);
    b.syms = syms;
    hp__pb_string(&b, ""); /* string_table[0] must be "" */
    hp__pb_mappings(&b, raw->maps, raw->maps_len);

    Perftools__Profiles__Profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
    int cpu = raw->kind == HP_PPROF_RAW_CPU;
    Perftools__Profiles__ValueType *types[4];
    if (cpu) {
        types[0] = hp__pb_value_type(&b, "samples", "count");
        types[1] = hp__pb_value_type(&b, "cpu", "nanoseconds");
        prof.period_type = hp__pb_value_type(&b, "cpu", "nanoseconds");
        prof.period = (int64_t)raw->period * 1000;
    } else {
        types[0] = hp__pb_value_type(&b, "alloc_objects", "count");
        types[1] = hp__pb_value_type(&b, "alloc_space", "bytes");
        types[2] = hp__pb_value_type(&b, "inuse_objects", "count");
        types[3] = hp__pb_value_type(&b, "inuse_space", "bytes");
        prof.period_type = hp__pb_value_type(&b, "space", "bytes");
        prof.period = (int64_t)raw->period;
        prof.default_sample_type = hp__pb_string(&b, meta->kind == HP_PPROF_ALLOCS ? "alloc_space" : "inuse_space");
    }
    size_t nvalues = cpu ? 2 : 4;
    prof.sample_type = types;
    prof.n_sample_type = nvalues;

    Perftools__Profiles__Sample **samples = h2o_mem_alloc_pool(&b.pool, (raw->num_samples + 1) * sizeof(*samples));
    size_t nsamples = 0;
    for (size_t i = 0; i != raw->num_samples; ++i) {
        const hp_pprof_raw_sample_t *rs = &raw->samples[i];
        Perftools__Profiles__Sample *s = h2o_mem_alloc_pool(&b.pool, sizeof(*s));
        perftools__profiles__sample__init(s);
        s->location_id = h2o_mem_alloc_pool(&b.pool, (rs->depth + 1) * sizeof(*s->location_id));
        for (uint32_t d = 0; d != rs->depth; ++d) {
            /* See the header comment: every pc but a CPU sample's first is a return address. */
            uint64_t pc = rs->pcs[d] - (cpu && d == 0 ? 0 : rs->pcs[d] != 0);
            if (!cpu && s->n_location_id == 0) {
                int64_t m = hp__pb_mapping_of(&b, pc);
                if (m >= 0 && b.mapping_is_jemalloc[m])
                    continue;
            }
            s->location_id[s->n_location_id++] = hp__pb_location(&b, pc);
        }
        s->value = h2o_mem_alloc_pool(&b.pool, nvalues * sizeof(*s->value));
        s->n_value = nvalues;
        if (cpu) {
            s->value[0] = (int64_t)rs->v[0];
            s->value[1] = (int64_t)rs->v[0] * prof.period;
        } else {
            hp__pb_unsample(rs->v[2], rs->v[3], raw->period, &s->value[0], &s->value[1]);
            hp__pb_unsample(rs->v[0], rs->v[1], raw->period, &s->value[2], &s->value[3]);
        }
        samples[nsamples++] = s;
    }
    prof.sample = samples;
    prof.n_sample = nsamples;
    prof.time_nanos = meta->time_ns;
    prof.duration_nanos = meta->duration_ns;
    int64_t comments[HP_PPROF_MAX_COMMENTS];
    for (size_t i = 0; i != meta->num_comments && i != HP_PPROF_MAX_COMMENTS; ++i)
        comments[prof.n_comment++] = hp__pb_string(&b, meta->comments[i]);
    prof.comment = comments;
    int rc;
    if (folded) {
        hp__pb_set_tables(&b, &prof);
        rc = hp_pprof_fold(&prof, (char **)out, out_len, err);
    } else {
        rc = hp__pb_pack_tables(&b, &prof, out, out_len, err);
    }
    h2o_mem_clear_pool(&b.pool);
    return rc;
}

int hp_pprof_encode(const hp_pprof_raw_t *raw, hp_symtab_t *syms, const hp_pprof_meta_t *meta, unsigned char **out, size_t *out_len,
                    const char **err)
{
    return hp__pprof_encode_as(raw, syms, meta, 0, out, out_len, err);
}

int hp_pprof_encode_folded(const hp_pprof_raw_t *raw, hp_symtab_t *syms, const hp_pprof_meta_t *meta, char **out, size_t *out_len,
                           const char **err)
{
    return hp__pprof_encode_as(raw, syms, meta, 1, (unsigned char **)out, out_len, err);
}

/* ---- merging --------------------------------------------------------------------------------- */

/* gunzip of a .pb.gz, bounded. @return the bytes (malloc'd), or NULL */
static unsigned char *hp__pb_gunzip(const unsigned char *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* 32: gzip or zlib, whichever the header says */
        return NULL;
    size_t cap = len * 4 + 4096, used = 0;
    unsigned char *buf = malloc(cap);
    int rc = Z_OK;
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    while (buf != NULL && rc == Z_OK) {
        if (cap - used < 4096) {
            unsigned char *n = cap * 2 <= HP_PPROF_MAX_PROTO ? realloc(buf, cap * 2) : NULL;
            if (n == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = n;
            cap *= 2;
        }
        z.next_out = buf + used;
        z.avail_out = (uInt)(cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
    }
    inflateEnd(&z);
    if (buf != NULL && rc != Z_STREAM_END) {
        free(buf);
        buf = NULL;
    }
    *out_len = used;
    return buf;
}

typedef struct {
    uint64_t mapping_id, address, function_id;
    int64_t line;
} hp__pb_lkey_t;

static int hp__pb_lkey_eq(void *ud, uint32_t idx, const void *key)
{
    const Perftools__Profiles__Location *l = ((hp__pb_t *)ud)->locations[idx];
    const hp__pb_lkey_t *k = key;
    return l->mapping_id == k->mapping_id && l->address == k->address &&
           (l->n_line != 0 ? l->line[0]->function_id : 0) == k->function_id && (l->n_line != 0 ? l->line[0]->line : 0) == k->line;
}

/* The index of the element with `id` in an array of n messages whose ids are 1..n in order (as every pprof writer makes them), or
 * -1. */
#define HP__PB_BY_ID(arr, n, want) ((want) >= 1 && (want) <= (n) && (arr)[(want)-1]->id == (want) ? (int64_t)(want)-1 : (int64_t)-1)

/* Adds one decoded profile's samples to the builder. @return 0, or -1 with *err set */
static int hp__pb_merge_one(hp__pb_t *b, const Perftools__Profiles__Profile *p, Perftools__Profiles__Sample ***samples, size_t *n,
                            size_t *cap, const char **err)
{
    /* Every table of a profile pprof or hotplate wrote has ids 1..n in order; anything else is refused rather than guessed. */
    uint64_t *fmap = h2o_mem_alloc_pool(&b->pool, (p->n_function + 1) * sizeof(*fmap));
    uint64_t *mmap = h2o_mem_alloc_pool(&b->pool, (p->n_mapping + 1) * sizeof(*mmap));
    uint64_t *lmap = h2o_mem_alloc_pool(&b->pool, (p->n_location + 1) * sizeof(*lmap));
    for (size_t i = 0; i != p->n_function; ++i) {
        const Perftools__Profiles__Function *f = p->function[i];
        if (f->id != i + 1 || f->name < 0 || (size_t)f->name >= p->n_string_table || f->filename < 0 ||
            (size_t)f->filename >= p->n_string_table) {
            *err = "a profile's functions are not numbered 1..n or name strings it lacks";
            return -1;
        }
        fmap[i] = hp__pb_function(b, p->string_table[f->name], p->string_table[f->filename]);
    }
    for (size_t i = 0; i != p->n_mapping; ++i) {
        const Perftools__Profiles__Mapping *m = p->mapping[i];
        if (m->id != i + 1 || m->filename < 0 || (size_t)m->filename >= p->n_string_table) {
            *err = "a profile's mappings are not numbered 1..n";
            return -1;
        }
        int64_t file = hp__pb_string(b, p->string_table[m->filename]);
        size_t j = 0;
        while (j != b->num_mappings && !(b->mappings[j]->filename == file && b->mappings[j]->memory_start == m->memory_start &&
                                         b->mappings[j]->memory_limit == m->memory_limit))
            ++j;
        if (j == b->num_mappings) {
            size_t cap_m = b->num_mappings; /* the array is exactly full: grow it by one */
            b->mappings = hp__pb_grow(b, b->mappings, b->num_mappings, &cap_m);
            Perftools__Profiles__Mapping *nm = h2o_mem_alloc_pool(&b->pool, sizeof(*nm));
            *nm = *m;
            nm->id = j + 1;
            nm->filename = file;
            nm->build_id = 0;
            b->mappings[b->num_mappings++] = nm;
        }
        mmap[i] = j + 1;
    }
    for (size_t i = 0; i != p->n_location; ++i) {
        const Perftools__Profiles__Location *l = p->location[i];
        if (l->id != i + 1 || l->mapping_id > p->n_mapping) {
            *err = "a profile's locations are not numbered 1..n";
            return -1;
        }
        hp__pb_lkey_t k = {l->mapping_id != 0 ? mmap[l->mapping_id - 1] : 0, l->address, 0, 0};
        if (l->n_line != 0) {
            int64_t f = HP__PB_BY_ID(p->function, p->n_function, l->line[0]->function_id);
            if (f < 0) {
                *err = "a location names a function the profile lacks";
                return -1;
            }
            k.function_id = fmap[f];
            k.line = l->line[0]->line;
        }
        uint64_t h = hp__fnv(&k, sizeof(k), 0xcbf29ce484222325ull);
        int64_t found = hp__pidx_lookup(&b->pool, &b->location_idx, h, hp__pb_lkey_eq, b, &k);
        if (found >= 0) {
            lmap[i] = b->locations[found]->id;
            continue;
        }
        uint32_t idx;
        Perftools__Profiles__Location *nl = hp__pb_new_location(b, &idx);
        nl->mapping_id = k.mapping_id;
        nl->address = l->address;
        if (l->n_line != 0) {
            nl->line = h2o_mem_alloc_pool(&b->pool, l->n_line * sizeof(*nl->line));
            for (size_t j = 0; j != l->n_line; ++j) {
                int64_t f = HP__PB_BY_ID(p->function, p->n_function, l->line[j]->function_id);
                if (f < 0) {
                    *err = "a location names a function the profile lacks";
                    return -1;
                }
                nl->line[j] = h2o_mem_alloc_pool(&b->pool, sizeof(*nl->line[j]));
                perftools__profiles__line__init(nl->line[j]);
                nl->line[j]->function_id = fmap[f];
                nl->line[j]->line = l->line[j]->line;
            }
            nl->n_line = l->n_line;
        }
        b->locations[idx] = nl;
        hp__pidx_put(&b->pool, &b->location_idx, h, hp__pb_lkey_eq, b, &k, idx);
        lmap[i] = nl->id;
    }
    for (size_t i = 0; i != p->n_sample; ++i) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        if (*n == *cap)
            *samples = hp__pb_grow(b, *samples, *n, cap);
        Perftools__Profiles__Sample *ns = h2o_mem_alloc_pool(&b->pool, sizeof(*ns));
        perftools__profiles__sample__init(ns);
        ns->location_id = h2o_mem_alloc_pool(&b->pool, (s->n_location_id + 1) * sizeof(*ns->location_id));
        for (size_t j = 0; j != s->n_location_id; ++j) {
            int64_t li = HP__PB_BY_ID(p->location, p->n_location, s->location_id[j]);
            if (li < 0) {
                *err = "a sample names a location the profile lacks";
                return -1;
            }
            ns->location_id[ns->n_location_id++] = lmap[li];
        }
        ns->value = h2o_mem_alloc_pool(&b->pool, (s->n_value + 1) * sizeof(*ns->value));
        memcpy(ns->value, s->value, s->n_value * sizeof(*ns->value));
        ns->n_value = s->n_value;
        (*samples)[(*n)++] = ns;
    }
    return 0;
}

int hp_pprof_merge(const unsigned char *const *gz, const size_t *gz_len, size_t num, unsigned char **out, size_t *out_len,
                   const char **err)
{
    if (num == 0) {
        *err = "nothing to merge";
        return -1;
    }
    hp__pb_t b;
    memset(&b, 0, sizeof(b));
    h2o_mem_init_pool(&b.pool);
    hp__pb_string(&b, "");
    Perftools__Profiles__Profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
    Perftools__Profiles__Sample **samples = NULL;
    size_t nsamples = 0, cap = 0, ncomments = 0;
    int64_t comments[HP_PPROF_MAX_COMMENTS + 1], end_ns = 0;
    Perftools__Profiles__ValueType *types[8];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i != num; ++i) {
        size_t len = 0;
        unsigned char *raw = hp__pb_gunzip(gz[i], gz_len[i], &len);
        Perftools__Profiles__Profile *p = raw != NULL ? perftools__profiles__profile__unpack(NULL, len, raw) : NULL;
        free(raw);
        if (p == NULL || p->n_string_table == 0) {
            *err = "an input is not a gzipped profile.proto";
            rc = -1;
        } else if (i == 0) {
            /* The first profile sets the sample types, the period and the default; the others must agree. */
            if (p->n_sample_type == 0 || p->n_sample_type > 8) {
                *err = "a profile has no (or too many) sample types";
                rc = -1;
            }
            for (size_t t = 0; rc == 0 && t != p->n_sample_type; ++t)
                types[t] =
                    hp__pb_value_type(&b, p->string_table[p->sample_type[t]->type], p->string_table[p->sample_type[t]->unit]);
            prof.n_sample_type = p->n_sample_type;
            if (rc == 0 && p->period_type != NULL)
                prof.period_type =
                    hp__pb_value_type(&b, p->string_table[p->period_type->type], p->string_table[p->period_type->unit]);
            prof.period = p->period;
            prof.default_sample_type = p->default_sample_type > 0 && (size_t)p->default_sample_type < p->n_string_table
                                           ? hp__pb_string(&b, p->string_table[p->default_sample_type])
                                           : 0;
        } else if (p->n_sample_type != prof.n_sample_type) {
            *err = "the profiles have different sample types (a CPU and a heap profile?)";
            rc = -1;
        }
        for (size_t t = 0; rc == 0 && i != 0 && t != p->n_sample_type; ++t)
            if (hp__pb_string(&b, p->string_table[p->sample_type[t]->type]) != types[t]->type) {
                *err = "the profiles have different sample types (a CPU and a heap profile?)";
                rc = -1;
            }
        if (rc == 0)
            rc = hp__pb_merge_one(&b, p, &samples, &nsamples, &cap, err);
        if (rc == 0) {
            if (prof.time_nanos == 0 || (p->time_nanos != 0 && p->time_nanos < prof.time_nanos))
                prof.time_nanos = p->time_nanos;
            if (p->time_nanos + p->duration_nanos > end_ns)
                end_ns = p->time_nanos + p->duration_nanos;
            for (size_t c = 0; c != p->n_comment && ncomments != HP_PPROF_MAX_COMMENTS; ++c) {
                if (p->comment[c] <= 0 || (size_t)p->comment[c] >= p->n_string_table)
                    continue;
                int64_t id = hp__pb_string(&b, p->string_table[p->comment[c]]);
                size_t k = 0;
                while (k != ncomments && comments[k] != id)
                    ++k;
                if (k == ncomments)
                    comments[ncomments++] = id;
            }
        }
        if (p != NULL)
            perftools__profiles__profile__free_unpacked(p, NULL);
    }
    if (rc == 0) {
        char note[64];
        snprintf(note, sizeof(note), "merged from %zu profiles", num);
        comments[ncomments++] = hp__pb_string(&b, note);
        prof.sample_type = types;
        prof.sample = samples;
        prof.n_sample = nsamples;
        prof.duration_nanos = end_ns > prof.time_nanos ? end_ns - prof.time_nanos : 0;
        prof.comment = comments;
        prof.n_comment = ncomments;
        rc = hp__pb_pack_tables(&b, &prof, out, out_len, err);
    }
    h2o_mem_clear_pool(&b.pool);
    return rc;
}

/* ---- hotplate pprof-encode ------------------------------------------------------------------- */

static int hp__pprof_usage(void)
{
    fprintf(stderr, "usage: hotplate pprof-encode cpu|heap|allocs FILE [--folded] [--seconds N] [--time-ns T] [--comment TEXT]...\n"
                    "  writes FILE (a gperftools CPU profile, or a jemalloc heap profile) to standard output\n"
                    "  as gzipped profile.proto, symbolized against the maps the file carries;\n"
                    "  --folded: as folded stacks of the same symbols instead (samples, or bytes in use or allocated)\n");
    return 2;
}

int hp_pprof_encode_main(int argc, char **argv)
{
    hp_pprof_meta_t meta = {0};
    const char *path = NULL;
    int folded = 0;
    if (argc < 3)
        return hp__pprof_usage();
    if (strcmp(argv[1], "cpu") == 0)
        meta.kind = HP_PPROF_CPU;
    else if (strcmp(argv[1], "heap") == 0)
        meta.kind = HP_PPROF_HEAP;
    else if (strcmp(argv[1], "allocs") == 0)
        meta.kind = HP_PPROF_ALLOCS;
    else
        return hp__pprof_usage();
    for (int i = 2; i < argc; ++i) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            meta.duration_ns = strtoll(argv[++i], NULL, 10) * 1000000000ll;
        else if (strcmp(argv[i], "--time-ns") == 0 && i + 1 < argc)
            meta.time_ns = strtoll(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--folded") == 0)
            folded = 1;
        else if (strcmp(argv[i], "--comment") == 0 && i + 1 < argc && meta.num_comments != HP_PPROF_MAX_COMMENTS)
            meta.comments[meta.num_comments++] = argv[++i];
        else if (argv[i][0] != '-' && path == NULL)
            path = argv[i];
        else
            return hp__pprof_usage();
    }
    if (path == NULL)
        return hp__pprof_usage();

    size_t len = 0;
    char *data = hp_migrate_read_file(path, &len);
    if (data == NULL) {
        fprintf(stderr, "pprof-encode: cannot read %s: %s\n", path, strerror(errno != 0 ? errno : EIO));
        return 1;
    }
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    hp_pprof_raw_t raw;
    const char *err = NULL;
    int rc = 1;
    int parsed = meta.kind == HP_PPROF_CPU ? hp_pprof_parse_cpu(&pool, data, len, &raw, &err)
                                           : hp_pprof_parse_heap(&pool, data, len, &raw, &err);
    if (parsed != 0) {
        fprintf(stderr, "pprof-encode: %s: %s\n", path, err);
    } else {
        hp_symtab_t *syms = hp_symtab_open_maps(raw.maps, raw.maps_len, &err);
        if (syms == NULL)
            fprintf(stderr, "pprof-encode: the addresses stay unsymbolized: %s\n", err);
        unsigned char *out = NULL;
        size_t out_len = 0;
        int encoded = folded ? hp_pprof_encode_folded(&raw, syms, &meta, (char **)&out, &out_len, &err)
                             : hp_pprof_encode(&raw, syms, &meta, &out, &out_len, &err);
        /* A profile with no samples folds to no text at all (and no buffer): nothing to write, and no error. */
        if (encoded != 0) {
            fprintf(stderr, "pprof-encode: %s\n", err);
        } else if ((out_len != 0 && fwrite(out, 1, out_len, stdout) != out_len) || fflush(stdout) != 0) {
            fprintf(stderr, "pprof-encode: writing the profile failed: %s\n", strerror(errno));
        } else {
            rc = 0;
        }
        free(out);
        hp_symtab_close(syms);
    }
    h2o_mem_clear_pool(&pool);
    free(data);
    return rc;
}

/* ---- hotplate pprof-merge -------------------------------------------------------------------- */

int hp_pprof_merge_main(int argc, char **argv)
{
    if (argc < 2 || argc - 1 > HP_PPROF_MAX_MERGE) {
        fprintf(stderr,
                "usage: hotplate pprof-merge FILE... (at most %d gzipped profile.proto files of one kind)\n"
                "  writes their merge to standard output\n",
                HP_PPROF_MAX_MERGE);
        return 2;
    }
    size_t num = (size_t)argc - 1;
    unsigned char **gz = calloc(num, sizeof(*gz));
    size_t *lens = calloc(num, sizeof(*lens));
    int rc = gz != NULL && lens != NULL ? 0 : 1;
    for (size_t i = 0; rc == 0 && i != num; ++i) {
        gz[i] = (unsigned char *)hp_migrate_read_file(argv[i + 1], &lens[i]);
        if (gz[i] == NULL) {
            fprintf(stderr, "pprof-merge: cannot read %s: %s\n", argv[i + 1], strerror(errno != 0 ? errno : EIO));
            rc = 1;
        }
    }
    const char *err = NULL;
    unsigned char *out = NULL;
    size_t out_len = 0;
    if (rc == 0 && hp_pprof_merge((const unsigned char *const *)gz, lens, num, &out, &out_len, &err) != 0) {
        fprintf(stderr, "pprof-merge: %s\n", err);
        rc = 1;
    }
    if (rc == 0 && (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0)) {
        fprintf(stderr, "pprof-merge: writing the profile failed: %s\n", strerror(errno));
        rc = 1;
    }
    free(out);
    for (size_t i = 0; gz != NULL && i != num; ++i)
        free(gz[i]);
    free(gz);
    free(lens);
    return rc;
}
