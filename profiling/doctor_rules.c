/*
 * doctor: the rules, the ranking and the two renderings of the report (see
 * doctor.h). Everything here is pure: it reads two snapshots and writes
 * findings, so the unit tests feed it canned snapshots.
 *
 * How a rule finds "its" route. The probes count statements per statement,
 * not per route, so a rule that starts from a statement maps it to the route
 * whose PostgreSQL wait it explains best: among the routes whose request
 * count fits the statement's execution count (about one execution per request
 * for a read that should be cached, several for an N+1), the one where the
 * statement's time is the largest share of the route's db stage without
 * exceeding it (by more than fit_slack, for noise). A statement whose time
 * matches the auth stage's total instead (the token lookup counts in the auth
 * stage of every authenticated route) belongs to that stage and is left out.
 */
#include "profiling/doctor.h"
#include "profiling/doctor_window.h"
#include "profiling/folded.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const hp_doctor_threshold_t hp__thresholds[] = {
#define HP__DOCTOR_TH_DEF(name, value, unit, doc) {#name, value, unit, doc},
    HP_DOCTOR_THRESHOLDS(HP__DOCTOR_TH_DEF)
#undef HP__DOCTOR_TH_DEF
};

static const struct {
    const char *name, *title;
    int flag, good, database;
} hp__kinds[] = {
#define HP__DOCTOR_KIND_DEF(id, title, flag, good, database) {#id, title, flag, good, database},
    HP_DOCTOR_KINDS(HP__DOCTOR_KIND_DEF)
#undef HP__DOCTOR_KIND_DEF
};

const hp_doctor_threshold_t *hp_doctor_threshold(hp_doctor_th_t id)
{
    return &hp__thresholds[id];
}

const char *hp_doctor_kind_name(hp_doctor_kind_t kind, const char **title)
{
    if (title != NULL)
        *title = hp__kinds[kind].title;
    return hp__kinds[kind].name;
}

const char *hp_doctor_level_name(hp_doctor_level_t level)
{
    static const char *const names[] = {"low", "medium", "high"};
    return names[level];
}

#define TH(name) (hp__thresholds[HP_DOCTOR_TH_##name].value)

static int hp__judged(const hp_doctor_ctx_t *c, size_t r)
{
    return c->route[r].n >= TH(min_route_requests) && c->route[r].t_ns > 0;
}

static double hp__share(double part, double whole)
{
    double s = whole > 0 ? part / whole : 0;
    return s > 1 ? 1 : s;
}

static hp_doctor_level_t hp__level(double impact)
{
    return impact >= TH(high_share) ? HP_DOCTOR_HIGH : impact >= TH(medium_share) ? HP_DOCTOR_MEDIUM : HP_DOCTOR_LOW;
}

static hp_doctor_level_t hp__max_level(hp_doctor_level_t x, hp_doctor_level_t y)
{
    return x > y ? x : y;
}

/* ---- building findings --------------------------------------------------------------------------- */

static hp_doctor_finding_t *hp__new(hp_doctor_ctx_t *c, hp_doctor_kind_t kind, double impact)
{
    hp_doctor_finding_t *f = hp_doctor_finding_add(c, kind);
    if (f == NULL)
        return NULL;
    f->impact = impact < 0 ? 0 : impact > 1 ? 1 : impact;
    f->severity = hp__level(f->impact);
    f->confidence = HP_DOCTOR_MEDIUM;
    /* The server's own switch for this cause, when it is set the other way. */
    int flag = hp__kinds[kind].flag, good = hp__kinds[kind].good;
    if (flag >= 0 && c->b->flags[flag] != good) {
        const hp_flag_def_t *def = hp_flag_def((hp_flag_id_t)flag);
        snprintf(f->flag, sizeof(f->flag), "%s=%s", def->name, def->values[good]);
    }
    return f;
}

static void hp__add_route(hp_doctor_ctx_t *c, hp_doctor_finding_t *f, size_t r, double share)
{
    (void)c;
    if (f->num_routes == HP_DOCTOR_MAX_FINDING_ROUTES)
        return;
    f->routes[f->num_routes] = (int)r;
    f->route_share[f->num_routes++] = share;
}

/* Appends "fn 42%" to the comma-separated list in buf (a profile's top functions), cut to size. */
static void hp__list_share(char *buf, size_t size, const char *fn, double pct)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s %.0f%%", len != 0 ? ", " : "", fn, pct);
}

#define HP__SET(field, ...) snprintf(f->field, sizeof(f->field), __VA_ARGS__)

static const char *hp__rname(const hp_doctor_ctx_t *c, size_t r, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s", c->b->routes[r].method, c->b->routes[r].pattern);
    return buf;
}

/*
 * The route whose PostgreSQL wait statement s explains best, among those where
 * it runs between lo and hi times per request. @return its index, or -1
 */
static int hp__route_for_stmt(const hp_doctor_ctx_t *c, size_t s, double lo, double hi)
{
    /*
     * A statement whose list names its route (services/statements.h) is that
     * route's. The probes count statements per statement, not per route, and
     * every read of a thread shares one pipelined connection, so a slow
     * statement also inflates the PostgreSQL wait of the routes queued behind
     * it; inferring its route from the waits alone can then name an innocent
     * route. The others (auth_token, cart_*, shared by several routes) fall
     * back to the inference below.
     */
    int owner = c->b->stmts[s].route;
    if (owner >= 0) {
        if ((size_t)owner >= c->b->num_routes || !hp__judged(c, (size_t)owner))
            return -1;
        double per = c->stmt[s].n / c->route[owner].n;
        return per >= lo && per <= hi ? owner : -1;
    }
    int best = -1;
    double best_share = 0;
    for (size_t r = 0; r != c->b->num_routes; ++r) {
        const hp_doctor_route_win_t *w = &c->route[r];
        double db = w->stage[HP_STAGE_db];
        if (!hp__judged(c, r) || db <= 0)
            continue;
        double per = c->stmt[s].n / w->n;
        if (per < lo || per > hi || c->stmt[s].t_ns > TH(fit_slack) * db)
            continue;
        double share = c->stmt[s].t_ns / db;
        if (share > best_share)
            best = (int)r, best_share = share;
    }
    return best;
}

/* ---- the rules ------------------------------------------------------------------------------------- */

/*
 * missing index: EXPLAIN shows a sequential scan with a filter, and the
 * table's counters in the window show sequential scans that each read many
 * rows, far more than all index fetches together. Or EXPLAIN shows a full
 * index scan (hp_plan_full_index: an index whose leading column the
 * condition does not constrain, read end to end) of a large table, run many
 * times in the window.
 */
