/* Greedy-by-size offset assignment (see layout.h). */
#include "layout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The sort key of one allocation (qsort has no context argument, so the key is copied). */
typedef struct sort_key {
    size_t size;
    long birth, life, index;
} sort_key;

/* Largest first; equal sizes in order of birth, so the layout is a pure function of the trace. */
static int by_size_desc(const void *pa, const void *pb) {
    const sort_key *a = pa, *b = pb;
    if (a->size != b->size) return a->size < b->size ? 1 : -1;
    return a->birth < b->birth ? -1 : a->birth > b->birth;
}

/* Longest-lived first, then by size: nested lifetimes (activations saved in forward, freed in
 * reverse in backward) then stack up like a call stack, the short-lived workspaces filling
 * gaps. */
static int by_life_desc(const void *pa, const void *pb) {
    const sort_key *a = pa, *b = pb;
    if (a->life != b->life) return a->life < b->life ? 1 : -1;
    return by_size_desc(pa, pb);
}

/* Orders tried; the layout with the smaller footprint is kept (the first on a tie). */
static int (*const orders[])(const void *, const void *) = {by_size_desc, by_life_desc};
#define N_ORDERS ((int)(sizeof orders / sizeof *orders))

static int overlap_in_time(const fcl_alloc_record *a, const fcl_alloc_record *b) {
    return a->birth < b->death && b->birth < a->death;
}

/* The allocations placed in one buffer, kept sorted by offset. */
typedef struct placed_list {
    long *idx;
    long n;
    size_t extent; /* the highest end placed */
} placed_list;

/* The best offset for `r` in buffer `pl` (tightest gap, else above the highest overlapping
 * allocation); SIZE_MAX when it would end past `cap`. */
static size_t best_offset(const placed_list *pl, const fcl_alloc_record *rec, const size_t *off,
                          const fcl_alloc_record *r, size_t cap) {
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, top = 0;
    for (long k = 0; k < pl->n; k++) {
        long j = pl->idx[k];
        if (!overlap_in_time(&rec[j], r)) continue;
        if (off[j] >= top && off[j] - top >= r->size && off[j] - top < best_gap) {
            best_gap = off[j] - top;
            best = top;
        }
        if (off[j] + rec[j].size > top) top = off[j] + rec[j].size;
    }
    if (best == SIZE_MAX && top + r->size <= cap) best = top;
    return best;
}

static void insert_sorted(placed_list *pl, long i, const size_t *off) {
    long at = pl->n;
    while (at > 0 && off[pl->idx[at - 1]] > off[i])
        at--;
    memmove(pl->idx + at + 1, pl->idx + at, (size_t)(pl->n - at) * sizeof *pl->idx);
    pl->idx[at] = i;
    pl->n++;
}

/* Places every allocation in the given order: offsets, buffers and the buffers' bytes. */
static fewcl_status place_all(const fcl_alloc_record *rec, long n, sort_key *order,
                              int (*cmp)(const void *, const void *), size_t buffer_cap,
                              size_t *off, int *buf, size_t **extents, int *n_buffers) {
    placed_list *lists = NULL;
    int n_lists = 0;
    fewcl_status s = FEWCL_OK;
    qsort(order, (size_t)n, sizeof *order, cmp);
    for (long k = 0; s == FEWCL_OK && k < n; k++) {
        long i = order[k].index;
        int b = 0;
        size_t at = SIZE_MAX;
        for (; b < n_lists; b++)
            if ((at = best_offset(&lists[b], rec, off, &rec[i], buffer_cap)) != SIZE_MAX) break;
        if (b == n_lists) { /* a new buffer */
            if (rec[i].size > buffer_cap) {
                s = fcl_fail(FEWCL_ERR_INTERNAL, "layout: %zu bytes above the %zu-byte buffer",
                             rec[i].size, buffer_cap);
                break;
            }
            placed_list *grown = realloc(lists, (size_t)(n_lists + 1) * sizeof *grown);
            long *idx = malloc((size_t)n * sizeof *idx);
            if (grown) lists = grown;
            if (!grown || !idx) {
                free(idx);
                s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory layout");
                break;
            }
            lists[n_lists++] = (placed_list){idx, 0, 0};
            at = 0;
        }
        off[i] = at;
        buf[i] = b;
        insert_sorted(&lists[b], i, off);
        if (at + rec[i].size > lists[b].extent) lists[b].extent = at + rec[i].size;
    }
    *extents = s == FEWCL_OK ? malloc((size_t)(n_lists ? n_lists : 1) * sizeof **extents) : NULL;
    if (s == FEWCL_OK && !*extents) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory layout");
    for (int b = 0; b < n_lists; b++) {
        if (s == FEWCL_OK) (*extents)[b] = lists[b].extent;
        free(lists[b].idx);
    }
    free(lists);
    *n_buffers = n_lists;
    return s;
}

