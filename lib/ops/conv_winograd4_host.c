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
 * The driver, the GEMMs and the layouts are conv_winograd_host.c's (conv_winograd.h); here are
 * the transforms. The weights' transforms (1/6, 1/12, 1/24 are not floats) run in double and
 * round once; the data transforms (integer entries) run in float, as row passes over
 * zero-padded rows, vectorisable across tiles. The larger entries (up to 8) widen the rounding
 * bound: stated and checked in tests/test_conv_algo.c. */
#include "conv_winograd.h"

#include <string.h>

typedef fcl_conv_geom geom;
typedef wino_share share;

static const double G[6][3] = {{0.25, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};

static int tiles_h(const geom *g) { return wino_tiles_h(g, 4); }
static int tiles_w(const geom *g) { return wino_tiles_w(g, 4); }
static size_t tiles(const geom *g) { return wino_tiles(g, 4); }
static int pad_w(const geom *g) { return wino_pad_w(g, 4); }

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

/* U[k][co][ci] = (G w[co][ci] Gᵀ)[k] for the filters i = co·Cin + ci in [i0, i1), in double,
 * rounded once. */
static void transform_weights(const geom *g, const float *w, float *u, size_t i0, size_t i1) {
    size_t stride = (size_t)g->cout * g->cin;
    for (size_t i = i0; i < i1; i++) {
        const float *f = w + i * 9;
        double gw[6][3];
        for (int a = 0; a < 6; a++)
            for (int c = 0; c < 3; c++)
                gw[a][c] = G[a][0] * f[c] + G[a][1] * f[3 + c] + G[a][2] * f[6 + c];
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 6; b++)
                u[(size_t)(6 * a + b) * stride + i] =
                    (float)(gw[a][0] * G[b][0] + gw[a][1] * G[b][1] + gw[a][2] * G[b][2]);
    }
}

/* dW[co][ci] += Gᵀ dU[co][ci] G for the filters in [i0, i1), in double, rounded once. */
static void add_weight_grad(const geom *g, const float *du, float *dw, size_t i0, size_t i1) {
    size_t stride = (size_t)g->cout * g->cin;
    for (size_t i = i0; i < i1; i++) {
        double half[3][6]; /* Gᵀ dU */
        for (int r = 0; r < 3; r++)
            for (int b = 0; b < 6; b++) {
                double sum = 0;
                for (int a = 0; a < 6; a++)
                    sum += G[a][r] * du[(size_t)(6 * a + b) * stride + i];
                half[r][b] = sum;
            }
        float *f = dw + i * 9;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) {
                double sum = 0;
                for (int b = 0; b < 6; b++)
                    sum += half[r][b] * G[b][c];
                f[3 * r + c] += (float)sum;
            }
    }
}

/* Scratch floats per share: the most of the four transforms' (grad_input_transform's
 * 42·tiles_w + 6 padded rows, input_transform's 12 padded rows). */
static size_t row_scratch(const geom *g) { return 12 * (size_t)pad_w(g) + 42 * (size_t)tiles_w(g); }

/* V[c][k][j·T + t] = (Bᵀ d B)[k] for the 6x6 patch d of tile t of channel c of image j. */
static void input_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), plane = (size_t)g->h * g->w;
    size_t ks = len;
    float *r = scratch, *c = scratch + 6 * (size_t)pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int ch = 0; ch < g->cin; ch++) {
            const float *x = s->p->x + ((size_t)(s->n0 + s->i0 + j) * g->cin + ch) * plane;
            float *out = s->v + (size_t)ch * 36 * len + (size_t)j * tiles(g);
            for (int ty = 0; ty < th; ty++) {
                for (int i = 0; i < 6; i++)
                    fcl_wino_padded_row(g, 4, x, 4 * ty - g->pad + i, r + (size_t)i * pw);
                for (int q = 0; q < pw; q++) /* Bᵀ over the patch rows */
                    in_1d(r + q, pw, c + q, pw);
                float *o = out + (size_t)ty * tw;
                for (int a = 0; a < 6; a++) /* · B along the patch columns */
                    for (int tx = 0; tx < tw; tx++)
                        in_1d(c + (size_t)a * pw + 4 * tx, 1, o + (size_t)(6 * a) * ks + tx, ks);
            }
        }
}

