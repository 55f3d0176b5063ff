/* Clips (dd_clip) with the built-in model on a pan over a real photo: the
 * first frame is dd_dream's bytes; blend 0 makes every frame dd_dream's
 * bytes; carried detail holds the patterns on the moving picture (the
 * steadiness measured against dreaming each frame alone); the same bytes
 * for 1 and 2 threads; a cancelled frame leaves the frame and the clip as
 * they were; wrong sizes and values refused. And dd_image_zoom: identity,
 * exact quarter turns, the zoom's geometry, refusals.
 *
 * usage: test_clip SAMPLES_DIR */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"
#include "image/image.h"
#include "support.h"

enum { W = 128, H = 96, FRAMES = 5, SHIFT = 3 };

static dd_model *model;
static dd_image *photo;

static void die(const char *what) {
    fprintf(stderr, "test_clip: %s: %s\n", what, dd_last_error());
    exit(1);
}

/* Frame t of a pan: the W x H window at (40 + SHIFT t, 150) of the photo,
 * so the picture moves SHIFT pixels left each frame. */
static dd_image *pan_frame(int t) {
    dd_image *im = NULL;
    if (img_new(W, H, 3, 8, 0, &im)) die("img_new");
    for (int y = 0; y < H; y++)
        memcpy(im->samples + (size_t)y * W * 3,
               photo->samples + ((size_t)(150 + y) * photo->width + 40 + SHIFT * t) * photo->channels, (size_t)W * 3);
    return im;
}

static dd_params clip_params(int threads) {
    dd_params p = dd_params_default();
    p.layers = "mixed3";
    p.octaves = 2, p.steps = 6, p.threads = threads;
    return p;
}

/* Dreams the pan's frames through one clip into out[] (NULL: dd_dream of
 * each frame alone). */
static void dream_pan(const dd_params *p, int use_clip, dd_image *out[FRAMES]) {
    dd_clip *clip = NULL;
    if (use_clip && dd_clip_new(model, p, W, H, &clip)) die("dd_clip_new");
    for (int t = 0; t < FRAMES; t++) {
        out[t] = pan_frame(t);
        if (use_clip ? dd_clip_dream(clip, out[t], NULL, NULL) : dd_dream(model, p, out[t], NULL, NULL))
            die("dream");
    }
    dd_clip_free(clip);
}

static void free_frames(dd_image *f[FRAMES]) {
    for (int t = 0; t < FRAMES; t++) dd_image_free(f[t]);
}

static int same_bytes(const dd_image *a, const dd_image *b) {
    return a->width == b->width && a->height == b->height &&
           !memcmp(a->samples, b->samples, img_row_bytes(a) * (size_t)a->height);
}

/* Steadiness: the mean |out_t - out_{t-1} moved with the picture| over the
 * pixels both frames show, in levels, over all frame pairs. The pan is an
 * exact integer shift, so the input's own is 0. */
static double unsteadiness(dd_image *f[FRAMES]) {
    double sum = 0;
    size_t count = 0;
    for (int t = 1; t < FRAMES; t++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x + SHIFT < W; x++)
                for (int c = 0; c < 3; c++) {
                    const int now = f[t]->samples[((size_t)y * W + x) * 3 + c];
                    const int before = f[t - 1]->samples[((size_t)y * W + x + SHIFT) * 3 + c];
                    sum += abs(now - before), count++;
                }
    return sum / (double)count;
}

/* The mean |dream - photo| of the last frame: how much was dreamed. */
static double dreamed_amount(dd_image *f[FRAMES]) {
    dd_image *ph = pan_frame(FRAMES - 1);
    double sum = 0;
    const size_t n = (size_t)W * H * 3;
    for (size_t i = 0; i < n; i++) sum += abs((int)f[FRAMES - 1]->samples[i] - (int)ph->samples[i]);
    dd_image_free(ph);
    return sum / (double)n;
}

