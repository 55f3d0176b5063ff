/* Dense optical flow by Farnebäck's polynomial expansion ("Two-frame motion
 * estimation based on polynomial expansion", SCIA 2003), coarse to fine over
 * a pyramid of halved images. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/vector.h"
#include "util/util.h"
#include "video/flow.h"

/* The settings, measured by the mean EPE over nine motions of three
 * photographs at 640x360 (bench/flow_accuracy.py's pairs; 0.073 as set).
 * The polynomial is fitted over 2 POLY_N + 1 pixels under a Gaussian
 * applicability of POLY_SIGMA (0.073 at 0.6, 0.080 at 1.0, 0.087 at 1.2
 * and 0.103 at 1.5 with POLY_N 6; 0.6 is worse on the integer moves,
 * 0.010 against 0.006 for 2,0). The constraints are averaged over a Gaussian
 * window of WIN_SIGMA cut at WIN_R (0.099 at 2, 0.083 at 2.5, 0.066 at 3.5
 * with WIN_R 10: wider is better for these global motions, slower, and
 * blurs the edges of moving things). ITERATIONS per level (0.077 at 2,
 * 0.072 at 4; each costs a quarter of the time). The pyramid halves while
 * the smaller side stays at least MIN_SIDE_PX. */
enum { POLY_N = 4, WIN_R = 8, MIN_SIDE_PX = 16, MAX_LEVELS = 12, ITERATIONS = 3 };
static const double POLY_SIGMA = 0.8, WIN_SIGMA = 3.0;
/* Pulls the solution towards the flow so far where the window holds no
 * structure (a flat sky, the image's edge), in units of A'A (intensities
 * 0..255: a textured pixel's trace of G is in the hundreds). 0.073 at 1e-3,
 * 0.089 at 1e-1. */
static const float PRIOR_WEIGHT = 1e-2f;
/* And a share of G's trace: G is a sum of A'A, so det(G) >= 0, but with
 * one edge seen alone rounding cancels g11 g22 against g12^2 down to about
 * 1e-6 (g11 + g22)^2, which a fixed weight does not outweigh on strong
 * edges. e = PRIOR_WEIGHT + PRIOR_SHARE (g11 + g22) keeps det(G + eI) over
 * 1e-4 (g11 + g22)^2; the flow moves by about 1e-4 of its step. */
static const float PRIOR_SHARE = 1e-4f;

/* The polynomial's five useful coefficients per pixel, f(p) ~ p'Ap + b'p + c:
 * A11, A22, A12, b1, b2. */
enum { NCOEF = 5 };

typedef struct poly_kernel {
    float g[POLY_N + 1], gx[POLY_N + 1], gxx[POLY_N + 1]; /* taps 0..n of g, x g, x^2 g */
    float m2;                /* sum x^2 g */
    float inv_m2, inv_m2sq;  /* b1 = rx / m2, A12 = rxy / (2 m2^2) */
    float inv_var;           /* A11 = (rxx - m2 r1) / (m4 - m2^2) */
} poly_kernel;

typedef struct level {
    int h, w;
    const float *a, *b; /* h x w */
} level;

/* Index i mirrored into [0, n) about the edge samples (reflect-101): the
 * polynomial fits at the edge see a continuation of the picture. */
