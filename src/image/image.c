/* Images: allocation with limits, format detection by magic bytes, and the
 * dispatch to the codecs. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image.h"
#include "util/util.h"

dd_status img_check_size(long width, long height, uint64_t max_pixels) {
    if (width < 1 || height < 1)
        return util_fail(DD_ERR_CORRUPT, "image of %ldx%ld pixels", width, height);
    if (width > IMG_MAX_SIDE || height > IMG_MAX_SIDE)
        return util_fail(DD_ERR_LIMIT, "image of %ldx%ld pixels: a side is over %d", width, height, IMG_MAX_SIDE);
    if (max_pixels && (uint64_t)width * (uint64_t)height > max_pixels)
        return util_fail(DD_ERR_LIMIT, "image of %ldx%ld pixels is over the limit of %llu pixels", width, height,
                         (unsigned long long)max_pixels);
    return DD_OK;
}

dd_status img_new(int width, int height, int channels, int depth, uint64_t max_pixels,
                  dd_image **out) {
    *out = NULL;
    dd_status st = img_check_size(width, height, max_pixels);
    if (st) return st;
    dd_image *im = calloc(1, sizeof *im);
    if (!im) return util_fail(DD_ERR_NOMEM, "out of memory");
    im->width = width, im->height = height, im->channels = channels, im->depth = depth;
    im->samples = malloc(img_row_bytes(im) * (size_t)height);
    if (!im->samples) {
        free(im);
        return util_fail(DD_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
    }
    *out = im;
    return DD_OK;
}

size_t img_row_bytes(const dd_image *im) {
    return (size_t)im->width * (size_t)im->channels * (size_t)(im->depth / 8);
}

void img_buffer_put(img_buffer *b, const void *data, size_t n) {
    if (b->failed) return;
    if (n > b->cap - b->size) {
        size_t cap = b->cap ? b->cap : 65536;
        while (n > cap - b->size) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p, b->cap = cap;
    }
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

dd_status dd_image_load_memory(const void *data, size_t size, uint64_t max_pixels, dd_image **out) {
    const unsigned char *p = data;
    *out = NULL;
    if (!data || size == 0) return util_fail(DD_ERR_CORRUPT, "empty file");
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 8 && !memcmp(p, png_magic, 8)) return img_load_png(p, size, max_pixels, out);
    if (size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return img_load_jpeg(p, size, max_pixels, out);
    if (size >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6' || p[1] == '7'))
        return img_load_pnm(p, size, max_pixels, out);
    return util_fail(DD_ERR_CORRUPT, "not a PNG, JPEG, PNM or PAM image");
}

dd_status dd_image_save_memory(const dd_image *im, dd_format format, int quality, const char *comment,
                               unsigned char **data, size_t *size) {
    img_buffer b = {0};
    dd_status st;
    *data = NULL, *size = 0;
    switch (format) {
    case DD_FORMAT_PNG: st = img_save_png(im, comment, &b); break;
    case DD_FORMAT_JPEG: st = img_save_jpeg(im, quality, comment, &b); break;
    case DD_FORMAT_PNM: st = img_save_pnm(im, 0, comment, &b); break;
    case DD_FORMAT_PAM: st = img_save_pnm(im, 1, comment, &b); break;
    default: st = util_fail(DD_ERR_INVALID_ARG, "unknown output format");
    }
    if (st == DD_OK && b.failed) st = util_fail(DD_ERR_NOMEM, "out of memory while encoding");
    if (st) {
        free(b.data);
        return st;
    }
    *data = b.data, *size = b.size;
    return DD_OK;
}

void dd_image_free(dd_image *im) {
    if (!im) return;
    free(im->samples);
    free(im);
}

int dd_image_width(const dd_image *im) { return im->width; }
int dd_image_height(const dd_image *im) { return im->height; }
int dd_image_channels(const dd_image *im) { return im->channels; }
int dd_image_depth(const dd_image *im) { return im->depth; }
dd_format dd_image_format(const dd_image *im) { return im->format; }

dd_format dd_format_from_name(const char *name) {
    static const struct { const char *ext; dd_format f; } table[] = {
        {"png", DD_FORMAT_PNG}, {"jpg", DD_FORMAT_JPEG}, {"jpeg", DD_FORMAT_JPEG},
        {"ppm", DD_FORMAT_PNM}, {"pgm", DD_FORMAT_PNM},  {"pnm", DD_FORMAT_PNM},
        {"pam", DD_FORMAT_PAM},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    const char *ext = dot && (!slash || dot > slash) ? dot + 1 : name;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcasecmp(ext, table[i].ext)) return table[i].f;
    return DD_FORMAT_UNKNOWN;
}
