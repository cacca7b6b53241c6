/* Elementwise ops (cl/elementwise.cl). */
#include "ops.h"

static fcl_kernel_handle k_fill = FCL_KERNEL_HANDLE("elementwise", "fill");
static fcl_kernel_handle k_add = FCL_KERNEL_HANDLE("elementwise", "add");
static fcl_kernel_handle k_scale = FCL_KERNEL_HANDLE("elementwise", "scale");
static fcl_kernel_handle k_axpy = FCL_KERNEL_HANDLE("elementwise", "axpy");
static fcl_kernel_handle k_relu_forward = FCL_KERNEL_HANDLE("elementwise", "relu_forward");
static fcl_kernel_handle k_relu_backward = FCL_KERNEL_HANDLE("elementwise", "relu_backward");

static fewcl_status check_same(const char *op, const fcl_tensor *a, const fcl_tensor *b) {
    if (fcl_same_shape(a, b)) return FEWCL_OK;
    char sa[64], sb[64];
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: shapes %s and %s differ", op,
                    fcl_shape_str(a, sa, sizeof sa), fcl_shape_str(b, sb, sizeof sb));
}

static fewcl_status launch_1d(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

fewcl_status fcl_fill(fewcl_context *ctx, fcl_tensor *x, float value) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_fill, &k));
    FCL_TRY(fcl_args(k, "tuf", x, (unsigned)x->numel, (double)value));
    return launch_1d(ctx, k, x->numel);
}

fewcl_status fcl_add(fewcl_context *ctx, const fcl_tensor *a, const fcl_tensor *b,
                     fcl_tensor *out) {
    FCL_TRY(check_same("add", a, b));
    FCL_TRY(check_same("add", a, out));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_add, &k));
    FCL_TRY(fcl_args(k, "tttu", a, b, out, (unsigned)a->numel));
    return launch_1d(ctx, k, a->numel);
}

fewcl_status fcl_scale(fewcl_context *ctx, const fcl_tensor *x, float alpha, fcl_tensor *out) {
    FCL_TRY(check_same("scale", x, out));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_scale, &k));
    FCL_TRY(fcl_args(k, "ttuf", x, out, (unsigned)x->numel, (double)alpha));
    return launch_1d(ctx, k, x->numel);
}

fewcl_status fcl_axpy(fewcl_context *ctx, float alpha, const fcl_tensor *x, fcl_tensor *y) {
    FCL_TRY(check_same("axpy", x, y));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_axpy, &k));
    FCL_TRY(fcl_args(k, "ttuf", x, y, (unsigned)x->numel, (double)alpha));
    return launch_1d(ctx, k, x->numel);
}

fewcl_status fcl_relu_forward(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y) {
    FCL_TRY(check_same("relu forward", x, y));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_relu_forward, &k));
    FCL_TRY(fcl_args(k, "ttu", x, y, (unsigned)x->numel));
    return launch_1d(ctx, k, x->numel);
}

fewcl_status fcl_relu_backward(fewcl_context *ctx, const fcl_tensor *y, const fcl_tensor *dy,
                               fcl_tensor *dx) {
    FCL_TRY(check_same("relu backward", y, dy));
    FCL_TRY(check_same("relu backward", y, dx));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_relu_backward, &k));
    FCL_TRY(fcl_args(k, "tttu", y, dy, dx, (unsigned)y->numel));
    return launch_1d(ctx, k, y->numel);
}
