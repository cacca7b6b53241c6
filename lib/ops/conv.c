/* 2-D convolution as im2col + GEMM (see cl/conv.cl for the column layout).
 *
 * Memory: the im2col matrix of a whole batch can be large (Conv4's second block at 84x84 is
 * 576 x 1764 floats, 4 MiB, per image), so each call works through the batch in chunks whose
 * columns fit the workspace bound: several whole images at a time when one image fits, else
 * one image in ranges of output pixels. The columns of a chunk's images sit side by side, so
 * that on the OpenCL path one GEMM covers the chunk (forward, dW and dx each), with the
 * GEMM's output [Cout, images·pixels] in the workspace too, moved to/from NCHW by a kernel.
 * The host path (CPU devices) writes NCHW directly with one BLAS call per image, which is as
 * fast there and needs no second buffer. The workspace comes from the arena
 * (FCL_MEM_WORKSPACE) and is freed before returning.
 *
 * Which algorithm runs a call, per direction, is decided in one place: conv_algo.h. */
#include "conv.h"
#include "conv_algo.h"
#include "conv_impl.h"

#include <stdlib.h>

#include "gemm_host.h"
#include "hostmap.h"

int fcl_conv2d_out_size(int in, int k, int stride, int pad) {
    int span = in + 2 * pad - k;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
}

typedef fcl_conv_geom geom;

static fewcl_status on_host(fewcl_context *ctx, int *yes) {
    int path;
    FCL_TRY(fcl_gemm_path(ctx, &path));
    *yes = path == FCL_GEMM_HOST;
    return FEWCL_OK;
}

size_t fcl_conv2d_column_bytes(int host, int taps, int cout) {
    return (size_t)(host ? taps : taps + cout) * sizeof(float);
}

static fewcl_status make_geom(fewcl_context *ctx, const char *op, const fcl_tensor *x,
                              const fcl_tensor *w, const fcl_tensor *b, const fcl_tensor *y,
                              const fcl_conv2d_params *p, geom *g) {
    char sx[64], sw[64], sy[64];
    FCL_TRY(on_host(ctx, &g->host));
    if (!p || p->stride < 1 || p->pad < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: stride %d and padding %d (need >= 1 and >= 0)", op,
                        p ? p->stride : 0, p ? p->pad : 0);
    int ok = x->ndim == 4 && w->ndim == 4 && y->ndim == 4 && x->shape[1] == w->shape[1];
    if (ok) {
        g->n = x->shape[0], g->cin = x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
        g->cout = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
        g->stride = p->stride, g->pad = p->pad;
        g->oh = fcl_conv2d_out_size(g->h, g->kh, g->stride, g->pad);
        g->ow = fcl_conv2d_out_size(g->w, g->kw, g->stride, g->pad);
        ok = g->oh > 0 && g->ow > 0 && y->shape[0] == g->n && y->shape[1] == g->cout &&
             y->shape[2] == g->oh && y->shape[3] == g->ow &&
             (!b || (b->ndim == 1 && b->shape[0] == g->cout));
    }
    if (!ok)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: x %s, weight %s, output %s do not fit y[N,Cout,OH,OW] = "
                        "conv(x[N,Cin,H,W], W[Cout,Cin,KH,KW]) with stride %d, padding %d%s",
                        op, fcl_shape_str(x, sx, sizeof sx), fcl_shape_str(w, sw, sizeof sw),
                        fcl_shape_str(y, sy, sizeof sy), p->stride, p->pad,
                        b ? " and bias [Cout]" : "");
    g->taps = g->cin * g->kh * g->kw;
    g->plane = g->oh * g->ow;
    size_t limit = p->workspace_bytes ? p->workspace_bytes : FCL_CONV_WORKSPACE_DEFAULT;
    if (limit > ctx->limits.max_alloc) limit = ctx->limits.max_alloc;
    if (limit > ((size_t)1 << 31)) limit = (size_t)1 << 31; /* element counts stay in int/uint */
    g->limit = limit;
    g->ctx = ctx;
    /* One output pixel's workspace: its im2col column, and on the OpenCL path its column of
     * the chunk's GEMM output (or of the output gradient) in the same layout. */
    size_t col_bytes = fcl_conv2d_column_bytes(g->host, g->taps, g->cout);
    size_t image_bytes = col_bytes * (size_t)g->plane;
    if (image_bytes <= limit) {
        size_t fit = limit / image_bytes;
        g->images = fit < (size_t)g->n ? (int)fit : g->n;
        g->columns = g->plane;
    } else { /* one image does not fit: ranges of its output pixels (at least one column) */
        size_t fit = limit / col_bytes;
        g->images = 1;
        g->columns = fit < 1 ? 1 : (int)fit;
    }
    return FEWCL_OK;
}

