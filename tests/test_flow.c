/* Optical flow methods on a photograph warped by known motions: mean
 * endpoint error over the interior under measured bounds, zero motion,
 * the same bits for 1, 2 and 3 threads and at every vector level, tiny sizes,
 * frames with no texture or one edge, argument errors. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/nn.h"
#include "support.h"
#include "video/flow.h"

/* One line per method; each runs every case. */
static const struct {
    const char *name;
    video_flow_fn fn;
} METHODS[] = {
    {"farneback", video_flow_farneback},
};

enum { MOVE, ROTATE, ZOOM };

/* Mean EPE bounds: about twice what farneback measured on coffee.png at
 * 300x200 (in the comments: interior, all pixels; each run prints its own). */
static const struct {
    const char *name;
    int kind;
    double p, q;        /* MOVE: dx, dy; ROTATE: degrees; ZOOM: factor */
    double max_epe;     /* over the interior */
    double max_epe_all; /* over every pixel, border included */
} CASES[] = {
    {"move 2,0", MOVE, 2, 0, 0.03, 0.05},             /* 0.013, 0.014 */
    {"move 0,-3", MOVE, 0, -3, 0.05, 0.06},           /* 0.020, 0.024 */
    {"move 5,4", MOVE, 5, 4, 0.05, 0.08},             /* 0.021, 0.037 */
    {"move 1.5,-0.75", MOVE, 1.5, -0.75, 0.2, 0.2},   /* 0.102, 0.101 */
    {"move 0.3,0.2", MOVE, 0.3, 0.2, 0.17, 0.17},     /* 0.085, 0.084 */
    {"move 12,-7", MOVE, 12, -7, 0.05, 0.1},          /* 0.021, 0.048 */
    {"rotate 0.5 deg", ROTATE, 0.5, 0, 0.18, 0.18},   /* 0.091, 0.090 */
    {"rotate 2 deg", ROTATE, 2, 0, 0.4, 0.4},         /* 0.208, 0.205 */
    {"zoom 1.02", ZOOM, 1.02, 0, 0.2, 0.22},          /* 0.098, 0.109 */
};

typedef struct frame {
    int h, w;
    float *px; /* h x w, 0..255 */
} frame;

/* The photo's luma as the library writes it to PGM, halved by 2x2 means. */
static int load_luma(const char *dir, frame *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/coffee.png", dir);
    dd_image *im = load_image_file(path);
    if (!im) return -1;
    unsigned char *pgm = NULL;
    size_t size = 0;
    dd_status st = dd_image_save_memory(im, DD_FORMAT_PGM, 0, NULL, &pgm, &size);
    dd_image_free(im);
    CHECK(st == DD_OK, "PGM: %s", dd_last_error());
    if (st) return -1;
    int w = 0, h = 0, maxval = 0, n = 0;
    if (sscanf((const char *)pgm, "P5 %d %d %d%n", &w, &h, &maxval, &n) != 3 || maxval != 255 ||
        (size_t)n + 1 + (size_t)w * h > size) {
        CHECK(0, "%s: not the 8-bit PGM expected", path);
        free(pgm);
        return -1;
    }
    const unsigned char *luma = pgm + n + 1;
    f->h = h / 2, f->w = w / 2;
    f->px = xmalloc((size_t)f->h * f->w * sizeof *f->px);
    for (int y = 0; y < f->h; y++)
        for (int x = 0; x < f->w; x++) {
            const unsigned char *p = luma + (size_t)(2 * y) * w + 2 * x;
            f->px[(size_t)y * f->w + x] = 0.25f * (float)(p[0] + p[1] + p[w] + p[w + 1]);
        }
    free(pgm);
    return 0;
}

/* Where the motion takes point (x, y) of the first frame, and back. */
static void motion(int kind, double p, double q, double cx, double cy, double x, double y, int inverse, double *ox,
                   double *oy) {
    if (kind == MOVE) {
        *ox = inverse ? x - p : x + p, *oy = inverse ? y - q : y + q;
    } else if (kind == ROTATE) {
        const double t = (inverse ? -p : p) * 3.14159265358979323846 / 180, c = cos(t), s = sin(t);
        *ox = cx + c * (x - cx) - s * (y - cy), *oy = cy + s * (x - cx) + c * (y - cy);
    } else {
        const double z = inverse ? 1 / p : p;
        *ox = cx + z * (x - cx), *oy = cy + z * (y - cy);
    }
}

