/* Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions, float32: each 4x4
 * block of outputs from a 6x6 block of input with 36 products per channel
 * pair instead of 144. Per band of block rows: the input transform
 * V = B^T d B (36 matrices of C x blocks), 36 GEMMs M = U V with the
 * transformed weights U = G g G^T (K x C each), then the output transform
 * Y = A^T M A with bias and ReLU. The backward to the input is the same
 * machinery run on dout with the weights turned and transposed. Every 3x3
 * stride-1 convolution runs this way in both modes (docs/ARCHITECTURE.md).
 *
 * Each thread owns a stripe of block rows through all three steps (see
 * run()), and its GEMMs are small: from AVX2 up they run on our register
 * tile (tile.c) over U packed in panels, whose sums do not depend on the
 * GEMM's width, so neither bands nor threads change a bit; at the plain
 * level OpenBLAS's sgemm, one call per block row, whose width is the
 * convolution's (a band's height can follow the scratch each thread gets).
 *
 * F(4x4) rather than F(2x2): 4x fewer products instead of 2.25x, and fewer
 * transformed values per output (36/16 against 16/4), so less memory
 * traffic too. Its transforms have coefficients up to 8, so its rounding is
 * a few times F(2x2)'s: tens of float32 ulps of the terms, still far inside
 * the golden test's tolerance (docs/PERFORMANCE.md). The interpolation
 * points are 0, 1, -1, 2, -2 and infinity. */
#include <string.h>

#include "nn.h"
#include "vector.h"

enum { TILE = 6, OUT = 4, XI = TILE * TILE };
enum { MR = NN_TILE_MR };

#if VECTOR_PATHS
/* The first count of 64 floats at p, zero past them. */
AVX512 static inline void load64(__m512 a[4], const float *p, int count) {
    for (int q = 0; q < 4; q++) a[q] = _mm512_maskz_loadu_ps(lanes(count - 16 * q), p + 16 * q);
}

/* Elements 4 i + j of the 64 floats a0:a1:a2:a3, for i = 0..15, into c[j]. */
AVX512 static inline void deinterleave4(__m512 c[4], __m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 b0 = _mm512_permutex2var_ps(a0, ev, a1), b1 = _mm512_permutex2var_ps(a0, od, a1);
    const __m512 b2 = _mm512_permutex2var_ps(a2, ev, a3), b3 = _mm512_permutex2var_ps(a2, od, a3);
    c[0] = _mm512_permutex2var_ps(b0, ev, b2), c[2] = _mm512_permutex2var_ps(b0, od, b2);
    c[1] = _mm512_permutex2var_ps(b1, ev, b3), c[3] = _mm512_permutex2var_ps(b1, od, b3);
}

/* The inverse: out[4 i + j] = y[j][i], for the first count of the 64. */
AVX512 static inline void interleave4(float *out, const __m512 y[4], int count) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 p0 = _mm512_permutex2var_ps(y[0], lo, y[2]), p1 = _mm512_permutex2var_ps(y[0], hi, y[2]);
    const __m512 q0 = _mm512_permutex2var_ps(y[1], lo, y[3]), q1 = _mm512_permutex2var_ps(y[1], hi, y[3]);
    _mm512_mask_storeu_ps(out, lanes(count), _mm512_permutex2var_ps(p0, lo, q0));
    _mm512_mask_storeu_ps(out + 16, lanes(count - 16), _mm512_permutex2var_ps(p0, hi, q0));
    _mm512_mask_storeu_ps(out + 32, lanes(count - 32), _mm512_permutex2var_ps(p1, lo, q1));
    _mm512_mask_storeu_ps(out + 48, lanes(count - 48), _mm512_permutex2var_ps(p1, hi, q1));
}

/* Element 1 .. 15 of c, then next: the column four to the right. */
AVX512 static inline __m512 shift_in(__m512 c, float next) {
    return _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(next)), _mm512_castps_si512(c), 1));
}

/* B^T down six input rows, columns [x0, x1) of the padded row buffer r
 * (rows span apart); src[i] is input row i shifted by the left padding, or
 * NULL for a padding row. */
