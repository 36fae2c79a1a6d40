/*
 * menu_flight: the per-thread table of menu loads in flight (see menu_flight.h).
 *
 * A small chained hash table keyed by restaurant id. It holds only the flights
 * currently up, a handful even under load (one per cold menu being loaded on
 * this thread), so a fixed number of buckets is enough and it never resizes.
 */
#include "services/menu_flight.h"

#include <stdlib.h>

static size_t hp__bucket(int64_t id)
{
    /* Restaurant ids are dense, so the low bits already spread well; the multiply mixes in the rest. */
    return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 58) % HP_MENU_FLIGHT_BUCKETS;
}

hp_menu_flight_t *hp_menu_flight_find(hp_menu_flight_table_t *t, int64_t id)
{
    for (hp_menu_flight_t *f = t->buckets[hp__bucket(id)]; f != NULL; f = f->next)
        if (f->id == id)
            return f;
    return NULL;
}

int hp_menu_flight_join(hp_menu_flight_table_t *t, int64_t id, hp_menu_waiter_t *w)
{
    hp_menu_flight_t *f = hp_menu_flight_find(t, id);
    if (f == NULL) {
        if ((f = calloc(1, sizeof(*f))) == NULL)
            abort();
        f->id = id;
        f->seq = ++t->begun;
        h2o_linklist_init_anchor(&f->followers);
        size_t b = hp__bucket(id);
        f->next = t->buckets[b];
        t->buckets[b] = f;
        ++t->count;
    }
    w->flight = f;
    if (f->leader == NULL && f->num_followers == 0) {
        f->leader = w;
        return 1;
    }
    /* A leaderless flight with followers is waiting for a promotion: the newcomer queues behind them. */
    h2o_linklist_insert(&f->followers, &w->link);
    ++f->num_followers;
    return 0;
}

int hp_menu_flight_leave(hp_menu_waiter_t *w)
{
    hp_menu_flight_t *f = w->flight;
    if (f == NULL)
        return 0;
    w->flight = NULL;
    if (f->leader == w) {
        f->leader = NULL;
        return 1;
    }
    h2o_linklist_unlink(&w->link);
    --f->num_followers;
    return 0;
}

hp_menu_waiter_t *hp_menu_flight_pop(hp_menu_flight_t *f)
{
    if (h2o_linklist_is_empty(&f->followers))
        return NULL;
    hp_menu_waiter_t *w = H2O_STRUCT_FROM_MEMBER(hp_menu_waiter_t, link, f->followers.next);
    h2o_linklist_unlink(&w->link);
    --f->num_followers;
    w->flight = NULL;
    return w;
}

hp_menu_waiter_t *hp_menu_flight_promote(hp_menu_flight_t *f)
{
    hp_menu_waiter_t *w = hp_menu_flight_pop(f);
    if (w != NULL) {
        w->flight = f;
        f->leader = w;
    }
    return w;
}

void hp_menu_flight_end(hp_menu_flight_table_t *t, hp_menu_flight_t *f)
{
    if (f->leader != NULL)
        hp_menu_flight_leave(f->leader);
    while (hp_menu_flight_pop(f) != NULL)
        ;
    hp_menu_flight_t **p = &t->buckets[hp__bucket(f->id)];
    while (*p != f)
        p = &(*p)->next;
    *p = f->next;
    --t->count;
    free(f);
}
