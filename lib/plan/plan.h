/* Planning: running the real schedule without the device. Between fcl_plan_begin and
 * fcl_plan_end the context's launches, GEMMs and host copies are skipped (downloads yield
 * zeros) and its allocations go to a counting arena with the device's limits, so the peak the
 * plan reports is, by construction, the peak a real run of the same schedule reaches. */
#ifndef FEWCL_PLAN_H
#define FEWCL_PLAN_H

#include "../runtime/arena.h"

/* `limit` as FEWCL_MEM_LIMIT (0: the device's global memory); allocation past it fails as it
 * would on the device. Plans do not nest. */
fewcl_status fcl_plan_begin(fewcl_context *ctx, size_t limit);
/* The same for another device's memory: `device` overrides the global memory and largest
 * allocation the plan checks against (e.g. a 16 GiB NVIDIA card, which allows 25% per buffer). */
fewcl_status fcl_plan_begin_as(fewcl_context *ctx, const fcl_limits *device, size_t limit);
/* Restores the real arena; *stats receives the counting arena's final statistics. */
void fcl_plan_end(fewcl_context *ctx, fcl_arena_stats *stats);

#endif
