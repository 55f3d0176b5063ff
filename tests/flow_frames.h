/* Frames for the optical flow's tests and bench: a photo as luma floats
 * (through the public API), resampled, and a second frame made from it by
 * a known affine motion, with that motion's true flow. Static inline. */
#ifndef DD_TEST_FLOW_FRAMES_H
#define DD_TEST_FLOW_FRAMES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepdream.h"
#include "support.h"

/* The image at path as BT.601 luma, 0..255, in a new (*h, *w) plane; NULL
 * after saying why. The pixels come out through a PPM, the one way the
 * public API hands them over. */
static inline float *frames_load_luma(const char *path, int *h, int *w) {
    dd_image *im = load_image_file(path);
    if (!im) return NULL;
    unsigned char *ppm = NULL;
    size_t size = 0;
    const dd_status st = dd_image_save_memory(im, DD_FORMAT_PPM, 0, NULL, &ppm, &size);
    dd_image_free(im);
    if (st) {
        fprintf(stderr, "%s: %s\n", path, dd_last_error());
        return NULL;
    }
    int width = 0, height = 0, maxval = 0, used = 0;
    if (sscanf((const char *)ppm, "P6 %d %d %d%n", &width, &height, &maxval, &used) != 3 || maxval != 255 ||
        width < 1 || height < 1 || (size_t)used + 1 + 3 * (size_t)width * (size_t)height > size) {
        fprintf(stderr, "%s: unexpected PPM from dd_image_save_memory\n", path);
        free(ppm);
        return NULL;
    }
    const unsigned char *px = ppm + used + 1;
    float *y = xmalloc((size_t)width * (size_t)height * sizeof *y);
    for (size_t i = 0; i < (size_t)width * (size_t)height; i++)
        y[i] = 0.299f * px[3 * i] + 0.587f * px[3 * i + 1] + 0.114f * px[3 * i + 2];
    free(ppm);
    *h = height, *w = width;
    return y;
}

/* img at (x, y), bilinear, coordinates clamped into the plane. */
static inline float frames_sample(const float *img, int h, int w, double x, double y) {
    x = x < 0 ? 0 : x > w - 1 ? w - 1 : x;
    y = y < 0 ? 0 : y > h - 1 ? h - 1 : y;
    const int xi = (int)x, yi = (int)y;
    const int x1 = xi + (xi < w - 1), y1 = yi + (yi < h - 1);
    const double fx = x - xi, fy = y - yi;
    const double top = img[(size_t)yi * w + xi] * (1 - fx) + img[(size_t)yi * w + x1] * fx;
    const double bottom = img[(size_t)y1 * w + xi] * (1 - fx) + img[(size_t)y1 * w + x1] * fx;
    return (float)(top * (1 - fy) + bottom * fy);
}

/* An (oh, ow) plane: src scaled by s about its top left corner, offset by
 * (x0, y0) in the scaled picture (a crop after a resize). */
static inline float *frames_resample(const float *src, int h, int w, double s, int x0, int y0, int oh, int ow) {
    float *out = xmalloc((size_t)oh * (size_t)ow * sizeof *out);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) out[(size_t)y * ow + x] = frames_sample(src, h, w, (x + x0) / s, (y + y0) / s);
    return out;
}

/* A motion p -> T(p) = s R(angle) (p - c) + c + (tx, ty), c the frame's centre. */
typedef struct frames_motion {
    double tx, ty, angle_deg, scale;
} frames_motion;

static inline void frames_apply(const frames_motion *m, int h, int w, double x, double y, double *ox, double *oy) {
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1), t = m->angle_deg * M_PI / 180;
    const double dx = x - cx, dy = y - cy;
    *ox = m->scale * (cos(t) * dx - sin(t) * dy) + cx + m->tx;
    *oy = m->scale * (sin(t) * dx + cos(t) * dy) + cy + m->ty;
}

/* The second frame b(T(p)) = a(p), sampled from a at T^-1(q), and the
 * true flow T(p) - p at each pixel p of a (gu, gv may be NULL). */
static inline void frames_warp(const float *a, int h, int w, const frames_motion *m, float *b, float *gu, float *gv) {
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1), t = m->angle_deg * M_PI / 180;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double dx = (x - cx - m->tx) / m->scale, dy = (y - cy - m->ty) / m->scale;
            const double sx = cos(t) * dx + sin(t) * dy + cx, sy = -sin(t) * dx + cos(t) * dy + cy;
            b[(size_t)y * w + x] = frames_sample(a, h, w, sx, sy);
            double qx, qy;
            frames_apply(m, h, w, x, y, &qx, &qy);
            if (gu) gu[(size_t)y * w + x] = (float)(qx - x);
            if (gv) gv[(size_t)y * w + x] = (float)(qy - y);
        }
}

/* Mean endpoint error over the pixels at least border from every edge. */
static inline double frames_epe(const float *u, const float *v, const float *gu, const float *gv, int h, int w,
                                int border) {
    double sum = 0;
    long n = 0;
    for (int y = border; y < h - border; y++)
        for (int x = border; x < w - border; x++) {
            const size_t i = (size_t)y * w + x;
            sum += hypot((double)u[i] - gu[i], (double)v[i] - gv[i]);
            n++;
        }
    return n ? sum / (double)n : NAN;
}

/* The largest true displacement: the border to leave out of frames_epe. */
static inline double frames_max_motion(const float *gu, const float *gv, int h, int w) {
    double m = 0;
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++) m = fmax(m, hypot(gu[i], gv[i]));
    return m;
}

#endif
