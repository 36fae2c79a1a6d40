/*
 * cart: parsing a cart body and pricing it against the database.
 *
 * POST /cart/quote and POST /orders share this, so a quote and the order placed
 * from it agree to the cent. Parsing is pure (hp_cart_from_json); pricing reads
 * the restaurant, items, modifiers and promotions in one pipeline on the
 * thread's read connection, validates the lines and runs the order_total module.
 */
#ifndef HP_CART_H
#define HP_CART_H

#include <jansson.h>

#include "runtime/http.h"
#include "base/json.h"
#include "services/order_total.h"

typedef struct st_hp_cart_t {
    int64_t restaurant_id;
    size_t num_lines;
    int64_t tip_cents;
    int has_delivery;
    double delivery_lat, delivery_lon;
    /*
     * Last, so that hp_cart_from_json zeroes only the fields above: it writes
     * lines[0..num_lines) whole, and nothing reads the lines past num_lines.
     * Zeroing all 200 (19 kB) cost more than parsing a one-line cart.
     */
    hp_total_line_t lines[HP_TOTAL_MAX_LINES];
} hp_cart_t;

/* A cart with everything loaded and priced. Lives in the request pool. */
typedef struct st_hp_cart_priced_t {
    hp_cart_t cart;
    const char *restaurant_name;
    int restaurant_open;
    size_t num_items;
    hp_total_item_t items[HP_TOTAL_MAX_LINES];
    const char *item_names[HP_TOTAL_MAX_LINES];
    int32_t item_stock[HP_TOTAL_MAX_LINES]; /* -1: stock not tracked */
    hp_total_modifier_t *modifiers;
    size_t num_modifiers;
    hp_total_promotion_t *promotions;
    size_t num_promotions;
    hp_total_input_t input;
    hp_total_result_t result;
} hp_cart_priced_t;

/**
 * Validates a cart body (pure; no request needed).
 * @return 0, or -1 with err filled (400 and 422 cases)
 */
int hp_cart_from_json(const json_t *doc, hp_cart_t *cart, hp_json_err_t *err);

/** Called once the cart is priced; every failure was already answered. */
typedef void (*hp_cart_cb)(hp_req_t *r, void *ud, hp_cart_priced_t *p);

/** Loads and prices p->cart (which the caller filled), then calls cb. */
void hp_cart_price(hp_req_t *r, hp_cart_priced_t *p, hp_cart_cb cb, void *ud);

/** @return the breakdown document of a priced cart */
json_t *hp_cart_breakdown_json(const hp_cart_priced_t *p);

/** The priced lines as a JSON array, each in the layout of an order's items (hp_order_item_json): the quote's lines and the
 * checkout's 201 items. */
json_t *hp_cart_lines_json(const hp_cart_priced_t *p);

/** @return the name of an item of a priced cart */
const char *hp_cart_item_name(const hp_cart_priced_t *p, int64_t item_id);

#endif
