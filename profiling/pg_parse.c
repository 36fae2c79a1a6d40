/*
 * pg_parse: the pure parts of the pg endpoints (see pg_parse.h): matching SQL
 * text, PostgreSQL's slow-statement log, the missing-index rule and text for
 * JSON. Nothing here touches the network, a request or a global.
 */
#include "profiling/pg_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_PG_SLOW_PIDS 16 /* backends whose unpaired plan the log parser remembers at once */

/* ---- matching SQL text ------------------------------------------------------------------------ */

static int hp__is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int hp__is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hp__is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || hp__is_digit(c) || c == '_';
}

static size_t hp__skip_space(const char *s, size_t i, size_t n)
{
    while (i < n && hp__is_space(s[i]))
        ++i;
    return i;
}

/* @return the end of the "$digits" run at s[i], or i when there is none */
static size_t hp__skip_param(const char *s, size_t i, size_t n)
{
    if (i + 1 >= n || s[i] != '$' || !hp__is_digit(s[i + 1]))
        return i;
    size_t j = i + 1;
    while (j < n && hp__is_digit(s[j]))
        ++j;
    return j;
}

/*
 * @return the end of the constant at s[i] that pg_stat_statements would have
 * replaced by a placeholder, or i when there is none: a string ('..', with ''
 * inside, or E'..' with backslash escapes), a number (a leading minus sign is
 * part of it, as PostgreSQL folds it into the constant), or a word standing
 * for a constant (extract's field name, true, false, NULL).
 */
static size_t hp__skip_constant(const char *s, size_t i, size_t n)
{
    size_t j = i;
    int backslash = 0;
    if (j + 1 < n && (s[j] == 'E' || s[j] == 'e') && s[j + 1] == '\'')
        backslash = 1, ++j;
    if (j < n && s[j] == '\'') {
        for (++j; j < n; ++j) {
            if (backslash && s[j] == '\\') {
                ++j;
            } else if (s[j] == '\'') {
                if (j + 1 < n && s[j + 1] == '\'')
                    ++j;
                else
                    return j + 1;
            }
        }
        return i; /* unterminated */
    }
    j = i;
    if (j + 1 < n && s[j] == '-' && (hp__is_digit(s[j + 1]) || s[j + 1] == '.'))
        ++j;
    if (j < n && (hp__is_digit(s[j]) || (s[j] == '.' && j + 1 < n && hp__is_digit(s[j + 1])))) {
        while (j < n && (hp__is_digit(s[j]) || s[j] == '.'))
            ++j;
        if (j + 1 < n && (s[j] == 'e' || s[j] == 'E') && (hp__is_digit(s[j + 1]) || s[j + 1] == '-' || s[j + 1] == '+')) {
            for (j += 2; j < n && hp__is_digit(s[j]); ++j)
                ;
        }
        return j;
    }
    if (i < n && hp__is_ident(s[i]) && !hp__is_digit(s[i])) {
        for (j = i; j < n && hp__is_ident(s[j]); ++j)
            ;
        return j;
    }
    return i;
}

int hp_pg_sql_matches(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = hp__skip_space(a, 0, alen), j = hp__skip_space(b, 0, blen);
    while (i < alen && j < blen) {
        int as = hp__is_space(a[i]), bs = hp__is_space(b[j]);
        if (as || bs) {
            if (!(as && bs))
                return 0;
            i = hp__skip_space(a, i, alen);
            j = hp__skip_space(b, j, blen);
            continue;
        }
        size_t bend = hp__skip_param(b, j, blen);
        if (bend != j) {
            /* A placeholder: the same parameter in ours, or a constant pg_stat_statements replaced. */
            size_t aend = hp__skip_param(a, i, alen);
            if (aend != i) {
                if (aend - i != bend - j || memcmp(a + i, b + j, aend - i) != 0)
                    return 0;
            } else if ((aend = hp__skip_constant(a, i, alen)) == i) {
                return 0;
            }
            i = aend, j = bend;
            continue;
        }
        if (a[i] != b[j])
            return 0;
        ++i, ++j;
    }
    return hp__skip_space(a, i, alen) == alen && hp__skip_space(b, j, blen) == blen;
}

int hp_pg_num_params(const char *sql)
{
    int max = 0;
    for (const char *p = sql; *p != '\0'; ++p) {
        if (*p == '\'') {
            /* Skip string literals; '' inside one is two quotes in a row and lands here again. */
            const char *q = strchr(p + 1, '\'');
            if (q == NULL)
                break;
            p = q;
        } else if (*p == '$' && hp__is_digit(p[1])) {
            int n = 0;
            for (++p; hp__is_digit(*p) && n < 100000; ++p)
                n = n * 10 + (*p - '0');
            --p;
            if (n > max)
                max = n;
        }
    }
    return max;
}

