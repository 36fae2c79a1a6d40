/*
 * pgindex: indexes that the orders_user_id_index flag and `hotplate index`
 * create and drop CONCURRENTLY, then ANALYZE (see pgindex.c).
 */
#ifndef HP_PGINDEX_H
#define HP_PGINDEX_H

#include <stddef.h>

#include <jansson.h>

/**
 * Creates (on) or drops (off) the named index CONCURRENTLY and runs ANALYZE,
 * on a blocking connection of its own. Never call it from an event loop.
 * @return 0, or -1 with a message in err
 */
int hp_pgindex_apply(const char *pg_url, const char *name, int on, char *err, size_t errlen);

/** Reads whether the named index exists and is valid into *on. @return 0 or -1 with a message in err */
int hp_pgindex_state(const char *pg_url, const char *name, int *on, char *err, size_t errlen);

/**
 * Starts the server's index thread. Its first job: apply the flag when it was
 * given at startup (--flag or HOTPLATE_FLAGS), or else set the flag to what
 * the database has. @return 0 or -1
 */
int hp_pgindex_start(const char *pg_url);

/** Wakes the index thread after the flag changed at runtime (POST /debug/flags). */
void hp_pgindex_flag_changed(void);

/** Stops the index thread, after the action in progress if any. */
void hp_pgindex_stop(void);

/** @return {"orders_user_id_index": {"state", "target", "ms", "error"}}, a new reference */
json_t *hp_pgindex_actions_json(void);

/** `hotplate index NAME on|off` (argv[0] is "index"). @return the exit status */
int hp_pgindex_main(int argc, char **argv);

#endif
