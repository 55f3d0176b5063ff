/* A clip: frames dreamed one after another with one plan, each starting
 * from the previous frame's detail carried along the optical flow; and
 * the zoom the infinite zoom feeds each dream back through. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dream/dream.h"
#include "image/image.h"
#include "model/model.h"
#include "util/team.h"
#include "util/util.h"
#include "video/flow.h"

/* The flow the clip follows: see docs/VIDEO.md for how it was chosen. */
#define CLIP_FLOW video_flow_farneback

struct dd_clip {
    const dd_model *model;
    dd_params params;
    dream *d;
    int w, h;
    long frames;                /* dreamed so far */
    float *photo;               /* 3 planes: this frame in network units */
    float *start;               /* 3 planes: the photo plus the carried detail */
    float *detail;              /* 3 planes: the last dream minus its photo */
    float *luma_prev, *luma;    /* grey 0..255: the last frame's, this one's */
    float *fu, *fv, *bu, *bv;   /* flow this -> last frame, last -> this */
    float *carried;             /* 1 where detail is carried, else 0 */
};

dd_status dd_clip_new(const dd_model *model, const dd_params *params, int width, int height, dd_clip **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "no clip to return");
    *out = NULL;
    if (!model || !params) return util_fail(DD_ERR_INVALID_ARG, "no model or parameters");
    if (width < 1 || height < 1) return util_fail(DD_ERR_INVALID_ARG, "frame size %dx%d", width, height);
    if (width > IMG_MAX_SIDE || height > IMG_MAX_SIDE)
        return util_fail(DD_ERR_LIMIT, "frame size %dx%d: a side over %d", width, height, IMG_MAX_SIDE);
    dd_clip *c = calloc(1, sizeof *c);
    if (!c) return util_fail(DD_ERR_NOMEM, "out of memory");
    c->model = model, c->w = width, c->h = height;
    dd_status st = params_read(params, &c->params);
    if (st || (st = dream_new(model, &c->params, height, width, 1, &c->d))) goto fail;
    const size_t plane = (size_t)width * height;
    float **planes3[] = {&c->photo, &c->start, &c->detail};
    for (size_t i = 0; i < sizeof planes3 / sizeof *planes3; i++)
        if (!(*planes3[i] = malloc(3 * plane * sizeof(float)))) goto nomem;
    float **planes1[] = {&c->luma_prev, &c->luma, &c->fu, &c->fv, &c->bu, &c->bv, &c->carried};
    for (size_t i = 0; i < sizeof planes1 / sizeof *planes1; i++)
        if (!(*planes1[i] = malloc(plane * sizeof(float)))) goto nomem;
    *out = c;
    return DD_OK;
nomem:
    st = util_fail(DD_ERR_NOMEM, "out of memory for a clip of %dx%d", width, height);
fail:
    dd_clip_free(c);
    return st;
}

void dd_clip_free(dd_clip *c) {
    if (!c) return;
    dream_free(c->d);
    free(c->photo), free(c->start), free(c->detail), free(c->luma_prev), free(c->luma);
    free(c->fu), free(c->fv), free(c->bu), free(c->bv), free(c->carried);
    free(c);
}

typedef struct luma_job {
    const dd_image *im;
    float *luma;
    size_t ch;
    float unit;
} luma_job;

static void luma_pixels(void *ctx, size_t from, size_t to, int worker) {
    const luma_job *j = ctx;
    const dd_image *im = j->im;
    const size_t ch = j->ch;
    const float unit = j->unit;
    (void)worker;
    for (size_t i = from; i < to; i++) {
        const size_t s = i * ch;
        j->luma[i] = ch >= 3 ? unit * (0.299f * (float)img_get(im, s) + 0.587f * (float)img_get(im, s + 1) +
                                       0.114f * (float)img_get(im, s + 2))
                             : unit * (float)img_get(im, s);
    }
}

/* The frame's BT.601 luma, 0..255 (grey as it is). */
static void frame_luma(const dd_image *im, float *luma, int threads) {
    const size_t plane = (size_t)im->width * im->height, ch = (size_t)im->channels;
    const float unit = im->depth == 16 ? 1.0f / 257.0f : 1.0f;
    luma_job j = {im, luma, ch, unit};
    team_for(threads, plane, luma_pixels, &j);
}

/* Plane p (h x w) at (x, y), 0 <= x <= w - 1, 0 <= y <= h - 1. */
static float bilinear(const float *p, int h, int w, float x, float y) {
    int x0 = (int)x, y0 = (int)y;
    if (x0 > w - 2) x0 = w > 1 ? w - 2 : 0;
    if (y0 > h - 2) y0 = h > 1 ? h - 2 : 0;
    const float fx = x - (float)x0, fy = y - (float)y0;
    const int x1 = w > 1 ? x0 + 1 : x0;
    const size_t r0 = (size_t)y0 * w, r1 = h > 1 ? r0 + (size_t)w : r0;
    const float top = p[r0 + x0] + fx * (p[r0 + x1] - p[r0 + x0]);
    const float bottom = p[r1 + x0] + fx * (p[r1 + x1] - p[r1 + x0]);
    return top + fy * (bottom - top);
}

