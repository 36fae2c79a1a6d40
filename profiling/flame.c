/*
 * flame: folded stacks to a flame graph SVG (see flame.h).
 *
 * Two steps. Parsing builds a tree of frames in one array, each node holding
 * its inclusive sample count; a small open-addressing table keyed by (parent,
 * name) finds a node's child in constant time, so a profile with wide fan-out
 * does not turn quadratic. Rendering sorts every node's children by name once
 * and walks the tree twice: the first walk finds the deepest row that will be
 * drawn (the image height depends on it and the header comes first), the
 * second writes the rectangles.
 *
 * Names point into the caller's input; nothing is copied until it is escaped
 * into the output.
 */
#include "profiling/flame.h"
#include "profiling/folded.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Geometry, in pixels. */
#define HP_FLAME_WIDTH 1200
#define HP_FLAME_PAD_X 10
#define HP_FLAME_TOP 48    /* room for the heading */
#define HP_FLAME_BOTTOM 16 /* margin under the root row */
#define HP_FLAME_ROW 16    /* row pitch; rectangles are one pixel shorter */
#define HP_FLAME_FONT 12
#define HP_FLAME_CHAR_W 7.2 /* average advance of a 12 px monospace character */
/*
 * Frames narrower than this are not drawn, with their subtrees (which are no
 * wider). Besides keeping the SVG readable, it bounds the number of drawn
 * rectangles per row to width / HP_FLAME_MIN_WIDTH.
 */
#define HP_FLAME_MIN_WIDTH 0.1
/* Characters of a name shown in a tooltip; longer names end in "..". */
#define HP_FLAME_MAX_TOOLTIP 512

#define HP_FLAME_NONE UINT32_MAX

typedef struct st_hp_flame_node_t {
    const char *name; /* into the caller's input, or the static root name */
    uint32_t name_len;
    uint32_t parent;   /* HP_FLAME_NONE for the root */
    uint32_t depth;    /* the root is 0 */
    uint32_t children; /* after hp__flame_sort_children: index of the first child in tree->kids */
    uint32_t num_children;
    uint64_t count; /* samples in this frame and below */
} hp_flame_node_t;

typedef struct st_hp_flame_tree_t {
    hp_flame_node_t *nodes;
    size_t num, cap;
    uint32_t *slots; /* hash table of node index + 1; 0 is an empty slot */
    size_t num_slots;
    uint32_t *kids; /* every node's children, grouped by parent and sorted by name */
} hp_flame_tree_t;

/* ---- parsing ------------------------------------------------------------------------------- */

