/*
 * prof_history: continuous profiling. While the flag profile_every_s is N > 0,
 * the admin thread takes, every N seconds, a CPU profile and a jemalloc heap
 * window of min(N / 2, 10) seconds (prof.c's hp_prof_save, in pprof's format,
 * each with the commit, the flags and its time in its comments) and keeps the
 * last --profile-keep of each kind in a folder of its own, oldest removed
 * first. A slowdown at the dinner peak can then be looked at after the fact:
 *
 *   GET /debug/pprof/history[?kind=cpu|heap]    the profiles kept, newest first
 *   GET /debug/pprof/history?id=ID              one of them (gzipped profile.proto)
 *   GET /debug/pprof/history?merge=cpu|heap&from=T&to=T
 *        every profile of the kind that started in [from, to] (Unix seconds),
 *        merged into one by a `hotplate pprof-merge` child
 *
 * Each profile is ID.pb.gz with a sidecar ID.json (kind, time, seconds,
 * commit, flags), so the folder is read back at start and survives a restart.
 * A profile request or the doctor preempts a saved profile that is sampling;
 * that round then keeps nothing of that kind.
 */
#ifndef HP_PROF_HISTORY_H
#define HP_PROF_HISTORY_H

#include <stddef.h>

#include "base/router.h"

struct st_hp_thread_t;

/* The longest saved profile, in seconds; and the heap window's sampling (one sample per 2^19 = 512 KiB allocated). */
#define HP_PROF_HISTORY_MAX_SECONDS 10
#define HP_PROF_HISTORY_LG_SAMPLE 19

/** Where the profiles go (NULL: $HOTPLATE_HOME/profiles, else $TMPDIR/hotplate-profiles) and how many of each kind stay. */
void hp_prof_history_configure(const char *dir, int keep);

/* The admin thread's hooks: the folder is read back and the 1 s tick started; the tick stopped. */
int hp_prof_history_admin_thread_init(struct st_hp_thread_t *thr);
void hp_prof_history_admin_thread_dispose(struct st_hp_thread_t *thr);

/* The route, for the admin route table. */
extern const hp_route_t hp_prof_history_routes[];
extern const size_t hp_prof_history_num_routes;

#endif
