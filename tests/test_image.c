/* The image codecs against the real libpng and libjpeg: exact round trips,
 * every PNG colour type and bit depth (palette, tRNS, interlaced), progressive
 * and CMYK JPEG, EXIF orientation, ICC profiles, comments, and hostile files
 * (each in a buffer of exactly its size, so ASan sees any overread). The test
 * images are made here with libpng and libjpeg directly. */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jpeglib.h>

#include "check.h"
#include "deepdream.h"
#include "image/image.h"

/* ---- buffers ------------------------------------------------------------- */

typedef struct membuf {
    unsigned char *data;
    size_t size, cap;
} membuf;

static void die(const char *what) {
    fprintf(stderr, "test_image: %s\n", what);
    exit(2);
}

static void mb_put(membuf *b, const void *p, size_t n) {
    if (!n) return;
    if (n > b->cap - b->size) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n > cap - b->size) cap *= 2;
        if (!(b->data = realloc(b->data, cap))) die("out of memory");
        b->cap = cap;
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_be16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v; }
static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static uint32_t rng_state = 12345;
static unsigned rnd(unsigned n) { /* 0..n-1 */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (unsigned)(((uint64_t)(rng_state >> 8) * n) >> 24);
}

/* Decodes a copy of data in a buffer of exactly size bytes. */
static dd_status load_exact(const void *data, size_t size, uint64_t max_pixels, dd_image **out) {
    unsigned char *copy = size ? malloc(size) : NULL;
    if (size && !copy) die("out of memory");
    if (size) memcpy(copy, data, size);
    dd_status st = dd_image_load_memory(copy, size, max_pixels, out);
    free(copy);
    return st;
}

static dd_image *load_ok(const char *what, const void *data, size_t size) {
    dd_image *im = NULL;
    dd_status st = load_exact(data, size, 0, &im);
    CHECK(st == DD_OK && im, "%s: load gave %s: %s", what, dd_strerror(st), dd_last_error());
    return st == DD_OK ? im : NULL;
}

/* The status and a word of the message, for a file that must fail. */
static void expect_fail(const char *what, const void *data, size_t size, uint64_t max_pixels, dd_status want,
                        const char *word) {
    dd_image *im = (dd_image *)1;
    dd_status st = load_exact(data, size, max_pixels, &im);
    CHECK(st == want, "%s: got %s (%s), want %s", what, dd_strerror(st), dd_last_error(), dd_strerror(want));
    CHECK(im == NULL, "%s: *out not NULL after a failure", what);
    CHECK(!word || strcasestr(dd_last_error(), word), "%s: message '%s' lacks '%s'", what, dd_last_error(), word);
    if (st == DD_OK) dd_image_free(im);
}

static membuf save_ok(const char *what, const dd_image *im, dd_format f, int quality, const char *comment) {
    membuf b = {0};
    dd_status st = dd_image_save_memory(im, f, quality, comment, &b.data, &b.size);
    CHECK(st == DD_OK && b.data && b.size, "%s: save gave %s: %s", what, dd_strerror(st), dd_last_error());
    b.cap = b.size;
    return b;
}

/* A new image with a pattern covering 0 and the top value. */
static dd_image *pattern(int w, int h, int channels, int depth) {
    dd_image *im;
    if (img_new(w, h, channels, depth, 0, &im)) die("img_new");
    const unsigned top = depth == 16 ? 65535 : 255;
    const size_t n = (size_t)w * h * channels;
    for (size_t i = 0; i < n; i++) img_set(im, i, i % 7 == 0 ? top : i % 11 == 0 ? 0 : rnd(top + 1));
    return im;
}

static int same_pixels(const char *what, const dd_image *a, const dd_image *b) {
    if (a->width != b->width || a->height != b->height || a->channels != b->channels || a->depth != b->depth) {
        CHECK(0, "%s: %dx%d x%d %d-bit, want %dx%d x%d %d-bit", what, b->width, b->height, b->channels, b->depth,
              a->width, a->height, a->channels, a->depth);
        return 0;
    }
    const size_t n = (size_t)a->width * a->height * a->channels;
    size_t bad = 0, first = 0;
    unsigned maxdiff = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned x = img_get(a, i), y = img_get(b, i);
        if (x != y) {
            if (!bad++) first = i;
            unsigned d = x > y ? x - y : y - x;
            if (d > maxdiff) maxdiff = d;
        }
    }
    CHECK(!bad, "%s: %zu of %zu samples differ, first at %zu (%u vs %u), max diff %u", what, bad, n, first,
          bad ? img_get(b, first) : 0, bad ? img_get(a, first) : 0, maxdiff);
    return !bad;
}

/* ---- libpng and libjpeg used directly ---------------------------------------
 * A failure here is a bug in the test: it ends the test. */

static void tpng_error(png_structp png, png_const_charp msg) {
    (void)png;
    fprintf(stderr, "test_image: libpng: %s\n", msg);
    exit(2);
}
static void tpng_write(png_structp png, png_bytep d, size_t n) { mb_put(png_get_io_ptr(png), d, n); }
static void tpng_flush(png_structp png) { (void)png; }

typedef struct png_spec {
    int width, height, bit_depth, colour_type, interlace;
    png_color palette[256];
    int n_palette;
    png_byte trans[256]; /* palette alpha */
    int n_trans;
    png_color_16 trans_colour; /* grey or RGB tRNS */
    int has_trans_colour;
    const unsigned char *icc;
    size_t icc_size;
    const unsigned char *exif;
    size_t exif_size;
} png_spec;

/* rows: PNG-native packed rows (16-bit big-endian, 1/2/4 bits packed). */
static membuf png_encode(const png_spec *s, const unsigned char *rows, size_t row_bytes) {
    membuf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, tpng_error, tpng_error);
    png_infop info = png_create_info_struct(png);
    if (!info) die("libpng");
    png_set_write_fn(png, &out, tpng_write, tpng_flush);
    png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->bit_depth, s->colour_type,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->n_palette) png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->n_trans) png_set_tRNS(png, info, s->trans, s->n_trans, NULL);
    if (s->has_trans_colour) png_set_tRNS(png, info, NULL, 0, &s->trans_colour);
    if (s->icc) png_set_iCCP(png, info, "test profile", PNG_COMPRESSION_TYPE_BASE, s->icc, (png_uint_32)s->icc_size);
    if (s->exif) png_set_eXIf_1(png, info, (png_uint_32)s->exif_size, (png_bytep)s->exif);
    png_bytep *ptrs = malloc((size_t)s->height * sizeof *ptrs);
    if (!ptrs) die("out of memory");
    for (int y = 0; y < s->height; y++) ptrs[y] = (png_bytep)rows + (size_t)y * row_bytes;
    png_write_info(png, info);
    png_write_image(png, ptrs);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(ptrs);
    return out;
}

typedef struct png_reader {
    const unsigned char *data;
    size_t size, at;
} png_reader;
static void tpng_read(png_structp png, png_bytep out, size_t n) {
    png_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->at) tpng_error(png, "read past the end");
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

/* What our PNG output carries: the iCCP profile (copied, NULL if none) and
 * the tEXt Comment (copied, NULL if none); the pixels are skipped. */
static void png_inspect(const membuf *b, unsigned char **icc, size_t *icc_size, char **comment) {
    png_reader r = {b->data, b->size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, tpng_error, tpng_error);
    png_infop info = png_create_info_struct(png);
    if (!info) die("libpng");
    png_set_read_fn(png, &r, tpng_read);
    png_read_info(png, info);
    png_charp name;
    int compression;
    png_bytep profile;
    png_uint_32 len;
    *icc = NULL, *icc_size = 0;
    if (png_get_iCCP(png, info, &name, &compression, &profile, &len)) {
        if (!(*icc = malloc(len))) die("out of memory");
        memcpy(*icc, profile, len);
        *icc_size = len;
    }
    png_textp text;
    int n_text = 0;
    *comment = NULL;
    png_get_text(png, info, &text, &n_text);
    for (int i = 0; i < n_text; i++)
        if (!strcmp(text[i].key, "Comment")) *comment = strdup(text[i].text);
    png_destroy_read_struct(&png, &info, NULL);
}

static void tjpeg_error(j_common_ptr cinfo) {
    char msg[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, msg);
    fprintf(stderr, "test_image: libjpeg: %s\n", msg);
    exit(2);
}
static void tjpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0) tjpeg_error(cinfo);
}

typedef struct jpeg_spec {
    int width, height, components; /* 1 grey, 3 RGB, 4 CMYK */
    J_COLOR_SPACE jpeg_space;        /* JCS_UNKNOWN: libjpeg's default for the input */
    int quality, progressive;
    const jpeg_scan_info *scans;
    int n_scans;
    const unsigned char *app1[2];
    size_t app1_size[2];
    const unsigned char *icc;
    size_t icc_size;
} jpeg_spec;

static membuf jpeg_encode(const jpeg_spec *s, const unsigned char *pixels) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    err.error_exit = tjpeg_error, err.emit_message = tjpeg_message;
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)s->width, c.image_height = (JDIMENSION)s->height;
    c.input_components = s->components;
    c.in_color_space = s->components == 1 ? JCS_GRAYSCALE : s->components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    if (s->jpeg_space != JCS_UNKNOWN) jpeg_set_colorspace(&c, s->jpeg_space);
    jpeg_set_quality(&c, s->quality ? s->quality : 95, TRUE);
    if (s->progressive) jpeg_simple_progression(&c);
    if (s->scans) c.scan_info = s->scans, c.num_scans = s->n_scans;
    jpeg_start_compress(&c, TRUE);
    for (int i = 0; i < 2; i++)
        if (s->app1[i]) jpeg_write_marker(&c, JPEG_APP0 + 1, s->app1[i], (unsigned)s->app1_size[i]);
    if (s->icc) jpeg_write_icc_profile(&c, s->icc, (unsigned)s->icc_size);
    const size_t stride = (size_t)s->width * s->components;
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)pixels + c.next_scanline * stride;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    membuf out = {0};
    mb_put(&out, buf, size);
    free(buf);
    return out;
}

/* libjpeg's own decode (RGB or grey), its ICC profile and COM text. */
typedef struct jpeg_direct {
    unsigned char *pixels;
    int width, height, components;
    unsigned char *icc;
    unsigned icc_size;
    char *comment;
} jpeg_direct;

static jpeg_direct jpeg_decode_direct(const membuf *b) {
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr err;
    jpeg_direct out = {0};
    d.err = jpeg_std_error(&err);
    err.error_exit = tjpeg_error, err.emit_message = tjpeg_message;
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, b->data, (unsigned long)b->size);
    jpeg_save_markers(&d, JPEG_COM, 0xffff);
    jpeg_save_markers(&d, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(&d, TRUE);
    for (jpeg_saved_marker_ptr m = d.marker_list; m; m = m->next)
        if (m->marker == JPEG_COM && !out.comment) {
            if (!(out.comment = malloc(m->data_length + 1))) die("out of memory");
            memcpy(out.comment, m->data, m->data_length);
            out.comment[m->data_length] = '\0';
        }
    if (!jpeg_read_icc_profile(&d, &out.icc, &out.icc_size)) out.icc = NULL;
    d.out_color_space = d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&d);
    out.width = (int)d.output_width, out.height = (int)d.output_height, out.components = d.output_components;
    const size_t stride = (size_t)out.width * out.components;
    if (!(out.pixels = malloc(stride * out.height))) die("out of memory");
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = out.pixels + d.output_scanline * stride;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return out;
}

static void jpeg_direct_free(jpeg_direct *j) {
    free(j->pixels), free(j->icc), free(j->comment);
}

/* ---- PNG chunks and ICC profiles by hand ------------------------------------ */

