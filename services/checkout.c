/*
 * checkout: POST /cart/quote and POST /orders.
 *
 * POST /orders, step by step:
 *   1. authenticate; require an Idempotency-Key; validate the body;
 *   2. look the key up: a retry returns the order it already made;
 *   3. price the cart (cart.c), check the restaurant is open and stock suffices;
 *   4. authorize the payment with the gateway simulator;
 *   5. on a transaction connection, in one round trip: BEGIN, order_place (the
 *      order, its items, payment and first event, ON CONFLICT on the key, and
 *      the conditional stock decrement, in one statement that raises HP409
 *      when a stock row is short), and COMMIT. After an error PostgreSQL skips
 *      the rest of the batch, so the COMMIT never commits a failed order;
 *   6. answer 201 with the order as GET /orders/{id} renders it.
 * Any failure after step 4 voids the authorization, and any failure inside the
 * transaction rolls it back, so a rejected checkout leaves the database as it
 * was. The payment call happens before the transaction opens, so no row lock
 * is held while the gateway thinks (the "short" checkout).
 *
 * Who owns the authorization once the batch is sent: the COMMIT is already on
 * its way, so a client that leaves must not void it blindly. order_place's
 * outcome decides instead, delivered even without the request
 * (hp_db_conn_query_orphan): a failed or duplicate order voids it, a placed
 * one leaves it to the order that the queued COMMIT commits.
 *
 * The flag checkout_txn=long restores the classic mistake instead: take a
 * connection, BEGIN, decrement the stock (row locks on the popular items),
 * then call the payment gateway with the transaction open, then insert the
 * order and COMMIT. The connection and the row locks are held for the
 * payment's whole latency, so concurrent checkouts of the same items queue on
 * the locks (and time out after lock_timeout: 504 lock_timeout) and the pool
 * runs dry (503 pool_exhausted). docs/labs/05-checkout-txn.md walks through it.
 *
 * Idempotency under concurrency: twenty simultaneous requests with one key all
 * miss in step 2, but the unique index on (user_id, idempotency_key) lets one
 * insert win; the others' inserts wait for it, then do nothing, and those
 * requests roll back, void their authorizations and replay the winner's order.
 */
#include "runtime/params.h"
#include "base/pgarray.h"
#include "runtime/db.h"
#include "base/flags.h"
#include "base/json.h"
#include "services/auth.h"
#include "services/checkout.h"
#include "services/cart.h"
#include "services/handlers.h"
#include "services/orders.h"
#include "services/payment.h"
#include "services/statements.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- POST /cart/quote ------------------------------------------------------------------------- */

static void hp__quote_priced(hp_req_t *r, void *ud, hp_cart_priced_t *p)
{
    (void)ud;
    hp_respond_json(r, 200, hp_cart_breakdown_json(p));
}

/* Parses the body into a pool-allocated cart. @return NULL after answering 4xx */
static hp_cart_priced_t *hp__parse_cart(hp_req_t *r)
{
    json_t *doc = hp_body_json(r);
    if (doc == NULL)
        return NULL;
    hp_cart_priced_t *p = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*p));
    /* Everything but the cart, which hp_cart_from_json sets (and zeroes the header of) itself: 11 kB zeroed a parse, not 52. */
    _Static_assert(offsetof(hp_cart_priced_t, cart) == 0, "the cart comes first in hp_cart_priced_t");
    memset((char *)p + sizeof(p->cart), 0, sizeof(*p) - sizeof(p->cart));
    hp_json_err_t jerr;
    uint64_t start = hp_probe_clock();
    int ret = hp_cart_from_json(doc, &p->cart, &jerr);
    json_decref(doc);
    hp_probe_stage_add(&r->probe, HP_STAGE_parse, hp_probe_clock() - start);
    if (ret != 0) {
        hp_respond_json_err(r, &jerr);
        return NULL;
    }
    return p;
}

static void hp__quote_authed(hp_req_t *r)
{
    hp_cart_priced_t *p = hp__parse_cart(r);
    if (p != NULL)
        hp_cart_price(r, p, hp__quote_priced, NULL);
}

void hp_handle_quote(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_CUSTOMER, hp__quote_authed);
}

/* ---- POST /orders ----------------------------------------------------------------------------- */

