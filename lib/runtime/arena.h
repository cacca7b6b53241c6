/* Device memory arena: exact byte accounting with a high-water mark.
 *
 * Memory is a list of chunks (cl_mem buffers), each at most min(CL_DEVICE_MAX_MEM_ALLOC_SIZE,
 * 4 GiB) so that any element index inside a chunk fits a 32-bit uint in kernels. Blocks are
 * placed first-fit inside the chunks at offsets aligned to CL_DEVICE_MEM_BASE_ADDR_ALIGN and
 * coalesced on free. Placement is a pure function of the sequence of requests, so a counting
 * arena (no device, used by the planner) and a real one given the same schedule reach the
 * same peak to the byte. Chunks are 256 MiB unless FEWCL_ARENA_CHUNK says otherwise. A limit
 * (device global memory, or FEWCL_MEM_LIMIT) caps the bytes reserved in chunks, so that allocation
 * fails early as it would on a smaller device. */
#ifndef FEWCL_ARENA_H
#define FEWCL_ARENA_H

#include "runtime.h"

typedef enum fcl_mem_category {
    FCL_MEM_PARAM,      /* parameters */
    FCL_MEM_GRAD,       /* parameter gradients */
    FCL_MEM_OPTIM,      /* optimiser state */
    FCL_MEM_ACTIVATION, /* activations saved for backward, inputs, outputs */
    FCL_MEM_WORKSPACE,  /* temporaries inside one op (im2col, CLBlast temp buffers) */
    FCL_MEM_COVARIANCE, /* the Mahalanobis head's D′×D′ matrices (Σ, its factor, Σ⁻¹) */
    FCL_MEM_CATEGORIES
} fcl_mem_category;

const char *fcl_mem_category_name(fcl_mem_category c);

typedef struct fcl_block {
    int chunk;     /* -1 for an empty block */
    size_t offset; /* bytes from the chunk's start */
    size_t size;   /* bytes, after rounding to the alignment */
    fcl_mem_category category;
} fcl_block;

typedef struct fcl_arena_stats {
    size_t in_use, peak;                            /* bytes in live blocks, and its maximum */
    size_t reserved, peak_reserved;                 /* bytes of chunks created */
    size_t by_category[FCL_MEM_CATEGORIES];         /* live bytes per category */
    size_t by_category_at_peak[FCL_MEM_CATEGORIES]; /* per category when `peak` was reached */
    size_t category_peak[FCL_MEM_CATEGORIES];       /* each category's own high-water mark */
    long allocations;
} fcl_arena_stats;

typedef struct fcl_arena fcl_arena;

/* A real arena on `ctx` (ctx NULL: a counting arena with the given device limits).
 * `limit` 0 means the device's global memory. */
fewcl_status fcl_arena_create(fewcl_context *ctx, const fcl_limits *limits, size_t limit,
                              fcl_arena **out);
void fcl_arena_destroy(fcl_arena *a);
fewcl_status fcl_arena_alloc(fcl_arena *a, size_t bytes, fcl_mem_category cat, fcl_block *out);
void fcl_arena_free(fcl_arena *a, fcl_block *b);
/* The chunk buffer of a block (NULL in a counting arena). */
cl_mem fcl_arena_buffer(const fcl_arena *a, const fcl_block *b);
/* A sub-buffer covering exactly the block, for APIs that take no offset (CLBlast temp
 * buffers). The caller releases it. */
fewcl_status fcl_arena_sub_buffer(const fcl_arena *a, const fcl_block *b, cl_mem *out);
const fcl_arena_stats *fcl_arena_stats_get(const fcl_arena *a);
/* The byte limit in force (the device's global memory or FEWCL_MEM_LIMIT). */
size_t fcl_arena_limit(const fcl_arena *a);

/* The largest single buffer an arena on a device with these limits can hold:
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE, capped at 4 GiB (32-bit element offsets in kernels). */
size_t fcl_arena_largest_buffer(const fcl_limits *limits);
/* Restarts the high-water mark from the current use. */
void fcl_arena_reset_peak(fcl_arena *a);
/* Parses "123", "64K", "512M", "8G", "2T" (powers of 1024; the unit in any case, optionally
 * followed by "i" and "B": 8gb, 1.5GiB). Returns 0 on success. */
int fcl_parse_bytes(const char *s, size_t *out);
/* "2.34 GiB", "512 B": a byte count for messages. */
const char *fcl_format_bytes(double bytes, char *buf, size_t cap);

#endif
