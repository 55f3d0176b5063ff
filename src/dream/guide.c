/* Guides (google/deepdream's objective_guide): what the network sees in a
 * guide picture, at each layer of an objective, kept to match the dream's
 * own activations against (dd_net_set_guide). */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "dream.h"
#include "image/image.h"
#include "model/model.h"
#include "model/net.h"
#include "util/team.h"
#include "util/util.h"

/* The guide is seen at most this long: about the network's own view, and
 * the matching's cost grows with the square of the guide's positions. */
#define GUIDE_MAX_SIDE 512
#define GUIDE_MAX_TEXT "512"

void dd_guide_free(dd_guide *guide) {
    if (!guide) return;
    for (int t = 0; t < guide->n_terms; t++) free(guide->layers[t].features);
    free(guide->layers);
    free(guide);
}

/* The guide's size: its own, or its long side brought down to GUIDE_MAX_SIDE. */
static void guide_size(const dd_image *image, int *h, int *w) {
    *h = image->height, *w = image->width;
    const int longest = *h > *w ? *h : *w;
    if (longest <= GUIDE_MAX_SIDE) return;
    const double f = (double)longest / GUIDE_MAX_SIDE;
    *h = (int)lround(*h / f), *w = (int)lround(*w / f);
    if (*h < 1) *h = 1;
    if (*w < 1) *w = 1;
}

/* The guide's features, one forward pass of a net planned at its size. */
static dd_status see_guide(dd_guide *g, const dd_term *terms, const dd_image *image, int threads) {
    const size_t n = (size_t)3 * g->height * g->width;
    float *x = malloc(n * sizeof *x);
    dd_net *net = NULL;
    dd_status st = x ? DD_OK : util_fail(DD_ERR_NOMEM, "out of memory for the guide");
    const dream_photo ph = dream_photo_of(image, g->model);
    if (!st) st = dream_photo_at(x, &ph, g->height, g->width, threads, NULL);
    if (!st) st = dd_net_new(g->model, terms, g->n_terms, g->height, g->width, threads, &net);
    for (int t = 0; !st && t < g->n_terms; t++) {
        guide_layer *gl = &g->layers[t];
        int c, h, w;
        net_term_shape(net, t, &c, &h, &w);
        gl->channels = c, gl->n = h * w;
        gl->features = malloc((size_t)c * h * w * sizeof(float));
        if (!gl->features) st = util_fail(DD_ERR_NOMEM, "out of memory for the guide's features");
        else net_capture_term(net, t, gl->features);
    }
    if (!st) st = dd_net_forward(net, x, NULL);
    dd_net_free(net);
    free(x);
    return st;
}

dd_status dd_guide_new(const dd_model *model, const dd_term *terms, int n_terms, const dd_image *image, int threads,
                       dd_guide **out) {
    util_clear_error();
    if (!out) return util_fail(DD_ERR_INVALID_ARG, "nowhere to put the guide");
    *out = NULL;
    if (!model || !terms || n_terms < 1 || !image)
        return util_fail(DD_ERR_INVALID_ARG, "a guide needs a model, an objective and an image");
    for (int t = 0; t < n_terms; t++)
        if (terms[t].channel != -1)
            return util_fail(DD_ERR_INVALID_ARG, "%s:%d: a guide matches whole layers, not one channel",
                             terms[t].layer ? terms[t].layer : "(null)", terms[t].channel);
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    int min_h, min_w, deepest, h, w;
    dd_status st = net_min_input(model, terms, n_terms, &min_h, &min_w, &deepest);
    if (st) return st;
    guide_size(image, &h, &w);
    if (h < min_h || w < min_w)
        return util_fail(DD_ERR_TOO_SMALL, "guide %dx%d%s is too small for %s (needs at least %dx%d)", image->width,
                         image->height, h == image->height && w == image->width ? "" : ", seen at " GUIDE_MAX_TEXT " on its long side,",
                         terms[deepest].layer, min_w, min_h);
    dd_guide *g = calloc(1, sizeof *g);
    if (!g || !(g->layers = calloc((size_t)n_terms, sizeof *g->layers))) {
        free(g);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    g->model = model, g->n_terms = n_terms, g->height = h, g->width = w;
    for (int t = 0; t < n_terms; t++) {
        /* The model's own name: the caller's string may not outlive the guide. */
        g->layers[t].layer = model->layers[model_find_layer(model, terms[t].layer)].name;
        g->layers[t].channel = -1;
    }
    team_scope team;
    team_enter(&team, threads);
    st = see_guide(g, terms, image, threads);
    team_leave(&team);
    if (st) {
        dd_guide_free(g);
        return st;
    }
    *out = g;
    return DD_OK;
}
