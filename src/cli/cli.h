/* The command line's parts: files, the batch plan, progress. */
#ifndef DD_CLI_H
#define DD_CLI_H

#include <signal.h>
#include <stdatomic.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "deepdream.h"

extern const char *cli_prog;

/* Set by SIGINT/SIGTERM (main.c's watcher thread): the signal number; the
 * dream stops between two layers of the network. */
extern atomic_int cli_stop_signal;

/* ---- files (files.c) ---- */

/* name with control characters and backslashes escaped (\n, \x1b, \\):
 * every message stays one line. Valid until the fourth call after. */
const char *cli_quote(const char *name);

/* What reading an input found out besides its bytes. */
typedef struct cli_read_info {
    int regular;  /* a regular file: it can be read again */
    int trailing; /* a Netpbm stream held more than its first image */
} cli_read_info;

/* An image file ("-": standard input) in memory, read header first: a size
 * over max_pixels (0: none) is refused before the rest is read, and no
 * more is read than an image of its size can take. ri may be NULL. Prints
 * the error. */
int cli_read_image(const char *path, uint64_t max_pixels, cli_read_info *ri, unsigned char **data, size_t *size);
/* The same for a regular file only (a FIFO is not waited on), with no
 * limit and no message: for looking at an output. */
int cli_read_quietly(const char *path, unsigned char **data, size_t *size);
/* The image a regular file holds, decoded, or NULL (no message). */
dd_image *cli_load_quietly(const char *path);

/* Where an output's bytes go. */
typedef enum cli_out_kind {
    CLI_OUT_NEW_FILE,   /* path: created (through a dangling link too)        */
    CLI_OUT_FILE,       /* path: a regular file, replaced; links followed     */
    CLI_OUT_STREAM,     /* path: a character device or a FIFO, written into   */
    CLI_OUT_DESCRIPTOR  /* fd: "-", /dev/stdout, /dev/fd/N, /proc/self/fd/N   */
} cli_out_kind;

typedef struct cli_target {
    cli_out_kind kind;
    int fd, mode;        /* mode: a replaced file's permission bits */
    dev_t dev;           /* a replaced file's device and inode */
    ino_t ino;
    char path[PATH_MAX]; /* symbolic links resolved */
} cli_target;

/* Finds, before any work, whether path ("-": standard output) can take an
 * image: a directory, block device, socket or terminal is refused (2); a
 * missing or read-only directory, a write-protected file or a name too
 * long for the temporary file fails (1). Prints the error. */
int cli_check_output(const char *path, cli_target *t);

/* Writes data where path leads: a regular file through a temporary file in
 * its directory, fsync'd and renamed into place (a replaced file keeps its
 * permission bits, a new one gets the umask's), leaving nothing behind on
 * failure; a device, FIFO or descriptor straight. Prints the error. */
int cli_write_output(const char *path, const unsigned char *data, size_t size);

/* An output written in pieces, a video's frames: a regular file through a
 * temporary file put in place by cli_stream_close (keep: what was written
 * so far; else it is removed and the path is left as it was), a device,
 * FIFO or descriptor straight. open prints its errors and returns 0; write
 * returns 0 on an error, which close (returning 0) prints. */
typedef struct cli_stream {
    cli_target t;
    int fd, own_fd, failed; /* failed: the first write's errno */
    char tmp[PATH_MAX];     /* a file's temporary name while it is written */
    char display[PATH_MAX + 32];
    const char *name;       /* quoted, for messages */
} cli_stream;
int cli_stream_open(const char *path, cli_stream *s);
int cli_stream_write(cli_stream *s, const void *data, size_t size);
int cli_stream_close(cli_stream *s, int keep);

/* mkdir -p of path's parent directories; prints the error. */
int cli_make_parents(const char *path);

/* ---- the batch plan (batch.c) ---- */

typedef struct cli_job {
    char *input, *output;   /* paths */
    size_t order;           /* index among every input found, sorted (--shard) */
    dev_t dev;              /* the input's device and inode */
    ino_t ino;
} cli_job;

typedef struct cli_plan {
    cli_job *jobs;
    size_t count, cap;
    size_t unreadable; /* inputs or directories that could not be read (printed) */
} cli_plan;

/* Expands inputs (files; directories, descending with recursive) into jobs
 * in a stable sorted order, each with its output path under out_dir (or the
 * input itself with in_place), in format (DD_FORMAT_UNKNOWN: the input's).
 * Inputs that cannot be read are printed and counted in unreadable; the
 * rest goes on. Returns 0, 1 out of memory, or 2 a usage error (printed):
 * two inputs onto one output, an input overwritten without in_place. */
int cli_plan_make(cli_plan *plan, char **inputs, int n_inputs, const char *out_dir, int recursive,
                  dd_format format, int in_place, int quiet);
void cli_plan_free(cli_plan *plan);

/* Does the image carry a dream's mark ("deepdream VERSION: ..." in its
 * comment)? A rerun knows its own outputs by it. */
int cli_image_dreamed(const dd_image *im);

/* A dream's input as its mark records it ("from=%016llx"): a 64-bit hash
 * (FNV-1a) of the input's bytes. A rerun tells by it whose output a file
 * is; the same input under any name gives the same bytes. */
uint64_t cli_source_id(const unsigned char *data, size_t size);

/* The output format of a job: the requested one, else the input's content. */
dd_format cli_sniff_format(const char *path);

/* ---- progress (progress.c) ---- */

typedef struct cli_progress {
    int mode;           /* 0 none, 1 one updating line (terminal), 2 plain lines */
    const char *name;   /* current file */
    size_t done, total; /* files */
    double start_s;     /* when the run started */
    int last_octave;
} cli_progress;

double cli_now(void);
/* The dd_progress_fn: also stops the dream when a signal came. */
int cli_on_progress(void *user, int octave, int octaves, int step, int steps);
void cli_progress_end_line(cli_progress *p);
/* A clip's progress: "frame 12/300, 0.35 frames/s, 13m40s left" (total 0:
 * unknown, no count and no time left), the rate since p->start_s. */
void cli_frame_progress(cli_progress *p, const char *name, long frame, long total);
/* dd_params.should_stop: a signal came. */
int cli_should_stop(void *user);

/* ---- replay.c: the parameters a dream records -------------------------- */

/* s with space, '%', control and non-ASCII bytes as %XX, into out (cut to
 * size - 1 bytes, at a whole escape). */
void cli_percent_encode(const char *s, char *out, size_t size);

enum { CLI_REPLAY_MAX = 64 };
typedef struct cli_replay {
    char *text;        /* owns what the pointers below point into */
    const char *version;
    int n;
    const char *key[CLI_REPLAY_MAX], *value[CLI_REPLAY_MAX]; /* decoded */
} cli_replay;
/* The key=value pairs recorded in the comment of the image at path (a
 * dream of ours, not cut short, not passed through). 0 after saying why
 * on standard error. */
int cli_replay_read(const char *path, uint64_t max_pixels, cli_replay *r);
void cli_replay_free(cli_replay *r);

#endif
