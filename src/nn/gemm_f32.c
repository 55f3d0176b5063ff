/* The float32 GEMM of the convolutions at the AVX2 and AVX-512 levels, on
 * our own register tile (tile.c) instead of OpenBLAS: A (the weights) is
 * packed in panels once per net; B is packed by the thread that multiplies
 * it, 128 columns at a time, into [panel][k][32] so the tile reads it
 * contiguously; the ReLU mask of B, or the im2col of the input itself, is
 * fused into that packing, and bias and ReLU into the store of C. Every
 * element is summed over all of k in order in one tile, so the result does
 * not depend on the thread count, and the speed does not depend on which
 * CPU OpenBLAS thinks it runs on (an OpenBLAS that does not know the CPU
 * falls back to SSE3 kernels: 2.7x slower here). */
#include <string.h>

#include "nn.h"
#include "vector.h"

enum { NR = NN_TILE_NR, MR = NN_TILE_MR, CHUNK_PANELS = 4 };

size_t nn_gemm_f32_scratch_floats(int k) { return (size_t)k * NR * CHUNK_PANELS; }

/* Bits bit .. bit+31 of a mask row (the row's bytes may end before). */
static inline uint32_t mask_bits32(const uint8_t *row, size_t bit, size_t row_bytes) {
    const size_t byte = bit >> 3;
    uint64_t v = 0;
    for (size_t i = 0; i < 5 && byte + i < row_bytes; i++) v |= (uint64_t)row[byte + i] << (8 * i);
    return (uint32_t)(v >> (bit & 7));
}

#if VECTOR_PATHS
/* n <= 32 floats of row where bits says so, zeros elsewhere, into out[32]. */
AVX512 static void masked32_avx512(float *out, const float *row, int n, uint32_t bits) {
    const uint32_t live = bits & (n >= 32 ? 0xFFFFFFFFu : (1u << n) - 1u);
    _mm512_storeu_ps(out, _mm512_maskz_loadu_ps((__mmask16)live, row));
    _mm512_storeu_ps(out + 16, _mm512_maskz_loadu_ps((__mmask16)(live >> 16), row + 16));
}

AVX2 static void masked32_avx2(float *out, const float *row, int n, uint32_t bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (int i = 0; i < 32; i += 8) {
        const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(bits >> i & 0xFF)), bit), bit);
        _mm256_storeu_ps(out + i, _mm256_maskload_ps(row + i, _mm256_and_si256(set, lanes8(n - i))));
    }
}
#endif

/* Row q of B, columns j0 .. j0+cols-1, into the chunk's panels; columns
 * whose mask bit is clear and columns past cols are zero. */
static void pack_row(nn_cpu_level cpu, float *dst, int k, int q, const float *row, int cols, const uint8_t *mask,
                     size_t bit0, size_t mask_row_bytes) {
    (void)cpu; /* read only by the vector paths, absent off x86-64 */
    const int panels = (cols + NR - 1) / NR;
    for (int v = 0; v < panels; v++) {
        float *out = dst + ((size_t)v * k + q) * NR;
        const int c0 = v * NR, n = cols - c0 < NR ? cols - c0 : NR;
        if (!mask) {
            memcpy(out, row + c0, sizeof(float) * (size_t)n);
            for (int i = n; i < NR; i++) out[i] = 0.0f;
            continue;
        }
        const uint32_t bits = mask_bits32(mask, bit0 + (size_t)c0, mask_row_bytes);
#if VECTOR_PATHS
        if (cpu >= NN_CPU_AVX512) {
            masked32_avx512(out, row + c0, n, bits);
            continue;
        }
        if (cpu >= NN_CPU_AVX2) {
            masked32_avx2(out, row + c0, n, bits);
            continue;
        }
#endif
        for (int i = 0; i < NR; i++) out[i] = i < n && bits >> i & 1 ? row[c0 + i] : 0.0f;
    }
}

/* Row q = (c, ky, kx) of the im2col of fuse->im2col_in under its window,
 * for output pixels from + j0 .. from + j0 + cols - 1, straight from the
 * input: runs along output rows, zero where the window leaves the plane. */