static void hp__checkout_on_abandon(hp_op_t *op)
{
    hp_checkout_t *co = H2O_STRUCT_FROM_MEMBER(hp_checkout_t, guard, op);
    hp_thread_t *thr = co->guard_thr;
    if (co->authorized) {
        hp_payment_void(thr, co->auth_id);
        co->authorized = 0;
    }
}

/* The authorization is ours until COMMIT is sent; after that the order owns it. */
static void hp__checkout_disown(hp_checkout_t *co)
{
    co->authorized = 0;
    hp_op_detach(&co->guard);
}

void hp_checkout_fail(hp_req_t *r, hp_checkout_t *co, int rollback, const char *err)
{
    if (r->held != NULL)
        hp_db_release(r, r->held, rollback);
    if (co->authorized) {
        hp_payment_void(r->thr, co->auth_id);
        hp__checkout_disown(co);
    }
    if (err != NULL)
        hp_respond_failure(r, err);
}

static void hp__checkout_on_order(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err)
{
    int replay = ud != NULL;
    (void)meta;
    if (err != NULL || doc == NULL) {
        json_decref(doc);
        hp_respond_failure(r, err != NULL ? err : hp_err_db_error);
        return;
    }
    if (replay)
        hp_add_header(r, "idempotent-replayed", "true");
    hp_respond_json(r, 201, doc);
}

/*
 * commit_lsn answered (replica_reads=on). When the COMMIT before it
 * succeeded, the customer's reads stay on the primary until the standby has
 * replayed this position (runtime/replica.h), and the response's cookie
 * carries it to whichever replica serves their next read; without a position (the
 * statement failed after a successful COMMIT) they stay there for a second,
 * far above the replay lag of a synchronous standby. Then the checkout goes
 * on as it would have after the COMMIT. After a failed COMMIT the checkout was
 * already answered, and this does nothing.
 */
typedef struct st_hp__lsn_wait_t {
    hp_checkout_t *co;
    void (*then)(hp_req_t *r, hp_checkout_t *co);
} hp__lsn_wait_t;

static void hp__checkout_on_lsn(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp__lsn_wait_t *w = ud;
    hp_checkout_t *co = w->co;
    if (co->committed)
        hp_db_note_commit(r, r->principal.user_id, err == NULL ? res : NULL);
    if (res != NULL)
        PQclear(res);
    if (!co->committed)
        return;
    w->then(r, co);
}

/*
 * With replica_reads=on, queues commit_lsn behind the COMMIT just queued on
 * conn, in the same batch (no round trip of its own), and marks the checkout
 * as waiting for it: then() carries the checkout on from its answer.
 */
static void hp__checkout_queue_lsn(hp_req_t *r, hp_checkout_t *co, hp_pgconn_t *conn, void (*then)(hp_req_t *r, hp_checkout_t *co))
{
    if (hp_flag_get(HP_FLAG_replica_reads) != HP_replica_reads_on)
        return;
    hp__lsn_wait_t *w = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*w));
    w->co = co;
    w->then = then;
    co->await_lsn = 1;
    hp_db_conn_query(r, conn, HP_STMT_commit_lsn, NULL, 0, hp__checkout_on_lsn, w);
}

static void hp__checkout_after_commit(hp_req_t *r, hp_checkout_t *co)
{
    hp_db_release(r, r->held, 0);
    hp_order_fetch(r, co->order_id, hp__checkout_on_order, NULL);
}

static void hp__checkout_on_commit(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (res != NULL)
        PQclear(res);
    if (err != NULL) {
        /* The commit failed, so no order owns the authorization: release it. */
        hp_payment_void(r->thr, co->auth_id);
        hp_checkout_fail(r, co, 1, err);
        return;
    }
    co->committed = 1;
    if (!co->await_lsn)
        hp__checkout_after_commit(r, co);
}

static void hp__checkout_commit(hp_req_t *r, hp_checkout_t *co)
{
    /*
     * From here the order may exist whatever happens to this request, so a
     * client that leaves now must not void the authorization the order holds.
     */
    hp__checkout_disown(co);
    hp_db_conn_query(r, r->held, HP_STMT_txn_commit, NULL, 0, hp__checkout_on_commit, co);
    hp__checkout_queue_lsn(r, co, r->held, hp__checkout_after_commit);
}

/*
 * Reads the answer of the conditional stock decrement, which both checkout
 * paths send: it takes res, and returns 1 when every line had the stock it
 * asked for. Otherwise it has rolled back and answered (the error, or 409
 * out_of_stock), and returns 0.
 */
