/* Checkpoints (SPEC §6): the model's parameters and BatchNorm buffers under their PyTorch
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
 * not the model's are ignored) and, with_optimizer, the AdamW moments and step count. */
fewcl_status fcl_checkpoint_load(fewcl_context *ctx, fcl_model *m, const fcl_safetensors *st,
                                 int with_optimizer);
/* A malloc'd copy of the "training" metadata (NULL when absent). */
char *fcl_checkpoint_training(const fcl_safetensors *st);

#endif
