/* Safetensors container and deepdream graph -> dd_model. Every length,
 * offset, dtype, shape and graph reference is checked before it is used;
 * then batch norm is folded into the convolutions and ReLUs are fused. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "util/util.h"

#define MAX_DIMS 8
#define MAX_NODES 100000
#define MAX_KERNEL 64
#define MAX_CHANNELS 65536

/* ---- container ----------------------------------------------------------- */

typedef enum st_dtype { ST_U8, ST_F16, ST_F32 } st_dtype;

typedef struct st_tensor {
    const char *name; /* points into the JSON header (alive while it is) */
    st_dtype dtype;
    int ndim;
    size_t shape[MAX_DIMS];
    size_t count;        /* elements */
    size_t begin, end;   /* byte offsets into the data section */
    double qmin, qscale; /* U8 only: value = float(double(q) * qscale + qmin) */
} st_tensor;

typedef struct st_file {
    json_t *header;
    const unsigned char *data; /* data section */
    size_t data_bytes;
    size_t n_tensors;
    st_tensor *tensors;
    json_t *tensor_index; /* name -> index into tensors (a hash table) */
    json_t *graph, *quant, *layers, *preprocess; /* parsed metadata values */
} st_file;

static void st_release(st_file *f) {
    json_decref(f->header);
    json_decref(f->tensor_index);
    json_decref(f->graph);
    json_decref(f->quant);
    json_decref(f->layers);
    json_decref(f->preprocess);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

static const st_tensor *st_find(const st_file *f, const char *name) {
    json_t *at = json_object_get(f->tensor_index, name);
    return at ? &f->tensors[json_integer_value(at)] : NULL;
}

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static dd_status parse_tensor_entry(st_tensor *t, const char *name, json_t *v,
                                    size_t data_bytes) {
    t->name = name;
    if (!json_is_object(v)) return util_fail(DD_ERR_CORRUPT, "tensor %s: entry is not an object", name);
    const char *dtype = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!dtype) return util_fail(DD_ERR_CORRUPT, "tensor %s: no dtype", name);
    size_t elem;
    if (!strcmp(dtype, "U8")) t->dtype = ST_U8, elem = 1;
    else if (!strcmp(dtype, "F16")) t->dtype = ST_F16, elem = 2;
    else if (!strcmp(dtype, "F32")) t->dtype = ST_F32, elem = 4;
    else return util_fail(DD_ERR_CORRUPT, "tensor %s: unsupported dtype '%s' (U8, F16 and F32 are)", name, dtype);
    if (!json_is_array(shape) || json_array_size(shape) > MAX_DIMS)
        return util_fail(DD_ERR_CORRUPT, "tensor %s: bad shape", name);
    t->ndim = (int)json_array_size(shape);
    t->count = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > INT32_MAX)
            return util_fail(DD_ERR_CORRUPT, "tensor %s: bad shape", name);
        t->shape[i] = (size_t)json_integer_value(d);
        if (!util_mul(t->count, t->shape[i], &t->count))
            return util_fail(DD_ERR_CORRUPT, "tensor %s: shape overflows", name);
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return util_fail(DD_ERR_CORRUPT, "tensor %s: bad data_offsets", name);
    json_int_t b = json_integer_value(json_array_get(offs, 0));
    json_int_t e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (uint64_t)e > data_bytes)
        return util_fail(DD_ERR_CORRUPT, "tensor %s: data_offsets [%lld, %lld] outside the %zu data bytes",
                         name, (long long)b, (long long)e, data_bytes);
    t->begin = (size_t)b, t->end = (size_t)e;
    size_t bytes;
    if (!util_mul(t->count, elem, &bytes) || bytes != t->end - t->begin)
        return util_fail(DD_ERR_CORRUPT, "tensor %s: %zu bytes for a %s tensor of %zu elements",
                         name, t->end - t->begin, dtype, t->count);
    return DD_OK;
}

/* Parses a string-valued metadata entry as JSON. */
static dd_status parse_meta_json(json_t *meta, const char *key, json_t **out, int required) {
    json_t *v = json_object_get(meta, key);
    if (!v) return required ? util_fail(DD_ERR_MODEL, "no '%s' in __metadata__", key) : DD_OK;
    const char *s = json_string_value(v);
    if (!s) return util_fail(DD_ERR_CORRUPT, "__metadata__ '%s' is not a string", key);
    json_error_t err;
    *out = json_loads(s, JSON_REJECT_DUPLICATES, &err);
    if (!*out) return util_fail(DD_ERR_CORRUPT, "__metadata__ '%s': bad JSON: %s", key, err.text);
    return DD_OK;
}

