/* Reading inputs and writing outputs: where an output's bytes go (a new or
 * replaced regular file, written atomically, or straight into a device, a
 * FIFO or an open descriptor), found before any work and again at the
 * write; names quoted for one-line messages. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image/image.h"

const char *cli_quote(const char *name) {
    /* A few buffers in turn: one message may quote two names. */
    static char bufs[4][4 * PATH_MAX + 8];
    static int next;
    char *out = bufs[next], *o = out;
    next = (next + 1) % 4;
    const char *end_room = out + sizeof bufs[0] - 8;
    for (const unsigned char *s = (const unsigned char *)name; *s && o < end_room; s++) {
        if (*s == '\n') *o++ = '\\', *o++ = 'n';
        else if (*s == '\t') *o++ = '\\', *o++ = 't';
        else if (*s == '\\') *o++ = '\\', *o++ = '\\';
        else if (*s < 0x20 || *s == 0x7f) o += sprintf(o, "\\x%02x", *s);
        else *o++ = (char)*s;
    }
    *o = '\0';
    return out;
}


/* fprintf, or nothing when to is NULL. */
static void say(FILE *to, const char *fmt, ...) {
    if (!to) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(to, fmt, ap);
    va_end(ap);
}

static int read_image(const char *path, uint64_t max_pixels, int quiet, cli_read_info *ri, unsigned char **data,
                      size_t *size) {
    FILE *err_to = quiet ? NULL : stderr;
    const int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : cli_quote(path);
    /* Looking at an output never waits on a FIFO's writer. */
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | (quiet ? O_NONBLOCK : 0));
    if (fd < 0) { /* a FIFO's open waits for a writer: a signal ends it */
        if (!cli_stop_signal) say(err_to, "%s: %s: %s\n", cli_prog, name, strerror(errno));
        return 0;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) memset(&sb, 0, sizeof sb);
    if (S_ISDIR(sb.st_mode) || (quiet && !S_ISREG(sb.st_mode))) {
        say(err_to, "%s: %s: is a directory\n", cli_prog, name);
        if (!is_stdin) close(fd);
        return 0;
    }
    if (ri) ri->regular = S_ISREG(sb.st_mode);
    int trailing = 0;
    const dd_status st = img_read_fd(fd, name, max_pixels, &cli_stop_signal, data, size, &trailing);
    if (!is_stdin) close(fd);
    if (ri) ri->trailing = trailing;
    if (st && !cli_stop_signal) say(err_to, "%s: %s\n", cli_prog, dd_last_error());
    return st == DD_OK;
}

/* A signal ends a write that waits (a FIFO nobody reads); a file's write
 * is finished, so that an output is either written whole or not at all. */
int cli_read_image(const char *path, uint64_t max_pixels, cli_read_info *ri, unsigned char **data, size_t *size) {
    return read_image(path, max_pixels, 0, ri, data, size);
}

int cli_read_quietly(const char *path, unsigned char **data, size_t *size) {
    return read_image(path, 0, 1, NULL, data, size);
}

dd_image *cli_load_quietly(const char *path) {
    unsigned char *data;
    size_t size;
    if (!cli_read_quietly(path, &data, &size)) return NULL;
    dd_image *im = NULL;
    if (dd_image_load_memory(data, size, 0, &im) != DD_OK) im = NULL;
    free(data);
    return im;
}

static int write_fully(int fd, const unsigned char *data, size_t size, int interruptible) {
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR && !(interruptible && cli_stop_signal)) continue;
            return 0;
        }
        data += n, size -= (size_t)n;
    }
    return 1;
}

/* A path that names one of our open descriptors: /dev/stdout, /dev/fd/N,
 * /proc/self/fd/N, /proc/PID/fd/N (a `>(...)` argument). Its bytes go into
 * that descriptor, as with "-", never through a file renamed over it. */
