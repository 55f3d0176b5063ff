/* The fast mode's GEMM where the CPU has AVX2 but not AVX512-BF16: 16-bit
 * integer products (VPMADDWD: per 32-bit lane, a0*b0 + a1*b1 in int32),
 * twice the multiply-adds of a float32 FMA per instruction on CPUs that
 * issue two a cycle. Each row of A (a convolution's output channel) and
 * each column of B (an output pixel's inputs) gets its own scale, the
 * largest magnitude over k mapped to Q = floor(sqrt((2^31 - 1) / k)), so
 * that no int32 sum can overflow (|sum| <= k Q^2); C = sa[i] sb[j] times
 * the integer sum. For k up to 1344 that is 10 bits and a sign or more: an
 * element's error is at most half a step of its row's or column's scale,
 * about the rounding of bfloat16 for the largest values of each column.
 *
 * Operands are packed as the bfloat16 GEMM's, pairs along k in 32-bit
 * words: A once per net in panels of 12 rows (then its 12 row scales), B
 * per thread 128 columns at a time (float32 first, by the float32 GEMM's
 * packers, which fuse the ReLU mask and the im2col; then its 128 column
 * scales and the quantized words). Sums are exact integers, so the result
 * does not depend on the thread count or the order of anything. Unlike the
 * float32 paths it does not carry non-finite values: a column holding NaN
 * or inf comes out wrong, never a crash (the network's own values are
 * finite). */
#include <math.h>
#include <string.h>

#include "nn.h"
#include "vector.h"

enum { MR = NN_TILE_MR, NR = NN_TILE_NR, CHUNK_PANELS = 4, CHUNK = NR * CHUNK_PANELS };

/* The largest quantized magnitude for sums over k terms. */
static int q_max(int k) {
    const double q = floor(sqrt(2147483647.0 / (double)(k > 1 ? k : 1)));
    return q > 32767 ? 32767 : (int)q;
}

static int pairs(int k) { return (k + 1) / 2; }

size_t nn_i16_packed_a_words(int m, int k) {
    const size_t panels = (size_t)(m + MR - 1) / MR;
    return panels * MR * (size_t)pairs(k) + panels * MR; /* words, then the row scales */
}

static uint32_t pair_word(int lo, int hi) { return (uint32_t)(uint16_t)lo | (uint32_t)(uint16_t)hi << 16; }

void nn_i16_pack_a(uint32_t *dst, const float *a, int m, int k, int trans_a) {
    const int kp = pairs(k), panels = (m + MR - 1) / MR, q = q_max(k);
    float *scales = (float *)(dst + (size_t)panels * MR * kp);
    for (int row = 0; row < panels * MR; row++) {
        float most = 0.0f;
        for (int col = 0; row < m && col < k; col++) {
            const float v = fabsf(trans_a ? a[(size_t)col * m + row] : a[(size_t)row * k + col]);
            if (v > most) most = v;
        }
        const float scale = most > 0.0f ? most / (float)q : 0.0f, inv = most > 0.0f ? (float)q / most : 0.0f;
        scales[row] = scale;
        const int p = row / MR, r = row % MR;
        for (int pq = 0; pq < kp; pq++) {
            int half[2] = {0, 0};
            for (int h = 0; h < 2; h++) {
                const int col = 2 * pq + h;
                if (row < m && col < k) half[h] = (int)lrintf((trans_a ? a[(size_t)col * m + row] : a[(size_t)row * k + col]) * inv);
            }
            dst[((size_t)p * kp + pq) * MR + r] = pair_word(half[0], half[1]);
        }
    }
}

size_t nn_i16_scratch_words(int k) {
    /* the float32 chunk, its column scales, the quantized words */
    return (size_t)k * CHUNK + CHUNK + (size_t)pairs(k) * CHUNK;
}

#if VECTOR_PATHS
/* The float chunk f ([panel][k][32], cols live columns) -> column scales
 * and pair words w ([panel][kp][32]). */
AVX2 static void quantize_chunk(uint32_t *w, float *scales, const float *f, int k, int cols) {
    const int kp = pairs(k), panels = (cols + NR - 1) / NR;
    const float q = (float)q_max(k);
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    for (int v = 0; v < panels; v++) {
        const float *fp = f + (size_t)v * k * NR;
        __m256 inv[NR / 8];
        for (int c = 0; c < NR; c += 8) {
            __m256 most = zero;
            for (int r = 0; r < k; r++) most = _mm256_max_ps(most, _mm256_andnot_ps(sign, _mm256_loadu_ps(fp + (size_t)r * NR + c)));
            const __m256 live = _mm256_cmp_ps(most, zero, _CMP_GT_OQ);
            _mm256_storeu_ps(scales + v * NR + c, _mm256_and_ps(live, _mm256_div_ps(most, _mm256_set1_ps(q))));
            inv[c / 8] = _mm256_and_ps(live, _mm256_div_ps(_mm256_set1_ps(q), most));
        }
        uint32_t *wp = w + (size_t)v * kp * NR;
        const __m256i low = _mm256_set1_epi32(0xFFFF);
        for (int pq = 0; pq < kp; pq++) {
            const float *r0 = fp + (size_t)(2 * pq) * NR, *r1 = r0 + NR;
            const int has_hi = 2 * pq + 1 < k;
            for (int c = 0; c < NR; c += 8) {
                const __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r0 + c), inv[c / 8]));
                const __m256i hi = has_hi ? _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(r1 + c), inv[c / 8]))
                                          : _mm256_setzero_si256();
                _mm256_storeu_si256((__m256i *)(wp + (size_t)pq * NR + c),
                                    _mm256_or_si256(_mm256_and_si256(lo, low), _mm256_slli_epi32(hi, 16)));
            }
        }
    }
}

