/* Max and average pooling, forward and backward to the input, parallel over
 * channels (each channel's planes belong to one thread). */
#include <float.h>
#include <stdlib.h>


#include "nn.h"
#include "vector.h"

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

/* Outputs [lo, hi) of a stride-1 row whose windows lie wholly inside the
 * plane: no bounds checks there, so the loops vectorise. */
static void inside_span(const nn_window *s, int *lo, int *hi) {
    *lo = s->pad_l;
    *hi = s->w - s->kw + s->pad_l + 1;
    if (*hi > s->ow) *hi = s->ow;
    if (*hi < *lo) *hi = *lo;
}

static int row_inside(const nn_window *s, int oy) {
    return oy * s->sh - s->pad_t >= 0 && oy * s->sh - s->pad_t + s->kh <= s->h;
}


/* The winner of the window of output (oy, ox), padding excluded; the
 * first of equal values in scan order. */
static float max_at(const nn_window *s, const float *p, int oy, int ox, uint8_t *at) {
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
    *at = (uint8_t)best_at;
    return best;
}

/* The same for n consecutive 3x3 windows wholly inside the plane, r0 the
 * first one's top-left, stride SX: branch-free, since which tap wins is
 * data and unpredictable. */
#define MAX3_TAP(K, OFF)                                                                      \
    {                                                                                         \
        const float v = q[OFF];                                                               \
        const int gt = v > best;                                                              \
        best = gt ? v : best;                                                                 \
        at = gt ? (K) : at;                                                                   \
    }
#define MAX3_ROW(SX)                                                                          \
    for (int x = 0; x < n; x++) {                                                             \
        const float *q = r0 + (size_t)x * (SX);                                               \
        float best = q[0];                                                                    \
        int at = 0;                                                                           \
        MAX3_TAP(1, 1) MAX3_TAP(2, 2)                                                         \
        MAX3_TAP(3, w) MAX3_TAP(4, w + 1) MAX3_TAP(5, w + 2)                                  \
        MAX3_TAP(6, 2 * w) MAX3_TAP(7, 2 * w + 1) MAX3_TAP(8, 2 * w + 2)                      \
        o[x] = best;                                                                          \
        a[x] = (uint8_t)at;                                                                   \
    }

/* The same for 2x2 windows (VGG's 2x2/2 pools). */
#define MAX2_ROW(SX)                                                                          \
    for (int x = 0; x < n; x++) {                                                             \
        const float *q = r0 + (size_t)x * (SX);                                               \
        float best = q[0];                                                                    \
        int at = 0;                                                                           \
        MAX3_TAP(1, 1) MAX3_TAP(2, w) MAX3_TAP(3, w + 1)                                      \
        o[x] = best;                                                                          \
        a[x] = (uint8_t)at;                                                                   \
    }

#if VECTOR_PATHS

/* Taps in scan order into best / at: a later tap wins only when greater. */
AVX512 static inline void max_taps_avx512(const __m512 *taps, int n_taps, __m512 *best, __m512i *at) {
    *best = taps[0], *at = _mm512_setzero_si512();
    for (int k = 1; k < n_taps; k++) {
        const __mmask16 gt = _mm512_cmp_ps_mask(taps[k], *best, _CMP_GT_OQ);
        *best = _mm512_mask_mov_ps(*best, gt, taps[k]);
        *at = _mm512_mask_mov_epi32(*at, gt, _mm512_set1_epi32(k));
    }
}

AVX2 static inline void max_taps_avx2(const __m256 *taps, int n_taps, __m256 *best, __m256i *at) {
    *best = taps[0], *at = _mm256_setzero_si256();
    for (int k = 1; k < n_taps; k++) {
        const __m256 gt = _mm256_cmp_ps(taps[k], *best, _CMP_GT_OQ);
        *best = _mm256_blendv_ps(*best, taps[k], gt);
        *at = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(_mm256_set1_epi32(k)), gt));
    }
}

AVX2 static inline void store_at_avx2(uint8_t *a, __m256i at) {
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(at), _mm256_extracti128_si256(at, 1));
    _mm_storel_epi64((__m128i *)a, _mm_packus_epi16(words, words));
}

/* The even (odd) elements of a0:a1, in order: shuffles within halves, then
 * the halves' middle quarters swapped. */
AVX2 static inline __m256 even_avx2(__m256 a0, __m256 a1) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xD8));
}

