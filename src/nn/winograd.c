/* Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions, float32: each 2x2
 * block of outputs from a 4x4 block of input with 16 products per channel
 * pair instead of 36. Per band of block rows: the input transform
 * V = B^T d B (16 matrices of C x blocks), 16 GEMMs M = U V with the
 * transformed weights U = G g G^T (K x C each), then the output transform
 * Y = A^T M A with bias and ReLU. The backward to the input is the same
 * machinery run on dout with the weights turned and transposed. The exact
 * mode runs every 3x3 stride-1 convolution this way, the fast mode the
 * stem's forward (which must stay float32, docs/ARCHITECTURE.md). The
 * rounding differs from the direct sum by a few float32 ulps of the terms. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VECTOR_PATHS 1
#define TARGET __attribute__((target("avx512f")))

/* Even and odd elements of the 32 floats a:b. */
TARGET static inline __m512 evens(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
}
TARGET static inline __m512 odds(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
}

/* Blocks bx .. bx+15 of one block row of the input transform: q the four
 * padded row sums (span floats apart), o the first of the 16 V planes. */
TARGET static void input16(float *o, size_t stride, const float *q, int span, int bx) {
    for (int i = 0; i < 4; i++, q += span, o += 4 * stride) {
        const float *p = q + 2 * bx;
        const __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
        const __m512 a2 = _mm512_loadu_ps(p + 2), b2 = _mm512_loadu_ps(p + 18);
        const __m512 e0 = evens(a, b), o0 = odds(a, b), e1 = evens(a2, b2), o1 = odds(a2, b2);
        _mm512_storeu_ps(o + bx, _mm512_sub_ps(e0, e1));
        _mm512_storeu_ps(o + stride + bx, _mm512_add_ps(o0, e1));
        _mm512_storeu_ps(o + 2 * stride + bx, _mm512_sub_ps(e1, o0));
        _mm512_storeu_ps(o + 3 * stride + bx, _mm512_sub_ps(o0, o1));
    }
}

/* Blocks bx .. bx+15 of one block row of the output transform, all 32
 * output columns inside the row: rows[i] is output row 2 by + i or NULL. */
TARGET static void output16(float *const rows[2], const float *src, size_t stride, int bx, float bias, int relu,
                           int accumulate) {
    __m512 t[2][4];
    for (int j = 0; j < 4; j++) {
        const __m512 m0 = _mm512_loadu_ps(src + (size_t)j * stride), m1 = _mm512_loadu_ps(src + (size_t)(4 + j) * stride);
        const __m512 m2 = _mm512_loadu_ps(src + (size_t)(8 + j) * stride), m3 = _mm512_loadu_ps(src + (size_t)(12 + j) * stride);
        t[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        t[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    const __m512 b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int i = 0; i < 2 && rows[i]; i++) {
        __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]), b);
        __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[i][1], t[i][2]), t[i][3]), b);
        if (relu) /* max(NaN, 0) is 0, as the scalar y > 0 test */
            y0 = _mm512_max_ps(y0, zero), y1 = _mm512_max_ps(y1, zero);
        __m512 r0 = _mm512_permutex2var_ps(y0, lo, y1), r1 = _mm512_permutex2var_ps(y0, hi, y1);
        if (accumulate)
            r0 = _mm512_add_ps(_mm512_loadu_ps(rows[i] + 2 * bx), r0),
            r1 = _mm512_add_ps(_mm512_loadu_ps(rows[i] + 2 * bx + 16), r1);
        _mm512_storeu_ps(rows[i] + 2 * bx, r0);
        _mm512_storeu_ps(rows[i] + 2 * bx + 16, r1);
    }
}
#else
#define VECTOR_PATHS 0
#endif

int nn_winograd_applies(const nn_conv *cv) {
    const nn_window *s = &cv->win;
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1;
}

size_t nn_winograd_weight_floats(const nn_conv *cv) { return (size_t)16 * cv->k * cv->c; }

/* U[xi][k][c] = (G g G^T)[xi], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1];
 * for the backward pass g is w[k][c] turned by 180 degrees and stored at
 * U[xi][c][k]: the transposed convolution's weights. */
static void pack(float *u, const float *w, const nn_conv *cv, int backward) {
    static const double g[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int k = 0; k < cv->k; k++)
        for (int c = 0; c < cv->c; c++) {
            const float *w_kc = w + ((size_t)k * cv->c + c) * 9;
            float f[9];
            for (int i = 0; i < 9; i++) f[i] = backward ? w_kc[8 - i] : w_kc[i];
            double t[4][3]; /* G f */
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 3; j++) t[i][j] = g[i][0] * f[j] + g[i][1] * f[3 + j] + g[i][2] * f[6 + j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    const size_t at = backward ? ((size_t)(i * 4 + j) * cv->c + c) * cv->k + k
                                               : ((size_t)(i * 4 + j) * cv->k + k) * cv->c + c;
                    u[at] = (float)(t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2]);
                }
        }
}

