/*
 * config: command line and environment of `hotplate serve` (see config.h).
 */
#include "base/config.h"
#include "base/flags.h"
#include "base/log.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void hp_config_usage(void)
{
    fprintf(
        stderr,
        "usage: hotplate serve [options]\n"
        "  --listen HOST:PORT          API listener (default 127.0.0.1:8080; env HOTPLATE_LISTEN)\n"
        "  --admin-listen HOST:PORT    debug and metrics listener (default 127.0.0.1:8081; env HOTPLATE_ADMIN_LISTEN)\n"
        "  --threads N                 worker threads (default: number of cores; env HOTPLATE_THREADS)\n"
        "  --db-pool N                 transaction connections per thread (default 8; env HOTPLATE_DB_POOL)\n"
        "  --db-readers N              pipelined read connections per worker thread (default 2; env HOTPLATE_DB_READERS)\n"
        "  --statement-timeout-ms N    PostgreSQL statement_timeout (default 5000)\n"
        "  --lock-timeout-ms N         PostgreSQL lock_timeout: longest row-lock wait (default 1000)\n"
        "  --db-timeout-ms N           client deadline per statement (default 6000)\n"
        "  --pool-timeout-ms N         longest wait for a transaction connection (default 2000)\n"
        "  --redis-timeout-ms N        client deadline per Redis command (default 250)\n"
        "  --payment-timeout-ms N      client deadline per payment authorization (default 3000)\n"
        "  --menu-cache-ttl-s N        TTL of cached menus (default 300)\n"
        "  --shutdown-grace-ms N       drain time on SIGTERM (default 5000)\n"
        "  --flag NAME=VALUE           set a runtime flag (repeatable; env HOTPLATE_FLAGS=a=b,c=d)\n"
        "  --max-inflight N            requests in flight per thread before a fast 503 overloaded (default 256;\n"
        "                              env HOTPLATE_MAX_INFLIGHT)\n"
        "  --header-timeout-ms N       close a connection whose request is not complete after N ms (default 10000;\n"
        "                              env HOTPLATE_HEADER_TIMEOUT_MS)\n"
        "  --pg-replica-url URL        a PostgreSQL standby that the flag replica_reads=on sends menu and order-history\n"
        "                              reads to (env HOTPLATE_PG_REPLICA_URL; none by default)\n"
        "  --log-file PATH             also write the JSON log lines to PATH, rotated by size (env HOTPLATE_LOG_FILE)\n"
        "  --log-file-max-mb N         rotate the log file at N MiB (default 64; env HOTPLATE_LOG_FILE_MAX_MB)\n"
        "  --log-file-keep N           rotated log files kept, PATH.1 .. PATH.N (default 5; env HOTPLATE_LOG_FILE_KEEP)\n"
        "  --alert-webhook URL         POST the embedded alerts' transitions to this http:// URL (env HOTPLATE_ALERT_WEBHOOK)\n"
        "  --profile-dir DIR           continuous profiling's folder (default $HOTPLATE_HOME/profiles, else\n"
        "                              $TMPDIR/hotplate-profiles; env HOTPLATE_PROFILE_DIR); the flag profile_every_s starts it\n"
        "  --profile-keep N            profiles of each kind kept there, oldest removed first (default 60; env "
        "HOTPLATE_PROFILE_KEEP)\n"
        "environment: HOTPLATE_PG_URL (required), HOTPLATE_REDIS_URL (default redis://127.0.0.1:6379; also unix:///path, "
        "sentinel://host:port/name),\n"
        "  HOTPLATE_ADMIN_TOKEN (required by mutating debug endpoints when set, and to bind the admin listener beyond loopback)\n");
}

