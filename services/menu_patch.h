/*
 * menu_patch: validation of the body of PATCH /restaurants/{id}/menu/items/{item_id}.
 *
 * A pure function over the parsed JSON document, apart from the handler in
 * services/menus.c, so that the unit tests and the libFuzzer driver
 * (tests/fuzz/fuzz_menu_patch.c) reach it without a server or a database.
 */
#ifndef HP_MENU_PATCH_H
#define HP_MENU_PATCH_H

#include <stdint.h>

#include <jansson.h>

#include "base/json.h"
#include "base/json.h"

/* What a valid PATCH body asks for. */
typedef struct st_hp_menu_patch_t {
    int has_price;
    int64_t price_cents; /* 0..1000000 when has_price */
    int has_available;
    int available;   /* 0 or 1 when has_available */
    int stock_given; /* "stock" was present, as a number or as null (null: stop tracking stock) */
    int has_stock;
    int64_t stock; /* 0..1000000 when has_stock */
} hp_menu_patch_t;

/**
 * Validates a PATCH body: only price_cents, available and stock, at least one
 * of them, each of the right type and range.
 * @param doc a JSON object (the body gates of hp_body_json passed)
 * @param out receives the request on success
 * @param err receives a 4xx status, code and message on failure
 * @return 0 when valid, -1 otherwise
 */
int hp_menu_patch_from_json(const json_t *doc, hp_menu_patch_t *out, hp_json_err_t *err);

#endif