void nn_winograd_pack(float *u, const float *w, const nn_conv *cv) { pack(u, w, cv, 0); }
void nn_winograd_pack_backward(float *u, const float *w, const nn_conv *cv) { pack(u, w, cv, 1); }

/* V[xi][c][b] for the blocks of block rows [by0, by0 + rows): B^T d B,
 * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], zero outside the plane.
 * B^T's row sums are taken once per input column into four padded rows
 * (rowbuf: 4 x (2 bw + 2) floats per thread), then each block combines
 * four columns of them with no bounds checks. */
static void input_transform(float *v, const float *in, const nn_conv *cv, int by0, int rows, int bw,
                            float *rowbuf, int threads) {
    const nn_window *s = &cv->win;
    const int vector = VECTOR_PATHS && nn_bf16_supported(); /* AVX-512 with it */
    const size_t blocks = (size_t)rows * bw, stride = (size_t)cv->c * blocks;
    const int span = 2 * bw + 2; /* input columns x0 .. x0 + span - 1 */
#pragma omp parallel num_threads(threads)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *r = rowbuf + (size_t)t * 4 * span;
#pragma omp for schedule(static)
        for (int c = 0; c < cv->c; c++) {
            const float *plane = in + (size_t)c * s->h * s->w;
            for (int by = 0; by < rows; by++) {
                const int y0 = 2 * (by0 + by) - s->pad_t;
                const float *src[4];
                for (int i = 0; i < 4; i++)
                    src[i] = y0 + i >= 0 && y0 + i < s->h ? plane + (size_t)(y0 + i) * s->w : NULL;
                for (int x = 0; x < span; x++) {
                    const int ix = x - s->pad_l;
                    float d[4];
                    for (int i = 0; i < 4; i++) d[i] = src[i] && ix >= 0 && ix < s->w ? src[i][ix] : 0.0f;
                    r[x] = d[0] - d[2], r[span + x] = d[1] + d[2];
                    r[2 * span + x] = d[2] - d[1], r[3 * span + x] = d[1] - d[3];
                }
                float *dst = v + (size_t)c * blocks + (size_t)by * bw;
                int bx0 = 0;
#if VECTOR_PATHS
                if (vector)
                    for (; bx0 + 16 <= bw; bx0 += 16) input16(dst, stride, r, span, bx0);
#endif
                for (int i = 0; i < 4; i++) {
                    const float *q = r + (size_t)i * span;
                    float *o = dst + (size_t)(i * 4) * stride;
                    for (int bx = bx0; bx < bw; bx++) {
                        const float q0 = q[2 * bx], q1 = q[2 * bx + 1], q2 = q[2 * bx + 2], q3 = q[2 * bx + 3];
                        o[bx] = q0 - q2;
                        o[stride + bx] = q1 + q2;
                        o[2 * stride + bx] = q2 - q1;
                        o[3 * stride + bx] = q1 - q3;
                    }
                }
            }
        }
    }
}

/* out = relu?(A^T M A + bias), or out += A^T M A, for the band,
 * A^T = [1 1 1 0; 0 1 -1 -1]. */
