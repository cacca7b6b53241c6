/* Checkpoints (docs/spec.md §6): the model's parameters and BatchNorm buffers under their PyTorch
 * names, optionally the AdamW moments (`adamw.m.<name>`, `adamw.v.<name>`), and in
 * __metadata__ the model config ("config", JSON), the optimiser step ("adamw_step") and the
 * trainer's state ("training", JSON owned by the trainer). Written to a temporary file,
 * fsync'd and renamed, so a crash at any moment leaves the previous file whole. */
#ifndef FEWCL_TRAIN_CHECKPOINT_H
#define FEWCL_TRAIN_CHECKPOINT_H

#include "../nn/model.h"

#define FCL_CHECKPOINT_FORMAT "fewcl-checkpoint-1"

/* training_json may be NULL (a plain weights file). */
fewcl_status fcl_checkpoint_save(fewcl_context *ctx, const fcl_model *m, int with_optimizer,
                                 const char *training_json, const char *path);
/* The model config stored in st; *found = 0 (and cfg untouched) for a file without one, such
 * as weights exported from PyTorch. */
fewcl_status fcl_checkpoint_config(const fcl_safetensors *st, fcl_model_config *cfg, int *found);
/* Loads every parameter and buffer of m (missing ones are an error naming them; keys that are
 * not the model's are ignored) and, with_optimizer, the AdamW moments and step count (moments
 * the model has not allocated yet wait on the host for its next step, params.h). */
fewcl_status fcl_checkpoint_load(fewcl_context *ctx, fcl_model *m, const fcl_safetensors *st,
                                 int with_optimizer);
/* fcl_checkpoint_config of the file at path. */
fewcl_status fcl_checkpoint_read_config(const char *path, fcl_model_config *cfg, int *found);
/* Opens trained weights as a model for evaluation: the architecture stored in the file (when it
 * has one; else *cfg's) with the episode sizes and run settings of *cfg (n_way, k_shot,
 * n_query, mahalanobis, checkpoint, bn_batch_stats_at_test); *cfg becomes the config built.
 * The learned prototype weights are shaped by the training n_way × k_shot: for another shape
 * they cannot apply, so they stay uniform (zeros: softmax gives the plain mean of the shots)
 * and *uniform_protos is set (may be NULL). */
fewcl_status fcl_checkpoint_open_model(fewcl_context *ctx, const char *path, fcl_model_config *cfg,
                                       fcl_model **out, int *uniform_protos);
/* A malloc'd copy of the "training" metadata (NULL when absent). */
char *fcl_checkpoint_training(const fcl_safetensors *st);

#endif
