/* libFuzzer target: image decoding and the eval transform on whatever decodes. */
#include <stdlib.h>

#include "data/image.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fcl_image img, small;
    if (fcl_image_decode("fuzz", data, size, &img) != FEWCL_OK) return 0;
    if ((size_t)img.w * img.h <= 1 << 20 &&
        fcl_image_resize_shorter(&img, 16, &small) == FEWCL_OK) {
        float chw[3 * 16 * 16];
        fcl_image_to_tensor(&small, 16, chw);
        fcl_image_free(&small);
    }
    fcl_image_free(&img);
    return 0;
}
