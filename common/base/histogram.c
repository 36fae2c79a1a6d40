/*
 * histogram: log-linear latency histograms, per thread, merged on read.
 *
 * The owner thread records with relaxed loads and stores only; readers merge
 * with relaxed loads into plain snapshots. The bucket layout, the quantile rule
 * and the window ring are described in histogram.h; this file adds the reasons
 * behind the less obvious steps (the branch-free bucket index, the guarded read
 * of a window slot that the owner may be recycling, and what `seconds` means).
 */
#include "base/histogram.h"

#include <math.h>
#include <string.h>

/* The first value that no longer fits the top range and is clamped: 2^36 ns. */
#define HP__HIST_LIMIT (UINT64_C(1) << HP_HIST_MAX_EXP)

_Static_assert(HP_HIST_BUCKETS == 1984, "bucket layout changed; revisit the index math");
_Static_assert(HP_HIST_SLOTS >= 2, "a window needs the current slot and at least one before it");

/*
 * The owner is the only writer, so an increment needs no read-modify-write: a
 * relaxed load and a relaxed store compile to plain moves. fetch_add would be a
 * locked instruction on every record, which is the cost the design avoids.
 */
static inline void hp__inc32(_Atomic uint32_t *x)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + 1, memory_order_relaxed);
}

static inline void hp__add64(_Atomic uint64_t *x, uint64_t v)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + v, memory_order_relaxed);
}

size_t hp_hist_bucket_of(uint64_t ns)
{
    if (ns >= HP__HIST_LIMIT)
        return HP_HIST_BUCKETS - 1;
    /*
     * For ns >= 64 with top bit k, the header's index 64 + (k - 6) * 64 + sub
     * equals ((k - 6) << 6) + (ns >> (k - 6)), because ns >> (k - 6) is 64 + sub.
     * OR-ing 64 into the clz argument makes k at least 6, so every value below
     * 128 gets shift 0 and index ns: the exact range needs no branch of its own.
     */
    unsigned shift = (unsigned)(63 - __builtin_clzll(ns | HP_HIST_SUB_COUNT)) - HP_HIST_SUB_BITS;
    return ((size_t)shift << HP_HIST_SUB_BITS) + (size_t)(ns >> shift);
}

/*
 * Bucket i >= 64 has width 2^shift with shift = i / 64 - 1 and starts at
 * (64 + i % 64) << shift; buckets below 128 have width 1 and start at i.
 */
static inline unsigned hp__bucket_shift(size_t i)
{
    return i < 2 * HP_HIST_SUB_COUNT ? 0 : (unsigned)(i >> HP_HIST_SUB_BITS) - 1;
}

/*
 * Also defined for i == HP_HIST_BUCKETS, where it returns 2^36, the end of the
 * last bucket, so that [low(i), low(i + 1)) is the range of every bucket.
 * Larger i are treated as HP_HIST_BUCKETS.
 */
uint64_t hp_hist_bucket_low(size_t i)
{
    if (i >= HP_HIST_BUCKETS)
        return HP__HIST_LIMIT;
    if (i < HP_HIST_SUB_COUNT)
        return i;
    return (uint64_t)(HP_HIST_SUB_COUNT | (i & (HP_HIST_SUB_COUNT - 1))) << hp__bucket_shift(i);
}

/* low + width / 2: exact for width 1, and within width / 2 <= 2^k / 128 of any member otherwise. */
uint64_t hp_hist_bucket_mid(size_t i)
{
    if (i >= HP_HIST_BUCKETS)
        i = HP_HIST_BUCKETS - 1;
    return hp_hist_bucket_low(i) + ((UINT64_C(1) << hp__bucket_shift(i)) >> 1);
}

void hp_hist_record(hp_hist_t *h, uint64_t ns)
{
    hp__inc32(&h->buckets[hp_hist_bucket_of(ns)]);
    hp__add64(&h->count, 1);
    hp__add64(&h->sum_ns, ns);
    if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
    if (__builtin_expect(ns >= HP__HIST_LIMIT, 0))
        hp__add64(&h->clamped, 1);
}

