/* deepdream: the public API.
 *
 * A pretrained convolutional network (by default InceptionV3 up to mixed5,
 * compiled into the library) and the gradient of an objective on its layers
 * with respect to the input image, the core of a DeepDream step.
 *
 * Conventions
 * - Every fallible function returns a dd_status; DD_OK is 0. On failure,
 *   dd_last_error() gives a one-line detail for the calling thread.
 * - Whatever dd_X_new / dd_X_load returns is released by dd_X_free;
 *   dd_X_free(NULL) is a no-op.
 * - Library code never prints, exits or aborts on bad input.
 * - Threads: every declaration says which calls may overlap ("Threads:").
 *   A loaded dd_model and a dd_guide are immutable: any number of threads
 *   may use one at once, and free it when all are done. A dd_net, dd_clip,
 *   y4m reader or writer, or dd_params being set is used by one thread at a
 *   time; different ones run at once freely. A dd_image may be read by any
 *   number of threads while none writes it (dd_dream, dd_clip_dream and
 *   dd_image_zoom write theirs). No call leaves process-wide state
 *   changed behind it (docs/ARCHITECTURE.md, "Threads"). The calls that
 *   compute (dd_dream, dd_clip_dream, dd_clip_resume, dd_guide_new,
 *   dd_net_forward, dd_net_gradient, dd_measure_speed) run on threads of
 *   the library's own, as many as the call's thread count, started by the
 *   call and joined before it returns; waiting, they spin briefly and then
 *   sleep, so they share the cores well with other work. No setting is
 *   read from the environment; the caller's OpenMP settings are not
 *   touched; OpenBLAS (when threaded) is held to one thread during the call
 *   and given its count back after.
 * - Images given to the network are planar float32 RGB (C = 3, then H, then
 *   W, "CHW") in the network's input space, per model and per channel (the
 *   built-in model: x / 127.5 - 1 for 0..255 input), see
 *   dd_model_input_mapping().
 */
#ifndef DEEPDREAM_H
#define DEEPDREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; project(deepdream VERSION ...) in
 * CMakeLists.txt holds the same numbers (tests/test_api.c checks them). */
#define DD_VERSION_MAJOR 0
#define DD_VERSION_MINOR 2
#define DD_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH (0.2.0: 200), as dd_version() gives
 * the library's. */
#define DD_VERSION_NUMBER (DD_VERSION_MAJOR * 10000 + DD_VERSION_MINOR * 100 + DD_VERSION_PATCH)
/* The same as text (a literal that scripts read from this line). */
#define DD_VERSION_STRING "0.2.0"

typedef enum dd_status {
    DD_OK = 0,
    DD_ERR_INVALID_ARG, /* bad parameter value, unknown layer name          */
    DD_ERR_NOMEM,       /* an allocation failed                             */
    DD_ERR_IO,          /* a file could not be opened or read               */
    DD_ERR_CORRUPT,     /* truncated or malformed file (model or image)     */
    DD_ERR_LIMIT,       /* a size over a documented limit                   */
    DD_ERR_MODEL,       /* unknown op, missing tensor, bad shape, cycle     */
    DD_ERR_CANCELLED,   /* a progress callback asked to stop                */
    DD_ERR_TOO_SMALL    /* input smaller than the network's deepest layer   */
} dd_status;

/* Fixed text for a status ("corrupt file"). Never NULL.
 * Threads: any. */
const char *dd_strerror(dd_status status);

/* Detail of the last failure on the calling thread, e.g.
 * "mixed9: no such layer". Every function returning a dd_status clears it
 * as it starts, so after a success it is the empty string. The text stays
 * until the next such call on this thread.
 * Threads: any (each thread has its own). */
const char *dd_last_error(void);

/* The version of the library as it was built, as DD_VERSION_NUMBER counts
 * it. A program built against one header and run with another library
 * (a shared one replaced) sees the mismatch:
 *     if (dd_version() != DD_VERSION_NUMBER) ...
 * Threads: any. */
unsigned dd_version(void);

/* Frees memory the library handed to the caller (dd_image_save_memory's
 * buffer). Use it rather than free(): a program may link another C
 * runtime's malloc than the library's. NULL is a no-op.
 * Threads: any. */
void dd_free(void *p);

/* ---- Models ---------------------------------------------------------- */

typedef struct dd_model dd_model;

/* Loads the model compiled into the library (InceptionV3 up to mixed5,
 * weights from npm nsfwjs@4.3.0; see weights/README.md).
 * Threads: any. */
dd_status dd_model_load_default(dd_model **out);

/* Loads a safetensors file whose __metadata__ carries a deepdream graph
 * (format "deepdream-graph-1"). Tensors may be U8 (with per-tensor
 * min/scale), F16 or F32. Everything is validated before it is used; a
 * malformed file gives DD_ERR_CORRUPT, DD_ERR_LIMIT or DD_ERR_MODEL. Read
 * in bounded steps, so a pipe or FIFO works too: the header length (0 is
 * DD_ERR_CORRUPT, over 16 MiB DD_ERR_LIMIT), the header, then exactly the
 * bytes its tensors reach (over 2 GiB: DD_ERR_LIMIT); what follows the
 * last tensor is never read.
 * Threads: any. */
