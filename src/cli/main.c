/* deepdream: the command line. Parses options, reads the input (a file or
 * standard input), dreams it, writes the output atomically (a temporary file
 * renamed into place) or to standard output. The only code that prints or
 * exits. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deepdream.h"

enum { EXIT_USAGE = 2, MAX_TERMS = 64 };

static const char *prog = "deepdream";

typedef struct options {
    dd_params params;
    const char *layers, *model_path, *input, *output;
    int quality, quiet, list_layers;
    unsigned long long max_pixels;
} options;

static void usage(FILE *to) {
    dd_params d = dd_params_default();
    fprintf(to,
            "usage: deepdream [OPTIONS] INPUT OUTPUT\n"
            "Dreams INPUT (PNG, JPEG, PNM or PAM; '-' for standard input) into OUTPUT\n"
            "(format from its extension or a FMT: prefix: png:, jpg:, ppm:, pam:; '-' or\n"
            "FMT:- for standard output).\n\n"
            "  -l, --layers SPEC       objective: NAME[:CHANNEL][=WEIGHT],... (default %s)\n"
            "      --list-layers       print the model's layers and their channel counts\n"
            "  -o, --octaves N         number of scales (default %d)\n"
            "      --octave-scale F    size ratio between scales (default %.2g)\n"
            "  -s, --steps N           gradient steps per octave (default %d)\n"
            "      --step-size F       step in network units, [-1,1] range (default %.3g)\n"
            "  -j, --jitter PX         random roll per step, pixels (default %d)\n"
            "      --tile PX           gradient tile side, bounds memory (default %d)\n"
            "      --seed N            random seed: same seed, same output (default %llu)\n"
            "  -q, --quality Q         JPEG quality 1..100 (default 92)\n"
            "      --max-pixels N      refuse larger images, 0 = no limit (default 100000000)\n"
            "      --max-size PX       dream at most PX on the long side, then scale the\n"
            "                          detail back to the input size, 0 = off (default 0)\n"
            "  -m, --model FILE        a safetensors model instead of the built-in one\n"
            "  -t, --threads N         threads, 0 = all cores (default 0)\n"
            "      --quiet             no progress or notes on standard error\n"
            "  -h, --help              this help\n"
            "  -V, --version           version\n\n"
            "examples:\n"
            "  deepdream photo.jpg dream.png\n"
            "  deepdream --layers mixed2=0.5,mixed4 --steps 20 photo.jpg dream.jpg\n"
            "  convert in.tif ppm:- | deepdream - png:- | convert - -resize 50%% out.webp\n",
            dd_default_layers(), d.octaves, d.octave_scale, d.steps, d.step_size, d.jitter, d.tile,
            (unsigned long long)d.seed);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return EXIT_USAGE;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

/* The option getopt stopped at: a short option by its letter (it may sit
 * inside a group like -Zs), a long one as the user typed it. */
static const char *option_name(char **argv, int opt) {
    static char buf[3];
    const char *typed = argv[optind - 1];
    if (!strncmp(typed, "--", 2) || opt <= 0 || opt >= 256) return typed;
    buf[0] = '-', buf[1] = (char)opt, buf[2] = '\0';
    return buf;
}

