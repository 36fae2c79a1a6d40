/*
 * pg_health_collect: the SQL of PostgreSQL's health checks, their collection
 * on the admin thread, and GET /debug/pg/health (see pg_health_collect.h).
 *
 * What the checks read, and why it is safe to run on a production database:
 * pg_stat_activity, pg_stat_user_tables, pg_statio_user_tables,
 * pg_stat_user_indexes, pg_stat_database and the catalog (pg_index,
 * pg_class, pg_constraint). Nothing writes, and nothing opens a user relation:
 * sizes come from pg_class.relpages rather than pg_relation_size(), which
 * would take an AccessShareLock and queue behind an ACCESS EXCLUSIVE one (see
 * pg_health.c). pg_get_indexdef() opens its table too, so an index whose
 * table is locked ACCESS EXCLUSIVE right now (a schema change left open) is
 * listed without its definition rather than holding the whole reading up
 * until lock_timeout. Each query is one-off SQL on the admin thread's read
 * connection, so the connection's statement_timeout (--statement-timeout-ms)
 * and lock_timeout bound it, and the loop never waits for it. The SQL is
 * fixed text; the thresholds travel as parameters.
 */
#include "profiling/pg_health_collect.h"
#include "profiling/doctor.h"
#include "profiling/pg.h"
#include "runtime/db.h"
#include "runtime/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HP_PG_HEALTH_MAX_NOTES 4

/* $1 statement ms, $2 transaction ms, $3 idle-in-transaction ms: sessions over one of them, the oldest transaction first. */
static const char hp__sql_sessions[] = HP_PG_OWN_SQL
    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(host(a.client_addr), 'local'),"
    " coalesce(a.state, ''), coalesce(a.wait_event_type || ':' || a.wait_event, ''),"
    " (CASE WHEN a.state = 'active' THEN extract(epoch FROM now() - a.query_start) * 1000 END)::float8,"
    " (extract(epoch FROM now() - a.xact_start) * 1000)::float8,"
    " (CASE WHEN a.state LIKE 'idle in transaction%' THEN extract(epoch FROM now() - a.state_change) * 1000 END)::float8,"
    " left(a.query, 1000) "
    "FROM pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"
    " AND a.datname = current_database()"
    " AND (a.state = 'active' AND a.query_start < now() - $1::int * interval '1 millisecond'"
    " OR a.xact_start < now() - $2::int * interval '1 millisecond'"
    " OR a.state LIKE 'idle in transaction%' AND a.state_change < now() - $3::int * interval '1 millisecond') "
    "ORDER BY a.xact_start NULLS LAST, a.query_start LIMIT 8";

/* Client backends of the whole server (max_connections is the server's), by application_name. */
static const char hp__sql_connections[] =
    HP_PG_OWN_SQL "SELECT coalesce(application_name, ''), left(coalesce(string_agg(DISTINCT usename::text, ','), ''), 60),"
                  " left(coalesce(string_agg(DISTINCT coalesce(host(client_addr), 'local'), ','), ''), 90), count(*),"
                  " count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state = 'idle'),"
                  " count(*) FILTER (WHERE state LIKE 'idle in transaction%'), current_setting('max_connections')::int,"
                  " current_setting('superuser_reserved_connections')::int, sum(count(*)) OVER () "
                  "FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 4 DESC, 1 LIMIT 8";

/* Every index of the database's own schemas, with what decides whether it may go. */
static const char hp__sql_indexes[] =
    HP_PG_OWN_SQL "SELECT n.nspname, t.relname, i.relname, x.indisunique, x.indisprimary,"
                  " EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), x.indisvalid AND x.indisready,"
                  " x.indkey::text, x.indclass::text, x.indexprs IS NOT NULL OR x.indpred IS NOT NULL, am.amname,"
                  " coalesce(s.idx_scan, 0), i.relpages::int8 * current_setting('block_size')::int8,"
                  " CASE WHEN EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation' AND l.granted"
                  " AND l.mode = 'AccessExclusiveLock' AND l.relation IN (x.indrelid, x.indexrelid))"
                  " THEN '(not read: its table is locked ACCESS EXCLUSIVE)' ELSE left(pg_get_indexdef(x.indexrelid), 250) END,"
                  " EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype = 'f' AND k.conrelid = x.indrelid"
                  " AND (string_to_array(x.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] = k.conkey) "
                  "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                  " JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = i.relam"
                  " LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid "
                  "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
                  " AND n.nspname NOT LIKE 'pg_temp%' "
                  "ORDER BY n.nspname, t.relname, i.relname LIMIT 1000";

/*
 * The largest tables (by live or dead rows), with autovacuum's trigger points
 * from the server's settings (a table's own storage parameters are not read),
 * and the buffer cache's hits and reads summed over every user table.
 */
