/*
 * log: structured JSON log lines on stdout, one per request and one per event,
 * and optionally the same lines in a file rotated by size.
 *
 * Each line is formatted into a buffer of PIPE_BUF bytes (longer lines are cut
 * to fit). An event-loop thread keeps its lines in a buffer of its own until
 * its loop ends the iteration (hp_log_flush), so the lines of every request of
 * one iteration cost one write(2); other threads write each line at once.
 * Writes carry whole lines of at most PIPE_BUF bytes, so lines from different
 * threads never interleave (such writes to a pipe are atomic). Values that come from clients are never logged verbatim except the
 * validated request id and trace context; tokens and bodies are never logged.
 *
 * Every line, printed or filtered out, is also handed to the observer that
 * main.c installs (profiling/logs.c, GET /debug/logs, which counts lines by
 * level and error code over windows and keeps the last errors and timeouts).
 * This module knows nothing of it: the observer is a pair of callbacks.
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/errors.h"

typedef enum { HP_LOG_DEBUG, HP_LOG_INFO, HP_LOG_WARN, HP_LOG_ERROR } hp_log_level_t;

/* The fields of one request line. Strings are NUL-terminated; NULL means absent. */
typedef struct st_hp_log_request_t {
    const char *request_id;
    const char *method;
    const char *route; /* the route pattern, never the raw path */
    int status;
    uint64_t duration_us;
    uint64_t db_us;
    const char *cache;        /* hit, miss, bypass, error or NULL */
    int error;                /* the answer's error code (hp_error_t) for 4xx/5xx, or -1 */
    const char *error_reason; /* why, for 5xx and timeouts */
    const char *trace_id;     /* W3C trace-id, 32 lower-case hex digits, or NULL */
    const char *span_id;      /* this request's span (the parent-id of the traceparent we answer), 16 hex digits */
    const char *parent_id;    /* the caller's span from its traceparent, or NULL when we started the trace */
    int thread;
} hp_log_request_t;

/*
 * Who else hears every line: called on the thread that writes it, before the
 * level filter, so it must be cheap and take no lock on the request path.
 */
typedef struct st_hp_log_observer_t {
    void (*on_request)(const hp_log_request_t *r, hp_log_level_t level);
    void (*on_event)(hp_log_level_t level, const char *msg); /* msg unescaped */
} hp_log_observer_t;

/** Installs the observer (static storage), or none with NULL. Call once at startup, before threads start. */
void hp_log_set_observer(const hp_log_observer_t *observer);

/** Sets the least severe level that is written (default INFO). */
void hp_log_set_level(hp_log_level_t level);

/** @return the level's name as written in the "level" field */
const char *hp_log_level_name(hp_log_level_t level);

/**
 * Also writes every line to the file at path (created mode 0644, appended
 * to), rotated when it reaches max_bytes: path becomes path.1, path.1 becomes
 * path.2 and so on, keeping `keep` rotated files. Call once at startup,
 * before threads start.
 * @return 0, or -1 with the reason in err
 */
int hp_log_open_file(const char *path, uint64_t max_bytes, int keep, char *err, size_t errlen);

/**
 * Describes the log file.
 * @return 1 with its path, the bytes in the current file and the rotations so far; 0 when there is no file
 */
int hp_log_file_info(const char **path, uint64_t *bytes, uint64_t *rotations);

/**
 * Makes the calling thread keep its lines until hp_log_flush(): for an event
 * loop's thread, which flushes once per iteration and at its end
 * (runtime/server.c). hp_log_buffer_stop() flushes and goes back to writing
 * each line at once; a thread must call it before it exits, or its last lines
 * are lost.
 */
void hp_log_buffer_start(void);
void hp_log_flush(void);
void hp_log_buffer_stop(void);

/** Writes one request line; level is info for 1xx-4xx and error for 5xx. */
void hp_log_request(const hp_log_request_t *r);

/** Writes one event line with a printf-style message. */
void hp_log(hp_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Escapes src into dst as the inside of a JSON string, truncating to fit.
 * @return the number of bytes written, excluding the NUL
 */
size_t hp_log_escape(char *dst, size_t dstlen, const char *src);

#endif