dd_status dd_model_load_file(const char *path, dd_model **out);

/* Same as dd_model_load_file, from memory. The bytes are not kept.
 * Threads: any. */
dd_status dd_model_load_memory(const void *data, size_t size, dd_model **out);

/* Threads: once no other thread uses the model (nor a net, guide or clip
 * made from it). */
void dd_model_free(dd_model *model);

/* Layers a user may name in an objective: the file's list (the built-in
 * model: mixed0..mixed5, activation_N, conv2d_N, max_pooling2d_N,
 * average_pooling2d_N). A layer is its graph node's output; a convolution's
 * name (conv2d_N, conv1_1) gives its value before the ReLU that follows it,
 * with any batch norm folded in (conv2d_N is activation_N before the ReLU).
 * Index 0 .. dd_model_layer_count()-1, in graph order.
 * Threads: any, on a shared model. */
int dd_model_layer_count(const dd_model *model);
const char *dd_model_layer_name(const dd_model *model, int index);
int dd_model_layer_channels(const dd_model *model, int index);

/* The objective the file recommends, as a spec for dd_terms_parse (a
 * converted torchvision GoogLeNet: "inception4c"); for a file without one,
 * dd_default_layers() when this model has those layers, else its last
 * layer. The string lives as long as the model.
 * Threads: any, on a shared model. */
const char *dd_model_default_layers(const dd_model *model);

/* The input mapping per channel (R, G, B) (it replaces 0.1's one-pair
 * dd_model_preprocess, renamed so that an old caller fails to link rather
 * than have three floats written into one): network input c = pixel /
 * divisor[c] + offset[c], for pixels in 0..255 (the built-in model: 127.5
 * and -1 for all three; a torchvision network normalised with ImageNet's
 * mean and std: 255 std[c] and -mean[c] / std[c]). Either may be NULL.
 * Threads: any, on a shared model. */
void dd_model_input_mapping(const dd_model *model, float divisor[3], float offset[3]);

/* ---- Objectives and gradients ----------------------------------------- */

/* One term of an objective: weight * mean of a layer's activations, over
 * all channels (channel = -1) or over one channel. An objective is the sum
 * of its terms. A term with weight 0 contributes nothing but still reports
 * its layer's statistics (dd_net_term_stats). */
typedef struct dd_term {
    const char *layer; /* a name from dd_model_layer_name()            */
    int channel;       /* -1: all channels; else 0 .. channels-1       */
    float weight;
} dd_term;

/* A network planned for one objective, one input size and a thread count.
 * Planning sizes every buffer once and allocates one arena: nothing is
 * allocated by dd_net_forward / dd_net_gradient. The net only runs the
 * layers the objective needs (up to the deepest term). The model must
 * outlive the net. threads <= 0 means one per online core. An input too
 * small for the deepest layer of the objective is DD_ERR_TOO_SMALL. */
typedef struct dd_net dd_net;

/* Threads: any, on a shared model; the net is then used by one thread at a
 * time. */
dd_status dd_net_new(const dd_model *model, const dd_term *terms, int n_terms,
                     int height, int width, int threads, dd_net **out);
/* Threads: once no other thread uses the net. */
void dd_net_free(dd_net *net);

/* Fast mode: the convolutions other than 3x3 stride 1 (and the first
 * layers' forward) multiply in lower precision where that is faster on
 * this CPU (checked at run time): bfloat16 with float32 sums on AMD's
 * AVX512-BF16 CPUs, 16-bit integers with exact sums on AVX2-only CPUs. The
 * input gradient stays close to the float32 one (correlation above 0.99 on
 * photos, see docs/PERFORMANCE.md) but is no longer exact. Where no such
 * kernel is faster (plain, and 512-bit FMAs on Intel's AVX-512 CPUs) the
 * net stays float32 and dd_net_fast reports 0. Packs the weights once
 * (memory about the size of the model's float32 weights).
 * Threads: one thread at a time per net. */
dd_status dd_net_set_fast(dd_net *net, int fast);
/* 1 if the net now runs the fast kernels.
 * Threads: one thread at a time per net. */
int dd_net_fast(const dd_net *net);
/* The fast kernels this CPU runs ("avx512bf16" or "int16"), or NULL if
 * none (fast mode is then the float32 one).
 * Threads: any. */
const char *dd_fast_kernel(void);

/* The vector kernels nets planned now run: "plain" (portable C and
 * OpenBLAS), "avx2" (AVX2 + FMA), "avx512" or "avx512bf16" (which also has
 * the fast mode): the best the CPU has, capped by the environment variable
 * DD_CPU set to one of those names. DD_CPU only lowers the level, to test
 * or time a lower path on a bigger CPU. Results are the same bytes for any
 * thread count at every level; levels may differ from each other in the
 * last bits. *name (may be NULL) gets the level in use; the return is
 * DD_ERR_INVALID_ARG when DD_CPU holds something else (it is then
 * ignored). DD_CPU is read once.
 * Threads: any. */
