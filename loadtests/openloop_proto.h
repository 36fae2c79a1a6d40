/*
 * openloop_proto: the pure parts of the open-loop load generator
 * (loadtests/openloop.c), kept apart so that unit tests reach them without a
 * socket: the rate schedule, the HTTP/1.1 response framing, the request file
 * and the JSON summary of a latency histogram.
 *
 * Nothing here allocates except hp_ol_load_requests (whose result the caller
 * frees with hp_ol_free_requests) and nothing touches globals.
 */
#ifndef HP_OPENLOOP_PROTO_H
#define HP_OPENLOOP_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/histogram.h"

#define HP_OL_MAX_STEPS 64

/* The marker a request may carry where a unique number goes (an Idempotency-Key, say): 16 characters, replaced by 16 digits. */
#define HP_OL_SEQ_MARKER "SEQ_____________"
#define HP_OL_SEQ_LEN 16

/* One step of the arrival schedule: `rate` requests per second for `seconds` seconds. */
typedef struct st_hp_ol_step_t {
    double rate;
    double seconds;
} hp_ol_step_t;

typedef struct st_hp_ol_schedule_t {
    hp_ol_step_t steps[HP_OL_MAX_STEPS];
    size_t num_steps;
    double total_seconds;
    uint64_t total_requests; /* sum over steps of floor(rate * seconds) */
} hp_ol_schedule_t;

/**
 * Parses "RATE:SECONDS[,RATE:SECONDS...]" (rates 0 < r <= 1e6 per second,
 * seconds 0 < s <= 3600).
 * @return 0, or -1 with a message in err
 */
int hp_ol_parse_schedule(const char *text, hp_ol_schedule_t *s, char *err, size_t errlen);

/**
 * The intended send time of request number k (0-based) in nanoseconds from
 * the start, and the step it belongs to. Requests are evenly spaced within a
 * step, the first at the step's start.
 * @return 0, or -1 when k is past the schedule's end
 */
int hp_ol_intended_ns(const hp_ol_schedule_t *s, uint64_t k, uint64_t *ns, size_t *step);

/**
 * Frames one HTTP/1.1 response at the start of buf (Content-Length or chunked
 * bodies; a response without either must be a status that has no body).
 * @param status the status code, when complete
 * @param consumed bytes of buf the whole response takes, when complete
 * @param close 1 when the server announced Connection: close
 * @return 1 complete, 0 more bytes needed, -1 malformed
 */
int hp_ol_parse_response(const char *buf, size_t len, int *status, size_t *consumed, int *close);

/* The request file: records of "<length>\n<bytes>", each a whole HTTP/1.1 request. */
typedef struct st_hp_ol_requests_t {
    char *data;
    size_t *offsets;
    size_t *lengths;
    size_t count;
    ptrdiff_t *seq_at; /* per request, the offset of HP_OL_SEQ_MARKER in it, or -1 */
} hp_ol_requests_t;

/**
 * Parses a request file held in memory (takes ownership of data on success).
 * @return 0, or -1 with a message in err
 */
int hp_ol_parse_requests(char *data, size_t len, hp_ol_requests_t *r, char *err, size_t errlen);

void hp_ol_free_requests(hp_ol_requests_t *r);

/*
 * Error answers by kind: the status (400 or more) and the error code its body
 * names ({"error":{"code":"..."}}, hotplate's error body; "" for a body that
 * names none). A run at saturation answers 503s for more than one reason (the
 * in-flight limit's overloaded, the pool's pool_exhausted, a database that is
 * down), and only the code tells them apart.
 */
#define HP_OL_MAX_ERROR_KINDS 16
#define HP_OL_ERROR_CODE_MAX 40

typedef struct st_hp_ol_error_kind_t {
    int status;
    char code[HP_OL_ERROR_CODE_MAX];
    uint64_t count;
} hp_ol_error_kind_t;

typedef struct st_hp_ol_errors_t {
    hp_ol_error_kind_t kinds[HP_OL_MAX_ERROR_KINDS];
    size_t num_kinds;
    uint64_t other; /* answers of kinds past the first HP_OL_MAX_ERROR_KINDS */
} hp_ol_errors_t;

/**
 * Finds the error code in a response (headers and body, as framed by
 * hp_ol_parse_response): the string after the first "error":{"code":", if it is
 * 1 to HP_OL_ERROR_CODE_MAX - 1 characters of [a-z0-9_] and closed by a quote.
 * @param code receives it NUL-terminated, or "" when there is none
 */
void hp_ol_error_code(const char *resp, size_t len, char code[HP_OL_ERROR_CODE_MAX]);

/**
 * Whether a response (headers and body, as framed by hp_ol_parse_response)
 * carries `idempotent-replayed: true`: a POST /orders answered with the order
 * an earlier request of the same Idempotency-Key placed. A load whose keys
 * repeat an earlier run's measures replays instead of checkouts, so the
 * generator counts them and the harness refuses such a run.
 */
int hp_ol_replayed(const char *resp, size_t len);

/** Counts one answer of status with code into e. */
void hp_ol_errors_add(hp_ol_errors_t *e, int status, const char *code);

/** Writes e as [{"status": 503, "code": "overloaded", "count": N}, ...] plus {"status": 0, "code": "other", ...} for the rest. */
void hp_ol_print_errors(FILE *out, const hp_ol_errors_t *e);

/** Writes {"count","mean_us","p50_us","p90_us","p99_us","p999_us","max_us"} for a snapshot. */
void hp_ol_print_latency(FILE *out, const hp_hist_snapshot_t *s);

#endif
