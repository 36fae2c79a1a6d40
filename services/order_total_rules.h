/*
 * order_total_rules: the pricing rules both modes of the order total share
 * (order_total.c, the default; order_total_naive.c, the order_total=naive lab
 * variant), as static inline functions so the fast mode pays no call for
 * them. Internal to those two files.
 */
#ifndef HP_ORDER_TOTAL_RULES_H
#define HP_ORDER_TOTAL_RULES_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "services/order_total.h"

/*
 * The two modes have external linkage and are never inlined on purpose: they
 * are what CPU profiles of the order_total toggle must show by name. A static
 * function could be inlined into hp_total_compute or cloned under a suffixed
 * name (".isra.0"), and the profile would no longer say which mode ran. They are
 * internal (double underscore) and therefore not declared in the public header.
 */
__attribute__((noinline)) int hp_total__compute_once(const hp_total_input_t *in, hp_total_result_t *out);
__attribute__((noinline)) int hp_total__compute_naive(const hp_total_input_t *in, hp_total_result_t *out);

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

/* Prices line i of out (unit price and line total) from its item's price plus its modifiers' deltas. @return the line total */
static inline int64_t hp_total__price_line(hp_total_result_t *out, size_t i, int64_t price_plus_deltas, int32_t quantity)
{
    out->lines[i].unit_price_cents = hp_total__unit_price(price_plus_deltas);
    out->lines[i].line_total_cents = hp_total__line_total(out->lines[i].unit_price_cents, quantity);
    return out->lines[i].line_total_cents;
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

    if (!(distance >= 0 && distance <= 4 * HP_TOTAL_EARTH_RADIUS_M)) {
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
 * Fills every cart-level field of out from the subtotal and the chosen
 * promotion: the delivery distance, tax, fees, tip and total.
 */
static inline void hp_total__finish(const hp_total_input_t *in, int64_t subtotal, int64_t discount, int64_t promotion_id,
                                    hp_total_result_t *out)
{
    const hp_total_fees_t *fees = &in->fees;
    double distance = hp_total_distance_m(in->restaurant_lat, in->restaurant_lon, in->delivery_lat, in->delivery_lon);

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

#endif
