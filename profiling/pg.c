/*
 * pg: /debug/pg/statements, /tables, /explain and /slow (see pg.h).
 *
 * Everything runs on the admin thread with its own connections: reads on its
 * pipelined read connection, EXPLAIN on its one transaction connection. The
 * SQL that needs pg_stat_statements is sent as one-off SQL
 * (hp_db_conn_query_sql) rather than prepared with the statement list,
 * because a statement that fails to prepare takes its connection down, and a
 * database without the extension must still serve the API; these endpoints
 * then answer 503 pg_stat_statements_unavailable instead.
 *
 * Mapping pg_stat_statements rows to names. For a statement prepared through
 * the protocol (as all of ours are), pg_stat_statements records the text that
 * was prepared, but which form depends on when its entry was created:
 *
 * - at prepare time (the entry did not exist when the connection prepared its
 *   statements), it stores the normalised text, with every constant replaced
 *   by a placeholder numbered after the statement's own parameters:
 *   "(extract(epoch FROM o.created_at) * 1000000)" becomes
 *   "(extract($5 FROM o.created_at) * $6)";
 * - at execution time (after pg_stat_statements_reset(), the already-prepared
 *   statement is not parsed again), it stores the text verbatim.
 *
 * Both were observed on PostgreSQL 15 with pg_stat_statements 1.10, and the
 * query id is the same either way. hp_pg_sql_matches() therefore compares
 * with whitespace runs equal and lets a placeholder in PostgreSQL's text
 * stand for a constant in ours. The log lines of log_min_duration_statement
 * name the prepared statement ("execute menu_get: ..."), so /slow needs no
 * matching for them.
 */
#include "profiling/pg.h"
#include "common/db.h"
#include "common/http.h"
#include "common/json.h"
#include "common/router.h"
#include "profiling/admin.h"
#include "services/handlers.h"
#include "services/statements.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HP_PG_QUERY_CHARS 500     /* query texts are cut to this many characters in responses */
#define HP_PG_MAX_PARAMS 32       /* the most parameters a statement of ours has room for in the sample table */
#define HP_PG_ARGS_MAX_BYTES 8192 /* the longest args= value EXPLAIN accepts */
#define HP_PG_SLOW_PIDS 16        /* backends whose unpaired plan the log parser remembers at once */
#define HP_PG_PLAN_DEPTH 64       /* the deepest plan node the summary descends to */

/* ---- the SQL this module sends ---------------------------------------------------------------- */

/*
 * One-off SQL (see the header comment for why it is not in the statement
 * list). It is fixed text: request input only ever travels as parameters.
 */
static const char hp__sql_statements[] =
    "SELECT s.queryid, s.toplevel, s.calls, s.total_exec_time, s.mean_exec_time, s.max_exec_time, s.stddev_exec_time, s.rows, "
    "s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written, s.query, "
    "sum(s.shared_blks_hit) OVER (), sum(s.shared_blks_read) OVER (), count(*) OVER () "
    "FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY s.total_exec_time DESC LIMIT $1::int";
static const char hp__sql_reset[] = "SELECT pg_stat_statements_reset()";

/* Our one-off SQL under names of its own, so /statements maps it like the statement list. */
static const hp_db_stmt_def_t hp__own_sql[] = {
    {"debug_pg_statements", hp__sql_statements},
    {"debug_pg_statements_reset", hp__sql_reset},
};

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

const char *hp_pg_stmt_for_sql(const char *sql, size_t len)
{
    for (size_t i = 0; i != HP_STMT__COUNT; ++i)
        if (hp_pg_sql_matches(hp_statements[i].sql, strlen(hp_statements[i].sql), sql, len))
            return hp_statements[i].name;
    for (size_t i = 0; i != sizeof(hp__own_sql) / sizeof(hp__own_sql[0]); ++i)
        if (hp_pg_sql_matches(hp__own_sql[i].sql, strlen(hp__own_sql[i].sql), sql, len))
            return hp__own_sql[i].name;
    return NULL;
}

/* @return the id of the statement named name, or -1 */
static int hp__stmt_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i != HP_STMT__COUNT; ++i)
        if (strlen(hp_statements[i].name) == len && memcmp(hp_statements[i].name, name, len) == 0)
            return (int)i;
    return -1;
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
static json_t *hp__text_json(const char *s, size_t len, size_t max_chars, int *cut)
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

