/* Row-wise op launchers (cl/rowwise.cl). */
#include "rowwise.h"

static fcl_kernel_handle k_ln_forward = FCL_KERNEL_HANDLE("rowwise", "ln_forward");
static fcl_kernel_handle k_ln_param_grads = FCL_KERNEL_HANDLE("rowwise", "ln_param_grads");
static fcl_kernel_handle k_ln_backward_dx = FCL_KERNEL_HANDLE("rowwise", "ln_backward_dx");
static fcl_kernel_handle k_gelu_forward = FCL_KERNEL_HANDLE("rowwise", "gelu_forward");
static fcl_kernel_handle k_gelu_backward = FCL_KERNEL_HANDLE("rowwise", "gelu_backward");
static fcl_kernel_handle k_l2n_forward = FCL_KERNEL_HANDLE("rowwise", "l2n_forward");
static fcl_kernel_handle k_l2n_backward = FCL_KERNEL_HANDLE("rowwise", "l2n_backward");
static fcl_kernel_handle k_sm_forward = FCL_KERNEL_HANDLE("rowwise", "sm_forward");
static fcl_kernel_handle k_sm_backward = FCL_KERNEL_HANDLE("rowwise", "sm_backward");

static int last_dim(const fcl_tensor *t) { return t->ndim > 0 ? t->shape[t->ndim - 1] : 1; }
static int row_count(const fcl_tensor *t) {
    int d = last_dim(t);
    return d > 0 ? (int)(t->numel / (size_t)d) : 0;
}

static fewcl_status same(const char *op, const char *wa, const fcl_tensor *a, const char *wb,
                         const fcl_tensor *b) {
    if (fcl_same_shape(a, b)) return FEWCL_OK;
    char sa[64], sb[64];
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %s %s and %s %s do not fit", op, wa,
                    fcl_shape_str(a, sa, sizeof sa), wb, fcl_shape_str(b, sb, sizeof sb));
}

static fewcl_status count(const char *op, const char *what, const fcl_tensor *t, int want,
                          const char *unit) {
    if (t->numel == (size_t)want) return FEWCL_OK;
    char st[64];
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %s %s does not fit %d %s", op, what,
                    fcl_shape_str(t, st, sizeof st), want, unit);
}

/* One work-group per row; `scratch` bytes of local memory are the last argument. */
static fewcl_status launch_rows(fewcl_context *ctx, fcl_kernel_entry *k, int rows) {
    size_t lws = fcl_kernel_wg_1d(ctx, k), gws = (size_t)rows * lws;
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

static size_t scratch(const fewcl_context *ctx, const fcl_kernel_entry *k) {
    return fcl_kernel_wg_1d(ctx, k) * sizeof(float);
}

fewcl_status fcl_layernorm_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *gamma,
                                   const fcl_tensor *beta, float eps, fcl_tensor *y,
                                   fcl_tensor *mean, fcl_tensor *rstd) {
    const char *op = "layernorm forward";
    int d = last_dim(x), rows = row_count(x);
    FCL_TRY(same(op, "x", x, "y", y));
    FCL_TRY(count(op, "gamma", gamma, d, "features"));
    FCL_TRY(count(op, "beta", beta, d, "features"));
    FCL_TRY(count(op, "mean", mean, rows, "rows"));
    FCL_TRY(count(op, "rstd", rstd, rows, "rows"));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_ln_forward, &k));
    FCL_TRY(fcl_args(k, "ttttttuufL", x, gamma, beta, y, mean, rstd, (unsigned)rows, (unsigned)d,
                     (double)eps, scratch(ctx, k)));
    return launch_rows(ctx, k, rows);
}