static uint32_t crc32_png(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void png_chunk(membuf *b, const char *type, const unsigned char *data, size_t n) {
    unsigned char head[8];
    put_be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    mb_put(b, head, 8);
    if (n) mb_put(b, data, n);
    unsigned char *tail = malloc(n + 4);
    if (!tail) die("out of memory");
    memcpy(tail, type, 4);
    if (n) memcpy(tail + 4, data, n);
    unsigned char crc[4];
    put_be32(crc, crc32_png(tail, n + 4));
    free(tail);
    mb_put(b, crc, 4);
}

/* A PNG of IHDR and IEND only, claiming w x h. */
static membuf png_header_only(uint32_t w, uint32_t h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    membuf b = {0};
    mb_put(&b, sig, 8);
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, w), put_be32(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = 2; /* 8-bit RGB */
    png_chunk(&b, "IHDR", ihdr, 13);
    png_chunk(&b, "IEND", NULL, 0);
    return b;
}

/* A minimal ICC profile libpng accepts: header, one tag over seeded bytes.
 * space "RGB ", "GRAY" or "CMYK"; size a multiple of 4, >= 148. */
static unsigned char *make_icc(const char *space, size_t size, unsigned seed) {
    static const unsigned char d50[12] = {0x00, 0x00, 0xf6, 0xd6, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xd3, 0x2d};
    unsigned char *p = calloc(1, size);
    if (!p) die("out of memory");
    put_be32(p, (uint32_t)size);
    memcpy(p + 4, "none", 4);
    p[8] = 2, p[9] = 0x10; /* version 2.1 */
    memcpy(p + 12, "mntr", 4);
    memcpy(p + 16, space, 4);
    memcpy(p + 20, "XYZ ", 4);
    memcpy(p + 36, "acsp", 4);
    memcpy(p + 68, d50, 12);
    put_be32(p + 128, 1);
    memcpy(p + 132, "test", 4);
    put_be32(p + 136, 144), put_be32(p + 140, (uint32_t)(size - 144));
    for (size_t i = 144; i < size; i++) p[i] = (unsigned char)(seed + i * 131 + (i >> 7));
    return p;
}

/* ---- round trips ---------------------------------------------------------- */

static void test_round_trips(void) {
    char what[96];
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            dd_image *src = pattern(37, 23, ch, depth);
            static const struct { dd_format f; const char *name; } fmts[] = {
                {DD_FORMAT_PNG, "PNG"}, {DD_FORMAT_PAM, "PAM"}, {DD_FORMAT_PNM, "PNM"}};
            for (int k = 0; k < 3; k++) {
                /* PNM holds grey and RGB only. */
                if (fmts[k].f == DD_FORMAT_PNM && (ch == 2 || ch == 4)) continue;
                snprintf(what, sizeof what, "%s %d-bit %d channels", fmts[k].name, depth, ch);
                membuf b = save_ok(what, src, fmts[k].f, 0, NULL);
                dd_image *back = load_ok(what, b.data, b.size);
                if (back) {
                    same_pixels(what, src, back);
                    CHECK(dd_image_format(back) == fmts[k].f, "%s: format %d", what, (int)dd_image_format(back));
                }
                if (fmts[k].f == DD_FORMAT_PNM) {
                    const char *magic = ch == 1 ? "P5" : "P6";
                    CHECK(b.size > 2 && !memcmp(b.data, magic, 2), "%s: not %s", what, magic);
                }
                dd_image_free(back);
                free(b.data);
            }
            /* PNM drops alpha: grey+alpha becomes P5, RGBA P6, colour exact. */
            if (ch == 2 || ch == 4) {
                snprintf(what, sizeof what, "PNM %d-bit from %d channels", depth, ch);
                membuf b = save_ok(what, src, DD_FORMAT_PNM, 0, NULL);
                dd_image *back = load_ok(what, b.data, b.size);
                if (back) {
                    CHECK(back->channels == ch - 1 && back->depth == depth, "%s: %d channels %d-bit", what,
                          back->channels, back->depth);
                    const size_t n = (size_t)src->width * src->height;
                    size_t bad = 0;
                    for (size_t i = 0; i < n && back->channels == ch - 1; i++)
                        for (int c = 0; c < ch - 1; c++)
                            bad += img_get(back, i * (size_t)(ch - 1) + (size_t)c) != img_get(src, i * (size_t)ch + (size_t)c);
                    CHECK(!bad, "%s: %zu colour samples differ", what, bad);
                }
                dd_image_free(back);
                free(b.data);
            }
            dd_image_free(src);
        }
}

/* Smooth colour and grey through JPEG at quality 95. */
static void test_jpeg_round_trip(void) {
    for (int ch = 1; ch <= 4; ch++) {
        for (int depth = 8; depth <= 16; depth += 8) {
            dd_image *src;
            if (img_new(64, 48, ch, depth, 0, &src)) die("img_new");
            const unsigned top = depth == 16 ? 65535 : 255;
            for (int y = 0; y < 48; y++)
                for (int x = 0; x < 64; x++)
                    for (int c = 0; c < ch; c++) {
                        double v = 0.5 + 0.35 * sin(x * 0.09 + c) * cos(y * 0.07 - c);
                        img_set(src, ((size_t)y * 64 + x) * ch + c, (unsigned)(v * top + 0.5));
                    }
            char what[64];
            snprintf(what, sizeof what, "JPEG q95 %d-bit %d channels", depth, ch);
            membuf b = save_ok(what, src, DD_FORMAT_JPEG, 95, NULL);
            dd_image *back = load_ok(what, b.data, b.size);
            const int colour = ch >= 3 ? 3 : 1;
            if (back) {
                CHECK(back->channels == colour && back->depth == 8 && back->width == 64 && back->height == 48,
                      "%s: came back %dx%d x%d %d-bit", what, back->width, back->height, back->channels, back->depth);
                CHECK(dd_image_format(back) == DD_FORMAT_JPEG, "%s: format", what);
            }
            if (back && back->channels == colour) {
                double sum = 0, worst = 0;
                for (size_t i = 0; i < (size_t)64 * 48; i++)
                    for (int c = 0; c < colour; c++) {
                        double want = img_get(src, i * ch + c) * 255.0 / top;
                        double d = fabs(img_get(back, i * colour + c) - want);
                        sum += d;
                        if (d > worst) worst = d;
                    }
                const double mae = sum / (64.0 * 48 * colour);
                CHECK(mae < 2.0, "%s: mean abs error %.3f levels (max %.0f), want < 2", what, mae, worst);
            }
            dd_image_free(back);
            dd_image_free(src);
            free(b.data);
        }
    }
    dd_image *im = pattern(8, 8, 3, 8);
    unsigned char *data = (unsigned char *)1;
    size_t size = 1;
    CHECK(dd_image_save_memory(im, DD_FORMAT_JPEG, 0, NULL, &data, &size) == DD_ERR_INVALID_ARG &&
              strstr(dd_last_error(), "quality") && !data && !size,
          "JPEG quality 0: %s", dd_last_error());
    CHECK(dd_image_save_memory(im, DD_FORMAT_JPEG, 101, NULL, &data, &size) == DD_ERR_INVALID_ARG,
          "JPEG quality 101 accepted");
    CHECK(dd_image_save_memory(im, (dd_format)99, 90, NULL, &data, &size) == DD_ERR_INVALID_ARG,
          "format 99 accepted");
    CHECK(dd_image_save_memory(im, DD_FORMAT_UNKNOWN, 90, NULL, &data, &size) == DD_ERR_INVALID_ARG,
          "DD_FORMAT_UNKNOWN accepted");
    dd_image_free(im);
    dd_image_free(NULL);
}

/* ---- PNG: every colour type and bit depth ----------------------------------- */

static void pack_sample(unsigned char *row, int bit_depth, size_t i, unsigned v) {
    if (bit_depth == 16) put_be16(row + 2 * i, v);
    else if (bit_depth == 8) row[i] = (unsigned char)v;
    else {
        const size_t per_byte = (size_t)(8 / bit_depth);
        const int shift = 8 - bit_depth * (int)(i % per_byte + 1);
        row[i / per_byte] |= (unsigned char)(v << shift);
    }
}

static void test_png_kinds(void) {
    static const struct { int type, depth; } kinds[] = {
        {PNG_COLOR_TYPE_GRAY, 1}, {PNG_COLOR_TYPE_GRAY, 2}, {PNG_COLOR_TYPE_GRAY, 4}, {PNG_COLOR_TYPE_GRAY, 8},
        {PNG_COLOR_TYPE_GRAY, 16}, {PNG_COLOR_TYPE_GRAY_ALPHA, 8}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16},
        {PNG_COLOR_TYPE_RGB, 8}, {PNG_COLOR_TYPE_RGB, 16}, {PNG_COLOR_TYPE_RGB_ALPHA, 8},
        {PNG_COLOR_TYPE_RGB_ALPHA, 16}, {PNG_COLOR_TYPE_PALETTE, 1}, {PNG_COLOR_TYPE_PALETTE, 2},
        {PNG_COLOR_TYPE_PALETTE, 4}, {PNG_COLOR_TYPE_PALETTE, 8}};
    const int w = 13, h = 7; /* odd: partial bytes and uneven Adam7 passes */
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (int interlace = 0; interlace <= 1; interlace++)
            for (int trns = 0; trns <= 1; trns++) {
                const int type = kinds[k].type, bd = kinds[k].depth;
                if (trns && (type & PNG_COLOR_MASK_ALPHA)) continue;
                const int in_ch = type == PNG_COLOR_TYPE_GRAY ? 1 : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                : type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 1;
                const unsigned top = (1u << bd) - 1;
                png_spec s = {.width = w, .height = h, .bit_depth = bd, .colour_type = type, .interlace = interlace};
                /* Source values (palette indices for palette images). */
                unsigned src[13 * 7 * 4];
                const unsigned n_colours = type == PNG_COLOR_TYPE_PALETTE ? (bd == 8 ? 200 : top + 1) : top + 1;
                for (int i = 0; i < w * h * in_ch; i++) src[i] = i % 5 == 0 ? n_colours - 1 : rnd(n_colours);
                if (type == PNG_COLOR_TYPE_PALETTE) {
                    s.n_palette = (int)n_colours;
                    for (unsigned i = 0; i < n_colours; i++)
                        s.palette[i] = (png_color){(png_byte)(i * 37), (png_byte)(i * 91 + 5), (png_byte)(255 - i)};
                    if (trns) {
                        s.n_trans = (int)(n_colours > 2 ? n_colours - 1 : 1); /* the last entry stays opaque */
                        for (int i = 0; i < s.n_trans; i++) s.trans[i] = (png_byte)(i * 53 + 7);
                    }
                } else if (trns) {
                    /* The tRNS colour is pixel 1's; pixel 5 gets it too. */
                    s.has_trans_colour = 1;
                    for (int c = 0; c < in_ch; c++) src[5 * in_ch + c] = src[1 * in_ch + c];
                    if (in_ch == 1) s.trans_colour.gray = (png_uint_16)src[1];
                    else s.trans_colour.red = (png_uint_16)src[3], s.trans_colour.green = (png_uint_16)src[4],
                         s.trans_colour.blue = (png_uint_16)src[5];
                }
                const size_t row_bytes = ((size_t)w * in_ch * bd + 7) / 8;
                unsigned char *rows = calloc(h, row_bytes);
                if (!rows) die("out of memory");
                for (int y = 0; y < h; y++)
                    for (int i = 0; i < w * in_ch; i++) pack_sample(rows + y * row_bytes, bd, (size_t)i, src[y * w * in_ch + i]);
                membuf b = png_encode(&s, rows, row_bytes);
                free(rows);

                /* What it must decode to. */
                const int palette = type == PNG_COLOR_TYPE_PALETTE;
                const int colour = palette || in_ch >= 3 ? 3 : 1;
                const int alpha = (type & PNG_COLOR_MASK_ALPHA) || trns;
                const int out_ch = colour + alpha, out_depth = bd == 16 ? 16 : 8;
                const unsigned out_top = out_depth == 16 ? 65535 : 255;
                dd_image *want;
                if (img_new(w, h, out_ch, out_depth, 0, &want)) die("img_new");
                for (int p = 0; p < w * h; p++) {
                    unsigned v[4];
                    if (palette) {
                        const unsigned idx = src[p];
                        v[0] = s.palette[idx].red, v[1] = s.palette[idx].green, v[2] = s.palette[idx].blue;
                        v[3] = (int)idx < s.n_trans ? s.trans[idx] : 255;
                    } else {
                        for (int c = 0; c < in_ch; c++) v[c] = src[p * in_ch + c] * out_top / top;
                        if (trns) {
                            int match = 1;
                            for (int c = 0; c < in_ch; c++) match &= src[p * in_ch + c] == src[in_ch + c];
                            v[in_ch] = match ? 0 : out_top;
                        }
                    }
                    for (int c = 0; c < out_ch; c++) img_set(want, (size_t)p * out_ch + c, v[c]);
                }
                char what[96];
                snprintf(what, sizeof what, "PNG type %d %d-bit%s%s", type, bd, interlace ? " interlaced" : "",
                         trns ? " tRNS" : "");
                dd_image *got = load_ok(what, b.data, b.size);
                if (got) same_pixels(what, want, got);
                dd_image_free(got);
                dd_image_free(want);
                free(b.data);
            }
}

/* ---- JPEG: progressive, grey, CMYK ---------------------------------------- */

