/* BatchNorm2d launchers (cl/batchnorm.cl: tile reductions, per-channel combination,
 * elementwise pass). */
#include "batchnorm.h"

static fcl_kernel_handle k_bn_combine_stats = FCL_KERNEL_HANDLE("batchnorm", "bn_combine_stats");
static fcl_kernel_handle k_bn_combine_stats_record =
    FCL_KERNEL_HANDLE("batchnorm", "bn_combine_stats_record");
static fcl_kernel_handle k_bn_running_replay = FCL_KERNEL_HANDLE("batchnorm", "bn_running_replay");
static fcl_kernel_handle k_bn_combine_grad = FCL_KERNEL_HANDLE("batchnorm", "bn_combine_grad");
static fcl_kernel_handle k_bn_tile_stats = FCL_KERNEL_ROWS_HANDLE("batchnorm", "bn_tile_stats");
static fcl_kernel_handle k_bn_normalize = FCL_KERNEL_ROWS_HANDLE("batchnorm", "bn_normalize");
static fcl_kernel_handle k_bn_forward_eval = FCL_KERNEL_ROWS_HANDLE("batchnorm", "bn_forward_eval");
static fcl_kernel_handle k_bn_tile_grad = FCL_KERNEL_ROWS_HANDLE("batchnorm", "bn_tile_grad");
static fcl_kernel_handle k_bn_backward_dx = FCL_KERNEL_ROWS_HANDLE("batchnorm", "bn_backward_dx");

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

/* Step 1 of cl/batchnorm.cl: tiles of 16 work-group widths, small enough to stay in cache
 * while a work-group reduces them; one work-group per (tile, channel), or on CPU devices
 * (ctx->limits.row_kernels) one work-item. */
typedef struct tiling {
    unsigned tile, tiles;
    size_t gws[2], lws[2];
    int rows;
} tiling;

static tiling tiles_of(const fewcl_context *ctx, const fcl_kernel_entry *k, int n, int c, int hw) {
    tiling t;
    size_t wg = fcl_kernel_wg_1d(ctx, k), m = (size_t)n * (size_t)hw;
    t.tile = (unsigned)(16 * wg);
    t.tiles = (unsigned)((m + t.tile - 1) / t.tile);
    t.rows = ctx->limits.row_kernels;
    t.gws[0] = (size_t)t.tiles * (t.rows ? 1 : wg), t.gws[1] = (size_t)c;
    t.lws[0] = wg, t.lws[1] = 1;
    return t;
}

static fewcl_status launch_tiles(fewcl_context *ctx, fcl_kernel_entry *k, const tiling *t) {
    return fcl_launch(ctx, k, 2, t->gws, t->rows ? NULL : t->lws);
}

/* Steps 2 and 3: one work-item per channel; an elementwise range over (position, channel,
 * image), or over (channel, image) rows on CPU devices. */
static fewcl_status launch_per_channel(fewcl_context *ctx, fcl_kernel_entry *k, int c) {
    size_t gws = (size_t)c;
    return fcl_launch(ctx, k, 1, &gws, NULL);
}

static fewcl_status launch_elementwise(fewcl_context *ctx, fcl_kernel_entry *k, int n, int c,
                                       int hw) {
    if (ctx->limits.row_kernels) {
        size_t gws[2] = {(size_t)c, (size_t)n};
        return fcl_launch(ctx, k, 2, gws, NULL);
    }
    size_t gws[3] = {(size_t)hw, (size_t)c, (size_t)n};
    return fcl_launch(ctx, k, 3, gws, NULL);
}

/* The training forward; rec_mean/rec_var (not NULL: a meta-batch episode) receive the batch
 * mean and unbiased variance in place of the running statistics' update. */
