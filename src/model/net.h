/* Internals of a planned net that benchmarks and tests may look at. */
#ifndef DD_NET_H
#define DD_NET_H

#include "deepdream.h"

/* One sgemm call of a forward pass, row-major C(m x n) = A(m x k) B(k x n),
 * with how many times it runs per pass (bands of one convolution). */
typedef struct net_gemm {
    int m, n, k, calls;
    const char *layer;
} net_gemm;

/* Fills up to max entries, one or two per convolution (full bands and the
 * last, shorter band); returns how many there are in all. */
int net_gemm_shapes(const dd_net *net, net_gemm *out, int max);

/* Seconds spent per kind of node, forward [0] and backward [1], summed
 * over passes while set (benchmarks). Convolutions are counted by the path
 * that ran them (kinds 0 .. NN_CONV_PATHS - 1, as nn_conv_path). */
enum {
    NET_PROFILE_CONV_SGEMM, NET_PROFILE_CONV_TILE, NET_PROFILE_CONV_BF16, NET_PROFILE_CONV_WINOGRAD,
    NET_PROFILE_CONV_I16, NET_PROFILE_MAXPOOL, NET_PROFILE_AVGPOOL, NET_PROFILE_CONCAT, NET_PROFILE_OTHER, NET_PROFILE_KINDS
};
typedef struct net_profile {
    double seconds[2][NET_PROFILE_KINDS];
} net_profile;
void net_set_profile(dd_net *net, net_profile *profile);
const char *net_profile_name(int kind);

/* net runs with from's packed weights and bfloat16 scratch (and its mode),
 * saving a copy per net: same model, objective and threads; from must
 * outlive net, and the two must not run at the same time (one scratch). */
dd_status net_borrow_packs(dd_net *net, const dd_net *from);
/* dd_net_new, then net_borrow_packs from from, without packing weights of
 * its own in between (which costs a pack's time and memory per net). */
dd_status net_new_borrowing(const dd_model *model, const dd_term *terms, int n_terms, int height, int width,
                            int threads, const dd_net *from, dd_net **out);
/* net, which borrows from's packed weights, takes them over: from can then
 * be freed while net runs on. */
void net_hand_over_packs(dd_net *net, dd_net *from);
/* Frees the net's arena once it has run for the last time: it can still
 * lend or hand over its packed weights, and be freed, nothing else. */
void net_release_arena(dd_net *net);

/* should_stop(user) is polled on the calling thread before each node of a
 * forward and a backward pass (between parallel regions, never inside
 * one); when it returns nonzero the pass ends there and dd_net_forward /
 * dd_net_gradient return DD_ERR_CANCELLED, the outputs then undefined.
 * NULL: never polled. */
void net_set_should_stop(dd_net *net, int (*should_stop)(void *user), void *user);

/* The least input height and width at which every layer the terms need
 * gets an output (shape inference only: no plan, no arena), and the index
 * of the term whose layer needs the largest input (*deepest, for messages).
 * A side that no input up to 65536 satisfies gives 65537. Unknown layers
 * and channels are DD_ERR_INVALID_ARG, as in dd_net_new. An input fits iff
 * height >= *min_h and width >= *min_w: each axis's output size depends on
 * that axis alone and never shrinks as the input grows. */
dd_status net_min_input(const dd_model *model, const dd_term *terms, int n_terms, int *min_h, int *min_w,
                        int *deepest);

/* A guide's value at each term's layer, made by dd_guide_new
 * (src/dream/guide.c) and matched against by dd_net_set_guide. */
typedef struct guide_layer {
    const char *layer;  /* the term's name, pointing into the model */
    int channel;        /* -1: guides take whole layers */
    int channels, n;    /* features: channels x n (the guide's h x w there) */
    float *features;
} guide_layer;
struct dd_guide {
    const dd_model *model;
    int n_terms;
    guide_layer *layers;
    int height, width; /* the size the guide was seen at */
};

/* After each forward, term's tensor (its value as the term reads it) is
 * copied into dst (channels x h x w of the net's shape for it); NULL stops. */
void net_capture_term(dd_net *net, int term, float *dst);
/* The shape of term's tensor: channels (all, whatever the term's channel),
 * height and width. */
void net_term_shape(const dd_net *net, int term, int *c, int *h, int *w);

/* What a net planned for this objective, input size and threads would take,
 * from its plan alone (shape inference and the arena's layout; no arena,
 * no packed weights): the bytes dd_net_arena_bytes would give, the bytes
 * of the packed weights and their scratch in the mode dd_net_set_fast(fast)
 * would choose, and what dd_net_flops would give in that mode. Errors as
 * dd_net_new's. */
typedef struct net_size {
    size_t arena_bytes, packed_bytes;
    double flops_fwd, flops_bwd;
} net_size;
dd_status net_size_of(const dd_model *model, const dd_term *terms, int n_terms, int height, int width, int threads,
                      int fast, net_size *out);

#endif
