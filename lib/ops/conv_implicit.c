/* Implicit-GEMM convolution on the OpenCL path (table entry `implicit`), forward: the im2col
 * GEMM with the columns staged from x inside the kernel (cl/conv_implicit.cl), so no column
 * buffer and no workspace. Any kernel, stride and padding; the kernel's 256-item work-groups
 * and 9 KiB of local memory must fit the device (as fewcl's tiled GEMM's). */
#include "conv_algo.h"
#include "conv_impl.h"

/* The taps one launch's items loop over, as fewcl's tiled GEMM bounds its k (lib/ops/gemm.c):
 * a k-step of 16 taps costs an item ~30 loop iterations (two staging loops of 4 and their exits,
 * 16 products and the exit, the step), 1536 steps stay within FCL_ITEM_LOOP_BUDGET. */
#define IMPLICIT_MAX_TAPS 24576

static fcl_kernel_handle k_forward = FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_forward");

int fcl_conv_cl_implicit_eligible(const fcl_conv_geom *g, int forward) {
    if (!forward || g->host || !g->ctx || g->taps > IMPLICIT_MAX_TAPS) return 0;
    const fcl_limits *l = &g->ctx->limits;
    if (l->max_work_group < 256 || l->max_items[0] < 16 || l->max_items[1] < 16 ||
        l->local_mem < 16384)
        return 0;
    fcl_kernel_entry *k;
    return fcl_kernel_get(g->ctx, &k_forward, &k) == FEWCL_OK && k->max_wg >= 256;
}

fewcl_status fcl_conv_cl_implicit(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a) {
    if (!a->y)
        return fcl_fail(FEWCL_ERR_INTERNAL, "implicit GEMM: forward only (checked by eligible)");
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_forward, &k));
    unsigned columns = (unsigned)g->n * (unsigned)g->plane;
    FCL_TRY(fcl_args(k, "tttituuuuuuuuuuu", a->x, a->w, a->b ? a->b : a->x, a->b != NULL, a->y,
                     (unsigned)g->cin, (unsigned)g->h, (unsigned)g->w, (unsigned)g->cout,
                     (unsigned)g->kh, (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad,
                     (unsigned)g->ow, (unsigned)g->plane, columns));
    size_t gws[2] = {(columns + 63) / 64 * 16, ((size_t)g->cout + 63) / 64 * 16};
    size_t lws[2] = {16, 16};
    return fcl_launch(ctx, k, 2, gws, lws);
}