static int descriptor_path(const char *p) {
    const char *rest = NULL;
    char self[64];
    snprintf(self, sizeof self, "/proc/%ld/fd/", (long)getpid());
    if (!strcmp(p, "/dev/stdout")) return STDOUT_FILENO;
    if (!strcmp(p, "/dev/stderr")) return STDERR_FILENO;
    if (!strncmp(p, "/dev/fd/", 8)) rest = p + 8;
    else if (!strncmp(p, "/proc/self/fd/", 14)) rest = p + 14;
    else if (!strncmp(p, "/proc/thread-self/fd/", 21)) rest = p + 21;
    else if (!strncmp(p, self, strlen(self))) rest = p + strlen(self);
    if (!rest || *rest < '0' || *rest > '9') return -1;
    char *end;
    const long n = strtol(rest, &end, 10);
    return *end || n > INT_MAX ? -1 : (int)n;
}

/* Follows OUTPUT's symbolic links to what its bytes would go into. Returns
 * 0 or an exit status, the message printed. */
static int resolve(const char *path, cli_target *t) {
    char cur[PATH_MAX], link[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, cli_quote(path));
        return 1;
    }
    memset(t, 0, sizeof *t);
    for (int hops = 0; hops < 40; hops++) {
        /* "-" is standard output as the argument, not as a link's target. */
        const int fd = hops == 0 && !strcmp(cur, "-") ? STDOUT_FILENO : descriptor_path(cur);
        if (fd >= 0) {
            const char *name = !strcmp(path, "-") ? "standard output" : cli_quote(path);
            /* A closed descriptor is held read-only (main.c): not writable. */
            const int flags = fcntl(fd, F_GETFL);
            if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) {
                fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(EBADF));
                return 1;
            }
            if (isatty(fd)) {
                fprintf(stderr, "%s: %s: refusing to write an image to a terminal\n", cli_prog, name);
                return 2;
            }
            t->kind = CLI_OUT_DESCRIPTOR, t->fd = fd;
            return 0;
        }
        struct stat sb;
        if (lstat(cur, &sb) != 0) {
            if (errno != ENOENT) break;
            t->kind = CLI_OUT_NEW_FILE; /* also through a dangling link, as `>` does */
            snprintf(t->path, sizeof t->path, "%s", cur);
            return 0;
        }
        if (S_ISLNK(sb.st_mode)) {
            /* The link stays; its target gets the dream (docs/BATCH.md). */
            const ssize_t n = readlink(cur, link, sizeof link - 1);
            if (n < 0) break;
            link[n] = '\0';
            const char *slash = strrchr(cur, '/');
            if (link[0] == '/' || !slash) {
                memcpy(cur, link, (size_t)n + 1);
            } else {
                const int dir = (int)(slash - cur + 1);
                char joined[PATH_MAX];
                if (snprintf(joined, sizeof joined, "%.*s%s", dir, cur, link) >= (int)sizeof joined) {
                    errno = ENAMETOOLONG;
                    break;
                }
                memcpy(cur, joined, strlen(joined) + 1);
            }
            continue;
        }
        snprintf(t->path, sizeof t->path, "%s", cur);
        if (S_ISREG(sb.st_mode)) {
            t->kind = CLI_OUT_FILE, t->mode = (int)(sb.st_mode & 07777);
            t->dev = sb.st_dev, t->ino = sb.st_ino;
            return 0;
        }
        if (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)) {
            t->kind = CLI_OUT_STREAM;
            return 0;
        }
        fprintf(stderr, "%s: %s: %s, not a place for an image\n", cli_prog, cli_quote(path),
                S_ISDIR(sb.st_mode) ? "a directory" : S_ISBLK(sb.st_mode) ? "a block device" : "a socket");
        return 2;
    }
    if (errno == 0 || errno == EINVAL) errno = ELOOP;
    fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(errno));
    return 1;
}

/* The temporary name beside the final one: hidden (never taken for an
 * input or an output by a later run), on the same file system for rename,
 * and shortened when the name is near the file system's limit. */
static int temp_name(const char *path, char *tmp, size_t size) {
    const char *slash = strrchr(path, '/');
    const int dir_len = slash ? (int)(slash - path + 1) : 0;
    const char *base = path + dir_len;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", dir_len ? dir_len : 1, dir_len ? path : ".");
    long name_max = pathconf(dir, _PC_NAME_MAX);
    if (name_max <= 0) name_max = 255;
    const size_t longest = strlen(base) + 18;
    const int n = longest <= (size_t)name_max
                      ? snprintf(tmp, size, "%.*s.%s.deepdream-XXXXXX", dir_len, path, base)
                      : snprintf(tmp, size, "%.*s.deepdream-XXXXXX", dir_len, path);
    return n > 0 && (size_t)n < size;
}

