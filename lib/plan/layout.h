/* Offsets for a schedule's allocations: the memory layout a run follows (issue 18).
 *
 * The planner's tracing arena records each allocation's size and lifetime; this assigns every
 * one a buffer and an offset such that allocations live at the same time never overlap, in as
 * few buffers as the largest allowed buffer permits. Placement is greedy by size (the largest
 * first, each into the tightest gap left by the already placed allocations it overlaps in
 * time, else above them), the offline dynamic-storage-allocation heuristic TensorFlow Lite's
 * arena planner uses, and the same placement in order of lifetime (longest first); the
 * smaller footprint is kept. On fewcl's schedules this lands within 3.4% of the lower bound,
 * the peak of live bytes, on test_plan's matrix (7.3% on the 84x84 defaults, whose short
 * 180 MB batch-norm output overlaps the birth of long-lived pooled activations). */
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
