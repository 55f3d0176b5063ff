/* Separable resampling of float planes with a triangle filter whose support
 * widens with the reduction (antialiased downscaling, bilinear upscaling). */
#include <math.h>
#include <stdlib.h>

#include "dream.h"
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

dd_status dream_resize(float *dst, int dh, int dw, const float *src, int sh, int sw, int planes,
                       int threads) {
    taps tx = {0}, ty = {0};
    float *tmp = malloc((size_t)sh * dw * sizeof *tmp * (size_t)planes);
    dd_status st = DD_OK;
    if (!tmp || !taps_make(&tx, dw, sw) || !taps_make(&ty, dh, sh)) {
        st = util_fail(DD_ERR_NOMEM, "out of memory resizing to %dx%d", dw, dh);
        goto done;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < planes * sh; r++) { /* rows: horizontal pass */
        const float *in = src + (size_t)r * sw;
        float *out = tmp + (size_t)r * dw;
        for (int x = 0; x < dw; x++) {
            const float *w = tx.weights + (size_t)x * tx.max_taps;
            float acc = 0;
            for (int k = 0; k < tx.count[x]; k++) acc += w[k] * in[tx.first[x] + k];
            out[x] = acc;
        }
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < planes * dh; r++) { /* columns: vertical pass */
        const int p = r / dh, y = r % dh;
        const float *w = ty.weights + (size_t)y * ty.max_taps;
        float *out = dst + (size_t)r * dw;
        for (int x = 0; x < dw; x++) out[x] = 0;
        for (int k = 0; k < ty.count[y]; k++) {
            const float *in = tmp + ((size_t)p * sh + (size_t)(ty.first[y] + k)) * dw;
            for (int x = 0; x < dw; x++) out[x] += w[k] * in[x];
        }
    }
done:
    free(tmp);
    taps_free(&tx), taps_free(&ty);
    return st;
}
