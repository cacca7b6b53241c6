/* The convolution's algorithms, in one table (conv_algo.c), and the one place that chooses
 * among them.
 *
 * Each algorithm says, for a call's shapes (fcl_conv_geom) and a direction, whether it can
 * run (eligible), how many arena bytes of workspace it takes (workspace), and runs (run).
 * Algorithms belong to a path: the OpenCL kernels (conv.c: im2col; conv_fft.c: fft, through
 * clFFT; conv_implicit.c: implicit; conv_winograd_cl.c: winograd2, winograd4) or the host
 * path of CPU devices
 * (conv_host.c: im2col, shifted; conv_winograd_host.c, conv_winograd3_host.c,
 * conv_winograd4_host.c: winograd2, winograd3, winograd4 = F(2x2,3x3), F(3x3,3x3),
 * F(4x4,3x3); conv_batched_host.c: batched; conv_taps_host.c: taps); a call only considers
 * its own path's.
 *
 * The choice, per call and direction (fcl_conv_algo_choose):
 *   FEWCL_CONV_ALGO=a[,b...]  the first of the listed algorithms eligible for the call; an
 *                             unknown name, or none eligible, is an error naming the choices;
 *   otherwise the find step (conv_find.c): each eligible algorithm timed once per (device,
 *   driver, shape, direction) and the fastest kept on disk; FEWCL_FIND=off uses the heuristic
 *   below instead, FEWCL_FIND=search times again and replaces what was kept.
 * The heuristic (FEWCL_FIND=off, and what a plan assumes for a shape not yet found):
 *   host path: Winograd F(2x2,3x3) where eligible and its workspace is no larger than
 *   im2col's, else shifted views, else im2col;
 *   OpenCL path: im2col. */
#ifndef FEWCL_OPS_CONV_ALGO_H
#define FEWCL_OPS_CONV_ALGO_H

#include "conv_impl.h"

typedef enum fcl_conv_dir {
    FCL_CONV_FORWARD,     /* y = conv(x, W) + b */
    FCL_CONV_DATA,        /* dx = convᵀ(dy, W) */
    FCL_CONV_WEIGHTS,     /* dW += dy ⋆ x */
    FCL_CONV_DIRS
} fcl_conv_dir;

/* "forward", "data", "weights". */
const char *fcl_conv_dir_name(fcl_conv_dir dir);

typedef struct fcl_conv_algo {
    const char *name; /* what FEWCL_CONV_ALGO and the find database call it */
    int host;         /* 1: the host path's, 0: the OpenCL path's */
    int (*eligible)(const fcl_conv_geom *g, fcl_conv_dir dir);
    /* Arena bytes the run allocates (one workspace tensor; 0: none). */
    size_t (*workspace)(const fcl_conv_geom *g, fcl_conv_dir dir);
    /* Forward when a->y is set; else backward for a->dx and/or a->dw (a->db: the bias
     * gradient too, when given). The caller has checked eligibility for each direction. */
    fewcl_status (*run)(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a);
} fcl_conv_algo;

/* The table: every algorithm of both paths, NULL-terminated. */
const fcl_conv_algo *const *fcl_conv_algos(void);

/* The algorithm `name` of the given path, or NULL. */
const fcl_conv_algo *fcl_conv_algo_find(const char *name, int host);

/* Whether `a` may run the call in direction `dir` (its path and its own test). */
int fcl_conv_algo_eligible(const fcl_conv_algo *a, const fcl_conv_geom *g, fcl_conv_dir dir);

/* The algorithm for this call and direction (see the top of this file); `a`, the call's
 * tensors, serve the find step's timing runs. */
fewcl_status fcl_conv_algo_choose(fewcl_context *ctx, const fcl_conv_geom *g, fcl_conv_dir dir,
                                  const fcl_conv_args *a, const fcl_conv_algo **out);

/* Forces the algorithms `names` ("a,b": the first eligible one, per call), as
 * FEWCL_CONV_ALGO does; NULL or "" returns the choice to the find step or the heuristic. */
fewcl_status fcl_conv_algo_force(fewcl_context *ctx, const char *names);

/* The convolution shapes plans on this context met since the last plan began that the find
 * step has not timed (0 with FEWCL_FIND=off or forced algorithms): a plan with any is an
 * upper bound, not the run (conv_find.h). */
int fcl_conv_algo_unfound(const fewcl_context *ctx);
void fcl_conv_algo_forget_unfound(fewcl_context *ctx);
/* Times those shapes for real (conv_find.h: fcl_conv_find_unfound); *timed: how many got a
 * choice. Not in a dry run. */
fewcl_status fcl_conv_algo_find_unfound(fewcl_context *ctx, int *timed);

/* The find step's choices of this context (its database: read from disk, timed or imported)
 * as text (caller frees), and back into another context, which then runs those shapes with
 * those algorithms: so that replicas on several contexts compute the same bits whatever each
 * one's timing would have picked (lib/train/replicas.c). Choices under FEWCL_CONV_ALGO and
 * FEWCL_FIND=off take no timing and need no import. */
fewcl_status fcl_conv_algo_export(fewcl_context *ctx, char **text);
fewcl_status fcl_conv_algo_import(fewcl_context *ctx, const char *text);

/* The heuristic's choice (FEWCL_FIND=off). */
const fcl_conv_algo *fcl_conv_algo_heuristic(const fcl_conv_geom *g, fcl_conv_dir dir);

/* The convolutions this context ran, one line each in order of first use:
 * "<find database key>\t<algorithm>\t<how chosen>\n" (caller frees): what a training run
 * records in its run folder (conv-algorithms.txt), so that its numbers can be traced to the
 * algorithms that made them. */
fewcl_status fcl_conv_algo_used(fewcl_context *ctx, char **text);

/* The algorithm each direction last ran with on this context (NULL before any): for tests
 * and `fewcl bench --conv`. */
const fcl_conv_algo *fcl_conv_algo_last(const fewcl_context *ctx, fcl_conv_dir dir);

#endif
