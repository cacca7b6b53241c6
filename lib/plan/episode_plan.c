/* The plan of one training episode (model build, forward, backward, AdamW step) and of one
 * evaluation episode: the real schedule, run in planning mode. */
#include "episode_plan.h"

#include "../nn/model.h"

/* The schedule, identical in planning and in a real run (which is what makes plans exact). */
fewcl_status fcl_episode_schedule(fewcl_context *ctx, const fcl_model_config *cfg, int training) {
    fcl_model *m;
    FCL_TRY(fcl_model_create(ctx, cfg, 1, &m));
    int shape[4] = {cfg->n_way * (cfg->k_shot + cfg->n_query), 3, cfg->image_size, cfg->image_size};
    fcl_tensor x = {0};
    fcl_head_out out;
    fewcl_status s = fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, shape);
    if (s == FEWCL_OK) s = fcl_fill(ctx, &x, 0.5f);
    /* Training runs two steps: from the second on, the AdamW moments (allocated by the first
     * step's update) are live through forward and backward, which is training's steady state. */
    for (int step = 0; step < (training ? 2 : 1) && s == FEWCL_OK; step++) {
        s = fcl_model_forward(ctx, m, &x, training, &out);
        if (s == FEWCL_OK && training) {
            s = fcl_model_backward(ctx, m);
            fcl_adamw_config adam = fcl_adamw_defaults();
            if (s == FEWCL_OK) s = fcl_params_adamw(ctx, &m->params, &adam);
        } else if (s == FEWCL_OK) {
            fcl_model_release(ctx, m);
        }
    }
    if (x.numel) fcl_tensor_free(ctx, &x);
    fcl_model_destroy(ctx, m);
    return s;
}

fewcl_status fcl_episode_plan(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                              size_t limit, fcl_arena_stats *stats) {
    return fcl_episode_plan_as(ctx, cfg, training, &ctx->limits, limit, stats);
}

fewcl_status fcl_episode_plan_as(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                 const fcl_limits *device, size_t limit, fcl_arena_stats *stats) {
    FCL_TRY(fcl_plan_begin_as(ctx, device, limit));
    fewcl_status s = fcl_episode_schedule(ctx, cfg, training);
    fcl_plan_end(ctx, stats);
    return s;
}