int hp_checkout_stock_ok(hp_req_t *r, hp_checkout_t *co, PGresult *res, const char *err)
{
    if (err != NULL) {
        if (res != NULL)
            PQclear(res);
        hp_checkout_fail(r, co, 1, err);
        return 0;
    }
    int updated = PQntuples(res);
    PQclear(res);
    if (updated != co->num_stock) {
        hp_checkout_fail(r, co, 1, NULL);
        hp_respond_error(r, HP_E_out_of_stock, "an item does not have enough stock left");
        return 0;
    }
    return 1;
}

static void hp__checkout_on_replay_lsn(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    hp_db_note_commit(r, r->principal.user_id, err == NULL ? res : NULL);
    if (res != NULL)
        PQclear(res);
}

/*
 * Answers a retry with the order its key already placed. With
 * replica_reads=on the retrying client may never have received the first
 * answer's cookie, so this one carries a position too: the primary's WAL
 * position now, queued ahead of the order's read, which is past the order's
 * commit because that commit is visible (it is what found the key).
 */
static void hp__checkout_replay_order(hp_req_t *r, int64_t id)
{
    if (hp_flag_get(HP_FLAG_replica_reads) == HP_replica_reads_on)
        hp_db_query(r, HP_STMT_commit_lsn, NULL, 0, hp__checkout_on_replay_lsn, NULL);
    hp_order_fetch(r, id, hp__checkout_on_order, (void *)1);
}

static void hp__checkout_replay(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (err != NULL || PQntuples(res) == 0) {
        if (res != NULL)
            PQclear(res);
        hp_respond_failure(r, err != NULL ? err : hp_err_db_error);
        return;
    }
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    hp__checkout_replay_order(r, id);
}

static void hp__lookup_key(hp_req_t *r, hp_checkout_t *co, hp_db_cb cb)
{
    const char *values[] = {hp_pool_printf(r, "%lld", (long long)r->principal.user_id), co->key};
    hp_db_query(r, HP_STMT_order_by_idempotency_key, values, 2, cb, co);
}

void hp_checkout_on_begin(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    (void)r;
    if (res != NULL)
        PQclear(res);
    co->begin_err = err; /* the insert queued behind it reports the failure */
}

void hp_checkout_on_insert(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (err == NULL && co->begin_err != NULL)
        err = co->begin_err;
    if (err != NULL) {
        if (res != NULL)
            PQclear(res);
        hp_checkout_fail(r, co, 1, err);
        return;
    }
    if (PQntuples(res) == 0) {
        /* A concurrent request with the same key won: undo ours and answer with its order. */
        PQclear(res);
        hp_checkout_fail(r, co, 1, NULL);
        hp__lookup_key(r, co, hp__checkout_replay);
        return;
    }
    co->order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    hp__checkout_commit(r, co);
}

