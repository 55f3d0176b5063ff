/* Kernels over raw float planes (one image, NCHW with N = 1): convolution
 * and pooling, each forward beside its backward to the input. */
#ifndef DD_NN_H
#define DD_NN_H

#include <stddef.h>
#include <stdint.h>

#include "util/team.h"

/* Worker `worker` of `workers` in a region (team_run): its share [*from,
 * *to) of units, contiguous and in worker order (top to bottom of a plane
 * when units are rows or columns). The split follows the worker count, so
 * each unit must be computed whole by whoever takes it: no sum's order may
 * depend on the split. */
static inline void nn_thread_share(size_t units, int worker, int workers, size_t *from, size_t *to) {
    *from = units * (size_t)worker / (size_t)workers, *to = units * (size_t)(worker + 1) / (size_t)workers;
}

/* A sliding window over an H x W plane. Its padding is either TensorFlow's
 * 'same' ('valid' is none): ceil(H / stride) outputs and pad_total =
 * max((OH-1)*stride + K - H, 0), the odd pixel going bottom/right (pad_t =
 * pad_total / 2); or explicit, PyTorch's: any pads on each side, and with
 * ceil_mode a last partial window that starts inside the input or its
 * leading padding. Kernels read only pad_t, pad_l and the output size:
 * whatever a window covers outside the H x W plane is padding. */
typedef struct nn_window {
    int h, w;         /* input plane                        */
    int kh, kw;       /* window                             */
    int sh, sw;       /* strides                            */
    int pad_t, pad_l; /* leading padding                    */
    int pad_b, pad_r; /* trailing padding (average pooling's divisor) */
    int oh, ow;       /* output plane                       */
    int count_pad;    /* average pooling divides by the window's pixels,
                       * padding included (PyTorch's count_include_pad),
                       * else by its real pixels only (TensorFlow's)   */
} nn_window;

/* Outputs along one axis of n pixels for a window of k, stride s, pads
 * lead and trail (PyTorch's rule, ceil_mode too); 0 when no window fits. */
int nn_window_axis(int n, int k, int s, int lead, int trail, int ceil_mode);

/* Fills pads and output size; returns 0 when the input is smaller than the
 * window allows (no output pixel). */
int nn_window_plan(nn_window *win, int h, int w, int kh, int kw, int sh, int sw,
                   int same_padding);
/* The same with explicit pads {top, bottom, left, right}. */
int nn_window_plan_padded(nn_window *win, int h, int w, int kh, int kw, int sh, int sw, const int pad[4],
                          int ceil_mode);

/* C (m x n, row stride ldc) = op(A) B + beta C, op(A) = A (m x k) or, with
 * trans_a, A^T for A (k x m); row-major. Split by columns over threads; the
 * result does not depend on the thread count. */
void nn_gemm(int trans_a, int m, int n, int k, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc, int threads);
/* The same as one single-threaded OpenBLAS call; between nn_blas_hold and
 * nn_blas_release (a threaded BLAS would split it by its own count). */
void nn_sgemm_serial(int trans_a, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc);
/* Around a parallel region whose tasks call the BLAS: a pthreads BLAS held
 * to one thread (process-wide), then given back the count hold returned. */
int nn_blas_hold(void);
void nn_blas_release(int held);

/* ---- the CPU's vector level (src/nn/cpu.c) --------------------------------
 * The kernels run at nn_cpu(): what the CPU has, capped by the environment
 * variable DD_CPU (plain, avx2, avx512, avx512bf16) and by nn_cpu_cap. Each
 * level has its own kernels for everything the level above it vectorizes;
 * plain is portable C (and OpenBLAS). A level only ever lowers. */
typedef enum nn_cpu_level {
    NN_CPU_PLAIN, NN_CPU_AVX2, NN_CPU_AVX512, NN_CPU_AVX512BF16, NN_CPU_LEVELS
} nn_cpu_level;
nn_cpu_level nn_cpu(void);
nn_cpu_level nn_cpu_detected(void);
const char *nn_cpu_name(nn_cpu_level level);
int nn_cpu_parse(const char *name, nn_cpu_level *out); /* 1 if name is a level's */
/* Tests: run at most cap (NN_CPU_LEVELS lifts it). A net keeps the level it
 * was planned at; the other kernels read it per call, so change it only
 * while nothing runs. */
