/*
 * probes: recording into the calling thread's probes (see probes.h).
 *
 * Everything here runs on the thread that owns the probes, on the request
 * path, so it allocates nothing and takes no lock.
 */
#include "runtime/probes.h"
#include "base/flags.h"
#include "base/router.h"
#include "runtime/thread.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

static const char *const hp__stage_names[HP_STAGE__COUNT] = {
#define HP__STAGE_NAME(name) #name,
    HP_STAGE_LIST(HP__STAGE_NAME)
#undef HP__STAGE_NAME
};

const char *hp_stage_name(hp_stage_t stage)
{
    return hp__stage_names[stage];
}

/* The tables of runtime/stats.h. */
const hp_stat_def_t hp_counter_defs[HP_COUNTER__COUNT] = {
#define HP__COUNTER_DEF(id, section, key, metric, labels, help) {#id, HP_STAT_SECTION_##section, key, metric, labels, help},
    HP_COUNTER_LIST(HP__COUNTER_DEF)
#undef HP__COUNTER_DEF
};
const hp_stat_def_t hp_gauge_defs[HP_GAUGE__COUNT] = {
#define HP__GAUGE_DEF(id, section, key, metric, labels, help) {#id, HP_STAT_SECTION_##section, key, metric, labels, help},
    HP_GAUGE_LIST(HP__GAUGE_DEF)
#undef HP__GAUGE_DEF
};
const hp_stat_def_t hp_hist_defs[HP_HIST__COUNT] = {
#define HP__HIST_DEF(id, section, key, metric, help) {#id, HP_STAT_SECTION_##section, key, metric, "", help},
    HP_HIST_LIST(HP__HIST_DEF)
#undef HP__HIST_DEF
};
const hp_stat_section_def_t hp_stat_sections[HP_STAT_SECTION__COUNT] = {
#define HP__SECTION_DEF(id, parent, key) {key, HP_STAT_SECTION_##parent},
    HP_STAT_SECTION_LIST(HP__SECTION_DEF)
#undef HP__SECTION_DEF
};

static void hp__route_init(hp_route_probe_t *rp)
{
    hp_hist_window_init(&rp->latency);
    for (size_t i = 0; i != HP_ROUTE_SLOTS; ++i)
        atomic_store_explicit(&rp->slot_epoch[i], -1, memory_order_relaxed);
}

/*
 * A thread's probes are about 12 MB (each latency window is 14 histograms of
 * 1,984 buckets), of which a request touches a few lines in each of some
 * twenty windows: on 4 kB pages, a few dozen pages 100 kB apart, likely more
 * than a first-level TLB keeps beside the request's own memory, and under a
 * hypervisor each TLB miss walks two page tables. (The VM this was measured on
 * has no hardware counters to count the misses; docs/BENCHMARKS.md, "The
 * probes on huge pages", measures the CPU time saved.) So the probes get a
 * mapping of their own, aligned to 2 MiB and advised as transparent huge
 * pages, which seven TLB entries cover. The cost is resident memory: a huge
 * page is resident whole once anything in it is touched, so the probes are
 * resident from the start (hp__route_init and hp_hist_window_init touch every
 * window) instead of growing page by page. Where the kernel gives no huge
 * pages (THP off, no contiguous memory), the same mapping works on small
 * pages.
 */
#define HP__PROBES_ALIGN ((size_t)2 << 20)

static size_t hp__probes_map_len(void)
{
    return (sizeof(hp_probes_t) + HP__PROBES_ALIGN - 1) & ~(HP__PROBES_ALIGN - 1);
}

