/* Images: allocation with limits, format detection by magic bytes, the
 * dispatch to the codecs, reading a file in bounded steps, and what PNG and
 * JPEG share: EXIF orientation and the ICC profile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "util/util.h"

dd_status img_check_size(long width, long height, uint64_t max_pixels) {
    if (width < 1 || height < 1)
        return util_fail(DD_ERR_CORRUPT, "image of %ldx%ld pixels", width, height);
    if (width > IMG_MAX_SIDE || height > IMG_MAX_SIDE)
        return util_fail(DD_ERR_LIMIT, "image of %ldx%ld pixels is over the limit of %d pixels a side", width,
                         height, IMG_MAX_SIDE);
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

static uint32_t get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void img_take_icc(dd_image *im, unsigned char *icc, size_t size) {
    free(im->icc);
    im->icc = NULL, im->icc_size = 0;
    if (!icc) return;
    /* The 128-byte header, the tag count, the declared size, the 'acsp'
     * signature and the data colour space at byte 16. */
    const char *want = im->channels >= 3 ? "RGB " : "GRAY";
    if (size < 132 || get_be32(icc) != size || memcmp(icc + 36, "acsp", 4) || memcmp(icc + 16, want, 4)) {
        free(icc);
        return;
    }
    im->icc = icc, im->icc_size = size;
}

dd_status img_set_comment(dd_image *im, const unsigned char *text, size_t len) {
    if (len > IMG_MAX_COMMENT_BYTES) len = IMG_MAX_COMMENT_BYTES;
    const unsigned char *nul = memchr(text, 0, len);
    if (nul) len = (size_t)(nul - text);
    char *c = malloc(len + 1);
    if (!c) return util_fail(DD_ERR_NOMEM, "out of memory for a comment");
    memcpy(c, text, len);
    c[len] = '\0';
    free(im->comment);
    im->comment = c;
    return DD_OK;
}

