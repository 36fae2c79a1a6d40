/*
 * Unit tests of profiling/pg's pure parts: the slow-log parser on canned
 * PostgreSQL log text, the SQL matcher that maps pg_stat_statements texts to
 * statement names (with the texts PostgreSQL 15 really stored), the parameter
 * count, the sample-argument table (every statement must have one sample per
 * parameter, or GET /debug/pg/explain?statement=NAME fails for it), the plan
 * summary and the missing-index rule.
 *
 * pg_parse.c is included, as h2o's unit tests do, to reach its static
 * helpers; the handlers of pg.c are exercised by tests/e2e/test_pg_debug.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiling/pg_parse.c"
#include "profiling/pg.h"
#include "profiling/plan.h"
#include "runtime/db.h"
#include "services/statements.h"

/* The server's statement tables, registered as main.c registers them. */
static int register_statements(void **state)
{
    (void)state;
    hp_db_register(hp_statements, HP_STMT__COUNT);
    hp_pg_register_statements();
    return 0;
}

/* ---- the slow log ----------------------------------------------------------------------------- */

/*
 * A log tail as the local stack writes it (log_line_prefix '%m [%p] %q%u@%d ').
 * It starts mid-plan, as a read of the file's last MiB usually does. Backend
 * 100's plan is followed by a line of backend 200 before its own duration
 * line; backend 300's plan never gets one.
 */
static const char hp__log[] =
    "\t    \"Plan Rows\": 1\n"
    "\t  }\n"
    "\t}\n"
    "2026-11-24 14:40:00.000 UTC [55] LOG:  checkpoint starting: time\n"
    "2026-11-24 14:45:07.100 UTC [100] hotplate@hotplate LOG:  duration: 329.371 ms  plan:\n"
    "\t{\n"
    "\t  \"Query Text\": \"SELECT 1\",\n"
    "\t  \"Plan\": {\n"
    "\t    \"Node Type\": \"Seq Scan\",\n"
    "\t    \"Relation Name\": \"orders\"\n"
    "\t  }\n"
    "\t}\n"
    "2026-11-24 14:45:07.200 UTC [200] hotplate@hotplate LOG:  duration: 150.5 ms  statement: SELECT pg_sleep(0.15)\n"
    "2026-11-24 14:45:07.392 UTC [100] hotplate@hotplate LOG:  duration: 329.966 ms  execute menu_get: SELECT 1\n"
    "2026-11-24 14:45:07.392 UTC [100] hotplate@hotplate DETAIL:  parameters: $1 = '17'\n"
    "2026-11-24 14:45:08.000 UTC [200] hotplate@hotplate LOG:  duration: 120.000 ms  statement: SELECT 2\n"
    "\t  FROM t\n"
    "2026-11-24 14:45:09.000 UTC [300] hotplate@hotplate LOG:  duration: 101.25 ms  plan:\n"
    "\t{\"Query Text\": \"SELECT 3\", \"Plan\": {\"Node Type\": \"Result\"}}\n"
    "2026-11-24 14:45:09.500 UTC [400] hotplate@hotplate ERROR:  canceling statement due to statement timeout\n";

static int span_is(h2o_iovec_t s, const char *want)
{
    if (want == NULL)
        return s.base == NULL;
    return s.base != NULL && s.len == strlen(want) && memcmp(s.base, want, s.len) == 0;
}

#define assert_span(s, want)                                                                                                       \
    do {                                                                                                                           \
        if (!span_is((s), (want)))                                                                                                 \
            fail_msg("%s is \"%.*s\", expected \"%s\"", #s, (int)(s).len, (s).base != NULL ? (s).base : "(null)",                  \
                     (want) != NULL ? (want) : "(null)");                                                                          \
    } while (0)