AVX512 static void rows_bt(float *r, int span, const float *const src[TILE], int x0, int x1) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    for (int x = x0; x < x1; x += 16) {
        const __mmask16 k = lanes(x1 - x);
        __m512 d[TILE];
        for (int i = 0; i < TILE; i++) d[i] = src[i] ? _mm512_maskz_loadu_ps(k, src[i] + x) : _mm512_setzero_ps();
        const __m512 d24 = _mm512_sub_ps(d[4], d[2]), d13 = _mm512_sub_ps(d[3], d[1]);
        float *o = r + x;
        _mm512_mask_storeu_ps(o, k, _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])));
        _mm512_mask_storeu_ps(o + span, k,
                              _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4])));
        _mm512_mask_storeu_ps(o + 2 * span, k,
                              _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3])));
        _mm512_mask_storeu_ps(o + 3 * span, k, _mm512_fmadd_ps(two, d13, d24));
        _mm512_mask_storeu_ps(o + 4 * span, k, _mm512_fnmadd_ps(two, d13, d24));
        _mm512_mask_storeu_ps(o + 5 * span, k, _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])));
    }
}

/* Blocks bx .. bx+n-1 (n <= 16) of one block row of the input transform:
 * q the six row-transformed padded rows (span floats apart, the block row's
 * columns 4 bx .. 4 bx + 4 n + 1 in them), o the first V plane. */
AVX512 static void input16(float *o, size_t stride, const float *q, int span, int bx, int n) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    const __mmask16 k = lanes(n);
    const int avail = 4 * n + 2;
    for (int i = 0; i < TILE; i++, q += span, o += TILE * stride) {
        const float *p = q + 4 * bx;
        __m512 a[4], d[6];
        load64(a, p, avail);
        deinterleave4(d, a[0], a[1], a[2], a[3]);
        d[4] = shift_in(d[0], avail > 64 ? p[64] : 0.0f), d[5] = shift_in(d[1], avail > 65 ? p[65] : 0.0f);
        const __m512 d24 = _mm512_sub_ps(d[4], d[2]), d13 = _mm512_sub_ps(d[3], d[1]);
        _mm512_mask_storeu_ps(o + bx, k, _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])));
        _mm512_mask_storeu_ps(o + stride + bx, k,
                              _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4])));
        _mm512_mask_storeu_ps(o + 2 * stride + bx, k,
                              _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3])));
        _mm512_mask_storeu_ps(o + 3 * stride + bx, k, _mm512_fmadd_ps(two, d13, d24));
        _mm512_mask_storeu_ps(o + 4 * stride + bx, k, _mm512_fnmadd_ps(two, d13, d24));
        _mm512_mask_storeu_ps(o + 5 * stride + bx, k,
                              _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])));
    }
}

/* A^T applied to six vectors m0..m5, giving four. */
AVX512 static inline void at6(__m512 y[4], __m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 m4, __m512 m5) {
    const __m512 a = _mm512_add_ps(m1, m2), b = _mm512_sub_ps(m1, m2);
    const __m512 c = _mm512_add_ps(m3, m4), d = _mm512_sub_ps(m3, m4);
    y[0] = _mm512_add_ps(_mm512_add_ps(m0, a), c);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), m5);
}

/* Blocks bx .. bx+n-1 (n <= 16) of one block row of the output transform,
 * writing the first cols (<= 64) of their outputs: rows[i] is output row
 * 4 by + i or NULL. */
AVX512 static void output16(float *const rows[OUT], const float *src, size_t stride, int bx, int n, int cols,
                            float bias, int relu, int accumulate) {
    const __mmask16 k = lanes(n);
    __m512 t[OUT][TILE]; /* A^T M, column by column */
    for (int j = 0; j < TILE; j++) {
        __m512 m[TILE], y[OUT];
        for (int r = 0; r < TILE; r++) m[r] = _mm512_maskz_loadu_ps(k, src + (size_t)(r * TILE + j) * stride);
        at6(y, m[0], m[1], m[2], m[3], m[4], m[5]);
        for (int i = 0; i < OUT; i++) t[i][j] = y[i];
    }
    const __m512 b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (int i = 0; i < OUT && rows[i]; i++) {
        __m512 y[OUT];
        at6(y, t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5]);
        float *dst = rows[i] + OUT * bx;
        for (int j = 0; j < OUT; j++) {
            y[j] = _mm512_add_ps(y[j], b);
            if (relu) y[j] = _mm512_max_ps(y[j], zero); /* max(NaN, 0) is 0, as the scalar y > 0 test */
        }
        if (accumulate) {
            __m512 a[4], old[OUT];
            load64(a, dst, cols);
            deinterleave4(old, a[0], a[1], a[2], a[3]);
            for (int j = 0; j < OUT; j++) y[j] = _mm512_add_ps(old[j], y[j]);
        }
        interleave4(dst, y, cols);
    }
}

