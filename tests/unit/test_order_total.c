/*
 * Unit tests of services/order_total: one hand-computed example per pricing
 * rule, the error cases, and a property test that runs thousands of random
 * carts through both modes and checks that they agree to the bit and that the
 * breakdown is internally consistent.
 *
 * Every expected amount below is worked out in the comment next to it, so a
 * failing test says which rule moved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/order_total.h"

/* Lisbon; both ends of the delivery at the same point give a distance of 0. */
static const double LIS_LAT = 38.7223, LIS_LON = -9.1393;

/* Metres per degree of latitude on the module's sphere (6371008.8 m x pi / 180). */
static const double M_PER_DEG = 111195.08023353292;

static const hp_total_item_t ITEMS[] = {
    {.id = 1, .price_cents = 1250, .category = "mains"},
    {.id = 2, .price_cents = 400, .category = "drinks"},
    {.id = 3, .price_cents = 300, .category = "desserts"},
};

static const hp_total_modifier_t MODS[] = {
    {.id = 9001, .item_id = 1, .price_delta_cents = 150},
    {.id = 9002, .item_id = 1, .price_delta_cents = -2000},
    {.id = 9003, .item_id = 2, .price_delta_cents = 50},
    {.id = 9004, .item_id = 1, .price_delta_cents = 25},
};

static hp_total_line_t line_of(int64_t item_id, int32_t quantity)
{
    return (hp_total_line_t){.item_id = item_id, .quantity = quantity};
}

static hp_total_line_t line_with(int64_t item_id, int32_t quantity, int64_t modifier_id)
{
    hp_total_line_t l = line_of(item_id, quantity);
    l.modifier_ids[l.num_modifier_ids++] = modifier_id;
    return l;
}

/* The base input: ITEMS and MODS, no promotion, no tax, no tip, distance 0, default fees. */
static hp_total_input_t input_of(const hp_total_line_t *lines, size_t n)
{
    return (hp_total_input_t){
        .lines = lines,
        .num_lines = n,
        .items = ITEMS,
        .num_items = sizeof(ITEMS) / sizeof(ITEMS[0]),
        .modifiers = MODS,
        .num_modifiers = sizeof(MODS) / sizeof(MODS[0]),
        .restaurant_lat = LIS_LAT,
        .restaurant_lon = LIS_LON,
        .delivery_lat = LIS_LAT,
        .delivery_lon = LIS_LON,
        .fees = hp_total_fees_default(),
    };
}

/* A cart of one line of item 50 (mains) at price, quantity times, on the base input; the input points into c. */
typedef struct {
    hp_total_item_t item;
    hp_total_line_t line;
    hp_total_input_t in;
} one_item_t;

static hp_total_input_t *one_item(one_item_t *c, int32_t price, int32_t quantity)
{
    c->item = (hp_total_item_t){.id = 50, .price_cents = price, .category = "mains"};
    c->line = line_of(50, quantity);
    c->in = input_of(&c->line, 1);
    c->in.items = &c->item;
    c->in.num_items = 1;
    return &c->in;
}

static void assert_same_result(const hp_total_result_t *a, const hp_total_result_t *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->bad_line, b->bad_line);
    for (size_t i = 0; i < HP_TOTAL_MAX_LINES; i++) {
        assert_int_equal(a->lines[i].unit_price_cents, b->lines[i].unit_price_cents);
        assert_int_equal(a->lines[i].line_total_cents, b->lines[i].line_total_cents);
    }
    assert_int_equal(a->subtotal_cents, b->subtotal_cents);
    assert_int_equal(a->discount_cents, b->discount_cents);
    assert_int_equal(a->promotion_id, b->promotion_id);
    assert_int_equal(a->tax_cents, b->tax_cents);
    assert_int_equal(a->delivery_fee_cents, b->delivery_fee_cents);
    assert_int_equal(a->service_fee_cents, b->service_fee_cents);
    assert_int_equal(a->small_order_fee_cents, b->small_order_fee_cents);
    assert_int_equal(a->tip_cents, b->tip_cents);
    assert_int_equal(a->total_cents, b->total_cents);
    assert_int_equal(a->distance_m, b->distance_m);
}

/* Computes in both modes, checks that they agree, and returns the ONCE result's return value. */
static int compute_both(const hp_total_input_t *in, hp_total_result_t *out)
{
    hp_total_result_t naive;
    int rc = hp_total_compute(in, HP_TOTAL_ONCE, out);
    int rc_naive = hp_total_compute(in, HP_TOTAL_NAIVE, &naive);
    assert_int_equal(rc, rc_naive);
    assert_int_equal(rc, out->status == HP_TOTAL_OK ? 0 : -1);
    assert_same_result(out, &naive);
    return rc;
}

static void assert_total_is_sum(const hp_total_result_t *r)
{
    assert_int_equal(r->total_cents, r->subtotal_cents - r->discount_cents + r->tax_cents + r->delivery_fee_cents +
                                         r->service_fee_cents + r->small_order_fee_cents + r->tip_cents);
}

