/*
 * alerts: the embedded alert evaluator (see alerts.h).
 */
#include "profiling/alerts.h"
#include "base/timefmt.h"
#include "runtime/db.h"
#include "profiling/heap.h"
#include "profiling/logs.h"
#include "profiling/procstat.h"
#include "base/clock.h"
#include "base/log.h"
#include "profiling/webhook.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const hp_alert_rule_t hp__rules[] = {
#define HP__ALERT_RULE(name, sev, op, thr, guard, for_s, what) {#name, sev, op, thr, guard, for_s, what},
    HP_ALERT_LIST(HP__ALERT_RULE)
#undef HP__ALERT_RULE
};

const hp_alert_rule_t *hp_alert_rule(hp_alert_id_t id)
{
    return &hp__rules[id];
}

int hp_alerts_init(hp_alerts_t *a)
{
    memset(a, 0, sizeof(*a));
    a->history = calloc(HP_ALERT_HISTORY, sizeof(*a->history));
    return a->history != NULL ? 0 : -1;
}

void hp_alerts_dispose(hp_alerts_t *a)
{
    free(a->history);
    a->history = NULL;
}

/* ---- evaluation (pure: everything comes from the arguments) ---------------------------------- */

static const hp_alert_sample_t *hp__latest(const hp_alerts_t *a)
{
    return &a->history[(a->next + HP_ALERT_HISTORY - 1) % HP_ALERT_HISTORY];
}

/*
 * The newest sample at least `seconds` older than the latest; failing that,
 * the oldest one if it is at least half that old (a rate over a shorter span
 * than asked, as Prometheus's rate() makes do with the samples it has).
 * @return NULL while the history is too short
 */
static const hp_alert_sample_t *hp__ago(const hp_alerts_t *a, int seconds)
{
    const hp_alert_sample_t *last = hp__latest(a), *oldest = NULL;
    for (size_t k = 1; k < a->count; ++k) {
        const hp_alert_sample_t *s = &a->history[(a->next + HP_ALERT_HISTORY - 1 - k) % HP_ALERT_HISTORY];
        if (last->at_s - s->at_s >= seconds)
            return s;
        oldest = s;
    }
    return oldest != NULL && 2 * (last->at_s - oldest->at_s) >= seconds ? oldest : NULL;
}

/* A figure of a sample the rates and slopes are taken of: a field, or a counter of the merged stats (arg is its id). */
typedef double (*hp__figure_fn)(const hp_alert_sample_t *s, int arg);

/* A figure that is a double field of the sample itself: arg is the field's offsetof, as HP__FIELD gives it. */
static double hp__field(const hp_alert_sample_t *s, int arg)
{
    double v;
    memcpy(&v, (const char *)s + arg, sizeof(v));
    return v;
}

#define HP__FIELD(name) ((int)offsetof(hp_alert_sample_t, name))

static double hp__counter(const hp_alert_sample_t *s, int id)
{
    return (double)s->stats.counter[id];
}

/* Per-second rate of a cumulative figure over about `seconds`. @return 0 with *ok cleared when the history is too short */
static double hp__rate(const hp_alerts_t *a, hp__figure_fn figure, int arg, int seconds, int *ok)
{
    const hp_alert_sample_t *last = hp__latest(a), *then = hp__ago(a, seconds);
    if (then == NULL || last->at_s <= then->at_s) {
        *ok = 0;
        return 0;
    }
    double v1 = figure(last, arg), v0 = figure(then, arg);
    *ok = 1;
    return (v1 - v0) / (double)(last->at_s - then->at_s);
}

/* Least-squares slope per second of a figure over the samples of the last `seconds`, as PromQL's deriv(). */
static double hp__slope(const hp_alerts_t *a, hp__figure_fn figure, int arg, int seconds, int *ok)
{
    const hp_alert_sample_t *last = hp__latest(a);
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    int64_t first_at = last->at_s;
    for (size_t k = 0; k < a->count; ++k) {
        const hp_alert_sample_t *s = &a->history[(a->next + HP_ALERT_HISTORY - 1 - k) % HP_ALERT_HISTORY];
        if (last->at_s - s->at_s > seconds)
            break;
        double x = (double)(s->at_s - last->at_s), y = figure(s, arg);
        if (y < 0)
            continue; /* no figure in this sample */
        n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
        first_at = s->at_s;
    }
    double den = n * sxx - sx * sx;
    /* At least a minute of samples, so that one allocation burst is not a trend. */
    if (n < 2 || den == 0 || last->at_s - first_at < 60) {
        *ok = 0;
        return 0;
    }
    *ok = 1;
    return (n * sxy - sx * sy) / den;
}

