/*
 * openloop_proto: schedule, response framing, request file and latency JSON
 * of the open-loop generator. See openloop_proto.h.
 *
 * Why our own HTTP framing: the generator only needs to know where each
 * response ends and its status, on keep-alive connections it owns; h2o's
 * client would bring its own event loop and timers, and picohttpparser is not
 * a Debian package of its own.
 */
#include "loadtests/openloop_proto.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int hp_ol_parse_schedule(const char *text, hp_ol_schedule_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    const char *p = text;
    while (*p != '\0') {
        if (s->num_steps == HP_OL_MAX_STEPS) {
            snprintf(err, errlen, "at most %d schedule steps", HP_OL_MAX_STEPS);
            return -1;
        }
        char *end;
        errno = 0;
        double rate = strtod(p, &end);
        if (end == p || *end != ':' || errno != 0 || !(rate > 0 && rate <= 1e6)) {
            snprintf(err, errlen, "step %zu: expected RATE:SECONDS with 0 < RATE <= 1e6", s->num_steps + 1);
            return -1;
        }
        p = end + 1;
        double seconds = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || errno != 0 || !(seconds > 0 && seconds <= 3600)) {
            snprintf(err, errlen, "step %zu: expected RATE:SECONDS with 0 < SECONDS <= 3600", s->num_steps + 1);
            return -1;
        }
        s->steps[s->num_steps++] = (hp_ol_step_t){rate, seconds};
        s->total_seconds += seconds;
        s->total_requests += (uint64_t)floor(rate * seconds);
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && *p == '\0') {
            snprintf(err, errlen, "trailing comma");
            return -1;
        }
    }
    if (s->num_steps == 0) {
        snprintf(err, errlen, "empty schedule");
        return -1;
    }
    return 0;
}

int hp_ol_intended_ns(const hp_ol_schedule_t *s, uint64_t k, uint64_t *ns, size_t *step)
{
    double start = 0;
    for (size_t i = 0; i != s->num_steps; ++i) {
        uint64_t n = (uint64_t)floor(s->steps[i].rate * s->steps[i].seconds);
        if (k < n) {
            *ns = (uint64_t)llround((start + (double)k / s->steps[i].rate) * 1e9);
            *step = i;
            return 0;
        }
        k -= n;
        start += s->steps[i].seconds;
    }
    return -1;
}

/* The value of header `name` in the header block [h, end), or NULL. */
static const char *hp_ol__header(const char *h, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - h) > nlen && h[nlen] == ':' && strncasecmp(h, name, nlen) == 0) {
            const char *v = h + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                ++v;
            *vlen = (size_t)(eol - v);
            return v;
        }
        h = eol + 2;
    }
    return NULL;
}

/* Walks a chunked body starting at p; returns 1 with *end past the last CRLF, 0 for more, -1 malformed. */
static int hp_ol__chunked(const char *p, const char *limit, const char **end)
{
    for (;;) {
        const char *eol = memmem(p, (size_t)(limit - p), "\r\n", 2);
        if (eol == NULL)
            return (limit - p) > 32 ? -1 : 0;
        size_t size = 0;
        const char *q = p;
        for (; q < eol && isxdigit((unsigned char)*q); ++q) {
            if (size > (SIZE_MAX >> 8))
                return -1;
            size = size * 16 + (size_t)(isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10));
        }
        if (q == p || (q < eol && *q != ';'))
            return -1;
        p = eol + 2;
        if (size == 0) {
            /* Trailers, if any, end with an empty line. */
            for (;;) {
                eol = memmem(p, (size_t)(limit - p), "\r\n", 2);
                if (eol == NULL)
                    return 0;
                if (eol == p) {
                    *end = p + 2;
                    return 1;
                }
                p = eol + 2;
            }
        }
        if ((size_t)(limit - p) < size + 2)
            return 0;
        if (p[size] != '\r' || p[size + 1] != '\n')
            return -1;
        p += size + 2;
    }
}

int hp_ol_parse_response(const char *buf, size_t len, int *status, size_t *consumed, int *close)
{
    const char *hend = memmem(buf, len, "\r\n\r\n", 4);
    if (hend == NULL)
        return len > 65536 ? -1 : 0;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' || !isdigit((unsigned char)buf[9]) ||
        !isdigit((unsigned char)buf[10]) || !isdigit((unsigned char)buf[11]))
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    const char *headers = memmem(buf, (size_t)(hend - buf) + 2, "\r\n", 2) + 2;
    const char *body = hend + 4, *limit = buf + len;
    size_t vlen;
    const char *v = hp_ol__header(headers, hend + 2, "connection", &vlen);
    *close = v != NULL && vlen == 5 && strncasecmp(v, "close", 5) == 0;
    if ((v = hp_ol__header(headers, hend + 2, "transfer-encoding", &vlen)) != NULL) {
        if (!(vlen == 7 && strncasecmp(v, "chunked", 7) == 0))
            return -1;
        const char *end;
        int rc = hp_ol__chunked(body, limit, &end);
        if (rc == 1)
            *consumed = (size_t)(end - buf);
        return rc;
    }
    size_t length = 0;
    if ((v = hp_ol__header(headers, hend + 2, "content-length", &vlen)) != NULL) {
        if (vlen == 0 || vlen > 12)
            return -1;
        for (size_t i = 0; i != vlen; ++i) {
            if (!isdigit((unsigned char)v[i]))
                return -1;
            length = length * 10 + (size_t)(v[i] - '0');
        }
    } else if (!(*status == 204 || *status == 304 || *status / 100 == 1)) {
        /* A body delimited by the connection's end: not something a keep-alive benchmark can frame. */
        return -1;
    }
    if ((size_t)(limit - body) < length)
        return 0;
    *consumed = (size_t)(body - buf) + length;
    return 1;
}

