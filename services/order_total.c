/*
 * order_total: the price breakdown of a cart (see order_total.h for the contract).
 *
 * Every amount of money is an integer number of cents held in 64 bits. The only
 * floating point is the great-circle distance, which is rounded to whole metres
 * before any money depends on it. Every percentage is in basis points and is
 * rounded half up (x.5 cents becomes x+1); all operands are non-negative by then,
 * so "half up" and "half away from zero" coincide.
 *
 * The pricing rules live in small helpers shared by both modes, so the two modes
 * differ only in how they find the data and how often they repeat the work:
 * hp_total__compute_once resolves every id through small hash tables on the
 * stack and evaluates each value once, while hp_total__compute_naive re-prices
 * the cart from scratch after every line with linear searches. Integer sums do
 * not depend on their order and the distance is computed by one function from
 * the same inputs, so both modes are bit-identical by construction; the unit
 * test checks this on thousands of random carts.
 */
#include "services/order_total.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/*
 * The two modes have external linkage and are never inlined on purpose: they
 * are what CPU profiles of the order_total toggle must show by name. A static
 * function could be inlined into hp_total_compute or cloned under a suffixed
 * name (".isra.0"), and the profile would no longer say which mode ran. They are
 * internal (double underscore) and therefore not declared in the header.
 */
__attribute__((noinline)) int hp_total__compute_once(const hp_total_input_t *in, hp_total_result_t *out);
__attribute__((noinline)) int hp_total__compute_naive(const hp_total_input_t *in, hp_total_result_t *out);

/* Mean Earth radius (IUGG), in metres; the documented sphere for haversine. */
static const double hp_total__earth_radius_m = 6371008.8;

/*
 * The caller validates quantities to 1..99. Clamping here anyway bounds the
 * subtotal at 200 lines x 99 units x INT32_MAX cents, about 4.3e13, which is
 * what keeps every sum and every basis-point product below 2^63 (see
 * hp_total__apply_bp). Without it, a bad caller would get signed overflow.
 */
enum { HP_TOTAL__MAX_QUANTITY = 99 };