typedef struct st_hp__obs_ctx_t {
    hp_alerts_t *a;
    int64_t now_s;
    uint64_t now_wall_us;
    hp_alert_event_t *events;
    size_t cap, num_events;
} hp__obs_ctx_t;

static int hp__holds(const hp_alert_rule_t *rule, double value)
{
    return rule->op == '<' ? value < rule->threshold : value > rule->threshold;
}

/* Records that a rule's condition holds now for a subject: starts it pending, or promotes it to firing after for_s. */
static void hp__observe(hp__obs_ctx_t *c, hp_alert_id_t id, const char *subject, double value)
{
    hp_alerts_t *a = c->a;
    hp_alert_active_t *x = NULL;
    for (size_t i = 0; i != a->num_active && x == NULL; ++i)
        if (a->active[i].id == id && strcmp(a->active[i].subject, subject) == 0)
            x = &a->active[i];
    if (x == NULL) {
        if (a->num_active == HP_ALERT_MAX_ACTIVE) {
            ++a->dropped_active;
            return;
        }
        x = &a->active[a->num_active++];
        memset(x, 0, sizeof(*x));
        x->id = id;
        snprintf(x->subject, sizeof(x->subject), "%s", subject);
        x->state = HP_ALERT_PENDING;
        x->active_since_s = c->now_s;
        x->active_since_wall_us = c->now_wall_us;
    }
    x->seen = 1;
    x->value = value;
    if (x->state == HP_ALERT_PENDING && c->now_s - x->active_since_s >= hp__rules[id].for_s) {
        x->state = HP_ALERT_FIRING;
        x->firing_since_s = c->now_s;
        x->firing_since_wall_us = c->now_wall_us;
        if (c->num_events != c->cap) {
            hp_alert_event_t *e = &c->events[c->num_events++];
            *e = (hp_alert_event_t){.id = id, .firing = 1, .value = value, .starts_wall_us = x->active_since_wall_us};
            snprintf(e->subject, sizeof(e->subject), "%s", x->subject);
        }
    }
}

static void hp__check(hp__obs_ctx_t *c, hp_alert_id_t id, const char *subject, double value)
{
    if (hp__holds(&hp__rules[id], value))
        hp__observe(c, id, subject, value);
}

