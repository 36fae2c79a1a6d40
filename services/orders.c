/*
 * orders: reading and rendering orders (hp_order_fetch, shared with checkout),
 * GET /orders/{id} and POST /orders/{id}/events. The history is
 * order_history.c's.
 */
#include "services/orders.h"
#include "base/pgarray.h"
#include "base/json.h"
#include "base/timefmt.h"
#include "runtime/db.h"
#include "runtime/params.h"
#include "services/auth.h"
#include "services/handlers.h"
#include "services/order_status.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *hp_order_json(const hp_order_fields_t *f)
{
    char created[32];
    hp_time_rfc3339(created, sizeof(created), f->created_us, 0);
    return json_pack("{sI sI sI ss sI sI sI sI sI sI sI sI ss}", "id", (json_int_t)f->id, "user_id", (json_int_t)f->user_id,
                     "restaurant_id", (json_int_t)f->restaurant_id, "status", f->status, "subtotal_cents",
                     (json_int_t)f->subtotal_cents, "discount_cents", (json_int_t)f->discount_cents, "tax_cents",
                     (json_int_t)f->tax_cents, "delivery_fee_cents", (json_int_t)f->delivery_fee_cents, "service_fee_cents",
                     (json_int_t)f->service_fee_cents, "small_order_fee_cents", (json_int_t)f->small_order_fee_cents, "tip_cents",
                     (json_int_t)f->tip_cents, "total_cents", (json_int_t)f->total_cents, "created_at", created);
}

json_t *hp_order_item_json(int64_t item_id, const char *name, int64_t quantity, int64_t unit_price_cents, int64_t line_total_cents,
                           json_t *modifier_ids)
{
    return json_pack("{sI ss sI sI sI so}", "item_id", (json_int_t)item_id, "name", name, "quantity", (json_int_t)quantity,
                     "unit_price_cents", (json_int_t)unit_price_cents, "line_total_cents", (json_int_t)line_total_cents,
                     "modifier_ids", modifier_ids);
}

json_t *hp_order_payment_json(const char *authorization_id, int64_t amount_cents, const char *status)
{
    return json_pack("{ss sI ss}", "authorization_id", authorization_id, "amount_cents", (json_int_t)amount_cents, "status",
                     status);
}

json_t *hp_order_row_json(const PGresult *res, int row)
{
    hp_order_fields_t f = {.id = hp_order_int(res, row, 0),
                           .user_id = hp_order_int(res, row, 1),
                           .restaurant_id = hp_order_int(res, row, 2),
                           .status = PQgetvalue(res, row, 3),
                           .subtotal_cents = hp_order_int(res, row, 4),
                           .discount_cents = hp_order_int(res, row, 5),
                           .tax_cents = hp_order_int(res, row, 6),
                           .delivery_fee_cents = hp_order_int(res, row, 7),
                           .service_fee_cents = hp_order_int(res, row, 8),
                           .small_order_fee_cents = hp_order_int(res, row, 9),
                           .tip_cents = hp_order_int(res, row, 10),
                           .total_cents = hp_order_int(res, row, 11),
                           .created_us = strtoull(PQgetvalue(res, row, 12), NULL, 10)};
    return hp_order_json(&f);
}

/* Parses PostgreSQL's "{1,2,3}" text form of a bigint[] into a JSON array. */
static json_t *hp__id_list(const char *s)
{
    json_t *arr = json_array();
    for (const char *p = s; *p != '\0';) {
        if (*p >= '0' && *p <= '9') {
            char *end;
            json_array_append_new(arr, json_integer(strtoll(p, &end, 10)));
            p = end;
        } else {
            ++p;
        }
    }
    return arr;
}

void hp_order_add_items(json_t *order, int64_t order_id, const PGresult *items)
{
    /* Columns: order_id, item_id, name, quantity, unit_price_cents, line_total_cents, modifier_ids. */
    json_t *list = json_array();
    int n = PQntuples(items);
    for (int i = 0; i != n; ++i) {
        if (strtoll(PQgetvalue(items, i, 0), NULL, 10) != order_id)
            continue;
        json_array_append_new(list, hp_order_item_json(hp_order_int(items, i, 1), PQgetvalue(items, i, 2),
                                                       hp_order_int(items, i, 3), hp_order_int(items, i, 4),
                                                       hp_order_int(items, i, 5), hp__id_list(PQgetvalue(items, i, 6))));
    }
    json_object_set_new(order, "items", list);
}

