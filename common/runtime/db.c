/*
 * db: non-blocking, pipelined PostgreSQL on the worker's evloop (see db.h).
 *
 * Life of a statement (hp_dbq_t): it is sent at once with
 * PQsendQueryPrepared(), which only fills libpq's output buffer, appended to
 * its connection's FIFO queue, and answered in order as results arrive. The
 * Sync comes later: once per loop iteration, hp_db_flush() ends every
 * connection's batch with one PQpipelineSync(), which writes the batch in one
 * system call. One Sync per batch rather than per statement matters on both
 * sides: libpq 15's PQpipelineSync() always flushes (so a Sync per statement
 * is a write(2) per statement), and PostgreSQL flushes its output at every
 * Sync (so a Sync per statement is a send per statement there too).
 *
 * Statements that share a Sync are not independent: after an error,
 * PostgreSQL skips the rest of the batch (PGRES_PIPELINE_ABORTED). On the
 * shared read connection those belong to other requests, which must not fail
 * for someone else's statement, so a skipped read is sent again in the next
 * batch, up to HP__MAX_RESENDS times; that is why an entry keeps a copy of its
 * parameters. On a transaction connection the batch is one request's, and a
 * skipped statement fails with hp_err_db_error as the transaction has.
 *
 * Ownership: hp_dbq_t and hp_db_waiter_t are malloc'd here and freed here,
 * because they outlive the request when the client goes away mid-statement
 * (the result still arrives and must be consumed in order). PGresults are
 * handed to the callback, which owns them; results of detached statements are
 * cleared here.
 */
#include "runtime/db.h"
#include "runtime/replica.h"
#include "base/flags.h"
#include "base/clock.h"
#include "base/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { HP_PG_DOWN, HP_PG_CONNECTING, HP_PG_PREPARING, HP_PG_READY } hp_pg_state_t;

/* What a connection is for: the shared read connection, a transaction connection, or the standby's read connection. */
typedef enum { HP__CONN_READ, HP__CONN_TXN, HP__CONN_STANDBY } hp__conn_kind_t;

struct st_hp_pgconn_t {
    hp_thread_t *thr;
    const char *label; /* "read", "txn" or "standby", for logs */
    hp__conn_kind_t kind;
    const char *url; /* the primary's URL (--pg-url), or the standby's (--pg-replica-url) */
    PGconn *pg;
    h2o_socket_t *sock; /* wraps a dup of libpq's socket, so closing it never closes libpq's */
    int pg_fd;          /* libpq's socket the dup was made from */
    hp_pg_state_t state;
    int write_notified;   /* h2o_socket_notify_write outstanding */
    h2o_linklist_t queue; /* hp_dbq_t awaiting results, in send order */
    hp_req_t *holder;     /* transaction connections: who holds it */
    hp_op_t hold;         /* attached to the holder: gives the connection back if the request goes away */
    h2o_linklist_t free_link;
    h2o_timeout_entry_t retry_entry;
    int down_logged;
    struct st_hp_dbq_t *unsynced; /* the last entry of the batch that hp_db_flush will end with a Sync, or NULL */
    /*
     * Standby connections only: the replay position of the node this
     * connection reaches, as its last poll read it (0 until then, and again
     * after the connection fails: the next one may reach another node), and
     * whether a poll is in flight.
     */
    uint64_t replay_lsn;
    int replay_polling;
};

typedef struct st_hp_dbq_t {
    hp_op_t op;
    hp_pgconn_t *conn;
    h2o_linklist_t qlink;
    hp_db_cb cb;
    void *ud;
    int stmt;         /* a statement id, HP__STMT_INTERNAL or HP__STMT_SQL */
    hp_stage_t stage; /* where the request's wait for it is counted */
    int has_sync;     /* a PGRES_PIPELINE_SYNC ends this entry */
    int got_result;
    int resends; /* times it was sent again after its batch was aborted by another statement */
    PGresult *res;
    const char *err;
    uint64_t start_ns;
    h2o_timeout_entry_t timeout; /* the deadline while queued; the deferred delivery after a failure */
    int num_values;
    const char **values;    /* a copy of the parameters, in this allocation, for a resend */
    hp_db_orphan_cb orphan; /* called instead of cb when the request went away (hp_db_conn_query_orphan) */
    void *orphan_ud;
} hp_dbq_t;

typedef struct st_hp_db_waiter_t {
    hp_op_t op;
    hp_thread_t *thr;
    uint64_t start_ns;
    int waiting; /* counted in the pool's waiting gauge */
    hp_db_acquire_cb cb;
    void *ud;
    h2o_linklist_t link;
    h2o_timeout_entry_t timeout;
    hp_pgconn_t *granted;
    const char *err;
} hp_db_waiter_t;

struct st_hp_db_t {
    /*
     * The pipelined read connections (--db-readers, two by default). One
     * PostgreSQL backend runs one statement at a time, so a thread's reads on
     * one connection are limited to what that backend does, and one read that
     * waits (on a lock, or a slow plan) holds up every read queued behind it.
     * With several, a read goes to the one picked by hp__reader_pick.
     */
    hp_pgconn_t *readers;
    size_t num_readers;
    /*
     * The standby's read connections (replica_reads), as many as the
     * primary's (--db-readers), so that sending the reads there never leaves
     * them fewer backends: connected whenever --pg-replica-url is set, so
     * that turning the flag on takes effect at the next request. Each polls
     * its own node's replay position (every HP__REPLAY_POLL_MS while the flag
     * is on): with a multi-host URL two connections may reach two standbys.
     */
    hp_pgconn_t *standbys;
    size_t num_standbys;           /* 0 without --pg-replica-url, and on the admin thread */
    h2o_timeout_t standby_timeout; /* the deadline of a statement on the standby: half --db-timeout-ms */
    h2o_timeout_t replay_timeout;
    h2o_timeout_entry_t replay_entry;
    hp_pgconn_t *pool;
    size_t pool_size;
    h2o_linklist_t free_conns; /* pool connections that are READY and not held */
    h2o_linklist_t waiters;    /* hp_db_waiter_t, oldest first */
    size_t in_use;             /* pool connections held by a request */
};

/*
 * Entries that are not a named statement: internal steps (prepare, rollback),
 * whose results only matter when they fail, and one-off SQL from
 * hp_db_conn_query_sql(), which has a callback but no statement slot in the
 * probes.
 */
enum { HP__STMT_INTERNAL = -1, HP__STMT_SQL = -2 };

/* How many times a read is sent again after other requests' errors aborted its batch, before it fails itself. */
#define HP__MAX_RESENDS 3

/*
 * How often each thread reads the standby's replay position while
 * replica_reads is on: a customer's reads stay on the primary for about this
 * long after their checkout, and the poll costs the standby a hundred trivial
 * statements a second per thread.
 */
#define HP__REPLAY_POLL_MS 10

/* Every registered statement, the service's first, then the admin endpoints' (hp_db_register). */
static hp_db_stmt_def_t hp__stmts[HP_DB_MAX_STMTS];
static size_t hp__num_stmts;

static void hp__conn_connect(hp_pgconn_t *conn);
static void hp__conn_fail(hp_pgconn_t *conn, const char *why);
static int hp__conn_sync(hp_pgconn_t *conn);
static void hp__conn_on_readable(h2o_socket_t *sock, const char *err);
static void hp__conn_on_writable(h2o_socket_t *sock, const char *err);
static void hp__pool_offer(hp_pgconn_t *conn);