static void hp__rule_missing_index(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    if (!a->tables_ok || !b->tables_ok)
        return;
    for (size_t p = 0; p != b->num_plans; ++p) {
        const hp_doctor_plan_t *pl = &b->plans[p];
        if (pl->plan.seq_rel[0] == '\0' || pl->plan.filter[0] == '\0')
            continue;
        const hp_doctor_table_t *ta = NULL, *tb = NULL;
        for (size_t i = 0; i != b->num_tables; ++i)
            if (strcmp(b->tables[i].name, pl->plan.seq_rel) == 0)
                tb = &b->tables[i];
        for (size_t i = 0; i != a->num_tables; ++i)
            if (strcmp(a->tables[i].name, pl->plan.seq_rel) == 0)
                ta = &a->tables[i];
        if (ta == NULL || tb == NULL)
            continue;
        double scans = (double)(tb->seq_scan - ta->seq_scan), read = (double)(tb->seq_tup_read - ta->seq_tup_read);
        double fetched = (double)(tb->idx_tup_fetch - ta->idx_tup_fetch);
        int full = pl->plan.full_index[0] != '\0';
        size_t s;
        for (s = 0; s != b->num_stmts && strcmp(b->stmts[s].name, pl->stmt) != 0; ++s)
            ;
        if (s == b->num_stmts || c->stmt[s].n <= 0)
            continue;
        /*
         * PostgreSQL 15 publishes a backend's table counters at most once a
         * second, and later when the shared statistics are contended, so on
         * a busy machine the window's counters can lag far behind the scans
         * that ran. When they show under half the statement's own executions,
         * those executions count as the scans, each reading the whole table
         * (what a Seq Scan does), and the evidence says so.
         */
        double counted_scans = scans, counted_read = read;
        int lagging = !full && scans < c->stmt[s].n / 2;
        if (lagging)
            scans = c->stmt[s].n, read = scans * (double)tb->n_live_tup;
        /*
         * A full index scan moves no sequential-scan counter: each execution
         * reads the whole index instead, so its executions count as the
         * scans, and the table's size as the rows each one walks past.
         */
        if (full ? c->stmt[s].n < TH(index_min_scans) || (double)tb->n_live_tup < TH(index_rows_per_scan)
                 : scans < TH(index_min_scans) || read / scans < TH(index_rows_per_scan) || read < TH(index_seq_over_idx) * fetched)
            continue;
        /* Its route: wherever the statement explains the most PostgreSQL wait, at any rate per request. */
        int r = hp__route_for_stmt(c, s, 0, INFINITY);
        double impact = r >= 0 ? hp__share(c->stmt[s].t_ns, c->route[r].t_ns) : 0;
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_missing_index, impact);
        if (f == NULL)
            return;
        c->stmt[s].taken = 1;
        /* A sequential scan per execution grows with the table: never below medium. */
        f->severity = hp__max_level(f->severity, HP_DOCTOR_MEDIUM);
        if (r >= 0)
            hp__add_route(c, f, (size_t)r, impact);
        if (full) {
            HP__SET(summary, "%s reads the whole index %s of %s on every execution: %.0f executions in %.0f s", pl->stmt,
                    pl->plan.full_index, pl->plan.seq_rel, c->stmt[s].n, c->seconds);
            hp_doctor_evidence(f, "plan of %s: an index scan on %s using %s, Index Cond: %s%s%s", pl->stmt, pl->plan.seq_rel,
                               pl->plan.full_index, pl->plan.filter, pl->plan.sort_key[0] != '\0' ? ", then Sort Key: " : "",
                               pl->plan.sort_key);
            hp_doctor_evidence(
                f,
                "%s leads with %s, which the condition does not constrain: the B-tree is read leaf by leaf, end to end, "
                "as a sequential scan reads the heap (n_live_tup of %s: %lld)",
                pl->plan.full_index, pl->plan.lead, pl->plan.seq_rel, (long long)tb->n_live_tup);
        } else {
            HP__SET(summary, "%s reads %s with a sequential scan: %.0f rows per scan, %.0f scans in %.0f s", pl->stmt,
                    pl->plan.seq_rel, read / scans, scans, c->seconds);
            hp_doctor_evidence(f, "plan of %s: Seq Scan on %s, Filter: %s%s%s", pl->stmt, pl->plan.seq_rel, pl->plan.filter,
                               pl->plan.sort_key[0] != '\0' ? ", then Sort Key: " : "", pl->plan.sort_key);
            hp_doctor_evidence(
                f,
                "pg_stat_user_tables %s in the window: seq_scan +%.0f, seq_tup_read +%.0f (%.0f per scan), idx_tup_fetch "
                "+%.0f, n_live_tup %lld",
                pl->plan.seq_rel, counted_scans, counted_read, counted_scans > 0 ? counted_read / counted_scans : 0, fetched,
                (long long)tb->n_live_tup);
            if (lagging)
                hp_doctor_evidence(
                    f,
                    "those counters lag the %.0f executions of %s (PostgreSQL publishes a backend's table statistics at "
                    "most once a second, later under contention): each execution counted as a scan of all %lld rows",
                    c->stmt[s].n, pl->stmt, (long long)tb->n_live_tup);
        }
        hp_doctor_evidence(f, "%s: %.0f executions, mean %.3f ms, %.0f%% of all statement time", pl->stmt, c->stmt[s].n,
                           hp_doctor_ms(c->stmt[s].t_ns / c->stmt[s].n), 100 * hp__share(c->stmt[s].t_ns, c->stmt_total_ns));
        int checked = pl->plan.index_sql[0] != '\0' && pl->hypo_cost >= 0 && pl->hypo_cost < pl->plan.cost;
        f->confidence = checked ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        if (pl->plan.index_sql[0] != '\0') {
            HP__SET(sql, "%s", pl->plan.index_sql);
            HP__SET(fix, "Create the index the plan asks for (the filter's equality columns, then the sort): %s",
                    pl->plan.index_sql);
            if (pl->hypo_cost >= 0)
                HP__SET(check, "hypopg: with this index as a hypothetical index the plan's cost goes from %.1f to %.1f",
                        pl->plan.cost, pl->hypo_cost);
            else
                HP__SET(check, "not checked with a hypothetical index: %s", pl->hypo_note[0] != '\0' ? pl->hypo_note : "unknown");
        } else {
            HP__SET(fix, "Index the columns %s filters %s on (Filter: %s)", pl->stmt, pl->plan.seq_rel, pl->plan.filter);
        }
    }
}

/* Whether statement s can run in route r: its list names r, or no route at all (a statement shared by several). */
static int hp__runs_in(const hp_doctor_snapshot_t *b, int s, size_t r)
{
    return b->stmts[s].route < 0 || (size_t)b->stmts[s].route == r;
}

/*
 * N+1: statements that run once per row of another statement (their parent),
 * several times per execution of it: the signature of lazy loading, where a
 * page is read and then each of its rows is completed one round trip at a
 * time. The parent runs about once per request of its route, and the route is
 * the one whose db stage can hold the parent and its children together.
 */
