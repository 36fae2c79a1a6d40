/*
 * prof: on-demand CPU and heap profiles of the running server, on the admin
 * listener.
 *
 *   GET  /debug/pprof/profile?seconds=N&format=proto|gperftools|folded|svg
 *        gperftools' CPU profiler (SIGPROF sampling of every thread, 100 Hz)
 *        for N seconds.
 *   GET  /debug/pprof/heap, /debug/pprof/allocs?seconds=N&format=proto|raw|folded&lg_sample=K
 *   POST /debug/heap/profile?seconds=N&format=raw|folded|proto&lg_sample=K
 *        jemalloc's heap profiler switched on for N seconds, then dumped.
 *
 * proto (pprof's gzipped profile.proto, pprof_proto.h) is the default of the
 * /debug/pprof/ routes, as in Go's net/http/pprof.
 *
 * Both run on the admin thread without ever blocking its loop: the wait is a
 * timer, and the conversions (the server's own `hotplate pprof-encode`, to
 * profile.proto or to folded stacks) are child processes whose output is
 * read through the loop. One profile of each kind runs at a time; a second
 * request gets 409.
 * A client that goes away stops its profile at once. Both need the admin token
 * when one is configured, because both change how the whole process runs.
 *
 * The routes are exported through hp_prof_routes, which main.c puts in the
 * admin table. gperftools' profiler is linked when the build has it
 * (HOTPLATE_CPU_PROFILER); without it the CPU profile answers 501.
 */
#ifndef HP_PROF_H
#define HP_PROF_H

/* Bounds of the `seconds` parameter, and its default. */
#define HP_PROF_MIN_SECONDS 1
#define HP_PROF_MAX_SECONDS 60
#define HP_PROF_DEFAULT_SECONDS 10

/* Bounds of the heap profile's `lg_sample` (log2 of the mean bytes between samples), and its default. */
#define HP_PROF_MIN_LG_SAMPLE 12
#define HP_PROF_MAX_LG_SAMPLE 24
#define HP_PROF_DEFAULT_LG_SAMPLE 17

/*
 * The doctor's heap profile samples every 32 KiB on average, four times as
 * often as the default. Its question is which site holds the memory that grew
 * in a few seconds, and the requests in flight at the dump hold large, short
 * lived documents too (a 200-line cart's parsed JSON tree): at 128 KiB
 * a single sample of one of them could outweigh a leak's handful and name the
 * wrong site.
 */
#define HP_PROF_COLLECT_LG_SAMPLE 15

/* How long a conversion (pprof-encode or pprof-merge) may take before it is killed and the request answered 504, in ms. */
#define HP_PROF_CONVERT_TIMEOUT_MS 20000

/* Largest raw profile or converted output served, in bytes. */
#define HP_PROF_MAX_OUTPUT (32u * 1024 * 1024)

#include <stddef.h>

#include "base/router.h"

struct st_hp_req_t;
struct st_hp_thread_t;

/**
 * Called with a profile's folded stacks (valid during the call only), or with
 * err set and folded NULL. Only ever called while r is alive.
 */
typedef void (*hp_prof_folded_cb)(struct st_hp_req_t *r, void *ud, const char *folded, size_t len, const char *err);

/**
 * Takes a CPU profile of `seconds` on behalf of r, for a caller on the admin
 * thread that wants the folded stacks rather than an answer (the doctor). The
 * profile is r's like any other: one at a time, stopped if r goes away.
 * @return 0 when the profile started (cb will be called), or -1 with the
 *         reason in *why (cb will not be called)
 */
int hp_prof_cpu_collect(struct st_hp_req_t *r, int seconds, hp_prof_folded_cb cb, void *ud, const char **why);

/** The same with a jemalloc heap profile (in-use bytes sampled over the window, at HP_PROF_COLLECT_LG_SAMPLE). */
int hp_prof_heap_collect(struct st_hp_req_t *r, int seconds, hp_prof_folded_cb cb, void *ud, const char **why);

/**
 * Called once when a saved profile (hp_prof_save) ends: with path (where
 * the gzipped profile.proto now is) and err NULL, or with err set (the file
 * is gone). Runs on the admin thread.
 */
typedef void (*hp_prof_saved_cb)(void *ud, const char *path, const char *err);

/**
 * Takes a CPU profile (heap 0) or a heap window (heap 1) of `seconds` in the
 * background, for continuous profiling (prof_history.c): no request waits for
 * it, the profile goes to `path` as gzipped profile.proto with the comments,
 * and a request for a profile of the same kind preempts it while it samples
 * (cb then hears "preempted"). Admin thread only.
 * @return 0 when it started (cb will be called), or -1 with *why set (a
 *         profile of the kind runs, or the build has no such profiler)
 */
int hp_prof_save(struct st_hp_thread_t *thr, int heap, int seconds, int lg_sample, const char *path, const char *const *comments,
                 size_t num_comments, hp_prof_saved_cb cb, void *ud, const char **why);

/**
 * Answers r with the saved profiles `files` merged into one (pprof's
 * format), by a `hotplate pprof-merge` child. One merge at a time (409).
 */
void hp_prof_merge(struct st_hp_req_t *r, const char *const *files, size_t num_files, int heap);

/* The profile routes, for the admin route table. */
extern const hp_route_t hp_prof_routes[];
extern const size_t hp_prof_num_routes;

#endif
