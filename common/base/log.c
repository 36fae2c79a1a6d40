/*
 * log: structured JSON log lines (see log.h).
 */
#include "base/log.h"
#include "base/clock.h"
#include "base/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Writes whole lines, at most PIPE_BUF bytes a write, so that no write to a pipe interleaves with another thread's. */
static void hp__log_write_out(const char *buf, size_t n)
{
    while (n != 0) {
        size_t chunk = n;
        if (chunk > PIPE_BUF) {
            chunk = PIPE_BUF;
            while (chunk != 0 && buf[chunk - 1] != '\n')
                --chunk;
            if (chunk == 0)
                chunk = PIPE_BUF; /* no line is longer than PIPE_BUF: cannot happen, but never loop forever */
        }
        ssize_t r = write(STDOUT_FILENO, buf, chunk);
        (void)r; /* a log line that cannot be written is dropped rather than blocking the loop on retries */
        if (hp__file.fd >= 0) {
            r = write(hp__file.fd, buf, chunk);
            if (r > 0 && atomic_fetch_add(&hp__file.bytes, (uint64_t)r) + (uint64_t)r >= hp__file.max_bytes)
                hp__log_rotate();
        }
        buf += chunk, n -= chunk;
    }
}

/*
 * A loop thread's lines wait in its buffer until the loop ends its iteration
 * (hp_log_flush), so the lines of all the requests answered in one iteration
 * cost one write, not one each. Other threads (the main thread, the index
 * thread) write each line at once. Bounded: a full buffer is written out
 * before the next line goes in.
 */
#define HP__LOG_BUF (64 * 1024)

static _Thread_local struct {
    char *buf; /* NULL: unbuffered */
    size_t len;
} hp__tl;

void hp_log_buffer_start(void)
{
    if (hp__tl.buf == NULL)
        hp__tl.buf = malloc(HP__LOG_BUF); /* out of memory: the thread writes unbuffered */
    hp__tl.len = 0;
}

void hp_log_flush(void)
{
    if (hp__tl.len != 0) {
        hp__log_write_out(hp__tl.buf, hp__tl.len);
        hp__tl.len = 0;
    }
}

void hp_log_buffer_stop(void)
{
    hp_log_flush();
    free(hp__tl.buf);
    hp__tl.buf = NULL;
}

/* Hands over one line (newline included). */
static void hp__log_emit(const char *line, size_t n)
{
    if (hp__tl.buf == NULL) {
        hp__log_write_out(line, n);
        return;
    }
    if (hp__tl.len + n > HP__LOG_BUF)
        hp_log_flush();
    memcpy(hp__tl.buf + hp__tl.len, line, n);
    hp__tl.len += n;
}

/* ---- formatting ---------------------------------------------------------------------------------- */

/*
 * A line under construction, in a buffer of PIPE_BUF bytes: what does not fit
 * is cut, keeping room for the closing brace and the newline. Hand-written
 * appends rather than snprintf, which cost more than the rest of a cached
 * request (a profile of GET /healthz had vfprintf on most of its samples).
 */
typedef struct st_hp__line_t {
    char buf[PIPE_BUF];
    size_t len;
} hp__line_t;

