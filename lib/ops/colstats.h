/* Column statistics of E [N,D] for the VIC losses (docs/maths.md §4.8): column mean, unbiased
 * variance and std, the standardised Ẽ = (E − mean)/(std + 1e-4) and its covariance
 * C = ẼᵀẼ/(N − 1 + 1e-4); forward and backward. */
#ifndef FEWCL_OPS_COLSTATS_H
#define FEWCL_OPS_COLSTATS_H

#include "ops.h"

/* The 1e-4 of V-B…V-D's VICRegularization(eps=1e-4). */
#define FCL_VIC_EPS 1e-4f

/* e [N,D] (N >= 2) → mean [D], var [D] (unbiased, divisor N−1), std [D] = √var and
 * z [N,D] = (e − mean)/(std + FCL_VIC_EPS). All outputs are required (one pass fills them). */
fewcl_status fcl_colstats_forward(fewcl_context *ctx, const fcl_tensor *e, fcl_tensor *mean,
                                  fcl_tensor *var, fcl_tensor *std, fcl_tensor *z);
/* de [N,D] (overwritten) from the gradients of any of mean, var, std, z (NULL: zero).
 * e, mean, std and z are the forward's input and outputs. */
fewcl_status fcl_colstats_backward(fewcl_context *ctx, const fcl_tensor *e, const fcl_tensor *mean,
                                   const fcl_tensor *std, const fcl_tensor *z,
                                   const fcl_tensor *dmean, const fcl_tensor *dvar,
                                   const fcl_tensor *dstd, const fcl_tensor *dz, fcl_tensor *de);
/* c [D,D] = zᵀz / (N − 1 + FCL_VIC_EPS) for z [N,D]. */
fewcl_status fcl_colcov_forward(fewcl_context *ctx, const fcl_tensor *z, fcl_tensor *c);
/* dz [N,D] (overwritten) = z·(dc + dcᵀ) / (N − 1 + FCL_VIC_EPS). */
fewcl_status fcl_colcov_backward(fewcl_context *ctx, const fcl_tensor *z, const fcl_tensor *dc,
                                 fcl_tensor *dz);

/* VIC losses of V-B…V-D (docs/maths.md §4.8), each a one-element tensor:
 * L_V = (1/D)·Σ_j max(0, 1 − √(var_j + 1e-4) − 1e-4) from the unbiased variances var [D];
 * L_C = (Σ_ij C_ij² − Σ_i C_ii²)/(D(D−1) + 1e-4) from the covariance c [D,D].
 * The backwards take dloss [1] on the device (no host round trip) and overwrite dvar / dc. */
fewcl_status fcl_vic_variance_loss_forward(fewcl_context *ctx, const fcl_tensor *var,
                                           fcl_tensor *loss);
fewcl_status fcl_vic_variance_loss_backward(fewcl_context *ctx, const fcl_tensor *var,
                                            const fcl_tensor *dloss, fcl_tensor *dvar);
fewcl_status fcl_vic_covariance_loss_forward(fewcl_context *ctx, const fcl_tensor *c,
                                             fcl_tensor *loss);
fewcl_status fcl_vic_covariance_loss_backward(fewcl_context *ctx, const fcl_tensor *c,
                                              const fcl_tensor *dloss, fcl_tensor *dc);

#endif
