/*
 * doctor_collect: GET /debug/doctor (see doctor.h), the collector on the
 * admin thread.
 *
 * One request is one observation, step by step, never blocking the loop:
 *   1. the start snapshot: the pg_stat_statements part of PostgreSQL's
 *      health (pg_health_collect.c), pg_stat_user_tables (the prepared
 *      debug_pg_tables statement) and the merged probes (hp_doctor_sample);
 *   2. the window: a 100 ms timer; at each tick one pg_stat_activity sample
 *      (unless the previous one is still out) and a reading of the heap;
 *   3. the end snapshot: the probes and pg_stat_user_tables again, and a
 *      reading of PostgreSQL's health (pg_health_collect.c);
 *   4. EXPLAIN (FORMAT JSON) of every read that ran in the window, the
 *      costliest first, with the sample arguments of GET /debug/pg/explain
 *      (without ANALYZE it costs a planning each, not an execution); for a plan
 *      that scans a table sequentially, the index it asks for is created as a
 *      hypothetical index (hypopg, when the extension exists in the database)
 *      and the statement explained again, then the hypothetical index is
 *      dropped (hypopg_reset);
 *   5. hp_doctor_evaluate(), and the answer in JSON or Markdown.
 *
 * Over the same window the doctor takes a CPU profile and a heap profile of
 * its own (gperftools and jemalloc, through hp_prof_cpu_collect and
 * hp_prof_heap_collect in profiling/prof.c): the hottest functions become the
 * evidence and the fix of a CPU hot spot, the top allocation site those of a
 * memory growth. The answer waits for their conversions (the server's
 * pprof-encode child, a fraction of a second after the window) too.
 *
 * Everything the job needs lives in the request's pool, and the pool's
 * disposal unlinks the timer, so a client that goes away ends the job: the
 * database callbacks of a departed request never run (common/runtime/http.h).
 * EXPLAIN here is without ANALYZE (nothing is executed) and on the admin
 * thread's read connection. A part that fails (no pg_stat_activity rights, a
 * statement without sample arguments) leaves a note in the report instead of
 * failing the request: a partial diagnosis is still a diagnosis.
 */
#include "profiling/doctor.h"
#include "base/flags.h"
#include "base/router.h"
#include "runtime/db.h"
#include "runtime/http.h"
#include "runtime/params.h"
#include "profiling/heap.h"
#include "profiling/merge.h"
#include "profiling/pg.h"
#include "profiling/pg_health_collect.h"
#include "profiling/pg_parse.h"
#include "profiling/prof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_DOCTOR_MIN_SECONDS 1
#define HP_DOCTOR_MAX_SECONDS 60
#define HP_DOCTOR_DEFAULT_SECONDS 10
#define HP_DOCTOR_TICK_MS 100
#define HP_DOCTOR_MAX_NOTES 12

/*
 * Samples pg_stat_activity: our server's backends that have waited for a lock
 * for $1 ms or more, or sit idle in a transaction older than that.
 */
static const char hp__sql_activity[] = HP_PG_OWN_SQL
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock' AND now() - query_start >= $1::int * interval '1 millisecond'), "
    "count(*) FILTER (WHERE state = 'idle in transaction' AND now() - xact_start >= $1::int * interval '1 millisecond'), "
    "coalesce(max(extract(epoch FROM now() - xact_start) * 1000), 0)::float8, "
    "coalesce(string_agg(coalesce(wait_event_type || ':' || wait_event, 'CPU'), ',') FILTER (WHERE state = 'active'), '') "
    "FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'hotplate' "
    "AND pid <> pg_backend_pid()";
/*
 * The sessions at the root of our backends' lock waits: from each backend of
 * ours that has waited $1 ms or more, up through pg_blocking_pids to the
 * sessions that wait for nobody (a chain is followed 8 deep at most). For
 * each: how it looks in pg_stat_activity, the tables it holds locks on
 * that conflict with a row lock (anything stronger than a plain SELECT's),
 * and the strongest mode it holds on them: ACCESS EXCLUSIVE is a schema
 * change or a LOCK TABLE, which blocks every statement on the table, reads
 * too, and calls for another fix than row locks do.
 */
