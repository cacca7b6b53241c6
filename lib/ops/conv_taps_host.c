/* One GEMM per kernel tap over the pixels the tap really reads, on the host path, for small
 * planes (the ResNets' last layers). im2col and the batched GEMMs multiply the zero padding
 * too: at a 3x3 plane with padding 1 (ResNet-18's layer4 at 84 px) 81 products per channel
 * pair where 49 read the image. Here, for each tap t = (kh, kw), the output pixels whose input
 * pixel (oh·s − p + kh, ow·s − p + kw) lies inside the image form a rectangle R_t, and over a
 * chunk of nb images
 *     forward   C[Cout, nb·|R_t|] = W_t[Cout, Cin] · X_t[Cin, nb·|R_t|],  y[R_t] += C
 *     weights   dW_t[Cout, Cin] += D_t[Cout, nb·|R_t|] · X_t[Cin, nb·|R_t|]ᵀ
 *     data      E[Cin, nb·|R_t|] = W_tᵀ · D_t,  dx[the tap's input pixels of R_t] += E
 * with X_t the input gathered at the tap's pixels, D_t dy gathered at R_t, y starting at the
 * bias (or 0) and dx at 0. Only products with a real input pixel are computed.
 * Workspace: W tap-major, [taps, Cout, Cin] (the GEMMs' W_t), the weight gradient's tap-major
 * sums, then per image of a chunk X_t, D_t and C or E over the whole plane (the largest R_t).
 * Rounding: each output is a sum of the same products as im2col's (K products and the bias,
 * Cout·taps for dx, N·P for dW, plus the old dW), summed tap by tap; the GEMMs' rows are split
 * over the host threads (fcl_host_sgemm_rows), so no sum depends on the thread count. */
#include <string.h>

#include "conv_impl.h"
#include "gemm_host.h"

typedef fcl_conv_geom geom;

