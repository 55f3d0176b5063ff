/* dd_dream as a library user runs it: the same bytes when called from the
 * program's own OpenMP threads, whatever that runtime's settings (nested
 * regions, dynamic teams, max active levels, OMP_THREAD_LIMIT), which are
 * not the library's; the caller's OpenMP and OpenBLAS settings unchanged
 * and no library thread left after a call; memory that does not grow with
 * the octave count; should_stop ending a step between layers with the
 * image untouched; and the too-small messages naming the image and the
 * layer.
 *
 * usage: test_threads SAMPLES_DIR */
#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "deepdream.h"
#include "model/net.h"
#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static dd_model *model;

/* ---- images ------------------------------------------------------------ */

/* A P6 file of w x h pixels from rgb (3 bytes a pixel). */
static dd_image *image_from_rgb(const unsigned char *rgb, int w, int h) {
    char head[64];
    const int n = snprintf(head, sizeof head, "P6\n%d %d\n255\n", w, h);
    const size_t bytes = (size_t)n + (size_t)3 * w * h;
    unsigned char *file = xmalloc(bytes);
    memcpy(file, head, (size_t)n);
    memcpy(file + n, rgb, bytes - (size_t)n);
    dd_image *im = NULL;
    if (dd_image_load_memory(file, bytes, 0, &im)) fprintf(stderr, "P6 %dx%d: %s\n", w, h, dd_last_error());
    free(file);
    return im;
}

/* A smooth colour pattern with some edges, w x h. */
static dd_image *pattern_image(int w, int h) {
    unsigned char *rgb = xmalloc((size_t)3 * w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = rgb + 3 * ((size_t)y * w + x);
            p[0] = (unsigned char)(128 + 100 * sin(x * 0.05) * cos(y * 0.03));
            p[1] = (unsigned char)((x ^ y) & 0xff);
            p[2] = (unsigned char)(((x / 37 + y / 23) & 1) ? 200 : 40);
        }
    dd_image *im = image_from_rgb(rgb, w, h);
    free(rgb);
    return im;
}

/* The image's bytes as a PAM file (samples and header), to compare. */
static unsigned char *image_bytes(const dd_image *im, size_t *n) {
    unsigned char *data = NULL;
    if (dd_image_save_memory(im, DD_FORMAT_PAM, 90, NULL, &data, n)) {
        fprintf(stderr, "save: %s\n", dd_last_error());
        exit(1);
    }
    return data;
}

static int same_bytes(const unsigned char *a, size_t na, const unsigned char *b, size_t nb) {
    return na == nb && !memcmp(a, b, na);
}

/* samples/chelsea.png cut down to w x h by nearest pixels (a P6 round trip:
 * the library has no resize of its own to offer). */
