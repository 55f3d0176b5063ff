/* YUV4MPEG2 streams: the header parsed and kept, frames converted between
 * 8-bit Y'CbCr (BT.601, limited or full range, any of the usual sitings) and
 * 8-bit RGB images. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "util/util.h"
#include "video/video.h"

struct dd_y4m_reader {
    dd_read_fn read;
    void *user;
    uint64_t max_pixels;
    y4m_format f;
    unsigned char *frame; /* frame_bytes */
    long frames;
};

struct dd_y4m_writer {
    dd_write_fn write;
    void *user;
    y4m_format f;
    unsigned char *out;  /* "FRAME\n" and the planes */
    float *cb, *cr;      /* width x height: chroma before it is subsampled */
};

static const char MAGIC[] = "YUV4MPEG2";
static const char FRAME_TAG[] = "FRAME";

/* BT.601 */
static const double KR = 0.299, KB = 0.114;

static const struct {
    const char *tag;
    y4m_chroma chroma;
} CHROMAS[] = {{"420jpeg", Y4M_420JPEG}, {"420", Y4M_420JPEG}, {"420mpeg2", Y4M_420MPEG2},
               {"420paldv", Y4M_420PALDV}, {"422", Y4M_422}, {"444", Y4M_444}, {"mono", Y4M_MONO}};

static const char *chroma_name(y4m_chroma c) {
    switch (c) {
    case Y4M_420JPEG: return "420jpeg";
    case Y4M_420MPEG2: return "420mpeg2";
    case Y4M_420PALDV: return "420paldv";
    case Y4M_422: return "422";
    case Y4M_444: return "444";
    case Y4M_MONO: return "mono";
    }
    return "?";
}

/* One call of the read function (an EINTR is the caller's to retry or not). */
static dd_status read_some(dd_y4m_reader *r, void *buf, size_t size, size_t *got) {
    *got = 0;
    const long n = r->read(r->user, buf, size);
    if (n < 0) return util_fail(DD_ERR_IO, "read error: %s", strerror(errno));
    *got = (size_t)n;
    return DD_OK;
}

/* Reads until size bytes or the end: *got tells how many came. */
static dd_status read_full(dd_y4m_reader *r, unsigned char *buf, size_t size, size_t *got) {
    *got = 0;
    while (*got < size) {
        size_t n;
        dd_status st = read_some(r, buf + *got, size - *got, &n);
        if (st) return st;
        if (n == 0) break;
        *got += n;
    }
    return DD_OK;
}

/* "N:D" with both non-negative. */
static int parse_ratio(const char *s, int *num, int *den) {
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return 0;
    long n = strtol(s, &end, 10);
    if (errno || *end != ':' || n > 0x7fffffff) return 0;
    s = end + 1;
    if (*s < '0' || *s > '9') return 0;
    long d = strtol(s, &end, 10);
    if (errno || *end || d > 0x7fffffff) return 0;
    *num = (int)n, *den = (int)d;
    return 1;
}

static int parse_side(const char *s, long *v) {
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return 0;
    *v = strtol(s, &end, 10);
    return !errno && !*end && *v > 0;
}

/* The fields of a header line (without "YUV4MPEG2" and the newline), into
 * f; f->header is set by the caller. */
