/* The command line's parts: files, the batch plan, progress. */
#ifndef DD_CLI_H
#define DD_CLI_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "deepdream.h"

extern const char *cli_prog;

/* Set by SIGINT/SIGTERM: the signal number; the dream stops within a step. */
extern volatile sig_atomic_t cli_stop_signal;

/* ---- files (files.c) ---- */

/* The whole of path ("-": standard input) in memory; prints the error. */
int cli_read_all(const char *path, unsigned char **data, size_t *size);

/* Writes data to path through a temporary file in the same directory,
 * fsync'd and renamed into place ("-": standard output); prints the error
 * and leaves nothing behind on failure. The file gets mode (permission
 * bits), or with mode -1 what a new file gets under the umask. */
int cli_write_output(const char *path, const unsigned char *data, size_t size, int mode);

/* mkdir -p of path's parent directories; prints the error. */
int cli_make_parents(const char *path);

/* ---- the batch plan (batch.c) ---- */

typedef struct cli_job {
    char *input, *output;   /* paths */
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

#endif
