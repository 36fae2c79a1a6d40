/*
 * Unit tests of common/token: SHA-256 against published test vectors, the
 * Authorization header grammar as an accept/reject table, constant-time
 * equality, and token generation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/token.h"

/* A valid token: 64 lowercase hex characters. A macro, because the tables below concatenate it with literals. */
#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* FIPS 180-2 examples, the empty string, and a 64-character token. */
static void test_sha256_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *hex;
    } cases[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t digest[HP_TOKEN_HASH_LEN];
        char hex[2 * HP_TOKEN_HASH_LEN + 1];
        hp_token_hash(cases[i].in, strlen(cases[i].in), digest);
        to_hex(digest, sizeof(digest), hex);
        assert_string_equal(hex, cases[i].hex);
    }
    /* Only len bytes are hashed: "abc" out of "abcdef". */
    uint8_t a[HP_TOKEN_HASH_LEN], b[HP_TOKEN_HASH_LEN];
    hp_token_hash("abcdef", 3, a);
    hp_token_hash("abc", 3, b);
    assert_memory_equal(a, b, sizeof(a));
    hp_token_hash(NULL, 0, a);
    hp_token_hash("", 0, b);
    assert_memory_equal(a, b, sizeof(a));
}

static void test_equal(void **state)
{
    (void)state;
    uint8_t a[HP_TOKEN_HASH_LEN], b[HP_TOKEN_HASH_LEN];
    hp_token_hash(TOKEN, 64, a);
    memcpy(b, a, sizeof(a));
    assert_int_equal(hp_token_equal(a, b), 1);
    for (size_t i = 0; i < sizeof(b); i++) {
        b[i] ^= 0x80;
        assert_int_equal(hp_token_equal(a, b), 0);
        b[i] ^= 0x80;
    }
    b[HP_TOKEN_HASH_LEN - 1] ^= 1;
    assert_int_equal(hp_token_equal(a, b), 0);
}

static void test_parse_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *hdr;
        size_t offset; /* where the token starts */
    } cases[] = {
        {"Bearer " TOKEN, 7},
        {"bearer " TOKEN, 7},
        {"BEARER " TOKEN, 7},
        {"BeArEr " TOKEN, 7},
        {"Bearer  " TOKEN, 8},
        {"Bearer     " TOKEN, 11},
        {"Bearer ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *tok = NULL;
        size_t toklen = 0;
        assert_int_equal(hp_token_parse_bearer(cases[i].hdr, strlen(cases[i].hdr), &tok, &toklen), 0);
        assert_ptr_equal(tok, cases[i].hdr + cases[i].offset);
        assert_int_equal(toklen, HP_TOKEN_LEN);
    }

    /* Length-bounded: a valid header followed by bytes outside len parses. */
    const char *hdr = "Bearer " TOKEN "trailing", *tok;
    size_t toklen;
    assert_int_equal(hp_token_parse_bearer(hdr, 7 + 64, &tok, &toklen), 0);
    assert_int_equal(hp_token_parse_bearer(hdr, strlen(hdr), &tok, &toklen), -1);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "Bearer",
        "Bearer ",
        "Bearer" TOKEN,      /* no space */
        "Bearer\t" TOKEN,    /* tab is not a space here */
        " Bearer " TOKEN,    /* leading space */
        "Bearer " TOKEN " ", /* trailing space */
        "Bearer " TOKEN "0", /* 65 characters */
        "Bearer " TOKEN "\n",
        "Basic " TOKEN,
        "Bearer: " TOKEN,
        "Bearerx " TOKEN,
        "Token " TOKEN,
        "Bearer 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", /* uppercase hex */
        "Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",  /* 63 */
        "Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", /* not hex */
        "Bearer " TOKEN " " TOKEN,
        "Bearer 0123456789abcdef-0123456789abcdef0123456789abcdef0123456789abcde",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *tok = NULL;
        size_t toklen = 99;
        if (hp_token_parse_bearer(cases[i], strlen(cases[i]), &tok, &toklen) != -1)
            fail_msg("accepted \"%s\"", cases[i]);
        assert_null(tok); /* untouched on failure */
        assert_int_equal(toklen, 99);
    }

    /* An embedded NUL is not a hex digit, and NULL with length 0 is simply empty. */
    const char *tok;
    size_t toklen;
    char withnul[] = "Bearer " TOKEN;
    withnul[20] = '\0';
    assert_int_equal(hp_token_parse_bearer(withnul, sizeof(withnul) - 1, &tok, &toklen), -1);
    assert_int_equal(hp_token_parse_bearer(NULL, 0, &tok, &toklen), -1);
}

static void test_generate(void **state)
{
    (void)state;
    char a[HP_TOKEN_LEN + 1], b[HP_TOKEN_LEN + 1];
    assert_int_equal(hp_token_generate(a), 0);
    assert_int_equal(hp_token_generate(b), 0);
    assert_int_equal(strlen(a), HP_TOKEN_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), HP_TOKEN_LEN);
    assert_string_not_equal(a, b);

    /* A generated token is exactly what the header parser accepts. */
    char hdr[7 + HP_TOKEN_LEN + 1];
    snprintf(hdr, sizeof(hdr), "Bearer %s", a);
    const char *tok;
    size_t toklen;
    assert_int_equal(hp_token_parse_bearer(hdr, strlen(hdr), &tok, &toklen), 0);
    assert_memory_equal(tok, a, HP_TOKEN_LEN);

    /* Every hex digit shows up in a few tokens; a stuck nibble would not. */
    int seen[16] = {0};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(hp_token_generate(a), 0);
        for (size_t c = 0; c < HP_TOKEN_LEN; c++)
            seen[a[c] <= '9' ? a[c] - '0' : a[c] - 'a' + 10] = 1;
    }
    for (int d = 0; d < 16; d++)
        assert_true(seen[d]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_equal),    cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_rejects),  cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
