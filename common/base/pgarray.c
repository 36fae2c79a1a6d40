/*
 * pgarray: PostgreSQL array literals (see pgarray.h).
 */
#include "base/pgarray.h"
#include "base/decimal.h"

#include <string.h>

void hp_pgarray_begin(hp_pgarray_t *a, char *buf, size_t cap)
{
    *a = (hp_pgarray_t){.buf = buf, .cap = cap};
    a->buf[a->len++] = '{';
}

/* Appends bytes, keeping room for the closing brace and the NUL. */
static void hp__put(hp_pgarray_t *a, const char *s, size_t len)
{
    if (a->overflow || a->len + len + 2 > a->cap) {
        a->overflow = 1;
        return;
    }
    memcpy(a->buf + a->len, s, len);
    a->len += len;
}

void hp_pgarray_raw(hp_pgarray_t *a, const char *s, size_t len)
{
    if (a->n++ != 0)
        hp__put(a, ",", 1);
    hp__put(a, s, len);
}

void hp_pgarray_int(hp_pgarray_t *a, int64_t v)
{
    char num[20];
    hp_pgarray_raw(a, num, hp_decimal_i64(num, v));
}

const char *hp_pgarray_end(hp_pgarray_t *a)
{
    if (a->overflow)
        a->len = 1; /* never a literal with elements missing: an empty one fails the statement's own checks */
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}
