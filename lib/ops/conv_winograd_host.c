/* Winograd F(2x2,3x3) on the host path (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016): each 2x2 block of output pixels is
 *     Y = Aᵀ [ Σ_c (G w G ᵀ) ⊙ (Bᵀ d B) ] A
 * with d the 4x4 input patch the block reads (zero outside the image) and
 *     Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
 *     Aᵀ = [1 1 1 0; 0 1 -1 -1]:
 * 16 products per block where the direct form takes 36. Over a chunk's images the sum over
 * channels is 16 GEMMs, one per position k of the 4x4 transformed tile:
 *     forward   M_k[Cout, L] = U_k[Cout, Cin] · V_k[Cin, L]          (L = tiles of the images)
 *     data      dV_k[Cin, L] = U_kᵀ · dM_k,   dM = A dY Aᵀ per block, dx += B dV Bᵀ per block
 *     weights   dU_k[Cout, Cin] += dM_k · V_kᵀ, then dW += Gᵀ dU G
 * (the gradients are those of the algorithm itself, hence exact in exact arithmetic).
 * Rounding: every step is a short sum (depth ≤ 2 per 1-D pass, the ½ are exact), so the
 * error is that of the GEMMs' long sums plus a few roundings: the bounds are stated and
 * checked in tests/test_conv_algo.c.
 *
 * Memory: the chunk's V [Cin, 16, L] and M [Cout, 16, L] (the workspace, from the arena),
 * then U [16, Cout, Cin] after them. A chunk is as many whole images as the workspace bound
 * holds. The images of a chunk are split over the host threads as on the other host
 * algorithms (conv_host.c): each share transforms and multiplies its own images' columns;
 * the weight gradient is summed per share into private partials (host memory), added in
 * share order: deterministic for a given thread count. Small planes, where a share's GEMMs
 * would be narrow, split the channels over the threads instead (see run_split below).
 *
 * The driver below takes any F(m x m, 3x3) through its transforms (conv_winograd.h); this
 * file's transforms are F(2x2,3x3)'s, conv_winograd3_host.c has F(3x3,3x3)'s and
 * conv_winograd4_host.c F(4x4,3x3)'s. */
#include "conv_winograd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_host.h"

typedef fcl_conv_geom geom;
typedef wino_share share;

static int tiles_h(const geom *g) { return wino_tiles_h(g, 2); }
static int tiles_w(const geom *g) { return wino_tiles_w(g, 2); }
static size_t tiles(const geom *g) { return wino_tiles(g, 2); }

/* ---- the driver, for any kind ---- */

static size_t alpha2(const wino_kind *k) { return (size_t)(k->m + 2) * (k->m + 2); }
static size_t image_floats(const wino_kind *k, const geom *g) {
    return alpha2(k) * (size_t)(g->cin + g->cout) * wino_tiles(g, k->m);
}
static size_t u_floats(const wino_kind *k, const geom *g) {
    return alpha2(k) * (size_t)g->cout * g->cin;
}

/* Whole images per chunk within the workspace bound (U's share taken off first). */
static int chunk_images(const wino_kind *k, const geom *g) {
    size_t per = image_floats(k, g) * sizeof(float), u = u_floats(k, g) * sizeof(float);
    if (g->limit <= u) return 0;
    size_t fit = (g->limit - u) / per;
    return fit < (size_t)g->n ? (int)fit : g->n;
}

int fcl_conv_host_wino_eligible(const wino_kind *k, const geom *g) {
    return g->kh == 3 && g->kw == 3 && g->stride == 1 && chunk_images(k, g) >= 1;
}

size_t fcl_conv_host_wino_workspace(const wino_kind *k, const geom *g) {
    return ((size_t)chunk_images(k, g) * image_floats(k, g) + u_floats(k, g)) * sizeof(float);
}

void fcl_wino_padded_row(const geom *g, int m, const float *x, int ih, float *row) {
    int pw = wino_pad_w(g, m);
    memset(row, 0, (size_t)pw * sizeof *row);
    if (ih < 0 || ih >= g->h) return;
    int n = g->w < pw - g->pad ? g->w : pw - g->pad;
    memcpy(row + g->pad, x + (size_t)ih * g->w, (size_t)n * sizeof *row);
}

/* ---- the 1-D transforms (applied to the columns, then the rows, of a tile) ---- */

