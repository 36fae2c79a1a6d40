/*
 * menus: GET /restaurants/{id}/menu with a Redis cache-aside and single
 * flight, and PATCH /restaurants/{id}/menu/items/{item_id} for owners.
 *
 * Cache protocol. hp:menu:{id} holds the rendered menu document (which carries
 * its menu_version) with a TTL; hp:menuver:{id} holds the newest version any
 * writer committed. A reader that missed loads the menu from PostgreSQL and
 * stores it only if its version is not older than hp:menuver (one Lua script,
 * so the check and the write are atomic in Redis). A writer commits, then raises
 * hp:menuver and deletes hp:menu in one script before it answers. Together
 * these close the classic cache-aside race: a reader that loaded the old menu
 * before the update and writes it back after the delete is refused, so a read
 * that follows a successful update never sees the old price.
 *
 * Single flight. A cold popular menu must cost one PostgreSQL load, not one per
 * concurrent reader, so a miss goes through two layers:
 *
 * 1. On one worker thread, misses for the same restaurant join one flight
 *    (services/menu_flight.h). The first becomes the leader and does the work
 *    below; the others follow: they wait, each under its own deadline
 *    (hp__follow_ms; a follower that runs out answers 504 db_timeout), and are
 *    answered with a copy of the leader's result in their own pool. If the
 *    leader's client goes away, the oldest follower is promoted on the next
 *    loop iteration and starts the work again, so followers never hang on a
 *    request that no longer exists.
 * 2. Across threads and replicas, the leader takes a lease in Redis,
 *    hp:menulock:{id} = token with a PX of HP_MENU_LEASE_MS (SET NX semantics;
 *    a Lua script, so that a promoted follower of the same flight, which has the
 *    same token, takes over a lease its flight already holds, and so that a menu
 *    stored since the leader's lookup is returned instead). The winner loads
 *    from PostgreSQL and stores with the version-guarded script, which also
 *    deletes the lease if it still holds it. A loser polls with MGET of the menu
 *    and the lease, backing off on the loop's timers (2 to 64 ms): the menu
 *    appearing ends the wait; the lease gone without a menu (the winner failed,
 *    or its store was refused), or the lease's time passed, makes the loser load
 *    from PostgreSQL itself, so a crashed winner never blocks readers for longer
 *    than the lease.
 *
 * Redis failing is never a 5xx: a failed lookup is counted as a cache error and
 * the request goes on without the cache (it still coalesces on its thread, so
 * PostgreSQL is spared when Redis is down); a failed lease or poll makes the
 * leader load from PostgreSQL (the log line says why). The flag menu_cache=off
 * bypasses all of it, single flight included: it is the baseline the cache is
 * measured against. Counted in the cache probes: loads (menus loaded from
 * PostgreSQL), coalesced (followers answered with another request's load) and
 * lease_waits (leaders that lost the lease and polled).
 */
#include "runtime/params.h"
#include "services/auth.h"
#include "services/handlers.h"
#include "runtime/db.h"
#include "base/flags.h"
#include "base/json.h"
#include "runtime/redis.h"
#include "base/clock.h"
#include "services/menu_flight.h"
#include "services/menu_local.h"
#include "services/menu_patch.h"
#include "services/recent.h"
#include "services/statements.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * How long a lease holds. It only needs to cover a normal load and store (a few
 * milliseconds; hundreds under heavy load); a load that outlives it costs a
 * duplicate load elsewhere, never a wrong menu (the version guard sees to that),
 * while a crashed holder keeps other readers waiting up to this long.
 */
#define HP_MENU_LEASE_MS 1000
/* The losers' poll intervals, in milliseconds: doubling, then the last one repeats until the lease's time is up. */
static const uint64_t hp__poll_ms[] = {2, 4, 8, 16, 32, 64};
#define HP__NUM_POLL (sizeof(hp__poll_ms) / sizeof(hp__poll_ms[0]))

/* KEYS[1] menu key, KEYS[2] version key, KEYS[3] lease key; ARGV[1] version, ARGV[2] document, ARGV[3] TTL in seconds, ARGV[4]
 * lease token. */
static const char hp__lua_store[] = "if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end "
                                    "local v = tonumber(redis.call('GET', KEYS[2]) or '0') "
                                    "if v > tonumber(ARGV[1]) then return 0 end "
                                    "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1";
