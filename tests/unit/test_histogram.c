/*
 * Unit tests of profiling/histogram: the bucket mapping against its bounds,
 * quantiles against the exact order statistics of known distributions, merging
 * against recording everything in one place, the window ring slot by slot, and
 * a smoke test with a writer and a reader running at once.
 *
 * Random data comes from a fixed-seed splitmix64, so a failure reproduces.
 * Nothing here asserts on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#include <cmocka.h>

#include "base/histogram.h"

#define LIMIT (UINT64_C(1) << HP_HIST_MAX_EXP)

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed;
}

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in (0, 1], so that log() never sees 0. */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 1.0) * 0x1p-53;
}

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());
}

static hp_hist_t *hist_new(void)
{
    hp_hist_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    hp_hist_reset(h);
    return h;
}

static hp_hist_window_t *window_new(void)
{
    hp_hist_window_t *w = malloc(sizeof(*w));
    assert_non_null(w);
    hp_hist_window_init(w);
    return w;
}

static void snapshot_of(hp_hist_snapshot_t *s, const hp_hist_t *h)
{
    memset(s, 0, sizeof(*s));
    hp_hist_merge_into(s, h);
}

static void assert_snapshots_equal(const hp_hist_snapshot_t *a, const hp_hist_snapshot_t *b)
{
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++)
        assert_int_equal(a->buckets[i], b->buckets[i]);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->sum_ns, b->sum_ns);
    assert_int_equal(a->max_ns, b->max_ns);
    assert_int_equal(a->clamped, b->clamped);
}

static uint64_t bucket_total(const hp_hist_snapshot_t *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++)
        n += s->buckets[i];
    return n;
}

/* ---- bucket mapping ---- */

/* v lies in [low(i), low(i + 1)) of its bucket, and the midpoint is within 1/128 of it (exact below 64). */
static void check_value(uint64_t v)
{
    size_t i = hp_hist_bucket_of(v);
    assert_true(i < HP_HIST_BUCKETS);
    if (v >= LIMIT) {
        assert_int_equal(i, HP_HIST_BUCKETS - 1);
        return;
    }
    assert_true(hp_hist_bucket_low(i) <= v);
    assert_true(v < hp_hist_bucket_low(i + 1));
    uint64_t mid = hp_hist_bucket_mid(i);
    if (v < 64) {
        assert_int_equal(i, v);
        assert_int_equal(mid, v);
    } else {
        uint64_t err = mid > v ? mid - v : v - mid;
        assert_true(err * 128 <= v);
    }
}

static void test_bucket_every_value_to_100000(void **state)
{
    (void)state;
    size_t prev = 0;
    for (uint64_t v = 0; v <= 100000; v++) {
        check_value(v);
        size_t i = hp_hist_bucket_of(v);
        assert_true(i >= prev);
        assert_true(i <= prev + 1); /* buckets are contiguous: none is skipped */
        prev = i;
    }
}

static void test_bucket_powers_of_two_and_neighbours(void **state)
{
    (void)state;
    size_t prev = 0;
    uint64_t prev_v = 0;
    for (unsigned k = 0; k <= 40; k++) {
        uint64_t p = UINT64_C(1) << k;
        for (int d = -3; d <= 3; d++) {
            if (d < 0 && (uint64_t)-d > p)
                continue;
            uint64_t v = p + (uint64_t)(int64_t)d;
            if (v < prev_v)
                continue; /* keep the sweep ascending for the monotonic check */
            check_value(v);
            size_t i = hp_hist_bucket_of(v);
            assert_true(i >= prev);
            prev = i;
            prev_v = v;
        }
    }
    /* The top range ends at 2^36: its last value is in the last bucket, and so is everything above. */
    assert_int_equal(hp_hist_bucket_of(LIMIT - 1), HP_HIST_BUCKETS - 1);
    assert_int_equal(hp_hist_bucket_of(LIMIT), HP_HIST_BUCKETS - 1);
    assert_int_equal(hp_hist_bucket_of(LIMIT + 1), HP_HIST_BUCKETS - 1);
    assert_int_equal(hp_hist_bucket_of(UINT64_MAX), HP_HIST_BUCKETS - 1);
    /* The header's formula at a few points: 64 + (k - 6) * 64 + sub. */
    assert_int_equal(hp_hist_bucket_of(64), 64);
    assert_int_equal(hp_hist_bucket_of(127), 127);
    assert_int_equal(hp_hist_bucket_of(128), 128);
    assert_int_equal(hp_hist_bucket_of(130), 129);
    assert_int_equal(hp_hist_bucket_of(1000), 64 + 3 * 64 + ((1000 >> 3) & 63));
}

