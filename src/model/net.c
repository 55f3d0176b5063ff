/* A model planned for one input size and objective: shapes, one arena laid
 * out by liveness, then forward (one switch over ops) and backward to the
 * input (another). Branch outputs are written straight into their concat's
 * buffer, so concatenation costs nothing either way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "model.h"
#include "net.h"
#include "nn/nn.h"
#include "util/util.h"

/* im2col band size: big enough for efficient GEMMs, small enough that the
 * scratch stays a few MiB whatever the image size. */
#define COL_BUDGET_FLOATS ((size_t)1 << 21)
#define MAX_SIDE 65536

typedef struct net_node {
    const model_node *mn;
    int needed;            /* an ancestor of (or is) an objective term */
    int c, h, w;           /* output shape */
    nn_conv conv;          /* conv geometry */
    nn_window win;         /* pool geometry */
    int alias;             /* concat whose buffer holds this output, or -1 */
    size_t alias_off;      /* floats into that buffer */
    int root;              /* node owning the storage (self unless aliased) */
    size_t root_off;       /* floats into the root's storage */
    float *act, *grad;     /* forward output, gradient of it (arena) */
    uint8_t *mask;         /* ReLU bits */
    uint8_t *argmax;       /* max-pool winners */
    nn_conv_packed packed; /* its weights packed for the faster paths */
    int grad_zeroed;       /* this pass (roots only) */
    int split_relu;        /* a term reads it before its fused ReLU: the
                            * ReLU runs apart, in place */
} net_node;

typedef struct net_term {
    int node, channel;
    int pre_relu;          /* the node's value before its fused ReLU */
    float weight;
    dd_layer_stats stats;
    /* With a guide (dd_net_set_guide): its features at this layer (c x
     * guide_n), each position's match and dot product in the last forward,
     * and their sum, the term's value. */
    const float *guide;
    int guide_n;
    int *argmax;
    float *best;
    double guide_value;
    float *capture;        /* or NULL: the layer's value copied here (net_capture_term) */
} net_term;

struct dd_net {
    const dd_model *model;
    int threads, h, w;
    nn_cpu_level cpu;      /* the kernels' level, fixed at planning */
    int n_nodes;
    net_node *nodes;
    int n_terms;
    net_term *terms;
    float *col;
    size_t col_floats;
    util_arena arena;
    net_profile *profile;  /* time per kind of node, or NULL */
    int fast;              /* bfloat16 products (fast mode) */
    size_t stem_below;     /* planes larger than the first concat's or add's: the stem */
    uint32_t *packed_mem;  /* packed weights and pack scratch it owns, or NULL */
    int (*should_stop)(void *user); /* polled between nodes, or NULL */
    void *stop_user;
    double flops_fwd, flops_bwd;
    void *guide_mem;       /* matches and scores while a guide is set */
    float *scores;         /* score_rows x the largest guide_n */
    int score_rows;
};

static size_t node_floats(const net_node *x) { return (size_t)x->c * x->h * x->w; }

/* The window of a conv or pool node over an h x w input; 0: no output. */
static int plan_window(nn_window *win, const model_node *mn, int h, int w) {
    const int ok = mn->same_padding ? nn_window_plan(win, h, w, mn->kh, mn->kw, mn->sh, mn->sw, 1)
                                    : nn_window_plan_padded(win, h, w, mn->kh, mn->kw, mn->sh, mn->sw, mn->pad,
                                                            mn->ceil_mode);
    win->count_pad = mn->count_pad;
    return ok;
}

/* ---- planning ------------------------------------------------------------- */

static dd_status plan_shapes(dd_net *net) {
    for (int i = 1; i < net->n_nodes; i++) {
        net_node *x = &net->nodes[i];
        const model_node *mn = x->mn;
        if (!x->needed) continue;
        const net_node *in = &net->nodes[mn->inputs[0]];
        x->c = mn->channels;
        switch (mn->op) {
        case MODEL_OP_CONV:
            x->conv.c = in->c, x->conv.k = mn->channels, x->conv.cpu = net->cpu;
            if (!plan_window(&x->conv.win, mn, in->h, in->w)) goto too_small;
            nn_conv_plan_bands(&x->conv, COL_BUDGET_FLOATS);
            x->h = x->conv.win.oh, x->w = x->conv.win.ow;
            break;
        case MODEL_OP_MAXPOOL:
        case MODEL_OP_AVGPOOL:
            if (!plan_window(&x->win, mn, in->h, in->w)) goto too_small;
            x->h = x->win.oh, x->w = x->win.ow;
            break;
        case MODEL_OP_RELU:
            x->h = in->h, x->w = in->w;
            break;
        case MODEL_OP_CONCAT:
        case MODEL_OP_ADD:
            x->h = in->h, x->w = in->w;
            for (int j = 1; j < mn->n_inputs; j++) {
                const net_node *o = &net->nodes[mn->inputs[j]];
                if (o->h != x->h || o->w != x->w)
                    return util_fail(DD_ERR_MODEL, "%s: inputs of different sizes (%dx%d and %dx%d) at input %dx%d",
                                     mn->name, in->w, in->h, o->w, o->h, net->w, net->h);
            }
            break;
        case MODEL_OP_INPUT:
            return util_fail(DD_ERR_MODEL, "%s: a second input node", mn->name);
        }
        continue;
    too_small:
        return util_fail(DD_ERR_TOO_SMALL, "input %dx%d is too small: layer %s gets no output",
                         net->w, net->h, mn->name);
    }
    return DD_OK;
}

/* Outputs read only by one concat (once) are stored inside the concat's
 * buffer at their channel offset. */
static void plan_aliases(dd_net *net) {
    const int n = net->n_nodes;
    int *readers = calloc(n > 0 ? (size_t)n : 1, sizeof *readers); /* n >= 1; the guard quiets GCC */
    for (int i = 0; i < n; i++) net->nodes[i].alias = -1;
    if (!readers) return; /* no aliasing: correct, only slower */
    for (int i = 1; i < n; i++)
        if (net->nodes[i].needed)
            for (int j = 0; j < net->nodes[i].mn->n_inputs; j++) readers[net->nodes[i].mn->inputs[j]]++;
    for (int i = 1; i < n; i++) {
        const model_node *mn = net->nodes[i].mn;
        if (!net->nodes[i].needed || mn->op != MODEL_OP_CONCAT) continue;
        size_t off = 0;
        for (int j = 0; j < mn->n_inputs; j++) {
            net_node *x = &net->nodes[mn->inputs[j]];
            if (mn->inputs[j] != 0 && readers[mn->inputs[j]] == 1) x->alias = i, x->alias_off = off;
            off += node_floats(x);
        }
    }
    free(readers);
    for (int i = n - 1; i >= 0; i--) { /* concats come after their inputs */
        net_node *x = &net->nodes[i];
        x->root = i, x->root_off = 0;
        if (x->alias >= 0) {
            const net_node *c = &net->nodes[x->alias];
            x->root = c->root, x->root_off = c->root_off + x->alias_off;
        }
    }
}

