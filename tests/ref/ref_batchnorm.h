/* Double-precision reference of BatchNorm2d (PyTorch semantics), NCHW. */
#ifndef FEWCL_TEST_REF_BATCHNORM_H
#define FEWCL_TEST_REF_BATCHNORM_H

/* Training forward: y, running stats updated in place, mean and 1/√(var+eps) saved. */
void ref_bn_forward_train(const double *x, const double *gamma, const double *beta, double *rmean,
                          double *rvar, double momentum, double eps, double *y, double *smean,
                          double *sinv, int n, int c, int hw);
void ref_bn_forward_eval(const double *x, const double *gamma, const double *beta,
                         const double *rmean, const double *rvar, double eps, double *y, int n,
                         int c, int hw);
/* Training backward: dx, dgamma, dbeta overwritten (the statistics recomputed from x). */
void ref_bn_backward_train(const double *x, const double *gamma, const double *dy, double eps,
                           double *dx, double *dgamma, double *dbeta, int n, int c, int hw);
void ref_bn_backward_eval(const double *x, const double *gamma, const double *rmean,
                          const double *rvar, const double *dy, double eps, double *dx,
                          double *dgamma, double *dbeta, int n, int c, int hw);

#endif