/* a sampled bilinearly at (x, y), clamped to the frame. */
static double bilinear(const frame *a, double x, double y) {
    x = x < 0 ? 0 : x > a->w - 1 ? a->w - 1 : x;
    y = y < 0 ? 0 : y > a->h - 1 ? a->h - 1 : y;
    int x0 = (int)x, y0 = (int)y;
    if (x0 > a->w - 2) x0 = a->w - 2;
    if (y0 > a->h - 2) y0 = a->h - 2;
    const double ax = x - x0, ay = y - y0;
    const float *p = a->px + (size_t)y0 * a->w + x0;
    return (1 - ax) * (1 - ay) * p[0] + ax * (1 - ay) * p[1] + (1 - ax) * ay * p[a->w] + ax * ay * p[a->w + 1];
}

/* b(T(p)) = a(p), rounded to 8 bits as video is; the true flow T(p) - p
 * into gu, gv; the largest |component| is returned. */
static double warp(const frame *a, int kind, double p, double q, float *b, float *gu, float *gv) {
    const double cx = (a->w - 1) / 2.0, cy = (a->h - 1) / 2.0;
    double most = 0;
    for (int y = 0; y < a->h; y++)
        for (int x = 0; x < a->w; x++) {
            double sx, sy, tx, ty;
            motion(kind, p, q, cx, cy, x, y, 1, &sx, &sy);
            b[(size_t)y * a->w + x] = (float)floor(bilinear(a, sx, sy) + 0.5);
            motion(kind, p, q, cx, cy, x, y, 0, &tx, &ty);
            gu[(size_t)y * a->w + x] = (float)(tx - x), gv[(size_t)y * a->w + x] = (float)(ty - y);
            most = fmax(most, fmax(fabs(tx - x), fabs(ty - y)));
        }
    return most;
}

/* Mean endpoint error over pixels at least margin from every edge. */
static double mean_epe(const frame *a, const float *u, const float *v, const float *gu, const float *gv, int margin) {
    double sum = 0;
    long n = 0;
    for (int y = margin; y < a->h - margin; y++)
        for (int x = margin; x < a->w - margin; x++) {
            const size_t i = (size_t)y * a->w + x;
            sum += hypot(u[i] - gu[i], v[i] - gv[i]), n++;
        }
    return n ? sum / n : INFINITY;
}

static int all_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

static void test_motions(const char *name, video_flow_fn fn, const frame *a) {
    const size_t n = (size_t)a->h * a->w;
    float *b = xmalloc(n * sizeof *b), *gu = xmalloc(n * sizeof *gu), *gv = xmalloc(n * sizeof *gv);
    float *u = xmalloc(n * sizeof *u), *v = xmalloc(n * sizeof *v);
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const double most = warp(a, CASES[c].kind, CASES[c].p, CASES[c].q, b, gu, gv);
        const int margin = (int)ceil(most) + 4;
        const dd_status st = fn(a->px, b, a->h, a->w, 2, u, v);
        CHECK(st == DD_OK, "%s %s: %s", name, CASES[c].name, dd_last_error());
        if (st) continue;
        CHECK(all_finite(u, n) && all_finite(v, n), "%s %s: a flow that is not finite", name, CASES[c].name);
        const double epe = mean_epe(a, u, v, gu, gv, margin), all = mean_epe(a, u, v, gu, gv, 0);
        fprintf(stderr, "%s %-15s mean EPE %.4f (border of %d px out), %.4f over all pixels\n", name,
                CASES[c].name, epe, margin, all);
        char what[128];
        snprintf(what, sizeof what, "%s %s: interior mean EPE", name, CASES[c].name);
        check_close(what, epe, 0, CASES[c].max_epe);
        snprintf(what, sizeof what, "%s %s: mean EPE over all pixels", name, CASES[c].name);
        check_close(what, all, 0, CASES[c].max_epe_all);
    }
    free(b), free(gu), free(gv), free(u), free(v);
}

/* Identical frames: no motion anywhere, the border included. */
static void test_zero(const char *name, video_flow_fn fn, const frame *a) {
    const size_t n = (size_t)a->h * a->w;
    float *u = xmalloc(n * sizeof *u), *v = xmalloc(n * sizeof *v);
    CHECK(fn(a->px, a->px, a->h, a->w, 2, u, v) == DD_OK, "%s zero: %s", name, dd_last_error());
    double most = 0;
    for (size_t i = 0; i < n; i++) most = fmax(most, hypot(u[i], v[i]));
    fprintf(stderr, "%s zero motion: largest |flow| %.3g\n", name, most);
    CHECK(most < 0.01, "%s zero motion: |flow| up to %g", name, most);
    free(u), free(v);
}

/* The same bits for one thread as for two and three (bands that split
 * the rows unevenly). */
