/* Max and average pooling, forward and backward to the input, parallel over
 * channels (each channel's planes belong to one thread). */
#include <float.h>

#include "nn.h"

void nn_maxpool_forward(float *out, uint8_t *argmax, const float *in, int c,
                        const nn_window *s, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *p = in + (size_t)ch * s->h * s->w;
        float *o = out + (size_t)ch * s->oh * s->ow;
        uint8_t *a = argmax + (size_t)ch * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                float best = -FLT_MAX;
                int best_at = -1;
                for (int ky = 0; ky < s->kh; ky++) {
                    const int iy = oy * s->sh - s->pad_t + ky;
                    if (iy < 0 || iy >= s->h) continue;
                    for (int kx = 0; kx < s->kw; kx++) {
                        const int ix = ox * s->sw - s->pad_l + kx;
                        if (ix < 0 || ix >= s->w) continue;
                        const float v = p[(size_t)iy * s->w + ix];
                        if (best_at < 0 || v > best) best = v, best_at = ky * s->kw + kx;
                    }
                }
                o[(size_t)oy * s->ow + ox] = best;
                a[(size_t)oy * s->ow + ox] = (uint8_t)best_at;
            }
    }
}

void nn_maxpool_backward(float *din, const float *dout, const uint8_t *argmax,
                         int c, const nn_window *s, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        float *p = din + (size_t)ch * s->h * s->w;
        const float *d = dout + (size_t)ch * s->oh * s->ow;
        const uint8_t *a = argmax + (size_t)ch * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                const size_t o = (size_t)oy * s->ow + ox;
                const int iy = oy * s->sh - s->pad_t + a[o] / s->kw;
                const int ix = ox * s->sw - s->pad_l + a[o] % s->kw;
                p[(size_t)iy * s->w + ix] += d[o];
            }
    }
}

/* The real (unpadded) part of the window of output (oy, ox). */
static void window_extent(const nn_window *s, int oy, int ox, int *y0, int *y1,
                          int *x0, int *x1) {
    *y0 = oy * s->sh - s->pad_t, *y1 = *y0 + s->kh;
    *x0 = ox * s->sw - s->pad_l, *x1 = *x0 + s->kw;
    if (*y0 < 0) *y0 = 0;
    if (*x0 < 0) *x0 = 0;
    if (*y1 > s->h) *y1 = s->h;
    if (*x1 > s->w) *x1 = s->w;
}

void nn_avgpool_forward(float *out, const float *in, int c, const nn_window *s,
                        int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *p = in + (size_t)ch * s->h * s->w;
        float *o = out + (size_t)ch * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                int y0, y1, x0, x1;
                window_extent(s, oy, ox, &y0, &y1, &x0, &x1);
                float sum = 0.0f;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) sum += p[(size_t)y * s->w + x];
                o[(size_t)oy * s->ow + ox] = sum / (float)((y1 - y0) * (x1 - x0));
            }
    }
}

void nn_avgpool_backward(float *din, const float *dout, int c, const nn_window *s,
                         int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        float *p = din + (size_t)ch * s->h * s->w;
        const float *d = dout + (size_t)ch * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                int y0, y1, x0, x1;
                window_extent(s, oy, ox, &y0, &y1, &x0, &x1);
                const float g = d[(size_t)oy * s->ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) p[(size_t)y * s->w + x] += g;
            }
    }
}
