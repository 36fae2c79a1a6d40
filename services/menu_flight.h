/*
 * menu_flight: the per-thread table of menu loads in flight, the bookkeeping
 * half of the menu cache's single flight (services/menus.c has the protocol).
 *
 * A flight is one load of one restaurant's menu on one worker thread. The
 * first request that misses the cache for a restaurant becomes the flight's
 * leader and does the work; requests that miss for the same restaurant while
 * the flight is up become its followers and wait for the leader's result,
 * first come first served. If the leader goes away (its client disconnected),
 * the oldest follower is promoted and takes the work over.
 *
 * The table belongs to one thread and is only touched from its loop, so it has
 * no locks. It knows nothing of requests: waiters are embedded in the caller's
 * per-request state, and the caller decides what promotion and completion
 * mean. Ownership: flights are malloc'd by hp_menu_flight_join and freed by
 * hp_menu_flight_end; waiters belong to the caller, and a waiter must be
 * removed (hp_menu_flight_leave, hp_menu_flight_pop or hp_menu_flight_promote)
 * before its memory goes.
 */
#ifndef HP_MENU_FLIGHT_H
#define HP_MENU_FLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/linklist.h>
#include <h2o/memory.h>

#define HP_MENU_FLIGHT_BUCKETS 64

struct st_hp_menu_flight_t;

/* One request taking part in a flight, embedded in the caller's state. */
typedef struct st_hp_menu_waiter_t {
    struct st_hp_menu_flight_t *flight; /* NULL when in no flight */
    h2o_linklist_t link;                /* in the flight's followers, while a follower */
} hp_menu_waiter_t;

typedef struct st_hp_menu_flight_t {
    int64_t id;                       /* the restaurant */
    struct st_hp_menu_flight_t *next; /* the hash chain */
    hp_menu_waiter_t *leader;         /* NULL between the leader's departure and a promotion */
    h2o_linklist_t followers;         /* hp_menu_waiter_t, oldest first */
    size_t num_followers;
    uint64_t seq; /* the table's count of flights when this one began; names its lease */
} hp_menu_flight_t;

typedef struct st_hp_menu_flight_table_t {
    hp_menu_flight_t *buckets[HP_MENU_FLIGHT_BUCKETS];
    size_t count;   /* flights up */
    uint64_t begun; /* flights ever begun */
} hp_menu_flight_table_t;

/** @return the flight of restaurant id in t, or NULL */
hp_menu_flight_t *hp_menu_flight_find(hp_menu_flight_table_t *t, int64_t id);

/**
 * Makes w take part in the flight of restaurant id: as its leader when there
 * was none (a new flight is created), else as its newest follower.
 * @return 1 when w leads, 0 when it follows (w->flight is set either way)
 */
int hp_menu_flight_join(hp_menu_flight_table_t *t, int64_t id, hp_menu_waiter_t *w);

/**
 * Removes w from its flight (idempotent). A leader that leaves leaves the
 * flight leaderless: the caller promotes a follower or ends the flight.
 * @return 1 when w was the leader, 0 otherwise
 */
int hp_menu_flight_leave(hp_menu_waiter_t *w);

/**
 * Makes the oldest follower of a leaderless flight its leader.
 * @return the new leader, or NULL when the flight has no followers
 */
hp_menu_waiter_t *hp_menu_flight_promote(hp_menu_flight_t *f);

/** Removes and returns the oldest follower of f, or NULL; its flight becomes NULL. */
hp_menu_waiter_t *hp_menu_flight_pop(hp_menu_flight_t *f);

/**
 * Takes f out of the table and frees it. Its leader and any followers left
 * are detached first (their flight becomes NULL), so pop the followers you
 * mean to answer before calling this.
 */
void hp_menu_flight_end(hp_menu_flight_table_t *t, hp_menu_flight_t *f);

#endif
