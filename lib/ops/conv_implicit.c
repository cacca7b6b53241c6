/* Implicit-GEMM convolution on the OpenCL path (table entry `implicit`): the im2col GEMM with
 * the columns staged from x inside the kernel (cl/conv_implicit.cl), so no column buffer and
 * no workspace. Forward: any kernel, stride and padding. Data gradient (stride 1): the same
 * kernel as a convolution of dy with the flipped, transposed kernels. The kernel's 256-item
 * work-groups and 9 KiB of local memory must fit the device (as fewcl's tiled GEMM's). */
#include "conv_algo.h"
#include "conv_impl.h"

/* The taps one launch's items loop over, as fewcl's tiled GEMM bounds its k (lib/ops/gemm.c):
 * a k-step of 16 taps costs an item ~30 loop iterations (two staging loops of 4 and their exits,
 * 16 products and the exit, the step), 1536 steps stay within FCL_ITEM_LOOP_BUDGET. */
#define IMPLICIT_MAX_TAPS 24576

static fcl_kernel_handle k_kernel = FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_forward");

int fcl_conv_cl_implicit_eligible(const fcl_conv_geom *g, int dir) {
    int taps = dir == FCL_CONV_DATA ? g->cout * g->kh * g->kw : g->taps;
    if (dir == FCL_CONV_WEIGHTS || (dir == FCL_CONV_DATA && g->stride != 1)) return 0;
    if (g->host || !g->ctx || taps > IMPLICIT_MAX_TAPS) return 0;
    const fcl_limits *l = &g->ctx->limits;
    if (l->max_work_group < 256 || l->max_items[0] < 16 || l->max_items[1] < 16 ||
        l->local_mem < 16384)
        return 0;
    fcl_kernel_entry *k;
    return fcl_kernel_get(g->ctx, &k_kernel, &k) == FEWCL_OK && k->max_wg >= 256;
}

/* One launch: out [N, rows, out_plane] from in [N, chans, h, w] and W (see the kernel). */
typedef struct implicit_call {
    const fcl_tensor *in, *w, *b;
    fcl_tensor *out;
    int chans, h, w_, rows, out_w, out_plane, flip, a_row, a_chan;
} implicit_call;

static fewcl_status launch(fewcl_context *ctx, const fcl_conv_geom *g, implicit_call c) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_kernel, &k));
    unsigned columns = (unsigned)g->n * (unsigned)c.out_plane;
    FCL_TRY(fcl_args(k, "tttituuuuuuuuuuuiuu", c.in, c.w, c.b ? c.b : c.in, c.b != NULL, c.out,
                     (unsigned)c.chans, (unsigned)c.h, (unsigned)c.w_, (unsigned)c.rows,
                     (unsigned)g->kh, (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad,
                     (unsigned)c.out_w, (unsigned)c.out_plane, columns, c.flip, (unsigned)c.a_row,
                     (unsigned)c.a_chan));
    size_t gws[2] = {(columns + 63) / 64 * 16, ((size_t)c.rows + 63) / 64 * 16};
    size_t lws[2] = {16, 16};
    return fcl_launch(ctx, k, 2, gws, lws);
}

fewcl_status fcl_conv_cl_implicit(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a) {
    int kk = g->kh * g->kw;
    if (a->y) /* y [N, Cout, OH·OW] = W [Cout, Cin·KK] · cols(x) (+ b) */
        return launch(ctx, g,
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
    return launch(ctx, g,
                  (implicit_call){a->dy, a->w, NULL, a->dx, g->cout, g->oh, g->ow, g->cin, g->w,
                                  g->h * g->w, 1, kk, g->cin * kk});
}
