/* Winograd F(3x3,3x3) on the host path (Lavin & Gray 2016; Toom-Cook points 0, 1, −1, 2, ∞):
 * each 3x3 block of output pixels is Y = Aᵀ [ Σ_c (G w Gᵀ) ⊙ (Bᵀ d B) ] A, d the 5x5 input
 * patch, with
 *     Bᵀ = [2 -1 -2  1 0;      G = [ 1/2    0    0;      Aᵀ = [1 1  1 1 0;
 *           0 -2 -1  1 0;            -1/2 -1/2 -1/2;            0 1 -1 2 0;
 *           0  2 -3  1 0;            -1/6  1/6 -1/6;            0 1  1 4 1]
 *           0 -1  0  1 0;             1/6  1/3  2/3;
 *           0  2 -1 -2 1]               0    0    1]
 * 25 products per 9 outputs (2.78 per output, where the direct form takes 9, F(2x2,3x3) 4
 * and F(4x4,3x3) 2.25). Its tile fits the small planes of ResNets' last stages: a 3x3 plane
 * is one whole tile (F(4x4) computes 16 outputs for its 9 there, F(2x2) 4 tiles of 16
 * products), a 6x6 plane four. Transform entries up to 3 (Bᵀ) and 4 (Aᵀ): a rounding bound
 * between F(2x2)'s and F(4x4)'s, stated and checked in tests/test_conv_algo.c. As in
 * F(4x4), U = G w Gᵀ runs in double and rounds once (1/6 is not a float) and the data
 * transforms in float; the driver, the GEMMs and the layouts are conv_winograd_host.c's
 * (conv_winograd.h), the 2-D transforms' loops conv_winograd_rows.h's. */
#include "conv_winograd_rows.h"

static const double G[5][3] = {{0.5, 0, 0},
                               {-0.5, -0.5, -0.5},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 6, 1.0 / 3, 2.0 / 3},
                               {0, 0, 1}};

/* ---- the 1-D transforms: d, v, m read at stride s; o written at stride t ---- */

/* Bᵀ d */
static inline void in_1d(const float *d, size_t s, float *o, size_t t) {
    float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    o[0] = 2 * d0 - d1 - 2 * d2 + d3;
    o[t] = -2 * d1 - d2 + d3;
    o[2 * t] = 2 * d1 - 3 * d2 + d3;
    o[3 * t] = d3 - d1;
    o[4 * t] = 2 * d1 - d2 - 2 * d3 + d4;
}
/* B v */
static inline void in_1d_t(const float *v, size_t s, float *o, size_t t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s], v4 = v[4 * s];
    o[0] = 2 * v0;
    o[t] = -v0 - 2 * v1 + 2 * v2 - v3 + 2 * v4;
    o[2 * t] = -2 * v0 - v1 - 3 * v2 - v4;
    o[3 * t] = v0 + v1 + v2 + v3 - 2 * v4;
    o[4 * t] = v4;
}
/* Aᵀ m */
static inline void out_1d(const float *m, size_t s, float *o, size_t t) {
    float m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s];
    o[0] = m0 + m1 + m2 + m3;
    o[t] = m1 - m2 + 2 * m3;
    o[2 * t] = m1 + m2 + 4 * m3 + m4;
}
/* A v */
static inline void out_1d_t(const float *v, size_t s, float *o, size_t t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s];
    o[0] = v0;
    o[t] = v0 + v1 + v2;
    o[2 * t] = v0 - v1 + v2;
    o[3 * t] = v0 + 2 * v1 + 4 * v2;
    o[4 * t] = v2;
}

WINO_KIND(fcl_wino_f3, 3);
