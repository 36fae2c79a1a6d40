/*
 * Unit tests of profiling/alerts: the embedded evaluator driven with made-up
 * samples on a made-up clock. An alert whose condition holds is pending at
 * once and firing only after its `for:` duration, a traffic guard keeps a
 * quiet route out, counters become rates over their window and growth a
 * least-squares slope, a condition that stops holding resolves what fired,
 * and the table of active alerts is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "profiling/alerts.h"

typedef struct st_fixture_t {
    hp_alerts_t a;
    hp_alert_sample_t s;
    hp_alert_event_t ev[16];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(hp_alerts_init(&f->a), 0);
    f->s.at_s = 1000;
    f->s.cpus = 2;
    f->s.heap_bytes = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    hp_alerts_dispose(&f->a);
    free(f);
    return 0;
}

/* Evaluates the fixture's sample, then advances its clock by a second. @return the number of transitions */
static size_t step(fixture_t *f)
{
    size_t n = hp_alerts_eval(&f->a, &f->s, (uint64_t)f->s.at_s * 1000000u, f->ev, 16);
    ++f->s.at_s;
    return n;
}

/* n evaluations, a second apart, none of which changes the state of any alert. */
static void steps_without_transitions(fixture_t *f, int n)
{
    for (int i = 0; i != n; ++i)
        if (step(f) != 0)
            fail_msg("a transition at step %d of %d", i, n);
}

static const hp_alert_active_t *find(const fixture_t *f, hp_alert_id_t id)
{
    for (size_t i = 0; i != f->a.num_active; ++i)
        if (f->a.active[i].id == id)
            return &f->a.active[i];
    return NULL;
}

static void one_route(fixture_t *f, double rate, double p99, double ratio_5xx)
{
    f->s.num_routes = 1;
    f->s.routes[0].method = "POST";
    f->s.routes[0].pattern = "/orders";
    f->s.routes[0].rate_per_s = rate;
    f->s.routes[0].p99_s = p99;
    f->s.routes[0].ratio_5xx = ratio_5xx;
}

static void test_rules_match_the_list(void **state)
{
    (void)state;
    const hp_alert_rule_t *r = hp_alert_rule(HP_ALERT_HotplateErrorRateHigh);
    assert_string_equal(r->name, "HotplateErrorRateHigh");
    assert_int_equal(r->severity, HP_ALERT_CRITICAL);
    assert_true(r->threshold == 0.01 && r->for_s == 60);
    assert_int_equal(hp_alert_rule(HP_ALERT_HotplateCacheHitRatioLow)->op, '<');
}

static void test_latency_pending_then_firing_then_resolved(void **state)
{
    fixture_t *f = *state;
    one_route(f, 1.0, 0.7, 0);
    assert_int_equal(step(f), 0);
    const hp_alert_active_t *x = find(f, HP_ALERT_HotplateRouteLatencyHigh);
    assert_non_null(x);
    assert_int_equal(x->state, HP_ALERT_PENDING);
    assert_string_equal(x->subject, "POST /orders");
    assert_null(find(f, HP_ALERT_HotplateRouteLatencyCritical)); /* 0.7 s is under 2 s */
    steps_without_transitions(f, 59);
    assert_int_equal(find(f, HP_ALERT_HotplateRouteLatencyHigh)->state, HP_ALERT_PENDING);
    /* The 61st sample is 60 s after the first: the `for:` has passed. */
    assert_int_equal(step(f), 1);
    assert_int_equal(f->ev[0].id, HP_ALERT_HotplateRouteLatencyHigh);
    assert_int_equal(f->ev[0].firing, 1);
    assert_int_equal(find(f, HP_ALERT_HotplateRouteLatencyHigh)->state, HP_ALERT_FIRING);
    assert_int_equal(step(f), 0); /* firing is announced once */
    one_route(f, 1.0, 0.1, 0);
    assert_int_equal(step(f), 1);
    assert_int_equal(f->ev[0].firing, 0);
    assert_null(find(f, HP_ALERT_HotplateRouteLatencyHigh));
}

static void test_pending_that_clears_never_fires(void **state)
{
    fixture_t *f = *state;
    one_route(f, 1.0, 0.7, 0);
    steps_without_transitions(f, 30);
    one_route(f, 1.0, 0.1, 0);
    assert_int_equal(step(f), 0); /* no resolution for what never fired */
    assert_int_equal(f->a.num_active, 0);
}

static void test_guard_keeps_quiet_routes_out(void **state)
{
    fixture_t *f = *state;
    one_route(f, 0.1, 5.0, 0.5);
    steps_without_transitions(f, 120);
    assert_int_equal(f->a.num_active, 0);
}

static void test_error_rate_is_critical(void **state)
{
    fixture_t *f = *state;
    one_route(f, 10, 0.01, 0.02);
    steps_without_transitions(f, 60);
    assert_int_equal(step(f), 1);
    assert_int_equal(f->ev[0].id, HP_ALERT_HotplateErrorRateHigh);
    one_route(f, 10, 0.01, 0.01); /* exactly 1% is not over 1% */
    assert_int_equal(step(f), 1);
    assert_int_equal(f->ev[0].firing, 0);
}

static void test_spike_fires_at_once_against_its_baseline(void **state)
{
    fixture_t *f = *state;
    f->s.error_rate_per_s = 2, f->s.error_baseline_per_s = 0.5; /* 2 is not over 5 x 0.5 */
    assert_int_equal(step(f), 0);
    f->s.error_rate_per_s = 0.9, f->s.error_baseline_per_s = 0; /* under the least rate */
    assert_int_equal(step(f), 0);
    f->s.error_rate_per_s = 2, f->s.error_baseline_per_s = 0.1;
    assert_int_equal(step(f), 1);
    assert_int_equal(f->ev[0].id, HP_ALERT_Hotplate5xxSpike);
}

