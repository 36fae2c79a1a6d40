/*
 * Unit tests of the small text parsers behind configuration and logging:
 * common/redis's hp_redis_parse_url and hp_redis_parse_sentinel_url (the
 * REDIS_URL forms hotplate accepts, and every malformed one it must refuse at
 * startup rather than connect somewhere unexpected), runtime/pgha's
 * hp_pgha_multi_host (whether a PG_URL names several hosts, which starts the
 * failover watcher), common/log's hp_log_escape (JSON-safe output that never
 * splits an escape when it truncates and is always NUL-terminated), and
 * runtime/db's rule that keeps statement_timeout under the client deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/config.h"
#include "base/log.h"
#include "runtime/db.h"
#include "runtime/pgha.h"
#include "runtime/redis.h"

/* --- hp_redis_parse_sentinel_url and hp_pgha_multi_host ---------------------- */

typedef struct {
    char hosts[HP_REDIS_MAX_SENTINELS][64], name[64];
    int ports[HP_REDIS_MAX_SENTINELS], n;
} sentinels_t;

static int parse_sentinels(const char *url, sentinels_t *s)
{
    s->n = -1;
    return hp_redis_parse_sentinel_url(url, s->hosts, s->ports, HP_REDIS_MAX_SENTINELS, &s->n, s->name, sizeof(s->name));
}

static void test_sentinel_url_lists_sentinels_and_name(void **state)
{
    (void)state;
    sentinels_t s;
    assert_int_equal(parse_sentinels("sentinel://127.0.0.1:26379/hotplate", &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.hosts[0], "127.0.0.1");
    assert_int_equal(s.ports[0], 26379);
    assert_string_equal(s.name, "hotplate");
    assert_int_equal(parse_sentinels("sentinel://a:1,b.internal:65535/m", &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.hosts[1], "b.internal");
    assert_int_equal(s.ports[1], 65535);
    assert_string_equal(s.name, "m");
}

static void test_sentinel_url_refuses_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "redis://h:1/m",                    /* another scheme */
        "sentinel://h:1",                   /* no name */
        "sentinel://h:1/",                  /* empty name */
        "sentinel://h/m",                   /* a Sentinel needs its port */
        "sentinel://:1/m",                  /* no host */
        "sentinel://h:0/m",                 /* port out of range */
        "sentinel://h:65536/m",             /* port out of range */
        "sentinel://h:1x/m",                /* not a number */
        "sentinel://h:1,/m",                /* an empty entry */
        "sentinel://h:1/m/x",               /* a path in the name */
        "sentinel://a:1,b:2,c:3,d:4,e:5/m", /* more than HP_REDIS_MAX_SENTINELS */
    };
    sentinels_t s;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (parse_sentinels(bad[i], &s) != -1)
            fail_msg("%s accepted", bad[i]);
}

static int parse_switch(const char *msg, char *host, size_t hostlen, int *port)
{
    *port = -1;
    return hp_redis_parse_switch_master(msg, strlen(msg), "hotplate", host, hostlen, port);
}

static void test_switch_master_names_new_primary(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(parse_switch("hotplate 127.0.0.1 40001 127.0.0.1 40002", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 40002);
    assert_int_equal(parse_switch("hotplate ::1 6379 redis-b.internal 6380", host, sizeof(host), &port), 0);
    assert_string_equal(host, "redis-b.internal");
    assert_int_equal(port, 6380);
    /* Not terminated after len: the parser stops there. */
    assert_int_equal(hp_redis_parse_switch_master("hotplate a 1 b 2 trailing", 16, "hotplate", host, sizeof(host), &port), 0);
    assert_string_equal(host, "b");
    assert_int_equal(port, 2);
}

static void test_switch_master_refuses_others(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "other 127.0.0.1 1 127.0.0.1 2",      /* another primary the Sentinel watches */
        "hotplatex 127.0.0.1 1 127.0.0.1 2",  /* a name that only starts like ours */
        "hotplate 127.0.0.1 1 127.0.0.1",     /* four words */
        "hotplate 127.0.0.1 1 127.0.0.1 2 3", /* six words */
        "hotplate 127.0.0.1 1  127.0.0.1 2",  /* an empty word */
        "hotplate 127.0.0.1 1 127.0.0.1 0",   /* port out of range */
        "hotplate 127.0.0.1 x 127.0.0.1 2",   /* the old port is not one */
        "",
    };
    char host[64], tiny[4];
    int port;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (parse_switch(bad[i], host, sizeof(host), &port) != -1)
            fail_msg("%s accepted", bad[i]);
    /* A host that does not fit is refused, never cut. */
    assert_int_equal(parse_switch("hotplate a 1 long.host 2", tiny, sizeof(tiny), &port), -1);
}

