/*
 * pg: /debug/pg/statements, /tables, /explain and /slow (see pg.h).
 *
 * Everything runs on the admin thread with its own connections: reads on its
 * pipelined read connection, EXPLAIN on its one transaction connection. The
 * SQL that needs pg_stat_statements is sent as one-off SQL
 * (hp_db_conn_query_sql) rather than prepared with the statement list,
 * because a statement that fails to prepare takes its connection down, and a
 * database without the extension must still serve the API; these endpoints
 * then answer 503 pg_stat_statements_unavailable instead.
 *
 * Mapping pg_stat_statements rows to names. For a statement prepared through
 * the protocol (as all of ours are), pg_stat_statements records the text that
 * was prepared, but which form depends on when its entry was created:
 *
 * - at prepare time (the entry did not exist when the connection prepared its
 *   statements), it stores the normalised text, with every constant replaced
 *   by a placeholder numbered after the statement's own parameters:
 *   "(extract(epoch FROM o.created_at) * 1000000)" becomes
 *   "(extract($5 FROM o.created_at) * $6)";
 * - at execution time (after pg_stat_statements_reset(), the already-prepared
 *   statement is not parsed again), it stores the text verbatim.
 *
 * Both were observed on PostgreSQL 15 with pg_stat_statements 1.10, and the
 * query id is the same either way. hp_pg_sql_matches() therefore compares
 * with whitespace runs equal and lets a placeholder in PostgreSQL's text
 * stand for a constant in ours. The log lines of log_min_duration_statement
 * name the prepared statement ("execute menu_get: ..."), so /slow needs no
 * matching for them.
 */
#include "runtime/params.h"
#include "profiling/pg.h"
#include "runtime/db.h"
#include "runtime/http.h"
#include "runtime/params.h"
#include "profiling/pg_parse.h"
#include "profiling/plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the SQL this module sends ---------------------------------------------------------------- */

/*
 * One-off SQL (see the header comment for why it is not in the statement
 * list). It is fixed text: request input only ever travels as parameters.
 */
static const char hp__sql_statements[] =
    "SELECT s.queryid, s.toplevel, s.calls, s.total_exec_time, s.mean_exec_time, s.max_exec_time, s.stddev_exec_time, s.rows, "
    "s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written, s.query, "
    "sum(s.shared_blks_hit) OVER (), sum(s.shared_blks_read) OVER (), count(*) OVER (), s.plans, s.total_plan_time "
    "FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY s.total_exec_time DESC LIMIT $1::int";
static const char hp__sql_reset[] = "SELECT pg_stat_statements_reset()";

/* Our one-off SQL under names of its own, so /statements maps it like the statement list. */
static const struct {
    const char *name, *sql;
} hp__own_sql[] = {
    {"debug_pg_statements", hp__sql_statements},
    {"debug_pg_statements_reset", hp__sql_reset},
};

static const hp_db_stmt_def_t hp__pg_stmts[HP_PG_STMT__COUNT] = {
#define HP__PG_STMT_DEF(name, kind, route, sample, sql) {#name, kind, route, sample, sql},
    HP_PG_STMT_LIST(HP__PG_STMT_DEF)
#undef HP__PG_STMT_DEF
};
static int hp__pg_stmt_base = -1;

void hp_pg_register_statements(void)
{
    hp__pg_stmt_base = hp_db_register(hp__pg_stmts, HP_PG_STMT__COUNT);
}

int hp_pg_stmt(hp_pg_stmt_t s)
{
    return hp__pg_stmt_base + (int)s;
}

const char *hp_pg_stmt_for_sql(const char *sql, size_t len)
{
    size_t n;
    const hp_db_stmt_def_t *stmts = hp_db_stmts(&n);
    for (size_t i = 0; i != n; ++i)
        if (hp_pg_sql_matches(stmts[i].sql, strlen(stmts[i].sql), sql, len))
            return stmts[i].name;
    for (size_t i = 0; i != sizeof(hp__own_sql) / sizeof(hp__own_sql[0]); ++i)
        if (hp_pg_sql_matches(hp__own_sql[i].sql, strlen(hp__own_sql[i].sql), sql, len))
            return hp__own_sql[i].name;
    return NULL;
}

