/* sgemm over our own thread team, on a grid of column blocks fixed by n:
 * each block is one single-threaded OpenBLAS call and threads take whole
 * blocks. OpenBLAS's kernels sum an element in an order that can depend on
 * the call's n (Haswell's do), and its own threads split a call by the
 * thread count, so calls that followed the thread count gave other bits for
 * another count; with calls fixed by the shape and always serial, results
 * are bit-identical from 1 to N threads. */
#include <cblas.h>
#if DD_BLAS_FLEXIBLAS
#include <stdio.h> /* flexiblas_api.h uses FILE without including it (3.3 to 3.4 at least) */
#include <flexiblas_api.h>
#endif

#include "nn.h"

/* A threaded BLAS knows nothing of our team: a call from one of our
 * threads would start threads of its own, more threads than cores, and
 * split the call by its own count, with other bits. Each call must run
 * single-threaded on its caller's thread.
 * - OpenBLAS's OpenMP build (CMake looks for it first) takes its count from
 *   the calling thread's own OpenMP setting (omp_get_max_threads, one per
 *   thread): set to 1 around each call and given back, which changes
 *   nothing for any other thread. The OpenMP runtime is OpenBLAS's; its
 *   functions are looked up where the process has them (dlsym), so the
 *   library links no OpenMP of its own.
 * - A pthreads build or FlexiBLAS has only a process-wide count: held to
 *   one thread while our GEMMs run and given back after. */
#if DD_BLAS_OPENBLAS || DD_BLAS_FLEXIBLAS
#define BLAS_HOLD
#include <pthread.h>
#if DD_BLAS_OPENBLAS
#include <dlfcn.h>
#define blas_get_threads openblas_get_num_threads
#define blas_set_threads openblas_set_num_threads
#else
#define blas_get_threads flexiblas_get_num_threads
#define blas_set_threads flexiblas_set_num_threads
#endif
/* The count is the process's, so dreams on several threads at once share
 * one hold: the first takes it, the last gives the count back (given back
 * by one while another's GEMMs ran, they ran threaded, with other bits). */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static int holders, hold_count;
#endif

int nn_blas_hold(void) {
#ifdef BLAS_HOLD
#if DD_BLAS_OPENBLAS
    if (openblas_get_parallel() != 1) return 0; /* serial: locked; OpenMP: per call and thread */
#endif
    pthread_mutex_lock(&hold_lock);
    if (holders++ == 0) {
        const int n = blas_get_threads();
        hold_count = n > 1 ? n : 1;
        if (n > 1) blas_set_threads(1);
    }
    const int held = hold_count;
    pthread_mutex_unlock(&hold_lock);
    return held;
#else
    return 0;
#endif
}

void nn_blas_release(int held) {
#ifdef BLAS_HOLD
    if (!held) return;
    pthread_mutex_lock(&hold_lock);
    if (--holders == 0 && hold_count > 1) blas_set_threads(hold_count);
    pthread_mutex_unlock(&hold_lock);
#else
    (void)held;
#endif
}

/* Blocks of 64 columns or a multiple, at least 16 of them where n allows:
 * narrower calls repack A more often, fewer blocks balance worse. */
static int block_cols(int n) {
    const int units = (n + 63) / 64;
    return 64 * ((units + 15) / 16);
}

#if DD_BLAS_OPENBLAS
/* OpenBLAS's serial build, unless built with USE_LOCKING (Debian 12's is
 * not), packs into buffers shared by every caller: two of our threads in
 * it at once gave other bytes on every run. Its calls take turns. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
#endif

#if DD_BLAS_OPENBLAS
/* The OpenMP runtime's per-thread count, as OpenBLAS's OpenMP build reads
 * it: the same symbols OpenBLAS's calls resolve to. NULL when the process
 * has no OpenMP runtime. */
static int (*omp_get_max)(void);
static void (*omp_set_num)(int);
static pthread_once_t omp_found = PTHREAD_ONCE_INIT;

static void find_omp(void) {
    /* POSIX's way to take a function from dlsym without a cast between
     * object and function pointers. */
    *(void **)&omp_get_max = dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    *(void **)&omp_set_num = dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!omp_get_max || !omp_set_num) omp_get_max = NULL, omp_set_num = NULL;
}
#endif

void nn_sgemm_serial(int trans_a, int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc) {
#if DD_BLAS_OPENBLAS
    const int parallel = openblas_get_parallel(), take_turns = parallel == 0;
    int caller_threads = 1;
    if (take_turns) pthread_mutex_lock(&serial_lock);
    if (parallel == 2) {
        pthread_once(&omp_found, find_omp);
        if (omp_get_max && (caller_threads = omp_get_max()) != 1) omp_set_num(1);
    }
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
                beta, c, ldc);
#if DD_BLAS_OPENBLAS
    if (caller_threads != 1) omp_set_num(caller_threads);
    if (take_turns) pthread_mutex_unlock(&serial_lock);
#endif
}

typedef struct gemm_job {
    int trans_a, m, n, k, width;
    const float *a;
    int lda;
    const float *b;
    int ldb;
    float beta;
    float *c;
    int ldc;
} gemm_job;

static void gemm_blocks(void *ctx, size_t from, size_t to, int worker) {
    const gemm_job *g = ctx;
    (void)worker;
    for (size_t blk = from; blk < to; blk++) {
        const int j0 = (int)blk * g->width, cols = g->n - j0 < g->width ? g->n - j0 : g->width;
        nn_sgemm_serial(g->trans_a, g->m, cols, g->k, g->a, g->lda, g->b + j0, g->ldb, g->beta, g->c + j0, g->ldc);
    }
}

void nn_gemm(int trans_a, int m, int n, int k, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc, int threads) {
    const int width = block_cols(n), blocks = (n + width - 1) / width;
    if (threads > blocks) threads = blocks;
    if (threads < 1) threads = 1;
    const int held = nn_blas_hold();
    gemm_job g = {trans_a, m, n, k, width, a, lda, b, ldb, beta, c, ldc};
    team_for(threads, (size_t)blocks, gemm_blocks, &g);
    nn_blas_release(held);
}
