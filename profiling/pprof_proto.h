/*
 * pprof_proto: a profile of the server (pprof_legacy.h) encoded as pprof's
 * profile.proto, gzipped: the format `go tool pprof`, its web UI, Grafana
 * Pyroscope, Parca and speedscope read. The message types are generated at
 * build time by Debian's protobuf-c from the profile.proto that
 * golang-github-google-pprof-dev ships (CMakeLists.txt).
 *
 * The encoder symbolizes every address itself (symbolize.h), so a profile
 * carries its function names, source files and lines, and the mapped files'
 * names, and a viewer needs neither the binaries nor /debug/pprof/symbol:
 * every Mapping says has_functions.
 *
 * Sample types follow Go's runtime/pprof, which the viewers' defaults expect:
 *   CPU     samples/count, cpu/nanoseconds; period cpu/nanoseconds
 *   heap    alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 *           inuse_space/bytes; period space/bytes; the default sample type
 *           inuse_space (heap) or alloc_space (allocs)
 * Heap counts are sampled; like pprof reading a legacy heap profile, each is
 * scaled by 1 / (1 - exp(-mean size / sampling interval)) into an estimate
 * of the true total.
 *
 * `hotplate pprof-encode` is the command-line face of the encoder: prof.c
 * runs it as a child process so that the symbolization (which reads
 * megabytes of ELF and DWARF) never runs on the admin loop, and a user can
 * run it on a profile file saved earlier.
 */
#ifndef HP_PPROF_PROTO_H
#define HP_PPROF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "profiling/pprof_legacy.h"
#include "profiling/symbolize.h"

typedef enum { HP_PPROF_CPU = 0, HP_PPROF_HEAP, HP_PPROF_ALLOCS } hp_pprof_kind_t;

/* The most comments (free text lines: the commit, the flags...) a profile carries. */
#define HP_PPROF_MAX_COMMENTS 16

typedef struct st_hp_pprof_meta_t {
    hp_pprof_kind_t kind; /* must agree with the raw profile: HEAP and ALLOCS read a heap profile */
    int64_t time_ns;      /* when the profile started (Unix time), 0 when unknown */
    int64_t duration_ns;  /* how long it sampled, 0 when unknown */
    const char *comments[HP_PPROF_MAX_COMMENTS];
    size_t num_comments;
} hp_pprof_meta_t;

/**
 * Encodes raw as a gzipped profile.proto. syms may be NULL: the locations
 * then carry addresses and mappings only, for a viewer to symbolize.
 * @return 0 with *out (malloc'd; the caller frees it) and *out_len, or -1
 *         with *err set
 */
int hp_pprof_encode(const hp_pprof_raw_t *raw, hp_symtab_t *syms, const hp_pprof_meta_t *meta, unsigned char **out, size_t *out_len,
                    const char **err);

/**
 * Encodes raw as hp_pprof_encode does, and writes the result as folded
 * stacks (pprof_fold.h) instead of packing it. @return 0 with *out (malloc'd,
 * not NUL-terminated) and *out_len, or -1 with *err set
 */
int hp_pprof_encode_folded(const hp_pprof_raw_t *raw, hp_symtab_t *syms, const hp_pprof_meta_t *meta, char **out, size_t *out_len,
                           const char **err);

/* The most profiles one merge reads, and the largest profile.proto it unpacks. */
#define HP_PPROF_MAX_MERGE 256
#define HP_PPROF_MAX_PROTO (256u * 1024 * 1024)

/**
 * Merges gzipped profile.proto documents of one kind (same sample types) into
 * one: samples appended, functions, mappings and locations deduplicated by
 * what they name, the earliest start and the whole span as time and
 * duration, the comments kept. The sample types, period and default are the
 * first profile's. @return 0 with *out (malloc'd), or -1 with *err set
 */
int hp_pprof_merge(const unsigned char *const *gz, const size_t *gz_len, size_t num, unsigned char **out, size_t *out_len,
                   const char **err);

/** `hotplate pprof-merge FILE...`: their merge to standard output. @return the exit status */
int hp_pprof_merge_main(int argc, char **argv);

/**
 * `hotplate pprof-encode cpu|heap|allocs FILE [--folded] [--seconds N]
 * [--time-ns T] [--comment TEXT]...`: reads FILE (a gperftools CPU profile
 * for cpu, a jemalloc heap profile otherwise), symbolizes it against the
 * maps it carries and writes the gzipped profile.proto to standard output,
 * or with --folded its folded stacks.
 * argv[0] is "pprof-encode". @return the exit status
 */
int hp_pprof_encode_main(int argc, char **argv);

#endif