static const char hp__sql_blockers[] = HP_PG_OWN_SQL
    "WITH RECURSIVE chain(pid, depth, waiter) AS ("
    " SELECT pid, 0, pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'hotplate'"
    " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND now() - query_start >= $1::int * interval '1 millisecond'"
    " UNION SELECT b.pid, c.depth + 1, c.waiter FROM chain c, unnest(pg_blocking_pids(c.pid)) AS b(pid) WHERE c.depth < 8) "
    "SELECT a.pid, (a.application_name = 'hotplate')::int, max(c.depth), count(DISTINCT c.waiter), a.application_name,"
    " coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''),"
    " coalesce(extract(epoch FROM now() - a.xact_start) * 1000, 0)::float8,"
    " (CASE WHEN a.state LIKE 'idle in transaction%' THEN extract(epoch FROM now() - a.state_change) * 1000 ELSE -1 END)::float8,"
    " left(a.query, 1000),"
    " coalesce((SELECT string_agg(DISTINCT k.relname, ',') FROM pg_locks l JOIN pg_class k ON k.oid = l.relation"
    " WHERE l.pid = a.pid AND l.granted AND k.relkind IN ('r', 'p') AND l.mode <> 'AccessShareLock'), ''),"
    " coalesce((SELECT l.mode FROM pg_locks l JOIN pg_class k ON k.oid = l.relation WHERE l.pid = a.pid AND l.granted"
    " AND k.relkind IN ('r', 'p') AND l.mode <> 'AccessShareLock' ORDER BY array_position(ARRAY['AccessExclusiveLock',"
    " 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock', 'ShareUpdateExclusiveLock', 'RowExclusiveLock', 'RowShareLock'],"
    " l.mode::text) LIMIT 1), '') "
    "FROM chain c JOIN pg_stat_activity a ON a.pid = c.pid "
    "WHERE c.depth > 0 AND cardinality(pg_blocking_pids(a.pid)) = 0 "
    "GROUP BY a.pid, a.application_name, a.client_addr, a.state, a.xact_start, a.state_change, a.query "
    "ORDER BY 4 DESC, 8 DESC LIMIT 4";
static const char hp__sql_hypopg[] = HP_PG_OWN_SQL "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'";
static const char hp__sql_hypo_create[] = HP_PG_OWN_SQL "SELECT indexrelid FROM hypopg_create_index($1)";
static const char hp__sql_hypo_reset[] = HP_PG_OWN_SQL "SELECT hypopg_reset()";
/* An index's leading column, as a plan's conditions name it. */
static const char hp__sql_index_lead[] = HP_PG_OWN_SQL "SELECT pg_get_indexdef($1::regclass, 1, true)";

typedef struct st_hp_doctor_job_t {
    hp_req_t *r;
    h2o_timeout_entry_t tick;
    int seconds, markdown;
    double start_s;
    int heap_every; /* a heap reading every this many ticks, so that a window of any length fits HP_DOCTOR_MAX_HEAP */
    int ticks;
    size_t heap_n;
    double heap_t[HP_DOCTOR_MAX_HEAP], heap_v[HP_DOCTOR_MAX_HEAP], heap_q[HP_DOCTOR_MAX_HEAP];
    int sampling, done, hypopg;
    size_t num_waits; /* the window's wait events so far (hp__count_waits), copied into the end snapshot */
    hp_doctor_wait_t waits[HP_DOCTOR_MAX_WAITS];
    int wait_samples;
    size_t num_blockers; /* the window's blockers so far (hp__on_blockers), copied into the end snapshot */
    hp_doctor_blocker_t blockers[HP_DOCTOR_MAX_BLOCKERS];
    hp_doctor_snapshot_t before, after;
    /* EXPLAIN: the candidates' statement ids, and where the walk is */
    int cand[HP_DOCTOR_MAX_PLANS], num_cand, cur;
    const char **values; /* the current candidate's arguments as text (NULL for null) */
    int num_values;
    const char *notes[HP_DOCTOR_MAX_NOTES];
    size_t num_notes;
    /* The CPU profile: in progress, and the answer waiting for it; its result, copied into `after` at the end. */
    int prof_pending, respond_waiting;
    hp_doctor_snapshot_t *profile;
} hp_doctor_job_t;

/* The statement the EXPLAIN walk is at. */
static const hp_db_stmt_def_t *hp__cand(const hp_doctor_job_t *job)
{
    size_t n;
    return &hp_db_stmts(&n)[job->cand[job->cur]];
}

static h2o_timeout_t hp__doctor_tick;
static h2o_evloop_t *hp__doctor_tick_loop;

static void hp__note(hp_doctor_job_t *job, const char *fmt, const char *arg)
{
    if (job->num_notes != HP_DOCTOR_MAX_NOTES)
        job->notes[job->num_notes++] = hp_pool_printf(job->r, fmt, arg != NULL ? arg : "");
}

/* The reason a one-off query failed, for a note: the server's message when there is one. */
static const char *hp__why(hp_req_t *r, PGresult *res, const char *err)
{
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return msg != NULL ? hp_pool_printf(r, "%s", msg) : err;
}

static void hp__job_dispose(void *p)
{
    hp_doctor_job_t *job = p;
    if (h2o_timeout_is_linked(&job->tick))
        h2o_timeout_unlink(&job->tick);
}

