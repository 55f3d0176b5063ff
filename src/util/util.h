/* Shared internals: error reporting, checked size arithmetic, the arena. */
#ifndef DD_UTIL_H
#define DD_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "deepdream.h"

/* Records a one-line detail for dd_last_error() on this thread and returns
 * status, so callers can write `return util_fail(DD_ERR_MODEL, "...")`. */
dd_status util_fail(dd_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The detail recorded so far, prefixed by path ("photo.png: truncated"),
 * as the status's detail; returns status. */
dd_status util_fail_in(dd_status status, const char *path);
void util_clear_error(void);

/* read(2) into p until n bytes or the end of the input: the count, or -1
 * after an error (errno). A signal's EINTR is retried, unless stop is
 * given and set (then -1 with EINTR: the command line's Ctrl-C). */
ssize_t util_read_full(int fd, void *p, size_t n, const atomic_int *stop);
/* Appends to *buf (grown by doubling from 64 KiB, never past want bytes)
 * until *len is want or the input ends (*ended = 1). -1 after a read error
 * or when memory runs out (errno ENOMEM); *buf is the caller's to free. */
int util_read_upto(int fd, unsigned char **buf, size_t *len, size_t *cap, size_t want, int *ended,
                   const atomic_int *stop);
/* A whole file of at most max bytes (more is DD_ERR_LIMIT), messages
 * naming path; the caller frees *data. */
dd_status util_read_file(const char *path, size_t max, unsigned char **data, size_t *size);

/* Guards our own invariants only, never user input. */
#define DD_ASSERT(x) ((x) ? (void)0 : util_assert_failed(#x, __FILE__, __LINE__))
void util_assert_failed(const char *expr, const char *file, int line);

/* a*b and a+b into *out; return 0 on overflow. */
static inline int util_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int util_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* One allocation carved into 64-byte aligned pieces. */
typedef struct util_arena {
    unsigned char *base;
    size_t size, used;
} util_arena;

dd_status util_arena_init(util_arena *a, size_t size);
void *util_arena_take(util_arena *a, size_t size);
void util_arena_free(util_arena *a);
static inline size_t util_align64(size_t n) { return (n + 63) & ~(size_t)63; }

#endif
