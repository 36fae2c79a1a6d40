/*
 * menus: GET /restaurants/{id}/menu with a Redis cache-aside, and
 * PATCH /restaurants/{id}/menu/items/{item_id} for owners.
 *
 * Cache protocol. hp:menu:{id} holds the rendered menu document (which carries
 * its menu_version) with a TTL; hp:menuver:{id} holds the newest version any
 * writer committed. A reader that missed loads the menu from PostgreSQL and
 * stores it only if its version is not older than hp:menuver (one Lua script,
 * so the check and the write are atomic in Redis). A writer commits, then raises
 * hp:menuver and deletes hp:menu in one script before it answers. Together
 * these close the classic cache-aside race: a reader that loaded the old menu
 * before the update and writes it back after the delete is refused, so a read
 * that follows a successful update never sees the old price.
 */
#include "services/handlers.h"
#include "common/db.h"
#include "common/flags.h"
#include "common/json.h"
#include "common/redis.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] menu key, KEYS[2] version key; ARGV[1] version, ARGV[2] document, ARGV[3] TTL in seconds. */
static const char hp__lua_store[] = "local v = tonumber(redis.call('GET', KEYS[2]) or '0') "
                                    "if v > tonumber(ARGV[1]) then return 0 end "
                                    "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1";
/* KEYS[1] menu key, KEYS[2] version key; ARGV[1] committed version, ARGV[2] TTL of the version key. */
static const char hp__lua_invalidate[] = "local v = tonumber(redis.call('GET', KEYS[2]) or '0') "
                                         "if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end "
                                         "redis.call('DEL', KEYS[1]) return 1";

typedef struct st_hp_menu_state_t {
    int use_cache;
    char key[40], verkey[40];
} hp_menu_state_t;

static void hp__menu_on_stored(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    /* The response has usually gone by now; a failed store only costs a future miss. */
    (void)r, (void)ud, (void)reply, (void)err;
}

static void hp__menu_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_menu_state_t *st = ud;
    if (hp_db_failed(r, res, err))
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        hp_respond_error(r, 404, "not_found", "no such restaurant");
        return;
    }
    const char *version = PQgetvalue(res, 0, 0);
    char *body = hp_pool_printf(r, "{\"restaurant_id\":%lld,\"version\":%s,\"categories\":%s}", (long long)r->path_ids[0], version,
                                PQgetvalue(res, 0, 1));
    size_t body_len = strlen(body);
    if (st->use_cache) {
        char ttl[16];
        snprintf(ttl, sizeof(ttl), "%d", r->thr->cfg->menu_cache_ttl_s);
        const char *argv[] = {"EVAL", hp__lua_store, "2", st->key, st->verkey, version, body, ttl};
        size_t argvlen[] = {
            4, sizeof(hp__lua_store) - 1, 1, strlen(st->key), strlen(st->verkey), strlen(version), body_len, strlen(ttl)};
        hp_redis_command(r, hp__menu_on_stored, NULL, 8, argv, argvlen);
    }
    PQclear(res);
    hp_add_header(r, "x-cache", r->cache != NULL ? r->cache : "miss");
    hp_respond_raw(r, 200, h2o_iovec_init(body, body_len));
}

static void hp__menu_load(hp_req_t *r, hp_menu_state_t *st)
{
    const char *values[] = {hp_pool_printf(r, "%lld", (long long)r->path_ids[0])};
    hp_db_query(r, HP_STMT_menu_get, values, 1, hp__menu_on_db, st);
}

static void hp__menu_on_cache(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_menu_state_t *st = ud;
    if (err == NULL && reply->type == REDIS_REPLY_STRING) {
        r->cache = "hit";
        hp_probe_cache_result(r->thr, 1, 0);
        h2o_iovec_t body = h2o_strdup(&r->h2o->pool, reply->str, reply->len); /* the reply is freed when we return */
        hp_add_header(r, "x-cache", "hit");
        hp_respond_raw(r, 200, body);
        return;
    }
    /* A miss, or Redis failing: PostgreSQL answers either way; only the label differs. */
    r->cache = err == NULL ? "miss" : "error";
    hp_probe_cache_result(r->thr, 0, err != NULL);
    if (err != NULL)
        st->use_cache = 0;
    hp__menu_load(r, st);
}

void hp_handle_menu_get(hp_req_t *r)
{
    hp_menu_state_t *st = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*st));
    st->use_cache = hp_flag_get(HP_FLAG_menu_cache) == HP_MENU_CACHE_REDIS;
    snprintf(st->key, sizeof(st->key), "hp:menu:%lld", (long long)r->path_ids[0]);
    snprintf(st->verkey, sizeof(st->verkey), "hp:menuver:%lld", (long long)r->path_ids[0]);
    if (!st->use_cache) {
        r->cache = "bypass";
        hp__menu_load(r, st);
        return;
    }
    const char *argv[] = {"GET", st->key};
    size_t argvlen[] = {3, strlen(st->key)};
    hp_redis_command(r, hp__menu_on_cache, st, 2, argv, argvlen);
}

