/*
 * pgarray: PostgreSQL array literals ("{1,2,3}") for statement parameters,
 * built into a buffer the caller sized, as pure code.
 *
 * Statements take lists (a cart's item ids, a page's order ids, the statuses
 * a transition may start from) as one array parameter in text format, which
 * keeps every statement prepared and one round trip long. Elements are
 * written as given: integers, or text the caller knows needs no quoting (a
 * status name, or a nested literal it quoted itself).
 */
#ifndef HP_PGARRAY_H
#define HP_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

/* Bytes a literal of n integers needs at most: 20 digits and a sign or comma each, the braces and the NUL. */
#define HP_PGARRAY_INT_BYTES(n) ((size_t)(n)*21 + 3)

typedef struct st_hp_pgarray_t {
    char *buf;
    size_t len, cap;
    size_t n;     /* elements written */
    int overflow; /* an element did not fit: the literal is "{}" (the caller sized the buffer wrong) */
} hp_pgarray_t;

/** Starts a literal in buf (cap bytes, at least 3). */
void hp_pgarray_begin(hp_pgarray_t *a, char *buf, size_t cap);

/** Appends an integer element. */
void hp_pgarray_int(hp_pgarray_t *a, int64_t v);

/** Appends len bytes of text as one element, unquoted. */
void hp_pgarray_raw(hp_pgarray_t *a, const char *s, size_t len);

/** Closes the literal. @return the NUL-terminated literal (buf) */
const char *hp_pgarray_end(hp_pgarray_t *a);

#endif
