/* Guides (dd_guide_new, dd_net_set_guide, dd_params.guide):
 * - on the small torch-style graph (tests/fuzz/corpus/model/torch_ops.safetensors),
 *   the guide's features, the objective sum_i max_j <x_i, y_j> and its input
 *   gradient at the first convolution (before its ReLU: linear in the
 *   input) against a double-precision reference written here from the
 *   definition;
 * - deeper layers (max pool, the residual add, ReLUs): the gradient's
 *   directional derivatives against central differences of the objective;
 * - weighted terms add; the same bits for 1 and 2 threads;
 * - refusals: a channel term, a guide too small, a net of another objective;
 * - dd_dream with a guide on the built-in model: it dreams, differently from
 *   the plain objective, the same bytes for any thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 17
#include "check.h"
#include "deepdream.h"
#include "image/image.h"
#include "model/model.h"
#include "model/net.h"
#include "support.h"

enum { H = 21, W = 26, GH = 17, GW = 19 };

/* An RGB 8-bit image of random pixels. */
static dd_image *random_image(int w, int h) {
    dd_image *im = NULL;
    if (img_new(w, h, 3, 8, 0, &im)) {
        fprintf(stderr, "img_new: %s\n", dd_last_error());
        exit(1);
    }
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img_set(im, i, (unsigned)(rng_u64() % 256));
    return im;
}

/* Node `name`'s conv in double: out (k x oh x ow) = W * in + b, explicit pads. */
static void conv_double(const model_node *mn, const double *in, int h, int w, double *out, int oh, int ow) {
    for (int k = 0; k < mn->channels; k++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double s = mn->bias ? mn->bias[k] : 0;
                for (int c = 0; c < mn->in_channels; c++)
                    for (int ky = 0; ky < mn->kh; ky++)
                        for (int kx = 0; kx < mn->kw; kx++) {
                            const int y = oy * mn->sh - mn->pad[0] + ky, x = ox * mn->sw - mn->pad[2] + kx;
                            if (y < 0 || y >= h || x < 0 || x >= w) continue;
                            s += (double)mn->weights[((k * mn->in_channels + c) * mn->kh + ky) * mn->kw + kx] *
                                 in[((size_t)c * h + y) * w + x];
                        }
                out[((size_t)k * oh + oy) * ow + ox] = s;
            }
}

/* The gradient of sum_i <out_i, seed_i> with respect to in (conv_double's
 * transpose). */
static void conv_double_backward(const model_node *mn, const double *seed, int oh, int ow, double *gin, int h,
                                 int w) {
    memset(gin, 0, sizeof(double) * (size_t)mn->in_channels * h * w);
    for (int k = 0; k < mn->channels; k++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int c = 0; c < mn->in_channels; c++)
                    for (int ky = 0; ky < mn->kh; ky++)
                        for (int kx = 0; kx < mn->kw; kx++) {
                            const int y = oy * mn->sh - mn->pad[0] + ky, x = ox * mn->sw - mn->pad[2] + kx;
                            if (y < 0 || y >= h || x < 0 || x >= w) continue;
                            gin[((size_t)c * h + y) * w + x] +=
                                (double)mn->weights[((k * mn->in_channels + c) * mn->kh + ky) * mn->kw + kx] *
                                seed[((size_t)k * oh + oy) * ow + ox];
                        }
}

static int out_side(int n, int k, int s, int pad_a, int pad_b) { return (n + pad_a + pad_b - k) / s + 1; }

/* A net for spec at H x W with the guide made from gimg for it; the
 * objective and gradient at x. */
static double guided_run(const dd_model *m, const char *spec, const dd_image *gimg, const float *x, float *grad,
                         int threads) {
    dd_term terms[4];
    int n = 0;
    dd_guide *guide = NULL;
    dd_net *net = NULL;
    double objective = NAN;
    if (dd_terms_parse(m, spec, terms, 4, &n) || dd_guide_new(m, terms, n, gimg, threads, &guide) ||
        dd_net_new(m, terms, n, H, W, threads, &net) || dd_net_set_guide(net, guide) ||
        dd_net_gradient(net, x, grad, &objective))
        CHECK(0, "guided %s: %s", spec, dd_last_error());
    dd_net_free(net);
    dd_guide_free(guide);
    return objective;
}

