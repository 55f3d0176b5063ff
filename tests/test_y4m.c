/* The y4m reader and writer: every chroma tag, the header kept byte for
 * byte, malformed headers refused with their messages, chroma siting, RGB
 * round trips in limited and full range, truncated and bad frames. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"
#include "image/image.h"

/* A stream in memory, handed out chunk bytes at a time (short reads). */
typedef struct mem_in {
    const unsigned char *data;
    size_t size, pos, chunk;
} mem_in;

static long mem_read(void *user, void *buf, size_t size) {
    mem_in *m = user;
    size_t n = m->size - m->pos;
    if (n > size) n = size;
    if (m->chunk && n > m->chunk) n = m->chunk;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (long)n;
}

static int mem_write(void *user, const void *data, size_t size) {
    img_buffer *b = user;
    img_buffer_put(b, data, size);
    return b->failed ? -1 : 0;
}

/* header + "\n" + n_frames frames of frame_bytes bytes (value fill + i). */
static unsigned char *make_stream(const char *header, int n_frames, size_t frame_bytes, size_t *size) {
    const size_t hl = strlen(header);
    *size = hl + 1 + (size_t)n_frames * (6 + frame_bytes);
    unsigned char *s = malloc(*size), *p = s;
    memcpy(p, header, hl), p += hl, *p++ = '\n';
    for (int f = 0; f < n_frames; f++) {
        memcpy(p, "FRAME\n", 6), p += 6;
        for (size_t i = 0; i < frame_bytes; i++) *p++ = (unsigned char)(16 + (i * 7 + (size_t)f) % 200);
    }
    return s;
}

static void test_tags(void) {
    static const struct {
        const char *tag, *name;
        int cw, ch; /* chroma plane of a 7x5 frame */
    } tags[] = {{" C420jpeg", "420jpeg", 4, 3}, {" C420", "420jpeg", 4, 3},     {"", "420jpeg", 4, 3},
                {" C420mpeg2", "420mpeg2", 4, 3}, {" C420paldv", "420paldv", 4, 3}, {" C422", "422", 4, 5},
                {" C444", "444", 7, 5},          {" Cmono", "mono", 0, 0}};
    for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
        char header[256];
        snprintf(header, sizeof header, "YUV4MPEG2 W7 H5 F30000:1001 It A128:117%s XYSCSS=FOO XCOLORRANGE=FULL X",
                 tags[t].tag);
        size_t size;
        const size_t fb = 35 + 2 * (size_t)(tags[t].cw * tags[t].ch);
        unsigned char *s = make_stream(header, 2, fb, &size);
        mem_in in = {s, size, 0, t % 2 ? 1 : 0}; /* every other one a byte at a time */
        dd_y4m_reader *r = NULL;
        dd_status st = dd_y4m_reader_new(mem_read, &in, 0, &r);
        CHECK(st == DD_OK, "%s: %s", header, dd_last_error());
        if (st) {
            free(s);
            continue;
        }
        dd_y4m_info info;
        dd_y4m_reader_info(r, &info);
        CHECK(info.width == 7 && info.height == 5, "%s: %dx%d", header, info.width, info.height);
        CHECK(!strcmp(info.chroma, tags[t].name), "%s: chroma %s", header, info.chroma);
        CHECK(info.fps_num == 30000 && info.fps_den == 1001, "%s: F %d:%d", header, info.fps_num, info.fps_den);
        CHECK(info.aspect_num == 128 && info.aspect_den == 117, "%s: A", header);
        CHECK(info.interlace == 't' && info.full_range == 1, "%s: I %c range %d", header, info.interlace,
              info.full_range);
        CHECK(in.pos == strlen(header) + 1, "%s: the reader read %zu bytes past the header", header,
              in.pos - strlen(header) - 1);
        img_buffer out = {0};
        dd_y4m_writer *w = NULL;
        CHECK(dd_y4m_writer_new(r, mem_write, &out, &w) == DD_OK, "%s: writer: %s", header, dd_last_error());
        int frames = 0;
        for (;;) {
            dd_image *im = NULL;
            st = dd_y4m_read_frame(r, &im);
            CHECK(st == DD_OK, "%s: frame: %s", header, dd_last_error());
            if (st || !im) break;
            CHECK(dd_image_channels(im) == 3 && dd_image_depth(im) == 8 && dd_image_width(im) == 7,
                  "%s: frame of %d channels", header, dd_image_channels(im));
            if (w) CHECK(dd_y4m_write_frame(w, im) == DD_OK, "%s: write: %s", header, dd_last_error());
            dd_image_free(im);
            frames++;
        }
        CHECK(frames == 2, "%s: %d frames", header, frames);
        dd_y4m_reader_info(r, &info);
        CHECK(info.frames == 2, "%s: info.frames %ld", header, info.frames);
        const size_t hl = strlen(header);
        CHECK(out.size == size && !memcmp(out.data, header, hl) && out.data[hl] == '\n' &&
                  !memcmp(out.data + hl + 1, "FRAME\n", 6),
              "%s: written %zu bytes, header '%.*s'", header, out.size, (int)hl, out.data ? (char *)out.data : "");
        if (w) {
            /* a frame of the wrong size is refused */
            dd_image *small = NULL;
            if (img_new(6, 5, 3, 8, 0, &small) == DD_OK) {
                CHECK(dd_y4m_write_frame(w, small) == DD_ERR_INVALID_ARG, "%s: a 6x5 frame written", header);
                dd_image_free(small);
            }
        }
        dd_y4m_writer_free(w);
        dd_y4m_reader_free(r);
        free(out.data);
        free(s);
    }
}

