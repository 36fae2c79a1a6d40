/*
 * plan: reading EXPLAIN documents (see plan.h).
 */
#include "profiling/plan.h"

#include <stdio.h>
#include <string.h>

/* ---- the walk ------------------------------------------------------------------------------------ */

static int hp__is_sort(const char *type)
{
    return type != NULL && (strcmp(type, "Sort") == 0 || strcmp(type, "Incremental Sort") == 0);
}

static void hp__walk(const json_t *node, hp_plan_visit_fn visit, void *ud, const char *sort, int depth)
{
    if (!json_is_object(node) || depth > HP_PLAN_MAX_DEPTH)
        return;
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    char keys[256];
    if (hp__is_sort(type)) {
        /* Sort Key is an array of expressions; keep them comma-separated. */
        keys[0] = '\0';
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(node, "Sort Key"), i, k)
        {
            size_t len = strlen(keys);
            snprintf(keys + len, sizeof(keys) - len, "%s%s", i != 0 ? ", " : "",
                     json_string_value(k) != NULL ? json_string_value(k) : "");
        }
        sort = keys;
    }
    visit(node, depth, sort, ud);
    size_t i;
    json_t *child;
    json_array_foreach(json_object_get(node, "Plans"), i, child) hp__walk(child, visit, ud, sort, depth + 1);
}

void hp_plan_walk(const json_t *plan, hp_plan_visit_fn visit, void *ud)
{
    hp__walk(plan, visit, ud, NULL, 0);
}

/* The plan of an EXPLAIN document: EXPLAIN returns an array of one, auto_explain logs the object itself. */
static const json_t *hp__doc(const json_t *explain)
{
    return json_is_array(explain) ? json_array_get(explain, 0) : explain;
}

/* ---- the summary --------------------------------------------------------------------------------- */

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

/* The summary's visitor: a node's scan and sort go into their lists. */
static void hp__summary_visit(const json_t *node, int depth, const char *sort_key, void *ud)
{
    (void)depth, (void)sort_key;
    hp_plan_scans_t *sc = ud;
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
    if (hp__is_sort(type))
        hp__add_unique_str(sc->sorts, type);
}

