/* Column statistics for VIC (cl/colstats.cl) and the covariance of the standardised matrix. */
#include "colstats.h"

static fcl_kernel_handle k_col_forward = FCL_KERNEL_HANDLE("colstats", "col_forward");
static fcl_kernel_handle k_col_backward = FCL_KERNEL_HANDLE("colstats", "col_backward");
static fcl_kernel_handle k_vic_var_loss = FCL_KERNEL_HANDLE("colstats", "vic_var_loss");
static fcl_kernel_handle k_vic_var_loss_backward =
    FCL_KERNEL_HANDLE("colstats", "vic_var_loss_backward");
static fcl_kernel_handle k_vic_cov_loss = FCL_KERNEL_HANDLE("colstats", "vic_cov_loss");
static fcl_kernel_handle k_vic_cov_loss_backward =
    FCL_KERNEL_HANDLE("colstats", "vic_cov_loss_backward");

static int is_vec(const fcl_tensor *t, int d) { return t->ndim == 1 && t->shape[0] == d; }

static fewcl_status check_inputs(const char *op, const fcl_tensor *e, const fcl_tensor *mean,
                                 const fcl_tensor *a, const fcl_tensor *b, const fcl_tensor *z) {
    char se[64];
    if (e->ndim != 2 || e->shape[0] < 2)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: e %s must be [N,D] with N >= 2", op,
                        fcl_shape_str(e, se, sizeof se));
    int d = e->shape[1];
    if (!is_vec(mean, d) || (a && !is_vec(a, d)) || (b && !is_vec(b, d)) ||
        (z && !fcl_same_shape(z, e)))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: e %s and its statistics do not fit (mean/var/std [%d], z like e)", op,
                        fcl_shape_str(e, se, sizeof se), d);
    return FEWCL_OK;
}

fewcl_status fcl_colstats_forward(fewcl_context *ctx, const fcl_tensor *e, fcl_tensor *mean,
                                  fcl_tensor *var, fcl_tensor *std, fcl_tensor *z) {
    FCL_TRY(check_inputs("colstats forward", e, mean, var, std, z));
    if (!var || !std || !z)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "colstats forward: var, std and z are all required");
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_col_forward, &k));
    FCL_TRY(fcl_args(k, "tttttuuf", e, mean, var, std, z, (unsigned)e->shape[0],
                     (unsigned)e->shape[1], (double)FCL_VIC_EPS));
    size_t gws = (size_t)e->shape[1], lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_colstats_backward(fewcl_context *ctx, const fcl_tensor *e, const fcl_tensor *mean,
                                   const fcl_tensor *std, const fcl_tensor *z,
                                   const fcl_tensor *dmean, const fcl_tensor *dvar,
                                   const fcl_tensor *dstd, const fcl_tensor *dz, fcl_tensor *de) {
    FCL_TRY(check_inputs("colstats backward", e, mean, std, NULL, z));
    FCL_TRY(check_inputs("colstats backward (gradients)", e, dmean ? dmean : mean, dvar, dstd, dz));
    if (!fcl_same_shape(de, e))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "colstats backward: de must have e's shape");
    unsigned present = (dmean ? 1u : 0u) | (dvar ? 2u : 0u) | (dstd ? 4u : 0u) | (dz ? 8u : 0u);
    /* Absent gradients are never read (the flags say so); any tensor fills their slots. */
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_col_backward, &k));
    FCL_TRY(fcl_args(k, "tttttttttuufu", e, mean, std, z, dmean ? dmean : mean, dvar ? dvar : mean,
                     dstd ? dstd : mean, dz ? dz : z, de, (unsigned)e->shape[0],
                     (unsigned)e->shape[1], (double)FCL_VIC_EPS, present));
    size_t gws = (size_t)e->shape[1], lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

static fewcl_status check_cov(const char *op, const fcl_tensor *z, const fcl_tensor *c) {
    char sz[64], sc[64];
    if (z->ndim != 2 || z->shape[0] < 2 || c->ndim != 2 || c->shape[0] != z->shape[1] ||
        c->shape[1] != z->shape[1])
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: z %s and c %s do not fit c[D,D] = zᵀz, z[N,D]", op,
                        fcl_shape_str(z, sz, sizeof sz), fcl_shape_str(c, sc, sizeof sc));
    return FEWCL_OK;
}

static float cov_scale(const fcl_tensor *z) {
    return 1.0f / ((float)(z->shape[0] - 1) + FCL_VIC_EPS);
}

fewcl_status fcl_colcov_forward(fewcl_context *ctx, const fcl_tensor *z, fcl_tensor *c) {
    FCL_TRY(check_cov("colcov forward", z, c));
    int n = z->shape[0], d = z->shape[1];
    return fcl_gemm(ctx, 1, 0, d, d, n, cov_scale(z), (fcl_matrix){z, 0, d}, (fcl_matrix){z, 0, d},
                    0.0f, (fcl_matrix){c, 0, d});
}