static void hp__rule_n_plus_one(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *b = c->b;
    for (size_t p = 0; p != b->num_stmts; ++p) {
        const hp_doctor_stmt_win_t *pw = &c->stmt[p];
        if (pw->n <= 0 || !b->stmts[p].is_read || pw->owned)
            continue;
        int children[HP_DOCTOR_MAX_STMTS], nc = 0;
        for (size_t s = 0; s != b->num_stmts; ++s) {
            const hp_doctor_stmt_win_t *w = &c->stmt[s];
            if (s == p || w->n < TH(min_stmt_calls) || w->owned || w->taken || !b->stmts[s].is_read ||
                w->n / pw->n < TH(nplus1_calls) || fabs(pw->rows - w->n) > TH(nplus1_rows_match) * w->n)
                continue;
            children[nc++] = (int)s;
        }
        if (nc == 0)
            continue;
        /*
         * The parent's route: about one parent per request, and room in its db
         * stage for the whole family. A statement whose list names its route
         * (services/statements.h) runs in that route only, as parent or child:
         * the counts of two routes can line up by chance (a cart read per
         * checkout whose rows match the uncached menu reads of the same mix),
         * and only the list says that the menu's read is no checkout's child.
         */
        int r = -1;
        double best = 0;
        for (size_t i = 0; i != b->num_routes; ++i) {
            const hp_doctor_route_win_t *rw = &c->route[i];
            double db = rw->stage[HP_STAGE_db], per = rw->n > 0 ? pw->n / rw->n : 0, family = pw->t_ns;
            if (!hp__runs_in(b, (int)p, i) || !hp__judged(c, i) || db <= 0 || per < TH(uncached_calls_min) ||
                per > TH(uncached_calls_max))
                continue;
            int here = 0;
            for (int k = 0; k != nc; ++k)
                if (hp__runs_in(b, children[k], i))
                    family += c->stmt[children[k]].t_ns, ++here;
            if (here == 0 || family > TH(fit_slack) * db)
                continue;
            if (family / db > best)
                r = (int)i, best = family / db;
        }
        if (r < 0)
            continue;
        /* The children that can run in that route. */
        int kept = 0;
        double group = 0, calls = 0;
        for (int k = 0; k != nc; ++k)
            if (hp__runs_in(b, children[k], (size_t)r)) {
                children[kept++] = children[k];
                group += c->stmt[children[k]].t_ns, calls += c->stmt[children[k]].n;
            }
        nc = kept;
        if (group < TH(nplus1_db_share) * c->route[r].stage[HP_STAGE_db])
            continue;
        const hp_doctor_route_win_t *rw = &c->route[r];
        double impact = hp__share(group, rw->t_ns);
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_n_plus_one, impact);
        if (f == NULL)
            return;
        hp__add_route(c, f, (size_t)r, impact);
        char names[160] = "";
        for (int k = 0; k != nc; ++k) {
            hp_doctor_stmt_win_t *w = &c->stmt[children[k]];
            w->taken = 1;
            size_t len = strlen(names);
            snprintf(names + len, sizeof(names) - len, "%s%s", len != 0 ? " + " : "", b->stmts[children[k]].name);
            hp_doctor_evidence(f, "%s: %.0f executions, %.1f per request of the route, mean %.3f ms, %.1f rows each",
                               b->stmts[children[k]].name, w->n, w->n / rw->n, hp_doctor_ms(w->t_ns / w->n), w->rows / w->n);
        }
        hp_doctor_evidence(f, "%s returned %.0f rows in %.0f executions: each child runs once per row it returned",
                           b->stmts[p].name, pw->rows, pw->n);
        hp_doctor_evidence(f, "the children are %.0f%% of the route's PostgreSQL wait (db stage %.2f ms per request)",
                           100 * hp__share(group, rw->stage[HP_STAGE_db]), hp_doctor_ms(rw->stage[HP_STAGE_db] / rw->n));
        char rn[96];
        HP__SET(summary, "%s reads a page with %s, then runs %s once per row: %.1f round trips per request",
                hp__rname(c, (size_t)r, rn, sizeof(rn)), b->stmts[p].name, names, calls / rw->n);
        f->confidence = calls / pw->n >= 2 * TH(nplus1_calls) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        HP__SET(fix,
                "Load what %s fetches row by row for the whole page at once: one set-based statement each (WHERE key = "
                "ANY($1) with the page's keys), sent together, a fixed number of round trips per page",
                names);
    }
}

/*
 * uncached hot read: one read per request of a GET route that gets a large
 * share of all requests, the read most of the route's time, and the cache
 * consulted for almost none of the route's requests.
 */
static void hp__rule_uncached(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    double lookups = hp_doctor_d(b->stats.counter[HP_COUNTER_cache_hits], a->stats.counter[HP_COUNTER_cache_hits]) +
                     hp_doctor_d(b->stats.counter[HP_COUNTER_cache_misses], a->stats.counter[HP_COUNTER_cache_misses]) +
                     hp_doctor_d(b->stats.counter[HP_COUNTER_cache_errors], a->stats.counter[HP_COUNTER_cache_errors]);
    for (size_t s = 0; s != b->num_stmts; ++s) {
        const hp_doctor_stmt_win_t *w = &c->stmt[s];
        if (w->n < TH(min_stmt_calls) || w->owned || w->taken || !b->stmts[s].is_read)
            continue;
        double stmt_share = hp__share(w->t_ns, c->stmt_total_ns);
        int r = hp__route_for_stmt(c, s, TH(uncached_calls_min), TH(uncached_calls_max));
        if (r < 0 || strcmp(b->routes[r].method, "GET") != 0)
            continue;
        const hp_doctor_route_win_t *rw = &c->route[r];
        if (rw->n < TH(uncached_route_share) * c->requests)
            continue;
        double db_share = hp__share(rw->stage[HP_STAGE_db], rw->t_ns), per_lookup = lookups / rw->n;
        if (db_share < TH(uncached_db_share) || per_lookup >= TH(uncached_cache_lookups))
            continue;
        double impact = hp__share(w->t_ns, rw->t_ns);
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_uncached_hot_read, impact);
        if (f == NULL)
            return;
        c->stmt[s].taken = 1;
        hp__add_route(c, f, (size_t)r, impact);
        char rn[96];
        HP__SET(summary,
                "%s, %.0f%% of all requests, loads %s from PostgreSQL on every request (%.2f per request), without a cache",
                hp__rname(c, (size_t)r, rn, sizeof(rn)), 100 * rw->n / c->requests, b->stmts[s].name, w->n / rw->n);
        hp_doctor_evidence(f, "%s: %.0f executions for %.0f requests, mean %.3f ms, %.0f%% of all statement time in the window",
                           b->stmts[s].name, w->n, rw->n, hp_doctor_ms(w->t_ns / w->n), 100 * stmt_share);
        hp_doctor_evidence(f, "db stage: %.0f%% of the route's time (%.2f of %.2f ms per request)", 100 * db_share,
                           hp_doctor_ms(rw->stage[HP_STAGE_db] / rw->n), hp_doctor_ms(rw->t_ns / rw->n));
        hp_doctor_evidence(f, "cache: %.0f lookups in the window (%.2f per request of the route); loads from PostgreSQL %.0f",
                           lookups, per_lookup,
                           hp_doctor_d(b->stats.counter[HP_COUNTER_cache_loads], a->stats.counter[HP_COUNTER_cache_loads]));
        f->confidence = lookups == 0 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        HP__SET(fix,
                "Serve %s from a cache (cache-aside in Redis keyed by the route's id, invalidated when the data changes, "
                "with a single flight so a miss loads once)",
                b->stmts[s].name);
    }
}

/* On-loop stages: the thread's CPU, not a wait. */
static const hp_stage_t hp__loop_stages[] = {HP_STAGE_parse, HP_STAGE_compute, HP_STAGE_render};

/*
 * CPU hot spot: routes whose requests keep their event loop busy for a large
 * share of their time, or whose own computation (the compute stage: the
 * server's code, as opposed to parsing and rendering JSON) takes long per
 * request. A request that computes blocks every other request of its thread
 * for that long, however short its waits are.
 */
