/* Netpbm: P5 (grey), P6 (RGB) and P7 (PAM) with maxval 1..65535, binary.
 * Headers are read the way Netpbm reads them (a comment may end a number;
 * a PAM without a tuple type we know takes it from DEPTH); the rest
 * strictly: a missing field, a bad maxval, a sample over maxval or data
 * that ends early is an error. No ICC profile: the formats hold none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util/util.h"

/* What a reader step found: the thing, the end of the bytes (a longer
 * file may still hold a sound header), or something malformed. */
enum { READ_OK, READ_SHORT, READ_BAD };

typedef struct cursor {
    const unsigned char *p, *end;
    const unsigned char *comment; /* the header's first comment, NULL if none */
    size_t comment_len;
} cursor;

/* A sound header: where the samples begin and what they are. */
typedef struct pnm_header {
    unsigned long width, height, maxval;
    int channels, bilevel;
    size_t header_bytes; /* 0: the bytes end before the header does */
    const unsigned char *comment;
    size_t comment_len;
} pnm_header;

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* From '#' past the end of its line ('\n' or '\r', as Netpbm's pm_getc
 * ends it). The first comment is kept without '#' and one leading space. */
static int skip_comment(cursor *c) {
    const unsigned char *start = ++c->p;
    while (c->p < c->end && *c->p != '\n' && *c->p != '\r') c->p++;
    if (c->p >= c->end) return READ_SHORT;
    if (!c->comment) {
        if (start < c->p && *start == ' ') start++;
        c->comment = start, c->comment_len = (size_t)(c->p - start);
    }
    c->p++;
    return READ_OK;
}

/* Skips whitespace and comments up to the next field. */
static int skip_space(cursor *c) {
    while (c->p < c->end) {
        if (*c->p == '#') {
            if (skip_comment(c)) return READ_SHORT;
        } else if (is_space(*c->p)) {
            c->p++;
        } else {
            return READ_OK;
        }
    }
    return READ_SHORT;
}

/* A decimal number 0..limit, ended by whitespace or a comment. The last
 * field before the samples (a PNM's maxval) consumes what ends it: one
 * whitespace byte, or a comment through its end of line. */
static int read_uint(cursor *c, unsigned long limit, unsigned long *out, int last) {
    if (skip_space(c)) return READ_SHORT;
    if (*c->p < '0' || *c->p > '9') return READ_BAD;
    unsigned long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (unsigned long)(*c->p++ - '0');
        if (v > limit) return READ_BAD;
    }
    if (c->p >= c->end) return READ_SHORT;
    *out = v;
    if (*c->p == '#') return last ? skip_comment(c) : READ_OK;
    if (!is_space(*c->p)) return READ_BAD;
    if (last) c->p++;
    return READ_OK;
}

/* A PAM header line's keyword or value token into buf: printable ASCII. */
static int read_token(cursor *c, char *buf, size_t cap) {
    if (skip_space(c)) return READ_SHORT;
    size_t n = 0;
    while (c->p < c->end && !is_space(*c->p)) {
        if (*c->p < 0x21 || *c->p > 0x7e || n + 1 >= cap) return READ_BAD;
        buf[n++] = (char)*c->p++;
    }
    if (c->p >= c->end) return READ_SHORT;
    buf[n] = '\0';
    return READ_OK;
}

/* P5 or P6 after the magic number: width, height, maxval. */
static dd_status parse_pnm_fields(cursor *c, uint64_t max_pixels, pnm_header *h, int *done) {
    unsigned long *fields[3] = {&h->width, &h->height, &h->maxval};
    for (int i = 0; i < 3; i++) {
        const int r = read_uint(c, 1000000000ul, fields[i], i == 2);
        if (r == READ_SHORT) return DD_OK;
        if (r == READ_BAD) return util_fail(DD_ERR_CORRUPT, "PNM header is not numeric");
        /* The limits as soon as the size is known: a header alone
         * claiming a huge image is over the limit, whatever follows. */
        dd_status st;
        if (i == 1 && (st = img_check_size((long)h->width, (long)h->height, max_pixels))) return st;
    }
    *done = 1;
    return DD_OK;
}

