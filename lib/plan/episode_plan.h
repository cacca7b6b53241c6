/* Plans of whole episodes (see plan.h for the mechanism). */
#ifndef FEWCL_PLAN_EPISODE_H
#define FEWCL_PLAN_EPISODE_H

#include "../nn/config.h"
#include "plan.h"

/* The trainer's own schedule (lib/train/trainer.c), with the same calls in the same order.
 * `training` is 0 for evaluation, else the meta-batch M (episodes per optimiser step), or
 * negative for a replica's share (fcl_replica_schedule).
 * Training builds the model and its episode input, runs two training steps and one validation
 * episode with its own input beside the training one. M = 1: two fcl_train_step calls (the
 * second with the AdamW moments live, as in every later step); M > 1: the moments allocated
 * first, then per step min(M, 2) fcl_grad_step calls and one fcl_apply_step. Evaluation builds
 * the model and its input and runs one evaluation step (fcl_eval_step). Everything is freed at
 * the end. The other functions take `training` alike. */
fewcl_status fcl_episode_schedule(fewcl_context *ctx, const fcl_model_config *cfg, int training);
/* `training` of what a replica other than the trainer's own context runs (lib/train/replicas.h)
 * in a run of meta-batch M: with M > 1, -M: its model copy, its episode input, two
 * fcl_grad_step calls (its block of a step, repeated by every step; no optimiser: the trainer
 * updates) and a validation episode with its own input beside; with M = 1 (it only validates)
 * or for a test over devices (M = 0), 0: the evaluation schedule. */
int fcl_replica_schedule(int meta_batch);
/* The same in planning mode: *stats holds the live peak (total and per category) and, as
 * `reserved`, the footprint of its layout. Fails as the device would (the footprint over the
 * limit, or an allocation over the largest allocation the device allows); `limit` 0 means
 * the device's global memory. */
fewcl_status fcl_episode_plan(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                              size_t limit, fcl_arena_stats *stats);
/* The same against another device's global memory and largest allocation. */
fewcl_status fcl_episode_plan_as(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                 const fcl_limits *device, size_t limit, fcl_arena_stats *stats);
/* fcl_episode_plan that also returns the layout a run follows (the caller frees it). With
 * the convolution find step on, the shapes the plan meets untimed are timed first, for real
 * on the context's device, and the plan is made again with those choices: the plan a run
 * follows is the run (lib/ops/conv_find.h). */
fewcl_status fcl_episode_layout(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                                size_t limit, fcl_arena_stats *stats, fcl_layout **layout);

#endif
