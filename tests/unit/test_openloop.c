/*
 * Unit tests of loadtests/openloop_proto.c, the pure parts of the open-loop
 * generator: the rate schedule and each request's intended send time, HTTP/1.1
 * response framing (Content-Length, chunked, split across reads, malformed),
 * the request file with its sequence marker, and the latency JSON.
 *
 * The .c file is included, as h2o's unit tests do, because the generator is a
 * tool outside hpcore. Nothing here asserts on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loadtests/openloop_proto.c"

static void test_schedule_parse(void **state)
{
    (void)state;
    hp_ol_schedule_t s;
    char err[128];
    assert_int_equal(hp_ol_parse_schedule("1000:2,500.5:1", &s, err, sizeof(err)), 0);
    assert_int_equal(s.num_steps, 2);
    assert_true(s.steps[1].rate == 500.5);
    assert_true(s.total_seconds == 3.0);
    assert_int_equal(s.total_requests, 2000 + 500);
    const char *bad[] = {"", "1000", "1000:", ":2", "0:2", "-5:2", "1000:0", "1000:2,", "1000:2;3:4", "2e6:1", "10:4000", NULL};
    for (const char **b = bad; *b != NULL; ++b)
        assert_int_equal(hp_ol_parse_schedule(*b, &s, err, sizeof(err)), -1);
}

static void test_intended_times(void **state)
{
    (void)state;
    hp_ol_schedule_t s;
    char err[128];
    assert_int_equal(hp_ol_parse_schedule("10:1,100:0.5", &s, err, sizeof(err)), 0);
    uint64_t ns;
    size_t step;
    /* Evenly spaced: request 3 of step 0 at 300 ms. */
    assert_int_equal(hp_ol_intended_ns(&s, 3, &ns, &step), 0);
    assert_int_equal(ns, 300000000);
    assert_int_equal(step, 0);
    /* The first request of step 1 starts at 1 s, the next 10 ms later. */
    assert_int_equal(hp_ol_intended_ns(&s, 10, &ns, &step), 0);
    assert_int_equal(ns, 1000000000);
    assert_int_equal(step, 1);
    assert_int_equal(hp_ol_intended_ns(&s, 11, &ns, &step), 0);
    assert_int_equal(ns, 1010000000);
    /* 10 + 50 requests in all; the 61st is past the end. */
    assert_int_equal(hp_ol_intended_ns(&s, 59, &ns, &step), 0);
    assert_int_equal(hp_ol_intended_ns(&s, 60, &ns, &step), -1);
    /* Monotonic over the whole schedule. */
    uint64_t prev = 0;
    for (uint64_t k = 0; k != s.total_requests; ++k) {
        assert_int_equal(hp_ol_intended_ns(&s, k, &ns, &step), 0);
        assert_true(k == 0 || ns > prev);
        prev = ns;
    }
}

static int parse(const char *text, int *status, size_t *consumed, int *close)
{
    return hp_ol_parse_response(text, strlen(text), status, consumed, close);
}

/*
 * r starts with one whole response of status want_status, want_consumed
 * bytes long, that asks for the connection to be closed or not (want_close;
 * -1: not checked); every strict prefix of it needs more bytes.
 */
static void assert_framed(const char *r, int want_status, size_t want_consumed, int want_close)
{
    int status, close;
    size_t consumed;
    assert_int_equal(parse(r, &status, &consumed, &close), 1);
    assert_int_equal(status, want_status);
    assert_int_equal(consumed, want_consumed);
    if (want_close >= 0)
        assert_int_equal(close, want_close);
    for (size_t n = 0; n < want_consumed; ++n)
        assert_int_equal(hp_ol_parse_response(r, n, &status, &consumed, &close), 0);
}

