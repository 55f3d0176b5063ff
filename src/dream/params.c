/* Parameters as text: one table of the keys (the CLI's long option names),
 * their fields and ranges; the pairs a dream's comment records and the
 * presets are read through it. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dream.h"
#include "util/util.h"

typedef enum param_kind { PARAM_INT, PARAM_FLOAT, PARAM_U64, PARAM_FLAG, PARAM_TEXT, PARAM_ARITHMETIC } param_kind;

typedef struct param_key {
    const char *key;
    param_kind kind;
    size_t offset; /* into dd_params */
    double lo, hi;
    int automatic; /* "auto" is 0 */
} param_key;

#define FIELD(f) offsetof(dd_params, f)
static const param_key keys[] = {
    {"layers", PARAM_TEXT, FIELD(layers), 0, 0, 0},
    {"octaves", PARAM_INT, FIELD(octaves), 1, 32, 1},
    {"octave-scale", PARAM_FLOAT, FIELD(octave_scale), 1, 8, 0},
    {"steps", PARAM_INT, FIELD(steps), 0, 100000, 0},
    {"step-size", PARAM_FLOAT, FIELD(step_size), 0, 100, 0},
    {"jitter", PARAM_INT, FIELD(jitter), 0, 100000, 0},
    {"tile", PARAM_INT, FIELD(tile), 64, 8192, 0},
    {"seed", PARAM_U64, FIELD(seed), 0, 0, 0},
    {"max-size", PARAM_INT, FIELD(max_size), 0, 65535, 0},
    {"threads", PARAM_INT, FIELD(threads), 0, 1024, 1},
    {"arithmetic", PARAM_ARITHMETIC, FIELD(fast), 0, 0, 0},
    {"invert-mask", PARAM_FLAG, FIELD(invert_mask), 0, 0, 0},
    {"preserve-colors", PARAM_FLAG, FIELD(preserve_colors), 0, 0, 0},
    {"blend", PARAM_FLOAT, FIELD(blend), 0, 1, 0},
    {"frame-steps", PARAM_INT, FIELD(frame_steps), 0, 100000, 0},
};
#undef FIELD

/* The end of the last field of 0.2's dd_params, the first with a size:
 * no dd_params is smaller. */
#define PARAMS_SIZE_0_2 (offsetof(dd_params, reserved) + sizeof(int))
/* A size names the fields a program knew only while the struct has no
 * tail padding: a field appended there would not change sizeof. Appending
 * a field moves this check to it. */
_Static_assert(sizeof(dd_params) == offsetof(dd_params, reserved) + sizeof(int),
               "dd_params must end without padding");

static dd_params defaults(void) {
    dd_params p;
    memset(&p, 0, sizeof p); /* the padding too: a later field there reads 0 */
    p.size = sizeof p;
    p.octave_scale = 1.4f, p.steps = 10, p.step_size = 0.02f, p.jitter = 32, p.tile = 1024, p.fast = 1;
    p.blend = 0.5f;
    return p;
}

dd_status dd_params_init(dd_params *p, size_t size) {
    util_clear_error();
    if (!p) return util_fail(DD_ERR_INVALID_ARG, "no parameters");
    if (size < PARAMS_SIZE_0_2)
        return util_fail(DD_ERR_INVALID_ARG, "dd_params of %zu bytes: smaller than any (%zu)", size,
                         (size_t)PARAMS_SIZE_0_2);
    const dd_params d = defaults();
    const size_t n = size < sizeof d ? size : sizeof d;
    memset(p, 0, size);
    memcpy(p, &d, n);
    p->size = n;
    return DD_OK;
}

dd_status params_read(const dd_params *p, dd_params *out) {
    if (!p) return util_fail(DD_ERR_INVALID_ARG, "no parameters");
    if (p->size < PARAMS_SIZE_0_2 || p->size > sizeof *out)
        return util_fail(DD_ERR_INVALID_ARG,
                         "dd_params with size %zu (this library's: %zu): not set up by dd_params_init() or "
                         "dd_params_default()",
                         p->size, sizeof *out);
    *out = defaults();
    memcpy(out, p, p->size);
    out->size = sizeof *out;
    return DD_OK;
}

/* q back into the caller's p: only the bytes the caller's struct has. */
static void params_write(dd_params *p, const dd_params *q) {
    const size_t n = p->size;
    memcpy(p, q, n);
    p->size = n;
}

/* Numbers as typed: no blanks, no '+', nothing after them. */
static int parse_number(const char *s, param_kind kind, double lo, double hi, void *field) {
    char *end;
    errno = 0;
    if (kind == PARAM_U64) {
        if (*s < '0' || *s > '9') return 0;
        const unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end) return 0;
        *(uint64_t *)field = v;
        return 1;
    }
    if (!((*s >= '0' && *s <= '9') || *s == '-' || (kind == PARAM_FLOAT && *s == '.'))) return 0;
    if (kind == PARAM_INT) {
        const long v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < lo || v > hi) return 0;
        *(int *)field = (int)v;
        return 1;
    }
    const float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return 0;
    *(float *)field = v;
    return 1;
}

static dd_status set(dd_params *p, const char *key, const char *value);