static void test_slow_parse_pairs_plans_and_orders_newest_first(void **state)
{
    (void)state;
    hp_pg_slow_entry_t e[8];
    size_t n = hp_pg_slow_parse(hp__log, sizeof(hp__log) - 1, e, 8);
    assert_int_equal(n, 4);

    /* Newest first: the lone plan of 300, then 200's second statement, 100's execute, 200's first statement. */
    assert_int_equal(e[0].pid, 300);
    assert_null(e[0].kind.base);
    assert_true(e[0].duration_ms > 101.24 && e[0].duration_ms < 101.26);
    assert_span(e[0].plan, "{\"Query Text\": \"SELECT 3\", \"Plan\": {\"Node Type\": \"Result\"}}");

    assert_int_equal(e[1].pid, 200);
    assert_span(e[1].kind, "statement");
    assert_span(e[1].query, "SELECT 2\n\t  FROM t");
    assert_null(e[1].plan.base);

    assert_int_equal(e[2].pid, 100);
    assert_span(e[2].at, "2026-11-24 14:45:07.392 UTC");
    assert_span(e[2].kind, "execute");
    assert_span(e[2].prepared, "menu_get");
    assert_span(e[2].query, "SELECT 1");
    assert_span(e[2].parameters, "$1 = '17'");
    assert_true(e[2].duration_ms > 329.965 && e[2].duration_ms < 329.967);
    assert_non_null(e[2].plan.base);
    assert_true(e[2].plan.base[0] == '{' && e[2].plan.base[e[2].plan.len - 1] == '}');
    json_error_t jerr;
    json_t *plan = json_loadb(e[2].plan.base, e[2].plan.len, 0, &jerr);
    assert_non_null(plan); /* the tab-led continuation lines are JSON whitespace */
    assert_string_equal(json_string_value(json_object_get(json_object_get(plan, "Plan"), "Relation Name")), "orders");
    json_decref(plan);

    assert_int_equal(e[3].pid, 200);
    assert_span(e[3].query, "SELECT pg_sleep(0.15)");
    assert_null(e[3].parameters.base);
    assert_true(e[3].offset < e[2].offset && e[2].offset < e[1].offset && e[1].offset < e[0].offset);
}

static void test_slow_parse_keeps_the_newest(void **state)
{
    (void)state;
    hp_pg_slow_entry_t e[2];
    size_t n = hp_pg_slow_parse(hp__log, sizeof(hp__log) - 1, e, 2);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].pid, 300);
    assert_int_equal(e[1].pid, 200);
    assert_span(e[1].query, "SELECT 2\n\t  FROM t");
    assert_int_equal(hp_pg_slow_parse(hp__log, sizeof(hp__log) - 1, e, 0), 0);
}

static void test_slow_parse_other_text(void **state)
{
    (void)state;
    hp_pg_slow_entry_t e[4];
    assert_int_equal(hp_pg_slow_parse("", 0, e, 4), 0);
    assert_int_equal(hp_pg_slow_parse("\n\n\t\n", 4, e, 4), 0);
    /* No duration number, or no " ms" after it: not a slow-statement line. */
    static const char bad[] = "2026-01-01 00:00:00 UTC [1] LOG:  duration: ms  statement: x\n"
                              "2026-01-01 00:00:00 UTC [1] LOG:  duration: 12.5 s  statement: x\n";
    assert_int_equal(hp_pg_slow_parse(bad, sizeof(bad) - 1, e, 4), 0);
    /* log_duration alone, and a prefix without a pid. */
    static const char bare[] = "2026-01-01 00:00:00 UTC LOG:  duration: 7.5 ms\n";
    assert_int_equal(hp_pg_slow_parse(bare, sizeof(bare) - 1, e, 4), 1);
    assert_int_equal(e[0].pid, -1);
    assert_span(e[0].kind, "duration");
    assert_span(e[0].at, "2026-01-01 00:00:00 UTC");
    assert_null(e[0].query.base);
}

