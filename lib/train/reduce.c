/* The dyadic tree of a meta-batch's gradients (see reduce.h). */
#include "reduce.h"

#include <stdlib.h>
#include <string.h>

#include "../runtime/runtime.h"

fewcl_status fcl_tree_init(fcl_tree *t, size_t n) {
    memset(t, 0, sizeof *t);
    t->n = n;
    return FEWCL_OK;
}

float *fcl_tree_buffer(fcl_tree *t) {
    if (t->n_free) return t->free_list[--t->n_free];
    float *v = malloc((t->n ? t->n : 1) * sizeof *v);
    if (!v) fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a gradient vector of %zu floats", t->n);
    return v;
}

static void recycle(fcl_tree *t, float *v) {
    if (t->n_free < (int)(sizeof t->free_list / sizeof t->free_list[0]))
        t->free_list[t->n_free++] = v;
    else
        free(v);
}

/* a += b, element-wise: distinct vectors (restrict lets the compiler vectorise). */
static void add_into(float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
}

/* Two nodes make their parent: equal lengths, adjacent, the lower one aligned to twice that. */
static int siblings(const fcl_tree_node *lower, const fcl_tree_node *upper) {
    return lower->len == upper->len && lower->lo + lower->len == upper->lo &&
           lower->lo % (2 * lower->len) == 0;
}

fewcl_status fcl_tree_push(fcl_tree *t, long lo, long len, float *v) {
    if (len < 1 || (len & (len - 1)) || lo < 0 || lo % len || (t->top && lo != t->end)) {
        recycle(t, v);
        return fcl_fail(FEWCL_ERR_INTERNAL,
                        "gradient tree: node (%ld, %ld) is not dyadic or does not follow the "
                        "range pushed so far [%ld, %ld)",
                        lo, len, t->first, t->end);
    }
    if (t->top == FCL_TREE_DEPTH) {
        recycle(t, v);
        return fcl_fail(FEWCL_ERR_INTERNAL, "gradient tree: more than %d nodes", FCL_TREE_DEPTH);
    }
    if (!t->top) t->first = lo;
    t->end = lo + len;
    t->stack[t->top++] = (fcl_tree_node){lo, len, v};
    if (t->top > t->max_top) t->max_top = t->top;
    while (t->top >= 2 && siblings(&t->stack[t->top - 2], &t->stack[t->top - 1])) {
        fcl_tree_node *lower = &t->stack[t->top - 2], *upper = &t->stack[t->top - 1];
        add_into(lower->v, upper->v, t->n);
        lower->len *= 2;
        recycle(t, upper->v);
        t->top--;
    }
    return FEWCL_OK;
}

int fcl_tree_nodes(const fcl_tree *t, const fcl_tree_node **nodes) {
    *nodes = t->stack;
    return t->top;
}

void fcl_tree_clear(fcl_tree *t) {
    while (t->top)
        recycle(t, t->stack[--t->top].v);
}

fewcl_status fcl_tree_finish(fcl_tree *t, long M, float *out) {
    if (!t->top || t->end - t->first != M) {
        long pushed = t->top ? t->end - t->first : 0;
        fcl_tree_clear(t);
        return fcl_fail(FEWCL_ERR_INTERNAL, "gradient tree: %ld episodes pushed, %ld expected",
                        pushed, M);
    }
    /* G = N_0 + (N_1 + (… + N_last)): the right fold of the cover. */
    memcpy(out, t->stack[t->top - 1].v, t->n * sizeof *out);
    for (int k = t->top - 2; k >= 0; k--)
        add_into(out, t->stack[k].v, t->n); /* N_k + (…): float addition commutes exactly */
    if (M > 1)
        for (size_t i = 0; i < t->n; i++)
            out[i] /= (float)M;
    fcl_tree_clear(t);
    return FEWCL_OK;
}

void fcl_tree_free(fcl_tree *t) {
    fcl_tree_clear(t);
    while (t->n_free)
        free(t->free_list[--t->n_free]);
}