static int hp__parse_int(const char *s, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int hp__parse_hostport(char *host, size_t hostlen, uint16_t *port_out, const char *s)
{
    const char *colon = strrchr(s, ':');
    int port;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hostlen || hp__parse_int(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port_out = (uint16_t)port;
    return 0;
}

static int hp__parse_listen(hp_config_t *cfg, const char *s)
{
    return hp__parse_hostport(cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port, s);
}

static int hp__parse_admin_listen(hp_config_t *cfg, const char *s)
{
    return hp__parse_hostport(cfg->admin_host, sizeof(cfg->admin_host), &cfg->admin_port, s);
}

int hp_config_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0;
}

/* The integer options, shared by the command line and the environment. */
struct hp__int_opt {
    const char *arg, *env;
    size_t offset;
    int min, max;
};

static const struct hp__int_opt hp__int_opts[] = {
    {"--threads", "HOTPLATE_THREADS", offsetof(hp_config_t, threads), 1, 256},
    {"--db-pool", "HOTPLATE_DB_POOL", offsetof(hp_config_t, db_pool_size), 1, 64},
    {"--db-readers", "HOTPLATE_DB_READERS", offsetof(hp_config_t, db_readers), 1, 8},
    {"--statement-timeout-ms", "HOTPLATE_STATEMENT_TIMEOUT_MS", offsetof(hp_config_t, statement_timeout_ms), 1, 600000},
    {"--lock-timeout-ms", "HOTPLATE_LOCK_TIMEOUT_MS", offsetof(hp_config_t, lock_timeout_ms), 1, 600000},
    {"--db-timeout-ms", "HOTPLATE_DB_TIMEOUT_MS", offsetof(hp_config_t, db_timeout_ms), 1, 600000},
    {"--pool-timeout-ms", "HOTPLATE_POOL_TIMEOUT_MS", offsetof(hp_config_t, pool_timeout_ms), 1, 600000},
    {"--redis-timeout-ms", "HOTPLATE_REDIS_TIMEOUT_MS", offsetof(hp_config_t, redis_timeout_ms), 1, 600000},
    {"--payment-timeout-ms", "HOTPLATE_PAYMENT_TIMEOUT_MS", offsetof(hp_config_t, payment_timeout_ms), 1, 600000},
    {"--menu-cache-ttl-s", "HOTPLATE_MENU_CACHE_TTL_S", offsetof(hp_config_t, menu_cache_ttl_s), 1, 86400},
    {"--shutdown-grace-ms", "HOTPLATE_SHUTDOWN_GRACE_MS", offsetof(hp_config_t, shutdown_grace_ms), 0, 600000},
    {"--log-file-max-mb", "HOTPLATE_LOG_FILE_MAX_MB", offsetof(hp_config_t, log_file_max_mb), 1, 65536},
    {"--log-file-keep", "HOTPLATE_LOG_FILE_KEEP", offsetof(hp_config_t, log_file_keep), 1, 100},
    {"--max-inflight", "HOTPLATE_MAX_INFLIGHT", offsetof(hp_config_t, max_inflight), 1, 1000000},
    {"--header-timeout-ms", "HOTPLATE_HEADER_TIMEOUT_MS", offsetof(hp_config_t, header_timeout_ms), 100, 600000},
    {"--profile-keep", "HOTPLATE_PROFILE_KEEP", offsetof(hp_config_t, profile_keep), 1, 1000},
};

/*
 * The text options, likewise: an empty environment variable counts as unset;
 * an empty argument is kept, but for the options where it means none.
 */
static const struct hp__str_opt {
    const char *arg, *env;
    size_t offset;
    int empty_is_none;
} hp__str_opts[] = {
    {"--pg-replica-url", "HOTPLATE_PG_REPLICA_URL", offsetof(hp_config_t, pg_replica_url), 1},
    {"--log-file", "HOTPLATE_LOG_FILE", offsetof(hp_config_t, log_file), 0},
    {"--alert-webhook", "HOTPLATE_ALERT_WEBHOOK", offsetof(hp_config_t, alert_webhook), 0},
    {"--profile-dir", "HOTPLATE_PROFILE_DIR", offsetof(hp_config_t, profile_dir), 0},
};

static const char **hp__str_field(hp_config_t *cfg, const struct hp__str_opt *o)
{
    return (const char **)((char *)cfg + o->offset);
}

/* Sets the text option arg names to val. @return 1, or 0 when arg is not a text option */
static int hp__set_str(hp_config_t *cfg, const char *arg, const char *val)
{
    for (size_t i = 0; i != sizeof(hp__str_opts) / sizeof(hp__str_opts[0]); ++i) {
        if (strcmp(arg, hp__str_opts[i].arg) == 0) {
            *hp__str_field(cfg, &hp__str_opts[i]) = hp__str_opts[i].empty_is_none && val[0] == '\0' ? NULL : val;
            return 1;
        }
    }
    return 0;
}

int hp_config_load(hp_config_t *cfg, int argc, char **argv)
{
    char err[160];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    *cfg = (hp_config_t){
        .listen_host = "127.0.0.1",
        .listen_port = 8080,
        .admin_host = "127.0.0.1",
        .admin_port = 8081,
        .threads = cores > 0 ? (int)cores : 1,
        .redis_url = "redis://127.0.0.1:6379",
        .db_pool_size = 8,
        .db_readers = 2,
        .statement_timeout_ms = 5000,
        .lock_timeout_ms = 1000,
        .db_timeout_ms = 6000,
        .pool_timeout_ms = 2000,
        .redis_timeout_ms = 250,
        .payment_timeout_ms = 3000,
        .menu_cache_ttl_s = 300,
        .shutdown_grace_ms = 5000,
        .log_file_max_mb = 64,
        .log_file_keep = 5,
        /*
         * 256 per thread: far above what the benchmarks keep in flight (wrk
         * -c64 holds 32 per thread), yet a bound: a request admitted at the
         * limit queues behind at most 255 others on its thread instead of an
         * unbounded backlog. See common/runtime/admission.h and docs/RELIABILITY.md.
         */
        .max_inflight = 256,
        /* h2o's own default (H2O_DEFAULT_HTTP1_REQ_TIMEOUT), made explicit and configurable. */
        .header_timeout_ms = 10000,
        /* An hour of history at the local stack's one profile a minute, a few megabytes on disk. */
        .profile_keep = 60,
    };

    const char *s;
    if ((s = getenv("HOTPLATE_LISTEN")) != NULL && hp__parse_listen(cfg, s) != 0) {
        fprintf(stderr, "hotplate: bad HOTPLATE_LISTEN %s\n", s);
        return -1;
    }
    if ((s = getenv("HOTPLATE_ADMIN_LISTEN")) != NULL && hp__parse_admin_listen(cfg, s) != 0) {
        fprintf(stderr, "hotplate: bad HOTPLATE_ADMIN_LISTEN %s\n", s);
        return -1;
    }
    if ((s = getenv("HOTPLATE_ADMIN_TOKEN")) != NULL && s[0] != '\0')
        cfg->admin_token = s;
    cfg->pg_url = getenv("HOTPLATE_PG_URL");
    if ((s = getenv("HOTPLATE_REDIS_URL")) != NULL)
        cfg->redis_url = s;
    for (size_t i = 0; i != sizeof(hp__str_opts) / sizeof(hp__str_opts[0]); ++i)
        if ((s = getenv(hp__str_opts[i].env)) != NULL && s[0] != '\0')
            *hp__str_field(cfg, &hp__str_opts[i]) = s;
    for (size_t i = 0; i != sizeof(hp__int_opts) / sizeof(hp__int_opts[0]); ++i) {
        const struct hp__int_opt *o = &hp__int_opts[i];
        if ((s = getenv(o->env)) != NULL && hp__parse_int(s, o->min, o->max, (int *)((char *)cfg + o->offset)) != 0) {
            fprintf(stderr, "hotplate: bad %s=%s (%d..%d)\n", o->env, s, o->min, o->max);
            return -1;
        }
    }
    if ((s = getenv("HOTPLATE_FLAGS")) != NULL && hp_flags_parse_list(s, err, sizeof(err)) != 0) {
        fprintf(stderr, "hotplate: HOTPLATE_FLAGS: %s\n", err);
        return -1;
    }

    /* Every option takes a value, so arguments come in pairs (--help, which has none, exits). */
    for (int i = 0; i < argc; i += 2) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            hp_config_usage();
            exit(0);
        }
        if (val == NULL) {
            fprintf(stderr, "hotplate: %s needs a value\n", arg);
            return -1;
        }
        if (strcmp(arg, "--listen") == 0) {
            if (hp__parse_listen(cfg, val) != 0) {
                fprintf(stderr, "hotplate: bad --listen %s (want HOST:PORT)\n", val);
                return -1;
            }
        } else if (strcmp(arg, "--admin-listen") == 0) {
            if (hp__parse_admin_listen(cfg, val) != 0) {
                fprintf(stderr, "hotplate: bad --admin-listen %s (want HOST:PORT)\n", val);
                return -1;
            }
        } else if (strcmp(arg, "--flag") == 0) {
            if (hp_flags_parse_list(val, err, sizeof(err)) != 0) {
                fprintf(stderr, "hotplate: --flag: %s\n", err);
                return -1;
            }
        } else if (!hp__set_str(cfg, arg, val)) {
            size_t k, n = sizeof(hp__int_opts) / sizeof(hp__int_opts[0]);
            for (k = 0; k != n; ++k)
                if (strcmp(arg, hp__int_opts[k].arg) == 0)
                    break;
            if (k == n) {
                fprintf(stderr, "hotplate: unknown option %s\n", arg);
                hp_config_usage();
                return -1;
            }
            if (hp__parse_int(val, hp__int_opts[k].min, hp__int_opts[k].max, (int *)((char *)cfg + hp__int_opts[k].offset)) != 0) {
                fprintf(stderr, "hotplate: bad %s %s (%d..%d)\n", arg, val, hp__int_opts[k].min, hp__int_opts[k].max);
                return -1;
            }
        }
    }
    /* A debug listener reachable from the network without a token would hand anyone profiles and EXPLAIN. */
    if (!hp_config_is_loopback(cfg->admin_host) && cfg->admin_token == NULL) {
        fprintf(stderr,
                "hotplate: refusing to bind the admin listener to %s without HOTPLATE_ADMIN_TOKEN; "
                "set a token or keep --admin-listen on 127.0.0.1\n",
                cfg->admin_host);
        return -1;
    }
    if (cfg->admin_port == cfg->listen_port && strcmp(cfg->admin_host, cfg->listen_host) == 0) {
        fprintf(stderr, "hotplate: --admin-listen must differ from --listen; debug routes never share the API port\n");
        return -1;
    }
    if (cfg->pg_url == NULL) {
        fprintf(stderr, "hotplate: HOTPLATE_PG_URL is not set (try `make up`, or source .hotplate/env)\n");
        return -1;
    }
    /* Opened here, before any thread starts, so every line of the run (the first included) reaches it. */
    if (cfg->log_file != NULL &&
        hp_log_open_file(cfg->log_file, (uint64_t)cfg->log_file_max_mb << 20, cfg->log_file_keep, err, sizeof(err)) != 0) {
        fprintf(stderr, "hotplate: %s\n", err);
        return -1;
    }
    return 0;
}