static fewcl_status forward_train(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *gamma,
                                  const fcl_tensor *beta, fcl_tensor *running_mean,
                                  fcl_tensor *running_var, fcl_tensor *rec_mean,
                                  fcl_tensor *rec_var, float momentum, float eps,
                                  const fcl_tensor *add, int relu, fcl_tensor *y,
                                  fcl_tensor *save_mean, fcl_tensor *save_invstd) {
    const char *op = "batchnorm forward (train)";
    int n = 0, c = 0, hw = 0;
    FCL_TRY(dims(op, x, &n, &c, &hw));
    FCL_TRY(same(op, "y", x, y));
    if (add) FCL_TRY(same(op, "the residual", x, add));
    FCL_TRY(per_channel(op, "gamma", gamma, c));
    FCL_TRY(per_channel(op, "beta", beta, c));
    FCL_TRY(per_channel(op, "running_mean", running_mean, c));
    FCL_TRY(per_channel(op, "running_var", running_var, c));
    FCL_TRY(per_channel(op, "save_mean", save_mean, c));
    FCL_TRY(per_channel(op, "save_invstd", save_invstd, c));
    if ((size_t)n * (size_t)hw < 2) /* as PyTorch: no unbiased variance from one value */
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: one value per channel (N·H·W = 1) in training",
                        op);
    fcl_kernel_entry *k1, *k2, *k3;
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_tile_stats, &k1));
    FCL_TRY(fcl_kernel_get(ctx, rec_mean ? &k_bn_combine_stats_record : &k_bn_combine_stats, &k2));
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_normalize, &k3));
    tiling t = tiles_of(ctx, k1, n, c, hw);
    fcl_tensor part;
    FCL_TRY(fcl_tensor_alloc1(ctx, &part, FCL_MEM_WORKSPACE, (int)(2 * t.tiles * (unsigned)c)));
    fewcl_status s = FEWCL_OK;
    if (s == FEWCL_OK)
        s = fcl_args(k1, "ttuuuuuL", x, &part, (unsigned)n, (unsigned)c, (unsigned)hw, t.tile,
                     t.tiles, t.lws[0] * sizeof(float));
    if (s == FEWCL_OK) s = launch_tiles(ctx, k1, &t);
    if (s == FEWCL_OK && rec_mean)
        s = fcl_args(k2, "tttttuuuuf", &part, rec_mean, rec_var, save_mean, save_invstd,
                     (unsigned)c, (unsigned)(n * hw), t.tile, t.tiles, (double)eps);
    else if (s == FEWCL_OK)
        s = fcl_args(k2, "tttttuuuuff", &part, running_mean, running_var, save_mean, save_invstd,
                     (unsigned)c, (unsigned)(n * hw), t.tile, t.tiles, (double)momentum,
                     (double)eps);
    if (s == FEWCL_OK) s = launch_per_channel(ctx, k2, c);
    if (s == FEWCL_OK)
        s = fcl_args(k3, "tttttttuuuii", x, gamma, beta, save_mean, save_invstd, add ? add : x, y,
                     (unsigned)n, (unsigned)c, (unsigned)hw, add != NULL, relu != 0);
    if (s == FEWCL_OK) s = launch_elementwise(ctx, k3, n, c, hw);
    fcl_tensor_free(ctx, &part);
    return s;
}

fewcl_status fcl_batchnorm_forward_train(fewcl_context *ctx, const fcl_tensor *x,
                                         const fcl_tensor *gamma, const fcl_tensor *beta,
                                         fcl_tensor *running_mean, fcl_tensor *running_var,
                                         float momentum, float eps, const fcl_tensor *add, int relu,
                                         fcl_tensor *y, fcl_tensor *save_mean,
                                         fcl_tensor *save_invstd) {
    return forward_train(ctx, x, gamma, beta, running_mean, running_var, NULL, NULL, momentum, eps,
                         add, relu, y, save_mean, save_invstd);
}

/* C floats of `rec` from element `at`: the slice a record kernel writes. */
static fewcl_status record_slice(const char *op, const fcl_tensor *rec, size_t at, int c,
                                 fcl_tensor *out) {
    if (at + (size_t)c > rec->numel)
        return fcl_fail(FEWCL_ERR_INTERNAL, "%s: record [%zu] has no room at %zu for %d channels",
                        op, rec->numel, at, c);
    *out = *rec;
    out->ndim = 1, out->shape[0] = c, out->numel = (size_t)c;
    out->offset += at, out->owner = 0;
    return FEWCL_OK;
}

fewcl_status fcl_batchnorm_forward_train_record(fewcl_context *ctx, const fcl_tensor *x,
                                                const fcl_tensor *gamma, const fcl_tensor *beta,
                                                fcl_tensor *record, size_t mean_at, size_t var_at,
                                                float eps, const fcl_tensor *add, int relu,
                                                fcl_tensor *y, fcl_tensor *save_mean,
                                                fcl_tensor *save_invstd) {
    const char *op = "batchnorm forward (train, recording)";
    int c = x->ndim >= 2 ? x->shape[1] : 0;
    fcl_tensor rm, rv;
    FCL_TRY(record_slice(op, record, mean_at, c, &rm));
    FCL_TRY(record_slice(op, record, var_at, c, &rv));
    return forward_train(ctx, x, gamma, beta, &rm, &rv, &rm, &rv, 0.0f, eps, add, relu, y,
                         save_mean, save_invstd);
}