static int mirror(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

/* The separable Gaussian applicability g and the least-squares fit of the
 * quadratic basis under it. With g symmetric and normalised the normal
 * equations decouple: with r_pq = sum g(x) g(y) x^p y^q f and m_k = sum x^k g,
 * b1 = r10 / m2, A12 = r11 / (2 m2^2), and eliminating c from
 * r00 = c + m2 (A11 + A22) leaves A11 = (r20 - m2 r00) / (m4 - m2^2). */
static void poly_kernel_init(poly_kernel *k) {
    double g[POLY_N + 1], sum = 0;
    for (int i = 0; i <= POLY_N; i++) {
        g[i] = exp(-(double)(i * i) / (2 * POLY_SIGMA * POLY_SIGMA));
        sum += i ? 2 * g[i] : g[i];
    }
    double m2 = 0, m4 = 0;
    for (int i = 0; i <= POLY_N; i++) {
        g[i] /= sum;
        k->g[i] = (float)g[i], k->gx[i] = (float)(i * g[i]), k->gxx[i] = (float)(i * i * g[i]);
        m2 += 2.0 * i * i * g[i], m4 += 2.0 * i * i * i * i * g[i];
    }
    k->m2 = (float)m2;
    k->inv_m2 = (float)(1 / m2), k->inv_m2sq = (float)(1 / (m2 * m2));
    k->inv_var = (float)(1 / (m4 - m2 * m2));
}

/* The row kernels are written once, as plain loops that vectorise along
 * the row, and built twice: for the baseline and for AVX2, taken when
 * nn_cpu() allows (DD_CPU caps it, as it caps the network's kernels). Both
 * give the same bits: each sum runs in the same order in every lane, and
 * ISO C mode contracts nothing into FMAs. The displaced reads of b's
 * coefficients do not vectorise that way: constraints_row has its own AVX2
 * form, which keeps the plain one's every operation in the same order. */
#define ROW_BODY static inline __attribute__((always_inline))

/* The column correlations of row y: c0 = sum g f, c1 = sum y g f,
 * c2 = sum y^2 g f over rows y - POLY_N .. y + POLY_N, mirrored at the
 * edges. */
ROW_BODY void poly_column(const poly_kernel *k, const float *img, int h, int w, int y, float *restrict c0,
                          float *restrict c1, float *restrict c2) {
    float g[POLY_N + 1], gx[POLY_N + 1], gxx[POLY_N + 1];
    memcpy(g, k->g, sizeof g), memcpy(gx, k->gx, sizeof gx), memcpy(gxx, k->gxx, sizeof gxx);
    const float *rows[2 * POLY_N + 1];
    for (int j = -POLY_N; j <= POLY_N; j++) rows[POLY_N + j] = img + (size_t)mirror(y + j, h) * w;
    const float *mid = rows[POLY_N];
    for (int x = 0; x < w; x++) {
        float s0 = g[0] * mid[x], s1 = 0, s2 = 0;
        for (int j = 1; j <= POLY_N; j++) {
            const float dn = rows[POLY_N + j][x], up = rows[POLY_N - j][x], s = dn + up, d = dn - up;
            s0 += g[j] * s, s1 += gx[j] * d, s2 += gxx[j] * s;
        }
        c0[x] = s0, c1[x] = s1, c2[x] = s2;
    }
}

/* One row of the expansion from the column correlations (c0, c1, c2,
 * padded by POLY_N on each side): the six row correlations, then the
 * coefficients. The kernel is copied into locals so that nothing it writes
 * may alias it: the loop vectorises along the row. */
ROW_BODY void poly_row(const poly_kernel *k, const float *restrict c0, const float *restrict c1,
                       const float *restrict c2, int w, float *restrict out) {
    float g[POLY_N + 1], gx[POLY_N + 1], gxx[POLY_N + 1];
    memcpy(g, k->g, sizeof g), memcpy(gx, k->gx, sizeof gx), memcpy(gxx, k->gxx, sizeof gxx);
    const float m2 = k->m2, inv_var = k->inv_var, half_inv_m2sq = 0.5f * k->inv_m2sq, inv_m2 = k->inv_m2;
    for (int x = 0; x < w; x++) {
        const float *p0 = c0 + x, *p1 = c1 + x, *p2 = c2 + x;
        float r00 = g[0] * p0[0], r10 = 0, r20 = 0, r01 = g[0] * p1[0], r11 = 0, r02 = g[0] * p2[0];
        for (int j = 1; j <= POLY_N; j++) {
            const float s0 = p0[j] + p0[-j], d0 = p0[j] - p0[-j];
            r00 += g[j] * s0, r10 += gx[j] * d0, r20 += gxx[j] * s0;
            r01 += g[j] * (p1[j] + p1[-j]), r11 += gx[j] * (p1[j] - p1[-j]);
            r02 += g[j] * (p2[j] + p2[-j]);
        }
        float *o = out + (size_t)x * NCOEF;
        o[0] = (r20 - m2 * r00) * inv_var;
        o[1] = (r02 - m2 * r00) * inv_var;
        o[2] = r11 * half_inv_m2sq;
        o[3] = r10 * inv_m2;
        o[4] = r01 * inv_m2;
    }
}

/* Row y of the expansion into out (w x NCOEF): the column correlations
 * into c0, c1, c2 (each w + 2 POLY_N, mirrored into their margins), then
 * the row correlations. */
ROW_BODY void poly_expand_row(const poly_kernel *k, const float *img, int h, int w, int y, float *v0, float *out) {
    const size_t pw = (size_t)w + 2 * POLY_N;
    float *c0 = v0 + POLY_N, *c1 = c0 + pw, *c2 = c1 + pw;
    poly_column(k, img, h, w, y, c0, c1, c2);
    for (int j = 1; j <= POLY_N; j++) {
        const int l = mirror(-j, w), r = mirror(w - 1 + j, w);
        c0[-j] = c0[l], c1[-j] = c1[l], c2[-j] = c2[l];
        c0[w - 1 + j] = c0[r], c1[w - 1 + j] = c1[r], c2[w - 1 + j] = c2[r];
    }
    poly_row(k, c0, c1, c2, w, out);
}
static void poly_expand_row_plain(const poly_kernel *k, const float *img, int h, int w, int y, float *v0,
                                  float *out) {
    poly_expand_row(k, img, h, w, y, v0, out);
}
#if VECTOR_PATHS
AVX2 static void poly_expand_row_avx2(const poly_kernel *k, const float *img, int h, int w, int y, float *v0,
                                      float *out) {
    poly_expand_row(k, img, h, w, y, v0, out);
}
#endif

/* img (h x w) -> coef (h x w x NCOEF, interleaved: the displaced reads of
 * b's take all five from one place): the local polynomial at each pixel,
 * separably: three column correlations (g, y g, y^2 g), then six row
 * correlations of those. rows: per thread, 3 (w + 2 POLY_N) floats. */
typedef struct flow_job {
    const poly_kernel *k;
    const float *img, *src, *ca, *cb, *win, *u0, *v0, *cu, *cv;
    float *coef, *rows, *dst, *tmp, *u, *v, *scratch;
    size_t per_thread;
    int h, w, ch, cw, avx2;
} flow_job;

static void poly_rows(void *ctx, size_t from, size_t to, int worker) {
    const flow_job *j = ctx;
    const int h = j->h, w = j->w;
    float *v0 = j->rows + (size_t)worker * j->per_thread;
    for (int y = (int)from; y < (int)to; y++) {
        float *out = j->coef + (size_t)y * w * NCOEF;
#if VECTOR_PATHS
        if (j->avx2) {
            poly_expand_row_avx2(j->k, j->img, h, w, y, v0, out);
            continue;
        }
#endif
        poly_expand_row_plain(j->k, j->img, h, w, y, v0, out);
    }
}

static void poly_expand(const poly_kernel *k, const float *img, int h, int w, float *coef, float *rows,
                        size_t rows_per_thread, int avx2, int threads) {
    flow_job j = {.k = k, .img = img, .coef = coef, .rows = rows, .per_thread = rows_per_thread, .h = h, .w = w,
                  .avx2 = avx2};
    team_for(threads, (size_t)h, poly_rows, &j);
}

/* src (h x w) -> dst ((h + 1) / 2 x (w + 1) / 2): blurred by the binomial
 * [1 4 6 4 1] / 16 (sigma 1) and every other sample kept, so dst(i, j) sits
 * on src(2i, 2j). tmp: dst's rows at src's width. */
static void half_rows(void *ctx, size_t from, size_t to, int worker) {
    const flow_job *j = ctx;
    const int h = j->h, w = j->w, dw = (w + 1) / 2;
    const float *src = j->src;
    float *dst = j->dst, *tmp = j->tmp;
    (void)worker;
    for (int i = (int)from; i < (int)to; i++) {
        const float *r0 = src + (size_t)mirror(2 * i - 2, h) * w, *r1 = src + (size_t)mirror(2 * i - 1, h) * w,
                    *r2 = src + (size_t)(2 * i) * w, *r3 = src + (size_t)mirror(2 * i + 1, h) * w,
                    *r4 = src + (size_t)mirror(2 * i + 2, h) * w;
        float *t = tmp + (size_t)i * w;
        for (int x = 0; x < w; x++) t[x] = (r0[x] + r4[x] + 4 * (r1[x] + r3[x]) + 6 * r2[x]) * (1.0f / 16);
        float *d = dst + (size_t)i * dw;
        for (int j = 0; j < dw; j++) {
            const int x = 2 * j;
            d[j] = (t[mirror(x - 2, w)] + t[mirror(x + 2, w)] + 4 * (t[mirror(x - 1, w)] + t[mirror(x + 1, w)]) +
                    6 * t[x]) * (1.0f / 16);
        }
    }
}

static void half_down(const float *src, int h, int w, float *dst, float *tmp, int threads) {
    flow_job j = {.src = src, .dst = dst, .tmp = tmp, .h = h, .w = w};
    team_for(threads, (size_t)(h + 1) / 2, half_rows, &j);
}

/* How much a fit at position p of a side of n pixels is trusted: the fits
 * within POLY_N of the edge saw a mirrored picture. */
static float edge_trust(float p, int n) {
    const float q = (float)(n - 1) - p, t = ((p < q ? p : q) + 1) * (1.0f / (POLY_N + 1));
    return t < 1 ? t : 1.0f;
}

/* The constraints at each pixel of row y for the flow so far (u, v): A, the
 * mean of a's A and of b's A at the displaced point (bilinear), and
 * db = A d - (b2 - b1) / 2, where A d = db holds for the whole flow d. Out:
 * G = A'A (g11 g22 g12) and h = A'db (h1 h2), weighted by trust, into out's
 * NCOEF rows of w; weight 0 where the displaced point leaves b. From pixel from
 * on. Branch-free (the point clamped, the weight zeroed), as
 * constraints_row_avx2 does the same eight pixels at a time. */
ROW_BODY void constraints_row(const float *restrict ca, const float *restrict cb, int h, int w, int y,
                              const float *restrict u, const float *restrict v, float *restrict out, int from) {
    const size_t row = (size_t)y * w;
    const int sx = w > 1 ? NCOEF : 0, sy = h > 1 ? w * NCOEF : 0;
    const int xmax = w > 1 ? w - 2 : 0, ymax = h > 1 ? h - 2 : 0;
    const float wmax = (float)(w - 1), hmax = (float)(h - 1), ty = edge_trust((float)y, h);
    for (int x = from; x < w; x++) {
        const size_t i = row + x;
        const float dx = u[i], dy = v[i], fx = (float)x + dx, fy = (float)y + dy;
        const int inside = (fx >= 0) & (fy >= 0) & (fx <= wmax) & (fy <= hmax);
        float cx = fx > 0 ? fx : 0, cy = fy > 0 ? fy : 0; /* NaN (from NaN frames) to 0, in bounds */
        cx = cx > wmax ? wmax : cx, cy = cy > hmax ? hmax : cy;
        int x0 = (int)cx, y0 = (int)cy;
        x0 = x0 > xmax ? xmax : x0, y0 = y0 > ymax ? ymax : y0;
        const float ax = cx - (float)x0, ay = cy - (float)y0;
        const float w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
        const float *p = cb + ((size_t)y0 * w + x0) * NCOEF, *q = ca + i * NCOEF;
        float c[NCOEF];
        for (int k = 0; k < NCOEF; k++)
            c[k] = w00 * p[k] + w01 * p[sx + k] + w10 * p[sy + k] + w11 * p[sy + sx + k];
        const float a11 = 0.5f * (q[0] + c[0]), a22 = 0.5f * (q[1] + c[1]), a12 = 0.5f * (q[2] + c[2]);
        const float d1 = a11 * dx + a12 * dy - 0.5f * (c[3] - q[3]);
        const float d2 = a12 * dx + a22 * dy - 0.5f * (c[4] - q[4]);
        const float trust = ty * edge_trust((float)x, w) * edge_trust(cx, w) * edge_trust(cy, h);
        const float wt = inside ? trust : 0.0f;
        out[x] = wt * (a11 * a11 + a12 * a12);
        out[w + x] = wt * (a12 * a12 + a22 * a22);
        out[2 * w + x] = wt * (a12 * (a11 + a22));
        out[3 * w + x] = wt * (a11 * d1 + a12 * d2);
        out[4 * w + x] = wt * (a12 * d1 + a22 * d2);
    }
}

static void constraints_row_plain(const float *ca, const float *cb, int h, int w, int y, const float *u,
                                  const float *v, float *out) {
    constraints_row(ca, cb, h, w, y, u, v, out, 0);
}

#if VECTOR_PATHS
/* edge_trust on eight positions, operation for operation. */
AVX2 static inline __m256 edge_trust8(__m256 p, int n) {
    const __m256 q = _mm256_sub_ps(_mm256_set1_ps((float)(n - 1)), p);
    const __m256 m = _mm256_blendv_ps(q, p, _mm256_cmp_ps(p, q, _CMP_LT_OQ));
    const __m256 t = _mm256_mul_ps(_mm256_add_ps(m, _mm256_set1_ps(1)), _mm256_set1_ps(1.0f / (POLY_N + 1)));
    return _mm256_blendv_ps(_mm256_set1_ps(1), t, _mm256_cmp_ps(t, _mm256_set1_ps(1), _CMP_LT_OQ));
}

/* constraints_row eight pixels at a time, the displaced reads gathered;
 * the plain loop takes the last w % 8 pixels, and whole rows where an
 * offset would not fit an int. */
AVX2 static void constraints_row_avx2(const float *ca, const float *cb, int h, int w, int y, const float *u,
                                      const float *v, float *out) {
    const size_t plane = (size_t)h * w, row = (size_t)y * w;
    int x = 0;
    if (w > 1 && h > 1 && plane <= (size_t)INT_MAX / NCOEF - 1) {
        const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1), half = _mm256_set1_ps(0.5f);
        const __m256 wmax = _mm256_set1_ps((float)(w - 1)), hmax = _mm256_set1_ps((float)(h - 1));
        const __m256 ty = _mm256_set1_ps(edge_trust((float)y, h)), yf = _mm256_set1_ps((float)y);
        const __m256i xmax = _mm256_set1_epi32(w - 2), ymax = _mm256_set1_epi32(h - 2), wi = _mm256_set1_epi32(w);
        const __m256i ncoef = _mm256_set1_epi32(NCOEF), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i own = _mm256_mullo_epi32(lane, ncoef);
        const int sx = NCOEF, sy = w * NCOEF;
        for (; x + 8 <= w; x += 8) {
            const size_t i = row + x;
            const __m256 dx = _mm256_loadu_ps(u + i), dy = _mm256_loadu_ps(v + i);
            const __m256 xf = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(x), lane));
            const __m256 fx = _mm256_add_ps(xf, dx), fy = _mm256_add_ps(yf, dy);
            const __m256 inside = _mm256_and_ps(
                _mm256_and_ps(_mm256_cmp_ps(fx, zero, _CMP_GE_OQ), _mm256_cmp_ps(fy, zero, _CMP_GE_OQ)),
                _mm256_and_ps(_mm256_cmp_ps(fx, wmax, _CMP_LE_OQ), _mm256_cmp_ps(fy, hmax, _CMP_LE_OQ)));
            __m256 cx = _mm256_blendv_ps(zero, fx, _mm256_cmp_ps(fx, zero, _CMP_GT_OQ)); /* NaN to 0 */
            __m256 cy = _mm256_blendv_ps(zero, fy, _mm256_cmp_ps(fy, zero, _CMP_GT_OQ));
            cx = _mm256_blendv_ps(cx, wmax, _mm256_cmp_ps(cx, wmax, _CMP_GT_OQ));
            cy = _mm256_blendv_ps(cy, hmax, _mm256_cmp_ps(cy, hmax, _CMP_GT_OQ));
            const __m256i x0 = _mm256_min_epi32(_mm256_cvttps_epi32(cx), xmax);
            const __m256i y0 = _mm256_min_epi32(_mm256_cvttps_epi32(cy), ymax);
            const __m256 ax = _mm256_sub_ps(cx, _mm256_cvtepi32_ps(x0)), ay = _mm256_sub_ps(cy, _mm256_cvtepi32_ps(y0));
            const __m256 bx = _mm256_sub_ps(one, ax), by = _mm256_sub_ps(one, ay);
            const __m256 w00 = _mm256_mul_ps(bx, by), w01 = _mm256_mul_ps(ax, by), w10 = _mm256_mul_ps(bx, ay),
                         w11 = _mm256_mul_ps(ax, ay);
            const __m256i at = _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(y0, wi), x0), ncoef);
            const float *q = ca + i * NCOEF;
            __m256 c[NCOEF], a[NCOEF];
            for (int k = 0; k < NCOEF; k++) {
                const float *p = cb + k;
                __m256 s = _mm256_mul_ps(w00, _mm256_i32gather_ps(p, at, 4));
                s = _mm256_add_ps(s, _mm256_mul_ps(w01, _mm256_i32gather_ps(p + sx, at, 4)));
                s = _mm256_add_ps(s, _mm256_mul_ps(w10, _mm256_i32gather_ps(p + sy, at, 4)));
                c[k] = _mm256_add_ps(s, _mm256_mul_ps(w11, _mm256_i32gather_ps(p + sy + sx, at, 4)));
                a[k] = _mm256_i32gather_ps(q + k, own, 4);
            }
            const __m256 a11 = _mm256_mul_ps(half, _mm256_add_ps(a[0], c[0]));
            const __m256 a22 = _mm256_mul_ps(half, _mm256_add_ps(a[1], c[1]));
            const __m256 a12 = _mm256_mul_ps(half, _mm256_add_ps(a[2], c[2]));
            const __m256 d1 = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(a11, dx), _mm256_mul_ps(a12, dy)),
                                            _mm256_mul_ps(half, _mm256_sub_ps(c[3], a[3])));
            const __m256 d2 = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(a12, dx), _mm256_mul_ps(a22, dy)),
                                            _mm256_mul_ps(half, _mm256_sub_ps(c[4], a[4])));
            const __m256 trust = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_mul_ps(ty, edge_trust8(xf, w)), edge_trust8(cx, w)), edge_trust8(cy, h));
            const __m256 wt = _mm256_and_ps(inside, trust);
            float *o = out + x;
            _mm256_storeu_ps(o, _mm256_mul_ps(wt, _mm256_add_ps(_mm256_mul_ps(a11, a11), _mm256_mul_ps(a12, a12))));
            _mm256_storeu_ps(o + w,
                             _mm256_mul_ps(wt, _mm256_add_ps(_mm256_mul_ps(a12, a12), _mm256_mul_ps(a22, a22))));
            _mm256_storeu_ps(o + 2 * w, _mm256_mul_ps(wt, _mm256_mul_ps(a12, _mm256_add_ps(a11, a22))));
            _mm256_storeu_ps(o + 3 * w,
                             _mm256_mul_ps(wt, _mm256_add_ps(_mm256_mul_ps(a11, d1), _mm256_mul_ps(a12, d2))));
            _mm256_storeu_ps(o + 4 * w,
                             _mm256_mul_ps(wt, _mm256_add_ps(_mm256_mul_ps(a12, d1), _mm256_mul_ps(a22, d2))));
        }
    }
    constraints_row(ca, cb, h, w, y, u, v, out, x);
}
#endif

