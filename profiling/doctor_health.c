/*
 * doctor_health: the doctor's rules on PostgreSQL's health (pg_health.h),
 * the checks of PgHero and pg-extras turned into findings. Pure, like the
 * other rules: they read the end snapshot's health reading (and, for the
 * sequential scans, the window's table counters and plans) and write
 * findings.
 *
 * Severity. These findings concern the database as a whole, not a route's
 * time, so their impact is 0 and their severity comes from the rule itself:
 * what holds locks or connections now (long transactions, idle-in-transaction
 * sessions, connections near the limit, dead tuples past autovacuum) is
 * medium, high at ten times the threshold; what costs space, writes or a
 * future plan (unused and duplicate indexes, stale statistics, a cache hit
 * ratio just under 99%, another application's scans at a modest rate) is low
 * unless it is large. A freshly seeded local stack shows several of the
 * second kind (its indexes have not been used yet, its tables have not been
 * analyzed yet, its pages were all read in once), which is why they are low:
 * the doctor's clean run must stay free of anything above low.
 */
#include "profiling/doctor.h"
#include "profiling/doctor_window.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TH(name) (hp_doctor_threshold(HP_DOCTOR_TH_##name)->value)

static hp_doctor_finding_t *hp__new(hp_doctor_ctx_t *c, hp_doctor_kind_t kind, hp_doctor_level_t severity,
                                    hp_doctor_level_t confidence)
{
    hp_doctor_finding_t *f = hp_doctor_finding_add(c, kind);
    if (f == NULL)
        return NULL;
    f->severity = severity;
    f->confidence = confidence;
    return f;
}

/* Appends one statement to the finding's sql, ";\n"-separated, when it fits whole. */
static void hp__add_sql(hp_doctor_finding_t *f, const char *sql)
{
    size_t len = strlen(f->sql), add = strlen(sql) + (len != 0 ? 2 : 0);
    if (len + add + 1 > sizeof(f->sql))
        return;
    snprintf(f->sql + len, sizeof(f->sql) - len, "%s%s", len != 0 ? ";\n" : "", sql);
}

