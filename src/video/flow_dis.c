/* Dense optical flow by DIS, Dense Inverse Search (Kroeger, Timofte, Dai and
 * Van Gool, ECCV 2016): coarse to fine, a grid of patches per level, each
 * found by inverse-compositional Lucas-Kanade, then blended into a dense field. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "video/flow.h"
#include "video/flow_dis.h"

enum { MAX_LEVELS = 16 };

void video_flow_dis_defaults(flow_dis_options *o) {
    o->patch_px = 12;
    o->stride_px = 6;
    o->iterations = 12;
    o->finest_level = 0;
    o->min_side_px = 16;
    o->normalize = 1;
    o->var_iterations = 5;
    o->prior = 0.1f;
    o->var_alpha = 20.0f;
}

/* img(x, y) by bilinear interpolation, (x, y) clamped into the plane: past
 * the border the edge pixels repeat. NaN coordinates read pixel (0, 0).
 * (Comparisons, not fminf: those are library calls at -O2.) */
static inline float sample_clamped(const float *img, int w, int h, float x, float y) {
    if (!(x >= 0)) x = 0;
    if (x > (float)(w - 1)) x = (float)(w - 1);
    if (!(y >= 0)) y = 0;
    if (y > (float)(h - 1)) y = (float)(h - 1);
    const int xi = (int)x, yi = (int)y;
    const int x1 = xi + (xi < w - 1), y1 = yi + (yi < h - 1);
    const float fx = x - (float)xi, fy = y - (float)yi;
    const float *r0 = img + (size_t)yi * w, *r1 = img + (size_t)y1 * w;
    const float top = r0[xi] + fx * (r0[x1] - r0[xi]);
    const float bottom = r1[xi] + fx * (r1[x1] - r1[xi]);
    return top + fy * (bottom - top);
}

/* out (oh, ow) = in (ih, iw) blurred by [1 4 6 4 1]/16 both ways, every
 * second pixel: out(i, j) sits at in(2i, 2j). tmp holds ih * ow floats. */
static void pyramid_down(const float *in, int ih, int iw, float *out, int oh, int ow, float *tmp, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < ih; y++) {
        const float *r = in + (size_t)y * iw;
        float *t = tmp + (size_t)y * ow;
        for (int j = 0; j < ow; j++) {
            const int x = 2 * j;
            const int xm2 = x - 2 < 0 ? 0 : x - 2, xm1 = x - 1 < 0 ? 0 : x - 1;
            const int xp1 = x + 1 > iw - 1 ? iw - 1 : x + 1, xp2 = x + 2 > iw - 1 ? iw - 1 : x + 2;
            t[j] = (r[xm2] + r[xp2] + 4.0f * (r[xm1] + r[xp1]) + 6.0f * r[x]) * (1.0f / 16.0f);
        }
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < oh; i++) {
        const int y = 2 * i;
        const int ym2 = y - 2 < 0 ? 0 : y - 2, ym1 = y - 1 < 0 ? 0 : y - 1;
        const int yp1 = y + 1 > ih - 1 ? ih - 1 : y + 1, yp2 = y + 2 > ih - 1 ? ih - 1 : y + 2;
        const float *rm2 = tmp + (size_t)ym2 * ow, *rm1 = tmp + (size_t)ym1 * ow, *r0 = tmp + (size_t)y * ow;
        const float *rp1 = tmp + (size_t)yp1 * ow, *rp2 = tmp + (size_t)yp2 * ow;
        float *o = out + (size_t)i * ow;
        for (int j = 0; j < ow; j++)
            o[j] = (rm2[j] + rp2[j] + 4.0f * (rm1[j] + rp1[j]) + 6.0f * r0[j]) * (1.0f / 16.0f);
    }
}

/* Central differences, one-sided at the border (0 across a side of 1). */
static void gradients(const float *img, int h, int w, float *gx, float *gy, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < h; y++) {
        const float *r = img + (size_t)y * w;
        const float *up = img + (size_t)(y > 0 ? y - 1 : y) * w, *down = img + (size_t)(y < h - 1 ? y + 1 : y) * w;
        const float sy = (y > 0 && y < h - 1) ? 0.5f : 1.0f;
        float *ox = gx + (size_t)y * w, *oy = gy + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            const int xl = x > 0 ? x - 1 : x, xr = x < w - 1 ? x + 1 : x;
            ox[x] = (xr - xl) ? (r[xr] - r[xl]) / (float)(xr - xl) : 0.0f;
            oy[x] = (down[x] - up[x]) * sy;
        }
    }
}

