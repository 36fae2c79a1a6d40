/*
 * flame: renders folded stacks as a flame graph SVG, as pure code.
 *
 * Input is the "folded" (collapsed) format that `hotplate pprof-encode
 * --folded` writes (pprof_fold.h), as `google-pprof --collapsed` and
 * `jeprof --collapsed` do: one stack per line, frames from the outermost
 * caller to the leaf separated by ';', then one space and a positive decimal
 * sample count ("main;hp_serve;hp__on_req 12"). The count is taken after the
 * last space, so frame names may contain spaces. Identical stacks and
 * identical prefixes are merged into one tree.
 *
 * Output is a self-contained SVG 1.1 document: one rectangle per tree node,
 * its width proportional to the node's share of all samples and its row given
 * by its depth (the root at the bottom), a <title> tooltip with the full name
 * and counts, a label when the name fits, and a heading that carries the
 * sample count. Colours come from a hash of the frame name, so the same
 * function has the same colour in every graph. Siblings are ordered by name,
 * so the same input always gives byte-identical output.
 *
 * Nothing here touches globals or the clock, so the unit tests and a fuzzer
 * can drive it directly. Every dimension is bounded (see the HP_FLAME_MAX_*
 * limits): a hostile or huge profile yields an error, never an unbounded
 * allocation.
 */
#ifndef HP_FLAME_H
#define HP_FLAME_H

#include <stddef.h>
#include <stdint.h>

#include "profiling/folded.h"

/* Longest input accepted, in bytes. */
#define HP_FLAME_MAX_INPUT (64u * 1024 * 1024)
/* Most distinct tree nodes (merged frames) accepted. */
#define HP_FLAME_MAX_NODES (1u << 20)
/* Frames kept per stack; deeper frames are folded into the deepest kept one. */
#define HP_FLAME_MAX_DEPTH 512
/* Largest SVG produced, in bytes. */
#define HP_FLAME_MAX_OUTPUT (32u * 1024 * 1024)
/* Largest count on one line, and largest total (so sums never overflow). */
#define HP_FLAME_MAX_COUNT HP_FOLDED_MAX_COUNT

/**
 * Renders folded stacks as a flame graph.
 *
 * @param folded the folded text (need not be NUL-terminated); blank lines and a
 *        trailing '\r' on a line are ignored
 * @param len its length in bytes
 * @param out receives the SVG, malloc'd and NUL-terminated; the caller frees it
 *        with free(). Set only on success.
 * @param outlen receives the SVG's length without the NUL (may be NULL)
 * @param title the heading (may be NULL for "Flame graph"); " (N samples)" is
 *        appended. It is escaped, so any bytes are safe.
 * @param unit what a line's count is, in the heading and each frame's tooltip:
 *        "samples" (a CPU profile; NULL means it) or "bytes" (a heap profile,
 *        whose counts are bytes in use). A constant, not escaped.
 * @return 0; -EINVAL when a line is malformed (no count, a count that is not a
 *         positive decimal below HP_FLAME_MAX_COUNT, an empty frame), -E2BIG
 *         when a HP_FLAME_MAX_* bound would be exceeded, -ENOMEM when memory
 *         ran out. Empty input (or only blank lines) renders a graph with no
 *         frames and "0 samples" (or "0 bytes").
 */
int hp_flame_svg(const char *folded, size_t len, char **out, size_t *outlen, const char *title, const char *unit);

#endif