AVX2 static inline __m256 odd_avx2(__m256 a0, __m256 a1) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xDD)), 0xD8));
}

/* 3x3 stride 1 (GoogLeNet's branch pools): each tap is a plain load. */
AVX512 static int max3_row_s1_avx512(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        __m512 taps[9], best;
        __m512i at;
        for (int k = 0; k < 9; k++) taps[k] = _mm512_loadu_ps(r0 + (size_t)(k / 3) * w + k % 3 + x);
        max_taps_avx512(taps, 9, &best, &at);
        _mm512_storeu_ps(o + x, best);
        _mm_storeu_si128((__m128i *)(a + x), _mm512_cvtepi32_epi8(at));
    }
    return x;
}

AVX2 static int max3_row_s1_avx2(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 taps[9], best;
        __m256i at;
        for (int k = 0; k < 9; k++) taps[k] = _mm256_loadu_ps(r0 + (size_t)(k / 3) * w + k % 3 + x);
        max_taps_avx2(taps, 9, &best, &at);
        _mm256_storeu_ps(o + x, best);
        store_at_avx2(a + x, at);
    }
    return x;
}

/* 2x2 stride 2 (VGG's pools): per row, the even and odd elements of 32
 * consecutive floats are the two taps of sixteen windows. */
AVX512 static int max2_row_s2_avx512(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        __m512 taps[4], best;
        __m512i at;
        for (int ky = 0; ky < 2; ky++) {
            const float *q = r0 + ky * w + 2 * (size_t)x;
            const __m512 a0 = _mm512_loadu_ps(q), a1 = _mm512_loadu_ps(q + 16);
            taps[2 * ky] = _mm512_permutex2var_ps(a0, ev, a1), taps[2 * ky + 1] = _mm512_permutex2var_ps(a0, od, a1);
        }
        max_taps_avx512(taps, 4, &best, &at);
        _mm512_storeu_ps(o + x, best);
        _mm_storeu_si128((__m128i *)(a + x), _mm512_cvtepi32_epi8(at));
    }
    return x;
}

AVX2 static int max2_row_s2_avx2(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 taps[4], best;
        __m256i at;
        for (int ky = 0; ky < 2; ky++) {
            const float *q = r0 + ky * w + 2 * (size_t)x;
            const __m256 a0 = _mm256_loadu_ps(q), a1 = _mm256_loadu_ps(q + 8);
            taps[2 * ky] = even_avx2(a0, a1), taps[2 * ky + 1] = odd_avx2(a0, a1);
        }
        max_taps_avx2(taps, 4, &best, &at);
        _mm256_storeu_ps(o + x, best);
        store_at_avx2(a + x, at);
    }
    return x;
}

/* Stride 2, sixteen windows at a time: each tap's sixteen values are the
 * even (or odd) elements of 32 consecutive floats; ties keep the earlier
 * tap, as in the scalar rows (v > best is false for NaN either way). */
AVX512 static int max3_row_s2_avx512(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        __m512 taps[9], best;
        __m512i at;
        for (int ky = 0; ky < 3; ky++) {
            const float *q = r0 + ky * w + 2 * (size_t)x;
            const __m512 a0 = _mm512_loadu_ps(q), a1 = _mm512_loadu_ps(q + 16);
            /* Tap kx = 2 is the even elements one step on, up to q[32], the
             * last window's third column: no read past it. */
            const __m512 b0 = _mm512_loadu_ps(q + 2), b1 = _mm512_maskz_loadu_ps(0x7FFF, q + 18);
            taps[3 * ky] = _mm512_permutex2var_ps(a0, ev, a1);
            taps[3 * ky + 1] = _mm512_permutex2var_ps(a0, od, a1);
            taps[3 * ky + 2] = _mm512_permutex2var_ps(b0, ev, b1);
        }
        max_taps_avx512(taps, 9, &best, &at);
        _mm512_storeu_ps(o + x, best);
        _mm_storeu_si128((__m128i *)(a + x), _mm512_cvtepi32_epi8(at));
    }
    return x;
}

