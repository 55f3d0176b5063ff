/* Convolution as OpenBLAS sgemm over an im2col band of output rows, forward
 * with fused bias + ReLU (keeping one mask bit per output), and backward to
 * the input as W^T x dY followed by col2im. 1x1 stride-1 convolutions use the
 * input plane directly as the GEMM operand. */
#include <math.h>
#include <string.h>

#include "nn.h"
#include "vector.h"

int nn_window_axis(int n, int k, int s, int lead, int trail, int ceil_mode) {
    const long span = (long)n + lead + trail - k;
    if (span < 0) return 0;
    long out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* PyTorch drops a last window that would start in the trailing padding. */
    if (ceil_mode && (out - 1) * s >= (long)n + lead) out--;
    return out > 0 ? (int)out : 0;
}

int nn_window_plan_padded(nn_window *win, int h, int w, int kh, int kw, int sh, int sw, const int pad[4],
                          int ceil_mode) {
    *win = (nn_window){.h = h, .w = w, .kh = kh, .kw = kw, .sh = sh, .sw = sw,
                       .pad_t = pad[0], .pad_b = pad[1], .pad_l = pad[2], .pad_r = pad[3]};
    win->oh = nn_window_axis(h, kh, sh, pad[0], pad[1], ceil_mode);
    win->ow = nn_window_axis(w, kw, sw, pad[2], pad[3], ceil_mode);
    return win->oh > 0 && win->ow > 0;
}

int nn_window_plan(nn_window *win, int h, int w, int kh, int kw, int sh, int sw,
                   int same_padding) {
    int pad[4] = {0, 0, 0, 0};
    if (same_padding) {
        const int pad_h = ((h + sh - 1) / sh - 1) * sh + kh - h;
        const int pad_w = ((w + sw - 1) / sw - 1) * sw + kw - w;
        if (pad_h > 0) pad[0] = pad_h / 2, pad[1] = pad_h - pad_h / 2;
        if (pad_w > 0) pad[2] = pad_w / 2, pad[3] = pad_w - pad_w / 2;
    }
    return nn_window_plan_padded(win, h, w, kh, kw, sh, sw, pad, 0);
}

int nn_conv_is_pointwise(const nn_conv *cv) {
    const nn_window *s = &cv->win;
    /* The input is then the GEMM's operand as it lies: no padding, the
     * output plane the input's (a padded 1x1 runs im2col like any other). */
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && !s->pad_t && !s->pad_b && !s->pad_l && !s->pad_r;
}

void nn_conv_plan_bands(nn_conv *cv, size_t col_budget) {
    size_t row = (size_t)cv->c * cv->win.kh * cv->win.kw * cv->win.ow;
    size_t rows = row ? col_budget / row : 1;
    if (rows < 1) rows = 1;
    if (rows > (size_t)cv->win.oh) rows = (size_t)cv->win.oh;
    cv->band_rows = (int)rows;
}

size_t nn_conv_col_floats(const nn_conv *cv) {
    if (nn_conv_is_pointwise(cv)) return 0;
    return (size_t)cv->c * cv->win.kh * cv->win.kw * cv->band_rows * cv->win.ow;
}

double nn_conv_flops(const nn_conv *cv) {
    return 2.0 * cv->k * cv->c * cv->win.kh * cv->win.kw * cv->win.oh * cv->win.ow;
}

double nn_conv_path_flops(const nn_conv *cv, int backward) {
    const nn_window *s = &cv->win;
    if ((backward ? cv->backward : cv->forward) != NN_CONV_WINOGRAD) return nn_conv_flops(cv);
    const double h = backward ? s->h : s->oh, w = backward ? s->w : s->ow;
    return 2.0 * 36 * cv->k * cv->c * ceil(h / 4) * ceil(w / 4);
}

/* What the loops below read, each unpacked into the names its body uses. */
typedef struct conv_job {
    float *col, *out;
    const float *in, *b;
    uint8_t *mask;
    const uint8_t *cmask;
    const nn_conv *cv;
    int oy0, rows, k, has_mask;
    size_t n, plane, from, count, end, mask_plane;
    nn_cpu_level cpu;
} conv_job;

