/*
 * pgindex: indexes that a flag or a shell command creates and drops, for the
 * missing-index lab (orders_user_id_index, docs/labs/02-orders-user-id-index.md).
 *
 * Both directions use the CONCURRENTLY forms, so neither blocks the orders
 * table's readers and writers while a server is under load: CREATE INDEX
 * CONCURRENTLY builds the index in two passes without a write lock, and DROP
 * INDEX CONCURRENTLY waits for the transactions using the index instead of
 * locking them out. ANALYZE follows, so the planner's statistics match the
 * new situation at once. A CONCURRENTLY build that fails (say, the server
 * stopped half-way) leaves an INVALID index behind, which IF NOT EXISTS would
 * mistake for a finished one, so "on" drops an invalid leftover first.
 *
 * Neither statement may run inside a transaction block, and a pipeline is one,
 * so this module does not use the event-loop connections of common/runtime/db.c: it
 * opens a plain blocking libpq connection of its own. In the server that
 * happens on a worker thread of its own (the "index thread"), never on an
 * event loop: an index build on a million orders takes seconds. The admin
 * listener's POST /debug/flags sets the flag and wakes the index thread; GET
 * /debug/flags shows its progress under "actions". The `hotplate index`
 * command calls the same function from the shell.
 *
 * Ownership: the PGconn and every PGresult live and die inside
 * hp_pgindex_apply() and hp_pgindex_state(); the index thread's state is
 * guarded by hp__ix.w.lock.
 */
#include "services/pgindex.h"
#include "base/flags.h"
#include "base/log.h"
#include "base/worker.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct st_hp_pgindex_def_t {
    const char *name;       /* what the shell command and the docs call it */
    const char *index;      /* the index's name in PostgreSQL */
    const char *table;      /* what ANALYZE refreshes */
    const char *definition; /* what CREATE INDEX builds: "table (columns)" */
} hp_pgindex_def_t;

/* The index of migrations/0002_orders_user_id_index.up.sql, which GET /users/{id}/orders (order_history) needs. */
static const hp_pgindex_def_t hp__defs[] = {
    {"orders_user_id", "orders_user_id_created_at_idx", "orders", "orders (user_id, created_at DESC)"},
};

static const hp_pgindex_def_t *hp__find(const char *name)
{
    for (size_t i = 0; i != sizeof(hp__defs) / sizeof(hp__defs[0]); ++i)
        if (strcmp(hp__defs[i].name, name) == 0)
            return &hp__defs[i];
    return NULL;
}

