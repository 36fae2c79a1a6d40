/*
 * Unit tests of profiling/doctor: every rule driven with canned snapshots.
 *
 * Each test starts from the same clean window (ten seconds of a mixed
 * journey: browse, menus from the cache, quotes, orders, history), which must
 * give no finding at all, and then changes only what one bottleneck changes,
 * the way the server's own counters would move. Each rule must then come
 * first with the right kind and route, and a variant just below the rule's
 * threshold must stay quiet. The index derivation, the ranking of a cause
 * above its symptoms, the threshold table and both renderings are checked too.
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
#include "services/statements.h"

typedef hp_test_doctor_t fixture_t;

static const char *const routes[][2] = {
    {"GET", "/restaurants"}, {"GET", "/restaurants/{id}/menu"}, {"POST", "/cart/quote"},
    {"POST", "/orders"},     {"GET", "/users/{id}/orders"},     {"GET", "/orders/{id}"},
};
enum { R_LIST, R_MENU, R_QUOTE, R_ORDERS, R_HISTORY, R_ORDER };

static const char *const stmts[] = {"auth_token",       "restaurant_list", "menu_get",       "cart_items",
                                    "order_insert",     "stock_decrement", "order_history",  "order_items_for",
                                    "restaurant_names", "order_get",       "order_items_of", "restaurant_name_of"};
enum { S_AUTH, S_LIST, S_MENU, S_CART, S_INSERT, S_STOCK, S_HISTORY, S_ITEMS_FOR, S_NAMES, S_GET, S_ITEMS_OF, S_NAME_OF };

#define MS 1000000.0

/*
 * Adds n requests of mean `ms` to route r of b, with the stage means given as
 * (stage, ms) pairs ending with -1. With n 0, adds the time to each request
 * already in the window instead (a route that got slower).
 */
static void add_route(fixture_t *fx, int r, double n, double ms, ...)
{
    hp_doctor_route_t *rt = &fx->b.routes[r];
    rt->count += (uint64_t)n;
    rt->by_class[2] += (uint64_t)n;
    if (n == 0)
        n = (double)(rt->count - fx->a.routes[r].count);
    rt->latency_ns += (uint64_t)(n * ms * MS);
    va_list ap;
    va_start(ap, ms);
    for (int s; (s = va_arg(ap, int)) >= 0;)
        rt->stage_ns[s] += (uint64_t)(n * va_arg(ap, double) * MS);
    va_end(ap);
}

static void add_stmt(fixture_t *fx, int s, double n, double ms)
{
    fx->b.stmts[s].count += (uint64_t)n;
    fx->b.stmts[s].rows += (uint64_t)n;
    fx->b.stmts[s].time_ns += (uint64_t)(n * ms * MS);
}

static void set_table(hp_doctor_snapshot_t *s, const char *name, int64_t seq_scan, int64_t seq_read, int64_t idx_fetch,
                      int64_t live)
{
    hp_doctor_table_t *t = &s->tables[s->num_tables++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->seq_scan = seq_scan, t->seq_tup_read = seq_read, t->idx_tup_fetch = idx_fetch, t->n_live_tup = live;
    s->tables_ok = 1;
}

/*
 * The heap readings of the window: 80 over its 10 s, growing by slope bytes/s
 * until plateau_s, with a deterministic noise of +-amp (the requests in flight).
 */
static void heap_series(hp_doctor_snapshot_t *s, double base, double slope, double plateau_s, double amp)
{
    s->heap_n = 80;
    for (size_t i = 0; i != s->heap_n; ++i) {
        double t = (double)i * 0.125, noise = amp * (double)((long)((i * 7919) % 201) - 100) / 100.0;
        s->heap_t[i] = t;
        s->heap_v[i] = base + slope * (t < plateau_s ? t : plateau_s) + noise;
    }
    s->heap_bytes = s->heap_v[s->heap_n - 1];
}

static void set_flag(hp_doctor_snapshot_t *s, const char *name, const char *value)
{
    char err[128];
    int v, id = hp_flag_check(name, strlen(name), value, strlen(value), &v, err, sizeof(err));
    assert_true(id >= 0);
    s->flags[id] = v;
}

/* The route of the fixture a statement's list names (services/statements.h), as hp_doctor_sample() maps it, or -1. */
static int owner_route(const char *stmt)
{
    for (size_t i = 0; i != HP_STMT__COUNT; ++i) {
        if (strcmp(hp_statements[i].name, stmt) != 0 || hp_statements[i].route < 0)
            continue;
        const hp_route_t *owner = &hp_api_routes[hp_statements[i].route];
        for (size_t r = 0; r != sizeof(routes) / sizeof(routes[0]); ++r)
            if (strcmp(routes[r][0], owner->method) == 0 && strcmp(routes[r][1], owner->pattern) == 0)
                return (int)r;
    }
    return -1;
}

/* The clean window: what a healthy server with every optimization on shows over 10 s. */
static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    hp_doctor_snapshot_t *a = &fx->a;
    a->at_s = 100;
    a->threads = 2;
    a->num_routes = sizeof(routes) / sizeof(routes[0]);
    for (size_t i = 0; i != a->num_routes; ++i) {
        a->routes[i].method = routes[i][0], a->routes[i].pattern = routes[i][1];
        a->routes[i].count = 1000, a->routes[i].by_class[2] = 1000, a->routes[i].latency_ns = (uint64_t)(1000 * MS);
    }
    a->num_stmts = sizeof(stmts) / sizeof(stmts[0]);
    for (size_t i = 0; i != a->num_stmts; ++i) {
        a->stmts[i].name = stmts[i];
        a->stmts[i].route = owner_route(stmts[i]);
        a->stmts[i].is_read = i != S_INSERT && i != S_STOCK;
        a->stmts[i].count = 500, a->stmts[i].time_ns = (uint64_t)(100 * MS);
    }
    a->stats.pool_size = 8, a->stats.counter[HP_COUNTER_cache_hits] = 5000, a->stats.counter[HP_COUNTER_cache_misses] = 100,
    a->stats.counter[HP_COUNTER_cache_loads] = 100;
    a->heap_bytes = 20e6;
    set_table(a, "orders", 40, 4000, 100000, 10000);
    set_table(a, "restaurants", 1000, 100000, 5000, 100);
    set_flag(a, "menu_cache", "redis");
    set_flag(a, "orders_user_id_index", "on");
    set_flag(a, "order_history", "batched");
    set_flag(a, "order_total", "once");
    set_flag(a, "checkout_txn", "short");
    set_flag(a, "db_pool", "sized");
    set_flag(a, "leak", "off");

    fx->b = *a;
    hp_doctor_snapshot_t *b = &fx->b;
    b->at_s = 110;
    add_route(fx, R_LIST, 200, 2.0, HP_STAGE_db, 1.2, HP_STAGE_render, 0.3, -1);
    add_route(fx, R_MENU, 600, 0.8, HP_STAGE_cache, 0.5, HP_STAGE_db, 0.04, HP_STAGE_render, 0.05, -1);
    add_route(fx, R_QUOTE, 100, 3.0, HP_STAGE_auth, 0.3, HP_STAGE_parse, 0.1, HP_STAGE_db, 1.6, HP_STAGE_compute, 0.02,
              HP_STAGE_render, 0.1, -1);
    add_route(fx, R_ORDERS, 50, 50.0, HP_STAGE_auth, 0.3, HP_STAGE_pool, 0.05, HP_STAGE_db, 3.0, HP_STAGE_payment, 42.0,
              HP_STAGE_compute, 0.01, -1);
    add_route(fx, R_HISTORY, 100, 2.0, HP_STAGE_auth, 0.3, HP_STAGE_db, 1.1, HP_STAGE_render, 0.2, -1);
    add_route(fx, R_ORDER, 50, 1.5, HP_STAGE_auth, 0.3, HP_STAGE_db, 0.8, -1);
    add_stmt(fx, S_AUTH, 300, 0.3);
    add_stmt(fx, S_LIST, 200, 1.1);
    add_stmt(fx, S_MENU, 10, 2.0);
    add_stmt(fx, S_CART, 100, 1.5);
    add_stmt(fx, S_INSERT, 50, 1.5);
    add_stmt(fx, S_STOCK, 50, 0.8);
    add_stmt(fx, S_HISTORY, 100, 0.5);
    add_stmt(fx, S_ITEMS_FOR, 100, 0.3);
    add_stmt(fx, S_NAMES, 100, 0.2);
    add_stmt(fx, S_GET, 50, 0.7);
    b->stats.counter[HP_COUNTER_cache_hits] += 590, b->stats.counter[HP_COUNTER_cache_misses] += 10,
        b->stats.counter[HP_COUNTER_cache_loads] += 10;
    b->stats.hist[HP_HIST_pool_wait].count += 50, b->stats.hist[HP_HIST_pool_wait].sum_ns += (uint64_t)(50 * 0.05 * MS);
    heap_series(b, 20e6, 0, 0, 150000);
    b->stats.hist[HP_HIST_loop_lag].p99_ns[0] = (uint64_t)(2 * MS);
    b->activity_samples = 30, b->activity_lock_samples = 1;
    b->activity_max_xact_ms = 6;
    b->tables[0].seq_scan += 1, b->tables[0].seq_tup_read += 10000, b->tables[0].idx_tup_fetch += 2000;
    b->tables[1].seq_scan += 200, b->tables[1].seq_tup_read += 20000;
    /* EXPLAIN of the top statements: the list scans the small restaurants table; history uses its index. */
    b->num_plans = 2;
    snprintf(b->plans[0].stmt, sizeof(b->plans[0].stmt), "restaurant_list");
    snprintf(b->plans[0].plan.seq_rel, sizeof(b->plans[0].plan.seq_rel), "restaurants");
    snprintf(b->plans[0].plan.filter, sizeof(b->plans[0].plan.filter), "(city_id = 3)");
    b->plans[0].hypo_cost = -1;
    snprintf(b->plans[1].stmt, sizeof(b->plans[1].stmt), "order_history");
    b->plans[1].hypo_cost = -1;
    *state = fx;
    return 0;
}

