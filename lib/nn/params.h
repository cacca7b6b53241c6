/* Named model parameters: the PyTorch state_dict keys, each with its value, gradient and
 * AdamW moments in the arena; loading and saving as safetensors; one optimiser step over all.
 *
 *     fcl_params P;
 *     fcl_params_init(&P);
 *     fcl_tensor *w;
 *     FCL_TRY(fcl_params_add(ctx, &P, "feature.trunk.0.C.weight", 4, (int[]){64, 3, 3, 3}, 1, &w));
 *     FCL_TRY(fcl_params_load(ctx, &P, st, "", FCL_LOAD_STRICT)); // names every mismatch
 */
#ifndef FEWCL_NN_PARAMS_H
#define FEWCL_NN_PARAMS_H

#include "../io/safetensors.h"
#include "../ops/adamw.h"

typedef struct fcl_param {
    char name[128];
    fcl_tensor value;
    fcl_tensor grad; /* allocated when trainable */
    fcl_tensor m, v; /* AdamW moments, allocated on the first step */
    /* Moments read from a checkpoint before the first step (resume): kept on the host and
     * uploaded when the step allocates m and v, where a fresh run allocates them, so that a
     * resumed run follows the plan's layout (NULL: none). */
    float *pending_m, *pending_v;
    int trainable;
    int is_buffer; /* running statistics: saved and loaded, never optimised */
} fcl_param;

/* Capacity of a parameter table: ResNet-34 with the enhanced head registers about 260
 * tensors. The table never moves, so pointers to its entries stay valid. */
#define FCL_MAX_PARAMS 2048

typedef struct fcl_params {
    fcl_param *items;
    int n, cap;
    long step; /* optimiser steps taken */
    /* A meta-batch episode (lib/train/step.h): when set, training-mode BatchNorm writes its
     * batch mean and unbiased variance here, at its running buffers' offsets among the
     * buffers (fcl_params_buffer_offset), instead of updating them; bn_recorded counts the
     * floats written. NULL: running statistics are updated in the kernel, as always. */
    fcl_tensor *bn_record;
    size_t bn_recorded;
} fcl_params;

/* Flat host vectors over the table, in table order (a meta-batch's gradients; the state later
 * scale-out stages broadcast). GRADS: the trainable parameters' gradients. STATE: what a step
 * changes: trainable values and BatchNorm buffers. ALL: every value, frozen ones included. */
typedef enum fcl_flat { FCL_FLAT_GRADS, FCL_FLAT_STATE, FCL_FLAT_ALL } fcl_flat;

typedef enum fcl_load_mode {
    FCL_LOAD_STRICT,   /* every parameter present, nothing unexpected */
    FCL_LOAD_COMPLETE, /* every parameter present; other keys ignored (PyTorch state_dicts carry
                          duplicates and integer counters such as num_batches_tracked) */
    FCL_LOAD_PARTIAL   /* missing parameters keep their values; unexpected keys are ignored */
} fcl_load_mode;

void fcl_params_init(fcl_params *P);
void fcl_params_free(fewcl_context *ctx, fcl_params *P);
/* Adds a parameter (gradient allocated and zeroed when trainable); *out points at its value. */
fewcl_status fcl_params_add(fewcl_context *ctx, fcl_params *P, const char *name, int ndim,
                            const int *shape, int trainable, fcl_tensor **out);
/* Adds a buffer (BatchNorm running statistics): saved and loaded, no gradient. */
fewcl_status fcl_params_add_buffer(fewcl_context *ctx, fcl_params *P, const char *name, int ndim,
                                   const int *shape, fcl_tensor **out);
fcl_param *fcl_params_find(fcl_params *P, const char *name);
/* Copies values from a safetensors file; keys are `prefix` + name. Shape mismatches are
 * always errors; the message lists every missing, unexpected or mismatched key (up to a few
 * dozen) with the file name. */