/* Where the flow both ways agrees (Sundaram, Brox and Keutzer's check:
 * following the flow to the last frame and the flow back lands within
 * about half a pixel, more for fast motion), carried = 1; where it does
 * not, or leads out of the frame, the point was hidden or uncovered: 0. */
static void agreement_rows(void *ctx, size_t from, size_t to, int worker) {
    dd_clip *c = ctx;
    const int h = c->h, w = c->w;
    (void)worker;
    for (int y = (int)from; y < (int)to; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const float u = c->fu[i], v = c->fv[i], px = (float)x + u, py = (float)y + v;
            float keep = 0;
            if (px >= 0 && py >= 0 && px <= (float)(w - 1) && py <= (float)(h - 1)) {
                const float bu = bilinear(c->bu, h, w, px, py), bv = bilinear(c->bv, h, w, px, py);
                const float miss = (u + bu) * (u + bu) + (v + bv) * (v + bv);
                keep = miss <= 0.01f * (u * u + v * v + bu * bu + bv * bv) + 0.5f;
            }
            c->carried[i] = keep;
        }
}

static void flow_agreement(dd_clip *c, int threads) { team_for(threads, (size_t)c->h, agreement_rows, c); }

/* start = photo + blend x the last detail where it is carried to, clamped
 * to the network's range. */
static void carry_rows(void *ctx, size_t from, size_t to, int worker) {
    dd_clip *c = ctx;
    const int h = c->h, w = c->w;
    const size_t plane = (size_t)h * w;
    const float blend = c->params.blend;
    (void)worker;
    for (int y = (int)from; y < (int)to; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const float px = (float)x + c->fu[i], py = (float)y + c->fv[i];
            for (int ch = 0; ch < 3; ch++) {
                const float lo = c->model->offset[ch], hi = 255.0f / c->model->divisor[ch] + c->model->offset[ch];
                const float *detail = c->detail + ch * plane;
                const float carried = c->carried[i] != 0 ? blend * bilinear(detail, h, w, px, py) : 0.0f;
                const float v = c->photo[ch * plane + i] + carried;
                c->start[ch * plane + i] = v < lo ? lo : v > hi ? hi : v;
            }
        }
}

static void carry_detail(dd_clip *c, int threads) { team_for(threads, (size_t)c->h, carry_rows, c); }

static dd_status clip_dream(dd_clip *c, dd_image *frame, dd_progress_fn progress, void *user) {
    if (!c || !frame) return util_fail(DD_ERR_INVALID_ARG, "no clip or frame");
    if (frame->width != c->w || frame->height != c->h)
        return util_fail(DD_ERR_INVALID_ARG, "frame %dx%d in a clip of %dx%d", frame->width, frame->height, c->w, c->h);
    const int threads = dream_threads(c->d), h = c->h, w = c->w;
    const size_t n = (size_t)3 * h * w;
    const dream_stop stop = {c->params.should_stop, user};
    const dream_photo ph = dream_photo_of(frame, c->model);
    dd_status st = dream_photo_at(c->photo, &ph, h, w, threads, &stop);
    if (st) return st;
    frame_luma(frame, c->luma, threads);
    const float *start = NULL;
    if (c->frames > 0 && c->params.blend > 0) {
        if ((st = CLIP_FLOW(c->luma, c->luma_prev, h, w, threads, c->fu, c->fv)) ||
            (st = CLIP_FLOW(c->luma_prev, c->luma, h, w, threads, c->bu, c->bv)))
            return st;
        if (dream_stop_asked(&stop)) return DD_ERR_CANCELLED;
        flow_agreement(c, threads);
        carry_detail(c, threads);
        start = c->start;
    }
    /* Half the steps after the first frame by default: the carried detail
     * has most of the dream already, and new steps are what flickers. */
    const int later_steps = c->params.frame_steps > 0 ? c->params.frame_steps : (c->params.steps + 1) / 2;
    const int steps = c->frames > 0 ? later_steps : c->params.steps;
    if ((st = dream_run(c->d, frame, start, steps, progress, user))) return st;
    /* The detail is taken from the frame as written, rounded: a sequence
     * resumed from its written frames (dd_clip_resume) goes on with the
     * same bytes, when they were written losslessly. The floats are already made: nothing can fail after. */
    const dream_photo dreamed = dream_photo_of(frame, c->model);
    dream_photo_at(c->start, &dreamed, h, w, threads, NULL);
    for (size_t i = 0; i < n; i++) c->detail[i] = c->start[i] - c->photo[i];
    float *t = c->luma_prev;
    c->luma_prev = c->luma, c->luma = t;
    c->frames++;
    return DD_OK;
}

