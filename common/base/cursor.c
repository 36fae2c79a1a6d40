/*
 * cursor: opaque keyset-pagination cursors (see cursor.h for the contract).
 *
 * Record layout, 22 bytes, before base64url:
 *
 *   [0]      version, HP_CURSOR__VERSION
 *   [1]      kind
 *   [2..9]   k1, big-endian two's complement
 *   [10..17] k2, big-endian two's complement
 *   [18..21] CRC-32 (IEEE, as in zlib) of the salt followed by bytes 0..17,
 *            stored little-endian
 *
 * Cursors outlive a deploy in clients' hands, so changing this layout means a
 * new version byte; the unit test pins the layout for that reason.
 *
 * Why CRC-32 and not a truncated hash: a CRC is guaranteed to detect every error
 * confined to 32 consecutive bits of the message, and one changed base64
 * character changes at most 6 consecutive bits of the record (at most 16 in the
 * CRC's least-significant-bit-first order). Storing the CRC little-endian makes
 * the record a proper CRC codeword in that order, so the guarantee covers the
 * check bytes too. Every single-character corruption is therefore rejected,
 * which a truncated hash only achieves with high probability. The salt only
 * makes a random base64 string of the right length even less likely to pass.
 */
#include "base/cursor.h"

#include <string.h>

enum {
    HP_CURSOR__VERSION = 1,
    HP_CURSOR__RECORD_LEN = 22,
    HP_CURSOR__CHECKED_LEN = 18, /* the bytes the CRC covers */
};

_Static_assert(HP_CURSOR_MAX_LEN == (HP_CURSOR__RECORD_LEN * 8 + 5) / 6, "cursor length must match the record");

static const char hp_cursor__salt[] = "hotplate/cursor";

static const char hp_cursor__alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Returns the 6-bit value of a base64url character, or -1. */
static inline int hp_cursor__b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

static uint32_t hp_cursor__crc32(uint32_t crc, const void *data, size_t len)
{
    /* Bitwise rather than table-driven: 33 bytes per call do not justify a 1 KiB table. */
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static inline uint32_t hp_cursor__check(const uint8_t *record)
{
    uint32_t crc = hp_cursor__crc32(0, hp_cursor__salt, sizeof(hp_cursor__salt) - 1);
    return hp_cursor__crc32(crc, record, HP_CURSOR__CHECKED_LEN);
}

static inline void hp_cursor__put_be64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        p[i] = (uint8_t)u;
}

static inline int64_t hp_cursor__get_be64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    /* Converting an out-of-range uint64_t is implementation-defined; memcpy is not. */
    int64_t v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

size_t hp_cursor_encode(char *out, size_t outcap, uint8_t kind, int64_t k1, int64_t k2)
{
    uint8_t rec[HP_CURSOR__RECORD_LEN];

    if (outcap < HP_CURSOR_BUF_SIZE) {
        if (outcap != 0)
            out[0] = '\0';
        return 0;
    }
    rec[0] = HP_CURSOR__VERSION;
    rec[1] = kind;
    hp_cursor__put_be64(rec + 2, k1);
    hp_cursor__put_be64(rec + 10, k2);
    uint32_t crc = hp_cursor__check(rec);
    for (int i = 0; i < 4; i++)
        rec[HP_CURSOR__CHECKED_LEN + i] = (uint8_t)(crc >> (8 * i));

    /* Emit 6 bits at a time from a bit accumulator; the last character carries 2 data bits and 4 zero bits. */
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(rec); i++) {
        acc = (acc << 8) | rec[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = hp_cursor__alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[n++] = hp_cursor__alphabet[(acc << (6 - bits)) & 63];
    out[n] = '\0';
    return n;
}

int hp_cursor_decode(const char *s, size_t len, uint8_t expected_kind, int64_t *k1, int64_t *k2)
{
    uint8_t rec[HP_CURSOR__RECORD_LEN];

    if (s == NULL || len != HP_CURSOR_MAX_LEN)
        return -1;

    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = hp_cursor__b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            rec[n++] = (uint8_t)(acc >> bits);
        }
    }
    /*
     * The leftover bits must be zero. Otherwise the last character has sixteen
     * spellings that decode to the same record, and a corrupted last character
     * would slip past the check value.
     */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;

    uint32_t crc = 0;
    for (int i = 0; i < 4; i++)
        crc |= (uint32_t)rec[HP_CURSOR__CHECKED_LEN + i] << (8 * i);
    if (rec[0] != HP_CURSOR__VERSION || rec[1] != expected_kind || crc != hp_cursor__check(rec))
        return -1;
    *k1 = hp_cursor__get_be64(rec + 2);
    *k2 = hp_cursor__get_be64(rec + 10);
    return 0;
}