static inline int64_t hp_total__clamp(int64_t v, int64_t lo, int64_t hi)
{
    /* The upper bound wins when a misconfigured range has lo > hi. */
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

static inline int64_t hp_total__nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

/*
 * Returns x * bp / 10000 rounded half up, for x >= 0 and bp >= 0. Splitting x
 * at 10000 keeps every product below 2^63 for any int32 bp: the quotient part
 * is at most about 1.1e9 * 2.1e9 and the remainder part at most 1e4 * 2.1e9.
 * The split is exact because q * bp * 10000 is a multiple of 10000.
 */
static inline int64_t hp_total__apply_bp(int64_t x, int64_t bp)
{
    int64_t q = x / 10000, r = x % 10000;
    return q * bp + (r * bp + 5000) / 10000;
}

/* The unit price is clamped at 0 (a large negative modifier makes an item free, never a credit). */
static inline int32_t hp_total__unit_price(int64_t price_plus_deltas)
{
    return (int32_t)hp_total__clamp(price_plus_deltas, 0, INT32_MAX);
}

static inline int64_t hp_total__line_total(int32_t unit_price, int32_t quantity)
{
    return (int64_t)unit_price * hp_total__clamp(quantity, 0, HP_TOTAL__MAX_QUANTITY);
}

/* A NULL promotion category matches every line; a NULL item category matches only that. */
static inline int hp_total__category_matches(const char *promo_category, const char *item_category)
{
    if (promo_category == NULL)
        return 1;
    return item_category != NULL && strcmp(promo_category, item_category) == 0;
}

/*
 * Returns the discount a promotion gives on the subtotal of its eligible lines,
 * or 0 when it is not eligible. The discount never exceeds that subtotal, so a
 * fixed promotion on a cheap category cannot discount other lines.
 */
static inline int64_t hp_total__promo_discount(const hp_total_promotion_t *p, int64_t eligible_subtotal)
{
    int64_t d;

    if (eligible_subtotal < p->min_subtotal_cents)
        return 0;
    switch (p->kind) {
    case HP_PROMO_PERCENT:
        d = hp_total__apply_bp(eligible_subtotal, hp_total__nonneg(p->value));
        break;
    case HP_PROMO_FIXED:
        d = p->value;
        break;
    default:
        return 0;
    }
    return hp_total__clamp(d, 0, eligible_subtotal);
}

/*
 * Keeps the best promotion seen so far: the largest discount, ties going to the
 * lowest id so that the choice does not depend on the order of promotions[]. A
 * promotion that would take nothing off is not applied, so promotion_id stays 0
 * rather than naming a promotion the customer gains nothing from.
 */
static inline void hp_total__promo_consider(const hp_total_promotion_t *p, int64_t discount, int64_t *best_discount,
                                            int64_t *best_id)
{
    if (discount <= 0)
        return;
    if (discount > *best_discount || (discount == *best_discount && p->id < *best_id)) {
        *best_discount = discount;
        *best_id = p->id;
    }
}

/*
 * Rounds the distance to the metre and derives the delivery fee from it. The fee
 * counts started kilometres of the rounded distance, so a client can check the
 * fee against the distance_m it is shown. A NaN distance (non-finite coordinates,
 * which the caller rejects) is reported as 0 m but charged the maximum fee, so
 * bad input can never make delivery cheaper.
 */
static inline void hp_total__delivery(const hp_total_fees_t *fees, double distance, int64_t *distance_m, int64_t *fee)
{
    int64_t max = hp_total__nonneg(fees->delivery_max_cents);

    if (!(distance >= 0 && distance <= 4 * hp_total__earth_radius_m)) {
        *distance_m = 0;
        *fee = max;
        return;
    }
    /* llround rounds halves away from zero, which is half up for a distance. */
    *distance_m = llround(distance);
    int64_t km = (*distance_m + 999) / 1000;
    *fee = hp_total__clamp(fees->delivery_base_cents + fees->delivery_per_km_cents * km, 0, max);
}

/*
 * Fills every cart-level field of out from the subtotal, the chosen promotion
 * and the distance: tax, fees, tip and total.
 */
static inline void hp_total__finish(const hp_total_input_t *in, int64_t subtotal, int64_t discount, int64_t promotion_id,
                                    double distance, hp_total_result_t *out)
{
    const hp_total_fees_t *fees = &in->fees;

    out->status = HP_TOTAL_OK;
    out->bad_line = 0;
    out->subtotal_cents = subtotal;
    out->discount_cents = discount;
    out->promotion_id = promotion_id;
    out->tax_cents = hp_total__apply_bp(subtotal - discount, hp_total__nonneg(in->tax_rate_bp));
    hp_total__delivery(fees, distance, &out->distance_m, &out->delivery_fee_cents);
    out->service_fee_cents =
        hp_total__clamp(hp_total__apply_bp(subtotal, hp_total__nonneg(fees->service_fee_bp)),
                        hp_total__nonneg(fees->service_fee_min_cents), hp_total__nonneg(fees->service_fee_max_cents));
    out->small_order_fee_cents = subtotal < fees->small_order_threshold_cents ? hp_total__nonneg(fees->small_order_fee_cents) : 0;
    out->tip_cents = in->tip_cents;
    out->total_cents = subtotal - discount + out->tax_cents + out->delivery_fee_cents + out->service_fee_cents +
                       out->small_order_fee_cents + out->tip_cents;
}

/* Reports an error; every other field is zeroed so that both modes fail identically. */
static inline int hp_total__fail(hp_total_result_t *out, hp_total_status_t status, size_t bad_line)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    out->bad_line = bad_line;
    return -1;
}

/* --- HP_TOTAL_ONCE ------------------------------------------------------ */

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
        out->lines[i].unit_price_cents = hp_total__unit_price(unit);
        out->lines[i].line_total_cents = hp_total__line_total(out->lines[i].unit_price_cents, line->quantity);
        subtotal += out->lines[i].line_total_cents;
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

    double distance = hp_total_distance_m(in->restaurant_lat, in->restaurant_lon, in->delivery_lat, in->delivery_lon);
    hp_total__finish(in, subtotal, best_discount, best_id, distance, out);
    return 0;
}

/* --- HP_TOTAL_NAIVE ----------------------------------------------------- */

static const hp_total_item_t *hp_total__find_item_linear(const hp_total_input_t *in, int64_t id)
{
    for (size_t i = 0; i < in->num_items; i++) {
        if (in->items[i].id == id)
            return &in->items[i];
    }
    return NULL;
}

static const hp_total_modifier_t *hp_total__find_modifier_linear(const hp_total_input_t *in, int64_t id)
{
    for (size_t i = 0; i < in->num_modifiers; i++) {
        if (in->modifiers[i].id == id)
            return &in->modifiers[i];
    }
    return NULL;
}

