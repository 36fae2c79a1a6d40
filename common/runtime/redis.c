/*
 * redis: hiredis async on the h2o evloop (see redis.h).
 *
 * Ownership: hp_redis_t is this thread's; the redisAsyncContext is hiredis's
 * and is freed by hiredis after its disconnect callback. hp_rcmd_t (one per
 * command) is malloc'd here and freed in the reply callback, which hiredis
 * always calls, with a NULL reply when the connection goes away.
 *
 * Through Sentinel (sentinel://host:port[,host:port...]/name): every
 * connection attempt first connects to a Sentinel, asks SENTINEL
 * get-master-addr-by-name, hangs up, and connects to the address it got.
 * So the primary is asked for again whenever the connection is lost (a
 * killed primary, a failover) and whenever the node answers READONLY (a
 * primary that Sentinel demoted to a replica while we stayed connected).
 * A Sentinel that does not answer hands the question to the next one in
 * the list, a second later.
 *
 * Asking again on every lost connection finds the new primary only once
 * Sentinel has promoted it, and a primary that was killed refuses our
 * connections before that, so on its own the reconnect loop would learn of
 * the promotion up to a retry interval (a second) late. Each thread therefore
 * also keeps a second connection to a Sentinel, subscribed to +switch-master
 * (the event Sentinel publishes when it has replaced a primary), as Redis's
 * guidelines for Sentinel clients suggest: the message names the new
 * primary, and the thread drops whatever it was doing to connect there at
 * once. The subscription only speeds the switch up: without it (no Sentinel
 * answers, a message lost) the reconnect loop still finds the primary.
 */
#include "runtime/redis.h"
#include "base/clock.h"
#include "base/log.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * One hiredis connection on the loop: the adapter's state. Each thread has
 * two: the commands' connection (main), and in Sentinel mode the
 * subscription to +switch-master (watch).
 */
typedef struct st_hp__rlink_t {
    struct st_hp_redis_t *rd;
    redisAsyncContext *ac; /* NULL while disconnected */
    h2o_socket_t *sock;
    int connected;
    int want_write, write_notified;
    int in_flush; /* inside hp_redis_flush: a write hiredis could not finish waits for the socket */
    int batched;  /* writes of the connected link wait for hp_redis_flush (main), else for the socket (watch) */
} hp__rlink_t;

typedef struct st_hp_redis_t {
    hp_thread_t *thr;
    hp__rlink_t main;
    h2o_timeout_entry_t retry_entry;
    int down_logged;
    char host[256], path[256];
    int port;
    /* Sentinel mode (num_sentinels > 0): where to ask, and what the last answer said. */
    char sentinel_host[HP_REDIS_MAX_SENTINELS][64];
    int sentinel_port[HP_REDIS_MAX_SENTINELS];
    int num_sentinels, next_sentinel;
    char master_name[64];
    int asking;                      /* rd->main.ac is a Sentinel connection, not the primary */
    int addr_fresh;                  /* host and port came from Sentinel since the last connection to them */
    hp__rlink_t watch;               /* Sentinel mode: subscribed to +switch-master on sentinel_host[watch_sentinel] */
    int watch_sentinel;              /* which Sentinel the subscription is on; the next one after a loss */
    h2o_timeout_entry_t watch_entry; /* the subscription's retry, a second after it was lost */
} hp_redis_t;

typedef struct st_hp_rcmd_t {
    hp_op_t op;
    hp_thread_t *thr;
    uint64_t start_ns;
    hp_redis_cb cb;
    void *ud;
    const char *err;
    h2o_timeout_entry_t timeout;
} hp_rcmd_t;

static void hp__redis_connect(hp_redis_t *rd);
static void hp__redis_watch(hp_redis_t *rd);

/* @return the port written in [p, end), one to five digits from 1 to 65535, or -1 */
static int hp__redis_port(const char *p, const char *end)
{
    if (p == end || end - p > 5)
        return -1;
    int v = 0;
    for (; p != end; ++p) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535 ? v : -1;
}

