/*
 * cursor: opaque keyset-pagination cursors.
 *
 * A listing sorted by (k1 DESC, k2 DESC) hands out next_cursor = the keys of its
 * last row, and the next page asks for the rows strictly after them. The keys
 * are (rating x 10, id) for GET /restaurants and (created_at in microseconds,
 * id) for GET /users/{id}/orders. A cursor also carries the kind of listing it
 * came from, so a restaurants cursor is refused on the orders route.
 *
 * The string is base64url without padding of a fixed 22-byte record: a version
 * byte, the kind, both keys as big-endian int64, and a CRC-32 of the rest. The
 * CRC detects corruption and hand-editing; it is not a secret and gives no
 * protection against an attacker, who can compute it. That is acceptable
 * because a forged cursor only selects a different page of a listing the caller
 * may read anyway; the keys are bound parameters of the query, never SQL.
 */
#ifndef HP_CURSOR_H
#define HP_CURSOR_H

#include <stddef.h>
#include <stdint.h>

enum {
    HP_CURSOR_MAX_LEN = 30,                    /* characters of an encoded cursor, without the NUL */
    HP_CURSOR_BUF_SIZE = HP_CURSOR_MAX_LEN + 1 /* the buffer hp_cursor_encode needs */
};

/* The listings that hand out cursors. */
enum { HP_CURSOR_KIND_RESTAURANTS = 1, HP_CURSOR_KIND_ORDERS = 2 };

/**
 * Encodes a cursor.
 * @param out receives the cursor, NUL-terminated
 * @param outcap size of out; at least HP_CURSOR_BUF_SIZE
 * @param kind the listing, e.g. HP_CURSOR_KIND_ORDERS
 * @param k1 the primary sort key of the last row returned
 * @param k2 the tie-breaking key (the id) of that row
 * @return the length written (HP_CURSOR_MAX_LEN), or 0 when outcap is too small
 * (out then holds "" if outcap is not 0)
 */
size_t hp_cursor_encode(char *out, size_t outcap, uint8_t kind, int64_t k1, int64_t k2);

/**
 * Decodes a cursor received from a client. Reads exactly len bytes of s, which
 * need not be NUL-terminated, and allocates nothing.
 * @param s the cursor text; may be NULL when len is 0
 * @param expected_kind the listing of the route that received it
 * @param k1, k2 receive the keys on success, untouched otherwise
 * @return 0, or -1 for anything this server did not produce for that listing:
 * bad length, a character outside base64url, non-canonical trailing bits, an
 * unknown version, another kind, or a check value that does not match
 */
int hp_cursor_decode(const char *s, size_t len, uint8_t expected_kind, int64_t *k1, int64_t *k2);

#endif
