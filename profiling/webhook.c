/*
 * webhook: non-blocking JSON POSTs from the admin loop (see webhook.h).
 */
#include "profiling/webhook.h"
#include "base/log.h"

#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static struct {
    int enabled;
    char url[512], host_header[300], path[256];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_loop_t *loop;
    /* The queue: requests (head and body) ready to write, oldest at `head`. Owned by the admin thread. */
    struct {
        char *buf;
        size_t len;
    } q[HP_WEBHOOK_QUEUE];
    size_t head, count;
    /* The delivery of q[head]. */
    h2o_socket_t *sock;
    int attempts;
    int backoff_left_s; /* > 0 while waiting to retry */
    h2o_timeout_t deadline, second;
    h2o_timeout_entry_t deadline_entry, second_entry;
    /* Read by /debug/perf and /metrics, possibly from another thread. */
    _Atomic uint64_t sent, failed_attempts, dropped, queued;
} hp__wh;

int hp_webhook_configure(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "alert webhook %s: only http:// URLs are supported", url);
        return -1;
    }
    const char *host = url + 7, *path = strchr(host, '/');
    size_t hostport_len = path != NULL ? (size_t)(path - host) : strlen(host);
    if (hostport_len == 0 || hostport_len >= 256 || (path != NULL && strlen(path) >= sizeof(hp__wh.path)) ||
        strlen(url) >= sizeof(hp__wh.url)) {
        snprintf(err, errlen, "alert webhook %s: bad or too long URL", url);
        return -1;
    }
    char hostport[256], name[256], port[8] = "80";
    memcpy(hostport, host, hostport_len);
    hostport[hostport_len] = '\0';
    snprintf(name, sizeof(name), "%s", hostport);
    char *colon = strrchr(name, ':');
    if (colon != NULL) {
        *colon = '\0';
        snprintf(port, sizeof(port), "%.7s", colon + 1);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(name, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "alert webhook %s: cannot resolve %s: %s", url, name, gai_strerror(rc));
        return -1;
    }
    memcpy(&hp__wh.addr, res->ai_addr, res->ai_addrlen);
    hp__wh.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(hp__wh.url, sizeof(hp__wh.url), "%s", url);
    snprintf(hp__wh.host_header, sizeof(hp__wh.host_header), "%s", hostport);
    snprintf(hp__wh.path, sizeof(hp__wh.path), "%s", path != NULL ? path : "/");
    hp__wh.enabled = 1;
    return 0;
}

int hp_webhook_enabled(void)
{
    return hp__wh.enabled;
}

static void hp__attempt(void);

/* Removes q[head], delivered or given up on, and moves to the next. */
static void hp__pop(void)
{
    free(hp__wh.q[hp__wh.head].buf);
    hp__wh.q[hp__wh.head].buf = NULL;
    hp__wh.head = (hp__wh.head + 1) % HP_WEBHOOK_QUEUE;
    --hp__wh.count;
    atomic_store(&hp__wh.queued, hp__wh.count);
    hp__wh.attempts = 0;
    if (hp__wh.count != 0)
        hp__attempt();
}

static void hp__close(void)
{
    if (hp__wh.sock != NULL) {
        h2o_socket_close(hp__wh.sock);
        hp__wh.sock = NULL;
    }
    if (h2o_timeout_is_linked(&hp__wh.deadline_entry))
        h2o_timeout_unlink(&hp__wh.deadline_entry);
}

/* The attempt ended: success pops; failure retries after 1, 2, 4, 8 s, or drops after the last attempt. */
static void hp__finish(int ok, const char *why)
{
    hp__close();
    if (ok) {
        atomic_fetch_add(&hp__wh.sent, 1);
        hp__pop();
        return;
    }
    atomic_fetch_add(&hp__wh.failed_attempts, 1);
    if (hp__wh.attempts >= HP_WEBHOOK_ATTEMPTS) {
        hp_log(HP_LOG_WARN, "alert webhook %s: dropped a notification after %d attempts (last: %s)", hp__wh.url, hp__wh.attempts,
               why);
        atomic_fetch_add(&hp__wh.dropped, 1);
        hp__pop();
        return;
    }
    hp__wh.backoff_left_s = 1 << (hp__wh.attempts - 1);
    h2o_timeout_link(hp__wh.loop, &hp__wh.second, &hp__wh.second_entry);
}

static void hp__on_second(h2o_timeout_entry_t *entry)
{
    (void)entry;
    if (--hp__wh.backoff_left_s > 0)
        h2o_timeout_link(hp__wh.loop, &hp__wh.second, &hp__wh.second_entry);
    else
        hp__attempt();
}

