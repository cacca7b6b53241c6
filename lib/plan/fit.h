/* Choosing settings that fit (docs/spec.md §8, `fewcl plan --fit`): the cheapest change to a
 * configuration whose training (or evaluation) episode fits a memory budget, found by planning
 * candidates in order of cost:
 *   1. as given;
 *   2. the low-rank Mahalanobis path (exact: no D′×D′ buffer, same results to 1e-4);
 *   3. gradient checkpointing of the attention blocks, then the backbone stages, then both
 *      (same results; the recomputation costs time);
 *   4. a smaller projection (reduced_dim halved, down to 64; changes the model), with 2–3.
 * Every candidate is planned with the real schedule, so "fits" is exact. */
#ifndef FEWCL_PLAN_FIT_H
#define FEWCL_PLAN_FIT_H

#include "../nn/config.h"
#include "plan.h"

typedef struct fcl_fit_result {
    fcl_model_config cfg;     /* the chosen configuration */
    fcl_arena_stats stats;    /* its plan */
    int fits;                 /* 0: nothing tried fits (cfg/stats are the last candidate) */
    int tried;                /* candidates planned */
    char changes[256];        /* the flags that differ from the input ("" when none) */
    char first_failure[1024]; /* why the configuration as given does not fit ("" if it does) */
} fcl_fit_result;

fewcl_status fcl_plan_fit(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                          const fcl_limits *device, size_t limit, fcl_fit_result *r);

#endif