/* Everything of a snapshot that the server itself knows: the merged probes, the statements' attributes and the flags. */
void hp_doctor_sample(hp_doctor_snapshot_t *s)
{
    s->at_s = (double)hp_now_ns() / 1e9;
    hp_heap_stats_t hs;
    s->heap_bytes = hp_heap_read(&hs) == 0 ? (double)hs.allocated : -1;
    hp_stats_t *m = hp_stats_merge_new();
    if (m == NULL)
        return;
    s->threads = m->num_workers;
    for (size_t i = 0; i != m->num_routes && s->num_routes != HP_DOCTOR_MAX_ROUTES; ++i) {
        hp_doctor_route_t *d = &s->routes[s->num_routes++];
        d->method = m->routes[i].method;
        d->pattern = m->routes[i].pattern;
        d->count = m->route[i].count;
        memcpy(d->by_class, m->route[i].by_class, sizeof(d->by_class));
        memcpy(d->stage_ns, m->route[i].stage_ns, sizeof(d->stage_ns));
        d->latency_ns = m->route[i].latency.total.sum_ns;
    }
    size_t num_defs;
    const hp_db_stmt_def_t *defs = hp_db_stmts(&num_defs);
    for (size_t i = 0; i != m->num_stmts && s->num_stmts != HP_DOCTOR_MAX_STMTS; ++i) {
        hp_doctor_stmt_t *d = &s->stmts[s->num_stmts++];
        d->name = defs[i].name;
        d->is_read = defs[i].kind == HP_STMT_READ;
        /* The list names its route by its index in the API table, which is the workers' table the snapshot's routes are. */
        d->route = defs[i].route >= 0 && (size_t)defs[i].route < s->num_routes ? defs[i].route : -1;
        d->count = m->stmt[i].count;
        d->errors = m->stmt[i].errors;
        d->rows = m->stmt[i].rows;
        d->time_ns = m->stmt[i].latency.total.sum_ns;
    }
    hp_stats_scalars_of(m, &s->stats);
    for (int id = 0; id != HP_FLAG__COUNT; ++id)
        s->flags[id] = hp_flag_get((hp_flag_id_t)id);
    free(m);
}

static void hp__read_tables(hp_doctor_snapshot_t *s, PGresult *res)
{
    s->tables_ok = 1;
    for (int i = 0, n = PQntuples(res); i != n && s->num_tables != HP_DOCTOR_MAX_TABLES; ++i) {
        if (strcmp(PQgetvalue(res, i, 0), "public") != 0)
            continue;
        hp_doctor_table_t *t = &s->tables[s->num_tables++];
        snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(res, i, 1));
        t->seq_scan = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        t->seq_tup_read = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        t->idx_scan = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        t->idx_tup_fetch = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        t->n_live_tup = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    }
}

/* ---- the end: evaluate and answer ------------------------------------------------------------- */

static void hp__respond(hp_doctor_job_t *job)
{
    hp_req_t *r = job->r;
    if (job->prof_pending) {
        job->respond_waiting = 1; /* hp__on_profile answers */
        return;
    }
    if (job->profile != NULL) {
        job->after.profile_ok = job->profile->profile_ok;
        job->after.profile_samples = job->profile->profile_samples;
        job->after.num_hot = job->profile->num_hot;
        memcpy(job->after.hot, job->profile->hot, sizeof(job->after.hot));
        job->after.num_hp_hot = job->profile->num_hp_hot;
        memcpy(job->after.hp_hot, job->profile->hp_hot, sizeof(job->after.hp_hot));
        job->after.heap_profile_ok = job->profile->heap_profile_ok;
        job->after.heap_profile_bytes = job->profile->heap_profile_bytes;
        job->after.num_heap_hot = job->profile->num_heap_hot;
        memcpy(job->after.heap_hot, job->profile->heap_hot, sizeof(job->after.heap_hot));
    }
    hp_doctor_finding_t *f = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*f) * HP_DOCTOR_MAX_FINDINGS);
    if (job->before.heap_bytes < 0)
        hp__note(job,
                 "no heap figures: this build has no jemalloc statistics (a sanitizer build), so memory growth is not judged%s",
                 NULL);
    size_t n = hp_doctor_evaluate(&job->before, &job->after, f, HP_DOCTOR_MAX_FINDINGS);
    json_t *doc = hp_doctor_json(&job->before, &job->after, f, n, job->notes, job->num_notes);
    if (!job->markdown) {
        hp_respond_json(r, 200, doc);
        return;
    }
    char *md = hp_doctor_markdown(doc);
    json_decref(doc);
    if (md == NULL) {
        hp_respond_error(r, HP_E_out_of_memory, "cannot render the report");
        return;
    }
    h2o_iovec_t body = h2o_strdup(&r->h2o->pool, md, SIZE_MAX);
    free(md);
    hp_add_header(r, "content-type", "text/markdown; charset=utf-8");
    hp_respond_raw(r, 200, body);
}

/* ---- step 4: EXPLAIN of the top reads ---------------------------------------------------------- */