static dd_status st_parse(st_file *f, const unsigned char *bytes, size_t size) {
    memset(f, 0, sizeof *f);
    if (size < 8) return util_fail(DD_ERR_CORRUPT, "file of %zu bytes is too short for a safetensors header", size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | bytes[i];
    if (header_len > MODEL_MAX_HEADER_BYTES)
        return util_fail(DD_ERR_LIMIT, "header length %llu is over the %zu-byte limit",
                         (unsigned long long)header_len, MODEL_MAX_HEADER_BYTES);
    if (header_len > size - 8)
        return util_fail(DD_ERR_CORRUPT, "header length %llu runs past the end of the %zu-byte file",
                         (unsigned long long)header_len, size);
    json_error_t err;
    f->header = json_loadb((const char *)bytes + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &err);
    if (!f->header) return util_fail(DD_ERR_CORRUPT, "header is not valid JSON: %s (at byte %d)", err.text, err.position);
    if (!json_is_object(f->header)) return util_fail(DD_ERR_CORRUPT, "header is not a JSON object");
    f->data = bytes + 8 + header_len;
    f->data_bytes = size - 8 - (size_t)header_len;

    json_t *meta = json_object_get(f->header, "__metadata__");
    if (!json_is_object(meta)) return util_fail(DD_ERR_MODEL, "no __metadata__ object: not a deepdream model");
    const char *format = json_string_value(json_object_get(meta, "format"));
    if (!format || strcmp(format, "deepdream-graph-1"))
        return util_fail(DD_ERR_MODEL, "__metadata__ format is '%s', expected 'deepdream-graph-1'", format ? format : "(none)");

    size_t n = json_object_size(f->header) - 1;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->tensor_index = json_object();
    if (!f->tensors || !f->tensor_index) return util_fail(DD_ERR_NOMEM, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(f->header, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        dd_status st = parse_tensor_entry(&f->tensors[f->n_tensors], key, v, f->data_bytes);
        if (st) return st;
        if (json_object_set_new(f->tensor_index, key, json_integer((json_int_t)f->n_tensors)))
            return util_fail(DD_ERR_NOMEM, "out of memory");
        f->n_tensors++;
    }
    /* Overlapping tensors would let one file alias bytes under two names. */
    st_tensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, by_begin);
    const st_tensor *furthest = NULL; /* the non-empty tensor reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
        if (order[i]->begin == order[i]->end) continue; /* empty: occupies no bytes */
        if (furthest && order[i]->begin < furthest->end) {
            dd_status st = util_fail(DD_ERR_CORRUPT, "tensors %s and %s overlap", furthest->name, order[i]->name);
            free(order);
            return st;
        }
        if (!furthest || order[i]->end > furthest->end) furthest = order[i];
    }
    free(order);

    dd_status st;
    if ((st = parse_meta_json(meta, "graph", &f->graph, 1))) return st;
    if ((st = parse_meta_json(meta, "quantization", &f->quant, 0))) return st;
    if ((st = parse_meta_json(meta, "layers", &f->layers, 0))) return st;
    if ((st = parse_meta_json(meta, "preprocess", &f->preprocess, 0))) return st;

    json_t *qt = f->quant ? json_object_get(f->quant, "tensors") : NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        st_tensor *t = &f->tensors[i];
        if (t->dtype != ST_U8) continue;
        json_t *q = qt ? json_object_get(qt, t->name) : NULL;
        json_t *mn = json_object_get(q, "min"), *sc = json_object_get(q, "scale");
        if (!json_is_number(mn) || !json_is_number(sc))
            return util_fail(DD_ERR_MODEL, "tensor %s: U8 without quantization min/scale", t->name);
        t->qmin = json_number_value(mn), t->qscale = json_number_value(sc);
        if (!isfinite(t->qmin) || !isfinite(t->qscale))
            return util_fail(DD_ERR_MODEL, "tensor %s: quantization min/scale not finite", t->name);
    }
    return DD_OK;
}

static float half_to_float(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0) v = ldexpf((float)man, -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexpf((float)(man | 1024), exp - 25);
    return sign ? -v : v;
}

/* Decodes a tensor into count floats, the way TensorFlow.js dequantises U8. */
static void st_read_floats(const st_file *f, const st_tensor *t, float *out) {
    const unsigned char *p = f->data + t->begin;
    for (size_t i = 0; i < t->count; i++) {
        switch (t->dtype) {
        case ST_U8: out[i] = (float)((double)p[i] * t->qscale + t->qmin); break;
        case ST_F16: out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        case ST_F32: {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &u, sizeof u);
        } break;
        }
    }
}

/* ---- graph ---------------------------------------------------------------- */

typedef enum file_op { FOP_INPUT, FOP_CONV, FOP_BN, FOP_RELU, FOP_POOL, FOP_CONCAT, FOP_ADD } file_op;

typedef struct file_node {
    const char *name;
    json_t *json;
    file_op op;
    int n_inputs;
    int inputs[64];
    int channels;
    int consumers;
    int runtime; /* index of the runtime node holding this node's output */
} file_node;

/* Index of the node called name, through the name -> index hash, or -1. */
static int find_node(json_t *index, const char *name) {
    json_t *at = json_object_get(index, name);
    return at ? (int)json_integer_value(at) : -1;
}

static dd_status get_pair(json_t *node, const char *name, const char *key, int lo, int hi,
                          int *a, int *b) {
    json_t *v = json_object_get(node, key);
    json_t *x = json_array_get(v, 0), *y = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(x) || !json_is_integer(y) ||
        json_integer_value(x) < lo || json_integer_value(x) > hi ||
        json_integer_value(y) < lo || json_integer_value(y) > hi)
        return util_fail(DD_ERR_MODEL, "node %s: '%s' must be two integers in %d..%d", name, key, lo, hi);
    *a = (int)json_integer_value(x), *b = (int)json_integer_value(y);
    return DD_OK;
}

/* 'same' (TensorFlow's rule), 'valid', or explicit [top, bottom, left,
 * right] (PyTorch's). */
