/* Inside the host path's Winograd convolutions: the driver (conv_winograd_host.c) runs any
 * F(m x m, 3x3) given its transforms (a kind): F(2x2,3x3) in conv_winograd_host.c,
 * F(3x3,3x3) in conv_winograd3_host.c, F(4x4,3x3) in conv_winograd4_host.c. A kind's
 * α = m + 2 is the transformed tile's side; a chunk's images are cut into tiles of m x m
 * output pixels, T per image (tiles_h x tiles_w), and the work is α² GEMMs, one per position k
 * of the transformed tile. Layouts, for the images [i0, i1) of a share, L = (i1 − i0)·T
 * columns:
 *     V[c][k][j·T + t]  transformed input (or, in the data direction, its gradient)
 *     M[o][k][j·T + t]  transformed output (or the transformed output gradient)
 *     U[k][o][c]        transformed weights (dU: their gradient).
 * V_k and M_k, the GEMMs' operands, are thus matrices with rows L long at a stride of α²·L:
 * a channel's α² rows lie together, so a tile's α² transformed values land within one
 * channel's α²·L floats (tens of KiB) instead of α² planes MiBs apart (F(4x4) at 21x21:
 * transforms 20-30% faster, the GEMMs unchanged, measured). */
#ifndef FEWCL_OPS_CONV_WINOGRAD_H
#define FEWCL_OPS_CONV_WINOGRAD_H

#include "conv_impl.h"

typedef struct wino_share {
    const fcl_conv_geom *g;
    const fcl_conv_ptrs *p;
    const float *u;
    float *du;      /* this share's dU sum (weights), or NULL */
    float *v, *m;   /* this share's V and M */
    float *scratch; /* the kind's scratch(g) floats for the transforms */
    int n0, i0, i1;
    int c0, c1, o0, o1; /* the input and output channels the transforms cover */
    int profiling;
    double t, gemm_ms, host_ms;
} wino_share;

typedef struct wino_kind {
    int m; /* output tile side; α = m + 2 */
    /* U = G w Gᵀ; dW += Gᵀ dU G; for the filters i = o·Cin + c in [i0, i1). */
    void (*weights)(const fcl_conv_geom *g, const float *w, float *u, size_t i0, size_t i1);
    void (*weight_grad)(const fcl_conv_geom *g, const float *du, float *dw, size_t i0, size_t i1);
    /* The share's V from x; y from M (+ b); M from dy; dx from V (holding dV). */
    void (*input)(wino_share *s, float *scratch);
    void (*output)(wino_share *s, float *scratch);
    void (*grad_output)(wino_share *s, float *scratch);
    void (*grad_input)(wino_share *s, float *scratch);
    size_t (*scratch)(const fcl_conv_geom *g); /* floats per share */
} wino_kind;

extern const wino_kind fcl_wino_f2, fcl_wino_f3, fcl_wino_f4;

static inline int wino_tiles_h(const fcl_conv_geom *g, int m) { return (g->oh + m - 1) / m; }
static inline int wino_tiles_w(const fcl_conv_geom *g, int m) { return (g->ow + m - 1) / m; }
static inline size_t wino_tiles(const fcl_conv_geom *g, int m) {
    return (size_t)wino_tiles_h(g, m) * wino_tiles_w(g, m);
}
/* Columns of the zero-padded rows the transforms read: the last tile's patch ends there. */
static inline int wino_pad_w(const fcl_conv_geom *g, int m) { return m * wino_tiles_w(g, m) + 2; }

/* row[0, pw) = x's row ih seen from column −pad (zeros outside the image). */
void fcl_wino_padded_row(const fcl_conv_geom *g, int m, const float *x, int ih, float *row);

/* Winograd F(m x m, 3x3) on the host path, the driver's entry points for a kind. */
int fcl_conv_host_wino_eligible(const wino_kind *k, const fcl_conv_geom *g);
size_t fcl_conv_host_wino_workspace(const wino_kind *k, const fcl_conv_geom *g);

/* The size of V and M per pass of a share (default 4 MiB, also for 0); tests set it small to
 * run every share in one-image passes. Not thread-safe: set it while no convolution runs. */
void fcl_conv_host_wino_pass_bytes(size_t bytes);

/* Whether the threads split a chunk's channels instead of its images (small planes, see
 * conv_winograd_host.c): −1 (the default) by the rule, 0 never, 1 always; for tests, as above. */
void fcl_conv_host_wino_split(int mode);

#endif