/* Builds the per-line arrays of the insert: item ids, quantities, unit prices, modifier lists, line totals. */
void hp_checkout_insert_values(hp_req_t *r, hp_checkout_t *co, const char **v)
{
    const hp_cart_priced_t *p = co->p;
    const hp_total_result_t *t = &p->result;
    size_t n = p->cart.num_lines;
    enum { ITEMS, QTY, UNIT, MODS, TOTAL, NUM_ARRAYS };
    hp_pgarray_t a[NUM_ARRAYS];
    /* Each element of the modifier lists' text[] is itself a bigint[] literal, quoted: two bytes more per line. */
    size_t mods_cap = n * (HP_PGARRAY_INT_BYTES(HP_TOTAL_MAX_MODIFIERS_PER_LINE) + 3) + 3;
    for (int k = 0; k != NUM_ARRAYS; ++k) {
        size_t cap = k == MODS ? mods_cap : HP_PGARRAY_INT_BYTES(n);
        hp_pgarray_begin(&a[k], h2o_mem_alloc_pool(&r->h2o->pool, cap), cap);
    }
    for (size_t i = 0; i != n; ++i) {
        const hp_total_line_t *l = &p->cart.lines[i];
        hp_pgarray_int(&a[ITEMS], l->item_id);
        hp_pgarray_int(&a[QTY], l->quantity);
        hp_pgarray_int(&a[UNIT], t->lines[i].unit_price_cents);
        hp_pgarray_int(&a[TOTAL], t->lines[i].line_total_cents);
        char one[HP_PGARRAY_INT_BYTES(HP_TOTAL_MAX_MODIFIERS_PER_LINE) + 2];
        hp_pgarray_t m;
        hp_pgarray_begin(&m, one + 1, sizeof(one) - 2);
        for (size_t k = 0; k != l->num_modifier_ids; ++k)
            hp_pgarray_int(&m, l->modifier_ids[k]);
        hp_pgarray_end(&m);
        one[0] = '"', one[1 + m.len] = '"';
        hp_pgarray_raw(&a[MODS], one, m.len + 2);
    }
    const char *items = hp_pgarray_end(&a[ITEMS]), *qty = hp_pgarray_end(&a[QTY]), *unit = hp_pgarray_end(&a[UNIT]),
               *mods = hp_pgarray_end(&a[MODS]), *total = hp_pgarray_end(&a[TOTAL]);
    v[0] = hp_pool_printf(r, "%lld", (long long)r->principal.user_id);
    v[1] = hp_pool_printf(r, "%lld", (long long)p->cart.restaurant_id);
    v[2] = hp_pool_printf(r, "%lld", (long long)t->subtotal_cents);
    v[3] = hp_pool_printf(r, "%lld", (long long)t->discount_cents);
    v[4] = hp_pool_printf(r, "%lld", (long long)t->tax_cents);
    v[5] = hp_pool_printf(r, "%lld", (long long)t->delivery_fee_cents);
    v[6] = hp_pool_printf(r, "%lld", (long long)t->service_fee_cents);
    v[7] = hp_pool_printf(r, "%lld", (long long)t->small_order_fee_cents);
    v[8] = hp_pool_printf(r, "%lld", (long long)t->tip_cents);
    v[9] = hp_pool_printf(r, "%lld", (long long)t->total_cents);
    v[10] = co->key;
    v[11] = items, v[12] = qty, v[13] = unit, v[14] = mods, v[15] = total;
    v[16] = co->auth_id;
}

/*
 * What order_place's outcome does to the authorization when its request went
 * away: a failed or duplicate order owns nothing, so the authorization is
 * voided; a placed order owns it once the COMMIT queued behind it commits.
 */
typedef struct st_hp_checkout_orphan_t {
    char auth_id[HP_PAYMENT_AUTH_ID_MAX];
} hp_checkout_orphan_t;

static void hp__checkout_place_orphan(hp_thread_t *thr, void *ud, const PGresult *res, const char *err)
{
    hp_checkout_orphan_t *o = ud;
    if (err != NULL || PQntuples(res) == 0)
        hp_payment_void(thr, o->auth_id);
    free(o);
}