static void test_fees_default(void **state)
{
    (void)state;
    hp_total_fees_t f = hp_total_fees_default();
    assert_int_equal(f.delivery_base_cents, 199);
    assert_int_equal(f.delivery_per_km_cents, 50);
    assert_int_equal(f.delivery_max_cents, 999);
    assert_int_equal(f.service_fee_bp, 500);
    assert_int_equal(f.service_fee_min_cents, 99);
    assert_int_equal(f.service_fee_max_cents, 499);
    assert_int_equal(f.small_order_threshold_cents, 1000);
    assert_int_equal(f.small_order_fee_cents, 150);
}

/* The shape of the API example: 2 x (1250 + 150), 10% off, 9% tax, a tip. */
static void test_full_breakdown(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_with(1, 2, 9001)};
    hp_total_promotion_t promo = {.id = 77, .kind = HP_PROMO_PERCENT, .value = 1000};
    hp_total_input_t in = input_of(lines, 1);
    in.promotions = &promo;
    in.num_promotions = 1;
    in.tax_rate_bp = 900;
    in.tip_cents = 200;

    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[0].unit_price_cents, 1400);
    assert_int_equal(r.lines[0].line_total_cents, 2800);
    assert_int_equal(r.subtotal_cents, 2800);
    assert_int_equal(r.discount_cents, 280); /* 2800 x 10% */
    assert_int_equal(r.promotion_id, 77);
    assert_int_equal(r.tax_cents, 227); /* 2520 x 9% = 226.8 */
    assert_int_equal(r.distance_m, 0);
    assert_int_equal(r.delivery_fee_cents, 199);  /* base only at 0 km */
    assert_int_equal(r.service_fee_cents, 140);   /* 2800 x 5% */
    assert_int_equal(r.small_order_fee_cents, 0); /* 2800 >= 1000 */
    assert_int_equal(r.tip_cents, 200);
    assert_int_equal(r.total_cents, 3286); /* 2800 - 280 + 227 + 199 + 140 + 0 + 200 */
    assert_total_is_sum(&r);
}

/* Tax is x * bp / 10000 rounded half up; each row is a one-item cart of the given price. */
static void test_tax_rounds_half_up(void **state)
{
    (void)state;
    static const struct {
        int32_t price, tax_bp;
        int64_t tax;
    } cases[] = {
        {1005, 1000, 101},                    /* 100.5 rounds up */
        {1004, 1000, 100},                    /* 100.4 rounds down */
        {1006, 1000, 101},                    /* 100.6 rounds up */
        {3, 5000, 2},                         /* 1.5 */
        {1, 4999, 0},                         /* 0.4999 */
        {1, 5000, 1},                         /* 0.5 */
        {15, 3333, 5},                        /* 4.9995 */
        {2000, 0, 0},      {2000, 2300, 460}, /* exact */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        one_item_t c;
        hp_total_input_t *in = one_item(&c, cases[i].price, 1);
        in->tax_rate_bp = cases[i].tax_bp;
        hp_total_result_t r;
        assert_int_equal(compute_both(in, &r), 0);
        assert_int_equal(r.tax_cents, cases[i].tax);
    }
}

/* Percent discounts round half up too, and tax applies to what is left after the discount. */
static void test_percent_discount_rounds_half_up(void **state)
{
    (void)state;
    one_item_t c;
    hp_total_input_t *in = one_item(&c, 1010, 1);
    hp_total_promotion_t promo = {.id = 4, .kind = HP_PROMO_PERCENT, .value = 1500};
    in->promotions = &promo;
    in->num_promotions = 1;
    in->tax_rate_bp = 1000;

    hp_total_result_t r;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.discount_cents, 152); /* 1010 x 15% = 151.5 */
    assert_int_equal(r.tax_cents, 86);       /* (1010 - 152) x 10% = 85.8 */
}

/* Service fee: 5% of the subtotal (price x quantity), clamped to [99, 499]. */
static void test_service_fee(void **state)
{
    (void)state;
    static const struct {
        int32_t price, quantity;
        int64_t fee;
    } cases[] = {
        {1000, 1, 99},   /* 50 -> min */
        {1980, 1, 99},   /* 99 exactly */
        {1990, 1, 100},  /* 99.5 rounds up */
        {1000, 5, 250},  /* inside the range */
        {9980, 1, 499},  /* 499 exactly */
        {9990, 1, 499},  /* 499.5 -> 500 -> max */
        {1000, 20, 499}, /* 1000 -> max */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        one_item_t c;
        hp_total_input_t *in = one_item(&c, cases[i].price, cases[i].quantity);
        hp_total_result_t r;
        assert_int_equal(compute_both(in, &r), 0);
        assert_int_equal(r.service_fee_cents, cases[i].fee);
    }

    /* Without the clamp, the half-up rounding of the fee itself shows: 10 x 5% = 0.5 -> 1, 9 x 5% = 0.45 -> 0. */
    one_item_t c;
    hp_total_input_t *in = one_item(&c, 10, 1);
    in->fees.service_fee_min_cents = 0;
    hp_total_result_t r;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.service_fee_cents, 1);
    c.item.price_cents = 9;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.service_fee_cents, 0);
}

