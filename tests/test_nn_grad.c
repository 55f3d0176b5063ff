/* Unit tests of every kernel in src/nn: each backward against central finite
 * differences of a double-precision forward written here, the optimised
 * forwards against naive ones on odd shapes, and 1 vs 2 threads bit for bit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "nn/nn.h"

#define TEST_RNG_SEED 0x243f6a8885a308d3u
#include "support.h"

/* Central-difference step, in double. The objectives are piecewise linear in
 * the input, so the quotient is exact up to double rounding (~1e-12 here) as
 * long as no kink lies within FD_H of the point. */
#define FD_H 1e-3
/* Kinks are kept (or skipped) at least this far away: a perturbation of one
 * input by FD_H moves a pre-activation by at most FD_H * max|w| <= 1e-3. */
#define KINK 1e-2

/* Tolerances, as |got - want| <= abs * max|want| + rel * |want| over a tensor.
 * The kernels are float32 (eps 6e-8) and sum at most a few hundred products
 * of O(1) terms, so their error is ~1e-6 of the tensor's scale (4e-7 seen);
 * the bounds below leave two orders of magnitude for that and still catch any
 * wrong tap, pad, divisor or band (each moves an element by O(max|want| / 10)
 * or more). */
#define TOL_GRAD_ABS 1e-4 /* backward vs finite differences / direct adjoint */
#define TOL_GRAD_REL 1e-4
#define TOL_FWD_ABS 1e-5  /* float forward vs double forward */
#define TOL_FWD_REL 1e-5
/* nn_conv_forward_ref sums in double and rounds once to float: half an ulp. */
#define TOL_REF_REL 6e-8

/* Worst |got - want| / max|want| seen per kind of comparison, for the summary. */
static double worst_fd, worst_adjoint, worst_fwd, worst_ref;
static int kinks_skipped, outputs_total;

static float *rand_floats(size_t n, double lo, double hi) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rng_uniform(lo, hi);
    return p;
}

static float *zero_floats(size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memset(p, 0, n * sizeof *p);
    return p;
}

static float *copy_floats(const float *src, size_t n) {
    float *p = xmalloc(n * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

static double *to_double(const float *src, size_t n) {
    double *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = src[i];
    return p;
}

static double max_abs(const double *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(p[i]) > m ? fabs(p[i]) : m;
    return m;
}

/* Bit i of a mask tensor laid out as planes of nn_mask_bytes(plane) bytes. */
static int mask_bit(const uint8_t *mask, size_t plane, size_t i) {
    const size_t ch = i / plane, j = i % plane;
    return mask[ch * nn_mask_bytes(plane) + (j >> 3)] >> (j & 7) & 1;
}

/* Exactly K planes of mask bytes (so ASan sees any overrun), prefilled with a
 * pattern the kernels must overwrite bit by bit. */
static uint8_t *mask_alloc(int planes, size_t plane) {
    const size_t bytes = (size_t)planes * nn_mask_bytes(plane);
    uint8_t *m = xmalloc(bytes);
    memset(m, 0xA5, bytes);
    return m;
}

/* got (minus base, when given) against want elementwise, at
 * |diff| <= abs_tol * max|want| + rel_tol * |want|. Reports the first
 * offenders and the worst case; returns max|diff| / max|want|. */
static double compare(const char *what, const float *got, const float *base, const double *want,
                      size_t n, double abs_tol, double rel_tol) {
    const double scale = max_abs(want, n);
    double worst = 0;
    size_t worst_at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double g = (double)got[i] - (base ? (double)base[i] : 0.0);
        const double diff = fabs(g - want[i]);
        if (!(diff <= abs_tol * scale + rel_tol * fabs(want[i]))) {
            if (bad < 4)
                fprintf(stderr, "  %s [%zu]: got %.9g, want %.9g, |diff| %.3g\n", what, i, g, want[i],
                        diff);
            bad++;
        }
        if (diff > worst || diff != diff) worst = diff, worst_at = i;
    }
    CHECK(bad == 0, "%s: %zu of %zu out of tolerance, max |diff| %.3g at [%zu] (max|want| %.3g)",
          what, bad, n, worst, worst_at, scale);
    return scale > 0 ? worst / scale : worst;
}

/* Elementwise checks count their offenders and describe the first. */
typedef struct tally {
    size_t bad, first;
} tally;

static void tally_add(tally *t, int ok, size_t i) {
    if (!ok && !t->bad++) t->first = i;
}

static void note(double *worst, double v) {
    if (v > *worst || v != v) *worst = v;
}

/* ---- window geometry from TensorFlow's formulas ----------------------------
 * Computed here independently of nn_window_plan, which is checked against it:
 * 'same' gives ceil(in / s) outputs, 'valid' ceil((in - k + 1) / s), and 'same'
 * pads (out - 1) * s + k - in in total, the odd pixel at the bottom/right. */
typedef struct geom {
    int h, w, kh, kw, sh, sw, pad_t, pad_l, oh, ow;
    int pad_b, pad_r, ceil_mode, count_pad; /* PADDED windows */
} geom;

/* The third padding a test may ask for beside 'valid' (0) and 'same' (1):
 * PyTorch's explicit pads, set in `padded` before the call. */
enum { PADDED = 2 };
static struct {
    int t, b, l, r, ceil_mode, count_pad;
} padded;

static const char *padding_name(int same) {
    static char text[64];
    if (same < PADDED) return same ? "same" : "valid";
    snprintf(text, sizeof text, "pads %d,%d,%d,%d%s%s", padded.t, padded.b, padded.l, padded.r,
             padded.ceil_mode ? " ceil" : "", padded.count_pad ? " counting pads" : "");
    return text;
}

/* PyTorch's output size (its pooling_output_shape): floor or ceil of
 * (in + pads - k) / s, plus one, less a last window starting past the
 * input and its leading pad. */
static int torch_out_size(int in, int k, int s, int lead, int trail, int ceil_mode) {
    const int span = in + lead + trail - k;
    if (span < 0) return 0;
    int out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + lead) out--;
    return out;
}

static int out_size(int in, int k, int s, int same) {
    const int span = same ? in : in - k + 1;
    return span > 0 ? (span + s - 1) / s : 0;
}

static int lead_pad(int in, int k, int s, int out) {
    const int total = (out - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

static geom geom_make(int h, int w, int kh, int kw, int sh, int sw, int same) {
    if (same == PADDED)
        return (geom){h, w, kh, kw, sh, sw, padded.t, padded.l,
                      torch_out_size(h, kh, sh, padded.t, padded.b, padded.ceil_mode),
                      torch_out_size(w, kw, sw, padded.l, padded.r, padded.ceil_mode),
                      padded.b, padded.r, padded.ceil_mode, padded.count_pad};
    geom g = {h, w, kh, kw, sh, sw, 0, 0, out_size(h, kh, sh, same), out_size(w, kw, sw, same), 0, 0, 0, 0};
    if (same) g.pad_t = lead_pad(h, kh, sh, g.oh), g.pad_l = lead_pad(w, kw, sw, g.ow);
    return g;
}

static nn_window plan_window(const geom *g, int same, const char *what) {
    nn_window win;
    memset(&win, 0, sizeof win);
    const int pads[4] = {g->pad_t, g->pad_b, g->pad_l, g->pad_r};
    const int ok = same == PADDED ? nn_window_plan_padded(&win, g->h, g->w, g->kh, g->kw, g->sh, g->sw, pads, g->ceil_mode)
                                  : nn_window_plan(&win, g->h, g->w, g->kh, g->kw, g->sh, g->sw, same);
    win.count_pad = g->count_pad;
    CHECK(ok && win.h == g->h && win.w == g->w && win.kh == g->kh && win.kw == g->kw &&
              win.sh == g->sh && win.sw == g->sw && win.pad_t == g->pad_t &&
              win.pad_l == g->pad_l && win.oh == g->oh && win.ow == g->ow,
          "%s: nn_window_plan -> %d, out %dx%d pad %d,%d; want out %dx%d pad %d,%d", what, ok,
          win.oh, win.ow, win.pad_t, win.pad_l, g->oh, g->ow, g->pad_t, g->pad_l);
    return win;
}

/* band_req 0 plans with an unbounded budget (one band of all rows); otherwise
 * with a budget just short of band_req + 1 rows, so the planner must floor to
 * band_req (and the band loop runs with a short last band when OH % band_req). */
static void plan_bands(nn_conv *cv, int band_req, const char *what) {
    const size_t row = (size_t)cv->c * cv->win.kh * cv->win.kw * cv->win.ow;
    const int want = band_req == 0 || band_req > cv->win.oh ? cv->win.oh : band_req;
    nn_conv_plan_bands(cv, band_req == 0 ? SIZE_MAX / 2 : (size_t)band_req * row + row - 1);
    CHECK(cv->band_rows == want, "%s: band_rows %d, want %d", what, cv->band_rows, want);
    const size_t col = nn_conv_is_pointwise(cv) ? 0 : row * (size_t)want;
    CHECK(nn_conv_col_floats(cv) == col, "%s: col floats %zu, want %zu", what,
          nn_conv_col_floats(cv), col);
}

/* Exactly nn_conv_col_floats() floats; NULL for the pointwise path, which must
 * not touch it. */
static float *col_alloc(const nn_conv *cv) {
    const size_t n = nn_conv_col_floats(cv);
    return n ? xmalloc(n * sizeof(float)) : NULL;
}

/* ---- double-precision forwards, direct loops ------------------------------ */

/* Output rows [oy0, oy1) of every channel of out (K, OH, OW) <-
 * conv(in (C, H, W), w (K, C, KH, KW)) + b, ReLU if relu. */
static void conv_d(double *out, const double *in, const float *w, const float *b, int c, int k,
                   const geom *g, int relu, int oy0, int oy1) {
    for (int o = 0; o < k; o++)
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double acc = b ? b[o] : 0.0;
                for (int ci = 0; ci < c; ci++)
                    for (int ky = 0; ky < g->kh; ky++) {
                        const int iy = oy * g->sh - g->pad_t + ky;
                        if (iy < 0 || iy >= g->h) continue;
                        for (int kx = 0; kx < g->kw; kx++) {
                            const int ix = ox * g->sw - g->pad_l + kx;
                            if (ix < 0 || ix >= g->w) continue;
                            acc += (double)w[((o * c + ci) * g->kh + ky) * g->kw + kx] *
                                   in[(ci * g->h + iy) * g->w + ix];
                        }
                    }
                out[(o * g->oh + oy) * g->ow + ox] = relu && acc < 0 ? 0.0 : acc;
            }
}

/* din (C, H, W) <- the adjoint of conv_d (no bias, no ReLU) applied to
 * dout (K, OH, OW): every output scatters w * dout over its window. */
static void conv_adjoint_d(double *din, const double *dout, const float *w, int c, int k,
                           const geom *g) {
    memset(din, 0, sizeof *din * (size_t)c * g->h * g->w);
    for (int o = 0; o < k; o++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                const double d = dout[(o * g->oh + oy) * g->ow + ox];
                for (int ci = 0; ci < c; ci++)
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            const int iy = oy * g->sh - g->pad_t + ky;
                            const int ix = ox * g->sw - g->pad_l + kx;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                            din[(ci * g->h + iy) * g->w + ix] +=
                                (double)w[((o * c + ci) * g->kh + ky) * g->kw + kx] * d;
                        }
            }
}

