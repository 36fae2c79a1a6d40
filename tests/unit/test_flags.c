/*
 * Unit tests of common/flags: the defaults of HP_FLAG_LIST, setting enum and
 * integer flags from text (exact choices, decimal digits in range, nothing
 * else), the comma-separated HOTPLATE_FLAGS list, and that every value prints
 * back as the text that sets it.
 *
 * Flags are process-wide, so every test starts from hp_flags_init().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/flags.h"

static int reset(void **state)
{
    (void)state;
    hp_flags_init();
    return 0;
}

/* Sets name=value from NUL-terminated strings. */
static int set(const char *name, const char *value, char *err, size_t errlen)
{
    return hp_flag_set(name, strlen(name), value, strlen(value), err, errlen);
}

static void assert_set_refused(const char *name, const char *value, hp_flag_id_t id)
{
    char err[128] = "";
    int before = hp_flag_get(id);
    if (set(name, value, err, sizeof(err)) != -1)
        fail_msg("%s=\"%s\" accepted", name, value);
    assert_true(err[0] != '\0');
    assert_int_equal(hp_flag_get(id), before);
}

/* Each value of bad for name is refused and leaves flag id as it was. */
static void assert_all_refused(const char *name, hp_flag_id_t id, const char *const *bad, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        assert_set_refused(name, bad[i], id);
}

/* A flag set from text, and the value it must hold after. */
typedef struct {
    const char *name, *value;
    hp_flag_id_t id;
    int want;
} flag_set_case_t;

static void assert_all_set(const flag_set_case_t *cases, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        char err[128];
        if (set(cases[i].name, cases[i].value, err, sizeof(err)) != 0)
            fail_msg("%s=%s refused: %s", cases[i].name, cases[i].value, err);
        assert_int_equal(hp_flag_get(cases[i].id), cases[i].want);
    }
}

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- defaults --------------------------------------------------------------- */

/* The defaults docs/ and HP_FLAG_LIST document. */
static void assert_documented_defaults(void)
{
    assert_int_equal(hp_flag_get(HP_FLAG_menu_cache), HP_menu_cache_local);
    assert_int_equal(hp_flag_get(HP_FLAG_order_total), HP_order_total_once);
    assert_int_equal(hp_flag_get(HP_FLAG_payment_latency_ms), 40);
    assert_int_equal(hp_flag_get(HP_FLAG_payment_failure_pct), 0);
}

static void test_init_sets_documented_defaults(void **state)
{
    (void)state;
    assert_documented_defaults();
}

static void test_init_undoes_earlier_sets(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(
        hp_flags_parse_list("menu_cache=off,order_total=naive,payment_latency_ms=5,payment_failure_pct=100", err, sizeof(err)), 0);
    hp_flags_init();
    assert_documented_defaults();
}

static void test_defs_name_every_flag(void **state)
{
    (void)state;
    static const char *const names[HP_FLAG__COUNT] = {
        "menu_cache",     "orders_user_id_index", "order_history", "order_total",        "checkout_txn",        "db_pool",
        "leak",           "request_log",          "replica_reads", "payment_latency_ms", "payment_failure_pct", "slow_request_ms",
        "profile_every_s"};
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *def = hp_flag_def((hp_flag_id_t)id);
        assert_string_equal(def->name, names[id]);
        assert_non_null(def->doc);
        assert_true(def->doc[0] != '\0');
    }
    assert_int_equal(hp_flag_def(HP_FLAG_menu_cache)->type, HP_FLAG_ENUM);
    assert_int_equal(hp_flag_def(HP_FLAG_payment_latency_ms)->type, HP_FLAG_INT);
}

/* --- hp_flag_set: enums ----------------------------------------------------- */

/* An enum flag is set by the name of a choice. */
static const flag_set_case_t enum_sets[] = {
    {"menu_cache", "off", HP_FLAG_menu_cache, HP_menu_cache_off},
    {"menu_cache", "redis", HP_FLAG_menu_cache, HP_menu_cache_redis},
    {"order_total", "naive", HP_FLAG_order_total, HP_order_total_naive},
    {"order_total", "once", HP_FLAG_order_total, HP_order_total_once},
};