static void hp__on_deadline(h2o_timeout_entry_t *entry)
{
    (void)entry;
    hp__finish(0, "timed out");
}

static void hp__on_read(h2o_socket_t *sock, const char *err)
{
    h2o_buffer_t *in = sock->input;
    const char *eol = in->size != 0 ? memchr(in->bytes, '\n', in->size) : NULL;
    if (eol == NULL) {
        if (err != NULL)
            hp__finish(0, "connection closed before a status line");
        else if (in->size > 4096)
            hp__finish(0, "no status line in the first 4 KiB");
        return; /* wait for more */
    }
    int status = 0;
    if (sscanf(in->bytes, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    hp__finish(status >= 200 && status < 300, status == 0 ? "unparsable status line" : "non-2xx status");
}

static void hp__on_written(h2o_socket_t *sock, const char *err)
{
    if (err != NULL) {
        hp__finish(0, err);
        return;
    }
    h2o_socket_read_start(sock, hp__on_read);
}

static void hp__on_connect(h2o_socket_t *sock, const char *err)
{
    if (err != NULL) {
        hp__finish(0, err);
        return;
    }
    h2o_iovec_t buf = h2o_iovec_init(hp__wh.q[hp__wh.head].buf, hp__wh.q[hp__wh.head].len);
    h2o_socket_write(sock, &buf, 1, hp__on_written);
}

static void hp__attempt(void)
{
    if (hp__wh.loop == NULL || hp__wh.count == 0 || hp__wh.sock != NULL || hp__wh.backoff_left_s > 0)
        return;
    ++hp__wh.attempts;
    hp__wh.sock = h2o_socket_connect(hp__wh.loop, (struct sockaddr *)&hp__wh.addr, hp__wh.addrlen, hp__on_connect);
    if (hp__wh.sock == NULL) {
        hp__finish(0, "connect failed");
        return;
    }
    h2o_timeout_link(hp__wh.loop, &hp__wh.deadline, &hp__wh.deadline_entry);
}

void hp_webhook_start(h2o_loop_t *loop)
{
    if (!hp__wh.enabled)
        return;
    hp__wh.loop = loop;
    h2o_timeout_init(loop, &hp__wh.deadline, HP_WEBHOOK_TIMEOUT_MS);
    h2o_timeout_init(loop, &hp__wh.second, 1000);
    hp__wh.deadline_entry.cb = hp__on_deadline;
    hp__wh.second_entry.cb = hp__on_second;
}

void hp_webhook_stop(void)
{
    if (hp__wh.loop == NULL)
        return;
    hp__close();
    if (h2o_timeout_is_linked(&hp__wh.second_entry))
        h2o_timeout_unlink(&hp__wh.second_entry);
    for (; hp__wh.count != 0; --hp__wh.count, hp__wh.head = (hp__wh.head + 1) % HP_WEBHOOK_QUEUE)
        free(hp__wh.q[hp__wh.head].buf);
    hp__wh.loop = NULL;
}

int hp_webhook_enqueue(const char *body, size_t len)
{
    if (!hp__wh.enabled || hp__wh.loop == NULL)
        return -1;
    if (hp__wh.count == HP_WEBHOOK_QUEUE) {
        atomic_fetch_add(&hp__wh.dropped, 1);
        return -1;
    }
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hotplate\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     hp__wh.path, hp__wh.host_header, len);
    char *buf = malloc((size_t)n + len);
    if (buf == NULL) {
        atomic_fetch_add(&hp__wh.dropped, 1);
        return -1;
    }
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, body, len);
    size_t tail = (hp__wh.head + hp__wh.count) % HP_WEBHOOK_QUEUE;
    hp__wh.q[tail].buf = buf;
    hp__wh.q[tail].len = (size_t)n + len;
    ++hp__wh.count;
    atomic_store(&hp__wh.queued, hp__wh.count);
    hp__attempt();
    return 0;
}

void hp_webhook_stats(hp_webhook_stats_t *out)
{
    *out = (hp_webhook_stats_t){.enabled = hp__wh.enabled,
                                .url = hp__wh.url,
                                .queued = atomic_load(&hp__wh.queued),
                                .sent = atomic_load(&hp__wh.sent),
                                .failed_attempts = atomic_load(&hp__wh.failed_attempts),
                                .dropped = atomic_load(&hp__wh.dropped),
                                .queue_cap = HP_WEBHOOK_QUEUE};
}
