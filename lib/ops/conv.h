/* 2-D convolution (PyTorch F.conv2d, NCHW, zero padding, no dilation or groups) as
 * im2col + one GEMM per chunk of images (CLBlast, or the host BLAS on CPU devices), with a
 * bounded workspace. */
#ifndef FEWCL_OPS_CONV_H
#define FEWCL_OPS_CONV_H

#include "ops.h"

/* The default bound on the im2col workspace of one call (bytes). */
#define FCL_CONV_WORKSPACE_DEFAULT ((size_t)64 << 20)

typedef struct fcl_conv2d_params {
    int stride, pad;        /* the same along H and W; stride >= 1, pad >= 0 */
    size_t workspace_bytes; /* bound on the im2col workspace; 0: FCL_CONV_WORKSPACE_DEFAULT */
} fcl_conv2d_params;

/* Workspace bytes per output pixel of a chunk: its im2col column (K = Cin·KH·KW floats) and,
 * on the OpenCL path (host = 0), its column of the chunk's GEMM output [Cout, images·pixels].
 * The workspace bound holds as many such columns as fit. */
size_t fcl_conv2d_column_bytes(int host, int taps, int cout);

/* Output size along one dimension: floor((in + 2·pad − k) / stride) + 1 (0 if none fits). */
int fcl_conv2d_out_size(int in, int k, int stride, int pad);

/* y[N,Cout,OH,OW] = conv(x[N,Cin,H,W], w[Cout,Cin,KH,KW]) + b[Cout] (b may be NULL). */
fewcl_status fcl_conv2d_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                const fcl_tensor *b, const fcl_conv2d_params *p, fcl_tensor *y);

/* dx = convᵀ(dy, w) (overwritten; skipped when NULL); dw += dy ⋆ x; db += Σ_{n,h,w} dy
 * (NULL: skipped). Parameter gradients accumulate, as in PyTorch. All deterministic. */
fewcl_status fcl_conv2d_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *dy, const fcl_conv2d_params *p, fcl_tensor *dx,
                                 fcl_tensor *dw, fcl_tensor *db);

#endif
