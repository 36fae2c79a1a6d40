/*
 * cart: parse, load and price a cart (see cart.h).
 */
#include "services/cart.h"
#include "base/pgarray.h"
#include "base/clock.h"
#include "runtime/db.h"
#include "base/flags.h"
#include "services/hours.h"
#include "services/orders.h"
#include "services/statements.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hp__parse_delivery(const json_t *d, hp_cart_t *cart, hp_json_err_t *err)
{
    static const char *const allowed[] = {"lat", "lon"};
    if (!json_is_object(d))
        return hp_json_fail(err, HP_E_invalid_field, "field delivery must be an object with lat and lon");
    if (hp_json_only_fields(d, allowed, 2, err) != 0)
        return -1;
    json_t *lat = json_object_get(d, "lat"), *lon = json_object_get(d, "lon");
    if (lat == NULL || lon == NULL)
        return hp_json_fail(err, HP_E_missing_field, "delivery needs lat and lon");
    if (!json_is_number(lat) || !json_is_number(lon))
        return hp_json_fail(err, HP_E_invalid_field, "delivery lat and lon must be numbers");
    double la = json_number_value(lat), lo = json_number_value(lon);
    if (!isfinite(la) || !isfinite(lo) || la < -90 || la > 90 || lo < -180 || lo > 180)
        return hp_json_fail(err, HP_E_invalid_field, "delivery lat must be within -90..90 and lon within -180..180");
    cart->has_delivery = 1;
    cart->delivery_lat = la;
    cart->delivery_lon = lo;
    return 0;
}

static int hp__parse_line(const json_t *l, size_t index, hp_total_line_t *line, hp_json_err_t *err)
{
    static const char *const allowed[] = {"item_id", "quantity", "modifier_ids"};
    char msg[96];
    int64_t v;
    if (!json_is_object(l)) {
        snprintf(msg, sizeof(msg), "items[%zu] must be an object", index);
        return hp_json_fail(err, HP_E_invalid_field, msg);
    }
    if (hp_json_only_fields(l, allowed, 3, err) != 0)
        return -1;
    if (hp_json_int(l, "item_id", 1, 9007199254740991LL, 1, &v, err) < 0)
        return -1;
    line->item_id = v;
    if (hp_json_int(l, "quantity", 1, 99, 1, &v, err) < 0)
        return -1;
    line->quantity = (int32_t)v;
    line->num_modifier_ids = 0;
    json_t *mods = json_object_get(l, "modifier_ids");
    if (mods != NULL) {
        if (!json_is_array(mods) || json_array_size(mods) > HP_TOTAL_MAX_MODIFIERS_PER_LINE) {
            snprintf(msg, sizeof(msg), "items[%zu].modifier_ids must be an array of at most %d ids", index,
                     HP_TOTAL_MAX_MODIFIERS_PER_LINE);
            return hp_json_fail(err, HP_E_invalid_field, msg);
        }
        size_t i;
        json_t *m;
        json_array_foreach(mods, i, m)
        {
            if (!json_is_integer(m) || json_integer_value(m) < 1 || json_integer_value(m) > 9007199254740991LL) {
                snprintf(msg, sizeof(msg), "items[%zu].modifier_ids must hold positive integer ids", index);
                return hp_json_fail(err, HP_E_invalid_field, msg);
            }
            line->modifier_ids[line->num_modifier_ids++] = json_integer_value(m);
        }
    }
    return 0;
}

