/*
 * metrics: GET /metrics on the admin listener, the Prometheus text format
 * 0.0.4 of the same merge /debug/perf shows (profiling/merge.h), with the
 * process's figures under the names Prometheus' client libraries use
 * (process_cpu_seconds_total and friends) and the log and alert counters.
 * docs/PROFILING.md lists every metric; tests/monitoring checks that it does,
 * and that every metric the alert rules and dashboards use is here.
 */
#include "profiling/metrics.h"
#include "runtime/db.h"
#include "runtime/http.h"
#include "runtime/pgha.h"
#include "profiling/alerts.h"
#include "profiling/heap.h"
#include "profiling/logs.h"
#include "profiling/merge.h"
#include "profiling/procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bucket bounds in seconds: from 100 µs to 10 s, in 1-2.5-5 steps. */
static const double hp__le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* Writes one Prometheus histogram (le buckets from our log-linear buckets, then _sum and _count). */
static void hp__prom_hist(FILE *f, const char *name, const char *labels, const hp_hist_snapshot_t *s)
{
    uint64_t cum = 0;
    size_t b = 0;
    for (size_t k = 0; k != sizeof(hp__le) / sizeof(hp__le[0]); ++k) {
        uint64_t le_ns = (uint64_t)(hp__le[k] * 1e9);
        /* A bucket counts under `le` when all of it lies at or below the bound. */
        while (b + 1 < HP_HIST_BUCKETS && hp_hist_bucket_low(b + 1) - 1 <= le_ns)
            cum += s->buckets[b++];
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, labels[0] != '\0' ? "," : "", hp__le[k],
                (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, labels[0] != '\0' ? "," : "", (unsigned long long)s->count);
    fprintf(f, "%s_sum{%s} %.9f\n", name, labels, (double)s->sum_ns / 1e9);
    fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)s->count);
}

/* Writes a family's HELP and TYPE when name starts a new family. */
static void hp__family(FILE *f, const char **last, const char *name, const char *help, const char *type)
{
    if (strcmp(*last, name) == 0)
        return;
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    *last = name;
}

/*
 * The scalar stats of runtime/stats.h, each family with its HELP and TYPE
 * once (lines of one family are adjacent in the lists), and the pool's size,
 * which is derived rather than counted.
 */
static void hp__stat_families(FILE *f, const hp_stats_t *m)
{
    const char *last = "";
    for (size_t i = 0; i != HP_COUNTER__COUNT; ++i) {
        const hp_stat_def_t *d = &hp_counter_defs[i];
        hp__family(f, &last, d->metric, d->help, "counter");
        fprintf(f, "%s%s%s%s %llu\n", d->metric, d->labels[0] != '\0' ? "{" : "", d->labels, d->labels[0] != '\0' ? "}" : "",
                (unsigned long long)m->counter[i]);
    }
    for (size_t i = 0; i != HP_GAUGE__COUNT; ++i) {
        const hp_stat_def_t *d = &hp_gauge_defs[i];
        hp__family(f, &last, d->metric, d->help, "gauge");
        fprintf(f, "%s%s%s%s %lld\n", d->metric, d->labels[0] != '\0' ? "{" : "", d->labels, d->labels[0] != '\0' ? "}" : "",
                (long long)m->gauge[i]);
    }
    for (size_t i = 0; i != HP_HIST__COUNT; ++i) {
        const hp_stat_def_t *d = &hp_hist_defs[i];
        hp__family(f, &last, d->metric, d->help, "histogram");
        hp__prom_hist(f, d->metric, "", &m->hist[i].total);
    }
    fprintf(f,
            "# HELP hotplate_db_pool_connections Transaction connections, all threads.\n"
            "# TYPE hotplate_db_pool_connections gauge\nhotplate_db_pool_connections %llu\n",
            (unsigned long long)m->pool_size);
}

