/* Double-precision references of the VIC column statistics (lib/ops/colstats.h). */
#ifndef FEWCL_TEST_REF_COLSTATS_H
#define FEWCL_TEST_REF_COLSTATS_H

/* e [n,d] → mean, var (unbiased), std [d], z [n,d] = (e − mean)/(std + eps). */
void ref_colstats_forward(const double *e, int n, int d, double eps, double *mean, double *var,
                          double *std, double *z);
/* de [n,d] from the gradients of mean, var, std, z (NULL: zero). */
void ref_colstats_backward(const double *e, int n, int d, double eps, const double *dmean,
                           const double *dvar, const double *dstd, const double *dz, double *de);
/* c [d,d] = zᵀz / (n − 1 + eps). */
void ref_colcov_forward(const double *z, int n, int d, double eps, double *c);
/* dz = z(dc + dcᵀ)/(n − 1 + eps). */
void ref_colcov_backward(const double *z, int n, int d, double eps, const double *dc, double *dz);

/* L_V = (1/d)·Σ max(0, 1 − √(var + eps) − eps) and its gradient dvar = dl·∂L_V/∂var. */
double ref_vic_variance_loss(const double *var, int d, double eps);
void ref_vic_variance_loss_backward(const double *var, int d, double eps, double dl, double *dvar);
/* L_C = (Σ c² − Σ diag²)/(d(d−1) + eps) and dc = dl·∂L_C/∂c. */
double ref_vic_covariance_loss(const double *c, int d, double eps);
void ref_vic_covariance_loss_backward(const double *c, int d, double eps, double dl, double *dc);

#endif