/*
 * The way quote code is often first written: the cart re-prices itself after
 * every line it adds. Each step looks every line so far up again by linear
 * search over items[] and all modifiers[], rescans those lines once per
 * promotion for eligibility, and recomputes the distance, the tax and the fees.
 * That is O(lines^2 * (items + modifiers per line * modifiers)) work for a
 * result the last step alone determines. Do not "fix" this function: it is the
 * bottleneck that the order_total toggle exists to demonstrate, and
 * hp_total__compute_once is the fixed version.
 */
int hp_total__compute_naive(const hp_total_input_t *in, hp_total_result_t *out)
{
    memset(out, 0, sizeof(*out));

    for (size_t i = 0; i < in->num_lines; i++) {
        int64_t subtotal = 0;
        for (size_t j = 0; j <= i; j++) {
            const hp_total_line_t *line = &in->lines[j];
            const hp_total_item_t *item = hp_total__find_item_linear(in, line->item_id);
            if (item == NULL)
                return hp_total__fail(out, HP_TOTAL_UNKNOWN_ITEM, j);
            if (line->num_modifier_ids > HP_TOTAL_MAX_MODIFIERS_PER_LINE)
                return hp_total__fail(out, HP_TOTAL_UNKNOWN_MODIFIER, j);
            int64_t unit = item->price_cents;
            for (size_t m = 0; m < line->num_modifier_ids; m++) {
                const hp_total_modifier_t *mod = hp_total__find_modifier_linear(in, line->modifier_ids[m]);
                if (mod == NULL || mod->item_id != line->item_id)
                    return hp_total__fail(out, HP_TOTAL_UNKNOWN_MODIFIER, j);
                unit += mod->price_delta_cents;
            }
            out->lines[j].unit_price_cents = hp_total__unit_price(unit);
            out->lines[j].line_total_cents = hp_total__line_total(out->lines[j].unit_price_cents, line->quantity);
            subtotal += out->lines[j].line_total_cents;
        }

        int64_t best_discount = 0, best_id = 0;
        for (size_t p = 0; p < in->num_promotions; p++) {
            const hp_total_promotion_t *promo = &in->promotions[p];
            int64_t eligible = 0;
            for (size_t j = 0; j <= i; j++) {
                /* Lines 0..i resolved above, so the item is found again. */
                const hp_total_item_t *item = hp_total__find_item_linear(in, in->lines[j].item_id);
                if (hp_total__category_matches(promo->category, item->category))
                    eligible += out->lines[j].line_total_cents;
            }
            hp_total__promo_consider(promo, hp_total__promo_discount(promo, eligible), &best_discount, &best_id);
        }

        double distance = hp_total_distance_m(in->restaurant_lat, in->restaurant_lon, in->delivery_lat, in->delivery_lon);
        hp_total__finish(in, subtotal, best_discount, best_id, distance, out);
    }
    return 0;
}

/* --- public API ---------------------------------------------------------- */

hp_total_fees_t hp_total_fees_default(void)
{
    return (hp_total_fees_t){
        .delivery_base_cents = 199,
        .delivery_per_km_cents = 50,
        .delivery_max_cents = 999,
        .service_fee_bp = 500,
        .service_fee_min_cents = 99,
        .service_fee_max_cents = 499,
        .small_order_threshold_cents = 1000,
        .small_order_fee_cents = 150,
    };
}

int hp_total_compute(const hp_total_input_t *in, hp_total_mode_t mode, hp_total_result_t *out)
{
    if (in->num_lines == 0)
        return hp_total__fail(out, HP_TOTAL_EMPTY, 0);
    if (in->num_lines > HP_TOTAL_MAX_LINES)
        return hp_total__fail(out, HP_TOTAL_TOO_MANY_LINES, HP_TOTAL_MAX_LINES);
    /* An unknown mode falls back to the fast path rather than failing a checkout. */
    if (mode == HP_TOTAL_NAIVE)
        return hp_total__compute_naive(in, out);
    return hp_total__compute_once(in, out);
}

double hp_total_distance_m(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = 3.14159265358979323846 / 180.0;
    double sdlat = sin((lat2 - lat1) * rad / 2), sdlon = sin((lon2 - lon1) * rad / 2);
    double a = sdlat * sdlat + cos(lat1 * rad) * cos(lat2 * rad) * sdlon * sdlon;

    /* Rounding can push a just above 1 for antipodal points, and asin(x > 1) is NaN. */
    if (a > 1)
        a = 1;
    return 2 * hp_total__earth_radius_m * asin(sqrt(a));
}