static void test_set_enum_by_choice_name(void **state)
{
    (void)state;
    assert_all_set(enum_sets, NELEMS(enum_sets));
}

static void test_set_enum_refuses_anything_but_a_choice(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "OFF", "Off", "of", "offf", " off", "off ", "1", "0", "redis|off", "|", "red"};
    assert_all_refused("menu_cache", HP_FLAG_menu_cache, bad, NELEMS(bad));
}

/* --- hp_flag_set: integers -------------------------------------------------- */

/* An integer flag is set by decimal digits, to any value in its range, its ends included. */
static const flag_set_case_t int_sets[] = {
    {"payment_latency_ms", "0", HP_FLAG_payment_latency_ms, 0},
    {"payment_latency_ms", "60000", HP_FLAG_payment_latency_ms, 60000},
    {"payment_latency_ms", "123", HP_FLAG_payment_latency_ms, 123},
    {"payment_failure_pct", "100", HP_FLAG_payment_failure_pct, 100},
};

static void test_set_int_in_range(void **state)
{
    (void)state;
    assert_all_set(int_sets, NELEMS(int_sets));
}

static void test_set_int_refuses_out_of_range(void **state)
{
    (void)state;
    assert_set_refused("payment_latency_ms", "60001", HP_FLAG_payment_latency_ms);
    assert_set_refused("payment_failure_pct", "101", HP_FLAG_payment_failure_pct);
    assert_set_refused("payment_failure_pct", "999999999", HP_FLAG_payment_failure_pct);
}

static void test_set_int_refuses_non_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "+5", "-1", "-0", " 5", "5 ", "5ms", "0x10", "1e3", "1.0", "five", "\xd9\xa5"};
    assert_all_refused("payment_latency_ms", HP_FLAG_payment_latency_ms, bad, NELEMS(bad));
}

static void test_set_int_refuses_ten_digits(void **state)
{
    (void)state;
    /* Ten digits are refused before their value is looked at, so nothing can overflow. */
    static const char *const bad[] = {"0000000040", "9999999999", "99999999999999999999999"};
    assert_all_refused("payment_latency_ms", HP_FLAG_payment_latency_ms, bad, NELEMS(bad));
}

/* A refusal says what the flag takes: an enum's choices, an integer's range. */
static void test_set_errors_say_what_the_flag_takes(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(set("order_total", "fast", err, sizeof(err)), -1);
    assert_string_equal(err, "flag order_total takes once|naive");
    assert_int_equal(set("payment_failure_pct", "101", err, sizeof(err)), -1);
    assert_string_equal(err, "flag payment_failure_pct takes 0..100");
}

static void test_set_reads_only_the_given_lengths(void **state)
{
    (void)state;
    char err[128];
    /* name_len 10 and value_len 3 cut "menu_cache=offline" into menu_cache / off. */
    static const char arg[] = "menu_cache=offline";
    assert_int_equal(hp_flag_set(arg, 10, arg + 11, 3, err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_menu_cache), HP_menu_cache_off);
    static const char num[] = "payment_failure_pct=1234";
    assert_int_equal(hp_flag_set(num, 19, num + 20, 2, err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_payment_failure_pct), 12);
}

/* --- hp_flag_set: names ----------------------------------------------------- */

static void test_set_unknown_name(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "nope", "menu", "menu_cachex", "MENU_CACHE", " menu_cache", "menu_cache "};
    for (size_t i = 0; i != NELEMS(bad); ++i) {
        char err[128] = "";
        if (set(bad[i], "off", err, sizeof(err)) != -1)
            fail_msg("flag \"%s\" accepted", bad[i]);
        char want[128];
        snprintf(want, sizeof(want), "unknown flag %s", bad[i]);
        assert_string_equal(err, want);
    }
    assert_int_equal(hp_flag_get(HP_FLAG_menu_cache), HP_menu_cache_local);
}