static void im2col_rows(void *ctx, size_t r_from, size_t r_to, int worker) {
    const conv_job *j = ctx;
    const nn_conv *cv = j->cv;
    const nn_window *s = &cv->win;
    float *col = j->col;
    const float *in = j->in;
    const int oy0 = j->oy0, rows = j->rows;
    const size_t n = j->n;
    (void)worker;
    for (int r = (int)r_from; r < (int)r_to; r++) {
        const int kx = r % s->kw, ky = (r / s->kw) % s->kh, c = r / (s->kw * s->kh);
        const float *plane = in + (size_t)c * s->h * s->w;
        float *dst = col + (size_t)r * n;
        /* Output columns whose input column lies inside the plane. */
        int x_lo = 0, x_hi = s->ow;
        while (x_lo < s->ow && x_lo * s->sw - s->pad_l + kx < 0) x_lo++;
        while (x_hi > x_lo && (x_hi - 1) * s->sw - s->pad_l + kx >= s->w) x_hi--;
        for (int i = 0; i < rows; i++, dst += s->ow) {
            const int iy = (oy0 + i) * s->sh - s->pad_t + ky;
            if (iy < 0 || iy >= s->h) {
                memset(dst, 0, sizeof *dst * s->ow);
                continue;
            }
            const float *src = plane + (size_t)iy * s->w - s->pad_l + kx;
            for (int x = 0; x < x_lo; x++) dst[x] = 0.0f;
            if (s->sw == 1) {
                memcpy(dst + x_lo, src + x_lo, sizeof *dst * (size_t)(x_hi - x_lo));
            } else {
                for (int x = x_lo; x < x_hi; x++) dst[x] = src[(size_t)x * s->sw];
            }
            for (int x = x_hi; x < s->ow; x++) dst[x] = 0.0f;
        }
    }
}

/* col (C*KH*KW, rows*OW) <- input patches for output rows oy0 .. oy0+rows-1. */
static void im2col(float *col, const float *in, const nn_conv *cv, int oy0,
                   int rows, int threads) {
    const nn_window *s = &cv->win;
    const int n_rows = cv->c * s->kh * s->kw;
    const size_t n = (size_t)rows * s->ow;
    conv_job j = {.col = col, .in = in, .cv = cv, .oy0 = oy0, .rows = rows, .n = n};
    team_for(threads, (size_t)n_rows, im2col_rows, &j);
}

static void col2im_planes(void *ctx, size_t c_from, size_t c_to, int worker) {
    const conv_job *j = ctx;
    const nn_conv *cv = j->cv;
    const nn_window *s = &cv->win;
    float *din = j->out;
    const float *col = j->in;
    const int oy0 = j->oy0, rows = j->rows;
    const size_t n = j->n;
    (void)worker;
    for (int c = (int)c_from; c < (int)c_to; c++) {
        float *plane = din + (size_t)c * s->h * s->w;
        for (int ky = 0; ky < s->kh; ky++) {
            for (int kx = 0; kx < s->kw; kx++) {
                const float *src = col + ((size_t)(c * s->kh + ky) * s->kw + kx) * n;
                int x_lo = 0, x_hi = s->ow;
                while (x_lo < s->ow && x_lo * s->sw - s->pad_l + kx < 0) x_lo++;
                while (x_hi > x_lo && (x_hi - 1) * s->sw - s->pad_l + kx >= s->w) x_hi--;
                for (int i = 0; i < rows; i++, src += s->ow) {
                    const int iy = (oy0 + i) * s->sh - s->pad_t + ky;
                    if (iy < 0 || iy >= s->h) continue;
                    float *dst = plane + (size_t)iy * s->w - s->pad_l + kx;
                    if (s->sw == 1) {
                        for (int x = x_lo; x < x_hi; x++) dst[x] += src[x];
                    } else {
                        for (int x = x_lo; x < x_hi; x++) dst[(size_t)x * s->sw] += src[x];
                    }
                }
            }
        }
    }
}

/* din += col2im(col): the transpose of im2col, parallel over input channels
 * so no two threads touch the same plane. */
static void col2im_add(float *din, const float *col, const nn_conv *cv, int oy0,
                       int rows, int threads) {
    const nn_window *s = &cv->win;
    const size_t n = (size_t)rows * s->ow;
    conv_job j = {.out = din, .in = col, .cv = cv, .oy0 = oy0, .rows = rows, .n = n};
    team_for(threads, (size_t)cv->c, col2im_planes, &j);
}

#if VECTOR_PATHS
/* Bits of o[0..n) > 0, n a multiple of 8 (the callers' whole bytes), sixteen
 * at a time. */
