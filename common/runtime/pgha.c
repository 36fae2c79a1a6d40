/*
 * pgha: the primary's watcher (see pgha.h).
 *
 * One thread, one blocking libpq connection, one poll a second. Blocking is
 * fine here because no event loop runs on this thread; every wait is bounded
 * (connect_timeout 2 s per host, statement_timeout 500 ms), so stopping takes
 * at most a few seconds even while a host is unreachable.
 */
#include "runtime/pgha.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/worker.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP__PGHA_INTERVAL_MS 1000

static struct {
    hp_worker_t w;
    const char *pg_url;
    hp_pgha_snapshot_t snap;
} hp__ha = {.w = HP_WORKER_INIT};

int hp_pgha_multi_host(const char *url)
{
    if (url == NULL)
        return 0;
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        /* URI: hosts are between "//" (after any user@) and the first '/' or '?'; a host= parameter may list more. */
        const char *h = strstr(url, "//") + 2;
        const char *end = h + strcspn(h, "/?");
        const char *at = memchr(h, '@', (size_t)(end - h));
        if (at != NULL)
            h = at + 1;
        if (memchr(h, ',', (size_t)(end - h)) != NULL)
            return 1;
        const char *q = strstr(end, "host=");
        return q != NULL && (q[-1] == '?' || q[-1] == '&') && strchr(q, ',') != NULL && strchr(q, ',') < q + strcspn(q, "&");
    }
    /* key=value: host=a,b or hostaddr=a,b. */
    for (const char *p = url; (p = strstr(p, "host")) != NULL; p += 4) {
        if (p != url && p[-1] != ' ')
            continue;
        const char *v = p + strcspn(p, "=");
        if (*v != '=')
            return 0;
        ++v;
        if (memchr(v, ',', strcspn(v, " ")) != NULL)
            return 1;
    }
    return 0;
}

static PGconn *hp__ha_connect(const char *url)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", "options", "target_session_attrs", NULL};
    const char *vals[] = {url, "hotplate-ha", "2", "-c statement_timeout=500", "read-write", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg != NULL && PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* One poll: the standbys of the primary pg is connected to. @return 0, or -1 when the connection failed */
static int hp__ha_poll(PGconn *pg, hp_pgha_snapshot_t *s)
{
    PGresult *res = PQexec(pg, "SELECT count(*), count(*) FILTER (WHERE sync_state = 'sync'), "
                               "coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), -1)::bigint, "
                               "coalesce(extract(epoch FROM max(replay_lag)), 0)::float8 FROM pg_stat_replication");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    s->standbys = atoi(PQgetvalue(res, 0, 0));
    s->sync_standbys = atoi(PQgetvalue(res, 0, 1));
    s->lag_bytes = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    s->lag_seconds = strtod(PQgetvalue(res, 0, 3), NULL);
    PQclear(res);
    return 0;
}

static void *hp__ha_main(void *arg)
{
    (void)arg;
    PGconn *pg = NULL;
    pthread_mutex_lock(&hp__ha.w.lock);
    while (!hp__ha.w.stop) {
        pthread_mutex_unlock(&hp__ha.w.lock);
        hp_pgha_snapshot_t s = {0};
        char where[128] = "";
        if (pg == NULL && (pg = hp__ha_connect(hp__ha.pg_url)) == NULL)
            s.connected = 0;
        if (pg != NULL) {
            snprintf(where, sizeof(where), "%s:%s", PQhost(pg), PQport(pg));
            if (hp__ha_poll(pg, &s) == 0) {
                s.connected = 1;
            } else {
                PQfinish(pg);
                pg = NULL;
            }
        }
        pthread_mutex_lock(&hp__ha.w.lock);
        hp_pgha_snapshot_t *cur = &hp__ha.snap;
        cur->connected = s.connected;
        if (s.connected) {
            if (cur->primary[0] != '\0' && strcmp(cur->primary, where) != 0) {
                ++cur->failovers;
                cur->last_failover_us = (int64_t)hp_wall_us();
                memcpy(cur->previous, cur->primary, sizeof(cur->previous));
                hp_log(HP_LOG_WARN, "postgres primary moved from %s to %s (failover %llu)", cur->previous, where,
                       (unsigned long long)cur->failovers);
            }
            snprintf(cur->primary, sizeof(cur->primary), "%s", where);
            cur->standbys = s.standbys;
            cur->sync_standbys = s.sync_standbys;
            cur->lag_bytes = s.lag_bytes;
            cur->lag_seconds = s.lag_seconds;
            cur->polled_us = (int64_t)hp_wall_us();
        }
        hp_worker_sleep(&hp__ha.w, HP__PGHA_INTERVAL_MS);
    }
    pthread_mutex_unlock(&hp__ha.w.lock);
    if (pg != NULL)
        PQfinish(pg);
    return NULL;
}

int hp_pgha_start(const char *pg_url)
{
    if (!hp_pgha_multi_host(pg_url))
        return 0;
    pthread_mutex_lock(&hp__ha.w.lock);
    hp__ha.pg_url = pg_url;
    hp__ha.snap.enabled = 1;
    int ret = hp_worker_start(&hp__ha.w, hp__ha_main, NULL);
    pthread_mutex_unlock(&hp__ha.w.lock);
    return ret;
}

void hp_pgha_stop(void)
{
    hp_worker_stop(&hp__ha.w);
}

void hp_pgha_snapshot(hp_pgha_snapshot_t *out)
{
    pthread_mutex_lock(&hp__ha.w.lock);
    *out = hp__ha.snap;
    pthread_mutex_unlock(&hp__ha.w.lock);
}

void hp_pgha_metrics(FILE *f)
{
    hp_pgha_snapshot_t s;
    hp_pgha_snapshot(&s);
    if (!s.enabled)
        return;
    fprintf(
        f,
        "# HELP hotplate_pg_primary_info The PostgreSQL host:port the watcher found taking writes (1), and whether it answers.\n"
        "# TYPE hotplate_pg_primary_info gauge\nhotplate_pg_primary_info{host=\"%s\"} %d\n"
        "# HELP hotplate_pg_standbys Standbys streaming from the primary (pg_stat_replication), and of them sync ones.\n"
        "# TYPE hotplate_pg_standbys gauge\nhotplate_pg_standbys{sync=\"any\"} %d\nhotplate_pg_standbys{sync=\"sync\"} %d\n"
        "# HELP hotplate_pg_replication_lag_bytes WAL the slowest standby has yet to replay (-1: no standby).\n"
        "# TYPE hotplate_pg_replication_lag_bytes gauge\nhotplate_pg_replication_lag_bytes %lld\n"
        "# HELP hotplate_pg_replication_lag_seconds replay_lag of the slowest standby.\n"
        "# TYPE hotplate_pg_replication_lag_seconds gauge\nhotplate_pg_replication_lag_seconds %.6f\n"
        "# HELP hotplate_pg_failovers_total Times the primary moved to another host since start.\n"
        "# TYPE hotplate_pg_failovers_total counter\nhotplate_pg_failovers_total %llu\n"
        "# HELP hotplate_pg_last_failover_timestamp_seconds When the primary last moved (0: never).\n"
        "# TYPE hotplate_pg_last_failover_timestamp_seconds gauge\nhotplate_pg_last_failover_timestamp_seconds %.3f\n",
        s.primary, s.connected, s.standbys, s.sync_standbys, (long long)s.lag_bytes, s.lag_seconds, (unsigned long long)s.failovers,
        (double)s.last_failover_us / 1e6);
}
