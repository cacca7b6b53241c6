/* One episode of training or evaluation on a built model, with its results read back to the
 * host: the unit the trainer, `fewcl test` and the training-parity test share. */
#ifndef FEWCL_TRAIN_STEP_H
#define FEWCL_TRAIN_STEP_H

#include "../nn/model.h"

typedef struct fcl_step_result {
    /* Training only (else 0): the total loss backward differentiated and its parts
     * (enhanced: cross-entropy, variance, covariance; fsct: cross-entropy only). */
    double loss, loss_ce, loss_var, loss_cov;
    int correct, queries; /* argmax of the logits == label, over n·q queries */
} fcl_step_result;

/* Zeroes the gradients, runs forward (training mode) and backward, then one AdamW step.
 * x is the episode [n·(k+q), 3, S, S] on the device. A loss that is not finite stops before
 * the optimiser step (FEWCL_ERR_NUMERIC), so the parameters stay as they were. */
fewcl_status fcl_train_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                            const fcl_adamw_config *opt, fcl_step_result *r);
/* A meta-batch step of M episodes (docs/maths.md §7.1) is M calls of fcl_grad_step, whose
 * gradients the caller sums by the fixed tree (reduce.h) and divides by M, then one
 * fcl_apply_step. M = 1 is fcl_train_step, not this.
 *
 * One episode: zeroes the gradients, runs forward (training mode, BatchNorm statistics
 * recorded, running statistics untouched) and backward, and copies the gradients to grad
 * (fcl_params_flat_count(GRADS) floats) and the BatchNorm record to bn
 * (fcl_params_buffer_floats) on the host. The parameters are unchanged. A non-finite loss
 * fails (FEWCL_ERR_NUMERIC) as in fcl_train_step. */
fewcl_status fcl_grad_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, float *grad,
                           float *bn, fcl_step_result *r);
/* The update: gradients ← g (the episodes' mean gradient); BatchNorm running statistics ← the
 * replay of the M records bn[e·R …] in episode order (R = fcl_params_buffer_floats); one AdamW
 * step. */
fewcl_status fcl_apply_step(fewcl_context *ctx, fcl_model *m, const float *g, const float *bn,
                            int M, const fcl_adamw_config *opt);
/* Forward in evaluation mode and the accuracy of its logits. */
fewcl_status fcl_eval_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                           fcl_step_result *r);

#endif