static json_t *hp__ratio_json(double hit, double read)
{
    return hit + read > 0 ? json_real(hit / (hit + read)) : json_null();
}

/* ---- the plan summary ------------------------------------------------------------------------- */

/* Appends s to the array unless an equal string is there already. */
static void hp__add_unique_str(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return;
    json_array_append_new(arr, json_string(s));
}

static void hp__add_unique_index(json_t *arr, const char *rel, const char *idx)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "relation")), rel) == 0 &&
            strcmp(json_string_value(json_object_get(v, "index")), idx) == 0)
            return;
    }
    json_array_append_new(arr, json_pack("{ss ss}", "relation", rel, "index", idx));
}

/* What the summary collects while it walks a plan. */
typedef struct st_hp_plan_scans_t {
    json_t *seq, *idx, *idx_only, *bitmap_heap, *bitmap_index;
    json_t *sorts; /* "Sort", "Incremental Sort": the order did not (all) come from an index */
} hp_plan_scans_t;

static void hp__plan_walk(const json_t *node, hp_plan_scans_t *sc, int depth)
{
    if (!json_is_object(node) || depth > HP_PG_PLAN_DEPTH)
        return;
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *index = json_string_value(json_object_get(node, "Index Name"));
    if (type != NULL && rel != NULL) {
        if (strcmp(type, "Seq Scan") == 0)
            hp__add_unique_str(sc->seq, rel);
        else if (strcmp(type, "Index Scan") == 0)
            hp__add_unique_index(sc->idx, rel, index != NULL ? index : "");
        else if (strcmp(type, "Index Only Scan") == 0)
            hp__add_unique_index(sc->idx_only, rel, index != NULL ? index : "");
        else if (strcmp(type, "Bitmap Heap Scan") == 0)
            hp__add_unique_str(sc->bitmap_heap, rel);
    }
    if (type != NULL && index != NULL && strcmp(type, "Bitmap Index Scan") == 0)
        hp__add_unique_str(sc->bitmap_index, index); /* its relation is on the Bitmap Heap Scan above it */
    if (type != NULL && (strcmp(type, "Sort") == 0 || strcmp(type, "Incremental Sort") == 0))
        hp__add_unique_str(sc->sorts, type);
    size_t i;
    json_t *child;
    json_array_foreach(json_object_get(node, "Plans"), i, child) hp__plan_walk(child, sc, depth + 1);
}