static void test_bucket_layout_is_contiguous(void **state)
{
    (void)state;
    assert_int_equal(hp_hist_bucket_low(0), 0);
    assert_int_equal(hp_hist_bucket_low(HP_HIST_BUCKETS), LIMIT);
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++) {
        uint64_t lo = hp_hist_bucket_low(i), hi = hp_hist_bucket_low(i + 1);
        assert_true(lo < hi);
        assert_int_equal(hp_hist_bucket_of(lo), i);
        assert_int_equal(hp_hist_bucket_of(hi - 1), i);
        uint64_t mid = hp_hist_bucket_mid(i);
        assert_true(lo <= mid && mid < hi);
        check_value(lo);
        check_value(hi - 1);
    }
}

static void test_record_clamps_above_2_to_36(void **state)
{
    (void)state;
    hp_hist_t *h = hist_new();
    hp_hist_record(h, LIMIT - 1);
    hp_hist_record(h, LIMIT);
    hp_hist_record(h, UINT64_C(100000000000)); /* 100 s */
    hp_hist_snapshot_t s;
    snapshot_of(&s, h);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.clamped, 2);
    assert_int_equal(s.buckets[HP_HIST_BUCKETS - 1], 3);
    assert_int_equal(s.max_ns, UINT64_C(100000000000));
    assert_int_equal(s.sum_ns, (LIMIT - 1) + LIMIT + UINT64_C(100000000000));
    free(h);
}

/* ---- quantiles ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Records vals, then checks p50, p90, p99, p99.9, max and mean against the exact values. */
static void check_distribution(uint64_t *vals, size_t n)
{
    hp_hist_t *h = hist_new();
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        hp_hist_record(h, vals[i]);
        sum += vals[i];
    }
    hp_hist_snapshot_t s;
    snapshot_of(&s, h);
    assert_int_equal(s.count, n);
    assert_int_equal(s.sum_ns, sum);
    assert_int_equal(bucket_total(&s), n);

    qsort(vals, n, sizeof(vals[0]), cmp_u64);
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t j = 0; j < sizeof(qs) / sizeof(qs[0]); j++) {
        uint64_t rank = (uint64_t)ceil(qs[j] * (double)n);
        if (rank == 0)
            rank = 1;
        uint64_t exact = vals[rank - 1];
        uint64_t got = hp_hist_quantile(&s, qs[j]);
        uint64_t err = got > exact ? got - exact : exact - got;
        if (err * 100 > exact)
            fail_msg("q=%g: got %llu, exact %llu", qs[j], (unsigned long long)got, (unsigned long long)exact);
        assert_true(got <= s.max_ns);
    }
    assert_int_equal(hp_hist_quantile(&s, 1.0), vals[n - 1]);
    assert_int_equal(s.max_ns, vals[n - 1]);
    double exact_mean = (double)sum / (double)n;
    assert_true(fabs(hp_hist_mean(&s) - exact_mean) <= exact_mean / 100.0);
    free(h);
}

#define DIST_N 100000

/*
 * Checks the quantiles of DIST_N values drawn one by one with draw, from the
 * generator seeded with seed (0: left as it is, for a draw that takes no
 * random numbers).
 */
