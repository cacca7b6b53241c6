/* The data transforms of a host Winograd F(m x m, 3x3) kind (conv_winograd.h) written once for
 * any m, from the kind's 1-D transforms: each kind's file instantiates them with its m and its
 * 1-D functions as constants (always inlined, so each kind gets its own unrolled code; F(3x3)
 * and F(4x4) use them, F(2x2) has hand-written ones). They run as row passes over zero-padded
 * rows (`pw` columns, so that no element needs a bounds test), vectorisable across a row of
 * tiles; α = m + 2. A 1-D transform reads its input at stride s and writes at stride t:
 *     in   Bᵀ d (α → α)     in_t  B v (α → α)     out  Aᵀ m (α → m)     out_t  A v (m → α). */
#ifndef FEWCL_OPS_CONV_WINOGRAD_ROWS_H
#define FEWCL_OPS_CONV_WINOGRAD_ROWS_H

#include <string.h>

#include "conv_winograd.h"

typedef void (*wino_1d)(const float *in, size_t s, float *out, size_t t);

#define WINO_INLINE static inline __attribute__((always_inline))
#define WINO_MAX_ALPHA 6 /* F(4x4,3x3) */

/* The weights' transforms run over blocks of WINO_FILTERS filters with the filter index
 * innermost (taps gathered first; a short last block is padded with zeros), so that the
 * compiler vectorises them across filters: at ResNet's last stage (262,144 filters) the
 * scalar loop per filter took as long as the GEMMs. The arithmetic per filter is unchanged. */
#define WINO_FILTERS 64

/* U[k][co][ci] = (G w[co][ci] Gᵀ)[k] for the filters i = co·Cin + ci in [i0, i1), G the kind's
 * α x 3 matrix (row-major), in double, rounded once: G's entries need not be floats. */
WINO_INLINE void wino_weights(const fcl_conv_geom *g, const float *w, float *u, size_t i0,
                              size_t i1, int m, const double *G) {
    enum { B = WINO_FILTERS };
    int a = m + 2;
    size_t stride = (size_t)g->cout * g->cin;
    double wt[9][B], gw[WINO_MAX_ALPHA][3][B];
    float t[B];
    for (size_t b0 = i0; b0 < i1; b0 += B) {
        int nb = i1 - b0 < B ? (int)(i1 - b0) : B;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < 9; j++)
                wt[j][i] = i < nb ? w[(b0 + i) * 9 + j] : 0;
        for (int r = 0; r < a; r++) /* G w: the columns */
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < B; i++)
                    gw[r][c][i] = G[3 * r] * wt[c][i] + G[3 * r + 1] * wt[3 + c][i] +
                                  G[3 * r + 2] * wt[6 + c][i];
        for (int r = 0; r < a; r++) /* · Gᵀ: the rows */
            for (int q = 0; q < a; q++) {
                for (int i = 0; i < B; i++)
                    t[i] = (float)(gw[r][0][i] * G[3 * q] + gw[r][1][i] * G[3 * q + 1] +
                                   gw[r][2][i] * G[3 * q + 2]);
                memcpy(u + (size_t)(a * r + q) * stride + b0, t, (size_t)nb * sizeof *t);
            }
    }
}

/* dW[co][ci] += Gᵀ dU[co][ci] G for the filters in [i0, i1), in double, rounded once. */
WINO_INLINE void wino_weight_grad(const fcl_conv_geom *g, const float *du, float *dw, size_t i0,
                                  size_t i1, int m, const double *G) {
    enum { B = WINO_FILTERS };
    int a = m + 2;
    size_t stride = (size_t)g->cout * g->cin;
    double half[3][WINO_MAX_ALPHA][B]; /* Gᵀ dU */
    float d[WINO_MAX_ALPHA * WINO_MAX_ALPHA][B], out[9][B];
    for (size_t b0 = i0; b0 < i1; b0 += B) {
        int nb = i1 - b0 < B ? (int)(i1 - b0) : B;
        for (int k = 0; k < a * a; k++) {
            memcpy(d[k], du + (size_t)k * stride + b0, (size_t)nb * sizeof **d);
            memset(d[k] + nb, 0, (size_t)(B - nb) * sizeof **d);
        }
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < a; q++) {
                double *h = half[r][q];
                for (int i = 0; i < B; i++)
                    h[i] = 0;
                for (int k = 0; k < a; k++)
                    for (int i = 0; i < B; i++)
                        h[i] += G[3 * k + r] * d[a * k + q][i];
            }
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) {
                double sum[B] = {0};
                for (int q = 0; q < a; q++)
                    for (int i = 0; i < B; i++)
                        sum[i] += half[r][q][i] * G[3 * q + c];
                for (int i = 0; i < B; i++)
                    out[3 * r + c][i] = (float)sum[i];
            }
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < 9; j++)
                dw[(b0 + i) * 9 + j] += out[j][i];
    }
}