int hp_redis_parse_url(const char *url, char *host, size_t hostlen, int *port, char *path, size_t pathlen)
{
    host[0] = path[0] = '\0';
    *port = 0;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        if (*p != '/' || strlen(p) >= pathlen)
            return -1;
        strcpy(path, p);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *h = url + 8, *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    const char *hend = colon != NULL ? colon : end;
    if (hend == h || (size_t)(hend - h) >= hostlen)
        return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    int v = colon != NULL ? hp__redis_port(colon + 1, end) : 6379;
    if (v < 0)
        return -1;
    *port = v;
    if (*end == '/' && end[1] != '\0')
        return -1; /* database numbers are not supported: hotplate uses key prefixes */
    return 0;
}

int hp_redis_parse_sentinel_url(const char *url, char hosts[][64], int *ports, int max, int *num, char *name, size_t namelen)
{
    *num = 0;
    if (strncmp(url, "sentinel://", 11) != 0)
        return -1;
    const char *p = url + 11, *slash = strchr(p, '/');
    if (slash == NULL || slash[1] == '\0' || strlen(slash + 1) >= namelen || strchr(slash + 1, '/') != NULL)
        return -1;
    strcpy(name, slash + 1);
    while (p < slash) {
        const char *end = p + strcspn(p, ",/");
        const char *colon = memchr(p, ':', (size_t)(end - p));
        int v = colon != NULL ? hp__redis_port(colon + 1, end) : -1;
        if (*num == max || colon == NULL || colon == p || (size_t)(colon - p) >= 64 || v < 0)
            return -1;
        memcpy(hosts[*num], p, (size_t)(colon - p));
        hosts[*num][colon - p] = '\0';
        ports[(*num)++] = v;
        if (*end == ',' && end + 1 == slash)
            return -1; /* a trailing comma: an empty entry */
        p = *end == ',' ? end + 1 : end;
    }
    return *num > 0 ? 0 : -1;
}

/* ---- the adapter ----------------------------------------------------------- */

static void hp__redis_on_readable(h2o_socket_t *sock, const char *err)
{
    hp__rlink_t *l = sock->data;
    (void)err; /* hiredis finds the error itself when it reads */
    if (l->ac != NULL)
        redisAsyncHandleRead(l->ac);
}

static void hp__redis_on_writable(h2o_socket_t *sock, const char *err)
{
    hp__rlink_t *l = sock->data;
    (void)err;
    l->write_notified = 0;
    if (l->ac != NULL && l->want_write)
        redisAsyncHandleWrite(l->ac);
}

static void hp__ev_add_read(void *p)
{
    hp__rlink_t *l = p;
    h2o_socket_read_start(l->sock, hp__redis_on_readable);
}

static void hp__ev_del_read(void *p)
{
    hp__rlink_t *l = p;
    h2o_socket_read_stop(l->sock);
}

/*
 * hiredis has output. Commands of a connected client wait for the end of the
 * loop's iteration (hp_redis_flush), so that every command the iteration's
 * requests sent goes out in one write, without the two epoll_ctl calls and the
 * extra iteration of waiting for writability. While connecting, and for what
 * a flush could not write, the socket's writability is waited for.
 */
static void hp__ev_add_write(void *p)
{
    hp__rlink_t *l = p;
    l->want_write = 1;
    if ((!l->connected || l->in_flush || !l->batched) && !l->write_notified) {
        l->write_notified = 1;
        h2o_socket_notify_write(l->sock, hp__redis_on_writable);
    }
}

static void hp__ev_del_write(void *p)
{
    /* h2o cannot withdraw a write notification; it fires once and finds nothing wanted. */
    hp__rlink_t *l = p;
    l->want_write = 0;
}

static void hp__ev_cleanup(void *p)
{
    hp__rlink_t *l = p;
    if (l->sock != NULL) {
        h2o_socket_close(l->sock);
        l->sock = NULL;
    }
    l->want_write = l->write_notified = 0;
}

/*
 * Wraps ac, just created, in link l: a dup of its descriptor as an h2o
 * socket, and the adapter's hooks. hiredis calls connected() or lost()
 * through ac->ev.data, which is l.
 * @return 0, or -1 (ac freed) when the descriptor cannot be duplicated
 */
