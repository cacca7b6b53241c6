/* Winograd F(m x m, 3x3), m = 2, 3 or 4, in double, written from its definition (Lavin & Gray
 * 2016; the matrices are in lib/ops/conv_winograd{,3,4}_host.c), for 3x3
 * stride-1 convolutions with any padding: the algorithm's exact-arithmetic result, and (abs)
 * the same program run on absolute values, which bounds float rounding (see
 * tests/test_conv_algo.c). Shapes as ref_conv.h; the three directions as the algorithm
 * computes them:
 *   forward  y = Aᵀ[Σ_c (G w Gᵀ) ⊙ (Bᵀ d B)]A per m x m output block (+ b)
 *   data     dx = Σ_blocks B[Σ_o (G w Gᵀ) ⊙ (A dY Aᵀ)]Bᵀ placed at the block's α x α patch
 *            (α = m + 2)
 *   weights  dw = Gᵀ[Σ_{n,blocks} (A dY Aᵀ) ⊙ (Bᵀ d B)]G
 * abs = 1: every input and every transform entry taken by absolute value (outputs ≥ 0). */
#ifndef FEWCL_TEST_REF_WINOGRAD_H
#define FEWCL_TEST_REF_WINOGRAD_H

#include "ref_conv.h"

void ref_winograd_forward(const ref_conv_shape *s, int m, const double *x, const double *w,
                          const double *b, double *y, int abs);
void ref_winograd_data(const ref_conv_shape *s, int m, const double *w, const double *dy,
                       double *dx, int abs);
void ref_winograd_weights(const ref_conv_shape *s, int m, const double *x, const double *dy,
                          double *dw, int abs);

#endif
