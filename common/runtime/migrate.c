/*
 * migrate: `hotplate migrate` (see migrate.h for the contract).
 *
 * The run is planned completely before anything is executed: the directory is
 * scanned and validated, the applied versions are read under the advisory
 * lock, and every file the plan needs is checked to exist. Only then do steps
 * run, so a typo in a file name or a missing down file stops the run before it
 * has changed the database rather than halfway down.
 */
#include "runtime/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

/*
 * The key of the advisory lock, shared by every hotplate migrate run on any
 * database. The value is arbitrary; it spells "hpmigrat" in ASCII so that it
 * is recognisable in pg_locks.
 */
#define HP_MIGRATE__LOCK_KEY "7525635276810641780"

/* One version found in the directory; paths are heap strings owned by the step. */
typedef struct st_hp_migrate__step_t {
    hp_migrate_name_t id;
    char *up_path;   /* NULL when the directory has no up file for it */
    char *down_path; /* NULL when the directory has no down file for it */
} hp_migrate__step_t;

/* The versions in the directory, sorted by version once scanned. */
typedef struct st_hp_migrate__set_t {
    hp_migrate__step_t *steps;
    size_t len, cap;
} hp_migrate__set_t;

/* What schema_migrations says: applied versions, ascending. */
typedef struct st_hp_migrate__applied_t {
    int *versions;
    size_t len;
} hp_migrate__applied_t;

static int hp_migrate__ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

hp_migrate_file_kind_t hp_migrate_parse_name(const char *file, hp_migrate_name_t *out)
{
    size_t len = strlen(file);
    int digit_first = file[0] >= '0' && file[0] <= '9';
    hp_migrate_file_kind_t kind;
    size_t suffix_len;

    if (hp_migrate__ends_with(file, len, ".up.sql")) {
        kind = HP_MIGRATE_FILE_UP;
        suffix_len = strlen(".up.sql");
    } else if (hp_migrate__ends_with(file, len, ".down.sql")) {
        kind = HP_MIGRATE_FILE_DOWN;
        suffix_len = strlen(".down.sql");
    } else {
        /* "0003_x.sql" or "0003_x.up.sql~" is a mistake, not an unrelated file. */
        return digit_first ? HP_MIGRATE_FILE_INVALID : HP_MIGRATE_FILE_IGNORED;
    }

    /* Four digits, an underscore and at least one name character before the suffix. */
    if (len < 4 + 1 + 1 + suffix_len)
        return HP_MIGRATE_FILE_INVALID;
    int version = 0;
    for (size_t i = 0; i < 4; i++) {
        if (file[i] < '0' || file[i] > '9')
            return HP_MIGRATE_FILE_INVALID;
        version = version * 10 + (file[i] - '0');
    }
    if (version == 0 || file[4] != '_')
        return HP_MIGRATE_FILE_INVALID;
    size_t name_len = len - suffix_len - 5;
    if (name_len > HP_MIGRATE_NAME_MAX)
        return HP_MIGRATE_FILE_INVALID;
    for (size_t i = 0; i < name_len; i++) {
        char c = file[5 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return HP_MIGRATE_FILE_INVALID;
    }
    if (out != NULL) {
        out->version = version;
        memcpy(out->name, file + 5, name_len);
        out->name[name_len] = '\0';
    }
    return kind;
}

PGconn *hp_migrate_connect(const char *who)
{
    const char *url = getenv("HOTPLATE_PG_URL");

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "%s: HOTPLATE_PG_URL is not set (source the env file that deploy/stack.sh writes)\n", who);
        return NULL;
    }
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect to PostgreSQL: %s", who, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    /* DROP ... IF EXISTS and friends emit NOTICEs that would drown the step lines. */
    PGresult *res = PQexec(conn, "SET client_min_messages = warning");
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        fprintf(stderr, "%s: %s", who, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

const char *hp_migrate_dir(const char *opt)
{
    if (opt != NULL)
        return opt;
    const char *env = getenv("HOTPLATE_MIGRATIONS_DIR");
    return env != NULL && env[0] != '\0' ? env : "migrations";
}

char *hp_migrate_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (cap - used < 4096) {
            size_t ncap = cap == 0 ? 16384 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0)
            break;
    }
    int err = ferror(f) ? EIO : 0;
    fclose(f);
    if (err != 0) {
        free(buf);
        errno = err;
        return NULL;
    }
    buf[used] = '\0';
    if (len != NULL)
        *len = used;
    return buf;
}