static dd_status parse_fields(char *line, uint64_t max_pixels, y4m_format *f) {
    long w = 0, h = 0;
    int seen_w = 0, seen_h = 0, seen_f = 0, seen_a = 0, seen_i = 0, seen_c = 0, seen_range = 0;
    f->chroma = Y4M_420JPEG;
    f->interlace = '?';
    char *p = line;
    while (*p) {
        if (*p != ' ') return util_fail(DD_ERR_CORRUPT, "y4m header: fields must be separated by one space");
        p++;
        char *end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        const char save = *end;
        *end = '\0';
        const char *tok = p;
        if (!*tok) return util_fail(DD_ERR_CORRUPT, "y4m header: an empty field (two spaces)");
        int *seen = NULL, ok = 1;
        switch (tok[0]) {
        case 'W': seen = &seen_w, ok = parse_side(tok + 1, &w); break;
        case 'H': seen = &seen_h, ok = parse_side(tok + 1, &h); break;
        case 'F':
            seen = &seen_f, ok = parse_ratio(tok + 1, &f->fps_num, &f->fps_den);
            ok = ok && (f->fps_den > 0 || f->fps_num == 0);
            break;
        case 'A': seen = &seen_a, ok = parse_ratio(tok + 1, &f->aspect_num, &f->aspect_den); break;
        case 'I':
            seen = &seen_i, ok = tok[1] && !tok[2] && strchr("ptbm?", tok[1]);
            f->interlace = tok[1];
            break;
        case 'C': {
            seen = &seen_c, ok = 0;
            for (size_t i = 0; i < sizeof CHROMAS / sizeof CHROMAS[0]; i++)
                if (!strcmp(tok + 1, CHROMAS[i].tag)) f->chroma = CHROMAS[i].chroma, ok = 1;
            if (!ok)
                return util_fail(DD_ERR_CORRUPT,
                                 "y4m header: C%.40s: chroma format not supported (8-bit 420jpeg, 420mpeg2, "
                                 "420paldv, 422, 444 or mono)",
                                 tok + 1);
            break;
        }
        case 'X':
            if (!strncmp(tok, "XCOLORRANGE=", 12)) {
                seen = &seen_range;
                if (!strcmp(tok + 12, "FULL")) f->full_range = 1;
                else if (!strcmp(tok + 12, "LIMITED")) f->full_range = 0;
                else ok = 0;
            }
            break;
        default: return util_fail(DD_ERR_CORRUPT, "y4m header: unknown field '%.40s'", tok);
        }
        if (!ok) return util_fail(DD_ERR_CORRUPT, "y4m header: bad value in '%.40s'", tok);
        if (seen && (*seen)++) return util_fail(DD_ERR_CORRUPT, "y4m header: '%.40s' repeats a field", tok);
        *end = save;
        p = end;
    }
    if (!seen_w || !seen_h) return util_fail(DD_ERR_CORRUPT, "y4m header: no %s field", seen_w ? "H" : "W");
    dd_status st = img_check_size(w, h, max_pixels);
    if (st) return st;
    f->width = (int)w, f->height = (int)h;
    f->step_x = f->step_y = 1;
    f->off_x[0] = f->off_x[1] = f->off_y[0] = f->off_y[1] = 0;
    switch (f->chroma) {
    case Y4M_420JPEG: f->step_x = f->step_y = 2, f->off_x[0] = f->off_x[1] = f->off_y[0] = f->off_y[1] = 0.5; break;
    case Y4M_420MPEG2: f->step_x = f->step_y = 2, f->off_y[0] = f->off_y[1] = 0.5; break;
    case Y4M_420PALDV: f->step_x = f->step_y = 2, f->off_y[0] = 1, f->off_y[1] = 0; break;
    case Y4M_422: f->step_x = 2; break;
    case Y4M_444:
    case Y4M_MONO: break;
    }
    f->luma_bytes = (size_t)w * (size_t)h;
    if (f->chroma == Y4M_MONO) {
        f->chroma_width = f->chroma_height = 0;
        f->chroma_bytes = 0;
    } else {
        f->chroma_width = (f->width + f->step_x - 1) / f->step_x;
        f->chroma_height = (f->height + f->step_y - 1) / f->step_y;
        f->chroma_bytes = (size_t)f->chroma_width * (size_t)f->chroma_height;
    }
    f->frame_bytes = f->luma_bytes + 2 * f->chroma_bytes; /* sides <= 65535: no overflow */
    return DD_OK;
}

/* A line up to its newline into buf (NUL-terminated, newline dropped):
 * *len its length, or *len = SIZE_MAX when the stream ended before any
 * byte. prefix: the bytes it must start with (checked as they come, so
 * garbage is refused at once); with word, a space or the newline must
 * follow it ("FRAMES" is no FRAME). */
