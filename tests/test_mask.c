/* Masks and --preserve-colors in dd_dream, on small images with the
 * built-in model: black keeps the input's exact samples (8 and 16 bits,
 * grey, RGB, with alpha, through max_size), white is no mask to the byte,
 * grey dreams less, a mask of another shape is stretched, the image's own
 * alpha as mask, the chroma kept, any thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 17
#include "check.h"
#include "deepdream.h"
#include "image/image.h"
#include "support.h"

enum { SIDE = 96 };

static const dd_model *model;
static dd_term terms[4];
static int n_terms;

static void die(const char *what) {
    fprintf(stderr, "test_mask: %s: %s\n", what, dd_last_error());
    exit(1);
}

static dd_image *new_image(int w, int h, int channels, int depth) {
    dd_image *im = NULL;
    if (img_new(w, h, channels, depth, 0, &im)) die("img_new");
    return im;
}

/* A photo-like picture: smooth colour waves and some noise; alpha, when
 * there is one, varies too (it must come out untouched). */
static dd_image *make_photo(int channels, int depth) {
    dd_image *im = new_image(SIDE, SIDE, channels, depth);
    const unsigned full = depth == 16 ? 65535 : 255;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < channels; c++) {
                const size_t i = ((size_t)y * SIDE + (size_t)x) * (size_t)channels + (size_t)c;
                const int is_alpha = c == channels - 1 && (channels == 2 || channels == 4);
                double v = is_alpha ? 0.5 + 0.4 * (double)x / SIDE
                                    : 0.5 + 0.3 * sin(0.11 * x * (c + 1) + 0.07 * y) + 0.1 * rng_uniform(-1, 1);
                img_set(im, i, (unsigned)lround(fmin(fmax(v, 0), 1) * full));
            }
    return im;
}

static dd_image *copy_image(const dd_image *src) {
    dd_image *im = new_image(src->width, src->height, src->channels, src->depth);
    memcpy(im->samples, src->samples, img_row_bytes(src) * (size_t)src->height);
    return im;
}

/* A mask of w x h whose every pixel is level (0..1) where x < split_x and
 * right (0..1) elsewhere, in every colour channel; alpha (if any) 0, which
 * a mask ignores. */
static dd_image *make_mask(int w, int h, int channels, int depth, int split_x, double left, double right) {
    dd_image *im = new_image(w, h, channels, depth);
    const unsigned full = depth == 16 ? 65535 : 255;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                const int is_alpha = c == channels - 1 && (channels == 2 || channels == 4);
                const double v = is_alpha ? 0 : x < split_x ? left : right;
                img_set(im, ((size_t)y * w + (size_t)x) * (size_t)channels + (size_t)c, (unsigned)lround(v * full));
            }
    return im;
}

static dd_params base_params(void) {
    dd_params p = dd_params_default();
    p.terms = terms, p.n_terms = n_terms;
    p.octaves = 2, p.steps = 2, p.step_size = 0.02f, p.seed = 3, p.threads = 2;
    return p;
}

/* The dream of a copy of photo under p; the test ends if it fails. */
static dd_image *dreamed(const dd_image *photo, const dd_params *p) {
    dd_image *im = copy_image(photo);
    if (dd_dream(model, p, im, NULL, NULL)) die("dd_dream");
    return im;
}

/* Samples of pixels with x in [x0, x1) that differ between a and b. */
static size_t differing(const dd_image *a, const dd_image *b, int x0, int x1) {
    size_t n = 0;
    for (int y = 0; y < a->height; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < a->channels; c++) {
                const size_t i = ((size_t)y * a->width + (size_t)x) * (size_t)a->channels + (size_t)c;
                n += img_get(a, i) != img_get(b, i);
            }
    return n;
}

/* Mean |a - b| of the colour samples of pixels with x in [x0, x1), in
 * 8-bit levels. */
static double mean_change(const dd_image *a, const dd_image *b, int x0, int x1) {
    const int colour = a->channels >= 3 ? 3 : 1;
    const double level = a->depth == 16 ? 257.0 : 1.0;
    double sum = 0;
    for (int y = 0; y < a->height; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < colour; c++) {
                const size_t i = ((size_t)y * a->width + (size_t)x) * (size_t)a->channels + (size_t)c;
                sum += fabs((double)img_get(a, i) - (double)img_get(b, i)) / level;
            }
    return sum / ((double)a->height * (x1 - x0) * colour);
}

/* Left half black, right half white: the left half keeps its exact samples
 * (alpha included), the right half dreams. */
static void test_black_keeps_input(int channels, int depth, int max_size) {
    char what[96];
    snprintf(what, sizeof what, "%d channels, %d bits, max size %d", channels, depth, max_size);
    dd_image *photo = make_photo(channels, depth), *mask = make_mask(SIDE, SIDE, 1, 8, SIDE / 2, 0, 1);
    dd_params p = base_params();
    p.mask = mask, p.max_size = max_size;
    dd_image *out = dreamed(photo, &p);
    const size_t bad = differing(photo, out, 0, SIDE / 2);
    CHECK(bad == 0, "%s: %zu samples under the black half changed", what, bad);
    const double right = mean_change(photo, out, SIDE / 2 + 8, SIDE);
    CHECK(right > 1.0, "%s: the white half changed by %.3f levels on average, want > 1", what, right);
    dd_image_free(photo), dd_image_free(mask), dd_image_free(out);
}

