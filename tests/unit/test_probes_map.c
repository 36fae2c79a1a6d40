/*
 * test_probes_map: a thread's probes live in a mapping of their own, aligned
 * to 2 MiB and advised as transparent huge pages (runtime/probes.c), start
 * zeroed but for the window stamps, and are unmapped when freed. Whether the
 * kernel then backs them with huge pages depends on its free memory, so the
 * test asserts what the kernel promises deterministically: that the mapping
 * is eligible (smaps' THPeligible) wherever THP is not switched off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/probes.h"

/* @return the mode in brackets of /sys/kernel/mm/transparent_hugepage/enabled ("never" when it cannot be read) */
static void thp_mode(char *out, size_t len)
{
    snprintf(out, len, "never");
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f == NULL)
        return;
    char line[128];
    if (fgets(line, sizeof(line), f) != NULL) {
        char *open = strchr(line, '['), *close = open != NULL ? strchr(open, ']') : NULL;
        if (close != NULL)
            snprintf(out, len, "%.*s", (int)(close - open - 1), open + 1);
    }
    fclose(f);
}

/* @return the smaps value of `key` ("THPeligible:") for the mapping that starts at addr, or -1 when there is none */
static long smaps_field(const void *addr, const char *key)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    int in = 0;
    long v = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = lo == (uintptr_t)addr;
            continue;
        }
        if (in && strncmp(line, key, strlen(key)) == 0) {
            v = strtol(line + strlen(key), NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static void test_probes_are_aligned_zeroed_and_advised(void **state)
{
    (void)state;
    hp_probes_t *p = hp_probes_new();
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % ((uintptr_t)2 << 20), 0);
    /* Zero, as calloc's memory was, but for the slot stamps that mark a slot empty. */
    assert_int_equal(atomic_load(&p->routes[0].count), 0);
    assert_int_equal(atomic_load(&p->counters[0]), 0);
    assert_int_equal(atomic_load(&p->stmts[3].latency.total.count), 0);
    assert_int_equal(atomic_load(&p->stmts[3].latency.slot_epoch[0]), -1);
    assert_int_equal(atomic_load(&p->routes[1].slot_epoch[HP_ROUTE_SLOTS - 1]), -1);
    /* The last byte is inside the mapping: writing it must not fault. */
    p->slow[HP_SLOW_RING - 1].request_id[3] = 1;

    char mode[16];
    thp_mode(mode, sizeof(mode));
    long eligible = smaps_field(p, "THPeligible:");
    assert_true(eligible >= 0); /* the probes start a mapping of their own */
    if (strcmp(mode, "never") != 0)
        assert_int_equal(eligible, 1);
    hp_probes_free(p);
    assert_int_equal(smaps_field(p, "THPeligible:"), -1); /* unmapped */
    hp_probes_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probes_are_aligned_zeroed_and_advised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
