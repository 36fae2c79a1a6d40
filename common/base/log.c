/*
 * log: structured JSON log lines (see log.h).
 */
#include "base/log.h"
#include "base/clock.h"
#include "base/decimal.h"
#include "base/flags.h"
#include "base/logbuf.h"
#include "base/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static hp_log_level_t hp__log_min = HP_LOG_INFO;
static const hp_log_observer_t *hp__log_observer;

static const char *const hp__level_names[] = {"debug", "info", "warn", "error"};

/*
 * The log file. Writers on every thread write to the one descriptor number
 * hp__file.fd; rotation swaps the file behind that number with dup2(2), which
 * is atomic, so a writer never sees a closed or reused descriptor and no lock
 * is taken on the write path. The mutex only keeps two rotations apart.
 */
static struct {
    int fd; /* -1 when no file is configured */
    char path[PATH_MAX];
    uint64_t max_bytes;
    int keep;
    _Atomic uint64_t bytes; /* written to the current file (approximate across a rotation) */
    _Atomic uint64_t rotations;
    pthread_mutex_t rotating;
} hp__file = {.fd = -1, .rotating = PTHREAD_MUTEX_INITIALIZER};

void hp_log_set_observer(const hp_log_observer_t *observer)
{
    hp__log_observer = observer;
}

void hp_log_set_level(hp_log_level_t level)
{
    hp__log_min = level;
}

const char *hp_log_level_name(hp_log_level_t level)
{
    return (unsigned)level < sizeof(hp__level_names) / sizeof(hp__level_names[0]) ? hp__level_names[level] : "?";
}

int hp_log_open_file(const char *path, uint64_t max_bytes, int keep, char *err, size_t errlen)
{
    if (strlen(path) + 8 > sizeof(hp__file.path)) {
        snprintf(err, errlen, "log file path too long");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    atomic_store(&hp__file.bytes, fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
    strcpy(hp__file.path, path);
    hp__file.max_bytes = max_bytes;
    hp__file.keep = keep;
    hp__file.fd = fd;
    return 0;
}

int hp_log_file_info(const char **path, uint64_t *bytes, uint64_t *rotations)
{
    if (hp__file.fd < 0)
        return 0;
    *path = hp__file.path;
    *bytes = atomic_load(&hp__file.bytes);
    *rotations = atomic_load(&hp__file.rotations);
    return 1;
}

/*
 * Renames path.(keep-1) to path.keep, ..., path to path.1, then points the
 * descriptor at a fresh path. Lines written between the rename and the dup2
 * land at the end of path.1, so none is lost. It runs on whichever thread
 * crossed the size limit: a few renames and an open, comparable to the
 * write(2) of the line itself, once per max_bytes of logs.
 */
static void hp__log_rotate(void)
{
    if (pthread_mutex_trylock(&hp__file.rotating) != 0)
        return; /* another thread is rotating right now */
    if (atomic_load(&hp__file.bytes) >= hp__file.max_bytes) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        for (int i = hp__file.keep - 1; i >= 1; --i) {
            snprintf(from, sizeof(from), "%s.%d", hp__file.path, i);
            snprintf(to, sizeof(to), "%s.%d", hp__file.path, i + 1);
            rename(from, to); /* a missing file is the normal case for the first rotations */
        }
        snprintf(to, sizeof(to), "%s.1", hp__file.path);
        int fd = -1;
        if (rename(hp__file.path, to) == 0)
            fd = open(hp__file.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, hp__file.fd);
            close(fd);
            atomic_store(&hp__file.bytes, 0);
            atomic_fetch_add(&hp__file.rotations, 1);
        } else {
            /* Keep appending to the file we have; try again after another max_bytes rather than on every line. */
            atomic_store(&hp__file.bytes, 0);
        }
    }
    pthread_mutex_unlock(&hp__file.rotating);
}