size_t hp_alerts_eval(hp_alerts_t *a, const hp_alert_sample_t *sample, uint64_t now_wall_us, hp_alert_event_t *events, size_t cap)
{
    a->history[a->next] = *sample;
    a->next = (a->next + 1) % HP_ALERT_HISTORY;
    if (a->count < HP_ALERT_HISTORY)
        ++a->count;
    ++a->evaluations;
    hp__obs_ctx_t c = {a, sample->at_s, now_wall_us, events, cap, 0};
    for (size_t i = 0; i != a->num_active; ++i)
        a->active[i].seen = 0;

    const hp_alert_sample_t *s = sample;
    char subject[96];
    for (size_t i = 0; i != s->num_routes; ++i) {
        if (s->routes[i].rate_per_s <= hp__rules[HP_ALERT_HotplateRouteLatencyHigh].guard)
            continue;
        snprintf(subject, sizeof(subject), "%s %s", s->routes[i].method, s->routes[i].pattern);
        hp__check(&c, HP_ALERT_HotplateRouteLatencyHigh, subject, s->routes[i].p99_s);
        hp__check(&c, HP_ALERT_HotplateRouteLatencyCritical, subject, s->routes[i].p99_s);
        if (s->routes[i].rate_per_s > hp__rules[HP_ALERT_HotplateErrorRateHigh].guard)
            hp__check(&c, HP_ALERT_HotplateErrorRateHigh, subject, s->routes[i].ratio_5xx);
    }
    /* Strictly above both the least rate and factor × baseline, as the Prometheus rule compares. */
    if (s->error_rate_per_s > hp__rules[HP_ALERT_Hotplate5xxSpike].guard &&
        s->error_rate_per_s > hp__rules[HP_ALERT_Hotplate5xxSpike].threshold * s->error_baseline_per_s)
        hp__observe(&c, HP_ALERT_Hotplate5xxSpike, "", s->error_rate_per_s);
    int ok;
    double cpu = hp__rate(a, hp__field, HP__FIELD(cpu_s), 60, &ok);
    if (ok && s->cpus > 0)
        hp__check(&c, HP_ALERT_HotplateCpuHigh, "", cpu / s->cpus);
    double rss = hp__slope(a, hp__field, HP__FIELD(rss_bytes), 900, &ok);
    if (ok)
        hp__check(&c, HP_ALERT_HotplateRssGrowing, "", rss);
    double heap = hp__slope(a, hp__field, HP__FIELD(heap_bytes), 900, &ok);
    if (ok)
        hp__check(&c, HP_ALERT_HotplateHeapGrowing, "", heap);
    hp__check(&c, HP_ALERT_HotplateEventLoopLag, "", (double)s->stats.hist[HP_HIST_loop_lag].p99_ns[1] / 1e9);
    if (s->stats.pool_size > 0) {
        double sum = 0;
        size_t n = 0;
        for (size_t k = 0; k < a->count; ++k) {
            const hp_alert_sample_t *h = &a->history[(a->next + HP_ALERT_HISTORY - 1 - k) % HP_ALERT_HISTORY];
            if (s->at_s - h->at_s >= 60)
                break;
            sum += (double)h->stats.gauge[HP_GAUGE_pool_in_use], ++n;
        }
        hp__check(&c, HP_ALERT_HotplateDbPoolSaturated, "", sum / (double)n / (double)s->stats.pool_size);
    }
    double timeouts = hp__rate(a, hp__counter, HP_COUNTER_pool_timeouts, 60, &ok);
    if (ok)
        hp__check(&c, HP_ALERT_HotplateDbPoolTimeouts, "", timeouts);
    for (size_t i = 0; i != s->num_stmts; ++i)
        hp__check(&c, HP_ALERT_HotplateSlowStatements, s->stmts[i].name, s->stmts[i].slow_per_s);
    int ok2;
    double hits = hp__rate(a, hp__counter, HP_COUNTER_cache_hits, 120, &ok),
           menus = hp__rate(a, hp__field, HP__FIELD(menu_ok), 120, &ok2);
    if (ok && ok2 && menus > hp__rules[HP_ALERT_HotplateCacheHitRatioLow].guard)
        hp__check(&c, HP_ALERT_HotplateCacheHitRatioLow, "", hits / menus);

    /* Whatever no longer holds resolves (if it fired) and leaves the table. */
    size_t keep = 0;
    for (size_t i = 0; i != a->num_active; ++i) {
        hp_alert_active_t *x = &a->active[i];
        if (!x->seen) {
            if (x->state == HP_ALERT_FIRING && c.num_events != c.cap) {
                hp_alert_event_t *e = &c.events[c.num_events++];
                *e = (hp_alert_event_t){.id = x->id,
                                        .firing = 0,
                                        .value = x->value,
                                        .starts_wall_us = x->active_since_wall_us,
                                        .ends_wall_us = now_wall_us};
                snprintf(e->subject, sizeof(e->subject), "%s", x->subject);
            }
            continue;
        }
        if (keep != i)
            a->active[keep] = *x;
        ++keep;
    }
    a->num_active = keep;
    return c.num_events;
}

/* ---- the sample ---------------------------------------------------------------------------- */

static double hp__per_s(uint64_t n, const hp_hist_snapshot_t *s, int window_s)
{
    return (double)n / (s->seconds > 0 ? s->seconds : (double)window_s);
}