/* c1 before its ReLU: every number from the definition, in double. */
static void reference_case(const dd_model *m, const dd_image *gimg, const float *x) {
    const model_node *mn = &m->nodes[m->layers[model_find_layer(m, "c1")].node];
    float divisor[3], offset[3];
    dd_model_input_mapping(m, divisor, offset);
    const int oh = out_side(H, mn->kh, mn->sh, mn->pad[0], mn->pad[1]), ow = out_side(W, mn->kw, mn->sw, mn->pad[2], mn->pad[3]);
    const int goh = out_side(GH, mn->kh, mn->sh, mn->pad[0], mn->pad[1]), gow = out_side(GW, mn->kw, mn->sw, mn->pad[2], mn->pad[3]);
    const int k = mn->channels, P = oh * ow, N = goh * gow;
    double *xin = xmalloc(sizeof(double) * 3 * H * W), *gin = xmalloc(sizeof(double) * 3 * GH * GW);
    for (int i = 0; i < 3 * H * W; i++) xin[i] = x[i];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < GH * GW; i++) gin[c * GH * GW + i] = img_get(gimg, (size_t)i * 3 + c) / (double)divisor[c] + offset[c];
    double *act = xmalloc(sizeof(double) * k * P), *feat = xmalloc(sizeof(double) * k * N);
    double *seed = xmalloc(sizeof(double) * k * P), *want = xmalloc(sizeof(double) * 3 * H * W);
    conv_double(mn, xin, H, W, act, oh, ow);
    conv_double(mn, gin, GH, GW, feat, goh, gow);
    double objective = 0, closest = INFINITY; /* the smallest gap between a best and a runner-up match */
    for (int i = 0; i < P; i++) {
        double best = -INFINITY, second = -INFINITY;
        int at = 0;
        for (int j = 0; j < N; j++) {
            double dot = 0;
            for (int c = 0; c < k; c++) dot += act[c * P + i] * feat[c * N + j];
            if (dot > best) second = best, best = dot, at = j;
            else if (dot > second) second = dot;
        }
        objective += best;
        if (best - second < closest) closest = best - second;
        for (int c = 0; c < k; c++) seed[c * P + i] = feat[c * N + at];
    }
    conv_double_backward(mn, seed, oh, ow, want, H, W);

    /* The guide's features as dd_guide_new saw them. */
    dd_term term = {"c1", -1, 1.0f};
    dd_guide *guide = NULL;
    CHECK(dd_guide_new(m, &term, 1, gimg, 2, &guide) == DD_OK, "dd_guide_new: %s", dd_last_error());
    if (!guide) return;
    double fmax = 0, ferr = 0;
    const float *got_feat = guide->layers[0].features;
    for (int i = 0; i < k * N; i++) {
        fmax = fmax > fabs(feat[i]) ? fmax : fabs(feat[i]);
        ferr = ferr > fabs(got_feat[i] - feat[i]) ? ferr : fabs(got_feat[i] - feat[i]);
    }
    CHECK(guide->layers[0].n == N, "guide positions %d, want %d", guide->layers[0].n, N);
    CHECK(ferr <= 1e-6 * fmax, "guide features: max |diff| %.3g of max %.3g", ferr, fmax);
    dd_guide_free(guide);

    float *g = xmalloc(sizeof(float) * 3 * H * W);
    const double got = guided_run(m, "c1", gimg, x, g, 2);
    check_rel("c1 guided objective vs double", got, objective, 1e-6);
    double gmax = 0, gerr = 0;
    for (int i = 0; i < 3 * H * W; i++) {
        gmax = gmax > fabs(want[i]) ? gmax : fabs(want[i]);
        gerr = gerr > fabs(g[i] - want[i]) ? gerr : fabs(g[i] - want[i]);
    }
    CHECK(gmax > 0 && gerr <= 1e-6 * gmax, "c1 guided gradient vs double: max |diff| %.3g of max %.3g", gerr, gmax);
    fprintf(stderr, "c1: objective %.9g (double %.9g), gradient max |diff| / max %.2g, closest match gap %.3g\n", got,
            objective, gerr / gmax, closest);
    free(xin), free(gin), free(act), free(feat), free(seed), free(want), free(g);
}

/* Deeper layers: g . d against (f(x + h d) - f(x - h d)) / 2h in double,
 * for random directions d. The objective is piecewise linear in the input
 * (ReLUs, max pools, argmaxes): the difference is exact wherever no kink
 * lies within h, and h is small next to the inputs' spread. */
