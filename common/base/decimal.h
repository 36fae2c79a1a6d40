/*
 * decimal: the one reader of plain decimal digits behind the parsers that
 * take them (flag values, path ids), so that what counts as a number is the
 * same everywhere: digits only, no sign, no space, no base prefix; and the one
 * writer of decimal digits on the request path (log lines, timestamps,
 * PostgreSQL array literals), two digits at a time rather than snprintf, which
 * callgrind put at several hundred to a few thousand instructions a call.
 */
#ifndef HP_BASE_DECIMAL_H
#define HP_BASE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * Reads the len bytes at s as decimal digits into *out. The caller bounds len
 * (at most 18 digits fit an int64_t) and judges the value's range.
 * @return 0, or -1 when len is 0 or a byte is not a digit (*out untouched)
 */
static inline int hp_decimal(const char *s, size_t len, int64_t *out)
{
    if (len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/** @return the two digits of v (0..99), "00" to "99", not NUL-terminated */
static inline const char *hp_decimal_pair(unsigned v)
{
    static const char pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748"
        "49505152535455565758596061626364656667686970717273747576777879808182838485868788899091929394959697"
        "9899";
    return pairs + 2 * v;
}

/** The number of decimal digits of v, 1 to 20. */
static inline size_t hp_decimal_len(uint64_t v)
{
    size_t n = 1;
    for (uint64_t p = 10; n != 20 && v >= p; p *= 10)
        ++n;
    return n;
}

/**
 * Writes v in decimal at dst, which has room for 20 bytes; no NUL.
 * @return the number of digits written
 */
static inline size_t hp_decimal_u64(char *dst, uint64_t v)
{
    size_t n = hp_decimal_len(v);
    char *end = dst + n;
    while (v >= 100) {
        end -= 2;
        memcpy(end, hp_decimal_pair((unsigned)(v % 100)), 2);
        v /= 100;
    }
    if (v >= 10)
        memcpy(end - 2, hp_decimal_pair((unsigned)v), 2);
    else
        end[-1] = (char)('0' + v);
    return n;
}

/**
 * Writes v in decimal, with a '-' when negative, at dst, which has room for 20
 * bytes; no NUL. What snprintf("%" PRId64) writes.
 * @return the number of bytes written
 */
static inline size_t hp_decimal_i64(char *dst, int64_t v)
{
    if (v >= 0)
        return hp_decimal_u64(dst, (uint64_t)v);
    dst[0] = '-';
    return 1 + hp_decimal_u64(dst + 1, 0 - (uint64_t)v);
}

#endif
