/* PNG through libpng: every colour type, 1..16 bits, interlaced, palette and
 * tRNS expanded; decoded to 8 or 16 bits, grey or RGB, with or without
 * alpha; the iCCP profile kept, an eXIf orientation applied. libpng's errors
 * longjmp into the one function that calls it. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util/util.h"

typedef struct png_io {
    const unsigned char *data;
    size_t size, at;
    char message[200];
} png_io;

static void on_error(png_structp png, png_const_charp msg) {
    png_io *io = png_get_error_ptr(png);
    snprintf(io->message, sizeof io->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void read_bytes(png_structp png, png_bytep out, size_t n) {
    png_io *io = png_get_io_ptr(png);
    if (n > io->size - io->at) png_error(png, "file ends early (truncated)");
    memcpy(out, io->data + io->at, n);
    io->at += n;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Everything that may longjmp; *im and *icc are freed by the caller on
 * failure. */
static int decode(png_structp png, png_infop info, uint64_t max_pixels, dd_image **im,
                  png_bytep *volatile *rows, unsigned char *volatile *icc, png_uint_32 *icc_size,
                  int *orientation, dd_status *st) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our own limits below */
    png_read_info(png, info);
    png_uint_32 w, h;
    int bit_depth, colour, interlace;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &colour, &interlace, NULL, NULL);
    if ((*st = img_check_size((long)w, (long)h, max_pixels))) return 0;
    if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colour == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    png_set_interlace_handling(png);
    /* libpng has checked the profile's header and tag table (a bad one is
     * dropped with a warning). Copied: it lives in png's memory. */
    png_charp icc_name;
    int icc_compression;
    png_bytep icc_data;
    if (png_get_iCCP(png, info, &icc_name, &icc_compression, &icc_data, icc_size) && *icc_size) {
        if (!(*icc = malloc(*icc_size))) {
            *st = util_fail(DD_ERR_NOMEM, "out of memory for an ICC profile");
            return 0;
        }
        memcpy(*icc, icc_data, *icc_size);
    }
    png_uint_32 exif_size;
    png_bytep exif;
    if (png_get_eXIf_1(png, info, &exif_size, &exif)) *orientation = img_exif_orientation(exif, exif_size);
    png_read_update_info(png, info);
    if ((*st = img_new((int)w, (int)h, png_get_channels(png, info), png_get_bit_depth(png, info), 0, im)))
        return 0;
    const size_t row_bytes = img_row_bytes(*im);
    if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row size");
    *rows = malloc(h * sizeof **rows);
    if (!*rows) {
        *st = util_fail(DD_ERR_NOMEM, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        return 0;
    }
    for (png_uint_32 y = 0; y < h; y++) (*rows)[y] = (*im)->samples + y * row_bytes;
    png_read_image(png, *rows);
    png_read_end(png, NULL); /* checks the CRCs up to IEND */
    return 1;
}

dd_status img_load_png(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out) {
    png_io io = {data, size, 0, ""};
    *out = NULL;
    /* The size straight from IHDR (the first chunk, after the 8-byte
     * signature), before libpng reads on through the ancillary chunks. */
    if (size >= 24 && !memcmp(data + 12, "IHDR", 4)) {
        const uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
        const uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
        if (w && h && w <= 0x7fffffff && h <= 0x7fffffff) {
            dd_status st = img_check_size((long)w, (long)h, max_pixels);
            if (st) return st;
        }
    }
    /* Every chunk's length against the bytes left, up to IEND. libpng
     * allocates and clears a buffer of an ancillary chunk's declared length
     * (sPLT, tEXt, eXIf...) before it reads the data, so a 350-byte file
     * claiming a 1.7 GB chunk would cost 1.7 GB and seconds. */
    for (size_t at = 8; size - at >= 8;) {
        const uint32_t len = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 | (uint32_t)data[at + 2] << 8 | data[at + 3];
        if (len > size - at - 8 || size - at - 8 - len < 4)
            return util_fail(DD_ERR_CORRUPT, "PNG: a chunk of %lu bytes runs past the end of the file (truncated)",
                             (unsigned long)len);
        if (!memcmp(data + at + 4, "IEND", 4)) break;
        at += 12 + (size_t)len;
    }
    dd_image *im = NULL;
    png_bytep *volatile rows = NULL;
    unsigned char *volatile icc = NULL;
    png_uint_32 icc_size = 0;
    int orientation = 1;
    dd_status st = DD_OK;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    png_set_read_fn(png, &io, read_bytes);
    const int ok = decode(png, info, max_pixels, &im, &rows, &icc, &icc_size, &orientation, &st);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (ok) st = img_orient(im, orientation);
    if (!ok || st) {
        dd_image_free(im);
        free(icc);
        if (st == DD_OK) st = util_fail(DD_ERR_CORRUPT, "PNG: %s", io.message);
        return st;
    }
    img_take_icc(im, icc, icc_size);
    im->format = DD_FORMAT_PNG;
    *out = im;
    return DD_OK;
}

static void write_bytes(png_structp png, png_bytep data, size_t n) {
    img_buffer_put(png_get_io_ptr(png), data, n);
}

static void flush_nothing(png_structp png) { (void)png; }

static int encode(png_structp png, png_infop info, const dd_image *im, const char *comment) {
    if (setjmp(png_jmpbuf(png))) return 0;
    static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)im->width, (png_uint_32)im->height, im->depth, types[im->channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[2];
    int n_text = 0;
    memset(text, 0, sizeof text);
    text[n_text].compression = PNG_TEXT_COMPRESSION_NONE;
    text[n_text].key = "Software";
    text[n_text++].text = "deepdream " DD_VERSION_STRING;
    if (comment) {
        text[n_text].compression = PNG_TEXT_COMPRESSION_NONE;
        text[n_text].key = "Comment";
        text[n_text++].text = (char *)comment;
    }
    png_set_text(png, info, text, n_text);
    /* libpng checks the profile against the colour type again; one it
     * rejects is dropped with a warning (benign errors allowed), not a
     * failed save. */
    if (im->icc) png_set_iCCP(png, info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, im->icc, (png_uint_32)im->icc_size);
    png_write_info(png, info);
    if (im->depth == 16 && host_is_little_endian()) png_set_swap(png);
    const size_t row_bytes = img_row_bytes(im);
    for (int y = 0; y < im->height; y++) png_write_row(png, im->samples + (size_t)y * row_bytes);
    png_write_end(png, info);
    return 1;
}

dd_status img_save_png(const dd_image *im, const char *comment, img_buffer *out) {
    png_io io = {NULL, 0, 0, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    png_set_write_fn(png, out, write_bytes, flush_nothing);
    png_set_benign_errors(png, 1);
    const int ok = encode(png, info, im, comment);
    png_destroy_write_struct(&png, &info);
    return ok ? DD_OK : util_fail(DD_ERR_IO, "PNG: %s", io.message);
}
