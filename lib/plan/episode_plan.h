/* Plans of whole episodes (see plan.h for the mechanism). */
#ifndef FEWCL_PLAN_EPISODE_H
#define FEWCL_PLAN_EPISODE_H

#include "../nn/config.h"
#include "plan.h"

/* Builds the model, runs one evaluation episode, or two training steps (forward, backward,
 * AdamW: the second with the optimiser state live, as in every later step), and frees
 * everything. */
fewcl_status fcl_episode_schedule(fewcl_context *ctx, const fcl_model_config *cfg, int training);
/* The same in planning mode: *stats holds the peak (total and per category). Fails as the
 * device would (an allocation over the limit or over the largest allocation the device
 * allows); `limit` 0 means the device's global memory. */
fewcl_status fcl_episode_plan(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                              size_t limit, fcl_arena_stats *stats);
/* The same against another device's global memory and largest allocation. */
fewcl_status fcl_episode_plan_as(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                 const fcl_limits *device, size_t limit, fcl_arena_stats *stats);

#endif
