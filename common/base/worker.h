/*
 * worker: a background thread that sleeps on a condition until it has work
 * or is asked to stop, the shape of the PostgreSQL HA watcher
 * (runtime/pgha.c) and of the index thread (services/pgindex.c). The owner
 * keeps its own state beside the worker and guards it with the worker's
 * lock; the worker only starts, wakes, sleeps and stops the thread.
 */
#ifndef HP_WORKER_H
#define HP_WORKER_H

#include <pthread.h>

typedef struct st_hp_worker_t {
    pthread_mutex_t lock; /* guards stop, started and the owner's state */
    pthread_cond_t wake;  /* signalled on stop, and by the owner when there is work */
    pthread_t tid;
    int started, stop;
} hp_worker_t;

/* A static worker's initializer. */
#define HP_WORKER_INIT                                                                                                             \
    {                                                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER                                                        \
    }

/**
 * Starts main(arg) on a thread of its own. Call it with w->lock held, so that
 * the owner's state set under the same lock is what the thread sees first.
 * @return 0, or -1 when the thread could not be created
 */
int hp_worker_start(hp_worker_t *w, void *(*main)(void *), void *arg);

/**
 * Asks the thread to stop, wakes it, and joins it once its main returned
 * (it finishes the work it is doing first). Call it without w->lock; a worker
 * that was not started is left alone.
 */
void hp_worker_stop(hp_worker_t *w);

/** With w->lock held, sleeps for up to ms milliseconds, and less when stop is asked. */
void hp_worker_sleep(hp_worker_t *w, int ms);

#endif