static void assert_first(fixture_t *fx, hp_doctor_kind_t kind, int route)
{
    hp_test_doctor_evaluate(fx);
    assert_true(fx->n >= 1);
    const char *name = hp_doctor_kind_name(fx->f[0].kind, NULL);
    if (fx->f[0].kind != kind)
        fail_msg("first finding is %s (%s), not %s", name, fx->f[0].summary, hp_doctor_kind_name(kind, NULL));
    assert_true(fx->f[0].num_routes >= 1);
    if (fx->f[0].routes[0] != route)
        fail_msg("first finding is on route %d (%s; %s)", fx->f[0].routes[0], fx->f[0].summary, fx->f[0].evidence[0]);
    assert_true(fx->f[0].severity >= HP_DOCTOR_MEDIUM);
    assert_true(fx->f[0].num_evidence >= 1);
    assert_true(fx->f[0].fix[0] != '\0');
}

static void assert_none_above_low(fixture_t *fx)
{
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        if (fx->f[i].severity > HP_DOCTOR_LOW)
            fail_msg("unexpected %s finding: %s", hp_doctor_kind_name(fx->f[i].kind, NULL), fx->f[i].summary);
}

/* The first finding of kind in the window, or NULL. */
static const hp_doctor_finding_t *find_kind(fixture_t *fx, hp_doctor_kind_t kind)
{
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        if (fx->f[i].kind == kind)
            return &fx->f[i];
    return NULL;
}

/* ---- the clean window ---- */

static void test_clean_window_has_no_finding(void **state)
{
    fixture_t *fx = *state;
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        print_message("finding: %s\n", fx->f[i].summary);
    assert_int_equal(fx->n, 0);
}

/* ---- missing index ---- */

static void slow_history_seq_scan(fixture_t *fx)
{
    /* History's one statement got slow, and it scans orders from start to end on every call. */
    add_route(fx, R_HISTORY, 0, 3.0, HP_STAGE_db, 3.0, -1);
    fx->b.stmts[S_HISTORY].time_ns += (uint64_t)(100 * 3.0 * MS);
    fx->b.tables[0].seq_scan += 100, fx->b.tables[0].seq_tup_read += 100 * 10000;
    hp_doctor_plan_t *p = &fx->b.plans[1];
    snprintf(p->plan.seq_rel, sizeof(p->plan.seq_rel), "orders");
    snprintf(p->plan.filter, sizeof(p->plan.filter), "(user_id = '42'::bigint)");
    snprintf(p->plan.sort_key, sizeof(p->plan.sort_key), "o.created_at DESC, o.id DESC");
    p->plan.cost = 1900.5;
    assert_int_equal(
        hp_plan_index_sql(p->plan.seq_rel, p->plan.filter, p->plan.sort_key, p->plan.index_sql, sizeof(p->plan.index_sql)), 0);
}

static void test_missing_index(void **state)
{
    fixture_t *fx = *state;
    set_flag(&fx->b, "orders_user_id_index", "off");
    slow_history_seq_scan(fx);
    fx->b.plans[1].hypo_cost = 12.3;
    assert_first(fx, HP_DOCTOR_missing_index, R_HISTORY);
    assert_string_equal(fx->f[0].sql, "CREATE INDEX CONCURRENTLY ON orders (user_id, created_at DESC, id DESC)");
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_HIGH);
    assert_non_null(strstr(fx->f[0].check, "1900.5 to 12.3"));
    assert_string_equal(fx->f[0].flag, "orders_user_id_index=on");
    /* Only the cause: the slower history is not also reported as something else. */
    assert_int_equal(fx->n, 1);
}

/* A finding that puts the time in the database says what PostgreSQL's backends waited on; one that does not, nothing. */
static void test_database_findings_say_where_postgres_waits(void **state)
{
    fixture_t *fx = *state;
    slow_history_seq_scan(fx);
    hp_doctor_snapshot_t *b = &fx->b;
    b->num_waits = 3, b->wait_samples = 200;
    snprintf(b->waits[0].event, sizeof(b->waits[0].event), "CPU"), b->waits[0].samples = 150;
    snprintf(b->waits[1].event, sizeof(b->waits[1].event), "IO:DataFileRead"), b->waits[1].samples = 40;
    snprintf(b->waits[2].event, sizeof(b->waits[2].event), "Lock:transactionid"), b->waits[2].samples = 10;
    assert_first(fx, HP_DOCTOR_missing_index, R_HISTORY);
    assert_true(hp_test_doctor_says(&fx->f[0], "200 samples of hotplate's active backends: CPU 75%, IO:DataFileRead 20%, "
                                               "Lock:transactionid 5%"));
    /* A CPU hot spot of hotplate's own is not the database's time. */
    add_route(fx, R_QUOTE, 0, 12.0, HP_STAGE_compute, 12.0, -1);
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        if (fx->f[i].kind == HP_DOCTOR_cpu_hot_spot)
            assert_false(hp_test_doctor_says(&fx->f[i], "PostgreSQL's time"));
}

