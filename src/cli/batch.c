/* The batch plan: inputs (files and directories) expanded into jobs in a
 * stable sorted order, each with its output path; collisions and inputs
 * that would be overwritten are found before any work. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

dd_format cli_sniff_format(const char *path) {
    unsigned char m[8] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return DD_FORMAT_UNKNOWN;
    ssize_t n = read(fd, m, sizeof m);
    close(fd);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n == 8 && !memcmp(m, png, 8)) return DD_FORMAT_PNG;
    if (n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff) return DD_FORMAT_JPEG;
    if (n >= 2 && m[0] == 'P' && (m[1] == '5' || m[1] == '6')) return DD_FORMAT_PNM;
    if (n >= 2 && m[0] == 'P' && m[1] == '7') return DD_FORMAT_PAM;
    return DD_FORMAT_UNKNOWN;
}

static const char *format_extension(dd_format f) {
    switch (f) {
    case DD_FORMAT_PNG: return "png";
    case DD_FORMAT_JPEG: return "jpg";
    case DD_FORMAT_PNM: return "pnm";
    case DD_FORMAT_PGM: return "pgm";
    case DD_FORMAT_PPM: return "ppm";
    case DD_FORMAT_PAM: return "pam";
    default: return "img";
    }
}

static char *join(const char *a, const char *b) {
    const size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    size_t at = la;
    if (la && a[la - 1] != '/') s[at++] = '/';
    memcpy(s + at, b, lb + 1);
    return s;
}

/* Output path for input `rel` (relative to out_dir): the same name when
 * the format stays, else the extension of the new format. */
static char *output_path(const char *out_dir, const char *rel, dd_format in_format, dd_format format) {
    if (format == DD_FORMAT_UNKNOWN || format == in_format) return join(out_dir, rel);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    const char *dot = strrchr(base, '.');
    const size_t stem = dot && dot != base ? (size_t)(dot - rel) : strlen(rel);
    const char *ext = format_extension(format);
    char *name = malloc(stem + strlen(ext) + 2);
    if (!name) return NULL;
    memcpy(name, rel, stem);
    sprintf(name + stem, ".%s", ext);
    char *s = join(out_dir, name);
    free(name);
    return s;
}

typedef struct entry {
    char *input, *rel;
    dd_format format;
} entry;

typedef struct entries {
    entry *items;
    size_t count, cap;
    int failed;
} entries;

static int add_entry(entries *e, const char *input, const char *rel, dd_format format) {
    if (e->count == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        entry *n = realloc(e->items, cap * sizeof *n);
        if (!n) return 0;
        e->items = n, e->cap = cap;
    }
    entry *x = &e->items[e->count];
    x->input = strdup(input), x->rel = strdup(rel), x->format = format;
    if (!x->input || !x->rel) {
        free(x->input), free(x->rel);
        return 0;
    }
    e->count++;
    return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* The directories from an input down to the one being read: a symbolic
 * link back to one of them is a loop, not more input. */
typedef struct ancestor {
    dev_t dev;
    ino_t ino;
    const struct ancestor *up;
} ancestor;

/* Adds the images in dir (descending when recursive); dotfiles are skipped,
 * which keeps our own temporary files out, and so is the output directory
 * (skip, may be NULL) when it lies inside an input: a rerun or a later
 * shard sees the same inputs as the first. Stops early after a signal. */
static int walk(entries *e, const char *dir, const char *rel, int recursive, int quiet, const ancestor *up,
                const struct stat *skip) {
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(dir), strerror(errno));
        e->failed++;
        return 1;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        char *path = NULL, *sub = NULL;
        struct stat sb;
        if (name[0] == '.' || !ok || cli_stop_signal) goto next;
        path = join(dir, name);
        sub = *rel ? join(rel, name) : strdup(name);
        if (!path || !sub) {
            ok = 0;
            goto next;
        }
        if (stat(path, &sb) != 0) {
            fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(errno));
            e->failed++;
        } else if (S_ISDIR(sb.st_mode)) {
            const ancestor *a = up;
            while (a && !(a->dev == sb.st_dev && a->ino == sb.st_ino)) a = a->up;
            if (skip && skip->st_dev == sb.st_dev && skip->st_ino == sb.st_ino) {
                /* the output directory: what we wrote is not input */
            } else if (!recursive) {
                if (!quiet) fprintf(stderr, "%s: %s: a directory, skipped (use -r)\n", cli_prog, cli_quote(path));
            } else if (a) {
                if (!quiet) fprintf(stderr, "%s: %s: a link back to a directory above it, skipped\n", cli_prog, cli_quote(path));
            } else {
                const ancestor here = {sb.st_dev, sb.st_ino, up};
                ok = walk(e, path, sub, recursive, quiet, &here, skip);
            }
        } else if (S_ISREG(sb.st_mode)) {
            dd_format f = cli_sniff_format(path);
            if (f != DD_FORMAT_UNKNOWN) ok = add_entry(e, path, sub, f);
            else if (access(path, R_OK) != 0) {
                fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(errno));
                e->failed++;
            } else if (!quiet) fprintf(stderr, "%s: %s: not an image, skipped\n", cli_prog, cli_quote(path));
        }
    next:
        free(path), free(sub), free(names[i]);
    }
    free(names);
    return ok;
}

