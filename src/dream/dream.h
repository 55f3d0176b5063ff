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

/* The photo in network units, made from the image's own samples whenever it
 * is needed instead of kept as a float copy (12 bytes a pixel): the same
 * expression gives the same bits every time. Grey is repeated into R, G
 * and B. */
typedef struct dream_photo {
    const dd_image *im;
    int colour; /* 3, or 1 for grey */
    float unit; /* 257 for 16-bit samples, else 1 */
    const float *divisor, *offset; /* the model's, per channel */
    const float *start; /* NULL; or 3 planes at the image's size, in network
                         * units, read in place of its samples */
} dream_photo;
dream_photo dream_photo_of(const dd_image *im, const dd_model *model);
/* A dream_row_fn over a dream_photo. */
const float *dream_photo_row(const void *source, int c, int y, float *row);
/* The photo at h x w (3 planes) into dst, asking stop between bands. */
dd_status dream_photo_at(float *dst, const dream_photo *ph, int h, int w, int threads, const dream_stop *stop);

/* A dream planned for one image size: its octaves, buffers and (for a
 * clip, keep_nets) every octave's net, kept from one run to the next so a
 * clip plans and packs once. dd_dream is dream_new, one dream_run and
 * dream_free; a kept net holds its arena, so a clip's memory is the sum of
 * its octaves' arenas where a single dream has one at a time. */
/* The caller's params as this library's whole struct (src/dream/params.c):
 * the fields the caller's header knew, defaults for the rest. Rejects a
 * dd_params that dd_params_init did not set up. */
dd_status params_read(const dd_params *p, dd_params *out);

typedef struct dream dream;
dd_status dream_new(const dd_model *model, const dd_params *params, int h, int w, int keep_nets, dream **out);
/* Dreams im (h x w as planned) in place with steps per octave, starting
 * from start (3 planes in network units at the image's size; NULL: the
 * image's own samples). Failed or cancelled: im as it was. */
dd_status dream_run(dream *d, dd_image *im, const float *start, int steps, dd_progress_fn progress, void *user);
int dream_threads(const dream *d);
void dream_free(dream *d);

#endif
