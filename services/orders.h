/*
 * orders: reading and rendering orders, shared by GET /orders/{id}, the
 * order history, status events and checkout's responses.
 */
#ifndef HP_ORDERS_H
#define HP_ORDERS_H

#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "runtime/http.h"

/* What callers need to decide access and transitions, besides the document. */
typedef struct st_hp_order_meta_t {
    int64_t id, user_id, restaurant_id, owner_id;
    const char *status; /* in the request pool */
} hp_order_meta_t;

/**
 * Called with the order document (owned by the callback) or doc NULL when the
 * order does not exist; err reports a database failure (then doc is NULL).
 */
typedef void (*hp_order_cb)(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err);

/** Reads one order with its items and payment (two statements in one pipeline). */
void hp_order_fetch(hp_req_t *r, int64_t order_id, hp_order_cb cb, void *ud);

/* An order's own columns (HP__ORDER_COLUMNS), whether read back or just written by the checkout. */
typedef struct st_hp_order_fields_t {
    int64_t id, user_id, restaurant_id;
    const char *status;
    int64_t subtotal_cents, discount_cents, tax_cents, delivery_fee_cents, service_fee_cents, small_order_fee_cents, tip_cents,
        total_cents;
    uint64_t created_us; /* microseconds since the epoch */
} hp_order_fields_t;

/**
 * The one layout of an order document, so that an order read back and the
 * checkout's 201 built from what it wrote are the same document: the order's
 * own fields here, then restaurant_name, items (hp_order_item_json) and
 * payment (hp_order_payment_json, or null), added in that order.
 * @return a new object without items, restaurant_name or payment
 */
json_t *hp_order_json(const hp_order_fields_t *f);

/** One line of an order; takes the reference to modifier_ids, a JSON array of ids. */
json_t *hp_order_item_json(int64_t item_id, const char *name, int64_t quantity, int64_t unit_price_cents, int64_t line_total_cents,
                           json_t *modifier_ids);

/** An order's payment. */
json_t *hp_order_payment_json(const char *authorization_id, int64_t amount_cents, const char *status);

/**
 * Renders row `row` of a result whose first columns are HP__ORDER_COLUMNS.
 * @return a new object without items, restaurant_name or payment
 */
json_t *hp_order_row_json(const PGresult *res, int row);

/** @return an integer column of a result row */
static inline int64_t hp_order_int(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/** Adds the items of order_id found in an order_items_for result. */
void hp_order_add_items(json_t *order, int64_t order_id, const PGresult *items);

#endif