/* KEYS[1] menu key, KEYS[2] version key; ARGV[1] committed version, ARGV[2] TTL of the version key. */
static const char hp__lua_invalidate[] = "local v = tonumber(redis.call('GET', KEYS[2]) or '0') "
                                         "if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end "
                                         "redis.call('DEL', KEYS[1]) return 1";
/*
 * KEYS[1] lease key, KEYS[2] menu key; ARGV[1] token, ARGV[2] lease in milliseconds. Returns the menu when it is
 * there (a store landed between the caller's lookup and now: loading again would be the duplicate load single
 * flight exists to prevent), else 1 when the caller's flight holds the lease now, 0 when another does.
 */
static const char hp__lua_acquire[] = "local m = redis.call('GET', KEYS[2]) if m then return m end "
                                      "local v = redis.call('GET', KEYS[1]) "
                                      "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
                                      "if v then return 0 end "
                                      "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";
/* KEYS[1] lease key; ARGV[1] token. Gives the lease back after a load that stored nothing. */
static const char hp__lua_release[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1";

/*
 * This thread's single-flight state. Thread-local rather than a field of
 * hp_thread_t so that the cache keeps its state to itself; only the thread's
 * own loop touches it, so it needs no lock. The timeouts are registered with
 * the thread's loop on first use (h2o 2.2.5 keeps one list per duration).
 */
typedef struct st_hp_menu_thread_t {
    int inited;
    hp_menu_flight_table_t flights;
    h2o_timeout_t poll[HP__NUM_POLL]; /* the losers' backoff steps */
    h2o_timeout_t follow;             /* how long a follower waits for its leader */
} hp_menu_thread_t;

static _Thread_local hp_menu_thread_t hp__mt;

typedef struct st_hp_menu_state_t {
    hp_thread_t *thr;
    int use_cache;      /* store into Redis and take part in the lease */
    int use_local;      /* menu_cache=local: keep a copy of what Redis holds on this thread (menu_local.h) */
    uint64_t local_gen; /* the restaurant's generation before the lookup began */
    int lease_polls;    /* polls done while another flight held the lease */
    uint64_t lease_until_ns;
    hp_op_t op;                /* attached while in a flight, so a departure is noticed */
    hp_menu_waiter_t waiter;   /* this request in its flight */
    h2o_timeout_entry_t timer; /* a follower's deadline, a loser's next poll, or a promoted follower's start */
    int timer_stage;           /* the probe stage the timer's wait counts in, or -1 */
    char key[40], verkey[40], lockkey[48], token[80];
} hp_menu_state_t;

static void hp__menu_lead(hp_req_t *r, hp_menu_state_t *st);

static hp_menu_thread_t *hp__mt_get(hp_thread_t *thr)
{
    if (!hp__mt.inited) {
        for (size_t i = 0; i != HP__NUM_POLL; ++i)
            h2o_timeout_init(thr->loop, &hp__mt.poll[i], hp__poll_ms[i]);
        /* A leader's longest legitimate path: the lease command, the whole lease of polling and one more poll, then the load. */
        uint64_t follow_ms = 2 * (uint64_t)thr->cfg->redis_timeout_ms + HP_MENU_LEASE_MS + hp__poll_ms[HP__NUM_POLL - 1] +
                             (uint64_t)thr->cfg->db_timeout_ms;
        h2o_timeout_init(thr->loop, &hp__mt.follow, follow_ms);
        hp__mt.inited = 1;
    }
    return &hp__mt;
}

/* Links the state's timer on timeout, its wait counting in stage (or in none, with -1). */
static void hp__timer_start(hp_req_t *r, hp_menu_state_t *st, h2o_timeout_t *timeout, h2o_timeout_cb cb, int stage)
{
    st->timer.cb = cb;
    st->timer_stage = stage;
    if (stage >= 0)
        hp_probe_wait_begin(&r->probe, (hp_stage_t)stage, &(uint64_t){0});
    h2o_timeout_link(st->thr->loop, timeout, &st->timer);
}

/* Unlinks the timer, if linked, and closes its stage wait (r is NULL once the request is gone). */
static void hp__timer_stop(hp_req_t *r, hp_menu_state_t *st)
{
    if (!h2o_timeout_is_linked(&st->timer))
        return;
    h2o_timeout_unlink(&st->timer);
    if (r != NULL && st->timer_stage >= 0)
        hp_probe_wait_end(&r->probe, (hp_stage_t)st->timer_stage, &(uint64_t){0});
    st->timer_stage = -1;
}

/* Takes the state out of its flight and off the request; afterwards nothing of the flight points at it. */
static void hp__menu_quit(hp_req_t *r, hp_menu_state_t *st)
{
    hp__timer_stop(r, st);
    hp_menu_flight_leave(&st->waiter);
    hp_op_detach(&st->op);
}

/* ---- answering ----------------------------------------------------------------------------- */

/* The outcome of one load, handed from a leader to its followers. */
typedef struct st_hp_menu_result_t {
    int status;      /* 200, 404, or 0 when err is set */
    const char *err; /* a db error for hp_respond_failure */
    h2o_iovec_t body;
} hp_menu_result_t;

static void hp__menu_answer(hp_req_t *r, const hp_menu_result_t *res, int copy)
{
    if (res->status == 200) {
        h2o_iovec_t body = copy ? h2o_strdup(&r->h2o->pool, res->body.base, res->body.len) : res->body;
        hp_add_header(r, "x-cache", r->cache != NULL ? r->cache : "miss");
        hp_respond_raw(r, 200, body);
    } else if (res->status == 404) {
        hp_respond_error(r, HP_E_not_found, "no such restaurant");
    } else {
        hp_respond_failure(r, res->err);
    }
}

/*
 * Ends the leader's flight: every follower is answered with a copy of the
 * result (in its own pool, since the leader's pool goes with the leader's
 * response), then the leader itself. Followers are popped before they are
 * answered, so that nothing they trigger can find them in the flight.
 */
static void hp__menu_finish(hp_req_t *r, hp_menu_state_t *st, const hp_menu_result_t *res)
{
    hp_menu_flight_t *f = st->waiter.flight;
    hp__menu_quit(r, st);
    if (f != NULL) {
        hp_menu_waiter_t *w;
        while ((w = hp_menu_flight_pop(f)) != NULL) {
            hp_menu_state_t *fs = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, waiter, w);
            hp_req_t *fr = fs->op.req;
            hp__menu_quit(fr, fs);
            hp_probe_count(fs->thr, HP_COUNTER_cache_coalesced, 1);
            hp__menu_answer(fr, res, 1);
        }
        hp_menu_flight_end(&hp__mt_get(st->thr)->flights, f);
    }
    hp__menu_answer(r, res, 0);
}

