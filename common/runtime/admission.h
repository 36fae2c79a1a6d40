/*
 * admission: overload control at the door of every API request.
 *
 * Each worker thread admits at most cfg->max_inflight requests at a time (the
 * thread's in-flight count, kept by common/runtime/http.c). A request beyond that is
 * answered at once with 503 {"error":{"code":"overloaded"}} and Retry-After,
 * before it touches PostgreSQL, Redis or the payment gateway. Refusing early
 * keeps the work the server holds bounded, and with it the queueing delay of
 * the requests it did accept and the memory they pin; a client told to retry
 * in a second costs a few microseconds, where one queued behind thousands
 * would wait for seconds and time out anyway.
 *
 * Liveness and readiness (/healthz, /readyz, flagged HP_ROUTE_ALWAYS_ADMIT in
 * the route table) are always admitted: an orchestrator that saw them fail
 * under load would restart a server that is merely busy, turning overload
 * into an outage.
 *
 * The admin listener's mutating routes (HP_ROUTE_ADMIN_TOKEN: flags, profiles,
 * EXPLAIN, statistics resets) are let through only with the admin token when
 * HOTPLATE_ADMIN_TOKEN is set; without one the listener is loopback-only
 * (base/config.c) and they are open.
 *
 * A request is also refused when its head is too large: libh2o 2.2.5 accepts
 * up to H2O_MAX_REQLEN (about 408 KiB) of request line and headers, a
 * compile-time constant, and keeps all of it in the request's memory. No
 * client of this API needs more than a few hundred bytes (a bearer token, an
 * idempotency key, a request id), so HP_MAX_HEAD_BYTES cuts that to 16 KiB
 * with a JSON 431 before any routing or handler work.
 */
#ifndef HP_ADMISSION_H
#define HP_ADMISSION_H

#include "runtime/http.h"
#include "base/router.h"

/** The largest request head accepted: the request target plus every header name and value, in bytes. */
#define HP_MAX_HEAD_BYTES (16 * 1024)

/** The Retry-After value, in seconds, of an overloaded answer. */
#define HP_ADMISSION_RETRY_AFTER_S "1"

/**
 * Decides whether a routed request may run; when it may not, answers it
 * (503 overloaded with Retry-After).
 * @param r the request, already counted in its thread's in-flight gauge
 * @return 1 when the caller should run the handler, 0 when r was answered
 */
int hp_admission_admit(hp_req_t *r);

/**
 * Checks the size of the request head; when it exceeds HP_MAX_HEAD_BYTES,
 * answers 431 headers_too_large.
 * @return 1 when the caller should go on, 0 when r was answered
 */
int hp_admission_head_ok(hp_req_t *r);

/**
 * Checks the admin token of a route that needs it (HP_ROUTE_ADMIN_TOKEN) when
 * one is configured, compared in constant time; answers 401 otherwise.
 * @return 1 when the caller should go on, 0 when r was answered
 */
int hp_admission_token_ok(hp_req_t *r);

#endif