static void test_small_order_fee(void **state)
{
    (void)state;
    one_item_t c;
    hp_total_input_t *in = one_item(&c, 999, 1);

    hp_total_result_t r;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.small_order_fee_cents, 150); /* 999 < 1000 */
    assert_int_equal(r.total_cents, 999 + 199 + 99 + 150);

    c.item.price_cents = 1000;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.small_order_fee_cents, 0); /* the threshold itself pays no fee */
    assert_int_equal(r.total_cents, 1000 + 199 + 99);
}

/*
 * Delivery fee: 199 + 50 per started kilometre of the distance rounded to the
 * metre, capped at 999. The delivery point moves north along a meridian, where
 * a distance of d metres is exactly d / M_PER_DEG degrees of latitude.
 */
static void test_delivery_fee(void **state)
{
    (void)state;
    static const struct {
        double metres;
        int64_t distance_m, fee;
    } cases[] = {
        {0, 0, 199},
        {400, 400, 249},         /* 1 started km */
        {999.4, 999, 249},       /* rounds to 999 m */
        {1000, 1000, 249},       /* exactly 1 km */
        {1000.6, 1001, 299},     /* rounds to 1001 m: 2 started km */
        {1840, 1840, 299},       /* 2 km */
        {11119.7, 11120, 799},   /* 12 km: 199 + 600 */
        {15900, 15900, 999},     /* 16 km: 199 + 800, exactly the cap */
        {16001, 16001, 999},     /* 17 km: 1049 capped */
        {111195.08, 111195, 999} /* one degree */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hp_total_line_t line = line_of(1, 1);
        hp_total_input_t in = input_of(&line, 1);
        in.restaurant_lat = 0;
        in.restaurant_lon = 0;
        in.delivery_lat = cases[i].metres / M_PER_DEG;
        in.delivery_lon = 0;
        hp_total_result_t r;
        assert_int_equal(compute_both(&in, &r), 0);
        assert_int_equal(r.distance_m, cases[i].distance_m);
        assert_int_equal(r.delivery_fee_cents, cases[i].fee);
    }
}

static void assert_within(double got, double want, double rel)
{
    double diff = got > want ? got - want : want - got;
    if (diff > want * rel)
        fail_msg("%.1f is not within %.2f%% of %.1f", got, rel * 100, want);
}

/* Published great-circle distances: London-Paris about 343.5 km, New York-Los Angeles about 3936 km. */
static void test_distance_city_pairs(void **state)
{
    (void)state;
    assert_within(hp_total_distance_m(51.5074, -0.1278, 48.8566, 2.3522), 343500, 0.005);
    assert_within(hp_total_distance_m(40.7128, -74.0060, 34.0522, -118.2437), 3936000, 0.005);
    /* Symmetric, zero at a point, and half the circumference between antipodes. */
    assert_true(hp_total_distance_m(48.8566, 2.3522, 51.5074, -0.1278) == hp_total_distance_m(51.5074, -0.1278, 48.8566, 2.3522));
    assert_true(hp_total_distance_m(LIS_LAT, LIS_LON, LIS_LAT, LIS_LON) == 0);
    assert_within(hp_total_distance_m(10, 20, -10, -160), 3.14159265358979 * 6371008.8, 1e-6);

    hp_total_line_t line = line_of(1, 1);
    hp_total_input_t in = input_of(&line, 1);
    in.restaurant_lat = 51.5074;
    in.restaurant_lon = -0.1278;
    in.delivery_lat = 48.8566;
    in.delivery_lon = 2.3522;
    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_within((double)r.distance_m, 343500, 0.005);
    assert_int_equal(r.delivery_fee_cents, 999);
}

