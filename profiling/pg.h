/*
 * pg: what PostgreSQL knows about hotplate's statements, served on the admin
 * listener.
 *
 *   GET  /debug/pg/statements?limit=N     the top statements of pg_stat_statements by total execution time,
 *                                         each mapped to its hotplate statement name
 *   POST /debug/pg/statements/reset       pg_stat_statements_reset() (admin token)
 *   GET  /debug/pg/tables                 per-table scan counters and a missing-index signal
 *   GET  /debug/pg/explain?statement=NAME[&args=JSON array]
 *                                         EXPLAIN (ANALYZE, BUFFERS) of one named statement inside a
 *                                         transaction that is rolled back (admin token)
 *   GET  /debug/pg/slow?limit=N           recent slow statements and their auto_explain plans, from the
 *                                         tail of PostgreSQL's log (HOTPLATE_PG_LOG)
 *
 * Names tie these together. Every statement hotplate sends is prepared under
 * its name from services/statements.h, so the statistics, the plans and the
 * log lines PostgreSQL keeps can all be mapped back to that list. EXPLAIN only
 * ever runs a statement of the list, so the endpoint cannot be used to run
 * arbitrary SQL.
 *
 * The pure pieces (the SQL matcher, the log parser, the plan summary and the
 * missing-index rule) take their inputs explicitly and touch no globals; they
 * are declared here for the unit tests (tests/unit/test_pg_parse.c).
 */
#ifndef HP_PG_H
#define HP_PG_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "common/http.h"

/** The most bytes of PostgreSQL's log that GET /debug/pg/slow reads: the file's last MiB. */
#define HP_PG_LOG_TAIL_BYTES (1024 * 1024)

/* One slow statement found in PostgreSQL's log. Every span points into the parsed text; an absent one has a NULL base. */
typedef struct st_hp_pg_slow_entry_t {
    size_t offset;          /* where the entry's first log line starts in the text (entries are ordered by it) */
    h2o_iovec_t at;         /* the log line's timestamp, as logged */
    long pid;               /* the backend's process id, or -1 when the line prefix carries none */
    double duration_ms;     /* the statement's duration; for a plan logged alone, the plan's */
    h2o_iovec_t kind;       /* "execute", "statement", "bind", "parse", ...; NULL base for a plan logged alone */
    h2o_iovec_t prepared;   /* execute, bind and parse: the prepared statement's name as logged ("<unnamed>" too) */
    h2o_iovec_t query;      /* the SQL text as logged */
    h2o_iovec_t parameters; /* the "parameters:" detail that follows an execute, without its label */
    h2o_iovec_t plan;       /* the auto_explain JSON document that preceded the statement in the same backend */
} hp_pg_slow_entry_t;

/**
 * Parses PostgreSQL log text (stderr format, as the local stack writes it:
 * log_line_prefix '%m [%p] %q%u@%d ', continuation lines starting with a tab)
 * for slow-statement lines ("duration: X ms  execute NAME: SQL") and
 * auto_explain plans ("duration: X ms  plan:" and a JSON document on the
 * lines after). auto_explain logs a plan when the executor finishes, just
 * before the statement's own duration line, so a plan is paired with the next
 * duration line of the same backend (pid); a plan with none becomes an entry
 * of its own. Lines of other kinds, and continuation lines before the first
 * whole line (the text may start mid-file), are skipped. Pure: reads only
 * [p, p + len).
 * @param out receives the newest entries, newest first
 * @param max capacity of out; older entries are dropped
 * @return the number of entries written to out
 */
size_t hp_pg_slow_parse(const char *p, size_t len, hp_pg_slow_entry_t *out, size_t max);

/**
 * Compares one of our statements' SQL with a text PostgreSQL reports for it:
 * runs of whitespace compare equal, and a "$n" in theirs also matches a
 * constant in ours, because pg_stat_statements replaces constants with $n
 * placeholders when it records a statement at prepare time (see pg.c).
 * @return 1 when they are the same statement
 */
int hp_pg_sql_matches(const char *ours, size_t ours_len, const char *theirs, size_t theirs_len);

/** @return the hotplate name of the statement whose SQL matches sql (hp_pg_sql_matches), or NULL */
const char *hp_pg_stmt_for_sql(const char *sql, size_t len);

/** @return the number of parameters of a statement: its highest $n (0 when it has none) */
int hp_pg_num_params(const char *sql);

/**
 * Summarises an EXPLAIN (FORMAT JSON) document (the array EXPLAIN returns, or
 * the object auto_explain logs): the top node type, the relations read by
 * sequential, index, index-only and bitmap heap scans (with the indexes
 * used), whether a node sorts, and the planning and execution times when
 * present.
 * @return a new object (never NULL)
 */
json_t *hp_pg_plan_summary(const json_t *explain);

/**
 * The missing-index signal of one table (the rule is in pg.c and in the
 * response, as HP_PG_MISSING_INDEX_RULE).
 * @return 1 when sequential scans keep reading many rows of a large table
 */
int hp_pg_missing_index_signal(int64_t seq_scan, int64_t seq_tup_read, int64_t idx_tup_fetch, int64_t n_live_tup);

/**
 * The sample arguments GET /debug/pg/explain uses for a named statement: SQL
 * expressions, one per parameter, that pick rows of a seeded database (the
 * doctor evaluates them to EXPLAIN the statements it looks at).
 * @return the number of arguments, with *args pointing at them (static storage), or -1 when the statement has no sample
 */
int hp_pg_sample_args(const char *stmt, const char *const **args);

/** Called with a document built for a request (owned by the callback). */
typedef void (*hp_pg_doc_cb)(hp_req_t *r, void *ud, json_t *doc);

/**
 * Builds the top-statements document of GET /debug/pg/statements (the first
 * `limit` rows) and hands it to cb; failures are answered and cb not called.
 */
void hp_pg_statements_doc(hp_req_t *r, int limit, hp_pg_doc_cb cb, void *ud);

#endif
