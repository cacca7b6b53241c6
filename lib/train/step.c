/* One training or evaluation episode (see step.h). */
#include "step.h"

#include <math.h>
#include <stdlib.h>

#include "../ops/batchnorm.h"

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

/* Zeroed gradients, the training forward and its results on the host; a loss that is not
 * finite fails with the model released. The caller has marked the step's start. */
static fewcl_status train_forward(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                                  fcl_step_result *r) {
    *r = (fcl_step_result){0};
    fcl_head_out out;
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
    if (s != FEWCL_OK) fcl_model_release(ctx, m);
    return s;
}

fewcl_status fcl_train_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                            const fcl_adamw_config *opt, fcl_step_result *r) {
    fcl_arena_phase(ctx->arena, FCL_PHASE_TRAIN_STEP); /* a run following a plan rewinds */
    FCL_TRY(train_forward(ctx, m, x, r));
    FCL_TRY(fcl_model_backward(ctx, m));
    return fcl_params_adamw(ctx, &m->params, opt);
}

fewcl_status fcl_grad_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, float *grad,
                           float *bn, fcl_step_result *r) {
    fcl_params *P = &m->params;
    size_t R = fcl_params_buffer_floats(P);
    fcl_tensor rec = {0};
    /* Each episode is a repeat of the planned ones, its record included (episode_plan.c). */
    fcl_arena_phase(ctx->arena, FCL_PHASE_TRAIN_STEP);
    if (R) FCL_TRY(fcl_tensor_alloc1(ctx, &rec, FCL_MEM_ACTIVATION, (int)R));
    P->bn_record = R ? &rec : NULL, P->bn_recorded = 0;
    fewcl_status s = train_forward(ctx, m, x, r);
    P->bn_record = NULL;
    /* Every buffer must have been recorded, or the replay would apply stale values. */
    if (s == FEWCL_OK && P->bn_recorded != R) {
        fcl_model_release(ctx, m);
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "backbone %s recorded %zu of its %zu BatchNorm statistics: it cannot train "
                     "with --meta-batch above 1",
                     fcl_backbone_name(m->cfg.backbone), P->bn_recorded, R);
    }
    if (s == FEWCL_OK) s = fcl_model_backward(ctx, m);
    if (s == FEWCL_OK) s = fcl_params_download_flat(ctx, P, FCL_FLAT_GRADS, grad);
    if (s == FEWCL_OK && R) s = fcl_tensor_download(ctx, &rec, bn);
    if (rec.numel) fcl_tensor_free(ctx, &rec);
    return s;
}

fewcl_status fcl_apply_step(fewcl_context *ctx, fcl_model *m, const float *g, const float *bn,
                            int M, const fcl_adamw_config *opt) {
    fcl_params *P = &m->params;
    size_t R = fcl_params_buffer_floats(P);
    FCL_TRY(fcl_params_upload_flat(ctx, P, FCL_FLAT_GRADS, g));
    if (R) {
        fcl_tensor recs;
        FCL_TRY(fcl_tensor_alloc1(ctx, &recs, FCL_MEM_ACTIVATION, (int)(R * (size_t)M)));
        fewcl_status s = fcl_tensor_upload(ctx, &recs, bn);
        /* Every buffer is a BatchNorm running statistic (params.h). */
        for (int i = 0; i < P->n && s == FEWCL_OK; i++)
            if (P->items[i].is_buffer)
                s = fcl_batchnorm_running_replay(ctx, &P->items[i].value, &recs,
                                                 fcl_params_buffer_offset(P, i), R, M,
                                                 FCL_BN_MOMENTUM);
        fcl_tensor_free(ctx, &recs);
        FCL_TRY(s);
    }
    return fcl_params_adamw(ctx, P, opt);
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
