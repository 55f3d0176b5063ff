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

/* din (+)= dout where the mask bit is set; branch-free, so it vectorises. */
static void masked_gradient(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int add,
                            int threads) {
    const size_t mask_plane = nn_mask_bytes(n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *d = dout + (size_t)p * n;
        float *g = din + (size_t)p * n;
        const uint8_t *m = mask + (size_t)p * mask_plane;
        if (add)
            for (size_t i = 0; i < n; i++) g[i] += m[i >> 3] >> (i & 7) & 1 ? d[i] : 0.0f;
        else
            for (size_t i = 0; i < n; i++) g[i] = m[i >> 3] >> (i & 7) & 1 ? d[i] : 0.0f;
    }
}

void nn_relu_backward(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int threads) {
    masked_gradient(din, dout, mask, planes, n, 1, threads);
}

void nn_relu_backward_set(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int threads) {
    masked_gradient(din, dout, mask, planes, n, 0, threads);
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

void nn_add_forward(float *out, uint8_t *mask, const float *const *in, int n_in, int planes, size_t n,
                    int threads) {
    const size_t mask_plane = nn_mask_bytes(n);
#pragma omp parallel num_threads(threads)
    {
        /* Each thread whole mask bytes of every plane: no byte shared. */
        size_t from, to;
        nn_thread_share(mask_plane, &from, &to);
        from *= 8, to = to * 8 < n ? to * 8 : n;
        for (int p = 0; p < planes; p++) {
            const size_t base = (size_t)p * n;
            for (size_t i = from; i < to; i++) {
                float v = in[0][base + i];
                for (int j = 1; j < n_in; j++) v += in[j][base + i];
                out[base + i] = v;
            }
            if (!mask) continue;
            uint8_t *m = mask + (size_t)p * mask_plane;
            for (size_t i = from; i < to; i += 8) {
                unsigned bits = 0;
                for (size_t b = 0; b < 8 && i + b < to; b++) {
                    const int on = out[base + i + b] > 0.0f;
                    out[base + i + b] = on ? out[base + i + b] : 0.0f;
                    bits |= (unsigned)on << b;
                }
                m[i / 8] = (uint8_t)bits;
            }
        }
    }
}
