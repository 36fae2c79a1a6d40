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

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const hp_doctor_threshold_t hp__thresholds[] = {
#define HP__DOCTOR_TH_DEF(name, value, unit, doc) {#name, value, unit, doc},
    HP_DOCTOR_THRESHOLDS(HP__DOCTOR_TH_DEF)
#undef HP__DOCTOR_TH_DEF
};

static const struct {
    const char *name, *title, *flag, *good;
} hp__kinds[] = {
#define HP__DOCTOR_KIND_DEF(id, title, flag, good) {#id, title, flag, good},
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

/* ---- the window: differences of the two snapshots ----------------------------------------------- */

typedef struct st_hp_doctor_route_win_t {
    double n, t_ns, stage[HP_STAGE__COUNT], cls[HP_PROBE_STATUS_CLASSES];
} hp_doctor_route_win_t;

typedef struct st_hp_doctor_stmt_win_t {
    double n, errors, rows, t_ns;
    int owned; /* its time belongs to a stage other than db (see the header comment) */
    int taken; /* already explained by a finding */
} hp_doctor_stmt_win_t;

/* The evaluation's working state. */
typedef struct st_hp_doctor_ctx_t {
    const hp_doctor_snapshot_t *a, *b;
    double seconds;
    hp_doctor_route_win_t route[HP_DOCTOR_MAX_ROUTES];
    hp_doctor_stmt_win_t stmt[HP_DOCTOR_MAX_STMTS];
    double stmt_total_ns, requests;
    hp_doctor_finding_t *out;
    size_t n, max;
} hp_doctor_ctx_t;

static double hp__d(uint64_t after, uint64_t before)
{
    return after > before ? (double)(after - before) : 0;
}

/* A route of b with the same method and pattern in a, or -1 (both come from one route table, so usually the same index). */
static int hp__route_in(const hp_doctor_snapshot_t *a, const hp_doctor_route_t *rt, size_t hint)
{
    if (hint < a->num_routes && strcmp(a->routes[hint].pattern, rt->pattern) == 0 &&
        strcmp(a->routes[hint].method, rt->method) == 0)
        return (int)hint;
    for (size_t i = 0; i != a->num_routes; ++i)
        if (strcmp(a->routes[i].pattern, rt->pattern) == 0 && strcmp(a->routes[i].method, rt->method) == 0)
            return (int)i;
    return -1;
}

static void hp__window(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    static const hp_doctor_route_t zero_route;
    c->seconds = b->at_s - a->at_s;
    for (size_t i = 0; i != b->num_routes; ++i) {
        int j = hp__route_in(a, &b->routes[i], i);
        const hp_doctor_route_t *ra = j >= 0 ? &a->routes[j] : &zero_route, *rb = &b->routes[i];
        hp_doctor_route_win_t *w = &c->route[i];
        w->n = hp__d(rb->count, ra->count);
        w->t_ns = hp__d(rb->latency_ns, ra->latency_ns);
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            w->stage[s] = hp__d(rb->stage_ns[s], ra->stage_ns[s]);
        for (size_t k = 0; k != HP_PROBE_STATUS_CLASSES; ++k)
            w->cls[k] = hp__d(rb->by_class[k], ra->by_class[k]);
        c->requests += w->n;
    }
    for (size_t i = 0; i != b->num_stmts; ++i) {
        const hp_doctor_stmt_t *sb = &b->stmts[i], *sa = NULL;
        for (size_t j = 0; j != a->num_stmts && sa == NULL; ++j)
            if (strcmp(a->stmts[j].name, sb->name) == 0)
                sa = &a->stmts[j];
        hp_doctor_stmt_win_t *w = &c->stmt[i];
        w->n = hp__d(sb->count, sa != NULL ? sa->count : 0);
        w->errors = hp__d(sb->errors, sa != NULL ? sa->errors : 0);
        w->rows = hp__d(sb->rows, sa != NULL ? sa->rows : 0);
        w->t_ns = hp__d(sb->time_ns, sa != NULL ? sa->time_ns : 0);
        c->stmt_total_ns += w->t_ns;
    }
    /*
     * Statements that are a stage of their own: both their execution count
     * and their time match that stage's, summed over the routes that have it
     * (one execution per request of those routes). Only auth sends statements
     * outside the db stage (hp_db_query_staged); the on-loop stages and the
     * other waits never do.
     */
    static const hp_stage_t staged[] = {HP_STAGE_auth};
    for (size_t k = 0; k != sizeof(staged) / sizeof(staged[0]); ++k) {
        double stage = 0, requests = 0;
        for (size_t i = 0; i != b->num_routes; ++i)
            if (c->route[i].stage[staged[k]] > 0)
                stage += c->route[i].stage[staged[k]], requests += c->route[i].n;
        if (stage <= 0)
            continue;
        for (size_t i = 0; i != b->num_stmts; ++i)
            if (c->stmt[i].n > 0 && fabs(c->stmt[i].t_ns - stage) <= TH(stage_match) * stage &&
                fabs(c->stmt[i].n - requests) <= TH(stage_match) * requests)
                c->stmt[i].owned = 1;
    }
}

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
    if (c->n == c->max)
        return NULL;
    hp_doctor_finding_t *f = &c->out[c->n++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->impact = impact < 0 ? 0 : impact > 1 ? 1 : impact;
    f->severity = hp__level(f->impact);
    f->confidence = HP_DOCTOR_MEDIUM;
    /* The server's own switch for this cause, when it is set the other way. */
    const char *flag = hp__kinds[kind].flag, *good = hp__kinds[kind].good;
    for (size_t i = 0; flag != NULL && i != c->b->num_flags; ++i)
        if (strcmp(c->b->flags[i].name, flag) == 0 && strcmp(c->b->flags[i].value, good) != 0)
            snprintf(f->flag, sizeof(f->flag), "%s=%s", flag, good);
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

__attribute__((format(printf, 2, 3))) static void hp__evidence(hp_doctor_finding_t *f, const char *fmt, ...)
{
    if (f->num_evidence == HP_DOCTOR_MAX_EVIDENCE)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->evidence[f->num_evidence++], sizeof(f->evidence[0]), fmt, ap);
    va_end(ap);
}

#define HP__SET(field, ...) snprintf(f->field, sizeof(f->field), __VA_ARGS__)

static const char *hp__rname(const hp_doctor_ctx_t *c, size_t r, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s", c->b->routes[r].method, c->b->routes[r].pattern);
    return buf;
}

static double hp__ms(double ns)
{
    return ns / 1e6;
}

/*
 * The routes that run each statement only, from the handlers in services/.
 * The probes count statements per statement, not per route, and every read of
 * a thread shares one pipelined connection, so a slow statement also inflates
 * the PostgreSQL wait of the routes queued behind it; inferring its route from
 * the waits alone can then name an innocent route. A statement listed here is
 * attributed to its route; the others (auth_token, cart_*, shared by several
 * routes) fall back to the inference.
 */
static const struct {
    const char *stmt, *method, *pattern;
} hp__stmt_owner[] = {
    {"menu_get", "GET", "/restaurants/{id}/menu"},    {"order_history", "GET", "/users/{id}/orders"},
    {"order_items_for", "GET", "/users/{id}/orders"}, {"restaurant_names", "GET", "/users/{id}/orders"},
    {"order_items_of", "GET", "/users/{id}/orders"},  {"restaurant_name_of", "GET", "/users/{id}/orders"},
    {"restaurant_list", "GET", "/restaurants"},       {"order_insert", "POST", "/orders"},
    {"stock_decrement", "POST", "/orders"},           {"order_by_idempotency_key", "POST", "/orders"},
};

/*
 * The route whose PostgreSQL wait statement s explains best, among those where
 * it runs between lo and hi times per request. @return its index, or -1
 */
static int hp__route_for_stmt(const hp_doctor_ctx_t *c, size_t s, double lo, double hi)
{
    for (size_t k = 0; k != sizeof(hp__stmt_owner) / sizeof(hp__stmt_owner[0]); ++k) {
        if (strcmp(hp__stmt_owner[k].stmt, c->b->stmts[s].name) != 0)
            continue;
        for (size_t r = 0; r != c->b->num_routes; ++r) {
            const hp_doctor_route_win_t *w = &c->route[r];
            if (strcmp(c->b->routes[r].method, hp__stmt_owner[k].method) != 0 ||
                strcmp(c->b->routes[r].pattern, hp__stmt_owner[k].pattern) != 0 || !hp__judged(c, r))
                continue;
            double per = c->stmt[s].n / w->n;
            return per >= lo && per <= hi ? (int)r : -1;
        }
        return -1;
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
 * rows, far more than all index fetches together.
 */
static void hp__rule_missing_index(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    if (!a->tables_ok || !b->tables_ok)
        return;
    for (size_t p = 0; p != b->num_plans; ++p) {
        const hp_doctor_plan_t *pl = &b->plans[p];
        if (pl->seq_rel[0] == '\0' || pl->filter[0] == '\0')
            continue;
        const hp_doctor_table_t *ta = NULL, *tb = NULL;
        for (size_t i = 0; i != b->num_tables; ++i)
            if (strcmp(b->tables[i].name, pl->seq_rel) == 0)
                tb = &b->tables[i];
        for (size_t i = 0; i != a->num_tables; ++i)
            if (strcmp(a->tables[i].name, pl->seq_rel) == 0)
                ta = &a->tables[i];
        if (ta == NULL || tb == NULL)
            continue;
        double scans = (double)(tb->seq_scan - ta->seq_scan), read = (double)(tb->seq_tup_read - ta->seq_tup_read);
        double fetched = (double)(tb->idx_tup_fetch - ta->idx_tup_fetch);
        if (scans < TH(index_min_scans) || read / scans < TH(index_rows_per_scan) || read < TH(index_seq_over_idx) * fetched)
            continue;
        size_t s;
        for (s = 0; s != b->num_stmts && strcmp(b->stmts[s].name, pl->stmt) != 0; ++s)
            ;
        if (s == b->num_stmts || c->stmt[s].n <= 0)
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
        HP__SET(summary, "%s reads %s with a sequential scan: %.0f rows per scan, %.0f scans in %.0f s", pl->stmt, pl->seq_rel,
                read / scans, scans, c->seconds);
        hp__evidence(f, "plan of %s: Seq Scan on %s, Filter: %s%s%s", pl->stmt, pl->seq_rel, pl->filter,
                     pl->sort_key[0] != '\0' ? ", then Sort Key: " : "", pl->sort_key);
        hp__evidence(f,
                     "pg_stat_user_tables %s in the window: seq_scan +%.0f, seq_tup_read +%.0f (%.0f per scan), idx_tup_fetch "
                     "+%.0f, n_live_tup %lld",
                     pl->seq_rel, scans, read, read / scans, fetched, (long long)tb->n_live_tup);
        hp__evidence(f, "%s: %.0f executions, mean %.3f ms, %.0f%% of all statement time", pl->stmt, c->stmt[s].n,
                     hp__ms(c->stmt[s].t_ns / c->stmt[s].n), 100 * hp__share(c->stmt[s].t_ns, c->stmt_total_ns));
        int checked = pl->index_sql[0] != '\0' && pl->hypo_cost >= 0 && pl->hypo_cost < pl->cost;
        f->confidence = checked ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        if (pl->index_sql[0] != '\0') {
            HP__SET(sql, "%s", pl->index_sql);
            HP__SET(fix, "Create the index the plan asks for (the filter's equality columns, then the sort): %s", pl->index_sql);
            if (pl->hypo_cost >= 0)
                HP__SET(check, "hypopg: with this index as a hypothetical index the plan's cost goes from %.1f to %.1f", pl->cost,
                        pl->hypo_cost);
            else
                HP__SET(check, "not checked with a hypothetical index: %s", pl->hypo_note[0] != '\0' ? pl->hypo_note : "unknown");
        } else {
            HP__SET(fix, "Index the columns %s filters %s on (Filter: %s)", pl->stmt, pl->seq_rel, pl->filter);
        }
    }
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
        double group = 0, calls = 0;
        int children[HP_DOCTOR_MAX_STMTS], nc = 0;
        for (size_t s = 0; s != b->num_stmts; ++s) {
            const hp_doctor_stmt_win_t *w = &c->stmt[s];
            if (s == p || w->n < TH(min_stmt_calls) || w->owned || w->taken || !b->stmts[s].is_read ||
                w->n / pw->n < TH(nplus1_calls) || fabs(pw->rows - w->n) > TH(nplus1_rows_match) * w->n)
                continue;
            children[nc++] = (int)s;
            group += w->t_ns;
            calls += w->n;
        }
        if (nc == 0)
            continue;
        /* The parent's route: about one parent per request, and room in its db stage for the whole family. */
        int r = -1;
        double best = 0, family = group + pw->t_ns;
        for (size_t i = 0; i != b->num_routes; ++i) {
            const hp_doctor_route_win_t *rw = &c->route[i];
            double db = rw->stage[HP_STAGE_db], per = rw->n > 0 ? pw->n / rw->n : 0;
            if (!hp__judged(c, i) || db <= 0 || per < TH(uncached_calls_min) || per > TH(uncached_calls_max) ||
                family > TH(fit_slack) * db)
                continue;
            if (family / db > best)
                r = (int)i, best = family / db;
        }
        if (r < 0 || group < TH(nplus1_db_share) * c->route[r].stage[HP_STAGE_db])
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
            hp__evidence(f, "%s: %.0f executions, %.1f per request of the route, mean %.3f ms, %.1f rows each",
                         b->stmts[children[k]].name, w->n, w->n / rw->n, hp__ms(w->t_ns / w->n), w->rows / w->n);
        }
        hp__evidence(f, "%s returned %.0f rows in %.0f executions: each child runs once per row it returned", b->stmts[p].name,
                     pw->rows, pw->n);
        hp__evidence(f, "the children are %.0f%% of the route's PostgreSQL wait (db stage %.2f ms per request)",
                     100 * hp__share(group, rw->stage[HP_STAGE_db]), hp__ms(rw->stage[HP_STAGE_db] / rw->n));
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
    double lookups =
        hp__d(b->cache_hits, a->cache_hits) + hp__d(b->cache_misses, a->cache_misses) + hp__d(b->cache_errors, a->cache_errors);
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
        hp__evidence(f, "%s: %.0f executions for %.0f requests, mean %.3f ms, %.0f%% of all statement time in the window",
                     b->stmts[s].name, w->n, rw->n, hp__ms(w->t_ns / w->n), 100 * stmt_share);
        hp__evidence(f, "db stage: %.0f%% of the route's time (%.2f of %.2f ms per request)", 100 * db_share,
                     hp__ms(rw->stage[HP_STAGE_db] / rw->n), hp__ms(rw->t_ns / rw->n));
        hp__evidence(f, "cache: %.0f lookups in the window (%.2f per request of the route); loads from PostgreSQL %.0f", lookups,
                     per_lookup, hp__d(b->cache_loads, a->cache_loads));
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
        per_ms[r] = hp__ms(loop / c->route[r].n);
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
        hp__evidence(f,
                     "%s: %.0f us of computation per request (compute stage), %.2f ms on the loop in all (parse %.2f, render "
                     "%.2f), %.0f%% of its %.2f ms; %.0f requests",
                     hp__rname(c, r, rn, sizeof(rn)), compute_us[r], per_ms[r], hp__ms(w->stage[HP_STAGE_parse] / w->n),
                     hp__ms(w->stage[HP_STAGE_render] / w->n), 100 * share[r], hp__ms(w->t_ns / w->n), w->n);
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
        for (size_t i = 0; i != b->num_hot && i != 3; ++i) {
            size_t len = strlen(top);
            snprintf(top + len, sizeof(top) - len, "%s%s %.0f%%", i != 0 ? ", " : "", b->hot[i].fn,
                     100.0 * (double)b->hot[i].samples / (double)b->profile_samples);
        }
        for (size_t i = 0; i != b->num_hp_hot && i != 3; ++i) {
            double sh = (double)b->hp_hot[i].samples / (double)b->profile_samples;
            /*
             * With real computation behind the finding, the hottest of hotplate's functions is the one to change,
             * however busy the rest of the process keeps the profile. Without it, a function with a few percent of
             * the samples is not where the time goes, and the fix names none.
             */
            if (i == 0 && (sh >= TH(cpu_fn_share) || top_us >= TH(cpu_compute_us)))
                fn = b->hp_hot[i].fn, fn_share = sh;
            size_t len = strlen(own);
            snprintf(own + len, sizeof(own) - len, "%s%s %.0f%%", i != 0 ? ", " : "", b->hp_hot[i].fn, 100 * sh);
        }
        hp__evidence(f, "CPU profile of the window (%llu samples), functions by samples of their own: %s; of hotplate's code: %s",
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
 * lock wait or long transaction: pg_stat_activity, sampled through the
 * window, keeps showing backends that wait for a lock or sit idle inside an
 * open transaction.
 */
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
    int r = hp__txn_route(c, &wait_share);
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
        hp__evidence(f, "%s waits %.0f%% of its time: db stage %.2f ms and pool stage %.2f ms per request; payment %.2f ms inside",
                     rn, 100 * wait_share, hp__ms(w->stage[HP_STAGE_db] / w->n), hp__ms(w->stage[HP_STAGE_pool] / w->n),
                     hp__ms(w->stage[HP_STAGE_payment] / w->n));
        if (w->cls[5] > 0)
            hp__evidence(f, "%s answered %.0f 5xx of %.0f (lock_timeout 504, pool_exhausted 503)", rn, w->cls[5], w->n);
    }
    hp__evidence(f,
                 "pg_stat_activity, %d samples: a backend waiting on a Lock for %.0f ms or more in %d, a transaction idle for as "
                 "long in %d; oldest transaction seen %.0f ms",
                 b->activity_samples, TH(lock_min_ms), b->activity_lock_samples, b->activity_idle_txn_samples,
                 b->activity_max_xact_ms);
    /* The statements that failed or waited in the window: the ones that take row locks. */
    for (size_t s = 0; s != b->num_stmts; ++s)
        if (!b->stmts[s].is_read && c->stmt[s].n > 0 && c->stmt[s].errors > 0)
            hp__evidence(f, "%s: %.0f errors of %.0f executions, mean %.2f ms", b->stmts[s].name, c->stmt[s].errors, c->stmt[s].n,
                         hp__ms(c->stmt[s].t_ns / c->stmt[s].n));
    f->confidence = b->activity_lock_samples > 0 && b->activity_idle_txn_samples > 0 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
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
        double waits = hp__d(b->pool_wait_count, a->pool_wait_count), timeouts = hp__d(b->pool_timeouts, a->pool_timeouts);
        HP__SET(summary, "%s spends %.0f%% of its time waiting for one of %llu transaction connections",
                hp__rname(c, r, rn, sizeof(rn)), 100 * share, (unsigned long long)b->pool_size);
        hp__evidence(f, "pool stage: %.2f of %.2f ms per request", hp__ms(w->stage[HP_STAGE_pool] / w->n), hp__ms(w->t_ns / w->n));
        hp__evidence(
            f, "pool: size %llu, in use %lld and waiting %lld at the end; %.0f acquisitions, mean wait %.2f ms, %.0f timeouts",
            (unsigned long long)b->pool_size, (long long)b->pool_in_use, (long long)b->pool_waiting, waits,
            waits > 0 ? hp__ms(hp__d(b->pool_wait_ns, a->pool_wait_ns) / waits) : 0, timeouts);
        /* A tenth of a route's time in a queue for connections is worth fixing whatever else it does. */
        f->severity = hp__max_level(f->severity, HP_DOCTOR_MEDIUM);
        f->confidence = timeouts > 0 || b->pool_waiting > 0 ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
        HP__SET(fix, "Give the pool as many connections as the transactions in flight need (--db-pool, per thread), or hold "
                     "each connection for less time");
    }
}

/* Least-squares slope of v over t (points from..to-1), with its standard error. @return 0, or -1 with too few points */
static int hp__fit(const double *t, const double *v, size_t from, size_t to, double *slope, double *se)
{
    if (to <= from || to - from < 4)
        return -1;
    double n = (double)(to - from), mt = 0, mv = 0, sxx = 0, sxy = 0, rss = 0;
    for (size_t i = from; i != to; ++i)
        mt += t[i], mv += v[i];
    mt /= n, mv /= n;
    for (size_t i = from; i != to; ++i)
        sxx += (t[i] - mt) * (t[i] - mt), sxy += (t[i] - mt) * (v[i] - mv);
    if (sxx <= 0)
        return -1;
    *slope = sxy / sxx;
    double lag = 0, prev = 0;
    for (size_t i = from; i != to; ++i) {
        double r = v[i] - mv - *slope * (t[i] - mt);
        rss += r * r;
        if (i != from)
            lag += r * prev;
        prev = r;
    }
    *se = sqrt(rss / (n - 2) / sxx);
    /*
     * The textbook error assumes independent residuals. Heap readings a tenth
     * of a second apart are not: the allocator's caches fill and flush, and
     * requests in flight come and go over several readings, so the heap
     * wanders, and a wander over 8 s fits a line as well as a leak does. With
     * lag-1 autocorrelation rho of the residuals, the error grows by
     * sqrt((1 + rho) / (1 - rho)) (the AR(1) correction of the effective
     * sample size); a real leak stays many errors above zero after it.
     */
    /* Capped below 1, where the correction has no bound. */
    double rho = rss > 0 ? fmin(lag / rss, 0.95) : 0;
    if (rho > 0)
        *se *= sqrt((1 + rho) / (1 - rho));
    return 0;
}

/*
 * memory growth: the heap's trend through the window (a least-squares fit of
 * every reading) is well above zero, adds up to more than a few bytes per
 * request of the busiest route, and has not levelled off in the second half.
 * Single readings rise and fall with the requests in flight (their pools,
 * results and documents) by more than a small leak adds in a few seconds;
 * the fit over many readings sees through that. A bounded structure that is
 * filling up grows in the first half only.
 */
static void hp__rule_memory(hp_doctor_ctx_t *c)
{
    const hp_doctor_snapshot_t *a = c->a, *b = c->b;
    double slope, se, late, late_se;
    if (a->heap_bytes < 0 || b->heap_bytes < 0 || hp__fit(b->heap_t, b->heap_v, 0, b->heap_n, &slope, &se) != 0 ||
        hp__fit(b->heap_t, b->heap_v, b->heap_n / 2, b->heap_n, &late, &late_se) != 0)
        return;
    int busiest = -1;
    for (size_t r = 0; r != b->num_routes; ++r)
        if (hp__judged(c, r) && (busiest < 0 || c->route[r].n > c->route[busiest].n))
            busiest = (int)r;
    if (busiest < 0)
        return;
    double grew = slope * c->seconds, per = grew / c->route[busiest].n;
    if (slope < TH(leak_sigmas) * se || grew < TH(leak_min_bytes) || per < TH(leak_bytes_per_request) ||
        late < TH(leak_late_ratio) * slope)
        return;
    hp_doctor_finding_t *f = hp__new(c, HP_DOCTOR_memory_growth, hp__share(grew, a->heap_bytes));
    if (f == NULL)
        return;
    f->severity = per >= 2 * TH(leak_bytes_per_request) ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    f->confidence = slope >= 2 * TH(leak_sigmas) * se ? HP_DOCTOR_HIGH : HP_DOCTOR_MEDIUM;
    hp__add_route(c, f, (size_t)busiest, hp__share(grew, a->heap_bytes));
    char rn[96];
    HP__SET(summary, "the heap grows by %.0f bytes per request of %s and does not level off (%.1f MiB per hour at this rate)", per,
            hp__rname(c, (size_t)busiest, rn, sizeof(rn)), slope * 3600 / 1048576);
    hp__evidence(f, "jemalloc allocated, %zu readings: trend %.0f bytes/s (standard error %.0f), %.0f bytes/s in the second half",
                 b->heap_n, slope, se, late);
    hp__evidence(f, "%.0f bytes over the %.0f s window, %.0f per request of the route", grew, c->seconds, per);
    hp__evidence(f, "%s is the busiest route (%.0f of %.0f requests): a leak that grows per request most likely sits on it", rn,
                 c->route[busiest].n, c->requests);
    /* The heap profile of the window names the allocation site: the top one of hotplate's own code. */
    const char *site = NULL;
    double site_share = 0;
    if (b->heap_profile_ok && b->heap_profile_bytes != 0) {
        char top[256] = "";
        for (size_t i = 0; i != b->num_heap_hot; ++i) {
            double sh = (double)b->heap_hot[i].bytes / (double)b->heap_profile_bytes;
            if (site == NULL && strncmp(b->heap_hot[i].fn, "hp_", 3) == 0)
                site = b->heap_hot[i].fn, site_share = sh;
            size_t len = strlen(top);
            if (i < 3)
                snprintf(top + len, sizeof(top) - len, "%s%s %.0f%%", i != 0 ? ", " : "", b->heap_hot[i].fn, 100 * sh);
        }
        hp__evidence(f, "heap profile of the window (%llu bytes in use, sampled), by allocation site: %s",
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
        hp__evidence(f, "%.0f of %.0f answers were 5xx in %.0f s (4xx: %.0f)", w->cls[5], w->n, c->seconds, w->cls[4]);
        for (size_t s = 0; s != b->num_stmts; ++s)
            if (c->stmt[s].errors > 0)
                hp__evidence(f, "%s: %.0f errors of %.0f executions", b->stmts[s].name, c->stmt[s].errors, c->stmt[s].n);
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
    double lag_ms = (double)b->loop_lag_p99_ns / 1e6;
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
    hp__evidence(f, "loop lag p99 over the last 10 s: %.1f ms", lag_ms);
    hp__evidence(f, "the loops spent %.0f%% of the window on requests' own work (%zu threads)", 100 * busy_share, b->threads);
    hp__evidence(f, "the route with the most time on the loop: %s (%.0f ms in the window)", rn, hp__ms(most));
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

typedef struct st_hp__hot_t {
    char fn[96];
    uint64_t n;
} hp__hot_t;

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
static int hp__folded_top(const char *folded, size_t len, int by_site, const char *prefix, hp__hot_t *hot, size_t max,
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
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *sp = eol;
        while (sp > p && sp[-1] != ' ')
            --sp;
        uint64_t n = sp > p + 1 ? strtoull(sp, NULL, 10) : 0;
        if (n != 0) {
            const char *fb, *fe;
            hp__stack_frame(p, sp - 1, by_site, &fb, &fe);
            size_t fl = (size_t)(fe - fb), h = 5381;
            for (size_t i = 0; i != fl; ++i)
                h = h * 33 + (unsigned char)fb[i];
            for (size_t k = 0; k != SLOTS; ++k) {
                struct slot *e = &t[(h + k) % SLOTS];
                if (e->fn == NULL)
                    e->fn = fb, e->fn_len = fl;
                else if (e->fn_len != fl || memcmp(e->fn, fb, fl) != 0)
                    continue;
                e->n += n;
                break;
            }
            *total += n;
        }
        p = eol + 1;
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

void hp_doctor_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s)
{
    hp__hot_t hot[HP_DOCTOR_MAX_HOT];
    int n = hp__folded_top(folded, len, 0, NULL, hot, HP_DOCTOR_MAX_HOT, &s->profile_samples);
    s->profile_ok = n >= 0;
    s->num_hot = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i != s->num_hot; ++i) {
        memcpy(s->hot[i].fn, hot[i].fn, sizeof(s->hot[i].fn));
        s->hot[i].samples = hot[i].n;
    }
    /* The same counts, hotplate's own functions only: the ones a fix can change. */
    n = hp__folded_top(folded, len, 0, "hp_", hot, HP_DOCTOR_MAX_HOT, &s->profile_samples);
    s->num_hp_hot = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i != s->num_hp_hot; ++i) {
        memcpy(s->hp_hot[i].fn, hot[i].fn, sizeof(s->hp_hot[i].fn));
        s->hp_hot[i].samples = hot[i].n;
    }
}

void hp_doctor_heap_profile_read(const char *folded, size_t len, hp_doctor_snapshot_t *s)
{
    hp__hot_t hot[HP_DOCTOR_MAX_HOT];
    int n = hp__folded_top(folded, len, 1, NULL, hot, HP_DOCTOR_MAX_HOT, &s->heap_profile_bytes);
    s->heap_profile_ok = n >= 0;
    s->num_heap_hot = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i != s->num_heap_hot; ++i) {
        memcpy(s->heap_hot[i].fn, hot[i].fn, sizeof(s->heap_hot[i].fn));
        s->heap_hot[i].bytes = hot[i].n;
    }
}

size_t hp_doctor_evaluate(const hp_doctor_snapshot_t *before, const hp_doctor_snapshot_t *after, hp_doctor_finding_t *out,
                          size_t max)
{
    hp_doctor_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return 0;
    c->a = before, c->b = after, c->out = out, c->max = max;
    hp__window(c);
    /* Causes that start from a statement claim it in this order, the most specific first. */
    hp__rule_missing_index(c);
    hp__rule_n_plus_one(c);
    hp__rule_uncached(c);
    hp__rule_cpu(c);
    hp__rule_lock(c);
    hp__rule_pool(c);
    hp__rule_memory(c);
    /* Symptoms last: they look for the causes above. */
    hp__rule_errors(c);
    hp__rule_loop(c);
    size_t n = c->n;
    free(c);
    qsort(out, n, sizeof(*out), hp__rank_cmp);
    return n;
}

/* ---- the index a scan asks for ------------------------------------------------------------------- */

static int hp__ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
}

