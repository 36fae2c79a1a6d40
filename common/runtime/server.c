/*
 * server: listeners, worker threads, dispatch and shutdown (see server.h).
 */
#include "runtime/server.h"
#include "runtime/admission.h"
#include "runtime/db.h"
#include "runtime/http.h"
#include "base/clock.h"
#include "base/log.h"
#include "runtime/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* h2o buffers bodies up to this size before the handler runs; hotplate itself refuses anything over HP_MAX_BODY with a JSON 413. */
#define HP_H2O_MAX_ENTITY (1024 * 1024)

static h2o_globalconf_t hp__h2o_config;
static hp_thread_t *hp__threads; /* cfg->threads workers, then the admin thread */
static size_t hp__num_workers;
static const hp_server_spec_t *hp__spec;

hp_thread_t *hp_server_workers(size_t *num)
{
    *num = hp__num_workers;
    return hp__threads;
}

hp_thread_t *hp_server_admin_thread(void)
{
    return hp__threads != NULL ? &hp__threads[hp__num_workers] : NULL;
}

void hp_server_readiness(int *pg, int *redis)
{
    *pg = *redis = hp__threads != NULL;
    for (size_t i = 0; hp__threads != NULL && i != hp__num_workers + 1; ++i) {
        hp_thread_t *thr = &hp__threads[i];
        *pg &= atomic_load(&thr->pg_reader_ready) && atomic_load(&thr->pg_txn_ready) > 0;
        *redis &= atomic_load(&thr->redis_ready) != 0;
    }
}

/* The single entry point of every API request. */
static int hp__on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    hp_thread_t *thr = hp_thread_from_ctx(req->conn->ctx);
    hp_req_t *r = hp_req_create(thr, req);
    size_t path_len = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
    hp_route_match_t m;

    if (!hp_admission_head_ok(r))
        return 0;
    switch (hp_router_match(thr->routes, thr->num_routes, req->input.method.base, req->input.method.len, req->input.path.base,
                            path_len, &m)) {
    case HP_ROUTE_FOUND:
        break;
    case HP_ROUTE_BAD_ID:
        r->route = m.route;
        hp_respond_error(r, HP_E_bad_param, "a path id must be a positive integer below 2^53");
        return 0;
    case HP_ROUTE_METHOD_NOT_ALLOWED:
        hp_add_header(r, "allow", h2o_strdup(&req->pool, m.allow, strlen(m.allow)).base);
        hp_respond_error(r, HP_E_method_not_allowed, NULL);
        return 0;
    default:
        hp_respond_error(r, HP_E_not_found, "no such route");
        return 0;
    }
    r->route = m.route;
    memcpy(r->path_ids, m.ids, sizeof(r->path_ids));
    hp_probe_request_start(thr, r->route, &r->probe, r->request_id);
    if (req->entity.base != NULL && req->entity.len > HP_MAX_BODY) {
        hp_respond_error(r, HP_E_body_too_large, NULL);
        return 0;
    }
    if (atomic_load_explicit(&thr->stopping, memory_order_relaxed)) {
        hp_add_header(r, "retry-after", "1");
        hp_respond_error(r, HP_E_shutting_down, "the server is shutting down");
        return 0;
    }
    if (!hp_admission_admit(r) || !hp_admission_token_ok(r))
        return 0;
    m.route->handler(r);
    return 0;
}

static void hp__on_accept(h2o_socket_t *listener, const char *err)
{
    hp_thread_t *thr = listener->data;
    if (err != NULL)
        return;
    /* Accept a bounded batch per wake-up so one busy listener cannot starve the loop. */
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        hp_probe_count(thr, HP_COUNTER_accepted, 1);
        h2o_accept(&thr->accept_ctx, sock);
    }
}