static unsigned char *smooth_pixels(int w, int h, int ch) {
    unsigned char *p = malloc((size_t)w * h * ch);
    if (!p) die("out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                p[((size_t)y * w + x) * ch + c] = (unsigned char)(128 + 100 * sin(x * 0.13 + 2 * c) * cos(y * 0.11 + c));
    return p;
}

static void test_jpeg_against_libjpeg(void) {
    for (int progressive = 0; progressive <= 1; progressive++)
        for (int ch = 1; ch <= 3; ch += 2) {
            unsigned char *px = smooth_pixels(61, 37, ch);
            jpeg_spec s = {.width = 61, .height = 37, .components = ch, .quality = 90, .progressive = progressive};
            membuf b = jpeg_encode(&s, px);
            jpeg_direct ref = jpeg_decode_direct(&b);
            char what[64];
            snprintf(what, sizeof what, "%s JPEG, %d channels", progressive ? "progressive" : "baseline", ch);
            dd_image *im = load_ok(what, b.data, b.size);
            if (im) {
                CHECK(im->channels == ch && im->depth == 8 && im->width == 61 && im->height == 37,
                      "%s: %dx%d x%d", what, im->width, im->height, im->channels);
                if (im->channels == ch && im->width == 61 && im->height == 37) {
                    size_t bad = 0;
                    for (size_t i = 0; i < (size_t)61 * 37 * ch; i++) bad += im->samples[i] != ref.pixels[i];
                    CHECK(!bad, "%s: %zu samples differ from libjpeg's own decode", what, bad);
                }
            }
            dd_image_free(im);
            jpeg_direct_free(&ref);
            free(b.data);
            free(px);
        }
}

/* Mean of channel c over block (bx, by) of side bs, 3 pixels in from its
 * edges (away from the ringing). */
static double block_mean(const dd_image *im, int bx, int by, int bs, int c) {
    double sum = 0;
    int n = 0;
    for (int y = by * bs + 3; y < (by + 1) * bs - 3; y++)
        for (int x = bx * bs + 3; x < (bx + 1) * bs - 3; x++, n++)
            sum += img_get(im, ((size_t)y * im->width + x) * im->channels + c);
    return sum / n;
}

static void test_jpeg_cmyk(void) {
    /* Adobe's convention, which libjpeg writes with its Adobe marker: stored
     * value = 255 - ink. So stored (r, g, b, 255) is RGB (r, g, b), and
     * stored K 128 halves everything. */
    static const unsigned char stored[4][4] = {{255, 0, 0, 255}, {0, 255, 255, 255}, {255, 255, 255, 128}, {255, 128, 0, 255}};
    static const double want[4][3] = {{255, 0, 0}, {0, 255, 255}, {128, 128, 128}, {255, 128, 0}};
    const int bs = 16, w = 64, h = 16;
    unsigned char *px = malloc((size_t)w * h * 4);
    if (!px) die("out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memcpy(px + ((size_t)y * w + x) * 4, stored[x / bs], 4);
    for (int ycck = 0; ycck <= 1; ycck++) {
        unsigned char *icc = make_icc("CMYK", 200, 3);
        jpeg_spec s = {.width = w, .height = h, .components = 4, .jpeg_space = ycck ? JCS_YCCK : JCS_CMYK,
                       .quality = 95, .icc = icc, .icc_size = 200};
        membuf b = jpeg_encode(&s, px);
        const char *what = ycck ? "YCCK JPEG" : "CMYK JPEG";
        dd_image *im = load_ok(what, b.data, b.size);
        if (im) {
            CHECK(im->channels == 3 && im->depth == 8 && im->width == w && im->height == h, "%s: %dx%d x%d", what,
                  im->width, im->height, im->channels);
            CHECK(!im->icc, "%s: the CMYK profile was kept for RGB pixels", what);
            for (int k = 0; k < 4 && im->channels == 3; k++)
                for (int c = 0; c < 3; c++) {
                    char label[64];
                    snprintf(label, sizeof label, "%s block %d channel %d", what, k, c);
                    check_close(label, block_mean(im, k, 0, bs, c), want[k][c], 4);
                }
        }
        dd_image_free(im);
        free(b.data);
        free(icc);
    }
    free(px);
}

/* More scans than JPEG_MAX_SCANS: one component, DC, then each AC
 * coefficient alone with nine successive-approximation refinements. */
static void test_jpeg_scan_limit(void) {
    jpeg_scan_info *scans = calloc(1 + 63 * 10, sizeof *scans);
    if (!scans) die("out of memory");
    int n = 0;
    scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .component_index = {0}, .Ss = 0, .Se = 0, .Ah = 0, .Al = 0};
    for (int k = 1; k <= 63; k++) {
        scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = k, .Se = k, .Ah = 0, .Al = 9};
        for (int a = 9; a >= 1; a--) scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = k, .Se = k, .Ah = a, .Al = a - 1};
    }
    unsigned char *px = smooth_pixels(16, 16, 1);
    jpeg_spec s = {.width = 16, .height = 16, .components = 1, .quality = 90, .scans = scans, .n_scans = n};
    membuf b = jpeg_encode(&s, px);
    expect_fail("JPEG with 631 scans", b.data, b.size, 0, DD_ERR_LIMIT, "scans");
    free(b.data);
    free(px);
    free(scans);
}

/* ---- EXIF orientation ---------------------------------------------------- */

static void put16(unsigned char *p, int big, unsigned v) {
    if (big) put_be16(p, v);
    else p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, int big, uint32_t v) {
    if (big) put_be32(p, v);
    else for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A TIFF structure: IFD0 with Make, then Orientation (a SHORT), then an
 * empty next-IFD link. 46 bytes. */
static size_t make_tiff(unsigned char *t, int big, unsigned orientation) {
    memset(t, 0, 46);
    memcpy(t, big ? "MM" : "II", 2);
    put16(t + 2, big, 42);
    put32(t + 4, big, 8);
    put16(t + 8, big, 3);
    put16(t + 10, big, 0x010f), put16(t + 12, big, 2), put32(t + 14, big, 4), memcpy(t + 18, "Cam", 4);
    put16(t + 22, big, 0x0112), put16(t + 24, big, 3), put32(t + 26, big, 1), put16(t + 30, big, orientation);
    put16(t + 34, big, 0x011a), put16(t + 36, big, 4), put32(t + 38, big, 1), put32(t + 42, big, 72);
    return 46;
}

/* Where stored pixel (x, y) of a w x h image is seen for each orientation
 * (EXIF 2.3, table of tag 274, written the forward way). */
static void shown_at(int o, int w, int h, int x, int y, int *sx, int *sy) {
    switch (o) {
    case 1: *sx = x, *sy = y; break;
    case 2: *sx = w - 1 - x, *sy = y; break;
    case 3: *sx = w - 1 - x, *sy = h - 1 - y; break;
    case 4: *sx = x, *sy = h - 1 - y; break;
    case 5: *sx = y, *sy = x; break;
    case 6: *sx = h - 1 - y, *sy = x; break;
    case 7: *sx = h - 1 - y, *sy = w - 1 - x; break;
    default: *sx = y, *sy = w - 1 - x; break;
    }
}

static const unsigned char block_colour[2][3][3] = {
    {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}},
    {{255, 255, 0}, {0, 255, 255}, {255, 255, 255}}};

static void test_exif_jpeg(void) {
    const int bs = 16, w = 48, h = 32;
    unsigned char px[48 * 32 * 3];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memcpy(px + (y * w + x) * 3, block_colour[y / bs][x / bs], 3);
    for (int big = 0; big <= 1; big++)
        for (int o = 1; o <= 8; o++) {
            unsigned char app1[6 + 46], xmp[40] = "http://ns.adobe.com/xap/1.0/";
            memcpy(app1, "Exif\0\0", 6);
            make_tiff(app1 + 6, big, (unsigned)o);
            /* An XMP APP1 first: the EXIF one is found after it. */
            jpeg_spec s = {.width = w, .height = h, .components = 3, .quality = 95,
                           .app1 = {o == 3 ? xmp : app1, o == 3 ? app1 : NULL},
                           .app1_size = {o == 3 ? sizeof xmp : sizeof app1, sizeof app1}};
            membuf b = jpeg_encode(&s, px);
            char what[64];
            snprintf(what, sizeof what, "JPEG EXIF orientation %d (%s)", o, big ? "MM" : "II");
            dd_image *im = load_ok(what, b.data, b.size);
            const int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
            if (im && (im->width != ow || im->height != oh || im->channels != 3)) {
                CHECK(0, "%s: %dx%d x%d, want %dx%d x3", what, im->width, im->height, im->channels, ow, oh);
            } else if (im) {
                for (int by = 0; by < 2; by++)
                    for (int bx = 0; bx < 3; bx++) {
                        int sx, sy;
                        shown_at(o, 3, 2, bx, by, &sx, &sy);
                        for (int c = 0; c < 3; c++) {
                            const double got = block_mean(im, sx, sy, bs, c);
                            CHECK(fabs(got - block_colour[by][bx][c]) < 12,
                                  "%s: stored block (%d,%d) shown at (%d,%d): channel %d %.1f, want %d", what, bx, by,
                                  sx, sy, c, got, block_colour[by][bx][c]);
                        }
                    }
            }
            dd_image_free(im);
            free(b.data);
        }

    /* Malformed EXIF, each claiming orientation 6: ignored, the image
     * decodes as stored. */
    for (int k = 0; k < 10; k++) {
        unsigned char app1[6 + 46 + 8];
        size_t n = 6 + make_tiff(app1 + 6, k & 1, 6);
        memcpy(app1, "Exif\0\0", 6);
        unsigned char *t = app1 + 6;
        const char *what = "";
        switch (k) {
        case 0: put32(t + 4, 0, 0xfffffff0u); what = "IFD offset far past the end"; break;
        case 1: put32(t + 4, 1, 45); what = "IFD offset at the last byte"; break;
        case 2: put16(t + 8, 0, 0xffff); what = "entry count past the end"; break;
        case 3: put16(t + 24, 1, 4); what = "orientation as a LONG"; break;
        case 4: put32(t + 26, 0, 2); what = "orientation count 2"; break;
        case 5: put16(t + 30, 1, 9); what = "orientation 9"; break;
        case 6: put16(t + 2, 0, 43); what = "TIFF magic 43"; break;
        case 7: memcpy(t, "IM", 2); what = "byte order IM"; break;
        case 8: n = 6 + 7; what = "TIFF header cut short"; break;
        case 9: n = 6 + 33; what = "segment ends inside the orientation entry"; break;
        }
        jpeg_spec s = {.width = w, .height = h, .components = 3, .quality = 95, .app1 = {app1}, .app1_size = {n}};
        membuf b = jpeg_encode(&s, px);
        dd_image *im = load_ok(what, b.data, b.size);
        if (im) {
            CHECK(im->width == w && im->height == h, "EXIF %s: turned to %dx%d", what, im->width, im->height);
            if (im->width == w && im->height == h)
                CHECK(block_mean(im, 0, 0, bs, 0) > 200 && block_mean(im, 0, 0, bs, 1) < 50,
                      "EXIF %s: top-left block not red", what);
        }
        dd_image_free(im);
        free(b.data);
    }

    /* Every prefix and many mutations of a TIFF structure, in buffers of
     * exactly their size: always 1..8, never an overread. */
    unsigned char tiff[46];
    for (int big = 0; big <= 1; big++) {
        const size_t n = make_tiff(tiff, big, 6);
        CHECK(img_exif_orientation(tiff, n) == 6, "TIFF orientation 6 (%s) not read", big ? "MM" : "II");
        for (size_t len = 0; len < n; len++) {
            unsigned char *p = malloc(len ? len : 1);
            memcpy(p, tiff, len);
            const int o = img_exif_orientation(p, len);
            /* The whole IFD must fit: any cut gives 1. */
            CHECK(o == 1, "TIFF prefix of %zu bytes: orientation %d", len, o);
            free(p);
        }
        for (int trial = 0; trial < 3000; trial++) {
            unsigned char *p = malloc(n);
            memcpy(p, tiff, n);
            for (int flips = 1 + (int)rnd(3); flips; flips--) p[rnd((unsigned)n)] = (unsigned char)rnd(256);
            const int o = img_exif_orientation(p, n);
            CHECK(o >= 1 && o <= 8, "mutated TIFF: orientation %d", o);
            free(p);
        }
    }
}