static fewcl_status launch_1d(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

/* The convolution program's kernels, resolved once per context. */
static fcl_kernel_handle k_im2col = FCL_KERNEL_HANDLE("conv", "im2col");
static fcl_kernel_handle k_col2im = FCL_KERNEL_HANDLE("conv", "col2im");
static fcl_kernel_handle k_channel_sum = FCL_KERNEL_HANDLE("conv", "channel_sum");
static fcl_kernel_handle k_chunk_to_nchw = FCL_KERNEL_HANDLE("conv", "chunk_to_nchw");
static fcl_kernel_handle k_nchw_to_chunk = FCL_KERNEL_HANDLE("conv", "nchw_to_chunk");

/* cols[k][i·pc + q] for images n0 .. n0+nb-1 and output pixels p0 .. p0+pc-1. */
static fewcl_status im2col(fewcl_context *ctx, const geom *g, const fcl_tensor *x, fcl_tensor *cols,
                           int n0, int nb, int p0, int pc) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_im2col, &k));
    FCL_TRY(fcl_args(k, "ttuuuuuuuuuuuu", x, cols, (unsigned)n0, (unsigned)nb, (unsigned)g->cin,
                     (unsigned)g->h, (unsigned)g->w, (unsigned)g->kh, (unsigned)g->kw,
                     (unsigned)g->stride, (unsigned)g->pad, (unsigned)g->ow, (unsigned)p0,
                     (unsigned)pc));
    return launch_1d(ctx, k, (size_t)nb * g->taps * pc);
}

/* The chunk loop shared by forward and backward: `step` runs on each chunk after its
 * workspace (cols [K, nb·pc] and t [Cout, nb·pc]) is allocated; it is freed on every path. */
typedef fewcl_status (*chunk_fn)(fewcl_context *ctx, const geom *g, fcl_tensor *cols, fcl_tensor *t,
                                 int n0, int nb, int p0, int pc, void *ud);

static fewcl_status for_each_chunk(fewcl_context *ctx, const geom *g, chunk_fn step, void *ud) {
    fcl_tensor cols, t;
    int chunk = g->images * g->columns;
    FCL_TRY(fcl_tensor_alloc1(ctx, &cols, FCL_MEM_WORKSPACE, g->taps * chunk));
    fewcl_status s = fcl_tensor_alloc1(ctx, &t, FCL_MEM_WORKSPACE, g->cout * chunk);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &cols);
        return s;
    }
    for (int n0 = 0; n0 < g->n && s == FEWCL_OK; n0 += g->images) {
        int nb = g->n - n0 < g->images ? g->n - n0 : g->images;
        for (int p0 = 0; p0 < g->plane && s == FEWCL_OK; p0 += g->columns) {
            int pc = g->plane - p0 < g->columns ? g->plane - p0 : g->columns;
            s = step(ctx, g, &cols, &t, n0, nb, p0, pc, ud);
        }
    }
    fcl_tensor_free(ctx, &t);
    fcl_tensor_free(ctx, &cols);
    return s;
}

/* Moves a chunk between NCHW and the GEMM layout [Cout, nb·pc] (chunk_to_nchw adds the bias
 * when b is given; nchw_to_chunk ignores b). */
static fewcl_status reshuffle(fewcl_context *ctx, const geom *g, fcl_kernel_handle *kernel,
                              const fcl_tensor *from, fcl_tensor *to, const fcl_tensor *b, int n0,
                              int nb, int p0, int pc) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, kernel, &k));
    if (kernel == &k_chunk_to_nchw)
        FCL_TRY(fcl_args(k, "tttiuuuuuu", from, to, b ? b : from, b != NULL, (unsigned)n0,
                         (unsigned)nb, (unsigned)g->cout, (unsigned)g->plane, (unsigned)p0,
                         (unsigned)pc));
    else
        FCL_TRY(fcl_args(k, "ttuuuuuu", from, to, (unsigned)n0, (unsigned)nb, (unsigned)g->cout,
                         (unsigned)g->plane, (unsigned)p0, (unsigned)pc));
    return launch_1d(ctx, k, (size_t)g->cout * nb * pc);
}