static void direction_case(const dd_model *m, const dd_image *gimg, const float *x, const char *spec) {
    float *g = xmalloc(sizeof(float) * 3 * H * W), *gq = xmalloc(sizeof(float) * 3 * H * W);
    float *xp = xmalloc(sizeof(float) * 3 * H * W);
    guided_run(m, spec, gimg, x, g, 2);
    double worst = 0;
    for (int r = 0; r < 6; r++) {
        double d[3 * H * W], dot = 0, norm = 0;
        for (int i = 0; i < 3 * H * W; i++) d[i] = rng_uniform(-1, 1), dot += d[i] * g[i], norm += fabs(d[i] * g[i]);
        const double h = 1e-3;
        for (int i = 0; i < 3 * H * W; i++) xp[i] = (float)(x[i] + h * d[i]);
        const double up = guided_run(m, spec, gimg, xp, gq, 2);
        for (int i = 0; i < 3 * H * W; i++) xp[i] = (float)(x[i] - h * d[i]);
        const double down = guided_run(m, spec, gimg, xp, gq, 2);
        const double err = fabs((up - down) / (2 * h) - dot) / norm;
        if (!(err <= worst)) worst = err;
    }
    CHECK(worst < 2e-3, "%s guided: directional derivative vs central difference: %.3g of sum |d g|", spec, worst);
    fprintf(stderr, "%s: directional derivatives within %.2g of sum |d g|\n", spec, worst);
    free(g), free(gq), free(xp);
}

/* Written as comparisons, not fmax: aarch64's gcc 12 stops with an
 * internal error vectorising an fmax reduction. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (d > e) e = d;
    }
    return e;
}

static void torch_ops_cases(const char *path) {
    dd_model *m = NULL;
    if (dd_model_load_file(path, &m)) {
        CHECK(0, "%s: %s", path, dd_last_error());
        return;
    }
    dd_image *gimg = random_image(GW, GH);
    static float x[3 * H * W];
    for (int i = 0; i < 3 * H * W; i++) x[i] = (float)rng_uniform(-2, 2);
    reference_case(m, gimg, x);
    direction_case(m, gimg, x, "block");
    direction_case(m, gimg, x, "p1,c2");

    /* Weighted terms add, and the thread count changes no bit. */
    static float g1[3 * H * W], g2[3 * H * W], g3[3 * H * W], g4[3 * H * W];
    const double a = guided_run(m, "c1", gimg, x, g1, 2), b = guided_run(m, "block", gimg, x, g2, 2);
    const double ab = guided_run(m, "c1=0.5,block=2", gimg, x, g3, 2);
    check_rel("0.5 c1 + 2 block, guided", ab, 0.5 * a + 2 * b, 1e-6);
    double err = 0, scale = 0;
    for (int i = 0; i < 3 * H * W; i++) {
        const double d = fabs(g3[i] - (0.5 * g1[i] + 2 * g2[i])), m = fabs(g3[i]);
        if (d > err) err = d;
        if (m > scale) scale = m;
    }
    CHECK(err <= 1e-5 * scale, "grad(0.5 c1 + 2 block) vs the sum of theirs: %.3g of %.3g", err, scale);
    const double one = guided_run(m, "c1=0.5,block=2", gimg, x, g4, 1);
    CHECK(one == ab && !memcmp(g3, g4, sizeof g3), "1 thread: objective %.17g vs %.17g, gradient max |diff| %.3g", one,
          ab, max_abs_diff(g3, g4, 3 * H * W));

    /* Refusals. */
    dd_term terms[2];
    int n = 0;
    dd_guide *guide = NULL;
    dd_net *net = NULL;
    dd_terms_parse(m, "block:1", terms, 2, &n);
    CHECK(dd_guide_new(m, terms, n, gimg, 1, &guide) == DD_ERR_INVALID_ARG && !guide &&
              strstr(dd_last_error(), "block:1: a guide matches whole layers"),
          "a channel term: '%s'", dd_last_error());
    dd_image *tiny = random_image(2, 2);
    dd_terms_parse(m, "p2", terms, 2, &n);
    CHECK(dd_guide_new(m, terms, n, tiny, 1, &guide) == DD_ERR_TOO_SMALL && !guide &&
              !strcmp(dd_last_error(), "guide 2x2 is too small for p2 (needs at least 5x5)"),
          "a guide too small: '%s'", dd_last_error());
    dd_guide_new(m, terms, n, gimg, 1, &guide);
    dd_terms_parse(m, "block", terms, 2, &n);
    dd_net_new(m, terms, n, H, W, 1, &net);
    CHECK(net && guide && dd_net_set_guide(net, guide) == DD_ERR_INVALID_ARG &&
              strstr(dd_last_error(), "other layers than the objective's (p2)"),
          "a guide for p2 on a net for block: '%s'", dd_last_error());
    CHECK(net && dd_net_set_guide(net, NULL) == DD_OK, "no guide: %s", dd_last_error());
    dd_net_free(net);
    dd_guide_free(guide);
    dd_image_free(tiny);
    dd_image_free(gimg);
    dd_model_free(m);
}

