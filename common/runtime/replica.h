/*
 * replica: which connection a standby-eligible read goes to, and the
 * read-your-writes table that keeps a customer's own fresh order on the primary.
 *
 * With the flag replica_reads=on and a standby configured
 * (--pg-replica-url), db.c sends the reads its callers mark as standby-eligible
 * (hp_db_query_replica: the uncached menu and the order history) to a
 * connection on the standby. A standby answers with what it has replayed,
 * and the stack's synchronous_commit = on only waits for the standby's flush,
 * not its replay, so a customer's history read right after their checkout
 * could miss the order it just placed. The checkout therefore notes its
 * commit's WAL position (pg_current_wal_lsn() sent behind the COMMIT in the
 * same batch) under the customer's id here, and a read keyed by that id goes
 * to the primary until the standby's replay position (pg_last_wal_replay_lsn(),
 * polled by each thread on its standby connection) has passed it.
 *
 * The table is shared by every thread, since the checkout and the read that
 * follows it may land on different threads: a fixed array of buckets indexed
 * by a hash of the key, each holding the largest commit position noted in it
 * (an atomic maximum) and a deadline in monotonic nanoseconds for commits
 * whose position is unknown. Two keys that share a bucket only send each
 * other's reads to the primary for a moment longer, which costs a little
 * throughput and never correctness, so the table needs no key column, no
 * lock and no eviction, and its size is fixed.
 *
 * That table is per process. Behind a load balancer the customer's next
 * read may reach another hotplate process, which never saw the commit, so
 * the position also travels with the customer: the checkout's (and the menu
 * PATCH's) response sets the cookie HP_REPLICA_COOKIE to the commit's
 * position, and a standby-eligible read that carries it stays on the primary
 * until this process's view of the standby's replay position has passed it,
 * exactly as a position from the table does. A client that keeps cookies (a
 * browser, nginx in between passes them on untouched) therefore reads its
 * own writes on every replica of the application; one that drops them is
 * back to the per-process guarantee. The cookie is only a position in the
 * WAL, which tells a client nothing it could misuse: a forged large value
 * only keeps that client's own reads on the primary.
 *
 * The parsers and the routing decision are pure functions, for the unit tests
 * and the fuzzer.
 */
#ifndef HP_REPLICA_H
#define HP_REPLICA_H

#include <stddef.h>
#include <stdint.h>

/* Buckets of the read-your-writes table: a power of two; 16 bytes each, so 64 KiB in all. */
#define HP_REPLICA_BUCKETS 4096

/* The cookie that carries a customer's last commit position between replicas, and how long a client keeps it (seconds): far
 * longer than any replay lag a synchronous standby reaches, after which the position is one the standby has long passed. */
#define HP_REPLICA_COOKIE "hp_lsn"
#define HP_REPLICA_COOKIE_MAX_AGE 60
/* The longest pg_lsn text: two halves of 8 hexadecimal digits, the slash and a NUL. */
#define HP_REPLICA_LSN_TEXT 18

/* Where one standby-eligible read goes, and why (each reason is counted). */
typedef enum {
    HP_REPLICA_PRIMARY_OFF,   /* the flag is off or no standby is configured: the read is an ordinary one */
    HP_REPLICA_STANDBY,       /* the standby serves it */
    HP_REPLICA_PRIMARY_DOWN,  /* the standby connection is not ready: a fallback to the primary */
    HP_REPLICA_PRIMARY_FRESH, /* the key committed after the standby's last known replay position */
} hp_replica_route_t;

/* One key's entry as the routing decision reads it. */
typedef struct st_hp_replica_mark_t {
    uint64_t lsn;      /* the largest commit position noted under the key's bucket, 0 for none */
    uint64_t until_ns; /* reads stay on the primary until this monotonic time (a commit of unknown position), 0 for none */
} hp_replica_mark_t;

/**
 * Parses PostgreSQL's text form of a pg_lsn ("16/B374D848": two hexadecimal
 * halves of at most 8 digits each).
 * @return 0 with the position in *out, or -1 when s (len bytes) is not one
 */
int hp_replica_parse_lsn(const char *s, size_t len, uint64_t *out);

/** Writes lsn in pg_lsn's text form ("16/B374D848") into buf. @return buf */
char *hp_replica_format_lsn(uint64_t lsn, char buf[HP_REPLICA_LSN_TEXT]);

/**
 * Finds the cookie HP_REPLICA_COOKIE in one Cookie header's value (len bytes,
 * "a=1; hp_lsn=16/B374D848; b=2", RFC 6265's cookie-string) and parses its
 * position. A value that is not a pg_lsn counts as absent.
 * @return 0 with the position in *out, or -1 when there is none
 */
int hp_replica_cookie_lsn(const char *s, size_t len, uint64_t *out);

/**
 * The routing decision, pure.
 * @param enabled      the flag is on and a standby URL is configured
 * @param standby_ready the thread's standby connection is connected and prepared
 * @param mark         the key's entry (all zero for a read with no key, the menu)
 * @param replay_lsn   the standby's replay position as this thread last read it, 0 when unknown
 * @param now_ns       the monotonic clock
 */
hp_replica_route_t hp_replica_route(int enabled, int standby_ready, const hp_replica_mark_t *mark, uint64_t replay_lsn,
                                    uint64_t now_ns);

/** Notes that key (a customer's id) committed at WAL position lsn: its reads stay on the primary until the standby replayed it. */
void hp_replica_note_lsn(int64_t key, uint64_t lsn);

/** Notes a commit of key whose position is unknown: its reads stay on the primary until until_ns (monotonic). */
void hp_replica_note_until(int64_t key, uint64_t until_ns);

/** @return key's entry; all zero for key 0 (reads with no key). Safe on any thread. */
hp_replica_mark_t hp_replica_mark(int64_t key);

/** Empties the table (tests only). */
void hp_replica_reset(void);

#endif