static void hp__explain_next(hp_doctor_job_t *job);
static void hp__on_index_lead(hp_req_t *r, void *ud, PGresult *res, const char *err);
static void hp__check_index(hp_req_t *r, hp_doctor_job_t *job);

static hp_doctor_plan_t *hp__cur_plan(hp_doctor_job_t *job)
{
    return &job->after.plans[job->after.num_plans - 1];
}

/* The current candidate is done with (res, its last result, cleared when there is one): on to the next. */
static void hp__explain_done(hp_doctor_job_t *job, PGresult *res)
{
    if (res != NULL)
        PQclear(res);
    ++job->cur;
    hp__explain_next(job);
}

static void hp__on_hypo_reset(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err != NULL)
        hp__note(job, "hypopg_reset() failed: %s", hp__why(r, res, err));
    hp__explain_done(job, res);
}

static void hp__on_hypo_explained(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    hp_doctor_plan_t *p = hp__cur_plan(job);
    if (err == NULL && PQntuples(res) == 1) {
        json_error_t jerr;
        json_t *doc = json_loadb(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, &jerr);
        hp_plan_read_t hypo;
        if (doc != NULL && hp_plan_read(doc, &hypo) == 0)
            p->hypo_cost = hypo.cost;
        json_decref(doc);
    } else {
        snprintf(p->hypo_note, sizeof(p->hypo_note), "EXPLAIN with the hypothetical index failed: %s", hp__why(r, res, err));
    }
    if (res != NULL)
        PQclear(res);
    hp_db_conn_query_sql(r, NULL, hp__sql_hypo_reset, NULL, 0, hp__on_hypo_reset, job);
}

static const char *hp__explain_sql(hp_doctor_job_t *job)
{
    return hp_pool_printf(job->r, "EXPLAIN (FORMAT JSON) %s", hp__cand(job)->sql);
}

static void hp__on_hypo_created(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err != NULL) {
        snprintf(hp__cur_plan(job)->hypo_note, sizeof(hp__cur_plan(job)->hypo_note), "hypopg_create_index failed: %s",
                 hp__why(r, res, err));
        hp__explain_done(job, res);
        return;
    }
    PQclear(res);
    hp_db_conn_query_sql(r, NULL, hp__explain_sql(job), job->values, job->num_values, hp__on_hypo_explained, job);
}

static void hp__on_explained(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    const char *name = hp__cand(job)->name;
    json_t *doc = NULL;
    if (err == NULL && PQntuples(res) == 1) {
        json_error_t jerr;
        doc = json_loadb(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, &jerr);
    }
    hp_doctor_plan_t *p = &job->after.plans[job->after.num_plans];
    memset(p, 0, sizeof(*p));
    p->hypo_cost = -1;
    snprintf(p->stmt, sizeof(p->stmt), "%s", name);
    if (doc == NULL || hp_plan_read(doc, &p->plan) != 0) {
        hp__note(job, "EXPLAIN of %s failed", name);
        json_decref(doc);
        hp__explain_done(job, res);
        return;
    }
    json_decref(doc);
    PQclear(res);
    ++job->after.num_plans;
    if (p->plan.seq_rel[0] == '\0' && p->plan.idx_name[0] != '\0') {
        /* An index scan: a full one when its condition misses the index's leading column, which only the catalog knows. */
        const char *values[] = {p->plan.idx_name};
        hp_db_conn_query_sql(r, NULL, hp__sql_index_lead, values, 1, hp__on_index_lead, job);
        return;
    }
    hp__check_index(r, job);
}

static void hp__on_index_lead(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err == NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        hp_plan_full_index(&hp__cur_plan(job)->plan, PQgetvalue(res, 0, 0));
    else
        hp__note(job, "the leading column of an index scan's index could not be read: %s", hp__why(r, res, err));
    if (res != NULL)
        PQclear(res);
    hp__check_index(r, job);
}

/* The index a plan asks for (if any), created as a hypothetical index and the statement explained again; then the next one. */
static void hp__check_index(hp_req_t *r, hp_doctor_job_t *job)
{
    hp_doctor_plan_t *p = hp__cur_plan(job);
    if (p->plan.index_sql[0] == '\0') {
        hp__explain_done(job, NULL);
        return;
    }
    if (!job->hypopg) {
        snprintf(p->hypo_note, sizeof(p->hypo_note),
                 "hypopg is not installed in this database (Debian: postgresql-15-hypopg, then CREATE EXTENSION hypopg)");
        hp__explain_done(job, NULL);
        return;
    }
    /* hypopg takes a plain CREATE INDEX: the CONCURRENTLY of the advice is how to build it, not what it is. */
    static const char conc[] = "CREATE INDEX CONCURRENTLY ";
    const char *ddl = strncmp(p->plan.index_sql, conc, sizeof(conc) - 1) == 0
                          ? hp_pool_printf(r, "CREATE INDEX %s", p->plan.index_sql + sizeof(conc) - 1)
                          : p->plan.index_sql;
    const char *values[] = {ddl};
    hp_db_conn_query_sql(r, NULL, hp__sql_hypo_create, values, 1, hp__on_hypo_created, job);
}