static json_t *hp__number_or_null(const json_t *v)
{
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

json_t *hp_pg_plan_summary(const json_t *explain)
{
    const json_t *doc = json_is_array(explain) ? json_array_get(explain, 0) : explain;
    hp_plan_scans_t sc = {json_array(), json_array(), json_array(), json_array(), json_array(), json_array()};
    const char *top = NULL;
    if (json_is_string(doc)) {
        top = json_string_value(doc); /* "Utility Statement": BEGIN and friends have no plan */
    } else {
        const json_t *plan = json_object_get(doc, "Plan");
        top = json_string_value(json_object_get(plan, "Node Type"));
        hp__plan_walk(plan, &sc, 0);
    }
    return json_pack("{s:s? s:b s:b s:b s:o s:o s:o s:o s:o s:o s:o s:o}", "top_node", top, "has_seq_scan",
                     json_array_size(sc.seq) != 0, "has_index_scan", json_array_size(sc.idx) != 0, "has_index_only_scan",
                     json_array_size(sc.idx_only) != 0, "sorts", sc.sorts, "seq_scans", sc.seq, "index_scans", sc.idx,
                     "index_only_scans", sc.idx_only, "bitmap_heap_scans", sc.bitmap_heap, "bitmap_index_scans", sc.bitmap_index,
                     "planning_time_ms", hp__number_or_null(json_object_get(doc, "Planning Time")), "execution_time_ms",
                     hp__number_or_null(json_object_get(doc, "Execution Time")));
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
#define HP_PG_MISSING_INDEX_RULE                                                                                                   \
    "n_live_tup >= 1000 and seq_scan >= 50 and seq_tup_read / seq_scan >= 1000 and seq_tup_read >= 10 * idx_tup_fetch"

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

/* ---- GET /debug/pg/statements, POST /debug/pg/statements/reset -------------------------------- */

/*
 * pg_stat_statements is missing (42P01: no such view, 42883: no such
 * function) or not loaded (55000): a 503 that says so, rather than a bare
 * db_error. @return 1 when the request was answered
 */
static int hp__pgss_failed(hp_req_t *r, PGresult *res, const char *err)
{
    if (err == hp_err_db_error && res != NULL) {
        const char *state = hp_db_sqlstate(res);
        if (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "55000") == 0) {
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            char *text = hp_pool_printf(r,
                                        "pg_stat_statements is not available in this database (%s): it must be in "
                                        "shared_preload_libraries and created with CREATE EXTENSION pg_stat_statements",
                                        msg != NULL ? msg : state);
            PQclear(res);
            hp_respond_error(r, 503, "pg_stat_statements_unavailable", text);
            return 1;
        }
    }
    return hp_db_failed(r, res, err);
}

static json_t *hp__int_json(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static json_t *hp__real_json(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_real(strtod(PQgetvalue(res, row, col), NULL));
}

/* Where a statements document goes: its own endpoint, or the pg section of /debug/perf. */
typedef struct st_hp_pg_stmts_req_t {
    hp_pg_doc_cb cb;
    void *ud;
} hp_pg_stmts_req_t;

static void hp__statements_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_stmts_req_t *q = ud;
    if (hp__pgss_failed(r, res, err))
        return;
    json_t *list = json_array();
    double hit = 0, read = 0;
    int64_t tracked = 0;
    for (int i = 0, n = PQntuples(res); i != n; ++i) {
        const char *query = PQgetvalue(res, i, 12);
        size_t query_len = (size_t)PQgetlength(res, i, 12);
        const char *name = hp_pg_stmt_for_sql(query, query_len);
        double row_hit = strtod(PQgetvalue(res, i, 8), NULL), row_read = strtod(PQgetvalue(res, i, 9), NULL);
        int cut;
        json_t *text = hp__text_json(query, query_len, HP_PG_QUERY_CHARS, &cut);
        json_t *row = json_pack("{s:s? s:s s:b s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:o s:b}", "name", name, "queryid",
                                PQgetvalue(res, i, 0), "toplevel", PQgetvalue(res, i, 1)[0] == 't', "calls",
                                hp__int_json(res, i, 2), "total_exec_time_ms", hp__real_json(res, i, 3), "mean_exec_time_ms",
                                hp__real_json(res, i, 4), "max_exec_time_ms", hp__real_json(res, i, 5), "stddev_exec_time_ms",
                                hp__real_json(res, i, 6), "rows", hp__int_json(res, i, 7), "shared_blks_hit",
                                hp__int_json(res, i, 8), "shared_blks_read", hp__int_json(res, i, 9), "temp_blks_read",
                                hp__int_json(res, i, 10), "temp_blks_written", hp__int_json(res, i, 11), "hit_ratio",
                                hp__ratio_json(row_hit, row_read), "query", text, "query_truncated", cut);
        json_array_append_new(list, row);
        hit = strtod(PQgetvalue(res, i, 13), NULL);
        read = strtod(PQgetvalue(res, i, 14), NULL);
        tracked = strtoll(PQgetvalue(res, i, 15), NULL, 10);
    }
    PQclear(res);
    q->cb(r, q->ud,
          json_pack("{s:o s:I s:o s:s}", "statements", list, "tracked", (json_int_t)tracked, "hit_ratio", hp__ratio_json(hit, read),
                    "order", "total_exec_time desc"));
}

void hp_pg_statements_doc(hp_req_t *r, int limit, hp_pg_doc_cb cb, void *ud)
{
    hp_pg_stmts_req_t *q = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*q));
    q->cb = cb;
    q->ud = ud;
    const char *values[] = {hp_pool_printf(r, "%d", limit)};
    hp_db_conn_query_sql(r, NULL, hp__sql_statements, values, 1, hp__statements_on_db, q);
}

static void hp__statements_respond(hp_req_t *r, void *ud, json_t *doc)
{
    (void)ud;
    hp_respond_json(r, 200, doc);
}

static void hp__statements(hp_req_t *r)
{
    int limit;
    if (hp_limit_param(r, 20, 100, &limit) != 0)
        return;
    hp_pg_statements_doc(r, limit, hp__statements_respond, NULL);
}

static void hp__reset_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (hp__pgss_failed(r, res, err))
        return;
    PQclear(res);
    hp_respond_json(r, 200, json_pack("{sb}", "reset", 1));
}

static void hp__statements_reset(hp_req_t *r)
{
    if (!hp_admin_authorized(r))
        return;
    hp_db_conn_query_sql(r, NULL, hp__sql_reset, NULL, 0, hp__reset_on_db, NULL);
}