/* Appends a column (alias stripped) unless the list has it. @return 0, or -1 when it does not fit */
static int hp__add_col(char cols[][80], size_t *n, size_t max, const char *p, size_t len, const char *dir)
{
    const char *dot = memchr(p, '.', len);
    if (dot != NULL)
        len -= (size_t)(dot + 1 - p), p = dot + 1;
    if (len == 0 || len >= 48)
        return -1;
    for (size_t i = 0; i != *n; ++i)
        if (strncmp(cols[i], p, len) == 0 && (cols[i][len] == '\0' || cols[i][len] == ' '))
            return 0;
    if (*n == max)
        return -1;
    snprintf(cols[(*n)++], 80, "%.*s%s", (int)len, p, dir);
    return 0;
}

int hp_doctor_index_sql(const char *rel, const char *filter, const char *sort_key, char *out, size_t outlen)
{
    char cols[8][80];
    size_t n = 0;
    /* Equality columns: an identifier directly before " = " (EXPLAIN prints "(user_id = '7'::bigint)"). */
    for (const char *p = filter; (p = strstr(p, " = ")) != NULL; p += 3) {
        const char *e = p, *s = p;
        while (s > filter && hp__ident_char(s[-1]))
            --s;
        if (s == e || (*s >= '0' && *s <= '9') || *s == '.')
            continue;
        hp__add_col(cols, &n, 8, s, (size_t)(e - s), "");
    }
    if (n == 0)
        return -1;
    /* Then the sort keys, in order, with their direction. */
    for (const char *p = sort_key; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',')
            ++p;
        const char *s = p;
        while (hp__ident_char(*p))
            ++p;
        size_t len = (size_t)(p - s);
        const char *dir = strncmp(p, " DESC", 5) == 0 ? " DESC" : "";
        const char *next = strchr(p, ',');
        if (len != 0)
            hp__add_col(cols, &n, 8, s, len, dir);
        if (next == NULL)
            break;
        p = next;
    }
    int w = snprintf(out, outlen, "CREATE INDEX CONCURRENTLY ON %s (", rel);
    for (size_t i = 0; i != n && w > 0 && (size_t)w < outlen; ++i)
        w += snprintf(out + w, outlen - (size_t)w, "%s%s", i != 0 ? ", " : "", cols[i]);
    if (w > 0 && (size_t)w < outlen)
        w += snprintf(out + w, outlen - (size_t)w, ")");
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}

