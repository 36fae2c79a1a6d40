/*
 * pg_parse: the pure parts of the pg endpoints (profiling/pg.c): matching our
 * statements' SQL with the texts PostgreSQL reports, reading its log for slow
 * statements and auto_explain plans, the missing-index rule, and text for
 * JSON. They take their inputs explicitly and touch no globals, so the unit
 * tests (tests/unit/test_pg_parse.c) and a fuzzer reach them directly.
 */
#ifndef HP_PG_PARSE_H
#define HP_PG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

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

/** @return the number of parameters of a statement: its highest $n (0 when it has none) */
int hp_pg_num_params(const char *sql);

/**
 * The shape of a query another session sent (pg_stat_activity.query), safe to
 * show: every string and number literal becomes ?, runs of white space one
 * space, and the result is cut to fit out (ending "..." when it was cut).
 * pg_stat_activity shows a simple query as its client typed it, values and
 * all, and the doctor's report may travel further than the database's own
 * views do. Placeholders ($1) and identifiers (t1, "x 2") stay. out is always
 * terminated; size must be at least 4.
 * @return the length written
 */
size_t hp_pg_query_shape(const char *q, size_t len, char *out, size_t size);

/**
 * The missing-index signal of one table (the rule is in pg.c and in the
 * response, as HP_PG_MISSING_INDEX_RULE).
 * @return 1 when sequential scans keep reading many rows of a large table
 */
int hp_pg_missing_index_signal(int64_t seq_scan, int64_t seq_tup_read, int64_t idx_tup_fetch, int64_t n_live_tup);

/*
 * The rule behind hp_pg_missing_index_signal, as /debug/pg/tables states it:
 * all four must hold, on the counters of pg_stat_user_tables (cumulative
 * since statistics were last reset); pg_parse.c says why each.
 */
#define HP_PG_MISSING_INDEX_RULE                                                                                                   \
    "n_live_tup >= 1000 and seq_scan >= 50 and seq_tup_read / seq_scan >= 1000 and seq_tup_read >= 10 * idx_tup_fetch"

/**
 * A JSON string of text from PostgreSQL or its log, cut to max_chars
 * characters. Log text is not guaranteed to be UTF-8 (a parameter may hold
 * any bytes), so bad bytes become '?' rather than failing the whole response.
 * @return a new string (never NULL); *cut (when not NULL) is set when text was dropped
 */
json_t *hp_pg_text_json(const char *s, size_t len, size_t max_chars, int *cut);

/** @return hit / (hit + read) as a JSON number, or null when both are 0 */
json_t *hp_pg_ratio_json(double hit, double read);

#endif