/* The largest discount wins; equal discounts go to the lowest id, whatever the order of promotions[]. */
static void test_best_promotion_and_tie(void **state)
{
    (void)state;
    one_item_t c;
    hp_total_input_t *in = one_item(&c, 1000, 3); /* subtotal 3000 */
    hp_total_promotion_t promos[] = {
        {.id = 5, .kind = HP_PROMO_FIXED, .value = 300},                              /* 300 */
        {.id = 3, .kind = HP_PROMO_PERCENT, .value = 1000},                           /* 300: ties with 5, lower id */
        {.id = 9, .kind = HP_PROMO_FIXED, .value = 500, .min_subtotal_cents = 5000},  /* not eligible */
        {.id = 4, .kind = HP_PROMO_PERCENT, .value = 500},                            /* 150 */
        {.id = 8, .kind = HP_PROMO_FIXED, .value = 400, .min_subtotal_cents = 3001}}; /* not eligible by one cent */
    in->promotions = promos;
    in->num_promotions = sizeof(promos) / sizeof(promos[0]);

    hp_total_result_t r;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.promotion_id, 3);
    assert_int_equal(r.discount_cents, 300);

    /* Reversed order: same choice. */
    hp_total_promotion_t reversed[sizeof(promos) / sizeof(promos[0])];
    for (size_t i = 0; i < in->num_promotions; i++)
        reversed[i] = promos[in->num_promotions - 1 - i];
    in->promotions = reversed;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.promotion_id, 3);

    /* The minimum is inclusive: at exactly 3000 the fixed 400 becomes eligible and wins. */
    promos[4].min_subtotal_cents = 3000;
    in->promotions = promos;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.promotion_id, 8);
    assert_int_equal(r.discount_cents, 400);

    /* A percent above 100% and a fixed amount above the subtotal are capped at the subtotal. */
    hp_total_promotion_t big[] = {{.id = 20, .kind = HP_PROMO_PERCENT, .value = 15000},
                                  {.id = 21, .kind = HP_PROMO_FIXED, .value = 100000}};
    in->promotions = big;
    in->num_promotions = 2;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.discount_cents, 3000);
    assert_int_equal(r.promotion_id, 20);
    assert_int_equal(r.tax_cents, 0);

    /* No promotion applies: id 0. A promotion worth nothing is not applied either. */
    hp_total_promotion_t nothing = {.id = 30, .kind = HP_PROMO_PERCENT, .value = 0};
    in->promotions = &nothing;
    in->num_promotions = 1;
    assert_int_equal(compute_both(in, &r), 0);
    assert_int_equal(r.promotion_id, 0);
    assert_int_equal(r.discount_cents, 0);
}

/* A category promotion measures its minimum and its discount on its category's lines only. */
static void test_category_promotion(void **state)
{
    (void)state;
    hp_total_promotion_t drinks = {
        .id = 11, .kind = HP_PROMO_PERCENT, .value = 5000, .min_subtotal_cents = 500, .category = "drinks"};
    hp_total_result_t r;

    /* Drinks 400 < 500, although the cart is 1650. */
    hp_total_line_t lines1[] = {line_of(1, 1), line_of(2, 1)};
    hp_total_input_t in = input_of(lines1, 2);
    in.promotions = &drinks;
    in.num_promotions = 1;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.subtotal_cents, 1650);
    assert_int_equal(r.promotion_id, 0);
    assert_int_equal(r.discount_cents, 0);

    /* Drinks 2 x 400 = 800 >= 500: half of 800 off, the mains untouched. */
    hp_total_line_t lines2[] = {line_of(1, 1), line_of(2, 2)};
    in.lines = lines2;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.subtotal_cents, 2050);
    assert_int_equal(r.promotion_id, 11);
    assert_int_equal(r.discount_cents, 400);

    /* A fixed 1000 off desserts is capped at the 300 of desserts in the cart. */
    hp_total_promotion_t desserts = {.id = 12, .kind = HP_PROMO_FIXED, .value = 1000, .category = "desserts"};
    hp_total_line_t lines3[] = {line_of(1, 2), line_of(3, 1)};
    in.lines = lines3;
    in.promotions = &desserts;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.subtotal_cents, 2800);
    assert_int_equal(r.discount_cents, 300);
    assert_int_equal(r.promotion_id, 12);

    /* No line of the category: not applied. */
    in.lines = lines1;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.promotion_id, 0);

    /* The category beats a smaller cart-wide promotion when it is worth more. */
    hp_total_promotion_t both[] = {{.id = 1, .kind = HP_PROMO_PERCENT, .value = 1000}, desserts};
    in.lines = lines3;
    in.promotions = both;
    in.num_promotions = 2;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.promotion_id, 12); /* 300 > 280 */
}

/* Modifiers add to the unit price; a negative total is clamped to 0, never a credit. */
static void test_modifiers_and_negative_clamp(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_with(1, 3, 9002), line_with(1, 1, 9001), line_of(2, 1)};
    lines[1].modifier_ids[lines[1].num_modifier_ids++] = 9004; /* 1250 + 150 + 25 */
    hp_total_input_t in = input_of(lines, 3);

    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[0].unit_price_cents, 0); /* 1250 - 2000 */
    assert_int_equal(r.lines[0].line_total_cents, 0);
    assert_int_equal(r.lines[1].unit_price_cents, 1425);
    assert_int_equal(r.lines[2].unit_price_cents, 400);
    assert_int_equal(r.subtotal_cents, 1825);

    /* The clamp applies to the sum of deltas, not to each delta: 1250 + 150 - 2000 + 25 is still negative. */
    lines[1].modifier_ids[lines[1].num_modifier_ids++] = 9002;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[1].unit_price_cents, 0);
}

/* Two lines of the same item stay two lines. */
static void test_duplicate_item_lines(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_of(1, 1), line_with(1, 2, 9001)};
    hp_total_input_t in = input_of(lines, 2);
    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[0].line_total_cents, 1250);
    assert_int_equal(r.lines[1].line_total_cents, 2800);
    assert_int_equal(r.subtotal_cents, 4050);
}