static void hp__checkout_on_place(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    (void)r; /* the batch's COMMIT answers next, and acts */
    struct st_hp_checkout_orphan_t *o_keep = co->orphan;
    co->orphan = NULL;
    if (err == hp_err_db_timeout && res == NULL) {
        /*
         * The client deadline: the statement (and the COMMIT behind it) may
         * still complete, so its real outcome, when it comes, goes to the
         * orphan callback, which voids the authorization only if no order
         * was placed. PostgreSQL's own statement_timeout is kept under this
         * deadline (runtime/db.c), so this is a server that stopped
         * answering, and a retry with the same key finds out which it was.
         */
        (void)o_keep; /* now the orphan callback's to free */
        co->place_err = err;
        co->place_timed_out = 1;
        return;
    }
    free(o_keep);
    if (err == NULL && co->begin_err != NULL)
        err = co->begin_err;
    if (err != NULL) {
        co->place_err = err;
        co->out_of_stock = strcmp(hp_db_sqlstate(res), HP_SQLSTATE_OUT_OF_STOCK) == 0;
    } else if (PQntuples(res) == 0) {
        co->duplicate = 1;
    } else {
        co->order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        co->created_us = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    if (res != NULL)
        PQclear(res);
}

/*
 * The 201 of an order this checkout placed, built from what it wrote: the
 * totals, lines, prices and modifiers are the parameters order_place
 * inserted, the payment is the authorization it recorded, and the id and
 * created_at are order_place's own answer. The item and restaurant names
 * are the ones the pricing read; order_place stores each item's name from
 * the same menu_items row inside the transaction, and no route renames an
 * item or a restaurant, so the two are the same. hp_order_json gives the
 * answer the layout of an order read back: it is GET /orders/{id}'s document,
 * without the two reads after the COMMIT that used to fetch it
 * (docs/BENCHMARKS.md, "The 201 from what the checkout wrote").
 */
static json_t *hp__checkout_order_json(hp_req_t *r, const hp_checkout_t *co)
{
    const hp_cart_priced_t *p = co->p;
    const hp_total_result_t *t = &p->result;
    hp_order_fields_t f = {.id = co->order_id,
                           .user_id = r->principal.user_id,
                           .restaurant_id = p->cart.restaurant_id,
                           .status = "placed",
                           .subtotal_cents = t->subtotal_cents,
                           .discount_cents = t->discount_cents,
                           .tax_cents = t->tax_cents,
                           .delivery_fee_cents = t->delivery_fee_cents,
                           .service_fee_cents = t->service_fee_cents,
                           .small_order_fee_cents = t->small_order_fee_cents,
                           .tip_cents = t->tip_cents,
                           .total_cents = t->total_cents,
                           .created_us = co->created_us};
    json_t *doc = hp_order_json(&f);
    json_object_set_new(doc, "restaurant_name", json_string(p->restaurant_name));
    json_object_set_new(doc, "items", hp_cart_lines_json(p));
    json_object_set_new(doc, "payment", hp_order_payment_json(co->auth_id, t->total_cents, "authorized"));
    return doc;
}

static void hp__checkout_after_placed(hp_req_t *r, hp_checkout_t *co);

/* The batch's last answer (before commit_lsn's, with replica_reads=on): the outcome of the whole checkout transaction. */
static void hp__checkout_on_placed(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (res != NULL)
        PQclear(res);
    if (co->place_timed_out) {
        /* The orphan callback decides the authorization (see hp__checkout_on_place). */
        hp_checkout_fail(r, co, 1, NULL);
        hp_respond_failure(r, co->place_err);
        return;
    }
    if (co->place_err != NULL || err != NULL) {
        /* Nothing committed (a failed statement aborts the batch, COMMIT included): no order owns the authorization. */
        hp_payment_void(r->thr, co->auth_id);
        hp_checkout_fail(r, co, 1, NULL);
        if (co->out_of_stock)
            hp_respond_error(r, HP_E_out_of_stock, "an item does not have enough stock left");
        else
            hp_respond_failure(r, co->place_err != NULL ? co->place_err : err);
        return;
    }
    co->committed = 1;
    if (!co->await_lsn)
        hp__checkout_after_placed(r, co);
}

/* The batch committed (and, with replica_reads=on, its position is noted): the order, or the winner's on a duplicate key. */
static void hp__checkout_after_placed(hp_req_t *r, hp_checkout_t *co)
{
    hp_db_release(r, r->held, 0);
    if (co->duplicate) {
        /* A concurrent request with the same key won; this one's empty transaction committed nothing. */
        hp_payment_void(r->thr, co->auth_id);
        hp__lookup_key(r, co, hp__checkout_replay);
        return;
    }
    hp_respond_json(r, 201, hp__checkout_order_json(r, co));
}

static void hp__checkout_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    hp_checkout_t *co = ud;
    if (err != NULL) {
        hp_checkout_fail(r, co, 0, err);
        return;
    }
    const char **values = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*values) * 19);
    hp_checkout_insert_values(r, co, values);
    values[17] = co->stock_ids, values[18] = co->stock_qty;
    hp_checkout_orphan_t *o = malloc(sizeof(*o));
    if (o == NULL)
        abort();
    memcpy(o->auth_id, co->auth_id, sizeof(o->auth_id));
    co->orphan = o;
    /* From here order_place's outcome owns the authorization (see the header comment). */
    hp__checkout_disown(co);
    hp_db_conn_query(r, conn, HP_STMT_txn_begin, NULL, 0, hp_checkout_on_begin, co);
    hp_db_conn_query_orphan(r, conn, HP_STMT_order_place, values, 19, hp__checkout_on_place, co, hp__checkout_place_orphan, o);
    hp_db_conn_query(r, conn, HP_STMT_txn_commit, NULL, 0, hp__checkout_on_placed, co);
    hp__checkout_queue_lsn(r, co, conn, hp__checkout_after_placed);
}

/*
 * The payment is authorized: remember the authorization and attach the guard
 * that voids it if the client goes away before the order is committed.
 */
void hp_checkout_hold_auth(hp_req_t *r, hp_checkout_t *co, const char *auth_id)
{
    snprintf(co->auth_id, sizeof(co->auth_id), "%s", auth_id);
    co->authorized = 1;
    co->guard_thr = r->thr;
    co->guard.on_abandon = hp__checkout_on_abandon;
    hp_op_attach(r, &co->guard);
}