/* Bᵀ d */
static inline void in_1d(const float *d, int s, float *o, int t) {
    o[0] = d[0] - d[2 * s], o[t] = d[s] + d[2 * s], o[2 * t] = d[2 * s] - d[s],
    o[3 * t] = d[s] - d[3 * s];
}
/* B v */
static inline void in_1d_t(const float *v, int s, float *o, int t) {
    o[0] = v[0], o[t] = v[s] - v[2 * s] + v[3 * s], o[2 * t] = v[s] + v[2 * s] - v[0],
    o[3 * t] = -v[3 * s];
}
/* G w */
static inline void w_1d(const float *w, int s, float *o, int t) {
    float even = w[0] + w[2 * s];
    o[0] = w[0], o[t] = 0.5f * (even + w[s]), o[2 * t] = 0.5f * (even - w[s]), o[3 * t] = w[2 * s];
}
/* Gᵀ u */
static inline void w_1d_t(const float *u, int s, float *o, int t) {
    float sum = 0.5f * (u[s] + u[2 * s]);
    o[0] = u[0] + sum, o[t] = 0.5f * (u[s] - u[2 * s]), o[2 * t] = sum + u[3 * s];
}
/* Aᵀ m */
static inline void out_1d(const float *m, int s, float *o, int t) {
    o[0] = m[0] + m[s] + m[2 * s], o[t] = m[s] - m[2 * s] - m[3 * s];
}
/* A v */
static inline void out_1d_t(const float *v, int s, float *o, int t) {
    o[0] = v[0], o[t] = v[0] + v[s], o[2 * t] = v[0] - v[s], o[3 * t] = -v[s];
}

/* U[k][co][ci] = (G w[co][ci] Gᵀ)[k] for the filters i = co·Cin + ci in [i0, i1). */
static void transform_weights(const geom *g, const float *w, float *u, size_t i0, size_t i1) {
    size_t stride = (size_t)g->cout * g->cin;
    for (size_t i = i0; i < i1; i++) {
        const float *f = w + i * 9;
        float gw[12], t[16];
        for (int c = 0; c < 3; c++)
            w_1d(f + c, 3, gw + c, 3); /* columns: gw [4][3] */
        for (int r = 0; r < 4; r++)
            w_1d(gw + 3 * r, 1, t + 4 * r, 1); /* rows: t [4][4] */
        for (int k = 0; k < 16; k++)
            u[k * stride + i] = t[k];
    }
}

/* dW[co][ci] += Gᵀ dU[co][ci] G for the filters in [i0, i1). */
static void add_weight_grad(const geom *g, const float *du, float *dw, size_t i0, size_t i1) {
    size_t stride = (size_t)g->cout * g->cin;
    for (size_t i = i0; i < i1; i++) {
        float t[16], half[12], r3[9];
        for (int k = 0; k < 16; k++)
            t[k] = du[k * stride + i];
        for (int c = 0; c < 4; c++)
            w_1d_t(t + c, 4, half + c, 4); /* columns: half [3][4] */
        for (int r = 0; r < 3; r++)
            w_1d_t(half + 4 * r, 1, r3 + 3 * r, 1);
        float *f = dw + i * 9;
        for (int k = 0; k < 9; k++)
            f[k] += r3[k];
    }
}

/* The transforms below work on a row of tiles at a time, over rows of the zero-padded plane
 * (`pw` = 2·tiles_w + 2 columns, so that no element needs a bounds test) and in 1-D passes
 * over whole rows, which the compiler vectorises across tiles. They compute exactly the
 * tile formulas of the top of the file, in the same order of operations within a tile. */

static int pad_w(const geom *g) { return wino_pad_w(g, 2); }

/* Scratch floats per share for the transforms (the most, grad_input_transform's: 16·tiles_w
 * + 6 padded rows + 4·tiles_w, within 16 padded rows). */
static size_t row_scratch(const geom *g) { return 16 * (size_t)pad_w(g); }