static int hp__rlink_attach(hp__rlink_t *l, redisAsyncContext *ac, redisConnectCallback *connected, redisDisconnectCallback *lost)
{
    int fd = dup(ac->c.fd);
    if (fd < 0) {
        redisAsyncFree(ac);
        return -1;
    }
    l->ac = ac;
    l->connected = 0;
    l->sock = h2o_evloop_socket_create(l->rd->thr->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    ac->ev.data = l;
    ac->ev.addRead = hp__ev_add_read;
    ac->ev.delRead = hp__ev_del_read;
    ac->ev.addWrite = hp__ev_add_write;
    ac->ev.delWrite = hp__ev_del_write;
    ac->ev.cleanup = hp__ev_cleanup;
    redisAsyncSetConnectCallback(ac, connected);
    redisAsyncSetDisconnectCallback(ac, lost);
    /* A non-blocking connect completes when the socket becomes writable. */
    hp__ev_add_write(l);
    return 0;
}

/* Frees the link's connection, if any: hiredis calls every pending reply callback with NULL. */
static void hp__rlink_free(hp__rlink_t *l)
{
    if (l->ac != NULL) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
    }
}

/* ---- connection life ------------------------------------------------------- */

static void hp__redis_on_retry(h2o_timeout_entry_t *entry)
{
    hp_redis_t *rd = H2O_STRUCT_FROM_MEMBER(hp_redis_t, retry_entry, entry);
    if (!atomic_load(&rd->thr->stopping) && rd->main.ac == NULL)
        hp__redis_connect(rd);
}

static void hp__redis_schedule_retry(hp_redis_t *rd)
{
    if (atomic_load(&rd->thr->stopping) || h2o_timeout_is_linked(&rd->retry_entry))
        return;
    rd->retry_entry.cb = hp__redis_on_retry;
    h2o_timeout_link(rd->thr->loop, &rd->thr->retry_timeout, &rd->retry_entry);
}

static void hp__redis_on_connect_now(h2o_timeout_entry_t *entry)
{
    hp__redis_on_retry(entry);
}

/* Connects again on the next loop iteration instead of a second later: the primary's address is known and fresh. */
static void hp__redis_connect_soon(hp_redis_t *rd)
{
    if (atomic_load(&rd->thr->stopping))
        return;
    if (h2o_timeout_is_linked(&rd->retry_entry))
        h2o_timeout_unlink(&rd->retry_entry);
    hp_thread_defer(rd->thr, &rd->retry_entry, hp__redis_on_connect_now);
}

static void hp__redis_lost(hp_redis_t *rd, const char *why)
{
    int was_asking = rd->asking;
    rd->asking = 0;
    rd->main.connected = 0;
    rd->main.ac = NULL; /* hiredis frees it after this callback */
    if (was_asking && !rd->addr_fresh)
        rd->next_sentinel = (rd->next_sentinel + 1) % rd->num_sentinels;
    /*
     * An address fresh from Sentinel (its answer just now, or a
     * +switch-master message that ended this connection) is tried at once;
     * anything else waits for the retry.
     */
    if (rd->addr_fresh) {
        if (!was_asking)
            atomic_store(&rd->thr->redis_ready, 0);
        hp__redis_connect_soon(rd);
        return;
    }
    if (!rd->down_logged) {
        char msg[256];
        hp_log_escape(msg, sizeof(msg), why != NULL ? why : "");
        hp_log(HP_LOG_WARN, "redis connection down (thread %d): %s", rd->thr->index, msg);
        rd->down_logged = 1;
    }
    atomic_store(&rd->thr->redis_ready, 0);
    hp__redis_schedule_retry(rd);
}

/* Sentinel's answer: [host, port] of the primary, or nil when it knows no such name. */
static void hp__redis_on_master_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
    hp_redis_t *rd = privdata;
    redisReply *rep = reply;
    if (rep == NULL)
        return; /* the connection is going away; the disconnect callback moves on */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < sizeof(rd->host)) {
        int port = atoi(rep->element[1]->str);
        if (strcmp(rd->host, rep->element[0]->str) != 0 || rd->port != port)
            hp_log(HP_LOG_INFO, "redis primary %s is %s:%d per sentinel %s:%d (thread %d)", rd->master_name, rep->element[0]->str,
                   port, rd->sentinel_host[rd->next_sentinel], rd->sentinel_port[rd->next_sentinel], rd->thr->index);
        memcpy(rd->host, rep->element[0]->str, rep->element[0]->len + 1);
        rd->port = port;
        rd->addr_fresh = 1;
    }
    redisAsyncDisconnect(ac);
}

