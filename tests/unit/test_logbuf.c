/*
 * Unit tests of base/logbuf: the bounded buffer a loop thread's log lines wait
 * in for the writer thread. That it is bounded (a full buffer refuses lines
 * and counts them, it never grows), that publish and drain hand over exactly
 * the lines written, in order and whole, that a drained chunk is reused, and
 * a smoke test with a producer and a consumer thread at once, where every
 * line is either written or counted as dropped, never both, never lost.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "base/logbuf.h"

/* What the consumer received: the bytes, and each call's size. */
typedef struct {
    char bytes[1 << 16];
    size_t len;
    size_t calls;
} sink_t;

static void sink_out(void *ctx, const char *p, size_t n)
{
    sink_t *s = ctx;
    assert_true(s->len + n <= sizeof(s->bytes));
    memcpy(s->bytes + s->len, p, n);
    s->len += n;
    ++s->calls;
}

/* Appends one line through reserve and commit; @return 0, or -1 when refused. */
static int put_line(hp_logbuf_t *b, const char *line)
{
    size_t n = strlen(line);
    char *p = hp_logbuf_reserve(b, 64);
    if (p == NULL)
        return -1;
    memcpy(p, line, n);
    hp_logbuf_commit(b, n);
    return 0;
}

/* A buffer and a sink, for one test. */
typedef struct {
    hp_logbuf_t b;
    sink_t s;
} fx_t;

static fx_t *fx_new(size_t chunk_size, unsigned nchunks)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(hp_logbuf_init(&f->b, chunk_size, nchunks), 0);
    return f;
}

static void fx_free(fx_t *f)
{
    hp_logbuf_dispose(&f->b);
    free(f);
}

/*
 * The running test's buffer and sink: start makes them, the teardown frees
 * them, so that a failed assertion leaves nothing behind.
 */
static fx_t *fx;

static hp_logbuf_t *start(size_t chunk_size, unsigned nchunks)
{
    fx = fx_new(chunk_size, nchunks);
    return &fx->b;
}

static int teardown(void **state)
{
    (void)state;
    if (fx != NULL)
        fx_free(fx);
    fx = NULL;
    return 0;
}

/* Drains the running test's buffer into its sink. @return hp_logbuf_drain's count */
static size_t drain(void)
{
    return hp_logbuf_drain(&fx->b, sink_out, &fx->s);
}

static void test_nothing_to_publish_or_drain(void **state)
{
    (void)state;
    hp_logbuf_t *b = start(256, 4);
    assert_int_equal(hp_logbuf_publish(b), 0);
    assert_int_equal(drain(), 0);
    assert_int_equal(fx->s.calls, 0);
    assert_int_equal(hp_logbuf_pending(b), 0);
}

static void test_lines_wait_until_published(void **state)
{
    (void)state;
    hp_logbuf_t *b = start(256, 4);
    assert_int_equal(put_line(b, "{\"a\":1}\n"), 0);
    assert_int_equal(put_line(b, "{\"a\":2}\n"), 0);
    /* Not handed over yet: the consumer sees nothing. */
    assert_int_equal(drain(), 0);
    assert_int_equal(hp_logbuf_publish(b), 1);
    assert_int_equal(hp_logbuf_pending(b), 1);
    assert_int_equal(drain(), 1);
    assert_int_equal(fx->s.calls, 1);
    assert_int_equal(fx->s.len, 16);
    assert_memory_equal(fx->s.bytes, "{\"a\":1}\n{\"a\":2}\n", 16);
    assert_int_equal(hp_logbuf_pending(b), 0);
    assert_int_equal(b->dropped, 0);
}

/* A line that might not fit in the open chunk goes to the next one: chunks hold whole lines only. */
static void test_a_full_chunk_is_published_on_its_own(void **state)
{
    (void)state;
    hp_logbuf_t *b = start(100, 4);
    char line[41];
    memset(line, 'x', 39);
    line[39] = '\n', line[40] = '\0';
    /* Reserving 64 bytes: the first line leaves 60, too few for the next, so each chunk holds one line. */
    for (int i = 0; i != 3; ++i)
        assert_int_equal(put_line(b, line), 0);
    assert_int_equal(hp_logbuf_pending(b), 2);
    hp_logbuf_publish(b);
    assert_int_equal(drain(), 3);
    assert_int_equal(fx->s.calls, 3);
    assert_int_equal(fx->s.len, 120);
    for (size_t i = 0; i != 3; ++i)
        assert_int_equal(fx->s.bytes[i * 40 + 39], '\n');
}