dd_status dd_cpu_kernels(const char **name);

/* Forward pass only. input: 3 x height x width floats (network input
 * space). *objective receives the objective value (may be NULL).
 * Threads: one thread at a time per net; any number of nets at once. */
dd_status dd_net_forward(dd_net *net, const float *input, double *objective);

/* Forward pass, then backward to the input only: grad (3 x height x width
 * floats) receives d objective / d input. *objective may be NULL.
 * Threads: one thread at a time per net; any number of nets at once. */
dd_status dd_net_gradient(dd_net *net, const float *input, float *grad,
                          double *objective);

/* Statistics of term i's tensor from the last forward pass, accumulated in
 * double in a fixed order: shape (channels is 1 for a one-channel term),
 * sum, mean and max. */
typedef struct dd_layer_stats {
    int channels, height, width;
    double sum, mean, max;
} dd_layer_stats;
/* Threads: one thread at a time per net. */
dd_status dd_net_term_stats(const dd_net *net, int term, dd_layer_stats *out);

/* Floating-point operations of one forward and one backward pass as the
 * net's kernels run them (multiply and add counted as two; a Winograd
 * convolution counts its 36 products per 4x4 block and channel pair, not
 * the direct convolution's 144, nor its transforms), for benchmarks.
 * Threads: one thread at a time per net. */
void dd_net_flops(const dd_net *net, double *forward, double *backward);

/* Bytes of the net's arena (activations, masks, scratch).
 * Threads: one thread at a time per net. */
size_t dd_net_arena_bytes(const dd_net *net);


/* ---- Objectives from text --------------------------------------------- */

/* Parses "NAME[:CHANNEL][=WEIGHT],..." (e.g. "mixed3", "mixed4:97",
 * "mixed2=0.5,mixed4=1") into at most max_terms terms; *n_terms receives
 * the count. Layer pointers point into the model (valid while it lives).
 * An unknown name is DD_ERR_INVALID_ARG with a message naming it.
 * Threads: any, on a shared model. */
dd_status dd_terms_parse(const dd_model *model, const char *spec, dd_term *terms,
                         int max_terms, int *n_terms);

/* ---- Images ------------------------------------------------------------ */

/* A decoded image: width x height pixels of 1 (grey), 2 (grey + alpha),
 * 3 (RGB) or 4 (RGBA) channels at 8 or 16 bits per sample. */
typedef struct dd_image dd_image;

typedef enum dd_format {
    DD_FORMAT_UNKNOWN = 0,
    DD_FORMAT_PNG,
    DD_FORMAT_JPEG,
    DD_FORMAT_PNM, /* P5 (grey) or P6 (RGB), maxval up to 65535 */
    DD_FORMAT_PAM, /* P7: GRAYSCALE, GRAYSCALE_ALPHA, RGB, RGB_ALPHA */
    DD_FORMAT_PGM, /* writing only: P5 always (colour becomes luma)      */
    DD_FORMAT_PPM  /* writing only: P6 always (grey repeated into RGB)   */
} dd_format;

/* Decodes PNG, JPEG, PNM or PAM, recognised by their first bytes (never by
 * a name). Limits are checked from the header, before the pixels are
 * allocated: width x height over max_pixels (0: no limit), a side over
 * 65535, or a progressive JPEG of over 500 scans is DD_ERR_LIMIT. A
 * truncated or corrupt file is DD_ERR_CORRUPT, never a partial picture.
 * EXIF orientation (JPEG APP1, PNG eXIf) is applied to the pixels; an ICC
 * profile is kept and written again to PNG and JPEG outputs (PNM and PAM
 * have no place for it). CMYK/YCCK JPEGs are converted to RGB.
 * Threads: any. */
dd_status dd_image_load_memory(const void *data, size_t size, uint64_t max_pixels,
                               dd_image **out);

/* What the first bytes of an image file say, before the rest is read. */
typedef struct dd_image_info {
    dd_format format;   /* PNG, JPEG, PNM or PAM                          */
    int width, height;  /* as stored (before any EXIF orientation); 0 when
                         * the bytes given end before the header does     */
    uint64_t max_bytes; /* the most bytes the decoder reads from a sound
                         * file of this size: a PNM's exact length, else
                         * 64 MiB of metadata plus twice the largest raw
                         * size of its pixels                             */
} dd_image_info;

/* Parses only the header from the first size bytes of a file (a reader
 * calls it on what it has so far, and again with more bytes while width is
 * 0). DD_ERR_LIMIT when the header's size is over the limits of
 * dd_image_load_memory (max_pixels, 0: none), DD_ERR_CORRUPT when what is
 * there is malformed or no image format.
 * Threads: any. */
dd_status dd_image_probe(const void *data, size_t size, uint64_t max_pixels, dd_image_info *info);

