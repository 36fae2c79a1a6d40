/*
 * libFuzzer driver: the cart body of POST /cart/quote and POST /orders
 * (services/cart.c hp_cart_from_json), behind the same JSON gates as the
 * server (fuzz_body.h).
 *
 * Invariants checked beyond "no crash": an accepted cart has a restaurant id
 * and item ids in 1..2^53-1, 1 to 200 lines with quantities 1..99, at most 10
 * modifiers per line, a tip in 0..100000 and a delivery point on the globe;
 * a rejected one carries a 4xx error with a code and a message.
 */
#include "services/cart.h"
#include "tests/fuzz/fuzz_body.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = hp_fuzz_body(data, size);
    if (doc == NULL)
        return 0;
    /* hp_cart_t holds 200 lines of 10 modifiers each (about 19 KiB): static keeps it off the fuzzer's stack. */
    static hp_cart_t cart;
    hp_json_err_t err = {0};
    if (hp_cart_from_json(doc, &cart, &err) == 0) {
        if (cart.restaurant_id < 1 || cart.restaurant_id > 9007199254740991LL)
            abort();
        if (cart.num_lines < 1 || cart.num_lines > HP_TOTAL_MAX_LINES)
            abort();
        if (cart.tip_cents < 0 || cart.tip_cents > 100000)
            abort();
        if (cart.has_delivery && (!isfinite(cart.delivery_lat) || fabs(cart.delivery_lat) > 90 || fabs(cart.delivery_lon) > 180))
            abort();
        for (size_t i = 0; i != cart.num_lines; ++i) {
            const hp_total_line_t *l = &cart.lines[i];
            if (l->item_id < 1 || l->quantity < 1 || l->quantity > 99 || l->num_modifier_ids > HP_TOTAL_MAX_MODIFIERS_PER_LINE)
                abort();
            for (size_t j = 0; j != l->num_modifier_ids; ++j)
                if (l->modifier_ids[j] < 1)
                    abort();
        }
    } else {
        hp_fuzz_check_err(&err);
    }
    json_decref(doc);
    return 0;
}
