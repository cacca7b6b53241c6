/* AdamW step (cl/adamw.cl). */
#include "adamw.h"

#include <math.h>

static fcl_kernel_handle k_adamw_step = FCL_KERNEL_HANDLE("adamw", "adamw_step");

fcl_adamw_config fcl_adamw_defaults(void) {
    return (fcl_adamw_config){
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-5};
}

fewcl_status fcl_adamw_step(fewcl_context *ctx, const fcl_adamw_config *cfg, long step,
                            fcl_tensor *param, const fcl_tensor *grad, fcl_tensor *m,
                            fcl_tensor *v) {
    if (step < 1) return fcl_fail(FEWCL_ERR_ARGUMENT, "AdamW: step %ld (counts from 1)", step);
    if (!fcl_same_shape(param, grad) || !fcl_same_shape(param, m) || !fcl_same_shape(param, v)) {
        char sp[64], sg[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "AdamW: parameter %s and gradient %s (and moments) "
                        "must have one shape",
                        fcl_shape_str(param, sp, sizeof sp), fcl_shape_str(grad, sg, sizeof sg));
    }
    double bc1 = 1.0 - pow(cfg->beta1, (double)step), bc2 = 1.0 - pow(cfg->beta2, (double)step);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_adamw_step, &k));
    FCL_TRY(fcl_args(k, "ttttuffffffff", param, grad, m, v, (unsigned)param->numel,
                     1.0 - cfg->lr * cfg->weight_decay, cfg->beta1, cfg->beta2, 1.0 - cfg->beta1,
                     1.0 - cfg->beta2, cfg->lr / bc1, sqrt(bc2), cfg->eps));
    size_t gws = param->numel, lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}