/* ---- one order ------------------------------------------------------------------------------ */

typedef struct st_hp_order_fetch_t {
    int64_t id;
    hp_order_cb cb;
    void *ud;
    PGresult *order, *items;
    hp_db_join_t join;
} hp_order_fetch_t;

static void hp__fetch_done(hp_req_t *r, hp_order_fetch_t *f)
{
    if (f->join.err != NULL || PQntuples(f->order) == 0) {
        f->cb(r, f->ud, NULL, NULL, f->join.err);
        return;
    }
    PGresult *o = f->order;
    json_t *doc = hp_order_row_json(o, 0);
    json_object_set_new(doc, "restaurant_name", json_string(PQgetvalue(o, 0, 13)));
    hp_order_add_items(doc, f->id, f->items);
    if (PQgetisnull(o, 0, 15))
        json_object_set_new(doc, "payment", json_null());
    else
        json_object_set_new(doc, "payment",
                            hp_order_payment_json(PQgetvalue(o, 0, 15), hp_order_int(o, 0, 16), PQgetvalue(o, 0, 17)));
    hp_order_meta_t meta = {.id = f->id,
                            .user_id = hp_order_int(o, 0, 1),
                            .restaurant_id = hp_order_int(o, 0, 2),
                            .owner_id = hp_order_int(o, 0, 14),
                            .status = hp_pool_printf(r, "%s", PQgetvalue(o, 0, 3))};
    f->cb(r, f->ud, doc, &meta, NULL);
}

/* One of the two results (the order, or its items) arrived into slot; the last answers. */
static void hp__fetch_part(hp_req_t *r, hp_order_fetch_t *f, PGresult **slot, PGresult *res, const char *err)
{
    *slot = res;
    if (!hp_db_join_done(&f->join, err))
        return;
    hp__fetch_done(r, f);
    if (f->order != NULL)
        PQclear(f->order);
    if (f->items != NULL)
        PQclear(f->items);
}

static void hp__fetch_on_order(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_order_fetch_t *f = ud;
    hp__fetch_part(r, f, &f->order, res, err);
}

static void hp__fetch_on_items(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_order_fetch_t *f = ud;
    hp__fetch_part(r, f, &f->items, res, err);
}

void hp_order_fetch(hp_req_t *r, int64_t order_id, hp_order_cb cb, void *ud)
{
    hp_order_fetch_t *f = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->id = order_id;
    f->cb = cb;
    f->ud = ud;
    f->join.pending = 2;
    const char *id = hp_pool_printf(r, "%lld", (long long)order_id), *ids = hp_pool_printf(r, "{%lld}", (long long)order_id);
    hp_db_query(r, HP_STMT_order_get, &id, 1, hp__fetch_on_order, f);
    hp_db_query(r, HP_STMT_order_items_for, &ids, 1, hp__fetch_on_items, f);
}

/* Customers see their own orders, owners the orders of their restaurant; everyone else gets 404. */
static int hp__may_see(const hp_req_t *r, const hp_order_meta_t *meta)
{
    if (r->principal.role == HP_ROLE_CUSTOMER)
        return meta->user_id == r->principal.user_id;
    return meta->restaurant_id == r->principal.restaurant_id;
}

static void hp__get_on_order(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err)
{
    (void)ud;
    if (err != NULL) {
        hp_respond_failure(r, err);
    } else if (doc == NULL || !hp__may_see(r, meta)) {
        json_decref(doc);
        hp_respond_error(r, HP_E_not_found, "no such order");
    } else {
        hp_respond_json(r, 200, doc);
    }
}

static void hp__get_authed(hp_req_t *r)
{
    hp_order_fetch(r, r->path_ids[0], hp__get_on_order, NULL);
}

void hp_handle_order_get(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_ANY, hp__get_authed);
}

/* ---- status events -------------------------------------------------------------------------- */

typedef struct st_hp_event_t {
    hp_order_status_t to;
    const char *values[4];
} hp_event_t;

static void hp__event_on_refetch(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err)
{
    (void)ud, (void)meta;
    if (err != NULL || doc == NULL) {
        json_decref(doc);
        hp_respond_failure(r, err != NULL ? err : hp_err_db_error);
        return;
    }
    hp_respond_json(r, 200, doc);
}

