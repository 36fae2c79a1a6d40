/*
 * pprof_fold: a profile.proto's samples as folded stacks (folded.h's
 * grammar: "root;...;leaf value" per line), the text the flame graph draws
 * and the doctor ranks. `format=folded` and `format=svg` are made from the
 * server's own symbolization this way (`hotplate pprof-encode --folded`), so
 * they name the same frames as the proto: a stripped library's static
 * function is FILE+0xOFFSET, never the exported symbol before it, and an
 * inlined function is a frame of its own, marked NAME[inline] as
 * google-pprof marks it.
 *
 * Pure: a decoded profile in, malloc'd text out, nothing global.
 */
#ifndef HP_PPROF_FOLD_H
#define HP_PPROF_FOLD_H

#include <stddef.h>

#include "profile.pb-c.h"

/**
 * Folds p's samples by its default sample type (the first when it names
 * none: a CPU profile's sample count), one line per distinct stack, sorted
 * by stack, values of equal stacks added and zero values left out. A frame
 * is its location's function names, outermost first, each inlined one with
 * "[inline]" after it; a location without lines is its mapping's file name
 * and offset (FILE+0xOFFSET), or its address.
 * @return 0 with *out (malloc'd, not NUL-terminated; the caller frees it) and
 *         *out_len, or -1 with *err set
 */
int hp_pprof_fold(const Perftools__Profiles__Profile *p, char **out, size_t *out_len, const char **err);

#endif