static void hp__redis_on_connect(const redisAsyncContext *ac, int status)
{
    hp_redis_t *rd = ((hp__rlink_t *)ac->ev.data)->rd;
    if (status != REDIS_OK) {
        hp__redis_lost(rd, ac->errstr);
        return;
    }
    if (rd->asking) {
        redisAsyncCommand((redisAsyncContext *)ac, hp__redis_on_master_addr, rd, "SENTINEL get-master-addr-by-name %s",
                          rd->master_name);
        return;
    }
    rd->main.connected = 1;
    atomic_store(&rd->thr->redis_ready, 1);
    rd->down_logged = 0;
    hp_log(HP_LOG_INFO, "redis connection ready (thread %d)", rd->thr->index);
}

static void hp__redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    hp_redis_t *rd = ((hp__rlink_t *)ac->ev.data)->rd;
    (void)status;
    if (rd->main.ac == ac)
        hp__redis_lost(rd, ac->errstr);
}

static void hp__redis_connect(hp_redis_t *rd)
{
    redisAsyncContext *ac;
    rd->asking = rd->num_sentinels > 0 && !rd->addr_fresh;
    if (rd->asking)
        ac = redisAsyncConnect(rd->sentinel_host[rd->next_sentinel], rd->sentinel_port[rd->next_sentinel]);
    else
        ac = rd->path[0] != '\0' ? redisAsyncConnectUnix(rd->path) : redisAsyncConnect(rd->host, rd->port);
    rd->addr_fresh = 0; /* a lost connection asks Sentinel again */
    if (ac == NULL || ac->err) {
        hp__redis_lost(rd, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return;
    }
    if (hp__rlink_attach(&rd->main, ac, hp__redis_on_connect, hp__redis_on_disconnect) != 0)
        hp__redis_lost(rd, "dup failed");
}

/* ---- the +switch-master subscription (Sentinel mode) ----------------------- */

int hp_redis_parse_switch_master(const char *msg, size_t len, const char *name, char *host, size_t hostlen, int *port)
{
    /* "<name> <old-ip> <old-port> <new-ip> <new-port>": five words, one space apart. */
    const char *w[5], *end = msg + len;
    size_t wl[5];
    const char *p = msg;
    for (int i = 0; i != 5; ++i) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *we = i == 4 ? end : sp;
        if (we == NULL || we == p || (i == 4 && sp != NULL))
            return -1;
        w[i] = p, wl[i] = (size_t)(we - p);
        p = we + (i != 4);
    }
    if (wl[0] != strlen(name) || memcmp(w[0], name, wl[0]) != 0 || wl[3] >= hostlen)
        return -1;
    int v = hp__redis_port(w[4], w[4] + wl[4]);
    if (v < 0 || hp__redis_port(w[2], w[2] + wl[2]) < 0)
        return -1;
    memcpy(host, w[3], wl[3]);
    host[wl[3]] = '\0';
    *port = v;
    return 0;
}

static void hp__watch_on_retry(h2o_timeout_entry_t *entry)
{
    hp_redis_t *rd = H2O_STRUCT_FROM_MEMBER(hp_redis_t, watch_entry, entry);
    if (!atomic_load(&rd->thr->stopping) && rd->watch.ac == NULL)
        hp__redis_watch(rd);
}

/* The subscription is gone: subscribe again on the next Sentinel, a second later. */
static void hp__watch_lost(hp_redis_t *rd)
{
    rd->watch.ac = NULL;
    rd->watch.connected = 0;
    rd->watch_sentinel = (rd->watch_sentinel + 1) % rd->num_sentinels;
    if (atomic_load(&rd->thr->stopping) || h2o_timeout_is_linked(&rd->watch_entry))
        return;
    rd->watch_entry.cb = hp__watch_on_retry;
    h2o_timeout_link(rd->thr->loop, &rd->thr->retry_timeout, &rd->watch_entry);
}

/*
 * One reply of the subscription: SUBSCRIBE's confirmation, then a
 * ["message", "+switch-master", "<name> <old> <port> <new> <port>"] per
 * failover of any primary the Sentinel watches. Ours moves the commands'
 * connection to the new primary at once.
 */