static void pack_im2col_row(float *dst, int k, int q, const nn_gemm_fuse *fuse, int j0, int cols) {
    const nn_window *s = fuse->im2col_win;
    const int khw = s->kh * s->kw, c = q / khw, ky = q % khw / s->kw, kx = q % s->kw;
    const float *plane = fuse->im2col_in + (size_t)c * s->h * s->w;
    size_t p = fuse->im2col_from + (size_t)j0;
    int oy = (int)(p / (size_t)s->ow), ox = (int)(p % (size_t)s->ow);
    for (int j = 0; j < cols;) {
        /* One run: to the end of the output row or of the panel. */
        const int panel_left = NR - j % NR, row_left = s->ow - ox;
        const int n = cols - j < panel_left ? cols - j : panel_left, run = n < row_left ? n : row_left;
        float *out = dst + ((size_t)(j / NR) * k + q) * NR + j % NR;
        const int iy = oy * s->sh - s->pad_t + ky;
        if (iy < 0 || iy >= s->h) {
            memset(out, 0, sizeof(float) * (size_t)run);
        } else {
            const float *src = plane + (size_t)iy * s->w;
            const int ix0 = ox * s->sw - s->pad_l + kx;
            /* Outputs [lo, hi) of the run read inside the row (the division
             * only ever sees non-negative numbers: C's truncates toward 0). */
            int lo = ix0 >= 0 ? 0 : (-ix0 + s->sw - 1) / s->sw;
            int hi = ix0 > s->w - 1 ? 0 : (s->w - 1 - ix0) / s->sw + 1;
            if (hi > run) hi = run;
            if (lo > run) lo = run;
            if (hi < lo) hi = lo;
            for (int i = 0; i < lo; i++) out[i] = 0.0f;
            if (s->sw == 1) memcpy(out + lo, src + ix0 + lo, sizeof(float) * (size_t)(hi - lo));
            else
                for (int i = lo; i < hi; i++) out[i] = src[ix0 + i * s->sw];
            for (int i = hi; i < run; i++) out[i] = 0.0f;
        }
        j += run, ox += run;
        if (ox == s->ow) ox = 0, oy++;
    }
    for (int j = cols; j % NR; j++) dst[((size_t)(j / NR) * k + q) * NR + j % NR] = 0.0f;
}

void nn_pack_b_f32(nn_cpu_level cpu, float *dst, int k, const float *b, int ldb, int jc, int cols,
                   const nn_gemm_fuse *fuse) {
    const uint8_t *mask = fuse ? fuse->b_mask : NULL;
    for (int q = 0; q < k; q++) {
        if (fuse && fuse->im2col_in) pack_im2col_row(dst, k, q, fuse, jc, cols);
        else
            pack_row(cpu, dst, k, q, b + (size_t)q * ldb + jc, cols, mask ? mask + (size_t)q * fuse->b_mask_row : NULL,
                     mask ? fuse->b_mask_from + (size_t)jc : 0, mask ? fuse->b_mask_row : 0);
    }
}

static void gemm_columns(const nn_packed_gemm *g, void *scratch_v, int j0, int j1) {
    const nn_gemm_fuse *fuse = g->fuse;
    const nn_tile_out out = {.add = g->add, .relu = fuse && fuse->relu};
    const float *bias = fuse ? fuse->bias : NULL, *a = g->a;
    float *scratch = scratch_v;
    const int m = g->m, k = g->k, m_panels = (m + MR - 1) / MR;
    for (int jc = j0; jc < j1; jc += NR * CHUNK_PANELS) {
        const int cols = j1 - jc < NR * CHUNK_PANELS ? j1 - jc : NR * CHUNK_PANELS;
        nn_pack_b_f32(g->cpu, scratch, k, g->b, g->ldb, jc, cols, fuse);
        for (int p = 0; p < m_panels; p++) {
            nn_tile_out e = out;
            e.bias = bias ? bias + (size_t)p * MR : NULL;
            const int rows = m - p * MR < MR ? m - p * MR : MR;
            for (int v = 0; v * NR < cols; v++)
                nn_tile(g->cpu, k, a + (size_t)p * k * MR, scratch + (size_t)v * k * NR, NR,
                        g->c + (size_t)p * MR * g->ldc + jc + v * NR, (size_t)g->ldc, rows,
                        cols - v * NR < NR ? cols - v * NR : NR, &e);
        }
    }
}

typedef struct split_job {
    const nn_packed_gemm *g;
    void *scratch;
    size_t scratch_bytes;
    nn_gemm_columns_fn *columns;
} split_job;

/* Whole panels of columns, top to bottom as the other loops split. */
static void split_panels(void *ctx, size_t p0, size_t p1, int worker) {
    const split_job *s = ctx;
    const int n = s->g->n, j0 = (int)p0 * NR, j1 = (int)p1 * NR < n ? (int)p1 * NR : n;
    if (j1 > j0) s->columns(s->g, (char *)s->scratch + (size_t)worker * s->scratch_bytes, j0, j1);
}

void nn_gemm_split_columns(const nn_packed_gemm *g, void *scratch, size_t scratch_bytes, int threads,
                           nn_gemm_columns_fn *columns) {
    const int panels = (g->n + NR - 1) / NR;
    if (threads > panels) threads = panels;
    if (threads < 1) threads = 1;
    split_job j = {g, scratch, scratch_bytes, columns};
    team_for(threads, (size_t)panels, split_panels, &j);
}

void nn_gemm_f32(nn_cpu_level cpu, int m, int n, int k, const float *a_panels, const float *b, int ldb, float beta,
                 float *c, int ldc, float *scratch, int threads, const nn_gemm_fuse *fuse) {
    const nn_packed_gemm g = {cpu, m, n, k, a_panels, b, ldb, beta != 0.0f, c, ldc, fuse};
    nn_gemm_split_columns(&g, scratch, nn_gemm_f32_scratch_floats(k) * sizeof(float), threads, gemm_columns);
}