/* Bounded: with every chunk waiting for the consumer, lines are refused and counted, and the buffer does not grow. */
static void test_full_buffer_drops_and_counts(void **state)
{
    (void)state;
    hp_logbuf_t *b = start(64, 3);
    /* A reservation of 64 bytes fills a chunk of 64: one line per chunk, three chunks. */
    assert_int_equal(put_line(b, "one\n"), 0);
    assert_int_equal(put_line(b, "two\n"), 0);
    assert_int_equal(put_line(b, "three\n"), 0);
    assert_int_equal(put_line(b, "four\n"), -1);
    assert_int_equal(put_line(b, "five\n"), -1);
    assert_int_equal(b->dropped, 2);
    assert_int_equal(hp_logbuf_pending(b), 3); /* the third chunk was published when the fourth line did not fit */
    /* The consumer catches up; the producer can write again, into the chunks handed back. */
    assert_int_equal(drain(), 3);
    assert_int_equal(put_line(b, "six\n"), 0);
    hp_logbuf_publish(b);
    assert_int_equal(drain(), 1);
    fx->s.bytes[fx->s.len] = '\0';
    assert_string_equal(fx->s.bytes, "one\ntwo\nthree\nsix\n");
    assert_int_equal(b->dropped, 2);
}

static void test_line_longer_than_a_chunk_is_refused(void **state)
{
    (void)state;
    hp_logbuf_t b;
    assert_int_equal(hp_logbuf_init(&b, 32, 2), 0);
    assert_null(hp_logbuf_reserve(&b, 33));
    assert_int_equal(b.dropped, 1);
    assert_non_null(hp_logbuf_reserve(&b, 32));
    hp_logbuf_dispose(&b);
}

static void test_init_rejects_no_chunks(void **state)
{
    (void)state;
    hp_logbuf_t b;
    assert_int_equal(hp_logbuf_init(&b, 64, 0), -1);
    hp_logbuf_dispose(&b);
}

/* ---- a producer and a consumer at once ---------------------------------------------------------- */

#define SMOKE_LINES 200000

typedef struct {
    hp_logbuf_t b;
    _Atomic int done;
    uint64_t next;    /* consumer: the number it expects next */
    uint64_t seen;    /* consumer: lines received */
    uint64_t skipped; /* consumer: numbers missing (must equal the producer's drops) */
    int bad;          /* consumer: a line out of order or cut */
} smoke_t;

/* Each line is "<n>\n"; numbers only increase, and a gap is exactly the dropped lines. */
static void smoke_out(void *ctx, const char *p, size_t n)
{
    smoke_t *s = ctx;
    const char *end = p + n;
    while (p < end) {
        char *nl;
        unsigned long long v = strtoull(p, &nl, 10);
        if (nl >= end || *nl != '\n' || v < s->next) {
            s->bad = 1;
            return;
        }
        s->skipped += v - s->next;
        s->next = v + 1;
        ++s->seen;
        p = nl + 1;
    }
}

static void *smoke_consumer(void *arg)
{
    smoke_t *s = arg;
    for (;;) {
        int done = atomic_load(&s->done);
        hp_logbuf_drain(&s->b, smoke_out, s);
        if (done)
            return NULL;
    }
}

static void test_producer_and_consumer_at_once(void **state)
{
    (void)state;
    smoke_t *s = calloc(1, sizeof(*s));
    assert_int_equal(hp_logbuf_init(&s->b, 256, 4), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, smoke_consumer, s), 0);
    for (uint64_t i = 0; i != SMOKE_LINES; ++i) {
        char *p = hp_logbuf_reserve(&s->b, 24);
        if (p != NULL)
            hp_logbuf_commit(&s->b, (size_t)snprintf(p, 24, "%llu\n", (unsigned long long)i));
        if (i % 64 == 0)
            hp_logbuf_publish(&s->b);
    }
    hp_logbuf_publish(&s->b);
    atomic_store(&s->done, 1);
    pthread_join(t, NULL);
    hp_logbuf_drain(&s->b, smoke_out, s); /* nothing left: the consumer's last pass came after the last publish */
    assert_false(s->bad);
    /* Every line either arrived or was counted as dropped; the trailing ones dropped show as a short `next`. */
    assert_int_equal(s->seen + s->b.dropped, SMOKE_LINES);
    assert_int_equal(s->skipped + (SMOKE_LINES - s->next), s->b.dropped);
    hp_logbuf_dispose(&s->b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_nothing_to_publish_or_drain, teardown),
        cmocka_unit_test_teardown(test_lines_wait_until_published, teardown),
        cmocka_unit_test_teardown(test_a_full_chunk_is_published_on_its_own, teardown),
        cmocka_unit_test_teardown(test_full_buffer_drops_and_counts, teardown),
        cmocka_unit_test(test_line_longer_than_a_chunk_is_refused),
        cmocka_unit_test(test_init_rejects_no_chunks),
        cmocka_unit_test(test_producer_and_consumer_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