/* ---- GET /debug/pg/statements, POST /debug/pg/statements/reset -------------------------------- */

/*
 * pg_stat_statements is missing (42P01: no such view, 42883: no such
 * function) or not loaded (55000): a 503 that says so, rather than a bare
 * db_error. @return 1 when the request was answered
 */
static int hp__pgss_failed(hp_req_t *r, PGresult *res, const char *err)
{
    if (err == hp_err_db_error && res != NULL) {
        const char *state = hp_db_sqlstate(res);
        if (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "55000") == 0) {
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            char *text = hp_pool_printf(r,
                                        "pg_stat_statements is not available in this database (%s): it must be in "
                                        "shared_preload_libraries and created with CREATE EXTENSION pg_stat_statements",
                                        msg != NULL ? msg : state);
            PQclear(res);
            hp_respond_error(r, HP_E_pg_stat_statements_unavailable, text);
            return 1;
        }
    }
    return hp_db_failed(r, res, err);
}

static json_t *hp__int_json(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static json_t *hp__real_json(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_real(strtod(PQgetvalue(res, row, col), NULL));
}

/* Where a statements document goes: its own endpoint, or the pg section of /debug/perf. */
typedef struct st_hp_pg_stmts_req_t {
    hp_pg_doc_cb cb;
    void *ud;
} hp_pg_stmts_req_t;

static void hp__statements_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_stmts_req_t *q = ud;
    if (hp__pgss_failed(r, res, err))
        return;
    json_t *list = json_array();
    double hit = 0, read = 0;
    int64_t tracked = 0;
    for (int i = 0, n = PQntuples(res); i != n; ++i) {
        const char *query = PQgetvalue(res, i, 12);
        size_t query_len = (size_t)PQgetlength(res, i, 12);
        const char *name = hp_pg_stmt_for_sql(query, query_len);
        double row_hit = strtod(PQgetvalue(res, i, 8), NULL), row_read = strtod(PQgetvalue(res, i, 9), NULL);
        int cut;
        json_t *text = hp_pg_text_json(query, query_len, HP_PG_QUERY_CHARS, &cut);
        /* plans and total_plan_time_ms stay 0 unless pg_stat_statements.track_planning is on for the server's role. */
        json_t *row =
            json_pack("{s:s? s:s s:b s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:b s:o s:o}", "name", name, "queryid",
                      PQgetvalue(res, i, 0), "toplevel", PQgetvalue(res, i, 1)[0] == 't', "calls", hp__int_json(res, i, 2),
                      "total_exec_time_ms", hp__real_json(res, i, 3), "mean_exec_time_ms", hp__real_json(res, i, 4),
                      "max_exec_time_ms", hp__real_json(res, i, 5), "stddev_exec_time_ms", hp__real_json(res, i, 6), "rows",
                      hp__int_json(res, i, 7), "shared_blks_hit", hp__int_json(res, i, 8), "shared_blks_read",
                      hp__int_json(res, i, 9), "temp_blks_read", hp__int_json(res, i, 10), "temp_blks_written",
                      hp__int_json(res, i, 11), "hit_ratio", hp_pg_ratio_json(row_hit, row_read), "query", text, "query_truncated",
                      cut, "plans", hp__int_json(res, i, 16), "total_plan_time_ms", hp__real_json(res, i, 17));
        json_array_append_new(list, row);
        hit = strtod(PQgetvalue(res, i, 13), NULL);
        read = strtod(PQgetvalue(res, i, 14), NULL);
        tracked = strtoll(PQgetvalue(res, i, 15), NULL, 10);
    }
    PQclear(res);
    q->cb(r, q->ud,
          json_pack("{s:o s:I s:o s:s}", "statements", list, "tracked", (json_int_t)tracked, "hit_ratio",
                    hp_pg_ratio_json(hit, read), "order", "total_exec_time desc"));
}

void hp_pg_statements_doc(hp_req_t *r, int limit, hp_pg_doc_cb cb, void *ud)
{
    hp_pg_stmts_req_t *q = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*q));
    q->cb = cb;
    q->ud = ud;
    const char *values[] = {hp_pool_printf(r, "%d", limit)};
    hp_db_conn_query_sql(r, NULL, hp__sql_statements, values, 1, hp__statements_on_db, q);
}

