/* Planning mode (see plan.h). */
#include "plan.h"

#include <string.h>

#include "../ops/conv_algo.h"
#include "../ops/gemm_host.h"

fewcl_status fcl_plan_begin(fewcl_context *ctx, size_t limit) {
    return fcl_plan_begin_as(ctx, &ctx->limits, limit);
}

fewcl_status fcl_plan_begin_as(fewcl_context *ctx, const fcl_limits *device, size_t limit) {
    if (ctx->dry_run) return fcl_fail(FEWCL_ERR_INTERNAL, "a plan is already running");
    fcl_arena *tracing;
    FCL_TRY(fcl_arena_create_tracing(device, limit, &tracing));
    ctx->real_arena = ctx->arena;
    ctx->arena = tracing;
    ctx->dry_run = 1;
    fcl_conv_algo_forget_unfound(ctx); /* the shapes this plan meets untimed, from now on */
    /* The schedule takes the planned device's paths: its kernel variants and, for a GPU
     * (a device profile), CLBlast's GEMMs and the OpenCL convolution with their workspaces. */
    ctx->own_limits = ctx->limits;
    ctx->own_gemm_path = ctx->gemm_path;
    ctx->limits = *device;
    if (device->profile && !ctx->own_limits.profile) ctx->gemm_path = FCL_GEMM_CLBLAST;
    return FEWCL_OK;
}

/* report 0: a plan that already failed keeps its message. */
static fewcl_status finish(fewcl_context *ctx, fcl_arena_stats *stats, fcl_layout **layout,
                           int report) {
    if (layout) *layout = NULL;
    if (!ctx->dry_run) return fcl_fail(FEWCL_ERR_INTERNAL, "no plan is running");
    fcl_arena *tracing = ctx->arena;
    ctx->arena = ctx->real_arena;
    ctx->real_arena = NULL;
    ctx->dry_run = 0;
    ctx->limits = ctx->own_limits;
    ctx->gemm_path = ctx->own_gemm_path;
    long n;
    const fcl_alloc_record *rec = fcl_arena_trace(tracing, &n);
    fcl_layout *l = NULL;
    fewcl_status s =
        fcl_layout_build(rec, n, fcl_arena_marks(tracing), fcl_arena_buffer_cap(tracing), &l);
    fcl_arena_stats st = *fcl_arena_stats_get(tracing);
    if (s == FEWCL_OK) st.reserved = st.peak_reserved = l->footprint;
    if (stats) *stats = st;
    size_t limit = fcl_arena_limit(tracing);
    if (s == FEWCL_OK && l->footprint > limit && report) {
        char b[3][32];
        s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                     "device memory: the planned buffers take %s (live peak %s), over the %s "
                     "budget",
                     fcl_format_bytes((double)l->footprint, b[0], 32),
                     fcl_format_bytes((double)st.peak, b[1], 32),
                     fcl_format_bytes((double)limit, b[2], 32));
    }
    fcl_arena_destroy(tracing);
    if (s == FEWCL_OK && layout)
        *layout = l;
    else
        fcl_layout_free(l);
    return s;
}

fewcl_status fcl_plan_finish(fewcl_context *ctx, fcl_arena_stats *stats, fcl_layout **layout) {
    return finish(ctx, stats, layout, 1);
}

void fcl_plan_end(fewcl_context *ctx, fcl_arena_stats *stats) {
    if (ctx->dry_run) finish(ctx, stats, NULL, 0);
}
