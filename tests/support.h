/* Helpers shared by the C tests: a fixed-seed RNG (splitmix64: the same
 * tensors on every platform; define TEST_RNG_SEED before including),
 * allocation that ends the test on failure, and an image file decoded by
 * the library. Static inline: a test uses what it needs. */
#ifndef DD_TEST_SUPPORT_H
#define DD_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "deepdream.h"

#ifdef TEST_RNG_SEED
static uint64_t rng_state = TEST_RNG_SEED;

static inline uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline double rng_uniform(double lo, double hi) {
    return lo + (hi - lo) * (double)(rng_u64() >> 11) * 0x1.0p-53;
}
#endif

static inline void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* The image in the file at path, or NULL after saying why on stderr. */
static inline dd_image *load_image_file(const char *path) {
    dd_image *im = NULL;
    if (dd_image_load_file(path, 0, &im)) fprintf(stderr, "%s\n", dd_last_error());
    return im;
}

#endif
