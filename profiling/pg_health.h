/*
 * pg_health: PostgreSQL's own health, the checks of PgHero and Heroku's
 * pg-extras, read from the statistics views and judged against the doctor's
 * thresholds:
 *
 *   - long-running queries and transactions, and sessions idle in a
 *     transaction (pg_stat_activity);
 *   - connections against max_connections, by application_name;
 *   - unused indexes, and duplicate indexes (one's columns a prefix of
 *     another's on the same table), each with its size and the DROP INDEX;
 *   - tables whose dead tuples call for VACUUM, or whose modifications since
 *     the last analyze call for ANALYZE (pg_stat_user_tables);
 *   - the buffer cache hit ratio of tables and of indexes
 *     (pg_statio_user_tables);
 *   - large tables read by sequential scans.
 *
 * This file is the pure part: the data a reading holds, the functions that
 * turn rows into it, and its JSON. A row is plain text cells (hp_pg_rows_t),
 * as libpq hands them over, so tests/unit/test_pg_health.c feeds canned rows
 * without a database. The SQL, the collection on the admin thread and the
 * route GET /debug/pg/health are pg_health_collect.c's; the doctor's rules on
 * a reading are doctor_health.c's.
 */
#ifndef HP_PG_HEALTH_H
#define HP_PG_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/** Entries kept per list of a reading: the worst first. */
#define HP_PG_HEALTH_MAX 8

/**
 * Rows of a result as text, row-major: cell[row * cols + col], NULL for an
 * SQL null. The cells are borrowed (a PGresult's, or a test's literals).
 */
typedef struct st_hp_pg_rows_t {
    int rows, cols;
    const char *const *cell;
} hp_pg_rows_t;

/*
 * The limits a reading is classified with. Each is the doctor's threshold of
 * the same name with pg_ in front (HP_DOCTOR_THRESHOLDS in doctor.h, which
 * describes each and gives its unit), passed in so this file stays pure.
 */
#define HP_PG_HEALTH_LIMITS(X)                                                                                                     \
    X(query_s)                                                                                                                     \
    X(xact_s)                                                                                                                      \
    X(idle_txn_s)                                                                                                                  \
    X(unused_scans)                                                                                                                \
    X(index_min_bytes)                                                                                                             \
    X(dead_rows)                                                                                                                   \
    X(dead_share)                                                                                                                  \
    X(analyze_rows)                                                                                                                \
    X(analyze_share)                                                                                                               \
    X(cache_hit)                                                                                                                   \
    X(cache_min_blocks)                                                                                                            \
    X(seq_min_rows)

typedef struct st_hp_pg_health_limits_t {
#define HP__PG_LIMIT_FIELD(name) double name;
    HP_PG_HEALTH_LIMITS(HP__PG_LIMIT_FIELD)
#undef HP__PG_LIMIT_FIELD
} hp_pg_health_limits_t;

/* A session of pg_stat_activity that is long-running or idle in its transaction. */
typedef struct st_hp_pg_session_t {
    int pid;
    char app[64];    /* application_name, "" when it set none */
    char user[64];   /* usename */
    char client[48]; /* client address, or "local" (a Unix socket) */
    char state[32];  /* active, idle in transaction, ... */
    char wait[48];   /* wait_event_type:wait_event, or "" */
    double query_ms; /* how long its current statement has run (active), or -1 */
    double xact_ms;  /* age of its transaction, or -1 outside one */
    double idle_ms;  /* how long it has sat idle in its transaction, or -1 */
    char query[160]; /* its current or last query, literals replaced by ? (hp_pg_query_shape) */
} hp_pg_session_t;

/* The connections of one application_name. */
typedef struct st_hp_pg_conn_app_t {
    char app[64]; /* application_name, "" when it set none */
    char users[64], clients[96];
    int total, active, idle, idle_in_txn;
} hp_pg_conn_app_t;

