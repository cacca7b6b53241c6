/* Plain-C references in double precision: the ground truth for the device kernels.
 * Written for clarity, not speed; shapes as in lib/ops/ops.h. */
#ifndef FEWCL_TEST_REF_H
#define FEWCL_TEST_REF_H
#include <stddef.h>

/* C[m,n] = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions. */
void ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda,
              const double *b, int ldb, double beta, double *c, int ldc);

void ref_relu_forward(const double *x, double *y, size_t n);
void ref_relu_backward(const double *x, const double *dy, double *dx, size_t n);

/* y[N,out] = x[N,in]·W[out,in]ᵀ + b (b may be NULL). */
void ref_linear_forward(const double *x, const double *w, const double *b, double *y, int n, int in,
                        int out);
/* dx = dy·W; dw = dyᵀ·x; db = Σ_rows dy (each output overwritten; NULL skips it). */
void ref_linear_backward(const double *x, const double *w, const double *dy, double *dx, double *dw,
                         double *db, int n, int in, int out);

#endif