hp_probes_t *hp_probes_new(void)
{
    /* Map one alignment more than needed and trim both ends, so the probes start on a 2 MiB boundary. */
    size_t len = hp__probes_map_len();
    char *raw = mmap(NULL, len + HP__PROBES_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *base = (char *)(((uintptr_t)raw + HP__PROBES_ALIGN - 1) & ~(uintptr_t)(HP__PROBES_ALIGN - 1));
    if (base != raw)
        munmap(raw, (size_t)(base - raw));
    munmap(base + len, (size_t)(raw + HP__PROBES_ALIGN - base));
    (void)madvise(base, len, MADV_HUGEPAGE); /* advice: small pages are correct too */
    hp_probes_t *p = (hp_probes_t *)base;    /* anonymous memory is zero, as calloc's was */
    for (size_t i = 0; i != HP_PROBE_MAX_ROUTES; ++i)
        hp__route_init(&p->routes[i]);
    hp__route_init(&p->unrouted);
    for (size_t i = 0; i != HP_STAGE__COUNT; ++i)
        hp_hist_window_init(&p->stages[i]);
    for (size_t i = 0; i != HP_PROBE_MAX_STMTS; ++i)
        hp_hist_window_init(&p->stmts[i].latency);
    for (size_t i = 0; i != HP_HIST__COUNT; ++i)
        hp_hist_window_init(&p->hists[i]);
    return p;
}

void hp_probes_free(hp_probes_t *p)
{
    if (p != NULL)
        munmap(p, hp__probes_map_len());
}

#if HOTPLATE_PROBES

static hp_route_probe_t *hp__route_probe(hp_thread_t *thr, const hp_route_t *route)
{
    hp_probes_t *p = thr->probes;
    if (route == NULL)
        return &p->unrouted;
    size_t idx = (size_t)(route - thr->routes);
    return idx < HP_PROBE_MAX_ROUTES ? &p->routes[idx] : &p->unrouted;
}

void hp_probe_request_start(hp_thread_t *thr, const hp_route_t *route, hp_req_probe_t *rp, const char *request_id)
{
    if (thr->probes == NULL)
        return;
    hp_probe_gauge_add(&hp__route_probe(thr, route)->inflight, 1);
    rp->started = 1;
    HP_USDT3(request__start, request_id, route != NULL ? route->pattern : "-", thr->index);
}

/* The slot of the counters ring for this second, zeroed when it is reused. */
static size_t hp__route_slot(hp_route_probe_t *rp, int64_t now_s)
{
    int64_t epoch = now_s / HP_ROUTE_SLOT_SECONDS;
    size_t i = (size_t)(epoch % HP_ROUTE_SLOTS);
    if (atomic_load_explicit(&rp->slot_epoch[i], memory_order_relaxed) != epoch) {
        for (size_t c = 0; c != HP_PROBE_STATUS_CLASSES; ++c)
            atomic_store_explicit(&rp->slot_by_class[i][c], 0, memory_order_relaxed);
        for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
            atomic_store_explicit(&rp->slot_stage_ns[i][s], 0, memory_order_relaxed);
        atomic_store_explicit(&rp->slot_epoch[i], epoch, memory_order_release);
    }
    return i;
}

/* Writes a slow request into the ring, under the entry's sequence number. */
static void hp__slow_record(hp_probes_t *p, hp_thread_t *thr, const hp_req_probe_t *rp, const char *request_id, int status,
                            uint64_t duration_ns, uint64_t route_idx)
{
    uint64_t n = atomic_load_explicit(&p->slow_next, memory_order_relaxed);
    hp_slow_entry_t *e = &p->slow[n % HP_SLOW_RING];
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->ts_us, hp_wall_us(), memory_order_relaxed);
    atomic_store_explicit(&e->route, route_idx, memory_order_relaxed);
    atomic_store_explicit(&e->status, (uint64_t)status, memory_order_relaxed);
    atomic_store_explicit(&e->duration_ns, duration_ns, memory_order_relaxed);
    atomic_store_explicit(&e->thread, (uint64_t)thr->index, memory_order_relaxed);
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s)
        atomic_store_explicit(&e->stage_ns[s], rp->stage_ns[s], memory_order_relaxed);
    atomic_store_explicit(&e->num_stmts, rp->num_stmts, memory_order_relaxed);
    for (size_t i = 0; i != rp->num_stmts; ++i)
        atomic_store_explicit(&e->stmts[i], (uint64_t)rp->stmt_ids[i] << 48 | (rp->stmt_ns[i] & 0xffffffffffffull),
                              memory_order_relaxed);
    uint64_t words[4] = {0};
    memcpy(words, request_id, strnlen(request_id, sizeof(words)));
    for (size_t i = 0; i != 4; ++i)
        atomic_store_explicit(&e->request_id[i], words[i], memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_relaxed);
    atomic_store_explicit(&p->slow_next, n + 1, memory_order_release);
}

