/* BatchNorm2d launchers (cl/batchnorm.cl). */
#include "batchnorm.h"

/* x [N,C,H,W] or [N,C]: sets n, c, hw. */
static fewcl_status dims(const char *op, const fcl_tensor *x, int *n, int *c, int *hw) {
    char sx[64];
    if (x->ndim != 4 && x->ndim != 2)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: x %s is neither [N,C,H,W] nor [N,C]", op,
                        fcl_shape_str(x, sx, sizeof sx));
    *n = x->shape[0], *c = x->shape[1];
    *hw = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    return FEWCL_OK;
}

/* Each per-channel tensor must hold exactly C values. */
static fewcl_status per_channel(const char *op, const char *what, const fcl_tensor *t, int c) {
    if (t->numel == (size_t)c) return FEWCL_OK;
    char st[64];
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %s %s does not fit %d channels", op, what,
                    fcl_shape_str(t, st, sizeof st), c);
}

static fewcl_status same(const char *op, const char *what, const fcl_tensor *x,
                         const fcl_tensor *t) {
    if (fcl_same_shape(x, t)) return FEWCL_OK;
    char sx[64], st[64];
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: x %s and %s %s do not fit", op,
                    fcl_shape_str(x, sx, sizeof sx), what, fcl_shape_str(t, st, sizeof st));
}

/* One work-group per channel. */
static fewcl_status launch_channels(fewcl_context *ctx, fcl_kernel_entry *k, int c) {
    size_t lws = fcl_wg_1d(ctx), gws = (size_t)c * lws;
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_batchnorm_forward_train(fewcl_context *ctx, const fcl_tensor *x,
                                         const fcl_tensor *gamma, const fcl_tensor *beta,
                                         fcl_tensor *running_mean, fcl_tensor *running_var,
                                         float momentum, float eps, fcl_tensor *y,
                                         fcl_tensor *save_mean, fcl_tensor *save_invstd) {
    const char *op = "batchnorm forward (train)";
    int n = 0, c = 0, hw = 0;
    FCL_TRY(dims(op, x, &n, &c, &hw));
    FCL_TRY(same(op, "y", x, y));
    FCL_TRY(per_channel(op, "gamma", gamma, c));
    FCL_TRY(per_channel(op, "beta", beta, c));
    FCL_TRY(per_channel(op, "running_mean", running_mean, c));
    FCL_TRY(per_channel(op, "running_var", running_var, c));
    FCL_TRY(per_channel(op, "save_mean", save_mean, c));
    FCL_TRY(per_channel(op, "save_invstd", save_invstd, c));
    if ((size_t)n * (size_t)hw < 2) /* as PyTorch: no unbiased variance from one value */
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: one value per channel (N·H·W = 1) in training",
                        op);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel(ctx, "batchnorm", NULL, "bn_forward_train", &k));
    FCL_TRY(fcl_args(k, "ttttttttuuuffL", x, gamma, beta, running_mean, running_var, y, save_mean,
                     save_invstd, (unsigned)n, (unsigned)c, (unsigned)hw, (double)momentum,
                     (double)eps, fcl_wg_1d(ctx) * sizeof(float)));
    return launch_channels(ctx, k, c);
}

fewcl_status fcl_batchnorm_forward_eval(fewcl_context *ctx, const fcl_tensor *x,
                                        const fcl_tensor *gamma, const fcl_tensor *beta,
                                        const fcl_tensor *running_mean,
                                        const fcl_tensor *running_var, float eps, fcl_tensor *y) {
    const char *op = "batchnorm forward (eval)";
    int n = 0, c = 0, hw = 0;
    FCL_TRY(dims(op, x, &n, &c, &hw));
    FCL_TRY(same(op, "y", x, y));
    FCL_TRY(per_channel(op, "gamma", gamma, c));
    FCL_TRY(per_channel(op, "beta", beta, c));
    FCL_TRY(per_channel(op, "running_mean", running_mean, c));
    FCL_TRY(per_channel(op, "running_var", running_var, c));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel(ctx, "batchnorm", NULL, "bn_forward_eval", &k));
    FCL_TRY(fcl_args(k, "ttttttuuuf", x, gamma, beta, running_mean, running_var, y,
                     (unsigned)x->numel, (unsigned)c, (unsigned)hw, (double)eps));
    size_t gws = x->numel, lws = fcl_wg_1d(ctx);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

static fewcl_status backward(fewcl_context *ctx, const char *op, int train, const fcl_tensor *x,
                             const fcl_tensor *gamma, const fcl_tensor *mean,
                             const fcl_tensor *stat, float eps, const fcl_tensor *dy,
                             fcl_tensor *dx, fcl_tensor *dgamma, fcl_tensor *dbeta) {
    int n = 0, c = 0, hw = 0;
    FCL_TRY(dims(op, x, &n, &c, &hw));
    FCL_TRY(same(op, "dy", x, dy));
    FCL_TRY(same(op, "dx", x, dx));
    FCL_TRY(per_channel(op, "gamma", gamma, c));
    FCL_TRY(per_channel(op, train ? "save_mean" : "running_mean", mean, c));
    FCL_TRY(per_channel(op, train ? "save_invstd" : "running_var", stat, c));
    FCL_TRY(per_channel(op, "dgamma", dgamma, c));
    FCL_TRY(per_channel(op, "dbeta", dbeta, c));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel(ctx, "batchnorm", NULL, "bn_backward", &k));
    FCL_TRY(fcl_args(k, "ttttttttuuuifL", x, gamma, mean, stat, dy, dx, dgamma, dbeta, (unsigned)n,
                     (unsigned)c, (unsigned)hw, train, (double)eps,
                     fcl_wg_1d(ctx) * sizeof(float)));
    return launch_channels(ctx, k, c);
}

fewcl_status fcl_batchnorm_backward_train(fewcl_context *ctx, const fcl_tensor *x,
                                          const fcl_tensor *gamma, const fcl_tensor *save_mean,
                                          const fcl_tensor *save_invstd, const fcl_tensor *dy,
                                          fcl_tensor *dx, fcl_tensor *dgamma, fcl_tensor *dbeta) {
    return backward(ctx, "batchnorm backward (train)", 1, x, gamma, save_mean, save_invstd, 0.0f,
                    dy, dx, dgamma, dbeta);
}

fewcl_status fcl_batchnorm_backward_eval(fewcl_context *ctx, const fcl_tensor *x,
                                         const fcl_tensor *gamma, const fcl_tensor *running_mean,
                                         const fcl_tensor *running_var, float eps,
                                         const fcl_tensor *dy, fcl_tensor *dx, fcl_tensor *dgamma,
                                         fcl_tensor *dbeta) {
    return backward(ctx, "batchnorm backward (eval)", 0, x, gamma, running_mean, running_var, eps,
                    dy, dx, dgamma, dbeta);
}
