/*
 * Unit tests of common/cursor: round trips at the edges of int64, rejection of
 * every single-character corruption, truncation, extension, wrong kind, wrong
 * version and foreign characters.
 *
 * The test builds records itself with an independent encoder. That pins the
 * wire format: cursors live on in clients across deploys, so a change to the
 * layout must fail here and come with a new version byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/cursor.h"

static const int64_t KEYS[] = {0,
                               1,
                               -1,
                               47,
                               1000001,
                               INT64_MAX,
                               INT64_MIN,
                               INT64_MAX - 1,
                               INT64_MIN + 1,
                               1700000000123456,
                               (int64_t)0x0123456789abcdef,
                               -(int64_t)0x0123456789abcdef};

enum { NKEYS = sizeof(KEYS) / sizeof(KEYS[0]) };

/* --- an independent encoder of the documented layout ---------------------- */

static uint32_t ref_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static void ref_encode(char out[HP_CURSOR_BUF_SIZE], uint8_t version, uint8_t kind, int64_t k1, int64_t k2)
{
    static const char salt[] = "hotplate/cursor";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rec[24] = {version, kind};
    for (int i = 0; i < 8; i++) {
        rec[2 + i] = (uint8_t)((uint64_t)k1 >> (56 - 8 * i));
        rec[10 + i] = (uint8_t)((uint64_t)k2 >> (56 - 8 * i));
    }
    uint32_t crc = ref_crc32(ref_crc32(0, (const uint8_t *)salt, sizeof(salt) - 1), rec, 18);
    for (int i = 0; i < 4; i++)
        rec[18 + i] = (uint8_t)(crc >> (8 * i));
    /* 22 bytes plus two zero bytes of slack: eight groups of three bytes, of which 30 characters are kept. */
    for (int g = 0; g < 8; g++) {
        uint32_t v = (uint32_t)rec[3 * g] << 16 | (uint32_t)rec[3 * g + 1] << 8 | rec[3 * g + 2];
        for (int c = 0; c < 4 && 4 * g + c < HP_CURSOR_MAX_LEN; c++)
            out[4 * g + c] = b64[(v >> (18 - 6 * c)) & 63];
    }
    out[HP_CURSOR_MAX_LEN] = '\0';
}

/* --- tests ------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        for (size_t j = 0; j < NKEYS; j++) {
            char buf[HP_CURSOR_BUF_SIZE];
            int64_t k1 = 7, k2 = 7;
            assert_int_equal(hp_cursor_encode(buf, sizeof(buf), HP_CURSOR_KIND_ORDERS, KEYS[i], KEYS[j]), HP_CURSOR_MAX_LEN);
            assert_int_equal(strlen(buf), HP_CURSOR_MAX_LEN);
            assert_int_equal(hp_cursor_decode(buf, strlen(buf), HP_CURSOR_KIND_ORDERS, &k1, &k2), 0);
            assert_true(k1 == KEYS[i] && k2 == KEYS[j]);
        }
    }
}

/* Only base64url characters, so a cursor needs no escaping in a query string. */
static void test_url_safe(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        char buf[HP_CURSOR_BUF_SIZE];
        hp_cursor_encode(buf, sizeof(buf), HP_CURSOR_KIND_RESTAURANTS, KEYS[i], ~KEYS[i]);
        assert_int_equal(strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), HP_CURSOR_MAX_LEN);
    }
}

static void test_format_is_pinned(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        char got[HP_CURSOR_BUF_SIZE], want[HP_CURSOR_BUF_SIZE];
        hp_cursor_encode(got, sizeof(got), HP_CURSOR_KIND_RESTAURANTS, KEYS[i], KEYS[NKEYS - 1 - i]);
        ref_encode(want, 1, HP_CURSOR_KIND_RESTAURANTS, KEYS[i], KEYS[NKEYS - 1 - i]);
        assert_string_equal(got, want);
    }
}

