/*
 * openloop: an open-loop HTTP/1.1 load generator, free of coordinated omission.
 *
 *   openloop --port 8080 --requests FILE --schedule 2000:10[,4000:10...]
 *            [--host 127.0.0.1] [--connections 64] [--timeout-ms 5000]
 *
 * Why our own: wrk is closed-loop (a slow response delays the next request, so
 * the slow period is sampled less: coordinated omission), wrk2 is not in
 * Debian, and no Debian package sends at a fixed arrival rate.
 *
 * Request number k has an intended send time fixed by the schedule before the
 * run starts. When it is due it joins a queue; an idle keep-alive connection
 * (at most --connections of them, one request in flight each) takes it. Its
 * latency is measured from the intended time, not from when it was written,
 * so time spent queued behind a slow server counts, as wrk2 does it. The
 * requests cycle through the request file (loadtests/bench_workload.py writes
 * it); a request carrying HP_OL_SEQ_MARKER gets --seq-base + k there, as 16 digits.
 * Without --seq-base the base is the wall clock in microseconds, so that two
 * runs never send the same Idempotency-Key (a run of n requests takes longer
 * than n microseconds), and answers that are replays anyway are counted
 * ("replayed").
 *
 * One thread, epoll with nanosecond waits (epoll_pwait2) so a request is sent
 * at its time and not on the next millisecond tick. Latencies go into the
 * project's log-linear histogram (common/base/histogram.c), total and per step.
 * A request not answered --timeout-ms after its intended time (in the queue or
 * on the wire) is a timeout; its connection is closed and reopened. Once the
 * schedule ends, the generator waits at most --timeout-ms for the stragglers,
 * so a run always ends on its own.
 *
 * The summary is one JSON object on stdout: counts by status class, socket
 * errors, timeouts, latency percentiles in microseconds (p50, p90, p99, p99.9,
 * max), the 4xx and 5xx answers by status and error code, overall and per
 * step, and the rate actually sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loadtests/openloop_proto.h"

#define HP_OL_MAX_CONNECTIONS 1024
#define HP_OL_MAX_REQUESTS (50u * 1000 * 1000)
#define HP_OL_RBUF 131072

typedef enum { HP_OL_DOWN, HP_OL_CONNECTING, HP_OL_IDLE, HP_OL_BUSY } hp_ol_state_t;

typedef struct st_hp_ol_conn_t {
    int fd;
    hp_ol_state_t state;
    uint64_t req;         /* request number in flight */
    uint64_t idle_since;  /* hp_ol__now() when it last became idle */
    uint64_t intended_ns; /* its intended time */
    size_t step;
    const char *wbuf; /* what is left to write */
    size_t wlen;
    int out_armed;     /* EPOLLOUT is in the connection's epoll interest */
    char seqbuf[8192]; /* a copy of the request when its marker was replaced */
    char rbuf[HP_OL_RBUF];
    size_t rlen;
} hp_ol_conn_t;

typedef struct st_hp_ol_counts_t {
    uint64_t sent, by_class[6], socket_errors, timeouts;
    uint64_t connect_errors; /* failed connections (a connect, or bytes no request asked for): not requests, so not in the errors */
    uint64_t idle_closed;    /* idle connections the server closed (EOF, reset or hang-up with no request on them) */
    uint64_t idle_reopened;  /* connections reopened because they had been idle longer than --idle-ms */
    uint64_t replayed;       /* answers marked idempotent-replayed: keys an earlier run had used (hp_ol_replayed) */
    hp_ol_errors_t errors;   /* the 4xx and 5xx answers by status and error code */
    hp_hist_t hist;
} hp_ol_counts_t;

static hp_ol_conn_t *conns;
static size_t num_conns;
static hp_ol_counts_t total, steps[HP_OL_MAX_STEPS];
static struct sockaddr_in addr;
static int epfd;
static volatile sig_atomic_t stop_now;

static uint64_t hp_ol__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hp_ol__on_signal(int sig)
{
    (void)sig;
    stop_now = 1;
}

static void hp_ol__close(hp_ol_conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = HP_OL_DOWN;
    c->rlen = 0;
}

static int hp_ol__connect(hp_ol_conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->out_armed = 1;
    c->state = HP_OL_CONNECTING;
    c->rlen = 0;
    return 0;
}