/* The same eight windows at a time in AVX2. */
AVX2 static int max3_row_s2_avx2(const float *r0, size_t w, float *o, uint8_t *a, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 taps[9], best;
        __m256i at;
        for (int ky = 0; ky < 3; ky++) {
            const float *q = r0 + ky * w + 2 * (size_t)x;
            const __m256 a0 = _mm256_loadu_ps(q), a1 = _mm256_loadu_ps(q + 8);
            /* Tap 2 reaches q[16], the last window's third column: no further. */
            const __m256 b0 = _mm256_loadu_ps(q + 2), b1 = _mm256_maskload_ps(q + 10, lanes8(7));
            taps[3 * ky] = even_avx2(a0, a1), taps[3 * ky + 1] = odd_avx2(a0, a1), taps[3 * ky + 2] = even_avx2(b0, b1);
        }
        max_taps_avx2(taps, 9, &best, &at);
        _mm256_storeu_ps(o + x, best);
        store_at_avx2(a + x, at);
    }
    return x;
}
#endif

static void max3_row(const float *r0, size_t w, int sx, float *o, uint8_t *a, int n) {
#if VECTOR_PATHS
    if ((sx == 1 || sx == 2) && nn_cpu() >= NN_CPU_AVX2) {
        const int wide = nn_cpu() >= NN_CPU_AVX512;
        const int done = sx == 1 ? (wide ? max3_row_s1_avx512(r0, w, o, a, n) : max3_row_s1_avx2(r0, w, o, a, n))
                                 : (wide ? max3_row_s2_avx512(r0, w, o, a, n) : max3_row_s2_avx2(r0, w, o, a, n));
        r0 += (size_t)sx * (size_t)done, o += done, a += done, n -= done;
    }
#endif
    if (sx == 2) {
        MAX3_ROW(2)
    } else if (sx == 1) {
        MAX3_ROW(1)
    } else {
        MAX3_ROW(sx)
    }
}

static void max2_row(const float *r0, size_t w, int sx, float *o, uint8_t *a, int n) {
#if VECTOR_PATHS
    if (sx == 2 && nn_cpu() >= NN_CPU_AVX2) {
        const int done = nn_cpu() >= NN_CPU_AVX512 ? max2_row_s2_avx512(r0, w, o, a, n) : max2_row_s2_avx2(r0, w, o, a, n);
        r0 += 2 * (size_t)done, o += done, a += done, n -= done;
    }
#endif
    if (sx == 2) {
        MAX2_ROW(2)
    } else {
        MAX2_ROW(sx)
    }
}

/* What the pooling loops read, unpacked into the names their bodies use. */
typedef struct pool_job {
    float *out;
    uint8_t *argmax;
    const uint8_t *cargmax;
    const float *in;
    const nn_window *s;
    int c, fast, lo, hi;
} pool_job;

static void maxpool_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const pool_job *j = ctx;
    const nn_window *s = j->s;
    const float *in = j->in;
    float *out = j->out;
    uint8_t *argmax = j->argmax;
    const int fast = j->fast, lo = j->lo, hi = j->hi;
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        const float *p = in + (size_t)ch * s->h * s->w;
        float *o = out + (size_t)ch * s->oh * s->ow;
        uint8_t *a = argmax + (size_t)ch * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++) {
            const size_t row = (size_t)oy * s->ow;
            int ox = 0;
            if (fast && row_inside(s, oy)) {
                const float *r0 = p + (size_t)(oy * s->sh - s->pad_t) * s->w;
                for (; ox < lo; ox++) o[row + ox] = max_at(s, p, oy, ox, &a[row + ox]);
                if (hi > ox) {
                    (s->kh == 3 ? max3_row : max2_row)(r0 + ox * s->sw - s->pad_l, (size_t)s->w, s->sw, o + row + ox,
                                                       a + row + ox, hi - ox);
                    ox = hi;
                }
            }
            for (; ox < s->ow; ox++) o[row + ox] = max_at(s, p, oy, ox, &a[row + ox]);
        }
    }
}

void nn_maxpool_forward(float *out, uint8_t *argmax, const float *in, int c,
                        const nn_window *s, int threads) {
    const int fast = (s->kh == 3 && s->kw == 3) || (s->kh == 2 && s->kw == 2);
    /* Outputs whose windows lie inside horizontally: [lo, hi). */
    const int lo = (s->pad_l + s->sw - 1) / s->sw;
    int hi = s->w - s->kw + s->pad_l >= 0 ? (s->w - s->kw + s->pad_l) / s->sw + 1 : 0;
    if (hi > s->ow) hi = s->ow;
    pool_job j = {.out = out, .argmax = argmax, .in = in, .s = s, .fast = fast, .lo = lo, .hi = hi};
    team_for(threads, (size_t)c, maxpool_channels, &j);
}