/* ---- a follower ---------------------------------------------------------------------------- */

static void hp__follow_on_deadline(h2o_timeout_entry_t *entry)
{
    hp_menu_state_t *st = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, timer, entry);
    hp_req_t *r = st->op.req;
    hp_probe_wait_end(&r->probe, (hp_stage_t)st->timer_stage, &(uint64_t){0});
    st->timer_stage = -1;
    hp__menu_quit(r, st);
    r->error_reason = "menu load in flight did not finish in time";
    hp_respond_failure(r, hp_err_db_timeout);
}

/* A follower promoted to leader starts on the loop iteration after its leader left. */
static void hp__follow_on_promoted(h2o_timeout_entry_t *entry)
{
    hp_menu_state_t *st = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, timer, entry);
    hp_req_t *r = st->op.req;
    st->timer_stage = -1;
    hp__menu_lead(r, st);
}

/*
 * The request went away while in a flight (called during its pool's disposal;
 * st is readable but the request may not be answered). A follower just leaves.
 * A leader's statement or command in flight was detached with it and will not
 * call back, so the oldest follower is promoted to do the work again; with no
 * follower left the flight ends.
 */
static void hp__menu_on_abandon(hp_op_t *op)
{
    hp_menu_state_t *st = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, op, op);
    hp__timer_stop(NULL, st);
    hp_menu_flight_t *f = st->waiter.flight;
    if (!hp_menu_flight_leave(&st->waiter))
        return;
    hp_menu_waiter_t *w = hp_menu_flight_promote(f);
    if (w == NULL) {
        hp_menu_flight_end(&hp__mt_get(st->thr)->flights, f);
        return;
    }
    hp_menu_state_t *ns = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, waiter, w);
    hp__timer_stop(ns->op.req, ns);
    /* Not from here: this runs inside another request's disposal. */
    hp__timer_start(ns->op.req, ns, &ns->thr->zero_timeout, hp__follow_on_promoted, -1);
}

/* ---- a leader ------------------------------------------------------------------------------ */