/* Reads the file at path and decodes it as dd_image_load_memory does
 * (max_pixels likewise; 0: no limit). Read in bounded steps, as the
 * command line reads its inputs, so a pipe or FIFO works too: first up to
 * 64 KiB, doubling while dd_image_probe has no complete header yet (at
 * most 65 MiB), so that a size over the limits is DD_ERR_LIMIT before the
 * rest is read; then at most one byte more than the header's max_bytes. A
 * PNG or JPEG longer than that is DD_ERR_LIMIT; a PNM or PAM is cut at
 * its exact length (what follows, another image of a stream, is not
 * read). Bytes that are no image, a truncated or corrupt file: what
 * dd_image_load_memory says of them. A file that cannot be opened or read
 * and a directory are DD_ERR_IO. Every message names the path
 * ("photo.png: No such file or directory"). *out is freed with
 * dd_image_free; NULL on failure.
 * Threads: any (the read blocks). */
dd_status dd_image_load_file(const char *path, uint64_t max_pixels, dd_image **out);

/* A new image from raw pixels: width x height pixels of channels (1 grey,
 * 2 grey + alpha, 3 RGB, 4 RGBA) samples each, interleaved, rows packed
 * with no padding, top row first; depth 8 (unsigned char) or 16 (uint16_t
 * in the machine's own byte order). pixels (width x height x channels x
 * depth / 8 bytes) is copied, not kept; NULL gives an image of zeros.
 * width or height below 1, channels outside 1..4 or depth not 8 or 16 is
 * DD_ERR_INVALID_ARG; a side over 65535 DD_ERR_LIMIT (as a decoded
 * image's). The image has no format (DD_FORMAT_UNKNOWN), comment or ICC
 * profile. *out is freed with dd_image_free; NULL on failure.
 * Threads: any. */
dd_status dd_image_new(int width, int height, int channels, int depth, const void *pixels, dd_image **out);

/* The image's samples in the layout dd_image_new takes, and their size in
 * bytes (width x height x channels x depth / 8). The pointer is valid
 * while the image lives; dd_dream, dd_image_zoom and dd_clip_dream write
 * their results into it. NULL and 0 for a NULL image. Reading it from
 * several threads is safe while nothing writes the image.
 * Threads: any, while no thread writes the image. */
const void *dd_image_pixels(const dd_image *image);
size_t dd_image_bytes(const dd_image *image);

/* Encodes to a new buffer (*data, *size; release it with dd_free, which
 * is free() in this build; on failure *data is NULL). quality is
 * for JPEG (1..100). comment (may be NULL) is stored as PNG tEXt
 * "Comment" / JPEG COM / PNM comment.
 * Threads: any, while no thread writes the image. */
dd_status dd_image_save_memory(const dd_image *image, dd_format format, int quality,
                               const char *comment, unsigned char **data, size_t *size);

/* Threads: once no other thread uses the image. */
void dd_image_free(dd_image *image);
/* The image's size, channels (1..4), bits per sample (8 or 16) and the
 * format it was decoded from (DD_FORMAT_UNKNOWN for dd_image_new's). For
 * a NULL image: 0, or DD_FORMAT_UNKNOWN (and NULL for the comment).
 * Threads: any, while no thread writes the image. */
int dd_image_width(const dd_image *image);
int dd_image_height(const dd_image *image);
int dd_image_channels(const dd_image *image);
int dd_image_depth(const dd_image *image);
dd_format dd_image_format(const dd_image *image); /* what it was decoded from */
/* The file's comment (PNG uncompressed tEXt "Comment", JPEG's first COM
 * marker before the first scan, the first '#' line of a PNM or PAM header),
 * at most 64 KiB of it; NULL when there is none. Valid while image lives.
 * Threads: any, while no thread writes the image. */
const char *dd_image_comment(const dd_image *image);

/* Format from a file name's extension or from a "FMT:" prefix name:
 * png, jpg/jpeg, ppm (DD_FORMAT_PPM), pgm (DD_FORMAT_PGM), pnm (P5 or P6,
 * whichever the image is), pam; case-insensitive.
 * Threads: any. */
dd_format dd_format_from_name(const char *name);

/* ---- Video: YUV4MPEG2 (y4m) streams ------------------------------------ */

/* A stream of raw frames as ffmpeg and mjpegtools write it ("YUV4MPEG2 W H
 * F A I C X..." then "FRAME" lines, each followed by the Y, Cb and Cr
 * planes). Supported: 8-bit C420jpeg (also C420 without a suffix, and no C
 * field), C420mpeg2, C420paldv, C422, C444 and Cmono.
 *
 * Colour: BT.601 (Kr 0.299, Kb 0.114) in limited range (Y 16..235, Cb and
 * Cr 16..240) unless the header says XCOLORRANGE=FULL (0..255). Reading,
 * chroma is upsampled bilinearly from where its samples sit: 420jpeg
 * between the luma samples both ways, 420mpeg2 on the left column of each
 * pair and between the rows, 420paldv on the left column with Cr on the
 * first and Cb on the second row of each pair, 422 on the left column.
 * Writing, each chroma sample is the average of the luma-sized chroma
 * around where it sits: the 2 (or 2x2) samples it lies between, or
 * 1/4, 1/2, 1/4 over the column or row it sits on and its two neighbours.
 * Mono frames read as R = G = B = the luma. Both ways round to the nearest
 * level and clamp. */

