/*
 * Unit tests of profiling/pg_health (the readers of PostgreSQL's health rows)
 * and of the doctor's rules on a reading (profiling/doctor_health.c).
 *
 * Every test feeds canned rows, as libpq hands them over (text cells, NULL
 * for SQL null), through the readers into the end snapshot of an otherwise
 * empty window, and runs the whole evaluation. It starts from a clean
 * reading, which gives no finding; each test then changes the rows the way
 * one fault changes them. The rule must fire on its fault alone, and stay
 * quiet just under its threshold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hp_test_doctor.h"
#include "profiling/doctor.h"
#include "profiling/pg_health.h"
#include "profiling/pg_health_collect.h"

typedef hp_test_doctor_t fixture_t;

/* Canned rows are written one row a line, as arrays of rows of cells; NROWS counts the rows of one. */
#define NROWS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* nrows rows of cols cells, the cells one after the other from cells (NULL for none). */
static hp_pg_rows_t rows_of(int cols, int nrows, const char *const *cells)
{
    hp_pg_rows_t r = {nrows, cols, cells};
    return r;
}

/* The clean reading: hotplate's own connections, indexes that are all used or needed, tables vacuumed, a warm cache. */
static const char *const clean_connections[][10] = {
    {"hotplate", "hotplate", "local", "12", "1", "11", "0", "200", "3", "13"},
    {"psql", "postgres", "local", "1", "1", "0", "0", "200", "3", "13"},
};
static const char *const clean_indexes[][15] = {
    {"public", "orders", "orders_pkey", "t", "t", "t", "t", "1", "1978", "f", "btree", "5000", "245760", "CREATE UNIQUE INDEX ...",
     "f"},
    {"public", "orders", "orders_user_id_created_at_idx", "f", "f", "f", "t", "2 14", "1978 3128", "f", "btree", "900", "360448",
     "CREATE INDEX orders_user_id_created_at_idx ON public.orders USING btree (user_id, created_at DESC)", "f"},
};
static const char *const clean_tables[][22] = {
    {"public", "order_items", "29150",  "0",    "0",     "10",  "174900", "200",    "3088384", "363",   "363",
     "5880",   "2965",        "990000", "1000", "95000", "100", "86400",  "700000", "700",     "60000", "60"},
    {"public", "orders", "10000",  "120",  "50",    "2",   "20000", "9000",   "1400000", "363",   "363",
     "2050",   "1050",   "990000", "1000", "95000", "100", "86400", "290000", "300",     "35000", "40"},
};

/* The parts of a reading, each with its reader and the number of columns its query returns. */
typedef enum {
    SESSIONS = HP_PG_HEALTH_SESSIONS,
    CONNECTIONS = HP_PG_HEALTH_CONNECTIONS,
    INDEXES = HP_PG_HEALTH_INDEXES,
    TABLES = HP_PG_HEALTH_TABLES
} part_t;
static const int part_cols[] = {10, 10, 15, 22};

/* Reads nrows canned rows of cols cells (cells NULL for none) into the end snapshot's part, which must take them. */
static void read_part(fixture_t *fx, part_t part, const char *const *cells, int cols, int nrows)
{
    assert_int_equal(cols, part_cols[part]);
    hp_pg_rows_t r = rows_of(cols, nrows, cells);
    hp_pg_health_t *h = &fx->b.health;
    assert_int_equal(hp_pg_health_read(h, (hp_pg_health_part_t)part, &r, &fx->lim, NULL), 0);
}

/* Reads an array of rows into part; the array's row width is checked against the part's columns. */
#define READ(fx, part, rows) read_part((fx), (part), (rows)[0], (int)(sizeof((rows)[0]) / sizeof((rows)[0][0])), NROWS(rows))

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    hp_pg_health_limits(&fx->lim);
    fx->a.at_s = 100;
    fx->b.at_s = 110;
    fx->b.health_ok = 1;
    read_part(fx, SESSIONS, NULL, part_cols[SESSIONS], 0);
    READ(fx, CONNECTIONS, clean_connections);
    READ(fx, INDEXES, clean_indexes);
    READ(fx, TABLES, clean_tables);
    *state = fx;
    return 0;
}

