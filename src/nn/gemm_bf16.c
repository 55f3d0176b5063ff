/* The fast mode's GEMM: bfloat16 operands, float32 accumulation, on the
 * AVX512-BF16 dot-product instruction (VDPBF16PS: per float lane, acc +=
 * a0*b0 + a1*b1), which does twice the multiply-adds of a float32 FMA.
 *
 * Operands are packed as pairs along k, one 32-bit word per pair (first
 * element in the low half):
 *   A  panels of MR rows:        [m / MR][k / 2][MR]
 *   B  panels of NR columns:     [n / NR][k / 2][NR]   (per thread, per chunk)
 * so the kernel broadcasts one A word per row and loads NR B words per step.
 * A (the weights) is packed once per net; B is converted from float32 by the
 * thread that multiplies it, chunk by chunk, so it is read once from memory
 * and then from cache. Every column is summed over all of k in one pass, in
 * the same order whatever the thread count: results do not depend on it. */
#include <string.h>

#include "nn.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_BF16_KERNEL 1
#include <immintrin.h>
#else
#define HAVE_BF16_KERNEL 0
#endif

enum {
    MR = 12,             /* rows per A panel: 12 x 2 accumulators + 2 B vectors in 32 registers */
    NR = 32,             /* columns per B panel: two 16-float vectors */
    CHUNK_PANELS = 4,    /* B panels packed at a time by one thread */
};

/* Round to nearest even, as VCVTNEPS2BF16 does; NaN stays NaN. */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t nn_bf16_packed_a_words(int m, int k) {
    return (size_t)((m + MR - 1) / MR) * MR * (size_t)((k + 1) / 2);
}

void nn_bf16_pack_a(uint32_t *dst, const float *a, int m, int k, int trans_a) {
    const int kp = (k + 1) / 2, panels = (m + MR - 1) / MR;
    for (int p = 0; p < panels; p++)
        for (int q = 0; q < kp; q++)
            for (int r = 0; r < MR; r++) {
                const int row = p * MR + r;
                uint32_t word = 0;
                for (int h = 0; h < 2; h++) {
                    const int col = 2 * q + h;
                    if (row >= m || col >= k) continue;
                    const float v = trans_a ? a[(size_t)col * m + row] : a[(size_t)row * k + col];
                    word |= (uint32_t)to_bf16(v) << (16 * h);
                }
                dst[((size_t)p * kp + q) * MR + r] = word;
            }
}

size_t nn_bf16_scratch_words(int k) {
    return (size_t)((k + 1) / 2) * NR * CHUNK_PANELS;
}

#if HAVE_BF16_KERNEL
#define TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* Pairs of float rows (r, r + 1) -> bf16 words, for columns j0 .. j0+cols-1
 * of b, into CHUNK_PANELS panels; columns past cols and a missing odd last
 * row are zero. */
/* Bits bit .. bit+15 of a mask row of row_bytes bytes (zero past its end). */
static inline uint32_t mask_bits16(const uint8_t *row, size_t bit, size_t row_bytes) {
    const size_t byte = bit >> 3;
    uint32_t v = 0;
    for (size_t i = 0; i < 3 && byte + i < row_bytes; i++) v |= (uint32_t)row[byte + i] << (8 * i);
    return (v >> (bit & 7)) & 0xffffu;
}

/* 16 words of k-pairs from two rows' 16 columns: VCVTNE2PS2BF16 puts hi's
 * halves above lo's, and the permute interleaves them into (lo, hi) pairs. */
