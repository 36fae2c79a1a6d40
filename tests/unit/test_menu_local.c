/*
 * Unit tests of services/menu_local: a copy is served without being copied,
 * by a reference linked into the request's pool, and that reference keeps the
 * document a response is sending alive and unchanged while the slot moves on
 * to a newer one; a PATCH's generation and the age limit end a copy. The
 * sanitized build runs these too, so a document freed while a pool still held
 * it, or never freed, fails there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/menu_local.h"

static const uint64_t ms = 1000000u;

static int teardown(void **state)
{
    (void)state;
    hp_menu_local_thread_dispose(NULL);
    return 0;
}

static void test_a_hit_is_the_copy_itself(void **state)
{
    (void)state;
    uint64_t gen = hp_menu_local_generation(7);
    hp_menu_local_put(7, gen, 1000 * ms, "{\"v\":1}", 7);
    h2o_mem_pool_t a, b;
    h2o_mem_init_pool(&a);
    h2o_mem_init_pool(&b);
    h2o_iovec_t da, db;
    assert_int_equal(hp_menu_local_get(7, 1000 * ms + 1, &a, &da), 1);
    assert_int_equal(hp_menu_local_get(7, 1000 * ms + 2, &b, &db), 1);
    /* Two responses share one document: no byte was copied for either. */
    assert_ptr_equal(da.base, db.base);
    assert_int_equal(da.len, 7);
    assert_memory_equal(da.base, "{\"v\":1}", 7);
    h2o_mem_clear_pool(&a);
    h2o_mem_clear_pool(&b);
}

static void test_a_served_document_outlives_its_slot(void **state)
{
    (void)state;
    uint64_t gen = hp_menu_local_generation(9);
    hp_menu_local_put(9, gen, 1000 * ms, "old menu", 8);
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t sending;
    assert_int_equal(hp_menu_local_get(9, 1000 * ms, &pool, &sending), 1);
    /* A newer document arrives while the response is still being written. */
    hp_menu_local_put(9, gen, 1500 * ms, "new menu!", 9);
    assert_memory_equal(sending.base, "old menu", 8);
    h2o_iovec_t now;
    assert_int_equal(hp_menu_local_get(9, 1500 * ms, &pool, &now), 1);
    assert_ptr_not_equal(now.base, sending.base);
    assert_memory_equal(now.base, "new menu!", 9);
    /* The thread's table goes first (a worker stopping mid-response): the pool still holds both. */
    hp_menu_local_thread_dispose(NULL);
    assert_memory_equal(sending.base, "old menu", 8);
    assert_memory_equal(now.base, "new menu!", 9);
    h2o_mem_clear_pool(&pool);
}

static void test_a_patch_and_age_end_a_copy(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t d;
    uint64_t gen = hp_menu_local_generation(11);
    hp_menu_local_put(11, gen, 1000 * ms, "menu", 4);
    assert_int_equal(hp_menu_local_get(11, (1000 + HP_MENU_LOCAL_MAX_AGE_MS) * ms - 1, &pool, &d), 1);
    assert_int_equal(hp_menu_local_get(11, (1000 + HP_MENU_LOCAL_MAX_AGE_MS) * ms, &pool, &d), 0);
    hp_menu_local_put(11, gen, 3000 * ms, "menu", 4);
    hp_menu_local_invalidate(11);
    assert_int_equal(hp_menu_local_get(11, 3000 * ms, &pool, &d), 0);
    /* A lookup that began before the PATCH stores nothing: its copy would be stale at once. */
    assert_int_equal(hp_menu_local_put(11, gen, 3000 * ms, "menu", 4), 0);
    assert_int_equal(hp_menu_local_get(11, 3000 * ms, &pool, &d), 0);
    /* Nor does a document over the size bound; one that is stored is what the next lookup returns. */
    static char big[HP_MENU_LOCAL_MAX_DOC + 1];
    assert_int_equal(hp_menu_local_put(11, hp_menu_local_generation(11), 3000 * ms, big, sizeof(big)), 0);
    assert_int_equal(hp_menu_local_put(11, hp_menu_local_generation(11), 3000 * ms, "fresh", 5), 1);
    assert_int_equal(hp_menu_local_get(11, 3000 * ms, &pool, &d), 1);
    assert_memory_equal(d.base, "fresh", 5);
    /* Another restaurant in the same slot is a miss, not its neighbour's menu. */
    hp_menu_local_put(11, hp_menu_local_generation(11), 3000 * ms, "menu", 4);
    assert_int_equal(hp_menu_local_get(11 + HP_MENU_LOCAL_SLOTS, 3000 * ms, &pool, &d), 0);
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_hit_is_the_copy_itself, teardown),
        cmocka_unit_test_teardown(test_a_served_document_outlives_its_slot, teardown),
        cmocka_unit_test_teardown(test_a_patch_and_age_end_a_copy, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
