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

#endif
