/*
 * plan: reading EXPLAIN (FORMAT JSON) documents, as pure code.
 *
 * One walk over a plan's nodes (hp_plan_walk), and the two readings the
 * server makes of it: the summary /debug/pg/explain and /debug/pg/slow show
 * (the scans, the sorts, the times), and the doctor's (the costliest
 * sequential scan with a filter, the sort above it, and the CREATE INDEX
 * they ask for). The inputs are jansson documents; nothing here touches a
 * global, so tests/unit drives it with canned plans.
 */
#ifndef HP_PLAN_H
#define HP_PLAN_H

#include <stddef.h>

#include <jansson.h>

/* The deepest plan node a walk descends to. */
#define HP_PLAN_MAX_DEPTH 64

/**
 * Called for every node of a plan, outermost first.
 * @param sort_key the Sort Key of the nearest Sort or Incremental Sort above
 *        the node (comma-separated), or NULL when none is
 */
typedef void (*hp_plan_visit_fn)(const json_t *node, int depth, const char *sort_key, void *ud);

/** Walks a plan node and its children (the "Plan" object of an EXPLAIN document). */
void hp_plan_walk(const json_t *plan, hp_plan_visit_fn visit, void *ud);

/**
 * Summarises an EXPLAIN (FORMAT JSON) document (the array EXPLAIN returns, or
 * the object auto_explain logs): the top node type, the relations read by
 * sequential, index, index-only and bitmap heap scans (with the indexes
 * used), whether a node sorts, and the planning and execution times when
 * present.
 * @return a new object (never NULL)
 */
json_t *hp_plan_summary(const json_t *explain);

/* The doctor's reading of a plan. */
typedef struct st_hp_plan_read_t {
    double cost;         /* the plan's total estimated cost */
    char seq_rel[64];    /* the relation of its costliest sequential scan with a filter, or "" */
    char filter[256];    /* that scan's Filter, as EXPLAIN prints it */
    char sort_key[256];  /* the Sort Key above it that this relation could provide, comma-separated, or "" */
    char index_sql[256]; /* the CREATE INDEX derived from them (hp_plan_index_sql), or "" */
    /*
     * The costliest index scan with an Index Cond (Index Scan, Index Only
     * Scan, Bitmap Index Scan): a candidate for a full index scan, which
     * only the catalog can confirm (hp_plan_full_index).
     */
    char idx_name[64], idx_rel[64], idx_cond[256], idx_sort_key[256];
    char full_index[64]; /* set by hp_plan_full_index: seq_rel is then read through this whole index, and lead is its column */
    char lead[64];
} hp_plan_read_t;

/**
 * Reads an EXPLAIN (FORMAT JSON) document: its total cost, its costliest
 * sequential scan that has a filter, the sort above that scan, and the index
 * they ask for.
 * @return 0, or -1 when the document holds no plan
 */
int hp_plan_read(const json_t *explain, hp_plan_read_t *out);

/**
 * Confirms the index scan candidate of a reading as a full index scan when
 * its Index Cond does not constrain the index's leading column: a B-tree
 * then reads every leaf page, as a sequential scan reads every heap page,
 * which is what PostgreSQL chooses when the index is smaller than the table
 * and no index leads with the filtered column. The scan then takes the
 * place of seq_rel, filter and sort_key, and index_sql is derived from it.
 * @param lead the index's leading column (pg_get_indexdef(index, 1, true))
 * @return 1 when confirmed, 0 otherwise (the reading unchanged)
 */
int hp_plan_full_index(hp_plan_read_t *p, const char *lead);

/** Does the condition compare the column (bare or after an alias and a dot) anywhere? */
int hp_plan_cond_uses(const char *cond, const char *col);

/**
 * Derives a CREATE INDEX for a sequential scan from its Filter and the Sort
 * Key above it: the columns compared with "=" first, then the sort keys (with
 * their direction), table aliases removed, duplicates dropped.
 * @param sort_key comma-separated sort keys ("o.created_at DESC, o.id DESC"), or ""
 * @return 0 with the statement in out, or -1 when the filter has no equality column
 */
int hp_plan_index_sql(const char *rel, const char *filter, const char *sort_key, char *out, size_t outlen);

#endif