static dd_status clip_resume(dd_clip *c, const dd_image *photo, const dd_image *dreamed) {
    if (!c || !photo || !dreamed) return util_fail(DD_ERR_INVALID_ARG, "no clip, photo or dream");
    if (photo->width != c->w || photo->height != c->h || dreamed->width != c->w || dreamed->height != c->h)
        return util_fail(DD_ERR_INVALID_ARG, "photo %dx%d and dream %dx%d in a clip of %dx%d", photo->width,
                         photo->height, dreamed->width, dreamed->height, c->w, c->h);
    const int threads = dream_threads(c->d);
    const size_t n = (size_t)3 * c->h * c->w;
    const dream_photo ph = dream_photo_of(photo, c->model), dh = dream_photo_of(dreamed, c->model);
    const dream_stop stop = {c->params.should_stop, NULL};
    dd_status st = dream_photo_at(c->photo, &ph, c->h, c->w, threads, &stop);
    if (!st) st = dream_photo_at(c->start, &dh, c->h, c->w, threads, &stop);
    if (st) return st;
    for (size_t i = 0; i < n; i++) c->detail[i] = c->start[i] - c->photo[i];
    frame_luma(photo, c->luma_prev, threads);
    c->frames = 1;
    return DD_OK;
}

/* The public calls run on a team of their own (util/team.h). */
dd_status dd_clip_dream(dd_clip *c, dd_image *frame, dd_progress_fn progress, void *user) {
    util_clear_error();
    team_scope team;
    team_enter(&team, c ? dream_threads(c->d) : 1);
    const dd_status st = clip_dream(c, frame, progress, user);
    team_leave(&team);
    return st;
}

dd_status dd_clip_resume(dd_clip *c, const dd_image *photo, const dd_image *dreamed) {
    util_clear_error();
    team_scope team;
    team_enter(&team, c ? dream_threads(c->d) : 1);
    const dd_status st = clip_resume(c, photo, dreamed);
    team_leave(&team);
    return st;
}

dd_status dd_image_zoom(dd_image *im, float zoom, float degrees) {
    util_clear_error();
    if (!im) return util_fail(DD_ERR_INVALID_ARG, "no image");
    if (!(zoom >= 0.1f && zoom <= 10.0f)) return util_fail(DD_ERR_INVALID_ARG, "zoom %g outside 0.1..10", zoom);
    if (!(degrees >= -360.0f && degrees <= 360.0f))
        return util_fail(DD_ERR_INVALID_ARG, "rotation %g outside -360..360 degrees", degrees);
    const int h = im->height, w = im->width, ch = im->channels;
    const size_t row = img_row_bytes(im), bytes = row * (size_t)h;
    unsigned char *copy = malloc(bytes);
    if (!copy) return util_fail(DD_ERR_NOMEM, "out of memory for a %dx%d zoom", w, h);
    memcpy(copy, im->samples, bytes);
    const dd_image src = {.width = w, .height = h, .channels = ch, .depth = im->depth, .samples = copy};
    /* Each output pixel reads the source at the inverse transform of its
     * offset from the centre: turned back by degrees, shrunk by zoom. */
    const double a = degrees * 3.14159265358979323846 / 180.0, cs = cos(a) / zoom, sn = sin(a) / zoom;
    const double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double dx = x - cx, dy = y - cy;
            /* y points down: counter-clockwise on screen turns the other way. */
            double sx = cx + cs * dx - sn * dy, sy = cy + sn * dx + cs * dy;
            sx = sx < 0 ? 0 : sx > w - 1 ? w - 1 : sx;
            sy = sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
            int x0 = (int)sx, y0 = (int)sy;
            if (x0 > w - 2) x0 = w > 1 ? w - 2 : 0;
            if (y0 > h - 2) y0 = h > 1 ? h - 2 : 0;
            const int x1 = w > 1 ? x0 + 1 : x0, y1 = h > 1 ? y0 + 1 : y0;
            const double fx = sx - x0, fy = sy - y0;
            for (int k = 0; k < ch; k++) {
                const double p00 = img_get(&src, ((size_t)y0 * w + x0) * ch + k);
                const double p01 = img_get(&src, ((size_t)y0 * w + x1) * ch + k);
                const double p10 = img_get(&src, ((size_t)y1 * w + x0) * ch + k);
                const double p11 = img_get(&src, ((size_t)y1 * w + x1) * ch + k);
                const double top = p00 + fx * (p01 - p00), bottom = p10 + fx * (p11 - p10);
                img_set(im, ((size_t)y * w + x) * ch + k, (unsigned)lrint(top + fy * (bottom - top)));
            }
        }
    free(copy);
    return DD_OK;
}
