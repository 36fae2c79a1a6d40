/*
 * pg_explain: GET /debug/pg/explain?statement=NAME[&args=JSON array] (see pg.h).
 *
 * EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of one registered statement, on the
 * admin thread's transaction connection, inside a transaction that is always
 * rolled back, so a write statement's plan costs nothing. A read is planned
 * as the read connections plan it (hp__explain_on_begin). The arguments are
 * the statement's sample (its list's sample column) unless the request gives
 * its own; either way they reach SQL only as literals PostgreSQL quoted.
 */
#include "profiling/pg.h"
#include "base/json.h"
#include "runtime/db.h"
#include "runtime/params.h"
#include "profiling/plan.h"
#include "profiling/pg_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_PG_ARGS_MAX_BYTES 8192 /* the longest args= value EXPLAIN accepts */

typedef struct st_hp_pg_explain_t {
    const hp_db_stmt_def_t *def; /* the statement, from the registered tables */
    int num_params;
    int from_request;      /* the arguments came in args=, so errors in them are the client's */
    const char **values;   /* from_request: the arguments as text (NULL for null), bound to the quoting query */
    const char *quote_sql; /* turns each argument into a literal; see hp__explain_in_txn */
    const char **literals; /* the literals EXECUTE gets */
} hp_pg_explain_t;

/*
 * The failure branch once the connection is ours: the transaction is rolled
 * back. An error of class 22 (data exception), 23 (integrity) or 42 (a type
 * mismatch, say) is what bad arguments raise: a 400 when the client gave
 * them, a 500 when our samples did. Anything else (a timeout, a lost
 * connection, a serialization failure) answers as any statement's would.
 */
static void hp__explain_failed(hp_req_t *r, hp_pg_explain_t *ex, PGresult *res, const char *err)
{
    if (r->held != NULL)
        hp_db_release(r, r->held, 1);
    if (err == hp_err_db_error && res != NULL) {
        const char *state = hp_db_sqlstate(res), *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 || strncmp(state, "42", 2) == 0) {
            char *text = hp_pool_printf(r, "EXPLAIN of %s with %s arguments failed: %s (SQLSTATE %s)", ex->def->name,
                                        ex->from_request ? "the given" : "the sample", msg != NULL ? msg : "", state);
            PQclear(res);
            hp_respond_error(r, ex->from_request ? HP_E_bad_args : HP_E_explain_failed, text);
            return;
        }
    }
    hp_db_failed(r, res, err);
}

static void hp__explain_on_explained(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        hp__explain_failed(r, ex, res, err);
        return;
    }
    /* ROLLBACK first: whatever the statement wrote is gone before anyone hears about it. */
    hp_db_release(r, r->held, 1);
    json_error_t jerr;
    json_t *plan = PQntuples(res) == 1 ? json_loadb(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, &jerr) : NULL;
    PQclear(res);
    if (plan == NULL) {
        hp_respond_error(r, HP_E_explain_failed, "EXPLAIN did not return one JSON document");
        return;
    }
    json_t *args = json_array();
    for (int i = 0; i != ex->num_params; ++i)
        json_array_append_new(args, json_string(ex->literals[i]));
    hp_respond_json(r, 200,
                    json_pack("{s:s s:o s:s s:b s:o s:o}", "statement", ex->def->name, "args", args, "args_source",
                              ex->from_request ? "request" : "sample", "rolled_back", 1, "summary", hp_plan_summary(plan), "plan",
                              plan));
}

static void hp__explain_send(hp_req_t *r, hp_pg_explain_t *ex)
{
    /* The name is ours (looked up in the list) and every argument a literal PostgreSQL quoted itself. */
    const char *name = ex->def->name;
    size_t len = 64 + strlen(name);
    for (int i = 0; i != ex->num_params; ++i)
        len += strlen(ex->literals[i]) + 2;
    char *sql = h2o_mem_alloc_pool(&r->h2o->pool, len), *o = sql;
    o += sprintf(o, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE %s", name);
    for (int i = 0; i != ex->num_params; ++i)
        o += sprintf(o, "%s%s", i == 0 ? "(" : ", ", ex->literals[i]);
    if (ex->num_params != 0)
        strcpy(o, ")");
    hp_db_conn_query_sql(r, r->held, sql, NULL, 0, hp__explain_on_explained, ex);
}

static void hp__explain_on_quoted(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        hp__explain_failed(r, ex, res, err);
        return;
    }
    ex->literals = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex->literals) * (size_t)ex->num_params);
    for (int i = 0; i != ex->num_params; ++i)
        ex->literals[i] = h2o_strdup(&r->h2o->pool, PQgetvalue(res, 0, i), SIZE_MAX).base;
    PQclear(res);
    hp__explain_send(r, ex);
}

/*
 * In the transaction. The arguments become literals in a first query,
 * "SELECT quote_nullable((expr)::text), ...": EXECUTE's arguments may not
 * contain subqueries, so the samples are evaluated here; and a request's
 * arguments arrive as bound parameters, so PostgreSQL quotes them (as
 * PQescapeLiteral would, E'' form included) and no request text is ever
 * spliced into SQL. quote_nullable turns NULL into the bare word NULL.
 */
static void hp__explain_in_txn(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        /* Never go on without the transaction: EXPLAIN ANALYZE of a write would then commit it. */
        hp__explain_failed(r, ex, res, err);
        return;
    }
    PQclear(res);
    if (ex->num_params == 0) {
        hp__explain_send(r, ex);
        return;
    }
    hp_db_conn_query_sql(r, r->held, ex->quote_sql, ex->values, ex->from_request ? ex->num_params : 0, hp__explain_on_quoted, ex);
}