/* V[c][k][j·T + t] = (Bᵀ d B)[k] for the 4x4 patch d of tile t of channel c of image j. */
static void input_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), plane = (size_t)g->h * g->w;
    size_t ks = len;
    float *r[4], *c[4];
    for (int i = 0; i < 4; i++)
        r[i] = scratch + (size_t)i * pw, c[i] = scratch + (size_t)(4 + i) * pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int ch = s->c0; ch < s->c1; ch++) {
            const float *x = s->p->x + ((size_t)(s->n0 + s->i0 + j) * g->cin + ch) * plane;
            float *out = s->v + (size_t)ch * 16 * len + (size_t)j * tiles(g);
            for (int ty = 0; ty < th; ty++) {
                for (int i = 0; i < 4; i++)
                    fcl_wino_padded_row(g, 2, x, 2 * ty - g->pad + i, r[i]);
                for (int q = 0; q < pw; q++) /* Bᵀ over the patch rows */
                    c[0][q] = r[0][q] - r[2][q], c[1][q] = r[1][q] + r[2][q],
                    c[2][q] = r[2][q] - r[1][q], c[3][q] = r[1][q] - r[3][q];
                float *o = out + (size_t)ty * tw;
                for (int i = 0; i < 4; i++) { /* · B along the patch columns */
                    const float *a = c[i];
                    float *o0 = o + (4 * i) * ks, *o1 = o0 + ks, *o2 = o1 + ks, *o3 = o2 + ks;
                    for (int tx = 0; tx < tw; tx++) {
                        const float *d = a + 2 * tx;
                        o0[tx] = d[0] - d[2], o1[tx] = d[1] + d[2], o2[tx] = d[2] - d[1],
                        o3[tx] = d[1] - d[3];
                    }
                }
            }
        }
}

/* y = Aᵀ M A (+ b) for every tile, the parts inside the output. */
static void output_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    float *a[4], *row = scratch + 4 * (size_t)pw;
    for (int i = 0; i < 4; i++)
        a[i] = scratch + (size_t)i * pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = s->o0; co < s->o1; co++) {
            float *y = s->p->y + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            const float *in = s->m + (size_t)co * 16 * len + (size_t)j * tiles(g);
            float b = s->p->b ? s->p->b[co] : 0.0f;
            for (int ty = 0; ty < th; ty++) {
                const float *m = in + (size_t)ty * tw;
                for (int r = 0; r < 2 && 2 * ty + r < g->oh; r++) {
                    for (int q = 0; q < 4; q++) { /* Aᵀ over the tile rows: row r of Aᵀ M */
                        const float *m0 = m + (size_t)q * ks, *m1 = m0 + 4 * ks;
                        const float *m2 = m1 + 4 * ks, *m3 = m2 + 4 * ks;
                        float *aq = a[q];
                        if (r == 0)
                            for (int tx = 0; tx < tw; tx++)
                                aq[tx] = m0[tx] + m1[tx] + m2[tx];
                        else
                            for (int tx = 0; tx < tw; tx++)
                                aq[tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                    for (int tx = 0; tx < tw; tx++) /* · A along the tile columns */
                        row[2 * tx] = a[0][tx] + a[1][tx] + a[2][tx] + b,
                                row[2 * tx + 1] = a[1][tx] - a[2][tx] - a[3][tx] + b;
                    memcpy(y + (size_t)(2 * ty + r) * g->ow, row, (size_t)g->ow * sizeof *y);
                }
            }
        }
}

/* M[co][k][j·T + t] = (A dY Aᵀ)[k], dY the tile's 2x2 block of dy (zero past the output). */
static void grad_output_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    float *d0 = scratch, *d1 = scratch + pw, *a[4];
    for (int i = 0; i < 4; i++)
        a[i] = scratch + (size_t)(2 + i) * pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int co = s->o0; co < s->o1; co++) {
            const float *dy = s->p->dy + ((size_t)(s->n0 + s->i0 + j) * g->cout + co) * g->plane;
            float *out = s->m + (size_t)co * 16 * len + (size_t)j * tiles(g);
            for (int ty = 0; ty < th; ty++) {
                memset(d0, 0, 2 * (size_t)pw * sizeof *d0);
                memcpy(d0, dy + (size_t)(2 * ty) * g->ow, (size_t)g->ow * sizeof *d0);
                if (2 * ty + 1 < g->oh)
                    memcpy(d1, dy + (size_t)(2 * ty + 1) * g->ow, (size_t)g->ow * sizeof *d1);
                for (int q = 0; q < 2 * tw; q++) /* A over the block rows */
                    a[0][q] = d0[q], a[1][q] = d0[q] + d1[q], a[2][q] = d0[q] - d1[q],
                    a[3][q] = -d1[q];
                float *o = out + (size_t)ty * tw;
                for (int i = 0; i < 4; i++) { /* · Aᵀ along the block columns */
                    float *o0 = o + (4 * i) * ks, *o1 = o0 + ks, *o2 = o1 + ks, *o3 = o2 + ks;
                    for (int tx = 0; tx < tw; tx++) {
                        const float *v = a[i] + 2 * tx;
                        o0[tx] = v[0], o1[tx] = v[0] + v[1], o2[tx] = v[0] - v[1], o3[tx] = -v[1];
                    }
                }
            }
        }
}

