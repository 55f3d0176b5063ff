/* deepdream: the command line. One image (INPUT OUTPUT, files or streams)
 * or a batch (-o OUTDIR INPUT..., or --in-place): options, signals, the
 * loop over files, exit codes. The only code that prints or exits. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2, MAX_TERMS = 64 };

const char *cli_prog = "deepdream";
atomic_int cli_stop_signal;

typedef struct options {
    dd_params params;
    const char *layers, *model_path, *out_dir, *guide_path;
    const char *replay_path;    /* --replay */
    cli_replay replay;          /* what it recorded; owns the strings above that came from it */
    const char *replay_kernels; /* the kernels it was made with */
    const char *preset;         /* --preset */
    int list_presets;
    const char *mask_path; /* --mask: a file, or "alpha" (params.mask_alpha) */
    dd_format format; /* --format */
    int quality, quiet, progress, list_layers, recursive, skip_existing, in_place, dry_run, video;
    int zoom_mode;               /* --zoom, --rotate or --frames given */
    int blend_given, frame_steps_given;
    float zoom, rotate;          /* --zoom, --rotate */
    long frames;                 /* --frames */
    long shard_k, shard_n;
    unsigned long long max_pixels;
    char **inputs; /* positional arguments */
    int n_inputs;
} options;

static const char *kernels; /* dd_cpu_kernels(): recorded in each output's comment */

static void usage(FILE *to) {
    dd_params d = dd_params_default();
    fprintf(to,
            "usage: deepdream [OPTIONS] INPUT OUTPUT\n"
            "       deepdream [OPTIONS] -o OUTDIR INPUT...\n"
            "       deepdream [OPTIONS] --in-place INPUT...\n"
            "       deepdream [OPTIONS] --video INPUT.y4m OUTPUT.y4m\n"
            "Dreams INPUT (PNG, JPEG, PNM or PAM, found by content; '-' for standard input)\n"
            "into OUTPUT (format from its extension or a FMT: prefix: png:, jpg:, ppm:, pam:;\n"
            "'-' or FMT:- for standard output). With -o, each INPUT file, or each image in an\n"
            "INPUT directory, is dreamed into OUTDIR under the same name.\n\n"
            "The dream:\n"
            "  -l, --layers SPEC       objective: NAME[:CHANNEL][=WEIGHT],... (default %s)\n"
            "                          a -m model file may name its own default\n"
            "      --list-layers       print the model's layers and their channel counts\n"
            "      --guide IMAGE       dream towards what the layers see in IMAGE (whole\n"
            "                          layers: no :CHANNEL)\n"
            "      --preset NAME       a named look (--list-presets); options given beside\n"
            "                          it win\n"
            "      --list-presets      print the presets: name, look and what they set\n"
            "      --replay DREAM      the parameters recorded in DREAM (a dream of ours);\n"
            "                          options given beside it win\n"
            "      --octaves N|auto    scales; auto ends at <= 200 px (default auto)\n"
            "      --octave-scale F    size ratio between scales (default %.2g)\n"
            "  -s, --steps N           gradient steps per octave (default %d)\n"
            "      --step-size F       step in network units, [-1,1] range (default %.3g)\n"
            "  -j, --jitter PX         random roll per step, pixels (default %d)\n"
            "      --tile PX           gradient tile side, bounds memory (default %d)\n"
            "      --seed N            random seed: same seed, same output (default %llu)\n"
            "      --max-size PX       dream at most PX on the long side, then scale the\n"
            "                          detail back to the input size, 0 = off (default 0)\n"
            "  -m, --model FILE        a safetensors model instead of the built-in one\n"
            "  -t, --threads N         threads, 0 = all cores (default 0)\n"
            "      --mask IMAGE        dream where IMAGE is white, not at all where it is\n"
            "                          black (those pixels keep their exact samples), less\n"
            "                          where grey; any size (stretched), colour as luma;\n"
            "                          'alpha': each input's own alpha channel\n"
            "      --invert-mask       swap the mask's black and white\n"
            "      --preserve-colors   change only the luminance, keep the input's colours\n"
            "      --fast              %sproducts of lower precision where\n"
            "                          faster on this CPU (bfloat16 on AMD's AVX512-BF16,\n"
            "                          16-bit integers on AVX2 alone); gradients\n"
            "                          correlate > 0.99 with --exact's\n"
            "      --exact             %sfloat32 throughout\n"
            "Files:\n"
            "  -q, --quality Q         JPEG quality 1..100 (default 92)\n"
            "      --max-pixels N      refuse larger images, 0 = no limit (default 100000000)\n"
            "  -o, --output-dir DIR    batch: write each input's dream into DIR\n"
            "  -r, --recursive         batch: descend into directories, mirror them under DIR\n"
            "      --format FMT        batch: png, jpg, ppm or pam (default: the input's)\n"
            "      --skip-existing     batch: leave outputs that exist and decode (resume)\n"
            "      --shard K/N         batch: only inputs whose sorted index is K modulo N\n"
            "      --in-place          replace each input with its dream\n"
            "      --progress          progress lines even when standard error is no terminal\n"
            "      --quiet             no progress, notes or summary on standard error\n"
            "      --video             INPUT and OUTPUT are YUV4MPEG2 (y4m) video streams\n"
            "                          ('-' too): every frame is dreamed; --steps 0 only\n"
            "                          converts the colours (docs/VIDEO.md)\n"
            "      --blend F           --video: how much of the last frame's dream, carried\n"
            "                          along the motion, a frame starts from, 0..1; 0 =\n"
            "                          each frame alone (default %.2g)\n"
            "      --frame-steps N     --video, --zoom: steps per octave after the first\n"
            "                          frame, 0 = half of --steps (default %d)\n"
            "      --zoom F            the infinite zoom: INPUT is a photo, OUTPUT a y4m\n"
            "                          stream; each frame is the last dream zoomed by F\n"
            "                          (1.02: 2%% closer) and dreamed again\n"
            "      --rotate DEG        --zoom: also turn each frame (counter-clockwise)\n"
            "      --frames N          --zoom: frames to write (default 100, 4 s at 25/s)\n"
            "      --dry-run           dream and write nothing: print each input's octaves,\n"
            "                          tiles, peak memory and estimated time\n"
            "  -h, --help              this help\n"
            "  -V, --version           version\n\n"
            "examples:\n"
            "  deepdream photo.jpg dream.png\n"
            "  deepdream --layers mixed2=0.5,mixed4 --steps 20 photo.jpg dream.jpg\n"
            "  convert in.tif ppm:- | deepdream - png:- | convert - -resize 50%% out.webp\n"
            "  deepdream -r --skip-existing -o dreams/ photos/\n"
            "  deepdream --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT -o dreams/ photos/\n",
            dd_default_layers(), d.octave_scale, d.steps, d.step_size, d.jitter, d.tile,
            (unsigned long long)d.seed, d.fast ? "(the default) " : "", d.fast ? "" : "(the default) ", d.blend,
            d.frame_steps);
}

/* arg is quoted: what the user typed may hold a newline. */
static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", cli_prog);
    fprintf(stderr, fmt, cli_quote(arg));
    fprintf(stderr, " (see --help)\n");
    return EXIT_USAGE;
}

/* Numbers as typed: no leading blanks or signs that strto* would skip
 * (' -1' is not a seed). */
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9'))) return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == '-')) return 0;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    if (*s < '0' || *s > '9') return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return 0;
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

/* 0 when what was printed reached standard output, else 1 with the
 * reason (/dev/full, a closed descriptor). */
static int stdout_status(void) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    fprintf(stderr, "%s: standard output: %s\n", cli_prog, strerror(errno ? errno : EIO));
    return EXIT_FAILED;
}

/* A descriptor 0-2 that the caller closed is held open on /dev/null the
 * wrong way round: a file we open can never become "standard output", and
 * writing to a closed standard output still fails. */
static void hold_standard_descriptors(void) {
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            const int held = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
            if (held >= 0 && held != fd) close(held); /* a lower one was free: cannot happen */
        }
}

/* --list-presets: each preset's name and description, then what it sets
 * as the options that set it. */
static int list_presets(void) {
    for (int i = 0; i < dd_preset_count(); i++) {
        const char *name, *description, *model, *layers, *settings;
        dd_preset_info(i, &name, &description, &model, &layers, &settings);
        printf("%-10s %s\n          ", name, description);
        if (layers) printf(" -l %s", layers);
        for (const char *p = settings; *p;) {
            const size_t key = strcspn(p, "="), len = strcspn(p, " ");
            printf(" --%.*s %.*s", (int)key, p, (int)(len - key - 1), p + key + 1);
            p += len + (p[len] == ' ');
        }
        printf("%s%s%s\n", model ? " (for the " : "", model ? model : "", model ? " model)" : "");
    }
    return stdout_status();
}

