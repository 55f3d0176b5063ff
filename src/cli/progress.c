/* Progress on standard error: one updating line on a terminal, or plain
 * lines for logs; and the check that stops a dream after a signal. */
#include <stdio.h>
#include <time.h>

#include "cli.h"

double cli_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void format_duration(char *buf, size_t size, double s) {
    if (s < 0) s = 0;
    const long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, size, "%lds", t);
}

int cli_on_progress(void *user, int octave, int octaves, int step, int steps) {
    cli_progress *p = user;
    if (cli_stop_signal) return 1;
    if (p->mode == 0) return 0;
    const double file_part = ((double)octave * steps + step) / ((double)octaves * (steps ? steps : 1));
    const double done = (double)p->done + file_part;
    const double elapsed = cli_now() - p->start_s;
    char eta[32] = "?";
    if (done > 0.02) format_duration(eta, sizeof eta, elapsed * ((double)p->total - done) / done);
    if (p->mode == 1) {
        fprintf(stderr, "\r\033[K%s: [%zu/%zu] %s: octave %d/%d, step %d/%d, %s left", cli_prog, p->done + 1,
                p->total, p->name, octave + 1, octaves, step + 1, steps, eta);
    } else if (octave != p->last_octave) {
        fprintf(stderr, "%s: [%zu/%zu] %s: octave %d/%d, %s left\n", cli_prog, p->done + 1, p->total, p->name,
                octave + 1, octaves, eta);
    }
    p->last_octave = octave;
    fflush(stderr);
    return 0;
}

void cli_frame_progress(cli_progress *p, const char *name, long frame, long total) {
    if (p->mode == 0) return;
    const double elapsed = cli_now() - p->start_s;
    char of[32] = "", rate[48] = "", left[48] = "";
    if (total > 0) snprintf(of, sizeof of, "/%ld", total);
    if (frame > 1 && elapsed > 0) {
        const double per_second = (double)(frame - 1) / elapsed;
        snprintf(rate, sizeof rate, ", %.3g frames/s", per_second);
        if (total > 0) {
            char eta[32];
            format_duration(eta, sizeof eta, (double)(total - frame + 1) / per_second);
            snprintf(left, sizeof left, ", %s left", eta);
        }
    }
    if (p->mode == 1) fprintf(stderr, "\r\033[K%s: %s: frame %ld%s%s%s", cli_prog, name, frame, of, rate, left);
    else fprintf(stderr, "%s: %s: frame %ld%s%s%s\n", cli_prog, name, frame, of, rate, left);
    fflush(stderr);
}

int cli_should_stop(void *user) {
    (void)user;
    return cli_stop_signal != 0;
}

void cli_progress_end_line(cli_progress *p) {
    if (p->mode == 1) fprintf(stderr, "\r\033[K");
}
