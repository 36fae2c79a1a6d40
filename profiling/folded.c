/*
 * folded: reading folded stacks (see folded.h).
 */
#include "profiling/folded.h"

#include <errno.h>
#include <string.h>

/* A count: decimal digits only, at most HP_FOLDED_MAX_COUNT. @return 0 or -EINVAL */
static int hp__count(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > HP_FOLDED_MAX_COUNT)
        return -EINVAL;
    *out = v;
    return 0;
}

int hp_folded_next(const char **p, const char *end, hp_folded_line_t *out)
{
    for (;;) {
        const char *line = *p;
        if (line >= end)
            return 0;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *lend = nl != NULL ? nl : end;
        *p = nl != NULL ? nl + 1 : end;
        size_t n = (size_t)(lend - line);
        if (n != 0 && line[n - 1] == '\r')
            --n;
        size_t blank = 0;
        while (blank != n && (line[blank] == ' ' || line[blank] == '\t'))
            ++blank;
        if (blank == n)
            continue;
        out->line = line, out->line_end = line + n;
        const char *sp = NULL;
        for (size_t i = n; i != 0; --i) {
            if (line[i - 1] == ' ') {
                sp = line + i - 1;
                break;
            }
        }
        if (sp == NULL || hp__count(sp + 1, (size_t)(line + n - sp - 1), &out->count) != 0)
            return -EINVAL;
        /* Tolerate several spaces (or a tab) between the stack and the count. */
        size_t stack_len = (size_t)(sp - line);
        while (stack_len != 0 && (line[stack_len - 1] == ' ' || line[stack_len - 1] == '\t'))
            --stack_len;
        if (stack_len == 0)
            return -EINVAL;
        out->stack = line, out->stack_len = stack_len;
        return 1;
    }
}