static void test_cache_ratio_from_counters(void **state)
{
    fixture_t *f = *state;
    /* 4 menus/s, 1 from the cache: 25%, under 50%. */
    int fired_at = -1;
    for (int i = 0; i != 400 && fired_at < 0; ++i) {
        f->s.menu_ok += 4, f->s.stats.counter[HP_COUNTER_cache_hits] += 1;
        if (step(f) == 1 && f->ev[0].id == HP_ALERT_HotplateCacheHitRatioLow)
            fired_at = i;
    }
    /* The rate needs 60 s of history (half its 120 s window), then the condition must hold 120 s. */
    assert_int_equal(fired_at, 180);
    /* Back to 90%: resolves once the 120 s window's ratio is over 50% again. */
    int resolved_at = -1;
    for (int i = 0; i != 400 && resolved_at < 0; ++i) {
        f->s.menu_ok += 10, f->s.stats.counter[HP_COUNTER_cache_hits] += 9;
        if (step(f) == 1 && f->ev[0].firing == 0)
            resolved_at = i;
    }
    assert_true(resolved_at > 0 && resolved_at < 120);
}

static void test_rss_slope(void **state)
{
    fixture_t *f = *state;
    f->s.rss_bytes = 100e6;
    int fired_at = -1;
    for (int i = 0; i != 1200 && fired_at < 0; ++i) {
        f->s.rss_bytes += 131072;
        if (step(f) == 1 && f->ev[0].id == HP_ALERT_HotplateRssGrowing)
            fired_at = i;
    }
    /* A slope needs a minute of samples, then 900 s of `for:`. */
    assert_int_equal(fired_at, 960);
    assert_true(find(f, HP_ALERT_HotplateRssGrowing)->value > 131000 && find(f, HP_ALERT_HotplateRssGrowing)->value < 131200);
    assert_null(find(f, HP_ALERT_HotplateHeapGrowing)); /* no heap figures in this sample */
}

static void test_flat_rss_never_fires(void **state)
{
    fixture_t *f = *state;
    f->s.rss_bytes = 100e6;
    for (int i = 0; i != 1000; ++i) {
        f->s.rss_bytes = 100e6 + (i % 2) * 4e6; /* noisy but flat */
        assert_int_equal(step(f), 0);
    }
    assert_null(find(f, HP_ALERT_HotplateRssGrowing));
}

static void test_pool_and_cpu(void **state)
{
    fixture_t *f = *state;
    f->s.stats.pool_size = 8;
    int pool_fired = -1, cpu_fired = -1, timeouts_fired = -1;
    for (int i = 0; i != 400; ++i) {
        f->s.stats.gauge[HP_GAUGE_pool_in_use] = 8;
        f->s.stats.counter[HP_COUNTER_pool_timeouts] += 1;
        f->s.cpu_s += 1.8; /* 90% of 2 CPUs */
        size_t n = step(f);
        for (size_t k = 0; k != n; ++k) {
            if (f->ev[k].id == HP_ALERT_HotplateDbPoolSaturated)
                pool_fired = i;
            if (f->ev[k].id == HP_ALERT_HotplateCpuHigh)
                cpu_fired = i;
            if (f->ev[k].id == HP_ALERT_HotplateDbPoolTimeouts)
                timeouts_fired = i;
        }
    }
    assert_int_equal(pool_fired, 60);
    assert_int_equal(timeouts_fired, 30 + 60); /* a rate from 30 s of history, then 60 s of `for:` */
    assert_int_equal(cpu_fired, 30 + 300);
}

static void test_slow_statements_per_statement(void **state)
{
    fixture_t *f = *state;
    f->s.num_stmts = 2;
    f->s.stmts[0].name = "order_history";
    f->s.stmts[0].slow_per_s = 3;
    f->s.stmts[1].name = "menu_get";
    f->s.stmts[1].slow_per_s = 0.5;
    step(f);
    const hp_alert_active_t *x = find(f, HP_ALERT_HotplateSlowStatements);
    assert_non_null(x);
    assert_string_equal(x->subject, "order_history");
    assert_int_equal(f->a.num_active, 1);
}

static void test_active_table_is_bounded(void **state)
{
    fixture_t *f = *state;
    f->s.num_stmts = HP_PROBE_MAX_STMTS;
    static char names[HP_PROBE_MAX_STMTS][16];
    for (size_t i = 0; i != HP_PROBE_MAX_STMTS; ++i) {
        snprintf(names[i], sizeof(names[i]), "s%zu", i);
        f->s.stmts[i].name = names[i];
        f->s.stmts[i].slow_per_s = 5;
    }
    f->s.stats.hist[HP_HIST_loop_lag].p99_ns[1] = 1000000000; /* 1 s: one more alert than the table holds */
    step(f);
    assert_int_equal(f->a.num_active, HP_ALERT_MAX_ACTIVE);
    assert_true(f->a.dropped_active >= 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_rules_match_the_list),
        T(test_latency_pending_then_firing_then_resolved),
        T(test_pending_that_clears_never_fires),
        T(test_guard_keeps_quiet_routes_out),
        T(test_error_rate_is_critical),
        T(test_spike_fires_at_once_against_its_baseline),
        T(test_cache_ratio_from_counters),
        T(test_rss_slope),
        T(test_flat_rss_never_fires),
        T(test_pool_and_cpu),
        T(test_slow_statements_per_statement),
        T(test_active_table_is_bounded),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