static json_t *hp__number_or_null(const json_t *v)
{
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

json_t *hp_plan_summary(const json_t *explain)
{
    const json_t *doc = hp__doc(explain);
    hp_plan_scans_t sc = {json_array(), json_array(), json_array(), json_array(), json_array(), json_array()};
    const char *top = NULL;
    if (json_is_string(doc)) {
        top = json_string_value(doc); /* "Utility Statement": BEGIN and friends have no plan */
    } else {
        const json_t *plan = json_object_get(doc, "Plan");
        top = json_string_value(json_object_get(plan, "Node Type"));
        hp_plan_walk(plan, hp__summary_visit, &sc);
    }
    return json_pack("{s:s? s:b s:b s:b s:o s:o s:o s:o s:o s:o s:o s:o}", "top_node", top, "has_seq_scan",
                     json_array_size(sc.seq) != 0, "has_index_scan", json_array_size(sc.idx) != 0, "has_index_only_scan",
                     json_array_size(sc.idx_only) != 0, "sorts", sc.sorts, "seq_scans", sc.seq, "index_scans", sc.idx,
                     "index_only_scans", sc.idx_only, "bitmap_heap_scans", sc.bitmap_heap, "bitmap_index_scans", sc.bitmap_index,
                     "planning_time_ms", hp__number_or_null(json_object_get(doc, "Planning Time")), "execution_time_ms",
                     hp__number_or_null(json_object_get(doc, "Execution Time")));
}

/* ---- the doctor's reading ----------------------------------------------------------------------- */

/* The doctor's visitor: keeps the costliest sequential scan with a filter and the costliest index scan with a condition. */
typedef struct st_hp_plan_read_ctx_t {
    hp_plan_read_t *out;
    double seq_cost, idx_cost;
    const char *heap_rel, *heap_alias; /* the Bitmap Heap Scan above a Bitmap Index Scan: the relation it reads */
} hp_plan_read_ctx_t;

/* The sort keys of one relation (its alias, or none): only those can come from an index on it; a join sorts by others too. */
static void hp__own_sort_keys(const char *sort, const char *alias, char *out, size_t outlen)
{
    size_t alen = alias != NULL ? strlen(alias) : 0, o = 0;
    out[0] = '\0';
    for (const char *p = sort; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        const char *dot = memchr(p, '.', len);
        int ours = dot == NULL || (alias != NULL && (size_t)(dot - p) == alen && strncmp(p, alias, alen) == 0);
        if (ours && o + len + 3 < outlen)
            o += (size_t)snprintf(out + o, outlen - o, "%s%.*s", o != 0 ? ", " : "", (int)len, p);
        p = e != NULL ? e + 1 : NULL;
        while (p != NULL && *p == ' ')
            ++p;
    }
}

static void hp__read_visit(const json_t *node, int depth, const char *sort, void *ud)
{
    (void)depth;
    hp_plan_read_ctx_t *c = ud;
    hp_plan_read_t *out = c->out;
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *alias = json_string_value(json_object_get(node, "Alias"));
    double cost = json_number_value(json_object_get(node, "Total Cost"));
    if (type == NULL)
        return;
    if (strcmp(type, "Bitmap Heap Scan") == 0) {
        c->heap_rel = rel, c->heap_alias = alias;
        return;
    }
    if (strcmp(type, "Seq Scan") == 0) {
        const char *filter = json_string_value(json_object_get(node, "Filter"));
        if (rel == NULL || filter == NULL || cost <= c->seq_cost)
            return;
        c->seq_cost = cost;
        snprintf(out->seq_rel, sizeof(out->seq_rel), "%s", rel);
        snprintf(out->filter, sizeof(out->filter), "%s", filter);
        hp__own_sort_keys(sort, alias, out->sort_key, sizeof(out->sort_key));
        return;
    }
    int bitmap = strcmp(type, "Bitmap Index Scan") == 0;
    if (!bitmap && strcmp(type, "Index Scan") != 0 && strcmp(type, "Index Only Scan") != 0)
        return;
    const char *index = json_string_value(json_object_get(node, "Index Name"));
    const char *cond = json_string_value(json_object_get(node, "Index Cond"));
    if (bitmap)
        rel = c->heap_rel, alias = c->heap_alias;
    if (rel == NULL || index == NULL || cond == NULL || cost <= c->idx_cost)
        return;
    c->idx_cost = cost;
    snprintf(out->idx_name, sizeof(out->idx_name), "%s", index);
    snprintf(out->idx_rel, sizeof(out->idx_rel), "%s", rel);
    snprintf(out->idx_cond, sizeof(out->idx_cond), "%s", cond);
    hp__own_sort_keys(sort, alias, out->idx_sort_key, sizeof(out->idx_sort_key));
}

int hp_plan_read(const json_t *explain, hp_plan_read_t *out)
{
    const json_t *plan = json_object_get(hp__doc(explain), "Plan");
    if (!json_is_object(plan))
        return -1;
    memset(out, 0, sizeof(*out));
    out->cost = json_number_value(json_object_get(plan, "Total Cost"));
    hp_plan_read_ctx_t c = {out, -1, -1, NULL, NULL};
    hp_plan_walk(plan, hp__read_visit, &c);
    if (out->seq_rel[0] != '\0' &&
        hp_plan_index_sql(out->seq_rel, out->filter, out->sort_key, out->index_sql, sizeof(out->index_sql)) != 0)
        out->index_sql[0] = '\0';
    return 0;
}

static int hp__ident_char(char ch);

int hp_plan_cond_uses(const char *cond, const char *col)
{
    size_t len = strlen(col);
    if (len == 0)
        return 0;
    for (const char *p = cond; (p = strstr(p, col)) != NULL; p += len) {
        /* A whole identifier: not the tail of a longer one (a dot before it is an alias), nor its head. */
        int starts = p == cond || !hp__ident_char(p[-1]) || p[-1] == '.';
        if (starts && !hp__ident_char(p[len]))
            return 1;
    }
    return 0;
}

int hp_plan_full_index(hp_plan_read_t *p, const char *lead)
{
    if (p->seq_rel[0] != '\0' || p->idx_name[0] == '\0' || lead[0] == '\0' || hp_plan_cond_uses(p->idx_cond, lead))
        return 0;
    snprintf(p->seq_rel, sizeof(p->seq_rel), "%s", p->idx_rel);
    snprintf(p->filter, sizeof(p->filter), "%s", p->idx_cond);
    snprintf(p->sort_key, sizeof(p->sort_key), "%s", p->idx_sort_key);
    snprintf(p->full_index, sizeof(p->full_index), "%s", p->idx_name);
    snprintf(p->lead, sizeof(p->lead), "%s", lead);
    if (hp_plan_index_sql(p->seq_rel, p->filter, p->sort_key, p->index_sql, sizeof(p->index_sql)) != 0)
        p->index_sql[0] = '\0';
    return 1;
}

/* ---- the index a scan asks for ------------------------------------------------------------------- */

static int hp__ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
}

