/*
 * restaurants: GET /restaurants (keyset-paginated listing) and
 * GET /restaurants/{id}; also the health routes.
 */
#include "runtime/params.h"
#include "runtime/pgha.h"
#include "services/handlers.h"
#include "base/cursor.h"
#include "base/log.h"
#include "runtime/db.h"
#include "runtime/redis.h"
#include "runtime/server.h"
#include "services/hours.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders a row of HP__RESTAURANT_COLUMNS; open_now at minute m after midnight UTC (services/hours.h). */
static json_t *hp__restaurant_json(const PGresult *res, int row, int m)
{
    int open = atoi(PQgetvalue(res, row, 5)), close = atoi(PQgetvalue(res, row, 6));
    char opens[24], closes[24];
    snprintf(opens, sizeof(opens), "%02d:%02d", open / 60, open % 60);
    snprintf(closes, sizeof(closes), "%02d:%02d", (close / 60) % 24, close % 60);
    return json_pack("{sI ss ss ss sf sb ss ss sf sf}", "id", (json_int_t)strtoll(PQgetvalue(res, row, 0), NULL, 10), "name",
                     PQgetvalue(res, row, 1), "city", PQgetvalue(res, row, 2), "cuisine", PQgetvalue(res, row, 3), "rating",
                     atoi(PQgetvalue(res, row, 4)) / 10.0, "open_now", hp_hours_open(open, close, m), "opens", opens, "closes",
                     closes, "lat", strtod(PQgetvalue(res, row, 7), NULL), "lon", strtod(PQgetvalue(res, row, 8), NULL));
}

/*
 * A listing's page size and the minute its open_now filter was sent with, so
 * the rendered open_now agrees with the filter across a minute's boundary.
 */
typedef struct {
    int limit;
    int minute;
} hp_list_ctx_t;

static void hp__list_on_rows(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    const hp_list_ctx_t *ctx = ud;
    int limit = ctx->limit, m = ctx->minute;
    if (hp_db_failed(r, res, err))
        return;
    /* One row more than the page was asked for, so the last page says so (next_cursor null). */
    int n = PQntuples(res), more = n > limit;
    if (more)
        n = limit;
    json_t *list = json_array();
    for (int i = 0; i != n; ++i)
        json_array_append_new(list, hp__restaurant_json(res, i, m));
    json_t *next = json_null();
    if (more) {
        char cur[HP_CURSOR_BUF_SIZE];
        hp_cursor_encode(cur, sizeof(cur), HP_CURSOR_KIND_RESTAURANTS, atoi(PQgetvalue(res, n - 1, 4)),
                         strtoll(PQgetvalue(res, n - 1, 0), NULL, 10));
        next = json_string(cur);
    }
    PQclear(res);
    hp_respond_json(r, 200, json_pack("{so so}", "restaurants", list, "next_cursor", next));
}

void hp_handle_restaurant_list(hp_req_t *r)
{
    const char *city, *cuisine, *open_now = NULL;
    int limit, has_cursor;
    int64_t k1 = 0, k2 = 0;
    h2o_iovec_t v;
    if (hp_param_text(r, "city", 100, &city) < 0 || hp_param_text(r, "cuisine", 100, &cuisine) < 0 ||
        hp_param_limit(r, 20, 100, &limit) < 0 || hp_param_cursor(r, HP_CURSOR_KIND_RESTAURANTS, &has_cursor, &k1, &k2) < 0)
        return;
    int found = hp_query_param(r, "open_now", &v);
    if (found != 0) {
        if (found > 0 && v.len == 4 && memcmp(v.base, "true", 4) == 0)
            open_now = "true";
        else if (found > 0 && v.len == 5 && memcmp(v.base, "false", 5) == 0)
            open_now = "false";
        else {
            hp_respond_error(r, HP_E_bad_param, "open_now must be true or false");
            return;
        }
    }
    if (has_cursor && (k1 < 0 || k1 > 50 || k2 < 1)) {
        hp_respond_error(r, HP_E_bad_cursor, "the cursor is not one this listing produced");
        return;
    }
    hp_list_ctx_t *ctx = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*ctx));
    ctx->limit = limit;
    ctx->minute = hp_hours_minute_now();
    const char *values[7] = {city,
                             cuisine,
                             open_now,
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k1) : NULL,
                             has_cursor ? hp_pool_printf(r, "%lld", (long long)k2) : NULL,
                             hp_pool_printf(r, "%d", limit + 1),
                             hp_pool_printf(r, "%d", ctx->minute)};
    hp_db_query(r, HP_STMT_restaurant_list, values, 7, hp__list_on_rows, ctx);
}

static void hp__get_on_row(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    (void)ud;
    if (hp_db_missing(r, res, err, "no such restaurant"))
        return;
    json_t *doc = hp__restaurant_json(res, 0, hp_hours_minute_now());
    PQclear(res);
    hp_respond_json(r, 200, doc);
}

void hp_handle_restaurant_get(hp_req_t *r)
{
    const char *values[] = {hp_pool_printf(r, "%lld", (long long)r->path_ids[0])};
    hp_db_query(r, HP_STMT_restaurant_get, values, 1, hp__get_on_row, NULL);
}

void hp_handle_healthz(hp_req_t *r)
{
    hp_respond_raw(r, 200, h2o_iovec_init(H2O_STRLIT("{\"status\":\"ok\"}")));
}

void hp_handle_readyz(hp_req_t *r)
{
    int pg, redis;
    hp_server_readiness(&pg, &redis);
    /* With several PostgreSQL hosts (HA), which one is the primary and how far its standbys are behind. */
    hp_pgha_snapshot_t ha;
    hp_pgha_snapshot(&ha);
    char *extra = "", primary[2 * sizeof(ha.primary)];
    hp_log_escape(primary, sizeof(primary), ha.primary);
    if (ha.enabled)
        extra = hp_pool_printf(r, ",\"postgres_primary\":\"%s\",\"standbys\":%d,\"replication_lag_bytes\":%lld,\"failovers\":%llu",
                               primary, ha.standbys, (long long)ha.lag_bytes, (unsigned long long)ha.failovers);
    char *body = hp_pool_printf(r, "{\"status\":\"%s\",\"postgres\":\"%s\",\"redis\":\"%s\"%s}",
                                pg && redis ? "ready" : "not_ready", pg ? "ok" : "down", redis ? "ok" : "down", extra);
    hp_respond_raw(r, pg && redis ? 200 : 503, h2o_iovec_init(body, strlen(body)));
}