static void test_response_content_length(void **state)
{
    (void)state;
    int status, close;
    size_t consumed;
    /* The next response's first bytes are not part of this one. */
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Cache: hit\r\n\r\nhelloHTTP/1.1";
    assert_framed(r, 200, strlen(r) - strlen("HTTP/1.1"), 0);
    assert_int_equal(
        parse("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nConnection: close\r\n\r\n", &status, &consumed, &close), 1);
    assert_int_equal(status, 503);
    assert_int_equal(close, 1);
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", &status, &consumed, &close), 1);
}

static void test_response_chunked(void **state)
{
    (void)state;
    int status, close;
    size_t consumed;
    const char *r = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na;x=y\r\n0123456789\r\n0\r\n\r\n";
    assert_framed(r, 404, strlen(r), -1);
    /* A trailer after the last chunk. */
    const char *t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n";
    assert_int_equal(parse(t, &status, &consumed, &close), 1);
    assert_int_equal(consumed, strlen(t));
}

/* A replayed checkout is told apart by its header, wherever it stands among the others and in any case; nothing else counts. */
static void test_response_replayed(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nidempotent-replayed: true\r\n\r\n{}",
        "HTTP/1.1 201 Created\r\nIdempotent-Replayed:true\r\nContent-Length: 2\r\n\r\n{}",
    };
    static const char *const no[] = {
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 201 Created\r\nidempotent-replayed: false\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 201 Created\r\nx-idempotent-replayed: true\r\nContent-Length: 0\r\n\r\n",
        /* In the body, not the headers. */
        "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nidempotent-replayed: true\r\n",
        "HTTP/1.1 201 Created\r\nidempotent-replayed: true",
        "",
    };
    for (size_t i = 0; i != sizeof(yes) / sizeof(yes[0]); ++i)
        assert_int_equal(hp_ol_replayed(yes[i], strlen(yes[i])), 1);
    for (size_t i = 0; i != sizeof(no) / sizeof(no[0]); ++i)
        assert_int_equal(hp_ol_replayed(no[i], strlen(no[i])), 0);
}

static void test_response_malformed(void **state)
{
    (void)state;
    /* The last: a 200 without a length would end with the connection, which is not framable on keep-alive. */
    static const char *const bad[] = {"SPDY/3 200 OK\r\n\r\n",
                                      "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                                      "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
                                      "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"};
    int status, close;
    size_t consumed;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (parse(bad[i], &status, &consumed, &close) != -1)
            fail_msg("accepted: %s", bad[i]);
}

static void code_of(const char *resp, char code[HP_OL_ERROR_CODE_MAX])
{
    hp_ol_error_code(resp, strlen(resp), code);
}

/* The error code comes from hotplate's error body; anything else, or a code that is not one, gives "". */
static void test_error_code(void **state)
{
    (void)state;
    char code[HP_OL_ERROR_CODE_MAX];
    code_of("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 60\r\n\r\n"
            "{\"error\":{\"code\":\"pool_exhausted\",\"message\":\"no database connection\"}}",
            code);
    assert_string_equal(code, "pool_exhausted");
    static const char *const none[] = {
        "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad",
        "HTTP/1.1 503 x\r\n\r\n{\"error\":{\"code\":\"\"}}",            /* empty */
        "HTTP/1.1 503 x\r\n\r\n{\"error\":{\"code\":\"Over loaded\"}}", /* not [a-z0-9_] */
        "HTTP/1.1 503 x\r\n\r\n{\"error\":{\"code\":\"overloaded",      /* cut off */
        "HTTP/1.1 503 x\r\n\r\n{\"error\":{\"code\":\"a_code_far_longer_than_the_forty_bytes_kept\"}}",
    };
    for (size_t i = 0; i != sizeof(none) / sizeof(none[0]); ++i) {
        code_of(none[i], code);
        if (code[0] != '\0')
            fail_msg("found %s in %s", code, none[i]);
    }
}