int hp_db_register(const hp_db_stmt_def_t *stmts, size_t num_stmts)
{
    if (hp__num_stmts + num_stmts > HP_DB_MAX_STMTS)
        abort(); /* a fixed bound, sized with room: only a new list that outgrows it lands here */
    int first = (int)hp__num_stmts;
    memcpy(hp__stmts + hp__num_stmts, stmts, num_stmts * sizeof(*stmts));
    hp__num_stmts += num_stmts;
    return first;
}

static void hp__kept_dispose(void *p)
{
    PQclear(*(PGresult **)p);
}

PGresult *hp_db_keep(hp_req_t *r, PGresult *res)
{
    PGresult **slot = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*slot), hp__kept_dispose);
    *slot = res;
    return res;
}

const char *hp_db_sqlstate(const PGresult *res)
{
    const char *s = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s != NULL ? s : "";
}

int hp_db_failed(hp_req_t *r, PGresult *res, const char *err)
{
    if (err == NULL)
        return 0;
    if (res != NULL)
        PQclear(res);
    hp_respond_failure(r, err);
    return 1;
}

int hp_db_missing(hp_req_t *r, PGresult *res, const char *err, const char *message)
{
    if (hp_db_failed(r, res, err))
        return 1;
    if (PQntuples(res) != 0)
        return 0;
    PQclear(res);
    hp_respond_error(r, HP_E_not_found, message);
    return 1;
}

/* ---- statements ---------------------------------------------------------- */

/*
 * db_ns counts the wall time during which the request waited on at least one
 * statement, so statements pipelined side by side are not counted twice. now
 * is the caller's clock read of this moment (hp_now_ns_once), shared with the
 * statement's own timing and its probe stage.
 */
static void hp__db_wait_begin(hp_req_t *r, uint64_t *now)
{
    if (r->db_pending++ == 0)
        r->db_since = hp_now_ns_once(now);
}

static void hp__db_wait_end(hp_req_t *r, uint64_t *now)
{
    if (--r->db_pending == 0)
        r->db_ns += hp_ns_since(hp_now_ns_once(now), r->db_since);
}

/*
 * A new entry; values (num_values of them, NULL for SQL null) are copied into
 * its allocation, so that it can be sent again after its caller returned.
 */
static hp_dbq_t *hp__dbq_new_with(hp_req_t *r, hp_pgconn_t *conn, int stmt, hp_db_cb cb, void *ud, hp_stage_t stage,
                                  const char *const *values, int num_values)
{
    size_t bytes = sizeof(hp_dbq_t) + sizeof(char *) * (size_t)num_values;
    for (int i = 0; i != num_values; ++i)
        if (values[i] != NULL)
            bytes += strlen(values[i]) + 1;
    hp_dbq_t *q = calloc(1, bytes);
    if (q == NULL)
        abort();
    q->num_values = num_values;
    q->values = (const char **)(q + 1);
    char *text = (char *)(q->values + num_values);
    for (int i = 0; i != num_values; ++i) {
        if (values[i] == NULL)
            continue;
        size_t n = strlen(values[i]) + 1;
        memcpy(text, values[i], n);
        q->values[i] = text;
        text += n;
    }
    q->conn = conn;
    q->cb = cb;
    q->ud = ud;
    q->stmt = stmt;
    uint64_t now = 0;
    q->start_ns = hp_probe_clock_once(&now);
    q->stage = stage;
    if (r != NULL) {
        hp_op_attach(r, &q->op);
        hp__db_wait_begin(r, &now);
        hp_probe_wait_begin(&r->probe, stage, &now);
    }
    return q;
}

static hp_dbq_t *hp__dbq_new(hp_req_t *r, hp_pgconn_t *conn, int stmt, hp_db_cb cb, void *ud, hp_stage_t stage)
{
    return hp__dbq_new_with(r, conn, stmt, cb, ud, stage, NULL, 0);
}

/* Hands the outcome to the request, if it is still there, and frees the entry; now as in hp__db_wait_end. */
static void hp__dbq_finish(hp_dbq_t *q, PGresult *res, const char *err, uint64_t *now)
{
    hp_req_t *r = q->op.req;
    if (h2o_timeout_is_linked(&q->timeout))
        h2o_timeout_unlink(&q->timeout);
    if (r != NULL && q->cb != NULL) {
        hp_op_detach(&q->op);
        hp__db_wait_end(r, now);
        hp_probe_wait_end(&r->probe, q->stage, now);
        q->cb(r, q->ud, res, err);
    } else {
        hp_op_detach(&q->op);
        if (q->orphan != NULL)
            q->orphan(q->conn->thr, q->orphan_ud, res, err);
        if (res != NULL)
            PQclear(res);
    }
    free(q);
}

static void hp__dbq_on_deferred(h2o_timeout_entry_t *entry)
{
    hp_dbq_t *q = H2O_STRUCT_FROM_MEMBER(hp_dbq_t, timeout, entry);
    uint64_t now = 0;
    hp__dbq_finish(q, NULL, q->err, &now);
}

/* Fails a statement that never reached a connection, on the next loop iteration. */
static void hp__dbq_fail_later(hp_thread_t *thr, hp_dbq_t *q, const char *err)
{
    q->err = err;
    hp_thread_defer(thr, &q->timeout, hp__dbq_on_deferred);
}

/*
 * The client-side deadline of a queued statement. The request gets its 504 now;
 * the entry stays queued, detached, because its result will still arrive (the
 * server-side statement_timeout ends it) and must be consumed in order.
 */
static void hp__dbq_on_timeout(h2o_timeout_entry_t *entry)
{
    hp_dbq_t *q = H2O_STRUCT_FROM_MEMBER(hp_dbq_t, timeout, entry);
    hp_req_t *r = q->op.req;
    if (q->conn->kind == HP__CONN_STANDBY) {
        /*
         * A standby that has not answered within its shorter deadline is
         * treated as down: its connection is closed, which sends every read
         * queued on it, this one included, to the primary with a deadline of
         * its own, and reconnects a second later. A standby that stopped
         * answering without closing its connection so costs a read half its
         * deadline, never a 504.
         */
        hp__conn_fail(q->conn, "the standby did not answer within its deadline");
        return;
    }
    if (r == NULL || q->cb == NULL)
        return;
    hp_db_cb cb = q->cb;
    hp_op_detach(&q->op);
    q->cb = NULL;
    uint64_t now = 0;
    hp__db_wait_end(r, &now);
    hp_probe_wait_end(&r->probe, q->stage, &now);
    cb(r, q->ud, NULL, hp_err_db_timeout);
}

/* ---- connection I/O ------------------------------------------------------ */

static void hp__conn_flush(hp_pgconn_t *conn)
{
    int ret = PQflush(conn->pg);
    if (ret < 0) {
        hp__conn_fail(conn, PQerrorMessage(conn->pg));
    } else if (ret > 0 && !conn->write_notified) {
        /* The socket buffer is full; finish the write when the loop says it drained. */
        conn->write_notified = 1;
        h2o_socket_notify_write(conn->sock, hp__conn_on_writable);
    }
}

