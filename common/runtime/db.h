/*
 * db: PostgreSQL for the worker threads, non-blocking and pipelined.
 *
 * Each worker thread has one shared "read" connection and a small pool of
 * transaction connections, all in libpq pipeline mode and driven by the
 * thread's h2o evloop (each connection's socket is registered with the loop).
 *
 * - Independent reads go to the read connection with hp_db_query(). Requests
 *   on the same thread share it: their statements are queued back to back in
 *   one pipeline and their results come back in order, so many requests cost
 *   one round trip's worth of latency rather than one each.
 * - A transaction holds a pool connection from hp_db_acquire() to
 *   hp_db_release(); statements on it go through hp_db_conn_query().
 *
 * Every statement is a named, prepared statement from the tables registered
 * with hp_db_register(), prepared on each connection as it connects. Every wait
 * has a deadline (the statement deadline, the pool wait) that reports
 * hp_err_db_timeout or hp_err_pool_exhausted. A lost connection fails its
 * queued statements with hp_err_db_unavailable and reconnects every second.
 *
 * Callbacks are only ever invoked from the loop, never from inside the call
 * that queued them, and never after the request went away (see http.h).
 */
#ifndef HP_DB_H
#define HP_DB_H

#include <libpq-fe.h>

#include "runtime/http.h"
#include "runtime/thread.h"

typedef enum {
    HP_STMT_READ,   /* reads only: EXPLAIN needs no transaction, and a cache could serve it */
    HP_STMT_WRITE,  /* changes rows */
    HP_STMT_CONTROL /* BEGIN, COMMIT, ROLLBACK: no plan */
} hp_stmt_kind_t;

/* One named statement and its attributes (services/statements.h has the list and what each column means). */
typedef struct st_hp_db_stmt_def_t {
    const char *name;
    hp_stmt_kind_t kind;
    int route;                      /* the index in the API route table of the route whose time it mostly is, or -1 */
    const char *const *sample_args; /* SQL expressions, one per parameter, NULL-terminated */
    const char *sql;
} hp_db_stmt_def_t;

typedef struct st_hp_pgconn_t hp_pgconn_t;

/**
 * Called with the result of one statement.
 * @param res the result, owned by the callback (PQclear it), or NULL on a
 *            timeout or a lost connection
 * @param err NULL on success, else hp_err_db_timeout, hp_err_db_unavailable
 *            or hp_err_db_error (then res holds the error; see its SQLSTATE)
 */
typedef void (*hp_db_cb)(hp_req_t *r, void *ud, PGresult *res, const char *err);

/** Called when a transaction connection is ours (err NULL), or with the reason it is not. */
typedef void (*hp_db_acquire_cb)(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err);

/* The most statements the tables together may hold: the probes keep one slot each (HP_PROBE_MAX_STMTS). */
#define HP_DB_MAX_STMTS 64

/* The sample column of a statement list: SQL expressions, one per parameter, or none. */
#define HP_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define HP_NO_ARGS ((const char *const[]){NULL})

/**
 * Adds a table of statements (copied; the strings must be static storage).
 * Call before threads start: main.c registers the services' list, then the
 * admin endpoints' own.
 * @return the id of the table's first statement: its statements' ids are that plus their index
 */
int hp_db_register(const hp_db_stmt_def_t *stmts, size_t num_stmts);

/** Creates this thread's connections and starts connecting. @return 0 or -1 */
int hp_db_thread_init(hp_thread_t *thr);
/** Closes this thread's connections, failing anything queued. */
void hp_db_thread_dispose(hp_thread_t *thr);

/**
 * Ends each connection's batch of statements with its Sync and writes it: the
 * thread's loop calls this once per iteration (runtime/server.c), so the
 * statements of every request that ran in the iteration go out in one write.
 */
void hp_db_flush(hp_thread_t *thr);

/** @return 1 when this thread's read connection is connected and prepared */
int hp_db_ready(hp_thread_t *thr);

/** Queues a statement on the thread's read connection; its wait counts in the db stage. */
void hp_db_query(hp_req_t *r, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud);

/**
 * Queues a read that a standby may answer (runtime/replica.h): with the flag
 * replica_reads=on and --pg-replica-url set, it goes to the thread's standby
 * connection, unless that connection is not ready or key (a customer's id; 0
 * for none) committed something the standby has not replayed yet; then, and
 * with the flag off, it goes to the primary's read connection like
 * hp_db_query(). A read the standby fails or loses is sent to the primary, and
 * so is every read queued on a standby that has not answered one within half
 * the statement deadline (the standby then counts as down), so the standby
 * never fails a request.
 */
void hp_db_query_replica(hp_req_t *r, int64_t key, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud);

/**
 * Notes a commit for read-your-writes (runtime/replica.h) from the answer to
 * commit_lsn that followed it: key's reads stay on the primary until the
 * standby replayed that position, and the response sets HP_REPLICA_COOKIE to
 * it, so that the client's next read on another replica waits for it too.
 * Without a position (res is NULL, failed or unreadable) key's reads stay on
 * the primary for a second, far above a synchronous standby's replay lag, and
 * no cookie is set. Does not clear res.
 */