static void check_drawn(uint64_t seed, uint64_t (*draw)(void))
{
    uint64_t *v = malloc(DIST_N * sizeof(*v));
    assert_non_null(v);
    if (seed != 0)
        rng_seed(seed);
    for (size_t i = 0; i < DIST_N; i++)
        v[i] = draw();
    check_distribution(v, DIST_N);
    free(v);
}

static uint64_t draw_uniform_1us_to_1s(void)
{
    return 1000 + rng_next() % (UINT64_C(1000000000) - 1000 + 1);
}

static void test_quantiles_uniform_1us_to_1s(void **state)
{
    (void)state;
    check_drawn(1, draw_uniform_1us_to_1s);
}

/* Mean 2 ms; a few land in the exact range below 64. */
static uint64_t draw_exponential(void)
{
    return (uint64_t)(-log(rng_unit()) * 2e6);
}

static void test_quantiles_exponential(void **state)
{
    (void)state;
    check_drawn(2, draw_exponential);
}

/* Median 500 us, long right tail. */
static uint64_t draw_lognormal(void)
{
    return (uint64_t)exp(log(500e3) + 1.2 * rng_normal());
}

static void test_quantiles_lognormal(void **state)
{
    (void)state;
    check_drawn(3, draw_lognormal);
}

/* 95% cache hits near 300 us, 5% misses near 80 ms: p90 and p99 sit in different modes. */
static uint64_t draw_bimodal(void)
{
    double x = rng_next() % 100 < 95 ? 300e3 + 30e3 * rng_normal() : 80e6 + 10e6 * rng_normal();
    return x < 1.0 ? 1 : (uint64_t)x;
}

static void test_quantiles_bimodal(void **state)
{
    (void)state;
    check_drawn(4, draw_bimodal);
}

static uint64_t draw_constant(void)
{
    return 123457;
}

static void test_quantiles_constant(void **state)
{
    (void)state;
    check_drawn(0, draw_constant);
}

static void test_quantiles_single_value(void **state)
{
    (void)state;
    uint64_t v[1] = {1000000001};
    check_distribution(v, 1);
    hp_hist_t *h = hist_new();
    hp_hist_record(h, 1000000001);
    hp_hist_snapshot_t s;
    snapshot_of(&s, h);
    /* Every quantile of one value is near it, and none exceeds it, though its bucket's midpoint does. */
    assert_true(hp_hist_bucket_mid(hp_hist_bucket_of(1000000001)) > 1000000001);
    assert_int_equal(hp_hist_quantile(&s, 0.0), 1000000001);
    assert_int_equal(hp_hist_quantile(&s, 0.5), 1000000001);
    assert_int_equal(hp_hist_quantile(&s, 1.0), 1000000001);
    free(h);
}