/* The table's counters have not caught up with the window (PostgreSQL publishes them late): the executions count. */
static void test_missing_index_when_the_table_counters_lag(void **state)
{
    fixture_t *fx = *state;
    slow_history_seq_scan(fx);
    fx->b.tables[0].seq_scan = fx->a.tables[0].seq_scan + 3, fx->b.tables[0].seq_tup_read = fx->a.tables[0].seq_tup_read + 30000;
    assert_first(fx, HP_DOCTOR_missing_index, R_HISTORY);
    assert_true(hp_test_doctor_says(&fx->f[0], "those counters lag the"));
    /* A small table stays quiet, counted that way too: a scan of it is cheap. */
    fx->b.tables[0].n_live_tup = 500;
    assert_none_above_low(fx);
}

static void test_missing_index_unchecked_is_medium_confidence(void **state)
{
    fixture_t *fx = *state;
    slow_history_seq_scan(fx);
    fx->b.plans[1].hypo_cost = -1;
    snprintf(fx->b.plans[1].hypo_note, sizeof(fx->b.plans[1].hypo_note), "hypopg is not installed");
    assert_first(fx, HP_DOCTOR_missing_index, R_HISTORY);
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_MEDIUM);
    assert_non_null(strstr(fx->f[0].check, "hypopg is not installed"));
    assert_string_equal(fx->f[0].flag, ""); /* the flag is at its good value: nothing to switch */
}

static void test_missing_index_needs_scans_that_read_many_rows(void **state)
{
    fixture_t *fx = *state;
    slow_history_seq_scan(fx);
    /* A plan with a seq scan, but scans that stop early (a LIMIT) or read a small table are not the problem. */
    fx->b.tables[0].seq_tup_read = fx->a.tables[0].seq_tup_read + 101 * 900;
    assert_none_above_low(fx);
}

/*
 * order_history's plan when the planner reads the whole unique index on
 * (idempotency_key, user_id) instead of the heap: a bitmap scan whose Index
 * Cond is on the index's second column (EXPLAIN (FORMAT JSON), trimmed).
 */
static const char full_index_plan[] =
    "[{\"Plan\": {\"Node Type\": \"Limit\", \"Total Cost\": 353.1, \"Plans\": [{\"Node Type\": \"Sort\", \"Total Cost\": "
    "353.0, \"Sort Key\": [\"o.created_at DESC\", \"o.id DESC\"], \"Plans\": [{\"Node Type\": \"Bitmap Heap Scan\", "
    "\"Relation Name\": \"orders\", \"Alias\": \"o\", \"Total Cost\": 350.2, \"Recheck Cond\": \"(user_id = '42'::bigint)\", "
    "\"Plans\": [{\"Node Type\": \"Bitmap Index Scan\", \"Index Name\": \"orders_idempotency_key_user_id_key\", \"Total "
    "Cost\": 340.0, \"Index Cond\": \"(user_id = '42'::bigint)\"}]}]}]}}]";

static void test_missing_index_through_a_full_index_scan(void **state)
{
    fixture_t *fx = *state;
    set_flag(&fx->b, "orders_user_id_index", "off");
    /* History got slow; no sequential scan counter moved: every execution walks the whole index instead. */
    add_route(fx, R_HISTORY, 0, 3.0, HP_STAGE_db, 3.0, -1);
    fx->b.stmts[S_HISTORY].time_ns += (uint64_t)(100 * 3.0 * MS);
    fx->b.tables[0].n_live_tup = 20000;
    json_error_t err;
    json_t *doc = json_loads(full_index_plan, 0, &err);
    assert_non_null(doc);
    hp_doctor_plan_t *p = &fx->b.plans[1];
    assert_int_equal(hp_plan_read(doc, &p->plan), 0);
    json_decref(doc);
    assert_string_equal(p->plan.seq_rel, "");
    assert_string_equal(p->plan.idx_name, "orders_idempotency_key_user_id_key");
    /* Until the catalog names the index's leading column, it is an ordinary index scan and nothing is found. */
    assert_none_above_low(fx);
    assert_int_equal(hp_plan_full_index(&p->plan, "idempotency_key"), 1);
    assert_string_equal(p->plan.index_sql, "CREATE INDEX CONCURRENTLY ON orders (user_id, created_at DESC, id DESC)");
    p->hypo_cost = 12.3;
    assert_first(fx, HP_DOCTOR_missing_index, R_HISTORY);
    assert_string_equal(fx->f[0].sql, "CREATE INDEX CONCURRENTLY ON orders (user_id, created_at DESC, id DESC)");
    assert_non_null(strstr(fx->f[0].evidence[1], "leads with idempotency_key"));
    /* A small table is no problem, however its index is read. */
    fx->b.tables[0].n_live_tup = 500;
    assert_none_above_low(fx);
}

static void test_full_index_scan_needs_a_missed_leading_column(void **state)
{
    (void)state;
    json_error_t err;
    json_t *doc = json_loads(full_index_plan, 0, &err);
    hp_plan_read_t p;
    assert_int_equal(hp_plan_read(doc, &p), 0);
    json_decref(doc);
    /* An index that leads with user_id serves the condition: an ordinary index scan. */
    assert_int_equal(hp_plan_full_index(&p, "user_id"), 0);
    assert_string_equal(p.seq_rel, "");
    assert_true(hp_plan_cond_uses("(o.user_id = '42'::bigint)", "user_id"));
    assert_true(hp_plan_cond_uses("((user_id = 1) AND (id > 2))", "id"));
    assert_false(hp_plan_cond_uses("(user_id = '42'::bigint)", "id"));
    assert_false(hp_plan_cond_uses("(restaurant_id = 4)", "id"));
    assert_false(hp_plan_cond_uses("(idx = 4)", "id"));
}

/* ---- N+1 ---- */

static void n_plus_one(fixture_t *fx, double per_request)
{
    add_route(fx, R_HISTORY, 0, 2 * per_request * 0.12, HP_STAGE_db, 2 * per_request * 0.12, -1);
    add_stmt(fx, S_ITEMS_OF, 100 * per_request, 0.12);
    add_stmt(fx, S_NAME_OF, 100 * per_request, 0.11);
    fx->b.stmts[S_HISTORY].rows += (uint64_t)(100 * per_request - 100); /* the page's rows: one child of each per row */
    /* The batched statements are gone. */
    fx->b.stmts[S_ITEMS_FOR] = fx->a.stmts[S_ITEMS_FOR];
    fx->b.stmts[S_NAMES] = fx->a.stmts[S_NAMES];
}

static void test_n_plus_one(void **state)
{
    fixture_t *fx = *state;
    n_plus_one(fx, 10);
    assert_first(fx, HP_DOCTOR_n_plus_one, R_HISTORY);
    assert_non_null(strstr(fx->f[0].summary, "with order_history, then runs order_items_of + restaurant_name_of once per row"));
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_HIGH);
}

static void test_n_plus_one_needs_several_calls_per_request(void **state)
{
    fixture_t *fx = *state;
    n_plus_one(fx, 2);
    assert_null(find_kind(fx, HP_DOCTOR_n_plus_one));
}

static void test_a_statement_of_the_auth_stage_is_not_an_n_plus_one(void **state)
{
    fixture_t *fx = *state;
    /* The token lookup runs once per authenticated request: 3 per history request, and it would fit history's db stage. */
    add_route(fx, R_HISTORY, 0, 0.5, HP_STAGE_db, 0.5, -1);
    assert_none_above_low(fx);
    assert_null(find_kind(fx, HP_DOCTOR_n_plus_one));
}

