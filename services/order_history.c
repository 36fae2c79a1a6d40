/*
 * order_history: GET /users/{id}/orders, the set-based path (see order_history.h).
 */
#include "services/order_history.h"
#include "base/pgarray.h"
#include "base/cursor.h"
#include "base/flags.h"
#include "runtime/db.h"
#include "runtime/params.h"
#include "services/auth.h"
#include "services/handlers.h"
#include "services/orders.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The page statement asks for one row more than the page, to know whether another page exists. */
int hp_history_page_rows(const hp_history_t *h, int *more)
{
    int n = PQntuples(h->page);
    *more = n > h->limit;
    return *more ? h->limit : n;
}

/* Row i of the page as the API renders it, given result sets holding its items and its restaurant's name. */
static json_t *hp__history_order_json(const hp_history_t *h, int i, const PGresult *names, const PGresult *items)
{
    json_t *o = hp_order_row_json(h->page, i);
    int64_t rid = hp_order_int(h->page, i, 2);
    for (int k = 0; k != PQntuples(names); ++k)
        if (hp_order_int(names, k, 0) == rid)
            json_object_set_new(o, "restaurant_name", json_string(PQgetvalue(names, k, 1)));
    hp_order_add_items(o, hp_order_int(h->page, i, 0), items);
    return o;
}

void hp_history_respond(hp_req_t *r, hp_history_t *h)
{
    int more, n = hp_history_page_rows(h, &more);
    json_t *orders = json_array();
    for (int i = 0; i != n; ++i)
        json_array_append_new(orders, h->row_items != NULL ? hp__history_order_json(h, i, h->row_names[i], h->row_items[i])
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
    if (!hp_db_join_done(&h->join, err))
        return;
    if (!hp_db_failed(r, NULL, h->join.err))
        hp_history_respond(r, h);
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

/* Formats column col (an integer) of every row as a PostgreSQL array literal in the request pool. */
static const char *hp__column_array(hp_req_t *r, const PGresult *res, int col)
{
    int n = PQntuples(res);
    hp_pgarray_t a;
    hp_pgarray_begin(&a, h2o_mem_alloc_pool(&r->h2o->pool, HP_PGARRAY_INT_BYTES(n)), HP_PGARRAY_INT_BYTES(n));
    for (int i = 0; i != n; ++i)
        hp_pgarray_int(&a, hp_order_int(res, i, col));
    return hp_pgarray_end(&a);
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
    if (hp_flag_get(HP_FLAG_order_history) == HP_order_history_n_plus_one) {
        hp_history_n_plus_one(r, h);
        return;
    }
    h->join.pending = 2;
    const char *oids = hp__column_array(r, res, 0), *rids = hp__column_array(r, res, 2);
    /* Both are keyed by the page's ids, so they go out together in one pipeline round trip. */
    hp_db_query_replica(r, r->principal.user_id, HP_STMT_order_items_for, &oids, 1, hp__history_on_items, h);
    hp_db_query_replica(r, r->principal.user_id, HP_STMT_restaurant_names, &rids, 1, hp__history_on_names, h);
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
    const char *values[4] = {hp_pool_printf(r, "%lld", (long long)r->principal.user_id),
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k1) : NULL,
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k2) : NULL, hp_pool_printf(r, "%d", limit + 1)};
    /* The history may come from the standby (replica_reads), except while the customer's own last checkout is not replayed there.
     */
    hp_db_query_replica(r, r->principal.user_id, HP_STMT_order_history, values, 4, hp__history_on_page, h);
}

void hp_handle_order_history(hp_req_t *r)
{
    /* Any principal may ask; only the customer themself gets an answer other than 404, so ids do not leak. */
    hp_auth(r, HP_AUTH_ANY, hp__history_authed);
}