/*
 * Arms or disarms EPOLLOUT, only when that changes: a request that goes out in
 * one send (nearly all of them) costs no epoll_ctl. With the single recv in
 * hp_ol__read, a request costs about 2.6 system calls instead of 4.6 (perf stat
 * -e raw_syscalls:sys_enter at 55,000 requests/s on a cached menu); the
 * generator's CPU time hardly moved, since loopback TCP's kernel work
 * dominates it, but what the generator does not do it cannot be delayed by.
 */
static void hp_ol__want_write(hp_ol_conn_t *c, int on)
{
    if (c->out_armed == on)
        return;
    c->out_armed = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A request ended without an answer: counts it once, in total and in its step. */
static void hp_ol__fail(hp_ol_conn_t *c, int timeout)
{
    if (c->state == HP_OL_BUSY) {
        if (timeout) {
            total.timeouts++;
            steps[c->step].timeouts++;
        } else {
            total.socket_errors++;
            steps[c->step].socket_errors++;
        }
    } else if (c->state == HP_OL_IDLE && c->rlen == 0) {
        /*
         * No request was on it and nothing came before the end: the server's
         * keep-alive close, not a failure, and the connection reopens on its
         * next use. Bytes no request asked for are a failure of the connection.
         */
        total.idle_closed++;
    } else if (!timeout) {
        total.connect_errors++;
    }
    hp_ol__close(c);
}

static void hp_ol__flush(hp_ol_conn_t *c)
{
    while (c->wlen > 0) {
        ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                hp_ol__want_write(c, 1);
                return;
            }
            hp_ol__fail(c, 0);
            return;
        }
        c->wbuf += n;
        c->wlen -= (size_t)n;
    }
    hp_ol__want_write(c, 0);
}

static uint64_t seq_base;
static int seq_base_set;

static void hp_ol__send(hp_ol_conn_t *c, const hp_ol_requests_t *reqs, uint64_t k, uint64_t intended, size_t step)
{
    size_t i = (size_t)(k % reqs->count);
    const char *data = reqs->data + reqs->offsets[i];
    size_t len = reqs->lengths[i];
    if (reqs->seq_at[i] >= 0 && len <= sizeof(c->seqbuf)) {
        memcpy(c->seqbuf, data, len);
        char digits[24];
        snprintf(digits, sizeof(digits), "%016llu", (unsigned long long)((seq_base + k) % 10000000000000000u));
        memcpy(c->seqbuf + reqs->seq_at[i], digits, HP_OL_SEQ_LEN);
        data = c->seqbuf;
    }
    c->state = HP_OL_BUSY;
    c->req = k;
    c->intended_ns = intended;
    c->step = step;
    c->wbuf = data;
    c->wlen = len;
    total.sent++;
    steps[step].sent++;
    hp_ol__flush(c);
}

/*
 * One recv per readiness event, not a loop until EAGAIN: the epoll interest is
 * level-triggered, so bytes left in the socket report the connection again on
 * the next wait, and a response that came whole (nearly all of them) costs one
 * recv instead of two.
 */
static void hp_ol__read(hp_ol_conn_t *c, uint64_t start_ns)
{
    if (c->rlen == sizeof(c->rbuf)) {
        hp_ol__fail(c, 0);
        return;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        hp_ol__fail(c, 0);
        return;
    }
    if (n < 0)
        return;
    c->rlen += (size_t)n;
    int status, close_after;
    size_t consumed;
    int rc = hp_ol_parse_response(c->rbuf, c->rlen, &status, &consumed, &close_after);
    if (rc == 0)
        return;
    if (rc < 0 || c->state != HP_OL_BUSY || consumed != c->rlen) {
        /* Malformed, unsolicited, or more than one response: the connection's framing is lost. */
        hp_ol__fail(c, 0);
        return;
    }
    uint64_t latency = hp_ol__now() - start_ns - c->intended_ns;
    int cls = status / 100 >= 1 && status / 100 <= 5 ? status / 100 : 0;
    total.by_class[cls]++;
    steps[c->step].by_class[cls]++;
    if (hp_ol_replayed(c->rbuf, c->rlen)) {
        total.replayed++;
        steps[c->step].replayed++;
    }
    if (status >= 400) {
        char code[HP_OL_ERROR_CODE_MAX];
        hp_ol_error_code(c->rbuf, c->rlen, code);
        hp_ol_errors_add(&total.errors, status, code);
        hp_ol_errors_add(&steps[c->step].errors, status, code);
    }
    hp_hist_record(&total.hist, latency);
    hp_hist_record(&steps[c->step].hist, latency);
    c->rlen = 0;
    c->state = HP_OL_IDLE;
    c->idle_since = hp_ol__now();
    if (close_after)
        hp_ol__close(c);
}