static void test_threads(const char *name, video_flow_fn fn, const frame *a) {
    const size_t n = (size_t)a->h * a->w;
    float *b = xmalloc(n * sizeof *b), *gu = xmalloc(n * sizeof *gu), *gv = xmalloc(n * sizeof *gv);
    float *u1 = xmalloc(n * sizeof *u1), *v1 = xmalloc(n * sizeof *v1);
    float *u2 = xmalloc(n * sizeof *u2), *v2 = xmalloc(n * sizeof *v2);
    warp(a, ROTATE, 2, 0, b, gu, gv);
    CHECK(fn(a->px, b, a->h, a->w, 1, u1, v1) == DD_OK, "%s 1 thread: %s", name, dd_last_error());
    for (int t = 2; t <= 3; t++) {
        CHECK(fn(a->px, b, a->h, a->w, t, u2, v2) == DD_OK, "%s %d threads: %s", name, t, dd_last_error());
        CHECK(!memcmp(u1, u2, n * sizeof *u1) && !memcmp(v1, v2, n * sizeof *v1),
              "%s: 1 and %d threads give different flows", name, t);
    }
    free(b), free(gu), free(gv), free(u1), free(v1), free(u2), free(v2);
}

/* The same bits from the plain loops as from the vector paths, on motions
 * that leave the frame (the gathers' clamping) and on odd widths (their
 * plain tails). */
static void test_levels(const char *name, video_flow_fn fn, const frame *a) {
    static const int widths[] = {0, 37};
    const size_t n = (size_t)a->h * a->w;
    float *b = xmalloc(n * sizeof *b), *gu = xmalloc(n * sizeof *gu), *gv = xmalloc(n * sizeof *gv);
    float *u1 = xmalloc(n * sizeof *u1), *v1 = xmalloc(n * sizeof *v1);
    float *u2 = xmalloc(n * sizeof *u2), *v2 = xmalloc(n * sizeof *v2);
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c += 4)
        for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++) {
            warp(a, CASES[c].kind, CASES[c].p, CASES[c].q, b, gu, gv);
            /* a narrower frame: the first w columns of each row, rows a->w apart no more */
            const int w = widths[k] ? widths[k] : a->w, h = widths[k] ? 29 : a->h;
            for (int y = 0; widths[k] && y < h; y++) {
                memmove(gu + (size_t)y * w, a->px + (size_t)y * a->w, (size_t)w * sizeof *gu);
                memmove(gv + (size_t)y * w, b + (size_t)y * a->w, (size_t)w * sizeof *gv);
            }
            const float *fa = widths[k] ? gu : a->px, *fb = widths[k] ? gv : b;
            const size_t m = (size_t)h * w;
            nn_cpu_cap(NN_CPU_PLAIN);
            const dd_status s1 = fn(fa, fb, h, w, 2, u1, v1);
            nn_cpu_cap(NN_CPU_LEVELS);
            const dd_status s2 = fn(fa, fb, h, w, 2, u2, v2);
            CHECK(s1 == DD_OK && s2 == DD_OK, "%s levels: %s", name, dd_last_error());
            CHECK(!memcmp(u1, u2, m * sizeof *u1) && !memcmp(v1, v2, m * sizeof *v1),
                  "%s %s, %dx%d: the plain loops and %s give different flows", name, CASES[c].name, w, h,
                  nn_cpu_name(nn_cpu()));
        }
    free(b), free(gu), free(gv), free(u1), free(v1), free(u2), free(v2);
}

/* Frames down to one pixel: a finite flow, and zero for identical ones. */
static void test_tiny(const char *name, video_flow_fn fn) {
    static const int sizes[][2] = {{1, 1}, {1, 9}, {7, 1}, {2, 2}, {3, 5}, {17, 16}, {40, 33}};
    float a[40 * 40], b[40 * 40], u[40 * 40], v[40 * 40];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int h = sizes[s][0], w = sizes[s][1];
        const size_t n = (size_t)h * w;
        for (size_t i = 0; i < n; i++) a[i] = (float)((i * 37) % 251), b[i] = (float)((i * 37 + 11) % 251);
        CHECK(fn(a, b, h, w, 2, u, v) == DD_OK, "%s %dx%d: %s", name, w, h, dd_last_error());
        CHECK(all_finite(u, n) && all_finite(v, n), "%s %dx%d: a flow that is not finite", name, w, h);
        CHECK(fn(a, a, h, w, 2, u, v) == DD_OK, "%s %dx%d: %s", name, w, h, dd_last_error());
        double most = 0;
        for (size_t i = 0; i < n; i++) most = fmax(most, hypot(u[i], v[i]));
        CHECK(most < 0.01, "%s %dx%d identical frames: |flow| up to %g", name, w, h, most);
    }
}

/* Frames with no texture, one lone edge at full contrast (G of rank one),
 * a two-pixel checkerboard and unrelated noise: the flow stays finite and
 * within the frame's size. */
