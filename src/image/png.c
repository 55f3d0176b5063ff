/* PNG through libpng: every colour type, 1..16 bits, interlaced, palette and
 * tRNS expanded; decoded to 8 or 16 bits, grey or RGB, with or without
 * alpha; the iCCP profile kept, an eXIf orientation applied, the tEXt
 * Comment read from the raw chunks; no other metadata is stored or
 * inflated. libpng's errors longjmp into the one function that calls it. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util/util.h"

typedef struct png_io {
    const unsigned char *data;
    size_t size, at;
    size_t next_chunk; /* where the next chunk's header starts, SIZE_MAX: unknown */
    char message[200];
} png_io;

static void on_error(png_structp png, png_const_charp msg) {
    png_io *io = png_get_error_ptr(png);
    snprintf(io->message, sizeof io->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static uint32_t get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* At a chunk boundary: steps over ancillary chunks longer than
 * IMG_MAX_META_BYTES, which libpng never sees (it would allocate an eXIf's
 * whole length, and fail the decode on any chunk over its chunk limit),
 * and notes where the next chunk starts. */
static void at_chunk(png_io *io) {
    io->next_chunk = SIZE_MAX;
    while (io->size - io->at >= 12) {
        const unsigned char *c = io->data + io->at;
        const uint32_t len = get_be32(c);
        if (len > io->size - io->at - 12) return; /* libpng finds the file truncated */
        if (!(c[4] & 0x20) || len <= IMG_MAX_META_BYTES) {
            io->next_chunk = io->at + 12 + len;
            return;
        }
        io->at += 12 + (size_t)len;
    }
}

static void read_bytes(png_structp png, png_bytep out, size_t n) {
    png_io *io = png_get_io_ptr(png);
    while (n) {
        if (io->at == io->next_chunk) at_chunk(io);
        size_t take = n;
        if (io->next_chunk - io->at < take) take = io->next_chunk - io->at;
        if (take > io->size - io->at) png_error(png, "file ends early (truncated)");
        memcpy(out, io->data + io->at, take);
        io->at += take, out += take, n -= take;
    }
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
    /* Metadata we do not use is never stored nor inflated: unknown chunks,
     * and the known ones listed (a chunk libpng knows and set to NEVER goes
     * to its unknown-chunk handler, which skips it, checking the CRC). Kept:
     * PLTE and tRNS, iCCP (inflated to at most the chunk limit; a longer
     * profile is dropped with a warning) and eXIf. */
    static const png_byte ignored[] = "tEXt\0zTXt\0iTXt\0sPLT\0pCAL\0sCAL\0hIST\0tIME\0"
                                      "bKGD\0pHYs\0oFFs\0sBIT\0gAMA\0cHRM\0sRGB";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored, (int)(sizeof ignored / 5));
    png_set_chunk_malloc_max(png, IMG_MAX_META_BYTES);
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

/* IHDR, the first chunk after the 8-byte signature: *w = 0 while the bytes
 * end before its data does. The size is checked against the limits here,
 * before libpng reads on through the ancillary chunks. */
static dd_status parse_ihdr(const unsigned char *data, size_t size, uint64_t max_pixels, uint32_t *w,
                            uint32_t *h) {
    static const unsigned char head[8] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    *w = *h = 0;
    const size_t have = size < 16 ? size - 8 : 8;
    if (size > 8 && memcmp(data + 8, head, have))
        return util_fail(DD_ERR_CORRUPT, "PNG: the first chunk is not a 13-byte IHDR");
    if (size < 8 + 8 + 13) return DD_OK;
    const unsigned char *d = data + 16;
    const uint32_t width = get_be32(d), height = get_be32(d + 4);
    const int bits = d[8], colour = d[9];
    /* Bit depths by colour type: grey 1-16, palette 1-8, the others 8 or 16. */
    const int bits_ok = bits == 8 || (bits == 16 && colour != 3) ||
                        ((bits == 1 || bits == 2 || bits == 4) && (colour == 0 || colour == 3));
    if (colour > 6 || colour == 1 || colour == 5 || !bits_ok || d[10] || d[11] || d[12] > 1)
        return util_fail(DD_ERR_CORRUPT, "PNG: IHDR with bit depth %d, colour type %d, methods %d %d %d", bits,
                         colour, d[10], d[11], d[12]);
    if (width > 0x7fffffff || height > 0x7fffffff)
        return util_fail(DD_ERR_CORRUPT, "PNG: IHDR claims %lux%lu pixels", (unsigned long)width,
                         (unsigned long)height);
    dd_status st = img_check_size((long)width, (long)height, max_pixels);
    if (st) return st;
    *w = width, *h = height;
    return DD_OK;
}

dd_status img_probe_png(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info) {
    uint32_t w, h;
    dd_status st = parse_ihdr(data, size, max_pixels, &w, &h);
    info->width = (int)w, info->height = (int)h;
    return st;
}

dd_status img_load_png(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out) {
    png_io io = {data, size, 0, 8, ""}; /* the first chunk after the signature */
    *out = NULL;
    uint32_t w, h;
    dd_status st = parse_ihdr(data, size, max_pixels, &w, &h);
    if (st) return st;
    /* Every chunk's length against the bytes left, up to IEND. libpng
     * allocates and clears a buffer of a kept ancillary chunk's declared
     * length before it reads the data, so a 350-byte file claiming a 1.7 GB
     * chunk would cost 1.7 GB and seconds. The same walk finds the comment,
     * the first uncompressed tEXt "Comment" (libpng ignores text chunks). */
    const unsigned char *comment = NULL;
    size_t comment_len = 0;
    for (size_t at = 8; size - at >= 8;) {
        const uint32_t len = get_be32(data + at);
        if (len > size - at - 8 || size - at - 8 - len < 4)
            return util_fail(DD_ERR_CORRUPT, "PNG: a chunk of %lu bytes runs past the end of the file (truncated)",
                             (unsigned long)len);
        const unsigned char *type = data + at + 4, *d = data + at + 8;
        if (!memcmp(type, "IEND", 4)) break;
        if (!comment && !memcmp(type, "tEXt", 4) && len >= 8 && !memcmp(d, "Comment", 8))
            comment = d + 8, comment_len = len - 8;
        at += 12 + (size_t)len;
    }
    dd_image *im = NULL;
    png_bytep *volatile rows = NULL;
    unsigned char *volatile icc = NULL;
    png_uint_32 icc_size = 0;
    int orientation = 1;
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
    if (comment && (st = img_set_comment(im, comment, comment_len))) {
        dd_image_free(im);
        return st;
    }
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
    png_io io = {NULL, 0, 0, 0, ""};
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