static void hp__rule_cpu(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *b = c->b;
    hp_doctor_finding_t *f = NULL;
    size_t order[HP_DOCTOR_MAX_ROUTES], n = 0;
    double share[HP_DOCTOR_MAX_ROUTES], per_ms[HP_DOCTOR_MAX_ROUTES], compute_us[HP_DOCTOR_MAX_ROUTES];
    for (size_t r = 0; r != b->num_routes; ++r) {
        if (!hp__judged(c, r))
            continue;
        double loop = 0;
        for (size_t k = 0; k != sizeof(hp__loop_stages) / sizeof(hp__loop_stages[0]); ++k)
            loop += c->route[r].stage[hp__loop_stages[k]];
        share[r] = hp__share(loop, c->route[r].t_ns);
        per_ms[r] = hp_doctor_ms(loop / c->route[r].n);
        compute_us[r] = c->route[r].stage[HP_STAGE_compute] / c->route[r].n / 1e3;
        if (share[r] < TH(cpu_loop_share) && compute_us[r] < TH(cpu_compute_us))
            continue;
        /* Insertion by computation per request, then by share, highest first. */
        size_t i = n++;
        while (i > 0 && (compute_us[order[i - 1]] < compute_us[r] ||
                         (compute_us[order[i - 1]] == compute_us[r] && share[order[i - 1]] < share[r])))
            order[i] = order[i - 1], --i;
        order[i] = r;
    }
    if (n == 0 || (f = hp__new(c, HP_DOCTOR_cpu_hot_spot, share[order[0]])) == NULL)
        return;
    /*
     * The severity comes from the server's own computation per request, not
     * from the on-loop share. A large cart or menu takes its time to parse and
     * render, and on a fast database that can be half of a route's time with
     * nothing wrong: a route that only crosses cpu_loop_share is CPU-bound, a
     * low note, never a cause to rank above a real one.
     */
    double top_us = compute_us[order[0]];
    f->severity = top_us >= 10 * TH(cpu_compute_us) ? HP_DOCTOR_HIGH
                  : top_us >= TH(cpu_compute_us)    ? HP_DOCTOR_MEDIUM
                                                    : HP_DOCTOR_LOW;
    char rn[96], names[256] = "";
    for (size_t i = 0; i != n; ++i) {
        size_t r = order[i];
        const hp_doctor_route_win_t *w = &c->route[r];
        hp__add_route(c, f, r, share[r]);
        hp_doctor_evidence(f,
                           "%s: %.0f us of computation per request (compute stage), %.2f ms on the loop in all (parse %.2f, render "
                           "%.2f), %.0f%% of its %.2f ms; %.0f requests",
                           hp__rname(c, r, rn, sizeof(rn)), compute_us[r], per_ms[r], hp_doctor_ms(w->stage[HP_STAGE_parse] / w->n),
                           hp_doctor_ms(w->stage[HP_STAGE_render] / w->n), 100 * share[r], hp_doctor_ms(w->t_ns / w->n), w->n);
        size_t len = strlen(names);
        if (i < 2)
            snprintf(names + len, sizeof(names) - len, "%s%s", i != 0 ? " and " : "", rn);
    }
    if (top_us >= TH(cpu_compute_us))
        HP__SET(summary, "%.160s keep%s the event loop busy computing: %.0f us of the server's own computation per request", names,
                n == 1 ? "s" : "", top_us);
    else
        HP__SET(summary,
                "%.100s spend%s %d%% of %s time on the event loop, mostly parsing and rendering JSON (%d us of the server's "
                "own computation per request)",
                names, n == 1 ? "s" : "", (int)(100 * share[order[0]] + 0.5), n == 1 ? "its" : "their", (int)(top_us + 0.5));
    f->confidence =
        n > 1 || share[order[0]] >= TH(high_share) || top_us >= 10 * TH(cpu_compute_us) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    /* The CPU profile of the window names the function: the hottest of hotplate's own (hp_*), with the overall top three. */
    const char *fn = NULL;
    double fn_share = 0;
    if (b->profile_ok && b->profile_samples != 0) {
        char top[192] = "", own[192] = "";
        for (size_t i = 0; i != b->num_hot && i != 3; ++i)
            hp__list_share(top, sizeof(top), b->hot[i].fn, 100.0 * (double)b->hot[i].n / (double)b->profile_samples);
        for (size_t i = 0; i != b->num_hp_hot && i != 3; ++i) {
            double sh = (double)b->hp_hot[i].n / (double)b->profile_samples;
            /*
             * With real computation behind the finding, the hottest of hotplate's functions is the one to change,
             * however busy the rest of the process keeps the profile. Without it, a function with a few percent of
             * the samples is not where the time goes, and the fix names none.
             */
            if (i == 0 && (sh >= TH(cpu_fn_share) || top_us >= TH(cpu_compute_us)))
                fn = b->hp_hot[i].fn, fn_share = sh;
            hp__list_share(own, sizeof(own), b->hp_hot[i].fn, 100 * sh);
        }
        hp_doctor_evidence(
            f, "CPU profile of the window (%llu samples), functions by samples of their own: %s; of hotplate's code: %s",
            (unsigned long long)b->profile_samples, top, own[0] != '\0' ? own : "none");
    }
    if (fn != NULL) {
        HP__SET(fix,
                "Make %s cheaper: it has %.0f%% of the CPU samples of the window. Work that grows faster than the input "
                "(recomputing everything per line, a linear search inside a loop) is the usual cause; compute each value once",
                fn, 100 * fn_share);
        return;
    }
    if (top_us < TH(cpu_compute_us)) {
        HP__SET(fix, "Nothing of hotplate's own stands out: the time on the loop is parsing and rendering JSON. Send and return "
                     "less per request (smaller pages, fewer fields), or spread the route over more threads");
        return;
    }
    HP__SET(fix,
            "Make the computation cheaper: take a CPU profile under this load (GET /debug/pprof/profile?seconds=10&format=folded) "
            "and change the function on top of it; work that grows faster than the input (recomputing everything per line, "
            "a linear search inside a loop) is the usual cause");
}

/* The route that holds transactions and suffers the most from waiting (db and pool stages), or -1. */
static int hp__txn_route(const hp_doctor_ctx_t *c, double *wait_share)
{
    int best = -1;
    double best_share = 0;
    for (size_t r = 0; r != c->b->num_routes; ++r) {
        const hp_doctor_route_win_t *w = &c->route[r];
        if (!hp__judged(c, r) || w->stage[HP_STAGE_pool] <= 0)
            continue;
        double s = hp__share(w->stage[HP_STAGE_db] + w->stage[HP_STAGE_pool], w->t_ns);
        if (best < 0 || s > best_share)
            best = (int)r, best_share = s;
    }
    *wait_share = best_share;
    return best;
}

/*
 * The route another application's locks hurt most. hotplate's own long
 * transactions hurt the routes that take a transaction connection (the pool
 * stage), but a foreign session can lock any table: a schema change left
 * open on promotions stalls the quote's and the checkout's pricing on the
 * read connection, before any transaction begins. The victim is then the
 * route with the largest share of 5xx answers (lock_timeout's 504s, at least
 * error_min of them) among those that spent most of their time in the
 * database; with no such
 * answers, -1, and the caller keeps the transaction route.
 */
/* @return route r's db and pool share when another application's locks may be what it failed on, or -1 */
static double hp__lock_victim_share(const hp_doctor_ctx_t *c, size_t r)
{
    const hp_doctor_route_win_t *w = &c->route[r];
    /* Not hp__judged: when every request waits out lock_timeout, few of them finish in a window. */
    if (w->cls[5] < TH(error_min) || w->t_ns <= 0)
        return -1;
    double share = hp__share(w->stage[HP_STAGE_db] + w->stage[HP_STAGE_pool], w->t_ns);
    return share >= TH(lock_victim_db_share) ? share : -1;
}