/* Max over the real pixels of each window (TensorFlow pads with -inf), output
 * rows [oy0, oy1). */
static void maxpool_d(double *out, const double *in, int c, const geom *g, int oy0, int oy1) {
    for (int ch = 0; ch < c; ch++)
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double best = -INFINITY;
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int iy = oy * g->sh - g->pad_t + ky;
                        const int ix = ox * g->sw - g->pad_l + kx;
                        if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                        const double v = in[(ch * g->h + iy) * g->w + ix];
                        if (v > best) best = v;
                    }
                out[(ch * g->oh + oy) * g->ow + ox] = best;
            }
}

/* Mean over the real pixels of each window (TensorFlow's 'same' average),
 * or with count_pad PyTorch's count_include_pad: over the window clipped to
 * the padding's outer edge; output rows [oy0, oy1). */
static void avgpool_d(double *out, const double *in, int c, const geom *g, int oy0, int oy1) {
    for (int ch = 0; ch < c; ch++)
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                double sum = 0;
                int count = 0;
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int iy = oy * g->sh - g->pad_t + ky;
                        const int ix = ox * g->sw - g->pad_l + kx;
                        if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                        sum += in[(ch * g->h + iy) * g->w + ix];
                        count++;
                    }
                if (g->count_pad) {
                    const int y0 = oy * g->sh - g->pad_t, x0 = ox * g->sw - g->pad_l;
                    const int y1 = y0 + g->kh < g->h + g->pad_b ? y0 + g->kh : g->h + g->pad_b;
                    const int x1 = x0 + g->kw < g->w + g->pad_r ? x0 + g->kw : g->w + g->pad_r;
                    count = (y1 - y0) * (x1 - x0);
                }
                out[(ch * g->oh + oy) * g->ow + ox] = sum / count;
            }
}

/* ---- finite differences ---------------------------------------------------- */
enum op_kind { OP_CONV, OP_MAXPOOL, OP_AVGPOOL, OP_RELU };

typedef struct op {
    enum op_kind kind;
    geom g;             /* conv and pools                  */
    int c, k;           /* input channels; conv outputs    */
    const float *w, *b; /* conv                            */
    int relu;           /* conv followed by ReLU           */
    size_t n_in, n_out;
} op;

/* Output rows [oy0, oy1) of op(in); ReLU has one row of n_in. */
static void op_forward_d(double *out, const double *in, const op *o, int oy0, int oy1) {
    switch (o->kind) {
    case OP_CONV: conv_d(out, in, o->w, o->b, o->c, o->k, &o->g, o->relu, oy0, oy1); break;
    case OP_MAXPOOL: maxpool_d(out, in, o->c, &o->g, oy0, oy1); break;
    case OP_AVGPOOL: avgpool_d(out, in, o->c, &o->g, oy0, oy1); break;
    case OP_RELU:
        for (size_t i = 0; i < o->n_in; i++) out[i] = in[i] > 0 ? in[i] : 0.0;
        break;
    }
}

/* grad (n_in) <- central differences of L(x) = sum(r * op(x)) in double.
 * Only output rows whose window can reach the perturbed input row are
 * evaluated (a superset, one row of slack each side): the others are equal on
 * both sides and would only add rounding to the difference, and leaving them
 * out keeps the test fast under ASan. */
static double *fd_gradient(const float *x, const float *r, const op *o) {
    double *xd = to_double(x, o->n_in), *out = xmalloc(o->n_out * sizeof *out);
    double *grad = xmalloc(o->n_in * sizeof *grad);
    const geom *g = &o->g;
    const size_t plane = o->kind == OP_RELU ? o->n_out : (size_t)g->oh * g->ow;
    for (size_t i = 0; i < o->n_in; i++) {
        int oy0 = 0, oy1 = 1;
        if (o->kind != OP_RELU) {
            /* Output row oy reads input rows oy*sh - pad_t + [0, kh). */
            const int iy = (int)(i / (size_t)g->w % (size_t)g->h);
            const int lo = iy + g->pad_t - g->kh + 1, hi = (iy + g->pad_t) / g->sh + 2;
            oy0 = lo <= 0 ? 0 : lo / g->sh - 1;
            oy0 = oy0 < 0 ? 0 : oy0;
            oy1 = hi < g->oh ? hi : g->oh;
        }
        const size_t row = o->kind == OP_RELU ? o->n_out : (size_t)g->ow;
        double l[2];
        for (int side = 0; side < 2; side++) {
            xd[i] = (double)x[i] + (side ? -FD_H : FD_H);
            op_forward_d(out, xd, o, oy0, oy1);
            l[side] = 0;
            for (size_t j = 0; j < o->n_out; j += plane)
                for (size_t q = (size_t)oy0 * row; q < (size_t)oy1 * row; q++)
                    l[side] += (double)r[j + q] * out[j + q];
        }
        xd[i] = x[i];
        grad[i] = (l[0] - l[1]) / (2 * FD_H);
    }
    free(xd);
    free(out);
    return grad;
}

/* din starts at d0, scaled to the gradient so that accumulation is visible
 * but costs no precision; (din - d0) must match the gradient. */
static float *accum_start(size_t n, const double *grad) {
    const double s = max_abs(grad, n);
    return rand_floats(n, -s, s);
}

/* ---- convolution ----------------------------------------------------------- */

/* The path the GEMM convolution tests run: main runs them on each path the
 * level has (OpenBLAS's sgemm everywhere, our float32 tile from AVX2 up). */
static nn_conv_path gemm_path = NN_CONV_SGEMM;

/* cv runs path both ways at the current level, its weights w packed into
 * *mem (freed by the caller) with GEMM scratch for two threads beside. */
static void conv_use(nn_conv *cv, nn_conv_packed *p, nn_conv_path path, const float *w, uint32_t **mem) {
    cv->cpu = nn_cpu();
    nn_conv_set_paths(cv, path, path);
    const size_t words = nn_conv_pack_words(cv), scratch = nn_conv_scratch_words(cv);
    *mem = xmalloc((words + 2 * scratch + 1) * sizeof(uint32_t));
    *p = (nn_conv_packed){.scratch = *mem + words};
    nn_conv_pack(p, *mem, w, cv);
    cv->packed = p;
}
static const int kernel_shapes[][2] = {{1, 1}, {3, 3}, {5, 5}, {1, 7}, {7, 1}, {1, 3}, {3, 1}};
enum { N_SHAPES = sizeof kernel_shapes / sizeof *kernel_shapes };

/* nn_conv_backward_input, with or without the fused ReLU mask, against finite
 * differences: once from din = 0 and once accumulating onto din = d0. With
 * ReLU, outputs whose pre-activation lies within KINK of 0 are skipped (their
 * r set to 0, so they do not enter L); the rest have mask bits checked. */