/* P7 after the magic number: KEY value lines up to ENDHDR. */
static dd_status parse_pam_fields(cursor *c, uint64_t max_pixels, pnm_header *h, int *done) {
    char key[32], type[256] = "";
    unsigned long depth = 0;
    int have = 0, r;
    dd_status st;
    for (;;) {
        if ((r = read_token(c, key, sizeof key)) == READ_SHORT) return DD_OK;
        /* Binary bytes where a field should be: the samples began. */
        if (r == READ_BAD) return util_fail(DD_ERR_CORRUPT, "PAM header lacks ENDHDR");
        if (!strcmp(key, "ENDHDR")) break;
        unsigned long *field = !strcmp(key, "WIDTH") ? &h->width : !strcmp(key, "HEIGHT") ? &h->height
                             : !strcmp(key, "DEPTH") ? &depth : !strcmp(key, "MAXVAL") ? &h->maxval : NULL;
        if (field) {
            if ((r = read_uint(c, 1000000000ul, field, 0)) == READ_SHORT) return DD_OK;
            if (r == READ_BAD) return util_fail(DD_ERR_CORRUPT, "PAM %s is not a number", key);
            const int bit = field == &h->width ? 1 : field == &h->height ? 2 : field == &depth ? 4 : 8;
            if ((have & 3) != 3 && ((have | bit) & 3) == 3 &&
                (st = img_check_size((long)h->width, (long)h->height, max_pixels)))
                return st;
            have |= bit;
        } else if (!strcmp(key, "TUPLTYPE")) {
            if ((r = read_token(c, type, sizeof type)) == READ_SHORT) return DD_OK;
            if (r == READ_BAD) return util_fail(DD_ERR_CORRUPT, "PAM TUPLTYPE has no sound value");
        } else {
            return util_fail(DD_ERR_CORRUPT, "PAM header has an unknown field '%s'", key);
        }
    }
    /* ENDHDR ends its line. */
    while (c->p < c->end && *c->p != '\n') {
        if (!is_space(*c->p)) return util_fail(DD_ERR_CORRUPT, "PAM: junk after ENDHDR");
        c->p++;
    }
    if (c->p >= c->end) return DD_OK;
    c->p++;
    if (have != 15) return util_fail(DD_ERR_CORRUPT, "PAM header lacks WIDTH, HEIGHT, DEPTH or MAXVAL");
    /* BLACKANDWHITE is grey with maxval 1 (Netpbm's pamtopnm reads it so).
     * A known type must match DEPTH; without one, or with one we do not
     * know, DEPTH alone says what the samples are (as Netpbm does). */
    static const struct { const char *name; int channels, bilevel; } types[] = {
        {"GRAYSCALE", 1, 0}, {"GRAYSCALE_ALPHA", 2, 0}, {"RGB", 3, 0}, {"RGB_ALPHA", 4, 0},
        {"BLACKANDWHITE", 1, 1}, {"BLACKANDWHITE_ALPHA", 2, 1}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(type, types[i].name)) h->channels = types[i].channels, h->bilevel = types[i].bilevel;
    if (h->channels && depth != (unsigned long)h->channels)
        return util_fail(DD_ERR_CORRUPT, "PAM DEPTH %lu does not match tuple type %s", depth, type);
    if (!h->channels) {
        if (depth < 1 || depth > 4)
            return util_fail(DD_ERR_CORRUPT, "PAM DEPTH %lu with no tuple type we know ('%s'): not 1 to 4", depth,
                             type);
        h->channels = (int)depth;
    }
    *done = 1;
    return DD_OK;
}

/* The header of data[0..size), shared by the probe and the decoder: DD_OK
 * with header_bytes 0 while the bytes end before the header does. */
static dd_status parse_header(const unsigned char *data, size_t size, uint64_t max_pixels, pnm_header *h) {
    memset(h, 0, sizeof *h);
    if (size < 2) return DD_OK;
    cursor c = {data + 2, data + size, NULL, 0};
    int done = 0;
    dd_status st;
    if (data[1] == '7') {
        st = parse_pam_fields(&c, max_pixels, h, &done);
    } else {
        h->channels = data[1] == '5' ? 1 : 3;
        st = parse_pnm_fields(&c, max_pixels, h, &done);
    }
    if (st || !done) return st;
    if (h->maxval < 1 || h->maxval > 65535) return util_fail(DD_ERR_CORRUPT, "PNM maxval %lu outside 1..65535", h->maxval);
    if (h->bilevel && h->maxval != 1)
        return util_fail(DD_ERR_CORRUPT, "PAM BLACKANDWHITE with maxval %lu, not 1", h->maxval);
    if ((st = img_check_size((long)h->width, (long)h->height, max_pixels))) return st;
    h->header_bytes = (size_t)(c.p - data);
    h->comment = c.comment, h->comment_len = c.comment_len;
    return DD_OK;
}

/* Bytes of the samples after a sound header (width and height checked). */
static size_t sample_bytes(const pnm_header *h) {
    return (size_t)h->width * h->height * (size_t)h->channels * (h->maxval > 255 ? 2 : 1);
}

dd_status img_probe_pnm(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image_info *info) {
    pnm_header h;
    dd_status st = parse_header(data, size, max_pixels, &h);
    if (st || !h.header_bytes) return st;
    info->width = (int)h.width, info->height = (int)h.height;
    info->max_bytes = (uint64_t)h.header_bytes + sample_bytes(&h);
    return DD_OK;
}

