/*
 * hotplate: the command-line entry point, and the one file that wires the
 * layers together (docs/ARCHITECTURE.md).
 *
 *   hotplate serve [options]        the API server (see `hotplate serve --help`)
 *   hotplate migrate [--to N]       apply or roll back migrations
 *   hotplate seed --scale S         load deterministic demo data and tokens
 *   hotplate index NAME on|off      create or drop a lab's index CONCURRENTLY, then ANALYZE
 *   hotplate describe [--json]      the tables the server is built from: routes, statements,
 *                                   flags, error codes and metrics
 *   hotplate pprof-encode KIND FILE a saved CPU or heap profile as gzipped profile.proto
 *   hotplate pprof-merge FILE...    profile.proto files of one kind merged into one
 *
 * Below it, nothing knows anything above itself: the runtime gets the route
 * tables, the statement tables and the per-thread hooks from here; profiling
 * reads the routes and statements through the runtime, never from services/;
 * the log's observer and the flags' observer are installed here.
 */
#include "base/config.h"
#include "base/flags.h"
#include "base/log.h"
#include "runtime/db.h"
#include "runtime/migrate.h"
#include "runtime/pgha.h"
#include "runtime/server.h"
#include "services/menu_local.h"
#include "services/payment.h"
#include "services/pgindex.h"
#include "services/recent.h"
#include "services/routes.h"
#include "services/seed.h"
#include "services/statements.h"
#include "profiling/admin.h"
#include "profiling/alerts.h"
#include "profiling/dashboard.h"
#include "profiling/describe.h"
#include "profiling/doctor.h"
#include "profiling/heap.h"
#include "profiling/logs.h"
#include "profiling/metrics.h"
#include "profiling/perf.h"
#include "profiling/pg.h"
#include "profiling/pg_health_collect.h"
#include "profiling/pprof_index.h"
#include "profiling/pprof_proto.h"
#include "profiling/prof.h"
#include "profiling/prof_history.h"

#include <stdio.h>
#include <string.h>

/*
 * jemalloc reads this at startup: heap profiling is compiled in but inactive
 * until asked for, so it costs nothing until someone switches it on.
 * prof_accum keeps allocation totals while a profile runs, so a heap profile
 * can show what was allocated (jeprof --alloc_space), not only what is live.
 */
const char *malloc_conf = "prof:true,prof_active:false,prof_accum:true";

/* The admin listener's table: every profiling module's routes, in the order a person reads them. */
#define HP_ADMIN_MAX_ROUTES 64
static hp_route_t hp__admin_routes[HP_ADMIN_MAX_ROUTES];
static size_t hp__admin_num_routes;

static void hp__admin_add(const hp_route_t *routes, size_t num)
{
    for (size_t i = 0; i != num && hp__admin_num_routes != HP_ADMIN_MAX_ROUTES; ++i)
        hp__admin_routes[hp__admin_num_routes++] = routes[i];
}

static void hp__admin_table(void)
{
    hp__admin_add(hp_admin_own_routes, hp_admin_own_num_routes);
    hp__admin_add(hp_perf_routes, hp_perf_num_routes);
    hp__admin_add(hp_metrics_routes, hp_metrics_num_routes);
    hp__admin_add(hp_pg_routes, hp_pg_num_routes);
    hp__admin_add(hp_pg_health_routes, hp_pg_health_num_routes);
    hp__admin_add(hp_pg_explain_routes, hp_pg_explain_num_routes);
    hp__admin_add(hp_prof_routes, hp_prof_num_routes);
    hp__admin_add(hp_pprof_index_routes, hp_pprof_index_num_routes);
    hp__admin_add(hp_prof_history_routes, hp_prof_history_num_routes);
    hp__admin_add(hp_dashboard_routes, hp_dashboard_num_routes);
    hp__admin_add(hp_logs_routes, hp_logs_num_routes);
    hp__admin_add(hp_doctor_routes, hp_doctor_num_routes);
}

/* What lives on each thread besides the runtime's own clients, started in this order and stopped in reverse. */
static const hp_thread_hook_t hp__hooks[] = {
    {"the payment simulator", HP_HOOK_WORKERS, hp_payment_thread_init, hp_payment_thread_dispose},
    {"the recently-viewed list", HP_HOOK_WORKERS, NULL, hp_recent_thread_dispose},
    {"the menus' local copies", HP_HOOK_WORKERS, NULL, hp_menu_local_thread_dispose},
    {"the uptime clock", HP_HOOK_ADMIN, hp_perf_admin_thread_init, NULL},
    {"the heap sampler", HP_HOOK_ADMIN, hp_heap_admin_thread_init, hp_heap_admin_thread_dispose},
    {"the embedded alerts", HP_HOOK_ADMIN, hp_alerts_admin_thread_init, hp_alerts_admin_thread_dispose},
    {"continuous profiling", HP_HOOK_ADMIN, hp_prof_history_admin_thread_init, hp_prof_history_admin_thread_dispose},
};