/* dx = Σ_tiles B dV Bᵀ placed at the tile's patch, inside the image. A row of tiles is summed
 * into four padded rows (a column gets the left tile's term, then the right one's); a plane
 * row gets the upper tile row's term, then the lower one's (carried in `carry`). */
static void grad_input_transform(share *s, float *scratch) {
    const geom *g = s->g;
    int th = tiles_h(g), tw = tiles_w(g), pw = pad_w(g);
    size_t len = (size_t)(s->i1 - s->i0) * tiles(g), ks = len;
    size_t plane = (size_t)g->h * g->w;
    float *b[4], *rows[4], *carry[2], *d[4];
    float *after_b = scratch + 16 * (size_t)tw, *after_rows = after_b + 4 * (size_t)pw;
    for (int i = 0; i < 4; i++) {
        b[i] = scratch + 4 * (size_t)i * tw; /* [4 columns][tiles] */
        rows[i] = after_b + (size_t)i * pw;
        d[i] = after_rows + 2 * (size_t)pw + (size_t)i * tw;
    }
    carry[0] = after_rows, carry[1] = after_rows + pw;
    for (int j = 0; j < s->i1 - s->i0; j++)
        for (int c = s->c0; c < s->c1; c++) {
            float *dx = s->p->dx + ((size_t)(s->n0 + s->i0 + j) * g->cin + c) * plane;
            const float *in = s->v + (size_t)c * 16 * len + (size_t)j * tiles(g);
            memset(carry[0], 0, 2 * (size_t)pw * sizeof *carry[0]);
            for (int ty = 0; ty <= th; ty++) {
                if (ty < th) {
                    const float *v = in + (size_t)ty * tw;
                    for (int q = 0; q < 4; q++) { /* B over the tile rows, column q */
                        const float *v0 = v + (size_t)q * ks, *v1 = v0 + 4 * ks;
                        const float *v2 = v1 + 4 * ks, *v3 = v2 + 4 * ks;
                        for (int tx = 0; tx < tw; tx++)
                            b[0][q * tw + tx] = v0[tx],
                                          b[1][q * tw + tx] = v1[tx] - v2[tx] + v3[tx],
                                          b[2][q * tw + tx] = v1[tx] + v2[tx] - v0[tx],
                                          b[3][q * tw + tx] = -v3[tx];
                    }
                    for (int r = 0; r < 4; r++) { /* · Bᵀ along the columns, then placed */
                        const float *e0 = b[r], *e1 = e0 + tw, *e2 = e1 + tw, *e3 = e2 + tw;
                        for (int tx = 0; tx < tw; tx++)
                            d[0][tx] = e0[tx], d[1][tx] = e1[tx] - e2[tx] + e3[tx],
                            d[2][tx] = e1[tx] + e2[tx] - e0[tx], d[3][tx] = -e3[tx];
                        float *o = rows[r];
                        o[0] = d[0][0], o[1] = d[1][0];
                        for (int tx = 1; tx < tw; tx++)
                            o[2 * tx] = d[2][tx - 1] + d[0][tx],
                                  o[2 * tx + 1] = d[3][tx - 1] + d[1][tx];
                        o[2 * tw] = d[2][tw - 1], o[2 * tw + 1] = d[3][tw - 1];
                    }
                }
                for (int r = 0; r < 2; r++) { /* plane rows 2·ty − pad + r are complete */
                    int ih = 2 * ty - g->pad + r;
                    float *o = carry[r];
                    if (ty < th)
                        for (int q = 0; q < pw; q++)
                            o[q] += rows[r][q];
                    if (ih >= 0 && ih < g->h)
                        memcpy(dx + (size_t)ih * g->w, o + g->pad, (size_t)g->w * sizeof *dx);
                    if (ty < th) memcpy(o, rows[2 + r], (size_t)pw * sizeof *o);
                }
            }
        }
}

const wino_kind fcl_wino_f2 = {2,
                               transform_weights,
                               add_weight_grad,
                               input_transform,
                               output_transform,
                               grad_output_transform,
                               grad_input_transform,
                               row_scratch};