static void test_quantile_edges(void **state)
{
    (void)state;
    hp_hist_t *h = hist_new();
    hp_hist_snapshot_t s;
    snapshot_of(&s, h);
    assert_int_equal(hp_hist_quantile(&s, 0.5), 0);
    assert_int_equal(hp_hist_quantile(&s, 1.0), 0);
    assert_true(hp_hist_mean(&s) == 0.0);

    hp_hist_record(h, 7);
    hp_hist_record(h, 5000);
    hp_hist_record(h, 5000);
    hp_hist_record(h, 1234567);
    snapshot_of(&s, h);
    assert_int_equal(hp_hist_quantile(&s, 0.0), 7);  /* the first non-empty bucket */
    assert_int_equal(hp_hist_quantile(&s, -1.0), 7); /* below 0 is 0 */
    assert_int_equal(hp_hist_quantile(&s, NAN), 7);
    assert_int_equal(hp_hist_quantile(&s, 0.25), 7); /* rank ceil(1.0) = 1 */
    assert_int_equal(hp_hist_quantile(&s, 0.26), hp_hist_bucket_mid(hp_hist_bucket_of(5000)));
    assert_int_equal(hp_hist_quantile(&s, 0.75), hp_hist_bucket_mid(hp_hist_bucket_of(5000)));
    /* 1234567's bucket is [1228800, 1245184) with midpoint 1236992, above max, so max it is. */
    assert_true(hp_hist_bucket_mid(hp_hist_bucket_of(1234567)) > 1234567);
    assert_int_equal(hp_hist_quantile(&s, 0.76), 1234567);
    assert_int_equal(hp_hist_quantile(&s, 1.0), 1234567); /* exactly the max, not a midpoint */
    assert_int_equal(hp_hist_quantile(&s, 2.0), 1234567);
    assert_true(fabs(hp_hist_mean(&s) - (7 + 5000 + 5000 + 1234567) / 4.0) < 1e-9);

    /* Buckets that hold fewer records than count (a racing read) fall back to max. */
    s.count += 10;
    assert_int_equal(hp_hist_quantile(&s, 0.99), 1234567);

    hp_hist_reset(h);
    snapshot_of(&s, h);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.max_ns, 0);
    assert_int_equal(bucket_total(&s), 0);
    free(h);
}

/* ---- merging ---- */

/* Spans every bucket and the clamped range: a random 64-bit value shifted right by 0..63. */
static uint64_t wide_value(void)
{
    uint64_t r = rng_next();
    return rng_next() >> (r % 64);
}

static void test_merge_equals_single_histogram(void **state)
{
    (void)state;
    hp_hist_t *parts[4], *all = hist_new();
    for (size_t p = 0; p < 4; p++)
        parts[p] = hist_new();
    rng_seed(5);
    for (size_t i = 0; i < 200000; i++) {
        uint64_t v = wide_value();
        hp_hist_record(parts[i % 4], v);
        hp_hist_record(all, v);
    }
    hp_hist_snapshot_t merged, single;
    memset(&merged, 0, sizeof(merged));
    for (size_t p = 0; p < 4; p++)
        hp_hist_merge_into(&merged, parts[p]);
    snapshot_of(&single, all);
    assert_true(single.clamped > 0);
    assert_snapshots_equal(&merged, &single);

    /* The same through per-part snapshots added together. */
    hp_hist_snapshot_t added, one;
    memset(&added, 0, sizeof(added));
    for (size_t p = 0; p < 4; p++) {
        snapshot_of(&one, parts[p]);
        hp_hist_snapshot_add(&added, &one);
    }
    assert_snapshots_equal(&added, &single);
    for (size_t p = 0; p < 4; p++)
        free(parts[p]);
    free(all);
}

static void test_merge_two_skewed_histograms(void **state)
{
    (void)state;
    /* One fast, one slow: the merged max and quantiles come from the right side. */
    hp_hist_t *a = hist_new(), *b = hist_new(), *all = hist_new();
    for (uint64_t i = 1; i <= 1000; i++) {
        hp_hist_record(a, i * 100);
        hp_hist_record(all, i * 100);
        hp_hist_record(b, i * 1000000);
        hp_hist_record(all, i * 1000000);
    }
    hp_hist_snapshot_t sa, sb, single;
    snapshot_of(&sa, a);
    snapshot_of(&sb, b);
    snapshot_of(&single, all);
    sa.seconds = 7.0;
    sb.seconds = 3.0;
    hp_hist_snapshot_add(&sa, &sb);
    assert_snapshots_equal(&sa, &single);
    assert_true(sa.seconds == 7.0); /* the larger span, not the sum */
    assert_int_equal(hp_hist_quantile(&sa, 1.0), 1000000000);
    assert_int_equal(hp_hist_quantile(&sa, 0.5), hp_hist_bucket_mid(hp_hist_bucket_of(100000)));
    free(a);
    free(b);
    free(all);
}