static void hp__on_args(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err != NULL || PQntuples(res) != 1) {
        hp__note(job, "the sample arguments of %s failed", hp__cand(job)->name);
        hp__explain_done(job, res);
        return;
    }
    res = hp_db_keep(r, res); /* the values point into it until the EXPLAINs are done */
    job->values = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*job->values) * (size_t)(job->num_values + 1));
    for (int i = 0; i != job->num_values; ++i)
        job->values[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    hp_db_conn_query_sql(r, NULL, hp__explain_sql(job), job->values, job->num_values, hp__on_explained, job);
}

/*
 * The next candidate: its sample arguments are evaluated first (they are
 * subqueries over the seeded data), then the statement's own SQL is explained
 * with them as parameters, which plans it as its executions are planned.
 */
static void hp__explain_next(hp_doctor_job_t *job)
{
    hp_req_t *r = job->r;
    for (; job->cur < job->num_cand && job->after.num_plans < HP_DOCTOR_MAX_PLANS; ++job->cur) {
        const hp_db_stmt_def_t *def = hp__cand(job);
        int params = hp_pg_num_params(def->sql);
        const char *const *args = def->sample_args;
        int n = hp_db_stmt_num_args(def);
        if (n != params) {
            hp__note(job, "%s has no sample arguments in its statement list: not explained", def->name);
            continue;
        }
        job->num_values = n;
        if (n == 0) {
            job->values = NULL;
            hp_db_conn_query_sql(r, NULL, hp__explain_sql(job), NULL, 0, hp__on_explained, job);
            return;
        }
        size_t len = 16;
        for (int i = 0; i != n; ++i)
            len += strlen(args[i]) + 16;
        char *sql = h2o_mem_alloc_pool(&r->h2o->pool, len), *o = sql;
        o += sprintf(o, "SELECT ");
        for (int i = 0; i != n; ++i)
            o += sprintf(o, "%s(%s)::text", i != 0 ? ", " : "", args[i]);
        hp_db_conn_query_sql(r, NULL, sql, NULL, 0, hp__on_args, job);
        return;
    }
    hp__respond(job);
}

/* Every read that ran in the window (up to HP_DOCTOR_MAX_PLANS), the costliest first. */
static void hp__pick_candidates(hp_doctor_job_t *job)
{
    const hp_doctor_snapshot_t *a = &job->before, *b = &job->after;
    double t[HP_DOCTOR_MAX_STMTS];
    int order[HP_DOCTOR_MAX_STMTS], n = 0;
    for (size_t i = 0; i != b->num_stmts; ++i) {
        t[i] =
            i < a->num_stmts && b->stmts[i].time_ns > a->stmts[i].time_ns ? (double)(b->stmts[i].time_ns - a->stmts[i].time_ns) : 0;
        /* The admin endpoints' own statements (pg.h) read PostgreSQL's statistics, not the application's data. */
        if (!b->stmts[i].is_read || t[i] <= 0 || (int)i == hp_pg_stmt(HP_PG_STMT_debug_pg_tables))
            continue;
        int k = n++;
        while (k > 0 && t[order[k - 1]] < t[i])
            order[k] = order[k - 1], --k;
        order[k] = (int)i;
    }
    for (int k = 0; k != n && job->num_cand != HP_DOCTOR_MAX_PLANS; ++k)
        job->cand[job->num_cand++] = order[k];
}

/* ---- step 3: the end snapshot ------------------------------------------------------------------ */

static void hp__on_hypopg(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    (void)r;
    job->hypopg = err == NULL && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    if (res != NULL)
        PQclear(res);
    hp__pick_candidates(job);
    hp__explain_next(job);
}

/* PostgreSQL's health at the end of the window (pg_health_collect.c), then the EXPLAIN walk. */
static void hp__on_health(hp_req_t *r, void *ud, hp_pg_health_t *h, const char *const *notes, size_t num_notes)
{
    hp_doctor_job_t *job = ud;
    (void)h;
    job->after.health_ok = 1;
    for (size_t i = 0; i != num_notes; ++i)
        hp__note(job, "%s", notes[i]);
    hp_db_conn_query_sql(r, NULL, hp__sql_hypopg, NULL, 0, hp__on_hypopg, job);
}

