/* Double-precision references of the row-wise ops (rows × cols, row-major). */
#ifndef FEWCL_TEST_REF_ROWWISE_H
#define FEWCL_TEST_REF_ROWWISE_H
#include <stddef.h>

void ref_layernorm_forward(const double *x, const double *gamma, const double *beta, double eps,
                           double *y, int rows, int cols);
/* dx, dgamma, dbeta overwritten. */
void ref_layernorm_backward(const double *x, const double *gamma, const double *dy, double eps,
                            double *dx, double *dgamma, double *dbeta, int rows, int cols);
void ref_gelu_forward(const double *x, double *y, size_t n);
void ref_gelu_backward(const double *x, const double *dy, double *dx, size_t n);
void ref_l2norm_forward(const double *x, double eps, double *y, int rows, int cols);
void ref_l2norm_backward(const double *x, const double *dy, double eps, double *dx, int rows,
                         int cols);
void ref_softmax_forward(const double *x, double scale, double *y, int rows, int cols);
/* The gradient with respect to x (y recomputed from x). */
void ref_softmax_backward(const double *x, const double *dy, double scale, double *dx, int rows,
                          int cols);

#endif