void nn_cpu_cap(nn_cpu_level cap);

/* The fast mode's products at a level (none: fast mode runs float32, as
 * exact does), chosen per CPU by measured speed (src/nn/cpu.c). Tests may
 * force a kind (-1 restores the choice); a kind the level lacks is none. */
typedef enum nn_fast_kind { NN_FAST_NONE, NN_FAST_INT16, NN_FAST_BF16 } nn_fast_kind;
nn_fast_kind nn_cpu_fast(nn_cpu_level level);
void nn_cpu_force_fast(int kind);

/* ---- the float32 register tile (src/nn/tile.c) ----------------------------
 * A packed in panels of NN_TILE_MR rows: panel p holds rows 12p .. 12p+11,
 * each of its k columns as 12 consecutive floats, rows past m zero.
 * nn_tile: c (rows x cols, at most 12 x 32, row stride ldc) = the panel a
 * times kdim rows of b (row stride ldb), then + c (add), + bias[row], ReLU.
 * Every sum runs over kdim in order, with FMA at the vector levels (AVX2
 * and AVX-512 give the same bits), so a tile's bits do not depend on where
 * it lies or how the GEMM around it is cut. */
enum { NN_TILE_MR = 12, NN_TILE_NR = 32 };
typedef struct nn_tile_out {
    int add;
    const float *bias; /* bias[0 .. rows) for the tile's rows, or NULL */
    int relu;
} nn_tile_out;
size_t nn_tile_panels_floats(int m, int k);
/* op(A) is m x k; with trans_a, a is stored k x m. */
void nn_tile_pack(float *dst, const float *a, int m, int k, int trans_a);
void nn_tile(nn_cpu_level cpu, int kdim, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int rows,
             int cols, const nn_tile_out *e);
/* c (m x n) = A b for A in panels, tile by tile. */
void nn_tile_gemm(nn_cpu_level cpu, int m, int n, int kdim, const float *a, const float *b, size_t ldb, float *c,
                  size_t ldc);

/* ---- bfloat16 GEMM (fast mode) -------------------------------------------
 * The same product with A and B rounded to bfloat16 and float32 sums, on
 * AVX512-BF16. A is packed once by nn_bf16_pack_a (op(A) is m x k; with
 * trans_a, a is stored k x m). B is float32, k x n with row stride ldb.
 * beta is 0 (C = AB) or 1 (C += AB). scratch: threads x
 * nn_bf16_scratch_words(k) words. Only call at NN_CPU_AVX512BF16. */
size_t nn_bf16_packed_a_words(int m, int k);
void nn_bf16_pack_a(uint32_t *dst, const float *a, int m, int k, int trans_a);
size_t nn_bf16_scratch_words(int k);
void nn_gemm_bf16(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta,
                  float *c, int ldc, uint32_t *scratch, int threads);

/* Work fused into nn_gemm_bf16's and nn_gemm_f32's passes over B and C. */
typedef struct nn_gemm_fuse {
    const float *bias;     /* C row r += bias[r] after the product (or NULL) */
    int relu;              /* then C = max(C, 0)                           */
    const uint8_t *b_mask; /* B (r, j) counts as 0 unless bit b_mask_from + j
                            * of mask row r (b_mask_row bytes each) is set  */
    size_t b_mask_row, b_mask_from;
    const float *im2col_in;      /* or B is the im2col of this (C, H, W) input */
    const nn_window *im2col_win; /* under this window, B's column j; stride 1 for bf16 */
    size_t im2col_from;          /* being output pixel im2col_from + j; b unused */
} nn_gemm_fuse;
void nn_gemm_bf16_fused(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta,
                        float *c, int ldc, uint32_t *scratch, int threads, const nn_gemm_fuse *fuse);

