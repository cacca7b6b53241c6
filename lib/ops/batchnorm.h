/* BatchNorm2d (PyTorch nn.BatchNorm2d: affine, track_running_stats) over NCHW tensors.
 * x may also be [N,C] (H = W = 1). Per-channel tensors (gamma, beta, running stats, saved
 * statistics, dgamma, dbeta) are [C]. */
#ifndef FEWCL_OPS_BATCHNORM_H
#define FEWCL_OPS_BATCHNORM_H

#include "ops.h"

#define FCL_BN_EPS 1e-5f
#define FCL_BN_MOMENTUM 0.1f

/* Training mode: normalises with the batch mean and biased variance over (N,H,W), writes y,
 * updates running_mean/running_var in place (momentum; running_var from the unbiased
 * variance) and saves mean and 1/√(var+eps) per channel for the backward pass. Then, as
 * fcl_batchnorm_forward_eval_fused, y += add (when not NULL; may alias y) and y = max(y, 0)
 * (when relu), bit for bit fcl_add and fcl_relu_forward after it. */
fewcl_status fcl_batchnorm_forward_train(fewcl_context *ctx, const fcl_tensor *x,
                                         const fcl_tensor *gamma, const fcl_tensor *beta,
                                         fcl_tensor *running_mean, fcl_tensor *running_var,
                                         float momentum, float eps, const fcl_tensor *add, int relu,
                                         fcl_tensor *y, fcl_tensor *save_mean,
                                         fcl_tensor *save_invstd);
/* The same for one episode of a meta-batch (docs/maths.md §7.1): the running statistics are
 * left alone; the batch mean and the unbiased variance go to record[mean_at …] and
 * record[var_at …] (C floats each) instead. */
fewcl_status fcl_batchnorm_forward_train_record(fewcl_context *ctx, const fcl_tensor *x,
                                                const fcl_tensor *gamma, const fcl_tensor *beta,
                                                fcl_tensor *record, size_t mean_at, size_t var_at,
                                                float eps, const fcl_tensor *add, int relu,
                                                fcl_tensor *y, fcl_tensor *save_mean,
                                                fcl_tensor *save_invstd);
/* running[c] ← (1−momentum)·running[c] + momentum·records[at + e·stride + c] for e = 0 …
 * episodes−1 in order, by the training forward's own update code, so that the result equals
 * those episodes' in-kernel updates bit for bit. */
fewcl_status fcl_batchnorm_running_replay(fewcl_context *ctx, fcl_tensor *running,
                                          const fcl_tensor *records, size_t at, size_t stride,
                                          int episodes, float momentum);
/* Evaluation mode: y = (x − running_mean)/√(running_var+eps)·gamma + beta. */
fewcl_status fcl_batchnorm_forward_eval(fewcl_context *ctx, const fcl_tensor *x,
                                        const fcl_tensor *gamma, const fcl_tensor *beta,
                                        const fcl_tensor *running_mean,
                                        const fcl_tensor *running_var, float eps, fcl_tensor *y);
/* The same, then y += add (when not NULL; may alias y) and y = max(y, 0) (when relu): a
 * block's residual sum and ReLU in the BatchNorm's pass, bit for bit what fcl_add and
 * fcl_relu_forward after it give. */
fewcl_status fcl_batchnorm_forward_eval_fused(fewcl_context *ctx, const fcl_tensor *x,
                                              const fcl_tensor *gamma, const fcl_tensor *beta,
                                              const fcl_tensor *running_mean,
                                              const fcl_tensor *running_var, float eps,
                                              const fcl_tensor *add, int relu, fcl_tensor *y);
/* Training-mode backward from the saved statistics: dx overwritten (may alias dy);
 * dgamma += Σ dy·x̂, dbeta += Σ dy. */
fewcl_status fcl_batchnorm_backward_train(fewcl_context *ctx, const fcl_tensor *x,
                                          const fcl_tensor *gamma, const fcl_tensor *save_mean,
                                          const fcl_tensor *save_invstd, const fcl_tensor *dy,
                                          fcl_tensor *dx, fcl_tensor *dgamma, fcl_tensor *dbeta);
/* Evaluation-mode backward (running statistics are constants): dx = dy·gamma/√(rv+eps)
 * (overwritten, may alias dy); dgamma += Σ dy·x̂, dbeta += Σ dy. */
fewcl_status fcl_batchnorm_backward_eval(fewcl_context *ctx, const fcl_tensor *x,
                                         const fcl_tensor *gamma, const fcl_tensor *running_mean,
                                         const fcl_tensor *running_var, float eps,
                                         const fcl_tensor *dy, fcl_tensor *dx, fcl_tensor *dgamma,
                                         fcl_tensor *dbeta);

#endif
