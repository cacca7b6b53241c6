/* The fixed reduction of a meta-batch's per-episode gradients (docs/maths.md §7.1): a dyadic
 * tree over the episode index, computed by a binary-counter stack, so that the sum is the same
 * float32 bits however the M episodes are split into contiguous blocks (one worker per block,
 * each pushing its own leaves, then a coordinator pushing the workers' nodes in episode order).
 *
 *     fcl_tree t;
 *     FCL_TRY(fcl_tree_init(&t, n));
 *     for (long i = 0; i < M; i++) {
 *         float *g = fcl_tree_buffer(&t);           // fill with episode i's gradient
 *         FCL_TRY(fcl_tree_push(&t, i, 1, g));        // the tree owns g from here
 *     }
 *     FCL_TRY(fcl_tree_finish(&t, M, mean));         // Σ in tree order, / M
 *     fcl_tree_free(&t);
 *
 * Nodes (lo, len): len a power of two, lo % len == 0; node(lo, 1) = g_lo and
 * node(lo, 2L) = node(lo, L) + node(lo + L, L), element-wise float32. A push merges the top two
 * nodes while they are siblings; finish folds what remains (the canonical dyadic cover of the
 * pushed range) from the right. */
#ifndef FEWCL_TRAIN_REDUCE_H
#define FEWCL_TRAIN_REDUCE_H

#include <stddef.h>

#include "fewcl/fewcl.h"

#define FCL_TREE_DEPTH 64

typedef struct fcl_tree_node {
    long lo, len;
    float *v; /* n floats, owned by the tree */
} fcl_tree_node;

typedef struct fcl_tree {
    size_t n;                             /* floats per vector */
    fcl_tree_node stack[FCL_TREE_DEPTH];  /* bottom first */
    int top;                              /* nodes on the stack */
    long first, end;                      /* the range pushed so far: [first, end) */
    int max_top;                          /* the deepest the stack has been (tests) */
    float *free_list[FCL_TREE_DEPTH + 2]; /* vectors to reuse */
    int n_free;
} fcl_tree;

fewcl_status fcl_tree_init(fcl_tree *t, size_t n);
/* A vector of n floats for the caller to fill and push (reused, or allocated once); NULL when
 * out of memory (the message is set). */
float *fcl_tree_buffer(fcl_tree *t);
/* Pushes node (lo, len) with its values v (taken over: from fcl_tree_buffer, or malloc'ed).
 * The node must be dyadic (len a power of two, lo % len == 0) and start where the pushed range
 * ends: anything else is FEWCL_ERR_INTERNAL (a coordinator's bug, not a user's). */
fewcl_status fcl_tree_push(fcl_tree *t, long lo, long len, float *v);
/* The nodes on the stack, bottom first (a worker's cover of its block, for sending on). */
int fcl_tree_nodes(const fcl_tree *t, const fcl_tree_node **nodes);
/* out = the right fold of the stack, divided by M when M > 1 (an IEEE division); the pushed
 * range must be [first, first + M) for the stack's first lo. The stack is emptied. */
fewcl_status fcl_tree_finish(fcl_tree *t, long M, float *out);
/* Empties the stack, keeping the vectors for reuse (the next step). */
void fcl_tree_clear(fcl_tree *t);
void fcl_tree_free(fcl_tree *t);

#endif
