/* The public API's small pieces: version numbers (header, library and
 * CMake's project version), raw pixels in and out, dd_image_load_file
 * against dd_image_load_memory, its refusals, and NULL-safe getters.
 * Usage: test_api CMAKE_PROJECT_VERSION SAMPLES_DIR */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "deepdream.h"
#include "util/util.h"

static char tmp_dir[256];

static int write_all(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    const int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

/* Same size, layout and samples. */
static void check_same(const char *what, const dd_image *a, const dd_image *b) {
    CHECK(a && b, "%s: missing image", what);
    if (!a || !b) return;
    CHECK(dd_image_width(a) == dd_image_width(b) && dd_image_height(a) == dd_image_height(b) &&
              dd_image_channels(a) == dd_image_channels(b) && dd_image_depth(a) == dd_image_depth(b),
          "%s: %dx%dx%d/%d vs %dx%dx%d/%d", what, dd_image_width(a), dd_image_height(a), dd_image_channels(a),
          dd_image_depth(a), dd_image_width(b), dd_image_height(b), dd_image_channels(b), dd_image_depth(b));
    CHECK(dd_image_bytes(a) == dd_image_bytes(b), "%s: %zu vs %zu bytes", what, dd_image_bytes(a),
          dd_image_bytes(b));
    if (dd_image_bytes(a) != dd_image_bytes(b)) return;
    const unsigned char *pa = dd_image_pixels(a), *pb = dd_image_pixels(b);
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < dd_image_bytes(a); i++)
        if (pa[i] != pb[i] && !diffs++) first = i;
    CHECK(diffs == 0, "%s: %zu bytes differ, the first at %zu (%u vs %u)", what, diffs, first, pa[first], pb[first]);
}

static void test_version(const char *cmake_version) {
    unsigned major, minor, patch;
    char extra;
    const int n = sscanf(cmake_version, "%u.%u.%u%c", &major, &minor, &patch, &extra);
    CHECK(n == 3, "CMake's project version '%s' is not MAJOR.MINOR.PATCH", cmake_version);
    if (n == 3) {
        CHECK(major == DD_VERSION_MAJOR && minor == DD_VERSION_MINOR && patch == DD_VERSION_PATCH,
              "deepdream.h says %d.%d.%d, CMakeLists.txt's project() %s", DD_VERSION_MAJOR, DD_VERSION_MINOR,
              DD_VERSION_PATCH, cmake_version);
        CHECK(DD_VERSION_NUMBER == major * 10000 + minor * 100 + patch, "DD_VERSION_NUMBER %d for %s",
              DD_VERSION_NUMBER, cmake_version);
    }
    CHECK(!strcmp(DD_VERSION_STRING, cmake_version), "DD_VERSION_STRING '%s', CMake's '%s'", DD_VERSION_STRING,
          cmake_version);
    char text[64];
    snprintf(text, sizeof text, "%d.%d.%d", DD_VERSION_MAJOR, DD_VERSION_MINOR, DD_VERSION_PATCH);
    CHECK(!strcmp(DD_VERSION_STRING, text), "DD_VERSION_STRING '%s', the numbers %s", DD_VERSION_STRING, text);
    CHECK(dd_version() == DD_VERSION_NUMBER, "dd_version() %u, the header's %d", dd_version(), DD_VERSION_NUMBER);
}

