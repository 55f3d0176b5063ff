/* Internals of the dream shared between its files. */
#ifndef DD_DREAM_H
#define DD_DREAM_H

#include "deepdream.h"

/* The user's should_stop, asked on the calling thread between pieces of
 * work (never inside a parallel region). */
typedef struct dream_stop {
    int (*fn)(void *user); /* NULL: never stop */
    void *user;
} dream_stop;

/* 1 when the user asked to stop (after recording "cancelled" for
 * dd_last_error), else 0. */
int dream_stop_asked(const dream_stop *stop);

/* Row y of source plane p, sw floats. scratch (sw floats, owned by the
 * calling thread) is there for sources that build their rows on demand;
 * a source already in memory returns a pointer into itself. */
typedef const float *(*dream_row_fn)(const void *source, int plane, int y, float *scratch);

/* planes planes of sh x sw, read row by row from row(source, ...), ->
 * dh x dw float planes in dst. Works in bands of output rows, so its
 * scratch is a few rows, never an image. stop (may be NULL) is asked
 * between bands: DD_ERR_CANCELLED, dst partly written. */
dd_status dream_resize_rows(float *dst, int dh, int dw, dream_row_fn row, const void *source, int sh,
                            int sw, int planes, int threads, const dream_stop *stop);

/* The same from planes float planes of sh x sw in memory (dst must not
 * alias src). */
dd_status dream_resize(float *dst, int dh, int dw, const float *src, int sh, int sw, int planes,
                       int threads, const dream_stop *stop);

#endif