/* ---- reading a plan ------------------------------------------------------------------------------ */

/*
 * Keeps the costliest sequential scan with a filter, and the nearest sort
 * above it (`sort`: the Sort Key of the closest Sort ancestor, or NULL).
 */
static void hp__plan_walk(const json_t *node, hp_doctor_plan_t *out, double *seq_cost, const char *sort, int depth)
{
    if (!json_is_object(node) || depth > 64)
        return;
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    char keys[256];
    if (type != NULL && (strcmp(type, "Sort") == 0 || strcmp(type, "Incremental Sort") == 0)) {
        /* Sort Key is an array of expressions; keep them comma-separated. */
        keys[0] = '\0';
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(node, "Sort Key"), i, k)
        {
            size_t len = strlen(keys);
            snprintf(keys + len, sizeof(keys) - len, "%s%s", i != 0 ? ", " : "",
                     json_string_value(k) != NULL ? json_string_value(k) : "");
        }
        sort = keys;
    }
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *filter = json_string_value(json_object_get(node, "Filter"));
    double cost = json_number_value(json_object_get(node, "Total Cost"));
    if (type != NULL && strcmp(type, "Seq Scan") == 0 && rel != NULL && filter != NULL && cost > *seq_cost) {
        *seq_cost = cost;
        snprintf(out->seq_rel, sizeof(out->seq_rel), "%s", rel);
        snprintf(out->filter, sizeof(out->filter), "%s", filter);
        /* Only the sort keys of this relation (its alias, or none) can come from an index on it; a join sorts by others too. */
        const char *alias = json_string_value(json_object_get(node, "Alias"));
        size_t alen = alias != NULL ? strlen(alias) : 0, o = 0;
        out->sort_key[0] = '\0';
        for (const char *p = sort; p != NULL && *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
            const char *dot = memchr(p, '.', len);
            int ours = dot == NULL || (alias != NULL && (size_t)(dot - p) == alen && strncmp(p, alias, alen) == 0);
            if (ours && o + len + 3 < sizeof(out->sort_key))
                o += (size_t)snprintf(out->sort_key + o, sizeof(out->sort_key) - o, "%s%.*s", o != 0 ? ", " : "", (int)len, p);
            p = e != NULL ? e + 1 : NULL;
            while (p != NULL && *p == ' ')
                ++p;
        }
    }
    size_t i;
    json_t *child;
    json_array_foreach(json_object_get(node, "Plans"), i, child) hp__plan_walk(child, out, seq_cost, sort, depth + 1);
}