fewcl_status fcl_colcov_backward(fewcl_context *ctx, const fcl_tensor *z, const fcl_tensor *dc,
                                 fcl_tensor *dz) {
    FCL_TRY(check_cov("colcov backward", z, dc));
    if (!fcl_same_shape(dz, z))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "colcov backward: dz must have z's shape");
    int n = z->shape[0], d = z->shape[1];
    float s = cov_scale(z);
    fcl_matrix zm = {z, 0, d}, dcm = {dc, 0, d}, dzm = {dz, 0, d};
    /* c = s·zᵀz, so d(Σ dc∘c)/dz = s·z·(dc + dcᵀ): two GEMMs, the second accumulating. */
    FCL_TRY(fcl_gemm(ctx, 0, 0, n, d, d, s, zm, dcm, 0.0f, dzm));
    return fcl_gemm(ctx, 0, 1, n, d, d, s, zm, dcm, 1.0f, dzm);
}

/* ---- VIC losses ------------------------------------------------------------------------- */

static fewcl_status check_loss(const char *op, const fcl_tensor *x, int matrix,
                               const fcl_tensor *scalar, const fcl_tensor *grad) {
    char sx[64];
    int ok = matrix ? (x->ndim == 2 && x->shape[0] == x->shape[1]) : x->ndim == 1;
    if (!ok || scalar->numel != 1 || (grad && !fcl_same_shape(grad, x)))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: input %s must be %s, the loss (gradient) one element and the "
                        "gradient like the input",
                        op, fcl_shape_str(x, sx, sizeof sx), matrix ? "[D,D]" : "[D]");
    return FEWCL_OK;
}

/* One work-group sums n terms, in launches of at most FCL_ITEM_LOOP_BUDGET terms per item
 * (a D′ x D′ covariance has D′² terms). `set_args` sets the arguments for [first, end). */
typedef fewcl_status (*range_args)(fcl_kernel_entry *k, const void *ud, unsigned first,
                                   unsigned end, size_t scratch);

static fewcl_status group_sum(fewcl_context *ctx, fcl_kernel_entry *k, size_t n,
                              range_args set_args, const void *ud) {
    size_t lws = fcl_kernel_wg_1d(ctx, k), gws = lws;
    size_t step = lws * (FCL_ITEM_LOOP_BUDGET - 2);
    for (size_t first = 0; first < n; first += step) {
        size_t end = n - first < step ? n : first + step;
        FCL_TRY(set_args(k, ud, (unsigned)first, (unsigned)end, lws * sizeof(float)));
        FCL_TRY(fcl_launch(ctx, k, 1, &gws, &lws));
    }
    return FEWCL_OK;
}

static fewcl_status launch_n(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

static fewcl_status var_loss_args(fcl_kernel_entry *k, const void *ud, unsigned first, unsigned end,
                                  size_t scratch) {
    const fcl_tensor *const *io = ud; /* var, loss */
    return fcl_args(k, "ttuuffL", io[0], io[1], first, end, (double)FCL_VIC_EPS,
                    1.0 / (double)io[0]->numel, scratch);
}

fewcl_status fcl_vic_variance_loss_forward(fewcl_context *ctx, const fcl_tensor *var,
                                           fcl_tensor *loss) {
    FCL_TRY(check_loss("vic variance loss", var, 0, loss, NULL));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_vic_var_loss, &k));
    const fcl_tensor *io[2] = {var, loss};
    return group_sum(ctx, k, var->numel, var_loss_args, io);
}

fewcl_status fcl_vic_variance_loss_backward(fewcl_context *ctx, const fcl_tensor *var,
                                            const fcl_tensor *dloss, fcl_tensor *dvar) {
    FCL_TRY(check_loss("vic variance loss backward", var, 0, dloss, dvar));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_vic_var_loss_backward, &k));
    FCL_TRY(fcl_args(k, "tttuff", var, dloss, dvar, (unsigned)var->numel, (double)FCL_VIC_EPS,
                     1.0 / (double)var->numel));
    return launch_n(ctx, k, var->numel);
}

static double cov_loss_scale(const fcl_tensor *c) {
    double d = c->shape[0];
    return 1.0 / (d * (d - 1) + (double)FCL_VIC_EPS);
}

static fewcl_status cov_loss_args(fcl_kernel_entry *k, const void *ud, unsigned first, unsigned end,
                                  size_t scratch) {
    const fcl_tensor *const *io = ud; /* c, loss */
    return fcl_args(k, "ttuuufL", io[0], io[1], first, end, (unsigned)io[0]->shape[0],
                    cov_loss_scale(io[0]), scratch);
}

fewcl_status fcl_vic_covariance_loss_forward(fewcl_context *ctx, const fcl_tensor *c,
                                             fcl_tensor *loss) {
    FCL_TRY(check_loss("vic covariance loss", c, 1, loss, NULL));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_vic_cov_loss, &k));
    const fcl_tensor *io[2] = {c, loss};
    return group_sum(ctx, k, c->numel, cov_loss_args, io);
}

fewcl_status fcl_vic_covariance_loss_backward(fewcl_context *ctx, const fcl_tensor *c,
                                              const fcl_tensor *dloss, fcl_tensor *dc) {
    FCL_TRY(check_loss("vic covariance loss backward", c, 1, dloss, dc));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_vic_cov_loss_backward, &k));
    FCL_TRY(fcl_args(k, "tttuuf", c, dloss, dc, (unsigned)c->numel, (unsigned)c->shape[0],
                     cov_loss_scale(c)));
    return launch_n(ctx, k, c->numel);
}