/* --replay DREAM: the parameters recorded in DREAM's comment become the
 * options' defaults. Returns -1 to go on, else an exit status. */
static int apply_replay(options *o) {
    cli_replay *r = &o->replay;
    if (!cli_replay_read(o->replay_path, o->max_pixels, r)) return EXIT_FAILED;
    const char *name = strcmp(o->replay_path, "-") ? cli_quote(o->replay_path) : "standard input";
    if (strcmp(r->version, DD_VERSION_STRING) && !o->quiet)
        fprintf(stderr, "%s: %s: made by deepdream %s, this is %s: the bytes may differ\n", cli_prog, name,
                cli_quote(r->version), DD_VERSION_STRING);
    for (int i = 0; i < r->n; i++) {
        const char *k = r->key[i], *v = r->value[i];
        if (!strcmp(k, "from")) continue; /* the photo it was made from: any photo may be dreamed so */
        else if (!strcmp(k, "kernels")) o->replay_kernels = v;
        else if (!strcmp(k, "model")) o->model_path = strcmp(v, "built-in") ? v : NULL;
        else if (!strcmp(k, "guide")) o->guide_path = strcmp(v, "none") ? v : NULL;
        else if (!strcmp(k, "mask")) o->mask_path = strcmp(v, "none") ? v : NULL, o->params.mask_alpha = !strcmp(v, "alpha");
        else if (!strcmp(k, "layers")) o->layers = v;
        else if (!strcmp(k, "quality")) {
            long q;
            if (!parse_long(v, 1, 100, &q)) {
                fprintf(stderr, "%s: %s: recorded quality '%s' is not a number in 1..100\n", cli_prog, name, cli_quote(v));
                return EXIT_FAILED;
            }
            o->quality = (int)q;
        }
        else if (dd_params_set(&o->params, k, v)) {
            fprintf(stderr, "%s: %s: recorded %s\n", cli_prog, name, cli_quote(dd_last_error()));
            return EXIT_FAILED;
        }
    }
    return -1;
}

