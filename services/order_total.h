/*
 * order_total: the price breakdown of a cart, as a pure function.
 *
 * This module does no I/O and touches no globals: the caller loads the items,
 * modifiers, promotions, tax rate and locations, and passes them in. That keeps
 * it unit-testable, fuzzable and cheap to call from both POST /cart/quote and
 * POST /orders, which must agree to the cent.
 *
 * Two modes compute the same totals. HP_TOTAL_ONCE computes every value once
 * per cart. HP_TOTAL_NAIVE is the classic repeated-calculation bottleneck kept
 * for the order_total toggle: it re-resolves modifiers, rescans the cart for
 * promotion eligibility and recomputes distance and tax for every line, which
 * makes it quadratic in the number of lines. Both are real code paths; a
 * property test asserts they agree on random carts.
 */
#ifndef HP_ORDER_TOTAL_H
#define HP_ORDER_TOTAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * 200 lines: a catering or office order, the largest cart a delivery platform
 * sees. The order_total=naive bottleneck is quadratic in lines, so its lab
 * (docs/labs/04-order-total.md) uses carts of that kind.
 */
#define HP_TOTAL_MAX_LINES 200
/* Mean Earth radius (IUGG), in metres: the sphere of the haversine distance. */
#define HP_TOTAL_EARTH_RADIUS_M 6371008.8
#define HP_TOTAL_MAX_MODIFIERS_PER_LINE 10

typedef enum { HP_TOTAL_ONCE = 0, HP_TOTAL_NAIVE = 1 } hp_total_mode_t;

/* A modifier the restaurant offers, as loaded from item_modifiers. */
typedef struct st_hp_total_modifier_t {
    int64_t id;
    int64_t item_id;
    int32_t price_delta_cents; /* may be negative */
} hp_total_modifier_t;

/* A menu item referenced by the cart, as loaded from menu_items. */
typedef struct st_hp_total_item_t {
    int64_t id;
    int32_t price_cents;
    const char *category; /* NUL-terminated, owned by the caller */
} hp_total_item_t;

/* One cart line as the customer sent it. */
typedef struct st_hp_total_line_t {
    int64_t item_id;
    int32_t quantity; /* 1..99, validated by the caller */
    size_t num_modifier_ids;
    int64_t modifier_ids[HP_TOTAL_MAX_MODIFIERS_PER_LINE];
} hp_total_line_t;

typedef enum { HP_PROMO_PERCENT = 0, HP_PROMO_FIXED = 1 } hp_promo_kind_t;

typedef struct st_hp_total_promotion_t {
    int64_t id;
    hp_promo_kind_t kind;
    int32_t value;              /* basis points for percent, cents for fixed */
    int32_t min_subtotal_cents; /* measured on the eligible lines */
    const char *category;       /* NULL: every line is eligible */
} hp_total_promotion_t;

/* Platform fee rules; hp_total_fees_default() gives the documented defaults. */
typedef struct st_hp_total_fees_t {
    int32_t delivery_base_cents;   /* charged on every delivery */
    int32_t delivery_per_km_cents; /* per started kilometre of great-circle distance */
    int32_t delivery_max_cents;    /* cap on the delivery fee */
    int32_t service_fee_bp;        /* share of the subtotal, basis points */
    int32_t service_fee_min_cents;
    int32_t service_fee_max_cents;
    int32_t small_order_threshold_cents; /* subtotal below this pays the small-order fee */
    int32_t small_order_fee_cents;
} hp_total_fees_t;

typedef struct st_hp_total_input_t {
    const hp_total_line_t *lines;
    size_t num_lines;
    const hp_total_item_t *items; /* every item the lines reference, any order */
    size_t num_items;
    const hp_total_modifier_t *modifiers; /* every modifier of those items, any order */
    size_t num_modifiers;
    const hp_total_promotion_t *promotions; /* the restaurant's active promotions */
    size_t num_promotions;
    int32_t tax_rate_bp; /* the restaurant city's rate */
    double restaurant_lat, restaurant_lon;
    double delivery_lat, delivery_lon;
    int32_t tip_cents;
    hp_total_fees_t fees;
} hp_total_input_t;

typedef struct st_hp_total_line_result_t {
    int32_t unit_price_cents; /* item price plus its modifiers' deltas, never below 0 */
    int64_t line_total_cents; /* unit price times quantity */
} hp_total_line_result_t;

typedef enum {
    HP_TOTAL_OK = 0,
    HP_TOTAL_UNKNOWN_ITEM = 1,     /* a line names an item missing from items[] */
    HP_TOTAL_UNKNOWN_MODIFIER = 2, /* a modifier id missing, or belonging to another item */
    HP_TOTAL_EMPTY = 3,            /* no lines */
    HP_TOTAL_TOO_MANY_LINES = 4,
} hp_total_status_t;

typedef struct st_hp_total_result_t {
    hp_total_status_t status;
    size_t bad_line; /* index of the offending line when status is not OK */
    hp_total_line_result_t lines[HP_TOTAL_MAX_LINES];
    int64_t subtotal_cents;
    int64_t discount_cents; /* the best single eligible promotion, never above the eligible subtotal */
    int64_t promotion_id;   /* 0 when none applies */
    int64_t tax_cents;      /* on (subtotal - discount), rounded half up */
    int64_t delivery_fee_cents;
    int64_t service_fee_cents;
    int64_t small_order_fee_cents;
    int64_t tip_cents;
    int64_t total_cents; /* subtotal - discount + tax + fees + tip */
    int64_t distance_m;  /* great-circle (haversine) distance, rounded to the metre */
} hp_total_result_t;

/** @return the platform's default fee rules (documented in docs/API.md). */
hp_total_fees_t hp_total_fees_default(void);

/**
 * Computes the breakdown of a cart. Never allocates; never fails on valid
 * pointers. Errors are reported in out->status with out->bad_line.
 * @return 0 when out->status is HP_TOTAL_OK, -1 otherwise
 */
int hp_total_compute(const hp_total_input_t *in, hp_total_mode_t mode, hp_total_result_t *out);

/** @return the haversine distance in metres between two WGS84 points */
double hp_total_distance_m(double lat1, double lon1, double lat2, double lon2);

#endif
