/*
 * alerts: the alert rules of deploy/prometheus/alerts.yml, evaluated inside
 * the server for the embedded default where no Prometheus runs.
 *
 * Once a second the admin thread takes a sample of the server's own figures
 * (hp_alerts_sample(): the merged probes with their 60 s windows, and the
 * process's cumulative counters), keeps the last 16 minutes of samples,
 * and evaluates every rule of HP_ALERT_LIST with the same threshold, traffic
 * guard and `for:` duration as the Prometheus rule of the same name
 * (tests/monitoring/test_embedded_alerts.py compares the two files). Rates
 * over a minute come from the difference of two samples a minute apart, and
 * growth trends from a least-squares slope, as rate() and deriv() compute them.
 *
 * An alert is pending from the first sample where its condition holds and
 * firing once it has held for its `for:` duration; it resolves on the first
 * sample where it no longer holds. Transitions are logged, shown in the
 * "alerts" section of /debug/perf and on the dashboard, exported as
 * hotplate_alert_firing, and, with --alert-webhook, POSTed as JSON
 * (profiling/webhook.c) without ever blocking a worker.
 *
 * The evaluation (hp_alerts_eval) is a pure function of its inputs, so the
 * unit tests drive it with made-up samples and a made-up clock.
 */
#ifndef HP_ALERTS_H
#define HP_ALERTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "runtime/thread.h"
#include "runtime/probes.h"
#include "profiling/merge.h"

typedef enum { HP_ALERT_WARNING, HP_ALERT_CRITICAL } hp_alert_severity_t;

/*
 * X(name, severity, op, threshold, guard, for_s, what)
 * op is '>' or '<' (fire above or below threshold); guard is the least
 * traffic (requests/s) the rule needs, 0 for none. Hotplate5xxSpike's
 * threshold is the factor over the baseline and its guard the least error
 * rate; its windows are those of /debug/logs (HP_LOGS_SPIKE_*).
 */
#define HP_ALERT_LIST(X)                                                                                                           \
    X(HotplateRouteLatencyHigh, HP_ALERT_WARNING, '>', 0.5, 0.2, 60, "p99 latency of a route over 60 s, in seconds")               \
    X(HotplateRouteLatencyCritical, HP_ALERT_CRITICAL, '>', 2.0, 0.2, 60, "p99 latency of a route over 60 s, in seconds")          \
    X(HotplateErrorRateHigh, HP_ALERT_CRITICAL, '>', 0.01, 0.2, 60, "share of a route's answers that are 5xx over 60 s")           \
    X(Hotplate5xxSpike, HP_ALERT_CRITICAL, '>', 5.0, 1.0, 0, "error lines/s over 60 s against the 240 s before")                   \
    X(HotplateCpuHigh, HP_ALERT_WARNING, '>', 0.85, 0, 300, "CPU used over 60 s as a share of the CPUs available")                 \
    X(HotplateRssGrowing, HP_ALERT_WARNING, '>', 65536, 0, 900, "slope of the RSS over 15 minutes, in bytes/s")                    \
    X(HotplateHeapGrowing, HP_ALERT_WARNING, '>', 65536, 0, 900,                                                                   \
      "slope of jemalloc's allocated bytes over 15 minutes, in bytes/s")                                                           \
    X(HotplateEventLoopLag, HP_ALERT_WARNING, '>', 0.05, 0, 60, "p99 event-loop lag over 60 s, in seconds")                        \
    X(HotplateDbPoolSaturated, HP_ALERT_WARNING, '>', 0.9, 0, 60, "mean share of the transaction pool in use over 60 s")           \
    X(HotplateDbPoolTimeouts, HP_ALERT_CRITICAL, '>', 0, 0, 60, "pool wait timeouts/s over 60 s")                                  \
    X(HotplateSlowStatements, HP_ALERT_WARNING, '>', 1.0, 0, 60, "statements over 100 ms per second, over 60 s")                   \
    X(HotplateCacheHitRatioLow, HP_ALERT_WARNING, '<', 0.5, 1.0, 120, "share of menus answered from the cache over 120 s")

typedef enum {
#define HP__ALERT_ID(name, sev, op, thr, guard, for_s, what) HP_ALERT_##name,
    HP_ALERT_LIST(HP__ALERT_ID)
#undef HP__ALERT_ID
        HP_ALERT__COUNT
} hp_alert_id_t;

typedef struct st_hp_alert_rule_t {
    const char *name;
    hp_alert_severity_t severity;
    char op;
    double threshold, guard;
    int for_s;
    const char *what;
} hp_alert_rule_t;