/* An index to drop: unused, or covered by another. */
typedef struct st_hp_pg_index_t {
    char schema[64], table[64], index[64];
    char covered_by[64];  /* duplicates: the index whose leading columns are this one's, or "" */
    int64_t bytes, scans; /* size (pg_class.relpages, as of the last VACUUM, ANALYZE or CREATE INDEX), idx_scan */
    char def[256];        /* pg_get_indexdef */
    char covered_def[256];
} hp_pg_index_t;

/* A table of pg_stat_user_tables, for VACUUM, ANALYZE and sequential scans. */
typedef struct st_hp_pg_table_t {
    char schema[64], table[64];
    int64_t live, dead, mod_since_analyze, seq_scan, seq_tup_read, idx_scan, bytes;
    double vacuum_age_s, analyze_age_s;             /* since the last (auto)vacuum or (auto)analyze; -1 never */
    double vacuum_at, analyze_at;                   /* the dead tuples and modifications at which autovacuum would act */
    int64_t heap_hit, heap_read, idx_hit, idx_read; /* its blocks found in shared buffers and read in (pg_statio_user_tables) */
} hp_pg_table_t;

/* A statement of pg_stat_statements that is not hotplate's: another application's, the most time first. */
typedef struct st_hp_pg_other_stmt_t {
    char query[200]; /* as pg_stat_statements normalised it, literals replaced by ? (hp_pg_query_shape) */
    int64_t calls, rows, blks_hit, blks_read;
    double total_ms, mean_ms;
} hp_pg_other_stmt_t;

/** Whether a pg_stat_statements query text is one of hotplate's statements (pg.h's hp_pg_stmt_for_sql, or a test's). */
typedef int (*hp_pg_is_ours_fn)(const char *sql, size_t len);

/* One reading of PostgreSQL's health. A part whose query failed has its _ok 0 and a note. */
typedef struct st_hp_pg_health_t {
    int sessions_ok, connections_ok, indexes_ok, tables_ok;
    size_t num_sessions; /* long-running or idle in transaction, the oldest transaction first */
    hp_pg_session_t sessions[HP_PG_HEALTH_MAX];
    int conn_total, max_connections, reserved; /* client backends of the whole server; superuser_reserved_connections */
    size_t num_apps;                           /* by application_name, the most connections first */
    hp_pg_conn_app_t apps[HP_PG_HEALTH_MAX];
    int indexes_seen;
    size_t num_unused, num_duplicate; /* the largest first */
    hp_pg_index_t unused[HP_PG_HEALTH_MAX], duplicate[HP_PG_HEALTH_MAX];
    size_t num_invalid; /* invalid indexes (a CREATE INDEX CONCURRENTLY that failed): the largest first */
    hp_pg_index_t invalid[HP_PG_HEALTH_MAX];
    size_t num_tables; /* the largest tables (by live rows) first */
    hp_pg_table_t tables[HP_PG_HEALTH_MAX * 2];
    int64_t heap_hit, heap_read, idx_hit, idx_read; /* buffer cache: blocks found in shared buffers, read in, all user tables */
    double stats_age_s;                             /* since this database's statistics were reset, or -1 when never */
    int statements_ok;                              /* pg_stat_statements (an optional extension) was read */
    size_t num_other;                               /* the other applications' statements, the most total time first */
    hp_pg_other_stmt_t other[HP_PG_HEALTH_MAX];
} hp_pg_health_t;

/* The parts of a reading, one query each, in the order the collection runs them. */
typedef enum {
    HP_PG_HEALTH_SESSIONS,
    HP_PG_HEALTH_CONNECTIONS,
    HP_PG_HEALTH_INDEXES,
    HP_PG_HEALTH_TABLES,
    HP_PG_HEALTH_STATEMENTS,
    HP_PG_HEALTH__PARTS
} hp_pg_health_part_t;

/**
 * Reads one part's rows with its reader below: lim is for the sessions and
 * the indexes, is_ours for the statements.
 * @return the reader's: 0, or -1 when the rows have the wrong shape
 */
int hp_pg_health_read(hp_pg_health_t *h, hp_pg_health_part_t part, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim,
                      hp_pg_is_ours_fn is_ours);