/* The one finding of the window, which must be of kind. */
static const hp_doctor_finding_t *only(fixture_t *fx, hp_doctor_kind_t kind)
{
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        print_message("finding %zu: %s: %s\n", i, hp_doctor_kind_name(fx->f[i].kind, NULL), fx->f[i].summary);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->f[0].kind, kind);
    assert_true(fx->f[0].fix[0] != '\0' && fx->f[0].num_evidence > 0);
    return &fx->f[0];
}

static void quiet(fixture_t *fx)
{
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        print_message("unexpected finding %zu: %s: %s\n", i, hp_doctor_kind_name(fx->f[i].kind, NULL), fx->f[i].summary);
    assert_int_equal(fx->n, 0);
}

static void test_clean_reading_is_quiet(void **state)
{
    fixture_t *fx = *state;
    quiet(fx);
    assert_int_equal(fx->b.health.conn_total, 13);
    assert_int_equal(fx->b.health.num_apps, 2);
    assert_int_equal(fx->b.health.num_unused, 0);
    assert_int_equal(fx->b.health.num_duplicate, 0);
    assert_int_equal(fx->b.health.num_tables, 2);
}

static void test_readers_refuse_the_wrong_shape(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[] = {"1", "2", "3"};
    hp_pg_rows_t r = rows_of(3, 1, cells);
    assert_int_equal(hp_pg_health_read_sessions(&fx->b.health, &r, &fx->lim), -1);
    assert_int_equal(hp_pg_health_read_connections(&fx->b.health, &r), -1);
    assert_int_equal(hp_pg_health_read_indexes(&fx->b.health, &r, &fx->lim), -1);
    assert_int_equal(hp_pg_health_read_tables(&fx->b.health, &r), -1);
}

/* ---- sessions ------------------------------------------------------------------------------------ */

/* One session of pg_stat_activity, as the sessions' query returns it. */
static void session(fixture_t *fx, const char *const row[10])
{
    read_part(fx, SESSIONS, row, part_cols[SESSIONS], 1);
}

static void test_idle_in_transaction(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4242", "report-tool", "reporter", "local", "idle in transaction", "Client:ClientRead",
                                        NULL, "6100", "6000", "SELECT count(*) FROM orders WHERE user_id = 7 AND note = 'secret'"});
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_idle_in_transaction);
    assert_int_equal(f->severity, HP_DOCTOR_MEDIUM);
    assert_non_null(strstr(f->summary, "pid 4242 (application_name 'report-tool')"));
    assert_string_equal(f->sql, "SELECT pg_terminate_backend(4242)");
    assert_non_null(strstr(f->fix, "ALTER ROLE reporter SET idle_in_transaction_session_timeout"));
    assert_null(strstr(f->fix, "a role of its own")); /* reporter is not hotplate's role */
    /* Never a value of the query: literals become ?. */
    assert_non_null(strstr(f->evidence[0], "WHERE user_id = ? AND note = ?"));
    assert_null(strstr(f->evidence[0], "secret"));
}

static void test_idle_in_transaction_with_hotplates_role(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4243", "report-tool", "hotplate", "local", "idle in transaction", "", NULL, "6100", "6000",
                                        "SELECT 1"});
    assert_non_null(strstr(only(fx, HP_DOCTOR_pg_idle_in_transaction)->fix, "give that application a role of its own"));
}

static void test_idle_in_transaction_just_under_is_quiet(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4242", "report-tool", "reporter", "local", "idle in transaction", "Client:ClientRead",
                                        NULL, "5000", "4990", "SELECT 1"});
    assert_int_equal(fx->b.health.num_sessions, 0);
    quiet(fx);
}

static void test_idle_in_transaction_for_long_is_high(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4242", "report-tool", "reporter", "local", "idle in transaction", "", NULL, "50100",
                                        "50000", "SELECT 1"});
    assert_int_equal(only(fx, HP_DOCTOR_pg_idle_in_transaction)->severity, HP_DOCTOR_HIGH);
}

static void test_a_blocker_the_lock_rule_names_is_left_to_it(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4242", "menu-import", "hotplate", "local", "idle in transaction", "", NULL, "9000", "8000",
                                        "UPDATE menu_items SET price_cents = 1"});
    fx->b.num_blockers = 1;
    fx->b.blockers[0].pid = 4242;
    quiet(fx);
}

