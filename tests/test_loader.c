/* Loader robustness on the real weights file: malformed variants built in memory must
 * give the right dd_status and message without crashing or leaking; F32/F16 re-encodings
 * and shuffled graphs must load and compute what the default U8 model computes. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "deepdream.h"
#include "util/util.h"

/* ---- the original file, and building variants of it ------------------------ */

static unsigned char *file_bytes;
static size_t file_size, header_len, data_len;
static const unsigned char *data_section;
static json_t *header; /* parsed original header, never modified */

typedef struct blob {
    unsigned char *p; /* exactly n bytes of malloc, so ASan sees any overread */
    size_t n;
} blob;

static blob blob_alloc(size_t n) {
    blob b = {malloc(n ? n : 1), n};
    if (!b.p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return b;
}

static void put_u64le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* 8-byte length (as given) + header text + data. */
static blob assemble_raw(uint64_t len_field, const char *text, size_t text_len, const unsigned char *data,
                         size_t n_data) {
    blob b = blob_alloc(8 + text_len + n_data);
    put_u64le(b.p, len_field);
    if (text_len) memcpy(b.p + 8, text, text_len);
    if (n_data) memcpy(b.p + 8 + text_len, data, n_data);
    return b;
}

/* Serialises h (and releases it) in front of the given data. */
static blob assemble_with(json_t *h, const unsigned char *data, size_t n_data) {
    char *text = json_dumps(h, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(h);
    if (!text) {
        fprintf(stderr, "json_dumps failed\n");
        exit(1);
    }
    blob b = assemble_raw(strlen(text), text, strlen(text), data, n_data);
    free(text);
    return b;
}

static blob assemble(json_t *h) { return assemble_with(h, data_section, data_len); }

static blob prefix(size_t n) {
    blob b = blob_alloc(n);
    memcpy(b.p, file_bytes, n);
    return b;
}

static json_t *header_copy(void) { return json_deep_copy(header); }
static json_t *meta(json_t *h) { return json_object_get(h, "__metadata__"); }

/* A string-valued metadata entry, parsed (new reference). */
static json_t *meta_get(json_t *h, const char *key) {
    json_error_t err;
    json_t *v = json_loads(json_string_value(json_object_get(meta(h), key)), 0, &err);
    if (!v) {
        fprintf(stderr, "metadata %s: %s\n", key, err.text);
        exit(1);
    }
    return v;
}

/* Stores v (released) as the string value of a metadata entry. */
static void meta_set(json_t *h, const char *key, json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    json_object_set_new(meta(h), key, json_string(s));
    free(s);
}

static json_t *graph_node(json_t *graph, const char *name) {
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(graph, "nodes"), i, n)
        if (!strcmp(json_string_value(json_object_get(n, "name")), name)) return n;
    fprintf(stderr, "no node %s in the graph\n", name);
    exit(1);
}

/* The header with graph node `node`'s `key` set to value (released; NULL deletes). */
static json_t *with_node_attr(const char *node, const char *key, json_t *value) {
    json_t *h = header_copy(), *g = meta_get(h, "graph");
    json_t *n = graph_node(g, node);
    if (value) json_object_set_new(n, key, value);
    else json_object_del(n, key);
    meta_set(h, "graph", g);
    return h;
}

/* The header with tensor entry `tensor`'s `key` set to value (released). */
static json_t *with_tensor_attr(const char *tensor, const char *key, json_t *value) {
    json_t *h = header_copy();
    json_object_set_new(json_object_get(h, tensor), key, value);
    return h;
}

static json_t *offsets(long long b, long long e) { return json_pack("[II]", (json_int_t)b, (json_int_t)e); }

static long long tensor_begin(const char *name) {
    return json_integer_value(json_array_get(json_object_get(json_object_get(header, name), "data_offsets"), 0));
}
static long long tensor_end(const char *name) {
    return json_integer_value(json_array_get(json_object_get(json_object_get(header, name), "data_offsets"), 1));
}

/* ---- expectations ---------------------------------------------------------- */

static int n_cases;

static void check_result(const char *what, dd_status st, dd_model *m, dd_status want, const char *substr) {
    const char *msg = dd_last_error();
    n_cases++;
    CHECK(st == want, "%s: status %d (%s), want %d (%s); message: %s", what, (int)st, dd_strerror(st), (int)want,
          dd_strerror(want), st ? msg : "(none, it loaded)");
    if (st != DD_OK) {
        CHECK(m == NULL, "%s: *out not NULL after a failure", what);
        CHECK(strstr(msg, substr) != NULL, "%s: message '%s' lacks '%s'", what, msg, substr);
    } else {
        dd_model_free(m);
    }
}

/* Loads b (then frees it) and checks status and message. */
static void expect(const char *what, blob b, dd_status want, const char *substr) {
    static char sentinel;
    dd_model *m = (dd_model *)&sentinel;
    const dd_status st = dd_model_load_memory(b.p, b.n, &m);
    free(b.p);
    check_result(what, st, m, want, substr);
}

static void expect_file(const char *what, const char *path, dd_status want, const char *substr) {
    static char sentinel;
    dd_model *m = (dd_model *)&sentinel;
    const dd_status st = dd_model_load_file(path, &m);
    check_result(what, st, m, want, substr);
}

/* Runs expect() in a child process, for a case that may take the process down (a
 * sanitizer abort): the crash becomes a failed check and the other cases still run. */
static void expect_in_child(const char *what, blob b, dd_status want, const char *substr) {
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        expect(what, b, want, substr);
        _exit(check_failures ? 1 : 0);
    }
    free(b.p);
    int ws = 0;
    n_cases++;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
        CHECK(0, "%s: fork/wait failed", what);
        return;
    }
    if (WIFSIGNALED(ws)) CHECK(0, "%s: the load crashed (signal %d)", what, WTERMSIG(ws));
    else if (WEXITSTATUS(ws)) CHECK(0, "%s: failed in the child (exit %d, see above)", what, WEXITSTATUS(ws));
}

/* ---- malformed containers ---------------------------------------------------- */

