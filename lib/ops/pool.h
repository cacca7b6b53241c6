/* 2-D max pooling (PyTorch F.max_pool2d with return_indices, floor mode, NCHW). */
#ifndef FEWCL_OPS_POOL_H
#define FEWCL_OPS_POOL_H

#include "ops.h"

typedef struct fcl_pool2d_params {
    int kernel, stride, pad; /* square window; PyTorch requires pad <= kernel / 2 */
} fcl_pool2d_params;

/* Output size along one dimension: floor((in + 2·pad − kernel) / stride) + 1. */
int fcl_pool2d_out_size(int in, const fcl_pool2d_params *p);

/* y[N,C,OH,OW] = max over each window of x[N,C,H,W] (padding acts as −inf). idx (same shape
 * as y) receives the argmax as a float ih·W + iw within its plane, the first maximum in scan
 * order as in PyTorch; floats hold these indices exactly because H·W <= 2^24 is required. */
fewcl_status fcl_maxpool2d_forward(fewcl_context *ctx, const fcl_tensor *x,
                                   const fcl_pool2d_params *p, fcl_tensor *y, fcl_tensor *idx);
/* dx[N,C,H,W] (overwritten) = Σ of dy over the outputs whose argmax is that position. */
fewcl_status fcl_maxpool2d_backward(fewcl_context *ctx, const fcl_tensor *idx, const fcl_tensor *dy,
                                    const fcl_pool2d_params *p, fcl_tensor *dx);

#endif