/* Kinds are counted by status and code together; past the table's size they go to "other", and the JSON says so. */
static void test_error_kinds(void **state)
{
    (void)state;
    hp_ol_errors_t e;
    memset(&e, 0, sizeof(e));
    hp_ol_errors_add(&e, 503, "overloaded");
    hp_ol_errors_add(&e, 503, "pool_exhausted");
    hp_ol_errors_add(&e, 503, "overloaded");
    hp_ol_errors_add(&e, 504, "overloaded");
    assert_int_equal(e.num_kinds, 3);
    assert_int_equal(e.kinds[0].count, 2);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    hp_ol_print_errors(f, &e);
    fclose(f);
    assert_string_equal(buf, "[{\"status\": 503, \"code\": \"overloaded\", \"count\": 2}, "
                             "{\"status\": 503, \"code\": \"pool_exhausted\", \"count\": 1}, "
                             "{\"status\": 504, \"code\": \"overloaded\", \"count\": 1}]");
    free(buf);
    for (int i = 0; i != HP_OL_MAX_ERROR_KINDS + 2; ++i)
        hp_ol_errors_add(&e, 500 + i, "");
    assert_int_equal(e.num_kinds, HP_OL_MAX_ERROR_KINDS);
    assert_int_equal(e.other, 5);
}

static void test_request_file(void **state)
{
    (void)state;
    const char *text = "18\nGET / HTTP/1.1\r\n\r\n41\nPOST /o HTTP/1.1\r\nK: SEQ_____________\r\n\r\n";
    char *data = strdup(text);
    hp_ol_requests_t r;
    char err[128];
    assert_int_equal(hp_ol_parse_requests(data, strlen(data), &r, err, sizeof(err)), 0);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.lengths[0], 18);
    assert_memory_equal(r.data + r.offsets[0], "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(r.seq_at[0], -1);
    assert_int_equal(r.seq_at[1], strlen("POST /o HTTP/1.1\r\nK: "));
    hp_ol_free_requests(&r);

    const char *bad[] = {"", "x\nabc", "10\nshort", "0\n", "3\nabc4\nab", NULL};
    for (const char **b = bad; *b != NULL; ++b) {
        char *d = strdup(*b);
        assert_int_equal(hp_ol_parse_requests(d, strlen(d), &r, err, sizeof(err)), -1);
        free(d);
    }
}

static void test_latency_json(void **state)
{
    (void)state;
    static hp_hist_t h;
    hp_hist_reset(&h);
    for (uint64_t us = 1; us <= 1000; ++us)
        hp_hist_record(&h, us * 1000);
    hp_hist_snapshot_t s;
    memset(&s, 0, sizeof(s));
    hp_hist_merge_into(&s, &h);
    char buf[512];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    hp_ol_print_latency(f, &s);
    fclose(f);
    double p50, p99, max;
    unsigned long long count;
    assert_non_null(strstr(buf, "\"count\": 1000"));
    assert_int_equal(sscanf(strstr(buf, "\"count\""), "\"count\": %llu", &count), 1);
    assert_int_equal(sscanf(strstr(buf, "\"p50_us\""), "\"p50_us\": %lf", &p50), 1);
    assert_int_equal(sscanf(strstr(buf, "\"p99_us\""), "\"p99_us\": %lf", &p99), 1);
    assert_int_equal(sscanf(strstr(buf, "\"max_us\""), "\"max_us\": %lf", &max), 1);
    /* Within the histogram's 0.79% of the exact order statistics. */
    assert_true(p50 > 500 * 0.99 && p50 < 500 * 1.01);
    assert_true(p99 > 990 * 0.99 && p99 < 990 * 1.01);
    assert_true(max == 1000.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_parse),
        cmocka_unit_test(test_intended_times),
        cmocka_unit_test(test_response_content_length),
        cmocka_unit_test(test_response_chunked),
        cmocka_unit_test(test_response_replayed),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_error_code),
        cmocka_unit_test(test_error_kinds),
        cmocka_unit_test(test_request_file),
        cmocka_unit_test(test_latency_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