/* The output rows (or columns) [*lo, *hi) whose input row oh·stride − pad + k lies in [0, n). */
static void valid_range(int k, int n, int out, int stride, int pad, int *lo, int *hi) {
    int first = pad - k, last = n - 1 + pad - k; /* oh·stride in [first, last] */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

typedef struct tap {
    int kh, kw, r0, r1, c0, c1, area; /* R_t = rows [r0, r1) x columns [c0, c1) */
} tap;

static tap tap_of(const geom *g, int t) {
    tap a = {.kh = t / g->kw, .kw = t % g->kw};
    valid_range(a.kh, g->h, g->oh, g->stride, g->pad, &a.r0, &a.r1);
    valid_range(a.kw, g->w, g->ow, g->stride, g->pad, &a.c0, &a.c1);
    a.area = (a.r1 - a.r0) * (a.c1 - a.c0);
    return a;
}

static size_t fixed_floats(const geom *g) { return 2 * (size_t)g->kh * g->kw * g->cout * g->cin; }
static size_t image_floats(const geom *g) {
    int wide = g->cin > g->cout ? g->cin : g->cout;
    return (size_t)g->plane * ((size_t)g->cin + g->cout + wide);
}

/* Whole images per chunk within the workspace bound (0: not even one). */
static int chunk_images(const geom *g) {
    size_t limit = g->limit / sizeof(float), fixed = fixed_floats(g);
    if (limit <= fixed) return 0;
    size_t fit = (limit - fixed) / image_floats(g);
    return fit < (size_t)g->n ? (int)fit : g->n;
}

int fcl_conv_host_taps_eligible(const geom *g) {
    return g->plane <= FCL_CONV_BATCHED_MAX_PLANE && g->columns == g->plane && chunk_images(g) >= 1;
}

size_t fcl_conv_host_taps_workspace(const geom *g) {
    return (fixed_floats(g) + (size_t)chunk_images(g) * image_floats(g)) * sizeof(float);
}

/* ---- gathers and scatters, split over channels on the host threads ---- */

enum { GATHER_X, GATHER_DY, ADD_Y, ADD_DX, FILL, TAPS_MAJOR, ADD_DW };

typedef struct job {
    const geom *g;
    const fcl_conv_ptrs *p;
    const tap *a;
    float *m; /* the step's matrix: X_t, D_t, C or E [channels, nb·|R_t|]; W or dW tap-major */
    int step, n0, nb;
} job;

/* Row r of the tap's rectangle: the plane offsets of its first pixel in the input (the tap's
 * pixel; the sum is taken modulo 2^64, its value is never negative) and in the output. */
static size_t in_row(const geom *g, const tap *a, int r) {
    return (size_t)(r * g->stride - g->pad + a->kh) * g->w + (size_t)(a->c0 * g->stride) -
           (size_t)g->pad + (size_t)a->kw;
}
static size_t out_row(const geom *g, const tap *a, int r) {
    return (size_t)r * g->ow + (size_t)a->c0;
}

/* Over the tap's rectangle, between image i's part m of a channel's row of the step's matrix
 * and that channel's plane: gathers the plane into m, or adds m into the plane. */
static void pixels(const geom *g, const tap *a, int step, float *m, float *plane) {
    int rw = a->c1 - a->c0, s = g->stride;
    for (int r = a->r0; r < a->r1; r++, m += rw) {
        if (step == GATHER_X) {
            const float *from = plane + in_row(g, a, r);
            for (int k = 0; k < rw; k++)
                m[k] = from[k * s];
        } else if (step == GATHER_DY) {
            memcpy(m, plane + out_row(g, a, r), (size_t)rw * sizeof *m);
        } else if (step == ADD_Y) {
            float *to = plane + out_row(g, a, r);
            for (int k = 0; k < rw; k++)
                to[k] += m[k];
        } else { /* ADD_DX */
            float *to = plane + in_row(g, a, r);
            for (int k = 0; k < rw; k++)
                to[k * s] += m[k];
        }
    }
}

static void run_step(void *arg, long c0, long c1) {
    const job *j = arg;
    const geom *g = j->g;
    const fcl_conv_ptrs *p = j->p;
    size_t in_plane = (size_t)g->h * g->w, out_plane = g->plane;
    for (long ch = c0; ch < c1; ch++) {
        if (j->step == TAPS_MAJOR) { /* output channels [c0, c1) */
            fcl_conv_host_taps_major(g, p->w, j->m, c0, c1);
            return;
        }
        if (j->step == ADD_DW) {
            fcl_conv_host_add_taps_major(g, j->m, p->dw, c0, c1);
            return;
        }
        for (int i = 0; i < j->nb; i++) {
            size_t n = (size_t)(j->n0 + i);
            if (j->step == FILL) { /* y = b (or 0), or dx = 0, before the taps add */
                if (p->y) {
                    float *y = p->y + (n * g->cout + ch) * out_plane, b = p->b ? p->b[ch] : 0;
                    for (size_t k = 0; k < out_plane; k++)
                        y[k] = b;
                } else {
                    memset(p->dx + (n * g->cin + ch) * in_plane, 0, in_plane * sizeof(float));
                }
                continue;
            }
            const tap *a = j->a;
            float *m = j->m + ((size_t)ch * j->nb + i) * a->area;
            int input = j->step == GATHER_X || j->step == ADD_DX;
            int chans = input ? g->cin : g->cout;
            float *base = input ? (j->step == GATHER_X ? (float *)p->x : p->dx)
                                : (j->step == GATHER_DY ? (float *)p->dy : p->y);
            pixels(g, a, j->step, m, base + (n * chans + ch) * (input ? in_plane : out_plane));
        }
    }
}

static void step(const geom *g, const fcl_conv_ptrs *p, const tap *a, float *m, int which, int n0,
                 int nb, long channels) {
    job j = {g, p, a, m, which, n0, nb};
    fcl_host_parallel(channels, run_step, &j);
}

static fewcl_status taps_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p,
                              float *ws) {
    int images = chunk_images(g), taps = g->kh * g->kw, threads = fcl_conv_host_threads();
    size_t wt = (size_t)g->cout * g->cin;
    float *wk = ws, *dwk = wk + taps * wt, *chunk = dwk + taps * wt;
    double t0 = ctx->profiling ? fcl_host_seconds() : 0;
    long calls = 0;
    if (p->y || p->dx) step(g, p, NULL, wk, TAPS_MAJOR, 0, 0, g->cout);
    for (int n0 = 0; n0 < g->n; n0 += images) {
        int nb = g->n - n0 < images ? g->n - n0 : images;
        float *xt = chunk, *dt = xt + (size_t)g->cin * nb * g->plane;
        float *ct = dt + (size_t)g->cout * nb * g->plane;
        if (p->y || p->dx) step(g, p, NULL, NULL, FILL, n0, nb, p->y ? g->cout : g->cin);
        fcl_conv_host_mark(ctx, &t0, 0);
        for (int t = 0; t < taps; t++) {
            tap a = tap_of(g, t);
            if (!a.area) { /* a tap that reads only padding: no term */
                if (p->dw && !n0) memset(dwk + t * wt, 0, wt * sizeof *dwk);
                continue;
            }
            int cols = nb * a.area;
            const float *w = wk + t * wt;
            if (p->y || p->dw) step(g, p, &a, xt, GATHER_X, n0, nb, g->cin);
            if (p->dy) step(g, p, &a, dt, GATHER_DY, n0, nb, g->cout);
            fcl_conv_host_mark(ctx, &t0, 0);
            if (p->y) {
                fcl_host_sgemm_rows(threads, 0, 0, g->cout, cols, g->cin, 1.0f, w, g->cin, xt, cols,
                                    0.0f, ct, cols);
                fcl_conv_host_mark(ctx, &t0, 1);
                step(g, p, &a, ct, ADD_Y, n0, nb, g->cout);
                fcl_conv_host_mark(ctx, &t0, 0);
                calls++;
                continue;
            }
            if (p->dw) {
                fcl_host_sgemm_rows(threads, 0, 1, g->cout, g->cin, cols, 1.0f, dt, cols, xt, cols,
                                    n0 ? 1.0f : 0.0f, dwk + t * wt, g->cin); /* first chunk: = */
                calls++;
            }
            if (p->dx) {
                fcl_host_sgemm_rows(threads, 1, 0, g->cin, cols, g->cout, 1.0f, w, g->cin, dt, cols,
                                    0.0f, ct, cols);
                calls++;
            }
            fcl_conv_host_mark(ctx, &t0, 1);
            if (p->dx) step(g, p, &a, ct, ADD_DX, n0, nb, g->cin);
            fcl_conv_host_mark(ctx, &t0, 0);
        }
    }
    if (p->dw) step(g, p, NULL, dwk, ADD_DW, 0, 0, g->cout);
    fcl_conv_host_mark(ctx, &t0, 0);
    if (ctx->profiling) ctx->gemm_calls += calls;
    return FEWCL_OK;
}

fewcl_status fcl_conv_host_taps(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    size_t ws = a->y || a->dx || a->dw ? fcl_conv_host_taps_workspace(g) : 0;
    return fcl_conv_host_run(ctx, g, a, ws, taps_body);
}