static void container_cases(void) {
    char what[160], want[160];
    expect("empty file", blob_alloc(0), DD_ERR_CORRUPT, "file of 0 bytes is too short");
    {
        dd_model *m = NULL;
        check_result("NULL data, size 0", dd_model_load_memory(NULL, 0, &m), m, DD_ERR_CORRUPT, "too short");
        check_result("NULL data, size 5", dd_model_load_memory(NULL, 5, &m), m, DD_ERR_INVALID_ARG, "no data");
    }
    expect("7 bytes", prefix(7), DD_ERR_CORRUPT, "file of 7 bytes is too short");
    expect("8 bytes (length only)", prefix(8), DD_ERR_CORRUPT, "runs past the end");

    /* Truncations: in the length, every 997th byte of the header, and through the data. */
    for (size_t n = 1; n < 8; n++) {
        snprintf(what, sizeof what, "truncated to %zu bytes", n);
        expect(what, prefix(n), DD_ERR_CORRUPT, "too short");
    }
    for (size_t k = 0; k < header_len; k += 997) {
        snprintf(what, sizeof what, "truncated in the header at byte %zu", k);
        expect(what, prefix(8 + k), DD_ERR_CORRUPT, "runs past the end");
        /* The same cut with the length field fixed up: the JSON itself ends early. */
        snprintf(what, sizeof what, "header JSON cut at byte %zu (length fixed)", k);
        expect(what, assemble_raw(k, (const char *)file_bytes + 8, k, NULL, 0), DD_ERR_CORRUPT,
               "header is not valid JSON");
    }
    size_t data_cuts[24], n_cuts = 0;
    for (size_t j = 0; j < 20; j++) data_cuts[n_cuts++] = j * (data_len / 20);
    data_cuts[n_cuts++] = 1;
    data_cuts[n_cuts++] = data_len - 1;
    for (size_t j = 0; j < n_cuts; j++) {
        snprintf(what, sizeof what, "truncated in the data at byte %zu of %zu", data_cuts[j], data_len);
        snprintf(want, sizeof want, "outside the %zu data bytes", data_cuts[j]);
        expect(what, prefix(8 + header_len + data_cuts[j]), DD_ERR_CORRUPT, want);
    }

    /* The length field. */
    blob b = prefix(file_size);
    put_u64le(b.p, file_size - 8 + 1);
    expect("header length one past the end", b, DD_ERR_CORRUPT, "runs past the end");
    b = prefix(file_size);
    put_u64le(b.p, (uint64_t)16 << 20);
    expect("header length 16 MiB (at the cap) past the end", b, DD_ERR_CORRUPT, "runs past the end");
    b = prefix(file_size);
    put_u64le(b.p, ((uint64_t)16 << 20) + 1);
    expect("header length 16 MiB + 1", b, DD_ERR_LIMIT, "over the 16777216-byte limit");
    b = prefix(file_size);
    put_u64le(b.p, UINT64_MAX);
    expect("header length 2^64-1", b, DD_ERR_LIMIT, "over the 16777216-byte limit");

    /* The header's JSON. */
    static const char not_json[] = "this is not JSON at all";
    expect("header not JSON", assemble_raw(sizeof not_json - 1, not_json, sizeof not_json - 1, data_section, data_len),
           DD_ERR_CORRUPT, "header is not valid JSON");
    static const char dup[] = "{\"__metadata__\":{\"format\":\"deepdream-graph-1\"},\"a\":1,\"a\":2}";
    expect("header with a duplicate key", assemble_raw(sizeof dup - 1, dup, sizeof dup - 1, NULL, 0), DD_ERR_CORRUPT,
           "header is not valid JSON");
    expect("header JSON an array", assemble(json_pack("[iii]", 1, 2, 3)), DD_ERR_CORRUPT, "header is not a JSON object");
    /* jansson only decodes an object or array at the top level: a bare string is "not JSON". */
    expect("header JSON a string", assemble(json_string("deepdream")), DD_ERR_CORRUPT, "header is not valid JSON");
    json_t *h = header_copy();
    json_object_del(h, "__metadata__");
    expect("no __metadata__", assemble(h), DD_ERR_MODEL, "no __metadata__ object");
    h = header_copy();
    json_object_set_new(h, "__metadata__", json_string("deepdream-graph-1"));
    expect("__metadata__ a string", assemble(h), DD_ERR_MODEL, "no __metadata__ object");
    h = header_copy();
    json_object_set_new(meta(h), "format", json_string("deepdream-graph-2"));
    expect("wrong format", assemble(h), DD_ERR_MODEL, "format is 'deepdream-graph-2', expected 'deepdream-graph-1'");
    h = header_copy();
    json_object_del(meta(h), "format");
    expect("no format", assemble(h), DD_ERR_MODEL, "format is '(none)'");
}

/* ---- malformed tensor entries -------------------------------------------------- */

static void tensor_cases(void) {
    char want[200];
    const char *k1 = "conv2d_1/kernel"; /* [3,3,3,32] U8 at [0, 864] */
    const long long b1 = tensor_begin(k1), e1 = tensor_end(k1);
    expect("dtype F64", assemble(with_tensor_attr(k1, "dtype", json_string("F64"))), DD_ERR_CORRUPT,
           "tensor conv2d_1/kernel: unsupported dtype 'F64'");
    expect("dtype I8", assemble(with_tensor_attr(k1, "dtype", json_string("I8"))), DD_ERR_CORRUPT,
           "tensor conv2d_1/kernel: unsupported dtype 'I8'");
    expect("dtype missing", assemble(with_tensor_attr(k1, "dtype", json_integer(1))), DD_ERR_CORRUPT,
           "tensor conv2d_1/kernel: no dtype");
    json_t *h = header_copy();
    json_object_set_new(h, k1, json_string("U8"));
    expect("entry not an object", assemble(h), DD_ERR_CORRUPT, "tensor conv2d_1/kernel: entry is not an object");
    snprintf(want, sizeof want, "tensor conv2d_1/kernel: %lld bytes for a U8 tensor of 837 elements", e1 - b1);
    expect("shape x U8 != bytes", assemble(with_tensor_attr(k1, "shape", json_pack("[iiii]", 3, 3, 3, 31))),
           DD_ERR_CORRUPT, want);
    snprintf(want, sizeof want, "tensor conv2d_1/kernel: %lld bytes for a F16 tensor of 864 elements", e1 - b1);
    expect("shape x F16 != bytes", assemble(with_tensor_attr(k1, "dtype", json_string("F16"))), DD_ERR_CORRUPT, want);
    expect("negative dimension", assemble(with_tensor_attr(k1, "shape", json_pack("[iiii]", 3, 3, -3, 32))),
           DD_ERR_CORRUPT, "tensor conv2d_1/kernel: bad shape");
    expect("9 dimensions", assemble(with_tensor_attr(k1, "shape", json_pack("[iiiiiiiii]", 1, 1, 1, 1, 1, 3, 3, 3, 32))),
           DD_ERR_CORRUPT, "tensor conv2d_1/kernel: bad shape");
    expect("shape overflows size_t",
           assemble(with_tensor_attr(k1, "shape", json_pack("[III]", (json_int_t)INT32_MAX, (json_int_t)INT32_MAX,
                                                            (json_int_t)INT32_MAX))),
           DD_ERR_CORRUPT, "tensor conv2d_1/kernel: shape overflows");
    expect("data_offsets not two integers", assemble(with_tensor_attr(k1, "data_offsets", json_pack("[i]", 0))),
           DD_ERR_CORRUPT, "tensor conv2d_1/kernel: bad data_offsets");
    snprintf(want, sizeof want, "tensor conv2d_1/kernel: data_offsets [%lld, %lld] outside the %zu data bytes",
             (long long)data_len - (e1 - b1) + 1, (long long)data_len + 1, data_len);
    expect("data_offsets past the end",
           assemble(with_tensor_attr(k1, "data_offsets", offsets((long long)data_len - (e1 - b1) + 1, (long long)data_len + 1))),
           DD_ERR_CORRUPT, want);
    expect("data_offsets far past the end", assemble(with_tensor_attr(k1, "data_offsets", offsets(INT64_MAX - 864, INT64_MAX))),
           DD_ERR_CORRUPT, "outside the");
    snprintf(want, sizeof want, "tensor conv2d_1/kernel: data_offsets [%lld, %lld] outside", e1, b1);
    expect("data_offsets reversed", assemble(with_tensor_attr(k1, "data_offsets", offsets(e1, b1))), DD_ERR_CORRUPT, want);
    expect("data_offsets negative", assemble(with_tensor_attr(k1, "data_offsets", offsets(-864, 0))), DD_ERR_CORRUPT,
           "outside the");

    /* Overlaps: one byte into the previous tensor; two names for the same bytes. */
    const char *k2 = "conv2d_2/kernel";
    expect("tensors overlap by one byte",
           assemble(with_tensor_attr(k2, "data_offsets", offsets(tensor_begin(k2) - 1, tensor_end(k2) - 1))),
           DD_ERR_CORRUPT, "overlap");
    const char *mm = "batch_normalization_1/moving_mean", *mv = "batch_normalization_1/moving_variance";
    expect("two tensors on the same bytes",
           assemble(with_tensor_attr(mv, "data_offsets", offsets(tensor_begin(mm), tensor_end(mm)))), DD_ERR_CORRUPT,
           "overlap");
    /* An empty tensor between two overlapping ones must not hide the overlap:
     * zz/empty [10,10] and zz/alias [16,32] both lie inside conv2d_1/kernel [0,864]. */
    h = header_copy();
    json_object_set_new(h, "zz/empty", json_pack("{s:s, s:[i], s:[ii]}", "dtype", "F32", "shape", 0, "data_offsets", 10, 10));
    json_object_set_new(h, "zz/alias", json_pack("{s:s, s:[i], s:[ii]}", "dtype", "F32", "shape", 4, "data_offsets", 16, 32));
    expect("overlap behind an empty tensor", assemble(h), DD_ERR_CORRUPT, "overlap");

    /* Tensors the graph names. */
    h = header_copy();
    json_object_del(h, "conv2d_5/kernel");
    expect("tensor missing", assemble(h), DD_ERR_MODEL, "node conv2d_5: tensor conv2d_5/kernel is missing from the file");
    h = header_copy();
    json_t *q = meta_get(h, "quantization");
    json_object_del(json_object_get(q, "tensors"), k1);
    meta_set(h, "quantization", q);
    expect("U8 without quantization entry", assemble(h), DD_ERR_MODEL,
           "tensor conv2d_1/kernel: U8 without quantization min/scale");
    h = header_copy();
    q = meta_get(h, "quantization");
    json_object_set_new(json_object_get(json_object_get(q, "tensors"), k1), "scale", json_string("0.1"));
    meta_set(h, "quantization", q);
    expect("quantization scale a string", assemble(h), DD_ERR_MODEL, "tensor conv2d_1/kernel: U8 without quantization");
    h = header_copy();
    json_object_del(meta(h), "quantization");
    expect("no quantization at all", assemble(h), DD_ERR_MODEL, "U8 without quantization min/scale");
}

