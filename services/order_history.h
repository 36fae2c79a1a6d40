/*
 * order_history: GET /users/{id}/orders, newest first, keyset-paginated.
 *
 * The default path is set-based (order_history.c): one statement for the page
 * of orders, then the items of all those orders and the names of their
 * restaurants in two more statements sent together, a fixed three statements
 * per page whatever its size.
 *
 * The flag order_history=n_plus_one turns it into the classic N+1 of ORM lazy
 * loading (order_history_n1.c): after the page, each order's items and then
 * its restaurant's name are fetched one statement at a time, each waiting for
 * the previous answer, so a page of N orders costs 1 + 2N statements and
 * 1 + 2N round trips. The response is the same document either way
 * (tests/e2e/test_order_reads.py). This header is the two files' shared state.
 */
#ifndef HP_ORDER_HISTORY_H
#define HP_ORDER_HISTORY_H

#include <libpq-fe.h>

#include "runtime/db.h"
#include "runtime/http.h"

typedef struct st_hp_history_t {
    int limit;
    /* Every PGresult here is kept by the request's pool (hp_db_keep) and cleared with it. */
    PGresult *page, *items, *names;
    hp_db_join_t join;
    int next;                          /* N+1: the page row being fetched */
    PGresult **row_items, **row_names; /* N+1: each row's own results, in the request pool; NULL on the batched path */
} hp_history_t;

/** @return the rows of the page that belong to it (it holds one more, to know whether another page exists), and *more */
int hp_history_page_rows(const hp_history_t *h, int *more);

/** Answers with the page, its rows' items and restaurant names read from the batched results or each row's own. */
void hp_history_respond(hp_req_t *r, hp_history_t *h);

/** The order_history=n_plus_one walk over a page just read (order_history_n1.c). */
void hp_history_n_plus_one(hp_req_t *r, hp_history_t *h);

#endif