/* ---- uncached hot read ---- */

static void menu_uncached(fixture_t *fx)
{
    fx->b.stats.counter[HP_COUNTER_cache_hits] = fx->a.stats.counter[HP_COUNTER_cache_hits],
    fx->b.stats.counter[HP_COUNTER_cache_misses] = fx->a.stats.counter[HP_COUNTER_cache_misses],
    fx->b.stats.counter[HP_COUNTER_cache_loads] = fx->a.stats.counter[HP_COUNTER_cache_loads];
    hp_doctor_route_t *m = &fx->b.routes[R_MENU];
    m->stage_ns[HP_STAGE_cache] = fx->a.routes[R_MENU].stage_ns[HP_STAGE_cache];
    add_route(fx, R_MENU, 0, 2.5, HP_STAGE_db, 2.5, -1);
    add_stmt(fx, S_MENU, 590, 2.4);
}

static void test_uncached_hot_read(void **state)
{
    fixture_t *fx = *state;
    set_flag(&fx->b, "menu_cache", "off");
    menu_uncached(fx);
    assert_first(fx, HP_DOCTOR_uncached_hot_read, R_MENU);
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_HIGH);
    assert_string_equal(fx->f[0].flag, "menu_cache=redis");
}

static void test_a_read_the_cache_answers_is_not_uncached(void **state)
{
    fixture_t *fx = *state;
    menu_uncached(fx);
    /* The same loads, but the cache is being consulted for every request (a cold cache filling up). */
    fx->b.stats.counter[HP_COUNTER_cache_misses] += 600;
    assert_null(find_kind(fx, HP_DOCTOR_uncached_hot_read));
}

static void test_a_routes_own_read_is_no_child_of_another_route(void **state)
{
    fixture_t *fx = *state;
    /*
     * The CI run that this test comes from: the uncached menu's reads, and a
     * checkout whose cart read returned about as many rows as menu_get ran,
     * by chance, with a db stage large enough to hold them. menu_get's list
     * names the menu route, so it is no child of the checkout's cart read.
     */
    set_flag(&fx->b, "menu_cache", "off");
    menu_uncached(fx);
    fx->b.stmts[S_CART].rows += 500;
    add_route(fx, R_ORDERS, 50, 40.0, HP_STAGE_db, 40.0, -1); /* one cart read per checkout */
    hp_test_doctor_evaluate(fx);
    assert_null(find_kind(fx, HP_DOCTOR_n_plus_one));
    assert_non_null(find_kind(fx, HP_DOCTOR_uncached_hot_read));
}

/* ---- CPU hot spot ---- */

static void test_cpu_hot_spot(void **state)
{
    fixture_t *fx = *state;
    add_route(fx, R_QUOTE, 0, 12.0, HP_STAGE_compute, 12.0, -1);
    add_route(fx, R_ORDERS, 0, 0.05, HP_STAGE_compute, 0.05, -1); /* 60 us, 0.1% of its time */
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_int_equal(fx->f[0].num_routes, 1);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_HIGH);
    add_route(fx, R_ORDERS, 0, 5.0, HP_STAGE_compute, 5.0, -1);
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_int_equal(fx->f[0].num_routes, 2);
    assert_int_equal(fx->f[0].routes[1], R_ORDERS);
}

static void test_cpu_computation_per_request_counts_even_as_a_small_share(void **state)
{
    fixture_t *fx = *state;
    /* Slow waits make the share small (about 0.6 of 13 ms), but 440 us of the server's own work per request is a hot spot. */
    add_route(fx, R_QUOTE, 0, 10.0, HP_STAGE_db, 9.6, HP_STAGE_compute, 0.4, -1);
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_MEDIUM);
}

/* The profile's own samples: inlined frames count in their function, and the hottest hp_ function names the fix. */
static void test_cpu_profile_names_the_function(void **state)
{
    fixture_t *fx = *state;
    static const char folded[] = "hp__thread_main;hp__on_req;hp_total__compute_naive;hp_total__find_item_linear[inline] 50\n"
                                 "hp__thread_main;hp__on_req;hp_total__compute_naive 20\n"
                                 "hp__thread_main;json_unpack 40\n"
                                 "hp__thread_main;epoll_wait 10\n"
                                 "malformed line without a count\n"
                                 "hp__thread_main;hp__render 0\n";
    hp_doctor_profile_read(folded, sizeof(folded) - 1, &fx->b);
    assert_int_equal(fx->b.profile_ok, 1);
    assert_int_equal(fx->b.profile_samples, 120);
    assert_int_equal(fx->b.num_hot, 3);
    assert_string_equal(fx->b.hot[0].fn, "hp_total__compute_naive");
    assert_int_equal(fx->b.hot[0].n, 70);
    assert_string_equal(fx->b.hot[1].fn, "json_unpack");
    add_route(fx, R_QUOTE, 0, 12.0, HP_STAGE_compute, 12.0, -1);
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_non_null(strstr(fx->f[0].fix, "hp_total__compute_naive"));
    assert_true(hp_test_doctor_says(&fx->f[0], "CPU profile of the window (120 samples)"));
    /* Behind 12 ms of computation a request, the hottest hotplate function is named even with few samples of a busy process. */
    static const char busy[] = "hp__thread_main;hp__on_req;hp_total__compute_naive 3\n"
                               "hp__thread_main;json_unpack 97\n";
    hp_doctor_profile_read(busy, sizeof(busy) - 1, &fx->b);
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_non_null(strstr(fx->f[0].fix, "hp_total__compute_naive"));
}

/* A heap profile counts each stack at its deepest hotplate frame: the code that called the allocator. */
static void test_heap_profile_names_the_allocation_site(void **state)
{
    fixture_t *fx = *state;
    static const char folded[] = "hp__thread_main;hp_handle_menu_get;hp_recent_record;calloc;imalloc 9000\n"
                                 "hp__thread_main;hp_handle_menu_get;hp_recent_record;calloc 1000\n"
                                 "hp__thread_main;hp_respond_json;json_dumps;malloc 3000\n"
                                 "start_thread;ProfilerStart;malloc 500\n";
    hp_doctor_heap_profile_read(folded, sizeof(folded) - 1, &fx->b);
    assert_int_equal(fx->b.heap_profile_ok, 1);
    assert_int_equal(fx->b.heap_profile_bytes, 13500);
    assert_int_equal(fx->b.num_heap_hot, 3);
    assert_string_equal(fx->b.heap_hot[0].fn, "hp_recent_record");
    assert_int_equal(fx->b.heap_hot[0].n, 10000);
    assert_string_equal(fx->b.heap_hot[1].fn, "hp_respond_json");
    assert_string_equal(fx->b.heap_hot[2].fn, "malloc"); /* no hotplate frame: the leaf */
}

static void test_cpu_below_share_is_quiet(void **state)
{
    fixture_t *fx = *state;
    /* 0.72 of 3.5 ms on the loop (21%), and 70 us of computation. */
    add_route(fx, R_QUOTE, 0, 0.5, HP_STAGE_parse, 0.2, HP_STAGE_compute, 0.05, HP_STAGE_render, 0.25, -1);
    assert_none_above_low(fx);
}

/*
 * A 200-line quote on a fast database: over half its time parsing and
 * rendering JSON (with the base window, 5.3 of 9 ms), 66 us of its own
 * computation. CPU-bound, a low note, never above low, and a function with 1%
 * of the samples is not named as the fix.
 */