static inline void hp__put(hp__line_t *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len;
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static inline void hp__puts(hp__line_t *l, const char *s)
{
    hp__put(l, s, strlen(s));
}

static void hp__put_u64(hp__line_t *l, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    hp__put(l, d + sizeof(d) - n, n);
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

/* Appends src escaped as the inside of a JSON string. */
static void hp__put_esc(hp__line_t *l, const char *src)
{
    char esc[512];
    size_t n = hp_log_escape(esc, sizeof(esc), src);
    hp__put(l, esc, n);
}

/*
 * The RFC 3339 timestamp with microseconds. The part up to the seconds is
 * formatted once a second per thread, which keeps gmtime_r off the line.
 */
static void hp__put_ts(hp__line_t *l)
{
    static _Thread_local uint64_t sec = UINT64_MAX;
    static _Thread_local char prefix[HP_TIME_RFC3339_MAX];
    static _Thread_local size_t prefix_len;
    uint64_t us = hp_wall_us();
    if (us / 1000000 != sec) {
        sec = us / 1000000;
        hp_time_rfc3339(prefix, sizeof(prefix), sec * 1000000, 0);
        prefix_len = strlen(prefix) - 1; /* without the Z */
    }
    hp__put(l, prefix, prefix_len);
    char frac[9] = ".000000Z";
    for (int i = 6, f = (int)(us % 1000000); i != 0; --i, f /= 10)
        frac[i] = (char)('0' + f % 10);
    hp__put(l, frac, 8);
}

static void hp__line_end(hp__line_t *l)
{
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    hp__log_emit(l->buf, l->len);
}

void hp_log_request(const hp_log_request_t *r)
{
    hp_log_level_t level = r->status >= 500 ? HP_LOG_ERROR : HP_LOG_INFO;
    /* Counted whatever the level filter: /debug/logs describes the traffic, not what was printed. */
    if (hp__log_observer != NULL)
        hp__log_observer->on_request(r, level);
    if (level < hp__log_min)
        return;
    const char *code = r->error >= 0 && r->error < HP_E__COUNT ? hp_errors[r->error].code : NULL;
    hp__line_t l;
    l.len = 0;
    hp__puts(&l, "{\"ts\":\"");
    hp__put_ts(&l);
    hp__puts(&l, "\",\"level\":\"");
    hp__puts(&l, hp__level_names[level]);
    /* The request id, method and route are validated or static (runtime/http.c): they need no escaping. */
    hp__puts(&l, "\",\"msg\":\"request\",\"request_id\":\"");
    hp__puts(&l, r->request_id != NULL ? r->request_id : "");
    hp__puts(&l, "\",\"thread\":");
    hp__put_int(&l, r->thread);
    hp__puts(&l, ",\"method\":\"");
    hp__puts(&l, r->method);
    hp__puts(&l, "\",\"route\":\"");
    hp__puts(&l, r->route);
    hp__puts(&l, "\",\"status\":");
    hp__put_int(&l, r->status);
    hp__puts(&l, ",\"duration_us\":");
    hp__put_u64(&l, r->duration_us);
    hp__puts(&l, ",\"db_us\":");
    hp__put_u64(&l, r->db_us);
    if (r->cache != NULL) {
        hp__puts(&l, ",\"cache\":\"");
        hp__puts(&l, r->cache);
        hp__puts(&l, "\"");
    } else {
        hp__puts(&l, ",\"cache\":null");
    }
    if (code != NULL) {
        hp__puts(&l, ",\"error\":\"");
        hp__puts(&l, code);
        hp__puts(&l, "\"");
    }
    if (r->error_reason != NULL) {
        hp__puts(&l, ",\"reason\":\"");
        hp__put_esc(&l, r->error_reason);
        hp__puts(&l, "\"");
    }
    /* The trace context was validated (hex digits only) by the HTTP seam, so it needs no escaping. */
    if (r->trace_id != NULL) {
        hp__puts(&l, ",\"trace_id\":\"");
        hp__puts(&l, r->trace_id);
        hp__puts(&l, "\",\"span_id\":\"");
        hp__puts(&l, r->span_id != NULL ? r->span_id : "");
        hp__puts(&l, "\"");
        if (r->parent_id != NULL) {
            hp__puts(&l, ",\"parent_id\":\"");
            hp__puts(&l, r->parent_id);
            hp__puts(&l, "\"");
        }
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
    hp__line_t l;
    l.len = 0;
    hp__puts(&l, "{\"ts\":\"");
    hp__put_ts(&l);
    hp__puts(&l, "\",\"level\":\"");
    hp__puts(&l, hp__level_names[level]);
    hp__puts(&l, "\",\"msg\":\"");
    hp__puts(&l, escaped);
    hp__puts(&l, "\"");
    hp__line_end(&l);
}