/* ---- malformed graphs ------------------------------------------------------------ */

static void graph_cases(void) {
    json_t *h = header_copy(), *g, *n;
    json_object_set_new(meta(h), "graph", json_string("{\"input\": {\"name\": \"input_1\", \"channels\": 3}, \"nodes\": ["));
    expect("graph JSON invalid", assemble(h), DD_ERR_CORRUPT, "__metadata__ 'graph': bad JSON");
    h = header_copy();
    json_object_set_new(meta(h), "graph", json_integer(7));
    expect("graph not a string", assemble(h), DD_ERR_CORRUPT, "__metadata__ 'graph' is not a string");
    h = header_copy();
    json_object_del(meta(h), "graph");
    expect("no graph", assemble(h), DD_ERR_MODEL, "no 'graph' in __metadata__");
    h = header_copy();
    meta_set(h, "graph", json_pack("[s]", "nodes"));
    expect("graph an array", assemble(h), DD_ERR_MODEL, "graph: input needs a name and channels");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(json_object_get(g, "input"), "channels", json_integer(4));
    meta_set(h, "graph", g);
    expect("input of 4 channels", assemble(h), DD_ERR_MODEL, "graph: input has 4 channels");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(g, "nodes", json_array());
    meta_set(h, "graph", g);
    expect("no nodes", assemble(h), DD_ERR_MODEL, "graph: 'nodes' must be a non-empty array");

    /* Cycles: two nodes reading each other; one node reading itself. */
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(graph_node(g, "batch_normalization_1"), "inputs", json_pack("[s]", "activation_1"));
    json_object_set_new(graph_node(g, "activation_1"), "inputs", json_pack("[s]", "batch_normalization_1"));
    meta_set(h, "graph", g);
    expect("two nodes read each other", assemble(h), DD_ERR_MODEL, "cycle");
    expect("node reads itself", assemble(with_node_attr("mixed2", "inputs", json_pack("[ss]", "mixed1", "mixed2"))),
           DD_ERR_MODEL, "cycle");

    expect("unknown input", assemble(with_node_attr("conv2d_2", "inputs", json_pack("[s]", "no_such_node"))),
           DD_ERR_MODEL, "node conv2d_2: unknown input 'no_such_node'");
    expect("input not a string", assemble(with_node_attr("conv2d_2", "inputs", json_pack("[i]", 3))), DD_ERR_MODEL,
           "node conv2d_2: unknown input '(not a string)'");
    expect("conv with two inputs",
           assemble(with_node_attr("conv2d_2", "inputs", json_pack("[ss]", "activation_1", "activation_1"))),
           DD_ERR_MODEL, "node conv2d_2: wrong number of inputs");
    expect("unknown op", assemble(with_node_attr("activation_3", "op", json_string("softmax"))), DD_ERR_MODEL,
           "node activation_3: unknown op 'softmax'");
    expect("no op", assemble(with_node_attr("activation_3", "op", NULL)), DD_ERR_MODEL,
           "node activation_3: unknown op '(none)'");
    expect("duplicate node name", assemble(with_node_attr("activation_2", "name", json_string("activation_1"))),
           DD_ERR_MODEL, "graph: node name activation_1 is used twice");
    expect("node named like the input", assemble(with_node_attr("activation_2", "name", json_string("input_1"))),
           DD_ERR_MODEL, "graph: node name input_1 is used twice");
    expect("node without a name", assemble(with_node_attr("activation_2", "name", NULL)), DD_ERR_MODEL, "has no name");

    /* Kernel shapes: a conv's filter count changed; two convs' kernels swapped. */
    expect("conv filters 64 -> 32", assemble(with_node_attr("conv2d_3", "filters", json_integer(32))), DD_ERR_MODEL,
           "node conv2d_3: tensor conv2d_3/kernel has the wrong shape");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(json_object_get(graph_node(g, "conv2d_2"), "tensors"), "kernel", json_string("conv2d_3/kernel"));
    json_object_set_new(json_object_get(graph_node(g, "conv2d_3"), "tensors"), "kernel", json_string("conv2d_2/kernel"));
    meta_set(h, "graph", g);
    expect("two convs' kernels swapped", assemble(h), DD_ERR_MODEL, "node conv2d_2: tensor conv2d_3/kernel has the wrong shape");
    expect("conv kernel 5x5", assemble(with_node_attr("conv2d_1", "kernel", json_pack("[ii]", 5, 5))), DD_ERR_MODEL,
           "node conv2d_1: tensor conv2d_1/kernel has the wrong shape");
    expect("conv filters 0", assemble(with_node_attr("conv2d_1", "filters", json_integer(0))), DD_ERR_MODEL,
           "node conv2d_1: 'filters' must be an integer in 1..65536");
    expect("kernel layout IOHW", assemble(with_node_attr("conv2d_1", "kernel_layout", json_string("IOHW"))),
           DD_ERR_MODEL, "node conv2d_1: kernel_layout must be 'HWIO' or 'OIHW'");
    /* OIHW is PyTorch's order: this file's HWIO kernel [3,3,3,32] is the wrong shape for it. */
    expect("kernel layout OIHW on an HWIO kernel", assemble(with_node_attr("conv2d_1", "kernel_layout", json_string("OIHW"))),
           DD_ERR_MODEL, "node conv2d_1: tensor conv2d_1/kernel has the wrong shape");
    expect("conv stride 0", assemble(with_node_attr("conv2d_1", "strides", json_pack("[ii]", 0, 2))), DD_ERR_MODEL,
           "node conv2d_1: 'strides' must be two integers in 1..64");

    /* Batch norm not directly after a conv it alone reads. */
    expect("batch_norm after the input",
           assemble(with_node_attr("batch_normalization_1", "inputs", json_pack("[s]", "input_1"))), DD_ERR_MODEL,
           "node batch_normalization_1: batch_norm must be the only reader of a conv2d");
    expect("batch_norm after a pool",
           assemble(with_node_attr("batch_normalization_4", "inputs", json_pack("[s]", "max_pooling2d_1"))),
           DD_ERR_MODEL, "node batch_normalization_4: batch_norm must be the only reader of a conv2d");
    h = header_copy();
    g = meta_get(h, "graph");
    n = graph_node(g, "mixed0");
    json_array_append_new(json_object_get(n, "inputs"), json_string("conv2d_1"));
    meta_set(h, "graph", g);
    expect("batch_norm on a conv read twice", assemble(h), DD_ERR_MODEL,
           "node batch_normalization_1: batch_norm must be the only reader of a conv2d");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(graph_node(g, "activation_1"), "inputs", json_pack("[s]", "conv2d_1"));
    json_object_set_new(graph_node(g, "batch_normalization_1"), "inputs", json_pack("[s]", "activation_1"));
    json_object_set_new(graph_node(g, "conv2d_2"), "inputs", json_pack("[s]", "batch_normalization_1"));
    meta_set(h, "graph", g);
    expect("batch_norm after a relu", assemble(h), DD_ERR_MODEL,
           "node batch_normalization_1: batch_norm must be the only reader of a conv2d");
    expect("batch_norm epsilon negative", assemble(with_node_attr("batch_normalization_1", "epsilon", json_real(-1))),
           DD_ERR_MODEL, "node batch_normalization_1: epsilon must be a number >= 0");

    const char *padding_rule = "padding must be 'same', 'valid' or [top, bottom, left, right]";
    expect("conv padding 'SAME'", assemble(with_node_attr("conv2d_1", "padding", json_string("SAME"))), DD_ERR_MODEL,
           padding_rule);
    expect("pool padding missing", assemble(with_node_attr("max_pooling2d_1", "padding", NULL)), DD_ERR_MODEL,
           padding_rule);
    expect("conv padding of three", assemble(with_node_attr("conv2d_1", "padding", json_pack("[iii]", 1, 1, 1))),
           DD_ERR_MODEL, padding_rule);
    expect("conv padding negative", assemble(with_node_attr("conv2d_1", "padding", json_pack("[iiii]", 1, 1, -1, 1))),
           DD_ERR_MODEL, "node conv2d_1: padding [top, bottom, left, right] must be integers in 0..64");
    expect("conv padding 65", assemble(with_node_attr("conv2d_1", "padding", json_pack("[iiii]", 65, 0, 0, 0))),
           DD_ERR_MODEL, "node conv2d_1: padding [top, bottom, left, right] must be integers in 0..64");
    expect("conv padding a string inside", assemble(with_node_attr("conv2d_1", "padding", json_pack("[iiis]", 1, 1, 1, "1"))),
           DD_ERR_MODEL, "node conv2d_1: padding [top, bottom, left, right] must be integers in 0..64");
    expect("pool padding over half its size",
           assemble(with_node_attr("max_pooling2d_1", "padding", json_pack("[iiii]", 0, 2, 0, 0))), DD_ERR_MODEL,
           "node max_pooling2d_1: a pool's padding must be at most half its size");
    expect("pool ceil_mode a number", assemble(with_node_attr("max_pooling2d_1", "ceil_mode", json_integer(1))),
           DD_ERR_MODEL, "node max_pooling2d_1: 'ceil_mode' must be true or false");
    expect("max pool counting padding", assemble(with_node_attr("max_pooling2d_1", "count_padding", json_true())),
           DD_ERR_MODEL, "node max_pooling2d_1: count_padding is for average pools");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(graph_node(g, "max_pooling2d_1"), "ceil_mode", json_true());
    json_object_set_new(graph_node(g, "max_pooling2d_1"), "padding", json_string("same"));
    meta_set(h, "graph", g);
    expect("ceil_mode with 'same'", assemble(h), DD_ERR_MODEL, "node max_pooling2d_1: ceil_mode needs explicit padding");
    expect("add of branches of different widths", assemble(with_node_attr("mixed0", "op", json_string("add"))),
           DD_ERR_MODEL, "node mixed0: adds ");
    h = header_copy();
    g = meta_get(h, "graph");
    json_object_set_new(graph_node(g, "mixed0"), "op", json_string("add"));
    json_object_set_new(graph_node(g, "mixed0"), "inputs", json_pack("[s]", "activation_6"));
    meta_set(h, "graph", g);
    expect("add of one input", assemble(h), DD_ERR_MODEL, "node mixed0: wrong number of inputs");
    expect("pool type 'min'", assemble(with_node_attr("max_pooling2d_1", "pool", json_string("min"))), DD_ERR_MODEL,
           "node max_pooling2d_1: pool must be 'max' or 'avg'");
    expect("pool size 16", assemble(with_node_attr("max_pooling2d_1", "size", json_pack("[ii]", 16, 3))), DD_ERR_MODEL,
           "node max_pooling2d_1: 'size' must be two integers in 1..15");

    /* The layers list and preprocess. */
    h = header_copy();
    json_t *l = meta_get(h, "layers");
    json_array_append_new(l, json_string("mixed9"));
    meta_set(h, "layers", l);
    expect("layers names a missing node", assemble(h), DD_ERR_MODEL, "__metadata__ layers: mixed9 is not a node of the graph");
    h = header_copy();
    meta_set(h, "layers", json_pack("[ss]", "mixed0", "input_1"));
    expect("layers names the input", assemble(h), DD_ERR_MODEL, "__metadata__ layers: input_1 is not a node of the graph");
    h = header_copy();
    meta_set(h, "layers", json_pack("[si]", "mixed0", 5));
    expect("layers entry a number", assemble(h), DD_ERR_MODEL, "__metadata__ layers: entry 1 is not a string");
    h = header_copy();
    meta_set(h, "layers", json_pack("{s:i}", "mixed0", 1));
    expect("layers an object", assemble(h), DD_ERR_MODEL, "__metadata__ layers is not an array");
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:i, s:i}", "divisor", 0, "offset", -1));
    expect("preprocess divisor 0", assemble(h), DD_ERR_MODEL, "__metadata__ preprocess needs a divisor > 0");
    const char *mean_std = "__metadata__ preprocess: mean and std must be three numbers each, transform_input true or false";
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff]}", "mean", 0.5, 0.5, 0.5));
    expect("preprocess mean without std", assemble(h), DD_ERR_MODEL, mean_std);
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[ff], s:[fff]}", "mean", 0.5, 0.5, "std", 0.2, 0.2, 0.2));
    expect("preprocess mean of two", assemble(h), DD_ERR_MODEL, mean_std);
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff], s:i}", "mean", 0.5, 0.5, 0.5, "std", 0.2, 0.2, 0.2,
                                        "transform_input", 1));
    expect("preprocess transform_input a number", assemble(h), DD_ERR_MODEL, mean_std);
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff]}", "mean", 0.5, 0.5, 0.5, "std", 0.2, 0.0, 0.2));
    expect("preprocess std 0", assemble(h), DD_ERR_MODEL, "__metadata__ preprocess: std must be > 0 and mean finite");
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff]}", "mean", 0.5, 0.5, 0.5, "std", 0.2, 1e-300, 0.2));
    expect("preprocess std 1e-300 (no float divisor)", assemble(h), DD_ERR_MODEL,
           "__metadata__ preprocess needs a divisor > 0");
    const char *either = "__metadata__ preprocess: either {divisor, offset} or {mean, std, transform_input}, not both";
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff], s:f}", "mean", 0.5, 0.5, 0.5, "std", 0.2, 0.2, 0.2,
                                        "divisor", 127.5));
    expect("preprocess mean/std and a divisor", assemble(h), DD_ERR_MODEL, either);
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:f, s:i, s:b}", "divisor", 127.5, "offset", -1, "transform_input", 1));
    expect("preprocess transform_input without mean/std", assemble(h), DD_ERR_MODEL, either);
    h = header_copy();
    json_object_set_new(meta(h), "default_layers", json_integer(3));
    expect("default_layers a number", assemble(h), DD_ERR_MODEL, "__metadata__ default_layers is not a non-empty string");
}