int hp_doctor_plan_read(const json_t *explain, hp_doctor_plan_t *out)
{
    const json_t *doc = json_is_array(explain) ? json_array_get(explain, 0) : explain;
    const json_t *plan = json_object_get(doc, "Plan");
    if (!json_is_object(plan))
        return -1;
    out->cost = json_number_value(json_object_get(plan, "Total Cost"));
    out->seq_rel[0] = out->filter[0] = out->sort_key[0] = out->index_sql[0] = '\0';
    double seq_cost = -1;
    hp__plan_walk(plan, out, &seq_cost, NULL, 0);
    if (out->seq_rel[0] != '\0' &&
        hp_doctor_index_sql(out->seq_rel, out->filter, out->sort_key, out->index_sql, sizeof(out->index_sql)) != 0)
        out->index_sql[0] = '\0';
    return 0;
}

/* ---- rendering ----------------------------------------------------------------------------------- */

json_t *hp_doctor_json(const hp_doctor_snapshot_t *before, const hp_doctor_snapshot_t *after, const hp_doctor_finding_t *f,
                       size_t n, const char *const *notes, size_t num_notes)
{
    json_t *findings = json_array(), *ths = json_array(), *routes = json_array(), *jn = json_array();
    for (size_t i = 0; i != n; ++i) {
        const char *title;
        const char *kind = hp_doctor_kind_name(f[i].kind, &title);
        json_t *rs = json_array(), *ev = json_array();
        for (size_t j = 0; j != f[i].num_routes; ++j) {
            const hp_doctor_route_t *rt = &after->routes[f[i].routes[j]];
            json_array_append_new(rs, json_pack("{ss ss sf}", "method", rt->method, "route", rt->pattern, "share",
                                                round(f[i].route_share[j] * 1000) / 1000));
        }
        for (size_t j = 0; j != f[i].num_evidence; ++j)
            json_array_append_new(ev, json_string(f[i].evidence[j]));
        json_t *fix = json_pack("{ss}", "text", f[i].fix);
        if (f[i].sql[0] != '\0')
            json_object_set_new(fix, "sql", json_string(f[i].sql));
        if (f[i].flag[0] != '\0')
            json_object_set_new(fix, "flag", json_string(f[i].flag));
        if (f[i].check[0] != '\0')
            json_object_set_new(fix, "check", json_string(f[i].check));
        json_array_append_new(findings,
                              json_pack("{sI ss ss ss ss ss so sf ss so so}", "rank", (json_int_t)(i + 1), "kind", kind, "title",
                                        title, "severity", hp_doctor_level_name(f[i].severity), "confidence",
                                        hp_doctor_level_name(f[i].confidence), "summary", f[i].summary, "routes", rs, "impact",
                                        round(f[i].impact * 1000) / 1000, "impact_of",
                                        f[i].kind == HP_DOCTOR_memory_growth ? "heap" : "route time", "evidence", ev, "fix", fix));
    }
    for (size_t i = 0; i != HP_DOCTOR_TH__COUNT; ++i)
        json_array_append_new(ths, json_pack("{ss sf ss ss}", "name", hp__thresholds[i].name, "value", hp__thresholds[i].value,
                                             "unit", hp__thresholds[i].unit, "doc", hp__thresholds[i].doc));
    /* What was observed: each route's traffic and time in the window, busiest first. */
    hp_doctor_ctx_t *c = calloc(1, sizeof(*c));
    double seconds = after->at_s - before->at_s;
    if (c != NULL) {
        c->a = before, c->b = after;
        hp__window(c);
        for (size_t r = 0; r != after->num_routes; ++r) {
            const hp_doctor_route_win_t *w = &c->route[r];
            if (w->n <= 0)
                continue;
            json_t *stages = json_object();
            for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
                if (w->stage[s] > 0)
                    json_object_set_new(stages, hp_stage_name((hp_stage_t)s),
                                        json_real(round(1000 * w->stage[s] / w->t_ns) / 1000));
            json_array_append_new(routes, json_pack("{ss ss sI sf sf sI so}", "method", after->routes[r].method, "route",
                                                    after->routes[r].pattern, "requests", (json_int_t)w->n, "rate_per_s",
                                                    seconds > 0 ? w->n / seconds : 0.0, "mean_ms", hp__ms(w->t_ns / w->n), "5xx",
                                                    (json_int_t)w->cls[5], "stage_share", stages));
        }
        free(c);
    }
    for (size_t i = 0; i != num_notes; ++i)
        json_array_append_new(jn, json_string(notes[i]));
    /* The window's figures the rules read, whether or not a rule fired: the report's raw material. */
    json_t *plans = json_array();
    for (size_t i = 0; i != after->num_plans; ++i) {
        const hp_doctor_plan_t *p = &after->plans[i];
        json_t *o = json_pack("{ss sf}", "statement", p->stmt, "cost", p->cost);
        if (p->seq_rel[0] != '\0')
            json_object_set_new(o, "seq_scan",
                                json_pack("{ss ss ss}", "relation", p->seq_rel, "filter", p->filter, "sort_key", p->sort_key));
        if (p->index_sql[0] != '\0')
            json_object_set_new(o, "index", json_string(p->index_sql));
        if (p->hypo_cost >= 0)
            json_object_set_new(o, "hypothetical_cost", json_real(p->hypo_cost));
        if (p->hypo_note[0] != '\0')
            json_object_set_new(o, "note", json_string(p->hypo_note));
        json_array_append_new(plans, o);
    }
    double waits = hp__d(after->pool_wait_count, before->pool_wait_count);
    double slope = 0, se = 0;
    json_t *heap =
        before->heap_bytes >= 0 && after->heap_bytes >= 0
            ? json_pack("{sf sf sI}", "start", before->heap_bytes, "end", after->heap_bytes, "readings", (json_int_t)after->heap_n)
            : json_null();
    if (json_is_object(heap) && hp__fit(after->heap_t, after->heap_v, 0, after->heap_n, &slope, &se) == 0) {
        json_object_set_new(heap, "trend_bytes_per_s", json_real(round(slope)));
        json_object_set_new(heap, "trend_standard_error", json_real(round(se)));
    }
    json_t *signals =
        json_pack("{sI so sf s{sI sI sI sf} s{sI sf sf sI sI} s{sf sf} so}", "threads", (json_int_t)after->threads,
                  "heap_allocated_bytes", heap, "loop_lag_p99_ms", (double)after->loop_lag_p99_ns / 1e6, "pg_activity", "samples",
                  (json_int_t)after->activity_samples, "lock_waits", (json_int_t)after->activity_lock_samples,
                  "long_idle_transactions", (json_int_t)after->activity_idle_txn_samples, "oldest_transaction_ms",
                  after->activity_max_xact_ms, "pool", "size", (json_int_t)after->pool_size, "acquisitions", waits, "mean_wait_ms",
                  waits > 0 ? hp__ms(hp__d(after->pool_wait_ns, before->pool_wait_ns) / waits) : 0.0, "timeouts",
                  (json_int_t)hp__d(after->pool_timeouts, before->pool_timeouts), "waiting_at_end", (json_int_t)after->pool_waiting,
                  "cache", "lookups",
                  hp__d(after->cache_hits, before->cache_hits) + hp__d(after->cache_misses, before->cache_misses) +
                      hp__d(after->cache_errors, before->cache_errors),
                  "loads", hp__d(after->cache_loads, before->cache_loads), "plans", plans);
    hp_doctor_level_t worst = HP_DOCTOR_LOW;
    for (size_t i = 0; i != n; ++i)
        worst = hp__max_level(worst, f[i].severity);
    return json_pack("{sf ss so so so so so}", "window_s", round(seconds * 10) / 10, "worst",
                     n != 0 ? hp_doctor_level_name(worst) : "none", "findings", findings, "observed", routes, "signals", signals,
                     "notes", jn, "thresholds", ths);
}