static void test_exif_png(void) {
    /* 3x2 RGB, six distinct pixels, through eXIf. */
    for (int o = 1; o <= 8; o++) {
        unsigned char tiff[46];
        const size_t n = make_tiff(tiff, o & 1, (unsigned)o);
        png_spec s = {.width = 3, .height = 2, .bit_depth = 8, .colour_type = PNG_COLOR_TYPE_RGB, .exif = tiff,
                      .exif_size = n};
        unsigned char rows[2 * 9];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++) memcpy(rows + y * 9 + x * 3, block_colour[y][x], 3);
        membuf b = png_encode(&s, rows, 9);
        char what[48];
        snprintf(what, sizeof what, "PNG eXIf orientation %d", o);
        dd_image *im = load_ok(what, b.data, b.size);
        const int ow = o >= 5 ? 2 : 3, oh = o >= 5 ? 3 : 2;
        if (im && (im->width != ow || im->height != oh || im->channels != 3)) {
            CHECK(0, "%s: %dx%d x%d, want %dx%d x3", what, im->width, im->height, im->channels, ow, oh);
        } else if (im) {
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 3; x++) {
                    int sx, sy;
                    shown_at(o, 3, 2, x, y, &sx, &sy);
                    CHECK(!memcmp(im->samples + (sy * ow + sx) * 3, block_colour[y][x], 3),
                          "%s: stored (%d,%d) not shown at (%d,%d)", what, x, y, sx, sy);
                }
        }
        dd_image_free(im);
        free(b.data);
    }
}

/* ---- ICC profiles and comments ----------------------------------------------- */

static void check_icc_kept(const char *what, const dd_image *im, const unsigned char *icc, size_t icc_size) {
    CHECK(im->icc && im->icc_size == icc_size && !memcmp(im->icc, icc, icc_size), "%s: profile not kept on load", what);
    char label[96];
    membuf png = save_ok(what, im, DD_FORMAT_PNG, 0, NULL);
    unsigned char *got;
    size_t got_size;
    char *comment;
    png_inspect(&png, &got, &got_size, &comment);
    CHECK(got && got_size == icc_size && !memcmp(got, icc, icc_size), "%s -> PNG: iCCP %zu bytes, want %zu identical",
          what, got_size, icc_size);
    free(got), free(comment), free(png.data);

    snprintf(label, sizeof label, "%s -> JPEG", what);
    membuf jpg = save_ok(label, im, DD_FORMAT_JPEG, 90, NULL);
    jpeg_direct j = jpeg_decode_direct(&jpg);
    CHECK(j.icc && j.icc_size == icc_size && !memcmp(j.icc, icc, icc_size), "%s: ICC %u bytes, want %zu identical",
          label, j.icc_size, icc_size);
    /* And back through our own reader. */
    dd_image *again = load_ok(label, jpg.data, jpg.size);
    CHECK(again && again->icc_size == icc_size && !memcmp(again->icc, icc, icc_size), "%s: reloaded profile differs", label);
    dd_image_free(again);
    jpeg_direct_free(&j);
    free(jpg.data);
}

static void test_icc(void) {
    /* 70000 bytes spans two APP2 markers. */
    static const size_t sizes[] = {164, 70000};
    for (int k = 0; k < 2; k++) {
        unsigned char *icc = make_icc("RGB ", sizes[k], (unsigned)k);
        char what[64];
        unsigned char rows[5 * 4 * 3];
        for (size_t i = 0; i < sizeof rows; i++) rows[i] = (unsigned char)(i * 7);
        png_spec s = {.width = 5, .height = 4, .bit_depth = 8, .colour_type = PNG_COLOR_TYPE_RGB, .icc = icc,
                      .icc_size = sizes[k]};
        membuf b = png_encode(&s, rows, 15);
        snprintf(what, sizeof what, "PNG with a %zu-byte iCCP", sizes[k]);
        dd_image *im = load_ok(what, b.data, b.size);
        if (im) check_icc_kept(what, im, icc, sizes[k]);
        dd_image_free(im);
        free(b.data);

        unsigned char *px = smooth_pixels(24, 16, 3);
        jpeg_spec js = {.width = 24, .height = 16, .components = 3, .quality = 90, .icc = icc, .icc_size = sizes[k]};
        b = jpeg_encode(&js, px);
        snprintf(what, sizeof what, "JPEG with a %zu-byte ICC profile", sizes[k]);
        im = load_ok(what, b.data, b.size);
        if (im) check_icc_kept(what, im, icc, sizes[k]);
        dd_image_free(im);
        free(b.data);
        free(px);
        free(icc);
    }

    /* Grey keeps a GRAY profile and drops an RGB one. */
    for (int rgb = 0; rgb <= 1; rgb++) {
        unsigned char *icc = make_icc(rgb ? "RGB " : "GRAY", 200, 9);
        unsigned char *px = smooth_pixels(16, 16, 1);
        jpeg_spec js = {.width = 16, .height = 16, .components = 1, .quality = 90, .icc = icc, .icc_size = 200};
        membuf b = jpeg_encode(&js, px);
        dd_image *im = load_ok("grey JPEG with a profile", b.data, b.size);
        if (im && rgb) CHECK(!im->icc, "grey JPEG kept an RGB profile");
        if (im && !rgb) check_icc_kept("grey JPEG with a GRAY profile", im, icc, 200);
        dd_image_free(im);
        free(b.data);
        free(px);
        free(icc);
    }

    /* ICC markers out of sequence: the profile is dropped, the image loads. */
    unsigned char *px = smooth_pixels(16, 16, 3);
    unsigned char *icc = make_icc("RGB ", 164, 1);
    jpeg_spec js = {.width = 16, .height = 16, .components = 3, .quality = 90, .icc = icc, .icc_size = 164};
    membuf b = jpeg_encode(&js, px);
    for (size_t i = 0; i + 14 < b.size; i++)
        if (b.data[i] == 0xff && b.data[i + 1] == 0xe2 && !memcmp(b.data + i + 4, "ICC_PROFILE", 12)) {
            b.data[i + 16] = 2; /* sequence number 2 of 1 */
            break;
        }
    dd_image *im = load_ok("JPEG with a bad ICC marker", b.data, b.size);
    CHECK(!im || !im->icc, "a bad ICC marker sequence gave a profile");
    dd_image_free(im);
    free(b.data);
    free(icc);
    free(px);
}

static void test_comments(void) {
    const char *comment = "dreamt by deepdream: mixed3, 4 octaves";
    dd_image *im = pattern(9, 5, 3, 8);

    membuf png = save_ok("PNG comment", im, DD_FORMAT_PNG, 0, comment);
    unsigned char *icc;
    size_t icc_size;
    char *got;
    png_inspect(&png, &icc, &icc_size, &got);
    CHECK(got && !strcmp(got, comment), "PNG tEXt Comment: '%s'", got ? got : "(none)");
    CHECK(!icc, "PNG: a profile from nowhere");
    free(got), free(icc), free(png.data);

    membuf jpg = save_ok("JPEG comment", im, DD_FORMAT_JPEG, 90, comment);
    jpeg_direct j = jpeg_decode_direct(&jpg);
    CHECK(j.comment && !strcmp(j.comment, comment), "JPEG COM: '%s'", j.comment ? j.comment : "(none)");
    jpeg_direct_free(&j);
    free(jpg.data);

    /* A newline in the comment would end the comment line early. */
    for (int pam = 0; pam <= 1; pam++) {
        membuf b = save_ok("PNM comment", im, pam ? DD_FORMAT_PAM : DD_FORMAT_PNM, 0, "two\nlines");
        CHECK(b.size > 20 && memmem(b.data, 40, "\n# two lines\n", 13), "%s: comment line missing", pam ? "PAM" : "PNM");
        dd_image *back = load_ok("PNM with a comment", b.data, b.size);
        if (back) same_pixels("PNM with a comment", im, back);
        dd_image_free(back);
        free(b.data);
    }
    dd_image_free(im);
}

/* ---- PNM reading -------------------------------------------------------- */

static membuf bytes(const char *head, const unsigned char *data, size_t n) {
    membuf b = {0};
    mb_put(&b, head, strlen(head));
    if (n) mb_put(&b, data, n);
    return b;
}

static void test_pnm_reading(void) {
    /* Other maxvals scale to the full range. */
    const unsigned char v15[4] = {0, 7, 15, 8};
    membuf b = bytes("P5\n# comment\n2 2\n15\n", v15, 4);
    dd_image *im = load_ok("P5 maxval 15", b.data, b.size);
    if (im) {
        CHECK(im->depth == 8 && im->channels == 1, "P5 maxval 15: %d-bit x%d", im->depth, im->channels);
        for (int i = 0; i < 4; i++)
            CHECK(img_get(im, (size_t)i) == (unsigned)(v15[i] * 17), "P5 maxval 15: sample %d = %u", i, img_get(im, (size_t)i));
    }
    dd_image_free(im), free(b.data);

    const unsigned char v1000[6] = {0x01, 0xf4, 0x03, 0xe8, 0x00, 0x01}; /* 500, 1000, 1 */
    b = bytes("P6 1 1 1000\n", v1000, 6);
    im = load_ok("P6 maxval 1000", b.data, b.size);
    if (im) {
        CHECK(im->depth == 16 && im->channels == 3, "P6 maxval 1000: %d-bit x%d", im->depth, im->channels);
        const unsigned want[3] = {32768, 65535, 66};
        for (int i = 0; i < 3; i++)
            CHECK(img_get(im, (size_t)i) == want[i], "P6 maxval 1000: sample %d = %u, want %u", i, img_get(im, (size_t)i), want[i]);
    }
    dd_image_free(im), free(b.data);

    const unsigned char bw[4] = {0, 1, 1, 0};
    b = bytes("P7\nWIDTH 2\nHEIGHT 2\nDEPTH 1\nMAXVAL 1\nTUPLTYPE BLACKANDWHITE\nENDHDR\n", bw, 4);
    im = load_ok("PAM BLACKANDWHITE", b.data, b.size);
    if (im) CHECK(im->channels == 1 && img_get(im, 1) == 255 && img_get(im, 0) == 0, "PAM BLACKANDWHITE: wrong pixels");
    dd_image_free(im), free(b.data);
}

/* ---- hostile input ------------------------------------------------------- */

static void every_prefix(const char *what, const membuf *full) {
    size_t bad_status = 0, no_message = 0, first = 0;
    for (size_t n = 0; n < full->size; n++) {
        dd_image *im = NULL;
        dd_status st = load_exact(full->data, n, 0, &im);
        if (st != DD_ERR_CORRUPT || im) {
            if (!bad_status++) first = n;
            dd_image_free(im);
        } else if (!dd_last_error()[0]) {
            no_message++;
        }
    }
    CHECK(!bad_status, "%s: %zu of %zu prefixes not DD_ERR_CORRUPT, first of %zu bytes", what, bad_status,
          full->size, first);
    CHECK(!no_message, "%s: %zu prefixes failed without a message", what, no_message);
    dd_image *im = load_ok(what, full->data, full->size);
    dd_image_free(im);
}

/* The offset of the first marker 0xff code before the scan, or 0. */
static size_t find_marker(const membuf *b, int code) {
    size_t at = 2;
    while (at + 4 <= b->size && b->data[at] == 0xff) {
        if (b->data[at + 1] == code) return at;
        if (b->data[at + 1] == 0xda) return 0;
        at += 2 + ((size_t)b->data[at + 2] << 8 | b->data[at + 3]);
    }
    return 0;
}