/* A character that continues a word: an identifier, a placeholder's $ or a non-ASCII letter. */
static int hp__is_word(char c)
{
    return hp__is_ident(c) || c == '$' || (unsigned char)c >= 0x80;
}

/* @return the end of the dollar-quoted string whose opening tag ($tag$) starts at p, or NULL when p opens none */
static const char *hp__dollar_end(const char *p, const char *end)
{
    const char *t = p + 1;
    while (t != end && *t != '$' && hp__is_ident(*t) && !hp__is_digit(*t))
        ++t;
    if (t == end || *t != '$')
        return NULL;
    size_t tag = (size_t)(t - p) + 1;
    for (const char *s = t + 1; (size_t)(end - s) >= tag; ++s)
        if (*s == '$' && memcmp(s, p, tag) == 0)
            return s + tag;
    return end; /* unterminated: the rest is the literal */
}

size_t hp_pg_query_shape(const char *q, size_t len, char *out, size_t size)
{
    const char *p = q, *end = q + len;
    size_t n = 0, room = size - 4; /* keeps space for "..." and the NUL */
    int quoted = 0;                /* inside a "quoted identifier", which is copied as it is */
    char prev = ' ';
    while (p != end) {
        char c;
        if (quoted || *p == '"') {
            quoted = *p == '"' ? !quoted : quoted;
            c = *p++;
        } else if (*p == '\'') {
            /* A doubled quote inside the literal is part of it, and so is any character after a backslash in E''. */
            int escapes = p != q && (p[-1] == 'E' || p[-1] == 'e') && (p - 1 == q || !hp__is_word(p[-2]));
            for (++p; p != end; ++p)
                if (escapes && *p == '\\' && p + 1 != end) {
                    ++p;
                } else if (*p == '\'' && (p + 1 == end || p[1] != '\'')) {
                    ++p;
                    break;
                } else if (*p == '\'') {
                    ++p;
                }
            c = '?';
        } else if (*p == '$' && !hp__is_word(prev) && hp__dollar_end(p, end) != NULL) {
            p = hp__dollar_end(p, end);
            c = '?';
        } else if (hp__is_digit(*p) && !hp__is_word(prev)) {
            for (++p; p != end && (hp__is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E' ||
                                   ((*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')));
                 ++p)
                ;
            c = '?';
        } else if (hp__is_space(*p)) {
            while (p != end && hp__is_space(*p))
                ++p;
            if (n == 0 || p == end)
                continue;
            c = ' ';
        } else {
            c = *p++;
        }
        if (n == room) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        out[n++] = c;
        prev = c == '?' ? 'x' : c;
    }
    out[n] = '\0';
    return n;
}

/* ---- JSON helpers ----------------------------------------------------------------------------- */

/* @return the length of the well-formed UTF-8 sequence at s (RFC 3629), or 0 for a bad byte or a NUL */
static size_t hp__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return c != 0;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0)
        len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        len = 3;
    else if (c == 0xED)
        len = 3, hi = 0x9F;
    else if (c == 0xF0)
        len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4)
        len = 4, hi = 0x8F;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i != len; ++i)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*
 * A JSON string of text from PostgreSQL or its log, cut to max_chars
 * characters. Log text is not guaranteed to be UTF-8 (a parameter may hold
 * any bytes), so bad bytes become '?' rather than failing the whole response.
 * @return a new string (never NULL); *cut is set when text was dropped
 */
json_t *hp_pg_text_json(const char *s, size_t len, size_t max_chars, int *cut)
{
    char *buf = malloc(len + 1);
    if (buf == NULL)
        abort();
    size_t o = 0, chars = 0, i = 0;
    while (i < len && chars < max_chars) {
        size_t k = hp__utf8_seq((const unsigned char *)s + i, len - i);
        if (k == 0) {
            buf[o++] = '?';
            ++i;
        } else {
            memcpy(buf + o, s + i, k);
            o += k, i += k;
        }
        ++chars;
    }
    if (cut != NULL)
        *cut = i < len;
    json_t *str = json_stringn_nocheck(buf, o);
    free(buf);
    return str;
}

json_t *hp_pg_ratio_json(double hit, double read)
{
    return hit + read > 0 ? json_real(hit / (hit + read)) : json_null();
}