dd_status img_load_pnm(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out) {
    pnm_header h;
    dd_status st;
    *out = NULL;
    if ((st = parse_header(data, size, max_pixels, &h))) return st;
    if (!h.header_bytes)
        return util_fail(DD_ERR_CORRUPT, data[1] == '7' ? "PAM header ends before ENDHDR (truncated)"
                                                        : "PNM header ends early (truncated)");
    const unsigned char *p = data + h.header_bytes;
    const int in_bytes = h.maxval > 255 ? 2 : 1;
    const size_t count = (size_t)h.width * h.height * (size_t)h.channels;
    if (size - h.header_bytes < sample_bytes(&h))
        return util_fail(DD_ERR_CORRUPT, "PNM data ends early: %zu of %zu bytes", size - h.header_bytes,
                         sample_bytes(&h));
    dd_image *im;
    if ((st = img_new((int)h.width, (int)h.height, h.channels, in_bytes * 8, 0, &im))) return st;
    im->format = data[1] == '7' ? DD_FORMAT_PAM : DD_FORMAT_PNM;
    const unsigned full = in_bytes == 2 ? 65535 : 255;
    const unsigned long maxval = h.maxval;
    for (size_t i = 0; i < count; i++) {
        unsigned v = in_bytes == 2 ? (unsigned)p[2 * i] << 8 | p[2 * i + 1] : p[i];
        if (v > maxval) {
            dd_image_free(im);
            return util_fail(DD_ERR_CORRUPT, "PNM sample %u is over maxval %lu", v, maxval);
        }
        /* Other maxvals are scaled to the full 8- or 16-bit range. */
        if (maxval != full) v = (unsigned)((v * (unsigned long)full + maxval / 2) / maxval);
        img_set(im, i, v);
    }
    if (h.comment && (st = img_set_comment(im, h.comment, h.comment_len))) {
        dd_image_free(im);
        return st;
    }
    *out = im;
    return DD_OK;
}

/* One comment line: newlines in the text would end it early. */
static void put_comment(img_buffer *b, const char *comment) {
    if (!comment) return;
    img_buffer_put(b, "# ", 2);
    for (const char *s = comment; *s; s++) img_buffer_put(b, *s == '\n' || *s == '\r' ? " " : s, 1);
    img_buffer_put(b, "\n", 1);
}

/* Luma by ITU-R BT.601 weights, rounded, in integers. */
static unsigned luma(unsigned r, unsigned g, unsigned b) {
    return (unsigned)((299ul * r + 587ul * g + 114ul * b + 500) / 1000);
}

/* PNM holds grey or RGB: alpha is dropped (PAM keeps it). PGM is always
 * grey (colour becomes luma), PPM always RGB (grey repeated). Netpbm has
 * no place for an ICC profile: it is dropped too. */
dd_status img_save_pnm(const dd_image *im, dd_format format, const char *comment, img_buffer *b) {
    const int colour = im->channels >= 3;
    const int out_ch = format == DD_FORMAT_PAM ? im->channels : format == DD_FORMAT_PGM ? 1
                     : format == DD_FORMAT_PPM ? 3 : colour ? 3 : 1;
    const unsigned maxval = im->depth == 16 ? 65535 : 255;
    char head[256];
    if (format == DD_FORMAT_PAM) {
        static const char *types[] = {"", "GRAYSCALE", "GRAYSCALE_ALPHA", "RGB", "RGB_ALPHA"};
        img_buffer_put(b, "P7\n", 3);
        put_comment(b, comment);
        int n = snprintf(head, sizeof head, "WIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %u\nTUPLTYPE %s\nENDHDR\n",
                         im->width, im->height, out_ch, maxval, types[out_ch]);
        img_buffer_put(b, head, (size_t)n);
    } else {
        img_buffer_put(b, out_ch == 3 ? "P6\n" : "P5\n", 3);
        put_comment(b, comment);
        int n = snprintf(head, sizeof head, "%d %d\n%u\n", im->width, im->height, maxval);
        img_buffer_put(b, head, (size_t)n);
    }
    const size_t row_samples = (size_t)im->width * (size_t)out_ch;
    const size_t row_bytes = row_samples * (size_t)(im->depth / 8);
    unsigned char *row = malloc(row_bytes);
    if (!row) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (int y = 0; y < im->height; y++) {
        for (int x = 0; x < im->width; x++) {
            const size_t i = ((size_t)y * im->width + x) * (size_t)im->channels;
            unsigned v[4];
            if (format == DD_FORMAT_PAM)
                for (int k = 0; k < out_ch; k++) v[k] = img_get(im, i + (size_t)k);
            else if (out_ch == 1)
                v[0] = colour ? luma(img_get(im, i), img_get(im, i + 1), img_get(im, i + 2)) : img_get(im, i);
            else
                for (int k = 0; k < 3; k++) v[k] = img_get(im, i + (colour ? (size_t)k : 0));
            for (int k = 0; k < out_ch; k++) {
                const size_t at = (size_t)x * out_ch + (size_t)k;
                if (im->depth == 16) row[2 * at] = (unsigned char)(v[k] >> 8), row[2 * at + 1] = (unsigned char)v[k];
                else row[at] = (unsigned char)v[k];
            }
        }
        img_buffer_put(b, row, row_bytes);
    }
    free(row);
    return DD_OK;
}
