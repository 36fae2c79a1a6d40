/*
 * seed: `hotplate seed` (see seed.h for the contract).
 *
 * seed.sql is split into steps at lines starting with "-- @step NAME"; each
 * step is sent with one PQexec so its duration can be printed, but all of
 * them run in the one transaction opened here. The script reads its inputs
 * from the transaction-local settings hotplate.scale, hotplate.seed and
 * hotplate.anchor, which is also how it can be run by hand with psql.
 *
 * The tokens file is written to a temporary name before COMMIT and renamed
 * over PATH after it, so PATH never holds tokens that the database does not
 * know, and a crash leaves at worst a stray temporary file.
 */
#include "services/seed.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "runtime/migrate.h"
#include "base/token.h"

enum {
    HP_SEED__TOP_CUSTOMERS = 1000, /* customers that get a demo token, most active first */
};

/* The data tables, in the order of the summary. */
static const char *const hp_seed__tables[] = {"cities",     "users",  "restaurants", "menu_items", "item_modifiers",
                                              "promotions", "orders", "order_items", "payments",   "order_events"};
#define HP_SEED__NTABLES (sizeof(hp_seed__tables) / sizeof(hp_seed__tables[0]))

typedef struct st_hp_seed__opts_t {
    double scale;
    long seed;
    const char *tokens_path; /* NULL: no demo tokens */
    const char *dir;
    const char *anchor; /* NULL: the script's default (now, truncated to the hour) */
    int help;
} hp_seed__opts_t;

/* One demo token; kind is "customer" (id = user id) or "owner" (id = restaurant id). */
typedef struct st_hp_seed__token_t {
    const char *kind;
    long long id;
    long long user_id;
    char token[HP_TOKEN_LEN + 1];
} hp_seed__token_t;

/* A growable NUL-terminated string for the array parameters. */
typedef struct st_hp_seed__buf_t {
    char *p;
    size_t len, cap;
} hp_seed__buf_t;

static int hp_seed__buf_reserve(hp_seed__buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t ncap = b->cap == 0 ? 4096 : b->cap;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *n = realloc(b->p, ncap);
    if (n == NULL)
        return -1;
    b->p = n;
    b->cap = ncap;
    return 0;
}

static int hp_seed__buf_add(hp_seed__buf_t *b, const char *s, size_t len)
{
    if (hp_seed__buf_reserve(b, len) != 0)
        return -1;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

static int hp_seed__exec(PGconn *conn, const char *sql, const char *what)
{
    return hp_migrate_exec(conn, sql, "seed", what);
}

/* Runs the steps of the script (modified in place) and prints each step's duration. */
static int hp_seed__run_script(PGconn *conn, char *sql)
{
    static const char marker[] = "-- @step ";
    const size_t mlen = sizeof(marker) - 1;
    const char *name = NULL; /* NULL for the text before the first marker */
    char *body = sql, *line = sql;

    for (;;) {
        char *eol = strchr(line, '\n');
        int is_marker = strncmp(line, marker, mlen) == 0;
        if (is_marker || *line == '\0') {
            char *next_name = line + mlen;
            char saved = *line;
            *line = '\0';
            uint64_t start = hp_now_ns();
            if (hp_seed__exec(conn, body, name != NULL ? name : "seed.sql header") != 0) {
                fprintf(stderr, "seed: step %s failed; nothing was changed\n", name != NULL ? name : "(header)");
                return -1;
            }
            if (name != NULL) {
                printf("seed: step %-16s %7.2f s\n", name, (double)(hp_now_ns() - start) / 1e9);
                fflush(stdout);
            }
            if (saved == '\0')
                return 0;
            if (eol != NULL)
                *eol = '\0';
            name = next_name;
            body = eol != NULL ? eol + 1 : next_name + strlen(next_name);
        }
        if (eol == NULL) {
            line += strlen(line);
            continue;
        }
        line = eol + 1;
    }
}

/* Creates every missing directory on the way to the file path (like mkdir -p of its dirname). */
static int hp_seed__mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        /*
         * 0755, not 0700: the parent is often the stack's home directory,
         * which the unprivileged PostgreSQL user must be able to traverse.
         * The tokens file itself is 0600.
         */
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* Writes the tokens to a new temporary file next to path and fsyncs it. */
static int hp_seed__write_tokens_tmp(const char *tmp, const hp_seed__token_t *toks, size_t n)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\t%lld\t%s\n", toks[i].kind, toks[i].id, toks[i].token);
    int rc = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/*
 * Appends one query's (id, user id) rows to toks as kind, without tokens yet:
 * generating them only once the array has stopped growing means realloc never
 * leaves copies of a secret behind in freed memory.
 */
static int hp_seed__collect(PGconn *conn, const char *sql, const char *kind, hp_seed__token_t **toks, size_t *n)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "seed: choosing %s tokens: %s", kind, PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    size_t rows = (size_t)PQntuples(res);
    hp_seed__token_t *grown = realloc(*toks, (*n + rows + 1) * sizeof(*grown));
    if (grown == NULL) {
        PQclear(res);
        fprintf(stderr, "seed: out of memory\n");
        return -1;
    }
    *toks = grown;
    for (size_t i = 0; i < rows; i++) {
        hp_seed__token_t *t = &grown[(*n)++];
        t->kind = kind;
        t->id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        t->user_id = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
        t->token[0] = '\0';
    }
    PQclear(res);
    return 0;
}