/**
 * Reads the sessions query's rows (pg_health_collect.c's column order):
 * pid, application_name, usename, client, state, wait, query ms, transaction
 * ms, idle ms, query. Keeps those over one of the limits.
 * @return 0, or -1 when the rows have the wrong shape
 */
int hp_pg_health_read_sessions(hp_pg_health_t *h, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim);

/**
 * Reads the connections query's rows: application_name, users, clients,
 * total, active, idle, idle in transaction, max_connections,
 * superuser_reserved_connections, the server's total.
 * @return 0, or -1
 */
int hp_pg_health_read_connections(hp_pg_health_t *h, const hp_pg_rows_t *rows);

/**
 * Reads every index of the database (schema, table, index, unique, primary,
 * backs a constraint, valid, indkey, indclass, has expressions or a predicate,
 * access method, idx_scan, bytes, definition, leads with a foreign key's
 * columns) and keeps the unused ones and the duplicates. An index of a
 * foreign key is never unused: without it, deleting or updating a referenced
 * row reads the whole referencing table, under its lock, even when no scan
 * has needed the index so far. Invalid indexes (indisvalid false: a CREATE
 * INDEX CONCURRENTLY that failed or is still running) are listed apart. An index is never proposed for dropping when it is unique,
 * a primary key or backs a constraint, or is invalid. A duplicate is a plain
 * index (no expression, no predicate) whose key columns and operator classes
 * are the leading ones of another index of the same table and method (a
 * B-tree's prefix; for other methods, the same columns); of two identical
 * ones, the one a constraint backs, or else the first by name, stays. An
 * index that is a duplicate is not listed as unused too, and an index that
 * covers a duplicate is not listed as unused at all.
 * @return 0, or -1
 */
int hp_pg_health_read_indexes(hp_pg_health_t *h, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim);

/**
 * Reads the tables query's rows: schema, table, live, dead, modified since
 * analyze, seq_scan, seq_tup_read, idx_scan, bytes, vacuum age, analyze age,
 * autovacuum's vacuum and analyze points, heap hits, heap reads, index hits,
 * index reads (these four summed over every user table, the same on each
 * row), the statistics' age, and the table's own heap hits, heap reads,
 * index hits and index reads.
 * @return 0, or -1
 */
int hp_pg_health_read_tables(hp_pg_health_t *h, const hp_pg_rows_t *rows);

/**
 * Reads pg_stat_statements' top rows (query, calls, total ms, mean ms, rows,
 * shared blocks hit, shared blocks read) and keeps those that are_ours says
 * are not hotplate's.
 * @return 0, or -1
 */
int hp_pg_health_read_statements(hp_pg_health_t *h, const hp_pg_rows_t *rows, hp_pg_is_ours_fn is_ours);

/**
 * @return the first of the other applications' statements whose text names
 * table (as a whole word), or NULL
 */
const hp_pg_other_stmt_t *hp_pg_health_other_on(const hp_pg_health_t *h, const char *table);

/**
 * The other applications' statement naming table that took the most time
 * between two readings, a then b: its calls, rows, blocks and time are b's
 * minus a's (matched on the normalised text), so a statement that ran before
 * the window and not in it is never the one named. A statement a did not
 * list (a reading keeps the HP_PG_HEALTH_MAX costliest) counts from zero, and
 * after a reset in between, b's counts are the window's.
 * @return 1 with *out filled, or 0 when no such statement ran in between
 */
int hp_pg_health_other_between(const hp_pg_health_t *a, const hp_pg_health_t *b, const char *table, hp_pg_other_stmt_t *out);

/** @return hit / (hit + read), or a negative number without any block access */
double hp_pg_health_hit_ratio(int64_t hit, int64_t read);

/** Writes `DROP INDEX CONCURRENTLY schema.index` (identifiers quoted as needed) into out. */
void hp_pg_health_drop_sql(const hp_pg_index_t *ix, char *out, size_t size);

/** @return the reading as a JSON object (a new reference) */
json_t *hp_pg_health_json(const hp_pg_health_t *h, const hp_pg_health_limits_t *lim);

#endif