/* ---- windows ---- */

/*
 * Epoch e gets e + 1 records of VAL(e): distinct buckets per epoch and
 * distinct counts, so a merged snapshot shows exactly which epochs it holds.
 */
#define MAX_EPOCH 24
#define VAL(e) (UINT64_C(1000) * (uint64_t)((e) + 1))

static void window_fill_epoch(hp_hist_window_t *w, int64_t e, int64_t now_s)
{
    for (int64_t i = 0; i <= e; i++)
        hp_hist_window_record(w, VAL(e), now_s);
}

/* Merges the last `seconds` at now_s and checks the snapshot holds exactly the epochs in `want`. */
static void expect_window(const hp_hist_window_t *w, int seconds, int64_t now_s, const int *want, size_t n_want,
                          double want_seconds)
{
    hp_hist_snapshot_t s;
    memset(&s, 0, sizeof(s));
    hp_hist_window_merge(&s, w, seconds, now_s);
    uint64_t count = 0, sum = 0, max = 0;
    for (int e = 0; e <= MAX_EPOCH; e++) {
        int in = 0;
        for (size_t j = 0; j < n_want; j++)
            in |= want[j] == e;
        uint64_t n = in ? (uint64_t)e + 1 : 0;
        if (s.buckets[hp_hist_bucket_of(VAL(e))] != n)
            fail_msg("seconds=%d now_s=%lld: epoch %d has %llu records, want %llu", seconds, (long long)now_s, e,
                     (unsigned long long)s.buckets[hp_hist_bucket_of(VAL(e))], (unsigned long long)n);
        count += n;
        sum += n * VAL(e);
        if (n && VAL(e) > max)
            max = VAL(e);
    }
    assert_int_equal(s.count, count);
    assert_int_equal(bucket_total(&s), count);
    assert_int_equal(s.sum_ns, sum);
    assert_int_equal(s.max_ns, max);
    if (s.seconds != want_seconds)
        fail_msg("seconds=%d now_s=%lld: covers %g s, want %g", seconds, (long long)now_s, s.seconds, want_seconds);
}

#define WANT(...) (const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int)

