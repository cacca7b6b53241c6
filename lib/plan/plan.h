/* Planning: running the real schedule without the device. Between fcl_plan_begin and
 * fcl_plan_end the context's launches, GEMMs and host copies are skipped (downloads yield
 * zeros) and its allocations go to a tracing arena with the device's limits, so the live peak
 * the plan reports is, by construction, the peak a real run of the same schedule reaches. The
 * trace is then laid out (layout.h): the layout's footprint is what a run that follows it
 * reserves from the driver, to the byte. */
#ifndef FEWCL_PLAN_H
#define FEWCL_PLAN_H

#include "layout.h"

/* `limit` as FEWCL_MEM_LIMIT (0: the device's global memory); allocation past it fails as it
 * would on the device. Plans do not nest. */
fewcl_status fcl_plan_begin(fewcl_context *ctx, size_t limit);
/* The same for another device's memory: `device` overrides the global memory and largest
 * allocation the plan checks against (e.g. a 16 GiB NVIDIA card, which allows 25% per buffer). */
fewcl_status fcl_plan_begin_as(fewcl_context *ctx, const fcl_limits *device, size_t limit);
/* Restores the real arena; *stats receives the tracing arena's final statistics, with the
 * layout's footprint as `reserved` and `peak_reserved` (stats may be NULL). */
void fcl_plan_end(fewcl_context *ctx, fcl_arena_stats *stats);
/* fcl_plan_end that also returns the layout (layout may be NULL; else the caller frees it) and
 * fails (FEWCL_ERR_OUT_OF_MEMORY) when the footprint exceeds the plan's limit. */
fewcl_status fcl_plan_finish(fewcl_context *ctx, fcl_arena_stats *stats, fcl_layout **layout);

#endif
