/*
 * token: bearer tokens for the Authorization header.
 *
 * A token is 32 random bytes written as 64 lowercase hex characters. The
 * database keeps only its SHA-256 (users.token_hash), so a leaked table does
 * not leak usable tokens: a request is authenticated by hashing the token it
 * presents and looking the hash up. Parsing is strict, so a malformed header is
 * a 401 before any hashing or database work.
 */
#ifndef HP_TOKEN_H
#define HP_TOKEN_H

#include <stddef.h>
#include <stdint.h>

enum {
    HP_TOKEN_LEN = 64,     /* hex characters of a token */
    HP_TOKEN_HASH_LEN = 32 /* bytes of a SHA-256 */
};

/**
 * Extracts the token from an Authorization header value of the form
 * "Bearer <token>": the scheme in any case, one or more spaces, then exactly 64
 * lowercase hex characters and nothing after them.
 * @param hdr the header value; need not be NUL-terminated, may be NULL when len is 0
 * @param len its length in bytes
 * @param tok on success, points at the token inside hdr (not NUL-terminated)
 * @param toklen on success, receives HP_TOKEN_LEN
 * @return 0, or -1 when the value is not a well-formed bearer token (outputs untouched)
 */
int hp_token_parse_bearer(const char *hdr, size_t len, const char **tok, size_t *toklen);

/**
 * Computes the SHA-256 of the token bytes, the value stored in users.token_hash.
 * Aborts the process if libcrypto fails, which only happens when it cannot
 * allocate: there is no value this function could return instead that is safe
 * to compare against stored hashes.
 * @param tok the token bytes (may be NULL when len is 0)
 * @param len their length
 * @param out receives the 32-byte digest
 */
void hp_token_hash(const char *tok, size_t len, uint8_t out[HP_TOKEN_HASH_LEN]);

/**
 * Compares two token hashes in constant time, so response timing does not tell
 * an attacker how many leading bytes of a guess were right.
 * @return 1 when equal, 0 otherwise
 */
int hp_token_equal(const uint8_t a[HP_TOKEN_HASH_LEN], const uint8_t b[HP_TOKEN_HASH_LEN]);

/**
 * Generates a new token from 32 bytes of getrandom().
 * @param out receives 64 lowercase hex characters and a NUL
 * @return 0, or -1 when the kernel gives no randomness (out then holds "")
 */
int hp_token_generate(char out[HP_TOKEN_LEN + 1]);

#endif
