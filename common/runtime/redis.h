/*
 * redis: this thread's asynchronous Redis connection (hiredis 0.14 async API)
 * driven by the worker's h2o evloop.
 *
 * libh2o 2.2.5 ships no hiredis adapter, so this file is one: hiredis's
 * addRead/delRead/addWrite/delWrite/cleanup hooks map onto an h2o socket that
 * wraps a dup of hiredis's descriptor. Every command has a client-side deadline
 * (hp_err_cache_timeout); when Redis is down commands fail at once with
 * hp_err_redis_unavailable and the connection is retried every second. Callers
 * treat the cache as optional: a failure is counted and the caller goes to
 * PostgreSQL.
 */
#ifndef HP_REDIS_H
#define HP_REDIS_H

#include <hiredis/hiredis.h>

#include "runtime/http.h"
#include "runtime/thread.h"

/**
 * Called with a command's reply. The reply belongs to hiredis and is freed
 * when the callback returns: copy what you keep into the request pool.
 * @param reply NULL when err is set
 * @param err NULL, hp_err_cache_timeout, hp_err_redis_unavailable or hp_err_redis_error (reply is an error reply)
 */
typedef void (*hp_redis_cb)(hp_req_t *r, void *ud, redisReply *reply, const char *err);

/** Creates this thread's Redis client and starts connecting. @return 0 or -1 (bad URL) */
int hp_redis_thread_init(hp_thread_t *thr);
/** Disconnects. */
void hp_redis_thread_dispose(hp_thread_t *thr);
/**
 * Writes the commands the iteration's requests sent: the thread's loop calls
 * this once per iteration (runtime/server.c).
 */
void hp_redis_flush(hp_thread_t *thr);

/** @return 1 when connected */
int hp_redis_ready(hp_thread_t *thr);

/** Sends one command; the arguments are copied before this returns. */
void hp_redis_command(hp_req_t *r, hp_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen);

/**
 * Parses redis://host[:port][/] or unix:///path (sentinel:// is hp_redis_parse_sentinel_url's).
 * @return 0, or -1 when malformed
 */
int hp_redis_parse_url(const char *url, char *host, size_t hostlen, int *port, char *path, size_t pathlen);

/* How many Sentinels a sentinel:// URL may list. */
#define HP_REDIS_MAX_SENTINELS 4

/**
 * Parses sentinel://host:port[,host:port...]/name: the Sentinels to ask, in
 * order, and the name of the primary they watch.
 * @param hosts max entries of 64 bytes; ports max entries; num set to how many were found
 * @return 0, or -1 when malformed (no port, more than max, no name)
 */
int hp_redis_parse_sentinel_url(const char *url, char hosts[][64], int *ports, int max, int *num, char *name, size_t namelen);

/**
 * Parses the payload of Sentinel's +switch-master message, "<name> <old-ip>
 * <old-port> <new-ip> <new-port>", for the primary called name.
 * @param msg len bytes, not necessarily terminated
 * @return 0 with the new primary in host (terminated) and *port, or -1 when malformed, too long for hostlen, or about another
 * primary
 */
int hp_redis_parse_switch_master(const char *msg, size_t len, const char *name, char *host, size_t hostlen, int *port);

#endif