static void test_conv_grad(int c, int k, int h, int w, int kh, int kw, int s, int same,
                           int band_req, int relu) {
    char what[160];
    snprintf(what, sizeof what, "%s conv grad %dx%d/%d %s in %dx%dx%d bands %d relu %d", nn_conv_path_name(gemm_path),
             kh, kw, s, padding_name(same), c, h, w, band_req, relu);
    op o = {.kind = OP_CONV, .g = geom_make(h, w, kh, kw, s, s, same), .c = c, .k = k, .relu = relu};
    nn_conv cv = {.c = c, .k = k, .cpu = nn_cpu(), .win = plan_window(&o.g, same, what)};
    plan_bands(&cv, band_req, what);
    const size_t plane = (size_t)o.g.oh * o.g.ow;
    o.n_in = (size_t)c * h * w, o.n_out = (size_t)k * plane;
    float *x = rand_floats(o.n_in, -1, 1), *wt = rand_floats((size_t)k * c * kh * kw, -1, 1);
    float *b = rand_floats((size_t)k, -0.5, 0.5), *r = rand_floats(o.n_out, -1, 1);
    o.w = wt, o.b = b;
    nn_conv_packed packed;
    uint32_t *packed_mem;
    conv_use(&cv, &packed, gemm_path, wt, &packed_mem);
    float *col = col_alloc(&cv), *out = xmalloc(o.n_out * sizeof *out);
    uint8_t *mask = relu ? mask_alloc(k, plane) : NULL;
    nn_conv_forward(out, mask, x, wt, b, &cv, col, 2);
    if (relu) {
        double *xd = to_double(x, o.n_in), *z = xmalloc(o.n_out * sizeof *z);
        conv_d(z, xd, wt, b, c, k, &o.g, 0, 0, o.g.oh);
        tally t = {0, 0};
        for (size_t i = 0; i < o.n_out; i++) {
            outputs_total++;
            if (fabs(z[i]) < KINK) {
                r[i] = 0.0f, kinks_skipped++;
                continue;
            }
            tally_add(&t, mask_bit(mask, plane, i) == (z[i] > 0), i);
        }
        CHECK(!t.bad, "%s: %zu mask bits wrong, first [%zu] bit %d, pre-activation %.6g", what, t.bad,
              t.first, mask_bit(mask, plane, t.first), z[t.first]);
        free(xd);
        free(z);
    }
    double *grad = fd_gradient(x, r, &o);

    float *din = zero_floats(o.n_in), *dout = copy_floats(r, o.n_out);
    nn_conv_backward_input(din, dout, mask, wt, &cv, col, 2);
    note(&worst_fd, compare(what, din, NULL, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));

    float *d0 = accum_start(o.n_in, grad), *din2 = copy_floats(d0, o.n_in);
    memcpy(dout, r, o.n_out * sizeof *dout);
    nn_conv_backward_input(din2, dout, mask, wt, &cv, col, 2);
    strncat(what, " (accumulating)", sizeof what - strlen(what) - 1);
    note(&worst_fd, compare(what, din2, d0, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));

    free(x), free(wt), free(b), free(r), free(col), free(out), free(mask), free(grad);
    free(din), free(dout), free(d0), free(din2), free(packed_mem);
}

/* nn_conv_forward (bias and fused ReLU optional) against nn_conv_forward_ref
 * and the double forward here; mask bits against out > 0; the backward
 * against the direct adjoint; and threads 1 vs 2 bit-identical throughout. */
static void test_conv_naive(int c, int k, int h, int w, int kh, int kw, int s, int same,
                            int band_req, int bias, int relu) {
    char what[160];
    snprintf(what, sizeof what, "%s conv %dx%d/%d %s in %dx%dx%d K %d bands %d bias %d relu %d",
             nn_conv_path_name(gemm_path), kh, kw, s, padding_name(same), c, h, w, k, band_req, bias, relu);
    const geom g = geom_make(h, w, kh, kw, s, s, same);
    nn_conv cv = {.c = c, .k = k, .cpu = nn_cpu(), .win = plan_window(&g, same, what)};
    plan_bands(&cv, band_req, what);
    CHECK(nn_conv_flops(&cv) == 2.0 * k * c * kh * kw * g.oh * g.ow, "%s: flops %.0f", what,
          nn_conv_flops(&cv));
    const int unpadded = !g.pad_t && !g.pad_b && !g.pad_l && !g.pad_r;
    CHECK(nn_conv_is_pointwise(&cv) == (kh == 1 && kw == 1 && s == 1 && unpadded), "%s: pointwise %d", what,
          nn_conv_is_pointwise(&cv));
    const size_t plane = (size_t)g.oh * g.ow, n_in = (size_t)c * h * w, n_out = (size_t)k * plane;
    float *x = rand_floats(n_in, -1, 1), *wt = rand_floats((size_t)k * c * kh * kw, -1, 1);
    float *b = bias ? rand_floats((size_t)k, -0.5, 0.5) : NULL;
    nn_conv_packed packed;
    uint32_t *packed_mem;
    conv_use(&cv, &packed, gemm_path, wt, &packed_mem);
    float *col = col_alloc(&cv), *out[2], *ref = xmalloc(n_out * sizeof *ref);
    uint8_t *mask[2] = {NULL, NULL};
    for (int t = 0; t < 2; t++) {
        out[t] = xmalloc(n_out * sizeof *out[t]);
        if (relu) mask[t] = mask_alloc(k, plane);
        nn_conv_forward(out[t], mask[t], x, wt, b, &cv, col, t + 1);
    }
    nn_conv_forward_ref(ref, x, wt, b, relu, &cv);
    double *xd = to_double(x, n_in), *want = xmalloc(n_out * sizeof *want);
    conv_d(want, xd, wt, b, c, k, &g, relu, 0, g.oh);
    note(&worst_fwd, compare(what, out[0], NULL, want, n_out, TOL_FWD_ABS, TOL_FWD_REL));
    double *ref_d = to_double(ref, n_out);
    char what2[200];
    snprintf(what2, sizeof what2, "%s vs nn_conv_forward_ref", what);
    note(&worst_fwd, compare(what2, out[0], NULL, ref_d, n_out, TOL_FWD_ABS, TOL_FWD_REL));
    snprintf(what2, sizeof what2, "%s: nn_conv_forward_ref vs double", what);
    note(&worst_ref, compare(what2, ref, NULL, want, n_out, 0, TOL_REF_REL));
    for (int t = 1; t < 2; t++) {
        CHECK(memcmp(out[0], out[t], n_out * sizeof *out[0]) == 0, "%s: threads 1 vs %d differ",
              what, t + 1);
        CHECK(!relu || memcmp(mask[0], mask[t], (size_t)k * nn_mask_bytes(plane)) == 0,
              "%s: masks differ, threads 1 vs %d", what, t + 1);
    }
    if (relu) {
        tally t = {0, 0};
        for (size_t i = 0; i < n_out; i++)
            tally_add(&t, mask_bit(mask[0], plane, i) == (out[0][i] > 0) && out[0][i] >= 0, i);
        CHECK(!t.bad, "%s: %zu outputs disagree with their mask bit, first out[%zu] %.9g bit %d", what,
              t.bad, t.first, out[0][t.first], mask_bit(mask[0], plane, t.first));
    }

    /* Backward, through the mask when there is one, against the adjoint of
     * the masked dout. */
    float *dout = rand_floats(n_out, -1, 1), *din[2];
    double *dm = to_double(dout, n_out), *din_want = xmalloc(n_in * sizeof *din_want);
    if (relu)
        for (size_t i = 0; i < n_out; i++)
            if (!mask_bit(mask[0], plane, i)) dm[i] = 0;
    conv_adjoint_d(din_want, dm, wt, c, k, &g);
    for (int t = 0; t < 2; t++) {
        float *d = copy_floats(dout, n_out);
        din[t] = zero_floats(n_in);
        nn_conv_backward_input(din[t], d, mask[0], wt, &cv, col, t + 1);
        free(d);
    }
    snprintf(what2, sizeof what2, "%s backward vs adjoint", what);
    note(&worst_adjoint, compare(what2, din[0], NULL, din_want, n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
    for (int t = 1; t < 2; t++)
        CHECK(memcmp(din[0], din[t], n_in * sizeof *din[0]) == 0,
              "%s: backward threads 1 vs %d differ", what, t + 1);

    free(packed_mem);
    for (int t = 0; t < 2; t++) free(out[t]), free(mask[t]), free(din[t]);
    free(x), free(wt), free(b), free(col), free(ref), free(xd), free(want), free(ref_d);
    free(dout), free(dm), free(din_want);
}

/* nn_tile_gemm at every level up to the machine's against a double product:
 * C (m x n) = A B over k, each sum within k * 2^-23 * sum|a b|; at AVX2 and
 * AVX-512 the same bits. */
static void test_tile(int m, int n, int k) {
    float *a = rand_floats((size_t)m * k, -1, 1), *b = rand_floats((size_t)k * n, -1, 1);
    float *panels = xmalloc(nn_tile_panels_floats(m, k) * sizeof(float));
    nn_tile_pack(panels, a, m, k, 0);
    float *c[NN_CPU_LEVELS];
    for (int level = NN_CPU_PLAIN; level <= (int)nn_cpu() && level < NN_CPU_LEVELS; level++) {
        c[level] = xmalloc((size_t)m * n * sizeof(float));
        nn_tile_gemm((nn_cpu_level)level, m, n, k, panels, b, (size_t)n, c[level], (size_t)n);
        size_t bad = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int q = 0; q < k; q++) {
                    const double p = (double)a[(size_t)i * k + q] * b[(size_t)q * n + j];
                    want += p, mag += fabs(p);
                }
                if (fabs(c[level][(size_t)i * n + j] - want) > k * 0x1.0p-23 * mag + 1e-30) bad++;
            }
        CHECK(bad == 0, "tile %dx%dx%d at %s: %zu of %d elements out of bound", m, n, k,
              nn_cpu_name((nn_cpu_level)level), bad, m * n);
    }
    if (nn_cpu() >= NN_CPU_AVX512)
        CHECK(!memcmp(c[NN_CPU_AVX2], c[NN_CPU_AVX512], (size_t)m * n * sizeof(float)),
              "tile %dx%dx%d: AVX2 and AVX-512 differ", m, n, k);
    for (int level = NN_CPU_PLAIN; level <= (int)nn_cpu() && level < NN_CPU_LEVELS; level++) free(c[level]);
    free(a), free(b), free(panels);
}

