/* Netpbm: P5 (grey), P6 (RGB) and P7 (PAM) with maxval 1..65535, binary.
 * Read strictly: a missing field, a bad maxval, a sample over maxval or
 * data that ends early is an error. No ICC profile: the formats hold none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "util/util.h"

typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Skips whitespace and '#' comments. */
static void skip_space(cursor *c) {
    while (c->p < c->end) {
        if (*c->p == '#') {
            while (c->p < c->end && *c->p != '\n') c->p++;
        } else if (is_space(*c->p)) {
            c->p++;
        } else {
            break;
        }
    }
}

/* A decimal number 0..limit; 0 on error. */
static int read_uint(cursor *c, unsigned long limit, unsigned long *out) {
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    unsigned long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (unsigned long)(*c->p++ - '0');
        if (v > limit) return 0;
    }
    *out = v;
    return c->p < c->end && is_space(*c->p);
}

/* A PAM header line's keyword or value token into buf. */
static int read_token(cursor *c, char *buf, size_t cap) {
    skip_space(c);
    size_t n = 0;
    while (c->p < c->end && !is_space(*c->p)) {
        if (n + 1 >= cap) return 0;
        buf[n++] = (char)*c->p++;
    }
    buf[n] = '\0';
    return n > 0;
}

static dd_status parse_pam_header(cursor *c, unsigned long *w, unsigned long *h, unsigned long *depth,
                                  unsigned long *maxval, int *channels, int *bilevel) {
    char key[32], type[32] = "";
    int have = 0;
    for (;;) {
        if (!read_token(c, key, sizeof key)) return util_fail(DD_ERR_CORRUPT, "PAM header ends before ENDHDR");
        if (!strcmp(key, "ENDHDR")) break;
        unsigned long *field = !strcmp(key, "WIDTH") ? w : !strcmp(key, "HEIGHT") ? h
                             : !strcmp(key, "DEPTH") ? depth : !strcmp(key, "MAXVAL") ? maxval : NULL;
        if (field) {
            if (!read_uint(c, 1000000000ul, field)) return util_fail(DD_ERR_CORRUPT, "PAM %s is not a number", key);
            have |= field == w ? 1 : field == h ? 2 : field == depth ? 4 : 8;
        } else if (!strcmp(key, "TUPLTYPE")) {
            if (!read_token(c, type, sizeof type)) return util_fail(DD_ERR_CORRUPT, "PAM TUPLTYPE has no value");
        } else {
            /* Binary bytes where a field should be: the samples began. */
            for (const char *k = key; *k; k++)
                if (*k < 0x21 || *k > 0x7e) return util_fail(DD_ERR_CORRUPT, "PAM header lacks ENDHDR");
            return util_fail(DD_ERR_CORRUPT, "PAM header has an unknown field '%s'", key);
        }
    }
    if (have != 15) return util_fail(DD_ERR_CORRUPT, "PAM header lacks WIDTH, HEIGHT, DEPTH or MAXVAL");
    /* BLACKANDWHITE is grey with maxval 1 (Netpbm's pamtopnm reads it so). */
    static const struct { const char *name; int channels, bilevel; } types[] = {
        {"GRAYSCALE", 1, 0}, {"GRAYSCALE_ALPHA", 2, 0}, {"RGB", 3, 0}, {"RGB_ALPHA", 4, 0},
        {"BLACKANDWHITE", 1, 1}, {"BLACKANDWHITE_ALPHA", 2, 1}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(type, types[i].name)) *channels = types[i].channels, *bilevel = types[i].bilevel;
    if (!*channels) return util_fail(DD_ERR_CORRUPT, "PAM tuple type '%s' is not GRAYSCALE, RGB, BLACKANDWHITE (or _ALPHA)", type);
    if (*depth != (unsigned long)*channels)
        return util_fail(DD_ERR_CORRUPT, "PAM DEPTH %lu does not match tuple type %s", *depth, type);
    /* ENDHDR ends its line. */
    while (c->p < c->end && *c->p != '\n') {
        if (!is_space(*c->p)) return util_fail(DD_ERR_CORRUPT, "PAM: junk after ENDHDR");
        c->p++;
    }
    if (c->p >= c->end) return util_fail(DD_ERR_CORRUPT, "PAM file ends after its header");
    c->p++;
    return DD_OK;
}

