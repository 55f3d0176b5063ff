/* Stand-alone ReLU, for graphs where it does not follow a convolution. */
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