static uint32_t hp__flame_hash(const char *s, size_t len, uint32_t seed)
{
    uint32_t h = 2166136261u ^ seed; /* FNV-1a */
    for (size_t i = 0; i != len; ++i) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void hp__flame_tree_free(hp_flame_tree_t *t)
{
    free(t->nodes);
    free(t->slots);
    free(t->kids);
    memset(t, 0, sizeof(*t));
}

static int hp__flame_tree_init(hp_flame_tree_t *t)
{
    memset(t, 0, sizeof(*t));
    t->cap = 256;
    t->num_slots = 512;
    t->nodes = malloc(t->cap * sizeof(*t->nodes));
    t->slots = calloc(t->num_slots, sizeof(*t->slots));
    if (t->nodes == NULL || t->slots == NULL) {
        hp__flame_tree_free(t);
        return -ENOMEM;
    }
    static const char root[] = "all";
    t->nodes[0] = (hp_flame_node_t){.name = root, .name_len = sizeof(root) - 1, .parent = HP_FLAME_NONE};
    t->num = 1;
    return 0;
}

static size_t hp__flame_slot_of(const hp_flame_tree_t *t, uint32_t parent, const char *name, size_t len)
{
    return hp__flame_hash(name, len, parent * 0x9e3779b9u) & (t->num_slots - 1);
}

/* Doubles the hash table; it is kept at most half full. */
static int hp__flame_rehash(hp_flame_tree_t *t)
{
    size_t n = t->num_slots * 2;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    free(t->slots);
    t->slots = slots;
    t->num_slots = n;
    for (size_t i = 1; i != t->num; ++i) {
        const hp_flame_node_t *nd = &t->nodes[i];
        size_t s = hp__flame_slot_of(t, nd->parent, nd->name, nd->name_len);
        while (t->slots[s] != 0)
            s = (s + 1) & (n - 1);
        t->slots[s] = (uint32_t)i + 1;
    }
    return 0;
}

/* @return the child of parent called name (created when absent), or a negative errno */
static int64_t hp__flame_child(hp_flame_tree_t *t, uint32_t parent, const char *name, size_t len)
{
    size_t s = hp__flame_slot_of(t, parent, name, len);
    for (; t->slots[s] != 0; s = (s + 1) & (t->num_slots - 1)) {
        const hp_flame_node_t *nd = &t->nodes[t->slots[s] - 1];
        if (nd->parent == parent && nd->name_len == len && memcmp(nd->name, name, len) == 0)
            return t->slots[s] - 1;
    }
    if (t->num == HP_FLAME_MAX_NODES)
        return -E2BIG;
    if (t->num == t->cap) {
        hp_flame_node_t *nodes = realloc(t->nodes, t->cap * 2 * sizeof(*nodes));
        if (nodes == NULL)
            return -ENOMEM;
        t->nodes = nodes;
        t->cap *= 2;
    }
    uint32_t idx = (uint32_t)t->num++;
    t->nodes[idx] =
        (hp_flame_node_t){.name = name, .name_len = (uint32_t)len, .parent = parent, .depth = t->nodes[parent].depth + 1};
    t->slots[s] = idx + 1;
    if (t->num * 2 > t->num_slots) {
        int rc = hp__flame_rehash(t);
        if (rc != 0)
            return rc;
    }
    return idx;
}

/* Adds one line of folded stacks to the tree. @return 0 or a negative errno */
static int hp__flame_add_line(hp_flame_tree_t *t, const hp_folded_line_t *l)
{
    const char *line = l->stack;
    size_t stack_len = l->stack_len;
    uint64_t count = l->count;
    if (count == 0)
        return -EINVAL; /* a sample count is positive */
    if (t->nodes[0].count + count > HP_FLAME_MAX_COUNT)
        return -E2BIG;

    uint32_t cur = 0;
    const char *p = line, *end = line + stack_len;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *fend = semi != NULL ? semi : end;
        if (fend == p)
            return -EINVAL; /* an empty frame: ";;", or a leading or trailing ';' */
        if (t->nodes[cur].depth < HP_FLAME_MAX_DEPTH) {
            int64_t child = hp__flame_child(t, cur, p, (size_t)(fend - p));
            if (child < 0)
                return (int)child;
            cur = (uint32_t)child;
            t->nodes[cur].count += count;
        }
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    t->nodes[0].count += count;
    return 0;
}

static int hp__flame_parse(hp_flame_tree_t *t, const char *s, size_t len)
{
    if (len > HP_FLAME_MAX_INPUT)
        return -E2BIG;
    const char *p = s, *end = s + len;
    hp_folded_line_t l;
    int rc;
    while ((rc = hp_folded_next(&p, end, &l)) > 0)
        if ((rc = hp__flame_add_line(t, &l)) != 0)
            return rc;
    return rc;
}

static int hp__flame_cmp(const void *a, const void *b, void *arg)
{
    const hp_flame_node_t *nodes = arg;
    const hp_flame_node_t *x = &nodes[*(const uint32_t *)a], *y = &nodes[*(const uint32_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Groups every node's children in tree->kids (a counting sort by parent), each group sorted by name. */
static int hp__flame_sort_children(hp_flame_tree_t *t)
{
    t->kids = malloc((t->num > 1 ? t->num - 1 : 1) * sizeof(*t->kids));
    if (t->kids == NULL)
        return -ENOMEM;
    for (size_t i = 1; i != t->num; ++i)
        t->nodes[t->nodes[i].parent].num_children++;
    uint32_t at = 0;
    for (size_t i = 0; i != t->num; ++i) {
        t->nodes[i].children = at;
        at += t->nodes[i].num_children;
        t->nodes[i].num_children = 0;
    }
    for (size_t i = 1; i != t->num; ++i) {
        hp_flame_node_t *parent = &t->nodes[t->nodes[i].parent];
        t->kids[parent->children + parent->num_children++] = (uint32_t)i;
    }
    for (size_t i = 0; i != t->num; ++i)
        if (t->nodes[i].num_children > 1)
            qsort_r(&t->kids[t->nodes[i].children], t->nodes[i].num_children, sizeof(uint32_t), hp__flame_cmp, t->nodes);
    return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

typedef struct st_hp_flame_buf_t {
    char *p;
    size_t len, cap;
    int err; /* the first error; later appends do nothing */
} hp_flame_buf_t;

static char *hp__flame_reserve(hp_flame_buf_t *b, size_t n)
{
    if (b->err != 0)
        return NULL;
    if (b->len + n + 1 > HP_FLAME_MAX_OUTPUT) {
        b->err = -E2BIG;
        return NULL;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->err = -ENOMEM;
            return NULL;
        }
        b->p = np;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void hp__flame_put(hp_flame_buf_t *b, const char *s, size_t n)
{
    char *dst = hp__flame_reserve(b, n);
    if (dst == NULL)
        return;
    memcpy(dst, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void hp__flame_puts(hp_flame_buf_t *b, const char *s)
{
    hp__flame_put(b, s, strlen(s));
}

static void hp__flame_printf(hp_flame_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void hp__flame_printf(hp_flame_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    /* Every format here is a handful of numbers and constant text, far below the buffer. */
    if (n > 0 && (size_t)n < sizeof(tmp))
        hp__flame_put(b, tmp, (size_t)n);
}

/* @return the length of a valid UTF-8 sequence starting at s (at most n bytes), or 0 */
static size_t hp__flame_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i != len; ++i) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not characters. */
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* @return the number of characters in s as hp__flame_escape counts them */
static size_t hp__flame_chars(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; ++chars) {
        size_t l = hp__flame_utf8_len((const unsigned char *)s + i, n - i);
        i += l != 0 ? l : 1;
    }
    return chars;
}

/* The entity of one of XML's five special characters, or NULL for any other byte. */
static const char *hp__flame_entity(unsigned char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    default:
        return NULL;
    }
}

/*
 * Appends s as XML character data, at most max_chars characters of it (the
 * caller decides where to cut and adds the ".."). The five special characters
 * become entities; control characters and bytes that are not valid UTF-8
 * become '?', because XML 1.0 cannot carry them at all and one bad symbol name
 * must not make the whole document unparsable.
 */
static void hp__flame_escape(hp_flame_buf_t *b, const char *s, size_t n, size_t max_chars)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t chars = 0;
    for (size_t i = 0; i < n && chars != max_chars; ++chars) {
        unsigned char c = u[i];
        const char *entity = hp__flame_entity(c);
        if (entity != NULL) {
            hp__flame_put(b, entity, strlen(entity));
        } else if (c < 0x80) {
            char ch = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
            hp__flame_put(b, &ch, 1);
        } else {
            size_t l = hp__flame_utf8_len(u + i, n - i);
            if (l == 0) {
                hp__flame_put(b, "?", 1);
            } else {
                hp__flame_put(b, s + i, l);
                i += l;
                continue;
            }
        }
        ++i;
    }
}

/* Appends a name shortened to max_chars characters, the last two replaced by ".." when it is cut. */
static void hp__flame_name(hp_flame_buf_t *b, const char *s, size_t n, size_t max_chars)
{
    if (hp__flame_chars(s, n) <= max_chars) {
        hp__flame_escape(b, s, n, max_chars);
    } else {
        hp__flame_escape(b, s, n, max_chars - 2);
        hp__flame_put(b, "..", 2);
    }
}

/* The "hot" palette of classic flame graphs, picked by a hash of the name so a function keeps its colour. */
static void hp__flame_color(const char *name, size_t len, int *r, int *g, int *bl)
{
    uint32_t h = hp__flame_hash(name, len, 0);
    *r = 205 + (int)((h & 0xff) * 50 / 255);
    *g = (int)(((h >> 8) & 0xff) * 230 / 255);
    *bl = (int)(((h >> 16) & 0xff) * 55 / 255);
}

typedef struct st_hp_flame_render_t {
    const hp_flame_tree_t *tree;
    hp_flame_buf_t *buf;
    double scale;       /* pixels per sample */
    uint32_t max_depth; /* deepest drawn row */
    int height;
    const char *unit; /* what a count is: "samples" (CPU) or "bytes" (heap) */
} hp_flame_render_t;

static void hp__flame_measure(hp_flame_render_t *rd, uint32_t idx)
{
    const hp_flame_node_t *nd = &rd->tree->nodes[idx];
    if ((double)nd->count * rd->scale < HP_FLAME_MIN_WIDTH)
        return;
    if (nd->depth > rd->max_depth)
        rd->max_depth = nd->depth;
    for (uint32_t i = 0; i != nd->num_children; ++i)
        hp__flame_measure(rd, rd->tree->kids[nd->children + i]);
}

/* Draws a node at `offset` samples from the left edge, then its children side by side above it. */
static void hp__flame_draw(hp_flame_render_t *rd, uint32_t idx, uint64_t offset)
{
    const hp_flame_tree_t *t = rd->tree;
    const hp_flame_node_t *nd = &t->nodes[idx];
    double w = (double)nd->count * rd->scale;
    if (w < HP_FLAME_MIN_WIDTH || rd->buf->err != 0)
        return;
    double x = HP_FLAME_PAD_X + (double)offset * rd->scale;
    int y = rd->height - HP_FLAME_BOTTOM - (int)(nd->depth + 1) * HP_FLAME_ROW;
    int cr, cg, cb;
    hp__flame_color(nd->name, nd->name_len, &cr, &cg, &cb);
    double pct = 100.0 * (double)nd->count / (double)t->nodes[0].count;

    hp__flame_puts(rd->buf, "<g><title>");
    hp__flame_name(rd->buf, nd->name, nd->name_len, HP_FLAME_MAX_TOOLTIP);
    hp__flame_printf(rd->buf,
                     " (%llu %s, %.2f%%)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" "
                     "rx=\"2\" ry=\"2\"/>",
                     (unsigned long long)nd->count, rd->unit, pct, x, y, w, HP_FLAME_ROW - 1, cr, cg, cb);
    size_t fit = (size_t)((w - 6) / HP_FLAME_CHAR_W);
    if (w > 6 && fit >= 4) {
        hp__flame_printf(rd->buf, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, (double)y + 11.5);
        hp__flame_name(rd->buf, nd->name, nd->name_len, fit);
        hp__flame_puts(rd->buf, "</text>");
    }
    hp__flame_puts(rd->buf, "</g>\n");

    for (uint32_t i = 0; i != nd->num_children; ++i) {
        uint32_t c = t->kids[nd->children + i];
        hp__flame_draw(rd, c, offset);
        offset += t->nodes[c].count;
    }
}

static int hp__flame_render(const hp_flame_tree_t *t, const char *title, const char *unit, hp_flame_buf_t *b)
{
    uint64_t total = t->nodes[0].count;
    hp_flame_render_t rd = {.tree = t, .buf = b, .unit = unit};
    rd.scale = total != 0 ? (double)(HP_FLAME_WIDTH - 2 * HP_FLAME_PAD_X) / (double)total : 0;
    if (total != 0)
        hp__flame_measure(&rd, 0);
    rd.height = HP_FLAME_TOP + (int)(rd.max_depth + 1) * HP_FLAME_ROW + HP_FLAME_BOTTOM;

    hp__flame_printf(b,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                     "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                     "viewBox=\"0 0 %d %d\">\n",
                     HP_FLAME_WIDTH, rd.height, HP_FLAME_WIDTH, rd.height);
    hp__flame_printf(b,
                     "<style>text{font-family:monospace;font-size:%dpx;fill:#000}rect:hover{stroke:#000;stroke-width:0.5}"
                     "</style>\n<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f8f8f0\"/>\n",
                     HP_FLAME_FONT, HP_FLAME_WIDTH, rd.height);
    hp__flame_printf(b, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" style=\"font-size:17px\">", HP_FLAME_WIDTH / 2);
    const char *head = title != NULL ? title : "Flame graph";
    hp__flame_name(b, head, strlen(head), 160);
    hp__flame_printf(b, " (%llu %s)</text>\n", (unsigned long long)total, unit);
    if (total == 0)
        hp__flame_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no %s</text>\n", HP_FLAME_WIDTH / 2,
                         rd.height - HP_FLAME_BOTTOM - 4, unit);
    else
        hp__flame_draw(&rd, 0, 0);
    hp__flame_puts(b, "</svg>\n");
    return b->err;
}

int hp_flame_svg(const char *folded, size_t len, char **out, size_t *outlen, const char *title, const char *unit)
{
    if (unit == NULL)
        unit = "samples";
    hp_flame_tree_t t;
    int rc = hp__flame_tree_init(&t);
    if (rc != 0)
        return rc;
    if ((rc = hp__flame_parse(&t, folded != NULL ? folded : "", folded != NULL ? len : 0)) == 0 &&
        (rc = hp__flame_sort_children(&t)) == 0) {
        hp_flame_buf_t b = {0};
        rc = hp__flame_render(&t, title, unit, &b);
        if (rc == 0) {
            *out = b.p;
            if (outlen != NULL)
                *outlen = b.len;
        } else {
            free(b.p);
        }
    }
    hp__flame_tree_free(&t);
    return rc;
}