/* y = Aᵀ M A (+ b) for every tile, the parts inside the output. */
static void output_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    float *a = scratch, *row = scratch + 24 * (size_t)tw; /* a[r][q][tx] */
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = 0; co < g->cout; co++) {
            float *y = s->p->y + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            const float *in = s->m + (size_t)co * 36 * len + (size_t)j * tiles(g);
            float b = s->p->b ? s->p->b[co] : 0.0f;
            for (int ty = 0; ty < th; ty++) {
                const float *m = in + (size_t)ty * tw;
                for (int q = 0; q < 6; q++) /* Aᵀ over the tile rows, column q */
                    for (int tx = 0; tx < tw; tx++)
                        out_1d(m + (size_t)q * ks + tx, 6 * ks, a + (size_t)q * tw + tx,
                               6 * (size_t)tw);
                for (int r = 0; r < 4 && 4 * ty + r < g->oh; r++) {
                    for (int tx = 0; tx < tw; tx++) /* · A along the tile columns */
                        out_1d(a + (size_t)r * 6 * tw + tx, tw, row + 4 * tx, 1);
                    float *to = y + (size_t)(4 * ty + r) * g->ow;
                    for (int q = 0; q < g->ow; q++)
                        to[q] = row[q] + b;
                }
            }
        }
}

/* M[co][k][j·T + t] = (A dY Aᵀ)[k], dY the tile's 4x4 block of dy (zero past the output). */
static void grad_output_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    float *d = scratch, *a = scratch + 4 * (size_t)pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = 0; co < g->cout; co++) {
            const float *dy = s->p->dy + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            float *out = s->m + (size_t)co * 36 * len + (size_t)j * tiles(g);
            for (int ty = 0; ty < th; ty++) {
                memset(d, 0, 4 * (size_t)pw * sizeof *d);
                for (int r = 0; r < 4 && 4 * ty + r < g->oh; r++)
                    memcpy(d + (size_t)r * pw, dy + (size_t)(4 * ty + r) * g->ow,
                           (size_t)g->ow * sizeof *d);
                for (int q = 0; q < 4 * tw; q++) /* A over the block rows */
                    out_1d_t(d + q, pw, a + q, pw);
                float *o = out + (size_t)ty * tw;
                for (int i = 0; i < 6; i++) /* · Aᵀ along the block columns */
                    for (int tx = 0; tx < tw; tx++)
                        out_1d_t(a + (size_t)i * pw + 4 * tx, 1, o + (size_t)(6 * i) * ks + tx, ks);
            }
        }
}

/* dx = Σ_tiles B dV Bᵀ placed at the tile's 6x6 patch, inside the image. A row of tiles is
 * added into six padded rows `acc` (plane rows 4·ty − pad + r; a column gets the left tile's
 * term, then the right one's); rows 0..3 are then complete, rows 4, 5 carry to the next. */
static void grad_input_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    size_t plane = (size_t)g->h * g->w;
    float *b = scratch, *e = b + 36 * (size_t)tw, *acc = e + 6 * (size_t)tw; /* b[i][q][tx] */
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int c = 0; c < g->cin; c++) {
            float *dx = s->p->dx + ((size_t)(s->n0 + s->i0 + j) * g->cin + c) * plane;
            const float *in = s->v + (size_t)c * 36 * len + (size_t)j * tiles(g);
            memset(acc, 0, 6 * (size_t)pw * sizeof *acc);
            for (int ty = 0; ty <= th; ty++) {
                int rows = ty < th ? 4 : 2; /* after the last tile row: the carried rows */
                if (ty < th) {
                    const float *v = in + (size_t)ty * tw;
                    for (int q = 0; q < 6; q++) /* B over the tile rows, column q */
                        for (int tx = 0; tx < tw; tx++)
                            in_1d_t(v + (size_t)q * ks + tx, 6 * ks, b + (size_t)q * tw + tx,
                                    6 * (size_t)tw);
                    for (int i = 0; i < 6; i++) { /* · Bᵀ along the columns, then placed */
                        for (int tx = 0; tx < tw; tx++)
                            in_1d_t(b + (size_t)i * 6 * tw + tx, tw, e + tx, tw);
                        float *o = acc + (size_t)i * pw;
                        for (int tx = 0; tx < tw; tx++)
                            for (int q = 0; q < 6; q++)
                                o[4 * tx + q] += e[(size_t)q * tw + tx];
                    }
                }
                for (int r = 0; r < rows; r++) {
                    int ih = 4 * ty - g->pad + r;
                    if (ih >= 0 && ih < g->h)
                        memcpy(dx + (size_t)ih * g->w, acc + (size_t)r * pw + g->pad,
                               (size_t)g->w * sizeof *dx);
                }
                memmove(acc, acc + 4 * (size_t)pw, 2 * (size_t)pw * sizeof *acc);
                memset(acc + 2 * (size_t)pw, 0, 4 * (size_t)pw * sizeof *acc);
            }
        }
}

const wino_kind fcl_wino_f4 = {4,
                               transform_weights,
                               add_weight_grad,
                               input_transform,
                               output_transform,
                               grad_output_transform,
                               grad_input_transform,
                               row_scratch};