static void test_long_running_query(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"777", "etl", "etl", "10.0.0.5", "active", "IO:DataFileRead", "61000", "61500", NULL,
                                        "SELECT * FROM order_items WHERE price_cents > 100"});
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_long_running);
    assert_int_equal(f->severity, HP_DOCTOR_MEDIUM);
    assert_string_equal(f->sql, "SELECT pg_cancel_backend(777)");
    assert_non_null(strstr(f->evidence[0], "waiting on IO:DataFileRead"));
    assert_non_null(strstr(f->evidence[0], "price_cents > ?"));
}

static void test_long_running_just_under_is_quiet(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"777", "etl", "etl", "10.0.0.5", "active", "", "59900", "59950", NULL, "SELECT 1"});
    quiet(fx);
}

static void test_long_transaction_is_high_at_ten_times(void **state)
{
    fixture_t *fx = *state;
    /* Active now with a short statement, but its transaction has been open for 10 minutes. */
    session(fx,
            (const char *const[10]){"778", "batch", "batch", "local", "active", "", "20", "600000", NULL, "UPDATE t SET x = 1"});
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_long_running);
    assert_int_equal(f->severity, HP_DOCTOR_HIGH);
    assert_string_equal(f->sql, "SELECT pg_terminate_backend(778)");
}

/* ---- connections --------------------------------------------------------------------------------- */

static void connections(fixture_t *fx, const char *total)
{
    const char *const cells[][10] = {
        {"legacy-crm", "crm", "10.0.0.9", total, "3", total, "0", "200", "3", total},
    };
    READ(fx, CONNECTIONS, cells);
}

static void test_connections_near_the_limit(void **state)
{
    fixture_t *fx = *state;
    connections(fx, "158"); /* 158 of 197: 0.802 */
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_connections);
    assert_int_equal(f->severity, HP_DOCTOR_MEDIUM);
    assert_non_null(strstr(f->summary, "158 of the 197 connections"));
    assert_non_null(strstr(f->fix, "'legacy-crm'"));
}

static void test_connections_just_under_are_quiet(void **state)
{
    fixture_t *fx = *state;
    connections(fx, "157"); /* 0.797 */
    quiet(fx);
}

static void test_connections_at_the_limit_are_high(void **state)
{
    fixture_t *fx = *state;
    connections(fx, "188"); /* 0.954 */
    assert_int_equal(only(fx, HP_DOCTOR_pg_connections)->severity, HP_DOCTOR_HIGH);
}

/* ---- indexes ------------------------------------------------------------------------------------- */

static void test_duplicate_index(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "orders_pkey", "t", "t", "t", "t", "1", "1978", "f", "btree", "5000", "245760", "CREATE UNIQUE INDEX",
         "f"},
        {"public", "orders", "orders_user_id_created_at_idx", "f", "f", "f", "t", "2 14", "1978 3128", "f", "btree", "0", "360448",
         "CREATE INDEX orders_user_id_created_at_idx ON public.orders USING btree (user_id, created_at DESC)", "f"},
        /* The duplicate: (user_id), the leading column of the index above. It has scans: a duplicate is redundant anyway. */
        {"public", "orders", "hp_dup", "f", "f", "f", "t", "2", "1978", "f", "btree", "400", "229376",
         "CREATE INDEX hp_dup ON public.orders USING btree (user_id)", "f"},
        /* Never proposed: a unique index on the same column, an expression index, an index on another table. */
        {"public", "orders", "orders_user_uniq", "t", "f", "t", "t", "2", "1978", "f", "btree", "900", "229376", "CREATE UNIQUE",
         "f"},
        {"public", "orders", "orders_lower", "f", "f", "f", "t", "0", "1978", "t", "btree", "900", "229376", "CREATE INDEX (lower)",
         "f"},
        {"public", "payments", "payments_user", "f", "f", "f", "t", "2", "1978", "f", "btree", "900", "229376", "CREATE INDEX",
         "f"},
    };
    READ(fx, INDEXES, cells);
    assert_int_equal(fx->b.health.num_duplicate, 1);
    /* The covering index has no scans yet, but it is never proposed as unused while it covers a duplicate. */
    assert_int_equal(fx->b.health.num_unused, 0);
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_duplicate_index);
    assert_int_equal(f->severity, HP_DOCTOR_LOW);
    assert_int_equal(f->confidence, HP_DOCTOR_HIGH);
    assert_string_equal(f->sql, "DROP INDEX CONCURRENTLY public.hp_dup");
    assert_non_null(strstr(f->summary, "public.hp_dup is covered by orders_user_id_created_at_idx"));
}