dd_status img_load_pnm(const unsigned char *data, size_t size, uint64_t max_pixels, dd_image **out) {
    cursor c = {data + 2, data + size};
    unsigned long w = 0, h = 0, maxval = 0, depth = 0;
    int channels = 0, bilevel = 0;
    dd_status st;
    *out = NULL;
    if (data[1] == '7') {
        if ((st = parse_pam_header(&c, &w, &h, &depth, &maxval, &channels, &bilevel))) return st;
    } else {
        channels = data[1] == '5' ? 1 : 3;
        if (!read_uint(&c, 1000000000ul, &w) || !read_uint(&c, 1000000000ul, &h) ||
            !read_uint(&c, 1000000000ul, &maxval))
            return util_fail(DD_ERR_CORRUPT, "PNM header is incomplete or not numeric");
        c.p++; /* exactly one whitespace byte before the samples */
    }
    if (maxval < 1 || maxval > 65535) return util_fail(DD_ERR_CORRUPT, "PNM maxval %lu outside 1..65535", maxval);
    if (bilevel && maxval != 1) return util_fail(DD_ERR_CORRUPT, "PAM BLACKANDWHITE with maxval %lu, not 1", maxval);
    /* The limits before the length: a header alone claiming a huge image
     * is over the limit, whatever follows it. */
    if ((st = img_check_size((long)w, (long)h, max_pixels))) return st;
    const int in_bytes = maxval > 255 ? 2 : 1;
    const size_t count = (size_t)w * h * (size_t)channels;
    if ((size_t)(c.end - c.p) / (size_t)in_bytes < count)
        return util_fail(DD_ERR_CORRUPT, "PNM data ends early: %zu of %zu bytes", (size_t)(c.end - c.p),
                         count * (size_t)in_bytes);
    dd_image *im;
    if ((st = img_new((int)w, (int)h, channels, in_bytes * 8, 0, &im))) return st;
    im->format = data[1] == '7' ? DD_FORMAT_PAM : DD_FORMAT_PNM;
    const unsigned full = in_bytes == 2 ? 65535 : 255;
    for (size_t i = 0; i < count; i++) {
        unsigned v = in_bytes == 2 ? (unsigned)c.p[2 * i] << 8 | c.p[2 * i + 1] : c.p[i];
        if (v > maxval) {
            dd_image_free(im);
            return util_fail(DD_ERR_CORRUPT, "PNM sample %u is over maxval %lu", v, maxval);
        }
        /* Other maxvals are scaled to the full 8- or 16-bit range. */
        if (maxval != full) v = (unsigned)((v * (unsigned long)full + maxval / 2) / maxval);
        img_set(im, i, v);
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

/* PNM holds grey or RGB: alpha is dropped (PAM keeps it). Netpbm has no
 * place for an ICC profile: it is dropped too. */
dd_status img_save_pnm(const dd_image *im, int pam, const char *comment, img_buffer *b) {
    const int colour = im->channels >= 3 ? 3 : 1;
    const int out_ch = pam ? im->channels : colour;
    const unsigned maxval = im->depth == 16 ? 65535 : 255;
    char head[256];
    if (pam) {
        static const char *types[] = {"", "GRAYSCALE", "GRAYSCALE_ALPHA", "RGB", "RGB_ALPHA"};
        img_buffer_put(b, "P7\n", 3);
        put_comment(b, comment);
        int n = snprintf(head, sizeof head, "WIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %u\nTUPLTYPE %s\nENDHDR\n",
                         im->width, im->height, out_ch, maxval, types[out_ch]);
        img_buffer_put(b, head, (size_t)n);
    } else {
        img_buffer_put(b, colour == 3 ? "P6\n" : "P5\n", 3);
        put_comment(b, comment);
        int n = snprintf(head, sizeof head, "%d %d\n%u\n", im->width, im->height, maxval);
        img_buffer_put(b, head, (size_t)n);
    }
    const size_t row_samples = (size_t)im->width * (size_t)out_ch;
    const size_t row_bytes = row_samples * (size_t)(im->depth / 8);
    unsigned char *row = malloc(row_bytes);
    if (!row) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (int y = 0; y < im->height; y++) {
        for (int x = 0; x < im->width; x++)
            for (int k = 0; k < out_ch; k++) {
                const unsigned v = img_get(im, ((size_t)y * im->width + x) * (size_t)im->channels + (size_t)k);
                const size_t at = (size_t)x * out_ch + (size_t)k;
                if (im->depth == 16) row[2 * at] = (unsigned char)(v >> 8), row[2 * at + 1] = (unsigned char)v;
                else row[at] = (unsigned char)v;
            }
        img_buffer_put(b, row, row_bytes);
    }
    free(row);
    return DD_OK;
}
