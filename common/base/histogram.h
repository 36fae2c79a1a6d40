/*
 * histogram: log-linear latency histograms, per thread, merged on read.
 *
 * Why our own: no Debian package offers an HdrHistogram for C, and the probes
 * need a histogram that one thread writes with plain loads and stores while
 * another thread reads it, which a general library does not promise.
 *
 * Values are nanoseconds. Values below 64 ns are exact; each power-of-two range
 * [2^k, 2^(k+1)) above is split into 64 equal sub-buckets, so reporting a
 * bucket's midpoint is within 1/128 (0.79%) of any value in it. The top range
 * ends at 2^36 ns (68.7 s); larger values are clamped into the last bucket and
 * counted in `clamped`.
 *
 * Concurrency: exactly one thread (the owner) records into a histogram; any
 * thread may read it. Buckets are _Atomic and the owner updates them with a
 * relaxed load and a relaxed store (no read-modify-write, so no locked
 * instruction on the hot path), which makes concurrent reads well defined. A
 * reader may see a record half applied (count updated, sum not yet); for
 * statistics that is fine.
 *
 * Windows: hp_hist_window_t keeps a histogram since start plus a ring of
 * HP_HIST_SLOTS slots of HP_HIST_SLOT_SECONDS each, stamped with their epoch.
 * The owner rotates slots as time passes; a reader merges the slots whose epoch
 * falls in the last N seconds. "Last 10 s" therefore covers the current
 * partial slot plus the previous two full ones (11 to 15 s of data, counting
 * whole seconds); the merged result says how many seconds it covers, measured
 * from the oldest slot that held data (see hp_hist_window_merge in the .c).
 *
 * Buckets are 32-bit: a since-start bucket wraps after 4.29e9 records in that
 * one bucket (about 12 hours at a million requests a second all landing in
 * it); the windows are unaffected.
 */
#ifndef HP_HISTOGRAM_H
#define HP_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HP_HIST_SUB_BITS 6
#define HP_HIST_SUB_COUNT (1u << HP_HIST_SUB_BITS)                                     /* 64 */
#define HP_HIST_MAX_EXP 36                                                             /* values up to 2^36 ns */
#define HP_HIST_BUCKETS (HP_HIST_SUB_COUNT * (HP_HIST_MAX_EXP - HP_HIST_SUB_BITS + 1)) /* 1984 */

#define HP_HIST_SLOT_SECONDS 5
#define HP_HIST_SLOTS 13 /* 12 full slots (60 s) plus the current one */

/* A histogram one thread writes and any thread reads. */
typedef struct st_hp_hist_t {
    _Atomic uint32_t buckets[HP_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t max_ns;
    _Atomic uint64_t clamped;
} hp_hist_t;

/* A plain (non-atomic) merged copy, built by readers. */
typedef struct st_hp_hist_snapshot_t {
    uint64_t buckets[HP_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t clamped;
    double seconds; /* wall time the merged data covers (windows); 0 for since-start */
} hp_hist_snapshot_t;

/* A histogram since start plus a ring of time slots. */
typedef struct st_hp_hist_window_t {
    hp_hist_t total;
    hp_hist_t slots[HP_HIST_SLOTS];
    _Atomic int64_t slot_epoch[HP_HIST_SLOTS]; /* now_s / HP_HIST_SLOT_SECONDS of the slot's data; -1 when empty */
} hp_hist_window_t;

/** @return the bucket index of a value (pure) */
size_t hp_hist_bucket_of(uint64_t ns);
/** @return the lowest value that falls in bucket i */
uint64_t hp_hist_bucket_low(size_t i);
/** @return the midpoint of bucket i, the value reported for it */
uint64_t hp_hist_bucket_mid(size_t i);

/** Owner only: records one value. */
void hp_hist_record(hp_hist_t *h, uint64_t ns);

/** Zeroes a histogram (owner only, or before it is shared). */
void hp_hist_reset(hp_hist_t *h);

/** Reader: adds h into s. */
void hp_hist_merge_into(hp_hist_snapshot_t *s, const hp_hist_t *h);

/** Reader: adds another snapshot into s. */
void hp_hist_snapshot_add(hp_hist_snapshot_t *s, const hp_hist_snapshot_t *o);

/**
 * @param q quantile in [0, 1]
 * @return the value at quantile q (a bucket midpoint, or the exact max for q = 1), 0 when empty
 */
uint64_t hp_hist_quantile(const hp_hist_snapshot_t *s, double q);

/** @return the mean in ns, 0 when empty */
double hp_hist_mean(const hp_hist_snapshot_t *s);

/** Initializes a window (all slots empty). */
void hp_hist_window_init(hp_hist_window_t *w);

/** Owner only: records a value at time now_s (seconds, monotonic), rotating slots as needed. */
void hp_hist_window_record(hp_hist_window_t *w, uint64_t ns, int64_t now_s);

/**
 * Reader: merges what the window holds. seconds <= 0 merges the since-start
 * histogram; otherwise the slots whose data lies within the last `seconds`
 * seconds before now_s (the current slot included), and sets s->seconds to the
 * span actually covered.
 */
void hp_hist_window_merge(hp_hist_snapshot_t *s, const hp_hist_window_t *w, int seconds, int64_t now_s);

#endif