/* Rows r0 .. r0+5 and columns c0 .. c0+15 of a 12 x 32 tile: 12 int32
 * accumulators; then C = sa sb sum (+ C, + bias, ReLU). */
AVX2 static void quarter(const uint32_t *a, const uint32_t *b, int kp, const float *sa, const float *sb, float *c,
                         size_t ldc, int rows, int cols, const nn_tile_out *e, int r0) {
    __m256i acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int q = 0; q < kp; q++, a += MR, b += NR) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 8));
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const __m256i ai = _mm256_set1_epi32((int)a[r0 + i]);
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(ai, b0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(ai, b1));
        }
    }
    const __m256i m0 = lanes8(cols), m1 = lanes8(cols - 8);
    const __m256 s0 = _mm256_loadu_ps(sb), s1 = _mm256_loadu_ps(sb + 8), zero = _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
        if (i < rows) {
            float *ci = c + (size_t)i * ldc;
            const __m256 si = _mm256_set1_ps(sa[r0 + i]);
            __m256 v0 = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][0]), s0), si);
            __m256 v1 = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][1]), s1), si);
            if (e->add) {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
            }
            if (e->bias) {
                const __m256 bi = _mm256_set1_ps(e->bias[r0 + i]);
                v0 = _mm256_add_ps(v0, bi), v1 = _mm256_add_ps(v1, bi);
            }
            if (e->relu) v0 = _mm256_max_ps(v0, zero), v1 = _mm256_max_ps(v1, zero);
            _mm256_maskstore_ps(ci, m0, v0);
            _mm256_maskstore_ps(ci + 8, m1, v1);
        }
}

AVX2 static void gemm_columns(const nn_packed_gemm *g, void *scratch, int j0, int j1) {
    const nn_gemm_fuse *fuse = g->fuse;
    const uint32_t *a = g->a;
    const int m = g->m, k = g->k, kp = pairs(k), m_panels = (m + MR - 1) / MR, ldc = g->ldc;
    float *c = g->c;
    float *chunk = (float *)scratch, *col_scales = chunk + (size_t)k * CHUNK;
    uint32_t *words = (uint32_t *)(col_scales + CHUNK);
    const float *row_scales = (const float *)(a + (size_t)m_panels * MR * kp);
    for (int jc = j0; jc < j1; jc += CHUNK) {
        const int cols = j1 - jc < CHUNK ? j1 - jc : CHUNK;
        nn_pack_b_f32(NN_CPU_AVX2, chunk, k, g->b, g->ldb, jc, cols, fuse);
        quantize_chunk(words, col_scales, chunk, k, cols);
        for (int p = 0; p < m_panels; p++) {
            const nn_tile_out e = {.add = g->add, .relu = fuse && fuse->relu,
                                   .bias = fuse && fuse->bias ? fuse->bias + (size_t)p * MR : NULL};
            const int rows = m - p * MR < MR ? m - p * MR : MR;
            for (int v = 0; v * NR < cols; v++) {
                const int vc = cols - v * NR < NR ? cols - v * NR : NR;
                for (int r0 = 0; r0 < rows; r0 += 6)
                    for (int c0 = 0; c0 < vc; c0 += 16)
                        quarter(a + (size_t)p * kp * MR, words + (size_t)v * kp * NR + c0, kp, row_scales + (size_t)p * MR,
                                col_scales + v * NR + c0, c + (size_t)(p * MR + r0) * ldc + jc + v * NR + c0, (size_t)ldc,
                                rows - r0 < 6 ? rows - r0 : 6, vc - c0 < 16 ? vc - c0 : 16, &e, r0);
            }
        }
    }
}
#endif

void nn_gemm_i16(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta, float *c, int ldc,
                 uint32_t *scratch, int threads, const nn_gemm_fuse *fuse) {
#if VECTOR_PATHS
    const nn_packed_gemm g = {NN_CPU_AVX2, m, n, k, a_packed, b, ldb, beta != 0.0f, c, ldc, fuse};
    nn_gemm_split_columns(&g, scratch, nn_i16_scratch_words(k) * sizeof(uint32_t), threads, gemm_columns);
#else
    (void)m, (void)n, (void)k, (void)a_packed, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc, (void)scratch,
        (void)threads, (void)fuse;
#endif
}
