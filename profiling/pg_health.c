/*
 * pg_health: rows to a reading of PostgreSQL's health, and its JSON (see
 * pg_health.h). Pure: no I/O, no globals; what a query returned comes in as
 * text cells.
 *
 * Index sizes come from pg_class.relpages, not pg_relation_size(): the
 * function opens the relation with an AccessShareLock, which queues behind
 * any ACCESS EXCLUSIVE lock (an ALTER TABLE, a VACUUM FULL) and would make a
 * health check wait for exactly the trouble it should report. relpages is as
 * of the last VACUUM, ANALYZE or CREATE INDEX, which is fresh enough to rank
 * indexes by size.
 */
#include "profiling/pg_health.h"
#include "profiling/pg_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *hp__cell(const hp_pg_rows_t *rows, int row, int col)
{
    const char *v = rows->cell[(size_t)row * (size_t)rows->cols + (size_t)col];
    return v != NULL ? v : "";
}

static int hp__null(const hp_pg_rows_t *rows, int row, int col)
{
    return rows->cell[(size_t)row * (size_t)rows->cols + (size_t)col] == NULL;
}

static double hp__num(const hp_pg_rows_t *rows, int row, int col, double null_value)
{
    return hp__null(rows, row, col) ? null_value : strtod(hp__cell(rows, row, col), NULL);
}

static int64_t hp__int(const hp_pg_rows_t *rows, int row, int col)
{
    return strtoll(hp__cell(rows, row, col), NULL, 10);
}

static void hp__copy(char *dst, size_t size, const hp_pg_rows_t *rows, int row, int col)
{
    snprintf(dst, size, "%s", hp__cell(rows, row, col));
}

/* ---- sessions ------------------------------------------------------------------------------------ */

enum {
    HP__SES_PID,
    HP__SES_APP,
    HP__SES_USER,
    HP__SES_CLIENT,
    HP__SES_STATE,
    HP__SES_WAIT,
    HP__SES_QUERY_MS,
    HP__SES_XACT_MS,
    HP__SES_IDLE_MS,
    HP__SES_QUERY,
    HP__SES__COLS
};

int hp_pg_health_read_sessions(hp_pg_health_t *h, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim)
{
    if (rows->cols != HP__SES__COLS)
        return -1;
    h->sessions_ok = 1;
    h->num_sessions = 0;
    for (int i = 0; i != rows->rows && h->num_sessions != HP_PG_HEALTH_MAX; ++i) {
        double query_ms = hp__num(rows, i, HP__SES_QUERY_MS, -1), xact_ms = hp__num(rows, i, HP__SES_XACT_MS, -1),
               idle_ms = hp__num(rows, i, HP__SES_IDLE_MS, -1);
        if (query_ms < lim->query_s * 1000 && xact_ms < lim->xact_s * 1000 && idle_ms < lim->idle_txn_s * 1000)
            continue;
        hp_pg_session_t *s = &h->sessions[h->num_sessions++];
        memset(s, 0, sizeof(*s));
        s->pid = (int)hp__int(rows, i, HP__SES_PID);
        hp__copy(s->app, sizeof(s->app), rows, i, HP__SES_APP);
        hp__copy(s->user, sizeof(s->user), rows, i, HP__SES_USER);
        hp__copy(s->client, sizeof(s->client), rows, i, HP__SES_CLIENT);
        hp__copy(s->state, sizeof(s->state), rows, i, HP__SES_STATE);
        hp__copy(s->wait, sizeof(s->wait), rows, i, HP__SES_WAIT);
        s->query_ms = query_ms, s->xact_ms = xact_ms, s->idle_ms = idle_ms;
        const char *q = hp__cell(rows, i, HP__SES_QUERY);
        hp_pg_query_shape(q, strlen(q), s->query, sizeof(s->query));
    }
    return 0;
}

/* ---- connections --------------------------------------------------------------------------------- */

enum {
    HP__CON_APP,
    HP__CON_USERS,
    HP__CON_CLIENTS,
    HP__CON_TOTAL,
    HP__CON_ACTIVE,
    HP__CON_IDLE,
    HP__CON_IDLE_TXN,
    HP__CON_MAX,
    HP__CON_RESERVED,
    HP__CON_SERVER_TOTAL,
    HP__CON__COLS
};