/* One row of the solve from the vertically averaged constraints (NCOEF rows
 * pw apart, padded by WIN_R): the horizontal average, then the 2x2 system,
 * pulled towards the flow so far (u0, v0). */
ROW_BODY void solve_row(const float *restrict rows, size_t pw, int w, const float *win_in, const float *restrict u0,
                        const float *restrict v0, float *restrict u, float *restrict v) {
    float win[WIN_R + 1];
    memcpy(win, win_in, sizeof win);
    const float *p0 = rows, *p1 = p0 + pw, *p2 = p1 + pw, *p3 = p2 + pw, *p4 = p3 + pw;
    for (int x = 0; x < w; x++) {
        float g11 = win[0] * p0[x], g22 = win[0] * p1[x], g12 = win[0] * p2[x], h1 = win[0] * p3[x],
              h2 = win[0] * p4[x];
        for (int j = 1; j <= WIN_R; j++) {
            g11 += win[j] * (p0[x + j] + p0[x - j]), g22 += win[j] * (p1[x + j] + p1[x - j]);
            g12 += win[j] * (p2[x + j] + p2[x - j]), h1 += win[j] * (p3[x + j] + p3[x - j]);
            h2 += win[j] * (p4[x + j] + p4[x - j]);
        }
        const float e = PRIOR_WEIGHT + PRIOR_SHARE * (g11 + g22);
        g11 += e, g22 += e, h1 += e * u0[x], h2 += e * v0[x];
        const float inv = 1.0f / (g11 * g22 - g12 * g12);
        u[x] = (g22 * h1 - g12 * h2) * inv;
        v[x] = (g11 * h2 - g12 * h1) * inv;
    }
}