int hp_cart_from_json(const json_t *doc, hp_cart_t *cart, hp_json_err_t *err)
{
    static const char *const allowed[] = {"restaurant_id", "items", "tip_cents", "delivery"};
    int64_t v;
    memset(cart, 0, offsetof(hp_cart_t, lines)); /* the lines are written as they are parsed (cart.h) */
    if (hp_json_only_fields(doc, allowed, 4, err) != 0)
        return -1;
    if (hp_json_int(doc, "restaurant_id", 1, 9007199254740991LL, 1, &v, err) < 0)
        return -1;
    cart->restaurant_id = v;
    if (hp_json_int(doc, "tip_cents", 0, 100000, 0, &cart->tip_cents, err) < 0)
        return -1;
    json_t *d = json_object_get(doc, "delivery");
    if (d != NULL && hp__parse_delivery(d, cart, err) != 0)
        return -1;
    json_t *items = json_object_get(doc, "items");
    if (items == NULL)
        return hp_json_fail(err, HP_E_missing_field, "missing field items");
    if (!json_is_array(items))
        return hp_json_fail(err, HP_E_invalid_field, "field items must be an array");
    if (json_array_size(items) == 0)
        return hp_json_fail(err, HP_E_empty_cart, "the cart has no lines");
    if (json_array_size(items) > HP_TOTAL_MAX_LINES)
        return hp_json_fail(err, HP_E_too_many_lines, "a cart has at most 200 lines");
    size_t i;
    json_t *l;
    json_array_foreach(items, i, l)
    {
        if (hp__parse_line(l, i, &cart->lines[i], err) != 0)
            return -1;
    }
    cart->num_lines = json_array_size(items);
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------- */

enum { HP_CART_Q_RESTAURANT, HP_CART_Q_ITEMS, HP_CART_Q_MODIFIERS, HP_CART_Q_PROMOTIONS, HP_CART_Q__COUNT };

typedef struct st_hp_cart_load_t {
    hp_cart_priced_t *p;
    hp_cart_cb cb;
    void *ud;
    PGresult *res[HP_CART_Q__COUNT];
    hp_db_join_t join;
} hp_cart_load_t;

typedef struct st_hp_cart_slot_t {
    hp_cart_load_t *load;
    int index;
} hp_cart_slot_t;

const char *hp_cart_item_name(const hp_cart_priced_t *p, int64_t item_id)
{
    for (size_t i = 0; i != p->num_items; ++i)
        if (p->items[i].id == item_id)
            return p->item_names[i];
    return "";
}

static char *hp__pool_strdup(hp_req_t *r, const char *s)
{
    return h2o_strdup(&r->h2o->pool, s, strlen(s)).base;
}

/* All four results are in: validate the lines and price the cart. */
static void hp__cart_process(hp_req_t *r, hp_cart_load_t *ld)
{
    hp_cart_priced_t *p = ld->p;
    hp_cart_t *cart = &p->cart;
    PGresult *rest = ld->res[HP_CART_Q_RESTAURANT], *items = ld->res[HP_CART_Q_ITEMS], *mods = ld->res[HP_CART_Q_MODIFIERS],
             *promos = ld->res[HP_CART_Q_PROMOTIONS];

    if (PQntuples(rest) == 0) {
        hp_respond_error(r, HP_E_not_found, "no such restaurant");
        return;
    }
    p->restaurant_open = hp_hours_open(atoi(PQgetvalue(rest, 0, 4)), atoi(PQgetvalue(rest, 0, 5)), hp_hours_minute_now());
    p->input.restaurant_lat = strtod(PQgetvalue(rest, 0, 1), NULL);
    p->input.restaurant_lon = strtod(PQgetvalue(rest, 0, 2), NULL);
    p->input.tax_rate_bp = atoi(PQgetvalue(rest, 0, 3));
    p->restaurant_name = hp__pool_strdup(r, PQgetvalue(rest, 0, 6));

    /* Items: id, restaurant_id, price_cents, available, stock, category, name. */
    int n = PQntuples(items);
    p->num_items = 0;
    for (int i = 0; i != n && p->num_items != HP_TOTAL_MAX_LINES; ++i) {
        if (strtoll(PQgetvalue(items, i, 1), NULL, 10) != cart->restaurant_id)
            continue; /* another restaurant's item: the line check below reports it */
        size_t k = p->num_items++;
        p->items[k].id = strtoll(PQgetvalue(items, i, 0), NULL, 10);
        p->items[k].price_cents = atoi(PQgetvalue(items, i, 2));
        p->items[k].category = hp__pool_strdup(r, PQgetvalue(items, i, 5));
        p->item_names[k] = hp__pool_strdup(r, PQgetvalue(items, i, 6));
        p->item_stock[k] = PQgetisnull(items, i, 4) ? -1 : atoi(PQgetvalue(items, i, 4));
        if (PQgetvalue(items, i, 3)[0] != 't') {
            hp_respond_error(r, HP_E_unavailable_item, hp_pool_printf(r, "item %lld is not available", (long long)p->items[k].id));
            return;
        }
    }
    for (size_t l = 0; l != cart->num_lines; ++l) {
        size_t k;
        for (k = 0; k != p->num_items; ++k)
            if (p->items[k].id == cart->lines[l].item_id)
                break;
        if (k == p->num_items) {
            hp_respond_error(
                r, HP_E_unknown_item,
                hp_pool_printf(r, "items[%zu]: item %lld is not on this restaurant's menu", l, (long long)cart->lines[l].item_id));
            return;
        }
    }

    /* Modifiers: id, item_id, price_delta_cents. */
    n = PQntuples(mods);
    p->modifiers = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*p->modifiers) * (size_t)(n > 0 ? n : 1));
    p->num_modifiers = (size_t)n;
    for (int i = 0; i != n; ++i) {
        p->modifiers[i].id = strtoll(PQgetvalue(mods, i, 0), NULL, 10);
        p->modifiers[i].item_id = strtoll(PQgetvalue(mods, i, 1), NULL, 10);
        p->modifiers[i].price_delta_cents = atoi(PQgetvalue(mods, i, 2));
    }
    /* Promotions: id, kind, value, min_subtotal_cents, category. */
    n = PQntuples(promos);
    p->promotions = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*p->promotions) * (size_t)(n > 0 ? n : 1));
    p->num_promotions = (size_t)n;
    for (int i = 0; i != n; ++i) {
        hp_total_promotion_t *pr = &p->promotions[i];
        pr->id = strtoll(PQgetvalue(promos, i, 0), NULL, 10);
        pr->kind = strcmp(PQgetvalue(promos, i, 1), "percent") == 0 ? HP_PROMO_PERCENT : HP_PROMO_FIXED;
        pr->value = atoi(PQgetvalue(promos, i, 2));
        pr->min_subtotal_cents = atoi(PQgetvalue(promos, i, 3));
        pr->category = PQgetisnull(promos, i, 4) ? NULL : hp__pool_strdup(r, PQgetvalue(promos, i, 4));
    }

    hp_total_input_t *in = &p->input;
    in->lines = cart->lines;
    in->num_lines = cart->num_lines;
    in->items = p->items;
    in->num_items = p->num_items;
    in->modifiers = p->modifiers;
    in->num_modifiers = p->num_modifiers;
    in->promotions = p->promotions;
    in->num_promotions = p->num_promotions;
    in->delivery_lat = cart->has_delivery ? cart->delivery_lat : r->principal.lat;
    in->delivery_lon = cart->has_delivery ? cart->delivery_lon : r->principal.lon;
    in->tip_cents = (int32_t)cart->tip_cents;
    in->fees = hp_total_fees_default();
    hp_total_mode_t mode = hp_flag_get(HP_FLAG_order_total) == HP_order_total_naive ? HP_TOTAL_NAIVE : HP_TOTAL_ONCE;
    uint64_t start = hp_probe_cpu_clock();
    int priced = hp_total_compute(in, mode, &p->result);
    hp_probe_stage_add(&r->probe, HP_STAGE_compute, hp_probe_cpu_clock() - start);
    if (priced != 0) {
        size_t l = p->result.bad_line;
        if (p->result.status == HP_TOTAL_UNKNOWN_MODIFIER)
            hp_respond_error(r, HP_E_unknown_modifier, hp_pool_printf(r, "items[%zu]: a modifier does not belong to its item", l));
        else
            hp_respond_error(r, HP_E_unknown_item, hp_pool_printf(r, "items[%zu]: the item cannot be priced", l));
        return;
    }
    ld->cb(r, ld->ud, p);
}