static void test_set_unknown_name_message_is_bounded(void **state)
{
    (void)state;
    char name[300], err[128];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(set(name, "1", err, sizeof(err)), -1);
    assert_int_equal(strlen(err), strlen("unknown flag ") + 64);
    /* A tiny err buffer is still NUL-terminated. */
    char tiny[8];
    assert_int_equal(set("nope", "1", tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "unknown");
}

/* --- hp_flags_parse_list ---------------------------------------------------- */

static void test_list_sets_each_entry(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flags_parse_list("menu_cache=off,payment_latency_ms=7", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_menu_cache), HP_menu_cache_off);
    assert_int_equal(hp_flag_get(HP_FLAG_payment_latency_ms), 7);
    assert_int_equal(hp_flag_get(HP_FLAG_order_total), HP_order_total_once);
}

/* The index flag acts on the database at startup only when the operator chose it; see services/pgindex.c. */
static void test_list_marks_flags_explicit(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flag_explicit(HP_FLAG_orders_user_id_index), 0);
    assert_int_equal(hp_flags_parse_list("orders_user_id_index=off", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_explicit(HP_FLAG_orders_user_id_index), 1);
    assert_int_equal(hp_flag_explicit(HP_FLAG_menu_cache), 0);
    /* A runtime set is not a startup choice; a failed list marks nothing it refused. */
    assert_int_equal(set("menu_cache", "off", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_explicit(HP_FLAG_menu_cache), 0);
    assert_int_equal(hp_flags_parse_list("leak=maybe", err, sizeof(err)), -1);
    assert_int_equal(hp_flag_explicit(HP_FLAG_leak), 0);
    hp_flags_init();
    assert_int_equal(hp_flag_explicit(HP_FLAG_orders_user_id_index), 0);
}

static void test_list_single_entry(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flags_parse_list("order_total=naive", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_order_total), HP_order_total_naive);
}

static void test_list_later_entry_wins(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flags_parse_list("payment_latency_ms=1,payment_latency_ms=2", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_payment_latency_ms), 2);
}

static void test_list_skips_empty_entries(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flags_parse_list("", err, sizeof(err)), 0);
    assert_int_equal(hp_flags_parse_list(",", err, sizeof(err)), 0);
    assert_int_equal(hp_flags_parse_list("menu_cache=off,", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_menu_cache), HP_menu_cache_off);
    assert_int_equal(hp_flags_parse_list(",,order_total=naive,,", err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(HP_FLAG_order_total), HP_order_total_naive);
}

static void test_list_entry_without_equals_refused(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(hp_flags_parse_list("menu_cache", err, sizeof(err)), -1);
    assert_string_equal(err, "expected name=value, got menu_cache");
    assert_int_equal(hp_flags_parse_list("menu_cache=off,order_total", err, sizeof(err)), -1);
    assert_string_equal(err, "expected name=value, got order_total");
}

static void test_list_bad_entries_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"=off",
                                      "menu_cache=",
                                      "menu_cache=off=on",
                                      "menu_cache = off",
                                      "nope=1",
                                      "payment_latency_ms=-1",
                                      "menu_cache=off;order_total=naive"};
    for (size_t i = 0; i != NELEMS(bad); ++i) {
        char err[128] = "";
        if (hp_flags_parse_list(bad[i], err, sizeof(err)) != -1)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
}

/* --- hp_flag_value_str ------------------------------------------------------ */

/* Runs check on every flag, or (any_type 0) on every flag of the given type. */
static void for_each_flag(int any_type, hp_flag_type_t type, void (*check)(hp_flag_id_t id, const hp_flag_def_t *def))
{
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *def = hp_flag_def((hp_flag_id_t)id);
        if (any_type || def->type == type)
            check((hp_flag_id_t)id, def);
    }
}