/* The window's column average of 2 WIN_R + 1 rows (the middle one is the
 * output's row) into c. */
ROW_BODY void window_column(const float *const *rows, int w, const float *win_in, float *restrict c) {
    float win[WIN_R + 1];
    memcpy(win, win_in, sizeof win);
    const float *mid = rows[WIN_R];
    for (int x = 0; x < w; x++) {
        float s = win[0] * mid[x];
        for (int j = 1; j <= WIN_R; j++) s += win[j] * (rows[WIN_R - j][x] + rows[WIN_R + j][x]);
        c[x] = s;
    }
}

/* The ring of constraint rows a thread keeps: row r in slot r % RING. */
enum { RING = 2 * WIN_R + 1 };

/* Row y of the flow from the ring's rows y - WIN_R .. y + WIN_R (zero
 * outside the image: no constraints there): averaged down the window's
 * column into buf (NCOEF rows of w + 2 WIN_R, zero margins), then along
 * the row and solved. */
ROW_BODY void solve_window_row(const float *ring, const float *zero, int h, int w, int y, const float *win,
                               float *buf, const float *u0, const float *v0, float *u, float *v) {
    const size_t pw = (size_t)w + 2 * WIN_R, slot = (size_t)NCOEF * w;
    for (int k = 0; k < NCOEF; k++) {
        const float *rows[RING];
        for (int j = -WIN_R; j <= WIN_R; j++)
            rows[WIN_R + j] = y + j < 0 || y + j >= h ? zero : ring + (size_t)((y + j) % RING) * slot + (size_t)k * w;
        float *c = buf + k * pw + WIN_R;
        window_column(rows, w, win, c);
        for (int j = 1; j <= WIN_R; j++) c[-j] = 0, c[w - 1 + j] = 0;
    }
    const size_t r = (size_t)y * w;
    solve_row(buf + WIN_R, pw, w, win, u0 + r, v0 + r, u + r, v + r);
}
static void solve_window_row_plain(const float *ring, const float *zero, int h, int w, int y, const float *win,
                                   float *buf, const float *u0, const float *v0, float *u, float *v) {
    solve_window_row(ring, zero, h, w, y, win, buf, u0, v0, u, v);
}
#if VECTOR_PATHS
AVX2 static void solve_window_row_avx2(const float *ring, const float *zero, int h, int w, int y, const float *win,
                                       float *buf, const float *u0, const float *v0, float *u, float *v) {
    solve_window_row(ring, zero, h, w, y, win, buf, u0, v0, u, v);
}
#endif