static int hp__lock_victim_route(const hp_doctor_ctx_t *c, double *wait_share)
{
    int best = -1;
    double best_ratio = 0, best_share = 0;
    for (size_t r = 0; r != c->b->num_routes; ++r) {
        double share = hp__lock_victim_share(c, r), ratio = c->route[r].cls[5] / c->route[r].n;
        if (share < 0)
            continue;
        if (best < 0 || ratio > best_ratio || (ratio == best_ratio && share > best_share))
            best = (int)r, best_ratio = ratio, best_share = share;
    }
    if (best >= 0)
        *wait_share = best_share;
    return best;
}

/*
 * lock wait or long transaction: pg_stat_activity, sampled through the
 * window, keeps showing backends that wait for a lock or sit idle inside an
 * open transaction.
 */
/*
 * Where PostgreSQL's time went: the window's samples of hotplate's active
 * backends, by what each waited on (CPU: running, waiting on nothing). A
 * finding that puts the time in the database says which kind of time it is:
 * CPU (a plan that reads too much, or too many statements), IO (reads from
 * disk), Lock (waits on other transactions), LWLock (contention inside the
 * server), Client (waits on hotplate itself).
 */
static void hp__wait_evidence(const hp_doctor_ctx_t *c, hp_doctor_finding_t *f)
{
    const hp_doctor_snapshot_t *b = c->b;
    if (b->wait_samples == 0)
        return;
    char list[200] = "";
    size_t len = 0;
    for (size_t i = 0; i != b->num_waits && i != 4 && len < sizeof(list); ++i)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %.0f%%", i != 0 ? ", " : "", b->waits[i].event,
                                100.0 * b->waits[i].samples / b->wait_samples);
    hp_doctor_evidence(f, "PostgreSQL's time in the window, from %d samples of hotplate's active backends: %s", b->wait_samples,
                       list);
}

/* "idle in transaction for 12.3 s", or "active, in a transaction open for 2.0 s". */
static void hp__blocker_how(const hp_doctor_blocker_t *bl, char *buf, size_t len)
{
    if (bl->idle_ms >= 0)
        snprintf(buf, len, "idle in transaction for %.1f s", bl->idle_ms / 1000);
    else
        snprintf(buf, len, "%s, in a transaction open for %.1f s", bl->state[0] != '\0' ? bl->state : "state unknown",
                 bl->xact_ms / 1000);
}

/* Who holds the locks: the session at the root of the waits, its last query (no values) and the chain to it. */
static void hp__blocker_evidence(hp_doctor_finding_t *f, const hp_doctor_blocker_t *bl)
{
    char how[96];
    hp__blocker_how(bl, how, sizeof(how));
    hp_doctor_evidence(
        f,
        "held by pid %d, %s (%s%s%s, client %s): %s; locks on %s%s%s%s; at the root of the wait in %d samples, %d of "
        "our backends behind it",
        bl->pid, bl->own ? "one of hotplate's own backends" : "another application's session",
        bl->app[0] != '\0' ? "application_name '" : "no application_name", bl->app, bl->app[0] != '\0' ? "'" : "", bl->client, how,
        bl->relations[0] != '\0' ? bl->relations : "no table", bl->lock_mode[0] != '\0' ? " (" : "", bl->lock_mode,
        bl->lock_mode[0] != '\0' ? ")" : "", bl->samples, bl->waiters);
    hp_doctor_evidence(f, "pid %d's last query (values replaced by ?): %s", bl->pid, bl->query[0] != '\0' ? bl->query : "(none)");
    if (bl->depth > 1)
        hp_doctor_evidence(
            f,
            "a chain of lock waits: our backend waits on a session that itself waits, %d sessions up to pid %d, which "
            "waits for nobody",
            bl->depth, bl->pid);
}

static void hp__rule_lock(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *b = c->b;
    if (b->activity_samples < TH(lock_min_samples))
        return;
    int flagged = b->activity_lock_samples > b->activity_idle_txn_samples ? b->activity_lock_samples : b->activity_idle_txn_samples;
    double seen = (double)flagged / b->activity_samples;
    if (seen < TH(lock_sample_share))
        return;
    double wait_share;
    int r = hp__txn_route(c, &wait_share), victim = -1;
    if (b->num_blockers != 0 && !b->blockers[0].own) {
        victim = hp__lock_victim_route(c, &wait_share);
        r = victim >= 0 ? victim : hp__txn_route(c, &wait_share);
    }
    hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_lock_wait, r >= 0 ? wait_share : 0);
    if (f == NULL)
        return;
    /*
     * pg_stat_activity shows every hotplate backend of the database, other
     * replicas' too: only when a route of this server waits is it this
     * server's problem (never below medium then).
     */
    if (r >= 0)
        f->severity = hp__max_level(f->severity, HP_DOCTOR_MEDIUM);
    char rn[96] = "another process (no route of this server waits)";
    if (r >= 0) {
        const hp_doctor_route_win_t *w = &c->route[r];
        hp__add_route(c, f, (size_t)r, wait_share);
        hp__rname(c, (size_t)r, rn, sizeof(rn));
        hp_doctor_evidence(
            f, "%s waits %.0f%% of its time: db stage %.2f ms and pool stage %.2f ms per request; payment %.2f ms inside", rn,
            100 * wait_share, hp_doctor_ms(w->stage[HP_STAGE_db] / w->n), hp_doctor_ms(w->stage[HP_STAGE_pool] / w->n),
            hp_doctor_ms(w->stage[HP_STAGE_payment] / w->n));
        if (w->cls[5] > 0)
            hp_doctor_evidence(f, "%s answered %.0f 5xx of %.0f (lock_timeout 504, pool_exhausted 503)", rn, w->cls[5], w->n);
    }
    /* The other routes that failed in the database behind the same foreign locks: their error spikes are this finding's. */
    for (size_t o = 0; victim >= 0 && o != b->num_routes; ++o) {
        double share = (int)o != victim ? hp__lock_victim_share(c, o) : -1;
        if (share >= 0)
            hp__add_route(c, f, o, share);
    }
    hp_doctor_evidence(
        f,
        "pg_stat_activity, %d samples: a backend waiting on a Lock for %.0f ms or more in %d, a transaction idle for as "
        "long in %d; oldest transaction seen %.0f ms",
        b->activity_samples, TH(lock_min_ms), b->activity_lock_samples, b->activity_idle_txn_samples, b->activity_max_xact_ms);
    const hp_doctor_blocker_t *bl = b->num_blockers != 0 ? &b->blockers[0] : NULL;
    if (bl != NULL)
        hp__blocker_evidence(f, bl);
    /* The statements that failed or waited in the window: the ones that take row locks. */
    for (size_t s = 0; s != b->num_stmts; ++s)
        if (!b->stmts[s].is_read && c->stmt[s].n > 0 && c->stmt[s].errors > 0)
            hp_doctor_evidence(f, "%s: %.0f errors of %.0f executions, mean %.2f ms", b->stmts[s].name, c->stmt[s].errors,
                               c->stmt[s].n, hp_doctor_ms(c->stmt[s].t_ns / c->stmt[s].n));
    f->confidence = b->activity_lock_samples > 0 && b->activity_idle_txn_samples > 0 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    if (bl != NULL && !bl->own) {
        /* Another application holds the locks: hotplate's transactions are its victims, and the fix is that session's. */
        char how[96];
        hp__blocker_how(bl, how, sizeof(how));
        f->confidence = HP_DOCTOR_HIGH;
        f->flag[0] = '\0';
        /* Bounded, so that the summary always ends with how the session holds its locks. */
        HP__SET(summary, "%.48s waits on locks held by another application's session: pid %d (%s%.40s%s), %.48s", rn, bl->pid,
                bl->app[0] != '\0' ? "application_name '" : "no application_name", bl->app, bl->app[0] != '\0' ? "'" : "", how);
        if (strcmp(bl->lock_mode, "AccessExclusiveLock") == 0)
            /*
             * A schema change (or LOCK TABLE) blocks every statement on its
             * table, reads too, and the way to keep it from stalling a
             * service is a migration's own lock_timeout, not short batches.
             */
            HP__SET(fix,
                    "Not hotplate's session: its ACCESS EXCLUSIVE lock on %.40s (ALTER TABLE or LOCK TABLE) blocks every "
                    "statement on the table, reads too. Commit or roll it back, or end it: pg_cancel_backend(%d) for a running "
                    "statement, pg_terminate_backend(%d) for an idle transaction. Then run each schema change with SET "
                    "lock_timeout = '2s', retried until it gets the lock, and commit it at once",
                    bl->relations, bl->pid, bl->pid);
        else
            HP__SET(fix,
                    "That session is not hotplate's: finish it (commit or roll back) or cancel it. pg_cancel_backend(%d) stops "
                    "a running statement; an idle transaction keeps its locks until pg_terminate_backend(%d) ends it. So that it "
                    "cannot happen again, give that application's role an idle_in_transaction_session_timeout, and run bulk "
                    "imports in short transactions, a batch of rows each, rather than one that holds every row until the end",
                    bl->pid, bl->pid);
        HP__SET(sql, "SELECT %s(%d)", bl->idle_ms >= 0 ? "pg_terminate_backend" : "pg_cancel_backend", bl->pid);
        return;
    }
    HP__SET(summary, "%s holds transactions open while it waits for something else, and others queue on the row locks", rn);
    HP__SET(fix, "Keep transactions short: make the external call (the payment authorization) before BEGIN, take the row locks "
                 "last, and commit at once; then nothing waits on a lock held across a network call");
}

