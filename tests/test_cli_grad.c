/* The dream is honest: run by tests/test_cli.sh after
 *   deepdream --octaves 1 --steps 1 --jitter 0 --step-size S IN OUT
 * on an RGB image that fits in one tile. That one step must be
 *   x += S * g / (std(g) + 1e-8)
 * with g the gradient of the default objective at the whole image, unrolled
 * and unshifted. This program computes g with the library from IN and
 * compares it with what the CLI did (OUT - IN, in network units):
 * correlation > 0.99 and the slope within 2 % of S / std(g). Pixels that the
 * CLI clipped at 0 or full scale are left out.
 *
 * With "fast" the library's gradient is taken in fast mode, as the CLI's
 * --fast computed it. With GUIDE and LAYERS, the objective is the guide's
 * on those layers (--guide GUIDE -l LAYERS).
 *
 * usage: test_cli_grad IN OUT STEP_SIZE [exact|fast [GUIDE LAYERS]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"
#include "image/image.h"
#include "support.h"

int main(int argc, char **argv) {
    if (argc != 4 && !((argc == 5 || argc == 7) && (!strcmp(argv[4], "exact") || !strcmp(argv[4], "fast")))) {
        fprintf(stderr, "usage: test_cli_grad IN OUT STEP_SIZE [exact|fast [GUIDE LAYERS]]\n");
        return 2;
    }
    const int fast = argc == 5 && !strcmp(argv[4], "fast");
    const double step = atof(argv[3]);
    dd_image *in = load_image_file(argv[1]), *out = load_image_file(argv[2]);
    dd_model *model = NULL;
    if (!in || !out || dd_model_load_default(&model)) {
        fprintf(stderr, "test_cli_grad: setup failed: %s\n", dd_last_error());
        return 1;
    }
    const int w = dd_image_width(in), h = dd_image_height(in), ch = dd_image_channels(in);
    const int depth = dd_image_depth(in);
    CHECK(w == dd_image_width(out) && h == dd_image_height(out), "size %dx%d -> %dx%d", w, h,
          dd_image_width(out), dd_image_height(out));
    CHECK(ch == 3 && dd_image_channels(out) == 3, "channels %d -> %d, want RGB", ch, dd_image_channels(out));
    CHECK(depth == dd_image_depth(out), "depth %d -> %d", depth, dd_image_depth(out));
    if (check_failures) return check_done("test_cli_grad");

    const size_t plane = (size_t)w * h;
    float divisor[3], offset[3];
    dd_model_input_mapping(model, divisor, offset);
    float *x = malloc(3 * plane * sizeof *x), *g = malloc(3 * plane * sizeof *g);
    double *delta = malloc(3 * plane * sizeof *delta);
    unsigned char *clipped = calloc(3 * plane, 1);
    const unsigned full = depth == 16 ? 65535 : 255;
    const double unit = depth == 16 ? 257.0 : 1.0; /* to 0..255 */
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            const unsigned a = img_get(in, i * 3 + (size_t)c), b = img_get(out, i * 3 + (size_t)c);
            x[c * plane + i] = (float)(a / unit / divisor[c] + offset[c]);
            delta[c * plane + i] = ((double)b - (double)a) / unit / divisor[c];
            clipped[c * plane + i] = b == 0 || b == full;
        }

    dd_term terms[64];
    int n_terms = 0;
    dd_net *net = NULL;
    dd_guide *guide = NULL;
    dd_image *guide_image = argc == 7 ? load_image_file(argv[5]) : NULL;
    double objective = 0;
    if ((argc == 7 && !guide_image) || dd_terms_parse(model, argc == 7 ? argv[6] : dd_default_layers(), terms, 64, &n_terms) ||
        (guide_image && dd_guide_new(model, terms, n_terms, guide_image, 1, &guide)) ||
        dd_net_new(model, terms, n_terms, h, w, 1, &net) || dd_net_set_fast(net, fast) ||
        dd_net_set_guide(net, guide) || dd_net_gradient(net, x, g, &objective)) {
        fprintf(stderr, "test_cli_grad: gradient failed: %s\n", dd_last_error());
        return 1;
    }

    /* std(g) over the whole image, as the dream normalises it. */
    double gs = 0, gq = 0;
    for (size_t i = 0; i < 3 * plane; i++) gs += g[i], gq += (double)g[i] * g[i];
    const double gmean = gs / (3.0 * plane), gstd = sqrt(gq / (3.0 * plane) - gmean * gmean);

    /* Pearson correlation and least-squares slope of delta on g, unclipped. */
    double sg = 0, sd = 0, sgg = 0, sdd = 0, sgd = 0, max_delta = 0;
    size_t n = 0;
    for (size_t i = 0; i < 3 * plane; i++) {
        if (fabs(delta[i]) > max_delta) max_delta = fabs(delta[i]);
        if (clipped[i]) continue;
        const double a = g[i], b = delta[i];
        sg += a, sd += b, sgg += a * a, sdd += b * b, sgd += a * b, n++;
    }
    const double cov = sgd - sg * sd / n, vg = sgg - sg * sg / n, vd = sdd - sd * sd / n;
    const double corr = cov / sqrt(vg * vd);
    const double slope = sgd / sgg, want_slope = step / (gstd + 1e-8);
    fprintf(stderr,
            "test_cli_grad: %s%s, %dx%d %d-bit, objective %.6g, std(g) %.4g, %zu of %zu samples unclipped, "
            "max |change| %.4g network units, correlation %.6f, slope %.5g (want %.5g)\n",
            fast && dd_net_fast(net) ? "fast" : "exact", guide ? ", guided" : "", w, h, depth, objective, gstd, n, 3 * plane, max_delta, corr, slope, want_slope);
    CHECK(max_delta > 0.25 * step, "the CLI hardly changed the image: max |change| %.3g", max_delta);
    CHECK(n > 3 * plane * 9 / 10, "%zu of %zu samples clipped", 3 * plane - n, 3 * plane);
    CHECK(corr > 0.99, "correlation of the CLI's change with the library's gradient %.6f <= 0.99", corr);
    check_rel("slope of change on gradient (step / std(g))", slope, want_slope, 0.02);

    free(x), free(g), free(delta), free(clipped);
    dd_net_free(net);
    dd_guide_free(guide);
    dd_image_free(guide_image);
    dd_model_free(model);
    dd_image_free(in), dd_image_free(out);
    return check_done("test_cli_grad");
}