static void test_pgha_multi_host(void **state)
{
    (void)state;
    assert_int_equal(hp_pgha_multi_host("postgresql://hotplate@127.0.0.1:1,127.0.0.1:2/hotplate?target_session_attrs=read-write"),
                     1);
    assert_int_equal(hp_pgha_multi_host("postgres://a,b/db"), 1);
    assert_int_equal(hp_pgha_multi_host("postgresql://u@/db?host=/s1,/s2&port=1,2"), 1);
    assert_int_equal(hp_pgha_multi_host("host=a,b port=1,2 dbname=x"), 1);
    assert_int_equal(hp_pgha_multi_host("postgresql://hotplate@/hotplate?host=/tmp/s&port=5432"), 0);
    assert_int_equal(hp_pgha_multi_host("postgresql://u@h:5432/db?application_name=a,b"), 0);
    assert_int_equal(hp_pgha_multi_host("host=/tmp port=5432 dbname=x options=a,b"), 0);
    assert_int_equal(hp_pgha_multi_host(NULL), 0);
}

/* --- hp_redis_parse_url ------------------------------------------------------ */

typedef struct {
    char host[256];
    int port;
    char path[108];
} url_t;

static int parse_url(const char *url, url_t *u)
{
    memset(u, 0x5a, sizeof(*u));
    return hp_redis_parse_url(url, u->host, sizeof(u->host), &u->port, u->path, sizeof(u->path));
}

static void assert_tcp(const char *url, const char *host, int port)
{
    url_t u;
    if (parse_url(url, &u) != 0)
        fail_msg("%s refused", url);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.path, "");
}

static void assert_url_refused(const char *url)
{
    url_t u;
    if (parse_url(url, &u) != -1)
        fail_msg("%s accepted (host \"%s\" port %d path \"%s\")", url, u.host, u.port, u.path);
}

/* URLs that name a TCP host and port; without a port, Redis's own 6379. */
static const struct {
    const char *url, *host;
    int port;
} tcp_urls[] = {
    {"redis://127.0.0.1:6379", "127.0.0.1", 6379},
    {"redis://redis.internal:6380", "redis.internal", 6380},
    {"redis://h:1", "h", 1},
    {"redis://h:65535", "h", 65535},
    /* the default port */
    {"redis://localhost", "localhost", 6379},
    {"redis://localhost/", "localhost", 6379},
    {"redis://10.0.0.5:7000/", "10.0.0.5", 7000},
};

static void test_redis_url_host_and_port(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(tcp_urls) / sizeof(tcp_urls[0]); ++i)
        assert_tcp(tcp_urls[i].url, tcp_urls[i].host, tcp_urls[i].port);
}

static void test_redis_url_unix_socket(void **state)
{
    (void)state;
    url_t u;
    assert_int_equal(parse_url("unix:///abs/path.sock", &u), 0);
    assert_string_equal(u.path, "/abs/path.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.port, 0);
    assert_int_equal(parse_url("unix:///", &u), 0);
    assert_string_equal(u.path, "/");
}

/*
 * Every malformed URL hotplate must refuse at startup rather than connect
 * somewhere unexpected, grouped by what is wrong with it.
 */
static const char *const refused_urls[] = {
    /* a unix socket needs an absolute path */
    "unix://", "unix://relative.sock", "unix://./r.sock",
    /* schemes */
    "", "localhost:6379", "127.0.0.1", "http://localhost:6379", "rediss://localhost", "REDIS://h", "redis:/h", "redis:localhost",
    "unix:/abs.sock", "tcp://h:6379", " redis://h", "redis//h",
    /* ports */
    "redis://h:0", "redis://h:65536", "redis://h:99999", "redis://h:", "redis://h:/", "redis://h:abc", "redis://h:63x9",
    "redis://h:-1", "redis://h:+6379", "redis://h: 6379", "redis://h:6379 ", "redis://h:1000000", "redis://h:6379:1",
    "redis://h:99999999999999999999",
    /* hosts */
    "redis://", "redis:///", "redis://:6379", "redis://user:secret@h:6379",
    /* a database path is refused */
    "redis://localhost/1", "redis://localhost:6379/0", "redis://localhost//"};

static void test_redis_url_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(refused_urls) / sizeof(refused_urls[0]); ++i)
        assert_url_refused(refused_urls[i]);
}

