/* libFuzzer target for the safetensors weights loader (dd_model_load_memory);
 * a model it accepts is then planned and run (forward and gradient) on a
 * small input, since a bad graph must fail at load time, not in the net. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deepdream.h"
#include "fuzz_check.h"


/* Input side for the net: small so an accepted model runs in milliseconds. */
#define SIDE 16
/* Wider layers are skipped: activations of up to 65536 channels would only
 * measure malloc. */
#define MAX_NET_CHANNELS 4096

static void run_net(const dd_model *m, const char *layer) {
    static float input[3 * SIDE * SIDE], grad[3 * SIDE * SIDE];
    const dd_term term = {layer, -1, 1.0f};
    dd_net *net = NULL;
    dd_status st = dd_net_new(m, &term, 1, SIDE, SIDE, 1, &net);
    FUZZ_CHECK(st == DD_OK || st == DD_ERR_TOO_SMALL || st == DD_ERR_MODEL || st == DD_ERR_NOMEM,
               "dd_net_new for %s: %s: %s", layer, dd_strerror(st), dd_last_error());
    if (st) return;
    for (int i = 0; i < 3 * SIDE * SIDE; i++) input[i] = (float)(i % 7) / 3.0f - 1.0f;
    double objective = 0;
    st = dd_net_forward(net, input, &objective);
    FUZZ_CHECK(st == DD_OK, "dd_net_forward: %s: %s", dd_strerror(st), dd_last_error());
    st = dd_net_gradient(net, input, grad, &objective);
    FUZZ_CHECK(st == DD_OK, "dd_net_gradient: %s: %s", dd_strerror(st), dd_last_error());
    dd_layer_stats stats;
    st = dd_net_term_stats(net, 0, &stats);
    FUZZ_CHECK(st == DD_OK && stats.channels >= 1 && stats.height >= 1 && stats.width >= 1,
               "dd_net_term_stats: %s, %dx%dx%d", dd_strerror(st), stats.channels, stats.height, stats.width);
    dd_net_free(net);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dd_model *m = NULL;
    const dd_status st = dd_model_load_memory(data, size, &m);
    if (st != DD_OK) {
        FUZZ_CHECK(m == NULL, "a failed load returned a model");
        FUZZ_CHECK(st == DD_ERR_CORRUPT || st == DD_ERR_LIMIT || st == DD_ERR_MODEL || st == DD_ERR_NOMEM,
                   "status %s: %s", dd_strerror(st), dd_last_error());
        FUZZ_CHECK(dd_last_error()[0] != '\0', "status %s without a message", dd_strerror(st));
        return 0;
    }
    float divisor[3], offset[3];
    dd_model_input_mapping(m, divisor, offset);
    for (int c = 0; c < 3; c++)
        FUZZ_CHECK(divisor[c] > 0 && isfinite(divisor[c]) && isfinite(offset[c]), "preprocess %g, %g", divisor[c],
                   offset[c]);
    const int n = dd_model_layer_count(m);
    FUZZ_CHECK(n >= 0, "%d layers", n);
    int widest = 0;
    for (int i = 0; i < n; i++) {
        const char *name = dd_model_layer_name(m, i);
        const int channels = dd_model_layer_channels(m, i);
        FUZZ_CHECK(name != NULL && channels >= 1, "layer %d: %s with %d channels", i, name ? name : "(null)",
                   channels);
        if (channels > widest) widest = channels;
    }
    FUZZ_CHECK(dd_model_layer_name(m, n) == NULL && dd_model_layer_channels(m, -1) == -1, "layer index past the end");
    if (n > 0) {
        /* The spec parser on a real layer name: names holding ',', ':' or
         * '=' may not parse, but must not crash. */
        dd_term terms[4];
        int n_terms = 0;
        const dd_status ps = dd_terms_parse(m, dd_model_layer_name(m, n - 1), terms, 4, &n_terms);
        FUZZ_CHECK(ps == DD_OK || ps == DD_ERR_INVALID_ARG, "dd_terms_parse: %s", dd_strerror(ps));
        if (widest <= MAX_NET_CHANNELS) {
            run_net(m, dd_model_layer_name(m, 0));
            if (n > 1) run_net(m, dd_model_layer_name(m, n - 1));
        }
    }
    dd_model_free(m);
    return 0;
}
