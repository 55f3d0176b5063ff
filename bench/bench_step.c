/* dd_bench: median time of a forward pass and of one gradient step (objective
 * mean(mixed5) on the built-in model, or a model file's own default layers)
 * per square input size, against OpenBLAS sgemm timed on the
 * network's own forward GEMM shapes in the same run. JSON lines on stdout. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "deepdream.h"
#include "model/net.h"

enum { MAX_SIZES = 16, MAX_REPS = 1000 };

typedef struct bench_opts {
    int sizes[MAX_SIZES];
    int n_sizes;
    int threads;
    int reps;
    int modes; /* MODE_EXACT | MODE_FAST */
    const char *model;  /* a model file, or NULL for the built-in */
    const char *layers; /* the objective, or NULL: mixed5, or the file's default */
} bench_opts;

enum { MODE_EXACT = 1, MODE_FAST = 2 };

static const char *const usage =
    "usage: dd_bench [--sizes 299,512,1024] [--mode exact,fast] [--threads N] [--reps N]\n"
    "                [--model FILE] [--layers SPEC]\n"
    "  --sizes    square input sides, comma separated (default 299,512,1024)\n"
    "  --mode     exact (float32), fast (bfloat16 products, dd_net_set_fast) or both,\n"
    "             comma separated (default exact)\n"
    "  --threads  threads for the net and for OpenBLAS (default: online cores)\n"
    "  --reps     timed repetitions after one warm-up; medians are reported (default 3)\n"
    "  --model    a model file (default: the built-in model)\n"
    "  --layers   the objective, as deepdream -l (default: mixed5 on the built-in model,\n"
    "             else the file's own default layers)\n"
    "One JSON line per size on stdout after a header line; a summary on stderr.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t in place; the median of n > 0 values. */
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, by_value);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Peak resident set of the process so far, KiB (Linux ru_maxrss unit). */
static long peak_rss_kib(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* Deterministic uniform floats in [-1, 1): the numbers themselves do not
 * matter, only that they are not denormal or all zero. */
static void fill_random(float *x, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005u + 1442695040888963407u;
        x[i] = (float)(*state >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
}

static float *alloc_floats(size_t n) {
    const size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static int parse_modes(char *list, bench_opts *o) {
    o->modes = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "exact")) o->modes |= MODE_EXACT;
        else if (!strcmp(tok, "fast")) o->modes |= MODE_FAST;
        else return 0;
    }
    return o->modes != 0;
}

static int parse_sizes(char *list, bench_opts *o) {
    o->n_sizes = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (o->n_sizes == MAX_SIZES || !parse_int(tok, 1, 65536, &o->sizes[o->n_sizes])) return 0;
        o->n_sizes++;
    }
    return o->n_sizes > 0;
}

/* Returns 0 on a usage error, after saying why. */
static int parse_opts(int argc, char **argv, bench_opts *o) {
    static const int default_sizes[] = {299, 512, 1024};
    memcpy(o->sizes, default_sizes, sizeof default_sizes);
    o->n_sizes = 3, o->threads = 0, o->reps = 3, o->modes = MODE_EXACT, o->model = o->layers = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dd_bench: %s: %s\n", opt,
                    strncmp(opt, "--", 2) ? "unknown argument" : "missing value or unknown option");
            return 0;
        }
        char *val = argv[++i];
        int ok;
        if (!strcmp(opt, "--sizes")) ok = parse_sizes(val, o);
        else if (!strcmp(opt, "--threads")) ok = parse_int(val, 1, 1024, &o->threads);
        else if (!strcmp(opt, "--reps")) ok = parse_int(val, 1, MAX_REPS, &o->reps);
        else if (!strcmp(opt, "--mode")) ok = parse_modes(val, o);
        else if (!strcmp(opt, "--model")) ok = *val != 0, o->model = val;
        else if (!strcmp(opt, "--layers")) ok = *val != 0, o->layers = val;
        else {
            fprintf(stderr, "dd_bench: %s: unknown option\n", opt);
            return 0;
        }
        if (!ok) {
            fprintf(stderr, "dd_bench: %s: bad value '%s'\n", opt, val);
            return 0;
        }
    }
    if (o->threads == 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = n > 0 && n < INT_MAX ? (int)n : 1;
    }
    return 1;
}