AVX512 static void mask_bytes16(const float *o, uint8_t *m, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint16_t bits = _mm512_cmp_ps_mask(_mm512_loadu_ps(o + i), _mm512_setzero_ps(), _CMP_GT_OQ);
        memcpy(m + i / 8, &bits, 2);
    }
    if (i < n) m[i / 8] = (uint8_t)_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(0xFF, o + i), _mm512_setzero_ps(),
                                                       _CMP_GT_OQ);
}

/* d[i] = 0 where bit i of m is clear, i < n: zeros stored through the
 * complement of the mask, nothing loaded. */
AVX512 static void zero_unmasked16(float *d, const uint8_t *m, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint16_t bits;
        memcpy(&bits, m + i / 8, 2);
        _mm512_mask_storeu_ps(d + i, (__mmask16)~bits, _mm512_setzero_ps());
    }
    if (i < n) {
        uint16_t bits = m[i / 8];
        if (n - i > 8) bits |= (uint16_t)(m[i / 8 + 1] << 8);
        _mm512_mask_storeu_ps(d + i, (__mmask16)(~bits & lanes((int)(n - i))), _mm512_setzero_ps());
    }
}

/* The same in AVX2, eight at a time. */
AVX2 static void mask_bytes8(const float *o, uint8_t *m, size_t n) {
    for (size_t i = 0; i < n; i += 8)
        m[i / 8] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(o + i), _mm256_setzero_ps(), _CMP_GT_OQ));
}

AVX2 static void zero_unmasked8(float *d, const uint8_t *m, size_t n) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (size_t i = 0; i < n; i += 8) {
        /* lanes whose bit is clear, and which exist */
        __m256i clear = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(m[i / 8]), bit), _mm256_setzero_si256());
        if (n - i < 8) clear = _mm256_and_si256(clear, lanes8((int)(n - i)));
        _mm256_maskstore_ps(d + i, clear, _mm256_setzero_ps());
    }
}
#endif

static void mask_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const conv_job *j = ctx;
    const float *out = j->in;
    uint8_t *mask = j->mask;
    const size_t plane = j->plane, mask_plane = j->mask_plane, from = j->from, end = j->end;
    const nn_cpu_level cpu = j->cpu;
    (void)cpu; /* read only by the vector paths, absent off x86-64 */
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        const float *o = out + (size_t)ch * plane;
        uint8_t *m = mask + (size_t)ch * mask_plane;
        size_t i = from;
        for (; i < end && (i & 7); i++) {
            const uint8_t bit = (uint8_t)(1u << (i & 7));
            m[i >> 3] = o[i] > 0.0f ? (uint8_t)(m[i >> 3] | bit) : (uint8_t)(m[i >> 3] & ~bit);
        }
#if VECTOR_PATHS
        if (cpu >= NN_CPU_AVX2 && i < end) {
            const size_t whole = (end - i) & ~(size_t)7;
            if (cpu >= NN_CPU_AVX512) mask_bytes16(o + i, m + (i >> 3), whole);
            else mask_bytes8(o + i, m + (i >> 3), whole);
            i += whole;
        }
#endif
        for (; i + 8 <= end; i += 8) {
            unsigned byte = 0;
            for (int b = 0; b < 8; b++) byte |= (unsigned)(o[i + b] > 0.0f) << b;
            m[i >> 3] = (uint8_t)byte;
        }
        for (; i < end; i++) {
            const uint8_t bit = (uint8_t)(1u << (i & 7));
            m[i >> 3] = o[i] > 0.0f ? (uint8_t)(m[i >> 3] | bit) : (uint8_t)(m[i >> 3] & ~bit);
        }
    }
}

/* Mask bits of outputs [from, from+count) of every channel: set where the
 * (ReLU'd) output is positive. Whole bytes eight outputs at a time. */
void nn_relu_mask_from_output(const float *out, uint8_t *mask, int k, size_t plane, size_t from,
                              size_t count, int threads) {
    const size_t mask_plane = nn_mask_bytes(plane), end = from + count;
    const nn_cpu_level cpu = nn_cpu();
    conv_job j = {.in = out, .mask = mask, .plane = plane, .mask_plane = mask_plane, .from = from, .end = end,
                  .cpu = cpu};
    team_for(threads, (size_t)k, mask_channels, &j);
}