/* Reads up to size bytes into buf: the count read, 0 at the end of the
 * stream, -1 on an error (errno set, as read(2) sets it). */
typedef long (*dd_read_fn)(void *user, void *buf, size_t size);
/* Writes all size bytes of data: 0 on success, -1 on an error (errno set). */
typedef int (*dd_write_fn)(void *user, const void *data, size_t size);

typedef struct dd_y4m_reader dd_y4m_reader;
typedef struct dd_y4m_writer dd_y4m_writer;

/* What a stream's header says. */
typedef struct dd_y4m_info {
    int width, height;
    const char *chroma;         /* "420jpeg", "420mpeg2", "420paldv", "422",
                                 * "444" or "mono"                        */
    int fps_num, fps_den;       /* F: frames per second as a ratio; 0:0
                                 * when the header has none                */
    int aspect_num, aspect_den; /* A: the pixels' aspect; 0:0 unknown     */
    char interlace;             /* I: 'p', 't', 'b', 'm'; '?' when absent  */
    int full_range;             /* XCOLORRANGE=FULL                        */
    long frames;                /* frames read so far                      */
    size_t header_bytes;        /* the header line with its newline        */
    size_t frame_bytes;         /* a frame's planes, after its FRAME line  */
} dd_y4m_info;

/* Reads and checks the stream's header through read (called with user),
 * byte by byte up to its newline: nothing of the first frame is read.
 * W x H over max_pixels (0: no limit) or a side over 65535 is DD_ERR_LIMIT
 * before anything image-sized is allocated; a header that is no YUV4MPEG2
 * header, lacks W or H, repeats a field, holds an unknown field or value, or
 * names a chroma format other than those above is DD_ERR_CORRUPT; a failed
 * read DD_ERR_IO. Unknown X fields are kept, not interpreted. The reader
 * holds one frame's bytes; free it with dd_y4m_reader_free.
 * Threads: any; the reader is then used by one thread at a time. */
dd_status dd_y4m_reader_new(dd_read_fn read, void *user, uint64_t max_pixels, dd_y4m_reader **out);
/* Threads: one thread at a time per reader. */
void dd_y4m_reader_free(dd_y4m_reader *reader);
void dd_y4m_reader_info(const dd_y4m_reader *reader, dd_y4m_info *info);

/* The next frame as a new 8-bit RGB image in *frame (free it with
 * dd_image_free), or *frame = NULL and DD_OK at the end of the stream
 * (the end falls before a FRAME line). A frame cut short or a bad FRAME
 * line is DD_ERR_CORRUPT, counting frames from 1: "frame 12: truncated
 * after 3000 of 4608 bytes"; the frames returned before it stay valid.
 * Parameters on a FRAME line are read and not kept.
 * Threads: one thread at a time per reader. */
dd_status dd_y4m_read_frame(dd_y4m_reader *reader, dd_image **frame);

/* A stream in the format of reader's (size, chroma, range) whose header is
 * reader's header line byte for byte: F, A, I, C and every X field kept.
 * Writes the header through write (called with user) at once; DD_ERR_IO
 * when that fails. The writer holds one frame's planes; free it with
 * dd_y4m_writer_free (which writes nothing).
 * Threads: any, while no thread reads from reader; the writer is then used
 * by one thread at a time. */
dd_status dd_y4m_writer_new(const dd_y4m_reader *reader, dd_write_fn write, void *user, dd_y4m_writer **out);
/* Threads: once no other thread uses the writer. */
void dd_y4m_writer_free(dd_y4m_writer *writer);
/* A writer of a stream of one's own: header is the header line without
 * its newline ("YUV4MPEG2 W640 H360 F25:1 Ip A1:1 C420jpeg"), checked as
 * a reader checks one (DD_ERR_INVALID_ARG when it would refuse it), and
 * written at once.
 * Threads: any; the writer is then used by one thread at a time. */
dd_status dd_y4m_writer_new_header(const char *header, dd_write_fn write, void *user, dd_y4m_writer **out);

/* Converts frame (8-bit; grey or RGB, any alpha ignored; the stream's
 * width and height, else DD_ERR_INVALID_ARG) and writes "FRAME\n" and its
 * planes in one call of write; DD_ERR_IO when that fails.
 * Threads: one thread at a time per writer; frame only read. */
dd_status dd_y4m_write_frame(dd_y4m_writer *writer, const dd_image *frame);


/* ---- Guides ------------------------------------------------------------ */

