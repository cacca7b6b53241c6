/* Linear layer y = x·Wᵀ + b (PyTorch nn.Linear: W stored [out,in]), forward and backward. */
#include "ops.h"

static fcl_kernel_handle k_sum_rows = FCL_KERNEL_HANDLE("linear", "sum_rows");
static fcl_kernel_handle k_broadcast_rows = FCL_KERNEL_HANDLE("linear", "broadcast_rows");

static fewcl_status check_shapes(const char *op, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *b, const fcl_tensor *y) {
    char sx[64], sw[64], sy[64];
    if (x->ndim != 2 || w->ndim != 2 || y->ndim != 2 || x->shape[1] != w->shape[1] ||
        y->shape[0] != x->shape[0] || y->shape[1] != w->shape[0] ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: x %s, weight %s, output %s do not fit y[N,out] = x[N,in]·W[out,in]ᵀ",
                        op, fcl_shape_str(x, sx, sizeof sx), fcl_shape_str(w, sw, sizeof sw),
                        fcl_shape_str(y, sy, sizeof sy));
    return FEWCL_OK;
}

static fcl_matrix whole(const fcl_tensor *t) { return (fcl_matrix){t, 0, t->shape[t->ndim - 1]}; }

fewcl_status fcl_sum_rows(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *out,
                          int accumulate) {
    int rows = x->shape[0], cols = (int)(x->numel / (size_t)rows);
    if (out->numel != (size_t)cols)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "sum over rows: output has %zu elements, need %d",
                        out->numel, cols);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_sum_rows, &k));
    FCL_TRY(fcl_args(k, "ttuui", x, out, (unsigned)rows, (unsigned)cols, accumulate));
    size_t gws = (size_t)cols, lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_linear_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                const fcl_tensor *b, fcl_tensor *y) {
    FCL_TRY(check_shapes("linear forward", x, w, b, y));
    int n = x->shape[0], in = x->shape[1], out = w->shape[0];
    float beta = 0.0f;
    if (b) {
        fcl_kernel_entry *k;
        FCL_TRY(fcl_kernel_get(ctx, &k_broadcast_rows, &k));
        FCL_TRY(fcl_args(k, "ttuu", b, y, (unsigned)n, (unsigned)out));
        size_t side = fcl_kernel_wg_side(ctx, k);
        size_t gws[2] = {(size_t)out, (size_t)n}, lws[2] = {side, side};
        FCL_TRY(fcl_launch(ctx, k, 2, gws, lws));
        beta = 1.0f;
    }
    /* y[N,out] = x[N,in] · W[out,in]ᵀ (+ y) */
    return fcl_gemm(ctx, 0, 1, n, out, in, 1.0f, whole(x), whole(w), beta, whole(y));
}

fewcl_status fcl_linear_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *dy, fcl_tensor *dx, fcl_tensor *dw,
                                 fcl_tensor *db) {
    FCL_TRY(check_shapes("linear backward", x, w, db, dy));
    int n = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (dx) {
        if (!fcl_same_shape(dx, x))
            return fcl_fail(FEWCL_ERR_ARGUMENT, "linear backward: dx shape");
        /* dx[N,in] = dy[N,out] · W[out,in] */
        FCL_TRY(fcl_gemm(ctx, 0, 0, n, in, out, 1.0f, whole(dy), whole(w), 0.0f, whole(dx)));
    }
    if (dw) {
        if (!fcl_same_shape(dw, w))
            return fcl_fail(FEWCL_ERR_ARGUMENT, "linear backward: dW shape");
        /* dW[out,in] += dy[N,out]ᵀ · x[N,in] */
        FCL_TRY(fcl_gemm(ctx, 1, 0, out, in, n, 1.0f, whole(dy), whole(x), 1.0f, whole(dw)));
    }
    if (db) FCL_TRY(fcl_sum_rows(ctx, dy, db, 1));
    return FEWCL_OK;
}
