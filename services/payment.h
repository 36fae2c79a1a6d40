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
 *
 * Counted in the probes (runtime/stats.h): an authorization once when the
 * gateway answers (pay_authorized or pay_declined), pay_timed_out for callers
 * that stopped waiting first, and pay_voided for every authorization
 * released because no order owns it.
 */
#ifndef HP_PAYMENT_H
#define HP_PAYMENT_H

#include <stdint.h>

#include "runtime/http.h"
#include "runtime/thread.h"

#define HP_PAYMENT_AUTH_ID_MAX 48

/**
 * Called with the outcome of an authorization.
 * @param auth_id the authorization id (valid during the call) when err is NULL
 * @param err NULL, hp_err_payment_declined or hp_err_payment_timeout
 */
typedef void (*hp_payment_cb)(hp_req_t *r, void *ud, const char *auth_id, const char *err);

/*
 * The simulator's state on each worker thread (its timers and random
 * generator), created and freed by these hooks, which main.c registers.
 */
int hp_payment_thread_init(hp_thread_t *thr);
void hp_payment_thread_dispose(hp_thread_t *thr);

/** Asks the gateway to authorize amount_cents. */
void hp_payment_authorize(hp_req_t *r, int64_t amount_cents, hp_payment_cb cb, void *ud);

/** Voids an authorization that will not be captured (the order was not written). */
void hp_payment_void(hp_thread_t *thr, const char *auth_id);

#endif