/* Patch origins along a side of n pixels: every stride, the last flush
 * with the far edge so that every pixel is covered. Returns the count. */
static int patch_origins(int n, int patch, int stride, int *origin) {
    const int count = (n - patch + stride - 1) / stride + 1;
    for (int i = 0; i < count; i++) origin[i] = i * stride < n - patch ? i * stride : n - patch;
    return count;
}

/* For each pixel p of a side, the first and last patch covering it. */
static void patch_cover(int n, int patch, const int *origin, int count, int *first, int *last) {
    int lo = 0, hi = 0;
    for (int p = 0; p < n; p++) {
        while (origin[lo] + patch <= p) lo++;
        while (hi + 1 < count && origin[hi + 1] <= p) hi++;
        first[p] = lo, last[p] = hi;
    }
}

/* One patch (pw x ph at x0, y0 of a) by inverse-compositional Lucas-Kanade:
 * the Gauss-Newton system is built on a's gradients, so its matrix is fixed
 * and only b is resampled per step. (*pu, *pv) comes in as the initial
 * displacement and goes out refined, or unchanged when the patch wandered
 * off further than its own size (a flat or repetitive patch). */
static void patch_search(const float *a, const float *b, const float *ax, const float *ay, int h, int w, int x0,
                         int y0, int pw, int ph, const flow_dis_options *o, float *pu, float *pv) {
    float t[FLOW_DIS_MAX_PATCH_PX * FLOW_DIS_MAX_PATCH_PX];
    float gx[FLOW_DIS_MAX_PATCH_PX * FLOW_DIS_MAX_PATCH_PX], gy[FLOW_DIS_MAX_PATCH_PX * FLOW_DIS_MAX_PATCH_PX];
    const int n = pw * ph;
    float mx = 0, my = 0;
    for (int j = 0, k = 0; j < ph; j++) {
        const size_t row = (size_t)(y0 + j) * w + x0;
        for (int i = 0; i < pw; i++, k++) {
            t[k] = a[row + i];
            gx[k] = ax[row + i];
            gy[k] = ay[row + i];
            mx += gx[k], my += gy[k];
        }
    }
    /* With the means removed, sum g * e equals sum g * (e - mean e): the
     * patch's brightness offset drops out of the fit. */
    if (o->normalize) {
        mx /= (float)n, my /= (float)n;
        for (int k = 0; k < n; k++) gx[k] -= mx, gy[k] -= my;
    }
    float hxx = 0, hxy = 0, hyy = 0;
    for (int k = 0; k < n; k++) hxx += gx[k] * gx[k], hxy += gx[k] * gy[k], hyy += gy[k] * gy[k];
    /* A prior pulling towards the initial displacement, prior * n * |u - u0|^2:
     * a flat patch, or an edge's direction along itself (the aperture
     * problem), keeps the coarser level's flow instead of drifting, while
     * textured patches (H in the thousands) hardly feel it. */
    const float prior = o->prior * (float)n;
    hxx += prior, hyy += prior;
    const float inv_det = 1.0f / (hxx * hyy - hxy * hxy);
    const float u0 = *pu, v0 = *pv;
    float u = u0, v = v0;
    for (int it = 0; it < o->iterations; it++) {
        const float xs = (float)x0 + u, ys = (float)y0 + v;
        float bx = 0, by = 0;
        if (xs >= 0 && ys >= 0 && xs < (float)(w - pw) && ys < (float)(h - ph)) {
            /* A translation: the bilinear weights are the same for the whole patch. */
            const int xi = (int)xs, yi = (int)ys;
            const float fx = xs - (float)xi, fy = ys - (float)yi;
            const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
            for (int j = 0; j < ph; j++) {
                const float *r0 = b + (size_t)(yi + j) * w + xi, *r1 = r0 + w;
                const float *tj = t + j * pw, *gxj = gx + j * pw, *gyj = gy + j * pw;
                for (int i = 0; i < pw; i++) {
                    const float e = w00 * r0[i] + w01 * r0[i + 1] + w10 * r1[i] + w11 * r1[i + 1] - tj[i];
                    bx += gxj[i] * e, by += gyj[i] * e;
                }
            }
        } else {
            for (int j = 0, k = 0; j < ph; j++)
                for (int i = 0; i < pw; i++, k++) {
                    const float e = sample_clamped(b, w, h, xs + (float)i, ys + (float)j) - t[k];
                    bx += gx[k] * e, by += gy[k] * e;
                }
        }
        bx += prior * (u - u0), by += prior * (v - v0);
        const float du = (hyy * bx - hxy * by) * inv_det, dv = (hxx * by - hxy * bx) * inv_det;
        u -= du, v -= dv;
        if (!(fabsf(u - u0) <= (float)pw && fabsf(v - v0) <= (float)ph)) {
            u = u0, v = v0;
            break;
        }
        if (du * du + dv * dv < 1e-4f) break;
    }
    *pu = u, *pv = v;
}

