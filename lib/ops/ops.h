/* Host side of the op families: forward and backward launchers.
 * All tensors are row-major float32 in the context's arena. Launches are asynchronous. */
#ifndef FEWCL_OPS_H
#define FEWCL_OPS_H

#include "../runtime/tensor.h"

/* ---- gemm.c: CLBlast GEMMs; temp buffers come from the arena ---------------------------- */

/* A matrix inside a tensor: `rows`x`cols` as stored, leading dimension `ld`, starting
 * `offset` elements into the tensor. */
typedef struct fcl_matrix {
    const fcl_tensor *t;
    size_t offset;
    int ld;
} fcl_matrix;

/* C = alpha·op(A)·op(B) + beta·C with op(A) MxK, op(B) KxN, C MxN (row-major). */
fewcl_status fcl_gemm(fewcl_context *ctx, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, fcl_matrix a, fcl_matrix b, float beta, fcl_matrix c);
/* `batch` GEMMs; matrix i starts stride_* elements after matrix i-1. Runs as a loop of
 * temp-buffer GEMMs so every byte stays in the arena's accounting (CLBlast's batched
 * routine allocates internally); the batches in this model are small (heads, classes). */
fewcl_status fcl_gemm_strided_batched(fewcl_context *ctx, int trans_a, int trans_b, int m, int n,
                                      int k, float alpha, fcl_matrix a, size_t stride_a,
                                      fcl_matrix b, size_t stride_b, float beta, fcl_matrix c,
                                      size_t stride_c, int batch);

/* fewcl's tiled GEMM (cl/gemm.cl), the fcl_gemm_strided_batched contract, with k cut into
 * `slices` partial products summed in order (split-K, batch 1 only; workspace slices·m·n
 * floats). fcl_gemm takes it on the OpenCL path for long-K A·Bᵀ products with few output
 * tiles (fcl_gemm_splitk_slices), where CLBlast leaves the device idle, and for every
 * product under FEWCL_GEMM=tiled, where it runs (else CLBlast). Products with k beyond
 * 32768 run as several launches that add onto C. */
fewcl_status fcl_gemm_tiled(fewcl_context *ctx, int trans_a, int trans_b, int m, int n, int k,
                            float alpha, fcl_matrix a, size_t stride_a, fcl_matrix b,
                            size_t stride_b, float beta, fcl_matrix c, size_t stride_c, int batch,
                            int slices);
/* Whether the tiled kernel for op(A)·op(B) runs here: 256-item work-groups for the device and
 * for the compiled kernel (CL_KERNEL_WORK_GROUP_SIZE), 16 KiB of local memory. */
int fcl_gemm_tiled_runs(fewcl_context *ctx, int trans_a, int trans_b);
/* The slices for C[m,n] over k on this device: enough work-groups for 4 per compute unit,
 * slices of at least 512; 1: not split. */
int fcl_gemm_splitk_slices(const fewcl_context *ctx, int m, int n, int k);

/* Applies the CLBlast tuning for this device once (gemm_tuning.c); called by the GEMMs. */
fewcl_status fcl_gemm_tune(fewcl_context *ctx);

/* ---- elementwise.c ---------------------------------------------------------------------- */

fewcl_status fcl_fill(fewcl_context *ctx, fcl_tensor *x, float value);
/* out = a + b (same shapes; out may alias a or b). Backward: da = db = dout. */
fewcl_status fcl_add(fewcl_context *ctx, const fcl_tensor *a, const fcl_tensor *b, fcl_tensor *out);
/* out = alpha·x (out may alias x). Backward: dx = alpha·dout, i.e. fcl_scale again. */
fewcl_status fcl_scale(fewcl_context *ctx, const fcl_tensor *x, float alpha, fcl_tensor *out);
/* y += alpha·x: gradient accumulation. */
fewcl_status fcl_axpy(fewcl_context *ctx, float alpha, const fcl_tensor *x, fcl_tensor *y);
/* y = max(x, 0) (y may alias x). */
fewcl_status fcl_relu_forward(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y);
/* dx = dy where y > 0, else 0 (PyTorch's threshold_backward on the output; dx may alias dy). */
fewcl_status fcl_relu_backward(fewcl_context *ctx, const fcl_tensor *y, const fcl_tensor *dy,
                               fcl_tensor *dx);

/* ---- linear.c: y = x·Wᵀ + b ------------------------------------------------------------- */

/* x [N,in], w [out,in], b [out] or NULL, y [N,out]. */
fewcl_status fcl_linear_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                const fcl_tensor *b, fcl_tensor *y);
/* dx [N,in] = dy·W (skipped when dx is NULL; overwritten); dw += dyᵀ·x; db += Σ_rows dy
 * (db NULL: no bias). Parameter gradients accumulate, as in PyTorch. */
fewcl_status fcl_linear_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *dy, fcl_tensor *dx, fcl_tensor *dw,
                                 fcl_tensor *db);
/* out[j] (+)= Σ_i x[i,j] over the rows of a 2-D x; accumulate selects += or =. */
fewcl_status fcl_sum_rows(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *out, int accumulate);

#endif