static void hp__statements_respond(hp_req_t *r, void *ud, json_t *doc)
{
    (void)ud;
    hp_respond_json(r, 200, doc);
}

static void hp__statements(hp_req_t *r)
{
    int limit;
    if (hp_param_limit(r, 20, 100, &limit) != 0)
        return;
    hp_pg_statements_doc(r, limit, hp__statements_respond, NULL);
}

static void hp__reset_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (hp__pgss_failed(r, res, err))
        return;
    PQclear(res);
    hp_respond_json(r, 200, json_pack("{sb}", "reset", 1));
}

static void hp__statements_reset(hp_req_t *r)
{
    hp_db_conn_query_sql(r, NULL, hp__sql_reset, NULL, 0, hp__reset_on_db, NULL);
}

/* ---- GET /debug/pg/tables ----------------------------------------------------------------------- */

static void hp__tables_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (hp_db_failed(r, res, err))
        return;
    json_t *list = json_array();
    for (int i = 0, n = PQntuples(res); i != n; ++i) {
        int64_t seq_scan = strtoll(PQgetvalue(res, i, 2), NULL, 10), seq_tup_read = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        int64_t idx_tup_fetch = strtoll(PQgetvalue(res, i, 5), NULL, 10), live = strtoll(PQgetvalue(res, i, 6), NULL, 10);
        json_t *avg = seq_scan > 0 ? json_integer(seq_tup_read / seq_scan) : json_null();
        json_array_append_new(
            list, json_pack("{s:s s:s s:I s:I s:o s:I s:o s:I s:o s:o s:o s:b}", "schema", PQgetvalue(res, i, 0), "table",
                            PQgetvalue(res, i, 1), "seq_scan", (json_int_t)seq_scan, "seq_tup_read", (json_int_t)seq_tup_read,
                            "idx_scan", hp__int_json(res, i, 4), "idx_tup_fetch", (json_int_t)idx_tup_fetch,
                            "avg_rows_per_seq_scan", avg, "n_live_tup", (json_int_t)live, "n_dead_tup", hp__int_json(res, i, 7),
                            "table_bytes", hp__int_json(res, i, 8), "index_bytes", hp__int_json(res, i, 9), "missing_index_signal",
                            hp_pg_missing_index_signal(seq_scan, seq_tup_read, idx_tup_fetch, live)));
    }
    PQclear(res);
    hp_respond_json(
        r, 200,
        json_pack("{s:o s:s s:s}", "tables", list, "missing_index_rule", HP_PG_MISSING_INDEX_RULE, "order", "seq_tup_read desc"));
}

static void hp__tables(hp_req_t *r)
{
    const char *values[] = {"500"};
    hp_db_query(r, hp_pg_stmt(HP_PG_STMT_debug_pg_tables), values, 1, hp__tables_on_db, NULL);
}

/* ---- GET /debug/pg/slow ------------------------------------------------------------------------- */

/*
 * Reads the last HP_PG_LOG_TAIL_BYTES of the log into the request pool. This
 * is a blocking pread on the admin thread's loop, which is acceptable: the
 * file is local, the read is bounded (a MiB from the page cache takes well
 * under a millisecond), and the admin loop serves no API traffic.
 * @return the bytes, starting at a whole line, or NULL base with errno set
 */