/*
 * Gives the top customers and every owner a fresh token, stores the hashes
 * with one UPDATE, and writes the tokens to tmp. The array parameters are
 * text: '{1,2}' and '{"\\x..","\\x.."}' (a quoted array element unescapes
 * "\\x" to the bytea hex prefix "\x").
 */
static int hp_seed__tokens(PGconn *conn, const char *tmp, size_t *count)
{
    hp_seed__token_t *toks = NULL;
    size_t n = 0;
    hp_seed__buf_t ids = {0}, hashes = {0};
    int rc = -1;

    char customers_sql[512];
    snprintf(customers_sql, sizeof(customers_sql),
             "SELECT u.id, u.id FROM users u"
             " LEFT JOIN (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) o ON o.user_id = u.id"
             " WHERE u.role = 'customer' ORDER BY coalesce(o.n, 0) DESC, u.id LIMIT %d",
             HP_SEED__TOP_CUSTOMERS);
    if (hp_seed__collect(conn, customers_sql, "customer", &toks, &n) != 0 ||
        hp_seed__collect(conn, "SELECT id, owner_id FROM restaurants ORDER BY id", "owner", &toks, &n) != 0)
        goto out;

    for (size_t i = 0; i < n; i++) {
        if (hp_token_generate(toks[i].token) != 0) {
            fprintf(stderr, "seed: getrandom failed: %s\n", strerror(errno));
            goto out;
        }
    }
    if (hp_seed__buf_add(&ids, "{", 1) != 0 || hp_seed__buf_add(&hashes, "{", 1) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        uint8_t digest[HP_TOKEN_HASH_LEN];
        char item[2 * HP_TOKEN_HASH_LEN + 16];
        hp_token_hash(toks[i].token, HP_TOKEN_LEN, digest);
        int len = snprintf(item, sizeof(item), "%s%lld", i == 0 ? "" : ",", toks[i].user_id);
        if (hp_seed__buf_add(&ids, item, (size_t)len) != 0)
            goto oom;
        len = snprintf(item, sizeof(item), "%s\"\\\\x", i == 0 ? "" : ",");
        for (size_t j = 0; j < HP_TOKEN_HASH_LEN; j++)
            len += snprintf(item + len, sizeof(item) - (size_t)len, "%02x", digest[j]);
        item[len++] = '"';
        if (hp_seed__buf_add(&hashes, item, (size_t)len) != 0)
            goto oom;
    }
    if (hp_seed__buf_add(&ids, "}", 1) != 0 || hp_seed__buf_add(&hashes, "}", 1) != 0)
        goto oom;

    const char *params[2] = {ids.p, hashes.p};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE users u SET token_hash = t.h"
                                 " FROM unnest($1::bigint[], $2::bytea[]) AS t(id, h) WHERE u.id = t.id",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "seed: storing token hashes: %s", PQerrorMessage(conn));
        PQclear(res);
        goto out;
    }
    PQclear(res);
    if (hp_seed__write_tokens_tmp(tmp, toks, n) != 0) {
        fprintf(stderr, "seed: writing %s: %s\n", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    *count = n;
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "seed: out of memory\n");
out:
    /* The tokens are secrets: do not leave them in freed heap memory (explicit_bzero, because a memset right
     * before free() may legally be optimised away). */
    if (toks != NULL)
        explicit_bzero(toks, n * sizeof(*toks));
    free(toks);
    free(ids.p);
    free(hashes.p);
    return rc;
}

