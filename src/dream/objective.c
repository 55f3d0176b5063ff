/* Objectives from text: "NAME[:CHANNEL][=WEIGHT],..." -> dd_term[]. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/util.h"

dd_status dd_terms_parse(const dd_model *model, const char *spec, dd_term *terms, int max_terms,
                         int *n_terms) {
    util_clear_error();
    *n_terms = 0;
    if (!spec || !*spec) return util_fail(DD_ERR_INVALID_ARG, "empty layer list");
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const size_t len = (size_t)(end - p);
        char item[128];
        if (len == 0 || len >= sizeof item) return util_fail(DD_ERR_INVALID_ARG, "'%s': bad layer list", spec);
        memcpy(item, p, len);
        item[len] = '\0';
        float weight = 1.0f;
        int channel = -1;
        char *eq = strchr(item, '=');
        if (eq) {
            *eq = '\0';
            char *stop;
            errno = 0;
            weight = strtof(eq + 1, &stop);
            if (errno || stop == eq + 1 || *stop || !isfinite(weight))
                return util_fail(DD_ERR_INVALID_ARG, "'%s': weight '%s' is not a number", spec, eq + 1);
        }
        char *colon = strchr(item, ':');
        if (colon) {
            *colon = '\0';
            char *stop;
            errno = 0;
            long c = strtol(colon + 1, &stop, 10);
            if (errno || stop == colon + 1 || *stop || c < 0 || c > 1 << 20)
                return util_fail(DD_ERR_INVALID_ARG, "'%s': channel '%s' is not a number", spec, colon + 1);
            channel = (int)c;
        }
        const int layer = model_find_layer(model, item);
        if (layer < 0) return util_fail(DD_ERR_INVALID_ARG, "%s: no such layer", item);
        const int channels = model->nodes[model->layers[layer].node].channels;
        if (channel >= channels)
            return util_fail(DD_ERR_INVALID_ARG, "%s: channel %d outside 0..%d", item, channel, channels - 1);
        if (*n_terms >= max_terms) return util_fail(DD_ERR_INVALID_ARG, "'%s': more than %d layers", spec, max_terms);
        terms[(*n_terms)++] = (dd_term){model->layers[layer].name, channel, weight};
        p = *end ? end + 1 : end;
        if (*end && !*p) return util_fail(DD_ERR_INVALID_ARG, "'%s': bad layer list", spec);
    }
    return DD_OK;
}

const char *dd_model_default_layers(const dd_model *model) {
    if (model->default_layers) return model->default_layers;
    /* A file without one: the built-in model's objective when it has those
     * layers (the same network converted again), else its deepest layer. */
    const char *spec = dd_default_layers();
    int all = 1;
    for (const char *p = spec; *p && all;) {
        const size_t len = strcspn(p, ",");
        char name[64];
        if (len >= sizeof name) break;
        memcpy(name, p, len);
        name[len] = '\0';
        all = model_find_layer(model, name) >= 0;
        p += len + (p[len] == ',');
    }
    return all || model->n_layers < 1 ? spec : model->layers[model->n_layers - 1].name;
}