static void test_hard_frames(const char *name, video_flow_fn fn) {
    enum { H = 64, W = 96 };
    const size_t n = (size_t)H * W;
    float *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b), *u = xmalloc(n * sizeof *u),
          *v = xmalloc(n * sizeof *v);
    uint64_t seed = 12345;
    for (int kind = 0; kind < 5; kind++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t i = (size_t)y * W + x;
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                const float noise = (float)(seed >> 40) * (255.0f / 16777216.0f);
                switch (kind) {
                case 0: a[i] = 0, b[i] = 0; break;
                case 1: a[i] = 255, b[i] = 128; break;
                case 2: a[i] = x < W / 2 ? 0 : 255, b[i] = x < W / 2 + 3 ? 0 : 255; break;
                case 3: a[i] = (x + y) % 2 ? 255 : 0, b[i] = (x + y) % 2 ? 0 : 255; break;
                default: a[i] = noise, b[i] = 255 - noise; break;
                }
            }
        CHECK(fn(a, b, H, W, 2, u, v) == DD_OK, "%s hard frames %d: %s", name, kind, dd_last_error());
        double most = 0;
        for (size_t i = 0; i < n; i++)
            most = isfinite(u[i]) && isfinite(v[i]) ? fmax(most, hypot(u[i], v[i])) : INFINITY;
        fprintf(stderr, "%s hard frames %d: largest |flow| %.3g\n", name, kind, most);
        CHECK(most <= W, "%s hard frames %d: |flow| up to %g", name, kind, most);
        if (kind == 0) CHECK(most == 0, "%s: black frames move by %g", name, most);
    }
    free(a), free(b), free(u), free(v);
}

/* A NaN sample (not from any frame the CLI reads, but a library caller's
 * floats can hold one) must not send a sample outside the frame: under ASan
 * a read out of bounds fails here. The flow near it may be NaN; the call
 * returns. */
static void test_nan(const char *name, video_flow_fn fn, const frame *f) {
    enum { H = 48, W = 64 };
    float a[H * W], b[H * W], u[H * W], v[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) a[y * W + x] = f->px[(size_t)y * f->w + x], b[y * W + x] = f->px[(size_t)y * f->w + x + 2];
    a[20 * W + 30] = NAN, b[10 * W + 5] = NAN;
    CHECK(fn(a, b, H, W, 2, u, v) == DD_OK, "%s: a NaN sample: %s", name, dd_last_error());
}

static void test_arguments(const char *name, video_flow_fn fn) {
    float a[4] = {0}, b[4] = {0}, u[4], v[4];
    CHECK(fn(NULL, b, 2, 2, 1, u, v) == DD_ERR_INVALID_ARG, "%s: a NULL", name);
    CHECK(fn(a, NULL, 2, 2, 1, u, v) == DD_ERR_INVALID_ARG, "%s: b NULL", name);
    CHECK(fn(a, b, 2, 2, 1, NULL, v) == DD_ERR_INVALID_ARG, "%s: u NULL", name);
    CHECK(fn(a, b, 2, 2, 1, u, NULL) == DD_ERR_INVALID_ARG, "%s: v NULL", name);
    CHECK(fn(a, b, 0, 2, 1, u, v) == DD_ERR_INVALID_ARG, "%s: h 0", name);
    CHECK(fn(a, b, 2, 0, 1, u, v) == DD_ERR_INVALID_ARG, "%s: w 0", name);
    CHECK(fn(a, b, -1, 2, 1, u, v) == DD_ERR_INVALID_ARG, "%s: h -1", name);
    CHECK(fn(a, b, 2, -5, 1, u, v) == DD_ERR_INVALID_ARG, "%s: w -5", name);
    CHECK(dd_last_error()[0] != '\0', "%s: no message for a bad size", name);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_flow SAMPLES_DIR\n");
        return 2;
    }
    frame a;
    if (load_luma(argv[1], &a)) return check_done("test_flow") | 1;
    for (size_t m = 0; m < sizeof METHODS / sizeof METHODS[0]; m++) {
        test_motions(METHODS[m].name, METHODS[m].fn, &a);
        test_zero(METHODS[m].name, METHODS[m].fn, &a);
        test_nan(METHODS[m].name, METHODS[m].fn, &a);
        test_threads(METHODS[m].name, METHODS[m].fn, &a);
        test_levels(METHODS[m].name, METHODS[m].fn, &a);
        test_tiny(METHODS[m].name, METHODS[m].fn);
        test_hard_frames(METHODS[m].name, METHODS[m].fn);
        test_arguments(METHODS[m].name, METHODS[m].fn);
    }
    free(a.px);
    return check_done("test_flow");
}