/* Floats of a thread's scratch for refine at width w: the ring, a zero row
 * and the solve's rows. */
static size_t refine_floats(int w) {
    return ((size_t)RING + 1) * NCOEF * (size_t)w + (size_t)NCOEF * ((size_t)w + 2 * WIN_R);
}

/* One iteration over a level: the flow (u0, v0) refined into (u, v) from
 * the constraints averaged over the Gaussian window, d = (G + eI)^-1
 * (h + e d0), e pulling towards the flow so far where G is weak. Each
 * thread takes a band of rows and computes the constraints of its band and
 * of WIN_R rows either side into its own ring (the rows next to a band are
 * computed twice, the same whoever computes them), so that no plane of
 * constraints is stored. scratch: per thread, scratch_per_thread floats. */
static void refine_band(void *ctx, int t, int n) {
    const flow_job *j = ctx;
    const float *ca = j->ca, *cb = j->cb, *win = j->win, *u0 = j->u0, *v0 = j->v0;
    float *u = j->u, *v = j->v, *scratch = j->scratch;
    const size_t scratch_per_thread = j->per_thread;
    const int h = j->h, w = j->w, avx2 = j->avx2;
    (void)avx2; /* read only by the vector paths */
    const int from = (int)((int64_t)h * t / n), to = (int)((int64_t)h * (t + 1) / n);
    const size_t slot = (size_t)NCOEF * w;
    float *ring = scratch + (size_t)t * scratch_per_thread, *zero = ring + RING * slot, *buf = zero + slot;
    memset(zero, 0, slot * sizeof *zero);
    for (int y = from; y < to; y++) {
        const int first = y == from ? (y - WIN_R > 0 ? y - WIN_R : 0) : y + WIN_R;
        for (int r = first; r <= y + WIN_R && r < h; r++) {
            float *out = ring + (size_t)(r % RING) * slot;
#if VECTOR_PATHS
            if (avx2) {
                constraints_row_avx2(ca, cb, h, w, r, u0, v0, out);
                continue;
            }
#endif
            constraints_row_plain(ca, cb, h, w, r, u0, v0, out);
        }
#if VECTOR_PATHS
        if (avx2) {
            solve_window_row_avx2(ring, zero, h, w, y, win, buf, u0, v0, u, v);
            continue;
        }
#endif
        solve_window_row_plain(ring, zero, h, w, y, win, buf, u0, v0, u, v);
    }
}