static void mark(share *s, int gemm) {
    if (!s->profiling) return;
    double t = fcl_host_seconds();
    *(gemm ? &s->gemm_ms : &s->host_ms) += (t - s->t) * 1e3;
    s->t = t;
}

typedef struct share_run {
    share s;
    const wino_kind *kind;
} share_run;

/* The images of a pass: their V and M are a few MiB, so that the transforms' writes are still
 * in cache when the GEMMs read them (a share's whole V at 56x56 is tens of MiB, and the
 * passes over it made the F(4x4) forward memory-bound). The sums over channels do not depend
 * on the passes; dU's sum over tiles is split at pass boundaries (a fixed function of the
 * shape and the share). */
static size_t pass_bytes = 4 << 20;

void fcl_conv_host_wino_pass_bytes(size_t bytes) { pass_bytes = bytes ? bytes : 4 << 20; }

static int pass_images(const wino_kind *kind, const geom *g) {
    size_t per = image_floats(kind, g) * sizeof(float);
    return per >= pass_bytes ? 1 : (int)(pass_bytes / per);
}

/* The pass of s's images [a, a + step) (within s's), its V and M at the start of s's. */
static share pass_of(const share *s, const wino_kind *kind, int a, int step) {
    share pass = *s;
    pass.i0 = a, pass.i1 = a + step < s->i1 ? a + step : s->i1;
    pass.m =
        pass.v + alpha2(kind) * (size_t)s->g->cin * (pass.i1 - pass.i0) * wino_tiles(s->g, kind->m);
    return pass;
}

/* One pass: the images [s->i0, s->i1) with V and M at s->v and s->m. */
static void run_pass(share *s, const wino_kind *kind) {
    const geom *g = s->g;
    float *scratch = s->scratch;
    int len = (s->i1 - s->i0) * (int)wino_tiles(g, kind->m), a2 = (int)alpha2(kind);
    int ld = a2 * len; /* V_k and M_k: rows len long, a channel's α² rows one after another */
    size_t uk = (size_t)g->cout * g->cin;
    if (s->p->y) {
        kind->input(s, scratch);
        mark(s, 0);
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(0, 0, g->cout, len, g->cin, 1.0f, s->u + k * uk, g->cin, s->v + k * len,
                           ld, 0.0f, s->m + k * len, ld);
        mark(s, 1);
        kind->output(s, scratch);
        mark(s, 0);
        return;
    }
    kind->grad_output(s, scratch);
    mark(s, 0);
    if (s->p->dw) {
        kind->input(s, scratch);
        mark(s, 0);
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(0, 1, g->cout, g->cin, len, 1.0f, s->m + k * len, ld, s->v + k * len, ld,
                           1.0f, s->du + k * uk, g->cin);
        mark(s, 1);
    }
    if (s->p->dx) { /* dV into V's place: the weight GEMMs above have read it */
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(1, 0, g->cin, len, g->cout, 1.0f, s->u + k * uk, g->cin, s->m + k * len,
                           ld, 0.0f, s->v + k * len, ld);
        mark(s, 1);
        kind->grad_input(s, scratch);
        mark(s, 0);
    }
}

/* A share's images in passes of pass_images(), each in the start of the share's V and M. */
static void run_share(share_run *run) {
    share *s = &run->s;
    const wino_kind *kind = run->kind;
    const geom *g = s->g;
    if (s->i1 <= s->i0) return;
    fcl_host_blas_single_thread();
    if (s->profiling) s->t = fcl_host_seconds();
    int step = pass_images(kind, g);
    for (int a = s->i0; a < s->i1; a += step) {
        share pass = pass_of(s, kind, a, step);
        run_pass(&pass, kind);
        s->t = pass.t, s->gemm_ms = pass.gemm_ms, s->host_ms = pass.host_ms;
    }
}

/* ---- small planes: the threads split the channels instead of the images ----
 * With few tiles per image (a 3x3 plane is one F(3x3) tile) a share's GEMMs are narrow (N = its
 * images' tiles, ~50 at ResNet's last stage: packing U costs as much as the products) and each
 * share's dU partial sum is as large as U (α²·Cout·Cin floats, 25 MiB there). Then every
 * thread takes all the pass's images and a range of channels, phase by phase: the transforms of
 * its channels, the GEMMs' rows of its output (or, for dV, input) channels. Channel ranges are
 * whole blocks of SPLIT_BLOCK (a multiple of the BLAS kernels' tile). */
enum { SPLIT_BLOCK = 16, SPLIT_COLUMNS = 128 };