static dd_status read_line(dd_y4m_reader *r, char *buf, const char *prefix, int word, size_t *len,
                           int *bad_prefix, int *truncated) {
    const size_t plen = strlen(prefix);
    size_t n = 0;
    *bad_prefix = *truncated = 0;
    *len = 0;
    for (;;) {
        unsigned char c;
        size_t got;
        dd_status st = read_some(r, &c, 1, &got);
        if (st) return st;
        if (got == 0) {
            if (n == 0) *len = SIZE_MAX;
            else *truncated = 1, *len = n;
            return DD_OK;
        }
        if (c == '\n' && n >= plen) break;
        if ((n < plen && c != (unsigned char)prefix[n]) || (word && n == plen && c != ' ')) {
            *bad_prefix = 1;
            return DD_OK;
        }
        if (n + 1 >= Y4M_MAX_LINE_BYTES) return util_fail(DD_ERR_LIMIT, "y4m: a line longer than %d bytes", Y4M_MAX_LINE_BYTES);
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    *len = n;
    return DD_OK;
}

dd_status dd_y4m_reader_new(dd_read_fn read, void *user, uint64_t max_pixels, dd_y4m_reader **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_reader_new: out is NULL");
    *out = NULL;
    if (!read) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_reader_new: no read function");
    dd_status st = DD_ERR_NOMEM;
    dd_y4m_reader *r = calloc(1, sizeof *r);
    char *line = malloc(Y4M_MAX_LINE_BYTES);
    if (!r || !line) goto fail;
    r->read = read, r->user = user, r->max_pixels = max_pixels;
    size_t len;
    int bad, truncated;
    if ((st = read_line(r, line, "YUV4MPEG2 ", 0, &len, &bad, &truncated))) goto fail;
    if (bad || len == SIZE_MAX) {
        st = util_fail(DD_ERR_CORRUPT, bad ? "not a YUV4MPEG2 stream" : "y4m: empty stream");
        goto fail;
    }
    if (truncated) {
        st = util_fail(DD_ERR_CORRUPT, "y4m header: truncated (no newline)");
        goto fail;
    }
    if ((st = parse_fields(line + strlen(MAGIC), max_pixels, &r->f))) goto fail;
    st = DD_ERR_NOMEM;
    if (!(r->f.header = malloc(len + 1))) goto fail;
    memcpy(r->f.header, line, len + 1);
    r->f.header_len = len;
    if (!(r->frame = malloc(r->f.frame_bytes))) goto fail;
    free(line);
    *out = r;
    return DD_OK;
fail:
    if (st == DD_ERR_NOMEM) util_fail(st, "y4m: out of memory");
    free(line);
    dd_y4m_reader_free(r);
    return st;
}

void dd_y4m_reader_free(dd_y4m_reader *r) {
    if (!r) return;
    free(r->f.header);
    free(r->frame);
    free(r);
}

void dd_y4m_reader_info(const dd_y4m_reader *r, dd_y4m_info *info) {
    memset(info, 0, sizeof *info);
    if (!r) return;
    info->width = r->f.width, info->height = r->f.height;
    info->chroma = chroma_name(r->f.chroma);
    info->fps_num = r->f.fps_num, info->fps_den = r->f.fps_den;
    info->aspect_num = r->f.aspect_num, info->aspect_den = r->f.aspect_den;
    info->interlace = r->f.interlace;
    info->full_range = r->f.full_range;
    info->frames = r->frames;
    info->header_bytes = r->f.header_len + 1;
    info->frame_bytes = r->f.frame_bytes;
}

/* Where luma position x falls between chroma samples: i0, i1 and the weight
 * of i1, for n samples at step * j + off. */
static void tap(int x, int step, double off, int n, int *i0, int *i1, float *t) {
    const double u = (x - off) / step;
    if (u <= 0) {
        *i0 = *i1 = 0, *t = 0;
    } else if (u >= n - 1) {
        *i0 = *i1 = n - 1, *t = 0;
    } else {
        *i0 = (int)u, *i1 = *i0 + 1, *t = (float)(u - *i0);
    }
}

static unsigned char to_byte(float v) {
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (unsigned char)(v + 0.5f);
}

/* Y'CbCr planes -> RGB, 8-bit interleaved. */
static dd_status frame_to_rgb(const y4m_format *f, const unsigned char *planes, dd_image *im) {
    const int w = f->width, h = f->height, cw = f->chroma_width, ch = f->chroma_height;
    const unsigned char *yp = planes, *cbp = planes + f->luma_bytes, *crp = cbp + f->chroma_bytes;
    const float ys = f->full_range ? 1.0f : 255.0f / 219.0f, cs = f->full_range ? 1.0f : 255.0f / 224.0f;
    const float y0 = f->full_range ? 0.0f : 16.0f;
    const float r_cr = (float)(2 * (1 - KR)), b_cb = (float)(2 * (1 - KB));
    const float g_cb = (float)(2 * (1 - KB) * KB / (1 - KR - KB)), g_cr = (float)(2 * (1 - KR) * KR / (1 - KR - KB));
    int *cols = NULL;
    float *colt = NULL;
    if (f->chroma != Y4M_MONO) {
        cols = malloc((size_t)w * 2 * sizeof *cols);
        colt = malloc((size_t)w * sizeof *colt);
        if (!cols || !colt) {
            free(cols), free(colt);
            return util_fail(DD_ERR_NOMEM, "y4m: out of memory");
        }
        for (int x = 0; x < w; x++) tap(x, f->step_x, f->off_x[0], cw, &cols[2 * x], &cols[2 * x + 1], &colt[x]);
    }
    for (int y = 0; y < h; y++) {
        unsigned char *o = im->samples + (size_t)y * w * 3;
        const unsigned char *yr = yp + (size_t)y * w;
        if (f->chroma == Y4M_MONO) {
            for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = to_byte((yr[x] - y0) * ys);
            continue;
        }
        int r0[2], r1[2];
        float rt[2];
        for (int p = 0; p < 2; p++) tap(y, f->step_y, f->off_y[p], ch, &r0[p], &r1[p], &rt[p]);
        const unsigned char *cb0 = cbp + (size_t)r0[0] * cw, *cb1 = cbp + (size_t)r1[0] * cw;
        const unsigned char *cr0 = crp + (size_t)r0[1] * cw, *cr1 = crp + (size_t)r1[1] * cw;
        for (int x = 0; x < w; x++) {
            const int a = cols[2 * x], b = cols[2 * x + 1];
            const float t = colt[x];
            const float cbt = cb0[a] + t * (cb0[b] - cb0[a]), cbb = cb1[a] + t * (cb1[b] - cb1[a]);
            const float crt = cr0[a] + t * (cr0[b] - cr0[a]), crb = cr1[a] + t * (cr1[b] - cr1[a]);
            const float cb = (cbt + rt[0] * (cbb - cbt) - 128) * cs, cr = (crt + rt[1] * (crb - crt) - 128) * cs;
            const float yv = (yr[x] - y0) * ys;
            o[3 * x] = to_byte(yv + r_cr * cr);
            o[3 * x + 1] = to_byte(yv - g_cb * cb - g_cr * cr);
            o[3 * x + 2] = to_byte(yv + b_cb * cb);
        }
    }
    free(cols), free(colt);
    return DD_OK;
}

/* The last error again, with the frame's number in front. */
static dd_status frame_fail(dd_status st, long n) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", dd_last_error());
    return util_fail(st, "frame %ld: %s", n, detail);
}

