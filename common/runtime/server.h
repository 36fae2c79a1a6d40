/*
 * server: listeners, worker threads, the request entry point and shutdown.
 *
 * hp_server_run() binds one SO_REUSEPORT listener per worker thread (so the
 * kernel spreads connections across threads with no shared accept lock),
 * starts the threads, each with its own evloop, PostgreSQL connections, Redis
 * connection and payment simulator, and then waits for SIGINT or SIGTERM. On
 * either it stops accepting, lets in-flight requests drain for up to the grace
 * period, closes every connection and returns.
 */
#ifndef HP_SERVER_H
#define HP_SERVER_H

#include <stddef.h>

#include "base/config.h"
#include "base/router.h"
#include "runtime/thread.h"

/* Which threads a hook runs on. */
typedef enum { HP_HOOK_WORKERS = 1, HP_HOOK_ADMIN = 2, HP_HOOK_ALL = 3 } hp_hook_where_t;

/*
 * A subsystem with state on each thread: init runs on the thread once its loop
 * and the runtime's clients exist, dispose when the thread ends (after the
 * database and Redis are closed, in reverse order of the hooks).
 */
typedef struct st_hp_thread_hook_t {
    const char *name;
    hp_hook_where_t where;
    int (*init)(hp_thread_t *thr); /* 0, or -1 to stop the process (logged) */
    void (*dispose)(hp_thread_t *thr);
} hp_thread_hook_t;

/* What main.c hands the server: the route tables and the hooks, all static storage. */
typedef struct st_hp_server_spec_t {
    const hp_route_t *routes; /* the API's */
    size_t num_routes;
    const hp_route_t *admin_routes; /* the admin listener's */
    size_t num_admin_routes;
    const hp_thread_hook_t *hooks;
    size_t num_hooks;
} hp_server_spec_t;

/**
 * Runs the server until SIGINT or SIGTERM: cfg->threads API worker threads
 * plus one admin thread on the admin listener.
 * @return 0 on a clean shutdown, -1 when startup failed (already printed)
 */
int hp_server_run(const hp_config_t *cfg, const hp_server_spec_t *spec);

/** @return the worker threads (not the admin thread) and their number; valid while the server runs */
hp_thread_t *hp_server_workers(size_t *num);

/** @return the admin thread, or NULL when the server does not run */
hp_thread_t *hp_server_admin_thread(void);

/**
 * Readiness of the whole process, for /readyz: every thread (workers and the
 * admin thread) has its PostgreSQL read connection, at least one transaction
 * connection, and its Redis connection up.
 */
void hp_server_readiness(int *pg, int *redis);

#endif