/* Appends a column (alias stripped) unless the list has it. @return 0, or -1 when it does not fit */
static int hp__add_col(char cols[][80], size_t *n, size_t max, const char *p, size_t len, const char *dir)
{
    const char *dot = memchr(p, '.', len);
    if (dot != NULL)
        len -= (size_t)(dot + 1 - p), p = dot + 1;
    if (len == 0 || len >= 48)
        return -1;
    for (size_t i = 0; i != *n; ++i)
        if (strncmp(cols[i], p, len) == 0 && (cols[i][len] == '\0' || cols[i][len] == ' '))
            return 0;
    if (*n == max)
        return -1;
    snprintf(cols[(*n)++], 80, "%.*s%s", (int)len, p, dir);
    return 0;
}

int hp_plan_index_sql(const char *rel, const char *filter, const char *sort_key, char *out, size_t outlen)
{
    char cols[8][80];
    size_t n = 0;
    /* Equality columns: an identifier directly before " = " (EXPLAIN prints "(user_id = '7'::bigint)"). */
    for (const char *p = filter; (p = strstr(p, " = ")) != NULL; p += 3) {
        const char *e = p, *s = p;
        while (s > filter && hp__ident_char(s[-1]))
            --s;
        if (s == e || (*s >= '0' && *s <= '9') || *s == '.')
            continue;
        hp__add_col(cols, &n, 8, s, (size_t)(e - s), "");
    }
    if (n == 0)
        return -1;
    /* Then the sort keys, in order, with their direction. */
    for (const char *p = sort_key; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',')
            ++p;
        const char *s = p;
        while (hp__ident_char(*p))
            ++p;
        size_t len = (size_t)(p - s);
        const char *dir = strncmp(p, " DESC", 5) == 0 ? " DESC" : "";
        const char *next = strchr(p, ',');
        if (len != 0)
            hp__add_col(cols, &n, 8, s, len, dir);
        if (next == NULL)
            break;
        p = next;
    }
    int w = snprintf(out, outlen, "CREATE INDEX CONCURRENTLY ON %s (", rel);
    for (size_t i = 0; i != n && w > 0 && (size_t)w < outlen; ++i)
        w += snprintf(out + w, outlen - (size_t)w, "%s%s", i != 0 ? ", " : "", cols[i]);
    if (w > 0 && (size_t)w < outlen)
        w += snprintf(out + w, outlen - (size_t)w, ")");
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}