int hp_ol_replayed(const char *resp, size_t len)
{
    const char *hend = memmem(resp, len, "\r\n\r\n", 4);
    const char *headers = hend != NULL ? memmem(resp, (size_t)(hend - resp) + 2, "\r\n", 2) : NULL;
    if (headers == NULL)
        return 0;
    size_t vlen;
    const char *v = hp_ol__header(headers + 2, hend + 2, "idempotent-replayed", &vlen);
    return v != NULL && vlen == 4 && strncasecmp(v, "true", 4) == 0;
}

int hp_ol_parse_requests(char *data, size_t len, hp_ol_requests_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    size_t cap = 0;
    size_t pos = 0;
    while (pos < len) {
        char *nl = memchr(data + pos, '\n', len - pos);
        char *end;
        errno = 0;
        unsigned long long n = nl == NULL ? 0 : strtoull(data + pos, &end, 10);
        if (nl == NULL || end != nl || errno != 0 || n == 0 || n > len - (size_t)(nl + 1 - data)) {
            snprintf(err, errlen, "request %zu: expected \"<length>\\n\" and that many bytes", r->count + 1);
            goto fail;
        }
        if (r->count == cap) {
            cap = cap ? cap * 2 : 64;
            size_t *o = realloc(r->offsets, cap * sizeof(*o));
            if (o != NULL)
                r->offsets = o;
            size_t *l = realloc(r->lengths, cap * sizeof(*l));
            if (l != NULL)
                r->lengths = l;
            ptrdiff_t *s = realloc(r->seq_at, cap * sizeof(*s));
            if (s != NULL)
                r->seq_at = s;
            if (o == NULL || l == NULL || s == NULL) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
        }
        size_t off = (size_t)(nl + 1 - data);
        r->offsets[r->count] = off;
        r->lengths[r->count] = (size_t)n;
        char *m = memmem(data + off, (size_t)n, HP_OL_SEQ_MARKER, HP_OL_SEQ_LEN);
        r->seq_at[r->count] = m == NULL ? -1 : m - (data + off);
        r->count++;
        pos = off + (size_t)n;
    }
    if (r->count == 0) {
        snprintf(err, errlen, "no requests");
        goto fail;
    }
    r->data = data;
    return 0;
fail:
    free(r->offsets);
    free(r->lengths);
    free(r->seq_at);
    memset(r, 0, sizeof(*r));
    return -1;
}

void hp_ol_free_requests(hp_ol_requests_t *r)
{
    free(r->data);
    free(r->offsets);
    free(r->lengths);
    free(r->seq_at);
    memset(r, 0, sizeof(*r));
}

void hp_ol_print_latency(FILE *out, const hp_hist_snapshot_t *s)
{
    fprintf(out,
            "{\"count\": %llu, \"mean_us\": %.3f, \"p50_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, \"p999_us\": %.3f, "
            "\"max_us\": %.3f}",
            (unsigned long long)s->count, hp_hist_mean(s) / 1e3, (double)hp_hist_quantile(s, 0.5) / 1e3,
            (double)hp_hist_quantile(s, 0.9) / 1e3, (double)hp_hist_quantile(s, 0.99) / 1e3,
            (double)hp_hist_quantile(s, 0.999) / 1e3, (double)s->max_ns / 1e3);
}

void hp_ol_error_code(const char *resp, size_t len, char code[HP_OL_ERROR_CODE_MAX])
{
    static const char key[] = "\"error\":{\"code\":\"";
    const size_t klen = sizeof(key) - 1;
    code[0] = '\0';
    for (size_t i = 0; i + klen <= len; ++i) {
        if (resp[i] != '"' || memcmp(resp + i, key, klen) != 0)
            continue;
        size_t n = 0, at = i + klen;
        while (
            at + n < len && n < HP_OL_ERROR_CODE_MAX - 1 &&
            ((resp[at + n] >= 'a' && resp[at + n] <= 'z') || (resp[at + n] >= '0' && resp[at + n] <= '9') || resp[at + n] == '_'))
            ++n;
        if (n != 0 && at + n < len && resp[at + n] == '"') {
            memcpy(code, resp + at, n);
            code[n] = '\0';
        }
        return;
    }
}

void hp_ol_errors_add(hp_ol_errors_t *e, int status, const char *code)
{
    for (size_t i = 0; i != e->num_kinds; ++i) {
        if (e->kinds[i].status == status && strcmp(e->kinds[i].code, code) == 0) {
            ++e->kinds[i].count;
            return;
        }
    }
    if (e->num_kinds == HP_OL_MAX_ERROR_KINDS) {
        ++e->other;
        return;
    }
    hp_ol_error_kind_t *k = &e->kinds[e->num_kinds++];
    k->status = status;
    snprintf(k->code, sizeof(k->code), "%s", code);
    k->count = 1;
}

void hp_ol_print_errors(FILE *out, const hp_ol_errors_t *e)
{
    fputc('[', out);
    for (size_t i = 0; i != e->num_kinds; ++i)
        fprintf(out, "%s{\"status\": %d, \"code\": \"%s\", \"count\": %llu}", i ? ", " : "", e->kinds[i].status, e->kinds[i].code,
                (unsigned long long)e->kinds[i].count);
    if (e->other != 0)
        fprintf(out, "%s{\"status\": 0, \"code\": \"other\", \"count\": %llu}", e->num_kinds ? ", " : "",
                (unsigned long long)e->other);
    fputc(']', out);
}