/* The metadata a converted torchvision file carries, read back. */
static void metadata_cases(void) {
    json_t *h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff]}", "mean", 0.485, 0.456, 0.406, "std", 0.229, 0.224, 0.225));
    json_object_set_new(meta(h), "default_layers", json_string("mixed3:7=2,mixed1"));
    blob b = assemble(h);
    dd_model *m = NULL;
    CHECK(dd_model_load_memory(b.p, b.n, &m) == DD_OK, "mean/std file: %s", dd_last_error());
    free(b.p);
    if (m) {
        static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
        float div[3], off[3];
        dd_model_input_mapping(m, div, off);
        for (int c = 0; c < 3; c++)
            CHECK(div[c] == (float)(255 * std[c]) && off[c] == (float)(-mean[c] / std[c]),
                  "mean/std %d: divisor %.9g offset %.9g", c, div[c], off[c]);
        CHECK(!strcmp(dd_model_default_layers(m), "mixed3:7=2,mixed1"), "default layers '%s'",
              dd_model_default_layers(m));
        dd_model_free(m);
    }
    /* torchvision's transform_input undoes the mean/std: [-1, 1] whatever they are. */
    h = header_copy();
    meta_set(h, "preprocess", json_pack("{s:[fff], s:[fff], s:b}", "mean", 0.485, 0.456, 0.406, "std", 0.229, 0.224,
                                        0.225, "transform_input", 1));
    json_object_del(meta(h), "layers");
    b = assemble(h);
    m = NULL;
    CHECK(dd_model_load_memory(b.p, b.n, &m) == DD_OK, "transform_input file: %s", dd_last_error());
    free(b.p);
    if (m) {
        float div[3], off[3];
        dd_model_input_mapping(m, div, off);
        for (int c = 0; c < 3; c++)
            CHECK(div[c] == 127.5f && fabsf(off[c] + 1.0f) <= 1e-6f, "transform_input %d: divisor %.9g offset %.9g", c,
                  div[c], off[c]);
        /* No default_layers: the built-in's, as this graph has them. */
        CHECK(!strcmp(dd_model_default_layers(m), dd_default_layers()), "default layers '%s'",
              dd_model_default_layers(m));
        dd_model_free(m);
    }
    /* Neither default_layers nor mixed2: the deepest layer. */
    h = header_copy();
    meta_set(h, "layers", json_pack("[ss]", "activation_1", "max_pooling2d_1"));
    b = assemble(h);
    m = NULL;
    CHECK(dd_model_load_memory(b.p, b.n, &m) == DD_OK, "two-layer file: %s", dd_last_error());
    free(b.p);
    if (m) {
        CHECK(!strcmp(dd_model_default_layers(m), "max_pooling2d_1"), "default layers '%s'", dd_model_default_layers(m));
        dd_model_free(m);
    }
}