/* Prints the row count of every data table. */
static int hp_seed__summary(PGconn *conn)
{
    char sql[1024];
    size_t len = (size_t)snprintf(sql, sizeof(sql), "SELECT");
    for (size_t i = 0; i < HP_SEED__NTABLES; i++)
        len +=
            (size_t)snprintf(sql + len, sizeof(sql) - len, "%s (SELECT count(*) FROM %s)", i == 0 ? "" : ",", hp_seed__tables[i]);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "seed: counting rows: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    for (size_t i = 0; i < HP_SEED__NTABLES; i++)
        printf("seed: %-16s %10s rows\n", hp_seed__tables[i], PQgetvalue(res, 0, (int)i));
    PQclear(res);
    return 0;
}

static int hp_seed__usage(void)
{
    fprintf(stderr, "usage: hotplate seed --scale S [--seed N] [--tokens PATH] [--dir DIR] [--anchor TIMESTAMP]\n"
                    "  --scale S      row-count multiplier, 0 < S <= 100 (1.0: 2,000 restaurants, 1,000,000 orders)\n"
                    "  --seed N       0..2147483647 (default 42); same scale, seed and anchor give the same rows\n"
                    "  --tokens PATH  write demo tokens there (kind<TAB>id<TAB>token, mode 0600)\n"
                    "  --dir DIR      directory of seed.sql; default: $HOTPLATE_MIGRATIONS_DIR, else ./migrations\n"
                    "  --anchor TS    the \"now\" of the generated history; default: now, truncated to the hour\n");
    return 2;
}

static int hp_seed__parse_args(int argc, char **argv, hp_seed__opts_t *o)
{
    int have_scale = 0;
    *o = (hp_seed__opts_t){.seed = 42};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        const char *eq = strchr(a, '=');
        char key[16];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = 1;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || (eq != NULL && (size_t)(eq - a) >= sizeof(key))) {
            fprintf(stderr, "seed: unknown argument %s\n", a);
            return hp_seed__usage();
        }
        if (eq != NULL) {
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = '\0';
            val = eq + 1;
        } else {
            if (strlen(a) >= sizeof(key) || i + 1 >= argc) {
                fprintf(stderr, "seed: %s needs a value\n", a);
                return hp_seed__usage();
            }
            strcpy(key, a);
            val = argv[++i];
        }
        char *end;
        errno = 0;
        if (strcmp(key, "--scale") == 0) {
            o->scale = strtod(val, &end);
            if (errno != 0 || end == val || *end != '\0' || !(o->scale > 0 && o->scale <= 100)) {
                fprintf(stderr, "seed: --scale wants a number above 0 and at most 100, not \"%s\"\n", val);
                return 2;
            }
            have_scale = 1;
        } else if (strcmp(key, "--seed") == 0) {
            o->seed = strtol(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0' || o->seed < 0 || o->seed > INT32_MAX) {
                fprintf(stderr, "seed: --seed wants an integer from 0 to 2147483647, not \"%s\"\n", val);
                return 2;
            }
        } else if (strcmp(key, "--tokens") == 0) {
            o->tokens_path = val;
        } else if (strcmp(key, "--dir") == 0) {
            o->dir = val;
        } else if (strcmp(key, "--anchor") == 0) {
            o->anchor = val;
        } else {
            fprintf(stderr, "seed: unknown argument %s\n", a);
            return hp_seed__usage();
        }
    }
    if (!have_scale) {
        fprintf(stderr, "seed: --scale is required\n");
        return hp_seed__usage();
    }
    if (o->tokens_path != NULL && o->tokens_path[0] == '\0') {
        fprintf(stderr, "seed: --tokens wants a path\n");
        return 2;
    }
    return 0;
}