static void refine(const float *ca, const float *cb, int h, int w, const float *win, const float *u0,
                   const float *v0, float *u, float *v, float *scratch, size_t scratch_per_thread, int avx2,
                   int threads) {
    flow_job j = {.ca = ca, .cb = cb, .win = win, .u0 = u0, .v0 = v0, .u = u, .v = v, .scratch = scratch,
                  .per_thread = scratch_per_thread, .h = h, .w = w, .avx2 = avx2};
    team_run(threads, refine_band, &j);
}

/* Coarse flow (ch x cw) -> fine (h x w), doubled: fine pixel (x, y) sits
 * at coarse (x / 2, y / 2). */
static void up_rows(void *ctx, size_t from, size_t to, int worker) {
    const flow_job *j = ctx;
    const float *cu = j->cu, *cv = j->cv;
    float *u = j->u, *v = j->v;
    const int ch = j->ch, cw = j->cw, w = j->w;
    (void)worker;
    for (int y = (int)from; y < (int)to; y++) {
        const int y0 = y / 2, y1 = y0 + 1 < ch ? y0 + 1 : y0;
        const float ay = y % 2 ? 0.5f : 0.0f;
        for (int x = 0; x < w; x++) {
            const int x0 = x / 2, x1 = x0 + 1 < cw ? x0 + 1 : x0;
            const float ax = x % 2 ? 0.5f : 0.0f;
            const size_t i00 = (size_t)y0 * cw + x0, i01 = (size_t)y0 * cw + x1, i10 = (size_t)y1 * cw + x0,
                         i11 = (size_t)y1 * cw + x1;
            const float w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
            const size_t o = (size_t)y * w + x;
            u[o] = 2 * (w00 * cu[i00] + w01 * cu[i01] + w10 * cu[i10] + w11 * cu[i11]);
            v[o] = 2 * (w00 * cv[i00] + w01 * cv[i01] + w10 * cv[i10] + w11 * cv[i11]);
        }
    }
}

