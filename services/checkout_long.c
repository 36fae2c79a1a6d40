/*
 * checkout_long: the checkout_txn=long lab variant of POST /orders (see
 * checkout.c's header comment): take a connection, BEGIN, decrement the
 * stock (row locks on the popular items), call the payment gateway with the
 * transaction open, then insert the order and COMMIT. The connection and the
 * row locks are held for the payment's whole latency, which is the mistake
 * docs/labs/05-checkout-txn.md walks through. Kept beside the default path,
 * so that path reads top-down.
 */
#include "services/checkout.h"
#include "services/statements.h"

static void hp__long_on_payment(hp_req_t *r, void *ud, const char *auth_id, const char *err)
{
    hp_checkout_t *co = ud;
    if (err != NULL) {
        hp_checkout_fail(r, co, 1, err);
        return;
    }
    hp_checkout_hold_auth(r, co, auth_id);
    const char **values = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*values) * 17);
    hp_checkout_insert_values(r, co, values);
    co->num_stock = 0; /* the stock is already decremented: the insert goes straight to COMMIT */
    hp_db_conn_query(r, r->held, HP_STMT_order_insert, values, 17, hp_checkout_on_insert, co);
}

static void hp__long_on_stock(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (err == NULL && co->begin_err != NULL)
        err = co->begin_err;
    if (!hp_checkout_stock_ok(r, co, res, err))
        return;
    /* The mistake this flag reproduces: the gateway is called with the row locks and the connection held. */
    hp_payment_authorize(r, co->p->result.total_cents, hp__long_on_payment, co);
}

static void hp__long_on_begin(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (res != NULL)
        PQclear(res);
    if (err != NULL) {
        hp_checkout_fail(r, co, 1, err);
        return;
    }
    hp_payment_authorize(r, co->p->result.total_cents, hp__long_on_payment, co);
}

void hp_checkout_long_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    hp_checkout_t *co = ud;
    if (hp_db_failed(r, NULL, err))
        return;
    /* Nothing to lock: the transaction (and its connection) still spans the payment. */
    if (co->num_stock == 0) {
        hp_db_conn_query(r, conn, HP_STMT_txn_begin, NULL, 0, hp__long_on_begin, co);
        return;
    }
    /* BEGIN and the stock decrement go out together; the decrement's result reports a failed BEGIN. */
    hp_db_conn_query(r, conn, HP_STMT_txn_begin, NULL, 0, hp_checkout_on_begin, co);
    const char *values[] = {co->stock_ids, co->stock_qty};
    hp_db_conn_query(r, conn, HP_STMT_stock_decrement, values, 2, hp__long_on_stock, co);
}