/* ---- layers before a fused ReLU, and the residual add ----------------------
 * tests/fuzz/corpus/model/torch_ops.safetensors (made by make_corpus.py):
 * c1 (conv, ReLU r1 fused after it) -> max pool p1 -> c2 (conv + BN), then
 * sum = c2 + p1 (an add, ReLU `block` fused after it) -> avg pool p2. */
enum { TO_H = 21, TO_W = 26, TO_N = 3 * TO_H * TO_W };

/* Objective and input gradient of spec on x. */
static double torch_ops_run(const dd_model *m, const char *spec, const float *x, float *grad) {
    dd_term terms[4];
    int n = 0;
    dd_net *net = NULL;
    double objective = NAN;
    if (dd_terms_parse(m, spec, terms, 4, &n) || dd_net_new(m, terms, n, TO_H, TO_W, 2, &net) ||
        dd_net_gradient(net, x, grad, &objective))
        CHECK(0, "torch_ops %s: %s", spec, dd_last_error());
    dd_net_free(net);
    return objective;
}

/* (Plain comparisons, not fmax: aarch64 gcc 12's vectoriser crashes on an
 * fmax reduction here.) */
static double max_abs_f(const float *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        const double v = fabs((double)p[i]);
        if (v > m) m = v;
    }
    return m;
}

/* max |a + b - c| / max |c|, a and b scaled by wa and wb. */
static double sum_err(const float *a, double wa, const float *b, double wb, const float *c, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs(wa * a[i] + wb * b[i] - c[i]);
        if (d > worst) worst = d;
    }
    return worst / max_abs_f(c, n);
}

static void pre_relu_cases(const char *path) {
    dd_model *m = NULL;
    if (dd_model_load_file(path, &m) != DD_OK) {
        CHECK(0, "%s: %s", path, dd_last_error());
        return;
    }
    CHECK(!strcmp(dd_model_default_layers(m), "block"), "torch_ops default layers '%s'", dd_model_default_layers(m));
    static float x[TO_N], xp[TO_N], g[6][TO_N], gq[TO_N];
    for (int i = 0; i < TO_N; i++) x[i] = (float)sin(0.37 * i) * 2.0f;

    /* c1 before its ReLU is linear in x: central differences are exact
     * there up to float32 rounding of the mean. */
    const double f0 = torch_ops_run(m, "c1", x, g[0]);
    const double scale = max_abs_f(g[0], TO_N);
    double worst = 0;
    for (int k = 0; k < 40; k++) {
        const int i = (int)((k * 7919L) % TO_N);
        const float h = 0.5f;
        memcpy(xp, x, sizeof xp);
        xp[i] = x[i] + h;
        const double up = torch_ops_run(m, "c1", xp, gq);
        xp[i] = x[i] - h;
        const double down = torch_ops_run(m, "c1", xp, gq);
        const double err = fabs((up - down) / (2 * h) - g[0][i]) / scale;
        if (!(err <= worst)) worst = err;
    }
    CHECK(worst < 1e-4, "pre-ReLU c1: gradient vs central differences %.3g of max|g| (objective %g)", worst, f0);

    /* sum = c2 + p1: its mean and gradient are theirs added; the ReLU after
     * it (block) only ever lowers the mean. */
    const double s = torch_ops_run(m, "sum", x, g[1]), c2 = torch_ops_run(m, "c2", x, g[2]);
    const double p1 = torch_ops_run(m, "p1", x, g[3]), block = torch_ops_run(m, "block", x, g[4]);
    CHECK(fabs(s - (c2 + p1)) <= 1e-6 * (fabs(c2) + fabs(p1)), "mean(sum) %.9g, mean(c2) + mean(p1) %.9g", s, c2 + p1);
    CHECK(sum_err(g[2], 1, g[3], 1, g[1], TO_N) < 1e-5, "grad(sum) vs grad(c2) + grad(p1): %.3g",
          sum_err(g[2], 1, g[3], 1, g[1], TO_N));
    CHECK(block >= s && block > 0, "mean(block) %g below mean(sum) %g", block, s);

    /* A pre-ReLU term beside the post-ReLU one (weight 0: it only splits the
     * node) changes neither the post-ReLU objective nor its gradient. */
    static const char *const pairs[][2] = {{"r1", "c1=0,r1"}, {"block", "sum=0,block"}};
    for (int k = 0; k < 2; k++) {
        const double alone = torch_ops_run(m, pairs[k][0], x, g[0]);
        const double split = torch_ops_run(m, pairs[k][1], x, g[5]);
        CHECK(alone == split && !memcmp(g[0], g[5], sizeof g[0]), "%s: objective %.9g alone, %.9g as %s; gradients %s",
              pairs[k][0], alone, split, pairs[k][1], memcmp(g[0], g[5], sizeof g[0]) ? "differ" : "agree");
    }
    /* Both terms weighted: the gradients add. */
    torch_ops_run(m, "c1", x, g[0]);
    torch_ops_run(m, "r1", x, g[2]);
    torch_ops_run(m, "c1=0.5,r1=2", x, g[5]);
    CHECK(sum_err(g[0], 0.5, g[2], 2, g[5], TO_N) < 1e-5, "grad(0.5 c1 + 2 r1) vs the sum of theirs: %.3g",
          sum_err(g[0], 0.5, g[2], 2, g[5], TO_N));
    dd_model_free(m);
}

/* A concat of concats of one conv (32 channels, each level 64 inputs): 32 * 64^5 =
 * 2^35 channels, past int. Expected: an error naming channels, not a wrapped count. */
static void concat_overflow_case(void) {
    json_t *h = header_copy(), *g = meta_get(h, "graph"), *nodes = json_array();
    json_array_append(nodes, graph_node(g, "conv2d_1"));
    for (int level = 1; level <= 5; level++) {
        char name[16], in[16];
        snprintf(name, sizeof name, "cat%d", level);
        snprintf(in, sizeof in, level == 1 ? "conv2d_1" : "cat%d", level - 1);
        json_t *ins = json_array();
        for (int k = 0; k < 64; k++) json_array_append_new(ins, json_string(in));
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:o, s:s}", "name", name, "op", "concat", "inputs", ins,
                                               "axis", "channels"));
    }
    json_object_set_new(g, "nodes", nodes);
    meta_set(h, "graph", g);
    json_object_del(meta(h), "layers");
    expect_in_child("concat channels past INT_MAX", assemble(h), DD_ERR_MODEL, "channels");
}

/* ---- files ---------------------------------------------------------------------- */