static dd_image *small_chelsea(const char *samples, int w, int h) {
    char path[1024];
    snprintf(path, sizeof path, "%s/chelsea.png", samples);
    dd_image *big = load_image_file(path);
    if (!big) return NULL;
    unsigned char *pnm;
    size_t n;
    const int bw = dd_image_width(big), bh = dd_image_height(big);
    if (dd_image_channels(big) != 3 || dd_image_depth(big) != 8 ||
        dd_image_save_memory(big, DD_FORMAT_PNM, 90, NULL, &pnm, &n)) {
        fprintf(stderr, "%s: not 8-bit RGB, or no P6\n", path);
        dd_image_free(big);
        return NULL;
    }
    dd_image_free(big);
    const unsigned char *pixels = pnm + n - (size_t)3 * bw * bh; /* the header ends with one newline */
    unsigned char *rgb = xmalloc((size_t)3 * w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(rgb + 3 * ((size_t)y * w + x), pixels + 3 * ((size_t)(y * bh / h) * bw + (size_t)(x * bw / w)), 3);
    free(pnm);
    dd_image *im = image_from_rgb(rgb, w, h);
    free(rgb);
    return im;
}

static dd_image *image_copy(const dd_image *im) {
    size_t n;
    unsigned char *b = image_bytes(im, &n);
    dd_image *c = NULL;
    if (dd_image_load_memory(b, n, 0, &c)) fprintf(stderr, "copy: %s\n", dd_last_error());
    free(b);
    return c;
}

/* ---- thread teams smaller than asked ---------------------------------------- */

static dd_params small_params(int threads) {
    dd_params p = dd_params_default();
    p.octaves = 2, p.steps = 2, p.seed = 11, p.threads = threads;
    return p;
}

/* Dreams a copy of src with threads; *n gets the result's byte count. NULL
 * (with the reason on stderr) when the dream failed. */
static unsigned char *dream_bytes(const dd_image *src, int threads, size_t *n) {
    dd_image *im = image_copy(src);
    const dd_params p = small_params(threads);
    const dd_status st = im ? dd_dream(model, &p, im, NULL, NULL) : DD_ERR_NOMEM;
    unsigned char *b = NULL;
    if (st) fprintf(stderr, "dream with %d threads: %s: %s\n", threads, dd_strerror(st), dd_last_error());
    else b = image_bytes(im, n);
    dd_image_free(im);
    return b;
}

static void expect_same(const char *what, const unsigned char *want, size_t n_want, unsigned char *got, size_t n_got) {
    CHECK(got && same_bytes(want, n_want, got, n_got), "%s: not the bytes of the 1-thread dream", what);
    free(got);
}

/* A dream of src with threads, expected to give want. */
static void expect_dream(const char *what, const dd_image *src, int threads, const unsigned char *want, size_t n_want) {
    size_t n = 0;
    unsigned char *got = dream_bytes(src, threads, &n);
    expect_same(what, want, n_want, got, n);
}

/* Two outer threads (or as many as the runtime gives), each dreaming its
 * own copy with `threads` inside; returns the outer team's size. */
static int dream_in_pair(const dd_image *src, int threads, unsigned char *out[2], size_t n[2]) {
    int team = 0;
#pragma omp parallel num_threads(2)
    {
        const int t = omp_get_thread_num();
        if (t == 0) team = omp_get_num_threads();
        if (t < 2) out[t] = dream_bytes(src, threads, &n[t]);
    }
    return team;
}

static void test_small_teams(const char *samples) {
    dd_image *src = small_chelsea(samples, 96, 80);
    CHECK(src != NULL, "chelsea at 96x80");
    if (!src) return;
    size_t n1;
    unsigned char *b1 = dream_bytes(src, 1, &n1);
    CHECK(b1 != NULL, "the 1-thread dream");
    if (!b1) goto done;
    expect_dream("4 threads, whole teams", src, 4, b1, n1);

    /* From the program's own nested threads: the library's team is its
     * own, whatever the program's OpenMP allows its regions. */
    unsigned char *pair[2] = {NULL, NULL};
    size_t np[2] = {0, 0};
    const int levels = omp_get_max_active_levels();
    for (int active = 0; active <= 2; active++) {
        char what[96];
        omp_set_max_active_levels(active);
        const int team = dream_in_pair(src, 4, pair, np);
        CHECK(team == (active ? 2 : 1), "max active levels %d: an outer team of %d", active, team);
        for (int t = 0; t < team; t++) {
            snprintf(what, sizeof what, "4 threads in outer thread %d of 2, max active levels %d", t, active);
            expect_same(what, b1, n1, pair[t], np[t]);
            pair[t] = NULL;
        }
    }
    omp_set_max_active_levels(levels);

    /* Dynamic teams: the runtime may give any count up to the one asked. */
    const int dynamic = omp_get_dynamic();
    omp_set_dynamic(1);
    expect_dream("3 threads, dynamic teams", src, 3, b1, n1);
    const int team = dream_in_pair(src, 3, pair, np);
    for (int t = 0; t < team; t++) {
        char what[96];
        snprintf(what, sizeof what, "3 threads, dynamic, outer thread %d of %d", t, team);
        expect_same(what, b1, n1, pair[t], np[t]);
        pair[t] = NULL;
    }
    omp_set_dynamic(dynamic);

    /* OMP_THREAD_LIMIT is read when the runtime starts: a child with it set. */
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        setenv("OMP_THREAD_LIMIT", "2", 1);
        execl("/proc/self/exe", "test_threads", samples, "--thread-limit-child", (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
          "under OMP_THREAD_LIMIT=2: the child failed (status %d, see above)", ws);
done:
    free(b1);
    dd_image_free(src);
}

/* Threads of this process, from /proc (-1 where there is none). */
static int threads_now(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A library call leaves the calling thread's OpenMP settings, OpenBLAS's
 * thread count and the process's thread count as they were. */
static void test_no_side_effects(const char *samples) {
    dd_image *src = small_chelsea(samples, 96, 80);
    CHECK(src != NULL, "chelsea at 96x80");
    if (!src) return;
    omp_set_num_threads(3);
    const int omp_threads = omp_get_max_threads(), dynamic = omp_get_dynamic();
#if DD_BLAS_OPENBLAS
    const int blas_threads = openblas_get_num_threads();
#endif
    const int before = threads_now();
    size_t n;
    free(dream_bytes(src, 4, &n));
    CHECK(omp_get_max_threads() == omp_threads && omp_get_dynamic() == dynamic,
          "the caller's OpenMP settings changed: %d threads (was %d), dynamic %d (was %d)", omp_get_max_threads(),
          omp_threads, omp_get_dynamic(), dynamic);
#if DD_BLAS_OPENBLAS
    CHECK(openblas_get_num_threads() == blas_threads, "OpenBLAS's threads changed: %d (was %d)",
          openblas_get_num_threads(), blas_threads);
#endif
    CHECK(threads_now() == before, "%d threads after a dream, %d before", threads_now(), before);
    dd_image_free(src);
}

/* In the child: 1 thread against 4 (given 2 at most) alone and nested. */
static int thread_limit_child(const char *samples) {
    dd_image *src = small_chelsea(samples, 96, 80);
    CHECK(src != NULL && omp_get_thread_limit() == 2, "chelsea, and a thread limit of 2 (%d)", omp_get_thread_limit());
    if (!src) return check_done("threads (OMP_THREAD_LIMIT=2)");
    size_t n1;
    unsigned char *b1 = dream_bytes(src, 1, &n1);
    CHECK(b1 != NULL, "the 1-thread dream");
    if (b1) {
        expect_dream("4 threads under OMP_THREAD_LIMIT=2", src, 4, b1, n1);
        unsigned char *pair[2] = {NULL, NULL};
        size_t np[2] = {0, 0};
        omp_set_max_active_levels(2);
        dream_in_pair(src, 4, pair, np);
        expect_same("4 threads nested under OMP_THREAD_LIMIT=2, outer 0", b1, n1, pair[0], np[0]);
        expect_same("4 threads nested under OMP_THREAD_LIMIT=2, outer 1", b1, n1, pair[1], np[1]);
    }
    free(b1);
    dd_image_free(src);
    return check_done("threads (OMP_THREAD_LIMIT=2)");
}

/* ---- memory does not grow with the octave count -------------------------------- */

/* The process's peak address space (VmPeak), KiB. Planned nets show here,
 * not in the resident peak: an arena's pages are resident only once a pass
 * touches them, but what is allocated counts under ulimit -v and strict
 * overcommit. */
static long vm_peak_kib(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmPeak:", 7)) kib = atol(line + 7);
    if (fp) fclose(fp);
    return kib;
}

static void test_memory(void) {
    dd_image *im = pattern_image(256, 256);
    CHECK(im != NULL, "a 256x256 image");
    if (!im) return;
    /* Scale 1: every octave at the full 256x256, so none is skipped as too
     * small and every one has a net of the full size. */
    dd_params p = dd_params_default();
    p.octave_scale = 1.0f, p.steps = 1, p.threads = 2;
    dd_term terms[8];
    int n_terms = 0;
    dd_net *net = NULL;
    CHECK(!dd_terms_parse(model, dd_default_layers(), terms, 8, &n_terms) &&
              !dd_net_new(model, terms, n_terms, 256, 256, 2, &net),
          "a 256x256 net: %s", dd_last_error());
    const long net_kib = net ? (long)(dd_net_arena_bytes(net) >> 10) : 0;
    dd_net_free(net);
    long peak[2];
    const int octaves[2] = {4, 32};
    for (int i = 0; i < 2; i++) {
        p.octaves = octaves[i];
        const dd_status st = dd_dream(model, &p, im, NULL, NULL);
        CHECK(st == DD_OK, "%d octaves: %s", octaves[i], dd_last_error());
        peak[i] = vm_peak_kib();
    }
    dd_image_free(im);
    fprintf(stderr, "memory: peak address space after 4 octaves %ld MiB, after 32 %ld MiB (one net's arena %ld MiB)\n",
            peak[0] >> 10, peak[1] >> 10, net_kib >> 10);
#ifdef UNDER_ASAN
    fprintf(stderr, "memory: not compared under AddressSanitizer (its quarantine keeps freed arenas mapped)\n");
#else
    /* Every net planned up front grew it by an arena and a pack each (32
     * octaves: 883 against 461 MiB). */
    CHECK(peak[0] > 0 && peak[1] - peak[0] < net_kib, "32 octaves took %ld MiB more address space than 4",
          (peak[1] - peak[0]) >> 10);
#endif
}

/* ---- should_stop ------------------------------------------------------------------ */

typedef struct stopper {
    long polls, stop_at; /* 0: never stop */
    double stopped_at;   /* when it said stop, seconds */
} stopper;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int stop_after(void *user) {
    stopper *s = user;
    s->polls++;
    if (s->stop_at && s->polls >= s->stop_at) {
        s->stopped_at = now_s();
        return 1;
    }
    return 0;
}

static void test_should_stop(void) {
    CHECK(dd_params_default().should_stop == NULL, "dd_params_default sets should_stop");
    dd_image *im = pattern_image(1024, 1024);
    CHECK(im != NULL, "a 1024x1024 image");
    if (!im) return;
    size_t n0;
    unsigned char *before = image_bytes(im, &n0);
    dd_params p = dd_params_default();
    p.octaves = 1, p.steps = 1, p.should_stop = stop_after;
    /* A whole step, counting the polls. */
    dd_image *whole = image_copy(im);
    stopper all = {0, 0, 0};
    double t0 = now_s();
    CHECK(whole && dd_dream(model, &p, whole, NULL, &all) == DD_OK, "the whole step: %s", dd_last_error());
    const double step_s = now_s() - t0;
    dd_image_free(whole);
    CHECK(all.polls > 100, "a step polled %ld times (at least once a layer each way)", all.polls);
    /* Stopped a third of the way: no poll after the stop, the image as it was. */
    stopper third = {0, all.polls / 3, 0};
    t0 = now_s();
    const dd_status st = dd_dream(model, &p, im, NULL, &third);
    const double end = now_s(), latency = third.stopped_at > 0 ? end - third.stopped_at : -1;
    CHECK(st == DD_ERR_CANCELLED && !strcmp(dd_last_error(), "cancelled"), "stopped: status %d (%s)", (int)st,
          dd_last_error());
    CHECK(third.polls == third.stop_at, "%ld polls, want %ld: asked again after it said stop", third.polls,
          third.stop_at);
    size_t n1;
    unsigned char *after = image_bytes(im, &n1);
    CHECK(same_bytes(before, n0, after, n1), "the cancelled dream changed the image");
    CHECK(latency >= 0 && latency < step_s / 10, "returned %.3f s after the stop (a whole step: %.3f s)", latency,
          step_s);
    fprintf(stderr, "should_stop: %ld polls a step of %.3f s; stopped at poll %ld after %.3f s, returned %.2f ms later\n",
            all.polls, step_s, third.stop_at, third.stopped_at - t0, 1e3 * latency);
    free(before), free(after);
    dd_image_free(im);

    /* The net alone: dd_net_gradient stops between layers too. */
    dd_term term = {"mixed3", -1, 1.0f};
    dd_net *net = NULL;
    CHECK(dd_net_new(model, &term, 1, 96, 96, 1, &net) == DD_OK, "a 96x96 net: %s", dd_last_error());
    if (!net) return;
    float *in = xmalloc(3 * 96 * 96 * sizeof *in), *grad = xmalloc(3 * 96 * 96 * sizeof *grad);
    for (int i = 0; i < 3 * 96 * 96; i++) in[i] = (float)sin(i * 0.01);
    stopper net_polls = {0, 0, 0};
    net_set_should_stop(net, stop_after, &net_polls);
    CHECK(dd_net_gradient(net, in, grad, NULL) == DD_OK, "never stopped: %s", dd_last_error());
    for (long at = 1; at <= net_polls.polls; at += net_polls.polls / 7) { /* in the forward and the backward */
        stopper s = {0, at, 0};
        net_set_should_stop(net, stop_after, &s);
        const dd_status gst = dd_net_gradient(net, in, grad, NULL);
        CHECK(gst == DD_ERR_CANCELLED && s.polls == at, "net stopped at poll %ld of %ld: status %d, %ld polls", at,
              net_polls.polls, (int)gst, s.polls);
    }
    net_set_should_stop(net, NULL, NULL);
    CHECK(dd_net_gradient(net, in, grad, NULL) == DD_OK, "should_stop unset again: %s", dd_last_error());
    dd_net_free(net);
    free(in), free(grad);
}

/* ---- too small -------------------------------------------------------------------- */

static void expect_too_small(const char *what, int w, int h, int max_size, const char *layers, const char *want) {
    dd_image *im = pattern_image(w, h);
    CHECK(im != NULL, "%s: the image", what);
    if (!im) return;
    size_t n0, n1;
    unsigned char *before = image_bytes(im, &n0);
    dd_params p = dd_params_default();
    dd_term terms[8];
    if (layers) {
        CHECK(!dd_terms_parse(model, layers, terms, 8, &p.n_terms), "%s: %s", layers, dd_last_error());
        p.terms = terms;
    }
    p.max_size = max_size, p.steps = 1;
    const dd_status st = dd_dream(model, &p, im, NULL, NULL);
    CHECK(st == DD_ERR_TOO_SMALL, "%s: status %d (%s), want DD_ERR_TOO_SMALL", what, (int)st, dd_last_error());
    CHECK(!strcmp(dd_last_error(), want), "%s: message\n  '%s', want\n  '%s'", what, dd_last_error(), want);
    unsigned char *after = image_bytes(im, &n1);
    CHECK(same_bytes(before, n0, after, n1), "%s: the image changed", what);
    free(before), free(after);
    dd_image_free(im);
}

static void test_too_small(void) {
    /* The default model ends at mixed5: mixed3 and deeper need 43x43, mixed0
     * to mixed2 27x27 (every tile is at least 49 pixels, so a tile is never
     * the smaller side with this model). */
    expect_too_small("1x5000", 1, 5000, 0, NULL, "image 1x5000 is too small for mixed4 (needs at least 43x43)");
    expect_too_small("128x96, max size 1", 128, 96, 1, NULL,
                     "image 128x96, dreamed at 1x1 (max size 1), is too small for mixed4 (needs at least 43x43)");
    expect_too_small("300x200, max size 60", 300, 200, 60, NULL,
                     "image 300x200, dreamed at 60x40 (max size 60), is too small for mixed4 (needs at least 43x43)");
    expect_too_small("42x200", 42, 200, 0, NULL, "image 42x200 is too small for mixed4 (needs at least 43x43)");
    expect_too_small("26x30, mixed1 and mixed2", 26, 30, 0, "mixed1,mixed2",
                     "image 26x30 is too small for mixed2 (needs at least 27x27)");
    expect_too_small("20x20, mixed5:3 and mixed1", 20, 20, 0, "mixed5:3,mixed1",
                     "image 20x20 is too small for mixed5 (needs at least 43x43)");
    /* The least size is enough. */
    const int sides[][2] = {{43, 43}, {27, 27}};
    const char *layers[] = {NULL, "mixed2"};
    for (int i = 0; i < 2; i++) {
        dd_image *im = pattern_image(sides[i][0], sides[i][1]);
        dd_params p = dd_params_default();
        dd_term terms[8];
        if (layers[i]) CHECK(!dd_terms_parse(model, layers[i], terms, 8, &p.n_terms), "%s", dd_last_error());
        if (layers[i]) p.terms = terms;
        p.steps = 1;
        CHECK(im && dd_dream(model, &p, im, NULL, NULL) == DD_OK, "%dx%d: %s", sides[i][0], sides[i][1],
              dd_last_error());
        dd_image_free(im);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_threads SAMPLES_DIR\n");
        return 2;
    }
    if (dd_model_load_default(&model)) {
        fprintf(stderr, "default model: %s\n", dd_last_error());
        return 1;
    }
    if (argc > 2 && !strcmp(argv[2], "--thread-limit-child")) {
        const int rc = thread_limit_child(argv[1]);
        dd_model_free(model);
        return rc;
    }
    test_memory(); /* first: the other tests' thread teams would raise the peak */
    test_too_small();
    test_should_stop();
    test_no_side_effects(argv[1]);
    test_small_teams(argv[1]);
    dd_model_free(model);
    return check_done("threads");
}
