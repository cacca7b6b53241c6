/* The plan of the trainer's schedule and of one evaluation episode: the real schedule, run in
 * planning mode. */
#include "episode_plan.h"

#include "../nn/model.h"
#include "../ops/conv_algo.h"
#include "../train/step.h"

#include <stdlib.h>

int fcl_replica_schedule(int meta_batch) { return meta_batch > 1 ? -meta_batch : 0; }

static fewcl_status input_alloc(fewcl_context *ctx, const fcl_model_config *cfg, fcl_tensor *x) {
    int shape[4] = {cfg->n_way * (cfg->k_shot + cfg->n_query), 3, cfg->image_size, cfg->image_size};
    FCL_TRY(fcl_tensor_alloc(ctx, x, FCL_MEM_ACTIVATION, 4, shape));
    return fcl_fill(ctx, x, 0.5f);
}

/* A meta-batch of M episodes per step (trainer.c's meta_step): the moments allocated first,
 * then two steps of min(M, 2) episodes each and the update. Every episode allocates and frees
 * the same tensors over the same live set, so a run's later episodes follow the last planned
 * one (fcl_arena_phase rewinds to it) and its updates the planned update. */
static fewcl_status meta_steps(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int M,
                               fcl_step_result *r) {
    size_t n_grad = fcl_params_flat_count(&m->params, FCL_FLAT_GRADS);
    size_t R = fcl_params_buffer_floats(&m->params);
    float *grad = calloc(n_grad ? n_grad : 1, sizeof *grad);
    float *bn = calloc(R * (size_t)M + 1, sizeof *bn);
    fewcl_status s = grad && bn ? fcl_params_alloc_moments(ctx, &m->params)
                                : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "meta-batch host vectors");
    fcl_adamw_config adam = fcl_adamw_defaults();
    for (int step = 0; step < 2 && s == FEWCL_OK; step++) {
        for (int e = 0; e < (M < 2 ? M : 2) && s == FEWCL_OK; e++)
            s = fcl_grad_step(ctx, m, x, grad, bn + (size_t)e * R, r);
        if (s == FEWCL_OK) s = fcl_apply_step(ctx, m, grad, bn, M, &adam);
    }
    free(bn);
    free(grad);
    return s;
}

/* A replica's share of meta-batch steps (trainer.c's meta_share): its block's episodes, each
 * gradient from zero and downloaded; the trainer reduces and updates. */
static fewcl_status replica_steps(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x,
                                  fcl_step_result *r) {
    size_t n_grad = fcl_params_flat_count(&m->params, FCL_FLAT_GRADS);
    size_t R = fcl_params_buffer_floats(&m->params);
    float *grad = calloc(n_grad ? n_grad : 1, sizeof *grad);
    float *bn = calloc(R + 1, sizeof *bn);
    fewcl_status s =
        grad && bn ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "meta-batch host vectors");
    for (int e = 0; e < 2 && s == FEWCL_OK; e++)
        s = fcl_grad_step(ctx, m, x, grad, bn, r);
    free(bn);
    free(grad);
    return s;
}

/* An evaluation's episode input: marked, so that a run that evaluates again (validation every
 * epoch) rewinds to its planned place whatever ran in between. */
static fewcl_status eval_input_alloc(fewcl_context *ctx, const fcl_model_config *cfg,
                                     fcl_tensor *x) {
    fcl_arena_phase(ctx->arena, FCL_PHASE_EVAL_INPUT);
    return input_alloc(ctx, cfg, x);
}

/* The schedule, identical in planning and in a real run (which is what makes plans exact). */
fewcl_status fcl_episode_schedule(fewcl_context *ctx, const fcl_model_config *cfg, int training) {
    fcl_model *m;
    FCL_TRY(fcl_model_create(ctx, cfg, 1, &m));
    fcl_tensor x = {0}, val = {0};
    fcl_step_result r;
    fewcl_status s = training ? input_alloc(ctx, cfg, &x) : eval_input_alloc(ctx, cfg, &x);
    if (training < 0 && s == FEWCL_OK) {
        s = replica_steps(ctx, m, &x, &r);
    } else if (training == 1) {
        fcl_adamw_config adam = fcl_adamw_defaults();
        for (int step = 0; step < 2 && s == FEWCL_OK; step++)
            s = fcl_train_step(ctx, m, &x, &adam, &r);
    } else if (training > 1 && s == FEWCL_OK) {
        s = meta_steps(ctx, m, &x, training, &r);
    }
    if (training) {
        /* Validation: its own input while the training input stays (trainer.c's evaluate_with). */
        if (s == FEWCL_OK) s = eval_input_alloc(ctx, cfg, &val);
        if (s == FEWCL_OK) s = fcl_eval_step(ctx, m, &val, &r);
    } else if (s == FEWCL_OK) {
        s = fcl_eval_step(ctx, m, &x, &r);
    }
    if (val.numel) fcl_tensor_free(ctx, &val);
    if (x.numel) fcl_tensor_free(ctx, &x);
    fcl_model_destroy(ctx, m);
    return s;
}

fewcl_status fcl_episode_plan(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                              size_t limit, fcl_arena_stats *stats) {
    return fcl_episode_plan_as(ctx, cfg, training, &ctx->limits, limit, stats);
}

static fewcl_status plan_as(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                            const fcl_limits *device, size_t limit, fcl_arena_stats *stats,
                            fcl_layout **layout) {
    FCL_TRY(fcl_plan_begin_as(ctx, device, limit));
    fewcl_status s = fcl_episode_schedule(ctx, cfg, training);
    if (s != FEWCL_OK) {
        fcl_plan_end(ctx, stats);
        return s;
    }
    return fcl_plan_finish(ctx, stats, layout);
}

fewcl_status fcl_episode_plan_as(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                 const fcl_limits *device, size_t limit, fcl_arena_stats *stats) {
    return plan_as(ctx, cfg, training, device, limit, stats, NULL);
}

/* Rounds of "plan, time the convolution shapes it met untimed" before the plan is the run's;
 * one round meets every shape unless a plan stops early (a failure part way). */
#define FIND_ROUNDS 4

fewcl_status fcl_episode_layout(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                size_t limit, fcl_arena_stats *stats, fcl_layout **layout) {
    /* A layout is for running: the find step times first what the plan met untimed, then the
     * plan is made again with the algorithms the run will take, so the run follows it
     * allocation for allocation (conv_find.h; an upper-bound plan would leave the run's own
     * find trials and its choices to land where the plan had others). */
    for (int round = 1;; round++) {
        fewcl_status s = plan_as(ctx, cfg, training, &ctx->limits, limit, stats, layout);
        if (fcl_conv_algo_unfound(ctx) == 0 || round == FIND_ROUNDS) return s;
        if (s == FEWCL_OK) fcl_layout_free(*layout), *layout = NULL;
        int timed;
        FCL_TRY(fcl_conv_algo_find_unfound(ctx, &timed));
        if (!timed) return plan_as(ctx, cfg, training, &ctx->limits, limit, stats, layout);
    }
}