void hp_probe_request_done(hp_thread_t *thr, const hp_route_t *route, hp_req_probe_t *req, const char *request_id,
                           uint64_t start_ns, uint64_t end_ns, int status)
{
    hp_probes_t *p = thr->probes;
    if (p == NULL)
        return;
    uint64_t now = end_ns, duration = now - start_ns;
    int64_t now_s = (int64_t)(now / 1000000000u);
    hp_route_probe_t *rp = hp__route_probe(thr, route);
    size_t cls = (size_t)(status / 100) < HP_PROBE_STATUS_CLASSES ? (size_t)(status / 100) : 0;
    size_t slot = hp__route_slot(rp, now_s);

    hp_probe_add(&rp->count, 1);
    hp_probe_add(&rp->by_class[cls], 1);
    hp_probe_add(&rp->slot_by_class[slot][cls], 1);
    if (req->started) {
        hp_probe_gauge_add(&rp->inflight, -1);
        req->started = 0;
    }
    hp_hist_window_record(&rp->latency, duration, now_s);
    for (size_t s = 0; s != HP_STAGE__COUNT; ++s) {
        uint64_t ns = req->stage_ns[s];
        if (ns == 0)
            continue;
        hp_probe_add(&rp->stage_ns[s], ns);
        hp_probe_add(&rp->slot_stage_ns[slot][s], ns);
        hp_hist_window_record(&p->stages[s], ns, now_s);
    }
    if (duration >= (uint64_t)hp_flag_get(HP_FLAG_slow_request_ms) * 1000000u)
        hp__slow_record(p, thr, req, request_id, status, duration, route != NULL ? (uint64_t)(route - thr->routes) : UINT64_MAX);
    HP_USDT4(request__done, request_id, route != NULL ? route->pattern : "-", status, duration / 1000);
}

void hp_probe_stmt_done(hp_thread_t *thr, hp_req_probe_t *rp, int stmt, uint64_t ns, uint64_t now_ns, uint64_t rows, int error)
{
    hp_probes_t *p = thr->probes;
    if (p == NULL || stmt < 0 || stmt >= HP_PROBE_MAX_STMTS)
        return;
    hp_stmt_probe_t *sp = &p->stmts[stmt];
    hp_probe_add(&sp->count, 1);
    hp_probe_add(&sp->rows, rows);
    if (error)
        hp_probe_add(&sp->errors, 1);
    hp_hist_window_record(&sp->latency, ns, (int64_t)(now_ns / 1000000000u));
    if (rp != NULL && rp->num_stmts < HP_SLOW_MAX_STMTS) {
        rp->stmt_ids[rp->num_stmts] = (uint16_t)stmt;
        rp->stmt_ns[rp->num_stmts++] = ns;
    }
}

void hp_probe_count(hp_thread_t *thr, hp_counter_t id, uint64_t n)
{
    if (thr->probes != NULL)
        hp_probe_add(&thr->probes->counters[id], n);
}

void hp_probe_gauge(hp_thread_t *thr, hp_gauge_t id, int64_t delta)
{
    if (thr->probes != NULL)
        hp_probe_gauge_add(&thr->probes->gauges[id], delta);
}

void hp_probe_observe(hp_thread_t *thr, hp_hist_id_t id, uint64_t ns, uint64_t now_ns)
{
    if (thr->probes != NULL)
        hp_hist_window_record(&thr->probes->hists[id], ns, (int64_t)(now_ns / 1000000000u));
}

#endif
