/* Winograd F(4x4,3x3) on the host path (Lavin & Gray 2016): each 4x4 block of output pixels
 * is Y = Aᵀ [ Σ_c (G w Gᵀ) ⊙ (Bᵀ d B) ] A, d the 6x6 input patch, with
 *     Bᵀ = [4  0 -5  0 1 0;      G = [ 1/4     0     0;      Aᵀ = [1 1  1 1  1 0;
 *           0 -4 -4  1 1 0;            -1/6  -1/6  -1/6;            0 1 -1 2 -2 0;
 *           0  4 -4 -1 1 0;            -1/6   1/6  -1/6;            0 1  1 4  4 0;
 *           0 -2 -1  2 1 0;             1/24  1/12  1/6;            0 1 -1 8 -8 1]
 *           0  2 -1 -2 1 0;             1/24 -1/12  1/6;
 *           0  4  0 -5 0 1]                0     0     1]
 * 36 products per 16 outputs (2.25 per output, where the direct form takes 9 and
 * F(2x2,3x3) 4), at the price of larger transform entries, hence larger rounding errors.
 * The driver, the GEMMs and the layouts are conv_winograd_host.c's (conv_winograd.h), the 2-D
 * transforms' loops conv_winograd_rows.h's; here are the matrices. The weights' transforms (1/6,
 * 1/12, 1/24 are not floats) run in double and round once; the data transforms (integer entries)
 * run in float, as row passes over zero-padded rows, vectorisable across tiles. The larger entries
 * (up to 8) widen the rounding bound: stated and checked in tests/test_conv_algo.c. */
#include "conv_winograd_rows.h"

static const double G[6][3] = {{0.25, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};

/* ---- the 1-D transforms: d, v, m read at stride s; o written at stride t ---- */

/* Bᵀ d */
static inline void in_1d(const float *d, size_t s, float *o, size_t t) {
    float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    o[0] = 4 * d0 - 5 * d2 + d4;
    o[t] = -4 * d1 - 4 * d2 + d3 + d4;
    o[2 * t] = 4 * d1 - 4 * d2 - d3 + d4;
    o[3 * t] = -2 * d1 - d2 + 2 * d3 + d4;
    o[4 * t] = 2 * d1 - d2 - 2 * d3 + d4;
    o[5 * t] = 4 * d1 - 5 * d3 + d5;
}
/* B v */
static inline void in_1d_t(const float *v, size_t s, float *o, size_t t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s], v4 = v[4 * s], v5 = v[5 * s];
    o[0] = 4 * v0;
    o[t] = -4 * v1 + 4 * v2 - 2 * v3 + 2 * v4 + 4 * v5;
    o[2 * t] = -5 * v0 - 4 * v1 - 4 * v2 - v3 - v4;
    o[3 * t] = v1 - v2 + 2 * v3 - 2 * v4 - 5 * v5;
    o[4 * t] = v0 + v1 + v2 + v3 + v4;
    o[5 * t] = v5;
}
/* Aᵀ m */
static inline void out_1d(const float *m, size_t s, float *o, size_t t) {
    float m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
    o[0] = m0 + m1 + m2 + m3 + m4;
    o[t] = m1 - m2 + 2 * m3 - 2 * m4;
    o[2 * t] = m1 + m2 + 4 * m3 + 4 * m4;
    o[3 * t] = m1 - m2 + 8 * m3 - 8 * m4 + m5;
}
/* A v */
static inline void out_1d_t(const float *v, size_t s, float *o, size_t t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s];
    o[0] = v0;
    o[t] = v0 + v1 + v2 + v3;
    o[2 * t] = v0 - v1 + v2 - v3;
    o[3 * t] = v0 + 2 * v1 + 4 * v2 + 8 * v3;
    o[4 * t] = v0 - 2 * v1 + 4 * v2 - 8 * v3;
    o[5 * t] = v3;
}

WINO_KIND(fcl_wino_f4, 4);