/* @return the name probes and logs know an entry by */
static const char *hp__dbq_name(const hp_dbq_t *q)
{
    return q->stmt >= 0 ? hp__stmts[q->stmt].name : "sql";
}

/*
 * Sends one prepared statement into the connection's current batch (its Sync
 * is hp_db_flush's), or, for HP__STMT_SQL, the one-off SQL in sql with a
 * Sync of its own (debug endpoints only: their SQL is not kept for a resend).
 * Queues the entry. @return 0 or -1
 */
static int hp__conn_send(hp_pgconn_t *conn, hp_dbq_t *q, const char *sql)
{
    /* PQsendQuery is refused in pipeline mode; PQsendQueryParams sends the SQL as the unnamed statement. */
    if (q->stmt == HP__STMT_SQL) {
        if (hp__conn_sync(conn) != 0 || !PQsendQueryParams(conn->pg, sql, q->num_values, NULL, q->values, NULL, NULL, 0) ||
            !PQpipelineSync(conn->pg))
            return -1;
        q->has_sync = 1;
    } else {
        if (!PQsendQueryPrepared(conn->pg, hp__stmts[q->stmt].name, q->num_values, q->values, NULL, NULL, 0))
            return -1;
        q->has_sync = 0;
        conn->unsynced = q;
    }
    HP_USDT2(query__start, hp__dbq_name(q), conn->thr->index);
    h2o_linklist_insert(&conn->queue, &q->qlink);
    if (!h2o_timeout_is_linked(&q->timeout)) {
        q->timeout.cb = hp__dbq_on_timeout;
        h2o_timeout_link(conn->thr->ctx.loop,
                         conn->kind == HP__CONN_STANDBY ? &conn->thr->db->standby_timeout : &conn->thr->db_timeout, &q->timeout);
    }
    if (q->stmt == HP__STMT_SQL)
        hp__conn_flush(conn);
    return 0;
}

/* Ends the connection's batch with its Sync, which writes it out. @return 0, or -1 when the connection failed */
static int hp__conn_sync(hp_pgconn_t *conn)
{
    if (conn->unsynced == NULL)
        return 0;
    hp_dbq_t *last = conn->unsynced;
    conn->unsynced = NULL;
    if (!PQpipelineSync(conn->pg))
        return -1;
    last->has_sync = 1;
    if (conn->kind != HP__CONN_STANDBY)
        hp_probe_count(conn->thr, conn->kind == HP__CONN_TXN ? HP_COUNTER_pool_batches : HP_COUNTER_read_batches, 1);
    hp__conn_flush(conn);
    return 0;
}

void hp_db_flush(hp_thread_t *thr)
{
    struct st_hp_db_t *db = thr->db;
    if (db == NULL)
        return;
    size_t nr = db->num_readers, ns = db->num_standbys;
    for (size_t i = 0; i != nr + ns + db->pool_size; ++i) {
        hp_pgconn_t *conn = i < nr ? &db->readers[i] : i < nr + ns ? &db->standbys[i - nr] : &db->pool[i - nr - ns];
        if (conn->unsynced != NULL && conn->state == HP_PG_READY && hp__conn_sync(conn) != 0)
            hp__conn_fail(conn, PQerrorMessage(conn->pg));
    }
}

/*
 * How old the head of a read connection's queue may be before new reads go
 * to another one. The reads of one loop iteration go out as one batch behind
 * one Sync, and a backend answers a batch of cheap reads (primary-key
 * look-ups, tokens) in well under a millisecond, so while the head is younger
 * than this the connection is keeping up and a deeper batch costs fewer
 * system calls than two shallow ones: splitting them cost the primary-key
 * read 9% of its throughput (docs/BENCHMARKS.md). A head older than this is a
 * backend that is the limit (menu_get builds kilobytes of JSON) or a read
 * stuck on a lock, and then a second backend pays. The loop's clock has
 * millisecond steps, so 2 means between one and two milliseconds.
 */
#define HP__READER_SPILL_MS 2

/*
 * The connection of conns[0..n) for a new read: the first ready one that is
 * idle or whose oldest outstanding entry is younger than HP__READER_SPILL_MS,
 * else the ready one whose oldest outstanding entry is the youngest; NULL when
 * none is ready. A read stuck behind a lock holds up its connection's whole
 * queue, and its queue's head is then old, so new reads go elsewhere. Every
 * queued entry has its deadline linked, and h2o_timeout_link stamped it with
 * the loop's time, probes on or off. *spilled says whether the pick is past
 * the first ready connection (the primary's count in read_spills).
 */
static hp_pgconn_t *hp__read_pick(hp_pgconn_t *conns, size_t n, uint64_t now, int *spilled)
{
    hp_pgconn_t *first = NULL, *best = NULL;
    uint64_t best_head = 0;
    for (size_t i = 0; i != n; ++i) {
        hp_pgconn_t *c = &conns[i];
        if (c->state != HP_PG_READY)
            continue;
        if (first == NULL)
            first = c;
        uint64_t head =
            h2o_linklist_is_empty(&c->queue) ? now : H2O_STRUCT_FROM_MEMBER(hp_dbq_t, qlink, c->queue.next)->timeout.registered_at;
        if (now - head < HP__READER_SPILL_MS) { /* idle, or keeping up */
            best = c;
            break;
        }
        if (best == NULL || head > best_head)
            best = c, best_head = head;
    }
    *spilled = best != first;
    return best;
}

/* The primary's read connection for a new read (NULL never: with none ready, the first, where the read fails). */
static hp_pgconn_t *hp__reader_pick(struct st_hp_db_t *db)
{
    int spilled;
    hp_pgconn_t *c = hp__read_pick(db->readers, db->num_readers, h2o_now(db->readers[0].thr->ctx.loop), &spilled);
    if (c == NULL)
        return &db->readers[0];
    if (spilled)
        hp_probe_count(c->thr, HP_COUNTER_read_spills, 1);
    return c;
}

static hp_dbq_t *hp__conn_query(hp_req_t *r, hp_pgconn_t *conn, hp_stage_t stage, int stmt, const char *sql,
                                const char *const *values, int num_values, hp_db_cb cb, void *ud)
{
    hp_dbq_t *q = hp__dbq_new_with(r, conn, stmt, cb, ud, stage, values, num_values);
    if (conn->state != HP_PG_READY) {
        hp__dbq_fail_later(conn->thr, q, hp_err_db_unavailable);
        return q;
    }
    if (hp__conn_send(conn, q, sql) != 0) {
        hp__dbq_fail_later(conn->thr, q, hp_err_db_unavailable);
        hp__conn_fail(conn, PQerrorMessage(conn->pg));
    }
    return q;
}

/* Maps a finished result to the error reported to the callback. */
static const char *hp__result_err(const PGresult *res)
{
    if (res == NULL)
        return hp_err_db_unavailable;
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        return NULL;
    default: {
        /* 57014 query_canceled is what statement_timeout raises, 55P03 lock_not_available lock_timeout. */
        const char *state = hp_db_sqlstate(res);
        if (strcmp(state, "57014") == 0)
            return hp_err_db_timeout;
        return strcmp(state, "55P03") == 0 ? hp_err_lock_timeout : hp_err_db_error;
    }
    }
}

