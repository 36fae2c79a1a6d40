/*
 * token: bearer tokens (see token.h for the contract).
 *
 * Hashing and comparison go through OpenSSL's libcrypto, which the server links
 * for TLS anyway: EVP_Digest for SHA-256 and CRYPTO_memcmp for the comparison
 * that must not leak timing. Randomness comes straight from getrandom(), which
 * blocks only until the kernel's pool is first initialised at boot.
 */
#include "base/token.h"
#include "base/hex.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char hp_token__scheme[] = "bearer";

static inline int hp_token__is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static inline char hp_token__lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int hp_token_parse_bearer(const char *hdr, size_t len, const char **tok, size_t *toklen)
{
    const size_t scheme_len = sizeof(hp_token__scheme) - 1;

    /* The shortest valid value is the scheme, one space and the token; checking it first bounds every read below. */
    if (hdr == NULL || len < scheme_len + 1 + HP_TOKEN_LEN)
        return -1;
    for (size_t i = 0; i < scheme_len; i++) {
        if (hp_token__lower(hdr[i]) != hp_token__scheme[i])
            return -1;
    }
    size_t p = scheme_len;
    while (p < len && hdr[p] == ' ')
        p++;
    if (p == scheme_len || len - p != HP_TOKEN_LEN)
        return -1;
    for (size_t i = p; i < len; i++) {
        if (!hp_token__is_lower_hex(hdr[i]))
            return -1;
    }
    *tok = hdr + p;
    *toklen = HP_TOKEN_LEN;
    return 0;
}

void hp_token_hash(const char *tok, size_t len, uint8_t out[HP_TOKEN_HASH_LEN])
{
    static const char empty[1] = "";
    unsigned int outlen = 0;

    /* EVP_Digest wants a valid pointer even for zero bytes. */
    if (tok == NULL)
        tok = empty;
    if (EVP_Digest(tok, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != HP_TOKEN_HASH_LEN)
        abort();
}

int hp_token_equal(const uint8_t a[HP_TOKEN_HASH_LEN], const uint8_t b[HP_TOKEN_HASH_LEN])
{
    return CRYPTO_memcmp(a, b, HP_TOKEN_HASH_LEN) == 0;
}

int hp_token_generate(char out[HP_TOKEN_LEN + 1])
{
    uint8_t raw[HP_TOKEN_LEN / 2];
    size_t got = 0;

    /* Requests of up to 256 bytes are not cut short once the pool is ready, but a signal may still interrupt one. */
    while (got < sizeof(raw)) {
        ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            OPENSSL_cleanse(raw, sizeof(raw));
            out[0] = '\0';
            return -1;
        }
        got += (size_t)r;
    }
    hp_hex_bytes(out, raw, sizeof(raw));
    out[HP_TOKEN_LEN] = '\0';
    /* The raw bytes are the token; do not leave them in a dead stack frame. */
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}
