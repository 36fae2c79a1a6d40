/*
 * log: structured JSON log lines (see log.h).
 */
#include "common/log.h"
#include "common/clock.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static hp_log_level_t hp__log_min = HP_LOG_INFO;

static const char *const hp__level_names[] = {"debug", "info", "warn", "error"};

void hp_log_set_level(hp_log_level_t level)
{
    hp__log_min = level;
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

/* Formats the RFC 3339 UTC timestamp with microseconds. */
static void hp__log_ts(char *buf, size_t len)
{
    uint64_t us = hp_wall_us();
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (unsigned)(us % 1000000));
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
}

void hp_log_request(const hp_log_request_t *r)
{
    hp_log_level_t level = r->status >= 500 ? HP_LOG_ERROR : HP_LOG_INFO;
    if (level < hp__log_min)
        return;
    char buf[PIPE_BUF], ts[64], reason[256] = "";
    hp__log_ts(ts, sizeof(ts));
    if (r->error_reason != NULL)
        hp_log_escape(reason, sizeof(reason), r->error_reason);
    int n = snprintf(buf, sizeof(buf),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"request\",\"request_id\":\"%s\",\"thread\":%d,\"method\":\"%s\","
                     "\"route\":\"%s\",\"status\":%d,\"duration_us\":%llu,\"db_us\":%llu,\"cache\":%s%s%s%s%s%s%s%s%s}",
                     ts, hp__level_names[level], r->request_id != NULL ? r->request_id : "", r->thread, r->method, r->route,
                     r->status, (unsigned long long)r->duration_us, (unsigned long long)r->db_us, r->cache != NULL ? "\"" : "null",
                     r->cache != NULL ? r->cache : "", r->cache != NULL ? "\"" : "", r->error_code != NULL ? ",\"error\":\"" : "",
                     r->error_code != NULL ? r->error_code : "", r->error_code != NULL ? "\"" : "",
                     r->error_reason != NULL ? ",\"reason\":\"" : "", reason, r->error_reason != NULL ? "\"" : "");
    hp__log_write(buf, n, sizeof(buf));
}

void hp_log(hp_log_level_t level, const char *fmt, ...)
{
    if (level < hp__log_min)
        return;
    char msg[1024], escaped[2048], ts[64], buf[PIPE_BUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hp_log_escape(escaped, sizeof(escaped), msg);
    hp__log_ts(ts, sizeof(ts));
    int n = snprintf(buf, sizeof(buf), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", ts, hp__level_names[level], escaped);
    hp__log_write(buf, n, sizeof(buf));
}