static h2o_iovec_t hp__log_tail(hp_req_t *r, const char *path, int *truncated)
{
    h2o_iovec_t buf = {NULL, 0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return buf;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno != 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return buf;
    }
    off_t from = st.st_size > HP_PG_LOG_TAIL_BYTES ? st.st_size - HP_PG_LOG_TAIL_BYTES : 0;
    size_t want = (size_t)(st.st_size - from), got = 0;
    char *data = h2o_mem_alloc_pool(&r->h2o->pool, want + 1);
    while (got < want) {
        ssize_t n = pread(fd, data + got, want - got, from + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the file shrank (it was truncated): parse what was read */
        got += (size_t)n;
    }
    close(fd);
    *truncated = from > 0;
    size_t skip = 0;
    if (from > 0) {
        /* The read began mid-line; the parser starts at the first whole line. */
        const char *nl = memchr(data, '\n', got);
        skip = nl != NULL ? (size_t)(nl - data) + 1 : got;
    }
    return h2o_iovec_init(data + skip, got - skip);
}

static json_t *hp__span_json(h2o_iovec_t s)
{
    return s.base != NULL ? hp_pg_text_json(s.base, s.len, HP_PG_QUERY_CHARS, NULL) : json_null();
}

static json_t *hp__slow_entry_json(const hp_pg_slow_entry_t *e)
{
    json_error_t jerr;
    json_t *plan = e->plan.base != NULL ? json_loadb(e->plan.base, e->plan.len, 0, &jerr) : NULL;
    /* Our name: the prepared statement's, when it is one of ours; otherwise the SQL's, logged or in the plan. */
    const char *name = NULL;
    int id = e->prepared.base != NULL ? hp_db_stmt_lookup(e->prepared.base, e->prepared.len) : -1;
    if (id >= 0)
        name = hp_db_stmt_name(id);
    else if (e->query.base != NULL)
        name = hp_pg_stmt_for_sql(e->query.base, e->query.len);
    else if (plan != NULL && json_is_string(json_object_get(plan, "Query Text")))
        name = hp_pg_stmt_for_sql(json_string_value(json_object_get(plan, "Query Text")),
                                  json_string_length(json_object_get(plan, "Query Text")));
    int cut = 0;
    json_t *query = e->query.base != NULL ? hp_pg_text_json(e->query.base, e->query.len, HP_PG_QUERY_CHARS, &cut) : json_null();
    return json_pack("{s:o s:I s:f s:s? s:o s:o s:o s:b s:o s:o s:o}", "at", hp__span_json(e->at), "pid", (json_int_t)e->pid,
                     "duration_ms", e->duration_ms, "name", name, "kind",
                     e->kind.base != NULL ? hp__span_json(e->kind) : json_string("plan"), "prepared_statement",
                     hp__span_json(e->prepared), "query", query, "query_truncated", cut, "parameters", hp__span_json(e->parameters),
                     "plan", plan != NULL ? plan : json_null(), "plan_summary", plan != NULL ? hp_plan_summary(plan) : json_null());
}

static void hp__slow(hp_req_t *r)
{
    int limit;
    if (hp_param_limit(r, 20, 100, &limit) != 0)
        return;
    const char *path = getenv("HOTPLATE_PG_LOG");
    if (path == NULL || path[0] == '\0') {
        hp_respond_error(
            r, HP_E_no_log,
            "HOTPLATE_PG_LOG is not set: point it at PostgreSQL's log file (deploy/stack.sh writes it to the stack's env "
            "file) to see slow statements here");
        return;
    }
    int truncated = 0;
    errno = 0;
    h2o_iovec_t text = hp__log_tail(r, path, &truncated);
    if (text.base == NULL) {
        hp_respond_error(r, HP_E_no_log,
                         hp_pool_printf(r, "cannot read HOTPLATE_PG_LOG (%.200s): %s", path, strerror(errno != 0 ? errno : EIO)));
        return;
    }
    hp_pg_slow_entry_t *entries = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*entries) * (size_t)limit);
    size_t n = hp_pg_slow_parse(text.base, text.len, entries, (size_t)limit);
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i)
        json_array_append_new(list, hp__slow_entry_json(&entries[i]));
    hp_respond_json(r, 200,
                    json_pack("{s:o s:s s:I s:b s:s}", "slow", list, "log", path, "bytes_read", (json_int_t)text.len,
                              "log_truncated", truncated, "order", "newest first"));
}

/* ---- routes ------------------------------------------------------------------------------------- */

const hp_route_t hp_pg_routes[] = {
    {"GET", "/debug/pg/statements", hp__statements, 0},
    {"POST", "/debug/pg/statements/reset", hp__statements_reset, HP_ROUTE_ADMIN_TOKEN},
    {"GET", "/debug/pg/tables", hp__tables, 0},
    {"GET", "/debug/pg/slow", hp__slow, 0},
};

const size_t hp_pg_num_routes = sizeof(hp_pg_routes) / sizeof(hp_pg_routes[0]);