typedef struct forward_ud {
    const fcl_tensor *x, *w, *b;
    fcl_tensor *y;
} forward_ud;

/* t[Cout, nb·pc] = W[Cout,K] · cols[K, nb·pc]: one GEMM for the chunk; then y = t (+ b). */
static fewcl_status forward_chunk(fewcl_context *ctx, const geom *g, fcl_tensor *cols,
                                  fcl_tensor *t, int n0, int nb, int p0, int pc, void *ud) {
    forward_ud *u = ud;
    int cn = nb * pc;
    FCL_TRY(im2col(ctx, g, u->x, cols, n0, nb, p0, pc));
    FCL_TRY(fcl_gemm(ctx, 0, 0, g->cout, cn, g->taps, 1.0f, (fcl_matrix){u->w, 0, g->taps},
                     (fcl_matrix){cols, 0, cn}, 0.0f, (fcl_matrix){t, 0, cn}));
    return reshuffle(ctx, g, &k_chunk_to_nchw, t, u->y, u->b, n0, nb, p0, pc);
}

static fewcl_status forward_cl(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    forward_ud u = {a->x, a->w, a->b, a->y};
    return for_each_chunk(ctx, g, forward_chunk, &u);
}

/* Runs `algo` for the call; a failure names the algorithm and the shapes. */
static fewcl_status run_algo(fewcl_context *ctx, const geom *g, const fcl_conv_algo *algo,
                             const fcl_conv_args *a) {
    fewcl_status s = algo->run(ctx, g, a);
    if (s != FEWCL_OK)
        return fcl_wrap(s, "conv2d (%s, x [%d,%d,%d,%d], W [%d,%d,%d,%d])", algo->name, g->n,
                        g->cin, g->h, g->w, g->cout, g->cin, g->kh, g->kw);
    return FEWCL_OK;
}

fewcl_status fcl_conv2d_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                const fcl_tensor *b, const fcl_conv2d_params *p, fcl_tensor *y) {
    geom g;
    FCL_TRY(make_geom(ctx, "conv2d forward", x, w, b, y, p, &g));
    fcl_conv_args a = {.x = x, .w = w, .b = b, .y = y};
    const fcl_conv_algo *algo;
    FCL_TRY(fcl_conv_algo_choose(ctx, &g, FCL_CONV_FORWARD, &a, &algo));
    return run_algo(ctx, &g, algo, &a);
}

typedef struct backward_ud {
    const fcl_tensor *x, *w, *dy;
    fcl_tensor *dx, *dw;
} backward_ud;

