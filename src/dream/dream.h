/* Internals of the dream shared between its files. */
#ifndef DD_DREAM_H
#define DD_DREAM_H

#include "deepdream.h"

/* planes float planes of sh x sw -> dh x dw (dst must not alias src). */
dd_status dream_resize(float *dst, int dh, int dw, const float *src, int sh, int sw, int planes,
                       int threads);

#endif
