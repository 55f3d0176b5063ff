/* Elementwise ops: the stand-alone ReLU (for graphs where it does not follow
 * a convolution, or whose pre-activation a layer names), and the sum of
 * branches (the residual add). */
#include "nn.h"

void nn_relu_forward(float *out, uint8_t *mask, const float *in, int planes,
                     size_t n, int threads) {
    const size_t mask_plane = nn_mask_bytes(n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * n;
        float *y = out + (size_t)p * n;
        uint8_t *m = mask + (size_t)p * mask_plane;
        for (size_t i = 0; i < mask_plane; i++) m[i] = 0;
        for (size_t i = 0; i < n; i++) {
            const int on = x[i] > 0.0f;
            y[i] = on ? x[i] : 0.0f;
            m[i >> 3] |= (uint8_t)(on << (i & 7));
        }
    }
}

void nn_relu_backward(float *din, const float *dout, const uint8_t *mask,
                      int planes, size_t n, int threads) {
    const size_t mask_plane = nn_mask_bytes(n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *d = dout + (size_t)p * n;
        float *g = din + (size_t)p * n;
        const uint8_t *m = mask + (size_t)p * mask_plane;
        for (size_t i = 0; i < n; i++)
            if (m[i >> 3] >> (i & 7) & 1) g[i] += d[i];
    }
}

void nn_relu_mask_apply(float *g, const uint8_t *mask, int planes, size_t n, int threads) {
    const size_t mask_plane = nn_mask_bytes(n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int p = 0; p < planes; p++) {
        float *d = g + (size_t)p * n;
        const uint8_t *m = mask + (size_t)p * mask_plane;
        for (size_t i = 0; i < n; i++)
            if (!(m[i >> 3] >> (i & 7) & 1)) d[i] = 0.0f;
    }
}

void nn_add_forward(float *out, const float *const *in, int n_in, size_t n, int threads) {
#pragma omp parallel num_threads(threads)
    {
        size_t from, to;
        nn_thread_share(n, &from, &to);
        for (size_t i = from; i < to; i++) {
            float v = in[0][i];
            for (int j = 1; j < n_in; j++) v += in[j][i];
            out[i] = v;
        }
    }
}
