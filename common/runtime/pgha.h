/*
 * pgha: which PostgreSQL host is the primary, how far its standbys lag, and
 * when the primary last changed, for /readyz, /debug/perf and /metrics.
 *
 * The request path finds the primary by itself: every connection libpq opens
 * walks the URL's hosts (postgresql://h1:p1,h2:p2/db?target_session_attrs=
 * read-write) and keeps the first that takes writes, and db.c's reconnect
 * loop opens a new one a second after the old one failed. This module only
 * watches, off the hot path: one thread of its own with one blocking libpq
 * connection (application_name hotplate-ha, statement_timeout 500 ms) that
 * once a second reads pg_stat_replication on the primary. A primary at
 * another host:port than the last one seen counts as a failover.
 *
 * It runs only when the URL names more than one host (make up HA=1); a
 * single-host stack gets no extra connection and reports "enabled": false.
 */
#ifndef HP_PGHA_H
#define HP_PGHA_H

#include <stdint.h>
#include <stdio.h>

/* What the watcher saw last; a copy, so readers never hold its lock. */
typedef struct st_hp_pgha_snapshot_t {
    int enabled;              /* the URL names several hosts and the watcher runs */
    int connected;            /* the last poll reached a primary */
    char primary[128];        /* "host:port" of the primary, "" when none answered yet */
    int standbys;             /* rows of pg_stat_replication */
    int sync_standbys;        /* of which sync_state = 'sync' */
    int64_t lag_bytes;        /* the largest primary-to-replay distance among the standbys, in bytes (-1: no standby) */
    double lag_seconds;       /* the largest replay_lag, in seconds (0 when idle or no standby) */
    uint64_t failovers;       /* times the primary changed host:port since start */
    int64_t last_failover_us; /* wall clock of the last change, in microseconds since the epoch; 0 if none */
    char previous[128];       /* the primary before the last change */
    int64_t polled_us;        /* wall clock of the last successful poll, in microseconds since the epoch */
} hp_pgha_snapshot_t;

/**
 * Starts the watcher thread when pg_url names several hosts; a no-op otherwise.
 * @param pg_url kept, not copied: it must outlive hp_pgha_stop()
 * @return 0, or -1 when the thread could not be created
 */
int hp_pgha_start(const char *pg_url);

/** Stops and joins the watcher (within about one poll). */
void hp_pgha_stop(void);

/** Copies the latest state into out. Safe on any thread. */
void hp_pgha_snapshot(hp_pgha_snapshot_t *out);

/** Writes the hotplate_pg_* families of /metrics (nothing when the watcher does not run). */
void hp_pgha_metrics(FILE *f);

/** @return 1 when the libpq connection string or URL names more than one host. Pure, for tests. */
int hp_pgha_multi_host(const char *pg_url);

#endif
