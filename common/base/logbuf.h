/*
 * logbuf: a bounded buffer of log lines with one producer and one consumer.
 *
 * An event-loop thread formats its log lines straight into a buffer of its
 * own, and the log's writer thread (base/log.c) writes them out, so no
 * write(2) of a log line ever runs on a loop. The buffer is a ring of
 * `nchunks` chunks of `chunk_size` bytes, each holding whole lines only: the
 * producer fills the open chunk and publishes it when the next line might not
 * fit (or when the caller says so: hp_logbuf_publish); the consumer writes
 * published chunks in order and hands them back. A chunk never splits a line,
 * so the consumer can write a chunk with one call and still cut it at line
 * boundaries where a pipe needs that.
 *
 * Bounded, never blocking: when every chunk is published and not yet written
 * (the writer is behind, or its output is stuck), hp_logbuf_reserve() returns
 * NULL and the caller drops the line; the buffer counts the drops.
 *
 * Threads: the producer calls reserve, commit and publish, and owns the
 * fields marked "producer" below; the consumer calls hp_logbuf_drain(); the
 * two meet only at the `published` and `written` counters (release/acquire).
 * Two consumers must not drain one buffer at once (base/log.c holds a mutex).
 */
#ifndef HP_LOGBUF_H
#define HP_LOGBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_hp_logbuf_t {
    char *mem;         /* nchunks * chunk_size bytes */
    uint32_t *lens;    /* the bytes in each published chunk, set before `published` moves */
    size_t chunk_size; /* bytes per chunk, at least the longest line */
    uint64_t nchunks;
    _Atomic uint64_t published; /* chunks handed to the consumer so far (chunk i lives at i % nchunks) */
    _Atomic uint64_t written;   /* chunks the consumer has written and handed back */
    /* producer */
    size_t open_len;     /* bytes in the open chunk, the one at published % nchunks */
    uint64_t open_since; /* the caller's own mark of the open chunk's age (base/log.c: when a loop turn first found it
                            holding lines); set to 0 whenever a chunk is published */
    uint64_t dropped;    /* lines refused because no chunk was free, since init */
} hp_logbuf_t;

/**
 * Allocates the chunks (owned by the buffer until hp_logbuf_dispose).
 * @return 0, or -1 when out of memory or nchunks == 0
 */
int hp_logbuf_init(hp_logbuf_t *b, size_t chunk_size, unsigned nchunks);

/** Frees the chunks. Lines not drained are lost: drain first. */
void hp_logbuf_dispose(hp_logbuf_t *b);

/**
 * Producer: room for one line of at most max bytes (max <= chunk_size) in the
 * open chunk, publishing the open chunk first when the line might not fit.
 * @return where to write the line, to be followed by hp_logbuf_commit(); or
 *         NULL when every chunk is waiting for the consumer, and the line is
 *         counted as dropped
 */
char *hp_logbuf_reserve(hp_logbuf_t *b, size_t max);

/** Producer: keeps the n bytes (at most the reserved max) written where hp_logbuf_reserve() pointed. */
static inline void hp_logbuf_commit(hp_logbuf_t *b, size_t n)
{
    b->open_len += n;
}

/**
 * Producer: hands the open chunk to the consumer if it holds any line.
 * @return 1 if it did, 0 if the open chunk was empty
 */
int hp_logbuf_publish(hp_logbuf_t *b);

/**
 * Consumer: calls out(ctx, bytes, len) for each published chunk not yet
 * written, in order, and hands each back after its call.
 * @return the number of chunks written
 */
uint64_t hp_logbuf_drain(hp_logbuf_t *b, void (*out)(void *ctx, const char *p, size_t n), void *ctx);

/** @return the chunks published and not yet written (either side may ask; the answer may be stale) */
static inline uint64_t hp_logbuf_pending(hp_logbuf_t *b)
{
    return atomic_load_explicit(&b->published, memory_order_acquire) - atomic_load_explicit(&b->written, memory_order_acquire);
}

#endif