/* An internal step (prepare, rollback) completed: only failures matter. */
static void hp__internal_done(hp_pgconn_t *conn, hp_dbq_t *q, PGresult *res)
{
    if (res != NULL && hp__result_err(res) != NULL) {
        hp_log(HP_LOG_ERROR, "postgres %s connection: internal step failed: %s", conn->label, PQresultErrorMessage(res));
        if (conn->state == HP_PG_PREPARING) {
            PQclear(res);
            free(q);
            hp__conn_fail(conn, "prepare failed");
            return;
        }
    }
    if (res != NULL)
        PQclear(res);
    int last_prepare = conn->state == HP_PG_PREPARING && q->has_sync;
    free(q);
    if (last_prepare) {
        conn->state = HP_PG_READY;
        if (conn->kind == HP__CONN_TXN)
            atomic_fetch_add(&conn->thr->pg_txn_ready, 1);
        else if (conn->kind == HP__CONN_READ)
            atomic_fetch_add(&conn->thr->pg_reader_ready, 1);
        conn->down_logged = 0;
        hp_log(HP_LOG_INFO, "postgres %s connection ready (thread %d)", conn->label, conn->thr->index);
        /* A transaction connection rejoins the pool unless a request still holds it (it will release it). */
        if (conn->kind == HP__CONN_TXN && conn->holder == NULL)
            hp__pool_offer(conn);
    }
}

/*
 * Sends a read that the standby could not answer (its connection failed, or
 * it returned an error) to the primary's read connection instead, keeping its
 * deadline; it is counted as a fallback. A read on the primary is never moved
 * again, so its outcome is the request's.
 */
static void hp__dbq_move_to_primary(hp_thread_t *thr, hp_dbq_t *q)
{
    hp_pgconn_t *reader = hp__reader_pick(thr->db);
    hp_probe_count(thr, HP_COUNTER_replica_fallbacks, 1);
    q->conn = reader;
    q->got_result = 0;
    q->has_sync = 0;
    q->res = NULL;
    if (reader->state == HP_PG_READY && hp__conn_send(reader, q, NULL) == 0)
        return;
    if (h2o_timeout_is_linked(&q->timeout))
        h2o_timeout_unlink(&q->timeout);
    hp__dbq_fail_later(thr, q, hp_err_db_unavailable);
    if (reader->state == HP_PG_READY)
        hp__conn_fail(reader, PQerrorMessage(reader->pg));
}

/* The head of conn's queue has its result; now is the clock read shared by the results of one read (hp__conn_drain). */
static void hp__conn_complete_head(hp_pgconn_t *conn, uint64_t *now)
{
    hp_dbq_t *q = H2O_STRUCT_FROM_MEMBER(hp_dbq_t, qlink, conn->queue.next);
    h2o_linklist_unlink(&q->qlink);
    PGresult *res = q->res;
    q->res = NULL;
    if (q->stmt == HP__STMT_INTERNAL) {
        if (h2o_timeout_is_linked(&q->timeout))
            h2o_timeout_unlink(&q->timeout);
        hp__internal_done(conn, q, res);
    } else if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_ABORTED && q->stmt >= 0 && conn->kind != HP__CONN_TXN &&
               q->op.req != NULL && q->resends < HP__MAX_RESENDS) {
        /* Another request's statement failed in this batch: this read goes out again in the next one. */
        PQclear(res);
        ++q->resends;
        q->got_result = 0;
        if (hp__conn_send(conn, q, NULL) != 0) {
            if (h2o_timeout_is_linked(&q->timeout))
                h2o_timeout_unlink(&q->timeout);
            hp__dbq_fail_later(conn->thr, q, hp_err_db_unavailable);
            hp__conn_fail(conn, PQerrorMessage(conn->pg));
        }
    } else if (conn->kind == HP__CONN_STANDBY && q->stmt >= 0 && q->op.req != NULL && hp__result_err(res) != NULL) {
        /*
         * The standby failed a read that the primary may well answer (a
         * recovery conflict cancels standby queries, for one): it goes to the
         * primary, whose answer, error or not, is the request's.
         */
        if (res != NULL)
            PQclear(res);
        hp__dbq_move_to_primary(conn->thr, q);
    } else {
        const char *err = hp__result_err(res);
        uint64_t ns = hp_ns_since(hp_probe_clock_once(now), q->start_ns), rows = 0;
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
            rows = (uint64_t)PQntuples(res);
        else if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
            rows = strtoull(PQcmdTuples(res), NULL, 10);
        hp_probe_stmt_done(conn->thr, q->op.req != NULL ? &q->op.req->probe : NULL, q->stmt, ns, *now, rows, err != NULL);
        HP_USDT3(query__done, hp__dbq_name(q), ns / 1000, err != NULL);
        hp__dbq_finish(q, res, err, now);
    }
}

/*
 * Reads every result that is available without blocking. Each statement yields
 * its result, then NULL, then (when it has one) its PGRES_PIPELINE_SYNC.
 *
 * The results of one drain all arrived in the read before it, so they share
 * one clock read (taken at the first that needs it): the statements' latency
 * and their requests' database wait end when the answer arrived, not when
 * the loop got round to an answer queued behind another's callback, and a
 * pipelined batch of four reads costs one clock read instead of twelve. A
 * statement a callback sent after that reading counts from 0 if its answer
 * comes in the same drain (hp_ns_since), which libpq allows: a send that
 * finds the socket full reads what has arrived.
 */
static void hp__conn_drain(hp_pgconn_t *conn)
{
    uint64_t now = 0;
    while (!h2o_linklist_is_empty(&conn->queue) && conn->state >= HP_PG_PREPARING) {
        if (PQisBusy(conn->pg))
            return;
        hp_dbq_t *q = H2O_STRUCT_FROM_MEMBER(hp_dbq_t, qlink, conn->queue.next);
        PGresult *res = PQgetResult(conn->pg);
        if (res == NULL) {
            if (!q->got_result)
                return; /* nothing more has arrived */
            if (!q->has_sync)
                hp__conn_complete_head(conn, &now);
            continue;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            hp__conn_complete_head(conn, &now);
            continue;
        }
        if (q->res != NULL)
            PQclear(q->res); /* a statement yields one result; keep the last if ever more */
        q->res = res;
        q->got_result = 1;
    }
}

static void hp__conn_on_readable(h2o_socket_t *sock, const char *err)
{
    hp_pgconn_t *conn = sock->data;
    if (err != NULL) {
        hp__conn_fail(conn, err);
        return;
    }
    if (conn->state == HP_PG_CONNECTING) {
        hp__conn_connect(conn);
        return;
    }
    if (!PQconsumeInput(conn->pg)) {
        hp__conn_fail(conn, PQerrorMessage(conn->pg));
        return;
    }
    hp__conn_drain(conn);
}

static void hp__conn_on_writable(h2o_socket_t *sock, const char *err)
{
    hp_pgconn_t *conn = sock->data;
    conn->write_notified = 0;
    if (err != NULL) {
        hp__conn_fail(conn, err);
        return;
    }
    if (conn->state == HP_PG_CONNECTING)
        hp__conn_connect(conn);
    else
        hp__conn_flush(conn);
}

/* ---- connecting ---------------------------------------------------------- */