typedef struct level_grid {
    int pw, ph, nx, ny;
    int *ox, *oy;           /* patch origins (nx), (ny)                     */
    int *x_first, *x_last;  /* covering patches per column (w)              */
    int *y_first, *y_last;  /* and per row (h)                              */
} level_grid;

/* The patches of one level from the coarser flow (cu, cv at (ch, cw), NULL
 * at the coarsest level), into pu, pv (ny, nx). */
static void search_level(const float *a, const float *b, const float *ax, const float *ay, int h, int w,
                         const level_grid *g, const float *cu, const float *cv, int ch, int cw,
                         const flow_dis_options *o, float *pu, float *pv, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int py = 0; py < g->ny; py++)
        for (int px = 0; px < g->nx; px++) {
            const int x0 = g->ox[px], y0 = g->oy[py];
            float u = 0, v = 0;
            if (cu) {
                /* The coarser level's pixel i sits at this level's 2i. */
                const float cx = 0.5f * ((float)x0 + 0.5f * (float)(g->pw - 1));
                const float cy = 0.5f * ((float)y0 + 0.5f * (float)(g->ph - 1));
                u = 2.0f * sample_clamped(cu, cw, ch, cx, cy);
                v = 2.0f * sample_clamped(cv, cw, ch, cx, cy);
            }
            patch_search(a, b, ax, ay, h, w, x0, y0, g->pw, g->ph, o, &u, &v);
            pu[(size_t)py * g->nx + px] = u;
            pv[(size_t)py * g->nx + px] = v;
        }
}

/* Each pixel's flow: the patches covering it, each weighted by 1 / max(1,
 * |b(x + u_p) - a(x)|), the photometric error its own displacement gives
 * there. A gather per pixel, so the sums run in one order on any thread count. */
static void densify(const float *a, const float *b, int h, int w, const level_grid *g, const float *pu,
                    const float *pv, float *u, float *v, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float ax = a[(size_t)y * w + x];
            float su = 0, sv = 0, sw = 0;
            for (int py = g->y_first[y]; py <= g->y_last[y]; py++)
                for (int px = g->x_first[x]; px <= g->x_last[x]; px++) {
                    const float fu = pu[(size_t)py * g->nx + px], fv = pv[(size_t)py * g->nx + px];
                    const float sx = (float)x + fu, sy = (float)y + fv;
                    float bs;
                    if (sx >= 0 && sy >= 0 && sx < (float)(w - 1) && sy < (float)(h - 1)) {
                        const int xi = (int)sx, yi = (int)sy;
                        const float fx = sx - (float)xi, fy = sy - (float)yi;
                        const float *r0 = b + (size_t)yi * w + xi, *r1 = r0 + w;
                        const float top = r0[0] + fx * (r0[1] - r0[0]), bottom = r1[0] + fx * (r1[1] - r1[0]);
                        bs = top + fy * (bottom - top);
                    } else {
                        bs = sample_clamped(b, w, h, sx, sy);
                    }
                    const float d = fabsf(bs - ax);
                    const float wt = d > 1.0f ? 1.0f / d : 1.0f;
                    su += wt * fu, sv += wt * fv, sw += wt;
                }
            u[(size_t)y * w + x] = su / sw;
            v[(size_t)y * w + x] = sv / sw;
        }
}