void hp_alerts_sample(hp_alert_sample_t *s)
{
    /* Only the admin thread samples; one merge buffer, zeroed each time, spares a large allocation a second. */
    static hp_stats_t *merged;
    memset(s, 0, sizeof(*s));
    s->at_s = hp_probe_now_s();
    s->cpus = hp_proc_cpus();
    hp_proc_cpu_rss(&s->cpu_s, &s->rss_bytes);
    hp_heap_stats_t hs;
    s->heap_bytes = hp_heap_read(&hs) == 0 ? (double)hs.allocated : -1;
    hp_logs_spike_t sp;
    hp_logs_spike(&sp);
    s->error_rate_per_s = sp.rate_per_s;
    s->error_baseline_per_s = sp.baseline_per_s;
    hp_stats_t *m = merged;
    if (m == NULL) {
        if ((m = merged = malloc(sizeof(*merged))) == NULL)
            return;
        hp_stats_merge(m);
    } else {
        hp_stats_merge_again(m);
    }
    hp_stats_scalars_of(m, &s->stats);
    /* The rules' one-minute windows are the probes' 60 s windows. */
    const size_t w = 1;
    const int window_s = hp_stats_windows[w];
    for (size_t i = 0; i != m->num_routes; ++i) {
        const hp_hist_snapshot_t *lat = &m->route[i].latency.win[w];
        if (m->routes[i].flags & HP_ROUTE_MENU_CACHE)
            s->menu_ok += (double)m->route[i].by_class[2];
        s->routes[s->num_routes].method = m->routes[i].method;
        s->routes[s->num_routes].pattern = m->routes[i].pattern;
        s->routes[s->num_routes].rate_per_s = hp__per_s(lat->count, lat, window_s);
        s->routes[s->num_routes].p99_s = lat->count != 0 ? (double)hp_hist_quantile(lat, 0.99) / 1e9 : 0;
        s->routes[s->num_routes].ratio_5xx = lat->count != 0 ? (double)m->route[i].win_by_class[w][5] / (double)lat->count : 0;
        ++s->num_routes;
    }
    for (size_t i = 0; i != m->num_stmts; ++i) {
        const hp_hist_snapshot_t *lat = &m->stmt[i].latency.win[w];
        s->stmts[s->num_stmts].name = hp_db_stmt_name((int)i);
        s->stmts[s->num_stmts].slow_per_s = hp__per_s(hp_stats_count_over(lat, 100000000u), lat, window_s);
        ++s->num_stmts;
    }
}

/* ---- the server's evaluator ------------------------------------------------------------------ */

/*
 * The admin thread evaluates and renders; a /debug/perf served elsewhere may
 * read concurrently, hence the mutex (held for a copy or one evaluation).
 */
static struct {
    pthread_mutex_t lock;
    hp_alerts_t alerts;
    int ready;
    char instance[96];
    h2o_timeout_t tick;
    h2o_timeout_entry_t entry;
    hp_thread_t *thr;
    uint64_t events_total[HP_ALERT__COUNT];
} hp__emb = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* "what it measures[: subject] is value (the condition)", for the log line and the summary. */
static void hp__describe(char *buf, size_t len, hp_alert_id_t id, const char *subject, double value)
{
    const hp_alert_rule_t *r = &hp__rules[id];
    char cond[96];
    if (id == HP_ALERT_Hotplate5xxSpike)
        snprintf(cond, sizeof(cond), "over %g times the baseline and over %g/s", r->threshold, r->guard);
    else
        snprintf(cond, sizeof(cond), "threshold %c %g", r->op, r->threshold);
    snprintf(buf, len, "%s%s%s is %g (%s)", r->what, subject[0] != '\0' ? ": " : "", subject, value, cond);
}

/* The labels of an alert: its name, severity and instance, and what its subject is (route or statement). */
static json_t *hp__labels(hp_alert_id_t id, const char *subject)
{
    json_t *l = json_pack("{ss ss ss}", "alertname", hp__rules[id].name, "severity",
                          hp__rules[id].severity == HP_ALERT_CRITICAL ? "critical" : "warning", "instance", hp__emb.instance);
    const char *sp = strchr(subject, ' ');
    if (id == HP_ALERT_HotplateSlowStatements) {
        json_object_set_new(l, "statement", json_string(subject));
    } else if (sp != NULL) {
        json_object_set_new(l, "method", json_stringn(subject, (size_t)(sp - subject)));
        json_object_set_new(l, "route", json_string(sp + 1));
    }
    return l;
}

static json_t *hp__annotations(hp_alert_id_t id, const char *subject, double value)
{
    char runbook[96], summary[256];
    size_t n = (size_t)snprintf(runbook, sizeof(runbook), "docs/MONITORING.md#");
    for (const char *p = hp__rules[id].name; *p != '\0' && n + 1 < sizeof(runbook); ++p)
        runbook[n++] = (char)tolower((unsigned char)*p);
    runbook[n] = '\0';
    hp__describe(summary, sizeof(summary), id, subject, value);
    return json_pack("{ss ss}", "summary", summary, "runbook", runbook);
}