static void hp__cart_on_result(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_cart_slot_t *slot = ud;
    hp_cart_load_t *ld = slot->load;
    ld->res[slot->index] = res;
    if (!hp_db_join_done(&ld->join, err))
        return;
    if (!hp_db_failed(r, NULL, ld->join.err))
        hp__cart_process(r, ld);
    for (int i = 0; i != HP_CART_Q__COUNT; ++i)
        if (ld->res[i] != NULL)
            PQclear(ld->res[i]);
}

/* Formats ids as a PostgreSQL array literal in the request pool. */
static const char *hp__id_array(hp_req_t *r, const int64_t *ids, size_t n)
{
    hp_pgarray_t a;
    hp_pgarray_begin(&a, h2o_mem_alloc_pool(&r->h2o->pool, HP_PGARRAY_INT_BYTES(n)), HP_PGARRAY_INT_BYTES(n));
    for (size_t i = 0; i != n; ++i)
        hp_pgarray_int(&a, ids[i]);
    return hp_pgarray_end(&a);
}

void hp_cart_price(hp_req_t *r, hp_cart_priced_t *p, hp_cart_cb cb, void *ud)
{
    hp_cart_load_t *ld = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ld));
    memset(ld, 0, sizeof(*ld));
    ld->p = p;
    ld->cb = cb;
    ld->ud = ud;
    ld->join.pending = HP_CART_Q__COUNT;
    int64_t ids[HP_TOTAL_MAX_LINES];
    size_t num_ids = 0;
    for (size_t i = 0; i != p->cart.num_lines; ++i) {
        size_t k;
        for (k = 0; k != num_ids && ids[k] != p->cart.lines[i].item_id; ++k)
            ;
        if (k == num_ids)
            ids[num_ids++] = p->cart.lines[i].item_id;
    }
    const char *rid = hp_pool_printf(r, "%lld", (long long)p->cart.restaurant_id), *idarr = hp__id_array(r, ids, num_ids);
    static const int stmts[HP_CART_Q__COUNT] = {HP_STMT_cart_restaurant, HP_STMT_cart_items, HP_STMT_cart_modifiers,
                                                HP_STMT_cart_promotions};
    const char *params[HP_CART_Q__COUNT] = {rid, idarr, idarr, rid};
    /* Four independent reads, queued back to back in this thread's pipeline: one round trip, not four. */
    for (int i = 0; i != HP_CART_Q__COUNT; ++i) {
        hp_cart_slot_t *slot = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*slot));
        slot->load = ld;
        slot->index = i;
        hp_db_query(r, stmts[i], &params[i], 1, hp__cart_on_result, slot);
    }
}

