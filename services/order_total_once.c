/*
 * order_total_once: the default mode of the order total (see order_total.c):
 * every id resolved through small hash tables on the stack, every value
 * evaluated once.
 */
#include "services/order_total_rules.h"

/*
 * An open-addressing set of the ids the cart references, mapping each to the
 * index of its first occurrence in items[] or modifiers[]. It is sized by what
 * a cart can reference (50 items, 500 modifier ids) rather than by the length of
 * items[] or modifiers[], so it fits on the stack whatever the caller passes,
 * and its load factor stays below one half. First occurrence matters: with a
 * duplicated id the linear search of the naive mode finds the first record, and
 * both modes must agree.
 */
typedef struct st_hp_total__slot_t {
    int64_t key;
    size_t index; /* into items[] or modifiers[], valid when found is set */
    uint8_t used;
    uint8_t found;
} hp_total__slot_t;

enum {
    HP_TOTAL__ITEM_SLOTS = 512,      /* hp_total__slots_for(HP_TOTAL_MAX_LINES) */
    HP_TOTAL__MODIFIER_SLOTS = 4096, /* hp_total__slots_for(lines x modifiers per line) */
};

_Static_assert(HP_TOTAL__ITEM_SLOTS >= 2 * HP_TOTAL_MAX_LINES, "item table too small");
_Static_assert(HP_TOTAL__MODIFIER_SLOTS >= 2 * HP_TOTAL_MAX_LINES * HP_TOTAL_MAX_MODIFIERS_PER_LINE, "modifier table too small");

static inline size_t hp_total__hash(int64_t key, size_t nslots)
{
    /* The splitmix64 finalizer: ids are often consecutive, and this spreads them. */
    uint64_t z = (uint64_t)key + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (size_t)(z ^ (z >> 31)) & (nslots - 1);
}

/*
 * Returns the slot of key, claiming a free one when add is set, or NULL when the
 * key is absent and add is not set. The table never fills up (see the sizes
 * above), so the probe always ends.
 */
static hp_total__slot_t *hp_total__slot(hp_total__slot_t *slots, size_t nslots, int64_t key, int add)
{
    for (size_t i = hp_total__hash(key, nslots);; i = (i + 1) & (nslots - 1)) {
        hp_total__slot_t *s = &slots[i];
        if (!s->used) {
            if (!add)
                return NULL;
            s->used = 1;
            s->key = key;
            return s;
        }
        if (s->key == key)
            return s;
    }
}

/* Marks a wanted id as found at index, unless an earlier record already had it. */
static inline void hp_total__slot_offer(hp_total__slot_t *slots, size_t nslots, int64_t key, size_t index)
{
    hp_total__slot_t *s = hp_total__slot(slots, nslots, key, 0);
    if (s != NULL && !s->found) {
        s->found = 1;
        s->index = index;
    }
}

/*
 * Returns the table size for n keys: the smallest power of two of at least 2n
 * (and at least 8), which never exceeds the array because n is bounded by the
 * cart limits. Only that prefix is cleared, so a small cart does not pay for
 * zeroing 24 KiB of slots it will not use.
 */
static inline size_t hp_total__slots_for(size_t n)
{
    size_t nslots = 8;
    while (nslots < 2 * n)
        nslots *= 2;
    return nslots;
}

int hp_total__compute_once(const hp_total_input_t *in, hp_total_result_t *out)
{
    hp_total__slot_t item_slots[HP_TOTAL__ITEM_SLOTS];
    hp_total__slot_t modifier_slots[HP_TOTAL__MODIFIER_SLOTS];
    const hp_total_item_t *line_items[HP_TOTAL_MAX_LINES];
    size_t n = in->num_lines, num_modifier_ids = 0;

    memset(out, 0, sizeof(*out));

    /* Size both tables for this cart; lines with too many modifier ids fail before their ids are needed. */
    for (size_t i = 0; i < n; i++) {
        if (in->lines[i].num_modifier_ids <= HP_TOTAL_MAX_MODIFIERS_PER_LINE)
            num_modifier_ids += in->lines[i].num_modifier_ids;
    }
    size_t nitem = hp_total__slots_for(n), nmod = hp_total__slots_for(num_modifier_ids);
    memset(item_slots, 0, nitem * sizeof(item_slots[0]));
    memset(modifier_slots, 0, nmod * sizeof(modifier_slots[0]));

    /* Collect the ids the cart needs, then find them all in one pass over each array. */
    for (size_t i = 0; i < n; i++) {
        const hp_total_line_t *line = &in->lines[i];
        hp_total__slot(item_slots, nitem, line->item_id, 1);
        if (line->num_modifier_ids <= HP_TOTAL_MAX_MODIFIERS_PER_LINE) {
            for (size_t m = 0; m < line->num_modifier_ids; m++)
                hp_total__slot(modifier_slots, nmod, line->modifier_ids[m], 1);
        }
    }
    for (size_t i = 0; i < in->num_items; i++)
        hp_total__slot_offer(item_slots, nitem, in->items[i].id, i);
    for (size_t i = 0; i < in->num_modifiers; i++)
        hp_total__slot_offer(modifier_slots, nmod, in->modifiers[i].id, i);

    int64_t subtotal = 0;
    for (size_t i = 0; i < n; i++) {
        const hp_total_line_t *line = &in->lines[i];
        const hp_total__slot_t *is = hp_total__slot(item_slots, nitem, line->item_id, 0);
        if (!is->found)
            return hp_total__fail(out, HP_TOTAL_UNKNOWN_ITEM, i);
        line_items[i] = &in->items[is->index];
        if (line->num_modifier_ids > HP_TOTAL_MAX_MODIFIERS_PER_LINE)
            return hp_total__fail(out, HP_TOTAL_UNKNOWN_MODIFIER, i);
        int64_t unit = line_items[i]->price_cents;
        for (size_t m = 0; m < line->num_modifier_ids; m++) {
            const hp_total__slot_t *ms = hp_total__slot(modifier_slots, nmod, line->modifier_ids[m], 0);
            if (!ms->found || in->modifiers[ms->index].item_id != line->item_id)
                return hp_total__fail(out, HP_TOTAL_UNKNOWN_MODIFIER, i);
            unit += in->modifiers[ms->index].price_delta_cents;
        }
        subtotal += hp_total__price_line(out, i, unit, line->quantity);
    }

    int64_t best_discount = 0, best_id = 0;
    for (size_t p = 0; p < in->num_promotions; p++) {
        const hp_total_promotion_t *promo = &in->promotions[p];
        int64_t eligible = 0;
        for (size_t i = 0; i < n; i++) {
            if (hp_total__category_matches(promo->category, line_items[i]->category))
                eligible += out->lines[i].line_total_cents;
        }
        hp_total__promo_consider(promo, hp_total__promo_discount(promo, eligible), &best_discount, &best_id);
    }

    hp_total__finish(in, subtotal, best_discount, best_id, out);
    return 0;
}
