/* Per-thread error detail, status texts, the invariant check, the
 * library's version and dd_free. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static _Thread_local char last_error[512];

dd_status util_fail(dd_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

dd_status util_fail_in(dd_status status, const char *path) {
    char detail[sizeof last_error];
    snprintf(detail, sizeof detail, "%s", last_error);
    return util_fail(status, "%s: %s", path, detail);
}

void util_clear_error(void) { last_error[0] = '\0'; }

const char *dd_last_error(void) { return last_error; }

const char *dd_strerror(dd_status status) {
    switch (status) {
    case DD_OK: return "success";
    case DD_ERR_INVALID_ARG: return "invalid argument";
    case DD_ERR_NOMEM: return "out of memory";
    case DD_ERR_IO: return "input/output error";
    case DD_ERR_CORRUPT: return "corrupt or truncated file";
    case DD_ERR_LIMIT: return "size over limit";
    case DD_ERR_MODEL: return "invalid model";
    case DD_ERR_CANCELLED: return "cancelled";
    case DD_ERR_TOO_SMALL: return "image too small for the network";
    }
    return "unknown status";
}

/* An internal invariant broke: a bug in deepdream, never bad input, so
 * trapping (not returning) is right here. */
void util_assert_failed(const char *expr, const char *file, int line) {
    fprintf(stderr, "deepdream: internal error: %s at %s:%d\n", expr, file, line);
    __builtin_trap();
}

unsigned dd_version(void) { return DD_VERSION_NUMBER; }

void dd_free(void *p) { free(p); }
