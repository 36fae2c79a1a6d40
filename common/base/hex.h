/*
 * hex: the one writer of lower-case hex digits, behind the request and trace
 * ids every request gets (runtime/http.c), the token hash every authenticated
 * request looks up (services/auth.c) and the tokens `hotplate seed` makes
 * (base/token.c).
 *
 * Eight digits are made at once, in one 64-bit register, rather than a table
 * lookup per digit: callgrind put the per-digit loop at about 600 instructions
 * a request for the 72 digits of a request's ids, more than its log line.
 * Nothing here allocates or writes a NUL; the caller owns dst and its size.
 */
#ifndef HP_BASE_HEX_H
#define HP_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "hp_hex_u32 puts the digits in memory order with a byte swap");

/** Writes v as exactly 8 lower-case hex digits, most significant first, at dst. */
static inline void hp_hex_u32(char *dst, uint32_t v)
{
    /* Spread the eight nibbles into the eight bytes, the least significant nibble in the lowest byte... */
    uint64_t x = v;
    x = ((x & 0xffff0000u) << 16) | (x & 0x0000ffffu);
    x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
    x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
    /* ...then into digits: each byte gets '0', and 'a' - '0' - 10 more where the nibble is 10 or more (n + 6 carries into bit 4).
     */
    uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
    /* The most significant nibble sits in the highest byte; memory order wants it first. */
    x = __builtin_bswap64(x);
    memcpy(dst, &x, 8);
}

/** Writes v as exactly 16 lower-case hex digits, most significant first, at dst. */
static inline void hp_hex_u64(char *dst, uint64_t v)
{
    hp_hex_u32(dst, (uint32_t)(v >> 32));
    hp_hex_u32(dst + 8, (uint32_t)v);
}

/** Writes the n bytes at src as 2 * n lower-case hex digits at dst, in order. */
static inline void hp_hex_bytes(char *dst, const uint8_t *src, size_t n)
{
    size_t whole = n & ~(size_t)3;
    for (size_t i = 0; i != whole; i += 4)
        hp_hex_u32(dst + 2 * i, (uint32_t)src[i] << 24 | (uint32_t)src[i + 1] << 16 | (uint32_t)src[i + 2] << 8 | src[i + 3]);
    size_t tail = n - whole; /* 0 to 3 bytes: their digits are the last 2 * tail of one more group of eight */
    if (tail != 0) {
        uint32_t v = 0;
        for (size_t k = 0; k != tail; ++k)
            v = v << 8 | src[whole + k];
        char eight[8];
        hp_hex_u32(eight, v);
        memcpy(dst + 2 * whole, eight + 8 - 2 * tail, 2 * tail);
    }
}

#endif
