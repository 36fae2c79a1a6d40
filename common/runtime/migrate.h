/*
 * migrate: the `hotplate migrate` command, which moves the database schema
 * up or down to a version by running numbered SQL files.
 *
 * A migration is a pair of files in the migrations directory,
 * NNNN_name.up.sql and NNNN_name.down.sql, where NNNN is a four-digit
 * version above zero. Applied versions are recorded in schema_migrations;
 * each step runs its file and records (or deletes) its version in a single
 * transaction, so a failed step leaves nothing half-applied. A session-level
 * advisory lock serialises concurrent runs (two replicas starting at once).
 *
 * The module also exports the small helpers that the other database CLI
 * command (`hotplate seed`) shares with it: connecting from HOTPLATE_PG_URL,
 * running one statement, resolving the migrations directory and reading a
 * file whole. Both commands
 * are one-shot tools, so they use blocking libpq, never the event loop.
 */
#ifndef HP_MIGRATE_H
#define HP_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

enum {
    HP_MIGRATE_NAME_MAX = 64, /* bytes of the [a-z0-9_]+ part, without the NUL */
};

typedef enum {
    HP_MIGRATE_FILE_IGNORED = 0, /* not a migration (seed.sql, README, dot files) */
    HP_MIGRATE_FILE_UP = 1,
    HP_MIGRATE_FILE_DOWN = 2,
    HP_MIGRATE_FILE_INVALID = -1, /* looks like a migration but is misnamed */
} hp_migrate_file_kind_t;

/* What a migration file name says, as parsed by hp_migrate_parse_name(). */
typedef struct st_hp_migrate_name_t {
    int version;                        /* 1..9999 */
    char name[HP_MIGRATE_NAME_MAX + 1]; /* the part between "NNNN_" and ".up.sql" */
} hp_migrate_name_t;

/**
 * Classifies a directory entry. A name that starts with a digit or ends in
 * ".up.sql" or ".down.sql" claims to be a migration and must then match
 * exactly `[0-9]{4}_[a-z0-9_]+\.(up|down)\.sql` with a version above 0000 and a
 * name part of at most HP_MIGRATE_NAME_MAX bytes; anything else is ignored, so
 * seed.sql can live beside the migrations. Pure: no I/O, no globals.
 * @param file the file name without directory (NUL-terminated)
 * @param out receives the version and name for UP and DOWN (may be NULL)
 * @return the kind of file
 */
hp_migrate_file_kind_t hp_migrate_parse_name(const char *file, hp_migrate_name_t *out);

/**
 * Entry point of `hotplate migrate [--to N] [--dir DIR]`. argv[0] is the
 * subcommand name. Prints one line per applied step on stdout and errors on
 * stderr.
 * @return the process exit status: 0 on success, 1 on failure, 2 on bad usage
 */
int hp_migrate_main(int argc, char **argv);

/**
 * Opens a blocking connection to HOTPLATE_PG_URL with client messages below
 * WARNING suppressed. Prints a message naming `who` and returns NULL when the
 * variable is unset or the connection fails.
 * @return the connection, which the caller closes with PQfinish()
 */
PGconn *hp_migrate_connect(const char *who);

/**
 * Runs one statement whose rows are of no interest on a blocking connection.
 * On failure prints "who: what: " and PostgreSQL's message on stderr.
 * @return 0, or -1 on failure
 */
int hp_migrate_exec(PGconn *conn, const char *sql, const char *who, const char *what);

/**
 * @param opt the --dir argument, or NULL
 * @return opt if set, else $HOTPLATE_MIGRATIONS_DIR if set and non-empty, else "migrations"
 */
const char *hp_migrate_dir(const char *opt);

/**
 * Reads a whole file into a NUL-terminated heap buffer that the caller frees.
 * @param len receives the length without the NUL (may be NULL)
 * @return the buffer, or NULL with errno set
 */
char *hp_migrate_read_file(const char *path, size_t *len);

#endif
