/* Reading input: the one loop over read(2) that the image and model
 * loaders, the command line and the tests share. Inputs may be pipes and
 * FIFOs, so nothing here seeks or trusts a size it has not read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

ssize_t util_read_full(int fd, void *p, size_t n, const atomic_int *stop) {
    size_t got = 0;
    while (got < n) {
        const size_t chunk = n - got < ((size_t)1 << 30) ? n - got : (size_t)1 << 30;
        const ssize_t r = read(fd, (unsigned char *)p + got, chunk);
        if (r < 0 && errno == EINTR && !(stop && atomic_load(stop))) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int util_read_upto(int fd, unsigned char **buf, size_t *len, size_t *cap, size_t want, int *ended,
                   const atomic_int *stop) {
    while (*len < want && !*ended) {
        if (*len == *cap) {
            size_t c = *cap ? *cap * 2 : (size_t)1 << 16;
            if (c > want) c = want;
            unsigned char *nb = realloc(*buf, c);
            if (!nb) {
                errno = ENOMEM;
                return -1;
            }
            *buf = nb, *cap = c;
        }
        const ssize_t got = util_read_full(fd, *buf + *len, *cap - *len, stop);
        if (got < 0) return -1;
        if ((size_t)got < *cap - *len) *ended = 1;
        *len += (size_t)got;
    }
    return 0;
}

dd_status util_read_file(const char *path, size_t max, unsigned char **data, size_t *size) {
    *data = NULL, *size = 0;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_fail(DD_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int ended = 0;
    dd_status st = DD_OK;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = util_fail(DD_ERR_IO, "%s: is a directory", path);
    } else if (util_read_upto(fd, &buf, &len, &cap, max < SIZE_MAX ? max + 1 : max, &ended, NULL)) {
        st = util_fail(errno == ENOMEM ? DD_ERR_NOMEM : DD_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (len > max) {
        st = util_fail(DD_ERR_LIMIT, "%s: more than %zu bytes", path, max);
    }
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    *data = buf, *size = len;
    return DD_OK;
}