static dd_status get_padding(json_t *node, const char *name, model_node *mn) {
    json_t *v = json_object_get(node, "padding");
    const char *p = json_string_value(v);
    memset(mn->pad, 0, sizeof mn->pad);
    mn->same_padding = 0;
    if (p && !strcmp(p, "same")) mn->same_padding = 1;
    else if (p && !strcmp(p, "valid")) mn->same_padding = 0;
    else if (json_is_array(v) && json_array_size(v) == 4) {
        for (int i = 0; i < 4; i++) {
            json_t *x = json_array_get(v, (size_t)i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > MAX_KERNEL)
                return util_fail(DD_ERR_MODEL, "node %s: padding [top, bottom, left, right] must be integers in 0..%d",
                                 name, MAX_KERNEL);
            mn->pad[i] = (int)json_integer_value(x);
        }
    } else {
        return util_fail(DD_ERR_MODEL, "node %s: padding must be 'same', 'valid' or [top, bottom, left, right]", name);
    }
    return DD_OK;
}

/* An optional boolean attribute: absent is false. */
static dd_status get_flag(json_t *node, const char *name, const char *key, int *out) {
    json_t *v = json_object_get(node, key);
    if (v && !json_is_boolean(v)) return util_fail(DD_ERR_MODEL, "node %s: '%s' must be true or false", name, key);
    *out = json_is_true(v);
    return DD_OK;
}

/* The tensor a node names under `role`, checked against an expected shape. */
static dd_status get_tensor(const st_file *f, json_t *node, const char *name, const char *role,
                            int ndim, const size_t *shape, const st_tensor **out) {
    const char *tname = json_string_value(json_object_get(json_object_get(node, "tensors"), role));
    if (!tname) return util_fail(DD_ERR_MODEL, "node %s: no '%s' tensor named", name, role);
    const st_tensor *t = st_find(f, tname);
    if (!t) return util_fail(DD_ERR_MODEL, "node %s: tensor %s is missing from the file", name, tname);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) return util_fail(DD_ERR_MODEL, "node %s: tensor %s has the wrong shape", name, tname);
    *out = t;
    return DD_OK;
}

/* A binary min-heap of node indices: the topological sort takes the ready
 * node that comes first in the file, so a file already in order keeps it. */
static void heap_push(int *heap, int *size, int v) {
    int i = (*size)++;
    for (; i > 0 && heap[(i - 1) / 2] > v; i = (i - 1) / 2) heap[i] = heap[(i - 1) / 2];
    heap[i] = v;
}

static int heap_pop(int *heap, int *size) {
    const int top = heap[0], last = heap[--*size];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *size) break;
        if (c + 1 < *size && heap[c + 1] < heap[c]) c++;
        if (heap[c] >= last) break;
        heap[i] = heap[c], i = c;
    }
    heap[i] = last;
    return top;
}

/* Sorts nodes topologically (Kahn), renumbering their inputs; what can never
 * be placed lies on a cycle. */
static dd_status sort_nodes(file_node *nodes, int n) {
    int *indegree = calloc((size_t)n, sizeof *indegree), *first = calloc((size_t)n + 1, sizeof *first);
    int *readers = NULL, *heap = malloc((size_t)n * sizeof *heap), *rank = malloc((size_t)n * sizeof *rank);
    file_node *sorted = malloc((size_t)n * sizeof *sorted);
    dd_status st = DD_OK;
    if (!indegree || !first || !heap || !rank || !sorted) goto nomem;
    int edges = 0;
    for (int i = 0; i < n; i++) edges += nodes[i].n_inputs;
    if (!(readers = malloc((size_t)(edges ? edges : 1) * sizeof *readers))) goto nomem;
    /* Readers of each node, grouped by node (counting sort). */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nodes[i].n_inputs; j++) first[nodes[i].inputs[j] + 1]++;
    for (int i = 0; i < n; i++) first[i + 1] += first[i];
    int *fill = indegree; /* reused as a cursor, then recomputed */
    for (int i = 0; i < n; i++) fill[i] = first[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nodes[i].n_inputs; j++) readers[fill[nodes[i].inputs[j]]++] = i;
    for (int i = 0; i < n; i++) indegree[i] = nodes[i].n_inputs;
    int size = 0, count = 0;
    for (int i = 0; i < n; i++)
        if (!indegree[i]) heap_push(heap, &size, i);
    while (size) {
        const int v = heap_pop(heap, &size);
        rank[v] = count++;
        for (int e = first[v]; e < first[v + 1]; e++)
            if (--indegree[readers[e]] == 0) heap_push(heap, &size, readers[e]);
    }
    if (count < n) {
        int i = 0;
        while (!indegree[i]) i++;
        st = util_fail(DD_ERR_MODEL, "graph has a cycle through node %s", nodes[i].name);
    } else {
        for (int i = 0; i < n; i++) {
            sorted[rank[i]] = nodes[i];
            for (int j = 0; j < nodes[i].n_inputs; j++) sorted[rank[i]].inputs[j] = rank[nodes[i].inputs[j]];
        }
        memcpy(nodes, sorted, (size_t)n * sizeof *nodes);
    }
    goto done;
nomem:
    st = util_fail(DD_ERR_NOMEM, "out of memory");
done:
    free(indegree), free(first), free(readers), free(heap), free(rank), free(sorted);
    return st;
}