static void bias_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const conv_job *j = ctx;
    const size_t count = j->count;
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        float *o = j->out + (size_t)ch * j->plane + j->from;
        const float bias = j->b ? j->b[ch] : 0.0f;
        if (j->has_mask) {
            for (size_t i = 0; i < count; i++) {
                const float v = o[i] + bias;
                o[i] = v > 0.0f ? v : 0.0f; /* NaN -> 0 */
            }
        } else {
            for (size_t i = 0; i < count; i++) o[i] += bias;
        }
    }
}

/* Bias, then ReLU with its mask bits if mask, on outputs [from, from+count)
 * of every channel. Parallel over channels: each channel's mask bytes are
 * its own. */
static void bias_relu(float *out, uint8_t *mask, const float *b, int k,
                      size_t plane, size_t from, size_t count, int threads) {
    conv_job j = {.out = out, .b = b, .has_mask = mask != NULL, .plane = plane, .from = from, .count = count};
    team_for(threads, (size_t)k, bias_channels, &j);
    if (mask) nn_relu_mask_from_output(out, mask, k, plane, from, count, threads);
}

const char *nn_conv_path_name(nn_conv_path path) {
    static const char *const names[NN_CONV_PATHS] = {
        [NN_CONV_SGEMM] = "sgemm", [NN_CONV_TILE] = "tile",         [NN_CONV_BF16] = "bf16",
        [NN_CONV_WINOGRAD] = "winograd", [NN_CONV_I16] = "int16"};
    return path >= 0 && path < NN_CONV_PATHS ? names[path] : "?";
}

/* Words of w packed for path one way (trans: the backward's W^T), packed
 * at dst unless it is NULL. */
static size_t pack_way(uint32_t *dst, nn_conv_path path, int trans, const float *w, const nn_conv *cv) {
    const int ckk = cv->c * cv->win.kh * cv->win.kw, m = trans ? ckk : cv->k, k = trans ? cv->k : ckk;
    switch (path) {
    case NN_CONV_BF16:
        if (dst) nn_bf16_pack_a(dst, w, m, k, trans);
        return nn_bf16_packed_a_words(m, k);
    case NN_CONV_TILE:
        if (dst) nn_tile_pack((float *)dst, w, m, k, trans);
        return nn_tile_panels_floats(m, k);
    case NN_CONV_I16:
        if (dst) nn_i16_pack_a(dst, w, m, k, trans);
        return nn_i16_packed_a_words(m, k);
    case NN_CONV_WINOGRAD:
        if (dst && trans) nn_winograd_pack_backward((float *)dst, w, cv);
        else if (dst) nn_winograd_pack((float *)dst, w, cv);
        return nn_winograd_weight_floats(cv);
    default: return 0;
    }
}

void nn_conv_set_paths(nn_conv *cv, nn_conv_path forward, nn_conv_path backward) {
    const nn_window *s = &cv->win;
    cv->forward = forward, cv->backward = backward;
    cv->forward_from_input = forward == NN_CONV_TILE || forward == NN_CONV_I16 ||
                             (forward == NN_CONV_BF16 && s->sh == 1 && s->sw == 1 && s->ow >= 16);
}

size_t nn_conv_pack_words(const nn_conv *cv) {
    return pack_way(NULL, cv->forward, 0, NULL, cv) + pack_way(NULL, cv->backward, 1, NULL, cv);
}

size_t nn_conv_scratch_words(const nn_conv *cv) {
    const int ckk = cv->c * cv->win.kh * cv->win.kw, kmax = ckk > cv->k ? ckk : cv->k;
    size_t most = 0;
    for (int way = 0; way < 2; way++) {
        const nn_conv_path path = way ? cv->backward : cv->forward;
        const size_t s = path == NN_CONV_BF16   ? nn_bf16_scratch_words(kmax)
                         : path == NN_CONV_TILE ? nn_gemm_f32_scratch_floats(kmax)
                         : path == NN_CONV_I16  ? nn_i16_scratch_words(kmax)
                                                : 0;
        if (s > most) most = s;
    }
    return most;
}

void nn_conv_pack(nn_conv_packed *p, uint32_t *dst, const float *w, const nn_conv *cv) {
    const void *way[2];
    for (int trans = 0; trans < 2; trans++) {
        way[trans] = dst;
        dst += pack_way(dst, trans ? cv->backward : cv->forward, trans, w, cv);
    }
    if (cv->forward == NN_CONV_BF16 || cv->forward == NN_CONV_I16) p->w = way[0];
    if (cv->backward == NN_CONV_BF16 || cv->backward == NN_CONV_I16) p->wt = way[1];
    if (cv->forward == NN_CONV_TILE) p->tile_w = way[0];
    if (cv->backward == NN_CONV_TILE) p->tile_wt = way[1];
    if (cv->forward == NN_CONV_WINOGRAD) p->winograd = way[0];
    if (cv->backward == NN_CONV_WINOGRAD) p->winograd_t = way[1];
}