/* White gives the bytes of no mask; inverted, it gives the input back. A
 * 16-bit RGB 120x109: resampled to 96x96 its float weights add up to
 * 0.99999994 in some rows and columns, which must still count as white
 * (on a 16-bit photo, where such last bits can show). */
static void test_white(void) {
    dd_image *photo = make_photo(3, 16), *white = make_mask(120, 109, 3, 16, 0, 0, 1);
    dd_params p = base_params();
    size_t bad = 0, dreamed_samples = 0;
    for (p.seed = 1; p.seed <= 4; p.seed++) { /* more chances for a last bit to show */
        p.mask = NULL;
        dd_image *plain = dreamed(photo, &p);
        p.mask = white;
        dd_image *masked = dreamed(photo, &p);
        bad += differing(plain, masked, 0, SIDE);
        dreamed_samples += differing(photo, plain, 0, SIDE);
        dd_image_free(plain), dd_image_free(masked);
    }
    CHECK(bad == 0, "white mask: %zu samples differ from no mask (4 seeds)", bad);
    CHECK(dreamed_samples > 0, "the dream changed nothing");
    p.invert_mask = 1;
    dd_image *inverted = dreamed(photo, &p);
    bad = differing(photo, inverted, 0, SIDE);
    CHECK(bad == 0, "inverted white mask: %zu samples differ from the input", bad);
    dd_image_free(photo), dd_image_free(white), dd_image_free(inverted);
}

/* Mid grey (128/255) scales each step by about one half: the change is
 * well below white's, and well above nothing. */
static void test_grey(void) {
    dd_image *photo = make_photo(3, 8), *grey = make_mask(SIDE, SIDE, 1, 8, 0, 0, 128.0 / 255);
    dd_params p = base_params();
    dd_image *white_out = dreamed(photo, &p);
    p.mask = grey;
    dd_image *grey_out = dreamed(photo, &p);
    const double white_change = mean_change(photo, white_out, 0, SIDE), grey_change = mean_change(photo, grey_out, 0, SIDE);
    const double ratio = grey_change / white_change;
    fprintf(stderr, "test_mask: mean |change| white %.3f, grey %.3f levels: ratio %.3f\n", white_change, grey_change,
            ratio);
    CHECK(ratio > 0.3 && ratio < 0.7, "grey mask: change %.3f of white's, want 0.3..0.7", ratio);
    dd_image_free(photo), dd_image_free(grey), dd_image_free(white_out), dd_image_free(grey_out);
}

/* A 40x20 RGBA mask, black for x < 20, yellow (luma 0.886) beyond, alpha 0:
 * stretched to 96x96, its black reaches x = 46 (bilinear taps of black
 * only); the alpha is ignored, or nothing would dream. */
static void test_other_shape(void) {
    dd_image *photo = make_photo(3, 8), *mask = make_mask(40, 20, 4, 8, 20, 0, 1);
    for (size_t i = 0; i < (size_t)40 * 20; i++)
        if (img_get(mask, i * 4)) img_set(mask, i * 4 + 2, 0); /* blue off: yellow */
    dd_params p = base_params();
    p.mask = mask;
    dd_image *out = dreamed(photo, &p);
    const size_t bad = differing(photo, out, 0, 44);
    CHECK(bad == 0, "40x20 mask: %zu samples under its stretched black changed", bad);
    const double right = mean_change(photo, out, 52, SIDE);
    CHECK(right > 1.0, "40x20 mask: the yellow part changed by %.3f levels, want > 1", right);
    dd_image_free(photo), dd_image_free(mask), dd_image_free(out);
}

/* The image's own alpha: transparent pixels keep their samples; no alpha,
 * or contradictory settings, are refused with the image untouched. */
static void test_alpha(void) {
    dd_image *photo = make_photo(4, 16);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) img_set(photo, ((size_t)y * SIDE + (size_t)x) * 4 + 3, x < SIDE / 2 ? 0 : 65535);
    dd_params p = base_params();
    p.mask_alpha = 1;
    dd_image *out = dreamed(photo, &p);
    CHECK(differing(photo, out, 0, SIDE / 2) == 0, "mask_alpha: transparent pixels changed");
    CHECK(mean_change(photo, out, SIDE / 2 + 8, SIDE) > 1.0, "mask_alpha: opaque pixels did not dream");
    dd_image *rgb = make_photo(3, 8), *copy = copy_image(rgb);
    dd_status st = dd_dream(model, &p, copy, NULL, NULL);
    CHECK(st == DD_ERR_INVALID_ARG, "mask_alpha on RGB: status %d, want DD_ERR_INVALID_ARG", st);
    CHECK(strstr(dd_last_error(), "no alpha"), "mask_alpha on RGB: message '%s'", dd_last_error());
    CHECK(differing(rgb, copy, 0, SIDE) == 0, "mask_alpha on RGB: the image changed");
    p.mask = photo;
    st = dd_dream(model, &p, copy, NULL, NULL);
    CHECK(st == DD_ERR_INVALID_ARG, "mask and mask_alpha: status %d, want DD_ERR_INVALID_ARG", st);
    p.mask = NULL, p.mask_alpha = 0, p.invert_mask = 1;
    st = dd_dream(model, &p, copy, NULL, NULL);
    CHECK(st == DD_ERR_INVALID_ARG, "invert_mask alone: status %d, want DD_ERR_INVALID_ARG", st);
    dd_image_free(photo), dd_image_free(out), dd_image_free(rgb), dd_image_free(copy);
}