static void hp__watch_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    hp_redis_t *rd = privdata;
    redisReply *rep = reply;
    (void)ac;
    char host[sizeof(rd->host)];
    int port;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING ||
        hp_redis_parse_switch_master(rep->element[2]->str, rep->element[2]->len, rd->master_name, host, sizeof(host), &port) != 0)
        return;
    hp_probe_count(rd->thr, HP_COUNTER_redis_switches, 1);
    int moved = strcmp(rd->host, host) != 0 || rd->port != port;
    int there = !moved && rd->main.connected && !rd->asking;
    /*
     * Logged either way, so that every failover a thread heard of is in the
     * log: when the old primary's death is seen first, the reconnect loop can
     * ask a Sentinel that has already switched and be on the new primary
     * before the message arrives.
     */
    hp_log(HP_LOG_INFO, "redis primary %s is %s:%d per +switch-master from sentinel %s:%d (thread %d)%s", rd->master_name, host,
           port, rd->sentinel_host[rd->watch_sentinel], rd->sentinel_port[rd->watch_sentinel], rd->thr->index,
           there ? ", where the reconnect loop already is" : "");
    if (there)
        return;
    memcpy(rd->host, host, strlen(host) + 1);
    rd->port = port;
    rd->addr_fresh = 1;
    if (rd->main.ac == NULL)
        hp__redis_connect_soon(rd); /* waiting out the retry: go now */
    else if (rd->main.connected && !rd->asking && moved)
        redisAsyncDisconnect(rd->main.ac); /* connected to the old primary: its loss reconnects to the new one at once */
    /*
     * Otherwise the connection is still being made, and is left to end by
     * itself: hiredis calls no disconnect callback for a context that never
     * connected, so one cannot be hung up on. Refused (the old primary is
     * dead), its loss goes to the fresh address at once; accepted by a demoted
     * primary, the first READONLY does. A Sentinel being asked names the new
     * primary itself.
     */
}

static void hp__watch_on_connect(const redisAsyncContext *ac, int status)
{
    hp_redis_t *rd = ((hp__rlink_t *)ac->ev.data)->rd;
    if (status != REDIS_OK) {
        hp__watch_lost(rd);
        return;
    }
    rd->watch.connected = 1;
    redisAsyncCommand((redisAsyncContext *)ac, hp__watch_on_message, rd, "SUBSCRIBE +switch-master");
}

static void hp__watch_on_disconnect(const redisAsyncContext *ac, int status)
{
    hp_redis_t *rd = ((hp__rlink_t *)ac->ev.data)->rd;
    (void)status;
    if (rd->watch.ac == ac)
        hp__watch_lost(rd);
}

static void hp__redis_watch(hp_redis_t *rd)
{
    redisAsyncContext *ac = redisAsyncConnect(rd->sentinel_host[rd->watch_sentinel], rd->sentinel_port[rd->watch_sentinel]);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        hp__watch_lost(rd);
        return;
    }
    if (hp__rlink_attach(&rd->watch, ac, hp__watch_on_connect, hp__watch_on_disconnect) != 0)
        hp__watch_lost(rd);
}

int hp_redis_thread_init(hp_thread_t *thr)
{
    hp_redis_t *rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return -1;
    rd->thr = thr;
    rd->main.rd = rd->watch.rd = rd;
    rd->main.batched = 1;
    if (strncmp(thr->cfg->redis_url, "sentinel://", 11) == 0) {
        if (hp_redis_parse_sentinel_url(thr->cfg->redis_url, rd->sentinel_host, rd->sentinel_port, HP_REDIS_MAX_SENTINELS,
                                        &rd->num_sentinels, rd->master_name, sizeof(rd->master_name)) != 0) {
            free(rd);
            return -1;
        }
    } else if (hp_redis_parse_url(thr->cfg->redis_url, rd->host, sizeof(rd->host), &rd->port, rd->path, sizeof(rd->path)) != 0) {
        free(rd);
        return -1;
    }
    thr->redis = rd;
    hp__redis_connect(rd);
    if (rd->num_sentinels > 0)
        hp__redis_watch(rd);
    return 0;
}

void hp_redis_thread_dispose(hp_thread_t *thr)
{
    hp_redis_t *rd = thr->redis;
    if (rd == NULL)
        return;
    if (h2o_timeout_is_linked(&rd->retry_entry))
        h2o_timeout_unlink(&rd->retry_entry);
    if (h2o_timeout_is_linked(&rd->watch_entry))
        h2o_timeout_unlink(&rd->watch_entry);
    hp__rlink_free(&rd->main);
    hp__rlink_free(&rd->watch);
    /* Freeing may have called the lost callbacks, which can link the retries again. */
    if (h2o_timeout_is_linked(&rd->retry_entry))
        h2o_timeout_unlink(&rd->retry_entry);
    if (h2o_timeout_is_linked(&rd->watch_entry))
        h2o_timeout_unlink(&rd->watch_entry);
    free(rd);
    thr->redis = NULL;
}