dd_status dd_y4m_read_frame(dd_y4m_reader *r, dd_image **frame) {
    util_clear_error();
    if (!frame) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_read_frame: frame is NULL");
    *frame = NULL;
    if (!r) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_read_frame: reader is NULL");
    const long n = r->frames + 1;
    char *line = malloc(Y4M_MAX_LINE_BYTES);
    if (!line) return util_fail(DD_ERR_NOMEM, "y4m: out of memory");
    size_t len, got;
    int bad, truncated;
    dd_status st = read_line(r, line, FRAME_TAG, 1, &len, &bad, &truncated);
    free(line);
    if (st) return frame_fail(st, n);
    if (len == SIZE_MAX) return DD_OK; /* the end, between frames */
    if (bad) return util_fail(DD_ERR_CORRUPT, "frame %ld: no FRAME marker", n);
    if (truncated) return util_fail(DD_ERR_CORRUPT, "frame %ld: truncated in its FRAME line", n);
    if ((st = read_full(r, r->frame, r->f.frame_bytes, &got))) return frame_fail(st, n);
    if (got < r->f.frame_bytes)
        return util_fail(DD_ERR_CORRUPT, "frame %ld: truncated after %zu of %zu bytes", n, got, r->f.frame_bytes);
    dd_image *im = NULL;
    if ((st = img_new(r->f.width, r->f.height, 3, 8, r->max_pixels, &im))) return st;
    if ((st = frame_to_rgb(&r->f, r->frame, im))) {
        dd_image_free(im);
        return st;
    }
    r->frames = n;
    *frame = im;
    return DD_OK;
}