static void test_truncation(void) {
    unsigned char *icc = make_icc("RGB ", 164, 5);
    unsigned char tiff[46];
    make_tiff(tiff, 1, 6);
    unsigned char rows[6 * 5 * 4];
    for (size_t i = 0; i < sizeof rows; i++) rows[i] = (unsigned char)rnd(256);
    png_spec s = {.width = 6, .height = 5, .bit_depth = 8, .colour_type = PNG_COLOR_TYPE_RGB_ALPHA, .interlace = 1,
                  .icc = icc, .icc_size = 164, .exif = tiff, .exif_size = 46};
    membuf png = png_encode(&s, rows, 24);
    every_prefix("PNG prefixes", &png);
    expect_fail("PNG cut before IEND", png.data, png.size - 12, 0, DD_ERR_CORRUPT, "truncated");

    /* Bad CRCs: IHDR (critical) and iCCP (ancillary). */
    membuf bad = bytes("", png.data, png.size);
    bad.data[8 + 8 + 13] ^= 1;
    expect_fail("PNG IHDR CRC", bad.data, bad.size, 0, DD_ERR_CORRUPT, "CRC");
    memcpy(bad.data, png.data, png.size);
    unsigned char *iccp = memmem(bad.data, bad.size, "iCCP", 4);
    if (iccp) {
        const size_t len = (size_t)iccp[-4] << 24 | (size_t)iccp[-3] << 16 | (size_t)iccp[-2] << 8 | iccp[-1];
        iccp[4 + len] ^= 0x80;
        expect_fail("PNG iCCP CRC", bad.data, bad.size, 0, DD_ERR_CORRUPT, "CRC");
    }
    free(bad.data);
    free(png.data);
    /* IHDR claims more rows than IDAT holds (CRC fixed). */
    s.interlace = 0, s.icc = NULL, s.exif = NULL;
    png = png_encode(&s, rows, 24);
    put_be32(png.data + 16 + 4, 9);
    put_be32(png.data + 8 + 8 + 13, crc32_png(png.data + 12, 17));
    expect_fail("PNG with too little image data", png.data, png.size, 0, DD_ERR_CORRUPT, "image data");
    free(png.data);

    unsigned char *px = smooth_pixels(24, 16, 3);
    unsigned char app1[6 + 46];
    memcpy(app1, "Exif\0\0", 6);
    make_tiff(app1 + 6, 0, 6);
    for (int progressive = 0; progressive <= 1; progressive++) {
        jpeg_spec js = {.width = 24, .height = 16, .components = 3, .quality = 80, .progressive = progressive,
                        .app1 = {app1}, .app1_size = {sizeof app1}, .icc = icc, .icc_size = 164};
        membuf jpg = jpeg_encode(&js, px);
        every_prefix(progressive ? "progressive JPEG prefixes" : "JPEG prefixes", &jpg);
        expect_fail("JPEG without EOI", jpg.data, jpg.size - 2, 0, DD_ERR_CORRUPT, "premature end");
        free(jpg.data);
    }
    jpeg_spec js = {.width = 24, .height = 16, .components = 3, .quality = 80};
    membuf jpg = jpeg_encode(&js, px);
    membuf mod = bytes("", jpg.data, jpg.size);
    const size_t dht = find_marker(&jpg, 0xc4);
    CHECK(dht, "no DHT in our JPEG");
    if (dht) {
        memset(mod.data + dht + 5, 0xff, 16); /* 4080 codes */
        expect_fail("JPEG Huffman counts over 256", mod.data, mod.size, 0, DD_ERR_CORRUPT, "Huffman");
        memcpy(mod.data, jpg.data, jpg.size);
        /* Same total, but three codes of length 1: no such prefix code. */
        int k = 15;
        while (k > 0 && mod.data[dht + 5 + k] < 3) k--;
        mod.data[dht + 5 + k] -= 3;
        mod.data[dht + 5] += 3;
        expect_fail("JPEG Huffman table over-full", mod.data, mod.size, 0, DD_ERR_CORRUPT, "Huffman");
    }
    /* A marker in the middle of the entropy-coded data. */
    memcpy(mod.data, jpg.data, jpg.size);
    mod.data[jpg.size - 40] = 0xff, mod.data[jpg.size - 39] = 0xd3;
    expect_fail("JPEG with a marker mid-scan", mod.data, mod.size, 0, DD_ERR_CORRUPT, "corrupt");
    /* Junk between two markers: a libjpeg warning, so an error. */
    free(mod.data);
    const size_t dqt = find_marker(&jpg, 0xdb);
    mod = bytes("", jpg.data, dqt);
    mb_put(&mod, "\0\0\0", 3);
    mb_put(&mod, jpg.data + dqt, jpg.size - dqt);
    expect_fail("JPEG with extraneous bytes", mod.data, mod.size, 0, DD_ERR_CORRUPT, "extraneous");
    free(mod.data);
    free(jpg.data);
    free(px);
    free(icc);

    dd_image *im = pattern(5, 3, 3, 16);
    for (int f = 0; f < 2; f++) {
        membuf b = save_ok("PNM", im, f ? DD_FORMAT_PAM : DD_FORMAT_PNM, 0, "c");
        every_prefix(f ? "PAM prefixes" : "P6 prefixes", &b);
        expect_fail("PNM missing its last byte", b.data, b.size - 1, 0, DD_ERR_CORRUPT, "ends early");
        free(b.data);
    }
    dd_image_free(im);
}