/* ---- the packed GEMMs' column split (src/nn/gemm_f32.c) --------------------
 * One call of a GEMM whose B is packed chunk by chunk by the thread that
 * multiplies it (gemm_f32, gemm_i16, gemm_bf16). */
typedef struct nn_packed_gemm {
    nn_cpu_level cpu;
    int m, n, k;
    const void *a;             /* A, packed for the kernel       */
    const float *b;            /* B, k x n, row stride ldb (or the im2col of fuse) */
    int ldb, add;              /* add: C += A B, else C = A B      */
    float *c;
    int ldc;
    const nn_gemm_fuse *fuse;  /* or NULL */
} nn_packed_gemm;
/* Columns [j0, j1) of g, with this thread's scratch. */
typedef void nn_gemm_columns_fn(const nn_packed_gemm *g, void *scratch, int j0, int j1);
/* Threads (at most one per panel) take whole panels of NN_TILE_NR columns,
 * top to bottom, each with scratch_bytes of scratch from scratch. Every
 * column is summed over all of k by one thread: no bit follows the split. */
void nn_gemm_split_columns(const nn_packed_gemm *g, void *scratch, size_t scratch_bytes, int threads,
                           nn_gemm_columns_fn *columns);

/* ---- float32 GEMM on the register tile (src/nn/gemm_f32.c), AVX2 and up --
 * C (m x n) = A B (beta 0) or C += A B (beta 1), A packed by nn_tile_pack
 * (op(A) is m x k), B float32 k x n with row stride ldb, or the im2col of
 * fuse->im2col_in under any window. scratch: threads x
 * nn_gemm_f32_scratch_floats(k) floats. Bits independent of threads. */
size_t nn_gemm_f32_scratch_floats(int k);
/* B's columns jc .. jc+cols-1 (cols <= 128), as nn_gemm_f32 packs them:
 * [ceil(cols / 32) panels][k][32] floats, masked or from the im2col as fuse says,
 * zero past cols. */
void nn_pack_b_f32(nn_cpu_level cpu, float *dst, int k, const float *b, int ldb, int jc, int cols,
                   const nn_gemm_fuse *fuse);
void nn_gemm_f32(nn_cpu_level cpu, int m, int n, int k, const float *a_panels, const float *b, int ldb, float beta,
                 float *c, int ldc, float *scratch, int threads, const nn_gemm_fuse *fuse);

/* ---- 16-bit integer GEMM (src/nn/gemm_i16.c): the fast mode on AVX2 -------
 * The same product as nn_gemm_bf16 with A quantized per row and B per
 * column to 16-bit integers, exact int32 sums, at NN_CPU_AVX2 and up. A
 * packed once by nn_i16_pack_a; scratch threads x nn_i16_scratch_words(k). */
size_t nn_i16_packed_a_words(int m, int k);
void nn_i16_pack_a(uint32_t *dst, const float *a, int m, int k, int trans_a);
size_t nn_i16_scratch_words(int k);
void nn_gemm_i16(int m, int n, int k, const uint32_t *a_packed, const float *b, int ldb, float beta, float *c, int ldc,
                 uint32_t *scratch, int threads, const nn_gemm_fuse *fuse);

/* How a convolution runs one way, chosen when its net is planned. */
typedef enum nn_conv_path {
    NN_CONV_SGEMM,    /* im2col bands (none for 1x1 stride 1) + OpenBLAS sgemm */
    NN_CONV_TILE,     /* float32 on our register tile, im2col fused (AVX2 and up) */
    NN_CONV_BF16,     /* bfloat16 products (fast mode, AVX512-BF16)            */
    NN_CONV_WINOGRAD, /* F(4x4, 3x3) float32, 3x3 stride 1 only                */
    NN_CONV_I16,      /* 16-bit integer products (fast mode, AVX2 and up)      */
    NN_CONV_PATHS
} nn_conv_path;
const char *nn_conv_path_name(nn_conv_path path);

