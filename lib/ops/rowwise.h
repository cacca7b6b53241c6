/* Row-wise ops over the last dimension of a tensor of any rank (rows = numel / last dim):
 * layer normalisation, L2 normalisation, softmax; and the exact GELU (elementwise). */
#ifndef FEWCL_OPS_ROWWISE_H
#define FEWCL_OPS_ROWWISE_H

#include "ops.h"

#define FCL_LN_EPS 1e-5f
#define FCL_L2N_EPS 1e-12f

/* F.layer_norm over the last dim D: gamma, beta [D]; saves mean and rstd = 1/√(var+eps)
 * (biased variance) per row into mean, rstd [rows]. */
fewcl_status fcl_layernorm_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *gamma,
                                   const fcl_tensor *beta, float eps, fcl_tensor *y,
                                   fcl_tensor *mean, fcl_tensor *rstd);
/* dx overwritten (may alias dy); dgamma += Σ_rows dy·x̂, dbeta += Σ_rows dy. */
fewcl_status fcl_layernorm_backward(fewcl_context *ctx, const fcl_tensor *x,
                                    const fcl_tensor *gamma, const fcl_tensor *mean,
                                    const fcl_tensor *rstd, const fcl_tensor *dy, fcl_tensor *dx,
                                    fcl_tensor *dgamma, fcl_tensor *dbeta);

/* y = x·Φ(x) (F.gelu, approximate='none'); y may alias x. */
fewcl_status fcl_gelu_forward(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y);
/* dx = dy·(Φ(x) + x·φ(x)); dx may alias dy. */
fewcl_status fcl_gelu_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *dy,
                               fcl_tensor *dx);

/* y = x / max(‖x‖₂, eps) per row (F.normalize(x, dim=-1)). */
fewcl_status fcl_l2norm_forward(fewcl_context *ctx, const fcl_tensor *x, float eps, fcl_tensor *y);
/* dx from x and dy (the norm is recomputed); dx may alias dy. */
fewcl_status fcl_l2norm_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *dy,
                                 float eps, fcl_tensor *dx);

/* y = softmax(scale·x) over the last dim, stable (the row max is subtracted). */
fewcl_status fcl_softmax_forward(fewcl_context *ctx, const fcl_tensor *x, float scale,
                                 fcl_tensor *y);
/* From the output y: dx = scale·y·(dy − ⟨y,dy⟩); dx may alias dy. */
fewcl_status fcl_softmax_backward(fewcl_context *ctx, const fcl_tensor *y, const fcl_tensor *dy,
                                  float scale, fcl_tensor *dx);

#endif
