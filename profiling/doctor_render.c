/*
 * doctor_render: the doctor's report as JSON and as Markdown (see doctor.h).
 * Pure: it reads the two snapshots and the findings the rules wrote.
 */
#include "profiling/doctor.h"
#include "profiling/doctor_window.h"
#include "profiling/pg_health_collect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        json_array_append_new(findings, json_pack("{sI ss ss ss ss ss so sf ss so so}", "rank", (json_int_t)(i + 1), "kind", kind,
                                                  "title", title, "severity", hp_doctor_level_name(f[i].severity), "confidence",
                                                  hp_doctor_level_name(f[i].confidence), "summary", f[i].summary, "routes", rs,
                                                  "impact", round(f[i].impact * 1000) / 1000, "impact_of",
                                                  f[i].kind == HP_DOCTOR_memory_growth  ? "heap"
                                                  : hp_doctor_kind_is_health(f[i].kind) ? "database"
                                                                                        : "route time",
                                                  "evidence", ev, "fix", fix));
    }
    for (size_t i = 0; i != HP_DOCTOR_TH__COUNT; ++i)
        json_array_append_new(ths, json_pack("{ss sf ss ss}", "name", hp_doctor_threshold((hp_doctor_th_t)i)->name, "value",
                                             hp_doctor_threshold((hp_doctor_th_t)i)->value, "unit",
                                             hp_doctor_threshold((hp_doctor_th_t)i)->unit, "doc",
                                             hp_doctor_threshold((hp_doctor_th_t)i)->doc));
    /* What was observed: each route's traffic and time in the window, busiest first. */
    hp_doctor_ctx_t *c = calloc(1, sizeof(*c));
    double seconds = after->at_s - before->at_s;
    if (c != NULL) {
        c->a = before, c->b = after;
        hp_doctor_window(c);
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
                                                    seconds > 0 ? w->n / seconds : 0.0, "mean_ms", hp_doctor_ms(w->t_ns / w->n),
                                                    "5xx", (json_int_t)w->cls[5], "stage_share", stages));
        }
        free(c);
    }
    for (size_t i = 0; i != num_notes; ++i)
        json_array_append_new(jn, json_string(notes[i]));
    /* The window's figures the rules read, whether or not a rule fired: the report's raw material. */
    json_t *plans = json_array();
    for (size_t i = 0; i != after->num_plans; ++i) {
        const hp_doctor_plan_t *p = &after->plans[i];
        json_t *o = json_pack("{ss sf}", "statement", p->stmt, "cost", p->plan.cost);
        if (p->plan.seq_rel[0] != '\0')
            json_object_set_new(
                o, "seq_scan",
                json_pack("{ss ss ss}", "relation", p->plan.seq_rel, "filter", p->plan.filter, "sort_key", p->plan.sort_key));
        if (p->plan.full_index[0] != '\0')
            json_object_set_new(o, "full_index_scan",
                                json_pack("{ss ss}", "index", p->plan.full_index, "leading_column", p->plan.lead));
        if (p->plan.index_sql[0] != '\0')
            json_object_set_new(o, "index", json_string(p->plan.index_sql));
        if (p->hypo_cost >= 0)
            json_object_set_new(o, "hypothetical_cost", json_real(p->hypo_cost));
        if (p->hypo_note[0] != '\0')
            json_object_set_new(o, "note", json_string(p->hypo_note));
        json_array_append_new(plans, o);
    }
    double waits = hp_doctor_d(after->stats.hist[HP_HIST_pool_wait].count, before->stats.hist[HP_HIST_pool_wait].count);
    double slope = 0, se = 0;
    json_t *heap =
        before->heap_bytes >= 0 && after->heap_bytes >= 0
            ? json_pack("{sf sf sI}", "start", before->heap_bytes, "end", after->heap_bytes, "readings", (json_int_t)after->heap_n)
            : json_null();
    if (json_is_object(heap) && hp_doctor_fit(after->heap_t, after->heap_v, 0, after->heap_n, &slope, &se) == 0) {
        json_object_set_new(heap, "trend_bytes_per_s", json_real(round(slope)));
        json_object_set_new(heap, "trend_standard_error", json_real(round(se)));
    }
    /* The readings themselves, [seconds into the window, bytes], so that a reader can plot what the trend was fitted to. */
    json_t *series = json_is_object(heap) ? json_array() : NULL;
    for (size_t i = 0; series != NULL && i != after->heap_n; ++i)
        json_array_append_new(series, json_pack("[ff]", round(after->heap_t[i] * 1000) / 1000, after->heap_v[i]));
    if (series != NULL)
        json_object_set_new(heap, "series", series);
    json_t *signals = json_pack(
        "{sI so sf s{sI sI sI sf} s{sI sf sf sI sI} s{sf sf} so}", "threads", (json_int_t)after->threads, "heap_allocated_bytes",
        heap, "loop_lag_p99_ms", (double)after->stats.hist[HP_HIST_loop_lag].p99_ns[0] / 1e6, "pg_activity", "samples",
        (json_int_t)after->activity_samples, "lock_waits", (json_int_t)after->activity_lock_samples, "long_idle_transactions",
        (json_int_t)after->activity_idle_txn_samples, "oldest_transaction_ms", after->activity_max_xact_ms, "pool", "size",
        (json_int_t)after->stats.pool_size, "acquisitions", waits, "mean_wait_ms",
        waits > 0
            ? hp_doctor_ms(hp_doctor_d(after->stats.hist[HP_HIST_pool_wait].sum_ns, before->stats.hist[HP_HIST_pool_wait].sum_ns) /
                           waits)
            : 0.0,
        "timeouts",
        (json_int_t)hp_doctor_d(after->stats.counter[HP_COUNTER_pool_timeouts], before->stats.counter[HP_COUNTER_pool_timeouts]),
        "waiting_at_end", (json_int_t)after->stats.gauge[HP_GAUGE_pool_waiting], "cache", "lookups",
        hp_doctor_d(after->stats.counter[HP_COUNTER_cache_hits], before->stats.counter[HP_COUNTER_cache_hits]) +
            hp_doctor_d(after->stats.counter[HP_COUNTER_cache_misses], before->stats.counter[HP_COUNTER_cache_misses]) +
            hp_doctor_d(after->stats.counter[HP_COUNTER_cache_errors], before->stats.counter[HP_COUNTER_cache_errors]),
        "loads", hp_doctor_d(after->stats.counter[HP_COUNTER_cache_loads], before->stats.counter[HP_COUNTER_cache_loads]), "plans",
        plans);
    /* The sessions at the root of our backends' lock waits, as pg_stat_activity showed them. */
    json_t *blockers = json_array();
    for (size_t i = 0; i != after->num_blockers; ++i) {
        const hp_doctor_blocker_t *bl = &after->blockers[i];
        json_array_append_new(blockers, json_pack("{sI sb ss ss ss sf so ss ss ss sI sI sI}", "pid", (json_int_t)bl->pid,
                                                  "hotplate", bl->own, "application_name", bl->app, "client", bl->client, "state",
                                                  bl->state, "transaction_ms", round(bl->xact_ms), "idle_in_transaction_ms",
                                                  bl->idle_ms >= 0 ? json_real(round(bl->idle_ms)) : json_null(), "query",
                                                  bl->query, "relations", bl->relations, "lock_mode", bl->lock_mode, "chain_depth",
                                                  (json_int_t)bl->depth, "samples", (json_int_t)bl->samples, "waiters",
                                                  (json_int_t)bl->waiters));
    }
    json_object_set_new(json_object_get(signals, "pg_activity"), "blockers", blockers);
    /* Where PostgreSQL's time went: the samples of hotplate's active backends by what each waited on, the most first. */
    json_t *wait_profile = json_array();
    for (size_t i = 0; i != after->num_waits; ++i)
        json_array_append_new(wait_profile, json_pack("{ss sI sf}", "event", after->waits[i].event, "samples",
                                                      (json_int_t)after->waits[i].samples, "share",
                                                      round(1000.0 * after->waits[i].samples / after->wait_samples) / 1000));
    json_object_set_new(json_object_get(signals, "pg_activity"), "wait_profile", wait_profile);
    json_object_set_new(json_object_get(signals, "pg_activity"), "active_backend_samples", json_integer(after->wait_samples));
    if (after->health_ok) {
        hp_pg_health_limits_t lim;
        hp_pg_health_limits(&lim);
        json_object_set_new(signals, "pg_health", hp_pg_health_json(&after->health, &lim));
    }
    /* The primary and its standbys, as the HA watcher saw them last (an HA stack only). */
    if (after->ha.enabled)
        json_object_set_new(signals, "postgres_ha",
                            json_pack("{sb ss si si sI sf sI}", "connected", after->ha.connected, "primary", after->ha.primary,
                                      "standbys", after->ha.standbys, "sync_standbys", after->ha.sync_standbys, "lag_bytes",
                                      (json_int_t)after->ha.lag_bytes, "lag_seconds", after->ha.lag_seconds, "failovers",
                                      (json_int_t)after->ha.failovers));
    hp_doctor_level_t worst = HP_DOCTOR_LOW;
    for (size_t i = 0; i != n; ++i)
        worst = f[i].severity > worst ? f[i].severity : worst;
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
        if (strcmp(hp__js(f, "impact_of"), "database") == 0)
            hp__md(&b, "- **Impact**: the database as a whole (no route's time is measured by this check)");
        else if (strcmp(hp__js(f, "impact_of"), "heap") == 0)
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
        if (json_array_size(routes) == 0 && strcmp(hp__js(f, "impact_of"), "database") != 0)
            hp__md(&b, " the process");
        hp__md(&b, "\n- **Evidence**:\n");
        json_array_foreach(json_object_get(f, "evidence"), j, v) hp__md(&b, "  - %s\n", json_string_value(v));
        const json_t *fix = json_object_get(f, "fix");
        hp__md(&b, "- **Fix**: %s\n", hp__js(fix, "text"));
        if (json_object_get(fix, "sql") != NULL) {
            /* Several statements come one to a line (";\n"-separated); each line keeps the list item's indent. */
            const char *sql = hp__js(fix, "sql");
            hp__md(&b, "  ```sql\n");
            for (const char *p = sql, *nl; *p != '\0'; p = nl + (*nl != '\0')) {
                nl = p + strcspn(p, "\n");
                hp__md(&b, "  %.*s%s\n", (int)(nl - p), p, *nl == '\0' ? ";" : "");
            }
            hp__md(&b, "  ```\n");
        }
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