/* C = op(W) B (+ C) for the GEMM paths, B's rows with stride ldb (or the
 * im2col fuse names), trans 0 the forward's W, 1 the backward's W^T. The
 * packed paths fuse what fuse says; OpenBLAS's sgemm takes none of it (the
 * callers apply the ReLU mask of dout and the bias and ReLU around it). */
static void conv_gemm(const nn_conv *cv, nn_conv_path path, int trans, int m, int n, int k, const float *w,
                      const float *b, size_t ldb, const nn_gemm_fuse *fuse, float beta, float *c, size_t ldc,
                      int threads) {
    const nn_conv_packed *p = cv->packed;
    if (path == NN_CONV_TILE)
        nn_gemm_f32(cv->cpu, m, n, k, trans ? p->tile_wt : p->tile_w, b, (int)ldb, beta, c, (int)ldc, p->scratch,
                    threads, fuse);
    else if (path == NN_CONV_BF16)
        nn_gemm_bf16_fused(m, n, k, trans ? p->wt : p->w, b, (int)ldb, beta, c, (int)ldc, p->scratch, threads, fuse);
    else if (path == NN_CONV_I16)
        nn_gemm_i16(m, n, k, trans ? p->wt : p->w, b, (int)ldb, beta, c, (int)ldc, p->scratch, threads, fuse);
    else
        nn_gemm(trans, m, n, k, w, trans ? m : k, b, (int)ldb, beta, c, (int)ldc, threads);
}

/* Outputs [from, from+n) of every channel after the GEMM: bias and ReLU
 * for the sgemm (the packed paths fused them), then the mask bits. */
static void forward_finish(nn_conv_path path, float *out, uint8_t *relu_mask, const float *b, const nn_conv *cv,
                           size_t plane, size_t from, size_t n, int threads) {
    if (path == NN_CONV_SGEMM) bias_relu(out, relu_mask, b, cv->k, plane, from, n, threads);
    else if (relu_mask) nn_relu_mask_from_output(out, relu_mask, cv->k, plane, from, n, threads);
}

void nn_conv_forward(float *out, uint8_t *relu_mask, const float *in,
                     const float *w, const float *b, const nn_conv *cv,
                     float *col, int threads) {
    const nn_window *s = &cv->win;
    const int ckk = cv->c * s->kh * s->kw;
    const size_t plane = (size_t)s->oh * s->ow;
    nn_conv_path path = cv->forward;
    if (path == NN_CONV_WINOGRAD) {
        if (nn_conv_forward_winograd(out, relu_mask, in, cv->packed->winograd, b, cv, col, cv->packed->col_floats,
                                     threads))
            return;
        path = NN_CONV_SGEMM; /* scratch below one block row: only outside a planned net */
    }
    const nn_gemm_fuse fuse = {.bias = b, .relu = relu_mask != NULL};
    /* The fused paths take B straight from the input: a 1x1 stride-1 input
     * is B itself; else the packing reads the im2col from it (for
     * bfloat16, stride 1 and rows of 16 or more only). */
    const int pointwise = nn_conv_is_pointwise(cv);
    if (pointwise || (cv->forward_from_input && path == cv->forward)) {
        nn_gemm_fuse direct = fuse;
        if (!pointwise) direct.im2col_in = in, direct.im2col_win = s;
        conv_gemm(cv, path, 0, cv->k, (int)plane, ckk, w, in, plane, &direct, 0.0f, out, plane, threads);
        forward_finish(path, out, relu_mask, b, cv, plane, 0, plane, threads);
        return;
    }
    for (int oy0 = 0; oy0 < s->oh; oy0 += cv->band_rows) {
        const int rows = s->oh - oy0 < cv->band_rows ? s->oh - oy0 : cv->band_rows;
        const size_t n = (size_t)rows * s->ow, from = (size_t)oy0 * s->ow;
        im2col(col, in, cv, oy0, rows, threads);
        conv_gemm(cv, path, 0, cv->k, (int)n, ckk, w, col, n, &fuse, 0.0f, out + from, plane, threads);
        forward_finish(path, out, relu_mask, b, cv, plane, from, n, threads);
    }
}