/* Scratch floats per share: the most of the four transforms' (grad_input's (α² + α)·tiles_w
 * + α padded rows, input's 2α padded rows). */
WINO_INLINE size_t wino_rows_scratch(const fcl_conv_geom *g, int m) {
    size_t a = (size_t)m + 2;
    return 2 * a * (size_t)wino_pad_w(g, m) + (a * a + a) * (size_t)wino_tiles_w(g, m);
}

/* V[c][k][j·T + t] = (Bᵀ d B)[k] for the α x α patch d of tile t of channel c of image j. */
WINO_INLINE void wino_rows_input(wino_share *s, float *scratch, int m, wino_1d in) {
    const fcl_conv_geom *g = s->g;
    int a = m + 2, th = wino_tiles_h(g, m), tw = wino_tiles_w(g, m), pw = wino_pad_w(g, m);
    size_t tiles = wino_tiles(g, m), plane = (size_t)g->h * g->w;
    size_t ks = (size_t)(s->i1 - s->i0) * tiles;
    float *r = scratch, *c = scratch + (size_t)a * pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int ch = s->c0; ch < s->c1; ch++) {
            const float *x = s->p->x + ((size_t)(s->n0 + s->i0 + j) * g->cin + ch) * plane;
            float *out = s->v + (size_t)ch * a * a * ks + (size_t)j * tiles;
            for (int ty = 0; ty < th; ty++) {
                for (int i = 0; i < a; i++)
                    fcl_wino_padded_row(g, m, x, m * ty - g->pad + i, r + (size_t)i * pw);
                for (int q = 0; q < pw; q++) /* Bᵀ over the patch rows */
                    in(r + q, pw, c + q, pw);
                float *o = out + (size_t)ty * tw;
                for (int i = 0; i < a; i++) /* · B along the patch columns */
                    for (int tx = 0; tx < tw; tx++)
                        in(c + (size_t)i * pw + m * tx, 1, o + (size_t)(a * i) * ks + tx, ks);
            }
        }
}

/* y = Aᵀ M A (+ b) for every tile, the parts inside the output. */
WINO_INLINE void wino_rows_output(wino_share *s, float *scratch, int m, wino_1d out) {
    const fcl_conv_geom *g = s->g;
    int a = m + 2, th = wino_tiles_h(g, m), tw = wino_tiles_w(g, m);
    size_t tiles = wino_tiles(g, m), ks = (size_t)(s->i1 - s->i0) * tiles;
    float *t = scratch, *row = scratch + (size_t)m * a * tw; /* t[r][q][tx] */
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = s->o0; co < s->o1; co++) {
            float *y = s->p->y + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            const float *in = s->m + (size_t)co * a * a * ks + (size_t)j * tiles;
            float b = s->p->b ? s->p->b[co] : 0.0f;
            for (int ty = 0; ty < th; ty++) {
                const float *mt = in + (size_t)ty * tw;
                for (int q = 0; q < a; q++) /* Aᵀ over the tile rows, column q */
                    for (int tx = 0; tx < tw; tx++)
                        out(mt + (size_t)q * ks + tx, (size_t)a * ks, t + (size_t)q * tw + tx,
                            (size_t)a * tw);
                for (int r = 0; r < m && m * ty + r < g->oh; r++) {
                    for (int tx = 0; tx < tw; tx++) /* · A along the tile columns */
                        out(t + (size_t)r * a * tw + tx, tw, row + m * tx, 1);
                    float *to = y + (size_t)(m * ty + r) * g->ow;
                    for (int q = 0; q < g->ow; q++)
                        to[q] = row[q] + b;
                }
            }
        }
}

/* M[co][k][j·T + t] = (A dY Aᵀ)[k], dY the tile's m x m block of dy (zero past the output). */
WINO_INLINE void wino_rows_grad_output(wino_share *s, float *scratch, int m, wino_1d out_t) {
    const fcl_conv_geom *g = s->g;
    int a = m + 2, th = wino_tiles_h(g, m), tw = wino_tiles_w(g, m), pw = wino_pad_w(g, m);
    size_t tiles = wino_tiles(g, m), ks = (size_t)(s->i1 - s->i0) * tiles;
    float *d = scratch, *t = scratch + (size_t)m * pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = s->o0; co < s->o1; co++) {
            const float *dy = s->p->dy + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            float *out = s->m + (size_t)co * a * a * ks + (size_t)j * tiles;
            for (int ty = 0; ty < th; ty++) {
                memset(d, 0, (size_t)m * pw * sizeof *d);
                for (int r = 0; r < m && m * ty + r < g->oh; r++)
                    memcpy(d + (size_t)r * pw, dy + (size_t)(m * ty + r) * g->ow,
                           (size_t)g->ow * sizeof *d);
                for (int q = 0; q < m * tw; q++) /* A over the block rows */
                    out_t(d + q, pw, t + q, pw);
                float *o = out + (size_t)ty * tw;
                for (int i = 0; i < a; i++) /* · Aᵀ along the block columns */
                    for (int tx = 0; tx < tw; tx++)
                        out_t(t + (size_t)i * pw + m * tx, 1, o + (size_t)(a * i) * ks + tx, ks);
            }
        }
}

