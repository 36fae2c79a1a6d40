/*
 * hotplate: the command-line entry point.
 *
 *   hotplate serve [options]        the API server (see `hotplate serve --help`)
 *   hotplate migrate [--to N]       apply or roll back migrations
 *   hotplate seed --scale S         load deterministic demo data and tokens
 *   hotplate index NAME on|off      create or drop a lab's index CONCURRENTLY, then ANALYZE
 */
#include "common/config.h"
#include "common/db.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/migrate.h"
#include "common/server.h"
#include "services/handlers.h"
#include "services/pgindex.h"
#include "services/seed.h"
#include "services/statements.h"
#include "profiling/admin.h"

#include <stdio.h>
#include <string.h>

/*
 * jemalloc reads this at startup: heap profiling is compiled in but inactive
 * until asked for, so it costs nothing until someone switches it on.
 * prof_accum keeps allocation totals while a profile runs, so a heap profile
 * can show what was allocated (jeprof --alloc_space), not only what is live.
 */
const char *malloc_conf = "prof:true,prof_active:false,prof_accum:true";

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

static int hp__serve(int argc, char **argv)
{
    hp_config_t cfg;
    hp_flags_init();
    if (hp_config_load(&cfg, argc, argv) != 0)
        return 2;
    hp_db_global_init(hp_statements, HP_STMT__COUNT);
    hp__log_flags();
    size_t num_admin;
    const hp_route_t *admin = hp_admin_routes(&num_admin);
    if (hp_pgindex_start(cfg.pg_url) != 0)
        return 1;
    int ret = hp_server_run(&cfg, hp_api_routes, hp_api_num_routes, admin, num_admin);
    hp_pgindex_stop();
    return ret == 0 ? 0 : 1;
}

static void hp__usage(void)
{
    fprintf(stderr, "usage: hotplate serve|migrate|seed [options]\n"
                    "  serve     run the API server (hotplate serve --help)\n"
                    "  migrate   apply migrations (--to N to go up or down to version N)\n"
                    "  seed      load demo data (--scale S, default 1) and write demo tokens\n"
                    "  index     hotplate index orders_user_id on|off: create or drop the index CONCURRENTLY, then ANALYZE\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        hp__usage();
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return hp__serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "migrate") == 0)
        return hp_migrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "seed") == 0)
        return hp_seed_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "index") == 0)
        return hp_pgindex_main(argc - 1, argv + 1);
    hp__usage();
    return 2;
}