static void hp__menu_on_stored(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    /* The response has usually gone by now; a failed store only costs a future miss (and the lease runs out on its own). */
    (void)r, (void)ud, (void)reply, (void)err;
}

static void hp__menu_release(hp_req_t *r, hp_menu_state_t *st)
{
    const char *argv[] = {"EVAL", hp__lua_release, "1", st->lockkey, st->token};
    size_t argvlen[] = {4, sizeof(hp__lua_release) - 1, 1, strlen(st->lockkey), strlen(st->token)};
    hp_redis_command(r, hp__menu_on_stored, NULL, 5, argv, argvlen);
}

/* The menu's body: the two columns of menu_get between fixed text, copied with the lengths libpq already
 * knows. It used to be one hp_pool_printf, whose sizing pass and copy both ran the whole menu (kilobytes of
 * JSON) through vfprintf: 40% of the uncached route's CPU profile (docs/BENCHMARKS.md). */
static h2o_iovec_t hp__menu_body(hp_req_t *r, PGresult *res)
{
    static const char k_id[] = "{\"restaurant_id\":", k_version[] = ",\"version\":", k_categories[] = ",\"categories\":";
    char id[24];
    size_t id_len = (size_t)snprintf(id, sizeof(id), "%lld", (long long)r->path_ids[0]);
    size_t version_len = (size_t)PQgetlength(res, 0, 0), categories_len = (size_t)PQgetlength(res, 0, 1);
    size_t len = sizeof(k_id) - 1 + id_len + sizeof(k_version) - 1 + version_len + sizeof(k_categories) - 1 + categories_len + 1;
    char *body = h2o_mem_alloc_pool(&r->h2o->pool, len + 1), *p = body;
#define HP__PUT(ptr, n) (memcpy(p, (ptr), (n)), p += (n))
    HP__PUT(k_id, sizeof(k_id) - 1);
    HP__PUT(id, id_len);
    HP__PUT(k_version, sizeof(k_version) - 1);
    HP__PUT(PQgetvalue(res, 0, 0), version_len);
    HP__PUT(k_categories, sizeof(k_categories) - 1);
    HP__PUT(PQgetvalue(res, 0, 1), categories_len);
#undef HP__PUT
    *p++ = '}';
    *p = '\0'; /* NUL-terminated like the h2o_strdup copies of the cache paths */
    return h2o_iovec_init(body, len);
}

static void hp__menu_on_db(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_menu_state_t *st = ud;
    hp_menu_result_t out = {.status = 0, .err = err};
    if (err != NULL) {
        if (res != NULL)
            PQclear(res);
    } else if (PQntuples(res) == 0) {
        PQclear(res);
        out.status = 404;
    } else {
        const char *version = PQgetvalue(res, 0, 0);
        out.status = 200;
        out.body = hp__menu_body(r, res);
        const char *body = out.body.base;
        if (st->use_cache) {
            char ttl[16];
            snprintf(ttl, sizeof(ttl), "%d", r->thr->cfg->menu_cache_ttl_s);
            const char *argv[] = {"EVAL", hp__lua_store, "3", st->key, st->verkey, st->lockkey, version, body, ttl, st->token};
            size_t argvlen[] = {4,
                                sizeof(hp__lua_store) - 1,
                                1,
                                strlen(st->key),
                                strlen(st->verkey),
                                strlen(st->lockkey),
                                strlen(version),
                                out.body.len,
                                strlen(ttl),
                                strlen(st->token)};
            hp_redis_command(r, hp__menu_on_stored, NULL, 10, argv, argvlen);
            if (st->use_local)
                hp_menu_local_put(r->path_ids[0], st->local_gen, hp_now_ns(), out.body.base, out.body.len);
        }
        PQclear(res);
    }
    if (out.status != 200 && st->use_cache)
        hp__menu_release(r, st); /* nothing to store: let the losers load rather than wait out the lease */
    hp__menu_finish(r, st, &out);
}

/* The menu's reads are keyed by the negated restaurant id in the read-your-writes table: customers' ids are positive. */
static int64_t hp__menu_replica_key(int64_t rid)
{
    return -rid;
}

static void hp__menu_load(hp_req_t *r, hp_menu_state_t *st)
{
    hp_probe_count(r->thr, HP_COUNTER_cache_loads, 1);
    const char *values[] = {hp_pool_printf(r, "%lld", (long long)r->path_ids[0])};
    hp_db_query_replica(r, hp__menu_replica_key(r->path_ids[0]), HP_STMT_menu_get, values, 1, hp__menu_on_db, st);
}