static void hp__conn_close_socket(hp_pgconn_t *conn)
{
    if (conn->sock != NULL) {
        h2o_socket_close(conn->sock);
        conn->sock = NULL;
    }
    conn->write_notified = 0;
    conn->pg_fd = -1;
}

/* (Re)wraps libpq's current socket; it may change between connection attempts. */
static int hp__conn_track_socket(hp_pgconn_t *conn)
{
    int fd = PQsocket(conn->pg);
    if (fd < 0)
        return -1;
    if (conn->sock != NULL && fd == conn->pg_fd)
        return 0;
    hp__conn_close_socket(conn);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    conn->sock = h2o_evloop_socket_create(conn->thr->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    conn->sock->data = conn;
    conn->pg_fd = fd;
    return 0;
}

static void hp__conn_start_prepare(hp_pgconn_t *conn)
{
    if (PQsetnonblocking(conn->pg, 1) != 0 || PQenterPipelineMode(conn->pg) != 1) {
        hp__conn_fail(conn, "cannot enter pipeline mode");
        return;
    }
    conn->state = HP_PG_PREPARING;
    for (size_t i = 0; i != hp__num_stmts; ++i) {
        hp_dbq_t *q = hp__dbq_new(NULL, conn, HP__STMT_INTERNAL, NULL, NULL, HP_STAGE_db);
        if (!PQsendPrepare(conn->pg, hp__stmts[i].name, hp__stmts[i].sql, 0, NULL)) {
            free(q);
            hp__conn_fail(conn, PQerrorMessage(conn->pg));
            return;
        }
        h2o_linklist_insert(&conn->queue, &q->qlink);
    }
    hp_dbq_t *sync = hp__dbq_new(NULL, conn, HP__STMT_INTERNAL, NULL, NULL, HP_STAGE_db);
    sync->has_sync = 1;
    sync->got_result = 1;
    if (!PQpipelineSync(conn->pg)) {
        free(sync);
        hp__conn_fail(conn, PQerrorMessage(conn->pg));
        return;
    }
    h2o_linklist_insert(&conn->queue, &sync->qlink);
    h2o_socket_read_start(conn->sock, hp__conn_on_readable);
    hp__conn_flush(conn);
}

/* Advances a non-blocking connection attempt (PQconnectPoll) by one step. */
static void hp__conn_connect(hp_pgconn_t *conn)
{
    PostgresPollingStatusType st = PQconnectPoll(conn->pg);
    if (st == PGRES_POLLING_FAILED || hp__conn_track_socket(conn) != 0) {
        hp__conn_fail(conn, PQerrorMessage(conn->pg));
        return;
    }
    switch (st) {
    case PGRES_POLLING_READING:
        h2o_socket_read_start(conn->sock, hp__conn_on_readable);
        break;
    case PGRES_POLLING_WRITING:
        h2o_socket_read_stop(conn->sock);
        if (!conn->write_notified) {
            conn->write_notified = 1;
            h2o_socket_notify_write(conn->sock, hp__conn_on_writable);
        }
        break;
    case PGRES_POLLING_OK:
        hp__conn_start_prepare(conn);
        break;
    default:
        hp__conn_fail(conn, "unexpected connection state");
        break;
    }
}

/*
 * PostgreSQL's own timeouts are kept under the client deadline
 * (--db-timeout-ms), by a tenth of it and at least HP__DB_TIMEOUT_MARGIN_MS:
 * the server then ends a slow statement itself, with an error that aborts its
 * batch, before the client gives up on it. That matters for the checkout,
 * whose COMMIT travels in the same batch as its statement
 * (services/checkout.c): a statement PostgreSQL ended can never be followed by
 * that COMMIT, while one the client stopped waiting for may still complete.
 * The client deadline is left for a server that does not answer at all.
 *
 * The two clocks start apart: the client deadline at the loop's time when the
 * statement is queued, PostgreSQL's when its backend starts the statement,
 * after the batch's flush, the socket and the backend's own scheduling. On a
 * busy machine that gap has exceeded 30 ms: a fresh-clone CI run, whose
 * sanitized server ran beside three other test lanes on two cores, saw a
 * client deadline of 300 ms (statement_timeout 270 ms) fire first, and the
 * order it answered 504 for was committed once the test let go of the row
 * lock. Hence a floor well above a scheduler's time slices.
 */
#define HP__DB_TIMEOUT_MARGIN_MS 100

int hp_db_statement_timeout_ms(const hp_config_t *cfg)
{
    int margin = cfg->db_timeout_ms / 10 > HP__DB_TIMEOUT_MARGIN_MS ? cfg->db_timeout_ms / 10 : HP__DB_TIMEOUT_MARGIN_MS;
    int cap = cfg->db_timeout_ms - margin > 1 ? cfg->db_timeout_ms - margin : 1;
    return cfg->statement_timeout_ms < cap ? cfg->statement_timeout_ms : cap;
}

/*
 * The transaction connections plan each statement once, a generic plan,
 * never a custom plan per execution (plan_cache_mode). Left to itself,
 * PostgreSQL re-plans every execution of order_place, whose arrays
 * (unnest($12::bigint[], ...)) make the generic plan assume ten lines and so
 * cost more than a custom plan for a cart's one or two: planning its seven
 * CTEs was 29% of the backends' samples under a checkout load. The shapes are
 * the same (docs/BENCHMARKS.md compares them statement by statement). The
 * read connections keep PostgreSQL's choice, because there the value can
 * change the best plan: order_history for the busiest customer is a
 * sequential scan without its index (lab 02), and a generic plan, costed for
 * an average customer, would scan the whole unique index instead. Their
 * array reads (cart_items, cart_modifiers) are one-table lookups that plan
 * quickly.
 */
static void hp__conn_start(hp_pgconn_t *conn)
{
    char options[160];
    int stmt_ms = hp_db_statement_timeout_ms(conn->thr->cfg);
    snprintf(options, sizeof(options), "-c statement_timeout=%d -c lock_timeout=%d%s", stmt_ms,
             conn->thr->cfg->lock_timeout_ms < stmt_ms ? conn->thr->cfg->lock_timeout_ms : stmt_ms,
             conn->kind == HP__CONN_TXN ? " -c plan_cache_mode=force_generic_plan" : "");
    /* dbname first with expand_dbname, so the URL's settings apply and ours override them. */
    const char *keys[] = {"dbname", "options", "application_name", "connect_timeout", NULL};
    const char *vals[] = {conn->url, options, "hotplate", "5", NULL};
    conn->pg = PQconnectStartParams(keys, vals, 1);
    conn->state = HP_PG_CONNECTING;
    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD || hp__conn_track_socket(conn) != 0) {
        hp__conn_fail(conn, conn->pg != NULL ? PQerrorMessage(conn->pg) : "out of memory");
        return;
    }
    /* libpq's contract: start as if PQconnectPoll had asked to wait for writing. */
    conn->write_notified = 1;
    h2o_socket_notify_write(conn->sock, hp__conn_on_writable);
}

static void hp__conn_on_retry(h2o_timeout_entry_t *entry)
{
    hp_pgconn_t *conn = H2O_STRUCT_FROM_MEMBER(hp_pgconn_t, retry_entry, entry);
    if (!atomic_load(&conn->thr->stopping))
        hp__conn_start(conn);
}

/*
 * Tears a connection down after an error, fails everything queued on it (on
 * the next loop iteration, through the deferred path), and schedules a
 * reconnect in a second.
 */
