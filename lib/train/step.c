/* One training or evaluation episode (see step.h). */
#include "step.h"

#include <math.h>
#include <stdlib.h>

/* Queries are ordered class by class (docs/maths.md §1.2): row r of the logits has label r / q.
 * Argmax takes the first maximum on ties, as torch.argmax does on CPU. */
static fewcl_status count_correct(fewcl_context *ctx, const fcl_tensor *logits, int n_query,
                                  fcl_step_result *r) {
    int rows = logits->shape[0], classes = logits->shape[1];
    float *host = malloc(logits->numel * sizeof *host);
    if (!host) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "logits [%d,%d]", rows, classes);
    fewcl_status s = fcl_tensor_download(ctx, logits, host);
    r->correct = 0;
    r->queries = rows;
    for (int i = 0; s == FEWCL_OK && i < rows; i++) {
        const float *row = host + (size_t)i * classes;
        int best = 0;
        for (int j = 1; j < classes; j++)
            if (row[j] > row[best]) best = j;
        r->correct += best == i / n_query;
    }
    free(host);
    return s;
}

static fewcl_status read_scalar(fewcl_context *ctx, const fcl_tensor *t, double *out) {
    *out = 0;
    if (!t) return FEWCL_OK;
    float v;
    FCL_TRY(fcl_tensor_download(ctx, t, &v));
    *out = v;
    return FEWCL_OK;
}

fewcl_status fcl_train_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                            const fcl_adamw_config *opt, fcl_step_result *r) {
    *r = (fcl_step_result){0};
    fcl_head_out out;
    fcl_arena_phase(ctx->arena, FCL_PHASE_TRAIN_STEP); /* a run following a plan rewinds */
    FCL_TRY(fcl_params_zero_grad(ctx, &m->params));
    FCL_TRY(fcl_model_forward(ctx, m, x, 1, &out));
    fewcl_status s = read_scalar(ctx, out.loss, &r->loss);
    if (s == FEWCL_OK) s = read_scalar(ctx, out.loss_ce, &r->loss_ce);
    if (s == FEWCL_OK) s = read_scalar(ctx, out.loss_var, &r->loss_var);
    if (s == FEWCL_OK) s = read_scalar(ctx, out.loss_cov, &r->loss_cov);
    if (s == FEWCL_OK) s = count_correct(ctx, out.logits, m->cfg.n_query, r);
    if (s == FEWCL_OK && !isfinite(r->loss))
        s = fcl_fail(FEWCL_ERR_NUMERIC,
                     "training loss is %g (cross-entropy %g, variance %g, covariance %g); the "
                     "parameters were not updated — try a lower learning rate",
                     r->loss, r->loss_ce, r->loss_var, r->loss_cov);
    if (s != FEWCL_OK) {
        fcl_model_release(ctx, m);
        return s;
    }
    FCL_TRY(fcl_model_backward(ctx, m));
    return fcl_params_adamw(ctx, &m->params, opt);
}

fewcl_status fcl_eval_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                           fcl_step_result *r) {
    *r = (fcl_step_result){0};
    fcl_head_out out;
    fcl_arena_phase(ctx->arena, FCL_PHASE_EVAL_STEP);
    fcl_backbone_no_backward(m->backbone);
    FCL_TRY(fcl_model_forward(ctx, m, x, 0, &out));
    fewcl_status s = count_correct(ctx, out.logits, m->cfg.n_query, r);
    fcl_model_release(ctx, m);
    return s;
}
