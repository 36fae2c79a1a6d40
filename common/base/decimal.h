/*
 * decimal: the one reader of plain decimal digits behind the parsers that
 * take them (flag values, path ids), so that what counts as a number is the
 * same everywhere: digits only, no sign, no space, no base prefix.
 */
#ifndef HP_BASE_DECIMAL_H
#define HP_BASE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

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

#endif
