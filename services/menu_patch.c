/*
 * menu_patch: validation of a menu item PATCH body (see menu_patch.h).
 */
#include "services/menu_patch.h"

#include <stdio.h>
#include <string.h>

int hp_menu_patch_from_json(const json_t *doc, hp_menu_patch_t *out, hp_json_err_t *err)
{
    static const char *const allowed[] = {"price_cents", "available", "stock"};
    json_t *available = json_object_get(doc, "available"), *stock = json_object_get(doc, "stock");
    int ret;

    memset(out, 0, sizeof(*out));
    if (hp_json_only_fields(doc, allowed, 3, err) != 0)
        return -1;
    if ((ret = hp_json_int(doc, "price_cents", 0, 1000000, 0, &out->price_cents, err)) < 0)
        return -1;
    out->has_price = ret;
    if (available != NULL) {
        if (!json_is_boolean(available)) {
            snprintf(err->message, sizeof(err->message), "field available must be a boolean");
            err->code = HP_E_invalid_field;
            return -1;
        }
        out->has_available = 1;
        out->available = json_is_true(available);
    }
    if (stock != NULL) {
        out->stock_given = 1;
        if (!json_is_null(stock) && (ret = hp_json_int(doc, "stock", 0, 1000000, 0, &out->stock, err)) < 0)
            return -1;
        out->has_stock = !json_is_null(stock);
    }
    if (json_object_size(doc) == 0) {
        snprintf(err->message, sizeof(err->message), "give at least one of price_cents, available, stock");
        err->code = HP_E_missing_field;
        return -1;
    }
    return 0;
}
