/* The arena: sizes are summed first, then one aligned allocation is carved. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

dd_status util_arena_init(util_arena *a, size_t size) {
    a->size = util_align64(size ? size : 64);
    a->used = 0;
    a->base = aligned_alloc(64, a->size);
    if (!a->base) return util_fail(DD_ERR_NOMEM, "cannot allocate %zu bytes", a->size);
    return DD_OK;
}

void *util_arena_take(util_arena *a, size_t size) {
    size = util_align64(size);
    DD_ASSERT(size <= a->size - a->used);
    void *p = a->base + a->used;
    a->used += size;
    return p;
}

void util_arena_free(util_arena *a) {
    free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}