/* ---- AVX2: eight blocks at a time, the same arithmetic as AVX-512's ---- */

/* B^T down six input rows, as rows_bt. */
AVX2 static void rows_bt8(float *r, int span, const float *const src[TILE], int x0, int x1) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    for (int x = x0; x < x1; x += 8) {
        const __m256i k = lanes8(x1 - x);
        const int whole = x1 - x >= 8;
        __m256 d[TILE], o[TILE];
        for (int i = 0; i < TILE; i++)
            d[i] = !src[i] ? _mm256_setzero_ps() : whole ? _mm256_loadu_ps(src[i] + x) : _mm256_maskload_ps(src[i] + x, k);
        const __m256 d24 = _mm256_sub_ps(d[4], d[2]), d13 = _mm256_sub_ps(d[3], d[1]);
        o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
        o[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
        o[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
        o[3] = _mm256_fmadd_ps(two, d13, d24);
        o[4] = _mm256_fnmadd_ps(two, d13, d24);
        o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
        for (int i = 0; i < TILE; i++) {
            if (whole) _mm256_storeu_ps(r + (size_t)i * span + x, o[i]);
            else _mm256_maskstore_ps(r + (size_t)i * span + x, k, o[i]);
        }
    }
}

/* The first count (clamped to 0..4) of the four floats at p, zero past them. */
AVX2 static inline __m128 load4(const float *p, int count) {
    return count >= 4 ? _mm_loadu_ps(p) : count <= 0 ? _mm_setzero_ps() : _mm_maskload_ps(p, lanes4(count));
}

/* Blocks j and j + 4 in a[j]'s two halves (j = 0..3) -> c[e] holding element
 * e of blocks 0..7 in order: a 4 x 4 transpose within each half. */
AVX2 static inline void transpose_halves(__m256 c[4], const __m256 a[4]) {
    const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    c[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    c[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    c[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    c[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

/* Element 1 .. 7 of c, then next. */
AVX2 static inline __m256 shift_in8(__m256 c, float next) {
    const __m256i up = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(c, up), _mm256_set1_ps(next), 0x80);
}

/* Blocks bx .. bx+n-1 (n <= 8) of one block row of the input transform, as
 * input16. */
AVX2 static void input8(float *o, size_t stride, const float *q, int span, int bx, int n) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    const __m256i k = lanes8(n);
    const int avail = 4 * n + 2;
    for (int i = 0; i < TILE; i++, q += span, o += TILE * stride) {
        const float *p = q + 4 * bx;
        __m256 a[4], d[6], e[TILE];
        for (int j = 0; j < 4; j++)
            a[j] = _mm256_set_m128(load4(p + 4 * (j + 4), avail - 4 * (j + 4)), load4(p + 4 * j, avail - 4 * j));
        transpose_halves(d, a);
        d[4] = shift_in8(d[0], avail > 32 ? p[32] : 0.0f), d[5] = shift_in8(d[1], avail > 33 ? p[33] : 0.0f);
        const __m256 d24 = _mm256_sub_ps(d[4], d[2]), d13 = _mm256_sub_ps(d[3], d[1]);
        e[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
        e[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
        e[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
        e[3] = _mm256_fmadd_ps(two, d13, d24);
        e[4] = _mm256_fnmadd_ps(two, d13, d24);
        e[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
        for (int j = 0; j < TILE; j++) _mm256_maskstore_ps(o + (size_t)j * stride + bx, k, e[j]);
    }
}

AVX2 static inline void at6_avx2(__m256 y[4], __m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 m4, __m256 m5) {
    const __m256 a = _mm256_add_ps(m1, m2), b = _mm256_sub_ps(m1, m2);
    const __m256 c = _mm256_add_ps(m3, m4), d = _mm256_sub_ps(m3, m4);
    y[0] = _mm256_add_ps(_mm256_add_ps(m0, a), c);
    y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
    y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m5);
}

/* Blocks bx .. bx+n-1 (n <= 8) of one block row of the output transform,
 * the first cols (<= 32) of their outputs, as output16. */
AVX2 static void output8(float *const rows[OUT], const float *src, size_t stride, int bx, int n, int cols,
                         float bias, int relu, int accumulate) {
    const __m256i k = lanes8(n);
    __m256 t[OUT][TILE];
    for (int j = 0; j < TILE; j++) {
        __m256 m[TILE], y[OUT];
        for (int r = 0; r < TILE; r++) m[r] = _mm256_maskload_ps(src + (size_t)(r * TILE + j) * stride, k);
        at6_avx2(y, m[0], m[1], m[2], m[3], m[4], m[5]);
        for (int i = 0; i < OUT; i++) t[i][j] = y[i];
    }
    const __m256 b = _mm256_set1_ps(bias), zero = _mm256_setzero_ps();
    for (int i = 0; i < OUT && rows[i]; i++) {
        __m256 y[OUT], blk[4];
        at6_avx2(y, t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5]);
        for (int j = 0; j < OUT; j++) {
            y[j] = _mm256_add_ps(y[j], b);
            if (relu) y[j] = _mm256_max_ps(y[j], zero);
        }
        transpose_halves(blk, y); /* blk[j]: blocks j and j + 4, four outputs each */
        float *dst = rows[i] + OUT * bx;
        for (int bb = 0; bb < 8 && OUT * bb < cols; bb++) {
            const int count = cols - OUT * bb;
            __m128 v = bb < 4 ? _mm256_castps256_ps128(blk[bb]) : _mm256_extractf128_ps(blk[bb - 4], 1);
            if (accumulate) v = _mm_add_ps(load4(dst + OUT * bb, count), v);
            if (count >= 4) _mm_storeu_ps(dst + OUT * bb, v);
            else _mm_maskstore_ps(dst + OUT * bb, lanes4(count), v);
        }
    }
}
#endif

int nn_winograd_applies(const nn_conv *cv) {
    const nn_window *s = &cv->win;
    /* Its backward is a 3x3 convolution padded 2 - pad: pads up to 2. */
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->pad_t <= 2 && s->pad_l <= 2 &&
           s->pad_b <= 2 && s->pad_r <= 2;
}

/* With the AVX-512 GEMM, each U_xi is stored in panels of 12 rows (rows
 * padded with zeros), column by column within a panel; else row-major. */
static int panel_layout(const nn_conv *cv) { return VECTOR_PATHS && cv->cpu >= NN_CPU_AVX2; }
static size_t padded(int m) { return (size_t)(m + MR - 1) / MR * MR; }

size_t nn_winograd_weight_floats(const nn_conv *cv) {
    const size_t fwd = padded(cv->k) * cv->c, bwd = padded(cv->c) * cv->k;
    return (size_t)XI * (fwd > bwd ? fwd : bwd);
}

/* U[xi][k][c] = (G g G^T)[xi], G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]; for the backward pass g is
 * w[k][c] turned by 180 degrees and stored at U[xi][c][k]: the transposed
 * convolution's weights. */
static void pack(float *u, const float *w, const nn_conv *cv, int backward) {
    const int panels = panel_layout(cv);
    memset(u, 0, nn_winograd_weight_floats(cv) * sizeof(float));
    static const double g[TILE][3] = {{1.0 / 4, 0, 0},
                                      {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                      {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                      {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                      {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                      {0, 0, 1}};
    for (int k = 0; k < cv->k; k++)
        for (int c = 0; c < cv->c; c++) {
            const float *w_kc = w + ((size_t)k * cv->c + c) * 9;
            float f[9];
            for (int i = 0; i < 9; i++) f[i] = backward ? w_kc[8 - i] : w_kc[i];
            double t[TILE][3]; /* G f */
            for (int i = 0; i < TILE; i++)
                for (int j = 0; j < 3; j++) t[i][j] = g[i][0] * f[j] + g[i][1] * f[3 + j] + g[i][2] * f[6 + j];
            for (int i = 0; i < TILE; i++)
                for (int j = 0; j < TILE; j++) {
                    const size_t xi = (size_t)i * TILE + j;
                    const int row = backward ? c : k, col = backward ? k : c, m = backward ? cv->c : cv->k;
                    const int n = backward ? cv->k : cv->c;
                    const size_t at = panels ? (xi * padded(m) + (size_t)(row / MR * MR)) * n + (size_t)col * MR + row % MR
                                             : (xi * m + row) * n + col;
                    u[at] = (float)(t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2]);
                }
        }
}

void nn_winograd_pack(float *u, const float *w, const nn_conv *cv) { pack(u, w, cv, 0); }
void nn_winograd_pack_backward(float *u, const float *w, const nn_conv *cv) { pack(u, w, cv, 1); }

/* B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *        0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1] applied to d[0..5]. */
static inline void bt6(float r[TILE], const float d[TILE]) {
    r[0] = 4 * d[0] - 5 * d[2] + d[4];
    r[1] = -4 * (d[1] + d[2]) + d[3] + d[4];
    r[2] = 4 * (d[1] - d[2]) + d[4] - d[3];
    r[3] = 2 * (d[3] - d[1]) + d[4] - d[2];
    r[4] = -2 * (d[3] - d[1]) + d[4] - d[2];
    r[5] = 4 * d[1] - 5 * d[3] + d[5];
}

/* A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
static inline void at6_scalar(float y[OUT], const float m[TILE]) {
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    y[0] = m[0] + a + c, y[1] = b + 2 * d, y[2] = a + 4 * c, y[3] = b + 8 * d + m[5];
}

/* Floats of a thread's buffer of row-transformed input rows. */
static size_t rowbuf_floats(int bw) { return (size_t)TILE * (OUT * bw + 2); }

/* V[xi][c][b] for the blocks of block rows [by0, by0 + rows): B^T d B, zero
 * outside the plane. B^T is applied down each input column once, into six
 * padded rows (rowbuf), then across each block's six columns of them with
 * no bounds checks. */
static void input_transform(float *v, const float *in, const nn_conv *cv, int by0, int rows, int bw,
                            float *r) {
    const nn_window *s = &cv->win;
    const size_t blocks = (size_t)rows * bw, stride = (size_t)cv->c * blocks;
    const int span = OUT * bw + 2; /* input columns x0 .. x0 + span - 1 */
    for (int c = 0; c < cv->c; c++) {
        const float *plane = in + (size_t)c * s->h * s->w;
        for (int by = 0; by < rows; by++) {
            const int y0 = OUT * (by0 + by) - s->pad_t;
            const float *src[TILE];
            for (int i = 0; i < TILE; i++)
                src[i] = y0 + i >= 0 && y0 + i < s->h ? plane + (size_t)(y0 + i) * s->w : NULL;
            float *dst = v + (size_t)c * blocks + (size_t)by * bw;
            int bx0 = 0;
#if VECTOR_PATHS
            if (cv->cpu >= NN_CPU_AVX2) {
                /* Padded columns are zero; the rest straight from the rows. */
                const int x0 = s->pad_l < span ? s->pad_l : span;
                const int x1 = s->pad_l + s->w < span ? s->pad_l + s->w : span;
                const float *shifted[TILE];
                for (int i = 0; i < TILE; i++) shifted[i] = src[i] ? src[i] - s->pad_l : NULL;
                for (int i = 0; i < TILE; i++) {
                    memset(r + (size_t)i * span, 0, sizeof(float) * (size_t)x0);
                    memset(r + (size_t)i * span + x1, 0, sizeof(float) * (size_t)(span - x1));
                }
                if (cv->cpu >= NN_CPU_AVX512) {
                    rows_bt(r, span, shifted, x0, x1);
                    for (; bx0 < bw; bx0 += 16) input16(dst, stride, r, span, bx0, bw - bx0 < 16 ? bw - bx0 : 16);
                } else {
                    rows_bt8(r, span, shifted, x0, x1);
                    for (; bx0 < bw; bx0 += 8) input8(dst, stride, r, span, bx0, bw - bx0 < 8 ? bw - bx0 : 8);
                }
            }
#endif
            for (int x = 0; x < span && bx0 < bw; x++) {
                const int ix = x - s->pad_l;
                float d[TILE], q[TILE];
                for (int i = 0; i < TILE; i++) d[i] = src[i] && ix >= 0 && ix < s->w ? src[i][ix] : 0.0f;
                bt6(q, d);
                for (int i = 0; i < TILE; i++) r[(size_t)i * span + x] = q[i];
            }
            for (int i = 0; i < TILE; i++) {
                const float *q = r + (size_t)i * span;
                float *o = dst + (size_t)(i * TILE) * stride;
                for (int bx = bx0; bx < bw; bx++) {
                    float e[TILE];
                    bt6(e, q + OUT * bx);
                    for (int j = 0; j < TILE; j++) o[(size_t)j * stride + bx] = e[j];
                }
            }
        }
    }
}

/* out = relu?(A^T M A + bias), or out += A^T M A, for the band; outputs
 * (y, x) with y < oh, x < ow only (out's planes are s->oh x s->ow). */
static void output_transform(float *out, const float *m, const float *bias, int relu, int accumulate,
                             const nn_conv *cv, int oh, int ow, int by0, int rows, int bw) {
    const nn_window *s = &cv->win;
    const size_t blocks = (size_t)rows * bw, stride = (size_t)cv->k * blocks;
    for (int k = 0; k < cv->k; k++) {
        float *plane = out + (size_t)k * s->oh * s->ow;
        const float b = bias ? bias[k] : 0.0f;
        for (int by = 0; by < rows; by++) {
            const int y = OUT * (by0 + by);
            int bx0 = 0;
#if VECTOR_PATHS
            if (cv->cpu >= NN_CPU_AVX2) {
                float *out_rows[OUT];
                for (int i = 0; i < OUT; i++) out_rows[i] = y + i < oh ? plane + (size_t)(y + i) * s->ow : NULL;
                const int group = cv->cpu >= NN_CPU_AVX512 ? 16 : 8;
                for (; bx0 < bw; bx0 += group) {
                    const float *src = m + (size_t)k * blocks + (size_t)by * bw + bx0;
                    const int n = bw - bx0 < group ? bw - bx0 : group;
                    const int cols = ow - OUT * bx0 < OUT * group ? ow - OUT * bx0 : OUT * group;
                    if (group == 16) output16(out_rows, src, stride, bx0, n, cols, b, relu, accumulate);
                    else output8(out_rows, src, stride, bx0, n, cols, b, relu, accumulate);
                }
            }
#endif
            for (int bx = bx0; bx < bw; bx++) {
                const float *src = m + (size_t)k * blocks + (size_t)by * bw + bx;
                float t[OUT][TILE];
                for (int j = 0; j < TILE; j++) {
                    float col[TILE], yj[OUT];
                    for (int r = 0; r < TILE; r++) col[r] = src[(size_t)(r * TILE + j) * stride];
                    at6_scalar(yj, col);
                    for (int i = 0; i < OUT; i++) t[i][j] = yj[i];
                }
                for (int i = 0; i < OUT && y + i < oh; i++) {
                    float yi[OUT];
                    at6_scalar(yi, t[i]);
                    float *row = plane + (size_t)(y + i) * s->ow;
                    for (int j = 0; j < OUT && OUT * bx + j < ow; j++) {
                        float v = yi[j] + b;
                        if (relu) v = v > 0.0f ? v : 0.0f;
                        if (accumulate) v += row[OUT * bx + j];
                        row[OUT * bx + j] = v;
                    }
                }
            }
        }
    }
}

/* V and M of one block row. */
static size_t row_floats(const nn_conv *cv, int bw) { return (size_t)XI * (cv->c + cv->k) * bw; }

/* Block rows per band: about BAND_FLOATS of V and M, so that a band's
 * transforms and GEMMs meet in cache. */
enum { BAND_FLOATS = 1 << 19 };
static int band_rows(const nn_conv *cv, int bh, int bw) {
    const size_t most = BAND_FLOATS / row_floats(cv, bw);
    if (most < 1) return 1;
    /* Bands of even height (9 rows in at most 8: 5 and 4, not 8 and 1), so
     * that stripes of whole bands balance. */
    const size_t bands = ((size_t)bh + most - 1) / most;
    return (int)(((size_t)bh + bands - 1) / bands);
}

static int block_cols(const nn_conv *cv, int backward) {
    return ((backward ? cv->win.w : cv->win.ow) + OUT - 1) / OUT;
}

size_t nn_winograd_row_floats(const nn_conv *cv, int backward, int threads) {
    const int bw = block_cols(cv, backward);
    return (size_t)threads * (row_floats(cv, bw) + rowbuf_floats(bw));
}

size_t nn_winograd_scratch_floats(const nn_conv *cv, int backward, int threads) {
    const int bw = block_cols(cv, backward), bh = ((backward ? cv->win.h : cv->win.oh) + OUT - 1) / OUT;
    return (size_t)threads * (band_rows(cv, bh, bw) * row_floats(cv, bw) + rowbuf_floats(bw));
}

/* The first output of thread i's mask bytes, whole bytes so that no two
 * threads write one: near the first output of its stripe. */
static size_t mask_split(int first_row, int ow, size_t plane) {
    const size_t at = ((size_t)first_row * ow + 7) / 8 * 8;
    return at < plane ? at : plane;
}

/* One run's fixed values; each worker takes its stripe of bands. */
typedef struct wino_job {
    float *out, *scratch;
    int accumulate, oh, ow, bw, bh, band, bands, vector;
    uint8_t *relu_mask;
    const float *in, *u, *bias;
    const nn_conv *cv;
    size_t share;
} wino_job;

static void run_stripe(void *ctx, int worker, int workers) {
    const wino_job *j = ctx;
    const nn_conv *cv = j->cv;
    const nn_window *s = &cv->win;
    float *out = j->out, *scratch = j->scratch;
    uint8_t *relu_mask = j->relu_mask;
    const float *in = j->in, *u = j->u, *bias = j->bias;
    const int accumulate = j->accumulate, oh = j->oh, ow = j->ow, bw = j->bw, bh = j->bh, band = j->band;
    const int bands = j->bands, vector = j->vector;
    const size_t share = j->share;
    size_t first, last;
    nn_thread_share((size_t)bands, worker, workers, &first, &last);
    float *rowbuf = scratch + (size_t)worker * share, *v = rowbuf + rowbuf_floats(bw);
    const int r0 = band * (int)first, end = band * (int)last, r1 = end < bh ? end : bh;
    for (int by0 = r0; by0 < r1; by0 += band) {
        const int rows = r1 - by0 < band ? r1 - by0 : band;
        const int blocks = rows * bw;
        float *m = v + (size_t)XI * cv->c * blocks;
        input_transform(v, in, cv, by0, rows, bw, rowbuf);
        for (int xi = 0; xi < XI; xi++) {
            const float *vx = v + (size_t)xi * cv->c * blocks;
            float *mx = m + (size_t)xi * cv->k * blocks;
            if (vector) {
                nn_tile_gemm(cv->cpu, cv->k, blocks, cv->c, u + (size_t)xi * padded(cv->k) * cv->c, vx,
                             (size_t)blocks, mx, (size_t)blocks);
                continue;
            }
            for (int r = 0; r < rows; r++) /* n = bw, whatever the band */
                nn_sgemm_serial(0, cv->k, bw, cv->c, u + (size_t)xi * cv->k * cv->c, cv->c, vx + (size_t)r * bw, blocks,
                                0.0f, mx + (size_t)r * bw, blocks);
        }
        output_transform(out, m, bias, relu_mask != NULL, accumulate, cv, oh, ow, by0, rows, bw);
    }
    if (relu_mask) {
        /* The few outputs past a split come from the next thread's
         * stripe, written before the barrier. */
        const size_t plane = (size_t)s->oh * s->ow;
        const size_t from = first ? mask_split(OUT * r0, s->ow, plane) : 0;
        const size_t to = last < (size_t)bands ? mask_split(OUT * r1, s->ow, plane) : plane;
        team_barrier();
        if (to > from) nn_relu_mask_from_output(out, relu_mask, cv->k, plane, from, to - from, 1);
    }
}

/* The convolution cv of in by u into out (+= with accumulate), outputs
 * (y, x) with y < oh, x < ow; 0 when one block row per thread does not fit
 * in scratch. Each thread transforms, multiplies and writes its own stripe
 * of whole bands: threads never pass each other data between the three
 * steps, so two cores that share no cache (a VM's vCPUs on different dies)
 * do not ship V and M across (with the steps split by channel, by xi and by
 * output channel in turn, a step at 512 ran 1.7x slower in such phases). */
static int run(float *out, int accumulate, uint8_t *relu_mask, const float *in, const float *u,
               const float *bias, const nn_conv *cv, int oh, int ow, float *scratch, size_t scratch_floats,
               int threads) {
    const int bh = (oh + OUT - 1) / OUT, bw = (ow + OUT - 1) / OUT;
    if (!nn_winograd_applies(cv) || threads < 1) return 0;
    const size_t share = scratch_floats / (size_t)threads, per_row = row_floats(cv, bw);
    if (per_row + rowbuf_floats(bw) > share) return 0;
    int band = band_rows(cv, bh, bw);
    if (band * per_row + rowbuf_floats(bw) > share) band = (int)((share - rowbuf_floats(bw)) / per_row);
    const int bands = (bh + band - 1) / band;
    const int vector = panel_layout(cv), held = vector ? 0 : nn_blas_hold();
    wino_job j = {out, scratch, accumulate, oh, ow, bw, bh, band, bands, vector, relu_mask, in, u, bias, cv, share};
    team_run(threads, run_stripe, &j);
    nn_blas_release(held);
    return 1;
}

int nn_conv_forward_winograd(float *out, uint8_t *relu_mask, const float *in, const float *u,
                             const float *bias, const nn_conv *cv, float *scratch, size_t scratch_floats,
                             int threads) {
    return run(out, 0, relu_mask, in, u, bias, cv, cv->win.oh, cv->win.ow, scratch, scratch_floats, threads);
}

/* The last row and column of planes (k of h x w) holding a non-zero: -1
 * when all are zero. Scans from the bottom and the right, so costs about a
 * row and a column per plane when there is no zero margin. */
static void nonzero_extent(const float *planes, int k, int h, int w, int *last_row, int *last_col) {
    int r = -1, c = -1;
    for (int ch = 0; ch < k; ch++) {
        const float *p = planes + (size_t)ch * h * w;
        for (int y = h - 1; y > r; y--) {
            int x = w - 1;
            while (x >= 0 && p[(size_t)y * w + x] == 0.0f) x--;
            if (x >= 0) {
                r = y;
                break;
            }
        }
        for (int y = 0; y <= r && c < w - 1; y++)
            for (int x = w - 1; x > c; x--)
                if (p[(size_t)y * w + x] != 0.0f) {
                    c = x;
                    break;
                }
    }
    *last_row = r, *last_col = c;
}

/* The gradient of a stride-1 3x3 convolution with respect to its input is
 * the 'full' correlation of dout with the weights turned by 180 degrees and
 * transposed: again 3x3 stride 1, from K channels to C, padded by 2 - pad.
 * Inputs past the reach of dout's last non-zero row and column are left
 * alone: they get exactly 0 (a zero margin there is the work of 'valid'
 * layers downstream, and the reference demands it exact), whereas F(4x4)'s
 * transforms would cancel their terms only to rounding. */
int nn_conv_backward_winograd(float *din, const float *dout, const float *u_backward, const nn_conv *cv,
                              float *scratch, size_t scratch_floats, int threads) {
    const nn_window *s = &cv->win;
    if (!nn_winograd_applies(cv)) return 0;
    nn_conv t = {.c = cv->k, .k = cv->c, .cpu = cv->cpu};
    t.win = (nn_window){.h = s->oh, .w = s->ow, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                        .pad_t = 2 - s->pad_t, .pad_l = 2 - s->pad_l, .oh = s->h, .ow = s->w};
    if (threads < 1 || nn_winograd_row_floats(cv, 1, threads) > scratch_floats) return 0;
    int last_row, last_col;
    nonzero_extent(dout, cv->k, s->oh, s->ow, &last_row, &last_col);
    if (last_row < 0) return 1; /* din += 0 */
    const int oh = last_row + 3 - s->pad_t < s->h ? last_row + 3 - s->pad_t : s->h;
    const int ow = last_col + 3 - s->pad_l < s->w ? last_col + 3 - s->pad_l : s->w;
    return run(din, 1, NULL, dout, u_backward, NULL, &t, oh, ow, scratch, scratch_floats, threads);
}
