/* The dream: an octave pyramid, smallest first; at each octave N steps of
 * normalised gradient ascent on the image, each with a random roll (jitter)
 * and a random shift of the tile grid, both undone exactly; the detail
 * dreamed at one octave carried up to the next. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dream.h"
#include "image/image.h"
#include "model/model.h"
#include "model/net.h"
#include "util/team.h"
#include "util/util.h"

#define MAX_TERMS 64
#define MAX_OCTAVES DD_MAX_OCTAVES

/* Chosen by eye on the three samples: see docs/ARCHITECTURE.md. */
const char *dd_default_layers(void) { return "mixed3,mixed4"; }

/* splitmix64: small, good enough for offsets, and the same on every machine. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in lo..hi inclusive. */
static int rng_range(uint64_t *s, int lo, int hi) {
    return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* How an axis of n pixels is cut into tiles. One tile when it fits: the
 * whole image, nothing cut. Otherwise count tiles of equal side, each with
 * margin pixels of context on both sides that it computes but does not
 * keep, so no kept gradient comes from next to a tile's own border; tile i
 * keeps [i*n/count, (i+1)*n/count). */
typedef struct axis_tiles {
    int count, side, margin;
} axis_tiles;

static axis_tiles cut_axis(int n, int tile_px) {
    axis_tiles a = {1, n, 0};
    if (n <= tile_px) return a;
    a.margin = tile_px / 8 < 32 ? tile_px / 8 : 32;
    const int keep = tile_px - 2 * a.margin;
    a.count = (n + keep - 1) / keep;
    a.side = (n + a.count - 1) / a.count + 2 * a.margin;
    return a;
}

typedef struct octave {
    int h, w;
    axis_tiles ty, tx;
} octave;

/* The octaves of a dream: sizes and tiles, smallest first, and the floats
 * of the largest tile's buffer (3 planes). */
typedef struct octave_plan {
    int n_octaves;
    octave oct[MAX_OCTAVES];
    size_t tile_floats;
} octave_plan;

struct dream {
    dd_params params;           /* the caller's, read as this library's */
    const dd_params *p;         /* &params */
    const dd_model *model;
    const dd_term *terms;
    int n_terms;
    int threads;
    int h, w;                   /* the image's size, as planned */
    int keep_nets;              /* a clip's: every octave's net kept */
    dd_net *nets[MAX_OCTAVES];  /* kept nets; nets[0] owns the packs */
    dd_term own_terms[MAX_TERMS]; /* the default objective, parsed */
    float lo[3], hi[3]; /* each channel's valid range in network units */
    octave_plan plan;
    dd_net *net;                /* the current octave's, planned for one tile */
    dream_stop stop;            /* the user's should_stop */
    float *tile_in, *tile_grad; /* 3 x side x side of the largest tile */
    float *x, *g;               /* the image being dreamed and its gradient */
    float *mask_full;           /* the mask at the image's size, 0..1; NULL: none */
    float *mask_oct;            /* the mask at an octave's size below the full one */
    const float *mask;          /* the current octave's: one of the two, or NULL */
};

int dream_stop_asked(const dream_stop *stop) {
    if (!stop || !stop->fn || !stop->fn(stop->user)) return 0;
    util_fail(DD_ERR_CANCELLED, "cancelled");
    return 1;
}

/* A dream_row_fn: row y of colour plane c of the photo at the image's size. */
const float *dream_photo_row(const void *source, int c, int y, float *row) {
    const dream_photo *ph = source;
    const dd_image *im = ph->im;
    if (ph->start) return ph->start + ((size_t)c * im->height + (size_t)y) * (size_t)im->width;
    const size_t channels = (size_t)im->channels, first = (size_t)y * (size_t)im->width;
    const size_t c_in = ph->colour == 3 ? (size_t)c : 0;
    for (int x = 0; x < im->width; x++)
        row[x] = (float)img_get(im, (first + (size_t)x) * channels + c_in) / ph->unit / ph->divisor[c] + ph->offset[c];
    return row;
}

dream_photo dream_photo_of(const dd_image *im, const dd_model *model) {
    return (dream_photo){im, im->channels >= 3 ? 3 : 1, im->depth == 16 ? 257.0f : 1.0f, model->divisor,
                         model->offset, NULL};
}

typedef struct rows_job {
    float *dst;
    const dream_photo *ph;
    int r0, h, w;
} rows_job;

static void photo_rows(void *ctx, size_t from, size_t to, int worker) {
    const rows_job *j = ctx;
    const int h = j->h, w = j->w;
    (void)worker;
    for (int r = j->r0 + (int)from; r < j->r0 + (int)to; r++) {
        float *row = j->dst + (size_t)r * w;
        const float *got = dream_photo_row(j->ph, r / h, r % h, row);
        if (got != row) memcpy(row, got, (size_t)w * sizeof *row);
    }
}

dd_status dream_photo_at(float *dst, const dream_photo *ph, int h, int w, int threads, const dream_stop *stop) {
    const int ih = ph->im->height, iw = ph->im->width;
    if (h != ih || w != iw) return dream_resize_rows(dst, h, w, dream_photo_row, ph, ih, iw, 3, threads, stop);
    enum { BAND_ROWS = 256 };
    for (int r0 = 0; r0 < 3 * h; r0 += BAND_ROWS) {
        const int r1 = 3 * h - r0 < BAND_ROWS ? 3 * h : r0 + BAND_ROWS;
        if (dream_stop_asked(stop)) return DD_ERR_CANCELLED;
        rows_job j = {dst, ph, r0, h, w};
        team_for(threads, (size_t)(r1 - r0), photo_rows, &j);
    }
    return DD_OK;
}

/* Where the mask comes from: an image's grey, its colour as BT.601 luma, or
 * its alpha, as 0..1 (white or opaque 1), swapped when invert is set. */
typedef struct mask_source {
    const dd_image *im;
    int alpha, invert;
} mask_source;

/* A dream_row_fn: row y of the mask at its own size. The luma's weights
 * are integers so that a grey's R = G = B = v gives exactly v / full: white
 * is exactly 1. */
static const float *mask_row(const void *source, int plane, int y, float *row) {
    const mask_source *ms = source;
    const dd_image *im = ms->im;
    const size_t channels = (size_t)im->channels, first = (size_t)y * (size_t)im->width * channels;
    const double full = im->depth == 16 ? 65535.0 : 255.0;
    (void)plane;
    for (int x = 0; x < im->width; x++) {
        const size_t i = first + (size_t)x * channels;
        double v;
        if (ms->alpha) v = img_get(im, i + channels - 1) / full;
        else if (channels >= 3)
            v = (299.0 * img_get(im, i) + 587.0 * img_get(im, i + 1) + 114.0 * img_get(im, i + 2)) / (1000.0 * full);
        else v = img_get(im, i) / full;
        row[x] = (float)(ms->invert ? 1.0 - v : v);
    }
    return row;
}

/* The resampler's weights add up to 1 only within rounding, so a white
 * mask may come out 0.99999994. Values this close to 0 or 1 (a fifteenth
 * of a 16-bit level) are snapped to it: white then dreams exactly as no
 * mask does, and black is exactly 0, which the final write looks for. */
#define MASK_SNAP 1e-6f

static void snap_rows(void *ctx, size_t from, size_t to, int worker) {
    const rows_job *j = ctx;
    (void)worker;
    for (int r = j->r0 + (int)from; r < j->r0 + (int)to; r++)
        for (float *v = j->dst + (size_t)r * j->w, *end = v + j->w; v < end; v++)
            *v = *v < MASK_SNAP ? 0.0f : *v > 1.0f - MASK_SNAP ? 1.0f : *v;
}

/* Snaps the mask m (h x w) in bands of rows, asking stop between them. */
static dd_status mask_snap(float *m, int h, int w, int threads, const dream_stop *stop) {
    enum { BAND_ROWS = 256 };
    for (int r0 = 0; r0 < h; r0 += BAND_ROWS) {
        const int r1 = h - r0 < BAND_ROWS ? h : r0 + BAND_ROWS;
        if (dream_stop_asked(stop)) return DD_ERR_CANCELLED;
        rows_job j = {m, NULL, r0, h, w};
        team_for(threads, (size_t)(r1 - r0), snap_rows, &j);
    }
    return DD_OK;
}

/* The mask at the image's size (h x w), made once, and room for it at the
 * largest octave below that size. */
static dd_status mask_make(dream *d, dd_image *im) {
    const dd_params *p = d->p;
    const int h = im->height, w = im->width;
    if (!p->mask && !p->mask_alpha) return DD_OK;
    size_t oct_px = 0;
    for (int k = 0; k < d->plan.n_octaves; k++) {
        const size_t px = (size_t)d->plan.oct[k].h * d->plan.oct[k].w;
        if ((d->plan.oct[k].h != h || d->plan.oct[k].w != w) && px > oct_px) oct_px = px;
    }
    d->mask_full = malloc((size_t)h * w * sizeof *d->mask_full);
    d->mask_oct = oct_px ? malloc(oct_px * sizeof *d->mask_oct) : NULL;
    if (!d->mask_full || (oct_px && !d->mask_oct)) return util_fail(DD_ERR_NOMEM, "out of memory for a %dx%d mask", w, h);
    const mask_source ms = {p->mask_alpha ? im : p->mask, p->mask_alpha, p->invert_mask};
    dd_status st = dream_resize_rows(d->mask_full, h, w, mask_row, &ms, ms.im->height, ms.im->width, 1, d->threads,
                                     &d->stop);
    if (!st) st = mask_snap(d->mask_full, h, w, d->threads, &d->stop);
    return st;
}

/* d->mask for octave o of an image h x w: the full-size one, or it resized. */
static dd_status mask_at(dream *d, const octave *o, int h, int w) {
    if (!d->mask_full) return DD_OK;
    if (o->h == h && o->w == w) {
        d->mask = d->mask_full;
        return DD_OK;
    }
    dd_status st = dream_resize(d->mask_oct, o->h, o->w, d->mask_full, h, w, 1, d->threads, &d->stop);
    if (!st) st = mask_snap(d->mask_oct, o->h, o->w, d->threads, &d->stop);
    d->mask = d->mask_oct;
    return st;
}

/* A tile's rows in and out of the whole image, wrapping around. */
typedef struct tile_job {
    const dream *d;
    size_t plane, tplane;
    int h, w, th, tw, y, x, my, mx, rows, cols;
} tile_job;

static void tile_rows_in(void *ctx, size_t from, size_t to, int worker) {
    const tile_job *j = ctx;
    const int th = j->th, tw = j->tw, h = j->h, w = j->w;
    (void)worker;
    for (int r = (int)from; r < (int)to; r++) {
        const int c = r / th, yy = r % th;
        const float *src = j->d->x + c * j->plane + (size_t)((j->y + yy) % h) * w;
        float *dst = j->d->tile_in + c * j->tplane + (size_t)yy * tw;
        for (int xx = 0, sx = j->x; xx < tw; xx++, sx = sx + 1 == w ? 0 : sx + 1) dst[xx] = src[sx];
    }
}

static void tile_rows_out(void *ctx, size_t from, size_t to, int worker) {
    const tile_job *j = ctx;
    const int rows = j->rows, tw = j->tw, h = j->h, w = j->w;
    (void)worker;
    for (int r = (int)from; r < (int)to; r++) {
        const int c = r / rows, yy = r % rows;
        float *dst = j->d->g + c * j->plane + (size_t)((j->y + yy) % h) * w;
        const float *src = j->d->tile_grad + c * j->tplane + (size_t)(yy + j->my) * tw + j->mx;
        for (int xx = 0, sx = j->x; xx < j->cols; xx++, sx = sx + 1 == w ? 0 : sx + 1) dst[sx] = src[xx];
    }
}

/* Gradient of the whole image x (3 x h x w) into g, tile by tile. The image
 * is treated as rolled by (oy, ox), wrapping around, as the jitter wants;
 * tiles read their margins across the wrap too. */
static dd_status image_gradient(dream *d, const octave *o, int oy, int ox) {
    const int h = o->h, w = o->w, th = o->ty.side, tw = o->tx.side;
    const int my = o->ty.margin, mx = o->tx.margin;
    const size_t plane = (size_t)h * w, tplane = (size_t)th * tw;
    for (int ti = 0; ti < o->ty.count; ti++) {
        const int y0 = (int)((long)ti * h / o->ty.count), y1 = (int)((long)(ti + 1) * h / o->ty.count);
        for (int tj = 0; tj < o->tx.count; tj++) {
            const int x0 = (int)((long)tj * w / o->tx.count), x1 = (int)((long)(tj + 1) * w / o->tx.count);
            const int in_y = ((y0 - my + oy) % h + h) % h, in_x = ((x0 - mx + ox) % w + w) % w;
            if (dream_stop_asked(&d->stop)) return DD_ERR_CANCELLED;
            tile_job in = {d, plane, tplane, h, w, th, tw, in_y, in_x, my, mx, th, tw};
            team_for(d->threads, (size_t)(3 * th), tile_rows_in, &in);
            dd_status st = dd_net_gradient(d->net, d->tile_in, d->tile_grad, NULL);
            if (st) return st;
            /* Keep the tile's own span, without its margins. */
            const int out_y = (y0 + oy) % h, out_x = (x0 + ox) % w;
            tile_job out = {d, plane, tplane, h, w, th, tw, out_y, out_x, my, mx, y1 - y0, x1 - x0};
            team_for(d->threads, (size_t)(3 * (y1 - y0)), tile_rows_out, &out);
        }
    }
    return DD_OK;
}

enum { CHUNK = 1 << 16 };

typedef struct ascend_job {
    const float *g, *m;
    float *x;
    double *s, *q;
    size_t base, n;
    float scale, lo, hi;
} ascend_job;

static void chunk_sums(void *ctx, size_t from, size_t to, int worker) {
    const ascend_job *j = ctx;
    (void)worker;
    for (size_t k = from; k < to; k++) {
        const size_t a = (j->base + k) * CHUNK, b = a + CHUNK < j->n ? a + CHUNK : j->n;
        double ls = 0, lq = 0;
        for (size_t i = a; i < b; i++) ls += j->g[i], lq += (double)j->g[i] * j->g[i];
        j->s[k] = ls, j->q[k] = lq;
    }
}

static void step_pixels(void *ctx, size_t from, size_t to, int worker) {
    const ascend_job *j = ctx;
    const float *g = j->g, *m = j->m, scale = j->scale, lo = j->lo, hi = j->hi;
    float *x = j->x;
    (void)worker;
    for (size_t i = from; i < to; i++) {
        /* A mask of 1 rounds nothing: white gives no mask's bytes. */
        const float v = x[i] + scale * (m ? g[i] * m[i] : g[i]);
        x[i] = v < lo ? lo : v > hi ? hi : v;
    }
}

/* x += step * g * mask / (std(g) + 1e-8), clipped. Dividing by the spread
 * makes the step size mean the same at every octave, layer and tile size;
 * the spread is the whole gradient's, so a mask only scales the steps it
 * covers and grey means a fraction of the step white takes. */
static dd_status ascend(dream *d, size_t n) {
    const size_t chunks = (n + CHUNK - 1) / CHUNK;
    double sum = 0, sq = 0;
    /* Fixed chunks summed in order: the same bits for any thread count. */
    for (size_t base = 0; base < chunks; base += 256) {
        double s[256], q[256];
        const int m = (int)(chunks - base < 256 ? chunks - base : 256);
        if (dream_stop_asked(&d->stop)) return DD_ERR_CANCELLED;
        ascend_job j = {.g = d->g, .s = s, .q = q, .base = base, .n = n};
        team_for(d->threads, (size_t)m, chunk_sums, &j);
        for (int k = 0; k < m; k++) sum += s[k], sq += q[k];
    }
    const double mean = sum / (double)n;
    const double var = sq / (double)n - mean * mean;
    const float scale = (float)(d->p->step_size / (sqrt(var > 0 ? var : 0) + 1e-8));
    if (dream_stop_asked(&d->stop)) return DD_ERR_CANCELLED;
    const size_t plane = n / 3;
    for (int c = 0; c < 3; c++) {
        ascend_job j = {.g = d->g + c * plane, .m = d->mask, .x = d->x + c * plane, .scale = scale,
                        .lo = d->lo[c], .hi = d->hi[c]};
        team_for(d->threads, plane, step_pixels, &j);
    }
    return DD_OK;
}

static dd_status check_params(const dd_params *p) {
    if (p->octaves < 0 || p->octaves > MAX_OCTAVES)
        return util_fail(DD_ERR_INVALID_ARG, "octaves %d outside 0 (auto)..%d", p->octaves, MAX_OCTAVES);
    if (!(p->octave_scale >= 1.0f && p->octave_scale <= 8.0f))
        return util_fail(DD_ERR_INVALID_ARG, "octave scale %g outside 1..8", p->octave_scale);
    if (p->steps < 0 || p->steps > 100000) return util_fail(DD_ERR_INVALID_ARG, "steps %d outside 0..100000", p->steps);
    if (!(p->step_size >= 0.0f && p->step_size <= 100.0f))
        return util_fail(DD_ERR_INVALID_ARG, "step size %g outside 0..100", p->step_size);
    if (p->jitter < 0 || p->jitter > 100000) return util_fail(DD_ERR_INVALID_ARG, "jitter %d outside 0..100000", p->jitter);
    if (p->tile < 64 || p->tile > 8192) return util_fail(DD_ERR_INVALID_ARG, "tile %d outside 64..8192", p->tile);
    if (p->max_size < 0) return util_fail(DD_ERR_INVALID_ARG, "max size %d is negative", p->max_size);
    if (!(p->blend >= 0.0f && p->blend <= 1.0f)) return util_fail(DD_ERR_INVALID_ARG, "blend %g outside 0..1", p->blend);
    if (p->frame_steps < 0 || p->frame_steps > 100000)
        return util_fail(DD_ERR_INVALID_ARG, "frame steps %d outside 0..100000", p->frame_steps);
    return DD_OK;
}

static dd_status check_mask(const dd_params *p, int channels) {
    if (p->mask && p->mask_alpha) return util_fail(DD_ERR_INVALID_ARG, "both a mask image and the image's alpha as mask");
    if (p->invert_mask && !p->mask && !p->mask_alpha) return util_fail(DD_ERR_INVALID_ARG, "invert_mask without a mask");
    if (p->mask_alpha && channels != 2 && channels != 4)
        return util_fail(DD_ERR_INVALID_ARG, "the image has no alpha channel to use as its mask");
    return DD_OK;
}

/* DD_ERR_TOO_SMALL for the last octave (h x w, the full size or the size
 * --max-size chose for an image of full_h x full_w): names the image, the
 * size it would be dreamed at, the deepest layer and the least size it
 * needs; or, when the image is big enough but is cut into tiles, the tiles. */
static dd_status too_small(const dd_params *p, const char *layer, int h, int w, int full_h, int full_w, int side_h,
                           int side_w, int min_h, int min_w) {
    if (h >= min_h && w >= min_w)
        return util_fail(DD_ERR_TOO_SMALL, "image %dx%d: tiles of %dx%d (tile %d) are too small for %s (needs at least %dx%d)",
                         full_w, full_h, side_w, side_h, p->tile, layer, min_w, min_h);
    if (h == full_h && w == full_w)
        return util_fail(DD_ERR_TOO_SMALL, "image %dx%d is too small for %s (needs at least %dx%d)", w, h, layer,
                         min_w, min_h);
    return util_fail(DD_ERR_TOO_SMALL, "image %dx%d, dreamed at %dx%d (max size %d), is too small for %s (needs at least %dx%d)",
                     full_w, full_h, w, h, p->max_size, layer, min_w, min_h);
}

/* The size --max-size dreams an h x w image at: the long side at most
 * max_size, then the detail carried up to the full size like one more
 * octave without steps. */
static void work_size(const dd_params *p, int h, int w, int *work_h, int *work_w) {
    *work_h = h, *work_w = w;
    if (p->max_size > 0 && (h > p->max_size || w > p->max_size)) {
        const double f = (double)(h > w ? h : w) / p->max_size;
        *work_h = (int)lround(h / f), *work_w = (int)lround(w / f);
        if (*work_h < 1) *work_h = 1;
        if (*work_w < 1) *work_w = 1;
    }
}

/* The octave count: params.octaves, or for 0 (auto) as many as bring the
 * smallest octave's long side to at most AUTO_SMALLEST pixels. The network
 * then sees the whole picture at about its own scale first, whatever the
 * photo's size, so the patterns keep their size relative to the picture:
 * a fixed count dreamed a 12-megapixel photo only at 1400 pixels and up,
 * where the patterns are specks. */
#define AUTO_SMALLEST 200
static int octave_count(const dd_params *p, int work_h, int work_w) {
    if (p->octaves > 0) return p->octaves;
    const int longest = work_h > work_w ? work_h : work_w;
    if (longest <= AUTO_SMALLEST || p->octave_scale <= 1.0f) return 1;
    const int n = 1 + (int)ceil(log((double)longest / AUTO_SMALLEST) / log(p->octave_scale) - 1e-9);
    return n < MAX_OCTAVES ? n : MAX_OCTAVES;
}

/* Octave sizes and tiles of an h x w image, smallest first, from shape
 * inference alone (nets are planned as their octaves start): octaves whose
 * tiles are too small for the objective's deepest layer are left out, all
 * but the last, which is an error. dd_dream and dd_dream_plan_for both
 * plan here. */
static dd_status plan_octaves(const dd_model *model, const dd_params *p, const dd_term *terms, int n_terms, int h,
                              int w, octave_plan *out) {
    int min_h, min_w, deepest, work_h, work_w;
    dd_status st = net_min_input(model, terms, n_terms, &min_h, &min_w, &deepest);
    if (st) return st;
    work_size(p, h, w, &work_h, &work_w);
    out->n_octaves = 0, out->tile_floats = 0;
    const int octaves = octave_count(p, work_h, work_w);
    for (int i = 0; i < octaves; i++) {
        const double f = pow(p->octave_scale, octaves - 1 - i);
        octave o = {.h = (int)lround(work_h / f), .w = (int)lround(work_w / f)};
        if (o.h < 1 || o.w < 1) continue;
        o.ty = cut_axis(o.h, p->tile), o.tx = cut_axis(o.w, p->tile);
        if (o.ty.side < min_h || o.tx.side < min_w) {
            if (i < octaves - 1) continue; /* skip small octaves */
            return too_small(p, terms[deepest].layer, o.h, o.w, h, w, o.ty.side, o.tx.side, min_h, min_w);
        }
        const size_t n = (size_t)3 * o.ty.side * o.tx.side;
        if (n > out->tile_floats) out->tile_floats = n;
        out->oct[out->n_octaves++] = o;
    }
    return DD_OK;
}

/* The objective params name (default_terms: MAX_TERMS of scratch for the
 * model's default one) and the thread count, as dd_dream runs them. */
static dd_status dream_setup(const dd_model *model, const dd_params *p, dd_term *default_terms, const dd_term **terms,
                             int *n_terms, int *threads) {
    dd_status st = check_params(p);
    if (st) return st;
    *terms = p->terms, *n_terms = p->n_terms;
    if (!p->terms) {
        const char *spec = p->layers ? p->layers : dd_model_default_layers(model);
        if ((st = dd_terms_parse(model, spec, default_terms, MAX_TERMS, n_terms))) return st;
        *terms = default_terms;
    }
    *threads = p->threads > 0 ? p->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (*threads < 1) *threads = 1;
    return DD_OK;
}

/* Plans octave k's net as the octave starts, so one net is alive at a time
 * whatever the octave count. The first one packs the weights as
 * params.fast says; each later one borrows them from the one before and
 * takes them over, and the one before is freed: one packed copy in all.
 * With keep_nets every octave's net is planned once and kept, each later
 * one borrowing the first one's packs. */
static dd_status start_net(dream *d, int k) {
    const octave *o = &d->plan.oct[k];
    dd_net *net = NULL, *from = d->keep_nets ? d->nets[0] : d->net;
    dd_status st;
    if (d->keep_nets && d->nets[k]) {
        d->net = d->nets[k];
        net_set_should_stop(d->net, d->stop.fn, d->stop.user);
        return DD_OK;
    }
    if (from) {
        st = net_new_borrowing(d->model, d->terms, d->n_terms, o->ty.side, o->tx.side, d->threads, from, &net);
    } else {
        st = dd_net_new(d->model, d->terms, d->n_terms, o->ty.side, o->tx.side, d->threads, &net);
        if (!st) st = dd_net_set_fast(net, d->p->fast);
    }
    if (st) {
        dd_net_free(net);
        return st;
    }
    if (d->p->guide && (st = dd_net_set_guide(net, d->p->guide))) {
        dd_net_free(net);
        return st;
    }
    if (d->keep_nets) {
        d->nets[k] = net;
    } else {
        if (d->net) net_hand_over_packs(net, d->net);
        dd_net_free(d->net);
    }
    d->net = net;
    net_set_should_stop(net, d->stop.fn, d->stop.user);
    return DD_OK;
}

/* The dream's pixel v (3 floats in samples, 0..full) -> the dream's luma
 * with the photo's chroma (the pixel's samples start at first). In BT.601
 * full-range YCbCr (JPEG's) Cb and Cr weigh R, G and B with weights that
 * add up to 0, so that is the photo plus the luma's change on all three
 * channels. The change is clamped as one, keeping every channel in
 * 0..full (clamping the channels one by one would shift the chroma), and
 * rounded once: the chroma is then the photo's exactly, the luma within
 * half a level of the dream's. */
static void keep_chroma(float v[3], const dd_image *im, size_t first, float full) {
    float s[3];
    for (int c = 0; c < 3; c++) s[c] = (float)img_get(im, first + (size_t)c);
    const float dy = 0.299f * (v[0] - s[0]) + 0.587f * (v[1] - s[1]) + 0.114f * (v[2] - s[2]);
    const float lowest = fminf(fminf(s[0], s[1]), s[2]), highest = fmaxf(fmaxf(s[0], s[1]), s[2]);
    const float change = rintf(fminf(fmaxf(dy, -lowest), full - highest));
    for (int c = 0; c < 3; c++) v[c] = s[c] + change;
}

/* Network input -> pixels: the only writes to the image. Pixels where the
 * full-size mask is 0 are not written: they keep the input's exact
 * samples, whatever detail the octaves below carried into them. */
static void write_image(const dream *d, const dream_photo *ph, dd_image *im) {
    const size_t plane = (size_t)im->height * im->width, channels = (size_t)im->channels;
    const float full = im->depth == 16 ? 65535.0f : 255.0f;
    for (size_t i = 0; i < plane; i++) {
        if (d->mask_full && d->mask_full[i] == 0.0f) continue;
        float v[3];
        for (int c = 0; c < 3; c++) v[c] = (d->x[c * plane + i] - ph->offset[c]) * ph->divisor[c] * ph->unit;
        if (ph->colour == 1) {
            const float grey = (v[0] + v[1] + v[2]) / 3.0f;
            img_set(im, i * channels, (unsigned)lrintf(fminf(fmaxf(grey, 0), full)));
            continue;
        }
        if (d->p->preserve_colors) keep_chroma(v, im, i * channels, full);
        for (int c = 0; c < 3; c++) img_set(im, i * channels + (size_t)c, (unsigned)lrintf(fminf(fmaxf(v[c], 0), full)));
    }
}

dd_status dream_new(const dd_model *model, const dd_params *params, int h, int w, int keep_nets, dream **out) {
    dd_status st;
    *out = NULL;
    if (!model || !params) return util_fail(DD_ERR_INVALID_ARG, "no model or parameters");
    dream *d = calloc(1, sizeof *d);
    if (!d) return util_fail(DD_ERR_NOMEM, "out of memory");
    if ((st = params_read(params, &d->params))) goto fail;
    params = d->p = &d->params;
    if ((st = dream_setup(model, params, d->own_terms, &d->terms, &d->n_terms, &d->threads))) goto fail;
    d->model = model, d->h = h, d->w = w, d->keep_nets = keep_nets;
    for (int c = 0; c < 3; c++) d->lo[c] = model->offset[c], d->hi[c] = 255.0f / model->divisor[c] + model->offset[c];
    if ((st = plan_octaves(model, params, d->terms, d->n_terms, h, w, &d->plan))) goto fail;
    const size_t n = (size_t)3 * h * w;
    d->tile_in = malloc(d->plan.tile_floats * sizeof(float));
    d->tile_grad = malloc(d->plan.tile_floats * sizeof(float));
    if (!d->tile_in || !d->tile_grad) {
        st = util_fail(DD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    d->x = malloc(n * sizeof *d->x);
    d->g = malloc(n * sizeof *d->g);
    if (!d->x || !d->g) {
        st = util_fail(DD_ERR_NOMEM, "out of memory for a %dx%d dream", w, h);
        goto fail;
    }
    *out = d;
    return DD_OK;
fail:
    dream_free(d);
    return st;
}

void dream_free(dream *d) {
    if (!d) return;
    if (d->keep_nets) {
        for (int k = MAX_OCTAVES - 1; k >= 0; k--) dd_net_free(d->nets[k]); /* the packs' owner last */
    } else {
        dd_net_free(d->net);
    }
    free(d->tile_in), free(d->tile_grad), free(d->x), free(d->g), free(d->mask_full), free(d->mask_oct);
    free(d);
}

int dream_threads(const dream *d) { return d->threads; }

/* Memory: the image's own samples, two float planes of it (the dream x and
 * its gradient g, 24 bytes a pixel), a mask's plane at the image's size and
 * one at the largest octave's below it (4 bytes a pixel each), one octave's
 * net (planned when its octave starts, its arena dropped when it ends) and
 * scratch sized by the tile or a few rows. The photo at an octave's size is
 * made again from the samples when it is needed (start and end of each
 * octave), and the detail lives in x between octaves. */
dd_status dream_run(dream *d, dd_image *im, const float *start, int steps, dd_progress_fn progress, void *user) {
    const dd_params *params = d->p;
    dd_status st;
    if (im->height != d->h || im->width != d->w)
        return util_fail(DD_ERR_INVALID_ARG, "image %dx%d, planned for %dx%d", im->width, im->height, d->w, d->h);
    if ((st = check_mask(params, im->channels))) return st;
    d->stop = (dream_stop){params->should_stop, user};
    const int h = im->height, w = im->width;
    const size_t plane = (size_t)h * w, n = 3 * plane;
    if ((st = mask_make(d, im))) goto done;
    dream_photo ph = dream_photo_of(im, d->model);
    ph.start = start;
    uint64_t rng = params->seed;
    int prev_h = 0, prev_w = 0;
    for (int k = 0; k < d->plan.n_octaves; k++) {
        octave *o = &d->plan.oct[k];
        const size_t on = (size_t)3 * o->h * o->w;
        if ((st = start_net(d, k)) || (st = mask_at(d, o, h, w))) goto done;
        /* x = this octave's photo plus the detail dreamed so far (in x, at
         * the previous octave's size): the detail resized into g, the photo
         * into x, their sum into g, and the two swapped. */
        if (k == 0) {
            if ((st = dream_photo_at(d->x, &ph, o->h, o->w, d->threads, &d->stop))) goto done;
        } else {
            if ((st = dream_resize(d->g, o->h, o->w, d->x, prev_h, prev_w, 3, d->threads, &d->stop))) goto done;
            if ((st = dream_photo_at(d->x, &ph, o->h, o->w, d->threads, &d->stop))) goto done;
            for (size_t i = 0; i < on; i++) d->g[i] += d->x[i];
            float *t = d->x;
            d->x = d->g, d->g = t;
        }
        for (int s = 0; s < steps; s++) {
            if (progress && progress(user, k, d->plan.n_octaves, s, steps)) {
                st = util_fail(DD_ERR_CANCELLED, "cancelled");
                goto done;
            }
            /* Jitter rolls the image; the tile grid shifts only when there is
             * more than one tile, so a one-tile image with jitter 0 moves
             * exactly along its own gradient. */
            int oy = params->jitter ? rng_range(&rng, -params->jitter, params->jitter) : 0;
            int ox = params->jitter ? rng_range(&rng, -params->jitter, params->jitter) : 0;
            if (o->ty.count > 1) oy += rng_range(&rng, 0, o->h - 1);
            if (o->tx.count > 1) ox += rng_range(&rng, 0, o->w - 1);
            oy = ((oy % o->h) + o->h) % o->h, ox = ((ox % o->w) + o->w) % o->w;
            if ((st = image_gradient(d, o, oy, ox))) goto done;
            if ((st = ascend(d, on))) goto done;
        }
        /* The net keeps only the packed weights for the next one to take. */
        if (!d->keep_nets) net_release_arena(d->net);
        prev_h = o->h, prev_w = o->w;
        if (k == d->plan.n_octaves - 1 && prev_h == h && prev_w == w) break; /* x is the result */
        /* The detail (dreamed minus photo), in place in x. */
        if ((st = dream_photo_at(d->g, &ph, o->h, o->w, d->threads, &d->stop))) goto done;
        for (size_t i = 0; i < on; i++) d->x[i] -= d->g[i];
    }
    if (prev_h != h || prev_w != w) { /* the detail up to the full size */
        if ((st = dream_resize(d->g, h, w, d->x, prev_h, prev_w, 3, d->threads, &d->stop))) goto done;
        if ((st = dream_photo_at(d->x, &ph, h, w, d->threads, &d->stop))) goto done;
        for (size_t i = 0; i < n; i++) {
            const float v = d->g[i] + d->x[i], lo = d->lo[i / plane], hi = d->hi[i / plane];
            d->x[i] = v < lo ? lo : v > hi ? hi : v;
        }
    }
    /* After the last thing that can fail, so a failed or cancelled dream
     * leaves the image as it was. */
    write_image(d, &ph, im);
done:
    free(d->mask_full), free(d->mask_oct);
    d->mask_full = d->mask_oct = NULL, d->mask = NULL;
    return st;
}

dd_status dd_dream(const dd_model *model, const dd_params *params, dd_image *im, dd_progress_fn progress,
                   void *user) {
    dream *d;
    util_clear_error();
    if (!model || !params || !im) return util_fail(DD_ERR_INVALID_ARG, "no model, parameters or image");
    team_scope team;
    team_enter(&team, params->threads);
    dd_status st = dream_new(model, params, im->height, im->width, 0, &d);
    if (!st) {
        st = dream_run(d, im, NULL, d->p->steps, progress, user);
        dream_free(d);
    }
    team_leave(&team);
    return st;
}

dd_status dd_dream_plan_for(const dd_model *model, const dd_params *params, int width, int height, int channels,
                            int depth, dd_dream_plan *out) {
    dd_term default_terms[MAX_TERMS];
    const dd_term *terms;
    int n_terms, threads;
    octave_plan plan;
    dd_params own;
    dd_status st;
    util_clear_error();
    if (!model || !params || !out) return util_fail(DD_ERR_INVALID_ARG, "no model, parameters or plan");
    memset(out, 0, sizeof *out);
    if ((st = params_read(params, &own))) return st;
    params = &own;
    if (width < 1 || height < 1 || width > 65535 || height > 65535)
        return util_fail(DD_ERR_INVALID_ARG, "image size %dx%d outside 1..65535", width, height);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16))
        return util_fail(DD_ERR_INVALID_ARG, "%d channels of %d bits: not an image", channels, depth);
    if ((st = dream_setup(model, params, default_terms, &terms, &n_terms, &threads))) return st;
    if ((st = check_mask(params, channels))) return st;
    if ((st = plan_octaves(model, params, terms, n_terms, height, width, &plan))) return st;
    /* What is resident at the peak, as dd_dream touches it: the samples
     * and the packed weights throughout; the two float planes as large as
     * the largest octave so far (their pages stay once written), the tile
     * buffers as the largest tile so far and the current octave's arena
     * while it steps (a net that never steps writes none of its arena);
     * then, with --max-size, the planes at the full size with the arena
     * freed. */
    const uint64_t samples = (uint64_t)width * height * channels * (depth / 8);
    uint64_t planes = 0, tiles = 0, arena = 0, packed = 0, phase = 0;
    for (int k = 0; k < plan.n_octaves; k++) {
        const octave *o = &plan.oct[k];
        net_size ns;
        if ((st = net_size_of(model, terms, n_terms, o->ty.side, o->tx.side, threads, params->fast, &ns))) return st;
        const uint64_t px = (uint64_t)o->h * o->w, tile_bytes = (uint64_t)2 * 3 * o->ty.side * o->tx.side * sizeof(float);
        if (24 * px > planes) planes = 24 * px;
        if (params->steps > 0 && tile_bytes > tiles) tiles = tile_bytes;
        arena = params->steps > 0 ? ns.arena_bytes : 0;
        if (ns.packed_bytes > packed) packed = ns.packed_bytes;
        if (planes + tiles + arena > phase) phase = planes + tiles + arena;
        out->octave[k] = (dd_octave_plan){.width = o->w, .height = o->h, .tiles_x = o->tx.count, .tiles_y = o->ty.count,
                                          .tile_width = o->tx.side, .tile_height = o->ty.side,
                                          .flops = ns.flops_fwd + ns.flops_bwd};
        out->passes += (double)params->steps * o->tx.count * o->ty.count;
        out->flops += (double)params->steps * o->tx.count * o->ty.count * out->octave[k].flops;
    }
    if (24 * (uint64_t)width * height + tiles > phase) phase = 24 * (uint64_t)width * height + tiles;
    /* A mask: one float plane at the full size, one at the largest octave below it. */
    uint64_t mask = 0;
    for (int k = 0; (params->mask || params->mask_alpha) && k < plan.n_octaves; k++) {
        const uint64_t px = (uint64_t)plan.oct[k].h * plan.oct[k].w;
        if ((plan.oct[k].h != height || plan.oct[k].w != width) && 4 * px > mask) mask = 4 * px;
    }
    if (params->mask || params->mask_alpha) mask += (uint64_t)4 * width * height;
    out->n_octaves = plan.n_octaves;
    out->peak_bytes = samples + packed + mask + phase;
    return DD_OK;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds a pass of net takes on in: after one warm-up, passes for a
 * budget of seconds (at most 8), averaged: one pass of 50 ms on a shared
 * machine catches the others' load at one moment, and the dream runs
 * through all of it. */
static dd_status time_passes(dd_net *net, float *in, float *grad, double budget, double *per_pass) {
    dd_status st = dd_net_gradient(net, in, grad, NULL); /* caches, pages, threads */
    if (st) return st;
    const double t0 = seconds_now();
    double seconds = 0;
    int passes = 0;
    while (passes < 8 && seconds < budget) {
        if ((st = dd_net_gradient(net, in, grad, NULL))) return st;
        passes++;
        seconds = seconds_now() - t0;
    }
    *per_pass = seconds / passes;
    return DD_OK;
}

static dd_status measure_speed(const dd_model *model, const dd_params *params, dd_speed *out) {
    dd_term default_terms[MAX_TERMS];
    const dd_term *terms;
    int n_terms, threads, min_h, min_w, deepest;
    dd_net *net = NULL;
    float *in = NULL;
    dd_status st;
    dd_params own;
    util_clear_error();
    if (!model || !params || !out) return util_fail(DD_ERR_INVALID_ARG, "no model, parameters or result");
    memset(out, 0, sizeof *out);
    if ((st = params_read(params, &own))) return st;
    params = &own;
    if ((st = dream_setup(model, params, default_terms, &terms, &n_terms, &threads))) return st;
    if ((st = net_min_input(model, terms, n_terms, &min_h, &min_w, &deepest))) return st;
    /* Two sizes, side s and 2s: a pass's time is fitted as a fixed part
     * (its layers' parallel regions and barriers, the passes' small
     * buffers) plus its FLOPs at a rate, which a single size cannot tell
     * apart: small tiles ran at about half the FLOP rate of 256x256. */
    const int h1 = min_h > 128 ? min_h : 128, w1 = min_w > 128 ? min_w : 128;
    const size_t n = (size_t)3 * (2 * h1) * (2 * w1);
    in = malloc(2 * n * sizeof *in);
    if (!in) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) in[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f; /* busy, like a photo */
    double t[2], f[2];
    for (int k = 0; k < 2; k++) {
        const double t0 = seconds_now();
        if ((st = dd_net_new(model, terms, n_terms, h1 << k, w1 << k, threads, &net))) goto done;
        if ((st = dd_net_set_fast(net, params->fast))) goto done;
        if (k == 1) out->setup_seconds = seconds_now() - t0; /* planning and packing, as the first octave */
        if ((st = time_passes(net, in, in + n, 0.125, &t[k]))) goto done;
        double fwd, bwd;
        dd_net_flops(net, &fwd, &bwd);
        f[k] = fwd + bwd;
        dd_net_free(net);
        net = NULL;
    }
    /* Noise can tilt the line (a slower large pass per FLOP than the small
     * one): then no fixed part, the larger size's rate. */
    if (t[1] > t[0] && (f[1] - f[0]) / (t[1] - t[0]) * t[0] > f[0]) {
        out->flops_per_second = (f[1] - f[0]) / (t[1] - t[0]);
        out->seconds_per_pass = t[0] - f[0] / out->flops_per_second;
    } else {
        out->flops_per_second = f[1] / (t[1] > 1e-9 ? t[1] : 1e-9);
        out->seconds_per_pass = 0;
    }
done:
    dd_net_free(net);
    free(in);
    return st;
}

double dd_dream_plan_seconds(const dd_dream_plan *plan, const dd_speed *speed) {
    if (!plan || !speed || !(speed->flops_per_second > 0)) return 0;
    return speed->setup_seconds + plan->passes * speed->seconds_per_pass + plan->flops / speed->flops_per_second;
}

dd_status dd_measure_speed(const dd_model *model, const dd_params *params, dd_speed *out) {
    team_scope team;
    team_enter(&team, params ? params->threads : 1);
    const dd_status st = measure_speed(model, params, out);
    team_leave(&team);
    return st;
}