static void hp_migrate__set_free(hp_migrate__set_t *set)
{
    for (size_t i = 0; i < set->len; i++) {
        free(set->steps[i].up_path);
        free(set->steps[i].down_path);
    }
    free(set->steps);
    *set = (hp_migrate__set_t){0};
}

static int hp_migrate__step_cmp(const void *a, const void *b)
{
    const hp_migrate__step_t *x = a, *y = b;
    return (x->id.version > y->id.version) - (x->id.version < y->id.version);
}

static hp_migrate__step_t *hp_migrate__set_find(const hp_migrate__set_t *set, int version)
{
    for (size_t i = 0; i < set->len; i++) {
        if (set->steps[i].id.version == version)
            return &set->steps[i];
    }
    return NULL;
}

/* Adds one parsed file to the set; -1 after printing when it conflicts with another file. */
static int hp_migrate__set_add(hp_migrate__set_t *set, const char *dir, const char *file, const hp_migrate_name_t *id,
                               hp_migrate_file_kind_t kind)
{
    hp_migrate__step_t *step = hp_migrate__set_find(set, id->version);
    if (step == NULL) {
        if (set->len == set->cap) {
            size_t ncap = set->cap == 0 ? 16 : set->cap * 2;
            hp_migrate__step_t *n = realloc(set->steps, ncap * sizeof(*n));
            if (n == NULL) {
                fprintf(stderr, "migrate: out of memory\n");
                return -1;
            }
            set->steps = n;
            set->cap = ncap;
        }
        step = &set->steps[set->len++];
        *step = (hp_migrate__step_t){.id = *id};
    } else if (strcmp(step->id.name, id->name) != 0) {
        fprintf(stderr, "migrate: %s: version %04d is already used by %04d_%s\n", file, id->version, step->id.version,
                step->id.name);
        return -1;
    }
    char **slot = kind == HP_MIGRATE_FILE_UP ? &step->up_path : &step->down_path;
    if (asprintf(slot, "%s/%s", dir, file) < 0) {
        *slot = NULL;
        fprintf(stderr, "migrate: out of memory\n");
        return -1;
    }
    return 0;
}

/* Scans dir into set, sorted by version. -1 after printing on any invalid or conflicting name. */
static int hp_migrate__scan(const char *dir, hp_migrate__set_t *set)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "migrate: cannot open migrations directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        hp_migrate_name_t id;
        hp_migrate_file_kind_t kind = hp_migrate_parse_name(e->d_name, &id);
        if (kind == HP_MIGRATE_FILE_IGNORED)
            continue;
        if (kind == HP_MIGRATE_FILE_INVALID) {
            fprintf(stderr,
                    "migrate: %s/%s: bad migration file name (want NNNN_name.up.sql or NNNN_name.down.sql, NNNN from "
                    "0001, name of [a-z0-9_], at most %d characters)\n",
                    dir, e->d_name, HP_MIGRATE_NAME_MAX);
            rc = -1;
            break;
        }
        rc = hp_migrate__set_add(set, dir, e->d_name, &id, kind);
    }
    closedir(d);
    if (rc != 0)
        return -1;
    qsort(set->steps, set->len, sizeof(*set->steps), hp_migrate__step_cmp);
    for (size_t i = 0; i < set->len; i++) {
        if (set->steps[i].up_path == NULL) {
            fprintf(stderr, "migrate: %s/%04d_%s.down.sql has no matching .up.sql\n", dir, set->steps[i].id.version,
                    set->steps[i].id.name);
            return -1;
        }
    }
    return 0;
}

int hp_migrate_exec(PGconn *conn, const char *sql, const char *who, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok)
        fprintf(stderr, "%s: %s: %s", who, what, PQerrorMessage(conn));
    PQclear(res);
    return ok ? 0 : -1;
}

