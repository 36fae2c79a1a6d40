/*
 * pg: what PostgreSQL knows about hotplate's statements, served on the admin
 * listener.
 *
 *   GET  /debug/pg/statements?limit=N     the top statements of pg_stat_statements by total execution time,
 *                                         each mapped to its hotplate statement name
 *   POST /debug/pg/statements/reset       pg_stat_statements_reset() (admin token)
 *   GET  /debug/pg/tables                 per-table scan counters and a missing-index signal
 *   GET  /debug/pg/explain?statement=NAME[&args=JSON array]
 *                                         EXPLAIN (ANALYZE, BUFFERS) of one named statement inside a
 *                                         transaction that is rolled back (admin token; pg_explain.c)
 *   GET  /debug/pg/slow?limit=N           recent slow statements and their auto_explain plans, from the
 *                                         tail of PostgreSQL's log (HOTPLATE_PG_LOG)
 *
 * Names tie these together. Every statement hotplate sends is prepared under
 * its name from the registered statement tables (runtime/db.h), so the
 * statistics, the plans and the log lines PostgreSQL keeps can all be mapped
 * back to that list. EXPLAIN only ever runs a statement of the list, so the
 * endpoint cannot be used to run arbitrary SQL. The pure pieces (the SQL
 * matcher, the log parser, the missing-index rule) are pg_parse.h's.
 */
#ifndef HP_PG_H
#define HP_PG_H

#include <stddef.h>

#include <jansson.h>

#include "base/router.h"
#include "runtime/http.h"

/** The most bytes of PostgreSQL's log that GET /debug/pg/slow reads: the file's last MiB. */
#define HP_PG_LOG_TAIL_BYTES (1024 * 1024)

/*
 * The comment that starts the one-off SQL of the admin thread (the doctor's
 * samplers, the health checks), so that pg_stat_statements, which keeps it,
 * tells hotplate's own monitoring from other applications' statements.
 */
#define HP_PG_OWN_SQL "/* hotplate */ "

/** Query texts are cut to this many characters in responses. */
#define HP_PG_QUERY_CHARS 500

/*
 * The admin endpoints' own prepared statements, X(name, kind, route, sample,
 * sql) as in services/statements.h. Statements that need pg_stat_statements
 * are not here: a statement that fails to prepare takes its connection down,
 * and a database without the extension must still serve the API, so pg.c
 * sends those as one-off SQL.
 */
#define HP_PG_STMT_LIST(X)                                                                                                         \
    /*                                                                                                                             \
     * per-table scan counters for GET /debug/pg/tables and the doctor; the                                                        \
     * size functions open the table, so a table locked ACCESS EXCLUSIVE                                                           \
     * right now (a schema change left open) is measured by pg_class.relpages                                                      \
     * instead, and its indexes as 0, rather than waiting on that lock                                                             \
     */                                                                                                                            \
    X(debug_pg_tables, HP_STMT_READ, -1, HP_ARGS("500"),                                                                           \
      "SELECT s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0), "                                      \
      "coalesce(s.idx_tup_fetch, 0), s.n_live_tup, s.n_dead_tup, "                                                                 \
      "CASE WHEN k.locked THEN c.relpages::int8 * current_setting('block_size')::int8 ELSE pg_table_size(s.relid) END, "           \
      "CASE WHEN k.locked THEN 0 ELSE pg_indexes_size(s.relid) END "                                                               \
      "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid, LATERAL (SELECT EXISTS (SELECT 1 FROM pg_locks l "           \
      "WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock' AND l.relation = s.relid) AS locked) k "     \
      "ORDER BY s.seq_tup_read DESC, s.schemaname, s.relname LIMIT $1::int")

typedef enum {
#define HP__PG_STMT_ID(name, kind, route, sample, sql) HP_PG_STMT_##name,
    HP_PG_STMT_LIST(HP__PG_STMT_ID)
#undef HP__PG_STMT_ID
        HP_PG_STMT__COUNT
} hp_pg_stmt_t;

/** Registers the statements above with the runtime (main.c, before threads start). */
void hp_pg_register_statements(void);

/** @return the db id of one of the statements above */
int hp_pg_stmt(hp_pg_stmt_t s);

/** @return the name of the registered statement whose SQL matches sql (pg_parse.h), or NULL */
const char *hp_pg_stmt_for_sql(const char *sql, size_t len);

/** Called with a document built for a request (owned by the callback). */
typedef void (*hp_pg_doc_cb)(hp_req_t *r, void *ud, json_t *doc);

/**
 * Builds the top-statements document of GET /debug/pg/statements (the first
 * `limit` rows) and hands it to cb; failures are answered and cb not called.
 */
void hp_pg_statements_doc(hp_req_t *r, int limit, hp_pg_doc_cb cb, void *ud);

/** The routes, for the admin route table (EXPLAIN's own are pg_explain.c's). */
extern const hp_route_t hp_pg_routes[];
extern const size_t hp_pg_num_routes;
extern const hp_route_t hp_pg_explain_routes[];
extern const size_t hp_pg_explain_num_routes;

#endif
