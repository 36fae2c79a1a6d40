/*
 * test_merge: profiling/merge.c over workers made here. A merge into a buffer
 * that holds an earlier merge (hp_stats_merge_again, the alerts' once a second)
 * clears only the snapshots that merge wrote; the result must be, byte for
 * byte, the merge into a zeroed buffer, whether the data grew or shrank since.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/router.h"
#include "profiling/merge.h"
#include "runtime/db.h"
#include "runtime/probes.h"
#include "runtime/thread.h"

static const hp_route_t routes[] = {{"GET", "/a", NULL, 0}, {"POST", "/b", NULL, 0}, {"GET", "/c/{id}", NULL, 0}};
static const char *const no_args[] = {NULL};
static const hp_db_stmt_def_t stmts[] = {{"s0", HP_STMT_READ, -1, no_args, "SELECT 0"}, {"s1", HP_STMT_READ, -1, no_args, "SELECT 1"}};

/* Records into a worker's probes: n values per route, statement, stage and histogram, spread over a few buckets. */
static void record(hp_thread_t *w, uint64_t n, uint64_t scale)
{
    hp_probes_t *p = w->probes;
    int64_t now_s = hp_probe_now_s();
    for (uint64_t i = 0; i != n; ++i) {
        uint64_t ns = (1000 + i * 37) * scale;
        hp_hist_window_record(&p->routes[i % 3].latency, ns, now_s);
        hp_probe_add(&p->routes[i % 3].count, 1);
        hp_hist_window_record(&p->stmts[i % 2].latency, ns / 2, now_s);
        hp_hist_window_record(&p->stages[i % HP_STAGE__COUNT], ns / 3, now_s);
        hp_hist_window_record(&p->hists[i % HP_HIST__COUNT], ns / 4, now_s);
        hp_probe_add(&p->counters[i % HP_COUNTER__COUNT], 1);
    }
}

static hp_thread_t workers[2];

static void fresh_workers(void)
{
    for (size_t t = 0; t != 2; ++t) {
        if (workers[t].probes != NULL)
            hp_probes_free(workers[t].probes);
        memset(&workers[t], 0, sizeof(workers[t]));
        workers[t].index = (int)t;
        workers[t].routes = routes;
        workers[t].num_routes = 3;
        workers[t].db_pool_size = 4;
        workers[t].db_readers = 2;
        workers[t].probes = hp_probes_new();
        assert_non_null(workers[t].probes);
    }
}

/* m merged again against a merge into a buffer of garbage (hp_stats_merge_from zeroes it), in one second of the clock. */
static void assert_same_as_fresh(hp_stats_t *again, hp_stats_t *fresh)
{
    for (int attempt = 0; attempt != 5; ++attempt) {
        memset(fresh, 0xa5, sizeof(*fresh));
        hp_stats_merge_from(again, workers, 2, 1);
        hp_stats_merge_from(fresh, workers, 2, 0);
        if (again->now_s == fresh->now_s)
            break; /* else the second turned between the two, and the windows with it */
    }
    assert_int_equal(again->now_s, fresh->now_s);
    assert_memory_equal(again, fresh, sizeof(*fresh));
}

static void test_merge_again_equals_a_fresh_merge(void **state)
{
    (void)state;
    hp_db_register(stmts, 2);
    hp_stats_t *again = malloc(sizeof(*again)), *fresh = malloc(sizeof(*fresh));
    assert_non_null(again);
    assert_non_null(fresh);
    fresh_workers();
    record(&workers[0], 500, 1);
    hp_stats_merge_from(again, workers, 2, 0);
    assert_true(again->route[0].latency.total.count > 0 && again->stmt[1].latency.win[0].count > 0);
    /* More data, on both workers. */
    record(&workers[0], 300, 7);
    record(&workers[1], 200, 3);
    assert_same_as_fresh(again, fresh);
    assert_int_equal(again->route[0].latency.total.count + again->route[1].latency.total.count +
                         again->route[2].latency.total.count,
                     1000);
    /* Less data: the workers start over, and every snapshot the last merge wrote must be empty again or smaller. */
    fresh_workers();
    record(&workers[1], 5, 100);
    assert_same_as_fresh(again, fresh);
    assert_int_equal(again->route[0].latency.total.count, 2);
    /* None at all. */
    fresh_workers();
    assert_same_as_fresh(again, fresh);
    assert_int_equal(again->hist[0].total.count, 0);
    free(again);
    free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_again_equals_a_fresh_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