static int blocks_of(int channels) { return (channels + SPLIT_BLOCK - 1) / SPLIT_BLOCK; }

static int split_mode = -1;

void fcl_conv_host_wino_split(int mode) { split_mode = mode; }

/* Whether a chunk of `images` splits by channels: its shares' GEMMs would have fewer than
 * SPLIT_COLUMNS columns (or a test says). */
static int split_channels(const wino_kind *kind, const geom *g, int images, int threads) {
    if (split_mode >= 0) return split_mode;
    return threads > 1 && wino_tiles(g, kind->m) * (size_t)images < SPLIT_COLUMNS * (size_t)threads;
}

typedef enum { PHASE_IN, PHASE_FORWARD, PHASE_GRAD_OUT, PHASE_DW, PHASE_DX } phase_kind;

typedef struct phase_job {
    const wino_kind *kind;
    const share *pass; /* the pass: all its images, V and M, U and dU */
    phase_kind what;
    share *profile; /* the range starting at channel 0 keeps its times here */
    atomic_int *no_memory;
} phase_job;

/* One phase over the channel blocks [b0, b1) (input channels for PHASE_IN and PHASE_DX, output
 * channels else). */
static void run_phase(void *arg, long b0, long b1) {
    const phase_job *j = arg;
    const wino_kind *kind = j->kind;
    share s = *j->pass;
    const geom *g = s.g;
    int cin = j->what == PHASE_IN || j->what == PHASE_DX, all = cin ? g->cin : g->cout;
    int lo = (int)b0 * SPLIT_BLOCK, hi = (int)b1 * SPLIT_BLOCK < all ? (int)b1 * SPLIT_BLOCK : all;
    int len = (s.i1 - s.i0) * (int)wino_tiles(g, kind->m), a2 = (int)alpha2(kind);
    int ld = a2 * len;
    size_t uk = (size_t)g->cout * g->cin, vo = (size_t)lo * ld; /* the range's first V or M row */
    if (cin)
        s.c0 = lo, s.c1 = hi;
    else
        s.o0 = lo, s.o1 = hi;
    float *scratch = malloc(kind->scratch(g) * sizeof *scratch); /* a few padded rows */
    if (!scratch) {
        atomic_store(j->no_memory, 1);
        return;
    }
    fcl_host_blas_single_thread();
    if (s.profiling) s.t = fcl_host_seconds(), s.gemm_ms = s.host_ms = 0;
    switch (j->what) {
    case PHASE_IN:
        kind->input(&s, scratch);
        mark(&s, 0);
        break;
    case PHASE_FORWARD: /* M_k's rows [lo, hi) = U_k's rows · V_k, then y */
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(0, 0, hi - lo, len, g->cin, 1.0f, s.u + k * uk + (size_t)lo * g->cin,
                           g->cin, s.v + k * len, ld, 0.0f, s.m + vo + k * len, ld);
        mark(&s, 1);
        kind->output(&s, scratch);
        mark(&s, 0);
        break;
    case PHASE_GRAD_OUT:
        kind->grad_output(&s, scratch);
        mark(&s, 0);
        break;
    case PHASE_DW: /* dU_k's rows [lo, hi) += dM_k's rows · V_kᵀ */
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(0, 1, hi - lo, g->cin, len, 1.0f, s.m + vo + k * len, ld, s.v + k * len,
                           ld, 1.0f, s.du + k * uk + (size_t)lo * g->cin, g->cin);
        mark(&s, 1);
        break;
    case PHASE_DX: /* dV_k's rows [lo, hi) = (U_k's columns [lo, hi))ᵀ · dM_k, then dx */
        for (int k = 0; k < a2; k++)
            fcl_host_sgemm(1, 0, hi - lo, len, g->cout, 1.0f, s.u + k * uk + lo, g->cin,
                           s.m + k * len, ld, 0.0f, s.v + vo + k * len, ld);
        mark(&s, 1);
        kind->grad_input(&s, scratch);
        mark(&s, 0);
        break;
    }
    free(scratch);
    if (b0 == 0 && j->profile) j->profile->gemm_ms += s.gemm_ms, j->profile->host_ms += s.host_ms;
}

/* One phase on the host threads; 0 when a thread found no memory for its rows. */
static int phase(const wino_kind *kind, const share *pass, phase_kind what, share *profile) {
    atomic_int no_memory = 0;
    phase_job job = {kind, pass, what, profile, &no_memory};
    int cin = what == PHASE_IN || what == PHASE_DX;
    fcl_host_parallel(blocks_of(cin ? pass->g->cin : pass->g->cout), run_phase, &job);
    return !atomic_load(&no_memory);
}

