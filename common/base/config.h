/*
 * config: the server's startup configuration, from the command line and the
 * environment. Runtime behaviour switches are flags (flags.h), not config.
 */
#ifndef HP_CONFIG_H
#define HP_CONFIG_H

#include <stdint.h>

typedef struct st_hp_config_t {
    char listen_host[64];
    uint16_t listen_port;
    char admin_host[64]; /* the admin (debug and metrics) listener */
    uint16_t admin_port;
    const char *admin_token;    /* HOTPLATE_ADMIN_TOKEN; NULL when unset */
    int threads;                /* worker threads, each with its own loop and listener */
    const char *pg_url;         /* libpq connection string or URL */
    const char *pg_replica_url; /* HOTPLATE_PG_REPLICA_URL: a standby for the replica_reads flag's reads; NULL for none */
    const char *redis_url;      /* redis://host:port or unix:///path */
    int db_pool_size;           /* transaction connections per thread */
    int db_readers;             /* pipelined read connections per worker thread */
    int statement_timeout_ms;   /* PostgreSQL statement_timeout on every connection */
    int lock_timeout_ms;        /* PostgreSQL lock_timeout on every connection: a row-lock wait longer than this is a 504 */
    int db_timeout_ms;          /* client-side deadline of one statement */
    int pool_timeout_ms;        /* longest wait for a transaction connection */
    int redis_timeout_ms;       /* client-side deadline of one Redis command */
    int payment_timeout_ms;     /* client-side deadline of one payment authorization */
    int menu_cache_ttl_s;       /* TTL of a cached menu */
    int shutdown_grace_ms;      /* how long in-flight requests may drain on SIGTERM */
    const char *log_file;       /* HOTPLATE_LOG_FILE: also write the JSON log lines here, rotated by size; NULL for none */
    int log_file_max_mb;        /* rotate the log file when it reaches this many MiB */
    int log_file_keep;          /* rotated log files kept (path.1 .. path.N) */
    const char *alert_webhook;  /* HOTPLATE_ALERT_WEBHOOK: http:// URL the embedded alerts POST to; NULL for none */
    int max_inflight;           /* admission control: requests in flight per worker thread beyond which a request is a fast 503 */
    int header_timeout_ms;      /* h2o's HTTP/1 request timeout: a client that has not sent its whole request by then is closed */
    const char *profile_dir;    /* HOTPLATE_PROFILE_DIR: where continuous profiling keeps its profiles; NULL for the default */
    int profile_keep;           /* continuous profiling: profiles kept of each kind (CPU, heap) */
} hp_config_t;

/**
 * Fills cfg from the environment, then from argv (the arguments after
 * `serve`). Flags (--flag) are applied to the flags registry directly.
 * @return 0, or -1 after printing the problem to stderr
 */
int hp_config_load(hp_config_t *cfg, int argc, char **argv);

/** @return 1 when host is a loopback address (127.0.0.0/8) */
int hp_config_is_loopback(const char *host);

/** Prints the options of `hotplate serve` to stderr. */
void hp_config_usage(void);

#endif
