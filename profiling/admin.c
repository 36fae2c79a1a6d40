/*
 * admin: the admin route table, the admin token, health and flags (see admin.h).
 */
#include "profiling/admin.h"
#include "common/flags.h"
#include "services/pgindex.h"
#include "common/json.h"
#include "common/log.h"
#include "common/token.h"
#include "profiling/logs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HP_ADMIN_MAX_ROUTES 64

static hp_route_t hp__admin_routes[HP_ADMIN_MAX_ROUTES];
static size_t hp__admin_num_routes;

static void hp__admin_add(const hp_route_t *routes, const size_t *num)
{
    /* Weak references: a module that is not linked in contributes nothing. */
    if (routes == NULL || num == NULL)
        return;
    for (size_t i = 0; i != *num && hp__admin_num_routes != HP_ADMIN_MAX_ROUTES; ++i)
        hp__admin_routes[hp__admin_num_routes++] = routes[i];
}

static void hp__admin_healthz(hp_req_t *r)
{
    hp_respond_raw(r, 200, h2o_iovec_init(H2O_STRLIT("{\"status\":\"ok\"}")));
}

json_t *hp_admin_flags_json(void)
{
    json_t *flags = json_object();
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *def = hp_flag_def(id);
        char buf[32];
        json_object_set_new(flags, def->name,
                            json_pack("{ss ss ss ss}", "value", hp_flag_value_str(id, buf, sizeof(buf)), "default", def->def,
                                      "choices", def->choices, "doc", def->doc));
    }
    return flags;
}

/*
 * The flags, plus "actions": what a flag that acts outside the process is
 * doing (orders_user_id_index builds or drops its index on the index thread;
 * its state is "running" until the database has caught up with the flag).
 */
static json_t *hp__flags_doc(void)
{
    return json_pack("{so so}", "flags", hp_admin_flags_json(), "actions", hp_pgindex_actions_json());
}

static void hp__flags_get(hp_req_t *r)
{
    hp_respond_json(r, 200, hp__flags_doc());
}

/*
 * POST /debug/flags with {"name": "value", ...}: every pair is checked before
 * any is applied, so a bad request changes nothing. Values are strings, or
 * integers for integer flags. Each change is logged.
 */
static void hp__flags_post(hp_req_t *r)
{
    if (!hp_admin_authorized(r))
        return;
    json_t *doc = hp_json_parse_body(r);
    if (doc == NULL)
        return;
    int ids[HP_FLAG__COUNT], values[HP_FLAG__COUNT], n = 0;
    const char *key;
    json_t *v;
    char err[160];
    json_object_foreach(doc, key, v)
    {
        char num[24];
        const char *val;
        size_t len;
        if (json_is_string(v)) {
            val = json_string_value(v), len = json_string_length(v);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            val = num, len = strlen(num);
        } else {
            json_decref(doc);
            hp_respond_error(r, 400, "invalid_field", "flag values are strings or integers");
            return;
        }
        int id = hp_flag_check(key, strlen(key), val, len, &values[n], err, sizeof(err));
        if (id < 0 || n == HP_FLAG__COUNT) {
            json_decref(doc);
            hp_respond_error(r, 400, id < 0 && strncmp(err, "unknown", 7) == 0 ? "unknown_flag" : "invalid_field", err);
            return;
        }
        ids[n++] = id;
    }
    json_decref(doc);
    for (int i = 0; i != n; ++i) {
        char now[32];
        hp_flag_store(ids[i], values[i]);
        hp_log(HP_LOG_WARN, "flag %s set to %s via POST /debug/flags", hp_flag_def(ids[i])->name,
               hp_flag_value_str(ids[i], now, sizeof(now)));
        if (ids[i] == HP_FLAG_orders_user_id_index)
            hp_pgindex_flag_changed();
    }
    hp_respond_json(r, 200, hp__flags_doc());
}

static const hp_route_t hp__admin_own_routes[] = {
    {"GET", "/healthz", hp__admin_healthz},
    {"GET", "/debug/flags", hp__flags_get},
    {"POST", "/debug/flags", hp__flags_post},
};

const hp_route_t *hp_admin_routes(size_t *num)
{
    if (hp__admin_num_routes == 0) {
        static const size_t own = sizeof(hp__admin_own_routes) / sizeof(hp__admin_own_routes[0]);
        hp__admin_add(hp__admin_own_routes, &own);
        hp__admin_add(hp_perf_routes, &hp_perf_num_routes);
        hp__admin_add(hp_pg_routes, &hp_pg_num_routes);
        hp__admin_add(hp_prof_routes, &hp_prof_num_routes);
        hp__admin_add(hp_dashboard_routes, &hp_dashboard_num_routes);
        hp__admin_add(hp_logs_routes, &hp_logs_num_routes);
        hp__admin_add(hp_doctor_routes, &hp_doctor_num_routes);
    }
    *num = hp__admin_num_routes;
    return hp__admin_routes;
}

int hp_admin_authorized(hp_req_t *r)
{
    const char *want = r->thr->cfg->admin_token;
    if (want == NULL)
        return 1;
    h2o_iovec_t hdr = hp_req_header(r, "authorization");
    if (hdr.base != NULL && hdr.len > 7 && strncasecmp(hdr.base, "Bearer ", 7) == 0) {
        /* Hash both sides so the comparison is constant-time and independent of the token's length. */
        uint8_t a[32], b[32];
        hp_token_hash(hdr.base + 7, hdr.len - 7, a);
        hp_token_hash(want, strlen(want), b);
        if (hp_token_equal(a, b))
            return 1;
    }
    hp_add_header(r, "www-authenticate", "Bearer realm=\"hotplate admin\"");
    hp_respond_error(r, 401, "unauthorized", "this debug endpoint needs the admin token (HOTPLATE_ADMIN_TOKEN)");
    return 0;
}
