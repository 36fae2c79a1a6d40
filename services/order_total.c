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
 * hp_total__compute_once (order_total_once.c) resolves every id through small hash tables on
 * the stack and evaluates each value once, while hp_total__compute_naive
 * (order_total_naive.c, the lab variant) re-prices the cart from scratch after
 * every line with linear searches. The rules are order_total_rules.h. Integer sums do
 * not depend on their order and the distance is computed by one function from
 * the same inputs, so both modes are bit-identical by construction; the unit
 * test checks this on thousands of random carts.
 */
#include "services/order_total.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The modes (order_total_once.c and order_total_naive.c); see order_total_rules.h for why they are never inlined. */
int hp_total__compute_once(const hp_total_input_t *in, hp_total_result_t *out);
int hp_total__compute_naive(const hp_total_input_t *in, hp_total_result_t *out);

static int hp__fail(hp_total_result_t *out, hp_total_status_t status, size_t bad_line)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    out->bad_line = bad_line;
    return -1;
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
        return hp__fail(out, HP_TOTAL_EMPTY, 0);
    if (in->num_lines > HP_TOTAL_MAX_LINES)
        return hp__fail(out, HP_TOTAL_TOO_MANY_LINES, HP_TOTAL_MAX_LINES);
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
    return 2 * HP_TOTAL_EARTH_RADIUS_M * asin(sqrt(a));
}
