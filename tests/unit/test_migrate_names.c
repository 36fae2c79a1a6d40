/*
 * Unit tests of hp_migrate_parse_name (common/migrate): which directory entries
 * are migrations, which are ignored, and which are misnamed migrations that
 * must stop `hotplate migrate` before it touches the database.
 *
 * The ignored cases matter as much as the valid ones: seed.sql lives in the
 * migrations directory, so a parser that claimed it would break every run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/migrate.h"

static void test_valid_up_and_down(void **state)
{
    (void)state;
    hp_migrate_name_t id;

    assert_int_equal(hp_migrate_parse_name("0001_schema.up.sql", &id), HP_MIGRATE_FILE_UP);
    assert_int_equal(id.version, 1);
    assert_string_equal(id.name, "schema");

    assert_int_equal(hp_migrate_parse_name("0002_orders_user_id_index.down.sql", &id), HP_MIGRATE_FILE_DOWN);
    assert_int_equal(id.version, 2);
    assert_string_equal(id.name, "orders_user_id_index");

    assert_int_equal(hp_migrate_parse_name("9999_a1_b2.up.sql", &id), HP_MIGRATE_FILE_UP);
    assert_int_equal(id.version, 9999);
    assert_string_equal(id.name, "a1_b2");

    /* A single-character name and a NULL output are both fine. */
    assert_int_equal(hp_migrate_parse_name("0010_x.up.sql", NULL), HP_MIGRATE_FILE_UP);
}

static void test_ignored(void **state)
{
    (void)state;
    static const char *const names[] = {"seed.sql", "seed_orders.sql", "README.md", ".", "..", ".gitkeep", "schema.sql", "x"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_int_equal(hp_migrate_parse_name(names[i], NULL), HP_MIGRATE_FILE_IGNORED);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const names[] = {
        "0000_zero.up.sql",     /* version 0 means "nothing applied" */
        "001_short.up.sql",     /* three digits */
        "00001_long.up.sql",    /* five digits */
        "0001-dash.up.sql",     /* no underscore */
        "0001_.up.sql",         /* empty name */
        "0001_Upper.up.sql",    /* upper case */
        "0001_has-dash.up.sql", /* character outside [a-z0-9_] */
        "0001_has.dot.up.sql",  /* character outside [a-z0-9_] */
        "0001_x.sql",           /* neither up nor down */
        "0001_x.UP.sql",        /* suffix is case-sensitive */
        "0001_x.up.sql~",       /* editor backup */
        "0001_x.up.sql.orig",   /* patch leftover */
        "x_0001.up.sql",        /* claims to be an up file */
        "abcd_name.down.sql",   /* claims to be a down file */
        ".up.sql",              /* nothing but the suffix */
        "1",                    /* starts with a digit */
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        hp_migrate_name_t id = {.version = -7};
        assert_int_equal(hp_migrate_parse_name(names[i], &id), HP_MIGRATE_FILE_INVALID);
        /* The output is only written for valid names. */
        assert_int_equal(id.version, -7);
    }
}

static void test_name_length_limit(void **state)
{
    (void)state;
    char file[HP_MIGRATE_NAME_MAX + 32];
    hp_migrate_name_t id;

    memcpy(file, "0042_", 5);
    memset(file + 5, 'a', HP_MIGRATE_NAME_MAX);
    strcpy(file + 5 + HP_MIGRATE_NAME_MAX, ".up.sql");
    assert_int_equal(hp_migrate_parse_name(file, &id), HP_MIGRATE_FILE_UP);
    assert_int_equal(strlen(id.name), HP_MIGRATE_NAME_MAX);

    memset(file + 5, 'a', HP_MIGRATE_NAME_MAX + 1);
    strcpy(file + 5 + HP_MIGRATE_NAME_MAX + 1, ".up.sql");
    assert_int_equal(hp_migrate_parse_name(file, &id), HP_MIGRATE_FILE_INVALID);
}

static void test_dir_default(void **state)
{
    (void)state;
    assert_string_equal(hp_migrate_dir("x/y"), "x/y");
    unsetenv("HOTPLATE_MIGRATIONS_DIR");
    assert_string_equal(hp_migrate_dir(NULL), "migrations");
    setenv("HOTPLATE_MIGRATIONS_DIR", "", 1);
    assert_string_equal(hp_migrate_dir(NULL), "migrations");
    setenv("HOTPLATE_MIGRATIONS_DIR", "/opt/m", 1);
    assert_string_equal(hp_migrate_dir(NULL), "/opt/m");
    assert_string_equal(hp_migrate_dir("cli"), "cli");
    unsetenv("HOTPLATE_MIGRATIONS_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_up_and_down), cmocka_unit_test(test_ignored),     cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_name_length_limit), cmocka_unit_test(test_dir_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