static void test_encode_buffer_too_small(void **state)
{
    (void)state;
    char buf[HP_CURSOR_BUF_SIZE];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(hp_cursor_encode(buf, HP_CURSOR_BUF_SIZE - 1, 1, 1, 2), 0);
    assert_string_equal(buf, "");
    assert_int_equal(hp_cursor_encode(NULL, 0, 1, 1, 2), 0);
}

static void test_wrong_kind(void **state)
{
    (void)state;
    char buf[HP_CURSOR_BUF_SIZE];
    int64_t k1 = 7, k2 = 7;
    hp_cursor_encode(buf, sizeof(buf), HP_CURSOR_KIND_RESTAURANTS, 47, 12);
    assert_int_equal(hp_cursor_decode(buf, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS, &k1, &k2), -1);
    assert_true(k1 == 7 && k2 == 7); /* untouched on failure */
    assert_int_equal(hp_cursor_decode(buf, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_RESTAURANTS, &k1, &k2), 0);
}

/* A well-formed record of another version, with a valid check value, is refused. */
/* Decodes a cursor of kind, its keys unread. @return hp_cursor_decode's result */
static int decode(const char *s, size_t len, uint8_t kind)
{
    int64_t k1, k2;
    return hp_cursor_decode(s, len, kind, &k1, &k2);
}

static void test_wrong_version(void **state)
{
    (void)state;
    char buf[HP_CURSOR_BUF_SIZE];
    ref_encode(buf, 1, HP_CURSOR_KIND_ORDERS, 5, 6);
    assert_int_equal(decode(buf, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS), 0);
    for (int v = 0; v < 256; v++) {
        if (v == 1)
            continue;
        ref_encode(buf, (uint8_t)v, HP_CURSOR_KIND_ORDERS, 5, 6);
        assert_int_equal(decode(buf, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS), -1);
    }
}

/* Every position, every other byte value: the CRC and the base64 rules must reject all of them. */
static void test_every_single_byte_corruption(void **state)
{
    (void)state;
    size_t rejected = 0;
    for (size_t k = 0; k < NKEYS; k++) {
        char good[HP_CURSOR_BUF_SIZE];
        hp_cursor_encode(good, sizeof(good), HP_CURSOR_KIND_ORDERS, KEYS[k], KEYS[(k + 3) % NKEYS]);
        for (size_t pos = 0; pos < HP_CURSOR_MAX_LEN; pos++) {
            for (int c = 0; c < 256; c++) {
                char bad[HP_CURSOR_BUF_SIZE];
                if ((char)c == good[pos])
                    continue;
                memcpy(bad, good, sizeof(bad));
                bad[pos] = (char)c;
                if (decode(bad, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS) != 0)
                    rejected++;
                else
                    fail_msg("corruption at %zu to 0x%02x accepted", pos, c);
            }
        }
    }
    assert_int_equal(rejected, NKEYS * HP_CURSOR_MAX_LEN * 255);
}

/* The last character holds 2 data bits and 4 zero bits; its 15 other spellings of the same record are refused. */
static void test_non_canonical_last_char(void **state)
{
    (void)state;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char buf[HP_CURSOR_BUF_SIZE];
    hp_cursor_encode(buf, sizeof(buf), HP_CURSOR_KIND_ORDERS, 1, 2);
    int v = (int)(strchr(b64, buf[HP_CURSOR_MAX_LEN - 1]) - b64);
    assert_int_equal(v & 15, 0);
    for (int low = 1; low < 16; low++) {
        buf[HP_CURSOR_MAX_LEN - 1] = b64[v | low];
        assert_int_equal(decode(buf, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS), -1);
    }
}

