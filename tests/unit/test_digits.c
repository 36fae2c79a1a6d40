/*
 * Unit tests of the digit writers, common/base/hex.h and the writers of
 * common/base/decimal.h: every writer against snprintf's "%08x", "%016llx",
 * "%02x", "%" PRIu64 and "%" PRId64 on edge values (every power of ten and its
 * neighbours, the extremes), every single-nibble value in every position, and
 * a stream of pseudo-random values; and that nothing is written past the
 * digits.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/decimal.h"
#include "base/hex.h"

static uint64_t next_random(uint64_t *s)
{
    /* splitmix64: a fixed, reproducible stream of values with every bit pattern likely */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_u32(uint32_t v)
{
    char got[12], want[12];
    memset(got, '#', sizeof(got));
    hp_hex_u32(got, v);
    snprintf(want, sizeof(want), "%08x", v);
    assert_memory_equal(got, want, 8);
    assert_int_equal(got[8], '#'); /* no NUL and nothing else after the digits */
}

static void check_u64(uint64_t v)
{
    char got[20], want[20];
    memset(got, '#', sizeof(got));
    hp_hex_u64(got, v);
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)v);
    assert_memory_equal(got, want, 16);
    assert_int_equal(got[16], '#');
}

static void check_decimal(uint64_t u)
{
    char got[24], want[24];
    memset(got, '#', sizeof(got));
    size_t n = hp_decimal_u64(got, u);
    assert_int_equal(n, (size_t)snprintf(want, sizeof(want), "%" PRIu64, u));
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], '#');
    int64_t v = (int64_t)u; /* the same bits as a signed value: every negative number too */
    memset(got, '#', sizeof(got));
    n = hp_decimal_i64(got, v);
    assert_int_equal(n, (size_t)snprintf(want, sizeof(want), "%" PRId64, v));
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], '#');
}

static void test_u32_edges_and_each_nibble(void **state)
{
    (void)state;
    static const uint32_t edges[] = {0,           1,           9,           10,          15,
                                     16,          0x99999999u, 0xaaaaaaaau, 0x0f0f0f0fu, 0xf0f0f0f0u,
                                     0x7fffffffu, 0x80000000u, 0xffffffffu, 0x01234567u, 0x89abcdefu};
    for (size_t i = 0; i != sizeof(edges) / sizeof(edges[0]); ++i)
        check_u32(edges[i]);
    for (int pos = 0; pos != 8; ++pos)
        for (uint32_t n = 0; n != 16; ++n)
            check_u32(n << (4 * pos));
}

static void test_u64_edges(void **state)
{
    (void)state;
    check_u64(0);
    check_u64(UINT64_MAX);
    check_u64(0x0123456789abcdefull);
    check_u64(0xfedcba9876543210ull);
    check_u64(0x00000000ffffffffull);
    check_u64(0xffffffff00000000ull);
}

static void test_random_values(void **state)
{
    (void)state;
    uint64_t s = 42;
    for (int i = 0; i != 100000; ++i) {
        uint64_t v = next_random(&s);
        check_u64(v);
        check_u32((uint32_t)v);
        check_decimal(v);
        check_decimal(v >> (i % 64)); /* every decimal length */
    }
}

static void test_bytes_every_length(void **state)
{
    (void)state;
    uint8_t src[37];
    uint64_t s = 7;
    for (size_t i = 0; i != sizeof(src); ++i)
        src[i] = (uint8_t)next_random(&s);
    src[0] = 0x00, src[1] = 0xff, src[2] = 0x0a, src[3] = 0xa0;
    /* Lengths that are and are not a multiple of the four bytes done at once. */
    for (size_t n = 0; n <= sizeof(src); ++n) {
        char got[2 * sizeof(src) + 4], want[2 * sizeof(src) + 4];
        memset(got, '#', sizeof(got));
        for (size_t i = 0; i != n; ++i)
            snprintf(want + 2 * i, 3, "%02x", src[i]);
        hp_hex_bytes(got, src, n);
        assert_memory_equal(got, want, 2 * n);
        assert_int_equal(got[2 * n], '#');
    }
}

static void test_decimal_at_every_power_of_ten(void **state)
{
    (void)state;
    check_decimal(0);
    check_decimal(UINT64_MAX);
    check_decimal((uint64_t)INT64_MAX);
    check_decimal((uint64_t)INT64_MIN);
    for (uint64_t p = 1; p <= 10000000000000000000ull; p *= 10) {
        check_decimal(p - 1);
        check_decimal(p);
        check_decimal(p + 1);
        if (p == 10000000000000000000ull)
            break;
    }
    for (unsigned v = 0; v != 1000; ++v)
        check_decimal(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u32_edges_and_each_nibble),
        cmocka_unit_test(test_u64_edges),
        cmocka_unit_test(test_random_values),
        cmocka_unit_test(test_bytes_every_length),
        cmocka_unit_test(test_decimal_at_every_power_of_ten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
