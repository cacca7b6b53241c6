/* Device memory arena: exact byte accounting with a high-water mark.
 *
 * Three kinds: a real arena (buffers on a device), a counting arena that simulates the real
 * one's placement (no device), and a tracing arena (the planner's): it records every
 * allocation's size, category, birth and death, from which lib/plan/layout.c assigns fixed
 * offsets; a real arena told to follow that layout (fcl_arena_follow) creates exactly the
 * planned buffers and places each request where the layout put it.
 *
 * Without a layout:
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
    long seq; /* a tracing arena: the allocation's index in the trace */
} fcl_block;

/* One allocation of a tracing arena's trace. Times count allocations and frees together. */
typedef struct fcl_alloc_record {
    size_t size; /* bytes, aligned */
    fcl_mem_category category;
    long birth, death; /* death FCL_NEVER_FREED: live to the end of the schedule */
} fcl_alloc_record;

#define FCL_NEVER_FREED 0x7fffffffffffffffL

/* Points of a schedule where a repeated part starts: a run that repeats it (the trainer's
 * thousands of steps) rewinds to the layout of the part's last planned occurrence. */
typedef enum fcl_phase {
    FCL_PHASE_TRAIN_STEP,
    FCL_PHASE_EVAL_STEP,
    FCL_PHASE_EVAL_INPUT, /* an evaluation's episode input (validation: every epoch) */
    FCL_PHASES
} fcl_phase;
#define FCL_MAX_MARKS 4

typedef struct fcl_phase_marks {
    long start[FCL_PHASES][FCL_MAX_MARKS]; /* trace index where each occurrence starts */
    int n[FCL_PHASES];
} fcl_phase_marks;

/* Where each allocation of a trace goes (lib/plan/layout.c builds it). */
typedef struct fcl_placement {
    size_t size;
    fcl_mem_category category;
    int buffer;
    size_t offset;
} fcl_placement;

typedef struct fcl_layout {
    long n;
    fcl_placement *at;
    int n_buffers;
    size_t *buffer_bytes;
    size_t footprint; /* the buffers' bytes together: what a run following it reserves */
    fcl_phase_marks marks;
} fcl_layout;

typedef struct fcl_arena_stats {
    size_t in_use, peak;                            /* bytes in live blocks, and its maximum */
    size_t reserved, peak_reserved;                 /* bytes of chunks created */
    size_t by_category[FCL_MEM_CATEGORIES];         /* live bytes per category */
    size_t by_category_at_peak[FCL_MEM_CATEGORIES]; /* per category when `peak` was reached */
    size_t category_peak[FCL_MEM_CATEGORIES];       /* each category's own high-water mark */
    long allocations;
    long followed; /* allocations placed where the layout being followed put them */
} fcl_arena_stats;

typedef struct fcl_arena fcl_arena;

/* A real arena on `ctx` (ctx NULL: a counting arena with the given device limits).
 * `limit` 0 means the device's global memory. */
fewcl_status fcl_arena_create(fewcl_context *ctx, const fcl_limits *limits, size_t limit,
                              fcl_arena **out);
/* A tracing arena (the planner's): no placement, every allocation recorded; fails when the
 * live bytes pass `limit` (0: the device's global memory) or one request passes the largest
 * buffer. */
fewcl_status fcl_arena_create_tracing(const fcl_limits *limits, size_t limit, fcl_arena **out);
void fcl_arena_destroy(fcl_arena *a);
/* A tracing arena's trace (NULL, 0 for other arenas) and its phase marks. */
const fcl_alloc_record *fcl_arena_trace(const fcl_arena *a, long *n);
const fcl_phase_marks *fcl_arena_marks(const fcl_arena *a);
/* The schedule enters a repeated part (see fcl_phase): a tracing arena marks it, an arena
 * following a layout rewinds to it; otherwise nothing. */
void fcl_arena_phase(fcl_arena *a, fcl_phase p);
/* A real arena creates the layout's buffers (exactly its footprint) and from now on places
 * each request that matches the layout's next allocations (size and category, looking a few
 * ahead) at its planned offset; any other request goes first-fit into free space, or into a
 * buffer of its own size. Nothing happens under FEWCL_ARENA_CHUNK (one buffer per tensor
 * for oclgrind) or for a counting arena. The layout is copied. */
fewcl_status fcl_arena_follow(fcl_arena *a, const fcl_layout *l);
/* Whether fcl_arena_follow would follow (a real arena, not under FEWCL_ARENA_CHUNK). */
int fcl_arena_follows_layouts(const fcl_arena *a);
/* Whether the arena follows a layout now. */
int fcl_arena_following(const fcl_arena *a);
/* Stops following; with nothing live, releases every buffer. */
void fcl_arena_unfollow(fcl_arena *a);
/* The largest buffer a layout may plan for this arena (aligned). */
size_t fcl_arena_buffer_cap(const fcl_arena *a);
size_t fcl_arena_align(const fcl_arena *a);
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
