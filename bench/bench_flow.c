/* bench_flow: one optical flow method on two raw float32 planes, for
 * bench/flow_accuracy.py. Writes u then v (raw float32, h x w each) and
 * prints the best time of the runs in milliseconds on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "video/flow.h"

static const struct {
    const char *name;
    video_flow_fn fn;
} METHODS[] = {
    {"farneback", video_flow_farneback},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int read_plane(const char *path, float *p, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t got = fread(p, sizeof *p, n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_flow METHOD W H A.f32 B.f32 FLOW.f32 [THREADS [RUNS]]\n  METHOD:");
        for (size_t m = 0; m < sizeof METHODS / sizeof METHODS[0]; m++) fprintf(stderr, " %s", METHODS[m].name);
        fputc('\n', stderr);
        return 2;
    }
    video_flow_fn fn = NULL;
    for (size_t m = 0; m < sizeof METHODS / sizeof METHODS[0]; m++)
        if (!strcmp(argv[1], METHODS[m].name)) fn = METHODS[m].fn;
    const int w = atoi(argv[2]), h = atoi(argv[3]);
    const int threads = argc > 7 ? atoi(argv[7]) : 1, runs = argc > 8 ? atoi(argv[8]) : 5;
    if (!fn || w < 1 || h < 1 || runs < 1) {
        fprintf(stderr, "bench_flow: bad method, size or runs\n");
        return 2;
    }
    const size_t n = (size_t)w * h;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *uv = malloc(2 * n * sizeof *uv);
    if (!a || !b || !uv) {
        fprintf(stderr, "bench_flow: out of memory\n");
        return 1;
    }
    if (read_plane(argv[4], a, n) || read_plane(argv[5], b, n)) {
        fprintf(stderr, "bench_flow: cannot read %s or %s as %dx%d floats\n", argv[4], argv[5], w, h);
        return 1;
    }
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        const double t0 = now_s();
        const dd_status st = fn(a, b, h, w, threads, uv, uv + n);
        const double t = now_s() - t0;
        if (st) {
            fprintf(stderr, "bench_flow: %s: %s\n", dd_strerror(st), dd_last_error());
            return 1;
        }
        if (t < best) best = t;
    }
    FILE *f = fopen(argv[6], "wb");
    if (!f || fwrite(uv, sizeof *uv, 2 * n, f) != 2 * n || fclose(f)) {
        fprintf(stderr, "bench_flow: cannot write %s\n", argv[6]);
        return 1;
    }
    printf("%.3f\n", 1e3 * best);
    free(a), free(b), free(uv);
    return 0;
}