static void test_truncated_and_extended(void **state)
{
    (void)state;
    char buf[2 * HP_CURSOR_BUF_SIZE];
    hp_cursor_encode(buf, sizeof(buf), HP_CURSOR_KIND_ORDERS, 1700000000123456, 99);
    for (size_t len = 0; len < HP_CURSOR_MAX_LEN; len++) {
        assert_int_equal(decode(buf, len, HP_CURSOR_KIND_ORDERS), -1);
        /* The tail alone is as bad as the head alone. */
        assert_int_equal(decode(buf + HP_CURSOR_MAX_LEN - len, len, HP_CURSOR_KIND_ORDERS), -1);
    }
    /* Trailing garbage, trailing padding, and a cursor repeated twice. */
    static const char *const tails[] = {"A", "=", "==", " ", "\n", "%3D"};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        char ext[2 * HP_CURSOR_BUF_SIZE];
        memcpy(ext, buf, HP_CURSOR_MAX_LEN);
        memcpy(ext + HP_CURSOR_MAX_LEN, tails[i], strlen(tails[i]));
        assert_int_equal(decode(ext, HP_CURSOR_MAX_LEN + strlen(tails[i]), HP_CURSOR_KIND_ORDERS), -1);
    }
    memcpy(buf + HP_CURSOR_MAX_LEN, buf, HP_CURSOR_MAX_LEN);
    assert_int_equal(decode(buf, 2 * HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS), -1);
}

static void test_empty_and_overlong(void **state)
{
    (void)state;
    static char big[1 << 16];
    memset(big, 'A', sizeof(big));
    assert_int_equal(decode("", 0, HP_CURSOR_KIND_ORDERS), -1);
    assert_int_equal(decode(NULL, 0, HP_CURSOR_KIND_ORDERS), -1);
    assert_int_equal(decode(big, sizeof(big), HP_CURSOR_KIND_ORDERS), -1);
    assert_int_equal(decode(big, SIZE_MAX, HP_CURSOR_KIND_ORDERS), -1);
    /* Right length, all 'A': decodes to version 0 and a zero check, which is not the CRC of zeros. */
    assert_int_equal(decode(big, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_ORDERS), -1);
}

/* Standard base64 characters, padding, whitespace and NUL are not base64url. */
static void test_non_base64_chars(void **state)
{
    (void)state;
    static const char foreign[] = "+/=. \t\r\n%!*~\"'\\";
    char good[HP_CURSOR_BUF_SIZE];
    hp_cursor_encode(good, sizeof(good), HP_CURSOR_KIND_RESTAURANTS, 47, 12);
    for (size_t i = 0; i < sizeof(foreign); i++) { /* sizeof includes the NUL, which is tested too */
        for (size_t pos = 0; pos < HP_CURSOR_MAX_LEN; pos += 7) {
            char bad[HP_CURSOR_BUF_SIZE];
            memcpy(bad, good, sizeof(bad));
            bad[pos] = foreign[i];
            assert_int_equal(decode(bad, HP_CURSOR_MAX_LEN, HP_CURSOR_KIND_RESTAURANTS), -1);
        }
    }
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Random keys round-trip; random strings of the right length and alphabet are refused. */
static void test_random(void **state)
{
    (void)state;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t seed = 20261124;
    for (int i = 0; i < 20000; i++) {
        char buf[HP_CURSOR_BUF_SIZE];
        int64_t a = (int64_t)splitmix64(&seed), b = (int64_t)splitmix64(&seed), k1, k2;
        uint8_t kind = (uint8_t)splitmix64(&seed);
        hp_cursor_encode(buf, sizeof(buf), kind, a, b);
        assert_int_equal(hp_cursor_decode(buf, HP_CURSOR_MAX_LEN, kind, &k1, &k2), 0);
        assert_true(k1 == a && k2 == b);

        for (size_t c = 0; c < HP_CURSOR_MAX_LEN; c++)
            buf[c] = b64[splitmix64(&seed) & 63];
        assert_int_equal(hp_cursor_decode(buf, HP_CURSOR_MAX_LEN, kind, &k1, &k2), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_url_safe),
        cmocka_unit_test(test_format_is_pinned),
        cmocka_unit_test(test_encode_buffer_too_small),
        cmocka_unit_test(test_wrong_kind),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_every_single_byte_corruption),
        cmocka_unit_test(test_non_canonical_last_char),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_empty_and_overlong),
        cmocka_unit_test(test_non_base64_chars),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