/* A chunk's images split by channels (s: all of them, V at the workspace's start), in passes
 * as large as all the threads' passes together: the threads share them (at ResNet's last
 * stage, 3 passes of 40 images took 10% longer than 2 of 80: the wider GEMMs pack U less). */
static fewcl_status run_split(share *s, const wino_kind *kind, int threads) {
    const geom *g = s->g;
    int step = pass_images(kind, g) * threads, ok = 1;
    for (int a = s->i0; a < s->i1 && ok; a += step) {
        share pass = pass_of(s, kind, a, step);
        if (s->p->y) {
            ok = phase(kind, &pass, PHASE_IN, s) && phase(kind, &pass, PHASE_FORWARD, s);
            continue;
        }
        ok = phase(kind, &pass, PHASE_GRAD_OUT, s);
        if (ok && s->p->dw) ok = phase(kind, &pass, PHASE_IN, s) && phase(kind, &pass, PHASE_DW, s);
        if (ok && s->p->dx) /* dV into V: the dW phase has read it */
            ok = phase(kind, &pass, PHASE_DX, s);
    }
    return ok ? FEWCL_OK
              : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                         "Winograd convolution: host memory for a thread's transform rows");
}

/* The weights' transforms over filter ranges on the host threads (each filter's U and dW
 * entries are written by one thread, so the result does not depend on the thread count). */
typedef struct filters_job {
    const wino_kind *kind;
    const geom *g;
    const float *w;
    float *u, *du, *dw;
    int shares; /* dU partials of the shares, [shares][α²·Cout·Cin], summed in share order */
} filters_job;

static void run_weights(void *arg, long i0, long i1) {
    const filters_job *j = arg;
    j->kind->weights(j->g, j->w, j->u, (size_t)i0, (size_t)i1);
}

static void run_weight_grad(void *arg, long i0, long i1) {
    const filters_job *j = arg;
    size_t stride = (size_t)j->g->cout * j->g->cin, uk = alpha2(j->kind) * stride;
    for (int t = 1; t < j->shares; t++)
        for (size_t k = 0; k < alpha2(j->kind); k++)
            for (size_t i = (size_t)i0; i < (size_t)i1; i++)
                j->du[k * stride + i] += j->du[(size_t)t * uk + k * stride + i];
    j->kind->weight_grad(j->g, j->du, j->dw, (size_t)i0, (size_t)i1);
}

static void run_share_range(void *arg, long t0, long t1) {
    share_run *sh = arg;
    for (long t = t0; t < t1; t++)
        run_share(&sh[t]);
}

/* A chunk's images split over the threads, a share each (chunk: all of them, V at the
 * workspace's start, the threads' scratch rows of rs floats and dU partials of uk floats; with
 * threads ≤ the host threads, fcl_host_parallel runs one share per thread); the first share's
 * times are the chunk's. */
static void run_shares(share *chunk, const wino_kind *kind, int threads, size_t rs, size_t uk) {
    const geom *g = chunk->g;
    int nb = chunk->i1;
    share_run sh[FCL_CONV_MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        int i0 = nb * t / threads, i1 = nb * (t + 1) / threads;
        share *s = &sh[t].s;
        sh[t].kind = kind;
        *s = *chunk;
        s->v = chunk->v + (size_t)i0 * image_floats(kind, g);
        s->m = s->v + alpha2(kind) * (size_t)g->cin * (i1 - i0) * wino_tiles(g, kind->m);
        s->du = chunk->du ? chunk->du + (size_t)t * uk : NULL;
        s->scratch = chunk->scratch + (size_t)t * rs;
        s->i0 = i0, s->i1 = i1;
    }
    fcl_host_parallel(threads, run_share_range, sh);
    chunk->gemm_ms = sh[0].s.gemm_ms, chunk->host_ms = sh[0].s.host_ms;
}