fewcl_status fcl_batchnorm_running_replay(fewcl_context *ctx, fcl_tensor *running,
                                          const fcl_tensor *records, size_t at, size_t stride,
                                          int episodes, float momentum) {
    const char *op = "batchnorm running-statistics replay";
    int c = (int)running->numel;
    if (episodes < 1 || at + (size_t)(episodes - 1) * stride + (size_t)c > records->numel)
        return fcl_fail(FEWCL_ERR_INTERNAL, "%s: %d records of stride %zu from %zu exceed [%zu]",
                        op, episodes, stride, at, records->numel);
    fcl_tensor from = *records; /* the first record's channels, the others stride apart */
    from.offset += at, from.owner = 0;
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_running_replay, &k));
    FCL_TRY(fcl_args(k, "ttuuuf", running, &from, (unsigned)stride, (unsigned)episodes, (unsigned)c,
                     (double)momentum));
    return launch_per_channel(ctx, k, c);
}

fewcl_status fcl_batchnorm_forward_eval_fused(fewcl_context *ctx, const fcl_tensor *x,
                                              const fcl_tensor *gamma, const fcl_tensor *beta,
                                              const fcl_tensor *running_mean,
                                              const fcl_tensor *running_var, float eps,
                                              const fcl_tensor *add, int relu, fcl_tensor *y) {
    const char *op = "batchnorm forward (eval)";
    int n = 0, c = 0, hw = 0;
    FCL_TRY(dims(op, x, &n, &c, &hw));
    FCL_TRY(same(op, "y", x, y));
    if (add) FCL_TRY(same(op, "the residual", x, add));
    FCL_TRY(per_channel(op, "gamma", gamma, c));
    FCL_TRY(per_channel(op, "beta", beta, c));
    FCL_TRY(per_channel(op, "running_mean", running_mean, c));
    FCL_TRY(per_channel(op, "running_var", running_var, c));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_forward_eval, &k));
    FCL_TRY(fcl_args(k, "tttttttuuufii", x, gamma, beta, running_mean, running_var, add ? add : x,
                     y, (unsigned)n, (unsigned)c, (unsigned)hw, (double)eps, add != NULL,
                     relu != 0));
    return launch_elementwise(ctx, k, n, c, hw);
}

fewcl_status fcl_batchnorm_forward_eval(fewcl_context *ctx, const fcl_tensor *x,
                                        const fcl_tensor *gamma, const fcl_tensor *beta,
                                        const fcl_tensor *running_mean,
                                        const fcl_tensor *running_var, float eps, fcl_tensor *y) {
    return fcl_batchnorm_forward_eval_fused(ctx, x, gamma, beta, running_mean, running_var, eps,
                                            NULL, 0, y);
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
    fcl_kernel_entry *k1, *k2, *k3;
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_tile_grad, &k1));
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_combine_grad, &k2));
    FCL_TRY(fcl_kernel_get(ctx, &k_bn_backward_dx, &k3));
    tiling t = tiles_of(ctx, k1, n, c, hw);
    fcl_tensor part, sums;
    FCL_TRY(fcl_tensor_alloc1(ctx, &part, FCL_MEM_WORKSPACE, (int)(2 * t.tiles * (unsigned)c)));
    fewcl_status s = fcl_tensor_alloc1(ctx, &sums, FCL_MEM_WORKSPACE, 2 * c);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &part);
        return s;
    }
    if (s == FEWCL_OK)
        s = fcl_args(k1, "tttttuuuuuifL", x, mean, stat, dy, &part, (unsigned)n, (unsigned)c,
                     (unsigned)hw, t.tile, t.tiles, train, (double)eps, t.lws[0] * sizeof(float));
    if (s == FEWCL_OK) s = launch_tiles(ctx, k1, &t);
    if (s == FEWCL_OK)
        s = fcl_args(k2, "ttttuu", &part, &sums, dgamma, dbeta, (unsigned)c, t.tiles);
    if (s == FEWCL_OK) s = launch_per_channel(ctx, k2, c);
    if (s == FEWCL_OK)
        s = fcl_args(k3, "tttttttuuuif", x, gamma, mean, stat, dy, &sums, dx, (unsigned)n,
                     (unsigned)c, (unsigned)hw, train, (double)eps);
    if (s == FEWCL_OK) s = launch_elementwise(ctx, k3, n, c, hw);
    fcl_tensor_free(ctx, &sums);
    fcl_tensor_free(ctx, &part);
    return s;
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
