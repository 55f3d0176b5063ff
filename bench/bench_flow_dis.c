/* dd_bench_flow_dis: DIS optical flow at one size on pairs made from a
 * photo by known motions: mean endpoint error and the best time of several
 * runs per thread count. --dump writes the pairs (raw 8-bit planes) and
 * their true flows (raw float32) for the same measurement elsewhere. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow_frames.h"
#include "video/flow.h"
#include "video/flow_dis.h"

static const char *const usage =
    "usage: dd_bench_flow_dis [--image PNG] [--size WxH] [--reps N] [--threads 1,2] [--dump DIR]\n"
    "                         [--patch N] [--stride N] [--iters N] [--finest N] [--min-side N]\n"
    "                         [--normalize 0|1] [--var N] [--prior F]\n"
    "                         [--alpha F]\n"
    "Frames are rounded to whole levels (8-bit video). One line per motion on stdout.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_raw(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f)) {
        fprintf(stderr, "%s: cannot write\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *image = "samples/coffee.png", *dump = NULL, *thread_list = "1,2";
    int w = 640, h = 360, reps = 7;
    flow_dis_options o;
    video_flow_dis_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) {
            fputs(usage, stderr);
            return 2;
        }
        i++;
        if (!strcmp(arg, "--image")) image = val;
        else if (!strcmp(arg, "--size") && sscanf(val, "%dx%d", &w, &h) == 2) {}
        else if (!strcmp(arg, "--reps")) reps = atoi(val);
        else if (!strcmp(arg, "--threads")) thread_list = val;
        else if (!strcmp(arg, "--dump")) dump = val;
        else if (!strcmp(arg, "--patch")) o.patch_px = atoi(val);
        else if (!strcmp(arg, "--stride")) o.stride_px = atoi(val);
        else if (!strcmp(arg, "--iters")) o.iterations = atoi(val);
        else if (!strcmp(arg, "--finest")) o.finest_level = atoi(val);
        else if (!strcmp(arg, "--min-side")) o.min_side_px = atoi(val);
        else if (!strcmp(arg, "--normalize")) o.normalize = atoi(val);
        else if (!strcmp(arg, "--var")) o.var_iterations = atoi(val);
        else if (!strcmp(arg, "--prior")) o.prior = (float)atof(val);
        else if (!strcmp(arg, "--alpha")) o.var_alpha = (float)atof(val);
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    int sh, sw;
    float *src = frames_load_luma(image, &sh, &sw);
    if (!src) return 1;
    /* Scaled to cover w x h, the centre cropped. */
    const double s = fmax((double)w / sw, (double)h / sh);
    float *a = frames_resample(src, sh, sw, s, (int)((sw * s - w) / 2), (int)((sh * s - h) / 2), h, w);
    free(src);
    const size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) a[i] = roundf(a[i]);
    static const struct {
        const char *name;
        frames_motion m;
    } motions[] = {{"t(2,0)", {2, 0, 0, 1}},          {"t(0,-3)", {0, -3, 0, 1}},     {"t(5,4)", {5, 4, 0, 1}},
                   {"t(1.5,-0.75)", {1.5, -0.75, 0, 1}}, {"t(0.3,0.2)", {0.3, 0.2, 0, 1}}, {"t(12,-7)", {12, -7, 0, 1}},
                   {"rot0.5", {0, 0, 0.5, 1}},         {"rot2", {0, 0, 2, 1}},          {"zoom1.02", {0, 0, 0, 1.02}},
                   {"zero", {0, 0, 0, 1}}};
    float *b = xmalloc(n * sizeof *b), *gu = xmalloc(n * sizeof *gu), *gv = xmalloc(n * sizeof *gv);
    float *u = xmalloc(n * sizeof *u), *v = xmalloc(n * sizeof *v);
    unsigned char *bytes = xmalloc(n);
    printf("# %dx%d from %s, patch %d stride %d iters %d finest %d min-side %d normalize %d prior %g var %d alpha %g\n", w,
           h, image, o.patch_px, o.stride_px, o.iterations, o.finest_level, o.min_side_px, o.normalize, o.prior,
           o.var_iterations, o.var_alpha);
    double epe_sum = 0;
    for (size_t m = 0; m < sizeof motions / sizeof motions[0]; m++) {
        frames_warp(a, h, w, &motions[m].m, b, gu, gv);
        for (size_t i = 0; i < n; i++) b[i] = roundf(b[i]);
        const int border = (int)ceil(frames_max_motion(gu, gv, h, w)) + 4;
        if (dump) {
            char name[64];
            if (m == 0) {
                for (size_t i = 0; i < n; i++) bytes[i] = (unsigned char)a[i];
                if (write_raw(dump, "a.u8", bytes, n)) return 1;
            }
            for (size_t i = 0; i < n; i++) bytes[i] = (unsigned char)b[i];
            snprintf(name, sizeof name, "b%zu.u8", m);
            if (write_raw(dump, name, bytes, n)) return 1;
            snprintf(name, sizeof name, "gu%zu.f32", m);
            if (write_raw(dump, name, gu, n * sizeof *gu)) return 1;
            snprintf(name, sizeof name, "gv%zu.f32", m);
            if (write_raw(dump, name, gv, n * sizeof *gv)) return 1;
        }
        printf("%-13s border %2d", motions[m].name, border);
        double epe = 0;
        for (const char *t = thread_list; *t;) {
            const int threads = atoi(t);
            double best = INFINITY;
            for (int r = 0; r < reps; r++) {
                const double t0 = now_s();
                if (video_flow_dis_with(a, b, h, w, threads, &o, u, v)) {
                    fprintf(stderr, "flow: %s\n", dd_last_error());
                    return 1;
                }
                best = fmin(best, now_s() - t0);
            }
            epe = frames_epe(u, v, gu, gv, h, w, border);
            printf("  epe %.4f  %dT %6.2f ms", epe, threads, 1e3 * best);
            t = strchr(t, ',');
            if (!t) break;
            t++;
        }
        epe_sum += epe;
        printf("\n");
    }
    printf("# mean epe %.4f\n", epe_sum / (double)(sizeof motions / sizeof motions[0]));
    free(a), free(b), free(gu), free(gv), free(u), free(v), free(bytes);
    return 0;
}