static void test_bad_headers(void) {
    expect_fail("NULL", NULL, 0, 0, DD_ERR_CORRUPT, "empty");
    expect_fail("empty", "", 0, 0, DD_ERR_CORRUPT, "empty");
    expect_fail("one byte", "P", 1, 0, DD_ERR_CORRUPT, "not a PNG");
    expect_fail("GIF", "GIF89a\1\0\1\0\0\0\0", 13, 0, DD_ERR_CORRUPT, "not a PNG");
    expect_fail("P4", "P4 1 1\n\0", 8, 0, DD_ERR_CORRUPT, "not a PNG");
    expect_fail("PNG magic only", "\x89PNG\r\n\x1a\n", 8, 0, DD_ERR_CORRUPT, "truncated");
    expect_fail("JPEG SOI only", "\xff\xd8\xff", 3, 0, DD_ERR_CORRUPT, "JPEG");

    static const unsigned char px[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const struct { const char *head; size_t n_data; const char *word; } cases[] = {
        {"P5 2 2 0\n", 4, "maxval"},
        {"P5 2 2 65536\n", 8, "maxval"},
        {"P5 2 2 -1\n", 4, "header"},
        {"P5\n4\n", 0, "header"},
        {"P5 2\n", 0, "header"},
        {"P5 0 2 255\n", 4, "0x2"},
        {"P5 2 2 255", 0, "header"},
        {"P6 2 x 255\n", 8, "header"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\n", 6, "ENDHDR"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\n", 0, "ENDHDR"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 5\nMAXVAL 255\nTUPLTYPE CMYK_ALPHA\nENDHDR\n", 8, "tuple type"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 5\nMAXVAL 255\nENDHDR\n", 8, "tuple type"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 0\nMAXVAL 255\nENDHDR\n", 0, "tuple type"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n", 8, "DEPTH"},
        {"P7\nWIDTH 2\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n", 2, "lacks"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nCOLOUR 3\nENDHDR\n", 2, "unknown field"},
        {"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 3\nTUPLTYPE BLACKANDWHITE\nENDHDR\n", 2, "BLACKANDWHITE"},
        {"P7\nWIDTH 1\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR junk\n", 1, "junk"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        membuf b = bytes(cases[i].head, px, cases[i].n_data);
        expect_fail(cases[i].head, b.data, b.size, 0, DD_ERR_CORRUPT, cases[i].word);
        free(b.data);
    }
    /* Samples over maxval, 8- and 16-bit. */
    static const unsigned char over8[2] = {50, 101}, over16[4] = {0x03, 0xe8, 0x03, 0xe9};
    membuf b = bytes("P5 2 1 100\n", over8, 2);
    expect_fail("P5 sample over maxval 100", b.data, b.size, 0, DD_ERR_CORRUPT, "over maxval");
    free(b.data);
    b = bytes("P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 1000\nTUPLTYPE GRAYSCALE\nENDHDR\n", over16, 4);
    expect_fail("PAM sample over maxval 1000", b.data, b.size, 0, DD_ERR_CORRUPT, "over maxval");
    free(b.data);
}

/* Huge headers: refused from the header, before anything is allocated.
 * Checked twice: the peak RSS stays put, and (without ASan, which needs its
 * own address space) under an address-space limit a 2.7 GB allocation
 * would fail as DD_ERR_NOMEM instead. */
#if !defined(__SANITIZE_ADDRESS__)
static long vm_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * 4096;
}
#endif

static void test_limits(void) {
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit saved, tight;
    const int limited = !getrlimit(RLIMIT_AS, &saved) && vm_bytes() > 0;
    if (limited) {
        tight = saved;
        tight.rlim_cur = (rlim_t)vm_bytes() + ((rlim_t)256 << 20);
        if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur < tight.rlim_cur) tight.rlim_cur = saved.rlim_cur;
        setrlimit(RLIMIT_AS, &tight);
    }
#endif
    const uint64_t max = 100000000;
    static const uint32_t sides[] = {100000, 30000};
    for (int k = 0; k < 2; k++) {
        char what[64];
        const uint32_t n = sides[k];
        membuf b = png_header_only(n, n);
        snprintf(what, sizeof what, "PNG %ux%u", n, n);
        expect_fail(what, b.data, b.size, max, DD_ERR_LIMIT, "limit");
        expect_fail(what, b.data, b.size, 0, k ? DD_ERR_CORRUPT : DD_ERR_LIMIT, k ? NULL : "limit");
        free(b.data);
        char head[160];
        snprintf(head, sizeof head, "P6\n%u %u\n255\n", n, n);
        b = bytes(head, (const unsigned char *)"abcdef", 6);
        snprintf(what, sizeof what, "P6 %ux%u", n, n);
        expect_fail(what, b.data, b.size, max, DD_ERR_LIMIT, "limit");
        free(b.data);
        snprintf(head, sizeof head, "P7\nWIDTH %u\nHEIGHT %u\nDEPTH 4\nMAXVAL 65535\nTUPLTYPE RGB_ALPHA\nENDHDR\n", n, n);
        b = bytes(head, (const unsigned char *)"abcdef", 6);
        snprintf(what, sizeof what, "PAM %ux%u", n, n);
        expect_fail(what, b.data, b.size, max, DD_ERR_LIMIT, "limit");
        free(b.data);
    }
    /* A header-only PNM within the limits: its length is checked before
     * its pixels are allocated. */
    membuf b = bytes("P6 10000 10000 255\n", (const unsigned char *)"x", 1);
    expect_fail("P6 10000x10000 header only", b.data, b.size, max, DD_ERR_CORRUPT, "ends early");
    free(b.data);

    /* JPEG sides are 16-bit: 30000x30000 and 65500x65500 in the SOF. */
    unsigned char *px = smooth_pixels(16, 16, 3);
    jpeg_spec js = {.width = 16, .height = 16, .components = 3, .quality = 80, .progressive = 1};
    membuf jpg = jpeg_encode(&js, px);
    const size_t sof = find_marker(&jpg, 0xc2);
    CHECK(sof, "no SOF2 in our progressive JPEG");
    static const unsigned jsides[] = {30000, 65500};
    for (int k = 0; sof && k < 2; k++) {
        put_be16(jpg.data + sof + 5, jsides[k]), put_be16(jpg.data + sof + 7, jsides[k]);
        char what[48];
        snprintf(what, sizeof what, "JPEG %ux%u", jsides[k], jsides[k]);
        expect_fail(what, jpg.data, jpg.size, max, DD_ERR_LIMIT, "limit");
    }
    free(jpg.data);
    free(px);
#if !defined(__SANITIZE_ADDRESS__)
    if (limited) setrlimit(RLIMIT_AS, &saved);
#endif
    getrusage(RUSAGE_SELF, &after);
    const long grew_kb = after.ru_maxrss - before.ru_maxrss;
    CHECK(grew_kb < 8 * 1024, "refusing huge headers raised the peak RSS by %ld KB", grew_kb);
}

static void test_format_names(void) {
    static const struct { const char *name; dd_format f; } cases[] = {
        {"a.png", DD_FORMAT_PNG}, {"A.PNG", DD_FORMAT_PNG}, {"dir.d/x.jpg", DD_FORMAT_JPEG},
        {"x.jpeg", DD_FORMAT_JPEG}, {"x.JPG", DD_FORMAT_JPEG}, {"x.ppm", DD_FORMAT_PPM}, {"x.pgm", DD_FORMAT_PGM},
        {"x.pnm", DD_FORMAT_PNM}, {"x.pam", DD_FORMAT_PAM}, {"png", DD_FORMAT_PNG}, {"jpg", DD_FORMAT_JPEG},
        {"jpeg", DD_FORMAT_JPEG}, {"ppm", DD_FORMAT_PPM}, {"pgm", DD_FORMAT_PGM}, {"pam", DD_FORMAT_PAM},
        {"PPM", DD_FORMAT_PPM}, {"x.PGM", DD_FORMAT_PGM}, {"pnm", DD_FORMAT_PNM}, {"a/b.Pnm", DD_FORMAT_PNM},
        {"x.Ppm", DD_FORMAT_PPM}, {"pgm.png", DD_FORMAT_PNG}, {"x.pgmx", DD_FORMAT_UNKNOWN},
        {"x.tar.png", DD_FORMAT_PNG}, {"x.gif", DD_FORMAT_UNKNOWN}, {"x", DD_FORMAT_UNKNOWN},
        {"", DD_FORMAT_UNKNOWN}, {"x.", DD_FORMAT_UNKNOWN}, {"dir.png/x", DD_FORMAT_UNKNOWN},
        {"x.png.bak", DD_FORMAT_UNKNOWN}, {".png", DD_FORMAT_PNG}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(dd_format_from_name(cases[i].name) == cases[i].f, "dd_format_from_name(\"%s\") = %d, want %d",
              cases[i].name, (int)dd_format_from_name(cases[i].name), (int)cases[i].f);
    CHECK(dd_format_from_name(NULL) == DD_FORMAT_UNKNOWN, "dd_format_from_name(NULL)");
}

/* ---- what metadata may cost ------------------------------------------------ */

static long peak_rss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

/* Room for n more bytes in one allocation: a buffer built to its exact
 * size leaves no doubled peak behind in the RSS. */
static void mb_reserve(membuf *b, size_t n) {
    if (n <= b->cap - b->size) return;
    if (!(b->data = realloc(b->data, b->size + n))) die("out of memory");
    b->cap = b->size + n;
}

/* A zTXt chunk (length, type, data, CRC) as libpng writes it: key, then n
 * bytes of 'a' deflated by libpng's zlib (about 1000:1). */
static membuf png_ztxt_chunk(const char *key, size_t n) {
    char *text = malloc(n + 1);
    if (!text) die("out of memory");
    memset(text, 'a', n);
    text[n] = '\0';
    membuf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, tpng_error, tpng_error);
    png_infop info = png_create_info_struct(png);
    if (!info) die("libpng");
    png_set_write_fn(png, &out, tpng_write, tpng_flush);
    png_set_IHDR(png, info, 1, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_text t;
    memset(&t, 0, sizeof t);
    t.compression = PNG_TEXT_COMPRESSION_zTXt;
    t.key = (char *)key;
    t.text = text;
    png_set_text(png, info, &t, 1);
    png_write_info(png, info);
    png_byte row[1] = {0};
    png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(text);
    unsigned char *at = memmem(out.data + 8, out.size - 8, "zTXt", 4);
    if (!at) die("libpng wrote no zTXt");
    const size_t len = (size_t)at[-4] << 24 | (size_t)at[-3] << 16 | (size_t)at[-2] << 8 | at[-1];
    membuf chunk = {0};
    mb_put(&chunk, at - 4, len + 12);
    free(out.data);
    return chunk;
}

/* png with copies of chunk (whole chunks) placed right after IHDR. */
static membuf png_insert(const membuf *png, const membuf *chunk, size_t copies) {
    membuf b = {0};
    mb_reserve(&b, png->size + chunk->size * copies);
    mb_put(&b, png->data, 33);
    for (size_t i = 0; i < copies; i++) mb_put(&b, chunk->data, chunk->size);
    mb_put(&b, png->data + 33, png->size - 33);
    return b;
}

/* A chunk of type with data over n bytes, CRC included. */
static membuf png_raw_chunk(const char *type, const unsigned char *data, size_t n) {
    membuf b = {0};
    png_chunk(&b, type, data, n);
    return b;
}

static void check_rgb_rows(const char *what, const dd_image *im, const unsigned char *rows, int w, int h) {
    if (!im) return;
    CHECK(im->width == w && im->height == h && im->channels == 3 && im->depth == 8 &&
              !memcmp(im->samples, rows, (size_t)w * h * 3),
          "%s: came back %dx%d x%d %d-bit or with other pixels", what, im->width, im->height, im->channels, im->depth);
}

/* PNG: 400 zTXt chunks of 7.9 MB each once inflated (a 3 MB file that cost
 * libpng 3 GB) decode in bounded memory; an iCCP or eXIf over 4 MiB is
 * dropped and the image still decodes. */
static void test_png_metadata_budget(void) {
    enum { W = 128, H = 96 };
    unsigned char *rows = malloc(W * H * 3);
    if (!rows) die("out of memory");
    for (size_t i = 0; i < W * H * 3; i++) rows[i] = (unsigned char)rnd(256);
    png_spec s = {.width = W, .height = H, .bit_depth = 8, .colour_type = PNG_COLOR_TYPE_RGB};
    membuf png = png_encode(&s, rows, W * 3);

    membuf z = png_ztxt_chunk("Comment", 7900000);
    membuf bomb = png_insert(&png, &z, 400);
    CHECK(bomb.size < (8u << 20), "the zTXt bomb is %zu bytes", bomb.size);
#if !defined(__SANITIZE_ADDRESS__)
    /* Should the text be inflated again, malloc fails at 1 GB more rather
     * than the test taking 3 GB. */
    struct rlimit saved, tight;
    const int limited = !getrlimit(RLIMIT_AS, &saved) && vm_bytes() > 0;
    if (limited) {
        tight = saved;
        tight.rlim_cur = (rlim_t)vm_bytes() + ((rlim_t)1 << 30);
        if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur < tight.rlim_cur) tight.rlim_cur = saved.rlim_cur;
        setrlimit(RLIMIT_AS, &tight);
    }
#endif
    const long before = peak_rss_kb();
    dd_image *im = NULL;
    dd_status st = dd_image_load_memory(bomb.data, bomb.size, 0, &im);
    const long grew_kb = peak_rss_kb() - before;
#if !defined(__SANITIZE_ADDRESS__)
    if (limited) setrlimit(RLIMIT_AS, &saved);
#endif
    CHECK(st == DD_OK && im, "PNG with 400 zTXt: %s: %s", dd_strerror(st), dd_last_error());
    check_rgb_rows("PNG with 400 zTXt", im, rows, W, H);
    CHECK(!im || !dd_image_comment(im), "PNG: a zTXt Comment was taken as the comment");
    CHECK(grew_kb < 64 * 1024, "PNG with 400 zTXt of 7.9 MB: the decode raised the peak RSS by %ld KB", grew_kb);
    dd_image_free(im);
    free(bomb.data), free(z.data);

    /* iCCP of zeros: 5 MiB inflated (dropped), 3 MiB (kept). */
    static const size_t icc_sizes[] = {(size_t)5 << 20, (size_t)3 << 20};
    for (int k = 0; k < 2; k++) {
        unsigned char *icc = make_icc("RGB ", icc_sizes[k], 1);
        memset(icc + 144, 0, icc_sizes[k] - 144);
        png_spec si = s;
        si.icc = icc, si.icc_size = icc_sizes[k];
        membuf b = png_encode(&si, rows, W * 3);
        char what[64];
        snprintf(what, sizeof what, "PNG with a %zu-byte iCCP in %zu bytes", icc_sizes[k], b.size);
        im = load_ok(what, b.data, b.size);
        check_rgb_rows(what, im, rows, W, H);
        if (im && k == 0) CHECK(!im->icc, "%s: the profile was kept", what);
        if (im && k == 1)
            CHECK(im->icc && im->icc_size == icc_sizes[k] && !memcmp(im->icc, icc, icc_sizes[k]), "%s: profile lost",
                  what);
        dd_image_free(im);
        free(b.data), free(icc);
    }

    /* eXIf of 5 MiB saying "turn 90 degrees": dropped, so not turned. And
     * a private chunk of 5 MiB, and known chunks we ignore: no effect. */
    const size_t big = (size_t)5 << 20;
    unsigned char *exif = calloc(1, big);
    if (!exif) die("out of memory");
    make_tiff(exif, 1, 6);
    png_spec se = s;
    se.exif = exif, se.exif_size = big;
    membuf b = png_encode(&se, rows, W * 3);
    im = load_ok("PNG with a 5 MiB eXIf", b.data, b.size);
    check_rgb_rows("PNG with a 5 MiB eXIf", im, rows, W, H);
    dd_image_free(im), free(b.data);
    se.exif_size = 46;
    b = png_encode(&se, rows, W * 3);
    im = load_ok("PNG with a small eXIf", b.data, b.size);
    CHECK(im && im->width == H && im->height == W, "PNG with a small eXIf: not turned upright");
    dd_image_free(im), free(b.data);

    membuf priv = png_raw_chunk("prVt", exif, big);
    b = png_insert(&png, &priv, 1);
    im = load_ok("PNG with a 5 MiB private chunk", b.data, b.size);
    check_rgb_rows("PNG with a 5 MiB private chunk", im, rows, W, H);
    dd_image_free(im), free(b.data), free(priv.data);
    free(exif);

    static const struct { const char *type; unsigned char data[13]; size_t n; } known[] = {
        {"gAMA", {0, 0, 0xb1, 0x8f}, 4}, {"sRGB", {0}, 1}, {"pHYs", {0, 0, 0x0b, 0x13, 0, 0, 0x0b, 0x13, 1}, 9},
        {"tIME", {0x07, 0xe8, 1, 2, 3, 4, 5}, 7}, {"bKGD", {0, 1, 0, 2, 0, 3}, 6}, {"sBIT", {8, 8, 8}, 3},
        {"tEXt", {'T', 'i', 't', 'l', 'e', 0, 'x'}, 7}, {"cHRM", {0}, 1} /* malformed: ignored all the same */};
    membuf all = {0};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) png_chunk(&all, known[i].type, known[i].data, known[i].n);
    b = png_insert(&png, &all, 1);
    im = load_ok("PNG with chunks we ignore", b.data, b.size);
    check_rgb_rows("PNG with chunks we ignore", im, rows, W, H);
    dd_image_free(im), free(b.data), free(all.data);
    free(png.data);
    free(rows);
}

/* The JPEG with segments (each 0xff, code, length, data) after SOI. */
static membuf jpeg_insert(const membuf *jpg, const membuf *segments) {
    membuf b = {0};
    mb_reserve(&b, jpg->size + segments->size);
    mb_put(&b, jpg->data, 2);
    mb_put(&b, segments->data, segments->size);
    mb_put(&b, jpg->data + 2, jpg->size - 2);
    return b;
}

static void put_segment(membuf *b, int code, const void *data, size_t n) {
    unsigned char head[4] = {0xff, (unsigned char)code};
    put_be16(head + 2, (unsigned)(n + 2));
    mb_put(b, head, 4);
    mb_put(b, data, n);
}

/* Offsets (at their 0xff) of the APP2 ICC_PROFILE segments before the scan. */
static int icc_segments(const membuf *b, size_t *at, int max) {
    int n = 0;
    for (size_t i = 2; i + 4 <= b->size && b->data[i] == 0xff && b->data[i + 1] != 0xda;) {
        const size_t len = (size_t)b->data[i + 2] << 8 | b->data[i + 3];
        if (b->data[i + 1] == 0xe2 && len >= 16 && !memcmp(b->data + i + 4, "ICC_PROFILE", 12) && n < max) at[n++] = i;
        i += 2 + len;
    }
    return n;
}

