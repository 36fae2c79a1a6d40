/*
 * logbuf: a bounded single-producer, single-consumer buffer of log lines (see logbuf.h).
 */
#include "base/logbuf.h"

#include <stdlib.h>

int hp_logbuf_init(hp_logbuf_t *b, size_t chunk_size, unsigned nchunks)
{
    *b = (hp_logbuf_t){.chunk_size = chunk_size, .nchunks = nchunks};
    if (nchunks == 0 || chunk_size == 0 || chunk_size > UINT32_MAX)
        return -1;
    b->mem = malloc(chunk_size * nchunks);
    b->lens = calloc(nchunks, sizeof(*b->lens));
    if (b->mem == NULL || b->lens == NULL) {
        hp_logbuf_dispose(b);
        return -1;
    }
    return 0;
}

void hp_logbuf_dispose(hp_logbuf_t *b)
{
    free(b->mem);
    free(b->lens);
    b->mem = NULL;
    b->lens = NULL;
}

/* The open chunk is free to fill while fewer than nchunks chunks are published and not yet written. */
static int hp__logbuf_open_free(hp_logbuf_t *b)
{
    uint64_t published = atomic_load_explicit(&b->published, memory_order_relaxed);
    return published - atomic_load_explicit(&b->written, memory_order_acquire) < b->nchunks;
}

int hp_logbuf_publish(hp_logbuf_t *b)
{
    if (b->open_len == 0)
        return 0;
    uint64_t published = atomic_load_explicit(&b->published, memory_order_relaxed);
    b->lens[published % b->nchunks] = (uint32_t)b->open_len;
    b->open_len = 0;
    b->open_since = 0;
    /* Release: the chunk's bytes and its length are visible to a consumer that sees the new count. */
    atomic_store_explicit(&b->published, published + 1, memory_order_release);
    return 1;
}

char *hp_logbuf_reserve(hp_logbuf_t *b, size_t max)
{
    if (max > b->chunk_size) {
        ++b->dropped;
        return NULL;
    }
    if (b->open_len + max > b->chunk_size)
        hp_logbuf_publish(b);
    if (!hp__logbuf_open_free(b)) {
        ++b->dropped;
        return NULL;
    }
    uint64_t open = atomic_load_explicit(&b->published, memory_order_relaxed) % b->nchunks;
    return b->mem + open * b->chunk_size + b->open_len;
}

uint64_t hp_logbuf_drain(hp_logbuf_t *b, void (*out)(void *ctx, const char *p, size_t n), void *ctx)
{
    uint64_t written = atomic_load_explicit(&b->written, memory_order_relaxed);
    uint64_t published = atomic_load_explicit(&b->published, memory_order_acquire);
    uint64_t n = 0;
    for (; written != published; ++written, ++n) {
        uint64_t i = written % b->nchunks;
        out(ctx, b->mem + i * b->chunk_size, b->lens[i]);
        /* Release: the producer reuses the chunk only after this store, so our reads of it are done. */
        atomic_store_explicit(&b->written, written + 1, memory_order_release);
    }
    return n;
}
