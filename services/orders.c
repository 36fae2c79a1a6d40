/*
 * orders: GET /orders/{id}, GET /users/{id}/orders and POST /orders/{id}/events.
 *
 * The order history is set-based: one statement for the page of orders, then
 * the items of all those orders and the names of their restaurants in two more
 * statements sent together, a fixed three statements per page whatever its size.
 *
 * The flag order_history=n_plus_one turns it into the classic N+1 of ORM lazy
 * loading: after the page, each order's items and then its restaurant's name
 * are fetched one statement at a time, each waiting for the previous answer,
 * so a page of N orders costs 1 + 2N statements and 1 + 2N round trips. The
 * response is the same document either way (tests/e2e/test_order_history_flag.py).
 */
#include "runtime/params.h"
#include "services/orders.h"
#include "base/timefmt.h"
#include "base/cursor.h"
#include "runtime/db.h"
#include "base/flags.h"
#include "base/json.h"
#include "services/auth.h"
#include "services/handlers.h"
#include "services/order_status.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_int_t hp__int(const PGresult *res, int row, int col)
{
    return (json_int_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

json_t *hp_order_row_json(const PGresult *res, int row)
{
    char created[32];
    hp_time_rfc3339(created, sizeof(created), strtoull(PQgetvalue(res, row, 12), NULL, 10), 0);
    return json_pack("{sI sI sI ss sI sI sI sI sI sI sI sI ss}", "id", hp__int(res, row, 0), "user_id", hp__int(res, row, 1),
                     "restaurant_id", hp__int(res, row, 2), "status", PQgetvalue(res, row, 3), "subtotal_cents",
                     hp__int(res, row, 4), "discount_cents", hp__int(res, row, 5), "tax_cents", hp__int(res, row, 6),
                     "delivery_fee_cents", hp__int(res, row, 7), "service_fee_cents", hp__int(res, row, 8), "small_order_fee_cents",
                     hp__int(res, row, 9), "tip_cents", hp__int(res, row, 10), "total_cents", hp__int(res, row, 11), "created_at",
                     created);
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
        json_array_append_new(list, json_pack("{sI ss sI sI sI so}", "item_id", hp__int(items, i, 1), "name",
                                              PQgetvalue(items, i, 2), "quantity", hp__int(items, i, 3), "unit_price_cents",
                                              hp__int(items, i, 4), "line_total_cents", hp__int(items, i, 5), "modifier_ids",
                                              hp__id_list(PQgetvalue(items, i, 6))));
    }
    json_object_set_new(order, "items", list);
}

/* ---- one order ------------------------------------------------------------------------------ */

typedef struct st_hp_order_fetch_t {
    int64_t id;
    hp_order_cb cb;
    void *ud;
    PGresult *order, *items;
    int pending;
    const char *err;
} hp_order_fetch_t;

static void hp__fetch_done(hp_req_t *r, hp_order_fetch_t *f)
{
    if (f->err != NULL || PQntuples(f->order) == 0) {
        f->cb(r, f->ud, NULL, NULL, f->err);
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
                            json_pack("{ss sI ss}", "authorization_id", PQgetvalue(o, 0, 15), "amount_cents", hp__int(o, 0, 16),
                                      "status", PQgetvalue(o, 0, 17)));
    hp_order_meta_t meta = {.id = f->id,
                            .user_id = hp__int(o, 0, 1),
                            .restaurant_id = hp__int(o, 0, 2),
                            .owner_id = hp__int(o, 0, 14),
                            .status = hp_pool_printf(r, "%s", PQgetvalue(o, 0, 3))};
    f->cb(r, f->ud, doc, &meta, NULL);
}

static void hp__fetch_on_order(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_order_fetch_t *f = ud;
    f->order = res;
    if (err != NULL && f->err == NULL)
        f->err = err;
    if (--f->pending == 0)
        goto Done;
    return;
Done:
    hp__fetch_done(r, f);
    if (f->order != NULL)
        PQclear(f->order);
    if (f->items != NULL)
        PQclear(f->items);
}

static void hp__fetch_on_items(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_order_fetch_t *f = ud;
    f->items = res;
    if (err != NULL && f->err == NULL)
        f->err = err;
    if (--f->pending != 0)
        return;
    hp__fetch_done(r, f);
    if (f->order != NULL)
        PQclear(f->order);
    if (f->items != NULL)
        PQclear(f->items);
}

void hp_order_fetch(hp_req_t *r, int64_t order_id, hp_order_cb cb, void *ud)
{
    hp_order_fetch_t *f = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->id = order_id;
    f->cb = cb;
    f->ud = ud;
    f->pending = 2;
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

/* ---- history -------------------------------------------------------------------------------- */

typedef struct st_hp_history_t {
    int limit;
    int n_plus_one; /* order_history=n_plus_one, read once when the request starts */
    /* Every PGresult here is kept by the request's pool (hp_db_keep) and cleared with it. */
    PGresult *page, *items, *names;
    int pending;
    const char *err;
    int next;                          /* N+1: the page row being fetched */
    PGresult **row_items, **row_names; /* N+1: each row's own results, in the request pool */
} hp_history_t;

/* The page statement asks for one row more than the page, to know whether another page exists. */
static int hp__history_page_rows(const hp_history_t *h, int *more)
{
    int n = PQntuples(h->page);
    *more = n > h->limit;
    return *more ? h->limit : n;
}

/* Row i of the page as the API renders it, given result sets holding its items and its restaurant's name. */
static json_t *hp__history_order_json(const hp_history_t *h, int i, const PGresult *names, const PGresult *items)
{
    json_t *o = hp_order_row_json(h->page, i);
    int64_t rid = hp__int(h->page, i, 2);
    for (int k = 0; k != PQntuples(names); ++k)
        if (hp__int(names, k, 0) == rid)
            json_object_set_new(o, "restaurant_name", json_string(PQgetvalue(names, k, 1)));
    hp_order_add_items(o, hp__int(h->page, i, 0), items);
    return o;
}

static void hp__history_respond(hp_req_t *r, hp_history_t *h)
{
    int more, n = hp__history_page_rows(h, &more);
    json_t *orders = json_array();
    for (int i = 0; i != n; ++i)
        json_array_append_new(orders, h->n_plus_one ? hp__history_order_json(h, i, h->row_names[i], h->row_items[i])
                                                    : hp__history_order_json(h, i, h->names, h->items));
    json_t *next = json_null();
    if (more) {
        char cur[HP_CURSOR_BUF_SIZE];
        hp_cursor_encode(cur, sizeof(cur), HP_CURSOR_KIND_ORDERS, strtoll(PQgetvalue(h->page, n - 1, 12), NULL, 10),
                         strtoll(PQgetvalue(h->page, n - 1, 0), NULL, 10));
        next = json_string(cur);
    }
    hp_respond_json(r, 200, json_pack("{so so}", "orders", orders, "next_cursor", next));
}

static void hp__history_part_done(hp_req_t *r, hp_history_t *h, PGresult *res, PGresult **slot, const char *err)
{
    if (res != NULL)
        *slot = hp_db_keep(r, res);
    if (err != NULL && h->err == NULL)
        h->err = err;
    if (--h->pending != 0)
        return;
    if (h->err != NULL)
        hp_respond_failure(r, h->err);
    else
        hp__history_respond(r, h);
}

static void hp__history_on_items(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_history_t *h = ud;
    hp__history_part_done(r, h, res, &h->items, err);
}

static void hp__history_on_names(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_history_t *h = ud;
    hp__history_part_done(r, h, res, &h->names, err);
}

/* Formats column col of every row as a PostgreSQL array literal "{a,b}". */
static const char *hp__column_array(hp_req_t *r, const PGresult *res, int col)
{
    int n = PQntuples(res);
    char *buf = h2o_mem_alloc_pool(&r->h2o->pool, (size_t)n * 21 + 3), *p = buf;
    *p++ = '{';
    for (int i = 0; i != n; ++i)
        p += sprintf(p, "%s%s", i != 0 ? "," : "", PQgetvalue(res, i, col));
    strcpy(p, "}");
    return buf;
}

/*
 * The N+1 walk: row i's items, then its restaurant's name, then row i+1. Each
 * step waits for the previous answer, as lazy loading does, so no two
 * statements share a round trip.
 */
static void hp__n1_next(hp_req_t *r, hp_history_t *h);

static void hp__n1_on_name(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_history_t *h = ud;
    if (hp_db_failed(r, res, err))
        return;
    h->row_names[h->next++] = hp_db_keep(r, res);
    hp__n1_next(r, h);
}

static void hp__n1_on_items(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_history_t *h = ud;
    if (hp_db_failed(r, res, err))
        return;
    h->row_items[h->next] = hp_db_keep(r, res);
    const char *rid = PQgetvalue(h->page, h->next, 2);
    hp_db_query(r, HP_STMT_restaurant_name_of, &rid, 1, hp__n1_on_name, h);
}

static void hp__n1_next(hp_req_t *r, hp_history_t *h)
{
    int more, n = hp__history_page_rows(h, &more);
    if (h->next == n) {
        hp__history_respond(r, h);
        return;
    }
    const char *oid = PQgetvalue(h->page, h->next, 0);
    hp_db_query(r, HP_STMT_order_items_of, &oid, 1, hp__n1_on_items, h);
}

static void hp__history_on_page(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_history_t *h = ud;
    if (hp_db_failed(r, res, err))
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        hp_respond_json(r, 200, json_pack("{s[] so}", "orders", "next_cursor", json_null()));
        return;
    }
    h->page = hp_db_keep(r, res);
    if (h->n_plus_one) {
        size_t n = (size_t)PQntuples(res);
        h->row_items = h2o_mem_alloc_pool(&r->h2o->pool, n * sizeof(PGresult *));
        h->row_names = h2o_mem_alloc_pool(&r->h2o->pool, n * sizeof(PGresult *));
        hp__n1_next(r, h);
        return;
    }
    h->pending = 2;
    const char *oids = hp__column_array(r, res, 0), *rids = hp__column_array(r, res, 2);
    /* Both are keyed by the page's ids, so they go out together in one pipeline round trip. */
    hp_db_query(r, HP_STMT_order_items_for, &oids, 1, hp__history_on_items, h);
    hp_db_query(r, HP_STMT_restaurant_names, &rids, 1, hp__history_on_names, h);
}

static void hp__history_authed(hp_req_t *r)
{
    if (r->principal.role != HP_ROLE_CUSTOMER || r->path_ids[0] != r->principal.user_id) {
        hp_respond_error(r, HP_E_not_found, "no such user");
        return;
    }
    int limit, has_cursor;
    int64_t k1 = 0, k2 = 0;
    if (hp_param_limit(r, 10, 50, &limit) < 0 || hp_param_cursor(r, HP_CURSOR_KIND_ORDERS, &has_cursor, &k1, &k2) < 0)
        return;
    hp_history_t *h = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->limit = limit;
    h->n_plus_one = hp_flag_get(HP_FLAG_order_history) == HP_order_history_n_plus_one;
    const char *values[4] = {hp_pool_printf(r, "%lld", (long long)r->principal.user_id),
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k1) : NULL,
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k2) : NULL, hp_pool_printf(r, "%d", limit + 1)};
    hp_db_query(r, HP_STMT_order_history, values, 4, hp__history_on_page, h);
}

void hp_handle_order_history(hp_req_t *r)
{
    /* Any principal may ask; only the customer themself gets an answer other than 404, so ids do not leak. */
    hp_auth(r, HP_AUTH_ANY, hp__history_authed);
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
    if (err != NULL) {
        hp_respond_failure(r, err);
        return;
    }
    hp_db_conn_query(r, conn, HP_STMT_order_transition, ev->values, 4, hp__event_on_update, ev);
}

static void hp__event_on_order(hp_req_t *r, void *ud, json_t *doc, const hp_order_meta_t *meta, const char *err)
{
    hp_event_t *ev = ud;
    json_decref(doc);
    if (err != NULL) {
        hp_respond_failure(r, err);
        return;
    }
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
    char *froms = h2o_mem_alloc_pool(&r->h2o->pool, 128), *p = froms;
    *p++ = '{';
    for (int st = 0; st != HP_ST__COUNT; ++st)
        if (hp_status_transition_allowed((hp_order_status_t)st, ev->to, actor))
            p += sprintf(p, "%s%s", p == froms + 1 ? "" : ",", hp_status_name((hp_order_status_t)st));
    strcpy(p, "}");
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