static void test_bad_headers(void) {
    static const struct {
        const char *stream;
        uint64_t max_pixels;
        dd_status st;
        const char *message; /* a part of it */
    } bad[] = {
        {"", 0, DD_ERR_CORRUPT, "empty stream"},
        {"YUV4MPEG3 W8 H8\n", 0, DD_ERR_CORRUPT, "not a YUV4MPEG2 stream"},
        {"\x89PNG\r\n", 0, DD_ERR_CORRUPT, "not a YUV4MPEG2 stream"},
        {"YUV4MPEG2 W8 H8", 0, DD_ERR_CORRUPT, "truncated (no newline)"},
        {"YUV4MPEG2 H8\n", 0, DD_ERR_CORRUPT, "no W field"},
        {"YUV4MPEG2 W8\n", 0, DD_ERR_CORRUPT, "no H field"},
        {"YUV4MPEG2 W0 H8\n", 0, DD_ERR_CORRUPT, "bad value in 'W0'"},
        {"YUV4MPEG2 W-8 H8\n", 0, DD_ERR_CORRUPT, "bad value in 'W-8'"},
        {"YUV4MPEG2 W8x H8\n", 0, DD_ERR_CORRUPT, "bad value in 'W8x'"},
        {"YUV4MPEG2 W8 H99999999999999999999\n", 0, DD_ERR_CORRUPT, "bad value"},
        {"YUV4MPEG2 W70000 H8\n", 0, DD_ERR_LIMIT, "70000"},
        {"YUV4MPEG2 W2000 H2000\n", 1000000, DD_ERR_LIMIT, "2000x2000"},
        {"YUV4MPEG2 W8 H8 C420p10\n", 0, DD_ERR_CORRUPT, "C420p10: chroma format not supported"},
        {"YUV4MPEG2 W8 H8 C444alpha\n", 0, DD_ERR_CORRUPT, "not supported"},
        {"YUV4MPEG2 W8 H8 Cmono16\n", 0, DD_ERR_CORRUPT, "not supported"},
        {"YUV4MPEG2 W8 H8 Q1\n", 0, DD_ERR_CORRUPT, "unknown field 'Q1'"},
        {"YUV4MPEG2 W8  H8\n", 0, DD_ERR_CORRUPT, "empty field"},
        {"YUV4MPEG2 W8 H8 \n", 0, DD_ERR_CORRUPT, "empty field"},
        {"YUV4MPEG2W8 H8\n", 0, DD_ERR_CORRUPT, "not a YUV4MPEG2"},
        {"YUV4MPEG2 W8 H8 W8\n", 0, DD_ERR_CORRUPT, "'W8' repeats a field"},
        {"YUV4MPEG2 W8 H8 C444 C420\n", 0, DD_ERR_CORRUPT, "repeats"},
        {"YUV4MPEG2 W8 H8 Ix\n", 0, DD_ERR_CORRUPT, "bad value in 'Ix'"},
        {"YUV4MPEG2 W8 H8 F25:0\n", 0, DD_ERR_CORRUPT, "bad value in 'F25:0'"},
        {"YUV4MPEG2 W8 H8 F25\n", 0, DD_ERR_CORRUPT, "bad value in 'F25'"},
        {"YUV4MPEG2 W8 H8 A1:\n", 0, DD_ERR_CORRUPT, "bad value in 'A1:'"},
        {"YUV4MPEG2 W8 H8 XCOLORRANGE=WIDE\n", 0, DD_ERR_CORRUPT, "bad value in 'XCOLORRANGE=WIDE'"},
        {"YUV4MPEG2 W8 H8 XCOLORRANGE=FULL XCOLORRANGE=FULL\n", 0, DD_ERR_CORRUPT, "repeats"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mem_in in = {(const unsigned char *)bad[i].stream, strlen(bad[i].stream), 0, 0};
        dd_y4m_reader *r = NULL;
        const dd_status st = dd_y4m_reader_new(mem_read, &in, bad[i].max_pixels, &r);
        CHECK(st == bad[i].st && !r, "'%s': status %d (want %d), %s", bad[i].stream, st, bad[i].st, dd_last_error());
        CHECK(strstr(dd_last_error(), bad[i].message), "'%s': message '%s' lacks '%s'", bad[i].stream,
              dd_last_error(), bad[i].message);
        dd_y4m_reader_free(r);
    }
    /* a line over the cap is refused once the cap is reached */
    const size_t n = 70000;
    char *huge = malloc(n + 1);
    memcpy(huge, "YUV4MPEG2 W8 H8 X", 17);
    memset(huge + 17, 'a', n - 17);
    huge[n] = '\0';
    mem_in in = {(const unsigned char *)huge, n, 0, 0};
    dd_y4m_reader *r = NULL;
    CHECK(dd_y4m_reader_new(mem_read, &in, 0, &r) == DD_ERR_LIMIT, "a 70000-byte header: %s", dd_last_error());
    CHECK(in.pos <= 65536, "read %zu bytes of a header over the cap", in.pos);
    free(huge);
}

/* Writes the RGB image im as a stream with header, reads it back into *back. */
static dd_status round_trip(const char *header, const dd_image *im, dd_image **back) {
    *back = NULL;
    mem_in hin = {(const unsigned char *)header, strlen(header), 0, 0};
    dd_y4m_reader *r = NULL;
    dd_y4m_writer *w = NULL;
    img_buffer out = {0};
    dd_status st = dd_y4m_reader_new(mem_read, &hin, 0, &r);
    if (!st) st = dd_y4m_writer_new(r, mem_write, &out, &w);
    if (!st) st = dd_y4m_write_frame(w, im);
    dd_y4m_writer_free(w);
    dd_y4m_reader_free(r);
    r = NULL;
    mem_in in = {out.data, out.size, 0, 0};
    if (!st) st = dd_y4m_reader_new(mem_read, &in, 0, &r);
    if (!st) st = dd_y4m_read_frame(r, back);
    dd_y4m_reader_free(r);
    free(out.data);
    return st;
}

static int max_diff(const dd_image *a, const dd_image *b) {
    int worst = 0;
    const size_t n = (size_t)a->width * a->height * 3;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)a->samples[i] - (int)b->samples[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

/* Every RGB colour on a grid of step 3 (86^3 pixels) through 444. */
static void test_round_trip_444(void) {
    const int levels = 86, w = levels * levels, h = levels;
    dd_image *im = NULL;
    if (img_new(w, h, 3, 8, 0, &im)) {
        CHECK(0, "img_new: %s", dd_last_error());
        return;
    }
    for (int b = 0; b < levels; b++)
        for (int i = 0; i < w; i++) {
            unsigned char *p = im->samples + ((size_t)b * w + i) * 3;
            p[0] = (unsigned char)(3 * (i / levels)), p[1] = (unsigned char)(3 * (i % levels)),
            p[2] = (unsigned char)(3 * b);
        }
    static const struct {
        const char *header;
        int bound; /* measured: 1 full range; 2 limited, where a Y step is 255/219 RGB levels and a
                    * C step 255/224 (R = Y + 1.402 Cr: up to 0.58 + 0.80 before rounding) */
    } cases[] = {{"YUV4MPEG2 W7396 H86 C444 XCOLORRANGE=FULL\n", 1}, {"YUV4MPEG2 W7396 H86 C444\n", 2},
                 {"YUV4MPEG2 W7396 H86 C444 XCOLORRANGE=LIMITED\n", 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dd_image *back = NULL;
        const dd_status st = round_trip(cases[c].header, im, &back);
        CHECK(st == DD_OK, "%s: %s", cases[c].header, dd_last_error());
        if (!st) {
            const int d = max_diff(im, back);
            fprintf(stderr, "444 round trip, %.*s: max |diff| %d\n", (int)strlen(cases[c].header) - 1,
                    cases[c].header, d);
            CHECK(d <= cases[c].bound, "%s: max diff %d > %d", cases[c].header, d, cases[c].bound);
        }
        dd_image_free(back);
    }
    /* grey (R = G = B) comes back exactly in full range */
    for (int i = 0; i < w * h; i++) im->samples[3 * i + 1] = im->samples[3 * i + 2] = im->samples[3 * i];
    dd_image *back = NULL;
    if (round_trip("YUV4MPEG2 W7396 H86 C444 XCOLORRANGE=FULL\n", im, &back) == DD_OK)
        CHECK(max_diff(im, back) == 0, "grey through full-range 444: max diff %d", max_diff(im, back));
    dd_image_free(back);
    back = NULL;
    if (round_trip("YUV4MPEG2 W7396 H86 Cmono XCOLORRANGE=FULL\n", im, &back) == DD_OK)
        CHECK(max_diff(im, back) == 0, "grey through full-range mono: max diff %d", max_diff(im, back));
    dd_image_free(back);
    dd_image_free(im);
}

/* A smooth image (slow sines, up to 1.5 levels a pixel) through the
 * subsampled formats: measured max |diff| 2 for each, the bound is 3. */
static void test_round_trip_smooth(void) {
    const int w = 97, h = 61; /* odd: the last chroma sample has one luma column */
    dd_image *im = NULL;
    if (img_new(w, h, 3, 8, 0, &im)) return;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = im->samples + ((size_t)y * w + x) * 3;
            p[0] = (unsigned char)lrint(128 + 100 * sin(x * 0.015 + y * 0.01));
            p[1] = (unsigned char)lrint(128 + 90 * cos(x * 0.012 - y * 0.014));
            p[2] = (unsigned char)lrint(128 + 100 * sin(0.5 + y * 0.015));
        }
    static const char *chromas[] = {"420jpeg", "420mpeg2", "420paldv", "422"};
    for (int range = 0; range < 2; range++)
        for (size_t c = 0; c < sizeof chromas / sizeof chromas[0]; c++) {
            char header[128];
            snprintf(header, sizeof header, "YUV4MPEG2 W%d H%d C%s%s\n", w, h, chromas[c],
                     range ? " XCOLORRANGE=FULL" : "");
            dd_image *back = NULL;
            const dd_status st = round_trip(header, im, &back);
            CHECK(st == DD_OK, "%s: %s", header, dd_last_error());
            if (!st) {
                const int d = max_diff(im, back);
                fprintf(stderr, "smooth round trip, C%s%s: max |diff| %d\n", chromas[c], range ? " full" : "", d);
                CHECK(d <= 3, "C%s%s: max diff %d > 3", chromas[c], range ? " full" : "", d);
            }
            dd_image_free(back);
        }
    dd_image_free(im);
}

/* Chroma where the siting says: a Cb ramp across (420jpeg against
 * 420mpeg2) and Cb and Cr ramps down (420paldv: Cr on each pair's first
 * row, Cb on its second), read at luma samples where the two differ. */
static void test_siting(void) {
    const int w = 8, h = 8, cw = 4, ch = 4;
    const size_t fb = 64 + 2 * 16;
    unsigned char frame[64 + 2 * 16];
    memset(frame, 128, sizeof frame);
    for (int i = 0; i < ch; i++)
        for (int j = 0; j < cw; j++) {
            frame[64 + i * cw + j] = (unsigned char)(128 + 8 * j + 16 * i);  /* Cb */
            frame[64 + 16 + i * cw + j] = (unsigned char)(128 + 16 * i);     /* Cr */
        }
    static const struct {
        const char *chroma;
        double cb_x, cb_y, cr_y; /* the chroma coordinates of luma (2, 3) */
    } cases[] = {{"420jpeg", 0.75, 1.25, 1.25}, {"420mpeg2", 1.0, 1.25, 1.25}, {"420paldv", 1.0, 1.0, 1.5}};
    for (size_t c = 0; c < 3; c++) {
        char header[64];
        snprintf(header, sizeof header, "YUV4MPEG2 W%d H%d C%s XCOLORRANGE=FULL", w, h, cases[c].chroma);
        size_t size;
        unsigned char *s = make_stream(header, 1, fb, &size);
        memcpy(s + size - fb, frame, fb);
        mem_in in = {s, size, 0, 0};
        dd_y4m_reader *r = NULL;
        dd_image *im = NULL;
        if (dd_y4m_reader_new(mem_read, &in, 0, &r) == DD_OK && dd_y4m_read_frame(r, &im) == DD_OK && im) {
            const double cb = 8 * cases[c].cb_x + 16 * cases[c].cb_y, cr = 16 * cases[c].cr_y;
            const unsigned char *p = im->samples + (3 * (size_t)w + 2) * 3;
            char what[96];
            snprintf(what, sizeof what, "C%s: R at (2, 3)", cases[c].chroma);
            check_close(what, p[0], fmin(255, 128 + 1.402 * cr), 0.5);
            snprintf(what, sizeof what, "C%s: B at (2, 3)", cases[c].chroma);
            check_close(what, p[2], fmin(255, 128 + 1.772 * cb), 0.5);
        } else {
            CHECK(0, "%s: %s", header, dd_last_error());
        }
        dd_image_free(im);
        dd_y4m_reader_free(r);
        free(s);
    }
}

static void test_truncated(void) {
    const char *header = "YUV4MPEG2 W8 H6 F25:1 C420jpeg";
    const size_t fb = 48 + 2 * 12;
    size_t size;
    unsigned char *s = make_stream(header, 3, fb, &size);
    static const struct {
        size_t cut;              /* bytes taken off the end */
        const char *tail;        /* replaces the last frame's FRAME line, or NULL */
        dd_status st;
        const char *message;
    } cases[] = {{40, NULL, DD_ERR_CORRUPT, "frame 3: truncated after 32 of 72 bytes"},
                 {fb, NULL, DD_ERR_CORRUPT, "frame 3: truncated after 0 of 72 bytes"},
                 {fb + 3, NULL, DD_ERR_CORRUPT, "frame 3: truncated in its FRAME line"},
                 {0, "FRAMX\n", DD_ERR_CORRUPT, "frame 3: no FRAME marker"},
                 {0, "FRAMES", DD_ERR_CORRUPT, "frame 3: no FRAME marker"},
                 {0, "FRAME ", DD_OK, ""}, /* becomes "FRAME Ixyz\n": parameters, read and dropped */
                 {fb + 6, NULL, DD_OK, ""}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char *t = malloc(size + 16);
        memcpy(t, s, size);
        size_t n = size - cases[c].cut;
        if (cases[c].tail) {
            const size_t at = size - fb - 6;
            if (!strcmp(cases[c].tail, "FRAME ")) {
                /* "FRAME Ixyz\n" then the planes */
                memcpy(t + at, "FRAME Ixyz\n", 11);
                memcpy(t + at + 11, s + at + 6, fb);
                n = at + 11 + fb;
            } else {
                memcpy(t + at, cases[c].tail, 6);
            }
        }
        mem_in in = {t, n, 0, 7};
        dd_y4m_reader *r = NULL;
        int good = 0;
        dd_status st = dd_y4m_reader_new(mem_read, &in, 0, &r);
        CHECK(st == DD_OK, "%s", dd_last_error());
        while (!st) {
            dd_image *im = NULL;
            st = dd_y4m_read_frame(r, &im);
            if (!im) break;
            good++;
            dd_image_free(im);
        }
        const int want_good = cases[c].cut == fb + 6 ? 2 : cases[c].st ? 2 : 3;
        CHECK(st == cases[c].st, "case %zu: status %d, %s", c, st, dd_last_error());
        CHECK(good == want_good, "case %zu: %d good frames, want %d", c, good, want_good);
        if (cases[c].st) CHECK(!strcmp(dd_last_error(), cases[c].message), "case %zu: '%s'", c, dd_last_error());
        dd_y4m_reader_free(r);
        free(t);
    }
    free(s);
}

int main(void) {
    test_tags();
    test_bad_headers();
    test_siting();
    test_round_trip_444();
    test_round_trip_smooth();
    test_truncated();
    return check_done("test_y4m");
}