/* Texts are cut to their field; a long name (63 bytes) in a summary may cut it, which a report can bear. */
__attribute__((format(printf, 3, 4))) static void hp__set(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

#define HP__SET(field, ...) hp__set(f->field, sizeof(f->field), __VA_ARGS__)

/* A size for people: 240 kB, 1.5 MB, 3.2 GB. */
static const char *hp__bytes(double b, char *buf, size_t len)
{
    if (b >= 1e9)
        snprintf(buf, len, "%.1f GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(buf, len, "%.1f MB", b / 1e6);
    else
        snprintf(buf, len, "%.0f kB", b / 1e3);
    return buf;
}

static const char *hp__app(const char *app)
{
    return app[0] != '\0' ? app : "(none)";
}

/* A session the lock rule already names as the root of our backends' waits: that finding says what to do with it. */
static int hp__is_blocker(const hp_doctor_ctx_t *c, int pid)
{
    for (size_t i = 0; i != c->b->num_blockers; ++i)
        if (c->b->blockers[i].pid == pid)
            return 1;
    return 0;
}

/* ---- sessions ------------------------------------------------------------------------------------ */

/* Whether another application's session logs in with a role hotplate's own connections use too. */
static int hp__role_is_hotplates(const hp_pg_health_t *h, const hp_pg_session_t *s)
{
    if (strcmp(s->app, "hotplate") == 0 || s->user[0] == '\0')
        return 0;
    size_t len = strlen(s->user);
    for (size_t i = 0; i != h->num_apps; ++i) {
        if (strcmp(h->apps[i].app, "hotplate") != 0)
            continue;
        for (const char *p = h->apps[i].users; (p = strstr(p, s->user)) != NULL; p += len)
            if ((p == h->apps[i].users || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
                return 1;
    }
    return 0;
}

static int hp__idle_long(const hp_pg_session_t *s)
{
    return s->idle_ms >= TH(pg_idle_txn_s) * 1000;
}

static void hp__rule_long_running(hp_doctor_ctx_t *c)
{
    const hp_pg_health_t *h = &c->b->health;
    hp_doctor_finding_t *f = NULL;
    const hp_pg_session_t *worst = NULL;
    double worst_ratio = 0;
    size_t n = 0;
    for (size_t i = 0; i != h->num_sessions; ++i) {
        const hp_pg_session_t *s = &h->sessions[i];
        if (hp__idle_long(s) || hp__is_blocker(c, s->pid))
            continue;
        double rq = s->query_ms >= 0 ? s->query_ms / (TH(pg_query_s) * 1000) : 0, rx = s->xact_ms / (TH(pg_xact_s) * 1000);
        double ratio = rq > rx ? rq : rx;
        if (ratio < 1)
            continue;
        ++n;
        if (ratio > worst_ratio)
            worst_ratio = ratio, worst = s;
    }
    if (worst == NULL ||
        (f = hp__new(c, HP_DOCTOR_pg_long_running, worst_ratio >= 10 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM, HP_DOCTOR_HIGH)) == NULL)
        return;
    int running = worst->query_ms >= TH(pg_query_s) * 1000;
    HP__SET(summary, "%zu session%s of PostgreSQL %s longer than %.0f s; the oldest, pid %d (application_name '%s'), for %.0f s", n,
            n == 1 ? "" : "s",
            running ? (n == 1 ? "runs a statement" : "run statements")
                    : (n == 1 ? "holds a transaction open" : "hold transactions open"),
            running ? TH(pg_query_s) : TH(pg_xact_s), worst->pid, hp__app(worst->app),
            (running ? worst->query_ms : worst->xact_ms) / 1000);
    for (size_t i = 0; i != h->num_sessions; ++i) {
        const hp_pg_session_t *s = &h->sessions[i];
        if (hp__idle_long(s) || hp__is_blocker(c, s->pid))
            continue;
        if (s->query_ms < TH(pg_query_s) * 1000 && s->xact_ms < TH(pg_xact_s) * 1000)
            continue;
        hp_doctor_evidence(
            f, "pid %d (application_name '%s', user %s, client %s): %s%s%s, statement running %.0f s, transaction open %.0f s; %s",
            s->pid, hp__app(s->app), s->user, s->client, s->state, s->wait[0] != '\0' ? ", waiting on " : "", s->wait,
            s->query_ms >= 0 ? s->query_ms / 1000 : 0, s->xact_ms >= 0 ? s->xact_ms / 1000 : 0, s->query);
    }
    HP__SET(fix,
            "Find out what pid %d does before ending it: pg_cancel_backend(%d) stops its statement, pg_terminate_backend(%d) "
            "ends the session and rolls its transaction back. While it lasts, it keeps its locks and holds back VACUUM on every "
            "table (no dead tuple newer than its snapshot can be removed). So that it cannot happen again, give role %s a "
            "statement_timeout (ALTER ROLE ... SET statement_timeout), and split long jobs into short transactions",
            worst->pid, worst->pid, worst->pid, worst->user[0] != '\0' ? worst->user : "(its role)");
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_%s_backend(%d)", running ? "cancel" : "terminate", worst->pid);
    hp__add_sql(f, sql);
}

static void hp__rule_idle_in_transaction(hp_doctor_ctx_t *c)
{
    const hp_pg_health_t *h = &c->b->health;
    const hp_pg_session_t *worst = NULL;
    size_t n = 0;
    for (size_t i = 0; i != h->num_sessions; ++i) {
        const hp_pg_session_t *s = &h->sessions[i];
        if (!hp__idle_long(s) || hp__is_blocker(c, s->pid))
            continue;
        ++n;
        if (worst == NULL || s->idle_ms > worst->idle_ms)
            worst = s;
    }
    hp_doctor_finding_t *f;
    if (worst == NULL ||
        (f = hp__new(c, HP_DOCTOR_pg_idle_in_transaction,
                     worst->idle_ms >= 10 * TH(pg_idle_txn_s) * 1000 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM, HP_DOCTOR_HIGH)) == NULL)
        return;
    HP__SET(summary,
            "%zu session%s idle in transaction for more than %.0f s; the longest, pid %d (application_name '%s'), for %.0f s", n,
            n == 1 ? " sits" : "s sit", TH(pg_idle_txn_s), worst->pid, hp__app(worst->app), worst->idle_ms / 1000);
    for (size_t i = 0; i != h->num_sessions; ++i) {
        const hp_pg_session_t *s = &h->sessions[i];
        if (!hp__idle_long(s) || hp__is_blocker(c, s->pid))
            continue;
        hp_doctor_evidence(
            f, "pid %d (application_name '%s', user %s, client %s): %s for %.1f s, transaction open %.1f s; last query: %s", s->pid,
            hp__app(s->app), s->user, s->client, s->state, s->idle_ms / 1000, s->xact_ms / 1000, s->query);
    }
    HP__SET(fix,
            "The session of '%s' opened a transaction and went quiet: it keeps its locks and its snapshot (VACUUM cannot remove "
            "dead tuples newer than it) while doing nothing. Its application must commit or roll back; until then "
            "pg_terminate_backend(%d) ends it. So that it cannot happen again: ALTER ROLE %s SET "
            "idle_in_transaction_session_timeout = '30s'%s",
            hp__app(worst->app), worst->pid, worst->user[0] != '\0' ? worst->user : "...",
            hp__role_is_hotplates(h, worst) ? " (hotplate logs in with that role too, and its transactions never idle that long; "
                                              "better, give that application a role of its own)"
                                            : "");
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", worst->pid);
    hp__add_sql(f, sql);
}

/* ---- connections --------------------------------------------------------------------------------- */

static void hp__rule_connections(hp_doctor_ctx_t *c)
{
    const hp_pg_health_t *h = &c->b->health;
    int avail = h->max_connections - h->reserved;
    if (!h->connections_ok || avail <= 0 || h->num_apps == 0)
        return;
    double share = (double)h->conn_total / avail;
    hp_doctor_finding_t *f;
    if (share < TH(pg_conn_share) ||
        (f = hp__new(c, HP_DOCTOR_pg_connections, share >= TH(pg_conn_high_share) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM,
                     HP_DOCTOR_HIGH)) == NULL)
        return;
    const hp_pg_conn_app_t *top = &h->apps[0];
    HP__SET(summary, "%d of the %d connections PostgreSQL allows (max_connections %d less %d reserved) are in use; '%s' has %d",
            h->conn_total, avail, h->max_connections, h->reserved, hp__app(top->app), top->total);
    for (size_t i = 0; i != h->num_apps; ++i) {
        const hp_pg_conn_app_t *a = &h->apps[i];
        hp_doctor_evidence(
            f, "application_name '%s' (users %s, clients %s): %d connections, %d active, %d idle, %d idle in transaction",
            hp__app(a->app), a->users, a->clients, a->total, a->active, a->idle, a->idle_in_txn);
    }
    HP__SET(fix,
            "When the limit is reached, new connections fail (FATAL: too many clients), hotplate's reconnects too. Put a pooler "
            "(PgBouncer in transaction mode) in front of '%s' or lower its pool (it has %d connections, %d of them idle); "
            "raising max_connections costs memory per connection and needs a restart",
            hp__app(top->app), top->total, top->idle);
}

/* ---- indexes ------------------------------------------------------------------------------------- */

/* The method and columns of an index definition ("USING btree (user_id)"), or the whole definition. */
static const char *hp__using(const char *def)
{
    const char *u = strstr(def, " USING ");
    return u != NULL ? u + 1 : def;
}

static void hp__rule_indexes(hp_doctor_ctx_t *c, int duplicates)
{
    const hp_pg_health_t *h = &c->b->health;
    const hp_pg_index_t *list = duplicates ? h->duplicate : h->unused;
    size_t num = duplicates ? h->num_duplicate : h->num_unused, n = 0;
    double bytes = 0, largest = 0;
    for (size_t i = 0; i != num; ++i) {
        if ((double)list[i].bytes < TH(pg_index_min_bytes))
            continue;
        ++n, bytes += (double)list[i].bytes;
        largest = (double)list[i].bytes > largest ? (double)list[i].bytes : largest;
    }
    hp_doctor_finding_t *f;
    int stats_young = h->stats_age_s >= 0 && h->stats_age_s < 7 * 86400;
    if (n == 0 || (f = hp__new(c, duplicates ? HP_DOCTOR_pg_duplicate_index : HP_DOCTOR_pg_unused_index,
                               largest >= TH(pg_index_medium_bytes) ? HP_DOCTOR_MEDIUM : HP_DOCTOR_LOW,
                               duplicates    ? HP_DOCTOR_HIGH
                               : stats_young ? HP_DOCTOR_LOW
                                             : HP_DOCTOR_MEDIUM)) == NULL)
        return;
    char b1[32], b2[32];
    const hp_pg_index_t *first = NULL;
    for (size_t i = 0; i != num; ++i) {
        const hp_pg_index_t *ix = &list[i];
        if ((double)ix->bytes < TH(pg_index_min_bytes))
            continue;
        first = first != NULL ? first : ix;
        if (duplicates)
            hp_doctor_evidence(f, "%s.%s (%s; %s, %lld scans) is covered by %s (%s)", ix->schema, ix->index, hp__using(ix->def),
                               hp__bytes((double)ix->bytes, b1, sizeof(b1)), (long long)ix->scans, ix->covered_by,
                               hp__using(ix->covered_def));
        else
            hp_doctor_evidence(f, "%s.%s on %s (%s): %lld scans; %s", ix->schema, ix->index, ix->table,
                               hp__bytes((double)ix->bytes, b1, sizeof(b1)), (long long)ix->scans, ix->def);
        char drop[320];
        hp_pg_health_drop_sql(ix, drop, sizeof(drop));
        hp__add_sql(f, drop);
    }
    if (duplicates) {
        HP__SET(summary, "%zu index%s duplicate%s another index's leading columns (%s): %s.%s is covered by %s", n,
                n == 1 ? "" : "es", n == 1 ? "s" : "", hp__bytes(bytes, b2, sizeof(b2)), first->schema, first->index,
                first->covered_by);
        HP__SET(fix,
                "Drop %s: %s begins with the same columns in the same order, so it answers every query %s does, and every "
                "insert and update pays for both. DROP INDEX CONCURRENTLY does not block writes (and cannot run inside a "
                "transaction block)",
                n == 1 ? "it" : "them", first->covered_by, first->index);
    } else {
        HP__SET(summary, "%zu index%s scanned fewer than %.0f times since the statistics were reset (%s)%s", n,
                n == 1 ? " was" : "es were", TH(pg_unused_scans), hp__bytes(bytes, b2, sizeof(b2)),
                stats_young ? ", which was less than a week ago" : "");
        HP__SET(fix,
                "An index nobody reads still costs every write and its space: drop it. Check first that no standby serves "
                "queries that use it (its scans count there, not here), and that the statistics cover a full business cycle "
                "(%s); indexes that back a key or a constraint, or lead with a foreign key's columns, are never proposed",
                h->stats_age_s >= 0 ? "see stats_age_s" : "they were never reset");
    }
}

/*
 * An invalid index: a CREATE INDEX CONCURRENTLY that failed (or is still
 * running) leaves one behind. The planner never uses it, yet every write
 * still maintains it once it is ready. Any one is a finding: there is no
 * threshold.
 */
static void hp__rule_invalid_index(hp_doctor_ctx_t *c)
{
    const hp_pg_health_t *h = &c->b->health;
    hp_doctor_finding_t *f;
    if (h->num_invalid == 0 || (f = hp__new(c, HP_DOCTOR_pg_invalid_index, HP_DOCTOR_LOW, HP_DOCTOR_HIGH)) == NULL)
        return;
    const hp_pg_index_t *first = &h->invalid[0];
    HP__SET(summary, "%zu invalid index%s (a CREATE INDEX CONCURRENTLY that failed or is still running): %s.%s on %s",
            h->num_invalid, h->num_invalid == 1 ? "" : "es", first->schema, first->index, first->table);
    char b[32], drop[320];
    for (size_t i = 0; i != h->num_invalid; ++i) {
        const hp_pg_index_t *ix = &h->invalid[i];
        hp_doctor_evidence(f, "%s.%s on %s (%s): %s", ix->schema, ix->index, ix->table, hp__bytes((double)ix->bytes, b, sizeof(b)),
                           ix->def);
        hp_pg_health_drop_sql(ix, drop, sizeof(drop));
        hp__add_sql(f, drop);
    }
    HP__SET(fix,
            "The planner never uses an invalid index, but writes may still maintain it. Unless a CREATE INDEX CONCURRENTLY is "
            "running right now (pg_stat_progress_create_index), drop it and build it again: DROP INDEX CONCURRENTLY, then "
            "the CREATE INDEX CONCURRENTLY of its definition (%s)",
            hp__using(first->def));
}

/* ---- tables: VACUUM, ANALYZE --------------------------------------------------------------------- */

static int hp__vacuum_due(const hp_pg_table_t *t)
{
    double total = (double)t->live + (double)t->dead;
    return (double)t->dead >= TH(pg_dead_rows) && total > 0 && (double)t->dead / total >= TH(pg_dead_share);
}

static int hp__analyze_due(const hp_pg_table_t *t)
{
    return (double)t->mod_since_analyze >= TH(pg_analyze_rows) &&
           (double)t->mod_since_analyze >= TH(pg_analyze_share) * (double)(t->live > 0 ? t->live : 1);
}

static const char *hp__ago(double s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "never");
    else if (s < 120)
        snprintf(buf, len, "%.0f s ago", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0f min ago", s / 60);
    else
        snprintf(buf, len, "%.1f h ago", s / 3600);
    return buf;
}

static void hp__rule_maintenance(hp_doctor_ctx_t *c, int vacuum)
{
    const hp_pg_health_t *h = &c->b->health;
    const hp_pg_table_t *worst = NULL;
    double worst_share = 0;
    size_t n = 0;
    for (size_t i = 0; i != h->num_tables; ++i) {
        const hp_pg_table_t *t = &h->tables[i];
        if (!(vacuum ? hp__vacuum_due(t) : hp__analyze_due(t)))
            continue;
        double share = vacuum ? (double)t->dead / ((double)t->live + (double)t->dead)
                              : (double)t->mod_since_analyze / (double)(t->live > 0 ? t->live : 1);
        ++n;
        if (worst == NULL || share > worst_share)
            worst = t, worst_share = share;
    }
    hp_doctor_finding_t *f;
    hp_doctor_level_t sev = vacuum ? (worst_share >= 2.5 * TH(pg_dead_share) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM) : HP_DOCTOR_LOW;
    if (worst == NULL || (f = hp__new(c, vacuum ? HP_DOCTOR_pg_vacuum : HP_DOCTOR_pg_analyze, sev, HP_DOCTOR_HIGH)) == NULL)
        return;
    char ago[32], sql[200];
    if (vacuum)
        HP__SET(summary, "%zu table%s need%s VACUUM: %.0f%% of %s.%s's tuples are dead (%lld)", n, n == 1 ? "" : "s",
                n == 1 ? "s" : "", 100 * worst_share, worst->schema, worst->table, (long long)worst->dead);
    else
        HP__SET(summary,
                "%zu table%s need%s ANALYZE: %lld rows of %s.%s changed since its statistics were taken (%.0f%% of its rows)", n,
                n == 1 ? "" : "s", n == 1 ? "s" : "", (long long)worst->mod_since_analyze, worst->schema, worst->table,
                100 * worst_share);
    for (size_t i = 0; i != h->num_tables; ++i) {
        const hp_pg_table_t *t = &h->tables[i];
        if (!(vacuum ? hp__vacuum_due(t) : hp__analyze_due(t)))
            continue;
        if (vacuum)
            hp_doctor_evidence(f, "%s.%s: %lld dead and %lld live tuples; last vacuum %s; autovacuum starts at %.0f dead",
                               t->schema, t->table, (long long)t->dead, (long long)t->live,
                               hp__ago(t->vacuum_age_s, ago, sizeof(ago)), t->vacuum_at);
        else
            hp_doctor_evidence(f, "%s.%s: %lld rows modified since the last analyze (%s), %lld live; autoanalyze starts at %.0f",
                               t->schema, t->table, (long long)t->mod_since_analyze, hp__ago(t->analyze_age_s, ago, sizeof(ago)),
                               (long long)t->live, t->analyze_at);
        snprintf(sql, sizeof(sql), "%s %s.%s", vacuum ? "VACUUM (ANALYZE)" : "ANALYZE", t->schema, t->table);
        hp__add_sql(f, sql);
    }
    if (vacuum)
        HP__SET(fix,
                "Run VACUUM now (it takes no lock that blocks reads or writes), then find why autovacuum fell behind: a long "
                "or idle transaction holds back what it may remove, autovacuum_vacuum_scale_factor is too large for a table "
                "this size (ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0.02)), or its workers are throttled "
                "(autovacuum_vacuum_cost_limit). Dead tuples bloat the table and its indexes, and every scan reads them",
                worst->table);
    else
        HP__SET(fix,
                "Run ANALYZE: the planner estimates rows from statistics older than the data, and an estimate from before a "
                "bulk load can flip a plan (a sequential scan or a nested loop over many more rows than expected). "
                "Autoanalyze catches up on its own within autovacuum_naptime; after a bulk load, run ANALYZE as its last step");
}

/* ---- the buffer cache ---------------------------------------------------------------------------- */

/* A hit ratio in percent; 100 without any block access (nothing was missed). */
static double hp__pct(int64_t hit, int64_t read)
{
    double r = hp_pg_health_hit_ratio(hit, read);
    return r < 0 ? 100 : 100 * r;
}

static void hp__rule_cache(hp_doctor_ctx_t *c)
{
    const hp_pg_health_t *h = &c->b->health;
    if (!h->tables_ok)
        return;
    double rt = hp_pg_health_hit_ratio(h->heap_hit, h->heap_read), ri = hp_pg_health_hit_ratio(h->idx_hit, h->idx_read);
    int judge_t = ((double)h->heap_hit + (double)h->heap_read) >= TH(pg_cache_min_blocks) && rt < TH(pg_cache_hit);
    int judge_i = ((double)h->idx_hit + (double)h->idx_read) >= TH(pg_cache_min_blocks) && ri < TH(pg_cache_hit);
    if (!judge_t && !judge_i)
        return;
    double worst = judge_t && judge_i ? (rt < ri ? rt : ri) : judge_t ? rt : ri;
    hp_doctor_finding_t *f =
        hp__new(c, HP_DOCTOR_pg_cache_hit, worst < TH(pg_cache_hit_medium) ? HP_DOCTOR_MEDIUM : HP_DOCTOR_LOW, HP_DOCTOR_MEDIUM);
    if (f == NULL)
        return;
    HP__SET(summary, "the buffer cache answers %.2f%% of table reads and %.2f%% of index reads (PgHero's floor: %.0f%%)", 100 * rt,
            100 * ri, 100 * TH(pg_cache_hit));
    hp_doctor_evidence(f, "tables: %lld blocks from shared buffers, %lld read in (%.2f%%)", (long long)h->heap_hit,
                       (long long)h->heap_read, 100 * rt);
    hp_doctor_evidence(f, "indexes: %lld blocks from shared buffers, %lld read in (%.2f%%)", (long long)h->idx_hit,
                       (long long)h->idx_read, 100 * ri);
    const hp_pg_table_t *most = NULL;
    for (size_t i = 0; i != h->num_tables; ++i) {
        const hp_pg_table_t *t = &h->tables[i];
        if (most == NULL || (double)t->heap_read + (double)t->idx_read > (double)most->heap_read + (double)most->idx_read)
            most = t;
    }
    if (most != NULL && (double)most->heap_read + (double)most->idx_read > 0)
        hp_doctor_evidence(
            f,
            "of the %zu largest tables, %s.%s read the most blocks in: %lld of the table's, %lld of its indexes' (%.2f%% "
            "and %.2f%% hits)",
            h->num_tables, most->schema, most->table, (long long)most->heap_read, (long long)most->idx_read,
            hp__pct(most->heap_hit, most->heap_read), hp__pct(most->idx_hit, most->idx_read));
    hp_doctor_evidence(f,
                       "cumulative since the statistics were reset%s (a table's first reads, and a bulk load's new pages, count "
                       "as reads)",
                       h->stats_age_s < 0 ? " (never)" : "");
    HP__SET(fix,
            "Either the working set does not fit in shared_buffers (raise it, to about a quarter of the RAM; it needs a restart), "
            "or queries read more than they need: the sequential scans and missing indexes the doctor names read whole "
            "tables. To judge the current traffic alone, compare two readings of GET /debug/pg/health");
}

/* ---- another application's sequential scans (the window) ----------------------------------------- */

static void hp__rule_foreign_seq(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    if (!a->tables_ok || !b->tables_ok || c->seconds <= 0)
        return;
    for (size_t i = 0; i != b->num_tables; ++i) {
        const hp_doctor_table_t *t = &b->tables[i];
        if ((double)t->n_live_tup < TH(pg_seq_min_rows))
            continue;
        const hp_doctor_table_t *t0 = NULL;
        for (size_t j = 0; j != a->num_tables && t0 == NULL; ++j)
            if (strcmp(a->tables[j].name, t->name) == 0)
                t0 = &a->tables[j];
        if (t0 == NULL || t->seq_scan <= t0->seq_scan)
            continue;
        double scans = (double)(t->seq_scan - t0->seq_scan), rows = (double)(t->seq_tup_read - t0->seq_tup_read);
        /* Our statements whose plan reads this table sequentially: each execution is one scan. */
        double ours = 0;
        char names[96] = "";
        for (size_t p = 0; p != b->num_plans; ++p) {
            if (strcmp(b->plans[p].plan.seq_rel, t->name) != 0)
                continue;
            for (size_t s = 0; s != b->num_stmts; ++s)
                if (b->stmts[s].name != NULL && strcmp(b->stmts[s].name, b->plans[p].stmt) == 0) {
                    ours += c->stmt[s].n;
                    size_t len = strlen(names);
                    snprintf(names + len, sizeof(names) - len, "%s%s", len != 0 ? ", " : "", b->plans[p].stmt);
                }
        }
        double foreign = scans - ours;
        if (foreign < TH(pg_seq_min_scans) || foreign < 0.5 * scans)
            continue;
        double rows_s = foreign * (rows / scans) / c->seconds;
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_pg_foreign_seq_scan,
                                         rows_s >= TH(pg_seq_medium_rows_s) ? HP_DOCTOR_MEDIUM : HP_DOCTOR_LOW, HP_DOCTOR_MEDIUM);
        if (f == NULL)
            return;
        HP__SET(summary,
                "%s (%lld live rows) was read by %.0f sequential scans in the window that no statement of hotplate's explains",
                t->name, (long long)t->n_live_tup, foreign);
        hp_doctor_evidence(f, "%s: %.0f sequential scans in %.1f s reading %.0f rows (%.0f per scan, %.0f rows/s)", t->name, scans,
                           c->seconds, rows, rows / scans, rows / c->seconds);
        hp_doctor_evidence(f, "hotplate's statements whose plan scans %s sequentially ran %.0f times in the window%s%s%s", t->name,
                           ours, names[0] != '\0' ? " (" : "", names, names[0] != '\0' ? ")" : "");
        const hp_pg_health_t *h = &b->health;
        char apps[200] = "";
        for (size_t k = 0; k != h->num_apps; ++k) {
            if (strcmp(h->apps[k].app, "hotplate") == 0)
                continue;
            size_t len = strlen(apps);
            snprintf(apps + len, sizeof(apps) - len, "%s'%s' (%d)", len != 0 ? ", " : "", hp__app(h->apps[k].app),
                     h->apps[k].total);
        }
        if (apps[0] != '\0')
            hp_doctor_evidence(f, "other applications connected: %s", apps);
        /* The window's own statement: pg_stat_statements read at both ends, the difference (not the totals since a reset). */
        const hp_pg_health_t *h0 = &a->health;
        hp_pg_other_stmt_t o;
        if (!h->statements_ok)
            hp_doctor_evidence(f, "without pg_stat_statements (an optional extension), the statement is not named");
        else if (!a->health_ok || !h0->statements_ok)
            hp_doctor_evidence(f, "pg_stat_statements could not be read at the start of the window, so the statement is not named");
        else if (hp_pg_health_other_between(h0, h, t->name, &o))
            hp_doctor_evidence(f,
                               "pg_stat_statements, the costliest statement in the window that is not hotplate's and names %s: %s "
                               "(%lld calls in the window, %.2f ms mean, %lld rows)",
                               t->name, o.query, (long long)o.calls, o.mean_ms, (long long)o.rows);
        HP__SET(fix,
                "Another application reads %s whole, over and over. Find its statement in pg_stat_statements (GET "
                "/debug/pg/statements: hotplate's statements carry their names, another's does not), then give it an index "
                "for its filter, or move it to a replica; its scans take CPU, I/O and buffer cache from hotplate's queries",
                t->name);
    }
}

/* ---- the standby ---------------------------------------------------------------------------------- */

/*
 * standby missing or lagging: what runtime/pgha.c's watcher read from the
 * primary's pg_stat_replication, once a second. Only when the server was
 * given several hosts (an HA stack): a single-node database has no standby
 * to miss. Missing is high, since the next loss of the primary is then an
 * outage with nothing to fail over to; lagging is medium, since a failover
 * then waits for the replay and reads from the standby are that stale.
 */
static void hp__rule_standby(hp_doctor_ctx_t *c)
{
    const hp_pgha_snapshot_t *ha = &c->b->ha;
    if (!ha->enabled || !ha->connected)
        return;
    int missing = ha->standbys == 0;
    int lagging = !missing && ((double)ha->lag_bytes >= TH(pg_standby_lag_bytes) || ha->lag_seconds >= TH(pg_standby_lag_s));
    if (!missing && !lagging)
        return;
    hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_pg_standby, missing ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM, HP_DOCTOR_HIGH);
    if (f == NULL)
        return;
    if (missing)
        snprintf(f->summary, sizeof(f->summary),
                 "No standby streams from the primary %.64s: if it fails now, there is nothing to fail over to", ha->primary);
    else
        snprintf(f->summary, sizeof(f->summary), "The slowest standby of %.64s is %.1f MiB and %.1f s behind its primary",
                 ha->primary, (double)ha->lag_bytes / 1048576.0, ha->lag_seconds);
    hp_doctor_evidence(
        f,
        "pg_stat_replication on the primary %s: %d standbys, %d of them synchronous; largest replay distance %lld bytes, "
        "replay_lag %.3f s",
        ha->primary, ha->standbys, ha->sync_standbys, (long long)ha->lag_bytes, ha->lag_seconds);
    if (ha->failovers > 0)
        hp_doctor_evidence(f, "%llu failover%s since this server started, the last from %s to %s",
                           (unsigned long long)ha->failovers, ha->failovers == 1 ? "" : "s", ha->previous, ha->primary);
    if (missing)
        snprintf(
            f->fix, sizeof(f->fix),
            "Give %.64s a standby again. After a failover the old primary cannot simply restart: rebuild it as a standby of the "
            "new one (pg_rewind, or pg_basebackup -R with a replication slot), then check pg_stat_replication on %.64s. Until "
            "then, a commit waits for a standby if synchronous_standby_names still names one (SHOW "
            "synchronous_standby_names)",
            ha->primary, ha->primary);
    else
        snprintf(f->fix, sizeof(f->fix),
                 "Find what holds the standby's replay back: pg_stat_replication's write_lag, flush_lag and replay_lag on the "
                 "primary say where (network, disk, or replay), pg_stat_wal_receiver on the standby says whether it streams; a "
                 "long query on the standby conflicting with replay waits up to max_standby_streaming_delay. A failover now "
                 "waits for that replay, and reads sent to the standby are that stale");
}

void hp_doctor_health_rules(hp_doctor_ctx_t *c)
{
    hp__rule_standby(c);
    hp__rule_foreign_seq(c);
    if (!c->b->health_ok)
        return;
    hp__rule_long_running(c);
    hp__rule_idle_in_transaction(c);
    hp__rule_connections(c);
    hp__rule_maintenance(c, 1);
    hp__rule_cache(c);
    hp__rule_indexes(c, 1);
    hp__rule_indexes(c, 0);
    hp__rule_invalid_index(c);
    hp__rule_maintenance(c, 0);
}