/* ---- OpenBLAS on the net's own GEMMs ------------------------------------- */

typedef struct gemm_set {
    net_gemm *g;
    int n;
    float *a, *b, *c; /* big enough for every shape, either direction */
    double flops;     /* one pass over the set */
} gemm_set;

static int gemm_set_init(gemm_set *s, const dd_net *net) {
    memset(s, 0, sizeof *s);
    s->n = net_gemm_shapes(net, NULL, 0);
    s->g = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->g);
    if (!s->g) return 0;
    net_gemm_shapes(net, s->g, s->n);
    size_t a_max = 0, bc_max = 0;
    for (int i = 0; i < s->n; i++) {
        const net_gemm *g = &s->g[i];
        const size_t mk = (size_t)g->m * g->k, kn = (size_t)g->k * g->n, mn = (size_t)g->m * g->n;
        if (mk > a_max) a_max = mk;
        if (kn > bc_max) bc_max = kn;
        if (mn > bc_max) bc_max = mn;
        s->flops += 2.0 * (double)g->m * g->n * g->k * g->calls;
    }
    s->a = alloc_floats(a_max), s->b = alloc_floats(bc_max), s->c = alloc_floats(bc_max);
    if (!s->a || !s->b || !s->c) return 0;
    uint64_t state = 42;
    fill_random(s->a, a_max, &state);
    fill_random(s->b, bc_max, &state);
    fill_random(s->c, bc_max, &state);
    return 1;
}

static void gemm_set_free(gemm_set *s) {
    free(s->g), free(s->a), free(s->b), free(s->c);
}

/* One pass over the set: forward as the net runs it (C = W x col, NoTrans /
 * NoTrans), or backward (col = W^T x dY, the transposed shapes). */
static double gemm_set_time(const gemm_set *s, int backward) {
    const double t0 = now_s();
    for (int i = 0; i < s->n; i++) {
        const net_gemm *g = &s->g[i];
        for (int r = 0; r < g->calls; r++) {
            if (backward)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->k, g->n, g->m, 1.0f, s->a, g->k,
                            s->b, g->n, 0.0f, s->c, g->n);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, s->a, g->k,
                            s->b, g->n, 0.0f, s->c, g->n);
        }
    }
    return now_s() - t0;
}

/* The median of reps passes (the caller warms up once). */
static double gemm_set_median(const gemm_set *s, int backward, int reps, double *t) {
    for (int r = 0; r < reps; r++) t[r] = gemm_set_time(s, backward);
    return median(t, reps);
}

/* ---- one size ------------------------------------------------------------ */

typedef struct mode_times {
    const char *mode, *kernel;
    double fwd_s, fwd_min_s, step_s, step_min_s, objective;
    double grad_corr; /* against the exact gradient on the same input; 1 for exact */
    net_profile profile; /* per step */
} mode_times;

/* Pearson correlation of two vectors, in double. */
static double correlation(const float *a, const float *b, size_t n) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < n; i++) {
        sa += a[i], sb += b[i];
        saa += (double)a[i] * a[i], sbb += (double)b[i] * b[i], sab += (double)a[i] * b[i];
    }
    const double cov = sab - sa * sb / (double)n;
    const double va = saa - sa * sa / (double)n, vb = sbb - sb * sb / (double)n;
    return va > 0 && vb > 0 ? cov / sqrt(va * vb) : 0.0;
}