/* ---- PATCH --------------------------------------------------------------------------------- */

typedef struct st_hp_patch_state_t {
    const char *values[6];
    char *item_json;
} hp_patch_state_t;

static void hp__patch_on_invalidated(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_patch_state_t *st = ud;
    (void)reply;
    if (err != NULL) {
        /* The database is committed; the stale entry lives until its TTL. Say so in the log line. */
        r->cache = "error";
        r->error_reason = "menu cache invalidation failed";
    }
    hp_respond_raw(r, 200, h2o_iovec_init(st->item_json, strlen(st->item_json)));
}

static void hp__patch_on_update(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_patch_state_t *st = ud;
    hp_db_release(r, r->held, err != NULL);
    if (hp_db_failed(r, res, err))
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        hp_respond_error(r, 404, "not_found", "no such item on this restaurant's menu");
        return;
    }
    st->item_json = hp_pool_printf(r, "%s", PQgetvalue(res, 0, 0));
    char *version = hp_pool_printf(r, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    char key[40], verkey[40], ttl[16];
    snprintf(key, sizeof(key), "hp:menu:%lld", (long long)r->path_ids[0]);
    snprintf(verkey, sizeof(verkey), "hp:menuver:%lld", (long long)r->path_ids[0]);
    /* The version key must outlive any menu entry a slow reader could still write. */
    snprintf(ttl, sizeof(ttl), "%d", r->thr->cfg->menu_cache_ttl_s * 2 + 60);
    const char *argv[] = {"EVAL", hp__lua_invalidate, "2", key, verkey, version, ttl};
    size_t argvlen[] = {4, sizeof(hp__lua_invalidate) - 1, 1, strlen(key), strlen(verkey), strlen(version), strlen(ttl)};
    hp_redis_command(r, hp__patch_on_invalidated, st, 7, argv, argvlen);
}

static void hp__patch_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    hp_patch_state_t *st = ud;
    if (err != NULL) {
        hp_respond_failure(r, err);
        return;
    }
    hp_db_conn_query(r, conn, HP_STMT_menu_item_patch, st->values, 6, hp__patch_on_update, st);
}

static void hp__patch_authed(hp_req_t *r)
{
    if (r->principal.restaurant_id != r->path_ids[0]) {
        hp_respond_error(r, 403, "forbidden", "you do not own this restaurant");
        return;
    }
    json_t *doc = hp_json_parse_body(r);
    if (doc == NULL)
        return;
    static const char *const allowed[] = {"price_cents", "available", "stock"};
    hp_json_err_t jerr;
    int64_t price = 0, stock = 0;
    int has_price, has_stock = 0;
    json_t *available = json_object_get(doc, "available"), *stock_v = json_object_get(doc, "stock");
    if (hp_json_only_fields(doc, allowed, 3, &jerr) != 0 ||
        (has_price = hp_json_int(doc, "price_cents", 0, 1000000, 0, &price, &jerr)) < 0)
        goto Invalid;
    if (available != NULL && !json_is_boolean(available)) {
        snprintf(jerr.message, sizeof(jerr.message), "field available must be a boolean");
        jerr.status = 400, jerr.code = "invalid_field";
        goto Invalid;
    }
    if (stock_v != NULL && !json_is_null(stock_v) && (has_stock = hp_json_int(doc, "stock", 0, 1000000, 0, &stock, &jerr)) < 0)
        goto Invalid;
    if (json_object_size(doc) == 0) {
        snprintf(jerr.message, sizeof(jerr.message), "give at least one of price_cents, available, stock");
        jerr.status = 400, jerr.code = "missing_field";
        goto Invalid;
    }
    hp_patch_state_t *st = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*st));
    st->values[0] = hp_pool_printf(r, "%lld", (long long)r->path_ids[0]);
    st->values[1] = hp_pool_printf(r, "%lld", (long long)r->path_ids[1]);
    st->values[2] = has_price ? hp_pool_printf(r, "%lld", (long long)price) : NULL;
    st->values[3] = available == NULL ? NULL : json_is_true(available) ? "true" : "false";
    st->values[4] = stock_v != NULL ? "true" : "false";
    st->values[5] = has_stock ? hp_pool_printf(r, "%lld", (long long)stock) : NULL;
    json_decref(doc);
    /* A write goes on a transaction connection: its row lock must never stall the shared read pipeline. */
    hp_db_acquire(r, hp__patch_on_conn, st);
    return;
Invalid:
    json_decref(doc);
    hp_json_respond_err(r, &jerr);
}

void hp_handle_menu_item_patch(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_ANY, hp__patch_authed);
}