int hp_pg_health_read_connections(hp_pg_health_t *h, const hp_pg_rows_t *rows)
{
    if (rows->cols != HP__CON__COLS)
        return -1;
    h->connections_ok = 1;
    h->num_apps = 0;
    h->conn_total = 0;
    for (int i = 0; i != rows->rows; ++i) {
        h->max_connections = (int)hp__int(rows, i, HP__CON_MAX);
        h->reserved = (int)hp__int(rows, i, HP__CON_RESERVED);
        h->conn_total = (int)hp__int(rows, i, HP__CON_SERVER_TOTAL);
        if (h->num_apps == HP_PG_HEALTH_MAX)
            continue;
        hp_pg_conn_app_t *a = &h->apps[h->num_apps++];
        hp__copy(a->app, sizeof(a->app), rows, i, HP__CON_APP);
        hp__copy(a->users, sizeof(a->users), rows, i, HP__CON_USERS);
        hp__copy(a->clients, sizeof(a->clients), rows, i, HP__CON_CLIENTS);
        a->total = (int)hp__int(rows, i, HP__CON_TOTAL);
        a->active = (int)hp__int(rows, i, HP__CON_ACTIVE);
        a->idle = (int)hp__int(rows, i, HP__CON_IDLE);
        a->idle_in_txn = (int)hp__int(rows, i, HP__CON_IDLE_TXN);
    }
    return 0;
}

/* ---- indexes ------------------------------------------------------------------------------------- */

enum {
    HP__IX_SCHEMA,
    HP__IX_TABLE,
    HP__IX_INDEX,
    HP__IX_UNIQUE,
    HP__IX_PRIMARY,
    HP__IX_CONSTRAINT,
    HP__IX_VALID,
    HP__IX_KEY,
    HP__IX_CLASS,
    HP__IX_PARTIAL,
    HP__IX_AM,
    HP__IX_SCANS,
    HP__IX_BYTES,
    HP__IX_DEF,
    HP__IX_FK,
    HP__IX__COLS
};

static int hp__true(const hp_pg_rows_t *rows, int row, int col)
{
    const char *v = hp__cell(rows, row, col);
    return v[0] == 't' || v[0] == '1';
}

/* An index PostgreSQL needs for a guarantee (uniqueness, a key, a constraint), or one being built: never dropped here. */
static int hp__keeps(const hp_pg_rows_t *rows, int i)
{
    return hp__true(rows, i, HP__IX_UNIQUE) || hp__true(rows, i, HP__IX_PRIMARY) || hp__true(rows, i, HP__IX_CONSTRAINT) ||
           !hp__true(rows, i, HP__IX_VALID);
}

/*
 * Whether the space-separated list a is the leading part of b ("2" of "2 14"),
 * as pg_index prints int2vector and oidvector; exact with same set.
 */
static int hp__leads(const char *a, const char *b, int exact)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la == 0 || la > lb || memcmp(a, b, la) != 0)
        return 0;
    return exact ? la == lb : la == lb || b[la] == ' ';
}

/* Inserts ix into list (of n, at most HP_PG_HEALTH_MAX), the largest first; a smaller one past the end is dropped. */
static void hp__keep_largest(hp_pg_index_t *list, size_t *n, const hp_pg_index_t *ix)
{
    size_t at = 0;
    while (at != *n && list[at].bytes >= ix->bytes)
        ++at;
    if (at == HP_PG_HEALTH_MAX)
        return;
    size_t move = *n - at - (*n == HP_PG_HEALTH_MAX);
    memmove(&list[at + 1], &list[at], move * sizeof(*list));
    list[at] = *ix;
    if (*n != HP_PG_HEALTH_MAX)
        ++*n;
}

static void hp__index_of(hp_pg_index_t *ix, const hp_pg_rows_t *rows, int i)
{
    memset(ix, 0, sizeof(*ix));
    hp__copy(ix->schema, sizeof(ix->schema), rows, i, HP__IX_SCHEMA);
    hp__copy(ix->table, sizeof(ix->table), rows, i, HP__IX_TABLE);
    hp__copy(ix->index, sizeof(ix->index), rows, i, HP__IX_INDEX);
    hp__copy(ix->def, sizeof(ix->def), rows, i, HP__IX_DEF);
    ix->scans = hp__int(rows, i, HP__IX_SCANS);
    ix->bytes = hp__int(rows, i, HP__IX_BYTES);
}

