/* Planning mode (see plan.h). */
#include "plan.h"

#include <string.h>

fewcl_status fcl_plan_begin(fewcl_context *ctx, size_t limit) {
    return fcl_plan_begin_as(ctx, &ctx->limits, limit);
}

fewcl_status fcl_plan_begin_as(fewcl_context *ctx, const fcl_limits *device, size_t limit) {
    if (ctx->dry_run) return fcl_fail(FEWCL_ERR_INTERNAL, "a plan is already running");
    fcl_arena *counting;
    FCL_TRY(fcl_arena_create(NULL, device, limit, &counting));
    ctx->real_arena = ctx->arena;
    ctx->arena = counting;
    ctx->dry_run = 1;
    return FEWCL_OK;
}

void fcl_plan_end(fewcl_context *ctx, fcl_arena_stats *stats) {
    if (!ctx->dry_run) return;
    if (stats) memcpy(stats, fcl_arena_stats_get(ctx->arena), sizeof *stats);
    fcl_arena_destroy(ctx->arena);
    ctx->arena = ctx->real_arena;
    ctx->real_arena = NULL;
    ctx->dry_run = 0;
}