static PGconn *hp__connect(const char *pg_url, char *err, size_t errlen)
{
    if (pg_url == NULL) {
        snprintf(err, errlen, "no database: set HOTPLATE_PG_URL");
        return NULL;
    }
    const char *keys[] = {"dbname", "application_name", "connect_timeout", "options", NULL};
    /* No statement_timeout: building an index on a big table takes as long as it takes. */
    const char *vals[] = {pg_url, "hotplate-index", "5", "-c statement_timeout=0", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Runs one statement. @return 0, or -1 with PostgreSQL's message in err */
static int hp__exec(PGconn *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int ret = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (ret != 0)
        snprintf(err, errlen, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ret;
}

/* @return 1 when the index exists and is valid, 0 when it is absent or invalid (*invalid set), -1 on error */
static int hp__exists(PGconn *pg, const hp_pgindex_def_t *def, int *invalid, char *err, size_t errlen)
{
    const char *values[] = {def->index};
    PGresult *res = PQexecParams(pg,
                                 "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                 "WHERE c.relname = $1 AND pg_table_is_visible(c.oid)",
                                 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "looking the index up: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) != 0, valid = found && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    *invalid = found && !valid;
    return valid;
}

/* Finds the named index and connects for it; NULL with err set when either fails. The caller owns the connection. */
static PGconn *hp__open(const char *pg_url, const char *name, const hp_pgindex_def_t **def, char *err, size_t errlen)
{
    *def = hp__find(name);
    if (*def == NULL) {
        snprintf(err, errlen, "unknown index %s", name);
        return NULL;
    }
    return hp__connect(pg_url, err, errlen);
}

int hp_pgindex_state(const char *pg_url, const char *name, int *on, char *err, size_t errlen)
{
    const hp_pgindex_def_t *def;
    PGconn *pg = hp__open(pg_url, name, &def, err, errlen);
    if (pg == NULL)
        return -1;
    int invalid, ret = hp__exists(pg, def, &invalid, err, errlen);
    PQfinish(pg);
    if (ret < 0)
        return -1;
    *on = ret;
    return 0;
}

int hp_pgindex_apply(const char *pg_url, const char *name, int on, char *err, size_t errlen)
{
    const hp_pgindex_def_t *def;
    PGconn *pg = hp__open(pg_url, name, &def, err, errlen);
    if (pg == NULL)
        return -1;
    char sql[256];
    int invalid = 0, ret = hp__exists(pg, def, &invalid, err, errlen);
    if (ret >= 0 && (!on || invalid)) {
        snprintf(sql, sizeof(sql), "DROP INDEX CONCURRENTLY IF EXISTS %s", def->index);
        ret = hp__exec(pg, sql, err, errlen);
    }
    if (ret >= 0 && on) {
        snprintf(sql, sizeof(sql), "CREATE INDEX CONCURRENTLY IF NOT EXISTS %s ON %s", def->index, def->definition);
        ret = hp__exec(pg, sql, err, errlen);
    }
    if (ret >= 0) {
        snprintf(sql, sizeof(sql), "ANALYZE %s", def->table);
        ret = hp__exec(pg, sql, err, errlen);
    }
    PQfinish(pg);
    return ret < 0 ? -1 : 0;
}

/* ---- the server's index thread --------------------------------------------------------------- */

static struct {
    hp_worker_t w;
    const char *pg_url;
    unsigned requested, done; /* generations: work is pending while they differ */
    int detect;               /* the pending work is reading the state, not changing it */
    const char *state;        /* "idle", "running", "done", "failed" */
    int target;               /* the flag value being applied (HP_orders_user_id_index_on or HP_orders_user_id_index_off) */
    char error[512];
    double ms; /* how long the last action took */
} hp__ix = {.w = HP_WORKER_INIT, .state = "idle"};

static double hp__elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void *hp__ix_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&hp__ix.w.lock);
    for (;;) {
        while (!hp__ix.w.stop && hp__ix.done == hp__ix.requested)
            pthread_cond_wait(&hp__ix.w.wake, &hp__ix.w.lock);
        if (hp__ix.w.stop)
            break;
        unsigned gen = hp__ix.requested;
        int detect = hp__ix.detect, target = hp_flag_get(HP_FLAG_orders_user_id_index);
        hp__ix.detect = 0;
        hp__ix.state = "running";
        hp__ix.target = target;
        pthread_mutex_unlock(&hp__ix.w.lock);

        char err[512] = "";
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int ret, on;
        if (detect) {
            /* No --flag given: the flag reports what the database has, e.g. after `hotplate index orders_user_id off`. */
            ret = hp_pgindex_state(hp__ix.pg_url, "orders_user_id", &on, err, sizeof(err));
            if (ret == 0) {
                target = on ? HP_orders_user_id_index_on : HP_orders_user_id_index_off;
                hp_flag_store_quietly(HP_FLAG_orders_user_id_index, target);
            }
        } else {
            ret = hp_pgindex_apply(hp__ix.pg_url, "orders_user_id", target == HP_orders_user_id_index_on, err, sizeof(err));
        }
        double ms = hp__elapsed_ms(&t0);
        if (ret == 0)
            hp_log(HP_LOG_INFO, "index orders_user_id %s: %s in %.0f ms", hp_flag_def(HP_FLAG_orders_user_id_index)->values[target],
                   detect ? "found" : "applied", ms);
        else
            hp_log(HP_LOG_ERROR, "index orders_user_id %s failed: %s", hp_flag_def(HP_FLAG_orders_user_id_index)->values[target],
                   err);

        pthread_mutex_lock(&hp__ix.w.lock);
        hp__ix.done = gen;
        hp__ix.state = ret == 0 ? "done" : "failed";
        hp__ix.target = target;
        hp__ix.ms = ms;
        snprintf(hp__ix.error, sizeof(hp__ix.error), "%s", ret == 0 ? "" : err);
        /* A change that arrived while this one ran is picked up by the next turn of the loop. */
        if (hp__ix.done != hp__ix.requested)
            hp__ix.state = "running";
    }
    pthread_mutex_unlock(&hp__ix.w.lock);
    return NULL;
}

int hp_pgindex_start(const char *pg_url)
{
    pthread_mutex_lock(&hp__ix.w.lock);
    hp__ix.pg_url = pg_url;
    hp__ix.detect = !hp_flag_explicit(HP_FLAG_orders_user_id_index);
    ++hp__ix.requested;
    hp__ix.state = "running";
    int ret = hp_worker_start(&hp__ix.w, hp__ix_main, NULL);
    pthread_mutex_unlock(&hp__ix.w.lock);
    return ret;
}

void hp_pgindex_flag_changed(void)
{
    pthread_mutex_lock(&hp__ix.w.lock);
    if (hp__ix.w.started) {
        ++hp__ix.requested;
        hp__ix.detect = 0;
        hp__ix.state = "running";
        hp__ix.target = hp_flag_get(HP_FLAG_orders_user_id_index);
        pthread_cond_signal(&hp__ix.w.wake);
    }
    pthread_mutex_unlock(&hp__ix.w.lock);
}

void hp_pgindex_stop(void)
{
    /* An index build in progress finishes first; PostgreSQL would otherwise leave an INVALID index behind. */
    hp_worker_stop(&hp__ix.w);
}

json_t *hp_pgindex_actions_json(void)
{
    pthread_mutex_lock(&hp__ix.w.lock);
    json_t *a = json_pack("{ss ss sf ss?}", "state", hp__ix.state, "target",
                          hp_flag_def(HP_FLAG_orders_user_id_index)->values[hp__ix.target], "ms", hp__ix.ms, "error",
                          hp__ix.error[0] != '\0' ? hp__ix.error : NULL);
    pthread_mutex_unlock(&hp__ix.w.lock);
    return json_pack("{so}", "orders_user_id_index", a);
}

int hp_pgindex_main(int argc, char **argv)
{
    if (argc != 3 || hp__find(argv[1]) == NULL || (strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0)) {
        fprintf(stderr,
                "usage: hotplate index orders_user_id on|off\n"
                "  creates (on) or drops (off) the index CONCURRENTLY, then runs ANALYZE; the database is HOTPLATE_PG_URL\n");
        return 2;
    }
    char err[512];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (hp_pgindex_apply(getenv("HOTPLATE_PG_URL"), argv[1], strcmp(argv[2], "on") == 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "hotplate index: %s\n", err);
        return 1;
    }
    printf("index %s %s (%s) in %.0f ms\n", argv[1], argv[2], hp__find(argv[1])->index, hp__elapsed_ms(&t0));
    return 0;
}