static void hp__lease_poll(h2o_timeout_entry_t *entry);

static void hp__lease_on_poll(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_menu_state_t *st = ud;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        r->error_reason = "menu cache lease poll failed";
        r->cache = "error";
        st->use_cache = 0;
        hp__menu_load(r, st);
        return;
    }
    redisReply *menu = reply->element[0], *lease = reply->element[1];
    if (menu->type == REDIS_REPLY_STRING) {
        /* Another thread or replica loaded it; the reply is freed when we return, so the body is copied. */
        hp_menu_result_t out = {.status = 200, .body = h2o_strdup(&r->h2o->pool, menu->str, menu->len)};
        hp__menu_finish(r, st, &out);
        return;
    }
    if (lease->type != REDIS_REPLY_STRING || hp_now_ns() >= st->lease_until_ns) {
        hp__menu_load(r, st); /* the holder gave up or ran out of time: load, and store under the version guard */
        return;
    }
    size_t step = (size_t)st->lease_polls < HP__NUM_POLL ? (size_t)st->lease_polls : HP__NUM_POLL - 1;
    ++st->lease_polls;
    hp__timer_start(r, st, &hp__mt_get(st->thr)->poll[step], hp__lease_poll, HP_STAGE_cache);
}

static void hp__lease_poll(h2o_timeout_entry_t *entry)
{
    hp_menu_state_t *st = H2O_STRUCT_FROM_MEMBER(hp_menu_state_t, timer, entry);
    hp_req_t *r = st->op.req;
    hp_probe_wait_end(&r->probe, HP_STAGE_cache, &(uint64_t){0});
    st->timer_stage = -1;
    const char *argv[] = {"MGET", st->key, st->lockkey};
    size_t argvlen[] = {4, strlen(st->key), strlen(st->lockkey)};
    hp_redis_command(r, hp__lease_on_poll, st, 3, argv, argvlen);
}

static void hp__lease_on_acquire(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_menu_state_t *st = ud;
    if (err == NULL && reply->type == REDIS_REPLY_STRING) {
        hp_menu_result_t out = {.status = 200, .body = h2o_strdup(&r->h2o->pool, reply->str, reply->len)};
        hp__menu_finish(r, st, &out);
        return;
    }
    if (err != NULL || reply->type != REDIS_REPLY_INTEGER) {
        r->error_reason = "menu cache lease failed";
        r->cache = "error";
        st->use_cache = 0;
        hp__menu_load(r, st);
        return;
    }
    if (reply->integer == 1) {
        hp__menu_load(r, st);
        return;
    }
    hp_probe_count(r->thr, HP_COUNTER_cache_lease_waits, 1);
    st->lease_polls = 1;
    st->lease_until_ns = hp_now_ns() + HP_MENU_LEASE_MS * 1000000ull;
    hp__timer_start(r, st, &hp__mt_get(st->thr)->poll[0], hp__lease_poll, HP_STAGE_cache);
}

/* The leader's work: without the cache, load; with it, take the lease first. */
static void hp__menu_lead(hp_req_t *r, hp_menu_state_t *st)
{
    if (!st->use_cache) {
        hp__menu_load(r, st);
        return;
    }
    /* The token names this flight (not this request), so a promoted follower inherits the lease. */
    snprintf(st->token, sizeof(st->token), "%d:%d:%016llx:%llu", (int)getpid(), st->thr->index,
             (unsigned long long)st->thr->request_id_seed, (unsigned long long)st->waiter.flight->seq);
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", HP_MENU_LEASE_MS);
    const char *argv[] = {"EVAL", hp__lua_acquire, "2", st->lockkey, st->key, st->token, ms};
    size_t argvlen[] = {4, sizeof(hp__lua_acquire) - 1, 1, strlen(st->lockkey), strlen(st->key), strlen(st->token), strlen(ms)};
    hp_redis_command(r, hp__lease_on_acquire, st, 7, argv, argvlen);
}

/* A miss (or a failed lookup): join this thread's flight for the restaurant, as its leader or a follower. */
static void hp__menu_join(hp_req_t *r, hp_menu_state_t *st)
{
    hp_menu_thread_t *mt = hp__mt_get(r->thr);
    st->op.on_abandon = hp__menu_on_abandon;
    hp_op_attach(r, &st->op);
    if (hp_menu_flight_join(&mt->flights, r->path_ids[0], &st->waiter)) {
        hp__menu_lead(r, st);
        return;
    }
    /* The wait is for a PostgreSQL load, so it counts in the db stage. */
    hp__timer_start(r, st, &mt->follow, hp__follow_on_deadline, HP_STAGE_db);
}