/* A writer of stream f, its header written at once (f's header is copied). */
static dd_status writer_for(const y4m_format *f, dd_write_fn write, void *user, dd_y4m_writer **out) {
    dd_y4m_writer *w = calloc(1, sizeof *w);
    if (!w) return util_fail(DD_ERR_NOMEM, "y4m: out of memory");
    w->write = write, w->user = user, w->f = *f;
    w->f.header = NULL;
    const size_t px = w->f.luma_bytes;
    dd_status st = DD_ERR_NOMEM;
    if (!(w->f.header = malloc(f->header_len + 2))) goto fail;
    memcpy(w->f.header, f->header, f->header_len);
    w->f.header[f->header_len] = '\n';
    if (!(w->out = malloc(sizeof FRAME_TAG + w->f.frame_bytes))) goto fail;
    if (w->f.chroma != Y4M_MONO &&
        (!(w->cb = malloc(px * sizeof *w->cb)) || !(w->cr = malloc(px * sizeof *w->cr))))
        goto fail;
    if (write(user, w->f.header, f->header_len + 1) != 0) {
        st = util_fail(DD_ERR_IO, "y4m header: write error: %s", strerror(errno));
        goto fail;
    }
    *out = w;
    return DD_OK;
fail:
    if (st == DD_ERR_NOMEM) util_fail(st, "y4m: out of memory");
    dd_y4m_writer_free(w);
    return st;
}

dd_status dd_y4m_writer_new(const dd_y4m_reader *reader, dd_write_fn write, void *user, dd_y4m_writer **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_writer_new: out is NULL");
    *out = NULL;
    if (!reader || !write) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_writer_new: no reader or write function");
    return writer_for(&reader->f, write, user, out);
}

dd_status dd_y4m_writer_new_header(const char *header, dd_write_fn write, void *user, dd_y4m_writer **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_writer_new_header: out is NULL");
    *out = NULL;
    if (!header || !write) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_writer_new_header: no header or write function");
    const size_t len = strlen(header);
    if (len > Y4M_MAX_LINE_BYTES || strncmp(header, "YUV4MPEG2 ", strlen(MAGIC) + 1))
        return util_fail(DD_ERR_INVALID_ARG, "not a YUV4MPEG2 header");
    char *line = malloc(len + 1);
    if (!line) return util_fail(DD_ERR_NOMEM, "y4m: out of memory");
    memcpy(line, header, len + 1);
    y4m_format f;
    memset(&f, 0, sizeof f);
    dd_status st = parse_fields(line + strlen(MAGIC), 0, &f);
    if (st == DD_ERR_CORRUPT) st = DD_ERR_INVALID_ARG;
    if (!st) {
        memcpy(line, header, len + 1); /* parsing cut it into words */
        f.header = line, f.header_len = len;
        st = writer_for(&f, write, user, out);
    }
    free(line);
    return st;
}

void dd_y4m_writer_free(dd_y4m_writer *w) {
    if (!w) return;
    free(w->f.header);
    free(w->out);
    free(w->cb);
    free(w->cr);
    free(w);
}