/* Returns -1 to go on, else an exit status. */
static int parse_options(int argc, char **argv, options *o) {
    enum {
        OPT_LIST = 256, OPT_OCTAVES, OPT_OCTSCALE, OPT_STEPSIZE, OPT_TILE, OPT_SEED, OPT_QUIET, OPT_MAXPIX,
        OPT_MAXSIZE, OPT_FORMAT, OPT_SKIP, OPT_SHARD, OPT_INPLACE, OPT_PROGRESS, OPT_FAST, OPT_EXACT,
        OPT_GUIDE, OPT_REPLAY, OPT_MASK, OPT_INVERT_MASK, OPT_PRESERVE, OPT_PRESET, OPT_LIST_PRESETS, OPT_DRYRUN, OPT_VIDEO,
        OPT_BLEND, OPT_FRAME_STEPS, OPT_ZOOM, OPT_ROTATE, OPT_FRAMES
    };
    static const struct option longs[] = {
        {"layers", required_argument, 0, 'l'},       {"list-layers", no_argument, 0, OPT_LIST},
        {"octaves", required_argument, 0, OPT_OCTAVES}, {"octave-scale", required_argument, 0, OPT_OCTSCALE},
        {"steps", required_argument, 0, 's'},        {"step-size", required_argument, 0, OPT_STEPSIZE},
        {"jitter", required_argument, 0, 'j'},       {"tile", required_argument, 0, OPT_TILE},
        {"seed", required_argument, 0, OPT_SEED},    {"quality", required_argument, 0, 'q'},
        {"max-pixels", required_argument, 0, OPT_MAXPIX}, {"max-size", required_argument, 0, OPT_MAXSIZE},
        {"model", required_argument, 0, 'm'},        {"threads", required_argument, 0, 't'},
        {"output-dir", required_argument, 0, 'o'},   {"recursive", no_argument, 0, 'r'},
        {"format", required_argument, 0, OPT_FORMAT}, {"skip-existing", no_argument, 0, OPT_SKIP},
        {"shard", required_argument, 0, OPT_SHARD},  {"in-place", no_argument, 0, OPT_INPLACE},
        {"progress", no_argument, 0, OPT_PROGRESS},  {"quiet", no_argument, 0, OPT_QUIET},
        {"fast", no_argument, 0, OPT_FAST},          {"exact", no_argument, 0, OPT_EXACT},
        {"guide", required_argument, 0, OPT_GUIDE},   {"replay", required_argument, 0, OPT_REPLAY},
        {"mask", required_argument, 0, OPT_MASK},    {"invert-mask", no_argument, 0, OPT_INVERT_MASK},
        {"preserve-colors", no_argument, 0, OPT_PRESERVE},
        {"preset", required_argument, 0, OPT_PRESET}, {"list-presets", no_argument, 0, OPT_LIST_PRESETS},
        {"dry-run", no_argument, 0, OPT_DRYRUN},    {"video", no_argument, 0, OPT_VIDEO},
        {"blend", required_argument, 0, OPT_BLEND},  {"frame-steps", required_argument, 0, OPT_FRAME_STEPS},
        {"zoom", required_argument, 0, OPT_ZOOM},    {"rotate", required_argument, 0, OPT_ROTATE},
        {"frames", required_argument, 0, OPT_FRAMES},
        {"help", no_argument, 0, 'h'},               {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    static const char shorts[] = ":l:s:j:q:m:t:o:rhV";
    long v;
    int c, rc;
    opterr = 0;
    /* --replay first: every other option goes over what it recorded,
     * wherever it stands. Mistakes are reported by the second pass. */
    char **scan = malloc(((size_t)argc + 1) * sizeof *scan); /* getopt permutes what it scans */
    if (!scan) {
        fprintf(stderr, "%s: out of memory\n", cli_prog);
        return EXIT_FAILED;
    }
    memcpy(scan, argv, ((size_t)argc + 1) * sizeof *scan);
    /* What reading the replay needs to know first; help, a version, a
     * list or a mistake leave it unread for the second pass to handle. */
    int later = 0, stdin_taken = 0, mask_given = 0, invert_given = 0;
    unsigned long long max_pixels;
    while ((c = getopt_long(argc, scan, shorts, longs, NULL)) != -1) {
        if (c == OPT_REPLAY) o->replay_path = optarg;
        else if (c == OPT_PRESET) o->preset = optarg;
        else if (c == OPT_QUIET) o->quiet = 1;
        else if (c == OPT_MAXPIX && parse_u64(optarg, &max_pixels)) o->max_pixels = max_pixels;
        else if ((c == OPT_MASK || c == OPT_GUIDE) && !strcmp(optarg, "-")) stdin_taken = 1;
        else if (c == 'h' || c == 'V' || c == OPT_LIST_PRESETS || c == OPT_LIST || c == ':' || c == '?') later = 1;
    }
    for (int i = optind; i < argc; i++) stdin_taken |= !strcmp(scan[i], "-");
    free(scan);
    if (o->replay_path && o->preset) return usage_error("%s", "--preset and --replay do not go together");
    if (o->preset && dd_params_preset(&o->params, o->preset))
        return usage_error("--preset: %s", dd_last_error());
    if (o->replay_path && !later && !strcmp(o->replay_path, "-")) {
        if (stdin_taken) return usage_error("%s", "--replay -: standard input is taken by another file");
        if (isatty(STDIN_FILENO)) {
            fprintf(stderr, "%s: standard input: a terminal, not a dream to replay (pipe one in)\n", cli_prog);
            return EXIT_USAGE;
        }
    }
    if (o->replay_path && !later && (rc = apply_replay(o)) >= 0) return rc;
    optind = 0;
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        switch (c) {
        case OPT_REPLAY:
        case OPT_PRESET: break;
        case OPT_LIST_PRESETS: o->list_presets = 1; break;
        case 'l': o->layers = optarg; break;
        case OPT_LIST: o->list_layers = 1; break;
        case OPT_GUIDE:
            if (!strcmp(optarg, "-")) return usage_error("--guide: '%s': a guide is a file, not standard input", optarg);
            o->guide_path = strcmp(optarg, "none") ? optarg : NULL; /* "./none" names a file */
            break;
        case OPT_OCTAVES:
            if (dd_params_set(&o->params, "octaves", optarg)) return usage_error("--%s", dd_last_error());
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
            unsigned long long s;
            if (!parse_u64(optarg, &s)) return usage_error("--seed: '%s' is not a non-negative integer", optarg);
            o->params.seed = s;
        } break;
        case 'q':
            if (!parse_long(optarg, 1, 100, &v)) return usage_error("--quality: '%s' is not a number in 1..100", optarg);
            o->quality = (int)v;
            break;
        case OPT_MAXPIX:
            if (!parse_u64(optarg, &o->max_pixels))
                return usage_error("--max-pixels: '%s' is not a non-negative integer", optarg);
            break;
        case OPT_MAXSIZE:
            if (!parse_long(optarg, 0, 65535, &v)) return usage_error("--max-size: '%s' is not a number in 0..65535", optarg);
            o->params.max_size = (int)v;
            break;
        case OPT_FAST: o->params.fast = 1; break;
        case OPT_EXACT: o->params.fast = 0; break;
        case OPT_MASK: /* "./alpha" and "./none" name files */
            if (!*optarg) return usage_error("--mask: '%s' is no file name", optarg);
            o->mask_path = strcmp(optarg, "none") ? optarg : NULL;
            o->params.mask_alpha = !strcmp(optarg, "alpha");
            mask_given = 1;
            break;
        case OPT_INVERT_MASK: o->params.invert_mask = 1, invert_given = 1; break;
        case OPT_PRESERVE: o->params.preserve_colors = 1; break;
        case 'm': o->model_path = optarg; break;
        case 't':
            if (!parse_long(optarg, 0, 1024, &v)) return usage_error("--threads: '%s' is not a number in 0..1024", optarg);
            o->params.threads = (int)v;
            break;
        case 'o': o->out_dir = optarg; break;
        case 'r': o->recursive = 1; break;
        case OPT_FORMAT:
            o->format = dd_format_from_name(optarg);
            if (o->format == DD_FORMAT_UNKNOWN) return usage_error("--format: '%s' is not png, jpg, ppm, pgm, pnm or pam", optarg);
            break;
        case OPT_SKIP: o->skip_existing = 1; break;
        case OPT_SHARD: {
            char *slash = strchr(optarg, '/');
            if (!slash) return usage_error("--shard: '%s' is not K/N", optarg);
            *slash = '\0';
            const int ok = parse_long(optarg, 0, 1000000, &o->shard_k) && parse_long(slash + 1, 1, 1000000, &o->shard_n) &&
                           o->shard_k < o->shard_n;
            *slash = '/';
            if (!ok) return usage_error("--shard: '%s' is not K/N with 0 <= K < N", optarg);
        } break;
        case OPT_INPLACE: o->in_place = 1; break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_QUIET: o->quiet = 1; break;
        case OPT_DRYRUN: o->dry_run = 1; break;
        case OPT_VIDEO: o->video = 1; break;
        case OPT_BLEND:
        case OPT_FRAME_STEPS:
            if (dd_params_set(&o->params, c == OPT_BLEND ? "blend" : "frame-steps", optarg))
                return usage_error("--%s", dd_last_error());
            *(c == OPT_BLEND ? &o->blend_given : &o->frame_steps_given) = 1;
            break;
        case OPT_ZOOM:
            if (!parse_float(optarg, 0.1f, 10.0f, &o->zoom)) return usage_error("--zoom: '%s' is not a number in 0.1..10", optarg);
            o->zoom_mode = 1;
            break;
        case OPT_ROTATE:
            if (!parse_float(optarg, -360.0f, 360.0f, &o->rotate))
                return usage_error("--rotate: '%s' is not a number of degrees in -360..360", optarg);
            o->zoom_mode = 1;
            break;
        case OPT_FRAMES:
            if (!parse_long(optarg, 1, 1000000, &o->frames)) return usage_error("--frames: '%s' is not a number in 1..1000000", optarg);
            o->zoom_mode = 1;
            break;
        case 'h': usage(stdout); return stdout_status();
        case 'V': printf("deepdream %s\n", DD_VERSION_STRING); return stdout_status();
        case ':': return usage_error("option '%s' needs a value", option_name(argv, optopt));
        default: return usage_error("unknown option '%s'", option_name(argv, optopt));
        }
    }
    o->inputs = argv + optind, o->n_inputs = argc - optind;
    if (mask_given && !invert_given) o->params.invert_mask = 0; /* not a replayed dream's, for another mask */
    if (o->params.invert_mask && !o->mask_path) return usage_error("%s", "--invert-mask needs --mask");
    if (o->list_layers) return -1;
    if (o->list_presets) return list_presets();
    const char *made_for = NULL;
    for (int i = 0; o->preset && i < dd_preset_count(); i++) {
        const char *name;
        dd_preset_info(i, &name, NULL, &made_for, NULL, NULL);
        if (!strcmp(name, o->preset)) break;
    }
    if (o->preset && o->model_path && made_for && !strcmp(made_for, "built-in"))
        return usage_error("--preset %s is made for the built-in model, not -m", o->preset);
    const int batch = o->out_dir || o->in_place;
    if (o->video && (o->in_place || o->dry_run || o->shard_n || (o->format && !o->out_dir)))
        return usage_error("%s", "--video streams one INPUT into one OUTPUT, or frames into -o OUTDIR: no --in-place, --dry-run or --shard");
    if (o->zoom_mode && (o->video || batch || o->dry_run || o->format))
        return usage_error("%s", "--zoom, --rotate and --frames dream one photo into one y4m OUTPUT: no --video, -o, --in-place, --format or --dry-run");
    if (o->blend_given && !o->video) return usage_error("%s", "--blend is for --video");
    if (o->frame_steps_given && !o->video && !o->zoom_mode)
        return usage_error("%s", "--frame-steps is for --video and --zoom");
    if (o->zoom_mode && !o->frames) o->frames = 100;
    if (o->zoom_mode && o->zoom == 0) o->zoom = 1.0f;
    if (o->out_dir && o->in_place) return usage_error("%s", "-o and --in-place do not go together");
    if (batch) {
        if (o->n_inputs < 1) return usage_error("%s", "needs at least one INPUT");
        for (int i = 0; i < o->n_inputs; i++)
            if (!strcmp(o->inputs[i], "-")) return usage_error("%s", "a batch reads files, not standard input");
        if (o->in_place && o->format) return usage_error("%s", "--in-place keeps each file's format: no --format");
    } else {
        if (o->n_inputs != 2 && o->zoom_mode) return usage_error("%s", "--zoom takes one PHOTO and one OUTPUT");
        if (o->n_inputs != 2) return usage_error("%s", o->n_inputs < 2 ? "needs INPUT and OUTPUT" : "too many arguments (a batch needs -o OUTDIR)");
        if (o->format || o->recursive || o->skip_existing || o->shard_n)
            return usage_error("%s", "--format, -r, --skip-existing and --shard are for a batch (-o OUTDIR)");
        if (o->mask_path && !strcmp(o->mask_path, "-") && !strcmp(o->inputs[0], "-"))
            return usage_error("%s", "--mask - and INPUT - cannot both be standard input");
    }
    return -1;
}

/* Signals. SIGINT and SIGTERM are blocked in every thread the program
 * starts (main blocks them before it starts any; the library's workers
 * block every signal) and taken by one watcher thread with sigwait. Threads
 * started before main (OpenBLAS's pthreads build starts its pool when it is
 * loaded, every signal unblocked) would take them with the default action,
 * ending the program on the spot: there a handler passes the signal on to
 * the watcher. The first signal sets cli_stop_signal, which the dream
 * polls between the network's layers, and wakes the main thread out of a
 * blocking open or read (SIGUSR1, no SA_RESTART). If the program has not
 * ended a second later, or a second signal comes, the watcher quits: it
 * waits for an output being written and counted (write_lock), prints the
 * batch's summary unless the main thread has, and exits 128+signal. */
static pthread_t main_thread, watcher;
static sigset_t stop_signals;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

/* The batch's counts and whether its summary is owed; under write_lock
 * where the watcher may read them. */
static size_t count_done, count_skipped, count_failed;
static int summary_owed, erase_line;

static void wake(int sig) { (void)sig; }

/* Only on a thread that does not block the stop signals: one the program
 * did not start. pthread_kill is async-signal-safe. */
static void pass_to_watcher(int sig) {
    const int saved = errno;
    pthread_kill(watcher, sig);
    errno = saved;
}