void hp_hist_reset(hp_hist_t *h)
{
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++)
        atomic_store_explicit(&h->buckets[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->count, 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->max_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->clamped, 0, memory_order_relaxed);
}

void hp_hist_merge_into(hp_hist_snapshot_t *s, const hp_hist_t *h)
{
    /*
     * A histogram without records adds nothing: its 1,984 buckets are not
     * read, and s is not written (merge.c relies on that to clear only the
     * snapshots a merge wrote). One whose first record is half applied (its
     * bucket counted, its count not yet) is read as empty, as a reader that
     * came a moment earlier would have read it.
     */
    if (atomic_load_explicit(&h->count, memory_order_relaxed) == 0)
        return;
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++)
        s->buckets[i] += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    s->count += atomic_load_explicit(&h->count, memory_order_relaxed);
    s->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
    if (max > s->max_ns)
        s->max_ns = max;
    s->clamped += atomic_load_explicit(&h->clamped, memory_order_relaxed);
}

/*
 * `seconds` takes the larger of the two: adding per-thread windows merged at the
 * same now_s gives the span of the union, not the sum of the threads' spans.
 */
void hp_hist_snapshot_add(hp_hist_snapshot_t *s, const hp_hist_snapshot_t *o)
{
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++)
        s->buckets[i] += o->buckets[i];
    s->count += o->count;
    s->sum_ns += o->sum_ns;
    if (o->max_ns > s->max_ns)
        s->max_ns = o->max_ns;
    s->clamped += o->clamped;
    if (o->seconds > s->seconds)
        s->seconds = o->seconds;
}

uint64_t hp_hist_quantile(const hp_hist_snapshot_t *s, double q)
{
    if (s->count == 0)
        return 0;
    if (q >= 1.0)
        return s->max_ns;
    if (!(q > 0.0)) /* also catches NaN */
        q = 0.0;
    uint64_t rank = (uint64_t)ceil(q * (double)s->count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HP_HIST_BUCKETS; i++) {
        seen += s->buckets[i];
        if (seen >= rank) {
            /* The bucket's midpoint may lie above the largest value seen in it; never report more than max. */
            uint64_t mid = hp_hist_bucket_mid(i);
            return mid < s->max_ns ? mid : s->max_ns;
        }
    }
    /*
     * The buckets hold fewer records than count: a snapshot taken while the
     * owner kept recording (a reader loads the buckets before count), or a
     * since-start bucket that wrapped its 32 bits. The rank lies beyond every
     * bucket, so the best answer left is the largest value seen.
     */
    return s->max_ns;
}

double hp_hist_mean(const hp_hist_snapshot_t *s)
{
    return s->count == 0 ? 0.0 : (double)s->sum_ns / (double)s->count;
}

void hp_hist_window_init(hp_hist_window_t *w)
{
    hp_hist_reset(&w->total);
    for (size_t i = 0; i < HP_HIST_SLOTS; i++) {
        hp_hist_reset(&w->slots[i]);
        atomic_store_explicit(&w->slot_epoch[i], -1, memory_order_relaxed);
    }
}

/*
 * Epochs must be >= 0 because -1 marks an empty slot; a monotonic clock never
 * goes below 0, and a negative now_s (a caller bug) is filed under epoch 0.
 */
static inline int64_t hp__epoch_of(int64_t now_s)
{
    return now_s < 0 ? 0 : now_s / HP_HIST_SLOT_SECONDS;
}