/* pool saturation: routes waiting for a transaction connection. */
static void hp__rule_pool(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    for (size_t r = 0; r != b->num_routes; ++r) {
        const hp_doctor_route_win_t *w = &c->route[r];
        if (!hp__judged(c, r))
            continue;
        double share = hp__share(w->stage[HP_STAGE_pool], w->t_ns);
        if (share < TH(pool_share))
            continue;
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_pool_saturation, share);
        if (f == NULL)
            return;
        hp__add_route(c, f, r, share);
        char rn[96];
        double waits = hp_doctor_d(b->stats.hist[HP_HIST_pool_wait].count, a->stats.hist[HP_HIST_pool_wait].count),
               timeouts = hp_doctor_d(b->stats.counter[HP_COUNTER_pool_timeouts], a->stats.counter[HP_COUNTER_pool_timeouts]);
        HP__SET(summary, "%s spends %.0f%% of its time waiting for one of %llu transaction connections",
                hp__rname(c, r, rn, sizeof(rn)), 100 * share, (unsigned long long)b->stats.pool_size);
        hp_doctor_evidence(f, "pool stage: %.2f of %.2f ms per request", hp_doctor_ms(w->stage[HP_STAGE_pool] / w->n),
                           hp_doctor_ms(w->t_ns / w->n));
        hp_doctor_evidence(
            f, "pool: size %llu, in use %lld and waiting %lld at the end; %.0f acquisitions, mean wait %.2f ms, %.0f timeouts",
            (unsigned long long)b->stats.pool_size, (long long)b->stats.gauge[HP_GAUGE_pool_in_use],
            (long long)b->stats.gauge[HP_GAUGE_pool_waiting], waits,
            waits > 0 ? hp_doctor_ms(hp_doctor_d(b->stats.hist[HP_HIST_pool_wait].sum_ns, a->stats.hist[HP_HIST_pool_wait].sum_ns) /
                                     waits)
                      : 0,
            timeouts);
        /* A tenth of a route's time in a queue for connections is worth fixing whatever else it does. */
        f->severity = hp__max_level(f->severity, HP_DOCTOR_MEDIUM);
        f->confidence = timeouts > 0 || b->stats.gauge[HP_GAUGE_pool_waiting] > 0 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        HP__SET(fix, "Give the pool as many connections as the transactions in flight need (--db-pool, per thread), or hold "
                     "each connection for less time");
    }
}

/*
 * memory growth: the heap's trend through the window (a least-squares fit of
 * every reading) is well above zero, adds up to more than a few bytes per
 * request of the busiest route, and has not levelled off in the second half.
 * Single readings rise and fall with the requests in flight (their pools,
 * results and documents) by more than a small leak adds in a few seconds;
 * the fit over many readings sees through that. A bounded structure that is
 * filling up grows in the first half only: it has levelled off when the
 * second half's trend is both well below the whole one's and significantly
 * below the first half's. The second test keeps a steady leak from passing
 * for a levelled one: each half's fit has a standard error about three times
 * the whole one's, so on a noisy machine a straight line's second half often
 * comes out at half its slope by chance alone.
 */
