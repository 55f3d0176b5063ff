/* libFuzzer target for the PNG decoder (dd_image_load_memory), then the PNG
 * and PAM encoders on what it decoded. Chunk CRCs are recomputed first, so
 * mutations reach the chunk contents instead of dying at libpng's CRC check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_image.h"

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c >> 1 ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* Each whole chunk (length, type, data, CRC) after the signature gets the
 * CRC of its type and data; a chunk cut short is left as it is. */
static void fix_crcs(uint8_t *p, size_t size) {
    size_t at = 8;
    while (size - at >= 12) {
        const uint32_t len = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 | (uint32_t)p[at + 2] << 8 | p[at + 3];
        if (len > size - at - 12) break;
        const uint32_t crc = crc32_of(p + at + 4, 4 + (size_t)len);
        uint8_t *q = p + at + 8 + len;
        q[0] = (uint8_t)(crc >> 24), q[1] = (uint8_t)(crc >> 16), q[2] = (uint8_t)(crc >> 8), q[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8 || memcmp(data, magic, 8)) return -1; /* the other targets' inputs */
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    fuzz_image(copy, size, DD_FORMAT_PNG);
    free(copy);
    return 0;
}
