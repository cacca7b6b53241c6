/* Opening trained models (see checkpoint_open.h): the library's own functions. */
#include "checkpoint_open.h"

#include "train/checkpoint.h"

fewcl_status read_weights_config(const char *path, fcl_model_config *cfg, int *found) {
    return fcl_checkpoint_read_config(path, cfg, found);
}

fewcl_status open_trained_model(fewcl_context *ctx, const char *path, fcl_model_config *cfg,
                                fcl_model **out) {
    return fcl_checkpoint_open_model(ctx, path, cfg, out, NULL);
}
