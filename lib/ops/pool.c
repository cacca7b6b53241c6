/* Max pooling forward (with argmax) and backward (gather); kernels in cl/pool.cl. */
#include "pool.h"

static fcl_kernel_handle k_maxpool2_forward = FCL_KERNEL_ROWS_HANDLE("pool", "maxpool2_forward");
static fcl_kernel_handle k_maxpool_forward = FCL_KERNEL_ROWS_HANDLE("pool", "maxpool_forward");
static fcl_kernel_handle k_maxpool2_backward = FCL_KERNEL_ROWS_HANDLE("pool", "maxpool2_backward");
static fcl_kernel_handle k_maxpool_backward = FCL_KERNEL_HANDLE("pool", "maxpool_backward");
static fcl_kernel_handle k_maxpool_backward_planes =
    FCL_KERNEL_HANDLE("pool", "maxpool_backward_planes");

int fcl_pool2d_out_size(int in, const fcl_pool2d_params *p) {
    int span = in + 2 * p->pad - p->kernel;
    return span < 0 || p->stride < 1 ? 0 : span / p->stride + 1;
}

/* Checks x[N,C,H,W] against y[N,C,OH,OW] (and idx of y's shape). */
static fewcl_status check(const char *op, const fcl_tensor *x, const fcl_tensor *y,
                          const fcl_tensor *idx, const fcl_pool2d_params *p) {
    char sx[64], sy[64], si[64];
    if (!p || p->kernel < 1 || p->stride < 1 || p->pad < 0 || 2 * p->pad > p->kernel)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: kernel %d, stride %d, padding %d (need kernel, stride >= 1 and "
                        "0 <= padding <= kernel/2)",
                        op, p ? p->kernel : 0, p ? p->stride : 0, p ? p->pad : 0);
    int ok = x->ndim == 4 && y->ndim == 4 && fcl_same_shape(y, idx) && y->shape[0] == x->shape[0] &&
             y->shape[1] == x->shape[1] && y->shape[2] == fcl_pool2d_out_size(x->shape[2], p) &&
             y->shape[3] == fcl_pool2d_out_size(x->shape[3], p) && y->shape[2] > 0 &&
             y->shape[3] > 0;
    if (!ok)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: x %s, output %s, indices %s do not fit max pooling with kernel %d, "
                        "stride %d, padding %d",
                        op, fcl_shape_str(x, sx, sizeof sx), fcl_shape_str(y, sy, sizeof sy),
                        fcl_shape_str(idx, si, sizeof si), p->kernel, p->stride, p->pad);
    if ((long)x->shape[2] * x->shape[3] > (1L << 24))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: a %dx%d plane has indices that a float cannot hold exactly", op,
                        x->shape[2], x->shape[3]);
    return FEWCL_OK;
}

static fewcl_status launch(fewcl_context *ctx, fcl_kernel_handle *h, const fcl_tensor *a,
                           const fcl_tensor *b, const fcl_tensor *c, const fcl_tensor *x,
                           const fcl_tensor *y, const fcl_pool2d_params *p, size_t items,
                           const fcl_tensor *rows_of) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, h, &k));
    FCL_TRY(fcl_args(k, "tttuuuuuuuu", a, b, c, (unsigned)(x->shape[0] * x->shape[1]),
                     (unsigned)x->shape[2], (unsigned)x->shape[3], (unsigned)y->shape[2],
                     (unsigned)y->shape[3], (unsigned)p->kernel, (unsigned)p->stride,
                     (unsigned)p->pad));
    if (ctx->limits.row_kernels) { /* a work-item per row of rows_of (see cl/pool.cl) */
        size_t gws[2] = {(size_t)rows_of->shape[2],
                         (size_t)rows_of->shape[0] * (size_t)rows_of->shape[1]};
        return fcl_launch(ctx, k, 2, gws, NULL);
    }
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &items, &lws);
}

/* The 2x2/2 window without padding has kernels of its own (cl/pool.cl: 3-D ranges, no
 * division), launched over (columns, rows, planes) of `over` (the output forward, the input
 * backward). */
static int is_2x2(const fcl_pool2d_params *p) {
    return p->kernel == 2 && p->stride == 2 && p->pad == 0;
}

static fewcl_status launch_2x2(fewcl_context *ctx, fcl_kernel_handle *h, const fcl_tensor *a,
                               const fcl_tensor *b, const fcl_tensor *c, const fcl_tensor *x,
                               const fcl_tensor *y, const fcl_tensor *over) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, h, &k));
    FCL_TRY(fcl_args(k, "tttuuuuu", a, b, c, (unsigned)(x->shape[0] * x->shape[1]),
                     (unsigned)x->shape[2], (unsigned)x->shape[3], (unsigned)y->shape[2],
                     (unsigned)y->shape[3]));
    size_t planes = (size_t)over->shape[0] * (size_t)over->shape[1];
    if (ctx->limits.row_kernels) { /* CPU devices: a work-item per row (see cl/pool.cl) */
        size_t gws[2] = {(size_t)over->shape[2], planes};
        return fcl_launch(ctx, k, 2, gws, NULL);
    }
    size_t gws[3] = {(size_t)over->shape[3], (size_t)over->shape[2], planes};
    return fcl_launch(ctx, k, 3, gws, NULL);
}

/* The backward on CPU devices: a work-item per plane (cl/pool.cl). */
static fewcl_status launch_planes(fewcl_context *ctx, const fcl_tensor *idx, const fcl_tensor *dy,
                                  fcl_tensor *dx) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_maxpool_backward_planes, &k));
    unsigned planes = (unsigned)(dx->shape[0] * dx->shape[1]);
    FCL_TRY(fcl_args(k, "tttuuuuu", idx, dy, dx, planes, (unsigned)dx->shape[2],
                     (unsigned)dx->shape[3], (unsigned)dy->shape[2], (unsigned)dy->shape[3]));
    size_t gws = planes;
    return fcl_launch(ctx, k, 1, &gws, NULL);
}

fewcl_status fcl_maxpool2d_forward(fewcl_context *ctx, const fcl_tensor *x,
                                   const fcl_pool2d_params *p, fcl_tensor *y, fcl_tensor *idx) {
    FCL_TRY(check("max pool forward", x, y, idx, p));
    if (is_2x2(p)) return launch_2x2(ctx, &k_maxpool2_forward, x, y, idx, x, y, y);
    return launch(ctx, &k_maxpool_forward, x, y, idx, x, y, p, y->numel, y);
}

fewcl_status fcl_maxpool2d_backward(fewcl_context *ctx, const fcl_tensor *idx, const fcl_tensor *dy,
                                    const fcl_pool2d_params *p, fcl_tensor *dx) {
    FCL_TRY(check("max pool backward", dx, dy, idx, p));
    if (is_2x2(p)) return launch_2x2(ctx, &k_maxpool2_backward, idx, dy, dx, dx, dy, dx);
    if (ctx->limits.row_kernels) return launch_planes(ctx, idx, dy, dx);
    return launch(ctx, &k_maxpool_backward, idx, dy, dx, dx, dy, p, dx->numel, dx);
}
