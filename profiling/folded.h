/*
 * folded: the one reader of folded stacks, the text every profile of the
 * server becomes ("frame;frame;...;leaf count" per line, outermost caller
 * first): what the server's pprof-encode --folded writes (pprof_fold.c),
 * as `google-pprof --collapsed` and `jeprof --collapsed` print it, and what
 * the flame graph draws (flame.c) and the doctor ranks (doctor.c). Pure: (ptr, len) in, nothing global.
 */
#ifndef HP_FOLDED_H
#define HP_FOLDED_H

#include <stddef.h>
#include <stdint.h>

/* The largest count on one line accepted, so that sums of counts never overflow. */
#define HP_FOLDED_MAX_COUNT ((uint64_t)1 << 53)

/* One line: the stack (no trailing blanks) and its count. */
typedef struct st_hp_folded_line_t {
    const char *stack;
    size_t stack_len;
    uint64_t count;
    const char *line, *line_end; /* the whole line, without its newline */
} hp_folded_line_t;

/**
 * Reads the line at *p (before end) and moves *p past it. Blank lines are
 * skipped, a trailing '\r' ignored, and the count is taken after the last
 * space, so frame names may contain spaces.
 * @return 1 with *out filled; 0 at the end; -EINVAL for a malformed line (no
 *         count, a count that is not decimal digits below HP_FOLDED_MAX_COUNT,
 *         an empty stack), with *out's line span set so the caller can skip it
 */
int hp_folded_next(const char **p, const char *end, hp_folded_line_t *out);

#endif
