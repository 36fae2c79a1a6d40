/*
 * recent: the per-thread recently-viewed list behind GET /trending, and the
 * leak=on bottleneck (see recent.c).
 */
#ifndef HP_RECENT_H
#define HP_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/http.h"

/* Entries a thread's list keeps when leak=off: the trending window's sample. */
#define HP_RECENT_CAP 1024

typedef struct st_hp_recent_top_t {
    int64_t restaurant_id;
    uint64_t views;
} hp_recent_top_t;

/** Records a menu view by r's client on r's thread. */
void hp_recent_record(hp_req_t *r, int64_t restaurant_id);

/**
 * Fills top with up to max restaurants most viewed on the calling thread
 * within the last window_ms, most viewed first.
 * @return how many were filled
 */
size_t hp_recent_top(uint64_t window_ms, hp_recent_top_t *top, size_t max);

/** Frees the thread's list; a thread hook (main.c), called once when the worker thread ends. */
void hp_recent_thread_dispose(hp_thread_t *thr);

void hp_handle_trending(hp_req_t *r);

#endif