/* BT.601 full-range luma and chroma of pixel i, in levels of its depth. */
static void ycbcr(const dd_image *im, size_t i, double *y, double *cb, double *cr) {
    const double r = img_get(im, i * 3), g = img_get(im, i * 3 + 1), b = img_get(im, i * 3 + 2);
    *y = 0.299 * r + 0.587 * g + 0.114 * b;
    *cb = -0.168736 * r - 0.331264 * g + 0.5 * b;
    *cr = 0.5 * r - 0.418688 * g - 0.081312 * b;
}

/* Largest |chroma change| and mean |luma change| (levels) from a to b. */
static void colour_change(const dd_image *a, const dd_image *b, double *chroma_max, double *luma_mean) {
    *chroma_max = 0, *luma_mean = 0;
    for (size_t i = 0; i < (size_t)SIDE * SIDE; i++) {
        double ya, cba, cra, yb, cbb, crb;
        ycbcr(a, i, &ya, &cba, &cra), ycbcr(b, i, &yb, &cbb, &crb);
        *chroma_max = fmax(*chroma_max, fmax(fabs(cba - cbb), fabs(cra - crb)));
        *luma_mean += fabs(ya - yb) / ((double)SIDE * SIDE);
    }
}

static void test_preserve_colors(int depth) {
    dd_image *photo = make_photo(3, depth);
    dd_params p = base_params();
    dd_image *plain = dreamed(photo, &p);
    p.preserve_colors = 1;
    dd_image *kept = dreamed(photo, &p);
    double chroma, luma, plain_chroma, plain_luma;
    colour_change(photo, kept, &chroma, &luma);
    colour_change(photo, plain, &plain_chroma, &plain_luma);
    const double level = depth == 16 ? 257.0 : 1.0;
    fprintf(stderr, "test_mask: %d-bit chroma change at most %.3f levels kept (%.1f not), luma %.2f levels on average\n",
            depth, chroma, plain_chroma, luma / level);
    /* Issue 17 asks for 1 level; the same integer change on R, G and B
     * keeps Cb and Cr exactly (their weights add up to 0). */
    CHECK(chroma < 1e-6, "%d-bit preserve_colors: chroma changed by %.3g levels, want 0", depth, chroma);
    CHECK(plain_chroma > 4 * level, "%d-bit: the plain dream changed the chroma by only %.3f levels", depth, plain_chroma);
    CHECK(luma > 1.0 * level, "%d-bit preserve_colors: luma changed by %.3f levels on average, want > 1", depth,
          luma / level);
    dd_image_free(photo), dd_image_free(plain), dd_image_free(kept);
}

/* Everything at once, grey mask of another shape, gives the same bytes
 * with one thread and two. */
static void test_threads(void) {
    dd_image *photo = make_photo(4, 8), *mask = make_mask(70, 33, 2, 16, 30, 0, 0.6);
    dd_params p = base_params();
    p.mask = mask, p.preserve_colors = 1, p.threads = 1;
    dd_image *one = dreamed(photo, &p);
    p.threads = 2;
    dd_image *two = dreamed(photo, &p);
    CHECK(differing(one, two, 0, SIDE) == 0, "threads 1 and 2 differ");
    dd_image_free(photo), dd_image_free(mask), dd_image_free(one), dd_image_free(two);
}

int main(void) {
    dd_model *m = NULL;
    if (dd_model_load_default(&m)) die("dd_model_load_default");
    model = m;
    /* One mid-depth layer: cheap, and it dreams visibly in two steps. */
    if (dd_terms_parse(model, "mixed3", terms, 4, &n_terms)) die("dd_terms_parse");
    test_black_keeps_input(3, 8, 0);
    test_black_keeps_input(4, 8, 0);
    test_black_keeps_input(3, 16, 0);
    test_black_keeps_input(4, 16, 0);
    test_black_keeps_input(1, 8, 0);
    test_black_keeps_input(2, 16, 0);
    test_black_keeps_input(3, 8, 64);
    test_white();
    test_grey();
    test_other_shape();
    test_alpha();
    test_preserve_colors(8);
    test_preserve_colors(16);
    test_threads();
    dd_model_free(m);
    return check_done("test_mask");
}