/* Times forward and step of net in its current mode; grad gets the gradient. */
static void time_mode(dd_net *net, const float *input, float *grad, int reps, double *t,
                      mode_times *m) {
    /* One gradient call warms both passes: it touches every arena page and
     * starts the worker threads. */
    dd_net_gradient(net, input, grad, &m->objective);
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        dd_net_forward(net, input, NULL);
        t[r] = now_s() - t0;
    }
    m->fwd_s = median(t, reps), m->fwd_min_s = t[0];
    memset(&m->profile, 0, sizeof m->profile);
    net_set_profile(net, &m->profile);
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        dd_net_gradient(net, input, grad, NULL);
        t[r] = now_s() - t0;
    }
    net_set_profile(net, NULL);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < NET_PROFILE_KINDS; k++) m->profile.seconds[pass][k] /= reps;
    m->step_s = median(t, reps), m->step_min_s = t[0];
}

/* "profile":{"forward":{"conv":s,...},"backward":{...}}, seconds per step. */
static void print_profile(const net_profile *p) {
    printf("\"profile\":{");
    for (int pass = 0; pass < 2; pass++) {
        printf("%s\"%s\":{", pass ? "," : "", pass ? "backward" : "forward");
        for (int k = 0; k < NET_PROFILE_KINDS; k++)
            printf("%s\"%s\":%.6f", k ? "," : "", net_profile_name(k), p->seconds[pass][k]);
        putchar('}');
    }
    printf("},");
}