static void *watch_signals(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    cli_stop_signal = sig;
    pthread_kill(main_thread, SIGUSR1);
    /* A second signal, or a second. No handler runs on this thread (it
     * blocks every signal), so the wait is never cut short by EINTR. */
#if defined(_POSIX_REALTIME_SIGNALS) && _POSIX_REALTIME_SIGNALS > 0
    const struct timespec one = {.tv_sec = 1};
    sigtimedwait(&stop_signals, NULL, &one);
#else /* macOS: every thread blocks the two, so a second one stays pending */
    const struct timespec tick = {.tv_nsec = 10000000};
    for (int i = 0; i < 100; i++) {
        sigset_t pending;
        if (sigpending(&pending) == 0 && (sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1))
            break;
        nanosleep(&tick, NULL);
    }
#endif
    pthread_mutex_lock(&write_lock);
    if (summary_owed)
        fprintf(stderr, "%s%s: %zu done, %zu skipped, %zu failed, interrupted\n", erase_line ? "\r\033[K" : "",
                cli_prog, count_done, count_skipped, count_failed);
    _exit(128 + sig);
}

/* Before any thread exists. SIGINT ignored by the caller (a background
 * job of a non-interactive shell, nohup) stays ignored. */
static void watch_for_signals(void) {
    main_thread = pthread_self();
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    struct sigaction old;
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wake; /* no SA_RESTART: a blocked open or read returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    if (pthread_create(&watcher, NULL, watch_signals, NULL) != 0) return;
    pthread_detach(watcher);
    sa.sa_handler = pass_to_watcher;
    sa.sa_flags = SA_RESTART;
    const int stops[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof stops / sizeof *stops; i++)
        if (sigismember(&stop_signals, stops[i]) == 1) sigaction(stops[i], &sa, NULL);
}

static int stopped_status(void) { return 128 + (int)cli_stop_signal; }

typedef struct run {
    const options *o;
    const dd_model *model;
    const char *spec;
    cli_progress progress;
    dd_speed speed;      /* --dry-run: measured at the first plan, 0 until then */
    double before_bytes; /* --dry-run: the program's peak RSS before any image */
    dd_clip *clip;       /* --video -o: the frames' clip, made by the first frame */
    int clip_w, clip_h;  /* its frames' size */
} run;

enum { DREAM_SKIPPED = -1 };

/* Does path hold a complete image? Outputs are renamed into place only when
 * complete, but a file of the same name may come from elsewhere. */
static int complete_output(const char *path) {
    dd_image *im = cli_load_quietly(path);
    dd_image_free(im);
    return im != NULL;
}

/* Is writing the image as out the format it was read from, bytes and all? */
static int same_format(const dd_image *im, dd_format out) {
    const dd_format in = dd_image_format(im);
    if (out == in) return 1;
    return in == DD_FORMAT_PNM && ((out == DD_FORMAT_PGM && dd_image_channels(im) == 1) ||
                                   (out == DD_FORMAT_PPM && dd_image_channels(im) == 3));
}

/* Writes an output and counts it with a quit held off, so that the count
 * is what was written. A FIFO or device write, which may wait for a reader
 * forever, is not held: a quit cuts it short. */
static int write_counted(const char *output, const cli_target *target, const unsigned char *data, size_t size,
                         size_t *done_count) {
    const int hold = target->kind == CLI_OUT_FILE || target->kind == CLI_OUT_NEW_FILE;
    if (hold) pthread_mutex_lock(&write_lock);
    const int ok = cli_write_output(output, data, size);
    if (!hold) pthread_mutex_lock(&write_lock);
    if (ok && done_count) ++*done_count;
    pthread_mutex_unlock(&write_lock);
    return ok ? 0 : EXIT_FAILED;
}

/* n += 1 where the watcher may read it. */
static void count(size_t *n) {
    pthread_mutex_lock(&write_lock);
    ++*n;
    pthread_mutex_unlock(&write_lock);
}

/* The shortest decimal that reads back as the same float (0.01, not
 * 0.00999999978), into buf (32 bytes). */
static const char *float_text(float v, char *buf) {
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, 32, "%.*g", digits, v);
        if (strtof(buf, NULL) == v) return buf;
    }
    snprintf(buf, 32, "%.9g", v);
    return buf;
}

/* A value for the mark, percent-encoded (malloc'd; NULL: no memory). A
 * path spelled like one of the keywords (none, alpha, built-in) is
 * written as ./PATH, so a replay reads the file, not the keyword. */
static char *mark_value(const char *text, int is_path) {
    const int keyword = is_path && (!strcmp(text, "none") || !strcmp(text, "alpha") || !strcmp(text, "built-in"));
    const size_t size = 3 * (strlen(text) + 2) + 1;
    char *out = malloc(size), dotted[16];
    if (!out) return NULL;
    if (keyword) snprintf(dotted, sizeof dotted, "./%s", text);
    cli_percent_encode(keyword ? dotted : text, out, size);
    return out;
}

/* Marks longer than this are not written whole: a JPEG comment holds 64
 * KiB, and the reader keeps as much. */
#define MARK_MAX 60000

/* The mark a dream's output carries (malloc'd; NULL: no memory): "deepdream
 * VERSION: from=SOURCE", then every parameter of the look as key=value, so
 * that --replay dreams the same bytes. One too long to record whole says
 * so, and a replay refuses it (it has no model= at its end). */
static char *dream_mark(const run *r, uint64_t source, int passed) {
    const options *o = r->o;
    char *layers = mark_value(r->spec, 0), *guide = mark_value(o->guide_path ? o->guide_path : "none", o->guide_path != NULL);
    char *mask = mark_value(o->params.mask_alpha ? "alpha" : o->mask_path ? o->mask_path : "none",
                            o->mask_path && !o->params.mask_alpha);
    char *model = mark_value(o->model_path ? o->model_path : "built-in", o->model_path != NULL);
    char *mark = malloc(MARK_MAX + 1), scale[32], step[32], octaves[16];
    if (!layers || !guide || !mask || !model || !mark) {
        free(mark);
        mark = NULL;
        goto done;
    }
    snprintf(octaves, sizeof octaves, "%d", o->params.octaves);
    if (o->params.octaves == 0) snprintf(octaves, sizeof octaves, "auto");
    const int n = snprintf(
        mark, MARK_MAX + 1,
        "deepdream %s: from=%016llx layers=%s octaves=%s octave-scale=%s steps=%d step-size=%s jitter=%d tile=%d "
        "max-size=%d seed=%llu arithmetic=%s kernels=%s guide=%s mask=%s invert-mask=%d preserve-colors=%d quality=%d "
        "model=%s",
        DD_VERSION_STRING, (unsigned long long)source, layers, octaves, float_text(o->params.octave_scale, scale),
        o->params.steps, float_text(o->params.step_size, step), o->params.jitter, o->params.tile, o->params.max_size,
        (unsigned long long)o->params.seed, o->params.fast && dd_fast_kernel() ? dd_fast_kernel() : "float32", kernels,
        guide, mask, o->params.invert_mask, o->params.preserve_colors, o->quality, model);
    /* A passed-through image in another format is converted; its mark says
     * so (a rerun still knows it for ours). */
    if (passed || n < 0 || n > MARK_MAX)
        snprintf(mark, MARK_MAX + 1, "deepdream %s: from=%016llx %s", DD_VERSION_STRING, (unsigned long long)source,
                 passed ? "passed through unchanged, too small to dream" : "parameters too long to record");
done:
    free(layers), free(guide), free(mask), free(model);
    return mark;
}

/* libjpeg's largest side. */
#define JPEG_MAX_SIDE 65500

/* One image: check the output's place, read, dream, encode, write. Returns
 * 0 (written, or passed through in place; counted in *done_count, may be
 * NULL, with the signals held so that a count is never lost), DREAM_SKIPPED, EXIT_FAILED,
 * EXIT_USAGE (an output that is no place for an image), or the signal exit
 * status when it was stopped before anything was written. */
