/*
 * libFuzzer driver: the body of PATCH /restaurants/{id}/menu/items/{item_id}
 * (services/menu_patch.c), behind the same JSON gates as the server
 * (fuzz_body.h).
 *
 * Invariants: an accepted body names at least one of price_cents, available
 * and stock, nothing else, each in range and agreeing with the document; a
 * rejected one carries a 4xx error with a code and a message.
 */
#include "services/menu_patch.h"
#include "tests/fuzz/fuzz_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = hp_fuzz_body(data, size);
    if (doc == NULL)
        return 0;
    hp_menu_patch_t patch;
    hp_json_err_t err = {0};
    if (hp_menu_patch_from_json(doc, &patch, &err) == 0) {
        size_t given = (size_t)patch.has_price + (size_t)patch.has_available + (size_t)patch.stock_given;
        if (given == 0 || given != json_object_size(doc))
            abort();
        if (patch.has_price && (patch.price_cents < 0 || patch.price_cents > 1000000))
            abort();
        if (patch.has_stock && (!patch.stock_given || patch.stock < 0 || patch.stock > 1000000))
            abort();
        if (patch.has_available && json_is_true(json_object_get(doc, "available")) != patch.available)
            abort();
    } else {
        hp_fuzz_check_err(&err);
    }
    json_decref(doc);
    return 0;
}
