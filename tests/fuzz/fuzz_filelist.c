/* libFuzzer target: FS-CT JSON filelists. */
#include <string.h>

#include "data/dataset.h"

volatile double fuzz_sink;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fcl_dataset *d;
    if (fcl_dataset_parse_json("fuzz.json", (const char *)data, size, "/root", &d) != FEWCL_OK)
        return 0;
    size_t sink = 0;
    for (int c = 0; c < d->n_classes; c++)
        sink += strlen(d->class_names[c]) + (size_t)d->class_count[c];
    for (int i = 0; i < d->n_images; i++)
        sink += strlen(d->paths[i]);
    fcl_dataset_check_episode(d, 2, 1, 1);
    fcl_dataset_free(d);
    fuzz_sink = sink; /* keeps the reads from being optimised away */
    return 0;
}