static void hp_ol__print_counts(const hp_ol_counts_t *k)
{
    hp_hist_snapshot_t snap;
    memset(&snap, 0, sizeof(snap));
    hp_hist_merge_into(&snap, &k->hist);
    uint64_t errors = k->by_class[0] + k->by_class[4] + k->by_class[5] + k->socket_errors + k->timeouts;
    printf("\"sent\": %llu, \"completed\": %llu, \"status\": {\"1xx\": %llu, \"2xx\": %llu, \"3xx\": %llu, \"4xx\": %llu, "
           "\"5xx\": %llu, \"other\": %llu}, \"socket_errors\": %llu, \"timeouts\": %llu, \"errors\": %llu, \"replayed\": %llu, "
           "\"latency\": ",
           (unsigned long long)k->sent, (unsigned long long)snap.count, (unsigned long long)k->by_class[1],
           (unsigned long long)k->by_class[2], (unsigned long long)k->by_class[3], (unsigned long long)k->by_class[4],
           (unsigned long long)k->by_class[5], (unsigned long long)k->by_class[0], (unsigned long long)k->socket_errors,
           (unsigned long long)k->timeouts, (unsigned long long)errors, (unsigned long long)k->replayed);
    hp_ol_print_latency(stdout, &snap);
    printf(", \"error_kinds\": ");
    hp_ol_print_errors(stdout, &k->errors);
}

static int hp_ol__usage(const char *msg)
{
    fprintf(stderr,
            "openloop: %s\nusage: openloop --port PORT --requests FILE --schedule RATE:SECONDS[,...] [--host 127.0.0.1] "
            "[--connections 64] [--timeout-ms 5000] [--idle-ms 5000] [--seq-base N]\n",
            msg);
    return 2;
}