static void test_jpeg_metadata_budget(void) {
    unsigned char *px = smooth_pixels(24, 16, 3);
    jpeg_spec js = {.width = 24, .height = 16, .components = 3, .quality = 80};
    membuf jpg = jpeg_encode(&js, px);
    jpeg_direct want = jpeg_decode_direct(&jpg);

    /* 3000 segments of 32 KiB: APP1 (EXIF), APP2 (ICC chunk 1 of 1, every
     * one), APP11. libjpeg kept the APP1 and APP2 ones whole: 64 MB. */
    const size_t seg = 32768;
    unsigned char *data = calloc(1, seg);
    if (!data) die("out of memory");
    membuf b = {0};
    mb_reserve(&b, jpg.size + 3000 * (seg + 4)); /* the one large buffer: the peak RSS before the decode */
    mb_put(&b, jpg.data, 2);
    for (int i = 0; i < 3000; i++) {
        const int code = i % 3 == 0 ? 0xe1 : i % 3 == 1 ? 0xe2 : 0xeb;
        memset(data, 0, 16);
        if (code == 0xe1) memcpy(data, "Exif\0\0MM", 8);
        if (code == 0xe2) memcpy(data, "ICC_PROFILE\0\1\1", 14);
        put_segment(&b, code, data, seg);
    }
    mb_put(&b, jpg.data + 2, jpg.size - 2);
    const long before = peak_rss_kb();
    dd_image *im = NULL;
    dd_status st = dd_image_load_memory(b.data, b.size, 0, &im);
    const long grew_kb = peak_rss_kb() - before;
    CHECK(st == DD_OK && im, "JPEG with 3000 APPn: %s: %s", dd_strerror(st), dd_last_error());
    if (im) {
        CHECK(im->width == 24 && im->height == 16 && !memcmp(im->samples, want.pixels, 24 * 16 * 3),
              "JPEG with 3000 APPn: other pixels than libjpeg's");
        CHECK(!im->icc && !dd_image_comment(im), "JPEG with 3000 APPn: a profile or comment from nowhere");
    }
    CHECK(grew_kb < 16 * 1024, "JPEG with 3000 APPn of 32 KiB: the decode raised the peak RSS by %ld KB", grew_kb);
    dd_image_free(im);
    free(b.data), free(data);

    /* ICC profiles through our encoder, split over APP2 chunks of 65519
     * bytes: 4 chunks, exactly 4 MiB (65 chunks) kept; 4 MiB + 4 dropped. */
    static const size_t sizes[] = {200000, (size_t)4 << 20, ((size_t)4 << 20) + 4};
    for (int k = 0; k < 3; k++) {
        dd_image *src = pattern(24, 16, 3, 8);
        src->icc = make_icc("RGB ", sizes[k], (unsigned)k), src->icc_size = sizes[k];
        char what[64];
        snprintf(what, sizeof what, "JPEG with a %zu-byte profile", sizes[k]);
        membuf out = save_ok(what, src, DD_FORMAT_JPEG, 90, NULL);
        size_t at[80];
        const int n = icc_segments(&out, at, 80);
        CHECK(n == (int)((sizes[k] + 65518) / 65519), "%s: %d APP2 chunks", what, n);
        im = load_ok(what, out.data, out.size);
        if (im && k < 2)
            CHECK(im->icc && im->icc_size == sizes[k] && !memcmp(im->icc, src->icc, sizes[k]), "%s: profile lost", what);
        if (im && k == 2) CHECK(!im->icc, "%s: a profile over 4 MiB was kept", what);
        dd_image_free(im);
        if (k == 0 && n == 4) {
            /* Chunk 2 missing; chunk 3 counting 5; chunk 2 numbered 1: dropped. */
            for (int bad = 0; bad < 3; bad++) {
                membuf mod = {0};
                if (bad == 0) {
                    const size_t len2 = 2 + ((size_t)out.data[at[1] + 2] << 8 | out.data[at[1] + 3]);
                    mb_put(&mod, out.data, at[1]);
                    mb_put(&mod, out.data + at[1] + len2, out.size - at[1] - len2);
                } else {
                    mb_put(&mod, out.data, out.size);
                    if (bad == 1) mod.data[at[2] + 4 + 13] = 5;
                    else mod.data[at[1] + 4 + 12] = 1;
                }
                static const char *how[] = {"a chunk missing", "counts that differ", "a number twice"};
                snprintf(what, sizeof what, "JPEG profile with %s", how[bad]);
                im = load_ok(what, mod.data, mod.size);
                CHECK(!im || !im->icc, "%s: kept", what);
                dd_image_free(im);
                free(mod.data);
            }
        }
        free(out.data);
        dd_image_free(src);
    }
    jpeg_direct_free(&want);
    free(jpg.data);
    free(px);
}

/* ---- comments ------------------------------------------------------------ */

static void check_comment(const char *what, const dd_image *im, const char *want) {
    if (!im) return;
    const char *got = dd_image_comment(im);
    if (!want) CHECK(!got, "%s: comment '%s', want none", what, got);
    else CHECK(got && !strcmp(got, want), "%s: comment '%s', want '%s'", what, got ? got : "(none)", want);
}

static void test_comment_reading(void) {
    const char *comment = "deepdream " DD_VERSION_STRING ": mixed3, 4 octaves, seed 7";
    static const struct { dd_format f; const char *name; } fmts[] = {
        {DD_FORMAT_PNG, "PNG"}, {DD_FORMAT_JPEG, "JPEG"}, {DD_FORMAT_PNM, "PNM"}, {DD_FORMAT_PAM, "PAM"},
        {DD_FORMAT_PGM, "PGM"}, {DD_FORMAT_PPM, "PPM"}};
    dd_image *src = pattern(9, 5, 3, 8);
    for (size_t k = 0; k < sizeof fmts / sizeof *fmts; k++)
        for (int with = 0; with <= 1; with++) {
            char what[64];
            snprintf(what, sizeof what, "%s %s a comment", fmts[k].name, with ? "with" : "without");
            membuf b = save_ok(what, src, fmts[k].f, 90, with ? comment : NULL);
            dd_image *im = load_ok(what, b.data, b.size);
            check_comment(what, im, with ? comment : NULL);
            dd_image_free(im);
            free(b.data);
        }
    dd_image_free(src);

    /* PNG: the first uncompressed tEXt Comment, after other keywords and a
     * zTXt Comment (never inflated); at most 64 KiB of it. */
    unsigned char rows[4 * 3 * 3] = {0};
    png_spec s = {.width = 4, .height = 3, .bit_depth = 8, .colour_type = PNG_COLOR_TYPE_RGB};
    membuf png = png_encode(&s, rows, 12);
    membuf chunks = png_ztxt_chunk("Comment", 100);
    png_chunk(&chunks, "tEXt", (const unsigned char *)"Title\0x", 7);
    png_chunk(&chunks, "iTXt", (const unsigned char *)"Comment\0\0\0\0\0itxt", 17);
    png_chunk(&chunks, "tEXt", (const unsigned char *)"Comment\0first", 13);
    png_chunk(&chunks, "tEXt", (const unsigned char *)"Comment\0second", 14);
    membuf b = png_insert(&png, &chunks, 1);
    dd_image *im = load_ok("PNG with several texts", b.data, b.size);
    check_comment("PNG with several texts", im, "first");
    dd_image_free(im), free(b.data), free(chunks.data);
    const size_t long_len = 100000;
    unsigned char *text = malloc(8 + long_len);
    if (!text) die("out of memory");
    memcpy(text, "Comment", 8);
    memset(text + 8, 'c', long_len);
    chunks = png_raw_chunk("tEXt", text, 8 + long_len);
    b = png_insert(&png, &chunks, 1);
    im = load_ok("PNG with a 100000-byte comment", b.data, b.size);
    if (im) {
        const char *got = dd_image_comment(im);
        CHECK(got && strlen(got) == 65536 && got[65535] == 'c', "PNG with a 100000-byte comment: kept %zu bytes",
              got ? strlen(got) : 0);
    }
    dd_image_free(im), free(b.data), free(chunks.data), free(text);
    free(png.data);

    /* JPEG: the first COM. */
    unsigned char *px = smooth_pixels(16, 16, 3);
    jpeg_spec js = {.width = 16, .height = 16, .components = 3, .quality = 80};
    membuf jpg = jpeg_encode(&js, px);
    membuf segs = {0};
    put_segment(&segs, 0xeb, "APP11", 5);
    put_segment(&segs, 0xfe, "one", 3);
    put_segment(&segs, 0xfe, "two", 3);
    b = jpeg_insert(&jpg, &segs);
    im = load_ok("JPEG with two COM", b.data, b.size);
    check_comment("JPEG with two COM", im, "one");
    dd_image_free(im), free(b.data), free(segs.data), free(jpg.data), free(px);

    /* Netpbm: the first comment, without '#' and one space, to its line end. */
    static const struct { const char *head; const char *want; } pnm[] = {
        {"P5\n#no space\n2 1\n255\n", "no space"},
        {"P5\n#  two\n2 1\n255\n", " two"},
        {"P5 2 1 255#after maxval\n", "after maxval"},
        {"P5 2#w\n1 #h\n255\n", "w"},
        {"P5\r\n# crlf\r\n2 1\r\n255\n", "crlf"},
        {"P5\n#\n2 1\n255\n", ""},
        {"P7\n# pam\nWIDTH 2\nHEIGHT 1\n# second\nDEPTH 1\nMAXVAL 255\nENDHDR\n", "pam"},
        {"P5 2 1 255\n", NULL},
    };
    static const unsigned char two[2] = {7, 9};
    for (size_t i = 0; i < sizeof pnm / sizeof *pnm; i++) {
        b = bytes(pnm[i].head, two, 2);
        im = load_ok(pnm[i].head, b.data, b.size);
        check_comment(pnm[i].head, im, pnm[i].want);
        if (im) CHECK(img_get(im, 0) == 7 && img_get(im, 1) == 9, "%s: samples %u %u", pnm[i].head, img_get(im, 0), img_get(im, 1));
        dd_image_free(im), free(b.data);
    }
}

/* ---- dd_image_probe --------------------------------------------------------- */

static dd_status probe_exact(const unsigned char *data, size_t n, uint64_t max_pixels, dd_image_info *info) {
    unsigned char *copy = n ? malloc(n) : NULL;
    if (n && !copy) die("out of memory");
    if (n) memcpy(copy, data, n);
    memset(info, 0x55, sizeof *info);
    dd_status st = dd_image_probe(copy, n, max_pixels, info);
    free(copy);
    return st;
}

/* Every prefix of a sound file: width 0 until the header is whole, then
 * the size and max_bytes; returns the prefix length where that happens. */
static size_t probe_prefixes(const char *what, const membuf *b, dd_format f, int w, int h, uint64_t max_bytes) {
    size_t whole = 0, bad = 0, first_bad = 0;
    for (size_t n = 0; n <= b->size; n++) {
        dd_image_info info;
        const dd_status st = probe_exact(b->data, n, 0, &info);
        /* "P" alone may be PNM or PAM. */
        const int known = n >= 2 || (n == 1 && f != DD_FORMAT_PNM && f != DD_FORMAT_PAM);
        int ok = st == DD_OK && info.format == (known ? f : DD_FORMAT_UNKNOWN);
        if (ok && info.width == 0) ok = !whole && info.height == 0 && info.max_bytes == 0;
        else if (ok) {
            if (!whole) whole = n;
            ok = info.width == w && info.height == h && info.max_bytes == max_bytes;
        }
        if (!ok && !bad++) {
            first_bad = n;
            fprintf(stderr, "%s: prefix of %zu: %s (%s), format %d, %dx%d, max_bytes %llu\n", what, n, dd_strerror(st),
                    dd_last_error(), (int)info.format, info.width, info.height, (unsigned long long)info.max_bytes);
        }
    }
    CHECK(!bad, "%s: %zu of %zu prefixes wrong, first of %zu bytes", what, bad, b->size + 1, first_bad);
    CHECK(whole, "%s: no prefix gave the size", what);
    return whole;
}

/* Prefixes of a malformed header: width 0 below n_bad bytes, CORRUPT from
 * there on. */
static void probe_malformed(const char *what, const void *data, size_t size, size_t n_bad) {
    size_t bad = 0, first_bad = 0;
    for (size_t n = 1; n <= size; n++) {
        dd_image_info info;
        const dd_status st = probe_exact(data, n, 0, &info);
        const int ok = n < n_bad ? st == DD_OK && info.width == 0
                                 : st == DD_ERR_CORRUPT && info.width == 0 && dd_last_error()[0];
        if (!ok && !bad++) first_bad = n;
    }
    CHECK(!bad, "%s: %zu prefixes wrong, first of %zu bytes (want CORRUPT from %zu)", what, bad, first_bad, n_bad);
}

static uint64_t big_max_bytes(int w, int h) { return ((uint64_t)64 << 20) + 2 * (uint64_t)w * h * 8; }

