/* Separable resampling of float planes with a triangle filter whose support
 * widens with the reduction (antialiased downscaling, bilinear upscaling),
 * from planes in memory or from rows made on demand. */
#include <math.h>
#include <stdlib.h>

#include "dream.h"
#include "nn/nn.h"
#include "util/util.h"

typedef struct taps {
    int *first, *count; /* per output pixel */
    float *weights;     /* per output pixel, max_taps each */
    int max_taps;
} taps;

static int taps_make(taps *t, int out_n, int in_n) {
    const double scale = (double)in_n / out_n, support = scale > 1 ? scale : 1.0;
    t->max_taps = (int)ceil(2 * support) + 2;
    t->first = malloc((size_t)out_n * sizeof *t->first);
    t->count = malloc((size_t)out_n * sizeof *t->count);
    t->weights = malloc((size_t)out_n * (size_t)t->max_taps * sizeof *t->weights);
    if (!t->first || !t->count || !t->weights) return 0;
    for (int i = 0; i < out_n; i++) {
        const double centre = (i + 0.5) * scale - 0.5;
        int lo = (int)floor(centre - support) + 1, hi = (int)ceil(centre + support) - 1;
        if (lo < 0) lo = 0;
        if (hi > in_n - 1) hi = in_n - 1;
        if (hi - lo + 1 > t->max_taps) hi = lo + t->max_taps - 1;
        float *w = t->weights + (size_t)i * t->max_taps;
        double sum = 0;
        for (int j = lo; j <= hi; j++) sum += w[j - lo] = (float)fmax(0.0, 1.0 - fabs(j - centre) / support);
        if (sum <= 0) { /* a single nearest tap */
            lo = hi = (int)fmin(fmax(floor(centre + 0.5), 0), in_n - 1);
            w[0] = 1.0f, sum = 1;
        }
        for (int j = lo; j <= hi; j++) w[j - lo] = (float)(w[j - lo] / sum);
        t->first[i] = lo, t->count[i] = hi - lo + 1;
    }
    return 1;
}

static void taps_free(taps *t) {
    free(t->first), free(t->count), free(t->weights);
}

/* Output rows are made in bands of this many: each band runs the horizontal
 * pass over just the source rows its taps read (a band's first rows may
 * repeat the last ones of the band before, with the same bits), so the
 * intermediate is a few rows wide, not a whole image of sh x dw. */
enum { BAND_ROWS = 64 };

/* Source rows [*lo, *hi) read by output rows [y0, y1). */
static void band_source(const taps *ty, int y0, int y1, int *lo, int *hi) {
    *lo = ty->first[y0], *hi = ty->first[y0] + ty->count[y0];
    for (int y = y0 + 1; y < y1; y++) {
        if (ty->first[y] < *lo) *lo = ty->first[y];
        if (ty->first[y] + ty->count[y] > *hi) *hi = ty->first[y] + ty->count[y];
    }
}

/* One band of one plane, both passes; rows (from the band's first) split
 * over threads, each with its own scratch row for the source. */
typedef struct pass {
    const taps *tx, *ty;
    dream_row_fn row;
    const void *source;
    float *dst, *tmp, *scratch;
    int p, lo, y0, dh, dw, sw;
} pass;

static void horizontal(void *ctx, size_t from, size_t to, int worker) {
    const pass *j = ctx;
    const taps *tx = j->tx;
    const int dw = j->dw;
    for (int s = j->lo + (int)from; s < j->lo + (int)to; s++) {
        const float *in = j->row(j->source, j->p, s, j->scratch + (size_t)worker * j->sw);
        float *out = j->tmp + (size_t)(s - j->lo) * dw;
        for (int x = 0; x < dw; x++) {
            const float *w = tx->weights + (size_t)x * tx->max_taps;
            float acc = 0;
            for (int k = 0; k < tx->count[x]; k++) acc += w[k] * in[tx->first[x] + k];
            out[x] = acc;
        }
    }
}

static void vertical(void *ctx, size_t from, size_t to, int worker) {
    const pass *j = ctx;
    const taps *ty = j->ty;
    const int dw = j->dw;
    (void)worker;
    for (int y = j->y0 + (int)from; y < j->y0 + (int)to; y++) {
        const float *w = ty->weights + (size_t)y * ty->max_taps;
        float *out = j->dst + ((size_t)j->p * j->dh + (size_t)y) * dw;
        for (int x = 0; x < dw; x++) out[x] = 0;
        for (int k = 0; k < ty->count[y]; k++) {
            const float *in = j->tmp + (size_t)(ty->first[y] + k - j->lo) * dw;
            for (int x = 0; x < dw; x++) out[x] += w[k] * in[x];
        }
    }
}

dd_status dream_resize_rows(float *dst, int dh, int dw, dream_row_fn row, const void *source, int sh,
                            int sw, int planes, int threads, const dream_stop *stop) {
    taps tx = {0}, ty = {0};
    float *tmp = NULL, *scratch = NULL;
    dd_status st = DD_OK;
    if (!taps_make(&tx, dw, sw) || !taps_make(&ty, dh, sh)) goto nomem;
    int window = 0; /* the most source rows a band reads */
    for (int y0 = 0; y0 < dh; y0 += BAND_ROWS) {
        int lo, hi;
        band_source(&ty, y0, y0 + BAND_ROWS < dh ? y0 + BAND_ROWS : dh, &lo, &hi);
        if (hi - lo > window) window = hi - lo;
    }
    tmp = malloc((size_t)window * (size_t)dw * sizeof *tmp);
    scratch = malloc((size_t)threads * (size_t)sw * sizeof *scratch);
    if (!tmp || !scratch) goto nomem;
    for (int p = 0; p < planes; p++)
        for (int y0 = 0; y0 < dh; y0 += BAND_ROWS) {
            const int y1 = y0 + BAND_ROWS < dh ? y0 + BAND_ROWS : dh;
            int lo, hi;
            if (dream_stop_asked(stop)) {
                st = DD_ERR_CANCELLED;
                goto done;
            }
            band_source(&ty, y0, y1, &lo, &hi);
            pass j = {&tx, &ty, row, source, dst, tmp, scratch, p, lo, y0, dh, dw, sw};
            team_for(threads, (size_t)(hi - lo), horizontal, &j);
            team_for(threads, (size_t)(y1 - y0), vertical, &j);
        }
    goto done;
nomem:
    st = util_fail(DD_ERR_NOMEM, "out of memory resizing to %dx%d", dw, dh);
done:
    free(tmp), free(scratch);
    taps_free(&tx), taps_free(&ty);
    return st;
}

typedef struct float_planes {
    const float *data;
    int h, w;
} float_planes;

static const float *float_planes_row(const void *source, int plane, int y, float *scratch) {
    const float_planes *f = source;
    (void)scratch;
    return f->data + ((size_t)plane * f->h + (size_t)y) * f->w;
}

dd_status dream_resize(float *dst, int dh, int dw, const float *src, int sh, int sw, int planes,
                       int threads, const dream_stop *stop) {
    const float_planes f = {src, sh, sw};
    return dream_resize_rows(dst, dh, dw, float_planes_row, &f, sh, sw, planes, threads, stop);
}