/* Variational refinement's planes, (h, w) each: the data term linearised
 * about the flow (u0, v0) the patches gave, b(x + u) - a(x) ~ ix u + iy v + it,
 * and the smoothness term's weights. */
typedef struct var_planes {
    float *ix, *iy, *it, *psi;
} var_planes;

/* Charbonnier's robust weights 1 / sqrt(r^2 + eps^2): eps in levels for
 * the data term, in pixels per pixel for the flow's gradient. */
#define VAR_EPS_DATA 1.0f
#define VAR_EPS_SMOOTH 0.05f

/* One colour of a red-black Gauss-Seidel sweep with over-relaxation: each
 * pixel's 2x2 system from its data term (its weight from the current flow)
 * and its four neighbours' current flow. Pixels of one colour depend only
 * on the other colour's, so any split into threads gives the same bits. */
static void var_sweep(const var_planes *p, float *u, float *v, int h, int w, float alpha, int colour, int threads) {
    const float omega = 1.6f, half = 0.5f * alpha;
    const float *ixp = p->ix, *iyp = p->iy, *itp = p->it, *psip = p->psi;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < h; y++)
        for (int x = (y + colour) & 1; x < w; x += 2) {
            const size_t i = (size_t)y * w + x;
            const float up = u[i], vp = v[i], psi = psip[i];
            float sw = 0, su = 0, sv = 0;
#define VAR_LINK(j)                                                                                                   \
    do {                                                                                                              \
        const float lw = half * (psi + psip[j]);                                                                      \
        sw += lw, su += lw * (u[j] - up), sv += lw * (v[j] - vp);                                                     \
    } while (0)
            if (x > 0) VAR_LINK(i - 1);
            if (x < w - 1) VAR_LINK(i + 1);
            if (y > 0) VAR_LINK(i - (size_t)w);
            if (y < h - 1) VAR_LINK(i + (size_t)w);
#undef VAR_LINK
            const float ix = ixp[i], iy = iyp[i];
            const float r = itp[i] + ix * up + iy * vp;
            const float wd = 1.0f / sqrtf(r * r + VAR_EPS_DATA * VAR_EPS_DATA);
            const float a11 = wd * ix * ix + sw + 1e-6f, a12 = wd * ix * iy, a22 = wd * iy * iy + sw + 1e-6f;
            /* The system is for the change of (u, v) at this pixel. */
            const float b1 = su - wd * ix * r, b2 = sv - wd * iy * r;
            const float inv = omega / (a11 * a22 - a12 * a12);
            u[i] = up + (a22 * b1 - a12 * b2) * inv;
            v[i] = vp + (a11 * b2 - a12 * b1) * inv;
        }
}

/* Variational refinement of the flow (u, v) at one level, after Brox et
 * al. (ECCV 2004) as DIS uses it: a robust brightness-constancy term,
 * linearised about the patches' flow, and a robust smoothness term,
 * minimised by a few sweeps. It fills flat areas, where the patches had
 * nothing to go on, from their textured surroundings, and evens out the
 * patches' seams. (Brox's gradient-constancy term measured no better on
 * our pairs: the patches' mean removal already copes with brightness.) */
static void variational_refine(const float *a, const float *b, const float *ax, const float *ay, int h, int w,
                               const flow_dis_options *o, const var_planes *p, float *u, float *v, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            p->it[i] = sample_clamped(b, w, h, (float)x + u[i], (float)y + v[i]);
        }
    /* b warped sits in it; its gradients averaged with a's are the
     * linearisation's, and it becomes the constant term in u, v. */
    gradients(p->it, h, w, p->ix, p->iy, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < (size_t)h * w; i++) {
        const float ix = 0.5f * (ax[i] + p->ix[i]), iy = 0.5f * (ay[i] + p->iy[i]);
        p->ix[i] = ix, p->iy[i] = iy;
        p->it[i] = p->it[i] - a[i] - ix * u[i] - iy * v[i];
    }
    for (int it = 0; it < o->var_iterations; it++) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = (size_t)y * w + x;
                const size_t e = x < w - 1 ? i + 1 : i, s = y < h - 1 ? i + (size_t)w : i;
                const float ux = u[e] - u[i], uy = u[s] - u[i], vx = v[e] - v[i], vy = v[s] - v[i];
                p->psi[i] = 1.0f / sqrtf(ux * ux + uy * uy + vx * vx + vy * vy + VAR_EPS_SMOOTH * VAR_EPS_SMOOTH);
            }
        var_sweep(p, u, v, h, w, o->var_alpha, 0, threads);
        var_sweep(p, u, v, h, w, o->var_alpha, 1, threads);
    }
}