/* Whether index j of the rows makes index i redundant: same table and method, i's keys lead j's. */
static int hp__covers(const hp_pg_rows_t *rows, int j, int i)
{
    if (j == i || !hp__true(rows, j, HP__IX_VALID) || hp__true(rows, i, HP__IX_PARTIAL) || hp__true(rows, j, HP__IX_PARTIAL))
        return 0;
    if (strcmp(hp__cell(rows, i, HP__IX_SCHEMA), hp__cell(rows, j, HP__IX_SCHEMA)) != 0 ||
        strcmp(hp__cell(rows, i, HP__IX_TABLE), hp__cell(rows, j, HP__IX_TABLE)) != 0 ||
        strcmp(hp__cell(rows, i, HP__IX_AM), hp__cell(rows, j, HP__IX_AM)) != 0)
        return 0;
    /* Only a B-tree answers for a prefix of its columns; any other method must match them all. */
    int exact = strcmp(hp__cell(rows, i, HP__IX_AM), "btree") != 0;
    if (!hp__leads(hp__cell(rows, i, HP__IX_KEY), hp__cell(rows, j, HP__IX_KEY), exact) ||
        !hp__leads(hp__cell(rows, i, HP__IX_CLASS), hp__cell(rows, j, HP__IX_CLASS), exact))
        return 0;
    /* Two identical indexes: the one that must stay (unique, a constraint's), or else the first by name, stays. */
    if (strcmp(hp__cell(rows, i, HP__IX_KEY), hp__cell(rows, j, HP__IX_KEY)) == 0 && !hp__keeps(rows, j))
        return strcmp(hp__cell(rows, i, HP__IX_INDEX), hp__cell(rows, j, HP__IX_INDEX)) > 0;
    return 1;
}

int hp_pg_health_read_indexes(hp_pg_health_t *h, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim)
{
    if (rows->cols != HP__IX__COLS)
        return -1;
    h->indexes_ok = 1;
    h->indexes_seen = rows->rows;
    h->num_unused = h->num_duplicate = h->num_invalid = 0;
    for (int i = 0; i != rows->rows; ++i) {
        hp_pg_index_t ix;
        if (!hp__true(rows, i, HP__IX_VALID)) {
            hp__index_of(&ix, rows, i);
            hp__keep_largest(h->invalid, &h->num_invalid, &ix);
        }
        if (hp__keeps(rows, i))
            continue;
        hp__index_of(&ix, rows, i);
        /* An index that leads with a foreign key's columns serves the key's checks when a referenced row goes: kept. */
        if ((double)ix.scans < lim->unused_scans && (double)ix.bytes >= lim->index_min_bytes && !hp__true(rows, i, HP__IX_FK))
            hp__keep_largest(h->unused, &h->num_unused, &ix);
        for (int j = 0; j != rows->rows; ++j) {
            if (!hp__covers(rows, j, i))
                continue;
            hp__copy(ix.covered_by, sizeof(ix.covered_by), rows, j, HP__IX_INDEX);
            hp__copy(ix.covered_def, sizeof(ix.covered_def), rows, j, HP__IX_DEF);
            hp__keep_largest(h->duplicate, &h->num_duplicate, &ix);
            break;
        }
    }
    /*
     * An unused index that is a duplicate is proposed once, as a duplicate; one
     * that covers a duplicate is not proposed at all: dropping both would leave
     * those columns without any index.
     */
    size_t kept = 0;
    for (size_t i = 0; i != h->num_unused; ++i) {
        int skip = 0;
        for (size_t j = 0; j != h->num_duplicate && !skip; ++j)
            skip = strcmp(h->duplicate[j].schema, h->unused[i].schema) == 0 &&
                   (strcmp(h->duplicate[j].index, h->unused[i].index) == 0 ||
                    strcmp(h->duplicate[j].covered_by, h->unused[i].index) == 0);
        if (!skip)
            h->unused[kept++] = h->unused[i];
    }
    h->num_unused = kept;
    return 0;
}

/* ---- tables -------------------------------------------------------------------------------------- */

