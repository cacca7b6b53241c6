/* libFuzzer target: the safetensors reader must reject or accept any bytes without a crash,
 * and every tensor it accepts must be readable to its last byte. */
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

volatile double fuzz_sink;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    fcl_safetensors *st;
    if (fcl_st_parse("fuzz", copy, size, &st) != FEWCL_OK) return 0; /* parse took `copy` */
    float sink = 0;
    for (int i = 0; i < st->n; i++) {
        const float *d;
        size_t n;
        if (fcl_st_f32(st, st->tensors[i].name, 0, NULL, &d, &n) == FEWCL_OK && n) sink += d[n - 1];
    }
    char meta[64];
    fcl_st_metadata_get(st, "config", meta, sizeof meta);
    fcl_st_free(st);
    fuzz_sink = sink; /* keeps the reads from being optimised away */
    return 0;
}