json_t *hp_cart_lines_json(const hp_cart_priced_t *p)
{
    const hp_total_result_t *t = &p->result;
    json_t *lines = json_array();
    for (size_t i = 0; i != p->cart.num_lines; ++i) {
        const hp_total_line_t *l = &p->cart.lines[i];
        json_t *mods = json_array();
        for (size_t m = 0; m != l->num_modifier_ids; ++m)
            json_array_append_new(mods, json_integer(l->modifier_ids[m]));
        json_array_append_new(lines, hp_order_item_json(l->item_id, hp_cart_item_name(p, l->item_id), l->quantity,
                                                        t->lines[i].unit_price_cents, t->lines[i].line_total_cents, mods));
    }
    return lines;
}

json_t *hp_cart_breakdown_json(const hp_cart_priced_t *p)
{
    const hp_total_result_t *t = &p->result;
    json_t *lines = hp_cart_lines_json(p);
    return json_pack("{sI ss so sI sI sI sI sI sI sI sI sI so}", "restaurant_id", (json_int_t)p->cart.restaurant_id, "currency",
                     "EUR", "lines", lines, "subtotal_cents", (json_int_t)t->subtotal_cents, "discount_cents",
                     (json_int_t)t->discount_cents, "tax_cents", (json_int_t)t->tax_cents, "delivery_fee_cents",
                     (json_int_t)t->delivery_fee_cents, "service_fee_cents", (json_int_t)t->service_fee_cents,
                     "small_order_fee_cents", (json_int_t)t->small_order_fee_cents, "tip_cents", (json_int_t)t->tip_cents,
                     "total_cents", (json_int_t)t->total_cents, "distance_m", (json_int_t)t->distance_m, "promotion_id",
                     t->promotion_id != 0 ? json_integer(t->promotion_id) : json_null());
}