static void hp__event_on_update(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_db_release(r, r->held, err != NULL);
    if (hp_db_failed(r, res, err))
        return;
    int updated = PQntuples(res);
    PQclear(res);
    if (updated == 0) {
        /* Another request moved the order to a status this transition cannot start from. */
        hp_respond_error(r, HP_E_invalid_transition,
                         hp_pool_printf(r, "the order can no longer go to %s", hp_status_name(((hp_event_t *)ud)->to)));
        return;
    }
    hp_order_fetch(r, r->path_ids[0], hp__event_on_refetch, NULL);
}

static void hp__event_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    hp_event_t *ev = ud;
    if (hp_db_failed(r, NULL, err))
        return;
    hp_db_conn_query(r, conn, HP_STMT_order_transition, ev->values, 4, hp__event_on_update, ev);
}

static void hp__event_on_order(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err)
{
    hp_event_t *ev = ud;
    json_decref(doc);
    if (hp_db_failed(r, NULL, err))
        return;
    if (doc == NULL || !hp__may_see(r, meta)) {
        hp_respond_error(r, HP_E_not_found, "no such order");
        return;
    }
    hp_order_status_t from;
    hp_actor_t actor = r->principal.role == HP_ROLE_OWNER ? HP_ACTOR_OWNER : HP_ACTOR_CUSTOMER;
    if (actor == HP_ACTOR_CUSTOMER && ev->to != HP_ST_CANCELLED) {
        hp_respond_error(r, HP_E_forbidden, "customers may only cancel an order");
        return;
    }
    if (hp_status_parse(meta->status, strlen(meta->status), &from) != 0 || !hp_status_transition_allowed(from, ev->to, actor)) {
        hp_respond_error(r, HP_E_invalid_transition,
                         hp_pool_printf(r, "an order cannot go from %s to %s", meta->status, hp_status_name(ev->to)));
        return;
    }
    /*
     * The update is conditional on every status this actor may move the order
     * from, not just the one read above: a cancel racing an accept still
     * succeeds (accepted → cancelled is allowed), and the database decides
     * atomically which transitions are still possible.
     */
    hp_pgarray_t froms_a;
    hp_pgarray_begin(&froms_a, h2o_mem_alloc_pool(&r->h2o->pool, 128), 128);
    for (int st = 0; st != HP_ST__COUNT; ++st)
        if (hp_status_transition_allowed((hp_order_status_t)st, ev->to, actor))
            hp_pgarray_raw(&froms_a, hp_status_name((hp_order_status_t)st), strlen(hp_status_name((hp_order_status_t)st)));
    const char *froms = hp_pgarray_end(&froms_a);
    ev->values[0] = hp_pool_printf(r, "%lld", (long long)r->path_ids[0]);
    ev->values[1] = froms;
    ev->values[2] = hp_status_name(ev->to);
    ev->values[3] = hp_pool_printf(r, "%lld", (long long)r->principal.user_id);
    hp_db_acquire(r, hp__event_on_conn, ev);
}

static void hp__event_authed(hp_req_t *r)
{
    json_t *doc = hp_body_json(r);
    if (doc == NULL)
        return;
    static const char *const allowed[] = {"status"};
    hp_json_err_t jerr;
    json_t *status = json_object_get(doc, "status");
    hp_event_t *ev = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ev));
    if (hp_json_only_fields(doc, allowed, 1, &jerr) != 0) {
        json_decref(doc);
        hp_respond_json_err(r, &jerr);
        return;
    }
    if (status == NULL) {
        json_decref(doc);
        hp_respond_error(r, HP_E_missing_field, "missing field status");
        return;
    }
    if (!json_is_string(status) || hp_status_parse(json_string_value(status), json_string_length(status), &ev->to) != 0) {
        json_decref(doc);
        hp_respond_error(r, HP_E_invalid_field,
                         "status must be one of placed, accepted, preparing, ready, picked_up, delivered, cancelled");
        return;
    }
    json_decref(doc);
    hp_order_fetch(r, r->path_ids[0], hp__event_on_order, ev);
}

void hp_handle_order_event(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_ANY, hp__event_authed);
}