/* One webhook body per transition, in the shape of Alertmanager's webhook (version 4), so the same receiver takes both. */
static void hp__notify(const hp_alert_event_t *e)
{
    const hp_alert_rule_t *rule = &hp__rules[e->id];
    char what[256];
    hp__describe(what, sizeof(what), e->id, e->subject, e->value);
    hp_log(e->firing ? (rule->severity == HP_ALERT_CRITICAL ? HP_LOG_ERROR : HP_LOG_WARN) : HP_LOG_INFO, "alert %s %s: %s",
           rule->name, e->firing ? "firing" : "resolved", what);
    if (!hp_webhook_enabled())
        return;
    char starts[40], ends[40] = "0001-01-01T00:00:00Z";
    hp_time_rfc3339(starts, sizeof(starts), e->starts_wall_us, 0);
    if (!e->firing)
        hp_time_rfc3339(ends, sizeof(ends), e->ends_wall_us, 0);
    const char *status = e->firing ? "firing" : "resolved";
    json_t *labels = hp__labels(e->id, e->subject);
    json_t *alert = json_pack("{ss sO so ss ss}", "status", status, "labels", labels, "annotations",
                              hp__annotations(e->id, e->subject, e->value), "startsAt", starts, "endsAt", ends);
    json_t *doc = json_pack("{ss ss ss s[o] so so}", "version", "4", "receiver", "hotplate-embedded", "status", status, "alerts",
                            alert, "groupLabels", json_pack("{ss}", "alertname", rule->name), "commonLabels", labels);
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body != NULL) {
        hp_webhook_enqueue(body, strlen(body));
        free(body);
    }
}

static void hp__tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    /* Static: the admin thread alone samples, and a sample is a few kilobytes. */
    static hp_alert_sample_t sample_buf;
    hp_alert_sample_t *sample = &sample_buf;
    {
        hp_alerts_sample(sample);
        hp_alert_event_t events[16];
        pthread_mutex_lock(&hp__emb.lock);
        size_t n = hp_alerts_eval(&hp__emb.alerts, sample, hp_wall_us(), events, sizeof(events) / sizeof(events[0]));
        for (size_t i = 0; i != n; ++i)
            hp__emb.events_total[events[i].id] += events[i].firing;
        pthread_mutex_unlock(&hp__emb.lock);
        for (size_t i = 0; i != n; ++i)
            hp__notify(&events[i]);
    }
    if (!atomic_load(&hp__emb.thr->stopping))
        h2o_timeout_link(hp__emb.thr->loop, &hp__emb.tick, &hp__emb.entry);
}

int hp_alerts_configure(const char *webhook_url, const char *instance, char *err, size_t errlen)
{
    snprintf(hp__emb.instance, sizeof(hp__emb.instance), "%s", instance);
    return webhook_url != NULL ? hp_webhook_configure(webhook_url, err, errlen) : 0;
}

int hp_alerts_admin_thread_init(hp_thread_t *thr)
{
    if (hp_alerts_init(&hp__emb.alerts) != 0) {
        hp_log(HP_LOG_ERROR, "alerts: out of memory; the embedded alerts are off");
        return 0;
    }
    hp__emb.ready = 1;
    hp__emb.thr = thr;
    h2o_timeout_init(thr->loop, &hp__emb.tick, 1000);
    hp__emb.entry.cb = hp__tick;
    h2o_timeout_link(thr->loop, &hp__emb.tick, &hp__emb.entry);
    hp_webhook_start(thr->loop);
    return 0;
}

void hp_alerts_admin_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    if (!hp__emb.ready)
        return;
    if (h2o_timeout_is_linked(&hp__emb.entry))
        h2o_timeout_unlink(&hp__emb.entry);
    hp_webhook_stop();
    pthread_mutex_lock(&hp__emb.lock);
    hp__emb.ready = 0;
    hp_alerts_dispose(&hp__emb.alerts);
    pthread_mutex_unlock(&hp__emb.lock);
}