/* A convolution's weights packed for its paths: w as K x (C KH KW) for the
 * forward pass and its transpose for the backward one, in bfloat16 pairs
 * (NN_CONV_BF16) or float32 tile panels (NN_CONV_TILE); the transformed
 * weights of Winograd F(4x4,3x3) for either direction; the threads' B
 * scratch of the GEMMs. */
typedef struct nn_conv_packed {
    const uint32_t *w, *wt;             /* bfloat16, or int16 (NN_CONV_I16) */
    const float *tile_w, *tile_wt;      /* float32 panels */
    void *scratch;                      /* threads x the larger GEMM scratch */
    const float *winograd, *winograd_t; /* forward, backward */
    size_t col_floats;                  /* floats of the col scratch, for Winograd */
} nn_conv_packed;

/* ---- convolution (BN folded into w and b), optional fused ReLU ------------
 * in   (C, H, W)        w (K, C, KH, KW)        b (K) or NULL
 * out  (K, OH, OW)      relu_mask: K planes of nn_mask_bytes(OH*OW) bytes, one
 *                       bit per output (1 = positive), or NULL for no ReLU
 * col  scratch of nn_conv_col_floats() floats, built band by band         */
typedef struct nn_conv {
    int c, k;
    nn_window win;
    int band_rows; /* output rows per im2col band (bounded scratch) */
    nn_cpu_level cpu; /* the level its weights were packed for and its kernels run at */
    nn_conv_path forward, backward; /* set by nn_conv_set_paths */
    int forward_from_input; /* the forward GEMM packs B from the input: no im2col band */
    const nn_conv_packed *packed; /* NN_CONV_SGEMM needs none */
} nn_conv;

/* How cv runs each way; decides whether the forward GEMM reads its B
 * straight from the input (the tile, any window; bfloat16, stride 1 and
 * rows of 16 or more, where its packer's vectors cross at most two rows). */
void nn_conv_set_paths(nn_conv *cv, nn_conv_path forward, nn_conv_path backward);

/* The packed weights of cv's paths (cv->forward, cv->backward, cv->cpu):
 * nn_conv_pack_words(cv) words at dst, p's fields pointed at them. The
 * paths' GEMMs also need threads x nn_conv_scratch_words(cv) words in
 * p->scratch, and Winograd p->col_floats of col scratch. */
size_t nn_conv_pack_words(const nn_conv *cv);
size_t nn_conv_scratch_words(const nn_conv *cv);
void nn_conv_pack(nn_conv_packed *p, uint32_t *dst, const float *w, const nn_conv *cv);

/* Sizes the im2col band so that the band holds about col_budget floats. */
void nn_conv_plan_bands(nn_conv *cv, size_t col_budget);
int nn_conv_is_pointwise(const nn_conv *cv);
size_t nn_conv_col_floats(const nn_conv *cv);
double nn_conv_flops(const nn_conv *cv); /* the direct convolution's */
/* The products and sums cv's path runs one way (2 per multiply-add):
 * Winograd's are its GEMMs', 36 per 4x4 block and channel pair; its
 * transforms' additions are not counted. */
double nn_conv_path_flops(const nn_conv *cv, int backward);
static inline size_t nn_mask_bytes(size_t n) { return (n + 7) / 8; }

void nn_conv_forward(float *out, uint8_t *relu_mask, const float *in,
                     const float *w, const float *b, const nn_conv *cv,
                     float *col, int threads);

/* din += d out / d in. dout is masked by relu_mask in place (it is dead after
 * this call). */
void nn_conv_backward_input(float *din, float *dout, const uint8_t *relu_mask,
                            const float *w, const nn_conv *cv, float *col,
                            int threads);

/* Mask bits of outputs [from, from+count) of each of k planes: set where
 * the (ReLU'd) output is positive. */
void nn_relu_mask_from_output(const float *out, uint8_t *mask, int k, size_t plane, size_t from,
                              size_t count, int threads);