/* One convolution, forward (bias, ReLU) and backward (through the mask,
 * accumulating), on path at AVX2 and at AVX-512: bit-identical. */
static void test_levels_agree(int c, int k, int h, int w, int kh, int kw, int s, int same, nn_conv_path path) {
    char what[160];
    snprintf(what, sizeof what, "%s %dx%d/%d %s in %dx%dx%d K %d", nn_conv_path_name(path), kh, kw, s,
             padding_name(same), c, h, w, k);
    const geom g = geom_make(h, w, kh, kw, s, s, same);
    const size_t plane = (size_t)g.oh * g.ow, n_in = (size_t)c * h * w, n_out = (size_t)k * plane;
    float *x = rand_floats(n_in, -1, 1), *wt = rand_floats((size_t)k * c * kh * kw, -1, 1);
    float *b = rand_floats((size_t)k, -0.5, 0.5), *dout = rand_floats(n_out, -1, 1);
    float *out[2], *din[2];
    uint8_t *mask[2];
    for (int l = 0; l < 2; l++) {
        nn_cpu_cap(l ? NN_CPU_AVX512 : NN_CPU_AVX2);
        nn_conv cv = {.c = c, .k = k, .win = plan_window(&g, same, what)};
        plan_bands(&cv, 0, what);
        nn_conv_packed packed;
        uint32_t *packed_mem;
        conv_use(&cv, &packed, path, wt, &packed_mem);
        size_t col_n = nn_conv_col_floats(&cv);
        for (int way = 0; way < 2; way++)
            if (path == NN_CONV_WINOGRAD && nn_winograd_scratch_floats(&cv, way, 2) > col_n)
                col_n = nn_winograd_scratch_floats(&cv, way, 2);
        packed.col_floats = col_n;
        float *col = xmalloc((col_n + 1) * sizeof *col), *d = copy_floats(dout, n_out);
        out[l] = xmalloc(n_out * sizeof(float)), mask[l] = mask_alloc(k, plane), din[l] = copy_floats(x, n_in);
        nn_conv_forward(out[l], mask[l], x, wt, b, &cv, col, 2);
        nn_conv_backward_input(din[l], d, mask[l], wt, &cv, col, 2);
        free(col), free(d), free(packed_mem);
    }
    nn_cpu_cap(NN_CPU_LEVELS);
    CHECK(!memcmp(out[0], out[1], n_out * sizeof(float)) && !memcmp(din[0], din[1], n_in * sizeof(float)) &&
              !memcmp(mask[0], mask[1], (size_t)k * nn_mask_bytes(plane)),
          "%s: AVX2 and AVX-512 differ", what);
    for (int l = 0; l < 2; l++) free(out[l]), free(mask[l]), free(din[l]);
    free(x), free(wt), free(b), free(dout);
}

/* Winograd F(4x4,3x3), the exact mode's path for 3x3 stride-1 convolutions,
 * both ways: the forward through nn_conv_forward against the double forward,
 * the backward (dout masked by the forward's ReLU bits, accumulating onto a
 * random din) through nn_conv_backward_input and directly, against the
 * double adjoint; bands of one block row and of all; 1 vs 2 threads bit for
 * bit; a scratch below one block row refused (the caller then takes im2col).
 * Widths of 64 and more reach the 16-block vector transforms on AVX-512. */
