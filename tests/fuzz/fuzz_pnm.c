/* libFuzzer target for the Netpbm decoder (dd_image_load_memory on P5, P6
 * and P7 PAM headers and samples), then the PNG and PAM encoders on what it
 * decoded. */
#include <stdint.h>

#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || data[0] != 'P' || data[1] < '5' || data[1] > '7') return -1; /* not PNM or PAM */
    fuzz_image(data, size, DD_FORMAT_PNM);
    return 0;
}