/* Pixels in equal pixels out, and through PNG and back. */
static void test_new_round_trip(void) {
    for (int depth = 8; depth <= 16; depth += 8)
        for (int channels = 1; channels <= 4; channels++) {
            const int w = 7, h = 5;
            const size_t bytes = (size_t)w * h * channels * (depth / 8);
            unsigned char *px = malloc(bytes);
            CHECK(px, "out of memory");
            if (!px) return;
            /* Every bit pattern matters: 16-bit samples use their high byte. */
            uint32_t r = 12345u + (uint32_t)(depth * 10 + channels);
            for (size_t i = 0; i < bytes; i++) {
                r = r * 1664525u + 1013904223u;
                px[i] = (unsigned char)(r >> 24);
            }
            char what[64];
            snprintf(what, sizeof what, "%d-bit, %d channel(s)", depth, channels);
            dd_image *im = NULL, *back = NULL;
            dd_status st = dd_image_new(w, h, channels, depth, px, &im);
            CHECK(st == DD_OK, "%s: dd_image_new: %s (%s)", what, dd_strerror(st), dd_last_error());
            if (st) {
                free(px);
                continue;
            }
            CHECK(dd_image_width(im) == w && dd_image_height(im) == h && dd_image_channels(im) == channels &&
                      dd_image_depth(im) == depth,
                  "%s: getters say %dx%d, %d channels, %d bits", what, dd_image_width(im), dd_image_height(im),
                  dd_image_channels(im), dd_image_depth(im));
            CHECK(dd_image_format(im) == DD_FORMAT_UNKNOWN, "%s: format %d", what, (int)dd_image_format(im));
            CHECK(dd_image_comment(im) == NULL, "%s: a comment", what);
            CHECK(dd_image_bytes(im) == bytes, "%s: %zu bytes, want %zu", what, dd_image_bytes(im), bytes);
            CHECK(dd_image_pixels(im) != (const void *)px, "%s: the pixels were not copied", what);
            CHECK(dd_image_pixels(im) && !memcmp(dd_image_pixels(im), px, bytes), "%s: pixels out differ", what);

            unsigned char *png = NULL;
            size_t png_size = 0;
            st = dd_image_save_memory(im, DD_FORMAT_PNG, 0, NULL, &png, &png_size);
            CHECK(st == DD_OK && png && png_size > 0, "%s: PNG: %s (%s)", what, dd_strerror(st), dd_last_error());
            if (st == DD_OK) {
                st = dd_image_load_memory(png, png_size, 0, &back);
                CHECK(st == DD_OK, "%s: PNG back: %s (%s)", what, dd_strerror(st), dd_last_error());
                char w2[96];
                snprintf(w2, sizeof w2, "%s through PNG", what);
                check_same(w2, im, back);
                CHECK(dd_image_format(back) == DD_FORMAT_PNG, "%s: format %d", w2, (int)dd_image_format(back));
            }
            dd_free(png);
            dd_image_free(back);
            dd_image_free(im);

            /* NULL pixels: zeros. */
            st = dd_image_new(w, h, channels, depth, NULL, &im);
            CHECK(st == DD_OK, "%s: dd_image_new(NULL): %s", what, dd_strerror(st));
            if (st == DD_OK) {
                const unsigned char *p = dd_image_pixels(im);
                size_t nonzero = 0;
                for (size_t i = 0; i < dd_image_bytes(im); i++) nonzero += p[i] != 0;
                CHECK(nonzero == 0, "%s: %zu nonzero bytes in an image made from NULL", what, nonzero);
            }
            dd_image_free(im);
            free(px);
        }
    dd_free(NULL);
}

static void expect_new_fails(int w, int h, int channels, int depth, dd_status want) {
    dd_image *im = (dd_image *)&im; /* not NULL: it must be reset */
    const dd_status st = dd_image_new(w, h, channels, depth, NULL, &im);
    CHECK(st == want, "dd_image_new(%d, %d, %d, %d): %s, want %s", w, h, channels, depth, dd_strerror(st),
          dd_strerror(want));
    CHECK(im == NULL, "dd_image_new(%d, %d, %d, %d) failed but left *out set", w, h, channels, depth);
    CHECK(dd_last_error()[0], "dd_image_new(%d, %d, %d, %d): no message", w, h, channels, depth);
    if (st != DD_OK && im) dd_image_free(im);
}

