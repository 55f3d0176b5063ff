/* Parameters as text: one table of the keys (the CLI's long option names),
 * their fields and ranges; the pairs a dream's comment records and the
 * presets are read through it. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

typedef enum param_kind { PARAM_INT, PARAM_FLOAT, PARAM_U64, PARAM_FLAG, PARAM_TEXT, PARAM_ARITHMETIC } param_kind;

typedef struct param_key {
    const char *key;
    param_kind kind;
    size_t offset; /* into dd_params */
    double lo, hi;
} param_key;

#define FIELD(f) offsetof(dd_params, f)
static const param_key keys[] = {
    {"layers", PARAM_TEXT, FIELD(layers), 0, 0},
    {"octaves", PARAM_INT, FIELD(octaves), 1, 32},
    {"octave-scale", PARAM_FLOAT, FIELD(octave_scale), 1, 8},
    {"steps", PARAM_INT, FIELD(steps), 0, 100000},
    {"step-size", PARAM_FLOAT, FIELD(step_size), 0, 100},
    {"jitter", PARAM_INT, FIELD(jitter), 0, 100000},
    {"tile", PARAM_INT, FIELD(tile), 64, 8192},
    {"seed", PARAM_U64, FIELD(seed), 0, 0},
    {"max-size", PARAM_INT, FIELD(max_size), 0, 65535},
    {"arithmetic", PARAM_ARITHMETIC, FIELD(fast), 0, 0},
};
#undef FIELD

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

dd_status dd_params_set(dd_params *p, const char *key, const char *value) {
    if (!p || !key || !value) return util_fail(DD_ERR_INVALID_ARG, "no parameters, key or value");
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
        if (!parse_number(value, k->kind, k->lo, k->hi, field))
            return util_fail(DD_ERR_INVALID_ARG, "%s: '%s' is not a number in %g..%g", key, value, k->lo, k->hi);
        return DD_OK;
    }
    return util_fail(DD_ERR_INVALID_ARG, "%s: no such parameter", key);
}