static int dream_one(run *r, const char *input, const char *output, dd_format format, size_t *done_count) {
    const options *o = r->o;
    char in_name[4 * PATH_MAX + 8];
    snprintf(in_name, sizeof in_name, "%s", strcmp(input, "-") ? cli_quote(input) : "standard input");
    unsigned char *in_data = NULL, *out_data = NULL;
    size_t in_size = 0, out_size = 0;
    dd_image *image = NULL;
    cli_target target;
    dd_status st;
    int rc = cli_check_output(output, &target);
    if (rc) goto done;
    struct stat sb;
    if (o->in_place && (stat(input, &sb) != 0 || !S_ISREG(sb.st_mode))) {
        /* a FIFO or a device has no file to replace */
        fprintf(stderr, "%s: %s: not a regular file, cannot be dreamed in place\n", cli_prog, in_name);
        rc = EXIT_FAILED;
        goto done;
    }
    rc = EXIT_FAILED;
    cli_read_info ri;
    if (!cli_read_image(input, o->max_pixels, &ri, &in_data, &in_size)) goto done;
    if (o->in_place && ri.trailing) {
        fprintf(stderr, "%s: %s: holds more than one image; in place the others would be lost\n", cli_prog, in_name);
        goto done;
    }
    if ((st = dd_image_load_memory(in_data, in_size, o->max_pixels, &image))) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    if (o->in_place && o->skip_existing && cli_image_dreamed(image)) {
        rc = DREAM_SKIPPED;
        goto done;
    }
    if (format == DD_FORMAT_UNKNOWN) format = dd_image_format(image);
    const int w = dd_image_width(image), h = dd_image_height(image);
    if (format == DD_FORMAT_JPEG && (w > JPEG_MAX_SIDE || h > JPEG_MAX_SIDE)) {
        fprintf(stderr, "%s: %s: a JPEG is at most %d pixels a side; %s is %dx%d\n", cli_prog, cli_quote(output),
                JPEG_MAX_SIDE, in_name, w, h);
        goto done;
    }
    /* The dream does not carry the file's bytes (3 B/px for a PPM): a
     * pass-through reads the file again. Standard input, a pipe or a FIFO
     * cannot be read again: their bytes are kept. */
    const int reread = ri.regular && strcmp(input, "-");
    const uint64_t source = cli_source_id(in_data, in_size);
    if (reread) {
        free(in_data);
        in_data = NULL;
    }
    r->progress.name = in_name, r->progress.last_octave = -1;
    if (o->video) { /* a frame of a sequence; another size is another shot */
        if (r->clip && (r->clip_w != w || r->clip_h != h)) {
            if (!o->quiet)
                fprintf(stderr, "%s: %s: %dx%d after frames of %dx%d: a new clip starts here\n", cli_prog, in_name, w, h,
                        r->clip_w, r->clip_h);
            dd_clip_free(r->clip);
            r->clip = NULL;
        }
        st = r->clip ? DD_OK : dd_clip_new(r->model, &o->params, w, h, &r->clip);
        r->clip_w = w, r->clip_h = h;
        if (!st) st = dd_clip_dream(r->clip, image, cli_on_progress, &r->progress);
    } else {
        st = dd_dream(r->model, &o->params, image, cli_on_progress, &r->progress);
    }
    cli_progress_end_line(&r->progress);
    if (st == DD_ERR_CANCELLED) goto done;
    const int passed = st == DD_ERR_TOO_SMALL;
    if (passed) {
        if (!o->quiet) fprintf(stderr, "%s: %s: %s; passed through unchanged\n", cli_prog, in_name, cli_quote(dd_last_error()));
    } else if (st) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    /* A signal before the write: nothing is written, the image counts as
     * interrupted. Once the write has begun it is finished and counted. */
    if (cli_stop_signal) goto done;
    if (passed && same_format(image, format)) {
        /* Unchanged means the same bytes; in place there is nothing to do. */
        if (o->in_place) {
            rc = 0;
            if (done_count) count(done_count);
            goto done;
        }
        if (reread && !cli_read_image(input, 0, NULL, &in_data, &in_size)) goto done;
        rc = write_counted(output, &target, in_data, in_size, done_count);
        goto done;
    }
    char *comment = dream_mark(r, source, passed);
    if (!comment) {
        fprintf(stderr, "%s: %s: out of memory\n", cli_prog, cli_quote(output));
        goto done;
    }
    st = dd_image_save_memory(image, format, o->quality, comment, &out_data, &out_size);
    free(comment);
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(output), cli_quote(dd_last_error()));
        goto done;
    }
    if (cli_stop_signal) goto done;
    rc = write_counted(output, &target, out_data, out_size, done_count);
done:
    if (rc > 0 && cli_stop_signal) rc = stopped_status();
    free(in_data);
    free(out_data);
    dd_image_free(image);
    return rc;
}

/* A "FMT:" prefix names one of the formats, nothing else: 12:30.png and
 * ./x:y.png are names. */
static dd_format output_prefix(const char *output, const char **path) {
    const char *colon = strchr(output, ':');
    *path = output;
    if (!colon || colon - output > 4 || colon == output) return DD_FORMAT_UNKNOWN;
    char fmt[8];
    memcpy(fmt, output, (size_t)(colon - output));
    fmt[colon - output] = '\0';
    if (strchr(fmt, '.') || strchr(fmt, '/')) return DD_FORMAT_UNKNOWN;
    const dd_format f = dd_format_from_name(fmt);
    if (f != DD_FORMAT_UNKNOWN) *path = colon + 1;
    return f;
}

/* The --mask image, read and decoded once before any dream (the same
 * bounded reader as the inputs); NULL after one line saying why. */
static dd_image *load_mask(const char *path, uint64_t max_pixels) {
    if (!strcmp(path, "-") && isatty(STDIN_FILENO)) {
        fprintf(stderr, "%s: standard input: a terminal, not a mask (pipe one in)\n", cli_prog);
        return NULL;
    }
    unsigned char *data = NULL;
    size_t size = 0;
    if (!cli_read_image(path, max_pixels, NULL, &data, &size)) return NULL;
    dd_image *mask = NULL;
    if (dd_image_load_memory(data, size, max_pixels, &mask) != DD_OK) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, strcmp(path, "-") ? cli_quote(path) : "standard input",
                cli_quote(dd_last_error()));
        mask = NULL;
    }
    free(data);
    return mask;
}

/* The process's peak resident memory so far, in bytes (0 where unknown). */
static double peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (double)ru.ru_maxrss; /* bytes there, KiB on Linux and the BSDs */
#else
    return 1024.0 * (double)ru.ru_maxrss;
#endif
}

/* --dry-run for one input: read and decode it as a dream would (EXIF
 * orientation may swap its sides), plan the dream and print the plan on
 * standard output; nothing is dreamed or written. The memory is the plan's
 * peak plus what the program held before the first image (code, libraries,
 * the model); the time is the plan's at the speed measured here once per
 * run. Returns as dream_one. */
static int dry_one(run *r, const char *input) {
    const options *o = r->o;
    char in_name[4 * PATH_MAX + 8];
    snprintf(in_name, sizeof in_name, "%s", strcmp(input, "-") ? cli_quote(input) : "standard input");
    unsigned char *in_data = NULL;
    size_t in_size = 0;
    dd_image *image = NULL;
    dd_dream_plan plan;
    int rc = EXIT_FAILED;
    dd_status st;
    cli_read_info ri;
    if (!cli_read_image(input, o->max_pixels, &ri, &in_data, &in_size)) goto done;
    if ((st = dd_image_load_memory(in_data, in_size, o->max_pixels, &image))) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    /* A dream keeps the bytes of an input it cannot read again (dream_one). */
    const double kept_bytes = ri.regular && strcmp(input, "-") ? 0 : (double)in_size;
    const int w = dd_image_width(image), h = dd_image_height(image);
    if (o->in_place && o->skip_existing && cli_image_dreamed(image)) {
        printf("%s: %dx%d, dreamed already: would be skipped\n", in_name, w, h);
        rc = DREAM_SKIPPED;
        goto done;
    }
    st = dd_dream_plan_for(r->model, &o->params, w, h, dd_image_channels(image), dd_image_depth(image), &plan);
    if (st == DD_ERR_TOO_SMALL) { /* the dream's own note, and its outcome */
        if (!o->quiet) fprintf(stderr, "%s: %s: %s; passed through unchanged\n", cli_prog, in_name, cli_quote(dd_last_error()));
        printf("%s: %dx%d, too small: would pass through unchanged\n", in_name, w, h);
        rc = 0;
        goto done;
    }
    if (st) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    if (r->speed.flops_per_second <= 0 && (st = dd_measure_speed(r->model, &o->params, &r->speed))) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    const double mib = 1024.0 * 1024.0;
    printf("%s: %dx%d, %d octave%s of %d step%s\n", in_name, w, h, plan.n_octaves, plan.n_octaves == 1 ? "" : "s",
           o->params.steps, o->params.steps == 1 ? "" : "s");
    for (int k = 0; k < plan.n_octaves; k++) {
        const dd_octave_plan *oc = &plan.octave[k];
        printf("  octave %d: %dx%d, %dx%d tile%s of %dx%d\n", k + 1, oc->width, oc->height, oc->tiles_x, oc->tiles_y,
               oc->tiles_x * oc->tiles_y == 1 ? "" : "s", oc->tile_width, oc->tile_height);
    }
    printf("  peak memory: %.1f MiB (the dream %.1f MiB, the program and model %.1f MiB)\n",
           ((double)plan.peak_bytes + kept_bytes + r->before_bytes) / mib, ((double)plan.peak_bytes + kept_bytes) / mib,
           r->before_bytes / mib);
    printf("  time: %.1f s (%.0f passes of %.1f ms and %.1f GFLOP at %.1f GFLOP/s, measured)\n",
           dd_dream_plan_seconds(&plan, &r->speed), plan.passes, 1e3 * r->speed.seconds_per_pass, plan.flops / 1e9,
           r->speed.flops_per_second / 1e9);
    rc = 0;
done:
    if (rc > 0 && cli_stop_signal) rc = stopped_status();
    free(in_data);
    dd_image_free(image);
    return rc;
}