static dd_status parse_nodes(json_t *graph, file_node **out, int *n_out, json_t *index) {
    json_t *input = json_object_get(graph, "input"), *list = json_object_get(graph, "nodes");
    const char *in_name = json_string_value(json_object_get(input, "name"));
    json_t *in_ch = json_object_get(input, "channels");
    if (!in_name || !json_is_integer(in_ch))
        return util_fail(DD_ERR_MODEL, "graph: input needs a name and channels");
    if (json_integer_value(in_ch) != 3)
        return util_fail(DD_ERR_MODEL, "graph: input has %lld channels; deepdream feeds RGB (3)",
                         (long long)json_integer_value(in_ch));
    if (!json_is_array(list) || json_array_size(list) < 1 || json_array_size(list) >= MAX_NODES)
        return util_fail(DD_ERR_MODEL, "graph: 'nodes' must be a non-empty array of fewer than %d", MAX_NODES);
    int n = (int)json_array_size(list) + 1;
    file_node *nodes = calloc((size_t)n, sizeof *nodes);
    if (!nodes) return util_fail(DD_ERR_NOMEM, "out of memory");
    *out = nodes, *n_out = n;
    nodes[0].name = in_name, nodes[0].op = FOP_INPUT, nodes[0].channels = 3;
    if (json_object_set_new(index, in_name, json_integer(0))) return util_fail(DD_ERR_NOMEM, "out of memory");
    static const struct { const char *name; file_op op; } ops[] = {
        {"conv2d", FOP_CONV}, {"batch_norm", FOP_BN}, {"relu", FOP_RELU},
        {"pool", FOP_POOL},   {"concat", FOP_CONCAT}, {"add", FOP_ADD},
    };
    for (int i = 1; i < n; i++) {
        file_node *fn = &nodes[i];
        fn->json = json_array_get(list, (size_t)i - 1);
        fn->name = json_string_value(json_object_get(fn->json, "name"));
        if (!fn->name || !*fn->name) return util_fail(DD_ERR_MODEL, "graph: node %d has no name", i - 1);
        if (find_node(index, fn->name) >= 0) return util_fail(DD_ERR_MODEL, "graph: node name %s is used twice", fn->name);
        if (json_object_set_new(index, fn->name, json_integer(i))) return util_fail(DD_ERR_NOMEM, "out of memory");
        const char *op = json_string_value(json_object_get(fn->json, "op"));
        size_t k = 0;
        while (k < sizeof ops / sizeof *ops && (!op || strcmp(op, ops[k].name))) k++;
        if (k == sizeof ops / sizeof *ops) return util_fail(DD_ERR_MODEL, "node %s: unknown op '%s'", fn->name, op ? op : "(none)");
        fn->op = ops[k].op;
        json_t *ins = json_object_get(fn->json, "inputs");
        size_t n_in = json_array_size(ins);
        const int many = fn->op == FOP_CONCAT || fn->op == FOP_ADD;
        if (!json_is_array(ins) || n_in < 1 || n_in > 64 || (!many && n_in != 1) || (fn->op == FOP_ADD && n_in < 2))
            return util_fail(DD_ERR_MODEL, "node %s: wrong number of inputs", fn->name);
        fn->n_inputs = (int)n_in;
    }
    /* Inputs may name nodes anywhere in the file. */
    for (int i = 1; i < n; i++)
        for (int j = 0; j < nodes[i].n_inputs; j++) {
            const char *s = json_string_value(json_array_get(json_object_get(nodes[i].json, "inputs"), (size_t)j));
            int at = s ? find_node(index, s) : -1;
            if (at < 0) return util_fail(DD_ERR_MODEL, "node %s: unknown input '%s'", nodes[i].name, s ? s : "(not a string)");
            nodes[i].inputs[j] = at;
        }
    dd_status st = sort_nodes(nodes, n);
    if (st) return st;
    /* The index maps names to sorted positions from here on. */
    for (int i = 0; i < n; i++)
        if (json_object_set_new(index, nodes[i].name, json_integer(i))) return util_fail(DD_ERR_NOMEM, "out of memory");
    return DD_OK;
}

/* ---- lowering ------------------------------------------------------------- */

