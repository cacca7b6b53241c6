/* AdamW optimiser step (PyTorch semantics: decoupled weight decay, bias correction, eps
 * outside the square root). */
#ifndef FEWCL_OPS_ADAMW_H
#define FEWCL_OPS_ADAMW_H

#include "ops.h"

typedef struct fcl_adamw_config {
    double lr, beta1, beta2, eps, weight_decay;
} fcl_adamw_config;

/* docs/spec.md §4 defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 1e-5. */
fcl_adamw_config fcl_adamw_defaults(void);
/* One update of `param` from `grad`; `m`, `v` are the moment buffers (zero before step 1);
 * `step` counts from 1. All four tensors have the same shape. */
fewcl_status fcl_adamw_step(fewcl_context *ctx, const fcl_adamw_config *cfg, long step,
                            fcl_tensor *param, const fcl_tensor *grad, fcl_tensor *m,
                            fcl_tensor *v);

#endif