/* INPUT OUTPUT: the output's format from a FMT: prefix or its extension. */
static int run_single(run *r) {
    const options *o = r->o;
    const char *input = o->inputs[0], *output = o->inputs[1], *path;
    dd_format format = output_prefix(output, &path);
    if (format == DD_FORMAT_UNKNOWN && strcmp(output, "-")) {
        format = dd_format_from_name(output);
        if (format == DD_FORMAT_UNKNOWN)
            return usage_error("%s: cannot tell the output format (use .png, .jpg, .ppm, .pgm, .pam or a FMT: prefix)",
                               output);
    }
    if (!*path) return usage_error("%s: no output name", output);
    /* A terminal holds no image: waiting on it would look like a hang. */
    if (!strcmp(input, "-") && isatty(STDIN_FILENO)) {
        fprintf(stderr, "%s: standard input: a terminal, not an image (pipe one in)\n", cli_prog);
        return EXIT_USAGE;
    }
    /* Never overwrite the input (--in-place is the way), whatever the path
     * or link. */
    struct stat a, b;
    if (strcmp(input, "-") && strcmp(path, "-") && stat(input, &a) == 0 && stat(path, &b) == 0 &&
        S_ISREG(b.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        fprintf(stderr, "%s: %s: would overwrite the input %s (use --in-place)\n", cli_prog, cli_quote(path),
                cli_quote(input));
        return EXIT_USAGE;
    }
    r->progress.total = 1;
    const int rc = o->dry_run ? dry_one(r, input) : dream_one(r, input, path, format, NULL);
    return rc == DREAM_SKIPPED ? 0 : rc;
}

/* OUTDIR must be a directory, or not exist yet (made once the plan is
 * sound); a file or a dangling link is found before any work. */
static int check_out_dir(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return 0;
        fprintf(stderr, "%s: %s: not a directory\n", cli_prog, cli_quote(dir));
        return EXIT_USAGE;
    }
    if (errno == ENOENT && lstat(dir, &sb) == 0) {
        fprintf(stderr, "%s: %s: a dangling symbolic link\n", cli_prog, cli_quote(dir));
        return EXIT_USAGE;
    }
    if (errno != ENOENT) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(dir), strerror(errno));
        return EXIT_FAILED;
    }
    return 0;
}

static int make_out_dir(const char *dir) {
    char *slashed = malloc(strlen(dir) + 2);
    if (!slashed) return 0;
    sprintf(slashed, "%s/", dir);
    const int ok = cli_make_parents(slashed);
    free(slashed);
    return ok;
}

/* Names compared with their runs of digits as numbers, so frame9.png comes
 * before frame10.png whether or not the numbers are padded. */
static int natural_compare(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1])) a++;
            while (*b == '0' && isdigit((unsigned char)b[1])) b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) la++;
            while (isdigit((unsigned char)b[lb])) lb++;
            if (la != lb) return la < lb ? -1 : 1;
            const int c = strncmp(a, b, la);
            if (c) return c;
            a += la, b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++, b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int by_frame_number(const void *a, const void *b) {
    const cli_job *x = a, *y = b;
    const int c = natural_compare(x->input, y->input);
    return c ? c : strcmp(x->input, y->input);
}

/* --video -o --skip-existing: the sequence goes on after frames dreamed
 * earlier from the last of them as written (its photo and its dream): the
 * same bytes as a run never stopped when the frames are PNG, PNM or PAM (a
 * JPEG's dream was rounded twice). When they cannot be read the next frame
 * is a first frame: a new clip, every step. */
static void resume_clip(run *r, const cli_job *j) {
    dd_image *photo = cli_load_quietly(j->input), *dreamed = cli_load_quietly(j->output);
    dd_status st = photo && dreamed ? DD_OK : DD_ERR_IO;
    if (!st && r->clip && (r->clip_w != dd_image_width(photo) || r->clip_h != dd_image_height(photo))) {
        dd_clip_free(r->clip);
        r->clip = NULL;
    }
    if (!st && !r->clip) {
        st = dd_clip_new(r->model, &r->o->params, dd_image_width(photo), dd_image_height(photo), &r->clip);
        r->clip_w = dd_image_width(photo), r->clip_h = dd_image_height(photo);
    }
    if (!st) st = dd_clip_resume(r->clip, photo, dreamed);
    if (st) { /* the next frame is a first frame */
        dd_clip_free(r->clip);
        r->clip = NULL;
    }
    if (st && !r->o->quiet)
        fprintf(stderr, "%s: %s: cannot go on from it (%s); the next frame starts afresh\n", cli_prog,
                cli_quote(j->output), st == DD_ERR_IO ? "unreadable" : cli_quote(dd_last_error()));
    dd_image_free(photo), dd_image_free(dreamed);
}

static int run_batch(run *r) {
    const options *o = r->o;
    cli_plan plan = {0};
    pthread_mutex_lock(&write_lock);
    summary_owed = !o->quiet && !o->dry_run;
    pthread_mutex_unlock(&write_lock);
    int rc = o->out_dir ? check_out_dir(o->out_dir) : 0;
    for (int i = 0; o->video && rc == 0 && i < o->n_inputs; i++) {
        const char *dot = strrchr(o->inputs[i], '.');
        if (dot && !strcasecmp(dot, ".y4m"))
            rc = usage_error("%s: a y4m stream: --video -o OUTDIR dreams image frames; stream it with --video INPUT OUTPUT",
                             o->inputs[i]);
    }
    if (rc == 0) rc = cli_plan_make(&plan, o->inputs, o->n_inputs, o->out_dir ? o->out_dir : "", o->recursive, o->format,
                       o->in_place, o->quiet);
    if (rc == 0 && o->out_dir && !o->dry_run && !cli_stop_signal && !make_out_dir(o->out_dir)) rc = EXIT_FAILED;
    if (rc) { /* refused before any work: no summary */
        pthread_mutex_lock(&write_lock);
        summary_owed = 0;
        pthread_mutex_unlock(&write_lock);
        cli_plan_free(&plan);
        return rc;
    }
    /* Frames are dreamed in the order of their numbers, one clip. */
    if (o->video && plan.count) qsort(plan.jobs, plan.count, sizeof *plan.jobs, by_frame_number);
    const cli_job *skipped = NULL; /* the frame before, when it was skipped */
    size_t total = 0;
    pthread_mutex_lock(&write_lock);
    count_failed = plan.unreadable;
    pthread_mutex_unlock(&write_lock);
    /* A shard counts in the sorted list of every name found, before any
     * is dropped: what an earlier shard wrote cannot move the others. */
#define IN_SHARD(j) (o->shard_n == 0 || (long)((j)->order % (size_t)o->shard_n) == o->shard_k)
    for (size_t i = 0; i < plan.count; i++) total += IN_SHARD(&plan.jobs[i]);
    r->progress.total = total;
    for (size_t i = 0; i < plan.count && !cli_stop_signal; i++) {
        const cli_job *j = &plan.jobs[i];
        if (!IN_SHARD(j)) continue;
        if (o->skip_existing && !o->in_place && complete_output(j->output)) {
            if (o->dry_run) printf("%s: %s exists: would be skipped\n", cli_quote(j->input), cli_quote(j->output));
            count(&count_skipped);
            skipped = j;
            r->progress.done++;
            continue;
        } else if (o->dry_run) {
            const int one = dry_one(r, j->input);
            if (one == DREAM_SKIPPED) count(&count_skipped);
            else if (one == EXIT_FAILED) count(&count_failed);
        } else if (!cli_make_parents(j->output)) {
            count(&count_failed);
        } else {
            if (o->video && skipped) resume_clip(r, skipped);
            const int one = dream_one(r, j->input, j->output, o->format, &count_done);
            if (one == DREAM_SKIPPED) count(&count_skipped);
            else if (one == EXIT_FAILED || one == EXIT_USAGE) count(&count_failed);
        }
        r->progress.done++;
        skipped = NULL;
    }
#undef IN_SHARD
    dd_clip_free(r->clip);
    r->clip = NULL;
    pthread_mutex_lock(&write_lock); /* the summary is printed once: here, or by the watcher */
    if (!o->quiet && !o->dry_run)
        fprintf(stderr, "%s: %zu done, %zu skipped, %zu failed%s\n", cli_prog, count_done, count_skipped,
                count_failed, cli_stop_signal ? ", interrupted" : "");
    summary_owed = 0;
    pthread_mutex_unlock(&write_lock);
    cli_plan_free(&plan);
    if (cli_stop_signal) return stopped_status();
    return count_failed ? EXIT_FAILED : 0;
}