static int hp__listen(const char *host, uint16_t port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "hotplate: a listen host must be an IPv4 address, got %s\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(fd, 1024) != 0) {
        fprintf(stderr, "hotplate: cannot listen on %s:%u: %s\n", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

#define HP_LAG_TICK_MS 100

/*
 * Event-loop lag: a timer asks to run every 100 ms; how much later than that it
 * actually runs is time the loop spent busy (or blocked) elsewhere.
 */
static void hp__lag_tick(h2o_timeout_entry_t *entry)
{
    hp_thread_t *thr = H2O_STRUCT_FROM_MEMBER(hp_thread_t, lag_entry, entry);
    uint64_t now = hp_now_ns(), due = thr->lag_scheduled_ns + HP_LAG_TICK_MS * 1000000ull;
    hp_probe_observe(thr, HP_HIST_loop_lag, now > due ? now - due : 0, now);
    if (atomic_load(&thr->stopping))
        return;
    thr->lag_scheduled_ns = now;
    h2o_timeout_link(thr->loop, &thr->lag_timeout, &thr->lag_entry);
}

/*
 * One turn of the thread's loop, then what the turn's requests left to send:
 * every connection's batch of statements with its Sync, the Redis commands,
 * and the log lines, one write each. Sending at the end of the turn rather
 * than per request is what makes a loop that answered thirty requests cost a
 * handful of system calls rather than a hundred.
 */
static void hp__turn(hp_thread_t *thr, int32_t max_wait_ms)
{
    h2o_evloop_run(thr->loop, max_wait_ms);
    hp_db_flush(thr);
    hp_redis_flush(thr);
    hp_log_flush();
    uint64_t dropped = hp_log_take_dropped();
    if (dropped != 0)
        hp_probe_count(thr, HP_COUNTER_log_dropped, dropped);
}

static void *hp__thread_main(void *arg)
{
    hp_thread_t *thr = arg;
    const hp_config_t *cfg = thr->cfg;

    hp_log_buffer_start();
    if (getrandom(&thr->request_id_seed, sizeof(thr->request_id_seed), 0) != (ssize_t)sizeof(thr->request_id_seed))
        thr->request_id_seed = hp_now_ns() ^ ((uint64_t)thr->index << 56);
    thr->loop = h2o_evloop_create();
    h2o_context_init(&thr->ctx, thr->loop, &hp__h2o_config);
    thr->accept_ctx.ctx = &thr->ctx;
    thr->accept_ctx.hosts = hp__h2o_config.hosts;
    h2o_timeout_init(thr->loop, &thr->zero_timeout, 0);
    h2o_timeout_init(thr->loop, &thr->retry_timeout, 1000);
    h2o_timeout_init(thr->loop, &thr->db_timeout, (uint64_t)cfg->db_timeout_ms);
    h2o_timeout_init(thr->loop, &thr->pool_timeout, (uint64_t)cfg->pool_timeout_ms);
    h2o_timeout_init(thr->loop, &thr->redis_timeout, (uint64_t)cfg->redis_timeout_ms);
    h2o_timeout_init(thr->loop, &thr->payment_timeout, (uint64_t)cfg->payment_timeout_ms);
    h2o_timeout_init(thr->loop, &thr->lag_timeout, HP_LAG_TICK_MS);
    if ((thr->probes = hp_probes_new()) == NULL) {
        hp_log(HP_LOG_ERROR, "thread %d: out of memory for its probes", thr->index);
        exit(1);
    }
    thr->lag_entry.cb = hp__lag_tick;
    thr->lag_scheduled_ns = hp_now_ns();
    h2o_timeout_link(thr->loop, &thr->lag_timeout, &thr->lag_entry);

    if (hp_db_thread_init(thr) != 0 || hp_redis_thread_init(thr) != 0) {
        hp_log(HP_LOG_ERROR, "thread %d: cannot initialize its clients", thr->index);
        exit(1);
    }
    hp_hook_where_t mine = thr->is_admin ? HP_HOOK_ADMIN : HP_HOOK_WORKERS;
    for (size_t i = 0; i != hp__spec->num_hooks; ++i) {
        const hp_thread_hook_t *h = &hp__spec->hooks[i];
        if ((h->where & mine) != 0 && h->init != NULL && h->init(thr) != 0) {
            hp_log(HP_LOG_ERROR, "thread %d: cannot start %s", thr->index, h->name);
            exit(1);
        }
    }
    thr->listener = h2o_evloop_socket_create(thr->loop, thr->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    thr->listener->data = thr;
    h2o_socket_read_start(thr->listener, hp__on_accept);

    /* Serve until told to stop; the 100 ms wake-up bounds how late the stop flag is seen. */
    while (!atomic_load(&thr->stopping))
        hp__turn(thr, 100);

    /* Stop accepting, close idle keep-alive connections, and let in-flight requests finish. */
    if (h2o_timeout_is_linked(&thr->lag_entry))
        h2o_timeout_unlink(&thr->lag_entry);
    h2o_socket_read_stop(thr->listener);
    h2o_socket_close(thr->listener);
    thr->listener = NULL;
    h2o_context_request_shutdown(&thr->ctx);
    uint64_t deadline = h2o_now(thr->loop) + (uint64_t)cfg->shutdown_grace_ms;
    while (atomic_load(&thr->inflight) != 0 && h2o_now(thr->loop) < deadline)
        hp__turn(thr, 10);
    if (atomic_load(&thr->inflight) != 0)
        hp_log(HP_LOG_WARN, "thread %d: %llu requests still in flight after the grace period", thr->index,
               (unsigned long long)atomic_load(&thr->inflight));
    /* Give the last responses a few iterations to flush before the connections close. */
    for (int i = 0; i != 10; ++i)
        hp__turn(thr, 1);

    /* Hooks that act on the loop (timers) stop first; every hook's state is freed once the clients are gone. */
    hp_db_thread_dispose(thr);
    hp_redis_thread_dispose(thr);
    for (int i = 0; i != 10; ++i)
        hp__turn(thr, 0); /* lets h2o close the sockets it was told to close */
    for (size_t i = hp__spec->num_hooks; i-- != 0;) {
        const hp_thread_hook_t *h = &hp__spec->hooks[i];
        if ((h->where & mine) != 0 && h->dispose != NULL)
            h->dispose(thr);
    }
    /*
     * The h2o context and loop are left to process exit: libh2o 2.2.5 can only
     * destroy a loop whose timeouts are all empty, and it has no call that
     * closes the client connections a context still has open (idle keep-alive
     * ones wait on h2o's own timers). tests/lsan.supp names these roots so
     * LeakSanitizer keeps checking everything hotplate itself allocates.
     */
    hp_log_buffer_stop(); /* the last lines of a clean shutdown are written, not lost */
    return NULL;
}

int hp_server_run(const hp_config_t *cfg, const hp_server_spec_t *spec)
{
    hp__spec = spec;
    h2o_config_init(&hp__h2o_config);
    hp__h2o_config.max_request_entity_size = HP_H2O_MAX_ENTITY;
    /*
     * Slow clients: libh2o 2.2.5 arms http1.req_timeout when it starts waiting
     * for a request and does not rearm it as bytes trickle in, so it bounds
     * the whole head and body of a request, and the idle time between
     * keep-alive requests. A slowloris client (a header line every few
     * seconds, or a body sent a byte at a time) is therefore closed after this
     * long however it paces itself, and holds nothing but its socket until
     * then: no request exists and no handler runs before the request is
     * complete. tests/faults/test_slow_clients.py checks both.
     */
    hp__h2o_config.http1.req_timeout = (uint64_t)cfg->header_timeout_ms;
    /*
     * No server name here: libh2o 2.2.5 writes a configured name with its own
     * sprintf("Server: %s\r\n") on every response, which callgrind put at
     * several hundred instructions a request. runtime/http.c adds the same
     * header to each response as a constant instead.
     */
    hp__h2o_config.server_name = h2o_iovec_init(NULL, 0);
    h2o_hostconf_t *host = h2o_config_register_host(&hp__h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = hp__on_req;

    /* Workers inherit a mask with the shutdown signals blocked; only this thread takes them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The loops hand their log lines to the log's writer thread, which inherits the mask above. */
    if (hp_log_writer_start() != 0)
        hp_log(HP_LOG_WARN, "cannot start the log writer thread: the loops write their log lines themselves");

    /* Workers first, then the admin thread: one loop each, nothing shared on the request path. */
    int total = cfg->threads + 1;
    hp_thread_t *threads = calloc((size_t)total, sizeof(*threads));
    if (threads == NULL)
        return -1;
    for (int i = 0; i != total; ++i) {
        hp_thread_t *thr = &threads[i];
        thr->index = i;
        thr->cfg = cfg;
        thr->is_admin = i == cfg->threads;
        thr->routes = thr->is_admin ? spec->admin_routes : spec->routes;
        thr->num_routes = thr->is_admin ? spec->num_admin_routes : spec->num_routes;
        /* The admin thread runs EXPLAIN and the like one at a time; one transaction connection is plenty. */
        thr->db_pool_size = thr->is_admin ? 1 : cfg->db_pool_size;
        thr->db_readers = thr->is_admin ? 1 : cfg->db_readers;
        /* Bind every listener before starting any thread, so a busy port fails startup cleanly. */
        thr->listen_fd =
            thr->is_admin ? hp__listen(cfg->admin_host, cfg->admin_port) : hp__listen(cfg->listen_host, cfg->listen_port);
        if (thr->listen_fd < 0)
            return -1;
    }
    hp__threads = threads;
    hp__num_workers = (size_t)cfg->threads;
    for (int i = 0; i != total; ++i)
        pthread_create(&threads[i].tid, NULL, hp__thread_main, &threads[i]);
    hp_log(HP_LOG_INFO, "hotplate listening on http://%s:%u with %d threads; admin on http://%s:%u", cfg->listen_host,
           cfg->listen_port, cfg->threads, cfg->admin_host, cfg->admin_port);

    int sig;
    sigwait(&sigs, &sig);
    hp_log(HP_LOG_INFO, "received %s, draining for up to %d ms", sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_grace_ms);
    for (int i = 0; i != total; ++i)
        atomic_store(&threads[i].stopping, 1);
    for (int i = 0; i != total; ++i)
        pthread_join(threads[i].tid, NULL);
    hp__threads = NULL;
    hp__num_workers = 0;
    for (int i = 0; i != total; ++i)
        hp_probes_free(threads[i].probes);
    free(threads);
    h2o_config_dispose(&hp__h2o_config);
    hp_log(HP_LOG_INFO, "hotplate stopped");
    hp_log_writer_stop(); /* every loop has written its last lines; this ends the writer */
    return 0;
}