static void default_round_trips(hp_flag_id_t id, const hp_flag_def_t *def)
{
    char buf[64], err[128];
    assert_ptr_equal(hp_flag_value_str(id, buf, sizeof(buf)), buf);
    assert_string_equal(buf, def->def);
    /* And the printed text sets the same value again. */
    int before = hp_flag_get(id);
    assert_int_equal(set(def->name, buf, err, sizeof(err)), 0);
    assert_int_equal(hp_flag_get(id), before);
}

static void test_value_str_round_trips_every_default(void **state)
{
    (void)state;
    for_each_flag(1, HP_FLAG_ENUM, default_round_trips);
}

static void every_choice_round_trips(hp_flag_id_t id, const hp_flag_def_t *def)
{
    const char *p = def->choices;
    for (int index = 0;; ++index) {
        size_t len = strcspn(p, "|");
        char choice[64], buf[64], err[128];
        snprintf(choice, sizeof(choice), "%.*s", (int)len, p);
        assert_int_equal(set(def->name, choice, err, sizeof(err)), 0);
        assert_int_equal(hp_flag_get(id), index);
        assert_string_equal(hp_flag_value_str(id, buf, sizeof(buf)), choice);
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
}

static void test_value_str_round_trips_every_enum_choice(void **state)
{
    (void)state;
    for_each_flag(0, HP_FLAG_ENUM, every_choice_round_trips);
}

static void range_ends_round_trip(hp_flag_id_t id, const hp_flag_def_t *def)
{
    long min, max;
    assert_int_equal(sscanf(def->choices, "%ld..%ld", &min, &max), 2);
    long ends[] = {min, max};
    for (int k = 0; k != 2; ++k) {
        char text[32], buf[32], err[128];
        snprintf(text, sizeof(text), "%ld", ends[k]);
        assert_int_equal(set(def->name, text, err, sizeof(err)), 0);
        assert_string_equal(hp_flag_value_str(id, buf, sizeof(buf)), text);
    }
    char above[32];
    snprintf(above, sizeof(above), "%ld", max + 1);
    assert_set_refused(def->name, above, id);
}

static void test_value_str_round_trips_int_range_ends(void **state)
{
    (void)state;
    for_each_flag(0, HP_FLAG_INT, range_ends_round_trip);
}

static void test_value_str_truncates_to_buffer(void **state)
{
    (void)state;
    char buf[3];
    assert_string_equal(hp_flag_value_str(HP_FLAG_menu_cache, buf, sizeof(buf)), "lo");
    char err[128];
    assert_int_equal(set("payment_latency_ms", "60000", err, sizeof(err)), 0);
    assert_string_equal(hp_flag_value_str(HP_FLAG_payment_latency_ms, buf, sizeof(buf)), "60");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, reset)
    const struct CMUnitTest tests[] = {
        T(test_init_sets_documented_defaults),
        T(test_init_undoes_earlier_sets),
        T(test_defs_name_every_flag),
        T(test_set_enum_by_choice_name),
        T(test_set_enum_refuses_anything_but_a_choice),
        T(test_set_int_in_range),
        T(test_set_int_refuses_out_of_range),
        T(test_set_int_refuses_non_digits),
        T(test_set_int_refuses_ten_digits),
        T(test_set_errors_say_what_the_flag_takes),
        T(test_set_reads_only_the_given_lengths),
        T(test_set_unknown_name),
        T(test_set_unknown_name_message_is_bounded),
        T(test_list_sets_each_entry),
        T(test_list_marks_flags_explicit),
        T(test_list_single_entry),
        T(test_list_later_entry_wins),
        T(test_list_skips_empty_entries),
        T(test_list_entry_without_equals_refused),
        T(test_list_bad_entries_refused),
        T(test_value_str_round_trips_every_default),
        T(test_value_str_round_trips_every_enum_choice),
        T(test_value_str_round_trips_int_range_ends),
        T(test_value_str_truncates_to_buffer),
    };
#undef T
    return cmocka_run_group_tests(tests, 0, 0);
}