dd_status dd_params_set(dd_params *p, const char *key, const char *value) {
    util_clear_error();
    dd_params q;
    if (!p || !key || !value) return util_fail(DD_ERR_INVALID_ARG, "no parameters, key or value");
    dd_status st = params_read(p, &q);
    if (!st && !(st = set(&q, key, value))) params_write(p, &q);
    return st;
}

/* Sets one key on q, a whole struct of this library's. */
static dd_status set(dd_params *p, const char *key, const char *value) {
    const param_key *k = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof *keys && !k; i++)
        if (!strcmp(keys[i].key, key)) k = &keys[i];
    if (!k) return util_fail(DD_ERR_INVALID_ARG, "%s: no such parameter", key);
    void *field = (char *)p + k->offset;
    switch (k->kind) {
    case PARAM_TEXT:
        if (!*value) return util_fail(DD_ERR_INVALID_ARG, "%s: empty", key);
        *(const char **)field = value;
        return DD_OK;
    case PARAM_FLAG:
        if (strcmp(value, "0") && strcmp(value, "1")) return util_fail(DD_ERR_INVALID_ARG, "%s: '%s' is not 0 or 1", key, value);
        *(int *)field = value[0] == '1';
        return DD_OK;
    case PARAM_ARITHMETIC: /* "float32", or "fast" or the fast kernel that ran */
        if (!strcmp(value, "float32")) *(int *)field = 0;
        else if (!strcmp(value, "fast") || !strcmp(value, "avx512bf16") || !strcmp(value, "int16")) *(int *)field = 1;
        else return util_fail(DD_ERR_INVALID_ARG, "%s: '%s' is not float32, fast, avx512bf16 or int16", key, value);
        return DD_OK;
    case PARAM_U64:
        if (!parse_number(value, k->kind, 0, 0, field))
            return util_fail(DD_ERR_INVALID_ARG, "%s: '%s' is not a non-negative integer", key, value);
        return DD_OK;
    case PARAM_INT:
    case PARAM_FLOAT:
        if (k->automatic && !strcmp(value, "auto")) {
            *(int *)field = 0;
            return DD_OK;
        }
        if (!parse_number(value, k->kind, k->lo, k->hi, field))
            return util_fail(DD_ERR_INVALID_ARG, "%s: '%s' is not a number in %g..%g%s", key, value, k->lo, k->hi,
                             k->automatic ? " or auto" : "");
        return DD_OK;
    }
    return util_fail(DD_ERR_INVALID_ARG, "%s: no such parameter", key);
}

/* ---- presets -------------------------------------------------------------
 * Looks chosen by eye (docs/PRESETS.md shows each): data, applied through
 * dd_params_set like any recorded dream. */
typedef struct preset {
    const char *name, *model, *layers, *settings, *description;
} preset;

static const preset presets[] = {
    {"eyes", "built-in", "mixed4", "octaves=auto steps=10 step-size=0.02",
     "eyes and swirls over everything, the subject too"},
    {"swirls", "built-in", "mixed2", "octaves=auto steps=10 step-size=0.02",
     "fine swirls and knots, the shapes kept"},
    {"painterly", "built-in", "mixed1", "octaves=auto octave-scale=1.3 steps=15 step-size=0.015",
     "flowing brush strokes"},
    {"neon", "built-in", "mixed0", "octaves=auto octave-scale=1.6 steps=10 step-size=0.03",
     "bright zigzag textures in saturated colours"},
    {"deep", "built-in", "mixed5", "octaves=auto steps=20 step-size=0.015",
     "large organic, fleshy forms from the deepest layer"},
    {"subtle", "built-in", "mixed2,mixed4", "octaves=4 octave-scale=1.4 steps=10 step-size=0.01",
     "0.1's default: swirls and eyes in the background, the subject almost untouched"},
};

int dd_preset_count(void) { return (int)(sizeof presets / sizeof *presets); }

dd_status dd_preset_info(int index, const char **name, const char **description, const char **model,
                         const char **layers, const char **settings) {
    util_clear_error();
    if (index < 0 || index >= dd_preset_count())
        return util_fail(DD_ERR_INVALID_ARG, "preset %d outside 0..%d", index, dd_preset_count() - 1);
    const preset *p = &presets[index];
    if (name) *name = p->name;
    if (description) *description = p->description;
    if (model) *model = p->model;
    if (layers) *layers = p->layers;
    if (settings) *settings = p->settings;
    return DD_OK;
}

dd_status dd_params_preset(dd_params *p, const char *name) {
    util_clear_error();
    if (!p || !name) return util_fail(DD_ERR_INVALID_ARG, "no parameters or preset name");
    dd_params q; /* all or nothing */
    dd_status st = params_read(p, &q);
    if (st) return st;
    const preset *found = NULL;
    for (int i = 0; i < dd_preset_count() && !found; i++)
        if (!strcmp(presets[i].name, name)) found = &presets[i];
    if (!found) return util_fail(DD_ERR_INVALID_ARG, "%s: no such preset", name);
    char text[256], *save = NULL;
    snprintf(text, sizeof text, "%s", found->settings);
    for (char *pair = strtok_r(text, " ", &save); pair; pair = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq) return util_fail(DD_ERR_INVALID_ARG, "preset %s: '%s' is no key=value", name, pair);
        *eq = '\0';
        if ((st = set(&q, pair, eq + 1))) return st;
    }
    q.layers = found->layers;
    params_write(p, &q);
    return DD_OK;
}
