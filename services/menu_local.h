/*
 * menu_local: each worker thread's own copies of hot menus, in front of the
 * Redis menu cache (the flag menu_cache=local, the default; services/menus.c
 * has the cache's protocol).
 *
 * Why. A cached menu read used to cost a Redis round trip: a write and a read
 * system call, an epoll wake-up, and a reply to parse, which the CPU profile
 * of the cached menu put above the handler itself. A copy on the thread
 * answers with no system call but the response's write.
 *
 * Staying correct. A copy is valid only while three things hold:
 * - its restaurant's generation has not moved. The process keeps one atomic
 *   counter per bucket of restaurant ids; an owner's PATCH, on any thread,
 *   raises its bucket's counter once the database has committed and Redis has
 *   dropped the old entry, and before it answers. A copy records the counter
 *   as it was read before its lookup began, so a lookup that raced a PATCH
 *   stores a copy that is already invalid. So, within one process, a read that
 *   follows a successful PATCH never sees the old menu, on any thread, at the
 *   cost of one atomic load and no round trip;
 * - it is younger than HP_MENU_LOCAL_MAX_AGE_MS. Other replicas' PATCHes, and
 *   anything that edits Redis or the database behind the server's back, reach
 *   this process through Redis only, so a copy here may lag them by at most
 *   that long: the stated staleness across replicas;
 * - it came from a Redis that answered: a copy is stored from a Redis hit, or
 *   from a load after Redis answered the lookup with a miss, never when the
 *   lookup failed, so a Redis outage turns copies off within
 *   HP_MENU_LOCAL_MAX_AGE_MS.
 *
 * Ownership: the slots are the thread's own. A slot's document is an h2o
 * reference-counted chunk: the slot holds one reference, and each response
 * that serves it links another into its request's pool, so the body goes out
 * with no copy and stays valid until its request is freed, even when the slot
 * moves on to a newer document meanwhile. A put allocates a new chunk and
 * drops the slot's reference to the old one; hp_menu_local_thread_dispose
 * drops the rest. The counts are plain integers because only the thread's own
 * loop touches them. Only the generation counters are shared between threads,
 * and they are only ever raised. The table is
 * direct-mapped by restaurant id, so memory is bounded by
 * HP_MENU_LOCAL_SLOTS x HP_MENU_LOCAL_MAX_DOC per thread, plus the replaced
 * documents that responses in flight still hold; a larger menu is not copied
 * and is served from Redis as before.
 */
#ifndef HP_MENU_LOCAL_H
#define HP_MENU_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "runtime/thread.h"

#define HP_MENU_LOCAL_SLOTS 256
#define HP_MENU_LOCAL_MAX_DOC (64 * 1024)
#define HP_MENU_LOCAL_MAX_AGE_MS 1000
#define HP_MENU_LOCAL_GENERATIONS 4096

/** @return restaurant id's generation now, to be read before a lookup whose result may be stored */
uint64_t hp_menu_local_generation(int64_t id);

/**
 * Finds this thread's copy of restaurant id's menu, if it is still valid at
 * now_ns (a monotonic time), and links it into pool, which keeps it alive
 * until the pool is cleared.
 * @return 1 and the document in *doc, or 0
 */
int hp_menu_local_get(int64_t id, uint64_t now_ns, h2o_mem_pool_t *pool, h2o_iovec_t *doc);

/**
 * Stores a copy of restaurant id's menu, read when its generation was gen
 * (hp_menu_local_generation), at now_ns.
 * @return 1 when it was stored (a hp_menu_local_get at now_ns then returns it), 0 when it was too large or already stale
 */
int hp_menu_local_put(int64_t id, uint64_t gen, uint64_t now_ns, const char *doc, size_t len);

/** Invalidates every thread's copy of restaurant id's menu (a PATCH, before it answers). */
void hp_menu_local_invalidate(int64_t id);

/** Frees this thread's copies (a thread hook's dispose). */
void hp_menu_local_thread_dispose(hp_thread_t *thr);

#endif
