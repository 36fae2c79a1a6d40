/*
 * http: request contexts, attached operations and responses (see http.h).
 */
#include "runtime/http.h"
#include "base/clock.h"
#include "base/hex.h"
#include "base/log.h"
#include "base/router.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hp_op_attach(hp_req_t *r, hp_op_t *op)
{
    op->req = r;
    h2o_linklist_insert(&r->ops, &op->link);
}

void hp_op_detach(hp_op_t *op)
{
    if (op->req == NULL)
        return;
    h2o_linklist_unlink(&op->link);
    op->req = NULL;
}

/*
 * Called by h2o when the request's pool is cleared: after the response was
 * sent, or early when the client disconnected. The context is still readable
 * here and freed right after, so everything that may still point at it is cut
 * loose now.
 */
static void hp__req_on_dispose(void *p)
{
    hp_req_t *r = p;
    while (!h2o_linklist_is_empty(&r->ops)) {
        hp_op_t *op = H2O_STRUCT_FROM_MEMBER(hp_op_t, link, r->ops.next);
        hp_op_detach(op);
        if (op->on_abandon != NULL)
            op->on_abandon(op);
    }
    if (!r->responded) {
        /* The client went away before we answered; count it as finished so in-flight stays true. */
        r->responded = 1;
        uint64_t end_ns = hp_now_ns();
        hp_probe_request_done(r->thr, r->route, &r->probe, r->request_id, r->start_ns, end_ns, 499);
        atomic_fetch_sub_explicit(&r->thr->inflight, 1, memory_order_relaxed);
        hp_log_request(&(hp_log_request_t){.request_id = r->request_id,
                                           .method = r->route != NULL ? hp_route_method_name(r->route) : "-",
                                           .route = r->route != NULL ? r->route->pattern : "-",
                                           .status = 499,
                                           .duration_us = (end_ns - r->start_ns) / 1000,
                                           .end_ns = end_ns,
                                           .db_us = r->db_ns / 1000,
                                           .cache = r->cache,
                                           .error = HP_E_client_closed,
                                           .thread = r->thr->index});
    }
    r->h2o = NULL;
}

/* A request id is echoed only if it is short and made of safe characters, so it can go into logs unescaped. */
static int hp__request_id_ok(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > HP_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i != v.len; ++i) {
        char c = v.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':'))
            return 0;
    }
    return 1;
}

hp_req_t *hp_req_create(hp_thread_t *thr, h2o_req_t *req)
{
    hp_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), hp__req_on_dispose);
    memset(r, 0, sizeof(*r));
    r->h2o = req;
    r->thr = thr;
    r->start_ns = hp_now_ns();
    h2o_linklist_init_anchor(&r->ops);
    atomic_fetch_add_explicit(&thr->inflight, 1, memory_order_relaxed);

    h2o_iovec_t given = hp_req_header(r, "x-request-id");
    if (given.base != NULL && hp__request_id_ok(given)) {
        memcpy(r->request_id, given.base, given.len);
        r->request_id[given.len] = '\0';
    } else {
        /*
         * Not a secret, only unique enough to correlate log lines: a splitmix64
         * step over a per-thread counter (a bijection, so no repeats on one
         * thread) plus the thread's random seed, rather than a getrandom(2)
         * system call on every request.
         */
        uint64_t z = thr->request_id_seed + ++thr->request_id_seq * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        _Static_assert(sizeof(r->request_id) >= 16 + 8 + 1, "a generated request id is 24 hex digits");
        hp_hex_u64(r->request_id, z);
        hp_hex_u32(r->request_id + 16, (uint32_t)(thr->request_id_seed >> 32));
        r->request_id[24] = '\0';
    }
    return r;
}

static const char *hp__reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 500 ? "Client Error" : "Server Error";
    }
}

