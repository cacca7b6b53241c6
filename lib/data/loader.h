/* Episode loader: samples few-shot episodes from a dataset and turns them into input tensors
 * on worker threads, ahead of the device.
 *
 * Episode e draws its n_way classes (a random permutation's first n_way) and, per class, the
 * first k_shot + n_query images of a fresh shuffle (docs/maths.md §1.2), from an RNG seeded by
 * (seed, e) alone: the episodes are the same whatever the number of workers. The tensor is
 * x[n_way][k_shot + n_query][3][S][S], class-major; support first, then queries.
 * Eval transform: Resize(S) + CenterCrop(S) (+ the published 1.15 scale step as an option);
 * training augmentation: Resize(S) + RandomResizedCrop(S, 0.08–1, 3/4–4/3) + horizontal flip
 * (p 0.5); then ToTensor + ImageNet Normalize. Decoded, resized images are cached (up to
 * cache_bytes) so later epochs do not decode again. */
#ifndef FEWCL_DATA_LOADER_H
#define FEWCL_DATA_LOADER_H

#include <stdint.h>

#include "dataset.h"

typedef struct fcl_loader_options {
    const fcl_dataset *data;
    int n_way, k_shot, n_query;
    int image_size; /* S */
    int augment;    /* training augmentation */
    int scale_115;  /* eval: the 2022 code's Scale to floor(1.15·S) before the crop */
    uint64_t seed;
    long first_episode; /* the first episode delivered (resuming a run mid-way) */
    /* Blocks (a worker's share of each meta-batch step): with block_len > 0, delivery k
     * (k = 0, 1, …) is episode first_episode + (k / block_len)·block_period + k % block_len,
     * i.e. block_len consecutive episodes out of every block_period. 0: all in order. */
    long block_len, block_period;
    int workers;        /* decoding threads (0: decode on the caller's thread) */
    int prefetch;       /* episodes prepared ahead (at least 1) */
    int skip_bad;       /* warn and draw another image instead of failing on a bad file */
    size_t cache_bytes; /* decoded-image cache budget (0: no cache) */
} fcl_loader_options;

typedef struct fcl_loader fcl_loader;

typedef struct fcl_loader_stats {
    long images_decoded, cache_hits, skipped;
    double decode_seconds, transform_seconds; /* summed over workers */
} fcl_loader_stats;

fewcl_status fcl_loader_create(const fcl_loader_options *opt, fcl_loader **out);
/* Floats in one episode tensor. */
size_t fcl_loader_episode_floats(const fcl_loader *l);
/* Copies the next episode (in order first, first + 1, ..., or by blocks) into x and the dataset
 * class index of each of its n_way rows into classes (may be NULL). Blocks until it is ready. An
 * image that fails to load is an error naming the file (or, with skip_bad, a warning). */
fewcl_status fcl_loader_next(fcl_loader *l, float *x, int *classes);
/* A snapshot of the statistics (the workers keep updating them). */
fcl_loader_stats fcl_loader_stats_get(fcl_loader *l);
void fcl_loader_destroy(fcl_loader *l);

/* The pieces, exposed for tests: the episode's draw, and one image's transform. */
void fcl_episode_draw(const fcl_dataset *d, int n_way, int per_class, uint64_t seed, long episode,
                      int *classes, int *images);

#endif
