/* Parameters as text (dd_params_set) and presets (dd_preset_info,
 * dd_params_preset): every key, its range's edges, refusals that leave the
 * parameters as they were, and every preset applying cleanly to a model it
 * names. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "deepdream.h"

static int same_params(const dd_params *a, const dd_params *b) {
    return a->octaves == b->octaves && a->octave_scale == b->octave_scale && a->steps == b->steps &&
           a->step_size == b->step_size && a->jitter == b->jitter && a->tile == b->tile && a->seed == b->seed &&
           a->max_size == b->max_size && a->fast == b->fast && a->layers == b->layers;
}

static void set_cases(void) {
    dd_params p = dd_params_default();
    CHECK(dd_params_set(&p, "octaves", "7") == DD_OK && p.octaves == 7, "octaves 7: %d", p.octaves);
    CHECK(dd_params_set(&p, "octaves", "auto") == DD_OK && p.octaves == 0, "octaves auto: %d", p.octaves);
    CHECK(dd_params_set(&p, "octave-scale", "1.33") == DD_OK && p.octave_scale == 1.33f, "octave-scale %g", p.octave_scale);
    CHECK(dd_params_set(&p, "steps", "0") == DD_OK && p.steps == 0, "steps 0: %d", p.steps);
    CHECK(dd_params_set(&p, "step-size", "0.012345679") == DD_OK && p.step_size == 0.012345679f, "step-size %.9g",
          p.step_size);
    CHECK(dd_params_set(&p, "jitter", "100000") == DD_OK && p.jitter == 100000, "jitter %d", p.jitter);
    CHECK(dd_params_set(&p, "tile", "64") == DD_OK && p.tile == 64, "tile %d", p.tile);
    CHECK(dd_params_set(&p, "seed", "18446744073709551615") == DD_OK && p.seed == 18446744073709551615ull,
          "seed %llu", (unsigned long long)p.seed);
    CHECK(dd_params_set(&p, "max-size", "65535") == DD_OK && p.max_size == 65535, "max-size %d", p.max_size);
    CHECK(dd_params_set(&p, "arithmetic", "float32") == DD_OK && p.fast == 0, "arithmetic float32: fast %d", p.fast);
    CHECK(dd_params_set(&p, "arithmetic", "avx512bf16") == DD_OK && p.fast == 1, "arithmetic avx512bf16: %d", p.fast);
    const char *spec = "mixed2=0.5,mixed4";
    CHECK(dd_params_set(&p, "layers", spec) == DD_OK && p.layers == spec, "layers kept as given");

    /* Refusals: the message names key and value, p is untouched. */
    static const struct {
        const char *key, *value, *message;
    } bad[] = {
        {"octaves", "33", "octaves: '33' is not a number in 1..32 or auto"},
        {"octaves", " 3", "octaves: ' 3' is not a number in 1..32 or auto"},
        {"octave-scale", "0.9", "octave-scale: '0.9' is not a number in 1..8"},
        {"steps", "-1", "steps: '-1' is not a number in 0..100000"},
        {"steps", "1e3", "steps: '1e3' is not a number in 0..100000"},
        {"step-size", "nan", "step-size: 'nan' is not a number in 0..100"},
        {"step-size", "0.1x", "step-size: '0.1x' is not a number in 0..100"},
        {"tile", "63", "tile: '63' is not a number in 64..8192"},
        {"seed", "-1", "seed: '-1' is not a non-negative integer"},
        {"seed", "18446744073709551616", "seed: '18446744073709551616' is not a non-negative integer"},
        {"max-size", "65536", "max-size: '65536' is not a number in 0..65535"},
        {"arithmetic", "bf16", "arithmetic: 'bf16' is not float32, fast, avx512bf16 or int16"},
        {"layers", "", "layers: empty"},
        {"colour", "blue", "colour: no such parameter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const dd_params before = p;
        const dd_status st = dd_params_set(&p, bad[i].key, bad[i].value);
        CHECK(st == DD_ERR_INVALID_ARG && !strcmp(dd_last_error(), bad[i].message) && same_params(&p, &before),
              "%s=%s: status %d, '%s', want '%s'", bad[i].key, bad[i].value, st, dd_last_error(), bad[i].message);
    }
}

static void preset_cases(void) {
    dd_model *model = NULL;
    if (dd_model_load_default(&model)) {
        CHECK(0, "model: %s", dd_last_error());
        return;
    }
    const int n = dd_preset_count();
    CHECK(n >= 6, "%d presets, want at least six (five looks and 'subtle')", n);
    int subtle = 0;
    for (int i = 0; i < n; i++) {
        const char *name, *description, *for_model, *layers, *settings;
        CHECK(dd_preset_info(i, &name, &description, &for_model, &layers, &settings) == DD_OK, "preset %d: %s", i,
              dd_last_error());
        CHECK(name && *name && description && *description && !strchr(description, '\n') && strlen(description) < 80,
              "preset %d: a name and a one-line description under 80 bytes", i);
        for (int j = 0; j < i; j++) {
            const char *other;
            dd_preset_info(j, &other, NULL, NULL, NULL, NULL);
            CHECK(strcmp(name, other), "preset name %s twice", name);
        }
        dd_params p = dd_params_default();
        CHECK(dd_params_preset(&p, name) == DD_OK, "preset %s: %s", name, dd_last_error());
        CHECK(p.layers == layers, "preset %s: layers", name);
        /* A preset for the built-in model names its layers; they parse. */
        dd_term terms[16];
        int n_terms;
        if (for_model && !strcmp(for_model, "built-in"))
            CHECK(layers && dd_terms_parse(model, layers, terms, 16, &n_terms) == DD_OK, "preset %s: layers '%s': %s",
                  name, layers ? layers : "(none)", dd_last_error());
        if (!strcmp(name, "subtle")) {
            subtle = 1;
            CHECK(p.octaves == 4 && p.octave_scale == 1.4f && p.steps == 10 && p.step_size == 0.01f &&
                      !strcmp(p.layers, "mixed2,mixed4"),
                  "subtle is 0.1's default look: octaves %d scale %g steps %d step %g layers %s", p.octaves,
                  p.octave_scale, p.steps, p.step_size, p.layers);
        }
    }
    CHECK(subtle, "no preset 'subtle'");
    CHECK(dd_preset_info(n, NULL, NULL, NULL, NULL, NULL) == DD_ERR_INVALID_ARG, "preset %d past the end", n);
    dd_params p = dd_params_default();
    const dd_params before = p;
    CHECK(dd_params_preset(&p, "psychedelic") == DD_ERR_INVALID_ARG && !strcmp(dd_last_error(), "psychedelic: no such preset") &&
              same_params(&p, &before),
          "an unknown preset: '%s'", dd_last_error());
    dd_model_free(model);
}

int main(void) {
    set_cases();
    preset_cases();
    return check_done("test_params");
}