/* A guide (google/deepdream's objective_guide) steers the dream towards
 * what the network sees in another picture. At each term's layer L, with
 * x_i the activation vector (all channels) of the dream at position i and
 * y_j the guide's, the term is weight * sum_i max_j <x_i, y_j>; its
 * gradient at L is weight * y_j* at each position i, j* the best match (the
 * first of equals). The guide is seen once, at its own size or brought down
 * to 512 pixels on its long side; it keeps one layer's planes per term (a
 * few MiB). Matching costs a GEMM of positions x guide positions x channels
 * per layer and step. Immutable once made: any number of nets and threads
 * may use one guide. */
typedef struct dd_guide dd_guide;

/* What the network sees in image at each term's layer. Terms are whole
 * layers: a term with a channel is DD_ERR_INVALID_ARG. A guide too small
 * for the deepest layer is DD_ERR_TOO_SMALL. threads as for dd_net_new. The
 * model must outlive the guide.
 * Threads: any, on a shared model and image; the guide is then shared
 * freely. */
dd_status dd_guide_new(const dd_model *model, const dd_term *terms, int n_terms, const dd_image *image,
                       int threads, dd_guide **out);
/* Threads: once no net uses the guide. */
void dd_guide_free(dd_guide *guide);

/* The net's objective becomes the guide's (NULL: the plain one again). The
 * guide must have been made for the same model and the same terms (layers
 * in the same order), else DD_ERR_INVALID_ARG. The guide must outlive its
 * use by the net.
 * Threads: one thread at a time per net; the guide may be shared. */
dd_status dd_net_set_guide(dd_net *net, const dd_guide *guide);

/* ---- The dream ------------------------------------------------------- */

typedef struct dd_params {
    size_t size;          /* sizeof(dd_params) in the program's header,   *
                           * set by dd_params_init: fields are only ever  *
                           * appended, so a library reads the ones the    *
                           * program knows and takes defaults for the     *
                           * rest; never set it by hand                   */
    const dd_term *terms; /* the objective; NULL: the default layers      */
    int n_terms;
    int octaves;          /* scales, smallest first; 0: as many as bring  *
                           * the smallest one's long side to at most 200   *
                           * pixels (6 for 1024x768, 10 for 4000x3000)     *
                           * (0)                                           */
    float octave_scale;   /* size ratio between octaves (1.4)             */
    int steps;            /* gradient steps per octave (10)               */
    float step_size;      /* in network input units, [-1, 1] (0.02)       */
    int jitter;           /* random roll of up to this many pixels (32)   */
    int tile;             /* gradient tile side in pixels (1024)          */
    uint64_t seed;        /* same seed + input = same output (0)          */
    int threads;          /* <= 0: one per online core (0)                */
    int max_size;         /* > 0: dream at most this long side, then     *
                           * carry the detail up to the full size (0)     */
    int fast;             /* bfloat16 products where the CPU has them,    *
                           * see dd_net_set_fast; 0: float32 (1)           */
    int (*should_stop)(void *user); /* polled between the network's       *
                           * layers on the calling thread; nonzero ends    *
                           * the dream mid-step (DD_ERR_CANCELLED). NULL:  *
                           * only the progress callback stops it (NULL)    */
    const dd_guide *guide; /* dream towards a guide's features, made by   *
                           * dd_guide_new for this model and objective     *
                           * (the default layers when terms is NULL)       *
                           * (NULL)                                        */
    const char *layers;   /* the objective as dd_terms_parse reads it,    *
                           * used when terms is NULL; NULL: the model's    *
                           * default (dd_model_default_layers) (NULL)      */
    const dd_image *mask; /* where to dream: white fully, black not at    *
                           * all (those pixels keep the input's exact     *
                           * samples), grey in between. Any size (it is   *
                           * stretched to the image's), 1-4 channels, 8   *
                           * or 16 bits; colour is read as BT.601 luma,   *
                           * the mask's alpha is ignored. Read only; it   *
                           * must outlive the call. NULL: everywhere      *
                           * (NULL)                                       */
    int mask_alpha;       /* the dreamed image's own alpha is the mask    *
                           * (0 transparent = black); an image without    *
                           * alpha is DD_ERR_INVALID_ARG, and so is this  *
                           * together with mask (0)                       */
    int invert_mask;      /* white and black of the mask swapped; without *
                           * a mask or mask_alpha DD_ERR_INVALID_ARG (0)  */
    int preserve_colors;  /* the dream changes only luminance: output is  *
                           * the dream's BT.601 luma (Y, within half a    *
                           * level) with the photo's chroma (Cb, Cr),     *
                           * exactly: one change on R, G and B, clamped   *
                           * as one. No effect on grey (0)                */
    float blend;          /* clips (dd_clip): how much of the previous    *
                           * frame's dream detail, carried along the       *
                           * optical flow, a frame starts from, 0..1; 0:   *
                           * every frame dreamed alone (0.5)               */
    int frame_steps;      /* clips: steps per octave for every frame      *
                           * after the first; 0: half of steps, rounded   *
                           * up (0)                                        */
    int reserved;         /* 0. The struct ends with no padding, so its   *
                           * size says exactly which fields a program     *
                           * knew; a later field takes this place (0)     */
} dd_params;

