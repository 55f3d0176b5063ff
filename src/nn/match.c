/* The guide's objective (google/deepdream's objective_guide): each position
 * of a layer is matched with the guide's position whose activation vector
 * has the largest dot product with its own. */
#include <float.h>

#include "nn.h"

void nn_match(const float *x, size_t positions, int c, const float *y, int n, float *scores, int rows,
              int *argmax, float *best, int threads) {
    for (size_t i0 = 0; i0 < positions; i0 += (size_t)rows) {
        const int m = positions - i0 < (size_t)rows ? (int)(positions - i0) : rows;
        /* scores (m x n) = x[:, i0 .. i0+m)^T y: x is c x positions, row-major. */
        nn_gemm(1, m, n, c, x + i0, (int)positions, y, n, 0.0f, scores, n, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int r = 0; r < m; r++) {
            const float *s = scores + (size_t)r * n;
            int at = 0;
            float most = s[0];
            for (int j = 1; j < n; j++)
                if (s[j] > most) most = s[j], at = j;
            argmax[i0 + (size_t)r] = at;
            best[i0 + (size_t)r] = most;
        }
    }
}

void nn_match_backward(float *g, size_t positions, int c, const float *y, int n, const int *argmax, float weight,
                       int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int k = 0; k < c; k++) {
        float *gk = g + (size_t)k * positions;
        const float *yk = y + (size_t)k * n;
        for (size_t i = 0; i < positions; i++) gk[i] += weight * yk[argmax[i]];
    }
}
