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
/* Forward in evaluation mode and the accuracy of its logits. */
fewcl_status fcl_eval_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                           fcl_step_result *r);

#endif
