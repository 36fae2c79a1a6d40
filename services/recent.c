/*
 * recent: the per-thread recently-viewed list, and GET /trending on top of it.
 *
 * Every menu view (GET /restaurants/{id}/menu) appends an entry to its worker
 * thread's list: the restaurant, the time and the client's User-Agent (kept
 * for the analytics a product team always asks for). GET /trending counts the
 * views of the last few minutes in the list of the thread that answers it.
 * Connections are spread over the threads by the kernel (SO_REUSEPORT), so
 * each thread's list is a sample of all views, which is what a "trending now"
 * box needs; no thread ever touches another's list, so nothing is locked.
 *
 * The list is bounded: once it holds HP_RECENT_CAP entries, each new view
 * frees the oldest. The flag leak=on removes exactly that eviction, the way a
 * real leak usually happens: the reader filters old entries out, so the
 * feature still looks right, but nothing ever frees them. Every view then
 * costs one allocation of about 100 to 200 bytes for as long as the process
 * lives; jemalloc's allocated bytes in /debug/perf grow with the request
 * count, and a heap profile names hp_recent_record as the allocation site
 * (docs/labs/07-leak.md). Setting leak=off again trims the list back to the
 * cap at the next view, so the heap comes back down without a restart.
 *
 * Ownership: entries are malloc'd here and freed here (eviction, trimming, and
 * hp_recent_thread_dispose at thread exit).
 */
#include "runtime/params.h"
#include "services/recent.h"
#include "base/flags.h"
#include "services/handlers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HP_RECENT_UA_MAX 160

typedef struct st_hp_recent_entry_t {
    h2o_linklist_t link; /* in hp_recent_t.entries, oldest first */
    int64_t restaurant_id;
    uint64_t at_ms; /* CLOCK_MONOTONIC */
    size_t ua_len;
    char ua[]; /* the User-Agent, truncated to HP_RECENT_UA_MAX bytes */
} hp_recent_entry_t;

typedef struct st_hp_recent_t {
    h2o_linklist_t entries;
    size_t count;
} hp_recent_t;

/* This thread's list, created at its first view; only its own loop touches it. */
static _Thread_local hp_recent_t *hp__recent;

static uint64_t hp__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static hp_recent_t *hp__recent_get(void)
{
    if (hp__recent == NULL) {
        hp__recent = calloc(1, sizeof(*hp__recent));
        if (hp__recent == NULL)
            abort();
        h2o_linklist_init_anchor(&hp__recent->entries);
    }
    return hp__recent;
}

static void hp__recent_drop_oldest(hp_thread_t *thr, hp_recent_t *rl)
{
    hp_recent_entry_t *e = H2O_STRUCT_FROM_MEMBER(hp_recent_entry_t, link, rl->entries.next);
    h2o_linklist_unlink(&e->link);
    free(e);
    --rl->count;
    if (thr != NULL)
        hp_probe_gauge(thr, HP_GAUGE_recent_entries, -1);
}

void hp_recent_record(hp_req_t *r, int64_t restaurant_id)
{
    hp_recent_t *rl = hp__recent_get();
    h2o_iovec_t ua = hp_req_header(r, "user-agent");
    size_t ua_len = ua.base == NULL ? 0 : ua.len > HP_RECENT_UA_MAX ? HP_RECENT_UA_MAX : ua.len;
    hp_recent_entry_t *e = calloc(1, sizeof(*e) + ua_len + 1); /* calloc: h2o_linklist_insert asserts an unlinked node */
    if (e == NULL)
        abort();
    e->restaurant_id = restaurant_id;
    e->at_ms = hp__now_ms();
    e->ua_len = ua_len;
    if (ua_len != 0)
        memcpy(e->ua, ua.base, ua_len);
    e->ua[ua_len] = '\0';
    h2o_linklist_insert(&rl->entries, &e->link);
    ++rl->count;
    hp_probe_gauge(r->thr, HP_GAUGE_recent_entries, 1);
    /* The eviction that leak=on leaves out. */
    if (hp_flag_get(HP_FLAG_leak) == HP_leak_off)
        while (rl->count > HP_RECENT_CAP)
            hp__recent_drop_oldest(r->thr, rl);
}

void hp_recent_thread_dispose(hp_thread_t *thr)
{
    (void)thr;
    if (hp__recent == NULL)
        return;
    while (hp__recent->count != 0)
        hp__recent_drop_oldest(NULL, hp__recent);
    free(hp__recent);
    hp__recent = NULL;
}

size_t hp_recent_top(uint64_t window_ms, hp_recent_top_t *top, size_t max)
{
    if (hp__recent == NULL || max == 0)
        return 0;
    uint64_t now = hp__now_ms(), since = now > window_ms ? now - window_ms : 0;
    /*
     * Counts per restaurant in a small open-addressing table, walking from the
     * newest entry back to the window's start. The table is sized for the cap,
     * so in leak mode (where the window can hold more entries than the cap)
     * restaurants beyond it are not counted rather than overflowing anything.
     */
    enum { SLOTS = 2 * HP_RECENT_CAP };
    static _Thread_local hp_recent_top_t table[SLOTS];
    memset(table, 0, sizeof(table));
    size_t used = 0;
    for (h2o_linklist_t *l = hp__recent->entries.prev; l != &hp__recent->entries; l = l->prev) {
        hp_recent_entry_t *e = H2O_STRUCT_FROM_MEMBER(hp_recent_entry_t, link, l);
        if (e->at_ms < since)
            break;
        size_t h = (size_t)((uint64_t)e->restaurant_id * 0x9e3779b97f4a7c15ull >> 32) % SLOTS;
        while (table[h].views != 0 && table[h].restaurant_id != e->restaurant_id)
            h = (h + 1) % SLOTS;
        if (table[h].views == 0) {
            if (used == SLOTS - 1)
                continue;
            ++used;
            table[h].restaurant_id = e->restaurant_id;
        }
        ++table[h].views;
    }
    /* The top `max` by views (ties: the lower id first), by selection: max is small. */
    size_t n = 0;
    for (; n != max; ++n) {
        size_t best = SLOTS;
        for (size_t i = 0; i != SLOTS; ++i)
            if (table[i].views != 0 &&
                (best == SLOTS || table[i].views > table[best].views ||
                 (table[i].views == table[best].views && table[i].restaurant_id < table[best].restaurant_id)))
                best = i;
        if (best == SLOTS)
            break;
        top[n] = table[best];
        table[best].views = 0;
    }
    return n;
}

/* GET /trending?minutes=M&limit=N: the most viewed menus of the last M minutes (default 10) on this thread. */
void hp_handle_trending(hp_req_t *r)
{
    int limit;
    int64_t minutes;
    if (hp_param_limit(r, 10, 50, &limit) < 0 || hp_param_int(r, "minutes", 1, 1440, 10, &minutes) < 0)
        return;
    hp_recent_top_t top[50];
    size_t n = hp_recent_top((uint64_t)minutes * 60000, top, (size_t)limit);
    json_t *list = json_array();
    for (size_t i = 0; i != n; ++i)
        json_array_append_new(
            list, json_pack("{sI sI}", "restaurant_id", (json_int_t)top[i].restaurant_id, "views", (json_int_t)top[i].views));
    hp_respond_json(r, 200, json_pack("{sI so}", "minutes", (json_int_t)minutes, "restaurants", list));
}