static void test_new_refusals(void) {
    expect_new_fails(0, 5, 3, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(5, 0, 3, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(-1, 5, 3, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(5, -7, 3, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(5, 5, 0, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(5, 5, 5, 8, DD_ERR_INVALID_ARG);
    expect_new_fails(5, 5, 3, 12, DD_ERR_INVALID_ARG);
    expect_new_fails(5, 5, 3, 0, DD_ERR_INVALID_ARG);
    expect_new_fails(65536, 1, 1, 8, DD_ERR_LIMIT);
    expect_new_fails(1, 65536, 4, 16, DD_ERR_LIMIT);
    /* The largest side is allowed. */
    dd_image *im = NULL;
    const dd_status st = dd_image_new(65535, 1, 1, 8, NULL, &im);
    CHECK(st == DD_OK && dd_image_width(im) == 65535, "a 65535x1 image: %s", dd_strerror(st));
    dd_image_free(im);
    CHECK(dd_image_new(1, 1, 1, 8, NULL, NULL) == DD_ERR_INVALID_ARG, "dd_image_new with no out");
}

/* A failing dd_image_load_file: the status, *out NULL, and a message that
 * names the path. */
static void expect_load_fails(const char *path, uint64_t max_pixels, dd_status want) {
    dd_image *im = (dd_image *)&im;
    const dd_status st = dd_image_load_file(path, max_pixels, &im);
    CHECK(st == want, "dd_image_load_file(%s): %s (%s), want %s", path, dd_strerror(st), dd_last_error(),
          dd_strerror(want));
    CHECK(im == NULL, "dd_image_load_file(%s) failed but left *out set", path);
    CHECK(strstr(dd_last_error(), path) != NULL, "dd_image_load_file(%s): message '%s' does not name it", path,
          dd_last_error());
    if (st != DD_OK && im) dd_image_free(im);
}

static void test_load_file(const char *samples) {
    char path[512];
    snprintf(path, sizeof path, "%s/chelsea.png", samples);
    size_t size = 0;
    unsigned char *bytes = NULL;
    CHECK(util_read_file(path, (size_t)1 << 30, &bytes, &size) == DD_OK && size > 100, "%s", dd_last_error());
    if (!bytes) return;
    dd_image *from_file = NULL, *from_memory = NULL;
    dd_status st = dd_image_load_file(path, 0, &from_file);
    CHECK(st == DD_OK, "dd_image_load_file(%s): %s (%s)", path, dd_strerror(st), dd_last_error());
    st = dd_image_load_memory(bytes, size, 0, &from_memory);
    CHECK(st == DD_OK, "dd_image_load_memory(%s): %s (%s)", path, dd_strerror(st), dd_last_error());
    check_same("chelsea.png from the file and from memory", from_file, from_memory);
    CHECK(dd_image_format(from_file) == DD_FORMAT_PNG, "chelsea.png: format %d", (int)dd_image_format(from_file));
    const char *c1 = dd_image_comment(from_file), *c2 = dd_image_comment(from_memory);
    CHECK((!c1 && !c2) || (c1 && c2 && !strcmp(c1, c2)), "chelsea.png: comments differ");

    /* Over max_pixels: refused from the header, naming the file. */
    expect_load_fails(path, 100, DD_ERR_LIMIT);

    /* Missing, a directory, empty, truncated, no image. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-file.png", tmp_dir);
    expect_load_fails(missing, 0, DD_ERR_IO);
    CHECK(strstr(dd_last_error(), "No such file") != NULL, "missing file: '%s' lacks strerror's text",
          dd_last_error());
    expect_load_fails(samples, 0, DD_ERR_IO);
    expect_load_fails(tmp_dir, 0, DD_ERR_IO);

    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/empty.png", tmp_dir);
    CHECK(write_all(tmp, "", 0), "cannot write %s", tmp);
    expect_load_fails(tmp, 0, DD_ERR_CORRUPT);
    snprintf(tmp, sizeof tmp, "%s/truncated.png", tmp_dir);
    CHECK(write_all(tmp, bytes, size / 2), "cannot write %s", tmp);
    expect_load_fails(tmp, 0, DD_ERR_CORRUPT);
    snprintf(tmp, sizeof tmp, "%s/header-only.png", tmp_dir);
    CHECK(write_all(tmp, bytes, 40), "cannot write %s", tmp);
    expect_load_fails(tmp, 0, DD_ERR_CORRUPT);
    snprintf(tmp, sizeof tmp, "%s/text.png", tmp_dir);
    CHECK(write_all(tmp, "hello, world\n", 13), "cannot write %s", tmp);
    expect_load_fails(tmp, 0, DD_ERR_CORRUPT);

    /* A PNM followed by more bytes (a stream of images): the first one. */
    unsigned char *ppm = NULL;
    size_t ppm_size = 0;
    st = dd_image_save_memory(from_memory, DD_FORMAT_PPM, 0, NULL, &ppm, &ppm_size);
    CHECK(st == DD_OK, "PPM: %s", dd_strerror(st));
    if (st == DD_OK) {
        unsigned char *two = malloc(2 * ppm_size);
        CHECK(two, "out of memory");
        if (two) {
            memcpy(two, ppm, ppm_size);
            memcpy(two + ppm_size, ppm, ppm_size);
            snprintf(tmp, sizeof tmp, "%s/two.ppm", tmp_dir);
            CHECK(write_all(tmp, two, 2 * ppm_size), "cannot write %s", tmp);
            dd_image *first = NULL;
            st = dd_image_load_file(tmp, 0, &first);
            CHECK(st == DD_OK, "two.ppm: %s (%s)", dd_strerror(st), dd_last_error());
            CHECK(dd_image_format(first) == DD_FORMAT_PNM, "two.ppm: format %d", (int)dd_image_format(first));
            check_same("the first image of two.ppm", first, from_memory);
            dd_image_free(first);
            free(two);
        }
    }
    dd_free(ppm);
    CHECK(dd_image_load_file(path, 0, NULL) == DD_ERR_INVALID_ARG, "dd_image_load_file with no out");
    dd_image *im = NULL;
    CHECK(dd_image_load_file(NULL, 0, &im) == DD_ERR_INVALID_ARG && !im, "dd_image_load_file(NULL)");
    dd_image_free(from_file);
    dd_image_free(from_memory);
    free(bytes);
}

static void test_null_getters(void) {
    CHECK(dd_image_width(NULL) == 0, "dd_image_width(NULL)");
    CHECK(dd_image_height(NULL) == 0, "dd_image_height(NULL)");
    CHECK(dd_image_channels(NULL) == 0, "dd_image_channels(NULL)");
    CHECK(dd_image_depth(NULL) == 0, "dd_image_depth(NULL)");
    CHECK(dd_image_format(NULL) == DD_FORMAT_UNKNOWN, "dd_image_format(NULL)");
    CHECK(dd_image_comment(NULL) == NULL, "dd_image_comment(NULL)");
    CHECK(dd_image_pixels(NULL) == NULL, "dd_image_pixels(NULL)");
    CHECK(dd_image_bytes(NULL) == 0, "dd_image_bytes(NULL)");
    dd_image_free(NULL);
}

/* dd_params carries its size: a program's struct from an older or newer
 * header, or one never set up, is read or refused as the header says. */
static void test_params_size(void) {
    const size_t first = offsetof(dd_params, reserved) + sizeof(int); /* 0.2's, the first sized one */
    dd_params p = dd_params_default();
    CHECK(p.size == sizeof p, "dd_params_default: size %zu, want %zu", p.size, sizeof p);
    CHECK(p.steps == 10 && p.octave_scale == 1.4f && p.blend == 0.5f && p.tile == 1024 && p.fast == 1,
          "dd_params_default: not the documented defaults");
    CHECK(dd_params_init(NULL, sizeof p) == DD_ERR_INVALID_ARG, "dd_params_init(NULL)");
    CHECK(dd_params_init(&p, first - 1) == DD_ERR_INVALID_ARG && strstr(dd_last_error(), "smaller"),
          "dd_params_init with too small a size: '%s'", dd_last_error());

    /* A newer header's larger struct: this library's part set, the rest zero. */
    union {
        dd_params p;
        unsigned char bytes[sizeof(dd_params) + 64];
    } big;
    memset(&big, 0xab, sizeof big);
    CHECK(dd_params_init(&big.p, sizeof big) == DD_OK, "dd_params_init on a larger struct: %s", dd_last_error());
    CHECK(big.p.size == sizeof(dd_params), "a larger struct's size: %zu, want this library's %zu", big.p.size,
          sizeof(dd_params));
    size_t nonzero = 0;
    for (size_t i = sizeof(dd_params); i < sizeof big; i++) nonzero += big.bytes[i] != 0;
    CHECK(nonzero == 0, "%zu bytes past this library's dd_params were not zeroed", nonzero);

    /* An older header's smaller struct: nothing written past its size. */
    union {
        dd_params p;
        unsigned char bytes[sizeof(dd_params) + 16];
    } old;
    CHECK(dd_params_init(&old.p, first) == DD_OK && old.p.size == first, "dd_params_init(%zu): size %zu", first,
          old.p.size);
    memset(old.bytes + first, 0xcd, sizeof old - first);
    CHECK(dd_params_set(&old.p, "steps", "7") == DD_OK && old.p.steps == 7, "dd_params_set on an older struct: %s",
          dd_last_error());
    CHECK(dd_params_preset(&old.p, "deep") == DD_OK && old.p.steps == 20, "dd_params_preset on an older struct: %s",
          dd_last_error());
    size_t touched = 0;
    for (size_t i = first; i < sizeof old; i++) touched += old.bytes[i] != 0xcd;
    CHECK(touched == 0 && old.p.size == first, "%zu bytes written past an older struct's %zu", touched, first);

    /* Never set up, or from a newer header than this library: refused. */
    dd_model *model = NULL;
    CHECK(dd_model_load_default(&model) == DD_OK, "default model: %s", dd_last_error());
    dd_image *im = NULL;
    CHECK(dd_image_new(64, 64, 3, 8, NULL, &im) == DD_OK, "dd_image_new: %s", dd_last_error());
    dd_params zero;
    memset(&zero, 0, sizeof zero);
    zero.steps = 1;
    dd_status st = dd_dream(model, &zero, im, NULL, NULL);
    CHECK(st == DD_ERR_INVALID_ARG && strstr(dd_last_error(), "dd_params_init"),
          "dd_dream with a zeroed dd_params: %s '%s'", dd_strerror(st), dd_last_error());
    CHECK(dd_params_set(&zero, "steps", "2") == DD_ERR_INVALID_ARG, "dd_params_set on a zeroed dd_params");
    dd_params newer = dd_params_default();
    newer.size += 8;
    st = dd_dream(model, &newer, im, NULL, NULL);
    CHECK(st == DD_ERR_INVALID_ARG && strstr(dd_last_error(), "dd_params_init"), "dd_dream with a size set by hand: %s '%s'",
          dd_strerror(st), dd_last_error());
    dd_clip *clip = NULL;
    CHECK(dd_clip_new(model, &newer, 64, 64, &clip) == DD_ERR_INVALID_ARG && !clip, "dd_clip_new, newer dd_params");
    dd_dream_plan plan;
    CHECK(dd_dream_plan_for(model, &zero, 64, 64, 3, 8, &plan) == DD_ERR_INVALID_ARG, "dd_dream_plan_for, zeroed");

    /* The threads key, as --threads reads it. */
    p = dd_params_default();
    CHECK(dd_params_set(&p, "threads", "3") == DD_OK && p.threads == 3, "threads=3: %s", dd_last_error());
    CHECK(dd_params_set(&p, "threads", "auto") == DD_OK && p.threads == 0, "threads=auto: %s", dd_last_error());
    CHECK(dd_params_set(&p, "threads", "-1") == DD_ERR_INVALID_ARG && p.threads == 0, "threads=-1 accepted");
    dd_image_free(im);
    dd_model_free(model);
}

/* dd_last_error: set by a failure, emptied by the next call that succeeds. */
static void test_error_cleared(void) {
    dd_params p = dd_params_default();
    dd_image *im = NULL;
    CHECK(dd_params_set(&p, "steps", "x") == DD_ERR_INVALID_ARG && dd_last_error()[0], "a failure left no message");
    CHECK(dd_params_set(&p, "steps", "3") == DD_OK && !dd_last_error()[0], "after dd_params_set succeeded: '%s'",
          dd_last_error());
    CHECK(dd_image_new(0, 1, 3, 8, NULL, &im) != DD_OK && dd_last_error()[0], "dd_image_new(0, ...) succeeded");
    CHECK(dd_image_new(2, 2, 3, 8, NULL, &im) == DD_OK && !dd_last_error()[0], "after dd_image_new: '%s'",
          dd_last_error());
    dd_image_free(im);
    dd_model *model = NULL;
    CHECK(dd_model_load_file("/nonexistent/model.safetensors", &model) != DD_OK, "a missing model loaded");
    CHECK(dd_model_load_default(&model) == DD_OK && !dd_last_error()[0], "after dd_model_load_default: '%s'",
          dd_last_error());
    dd_term terms[4];
    int n = 0;
    CHECK(dd_terms_parse(model, "nosuch", terms, 4, &n) != DD_OK, "a missing layer parsed");
    CHECK(dd_terms_parse(model, "mixed3", terms, 4, &n) == DD_OK && !dd_last_error()[0], "after dd_terms_parse: '%s'",
          dd_last_error());
    CHECK(dd_preset_info(-1, NULL, NULL, NULL, NULL, NULL) != DD_OK, "preset -1");
    CHECK(dd_preset_info(0, NULL, NULL, NULL, NULL, NULL) == DD_OK && !dd_last_error()[0],
          "after dd_preset_info: '%s'", dd_last_error());
    dd_model_free(model);
}

static void remove_tmp(void) {
    static const char *names[] = {"empty.png", "truncated.png", "header-only.png", "text.png", "two.ppm"};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp_dir, names[i]);
        unlink(p);
    }
    rmdir(tmp_dir);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_api CMAKE_PROJECT_VERSION SAMPLES_DIR\n");
        return 2;
    }
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_api.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("test_api: mkdtemp");
        return 1;
    }
    test_version(argv[1]);
    test_new_round_trip();
    test_new_refusals();
    test_load_file(argv[2]);
    test_null_getters();
    test_params_size();
    test_error_cleared();
    remove_tmp();
    return check_done("test_api");
}