/* --guide: the guide's features at the objective's layers, once for every
 * input, before any dream. Returns -1 to go on, else an exit status. */
static int load_guide(const options *o, const dd_model *model, const char *spec, dd_guide **guide) {
    for (int t = 0; t < o->params.n_terms; t++)
        if (o->params.terms[t].channel >= 0)
            return usage_error("--guide matches whole layers: '%s' names a channel", spec);
    unsigned char *data = NULL;
    size_t size = 0;
    dd_image *image = NULL;
    if (!cli_read_image(o->guide_path, o->max_pixels, NULL, &data, &size)) return EXIT_FAILED;
    dd_status st = dd_image_load_memory(data, size, o->max_pixels, &image);
    free(data);
    if (!st) st = dd_guide_new(model, o->params.terms, o->params.n_terms, image, o->params.threads, guide);
    dd_image_free(image);
    if (!st) return -1;
    fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(o->guide_path), cli_quote(dd_last_error()));
    return EXIT_FAILED;
}

/* ---- --video: a y4m stream in, one dreamed frame at a time out ---- */

static long video_read(void *user, void *buf, size_t size) {
    const int fd = *(const int *)user;
    for (;;) {
        const ssize_t n = read(fd, buf, size);
        if (n < 0 && errno == EINTR && !cli_stop_signal) continue;
        return (long)n;
    }
}

/* A frame is written whole with a quit held off (write_lock), so the
 * stream ends at a frame boundary. A FIFO or device write, which may wait
 * for a reader forever, is not held. */
static int video_write(void *user, const void *data, size_t size) {
    cli_stream *s = user;
    const int hold = s->t.kind == CLI_OUT_FILE || s->t.kind == CLI_OUT_NEW_FILE;
    if (hold) pthread_mutex_lock(&write_lock);
    const int ok = cli_stream_write(s, data, size);
    if (hold) pthread_mutex_unlock(&write_lock);
    return ok ? 0 : -1;
}

static int video_progress(void *user, int octave, int octaves, int step, int steps) {
    (void)user, (void)octave, (void)octaves, (void)step, (void)steps;
    return cli_stop_signal != 0;
}

/* A frame through the clip; 0 when it was dreamed (or passed through: a
 * size too small to dream is noted once), 1 when the clip ended
 * (cancelled), -1 on an error (printed). */
static int dream_frame(run *r, dd_clip **clip, dd_image *frame, const char *name, long i, int *noted_small) {
    const options *o = r->o;
    if (o->params.steps == 0 && o->params.frame_steps == 0) return 0; /* --steps 0: colours only */
    dd_status st = DD_OK;
    if (!*clip && !*noted_small) st = dd_clip_new(r->model, &o->params, dd_image_width(frame), dd_image_height(frame), clip);
    if (!st && *clip) st = dd_clip_dream(*clip, frame, video_progress, NULL);
    if (st == DD_ERR_CANCELLED) return 1;
    if (st == DD_ERR_TOO_SMALL) {
        if (!o->quiet && !(*noted_small)++) {
            cli_progress_end_line(&r->progress);
            fprintf(stderr, "%s: %s: %s; frames passed through unchanged\n", cli_prog, name, cli_quote(dd_last_error()));
        }
        *noted_small = 1;
        return 0;
    }
    if (st) {
        cli_progress_end_line(&r->progress);
        fprintf(stderr, "%s: %s: frame %ld: %s\n", cli_prog, name, i, cli_quote(dd_last_error()));
        return -1;
    }
    return 0;
}

/* The input's name for messages into name; 1 (said why) when it is a
 * terminal, which holds no what. */
static int clip_input(const char *input, const char *what, char *name, size_t size) {
    snprintf(name, size, "%s", strcmp(input, "-") ? cli_quote(input) : "standard input");
    if (strcmp(input, "-") || !isatty(STDIN_FILENO)) return 0;
    fprintf(stderr, "%s: standard input: a terminal, not %s (pipe one in)\n", cli_prog, what);
    return 1;
}

/* An output named .mp4 or .png would get y4m bytes under a misleading
 * name: a file with an extension must be .y4m (pipes, devices and names
 * without one take the stream as it is). */
static int check_y4m_name(const char *output, const char *option) {
    struct stat b;
    const char *base = strrchr(output, '/') ? strrchr(output, '/') + 1 : output;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base && strcasecmp(dot, ".y4m") && (stat(output, &b) != 0 || S_ISREG(b.st_mode)))
        return usage_error(strcmp(option, "--video") ? "%s: --zoom writes YUV4MPEG2: name it .y4m, or pipe '-' into ffmpeg"
                                                     : "%s: --video writes YUV4MPEG2: name it .y4m, or pipe '-' into ffmpeg",
                           output);
    return 0;
}

/* Frames are read, dreamed and written one at a time: memory is a frame's
 * and the clip's, whatever the clip's length. The model is loaded and the
 * nets planned once (dd_clip); each frame starts from the one before's
 * detail carried along the optical flow. Every failure after the header
 * keeps what was written: a y4m cut at a frame boundary is a valid stream. */