/* ---- GET /debug/pg/tables ----------------------------------------------------------------------- */

static void hp__tables_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (hp_db_failed(r, res, err))
        return;
    json_t *list = json_array();
    for (int i = 0, n = PQntuples(res); i != n; ++i) {
        int64_t seq_scan = strtoll(PQgetvalue(res, i, 2), NULL, 10), seq_tup_read = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        int64_t idx_tup_fetch = strtoll(PQgetvalue(res, i, 5), NULL, 10), live = strtoll(PQgetvalue(res, i, 6), NULL, 10);
        json_t *avg = seq_scan > 0 ? json_integer(seq_tup_read / seq_scan) : json_null();
        json_array_append_new(
            list, json_pack("{s:s s:s s:I s:I s:o s:I s:o s:I s:o s:o s:o s:b}", "schema", PQgetvalue(res, i, 0), "table",
                            PQgetvalue(res, i, 1), "seq_scan", (json_int_t)seq_scan, "seq_tup_read", (json_int_t)seq_tup_read,
                            "idx_scan", hp__int_json(res, i, 4), "idx_tup_fetch", (json_int_t)idx_tup_fetch,
                            "avg_rows_per_seq_scan", avg, "n_live_tup", (json_int_t)live, "n_dead_tup", hp__int_json(res, i, 7),
                            "table_bytes", hp__int_json(res, i, 8), "index_bytes", hp__int_json(res, i, 9), "missing_index_signal",
                            hp_pg_missing_index_signal(seq_scan, seq_tup_read, idx_tup_fetch, live)));
    }
    PQclear(res);
    hp_respond_json(
        r, 200,
        json_pack("{s:o s:s s:s}", "tables", list, "missing_index_rule", HP_PG_MISSING_INDEX_RULE, "order", "seq_tup_read desc"));
}

static void hp__tables(hp_req_t *r)
{
    const char *values[] = {"500"};
    hp_db_query(r, HP_STMT_debug_pg_tables, values, 1, hp__tables_on_db, NULL);
}

/* ---- GET /debug/pg/explain ---------------------------------------------------------------------- */

/*
 * Sample arguments, as SQL expressions evaluated in the EXPLAIN's own
 * transaction, for every statement with parameters; a test checks that each
 * statement of the list has one per parameter. They pick rows that exist in a
 * seeded database (the customer with the most orders, the restaurant with the
 * largest menu), so a plan shows the statement's real work. Write statements
 * get arguments that succeed, since the transaction is rolled back anyway.
 */
typedef struct st_hp_pg_sample_t {
    const char *stmt;
    const char *args[HP_PG_MAX_PARAMS]; /* up to the first NULL */
} hp_pg_sample_t;

#define HP__TOP_CUSTOMER "(SELECT user_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)"
#define HP__FIRST_ITEM_RESTAURANT "(SELECT restaurant_id FROM menu_items ORDER BY id LIMIT 1)"