static dd_status lower_conv(const st_file *f, const file_node *fn, int c_in, model_node *mn) {
    json_t *j = fn->json;
    json_t *filters = json_object_get(j, "filters");
    const char *layout = json_string_value(json_object_get(j, "kernel_layout"));
    dd_status st;
    if (!json_is_integer(filters) || json_integer_value(filters) < 1 || json_integer_value(filters) > MAX_CHANNELS)
        return util_fail(DD_ERR_MODEL, "node %s: 'filters' must be an integer in 1..%d", fn->name, MAX_CHANNELS);
    /* Keras stores HWIO, PyTorch OIHW (our own order). */
    const int hwio = layout && !strcmp(layout, "HWIO");
    if (!hwio && (!layout || strcmp(layout, "OIHW")))
        return util_fail(DD_ERR_MODEL, "node %s: kernel_layout must be 'HWIO' or 'OIHW'", fn->name);
    if ((st = get_pair(j, fn->name, "kernel", 1, MAX_KERNEL, &mn->kh, &mn->kw)) ||
        (st = get_pair(j, fn->name, "strides", 1, MAX_KERNEL, &mn->sh, &mn->sw)) ||
        (st = get_padding(j, fn->name, mn)))
        return st;
    const int k = (int)json_integer_value(filters);
    const size_t shape[4] = {(size_t)mn->kh, (size_t)mn->kw, (size_t)c_in, (size_t)k};
    const size_t oihw[4] = {(size_t)k, (size_t)c_in, (size_t)mn->kh, (size_t)mn->kw};
    const st_tensor *kt, *bt = NULL;
    if ((st = get_tensor(f, j, fn->name, "kernel", 4, hwio ? shape : oihw, &kt))) return st;
    if (json_is_true(json_object_get(j, "use_bias")) &&
        (st = get_tensor(f, j, fn->name, "bias", 1, &shape[3], &bt)))
        return st;
    mn->weights = malloc(kt->count * sizeof *mn->weights);
    mn->bias = calloc((size_t)k, sizeof *mn->bias);
    float *raw = hwio ? malloc(kt->count * sizeof *raw) : mn->weights;
    if (!raw || !mn->weights || !mn->bias) {
        if (raw != mn->weights) free(raw);
        return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    st_read_floats(f, kt, raw);
    /* Keras HWIO -> our (K, C, KH, KW), the row order of the im2col matrix. */
    if (hwio) {
        for (int ky = 0; ky < mn->kh; ky++)
            for (int kx = 0; kx < mn->kw; kx++)
                for (int c = 0; c < c_in; c++)
                    for (int o = 0; o < k; o++)
                        mn->weights[((size_t)(o * c_in + c) * mn->kh + ky) * mn->kw + kx] =
                            raw[(((size_t)ky * mn->kw + kx) * c_in + c) * k + o];
        free(raw);
    }
    if (bt) st_read_floats(f, bt, mn->bias);
    mn->op = MODEL_OP_CONV;
    mn->channels = k;
    mn->in_channels = c_in;
    return DD_OK;
}

/* y = gamma * (conv + bias - mean) / sqrt(var + eps) + beta folded into the
 * conv's weights and bias, computed in double. */
static dd_status fold_batch_norm(const st_file *f, const file_node *fn, model_node *conv) {
    json_t *j = fn->json, *eps_j = json_object_get(j, "epsilon");
    const int k = conv->channels;
    const size_t shape[1] = {(size_t)k};
    if (!json_is_number(eps_j) || !(json_number_value(eps_j) >= 0) || !isfinite(json_number_value(eps_j)))
        return util_fail(DD_ERR_MODEL, "node %s: epsilon must be a number >= 0", fn->name);
    const double eps = json_number_value(eps_j);
    const st_tensor *tm, *tv, *tb = NULL, *tg = NULL;
    dd_status st;
    if ((st = get_tensor(f, j, fn->name, "moving_mean", 1, shape, &tm)) ||
        (st = get_tensor(f, j, fn->name, "moving_variance", 1, shape, &tv)))
        return st;
    if (json_is_true(json_object_get(j, "center")) && (st = get_tensor(f, j, fn->name, "beta", 1, shape, &tb)))
        return st;
    if (json_is_true(json_object_get(j, "scale")) && (st = get_tensor(f, j, fn->name, "gamma", 1, shape, &tg)))
        return st;
    float *v = malloc((size_t)k * 4 * sizeof *v);
    if (!v) return util_fail(DD_ERR_NOMEM, "out of memory");
    float *mean = v, *var = v + k, *beta = v + 2 * k, *gamma = v + 3 * k;
    st_read_floats(f, tm, mean);
    st_read_floats(f, tv, var);
    if (tb) st_read_floats(f, tb, beta);
    if (tg) st_read_floats(f, tg, gamma);
    const size_t per_filter = (size_t)conv->in_channels * conv->kh * conv->kw;
    for (int o = 0; o < k; o++) {
        const double denom = (double)var[o] + eps;
        if (!(denom > 0)) {
            free(v);
            return util_fail(DD_ERR_MODEL, "node %s: variance + epsilon is not positive", fn->name);
        }
        const double s = (tg ? (double)gamma[o] : 1.0) / sqrt(denom);
        float *w = conv->weights + (size_t)o * per_filter;
        for (size_t i = 0; i < per_filter; i++) w[i] = (float)(w[i] * s);
        conv->bias[o] = (float)(((double)conv->bias[o] - mean[o]) * s + (tb ? (double)beta[o] : 0.0));
    }
    free(v);
    return DD_OK;
}

static dd_status lower_pool(const file_node *fn, model_node *mn) {
    json_t *j = fn->json;
    const char *type = json_string_value(json_object_get(j, "pool"));
    dd_status st;
    if (!type || (strcmp(type, "max") && strcmp(type, "avg")))
        return util_fail(DD_ERR_MODEL, "node %s: pool must be 'max' or 'avg'", fn->name);
    if ((st = get_pair(j, fn->name, "size", 1, 15, &mn->kh, &mn->kw)) ||
        (st = get_pair(j, fn->name, "strides", 1, MAX_KERNEL, &mn->sh, &mn->sw)) ||
        (st = get_padding(j, fn->name, mn)) || (st = get_flag(j, fn->name, "ceil_mode", &mn->ceil_mode)) ||
        (st = get_flag(j, fn->name, "count_padding", &mn->count_pad)))
        return st;
    mn->op = type[0] == 'm' ? MODEL_OP_MAXPOOL : MODEL_OP_AVGPOOL;
    if (mn->count_pad && mn->op == MODEL_OP_MAXPOOL)
        return util_fail(DD_ERR_MODEL, "node %s: count_padding is for average pools", fn->name);
    if (mn->ceil_mode && mn->same_padding)
        return util_fail(DD_ERR_MODEL, "node %s: ceil_mode needs explicit padding", fn->name);
    /* PyTorch's rule: then every window holds a real pixel, which max
     * pooling's argmax and the average's divisor rely on. */
    if (mn->pad[0] > mn->kh / 2 || mn->pad[1] > mn->kh / 2 || mn->pad[2] > mn->kw / 2 || mn->pad[3] > mn->kw / 2)
        return util_fail(DD_ERR_MODEL, "node %s: a pool's padding must be at most half its size", fn->name);
    return DD_OK;
}

/* Lowers file nodes (topologically sorted) to runtime nodes: conv -> batch
 * norm -> relu chains become one node when nothing else reads the
 * intermediate tensors. */
static dd_status lower(const st_file *f, file_node *fn, int n, dd_model *m) {
    m->nodes = calloc((size_t)n, sizeof *m->nodes);
    if (!m->nodes) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (int i = 1; i < n; i++)
        for (int j = 0; j < fn[i].n_inputs; j++) fn[fn[i].inputs[j]].consumers++;
    m->nodes[0].op = MODEL_OP_INPUT;
    m->nodes[0].channels = 3;
    m->n_nodes = 1;
    for (int i = 1; i < n; i++) {
        file_node *x = &fn[i];
        const file_node *in = &fn[x->inputs[0]];
        model_node *prev = &m->nodes[in->runtime];
        const int fusable = in->consumers == 1 && (prev->op == MODEL_OP_CONV || prev->op == MODEL_OP_ADD) && !prev->relu;
        dd_status st;
        if (x->op == FOP_BN) {
            if (!fusable || in->op != FOP_CONV || prev->op != MODEL_OP_CONV)
                return util_fail(DD_ERR_MODEL, "node %s: batch_norm must be the only reader of a conv2d", x->name);
            if ((st = fold_batch_norm(f, x, prev))) return st;
            x->runtime = in->runtime;
        } else if (x->op == FOP_RELU && fusable) {
            prev->relu = 1;
            x->runtime = in->runtime;
        } else {
            model_node *mn = &m->nodes[m->n_nodes];
            mn->n_inputs = x->n_inputs;
            mn->inputs = malloc((size_t)x->n_inputs * sizeof *mn->inputs);
            if (!mn->inputs) return util_fail(DD_ERR_NOMEM, "out of memory");
            for (int j = 0; j < x->n_inputs; j++) mn->inputs[j] = fn[x->inputs[j]].runtime;
            mn->channels = in->channels;
            x->runtime = m->n_nodes++;
            switch (x->op) {
            case FOP_CONV: st = lower_conv(f, x, in->channels, mn); break;
            case FOP_POOL: st = lower_pool(x, mn); break;
            case FOP_RELU: mn->op = MODEL_OP_RELU, st = DD_OK; break;
            case FOP_ADD:
                mn->op = MODEL_OP_ADD, st = DD_OK;
                for (int j = 1; j < x->n_inputs && !st; j++)
                    if (fn[x->inputs[j]].channels != in->channels)
                        st = util_fail(DD_ERR_MODEL, "node %s: adds %d channels to %d", x->name,
                                       fn[x->inputs[j]].channels, in->channels);
                break;
            case FOP_CONCAT: {
                long channels = 0;
                for (int j = 0; j < x->n_inputs; j++) channels += fn[x->inputs[j]].channels;
                mn->op = MODEL_OP_CONCAT, mn->channels = (int)channels, st = DD_OK;
                if (channels > MAX_CHANNELS)
                    st = util_fail(DD_ERR_MODEL, "node %s: %ld channels, over the limit of %d", x->name, channels, MAX_CHANNELS);
            } break;
            default: st = util_fail(DD_ERR_MODEL, "node %s: unexpected op", x->name);
            }
            if (st) return st;
        }
        x->channels = m->nodes[x->runtime].channels;
        model_node *owner = &m->nodes[x->runtime];
        free(owner->name);
        if (!(owner->name = strdup(x->name))) return util_fail(DD_ERR_NOMEM, "out of memory");
    }
    if (!(m->nodes[0].name = strdup(fn[0].name))) return util_fail(DD_ERR_NOMEM, "out of memory");
    return DD_OK;
}

/* User-visible layer names: the metadata's list, or every node but batch
 * norms (whose output is not kept apart from the conv's). */
static dd_status build_layers(const st_file *f, const file_node *fn, int n, json_t *index, dd_model *m) {
    size_t count = 0;
    if (f->layers) {
        if (!json_is_array(f->layers)) return util_fail(DD_ERR_MODEL, "__metadata__ layers is not an array");
        count = json_array_size(f->layers);
    } else {
        for (int i = 1; i < n; i++) count += fn[i].op != FOP_BN;
    }
    m->layers = calloc(count ? count : 1, sizeof *m->layers);
    if (!m->layers) return util_fail(DD_ERR_NOMEM, "out of memory");
    for (int i = 1, k = 0; (size_t)k < count; i++) {
        const char *name;
        if (f->layers) {
            name = json_string_value(json_array_get(f->layers, (size_t)k));
            if (!name) return util_fail(DD_ERR_MODEL, "__metadata__ layers: entry %d is not a string", k);
        } else {
            if (fn[i].op == FOP_BN) continue;
            name = fn[i].name;
        }
        int at = find_node(index, name);
        if (at <= 0) return util_fail(DD_ERR_MODEL, "__metadata__ layers: %s is not a node of the graph", name);
        m->layers[k].node = fn[at].runtime;
        /* A conv (or its batch norm, or an add) whose ReLU was fused in:
         * the layer is the value before it. */
        m->layers[k].pre_relu = fn[at].op != FOP_RELU && m->nodes[fn[at].runtime].relu;
        if (!(m->layers[k].name = strdup(name))) return util_fail(DD_ERR_NOMEM, "out of memory");
        m->n_layers = ++k;
    }
    return DD_OK;
}

/* Three numbers of a preprocess entry, or 0 when it is not three numbers. */
static int get_triple(json_t *pre, const char *key, double out[3]) {
    json_t *v = json_object_get(pre, key);
    if (!json_is_array(v) || json_array_size(v) != 3) return 0;
    for (int c = 0; c < 3; c++) {
        json_t *x = json_array_get(v, (size_t)c);
        if (!json_is_number(x)) return 0;
        out[c] = json_number_value(x);
    }
    return 1;
}

/* Network input c = pixel / divisor[c] + offset[c], from either {divisor,
 * offset} (one pair for every channel) or PyTorch's {mean, std} on pixels
 * scaled to 0..1, optionally followed by torchvision's transform_input
 * (GoogLeNet's and InceptionV3's: x * std / 0.5 + (mean - 0.5) / 0.5). */
static dd_status read_preprocess(const st_file *f, dd_model *m) {
    for (int c = 0; c < 3; c++) m->divisor[c] = 127.5f, m->offset[c] = -1.0f;
    if (!f->preprocess) return DD_OK;
    json_t *pre = f->preprocess;
    double divisor[3], offset[3], mean[3], std[3];
    const int by_mean = json_object_get(pre, "mean") || json_object_get(pre, "std");
    if (by_mean ? json_object_get(pre, "divisor") || json_object_get(pre, "offset")
                : json_object_get(pre, "transform_input") != NULL)
        return util_fail(DD_ERR_MODEL, "__metadata__ preprocess: either {divisor, offset} or {mean, std, "
                                       "transform_input}, not both");
    if (by_mean) {
        json_t *ti = json_object_get(pre, "transform_input");
        if (!get_triple(pre, "mean", mean) || !get_triple(pre, "std", std) || (ti && !json_is_boolean(ti)))
            return util_fail(DD_ERR_MODEL, "__metadata__ preprocess: mean and std must be three numbers each, "
                                           "transform_input true or false");
        for (int c = 0; c < 3; c++) {
            if (!(std[c] > 0) || !isfinite(mean[c]) || !isfinite(std[c]))
                return util_fail(DD_ERR_MODEL, "__metadata__ preprocess: std must be > 0 and mean finite");
            divisor[c] = 255.0 * std[c], offset[c] = -mean[c] / std[c];
            if (json_is_true(ti)) /* std cancels: pixel / 127.5 + (mean - 0.5) / 0.5 - mean / 0.5 */
                divisor[c] = 255.0 * 0.5, offset[c] = offset[c] * std[c] / 0.5 + (mean[c] - 0.5) / 0.5;
        }
    } else {
        json_t *d = json_object_get(pre, "divisor"), *o = json_object_get(pre, "offset");
        for (int c = 0; c < 3; c++)
            divisor[c] = json_is_number(d) ? json_number_value(d) : NAN,
            offset[c] = json_is_number(o) ? json_number_value(o) : NAN;
    }
    for (int c = 0; c < 3; c++) {
        /* Checked as the floats the engine uses: 1e308 is finite as a double. */
        const float dv = (float)divisor[c], off = (float)offset[c];
        if (!(dv > 0) || !isfinite(dv) || !isfinite(off))
            return util_fail(DD_ERR_MODEL, "__metadata__ preprocess needs a divisor > 0 and a finite offset (as float32)");
        m->divisor[c] = dv, m->offset[c] = off;
    }
    return DD_OK;
}

/* The file's default objective, checked when a net is planned from it. */
static dd_status read_default_layers(json_t *meta, dd_model *m) {
    json_t *v = json_object_get(meta, "default_layers");
    if (!v) return DD_OK;
    const char *spec = json_string_value(v);
    if (!spec || !*spec) return util_fail(DD_ERR_MODEL, "__metadata__ default_layers is not a non-empty string");
    if (!(m->default_layers = strdup(spec))) return util_fail(DD_ERR_NOMEM, "out of memory");
    return DD_OK;
}

dd_status dd_model_load_memory(const void *data, size_t size, dd_model **out) {
    util_clear_error();
    st_file f;
    file_node *fn = NULL;
    int n = 0;
    dd_status st;
    *out = NULL;
    if (!data && size) return util_fail(DD_ERR_INVALID_ARG, "no data");
    dd_model *m = calloc(1, sizeof *m);
    json_t *index = json_object(); /* node name -> index */
    memset(&f, 0, sizeof f);
    if (!m || !index) {
        st = util_fail(DD_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = st_parse(&f, data, size))) goto fail;
    if ((st = parse_nodes(f.graph, &fn, &n, index))) goto fail;
    if ((st = lower(&f, fn, n, m))) goto fail;
    if ((st = build_layers(&f, fn, n, index, m))) goto fail;
    if ((st = read_preprocess(&f, m))) goto fail;
    if ((st = read_default_layers(json_object_get(f.header, "__metadata__"), m))) goto fail;
    free(fn);
    json_decref(index);
    st_release(&f);
    *out = m;
    return DD_OK;
fail:
    free(fn);
    json_decref(index);
    st_release(&f);
    dd_model_free(m);
    return st;
}

/* Model files up to this size in all (header length, header and data). */
#define MODEL_MAX_FILE_BYTES ((uint64_t)2 << 30)

/* The data section's size as the header's tensors give it: the furthest
 * data_offsets end. 0 when the header is no JSON object or names no
 * tensor; st_parse then says what is wrong with it. */
static uint64_t data_bytes_promised(const unsigned char *header, size_t header_len) {
    json_t *h = json_loadb((const char *)header, header_len, 0, NULL);
    uint64_t end = 0;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        const json_t *e = json_array_get(json_object_get(v, "data_offsets"), 1);
        if (json_is_integer(e) && json_integer_value(e) > 0 && (uint64_t)json_integer_value(e) > end)
            end = (uint64_t)json_integer_value(e);
    }
    json_decref(h);
    return end;
}