int cli_check_output(const char *path, cli_target *t) {
    int rc = resolve(path, t);
    if (rc) return rc;
    if (t->kind == CLI_OUT_STREAM) {
        /* A device is opened to see what it is; a FIFO is not (its open
         * waits for a reader, which comes when the image does). */
        struct stat sb;
        if (stat(t->path, &sb) == 0 && S_ISCHR(sb.st_mode)) {
            int fd = open(t->path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) {
                fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(errno));
                return 1;
            }
            const int tty = isatty(fd);
            close(fd);
            if (tty) {
                fprintf(stderr, "%s: %s: refusing to write an image to a terminal\n", cli_prog, cli_quote(path));
                return 2;
            }
        }
        return 0;
    }
    if (t->kind != CLI_OUT_FILE && t->kind != CLI_OUT_NEW_FILE) return 0;
    /* A file that exists and may not be written keeps its protection, as
     * with `>`; then a trial of the temporary file finds a missing or
     * read-only directory and a name too long now, not after the dream. */
    if (t->kind == CLI_OUT_FILE && access(t->path, W_OK) != 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(errno));
        return 1;
    }
    char tmp[PATH_MAX];
    if (!temp_name(t->path, tmp, sizeof tmp)) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, cli_quote(path));
        return 1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        const int err = errno;
        char dir[PATH_MAX];
        const char *slash = strrchr(t->path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - t->path) : 1, slash ? t->path : ".");
        if (err == ENOENT || err == ENOTDIR)
            fprintf(stderr, "%s: %s: no directory %s\n", cli_prog, cli_quote(path), cli_quote(dir));
        else fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(path), strerror(err));
        return 1;
    }
    close(fd);
    unlink(tmp);
    return 0;
}

/* The rename, unless what is at the path changed since it was resolved (a
 * FIFO, device or link made there during the write is never replaced): a
 * new file only where there is still nothing, a replaced file only while
 * it is the same file. Returns 0 or an errno. */
static int put_in_place(const char *tmp, const cli_target *t) {
    if (t->kind == CLI_OUT_NEW_FILE) {
#if defined(RENAME_NOREPLACE) /* glibc on Linux */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, t->path, RENAME_NOREPLACE) == 0) return 0;
        if (errno != EINVAL && errno != ENOSYS) return errno;
#elif defined(__APPLE__) && defined(RENAME_EXCL) /* macOS 10.12 and later */
        if (renamex_np(tmp, t->path, RENAME_EXCL) == 0) return 0;
        if (errno != ENOTSUP && errno != EINVAL) return errno;
#endif
        /* A system or file system without RENAME_NOREPLACE: link fails on
         * anything there, as the rename would not. */
        if (link(tmp, t->path) != 0) return errno;
        unlink(tmp);
        return 0;
    }
    struct stat sb;
    if (lstat(t->path, &sb) != 0) return errno;
    if (!S_ISREG(sb.st_mode) || sb.st_dev != t->dev || sb.st_ino != t->ino) return EBUSY;
    return rename(tmp, t->path) != 0 ? errno : 0;
}