static void hp__menu_on_cache(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_menu_state_t *st = ud;
    if (err == NULL && reply->type == REDIS_REPLY_STRING) {
        r->cache = "hit";
        hp_probe_count(r->thr, HP_COUNTER_cache_hits, 1);
        /*
         * The reply is freed when we return, so the body is a copy: the
         * thread's new local copy when there is one (the response then holds
         * a reference to it, as a local hit's does), else one in the pool.
         */
        uint64_t now = hp_now_ns();
        h2o_iovec_t body;
        if (!(st->use_local && hp_menu_local_put(r->path_ids[0], st->local_gen, now, reply->str, reply->len) &&
              hp_menu_local_get(r->path_ids[0], now, &r->h2o->pool, &body)))
            body = h2o_strdup(&r->h2o->pool, reply->str, reply->len);
        hp_add_header(r, "x-cache", "hit");
        hp_respond_raw(r, 200, body);
        return;
    }
    /* A miss, or Redis failing: PostgreSQL answers either way; only the label differs. */
    r->cache = err == NULL ? "miss" : "error";
    hp_probe_count(r->thr, err != NULL ? HP_COUNTER_cache_errors : HP_COUNTER_cache_misses, 1);
    if (err != NULL)
        st->use_cache = st->use_local = 0;
    hp__menu_join(r, st);
}

void hp_handle_menu_get(hp_req_t *r)
{
    hp_recent_record(r, r->path_ids[0]); /* the recently-viewed list behind GET /trending (services/recent.c) */
    hp_menu_state_t *st = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->thr = r->thr;
    st->timer_stage = -1;
    int mode = hp_flag_get(HP_FLAG_menu_cache);
    st->use_cache = mode != HP_menu_cache_off;
    st->use_local = mode == HP_menu_cache_local;
    if (st->use_local) {
        /* The generation first: a PATCH that lands after this read makes whatever this lookup stores invalid. */
        st->local_gen = hp_menu_local_generation(r->path_ids[0]);
        h2o_iovec_t doc;
        if (hp_menu_local_get(r->path_ids[0], hp_now_ns(), &r->h2o->pool, &doc)) {
            r->cache = "hit";
            hp_probe_count(r->thr, HP_COUNTER_cache_hits, 1);
            hp_probe_count(r->thr, HP_COUNTER_cache_local_hits, 1);
            hp_add_header(r, "x-cache", "hit");
            hp_respond_raw(r, 200, doc); /* the copy itself, held by the pool: no byte of it is copied */
            return;
        }
    }
    snprintf(st->key, sizeof(st->key), "hp:menu:%lld", (long long)r->path_ids[0]);
    snprintf(st->verkey, sizeof(st->verkey), "hp:menuver:%lld", (long long)r->path_ids[0]);
    snprintf(st->lockkey, sizeof(st->lockkey), "hp:menulock:%lld", (long long)r->path_ids[0]);
    if (!st->use_cache) {
        r->cache = "bypass";
        hp__menu_load(r, st);
        return;
    }
    const char *argv[] = {"GET", st->key};
    size_t argvlen[] = {3, strlen(st->key)};
    hp_redis_command(r, hp__menu_on_cache, st, 2, argv, argvlen);
}

/* ---- PATCH --------------------------------------------------------------------------------- */

typedef struct st_hp_patch_state_t {
    const char *values[6];
    char *item_json;
    char *version; /* the menu_version the update committed */
} hp_patch_state_t;

static void hp__patch_on_invalidated(hp_req_t *r, void *ud, redisReply *reply, const char *err)
{
    hp_patch_state_t *st = ud;
    (void)reply;
    if (err != NULL) {
        /* The database is committed; the stale entry lives until its TTL. Say so in the log line. */
        r->cache = "error";
        r->error_reason = "menu cache invalidation failed";
    }
    /*
     * Every thread's copy goes now, after Redis dropped its entry (a lookup
     * that read Redis before that holds the old generation) and before the
     * answer, so no read that follows it sees the old menu in this process.
     */
    hp_menu_local_invalidate(r->path_ids[0]);
    hp_respond_raw(r, 200, h2o_iovec_init(st->item_json, strlen(st->item_json)));
}