static const char hp__sql_tables[] = HP_PG_OWN_SQL
    "SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, s.seq_scan, s.seq_tup_read,"
    " coalesce(s.idx_scan, 0), c.relpages::int8 * current_setting('block_size')::int8,"
    " extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8,"
    " extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8,"
    " current_setting('autovacuum_vacuum_threshold')::float8"
    " + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0),"
    " current_setting('autovacuum_analyze_threshold')::float8"
    " + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0),"
    " sum(coalesce(io.heap_blks_hit, 0)) OVER (), sum(coalesce(io.heap_blks_read, 0)) OVER (),"
    " sum(coalesce(io.idx_blks_hit, 0)) OVER (), sum(coalesce(io.idx_blks_read, 0)) OVER (),"
    " (SELECT extract(epoch FROM now() - d.stats_reset)::float8 FROM pg_stat_database d WHERE d.datname = current_database()),"
    " coalesce(io.heap_blks_hit, 0), coalesce(io.heap_blks_read, 0), coalesce(io.idx_blks_hit, 0), coalesce(io.idx_blks_read, 0) "
    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid LEFT JOIN pg_statio_user_tables io ON io.relid = s.relid "
    "ORDER BY greatest(s.n_live_tup, s.n_dead_tup) DESC, s.schemaname, s.relname LIMIT 16";

/*
 * The statements of pg_stat_statements (an optional extension) in this
 * database, the most total time first; the reader keeps those that are not
 * hotplate's. Without the extension this fails, and the reading says so.
 */
static const char hp__sql_statements[] = HP_PG_OWN_SQL
    "SELECT left(s.query, 1000), s.calls, s.total_exec_time, s.mean_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read "
    "FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.toplevel "
    "ORDER BY s.total_exec_time DESC LIMIT 60";

/*
 * Whether a pg_stat_statements text is hotplate's: a statement of its lists,
 * the one-off SQL of the doctor and of this file (each starts with the
 * comment HP_PG_OWN_SQL, which pg_stat_statements keeps), or an EXPLAIN of
 * one of its statements (the doctor's, GET /debug/pg/explain's EXECUTE).
 */
static int hp__is_ours(const char *sql, size_t len)
{
    size_t mark = strlen(HP_PG_OWN_SQL);
    if (len >= mark && memcmp(sql, HP_PG_OWN_SQL, mark) == 0)
        return 1;
    if (len > 8 && strncasecmp(sql, "EXPLAIN ", 8) == 0) {
        const char *p = sql + 8, *end = sql + len;
        if (p != end && *p == '(') {
            const char *close = memchr(p, ')', (size_t)(end - p));
            p = close != NULL ? close + 1 : end;
        }
        while (p != end && (*p == ' ' || *p == '\n'))
            ++p;
        sql = p, len = (size_t)(end - p);
        if (len > 8 && strncasecmp(sql, "EXECUTE ", 8) == 0) {
            size_t n = strcspn(sql + 8, "( ");
            return hp_db_stmt_lookup(sql + 8, n < len - 8 ? n : len - 8) >= 0;
        }
    }
    return hp_pg_stmt_for_sql(sql, len) != NULL;
}

void hp_pg_health_limits(hp_pg_health_limits_t *lim)
{
#define HP__PG_LIMIT(name) lim->name = hp_doctor_threshold(HP_DOCTOR_TH_pg_##name)->value;
    HP_PG_HEALTH_LIMITS(HP__PG_LIMIT)
#undef HP__PG_LIMIT
}

/* ---- the collection: one query after the other ---------------------------------------------------- */

typedef struct st_hp_pg_health_job_t {
    hp_req_t *r;
    hp_pg_health_t *h;
    hp_pg_health_limits_t lim;
    hp_pg_health_cb cb;
    void *ud;
    int step, end; /* the parts read: step up to end (HP_PG_HEALTH__PARTS for all of them) */
    const char *notes[HP_PG_HEALTH_MAX_NOTES];
    size_t num_notes;
} hp_pg_health_job_t;

static void hp__next(hp_pg_health_job_t *job);

/* A result's cells as plain text for the pure readers; they point into res, which the caller clears after reading. */
static hp_pg_rows_t hp__rows(hp_req_t *r, const PGresult *res)
{
    hp_pg_rows_t rows = {PQntuples(res), PQnfields(res), NULL};
    size_t n = (size_t)rows.rows * (size_t)rows.cols;
    const char **cell = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*cell) * (n != 0 ? n : 1));
    for (int i = 0; i != rows.rows; ++i)
        for (int j = 0; j != rows.cols; ++j)
            cell[(size_t)i * (size_t)rows.cols + (size_t)j] = PQgetisnull(res, i, j) ? NULL : PQgetvalue(res, i, j);
    rows.cell = cell;
    return rows;
}

static const char *const hp__part_names[] = {"sessions (pg_stat_activity)", "connections (pg_stat_activity)",
                                             "indexes (pg_index, pg_stat_user_indexes)",
                                             "tables and the buffer cache (pg_stat_user_tables, pg_statio_user_tables)",
                                             "other applications' statements (pg_stat_statements, an optional extension)"};