enum {
    HP__TB_SCHEMA,
    HP__TB_TABLE,
    HP__TB_LIVE,
    HP__TB_DEAD,
    HP__TB_MOD,
    HP__TB_SEQ,
    HP__TB_SEQ_READ,
    HP__TB_IDX,
    HP__TB_BYTES,
    HP__TB_VAC_AGE,
    HP__TB_AN_AGE,
    HP__TB_VAC_AT,
    HP__TB_AN_AT,
    HP__TB_HEAP_HIT,
    HP__TB_HEAP_READ,
    HP__TB_IDX_HIT,
    HP__TB_IDX_READ,
    HP__TB_STATS_AGE,
    HP__TB_OWN_HEAP_HIT,
    HP__TB_OWN_HEAP_READ,
    HP__TB_OWN_IDX_HIT,
    HP__TB_OWN_IDX_READ,
    HP__TB__COLS
};

int hp_pg_health_read_tables(hp_pg_health_t *h, const hp_pg_rows_t *rows)
{
    if (rows->cols != HP__TB__COLS)
        return -1;
    h->tables_ok = 1;
    h->num_tables = 0;
    h->heap_hit = h->heap_read = h->idx_hit = h->idx_read = 0;
    h->stats_age_s = -1;
    size_t max = sizeof(h->tables) / sizeof(h->tables[0]);
    for (int i = 0; i != rows->rows; ++i) {
        h->heap_hit = hp__int(rows, i, HP__TB_HEAP_HIT), h->heap_read = hp__int(rows, i, HP__TB_HEAP_READ);
        h->idx_hit = hp__int(rows, i, HP__TB_IDX_HIT), h->idx_read = hp__int(rows, i, HP__TB_IDX_READ);
        h->stats_age_s = hp__num(rows, i, HP__TB_STATS_AGE, -1);
        if (h->num_tables == max)
            continue;
        hp_pg_table_t *t = &h->tables[h->num_tables++];
        memset(t, 0, sizeof(*t));
        hp__copy(t->schema, sizeof(t->schema), rows, i, HP__TB_SCHEMA);
        hp__copy(t->table, sizeof(t->table), rows, i, HP__TB_TABLE);
        t->live = hp__int(rows, i, HP__TB_LIVE), t->dead = hp__int(rows, i, HP__TB_DEAD);
        t->mod_since_analyze = hp__int(rows, i, HP__TB_MOD);
        t->seq_scan = hp__int(rows, i, HP__TB_SEQ), t->seq_tup_read = hp__int(rows, i, HP__TB_SEQ_READ);
        t->idx_scan = hp__int(rows, i, HP__TB_IDX), t->bytes = hp__int(rows, i, HP__TB_BYTES);
        t->vacuum_age_s = hp__num(rows, i, HP__TB_VAC_AGE, -1), t->analyze_age_s = hp__num(rows, i, HP__TB_AN_AGE, -1);
        t->vacuum_at = hp__num(rows, i, HP__TB_VAC_AT, 0), t->analyze_at = hp__num(rows, i, HP__TB_AN_AT, 0);
        t->heap_hit = hp__int(rows, i, HP__TB_OWN_HEAP_HIT), t->heap_read = hp__int(rows, i, HP__TB_OWN_HEAP_READ);
        t->idx_hit = hp__int(rows, i, HP__TB_OWN_IDX_HIT), t->idx_read = hp__int(rows, i, HP__TB_OWN_IDX_READ);
    }
    return 0;
}

/* ---- other applications' statements ----------------------------------------------------------- */

enum { HP__ST_QUERY, HP__ST_CALLS, HP__ST_TOTAL, HP__ST_MEAN, HP__ST_ROWS, HP__ST_HIT, HP__ST_READ, HP__ST__COLS };

int hp_pg_health_read_statements(hp_pg_health_t *h, const hp_pg_rows_t *rows, hp_pg_is_ours_fn is_ours)
{
    if (rows->cols != HP__ST__COLS)
        return -1;
    h->statements_ok = 1;
    h->num_other = 0;
    for (int i = 0; i != rows->rows && h->num_other != HP_PG_HEALTH_MAX; ++i) {
        const char *q = hp__cell(rows, i, HP__ST_QUERY);
        if (is_ours != NULL && is_ours(q, strlen(q)))
            continue;
        hp_pg_other_stmt_t *o = &h->other[h->num_other++];
        memset(o, 0, sizeof(*o));
        hp_pg_query_shape(q, strlen(q), o->query, sizeof(o->query));
        o->calls = hp__int(rows, i, HP__ST_CALLS), o->rows = hp__int(rows, i, HP__ST_ROWS);
        o->total_ms = hp__num(rows, i, HP__ST_TOTAL, 0), o->mean_ms = hp__num(rows, i, HP__ST_MEAN, 0);
        o->blks_hit = hp__int(rows, i, HP__ST_HIT), o->blks_read = hp__int(rows, i, HP__ST_READ);
    }
    return 0;
}