/* A duplicated id in items[] or modifiers[] resolves to its first record, in both modes. */
static void test_duplicate_ids_first_record_wins(void **state)
{
    (void)state;
    hp_total_item_t items[] = {{.id = 7, .price_cents = 100, .category = "a"}, {.id = 7, .price_cents = 900, .category = "b"}};
    hp_total_modifier_t mods[] = {{.id = 70, .item_id = 7, .price_delta_cents = 5},
                                  {.id = 70, .item_id = 8, .price_delta_cents = 50}};
    hp_total_line_t line = line_with(7, 1, 70);
    hp_total_input_t in = input_of(&line, 1);
    in.items = items;
    in.num_items = 2;
    in.modifiers = mods;
    in.num_modifiers = 2;
    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[0].unit_price_cents, 105);

    /* Swapped: the first modifier 70 now belongs to item 8, so the line's modifier is foreign. */
    hp_total_modifier_t swapped[] = {mods[1], mods[0]};
    in.modifiers = swapped;
    assert_int_equal(compute_both(&in, &r), -1);
    assert_int_equal(r.status, HP_TOTAL_UNKNOWN_MODIFIER);
}

static void assert_error(const hp_total_input_t *in, hp_total_status_t status, size_t bad_line)
{
    hp_total_result_t r;
    memset(&r, 0x5a, sizeof(r));
    assert_int_equal(compute_both(in, &r), -1);
    assert_int_equal(r.status, status);
    assert_int_equal(r.bad_line, bad_line);
    assert_int_equal(r.total_cents, 0);
    assert_int_equal(r.lines[0].line_total_cents, 0);
}

static void test_unknown_item(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_of(1, 1), line_of(777, 1), line_of(888, 1)};
    hp_total_input_t in = input_of(lines, 3);
    assert_error(&in, HP_TOTAL_UNKNOWN_ITEM, 1);

    /* No items at all. */
    in.items = NULL;
    in.num_items = 0;
    assert_error(&in, HP_TOTAL_UNKNOWN_ITEM, 0);
}

static void test_unknown_modifier(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_with(1, 1, 9001), line_with(1, 1, 424242)};
    hp_total_input_t in = input_of(lines, 2);
    assert_error(&in, HP_TOTAL_UNKNOWN_MODIFIER, 1);
}

static void test_foreign_modifier(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_with(1, 1, 9003)}; /* 9003 belongs to item 2 */
    hp_total_input_t in = input_of(lines, 1);
    assert_error(&in, HP_TOTAL_UNKNOWN_MODIFIER, 0);
}

/* More modifier ids than the line's array holds cannot be read, so they are refused. */
static void test_too_many_modifiers(void **state)
{
    (void)state;
    hp_total_line_t line = line_of(1, 1);
    for (size_t i = 0; i < HP_TOTAL_MAX_MODIFIERS_PER_LINE; i++)
        line.modifier_ids[line.num_modifier_ids++] = 9004;
    hp_total_input_t in = input_of(&line, 1);
    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.lines[0].unit_price_cents, 1250 + 10 * 25);

    line.num_modifier_ids = HP_TOTAL_MAX_MODIFIERS_PER_LINE + 1;
    assert_error(&in, HP_TOTAL_UNKNOWN_MODIFIER, 0);
}

/* The first bad line is reported, and an unknown item is reported before its modifiers. */
static void test_first_bad_line_wins(void **state)
{
    (void)state;
    hp_total_line_t lines[] = {line_of(1, 1), line_of(2, 1), line_with(2, 1, 9001), line_of(999, 1)};
    hp_total_input_t in = input_of(lines, 4);
    assert_error(&in, HP_TOTAL_UNKNOWN_MODIFIER, 2);

    hp_total_line_t lines2[] = {line_of(1, 1), line_with(999, 1, 424242), line_with(1, 1, 424242)};
    in.lines = lines2;
    in.num_lines = 3;
    assert_error(&in, HP_TOTAL_UNKNOWN_ITEM, 1);
}

static void test_empty_cart(void **state)
{
    (void)state;
    hp_total_input_t in = input_of(NULL, 0);
    assert_error(&in, HP_TOTAL_EMPTY, 0);
}

static void test_too_many_lines(void **state)
{
    (void)state;
    hp_total_line_t lines[HP_TOTAL_MAX_LINES + 1];
    for (size_t i = 0; i < HP_TOTAL_MAX_LINES + 1; i++)
        lines[i] = line_of(1, 1);
    hp_total_input_t in = input_of(lines, HP_TOTAL_MAX_LINES);
    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_int_equal(r.subtotal_cents, HP_TOTAL_MAX_LINES * 1250);
    assert_int_equal(r.lines[HP_TOTAL_MAX_LINES - 1].line_total_cents, 1250);

    in.num_lines = HP_TOTAL_MAX_LINES + 1;
    assert_error(&in, HP_TOTAL_TOO_MANY_LINES, HP_TOTAL_MAX_LINES);
}

/*
 * The largest values the types allow must not overflow (UBSan would report it):
 * 50 lines of 99 units at a unit price clamped to INT32_MAX, with every rate at
 * INT32_MAX basis points.
 */
