/* Double-precision references of the Mahalanobis classifier (lib/ops/mahalanobis.h). */
#ifndef FEWCL_TEST_REF_MAHALANOBIS_H
#define FEWCL_TEST_REF_MAHALANOBIS_H

/* l [d,d] = the lower Cholesky factor of a (upper triangle zero). Returns 0, or the 1-based
 * index of the first non-positive pivot. */
int ref_cholesky(const double *a, int d, double *l);
/* inv [d,d] = a⁻¹ by Gauss-Jordan elimination with partial pivoting (independent of the
 * Cholesky route the device takes). Returns 0, or 1 for a singular matrix. */
int ref_inverse(const double *a, int d, double *inv);
/* sigma [n,d,d]: α·I + (1−α)/(k−1+eps)·(E_c − μ_c)ᵀ(E_c − μ_c), α = d/(k+d). */
void ref_mahalanobis_covariance(const double *e, int n, int k, int d, double *sigma);
/* logits [q,n] = −(h_r − p_c)ᵀΣ_c⁻¹(h_r − p_c), with Σ_c formed and inverted (dense). */
void ref_mahalanobis_forward(const double *e, const double *p, const double *h, int n, int k, int d,
                             int q, double *logits);
/* The same by Woodbury (no d×d matrix): for large d. */
void ref_mahalanobis_lowrank_forward(const double *e, const double *p, const double *h, int n,
                                     int k, int d, int q, double *logits);
/* de [n,k,d], dp [n,d], dh [q,d] from dlogits [q,n], through explicit dΣ = −Σ⁻¹·G·Σ⁻¹. */
void ref_mahalanobis_backward(const double *e, const double *p, const double *h, int n, int k,
                              int d, int q, const double *dlogits, double *de, double *dp,
                              double *dh);

#endif