/*
 * Every prefix of the canned log (a read that ends mid-line, mid-plan, mid-
 * number) parses without reading past its end, into entries whose spans lie
 * inside it, ordered newest first. The text is copied to a buffer of exactly
 * the prefix's length each time, so ASan catches any read past the end.
 */
static void test_slow_parse_every_prefix(void **state)
{
    (void)state;
    size_t total = sizeof(hp__log) - 1;
    for (size_t len = 0; len <= total; ++len) {
        char *buf = malloc(len + 1);
        memcpy(buf, hp__log, len);
        hp_pg_slow_entry_t e[3];
        size_t n = hp_pg_slow_parse(buf, len, e, 3);
        assert_true(n <= 3);
        for (size_t i = 0; i != n; ++i) {
            h2o_iovec_t spans[] = {e[i].at, e[i].kind, e[i].prepared, e[i].query, e[i].parameters, e[i].plan};
            for (size_t k = 0; k != sizeof(spans) / sizeof(spans[0]); ++k)
                if (spans[k].base != NULL)
                    assert_true(spans[k].base >= buf && spans[k].base + spans[k].len <= buf + len);
            assert_true(e[i].offset < len);
            if (i != 0)
                assert_true(e[i].offset < e[i - 1].offset);
        }
        free(buf);
    }
}

/* ---- mapping SQL texts to names --------------------------------------------------------------- */

/* order_history as pg_stat_statements 1.10 stored it when the entry was created at prepare time. */
static const char hp__history_normalised[] =
    "SELECT o.id, o.user_id, o.restaurant_id, o.status, o.subtotal_cents, o.discount_cents, o.tax_cents, o.delivery_fee_cents, "
    "o.service_fee_cents, o.small_order_fee_cents, o.tip_cents, o.total_cents, (extract($5 FROM o.created_at) * $6)::bigint FROM "
    "orders o WHERE o.user_id = $1 AND ($2::bigint IS NULL OR (o.created_at, o.id) < ($7::timestamptz + $2::bigint * interval $8, "
    "$3::bigint)) ORDER BY o.created_at DESC, o.id DESC LIMIT $4::int";

/* @return hp_pg_sql_matches of two C strings */
static int matches(const char *ours, const char *theirs)
{
    return hp_pg_sql_matches(ours, strlen(ours), theirs, strlen(theirs));
}

static const char hp__a[] = "SELECT id FROM t WHERE x = $1";
static const char hp__c[] = "SELECT 'a''b', E'c\\'d', -1.5e3, 42, true FROM t LIMIT 10";
static const char hp__cn[] = "SELECT $1, $2, $3, $4, $5 FROM t LIMIT $6";

/* Our text, the text pg_stat_statements holds, and whether they match. */
static const struct {
    const char *ours, *theirs;
    int want;
} match_cases[] = {
    /* Whitespace runs compare equal; presence of whitespace still matters. */
    {hp__a, "  SELECT id\n\tFROM  t WHERE x = $1 \n", 1},
    {hp__a, "SELECT id FROM t WHERE x=$1", 0},
    /* A parameter must stay the same parameter; a placeholder may stand for a constant only. */
    {hp__a, "SELECT id FROM t WHERE x = $2", 0},
    {hp__a, "SELECT id FROM t WHERE x = $12", 0},
    {hp__a, "SELECT id FROM t WHERE x = $1 AND y", 0},
    {hp__a, "SELECT id FROM t WHERE $2 x = $1", 0},
    {hp__a, "SELECT id FROM t", 0},
    {hp__c, hp__cn, 1},
    {hp__cn, hp__c, 0},
    /* An unterminated string in ours is no constant. */
    {"SELECT 'a", "SELECT $1", 0},
};