static void file_cases(const char *weights_path) {
    char path[512], want[600];
    snprintf(path, sizeof path, "%s.no-such-file", weights_path);
    snprintf(want, sizeof want, "%s: No such file", path);
    expect_file("nonexistent path", path, DD_ERR_IO, want);
    /* The directory holding the weights. */
    snprintf(path, sizeof path, "%s", weights_path);
    char *slash = strrchr(path, '/');
    if (slash) slash[1] = '\0';
    else snprintf(path, sizeof path, ".");
    expect_file("a directory", path, DD_ERR_IO, path);
    /* A truncated file on disk: the detail comes with the path. */
    char tmp[] = "/tmp/dd_test_loader_XXXXXX";
    const int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp failed");
    if (fd < 0) return;
    const size_t n = 8 + header_len / 2;
    CHECK(write(fd, file_bytes, n) == (ssize_t)n, "write %s failed", tmp);
    close(fd);
    snprintf(want, sizeof want, "%s: header length %zu runs past the end of the %zu-byte file", tmp, header_len, n);
    expect_file("truncated file on disk", tmp, DD_ERR_CORRUPT, want);
    unlink(tmp);
}

/* ---- re-encodings: F32 and F16 ------------------------------------------------------ */

static float half_to_float(uint16_t h) {
    const int exp = (h >> 10) & 31, man = h & 1023;
    float v = exp == 0 ? ldexpf((float)man, -24) : exp == 31 ? (man ? NAN : INFINITY) : ldexpf((float)(man | 1024), exp - 25);
    return h >> 15 ? -v : v;
}

/* Round to nearest, ties to even. */
static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t a = x & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00;   /* NaN */
    if (a >= 0x477ff000) return sign | 0x7c00;  /* >= 65520 rounds to infinity */
    if (a < 0x38800000) {                        /* below 2^-14: subnormal (or 0) */
        float m;
        memcpy(&m, &a, sizeof m);
        return sign | (uint16_t)rintf(m * 16777216.0f); /* units of 2^-24; exact scaling */
    }
    uint32_t h = ((a >> 23) - 112) << 10 | (a & 0x7fffff) >> 13;
    const uint32_t rest = a & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

/* The model with every U8 tensor dequantised as v = float32(double(q) * scale + min),
 * quantization entries dropped, stored as: */
enum encoding {
    ENC_F32,        /* v, F32 */
    ENC_F16,        /* v rounded to F16 */
    ENC_F32_OF_F16  /* v rounded to F16 and back, stored as F32 */
};

static blob reencode(enum encoding enc, double *max_rel_err, size_t *n_subnormal) {
    const int f16 = enc == ENC_F16;
    json_t *h = header_copy(), *q = meta_get(h, "quantization"), *qt = json_object_get(q, "tensors");
    const size_t elem = f16 ? 2 : 4;
    size_t total = 0;
    const char *name;
    json_t *t;
    json_object_foreach(h, name, t) {
        if (!strcmp(name, "__metadata__")) continue;
        total += (size_t)(tensor_end(name) - tensor_begin(name)) * elem;
    }
    unsigned char *data = malloc(total ? total : 1), *p = data;
    if (!data) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    *max_rel_err = 0, *n_subnormal = 0;
    json_object_foreach(h, name, t) {
        if (!strcmp(name, "__metadata__")) continue;
        const size_t b = (size_t)tensor_begin(name), n = (size_t)tensor_end(name) - b;
        json_t *qe = json_object_get(qt, name);
        const double mn = json_number_value(json_object_get(qe, "min")), sc = json_number_value(json_object_get(qe, "scale"));
        CHECK(qe && !strcmp(json_string_value(json_object_get(t, "dtype")), "U8"), "%s: not a quantised U8 tensor", name);
        for (size_t i = 0; i < n; i++) {
            float v = (float)((double)data_section[b + i] * sc + mn);
            if (enc != ENC_F32 && i < 4 && !strcmp(name, "conv2d_5/kernel")) {
                /* Four subnormal halves (the real weights have none), so that the
                 * F16-against-F32 comparison covers their decoding. */
                static const float tiny[4] = {0x1p-24f, 0x3p-20f, 0x3ffp-24f, 0x1p-17f};
                v = copysignf(tiny[i], v);
            }
            if (enc != ENC_F32) {
                const uint16_t hv = float_to_half(v);
                const float back = half_to_float(hv);
                const double err = fabs((double)back - v), rel = err / fmax(fabs(v), 6.103515625e-05);
                CHECK(isfinite(back) && err <= ldexp(fabs(v), -11) + ldexp(1.0, -25), "%s[%zu]: %.9g -> F16 %.9g",
                      name, i, v, back);
                if (rel > *max_rel_err) *max_rel_err = rel;
                *n_subnormal += (hv & 0x7c00) == 0 && (hv & 0x3ff) != 0;
                v = back;
            }
            if (f16) {
                const uint16_t hv = float_to_half(v);
                p[2 * i] = (unsigned char)hv, p[2 * i + 1] = (unsigned char)(hv >> 8);
            } else {
                uint32_t u;
                memcpy(&u, &v, sizeof u);
                for (int k = 0; k < 4; k++) p[4 * i + k] = (unsigned char)(u >> (8 * k));
            }
        }
        json_object_set_new(t, "dtype", json_string(f16 ? "F16" : "F32"));
        json_object_set_new(t, "data_offsets", offsets(p - data, p - data + (long long)(n * elem)));
        json_object_del(qt, name);
        p += n * elem;
    }
    meta_set(h, "quantization", q);
    blob out = assemble_with(h, data, total);
    free(data);
    return out;
}

/* The header with the graph's nodes in another order: reversed, or a fixed shuffle. */
static blob reorder(int reverse) {
    json_t *h = header_copy(), *g = meta_get(h, "graph"), *nodes = json_object_get(g, "nodes");
    const size_t n = json_array_size(nodes);
    size_t *perm = malloc(n * sizeof *perm);
    if (!perm) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) perm[i] = reverse ? n - 1 - i : i;
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (size_t i = n - 1; !reverse && i > 0; i--) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        const size_t j = (size_t)(s >> 33) % (i + 1), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    json_t *shuffled = json_array();
    for (size_t i = 0; i < n; i++) json_array_append(shuffled, json_array_get(nodes, perm[i]));
    free(perm);
    json_object_set_new(g, "nodes", shuffled);
    meta_set(h, "graph", g);
    return assemble(h);
}

/* ---- running nets ---------------------------------------------------------------- */

enum { C = 3, H = 96, W = 112, N_IN = C * H * W };

typedef struct run {
    double objective;
    float grad[N_IN];
    dd_layer_stats stats[2];
} run;

static int run_net(const char *what, const dd_model *m, const float *in, run *r) {
    const dd_term terms[2] = {{"mixed2", -1, 1.0f}, {"mixed5", -1, 0.5f}};
    dd_net *net = NULL;
    dd_status st = dd_net_new(m, terms, 2, H, W, 1, &net);
    if (!st) st = dd_net_gradient(net, in, r->grad, &r->objective);
    for (int t = 0; !st && t < 2; t++) st = dd_net_term_stats(net, t, &r->stats[t]);
    dd_net_free(net);
    CHECK(st == DD_OK, "%s: net failed: %s", what, dd_last_error());
    return st == DD_OK;
}

static void same_forward(const char *what, const run *a, const run *b) {
    CHECK(a->objective == b->objective, "%s: objective %.17g != %.17g", what, a->objective, b->objective);
    for (int t = 0; t < 2; t++)
        CHECK(!memcmp(&a->stats[t], &b->stats[t], sizeof a->stats[t]), "%s: term %d stats differ (mean %.17g vs %.17g)",
              what, t, a->stats[t].mean, b->stats[t].mean);
}

/* Bit-identical objective, term statistics and gradient; prints the first mismatches. */
static void same_bits(const char *what, const run *a, const run *b) {
    same_forward(what, a, b);
    int shown = 0, diffs = 0;
    double max_diff = 0;
    for (int i = 0; i < N_IN; i++)
        if (memcmp(&a->grad[i], &b->grad[i], sizeof(float))) {
            diffs++;
            max_diff = fmax(max_diff, fabs((double)a->grad[i] - b->grad[i]));
            if (shown++ < 5) fprintf(stderr, "  %s: grad[%d] %.9g != %.9g\n", what, i, a->grad[i], b->grad[i]);
        }
    CHECK(diffs == 0, "%s: %d of %d gradient values differ, max |diff| %.3g", what, diffs, N_IN, max_diff);
}