static void unmask_channels(void *ctx, size_t c_from, size_t c_to, int worker) {
    const conv_job *j = ctx;
    float *dout = j->out;
    const uint8_t *mask = j->cmask;
    const size_t plane = j->plane, mask_plane = j->mask_plane;
    const nn_cpu_level cpu = j->cpu;
    (void)cpu; /* read only by the vector paths, absent off x86-64 */
    (void)worker;
    for (int ch = (int)c_from; ch < (int)c_to; ch++) {
        float *d = dout + (size_t)ch * plane;
        const uint8_t *m = mask + (size_t)ch * mask_plane;
#if VECTOR_PATHS
        if (cpu >= NN_CPU_AVX512) {
            zero_unmasked16(d, m, plane);
            continue;
        }
        if (cpu >= NN_CPU_AVX2) {
            zero_unmasked8(d, m, plane);
            continue;
        }
#endif
        for (size_t i = 0; i < plane; i++)
            if (!(m[i >> 3] >> (i & 7) & 1)) d[i] = 0.0f;
    }
}

/* dout *= mask, in place. */
static void apply_mask(float *dout, const uint8_t *mask, int k, size_t plane,
                       int threads) {
    const size_t mask_plane = nn_mask_bytes(plane);
    const nn_cpu_level cpu = nn_cpu();
    conv_job j = {.out = dout, .cmask = mask, .plane = plane, .mask_plane = mask_plane, .cpu = cpu};
    team_for(threads, (size_t)k, unmask_channels, &j);
}

void nn_conv_backward_input(float *din, float *dout, const uint8_t *relu_mask,
                            const float *w, const nn_conv *cv, float *col,
                            int threads) {
    const nn_window *s = &cv->win;
    const int ckk = cv->c * s->kh * s->kw;
    const size_t plane = (size_t)s->oh * s->ow;
    const nn_conv_packed *p = cv->packed;
    nn_conv_path path = cv->backward;
    /* The packed GEMMs mask dout as they pack it; the others need it masked. */
    const int fused = path == NN_CONV_TILE || path == NN_CONV_BF16 || path == NN_CONV_I16;
    if (relu_mask && !fused) apply_mask(dout, relu_mask, cv->k, plane, threads);
    if (path == NN_CONV_WINOGRAD) {
        if (nn_conv_backward_winograd(din, dout, p->winograd_t, cv, col, p->col_floats, threads)) return;
        path = NN_CONV_SGEMM;
    }
    const uint8_t *mask = fused ? relu_mask : NULL;
    const size_t mask_plane = nn_mask_bytes(plane);
    if (nn_conv_is_pointwise(cv)) {
        const nn_gemm_fuse fuse = {.b_mask = mask, .b_mask_row = mask_plane};
        conv_gemm(cv, path, 1, cv->c, (int)plane, cv->k, w, dout, plane, &fuse, 1.0f, din, plane, threads);
        return;
    }
    for (int oy0 = 0; oy0 < s->oh; oy0 += cv->band_rows) {
        const int rows = s->oh - oy0 < cv->band_rows ? s->oh - oy0 : cv->band_rows;
        const size_t n = (size_t)rows * s->ow;
        const size_t from = (size_t)oy0 * s->ow;
        const nn_gemm_fuse fuse = {.b_mask = mask, .b_mask_row = mask_plane, .b_mask_from = from};
        conv_gemm(cv, path, 1, ckk, (int)n, cv->k, w, dout + from, plane, &fuse, 0.0f, col, n, threads);
        col2im_add(din, col, cv, oy0, rows, threads);
    }
}

void nn_conv_forward_ref(float *out, const float *in, const float *w,
                         const float *b, int relu, const nn_conv *cv) {
    const nn_window *s = &cv->win;
    for (int k = 0; k < cv->k; k++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                double acc = b ? b[k] : 0.0;
                for (int c = 0; c < cv->c; c++)
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            const int iy = oy * s->sh - s->pad_t + ky;
                            const int ix = ox * s->sw - s->pad_l + kx;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                            acc += (double)w[((size_t)(k * cv->c + c) * s->kh + ky) * s->kw + kx] *
                                   in[((size_t)c * s->h + iy) * s->w + ix];
                        }
                if (relu && acc < 0) acc = 0;
                out[((size_t)k * s->oh + oy) * s->ow + ox] = (float)acc;
            }
}