static void output_transform(float *out, const float *m, const float *bias, int relu, int accumulate,
                             const nn_conv *cv, int by0, int rows, int bw, int threads) {
    const nn_window *s = &cv->win;
    const size_t blocks = (size_t)rows * bw, stride = (size_t)cv->k * blocks;
    const int vector = VECTOR_PATHS && nn_bf16_supported();
    const int whole = s->ow / 32 * 16; /* blocks whose 32 outputs lie inside a row, in 16s */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int k = 0; k < cv->k; k++) {
        float *plane = out + (size_t)k * s->oh * s->ow;
        const float b = bias ? bias[k] : 0.0f;
        for (int by = 0; by < rows; by++) {
            int bx0 = 0;
#if VECTOR_PATHS
            if (vector) {
                const int y = 2 * (by0 + by);
                float *const out_rows[2] = {plane + (size_t)y * s->ow,
                                            y + 1 < s->oh ? plane + (size_t)(y + 1) * s->ow : NULL};
                for (; bx0 < whole; bx0 += 16)
                    output16(out_rows, m + (size_t)k * blocks + (size_t)by * bw + bx0, stride, bx0, b, relu,
                             accumulate);
            }
#endif
            for (int bx = bx0; bx < bw; bx++) {
                const float *src = m + (size_t)k * blocks + (size_t)by * bw + bx;
                float t[2][4];
                for (int j = 0; j < 4; j++) {
                    const float m0 = src[(size_t)j * stride], m1 = src[(size_t)(4 + j) * stride];
                    const float m2 = src[(size_t)(8 + j) * stride], m3 = src[(size_t)(12 + j) * stride];
                    t[0][j] = m0 + m1 + m2, t[1][j] = m1 - m2 - m3;
                }
                for (int i = 0; i < 2; i++) {
                    const int y = 2 * (by0 + by) + i;
                    if (y >= s->oh) break;
                    float y0 = t[i][0] + t[i][1] + t[i][2] + b, y1 = t[i][1] - t[i][2] - t[i][3] + b;
                    if (relu) y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f;
                    float *row = plane + (size_t)y * s->ow + 2 * bx;
                    if (accumulate) y0 += row[0], y1 += 2 * bx + 1 < s->ow ? row[1] : 0.0f;
                    row[0] = y0;
                    if (2 * bx + 1 < s->ow) row[1] = y1;
                }
            }
        }
    }
}

/* The convolution cv of in by u into out (+= with accumulate), band by
 * band of block rows as scratch allows; 0 when one row does not fit. */
static int run(float *out, int accumulate, uint8_t *relu_mask, const float *in, const float *u,
               const float *bias, const nn_conv *cv, float *scratch, size_t scratch_floats, int threads) {
    const nn_window *s = &cv->win;
    const int bh = (s->oh + 1) / 2, bw = (s->ow + 1) / 2;
    const size_t per_row = (size_t)16 * (cv->c + cv->k) * bw; /* V and M of one block row */
    const size_t rowbuf = (size_t)threads * 4 * (2 * bw + 2);
    if (!nn_winograd_applies(cv) || threads < 1 || per_row + rowbuf > scratch_floats) return 0;
    int band = (int)((scratch_floats - rowbuf) / per_row);
    if (band > bh) band = bh;
    for (int by0 = 0; by0 < bh; by0 += band) {
        const int rows = bh - by0 < band ? bh - by0 : band;
        const int blocks = rows * bw;
        float *v = scratch, *m = scratch + (size_t)16 * cv->c * blocks;
        input_transform(v, in, cv, by0, rows, bw, m + (size_t)16 * cv->k * blocks, threads);
        for (int xi = 0; xi < 16; xi++)
            nn_gemm(0, cv->k, blocks, cv->c, u + (size_t)xi * cv->k * cv->c, cv->c,
                    v + (size_t)xi * cv->c * blocks, blocks, 0.0f, m + (size_t)xi * cv->k * blocks, blocks,
                    threads);
        output_transform(out, m, bias, relu_mask != NULL, accumulate, cv, by0, rows, bw, threads);
        if (relu_mask) {
            const int y0 = 2 * by0, y1 = 2 * (by0 + rows) < s->oh ? 2 * (by0 + rows) : s->oh;
            nn_relu_mask_from_output(out, relu_mask, cv->k, (size_t)s->oh * s->ow, (size_t)y0 * s->ow,
                                     (size_t)(y1 - y0) * s->ow, threads);
        }
    }
    return 1;
}

int nn_conv_forward_winograd(float *out, uint8_t *relu_mask, const float *in, const float *u,
                             const float *bias, const nn_conv *cv, float *scratch, size_t scratch_floats,
                             int threads) {
    return run(out, 0, relu_mask, in, u, bias, cv, scratch, scratch_floats, threads);
}

/* The gradient of a stride-1 3x3 convolution with respect to its input is
 * the 'full' correlation of dout with the weights turned by 180 degrees and
 * transposed: again 3x3 stride 1, from K channels to C, padded by 2 - pad. */
int nn_conv_backward_winograd(float *din, const float *dout, const float *u_backward, const nn_conv *cv,
                              float *scratch, size_t scratch_floats, int threads) {
    const nn_window *s = &cv->win;
    if (!nn_winograd_applies(cv)) return 0;
    nn_conv t = {.c = cv->k, .k = cv->c};
    t.win = (nn_window){.h = s->oh, .w = s->ow, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                        .pad_t = 2 - s->pad_t, .pad_l = 2 - s->pad_l, .oh = s->h, .ow = s->w};
    return run(din, 1, NULL, dout, u_backward, NULL, &t, scratch, scratch_floats, threads);
}