static void hp__on_end_tables(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err != NULL) {
        hp__note(job, "pg_stat_user_tables could not be read at the end (%s): the missing-index rule is off", hp__why(r, res, err));
        if (res != NULL)
            PQclear(res);
    } else {
        hp__read_tables(&job->after, res);
        PQclear(res);
    }
    hp_pgha_snapshot(&job->after.ha); /* a copy of what the HA watcher saw last: no query */
    hp_pg_health_collect(r, &job->after.health, hp__on_health, job);
}

/* The most waited on first. */
static int hp__wait_cmp(const void *x, const void *y)
{
    const hp_doctor_wait_t *a = x, *b = y;
    return (a->samples < b->samples) - (a->samples > b->samples);
}

/* The most seen first: the lock rule names the first one. */
static int hp__blocker_cmp(const void *x, const void *y)
{
    const hp_doctor_blocker_t *a = x, *b = y;
    return (a->samples < b->samples) - (a->samples > b->samples);
}

static void hp__finish_window(hp_doctor_job_t *job)
{
    job->done = 1;
    int samples = job->after.activity_samples, lock = job->after.activity_lock_samples, idle = job->after.activity_idle_txn_samples;
    double max_xact = job->after.activity_max_xact_ms;
    memset(&job->after, 0, sizeof(job->after));
    hp_doctor_sample(&job->after);
    job->after.heap_n = job->heap_n;
    memcpy(job->after.heap_t, job->heap_t, sizeof(job->heap_t[0]) * job->heap_n);
    memcpy(job->after.heap_v, job->heap_v, sizeof(job->heap_v[0]) * job->heap_n);
    memcpy(job->after.heap_q, job->heap_q, sizeof(job->heap_q[0]) * job->heap_n);
    job->after.activity_samples = samples, job->after.activity_lock_samples = lock;
    job->after.activity_idle_txn_samples = idle, job->after.activity_max_xact_ms = max_xact;
    job->after.num_waits = job->num_waits, job->after.wait_samples = job->wait_samples;
    memcpy(job->after.waits, job->waits, sizeof(job->waits[0]) * job->num_waits);
    qsort(job->after.waits, job->after.num_waits, sizeof(job->after.waits[0]), hp__wait_cmp);
    job->after.num_blockers = job->num_blockers;
    memcpy(job->after.blockers, job->blockers, sizeof(job->blockers[0]) * job->num_blockers);
    qsort(job->after.blockers, job->after.num_blockers, sizeof(job->after.blockers[0]), hp__blocker_cmp);
    if (samples == 0)
        hp__note(job, "pg_stat_activity gave no sample in the window: the lock-wait rule is off%s", NULL);
    const char *values[] = {"500"};
    hp_db_query(job->r, hp_pg_stmt(HP_PG_STMT_debug_pg_tables), values, 1, hp__on_end_tables, job);
}

/* ---- step 2: the window -------------------------------------------------------------------------- */

/* The end of one tick's sample: the window may end now. */
static void hp__sample_done(hp_doctor_job_t *job)
{
    job->sampling = 0;
    if (job->done == 2)
        hp__finish_window(job);
}

static void hp__copy_text(char *dst, size_t size, const PGresult *res, int row, int col)
{
    snprintf(dst, size, "%s", PQgetvalue(res, row, col));
}

/* One tick's blockers, merged into the window's by pid. */
static void hp__on_blockers(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err == NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 12) {
        for (int row = 0; row != PQntuples(res); ++row) {
            int pid = (int)strtol(PQgetvalue(res, row, 0), NULL, 10);
            size_t i = 0;
            while (i != job->num_blockers && job->blockers[i].pid != pid)
                ++i;
            if (i == job->num_blockers) {
                if (i == HP_DOCTOR_MAX_BLOCKERS)
                    continue;
                ++job->num_blockers;
                memset(&job->blockers[i], 0, sizeof(job->blockers[i]));
            }
            hp_doctor_blocker_t *b = &job->blockers[i];
            int depth = (int)strtol(PQgetvalue(res, row, 2), NULL, 10), waiters = (int)strtol(PQgetvalue(res, row, 3), NULL, 10);
            b->pid = pid;
            b->own = strtol(PQgetvalue(res, row, 1), NULL, 10) != 0;
            b->depth = depth > b->depth ? depth : b->depth;
            b->waiters = waiters > b->waiters ? waiters : b->waiters;
            ++b->samples;
            hp__copy_text(b->app, sizeof(b->app), res, row, 4);
            hp__copy_text(b->client, sizeof(b->client), res, row, 5);
            hp__copy_text(b->state, sizeof(b->state), res, row, 6);
            b->xact_ms = strtod(PQgetvalue(res, row, 7), NULL);
            b->idle_ms = strtod(PQgetvalue(res, row, 8), NULL);
            hp_pg_query_shape(PQgetvalue(res, row, 9), (size_t)PQgetlength(res, row, 9), b->query, sizeof(b->query));
            hp__copy_text(b->relations, sizeof(b->relations), res, row, 10);
            hp__copy_text(b->lock_mode, sizeof(b->lock_mode), res, row, 11);
        }
    } else if (job->num_notes == 0 || strncmp(job->notes[job->num_notes - 1], "lock blockers", 13) != 0) {
        hp__note(job, "lock blockers could not be read: %s", hp__why(r, res, err));
    }
    if (res != NULL)
        PQclear(res);
    hp__sample_done(job);
}