static void test_sql_matches(void **state)
{
    (void)state;
    const char *hist = hp_statements[HP_STMT_order_history].sql;
    assert_true(matches(hist, hist));
    assert_true(matches(hist, hp__history_normalised));
    assert_string_equal(hp_pg_stmt_for_sql(hp__history_normalised, strlen(hp__history_normalised)), "order_history");

    for (size_t i = 0; i != sizeof(match_cases) / sizeof(match_cases[0]); ++i)
        if (matches(match_cases[i].ours, match_cases[i].theirs) != match_cases[i].want)
            fail_msg("%s against %s: want %s", match_cases[i].ours, match_cases[i].theirs,
                     match_cases[i].want ? "a match" : "no match");

    assert_null(hp_pg_stmt_for_sql("SELECT pg_sleep($1)", 19));
    assert_string_equal(hp_pg_stmt_for_sql("SELECT pg_stat_statements_reset()", 33), "debug_pg_statements_reset");
}

/* Every statement maps back to its own name, verbatim and with its constants replaced as pg_stat_statements does. */
static void test_every_statement_maps_to_itself(void **state)
{
    (void)state;
    size_t num;
    const hp_db_stmt_def_t *defs = hp_db_stmts(&num);
    for (size_t i = 0; i != num; ++i) {
        const char *sql = defs[i].sql;
        const char *name = hp_pg_stmt_for_sql(sql, strlen(sql));
        if (name == NULL || strcmp(name, defs[i].name) != 0)
            fail_msg("%s maps to %s", defs[i].name, name != NULL ? name : "nothing");
        /* Replace each quoted string with a placeholder numbered after the statement's parameters. */
        char norm[8192];
        size_t o = 0;
        int next = hp_pg_num_params(sql) + 1;
        for (const char *p = sql; *p != '\0' && o < sizeof(norm) - 16;) {
            size_t end = *p == '\'' ? hp__skip_constant(p, 0, strlen(p)) : 0;
            if (end != 0) {
                o += (size_t)snprintf(norm + o, sizeof(norm) - o, "$%d", next++);
                p += end;
            } else {
                norm[o++] = *p++;
            }
        }
        name = hp_pg_stmt_for_sql(norm, o);
        if (name == NULL || strcmp(name, defs[i].name) != 0)
            fail_msg("normalised %s maps to %s: %.*s", defs[i].name, name != NULL ? name : "nothing", (int)o, norm);
    }
}

static void test_num_params(void **state)
{
    (void)state;
    assert_int_equal(hp_pg_num_params(hp_statements[HP_STMT_order_insert].sql), 17);
    assert_int_equal(hp_pg_num_params(hp_statements[HP_STMT_menu_item_patch].sql), 6);
    assert_int_equal(hp_pg_num_params(hp_statements[HP_STMT_txn_begin].sql), 0);
    assert_int_equal(hp_pg_num_params("SELECT '$9', $2, $10"), 10);
    assert_int_equal(hp_pg_num_params("SELECT 'unterminated $3"), 0);
}

/* GET /debug/pg/explain?statement=NAME without args needs a sample of the right length for every statement. */
static void test_every_statement_has_sample_args(void **state)
{
    (void)state;
    size_t num;
    const hp_db_stmt_def_t *defs = hp_db_stmts(&num);
    for (size_t i = 0; i != num; ++i) {
        int want = hp_pg_num_params(defs[i].sql);
        if (defs[i].sample_args == NULL)
            fail_msg("statement %s has no sample column in its list", defs[i].name);
        if (hp_db_stmt_num_args(&defs[i]) != want)
            fail_msg("statement %s takes %d arguments, its sample has %d", defs[i].name, want, hp_db_stmt_num_args(&defs[i]));
    }
}