static void test_identical_indexes_keep_one(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "a_idx", "f", "f", "f", "t", "3", "1978", "f", "hash", "100", "229376", "A", "f"},
        {"public", "orders", "b_idx", "f", "f", "f", "t", "3", "1978", "f", "hash", "100", "229376", "B", "f"},
        /* A hash index is no prefix of another: only the same columns count. */
        {"public", "orders", "c_idx", "f", "f", "f", "t", "3 4", "1978 1978", "f", "hash", "100", "229376", "C", "f"},
    };
    READ(fx, INDEXES, cells);
    assert_int_equal(fx->b.health.num_duplicate, 1);
    assert_string_equal(fx->b.health.duplicate[0].index, "b_idx");
    assert_string_equal(fx->b.health.duplicate[0].covered_by, "a_idx");
}

static void test_small_duplicate_is_quiet(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "wide", "f", "f", "f", "t", "2 14", "1978 3128", "f", "btree", "900", "360448", "W", "f"},
        {"public", "orders", "hp_dup", "f", "f", "f", "t", "2", "1978", "f", "btree", "900", "65535", "D", "f"},
    };
    READ(fx, INDEXES, cells);
    assert_int_equal(fx->b.health.num_duplicate, 1);
    quiet(fx);
}

static void test_unused_index(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "orders_pkey", "t", "t", "t", "t", "1", "1978", "f", "btree", "0", "245760000", "PK", "f"},
        {"public", "orders", "orders_note_idx", "f", "f", "f", "t", "9", "3126", "f", "btree", "49", "1048576", "NOTE", "f"},
        {"Sales", "Orders", "Big Idx", "f", "f", "f", "t", "4", "1978", "f", "btree", "0", "65536", "BIG", "f"},
        /* An invalid index (a failed CREATE INDEX CONCURRENTLY) is not proposed here. */
        {"public", "orders", "orders_half", "f", "f", "f", "f", "5", "1978", "f", "btree", "0", "1048576", "HALF", "f"},
    };
    READ(fx, INDEXES, cells);
    hp_test_doctor_evaluate(fx);
    assert_int_equal(fx->n, 2); /* the invalid index is a finding of its own */
    assert_int_equal(fx->f[1].kind, HP_DOCTOR_pg_invalid_index);
    assert_string_equal(fx->f[1].sql, "DROP INDEX CONCURRENTLY public.orders_half");
    fx->b.health.num_invalid = 0;
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_unused_index);
    assert_int_equal(f->severity, HP_DOCTOR_LOW);
    assert_string_equal(f->sql, "DROP INDEX CONCURRENTLY public.orders_note_idx;\nDROP INDEX CONCURRENTLY \"Sales\".\"Big Idx\"");
}

static void test_used_index_is_quiet(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "orders_note_idx", "f", "f", "f", "t", "9", "3126", "f", "btree", "50", "1048576", "NOTE", "f"},
        {"public", "orders", "orders_tiny", "f", "f", "f", "t", "8", "3126", "f", "btree", "0", "65535", "TINY", "f"},
    };
    READ(fx, INDEXES, cells);
    quiet(fx);
}

static void test_an_index_of_a_foreign_key_is_never_unused(void **state)
{
    fixture_t *fx = *state;
    /* order_items (order_id) has no scans, but a DELETE of an order would read order_items whole without it. */
    const char *const cells[][15] = {
        {"public", "order_items", "order_items_order_idx", "f", "f", "f", "t", "2", "1978", "f", "btree", "0", "1048576",
         "CREATE INDEX order_items_order_idx", "t"},
    };
    READ(fx, INDEXES, cells);
    assert_int_equal(fx->b.health.num_unused, 0);
    quiet(fx);
}