static void test_cpu_json_bound_route_is_low(void **state)
{
    fixture_t *fx = *state;
    static const char folded[] = "hp__thread_main;hp_hist_record 1\n"
                                 "hp__thread_main;json_unpack 60\n"
                                 "hp__thread_main;json_dumpfd 39\n";
    hp_doctor_profile_read(folded, sizeof(folded) - 1, &fx->b);
    add_route(fx, R_QUOTE, 0, 6.0, HP_STAGE_parse, 2.5, HP_STAGE_compute, 0.046, HP_STAGE_render, 2.5, -1);
    assert_none_above_low(fx);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->f[0].kind, HP_DOCTOR_cpu_hot_spot);
    assert_int_equal(fx->f[0].routes[0], R_QUOTE);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_LOW);
    assert_null(strstr(fx->f[0].fix, "hp_hist_record"));
    assert_non_null(strstr(fx->f[0].fix, "JSON"));
    assert_non_null(strstr(fx->f[0].summary, "mostly parsing and rendering JSON"));
}

/* ---- lock wait, pool saturation and the errors they cause ---- */

static void long_transactions(fixture_t *fx)
{
    add_route(fx, R_ORDERS, 0, 80.0, HP_STAGE_db, 60.0, HP_STAGE_pool, 20.0, -1);
    fx->b.routes[R_ORDERS].by_class[2] -= 10, fx->b.routes[R_ORDERS].by_class[5] += 10;
    fx->b.stmts[S_STOCK].errors += 10;
    fx->b.stmts[S_STOCK].time_ns += (uint64_t)(50 * 55 * MS);
    fx->b.activity_lock_samples = 18, fx->b.activity_idle_txn_samples = 25, fx->b.activity_max_xact_ms = 900;
}

static void test_lock_wait_ranks_above_pool_and_errors(void **state)
{
    fixture_t *fx = *state;
    long_transactions(fx);
    assert_first(fx, HP_DOCTOR_lock_wait, R_ORDERS);
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_HIGH);
    int pool = 0, errors = 0;
    for (size_t i = 1; i != fx->n; ++i) {
        pool |= fx->f[i].kind == HP_DOCTOR_pool_saturation;
        if (fx->f[i].kind == HP_DOCTOR_error_spike) {
            errors = 1;
            assert_non_null(strstr(fx->f[i].summary, "explained by"));
        }
    }
    assert_true(pool && errors);
}

static void add_blocker(hp_doctor_snapshot_t *s, int pid, int own, const char *app, double idle_ms, int depth)
{
    hp_doctor_blocker_t *bl = &s->blockers[s->num_blockers++];
    memset(bl, 0, sizeof(*bl));
    bl->pid = pid, bl->own = own, bl->depth = depth, bl->samples = 20, bl->waiters = 3;
    snprintf(bl->app, sizeof(bl->app), "%s", app);
    snprintf(bl->client, sizeof(bl->client), "local");
    snprintf(bl->state, sizeof(bl->state), "%s", idle_ms >= 0 ? "idle in transaction" : "active");
    bl->xact_ms = 12500, bl->idle_ms = idle_ms;
    snprintf(bl->query, sizeof(bl->query), "UPDATE menu_items SET price_cents = ? WHERE restaurant_id = ?");
    snprintf(bl->relations, sizeof(bl->relations), "menu_items");
}

/* A session of another application holds the row locks: it is named, and the fix is about it, not about our transactions. */
static void test_lock_wait_names_a_foreign_blocker(void **state)
{
    fixture_t *fx = *state;
    long_transactions(fx);
    set_flag(&fx->b, "checkout_txn", "short");
    add_blocker(&fx->b, 4242, 0, "menu-import", 9000, 1);
    assert_first(fx, HP_DOCTOR_lock_wait, R_ORDERS);
    const hp_doctor_finding_t *f = &fx->f[0];
    assert_int_equal(f->confidence, HP_DOCTOR_HIGH);
    assert_non_null(strstr(f->summary, "another application's session: pid 4242 (application_name 'menu-import')"));
    assert_non_null(strstr(f->summary, "idle in transaction for 9.0 s"));
    assert_non_null(strstr(f->fix, "pg_terminate_backend(4242)"));
    assert_non_null(strstr(f->fix, "idle_in_transaction_session_timeout"));
    assert_null(strstr(f->fix, "payment"));
    assert_string_equal(f->sql, "SELECT pg_terminate_backend(4242)");
    assert_string_equal(f->flag, "");
    int named = 0, query = 0;
    for (size_t i = 0; i != f->num_evidence; ++i) {
        named |= strstr(f->evidence[i], "held by pid 4242, another application's session") != NULL &&
                 strstr(f->evidence[i], "locks on menu_items") != NULL;
        query |= strstr(f->evidence[i], "UPDATE menu_items SET price_cents = ?") != NULL;
    }
    assert_true(named && query);
    /* Still running a statement rather than idle: cancel that statement. */
    fx->b.num_blockers = 0;
    add_blocker(&fx->b, 4243, 0, "", -1, 3);
    hp_test_doctor_evaluate(fx);
    assert_string_equal(fx->f[0].sql, "SELECT pg_cancel_backend(4243)");
    assert_non_null(strstr(fx->f[0].summary, "(no application_name), active, in a transaction open for 12.5 s"));
    assert_true(hp_test_doctor_says(&fx->f[0], "3 sessions up to pid 4243"));
    /* A schema change left open: its ACCESS EXCLUSIVE lock blocks reads too, and the fix is a migration's lock_timeout. */
    fx->b.num_blockers = 0;
    add_blocker(&fx->b, 4244, 0, "schema-migration", 5000, 1);
    snprintf(fx->b.blockers[0].lock_mode, sizeof(fx->b.blockers[0].lock_mode), "AccessExclusiveLock");
    hp_test_doctor_evaluate(fx);
    assert_string_equal(fx->f[0].sql, "SELECT pg_terminate_backend(4244)");
    assert_non_null(strstr(fx->f[0].fix, "ACCESS EXCLUSIVE lock on menu_items"));
    assert_non_null(strstr(fx->f[0].fix, "lock_timeout"));
    assert_null(strstr(fx->f[0].fix, "bulk imports"));
    assert_true(hp_test_doctor_says(&fx->f[0], "locks on menu_items (AccessExclusiveLock)"));
}

/*
 * A foreign schema change locks promotions: the quote's and the checkout's
 * pricing wait on the read connection, before any transaction, and time out.
 * No pool stage at all, yet the lock wait is theirs, ranked above their error
 * spikes, and both routes are named.
 */