static void test_redis_url_unix_path_bounded(void **state)
{
    (void)state;
    char url[8 + 200];
    url_t u;
    /* sizeof(u.path) is 108: a 107-byte path fits with its NUL, 108 does not. */
    snprintf(url, sizeof(url), "unix://%s", "/");
    memset(url + 8, 'p', 106);
    url[8 + 106] = '\0';
    assert_int_equal(strlen(url + 7), 107);
    assert_int_equal(parse_url(url, &u), 0);
    assert_int_equal(strlen(u.path), 107);
    url[8 + 106] = 'p';
    url[8 + 107] = '\0';
    assert_url_refused(url);
}

static void test_redis_url_host_bounded(void **state)
{
    (void)state;
    char host[16], path[16], url[64];
    int port;
    snprintf(url, sizeof(url), "redis://%s:1", "aaaaaaaaaaaaaaa"); /* 15 bytes: fits 16 with the NUL */
    assert_int_equal(hp_redis_parse_url(url, host, sizeof(host), &port, path, sizeof(path)), 0);
    assert_string_equal(host, "aaaaaaaaaaaaaaa");
    snprintf(url, sizeof(url), "redis://%s:1", "aaaaaaaaaaaaaaaa"); /* 16 bytes */
    assert_int_equal(hp_redis_parse_url(url, host, sizeof(host), &port, path, sizeof(path)), -1);
}

/* --- hp_log_escape ----------------------------------------------------------- */

static void assert_escaped(const char *src, const char *want)
{
    char dst[256];
    memset(dst, 'Z', sizeof(dst));
    size_t n = hp_log_escape(dst, sizeof(dst), src);
    assert_string_equal(dst, want);
    assert_int_equal(n, strlen(want));
}

static const struct {
    const char *src, *want;
} escapes[] = {
    /* plain text is unchanged */
    {"", ""},
    {"hello world", "hello world"},
    {"caf\xc3\xa9 / {x} ~\x7f", "caf\xc3\xa9 / {x} ~\x7f"},
    /* quotes and backslashes */
    {"say \"hi\"", "say \\\"hi\\\""},
    {"C:\\dir\\", "C:\\\\dir\\\\"},
    {"\\\"", "\\\\\\\""},
    /* control characters as \u00xx */
    {"\x01", "\\u0001"},
    {"a\nb", "a\\u000ab"},
    {"\t\r", "\\u0009\\u000d"},
    {"\x1f", "\\u001f"},
    {"\x1b[31m", "\\u001b[31m"},
    /* 0x20 is the first byte left alone. */
    {" ", " "},
};

static void test_log_escape_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(escapes) / sizeof(escapes[0]); ++i)
        assert_escaped(escapes[i].src, escapes[i].want);
}

static void test_log_escape_every_control_char(void **state)
{
    (void)state;
    for (int c = 1; c < 0x20; ++c) {
        char src[2] = {(char)c, '\0'}, want[8];
        snprintf(want, sizeof(want), "\\u%04x", c);
        assert_escaped(src, want);
    }
}

static void test_log_escape_output_is_valid_json_string(void **state)
{
    (void)state;
    char src[256], dst[2048], doc[2100];
    for (int c = 1; c < 256; ++c)
        src[c - 1] = (char)(c < 0x80 ? c : 'x'); /* ASCII only: jansson checks UTF-8 */
    src[255] = '\0';
    hp_log_escape(dst, sizeof(dst), src);
    snprintf(doc, sizeof(doc), "[\"%s\"]", dst);
    json_error_t jerr;
    json_t *j = json_loads(doc, 0, &jerr);
    if (j == NULL)
        fail_msg("escaped text is not a JSON string: %s", jerr.text);
    assert_string_equal(json_string_value(json_array_get(j, 0)), src);
    json_decref(j);
}