static void test_a_large_unused_index_is_medium(void **state)
{
    fixture_t *fx = *state;
    const char *const cells[][15] = {
        {"public", "orders", "orders_note_idx", "f", "f", "f", "t", "9", "3126", "f", "btree", "0", "104857600", "NOTE", "f"},
    };
    READ(fx, INDEXES, cells);
    assert_int_equal(only(fx, HP_DOCTOR_pg_unused_index)->severity, HP_DOCTOR_MEDIUM);
}

/* ---- tables -------------------------------------------------------------------------------------- */

/* One table row: live, dead, modified since analyze; hits and reads for the cache. */
static void table(fixture_t *fx, const char *live, const char *dead, const char *mod, const char *heap_hit, const char *heap_read,
                  const char *idx_hit, const char *idx_read)
{
    const char *const cells[][22] = {
        {"public", "order_items", live,     dead,      mod,     "10",     "174900", "200",    "3088384", NULL,    "7200",
         "5880",   "2965",        heap_hit, heap_read, idx_hit, idx_read, NULL,     heap_hit, heap_read, idx_hit, idx_read},
    };
    READ(fx, TABLES, cells);
}

static void test_vacuum_due(void **state)
{
    fixture_t *fx = *state;
    table(fx, "40000", "10000", "0", "990000", "1000", "95000", "100"); /* 20% dead */
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_vacuum);
    assert_int_equal(f->severity, HP_DOCTOR_MEDIUM);
    assert_string_equal(f->sql, "VACUUM (ANALYZE) public.order_items");
    assert_non_null(strstr(f->evidence[0], "last vacuum never"));
}

static void test_vacuum_just_under_is_quiet(void **state)
{
    fixture_t *fx = *state;
    table(fx, "40000", "9999", "0", "990000", "1000", "95000", "100");
    quiet(fx);
    table(fx, "50000", "12000", "0", "990000", "1000", "95000", "100"); /* 19% */
    quiet(fx);
}

static void test_analyze_due(void **state)
{
    fixture_t *fx = *state;
    table(fx, "50000", "0", "10000", "990000", "1000", "95000", "100");
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_analyze);
    assert_int_equal(f->severity, HP_DOCTOR_LOW);
    assert_string_equal(f->sql, "ANALYZE public.order_items");
}

static void test_analyze_just_under_is_quiet(void **state)
{
    fixture_t *fx = *state;
    table(fx, "50000", "0", "9999", "990000", "1000", "95000", "100");
    quiet(fx);
}

static void test_cache_hit_ratio(void **state)
{
    fixture_t *fx = *state;
    table(fx, "29150", "0", "0", "9899", "101", "95000", "100"); /* tables 98.99% over 10000 blocks */
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_cache_hit);
    assert_int_equal(f->severity, HP_DOCTOR_LOW);
    assert_non_null(strstr(f->evidence[2], "public.order_items read the most blocks in: 101 of the table's, 100 of its indexes'"));
    table(fx, "29150", "0", "0", "990000", "1000", "9400", "600"); /* indexes 94% */
    assert_int_equal(only(fx, HP_DOCTOR_pg_cache_hit)->severity, HP_DOCTOR_MEDIUM);
}

static void test_cache_just_at_the_ratio_or_too_few_blocks_is_quiet(void **state)
{
    fixture_t *fx = *state;
    table(fx, "29150", "0", "0", "9900", "100", "95000", "100"); /* 99.00% */
    quiet(fx);
    table(fx, "29150", "0", "0", "8000", "1999", "95000", "100"); /* 80%, but over 9999 blocks */
    quiet(fx);
}

/* ---- another application's sequential scans ---------------------------------------------------- */

static void seq_window(fixture_t *fx, int64_t scans)
{
    fx->a.tables_ok = fx->b.tables_ok = 1;
    fx->a.num_tables = fx->b.num_tables = 1;
    snprintf(fx->a.tables[0].name, sizeof(fx->a.tables[0].name), "order_items");
    fx->a.tables[0].n_live_tup = 29150, fx->a.tables[0].seq_scan = 100, fx->a.tables[0].seq_tup_read = 100 * 29150;
    fx->b.tables[0] = fx->a.tables[0];
    fx->b.tables[0].seq_scan += scans, fx->b.tables[0].seq_tup_read += scans * 29150;
}

