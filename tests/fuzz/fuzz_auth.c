/*
 * libFuzzer driver: the Authorization header (common/base/token.c
 * hp_token_parse_bearer, then the hash and the constant-time comparison that
 * services/auth.c applies to what it returns).
 *
 * Invariants: an accepted header yields a token inside the header, exactly
 * HP_TOKEN_LEN lowercase hex characters, at its very end; its hash equals
 * itself and differs from the hash of the same token with one character
 * changed.
 */
#include "base/token.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *hdr = (const char *)data, *tok = NULL;
    size_t toklen = 0;
    if (hp_token_parse_bearer(hdr, size, &tok, &toklen) != 0)
        return 0;
    if (toklen != HP_TOKEN_LEN || tok < hdr || tok + toklen != hdr + size)
        abort();
    for (size_t i = 0; i != toklen; ++i)
        if (!((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f')))
            abort();
    uint8_t h1[HP_TOKEN_HASH_LEN], h2[HP_TOKEN_HASH_LEN];
    hp_token_hash(tok, toklen, h1);
    hp_token_hash(tok, toklen, h2);
    if (!hp_token_equal(h1, h2))
        abort();
    char other[HP_TOKEN_LEN];
    memcpy(other, tok, HP_TOKEN_LEN);
    other[data[0] % HP_TOKEN_LEN] ^= 1; /* still a hex digit or a neighbour; either way a different string */
    hp_token_hash(other, HP_TOKEN_LEN, h2);
    if (hp_token_equal(h1, h2))
        abort();
    return 0;
}
