/* sgemm split by columns over our own OpenMP team: each thread runs a
 * single-threaded OpenBLAS GEMM (OpenBLAS's OpenMP build runs serially inside
 * a parallel region) on a 64-aligned block of columns. Every element is then
 * summed in the same order whatever the thread count, so results are
 * bit-identical from 1 to N threads, which OpenBLAS's own split is not. */
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn.h"

void nn_gemm(int trans_a, int m, int n, int k, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc, int threads) {
    const int blocks = (n + 63) / 64;
    if (threads > blocks) threads = blocks;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
        const int b0 = (int)((long)blocks * t / nt), b1 = (int)((long)blocks * (t + 1) / nt);
        const int j0 = b0 * 64, j1 = b1 * 64 < n ? b1 * 64 : n;
        if (j1 > j0)
            cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, m, j1 - j0, k,
                        1.0f, a, lda, b + j0, ldb, beta, c + j0, ldc);
    }
}