static void hp__conn_fail(hp_pgconn_t *conn, const char *why)
{
    if (conn->state == HP_PG_DOWN)
        return;
    if (!conn->down_logged) {
        char msg[256];
        hp_log_escape(msg, sizeof(msg), why != NULL ? why : "");
        hp_log(HP_LOG_WARN, "postgres %s connection down (thread %d): %s", conn->label, conn->thr->index, msg);
        conn->down_logged = 1;
    }
    if (h2o_linklist_is_linked(&conn->free_link))
        h2o_linklist_unlink(&conn->free_link);
    if (conn->state == HP_PG_READY) {
        if (conn->kind == HP__CONN_TXN)
            atomic_fetch_sub(&conn->thr->pg_txn_ready, 1);
        else if (conn->kind == HP__CONN_READ)
            atomic_fetch_sub(&conn->thr->pg_reader_ready, 1);
    }
    conn->state = HP_PG_DOWN;
    conn->unsynced = NULL;
    /*
     * The next standby connection may reach another node (libpq picks
     * whichever host is a standby then), whose replay position this one's
     * says nothing about: until its first poll, fresh keys stay on the primary.
     */
    if (conn->kind == HP__CONN_STANDBY)
        conn->replay_lsn = 0;
    hp__conn_close_socket(conn);
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
    while (!h2o_linklist_is_empty(&conn->queue)) {
        hp_dbq_t *q = H2O_STRUCT_FROM_MEMBER(hp_dbq_t, qlink, conn->queue.next);
        h2o_linklist_unlink(&q->qlink);
        if (q->res != NULL) {
            PQclear(q->res);
            q->res = NULL;
        }
        if (h2o_timeout_is_linked(&q->timeout))
            h2o_timeout_unlink(&q->timeout);
        if (q->stmt == HP__STMT_INTERNAL)
            free(q);
        else if (conn->kind == HP__CONN_STANDBY && q->stmt >= 0 && q->op.req != NULL)
            hp__dbq_move_to_primary(conn->thr, q); /* never a failed request because of the standby */
        else
            hp__dbq_fail_later(conn->thr, q, hp_err_db_unavailable);
    }
    if (!atomic_load(&conn->thr->stopping) && !h2o_timeout_is_linked(&conn->retry_entry)) {
        conn->retry_entry.cb = hp__conn_on_retry;
        h2o_timeout_link(conn->thr->loop, &conn->thr->retry_timeout, &conn->retry_entry);
    }
}

/* ---- the transaction pool ------------------------------------------------ */

static void hp__waiter_on_deferred(h2o_timeout_entry_t *entry)
{
    hp_db_waiter_t *w = H2O_STRUCT_FROM_MEMBER(hp_db_waiter_t, timeout, entry);
    hp_req_t *r = w->op.req;
    hp_op_detach(&w->op);
    if (r != NULL) {
        uint64_t now = 0;
        hp_probe_wait_end(&r->probe, HP_STAGE_pool, &now);
        w->cb(r, w->ud, w->granted, w->err);
    }
    free(w);
}

/* A waiter leaves the queue: the waiting gauge and the wait histogram learn how it went. */
static void hp__waiter_leave(hp_thread_t *thr, hp_db_waiter_t *w, int timed_out)
{
    if (w->waiting) {
        w->waiting = 0;
        hp_probe_gauge(thr, HP_GAUGE_pool_waiting, -1);
    }
    hp_probe_count(thr, timed_out ? HP_COUNTER_pool_timeouts : HP_COUNTER_pool_acquired, 1);
    uint64_t now = 0, ns = hp_probe_clock_once(&now) - w->start_ns;
    hp_probe_observe(thr, HP_HIST_pool_wait, ns, now);
}

static void hp__waiter_on_timeout(h2o_timeout_entry_t *entry)
{
    hp_db_waiter_t *w = H2O_STRUCT_FROM_MEMBER(hp_db_waiter_t, timeout, entry);
    h2o_linklist_unlink(&w->link);
    hp__waiter_leave(w->thr, w, 1);
    w->err = hp_err_pool_exhausted;
    hp__waiter_on_deferred(entry);
}

/*
 * How many pool connections may be held at once: all of them, or one with the
 * db_pool=small bottleneck flag. The flag only caps how many are handed out,
 * so it can change mid-load: connections above a lowered cap simply stay free
 * until the holders drop below it, and a raised cap is used at the next
 * acquire or release.
 */
static size_t hp__pool_limit(const struct st_hp_db_t *db)
{
    return hp_flag_get(HP_FLAG_db_pool) == HP_db_pool_small ? 1 : db->pool_size;
}

static void hp__conn_release(hp_pgconn_t *conn, hp_req_t *r, int rollback);

/* The holder went away (its pool is being disposed): the connection comes back with a ROLLBACK. */
static void hp__hold_on_abandon(hp_op_t *op)
{
    hp_pgconn_t *conn = H2O_STRUCT_FROM_MEMBER(hp_pgconn_t, hold, op);
    hp__conn_release(conn, conn->holder, 1);
}

/* Makes conn r's; the callback runs on the next loop iteration. */
static void hp__pool_grant(hp_thread_t *thr, hp_db_waiter_t *w, hp_pgconn_t *conn)
{
    hp_req_t *r = w->op.req;
    ++thr->db->in_use;
    hp_probe_gauge(thr, HP_GAUGE_pool_in_use, 1);
    conn->holder = r;
    r->held = conn;
    conn->hold.on_abandon = hp__hold_on_abandon;
    hp_op_attach(r, &conn->hold);
    w->granted = conn;
    hp_thread_defer(thr, &w->timeout, hp__waiter_on_deferred);
}

/* Hands free connections to the oldest live waiters while the cap allows. */
static void hp__pool_drain(hp_thread_t *thr)
{
    struct st_hp_db_t *db = thr->db;
    while (!h2o_linklist_is_empty(&db->waiters) && !h2o_linklist_is_empty(&db->free_conns) && db->in_use < hp__pool_limit(db)) {
        hp_db_waiter_t *w = H2O_STRUCT_FROM_MEMBER(hp_db_waiter_t, link, db->waiters.next);
        h2o_linklist_unlink(&w->link);
        h2o_timeout_unlink(&w->timeout);
        hp__waiter_leave(thr, w, 0);
        if (w->op.req == NULL) {
            free(w); /* its request went away while waiting */
            continue;
        }
        hp_pgconn_t *conn = H2O_STRUCT_FROM_MEMBER(hp_pgconn_t, free_link, db->free_conns.next);
        h2o_linklist_unlink(&conn->free_link);
        hp__pool_grant(thr, w, conn);
    }
}

/* A ready connection is free again: it goes to the oldest live waiter, or waits in the free list. */
static void hp__pool_offer(hp_pgconn_t *conn)
{
    h2o_linklist_insert(&conn->thr->db->free_conns, &conn->free_link);
    hp__pool_drain(conn->thr);
}