/* ---- the missing-index rule ------------------------------------------------------------------- */

/*
 * A table gets the missing-index signal when sequential scans keep reading
 * many of its rows. All four must hold, on the counters of
 * pg_stat_user_tables (cumulative since statistics were last reset):
 *
 * - n_live_tup >= 1000: below that a sequential scan is cheap and often the
 *   planner's best choice;
 * - seq_scan >= 50: scans that repeat, not the handful a migration, a seed
 *   or pg_dump leaves behind;
 * - seq_tup_read / seq_scan >= 1000: each scan reads many rows (a scan that a
 *   LIMIT stops early reads few);
 * - seq_tup_read >= 10 * idx_tup_fetch: most rows read come from sequential
 *   scans rather than through an index.
 *
 * It is a pointer, not a verdict: GET /debug/pg/explain of the statements that
 * read the table says which one scans it.
 */
int hp_pg_missing_index_signal(int64_t seq_scan, int64_t seq_tup_read, int64_t idx_tup_fetch, int64_t n_live_tup)
{
    return n_live_tup >= 1000 && seq_scan >= 50 && seq_tup_read / seq_scan >= 1000 && seq_tup_read >= 10 * idx_tup_fetch;
}

/* ---- the log parser --------------------------------------------------------------------------- */

static const char *hp__memmem(const char *p, size_t len, const char *needle)
{
    return memmem(p, len, needle, strlen(needle));
}