static const hp_pg_sample_t hp__samples[] = {
    {"auth_token", {"(SELECT token_hash FROM users ORDER BY id LIMIT 1)"}},
    {"restaurant_list", {"(SELECT name FROM cities ORDER BY id LIMIT 1)", "NULL", "NULL", "NULL", "NULL", "21"}},
    {"restaurant_get", {"(SELECT min(id) FROM restaurants)"}},
    {"menu_get", {"(SELECT restaurant_id FROM menu_items GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)"}},
    {"menu_item_patch", {HP__FIRST_ITEM_RESTAURANT, "(SELECT min(id) FROM menu_items)", "NULL", "NULL", "false", "NULL"}},
    {"cart_restaurant", {"(SELECT min(id) FROM restaurants)"}},
    {"cart_items", {"(SELECT array_agg(id) FROM (SELECT id FROM menu_items ORDER BY id LIMIT 3) s)"}},
    {"cart_modifiers", {"(SELECT array_agg(DISTINCT item_id) FROM (SELECT item_id FROM item_modifiers ORDER BY id LIMIT 6) s)"}},
    {"cart_promotions", {"(SELECT coalesce(min(restaurant_id), 1) FROM promotions WHERE active)"}},
    {"order_by_idempotency_key", {HP__TOP_CUSTOMER, "'hp-explain'"}},
    {"txn_begin", {NULL}},
    {"txn_commit", {NULL}},
    {"txn_rollback", {NULL}},
    {"order_insert",
     {"(SELECT min(id) FROM users WHERE role = 'customer')", HP__FIRST_ITEM_RESTAURANT, "1000", "0", "80", "299", "150", "0", "0",
      "1529", "'hp-explain-' || gen_random_uuid()", "ARRAY[(SELECT min(id) FROM menu_items)]", "'{1}'", "'{1000}'", "'{\"{}\"}'",
      "'{1000}'", "'hp-explain'"}},
    {"stock_decrement", {"ARRAY[(SELECT coalesce(min(id) FILTER (WHERE stock IS NOT NULL), min(id)) FROM menu_items)]", "'{1}'"}},
    {"order_get", {"(SELECT max(id) FROM orders)"}},
    {"order_items_for", {"(SELECT array_agg(id) FROM (SELECT id FROM orders ORDER BY id DESC LIMIT 20) s)"}},
    {"order_history", {HP__TOP_CUSTOMER, "NULL", "NULL", "21"}},
    {"restaurant_names", {"(SELECT array_agg(id) FROM (SELECT id FROM restaurants ORDER BY id LIMIT 20) s)"}},
    {"order_items_of", {"(SELECT max(id) FROM orders)"}},
    {"restaurant_name_of", {"(SELECT min(id) FROM restaurants)"}},
    {"order_transition",
     {"(SELECT max(id) FROM orders)", "'{placed,accepted,preparing,ready,picked_up}'", "'cancelled'",
      "(SELECT user_id FROM orders ORDER BY id DESC LIMIT 1)"}},
    {"debug_pg_tables", {"500"}},
};

#undef HP__TOP_CUSTOMER
#undef HP__FIRST_ITEM_RESTAURANT

/* @return the sample of statement name, or NULL */
static const hp_pg_sample_t *hp__sample_for(const char *name)
{
    for (size_t i = 0; i != sizeof(hp__samples) / sizeof(hp__samples[0]); ++i)
        if (strcmp(hp__samples[i].stmt, name) == 0)
            return &hp__samples[i];
    return NULL;
}

static int hp__sample_num_args(const hp_pg_sample_t *s)
{
    int n = 0;
    while (n != HP_PG_MAX_PARAMS && s->args[n] != NULL)
        ++n;
    return n;
}

int hp_pg_sample_args(const char *stmt, const char *const **args)
{
    const hp_pg_sample_t *s = hp__sample_for(stmt);
    if (s == NULL)
        return -1;
    *args = s->args;
    return hp__sample_num_args(s);
}

typedef struct st_hp_pg_explain_t {
    int stmt;
    int num_params;
    int from_request;      /* the arguments came in args=, so errors in them are the client's */
    const char **values;   /* from_request: the arguments as text (NULL for null), bound to the quoting query */
    const char *quote_sql; /* turns each argument into a literal; see hp__explain_on_begin */
    const char **literals; /* the literals EXECUTE gets */
} hp_pg_explain_t;

/*
 * The failure branch once the connection is ours: the transaction is rolled
 * back. An error of class 22 (data exception), 23 (integrity) or 42 (a type
 * mismatch, say) is what bad arguments raise: a 400 when the client gave
 * them, a 500 when our samples did. Anything else (a timeout, a lost
 * connection, a serialization failure) answers as any statement's would.
 */
static void hp__explain_failed(hp_req_t *r, hp_pg_explain_t *ex, PGresult *res, const char *err)
{
    if (r->held != NULL)
        hp_db_release(r, r->held, 1);
    if (err == hp_err_db_error && res != NULL) {
        const char *state = hp_db_sqlstate(res), *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 || strncmp(state, "42", 2) == 0) {
            char *text = hp_pool_printf(r, "EXPLAIN of %s with %s arguments failed: %s (SQLSTATE %s)", hp_statements[ex->stmt].name,
                                        ex->from_request ? "the given" : "the sample", msg != NULL ? msg : "", state);
            PQclear(res);
            hp_respond_error(r, ex->from_request ? 400 : 500, ex->from_request ? "bad_args" : "explain_failed", text);
            return;
        }
    }
    hp_db_failed(r, res, err);
}