fewcl_status fcl_params_load(fewcl_context *ctx, fcl_params *P, const fcl_safetensors *st,
                             const char *prefix, fcl_load_mode mode);
/* The same, leaving parameter `skip` (NULL: none) out: it keeps its value, and its key in the
 * file is not checked. */
fewcl_status fcl_params_load_except(fewcl_context *ctx, fcl_params *P, const fcl_safetensors *st,
                                    const char *prefix, fcl_load_mode mode, const char *skip);
/* Adds every value (and buffer) to a writer under its name (downloads: blocking). */
fewcl_status fcl_params_store(fewcl_context *ctx, const fcl_params *P, fcl_st_writer *w);
/* Adds one device tensor to a writer under `name` (a blocking download). */
fewcl_status fcl_st_writer_add_tensor(fewcl_context *ctx, fcl_st_writer *w, const char *name,
                                      const fcl_tensor *t);
fewcl_status fcl_params_zero_grad(fewcl_context *ctx, fcl_params *P);
/* One AdamW step on every trainable parameter (moments allocated on first use). */
fewcl_status fcl_params_adamw(fewcl_context *ctx, fcl_params *P, const fcl_adamw_config *cfg);
/* Moving the parameters to other arena blocks (fcl_evaluate puts them where its plan does):
 * fcl_params_stash copies every device tensor of P (values, gradients, AdamW moments) to the
 * host and frees it; fcl_params_unstash allocates them again, in the order they were first
 * allocated (each value and gradient as fcl_params_add made them, then the moments as the
 * first AdamW step did), copies them back and frees the stash (should an allocation fail
 * there, P is left without its device tensors: destroy the model). */
typedef struct fcl_params_stash fcl_params_stash;
fewcl_status fcl_params_stash_out(fewcl_context *ctx, fcl_params *P, fcl_params_stash **out);
fewcl_status fcl_params_unstash(fewcl_context *ctx, fcl_params *P, fcl_params_stash *stash);
/* Arena bytes P's device tensors hold. */
size_t fcl_params_device_bytes(const fcl_params *P);

/* Allocates the AdamW moments that the first step would (zeroed, or those a resume read
 * back): a meta-batch does it before its first episode, so that every step's episodes see the
 * same memory (lib/plan). */
fewcl_status fcl_params_alloc_moments(fewcl_context *ctx, fcl_params *P);
/* Total number of elements of the trainable parameters. */
size_t fcl_params_count(const fcl_params *P);
/* Floats in a flat vector of that kind. */
size_t fcl_params_flat_count(const fcl_params *P, fcl_flat which);
/* Device → host (blocking) and host → device, in table order. */
fewcl_status fcl_params_download_flat(fewcl_context *ctx, const fcl_params *P, fcl_flat which,
                                      float *out);
fewcl_status fcl_params_upload_flat(fewcl_context *ctx, fcl_params *P, fcl_flat which,
                                    const float *in);
/* SHA-256 (hex) of the STATE vector's bytes and of the AdamW moments (zeros before the first
 * step) with the step count: equal hashes, equal training state. For checks and tests. */
fewcl_status fcl_params_state_hash(fewcl_context *ctx, const fcl_params *P, char hex[65]);
/* Floats of all BatchNorm buffers together (R, the size of one episode's record), and where
 * buffer `index` (a table index) starts among them. */
size_t fcl_params_buffer_floats(const fcl_params *P);
size_t fcl_params_buffer_offset(const fcl_params *P, int index);

/* Deterministic test pattern, the same in C and in tools/reference/pattern.py: element i of a
 * tensor seeded `seed` is scale·(2u − 1), u = top 24 bits of splitmix64(seed·2^32 + i) / 2^24.
 * Used to fill large weights identically on both sides without committing them. */
float fcl_pattern_value(uint32_t seed, uint64_t i, float scale);
fewcl_status fcl_pattern_fill(fewcl_context *ctx, fcl_tensor *t, uint32_t seed, float scale);

#endif