static void test_log_escape_truncation_never_splits_escape(void **state)
{
    (void)state;
    /* "a" then \u0001 (6 bytes) then "b": with room for 1..6 bytes, the escape either fits whole or not at all. */
    static const struct {
        size_t dstlen;
        const char *want;
    } cases[] = {
        {1, ""}, {2, "a"}, {3, "a"}, {6, "a"}, {7, "a"}, {8, "a\\u0001"}, {9, "a\\u0001b"}, {100, "a\\u0001b"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *dst = malloc(cases[i].dstlen); /* exact size: ASan catches a write past dstlen */
        assert_non_null(dst);
        size_t n = hp_log_escape(dst, cases[i].dstlen,
                                 "a\x01"
                                 "b");
        if (strcmp(dst, cases[i].want) != 0)
            fail_msg("dstlen %zu: got \"%s\", want \"%s\"", cases[i].dstlen, dst, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
        free(dst);
    }
}

static void test_log_escape_truncation_never_splits_two_byte_escape(void **state)
{
    (void)state;
    char dst[4];
    /* x then \" needs 4 bytes with the NUL: with 3, only "x" fits. */
    assert_int_equal(hp_log_escape(dst, 3, "x\"y"), 1);
    assert_string_equal(dst, "x");
    assert_int_equal(hp_log_escape(dst, 4, "x\"y"), 3);
    assert_string_equal(dst, "x\\\"");
    assert_int_equal(hp_log_escape(dst, 4, "\\\\"), 2);
    assert_string_equal(dst, "\\\\");
}

static void test_log_escape_truncation_stops_not_skips(void **state)
{
    (void)state;
    /* After an escape that does not fit, later plain bytes must not be appended out of order. */
    char dst[5];
    assert_int_equal(hp_log_escape(dst, sizeof(dst), "ab\ncd"), 2);
    assert_string_equal(dst, "ab");
}

static void test_log_escape_long_input_fills_and_terminates(void **state)
{
    (void)state;
    char src[1000], dst[64];
    memset(src, 'q', sizeof(src) - 1);
    src[sizeof(src) - 1] = '\0';
    memset(dst, 'Z', sizeof(dst));
    assert_int_equal(hp_log_escape(dst, sizeof(dst), src), 63);
    assert_int_equal(strlen(dst), 63);
}

static void test_log_escape_zero_length_writes_nothing(void **state)
{
    (void)state;
    char guard = 'G';
    assert_int_equal(hp_log_escape(&guard, 0, "abc"), 0);
    assert_int_equal(guard, 'G');
}

/* --- hp_db_statement_timeout_ms --------------------------------------------------- */

static int stmt_timeout(int statement_timeout_ms, int db_timeout_ms)
{
    hp_config_t cfg = {.statement_timeout_ms = statement_timeout_ms, .db_timeout_ms = db_timeout_ms};
    return hp_db_statement_timeout_ms(&cfg);
}

static void test_statement_timeout_kept_under_the_client_deadline(void **state)
{
    (void)state;
    /* The defaults: 5 s is already under 6 s less a tenth, so it stays. */
    assert_int_equal(stmt_timeout(5000, 6000), 5000);
    /* A tenth of the deadline when that is more than 100 ms. */
    assert_int_equal(stmt_timeout(5000, 2000), 1800);
    /* At least 100 ms below it otherwise: tests/e2e/test_timeouts.py's 300 ms deadline gets 200 ms, not 270. */
    assert_int_equal(stmt_timeout(5000, 300), 200);
    assert_int_equal(stmt_timeout(5000, 800), 700);
    /* A deadline too short for the margin still leaves PostgreSQL a timeout (0 would mean none). */
    assert_int_equal(stmt_timeout(5000, 100), 1);
    assert_int_equal(stmt_timeout(5000, 50), 1);
    /* A configured timeout already under the cap is kept. */
    assert_int_equal(stmt_timeout(150, 300), 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinel_url_lists_sentinels_and_name),
        cmocka_unit_test(test_sentinel_url_refuses_malformed),
        cmocka_unit_test(test_switch_master_names_new_primary),
        cmocka_unit_test(test_switch_master_refuses_others),
        cmocka_unit_test(test_pgha_multi_host),
        cmocka_unit_test(test_redis_url_host_and_port),
        cmocka_unit_test(test_redis_url_unix_socket),
        cmocka_unit_test(test_redis_url_unix_path_bounded),
        cmocka_unit_test(test_redis_url_refused),
        cmocka_unit_test(test_redis_url_host_bounded),
        cmocka_unit_test(test_log_escape_cases),
        cmocka_unit_test(test_log_escape_every_control_char),
        cmocka_unit_test(test_log_escape_output_is_valid_json_string),
        cmocka_unit_test(test_log_escape_truncation_never_splits_escape),
        cmocka_unit_test(test_log_escape_truncation_never_splits_two_byte_escape),
        cmocka_unit_test(test_log_escape_truncation_stops_not_skips),
        cmocka_unit_test(test_log_escape_long_input_fills_and_terminates),
        cmocka_unit_test(test_log_escape_zero_length_writes_nothing),
        cmocka_unit_test(test_statement_timeout_kept_under_the_client_deadline),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