static void hp__explain_on_explained(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        hp__explain_failed(r, ex, res, err);
        return;
    }
    /* ROLLBACK first: whatever the statement wrote is gone before anyone hears about it. */
    hp_db_release(r, r->held, 1);
    json_error_t jerr;
    json_t *plan = PQntuples(res) == 1 ? json_loadb(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, &jerr) : NULL;
    PQclear(res);
    if (plan == NULL) {
        hp_respond_error(r, 500, "explain_failed", "EXPLAIN did not return one JSON document");
        return;
    }
    json_t *args = json_array();
    for (int i = 0; i != ex->num_params; ++i)
        json_array_append_new(args, json_string(ex->literals[i]));
    hp_respond_json(r, 200,
                    json_pack("{s:s s:o s:s s:b s:o s:o}", "statement", hp_statements[ex->stmt].name, "args", args, "args_source",
                              ex->from_request ? "request" : "sample", "rolled_back", 1, "summary", hp_pg_plan_summary(plan),
                              "plan", plan));
}

static void hp__explain_send(hp_req_t *r, hp_pg_explain_t *ex)
{
    /* The name is ours (looked up in the list) and every argument a literal PostgreSQL quoted itself. */
    const char *name = hp_statements[ex->stmt].name;
    size_t len = 64 + strlen(name);
    for (int i = 0; i != ex->num_params; ++i)
        len += strlen(ex->literals[i]) + 2;
    char *sql = h2o_mem_alloc_pool(&r->h2o->pool, len), *o = sql;
    o += sprintf(o, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE %s", name);
    for (int i = 0; i != ex->num_params; ++i)
        o += sprintf(o, "%s%s", i == 0 ? "(" : ", ", ex->literals[i]);
    if (ex->num_params != 0)
        strcpy(o, ")");
    hp_db_conn_query_sql(r, r->held, sql, NULL, 0, hp__explain_on_explained, ex);
}

static void hp__explain_on_quoted(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        hp__explain_failed(r, ex, res, err);
        return;
    }
    ex->literals = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex->literals) * (size_t)ex->num_params);
    for (int i = 0; i != ex->num_params; ++i)
        ex->literals[i] = h2o_strdup(&r->h2o->pool, PQgetvalue(res, 0, i), SIZE_MAX).base;
    PQclear(res);
    hp__explain_send(r, ex);
}

/*
 * In the transaction. The arguments become literals in a first query,
 * "SELECT quote_nullable((expr)::text), ...": EXECUTE's arguments may not
 * contain subqueries, so the samples are evaluated here; and a request's
 * arguments arrive as bound parameters, so PostgreSQL quotes them (as
 * PQescapeLiteral would, E'' form included) and no request text is ever
 * spliced into SQL. quote_nullable turns NULL into the bare word NULL.
 */
static void hp__explain_on_begin(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_pg_explain_t *ex = ud;
    if (err != NULL) {
        /* Never go on without the transaction: EXPLAIN ANALYZE of a write would then commit it. */
        hp__explain_failed(r, ex, res, err);
        return;
    }
    PQclear(res);
    if (ex->num_params == 0) {
        hp__explain_send(r, ex);
        return;
    }
    hp_db_conn_query_sql(r, r->held, ex->quote_sql, ex->values, ex->from_request ? ex->num_params : 0, hp__explain_on_quoted, ex);
}

static void hp__explain_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    if (err != NULL) {
        hp_respond_failure(r, err);
        return;
    }
    hp_db_conn_query(r, conn, HP_STMT_txn_begin, NULL, 0, hp__explain_on_begin, ud);
}

/*
 * Reads args= (a JSON array of strings, numbers and nulls, one per parameter)
 * into ex->values. @return 0, or -1 after answering 400
 */
static int hp__explain_args(hp_req_t *r, hp_pg_explain_t *ex, h2o_iovec_t text)
{
    const char *name = hp_statements[ex->stmt].name;
    json_error_t jerr;
    json_t *doc = NULL;
    if (text.len > HP_PG_ARGS_MAX_BYTES || !hp_json_depth_ok(text.base, text.len, 1) ||
        (doc = json_loadb(text.base, text.len, 0, &jerr)) == NULL || !json_is_array(doc)) {
        json_decref(doc);
        hp_respond_error(
            r, 400, "bad_args",
            hp_pool_printf(r, "args must be a JSON array of strings, numbers and nulls, at most %d bytes", HP_PG_ARGS_MAX_BYTES));
        return -1;
    }
    if (json_array_size(doc) != (size_t)ex->num_params) {
        hp_respond_error(r, 400, "bad_args",
                         hp_pool_printf(r, "%s takes %d arguments, not %zu", name, ex->num_params, json_array_size(doc)));
        json_decref(doc);
        return -1;
    }
    ex->values = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex->values) * (size_t)(ex->num_params + 1));
    for (int i = 0; i != ex->num_params; ++i) {
        json_t *v = json_array_get(doc, (size_t)i);
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
            ex->values[i] = h2o_strdup(&r->h2o->pool, json_string_value(v), json_string_length(v)).base;
        } else if (json_is_integer(v)) {
            ex->values[i] = hp_pool_printf(r, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            ex->values[i] = hp_pool_printf(r, "%.17g", json_real_value(v));
        } else if (json_is_null(v)) {
            ex->values[i] = NULL;
        } else {
            hp_respond_error(r, 400, "bad_args",
                             hp_pool_printf(r,
                                            "argument %d is not a string, a number or null (give booleans and arrays as "
                                            "strings: \"true\", \"{1,2}\")",
                                            i + 1));
            json_decref(doc);
            return -1;
        }
    }
    json_decref(doc);
    return 0;
}

