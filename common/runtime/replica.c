/*
 * replica: the routing decision and the read-your-writes table (see replica.h).
 */
#include "runtime/replica.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/*
 * Both fields only ever grow between resets (an atomic maximum), so a reader
 * that sees one updated and not yet the other errs towards the primary on
 * the next read at worst, never towards a standby that lacks the commit:
 * each field alone already keeps the read on the primary.
 */
static struct {
    _Atomic uint64_t lsn;
    _Atomic uint64_t until_ns;
} hp__marks[HP_REPLICA_BUCKETS];

int hp_replica_parse_lsn(const char *s, size_t len, uint64_t *out)
{
    uint64_t half[2] = {0, 0};
    size_t digits = 0;
    int part = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (c == '/' && part == 0 && digits != 0) {
            part = 1;
            digits = 0;
            continue;
        }
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0 || ++digits > 8)
            return -1;
        half[part] = half[part] << 4 | (uint64_t)v;
    }
    if (part != 1 || digits == 0)
        return -1;
    *out = half[0] << 32 | half[1];
    return 0;
}

char *hp_replica_format_lsn(uint64_t lsn, char buf[HP_REPLICA_LSN_TEXT])
{
    snprintf(buf, HP_REPLICA_LSN_TEXT, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
    return buf;
}

int hp_replica_cookie_lsn(const char *s, size_t len, uint64_t *out)
{
    static const char name[] = HP_REPLICA_COOKIE "=";
    const size_t nlen = sizeof(name) - 1;
    size_t i = 0;
    while (i < len) {
        /* One cookie-pair: from here to the next ';', with the spaces around it skipped. */
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            ++i;
        size_t end = i;
        while (end < len && s[end] != ';')
            ++end;
        size_t vend = end;
        while (vend > i && (s[vend - 1] == ' ' || s[vend - 1] == '\t'))
            --vend;
        if (vend - i > nlen && memcmp(s + i, name, nlen) == 0) {
            const char *v = s + i + nlen;
            size_t vlen = vend - i - nlen;
            /* RFC 6265 allows the value in double quotes. */
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                ++v;
                vlen -= 2;
            }
            return hp_replica_parse_lsn(v, vlen, out);
        }
        i = end + 1;
    }
    return -1;
}

hp_replica_route_t hp_replica_route(int enabled, int standby_ready, const hp_replica_mark_t *mark, uint64_t replay_lsn,
                                    uint64_t now_ns)
{
    if (!enabled)
        return HP_REPLICA_PRIMARY_OFF;
    if (!standby_ready)
        return HP_REPLICA_PRIMARY_DOWN;
    /* A replay position of 0 is one not read yet: it has passed no commit. */
    if (mark->until_ns > now_ns || (mark->lsn != 0 && replay_lsn < mark->lsn))
        return HP_REPLICA_PRIMARY_FRESH;
    return HP_REPLICA_STANDBY;
}

/*
 * Fibonacci hashing: customer ids are dense and sequential, and the
 * multiplication spreads neighbours over the whole table.
 */
static size_t hp__bucket(int64_t key)
{
    return (size_t)(((uint64_t)key * UINT64_C(11400714819323198485)) >> 52) & (HP_REPLICA_BUCKETS - 1);
}

static void hp__atomic_max(_Atomic uint64_t *slot, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(slot, &cur, v, memory_order_release, memory_order_relaxed))
        ;
}

void hp_replica_note_lsn(int64_t key, uint64_t lsn)
{
    if (key != 0)
        hp__atomic_max(&hp__marks[hp__bucket(key)].lsn, lsn);
}

void hp_replica_note_until(int64_t key, uint64_t until_ns)
{
    if (key != 0)
        hp__atomic_max(&hp__marks[hp__bucket(key)].until_ns, until_ns);
}

hp_replica_mark_t hp_replica_mark(int64_t key)
{
    hp_replica_mark_t m = {0, 0};
    if (key == 0)
        return m;
    size_t b = hp__bucket(key);
    m.lsn = atomic_load_explicit(&hp__marks[b].lsn, memory_order_acquire);
    m.until_ns = atomic_load_explicit(&hp__marks[b].until_ns, memory_order_acquire);
    return m;
}

void hp_replica_reset(void)
{
    for (size_t i = 0; i != HP_REPLICA_BUCKETS; ++i) {
        atomic_store(&hp__marks[i].lsn, 0);
        atomic_store(&hp__marks[i].until_ns, 0);
    }
}
