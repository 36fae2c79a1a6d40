/*
 * order_total_naive: the order_total=naive lab variant of the order total
 * (see order_total.c): the same rules, looked up and repeated the slow way.
 * Kept beside the default path, so that path reads top-down.
 */
#include "services/order_total_rules.h"

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
            subtotal += hp_total__price_line(out, j, unit, line->quantity);
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

        hp_total__finish(in, subtotal, best_discount, best_id, out);
    }
    return 0;
}
