/* The float32 register tile: a 12 x 32 block of C from one panel of A and
 * kdim rows of B, one kernel per instruction set. AVX-512 keeps the whole
 * tile in 24 accumulators; AVX2 runs it as four 6 x 16 quarters of 12. Both
 * sum every element over kdim in order with one FMA per term, so they give
 * the same bits, wherever the tile lies in C and however C is cut. */
#include <string.h>

#include "nn.h"
#include "vector.h"

enum { MR = NN_TILE_MR, NR = NN_TILE_NR };

size_t nn_tile_panels_floats(int m, int k) { return (size_t)(m + MR - 1) / MR * MR * (size_t)k; }

void nn_tile_pack(float *dst, const float *a, int m, int k, int trans_a) {
    const int panels = (m + MR - 1) / MR;
    for (int p = 0; p < panels; p++)
        for (int q = 0; q < k; q++)
            for (int r = 0; r < MR; r++) {
                const int row = p * MR + r;
                dst[((size_t)p * k + q) * MR + r] =
                    row >= m ? 0.0f : trans_a ? a[(size_t)q * m + row] : a[(size_t)row * k + q];
            }
}

#if VECTOR_PATHS
AVX512 static void tile_avx512(int kdim, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int rows,
                               int cols, const nn_tile_out *e) {
    const __mmask16 k0 = lanes(cols), k1 = lanes(cols - 16);
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int q = 0; q < kdim; q++) {
        const float *bq = b + (size_t)q * ldb, *aq = a + (size_t)q * MR;
        const __m512 b0 = _mm512_maskz_loadu_ps(k0, bq), b1 = _mm512_maskz_loadu_ps(k1, bq + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(aq[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) /* constant indices keep acc in registers */
        if (i < rows) {
            float *ci = c + (size_t)i * ldc;
            __m512 v0 = acc[i][0], v1 = acc[i][1];
            if (e && e->add) {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, ci));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, ci + 16));
            }
            if (e && e->bias) {
                const __m512 bi = _mm512_set1_ps(e->bias[i]);
                v0 = _mm512_add_ps(v0, bi), v1 = _mm512_add_ps(v1, bi);
            }
            if (e && e->relu) /* max(NaN, 0) is 0, as the plain v > 0 test */
                v0 = _mm512_max_ps(v0, zero), v1 = _mm512_max_ps(v1, zero);
            _mm512_mask_storeu_ps(ci, k0, v0);
            _mm512_mask_storeu_ps(ci + 16, k1, v1);
        }
}

/* Rows r0 .. r0+5 (of which rows count) and columns c0 .. c0+15 (cols) of
 * the tile: 12 accumulators, two B vectors and a broadcast in 16 registers. */
AVX2 static void quarter_avx2(int kdim, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int rows,
                              int cols, const nn_tile_out *e, int r0) {
    const __m256i m0 = lanes8(cols), m1 = lanes8(cols - 8);
    const int whole = cols >= 16;
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int q = 0; q < kdim; q++) {
        const float *bq = b + (size_t)q * ldb, *aq = a + (size_t)q * MR + r0;
        const __m256 b0 = whole ? _mm256_loadu_ps(bq) : _mm256_maskload_ps(bq, m0);
        const __m256 b1 = whole ? _mm256_loadu_ps(bq + 8) : _mm256_maskload_ps(bq + 8, m1);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const __m256 ai = _mm256_broadcast_ss(aq + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
        if (i < rows) {
            float *ci = c + (size_t)i * ldc;
            __m256 v0 = acc[i][0], v1 = acc[i][1];
            if (e && e->add) {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
            }
            if (e && e->bias) {
                const __m256 bi = _mm256_set1_ps(e->bias[r0 + i]);
                v0 = _mm256_add_ps(v0, bi), v1 = _mm256_add_ps(v1, bi);
            }
            if (e && e->relu) /* vmaxps returns the second operand for NaN: 0 */
                v0 = _mm256_max_ps(v0, zero), v1 = _mm256_max_ps(v1, zero);
            _mm256_maskstore_ps(ci, m0, v0);
            _mm256_maskstore_ps(ci + 8, m1, v1);
        }
}

AVX2 static void tile_avx2(int kdim, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int rows,
                           int cols, const nn_tile_out *e) {
    for (int r0 = 0; r0 < rows; r0 += 6)
        for (int c0 = 0; c0 < cols; c0 += 16)
            quarter_avx2(kdim, a, b + c0, ldb, c + (size_t)r0 * ldc + c0, ldc, rows - r0 < 6 ? rows - r0 : 6,
                         cols - c0 < 16 ? cols - c0 : 16, e, r0);
}
#endif

void nn_tile(nn_cpu_level cpu, int kdim, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int rows,
             int cols, const nn_tile_out *e) {
    (void)cpu; /* read only by the vector paths, absent off x86-64 */
#if VECTOR_PATHS
    if (cpu >= NN_CPU_AVX512) {
        tile_avx512(kdim, a, b, ldb, c, ldc, rows, cols, e);
        return;
    }
    if (cpu >= NN_CPU_AVX2) {
        tile_avx2(kdim, a, b, ldb, c, ldc, rows, cols, e);
        return;
    }
#endif
    /* Plain: the same sums, one product and one add each (no FMA). */
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float acc = 0.0f;
            for (int q = 0; q < kdim; q++) acc += a[(size_t)q * MR + i] * b[(size_t)q * ldb + j];
            float *cij = c + (size_t)i * ldc + j;
            if (e && e->add) acc += *cij;
            if (e && e->bias) acc += e->bias[i];
            if (e && e->relu) acc = acc > 0.0f ? acc : 0.0f;
            *cij = acc;
        }
}

void nn_tile_gemm(nn_cpu_level cpu, int m, int n, int kdim, const float *a, const float *b, size_t ldb, float *c,
                  size_t ldc) {
    /* Column blocks outside so that B's block stays in L1 while every
     * panel of A passes over it. */
    for (int j = 0; j < n; j += NR)
        for (int p = 0; p < m; p += MR)
            nn_tile(cpu, kdim, a + (size_t)p * kdim, b + j, ldb, c + (size_t)p * ldc + j, ldc,
                    m - p < MR ? m - p : MR, n - j < NR ? n - j : NR, NULL);
}