static void test_probe(void) {
    dd_image *im = pattern(37, 23, 4, 16);
    im->icc = make_icc("RGB ", 300, 2), im->icc_size = 300;
    membuf b = save_ok("probe PNG", im, DD_FORMAT_PNG, 0, "a comment");
    size_t whole = probe_prefixes("PNG", &b, DD_FORMAT_PNG, 37, 23, big_max_bytes(37, 23));
    CHECK(whole == 29, "PNG: the size from %zu bytes, want 29 (IHDR's data)", whole);
    free(b.data);

    b = save_ok("probe JPEG", im, DD_FORMAT_JPEG, 90, "a comment");
    size_t sof = find_marker(&b, 0xc0);
    whole = probe_prefixes("JPEG", &b, DD_FORMAT_JPEG, 37, 23, big_max_bytes(37, 23));
    CHECK(sof && whole == sof + 2 + ((size_t)b.data[sof + 2] << 8 | b.data[sof + 3]),
          "JPEG: the size from %zu bytes, SOF0 at %zu", whole, sof);
    free(b.data);
    unsigned char *px = smooth_pixels(24, 16, 3);
    unsigned char app1[6 + 46];
    memcpy(app1, "Exif\0\0", 6);
    make_tiff(app1 + 6, 0, 6);
    jpeg_spec js = {.width = 24, .height = 16, .components = 3, .quality = 80, .progressive = 1,
                    .app1 = {app1}, .app1_size = {sizeof app1}, .icc = im->icc, .icc_size = 300};
    b = jpeg_encode(&js, px);
    probe_prefixes("progressive JPEG", &b, DD_FORMAT_JPEG, 24, 16, big_max_bytes(24, 16));
    free(b.data);
    free(px);

    /* Netpbm: max_bytes is the file's exact length. */
    static const struct { dd_format f; const char *name; int ch; } pnms[] = {
        {DD_FORMAT_PPM, "P6", 3}, {DD_FORMAT_PGM, "P5", 1}, {DD_FORMAT_PAM, "PAM", 4}};
    for (int k = 0; k < 3; k++) {
        b = save_ok(pnms[k].name, im, pnms[k].f, 0, "a comment");
        const dd_format want = pnms[k].f == DD_FORMAT_PAM ? DD_FORMAT_PAM : DD_FORMAT_PNM;
        whole = probe_prefixes(pnms[k].name, &b, want, 37, 23, b.size);
        CHECK(whole == b.size - (size_t)37 * 23 * pnms[k].ch * 2, "%s: the size from %zu bytes of %zu", pnms[k].name,
              whole, b.size);
        free(b.data);
    }
    dd_image_free(im);

    /* Malformed as soon as the bytes show it. */
    probe_malformed("GIF", "GIF89a", 6, 1);
    probe_malformed("P4", "P4 1 1\n", 7, 2);
    probe_malformed("P6 2 x", "P6 2 x 255\n", 11, 6);
    probe_malformed("P5 0 2", "P5 0 2 255\n", 11, 7);
    probe_malformed("P5 maxval 0", "P5 2 2 0\n", 9, 9);
    probe_malformed("PAM unknown field", "P7\nWIDTH 2\nFOO 1\n", 17, 15);
    probe_malformed("PAM binary", "P7\nWIDTH 2\n\1\2\3", 14, 12);
    probe_malformed("PNG magic", "\x89PNx\r\n\x1a\n", 8, 4);
    probe_malformed("PNG first chunk", "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDX\0\0\0\1\0\0\0\1\x08\x02\0\0\0", 29, 16);
    probe_malformed("PNG bit depth", "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\1\0\0\0\1\x07\x02\0\0\0", 29, 29);
    probe_malformed("JPEG SOS first", "\xff\xd8\xff\xda\0\x02", 6, 6);
    probe_malformed("JPEG not FF D8 FF", "\xff\xd8\x00", 3, 3);
    probe_malformed("JPEG junk after APP0", "\xff\xd8\xff\xe0\0\x04\0\0\x12", 9, 9);
    probe_malformed("JPEG SOF of 7 bytes", "\xff\xd8\xff\xc0\0\x09\x08\0\1\0\1\0\0", 13, 13);

    /* Over the limits, from the header alone. */
    const uint64_t max = 100000000;
    dd_image_info info;
    membuf ppm = bytes("P6\n20000 20000\n255\n", (const unsigned char *)"abcdefghijk", 11);
    dd_status st = probe_exact(ppm.data, 20, max, &info);
    CHECK(st == DD_ERR_LIMIT && info.width == 0, "P6 20000x20000, 20 bytes: %s (%s)", dd_strerror(st), dd_last_error());
    st = probe_exact(ppm.data, 15, max, &info);
    CHECK(st == DD_ERR_LIMIT, "P6 20000x20000, 15 bytes: %s", dd_strerror(st));
    st = probe_exact(ppm.data, 14, max, &info);
    CHECK(st == DD_OK && info.width == 0, "P6 20000x20000, 14 bytes: %s, width %d", dd_strerror(st), info.width);
    st = probe_exact(ppm.data, 20, 0, &info);
    CHECK(st == DD_OK && info.width == 20000 && info.height == 20000 && info.max_bytes == 19 + 1200000000ull,
          "P6 20000x20000 without a limit: %s, %dx%d, %llu bytes", dd_strerror(st), info.width, info.height,
          (unsigned long long)info.max_bytes);
    free(ppm.data);
    ppm = bytes("P7\nHEIGHT 20000\nWIDTH 20000\n", NULL, 0);
    st = probe_exact(ppm.data, ppm.size, max, &info);
    CHECK(st == DD_ERR_LIMIT, "PAM 20000x20000 before ENDHDR: %s", dd_strerror(st));
    free(ppm.data);
    membuf png = png_header_only(30000, 30000);
    st = probe_exact(png.data, png.size, max, &info);
    CHECK(st == DD_ERR_LIMIT, "PNG 30000x30000: %s", dd_strerror(st));
    st = probe_exact(png.data, 29, 0, &info);
    CHECK(st == DD_OK && info.width == 30000 && info.max_bytes == big_max_bytes(30000, 30000),
          "PNG 30000x30000 without a limit: %s", dd_strerror(st));
    free(png.data);
    png = png_header_only(70000, 1);
    st = probe_exact(png.data, png.size, 0, &info);
    CHECK(st == DD_ERR_LIMIT, "PNG 70000 wide: %s", dd_strerror(st));
    free(png.data);
    const unsigned char sof2[] = {0xff, 0xd8, 0xff, 0xc2, 0, 17, 8, 0x75, 0x30, 0x75, 0x30, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
    st = probe_exact(sof2, sizeof sof2, max, &info);
    CHECK(st == DD_ERR_LIMIT, "JPEG 30000x30000: %s", dd_strerror(st));

    st = probe_exact(NULL, 0, 0, &info);
    CHECK(st == DD_OK && info.width == 0 && info.format == DD_FORMAT_UNKNOWN, "probe of nothing: %s", dd_strerror(st));
    CHECK(dd_image_probe("P6", 2, 0, NULL) == DD_ERR_INVALID_ARG, "probe without info");
}

/* ---- Netpbm headers the way Netpbm reads them ------------------------------------ */

static void test_pnm_headers(void) {
    unsigned char px[64 * 48 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)rnd(256);
    /* A comment right after a number, also after maxval: the samples begin
     * after that comment's line. */
    static const struct { const char *head; int w, h, ch; const char *comment; } ok[] = {
        {"P6 64#c\n48 255\n", 64, 48, 3, "c"},
        {"P6 64 48 255#c\n", 64, 48, 3, "c"},
        {"P6 64 48\n255#c\r", 64, 48, 3, "c"},
        {"P5#one\n64#two\n 48\n#three\n255#four\n", 64, 48, 1, "one"},
        {"P5\t64\t48\t255#\n", 64, 48, 1, ""},
        {"P7\n#a\nWIDTH 64 #b\n#c\nHEIGHT 48\nDEPTH 3\n# d\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n", 64, 48, 3, "a"},
        /* No tuple type, or one we do not know: DEPTH says. */
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 1\nMAXVAL 255\nENDHDR\n", 64, 48, 1, NULL},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 2\nMAXVAL 255\nENDHDR\n", 64, 48, 2, NULL},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 3\nMAXVAL 255\nENDHDR\n", 64, 48, 3, NULL},
        {"P7\nWIDTH 32\nHEIGHT 36\nDEPTH 4\nMAXVAL 255\nENDHDR\n", 32, 36, 4, NULL},
        {"P7\nWIDTH 32\nHEIGHT 36\nDEPTH 4\nMAXVAL 255\nTUPLTYPE CMYK\nENDHDR\n", 32, 36, 4, NULL},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 2\nMAXVAL 255\nTUPLTYPE FOO_BAR\nENDHDR\n", 64, 48, 2, NULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const size_t n = (size_t)ok[i].w * ok[i].h * ok[i].ch;
        membuf b = bytes(ok[i].head, px, n);
        dd_image *im = load_ok(ok[i].head, b.data, b.size);
        if (im) {
            CHECK(im->width == ok[i].w && im->height == ok[i].h && im->channels == ok[i].ch && im->depth == 8 &&
                      !memcmp(im->samples, px, n),
                  "%s: %dx%d x%d, or other samples", ok[i].head, im->width, im->height, im->channels);
            check_comment(ok[i].head, im, ok[i].comment);
        }
        dd_image_free(im);
        dd_image_info info;
        const dd_status st = probe_exact(b.data, b.size, 0, &info);
        CHECK(st == DD_OK && info.max_bytes == b.size, "%s: probe %s, max_bytes %llu of %zu", ok[i].head,
              dd_strerror(st), (unsigned long long)info.max_bytes, b.size);
        /* One byte short: the comment's line end or a sample missing. */
        expect_fail(ok[i].head, b.data, b.size - 1, 0, DD_ERR_CORRUPT, NULL);
        free(b.data);
    }
    static const struct { const char *head; const char *word; } bad[] = {
        {"P6 64#c", "header"},
        {"P6 64 48 255#c", "header"},
        {"P6 64x 48 255\n", "header"},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 5\nMAXVAL 255\nENDHDR\n", "tuple type"},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 3\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n", "DEPTH"},
        {"P7\nWIDTH 64\nHEIGHT 48\nDEPTH 1\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n", "DEPTH"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        membuf b = bytes(bad[i].head, px, strchr(bad[i].head, '\n') ? sizeof px : 0);
        expect_fail(bad[i].head, b.data, b.size, 0, DD_ERR_CORRUPT, bad[i].word);
        free(b.data);
    }
}

/* ---- PGM and PPM ------------------------------------------------------------- */

static void test_pgm_ppm(void) {
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            dd_image *src = pattern(7, 5, ch, depth);
            for (int ppm = 0; ppm <= 1; ppm++) {
                char what[64];
                snprintf(what, sizeof what, "%s from %d-bit x%d", ppm ? "PPM" : "PGM", depth, ch);
                membuf b = save_ok(what, src, ppm ? DD_FORMAT_PPM : DD_FORMAT_PGM, 0, "c");
                CHECK(b.size > 2 && !memcmp(b.data, ppm ? "P6" : "P5", 2), "%s: not %s", what, ppm ? "P6" : "P5");
                dd_image *im = load_ok(what, b.data, b.size);
                const int out_ch = ppm ? 3 : 1;
                if (im && (im->channels != out_ch || im->depth != depth || dd_image_format(im) != DD_FORMAT_PNM)) {
                    CHECK(0, "%s: %d channels %d-bit, format %d", what, im->channels, im->depth, (int)dd_image_format(im));
                } else if (im) {
                    size_t wrong = 0;
                    for (size_t i = 0; i < (size_t)7 * 5; i++)
                        for (int k = 0; k < out_ch; k++) {
                            const size_t s = i * (size_t)ch;
                            long want;
                            if (ch < 3) want = img_get(src, s); /* grey, repeated into RGB */
                            else if (ppm) want = img_get(src, s + (size_t)k);
                            else want = lround((299.0 * img_get(src, s) + 587.0 * img_get(src, s + 1) +
                                                114.0 * img_get(src, s + 2)) / 1000.0);
                            wrong += (long)img_get(im, i * (size_t)out_ch + (size_t)k) != want;
                        }
                    CHECK(!wrong, "%s: %zu samples wrong", what, wrong);
                }
                dd_image_free(im);
                free(b.data);
            }
            dd_image_free(src);
        }
    /* Pure primaries: round(0.299 * 255) = 76, round(0.587 * 255) = 150,
     * round(0.114 * 255) = 29; 1, 1, 2 gives round(1.114) = 1. */
    dd_image *src;
    if (img_new(4, 1, 3, 8, 0, &src)) die("img_new");
    static const unsigned char rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 1, 2};
    memcpy(src->samples, rgb, 12);
    membuf b = save_ok("PGM of primaries", src, DD_FORMAT_PGM, 0, NULL);
    static const unsigned char want[4] = {76, 150, 29, 1};
    CHECK(b.size == 11 + 4 && !memcmp(b.data, "P5\n4 1\n255\n", 11) && !memcmp(b.data + 11, want, 4),
          "PGM of primaries: %zu bytes, samples %u %u %u %u", b.size, b.data[b.size - 4], b.data[b.size - 3],
          b.data[b.size - 2], b.data[b.size - 1]);
    free(b.data);
    dd_image_free(src);
}

int main(void) {
    test_limits(); /* first, while the peak RSS is the process's start */
    test_png_metadata_budget(); /* next, for the same reason */
    test_jpeg_metadata_budget();
    test_format_names();
    test_probe();
    test_pnm_headers();
    test_pgm_ppm();
    test_comment_reading();
    test_round_trips();
    test_jpeg_round_trip();
    test_png_kinds();
    test_jpeg_against_libjpeg();
    test_jpeg_cmyk();
    test_jpeg_scan_limit();
    test_exif_jpeg();
    test_exif_png();
    test_icc();
    test_comments();
    test_pnm_reading();
    test_bad_headers();
    test_truncation();
    return check_done("test_image");
}