/* Returns -1 to go on, else an exit status. */
static int parse_options(int argc, char **argv, options *o) {
    enum { OPT_LIST = 256, OPT_OCTSCALE, OPT_STEPSIZE, OPT_TILE, OPT_SEED, OPT_QUIET, OPT_MAXPIX, OPT_MAXSIZE };
    static const struct option longs[] = {
        {"layers", required_argument, 0, 'l'},     {"list-layers", no_argument, 0, OPT_LIST},
        {"octaves", required_argument, 0, 'o'},    {"octave-scale", required_argument, 0, OPT_OCTSCALE},
        {"steps", required_argument, 0, 's'},      {"step-size", required_argument, 0, OPT_STEPSIZE},
        {"jitter", required_argument, 0, 'j'},     {"tile", required_argument, 0, OPT_TILE},
        {"seed", required_argument, 0, OPT_SEED},  {"quality", required_argument, 0, 'q'},
        {"max-pixels", required_argument, 0, OPT_MAXPIX}, {"max-size", required_argument, 0, OPT_MAXSIZE},
        {"model", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'},    {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:o:s:j:q:m:t:hV", longs, NULL)) != -1) {
        switch (c) {
        case 'l': o->layers = optarg; break;
        case OPT_LIST: o->list_layers = 1; break;
        case 'o':
            if (!parse_long(optarg, 1, 32, &v)) return usage_error("--octaves: '%s' is not a number in 1..32", optarg);
            o->params.octaves = (int)v;
            break;
        case OPT_OCTSCALE:
            if (!parse_float(optarg, 1.0f, 8.0f, &o->params.octave_scale))
                return usage_error("--octave-scale: '%s' is not a number in 1..8", optarg);
            break;
        case 's':
            if (!parse_long(optarg, 0, 100000, &v)) return usage_error("--steps: '%s' is not a number in 0..100000", optarg);
            o->params.steps = (int)v;
            break;
        case OPT_STEPSIZE:
            if (!parse_float(optarg, 0.0f, 100.0f, &o->params.step_size))
                return usage_error("--step-size: '%s' is not a number in 0..100", optarg);
            break;
        case 'j':
            if (!parse_long(optarg, 0, 100000, &v)) return usage_error("--jitter: '%s' is not a number in 0..100000", optarg);
            o->params.jitter = (int)v;
            break;
        case OPT_TILE:
            if (!parse_long(optarg, 64, 8192, &v)) return usage_error("--tile: '%s' is not a number in 64..8192", optarg);
            o->params.tile = (int)v;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return usage_error("--seed: '%s' is not a non-negative integer", optarg);
            o->params.seed = s;
        } break;
        case 'q':
            if (!parse_long(optarg, 1, 100, &v)) return usage_error("--quality: '%s' is not a number in 1..100", optarg);
            o->quality = (int)v;
            break;
        case OPT_MAXPIX: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return usage_error("--max-pixels: '%s' is not a non-negative integer", optarg);
            o->max_pixels = s;
        } break;
        case OPT_MAXSIZE:
            if (!parse_long(optarg, 0, 65535, &v)) return usage_error("--max-size: '%s' is not a number in 0..65535", optarg);
            o->params.max_size = (int)v;
            break;
        case 'm': o->model_path = optarg; break;
        case 't':
            if (!parse_long(optarg, 0, 1024, &v)) return usage_error("--threads: '%s' is not a number in 0..1024", optarg);
            o->params.threads = (int)v;
            break;
        case OPT_QUIET: o->quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("deepdream %s\n", DD_VERSION_STRING); return 0;
        case ':': return usage_error("option '%s' needs a value", option_name(argv, optopt));
        default: return usage_error("unknown option '%s'", option_name(argv, optopt));
        }
    }
    if (o->list_layers) return -1;
    if (argc - optind != 2) return usage_error("%s", argc - optind < 2 ? "needs INPUT and OUTPUT" : "too many arguments");
    o->input = argv[optind], o->output = argv[optind + 1];
    return -1;
}

/* The whole input in memory: images are decoded from memory so that a pipe
 * and a file are the same thing. */
static int read_all(const char *path, unsigned char **data, size_t *size) {
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 0;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: %s: is a directory\n", prog, path);
        if (fp != stdin) fclose(fp);
        return 0;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int ok = 1;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "%s: %s: out of memory\n", prog, path);
                ok = 0;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
                ok = 0;
            }
            break;
        }
    }
    if (fp != stdin) fclose(fp);
    if (!ok) {
        free(buf);
        return 0;
    }
    *data = buf, *size = len;
    return 1;
}

static int write_fully(int fd, const unsigned char *data, size_t size) {
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        data += n, size -= (size_t)n;
    }
    return 1;
}

/* A file output goes to a temporary file beside it, fsync'd, then renamed
 * into place: a failure never leaves a partial image under the real name. */
static int write_output(const char *path, const unsigned char *data, size_t size) {
    if (!strcmp(path, "-")) {
        if (!write_fully(STDOUT_FILENO, data, size)) {
            fprintf(stderr, "%s: standard output: %s\n", prog, strerror(errno));
            return 0;
        }
        return 1;
    }
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.deepdream-XXXXXX", path) >= (int)sizeof tmp) {
        fprintf(stderr, "%s: %s: name too long\n", prog, path);
        return 0;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 0;
    }
    const mode_t mask = umask(0); /* mkstemp makes 0600; give what a new file would get */
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    int err = 0;
    if (!write_fully(fd, data, size) || fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(err));
        unlink(tmp);
    }
    const int ok = !err;
    return ok;
}

static int on_progress(void *user, int octave, int octaves, int step, int steps) {
    const char *name = user;
    fprintf(stderr, "\r%s: %s: octave %d/%d, step %d/%d ", prog, name, octave + 1, octaves, step + 1, steps);
    return 0;
}