static void test_extreme_values(void **state)
{
    (void)state;
    hp_total_item_t item = {.id = 1, .price_cents = INT32_MAX, .category = "x"};
    hp_total_modifier_t mod = {.id = 2, .item_id = 1, .price_delta_cents = INT32_MAX};
    hp_total_line_t lines[HP_TOTAL_MAX_LINES];
    for (size_t i = 0; i < HP_TOTAL_MAX_LINES; i++) {
        lines[i] = line_of(1, 99);
        for (size_t m = 0; m < HP_TOTAL_MAX_MODIFIERS_PER_LINE; m++)
            lines[i].modifier_ids[lines[i].num_modifier_ids++] = 2;
    }
    hp_total_promotion_t promo = {.id = 1, .kind = HP_PROMO_PERCENT, .value = INT32_MAX, .min_subtotal_cents = INT32_MIN};
    hp_total_input_t in = input_of(lines, HP_TOTAL_MAX_LINES);
    in.items = &item;
    in.num_items = 1;
    in.modifiers = &mod;
    in.num_modifiers = 1;
    in.promotions = &promo;
    in.num_promotions = 1;
    in.tax_rate_bp = INT32_MAX;
    in.tip_cents = INT32_MAX;
    in.fees = (hp_total_fees_t){INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    in.delivery_lat = -LIS_LAT;
    in.delivery_lon = 180 + LIS_LON;

    hp_total_result_t r;
    assert_int_equal(compute_both(&in, &r), 0);
    int64_t subtotal = (int64_t)HP_TOTAL_MAX_LINES * 99 * INT32_MAX;
    assert_int_equal(r.lines[0].unit_price_cents, INT32_MAX);
    assert_int_equal(r.subtotal_cents, subtotal);
    assert_int_equal(r.discount_cents, subtotal);
    assert_int_equal(r.tax_cents, 0);
    assert_int_equal(r.delivery_fee_cents, INT32_MAX);
    assert_int_equal(r.service_fee_cents, INT32_MAX);
    assert_total_is_sum(&r);

    /* Without the promotion the tax is the largest term: subtotal x 214748.3647. */
    in.num_promotions = 0;
    in.promotions = NULL;
    assert_int_equal(compute_both(&in, &r), 0);
    assert_true(r.tax_cents > subtotal);
    assert_total_is_sum(&r);
}

/* --- property test ------------------------------------------------------- */

/* splitmix64: tiny, fast and fully determined by its seed, so a failure is reproducible. */
typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform enough in [lo, hi] for test data. */
static int64_t rng_range(rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static int rng_chance(rng_t *r, int percent)
{
    return rng_range(r, 0, 99) < percent;
}

static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

enum { W_ITEMS = 40, W_MODS = 200, W_PROMOS = 6 };

static const char *const CATEGORIES[] = {"mains", "drinks", "desserts", "sides", NULL};

/* A random restaurant and cart. unique_ids says whether every id is unique, which the permutation check needs. */
typedef struct {
    hp_total_item_t items[W_ITEMS];
    hp_total_modifier_t mods[W_MODS];
    hp_total_promotion_t promos[W_PROMOS];
    hp_total_line_t lines[HP_TOTAL_MAX_LINES + 1];
    hp_total_input_t in;
    int unique_ids;
} world_t;

/* A line of a random item with random modifiers of that item; in 2% of lines, an unknown item or modifier. */
static hp_total_line_t random_line(rng_t *r, const world_t *w, int allow_errors)
{
    hp_total_line_t l = {0};
    const hp_total_item_t *item = &w->items[rng_range(r, 0, (int64_t)w->in.num_items - 1)];
    l.item_id = allow_errors && rng_chance(r, 2) ? 999999 : item->id;
    l.quantity = (int32_t)(rng_chance(r, 80) ? rng_range(r, 1, 5) : rng_range(r, 1, 99));
    size_t want = (size_t)rng_range(r, 0, HP_TOTAL_MAX_MODIFIERS_PER_LINE);
    for (int tries = 0; tries < 40 && l.num_modifier_ids < want && w->in.num_modifiers > 0; tries++) {
        const hp_total_modifier_t *m = &w->mods[rng_range(r, 0, (int64_t)w->in.num_modifiers - 1)];
        if (m->item_id == item->id)
            l.modifier_ids[l.num_modifier_ids++] = m->id;
    }
    if (allow_errors && rng_chance(r, 2) && l.num_modifier_ids < HP_TOTAL_MAX_MODIFIERS_PER_LINE) {
        /* Unknown, or (most likely) another item's modifier. */
        l.modifier_ids[l.num_modifier_ids++] = rng_chance(r, 50) ? 888888 : w->mods[rng_range(r, 0, W_MODS - 1)].id;
    }
    return l;
}

static void random_world(rng_t *r, world_t *w, int allow_errors)
{
    memset(w, 0, sizeof(*w));
    w->unique_ids = !allow_errors || rng_chance(r, 90);

    size_t ni = (size_t)rng_range(r, 1, W_ITEMS);
    for (size_t i = 0; i < ni; i++) {
        w->items[i].id = 100 + (int64_t)i * 7;
        w->items[i].price_cents = (int32_t)rng_range(r, 0, 3000);
        w->items[i].category = CATEGORIES[rng_range(r, 0, 4)];
    }
    if (!w->unique_ids && ni > 1)
        w->items[ni - 1].id = w->items[0].id;

    size_t nm = (size_t)rng_range(r, 0, W_MODS);
    for (size_t i = 0; i < nm; i++) {
        w->mods[i].id = 5000 + (int64_t)i;
        w->mods[i].item_id = rng_chance(r, 97) ? w->items[rng_range(r, 0, (int64_t)ni - 1)].id : 424242;
        w->mods[i].price_delta_cents = (int32_t)rng_range(r, -800, 600);
    }
    if (!w->unique_ids && nm > 1)
        w->mods[nm - 1].id = w->mods[0].id;

    size_t np = (size_t)rng_range(r, 0, W_PROMOS);
    for (size_t i = 0; i < np; i++) {
        hp_total_promotion_t *p = &w->promos[i];
        p->id = w->unique_ids ? (int64_t)i + 1 : rng_range(r, 1, 4);
        p->kind = rng_chance(r, 50) ? HP_PROMO_PERCENT : HP_PROMO_FIXED;
        p->value = (int32_t)(p->kind == HP_PROMO_PERCENT ? rng_range(r, 0, 5000) : rng_range(r, 0, 2000));
        p->min_subtotal_cents = (int32_t)rng_range(r, 0, 5000);
        p->category = CATEGORIES[rng_range(r, 0, 4)];
    }

    w->in = (hp_total_input_t){
        .lines = w->lines,
        .items = w->items,
        .num_items = ni,
        .modifiers = w->mods,
        .num_modifiers = nm,
        .promotions = w->promos,
        .num_promotions = np,
        .tax_rate_bp = (int32_t)rng_range(r, 0, 2500),
        .restaurant_lat = LIS_LAT + (rng_unit(r) - 0.5) * 0.2,
        .restaurant_lon = LIS_LON + (rng_unit(r) - 0.5) * 0.2,
        .delivery_lat = LIS_LAT + (rng_unit(r) - 0.5) * 0.2,
        .delivery_lon = LIS_LON + (rng_unit(r) - 0.5) * 0.2,
        .tip_cents = (int32_t)rng_range(r, 0, 2000),
        .fees = hp_total_fees_default(),
    };
    if (rng_chance(r, 30)) {
        hp_total_fees_t *f = &w->in.fees;
        f->delivery_base_cents = (int32_t)rng_range(r, 0, 500);
        f->delivery_per_km_cents = (int32_t)rng_range(r, 0, 300);
        f->delivery_max_cents = (int32_t)rng_range(r, 0, 3000);
        f->service_fee_bp = (int32_t)rng_range(r, 0, 2000);
        f->service_fee_min_cents = (int32_t)rng_range(r, 0, 300);
        f->service_fee_max_cents = (int32_t)rng_range(r, 0, 1000); /* sometimes below the minimum */
        f->small_order_threshold_cents = (int32_t)rng_range(r, 0, 3000);
        f->small_order_fee_cents = (int32_t)rng_range(r, 0, 300);
    }

    /* Mostly everyday carts, and some catering orders up to the limit (each line may be bad, so long carts mostly fail). */
    size_t nl = (size_t)(rng_chance(r, 50)   ? rng_range(r, 1, 8)
                         : rng_chance(r, 80) ? rng_range(r, 1, 50)
                                             : rng_range(r, 1, HP_TOTAL_MAX_LINES));
    if (allow_errors && rng_chance(r, 1))
        nl = rng_chance(r, 50) ? 0 : HP_TOTAL_MAX_LINES + 1;
    for (size_t i = 0; i < nl; i++)
        w->lines[i] = random_line(r, w, allow_errors);
    w->in.num_lines = nl;
}

/* What must hold for every successful breakdown. */
static void assert_consistent(const hp_total_input_t *in, const hp_total_result_t *r)
{
    int64_t sum = 0;
    for (size_t i = 0; i < HP_TOTAL_MAX_LINES; i++) {
        const hp_total_line_result_t *l = &r->lines[i];
        assert_true(l->unit_price_cents >= 0);
        if (i < in->num_lines) {
            assert_int_equal(l->line_total_cents, (int64_t)l->unit_price_cents * in->lines[i].quantity);
            sum += l->line_total_cents;
        } else {
            assert_int_equal(l->line_total_cents, 0);
        }
    }
    assert_int_equal(r->subtotal_cents, sum);
    assert_true(r->discount_cents >= 0 && r->discount_cents <= r->subtotal_cents);
    assert_true((r->promotion_id == 0) == (r->discount_cents == 0));
    assert_true(r->tax_cents >= 0);
    assert_true(r->delivery_fee_cents >= 0);
    assert_true(r->service_fee_cents >= 0);
    assert_true(r->small_order_fee_cents >= 0);
    assert_true(r->distance_m >= 0);
    assert_int_equal(r->tip_cents, in->tip_cents);
    assert_total_is_sum(r);
}

static void shuffle(rng_t *r, void *base, size_t n, size_t size)
{
    unsigned char tmp[64];
    assert_true(size <= sizeof(tmp));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_range(r, 0, (int64_t)i - 1);
        unsigned char *a = (unsigned char *)base + (i - 1) * size, *b = (unsigned char *)base + j * size;
        memcpy(tmp, a, size);
        memcpy(a, b, size);
        memcpy(b, tmp, size);
    }
}

/*
 * The release build checks ten thousand random carts in about a second. The
 * sanitizer build (-O0, every access checked) takes forty times as long per
 * cart, and what it adds is the memory checking, which a thousand carts give
 * every path of: the same generator, so the same kinds of carts, fewer of them.
 */
#if defined(__SANITIZE_ADDRESS__)
enum { PROPERTY_CARTS = 1000 };
#else
enum { PROPERTY_CARTS = 10000 };
#endif

/* ONCE and NAIVE agree field by field on random carts, errors included, and every breakdown is consistent. */
static void test_property_modes_agree(void **state)
{
    (void)state;
    rng_t r = {.s = 0x686f74706c617465u}; /* "hotplate" */
    static world_t w;
    size_t ok = 0, errors = 0, promoted = 0;

    for (int iter = 0; iter < PROPERTY_CARTS; iter++) {
        random_world(&r, &w, 1);
        hp_total_result_t res;
        if (compute_both(&w.in, &res) == 0) {
            ok++;
            promoted += res.promotion_id != 0;
            assert_consistent(&w.in, &res);
        } else {
            errors++;
        }
    }
    /* The generator must exercise both outcomes, or the agreement above proves little. */
    assert_true(ok > PROPERTY_CARTS / 2);
    assert_true(errors > PROPERTY_CARTS / 50);
    assert_true(promoted > PROPERTY_CARTS / 10);
}

/* Invariants that relate two carts. */
static void test_property_invariants(void **state)
{
    (void)state;
    rng_t r = {.s = 42};
    static world_t w;

    for (int iter = 0; iter < PROPERTY_CARTS / 2; iter++) {
        random_world(&r, &w, 0);
        hp_total_result_t base, other;
        assert_int_equal(compute_both(&w.in, &base), 0);

        /* Adding a line never lowers the subtotal, and leaves the existing lines alone. */
        if (w.in.num_lines < HP_TOTAL_MAX_LINES) {
            w.lines[w.in.num_lines++] = random_line(&r, &w, 0);
            assert_int_equal(compute_both(&w.in, &other), 0);
            assert_true(other.subtotal_cents >= base.subtotal_cents);
            for (size_t i = 0; i + 1 < w.in.num_lines; i++)
                assert_int_equal(other.lines[i].line_total_cents, base.lines[i].line_total_cents);
            w.in.num_lines--;
        }

        /* A promotion never raises the total: the tax is monotone in what is left after the discount. */
        size_t np = w.in.num_promotions;
        w.in.num_promotions = 0;
        assert_int_equal(compute_both(&w.in, &other), 0);
        assert_true(other.total_cents >= base.total_cents);
        assert_int_equal(other.total_cents - base.total_cents, base.discount_cents + (other.tax_cents - base.tax_cents));
        w.in.num_promotions = np;

        /* With unique ids, the order of items[], modifiers[] and promotions[] does not matter ("any order"). */
        shuffle(&r, w.items, w.in.num_items, sizeof(w.items[0]));
        shuffle(&r, w.mods, w.in.num_modifiers, sizeof(w.mods[0]));
        shuffle(&r, w.promos, w.in.num_promotions, sizeof(w.promos[0]));
        assert_int_equal(compute_both(&w.in, &other), 0);
        assert_same_result(&base, &other);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fees_default),
        cmocka_unit_test(test_full_breakdown),
        cmocka_unit_test(test_tax_rounds_half_up),
        cmocka_unit_test(test_percent_discount_rounds_half_up),
        cmocka_unit_test(test_service_fee),
        cmocka_unit_test(test_small_order_fee),
        cmocka_unit_test(test_delivery_fee),
        cmocka_unit_test(test_distance_city_pairs),
        cmocka_unit_test(test_best_promotion_and_tie),
        cmocka_unit_test(test_category_promotion),
        cmocka_unit_test(test_modifiers_and_negative_clamp),
        cmocka_unit_test(test_duplicate_item_lines),
        cmocka_unit_test(test_duplicate_ids_first_record_wins),
        cmocka_unit_test(test_unknown_item),
        cmocka_unit_test(test_unknown_modifier),
        cmocka_unit_test(test_foreign_modifier),
        cmocka_unit_test(test_too_many_modifiers),
        cmocka_unit_test(test_first_bad_line_wins),
        cmocka_unit_test(test_empty_cart),
        cmocka_unit_test(test_too_many_lines),
        cmocka_unit_test(test_extreme_values),
        cmocka_unit_test(test_property_modes_agree),
        cmocka_unit_test(test_property_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