static fewcl_status backward_chunk(fewcl_context *ctx, const geom *g, fcl_tensor *cols,
                                   fcl_tensor *t, int n0, int nb, int p0, int pc, void *ud) {
    backward_ud *u = ud;
    int cn = nb * pc;
    /* t[Cout, nb·pc] = the chunk of dy, in the layout of the GEMMs. */
    FCL_TRY(reshuffle(ctx, g, &k_nchw_to_chunk, u->dy, t, NULL, n0, nb, p0, pc));
    fcl_matrix dy = {t, 0, cn};
    if (u->dw) {
        /* dW[Cout,K] += t[Cout, nb·pc] · cols[K, nb·pc]ᵀ: one GEMM over the chunk's
         * pixels. */
        FCL_TRY(im2col(ctx, g, u->x, cols, n0, nb, p0, pc));
        FCL_TRY(fcl_gemm(ctx, 0, 1, g->cout, g->taps, cn, 1.0f, dy, (fcl_matrix){cols, 0, cn}, 1.0f,
                         (fcl_matrix){u->dw, 0, g->taps}));
    }
    if (u->dx) {
        /* dcols[K, nb·pc] = W[Cout,K]ᵀ · t[Cout, nb·pc] (reusing the workspace: the
         * queue is in order, so the dW GEMM has read the columns before they are
         * overwritten). */
        FCL_TRY(fcl_gemm(ctx, 1, 0, g->taps, cn, g->cout, 1.0f, (fcl_matrix){u->w, 0, g->taps}, dy,
                         0.0f, (fcl_matrix){cols, 0, cn}));
        fcl_kernel_entry *k;
        FCL_TRY(fcl_kernel_get(ctx, &k_col2im, &k));
        FCL_TRY(fcl_args(k, "ttuuuuuuuuuuuuui", cols, u->dx, (unsigned)n0, (unsigned)nb,
                         (unsigned)g->cin, (unsigned)g->h, (unsigned)g->w, (unsigned)g->kh,
                         (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad, (unsigned)g->oh,
                         (unsigned)g->ow, (unsigned)p0, (unsigned)pc, p0 > 0));
        FCL_TRY(launch_1d(ctx, k, (size_t)nb * g->cin * g->h * g->w));
    }
    return FEWCL_OK;
}

/* db += Σ_n Σ_p dy[n, c, p], a launch per run of images: an image costs each item
 * plane/lws + 2 loop iterations, and a launch stays within FCL_ITEM_LOOP_BUDGET. */
static fewcl_status bias_grad(fewcl_context *ctx, const geom *g, const fcl_tensor *dy,
                              fcl_tensor *db) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_channel_sum, &k));
    size_t lws = fcl_kernel_wg_1d(ctx, k), gws = lws * (size_t)g->cout;
    size_t per_image = (size_t)g->plane / lws + 2, image = (size_t)g->cout * g->plane;
    int run = (int)(FCL_ITEM_LOOP_BUDGET / per_image);
    if (run < 1) run = 1;
    for (int n0 = 0; n0 < g->n; n0 += run) {
        int nb = g->n - n0 < run ? g->n - n0 : run;
        fcl_tensor images = *dy;
        images.owner = 0;
        images.offset += (size_t)n0 * image;
        images.numel = (size_t)nb * image;
        FCL_TRY(fcl_args(k, "ttuuuL", &images, db, (unsigned)nb, (unsigned)g->cout,
                         (unsigned)g->plane, lws * sizeof(float)));
        FCL_TRY(fcl_launch(ctx, k, 1, &gws, &lws));
    }
    return FEWCL_OK;
}

static fewcl_status backward_cl(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    if (a->db) FCL_TRY(bias_grad(ctx, g, a->dy, a->db));
    if (!a->dx && !a->dw) return FEWCL_OK;
    backward_ud u = {a->x, a->w, a->dy, a->dx, a->dw};
    return for_each_chunk(ctx, g, backward_chunk, &u);
}

size_t fcl_conv_cl_im2col_workspace(const geom *g) {
    size_t chunk = (size_t)g->images * g->columns;
    return chunk * (size_t)(g->taps + g->cout) * sizeof(float);
}

fewcl_status fcl_conv_cl_im2col(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return (a->y ? forward_cl : backward_cl)(ctx, g, a);
}

fewcl_status fcl_conv2d_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *dy, const fcl_conv2d_params *p, fcl_tensor *dx,
                                 fcl_tensor *dw, fcl_tensor *db) {
    geom g;
    FCL_TRY(make_geom(ctx, "conv2d backward", x, w, db, dy, p, &g));
    if ((dx && !fcl_same_shape(dx, x)) || (dw && !fcl_same_shape(dw, w))) {
        char s1[64], s2[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "conv2d backward: dx %s / dW %s do not have the shapes of x and W",
                        dx ? fcl_shape_str(dx, s1, sizeof s1) : "-",
                        dw ? fcl_shape_str(dw, s2, sizeof s2) : "-");
    }
    fcl_conv_args a = {.x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db};
    const fcl_conv_algo *for_data = NULL, *for_weights = NULL;
    if (dx) FCL_TRY(fcl_conv_algo_choose(ctx, &g, FCL_CONV_DATA, &a, &for_data));
    if (dw) FCL_TRY(fcl_conv_algo_choose(ctx, &g, FCL_CONV_WEIGHTS, &a, &for_weights));
    if (for_data == for_weights || !for_data || !for_weights) {
        /* One pass for both gradients (and db): the algorithm shares what they have in
         * common (im2col's columns, the padded dy). Only db: the heuristic's algorithm. */
        const fcl_conv_algo *algo = for_data ? for_data : for_weights;
        if (!algo) algo = fcl_conv_algo_find("im2col", g.host);
        return run_algo(ctx, &g, algo, &a);
    }
    fcl_conv_args weights = a, data = a;
    weights.dx = NULL, data.dw = NULL, data.db = NULL;
    FCL_TRY(run_algo(ctx, &g, for_weights, &weights));
    return run_algo(ctx, &g, for_data, &data);
}