/* Forward bit-identical; gradient within rel_max * max |gradient| everywhere. */
static void same_up_to_summation_order(const char *what, const run *got, const run *want, double rel_max) {
    same_forward(what, got, want);
    double g_max = 0, max_diff = 0;
    int worst = 0, diffs = 0;
    for (int i = 0; i < N_IN; i++) {
        g_max = fmax(g_max, fabs((double)want->grad[i]));
        const double d = fabs((double)got->grad[i] - want->grad[i]);
        diffs += d > 0;
        if (d > max_diff) max_diff = d, worst = i;
    }
    CHECK(max_diff <= rel_max * g_max, "%s: gradient max |diff| %.3g at %d (%.9g vs %.9g) > %.3g * max |g| %.3g", what,
          max_diff, worst, got->grad[worst], want->grad[worst], rel_max, g_max);
    fprintf(stderr, "%s: forward identical; %d of %d gradient values differ, max |diff| %.3g = %.2e * max |g|\n", what,
            diffs, N_IN, max_diff, max_diff / g_max);
}

/* Objective within rel_obj; gradient within rel_grad in relative L2 norm. */
static void close_runs(const char *what, const run *got, const run *want, double rel_obj, double rel_grad) {
    char w[160];
    snprintf(w, sizeof w, "%s objective", what);
    check_rel(w, got->objective, want->objective, rel_obj);
    double d2 = 0, n2 = 0, max_diff = 0;
    int worst = 0;
    for (int i = 0; i < N_IN; i++) {
        const double d = (double)got->grad[i] - want->grad[i];
        d2 += d * d, n2 += (double)want->grad[i] * want->grad[i];
        if (fabs(d) > max_diff) max_diff = fabs(d), worst = i;
    }
    const double rel = sqrt(d2 / n2);
    CHECK(rel <= rel_grad, "%s: gradient relative L2 error %.3g > %.3g (max |diff| %.3g at %d: %.9g vs %.9g)", what, rel,
          rel_grad, max_diff, worst, got->grad[worst], want->grad[worst]);
    fprintf(stderr, "%s: objective %.10f vs %.10f (rel %.2e), gradient rel L2 %.2e\n", what, got->objective,
            want->objective, fabs(got->objective - want->objective) / fabs(want->objective), rel);
}

static void same_layers(const char *what, const dd_model *want, const dd_model *got) {
    const int n = dd_model_layer_count(want);
    CHECK(n == dd_model_layer_count(got), "%s: %d layers, want %d", what, dd_model_layer_count(got), n);
    int diffs = 0;
    for (int i = 0; i < n && i < dd_model_layer_count(got); i++)
        if (strcmp(dd_model_layer_name(want, i), dd_model_layer_name(got, i)) ||
            dd_model_layer_channels(want, i) != dd_model_layer_channels(got, i))
            if (diffs++ < 5)
                fprintf(stderr, "  %s: layer %d is %s (%d), want %s (%d)\n", what, i, dd_model_layer_name(got, i),
                        dd_model_layer_channels(got, i), dd_model_layer_name(want, i), dd_model_layer_channels(want, i));
    CHECK(diffs == 0, "%s: %d layers differ", what, diffs);
}

static int layer_channels(const dd_model *m, const char *name) {
    for (int i = 0; i < dd_model_layer_count(m); i++)
        if (!strcmp(dd_model_layer_name(m, i), name)) return dd_model_layer_channels(m, i);
    return -1;
}

/* Loads b (then frees it) and checks it has the default's layers; NULL on failure. */
static dd_model *load_variant(const char *what, blob b, const dd_model *ref) {
    dd_model *m = NULL;
    const dd_status st = dd_model_load_memory(b.p, b.n, &m);
    free(b.p);
    CHECK(st == DD_OK, "%s: load failed: %s", what, dd_last_error());
    if (m) same_layers(what, ref, m);
    return m;
}

/* ---- reading files in bounded steps ---------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A child writing the first n bytes of p to fd, then `tail` bytes of 'x'
 * (tail < 0: forever, until the reader goes), then closing it. */
static pid_t spawn_writer(int fd, const unsigned char *p, size_t n, long tail) {
    fflush(stderr);
    const pid_t pid = fork();
    if (pid != 0) return pid;
    signal(SIGPIPE, SIG_IGN);
    for (size_t off = 0; off < n;) {
        const ssize_t w = write(fd, p + off, n - off);
        if (w <= 0) _exit(0);
        off += (size_t)w;
    }
    static unsigned char junk[4096];
    memset(junk, 'x', sizeof junk);
    for (long left = tail; tail < 0 || left > 0;) {
        const size_t k = tail < 0 || left > (long)sizeof junk ? sizeof junk : (size_t)left;
        if (write(fd, junk, k) <= 0) _exit(0);
        left -= (long)k;
    }
    close(fd);
    _exit(0);
}

static void reap(pid_t pid) {
    int ws;
    if (pid > 0) waitpid(pid, &ws, 0);
}

/* The model from `path`, which a writer fills with the first n bytes of the
 * file and then tail bytes (or endlessly); checks status and message. */
static void expect_fifo(const char *what, size_t n, long tail, dd_status want, const char *substr, const dd_model *ref) {
    char dir[] = "/tmp/dd_test_loader_fifo_XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        CHECK(0, "%s: mkdtemp failed", what);
        return;
    }
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(mkfifo(path, 0600) == 0, "%s: mkfifo failed", what);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) { /* opens the FIFO for writing: blocks until the loader opens it */
        const int fd = open(path, O_WRONLY);
        if (fd < 0) _exit(1);
        reap(spawn_writer(fd, file_bytes, n, tail));
        _exit(0);
    }
    alarm(120); /* a loader reading the endless tail would never return */
    dd_model *m = NULL;
    const dd_status st = dd_model_load_file(path, &m);
    alarm(0);
    n_cases++;
    CHECK(st == want, "%s: status %d (%s), want %d; message: %s", what, (int)st, dd_strerror(st), (int)want,
          st ? dd_last_error() : "(none)");
    if (st) CHECK(strstr(dd_last_error(), substr) != NULL, "%s: message '%s' lacks '%s'", what, dd_last_error(), substr);
    if (m && ref) same_layers(what, ref, m);
    dd_model_free(m);
    reap(pid);
    unlink(path), rmdir(dir);
}