static void test_lock_wait_of_a_foreign_lock_finds_its_victims_without_a_pool_stage(void **state)
{
    fixture_t *fx = *state;
    add_route(fx, R_QUOTE, 0, 900.0, HP_STAGE_db, 890.0, -1);
    add_route(fx, R_ORDERS, 0, 2000.0, HP_STAGE_db, 1990.0, -1);
    fx->b.routes[R_QUOTE].by_class[2] -= 40, fx->b.routes[R_QUOTE].by_class[5] += 40;
    fx->b.routes[R_ORDERS].by_class[2] -= 50, fx->b.routes[R_ORDERS].by_class[5] += 50;
    fx->b.activity_lock_samples = 30, fx->b.activity_max_xact_ms = 900;
    add_blocker(&fx->b, 5150, 0, "schema-migration", 4000, 1);
    snprintf(fx->b.blockers[0].lock_mode, sizeof(fx->b.blockers[0].lock_mode), "AccessExclusiveLock");
    assert_first(fx, HP_DOCTOR_lock_wait, R_ORDERS); /* every checkout failed; three quotes in four */
    assert_int_equal(fx->f[0].num_routes, 2);
    assert_int_equal(fx->f[0].routes[1], R_QUOTE);
    for (size_t i = 1; i != fx->n; ++i)
        if (fx->f[i].kind == HP_DOCTOR_error_spike)
            assert_non_null(strstr(fx->f[i].summary, "explained by the finding: lock wait"));
    /* hotplate's own blocker keeps today's rule: only a route that takes a transaction connection is its victim. */
    fx->b.blockers[0].own = 1;
    hp_test_doctor_evaluate(fx);
    for (size_t i = 0; i != fx->n; ++i)
        if (fx->f[i].kind == HP_DOCTOR_lock_wait)
            assert_true(fx->f[i].num_routes == 0 || fx->f[i].routes[0] == R_ORDERS);
}

/* An HA stack whose primary has no standby (after a failover, before the old primary is rebuilt) or a lagging one. */
static void ha_primary(hp_doctor_snapshot_t *s, int standbys, int64_t lag_bytes, double lag_s)
{
    s->ha.enabled = 1, s->ha.connected = 1, s->ha.standbys = standbys, s->ha.sync_standbys = standbys;
    s->ha.lag_bytes = lag_bytes, s->ha.lag_seconds = lag_s;
    snprintf(s->ha.primary, sizeof(s->ha.primary), "127.0.0.1:5433");
}

static void test_standby_missing_is_high(void **state)
{
    fixture_t *fx = *state;
    ha_primary(&fx->b, 0, -1, 0);
    fx->b.ha.failovers = 1;
    snprintf(fx->b.ha.previous, sizeof(fx->b.ha.previous), "127.0.0.1:5432");
    hp_test_doctor_evaluate(fx);
    assert_true(fx->n >= 1);
    const hp_doctor_finding_t *f = &fx->f[0];
    assert_int_equal(f->kind, HP_DOCTOR_pg_standby);
    assert_int_equal(f->severity, HP_DOCTOR_HIGH);
    assert_int_equal(f->num_routes, 0);
    assert_non_null(strstr(f->summary, "No standby streams from the primary 127.0.0.1:5433"));
    assert_non_null(strstr(f->fix, "pg_rewind"));
    assert_true(hp_test_doctor_says(f, "the last from 127.0.0.1:5432 to 127.0.0.1:5433"));
    /* The JSON carries what the watcher saw, and says the finding concerns the database. */
    json_t *doc = hp_doctor_json(&fx->a, &fx->b, fx->f, fx->n, NULL, 0);
    json_t *ha = json_object_get(json_object_get(doc, "signals"), "postgres_ha");
    assert_non_null(ha);
    assert_string_equal(json_string_value(json_object_get(ha, "primary")), "127.0.0.1:5433");
    assert_int_equal(json_integer_value(json_object_get(ha, "standbys")), 0);
    assert_int_equal(json_integer_value(json_object_get(ha, "failovers")), 1);
    assert_true(json_is_true(json_object_get(ha, "connected")));
    json_t *f0 = json_array_get(json_object_get(doc, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "impact_of")), "database");
    json_decref(doc);
}

static void test_standby_lag_fires_at_its_thresholds_only(void **state)
{
    fixture_t *fx = *state;
    double bytes = hp_doctor_threshold(HP_DOCTOR_TH_pg_standby_lag_bytes)->value;
    double secs = hp_doctor_threshold(HP_DOCTOR_TH_pg_standby_lag_s)->value;
    ha_primary(&fx->b, 1, (int64_t)bytes - 1, secs - 0.1);
    assert_null(find_kind(fx, HP_DOCTOR_pg_standby));
    assert_none_above_low(fx);
    fx->b.ha.lag_bytes = (int64_t)bytes;
    const hp_doctor_finding_t *f = find_kind(fx, HP_DOCTOR_pg_standby);
    assert_non_null(f);
    assert_int_equal(f->severity, HP_DOCTOR_MEDIUM);
    assert_non_null(strstr(f->summary, "16.0 MiB"));
    assert_non_null(strstr(f->fix, "replay_lag"));
    fx->b.ha.lag_bytes = 0, fx->b.ha.lag_seconds = secs;
    assert_non_null(find_kind(fx, HP_DOCTOR_pg_standby));
    /* One host (no HA watcher), or a watcher that reached no primary: nothing to judge. */
    fx->b.ha.standbys = 0, fx->b.ha.connected = 0;
    assert_null(find_kind(fx, HP_DOCTOR_pg_standby));
    fx->b.ha.connected = 1, fx->b.ha.enabled = 0;
    assert_null(find_kind(fx, HP_DOCTOR_pg_standby));
}

/* hotplate's own long transaction at the root: it is named in the evidence, and the advice stays that of short transactions. */
static void test_lock_wait_of_our_own_blocker_keeps_the_advice(void **state)
{
    fixture_t *fx = *state;
    long_transactions(fx);
    add_blocker(&fx->b, 77, 1, "hotplate", 300, 1);
    assert_first(fx, HP_DOCTOR_lock_wait, R_ORDERS);
    assert_non_null(strstr(fx->f[0].fix, "payment authorization"));
    assert_string_equal(fx->f[0].sql, "");
    assert_true(hp_test_doctor_says(&fx->f[0], "held by pid 77, one of hotplate's own backends"));
}

static void test_lock_wait_needs_samples(void **state)
{
    fixture_t *fx = *state;
    fx->b.activity_lock_samples = 2, fx->b.activity_idle_txn_samples = 3, fx->b.activity_samples = 3;
    assert_none_above_low(fx);
    fx->b.activity_samples = 30; /* 3 of 30 samples: 10% */
    assert_none_above_low(fx);
}

static void test_lock_wait_of_another_process_is_low(void **state)
{
    fixture_t *fx = *state;
    /* Another replica's long transactions show in pg_stat_activity, but no route of this server takes a connection. */
    fx->b.routes[R_ORDERS].stage_ns[HP_STAGE_pool] = fx->a.routes[R_ORDERS].stage_ns[HP_STAGE_pool];
    fx->b.activity_idle_txn_samples = 25;
    assert_none_above_low(fx);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->f[0].kind, HP_DOCTOR_lock_wait);
    assert_int_equal(fx->f[0].num_routes, 0);
}

static void test_pool_saturation(void **state)
{
    fixture_t *fx = *state;
    add_route(fx, R_ORDERS, 0, 30.0, HP_STAGE_pool, 30.0, -1);
    fx->b.stats.pool_size = 2, fx->b.stats.gauge[HP_GAUGE_pool_waiting] = 3, fx->b.stats.gauge[HP_GAUGE_pool_in_use] = 2;
    fx->b.stats.hist[HP_HIST_pool_wait].sum_ns += (uint64_t)(50 * 30 * MS);
    assert_first(fx, HP_DOCTOR_pool_saturation, R_ORDERS);
    assert_int_equal(fx->f[0].confidence, HP_DOCTOR_HIGH);
}

static void test_pool_wait_below_share_is_quiet(void **state)
{
    fixture_t *fx = *state;
    add_route(fx, R_ORDERS, 0, 1.0, HP_STAGE_pool, 1.0, -1); /* 1 of 51 ms */
    assert_none_above_low(fx);
}

