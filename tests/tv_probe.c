/* The library's side of tests/test_torchvision.py: a model's layer statistics
 * and input gradients, written as files the test compares with torchvision.
 *
 * usage: tv_probe MODEL PIXELS.f32 H W OUTDIR [GRAD_LAYER ...]
 *
 * PIXELS.f32 holds 3*H*W little-endian float32, planar RGB, in 0..255. The
 * network input is pixel / divisor[c] + offset[c] (dd_model_input_mapping).
 * Writes
 *   OUTDIR/stats.txt       "NAME CHANNEL MEAN MAX" for every channel of every
 *                          layer, from one forward pass (terms of weight 0);
 *   OUTDIR/grad_NAME.f32   d mean(NAME) / d pixel, 3*H*W float32 (planar);
 *   OUTDIR/objective.txt   "obj NAME VALUE" per gradient layer.
 * Only the public API is used. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepdream.h"

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "tv_probe: %s: %s\n", what, detail);
    return 1;
}

static int little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* n float32 from path, exactly (a longer or shorter file is an error). */
static int read_floats(const char *path, float *out, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(path, "cannot open");
    unsigned char *raw = malloc(4 * n);
    size_t got = raw ? fread(raw, 4, n, fp) : 0;
    const int extra = raw && fgetc(fp) != EOF;
    fclose(fp);
    if (!raw) return fail(path, "out of memory");
    if (got != n || extra) {
        free(raw);
        return fail(path, "not 3*H*W float32 values");
    }
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                           (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
    free(raw);
    return 0;
}

static int write_floats(const char *path, const float *v, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return fail(path, "cannot create");
    size_t put = 0;
    if (little_endian()) {
        put = fwrite(v, 4, n, fp);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            const unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                        (unsigned char)(u >> 24)};
            put += fwrite(b, 4, 1, fp);
        }
    }
    if (fclose(fp) != 0 || put != n) return fail(path, "write failed");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: tv_probe MODEL PIXELS.f32 H W OUTDIR [GRAD_LAYER ...]\n");
        return 2;
    }
    const int h = atoi(argv[3]), w = atoi(argv[4]);
    const char *outdir = argv[5];
    if (h < 1 || w < 1 || h > 8192 || w > 8192) return fail("size", "H and W must be in 1..8192");
    const size_t plane = (size_t)h * w;
    char path[4096];
    int rc = 1;
    dd_model *model = NULL;
    dd_net *net = NULL;
    dd_term *terms = NULL;
    FILE *fp = NULL;
    float *pixels = malloc(3 * plane * sizeof *pixels), *x = malloc(3 * plane * sizeof *x);
    float *grad = malloc(3 * plane * sizeof *grad);
    if (!pixels || !x || !grad) {
        fail("memory", "out of memory");
        goto done;
    }
    if (read_floats(argv[2], pixels, 3 * plane)) goto done;
    if (dd_model_load_file(argv[1], &model)) {
        fail(argv[1], dd_last_error());
        goto done;
    }
    float divisor[3], offset[3];
    dd_model_input_mapping(model, divisor, offset);
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) x[c * plane + i] = pixels[c * plane + i] / divisor[c] + offset[c];

    /* One weight-0 term per channel of every layer: one forward pass. */
    const int n_layers = dd_model_layer_count(model);
    int n_terms = 0;
    for (int l = 0; l < n_layers; l++) n_terms += dd_model_layer_channels(model, l);
    terms = malloc((size_t)(n_terms ? n_terms : 1) * sizeof *terms);
    if (!terms) {
        fail("memory", "out of memory");
        goto done;
    }
    for (int l = 0, t = 0; l < n_layers; l++)
        for (int c = 0; c < dd_model_layer_channels(model, l); c++)
            terms[t++] = (dd_term){dd_model_layer_name(model, l), c, 0.0f};
    if (dd_net_new(model, terms, n_terms, h, w, 0, &net) || dd_net_forward(net, x, NULL)) {
        fail("forward", dd_last_error());
        goto done;
    }
    snprintf(path, sizeof path, "%s/stats.txt", outdir);
    if (!(fp = fopen(path, "w"))) {
        fail(path, "cannot create");
        goto done;
    }
    for (int t = 0; t < n_terms; t++) {
        dd_layer_stats s;
        if (dd_net_term_stats(net, t, &s)) {
            fail("stats", dd_last_error());
            goto done;
        }
        fprintf(fp, "%s %d %.9g %.9g\n", terms[t].layer, terms[t].channel, s.mean, s.max);
    }
    if (fclose(fp) != 0) {
        fp = NULL;
        fail(path, "write failed");
        goto done;
    }
    fp = NULL;
    dd_net_free(net);
    net = NULL;

    snprintf(path, sizeof path, "%s/objective.txt", outdir);
    if (!(fp = fopen(path, "w"))) {
        fail(path, "cannot create");
        goto done;
    }
    for (int a = 6; a < argc; a++) {
        const dd_term term = {argv[a], -1, 1.0f};
        double objective = 0;
        if (dd_net_new(model, &term, 1, h, w, 0, &net) || dd_net_gradient(net, x, grad, &objective)) {
            fail(argv[a], dd_last_error());
            goto done;
        }
        dd_net_free(net);
        net = NULL;
        /* d/d pixel = d/d input * d input/d pixel */
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++) grad[c * plane + i] /= divisor[c];
        char gpath[4096];
        snprintf(gpath, sizeof gpath, "%s/grad_%s.f32", outdir, argv[a]);
        if (write_floats(gpath, grad, 3 * plane)) goto done;
        fprintf(fp, "obj %s %.9g\n", argv[a], objective);
    }
    if (fclose(fp) != 0) {
        fp = NULL;
        fail(path, "write failed");
        goto done;
    }
    fp = NULL;
    rc = 0;
done:
    if (fp) fclose(fp);
    dd_net_free(net);
    dd_model_free(model);
    free(terms);
    free(pixels);
    free(x);
    free(grad);
    return rc;
}
