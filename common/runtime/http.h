/*
 * http: the request context and the one place every response goes through.
 *
 * hp_req_t is allocated from the h2o request's pool, so it lives exactly as long
 * as the request. Asynchronous work that may outlive the request (a statement in
 * flight, a Redis command, a payment authorization) is an hp_op_t attached to
 * the request: when h2o disposes the request (the client went away), every
 * attached op is detached, and its completion then cleans up without touching
 * the request. Callbacks registered through hp_op_t are therefore only ever
 * called while the request is alive.
 *
 * Every response is sent with hp_respond_*(), which sets the common headers,
 * records the end-to-end time and writes the request's log line: the seam the
 * probes and logs hang off.
 */
#ifndef HP_HTTP_H
#define HP_HTTP_H

#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "base/errors.h"
#include "runtime/thread.h"
#include "runtime/probes.h"

#define HP_MAX_BODY (64 * 1024)
#define HP_REQUEST_ID_MAX 64

struct st_hp_route_t;
struct st_hp_pgconn_t;

typedef enum { HP_ROLE_NONE = 0, HP_ROLE_CUSTOMER, HP_ROLE_OWNER } hp_role_t;

/* Who made the request, after authentication. */
typedef struct st_hp_principal_t {
    hp_role_t role;
    int64_t user_id;
    int64_t restaurant_id; /* owners: their restaurant; 0 otherwise */
    double lat, lon;       /* the user's home location */
} hp_principal_t;

typedef struct st_hp_req_t {
    h2o_req_t *h2o;
    hp_thread_t *thr;
    const struct st_hp_route_t *route;
    int64_t path_ids[2]; /* numeric path parameters, in order */
    uint64_t start_ns;
    uint64_t db_ns;              /* wall time with at least one statement outstanding, in nanoseconds */
    uint64_t db_since;           /* when the current outstanding stretch began */
    uint32_t db_pending;         /* statements outstanding */
    const char *cache;           /* cache outcome for the log line */
    const char *error_reason;    /* why a 5xx or timeout happened, for the log line */
    h2o_linklist_t ops;          /* attached hp_op_t */
    struct st_hp_pgconn_t *held; /* the transaction connection held, if any (runtime/db.c sets and clears it) */
    hp_principal_t principal;
    hp_req_probe_t probe; /* stage times and statements, for the probes */
    int responded;
    char request_id[HP_REQUEST_ID_MAX + 1];
} hp_req_t;

/* An asynchronous operation whose completion must not outlive its request. */
typedef struct st_hp_op_t {
    hp_req_t *req; /* NULL once detached */
    h2o_linklist_t link;
    /*
     * Optional: called when the request goes away with the op still attached,
     * to undo what only the request could have finished (void a payment
     * authorization, say). It runs during the pool's disposal, so it may read
     * pool memory but must not respond or start new work on the request.
     */
    void (*on_abandon)(struct st_hp_op_t *op);
} hp_op_t;

/** Attaches op to r; op->req becomes r. */
void hp_op_attach(hp_req_t *r, hp_op_t *op);
/** Detaches op (idempotent); op->req becomes NULL. */
void hp_op_detach(hp_op_t *op);

/**
 * Creates the request context for an h2o request, in its pool.
 * @return the context (never NULL; pool allocation aborts on OOM)
 */
hp_req_t *hp_req_create(hp_thread_t *thr, h2o_req_t *req);

/** Sends body (which must live in the request pool or be static); as JSON unless a content-type header was added. */
void hp_respond_raw(hp_req_t *r, int status, h2o_iovec_t body);
/** Renders doc into the request pool, sends it and releases doc (takes the reference). */
void hp_respond_json(hp_req_t *r, int status, json_t *doc);
/**
 * Sends {"error":{"code":..,"message":..}} with the code's status (base/errors.h).
 * @param message what went wrong, or NULL for the code's own message
 */
void hp_respond_error(hp_req_t *r, hp_error_t code, const char *message);
/**
 * The same for a failure a callback reported as an error string (an
 * hp_err_<code>); anything that is no code of the list answers db_unavailable.
 */
void hp_respond_failure(hp_req_t *r, const char *err);

/** Adds a response header; name and value must be static or in the pool. */
void hp_add_header(hp_req_t *r, const char *name, const char *value);

/** @return the value of a request header (case-insensitive), or a NULL-base iovec */
h2o_iovec_t hp_req_header(hp_req_t *r, const char *name);

/** Formats into the request pool. */
char *hp_pool_printf(hp_req_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