/* A flag that acts outside the process: orders_user_id_index builds or drops its index on the index thread. */
static void hp__on_flag(hp_flag_id_t id)
{
    if (id == HP_FLAG_orders_user_id_index)
        hp_pgindex_flag_changed();
}

/* Both statement tables, the API's first: the ids of services/statements.h are their indexes. */
static void hp__register_statements(void)
{
    hp_db_register(hp_statements, HP_STMT__COUNT);
    hp_pg_register_statements();
}

/* One log line with every flag's value at startup; runtime changes log a line each (profiling/admin.c). */
static void hp__log_flags(void)
{
    char line[1024], val[32];
    size_t len = 0;
    for (int id = 0; id != HP_FLAG__COUNT && len < sizeof(line); ++id)
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s=%s", id != 0 ? " " : "", hp_flag_def(id)->name,
                                hp_flag_value_str(id, val, sizeof(val)));
    hp_log(HP_LOG_INFO, "flags: %s", line);
}

/* argv[0] is "serve"; the configuration reads the arguments after it. */
static int hp__serve(int argc, char **argv)
{
    hp_config_t cfg;
    hp_log_set_observer(&hp_logs_observer);
    hp_flags_init();
    if (hp_config_load(&cfg, argc - 1, argv + 1) != 0)
        return 2;
    /* The webhook's host is resolved now, while blocking is still harmless. */
    char instance[96], err[160];
    snprintf(instance, sizeof(instance), "%s:%u", cfg.admin_host, (unsigned)cfg.admin_port);
    if (hp_alerts_configure(cfg.alert_webhook, instance, err, sizeof(err)) != 0) {
        fprintf(stderr, "hotplate: %s\n", err);
        return 2;
    }
    hp_prof_history_configure(cfg.profile_dir, cfg.profile_keep);
    hp__register_statements();
    hp__admin_table();
    hp_admin_set_actions(hp_pgindex_actions_json);
    hp__log_flags();
    if (hp_pgindex_start(cfg.pg_url) != 0)
        return 1;
    if (hp_pgha_start(cfg.pg_url) != 0)
        return 1;
    hp_flag_set_observer(hp__on_flag);
    hp_server_spec_t spec = {hp_api_routes,        HP_API__COUNT, hp__admin_routes,
                             hp__admin_num_routes, hp__hooks,     sizeof(hp__hooks) / sizeof(hp__hooks[0])};
    int ret = hp_server_run(&cfg, &spec);
    hp_flag_set_observer(NULL);
    hp_pgha_stop();
    hp_pgindex_stop();
    return ret == 0 ? 0 : 1;
}

static int hp__describe(int argc, char **argv)
{
    hp__register_statements();
    hp__admin_table();
    int json = argc >= 2 && strcmp(argv[1], "--json") == 0;
    return hp_describe(stdout, json, hp_api_routes, HP_API__COUNT, hp__admin_routes, hp__admin_num_routes) == 0 ? 0 : 1;
}

static void hp__usage(void)
{
    fprintf(stderr, "usage: hotplate serve|migrate|seed|index|describe [options]\n"
                    "  serve     run the API server (hotplate serve --help)\n"
                    "  migrate   apply migrations (--to N to go up or down to version N)\n"
                    "  seed      load demo data (--scale S, default 1) and write demo tokens\n"
                    "  index     hotplate index orders_user_id on|off: create or drop the index CONCURRENTLY, then ANALYZE\n"
                    "  describe  print the routes, statements, flags, error codes and metrics (--json for a document)\n"
                    "  pprof-encode cpu|heap|allocs FILE  a gperftools CPU or jemalloc heap profile as gzipped profile.proto\n"
                    "  pprof-merge FILE...  gzipped profile.proto files of one kind merged into one, to standard output\n");
}

/* The subcommands: each is given argv from its own name on. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} hp__commands[] = {
    {"serve", hp__serve},
    {"migrate", hp_migrate_main},
    {"seed", hp_seed_main},
    {"index", hp_pgindex_main},
    {"describe", hp__describe},
    {"pprof-encode", hp_pprof_encode_main},
    {"pprof-merge", hp_pprof_merge_main},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i != sizeof(hp__commands) / sizeof(hp__commands[0]); ++i)
        if (strcmp(argv[1], hp__commands[i].name) == 0)
            return hp__commands[i].run(argc - 1, argv + 1);
    hp__usage();
    return 2;
}