/* Sets *p, size bytes (sizeof *p), to the defaults above and p->size to
 * the bytes this library fills: size itself, or the library's own struct's
 * size when a program built against a newer header gives more (the rest
 * zeroed and never read). DD_ERR_INVALID_ARG for NULL or a size smaller
 * than any dd_params. Every function taking a dd_params
 * rejects one that did not come from here (DD_ERR_INVALID_ARG).
 * Threads: any; p is written. */
dd_status dd_params_init(dd_params *p, size_t size);

/* The defaults above, as a value. Inline, so that sizeof is the
 * program's: a program built against this header keeps working with a
 * later library whose dd_params has grown. Threads: any. */
#if defined(__cplusplus) || (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L)
#define DD_INLINE static inline
#elif defined(__GNUC__)
#define DD_INLINE static __inline__
#else
#define DD_INLINE static
#endif
DD_INLINE dd_params dd_params_default(void) {
    dd_params p;
    dd_params_init(&p, sizeof p);
    return p;
}

/* Sets one parameter from text, as the command line's long option of the
 * same name reads it: "layers" (the string itself is kept: it must live as
 * long as p is used), "octaves", "octave-scale", "steps", "step-size",
 * "jitter", "tile", "seed", "max-size", "threads" (0 or "auto": one per
 * online core), "blend", "frame-steps", "invert-mask" and
 * "preserve-colors" (0 or 1), and "arithmetic" (float32; fast, avx512bf16
 * or int16 for fast mode). A value out of range, not a number or
 * an unknown key is DD_ERR_INVALID_ARG naming them ("steps: 'x' is not a
 * number in 0..100000"), p unchanged.
 * Threads: any; p is written: one thread at a time per p. */
dd_status dd_params_set(dd_params *p, const char *key, const char *value);

/* Presets: named looks for a model, chosen by eye (docs/PRESETS.md).
 * Threads: any. */
int dd_preset_count(void);
/* Preset index's name, one-line description, the model it is made for
 * ("built-in", or NULL for any model), its objective (layers, NULL: the
 * model's default) and the rest of its settings as "key=value ..." pairs
 * for dd_params_set. Any pointer may be NULL; the strings are static.
 * DD_ERR_INVALID_ARG for an index outside 0 .. count-1.
 * Threads: any. */
dd_status dd_preset_info(int index, const char **name, const char **description, const char **model,
                         const char **layers, const char **settings);
/* Sets the preset's objective (p->layers, static) and settings on p,
 * leaving the other fields as they are; an unknown name is
 * DD_ERR_INVALID_ARG, p unchanged.
 * Threads: any; p is written: one thread at a time per p. */
dd_status dd_params_preset(dd_params *p, const char *name);

/* The default objective, as a spec for dd_terms_parse.
 * Threads: any. */
const char *dd_default_layers(void);

/* Called before each step; return nonzero to stop (DD_ERR_CANCELLED). */
typedef int (*dd_progress_fn)(void *user, int octave, int octaves, int step, int steps);

/* Dreams image in place: its colour channels change, alpha is untouched,
 * grey stays grey, the depth stays. Memory is bounded by the tile size
 * beyond a few float copies of the image, whatever the octave count (each
 * octave's net is planned when the octave starts). An image too small for
 * the objective's deepest layer, at the size max_size dreams it at, is
 * DD_ERR_TOO_SMALL with a message naming the image, that layer and the
 * least size it needs ("image 1x5000 is too small for mixed4 (needs at
 * least 43x43)"). params->should_stop, when set, is called with user (the
 * progress callback's pointer) on the calling thread between the network's
 * layers, between tiles and between bands of the image-sized work; nonzero
 * ends the dream within about one layer's time with DD_ERR_CANCELLED. On
 * any failure, cancellation included, the image is left unchanged: its
 * pixels are written only after everything that can fail. A mask costs one
 * float plane at the image's size and one at the largest octave's; each
 * step's update is multiplied by the mask at that octave's size (the step
 * is still normalised by the whole image's gradient).
 * Threads: any, on a shared model, params and guide; the image is written,
 * so no other thread may use it during the call. Dreams on several threads
 * at once each run their own team of threads. */
dd_status dd_dream(const dd_model *model, const dd_params *params, dd_image *image,
                   dd_progress_fn progress, void *user);

/* ---- Clips: video frames and the infinite zoom ------------------------ */

/* A clip: frames of one size dreamed one after another. The nets are
 * planned and the weights packed once, on the first frame, and kept (the
 * memory of every octave's net at once, about twice the largest one's),
 * so each frame costs only its steps. With params.blend > 0 a frame starts
 * from its photo plus blend x the previous frame's detail (its dream minus
 * its photo), carried to where the optical flow from the previous frame
 * says each point went; where the flow both ways disagrees (a point
 * uncovered or hidden) no detail is carried. The patterns then stay on the
 * objects instead of flickering. params (copied; what its pointers point
 * to must outlive the clip) as for dd_dream. DD_ERR_TOO_SMALL for a size
 * the objective cannot dream. Free with dd_clip_free. One thread at a time
 * per clip. */
