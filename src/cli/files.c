/* Reading inputs whole and writing outputs atomically. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_read_all(const char *path, unsigned char **data, size_t *size) {
    const int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : path;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { /* a FIFO's open waits for a writer: a signal ends it */
        if (!cli_stop_signal) fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(errno));
        return 0;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: %s: is a directory\n", cli_prog, name);
        if (!is_stdin) close(fd);
        return 0;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int ok = 1;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : (size_t)1 << 16;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "%s: %s: out of memory\n", cli_prog, name);
                ok = 0;
                break;
            }
            buf = nb;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR && !cli_stop_signal) continue;
        if (got < 0) {
            if (!cli_stop_signal) fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(errno));
            ok = 0;
            break;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    if (!is_stdin) close(fd);
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

int cli_write_output(const char *path, const unsigned char *data, size_t size, int mode) {
    if (!strcmp(path, "-")) {
        if (!write_fully(STDOUT_FILENO, data, size)) {
            fprintf(stderr, "%s: standard output: %s\n", cli_prog, strerror(errno));
            return 0;
        }
        return 1;
    }
    /* A hidden name beside the output: never taken for an input or an
     * output by a later run, and on the same file system for rename. */
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const int dir_len = slash ? (int)(slash - path + 1) : 0;
    if (snprintf(tmp, sizeof tmp, "%.*s.%s.deepdream-XXXXXX", dir_len, path, path + dir_len) >= (int)sizeof tmp) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, path);
        return 0;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, path, strerror(errno));
        return 0;
    }
    if (mode < 0) { /* mkstemp makes 0600; give what a new file would get */
        const mode_t mask = umask(0);
        umask(mask);
        mode = (int)(0666 & ~mask);
    }
    fchmod(fd, (mode_t)mode);
    int err = 0;
    if (!write_fully(fd, data, size) || fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, path, strerror(err));
        unlink(tmp);
    }
    return !err;
}

int cli_make_parents(const char *path) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, path);
        return 0;
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: %s: %s\n", cli_prog, dir, strerror(errno));
            return 0;
        }
        *p = '/';
    }
    return 1;
}