/* hp_migrate_exec on behalf of `hotplate migrate`. */
static int hp_migrate__exec(PGconn *conn, const char *sql, const char *what)
{
    return hp_migrate_exec(conn, sql, "migrate", what);
}

/* Reads schema_migrations into out (ascending). */
static int hp_migrate__load_applied(PGconn *conn, const hp_migrate__set_t *set, hp_migrate__applied_t *out)
{
    PGresult *res = PQexec(conn, "SELECT version, name FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "migrate: reading schema_migrations: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    out->versions = calloc((size_t)n + 1, sizeof(*out->versions));
    if (out->versions == NULL) {
        PQclear(res);
        fprintf(stderr, "migrate: out of memory\n");
        return -1;
    }
    out->len = (size_t)n;
    for (int i = 0; i < n; i++) {
        out->versions[i] = atoi(PQgetvalue(res, i, 0));
        /* A renamed file is worth a warning, not a refusal: the version is what counts. */
        const hp_migrate__step_t *s = hp_migrate__set_find(set, out->versions[i]);
        if (s != NULL && strcmp(s->id.name, PQgetvalue(res, i, 1)) != 0)
            fprintf(stderr, "migrate: warning: version %04d was applied as \"%s\" but the file is now named \"%s\"\n",
                    out->versions[i], PQgetvalue(res, i, 1), s->id.name);
    }
    PQclear(res);
    return 0;
}

static int hp_migrate__is_applied(const hp_migrate__applied_t *applied, int version)
{
    for (size_t i = 0; i < applied->len; i++) {
        if (applied->versions[i] == version)
            return 1;
    }
    return 0;
}

/* Runs one step (file plus bookkeeping) in its own transaction and prints its line. */
static int hp_migrate__run_step(PGconn *conn, const hp_migrate__step_t *step, int up)
{
    const char *path = up ? step->up_path : step->down_path;
    char *sql = hp_migrate_read_file(path, NULL);
    if (sql == NULL) {
        fprintf(stderr, "migrate: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint64_t start = hp_now_ns();
    char version[16];
    snprintf(version, sizeof(version), "%d", step->id.version);
    const char *params[2] = {version, step->id.name};

    int rc = hp_migrate__exec(conn, "BEGIN", "BEGIN");
    if (rc == 0)
        rc = hp_migrate__exec(conn, sql, path);
    if (rc == 0) {
        PGresult *res = up ? PQexecParams(conn, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
                                          2, NULL, params, NULL, NULL, 0)
                           : PQexecParams(conn, "DELETE FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "migrate: recording version %s: %s", version, PQerrorMessage(conn));
            rc = -1;
        }
        PQclear(res);
    }
    if (rc == 0)
        rc = hp_migrate__exec(conn, "COMMIT", "COMMIT");
    if (rc != 0)
        PQclear(PQexec(conn, "ROLLBACK"));
    free(sql);
    if (rc != 0) {
        fprintf(stderr, "migrate: %s %04d_%s failed; it was rolled back\n", up ? "up" : "down", step->id.version, step->id.name);
        return -1;
    }
    printf("migrate: %-4s %04d_%s (%.0f ms)\n", up ? "up" : "down", step->id.version, step->id.name,
           (double)(hp_now_ns() - start) / 1e6);
    fflush(stdout);
    return 0;
}

/*
 * Checks the plan for going to target and runs it: every applied version above
 * target goes down (newest first), then every unapplied version up to target
 * goes up (oldest first). Nothing runs unless every needed down file exists.
 */
static int hp_migrate__run(PGconn *conn, const hp_migrate__set_t *set, const hp_migrate__applied_t *applied, int target,
                           const char *dir)
{
    for (size_t i = applied->len; i-- > 0;) {
        int v = applied->versions[i];
        if (v <= target)
            break;
        const hp_migrate__step_t *s = hp_migrate__set_find(set, v);
        if (s == NULL) {
            fprintf(stderr, "migrate: version %04d is applied but %s has no files for it\n", v, dir);
            return -1;
        }
        if (s->down_path == NULL) {
            fprintf(stderr, "migrate: cannot go below version %04d: %s/%04d_%s.down.sql is missing\n", v, dir, v, s->id.name);
            return -1;
        }
    }

    int steps = 0;
    for (size_t i = applied->len; i-- > 0;) {
        if (applied->versions[i] <= target)
            break;
        if (hp_migrate__run_step(conn, hp_migrate__set_find(set, applied->versions[i]), 0) != 0)
            return -1;
        steps++;
    }
    for (size_t i = 0; i < set->len; i++) {
        const hp_migrate__step_t *s = &set->steps[i];
        if (s->id.version > target || hp_migrate__is_applied(applied, s->id.version))
            continue;
        if (hp_migrate__run_step(conn, s, 1) != 0)
            return -1;
        steps++;
    }
    if (steps == 0)
        printf("migrate: already at version %d, nothing to do\n", target);
    else
        printf("migrate: now at version %d (%d step%s)\n", target, steps, steps == 1 ? "" : "s");
    return 0;
}

static int hp_migrate__parse_version(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 9999)
        return -1;
    *out = (int)v;
    return 0;
}

static int hp_migrate__usage(void)
{
    fprintf(stderr, "usage: hotplate migrate [--to N] [--dir DIR]\n"
                    "  --to N     go up or down to version N (0 reverts everything); default: the latest\n"
                    "  --dir DIR  migrations directory; default: $HOTPLATE_MIGRATIONS_DIR, else ./migrations\n");
    return 2;
}

int hp_migrate_main(int argc, char **argv)
{
    const char *dir_opt = NULL;
    int target = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--to") == 0 || strcmp(a, "--dir") == 0) {
            if (i + 1 >= argc)
                return hp_migrate__usage();
            val = argv[++i];
        } else if (strncmp(a, "--to=", 5) == 0 || strncmp(a, "--dir=", 6) == 0) {
            val = strchr(a, '=') + 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            hp_migrate__usage();
            return 0;
        } else {
            fprintf(stderr, "migrate: unknown argument %s\n", a);
            return hp_migrate__usage();
        }
        if (strncmp(a, "--to", 4) == 0) {
            if (hp_migrate__parse_version(val, &target) != 0) {
                fprintf(stderr, "migrate: --to wants a version from 0 to 9999, not \"%s\"\n", val);
                return 2;
            }
        } else {
            dir_opt = val;
        }
    }
    const char *dir = hp_migrate_dir(dir_opt);

    hp_migrate__set_t set = {0};
    if (hp_migrate__scan(dir, &set) != 0) {
        hp_migrate__set_free(&set);
        return 1;
    }
    if (target < 0) {
        if (set.len == 0) {
            fprintf(stderr, "migrate: no migrations in %s\n", dir);
            hp_migrate__set_free(&set);
            return 1;
        }
        target = set.steps[set.len - 1].id.version;
    }

    PGconn *conn = hp_migrate_connect("migrate");
    if (conn == NULL) {
        hp_migrate__set_free(&set);
        return 1;
    }
    hp_migrate__applied_t applied = {0};
    int rc = -1;
    /*
     * The lock comes before CREATE TABLE IF NOT EXISTS: two sessions creating
     * the same table at once can both pass the existence check and one then
     * fails on a catalog unique violation.
     */
    if (hp_migrate__exec(conn, "SELECT pg_advisory_lock(" HP_MIGRATE__LOCK_KEY ")", "taking the migration lock") == 0 &&
        hp_migrate__exec(conn,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version integer PRIMARY KEY,"
                         " name text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())",
                         "creating schema_migrations") == 0 &&
        hp_migrate__load_applied(conn, &set, &applied) == 0) {
        if (target != 0 && hp_migrate__set_find(&set, target) == NULL && !hp_migrate__is_applied(&applied, target))
            fprintf(stderr, "migrate: --to %d: %s has no migration %04d\n", target, dir, target);
        else
            rc = hp_migrate__run(conn, &set, &applied, target, dir);
    }
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" HP_MIGRATE__LOCK_KEY ")"));
    PQfinish(conn);
    free(applied.versions);
    hp_migrate__set_free(&set);
    return rc == 0 ? 0 : 1;
}
