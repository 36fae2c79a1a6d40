/*
 * worker: a background thread with a lock, a wake condition and a stop flag
 * (see worker.h).
 */
#include "base/worker.h"

#include <time.h>

int hp_worker_start(hp_worker_t *w, void *(*main)(void *), void *arg)
{
    w->stop = 0;
    w->started = pthread_create(&w->tid, NULL, main, arg) == 0;
    return w->started ? 0 : -1;
}

void hp_worker_stop(hp_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    int started = w->started;
    w->stop = 1;
    w->started = 0;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (started)
        pthread_join(w->tid, NULL);
}

void hp_worker_sleep(hp_worker_t *w, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        ++until.tv_sec;
        until.tv_nsec -= 1000000000;
    }
    /* A wake-up that is not a stop (the owner signalling other work) goes back to sleep until the deadline. */
    while (!w->stop && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
        ;
}
