/*
 * order_history_n1: the order_history=n_plus_one lab variant of the history
 * (see order_history.h): what an ORM's lazy loading sends, one order or
 * restaurant at a time. Kept beside the default path, so that path reads
 * top-down with no branch on the flag but the one that comes here.
 */
#include "services/order_history.h"
#include "runtime/db.h"
#include "services/statements.h"

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
    hp_db_query_replica(r, r->principal.user_id, HP_STMT_restaurant_name_of, &rid, 1, hp__n1_on_name, h);
}

static void hp__n1_next(hp_req_t *r, hp_history_t *h)
{
    int more, n = hp_history_page_rows(h, &more);
    if (h->next == n) {
        hp_history_respond(r, h);
        return;
    }
    const char *oid = PQgetvalue(h->page, h->next, 0);
    hp_db_query_replica(r, r->principal.user_id, HP_STMT_order_items_of, &oid, 1, hp__n1_on_items, h);
}

void hp_history_n_plus_one(hp_req_t *r, hp_history_t *h)
{
    size_t n = (size_t)PQntuples(h->page);
    h->row_items = h2o_mem_alloc_pool(&r->h2o->pool, n * sizeof(PGresult *));
    h->row_names = h2o_mem_alloc_pool(&r->h2o->pool, n * sizeof(PGresult *));
    hp__n1_next(r, h);
}
