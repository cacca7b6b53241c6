/* The Mahalanobis classifier of V-B…V-D (docs/maths.md §4.4–§4.7, docs/spec.md §3): per class c
 * with supports E_c [k,D] (k >= 2 rows... or 1: then S = 0), the centred X_c = E_c − mean,
 * Σ_c = αI + β·X_cᵀX_c with α = D/(k+D), β = (1−α)/(k−1+1e-4), and
 * logits[r,c] = −(h_r − p_c)ᵀ Σ_c⁻¹ (h_r − p_c).
 *
 * Two exact paths: dense (Σ_c formed and inverted by a blocked Cholesky on the device) and
 * low-rank (Woodbury: Σ_c⁻¹v = (1/α)[v − X_cᵀ(α/β·I_k + X_cX_cᵀ)⁻¹X_c v], only k×k systems;
 * memory O(n·k·D), no D×D matrix). Both save X and Y[c,r] = Σ_c⁻¹(h_r − p_c) for the backward,
 * which is the same for both: with g[c,r] = −2·dlogit[r,c]·Y[c,r],
 *   dh_r = Σ_c g[c,r],  dp_c = −Σ_r g[c,r],
 *   dΣ_c = −Σ_r dist'·y yᵀ = −½ G_cᵀY_c,  dX_c = 2β·X_c·dΣ_c = −β·(X_c G_cᵀ)·Y_c,
 *   dE_c = dX_c − mean over rows of dX_c (the centring). */
#ifndef FEWCL_OPS_MAHALANOBIS_H
#define FEWCL_OPS_MAHALANOBIS_H

#include "ops.h"

/* The diagonal jitter of the retry after a failed Cholesky (V-B/V-D add 1e-4). */
#define FCL_SPD_JITTER 1e-4f
/* ε of the covariance divisor k − 1 + ε (MahalanobisClassifier(eps=1e-4)). */
#define FCL_MAHA_EPS 1e-4f

typedef enum fcl_maha_path { FCL_MAHA_PATH_DENSE, FCL_MAHA_PATH_LOWRANK } fcl_maha_path;

/* In-place Cholesky of each symmetric matrix of a [B,D,D] (lower triangle read; the factor L
 * written there, the strict upper triangle left as garbage). status [B] is set to 0, or the
 * 1-based index of the first pivot that was not positive (or NaN). Nothing is read back. */
fewcl_status fcl_cholesky_batched(fewcl_context *ctx, fcl_tensor *a, fcl_tensor *status);

/* inv [B,D,D] = a⁻¹ for symmetric positive definite matrices a [B,D,D] (untouched): Cholesky,
 * triangular inverse, inv = L⁻ᵀL⁻¹. A matrix whose Cholesky fails is retried with
 * FCL_SPD_JITTER added to its diagonal; if it fails again the result is FEWCL_ERR_NUMERIC
 * naming "<what> <index>". jittered (NULL or B ints) tells which needed the jitter. Reads the
 * status flags back (one small blocking read). */
fewcl_status fcl_spd_inverse(fewcl_context *ctx, const fcl_tensor *a, fcl_tensor *inv,
                             const char *what, int *jittered);

/* x [n,k,D] = the supports e [n,k,D] centred per class; sigma [n,D,D] = αI + β·xᵀx. */
fewcl_status fcl_mahalanobis_covariance(fewcl_context *ctx, const fcl_tensor *e, fcl_tensor *x,
                                        fcl_tensor *sigma);

/* The query-independent half of the classifier, kept to classify many query batches against
 * one support set (fewcl_enroll): dense: Σ_c⁻¹ [n,D,D] (FCL_MEM_COVARIANCE); low-rank: the
 * centred supports and K_c⁻¹ = ((α/β)·I_k + X_cX_cᵀ)⁻¹ [n,k,k]. x [n,k,D] (the centred
 * supports, caller-owned) must outlive the factor. fcl_mahalanobis_forward is factor + apply +
 * free, so both ways run the same kernels on the same values. */
typedef struct fcl_maha_factor {
    fcl_maha_path path;
    int n, k, d;
    float alpha, beta;
    const fcl_tensor *x;
    fcl_tensor inv;  /* dense */
    fcl_tensor kinv; /* low-rank */
} fcl_maha_factor;

fewcl_status fcl_mahalanobis_factor(fewcl_context *ctx, fcl_maha_path path,
                                    const fcl_tensor *supports, fcl_tensor *x, fcl_maha_factor *f);
/* protos [n,D], queries [Q,D] → logits [Q,n]; y [n,Q,D] receives Σ_c⁻¹(h_r − p_c). */
fewcl_status fcl_mahalanobis_apply(fewcl_context *ctx, const fcl_maha_factor *f,
                                   const fcl_tensor *protos, const fcl_tensor *queries,
                                   fcl_tensor *logits, fcl_tensor *y);
void fcl_mahalanobis_factor_free(fewcl_context *ctx, fcl_maha_factor *f);

/* supports [n,k,D], protos [n,D], queries [Q,D] → logits [Q,n]; saves x [n,k,D] and
 * y [n,Q,D] for the backward (callers allocate them as activations). */
fewcl_status fcl_mahalanobis_forward(fewcl_context *ctx, fcl_maha_path path,
                                     const fcl_tensor *supports, const fcl_tensor *protos,
                                     const fcl_tensor *queries, fcl_tensor *logits, fcl_tensor *x,
                                     fcl_tensor *y);
/* From dlogits [Q,n]: dsupports [n,k,D], dprotos [n,D], dqueries [Q,D] (each overwritten;
 * NULL skips it). x and y as saved by the forward. */
fewcl_status fcl_mahalanobis_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *y,
                                      const fcl_tensor *dlogits, fcl_tensor *dsupports,
                                      fcl_tensor *dprotos, fcl_tensor *dqueries);

#endif
