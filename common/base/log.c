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

static void hp__log_write(char *buf, int n, size_t cap)
{
    if (n < 0)
        return;
    if ((size_t)n >= cap - 1)
        n = (int)cap - 2; /* truncated: keep the line a line */
    buf[n++] = '\n';
    ssize_t r = write(STDOUT_FILENO, buf, (size_t)n);
    (void)r; /* a log line that cannot be written is dropped rather than blocking the loop on retries */
    if (hp__file.fd >= 0) {
        r = write(hp__file.fd, buf, (size_t)n);
        if (r > 0 && atomic_fetch_add(&hp__file.bytes, (uint64_t)r) + (uint64_t)r >= hp__file.max_bytes)
            hp__log_rotate();
    }
}

void hp_log_request(const hp_log_request_t *r)
{
    hp_log_level_t level = r->status >= 500 ? HP_LOG_ERROR : HP_LOG_INFO;
    /* Counted whatever the level filter: /debug/logs describes the traffic, not what was printed. */
    if (hp__log_observer != NULL)
        hp__log_observer->on_request(r, level);
    if (level < hp__log_min)
        return;
    char buf[PIPE_BUF], ts[HP_TIME_RFC3339_MAX], reason[256] = "", trace[128] = "";
    const char *code = r->error >= 0 && r->error < HP_E__COUNT ? hp_errors[r->error].code : NULL;
    hp_time_rfc3339(ts, sizeof(ts), hp_wall_us(), 6);
    /* The trace context was validated (hex digits only) by the HTTP seam, so it needs no escaping. */
    if (r->trace_id != NULL)
        snprintf(trace, sizeof(trace), ",\"trace_id\":\"%s\",\"span_id\":\"%s\"%s%s%s", r->trace_id,
                 r->span_id != NULL ? r->span_id : "", r->parent_id != NULL ? ",\"parent_id\":\"" : "",
                 r->parent_id != NULL ? r->parent_id : "", r->parent_id != NULL ? "\"" : "");
    if (r->error_reason != NULL)
        hp_log_escape(reason, sizeof(reason), r->error_reason);
    int n = snprintf(buf, sizeof(buf),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"request\",\"request_id\":\"%s\",\"thread\":%d,\"method\":\"%s\","
                     "\"route\":\"%s\",\"status\":%d,\"duration_us\":%llu,\"db_us\":%llu,\"cache\":%s%s%s%s%s%s%s%s%s%s}",
                     ts, hp__level_names[level], r->request_id != NULL ? r->request_id : "", r->thread, r->method, r->route,
                     r->status, (unsigned long long)r->duration_us, (unsigned long long)r->db_us, r->cache != NULL ? "\"" : "null",
                     r->cache != NULL ? r->cache : "", r->cache != NULL ? "\"" : "", code != NULL ? ",\"error\":\"" : "",
                     code != NULL ? code : "", code != NULL ? "\"" : "", r->error_reason != NULL ? ",\"reason\":\"" : "", reason,
                     r->error_reason != NULL ? "\"" : "", trace);
    hp__log_write(buf, n, sizeof(buf));
}

void hp_log(hp_log_level_t level, const char *fmt, ...)
{
    char msg[1024], escaped[2048], ts[HP_TIME_RFC3339_MAX], buf[PIPE_BUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (hp__log_observer != NULL)
        hp__log_observer->on_event(level, msg);
    if (level < hp__log_min)
        return;
    hp_log_escape(escaped, sizeof(escaped), msg);
    hp_time_rfc3339(ts, sizeof(ts), hp_wall_us(), 6);
    int n = snprintf(buf, sizeof(buf), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", ts, hp__level_names[level], escaped);
    hp__log_write(buf, n, sizeof(buf));
}