/* The flow at (fh, fw) from one 2^shift times coarser (ch, cw), scaled up. */
static void upsample_flow(const float *cu, const float *cv, int ch, int cw, int shift, float *u, float *v, int fh,
                          int fw, int threads) {
    const float s = (float)(1 << shift), inv = 1.0f / s;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++) {
            u[(size_t)y * fw + x] = s * sample_clamped(cu, cw, ch, (float)x * inv, (float)y * inv);
            v[(size_t)y * fw + x] = s * sample_clamped(cv, cw, ch, (float)x * inv, (float)y * inv);
        }
}

static int options_ok(const flow_dis_options *o) {
    return o->patch_px >= 4 && o->patch_px <= FLOW_DIS_MAX_PATCH_PX && o->stride_px >= 1 &&
           o->stride_px <= o->patch_px && o->iterations >= 1 && o->finest_level >= 0 &&
           o->finest_level < MAX_LEVELS && o->min_side_px >= 1 && o->var_iterations >= 0 &&
           o->prior >= 0 && o->var_alpha > 0;
}

dd_status video_flow_dis_with(const float *a, const float *b, int h, int w, int threads, const flow_dis_options *o,
                              float *u, float *v) {
    if (!a || !b || !u || !v || !o) return util_fail(DD_ERR_INVALID_ARG, "flow: NULL plane");
    if (h < 1 || w < 1) return util_fail(DD_ERR_INVALID_ARG, "flow: size %dx%d", w, h);
    if (!options_ok(o)) return util_fail(DD_ERR_INVALID_ARG, "flow: DIS settings out of range");
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;

    /* Levels: halved while the smaller side stays at least min_side_px. */
    int lw[MAX_LEVELS], lh[MAX_LEVELS], levels = 1;
    lw[0] = w, lh[0] = h;
    while (levels < MAX_LEVELS && (lw[levels - 1] + 1) / 2 >= o->min_side_px &&
           (lh[levels - 1] + 1) / 2 >= o->min_side_px) {
        lw[levels] = (lw[levels - 1] + 1) / 2, lh[levels] = (lh[levels - 1] + 1) / 2;
        levels++;
    }
    const int finest = o->finest_level < levels ? o->finest_level : levels - 1;

    /* Sizes first: the pyramids past level 0, the blur's rows, then planes
     * of the finest level's size (gradients, two flows) and its grid. */
    size_t plane, pyr = 0, tmp, grid, ints, total = 0;
    const size_t fplane = (size_t)lw[finest] * (size_t)lh[finest];
    if (!util_mul((size_t)w, (size_t)h, &plane)) return util_fail(DD_ERR_NOMEM, "flow: %dx%d too large", w, h);
    for (int l = 1; l < levels; l++) pyr += util_align64((size_t)lw[l] * (size_t)lh[l] * sizeof(float));
    tmp = (size_t)h * (size_t)lw[levels > 1 ? 1 : 0] * sizeof(float);
    const int pw = o->patch_px < lw[finest] ? o->patch_px : lw[finest];
    const int ph = o->patch_px < lh[finest] ? o->patch_px : lh[finest];
    const size_t nx = (size_t)(lw[finest] - pw + o->stride_px - 1) / (size_t)o->stride_px + 1;
    const size_t ny = (size_t)(lh[finest] - ph + o->stride_px - 1) / (size_t)o->stride_px + 1;
    grid = nx * ny * sizeof(float);
    ints = (2 * (size_t)lw[finest] + 2 * (size_t)lh[finest] + nx + ny) * sizeof(int);
    const size_t parts[] = {2 * pyr, tmp, (6 + 4 * (o->var_iterations > 0)) * util_align64(fplane * sizeof(float)), 2 * util_align64(grid), ints};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (!util_add(total, parts[i], &total) || total > ((size_t)1 << 40))
            return util_fail(DD_ERR_NOMEM, "flow: %dx%d too large", w, h);
    util_arena arena;
    dd_status st = util_arena_init(&arena, total + 64 * 8);
    if (st) return st;

    const float *pa[MAX_LEVELS], *pb[MAX_LEVELS];
    pa[0] = a, pb[0] = b;
    float *blur = util_arena_take(&arena, tmp);
    for (int l = 1; l < levels; l++) {
        const size_t bytes = (size_t)lw[l] * (size_t)lh[l] * sizeof(float);
        float *la = util_arena_take(&arena, bytes), *lb = util_arena_take(&arena, bytes);
        pyramid_down(pa[l - 1], lh[l - 1], lw[l - 1], la, lh[l], lw[l], blur, threads);
        pyramid_down(pb[l - 1], lh[l - 1], lw[l - 1], lb, lh[l], lw[l], blur, threads);
        pa[l] = la, pb[l] = lb;
    }
    float *ax = util_arena_take(&arena, fplane * sizeof(float));
    float *ay = util_arena_take(&arena, fplane * sizeof(float));
    float *fu[2], *fv[2];
    for (int i = 0; i < 2; i++) {
        fu[i] = util_arena_take(&arena, fplane * sizeof(float));
        fv[i] = util_arena_take(&arena, fplane * sizeof(float));
    }
    float *pu = util_arena_take(&arena, grid), *pv = util_arena_take(&arena, grid);
    int *ibuf = util_arena_take(&arena, ints);
    var_planes vp = {0};
    if (o->var_iterations > 0) {
        float **planes[] = {&vp.ix, &vp.iy, &vp.it, &vp.psi};
        for (size_t i = 0; i < sizeof planes / sizeof planes[0]; i++)
            *planes[i] = util_arena_take(&arena, fplane * sizeof(float));
    }

    for (int l = levels - 1; l >= finest; l--) {
        const int W = lw[l], H = lh[l];
        level_grid g;
        g.pw = o->patch_px < W ? o->patch_px : W;
        g.ph = o->patch_px < H ? o->patch_px : H;
        g.ox = ibuf;
        g.nx = patch_origins(W, g.pw, o->stride_px, g.ox);
        g.oy = g.ox + g.nx;
        g.ny = patch_origins(H, g.ph, o->stride_px, g.oy);
        g.x_first = g.oy + g.ny, g.x_last = g.x_first + W;
        g.y_first = g.x_last + W, g.y_last = g.y_first + H;
        patch_cover(W, g.pw, g.ox, g.nx, g.x_first, g.x_last);
        patch_cover(H, g.ph, g.oy, g.ny, g.y_first, g.y_last);

        gradients(pa[l], H, W, ax, ay, threads);
        const int cur = l & 1, prev = !cur;
        const int coarsest = l == levels - 1;
        search_level(pa[l], pb[l], ax, ay, H, W, &g, coarsest ? NULL : fu[prev], coarsest ? NULL : fv[prev],
                     lh[l + (l + 1 < levels)], lw[l + (l + 1 < levels)], o, pu, pv, threads);
        float *du = l == 0 ? u : fu[cur], *dv = l == 0 ? v : fv[cur];
        densify(pa[l], pb[l], H, W, &g, pu, pv, du, dv, threads);
        if (o->var_iterations > 0)
            variational_refine(pa[l], pb[l], ax, ay, H, W, o, &vp, du, dv, threads);
    }
    if (finest > 0) upsample_flow(fu[finest & 1], fv[finest & 1], lh[finest], lw[finest], finest, u, v, h, w, threads);
    util_arena_free(&arena);
    return DD_OK;
}

dd_status video_flow_dis(const float *a, const float *b, int h, int w, int threads, float *u, float *v) {
    flow_dis_options o;
    video_flow_dis_defaults(&o);
    return video_flow_dis_with(a, b, h, w, threads, &o, u, v);
}
