/*
 * Unit tests of services/menu_flight: who leads, who follows and in which
 * order, what a leader's departure leaves behind, and that ending a flight
 * detaches everyone and takes it out of the table (many restaurants at once,
 * so hash chains with several flights are walked and unlinked in the middle).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/menu_flight.h"

/*
 * Every test starts from an empty table and zeroed waiters, as a worker's
 * table and its requests' waiters start; setup resets them so that each test
 * says only what it does to them.
 */
static hp_menu_flight_table_t t;
static hp_menu_waiter_t w[4], a, b, late;

static int setup(void **state)
{
    (void)state;
    memset(&t, 0, sizeof(t));
    memset(w, 0, sizeof(w));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&late, 0, sizeof(late));
    return 0;
}

/* The first n waiters join restaurant rid's flight, in order. */
static void join_all(int64_t rid, int n)
{
    for (int i = 0; i != n; ++i)
        hp_menu_flight_join(&t, rid, &w[i]);
}

static void test_first_leads_rest_follow_in_order(void **state)
{
    (void)state;
    assert_int_equal(hp_menu_flight_join(&t, 7, &w[0]), 1);
    for (int i = 1; i != 4; ++i)
        assert_int_equal(hp_menu_flight_join(&t, 7, &w[i]), 0);
    hp_menu_flight_t *f = hp_menu_flight_find(&t, 7);
    assert_non_null(f);
    assert_ptr_equal(f->leader, &w[0]);
    assert_int_equal(f->num_followers, 3);
    assert_int_equal(t.count, 1);
    for (int i = 0; i != 4; ++i)
        assert_ptr_equal(w[i].flight, f);

    /* Followers come out oldest first, detached. */
    for (int i = 1; i != 4; ++i) {
        hp_menu_waiter_t *p = hp_menu_flight_pop(f);
        assert_ptr_equal(p, &w[i]);
        assert_null(p->flight);
    }
    assert_null(hp_menu_flight_pop(f));
    hp_menu_flight_end(&t, f);
    assert_null(w[0].flight);
    assert_null(hp_menu_flight_find(&t, 7));
    assert_int_equal(t.count, 0);
}

static void test_restaurants_fly_separately(void **state)
{
    (void)state;
    assert_int_equal(hp_menu_flight_join(&t, 1, &a), 1);
    assert_int_equal(hp_menu_flight_join(&t, 2, &b), 1);
    assert_ptr_not_equal(a.flight, b.flight);
    assert_int_not_equal(a.flight->seq, b.flight->seq);
    hp_menu_flight_end(&t, a.flight);
    assert_null(hp_menu_flight_find(&t, 1));
    assert_ptr_equal(hp_menu_flight_find(&t, 2), b.flight);
    hp_menu_flight_end(&t, b.flight);
    assert_int_equal(t.count, 0);
}

static void test_follower_leaves(void **state)
{
    (void)state;
    join_all(9, 3);
    hp_menu_flight_t *f = w[0].flight;
    assert_int_equal(hp_menu_flight_leave(&w[1]), 0);
    assert_null(w[1].flight);
    assert_int_equal(hp_menu_flight_leave(&w[1]), 0); /* idempotent */
    assert_int_equal(f->num_followers, 1);
    assert_ptr_equal(f->leader, &w[0]);
    assert_ptr_equal(hp_menu_flight_pop(f), &w[2]);
    hp_menu_flight_end(&t, f);
}

static void test_leader_leaves_oldest_follower_promoted(void **state)
{
    (void)state;
    join_all(5, 3);
    hp_menu_flight_t *f = w[0].flight;
    uint64_t seq = f->seq;

    assert_int_equal(hp_menu_flight_leave(&w[0]), 1);
    assert_null(f->leader);
    /* A newcomer to a leaderless flight with followers queues behind them rather than leading. */
    assert_int_equal(hp_menu_flight_join(&t, 5, &late), 0);
    assert_ptr_equal(hp_menu_flight_promote(f), &w[1]);
    assert_ptr_equal(f->leader, &w[1]);
    assert_ptr_equal(w[1].flight, f);
    assert_int_equal(f->num_followers, 2);
    /* The flight (and the lease its sequence number names) is the same one. */
    assert_ptr_equal(hp_menu_flight_find(&t, 5), f);
    assert_int_equal(f->seq, seq);

    /* The new leader leaves too, then the last followers: promotion runs dry. */
    assert_int_equal(hp_menu_flight_leave(&w[1]), 1);
    assert_ptr_equal(hp_menu_flight_promote(f), &w[2]);
    assert_int_equal(hp_menu_flight_leave(&w[2]), 1);
    assert_int_equal(hp_menu_flight_leave(&late), 0);
    assert_null(hp_menu_flight_promote(f));
    hp_menu_flight_end(&t, f);
    assert_int_equal(t.count, 0);
}

static void test_leaderless_empty_flight_is_led_by_next(void **state)
{
    (void)state;
    hp_menu_flight_join(&t, 3, &a);
    hp_menu_flight_t *f = a.flight;
    hp_menu_flight_leave(&a);
    assert_int_equal(hp_menu_flight_join(&t, 3, &b), 1);
    assert_ptr_equal(b.flight, f);
    hp_menu_flight_end(&t, f);
    assert_null(b.flight);
}

static void test_end_detaches_everyone(void **state)
{
    (void)state;
    join_all(11, 3);
    hp_menu_flight_end(&t, w[0].flight);
    for (int i = 0; i != 3; ++i)
        assert_null(w[i].flight);
    assert_int_equal(t.count, 0);
}

/* Many more restaurants than buckets: chains hold several flights, and flights are ended from the middle of them. */
static void test_many_restaurants_share_buckets(void **state)
{
    (void)state;
    enum { N = HP_MENU_FLIGHT_BUCKETS * 4 };
    static hp_menu_waiter_t many[N];
    memset(many, 0, sizeof(many));
    for (int i = 0; i != N; ++i)
        assert_int_equal(hp_menu_flight_join(&t, (int64_t)i * 3 + 1, &many[i]), 1);
    assert_int_equal(t.count, N);
    assert_int_equal(t.begun, N);
    for (int i = 0; i < N; i += 2)
        hp_menu_flight_end(&t, many[i].flight);
    for (int i = 0; i != N; ++i) {
        hp_menu_flight_t *f = hp_menu_flight_find(&t, (int64_t)i * 3 + 1);
        if (i % 2 == 0)
            assert_null(f);
        else
            assert_ptr_equal(f, many[i].flight);
    }
    for (int i = 1; i < N; i += 2)
        hp_menu_flight_end(&t, many[i].flight);
    assert_int_equal(t.count, 0);
    for (int k = 0; k != HP_MENU_FLIGHT_BUCKETS; ++k)
        assert_null(t.buckets[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_first_leads_rest_follow_in_order, setup),
        cmocka_unit_test_setup(test_restaurants_fly_separately, setup),
        cmocka_unit_test_setup(test_follower_leaves, setup),
        cmocka_unit_test_setup(test_leader_leaves_oldest_follower_promoted, setup),
        cmocka_unit_test_setup(test_leaderless_empty_flight_is_led_by_next, setup),
        cmocka_unit_test_setup(test_end_detaches_everyone, setup),
        cmocka_unit_test_setup(test_many_restaurants_share_buckets, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