/* Reads in bounded steps, each sized by what was read before it: the
 * header's length (0 or over MODEL_MAX_HEADER_BYTES is refused before
 * anything else is read), the header, then exactly the data bytes its
 * tensors reach. Bytes after those are never read and so never judged (a
 * model may be followed by other data in a stream; a file is no different
 * from a pipe or a FIFO here); a file that ends sooner is corrupt, as
 * dd_model_load_memory says of the bytes there are. /dev/zero costs 8
 * bytes. */
static dd_status read_model_file(int fd, const char *path, unsigned char **buf, size_t *size) {
    unsigned char len_bytes[8];
    const ssize_t got = util_read_full(fd, len_bytes, 8, NULL);
    if (got < 0) return util_fail(DD_ERR_IO, "%s: %s", path, strerror(errno));
    if (got < 8) {
        *size = (size_t)got;
        *buf = malloc(8);
        if (!*buf) return util_fail(DD_ERR_NOMEM, "%s: out of memory", path);
        memcpy(*buf, len_bytes, (size_t)got);
        return DD_OK; /* too short: dd_model_load_memory says so */
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | len_bytes[i];
    if (header_len == 0)
        return util_fail(DD_ERR_CORRUPT, "%s: header length 0: not a safetensors file", path);
    if (header_len > MODEL_MAX_HEADER_BYTES)
        return util_fail(DD_ERR_LIMIT, "%s: header length %llu is over the %zu-byte limit", path,
                         (unsigned long long)header_len, MODEL_MAX_HEADER_BYTES);
    size_t cap = 8 + (size_t)header_len;
    unsigned char *b = *buf = malloc(cap); /* the caller frees *buf, whatever happens */
    if (!b) return util_fail(DD_ERR_NOMEM, "%s: out of memory", path);
    memcpy(b, len_bytes, 8);
    ssize_t n = util_read_full(fd, b + 8, (size_t)header_len, NULL);
    if (n < 0) goto io_error;
    *size = 8 + (size_t)n;
    if ((uint64_t)n < header_len) return DD_OK; /* runs past the end: said by the parser */
    const uint64_t data = data_bytes_promised(b + 8, (size_t)header_len);
    if (data > MODEL_MAX_FILE_BYTES - 8 - header_len)
        return util_fail(DD_ERR_LIMIT, "%s: the header's tensors reach %llu bytes into the data, over the %llu-byte file limit",
                         path, (unsigned long long)data, (unsigned long long)MODEL_MAX_FILE_BYTES);
    /* In steps that double what was read, so a short file or pipe that
     * promises much costs what it holds, not what it promised; at once
     * when a regular file is known to hold it all. */
    const size_t total = 8 + (size_t)header_len + (size_t)data;
    struct stat sb;
    const int whole = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size >= total;
    while (*size < total) {
        size_t want = whole || cap >= total - cap ? total : 2 * cap;
        if (want - cap < ((size_t)1 << 20)) want = cap + ((size_t)1 << 20) < total ? cap + ((size_t)1 << 20) : total;
        unsigned char *nb = realloc(b, want);
        if (!nb) return util_fail(DD_ERR_NOMEM, "%s: out of memory for the %zu-byte model", path, total);
        *buf = b = nb, cap = want;
        n = util_read_full(fd, b + *size, cap - *size, NULL);
        if (n < 0) goto io_error;
        *size += (size_t)n;
        if (*size < cap) break; /* the file ends before the data does */
    }
    return DD_OK;
io_error:
    return util_fail(DD_ERR_IO, "%s: %s", path, strerror(errno));
}

dd_status dd_model_load_file(const char *path, dd_model **out) {
    util_clear_error();
    *out = NULL;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_fail(DD_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t size = 0;
    dd_status st = read_model_file(fd, path, &buf, &size);
    close(fd);
    if (st == DD_OK) {
        st = dd_model_load_memory(buf, size, out);
        if (st) util_fail_in(st, path);
    }
    free(buf);
    return st;
}

void dd_model_free(dd_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
        free(m->nodes[i].inputs);
        free(m->nodes[i].weights);
        free(m->nodes[i].bias);
    }
    for (int i = 0; i < m->n_layers; i++) free(m->layers[i].name);
    free(m->nodes);
    free(m->layers);
    free(m->default_layers);
    free(m);
}

int model_find_layer(const dd_model *m, const char *name) {
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name)) return i;
    return -1;
}

int dd_model_layer_count(const dd_model *m) { return m->n_layers; }

const char *dd_model_layer_name(const dd_model *m, int i) {
    return i >= 0 && i < m->n_layers ? m->layers[i].name : NULL;
}

int dd_model_layer_channels(const dd_model *m, int i) {
    return i >= 0 && i < m->n_layers ? m->nodes[m->layers[i].node].channels : -1;
}

void dd_model_input_mapping(const dd_model *m, float divisor[3], float offset[3]) {
    for (int c = 0; c < 3; c++) {
        if (divisor) divisor[c] = m->divisor[c];
        if (offset) offset[c] = m->offset[c];
    }
}

extern const unsigned char dd_default_model[];
extern const unsigned char dd_default_model_end[];

dd_status dd_model_load_default(dd_model **out) {
    util_clear_error();
    return dd_model_load_memory(dd_default_model, (size_t)(dd_default_model_end - dd_default_model), out);
}
