/*
 * errors: the one list of the error codes hotplate answers with.
 *
 * Every JSON error body is {"error":{"code","message"}} with a code from
 * HP_ERROR_LIST, and the list gives each code its HTTP status, whether it is
 * a deadline that passed (the log counts timeouts apart), and the message of
 * a failure that has a fixed one. Responding (runtime/http.h) takes the id,
 * so a code and its status can never disagree, and the log counts answers by
 * id rather than by guessing from the code's text. docs/API.md lists every
 * code of the API; `hotplate describe --json` prints the list.
 *
 * Asynchronous callbacks receive failures as error strings (const char *err,
 * NULL on success): hp_err_<code>, the code's own string, compared by
 * pointer, so a db or payment callback needs no other error type.
 */
#ifndef HP_ERRORS_H
#define HP_ERRORS_H

#include <stddef.h>

/*
 * X(code, status, is_timeout, message): message is the text of a failure that
 * reaches a callback as an error string (hp_respond_failure answers with it),
 * or NULL where every caller says what went wrong.
 */
#define HP_ERROR_LIST(X)                                                                                                           \
    /* bodies and parameters */                                                                                                    \
    X(bad_json, 400, 0, NULL)                                                                                                      \
    X(too_deep, 400, 0, "JSON nesting is limited to 8 levels")                                                                     \
    X(invalid_field, 400, 0, NULL)                                                                                                 \
    X(missing_field, 400, 0, NULL)                                                                                                 \
    X(unknown_field, 400, 0, NULL)                                                                                                 \
    X(bad_param, 400, 0, NULL)                                                                                                     \
    X(bad_cursor, 400, 0, "the cursor is not one this listing produced")                                                           \
    X(missing_idempotency_key, 400, 0, "POST /orders needs an Idempotency-Key header of 1 to 64 printable characters")             \
    X(bad_args, 400, 0, NULL)                                                                                                      \
    X(unknown_statement, 400, 0, NULL)                                                                                             \
    X(unknown_flag, 400, 0, NULL)                                                                                                  \
    /* who is asking */                                                                                                            \
    X(unauthorized, 401, 0, NULL)                                                                                                  \
    X(forbidden, 403, 0, NULL)                                                                                                     \
    X(payment_declined, 402, 0, "the payment was declined")                                                                        \
    /* what is asked for */                                                                                                        \
    X(not_found, 404, 0, NULL)                                                                                                     \
    X(no_log, 404, 0, NULL)                                                                                                        \
    X(method_not_allowed, 405, 0, "this path does not take that method")                                                           \
    X(invalid_transition, 409, 0, NULL)                                                                                            \
    X(restaurant_closed, 409, 0, "the restaurant is closed now")                                                                   \
    X(out_of_stock, 409, 0, NULL)                                                                                                  \
    X(profile_in_progress, 409, 0, NULL)                                                                                           \
    X(body_too_large, 413, 0, "request bodies are limited to 64 KiB")                                                              \
    X(unknown_item, 422, 0, NULL)                                                                                                  \
    X(unavailable_item, 422, 0, NULL)                                                                                              \
    X(unknown_modifier, 422, 0, NULL)                                                                                              \
    X(empty_cart, 422, 0, "the cart has no lines")                                                                                 \
    X(too_many_lines, 422, 0, "a cart has at most 200 lines")                                                                      \
    X(headers_too_large, 431, 0, "the request line and headers are limited to 16 KiB")                                             \
    X(client_closed, 499, 0, "the client closed the connection before the answer")                                                 \
    /* the server and what it depends on */                                                                                        \
    X(explain_failed, 500, 0, NULL)                                                                                                \
    X(no_sample_args, 500, 0, NULL)                                                                                                \
    X(profile_failed, 500, 0, NULL)                                                                                                \
    X(profile_too_large, 500, 0, NULL)                                                                                             \
    X(not_supported, 501, 0, NULL)                                                                                                 \
    X(overloaded, 503, 0, "the server is at its in-flight limit; retry after the Retry-After delay")                               \
    X(shutting_down, 503, 0, "the server is shutting down")                                                                        \
    X(out_of_memory, 503, 0, NULL)                                                                                                 \
    X(db_unavailable, 503, 0, "the database is unavailable")                                                                       \
    X(db_error, 503, 0, "the database refused the statement")                                                                      \
    X(pool_exhausted, 503, 1, "no database connection became free in time")                                                        \
    X(redis_unavailable, 503, 0, "the cache is unavailable")                                                                       \
    X(redis_error, 503, 0, "the cache refused the command")                                                                        \
    X(pg_stat_statements_unavailable, 503, 0, NULL)                                                                                \
    X(db_timeout, 504, 1, "the database did not answer in time")                                                                   \
    X(lock_timeout, 504, 1, "a row lock was not granted in time; another transaction holds it")                                    \
    X(payment_timeout, 504, 1, "the payment gateway did not answer in time")                                                       \
    X(cache_timeout, 504, 1, "the cache did not answer in time")                                                                   \
    X(profile_timeout, 504, 1, NULL)

typedef enum {
#define HP__ERROR_ID(code, status, is_timeout, message) HP_E_##code,
    HP_ERROR_LIST(HP__ERROR_ID)
#undef HP__ERROR_ID
        HP_E__COUNT
} hp_error_t;

typedef struct st_hp_error_def_t {
    const char *code;
    int status;
    int is_timeout; /* a deadline passed (counted apart in /debug/logs) */
    const char *message;
} hp_error_def_t;

/* The table, in hp_error_t order. */
extern const hp_error_def_t hp_errors[HP_E__COUNT];

/* The error strings, one per code ("db_timeout"), for callbacks: compared by pointer. */
#define HP__ERROR_STR(code, status, is_timeout, message) extern const char hp_err_##code[];
HP_ERROR_LIST(HP__ERROR_STR)
#undef HP__ERROR_STR

/** @return the definition of an error */
static inline const hp_error_def_t *hp_error_def(hp_error_t e)
{
    return &hp_errors[e];
}

/**
 * @return the id of an error string: an hp_err_<code> (compared by pointer),
 * or a code's text from elsewhere; -1 when it is no code of the list
 */
int hp_error_of(const char *err);

#endif