void hp_add_header(hp_req_t *r, const char *name, const char *value)
{
    if (r->h2o == NULL)
        return;
    h2o_add_header_by_str(&r->h2o->pool, &r->h2o->res.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

h2o_iovec_t hp_req_header(hp_req_t *r, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, name, strlen(name), -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return r->h2o->headers.entries[i].value;
}

/*
 * The method for the log line: the route's when one matched, else the
 * request's own if it is a short run of capitals (anything else could carry
 * bytes that do not belong in a log line).
 */
static const char *hp__log_method(hp_req_t *r)
{
    if (r->route != NULL)
        return hp_route_method_name(r->route);
    h2o_iovec_t m = r->h2o != NULL ? r->h2o->input.method : h2o_iovec_init(NULL, 0);
    if (m.len == 0 || m.len > 16)
        return "-";
    for (size_t i = 0; i != m.len; ++i)
        if (m.base[i] < 'A' || m.base[i] > 'Z')
            return "-";
    return h2o_strdup(&r->h2o->pool, m.base, m.len).base;
}

/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/). A traceparent is
 * "VV-TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT-PPPPPPPPPPPPPPPP-FF" in lower-case hex:
 * version, trace-id, the caller's span (parent-id) and flags. A valid one is
 * continued: its trace-id is kept and this request becomes a new span under
 * it. Anything else (absent, malformed, version ff, an all-zero id) starts a
 * new trace, as the specification asks. Either way the response carries the
 * traceparent of this request's span and the log line its ids.
 */
typedef struct st_hp__trace_t {
    char trace_id[33], span_id[17], parent_id[17], flags[3];
    int has_parent;
} hp__trace_t;

static int hp__lower_hex(const char *p, size_t n, int allow_zero)
{
    int nonzero = 0;
    for (size_t i = 0; i != n; ++i) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
        nonzero |= p[i] != '0';
    }
    return allow_zero || nonzero;
}

static int hp__traceparent_ok(h2o_iovec_t v)
{
    if (v.base == NULL || v.len < 55 || !hp__lower_hex(v.base, 2, 1) || memcmp(v.base, "ff", 2) == 0 || v.base[2] != '-' ||
        !hp__lower_hex(v.base + 3, 32, 0) || v.base[35] != '-' || !hp__lower_hex(v.base + 36, 16, 0) || v.base[52] != '-' ||
        !hp__lower_hex(v.base + 53, 2, 1))
        return 0;
    /* Version 00 is exactly 55 characters; a later version may append fields after another dash. */
    return v.len == 55 || (memcmp(v.base, "00", 2) != 0 && v.base[55] == '-');
}