/* One sample's wait events ("CPU,IO:DataFileRead,CPU"): a count per event, merged into the window's. */
static void hp__count_waits(hp_doctor_job_t *job, const char *list)
{
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        size_t i = 0;
        while (i != job->num_waits && (strlen(job->waits[i].event) != len || memcmp(job->waits[i].event, p, len) != 0))
            ++i;
        if (i == job->num_waits && i != HP_DOCTOR_MAX_WAITS && len < sizeof(job->waits[i].event)) {
            memcpy(job->waits[i].event, p, len);
            job->waits[i].event[len] = '\0';
            job->waits[i].samples = 0;
            ++job->num_waits;
        }
        if (i != job->num_waits)
            ++job->waits[i].samples;
        ++job->wait_samples; /* an event past the table's room still counts in the total */
        p += len + (p[len] == ',');
    }
}

static void hp__on_activity(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    int waiting = 0;
    if (err == NULL && PQntuples(res) == 1) {
        hp_doctor_snapshot_t *s = &job->after;
        ++s->activity_samples;
        waiting = strtol(PQgetvalue(res, 0, 0), NULL, 10) > 0;
        s->activity_lock_samples += waiting;
        s->activity_idle_txn_samples += strtol(PQgetvalue(res, 0, 1), NULL, 10) > 0;
        hp__count_waits(job, PQgetvalue(res, 0, 3));
        double xact = strtod(PQgetvalue(res, 0, 2), NULL);
        if (xact > s->activity_max_xact_ms)
            s->activity_max_xact_ms = xact;
    } else if (job->num_notes == 0 || strncmp(job->notes[job->num_notes - 1], "pg_stat_activity", 16) != 0) {
        hp__note(job, "pg_stat_activity sample failed: %s", hp__why(r, res, err));
    }
    if (res != NULL)
        PQclear(res);
    if (waiting) {
        /* Who holds what our backends wait for: asked only in the ticks where one waits, so a quiet window costs nothing. */
        const char *values[] = {hp_pool_printf(job->r, "%d", (int)hp_doctor_threshold(HP_DOCTOR_TH_lock_min_ms)->value)};
        hp_db_conn_query_sql(job->r, NULL, hp__sql_blockers, values, 1, hp__on_blockers, job);
        return;
    }
    hp__sample_done(job);
}

/*
 * One reading of the heap, for the fit of its trend (doctor_rules.c), with
 * the requests answered by then: whether the growth levels off is judged per
 * request, so that a load that slows down in the window (a busy machine) is
 * not taken for a heap that stopped growing.
 */
static void hp__heap_reading(hp_doctor_job_t *job, double elapsed)
{
    double v = hp_heap_allocated_trend();
    if (v >= 0 && job->ticks++ % job->heap_every == 0 && job->heap_n != HP_DOCTOR_MAX_HEAP) {
        job->heap_t[job->heap_n] = elapsed;
        job->heap_q[job->heap_n] = (double)hp_stats_requests_answered();
        job->heap_v[job->heap_n++] = v;
    }
}

static void hp__on_tick(h2o_timeout_entry_t *entry)
{
    hp_doctor_job_t *job = H2O_STRUCT_FROM_MEMBER(hp_doctor_job_t, tick, entry);
    double elapsed = (double)hp_now_ns() / 1e9 - job->start_s;
    hp__heap_reading(job, elapsed < job->seconds ? elapsed : job->seconds);
    if (elapsed >= job->seconds) {
        /* The last sample in flight finishes first, so the window's samples all count. */
        if (job->sampling)
            job->done = 2;
        else
            hp__finish_window(job);
        return;
    }
    if (!job->sampling) {
        job->sampling = 1;
        const char *values[] = {hp_pool_printf(job->r, "%d", (int)hp_doctor_threshold(HP_DOCTOR_TH_lock_min_ms)->value)};
        hp_db_conn_query_sql(job->r, NULL, hp__sql_activity, values, 1, hp__on_activity, job);
    }
    h2o_timeout_link(job->r->thr->loop, &hp__doctor_tick, &job->tick);
}

/* ---- the CPU profile of the window --------------------------------------------------------------- */

static hp_doctor_snapshot_t *hp__profile_of(hp_doctor_job_t *job)
{
    if (job->profile == NULL) {
        job->profile = h2o_mem_alloc_pool(&job->r->h2o->pool, sizeof(*job->profile));
        memset(job->profile, 0, sizeof(*job->profile));
    }
    return job->profile;
}