/* Sets the script's inputs as transaction-local settings and checks the schema is there. */
static int hp_seed__prepare(PGconn *conn, const hp_seed__opts_t *o)
{
    char scale[32], seed[24];
    snprintf(scale, sizeof(scale), "%.17g", o->scale);
    snprintf(seed, sizeof(seed), "%ld", o->seed);
    const char *params[3] = {scale, seed, o->anchor != NULL ? o->anchor : ""};
    PGresult *res = PQexecParams(conn,
                                 "SELECT set_config('hotplate.scale', $1, true), set_config('hotplate.seed', $2, true),"
                                 " set_config('hotplate.anchor', $3, true),"
                                 " to_regclass('order_events') IS NOT NULL AND to_regclass('cities') IS NOT NULL",
                                 3, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "seed: %s", PQerrorMessage(conn));
    else if (strcmp(PQgetvalue(res, 0, 3), "t") != 0) {
        fprintf(stderr, "seed: the schema is missing; run `hotplate migrate` first\n");
        ok = 0;
    }
    PQclear(res);
    return ok ? 0 : -1;
}

int hp_seed_main(int argc, char **argv)
{
    hp_seed__opts_t o;
    int rc = hp_seed__parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (o.help) {
        hp_seed__usage();
        return 0;
    }

    const char *dir = hp_migrate_dir(o.dir);
    char script_path[PATH_MAX], tmp[PATH_MAX + 32];
    if (snprintf(script_path, sizeof(script_path), "%s/seed.sql", dir) >= (int)sizeof(script_path)) {
        fprintf(stderr, "seed: directory name too long\n");
        return 2;
    }
    if (o.tokens_path != NULL && snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", o.tokens_path, (long)getpid()) >= (int)sizeof(tmp)) {
        fprintf(stderr, "seed: --tokens path too long\n");
        return 2;
    }
    char *sql = hp_migrate_read_file(script_path, NULL);
    if (sql == NULL) {
        fprintf(stderr, "seed: cannot read %s: %s\n", script_path, strerror(errno));
        return 1;
    }
    if (o.tokens_path != NULL && hp_seed__mkdir_parents(o.tokens_path) != 0) {
        fprintf(stderr, "seed: cannot create the directory of %s: %s\n", o.tokens_path, strerror(errno));
        free(sql);
        return 1;
    }
    PGconn *conn = hp_migrate_connect("seed");
    if (conn == NULL) {
        free(sql);
        return 1;
    }

    uint64_t start = hp_now_ns();
    size_t ntokens = 0;
    int tmp_written = 0;
    printf("seed: scale %g, seed %ld, anchor %s\n", o.scale, o.seed, o.anchor != NULL ? o.anchor : "now (to the hour)");
    fflush(stdout);
    rc = -1;
    if (hp_seed__exec(conn, "BEGIN", "BEGIN") == 0 && hp_seed__prepare(conn, &o) == 0 && hp_seed__run_script(conn, sql) == 0) {
        if (o.tokens_path == NULL)
            rc = 0;
        else if ((rc = hp_seed__tokens(conn, tmp, &ntokens)) == 0)
            tmp_written = 1;
        if (rc == 0)
            rc = hp_seed__summary(conn);
        if (rc == 0)
            rc = hp_seed__exec(conn, "COMMIT", "COMMIT");
        /*
         * The script's ANALYZE ran inside the transaction, and PostgreSQL
         * adds a transaction's row counts to n_mod_since_analyze at COMMIT,
         * after it: every seeded row would still count as modified since the
         * last analyze, and the doctor would call the fresh tables' statistics
         * stale. One more ANALYZE after the COMMIT starts those counters at 0.
         */
        if (rc == 0)
            rc = hp_seed__exec(conn,
                               "ANALYZE cities, users, restaurants, menu_items, item_modifiers, promotions, orders, "
                               "order_items, payments, order_events",
                               "ANALYZE");
    }
    if (rc != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        if (tmp_written)
            unlink(tmp);
    } else if (tmp_written) {
        if (rename(tmp, o.tokens_path) != 0) {
            fprintf(stderr, "seed: renaming %s to %s: %s (the database now holds hashes of tokens in %s)\n", tmp, o.tokens_path,
                    strerror(errno), tmp);
            rc = -1;
        } else {
            printf("seed: wrote %zu tokens to %s\n", ntokens, o.tokens_path);
        }
    }
    PQfinish(conn);
    free(sql);
    if (rc != 0) {
        fprintf(stderr, "seed: failed after %.1f s\n", (double)(hp_now_ns() - start) / 1e9);
        return 1;
    }
    printf("seed: done in %.1f s\n", (double)(hp_now_ns() - start) / 1e9);
    return 0;
}