fewcl_status fcl_layernorm_backward(fewcl_context *ctx, const fcl_tensor *x,
                                    const fcl_tensor *gamma, const fcl_tensor *mean,
                                    const fcl_tensor *rstd, const fcl_tensor *dy, fcl_tensor *dx,
                                    fcl_tensor *dgamma, fcl_tensor *dbeta) {
    const char *op = "layernorm backward";
    int d = last_dim(x), rows = row_count(x);
    FCL_TRY(same(op, "x", x, "dy", dy));
    FCL_TRY(same(op, "x", x, "dx", dx));
    FCL_TRY(count(op, "gamma", gamma, d, "features"));
    FCL_TRY(count(op, "dgamma", dgamma, d, "features"));
    FCL_TRY(count(op, "dbeta", dbeta, d, "features"));
    FCL_TRY(count(op, "mean", mean, rows, "rows"));
    FCL_TRY(count(op, "rstd", rstd, rows, "rows"));
    /* parameter gradients first: dx may overwrite dy */
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_ln_param_grads, &k));
    FCL_TRY(fcl_args(k, "ttttttuu", x, mean, rstd, dy, dgamma, dbeta, (unsigned)rows, (unsigned)d));
    size_t gws = (size_t)d, lws = fcl_kernel_wg_1d(ctx, k);
    FCL_TRY(fcl_launch(ctx, k, 1, &gws, &lws));
    FCL_TRY(fcl_kernel_get(ctx, &k_ln_backward_dx, &k));
    FCL_TRY(fcl_args(k, "ttttttuuL", x, gamma, mean, rstd, dy, dx, (unsigned)rows, (unsigned)d,
                     scratch(ctx, k)));
    return launch_rows(ctx, k, rows);
}

fewcl_status fcl_gelu_forward(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y) {
    FCL_TRY(same("gelu forward", "x", x, "y", y));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_gelu_forward, &k));
    FCL_TRY(fcl_args(k, "ttu", x, y, (unsigned)x->numel));
    size_t gws = x->numel, lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_gelu_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *dy,
                               fcl_tensor *dx) {
    FCL_TRY(same("gelu backward", "x", x, "dy", dy));
    FCL_TRY(same("gelu backward", "x", x, "dx", dx));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_gelu_backward, &k));
    FCL_TRY(fcl_args(k, "tttu", x, dy, dx, (unsigned)x->numel));
    size_t gws = x->numel, lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_l2norm_forward(fewcl_context *ctx, const fcl_tensor *x, float eps, fcl_tensor *y) {
    FCL_TRY(same("l2norm forward", "x", x, "y", y));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_l2n_forward, &k));
    FCL_TRY(fcl_args(k, "ttuufL", x, y, (unsigned)row_count(x), (unsigned)last_dim(x), (double)eps,
                     scratch(ctx, k)));
    return launch_rows(ctx, k, row_count(x));
}

fewcl_status fcl_l2norm_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *dy,
                                 float eps, fcl_tensor *dx) {
    FCL_TRY(same("l2norm backward", "x", x, "dy", dy));
    FCL_TRY(same("l2norm backward", "x", x, "dx", dx));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_l2n_backward, &k));
    FCL_TRY(fcl_args(k, "tttuufL", x, dy, dx, (unsigned)row_count(x), (unsigned)last_dim(x),
                     (double)eps, scratch(ctx, k)));
    return launch_rows(ctx, k, row_count(x));
}

fewcl_status fcl_softmax_forward(fewcl_context *ctx, const fcl_tensor *x, float scale,
                                 fcl_tensor *y) {
    FCL_TRY(same("softmax forward", "x", x, "y", y));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_sm_forward, &k));
    FCL_TRY(fcl_args(k, "ttuufL", x, y, (unsigned)row_count(x), (unsigned)last_dim(x),
                     (double)scale, scratch(ctx, k)));
    return launch_rows(ctx, k, row_count(x));
}

fewcl_status fcl_softmax_backward(fewcl_context *ctx, const fcl_tensor *y, const fcl_tensor *dy,
                                  float scale, fcl_tensor *dx) {
    FCL_TRY(same("softmax backward", "y", y, "dy", dy));
    FCL_TRY(same("softmax backward", "y", y, "dx", dx));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_sm_backward, &k));
    FCL_TRY(fcl_args(k, "tttuufL", y, dy, dx, (unsigned)row_count(y), (unsigned)last_dim(y),
                     (double)scale, scratch(ctx, k)));
    return launch_rows(ctx, k, row_count(y));
}
