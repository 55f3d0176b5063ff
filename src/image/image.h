/* The decoded image and what the codecs share. */
#ifndef DD_IMAGE_H
#define DD_IMAGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "deepdream.h"

/* Sides are capped so that width * height * 4 channels * 2 bytes and the
 * float copies the dream makes of it stay far inside size_t and int. */
#define IMG_MAX_SIDE 65535

/* What metadata may cost. An ICC profile or EXIF block over this is dropped
 * (the image still decodes); no other metadata is stored or inflated but
 * the comment, kept up to IMG_MAX_COMMENT_BYTES. */
#define IMG_MAX_META_BYTES ((size_t)4 << 20)
#define IMG_MAX_COMMENT_BYTES ((size_t)64 << 10)

struct dd_image {
    int width, height;
    int channels;           /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int depth;              /* 8 or 16 bits per sample */
    unsigned char *samples; /* interleaved rows; 16-bit samples are uint16_t */
    dd_format format;       /* decoded from */
    unsigned char *icc;     /* embedded ICC profile, NULL if none; carried to PNG and JPEG */
    size_t icc_size;
    char *comment;          /* the file's comment, NULL if none */
};

/* Width and height against IMG_MAX_SIDE and max_pixels (0: none), from a
 * header, before anything is allocated. */
dd_status img_check_size(long width, long height, uint64_t max_pixels);

/* The bytes of one image from fd, a file or a pipe alike: the header
 * first, so that a size over the limits is refused before the rest is
 * read, then no more than the most such an image can take
 * (dd_image_info.max_bytes). A Netpbm stream may hold more images: the
 * first one's bytes, and *trailing (when given) is set. Messages begin
 * with name; stop as for util_read_full. The caller frees *data. */
dd_status img_read_fd(int fd, const char *name, uint64_t max_pixels, const atomic_int *stop, unsigned char **data,
                      size_t *size, int *trailing);

/* Checks the size, then allocates the samples. */
dd_status img_new(int width, int height, int channels, int depth, uint64_t max_pixels,
                  dd_image **out);
size_t img_row_bytes(const dd_image *im);

/* Takes ownership of a malloc'd ICC profile: keeps it when its header is
 * sound and its colour space fits the image (RGB for colour, GRAY for grey),
 * else frees it. A profile for another colour space (a CMYK JPEG's, once
 * converted to RGB) would misdescribe the pixels we write. */
void img_take_icc(dd_image *im, unsigned char *icc, size_t size);

/* Keeps text (len bytes, up to its first NUL and IMG_MAX_COMMENT_BYTES) as
 * the image's comment. */
dd_status img_set_comment(dd_image *im, const unsigned char *text, size_t len);

/* The EXIF orientation (1..8) from a TIFF structure (an EXIF APP1 segment
 * after "Exif\0\0", a PNG eXIf chunk); 1 when the tag is absent or anything
 * about the structure is malformed: a bad EXIF never fails a decode. */
int img_exif_orientation(const unsigned char *tiff, size_t size);

/* Turns the pixels upright for an EXIF orientation (2..8; 1 does nothing):
 * flips, or a transpose with width and height swapped. */
dd_status img_orient(dd_image *im, int orientation);

/* Sample i (interleaved index) as an integer, and set. */
static inline unsigned img_get(const dd_image *im, size_t i) {
    return im->depth == 16 ? ((const uint16_t *)im->samples)[i] : im->samples[i];
}
static inline void img_set(dd_image *im, size_t i, unsigned v) {
    if (im->depth == 16) ((uint16_t *)im->samples)[i] = (uint16_t)v;
    else im->samples[i] = (unsigned char)v;
}

/* A growing output buffer for the encoders. */
typedef struct img_buffer {
    unsigned char *data;
    size_t size, cap;
    int failed; /* an allocation failed */
} img_buffer;
void img_buffer_put(img_buffer *b, const void *data, size_t n);

/* Header only, for dd_image_probe: info->width and height (0 while the
 * bytes end before the header does); a PNM also gets info->max_bytes. */
dd_status img_probe_png(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info);
dd_status img_probe_jpeg(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info);
dd_status img_probe_pnm(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info);

dd_status img_load_png(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out);
dd_status img_load_jpeg(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out);
dd_status img_load_pnm(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out);
dd_status img_save_png(const dd_image *im, const char *comment, img_buffer *out);
dd_status img_save_jpeg(const dd_image *im, int quality, const char *comment, img_buffer *out);
/* format: DD_FORMAT_PNM (P5 or P6 by the channels), PGM (P5), PPM (P6) or PAM. */
dd_status img_save_pnm(const dd_image *im, dd_format format, const char *comment, img_buffer *out);

#endif