static void test_error_spike_alone(void **state)
{
    fixture_t *fx = *state;
    fx->b.routes[R_ORDER].by_class[2] -= 8, fx->b.routes[R_ORDER].by_class[5] += 8;
    assert_first(fx, HP_DOCTOR_error_spike, R_ORDER);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_MEDIUM); /* 16%: high needs 4 x 5% */
    fx->b.routes[R_ORDER].by_class[5] += 4;
    hp_test_doctor_evaluate(fx);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_HIGH);
    fx->b.routes[R_ORDER].by_class[5] = 4; /* below the least count */
    assert_none_above_low(fx);
}

/* ---- memory growth ---- */

static void test_memory_growth(void **state)
{
    fixture_t *fx = *state;
    /* 400 KB/s through the window under +-150 KB of noise: 4 MB, 6.7 KB per menu view. */
    heap_series(&fx->b, 20e6, 400000, 100, 150000);
    assert_first(fx, HP_DOCTOR_memory_growth, R_MENU);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_HIGH);
    /* 40 KB/s, 667 bytes per view: a finding, but low, as fast as a warming server grows. */
    heap_series(&fx->b, 20e6, 40000, 100, 150000);
    assert_none_above_low(fx);
    assert_int_equal(fx->f[0].kind, HP_DOCTOR_memory_growth);
    /* The same trend, too small per request: 4 KB/s is 67 bytes per view but 40 KB in all. */
    heap_series(&fx->b, 20e6, 4000, 100, 1000);
    assert_none_above_low(fx);
}

static void test_memory_that_levels_off_is_quiet(void **state)
{
    fixture_t *fx = *state;
    /* A bounded list filling up: fast growth for 4 s, then flat. */
    heap_series(&fx->b, 20e6, 100000, 4, 50000);
    assert_none_above_low(fx);
    /* Noise alone, however large, is no trend. */
    heap_series(&fx->b, 20e6, 0, 0, 400000);
    assert_none_above_low(fx);
    /* And a build without jemalloc has no heap figures at all. */
    heap_series(&fx->b, 20e6, 40000, 100, 0);
    fx->b.heap_bytes = fx->a.heap_bytes = -1;
    assert_none_above_low(fx);
}

/*
 * Levelling off is judged per request when the readings carry the requests
 * answered. A leak under a load that stops after 5.5 s of the 10 (a busy
 * machine) flattens against time, yet grows by the same bytes per request
 * while there are requests: still a leak. A bounded list that fills in the
 * first 4 s under a steady load grows per request at first and then not:
 * levelled, whatever the time trend says.
 */
static void test_memory_levelling_is_judged_per_request(void **state)
{
    fixture_t *fx = *state;
    heap_series(&fx->b, 20e6, 400000, 5.5, 20000);
    assert_none_above_low(fx); /* against time alone, it levels off */
    for (size_t i = 0; i != fx->b.heap_n; ++i) {
        double t = fx->b.heap_t[i];
        fx->b.heap_q[i] = 10000 * (t < 5.5 ? t : 5.5); /* 10,000 requests a second, then none */
    }
    assert_first(fx, HP_DOCTOR_memory_growth, R_MENU);
    /* A list filling for 4 s under a steady 10,000 requests a second: levelled per request too. */
    heap_series(&fx->b, 20e6, 100000, 4, 5000);
    for (size_t i = 0; i != fx->b.heap_n; ++i)
        fx->b.heap_q[i] = 10000 * fx->b.heap_t[i];
    assert_none_above_low(fx);
}

/*
 * A heap that wanders: a random walk (steps of up to 40 KB every 0.125 s) that
 * happens to end 157 KB up. Fitted as if the readings were independent, its
 * trend is 8 standard errors above zero; its residuals follow each other
 * (rho 0.87), which puts it at 2, under leak_sigmas. The clean run of the
 * end-to-end test showed such windows.
 */
static void test_memory_that_wanders_is_quiet(void **state)
{
    fixture_t *fx = *state;
    hp_doctor_snapshot_t *s = &fx->b;
    uint64_t x = 2;
    double cur = 20e6;
    s->heap_n = 80;
    for (size_t i = 0; i != s->heap_n; ++i) {
        x = (x * 1103515245 + 12345) % (1ULL << 31);
        cur += 40000.0 * (double)((long)((x >> 16) % 2001) - 1000) / 1000.0;
        s->heap_t[i] = (double)i * 0.125;
        s->heap_v[i] = cur;
    }
    s->heap_bytes = s->heap_v[s->heap_n - 1];
    assert_true(s->heap_v[s->heap_n - 1] - s->heap_v[0] > 131072);
    assert_none_above_low(fx);
}

/* ---- event-loop stall ---- */

static void test_event_loop_stall(void **state)
{
    fixture_t *fx = *state;
    fx->b.stats.hist[HP_HIST_loop_lag].p99_ns[0] = (uint64_t)(80 * MS);
    /* Lag while the loops are idle is the machine's scheduling, not the server's. */
    assert_none_above_low(fx);
    /* The list's requests now block their loop for 25 ms in no stage at all (a blocking call): 5 s of 20 s of loop time. */
    add_route(fx, R_LIST, 0, 25.0, -1);
    assert_first(fx, HP_DOCTOR_event_loop_stall, R_LIST);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_MEDIUM);
    fx->b.stats.hist[HP_HIST_loop_lag].p99_ns[0] = (uint64_t)(250 * MS);
    hp_test_doctor_evaluate(fx);
    assert_int_equal(fx->f[0].severity, HP_DOCTOR_HIGH);
}

static void test_a_stall_from_a_cpu_hot_spot_ranks_after_it(void **state)
{
    fixture_t *fx = *state;
    fx->b.stats.hist[HP_HIST_loop_lag].p99_ns[0] = (uint64_t)(900 * MS);
    add_route(fx, R_QUOTE, 0, 60.0, HP_STAGE_compute, 60.0, -1); /* 6 s of the loops' 20 s */
    assert_first(fx, HP_DOCTOR_cpu_hot_spot, R_QUOTE);
    assert_int_equal(fx->n, 2);
    assert_int_equal(fx->f[1].kind, HP_DOCTOR_event_loop_stall);
    assert_non_null(strstr(fx->f[1].summary, "explained by the CPU hot spot"));
}

/* ---- the index derivation ---- */

static void test_index_sql(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(hp_plan_index_sql("orders", "(user_id = '7'::bigint)", "o.created_at DESC, o.id DESC", out, sizeof(out)), 0);
    assert_string_equal(out, "CREATE INDEX CONCURRENTLY ON orders (user_id, created_at DESC, id DESC)");
    /* Two equality columns, a sort key that repeats one of them, no direction. */
    assert_int_equal(hp_plan_index_sql("t", "((a.x = 1) AND (y = 'z'::text) AND (w > 3))", "a.y, k", out, sizeof(out)), 0);
    assert_string_equal(out, "CREATE INDEX CONCURRENTLY ON t (x, y, k)");
    assert_int_equal(hp_plan_index_sql("t", "(x = 1)", "", out, sizeof(out)), 0);
    assert_string_equal(out, "CREATE INDEX CONCURRENTLY ON t (x)");
    /* No equality: no index to propose; and an output that does not fit is an error, not a truncated statement. */
    assert_int_equal(hp_plan_index_sql("t", "(x > 1)", "y", out, sizeof(out)), -1);
    assert_int_equal(hp_plan_index_sql("orders", "(user_id = 7)", "", out, 20), -1);
}

/* ---- reading EXPLAIN ---- */