/*
 * The transaction is open. A transaction connection plans every statement
 * generically (runtime/db.c), and the read connections leave the choice to
 * PostgreSQL, so a read is explained under its connections' setting, for
 * this transaction only: the plan shown is the plan its reads get.
 */
static void hp__explain_on_begin(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL || ex->def->kind != HP_STMT_READ) {
        hp__explain_in_txn(r, ud, res, err);
        return;
    }
    PQclear(res);
    hp_db_conn_query_sql(r, r->held, "SET LOCAL plan_cache_mode = auto", NULL, 0, hp__explain_in_txn, ex);
}

static void hp__explain_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    if (hp_db_failed(r, NULL, err))
        return;
    hp_db_conn_query_sql(r, conn, "BEGIN", NULL, 0, hp__explain_on_begin, ud);
}

/*
 * Reads args= (a JSON array of strings, numbers and nulls, one per parameter)
 * into ex->values. @return 0, or -1 after answering 400
 */
static int hp__explain_args(hp_req_t *r, hp_pg_explain_t *ex, h2o_iovec_t text)
{
    const char *name = ex->def->name;
    json_error_t jerr;
    json_t *doc = NULL;
    if (text.len > HP_PG_ARGS_MAX_BYTES || !hp_json_depth_ok(text.base, text.len, 1) ||
        (doc = json_loadb(text.base, text.len, 0, &jerr)) == NULL || !json_is_array(doc)) {
        json_decref(doc);
        hp_respond_error(
            r, HP_E_bad_args,
            hp_pool_printf(r, "args must be a JSON array of strings, numbers and nulls, at most %d bytes", HP_PG_ARGS_MAX_BYTES));
        return -1;
    }
    if (json_array_size(doc) != (size_t)ex->num_params) {
        hp_respond_error(r, HP_E_bad_args,
                         hp_pool_printf(r, "%s takes %d arguments, not %zu", name, ex->num_params, json_array_size(doc)));
        json_decref(doc);
        return -1;
    }
    ex->values = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex->values) * (size_t)(ex->num_params + 1));
    for (int i = 0; i != ex->num_params; ++i) {
        json_t *v = json_array_get(doc, (size_t)i);
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
            ex->values[i] = h2o_strdup(&r->h2o->pool, json_string_value(v), json_string_length(v)).base;
        } else if (json_is_integer(v)) {
            ex->values[i] = hp_pool_printf(r, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            ex->values[i] = hp_pool_printf(r, "%.17g", json_real_value(v));
        } else if (json_is_null(v)) {
            ex->values[i] = NULL;
        } else {
            hp_respond_error(r, HP_E_bad_args,
                             hp_pool_printf(r,
                                            "argument %d is not a string, a number or null (give booleans and arrays as "
                                            "strings: \"true\", \"{1,2}\")",
                                            i + 1));
            json_decref(doc);
            return -1;
        }
    }
    json_decref(doc);
    return 0;
}

static void hp__explain(hp_req_t *r)
{
    h2o_iovec_t name, args;
    int found = hp_query_param(r, "statement", &name);
    if (found <= 0) {
        hp_respond_error(r, HP_E_bad_param, "statement=NAME is required (a name from services/statements.h)");
        return;
    }
    hp_pg_explain_t *ex = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex));
    memset(ex, 0, sizeof(*ex));
    int id = hp_db_stmt_lookup(name.base, name.len);
    size_t num_stmts;
    const hp_db_stmt_def_t *stmts = hp_db_stmts(&num_stmts);
    if (id < 0) {
        hp_respond_error(r, HP_E_unknown_statement,
                         hp_pool_printf(r,
                                        "no statement named \"%.64s\"; EXPLAIN runs named statements only (services/statements.h)",
                                        name.base));
        return;
    }
    ex->def = &stmts[id];
    ex->num_params = hp_pg_num_params(ex->def->sql);
    if ((found = hp_query_param(r, "args", &args)) < 0) {
        hp_respond_error(r, HP_E_bad_args, "args is not a well-formed query parameter");
        return;
    }
    ex->from_request = found > 0;
    const char *const *sample = NULL;
    if (ex->from_request) {
        if (hp__explain_args(r, ex, args) != 0)
            return;
    } else if (ex->num_params != 0) {
        if (hp_db_stmt_num_args(ex->def) != ex->num_params) {
            hp_respond_error(r, HP_E_no_sample_args,
                             hp_pool_printf(r, "%s has no sample arguments in its statement list; give args=[...]", ex->def->name));
            return;
        }
        sample = ex->def->sample_args;
    }
    if (ex->num_params != 0) {
        size_t len = 16;
        for (int i = 0; i != ex->num_params; ++i)
            len += 40 + (sample != NULL ? strlen(sample[i]) : 8);
        char *sql = h2o_mem_alloc_pool(&r->h2o->pool, len), *o = sql;
        o += sprintf(o, "SELECT ");
        for (int i = 0; i != ex->num_params; ++i) {
            if (sample != NULL)
                o += sprintf(o, "%squote_nullable((%s)::text)", i == 0 ? "" : ", ", sample[i]);
            else
                o += sprintf(o, "%squote_nullable($%d::text)", i == 0 ? "" : ", ", i + 1);
        }
        ex->quote_sql = sql;
    }
    hp_db_acquire(r, hp__explain_on_conn, ex);
}

const hp_route_t hp_pg_explain_routes[] = {
    {"GET", "/debug/pg/explain", hp__explain, HP_ROUTE_ADMIN_TOKEN},
};
const size_t hp_pg_explain_num_routes = sizeof(hp_pg_explain_routes) / sizeof(hp_pg_explain_routes[0]);
