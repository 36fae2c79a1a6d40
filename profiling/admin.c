/*
 * admin: health and flags on the admin listener (see admin.h).
 */
#include "profiling/admin.h"
#include "base/flags.h"
#include "base/log.h"
#include "runtime/http.h"
#include "runtime/params.h"

#include <stdlib.h>
#include <string.h>

static json_t *(*hp__actions)(void);

void hp_admin_set_actions(json_t *(*actions)(void))
{
    hp__actions = actions;
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
    return json_pack("{so so}", "flags", hp_admin_flags_json(), "actions", hp__actions != NULL ? hp__actions() : json_object());
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
    json_t *doc = hp_body_json(r);
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
            hp_respond_error(r, HP_E_invalid_field, "flag values are strings or integers");
            return;
        }
        int id = hp_flag_check(key, strlen(key), val, len, &values[n], err, sizeof(err));
        if (id < 0 || n == HP_FLAG__COUNT) {
            json_decref(doc);
            hp_respond_error(r, id < 0 && strncmp(err, "unknown", 7) == 0 ? HP_E_unknown_flag : HP_E_invalid_field, err);
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
    }
    hp_respond_json(r, 200, hp__flags_doc());
}

const hp_route_t hp_admin_own_routes[] = {
    {"GET", "/healthz", hp__admin_healthz, HP_ROUTE_ALWAYS_ADMIT},
    {"GET", "/debug/flags", hp__flags_get, 0},
    {"POST", "/debug/flags", hp__flags_post, HP_ROUTE_ADMIN_TOKEN},
};
const size_t hp_admin_own_num_routes = sizeof(hp_admin_own_routes) / sizeof(hp_admin_own_routes[0]);