void hp_db_acquire(hp_req_t *r, hp_db_acquire_cb cb, void *ud)
{
    hp_thread_t *thr = r->thr;
    struct st_hp_db_t *db = thr->db;
    hp_db_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        abort();
    w->cb = cb;
    w->ud = ud;
    w->thr = thr;
    w->start_ns = hp_probe_timed_wait_begin(&r->probe, HP_STAGE_pool);
    hp_op_attach(r, &w->op);
    assert(r->held == NULL);
    /* Older waiters come first: a free connection goes to the queue when there is one. */
    if (h2o_linklist_is_empty(&db->waiters) && !h2o_linklist_is_empty(&db->free_conns) && db->in_use < hp__pool_limit(db)) {
        hp_pgconn_t *conn = H2O_STRUCT_FROM_MEMBER(hp_pgconn_t, free_link, db->free_conns.next);
        h2o_linklist_unlink(&conn->free_link);
        hp_probe_count(thr, HP_COUNTER_pool_acquired, 1);
        hp_probe_observe(thr, HP_HIST_pool_wait, 0, w->start_ns);
        hp__pool_grant(thr, w, conn);
        return;
    }
    /* Waiting only makes sense if some connection is up or on its way up. */
    int any_alive = 0;
    for (size_t i = 0; i != db->pool_size; ++i)
        any_alive |= db->pool[i].state != HP_PG_DOWN;
    if (!any_alive || atomic_load(&thr->stopping)) {
        w->err = any_alive ? hp_err_shutting_down : hp_err_db_unavailable;
        hp_thread_defer(thr, &w->timeout, hp__waiter_on_deferred);
        return;
    }
    h2o_linklist_insert(&db->waiters, &w->link);
    w->waiting = 1;
    hp_probe_gauge(thr, HP_GAUGE_pool_waiting, 1);
    w->timeout.cb = hp__waiter_on_timeout;
    h2o_timeout_link(thr->loop, &thr->pool_timeout, &w->timeout);
    /* A cap raised since the last release (db_pool back to sized) frees connections that nobody offered yet. */
    hp__pool_drain(thr);
}

void hp_db_release(hp_req_t *r, hp_pgconn_t *conn, int rollback)
{
    assert(conn->holder == r);
    hp_op_detach(&conn->hold);
    hp__conn_release(conn, r, rollback);
}