static void maxpool_back_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const pool_job *j = ctx;
    const nn_window *s = j->s;
    float *din = j->out;
    const float *dout = j->in;
    const uint8_t *argmax = j->cargmax;
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        float *p = din + (size_t)ch * s->h * s->w;
        const float *d = dout + (size_t)ch * s->oh * s->ow;
        const uint8_t *a = argmax + (size_t)ch * s->oh * s->ow;
        /* Winner index -> offset from the window's top-left, once, not a
         * division per output. */
        long offset[256];
        for (int k = 0; k < s->kh * s->kw && k < 256; k++) offset[k] = (long)(k / s->kw) * s->w + k % s->kw;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                const size_t o = (size_t)oy * s->ow + ox;
                const long top_left = (long)(oy * s->sh - s->pad_t) * s->w + (ox * s->sw - s->pad_l);
                p[top_left + offset[a[o]]] += d[o];
            }
    }
}

void nn_maxpool_backward(float *din, const float *dout, const uint8_t *argmax,
                         int c, const nn_window *s, int threads) {
    pool_job j = {.out = din, .cargmax = argmax, .in = dout, .s = s};
    team_for(threads, (size_t)c, maxpool_back_channels, &j);
}

/* Average pooling's divisor along one axis for a window starting at start
 * (before padding is removed): its real pixels, or with count_pad the window
 * clipped only at the trailing padding's outer edge (PyTorch's
 * count_include_pad: a ceil_mode window past that edge counts less). */
static int span_count(int start, int k, int n, int trail, int count_pad) {
    int end = start + k;
    if (count_pad) return (end < n + trail ? end : n + trail) - start;
    if (end > n) end = n;
    return end - (start > 0 ? start : 0);
}

static int window_divisor(const nn_window *s, int oy, int ox) {
    return span_count(oy * s->sh - s->pad_t, s->kh, s->h, s->pad_b, s->count_pad) *
           span_count(ox * s->sw - s->pad_l, s->kw, s->w, s->pad_r, s->count_pad);
}

static float avg_at(const nn_window *s, const float *p, int oy, int ox) {
    int y0, y1, x0, x1;
    window_extent(s, oy, ox, &y0, &y1, &x0, &x1);
    float sum = 0.0f;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) sum += p[(size_t)y * s->w + x];
    return sum / (float)window_divisor(s, oy, ox);
}

/* out[lo..hi) of an inside row of a 3x3 stride-1 window, summed in the same
 * order as avg_at, so both paths give the same bits. */
static void avg3_row(float *restrict o, const float *restrict r0, int w, int lo, int hi, int pad_l) {
    const float *r1 = r0 + w, *r2 = r1 + w;
    for (int x = lo; x < hi; x++) {
        const int i = x - pad_l;
        o[x] = (r0[i] + r0[i + 1] + r0[i + 2] + r1[i] + r1[i + 1] + r1[i + 2] + r2[i] + r2[i + 1] + r2[i + 2]) / 9.0f;
    }
}

static void avgpool_rows(void *ctx, size_t from, size_t to, int worker) {
    const pool_job *j = ctx;
    const nn_window *s = j->s;
    const float *in = j->in;
    float *out = j->out;
    const int c = j->c, fast = j->fast, lo = j->lo, hi = j->hi;
    const int oy0 = (int)from, oy1 = (int)to;
    (void)worker;
    for (int ch = 0; ch < c; ch++) {
        const float *p = in + (size_t)ch * s->h * s->w;
        float *o = out + (size_t)ch * s->oh * s->ow;
        for (int oy = oy0; oy < oy1; oy++) {
            float *orow = o + (size_t)oy * s->ow;
            if (fast && row_inside(s, oy)) {
                for (int ox = 0; ox < lo; ox++) orow[ox] = avg_at(s, p, oy, ox);
                avg3_row(orow, p + (size_t)(oy - s->pad_t) * s->w, s->w, lo, hi, s->pad_l);
                for (int ox = hi; ox < s->ow; ox++) orow[ox] = avg_at(s, p, oy, ox);
            } else {
                for (int ox = 0; ox < s->ow; ox++) orow[ox] = avg_at(s, p, oy, ox);
            }
        }
    }
}

void nn_avgpool_forward(float *out, const float *in, int c, const nn_window *s,
                        int threads) {
    const int fast = s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1;
    int lo = 0, hi = 0;
    if (fast) inside_span(s, &lo, &hi);
    /* Each thread its band of rows in every channel, not whole channels:
     * the rows the convolutions before it wrote on the same core. */
    pool_job j = {.out = out, .in = in, .s = s, .c = c, .fast = fast, .lo = lo, .hi = hi};
    team_for(threads, (size_t)s->oh, avgpool_rows, &j);
}