static void test_foreign_sequential_scans(void **state)
{
    fixture_t *fx = *state;
    seq_window(fx, 20);
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_foreign_seq_scan);
    assert_int_equal(f->severity, HP_DOCTOR_LOW);
    assert_non_null(strstr(f->summary, "order_items (29150 live rows) was read by 20 sequential scans"));
    assert_non_null(strstr(f->evidence[2], "'psql' (1)")); /* the other applications connected */
    seq_window(fx, 400);                                   /* 400 * 29150 rows in 10 s: over 1e6 rows/s */
    assert_int_equal(only(fx, HP_DOCTOR_pg_foreign_seq_scan)->severity, HP_DOCTOR_MEDIUM);
}

/* A stand-in for hp_pg_stmt_for_sql: hotplate's statements here are those that read order_items by order. */
static int ours(const char *sql, size_t len)
{
    (void)len;
    return strstr(sql, "WHERE order_id") != NULL;
}

static void test_foreign_scans_name_the_other_applications_statement(void **state)
{
    fixture_t *fx = *state;
    seq_window(fx, 20);
    /*
     * pg_stat_statements at the start of the window and at its end. The export ran 15 times in between; the
     * archive job named order_items too, and cost more in all, but it ran before the window and not in it.
     */
    const char *const start[][7] = {
        {"SELECT pg_sleep($1), count(*) FROM order_items", "1", "1000.0", "1000.0", "1", "300", "0"},
        {"SELECT sum(quantity) FROM order_items WHERE note <> 'x'", "5", "10.0", "2.0", "5", "5000", "0"},
    };
    const char *const end[][7] = {
        {"SELECT pg_sleep($1), count(*) FROM order_items", "1", "1000.0", "1000.0", "1", "300", "0"},
        {"SELECT * FROM order_items WHERE order_id = $1", "900", "80.5", "0.09", "2700", "9000", "0"},
        {"SELECT count(*) FROM order_items_archive", "5", "50.0", "10.0", "5", "100", "10"},
        {"SELECT sum(quantity) FROM order_items WHERE note <> 'x'", "20", "40.0", "2.0", "20", "20000", "0"},
    };
    hp_pg_rows_t r0 = rows_of(7, NROWS(start), start[0]), r = rows_of(7, NROWS(end), end[0]);
    assert_int_equal(hp_pg_health_read_statements(&fx->a.health, &r0, ours), 0);
    fx->a.health_ok = 1;
    assert_int_equal(hp_pg_health_read_statements(&fx->b.health, &r, ours), 0);
    assert_int_equal(fx->b.health.num_other, 3); /* hotplate's own is left out */
    /* order_items_archive is another table: the whole word counts. */
    const hp_doctor_finding_t *f = only(fx, HP_DOCTOR_pg_foreign_seq_scan);
    assert_non_null(strstr(f->evidence[3], "the costliest statement in the window that is not hotplate's and names order_items: "
                                           "SELECT sum(quantity) FROM order_items WHERE note <> ? (15 calls in the window, 2.00 ms "
                                           "mean, 15 rows)"));
    /* A reset in the window: the end's counts are all the window's. */
    const char *const after_reset[][7] = {
        {"SELECT sum(quantity) FROM order_items WHERE note <> 'x'", "3", "9.0", "3.0", "3", "3000", "0"},
    };
    hp_pg_rows_t r2 = rows_of(7, NROWS(after_reset), after_reset[0]);
    assert_int_equal(hp_pg_health_read_statements(&fx->b.health, &r2, ours), 0);
    f = only(fx, HP_DOCTOR_pg_foreign_seq_scan);
    assert_non_null(strstr(f->evidence[3], "WHERE note <> ? (3 calls in the window, 3.00 ms mean, 3 rows)"));
    /* Without the start's reading, or without the extension, the evidence says the statement is not named. */
    fx->a.health.statements_ok = 0;
    f = only(fx, HP_DOCTOR_pg_foreign_seq_scan);
    assert_non_null(strstr(f->evidence[3], "could not be read at the start of the window"));
    fx->b.health.statements_ok = 0;
    f = only(fx, HP_DOCTOR_pg_foreign_seq_scan);
    assert_non_null(strstr(f->evidence[3], "without pg_stat_statements"));
}

