/* DIS optical flow's settings, apart from flow.h so the bench can measure
 * other choices than the defaults video_flow_dis runs with. */
#ifndef DD_FLOW_DIS_H
#define DD_FLOW_DIS_H

#include "deepdream.h"

#define FLOW_DIS_MAX_PATCH_PX 16

typedef struct flow_dis_options {
    int patch_px;       /* patch side, 4..FLOW_DIS_MAX_PATCH_PX              */
    int stride_px;      /* between patch origins, 1..patch_px                */
    int iterations;     /* Gauss-Newton steps per patch and level, >= 1      */
    int finest_level;   /* 0: patches at full resolution; n: at 1/2^n, the
                         * flow then upsampled                               */
    int min_side_px;    /* the coarsest level's smaller side is at least this */
    int normalize;      /* patches compared with their means removed, so a
                         * change of brightness is not read as motion        */
    int var_iterations; /* variational refinement sweeps per level, 0: none  */
    float prior;        /* pull of a patch towards its initial displacement,
                         * per pixel, in (levels / pixel)^2                   */
    float var_alpha;    /* variational refinement: smoothness's weight       */
} flow_dis_options;

/* The settings video_flow_dis uses. */
void video_flow_dis_defaults(flow_dis_options *o);

/* video_flow_dis with settings o; DD_ERR_INVALID_ARG for settings out of
 * their ranges as well. */
dd_status video_flow_dis_with(const float *a, const float *b, int h, int w, int threads, const flow_dis_options *o,
                              float *u, float *v);

#endif