typedef struct dd_clip dd_clip;
/* Threads: any, on a shared model and params; the clip is then used by one
 * thread at a time. */
dd_status dd_clip_new(const dd_model *model, const dd_params *params, int width, int height, dd_clip **out);
/* Dreams the clip's next frame in place (RGB or grey, 8 or 16 bits, the
 * clip's size), with params.steps for the first frame and
 * params.frame_steps for the rest. A frame of another size is
 * DD_ERR_INVALID_ARG. Failed or cancelled: the frame as it was, and the
 * clip as before the call. The same bytes for any thread count.
 * Threads: one thread at a time per clip; the frame is written. */
dd_status dd_clip_dream(dd_clip *clip, dd_image *frame, dd_progress_fn progress, void *user);
/* Goes on from a frame dreamed earlier (a sequence resumed): the clip's
 * next frame carries the detail of dreamed (photo's dream, as written)
 * along the flow from photo, as if the clip had just dreamed it. Both of
 * the clip's size.
 * Threads: one thread at a time per clip. */
dd_status dd_clip_resume(dd_clip *clip, const dd_image *photo, const dd_image *dreamed);
/* Threads: once no other thread uses the clip. */
void dd_clip_free(dd_clip *clip);

/* The image zoomed by zoom (> 1 enlarges: the view moves in) and turned by
 * degrees (counter-clockwise) about its centre, in place, bilinear; what
 * comes from outside the image repeats its edge. zoom 0.1..10. The
 * infinite zoom feeds each dream back through this.
 * Threads: the image is written: no other thread may use it during the call. */
dd_status dd_image_zoom(dd_image *image, float zoom, float degrees);

/* ---- Planning a dream without dreaming ------------------------------- */

/* One octave of a plan. */
typedef struct dd_octave_plan {
    int width, height;           /* the image at this octave               */
    int tiles_x, tiles_y;        /* tiles across and down                  */
    int tile_width, tile_height; /* one tile, its margins included         */
    double flops;                /* one forward and backward pass of a tile's
                                  * net, as dd_net_flops counts them       */
} dd_octave_plan;

#define DD_MAX_OCTAVES 32

typedef struct dd_dream_plan {
    int n_octaves;                          /* the octaves dreamed, smallest
                                             * first; those too small for the
                                             * objective are left out         */
    dd_octave_plan octave[DD_MAX_OCTAVES];
    double passes;                          /* tile passes (forward and
                                             * backward): steps x tiles,
                                             * summed over the octaves        */
    double flops;                           /* all those passes' FLOPs       */
    uint64_t peak_bytes;                    /* see dd_dream_plan_for          */
} dd_dream_plan;

/* What dd_dream(model, params, image) would do with an image of width x
 * height, channels (1..4) and depth (8 or 16) as dd_image_width() etc. give
 * them, planned by the same code as the dream but without running it: the
 * octaves and their tiles, the FLOPs, and peak_bytes, the most memory the
 * dream's own buffers hold resident at once: the image's samples, the two
 * float planes of the dream (24 bytes a pixel at the largest size reached),
 * the tile buffers, the largest octave's net arena while it steps and the
 * packed weights. Not counted: the model (already loaded), the program
 * and its libraries, the encoded file, and a guide's matching buffers and
 * GEMMs (params->guide; the plan is the unguided dream's). Nets are planned from shapes only:
 * nothing image-sized is allocated. Errors are dd_dream's, with the same
 * messages (an image too small for the objective is DD_ERR_TOO_SMALL).
 * Threads: any, on a shared model and params. */
dd_status dd_dream_plan_for(const dd_model *model, const dd_params *params, int width, int height, int channels,
                            int depth, dd_dream_plan *out);

/* How fast this machine runs the network for params' objective, threads
 * and fast mode: a tile's pass (forward and backward) takes
 * seconds_per_pass plus its FLOPs (as dd_net_flops counts them) divided by
 * flops_per_second; setup_seconds is planning and packing a net once. */
typedef struct dd_speed {
    double flops_per_second;
    double seconds_per_pass;
    double setup_seconds;
} dd_speed;

/* Measures dd_speed on this machine now: input gradients of a 128x128 and
 * a 256x256 net (larger when the objective needs it), each timed for an
 * eighth of a second (at most 8 passes) after one warm-up, and the line
 * through the two. About half a second in all on a desktop CPU; like any
 * timing it follows the machine's load, other dreams included.
 * Threads: any, on a shared model and params. */
dd_status dd_measure_speed(const dd_model *model, const dd_params *params, dd_speed *out);

/* A dream's estimated seconds: setup_seconds + passes x seconds_per_pass +
 * flops / flops_per_second. The image-sized work between passes (the
 * step's update, resizing between octaves), reading and writing the file
 * are left out. 0 when speed has no rate.
 * Threads: any. */
double dd_dream_plan_seconds(const dd_dream_plan *plan, const dd_speed *speed);

#ifdef __cplusplus
}
#endif
#endif
