/* What the image fuzz targets share: decode with a pixel limit, check what
 * came out, encode it to PNG and PAM, and check that both decode again to the
 * same samples (compared as PAM bytes: the public API has no pixel access). */
#ifndef DD_FUZZ_IMAGE_H
#define DD_FUZZ_IMAGE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepdream.h"
#include "fuzz_check.h"

/* 4 megapixels: the fuzzer spends its time in the parsers, not in malloc. */
#define FUZZ_MAX_PIXELS ((uint64_t)4 << 20)


/* Encoding a decoded image may only fail for lack of memory. */
static unsigned char *fuzz_encode(const dd_image *im, dd_format format, size_t *size) {
    unsigned char *data = NULL;
    const dd_status st = dd_image_save_memory(im, format, 90, "fuzz\ncomment", &data, size);
    FUZZ_CHECK(st == DD_OK || st == DD_ERR_NOMEM, "encoding to format %d: %s: %s", (int)format,
               dd_strerror(st), dd_last_error());
    return data;
}

/* Decodes bytes we wrote ourselves: must succeed. */
static dd_image *fuzz_decode_own(const unsigned char *data, size_t size, const char *what) {
    dd_image *im = NULL;
    const dd_status st = dd_image_load_memory(data, size, 0, &im);
    FUZZ_CHECK(st == DD_OK || st == DD_ERR_NOMEM, "decoding our own %s: %s: %s", what, dd_strerror(st),
               dd_last_error());
    return im;
}

static void fuzz_same_shape(const dd_image *a, const dd_image *b, const char *what) {
    FUZZ_CHECK(dd_image_width(a) == dd_image_width(b) && dd_image_height(a) == dd_image_height(b) &&
                   dd_image_channels(a) == dd_image_channels(b) && dd_image_depth(a) == dd_image_depth(b),
               "%s: %dx%dx%d@%d came back as %dx%dx%d@%d", what, dd_image_width(a), dd_image_height(a),
               dd_image_channels(a), dd_image_depth(a), dd_image_width(b), dd_image_height(b),
               dd_image_channels(b), dd_image_depth(b));
}

/* a's PAM encoding against b's. */
static void fuzz_same_pam(const unsigned char *pam, size_t pam_size, const dd_image *b, const char *what) {
    size_t size = 0;
    unsigned char *again = fuzz_encode(b, DD_FORMAT_PAM, &size);
    if (again) FUZZ_CHECK(size == pam_size && !memcmp(pam, again, size), "%s: samples differ", what);
    free(again);
}

static void fuzz_image(const uint8_t *data, size_t size, dd_format want) {
    dd_image *im = NULL;
    const dd_status st = dd_image_load_memory(data, size, FUZZ_MAX_PIXELS, &im);
    if (st != DD_OK) {
        FUZZ_CHECK(im == NULL, "a failed decode returned an image");
        FUZZ_CHECK(st == DD_ERR_CORRUPT || st == DD_ERR_LIMIT || st == DD_ERR_NOMEM, "status %s: %s",
                   dd_strerror(st), dd_last_error());
        FUZZ_CHECK(dd_last_error()[0] != '\0', "status %s without a message", dd_strerror(st));
        return;
    }
    const int w = dd_image_width(im), h = dd_image_height(im);
    const int channels = dd_image_channels(im), depth = dd_image_depth(im);
    const dd_format format = dd_image_format(im);
    FUZZ_CHECK(w >= 1 && h >= 1 && (uint64_t)w * (uint64_t)h <= FUZZ_MAX_PIXELS, "%dx%d pixels", w, h);
    FUZZ_CHECK(channels >= 1 && channels <= 4 && (depth == 8 || depth == 16), "%d channels of %d bits",
               channels, depth);
    FUZZ_CHECK(format == want || (want == DD_FORMAT_PNM && format == DD_FORMAT_PAM), "format %d, not %d",
               (int)format, (int)want);

    size_t pam_size = 0, png_size = 0;
    unsigned char *pam = fuzz_encode(im, DD_FORMAT_PAM, &pam_size);
    unsigned char *png = fuzz_encode(im, DD_FORMAT_PNG, &png_size);
    /* PAM and PNG are lossless for every channel count and depth we decode
     * to: each must give back the very samples. */
    if (pam) {
        dd_image *back = fuzz_decode_own(pam, pam_size, "PAM");
        if (back) {
            fuzz_same_shape(im, back, "PAM round trip");
            fuzz_same_pam(pam, pam_size, back, "PAM round trip");
        }
        dd_image_free(back);
    }
    if (png && pam) {
        dd_image *back = fuzz_decode_own(png, png_size, "PNG");
        if (back) {
            fuzz_same_shape(im, back, "PNG round trip");
            fuzz_same_pam(pam, pam_size, back, "PNG round trip");
        }
        dd_image_free(back);
    }
    free(pam);
    free(png);
    dd_image_free(im);
}

#endif
