/*
 * menu_local: per-thread menu copies (see menu_local.h).
 */
#include "services/menu_local.h"

#include <stdatomic.h>
#include <string.h>

typedef struct st_hp_menu_local_slot_t {
    int64_t id; /* 0: empty (restaurant ids start at 1) */
    uint64_t gen;
    uint64_t filled_ns;
    char *doc; /* an h2o shared chunk (h2o_mem_alloc_shared), of which the slot holds one reference; NULL when empty */
    size_t len;
} hp_menu_local_slot_t;

/* Shared by every thread; each counter only grows. */
static _Atomic uint64_t hp__generations[HP_MENU_LOCAL_GENERATIONS];

/* This thread's table; only its own loop touches it. */
static _Thread_local hp_menu_local_slot_t hp__slots[HP_MENU_LOCAL_SLOTS];

static size_t hp__slot_of(int64_t id)
{
    return (size_t)((uint64_t)id % HP_MENU_LOCAL_SLOTS);
}

static _Atomic uint64_t *hp__generation_of(int64_t id)
{
    return &hp__generations[(uint64_t)id % HP_MENU_LOCAL_GENERATIONS];
}

uint64_t hp_menu_local_generation(int64_t id)
{
    return atomic_load_explicit(hp__generation_of(id), memory_order_acquire);
}

int hp_menu_local_get(int64_t id, uint64_t now_ns, h2o_mem_pool_t *pool, h2o_iovec_t *doc)
{
    hp_menu_local_slot_t *s = &hp__slots[hp__slot_of(id)];
    if (s->id != id || s->gen != hp_menu_local_generation(id) || now_ns - s->filled_ns >= HP_MENU_LOCAL_MAX_AGE_MS * 1000000ull)
        return 0;
    h2o_mem_link_shared(pool, s->doc);
    *doc = h2o_iovec_init(s->doc, s->len);
    return 1;
}

/* Drops the slot's reference to its document; responses that still send it hold their own. */
static void hp__slot_clear(hp_menu_local_slot_t *s)
{
    if (s->doc != NULL)
        h2o_mem_release_shared(s->doc);
    memset(s, 0, sizeof(*s));
}

int hp_menu_local_put(int64_t id, uint64_t gen, uint64_t now_ns, const char *doc, size_t len)
{
    if (len > HP_MENU_LOCAL_MAX_DOC || gen != hp_menu_local_generation(id))
        return 0; /* too large to copy, or a PATCH landed since the lookup began: the copy would be stale at once */
    hp_menu_local_slot_t *s = &hp__slots[hp__slot_of(id)];
    /*
     * Always a new chunk, never the old one rewritten: a response on the loop
     * may still be sending the old document. A put comes at most once per
     * HP_MENU_LOCAL_MAX_AGE_MS per restaurant, so the allocation is rare.
     * (h2o_mem_alloc_shared aborts when memory runs out, as every pool
     * allocation of a request does.)
     */
    char *p = h2o_mem_alloc_shared(NULL, len + 1, NULL);
    memcpy(p, doc, len);
    p[len] = '\0'; /* NUL-terminated like the pool copies of the other paths */
    hp__slot_clear(s);
    s->doc = p;
    s->len = len;
    s->id = id;
    s->gen = gen;
    s->filled_ns = now_ns;
    return 1;
}

void hp_menu_local_invalidate(int64_t id)
{
    atomic_fetch_add_explicit(hp__generation_of(id), 1, memory_order_acq_rel);
}

void hp_menu_local_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    for (size_t i = 0; i != HP_MENU_LOCAL_SLOTS; ++i)
        hp__slot_clear(&hp__slots[i]);
}
