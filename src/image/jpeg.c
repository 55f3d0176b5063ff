/* JPEG through libjpeg-turbo: baseline and progressive, grey, YCbCr/RGB and
 * CMYK/YCCK (converted to RGB), the EXIF orientation applied, the ICC
 * profile (APP2) and the comment (COM) kept. Strict: libjpeg's warnings
 * (corrupt data, premature end) are errors, never a half-grey picture. The
 * metadata is read by our own walk over the segments before the first scan,
 * leniently (a bad EXIF or ICC marker is ignored); libjpeg saves none. */
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
    if (level < 0) on_error(cinfo);
}

/* Our error manager: errors and warnings longjmp to f->jump. */
static struct jpeg_error_mgr *failure_init(jpeg_failure *f) {
    struct jpeg_error_mgr *mgr = jpeg_std_error(&f->mgr);
    f->mgr.error_exit = on_error;
    f->mgr.emit_message = on_message;
    f->message[0] = '\0';
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

/* One marker segment between SOI and the first SOS. */
typedef struct jpeg_segment {
    int marker;                /* the code after 0xff: 0xe1 is APP1 */
    const unsigned char *data; /* after the length field */
    size_t size;
} jpeg_segment;

enum { SEGMENT_OK, SEGMENT_SHORT, SEGMENT_BAD };

/* The segment at *at (just past SOI to start with), then *at past it.
 * SHORT when the bytes end inside it, BAD when no marker is where one must
 * be (libjpeg would warn: an error here). Markers without a length (TEM,
 * RSTn) come back with size 0. */
static int next_segment(const unsigned char *d, size_t size, size_t *at, jpeg_segment *seg) {
    size_t i = *at;
    if (i >= size) return SEGMENT_SHORT;
    if (d[i] != 0xff) return SEGMENT_BAD;
    while (i < size && d[i] == 0xff) i++; /* fill bytes */
    if (i >= size) return SEGMENT_SHORT;
    seg->marker = d[i++];
    seg->data = d + i, seg->size = 0;
    if (seg->marker == 0x00 || seg->marker == 0xd8 || seg->marker == 0xd9) return SEGMENT_BAD;
    if (seg->marker == 0x01 || (seg->marker >= 0xd0 && seg->marker <= 0xd7)) {
        *at = i;
        return SEGMENT_OK;
    }
    if (size - i < 2) return SEGMENT_SHORT;
    const size_t len = (size_t)d[i] << 8 | d[i + 1];
    if (len < 2) return SEGMENT_BAD;
    if (size - i < len) return SEGMENT_SHORT;
    seg->data = d + i + 2, seg->size = len - 2;
    *at = i + len;
    return SEGMENT_OK;
}

/* SOF0-3, 5-7, 9-11, 13-15: 0xc4 is DHT, 0xc8 JPG, 0xcc DAC. */
static int is_sof(int m) { return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc; }

dd_status img_probe_jpeg(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info) {
    jpeg_segment seg;
    for (size_t at = 2;;) {
        const int r = next_segment(data, size, &at, &seg);
        if (r == SEGMENT_SHORT) return DD_OK;
        if (r == SEGMENT_BAD) return util_fail(DD_ERR_CORRUPT, "JPEG: no marker where one must be");
        if (seg.marker == 0xda) return util_fail(DD_ERR_CORRUPT, "JPEG: a scan before the frame header");
        if (!is_sof(seg.marker)) continue;
        /* Precision, height, width, components, then 3 bytes a component. */
        const unsigned char *f = seg.data;
        if (seg.size < 6 || f[5] == 0 || seg.size != 6 + 3 * (size_t)f[5])
            return util_fail(DD_ERR_CORRUPT, "JPEG: frame header of %zu bytes", seg.size);
        const long h = (long)f[1] << 8 | f[2], w = (long)f[3] << 8 | f[4];
        dd_status st = img_check_size(w, h, max_pixels);
        if (st) return st;
        info->width = (int)w, info->height = (int)h;
        return DD_OK;
    }
}

/* The metadata we keep, from the segments before the first scan. */
typedef struct jpeg_meta {
    const unsigned char *exif; /* the TIFF structure after "Exif\0\0" */
    size_t exif_size;
    const unsigned char *comment;
    size_t comment_size;
    /* APP2 "ICC_PROFILE\0" chunks by sequence number 1..count. */
    const unsigned char *icc_part[256];
    size_t icc_part_size[256];
    int icc_count, icc_bad;
} jpeg_meta;

static void read_meta(const unsigned char *data, size_t size, jpeg_meta *m) {
    jpeg_segment seg;
    memset(m, 0, sizeof *m);
    for (size_t at = 2; next_segment(data, size, &at, &seg) == SEGMENT_OK && seg.marker != 0xda;) {
        const unsigned char *d = seg.data;
        if (seg.marker == 0xe1 && !m->exif && seg.size >= 6 && !memcmp(d, "Exif\0\0", 6)) {
            m->exif = d + 6, m->exif_size = seg.size - 6;
        } else if (seg.marker == 0xfe && !m->comment) {
            m->comment = d, m->comment_size = seg.size;
        } else if (seg.marker == 0xe2 && seg.size >= 14 && !memcmp(d, "ICC_PROFILE", 12)) {
            /* Sequence number 1..count, the same count in every chunk, each
             * number once: anything else and the profile is dropped. */
            const int seq = d[12], count = d[13];
            if (!m->icc_count) m->icc_count = count;
            if (!seq || seq > count || count != m->icc_count || m->icc_part[seq]) m->icc_bad = 1;
            else m->icc_part[seq] = d + 14, m->icc_part_size[seq] = seg.size - 14;
        }
    }
}

/* The ICC profile assembled from its chunks: NULL when they are
 * incomplete, inconsistent or over IMG_MAX_META_BYTES in all. */
static dd_status assemble_icc(const jpeg_meta *m, unsigned char **icc, size_t *icc_size) {
    *icc = NULL, *icc_size = 0;
    if (!m->icc_count || m->icc_bad) return DD_OK;
    size_t total = 0;
    for (int k = 1; k <= m->icc_count; k++) {
        if (!m->icc_part[k]) return DD_OK;
        total += m->icc_part_size[k];
    }
    if (total == 0 || total > IMG_MAX_META_BYTES) return DD_OK;
    unsigned char *p = malloc(total);
    if (!p) return util_fail(DD_ERR_NOMEM, "out of memory for an ICC profile");
    size_t at = 0;
    for (int k = 1; k <= m->icc_count; k++) {
        memcpy(p + at, m->icc_part[k], m->icc_part_size[k]);
        at += m->icc_part_size[k];
    }
    *icc = p, *icc_size = total;
    return DD_OK;
}

static unsigned char clamp_byte(int v) { return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Everything that may longjmp; *im and *row are freed by the caller. */
static int decode(struct jpeg_decompress_struct *cinfo, jpeg_failure *f, const unsigned char *data,
                  size_t size, uint64_t max_pixels, dd_image **im, unsigned char *volatile *row,
                  struct jpeg_progress_mgr *progress, dd_status *st) {
    if (setjmp(f->jump)) return 0;
    jpeg_create_decompress(cinfo);
    /* Set after jpeg_create_decompress, which clears the struct. */
    cinfo->progress = progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    if ((*st = img_check_size((long)cinfo->image_width, (long)cinfo->image_height, max_pixels))) return 0;
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
    *out = NULL;
    jpeg_meta meta;
    read_meta(data, size, &meta);
    unsigned char *icc;
    size_t icc_size;
    dd_status st = assemble_icc(&meta, &icc, &icc_size);
    if (st) return st;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = failure_init(&f);
    struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
    const int ok = decode(&cinfo, &f, data, size, max_pixels, &im, &row, &progress, &st);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    if (ok) st = img_orient(im, meta.exif ? img_exif_orientation(meta.exif, meta.exif_size) : 1);
    if (ok && !st && meta.comment) st = img_set_comment(im, meta.comment, meta.comment_size);
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