static void test_our_own_sequential_scans_are_not_foreign(void **state)
{
    fixture_t *fx = *state;
    seq_window(fx, 20);
    fx->a.num_stmts = fx->b.num_stmts = 1;
    fx->a.stmts[0].name = fx->b.stmts[0].name = "order_items_scan";
    fx->b.stmts[0].count = 15; /* 15 of the 20 scans are ours: 5 left, under pg_seq_min_scans */
    fx->b.num_plans = 1;
    snprintf(fx->b.plans[0].stmt, sizeof(fx->b.plans[0].stmt), "order_items_scan");
    snprintf(fx->b.plans[0].plan.seq_rel, sizeof(fx->b.plans[0].plan.seq_rel), "order_items");
    quiet(fx);
}

static void test_few_sequential_scans_are_quiet(void **state)
{
    fixture_t *fx = *state;
    seq_window(fx, 9);
    quiet(fx);
    seq_window(fx, 20);
    fx->b.tables[0].n_live_tup = 9999; /* not a large table */
    quiet(fx);
}

/* ---- rendering ----------------------------------------------------------------------------------- */

static void test_json_and_markdown(void **state)
{
    fixture_t *fx = *state;
    session(fx, (const char *const[10]){"4242", "report-tool", "reporter", "local", "idle in transaction", "", NULL, "6100", "6000",
                                        "SELECT 1"});
    table(fx, "29150", "0", "10000", "9899", "101", "95000", "100");
    hp_test_doctor_evaluate(fx);
    assert_int_equal(fx->n, 3);
    assert_int_equal(fx->f[0].kind, HP_DOCTOR_pg_idle_in_transaction); /* medium first */
    json_t *h = hp_pg_health_json(&fx->b.health, &fx->lim);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(h, "sessions"), 0), "pid")), 4242);
    assert_true(json_is_true(json_object_get(json_array_get(json_object_get(h, "tables"), 0), "analyze_due")));
    json_decref(h);
    json_t *report = hp_doctor_json(&fx->a, &fx->b, fx->f, fx->n, NULL, 0);
    json_t *f0 = json_array_get(json_object_get(report, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "impact_of")), "database");
    assert_non_null(json_object_get(json_object_get(report, "signals"), "pg_health"));
    char *md = hp_doctor_markdown(report);
    assert_non_null(md);
    assert_non_null(strstr(md, "the database as a whole"));
    assert_non_null(strstr(md, "SELECT pg_terminate_backend(4242);"));
    free(md);
    json_decref(report);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, hp_test_doctor_teardown)
    const struct CMUnitTest tests[] = {
        T(test_clean_reading_is_quiet),
        T(test_readers_refuse_the_wrong_shape),
        T(test_idle_in_transaction),
        T(test_idle_in_transaction_with_hotplates_role),
        T(test_idle_in_transaction_just_under_is_quiet),
        T(test_idle_in_transaction_for_long_is_high),
        T(test_a_blocker_the_lock_rule_names_is_left_to_it),
        T(test_long_running_query),
        T(test_long_running_just_under_is_quiet),
        T(test_long_transaction_is_high_at_ten_times),
        T(test_connections_near_the_limit),
        T(test_connections_just_under_are_quiet),
        T(test_connections_at_the_limit_are_high),
        T(test_duplicate_index),
        T(test_identical_indexes_keep_one),
        T(test_small_duplicate_is_quiet),
        T(test_unused_index),
        T(test_used_index_is_quiet),
        T(test_an_index_of_a_foreign_key_is_never_unused),
        T(test_a_large_unused_index_is_medium),
        T(test_vacuum_due),
        T(test_vacuum_just_under_is_quiet),
        T(test_analyze_due),
        T(test_analyze_just_under_is_quiet),
        T(test_cache_hit_ratio),
        T(test_cache_just_at_the_ratio_or_too_few_blocks_is_quiet),
        T(test_foreign_sequential_scans),
        T(test_foreign_scans_name_the_other_applications_statement),
        T(test_our_own_sequential_scans_are_not_foreign),
        T(test_few_sequential_scans_are_quiet),
        T(test_json_and_markdown),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