static void hp__explain(hp_req_t *r)
{
    if (!hp_admin_authorized(r))
        return;
    h2o_iovec_t name, args;
    int found = hp_query_param(r, "statement", &name);
    if (found <= 0) {
        hp_respond_error(r, 400, "bad_param", "statement=NAME is required (a name from services/statements.h)");
        return;
    }
    hp_pg_explain_t *ex = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ex));
    memset(ex, 0, sizeof(*ex));
    if ((ex->stmt = hp__stmt_lookup(name.base, name.len)) < 0) {
        hp_respond_error(r, 400, "unknown_statement",
                         hp_pool_printf(r,
                                        "no statement named \"%.64s\"; EXPLAIN runs named statements only (services/statements.h)",
                                        name.base));
        return;
    }
    ex->num_params = hp_pg_num_params(hp_statements[ex->stmt].sql);
    if ((found = hp_query_param(r, "args", &args)) < 0) {
        hp_respond_error(r, 400, "bad_args", "args is not a well-formed query parameter");
        return;
    }
    ex->from_request = found > 0;
    const hp_pg_sample_t *sample = NULL;
    if (ex->from_request) {
        if (hp__explain_args(r, ex, args) != 0)
            return;
    } else if (ex->num_params != 0 &&
               ((sample = hp__sample_for(hp_statements[ex->stmt].name)) == NULL || hp__sample_num_args(sample) != ex->num_params)) {
        hp_respond_error(
            r, 500, "no_sample_args",
            hp_pool_printf(r, "%s has no sample arguments in profiling/pg.c; give args=[...]", hp_statements[ex->stmt].name));
        return;
    }
    if (ex->num_params != 0) {
        size_t len = 16;
        for (int i = 0; i != ex->num_params; ++i)
            len += 40 + (sample != NULL ? strlen(sample->args[i]) : 8);
        char *sql = h2o_mem_alloc_pool(&r->h2o->pool, len), *o = sql;
        o += sprintf(o, "SELECT ");
        for (int i = 0; i != ex->num_params; ++i) {
            if (sample != NULL)
                o += sprintf(o, "%squote_nullable((%s)::text)", i == 0 ? "" : ", ", sample->args[i]);
            else
                o += sprintf(o, "%squote_nullable($%d::text)", i == 0 ? "" : ", ", i + 1);
        }
        ex->quote_sql = sql;
    }
    hp_db_acquire(r, hp__explain_on_conn, ex);
}

/* ---- GET /debug/pg/slow ------------------------------------------------------------------------- */

/*
 * Reads the last HP_PG_LOG_TAIL_BYTES of the log into the request pool. This
 * is a blocking pread on the admin thread's loop, which is acceptable: the
 * file is local, the read is bounded (a MiB from the page cache takes well
 * under a millisecond), and the admin loop serves no API traffic.
 * @return the bytes, starting at a whole line, or NULL base with errno set
 */