void hp_db_note_commit(hp_req_t *r, int64_t key, const PGresult *res);

/** The same, with its wait counted in another stage (auth's token lookup counts as auth). */
void hp_db_query_staged(hp_req_t *r, hp_stage_t stage, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud);

/** @return the name of statement stmt in the registered table */
const char *hp_db_stmt_name(int stmt);

/** @return the number of registered statements */
size_t hp_db_num_stmts(void);

/** @return the registered table (with its attributes), and its length in *num */
const hp_db_stmt_def_t *hp_db_stmts(size_t *num);

/** @return the id of the statement named name (len bytes), or -1 */
int hp_db_stmt_lookup(const char *name, size_t len);

/** @return the number of sample arguments of a statement (its parameters), 0 when it has none */
int hp_db_stmt_num_args(const hp_db_stmt_def_t *def);

/** @return the statement_timeout the connections set: --statement-timeout-ms, kept under the client deadline (db.c says why) */
int hp_db_statement_timeout_ms(const hp_config_t *cfg);

/** Waits for a free transaction connection, up to the pool timeout. */
void hp_db_acquire(hp_req_t *r, hp_db_acquire_cb cb, void *ud);

/** Queues a statement on a transaction connection held by r. */
void hp_db_conn_query(hp_req_t *r, hp_pgconn_t *conn, int stmt, const char *const *values, int num_values, hp_db_cb cb, void *ud);

/**
 * Called with a statement's outcome when its request went away before it
 * finished (res is cleared after the call returns; err as for hp_db_cb). For
 * a caller that must act on the outcome whatever happens to the request: a
 * checkout whose authorization is voided only if its order did not commit.
 */
typedef void (*hp_db_orphan_cb)(hp_thread_t *thr, void *ud, const PGresult *res, const char *err);

/**
 * hp_db_conn_query with an orphan callback, which gets the statement's real
 * outcome whenever cb does not: when the request went away, or when cb was
 * already told hp_err_db_timeout (res NULL) by the client deadline and the
 * statement finished later. So the outcome reaches exactly one of them, once;
 * orphan_ud must outlive the request (not the request's pool).
 */
void hp_db_conn_query_orphan(hp_req_t *r, hp_pgconn_t *conn, int stmt, const char *const *values, int num_values, hp_db_cb cb,
                             void *ud, hp_db_orphan_cb orphan, void *orphan_ud);

/**
 * Queues one-off SQL (not a named statement) on a transaction connection held
 * by r, or on the thread's read connection when conn is NULL. For the admin
 * thread's debug endpoints only (EXPLAIN, pg_stat_statements), whose SQL
 * cannot be prepared at connect time. It is sent as the unnamed statement
 * (PQsendQueryParams; PQsendQuery is refused in pipeline mode), so it must be
 * one statement; request input goes in values ($1, $2, ... in text format),
 * never into sql. It has the deadline and Sync of any statement, and counts
 * in the request's db stage, but has no per-statement probe (it shows as
 * "sql" in the USDT probes).
 */
void hp_db_conn_query_sql(hp_req_t *r, hp_pgconn_t *conn, const char *sql, const char *const *values, int num_values, hp_db_cb cb,
                          void *ud);

/**
 * Gives a transaction connection back. With rollback set, a ROLLBACK is queued
 * first (harmless when no transaction is open), so the next holder never
 * inherits an open transaction. A request that goes away while it holds one
 * gives it back the same way, with a ROLLBACK, through the operation the
 * grant attached to it.
 */
void hp_db_release(hp_req_t *r, hp_pgconn_t *conn, int rollback);

/**
 * The common first lines of a statement's or a connection grant's callback:
 * when err is set, clears res (if any) and answers the failure.
 * @return 1 when the request was answered (the callback should return), 0 otherwise
 */
int hp_db_failed(hp_req_t *r, PGresult *res, const char *err);

/**
 * hp_db_failed for a statement that must find a row: when it found none, also
 * clears res and answers 404 not_found with message.
 * @return 1 when the request was answered (the callback should return), 0 when res has a row
 */
int hp_db_missing(hp_req_t *r, PGresult *res, const char *err, const char *message);

/*
 * Statements a handler sends together and goes on from once all have
 * answered: each callback counts its result in, and the last one sees the
 * first error, if any.
 */
typedef struct st_hp_db_join_t {
    int pending;     /* results still to come */
    const char *err; /* the first error among those that came, or NULL */
} hp_db_join_t;

/**
 * Counts one result of j in, keeping err when it is the first error.
 * @return 1 when it was the last result (j->err is then final), 0 otherwise
 */
static inline int hp_db_join_done(hp_db_join_t *j, const char *err)
{
    if (err != NULL && j->err == NULL)
        j->err = err;
    return --j->pending == 0;
}

/**
 * Hands res to the request's pool: it is PQclear'ed when the request is
 * disposed, whether it was answered or the client went away. For a result a
 * handler keeps across further asynchronous steps, which a departed client
 * would otherwise leak (callbacks never run after the request is gone).
 * @return res
 */
PGresult *hp_db_keep(hp_req_t *r, PGresult *res);

/** @return the SQLSTATE of an error result, or "" */
const char *hp_db_sqlstate(const PGresult *res);

#endif