static int bench_size(const dd_model *model, const dd_term *terms, int n_terms, int side, const bench_opts *o) {
    const size_t n_in = (size_t)3 * side * side;
    dd_net *net = NULL;
    float *input = NULL, *grad = NULL, *grad_exact = NULL;
    double *t = malloc((size_t)o->reps * sizeof *t);
    gemm_set gs = {0};
    mode_times modes[2];
    int n_modes = 0, ok = 0;
    dd_status st = dd_net_new(model, terms, n_terms, side, side, o->threads, &net);
    if (st != DD_OK) {
        fprintf(stderr, "dd_bench: %dx%d: %s: %s\n", side, side, dd_strerror(st), dd_last_error());
        goto done;
    }
    input = alloc_floats(n_in), grad = alloc_floats(n_in), grad_exact = alloc_floats(n_in);
    if (!input || !grad || !grad_exact || !t) {
        fprintf(stderr, "dd_bench: %dx%d: out of memory\n", side, side);
        goto done;
    }
    uint64_t state = 1;
    fill_random(input, n_in, &state);

    /* Exact first, so the fast gradient can be compared with it. */
    if (o->modes & MODE_EXACT) {
        mode_times *m = &modes[n_modes++];
        *m = (mode_times){.mode = "exact", .kernel = "float32", .grad_corr = 1.0};
        time_mode(net, input, grad_exact, o->reps, t, m);
    }
    if (o->modes & MODE_FAST) {
        if ((st = dd_net_set_fast(net, 1)) != DD_OK) {
            fprintf(stderr, "dd_bench: %dx%d: fast mode: %s: %s\n", side, side, dd_strerror(st), dd_last_error());
            goto done;
        }
        mode_times *m = &modes[n_modes++];
        *m = (mode_times){.mode = "fast", .kernel = dd_net_fast(net) ? dd_fast_kernel() : "float32 (no fast kernel)",
                          .grad_corr = NAN};
        time_mode(net, input, grad, o->reps, t, m);
        if (o->modes & MODE_EXACT) m->grad_corr = correlation(grad, grad_exact, n_in);
        dd_net_set_fast(net, 0);
    }
    const long rss_kib = peak_rss_kib(); /* before the sgemm buffers below */

    /* Rates count the direct convolutions' FLOPs (the sgemm shapes'), so that
     * paths compare; the arithmetic the paths run is reported beside. */
    double arith_fwd, arith_bwd;
    dd_net_flops(net, &arith_fwd, &arith_bwd);
    if (!gemm_set_init(&gs, net)) {
        fprintf(stderr, "dd_bench: %dx%d: out of memory for the sgemm buffers\n", side, side);
        goto done;
    }
    openblas_set_num_threads(o->threads);
    gemm_set_time(&gs, 0);
    const double sgemm_s = gemm_set_median(&gs, 0, o->reps, t);
    const double sgemm_bwd_s = gemm_set_median(&gs, 1, o->reps, t);
    int calls = 0;
    for (int i = 0; i < gs.n; i++) calls += gs.g[i].calls;
    const double sgemm_gflops = gs.flops / sgemm_s * 1e-9;
    const double sgemm_bwd_gflops = gs.flops / sgemm_bwd_s * 1e-9;
    const double flops_fwd = gs.flops, flops_bwd = gs.flops;

    for (int i = 0; i < n_modes; i++) {
        const mode_times *m = &modes[i];
        const double fwd_gflops = flops_fwd / m->fwd_s * 1e-9;
        const double step_gflops = (flops_fwd + flops_bwd) / m->step_s * 1e-9;
        printf("{\"size\":%d,\"mode\":\"%s\",\"fast_kernel\":", side, m->mode);
        print_json_string(m->kernel);
        printf(",\"threads\":%d,\"reps\":%d,\"objective\":%.9g,", o->threads, o->reps, m->objective);
        print_profile(&m->profile);
        if (isnan(m->grad_corr)) printf("\"grad_corr_vs_exact\":null,");
        else printf("\"grad_corr_vs_exact\":%.6f,", m->grad_corr);
        printf("\"forward_s\":%.6f,\"forward_min_s\":%.6f,\"step_s\":%.6f,\"step_min_s\":%.6f,"
               "\"flops_forward\":%.0f,\"flops_backward\":%.0f,"
               "\"arith_flops_forward\":%.0f,\"arith_flops_backward\":%.0f,"
               "\"forward_gflops\":%.2f,\"step_gflops\":%.2f,"
               "\"arena_bytes\":%zu,\"peak_rss_kib\":%ld,"
               "\"sgemm_shapes\":%d,\"sgemm_calls\":%d,\"sgemm_flops\":%.0f,"
               "\"sgemm_s\":%.6f,\"sgemm_gflops\":%.2f,"
               "\"sgemm_bwd_s\":%.6f,\"sgemm_bwd_gflops\":%.2f,"
               "\"forward_frac_of_sgemm\":%.3f,\"step_frac_of_sgemm\":%.3f}\n",
               m->fwd_s, m->fwd_min_s, m->step_s, m->step_min_s, flops_fwd, flops_bwd, arith_fwd, arith_bwd, fwd_gflops,
               step_gflops, dd_net_arena_bytes(net), rss_kib, gs.n, calls, gs.flops, sgemm_s, sgemm_gflops,
               sgemm_bwd_s, sgemm_bwd_gflops, fwd_gflops / sgemm_gflops, step_gflops / sgemm_gflops);
        fflush(stdout);
        fprintf(stderr,
                "dd_bench: %4dx%-4d %-5s forward %7.3f s (%5.1f GFLOP/s)  step %7.3f s (%5.1f GFLOP/s)  "
                "sgemm fwd %5.1f bwd %5.1f GFLOP/s  step/sgemm %.2f  arena %.1f MiB  peak RSS %.1f MiB",
                side, side, m->mode, m->fwd_s, fwd_gflops, m->step_s, step_gflops, sgemm_gflops,
                sgemm_bwd_gflops, step_gflops / sgemm_gflops, (double)dd_net_arena_bytes(net) / (1 << 20),
                (double)rss_kib / 1024);
        if (!isnan(m->grad_corr) && i > 0) fprintf(stderr, "  corr %.5f", m->grad_corr);
        fputc('\n', stderr);
        fprintf(stderr, "dd_bench: %4dx%-4d %-5s per step, forward / backward ms:", side, side, m->mode);
        for (int k = 0; k < NET_PROFILE_KINDS; k++)
            fprintf(stderr, "  %s %.1f / %.1f", net_profile_name(k), 1e3 * m->profile.seconds[0][k],
                    1e3 * m->profile.seconds[1][k]);
        fputc('\n', stderr);
    }
    fprintf(stderr, "dd_bench: %4dx%-4d direct-convolution GFLOP per pass %.1f; the kernels run %.1f forward, %.1f backward\n",
            side, side, gs.flops * 1e-9, arith_fwd * 1e-9, arith_bwd * 1e-9);
    ok = 1;
done:
    gemm_set_free(&gs);
    free(input), free(grad), free(grad_exact), free(t);
    dd_net_free(net);
    return ok;
}