int cli_write_output(const char *path, const unsigned char *data, size_t size) {
    cli_target t;
    if (resolve(path, &t)) return 0;
    const char *name = !strcmp(path, "-") ? "standard output" : cli_quote(path);
    if (t.kind == CLI_OUT_DESCRIPTOR || t.kind == CLI_OUT_STREAM) {
        int fd = t.fd;
        if (t.kind == CLI_OUT_STREAM) {
            fd = open(t.path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
            if (fd < 0) {
                if (!cli_stop_signal) fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(errno));
                return 0;
            }
            if (isatty(fd)) {
                close(fd);
                fprintf(stderr, "%s: %s: refusing to write an image to a terminal\n", cli_prog, name);
                return 0;
            }
        }
        int err = write_fully(fd, data, size, 1) ? 0 : errno;
        if (t.kind == CLI_OUT_STREAM && close(fd) != 0 && !err) err = errno;
        if (err) fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(err));
        return !err;
    }
    char tmp[PATH_MAX];
    if (!temp_name(t.path, tmp, sizeof tmp)) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, name);
        return 0;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(errno));
        return 0;
    }
    /* A replaced file keeps its permission bits (a private photo stays
     * private); a new one gets what the umask gives (mkstemp made 0600). */
    int mode = t.mode;
    if (t.kind == CLI_OUT_NEW_FILE) {
        const mode_t mask = umask(0);
        umask(mask);
        mode = (int)(0666 & ~mask);
    }
    fchmod(fd, (mode_t)mode);
    int err = 0;
    if (!write_fully(fd, data, size, 0) || fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err) err = put_in_place(tmp, &t);
    if (err) {
        if (err == EBUSY || err == EEXIST) /* from put_in_place */
            fprintf(stderr, "%s: %s: changed while the image was dreamed; left as it is\n", cli_prog, name);
        else fprintf(stderr, "%s: %s: %s\n", cli_prog, name, strerror(err));
        unlink(tmp);
    }
    return !err;
}

int cli_make_parents(const char *path) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, cli_quote(path));
        return 0;
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: %s: %s\n", cli_prog, cli_quote(dir), strerror(errno));
            return 0;
        }
        *p = '/';
    }
    return 1;
}

int cli_stream_open(const char *path, cli_stream *s) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (resolve(path, &s->t)) return 0;
    s->name = !strcmp(path, "-") ? "standard output" : cli_quote(path);
    snprintf(s->display, sizeof s->display, "%s", s->name);
    s->name = s->display;
    if (s->t.kind == CLI_OUT_DESCRIPTOR) {
        s->fd = s->t.fd;
        return 1;
    }
    if (s->t.kind == CLI_OUT_STREAM) {
        s->fd = open(s->t.path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (s->fd < 0 || isatty(s->fd)) {
            if (s->fd < 0) fprintf(stderr, "%s: %s: %s\n", cli_prog, s->name, strerror(errno));
            else fprintf(stderr, "%s: %s: refusing to write video to a terminal\n", cli_prog, s->name);
            if (s->fd >= 0) close(s->fd);
            s->fd = -1;
            return 0;
        }
        s->own_fd = 1;
        return 1;
    }
    if (!temp_name(s->t.path, s->tmp, sizeof s->tmp)) {
        fprintf(stderr, "%s: %s: name too long\n", cli_prog, s->name);
        return 0;
    }
    s->fd = mkstemp(s->tmp);
    if (s->fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", cli_prog, s->name, strerror(errno));
        s->tmp[0] = '\0';
        return 0;
    }
    int mode = s->t.mode;
    if (s->t.kind == CLI_OUT_NEW_FILE) {
        const mode_t mask = umask(0);
        umask(mask);
        mode = (int)(0666 & ~mask);
    }
    fchmod(s->fd, (mode_t)mode);
    s->own_fd = 1;
    return 1;
}

int cli_stream_write(cli_stream *s, const void *data, size_t size) {
    if (write_fully(s->fd, data, size, 0)) return 1;
    s->failed = errno ? errno : EIO;
    return 0;
}

int cli_stream_close(cli_stream *s, int keep) {
    int err = s->failed;
    if (s->tmp[0]) {
        if (keep && !err && fsync(s->fd) != 0) err = errno;
    }
    if (s->own_fd && close(s->fd) != 0 && !err) err = errno;
    s->fd = -1;
    if (s->tmp[0]) {
        if (keep && !err) err = put_in_place(s->tmp, &s->t);
        if (!keep || err) unlink(s->tmp);
        s->tmp[0] = '\0';
    }
    if (err) {
        if (err == EBUSY || err == EEXIST)
            fprintf(stderr, "%s: %s: changed while the video was dreamed; left as it is\n", cli_prog, s->name);
        else fprintf(stderr, "%s: %s: %s\n", cli_prog, s->name, strerror(err));
    }
    return !err;
}
