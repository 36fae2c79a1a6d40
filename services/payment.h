/*
 * payment: the in-process payment gateway simulator.
 *
 * Authorizations complete after a simulated network latency (the
 * payment_latency_ms flag, with a right-skewed jitter) and are declined at the
 * payment_failure_pct rate. Waiting is an event-loop timer, never a sleep, so a
 * slow gateway costs requests time, not the thread. The caller's deadline is
 * the payment_timeout_ms setting: past it the caller gets hp_err_payment_timeout
 * and the simulator voids the authorization when it eventually completes, as a
 * real integration must (an authorization nobody will capture is released).
 */
#ifndef HP_PAYMENT_H
#define HP_PAYMENT_H

#include <stdint.h>

#include "common/http.h"
#include "common/thread.h"

#define HP_PAYMENT_AUTH_ID_MAX 48

/*
 * Per-thread counters of the simulator: written by their worker thread only
 * (relaxed single-writer stores), read by the admin thread for /debug/perf.
 * An authorization is counted once when the gateway answers (authorized or
 * declined); timed_out counts callers that stopped waiting first, and voided
 * every authorization released because no order owns it.
 */
typedef struct st_hp_payment_stats_t {
    _Atomic uint64_t authorized, declined, timed_out, voided;
} hp_payment_stats_t;

/**
 * Called with the outcome of an authorization.
 * @param auth_id the authorization id (valid during the call) when err is NULL
 * @param err NULL, hp_err_payment_declined or hp_err_payment_timeout
 */
typedef void (*hp_payment_cb)(hp_req_t *r, void *ud, const char *auth_id, const char *err);

int hp_payment_thread_init(hp_thread_t *thr);
void hp_payment_thread_dispose(hp_thread_t *thr);

/** Asks the gateway to authorize amount_cents. */
void hp_payment_authorize(hp_req_t *r, int64_t amount_cents, hp_payment_cb cb, void *ud);

/** Voids an authorization that will not be captured (the order was not written). */
void hp_payment_void(hp_thread_t *thr, const char *auth_id);

/** @return thr's counters (NULL before its payment state exists); safe to read from another thread */
const hp_payment_stats_t *hp_payment_stats(hp_thread_t *thr);

#endif