static void test_window_slots(void **state)
{
    (void)state;
    hp_hist_window_t *w = window_new();
    /* Epochs 0..12 fill the ring; now_s wanders inside each slot. */
    for (int64_t e = 0; e <= 12; e++)
        window_fill_epoch(w, e, 5 * e + e % 5);

    /* Last 10 s: the current slot plus two before; seconds runs from the oldest slot's start through now_s. */
    expect_window(w, 10, 60, WANT(10, 11, 12), 60 - 50 + 1);
    expect_window(w, 10, 64, WANT(10, 11, 12), 64 - 50 + 1);
    /* ceil(seconds / 5) slots back: 1..5 s reach one back, 6 s two. */
    expect_window(w, 1, 60, WANT(11, 12), 60 - 55 + 1);
    expect_window(w, 5, 60, WANT(11, 12), 60 - 55 + 1);
    expect_window(w, 6, 60, WANT(10, 11, 12), 60 - 50 + 1);
    /* Last 60 s: all 13 slots; asking for more is capped at what the ring holds. */
    expect_window(w, 60, 64, WANT(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 64 + 1);
    expect_window(w, 1000, 64, WANT(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 64 + 1);
    /* Since start: everything, and seconds stays 0. */
    expect_window(w, 0, 64, WANT(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 0);
    expect_window(w, -5, 64, WANT(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 0);

    /* Epoch 13 reuses epoch 0's slot, which is zeroed first. */
    assert_int_equal(atomic_load(&w->slot_epoch[0]), 0);
    window_fill_epoch(w, 13, 65);
    assert_int_equal(atomic_load(&w->slot_epoch[0]), 13);
    assert_int_equal(atomic_load(&w->slots[0].count), 14);
    assert_int_equal(atomic_load(&w->slots[0].max_ns), VAL(13));
    expect_window(w, 60, 65, WANT(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13), 65 - 5 + 1);
    expect_window(w, 10, 65, WANT(11, 12, 13), 65 - 55 + 1);
    /* A reader whose clock lags the owner's still finds the slots it asks for, and not the recycled one. */
    expect_window(w, 10, 60, WANT(10, 11, 12), 60 - 50 + 1);
    expect_window(w, 60, 64, WANT(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 64 - 5 + 1);

    /*
     * A gap: nothing in epochs 14..19, then epoch 20 (slot 7). The slots of
     * 14..19 still hold epochs 1..6 and must not pass for them; epoch 7 is gone.
     */
    window_fill_epoch(w, 20, 100);
    expect_window(w, 60, 100, WANT(8, 9, 10, 11, 12, 13, 20), 100 - 40 + 1);
    expect_window(w, 10, 100, WANT(20), 100 - 100 + 1);
    expect_window(w, 30, 104, WANT(20), 104 - 100 + 1);
    expect_window(w, 1000, 100, WANT(8, 9, 10, 11, 12, 13, 20), 100 - 40 + 1);
    /* A reader ahead of all data: nothing merged, nothing covered. */
    expect_window(w, 60, 200, WANT(-1), 0);
    /* Since start still holds every record ever made. */
    expect_window(w, 0, 200, WANT(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20), 0);
    free(w);
}

static void test_window_start_and_accumulation(void **state)
{
    (void)state;
    hp_hist_window_t *a = window_new(), *b = window_new();
    /* Right after start, "last 10 s" reaches before epoch 0; the empty stamps (-1) must not match. */
    window_fill_epoch(a, 0, 3);
    expect_window(a, 10, 3, WANT(0), 3 + 1);
    expect_window(a, 60, 3, WANT(0), 3 + 1);
    hp_hist_window_init(a);
    expect_window(a, 60, 3, WANT(-1), 0);

    /* Two threads' windows merged into one snapshot: counts add, seconds is the larger span. */
    for (int64_t e = 10; e <= 12; e++)
        window_fill_epoch(a, e, 5 * e);
    window_fill_epoch(b, 12, 61);
    hp_hist_snapshot_t s;
    memset(&s, 0, sizeof(s));
    hp_hist_window_merge(&s, b, 60, 62);
    assert_true(s.seconds == 62 - 60 + 1);
    hp_hist_window_merge(&s, a, 60, 62);
    assert_true(s.seconds == 62 - 50 + 1);
    assert_int_equal(s.count, 11 + 12 + 13 + 13);
    assert_int_equal(s.buckets[hp_hist_bucket_of(VAL(12))], 26);
    free(a);
    free(b);
}

/* ---- one writer, one reader ---- */

#define CONC_N 1000000
#define CONC_PER_SEC 5000 /* 200 simulated seconds: 40 epochs, the ring recycled three times over */

struct conc_ctx {
    hp_hist_window_t *w;
    _Atomic int64_t now_s;
    _Atomic int done;
    /* The reader cannot call cmocka from its thread; it counts what went wrong for the main thread to assert. */
    unsigned long merges, bad_total, bad_window;
};

static uint64_t conc_value(uint64_t i)
{
    return (i * UINT64_C(2654435761)) % 5000000 + 1;
}

static void *conc_writer(void *arg)
{
    struct conc_ctx *c = arg;
    for (uint64_t i = 0; i < CONC_N; i++) {
        int64_t now = (int64_t)(i / CONC_PER_SEC);
        atomic_store_explicit(&c->now_s, now, memory_order_relaxed);
        hp_hist_window_record(c->w, conc_value(i), now);
    }
    atomic_store_explicit(&c->done, 1, memory_order_release);
    return NULL;
}

static void *conc_reader(void *arg)
{
    struct conc_ctx *c = arg;
    hp_hist_snapshot_t *s = malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    uint64_t prev = 0;
    while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
        memset(s, 0, sizeof(*s));
        hp_hist_window_merge(s, c->w, 0, 0);
        /* The total only grows, and never past what the writer will record. */
        if (s->count < prev || s->count > CONC_N)
            c->bad_total++;
        prev = s->count;
        memset(s, 0, sizeof(*s));
        hp_hist_window_merge(s, c->w, 60, atomic_load_explicit(&c->now_s, memory_order_relaxed));
        /* Each merged slot holds one epoch, never a half-zeroed mix of two: at most 13 epochs' worth. */
        if (s->count > HP_HIST_SLOTS * HP_HIST_SLOT_SECONDS * CONC_PER_SEC)
            c->bad_window++;
        c->merges++;
    }
    free(s);
    return NULL;
}

static void test_one_writer_one_reader(void **state)
{
    (void)state;
    struct conc_ctx c = {.w = window_new()};
    atomic_init(&c.now_s, 0);
    atomic_init(&c.done, 0);
    pthread_t wt, rt;
    assert_int_equal(pthread_create(&rt, NULL, conc_reader, &c), 0);
    assert_int_equal(pthread_create(&wt, NULL, conc_writer, &c), 0);
    assert_int_equal(pthread_join(wt, NULL), 0);
    assert_int_equal(pthread_join(rt, NULL), 0);
    assert_int_equal(c.bad_total, 0);
    assert_int_equal(c.bad_window, 0);

    uint64_t sum = 0, max = 0;
    for (uint64_t i = 0; i < CONC_N; i++) {
        sum += conc_value(i);
        if (conc_value(i) > max)
            max = conc_value(i);
    }
    hp_hist_snapshot_t s;
    memset(&s, 0, sizeof(s));
    hp_hist_window_merge(&s, c.w, 0, 0);
    assert_int_equal(s.count, CONC_N);
    assert_int_equal(bucket_total(&s), CONC_N);
    assert_int_equal(s.sum_ns, sum);
    assert_int_equal(s.max_ns, max);

    /* The last 60 s at the final now_s (199, epoch 39): epochs 27..39, whole. */
    int64_t now = (CONC_N - 1) / CONC_PER_SEC;
    uint64_t wsum = 0;
    for (uint64_t i = (uint64_t)27 * HP_HIST_SLOT_SECONDS * CONC_PER_SEC; i < CONC_N; i++)
        wsum += conc_value(i);
    memset(&s, 0, sizeof(s));
    hp_hist_window_merge(&s, c.w, 60, now);
    assert_int_equal(s.count, HP_HIST_SLOTS * HP_HIST_SLOT_SECONDS * CONC_PER_SEC);
    assert_int_equal(bucket_total(&s), s.count);
    assert_int_equal(s.sum_ns, wsum);
    assert_true(s.seconds == (double)(now - 27 * HP_HIST_SLOT_SECONDS + 1));
    free(c.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_every_value_to_100000),
        cmocka_unit_test(test_bucket_powers_of_two_and_neighbours),
        cmocka_unit_test(test_bucket_layout_is_contiguous),
        cmocka_unit_test(test_record_clamps_above_2_to_36),
        cmocka_unit_test(test_quantiles_uniform_1us_to_1s),
        cmocka_unit_test(test_quantiles_exponential),
        cmocka_unit_test(test_quantiles_lognormal),
        cmocka_unit_test(test_quantiles_bimodal),
        cmocka_unit_test(test_quantiles_constant),
        cmocka_unit_test(test_quantiles_single_value),
        cmocka_unit_test(test_quantile_edges),
        cmocka_unit_test(test_merge_equals_single_histogram),
        cmocka_unit_test(test_merge_two_skewed_histograms),
        cmocka_unit_test(test_window_slots),
        cmocka_unit_test(test_window_start_and_accumulation),
        cmocka_unit_test(test_one_writer_one_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
