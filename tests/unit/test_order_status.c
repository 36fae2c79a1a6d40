/*
 * Unit tests of services/order_status: names both ways, and the complete
 * from x to x actor table of transitions against an explicit list of the
 * allowed ones, so that any new edge in the machine fails here until the list
 * says it is intended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/order_status.h"

static const char *const NAMES[HP_ST__COUNT] = {
    [HP_ST_PLACED] = "placed",       [HP_ST_ACCEPTED] = "accepted",   [HP_ST_PREPARING] = "preparing", [HP_ST_READY] = "ready",
    [HP_ST_PICKED_UP] = "picked_up", [HP_ST_DELIVERED] = "delivered", [HP_ST_CANCELLED] = "cancelled",
};

static void test_names(void **state)
{
    (void)state;
    for (int st = 0; st < HP_ST__COUNT; st++)
        assert_string_equal(hp_status_name((hp_order_status_t)st), NAMES[st]);
    assert_null(hp_status_name(HP_ST__COUNT));
    assert_null(hp_status_name((hp_order_status_t)-1));
}

static void test_parse_round_trip(void **state)
{
    (void)state;
    for (int st = 0; st < HP_ST__COUNT; st++) {
        hp_order_status_t out = HP_ST__COUNT;
        const char *name = hp_status_name((hp_order_status_t)st);
        assert_int_equal(hp_status_parse(name, strlen(name), &out), 0);
        assert_int_equal(out, st);
    }
}

/* The length bounds the read: a name inside a longer buffer parses without a NUL. */
static void test_parse_is_length_bounded(void **state)
{
    (void)state;
    hp_order_status_t out = HP_ST__COUNT;
    const char buf[] = {'r', 'e', 'a', 'd', 'y', 'X'};
    assert_int_equal(hp_status_parse(buf, 5, &out), 0);
    assert_int_equal(out, HP_ST_READY);
    assert_int_equal(hp_status_parse(buf, 6, &out), -1);
    assert_int_equal(hp_status_parse("picked_up_", 9, &out), 0);
    assert_int_equal(out, HP_ST_PICKED_UP);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          "Placed",   "PLACED",   "placed ",     " placed", "plac",       "placedx",
        "picked-up", "pickedup", "canceled", "delivered\n", "new",     "accepted\t", "ready!",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hp_order_status_t out = HP_ST_DELIVERED;
        assert_int_equal(hp_status_parse(bad[i], strlen(bad[i]), &out), -1);
        assert_int_equal(out, HP_ST_DELIVERED); /* untouched on failure */
    }
    /* An embedded NUL is a byte like any other. */
    hp_order_status_t out;
    assert_int_equal(hp_status_parse("ready\0", 6, &out), -1);
    assert_int_equal(hp_status_parse(NULL, 0, &out), -1);
}

/* Every allowed (from, to, actor); everything else must be refused. */
static const struct {
    hp_order_status_t from, to;
    hp_actor_t actor;
} ALLOWED[] = {
    {HP_ST_PLACED, HP_ST_ACCEPTED, HP_ACTOR_OWNER},       {HP_ST_ACCEPTED, HP_ST_PREPARING, HP_ACTOR_OWNER},
    {HP_ST_PREPARING, HP_ST_READY, HP_ACTOR_OWNER},       {HP_ST_READY, HP_ST_PICKED_UP, HP_ACTOR_OWNER},
    {HP_ST_PICKED_UP, HP_ST_DELIVERED, HP_ACTOR_OWNER},   {HP_ST_PLACED, HP_ST_CANCELLED, HP_ACTOR_OWNER},
    {HP_ST_ACCEPTED, HP_ST_CANCELLED, HP_ACTOR_OWNER},    {HP_ST_PLACED, HP_ST_CANCELLED, HP_ACTOR_CUSTOMER},
    {HP_ST_ACCEPTED, HP_ST_CANCELLED, HP_ACTOR_CUSTOMER},
};

static int expected_allowed(hp_order_status_t from, hp_order_status_t to, hp_actor_t actor)
{
    for (size_t i = 0; i < sizeof(ALLOWED) / sizeof(ALLOWED[0]); i++) {
        if (ALLOWED[i].from == from && ALLOWED[i].to == to && ALLOWED[i].actor == actor)
            return 1;
    }
    return 0;
}

static void test_transition_table(void **state)
{
    (void)state;
    static const hp_actor_t actors[] = {HP_ACTOR_CUSTOMER, HP_ACTOR_OWNER};
    int allowed = 0;
    for (int from = 0; from < HP_ST__COUNT; from++) {
        for (int to = 0; to < HP_ST__COUNT; to++) {
            for (size_t a = 0; a < 2; a++) {
                int got = hp_status_transition_allowed((hp_order_status_t)from, (hp_order_status_t)to, actors[a]);
                int want = expected_allowed((hp_order_status_t)from, (hp_order_status_t)to, actors[a]);
                if (got != want)
                    fail_msg("%s -> %s by %s: got %d, want %d", NAMES[from], NAMES[to], a ? "owner" : "customer", got, want);
                allowed += got;
            }
        }
    }
    assert_int_equal(allowed, sizeof(ALLOWED) / sizeof(ALLOWED[0]));
}

/* Spot checks that read as the rules, in case the table above is ever edited wrongly. */
static void test_transition_rules(void **state)
{
    (void)state;
    assert_true(hp_status_transition_allowed(HP_ST_PLACED, HP_ST_ACCEPTED, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed(HP_ST_PLACED, HP_ST_ACCEPTED, HP_ACTOR_CUSTOMER));
    assert_false(hp_status_transition_allowed(HP_ST_PLACED, HP_ST_PREPARING, HP_ACTOR_OWNER)); /* no skipping */
    assert_false(hp_status_transition_allowed(HP_ST_ACCEPTED, HP_ST_PLACED, HP_ACTOR_OWNER));  /* no going back */
    assert_false(hp_status_transition_allowed(HP_ST_PREPARING, HP_ST_CANCELLED, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed(HP_ST_PREPARING, HP_ST_CANCELLED, HP_ACTOR_CUSTOMER));
    assert_false(hp_status_transition_allowed(HP_ST_DELIVERED, HP_ST_CANCELLED, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed(HP_ST_CANCELLED, HP_ST_CANCELLED, HP_ACTOR_CUSTOMER));
    assert_false(hp_status_transition_allowed(HP_ST_CANCELLED, HP_ST_PLACED, HP_ACTOR_OWNER));
}

static void test_transition_out_of_range(void **state)
{
    (void)state;
    assert_false(hp_status_transition_allowed(HP_ST__COUNT, HP_ST_CANCELLED, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed(HP_ST_PLACED, HP_ST__COUNT, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed((hp_order_status_t)-1, HP_ST_ACCEPTED, HP_ACTOR_OWNER));
    assert_false(hp_status_transition_allowed(HP_ST_PLACED, HP_ST_CANCELLED, (hp_actor_t)7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_parse_is_length_bounded),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_transition_rules),
        cmocka_unit_test(test_transition_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
