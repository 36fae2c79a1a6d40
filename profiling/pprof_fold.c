/*
 * pprof_fold: a decoded profile.proto as folded stacks (see pprof_fold.h).
 *
 * Each sample's stack is written out as text, then the lines are sorted and
 * equal stacks added up: the encoder makes one sample per distinct list of
 * addresses, and different addresses in one function fold to one stack.
 */
#include "profiling/pprof_fold.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_hp__fold_buf_t {
    char *s;
    size_t len, cap;
    int failed; /* out of memory: everything after is dropped, and the caller reports it */
} hp__fold_buf_t;

static void hp__fold_put(hp__fold_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap != 0 ? b->cap : 4096;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (ns == NULL) {
            b->failed = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

/* A frame's name, with the two characters the folded grammar gives a meaning to (';' and a line break) replaced. */
static void hp__fold_name(hp__fold_buf_t *b, const char *name)
{
    size_t start = b->len;
    hp__fold_put(b, name, strlen(name));
    for (size_t i = start; !b->failed && i != b->len; ++i)
        if (b->s[i] == ';' || b->s[i] == '\n' || b->s[i] == '\r')
            b->s[i] = '?';
}

/* out = the entry of arr whose id is want, or NULL: at want - 1 when the ids are 1..n in order, as the encoder writes them. */
#define HP__FOLD_FIND(out, arr, n, want)                                                                                           \
    do {                                                                                                                           \
        (out) = NULL;                                                                                                              \
        if ((want) >= 1 && (want) <= (n) && (arr)[(want)-1]->id == (want))                                                         \
            (out) = (arr)[(want)-1];                                                                                               \
        for (size_t i_ = 0; (out) == NULL && i_ != (n); ++i_)                                                                      \
            if ((arr)[i_]->id == (want))                                                                                           \
                (out) = (arr)[i_];                                                                                                 \
    } while (0)

static const char *hp__fold_str(const Perftools__Profiles__Profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "";
}

/* Appends one location's frames, outermost first, with ';' between them. */
static void hp__fold_location(hp__fold_buf_t *b, const Perftools__Profiles__Profile *p, const Perftools__Profiles__Location *l)
{
    if (l->n_line == 0) {
        const Perftools__Profiles__Mapping *m = NULL;
        if (l->mapping_id != 0)
            HP__FOLD_FIND(m, p->mapping, p->n_mapping, l->mapping_id);
        const char *file = m != NULL ? hp__fold_str(p, m->filename) : "";
        const char *base = strrchr(file, '/') != NULL ? strrchr(file, '/') + 1 : file;
        char name[320];
        if (m != NULL && base[0] != '\0')
            snprintf(name, sizeof(name), "%.256s+0x%" PRIx64, base, l->address - m->memory_start);
        else
            snprintf(name, sizeof(name), "0x%" PRIx64, l->address);
        hp__fold_name(b, name);
        return;
    }
    /* line[0] is the innermost function, the last one the function the address's symbol names. */
    for (size_t k = l->n_line; k-- != 0;) {
        const Perftools__Profiles__Function *f;
        HP__FOLD_FIND(f, p->function, p->n_function, l->line[k]->function_id);
        if (k != l->n_line - 1)
            hp__fold_put(b, ";", 1);
        hp__fold_name(b, f != NULL ? hp__fold_str(p, f->name) : "??");
        if (k != l->n_line - 1)
            hp__fold_put(b, "[inline]", 8);
    }
}

typedef struct st_hp__fold_line_t {
    size_t off, len;   /* the stack's text in the buffer, while the buffer may still move */
    const char *stack; /* set from off once every stack is written, for the sort */
    int64_t value;
} hp__fold_line_t;

static int hp__fold_cmp(const void *a, const void *b)
{
    const hp__fold_line_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->stack, y->stack, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

int hp_pprof_fold(const Perftools__Profiles__Profile *p, char **out, size_t *out_len, const char **err)
{
    size_t vi = 0;
    for (size_t t = 0; p->default_sample_type != 0 && t != p->n_sample_type; ++t)
        if (p->sample_type[t]->type == p->default_sample_type)
            vi = t;
    hp__fold_buf_t stacks = {0};
    hp__fold_line_t *lines = calloc(p->n_sample + 1, sizeof(*lines));
    size_t n = 0;
    for (size_t i = 0; lines != NULL && i != p->n_sample; ++i) {
        const Perftools__Profiles__Sample *s = p->sample[i];
        int64_t v = vi < s->n_value ? s->value[vi] : 0;
        if (v <= 0 || s->n_location_id == 0)
            continue;
        size_t off = stacks.len;
        for (size_t j = s->n_location_id; j-- != 0;) {
            const Perftools__Profiles__Location *l;
            HP__FOLD_FIND(l, p->location, p->n_location, s->location_id[j]);
            if (l == NULL) {
                *err = "a sample names a location the profile lacks";
                free(lines);
                free(stacks.s);
                return -1;
            }
            hp__fold_location(&stacks, p, l);
            if (j != 0)
                hp__fold_put(&stacks, ";", 1);
        }
        lines[n++] = (hp__fold_line_t){off, stacks.len - off, NULL, v};
    }
    if (lines == NULL || stacks.failed) {
        *err = "out of memory";
        free(lines);
        free(stacks.s);
        return -1;
    }
    for (size_t i = 0; i != n; ++i)
        lines[i].stack = stacks.s + lines[i].off;
    qsort(lines, n, sizeof(*lines), hp__fold_cmp);
    hp__fold_buf_t text = {0};
    for (size_t i = 0; i != n;) {
        size_t j = i + 1;
        int64_t sum = lines[i].value;
        while (j != n && hp__fold_cmp(&lines[i], &lines[j]) == 0)
            sum += lines[j++].value;
        char count[32];
        int k = snprintf(count, sizeof(count), " %" PRId64 "\n", sum);
        hp__fold_put(&text, lines[i].stack, lines[i].len);
        hp__fold_put(&text, count, (size_t)k);
        i = j;
    }
    free(lines);
    free(stacks.s);
    if (text.failed) {
        free(text.s);
        *err = "out of memory";
        return -1;
    }
    *out = text.s;
    *out_len = text.len;
    return 0;
}