static void test_plan_read(void **state)
{
    (void)state;
    /* The shape of order_history's plan without its index (EXPLAIN (FORMAT JSON), trimmed). */
    const char *text = "[{\"Plan\": {\"Node Type\": \"Limit\", \"Total Cost\": 1912.4, \"Plans\": [{\"Node Type\": \"Sort\", "
                       "\"Total Cost\": 1912.3, \"Sort Key\": [\"o.created_at DESC\", \"o.id DESC\"], \"Plans\": [{\"Node Type\": "
                       "\"Seq Scan\", \"Relation Name\": \"orders\", \"Alias\": \"o\", \"Total Cost\": 1900.0, \"Filter\": "
                       "\"(user_id = '42'::bigint)\"}]}]}}]";
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    assert_non_null(doc);
    hp_plan_read_t p;
    assert_int_equal(hp_plan_read(doc, &p), 0);
    assert_true(p.cost == 1912.4);
    assert_string_equal(p.seq_rel, "orders");
    assert_string_equal(p.filter, "(user_id = '42'::bigint)");
    assert_string_equal(p.sort_key, "o.created_at DESC, o.id DESC");
    assert_string_equal(p.index_sql, "CREATE INDEX CONCURRENTLY ON orders (user_id, created_at DESC, id DESC)");
    json_decref(doc);
    /* With the index: no sequential scan, nothing to propose. A scan without a filter is not one either. */
    text = "[{\"Plan\": {\"Node Type\": \"Limit\", \"Total Cost\": 9.1, \"Plans\": [{\"Node Type\": \"Index Scan\", \"Relation "
           "Name\": \"orders\", \"Index Name\": \"orders_user_id_created_at_idx\", \"Total Cost\": 9.0}, {\"Node Type\": \"Seq "
           "Scan\", \"Relation Name\": \"cities\", \"Total Cost\": 1.2}]}}]";
    doc = json_loads(text, 0, &err);
    assert_int_equal(hp_plan_read(doc, &p), 0);
    assert_string_equal(p.seq_rel, "");
    assert_string_equal(p.index_sql, "");
    json_decref(doc);
    /* A join: the sort is by the other relation's columns, which no index on the scanned one provides. */
    text =
        "[{\"Plan\": {\"Node Type\": \"Sort\", \"Total Cost\": 4.4, \"Sort Key\": [\"r.rating DESC\", \"r.id DESC\"], \"Plans\": "
        "[{\"Node Type\": \"Hash Join\", \"Total Cost\": 4.0, \"Plans\": [{\"Node Type\": \"Seq Scan\", \"Relation Name\": "
        "\"cities\", \"Alias\": \"c\", \"Total Cost\": 1.1, \"Filter\": \"(name = 'London'::text)\"}]}]}}]";
    doc = json_loads(text, 0, &err);
    assert_int_equal(hp_plan_read(doc, &p), 0);
    assert_string_equal(p.seq_rel, "cities");
    assert_string_equal(p.sort_key, "");
    assert_string_equal(p.index_sql, "CREATE INDEX CONCURRENTLY ON cities (name)");
    json_decref(doc);
    /* A utility statement has no plan. */
    doc = json_loads("[\"Utility Statement\"]", 0, &err);
    assert_int_equal(hp_plan_read(doc, &p), -1);
    json_decref(doc);
}

/* ---- the table and the renderings ---- */

static void test_thresholds_are_documented_and_unique(void **state)
{
    (void)state;
    for (int i = 0; i != HP_DOCTOR_TH__COUNT; ++i) {
        const hp_doctor_threshold_t *t = hp_doctor_threshold((hp_doctor_th_t)i);
        assert_true(strlen(t->doc) > 20 && strlen(t->unit) > 0 && t->value > 0);
        for (int j = 0; j != i; ++j)
            assert_string_not_equal(t->name, hp_doctor_threshold((hp_doctor_th_t)j)->name);
    }
}

static void test_json_and_markdown(void **state)
{
    fixture_t *fx = *state;
    n_plus_one(fx, 10);
    hp_test_doctor_evaluate(fx);
    const char *notes[] = {"a note"};
    json_t *doc = hp_doctor_json(&fx->a, &fx->b, fx->f, fx->n, notes, 1);
    json_t *f0 = json_array_get(json_object_get(doc, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(f0, "kind")), "n_plus_one");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(f0, "routes"), 0), "route")),
                        "/users/{id}/orders");
    assert_int_equal(json_array_size(json_object_get(doc, "thresholds")), HP_DOCTOR_TH__COUNT);
    assert_int_equal(json_array_size(json_object_get(doc, "observed")), 6);
    assert_true(json_number_value(json_object_get(doc, "window_s")) == 10);
    char *md = hp_doctor_markdown(doc);
    assert_non_null(md);
    assert_non_null(strstr(md, "## 1. N+1 ("));
    assert_non_null(strstr(md, "\n\nGET /users/{id}/orders reads a page"));
    assert_string_equal(json_string_value(json_object_get(f0, "impact_of")), "route time");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "signals"), "threads")), 2);
    assert_non_null(strstr(md, "`GET /users/{id}/orders`"));
    assert_null(strstr(md, "order_history=batched")); /* the flag is at its good value: no switch to name */
    assert_non_null(strstr(md, "- a note"));
    free(md);
    json_decref(doc);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, hp_test_doctor_teardown)
    const struct CMUnitTest tests[] = {
        T(test_clean_window_has_no_finding),
        T(test_missing_index),
        T(test_database_findings_say_where_postgres_waits),
        T(test_missing_index_when_the_table_counters_lag),
        T(test_missing_index_unchecked_is_medium_confidence),
        T(test_missing_index_needs_scans_that_read_many_rows),
        T(test_missing_index_through_a_full_index_scan),
        T(test_full_index_scan_needs_a_missed_leading_column),
        T(test_n_plus_one),
        T(test_n_plus_one_needs_several_calls_per_request),
        T(test_a_statement_of_the_auth_stage_is_not_an_n_plus_one),
        T(test_a_routes_own_read_is_no_child_of_another_route),
        T(test_uncached_hot_read),
        T(test_a_read_the_cache_answers_is_not_uncached),
        T(test_cpu_hot_spot),
        T(test_cpu_computation_per_request_counts_even_as_a_small_share),
        T(test_cpu_profile_names_the_function),
        T(test_heap_profile_names_the_allocation_site),
        T(test_cpu_below_share_is_quiet),
        T(test_cpu_json_bound_route_is_low),
        T(test_lock_wait_ranks_above_pool_and_errors),
        T(test_lock_wait_names_a_foreign_blocker),
        T(test_standby_missing_is_high),
        T(test_standby_lag_fires_at_its_thresholds_only),
        T(test_lock_wait_of_a_foreign_lock_finds_its_victims_without_a_pool_stage),
        T(test_lock_wait_of_our_own_blocker_keeps_the_advice),
        T(test_lock_wait_needs_samples),
        T(test_lock_wait_of_another_process_is_low),
        T(test_pool_saturation),
        T(test_pool_wait_below_share_is_quiet),
        T(test_error_spike_alone),
        T(test_memory_growth),
        T(test_memory_that_levels_off_is_quiet),
        T(test_memory_levelling_is_judged_per_request),
        T(test_memory_that_wanders_is_quiet),
        T(test_event_loop_stall),
        T(test_a_stall_from_a_cpu_hot_spot_ranks_after_it),
        T(test_index_sql),
        T(test_plan_read),
        T(test_thresholds_are_documented_and_unique),
        T(test_json_and_markdown),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