/* dx = Σ_tiles B dV Bᵀ placed at the tile's α x α patch, inside the image. A row of tiles is
 * added into α padded rows `acc` (plane rows m·ty − pad + r; a column gets the left tile's
 * term, then the right one's); rows 0..m−1 are then complete, the last 2 carry to the next. */
WINO_INLINE void wino_rows_grad_input(wino_share *s, float *scratch, int m, wino_1d in_t) {
    const fcl_conv_geom *g = s->g;
    int a = m + 2, th = wino_tiles_h(g, m), tw = wino_tiles_w(g, m), pw = wino_pad_w(g, m);
    size_t tiles = wino_tiles(g, m), ks = (size_t)(s->i1 - s->i0) * tiles;
    size_t plane = (size_t)g->h * g->w;
    float *b = scratch, *e = b + (size_t)a * a * tw, *acc = e + (size_t)a * tw; /* b[i][q][tx] */
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int c = s->c0; c < s->c1; c++) {
            float *dx = s->p->dx + ((size_t)(s->n0 + s->i0 + j) * g->cin + c) * plane;
            const float *in = s->v + (size_t)c * a * a * ks + (size_t)j * tiles;
            memset(acc, 0, (size_t)a * pw * sizeof *acc);
            for (int ty = 0; ty <= th; ty++) {
                int rows = ty < th ? m : 2; /* after the last tile row: the carried rows */
                if (ty < th) {
                    const float *v = in + (size_t)ty * tw;
                    for (int q = 0; q < a; q++) /* B over the tile rows, column q */
                        for (int tx = 0; tx < tw; tx++)
                            in_t(v + (size_t)q * ks + tx, (size_t)a * ks, b + (size_t)q * tw + tx,
                                 (size_t)a * tw);
                    for (int i = 0; i < a; i++) { /* · Bᵀ along the columns, then placed */
                        for (int tx = 0; tx < tw; tx++)
                            in_t(b + (size_t)i * a * tw + tx, tw, e + tx, tw);
                        float *o = acc + (size_t)i * pw;
                        for (int tx = 0; tx < tw; tx++)
                            for (int q = 0; q < a; q++)
                                o[m * tx + q] += e[(size_t)q * tw + tx];
                    }
                }
                for (int r = 0; r < rows; r++) {
                    int ih = m * ty - g->pad + r;
                    if (ih >= 0 && ih < g->h)
                        memcpy(dx + (size_t)ih * g->w, acc + (size_t)r * pw + g->pad,
                               (size_t)g->w * sizeof *dx);
                }
                memmove(acc, acc + (size_t)m * pw, 2 * (size_t)pw * sizeof *acc);
                memset(acc + 2 * (size_t)pw, 0, (size_t)m * pw * sizeof *acc);
            }
        }
}

/* Defines the kind `name` of F(m x m, 3x3) from its α x 3 matrix G (static const double
 * G[α][3]) and its four 1-D transforms in_1d, in_1d_t, out_1d, out_1d_t (see the top). */
#define WINO_KIND(name, m)                                                                         \
    static void transform_weights(const fcl_conv_geom *g, const float *w, float *u, size_t i0,     \
                                  size_t i1) {                                                     \
        wino_weights(g, w, u, i0, i1, m, &G[0][0]);                                                \
    }                                                                                              \
    static void add_weight_grad(const fcl_conv_geom *g, const float *du, float *dw, size_t i0,     \
                                size_t i1) {                                                       \
        wino_weight_grad(g, du, dw, i0, i1, m, &G[0][0]);                                          \
    }                                                                                              \
    static void input_transform(wino_share *s, float *scratch) {                                   \
        wino_rows_input(s, scratch, m, in_1d);                                                     \
    }                                                                                              \
    static void output_transform(wino_share *s, float *scratch) {                                  \
        wino_rows_output(s, scratch, m, out_1d);                                                   \
    }                                                                                              \
    static void grad_output_transform(wino_share *s, float *scratch) {                             \
        wino_rows_grad_output(s, scratch, m, out_1d_t);                                            \
    }                                                                                              \
    static void grad_input_transform(wino_share *s, float *scratch) {                              \
        wino_rows_grad_input(s, scratch, m, in_1d_t);                                              \
    }                                                                                              \
    static size_t row_scratch(const fcl_conv_geom *g) { return wino_rows_scratch(g, m); }          \
    const wino_kind name = {m,                                                                     \
                            transform_weights,                                                     \
                            add_weight_grad,                                                       \
                            input_transform,                                                       \
                            output_transform,                                                      \
                            grad_output_transform,                                                 \
                            grad_input_transform,                                                  \
                            row_scratch}

#endif