static h2o_iovec_t hp__log_tail(hp_req_t *r, const char *path, int *truncated)
{
    h2o_iovec_t buf = {NULL, 0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return buf;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno != 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return buf;
    }
    off_t from = st.st_size > HP_PG_LOG_TAIL_BYTES ? st.st_size - HP_PG_LOG_TAIL_BYTES : 0;
    size_t want = (size_t)(st.st_size - from), got = 0;
    char *data = h2o_mem_alloc_pool(&r->h2o->pool, want + 1);
    while (got < want) {
        ssize_t n = pread(fd, data + got, want - got, from + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the file shrank (it was truncated): parse what was read */
        got += (size_t)n;
    }
    close(fd);
    *truncated = from > 0;
    size_t skip = 0;
    if (from > 0) {
        /* The read began mid-line; the parser starts at the first whole line. */
        const char *nl = memchr(data, '\n', got);
        skip = nl != NULL ? (size_t)(nl - data) + 1 : got;
    }
    return h2o_iovec_init(data + skip, got - skip);
}

static json_t *hp__span_json(h2o_iovec_t s)
{
    return s.base != NULL ? hp__text_json(s.base, s.len, HP_PG_QUERY_CHARS, NULL) : json_null();
}

static json_t *hp__slow_entry_json(const hp_pg_slow_entry_t *e)
{
    json_error_t jerr;
    json_t *plan = e->plan.base != NULL ? json_loadb(e->plan.base, e->plan.len, 0, &jerr) : NULL;
    /* Our name: the prepared statement's, when it is one of ours; otherwise the SQL's, logged or in the plan. */
    const char *name = NULL;
    if (e->prepared.base != NULL && hp__stmt_lookup(e->prepared.base, e->prepared.len) >= 0)
        name = hp_statements[hp__stmt_lookup(e->prepared.base, e->prepared.len)].name;
    else if (e->query.base != NULL)
        name = hp_pg_stmt_for_sql(e->query.base, e->query.len);
    else if (plan != NULL && json_is_string(json_object_get(plan, "Query Text")))
        name = hp_pg_stmt_for_sql(json_string_value(json_object_get(plan, "Query Text")),
                                  json_string_length(json_object_get(plan, "Query Text")));
    int cut = 0;
    json_t *query = e->query.base != NULL ? hp__text_json(e->query.base, e->query.len, HP_PG_QUERY_CHARS, &cut) : json_null();
    return json_pack("{s:o s:I s:f s:s? s:o s:o s:o s:b s:o s:o s:o}", "at", hp__span_json(e->at), "pid", (json_int_t)e->pid,
                     "duration_ms", e->duration_ms, "name", name, "kind",
                     e->kind.base != NULL ? hp__span_json(e->kind) : json_string("plan"), "prepared_statement",
                     hp__span_json(e->prepared), "query", query, "query_truncated", cut, "parameters", hp__span_json(e->parameters),
                     "plan", plan != NULL ? plan : json_null(), "plan_summary",
                     plan != NULL ? hp_pg_plan_summary(plan) : json_null());
}

static void hp__slow(hp_req_t *r)
{
    int limit;
    if (hp_limit_param(r, 20, 100, &limit) != 0)
        return;
    const char *path = getenv("HOTPLATE_PG_LOG");
    if (path == NULL || path[0] == '\0') {
        hp_respond_error(
            r, 404, "no_log",
            "HOTPLATE_PG_LOG is not set: point it at PostgreSQL's log file (deploy/stack.sh writes it to the stack's env "
            "file) to see slow statements here");
        return;
    }
    int truncated = 0;
    errno = 0;
    h2o_iovec_t text = hp__log_tail(r, path, &truncated);
    if (text.base == NULL) {
        hp_respond_error(r, 404, "no_log",
                         hp_pool_printf(r, "cannot read HOTPLATE_PG_LOG (%.200s): %s", path, strerror(errno != 0 ? errno : EIO)));
        return;
    }
    hp_pg_slow_entry_t *entries = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*entries) * (size_t)limit);
    size_t n = hp_pg_slow_parse(text.base, text.len, entries, (size_t)limit);
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i)
        json_array_append_new(list, hp__slow_entry_json(&entries[i]));
    hp_respond_json(r, 200,
                    json_pack("{s:o s:s s:I s:b s:s}", "slow", list, "log", path, "bytes_read", (json_int_t)text.len,
                              "log_truncated", truncated, "order", "newest first"));
}

/* ---- routes ------------------------------------------------------------------------------------- */

const hp_route_t hp_pg_routes[] = {
    {"GET", "/debug/pg/statements", hp__statements},
    {"POST", "/debug/pg/statements/reset", hp__statements_reset},
    {"GET", "/debug/pg/tables", hp__tables},
    {"GET", "/debug/pg/explain", hp__explain},
    {"GET", "/debug/pg/slow", hp__slow},
};

const size_t hp_pg_num_routes = sizeof(hp_pg_routes) / sizeof(hp_pg_routes[0]);
