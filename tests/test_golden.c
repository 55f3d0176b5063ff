/* The real default model against the independent reference numbers in
 * data/golden.json (reference_float64), at the tolerances of its README:
 * every layer's shape/sum/mean/max, the objective mean(mixed3) + mean(mixed5),
 * the input gradient's statistics, samples and exact zero region. */
#include <cblas.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"
#include "nn/nn.h"

enum { C = 3, H = 128, W = 160 };

static double num(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "data/golden.json";
    const int threads = argc > 2 ? atoi(argv[2]) : 0;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    json_t *ref = json_object_get(root, "reference_float64");
    json_t *layers = json_object_get(ref, "layers"), *grad_ref = json_object_get(ref, "input_grad");
    json_t *input_ref = json_object_get(root, "input");

    static float in[C * H * W], grad[C * H * W];
    double sum = 0, abs_sum = 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float v = (float)(sin(0.1 * (c + 1) * x + 0.07 * y) * cos(0.13 * y - 0.05 * (c + 1) * x + c));
                in[(c * H + y) * W + x] = v;
                sum += v, abs_sum += fabs(v);
            }
    check_rel("input sum", sum, num(input_ref, "check_sum"), 1e-9);
    check_rel("input abs_sum", abs_sum, num(input_ref, "check_abs_sum"), 1e-9);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(input_ref, "check_values_cyx"), i, s) {
        json_t *at = json_object_get(s, "cyx");
        const int c = (int)json_integer_value(json_array_get(at, 0)), y = (int)json_integer_value(json_array_get(at, 1)),
                  x = (int)json_integer_value(json_array_get(at, 2));
        CHECK(in[(c * H + y) * W + x] == (float)num(s, "value"), "input value at %d,%d,%d", c, y, x);
    }

    /* Objective terms first, then every other layer with weight 0 for its
     * statistics. */
    static const char *names[] = {"mixed3", "mixed5", "activation_1", "activation_2", "activation_3",
                                  "max_pooling2d_1", "activation_4", "activation_5", "max_pooling2d_2",
                                  "mixed0", "mixed1", "mixed2", "mixed4"};
    enum { N_TERMS = sizeof names / sizeof *names };
    dd_term terms[N_TERMS];
    for (int t = 0; t < N_TERMS; t++) terms[t] = (dd_term){names[t], -1, t < 2 ? 1.0f : 0.0f};

    dd_model *model = NULL;
    dd_net *net = NULL;
    if (dd_model_load_default(&model) || dd_net_new(model, terms, N_TERMS, H, W, threads, &net)) {
        fprintf(stderr, "setup failed: %s\n", dd_last_error());
        return 1;
    }
    double objective = 0;
    CHECK(dd_net_gradient(net, in, grad, &objective) == DD_OK, "gradient: %s", dd_last_error());

    char what[128];
    for (int t = 0; t < N_TERMS; t++) {
        json_t *l = json_object_get(layers, names[t]), *shape = json_object_get(l, "shape_nchw");
        dd_layer_stats st;
        dd_net_term_stats(net, t, &st);
        CHECK(st.channels == json_integer_value(json_array_get(shape, 1)) &&
                  st.height == json_integer_value(json_array_get(shape, 2)) &&
                  st.width == json_integer_value(json_array_get(shape, 3)),
              "%s: shape %dx%dx%d", names[t], st.channels, st.height, st.width);
        snprintf(what, sizeof what, "%s sum", names[t]);
        check_rel(what, st.sum, num(l, "sum"), 1e-4);
        snprintf(what, sizeof what, "%s mean", names[t]);
        check_rel(what, st.mean, num(l, "mean"), 1e-4);
        snprintf(what, sizeof what, "%s max", names[t]);
        check_rel(what, st.max, num(l, "max"), 1e-4);
    }
    check_rel("objective", objective, num(ref, "objective_mean_mixed3_plus_mean_mixed5"), 1e-4);

    /* Gradient statistics, accumulated in double. */
    double g_sum = 0, g_abs = 0, g_max = 0, ch_sum[C] = {0};
    for (int c = 0; c < C; c++)
        for (int k = 0; k < H * W; k++) {
            const double g = grad[c * H * W + k];
            g_sum += g, g_abs += fabs(g), ch_sum[c] += g;
            if (fabs(g) > g_max) g_max = fabs(g);
        }
    double mean = g_sum / (C * H * W), var = 0;
    for (int k = 0; k < C * H * W; k++) var += (grad[k] - mean) * (grad[k] - mean);
    const double ref_abs = num(grad_ref, "abs_sum"), ref_max = num(grad_ref, "max_abs");
    check_close("grad sum", g_sum, num(grad_ref, "sum"), 1e-4 * ref_abs);
    check_rel("grad abs_sum", g_abs, ref_abs, 1e-4);
    check_rel("grad max_abs", g_max, ref_max, 1e-4);
    check_rel("grad std", sqrt(var / (C * H * W - 1)), num(grad_ref, "std"), 1e-4);
    for (int c = 0; c < C; c++) {
        snprintf(what, sizeof what, "grad channel %d sum", c);
        check_close(what, ch_sum[c], json_number_value(json_array_get(json_object_get(grad_ref, "per_channel_sum"), (size_t)c)),
                    1e-4 * ref_abs);
    }
    json_array_foreach(json_object_get(grad_ref, "samples"), i, s) {
        json_t *at = json_object_get(s, "cyx");
        const int c = (int)json_integer_value(json_array_get(at, 0)), y = (int)json_integer_value(json_array_get(at, 1)),
                  x = (int)json_integer_value(json_array_get(at, 2));
        const double want = num(s, "value");
        snprintf(what, sizeof what, "grad sample [%d,%d,%d]", c, y, x);
        if (want == 0.0) CHECK(grad[(c * H + y) * W + x] == 0.0f, "%s must be exactly 0", what);
        else check_close(what, grad[(c * H + y) * W + x], want, 1e-3 * fabs(want) + 1e-6 * ref_max);
    }

    /* Zero region: exact, and it starts exactly where the reference says. */
    const int zr = (int)json_integer_value(json_object_get(grad_ref, "zero_rows_from"));
    const int zc = (int)json_integer_value(json_object_get(grad_ref, "zero_cols_from"));
    int first_zero_row = H, first_zero_col = W;
    for (int y = H - 1; y >= 0; y--) {
        int all = 1;
        for (int c = 0; c < C; c++)
            for (int x = 0; x < W; x++) all &= grad[(c * H + y) * W + x] == 0.0f;
        if (!all) break;
        first_zero_row = y;
    }
    for (int x = W - 1; x >= 0; x--) {
        int all = 1;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++) all &= grad[(c * H + y) * W + x] == 0.0f;
        if (!all) break;
        first_zero_col = x;
    }
    CHECK(first_zero_row == zr, "zero rows from %d, want %d", first_zero_row, zr);
    CHECK(first_zero_col == zc, "zero cols from %d, want %d", first_zero_col, zc);

    /* The same net run again gives the same bits (no state leaks between
     * passes), and forward alone gives the same objective. */
    static float grad2[C * H * W];
    double objective2 = 0, objective3 = 0;
    dd_net_gradient(net, in, grad2, &objective2);
    CHECK(memcmp(grad, grad2, sizeof grad) == 0 && objective == objective2, "second pass differs");
    dd_net_forward(net, in, &objective3);
    CHECK(objective3 == objective, "forward-only objective %.17g != %.17g", objective3, objective);

    /* 1, 2 and 3 threads give the same bits: every split of work is fixed
     * by the shapes, every reduction runs in a fixed order, and OpenBLAS
     * only ever runs single-threaded calls of a fixed grid. */
    for (int t = 1; t <= 3; t++) {
        static float grad1[C * H * W];
        dd_net *net1 = NULL;
        double objective1 = 0;
        if (t == threads) continue;
        CHECK(dd_net_new(model, terms, N_TERMS, H, W, t, &net1) == DD_OK, "%d-thread net: %s", t, dd_last_error());
        if (net1) dd_net_gradient(net1, in, grad1, &objective1);
        CHECK(net1 && memcmp(grad, grad1, sizeof grad) == 0 && objective == objective1,
              "%d thread(s) and %d threads differ (kernels %s)", t, threads, nn_cpu_name(nn_cpu()));
        dd_net_free(net1);
    }

    /* The OpenBLAS loaded is the build configure found (its RUNPATH), not
     * another the system's alternatives name: on Debian the OpenMP one,
     * which shares our thread team (docs/PORTING.md). */
#if DD_BLAS_OPENBLAS && DD_BLAS_PARALLEL >= 0
    CHECK(openblas_get_parallel() == DD_BLAS_PARALLEL, "OpenBLAS threading model %d, want %d (configure's)",
          openblas_get_parallel(), DD_BLAS_PARALLEL);
#endif

    fprintf(stderr, "kernels %s, objective %.10f, arena %.1f MiB\n", nn_cpu_name(nn_cpu()), objective,
            dd_net_arena_bytes(net) / 1048576.0);
    dd_net_free(net);
    dd_model_free(model);
    json_decref(root);
    return check_done("golden");
}