static size_t sum(const size_t *v, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += v[i];
    return total;
}

fewcl_status fcl_layout_build(const fcl_alloc_record *rec, long n, const fcl_phase_marks *marks,
                              size_t buffer_cap, fcl_layout **out) {
    *out = NULL;
    size_t m = (size_t)(n ? n : 1);
    fcl_layout *l = calloc(1, sizeof *l);
    sort_key *order = malloc(m * sizeof *order);
    size_t *off = malloc(m * sizeof *off);
    int *buf = malloc(m * sizeof *buf);
    fewcl_status s = FEWCL_OK;
    if (!l || !order || !off || !buf) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory layout");
    if (s == FEWCL_OK) l->at = malloc(m * sizeof *l->at);
    if (s == FEWCL_OK && !l->at) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory layout");
    for (int o = 0; s == FEWCL_OK && o < N_ORDERS; o++) {
        for (long i = 0; i < n; i++)
            order[i] = (sort_key){rec[i].size, rec[i].birth, rec[i].death - rec[i].birth, i};
        size_t *extents;
        int n_buffers;
        s = place_all(rec, n, order, orders[o], buffer_cap, off, buf, &extents, &n_buffers);
        if (s != FEWCL_OK) break;
        size_t footprint = sum(extents, n_buffers);
        if (o > 0 && footprint >= l->footprint) {
            free(extents);
            continue;
        }
        free(l->buffer_bytes);
        l->buffer_bytes = extents;
        l->n_buffers = n_buffers;
        l->footprint = footprint;
        l->n = n;
        for (long i = 0; i < n; i++)
            l->at[i] = (fcl_placement){rec[i].size, rec[i].category, buf[i], off[i]};
    }
    if (s == FEWCL_OK && marks) l->marks = *marks;
    free(order);
    free(off);
    free(buf);
    if (s != FEWCL_OK) {
        fcl_layout_free(l);
        return s;
    }
    *out = l;
    return FEWCL_OK;
}

void fcl_layout_free(fcl_layout *l) {
    if (!l) return;
    free(l->at);
    free(l->buffer_bytes);
    free(l);
}

int fcl_layout_check(const fcl_layout *l, const fcl_alloc_record *rec, long n) {
    if (l->n != n) return -1;
    size_t sum = 0;
    for (int b = 0; b < l->n_buffers; b++)
        sum += l->buffer_bytes[b];
    if (sum != l->footprint) return -1;
    for (long i = 0; i < n; i++) {
        const fcl_placement *p = &l->at[i];
        if (p->size != rec[i].size || p->buffer < 0 || p->buffer >= l->n_buffers ||
            p->offset + p->size > l->buffer_bytes[p->buffer])
            return -1;
        for (long j = i + 1; j < n; j++) {
            const fcl_placement *q = &l->at[j];
            /* written out again, so the oracle shares no code with the placement */
            int both_live = rec[i].birth < rec[j].death && rec[j].birth < rec[i].death;
            if (q->buffer == p->buffer && both_live && p->offset < q->offset + q->size &&
                q->offset < p->offset + p->size)
                return -1;
        }
    }
    return 0;
}