/* Chroma sample j of n along an axis of len luma samples at step * j + off:
 * the average of the two it lies between, or 1/4 1/2 1/4 around the one it
 * sits on (indices clamped at the edges). */
static float average_at(const float *v, ptrdiff_t stride, int len, int step, double off, int j) {
    if (step == 1) return v[(ptrdiff_t)j * stride];
    const int p = step * j + (int)off;
    const int hi = p + 1 < len ? p + 1 : len - 1;
    const int pi = p < len ? p : len - 1;
    if (off != (int)off) return 0.5f * (v[(ptrdiff_t)pi * stride] + v[(ptrdiff_t)hi * stride]);
    const int lo = p > 0 ? (p - 1 < len ? p - 1 : len - 1) : 0;
    return 0.25f * v[(ptrdiff_t)lo * stride] + 0.5f * v[(ptrdiff_t)pi * stride] + 0.25f * v[(ptrdiff_t)hi * stride];
}

dd_status dd_y4m_write_frame(dd_y4m_writer *w, const dd_image *im) {
    util_clear_error();
    if (!w || !im) return util_fail(DD_ERR_INVALID_ARG, "dd_y4m_write_frame: no writer or frame");
    const y4m_format *f = &w->f;
    if (im->width != f->width || im->height != f->height)
        return util_fail(DD_ERR_INVALID_ARG, "y4m: a %dx%d frame for a %dx%d stream", im->width, im->height,
                         f->width, f->height);
    const int width = f->width, height = f->height, nc = im->channels, colour = nc >= 3;
    const float ys = f->full_range ? 1.0f : 219.0f / 255.0f, cs = f->full_range ? 1.0f : 224.0f / 255.0f;
    const float y0 = f->full_range ? 0.0f : 16.0f;
    const float kr = (float)KR, kb = (float)KB, kg = (float)(1 - KR - KB);
    const float cb_scale = (float)(0.5 / (1 - KB)), cr_scale = (float)(0.5 / (1 - KR));
    memcpy(w->out, "FRAME\n", 6);
    unsigned char *yp = w->out + 6, *cbp = yp + f->luma_bytes, *crp = cbp + f->chroma_bytes;
    for (int y = 0; y < height; y++) {
        const float unit = im->depth == 16 ? 1.0f / 257.0f : 1.0f; /* 16-bit samples to 0..255 */
        for (int x = 0; x < width; x++) {
            const size_t first = ((size_t)y * width + x) * nc;
            const float r = unit * (float)img_get(im, first), g = colour ? unit * (float)img_get(im, first + 1) : r;
            const float b = colour ? unit * (float)img_get(im, first + 2) : r;
            const float luma = kr * r + kg * g + kb * b;
            const size_t i = (size_t)y * width + x;
            yp[i] = to_byte(y0 + ys * luma);
            if (w->cb) {
                w->cb[i] = (b - luma) * cb_scale;
                w->cr[i] = (r - luma) * cr_scale;
            }
        }
    }
    if (w->cb) {
        /* Across first, in place in row y's first chroma_width floats (j <=
         * x/step: nothing is overwritten before it is read), then down. */
        for (int p = 0; p < 2; p++) {
            float *c = p ? w->cr : w->cb;
            unsigned char *dst = p ? crp : cbp;
            for (int y = 0; y < height; y++) {
                float *row = c + (size_t)y * width;
                for (int j = 0; j < f->chroma_width; j++)
                    row[j] = average_at(row, 1, width, f->step_x, f->off_x[p], j);
            }
            for (int i = 0; i < f->chroma_height; i++)
                for (int j = 0; j < f->chroma_width; j++)
                    dst[(size_t)i * f->chroma_width + j] =
                        to_byte(128 + cs * average_at(c + j, width, height, f->step_y, f->off_y[p], i));
        }
    }
    if (w->write(w->user, w->out, 6 + f->frame_bytes) != 0)
        return util_fail(DD_ERR_IO, "y4m: write error: %s", strerror(errno));
    return DD_OK;
}