static void hp__rule_memory(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    double slope, se, early, early_se, late, late_se;
    if (a->heap_bytes < 0 || b->heap_bytes < 0 || hp_doctor_fit(b->heap_t, b->heap_v, 0, b->heap_n, &slope, &se) != 0 ||
        hp_doctor_fit(b->heap_t, b->heap_v, 0, b->heap_n / 2, &early, &early_se) != 0 ||
        hp_doctor_fit(b->heap_t, b->heap_v, b->heap_n / 2, b->heap_n, &late, &late_se) != 0)
        return;
    int levelled =
        late < TH(leak_late_ratio) * slope && early - late > TH(leak_level_sigmas) * sqrt(early_se * early_se + late_se * late_se);
    /*
     * A leak grows by the same bytes per request whatever the request rate;
     * warming up grows by less and less. So when the readings carry the
     * requests answered, levelling off is judged on the heap against them: a
     * load that slowed down in the second half (a busy machine, a client
     * that paused) flattens the heap against time, not against requests.
     */
    double q_all, q_all_se, q_early, q_early_se, q_late, q_late_se;
    if (hp_doctor_fit(b->heap_q, b->heap_v, 0, b->heap_n, &q_all, &q_all_se) == 0 &&
        hp_doctor_fit(b->heap_q, b->heap_v, 0, b->heap_n / 2, &q_early, &q_early_se) == 0 &&
        hp_doctor_fit(b->heap_q, b->heap_v, b->heap_n / 2, b->heap_n, &q_late, &q_late_se) == 0)
        levelled = q_late < TH(leak_late_ratio) * q_all &&
                   q_early - q_late > TH(leak_level_sigmas) * sqrt(q_early_se * q_early_se + q_late_se * q_late_se);
    int busiest = -1;
    for (size_t r = 0; r != b->num_routes; ++r)
        if (hp__judged(c, r) && (busiest < 0 || c->route[r].n > c->route[busiest].n))
            busiest = (int)r;
    if (busiest < 0)
        return;
    double grew = slope * c->seconds, per = grew / c->route[busiest].n;
    if (slope < TH(leak_sigmas) * se || grew < TH(leak_min_bytes) || per < TH(leak_bytes_per_request) || levelled)
        return;
    hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_memory_growth, hp__share(grew, a->heap_bytes));
    if (f == NULL)
        return;
    /*
     * Over a window of seconds, a server that is still warming up (allocator
     * caches, connection buffers grown to the largest response so far) grows
     * its heap by tens of KB/s as well, and at the request rates of a small
     * load that is as many bytes per request as a leak. Only a faster trend
     * is more than worth watching.
     */
    f->severity = slope < TH(leak_medium_bytes_per_s)     ? HP_DOCTOR_LOW
                  : per >= 2 * TH(leak_bytes_per_request) ? HP_DOCTOR_HIGH
                                                          : HP_DOCTOR_MEDIUM;
    f->confidence = slope >= 2 * TH(leak_sigmas) * se ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    hp__add_route(c, f, (size_t)busiest, hp__share(grew, a->heap_bytes));
    char rn[96];
    HP__SET(summary, "the heap grows by %.0f bytes per request of %s and does not level off (%.1f MiB per hour at this rate)", per,
            hp__rname(c, (size_t)busiest, rn, sizeof(rn)), slope * 3600 / 1048576);
    hp_doctor_evidence(
        f, "jemalloc allocated, %zu readings: trend %.0f bytes/s (standard error %.0f), %.0f bytes/s in the second half", b->heap_n,
        slope, se, late);
    hp_doctor_evidence(f, "%.0f bytes over the %.0f s window, %.0f per request of the route", grew, c->seconds, per);
    hp_doctor_evidence(f, "%s is the busiest route (%.0f of %.0f requests): a leak that grows per request most likely sits on it",
                       rn, c->route[busiest].n, c->requests);
    /* The heap profile of the window names the allocation site: the top one of hotplate's own code. */
    const char *site = NULL;
    double site_share = 0;
    if (b->heap_profile_ok && b->heap_profile_bytes != 0) {
        char top[256] = "";
        for (size_t i = 0; i != b->num_heap_hot; ++i) {
            double sh = (double)b->heap_hot[i].n / (double)b->heap_profile_bytes;
            if (site == NULL && strncmp(b->heap_hot[i].fn, "hp_", 3) == 0)
                site = b->heap_hot[i].fn, site_share = sh;
            if (i < 3)
                hp__list_share(top, sizeof(top), b->heap_hot[i].fn, 100 * sh);
        }
        hp_doctor_evidence(f, "heap profile of the window (%llu bytes in use, sampled), by allocation site: %s",
                           (unsigned long long)b->heap_profile_bytes, top);
    }
    if (site != NULL) {
        HP__SET(fix,
                "Bound what %s allocates: it holds %.0f%% of the sampled bytes in use; the structure it feeds must evict, be "
                "capped, or be freed with the request",
                site, 100 * site_share);
        return;
    }
    HP__SET(fix, "Take a heap profile under this load (POST /debug/heap/profile?seconds=30&format=folded): the allocation site "
                 "on top is what is kept; bound the structure that keeps it (evict, cap, or free on the request's end)");
}

/* Is route r already covered by a finding of one of the given kinds? @return that finding, or NULL */
static hp_doctor_finding_t *hp__cause_for(hp_doctor_ctx_t *c, int r, const hp_doctor_kind_t *kinds, size_t nk)
{
    for (size_t i = 0; i != c->n; ++i)
        for (size_t k = 0; k != nk; ++k)
            if (c->out[i].kind == kinds[k])
                for (size_t j = 0; j != c->out[i].num_routes; ++j)
                    if (r < 0 || c->out[i].routes[j] == r)
                        return &c->out[i];
    return NULL;
}

/* error or timeout spike: a route answering a large share of 5xx. */
static void hp__rule_errors(hp_doctor_ctx_t *c)
{
    static const hp_doctor_kind_t causes[] = {HP_DOCTOR_lock_wait, HP_DOCTOR_pool_saturation};
    const hp_doctor_snapshot_t *b = c->b;
    for (size_t r = 0; r != b->num_routes; ++r) {
        const hp_doctor_route_win_t *w = &c->route[r];
        if (w->n <= 0 || w->cls[5] < TH(error_min))
            continue;
        double ratio = w->cls[5] / w->n;
        if (ratio < TH(error_ratio))
            continue;
        hp_doctor_finding_t *cause = hp__cause_for(c, (int)r, causes, sizeof(causes) / sizeof(causes[0]));
        hp_doctor_level_t sev = ratio >= 4 * TH(error_ratio) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        const char *cause_title = NULL;
        if (cause != NULL) {
            hp_doctor_kind_name(cause->kind, &cause_title);
            /* A symptom of a cause already found: never ranked above it. */
            if (sev > cause->severity)
                sev = cause->severity;
        }
        hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_error_spike, ratio);
        if (f == NULL)
            return;
        f->severity = sev;
        f->confidence = HP_DOCTOR_HIGH;
        hp__add_route(c, f, r, ratio);
        char rn[96];
        HP__SET(summary, "%s answered %.0f%% of its requests with a 5xx%s%s", hp__rname(c, r, rn, sizeof(rn)), 100 * ratio,
                cause != NULL ? ", explained by the finding: " : "", cause != NULL ? cause_title : "");
        hp_doctor_evidence(f, "%.0f of %.0f answers were 5xx in %.0f s (4xx: %.0f)", w->cls[5], w->n, c->seconds, w->cls[4]);
        for (size_t s = 0; s != b->num_stmts; ++s)
            if (c->stmt[s].errors > 0)
                hp_doctor_evidence(f, "%s: %.0f errors of %.0f executions", b->stmts[s].name, c->stmt[s].errors, c->stmt[s].n);
        HP__SET(fix, "Read the error codes of these answers in the request log (error_reason) and fix their cause%s%s",
                cause != NULL ? ": " : "", cause != NULL ? cause_title : "");
    }
}

/*
 * event-loop stall: the loops' 100 ms timer fires late while the loops are
 * busy with requests' own work. Lag while they are mostly idle is the
 * machine's scheduling (other processes on the CPUs), not the server's: it
 * is left out, and said so in the evidence of nothing.
 */
static void hp__rule_loop(hp_doctor_ctx_t *c)
{
    static const hp_doctor_kind_t causes[] = {HP_DOCTOR_cpu_hot_spot};
    const hp_doctor_snapshot_t *b = c->b;
    double lag_ms = (double)b->stats.hist[HP_HIST_loop_lag].p99_ns[0] / 1e6;
    if (lag_ms < TH(loop_lag_ms) || c->seconds <= 0 || b->threads == 0)
        return;
    int busiest = -1;
    double most = 0, busy = 0;
    for (size_t r = 0; r != b->num_routes; ++r) {
        const hp_doctor_route_win_t *w = &c->route[r];
        double loop = 0, staged = 0;
        for (size_t k = 0; k != sizeof(hp__loop_stages) / sizeof(hp__loop_stages[0]); ++k)
            loop += w->stage[hp__loop_stages[k]];
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            staged += w->stage[s];
        /* "other" (the time no stage accounts for) runs on the loop too: routing, logging, a blocking call. */
        loop += w->t_ns > staged ? w->t_ns - staged : 0;
        busy += loop;
        if (loop > most)
            busiest = (int)r, most = loop;
    }
    double busy_share = busy / ((double)b->threads * c->seconds * 1e9);
    if (busy_share < TH(loop_busy_share))
        return;
    hp_doctor_level_t sev = lag_ms >= 4 * TH(loop_lag_ms) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    hp_doctor_finding_t *cause = hp__cause_for(c, -1, causes, 1);
    if (cause != NULL && sev > cause->severity)
        sev = cause->severity;
    hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_event_loop_stall, busiest >= 0 ? hp__share(most, c->route[busiest].t_ns) : 0);
    if (f == NULL)
        return;
    f->severity = sev;
    char rn[96] = "no route";
    if (busiest >= 0) {
        hp__add_route(c, f, (size_t)busiest, hp__share(most, c->route[busiest].t_ns));
        hp__rname(c, (size_t)busiest, rn, sizeof(rn));
    }
    HP__SET(summary, "the event loops fall behind: their 100 ms timer fires %.0f ms late at p99%s", lag_ms,
            cause != NULL ? ", explained by the CPU hot spot" : "");
    hp_doctor_evidence(f, "loop lag p99 over the last 10 s: %.1f ms", lag_ms);
    hp_doctor_evidence(f, "the loops spent %.0f%% of the window on requests' own work (%zu threads)", 100 * busy_share, b->threads);
    hp_doctor_evidence(f, "the route with the most time on the loop: %s (%.0f ms in the window)", rn, hp_doctor_ms(most));
    f->confidence = busiest >= 0 ? HP_DOCTOR_MEDIUM : HP_DOCTOR_LOW;
    HP__SET(fix, "Nothing may block a loop: move blocking calls to a thread of their own and split long computations; a CPU "
                 "profile (GET /debug/pprof/profile) shows what runs on the loop");
}

