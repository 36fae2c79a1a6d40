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

#include "common/config.h"
#include "common/router.h"
#include "common/thread.h"

/**
 * Runs the server until SIGINT or SIGTERM: cfg->threads API worker threads
 * plus one admin thread on the admin listener.
 * @param routes the API's route table (static storage)
 * @param admin_routes the admin listener's route table (static storage)
 * @return 0 on a clean shutdown, -1 when startup failed (already printed)
 */
int hp_server_run(const hp_config_t *cfg, const hp_route_t *routes, size_t num_routes, const hp_route_t *admin_routes,
                  size_t num_admin_routes);

/** @return the worker threads (not the admin thread) and their number; valid while the server runs */
hp_thread_t *hp_server_workers(size_t *num);

/**
 * Readiness of the whole process, for /readyz: every thread (workers and the
 * admin thread) has its PostgreSQL read connection, at least one transaction
 * connection, and its Redis connection up.
 */
void hp_server_readiness(int *pg, int *redis);

#endif