json_t *hp_alerts_json(void)
{
    json_t *rules = json_array(), *active = json_array();
    for (size_t i = 0; i != HP_ALERT__COUNT; ++i)
        json_array_append_new(rules, json_pack("{ss ss ss sf sf si ss}", "name", hp__rules[i].name, "severity",
                                               hp__rules[i].severity == HP_ALERT_CRITICAL ? "critical" : "warning", "op",
                                               hp__rules[i].op == '<' ? "<" : ">", "threshold", hp__rules[i].threshold, "guard",
                                               hp__rules[i].guard, "for_s", hp__rules[i].for_s, "what", hp__rules[i].what));
    uint64_t evaluations = 0;
    pthread_mutex_lock(&hp__emb.lock);
    if (hp__emb.ready) {
        evaluations = hp__emb.alerts.evaluations;
        int64_t now = hp__emb.alerts.count != 0 ? hp__latest(&hp__emb.alerts)->at_s : 0;
        for (size_t i = 0; i != hp__emb.alerts.num_active; ++i) {
            const hp_alert_active_t *x = &hp__emb.alerts.active[i];
            char since[40];
            hp_time_rfc3339(since, sizeof(since), x->active_since_wall_us, 0);
            json_t *o = json_pack("{ss ss ss sf ss sI so so}", "name", hp__rules[x->id].name, "severity",
                                  hp__rules[x->id].severity == HP_ALERT_CRITICAL ? "critical" : "warning", "state",
                                  x->state == HP_ALERT_FIRING ? "firing" : "pending", "value", x->value, "active_since", since,
                                  "active_for_s", (json_int_t)(now - x->active_since_s), "labels", hp__labels(x->id, x->subject),
                                  "annotations", hp__annotations(x->id, x->subject, x->value));
            json_array_append_new(active, o);
        }
    }
    pthread_mutex_unlock(&hp__emb.lock);
    hp_webhook_stats_t ws;
    hp_webhook_stats(&ws);
    json_t *webhook = ws.enabled ? json_pack("{ss sI sI sI sI sI}", "url", ws.url, "queued", (json_int_t)ws.queued, "sent",
                                             (json_int_t)ws.sent, "failed_attempts", (json_int_t)ws.failed_attempts, "dropped",
                                             (json_int_t)ws.dropped, "queue_cap", (json_int_t)ws.queue_cap)
                                 : json_null();
    return json_pack("{ss sI so so so}", "evaluated_by", "hotplate (embedded; the same rules as deploy/prometheus/alerts.yml)",
                     "evaluations", (json_int_t)evaluations, "rules", rules, "active", active, "webhook", webhook);
}

void hp_alerts_metrics(FILE *f)
{
    fprintf(f, "# HELP hotplate_alert_firing 1 for each alert the server's own evaluator has firing now.\n"
               "# TYPE hotplate_alert_firing gauge\n");
    pthread_mutex_lock(&hp__emb.lock);
    /* Every rule appears with 0 or 1, so that dashboards and absent() see the series from the start. */
    for (size_t id = 0; id != HP_ALERT__COUNT; ++id) {
        int firing = 0;
        for (size_t i = 0; hp__emb.ready && i != hp__emb.alerts.num_active; ++i)
            firing |= hp__emb.alerts.active[i].id == id && hp__emb.alerts.active[i].state == HP_ALERT_FIRING;
        fprintf(f, "hotplate_alert_firing{alert=\"%s\",severity=\"%s\"} %d\n", hp__rules[id].name,
                hp__rules[id].severity == HP_ALERT_CRITICAL ? "critical" : "warning", firing);
    }
    pthread_mutex_unlock(&hp__emb.lock);
    hp_webhook_stats_t ws;
    hp_webhook_stats(&ws);
    fprintf(f,
            "# HELP hotplate_alert_webhook_sent_total Alert notifications the webhook accepted (2xx).\n"
            "# TYPE hotplate_alert_webhook_sent_total counter\nhotplate_alert_webhook_sent_total %llu\n"
            "# HELP hotplate_alert_webhook_failed_attempts_total Webhook attempts that failed and were retried or dropped.\n"
            "# TYPE hotplate_alert_webhook_failed_attempts_total counter\nhotplate_alert_webhook_failed_attempts_total %llu\n"
            "# HELP hotplate_alert_webhook_dropped_total Notifications dropped: queue full or retries exhausted.\n"
            "# TYPE hotplate_alert_webhook_dropped_total counter\nhotplate_alert_webhook_dropped_total %llu\n",
            (unsigned long long)ws.sent, (unsigned long long)ws.failed_attempts, (unsigned long long)ws.dropped);
}
