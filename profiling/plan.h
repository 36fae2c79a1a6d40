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
} hp_plan_read_t;

/**
 * Reads an EXPLAIN (FORMAT JSON) document: its total cost, its costliest
 * sequential scan that has a filter, the sort above that scan, and the index
 * they ask for.
 * @return 0, or -1 when the document holds no plan
 */
int hp_plan_read(const json_t *explain, hp_plan_read_t *out);

/**
 * Derives a CREATE INDEX for a sequential scan from its Filter and the Sort
 * Key above it: the columns compared with "=" first, then the sort keys (with
 * their direction), table aliases removed, duplicates dropped.
 * @param sort_key comma-separated sort keys ("o.created_at DESC, o.id DESC"), or ""
 * @return 0 with the statement in out, or -1 when the filter has no equality column
 */
int hp_plan_index_sql(const char *rel, const char *filter, const char *sort_key, char *out, size_t outlen);

#endif