void hp_redis_flush(hp_thread_t *thr)
{
    hp_redis_t *rd = thr->redis;
    if (rd == NULL)
        return;
    hp__rlink_t *l = &rd->main;
    if (l->ac == NULL || !l->connected || !l->want_write || l->write_notified)
        return;
    l->in_flush = 1;
    redisAsyncHandleWrite(l->ac); /* a failed write disconnects: the callback clears l->ac, and rd stays ours */
    l->in_flush = 0;
}

int hp_redis_ready(hp_thread_t *thr)
{
    return thr->redis != NULL && thr->redis->main.connected;
}

/* ---- commands -------------------------------------------------------------- */

/* Hands the reply to the request, if it still waits; now as in hp_now_ns_once. */
static void hp__rcmd_deliver(hp_rcmd_t *c, redisReply *reply, const char *err, uint64_t *now)
{
    hp_req_t *r = c->op.req;
    hp_op_detach(&c->op);
    if (r != NULL && c->cb != NULL)
        hp_probe_wait_end(&r->probe, HP_STAGE_cache, now);
    if (r != NULL && c->cb != NULL) {
        hp_redis_cb cb = c->cb;
        c->cb = NULL;
        cb(r, c->ud, reply, err);
    }
}

static void hp__rcmd_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    hp_rcmd_t *c = privdata;
    hp_redis_t *rd = c->thr->redis;
    redisReply *r0 = reply;
    /* A primary demoted under us: hang up, and the reconnect asks Sentinel where the primary is now. */
    if (r0 != NULL && r0->type == REDIS_REPLY_ERROR && strncmp(r0->str, "READONLY", 8) == 0 && rd != NULL &&
        rd->num_sentinels > 0 && rd->main.ac == ac)
        redisAsyncDisconnect(ac);
    if (h2o_timeout_is_linked(&c->timeout))
        h2o_timeout_unlink(&c->timeout);
    redisReply *rep = reply;
    uint64_t now = 0, ns = hp_probe_clock_once(&now) - c->start_ns;
    hp_probe_observe(c->thr, HP_HIST_cache_latency, ns, now);
    const char *err = rep == NULL ? hp_err_redis_unavailable : rep->type == REDIS_REPLY_ERROR ? hp_err_redis_error : NULL;
    hp__rcmd_deliver(c, err == hp_err_redis_unavailable ? NULL : rep, err, &now);
    free(c);
}

/* The deadline: the caller moves on; the entry waits for hiredis to hand back its reply. */
static void hp__rcmd_on_timeout(h2o_timeout_entry_t *entry)
{
    hp_rcmd_t *c = H2O_STRUCT_FROM_MEMBER(hp_rcmd_t, timeout, entry);
    hp__rcmd_deliver(c, NULL, hp_err_cache_timeout, &(uint64_t){0});
}

static void hp__rcmd_on_deferred(h2o_timeout_entry_t *entry)
{
    hp_rcmd_t *c = H2O_STRUCT_FROM_MEMBER(hp_rcmd_t, timeout, entry);
    hp__rcmd_deliver(c, NULL, c->err, &(uint64_t){0});
    free(c);
}

void hp_redis_command(hp_req_t *r, hp_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen)
{
    hp_redis_t *rd = r->thr->redis;
    hp_rcmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->cb = cb;
    c->ud = ud;
    c->thr = r->thr;
    c->start_ns = hp_probe_timed_wait_begin(&r->probe, HP_STAGE_cache);
    hp_op_attach(r, &c->op);
    if (rd == NULL || !rd->main.connected || rd->main.ac == NULL ||
        redisAsyncCommandArgv(rd->main.ac, hp__rcmd_on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        c->err = hp_err_redis_unavailable;
        hp_thread_defer(r->thr, &c->timeout, hp__rcmd_on_deferred);
        return;
    }
    c->timeout.cb = hp__rcmd_on_timeout;
    h2o_timeout_link(r->thr->loop, &r->thr->redis_timeout, &c->timeout);
}