typedef struct interval {
    int start, end; /* inclusive times */
    size_t bytes, offset;
} interval;

static int by_size_desc(const void *a, const void *b) {
    const interval *x = *(interval *const *)a, *y = *(interval *const *)b;
    return (x->bytes < y->bytes) - (x->bytes > y->bytes);
}

static int by_offset(const void *a, const void *b) {
    const interval *x = *(interval *const *)a, *y = *(interval *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Above this many buffers (only hostile or giant graphs) the quadratic
 * placement below would take too long: buffers are laid end to end. */
#define MAX_PLACED_INTERVALS 2048

/* Greedy placement: biggest first, each at the lowest offset where it fits
 * between the placed intervals alive at the same time. Returns the size.
 * order: n pointers of scratch, live: n more. */
static size_t place_intervals(interval *iv, int n, interval **order, interval **live) {
    size_t total = 0;
    if (n > MAX_PLACED_INTERVALS) {
        for (int i = 0; i < n; i++) iv[i].offset = total, total += iv[i].bytes;
        return total;
    }
    for (int i = 0; i < n; i++) order[i] = &iv[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    for (int i = 0; i < n; i++) {
        interval *x = order[i];
        int n_live = 0;
        for (int j = 0; j < i; j++)
            if (!(order[j]->end < x->start || x->end < order[j]->start)) live[n_live++] = order[j];
        qsort(live, (size_t)n_live, sizeof *live, by_offset);
        size_t off = 0;
        for (int j = 0; j < n_live && live[j]->offset < off + x->bytes; j++)
            if (live[j]->offset + live[j]->bytes > off) off = live[j]->offset + live[j]->bytes;
        x->offset = off;
        if (off + x->bytes > total) total = off + x->bytes;
    }
    return total;
}

/* Times: forward of node i at i; backward of node i at 2n - i. Storage for
 * activations lives from the first node written into it to its last reader;
 * storage for gradients from its first writer to its own backward step.
 * allocate 0: only the arena's size is set (net_size_of). */
static dd_status plan_memory(dd_net *net, int allocate) {
    const int n = net->n_nodes;
    enum { ACT, GRAD, MASK, ARGMAX, COL, KINDS };
    const int n_iv = n * KINDS;
    interval *iv = calloc((size_t)n_iv, sizeof *iv);
    interval **order = malloc((size_t)n_iv * 2 * sizeof *order);
    if (!iv || !order) {
        free(iv), free(order);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n_iv; i++) iv[i].start = INT32_MAX, iv[i].end = -1;
    int *last_reader = calloc((size_t)n, sizeof *last_reader);
    if (!last_reader) {
        free(iv), free(order);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    for (int j = 1; j < n; j++)
        if (net->nodes[j].needed)
            for (int k = 0; k < net->nodes[j].mn->n_inputs; k++) last_reader[net->nodes[j].mn->inputs[k]] = j;
    size_t col_floats = 0;
    for (int i = 1; i < n; i++) {
        net_node *x = &net->nodes[i];
        if (!x->needed) continue;
        interval *act = &iv[x->root * KINDS + ACT], *grad = &iv[x->root * KINDS + GRAD];
        const int last_read = last_reader[i] > i ? last_reader[i] : i;
        const int first_grad = 2 * n - last_read; /* the last reader runs backward first */
        if (i < act->start) act->start = i;
        if (last_read > act->end) act->end = last_read;
        if (first_grad < grad->start) grad->start = first_grad;
        if (2 * n - i > grad->end) grad->end = 2 * n - i;
        if (x->root == i) act->bytes = grad->bytes = node_floats(x) * sizeof(float);
        if (x->mn->op == MODEL_OP_CONV || x->mn->op == MODEL_OP_RELU || x->mn->op == MODEL_OP_ADD) {
            if (x->mn->op == MODEL_OP_RELU || x->mn->relu) {
                interval *m = &iv[i * KINDS + MASK];
                m->start = 0, m->end = 2 * n, m->bytes = (size_t)x->c * nn_mask_bytes((size_t)x->h * x->w);
            }
            if (x->mn->op == MODEL_OP_CONV) {
                size_t need = nn_conv_col_floats(&x->conv);
                if (nn_winograd_applies(&x->conv)) /* its bands for every thread, either way */
                    for (int backward = 0; backward <= 1; backward++)
                        if (nn_winograd_scratch_floats(&x->conv, backward, net->threads) > need)
                            need = nn_winograd_scratch_floats(&x->conv, backward, net->threads);
                if (need > col_floats) col_floats = need;
            }
        }
        if (x->mn->op == MODEL_OP_MAXPOOL) {
            interval *a = &iv[i * KINDS + ARGMAX];
            a->start = 0, a->end = 2 * n, a->bytes = node_floats(x);
        }
    }
    iv[COL].start = 0, iv[COL].end = 2 * n, iv[COL].bytes = col_floats * sizeof(float);
    net->col_floats = col_floats;
    int used = 0;
    for (int i = 0; i < n_iv; i++) {
        if (!iv[i].bytes || iv[i].end < 0) continue;
        iv[i].bytes = util_align64(iv[i].bytes);
        iv[used++] = iv[i];
        iv[used - 1].offset = (size_t)i; /* remember the slot until placed */
    }
    int *slot = malloc((size_t)(used ? used : 1) * sizeof *slot);
    dd_status st = DD_OK;
    if (!slot) {
        st = util_fail(DD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < used; i++) slot[i] = (int)iv[i].offset;
    const size_t total = place_intervals(iv, used, order, order + n_iv);
    if (!allocate) {
        net->arena.size = util_align64(total ? total : 64); /* as util_arena_init rounds it */
        goto done;
    }
    if ((st = util_arena_init(&net->arena, total))) goto done;
    unsigned char *base = net->arena.base;
    net->arena.used = total;
    for (int i = 0; i < used; i++) {
        const int node = slot[i] / KINDS, kind = slot[i] % KINDS;
        void *p = base + iv[i].offset;
        switch (kind) {
        case ACT: net->nodes[node].act = p; break;
        case GRAD: net->nodes[node].grad = p; break;
        case MASK: net->nodes[node].mask = p; break;
        case ARGMAX: net->nodes[node].argmax = p; break;
        case COL: net->col = p; break;
        }
    }
    /* Aliased nodes point into their root's storage. */
    for (int i = 1; i < n; i++) {
        net_node *x = &net->nodes[i];
        if (!x->needed || x->root == i) continue;
        x->act = net->nodes[x->root].act + x->root_off;
        x->grad = net->nodes[x->root].grad + x->root_off;
    }
done:
    free(last_reader);
    free(slot);
    free(iv);
    free(order);
    return st;
}

static dd_status pack_weights(dd_net *net, int fast);

/* The node a term's layer names, after checking the term; *pre_relu: the
 * layer is that node's value before its ReLU (NULL: not asked). */
static dd_status term_node(const dd_model *model, const dd_term *term, int *node, int *pre_relu) {
    const int layer = term->layer ? model_find_layer(model, term->layer) : -1;
    if (layer < 0) return util_fail(DD_ERR_INVALID_ARG, "%s: no such layer", term->layer ? term->layer : "(null)");
    *node = model->layers[layer].node;
    if (pre_relu) *pre_relu = model->layers[layer].pre_relu;
    const int channels = model->nodes[*node].channels;
    if (term->channel < -1 || term->channel >= channels)
        return util_fail(DD_ERR_INVALID_ARG, "%s: channel %d outside 0..%d", term->layer, term->channel, channels - 1);
    if (!isfinite(term->weight)) return util_fail(DD_ERR_INVALID_ARG, "%s: weight is not finite", term->layer);
    return DD_OK;
}

/* Whether every node marked in needed gets an output along one axis (0:
 * height, 1: width) from an input of n pixels on it; the rules of
 * nn_window_plan, one axis at a time. size: n_nodes ints of scratch. */
static int axis_fits(const dd_model *model, const unsigned char *needed, int *size, int axis, int n) {
    size[0] = n;
    for (int i = 1; i < model->n_nodes; i++) {
        if (!needed[i]) continue;
        const model_node *mn = &model->nodes[i];
        const int in = size[mn->inputs[0]], k = axis ? mn->kw : mn->kh, s = axis ? mn->sw : mn->sh;
        int out = in;
        if (mn->op == MODEL_OP_CONV || mn->op == MODEL_OP_MAXPOOL || mn->op == MODEL_OP_AVGPOOL)
            out = mn->same_padding ? (in + s - 1) / s
                                   : nn_window_axis(in, k, s, mn->pad[2 * axis], mn->pad[2 * axis + 1], mn->ceil_mode);
        if (out < 1) return 0;
        size[i] = out;
    }
    return 1;
}

dd_status net_min_input(const dd_model *model, const dd_term *terms, int n_terms, int *min_h, int *min_w,
                        int *deepest) {
    if (!model || !terms || n_terms < 1)
        return util_fail(DD_ERR_INVALID_ARG, "an objective needs at least one term");
    const int n = model->n_nodes;
    unsigned char *needed = malloc((size_t)n);
    int *size = malloc((size_t)n * sizeof *size);
    dd_status st = DD_OK;
    if (!needed || !size) {
        st = util_fail(DD_ERR_NOMEM, "out of memory");
        goto done;
    }
    *min_h = *min_w = 1, *deepest = 0;
    long most = 0;
    int deepest_node = -1;
    for (int t = 0; t < n_terms; t++) {
        int node;
        if ((st = term_node(model, &terms[t], &node, NULL))) goto done;
        memset(needed, 0, (size_t)n);
        needed[node] = 1;
        for (int i = node; i > 0; i--)
            if (needed[i])
                for (int j = 0; j < model->nodes[i].n_inputs; j++) needed[model->nodes[i].inputs[j]] = 1;
        int least[2];
        for (int axis = 0; axis < 2; axis++) { /* the smallest side that fits, by bisection */
            int lo = 1, hi = MAX_SIDE + 1;
            while (lo < hi) {
                const int mid = lo + (hi - lo) / 2;
                if (axis_fits(model, needed, size, axis, mid)) hi = mid;
                else lo = mid + 1;
            }
            least[axis] = lo;
        }
        if (least[0] > *min_h) *min_h = least[0];
        if (least[1] > *min_w) *min_w = least[1];
        const long area = (long)least[0] * least[1]; /* ties: the later node, deeper in the graph */
        if (area > most || (area == most && node > deepest_node)) most = area, deepest_node = node, *deepest = t;
    }
done:
    free(needed), free(size);
    return st;
}

/* dd_net_new, packing the weights itself (from NULL) or borrowing from's;
 * sizes_only: shapes and the arena's size, no arena and no packed weights
 * (net_size_of). */
static dd_status net_plan(const dd_model *model, const dd_term *terms, int n_terms, int height, int width,
                          int threads, const dd_net *from, int sizes_only, dd_net **out) {
    dd_status st;
    *out = NULL;
    if (!model || !terms || n_terms < 1)
        return util_fail(DD_ERR_INVALID_ARG, "an objective needs at least one term");
    if (height < 1 || width < 1 || height > MAX_SIDE || width > MAX_SIDE)
        return util_fail(DD_ERR_INVALID_ARG, "input size %dx%d outside 1..%d", width, height, MAX_SIDE);
    dd_net *net = calloc(1, sizeof *net);
    if (!net) return util_fail(DD_ERR_NOMEM, "out of memory");
    net->model = model;
    net->h = height, net->w = width;
    net->threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (net->threads < 1) net->threads = 1;
    net->cpu = nn_cpu();
    net->n_nodes = model->n_nodes;
    net->nodes = calloc((size_t)net->n_nodes, sizeof *net->nodes);
    net->terms = calloc((size_t)n_terms, sizeof *net->terms);
    if (!net->nodes || !net->terms) {
        st = util_fail(DD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    net->n_terms = n_terms;
    for (int i = 0; i < net->n_nodes; i++) net->nodes[i].mn = &model->nodes[i];
    for (int t = 0; t < n_terms; t++) {
        int node, pre_relu;
        if ((st = term_node(model, &terms[t], &node, &pre_relu))) goto fail;
        net->terms[t].node = node, net->terms[t].channel = terms[t].channel, net->terms[t].weight = terms[t].weight;
        net->terms[t].pre_relu = pre_relu;
        net->nodes[node].needed = 1;
        net->nodes[node].split_relu |= pre_relu;
    }
    /* Everything an objective node reads from is needed; nothing after. */
    for (int i = net->n_nodes - 1; i > 0; i--)
        if (net->nodes[i].needed)
            for (int j = 0; j < model->nodes[i].n_inputs; j++) net->nodes[model->nodes[i].inputs[j]].needed = 1;
    net->nodes[0].needed = 1;
    net->nodes[0].c = 3, net->nodes[0].h = height, net->nodes[0].w = width;
    if ((st = plan_shapes(net))) goto fail;
    for (int i = 1; i < net->n_nodes; i++) /* no concat or add: everything is stem */
        if (net->nodes[i].needed && (net->nodes[i].mn->op == MODEL_OP_CONCAT || net->nodes[i].mn->op == MODEL_OP_ADD)) {
            net->stem_below = (size_t)net->nodes[i].h * net->nodes[i].w;
            break;
        }
    plan_aliases(net);
    if ((st = plan_memory(net, !sizes_only))) goto fail;
    if (!sizes_only && (st = from ? net_borrow_packs(net, from) : pack_weights(net, 0))) goto fail;
    *out = net;
    return DD_OK;
fail:
    dd_net_free(net);
    return st;
}

dd_status dd_net_new(const dd_model *model, const dd_term *terms, int n_terms,
                     int height, int width, int threads, dd_net **out) {
    util_clear_error();
    return net_plan(model, terms, n_terms, height, width, threads, NULL, 0, out);
}

dd_status net_new_borrowing(const dd_model *model, const dd_term *terms, int n_terms, int height, int width,
                            int threads, const dd_net *from, dd_net **out) {
    *out = NULL;
    if (!from) return util_fail(DD_ERR_INVALID_ARG, "no net to borrow the packed weights from");
    return net_plan(model, terms, n_terms, height, width, threads, from, 0, out);
}

/* ---- packed weights --------------------------------------------------------
 * Each convolution's faster paths, packed once per net (or borrowed):
 * - exact mode: Winograd F(4x4,3x3) in float32 both ways for 3x3 stride-1
 *   convolutions (4x fewer products, no im2col or col2im); im2col + sgemm
 *   for the rest.
 * - fast mode: the same float32 Winograd both ways for 3x3 stride-1
 *   convolutions, bfloat16 GEMMs for everything else except the rest of the
 *   stem's forward, which stays float32. In bfloat16 the stem's rounding
 *   flips ReLU masks and max-pool winners at full resolution, and each flip
 *   moves gradient between input pixels: the input gradient of a photo
 *   correlated only 0.96 with the exact one (0.99999 with every backward in
 *   bfloat16 and every forward in float32; 0.997 with the stem's forward in
 *   float32). Winograd's 4x fewer products in float32 beat bfloat16's 2x
 *   faster ones wherever it applies (at 512, mixed blocks' 3x3 forward 2.15
 *   -> 1.4 ms, conv3's backward 9.4 -> 6.7), and their float32 rounding
 *   raises the photos' correlation a little. */

/* The fast mode's GEMM path at a level, or NN_CONV_SGEMM for none. */
static nn_conv_path fast_path(nn_cpu_level cpu) {
    const nn_fast_kind kind = nn_cpu_fast(cpu);
    return kind == NN_FAST_BF16 ? NN_CONV_BF16 : kind == NN_FAST_INT16 ? NN_CONV_I16 : NN_CONV_SGEMM;
}

const char *dd_fast_kernel(void) {
    const nn_conv_path p = fast_path(nn_cpu());
    return p == NN_CONV_BF16 ? "avx512bf16" : p == NN_CONV_I16 ? "int16" : NULL;
}

int dd_net_fast(const dd_net *net) { return net && net->fast; }

static int in_stem(const dd_net *net, int node) {
    return (size_t)net->nodes[node].h * net->nodes[node].w > net->stem_below;
}

/* The path of convolution i each way (docs/ARCHITECTURE.md, Kernels). */
static void choose_paths(const dd_net *net, int i, int fast, nn_conv_path *forward, nn_conv_path *backward) {
    const nn_conv_path gemm = net->cpu >= NN_CPU_AVX2 ? NN_CONV_TILE : NN_CONV_SGEMM;
    if (nn_winograd_applies(&net->nodes[i].conv)) {
        *forward = *backward = NN_CONV_WINOGRAD;
    } else if (!fast) {
        *forward = *backward = gemm;
    } else {
        *forward = in_stem(net, i) ? gemm : fast_path(net->cpu);
        *backward = fast_path(net->cpu);
    }
}

static int is_conv(const dd_net *net, int i) {
    return net->nodes[i].needed && net->nodes[i].mn->op == MODEL_OP_CONV;
}

static void drop_packs(dd_net *net) {
    for (int i = 0; i < net->n_nodes; i++) net->nodes[i].conv.packed = NULL;
    free(net->packed_mem);
    net->packed_mem = NULL;
    net->fast = 0;
}

/* One block: the packed weights of every conv, then the threads' GEMM
 * scratch for the largest k either way. */
/* Every convolution's paths: as choose_paths says, or (plain) im2col +
 * OpenBLAS, which needs no packed weights; and the FLOPs they run. */
static void set_paths(dd_net *net, int fast, int plain) {
    net->flops_fwd = net->flops_bwd = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        if (!is_conv(net, i)) continue;
        nn_conv *cv = &net->nodes[i].conv;
        nn_conv_path forward = NN_CONV_SGEMM, backward = NN_CONV_SGEMM;
        if (!plain) choose_paths(net, i, fast, &forward, &backward);
        nn_conv_set_paths(cv, forward, backward);
        net->flops_fwd += nn_conv_path_flops(cv, 0);
        net->flops_bwd += nn_conv_path_flops(cv, 1);
    }
}

/* Bytes of that block for the paths set. */
static size_t pack_bytes(const dd_net *net) {
    size_t words = 0, scratch = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        if (!is_conv(net, i)) continue;
        const nn_conv *cv = &net->nodes[i].conv;
        words += nn_conv_pack_words(cv);
        if (nn_conv_scratch_words(cv) > scratch) scratch = nn_conv_scratch_words(cv);
    }
    return (words + scratch * (size_t)net->threads) * sizeof(uint32_t) + 64;
}

static dd_status pack_weights(dd_net *net, int fast) {
    drop_packs(net);
    set_paths(net, fast, 0);
    net->packed_mem = malloc(pack_bytes(net));
    if (!net->packed_mem) { /* the net stays usable, unpacked */
        set_paths(net, 0, 1);
        return util_fail(DD_ERR_NOMEM, "out of memory for the packed weights");
    }
    uint32_t *p = net->packed_mem;
    for (int i = 1; i < net->n_nodes; i++) {
        if (!is_conv(net, i)) continue;
        net_node *x = &net->nodes[i];
        x->packed = (nn_conv_packed){.col_floats = net->col_floats};
        nn_conv_pack(&x->packed, p, x->mn->weights, &x->conv);
        p += nn_conv_pack_words(&x->conv);
    }
    for (int i = 1; i < net->n_nodes; i++)
        if (is_conv(net, i)) net->nodes[i].packed.scratch = p, net->nodes[i].conv.packed = &net->nodes[i].packed;
    net->fast = fast;
    return DD_OK;
}

dd_status net_borrow_packs(dd_net *net, const dd_net *from) {
    if (!net || !from || !from->packed_mem || net->model != from->model || net->threads != from->threads ||
        net->cpu != from->cpu)
        return util_fail(DD_ERR_INVALID_ARG, "no net of the same model and threads to share weights with");
    for (int i = 1; i < net->n_nodes; i++)
        if (net->nodes[i].needed != from->nodes[i].needed)
            return util_fail(DD_ERR_INVALID_ARG, "nets with different objectives share no weights");
    drop_packs(net);
    net->flops_fwd = net->flops_bwd = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        if (!is_conv(net, i)) continue;
        net_node *x = &net->nodes[i];
        x->packed = from->nodes[i].packed;
        x->packed.col_floats = net->col_floats; /* its own col scratch */
        nn_conv_set_paths(&x->conv, from->nodes[i].conv.forward, from->nodes[i].conv.backward);
        x->conv.packed = &x->packed;
        net->flops_fwd += nn_conv_path_flops(&x->conv, 0);
        net->flops_bwd += nn_conv_path_flops(&x->conv, 1);
    }
    net->fast = from->fast;
    return DD_OK;
}

void net_hand_over_packs(dd_net *net, dd_net *from) {
    if (!net || !from || !from->packed_mem || net->packed_mem || net->fast != from->fast) return;
    net->packed_mem = from->packed_mem;
    from->packed_mem = NULL;
}

void net_release_arena(dd_net *net) {
    if (!net) return;
    util_arena_free(&net->arena);
    for (int i = 0; i < net->n_nodes; i++) net->nodes[i].act = net->nodes[i].grad = NULL;
    for (int i = 0; i < net->n_nodes; i++) net->nodes[i].mask = net->nodes[i].argmax = NULL;
    net->col = NULL;
}

dd_status net_size_of(const dd_model *model, const dd_term *terms, int n_terms, int height, int width, int threads,
                      int fast, net_size *out) {
    dd_net *net;
    dd_status st = net_plan(model, terms, n_terms, height, width, threads, NULL, 1, &net);
    if (st) return st;
    set_paths(net, fast && fast_path(net->cpu) != NN_CONV_SGEMM, 0); /* as dd_net_set_fast */
    out->arena_bytes = net->arena.size;
    out->packed_bytes = pack_bytes(net);
    out->flops_fwd = net->flops_fwd, out->flops_bwd = net->flops_bwd;
    dd_net_free(net);
    return DD_OK;
}

dd_status dd_net_set_fast(dd_net *net, int fast) {
    util_clear_error();
    if (!net) return util_fail(DD_ERR_INVALID_ARG, "no net");
    fast = fast && fast_path(net->cpu) != NN_CONV_SGEMM;
    if (fast == net->fast) return DD_OK; /* packed (or borrowed) that way already */
    return pack_weights(net, fast);
}

void dd_net_free(dd_net *net) {
    if (!net) return;
    free(net->packed_mem);
    util_arena_free(&net->arena);
    free(net->nodes);
    free(net->terms);
    free(net->guide_mem);
    free(net);
}

/* ---- guides ------------------------------------------------------------------ */

void net_capture_term(dd_net *net, int term, float *dst) { net->terms[term].capture = dst; }

void net_term_shape(const dd_net *net, int term, int *c, int *h, int *w) {
    const net_node *x = &net->nodes[net->terms[term].node];
    *c = x->c, *h = x->h, *w = x->w;
}

/* Scores are computed in bands of rows x guide_n floats: about 4 MiB, and at
 * least 64 rows so that each band is a worthwhile GEMM. */
enum { SCORE_FLOATS = 1 << 20, SCORE_MIN_ROWS = 64 };

dd_status dd_net_set_guide(dd_net *net, const dd_guide *guide) {
    util_clear_error();
    if (!net) return util_fail(DD_ERR_INVALID_ARG, "no net");
    free(net->guide_mem);
    net->guide_mem = NULL, net->scores = NULL;
    for (int t = 0; t < net->n_terms; t++) {
        net_term *term = &net->terms[t];
        term->guide = NULL, term->argmax = NULL, term->best = NULL;
    }
    if (!guide) return DD_OK;
    if (guide->model != net->model || guide->n_terms != net->n_terms)
        return util_fail(DD_ERR_INVALID_ARG, "the guide was made for another model or objective");
    size_t bytes = 0, widest = 1, most_rows = 0;
    for (int t = 0; t < net->n_terms; t++) {
        const net_term *term = &net->terms[t];
        const guide_layer *gl = &guide->layers[t];
        const net_node *x = &net->nodes[term->node];
        int node = -1, pre = 0;
        const int layer = model_find_layer(net->model, gl->layer);
        if (layer >= 0) node = net->model->layers[layer].node, pre = net->model->layers[layer].pre_relu;
        if (node != term->node || pre != term->pre_relu || gl->channels != x->c || term->channel != -1)
            return util_fail(DD_ERR_INVALID_ARG, "the guide was made for other layers than the objective's (%s)",
                             gl->layer);
        const size_t plane = (size_t)x->h * x->w;
        bytes += plane * (sizeof(int) + sizeof(float));
        if ((size_t)gl->n > widest) widest = (size_t)gl->n;
        if (plane > most_rows) most_rows = plane;
    }
    size_t rows = SCORE_FLOATS / widest;
    if (rows < SCORE_MIN_ROWS) rows = SCORE_MIN_ROWS;
    if (rows > most_rows) rows = most_rows;
    net->guide_mem = malloc(bytes + rows * widest * sizeof(float));
    if (!net->guide_mem) return util_fail(DD_ERR_NOMEM, "out of memory for the guide's matches");
    char *p = net->guide_mem;
    net->scores = (float *)p, net->score_rows = (int)rows;
    p += rows * widest * sizeof(float);
    for (int t = 0; t < net->n_terms; t++) {
        net_term *term = &net->terms[t];
        const net_node *x = &net->nodes[term->node];
        const size_t plane = (size_t)x->h * x->w;
        term->best = (float *)p, p += plane * sizeof(float);
        term->argmax = (int *)p, p += plane * sizeof(int);
        term->guide = guide->layers[t].features, term->guide_n = guide->layers[t].n;
    }
    return DD_OK;
}

/* ---- running -------------------------------------------------------------- */

typedef struct stats_job {
    const float *act;
    size_t plane;
    int c;
    double *s, *m;
} stats_job;

static void stats_planes(void *ctx, size_t from, size_t to, int worker) {
    const stats_job *j = ctx;
    (void)worker;
    for (size_t k = from; k < to; k++) {
        const float *p = j->act + (size_t)(j->c + (int)k) * j->plane;
        double a = 0, b = -INFINITY;
        for (size_t i = 0; i < j->plane; i++) {
            a += p[i];
            if (p[i] > b) b = p[i];
        }
        j->s[k] = a, j->m[k] = b;
    }
}

/* Sum and max of planes [c0, c1) of x, per channel in parallel, then
 * reduced in channel order so the result does not depend on threads. */
static void plane_stats(const net_node *x, int c0, int c1, double *sum, double *max, int threads) {
    const size_t plane = (size_t)x->h * x->w;
    double s_all = 0, m_all = -INFINITY;
    for (int c = c0; c < c1;) {
        enum { CHUNK = 64 };
        double s[CHUNK], m[CHUNK];
        const int n = c1 - c < CHUNK ? c1 - c : CHUNK;
        stats_job j = {x->act, plane, c, s, m};
        team_for(threads, (size_t)n, stats_planes, &j);
        for (int k = 0; k < n; k++) {
            s_all += s[k];
            if (m[k] > m_all) m_all = m[k];
        }
        c += n;
    }
    *sum = s_all, *max = m_all;
}

/* The statistics of the terms on node, those before its ReLU (pre) or the
 * rest. */
static void record_terms(dd_net *net, int node, int pre) {
    const net_node *x = &net->nodes[node];
    for (int t = 0; t < net->n_terms; t++) {
        net_term *term = &net->terms[t];
        if (term->node != node || term->pre_relu != pre) continue;
        const int c0 = term->channel < 0 ? 0 : term->channel, c1 = term->channel < 0 ? x->c : c0 + 1;
        dd_layer_stats *s = &term->stats;
        s->channels = c1 - c0, s->height = x->h, s->width = x->w;
        plane_stats(x, c0, c1, &s->sum, &s->max, net->threads);
        s->mean = s->sum / ((double)s->channels * s->height * s->width);
        const size_t plane = (size_t)x->h * x->w;
        if (term->capture) memcpy(term->capture, x->act, node_floats(x) * sizeof(float));
        if (!term->guide) continue;
        nn_match(x->act, plane, x->c, term->guide, term->guide_n, net->scores, net->score_rows, term->argmax,
                 term->best, net->threads);
        double v = 0;
        for (size_t i = 0; i < plane; i++) v += term->best[i]; /* in order: the same bits for any threads */
        term->guide_value = v;
    }
}

/* ---- profile ---------------------------------------------------------------- */

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void net_set_profile(dd_net *net, net_profile *profile) { net->profile = profile; }

const char *net_profile_name(int kind) {
    static const char *const names[NET_PROFILE_KINDS] = {
        [NET_PROFILE_CONV_SGEMM] = "conv sgemm", [NET_PROFILE_CONV_TILE] = "conv tile",
        [NET_PROFILE_CONV_BF16] = "conv bf16",   [NET_PROFILE_CONV_WINOGRAD] = "conv winograd",
        [NET_PROFILE_CONV_I16] = "conv int16",
        [NET_PROFILE_MAXPOOL] = "max pool",      [NET_PROFILE_AVGPOOL] = "avg pool",
        [NET_PROFILE_CONCAT] = "concat",         [NET_PROFILE_OTHER] = "other"};
    return kind >= 0 && kind < NET_PROFILE_KINDS ? names[kind] : "?";
}

static int profile_kind(const dd_net *net, int i, int pass) {
    _Static_assert((int)NET_PROFILE_CONV_SGEMM == (int)NN_CONV_SGEMM && (int)NET_PROFILE_CONV_TILE == (int)NN_CONV_TILE &&
                       (int)NET_PROFILE_CONV_BF16 == (int)NN_CONV_BF16 &&
                       (int)NET_PROFILE_CONV_WINOGRAD == (int)NN_CONV_WINOGRAD &&
                       (int)NET_PROFILE_CONV_I16 == (int)NN_CONV_I16,
                   "profile kinds follow nn_conv_path");
    switch (net->nodes[i].mn->op) {
    case MODEL_OP_CONV: return (int)(pass ? net->nodes[i].conv.backward : net->nodes[i].conv.forward);
    case MODEL_OP_MAXPOOL: return NET_PROFILE_MAXPOOL;
    case MODEL_OP_AVGPOOL: return NET_PROFILE_AVGPOOL;
    case MODEL_OP_CONCAT: return NET_PROFILE_CONCAT;
    default: return NET_PROFILE_OTHER;
    }
}

/* Charges the time since *t0 to node i's kind, pass 0 forward, 1 backward. */
static void profile_charge(dd_net *net, int i, int pass, double *t0) {
    if (!net->profile) return;
    const double t = seconds_now();
    net->profile->seconds[pass][i < 0 ? NET_PROFILE_OTHER : profile_kind(net, i, pass)] += t - *t0;
    *t0 = t;
}

void net_set_should_stop(dd_net *net, int (*should_stop)(void *user), void *user) {
    net->should_stop = should_stop, net->stop_user = user;
}

/* Asks the user's should_stop, on the calling thread, between nodes. */
static int stop_asked(const dd_net *net) { return net->should_stop && net->should_stop(net->stop_user); }

/* Returns 1 when stopped by should_stop (the outputs are then partial). */
static int forward(dd_net *net, const float *input) {
    double t0 = net->profile ? seconds_now() : 0;
    net->nodes[0].act = (float *)input; /* only ever read */
    for (int i = 1; i < net->n_nodes; i++) {
        net_node *x = &net->nodes[i];
        if (!x->needed) continue;
        if (stop_asked(net)) return 1;
        const model_node *mn = x->mn;
        const net_node *in = &net->nodes[mn->inputs[0]];
        const size_t plane = (size_t)x->h * x->w;
        switch (mn->op) {
        case MODEL_OP_CONV:
            nn_conv_forward(x->act, mn->relu && !x->split_relu ? x->mask : NULL, in->act, mn->weights, mn->bias,
                            &x->conv, net->col, net->threads);
            break;
        case MODEL_OP_ADD: {
            const float *ins[64];
            for (int j = 0; j < mn->n_inputs; j++) ins[j] = net->nodes[mn->inputs[j]].act;
            nn_add_forward(x->act, mn->relu && !x->split_relu ? x->mask : NULL, ins, mn->n_inputs, x->c, plane,
                           net->threads);
        } break;
        case MODEL_OP_MAXPOOL: nn_maxpool_forward(x->act, x->argmax, in->act, x->c, &x->win, net->threads); break;
        case MODEL_OP_AVGPOOL: nn_avgpool_forward(x->act, in->act, x->c, &x->win, net->threads); break;
        case MODEL_OP_RELU:
            nn_relu_forward(x->act, x->mask, in->act, x->c, (size_t)x->h * x->w, net->threads);
            break;
        case MODEL_OP_CONCAT: {
            size_t off = 0;
            for (int j = 0; j < mn->n_inputs; j++) {
                const net_node *o = &net->nodes[mn->inputs[j]];
                if (o->alias != i) memcpy(x->act + off, o->act, node_floats(o) * sizeof(float));
                off += node_floats(o);
            }
        } break;
        case MODEL_OP_INPUT: break;
        }
        if (mn->relu && x->split_relu) { /* the ReLU apart, after its input's terms */
            record_terms(net, i, 1);
            nn_relu_forward(x->act, x->mask, x->act, x->c, plane, net->threads);
        }
        record_terms(net, i, 0);
        profile_charge(net, i, 0, &t0);
    }
    return 0;
}

static double objective_value(const dd_net *net) {
    double v = 0;
    for (int t = 0; t < net->n_terms; t++)
        v += net->terms[t].weight * (net->terms[t].guide ? net->terms[t].guide_value : net->terms[t].stats.mean);
    return v;
}

/* dst = 0 (src NULL) or dst += src, planes x plane floats. Each thread
 * takes its share of every plane: the top-to-bottom split that the GEMMs'
 * columns and Winograd's stripes make, so what is zeroed or summed here
 * sits in the cache of the core that next writes or reads it. Two vCPUs of
 * a VM may share no cache; a main thread that zeroed every gradient alone
 * cost 1.7x on the backward's 1x1 convs. */
typedef struct zero_add_job {
    float *dst;
    const float *src;
    int planes;
    size_t plane;
} zero_add_job;

static void zero_or_add_share(void *ctx, size_t from, size_t to, int worker) {
    const zero_add_job *j = ctx;
    (void)worker;
    for (int c = 0; c < j->planes; c++) {
        float *d = j->dst + (size_t)c * j->plane;
        if (!j->src) {
            memset(d + from, 0, (to - from) * sizeof(float));
            continue;
        }
        const float *q = j->src + (size_t)c * j->plane;
        for (size_t e = from; e < to; e++) d[e] += q[e];
    }
}

static void planes_zero_or_add(float *dst, const float *src, int planes, size_t plane, int threads) {
    zero_add_job j = {dst, src, planes, plane};
    team_for(threads, plane, zero_or_add_share, &j);
}

/* The gradient buffer of node i, zeroed on its first use in a pass. */
static float *grad_of(dd_net *net, int i) {
    net_node *x = &net->nodes[i];
    net_node *r = &net->nodes[x->root];
    if (!r->grad_zeroed) {
        planes_zero_or_add(r->grad, NULL, r->c, (size_t)r->h * r->w, net->threads);
        r->grad_zeroed = 1;
    }
    return x->grad;
}

/* Node i's gradient buffer when nothing has written it this pass and it
 * is its own storage (no concat around it): the caller then writes it
 * whole instead of zeroing and adding. NULL otherwise (use grad_of). */
static float *grad_fresh(dd_net *net, int i) {
    net_node *x = &net->nodes[i];
    if (x->root != i || x->grad_zeroed) return NULL;
    x->grad_zeroed = 1;
    return x->grad;
}

/* The gradients of the terms on node, before its ReLU (pre) or after. */
static void add_seeds(dd_net *net, int node, int pre) {
    const net_node *x = &net->nodes[node];
    const size_t plane = (size_t)x->h * x->w;
    for (int t = 0; t < net->n_terms; t++) {
        const net_term *term = &net->terms[t];
        if (term->node != node || term->pre_relu != pre || term->weight == 0.0f) continue;
        float *g = grad_of(net, node);
        if (term->guide) { /* d(sum_i max_j <x_i, y_j>)/dx_i = y_argmax */
            nn_match_backward(g, plane, x->c, term->guide, term->guide_n, term->argmax, term->weight, net->threads);
            continue;
        }
        /* d(weight * mean)/dx = weight / count for every element averaged. */
        const size_t from = term->channel < 0 ? 0 : (size_t)term->channel * plane;
        const size_t count = term->channel < 0 ? node_floats(x) : plane;
        const float v = (float)(term->weight / (double)count);
        for (size_t k = from; k < from + count; k++) g[k] += v;
    }
}

/* Returns 1 when stopped by should_stop (input_grad then partial). */
static int backward(dd_net *net, float *input_grad) {
    double t0 = net->profile ? seconds_now() : 0;
    planes_zero_or_add(input_grad, NULL, 3, (size_t)net->h * net->w, net->threads);
    profile_charge(net, -1, 1, &t0);
    for (int i = 0; i < net->n_nodes; i++) net->nodes[i].grad_zeroed = 0;
    net->nodes[0].grad = input_grad;
    net->nodes[0].grad_zeroed = 1;
    for (int i = net->n_nodes - 1; i > 0; i--) {
        net_node *x = &net->nodes[i];
        if (!x->needed) continue;
        if (stop_asked(net)) return 1;
        const model_node *mn = x->mn;
        const int in = mn->inputs[0];
        add_seeds(net, i, 0);
        /* A ReLU run apart: its backward in place, then the terms before it. */
        const int relu_apart = mn->relu && x->split_relu;
        if (relu_apart && net->nodes[x->root].grad_zeroed)
            nn_relu_mask_apply(x->grad, x->mask, x->c, (size_t)x->h * x->w, net->threads);
        if (relu_apart) add_seeds(net, i, 1);
        if (!net->nodes[x->root].grad_zeroed) continue; /* nothing reaches it */
        switch (mn->op) {
        case MODEL_OP_CONV:
            nn_conv_backward_input(grad_of(net, in), x->grad, mn->relu && !relu_apart ? x->mask : NULL, mn->weights,
                                   &x->conv, net->col, net->threads);
            break;
        case MODEL_OP_ADD:
            for (int j = 0; j < mn->n_inputs; j++) {
                const net_node *o = &net->nodes[mn->inputs[j]];
                const int masked = mn->relu && !relu_apart;
                const size_t plane = (size_t)o->h * o->w;
                float *fresh = grad_fresh(net, mn->inputs[j]);
                if (fresh && masked) nn_relu_backward_set(fresh, x->grad, x->mask, o->c, plane, net->threads);
                else if (fresh) memcpy(fresh, x->grad, node_floats(o) * sizeof(float));
                else if (masked) nn_relu_backward(grad_of(net, mn->inputs[j]), x->grad, x->mask, o->c, plane, net->threads);
                else planes_zero_or_add(grad_of(net, mn->inputs[j]), x->grad, o->c, plane, net->threads);
            }
            break;
        case MODEL_OP_MAXPOOL:
            nn_maxpool_backward(grad_of(net, in), x->grad, x->argmax, x->c, &x->win, net->threads);
            break;
        case MODEL_OP_AVGPOOL: nn_avgpool_backward(grad_of(net, in), x->grad, x->c, &x->win, net->threads); break;
        case MODEL_OP_RELU:
            nn_relu_backward(grad_of(net, in), x->grad, x->mask, x->c, (size_t)x->h * x->w, net->threads);
            break;
        case MODEL_OP_CONCAT: {
            size_t off = 0;
            for (int j = 0; j < mn->n_inputs; j++) {
                const int k = mn->inputs[j];
                const size_t n = node_floats(&net->nodes[k]);
                if (net->nodes[k].alias != i) /* aliased inputs already hold their slice */
                    planes_zero_or_add(grad_of(net, k), x->grad + off, net->nodes[k].c,
                                       (size_t)net->nodes[k].h * net->nodes[k].w, net->threads);
                off += n;
            }
        } break;
        case MODEL_OP_INPUT: break;
        }
        profile_charge(net, i, 1, &t0);
    }
    return 0;
}

dd_status dd_net_forward(dd_net *net, const float *input, double *objective) {
    util_clear_error();
    if (!net || !input) return util_fail(DD_ERR_INVALID_ARG, "no net or input");
    team_scope team;
    team_enter(&team, net->threads);
    const int stopped = forward(net, input);
    team_leave(&team);
    if (stopped) return util_fail(DD_ERR_CANCELLED, "cancelled");
    if (objective) *objective = objective_value(net);
    return DD_OK;
}

dd_status dd_net_gradient(dd_net *net, const float *input, float *grad, double *objective) {
    util_clear_error();
    if (!net || !input || !grad) return util_fail(DD_ERR_INVALID_ARG, "no net, input or gradient buffer");
    team_scope team;
    team_enter(&team, net->threads);
    int stopped = forward(net, input);
    if (!stopped && objective) *objective = objective_value(net);
    if (!stopped) stopped = backward(net, grad);
    team_leave(&team);
    return stopped ? util_fail(DD_ERR_CANCELLED, "cancelled") : DD_OK;
}

dd_status dd_net_term_stats(const dd_net *net, int term, dd_layer_stats *out) {
    util_clear_error();
    if (!net || term < 0 || term >= net->n_terms)
        return util_fail(DD_ERR_INVALID_ARG, "term %d out of range", term);
    *out = net->terms[term].stats;
    return DD_OK;
}

void dd_net_flops(const dd_net *net, double *fwd, double *bwd) {
    if (fwd) *fwd = net->flops_fwd;
    if (bwd) *bwd = net->flops_bwd;
}

size_t dd_net_arena_bytes(const dd_net *net) { return net->arena.size; }

int net_gemm_shapes(const dd_net *net, net_gemm *out, int max) {
    int count = 0;
    for (int i = 1; i < net->n_nodes; i++) {
        const net_node *x = &net->nodes[i];
        if (!x->needed || x->mn->op != MODEL_OP_CONV) continue;
        const nn_window *s = &x->conv.win;
        const int ckk = x->conv.c * s->kh * s->kw;
        const int full = nn_conv_is_pointwise(&x->conv) ? 1 : s->oh / x->conv.band_rows;
        const int rest = nn_conv_is_pointwise(&x->conv) ? 0 : s->oh % x->conv.band_rows;
        const int n_full = nn_conv_is_pointwise(&x->conv) ? s->oh * s->ow : x->conv.band_rows * s->ow;
        if (full > 0) {
            if (count < max) out[count] = (net_gemm){x->conv.k, n_full, ckk, full, x->mn->name};
            count++;
        }
        if (rest > 0) {
            if (count < max) out[count] = (net_gemm){x->conv.k, rest * s->ow, ckk, 1, x->mn->name};
            count++;
        }
    }
    return count;
}
