/* Dense optical flow between two grey frames, for carrying a dream's
 * detail from one video frame to the next along the motion. */
#ifndef DD_FLOW_H
#define DD_FLOW_H

#include "deepdream.h"

/* The flow from a to b, both h x w grey planes (floats, 0..255, row-major):
 * for each pixel (x, y) of a, the displacement (u, v) to where the same
 * point is in b, so that b(x + u, y + v) ~ a(x, y). u and v are h x w
 * planes the caller owns. Coarse to fine over an image pyramid, so motions
 * of tens of pixels are found. The same bits for any thread count.
 * DD_ERR_NOMEM, DD_ERR_INVALID_ARG (sizes below 1, or NULL); never prints. */
typedef dd_status (*video_flow_fn)(const float *a, const float *b, int h, int w, int threads, float *u, float *v);

/* Farneback's polynomial expansion (flow_farneback.c). DIS (dense inverse
 * search) was built beside it and measured on the same pairs: less
 * accurate and half as fast here, so it was removed (docs/VIDEO.md). */
dd_status video_flow_farneback(const float *a, const float *b, int h, int w, int threads, float *u, float *v);

#endif