static int by_input(const void *a, const void *b) {
    return strcmp(((const entry *)a)->input, ((const entry *)b)->input);
}

static int by_output(const void *a, const void *b) {
    return strcmp((*(cli_job *const *)a)->output, (*(cli_job *const *)b)->output);
}

typedef struct inode {
    dev_t dev;
    ino_t ino;
    size_t job; /* index in the plan */
} inode;

static int by_inode(const void *a, const void *b) {
    const inode *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    return (x->ino > y->ino) - (x->ino < y->ino);
}

int cli_image_dreamed(const dd_image *im) {
    const char *c = dd_image_comment(im);
    return c && !strncmp(c, "deepdream ", 10);
}

uint64_t cli_source_id(const unsigned char *data, size_t size) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}

/* Do two regular files hold the same bytes? */
static int same_contents(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fa ? fopen(b, "rb") : NULL;
    int same = fa && fb;
    unsigned char x[1 << 14], y[1 << 14];
    while (same) {
        const size_t n = fread(x, 1, sizeof x, fa), m = fread(y, 1, sizeof y, fb);
        same = n == m && !memcmp(x, y, n);
        if (n < sizeof x) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Was the file at path written by a dream of source: a copy of it (an
 * image passed through unchanged), or an image whose mark names source's
 * bytes? A dream of another file (or of an earlier version of this one, in
 * place), or a file of the user's own, is not. */
static int written_from(const char *path, const char *source) {
    struct stat a, b;
    if (stat(path, &a) != 0 || !S_ISREG(a.st_mode)) return 0;
    if (stat(source, &b) == 0 && S_ISREG(b.st_mode) && a.st_size == b.st_size && same_contents(path, source))
        return 1;
    unsigned char *src;
    size_t src_size;
    dd_image *im = cli_load_quietly(path);
    int ours = im && cli_image_dreamed(im);
    if (ours && cli_read_quietly(source, &src, &src_size)) {
        char from[32];
        snprintf(from, sizeof from, ": from=%016llx ", (unsigned long long)cli_source_id(src, src_size));
        ours = strstr(dd_image_comment(im), from) != NULL;
        free(src);
    } else {
        ours = 0;
    }
    dd_image_free(im);
    return ours;
}

/* Drops the jobs whose drop[] is set, keeping the order. */
static void compact(cli_plan *plan, const unsigned char *drop) {
    size_t kept = 0;
    for (size_t i = 0; i < plan->count; i++) {
        if (drop[i]) {
            free(plan->jobs[i].input), free(plan->jobs[i].output);
            continue;
        }
        plan->jobs[kept++] = plan->jobs[i];
    }
    plan->count = kept;
}

static int by_inode_then_job(const void *a, const void *b) {
    const int c = by_inode(a, b);
    if (c) return c;
    const size_t x = ((const inode *)a)->job, y = ((const inode *)b)->job;
    return (x > y) - (x < y);
}

int cli_plan_make(cli_plan *plan, char **inputs, int n_inputs, const char *out_dir, int recursive,
                  dd_format format, int in_place, int quiet) {
    entries e = {0};
    int rc = 0;
    unsigned char *drop = NULL;
    inode *ins = NULL;
    memset(plan, 0, sizeof *plan);
    struct stat out_sb;
    const struct stat *skip = !in_place && *out_dir && stat(out_dir, &out_sb) == 0 ? &out_sb : NULL;
    for (int i = 0; i < n_inputs; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) != 0) {
            fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(inputs[i]), strerror(errno));
            e.failed++;
        } else if (S_ISDIR(sb.st_mode)) {
            const ancestor top = {sb.st_dev, sb.st_ino, NULL};
            if (!walk(&e, inputs[i], "", recursive, quiet, &top, skip)) goto nomem;
        } else {
            /* Only a regular file is opened to look at: a pipe (a FIFO,
             * <(...)) would lose the bytes read, or block. */
            const char *base = strrchr(inputs[i], '/');
            base = base && base[1] ? base + 1 : inputs[i];
            const dd_format f = S_ISREG(sb.st_mode) ? cli_sniff_format(inputs[i]) : DD_FORMAT_UNKNOWN;
            if (!add_entry(&e, inputs[i], base, f)) goto nomem;
        }
        if (cli_stop_signal) goto done; /* the caller reports the signal */
    }
    if (e.count) qsort(e.items, e.count, sizeof *e.items, by_input); /* items is NULL when none */
    plan->jobs = calloc(e.count ? e.count : 1, sizeof *plan->jobs);
    if (!plan->jobs) goto nomem;
    for (size_t i = 0; i < e.count; i++) {
        cli_job *j = &plan->jobs[plan->count];
        struct stat sb;
        if (stat(e.items[i].input, &sb) != 0) continue;
        j->dev = sb.st_dev, j->ino = sb.st_ino, j->order = i;
        j->input = e.items[i].input, e.items[i].input = NULL;
        j->output = in_place ? strdup(j->input) : output_path(out_dir, e.items[i].rel, e.items[i].format, format);
        plan->count++;
        if (!j->output) goto nomem;
    }
    drop = calloc(plan->count ? plan->count : 1, 1);
    ins = malloc((plan->count ? plan->count : 1) * sizeof *ins);
    if (!drop || !ins) goto nomem;
    for (size_t i = 0; i < plan->count; i++) ins[i] = (inode){plan->jobs[i].dev, plan->jobs[i].ino, i};
    qsort(ins, plan->count, sizeof *ins, by_inode);
    if (in_place) {
        /* One file under two names (./q.png and q.png, a link, a linked
         * directory) is dreamed once: the first name in sorted order. */
        qsort(ins, plan->count, sizeof *ins, by_inode_then_job);
        for (size_t i = 1, first = 0; i < plan->count; i++) {
            if (by_inode(&ins[first], &ins[i])) {
                first = i;
                continue;
            }
            if (!quiet)
                fprintf(stderr, "%s: %s: the same file as %s, dreamed once\n", cli_prog,
                        cli_quote(plan->jobs[ins[i].job].input), cli_quote(plan->jobs[ins[first].job].input));
            drop[ins[i].job] = 1;
        }
    } else {
        /* An input that another job will write to, and that a dream of
         * that job's input wrote (--format png into the JPEGs' directory,
         * rerun), is that job's output, not an input. */
        for (size_t i = 0; i < plan->count; i++) {
            struct stat sb;
            if (stat(plan->jobs[i].output, &sb) != 0) continue;
            const inode key = {sb.st_dev, sb.st_ino, 0};
            const inode *hit = bsearch(&key, ins, plan->count, sizeof *ins, by_inode);
            if (hit && hit->job != i && !drop[hit->job] && written_from(plan->jobs[hit->job].input, plan->jobs[i].input))
                drop[hit->job] = 1;
        }
    }
    compact(plan, drop);
    /* Two inputs onto one output. */
    cli_job **order = malloc((plan->count ? plan->count : 1) * sizeof *order);
    if (!order) goto nomem;
    for (size_t i = 0; i < plan->count; i++) order[i] = &plan->jobs[i];
    qsort(order, plan->count, sizeof *order, by_output);
    for (size_t i = 1; i < plan->count && rc == 0; i++)
        if (!strcmp(order[i - 1]->output, order[i]->output)) {
            fprintf(stderr, "%s: %s and %s would both be written to %s\n", cli_prog, cli_quote(order[i - 1]->input),
                    cli_quote(order[i]->input), cli_quote(order[i]->output));
            rc = 2;
        }
    free(order);
    /* An output that is one of the inputs (same inode, whatever the path
     * or link), unless the user asked for in-place. */
    if (rc == 0 && !in_place) {
        for (size_t i = 0; i < plan->count; i++)
            ins[i] = (inode){plan->jobs[i].dev, plan->jobs[i].ino, i};
        qsort(ins, plan->count, sizeof *ins, by_inode);
        for (size_t i = 0; i < plan->count && rc == 0; i++) {
            struct stat sb;
            if (stat(plan->jobs[i].output, &sb) != 0) continue;
            const inode key = {sb.st_dev, sb.st_ino, 0};
            const inode *hit = bsearch(&key, ins, plan->count, sizeof *ins, by_inode);
            if (hit) {
                fprintf(stderr, "%s: %s: would overwrite the input %s (use --in-place)\n", cli_prog,
                        cli_quote(plan->jobs[i].output), cli_quote(plan->jobs[hit->job].input));
                rc = 2;
            }
        }
    }
    goto done;
nomem:
    fprintf(stderr, "%s: out of memory\n", cli_prog);
    rc = 1;
done:
    free(drop);
    free(ins);
    for (size_t i = 0; i < e.count; i++) free(e.items[i].input), free(e.items[i].rel);
    free(e.items);
    plan->unreadable = (size_t)e.failed;
    return rc;
}

void cli_plan_free(cli_plan *plan) {
    for (size_t i = 0; i < plan->count; i++) free(plan->jobs[i].input), free(plan->jobs[i].output);
    free(plan->jobs);
    memset(plan, 0, sizeof *plan);
}