static void hp__checkout_on_payment(hp_req_t *r, void *ud, const char *auth_id, const char *err)
{
    hp_checkout_t *co = ud;
    if (err != NULL) {
        hp_respond_failure(r, err);
        return;
    }
    hp_checkout_hold_auth(r, co, auth_id);
    hp_db_acquire(r, hp__checkout_on_conn, co);
}

static void hp__checkout_priced(hp_req_t *r, void *ud, hp_cart_priced_t *p)
{
    hp_checkout_t *co = ud;
    if (!p->restaurant_open) {
        hp_respond_error(r, HP_E_restaurant_closed, "the restaurant is closed now");
        return;
    }
    /* Sum quantities per stock-tracked item; refuse early what the stock cannot cover. */
    int64_t ids[HP_TOTAL_MAX_LINES];
    int64_t qty[HP_TOTAL_MAX_LINES];
    int n = 0;
    for (size_t i = 0; i != p->cart.num_lines; ++i) {
        const hp_total_line_t *l = &p->cart.lines[i];
        size_t k;
        for (k = 0; k != p->num_items && p->items[k].id != l->item_id; ++k)
            ;
        if (p->item_stock[k] < 0)
            continue;
        int j;
        for (j = 0; j != n && ids[j] != l->item_id; ++j)
            ;
        if (j == n)
            ids[n] = l->item_id, qty[n] = 0, ++n;
        qty[j] += l->quantity;
        if (qty[j] > p->item_stock[k]) {
            hp_respond_error(r, HP_E_out_of_stock,
                             hp_pool_printf(r, "item %lld has %d left", (long long)l->item_id, p->item_stock[k]));
            return;
        }
    }
    co->num_stock = n;
    hp_pgarray_t ai, aq;
    hp_pgarray_begin(&ai, h2o_mem_alloc_pool(&r->h2o->pool, HP_PGARRAY_INT_BYTES(n)), HP_PGARRAY_INT_BYTES(n));
    hp_pgarray_begin(&aq, h2o_mem_alloc_pool(&r->h2o->pool, HP_PGARRAY_INT_BYTES(n)), HP_PGARRAY_INT_BYTES(n));
    for (int j = 0; j != n; ++j) {
        hp_pgarray_int(&ai, ids[j]);
        hp_pgarray_int(&aq, qty[j]);
    }
    co->stock_ids = hp_pgarray_end(&ai), co->stock_qty = hp_pgarray_end(&aq);
    if (co->long_txn)
        hp_db_acquire(r, hp_checkout_long_on_conn, co);
    else
        hp_payment_authorize(r, p->result.total_cents, hp__checkout_on_payment, co);
}

static void hp__checkout_on_key(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_checkout_t *co = ud;
    if (hp_db_failed(r, res, err))
        return;
    if (PQntuples(res) != 0) {
        int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        hp__checkout_replay_order(r, id);
        return;
    }
    PQclear(res);
    hp_cart_price(r, co->p, hp__checkout_priced, co);
}

/* Idempotency keys: 1 to 64 printable ASCII characters, so they can be stored and logged safely. */
static int hp__key_ok(h2o_iovec_t v)
{
    if (v.base == NULL || v.len == 0 || v.len > 64)
        return 0;
    for (size_t i = 0; i != v.len; ++i)
        if (v.base[i] < 0x21 || v.base[i] > 0x7e)
            return 0;
    return 1;
}

static void hp__checkout_authed(hp_req_t *r)
{
    h2o_iovec_t key = hp_req_header(r, "idempotency-key");
    if (!hp__key_ok(key)) {
        hp_respond_error(r, HP_E_missing_idempotency_key,
                         "POST /orders needs an Idempotency-Key header of 1 to 64 printable characters");
        return;
    }
    hp_cart_priced_t *p = hp__parse_cart(r);
    if (p == NULL)
        return;
    hp_checkout_t *co = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*co));
    memset(co, 0, sizeof(*co));
    co->p = p;
    co->key = h2o_strdup(&r->h2o->pool, key.base, key.len).base;
    co->long_txn = hp_flag_get(HP_FLAG_checkout_txn) == HP_checkout_txn_long;
    hp__lookup_key(r, co, hp__checkout_on_key);
}

void hp_handle_order_create(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_CUSTOMER, hp__checkout_authed);
}