/* A growable string for the Markdown rendering. */
typedef struct st_hp_doctor_buf_t {
    char *p;
    size_t len, cap;
    int failed;
} hp_doctor_buf_t;

__attribute__((format(printf, 2, 3))) static void hp__md(hp_doctor_buf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = (b->cap + (size_t)w) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

static const char *hp__js(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

char *hp_doctor_markdown(const json_t *report)
{
    hp_doctor_buf_t b = {malloc(4096), 0, 4096, 0};
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    const json_t *findings = json_object_get(report, "findings");
    size_t i, j;
    json_t *f, *v;
    hp__md(&b, "# hotplate doctor\n\nObserved %.0f s of traffic. ", json_number_value(json_object_get(report, "window_s")));
    if (json_array_size(findings) == 0)
        hp__md(&b, "No findings: no rule's threshold was reached.\n");
    else
        hp__md(&b, "%zu finding%s, worst severity %s.\n", json_array_size(findings), json_array_size(findings) == 1 ? "" : "s",
               hp__js(report, "worst"));
    json_array_foreach(findings, i, f)
    {
        const char *sum = hp__js(f, "summary");
        /* Summaries start lower-case (they are sentence parts elsewhere); a paragraph starts with a capital, unless with a name. */
        hp__md(&b, "\n## %lld. %s (%s severity, %s confidence)\n\n%c%s.\n\n",
               (long long)json_integer_value(json_object_get(f, "rank")), hp__js(f, "title"), hp__js(f, "severity"),
               hp__js(f, "confidence"),
               sum[0] >= 'a' && sum[0] <= 'z' && strcspn(sum, " _") == strcspn(sum, " ") ? sum[0] - 'a' + 'A' : sum[0],
               sum[0] != '\0' ? sum + 1 : "");
        const json_t *routes = json_object_get(f, "routes");
        if (strcmp(hp__js(f, "impact_of"), "heap") == 0)
            hp__md(&b, "- **Impact**: the heap grew by %.1f%% in the window, on",
                   100 * json_number_value(json_object_get(f, "impact")));
        else
            hp__md(&b, "- **Impact**: %.0f%% of the time of", 100 * json_number_value(json_object_get(f, "impact")));
        json_array_foreach(routes, j, v)
        {
            hp__md(&b, "%s `%s %s`", j != 0 ? "," : "", hp__js(v, "method"), hp__js(v, "route"));
            if (json_array_size(routes) > 1)
                hp__md(&b, " (%.0f%%)", 100 * json_number_value(json_object_get(v, "share")));
        }
        if (json_array_size(routes) == 0)
            hp__md(&b, " the process");
        hp__md(&b, "\n- **Evidence**:\n");
        json_array_foreach(json_object_get(f, "evidence"), j, v) hp__md(&b, "  - %s\n", json_string_value(v));
        const json_t *fix = json_object_get(f, "fix");
        hp__md(&b, "- **Fix**: %s\n", hp__js(fix, "text"));
        if (json_object_get(fix, "sql") != NULL)
            hp__md(&b, "  ```sql\n  %s;\n  ```\n", hp__js(fix, "sql"));
        if (json_object_get(fix, "check") != NULL)
            hp__md(&b, "  Checked: %s.\n", hp__js(fix, "check"));
        if (json_object_get(fix, "flag") != NULL)
            hp__md(&b, "  This server has a switch for it: `POST /debug/flags` with `%s` (or `--flag %s`).\n", hp__js(fix, "flag"),
                   hp__js(fix, "flag"));
    }
    hp__md(&b,
           "\n## Observed routes\n\n| route | requests | req/s | mean ms | 5xx | largest stage |\n|---|---:|---:|---:|---:|---|\n");
    json_array_foreach(json_object_get(report, "observed"), i, v)
    {
        const char *top = "-";
        double most = 0;
        const char *k;
        json_t *s;
        json_object_foreach(json_object_get(v, "stage_share"), k, s) if (json_number_value(s) > most) top = k,
                                                                                                      most = json_number_value(s);
        hp__md(&b, "| %s %s | %lld | %.1f | %.2f | %lld | %s %.0f%% |\n", hp__js(v, "method"), hp__js(v, "route"),
               (long long)json_integer_value(json_object_get(v, "requests")), json_number_value(json_object_get(v, "rate_per_s")),
               json_number_value(json_object_get(v, "mean_ms")), (long long)json_integer_value(json_object_get(v, "5xx")), top,
               100 * most);
    }
    if (json_array_size(json_object_get(report, "notes")) != 0) {
        hp__md(&b, "\n## Notes\n\n");
        json_array_foreach(json_object_get(report, "notes"), i, v) hp__md(&b, "- %s\n", json_string_value(v));
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