void hp_hist_window_record(hp_hist_window_t *w, uint64_t ns, int64_t now_s)
{
    hp_hist_record(&w->total, ns);
    int64_t epoch = hp__epoch_of(now_s);
    size_t idx = (size_t)(epoch % HP_HIST_SLOTS);
    if (atomic_load_explicit(&w->slot_epoch[idx], memory_order_relaxed) != epoch) {
        /*
         * Recycling a slot is a small seqlock. The stamp goes to -1 before any
         * bucket is zeroed (the release fence orders it before the zeroing
         * stores), so a reader that saw any zeroed bucket also sees the stamp
         * change when it checks again, and discards what it read. The new stamp
         * is stored with release after the zeroing, so a reader that loads it
         * with acquire sees the slot zeroed, never the previous epoch's counts.
         */
        atomic_store_explicit(&w->slot_epoch[idx], -1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        hp_hist_reset(&w->slots[idx]);
        atomic_store_explicit(&w->slot_epoch[idx], epoch, memory_order_release);
    }
    hp_hist_record(&w->slots[idx], ns);
}

/*
 * Adds the slot holding `epoch` into s, if it still holds it from before the
 * read to after it. The slot is read into a scratch snapshot first, because
 * the owner may recycle it mid-read (a reader whose now_s lags the owner's
 * asks for the oldest slot just as it is zeroed), and a half-zeroed slot must
 * be dropped whole rather than added.
 *
 * @return 1 when the slot was added, 0 when it holds no data of that epoch
 */
static int hp__window_merge_slot(hp_hist_snapshot_t *s, const hp_hist_window_t *w, int64_t epoch)
{
    size_t idx = (size_t)(epoch % HP_HIST_SLOTS);
    if (atomic_load_explicit(&w->slot_epoch[idx], memory_order_acquire) != epoch)
        return 0;
    hp_hist_snapshot_t scratch;
    memset(&scratch, 0, sizeof(scratch));
    hp_hist_merge_into(&scratch, &w->slots[idx]);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&w->slot_epoch[idx], memory_order_relaxed) != epoch)
        return 0;
    hp_hist_snapshot_add(s, &scratch);
    return 1;
}

/*
 * The covered span, as stored in s->seconds: with E the oldest epoch whose slot
 * held data and was merged, seconds = now_s - E * HP_HIST_SLOT_SECONDS + 1,
 * that is from the start of E's slot through the end of the second now_s
 * (now_s is a whole second, the clock somewhere inside it). For "last 10 s"
 * with every slot filled that is 11 to 15. Slots that never had data are not
 * counted: the window cannot tell "idle" from "not yet running", and counting
 * them would make a window that started 3 s ago claim 60 s. If no slot in the
 * range held data, nothing is merged and s->seconds is left as it was (0 for a
 * fresh snapshot). When s already carries a span (another thread's window),
 * the larger of the two is kept, as hp_hist_snapshot_add does.
 */
void hp_hist_window_merge(hp_hist_snapshot_t *s, const hp_hist_window_t *w, int seconds, int64_t now_s)
{
    if (seconds <= 0) {
        hp_hist_merge_into(s, &w->total);
        return;
    }
    int64_t now = now_s < 0 ? 0 : now_s;
    int64_t cur = hp__epoch_of(now);
    /* ceil(seconds / slot): "last 10 s" reaches back into two earlier slots, and the ring holds at most SLOTS - 1. */
    int64_t back = ((int64_t)seconds + HP_HIST_SLOT_SECONDS - 1) / HP_HIST_SLOT_SECONDS;
    if (back > HP_HIST_SLOTS - 1)
        back = HP_HIST_SLOTS - 1;
    /* No epoch precedes 0, and asking for epoch -1 would match the empty stamp. */
    int64_t first = cur - back < 0 ? 0 : cur - back;
    int64_t oldest = -1;
    for (int64_t e = first; e <= cur; e++) {
        if (hp__window_merge_slot(s, w, e) && oldest < 0)
            oldest = e;
    }
    if (oldest >= 0) {
        double span = (double)(now - oldest * HP_HIST_SLOT_SECONDS + 1);
        if (span > s->seconds)
            s->seconds = span;
    }
}
