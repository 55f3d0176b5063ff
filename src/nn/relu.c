/* Elementwise ops: the stand-alone ReLU (for graphs where it does not follow
 * a convolution, or whose pre-activation a layer names), and the sum of
 * branches (the residual add). */
#include "nn.h"

/* What the loops below share: each thread takes whole planes (mask_plane
 * bytes of mask each) or, in the add, whole mask bytes of every plane. */
typedef struct elementwise {
    float *out;
    uint8_t *mask;
    const float *in;
    const float *const *ins;
    const uint8_t *cmask;
    int n_in, add, planes;
    size_t n, mask_plane;
} elementwise;

static void relu_planes(void *ctx, size_t from, size_t to, int worker) {
    const elementwise *e = ctx;
    const size_t n = e->n, mask_plane = e->mask_plane;
    (void)worker;
    for (size_t p = from; p < to; p++) {
        const float *x = e->in + p * n;
        float *y = e->out + p * n;
        uint8_t *m = e->mask + p * mask_plane;
        for (size_t i = 0; i < mask_plane; i++) m[i] = 0;
        for (size_t i = 0; i < n; i++) {
            const int on = x[i] > 0.0f;
            y[i] = on ? x[i] : 0.0f;
            m[i >> 3] |= (uint8_t)(on << (i & 7));
        }
    }
}

void nn_relu_forward(float *out, uint8_t *mask, const float *in, int planes,
                     size_t n, int threads) {
    elementwise e = {.out = out, .mask = mask, .in = in, .n = n, .mask_plane = nn_mask_bytes(n)};
    team_for(threads, (size_t)planes, relu_planes, &e);
}

/* din (+)= dout where the mask bit is set; branch-free, so it vectorises. */
static void masked_planes(void *ctx, size_t from, size_t to, int worker) {
    const elementwise *e = ctx;
    const size_t n = e->n, mask_plane = e->mask_plane;
    (void)worker;
    for (size_t p = from; p < to; p++) {
        const float *d = e->in + p * n;
        float *g = e->out + p * n;
        const uint8_t *m = e->cmask + p * mask_plane;
        if (e->add)
            for (size_t i = 0; i < n; i++) g[i] += m[i >> 3] >> (i & 7) & 1 ? d[i] : 0.0f;
        else
            for (size_t i = 0; i < n; i++) g[i] = m[i >> 3] >> (i & 7) & 1 ? d[i] : 0.0f;
    }
}

static void masked_gradient(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int add,
                            int threads) {
    elementwise e = {.out = din, .in = dout, .cmask = mask, .add = add, .n = n, .mask_plane = nn_mask_bytes(n)};
    team_for(threads, (size_t)planes, masked_planes, &e);
}

void nn_relu_backward(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int threads) {
    masked_gradient(din, dout, mask, planes, n, 1, threads);
}

void nn_relu_backward_set(float *din, const float *dout, const uint8_t *mask, int planes, size_t n, int threads) {
    masked_gradient(din, dout, mask, planes, n, 0, threads);
}

static void mask_planes(void *ctx, size_t from, size_t to, int worker) {
    const elementwise *e = ctx;
    const size_t n = e->n, mask_plane = e->mask_plane;
    (void)worker;
    for (size_t p = from; p < to; p++) {
        float *d = e->out + p * n;
        const uint8_t *m = e->cmask + p * mask_plane;
        for (size_t i = 0; i < n; i++)
            if (!(m[i >> 3] >> (i & 7) & 1)) d[i] = 0.0f;
    }
}

void nn_relu_mask_apply(float *g, const uint8_t *mask, int planes, size_t n, int threads) {
    elementwise e = {.out = g, .cmask = mask, .n = n, .mask_plane = nn_mask_bytes(n)};
    team_for(threads, (size_t)planes, mask_planes, &e);
}

/* Each thread whole mask bytes of every plane: no byte shared. */
static void add_bytes(void *ctx, size_t from, size_t to, int worker) {
    const elementwise *e = ctx;
    const size_t n = e->n, mask_plane = e->mask_plane;
    const int planes = e->planes, n_in = e->n_in;
    (void)worker;
    from *= 8, to = to * 8 < n ? to * 8 : n;
    for (int p = 0; p < planes; p++) {
        const size_t base = (size_t)p * n;
        for (size_t i = from; i < to; i++) {
            float v = e->ins[0][base + i];
            for (int j = 1; j < n_in; j++) v += e->ins[j][base + i];
            e->out[base + i] = v;
        }
        if (!e->mask) continue;
        uint8_t *m = e->mask + (size_t)p * mask_plane;
        for (size_t i = from; i < to; i += 8) {
            unsigned bits = 0;
            for (size_t b = 0; b < 8 && i + b < to; b++) {
                const int on = e->out[base + i + b] > 0.0f;
                e->out[base + i + b] = on ? e->out[base + i + b] : 0.0f;
                bits |= (unsigned)on << b;
            }
            m[i / 8] = (uint8_t)bits;
        }
    }
}

void nn_add_forward(float *out, uint8_t *mask, const float *const *in, int n_in, int planes, size_t n,
                    int threads) {
    elementwise e = {.out = out, .mask = mask, .ins = in, .n_in = n_in, .planes = planes, .n = n,
                     .mask_plane = nn_mask_bytes(n)};
    team_for(threads, e.mask_plane, add_bytes, &e);
}