static void hp__patch_invalidate(hp_req_t *r, hp_patch_state_t *st);

static void hp__patch_on_lsn(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_patch_state_t *st = ud;
    hp_db_note_commit(r, hp__menu_replica_key(r->path_ids[0]), err == NULL ? res : NULL);
    if (res != NULL)
        PQclear(res);
    hp__patch_invalidate(r, st);
}

static void hp__patch_on_update(hp_req_t *r, void *ud, PGresult *res, const char *err)
{
    hp_patch_state_t *st = ud;
    hp_db_release(r, r->held, err != NULL);
    if (hp_db_missing(r, res, err, "no such item on this restaurant's menu"))
        return;
    st->item_json = hp_pool_printf(r, "%s", PQgetvalue(res, 0, 0));
    st->version = hp_pool_printf(r, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (hp_flag_get(HP_FLAG_replica_reads) == HP_replica_reads_on) {
        /*
         * The update committed at its Sync, so the primary's WAL position
         * now is past its commit: until the standby replayed it, this menu's
         * uncached reads stay on the primary, and a read that follows the
         * update never sees the old price from a lagging standby. One round
         * trip more, on the PATCH only, and only with the flag on.
         */
        hp_db_query(r, HP_STMT_commit_lsn, NULL, 0, hp__patch_on_lsn, st);
        return;
    }
    hp__patch_invalidate(r, st);
}

static void hp__patch_invalidate(hp_req_t *r, hp_patch_state_t *st)
{
    const char *version = st->version;
    char key[40], verkey[40], ttl[16];
    snprintf(key, sizeof(key), "hp:menu:%lld", (long long)r->path_ids[0]);
    snprintf(verkey, sizeof(verkey), "hp:menuver:%lld", (long long)r->path_ids[0]);
    /* The version key must outlive any menu entry a slow reader could still write. */
    snprintf(ttl, sizeof(ttl), "%d", r->thr->cfg->menu_cache_ttl_s * 2 + 60);
    const char *argv[] = {"EVAL", hp__lua_invalidate, "2", key, verkey, version, ttl};
    size_t argvlen[] = {4, sizeof(hp__lua_invalidate) - 1, 1, strlen(key), strlen(verkey), strlen(version), strlen(ttl)};
    hp_redis_command(r, hp__patch_on_invalidated, st, 7, argv, argvlen);
}

static void hp__patch_on_conn(hp_req_t *r, void *ud, hp_pgconn_t *conn, const char *err)
{
    hp_patch_state_t *st = ud;
    if (hp_db_failed(r, NULL, err))
        return;
    hp_db_conn_query(r, conn, HP_STMT_menu_item_patch, st->values, 6, hp__patch_on_update, st);
}

static void hp__patch_authed(hp_req_t *r)
{
    if (r->principal.restaurant_id != r->path_ids[0]) {
        hp_respond_error(r, HP_E_forbidden, "you do not own this restaurant");
        return;
    }
    json_t *doc = hp_body_json(r);
    if (doc == NULL)
        return;
    hp_json_err_t jerr;
    hp_menu_patch_t patch;
    if (hp_menu_patch_from_json(doc, &patch, &jerr) != 0)
        goto Invalid;
    hp_patch_state_t *st = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*st));
    st->values[0] = hp_pool_printf(r, "%lld", (long long)r->path_ids[0]);
    st->values[1] = hp_pool_printf(r, "%lld", (long long)r->path_ids[1]);
    st->values[2] = patch.has_price ? hp_pool_printf(r, "%lld", (long long)patch.price_cents) : NULL;
    st->values[3] = !patch.has_available ? NULL : patch.available ? "true" : "false";
    st->values[4] = patch.stock_given ? "true" : "false";
    st->values[5] = patch.has_stock ? hp_pool_printf(r, "%lld", (long long)patch.stock) : NULL;
    json_decref(doc);
    /* A write goes on a transaction connection: its row lock must never stall the shared read pipeline. */
    hp_db_acquire(r, hp__patch_on_conn, st);
    return;
Invalid:
    json_decref(doc);
    hp_respond_json_err(r, &jerr);
}

void hp_handle_menu_item_patch(hp_req_t *r)
{
    hp_auth(r, HP_AUTH_ANY, hp__patch_authed);
}
