/* JPEG through libjpeg-turbo: baseline and progressive, grey, YCbCr/RGB and
 * CMYK/YCCK (converted to RGB), the EXIF orientation applied and the ICC
 * profile (APP2) kept. Strict: libjpeg's warnings (corrupt data, premature
 * end) are errors, never a half-grey picture; only the optional metadata is
 * read leniently (a bad EXIF or ICC marker is ignored). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image.h"
#include "util/util.h"

/* A progressive file may have any number of scans, each a pass over the
 * whole coefficient buffer: a small hostile file with thousands of them
 * takes minutes. Real encoders use about ten; libjpeg-turbo's own fuzzers
 * stop at 500. */
#define JPEG_MAX_SCANS 500

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    int lenient;      /* warnings ignored: reading optional metadata */
    dd_status status; /* of a failure: DD_ERR_CORRUPT, or DD_ERR_LIMIT */
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void on_error(j_common_ptr cinfo) {
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, f->message);
    longjmp(f->jump, 1);
}

/* Level -1 is a warning about corrupt data: an error here. Trace messages
 * (level >= 0) are ignored. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && !((jpeg_failure *)cinfo->err)->lenient) on_error(cinfo);
}

/* Our error manager: errors and warnings longjmp to f->jump. */
static struct jpeg_error_mgr *failure_init(jpeg_failure *f) {
    struct jpeg_error_mgr *mgr = jpeg_std_error(&f->mgr);
    f->mgr.error_exit = on_error;
    f->mgr.emit_message = on_message;
    f->message[0] = '\0';
    f->lenient = 0;
    f->status = DD_ERR_CORRUPT;
    return mgr;
}

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor || ((j_decompress_ptr)cinfo)->input_scan_number <= JPEG_MAX_SCANS) return;
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    snprintf(f->message, sizeof f->message, "more than %d scans, over the limit", JPEG_MAX_SCANS);
    f->status = DD_ERR_LIMIT;
    longjmp(f->jump, 1);
}

/* The orientation from the first APP1 "Exif\0\0" segment, 1 without one. */
static int exif_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6))
            return img_exif_orientation(m->data + 6, m->data_length - 6);
    return 1;
}