static void hp__conn_release(hp_pgconn_t *conn, hp_req_t *r, int rollback)
{
    conn->holder = NULL;
    r->held = NULL;
    --conn->thr->db->in_use;
    hp_probe_gauge(conn->thr, HP_GAUGE_pool_in_use, -1);
    if (conn->state != HP_PG_READY)
        return; /* it rejoins the pool when it reconnects */
    if (rollback) {
        hp_dbq_t *q = hp__dbq_new(NULL, conn, HP__STMT_INTERNAL, NULL, NULL, HP_STAGE_db);
        /* PQsendQuery is refused in pipeline mode; the extended protocol is not. */
        if (!PQsendQueryParams(conn->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(conn->pg)) {
            free(q);
            hp__conn_fail(conn, PQerrorMessage(conn->pg));
            return;
        }
        q->has_sync = 1;
        h2o_linklist_insert(&conn->queue, &q->qlink);
        hp__conn_flush(conn);
    }
    hp__pool_offer(conn);
}

void hp_db_conn_query(hp_req_t *r, hp_pgconn_t *conn, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud)
{
    assert(conn->holder == r);
    hp__conn_query(r, conn, HP_STAGE_db, stmt, NULL, values, num_values, cb, ud);
}

void hp_db_conn_query_orphan(hp_req_t *r, hp_pgconn_t *conn, int stmt, const char *const *values, int num_values, hp_db_cb cb,
                             void *ud, hp_db_orphan_cb orphan, void *orphan_ud)
{
    assert(conn->holder == r);
    /* Set before anything can finish the entry: a failure to send is delivered on the next loop iteration. */
    hp_dbq_t *q = hp__conn_query(r, conn, HP_STAGE_db, stmt, NULL, values, num_values, cb, ud);
    q->orphan = orphan;
    q->orphan_ud = orphan_ud;
}

void hp_db_conn_query_sql(hp_req_t *r, hp_pgconn_t *conn, const char *sql, const char *const *values, int num_values, hp_db_cb cb,
                          void *ud)
{
    if (conn == NULL)
        conn = hp__reader_pick(r->thr->db);
    else
        assert(conn->holder == r);
    hp__conn_query(r, conn, HP_STAGE_db, HP__STMT_SQL, sql, values, num_values, cb, ud);
}

/* ---- per thread ------------------------------------------------------------ */

void hp_db_query(hp_req_t *r, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud)
{
    hp__conn_query(r, hp__reader_pick(r->thr->db), HP_STAGE_db, stmt, NULL, values, num_values, cb, ud);
}

void hp_db_query_staged(hp_req_t *r, hp_stage_t stage, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud)
{
    hp__conn_query(r, hp__reader_pick(r->thr->db), stage, stmt, NULL, values, num_values, cb, ud);
}

/*
 * The largest commit position the request's HP_REPLICA_COOKIE carries (0 for
 * none): the client's own last write, made through this process or another
 * replica of it (runtime/replica.h). HTTP/2 may split the cookies over
 * several headers, so every one is read.
 */
static uint64_t hp__cookie_lsn(hp_req_t *r)
{
    uint64_t best = 0, lsn;
    if (r->h2o == NULL)
        return 0;
    for (ssize_t i = -1; (i = h2o_find_header(&r->h2o->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        const h2o_iovec_t *v = &r->h2o->headers.entries[i].value;
        if (hp_replica_cookie_lsn(v->base, v->len, &lsn) == 0 && lsn > best)
            best = lsn;
    }
    return best;
}

void hp_db_query_replica(hp_req_t *r, int64_t key, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud)
{
    struct st_hp_db_t *db = r->thr->db;
    int enabled = db->num_standbys != 0 && hp_flag_get(HP_FLAG_replica_reads) == HP_replica_reads_on;
    hp_replica_mark_t mark = hp_replica_mark(key);
    if (enabled) {
        uint64_t carried = hp__cookie_lsn(r);
        if (carried > mark.lsn)
            mark.lsn = carried;
    }
    /* The standby connection first, then the decision with that connection's own replay position. */
    int spilled;
    hp_pgconn_t *conn = NULL,
                *standby = enabled ? hp__read_pick(db->standbys, db->num_standbys, h2o_now(r->thr->ctx.loop), &spilled) : NULL;
    switch (hp_replica_route(enabled, standby != NULL, &mark, standby != NULL ? standby->replay_lsn : 0, hp_now_ns())) {
    case HP_REPLICA_STANDBY:
        hp_probe_count(r->thr, HP_COUNTER_replica_reads, 1);
        conn = standby;
        break;
    case HP_REPLICA_PRIMARY_DOWN:
        hp_probe_count(r->thr, HP_COUNTER_replica_fallbacks, 1);
        break;
    case HP_REPLICA_PRIMARY_FRESH:
        hp_probe_count(r->thr, HP_COUNTER_replica_fresh, 1);
        break;
    case HP_REPLICA_PRIMARY_OFF:
        break;
    }
    hp__conn_query(r, conn != NULL ? conn : hp__reader_pick(db), HP_STAGE_db, stmt, NULL, values, num_values, cb, ud);
}

void hp_db_note_commit(hp_req_t *r, int64_t key, const PGresult *res)
{
    uint64_t lsn;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0) ||
        hp_replica_parse_lsn(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &lsn) != 0) {
        hp_replica_note_until(key, hp_now_ns() + 1000000000u);
        return;
    }
    hp_replica_note_lsn(key, lsn);
    /* A replay's position may come back after its answer (another read connection answered first): then only the table has it. */
    if (r->responded)
        return;
    char text[HP_REPLICA_LSN_TEXT];
    hp_add_header(r, "set-cookie",
                  hp_pool_printf(r, HP_REPLICA_COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax",
                                 hp_replica_format_lsn(lsn, text), HP_REPLICA_COOKIE_MAX_AGE));
}

/* ---- the standby's replay position ----------------------------------------- */

static void hp__replay_on_result(hp_thread_t *thr, void *ud, const PGresult *res, const char *err)
{
    (void)thr;
    hp_pgconn_t *conn = ud;
    conn->replay_polling = 0;
    uint64_t lsn;
    if (err == NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
        hp_replica_parse_lsn(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &lsn) == 0 && lsn > conn->replay_lsn)
        conn->replay_lsn = lsn;
}

/*
 * The poll's timer: while the flag is on, one pg_last_wal_replay_lsn() at a
 * time on each ready standby connection, with its own Sync so that it never
 * waits for a request's batch. It has no request, so its outcome reaches
 * hp__replay_on_result through the orphan path.
 */
static void hp__replay_tick(h2o_timeout_entry_t *entry)
{
    struct st_hp_db_t *db = H2O_STRUCT_FROM_MEMBER(struct st_hp_db_t, replay_entry, entry);
    hp_thread_t *thr = db->standbys[0].thr;
    if (atomic_load(&thr->stopping))
        return;
    for (size_t i = 0; i != db->num_standbys && hp_flag_get(HP_FLAG_replica_reads) == HP_replica_reads_on; ++i) {
        hp_pgconn_t *conn = &db->standbys[i];
        if (conn->replay_polling || conn->state != HP_PG_READY)
            continue;
        conn->replay_polling = 1;
        hp_dbq_t *q =
            hp__conn_query(NULL, conn, HP_STAGE_db, HP__STMT_SQL, "SELECT pg_last_wal_replay_lsn()::text", NULL, 0, NULL, NULL);
        q->orphan = hp__replay_on_result;
        q->orphan_ud = conn;
    }
    h2o_timeout_link(thr->loop, &db->replay_timeout, &db->replay_entry);
}

const char *hp_db_stmt_name(int stmt)
{
    return stmt >= 0 && (size_t)stmt < hp__num_stmts ? hp__stmts[stmt].name : "internal";
}

size_t hp_db_num_stmts(void)
{
    return hp__num_stmts;
}

const hp_db_stmt_def_t *hp_db_stmts(size_t *num)
{
    *num = hp__num_stmts;
    return hp__stmts;
}

int hp_db_stmt_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i != hp__num_stmts; ++i)
        if (strlen(hp__stmts[i].name) == len && memcmp(hp__stmts[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int hp_db_stmt_num_args(const hp_db_stmt_def_t *def)
{
    int n = 0;
    while (def->sample_args != NULL && def->sample_args[n] != NULL)
        ++n;
    return n;
}

int hp_db_ready(hp_thread_t *thr)
{
    return thr->db != NULL && atomic_load(&thr->pg_reader_ready) > 0;
}

static void hp__conn_init(hp_thread_t *thr, hp_pgconn_t *conn, const char *label, hp__conn_kind_t kind, const char *url)
{
    memset(conn, 0, sizeof(*conn));
    conn->thr = thr;
    conn->label = label;
    conn->kind = kind;
    conn->url = url;
    conn->pg_fd = -1;
    h2o_linklist_init_anchor(&conn->queue);
    conn->state = HP_PG_DOWN;
}

int hp_db_thread_init(hp_thread_t *thr)
{
    struct st_hp_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return -1;
    thr->db = db;
    h2o_linklist_init_anchor(&db->free_conns);
    h2o_linklist_init_anchor(&db->waiters);
    db->pool_size = (size_t)thr->db_pool_size;
    db->pool = calloc(db->pool_size, sizeof(*db->pool));
    if (db->pool == NULL)
        return -1;
    db->num_readers = thr->db_readers > 0 ? (size_t)thr->db_readers : 1;
    db->readers = calloc(db->num_readers, sizeof(*db->readers));
    if (db->readers == NULL)
        return -1;
    for (size_t i = 0; i != db->num_readers; ++i) {
        hp__conn_init(thr, &db->readers[i], "read", HP__CONN_READ, thr->cfg->pg_url);
        hp__conn_start(&db->readers[i]);
    }
    for (size_t i = 0; i != db->pool_size; ++i) {
        hp__conn_init(thr, &db->pool[i], "txn", HP__CONN_TXN, thr->cfg->pg_url);
        hp__conn_start(&db->pool[i]);
    }
    /* The admin thread's reads (EXPLAIN, pg_stat_statements) are about the primary: it gets no standby connection. */
    if (thr->cfg->pg_replica_url != NULL && !thr->is_admin) {
        db->standbys = calloc(db->num_readers, sizeof(*db->standbys));
        if (db->standbys == NULL)
            return -1;
        db->num_standbys = db->num_readers;
        h2o_timeout_init(thr->loop, &db->standby_timeout,
                         (uint64_t)(thr->cfg->db_timeout_ms > 1 ? thr->cfg->db_timeout_ms / 2 : 1));
        for (size_t i = 0; i != db->num_standbys; ++i) {
            hp__conn_init(thr, &db->standbys[i], "standby", HP__CONN_STANDBY, thr->cfg->pg_replica_url);
            hp__conn_start(&db->standbys[i]);
        }
        h2o_timeout_init(thr->loop, &db->replay_timeout, HP__REPLAY_POLL_MS);
        db->replay_entry.cb = hp__replay_tick;
        h2o_timeout_link(thr->loop, &db->replay_timeout, &db->replay_entry);
    }
    return 0;
}

static void hp__conn_dispose(hp_pgconn_t *conn)
{
    if (h2o_timeout_is_linked(&conn->retry_entry))
        h2o_timeout_unlink(&conn->retry_entry);
    hp__conn_fail(conn, "shutting down");
    if (h2o_timeout_is_linked(&conn->retry_entry))
        h2o_timeout_unlink(&conn->retry_entry);
}

void hp_db_thread_dispose(hp_thread_t *thr)
{
    struct st_hp_db_t *db = thr->db;
    if (db == NULL)
        return;
    if (db->num_standbys != 0) {
        if (h2o_timeout_is_linked(&db->replay_entry))
            h2o_timeout_unlink(&db->replay_entry);
        for (size_t i = 0; i != db->num_standbys; ++i)
            hp__conn_dispose(&db->standbys[i]);
        h2o_timeout_dispose(thr->loop, &db->replay_timeout);
        h2o_timeout_dispose(thr->loop, &db->standby_timeout);
    }
    for (size_t i = 0; i != db->num_readers; ++i)
        hp__conn_dispose(&db->readers[i]);
    free(db->readers);
    free(db->standbys);
    for (size_t i = 0; i != db->pool_size; ++i)
        hp__conn_dispose(&db->pool[i]);
    free(db->pool);
    free(db);
    thr->db = NULL;
}