static int list_layers(const dd_model *model) {
    for (int i = 0; i < dd_model_layer_count(model); i++)
        printf("%-22s %d\n", dd_model_layer_name(model, i), dd_model_layer_channels(model, i));
    return 0;
}

int main(int argc, char **argv) {
    options o = {.params = dd_params_default(), .quality = 92, .max_pixels = 100000000ull};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;

    /* The output format, from a FMT: prefix or the extension. */
    dd_format format = DD_FORMAT_UNKNOWN;
    const char *out_path = o.output;
    if (o.output) {
        const char *colon = strchr(o.output, ':');
        if (colon && colon - o.output <= 4) {
            char fmt[8];
            memcpy(fmt, o.output, (size_t)(colon - o.output));
            fmt[colon - o.output] = '\0';
            format = dd_format_from_name(fmt);
            if (format == DD_FORMAT_UNKNOWN) return usage_error("unknown output format '%s:'", fmt);
            out_path = colon + 1;
        } else if (strcmp(o.output, "-")) {
            format = dd_format_from_name(o.output);
            if (format == DD_FORMAT_UNKNOWN)
                return usage_error("%s: cannot tell the output format (use .png, .jpg, .ppm, .pam or a FMT: prefix)", o.output);
        }
        if (!*out_path) return usage_error("%s: no output name", o.output);
        if (!strcmp(out_path, "-") && isatty(STDOUT_FILENO))
            return usage_error("%s", "refusing to write an image to a terminal");
    }

    dd_model *model = NULL;
    dd_status st = o.model_path ? dd_model_load_file(o.model_path, &model) : dd_model_load_default(&model);
    if (st) {
        fprintf(stderr, "%s: %s\n", prog, dd_last_error());
        return 1;
    }
    if (o.list_layers) {
        rc = list_layers(model);
        dd_model_free(model);
        return rc;
    }
    dd_term terms[MAX_TERMS];
    int n_terms = 0;
    const char *spec = o.layers ? o.layers : dd_default_layers();
    if (dd_terms_parse(model, spec, terms, MAX_TERMS, &n_terms)) {
        fprintf(stderr, "%s: %s; layers are:", prog, dd_last_error());
        for (int i = 0; i < dd_model_layer_count(model); i++) fprintf(stderr, " %s", dd_model_layer_name(model, i));
        fputc('\n', stderr);
        dd_model_free(model);
        return EXIT_USAGE;
    }
    o.params.terms = terms, o.params.n_terms = n_terms;

    unsigned char *in_data = NULL, *out_data = NULL;
    size_t in_size = 0, out_size = 0;
    dd_image *image = NULL;
    const char *in_name = strcmp(o.input, "-") ? o.input : "standard input";
    rc = 1;
    if (!read_all(o.input, &in_data, &in_size)) goto done;
    if ((st = dd_image_load_memory(in_data, in_size, o.max_pixels, &image))) {
        fprintf(stderr, "%s: %s: %s\n", prog, in_name, dd_last_error());
        goto done;
    }
    if (format == DD_FORMAT_UNKNOWN) format = dd_image_format(image);

    const int show = !o.quiet && isatty(STDERR_FILENO);
    st = dd_dream(model, &o.params, image, show ? on_progress : NULL, (void *)in_name);
    if (show) fputc('\n', stderr);
    if (st == DD_ERR_TOO_SMALL) {
        if (!o.quiet) fprintf(stderr, "%s: %s: %s; passed through unchanged\n", prog, in_name, dd_last_error());
    } else if (st) {
        fprintf(stderr, "%s: %s: %s\n", prog, in_name, dd_last_error());
        goto done;
    }
    char comment[512];
    snprintf(comment, sizeof comment,
             "deepdream %s: layers=%s octaves=%d octave-scale=%g steps=%d step-size=%g jitter=%d tile=%d "
             "max-size=%d seed=%llu model=%s",
             DD_VERSION_STRING, spec, o.params.octaves, o.params.octave_scale, o.params.steps, o.params.step_size,
             o.params.jitter, o.params.tile, o.params.max_size, (unsigned long long)o.params.seed,
             o.model_path ? o.model_path : "built-in");
    if ((st = dd_image_save_memory(image, format, o.quality, comment, &out_data, &out_size))) {
        fprintf(stderr, "%s: %s: %s\n", prog, o.output, dd_last_error());
        goto done;
    }
    if (write_output(out_path, out_data, out_size)) rc = 0;
done:
    free(in_data);
    free(out_data);
    dd_image_free(image);
    dd_model_free(model);
    return rc;
}
