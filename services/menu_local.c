/*
 * menu_local: per-thread menu copies (see menu_local.h).
 */
#include "services/menu_local.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_hp_menu_local_slot_t {
    int64_t id; /* 0: empty (restaurant ids start at 1) */
    uint64_t gen;
    uint64_t filled_ns;
    char *doc; /* malloc'd, capacity cap */
    size_t len, cap;
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

int hp_menu_local_get(int64_t id, uint64_t now_ns, const char **doc, size_t *len)
{
    hp_menu_local_slot_t *s = &hp__slots[hp__slot_of(id)];
    if (s->id != id || s->gen != hp_menu_local_generation(id) || now_ns - s->filled_ns >= HP_MENU_LOCAL_MAX_AGE_MS * 1000000ull)
        return 0;
    *doc = s->doc;
    *len = s->len;
    return 1;
}

void hp_menu_local_put(int64_t id, uint64_t gen, uint64_t now_ns, const char *doc, size_t len)
{
    if (len > HP_MENU_LOCAL_MAX_DOC || gen != hp_menu_local_generation(id))
        return; /* too large to copy, or a PATCH landed since the lookup began: the copy would be stale at once */
    hp_menu_local_slot_t *s = &hp__slots[hp__slot_of(id)];
    if (s->cap < len) {
        /* Grown to the next power of two, so a slot that changes hands settles on one allocation. */
        size_t cap = 1024;
        while (cap < len)
            cap *= 2;
        char *p = malloc(cap);
        if (p == NULL)
            return;
        free(s->doc);
        s->doc = p;
        s->cap = cap;
    }
    memcpy(s->doc, doc, len);
    s->len = len;
    s->id = id;
    s->gen = gen;
    s->filled_ns = now_ns;
}

void hp_menu_local_invalidate(int64_t id)
{
    atomic_fetch_add_explicit(hp__generation_of(id), 1, memory_order_acq_rel);
}

void hp_menu_local_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    for (size_t i = 0; i != HP_MENU_LOCAL_SLOTS; ++i) {
        free(hp__slots[i].doc);
        memset(&hp__slots[i], 0, sizeof(hp__slots[i]));
    }
}
