/*
 * webhook: the embedded alerts' notifications, POSTed as JSON from the admin
 * thread's event loop.
 *
 * Notifications wait in a bounded queue (HP_WEBHOOK_QUEUE bodies; a new one
 * is dropped and counted when it is full) and go out one at a time over a
 * non-blocking connection of the admin loop, so neither a worker nor the
 * admin thread ever waits on the receiver. Each attempt has a deadline; a
 * refused connection, a timeout or a non-2xx answer is retried with
 * exponential backoff (1, 2, 4, 8 s), and the notification is dropped after
 * HP_WEBHOOK_ATTEMPTS attempts.
 *
 * Only plain http:// is supported: the receiver is expected to be a local
 * relay (Alertmanager itself, a chat bridge), and TLS would need a client
 * stack the server does not otherwise carry. The host name is resolved once,
 * at startup, because getaddrinfo() blocks.
 */
#ifndef HP_WEBHOOK_H
#define HP_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#define HP_WEBHOOK_QUEUE 32
#define HP_WEBHOOK_ATTEMPTS 5
#define HP_WEBHOOK_TIMEOUT_MS 3000

typedef struct st_hp_webhook_stats_t {
    int enabled;
    const char *url;
    uint64_t queued, sent, failed_attempts, dropped, queue_cap;
} hp_webhook_stats_t;

/**
 * Parses and resolves http://host[:port][/path]. Call once before threads start.
 * @return 0, or -1 with the reason in err
 */
int hp_webhook_configure(const char *url, char *err, size_t errlen);

/** @return 1 when a webhook is configured */
int hp_webhook_enabled(void);

/** Starts sending on the admin thread's loop. */
void hp_webhook_start(h2o_loop_t *loop);

/** Closes any connection and frees the queue (admin thread, at shutdown). */
void hp_webhook_stop(void);

/** Queues a copy of a JSON body (admin thread). @return 0, or -1 when it was dropped */
int hp_webhook_enqueue(const char *body, size_t len);

/** Copies the counters. */
void hp_webhook_stats(hp_webhook_stats_t *out);

#endif
