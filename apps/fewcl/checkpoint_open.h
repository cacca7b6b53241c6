/* Opening a trained model from a weights file for evaluation. */
#ifndef FEWCL_APP_CHECKPOINT_OPEN_H
#define FEWCL_APP_CHECKPOINT_OPEN_H

#include "nn/model.h"

/* Builds the model for the weights in `path` and loads them. A fewcl checkpoint carries its
 * config: its architecture replaces cfg's (episode sizes, Mahalanobis path, checkpointing and
 * BatchNorm-at-test stay as cfg says) and *cfg is updated. A file without one (exported from
 * PyTorch) is read with cfg as given. Missing parameters are an error naming them. */
fewcl_status open_trained_model(fewcl_context *ctx, const char *path, fcl_model_config *cfg,
                                fcl_model **out);
/* The config stored in a weights file (*found 0 when it has none). */
fewcl_status read_weights_config(const char *path, fcl_model_config *cfg, int *found);

#endif
