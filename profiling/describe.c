/*
 * describe: the server's tables, printed (see describe.h).
 */
#include "profiling/describe.h"
#include "base/errors.h"
#include "base/flags.h"
#include "runtime/db.h"
#include "runtime/stats.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *hp__route_flags(unsigned flags)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{HP_ROUTE_ALWAYS_ADMIT, "always_admit"},
                 {HP_ROUTE_ADMIN_TOKEN, "admin_token"},
                 {HP_ROUTE_AUTH, "auth"},
                 {HP_ROUTE_MENU_CACHE, "menu_cache"}};
    json_t *list = json_array();
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i)
        if (flags & names[i].bit)
            json_array_append_new(list, json_string(names[i].name));
    return list;
}

static json_t *hp__routes(const hp_route_t *routes, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i)
        json_array_append_new(list, json_pack("{ss ss so}", "method", routes[i].method, "pattern", routes[i].pattern, "flags",
                                              hp__route_flags(routes[i].flags)));
    return list;
}

static json_t *hp__statements(const hp_route_t *api, size_t num_api)
{
    static const char *const kinds[] = {"read", "write", "control"};
    size_t n;
    const hp_db_stmt_def_t *defs = hp_db_stmts(&n);
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i) {
        json_t *args = json_array();
        for (int k = 0; defs[i].sample_args != NULL && defs[i].sample_args[k] != NULL; ++k)
            json_array_append_new(args, json_string(defs[i].sample_args[k]));
        json_t *route = defs[i].route >= 0 && (size_t)defs[i].route < num_api
                            ? json_pack("{ss ss}", "method", api[defs[i].route].method, "pattern", api[defs[i].route].pattern)
                            : json_null();
        json_array_append_new(list, json_pack("{sI ss ss so so ss}", "id", (json_int_t)i, "name", defs[i].name, "kind",
                                              kinds[defs[i].kind], "route", route, "sample_args", args, "sql", defs[i].sql));
    }
    return list;
}

static json_t *hp__flags(void)
{
    json_t *list = json_array();
    for (int id = 0; id != HP_FLAG__COUNT; ++id) {
        const hp_flag_def_t *d = hp_flag_def((hp_flag_id_t)id);
        json_t *o = json_pack("{ss ss ss ss ss}", "name", d->name, "type", d->type == HP_FLAG_ENUM ? "choice" : "integer",
                              "default", d->def, "choices", d->choices, "doc", d->doc);
        if (d->type == HP_FLAG_ENUM) {
            json_t *values = json_array();
            for (int k = 0; d->values[k] != NULL; ++k)
                json_array_append_new(values, json_string(d->values[k]));
            json_object_set_new(o, "values", values);
        } else {
            json_object_set_new(o, "min", json_integer(d->min));
            json_object_set_new(o, "max", json_integer(d->max));
        }
        json_array_append_new(list, o);
    }
    return list;
}

static json_t *hp__errors(void)
{
    json_t *list = json_array();
    for (int i = 0; i != HP_E__COUNT; ++i)
        json_array_append_new(list, json_pack("{ss si sb s:s?}", "code", hp_errors[i].code, "status", hp_errors[i].status,
                                              "timeout", hp_errors[i].is_timeout, "message", hp_errors[i].message));
    return list;
}

static json_t *hp__stats(const hp_stat_def_t *defs, size_t n, const char *kind)
{
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i)
        json_array_append_new(list, json_pack("{ss ss ss ss ss ss ss}", "id", defs[i].id, "kind", kind, "section",
                                              hp_stat_sections[defs[i].section].key, "key", defs[i].key, "metric", defs[i].metric,
                                              "labels", defs[i].labels, "help", defs[i].help));
    return list;
}

static json_t *hp__doc(const hp_route_t *api, size_t num_api, const hp_route_t *admin, size_t num_admin)
{
    json_t *stats = hp__stats(hp_counter_defs, HP_COUNTER__COUNT, "counter");
    json_t *gauges = hp__stats(hp_gauge_defs, HP_GAUGE__COUNT, "gauge"),
           *hists = hp__stats(hp_hist_defs, HP_HIST__COUNT, "histogram");
    json_array_extend(stats, gauges);
    json_array_extend(stats, hists);
    json_decref(gauges);
    json_decref(hists);
    return json_pack("{so so so so so so}", "routes", hp__routes(api, num_api), "admin_routes", hp__routes(admin, num_admin),
                     "statements", hp__statements(api, num_api), "flags", hp__flags(), "errors", hp__errors(), "stats", stats);
}

/* The text form: one block per table, a line per entry. */
static void hp__text(FILE *out, const json_t *doc)
{
    static const char *const tables[] = {"routes", "admin_routes", "statements", "flags", "errors", "stats"};
    for (size_t t = 0; t != sizeof(tables) / sizeof(tables[0]); ++t) {
        const json_t *list = json_object_get(doc, tables[t]);
        fprintf(out, "%s%s (%zu)\n", t != 0 ? "\n" : "", tables[t], json_array_size(list));
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e)
        {
            if (t <= 1) {
                fprintf(out, "  %-6s %s", json_string_value(json_object_get(e, "method")),
                        json_string_value(json_object_get(e, "pattern")));
                size_t k;
                const json_t *f;
                json_array_foreach(json_object_get(e, "flags"), k, f) fprintf(out, " [%s]", json_string_value(f));
                fputc('\n', out);
            } else if (t == 2) {
                const json_t *route = json_object_get(e, "route");
                fprintf(out, "  %-26s %-7s %s%s%s\n", json_string_value(json_object_get(e, "name")),
                        json_string_value(json_object_get(e, "kind")),
                        json_is_object(route) ? json_string_value(json_object_get(route, "method")) : "-",
                        json_is_object(route) ? " " : "",
                        json_is_object(route) ? json_string_value(json_object_get(route, "pattern")) : "");
            } else if (t == 3) {
                fprintf(out, "  %-22s %-16s default %-8s %s\n", json_string_value(json_object_get(e, "name")),
                        json_string_value(json_object_get(e, "choices")), json_string_value(json_object_get(e, "default")),
                        json_string_value(json_object_get(e, "doc")));
            } else if (t == 4) {
                fprintf(out, "  %d %-32s%s\n", (int)json_integer_value(json_object_get(e, "status")),
                        json_string_value(json_object_get(e, "code")),
                        json_is_true(json_object_get(e, "timeout")) ? " (timeout)" : "");
            } else {
                const char *labels = json_string_value(json_object_get(e, "labels"));
                fprintf(out, "  %-9s %-38s %s%s%s%s\n", json_string_value(json_object_get(e, "kind")),
                        json_string_value(json_object_get(e, "metric")), labels[0] != '\0' ? "{" : "", labels,
                        labels[0] != '\0' ? "} " : "", json_string_value(json_object_get(e, "id")));
            }
        }
    }
}

int hp_describe(FILE *out, int json, const hp_route_t *api, size_t num_api, const hp_route_t *admin, size_t num_admin)
{
    json_t *doc = hp__doc(api, num_api, admin, num_admin);
    if (doc == NULL)
        return -1;
    int rc = 0;
    if (json) {
        rc = json_dumpf(doc, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF ? 0 : -1;
    } else {
        hp__text(out, doc);
    }
    json_decref(doc);
    return rc == 0 && fflush(out) == 0 ? 0 : -1;
}
