/* Implicit-GEMM convolution on the OpenCL path (table entries `implicit` and `implicit_wide`):
 * the im2col GEMM with the columns staged from x inside the kernel, so no column buffer and
 * no workspace. Forward: any kernel, stride and padding. Data gradient (stride 1): the same
 * kernel as a convolution of dy with the flipped, transposed kernels.
 *   implicit       cl/conv_implicit.cl: 64x64 tiles, 4x4 outputs per item, 9 KiB of local
 *                  memory (as fewcl's tiled GEMM);
 *   implicit_wide  cl/conv_implicit_wide.cl: 128x128 tiles, 8x8 outputs per item, 19 KiB:
 *                  for GPUs with registers for 64 accumulators per item; the find step keeps
 *                  whichever of the two is faster per device and shape.
 * Both run 256-item (16x16) work-groups, which must fit the device and the compiled kernel. */
#include "conv_algo.h"
#include "conv_impl.h"

/* The taps one launch's items loop over, as fewcl's tiled GEMM bounds its k (lib/ops/gemm.c):
 * a k-step of 16 taps costs an item ~30 loop iterations (two staging loops of 4 and their exits,
 * 16 products and the exit, the step), 1536 steps stay within FCL_ITEM_LOOP_BUDGET. The wide
 * kernel's step costs ~36 (staging loops of 8): 1536 steps, ~55000, still within it. */
#define IMPLICIT_MAX_TAPS 24576

/* One kernel variant: its handle, its tile (rows = output channels, columns = pixels) and
 * the local memory it declares (bytes, with room for the implementation's own). */
typedef struct implicit_variant {
    fcl_kernel_handle *kernel;
    unsigned tile_rows, tile_cols;
    size_t local_mem;
} implicit_variant;

static fcl_kernel_handle k_kernel = FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_forward");
static fcl_kernel_handle k_wide =
    FCL_KERNEL_HANDLE("conv_implicit_wide", "conv_implicit_wide_forward");

/* conv_implicit.cl: 2·16·65 floats + 8·64 + 4·16 ints = 10.6 KiB; asked as before, 16 KiB. */
static const implicit_variant v_small = {&k_kernel, 64, 64, 16384};
/* conv_implicit_wide.cl: 16·129 + 16·128 floats + 4·128 + 4·16 ints = 18.3 KiB; 20 KiB. */
static const implicit_variant v_wide = {&k_wide, 128, 128, 20480};

static int eligible(const implicit_variant *v, const fcl_conv_geom *g, int dir) {
    int taps = dir == FCL_CONV_DATA ? g->cout * g->kh * g->kw : g->taps;
    if (dir == FCL_CONV_WEIGHTS || (dir == FCL_CONV_DATA && g->stride != 1)) return 0;
    if (g->host || !g->ctx || taps > IMPLICIT_MAX_TAPS) return 0;
    const fcl_limits *l = &g->ctx->limits;
    if (l->max_work_group < 256 || l->max_items[0] < 16 || l->max_items[1] < 16 ||
        l->local_mem < v->local_mem)
        return 0;
    fcl_kernel_entry *k; /* the compiled kernel's own limit (registers: the wide one's 64
                          * accumulators may not fit 256 items on every device) */
    return fcl_kernel_get(g->ctx, v->kernel, &k) == FEWCL_OK && k->max_wg >= 256;
}

int fcl_conv_cl_implicit_eligible(const fcl_conv_geom *g, int dir) {
    return eligible(&v_small, g, dir);
}
int fcl_conv_cl_implicit_wide_eligible(const fcl_conv_geom *g, int dir) {
    return eligible(&v_wide, g, dir);
}

/* One launch: out [N, rows, out_plane] from in [N, chans, h, w] and W (see the kernel). */
typedef struct implicit_call {
    const fcl_tensor *in, *w, *b;
    fcl_tensor *out;
    int chans, h, w_, rows, out_w, out_plane, flip, a_row, a_chan;
} implicit_call;

static fewcl_status launch(fewcl_context *ctx, const implicit_variant *v,
                           const fcl_conv_geom *g, implicit_call c) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, v->kernel, &k));
    unsigned columns = (unsigned)g->n * (unsigned)c.out_plane;
    FCL_TRY(fcl_args(k, "tttituuuuuuuuuuuiuu", c.in, c.w, c.b ? c.b : c.in, c.b != NULL, c.out,
                     (unsigned)c.chans, (unsigned)c.h, (unsigned)c.w_, (unsigned)c.rows,
                     (unsigned)g->kh, (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad,
                     (unsigned)c.out_w, (unsigned)c.out_plane, columns, c.flip, (unsigned)c.a_row,
                     (unsigned)c.a_chan));
    size_t gws[2] = {(columns + v->tile_cols - 1) / v->tile_cols * 16,
                     ((size_t)c.rows + v->tile_rows - 1) / v->tile_rows * 16};
    size_t lws[2] = {16, 16};
    return fcl_launch(ctx, k, 2, gws, lws);
}

static fewcl_status run(fewcl_context *ctx, const implicit_variant *v, const fcl_conv_geom *g,
                        const fcl_conv_args *a) {
    int kk = g->kh * g->kw;
    if (a->y) /* y [N, Cout, OH·OW] = W [Cout, Cin·KK] · cols(x) (+ b) */
        return launch(ctx, v, g,
                      (implicit_call){a->x, a->w, a->b, a->y, g->cin, g->h, g->w, g->cout, g->ow,
                                      g->plane, 0, g->taps, kk});
    if (a->db) { /* the bias gradient: the im2col algorithm's kernel, alone */
        fcl_conv_args bias = {.x = a->x, .w = a->w, .dy = a->dy, .db = a->db};
        FCL_TRY(fcl_conv_cl_im2col(ctx, g, &bias));
    }
    if (a->dw)
        return fcl_fail(FEWCL_ERR_INTERNAL, "implicit GEMM: no weight gradient (see eligible)");
    if (!a->dx) return FEWCL_OK;
    /* dx [N, Cin, H·W] = Wᵀ-flipped [Cin, Cout·KK] · cols(dy), stride 1 */
    return launch(ctx, v, g,
                  (implicit_call){a->dy, a->w, NULL, a->dx, g->cout, g->oh, g->ow, g->cin, g->w,
                                  g->h * g->w, 1, kk, g->cin * kk});
}

fewcl_status fcl_conv_cl_implicit(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a) {
    return run(ctx, &v_small, g, a);
}
fewcl_status fcl_conv_cl_implicit_wide(fewcl_context *ctx, const fcl_conv_geom *g,
                                       const fcl_conv_args *a) {
    return run(ctx, &v_wide, g, a);
}