static void hp__on_part(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_health_job_t *job = ud;
    int rc = -1;
    if (err == NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        hp_pg_rows_t rows = hp__rows(r, res);
        rc = hp_pg_health_read(job->h, (hp_pg_health_part_t)job->step, &rows, &job->lim, hp__is_ours);
    }
    if (rc != 0 && job->num_notes != HP_PG_HEALTH_MAX_NOTES) {
        const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *why = msg != NULL ? msg : err != NULL ? err : "unexpected columns";
        job->notes[job->num_notes++] = hp_pool_printf(
            r, "PostgreSQL health: the %s could not be read (%s), so %s", hp__part_names[job->step], why,
            job->step == HP_PG_HEALTH_STATEMENTS ? "other applications' statements are not named" : "their checks are off");
    }
    if (res != NULL)
        PQclear(res);
    ++job->step;
    hp__next(job);
}

/* The query of each step, in the order of hp__part_names; only the sessions' takes parameters, its limits in ms. */
static const char *const hp__part_sql[HP_PG_HEALTH__PARTS] = {hp__sql_sessions, hp__sql_connections, hp__sql_indexes,
                                                              hp__sql_tables, hp__sql_statements};

static void hp__next(hp_pg_health_job_t *job)
{
    if (job->step >= job->end) {
        job->cb(job->r, job->ud, job->h, job->notes, job->num_notes);
        return;
    }
    char a[16], b[16], c[16];
    const char *values[] = {a, b, c};
    int num_values = 0;
    if (job->step == 0) {
        snprintf(a, sizeof(a), "%.0f", job->lim.query_s * 1000);
        snprintf(b, sizeof(b), "%.0f", job->lim.xact_s * 1000);
        snprintf(c, sizeof(c), "%.0f", job->lim.idle_txn_s * 1000);
        num_values = 3;
    }
    hp_db_conn_query_sql(job->r, NULL, hp__part_sql[job->step], num_values != 0 ? values : NULL, num_values, hp__on_part, job);
}

static void hp__collect(hp_req_t *r, hp_pg_health_t *h, int first, int end, hp_pg_health_cb cb, void *ud)
{
    hp_pg_health_job_t *job = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->r = r, job->h = h, job->cb = cb, job->ud = ud;
    job->step = first, job->end = end;
    hp_pg_health_limits(&job->lim);
    hp__next(job);
}

void hp_pg_health_collect(hp_req_t *r, hp_pg_health_t *h, hp_pg_health_cb cb, void *ud)
{
    hp__collect(r, h, 0, HP_PG_HEALTH__PARTS, cb, ud);
}

void hp_pg_health_collect_part(hp_req_t *r, hp_pg_health_t *h, hp_pg_health_part_t part, hp_pg_health_cb cb, void *ud)
{
    hp__collect(r, h, (int)part, (int)part + 1, cb, ud);
}

/* ---- GET /debug/pg/health ------------------------------------------------------------------------ */

/*
 * The reading, and the doctor's findings on it: the doctor's evaluation of an
 * empty window whose end holds this reading, so only the health rules can
 * fire (the sequential-scan rule needs a window, and stays quiet here).
 */
static void hp__on_health(hp_req_t *r, void *ud, hp_pg_health_t *h, const char *const *notes, size_t num_notes)
{
    hp_doctor_snapshot_t *s = ud;
    s[1].health_ok = 1;
    hp_pg_health_limits_t lim;
    hp_pg_health_limits(&lim);
    json_t *doc = hp_pg_health_json(h, &lim);
    hp_doctor_finding_t *f = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*f) * HP_DOCTOR_MAX_FINDINGS);
    size_t n = hp_doctor_evaluate(&s[0], &s[1], f, HP_DOCTOR_MAX_FINDINGS);
    json_t *report = hp_doctor_json(&s[0], &s[1], f, n, NULL, 0);
    json_object_set(doc, "findings", json_object_get(report, "findings"));
    json_decref(report);
    json_t *jn = json_array(), *th = json_object();
    for (size_t i = 0; i != num_notes; ++i)
        json_array_append_new(jn, json_string(notes[i]));
    json_object_set_new(doc, "notes", jn);
    for (int i = 0; i != HP_DOCTOR_TH__COUNT; ++i) {
        const hp_doctor_threshold_t *t = hp_doctor_threshold((hp_doctor_th_t)i);
        if (strncmp(t->name, "pg_", 3) == 0)
            json_object_set_new(th, t->name, json_real(t->value));
    }
    json_object_set_new(doc, "thresholds", th);
    hp_respond_json(r, 200, doc);
}

static void hp__health(hp_req_t *r)
{
    /* Two snapshots of nothing but the health: big structs, so in the request's pool rather than on the stack. */
    hp_doctor_snapshot_t *s = h2o_mem_alloc_pool(&r->h2o->pool, 2 * sizeof(*s));
    memset(s, 0, 2 * sizeof(*s));
    s[1].at_s = 1;
    hp_pg_health_collect(r, &s[1].health, hp__on_health, s);
}

const hp_route_t hp_pg_health_routes[] = {
    {"GET", "/debug/pg/health", hp__health, 0},
};
const size_t hp_pg_health_num_routes = sizeof(hp_pg_health_routes) / sizeof(hp_pg_health_routes[0]);