/* Winograd F(4x4, 3x3) in float32 for 3x3 stride-1 convolutions
 * (src/nn/winograd.c). u: nn_winograd_weight_floats() floats from
 * nn_winograd_pack (forward) or nn_winograd_pack_backward. The backward
 * adds d out / d in to din for dout already masked by the ReLU. Both
 * return 0, having done nothing, when the convolution is not 3x3 stride 1
 * or one block row per thread (nn_winograd_row_floats) does not fit in
 * scratch_floats. With nn_winograd_scratch_floats or more, the results
 * are the same bits for any number of threads. */
int nn_winograd_applies(const nn_conv *cv);
size_t nn_winograd_weight_floats(const nn_conv *cv);
size_t nn_winograd_row_floats(const nn_conv *cv, int backward, int threads);
size_t nn_winograd_scratch_floats(const nn_conv *cv, int backward, int threads);
void nn_winograd_pack(float *u, const float *w, const nn_conv *cv);
void nn_winograd_pack_backward(float *u, const float *w, const nn_conv *cv);
int nn_conv_forward_winograd(float *out, uint8_t *relu_mask, const float *in, const float *u,
                             const float *bias, const nn_conv *cv, float *scratch, size_t scratch_floats,
                             int threads);
int nn_conv_backward_winograd(float *din, const float *dout, const float *u_backward, const nn_conv *cv,
                              float *scratch, size_t scratch_floats, int threads);

/* Direct loops in double, for tests. */
void nn_conv_forward_ref(float *out, const float *in, const float *w,
                         const float *b, int relu, const nn_conv *cv);

/* ---- pooling ---------------------------------------------------------------
 * in (C, H, W) -> out (C, OH, OW). Max pooling ignores padded pixels and keeps
 * argmax (C, OH, OW): the index ky*KW+kx of the winner in its window (every
 * window must hold a real pixel). Average pooling divides as win->count_pad
 * says. The backward passes accumulate: din += ... */
void nn_maxpool_forward(float *out, uint8_t *argmax, const float *in, int c,
                        const nn_window *win, int threads);
void nn_maxpool_backward(float *din, const float *dout, const uint8_t *argmax,
                         int c, const nn_window *win, int threads);
void nn_avgpool_forward(float *out, const float *in, int c,
                        const nn_window *win, int threads);
void nn_avgpool_backward(float *din, const float *dout, int c,
                         const nn_window *win, int threads);

/* ---- elementwise ---------------------------------------------------------- */
/* out = max(in, 0), mask bits as for convolution; n elements per plane. */
void nn_relu_forward(float *out, uint8_t *mask, const float *in, int planes,
                     size_t n, int threads);
/* din += dout where the mask bit is set. */
void nn_relu_backward(float *din, const float *dout, const uint8_t *mask,
                      int planes, size_t n, int threads);
/* The same into a din not yet written: din = dout where the bit is set, else 0. */
void nn_relu_backward_set(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int threads);
/* g = 0 where the mask bit is clear: the gradient through a ReLU, in place. */
void nn_relu_mask_apply(float *g, const uint8_t *mask, int planes, size_t n, int threads);
/* out = in[0] + ... + in[n_in - 1], planes of n floats each, summed in that
 * order (out may be one of the inputs), then with mask a ReLU keeping its
 * bits as nn_relu_forward does. Its backward passes the gradient to every
 * input unchanged (through the mask: nn_relu_backward). */
void nn_add_forward(float *out, uint8_t *mask, const float *const *in, int n_in, int planes, size_t n,
                    int threads);

/* ---- guide matching (src/nn/match.c) ---------------------------------------
 * x: c planes of positions floats (a layer's value), y: c planes of n floats
 * (the guide's value at that layer). For every position i, argmax[i] = the j
 * with the largest <x_i, y_j> (the first of equals) and best[i] that dot
 * product. The products are GEMMs of rows x n through scores (rows x n
 * floats), so the bits do not depend on the thread count. */
void nn_match(const float *x, size_t positions, int c, const float *y, int n, float *scores, int rows,
              int *argmax, float *best, int threads);
/* g (c planes of positions) += weight * y[argmax[i]] at every position. */
void nn_match_backward(float *g, size_t positions, int c, const float *y, int n, const int *argmax, float weight,
                       int threads);

#endif