static int hp__word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether query names table (len bytes) as a whole word. */
static int hp__names(const char *query, const char *table, size_t len)
{
    for (const char *p = query; len != 0 && (p = strstr(p, table)) != NULL; p += len)
        if ((p == query || !hp__word_char(p[-1])) && !hp__word_char(p[len]))
            return 1;
    return 0;
}

const hp_pg_other_stmt_t *hp_pg_health_other_on(const hp_pg_health_t *h, const char *table)
{
    size_t len = strlen(table);
    for (size_t i = 0; i != h->num_other; ++i)
        if (hp__names(h->other[i].query, table, len))
            return &h->other[i];
    return NULL;
}

/* Adds into sum every statement of h whose text is query (pg_stat_statements keeps one per user, database and level). */
static void hp__sum_other(const hp_pg_health_t *h, const char *query, hp_pg_other_stmt_t *sum)
{
    for (size_t i = 0; i != h->num_other; ++i) {
        const hp_pg_other_stmt_t *o = &h->other[i];
        if (strcmp(o->query, query) != 0)
            continue;
        sum->calls += o->calls, sum->rows += o->rows, sum->blks_hit += o->blks_hit, sum->blks_read += o->blks_read;
        sum->total_ms += o->total_ms;
    }
}

int hp_pg_health_other_between(const hp_pg_health_t *a, const hp_pg_health_t *b, const char *table, hp_pg_other_stmt_t *out)
{
    size_t len = strlen(table);
    int found = 0;
    for (size_t i = 0; i != b->num_other; ++i) {
        const char *query = b->other[i].query;
        size_t k = 0;
        while (k != i && strcmp(b->other[k].query, query) != 0)
            ++k;
        if (k != i || !hp__names(query, table, len))
            continue; /* an earlier row had this text, and the sums below counted it */
        hp_pg_other_stmt_t end = {0}, start = {0};
        hp__sum_other(b, query, &end);
        hp__sum_other(a, query, &start);
        hp_pg_other_stmt_t d = end;
        d.calls -= start.calls, d.rows -= start.rows, d.blks_hit -= start.blks_hit, d.blks_read -= start.blks_read;
        d.total_ms -= start.total_ms;
        /* Fewer calls than at the start: pg_stat_statements was reset in between, so b's counts are all the window's. */
        if (d.calls < 0)
            d = end;
        if (d.calls == 0)
            continue;
        memcpy(d.query, query, sizeof(d.query));
        d.mean_ms = d.total_ms / (double)d.calls;
        if (!found || d.total_ms > out->total_ms)
            *out = d, found = 1;
    }
    return found;
}

double hp_pg_health_hit_ratio(int64_t hit, int64_t read)
{
    /* In doubles: the counters are bigint, and their sum must not overflow. */
    double total = (double)hit + (double)read;
    return total > 0 ? (double)hit / total : -1;
}

/* ---- SQL and JSON -------------------------------------------------------------------------------- */

/* An identifier as SQL needs it: bare when it is lower-case letters, digits and _, else in double quotes. */
static size_t hp__ident(const char *id, char *out, size_t size)
{
    int bare = (id[0] >= 'a' && id[0] <= 'z') || id[0] == '_';
    for (const char *p = id; *p != '\0' && bare; ++p)
        bare = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (bare)
        return (size_t)snprintf(out, size, "%s", id);
    size_t n = 0;
    if (n + 1 < size)
        out[n++] = '"';
    for (const char *p = id; *p != '\0' && n + 3 < size; ++p) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    if (n + 1 < size)
        out[n++] = '"';
    out[n < size ? n : size - 1] = '\0';
    return n;
}

void hp_pg_health_drop_sql(const hp_pg_index_t *ix, char *out, size_t size)
{
    char schema[140], index[140];
    hp__ident(ix->schema, schema, sizeof(schema));
    hp__ident(ix->index, index, sizeof(index));
    snprintf(out, size, "DROP INDEX CONCURRENTLY %s.%s", schema, index);
}

