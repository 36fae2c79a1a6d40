/*
 * log: structured JSON log lines on stdout, one per request and one per event,
 * and optionally the same lines in a file rotated by size.
 *
 * Each line is at most PIPE_BUF bytes (longer lines are cut to fit). An
 * event-loop thread formats its lines straight into a bounded buffer of its
 * own (base/logbuf.h) and never writes them itself: at the end of each loop
 * turn (hp_log_flush) it hands the filled chunks to the log's writer thread,
 * which writes them to stdout and the log file. When the writer is behind
 * and the thread's buffer is full, lines are dropped and counted
 * (hp_log_take_dropped) rather than waited for; a clean shutdown writes every
 * line (hp_log_buffer_stop, hp_log_writer_stop). Other threads write each
 * line at once. Writes to a pipe carry whole lines of at most PIPE_BUF bytes,
 * so lines from different threads never interleave. Values that come from
 * clients are never logged verbatim except the validated request id and
 * trace context; tokens and bodies are never logged. The runtime flag
 * request_log=off leaves the request lines out (events are still written).
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
    uint64_t end_ns; /* the monotonic clock (hp_now_ns) when the request ended, which dates the line; 0: read the clock */
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
 * Starts the writer thread that event-loop threads hand their lines to, and
 * registers hp_log_writer_stop() with atexit(3). Call once, before the loop
 * threads start (runtime/server.c); it inherits the caller's signal mask.
 * @return 0, or -1 when the thread cannot start (loop threads then write their lines at once)
 */
int hp_log_writer_start(void);

/**
 * Writes what every buffer handed over and stops the writer thread. Call after
 * the loop threads have ended (each with hp_log_buffer_stop); also runs at exit.
 * Idempotent.
 */
void hp_log_writer_stop(void);

/**
 * Gives the calling thread a buffer of its own (a loop thread's): its lines
 * wait there until hp_log_flush() hands them to the writer. hp_log_flush()
 * runs once per loop turn: it hands over the filled chunks, and the open one
 * once it is a few milliseconds old, and wakes the writer if it did. A thread
 * must call hp_log_buffer_stop() before it exits: it writes the thread's
 * remaining lines (on the calling thread) and frees the buffer. Without a
 * running writer, hp_log_buffer_start() does nothing and lines are written at
 * once.
 */
void hp_log_buffer_start(void);
void hp_log_flush(void);
void hp_log_buffer_stop(void);

/** @return the lines the calling thread's buffer dropped since the last call (0 for an unbuffered thread) */
uint64_t hp_log_take_dropped(void);

/**
 * Writes one request line; level is info for 1xx-4xx and error for 5xx. The
 * observer hears it even when the level filter or request_log=off leaves it out.
 */
void hp_log_request(const hp_log_request_t *r);

/** Writes one event line with a printf-style message. */
void hp_log(hp_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Escapes src into dst as the inside of a JSON string, truncating to fit.
 * @return the number of bytes written, excluding the NUL
 */
size_t hp_log_escape(char *dst, size_t dstlen, const char *src);

#endif