int img_exif_orientation(const unsigned char *t, size_t size) {
    if (size < 8) return 1;
    int big;
    if (t[0] == 'I' && t[1] == 'I') big = 0;
    else if (t[0] == 'M' && t[1] == 'M') big = 1;
    else return 1;
#define GET16(p) (big ? (unsigned)(p)[0] << 8 | (p)[1] : (unsigned)(p)[1] << 8 | (p)[0])
#define GET32(p) (big ? get_be32(p) : (uint32_t)(p)[3] << 24 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[1] << 8 | (p)[0])
    if (GET16(t + 2) != 42) return 1;
    /* IFD0: a 2-byte entry count, then 12-byte entries (tag, type, count,
     * value). Every offset and count is checked against the size. */
    const uint32_t ifd = GET32(t + 4);
    if (ifd < 8 || ifd > size || size - ifd < 2) return 1;
    const size_t entries = GET16(t + ifd);
    if (entries > (size - ifd - 2) / 12) return 1;
    for (size_t i = 0; i < entries; i++) {
        const unsigned char *e = t + ifd + 2 + 12 * i;
        if (GET16(e) != 0x0112) continue;
        /* One SHORT, held in the first two bytes of the value field. */
        if (GET16(e + 2) != 3 || GET32(e + 4) != 1) return 1;
        const unsigned v = GET16(e + 8);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
#undef GET16
#undef GET32
}

dd_status img_orient(dd_image *im, int orientation) {
    if (orientation < 2 || orientation > 8) return DD_OK;
    const size_t w = (size_t)im->width, h = (size_t)im->height;
    const size_t px = (size_t)im->channels * (size_t)(im->depth / 8);
    unsigned char *out = malloc(w * h * px);
    if (!out) return util_fail(DD_ERR_NOMEM, "out of memory turning a %zux%zu image upright", w, h);
    const int swap = orientation >= 5; /* the transposes: rows become columns */
    const size_t ow = swap ? h : w, oh = swap ? w : h;
    for (size_t y = 0; y < oh; y++)
        for (size_t x = 0; x < ow; x++) {
            /* (sx, sy): the stored pixel shown at (x, y). */
            size_t sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x, sy = y; break;         /* mirrored left-right */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break; /* turned 180 */
            case 4: sx = x, sy = h - 1 - y; break;         /* mirrored top-bottom */
            case 5: sx = y, sy = x; break;                 /* transposed */
            case 6: sx = y, sy = h - 1 - x; break;         /* needs 90 clockwise */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break; /* transversed */
            default: sx = w - 1 - y, sy = x; break;        /* 8: needs 90 anticlockwise */
            }
            memcpy(out + (y * ow + x) * px, im->samples + (sy * w + sx) * px, px);
        }
    free(im->samples);
    im->samples = out;
    im->width = (int)ow, im->height = (int)oh;
    return DD_OK;
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
    util_clear_error();
    const unsigned char *p = data;
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "no place for the decoded image");
    *out = NULL;
    if (!data || size == 0) return util_fail(DD_ERR_CORRUPT, "empty file");
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 8 && !memcmp(p, png_magic, 8)) return img_load_png(p, size, max_pixels, out);
    if (size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return img_load_jpeg(p, size, max_pixels, out);
    if (size >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6' || p[1] == '7'))
        return img_load_pnm(p, size, max_pixels, out);
    return util_fail(DD_ERR_CORRUPT, "not a PNG, JPEG, PNM or PAM image");
}

dd_status dd_image_probe(const void *data, size_t size, uint64_t max_pixels, dd_image_info *info) {
    util_clear_error();
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char jpeg_magic[3] = {0xff, 0xd8, 0xff};
    const unsigned char *p = data;
    if (!info) return util_fail(DD_ERR_INVALID_ARG, "no place for the image's header");
    memset(info, 0, sizeof *info);
    if (!data && size) return util_fail(DD_ERR_INVALID_ARG, "no bytes to probe");
    if (size == 0) return DD_OK;
    dd_status st;
    /* A prefix of a magic number is that format, not yet complete. */
    if (!memcmp(p, png_magic, size < 8 ? size : 8)) {
        info->format = DD_FORMAT_PNG;
        st = img_probe_png(p, size, max_pixels, info);
    } else if (!memcmp(p, jpeg_magic, size < 3 ? size : 3)) {
        info->format = DD_FORMAT_JPEG;
        st = img_probe_jpeg(p, size, max_pixels, info);
    } else if (p[0] == 'P' && size == 1) {
        return DD_OK; /* PNM or PAM: not yet known */
    } else if (p[0] == 'P' && (p[1] == '5' || p[1] == '6' || p[1] == '7')) {
        info->format = p[1] == '7' ? DD_FORMAT_PAM : DD_FORMAT_PNM;
        st = img_probe_pnm(p, size, max_pixels, info);
    } else {
        return util_fail(DD_ERR_CORRUPT, "not a PNG, JPEG, PNM or PAM image");
    }
    if (st) {
        const dd_format f = info->format;
        memset(info, 0, sizeof *info);
        info->format = f;
        return st;
    }
    /* PNG and JPEG: the metadata we read and twice the largest raw size of
     * the pixels (4 channels of 16 bits), well above what any encoder makes. */
    if (info->width && (info->format == DD_FORMAT_PNG || info->format == DD_FORMAT_JPEG))
        info->max_bytes = ((uint64_t)64 << 20) + 2 * (uint64_t)info->width * (uint64_t)info->height * 8;
    return DD_OK;
}

dd_status img_read_fd(int fd, const char *name, uint64_t max_pixels, const atomic_int *stop, unsigned char **data,
                      size_t *size, int *trailing) {
    const size_t header_most = (size_t)65 << 20; /* max_bytes allows 64 MiB of metadata */
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, want = (size_t)1 << 16;
    int ended = 0;
    dd_status st = DD_OK;
    dd_image_info info = {0};
    struct stat sb;
    *data = NULL, *size = 0;
    if (trailing) *trailing = 0;
    if (fstat(fd, &sb) != 0) {
        st = util_fail(DD_ERR_IO, "%s: %s", name, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = util_fail(DD_ERR_IO, "%s: is a directory", name);
        goto fail;
    }
    for (;;) {
        if (util_read_upto(fd, &buf, &len, &cap, want, &ended, stop)) goto io_error;
        const dd_status probe = dd_image_probe(buf, len, max_pixels, &info);
        if (probe == DD_ERR_LIMIT) {
            st = util_fail_in(DD_ERR_LIMIT, name);
            goto fail;
        }
        /* Malformed or no image: the decoder says what is wrong. */
        if (probe || info.width || ended || len >= header_most) break;
        want = len * 2;
    }
    if (info.width) {
        /* One byte more than the most tells a longer input from an exact one. */
        const uint64_t most = info.max_bytes;
        const size_t limit = most < SIZE_MAX - 1 ? (size_t)most + 1 : SIZE_MAX;
        /* A regular file's size is known: one allocation of it, not a
         * doubling buffer whose last copy would hold the file twice. */
        if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < limit && (size_t)sb.st_size + 1 > cap) {
            unsigned char *nb = realloc(buf, (size_t)sb.st_size + 1);
            if (nb) buf = nb, cap = (size_t)sb.st_size + 1;
        }
        if (util_read_upto(fd, &buf, &len, &cap, limit, &ended, stop)) goto io_error;
        if (len > most && info.format != DD_FORMAT_PNM && info.format != DD_FORMAT_PAM) {
            st = util_fail(DD_ERR_LIMIT, "%s: more than the %llu bytes a %dx%d image can take", name,
                           (unsigned long long)most, info.width, info.height);
            goto fail;
        }
        if (len > most) { /* a Netpbm stream may hold more images: the first one */
            len = (size_t)most;
            if (trailing) *trailing = 1;
        }
    }
    *data = buf, *size = len;
    return DD_OK;
io_error:
    st = util_fail(errno == ENOMEM ? DD_ERR_NOMEM : DD_ERR_IO, "%s: %s", name, strerror(errno));
fail:
    free(buf);
    return st;
}

dd_status dd_image_load_file(const char *path, uint64_t max_pixels, dd_image **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "no place for the decoded image");
    *out = NULL;
    if (!path) return util_fail(DD_ERR_INVALID_ARG, "no file name");
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_fail(DD_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *data = NULL;
    size_t size = 0;
    dd_status st = img_read_fd(fd, path, max_pixels, NULL, &data, &size, NULL);
    close(fd);
    if (st == DD_OK) {
        st = dd_image_load_memory(data, size, max_pixels, out);
        if (st) util_fail_in(st, path);
    }
    free(data);
    return st;
}

dd_status dd_image_save_memory(const dd_image *im, dd_format format, int quality, const char *comment,
                               unsigned char **data, size_t *size) {
    util_clear_error();
    img_buffer b = {0};
    dd_status st;
    if (!data || !size) return util_fail(DD_ERR_INVALID_ARG, "no place for the encoded image");
    *data = NULL, *size = 0;
    if (!im) return util_fail(DD_ERR_INVALID_ARG, "no image to encode");
    switch (format) {
    case DD_FORMAT_PNG: st = img_save_png(im, comment, &b); break;
    case DD_FORMAT_JPEG: st = img_save_jpeg(im, quality, comment, &b); break;
    case DD_FORMAT_PNM:
    case DD_FORMAT_PGM:
    case DD_FORMAT_PPM:
    case DD_FORMAT_PAM: st = img_save_pnm(im, format, comment, &b); break;
    default: st = util_fail(DD_ERR_INVALID_ARG, "unknown output format %d", (int)format);
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
    free(im->icc);
    free(im->comment);
    free(im);
}

int dd_image_width(const dd_image *im) { return im ? im->width : 0; }
int dd_image_height(const dd_image *im) { return im ? im->height : 0; }
int dd_image_channels(const dd_image *im) { return im ? im->channels : 0; }
int dd_image_depth(const dd_image *im) { return im ? im->depth : 0; }
dd_format dd_image_format(const dd_image *im) { return im ? im->format : DD_FORMAT_UNKNOWN; }
const char *dd_image_comment(const dd_image *im) { return im ? im->comment : NULL; }
const void *dd_image_pixels(const dd_image *im) { return im ? im->samples : NULL; }
size_t dd_image_bytes(const dd_image *im) { return im ? img_row_bytes(im) * (size_t)im->height : 0; }

dd_status dd_image_new(int width, int height, int channels, int depth, const void *pixels, dd_image **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "no place for the new image");
    *out = NULL;
    if (width < 1 || height < 1)
        return util_fail(DD_ERR_INVALID_ARG, "image of %dx%d pixels: sides must be at least 1", width, height);
    if (channels < 1 || channels > 4)
        return util_fail(DD_ERR_INVALID_ARG, "%d channels: an image has 1 to 4", channels);
    if (depth != 8 && depth != 16)
        return util_fail(DD_ERR_INVALID_ARG, "depth %d: samples are 8 or 16 bits", depth);
    dd_image *im;
    const dd_status st = img_new(width, height, channels, depth, 0, &im);
    if (st) return st;
    const size_t bytes = dd_image_bytes(im);
    if (pixels) memcpy(im->samples, pixels, bytes);
    else memset(im->samples, 0, bytes);
    im->format = DD_FORMAT_UNKNOWN;
    *out = im;
    return DD_OK;
}

dd_format dd_format_from_name(const char *name) {
    static const struct { const char *ext; dd_format f; } table[] = {
        {"png", DD_FORMAT_PNG}, {"jpg", DD_FORMAT_JPEG}, {"jpeg", DD_FORMAT_JPEG},
        {"ppm", DD_FORMAT_PPM}, {"pgm", DD_FORMAT_PGM},  {"pnm", DD_FORMAT_PNM},
        {"pam", DD_FORMAT_PAM},
    };
    if (!name) return DD_FORMAT_UNKNOWN;
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    const char *ext = dot && (!slash || dot > slash) ? dot + 1 : name;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcasecmp(ext, table[i].ext)) return table[i].f;
    return DD_FORMAT_UNKNOWN;
}