static json_t *hp__ms(double ms)
{
    return ms >= 0 ? json_real(round(ms)) : json_null();
}

static json_t *hp__ratio(int64_t hit, int64_t read)
{
    double r = hp_pg_health_hit_ratio(hit, read);
    return r >= 0 ? json_real(round(r * 10000) / 10000) : json_null();
}

static json_t *hp__index_json(const hp_pg_index_t *ix)
{
    char drop[320];
    hp_pg_health_drop_sql(ix, drop, sizeof(drop));
    json_t *o = json_pack("{ss ss ss sI sI ss ss}", "schema", ix->schema, "table", ix->table, "index", ix->index, "bytes",
                          (json_int_t)ix->bytes, "scans", (json_int_t)ix->scans, "definition", ix->def, "drop_sql", drop);
    if (ix->covered_by[0] != '\0') {
        json_object_set_new(o, "covered_by", json_string(ix->covered_by));
        json_object_set_new(o, "covered_by_definition", json_string(ix->covered_def));
    }
    return o;
}

json_t *hp_pg_health_json(const hp_pg_health_t *h, const hp_pg_health_limits_t *lim)
{
    json_t *doc = json_object();
    if (h->sessions_ok) {
        json_t *list = json_array();
        for (size_t i = 0; i != h->num_sessions; ++i) {
            const hp_pg_session_t *s = &h->sessions[i];
            json_array_append_new(list, json_pack("{si ss ss ss ss ss so so so ss}", "pid", s->pid, "application_name", s->app,
                                                  "user", s->user, "client", s->client, "state", s->state, "wait", s->wait,
                                                  "query_ms", hp__ms(s->query_ms), "transaction_ms", hp__ms(s->xact_ms),
                                                  "idle_in_transaction_ms", hp__ms(s->idle_ms), "query", s->query));
        }
        json_object_set_new(doc, "sessions", list);
    }
    if (h->connections_ok) {
        json_t *apps = json_array();
        for (size_t i = 0; i != h->num_apps; ++i) {
            const hp_pg_conn_app_t *a = &h->apps[i];
            json_array_append_new(apps, json_pack("{ss ss ss si si si si}", "application_name", a->app, "users", a->users,
                                                  "clients", a->clients, "total", a->total, "active", a->active, "idle", a->idle,
                                                  "idle_in_transaction", a->idle_in_txn));
        }
        int avail = h->max_connections - h->reserved;
        json_object_set_new(doc, "connections",
                            json_pack("{si si si si so so}", "total", h->conn_total, "max_connections", h->max_connections,
                                      "superuser_reserved_connections", h->reserved, "available", avail, "share",
                                      avail > 0 ? json_real(round(1000.0 * h->conn_total / avail) / 1000) : json_null(),
                                      "by_application", apps));
    }
    if (h->indexes_ok) {
        json_t *unused = json_array(), *dup = json_array(), *invalid = json_array();
        for (size_t i = 0; i != h->num_invalid; ++i)
            json_array_append_new(invalid, hp__index_json(&h->invalid[i]));
        for (size_t i = 0; i != h->num_unused; ++i)
            json_array_append_new(unused, hp__index_json(&h->unused[i]));
        for (size_t i = 0; i != h->num_duplicate; ++i)
            json_array_append_new(dup, hp__index_json(&h->duplicate[i]));
        json_object_set_new(
            doc, "indexes",
            json_pack("{si so so so}", "seen", h->indexes_seen, "unused", unused, "duplicate", dup, "invalid", invalid));
    }
    if (h->tables_ok) {
        json_t *tables = json_array();
        for (size_t i = 0; i != h->num_tables; ++i) {
            const hp_pg_table_t *t = &h->tables[i];
            double total = (double)t->live + (double)t->dead;
            int vacuum = (double)t->dead >= lim->dead_rows && total > 0 && (double)t->dead / total >= lim->dead_share;
            int analyze = (double)t->mod_since_analyze >= lim->analyze_rows &&
                          (double)t->mod_since_analyze >= lim->analyze_share * (double)(t->live > 0 ? t->live : 1);
            json_array_append_new(
                tables,
                json_pack("{ss ss sI sI sI sI sI sI sI so so sf sf sb sb sb so}", "schema", t->schema, "table", t->table, "live",
                          (json_int_t)t->live, "dead", (json_int_t)t->dead, "modified_since_analyze",
                          (json_int_t)t->mod_since_analyze, "seq_scan", (json_int_t)t->seq_scan, "seq_tup_read",
                          (json_int_t)t->seq_tup_read, "idx_scan", (json_int_t)t->idx_scan, "bytes", (json_int_t)t->bytes,
                          "since_vacuum_s", t->vacuum_age_s >= 0 ? json_real(round(t->vacuum_age_s)) : json_null(),
                          "since_analyze_s", t->analyze_age_s >= 0 ? json_real(round(t->analyze_age_s)) : json_null(),
                          "autovacuum_at_dead", round(t->vacuum_at), "autoanalyze_at_modified", round(t->analyze_at), "vacuum_due",
                          vacuum, "analyze_due", analyze, "large", (double)t->live >= lim->seq_min_rows, "avg_rows_per_seq_scan",
                          t->seq_scan > 0 ? json_integer((json_int_t)(t->seq_tup_read / t->seq_scan)) : json_null()));
            /* pg-extras' table_cache_hit, index_cache_hit and index_usage, per table. */
            json_t *row = json_array_get(tables, json_array_size(tables) - 1);
            json_object_set_new(row, "table_hit_ratio", hp__ratio(t->heap_hit, t->heap_read));
            json_object_set_new(row, "index_hit_ratio", hp__ratio(t->idx_hit, t->idx_read));
            /* Added as doubles (two counters near INT64_MAX must not overflow), then saturated back into an integer. */
            double blocks = (double)t->heap_read + (double)t->idx_read;
            json_object_set_new(row, "blocks_read", json_integer(blocks < 9.2e18 ? (json_int_t)blocks : INT64_MAX));
            double scans = (double)t->seq_scan + (double)t->idx_scan;
            json_object_set_new(row, "index_use_ratio",
                                scans > 0 ? json_real(round(10000 * (double)t->idx_scan / scans) / 10000) : json_null());
        }
        json_object_set_new(doc, "tables", tables);
        json_object_set_new(doc, "cache",
                            json_pack("{so so sI sI sI sI}", "table_hit_ratio", hp__ratio(h->heap_hit, h->heap_read),
                                      "index_hit_ratio", hp__ratio(h->idx_hit, h->idx_read), "table_blocks_hit",
                                      (json_int_t)h->heap_hit, "table_blocks_read", (json_int_t)h->heap_read, "index_blocks_hit",
                                      (json_int_t)h->idx_hit, "index_blocks_read", (json_int_t)h->idx_read));
        json_object_set_new(doc, "stats_age_s", h->stats_age_s >= 0 ? json_real(round(h->stats_age_s)) : json_null());
    }
    if (h->statements_ok) {
        json_t *list = json_array();
        for (size_t i = 0; i != h->num_other; ++i) {
            const hp_pg_other_stmt_t *o = &h->other[i];
            json_array_append_new(list, json_pack("{ss sI sf sf sI sI sI}", "query", o->query, "calls", (json_int_t)o->calls,
                                                  "total_exec_time_ms", round(o->total_ms * 1000) / 1000, "mean_exec_time_ms",
                                                  round(o->mean_ms * 1000) / 1000, "rows", (json_int_t)o->rows, "shared_blks_hit",
                                                  (json_int_t)o->blks_hit, "shared_blks_read", (json_int_t)o->blks_read));
        }
        json_object_set_new(doc, "other_statements", list);
    }
    return doc;
}

int hp_pg_health_read(hp_pg_health_t *h, hp_pg_health_part_t part, const hp_pg_rows_t *rows, const hp_pg_health_limits_t *lim,
                      hp_pg_is_ours_fn is_ours)
{
    switch (part) {
    case HP_PG_HEALTH_SESSIONS:
        return hp_pg_health_read_sessions(h, rows, lim);
    case HP_PG_HEALTH_CONNECTIONS:
        return hp_pg_health_read_connections(h, rows);
    case HP_PG_HEALTH_INDEXES:
        return hp_pg_health_read_indexes(h, rows, lim);
    case HP_PG_HEALTH_TABLES:
        return hp_pg_health_read_tables(h, rows);
    case HP_PG_HEALTH_STATEMENTS:
    case HP_PG_HEALTH__PARTS:
        break;
    }
    return hp_pg_health_read_statements(h, rows, is_ours);
}