static void test_bytes_as_dd_dream(void) {
    dd_params p = clip_params(0);
    dd_image *clip[FRAMES], *alone[FRAMES];
    dream_pan(&p, 1, clip);
    dream_pan(&p, 0, alone);
    CHECK(same_bytes(clip[0], alone[0]), "the clip's first frame is not dd_dream's bytes");
    CHECK(!same_bytes(clip[2], alone[2]), "the carried detail changed nothing in frame 3");
    free_frames(clip);
    p.blend = 0, p.frame_steps = p.steps;
    dream_pan(&p, 1, clip);
    for (int t = 0; t < FRAMES; t++)
        CHECK(same_bytes(clip[t], alone[t]), "blend 0, all steps: frame %d is not dd_dream's bytes", t);
    free_frames(clip), free_frames(alone);
}

static void test_steadier(void) {
    dd_params p = clip_params(0);
    dd_image *carried[FRAMES], *alone[FRAMES];
    dream_pan(&p, 1, carried);
    dream_pan(&p, 0, alone);
    const double u_carried = unsteadiness(carried), u_alone = unsteadiness(alone);
    const double d_carried = dreamed_amount(carried), d_alone = dreamed_amount(alone);
    printf("pan %dx%d, %d px a frame: mean |out_t - out_t-1 moved| %.3f levels with blend %.2g, %.3f dreamed alone "
           "(ratio %.3f); mean |dream - photo| %.2f and %.2f\n",
           W, H, SHIFT, u_carried, p.blend, u_alone, u_carried / u_alone, d_carried, d_alone);
    /* A steadier clip that only dreamed less would prove nothing. */
    CHECK(d_carried > 0.8 * d_alone, "carried detail dreamed %.2f levels against %.2f alone", d_carried, d_alone);
    /* Measured 0.558 (0.555 with the exact flow of the pan in place of the
     * one computed); 0.7 leaves room for other kernels' last bits. */
    CHECK(u_carried < 0.7 * u_alone, "carried detail is not clearly steadier: %.3f against %.3f levels", u_carried,
          u_alone);
    free_frames(carried), free_frames(alone);
}

static void test_threads(void) {
    dd_params p1 = clip_params(1), p2 = clip_params(2);
    dd_image *a[FRAMES], *b[FRAMES];
    dream_pan(&p1, 1, a);
    dream_pan(&p2, 1, b);
    for (int t = 0; t < FRAMES; t++) CHECK(same_bytes(a[t], b[t]), "frame %d: 1 and 2 threads differ", t);
    free_frames(a), free_frames(b);
}

static int stop_now(void *user, int octave, int octaves, int step, int steps) {
    (void)user, (void)octave, (void)octaves, (void)step, (void)steps;
    return 1;
}

static void test_cancel_and_refusals(void) {
    dd_params p = clip_params(0);
    dd_image *whole[FRAMES];
    dream_pan(&p, 1, whole);
    dd_clip *clip = NULL;
    if (dd_clip_new(model, &p, W, H, &clip)) die("dd_clip_new");
    dd_image *f0 = pan_frame(0), *f1 = pan_frame(1), *f1_before = pan_frame(1);
    if (dd_clip_dream(clip, f0, NULL, NULL)) die("frame 1");
    CHECK(dd_clip_dream(clip, f1, stop_now, NULL) == DD_ERR_CANCELLED, "a stop did not cancel the frame");
    CHECK(same_bytes(f1, f1_before), "a cancelled frame was changed");
    CHECK(dd_clip_dream(clip, f1, NULL, NULL) == DD_OK, "the frame after a cancel: %s", dd_last_error());
    CHECK(same_bytes(f1, whole[1]), "after a cancel the clip went on from another state");
    dd_image *small = NULL;
    if (img_new(W - 1, H, 3, 8, 0, &small)) die("img_new");
    CHECK(dd_clip_dream(clip, small, NULL, NULL) == DD_ERR_INVALID_ARG && strstr(dd_last_error(), "127x96"),
          "a frame of another size: %s", dd_last_error());
    dd_clip *none = NULL;
    dd_params bad = p;
    bad.blend = 1.5f;
    CHECK(dd_clip_new(model, &bad, W, H, &none) == DD_ERR_INVALID_ARG && !none && strstr(dd_last_error(), "blend"),
          "blend 1.5: %s", dd_last_error());
    bad = p, bad.frame_steps = -1;
    CHECK(dd_clip_new(model, &bad, W, H, &none) == DD_ERR_INVALID_ARG, "frame_steps -1 accepted");
    CHECK(dd_clip_new(model, &p, 40, 30, &none) == DD_ERR_TOO_SMALL && !none, "a 40x30 clip: %s", dd_last_error());
    CHECK(dd_clip_new(model, &p, 0, 30, &none) == DD_ERR_INVALID_ARG, "a 0x30 clip accepted");
    dd_clip_free(NULL);
    dd_image_free(small), dd_image_free(f0), dd_image_free(f1), dd_image_free(f1_before);
    dd_clip_free(clip);
    free_frames(whole);
}