/** @return the rule of an alert */
const hp_alert_rule_t *hp_alert_rule(hp_alert_id_t id);

/* One second's figures, as hp_alerts_sample() fills them. Windowed values cover the last 60 s. */
typedef struct st_hp_alert_sample_t {
    int64_t at_s;                                  /* monotonic seconds */
    double cpus;                                   /* CPUs the process may run on */
    double cpu_s;                                  /* cumulative user + system CPU seconds */
    double rss_bytes;                              /* resident set size */
    double heap_bytes;                             /* jemalloc stats.allocated; negative when the build has no jemalloc */
    double menu_ok;                                /* cumulative 2xx answers of the routes served through the menu cache */
    double error_rate_per_s, error_baseline_per_s; /* error log lines/s: last 60 s, and the 240 s before */
    hp_stats_scalars_t stats;                      /* the merged scalar stats (runtime/stats.h): pool, cache, loop lag */
    size_t num_routes;
    struct {
        const char *method, *pattern; /* static strings of the route table */
        double rate_per_s, p99_s, ratio_5xx;
    } routes[HP_PROBE_MAX_ROUTES];
    size_t num_stmts;
    struct {
        const char *name;
        double slow_per_s; /* executions over 100 ms per second */
    } stmts[HP_PROBE_MAX_STMTS];
} hp_alert_sample_t;

/** Fills one sample from the merged probes and the process's figures (admin thread only). */
void hp_alerts_sample(hp_alert_sample_t *s);

#define HP_ALERT_HISTORY 960 /* samples kept: the 15 minutes of the leak rules, plus slack */
#define HP_ALERT_MAX_ACTIVE 64

typedef enum { HP_ALERT_PENDING, HP_ALERT_FIRING } hp_alert_state_t;

/* One pending or firing alert: a rule and the thing it is about (a route, a statement, or nothing). */
typedef struct st_hp_alert_active_t {
    hp_alert_id_t id;
    char subject[96]; /* "GET /orders", a statement name, or "" */
    hp_alert_state_t state;
    int64_t active_since_s, firing_since_s;
    uint64_t active_since_wall_us, firing_since_wall_us;
    double value;
    int seen; /* scratch: observed in the current evaluation */
} hp_alert_active_t;

/* A transition, for the log and the webhook. */
typedef struct st_hp_alert_event_t {
    hp_alert_id_t id;
    char subject[96];
    int firing; /* 1 firing, 0 resolved */
    double value;
    uint64_t starts_wall_us, ends_wall_us;
} hp_alert_event_t;

/* The evaluator's state. Samples are kept by value in a ring; the caller owns the struct. */
typedef struct st_hp_alerts_t {
    hp_alert_sample_t *history; /* HP_ALERT_HISTORY entries, allocated by hp_alerts_init */
    size_t next, count;
    hp_alert_active_t active[HP_ALERT_MAX_ACTIVE];
    size_t num_active;
    uint64_t evaluations, dropped_active;
} hp_alerts_t;

/** Allocates the history. @return 0, or -1 when out of memory */
int hp_alerts_init(hp_alerts_t *a);
void hp_alerts_dispose(hp_alerts_t *a);

/**
 * Adds a sample and evaluates every rule as of sample->at_s (wall time now_wall_us, for the timestamps).
 * @return the number of transitions written to events (at most cap)
 */
size_t hp_alerts_eval(hp_alerts_t *a, const hp_alert_sample_t *sample, uint64_t now_wall_us, hp_alert_event_t *events, size_t cap);

/* ---- the server's evaluator on the admin thread ---- */

/**
 * Configures the webhook: an http:// URL with a numeric IPv4 host or a name
 * resolved now, at startup. Call before threads start. NULL disables it.
 * `instance` names this server in the alerts' labels.
 * @return 0, or -1 with the reason in err
 */
int hp_alerts_configure(const char *webhook_url, const char *instance, char *err, size_t errlen);

/** Starts the 1 s evaluation on the admin thread's loop: a thread hook of the admin thread (main.c). */
int hp_alerts_admin_thread_init(hp_thread_t *thr);
void hp_alerts_admin_thread_dispose(hp_thread_t *thr);

/** The "alerts" section of /debug/perf (admin thread only). */
json_t *hp_alerts_json(void);

/** hotplate_alert_firing and the webhook's counters, in Prometheus text format (admin thread only). */
void hp_alerts_metrics(FILE *f);

#endif