static fewcl_status winograd_body(fewcl_context *ctx, const wino_kind *kind, const geom *g,
                                  const fcl_conv_ptrs *p, float *ws) {
    int images = chunk_images(kind, g), a2 = (int)alpha2(kind);
    int threads = fcl_conv_host_threads() < images ? fcl_conv_host_threads() : images;
    int split = split_channels(kind, g, images, threads);
    int sums = split ? 1 : threads; /* dU: one sum, or a partial sum per share */
    float *u = ws + (size_t)images * image_floats(kind, g), *du = NULL;
    size_t uk = u_floats(kind, g);
    double t0 = ctx->profiling ? fcl_host_seconds() : 0;
    if (p->w && (p->y || p->dx)) {
        filters_job job = {.kind = kind, .g = g, .w = p->w, .u = u};
        fcl_host_parallel((long)g->cout * g->cin, run_weights, &job);
    }
    size_t rs = kind->scratch(g); /* per share; the channel split's phases take their own */
    float *scratch = split ? NULL : malloc((size_t)threads * rs * sizeof *scratch);
    if (p->dw) du = calloc((size_t)sums * uk, sizeof *du);
    if ((!split && !scratch) || (p->dw && !du)) {
        free(scratch), free(du);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "Winograd convolution: host memory for %d threads' rows and sums", threads);
    }
    if (ctx->profiling) ctx->host_profile_ms += (fcl_host_seconds() - t0) * 1e3;
    fewcl_status st = FEWCL_OK;
    for (int n0 = 0; n0 < g->n && st == FEWCL_OK; n0 += images) {
        int nb = g->n - n0 < images ? g->n - n0 : images;
        share chunk = {.g = g,
                       .p = p,
                       .u = u,
                       .du = du,
                       .v = ws,
                       .scratch = scratch,
                       .n0 = n0,
                       .i0 = 0,
                       .i1 = nb,
                       .c1 = g->cin,
                       .o1 = g->cout,
                       .profiling = ctx->profiling};
        if (split)
            st = run_split(&chunk, kind, threads);
        else
            run_shares(&chunk, kind, threads, rs, uk);
        if (ctx->profiling) {
            ctx->gemm_profile_ms += chunk.gemm_ms, ctx->host_profile_ms += chunk.host_ms;
            ctx->gemm_calls += (long)a2 * ((p->y != NULL) + (p->dx != NULL) + (p->dw != NULL));
        }
    }
    fcl_host_blas_restore_threads();
    if (du && st == FEWCL_OK) {
        filters_job job = {.kind = kind, .g = g, .du = du, .dw = p->dw, .shares = sums};
        fcl_host_parallel((long)g->cout * g->cin, run_weight_grad, &job);
    }
    free(du), free(scratch);
    return st;
}

static fewcl_status f2_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p, float *ws) {
    return winograd_body(ctx, &fcl_wino_f2, g, p, ws);
}

static fewcl_status f3_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p, float *ws) {
    return winograd_body(ctx, &fcl_wino_f3, g, p, ws);
}

static fewcl_status f4_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p, float *ws) {
    return winograd_body(ctx, &fcl_wino_f4, g, p, ws);
}

static fewcl_status run_kind(fewcl_context *ctx, const wino_kind *kind, const geom *g,
                             const fcl_conv_args *a, fcl_conv_host_body body) {
    size_t ws = a->y || a->dx || a->dw ? fcl_conv_host_wino_workspace(kind, g) : 0;
    return fcl_conv_host_run(ctx, g, a, ws, body);
}

int fcl_conv_host_winograd_eligible(const geom *g) {
    return fcl_conv_host_wino_eligible(&fcl_wino_f2, g);
}
size_t fcl_conv_host_winograd_workspace(const geom *g) {
    return fcl_conv_host_wino_workspace(&fcl_wino_f2, g);
}
fewcl_status fcl_conv_host_winograd(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return run_kind(ctx, &fcl_wino_f2, g, a, f2_body);
}

int fcl_conv_host_winograd3_eligible(const geom *g) {
    return fcl_conv_host_wino_eligible(&fcl_wino_f3, g);
}
size_t fcl_conv_host_winograd3_workspace(const geom *g) {
    return fcl_conv_host_wino_workspace(&fcl_wino_f3, g);
}
fewcl_status fcl_conv_host_winograd3(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return run_kind(ctx, &fcl_wino_f3, g, a, f3_body);
}

int fcl_conv_host_winograd4_eligible(const geom *g) {
    return fcl_conv_host_wino_eligible(&fcl_wino_f4, g);
}
size_t fcl_conv_host_winograd4_workspace(const geom *g) {
    return fcl_conv_host_wino_workspace(&fcl_wino_f4, g);
}
fewcl_status fcl_conv_host_winograd4(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return run_kind(ctx, &fcl_wino_f4, g, a, f4_body);
}