/* ---- dd_image_zoom ------------------------------------------------------- */

static dd_image *pattern(int w, int h, int channels, int depth) {
    dd_image *im = NULL;
    if (img_new(w, h, channels, depth, 0, &im)) die("img_new");
    const unsigned full = depth == 16 ? 65535 : 255;
    for (size_t i = 0; i < (size_t)w * h * channels; i++) img_set(im, i, (unsigned)((i * 2654435761u >> 7) % (full + 1)));
    return im;
}

static void test_zoom(void) {
    for (int depth = 8; depth <= 16; depth += 8) {
        dd_image *a = pattern(33, 21, 3, depth), *b = pattern(33, 21, 3, depth);
        CHECK(dd_image_zoom(b, 1.0f, 0.0f) == DD_OK && same_bytes(a, b), "%d bits: zoom 1 turn 0 changed the image", depth);
        CHECK(dd_image_zoom(b, 1.0f, 360.0f) == DD_OK && same_bytes(a, b), "%d bits: a full turn changed it", depth);
        dd_image_free(a), dd_image_free(b);
    }
    /* A square of odd side turns about its centre pixel: a quarter turn
     * counter-clockwise puts source (x, y) at (y, n-1-x). */
    enum { N = 31 };
    dd_image *src = pattern(N, N, 1, 8), *t = pattern(N, N, 1, 8);
    CHECK(dd_image_zoom(t, 1.0f, 90.0f) == DD_OK, "quarter turn: %s", dd_last_error());
    int wrong = 0;
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) wrong += t->samples[(size_t)(N - 1 - x) * N + y] != src->samples[(size_t)y * N + x];
    CHECK(wrong == 0, "a quarter turn misplaced %d of %d pixels", wrong, N * N);
    dd_image_free(t);
    /* Zoom 2: output (cx + d) shows source (cx + d / 2); even d lands on a pixel. */
    dd_image *z = pattern(N, N, 1, 8);
    CHECK(dd_image_zoom(z, 2.0f, 0.0f) == DD_OK, "zoom 2: %s", dd_last_error());
    const int c = N / 2;
    wrong = 0;
    for (int dy = -14; dy <= 14; dy += 2)
        for (int dx = -14; dx <= 14; dx += 2)
            wrong += z->samples[(size_t)(c + dy) * N + c + dx] != src->samples[(size_t)(c + dy / 2) * N + c + dx / 2];
    CHECK(wrong == 0, "zoom 2 misplaced %d pixels", wrong);
    CHECK(dd_image_zoom(z, 0.05f, 0) == DD_ERR_INVALID_ARG && dd_image_zoom(z, 11.0f, 0) == DD_ERR_INVALID_ARG &&
              dd_image_zoom(z, NAN, 0) == DD_ERR_INVALID_ARG && dd_image_zoom(z, 1, 400) == DD_ERR_INVALID_ARG &&
              dd_image_zoom(NULL, 1, 0) == DD_ERR_INVALID_ARG,
          "bad zooms accepted");
    dd_image_free(z), dd_image_free(src);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_clip SAMPLES_DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/coffee.png", argv[1]);
    if (!(photo = load_image_file(path))) return 1;
    if (photo->channels != 3 || photo->depth != 8 || photo->width < 40 + SHIFT * FRAMES + W || photo->height < 150 + H) {
        fprintf(stderr, "test_clip: %s is not the 8-bit RGB photo expected\n", path);
        return 1;
    }
    if (dd_model_load_default(&model)) die("the built-in model");
    test_zoom();
    test_bytes_as_dd_dream();
    test_cancel_and_refusals();
    test_threads();
    test_steadier();
    dd_model_free(model);
    dd_image_free(photo);
    return check_done("test_clip");
}