static char *hp_ol__slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct stat st;
    char *data = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0 && (data = malloc((size_t)st.st_size)) != NULL &&
        fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(data);
        data = NULL;
    }
    *len = data ? (size_t)st.st_size : 0;
    fclose(f);
    return data;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *req_path = NULL, *sched_text = NULL;
    long port = 0, connections = 64, timeout_ms = 5000, idle_ms = 5000;
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"requests", required_argument, NULL, 'r'},
                                         {"schedule", required_argument, NULL, 's'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"timeout-ms", required_argument, NULL, 't'},
                                         {"seq-base", required_argument, NULL, 'b'},
                                         {"idle-ms", required_argument, NULL, 'i'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 'r':
            req_path = optarg;
            break;
        case 's':
            sched_text = optarg;
            break;
        case 'c':
            connections = strtol(optarg, NULL, 10);
            break;
        case 't':
            timeout_ms = strtol(optarg, NULL, 10);
            break;
        case 'b':
            seq_base = strtoull(optarg, NULL, 10);
            seq_base_set = 1;
            break;
        case 'i':
            idle_ms = strtol(optarg, NULL, 10);
            break;
        default:
            return hp_ol__usage("unknown option");
        }
    }
    if (port <= 0 || port > 65535 || req_path == NULL || sched_text == NULL)
        return hp_ol__usage("--port, --requests and --schedule are required");
    if (connections < 1 || connections > HP_OL_MAX_CONNECTIONS)
        return hp_ol__usage("--connections must be 1..1024");
    if (timeout_ms < 1 || timeout_ms > 600000)
        return hp_ol__usage("--timeout-ms must be 1..600000");
    if (idle_ms < 1 || idle_ms > 600000)
        return hp_ol__usage("--idle-ms must be 1..600000");
    /* Load tests target this machine only. */
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127)
        return hp_ol__usage("--host must be a 127.x.x.x address");
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (!seq_base_set) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        seq_base = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    }

    char err[256];
    hp_ol_schedule_t sched;
    if (hp_ol_parse_schedule(sched_text, &sched, err, sizeof(err)) != 0)
        return hp_ol__usage(err);
    if (sched.total_requests > HP_OL_MAX_REQUESTS)
        return hp_ol__usage("the schedule asks for more than 50 million requests");
    size_t flen;
    char *fdata = hp_ol__slurp(req_path, &flen);
    hp_ol_requests_t reqs;
    if (fdata == NULL)
        return hp_ol__usage("cannot read the request file");
    if (hp_ol_parse_requests(fdata, flen, &reqs, err, sizeof(err)) != 0) {
        free(fdata);
        return hp_ol__usage(err);
    }
    for (size_t i = 0; i != reqs.count; ++i)
        if (reqs.seq_at[i] >= 0 && reqs.lengths[i] > sizeof(conns[0].seqbuf))
            return hp_ol__usage("a request with a sequence marker is longer than 8192 bytes");

    signal(SIGINT, hp_ol__on_signal);
    signal(SIGTERM, hp_ol__on_signal);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    num_conns = (size_t)connections;
    conns = calloc(num_conns, sizeof(*conns));
    if (epfd < 0 || conns == NULL)
        return hp_ol__usage("out of resources");
    for (size_t i = 0; i != num_conns; ++i) {
        conns[i].fd = -1;
        if (hp_ol__connect(&conns[i]) != 0)
            total.connect_errors++;
    }

    /* The clock starts once the connections are up (or after 2 s), so connection setup is not charged to the first requests. */
    struct epoll_event events[256];
    for (uint64_t t0 = hp_ol__now(); hp_ol__now() - t0 < 2000000000u;) {
        size_t up = 0;
        for (size_t i = 0; i != num_conns; ++i)
            up += conns[i].state == HP_OL_IDLE || conns[i].state == HP_OL_DOWN;
        if (up == num_conns)
            break;
        int n = epoll_wait(epfd, events, 256, 100);
        for (int i = 0; i < n; ++i) {
            hp_ol_conn_t *c = events[i].data.ptr;
            if (events[i].events & (EPOLLERR | EPOLLHUP))
                hp_ol__fail(c, 0);
            else if (c->state == HP_OL_CONNECTING && (events[i].events & EPOLLOUT)) {
                c->state = HP_OL_IDLE;
                c->idle_since = hp_ol__now();
                hp_ol__want_write(c, 0);
            }
        }
    }

    /* The queue of due requests is implicit: requests next_send..next_due-1 are due and unsent, in order. */
    const uint64_t timeout_ns = (uint64_t)timeout_ms * 1000000u, idle_ns = (uint64_t)idle_ms * 1000000u;
    const uint64_t end_ns = (uint64_t)(sched.total_seconds * 1e9);
    uint64_t next_send = 0, next_due = 0;
    uint64_t start = hp_ol__now();
    for (;;) {
        uint64_t now = hp_ol__now() - start;
        uint64_t when;
        size_t step;
        while (hp_ol_intended_ns(&sched, next_due, &when, &step) == 0 && when <= now)
            ++next_due;
        /* Due requests that waited past the timeout never get sent: they are timeouts, as a user would see them. */
        while (next_send < next_due && hp_ol_intended_ns(&sched, next_send, &when, &step) == 0 && now - when > timeout_ns) {
            total.sent++, total.timeouts++;
            steps[step].sent++, steps[step].timeouts++;
            ++next_send;
        }
        /*
         * A connection idle for longer than --idle-ms is reopened ahead of its
         * next use. The server closes a keep-alive connection that has been
         * idle for its own timeout (hotplate: --header-timeout-ms, 10 s), and a
         * request sent just as that close is on its way fails as a socket
         * error that is the race's, not the server's (one socket error at 0.6
         * of the peak set a peak-hour run's saturation point, which is what
         * this race would look like). HTTP clients keep their idle timeout
         * under the server's for this reason (Go's IdleConnTimeout, nginx's
         * upstream keepalive_timeout).
         */
        uint64_t mono = hp_ol__now(), idle_due = UINT64_MAX; /* the sweep's next due time, for the wait below */
        for (size_t i = 0; i != num_conns; ++i) {
            if (conns[i].state != HP_OL_IDLE)
                continue;
            if (mono - conns[i].idle_since > idle_ns) {
                hp_ol__close(&conns[i]);
                total.idle_reopened++;
                if (hp_ol__connect(&conns[i]) != 0)
                    total.connect_errors++;
            } else if (conns[i].idle_since + idle_ns < idle_due) {
                idle_due = conns[i].idle_since + idle_ns;
            }
        }
        for (size_t i = 0; i != num_conns && next_send < next_due; ++i) {
            hp_ol_conn_t *c = &conns[i];
            if (c->state == HP_OL_DOWN && hp_ol__connect(c) != 0)
                total.connect_errors++;
            if (c->state == HP_OL_IDLE) {
                hp_ol_intended_ns(&sched, next_send, &when, &step);
                hp_ol__send(c, &reqs, next_send++, when, step);
            }
        }
        size_t busy = 0;
        for (size_t i = 0; i != num_conns; ++i) {
            if (conns[i].state == HP_OL_BUSY) {
                if (now > conns[i].intended_ns + timeout_ns)
                    hp_ol__fail(&conns[i], 1);
                else
                    ++busy;
            }
        }
        int schedule_done = hp_ol_intended_ns(&sched, next_due, &when, &step) != 0;
        if (stop_now || (schedule_done && next_send == next_due && busy == 0) || now > end_ns + timeout_ns)
            break;
        /* Sleep until the next request is due, or 1 ms when requests wait for a connection. */
        uint64_t wait = 100000000u;
        if (next_send < next_due)
            wait = 1000000u;
        else if (!schedule_done)
            wait = when > now ? when - now : 0;
        if (idle_due != UINT64_MAX) {
            uint64_t until = idle_due > mono ? idle_due - mono + 1000000u : 1000000u; /* a millisecond past it */
            if (until < wait)
                wait = until;
        }
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
        int n = epoll_pwait2(epfd, events, 256, &ts, NULL);
        for (int i = 0; i < n; ++i) {
            hp_ol_conn_t *c = events[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                hp_ol__fail(c, 0);
                continue;
            }
            if (c->state == HP_OL_CONNECTING && (events[i].events & EPOLLOUT)) {
                c->state = HP_OL_IDLE;
                c->idle_since = hp_ol__now();
                hp_ol__want_write(c, 0);
                continue;
            }
            if ((events[i].events & EPOLLOUT) && c->state == HP_OL_BUSY)
                hp_ol__flush(c);
            if ((events[i].events & EPOLLIN) && c->fd >= 0)
                hp_ol__read(c, start);
        }
    }
    /* Whatever is still due, queued or in flight at the end was never answered within the run: timeouts. */
    for (size_t i = 0; i != num_conns; ++i)
        if (conns[i].state == HP_OL_BUSY)
            hp_ol__fail(&conns[i], 1);
    double elapsed = (double)(hp_ol__now() - start) / 1e9;
    uint64_t when;
    size_t step;
    for (; next_send < sched.total_requests; ++next_send) {
        if (hp_ol_intended_ns(&sched, next_send, &when, &step) != 0)
            break;
        total.sent++, total.timeouts++;
        steps[step].sent++, steps[step].timeouts++;
    }

    printf("{\"schedule\": \"%s\", \"connections\": %zu, \"timeout_ms\": %ld, \"intended\": %llu, \"elapsed_s\": %.3f, "
           "\"interrupted\": %s, \"connect_errors\": %llu, \"idle_ms\": %ld, \"idle_reopened\": %llu, \"idle_closed\": %llu, ",
           sched_text, num_conns, timeout_ms, (unsigned long long)sched.total_requests, elapsed, stop_now ? "true" : "false",
           (unsigned long long)total.connect_errors, idle_ms, (unsigned long long)total.idle_reopened,
           (unsigned long long)total.idle_closed);
    hp_ol__print_counts(&total);
    printf(", \"steps\": [");
    for (size_t i = 0; i != sched.num_steps; ++i) {
        printf("%s{\"rate\": %.3f, \"seconds\": %.3f, ", i ? ", " : "", sched.steps[i].rate, sched.steps[i].seconds);
        hp_ol__print_counts(&steps[i]);
        printf("}");
    }
    printf("]}\n");
    for (size_t i = 0; i != num_conns; ++i)
        hp_ol__close(&conns[i]);
    free(conns);
    close(epfd);
    hp_ol_free_requests(&reqs);
    return stop_now ? 1 : 0;
}