/* The whole dream with a guide on the built-in model, 1 and 2 threads. */
static void dream_cases(const char *samples) {
    char path[4096];
    snprintf(path, sizeof path, "%s/coffee.png", samples);
    dd_image *guide_img = load_image_file(path);
    dd_model *m = NULL;
    if (!guide_img || dd_model_load_default(&m)) {
        CHECK(0, "setup: %s", dd_last_error());
        return;
    }
    dd_image *photo = random_image(96, 80);
    dd_term terms[2];
    int n = 0;
    dd_guide *guide = NULL;
    CHECK(dd_terms_parse(m, "mixed3", terms, 2, &n) == DD_OK && dd_guide_new(m, terms, n, guide_img, 0, &guide) == DD_OK,
          "guide from coffee.png: %s", dd_last_error());
    if (!guide) return;
    CHECK(guide->height == 341 && guide->width == 512, "coffee.png (600x400) seen at %dx%d, want 512x341",
          guide->width, guide->height);
    dd_image *out[3];
    for (int r = 0; r < 3; r++) {
        dd_params p = dd_params_default();
        p.terms = terms, p.n_terms = n, p.octaves = 2, p.steps = 2, p.threads = r == 1 ? 1 : 2;
        if (r == 2) p.threads = 0; /* one per core */
        p.guide = r < 2 ? guide : NULL;
        unsigned char *bytes = NULL;
        size_t size = 0;
        CHECK(dd_image_save_memory(photo, DD_FORMAT_PNG, 0, NULL, &bytes, &size) == DD_OK &&
                  dd_image_load_memory(bytes, size, 0, &out[r]) == DD_OK,
              "copy: %s", dd_last_error());
        free(bytes);
        CHECK(dd_dream(m, &p, out[r], NULL, NULL) == DD_OK, "dream %d: %s", r, dd_last_error());
    }
    const size_t bytes = (size_t)96 * 80 * 3;
    size_t moved = 0, differ = 0;
    for (size_t i = 0; i < bytes; i++) moved += img_get(out[0], i) != img_get(photo, i), differ += img_get(out[0], i) != img_get(out[2], i);
    CHECK(moved > bytes / 2, "the guided dream changed %zu of %zu samples", moved, bytes);
    CHECK(differ > bytes / 2, "guided and plain dreams differ in %zu of %zu samples", differ, bytes);
    size_t threads_differ = 0;
    for (size_t i = 0; i < bytes; i++) threads_differ += img_get(out[0], i) != img_get(out[1], i);
    CHECK(threads_differ == 0, "guided dream: %zu samples differ between 1 and 2 threads", threads_differ);

    /* A guide made for other layers than the dream's objective. */
    dd_params p = dd_params_default();
    p.guide = guide, p.octaves = 1, p.steps = 1; /* the default layers, not mixed3 */
    CHECK(dd_dream(m, &p, out[1], NULL, NULL) == DD_ERR_INVALID_ARG, "a guide for mixed3 in a default dream: %s",
          dd_last_error());
    for (int r = 0; r < 3; r++) dd_image_free(out[r]);
    dd_image_free(photo);
    dd_image_free(guide_img);
    dd_guide_free(guide);
    dd_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_guide SAMPLES_DIR\n");
        return 2;
    }
    torch_ops_cases("fuzz/corpus/model/torch_ops.safetensors");
    dream_cases(argv[1]);
    return check_done("test_guide");
}