static void test_winograd(int c, int k, int h, int w, int same) {
    char what[160];
    snprintf(what, sizeof what, "winograd %s in %dx%dx%d K %d", padding_name(same), c, h, w, k);
    const geom g = geom_make(h, w, 3, 3, 1, 1, same);
    nn_conv cv = {.c = c, .k = k, .cpu = nn_cpu(), .win = plan_window(&g, same, what)};
    plan_bands(&cv, 0, what);
    const size_t plane = (size_t)g.oh * g.ow, n_in = (size_t)c * h * w, n_out = (size_t)k * plane;
    float *x = rand_floats(n_in, -1, 1), *wt = rand_floats((size_t)k * c * 9, -1, 1);
    float *b = rand_floats((size_t)k, -0.5, 0.5);
    float *u = xmalloc(nn_winograd_weight_floats(&cv) * sizeof(float));
    float *ut = xmalloc(nn_winograd_weight_floats(&cv) * sizeof(float));
    nn_winograd_pack(u, wt, &cv);
    nn_winograd_pack_backward(ut, wt, &cv);
    /* Scratch for all block rows either way (the backward's blocks tile
     * the input plane), and for exactly one block row of the forward. */
    const size_t one_row = nn_winograd_row_floats(&cv, 0, 2), one_row_t = nn_winograd_row_floats(&cv, 1, 2);
    const size_t all = (one_row > one_row_t ? one_row : one_row_t) * (size_t)(h > g.oh ? h : g.oh);
    float *scratch = xmalloc(all * sizeof(float));
    nn_conv_packed packed = {.winograd = u, .winograd_t = ut, .col_floats = all};
    cv.packed = &packed;
    nn_conv_set_paths(&cv, NN_CONV_WINOGRAD, NN_CONV_WINOGRAD);

    float *out[2];
    uint8_t *mask[2];
    for (int t = 0; t < 2; t++) {
        out[t] = xmalloc(n_out * sizeof(float)), mask[t] = mask_alloc(k, plane);
        nn_conv_forward(out[t], mask[t], x, wt, b, &cv, scratch, t + 1);
    }
    double *xd = to_double(x, n_in), *want = xmalloc(n_out * sizeof *want);
    conv_d(want, xd, wt, b, c, k, &g, 1, 0, g.oh);
    note(&worst_fwd, compare(what, out[0], NULL, want, n_out, TOL_FWD_ABS, TOL_FWD_REL));
    CHECK(!memcmp(out[0], out[1], n_out * sizeof(float)) && !memcmp(mask[0], mask[1], (size_t)k * nn_mask_bytes(plane)),
          "%s: forward threads 1 vs 2 differ", what);
    float *one = xmalloc(n_out * sizeof(float));
    CHECK(nn_conv_forward_winograd(one, NULL, x, u, b, &cv, scratch, one_row, 2), "%s: one block row refused", what);
    CHECK(!nn_conv_forward_winograd(one, NULL, x, u, b, &cv, scratch, one_row - 1, 2),
          "%s: a scratch below one block row was not refused", what);

    /* Backward through the ReLU bits of the forward. */
    float *dout = rand_floats(n_out, -1, 1);
    double *dm = to_double(dout, n_out), *din_want = xmalloc(n_in * sizeof *din_want);
    for (size_t i = 0; i < n_out; i++)
        if (!mask_bit(mask[0], plane, i)) dm[i] = 0;
    conv_adjoint_d(din_want, dm, wt, c, k, &g);
    float *d0 = accum_start(n_in, din_want), *din[3];
    for (int t = 0; t < 2; t++) {
        float *d = copy_floats(dout, n_out);
        din[t] = copy_floats(d0, n_in);
        nn_conv_backward_input(din[t], d, mask[0], wt, &cv, scratch, t + 1);
        free(d);
    }
    char what2[200];
    snprintf(what2, sizeof what2, "%s backward vs adjoint", what);
    note(&worst_adjoint, compare(what2, din[0], d0, din_want, n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
    CHECK(!memcmp(din[0], din[1], n_in * sizeof(float)), "%s: backward threads 1 vs 2 differ", what);
    /* Directly, from the masked dout, one block row of the input a band. */
    float *masked = xmalloc(n_out * sizeof(float));
    for (size_t i = 0; i < n_out; i++) masked[i] = (float)dm[i];
    din[2] = copy_floats(d0, n_in);
    CHECK(nn_conv_backward_winograd(din[2], masked, ut, &cv, scratch, one_row_t, 2), "%s: backward one row refused",
          what);
    snprintf(what2, sizeof what2, "%s backward by block rows", what);
    note(&worst_adjoint, compare(what2, din[2], d0, din_want, n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
    CHECK(!nn_conv_backward_winograd(din[2], masked, ut, &cv, scratch, one_row_t - 1, 2),
          "%s: a backward scratch below one block row was not refused", what);

    /* A zero margin of dout (bottom 2 rows, right 3 columns, as 'valid'
     * layers downstream leave) reaches din exactly: untouched past its reach. */
    if (g.oh > 3 && g.ow > 4) {
        for (int ch = 0; ch < k; ch++)
            for (int y = 0; y < g.oh; y++)
                for (int x = 0; x < g.ow; x++)
                    if (y >= g.oh - 2 || x >= g.ow - 3) dm[((size_t)ch * g.oh + y) * g.ow + x] = 0;
        for (size_t i = 0; i < n_out; i++) masked[i] = (float)dm[i];
        conv_adjoint_d(din_want, dm, wt, c, k, &g);
        memcpy(din[2], d0, n_in * sizeof(float));
        CHECK(nn_conv_backward_winograd(din[2], masked, ut, &cv, scratch, all, 2), "%s: margin run refused", what);
        snprintf(what2, sizeof what2, "%s backward, zero margin", what);
        note(&worst_adjoint, compare(what2, din[2], d0, din_want, n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
        /* Input rows past oh - 1 - pad_t and columns past ow - 2 - pad_l
         * see only the zero margin through the 3x3 window. */
        size_t moved = 0;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    const size_t i = ((size_t)ch * h + y) * w + x;
                    if (y > g.oh - 1 - g.pad_t || x > g.ow - 2 - g.pad_l) moved += din[2][i] != d0[i];
                }
        CHECK(moved == 0, "%s: %zu inputs outside dout's reach changed", what2, moved);
    }

    for (int t = 0; t < 2; t++) free(out[t]), free(mask[t]), free(din[t]);
    free(din[2]), free(x), free(wt), free(b), free(u), free(ut), free(scratch), free(xd), free(want), free(one);
    free(dout), free(dm), free(din_want), free(d0), free(masked);
}

/* ---- pooling ------------------------------------------------------------- */

/* Distinct values spaced 2 * KINK apart in a shuffled order, so no two
 * candidates of any window are within KINK; mostly negative, so a kernel that
 * let a padded pixel count as 0 would show. */
static float *distinct_floats(size_t n) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)((double)i * 2 * KINK - 0.8 * n * 2 * KINK);
    for (size_t i = n - 1; i > 0; i--) {
        const size_t j = (size_t)(rng_u64() % (i + 1));
        const float t = p[i];
        p[i] = p[j], p[j] = t;
    }
    return p;
}

/* Max pool: forward equals the double max exactly, argmax names a pixel of
 * the window holding that max; backward against finite differences (from 0
 * and accumulating); threads 1 vs 2 bit-identical. */
static void test_maxpool(int c, int h, int w, int k, int s, int same) {
    char what[128];
    snprintf(what, sizeof what, "maxpool %dx%d/%d %s in %dx%dx%d", k, k, s, padding_name(same), c, h, w);
    op o = {.kind = OP_MAXPOOL, .g = geom_make(h, w, k, k, s, s, same), .c = c};
    const nn_window win = plan_window(&o.g, same, what);
    const geom *g = &o.g;
    o.n_in = (size_t)c * h * w, o.n_out = (size_t)c * g->oh * g->ow;
    float *x = distinct_floats(o.n_in), *out[2];
    uint8_t *arg[2];
    for (int t = 0; t < 2; t++) {
        out[t] = xmalloc(o.n_out * sizeof *out[t]);
        arg[t] = xmalloc(o.n_out);
        nn_maxpool_forward(out[t], arg[t], x, c, &win, t + 1);
    }
    CHECK(memcmp(out[0], out[1], o.n_out * sizeof *out[0]) == 0 && memcmp(arg[0], arg[1], o.n_out) == 0,
          "%s: forward threads 1 vs 2 differ", what);
    double *xd = to_double(x, o.n_in), *want = xmalloc(o.n_out * sizeof *want);
    maxpool_d(want, xd, c, g, 0, g->oh);
    compare(what, out[0], NULL, want, o.n_out, 0, 0);
    tally t = {0, 0};
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                const size_t i = ((size_t)ch * g->oh + oy) * g->ow + ox;
                const int a = arg[0][i], iy = oy * s - g->pad_t + a / k, ix = ox * s - g->pad_l + a % k;
                const int inside = a < k * k && iy >= 0 && iy < h && ix >= 0 && ix < w;
                tally_add(&t, inside && x[((size_t)ch * h + iy) * w + ix] == out[0][i], i);
            }
    CHECK(!t.bad, "%s: %zu argmax entries do not name the max, first at out[%zu] (argmax %d)", what,
          t.bad, t.first, arg[0][t.first]);

    float *r = rand_floats(o.n_out, -1, 1);
    double *grad = fd_gradient(x, r, &o);
    float *din[2] = {zero_floats(o.n_in), zero_floats(o.n_in)};
    for (int t = 0; t < 2; t++) nn_maxpool_backward(din[t], r, arg[0], c, &win, t + 1);
    CHECK(memcmp(din[0], din[1], o.n_in * sizeof *din[0]) == 0, "%s: backward threads 1 vs 2 differ",
          what);
    note(&worst_fd, compare(what, din[0], NULL, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
    float *d0 = accum_start(o.n_in, grad), *din2 = copy_floats(d0, o.n_in);
    nn_maxpool_backward(din2, r, arg[0], c, &win, 2);
    strncat(what, " (accumulating)", sizeof what - strlen(what) - 1);
    note(&worst_fd, compare(what, din2, d0, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));

    for (int t = 0; t < 2; t++) free(out[t]), free(arg[t]), free(din[t]);
    free(x), free(xd), free(want), free(r), free(grad), free(d0), free(din2);
}

/* Average pool: forward against the double mean over real pixels (and, for
 * the 3x3/1 'same' pool of InceptionV3, corner / edge / interior outputs
 * against means written out by hand: divisors 4, 6, 9); backward against
 * finite differences; threads 1 vs 2 bit-identical. */
static void test_avgpool(int c, int h, int w, int k, int s, int same) {
    char what[128];
    snprintf(what, sizeof what, "avgpool %dx%d/%d %s in %dx%dx%d", k, k, s, padding_name(same), c, h, w);
    op o = {.kind = OP_AVGPOOL, .g = geom_make(h, w, k, k, s, s, same), .c = c};
    const nn_window win = plan_window(&o.g, same, what);
    const geom *g = &o.g;
    o.n_in = (size_t)c * h * w, o.n_out = (size_t)c * g->oh * g->ow;
    float *x = rand_floats(o.n_in, -1, 1), *out[2];
    for (int t = 0; t < 2; t++) {
        out[t] = xmalloc(o.n_out * sizeof *out[t]);
        nn_avgpool_forward(out[t], x, c, &win, t + 1);
    }
    CHECK(memcmp(out[0], out[1], o.n_out * sizeof *out[0]) == 0, "%s: forward threads 1 vs 2 differ",
          what);
    double *xd = to_double(x, o.n_in), *want = xmalloc(o.n_out * sizeof *want);
    avgpool_d(want, xd, c, g, 0, g->oh);
    note(&worst_fwd, compare(what, out[0], NULL, want, o.n_out, TOL_FWD_ABS, TOL_FWD_REL));
    if (k == 3 && s == 1 && same == 1) {
        /* Channel 1 (not 0, so the plane offset matters). */
        const double *p = xd + (size_t)h * w;
        const float *q = out[0] + (size_t)g->oh * g->ow;
#define P(y, x) p[(y) * w + (x)]
        const double corner_tl = (P(0, 0) + P(0, 1) + P(1, 0) + P(1, 1)) / 4;
        const double edge_top = (P(0, 0) + P(0, 1) + P(0, 2) + P(1, 0) + P(1, 1) + P(1, 2)) / 6;
        const double edge_left = (P(0, 0) + P(0, 1) + P(1, 0) + P(1, 1) + P(2, 0) + P(2, 1)) / 6;
        const double corner_br =
            (P(h - 2, w - 2) + P(h - 2, w - 1) + P(h - 1, w - 2) + P(h - 1, w - 1)) / 4;
        const double edge_right = (P(2, w - 2) + P(2, w - 1) + P(3, w - 2) + P(3, w - 1) +
                                   P(4, w - 2) + P(4, w - 1)) / 6;
        const double inner = (P(1, 1) + P(1, 2) + P(1, 3) + P(2, 1) + P(2, 2) + P(2, 3) + P(3, 1) +
                              P(3, 2) + P(3, 3)) / 9;
#undef P
        const double tol = 1e-6;
        check_close("avgpool top-left corner (/4)", q[0], corner_tl, tol);
        check_close("avgpool top edge (/6)", q[1], edge_top, tol);
        check_close("avgpool left edge (/6)", q[w], edge_left, tol);
        check_close("avgpool bottom-right corner (/4)", q[h * w - 1], corner_br, tol);
        check_close("avgpool right edge (/6)", q[3 * w + w - 1], edge_right, tol);
        check_close("avgpool interior (/9)", q[2 * w + 2], inner, tol);
    }

    float *r = rand_floats(o.n_out, -1, 1);
    double *grad = fd_gradient(x, r, &o);
    float *din[2] = {zero_floats(o.n_in), zero_floats(o.n_in)};
    for (int t = 0; t < 2; t++) nn_avgpool_backward(din[t], r, c, &win, t + 1);
    CHECK(memcmp(din[0], din[1], o.n_in * sizeof *din[0]) == 0, "%s: backward threads 1 vs 2 differ",
          what);
    note(&worst_fd, compare(what, din[0], NULL, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));
    float *d0 = accum_start(o.n_in, grad), *din2 = copy_floats(d0, o.n_in);
    nn_avgpool_backward(din2, r, c, &win, 2);
    strncat(what, " (accumulating)", sizeof what - strlen(what) - 1);
    note(&worst_fd, compare(what, din2, d0, grad, o.n_in, TOL_GRAD_ABS, TOL_GRAD_REL));

    for (int t = 0; t < 2; t++) free(out[t]), free(din[t]);
    free(x), free(xd), free(want), free(r), free(grad), free(d0), free(din2);
}

/* ---- ReLU ------------------------------------------------------------------ */

/* n per plane deliberately not a multiple of 8 in one case, so planes start
 * mid-way through the bit numbering of a flat layout: the mask must be planes
 * of nn_mask_bytes(n) bytes. Inputs are at least 2 * KINK away from 0. */
static void test_relu(int planes, size_t n) {
    char what[64];
    snprintf(what, sizeof what, "relu %d x %zu", planes, n);
    const size_t total = (size_t)planes * n;
    op o = {.kind = OP_RELU, .n_in = total, .n_out = total};
    float *x = xmalloc(total * sizeof *x);
    for (size_t i = 0; i < total; i++)
        x[i] = (float)((rng_u64() & 1 ? 1 : -1) * rng_uniform(2 * KINK, 1));
    float *out[2];
    uint8_t *mask[2];
    for (int t = 0; t < 2; t++) {
        out[t] = xmalloc(total * sizeof *out[t]);
        mask[t] = mask_alloc(planes, n);
        nn_relu_forward(out[t], mask[t], x, planes, n, t + 1);
    }
    CHECK(memcmp(out[0], out[1], total * sizeof *out[0]) == 0 &&
              memcmp(mask[0], mask[1], (size_t)planes * nn_mask_bytes(n)) == 0,
          "%s: forward threads 1 vs 2 differ", what);
    tally t = {0, 0};
    for (size_t i = 0; i < total; i++)
        tally_add(&t, out[0][i] == (x[i] > 0 ? x[i] : 0.0f) && mask_bit(mask[0], n, i) == (x[i] > 0), i);
    CHECK(!t.bad, "%s: %zu wrong, first [%zu] in %.9g -> out %.9g bit %d", what, t.bad, t.first,
          x[t.first], out[0][t.first], mask_bit(mask[0], n, t.first));

    float *r = rand_floats(total, -1, 1);
    double *grad = fd_gradient(x, r, &o);
    float *din[2] = {zero_floats(total), zero_floats(total)};
    for (int t = 0; t < 2; t++) nn_relu_backward(din[t], r, mask[0], planes, n, t + 1);
    CHECK(memcmp(din[0], din[1], total * sizeof *din[0]) == 0, "%s: backward threads 1 vs 2 differ",
          what);
    note(&worst_fd, compare(what, din[0], NULL, grad, total, TOL_GRAD_ABS, TOL_GRAD_REL));
    float *d0 = accum_start(total, grad), *din2 = copy_floats(d0, total);
    nn_relu_backward(din2, r, mask[0], planes, n, 2);
    strncat(what, " (accumulating)", sizeof what - strlen(what) - 1);
    note(&worst_fd, compare(what, din2, d0, grad, total, TOL_GRAD_ABS, TOL_GRAD_REL));

    for (int t = 0; t < 2; t++) free(out[t]), free(mask[t]), free(din[t]);
    free(x), free(r), free(grad), free(d0), free(din2);
}

/* At the kink itself ReLU is off: 0 and -0 give 0 with a clear bit, the
 * smallest subnormal passes. */
static void test_relu_edges(void) {
    const float x[9] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1.0f, -1.0f, 3.5f, -2.0f, 0.0f};
    const int on[9] = {0, 0, 1, 0, 1, 0, 1, 0, 0};
    float out[9];
    uint8_t mask[2] = {0xFF, 0xFF};
    nn_relu_forward(out, mask, x, 1, 9, 1);
    for (int i = 0; i < 9; i++)
        CHECK(mask_bit(mask, 9, (size_t)i) == on[i] && out[i] == (on[i] ? x[i] : 0.0f) &&
                  !signbit(out[i]),
              "relu edge %d: in %g -> out %g bit %d", i, x[i], out[i], mask_bit(mask, 9, (size_t)i));
    CHECK(nn_mask_bytes(0) == 0 && nn_mask_bytes(1) == 1 && nn_mask_bytes(8) == 1 &&
              nn_mask_bytes(9) == 2,
          "nn_mask_bytes");
}

static void set_pads(int t, int b, int l, int r, int ceil_mode, int count_pad) {
    padded.t = t, padded.b = b, padded.l = l, padded.r = r, padded.ceil_mode = ceil_mode, padded.count_pad = count_pad;
}

/* The residual add (n_in inputs summed in order, in place too, with and
 * without its ReLU, 1 vs 2 threads) and the ReLU's backward in place,
 * exactly. */
static void test_add(int n_in, int planes, size_t n) {
    const size_t total = (size_t)planes * n;
    float *in[4], *out = xmalloc(total * sizeof(float)), *relu = xmalloc(total * sizeof(float));
    const float *ins[4];
    for (int j = 0; j < n_in; j++) ins[j] = in[j] = rand_floats(total, -1, 1);
    nn_add_forward(out, NULL, ins, n_in, planes, n, 2);
    tally t = {0, 0};
    for (size_t i = 0; i < total; i++) {
        float v = in[0][i];
        for (int j = 1; j < n_in; j++) v += in[j][i];
        tally_add(&t, out[i] == v, i);
    }
    CHECK(!t.bad, "add of %d x %d x %zu: %zu sums differ, first [%zu]", n_in, planes, n, t.bad, t.first);
    /* With the ReLU: as nn_relu_forward after the sum, at 1 and 2 threads. */
    uint8_t *want_mask = mask_alloc(planes, n), *mask = mask_alloc(planes, n);
    float *want = xmalloc(total * sizeof(float));
    nn_relu_forward(want, want_mask, out, planes, n, 1);
    for (int threads = 1; threads <= 2; threads++) {
        memset(mask, 0xA5, (size_t)planes * nn_mask_bytes(n));
        nn_add_forward(relu, mask, ins, n_in, planes, n, threads);
        CHECK(!memcmp(relu, want, total * sizeof(float)) && !memcmp(mask, want_mask, (size_t)planes * nn_mask_bytes(n)),
              "add + relu of %d x %d x %zu, %d thread(s): differs from add, then relu", n_in, planes, n, threads);
    }
    nn_add_forward(in[0], NULL, ins, n_in, planes, n, 1); /* in place: the first input becomes the sum */
    CHECK(!memcmp(in[0], out, total * sizeof(float)), "add of %d x %d x %zu in place differs", n_in, planes, n);
    /* ReLU's backward in place against nn_relu_backward onto zeros. */
    float *g = rand_floats(total, -1, 1), *g_want = zero_floats(total);
    nn_relu_backward(g_want, g, mask, planes, n, 2);
    float *g_set = rand_floats(total, -1, 1); /* overwritten whole */
    nn_relu_backward_set(g_set, g, mask, planes, n, 2);
    CHECK(!memcmp(g_set, g_want, total * sizeof(float)), "relu backward into unwritten din of %d x %zu differs", planes,
          n);
    nn_relu_mask_apply(g, mask, planes, n, 2);
    CHECK(!memcmp(g, g_want, total * sizeof(float)), "relu mask in place of %d x %zu differs", planes, n);
    free(g_set);
    for (int j = 0; j < n_in; j++) free(in[j]);
    free(out), free(relu), free(want), free(mask), free(want_mask), free(g), free(g_want);
}

/* Window planning by hand, including the cases the tests below rely on. */
static void test_window_plan(void) {
    nn_window win;
    /* PyTorch's explicit padding: ResNet's 7x7/2 pad 3 on 224 and its 3x3/2
     * pad 1 max pool; GoogLeNet's 3x3/2 ceil_mode pools on 112 and 55, its
     * 2x2/2 on 13 (ceil: the 7th window starts inside); a ceil window that
     * would start in the trailing pad is dropped (5, k 2, s 2, pad 1: 3, not 4). */
    CHECK(nn_window_plan_padded(&win, 224, 224, 7, 7, 2, 2, (const int[4]){3, 3, 3, 3}, 0) && win.oh == 112 &&
              win.ow == 112 && win.pad_t == 3 && win.pad_b == 3,
          "224/7x7/2 pad 3: %dx%d", win.oh, win.ow);
    CHECK(nn_window_plan_padded(&win, 112, 112, 3, 3, 2, 2, (const int[4]){1, 1, 1, 1}, 0) && win.oh == 56,
          "112/3x3/2 pad 1: %d", win.oh);
    CHECK(nn_window_plan_padded(&win, 112, 55, 3, 3, 2, 2, (const int[4]){0, 0, 0, 0}, 1) && win.oh == 56 &&
              win.ow == 27,
          "112x55/3x3/2 ceil: %dx%d", win.oh, win.ow);
    CHECK(nn_window_plan_padded(&win, 13, 14, 2, 2, 2, 2, (const int[4]){0, 0, 0, 0}, 1) && win.oh == 7 && win.ow == 7,
          "13x14/2x2/2 ceil: %dx%d", win.oh, win.ow);
    CHECK(nn_window_plan_padded(&win, 5, 5, 2, 2, 2, 2, (const int[4]){1, 1, 1, 1}, 1) && win.oh == 3,
          "5/2x2/2 pad 1 ceil: %d, want 3", win.oh);
    CHECK(nn_window_plan_padded(&win, 5, 5, 2, 2, 2, 2, (const int[4]){1, 1, 1, 1}, 0) && win.oh == 3,
          "5/2x2/2 pad 1: %d, want 3", win.oh);
    /* Asymmetric, and a window bigger than the input that padding makes fit. */
    CHECK(nn_window_plan_padded(&win, 6, 7, 3, 1, 1, 1, (const int[4]){0, 2, 0, 0}, 0) && win.oh == 6 &&
              win.ow == 7 && win.pad_t == 0 && win.pad_b == 2,
          "6x7/3x1 pads 0,2: %dx%d", win.oh, win.ow);
    CHECK(nn_window_plan_padded(&win, 2, 2, 5, 5, 1, 1, (const int[4]){2, 2, 2, 2}, 0) && win.oh == 2,
          "2/5x5 pad 2: %d", win.oh);
    CHECK(!nn_window_plan_padded(&win, 2, 2, 5, 5, 1, 1, (const int[4]){1, 1, 1, 1}, 0), "2/5x5 pad 1 has no output");
    CHECK(nn_window_axis(224, 11, 4, 2, 2, 0) == 55, "AlexNet-style 11/4 pad 2 on 224: %d",
          nn_window_axis(224, 11, 4, 2, 2, 0));
    /* Even input, stride 2, 'same': pad 1 in total, all of it bottom/right. */
    CHECK(nn_window_plan(&win, 8, 8, 3, 3, 2, 2, 1) && win.oh == 4 && win.pad_t == 0 && win.pad_l == 0,
          "8/3x3/2 same: oh %d pad_t %d", win.oh, win.pad_t);
    /* Odd input: pad 2, one on each side. */
    CHECK(nn_window_plan(&win, 9, 9, 3, 3, 2, 2, 1) && win.oh == 5 && win.pad_t == 1,
          "9/3x3/2 same: oh %d pad_t %d", win.oh, win.pad_t);
    /* 5x5/2 on 8: pad 3, 1 top and 2 bottom. */
    CHECK(nn_window_plan(&win, 8, 8, 5, 5, 2, 2, 1) && win.oh == 4 && win.pad_t == 1,
          "8/5x5/2 same: oh %d pad_t %d", win.oh, win.pad_t);
    /* 1x7 'same' stride 1: 3 left, 3 right, none vertically. */
    CHECK(nn_window_plan(&win, 5, 6, 1, 7, 1, 1, 1) && win.oh == 5 && win.ow == 6 && win.pad_t == 0 &&
              win.pad_l == 3,
          "1x7 same: %dx%d pad %d,%d", win.oh, win.ow, win.pad_t, win.pad_l);
    /* 1x1 stride 2 'same' on 8: would need -1, so no pad. */
    CHECK(nn_window_plan(&win, 8, 8, 1, 1, 2, 2, 1) && win.oh == 4 && win.pad_t == 0,
          "8/1x1/2 same: oh %d pad_t %d", win.oh, win.pad_t);
    CHECK(nn_window_plan(&win, 9, 8, 3, 3, 2, 2, 0) && win.oh == 4 && win.ow == 3 && win.pad_t == 0,
          "9x8/3x3/2 valid: %dx%d", win.oh, win.ow);
    CHECK(!nn_window_plan(&win, 2, 5, 3, 3, 1, 1, 0), "window larger than a 'valid' input must fail");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
    const double t0 = now_s();
    test_window_plan();
    test_relu_edges();

    /* 1. Finite differences. Two input sizes: 8x7 (even H: stride-2 'same'
     * pads bottom only or unevenly) and 7x10 (even W, odd H); band plans
     * cycle through one band, single rows, and two rows. */
    static const int fd_sizes[][2] = {{8, 7}, {7, 10}};
    static const int fd_bands[] = {0, 1, 2};
    int cycle = 0;
    const int gemm_paths = nn_cpu() >= NN_CPU_AVX2 ? 2 : 1; /* sgemm, then the tile */
    for (int gp = 0; gp < gemm_paths; gp++) {
        gemm_path = gp ? NN_CONV_TILE : NN_CONV_SGEMM;
        for (int sz = 0; sz < 2; sz++)
            for (int ks = 0; ks < N_SHAPES; ks++)
                for (int s = 1; s <= 2; s++)
                    for (int same = 0; same <= 1; same++)
                        for (int relu = 0; relu <= 1; relu++)
                            test_conv_grad(3, 4, fd_sizes[sz][0], fd_sizes[sz][1], kernel_shapes[ks][0],
                                           kernel_shapes[ks][1], s, same, fd_bands[cycle++ % 3], relu);
    }
    /* PyTorch's explicit padding: ResNet's and GoogLeNet's 7x7/2 pad 3, an
     * 11x11/4 pad 2, InceptionV3's 1x7 and 7x1 pads, asymmetric pads (only
     * a hand-made graph has them), on both GEMM paths. */
    for (int gp = 0; gp < gemm_paths; gp++) {
        gemm_path = gp ? NN_CONV_TILE : NN_CONV_SGEMM;
        set_pads(3, 3, 3, 3, 0, 0);
        test_conv_grad(3, 4, 15, 12, 7, 7, 2, PADDED, 0, 1);
        test_conv_grad(2, 3, 13, 16, 7, 7, 2, PADDED, 2, 0);
        set_pads(2, 2, 2, 2, 0, 0);
        test_conv_grad(2, 3, 23, 19, 11, 11, 4, PADDED, 1, 1);
        set_pads(0, 0, 3, 3, 0, 0);
        test_conv_grad(3, 4, 7, 10, 1, 7, 1, PADDED, 0, 1);
        set_pads(3, 3, 0, 0, 0, 0);
        test_conv_grad(3, 4, 9, 6, 7, 1, 1, PADDED, 2, 1);
        set_pads(1, 0, 2, 1, 0, 0);
        test_conv_grad(3, 4, 8, 7, 3, 3, 1, PADDED, 1, 1);
        test_conv_grad(3, 4, 8, 7, 3, 3, 2, PADDED, 0, 0);
        set_pads(4, 0, 0, 5, 0, 0); /* pads past the window: rows of bias alone */
        test_conv_grad(2, 3, 6, 7, 3, 3, 1, PADDED, 0, 1);
        set_pads(1, 1, 1, 1, 0, 0); /* a padded 1x1 is no pointwise conv: its output outgrows the input */
        test_conv_grad(3, 4, 6, 7, 1, 1, 1, PADDED, 0, 1);
        set_pads(0, 2, 1, 0, 0, 0);
        test_conv_grad(3, 4, 7, 5, 1, 1, 1, PADDED, 1, 0);
        test_conv_naive(5, 7, 13, 11, 1, 1, 1, PADDED, 3, 1, 1);
    }
    const double t1 = now_s();

    /* PyTorch's pools: GoogLeNet's 3x3/2 and 2x2/2 ceil_mode (odd and even
     * sides, a partial last window), its branch pool 3x3/1 pad 1 ceil,
     * ResNet's 3x3/2 pad 1; InceptionV3's 3x3/1 pad 1 average counting the
     * padding (torchvision's default), ceil windows cut short by the
     * padding's edge, and explicit pads without counting them. */
    set_pads(0, 0, 0, 0, 1, 0);
    test_maxpool(3, 12, 11, 3, 2, PADDED);
    test_maxpool(2, 13, 14, 2, 2, PADDED);
    test_maxpool(2, 7, 75, 3, 2, PADDED);
    set_pads(1, 1, 1, 1, 1, 0);
    test_maxpool(3, 9, 8, 3, 1, PADDED);
    test_maxpool(2, 7, 70, 3, 1, PADDED);
    set_pads(1, 1, 1, 1, 0, 0);
    test_maxpool(3, 10, 9, 3, 2, PADDED);
    test_maxpool(2, 6, 70, 3, 2, PADDED);
    set_pads(1, 1, 1, 1, 0, 1);
    test_avgpool(3, 7, 6, 3, 1, PADDED);
    test_avgpool(2, 8, 71, 3, 1, PADDED);
    set_pads(1, 1, 1, 1, 1, 1);
    test_avgpool(2, 8, 9, 3, 2, PADDED);
    test_avgpool(2, 6, 6, 2, 2, PADDED);
    set_pads(1, 1, 1, 1, 1, 0);
    test_avgpool(2, 8, 9, 3, 2, PADDED);
    set_pads(0, 1, 1, 0, 0, 1);
    test_avgpool(2, 7, 8, 3, 1, PADDED);
    test_add(2, 3, 999);
    test_add(3, 2, 4099);
    test_add(2, 5, 8);
    test_add(2, 4, 1);

    test_maxpool(3, 9, 8, 3, 2, 0);  /* InceptionV3's 3x3/2 'valid' */
    test_maxpool(2, 8, 7, 3, 2, 0);
    test_maxpool(3, 7, 6, 3, 1, 1);  /* 3x3/1 'same' */
    test_maxpool(2, 8, 9, 3, 1, 1);
    test_maxpool(3, 8, 6, 2, 2, 0);  /* 2x2/2 */
    test_maxpool(2, 7, 9, 2, 2, 0);  /* odd: last row/column dropped */
    test_maxpool(2, 7, 9, 2, 2, 1);  /* odd 'same': pad bottom/right */
    test_maxpool(2, 8, 7, 3, 2, 1);  /* even 'same' stride 2: pad bottom only */
    test_maxpool(2, 7, 75, 3, 2, 0); /* rows of 37: two groups of 16 windows (AVX-512) and a tail */
    test_maxpool(3, 6, 70, 3, 2, 1);
    test_maxpool(2, 6, 71, 2, 2, 0); /* 2x2/2 rows of 35: vectors of 16 and 8, and a tail */
    test_maxpool(2, 5, 43, 3, 1, 1); /* 3x3/1 rows of 41 inside windows */
    test_avgpool(3, 7, 6, 3, 1, 1);  /* InceptionV3's 3x3/1 'same' */
    test_avgpool(2, 8, 9, 3, 1, 1);
    test_avgpool(2, 8, 7, 3, 2, 1);  /* asymmetric pad */
    test_avgpool(2, 9, 8, 3, 2, 0);
    test_relu(3, 13);
    test_relu(2, 16);
    test_relu(5, 1);

    /* 2. Naive against optimised on odd shapes, every kernel shape, stride,
     * padding and band plan (1, 3 and all rows), with bias + fused ReLU, and
     * the two other combinations in turn. */
    static const int naive_bands[] = {1, 3, 0};
    for (int gp = 0; gp < gemm_paths; gp++) {
        gemm_path = gp ? NN_CONV_TILE : NN_CONV_SGEMM;
        for (int ks = 0; ks < N_SHAPES; ks++)
            for (int s = 1; s <= 2; s++)
                for (int same = 0; same <= 1; same++)
                    for (int bi = 0; bi < 3; bi++) {
                        const int kh = kernel_shapes[ks][0], kw = kernel_shapes[ks][1];
                        test_conv_naive(5, 7, 13, 11, kh, kw, s, same, naive_bands[bi], 1, 1);
                        test_conv_naive(5, 7, 13, 11, kh, kw, s, same, naive_bands[bi], bi != 1, 0);
                    }
        /* A plane of more than 8 outputs not divisible by 8 across many
         * channels, a wide pointwise layer that exercises the GEMM with
         * K > C, and for the tile: K over two panels and rows crossing
         * 32-column panels (stride 1 and 2). */
        test_conv_naive(3, 17, 9, 7, 3, 3, 1, 1, 2, 1, 1);
        test_conv_naive(19, 6, 6, 5, 1, 1, 1, 0, 0, 1, 1);
        test_conv_naive(7, 29, 9, 45, 1, 7, 1, 1, 0, 1, 1);
        test_conv_naive(6, 26, 11, 37, 3, 3, 2, 0, 2, 1, 1);
        test_conv_naive(40, 13, 7, 70, 1, 1, 1, 0, 0, 1, 1);
        /* 'same' stride 2 with right padding, and a 32-column panel that
         * starts at a row's last output (row 22 of 7 outputs: 22 * 7 + 6 =
         * 160): its window's right column lies past the row. */
        test_conv_naive(3, 5, 46, 14, 3, 3, 2, 1, 0, 1, 1);
        test_conv_naive(3, 5, 46, 14, 5, 5, 2, 1, 0, 1, 0);
        /* Every offset of a 32-column panel against an output row: widths
         * 9 .. 41 over 7 rows, both strides and paddings, windows 3x3 and
         * 1x7 (the packer reads the im2col straight from the input). */
        if (gemm_path == NN_CONV_TILE)
            for (int w = 9; w <= 41; w++)
                for (int s = 1; s <= 2; s++)
                    for (int same = 0; same <= 1; same++) {
                        test_conv_naive(2, 3, 7, w, 3, 3, s, same, 0, 1, 1);
                        test_conv_naive(2, 3, 7, w, 1, 7, s, same, 0, 1, 0);
                    }
    }

    /* 3. Winograd: odd and even sides, 'same' and 'valid' (its backward
     * pads by 1 and 2), C and K off any blocking, rows of 16+ blocks. */
    test_winograd(3, 4, 7, 9, 1);
    test_winograd(5, 7, 8, 11, 0);
    test_winograd(13, 29, 11, 14, 1);
    test_winograd(4, 6, 9, 70, 1);
    test_winograd(6, 5, 8, 67, 0);
    test_winograd(5, 3, 10, 133, 1);  /* two 16-block groups and a tail */
    test_winograd(3, 5, 13, 130, 0);
    set_pads(1, 1, 1, 1, 0, 0); /* PyTorch's 3x3 pad 1 (as 'same'), then pads of 0 to 2 */
    test_winograd(5, 7, 8, 11, PADDED);
    set_pads(0, 2, 2, 1, 0, 0);
    test_winograd(4, 6, 9, 70, PADDED);
    test_winograd(3, 5, 7, 9, PADDED);

    /* 4. The plain loops beside the AVX-512 paths (mask bits, masking dout,
     * Winograd's transforms, pools), on machines where those would run. */
    for (int level = NN_CPU_PLAIN; level < (int)nn_cpu(); level++) {
        nn_cpu_cap((nn_cpu_level)level);
        gemm_path = level >= NN_CPU_AVX2 ? NN_CONV_TILE : NN_CONV_SGEMM;
        test_maxpool(2, 7, 75, 3, 2, 0);
        test_maxpool(3, 6, 70, 3, 2, 1);
        test_maxpool(2, 6, 71, 2, 2, 0);
        test_maxpool(2, 5, 43, 3, 1, 1);
        test_avgpool(2, 8, 9, 3, 1, 1);
        test_conv_naive(5, 7, 13, 11, 3, 3, 1, 1, 3, 1, 1);
        test_conv_naive(3, 17, 9, 7, 3, 3, 1, 1, 2, 1, 1);
        test_conv_naive(5, 7, 13, 11, 5, 5, 2, 0, 0, 1, 1);
        test_winograd(5, 3, 10, 133, 1);
        test_winograd(3, 5, 13, 130, 0);
        test_conv_naive(7, 29, 9, 45, 1, 7, 1, 1, 0, 1, 1);
        test_conv_naive(6, 26, 11, 37, 3, 3, 2, 0, 2, 1, 1);
        nn_cpu_cap(NN_CPU_LEVELS);
    }
    /* 5. AVX2 and AVX-512 run the same arithmetic in the tile and in
     * Winograd: the same bits both ways. */
    test_tile(1, 1, 1);
    test_tile(13, 37, 29);
    test_tile(24, 64, 100);
    test_tile(7, 33, 3);
    if (nn_cpu() >= NN_CPU_AVX512) {
        test_levels_agree(13, 29, 11, 70, 3, 3, 1, 1, NN_CONV_WINOGRAD);
        test_levels_agree(6, 5, 8, 67, 3, 3, 1, 0, NN_CONV_WINOGRAD);
        test_levels_agree(7, 29, 9, 45, 1, 7, 1, 1, NN_CONV_TILE);
        test_levels_agree(6, 26, 11, 37, 3, 3, 2, 0, NN_CONV_TILE);
        test_levels_agree(40, 13, 7, 70, 1, 1, 1, 0, NN_CONV_TILE);
    }
    const double t2 = now_s();

    fprintf(stderr,
            "max |diff| / max|want|: backward vs finite differences %.3g, backward vs adjoint %.3g,\n"
            "  forward vs double %.3g, nn_conv_forward_ref vs double %.3g; "
            "%d of %d ReLU outputs within %.0e of the kink skipped\n"
            "time: conv finite differences %.2f s, rest %.2f s\n",
            worst_fd, worst_adjoint, worst_fwd, worst_ref, kinks_skipped, outputs_total, KINK,
            t1 - t0, t2 - t1);
    return check_done("nn_grad");
}