/* The next 64 bits of this thread's id stream: a splitmix64 step, as for request ids (not a secret, only unique). */
static uint64_t hp__trace_bits(hp_thread_t *thr)
{
    static _Thread_local uint64_t seq;
    uint64_t z = thr->request_id_seed ^ 0x5851f42d4c957f2dull;
    z += ++seq * 0x9e3779b97f4a7c15ull + hp_now_ns();
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void hp__trace(hp_req_t *r, hp__trace_t *t)
{
    h2o_iovec_t v = hp_req_header(r, "traceparent");
    if (hp__traceparent_ok(v)) {
        memcpy(t->trace_id, v.base + 3, 32);
        memcpy(t->parent_id, v.base + 36, 16);
        memcpy(t->flags, v.base + 53, 2);
        t->has_parent = 1;
    } else {
        hp_hex_u64(t->trace_id, hp__trace_bits(r->thr));
        hp_hex_u64(t->trace_id + 16, hp__trace_bits(r->thr));
        memcpy(t->flags, "01", 2); /* sampled: this server records the span in its log */
        t->has_parent = 0;
    }
    t->trace_id[32] = t->parent_id[16] = t->flags[2] = '\0';
    uint64_t span;
    while ((span = hp__trace_bits(r->thr)) == 0)
        ; /* an all-zero span id is invalid */
    hp_hex_u64(t->span_id, span);
    t->span_id[16] = '\0';
}

/* Sends the response and writes its log line; error is the answer's error code, or -1. */
/*
 * Answers r. end_ns is when its response was ready, if the caller already
 * read the clock for it (the end of the JSON render, with the probes on), or
 * 0 to read it here: the request's duration and its log line's date.
 */
static void hp__send(hp_req_t *r, int status, h2o_iovec_t body, int error, uint64_t end_ns)
{
    if (r->responded || r->h2o == NULL)
        return;
    r->responded = 1;
    h2o_req_t *req = r->h2o;
    req->res.status = status;
    req->res.reason = hp__reason(status);
    /* JSON unless the handler chose a type (the metrics text, the dashboard's HTML). */
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1) == -1)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL,
                   H2O_STRLIT("hotplate")); /* runtime/server.c says why here */
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, r->request_id, strlen(r->request_id));
    hp__trace_t trace;
    hp__trace(r, &trace);
    char *tp = h2o_mem_alloc_pool(&req->pool, 55);
    memcpy(tp, "00-", 3);
    memcpy(tp + 3, trace.trace_id, 32);
    tp[35] = '-';
    memcpy(tp + 36, trace.span_id, 16);
    tp[52] = '-';
    memcpy(tp + 53, trace.flags, 2);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("traceparent"), 0, NULL, tp, 55);
    hp_now_ns_once(&end_ns);
    hp_log_request(&(hp_log_request_t){.request_id = r->request_id,
                                       .method = hp__log_method(r),
                                       .route = r->route != NULL ? r->route->pattern : "-",
                                       .status = status,
                                       .duration_us = (end_ns - r->start_ns) / 1000,
                                       .end_ns = end_ns,
                                       .db_us = r->db_ns / 1000,
                                       .cache = r->cache,
                                       .error = error,
                                       .error_reason = r->error_reason,
                                       .trace_id = trace.trace_id,
                                       .span_id = trace.span_id,
                                       .parent_id = trace.has_parent ? trace.parent_id : NULL,
                                       .thread = r->thr->index});
    atomic_fetch_sub_explicit(&r->thr->inflight, 1, memory_order_relaxed);
    hp_probe_request_done(r->thr, r->route, &r->probe, r->request_id, r->start_ns, end_ns, status);
    /* A known length keeps HTTP/1.1 connections alive for every status and spares the chunked framing. */
    req->res.content_length = body.len;
    /*
     * Every body already lives in the request's pool or in static memory
     * (hp_respond_raw's contract), so it is sent as it is. h2o_send_inline
     * would copy it into the pool once more: a second copy of a cached menu's
     * 5 kB on every request, and a malloc, since h2o serves a pool allocation
     * of over a kilobyte from the heap. A HEAD answer carries the headers only,
     * as h2o_send_inline's does.
     */
    static h2o_generator_t hp__generator = {NULL, NULL};
    h2o_start_response(req, &hp__generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

void hp_respond_raw(hp_req_t *r, int status, h2o_iovec_t body)
{
    hp__send(r, status, body, -1, 0);
}

/* Appends jansson's output to a buffer in the request pool, doubling as needed. */
struct hp__render {
    h2o_mem_pool_t *pool;
    char *buf;
    size_t len, cap;
};

static int hp__render_chunk(const char *chunk, size_t size, void *data)
{
    struct hp__render *rd = data;
    if (rd->len + size > rd->cap) {
        size_t cap = rd->cap * 2;
        while (cap < rd->len + size)
            cap *= 2;
        char *nb = h2o_mem_alloc_pool(rd->pool, cap);
        memcpy(nb, rd->buf, rd->len);
        rd->buf = nb, rd->cap = cap;
    }
    memcpy(rd->buf + rd->len, chunk, size);
    rd->len += size;
    return 0;
}

void hp_respond_json(hp_req_t *r, int status, json_t *doc)
{
    if (r->h2o == NULL || r->responded) {
        json_decref(doc);
        return;
    }
    uint64_t start = hp_probe_clock();
    struct hp__render rd = {&r->h2o->pool, NULL, 0, 1024};
    rd.buf = h2o_mem_alloc_pool(rd.pool, rd.cap);
    json_dump_callback(doc, hp__render_chunk, &rd, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(doc);
    uint64_t end = hp_probe_clock();
    hp_probe_stage_add(&r->probe, HP_STAGE_render, end - start);
    hp__send(r, status, h2o_iovec_init(rd.buf, rd.len), -1, end);
}

/*
 * 503s of a dependency that is down or moving (a PostgreSQL failover, a
 * Redis primary that Sentinel is replacing) tell the client when to retry;
 * overloaded and shutting_down set their own Retry-After before calling.
 */
static int hp__dependency_retryable(hp_error_t code)
{
    return code == HP_E_db_unavailable || code == HP_E_db_error || code == HP_E_pool_exhausted || code == HP_E_redis_unavailable ||
           code == HP_E_redis_error;
}

void hp_respond_error(hp_req_t *r, hp_error_t code, const char *message)
{
    if (r->h2o == NULL || r->responded)
        return;
    const hp_error_def_t *def = hp_error_def(code);
    if (hp__dependency_retryable(code))
        hp_add_header(r, "retry-after", "1");
    if (message == NULL)
        message = def->message != NULL ? def->message : def->code;
    char esc[512];
    hp_log_escape(esc, sizeof(esc), message);
    char *body = hp_pool_printf(r, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", def->code, esc);
    if (def->status >= 500 && r->error_reason == NULL)
        r->error_reason = message;
    hp__send(r, def->status, h2o_iovec_init(body, strlen(body)), (int)code, 0);
}

void hp_respond_failure(hp_req_t *r, const char *err)
{
    int code = hp_error_of(err);
    hp_respond_error(r, code >= 0 ? (hp_error_t)code : HP_E_db_unavailable, NULL);
}

/* Most of these strings are short (ids, messages), so the first pass formats into a stack buffer and the
 * result is copied; only a longer one is formatted a second time, into its pool allocation. */
char *hp_pool_printf(hp_req_t *r, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0, small[0] = '\0'; /* an encoding error: an empty string rather than garbage */
    char *buf = h2o_mem_alloc_pool(&r->h2o->pool, (size_t)n + 1);
    if ((size_t)n < sizeof(small)) {
        memcpy(buf, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return buf;
}