static void flow_up(const float *cu, const float *cv, int ch, int cw, float *u, float *v, int h, int w,
                    int threads) {
    flow_job j = {.cu = cu, .cv = cv, .u = u, .v = v, .ch = ch, .cw = cw, .h = h, .w = w};
    team_for(threads, (size_t)h, up_rows, &j);
}

/* Floats for n planes of h x w, checked; 0 on overflow. */
static size_t planes_floats(int h, int w, size_t n) {
    size_t s;
    if (!util_mul((size_t)h, (size_t)w, &s) || !util_mul(s, n, &s)) return 0;
    return s;
}

dd_status video_flow_farneback(const float *a, const float *b, int h, int w, int threads, float *u, float *v) {
    if (!a || !b || !u || !v) return util_fail(DD_ERR_INVALID_ARG, "flow: NULL plane");
    if (h < 1 || w < 1) return util_fail(DD_ERR_INVALID_ARG, "flow: size %dx%d", w, h);
    if (threads < 1) threads = 1;

    level lv[MAX_LEVELS];
    int n_levels = 1;
    lv[0] = (level){h, w, a, b};
    while (n_levels < MAX_LEVELS) {
        const int nh = (lv[n_levels - 1].h + 1) / 2, nw = (lv[n_levels - 1].w + 1) / 2;
        if ((nh < nw ? nh : nw) < MIN_SIDE_PX) break;
        lv[n_levels++] = (level){nh, nw, NULL, NULL};
    }

    /* Sizes first, in the order they are carved, each rounded up as the
     * arena rounds it: the expansions of a and b at full size (NCOEF
     * floats a pixel each), a second flow at full size (u and v are the
     * other: the iterations and levels go back and forth between them),
     * the down-sampling's rows, each thread's rows (64-byte apart), then
     * the coarser levels of both pyramids. */
    const size_t f = sizeof(float), p_rows = 3 * ((size_t)w + 2 * POLY_N), r_rows = refine_floats(w);
    const size_t per_thread = util_align64(f * (r_rows > p_rows ? r_rows : p_rows)) / f;
    size_t bytes[2 + 2 + 2 + 2 * MAX_LEVELS];
    int parts = 0, ok = 1;
    for (int k = 0; k < 2; k++) ok &= util_mul(planes_floats(h, w, NCOEF), f, &bytes[parts++]);
    for (int k = 0; k < 2; k++) ok &= util_mul(planes_floats(h, w, 1), f, &bytes[parts++]);
    ok &= util_mul(planes_floats(n_levels > 1 ? lv[1].h : 1, w, 1), f, &bytes[parts++]);
    ok &= util_mul(per_thread * f, (size_t)threads, &bytes[parts++]);
    for (int l = 1; l < n_levels; l++)
        for (int k = 0; k < 2; k++) ok &= util_mul(planes_floats(lv[l].h, lv[l].w, 1), f, &bytes[parts++]);
    size_t total = 0;
    for (int k = 0; k < parts && ok; k++)
        ok = bytes[k] && bytes[k] < SIZE_MAX - 64 && util_add(total, util_align64(bytes[k]), &total);
    if (!ok) return util_fail(DD_ERR_NOMEM, "flow: %dx%d is too large", w, h);
    util_arena arena;
    dd_status st = util_arena_init(&arena, total);
    if (st) return st;
    parts = 0;
    float *ca = util_arena_take(&arena, bytes[parts++]), *cb = util_arena_take(&arena, bytes[parts++]);
    float *su = util_arena_take(&arena, bytes[parts++]), *sv = util_arena_take(&arena, bytes[parts++]);
    float *down_tmp = util_arena_take(&arena, bytes[parts++]);
    float *scratch = util_arena_take(&arena, bytes[parts++]);
    for (int l = 1; l < n_levels; l++) {
        float *pa = util_arena_take(&arena, bytes[parts++]), *pb = util_arena_take(&arena, bytes[parts++]);
        half_down(lv[l - 1].a, lv[l - 1].h, lv[l - 1].w, pa, down_tmp, threads);
        half_down(lv[l - 1].b, lv[l - 1].h, lv[l - 1].w, pb, down_tmp, threads);
        lv[l].a = pa, lv[l].b = pb;
    }

    poly_kernel k;
    poly_kernel_init(&k);
    const int avx2 = VECTOR_PATHS && nn_cpu() >= NN_CPU_AVX2;
    float win[WIN_R + 1];
    double wsum = 0;
    for (int j = 0; j <= WIN_R; j++) wsum += (j ? 2 : 1) * exp(-(double)(j * j) / (2 * WIN_SIGMA * WIN_SIGMA));
    for (int j = 0; j <= WIN_R; j++) win[j] = (float)(exp(-(double)(j * j) / (2 * WIN_SIGMA * WIN_SIGMA)) / wsum);

    /* flow[cur] holds the latest flow, of level l + 1 until it is brought up. */
    float *fu[2] = {su, u}, *fv[2] = {sv, v};
    int cur = 0;
    for (int l = n_levels - 1; l >= 0; l--) {
        const int lh = lv[l].h, lw = lv[l].w;
        if (l == n_levels - 1) {
            memset(fu[cur], 0, (size_t)lh * lw * sizeof(float));
            memset(fv[cur], 0, (size_t)lh * lw * sizeof(float));
        } else {
            flow_up(fu[cur], fv[cur], lv[l + 1].h, lv[l + 1].w, fu[!cur], fv[!cur], lh, lw, threads);
            cur = !cur;
        }
        poly_expand(&k, lv[l].a, lh, lw, ca, scratch, per_thread, avx2, threads);
        poly_expand(&k, lv[l].b, lh, lw, cb, scratch, per_thread, avx2, threads);
        for (int it = 0; it < ITERATIONS; it++, cur = !cur)
            refine(ca, cb, lh, lw, win, fu[cur], fv[cur], fu[!cur], fv[!cur], scratch, per_thread, avx2, threads);
    }
    if (fu[cur] != u) {
        memcpy(u, fu[cur], (size_t)h * w * sizeof(float));
        memcpy(v, fv[cur], (size_t)h * w * sizeof(float));
    }
    util_arena_free(&arena);
    return DD_OK;
}
