/* The runnable network: nodes lowered from the weights file's graph, with
 * batch norm folded into the convolutions and ReLUs fused into them. */
#ifndef DD_MODEL_H
#define DD_MODEL_H

#include "deepdream.h"

typedef enum model_op {
    MODEL_OP_INPUT,
    MODEL_OP_CONV,    /* conv + folded batch norm (bias) + optional ReLU */
    MODEL_OP_MAXPOOL,
    MODEL_OP_AVGPOOL,
    MODEL_OP_RELU,
    MODEL_OP_CONCAT,  /* along channels */
    MODEL_OP_ADD      /* elementwise sum of the inputs + optional ReLU */
} model_op;

typedef struct model_node {
    model_op op;
    char *name;     /* the last file node folded into this one (activation_N) */
    int n_inputs;
    int *inputs;    /* indices of earlier nodes: nodes are in topological order */
    int channels;   /* output channels */
    int in_channels;
    int kh, kw, sh, sw, same_padding; /* conv and pools */
    int pad[4];     /* explicit padding (same_padding 0): top, bottom, left, right */
    int ceil_mode;  /* pools: PyTorch's ceil_mode */
    int count_pad;  /* average pool: padding counts in the divisor */
    int relu;       /* conv and add: ReLU fused */
    float *weights; /* conv: (K, C, KH, KW), batch norm folded in */
    float *bias;    /* conv: (K) or NULL */
} model_node;

typedef struct model_layer {
    char *name;   /* what users type: mixed3, activation_12, conv2d_12 */
    int node;
    int pre_relu; /* the node's value before its fused ReLU (a conv's name) */
} model_layer;

struct dd_model {
    int n_nodes;
    model_node *nodes; /* nodes[0] is the input */
    int n_layers;
    model_layer *layers;
    float divisor[3], offset[3]; /* network input c = pixel / divisor[c] + offset[c] */
    char *default_layers;        /* the file's objective spec, or NULL */
};

/* Index of the node a user layer name refers to, or -1. */
int model_find_layer(const dd_model *m, const char *name);

/* Safetensors header length cap: far above any real graph, far below what
 * would let a hostile file make us allocate gigabytes for its header. */
#define MODEL_MAX_HEADER_BYTES ((size_t)16 << 20)

#endif
