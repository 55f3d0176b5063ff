/* The guide's objective (google/deepdream's objective_guide): each position
 * of a layer is matched with the guide's position whose activation vector
 * has the largest dot product with its own. */
#include <float.h>

#include "nn.h"

typedef struct match_job {
    const float *scores, *y;
    float *best, *g;
    const int *argmax_in;
    int *argmax;
    size_t i0, positions;
    int n;
    float weight;
} match_job;

static void best_rows(void *ctx, size_t from, size_t to, int worker) {
    const match_job *j = ctx;
    const int n = j->n;
    (void)worker;
    for (size_t r = from; r < to; r++) {
        const float *s = j->scores + r * n;
        int at = 0;
        float most = s[0];
        for (int k = 1; k < n; k++)
            if (s[k] > most) most = s[k], at = k;
        j->argmax[j->i0 + r] = at;
        j->best[j->i0 + r] = most;
    }
}

void nn_match(const float *x, size_t positions, int c, const float *y, int n, float *scores, int rows,
              int *argmax, float *best, int threads) {
    for (size_t i0 = 0; i0 < positions; i0 += (size_t)rows) {
        const int m = positions - i0 < (size_t)rows ? (int)(positions - i0) : rows;
        /* scores (m x n) = x[:, i0 .. i0+m)^T y: x is c x positions, row-major. */
        nn_gemm(1, m, n, c, x + i0, (int)positions, y, n, 0.0f, scores, n, threads);
        match_job j = {.scores = scores, .best = best, .argmax = argmax, .i0 = i0, .n = n};
        team_for(threads, (size_t)m, best_rows, &j);
    }
}

static void gradient_channels(void *ctx, size_t from, size_t to, int worker) {
    const match_job *j = ctx;
    const size_t positions = j->positions;
    (void)worker;
    for (size_t k = from; k < to; k++) {
        float *gk = j->g + k * positions;
        const float *yk = j->y + k * (size_t)j->n;
        for (size_t i = 0; i < positions; i++) gk[i] += j->weight * yk[j->argmax_in[i]];
    }
}

void nn_match_backward(float *g, size_t positions, int c, const float *y, int n, const int *argmax, float weight,
                       int threads) {
    match_job j = {.y = y, .g = g, .argmax_in = argmax, .positions = positions, .n = n, .weight = weight};
    team_for(threads, (size_t)c, gradient_channels, &j);
}