/* The kind column says what the SQL does: a read is one statement that writes nothing. */
static void test_statement_kinds_fit_their_sql(void **state)
{
    (void)state;
    size_t num;
    const hp_db_stmt_def_t *defs = hp_db_stmts(&num);
    static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE "};
    for (size_t i = 0; i != num; ++i) {
        int writes_rows = 0;
        for (size_t k = 0; k != sizeof(writes) / sizeof(writes[0]); ++k)
            writes_rows |= strstr(defs[i].sql, writes[k]) != NULL;
        int control =
            strcmp(defs[i].sql, "BEGIN") == 0 || strcmp(defs[i].sql, "COMMIT") == 0 || strcmp(defs[i].sql, "ROLLBACK") == 0;
        hp_stmt_kind_t want = control ? HP_STMT_CONTROL : writes_rows ? HP_STMT_WRITE : HP_STMT_READ;
        if (defs[i].kind != want)
            fail_msg("statement %s is listed as kind %d, its SQL is kind %d", defs[i].name, (int)defs[i].kind, (int)want);
    }
}

/* ---- plans and tables ------------------------------------------------------------------------- */

static void test_plan_summary(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *doc = json_loads("[{\"Plan\": {\"Node Type\": \"Limit\", \"Plans\": [{\"Node Type\": \"Nested Loop\", \"Plans\": ["
                             "{\"Node Type\": \"Index Scan\", \"Relation Name\": \"orders\", \"Index Name\": \"orders_pkey\"},"
                             "{\"Node Type\": \"Index Scan\", \"Relation Name\": \"orders\", \"Index Name\": \"orders_pkey\"},"
                             "{\"Node Type\": \"Index Only Scan\", \"Relation Name\": \"users\", \"Index Name\": \"users_pkey\"},"
                             "{\"Node Type\": \"Bitmap Heap Scan\", \"Relation Name\": \"payments\", \"Plans\": ["
                             "{\"Node Type\": \"Bitmap Index Scan\", \"Index Name\": \"payments_order_id_key\"}]},"
                             "{\"Node Type\": \"Seq Scan\", \"Relation Name\": \"cities\"}]}]},"
                             "\"Planning Time\": 0.25, \"Execution Time\": 1.5}]",
                             0, &jerr);
    assert_non_null(doc);
    json_t *s = hp_plan_summary(doc);
    assert_string_equal(json_string_value(json_object_get(s, "top_node")), "Limit");
    assert_true(json_is_true(json_object_get(s, "has_seq_scan")));
    assert_true(json_is_true(json_object_get(s, "has_index_scan")));
    assert_true(json_is_true(json_object_get(s, "has_index_only_scan")));
    assert_int_equal(json_array_size(json_object_get(s, "index_scans")), 1); /* the same index twice counts once */
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "seq_scans"), 0)), "cities");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "bitmap_heap_scans"), 0)), "payments");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "bitmap_index_scans"), 0)), "payments_order_id_key");
    assert_int_equal(json_array_size(json_object_get(s, "sorts")), 0);
    assert_true(json_real_value(json_object_get(s, "execution_time_ms")) == 1.5);
    assert_true(json_real_value(json_object_get(s, "planning_time_ms")) == 0.25);
    json_decref(s);
    json_decref(doc);

    doc = json_loads("{\"Plan\": {\"Node Type\": \"Limit\", \"Plans\": [{\"Node Type\": \"Incremental Sort\"}]}}", 0, &jerr);
    s = hp_plan_summary(doc); /* auto_explain logs one object, not an array */
    assert_string_equal(json_string_value(json_object_get(s, "top_node")), "Limit");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "sorts"), 0)), "Incremental Sort");
    json_decref(s);
    json_decref(doc);

    doc = json_loads("[\"Utility Statement\"]", 0, &jerr);
    s = hp_plan_summary(doc);
    assert_string_equal(json_string_value(json_object_get(s, "top_node")), "Utility Statement");
    assert_true(json_is_false(json_object_get(s, "has_seq_scan")));
    assert_true(json_is_null(json_object_get(s, "execution_time_ms")));
    json_decref(s);
    json_decref(doc);

    /* Not a plan at all: an empty summary, not a crash. */
    doc = json_loads("[42]", 0, &jerr);
    s = hp_plan_summary(doc);
    assert_non_null(s);
    assert_true(json_is_null(json_object_get(s, "top_node")));
    json_decref(s);
    json_decref(doc);
}

