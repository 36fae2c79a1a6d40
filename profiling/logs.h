/*
 * logs: what the log lines say, counted (GET /debug/logs).
 *
 * base/log.c hands every line it formats (and every line below the level
 * filter too) to the observer main.c installs, hp_logs_observer, which keeps,
 * over windows of 10 s, 60 s and 300 s and since start: lines by level and
 * answers by error code; the last errors and the last timeouts; and whether
 * errors are spiking, their rate over the last minute against the four
 * minutes before it. The spike feeds the embedded alert Hotplate5xxSpike
 * (profiling/alerts.c), and the counters are also in /metrics. Requests and
 * errors by route are the probes' own counters (runtime/probes.h), shown here
 * over the same windows, so no route is counted twice.
 *
 * Counters live in one-second slots shared by all threads and bumped with
 * relaxed atomic adds: a request already pays a write(2) for its log line,
 * which costs far more than an add on a shared cache line. The rings of
 * recent errors take a mutex, but only on the error path.
 */
#ifndef HP_LOGS_H
#define HP_LOGS_H

#include <stdio.h>

#include "base/log.h"
#include "base/router.h"

/* A spike: at least this many error lines per second over the window, and this many times the baseline rate. */
#define HP_LOGS_SPIKE_WINDOW_S 60
#define HP_LOGS_SPIKE_BASELINE_S 240
#define HP_LOGS_SPIKE_MIN_RATE 1.0
#define HP_LOGS_SPIKE_FACTOR 5.0

typedef struct st_hp_logs_spike_t {
    double rate_per_s;     /* error lines per second over the last HP_LOGS_SPIKE_WINDOW_S */
    double baseline_per_s; /* error lines per second over the HP_LOGS_SPIKE_BASELINE_S before that */
    int spike;
} hp_logs_spike_t;

/** Counts one request line; called by hp_log_request() on the thread that answered. */
void hp_logs_note_request(const hp_log_request_t *r, hp_log_level_t level);

/** Counts one event line (its message unescaped); error events also go to the ring of last errors. */
void hp_logs_note_event(hp_log_level_t level, const char *msg);

/** The two above, as the log's observer (base/log.h), for main.c to install. */
extern const hp_log_observer_t hp_logs_observer;

/** Computes the error spike as of now. */
void hp_logs_spike(hp_logs_spike_t *out);

/** Writes the log counters in Prometheus text format. */
void hp_logs_metrics(FILE *f);

/** GET /debug/logs, for the admin route table. */
extern const hp_route_t hp_logs_routes[];
extern const size_t hp_logs_num_routes;

#endif