TARGET static inline void store_pairs(uint32_t *out, __m512 lo, __m512 hi) {
    static const uint16_t pairs[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    _mm512_storeu_si512(out, _mm512_permutexvar_epi16(_mm512_loadu_si512(pairs), both));
}

TARGET static void pack_b(uint32_t *dst, const float *b, int ldb, int k, int j0, int cols,
                          const nn_gemm_fuse *fuse) {
    const uint8_t *bm = fuse ? fuse->b_mask : NULL;
    const int kp = (k + 1) / 2;
    const int vectors = (cols + 15) / 16, padded = (cols + NR - 1) / NR * (NR / 16);
    /* Row pair by row pair, so each row's columns are read once, in order. */
    for (int q = 0; q < kp; q++) {
        const float *r0 = b + (size_t)(2 * q) * ldb + j0;
        const int has_hi = 2 * q + 1 < k;
        for (int v = 0; v < padded; v++) {
            uint32_t *out = dst + (size_t)(v / (NR / 16)) * kp * NR + (size_t)q * NR + (v % (NR / 16)) * 16;
            if (v >= vectors) { /* columns past cols: zero */
                _mm512_storeu_si512(out, _mm512_setzero_si512());
                continue;
            }
            const int c0 = v * 16, n = cols - c0 < 16 ? cols - c0 : 16;
            const __mmask16 mask = (__mmask16)((1u << n) - 1u);
            __mmask16 m_lo = mask, m_hi = has_hi ? mask : 0;
            if (bm) {
                const size_t bit = fuse->b_mask_from + (size_t)j0 + (size_t)c0;
                m_lo &= (__mmask16)mask_bits16(bm + (size_t)(2 * q) * fuse->b_mask_row, bit, fuse->b_mask_row);
                if (m_hi)
                    m_hi &= (__mmask16)mask_bits16(bm + (size_t)(2 * q + 1) * fuse->b_mask_row, bit,
                                                   fuse->b_mask_row);
            }
            store_pairs(out, _mm512_maskz_loadu_ps(m_lo, r0 + c0), _mm512_maskz_loadu_ps(m_hi, r0 + ldb + c0));
        }
    }
}

/* Lanes [l0, l1) of one input row segment: lane l reads x0 + l of row iy of
 * plane, zero outside the plane; merged into v. */
TARGET static inline __m512 row_segment(__m512 v, const float *plane, const nn_window *s, int iy, int x0,
                                        int l0, int l1) {
    if (iy < 0 || iy >= s->h) return v;
    int lo = l0 > -x0 ? l0 : -x0, hi = l1 < s->w - x0 ? l1 : s->w - x0;
    if (hi <= lo) return v;
    const __mmask16 m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    /* Lane l's address is row + x0 + l; lanes below lo are masked and never
     * read, so the base may lie before the row: computed as an integer. */
    const uintptr_t base = (uintptr_t)(plane + (size_t)iy * s->w) + (uintptr_t)((intptr_t)x0 * 4);
    return _mm512_mask_loadu_ps(v, m, (const void *)base);
}

/* pack_b for B = the im2col of a stride-1 window (fuse->im2col_*), read
 * straight from the input: no im2col band in memory. Row r of B is
 * (c, ky, kx); a vector of 16 columns spans at most two output rows (the
 * caller makes sure ow >= 16). */
TARGET static void pack_b_im2col(uint32_t *dst, const nn_gemm_fuse *fuse, int k, int j0, int cols) {
    const nn_window *s = fuse->im2col_win;
    const int kp = (k + 1) / 2, khw = s->kh * s->kw;
    const int vectors = (cols + 15) / 16, padded = (cols + NR - 1) / NR * (NR / 16);
    int oy[CHUNK_PANELS * NR / 16], ox[CHUNK_PANELS * NR / 16], n[CHUNK_PANELS * NR / 16],
        split[CHUNK_PANELS * NR / 16];
    for (int v = 0; v < vectors; v++) {
        const size_t p = fuse->im2col_from + (size_t)j0 + (size_t)v * 16;
        oy[v] = (int)(p / (size_t)s->ow), ox[v] = (int)(p % (size_t)s->ow);
        n[v] = cols - v * 16 < 16 ? cols - v * 16 : 16;
        split[v] = s->ow - ox[v] < n[v] ? s->ow - ox[v] : n[v];
    }
    for (int q = 0; q < kp; q++) {
        for (int v = 0; v < padded; v++) {
            uint32_t *out = dst + (size_t)(v / (NR / 16)) * kp * NR + (size_t)q * NR + (v % (NR / 16)) * 16;
            if (v >= vectors) {
                _mm512_storeu_si512(out, _mm512_setzero_si512());
                continue;
            }
            __m512 half[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int h = 0; h < 2; h++) {
                const int r = 2 * q + h;
                if (r >= k) break;
                const int c = r / khw, ky = r % khw / s->kw, kx = r % s->kw;
                const float *plane = fuse->im2col_in + (size_t)c * s->h * s->w;
                /* lanes [0, split) on output row oy from ox; the rest on the next row from 0 */
                half[h] = row_segment(half[h], plane, s, oy[v] - s->pad_t + ky, ox[v] - s->pad_l + kx, 0, split[v]);
                if (split[v] < n[v])
                    half[h] = row_segment(half[h], plane, s, oy[v] + 1 - s->pad_t + ky, -split[v] - s->pad_l + kx,
                                          split[v], n[v]);
            }
            store_pairs(out, half[0], half[1]);
        }
    }
}

/* C[rows x cols] (= or +=) A panel x B panel over kp pairs. */
TARGET static void kernel(const uint32_t *a, const uint32_t *b, int kp, float *c, int ldc, int rows,
                          int cols, int add, const float *bias, int relu) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int q = 0; q < kp; q++, a += MR, b += NR) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
    }
    const __mmask16 m0 = (__mmask16)(cols >= 16 ? 0xffffu : (1u << cols) - 1u);
    const __mmask16 m1 = (__mmask16)(cols >= 32 ? 0xffffu : cols > 16 ? (1u << (cols - 16)) - 1u : 0u);
    for (int r = 0; r < rows; r++, c += ldc) {
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (add) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        }
        if (bias) {
            const __m512 br = _mm512_set1_ps(bias[r]);
            v0 = _mm512_add_ps(v0, br), v1 = _mm512_add_ps(v1, br);
        }
        if (relu) { /* max(NaN, 0) is 0, as the float32 path's v > 0 test */
            v0 = _mm512_max_ps(v0, _mm512_setzero_ps()), v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

TARGET static void gemm_columns(const nn_packed_gemm *g, void *scratch_v, int j0, int j1) {
    const nn_gemm_fuse *fuse = g->fuse;
    const uint32_t *a = g->a;
    uint32_t *scratch = scratch_v;
    float *c = g->c;
    const int m = g->m, k = g->k, ldc = g->ldc, add = g->add;
    const float *bias = fuse ? fuse->bias : NULL;
    const int relu = fuse ? fuse->relu : 0;
    const int kp = (k + 1) / 2, m_panels = (m + MR - 1) / MR;
    for (int jc = j0; jc < j1; jc += NR * CHUNK_PANELS) {
        const int cols = j1 - jc < NR * CHUNK_PANELS ? j1 - jc : NR * CHUNK_PANELS;
        if (fuse && fuse->im2col_in) pack_b_im2col(scratch, fuse, k, jc, cols);
        else pack_b(scratch, g->b, g->ldb, k, jc, cols, fuse);
        for (int p = 0; p < m_panels; p++) {
            const int rows = m - p * MR < MR ? m - p * MR : MR;
            for (int q = 0; q * NR < cols; q++)
                kernel(a + (size_t)p * kp * MR, scratch + (size_t)q * kp * NR, kp,
                       c + (size_t)p * MR * ldc + jc + q * NR, ldc, rows,
                       cols - q * NR < NR ? cols - q * NR : NR, add, bias ? bias + p * MR : NULL, relu);
        }
    }
}
#endif

void nn_gemm_bf16(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta,
                  float *c, int ldc, uint32_t *scratch, int threads) {
    nn_gemm_bf16_fused(m, n, k, a_packed, b, ldb, beta, c, ldc, scratch, threads, NULL);
}

void nn_gemm_bf16_fused(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta,
                        float *c, int ldc, uint32_t *scratch, int threads, const nn_gemm_fuse *fuse) {
#if HAVE_BF16_KERNEL
    const nn_packed_gemm g = {NN_CPU_AVX512BF16, m, n, k, a_packed, b, ldb, beta != 0.0f, c, ldc, fuse};
    nn_gemm_split_columns(&g, scratch, nn_bf16_scratch_words(k) * sizeof(uint32_t), threads, gemm_columns);
#else
    (void)m, (void)n, (void)k, (void)a_packed, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc,
        (void)scratch, (void)threads, (void)fuse;
#endif
}