static void hp__metrics(hp_req_t *r)
{
    hp_stats_t *m = hp_stats_merge_new();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (m == NULL || f == NULL) {
        free(m);
        if (f != NULL)
            fclose(f);
        free(text);
        hp_respond_error(r, HP_E_out_of_memory, "cannot build the metrics");
        return;
    }
    char labels[256];
    static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

    fprintf(f, "# HELP hotplate_http_requests_total Requests answered, by route and status class.\n"
               "# TYPE hotplate_http_requests_total counter\n");
    for (size_t i = 0; i <= m->num_routes; ++i) {
        const hp_merged_route_t *mr = i < m->num_routes ? &m->route[i] : &m->unrouted;
        for (size_t c = 1; c != HP_PROBE_STATUS_CLASSES; ++c)
            fprintf(f, "hotplate_http_requests_total{method=\"%s\",route=\"%s\",code=\"%s\"} %llu\n",
                    i < m->num_routes ? m->routes[i].method : "*", i < m->num_routes ? m->routes[i].pattern : "(unrouted)",
                    classes[c], (unsigned long long)mr->by_class[c]);
    }
    fprintf(f, "# HELP hotplate_http_requests_in_flight Requests being handled now.\n"
               "# TYPE hotplate_http_requests_in_flight gauge\n");
    for (size_t i = 0; i != m->num_routes; ++i)
        fprintf(f, "hotplate_http_requests_in_flight{method=\"%s\",route=\"%s\"} %lld\n", m->routes[i].method, m->routes[i].pattern,
                (long long)m->route[i].inflight);
    fprintf(f, "# HELP hotplate_http_request_duration_seconds End-to-end request latency.\n"
               "# TYPE hotplate_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i != m->num_routes; ++i) {
        snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"", m->routes[i].method, m->routes[i].pattern);
        hp__prom_hist(f, "hotplate_http_request_duration_seconds", labels, &m->route[i].latency.total);
    }
    fprintf(f, "# HELP hotplate_route_stage_seconds_total Time requests of a route spent in each stage.\n"
               "# TYPE hotplate_route_stage_seconds_total counter\n");
    for (size_t i = 0; i != m->num_routes; ++i)
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            fprintf(f, "hotplate_route_stage_seconds_total{method=\"%s\",route=\"%s\",stage=\"%s\"} %.9f\n", m->routes[i].method,
                    m->routes[i].pattern, hp_stage_name((hp_stage_t)s), (double)m->route[i].stage_ns[s] / 1e9);
    fprintf(f, "# HELP hotplate_stage_duration_seconds Time one request spent in a stage.\n"
               "# TYPE hotplate_stage_duration_seconds histogram\n");
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s) {
        snprintf(labels, sizeof(labels), "stage=\"%s\"", hp_stage_name((hp_stage_t)s));
        hp__prom_hist(f, "hotplate_stage_duration_seconds", labels, &m->stages[s].total);
    }
    fprintf(f, "# HELP hotplate_db_statement_duration_seconds Latency of each named statement.\n"
               "# TYPE hotplate_db_statement_duration_seconds histogram\n");
    for (size_t i = 0; i != m->num_stmts; ++i) {
        snprintf(labels, sizeof(labels), "statement=\"%s\"", hp_db_stmt_name((int)i));
        hp__prom_hist(f, "hotplate_db_statement_duration_seconds", labels, &m->stmt[i].latency.total);
    }
    fprintf(f, "# HELP hotplate_db_statement_errors_total Statements that failed.\n"
               "# TYPE hotplate_db_statement_errors_total counter\n");
    for (size_t i = 0; i != m->num_stmts; ++i)
        fprintf(f, "hotplate_db_statement_errors_total{statement=\"%s\"} %llu\n", hp_db_stmt_name((int)i),
                (unsigned long long)m->stmt[i].errors);
    fprintf(f, "# HELP hotplate_db_statement_rows_total Rows returned or affected.\n"
               "# TYPE hotplate_db_statement_rows_total counter\n");
    for (size_t i = 0; i != m->num_stmts; ++i)
        fprintf(f, "hotplate_db_statement_rows_total{statement=\"%s\"} %llu\n", hp_db_stmt_name((int)i),
                (unsigned long long)m->stmt[i].rows);
    hp__stat_families(f, m);
    hp_heap_stats_t hs;
    if (hp_heap_read(&hs) == 0) {
#define HP__HEAP_METRIC(field)                                                                                                     \
    fprintf(f,                                                                                                                     \
            "# HELP hotplate_heap_" #field "_bytes jemalloc stats." #field ".\n# TYPE hotplate_heap_" #field                       \
            "_bytes gauge\nhotplate_heap_" #field "_bytes %llu\n",                                                                 \
            (unsigned long long)hs.field);
        HP_HEAP_STAT_LIST(HP__HEAP_METRIC)
#undef HP__HEAP_METRIC
    }
    hp_proc_stats_t ps;
    hp_proc_read(&ps);
    fprintf(f,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
            "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\nprocess_open_fds %llu\n"
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n"
            "# HELP process_threads Number of OS threads in the process.\n"
            "# TYPE process_threads gauge\nprocess_threads %llu\n",
            ps.cpu_user_s + ps.cpu_system_s, (unsigned long long)ps.rss_bytes, (unsigned long long)ps.vsize_bytes,
            (unsigned long long)ps.fds, (unsigned long long)ps.max_fds, ps.start_time_s, (unsigned long long)ps.threads);
    fprintf(f,
            "# HELP hotplate_cpus CPUs the process may run on (its affinity mask), the denominator of HotplateCpuHigh.\n"
            "# TYPE hotplate_cpus gauge\nhotplate_cpus %d\n",
            hp_proc_cpus());
    hp_logs_metrics(f);
    hp_alerts_metrics(f);
    hp_pgha_metrics(f);
    fclose(f);
    free(m);
    h2o_iovec_t body = h2o_strdup(&r->h2o->pool, text, len);
    free(text);
    hp_add_header(r, "content-type", "text/plain; version=0.0.4; charset=utf-8");
    hp_respond_raw(r, 200, body);
}

const hp_route_t hp_metrics_routes[] = {
    {"GET", "/metrics", hp__metrics, 0},
};
const size_t hp_metrics_num_routes = sizeof(hp_metrics_routes) / sizeof(hp_metrics_routes[0]);