static int run_video(run *r) {
    const options *o = r->o;
    const char *input = o->inputs[0], *output = o->inputs[1];
    char in_name[4 * PATH_MAX + 8];
    if (clip_input(input, "a video", in_name, sizeof in_name)) return EXIT_USAGE;
    struct stat a, b;
    if (strcmp(input, "-") && strcmp(output, "-") && stat(input, &a) == 0 && stat(output, &b) == 0 &&
        S_ISREG(b.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        fprintf(stderr, "%s: %s: would overwrite the input %s\n", cli_prog, cli_quote(output), cli_quote(input));
        return EXIT_USAGE;
    }
    int rc = check_y4m_name(output, "--video");
    if (rc) return rc;
    cli_target target;
    if ((rc = cli_check_output(output, &target))) return rc;
    int fd = STDIN_FILENO;
    if (strcmp(input, "-") && (fd = open(input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, strerror(errno));
        return cli_stop_signal ? stopped_status() : EXIT_FAILED;
    }
    dd_y4m_reader *reader = NULL;
    dd_y4m_writer *writer = NULL;
    dd_image *frame = NULL;
    dd_clip *clip = NULL;
    cli_stream out;
    int opened = 0, started = 0, noted_small = 0;
    long total = 0, written = 0;
    rc = EXIT_FAILED;
    if (dd_y4m_reader_new(video_read, &fd, o->max_pixels, &reader)) {
        if (!cli_stop_signal) fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    if (!(opened = cli_stream_open(output, &out))) goto done;
    if (dd_y4m_writer_new(reader, video_write, &out, &writer)) {
        if (!out.failed) fprintf(stderr, "%s: %s: %s\n", cli_prog, out.name, cli_quote(dd_last_error()));
        goto done; /* else the close says why */
    }
    started = 1;
    /* A file of bare FRAME lines holds a whole number of frames: its count
     * is known. */
    dd_y4m_info info;
    dd_y4m_reader_info(reader, &info);
    if (fd != STDIN_FILENO && fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && (size_t)a.st_size > info.header_bytes &&
        ((size_t)a.st_size - info.header_bytes) % (info.frame_bytes + 6) == 0)
        total = (long)(((size_t)a.st_size - info.header_bytes) / (info.frame_bytes + 6));
    cli_progress *p = &r->progress;
    p->start_s = cli_now();
    for (long i = 1; !cli_stop_signal; i++) {
        dd_image_free(frame);
        frame = NULL;
        if (dd_y4m_read_frame(reader, &frame)) {
            cli_progress_end_line(p);
            if (!cli_stop_signal) fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
            goto done;
        }
        if (!frame) {
            rc = 0;
            break;
        }
        cli_frame_progress(p, in_name, i, total);
        const int got = dream_frame(r, &clip, frame, in_name, i, &noted_small);
        if (got > 0) break;
        if (got < 0) goto done;
        if (dd_y4m_write_frame(writer, frame)) {
            if (!out.failed) fprintf(stderr, "%s: %s: %s\n", cli_prog, out.name, cli_quote(dd_last_error()));
            goto done; /* else the close says why */
        }
        written++;
    }
    cli_progress_end_line(p);
done:
    dd_image_free(frame);
    dd_clip_free(clip);
    dd_y4m_writer_free(writer);
    dd_y4m_reader_free(reader);
    /* Whatever was written is whole frames: kept, also after a failure;
     * a header alone only when the input had no frames. */
    if (opened && !cli_stream_close(&out, started && (written > 0 || rc == 0))) rc = EXIT_FAILED;
    if (fd != STDIN_FILENO) close(fd);
    if (cli_stop_signal) rc = stopped_status();
    return rc;
}

/* ---- --zoom: the infinite zoom, one photo into a y4m stream ---- */

/* Frame 1 is the photo's dream; each next one is the frame before zoomed
 * and turned about the centre, then dreamed again (--frame-steps). */
static int run_zoom(run *r) {
    const options *o = r->o;
    const char *input = o->inputs[0], *output = o->inputs[1];
    char in_name[4 * PATH_MAX + 8];
    if (clip_input(input, "an image", in_name, sizeof in_name)) return EXIT_USAGE;
    int rc = check_y4m_name(output, "--zoom");
    if (rc) return rc;
    cli_target target;
    if ((rc = cli_check_output(output, &target))) return rc;
    unsigned char *data = NULL;
    size_t size = 0;
    dd_image *frame = NULL;
    dd_clip *clip = NULL;
    dd_y4m_writer *writer = NULL;
    cli_stream out;
    int opened = 0, started = 0;
    long written = 0;
    rc = EXIT_FAILED;
    if (!cli_read_image(input, o->max_pixels, NULL, &data, &size)) goto done;
    if (dd_image_load_memory(data, size, o->max_pixels, &frame)) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    dd_params params = o->params;
    params.blend = 0; /* the frame is the last dream: nothing to carry along a flow */
    const int w = dd_image_width(frame), h = dd_image_height(frame);
    if (dd_clip_new(r->model, &params, w, h, &clip)) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, in_name, cli_quote(dd_last_error()));
        goto done;
    }
    if (!(opened = cli_stream_open(output, &out))) goto done;
    char header[128];
    snprintf(header, sizeof header, "YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg XYSCSS=420JPEG", w, h);
    if (dd_y4m_writer_new_header(header, video_write, &out, &writer)) {
        if (!out.failed) fprintf(stderr, "%s: %s: %s\n", cli_prog, out.name, cli_quote(dd_last_error()));
        goto done;
    }
    started = 1;
    cli_progress *p = &r->progress;
    p->start_s = cli_now();
    for (long i = 1; i <= o->frames && !cli_stop_signal; i++) {
        cli_frame_progress(p, in_name, i, o->frames);
        dd_status st = i > 1 ? dd_image_zoom(frame, o->zoom, o->rotate) : DD_OK;
        if (!st) st = dd_clip_dream(clip, frame, video_progress, NULL);
        if (st == DD_ERR_CANCELLED) break;
        if (st) {
            cli_progress_end_line(p);
            fprintf(stderr, "%s: %s: frame %ld: %s\n", cli_prog, in_name, i, cli_quote(dd_last_error()));
            goto done;
        }
        if (dd_y4m_write_frame(writer, frame)) {
            if (!out.failed) fprintf(stderr, "%s: %s: %s\n", cli_prog, out.name, cli_quote(dd_last_error()));
            goto done;
        }
        written++;
    }
    cli_progress_end_line(p);
    rc = 0;
done:
    free(data);
    dd_image_free(frame);
    dd_clip_free(clip);
    dd_y4m_writer_free(writer);
    if (opened && !cli_stream_close(&out, started && written > 0)) rc = EXIT_FAILED;
    if (cli_stop_signal) rc = stopped_status();
    return rc;
}

/* Everything after the options are read. */
static int run_options(options *op) {
    options o = *op;
    int rc;
    /* DD_CPU chooses the kernels (and so the last bits): a value that names
     * no level is a usage error, found before any work. */
    if (dd_cpu_kernels(&kernels) != DD_OK) {
        fprintf(stderr, "%s: %s\n", cli_prog, cli_quote(dd_last_error()));
        return EXIT_USAGE;
    }
    if (o.replay_kernels && strcmp(o.replay_kernels, kernels) && !o.quiet)
        fprintf(stderr, "%s: %s was made with the %s kernels, this CPU runs %s: the bytes may differ\n", cli_prog,
                cli_quote(o.replay_path), cli_quote(o.replay_kernels), kernels);
    /* Threads beyond twice the cores only cost: 1024 of them took a minute
     * on an image that needs a second. */
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && o.params.threads > 2 * cores) {
        if (!o.quiet)
            fprintf(stderr, "%s: --threads %d is more than twice the %ld online cores; using %ld\n", cli_prog,
                    o.params.threads, cores, 2 * cores);
        o.params.threads = (int)(2 * cores);
    }
    o.params.should_stop = cli_should_stop;
    watch_for_signals();

    dd_model *model = NULL;
    dd_status st = o.model_path ? dd_model_load_file(o.model_path, &model) : dd_model_load_default(&model);
    if (st) {
        fprintf(stderr, "%s: %s\n", cli_prog, cli_quote(dd_last_error()));
        return EXIT_FAILED;
    }
    if (o.list_layers) {
        for (int i = 0; i < dd_model_layer_count(model); i++)
            printf("%-22s %d\n", dd_model_layer_name(model, i), dd_model_layer_channels(model, i));
        dd_model_free(model);
        return stdout_status();
    }
    dd_term terms[MAX_TERMS];
    int n_terms = 0;
    const char *spec = o.layers ? o.layers : o.params.layers ? o.params.layers : dd_model_default_layers(model);
    if (dd_terms_parse(model, spec, terms, MAX_TERMS, &n_terms)) {
        fprintf(stderr, "%s: %s; layers are:", cli_prog, cli_quote(dd_last_error()));
        for (int i = 0; i < dd_model_layer_count(model); i++)
            fprintf(stderr, " %s", cli_quote(dd_model_layer_name(model, i)));
        fputc('\n', stderr);
        dd_model_free(model);
        return EXIT_USAGE;
    }
    o.params.terms = terms, o.params.n_terms = n_terms;
    dd_guide *guide = NULL;
    if (o.guide_path && (rc = load_guide(&o, model, spec, &guide)) >= 0) {
        dd_model_free(model);
        return rc;
    }
    o.params.guide = guide;
    dd_image *mask = NULL;
    if (o.mask_path && !o.params.mask_alpha) {
        if (!(mask = load_mask(o.mask_path, o.max_pixels))) {
            dd_guide_free(guide);
            dd_model_free(model);
            return cli_stop_signal ? stopped_status() : EXIT_FAILED;
        }
        o.params.mask = mask;
    }

    run r = {.o = &o, .model = model, .spec = spec};
    r.progress.mode = o.quiet ? 0 : isatty(STDERR_FILENO) ? 1 : o.progress ? 2 : 0;
    erase_line = r.progress.mode == 1; /* before the batch starts: no lock needed */
    r.progress.start_s = cli_now();
    if (o.dry_run) r.before_bytes = peak_rss_bytes();
    rc = o.video && !o.out_dir ? run_video(&r) : o.zoom_mode ? run_zoom(&r) : o.out_dir || o.in_place ? run_batch(&r) : run_single(&r);
    dd_guide_free(guide);
    dd_model_free(model);
    dd_image_free(mask);
    if (o.dry_run && stdout_status()) return EXIT_FAILED;
    return rc;
}

int main(int argc, char **argv) {
    hold_standard_descriptors();
    options o = {.params = dd_params_default(), .quality = 92, .max_pixels = 100000000ull};
    int rc = parse_options(argc, argv, &o);
    if (rc < 0) rc = run_options(&o);
    cli_replay_free(&o.replay);
    return rc;
}