static int hp__starts(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

static h2o_iovec_t hp__trimmed(const char *p, const char *end)
{
    while (p < end && hp__is_space(*p))
        ++p;
    while (end > p && hp__is_space(end[-1]))
        --end;
    return h2o_iovec_init(p, (size_t)(end - p));
}

typedef struct st_hp_pg_slow_parser_t {
    hp_pg_slow_entry_t *out;
    size_t max, emitted;
    hp_pg_slow_entry_t pending[HP_PG_SLOW_PIDS]; /* plans waiting for their statement's duration line */
    size_t num_pending;
    long last_pid;    /* the backend of the previous line when it was an execute, or -2 */
    size_t last_slot; /* where that entry went in out */
} hp_pg_slow_parser_t;

/* Keeps the newest max entries: out is a ring until the end, when it is sorted. */
static void hp__slow_emit(hp_pg_slow_parser_t *ps, const hp_pg_slow_entry_t *e)
{
    ps->last_slot = ps->emitted % ps->max;
    ps->out[ps->last_slot] = *e;
    ++ps->emitted;
}

static void hp__slow_take_pending(hp_pg_slow_parser_t *ps, size_t i)
{
    ps->pending[i] = ps->pending[--ps->num_pending];
}

/*
 * Reads the prefix of a log line (before its "LOG:" tag): the timestamp up to
 * " [", and the pid in the brackets.
 */
static void hp__slow_prefix(const char *line, const char *tag, hp_pg_slow_entry_t *e)
{
    const char *br = memchr(line, '[', (size_t)(tag - line));
    e->pid = -1;
    e->at = hp__trimmed(line, br != NULL ? br : tag);
    if (br != NULL) {
        long pid = 0;
        const char *q = br + 1;
        for (; q < tag && hp__is_digit(*q) && pid < 100000000; ++q)
            pid = pid * 10 + (*q - '0');
        if (q < tag && *q == ']' && q > br + 1)
            e->pid = pid;
    }
}

/* One record: a line with a prefix, and the tab-led continuation lines after it, [line, end). */
static void hp__slow_record(hp_pg_slow_parser_t *ps, const char *base, const char *line, const char *line_end, const char *end)
{
    static const char duration_tag[] = "LOG:  duration: ", params_tag[] = "DETAIL:  parameters: ";
    long last_pid = ps->last_pid;
    ps->last_pid = -2;
    const char *tag = hp__memmem(line, (size_t)(line_end - line), duration_tag);
    if (tag == NULL) {
        /* The parameters of an execute come in the same log message, as the very next line. */
        const char *d = hp__memmem(line, (size_t)(line_end - line), params_tag);
        hp_pg_slow_entry_t probe;
        if (d != NULL && last_pid != -2) {
            hp__slow_prefix(line, d, &probe);
            if (probe.pid == last_pid)
                ps->out[ps->last_slot].parameters = hp__trimmed(d + sizeof(params_tag) - 1, end);
        }
        return;
    }
    hp_pg_slow_entry_t e;
    memset(&e, 0, sizeof(e));
    e.offset = (size_t)(line - base);
    hp__slow_prefix(line, tag, &e);
    /* The duration: digits and a point, then " ms". Copied out, so strtod never reads past the line. */
    const char *p = tag + sizeof(duration_tag) - 1;
    char num[32];
    size_t n = 0;
    while (p < line_end && n < sizeof(num) - 1 && (hp__is_digit(*p) || *p == '.'))
        num[n++] = *p++;
    num[n] = '\0';
    if (n == 0 || !hp__starts(p, line_end, " ms"))
        return;
    e.duration_ms = strtod(num, NULL);
    p += 3;
    if (hp__starts(p, line_end, "  plan:")) {
        e.plan = hp__trimmed(p + 7, end);
        /* A second plan from one backend means the first never got its duration line: it stands alone. */
        size_t i;
        for (i = 0; i != ps->num_pending && ps->pending[i].pid != e.pid; ++i)
            ;
        if (i == ps->num_pending && ps->num_pending == HP_PG_SLOW_PIDS) {
            for (size_t k = i = 0; k != ps->num_pending; ++k)
                if (ps->pending[k].offset < ps->pending[i].offset)
                    i = k;
        }
        if (i != ps->num_pending) {
            hp__slow_emit(ps, &ps->pending[i]);
            hp__slow_take_pending(ps, i);
        }
        ps->pending[ps->num_pending++] = e;
        return;
    }
    if (hp__starts(p, line_end, "  ")) {
        /* "statement: SQL", "execute NAME: SQL", "bind NAME: SQL", "parse NAME: SQL", ... */
        p += 2;
        const char *colon = hp__memmem(p, (size_t)(line_end - p), ": ");
        const char *label_end = colon != NULL ? colon : line_end;
        const char *space = memchr(p, ' ', (size_t)(label_end - p));
        if (space != NULL &&
            (hp__starts(p, label_end, "execute ") || hp__starts(p, label_end, "bind ") || hp__starts(p, label_end, "parse "))) {
            e.kind = h2o_iovec_init(p, (size_t)(space - p));
            e.prepared = h2o_iovec_init(space + 1, (size_t)(label_end - space - 1));
        } else {
            e.kind = h2o_iovec_init(p, (size_t)(label_end - p));
        }
        if (colon != NULL)
            e.query = hp__trimmed(colon + 2, end);
    } else {
        e.kind = h2o_iovec_init(tag + 6, 8); /* log_duration's bare line: "duration", from the tag itself */
    }
    for (size_t i = 0; i != ps->num_pending; ++i) {
        if (ps->pending[i].pid == e.pid) {
            e.plan = ps->pending[i].plan;
            hp__slow_take_pending(ps, i);
            break;
        }
    }
    hp__slow_emit(ps, &e);
    ps->last_pid = e.pid;
}

static int hp__slow_newest_first(const void *a, const void *b)
{
    size_t x = ((const hp_pg_slow_entry_t *)a)->offset, y = ((const hp_pg_slow_entry_t *)b)->offset;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t hp_pg_slow_parse(const char *p, size_t len, hp_pg_slow_entry_t *out, size_t max)
{
    if (max == 0)
        return 0;
    hp_pg_slow_parser_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.out = out, ps.max = max, ps.last_pid = -2;
    const char *end = p + len, *line = p;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *line_end = nl != NULL ? nl : end;
        if (*line == '\t' || line == line_end) {
            line = line_end + (nl != NULL); /* a continuation without its first line, or an empty line */
            continue;
        }
        const char *rec_end = line_end;
        while (rec_end < end && rec_end + 1 < end && rec_end[1] == '\t') {
            const char *next = memchr(rec_end + 1, '\n', (size_t)(end - rec_end - 1));
            rec_end = next != NULL ? next : end;
        }
        hp__slow_record(&ps, p, line, line_end, rec_end);
        line = rec_end < end ? rec_end + 1 : end;
    }
    /* Plans whose duration line never came (or is not written yet) stand alone, oldest first. */
    while (ps.num_pending != 0) {
        size_t oldest = 0;
        for (size_t i = 1; i != ps.num_pending; ++i)
            if (ps.pending[i].offset < ps.pending[oldest].offset)
                oldest = i;
        hp__slow_emit(&ps, &ps.pending[oldest]);
        hp__slow_take_pending(&ps, oldest);
    }
    size_t count = ps.emitted < max ? ps.emitted : max;
    qsort(out, count, sizeof(*out), hp__slow_newest_first);
    return count;
}