static void test_missing_index_signal(void **state)
{
    (void)state;
    /* orders after DROP INDEX and 60 history reads: 80 full scans of 10,000 rows. */
    assert_true(hp_pg_missing_index_signal(80, 720000, 500, 10000));
    /* The same table with its index: a seed's 20 scans, then index reads. */
    assert_false(hp_pg_missing_index_signal(20, 120000, 500, 10000));
    assert_false(hp_pg_missing_index_signal(0, 0, 0, 10000));
    assert_false(hp_pg_missing_index_signal(1029, 1696, 0, 3));         /* a tiny table scanned often */
    assert_false(hp_pg_missing_index_signal(1000, 999000, 0, 100000));  /* scans that stop early */
    assert_false(hp_pg_missing_index_signal(80, 720000, 72001, 10000)); /* most rows come through indexes */
    assert_true(hp_pg_missing_index_signal(50, 50000, 5000, 1000));     /* every threshold exactly met */
}

static void test_text_json_cuts_and_repairs(void **state)
{
    (void)state;
    int cut;
    json_t *s = hp_pg_text_json("h\xc3\xa9llo", 6, 2, &cut);
    assert_string_equal(json_string_value(s), "h\xc3\xa9");
    assert_true(cut);
    json_decref(s);
    s = hp_pg_text_json("a\xff\xc3-b", 5, 100, &cut);
    assert_string_equal(json_string_value(s), "a?"
                                              "?-b");
    assert_false(cut);
    json_decref(s);
}

/* Another session's query, as the doctor shows it: no literal values, one space, cut with "...". */
static void shape_is(const char *q, size_t size, const char *want)
{
    char out[256];
    assert_true(size <= sizeof(out));
    size_t n = hp_pg_query_shape(q, strlen(q), out, size);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_query_shape(void **state)
{
    (void)state;
    shape_is("UPDATE menu_items SET price_cents = 1299, name = 'Pad Thai' WHERE id = 42", 256,
             "UPDATE menu_items SET price_cents = ?, name = ? WHERE id = ?");
    /* A doubled quote stays inside its literal; E'' strings and dollar quotes are literals too. */
    shape_is("SELECT 'it''s', E'a\\'', $$x 'y' 3$$, $tag$ 4 $tag$ FROM t", 256, "SELECT ?, E?, ?, ? FROM t");
    /* Identifiers with digits, placeholders and quoted identifiers are kept; numbers with exponents go. */
    shape_is("select t1.a2, \"col 3\" from t1 where x = $1 and y > -1.5e-3", 256,
             "select t1.a2, \"col 3\" from t1 where x = $1 and y > -?");
    shape_is("  BEGIN;\n\tSELECT   1  ", 256, "BEGIN; SELECT ?");
    /* Cut to the room there is, the ... included. */
    shape_is("SELECT abcdefghij FROM t", 12, "SELECT a...");
    shape_is("SELECT 'unterminated", 256, "SELECT ?");
    shape_is("", 8, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_parse_pairs_plans_and_orders_newest_first),
        cmocka_unit_test(test_slow_parse_keeps_the_newest),
        cmocka_unit_test(test_slow_parse_other_text),
        cmocka_unit_test(test_slow_parse_every_prefix),
        cmocka_unit_test(test_sql_matches),
        cmocka_unit_test(test_every_statement_maps_to_itself),
        cmocka_unit_test(test_num_params),
        cmocka_unit_test(test_every_statement_has_sample_args),
        cmocka_unit_test(test_statement_kinds_fit_their_sql),
        cmocka_unit_test(test_plan_summary),
        cmocka_unit_test(test_missing_index_signal),
        cmocka_unit_test(test_text_json_cuts_and_repairs),
        cmocka_unit_test(test_query_shape),
    };
    return cmocka_run_group_tests(tests, register_statements, NULL);
}
