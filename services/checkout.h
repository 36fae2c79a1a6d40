/*
 * checkout: POST /orders, the pieces its two transaction shapes share
 * (checkout.c holds the default short transaction, checkout_long.c the
 * checkout_txn=long lab variant). Internal to the two files.
 */
#ifndef HP_CHECKOUT_H
#define HP_CHECKOUT_H

#include <libpq-fe.h>

#include "runtime/db.h"
#include "runtime/http.h"
#include "services/cart.h"
#include "services/payment.h"

typedef struct st_hp_checkout_t {
    hp_cart_priced_t *p;
    const char *key;
    char auth_id[HP_PAYMENT_AUTH_ID_MAX];
    int authorized; /* we hold an authorization that no committed order owns yet */
    hp_op_t guard;  /* attached while authorized: voids the authorization if the client leaves */
    hp_thread_t *guard_thr;
    int64_t order_id;
    uint64_t created_us; /* the placed order's created_at (the default path's order_place returns it) */
    int num_stock;       /* distinct stock-tracked items in the cart */
    const char *stock_ids, *stock_qty;
    const char *begin_err;
    int long_txn; /* checkout_txn=long, read once when the request starts */
    /* The default path's order_place (checkout.c): its outcome, read when the batch's COMMIT answers. */
    struct st_hp_checkout_orphan_t *orphan; /* its outcome's note for a request that went away; freed by whichever runs */
    const char *place_err;
    int out_of_stock;    /* place_err is HP409 */
    int duplicate;       /* the key already had its order */
    int place_timed_out; /* the client deadline answered order_place: its real outcome goes to the orphan callback */
    /* replica_reads: commit_lsn follows the COMMIT in its batch, and the checkout goes on once it answered. */
    int await_lsn;
    int committed; /* the COMMIT succeeded: the commit_lsn answer carries the checkout on */
} hp_checkout_t;

/** Gives the connection back (rolling back when asked), voids an authorization no order owns, and answers err when set. */
void hp_checkout_fail(hp_req_t *r, hp_checkout_t *co, int rollback, const char *err);

/** Keeps the authorization, with the guard that voids it if the client leaves before the commit. */
void hp_checkout_hold_auth(hp_req_t *r, hp_checkout_t *co, const char *auth_id);

/** Fills the 17 parameters of order_insert from the priced cart. */
void hp_checkout_insert_values(hp_req_t *r, hp_checkout_t *co, const char **v);

/** The BEGIN's callback when another statement queued behind it reports its failure. */
void hp_checkout_on_begin(hp_req_t *r, void *ud, PGresult *res, const char *err);

/** checkout_txn=long's order insert callback (its stock is already taken): COMMIT follows, or a replay of a concurrent winner's
 * order. */
void hp_checkout_on_insert(hp_req_t *r, void *ud, PGresult *res, const char *err);

/**
 * Reads the answer of the conditional stock decrement: takes res, and
 * returns 1 when every line had the stock it asked for; otherwise it has
 * rolled back and answered (the error, or 409 out_of_stock), and returns 0.
 */
int hp_checkout_stock_ok(hp_req_t *r, hp_checkout_t *co, PGresult *res, const char *err);

/** checkout_txn=long: the transaction connection is granted (checkout_long.c). */
void hp_checkout_long_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err);

#endif