/* ---- ranking ------------------------------------------------------------------------------------- */

static int hp__is_symptom(hp_doctor_kind_t k)
{
    return k == HP_DOCTOR_error_spike || k == HP_DOCTOR_event_loop_stall;
}

static int hp__rank_cmp(const void *x, const void *y)
{
    const hp_doctor_finding_t *a = x, *b = y;
    if (a->severity != b->severity)
        return a->severity > b->severity ? -1 : 1;
    if (hp__is_symptom(a->kind) != hp__is_symptom(b->kind))
        return hp__is_symptom(a->kind) ? 1 : -1;
    if (a->impact != b->impact)
        return a->impact > b->impact ? -1 : 1;
    return (int)a->kind - (int)b->kind;
}

/* The frame a stack counts in: its leaf's function (inlined frames folded in), or its deepest hp_* frame (by_site). */
static void hp__stack_frame(const char *p, const char *stack_end, int by_site, const char **fb_out, const char **fe_out)
{
    const char *fe = stack_end, *fb = fe;
    for (;;) {
        fb = fe;
        while (fb > p && fb[-1] != ';')
            --fb;
        int inl = fe - fb >= 8 && memcmp(fe - 8, "[inline]", 8) == 0;
        int site = fe - fb >= 3 && memcmp(fb, "hp_", 3) == 0;
        if (fb > p && (by_site ? !site : inl))
            fe = fb - 1;
        else
            break;
    }
    if (by_site && !(fe - fb >= 3 && memcmp(fb, "hp_", 3) == 0)) {
        /* No hotplate frame: the leaf itself. */
        fe = stack_end, fb = fe;
        while (fb > p && fb[-1] != ';')
            --fb;
    }
    *fb_out = fb, *fe_out = fe;
}

/*
 * Totals per frame (see hp__stack_frame) of folded stacks, the top `max` into
 * hot, most first. @return how many, or -1 when out of memory
 */
static int hp__folded_top(const char *folded, size_t len, int by_site, const char *prefix, hp_doctor_hot_t *hot, size_t max,
                          uint64_t *total)
{
    /*
     * An open-addressing table: a profile names a few thousand functions at
     * most, and a full table only stops counting new names (the busiest
     * functions appear early and often).
     */
    enum { SLOTS = 4096 };
    struct slot {
        const char *fn;
        size_t fn_len;
        uint64_t n;
    } *t = calloc(SLOTS, sizeof(*t));
    *total = 0;
    if (t == NULL)
        return -1;
    const char *p = folded, *end = folded + len;
    hp_folded_line_t l;
    int rc;
    while ((rc = hp_folded_next(&p, end, &l)) != 0) {
        if (rc < 0 || l.count == 0)
            continue; /* a malformed line, or a heap stack freed before the dump, is no sample */
        const char *fb, *fe;
        hp__stack_frame(l.stack, l.stack + l.stack_len, by_site, &fb, &fe);
        size_t fl = (size_t)(fe - fb), h = 5381;
        for (size_t i = 0; i != fl; ++i)
            h = h * 33 + (unsigned char)fb[i];
        for (size_t k = 0; k != SLOTS; ++k) {
            struct slot *e = &t[(h + k) % SLOTS];
            if (e->fn == NULL)
                e->fn = fb, e->fn_len = fl;
            else if (e->fn_len != fl || memcmp(e->fn, fb, fl) != 0)
                continue;
            e->n += l.count;
            break;
        }
        *total += l.count;
    }
    size_t num = 0;
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    for (size_t k = 0; k != SLOTS; ++k) {
        if (t[k].n == 0 || (prefix != NULL && (t[k].fn_len < plen || memcmp(t[k].fn, prefix, plen) != 0)))
            continue;
        size_t i = num < max ? num++ : max;
        if (i == max) {
            if (t[k].n <= hot[max - 1].n)
                continue;
            i = max - 1;
        }
        while (i > 0 && hot[i - 1].n < t[k].n) {
            hot[i] = hot[i - 1];
            --i;
        }
        snprintf(hot[i].fn, sizeof(hot[i].fn), "%.*s", (int)t[k].fn_len, t[k].fn);
        hot[i].n = t[k].n;
    }
    free(t);
    return (int)num;
}

/* @return the number of frames hp__folded_top kept (none when it failed) */
static size_t hp__kept(int n)
{
    return n > 0 ? (size_t)n : 0;
}

void hp_doctor_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s)
{
    int n = hp__folded_top(folded, len, 0, NULL, s->hot, HP_DOCTOR_MAX_HOT, &s->profile_samples);
    s->profile_ok = n >= 0;
    s->num_hot = hp__kept(n);
    /* The same counts, hotplate's own functions only: the ones a fix can change. */
    s->num_hp_hot = hp__kept(hp__folded_top(folded, len, 0, "hp_", s->hp_hot, HP_DOCTOR_MAX_HOT, &s->profile_samples));
}

void hp_doctor_heap_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s)
{
    int n = hp__folded_top(folded, len, 1, NULL, s->heap_hot, HP_DOCTOR_MAX_HOT, &s->heap_profile_bytes);
    s->heap_profile_ok = n >= 0;
    s->num_heap_hot = hp__kept(n);
}

size_t hp_doctor_evaluate(const hp_doctor_snapshot_t *before, const hp_doctor_snapshot_t *after, hp_doctor_finding_t *out,
                          size_t max)
{
    hp_doctor_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return 0;
    c->a = before, c->b = after, c->out = out, c->max = max;
    hp_doctor_window(c);
    /* Causes that start from a statement claim it in this order, the most specific first. */
    hp__rule_missing_index(c);
    hp__rule_n_plus_one(c);
    hp__rule_uncached(c);
    hp__rule_cpu(c);
    hp__rule_lock(c);
    hp__rule_pool(c);
    hp__rule_memory(c);
    hp_doctor_health_rules(c);
    /* Symptoms last: they look for the causes above. */
    hp__rule_errors(c);
    hp__rule_loop(c);
    for (size_t i = 0; i != c->n; ++i)
        if (hp__kinds[out[i].kind].database)
            hp__wait_evidence(c, &out[i]);
    size_t n = c->n;
    free(c);
    qsort(out, n, sizeof(*out), hp__rank_cmp);
    return n;
}