static void read_cases(void) {
    char want[160];
    dd_model *ref = NULL;
    CHECK(dd_model_load_memory(file_bytes, file_size, &ref) == DD_OK, "the file from memory: %s", dd_last_error());

    /* /dev/zero: a header length of 0, refused after 8 bytes (it read 2 GiB). */
    double t0 = now_s();
    expect_file("/dev/zero", "/dev/zero", DD_ERR_CORRUPT, "/dev/zero: header length 0: not a safetensors file");
    const double zero_s = now_s() - t0;
    CHECK(zero_s < 0.5, "/dev/zero took %.3f s to refuse", zero_s);

    /* A FIFO: the whole model; the model and an endless tail, of which the
     * loader reads nothing (it returns); the model cut in its data. */
    expect_fifo("FIFO, the model", file_size, 0, DD_OK, "", ref);
    expect_fifo("FIFO, the model then endless bytes", file_size, -1, DD_OK, "", ref);
    snprintf(want, sizeof want, "outside the %zu data bytes", data_len / 2);
    expect_fifo("FIFO, cut in the data", 8 + header_len + data_len / 2, 0, DD_ERR_CORRUPT, want, NULL);
    expect_fifo("FIFO, cut in the length", 5, 0, DD_ERR_CORRUPT, "file of 5 bytes is too short", NULL);

    /* A pipe shared with the caller: exactly the model's bytes are read,
     * the rest is still there for whoever reads on. */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe failed");
    static const char trailer[] = "the next file";
    unsigned char *both = malloc(file_size + sizeof trailer);
    memcpy(both, file_bytes, file_size);
    memcpy(both + file_size, trailer, sizeof trailer);
    const pid_t pid = spawn_writer(fds[1], both, file_size + sizeof trailer, 0);
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fds[0]);
    dd_model *m = NULL;
    alarm(120);
    CHECK(dd_model_load_file(path, &m) == DD_OK, "a pipe with more after the model: %s", dd_last_error());
    char rest[64] = {0};
    size_t got = 0;
    for (ssize_t r; got < sizeof rest && (r = read(fds[0], rest + got, sizeof rest - got)) > 0;) got += (size_t)r;
    alarm(0);
    CHECK(got == sizeof trailer && !memcmp(rest, trailer, sizeof trailer),
          "after the model the pipe holds %zu bytes ('%.*s'), want the %zu of '%s'", got, (int)got, rest,
          sizeof trailer, trailer);
    if (m) same_layers("a pipe with more after the model", ref, m);
    dd_model_free(m);
    close(fds[0]);
    reap(pid);
    free(both);

    /* Regular files: garbage appended is ignored (never read); a header
     * length over the cap and tensors reaching past 2 GiB are refused from
     * the header, before the data is read or allocated. */
    char tmp[] = "/tmp/dd_test_loader_XXXXXX";
    const int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp failed");
    if (fd < 0) goto done;
    CHECK(write(fd, file_bytes, file_size) == (ssize_t)file_size && write(fd, "garbage", 7) == 7, "write failed");
    close(fd);
    m = NULL;
    CHECK(dd_model_load_file(tmp, &m) == DD_OK, "the file with garbage appended: %s", dd_last_error());
    if (m) same_layers("the file with garbage appended", ref, m);
    dd_model_free(m);
    unsigned char len_only[8];
    put_u64le(len_only, (uint64_t)1 << 40);
    FILE *fp = fopen(tmp, "wb");
    CHECK(fp && fwrite(len_only, 1, 8, fp) == 8, "write failed");
    if (fp) fclose(fp);
    snprintf(want, sizeof want, "%s: header length 1099511627776 is over the 16777216-byte limit", tmp);
    expect_file("a header length of 2^40", tmp, DD_ERR_LIMIT, want);
    static const char far[] = "{\"__metadata__\":{\"format\":\"deepdream-graph-1\"},"
                              "\"w\":{\"dtype\":\"U8\",\"shape\":[1000000000,3],\"data_offsets\":[0,3000000000]}}";
    fp = fopen(tmp, "wb");
    put_u64le(len_only, sizeof far - 1);
    CHECK(fp && fwrite(len_only, 1, 8, fp) == 8 && fwrite(far, 1, sizeof far - 1, fp) == sizeof far - 1, "write failed");
    if (fp) fclose(fp);
    snprintf(want, sizeof want, "%s: the header's tensors reach 3000000000 bytes into the data, over the 2147483648-byte file limit", tmp);
    expect_file("tensors past 2 GiB", tmp, DD_ERR_LIMIT, want);
    unlink(tmp);
done:
    dd_model_free(ref);
}

static void positive_cases(const char *weights_path) {
    dd_model *def = NULL, *fromfile = NULL;
    CHECK(dd_model_load_default(&def) == DD_OK, "default model: %s", dd_last_error());
    CHECK(dd_model_load_file(weights_path, &fromfile) == DD_OK, "%s: %s", weights_path, dd_last_error());
    if (!def || !fromfile) {
        dd_model_free(def), dd_model_free(fromfile);
        return;
    }
    same_layers("file vs default", def, fromfile);
    CHECK(dd_model_layer_count(fromfile) == 114, "file: %d layers, want 114", dd_model_layer_count(fromfile));
    static const struct { const char *name; int channels; } known[] = {
        {"activation_1", 32}, {"conv2d_1", 32}, {"max_pooling2d_1", 64}, {"activation_5", 192}, {"mixed0", 256},
        {"mixed1", 288},      {"mixed2", 288},  {"mixed3", 768},         {"mixed4", 768},       {"mixed5", 768},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        CHECK(layer_channels(fromfile, known[i].name) == known[i].channels, "file: %s has %d channels, want %d",
              known[i].name, layer_channels(fromfile, known[i].name), known[i].channels);
    CHECK(layer_channels(fromfile, "batch_normalization_1") == -1, "batch norms are not user layers");
    float div[3], off[3];
    dd_model_input_mapping(fromfile, div, off);
    for (int c = 0; c < 3; c++)
        CHECK(div[c] == 127.5f && off[c] == -1.0f, "preprocess %d: %g, %g; want 127.5, -1", c, div[c], off[c]);

    static float in[N_IN];
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                in[(c * H + y) * W + x] = (float)(sin(0.1 * (c + 1) * x + 0.07 * y) * cos(0.13 * y - 0.05 * (c + 1) * x + c));
    static run ref, got;
    if (run_net("default", def, in, &ref)) {
        CHECK(ref.objective > 0 && isfinite(ref.objective), "default objective %g", ref.objective);
        CHECK(ref.stats[0].channels == 288 && ref.stats[1].channels == 768, "term channels %d, %d",
              ref.stats[0].channels, ref.stats[1].channels);
        if (run_net("file", fromfile, in, &got)) same_bits("file vs default", &got, &ref);

        double err;
        size_t subnormal;
        dd_model *m = load_variant("F32", reencode(ENC_F32, &err, &subnormal), def);
        if (m && run_net("F32", m, in, &got)) same_bits("F32 vs default U8", &got, &ref);
        dd_model_free(m);

        /* F16 decoding, exactly: the F16 file against an F32 file of the same rounded values. */
        static run f16;
        m = load_variant("F16", reencode(ENC_F16, &err, &subnormal), def);
        fprintf(stderr, "F16: max relative rounding of a weight %.3g, %zu subnormal halves\n", err, subnormal);
        CHECK(subnormal == 4, "F16: %zu subnormal halves, want the 4 put in", subnormal);
        const int have_f16 = m && run_net("F16", m, in, &f16);
        dd_model_free(m);
        m = load_variant("F32 of F16 values", reencode(ENC_F32_OF_F16, &err, &subnormal), def);
        if (have_f16 && m && run_net("F32 of F16 values", m, in, &got)) same_bits("F16 vs F32 of the F16 values", &f16, &got);
        dd_model_free(m);
        /* F16 against U8: F16 moves each weight by at most 2^-11 relative (4.9e-4). The
         * objective is a mean over many activations, where these independent errors
         * average out (measured 1.6e-4; bound 2e-3). The input gradient follows the ReLU
         * masks and max-pool winners, and units near a tie flip under such perturbations,
         * each flip rerouting its gradient: the gradient moves by a few percent in L2
         * (measured 4.4e-2; bound 0.1). A mis-decoded tensor moves both by O(1). */
        if (have_f16) close_runs("F16 vs default U8", &f16, &ref, 2e-3, 0.1);

        /* Node order: the same network, so the forward pass is bit-identical. The
         * backward pass sums branch gradients into a shared input in reverse runtime
         * order, which follows the topological sort and so the file's order: the
         * gradient may differ in the last bits (measured 2e-7 * max |g|; bound 1e-4). */
        m = load_variant("nodes reversed", reorder(1), def);
        if (m && run_net("reversed", m, in, &got)) same_up_to_summation_order("nodes reversed vs default", &got, &ref, 1e-4);
        dd_model_free(m);
        m = load_variant("nodes shuffled", reorder(0), def);
        if (m && run_net("shuffled", m, in, &got)) same_up_to_summation_order("nodes shuffled vs default", &got, &ref, 1e-4);
        dd_model_free(m);
    }
    dd_model_free(def);
    dd_model_free(fromfile);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../weights/inception_v3_mixed5.safetensors";
    if (util_read_file(path, (size_t)1 << 31, &file_bytes, &file_size)) {
        fprintf(stderr, "%s\n", dd_last_error());
        return 1;
    }
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | file_bytes[i];
    json_error_t err;
    header = json_loadb((const char *)file_bytes + 8, header_len, 0, &err);
    if (!header) {
        fprintf(stderr, "%s: header: %s\n", path, err.text);
        return 1;
    }
    data_section = file_bytes + 8 + header_len;
    data_len = file_size - 8 - header_len;

    container_cases();
    tensor_cases();
    graph_cases();
    concat_overflow_case();
    metadata_cases();
    pre_relu_cases("fuzz/corpus/model/torch_ops.safetensors");
    file_cases(path);
    read_cases();
    fprintf(stderr, "%d malformed cases run\n", n_cases);
    positive_cases(path);

    json_decref(header);
    free(file_bytes);
    return check_done("loader");
}