/* Average-pool backward as a gather: each input pixel sums the shares of
 * the outputs whose windows cover it, so every input is written once. */
static float avg_gather_at(const nn_window *s, const float *d, int y, int x) {
    /* Outputs covering input row y: oy*sh - pad_t <= y <= oy*sh - pad_t + kh - 1. */
    int oy0 = y + s->pad_t - s->kh + 1, oy1 = y + s->pad_t;
    int ox0 = x + s->pad_l - s->kw + 1, ox1 = x + s->pad_l;
    oy0 = oy0 <= 0 ? 0 : (oy0 + s->sh - 1) / s->sh, oy1 = oy1 < 0 ? -1 : oy1 / s->sh;
    ox0 = ox0 <= 0 ? 0 : (ox0 + s->sw - 1) / s->sw, ox1 = ox1 < 0 ? -1 : ox1 / s->sw;
    if (oy1 >= s->oh) oy1 = s->oh - 1;
    if (ox1 >= s->ow) ox1 = s->ow - 1;
    float sum = 0.0f;
    for (int oy = oy0; oy <= oy1; oy++)
        for (int ox = ox0; ox <= ox1; ox++) {
            sum += d[(size_t)oy * s->ow + ox] / (float)window_divisor(s, oy, ox);
        }
    return sum;
}

/* 3x3 stride-1 backward, separable: the window of output (oy, ox) holds
 * rows(oy) x cols(ox) real pixels, so each input row takes the sum of its
 * (up to) three covering output rows scaled by 1 / rows, scaled by 1 / cols,
 * then summed three columns at a time. t is ow + 4 floats, two zeros at
 * either end so edges need no tests; rc is ow floats. */
static void avg3_backward_plane(float *p, const float *d, const nn_window *s, float *t, float *rc) {
    float *tz = t + 2;
    t[0] = t[1] = tz[s->ow] = tz[s->ow + 1] = 0.0f;
    for (int ox = 0; ox < s->ow; ox++) {
        rc[ox] = 1.0f / (float)span_count(ox - s->pad_l, 3, s->w, s->pad_r, s->count_pad);
    }
    for (int y = 0; y < s->h; y++) {
        const int oy0 = y + s->pad_t - 2 > 0 ? y + s->pad_t - 2 : 0;
        const int oy1 = y + s->pad_t < s->oh - 1 ? y + s->pad_t : s->oh - 1;
        for (int ox = 0; ox < s->ow; ox++) tz[ox] = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++) {
            const float rr = 1.0f / (float)span_count(oy - s->pad_t, 3, s->h, s->pad_b, s->count_pad);
            const float *drow = d + (size_t)oy * s->ow;
            for (int ox = 0; ox < s->ow; ox++) tz[ox] += drow[ox] * rr;
        }
        for (int ox = 0; ox < s->ow; ox++) tz[ox] *= rc[ox];
        float *prow = p + (size_t)y * s->w;
        const float *q = t + s->pad_l; /* q[x + j] = tz[x + pad_l - 2 + j] */
        for (int x = 0; x < s->w; x++) prow[x] += q[x] + q[x + 1] + q[x + 2];
    }
}

static void avgpool_back_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const pool_job *j = ctx;
    const nn_window *s = j->s;
    float *t = j->fast ? malloc(sizeof(float) * ((size_t)2 * s->ow + 4)) : NULL;
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        float *p = j->out + (size_t)ch * s->h * s->w;
        const float *d = j->in + (size_t)ch * s->oh * s->ow;
        if (t) { /* else the gather, pixel by pixel */
            avg3_backward_plane(p, d, s, t, t + s->ow + 4);
            continue;
        }
        for (int y = 0; y < s->h; y++)
            for (int x = 0; x < s->w; x++) p[(size_t)y * s->w + x] += avg_gather_at(s, d, y, x);
    }
    free(t);
}

void nn_avgpool_backward(float *din, const float *dout, int c, const nn_window *s,
                         int threads) {
    const int fast = s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->pad_l <= 2 && s->pad_t <= 2;
    pool_job j = {.out = din, .in = dout, .s = s, .fast = fast};
    team_for(threads, (size_t)c, avgpool_back_channels, &j);
}
