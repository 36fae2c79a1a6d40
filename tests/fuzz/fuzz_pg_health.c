/*
 * libFuzzer driver: the readers of PostgreSQL's health (profiling/pg_health.c),
 * which turn the text cells of GET /debug/pg/health's queries into a reading.
 *
 * The input is a reader (its first byte) and rows: lines of tab-separated
 * cells, "\N" for an SQL null, as many columns as the first line has. The
 * cells are what another application's session, index or table names put
 * there, so anything goes.
 *
 * Invariants: a reader refuses rows of the wrong shape and otherwise
 * succeeds; every list stays within its bound and every text is terminated;
 * a duplicate index names an index of its table that covers it; an index
 * is never both unused and a duplicate, nor unused while it covers a
 * duplicate; every DROP INDEX starts as one; the JSON of the reading exists.
 */
#include "profiling/pg_health.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CELLS 4096

static const int cols_of[] = {10, 10, 15, 22, 7};

static int ours(const char *sql, size_t len)
{
    return len > 0 && sql[0] == 'H';
}

static void terminated(const char *s, size_t size)
{
    if (memchr(s, '\0', size) == NULL)
        abort();
}

static void check_index(const hp_pg_index_t *ix)
{
    terminated(ix->schema, sizeof(ix->schema));
    terminated(ix->table, sizeof(ix->table));
    terminated(ix->index, sizeof(ix->index));
    terminated(ix->covered_by, sizeof(ix->covered_by));
    terminated(ix->def, sizeof(ix->def));
    char drop[320];
    hp_pg_health_drop_sql(ix, drop, sizeof(drop));
    if (strncmp(drop, "DROP INDEX CONCURRENTLY ", 24) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int reader = data[0] % HP_PG_HEALTH__PARTS;
    char *text = malloc(size);
    const char **cells = malloc(sizeof(*cells) * MAX_CELLS);
    hp_pg_health_t *h = calloc(1, sizeof(*h));
    if (text == NULL || cells == NULL || h == NULL)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    /* Split into cells; the first line's cells are the column count. */
    int n = 0, cols = 0, row_cells = 0;
    for (char *p = text; n != MAX_CELLS;) {
        char *end = p + strcspn(p, "\t\n");
        char sep = *end;
        *end = '\0';
        cells[n++] = strcmp(p, "\\N") == 0 ? NULL : p;
        ++row_cells;
        if (sep != '\t') {
            if (cols == 0)
                cols = row_cells;
            row_cells = 0;
        }
        if (sep == '\0')
            break;
        p = end + 1;
    }
    hp_pg_rows_t rows = {cols > 0 ? n / cols : 0, cols, cells};
    hp_pg_health_limits_t lim = {60, 60, 5, 50, 65536, 10000, 0.2, 10000, 0.2, 0.99, 10000, 10000};
    int rc = hp_pg_health_read(h, (hp_pg_health_part_t)reader, &rows, &lim, ours);
    if ((rc == 0) != (cols == cols_of[reader]))
        abort();
    if (h->num_sessions > HP_PG_HEALTH_MAX || h->num_apps > HP_PG_HEALTH_MAX || h->num_unused > HP_PG_HEALTH_MAX ||
        h->num_duplicate > HP_PG_HEALTH_MAX || h->num_tables > sizeof(h->tables) / sizeof(h->tables[0]) ||
        h->num_other > HP_PG_HEALTH_MAX)
        abort();
    for (size_t i = 0; i != h->num_sessions; ++i) {
        terminated(h->sessions[i].query, sizeof(h->sessions[i].query));
        terminated(h->sessions[i].app, sizeof(h->sessions[i].app));
    }
    for (size_t i = 0; i != h->num_duplicate; ++i) {
        check_index(&h->duplicate[i]);
        /* The index that covers it is a row of the input, on the same table. */
        int found = 0;
        for (int r = 0; r != rows.rows && !found; ++r) {
            const char *t = cells[r * cols + 1], *ix = cells[r * cols + 2];
            found = strncmp(t != NULL ? t : "", h->duplicate[i].table, sizeof(h->duplicate[i].table) - 1) == 0 &&
                    strncmp(ix != NULL ? ix : "", h->duplicate[i].covered_by, sizeof(h->duplicate[i].covered_by) - 1) == 0;
        }
        if (!found)
            abort();
    }
    for (size_t i = 0; i != h->num_unused; ++i) {
        check_index(&h->unused[i]);
        for (size_t j = 0; j != h->num_duplicate; ++j)
            if (strcmp(h->unused[i].schema, h->duplicate[j].schema) == 0 &&
                (strcmp(h->unused[i].index, h->duplicate[j].index) == 0 ||
                 strcmp(h->unused[i].index, h->duplicate[j].covered_by) == 0))
                abort();
    }
    for (size_t i = 0; i != h->num_other; ++i)
        terminated(h->other[i].query, sizeof(h->other[i].query));
    const char *table = cols > 0 && cells[0] != NULL ? cells[0] : "t";
    hp_pg_health_other_on(h, table);
    /* Between a reading and itself nothing ran: no statement may be named. */
    hp_pg_other_stmt_t o;
    if (hp_pg_health_other_between(h, h, table, &o))
        abort();
    json_t *doc = hp_pg_health_json(h, &lim);
    if (doc == NULL)
        abort();
    json_decref(doc);
    free(h);
    free(cells);
    free(text);
    return 0;
}