static unsigned char clamp_byte(int v) { return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Everything that may longjmp; *im, *row and *icc are freed by the caller. */
static int decode(struct jpeg_decompress_struct *cinfo, jpeg_failure *f, const unsigned char *data,
                  size_t size, uint64_t max_pixels, dd_image **im, unsigned char *volatile *row,
                  JOCTET *volatile *icc, unsigned *icc_size, int *orientation,
                  struct jpeg_progress_mgr *progress, dd_status *st) {
    if (setjmp(f->jump)) return 0;
    jpeg_create_decompress(cinfo);
    /* Set after jpeg_create_decompress, which clears the struct. */
    cinfo->progress = progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    /* Whole markers (65533 bytes at most): a cut one would misparse. */
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_save_markers(cinfo, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(cinfo, TRUE);
    if ((*st = img_check_size((long)cinfo->image_width, (long)cinfo->image_height, max_pixels))) return 0;
    *orientation = exif_orientation(cinfo);
    /* A bad ICC marker sequence is a warning from libjpeg: the profile is
     * dropped, the image still decodes. */
    f->lenient = 1;
    JOCTET *profile = NULL;
    if (!jpeg_read_icc_profile(cinfo, &profile, icc_size)) profile = NULL;
    *icc = profile;
    f->lenient = 0;
    const int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
    const int grey = cinfo->num_components == 1;
    if (cmyk) cinfo->out_color_space = JCS_CMYK;
    else cinfo->out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(cinfo);
    if ((*st = img_new((int)cinfo->output_width, (int)cinfo->output_height, grey ? 1 : 3, 8, 0, im))) return 0;
    const size_t stride = img_row_bytes(*im);
    if (cmyk && !(*row = malloc((size_t)cinfo->output_width * 4))) {
        *st = util_fail(DD_ERR_NOMEM, "out of memory");
        return 0;
    }
    /* Adobe's CMYK JPEGs store inverted values (0 = full ink). */
    const int inverted = cinfo->saw_Adobe_marker;
    while (cinfo->output_scanline < cinfo->output_height) {
        unsigned char *dst = (*im)->samples + (size_t)cinfo->output_scanline * stride;
        JSAMPROW rows[1] = {cmyk ? *row : dst};
        jpeg_read_scanlines(cinfo, rows, 1);
        if (!cmyk) continue;
        for (JDIMENSION x = 0; x < cinfo->output_width; x++) {
            int c = (*row)[4 * x], m = (*row)[4 * x + 1], y = (*row)[4 * x + 2], k = (*row)[4 * x + 3];
            if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
            dst[3 * x] = clamp_byte((c * k + 127) / 255);
            dst[3 * x + 1] = clamp_byte((m * k + 127) / 255);
            dst[3 * x + 2] = clamp_byte((y * k + 127) / 255);
        }
    }
    jpeg_finish_decompress(cinfo);
    return 1;
}

dd_status img_load_jpeg(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_failure f;
    dd_image *im = NULL;
    unsigned char *volatile row = NULL;
    dd_status st = DD_OK;
    *out = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = failure_init(&f);
    JOCTET *volatile icc = NULL;
    unsigned icc_size = 0;
    int orientation = 1;
    struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
    const int ok = decode(&cinfo, &f, data, size, max_pixels, &im, &row, &icc, &icc_size, &orientation,
                          &progress, &st);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (ok) st = img_orient(im, orientation);
    if (!ok || st) {
        dd_image_free(im);
        free(icc);
        if (st == DD_OK) st = util_fail(f.status, "JPEG: %s", f.message);
        return st;
    }
    img_take_icc(im, icc, icc_size);
    im->format = DD_FORMAT_JPEG;
    *out = im;
    return DD_OK;
}

static int encode(struct jpeg_compress_struct *cinfo, jpeg_failure *f, const dd_image *im, int quality,
                  const char *comment, unsigned char **buf, unsigned long *size, unsigned char *volatile *row) {
    if (setjmp(f->jump)) return 0;
    jpeg_create_compress(cinfo);
    jpeg_mem_dest(cinfo, buf, size);
    const int colour = im->channels >= 3 ? 3 : 1;
    cinfo->image_width = (JDIMENSION)im->width;
    cinfo->image_height = (JDIMENSION)im->height;
    cinfo->input_components = colour;
    cinfo->in_color_space = colour == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    jpeg_start_compress(cinfo, TRUE);
    if (comment) jpeg_write_marker(cinfo, JPEG_COM, (const JOCTET *)comment, (unsigned)strnlen(comment, 65000));
    /* APP2 markers hold 65519 profile bytes each, numbered in one byte. */
    if (im->icc && im->icc_size <= 255u * 65519u)
        jpeg_write_icc_profile(cinfo, im->icc, (unsigned)im->icc_size);
    if (!(*row = malloc((size_t)im->width * (size_t)colour))) return 0;
    /* JPEG has no alpha and 8 bits: alpha is dropped, 16-bit rounded. */
    for (int y = 0; y < im->height; y++) {
        for (int x = 0; x < im->width; x++)
            for (int k = 0; k < colour; k++) {
                const unsigned v = img_get(im, ((size_t)y * im->width + x) * (size_t)im->channels + (size_t)k);
                (*row)[(size_t)x * colour + (size_t)k] = (unsigned char)(im->depth == 16 ? (v * 255 + 32767) / 65535 : v);
            }
        JSAMPROW rows[1] = {*row};
        jpeg_write_scanlines(cinfo, rows, 1);
    }
    jpeg_finish_compress(cinfo);
    return 1;
}

dd_status img_save_jpeg(const dd_image *im, int quality, const char *comment, img_buffer *out) {
    struct jpeg_compress_struct cinfo;
    jpeg_failure f;
    unsigned char *buf = NULL;
    unsigned long size = 0;
    unsigned char *volatile row = NULL;
    if (quality < 1 || quality > 100) return util_fail(DD_ERR_INVALID_ARG, "JPEG quality %d outside 1..100", quality);
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = failure_init(&f);
    const int ok = encode(&cinfo, &f, im, quality, comment, &buf, &size, &row);
    jpeg_destroy_compress(&cinfo);
    free(row);
    if (ok) img_buffer_put(out, buf, size);
    free(buf);
    if (!ok) return f.message[0] ? util_fail(DD_ERR_IO, "JPEG: %s", f.message) : util_fail(DD_ERR_NOMEM, "out of memory");
    return DD_OK;
}