/*
 * One of the window's profiles arrived: read reads it into the job's profile
 * snapshot, or the note names what failed. The response waits for the last.
 */
static void hp__profile_done(hp_req_t *r, hp_doctor_job_t *job, const char *what, const char *folded, size_t len, const char *err,
                             void (*read)(const char *, size_t, hp_doctor_snapshot_t *))
{
    if (err != NULL)
        hp__note(job, "%s", hp_pool_printf(r, "the %s profile failed: %s", what, err));
    else
        read(folded, len, hp__profile_of(job));
    if (--job->prof_pending == 0 && job->respond_waiting)
        hp__respond(job);
}

static void hp__on_cpu_profile(hp_req_t *r, void *ud, const char *folded, size_t len, const char *err)
{
    hp__profile_done(r, ud, "CPU", folded, len, err, hp_doctor_profile_read);
}

static void hp__on_heap_profile(hp_req_t *r, void *ud, const char *folded, size_t len, const char *err)
{
    hp__profile_done(r, ud, "heap", folded, len, err, hp_doctor_heap_profile_read);
}

static void hp__start_profiles(hp_doctor_job_t *job)
{
    const char *why = "this binary has no profiler (the hpcore library alone)";
    if (hp_prof_cpu_collect(job->r, job->seconds, hp__on_cpu_profile, job, &why) == 0)
        ++job->prof_pending;
    else
        hp__note(job, "no CPU profile of the window: %s", hp_pool_printf(job->r, "%s", why));
    why = "this binary has no profiler (the hpcore library alone)";
    if (hp_prof_heap_collect(job->r, job->seconds, hp__on_heap_profile, job, &why) == 0)
        ++job->prof_pending;
    else
        hp__note(job, "no heap profile of the window: %s", hp_pool_printf(job->r, "%s", why));
}

/* ---- step 1: the start snapshot ------------------------------------------------------------------ */

static void hp__on_start_tables(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_doctor_job_t *job = ud;
    if (err != NULL) {
        hp__note(job, "pg_stat_user_tables could not be read at the start (%s): the missing-index rule is off",
                 hp__why(r, res, err));
        if (res != NULL)
            PQclear(res);
    } else {
        hp__read_tables(&job->before, res);
        PQclear(res);
    }
    /* The window starts now, with the probes read right before the tables. */
    hp_doctor_sample(&job->before);
    job->start_s = job->before.at_s;
    hp__start_profiles(job);
    h2o_timeout_link(r->thr->loop, &hp__doctor_tick, &job->tick);
}

/*
 * The other applications' statements at the start (doctor_health.c names the
 * one that ran in the window). A failure here leaves no note of its own: the
 * end's reading of the same part says it, and the rule says what it lacks.
 */
static void hp__on_start_health(hp_req_t *r, void *ud, hp_pg_health_t *h, const char *const *notes, size_t num_notes)
{
    hp_doctor_job_t *job = ud;
    (void)h, (void)notes, (void)num_notes;
    job->before.health_ok = 1;
    const char *values[] = {"500"};
    hp_db_query(r, hp_pg_stmt(HP_PG_STMT_debug_pg_tables), values, 1, hp__on_start_tables, job);
}

static void hp__doctor(hp_req_t *r)
{
    static const char *const formats[] = {"json", "md", NULL};
    int64_t seconds;
    int markdown;
    if (hp_param_int(r, "seconds", HP_DOCTOR_MIN_SECONDS, HP_DOCTOR_MAX_SECONDS, HP_DOCTOR_DEFAULT_SECONDS, &seconds) != 0 ||
        hp_param_choice(r, "format", formats, 0, &markdown, "format must be json or md") != 0)
        return;
    if (hp__doctor_tick_loop != r->thr->loop) {
        /* The admin thread's one loop: initialised on the first request. */
        h2o_timeout_init(r->thr->loop, &hp__doctor_tick, HP_DOCTOR_TICK_MS);
        hp__doctor_tick_loop = r->thr->loop;
    }
    hp_doctor_job_t *job = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*job), hp__job_dispose);
    memset(job, 0, sizeof(*job));
    job->r = r;
    job->seconds = (int)seconds;
    job->markdown = markdown;
    job->tick.cb = hp__on_tick;
    job->heap_every = ((int)seconds * 1000 / HP_DOCTOR_TICK_MS + HP_DOCTOR_MAX_HEAP - 1) / HP_DOCTOR_MAX_HEAP;
    hp_pg_health_collect_part(r, &job->before.health, HP_PG_HEALTH_STATEMENTS, hp__on_start_health, job);
}

const hp_route_t hp_doctor_routes[] = {
    {"GET", "/debug/doctor", hp__doctor, 0},
};
const size_t hp_doctor_num_routes = sizeof(hp_doctor_routes) / sizeof(hp_doctor_routes[0]);
