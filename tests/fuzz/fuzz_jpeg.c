/* libFuzzer target for the JPEG decoder (dd_image_load_memory: markers, EXIF
 * orientation, ICC, CMYK, the scan limit), then the PNG and PAM encoders on
 * what it decoded. */
#include <stdint.h>

#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3 || data[0] != 0xff || data[1] != 0xd8 || data[2] != 0xff) return -1; /* not JPEG */
    fuzz_image(data, size, DD_FORMAT_JPEG);
    return 0;
}