int main(int argc, char **argv) {
    bench_opts o;
    if (!parse_opts(argc, argv, &o)) {
        fputs(usage, stderr);
        return 2;
    }
    dd_model *model = NULL;
    dd_status st = o.model ? dd_model_load_file(o.model, &model) : dd_model_load_default(&model);
    if (st != DD_OK) {
        fprintf(stderr, "dd_bench: %s: %s: %s\n", o.model ? o.model : "default model", dd_strerror(st),
                dd_last_error());
        return 1;
    }
    enum { MAX_TERMS = 16 };
    dd_term terms[MAX_TERMS];
    int n_terms = 0;
    const char *layers = o.layers ? o.layers : o.model ? dd_model_default_layers(model) : "mixed5";
    if ((st = dd_terms_parse(model, layers, terms, MAX_TERMS, &n_terms)) != DD_OK) {
        fprintf(stderr, "dd_bench: %s: %s\n", layers, dd_last_error());
        dd_model_free(model);
        return 2;
    }
    openblas_set_num_threads(o.threads);
    const char *coretype = getenv("OPENBLAS_CORETYPE"), *kernels = NULL;
    if (dd_cpu_kernels(&kernels) != DD_OK) {
        fprintf(stderr, "dd_bench: %s\n", dd_last_error());
        dd_model_free(model);
        return 2;
    }
    /* openblas_parallel: 0 sequential, 1 its own pthreads pool, 2 OpenMP. */
    printf("{\"bench\":\"dd_bench\",\"version\":\"%s\",\"threads\":%d,\"reps\":%d,"
           "\"cpus_online\":%ld,\"openblas_threads\":%d,\"openblas_parallel\":%d,\"openblas_config\":",
           DD_VERSION_STRING, o.threads, o.reps, sysconf(_SC_NPROCESSORS_ONLN), openblas_get_num_threads(),
           openblas_get_parallel());
    print_json_string(openblas_get_config());
    printf(",\"openblas_corename\":");
    print_json_string(openblas_get_corename());
    printf(",\"kernels\":");
    print_json_string(kernels);
    printf(",\"DD_CPU\":");
    if (getenv("DD_CPU")) print_json_string(getenv("DD_CPU"));
    else printf("null");
    printf(",\"OPENBLAS_CORETYPE\":");
    if (coretype) print_json_string(coretype);
    else printf("null");
    /* The thread pools' waiting habits decide how they share the cores. */
    static const char *const env_vars[] = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS",
                                           "OPENBLAS_NUM_THREADS"};
    for (size_t i = 0; i < sizeof env_vars / sizeof *env_vars; i++) {
        const char *v = getenv(env_vars[i]);
        printf(",\"%s\":", env_vars[i]);
        if (v) print_json_string(v);
        else printf("null");
    }
    printf(",\"model\":");
    print_json_string(o.model ? o.model : "built-in");
    printf(",\"objective\":");
    print_json_string(layers);
    printf(",\"rss_after_load_kib\":%ld,"
           "\"peak_rss_note\":\"ru_maxrss: process peak so far, read after each size's net timings and "
           "before its sgemm buffers\"}\n",
           peak_rss_kib());
    fflush(stdout);
    fprintf(stderr, "dd_bench: %d thread(s), kernels %s, OpenBLAS %s, core %s, OPENBLAS_CORETYPE=%s\n", o.threads,
            kernels, openblas_get_config(), openblas_get_corename(), coretype ? coretype : "(unset)");
    int failed = 0;
    for (int i = 0; i < o.n_sizes; i++) failed |= !bench_size(model, terms, n_terms, o.sizes[i], &o);
    dd_model_free(model);
    return failed;
}