size_t hp_log_escape(char *dst, size_t dstlen, const char *src)
{
    size_t o = 0;
    if (dstlen == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; ++p) {
        char esc[8];
        size_t n;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p, n = 2;
        } else if (*p < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        } else {
            esc[0] = (char)*p, n = 1;
        }
        if (o + n >= dstlen)
            break;
        memcpy(dst + o, esc, n);
        o += n;
    }
    dst[o] = '\0';
    return o;
}

/* ---- writing ------------------------------------------------------------------------------------ */

/*
 * How many bytes one write(2) to stdout may carry. A pipe, a socket or a
 * terminal gets writes of whole lines of at most PIPE_BUF bytes, so that the
 * writer thread's chunks never interleave with a line another thread writes at
 * the same moment (writes of up to PIPE_BUF bytes to a pipe are atomic). A
 * regular file takes a chunk in one write: Linux serializes the writes to one
 * open file. Set by hp_log_writer_start(), before any chunk exists.
 */
static size_t hp__log_stdout_cut = PIPE_BUF;

/* Writes buf, cut at line ends into writes of at most cut bytes; @return the bytes written. */
static size_t hp__log_put_fd(int fd, const char *buf, size_t n, size_t cut)
{
    size_t done = 0;
    while (n != 0) {
        size_t chunk = n;
        if (chunk > cut) {
            chunk = cut;
            while (chunk != 0 && buf[chunk - 1] != '\n')
                --chunk;
            if (chunk == 0)
                chunk = cut; /* no line is longer than PIPE_BUF: cannot happen, but never loop forever */
        }
        ssize_t r = write(fd, buf, chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* what cannot be written is dropped: a log never stops the process */
        buf += r, n -= (size_t)r, done += (size_t)r;
    }
    return done;
}

static void hp__log_write_out(const char *buf, size_t n)
{
    hp__log_put_fd(STDOUT_FILENO, buf, n, hp__log_stdout_cut);
    if (hp__file.fd >= 0) {
        size_t r = hp__log_put_fd(hp__file.fd, buf, n, SIZE_MAX); /* O_APPEND: each write lands whole at the end */
        if (r != 0 && atomic_fetch_add(&hp__file.bytes, (uint64_t)r) + (uint64_t)r >= hp__file.max_bytes)
            hp__log_rotate();
    }
}

/*
 * The writer. An event-loop thread formats its lines straight into a buffer
 * of its own (base/logbuf.h: 64 chunks of 64 KiB, whole lines each) and never
 * calls write(2) for them: at the end of each loop turn (hp_log_flush) it
 * hands over the chunks it filled, and the open one once it is
 * HP__LOG_PUBLISH_NS old, and wakes the writer thread with one eventfd write
 * if the writer was not already woken. The writer writes every handed-over
 * chunk to stdout and the log file. A loop therefore pays a few hundred
 * nanoseconds of formatting per line and an eventfd write every few hundred
 * lines, and a slow or stuck reader of stdout costs it nothing: when all of a
 * thread's chunks wait for the writer, its next lines are dropped and counted
 * (hp_log_take_dropped, the log_dropped counter of /debug/perf and /metrics)
 * rather than waited for. 4 MiB per thread is about 90 ms of lines at
 * 150,000 requests/s, far more than the writer's scheduling delay.
 *
 * Other threads (the main thread, the index thread) write each line at once,
 * as before the writer existed.
 */
#define HP__LOG_CHUNK (64 * 1024)
#define HP__LOG_CHUNKS 64
#define HP__LOG_PUBLISH_NS (5 * 1000000ull)

typedef struct st_hp__log_ring_t {
    hp_logbuf_t buf;
    struct st_hp__log_ring_t *next;
} hp__log_ring_t;

static struct {
    pthread_mutex_t mu;    /* the list of rings; also one consumer at a time (logbuf.h) */
    hp__log_ring_t *rings; /* every buffered thread's ring */
    int efd;               /* the eventfd the loops wake the writer with */
    _Atomic int woken;     /* 1 from a wake-up until the writer starts its next pass */
    _Atomic int stopping;  /* the writer's last pass: it ends after it */
    _Atomic int running;   /* the writer thread exists and has not been joined */
    pthread_t thread;
} hp__w = {.mu = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

static _Thread_local struct {
    hp__log_ring_t *ring;  /* NULL: this thread writes each line at once */
    uint64_t woke_at;      /* the ring's published count when this thread last woke the writer */
    uint64_t dropped_told; /* the ring's drops already returned by hp_log_take_dropped() */
} hp__tl;

static void hp__log_out(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    hp__log_write_out(p, n);
}

/* Writes every ring's handed-over chunks; the caller holds hp__w.mu. */
static void hp__log_drain_all(void)
{
    for (hp__log_ring_t *r = hp__w.rings; r != NULL; r = r->next)
        hp_logbuf_drain(&r->buf, hp__log_out, NULL);
}

static void hp__log_wake(void)
{
    if (atomic_exchange_explicit(&hp__w.woken, 1, memory_order_acq_rel) == 0) {
        uint64_t one = 1;
        ssize_t r = write(hp__w.efd, &one, sizeof(one)); /* non-blocking; the counter cannot overflow here */
        (void)r;
    }
}

static void *hp__log_writer_main(void *arg)
{
    (void)arg;
    for (;;) {
        /* The timeout is a safety net only: every hand-over wakes the writer. */
        struct pollfd p = {.fd = hp__w.efd, .events = POLLIN};
        poll(&p, 1, 1000);
        uint64_t v;
        ssize_t r = read(hp__w.efd, &v, sizeof(v));
        (void)r;
        /* Cleared before the pass: a chunk handed over after this point wakes the writer again. */
        atomic_store_explicit(&hp__w.woken, 0, memory_order_release);
        int stop = atomic_load(&hp__w.stopping);
        pthread_mutex_lock(&hp__w.mu);
        hp__log_drain_all();
        pthread_mutex_unlock(&hp__w.mu);
        if (stop)
            return NULL;
    }
}

static void hp__log_atexit(void)
{
    hp_log_writer_stop();
}

int hp_log_writer_start(void)
{
    if (atomic_load(&hp__w.running))
        return 0;
    struct stat st;
    hp__log_stdout_cut = fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) ? SIZE_MAX : PIPE_BUF;
    if (hp__w.efd < 0 && (hp__w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -1;
    atomic_store(&hp__w.stopping, 0);
    if (pthread_create(&hp__w.thread, NULL, hp__log_writer_main, NULL) != 0)
        return -1;
    atomic_store(&hp__w.running, 1);
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(hp__log_atexit); /* an exit(3) on an error path still writes what was handed over */
    }
    return 0;
}

void hp_log_writer_stop(void)
{
    /* The caller's own open chunk first; other threads hand theirs over when they stop (hp_log_buffer_stop). */
    if (hp__tl.ring != NULL)
        hp_logbuf_publish(&hp__tl.ring->buf);
    if (atomic_exchange(&hp__w.running, 0)) {
        atomic_store(&hp__w.stopping, 1);
        atomic_store(&hp__w.woken, 1);
        uint64_t one = 1;
        ssize_t r = write(hp__w.efd, &one, sizeof(one));
        (void)r;
        pthread_join(hp__w.thread, NULL);
    }
    pthread_mutex_lock(&hp__w.mu);
    hp__log_drain_all(); /* what was handed over after the writer's last pass */
    pthread_mutex_unlock(&hp__w.mu);
}

void hp_log_buffer_start(void)
{
    if (hp__tl.ring != NULL || !atomic_load(&hp__w.running))
        return; /* no writer (a command other than serve, or a failed start): this thread writes each line at once */
    hp__log_ring_t *r = calloc(1, sizeof(*r));
    if (r == NULL || hp_logbuf_init(&r->buf, HP__LOG_CHUNK, HP__LOG_CHUNKS) != 0) {
        free(r);
        return; /* out of memory: unbuffered */
    }
    pthread_mutex_lock(&hp__w.mu);
    r->next = hp__w.rings;
    hp__w.rings = r;
    pthread_mutex_unlock(&hp__w.mu);
    hp__tl.ring = r;
    hp__tl.woke_at = 0;
    hp__tl.dropped_told = 0;
}

void hp_log_flush(void)
{
    hp__log_ring_t *r = hp__tl.ring;
    if (r == NULL)
        return;
    hp_logbuf_t *b = &r->buf;
    if (b->open_len != 0) {
        /* The clock is read once a turn, not once a line: a chunk's age counts from the first turn that found it in use. */
        uint64_t now = hp_now_ns();
        if (b->open_since == 0)
            b->open_since = now;
        else if (now - b->open_since >= HP__LOG_PUBLISH_NS)
            hp_logbuf_publish(b);
    }
    uint64_t published = atomic_load_explicit(&b->published, memory_order_relaxed);
    if (published != hp__tl.woke_at) {
        hp__tl.woke_at = published;
        hp__log_wake();
    }
}

void hp_log_buffer_stop(void)
{
    hp__log_ring_t *r = hp__tl.ring;
    if (r == NULL)
        return;
    hp__tl.ring = NULL; /* this thread's lines from here on are written at once */
    hp_logbuf_publish(&r->buf);
    /* Written here, on the stopping thread, rather than waited for: the loop is over, so blocking is harmless. */
    pthread_mutex_lock(&hp__w.mu);
    hp_logbuf_drain(&r->buf, hp__log_out, NULL);
    for (hp__log_ring_t **p = &hp__w.rings; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&hp__w.mu);
    hp_logbuf_dispose(&r->buf);
    free(r);
}

uint64_t hp_log_take_dropped(void)
{
    hp__log_ring_t *r = hp__tl.ring;
    if (r == NULL)
        return 0;
    uint64_t n = r->buf.dropped - hp__tl.dropped_told;
    hp__tl.dropped_told = r->buf.dropped;
    return n;
}

/*
 * Room for one line of at most PIPE_BUF bytes: in the thread's ring, or in
 * the caller's stack buffer `local` for a thread that writes at once.
 * @return NULL when the ring is full (the line is dropped and counted)
 */
static char *hp__log_reserve(char *local)
{
    if (hp__tl.ring == NULL)
        return local;
    return hp_logbuf_reserve(&hp__tl.ring->buf, PIPE_BUF);
}

/* Keeps the line of n bytes (newline included) written where hp__log_reserve() pointed. */
static void hp__log_commit(char *line, size_t n)
{
    if (hp__tl.ring == NULL)
        hp__log_write_out(line, n);
    else
        hp_logbuf_commit(&hp__tl.ring->buf, n);
}

/* ---- formatting ---------------------------------------------------------------------------------- */

/*
 * A line under construction, written in place: in the thread's ring, or in a
 * stack buffer for a thread that writes at once. At most PIPE_BUF bytes: what
 * does not fit is cut, keeping room for the closing brace and the newline.
 * Hand-written appends rather than snprintf, which cost more than the rest of
 * a cached request (a profile of GET /healthz had vfprintf on most of its
 * samples).
 */
typedef struct st_hp__line_t {
    char *buf; /* PIPE_BUF bytes */
    size_t len;
} hp__line_t;

static inline void hp__put(hp__line_t *l, const char *s, size_t n)
{
    size_t room = PIPE_BUF - 2 - l->len;
    /*
     * The cut is its own branch, so that the common copy keeps the caller's
     * length: for a literal, a constant, which the compiler turns into a few
     * moves instead of a memcpy of a length known only at run time.
     */
    if (__builtin_expect(n > room, 0)) {
        memcpy(l->buf + l->len, s, room);
        l->len += room;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static inline void hp__puts(hp__line_t *l, const char *s)
{
    hp__put(l, s, strlen(s));
}

/* Appends `key` (the field's opening text, up to its value's quote) and v, then closes the quote; v needs no escaping. */
static inline void hp__put_quoted(hp__line_t *l, const char *key, const char *v)
{
    hp__puts(l, key);
    hp__puts(l, v);
    hp__put(l, "\"", 1);
}

/* Writes the digits in place (base/decimal.h), or through hp__put's cut when the line has no room left for 20. */
static void hp__put_u64(hp__line_t *l, uint64_t v)
{
    if (PIPE_BUF - 2 - l->len >= 20) {
        l->len += hp_decimal_u64(l->buf + l->len, v);
        return;
    }
    char digits[20];
    hp__put(l, digits, hp_decimal_u64(digits, v));
}

static void hp__put_int(hp__line_t *l, int v)
{
    if (v < 0) {
        hp__put(l, "-", 1);
        hp__put_u64(l, (uint64_t)(-(int64_t)v));
    } else {
        hp__put_u64(l, (uint64_t)v);
    }
}

/* Appends `key` (the field's name and colon) and v. */
static inline void hp__put_u64_field(hp__line_t *l, const char *key, uint64_t v)
{
    hp__puts(l, key);
    hp__put_u64(l, v);
}

/* Appends src escaped as the inside of a JSON string. */
static void hp__put_esc(hp__line_t *l, const char *src)
{
    char esc[512];
    size_t n = hp_log_escape(esc, sizeof(esc), src);
    hp__put(l, esc, n);
}

/*
 * Wall-clock microseconds at a monotonic reading the caller already took (0:
 * read the wall clock now). The offset between the two clocks is read once a
 * second per thread, so a request line costs no clock read of its own; a
 * step of the wall clock shows in the lines within a second.
 */
static uint64_t hp__wall_us_at(uint64_t mono_ns)
{
    static _Thread_local uint64_t until_ns; /* the offset is read again once mono_ns passes this */
    static _Thread_local int64_t offset_us; /* wall minus monotonic, in microseconds */
    if (mono_ns == 0)
        return hp_wall_us();
    if (mono_ns >= until_ns) {
        uint64_t wall = hp_wall_us(), mono = hp_now_ns();
        offset_us = (int64_t)wall - (int64_t)(mono / 1000);
        until_ns = mono + 1000000000ull;
    }
    return (uint64_t)((int64_t)(mono_ns / 1000) + offset_us);
}

/*
 * A line's start, {"ts":" and the RFC 3339 timestamp of wall-clock time us
 * with microseconds. The part up to the seconds is formatted once a second
 * per thread, which keeps gmtime_r off the line.
 */
static void hp__put_ts(hp__line_t *l, uint64_t us)
{
    static const char start[] = "{\"ts\":\"";
    static _Thread_local uint64_t sec = UINT64_MAX;
    static _Thread_local char prefix[sizeof(start) + HP_TIME_RFC3339_MAX];
    static _Thread_local size_t prefix_len;
    if (us / 1000000 != sec) {
        sec = us / 1000000;
        memcpy(prefix, start, sizeof(start) - 1);
        hp_time_rfc3339(prefix + sizeof(start) - 1, sizeof(prefix) - (sizeof(start) - 1), sec * 1000000, 0);
        prefix_len = strlen(prefix) - 1; /* without the Z */
    }
    hp__put(l, prefix, prefix_len);
    unsigned f = (unsigned)(us % 1000000);
    char frac[8] = {'.', 0, 0, 0, 0, 0, 0, 'Z'};
    memcpy(frac + 1, hp_decimal_pair(f / 10000), 2);
    memcpy(frac + 3, hp_decimal_pair(f / 100 % 100), 2);
    memcpy(frac + 5, hp_decimal_pair(f % 100), 2);
    hp__put(l, frac, 8);
}

static void hp__line_end(hp__line_t *l)
{
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    hp__log_commit(l->buf, l->len);
}

void hp_log_request(const hp_log_request_t *r)
{
    hp_log_level_t level = r->status >= 500 ? HP_LOG_ERROR : HP_LOG_INFO;
    /* Counted whatever the level filter: /debug/logs describes the traffic, not what was printed. */
    if (hp__log_observer != NULL)
        hp__log_observer->on_request(r, level);
    if (level < hp__log_min)
        return;
    if (hp_flag_get(HP_FLAG_request_log) == HP_request_log_off)
        return;
    const char *code = r->error >= 0 && r->error < HP_E__COUNT ? hp_errors[r->error].code : NULL;
    char local[PIPE_BUF];
    hp__line_t l = {.buf = hp__log_reserve(local), .len = 0};
    if (l.buf == NULL)
        return; /* the thread's buffer is full: dropped and counted */
    /* Constant text in as few pieces as the fields allow: each append costs a bounds check and a copy. */
    static const char info[] = "\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"";
    static const char error[] = "\",\"level\":\"error\",\"msg\":\"request\",\"request_id\":\"";
    hp__put_ts(&l, hp__wall_us_at(r->end_ns));
    if (level == HP_LOG_ERROR)
        hp__put(&l, error, sizeof(error) - 1);
    else
        hp__put(&l, info, sizeof(info) - 1);
    /* The request id, method and route are validated or static (runtime/http.c): they need no escaping. */
    hp__puts(&l, r->request_id != NULL ? r->request_id : "");
    hp__puts(&l, "\",\"thread\":");
    hp__put_int(&l, r->thread);
    hp__put_quoted(&l, ",\"method\":\"", r->method);
    hp__put_quoted(&l, ",\"route\":\"", r->route);
    hp__puts(&l, ",\"status\":");
    hp__put_int(&l, r->status);
    hp__put_u64_field(&l, ",\"duration_us\":", r->duration_us);
    hp__put_u64_field(&l, ",\"db_us\":", r->db_us);
    if (r->cache != NULL)
        hp__put_quoted(&l, ",\"cache\":\"", r->cache);
    else
        hp__puts(&l, ",\"cache\":null");
    if (code != NULL)
        hp__put_quoted(&l, ",\"error\":\"", code);
    if (r->error_reason != NULL) {
        hp__puts(&l, ",\"reason\":\"");
        hp__put_esc(&l, r->error_reason);
        hp__puts(&l, "\"");
    }
    /* The trace context was validated (hex digits only) by the HTTP seam, so it needs no escaping. */
    if (r->trace_id != NULL) {
        hp__put_quoted(&l, ",\"trace_id\":\"", r->trace_id);
        hp__put_quoted(&l, ",\"span_id\":\"", r->span_id != NULL ? r->span_id : "");
        if (r->parent_id != NULL)
            hp__put_quoted(&l, ",\"parent_id\":\"", r->parent_id);
    }
    hp__line_end(&l);
}

void hp_log(hp_log_level_t level, const char *fmt, ...)
{
    char msg[1024], escaped[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (hp__log_observer != NULL)
        hp__log_observer->on_event(level, msg);
    if (level < hp__log_min)
        return;
    hp_log_escape(escaped, sizeof(escaped), msg);
    char local[PIPE_BUF];
    hp__line_t l = {.buf = hp__log_reserve(local), .len = 0};
    if (l.buf == NULL)
        return;
    hp__put_ts(&l, hp_wall_us());
    hp__puts(&l, "\",\"level\":\"");
    hp__puts(&l, hp__level_names[level]);
    hp__put_quoted(&l, "\",\"msg\":\"", escaped);
    hp__line_end(&l);
}
