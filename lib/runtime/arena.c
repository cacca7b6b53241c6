/* Device memory arena (see arena.h). */
#include "arena.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CHUNK ((size_t)256 << 20)
#define CHUNK_CAP ((size_t)4 << 30) /* keeps element offsets inside a chunk below 2^32 */

typedef struct free_range {
    size_t offset, size;
} free_range;

typedef struct chunk {
    cl_mem mem;
    size_t size;         /* bytes the free list manages */
    size_t buffer_bytes; /* bytes of the buffer: `size`, or less for a dedicated chunk */
    free_range *free;    /* sorted by offset, never adjacent (coalesced) */
    int n_free, cap_free;
} chunk;

/* The layout a real arena follows. */
typedef struct follow_state {
    fcl_placement *at;
    long n, cursor;
    int first_chunk;      /* the layout's buffer 0 */
    int seen[FCL_PHASES]; /* occurrences of each phase so far */
    fcl_phase_marks marks;
} follow_state;

/* How far ahead of the cursor a request may match: a run may skip planned allocations (the
 * convolution find step's, for a shape already found). */
#define FOLLOW_LOOKAHEAD 256

struct fcl_arena {
    fewcl_context *ctx;
    size_t align, chunk_max, limit;
    size_t chunk_default; /* DEFAULT_CHUNK, or FEWCL_ARENA_CHUNK */
    int chunk_env;        /* FEWCL_ARENA_CHUNK given: one exact buffer per tensor, no layout */
    chunk *chunks;
    int n_chunks, cap_chunks;
    fcl_arena_stats stats;
    int tracing;
    fcl_alloc_record *trace;
    long n_trace, cap_trace, clock;
    fcl_phase_marks marks;
    follow_state follow; /* follow.at NULL: not following */
};

const char *fcl_mem_category_name(fcl_mem_category c) {
    static const char *names[] = {"parameters",  "gradients", "optimizer",
                                  "activations", "workspace", "covariance"};
    return c < FCL_MEM_CATEGORIES ? names[c] : "?";
}

int fcl_parse_bytes(const char *s, size_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0)) return -1;
    /* A unit in any case, with or without "i" and "B": 512M, 8gb, 1.5GiB, 64KiB, 2T. */
    static const char units[] = "kmgt";
    double mult = 1;
    const char *u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *p = units; p <= u; p++)
            mult *= 1024;
        end++;
        if (*end == 'i' || *end == 'I') end++;
    }
    if (*end == 'b' || *end == 'B') end++;
    if (*end || v * mult >= 18446744073709549568.0) return -1;
    *out = (size_t)(v * mult);
    return 0;
}

const char *fcl_format_bytes(double bytes, char *buf, size_t cap) {
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4)
        bytes /= 1024, u++;
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", bytes, names[u]);
    return buf;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

fewcl_status fcl_arena_create(fewcl_context *ctx, const fcl_limits *limits, size_t limit,
                              fcl_arena **out) {
    fcl_arena *a = calloc(1, sizeof *a);
    if (!a) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "creating the memory arena");
    a->ctx = ctx;
    a->align = limits->base_align < 256 ? 256 : limits->base_align;
    a->chunk_max = fcl_arena_largest_buffer(limits);
    a->chunk_max -= a->chunk_max % a->align;
    a->limit = limit ? limit : limits->global_mem;
    /* Smaller chunks keep tools that shadow every byte (oclgrind) fast; bigger ones mean fewer
     * buffers. A single larger request still gets a chunk of its own size. */
    const char *chunk_env = getenv("FEWCL_ARENA_CHUNK");
    a->chunk_default = DEFAULT_CHUNK;
    if (chunk_env && *chunk_env &&
        (fcl_parse_bytes(chunk_env, &a->chunk_default) != 0 || a->chunk_default == 0)) {
        free(a);
        return fcl_fail(FEWCL_ERR_ARGUMENT, "FEWCL_ARENA_CHUNK='%s' is not a size (e.g. 4M)",
                        chunk_env);
    }
    a->chunk_env = chunk_env && *chunk_env;
    *out = a;
    return FEWCL_OK;
}

fewcl_status fcl_arena_create_tracing(const fcl_limits *limits, size_t limit, fcl_arena **out) {
    FCL_TRY(fcl_arena_create(NULL, limits, limit, out));
    (*out)->tracing = 1;
    return FEWCL_OK;
}

const fcl_alloc_record *fcl_arena_trace(const fcl_arena *a, long *n) {
    *n = a->n_trace;
    return a->trace;
}

const fcl_phase_marks *fcl_arena_marks(const fcl_arena *a) { return &a->marks; }

size_t fcl_arena_buffer_cap(const fcl_arena *a) { return a->chunk_max; }

size_t fcl_arena_align(const fcl_arena *a) { return a->align; }

void fcl_arena_phase(fcl_arena *a, fcl_phase p) {
    if (a->tracing) {
        if (a->marks.n[p] < FCL_MAX_MARKS) a->marks.start[p][a->marks.n[p]++] = a->n_trace;
        return;
    }
    follow_state *f = &a->follow;
    if (!f->at || f->marks.n[p] == 0) return;
    int k = f->seen[p] < f->marks.n[p] ? f->seen[p] : f->marks.n[p] - 1;
    f->seen[p]++;
    f->cursor = f->marks.start[p][k];
}
void fcl_arena_destroy(fcl_arena *a) {
    if (!a) return;
    free(a->trace);
    free(a->follow.at);
    for (int i = 0; i < a->n_chunks; i++) {
        if (a->chunks[i].mem) clReleaseMemObject(a->chunks[i].mem);
        free(a->chunks[i].free);
    }
    free(a->chunks);
    free(a);
}

static int insert_range(chunk *c, int at, size_t offset, size_t size) {
    if (c->n_free == c->cap_free) {
        int cap = c->cap_free ? 2 * c->cap_free : 8;
        free_range *grown = realloc(c->free, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        c->free = grown;
        c->cap_free = cap;
    }
    memmove(c->free + at + 1, c->free + at, (size_t)(c->n_free - at) * sizeof *c->free);
    c->free[at] = (free_range){offset, size};
    c->n_free++;
    return 0;
}

static void remove_range(chunk *c, int at) {
    memmove(c->free + at, c->free + at + 1, (size_t)(c->n_free - at - 1) * sizeof *c->free);
    c->n_free--;
}

/* A new chunk able to hold `need` (aligned) bytes. A request above the default chunk size gets
 * a chunk of its own whose buffer is exactly `exact` bytes, so that tools which check buffer
 * bounds (oclgrind) see an access past the tensor's end. */
static fewcl_status add_chunk(fcl_arena *a, size_t need, size_t exact) {
    if (a->n_chunks == a->cap_chunks) {
        int cap = a->cap_chunks ? 2 * a->cap_chunks : 16;
        chunk *grown = realloc(a->chunks, (size_t)cap * sizeof *grown);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory arena bookkeeping");
        a->chunks = grown;
        a->cap_chunks = cap;
    }
    size_t size =
        need > a->chunk_default || a->follow.at ? need : round_up(a->chunk_default, a->align);
    if (size > a->chunk_max) size = a->chunk_max;
    size_t room = a->limit > a->stats.reserved ? a->limit - a->stats.reserved : 0;
    if (size > room) size = room - room % a->align;
    if (size < need) {
        char b[4][32];
        /* A plan (no context) reports to its caller, which knows the configuration and says
         * what to change; a real run points at the planner. */
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "device memory: a request for %s more did not fit: %s of the %s "
                        "budget already reserved (%s in use)%s",
                        fcl_format_bytes((double)need, b[0], 32),
                        fcl_format_bytes((double)a->stats.reserved, b[1], 32),
                        fcl_format_bytes((double)a->limit, b[2], 32),
                        fcl_format_bytes((double)a->stats.in_use, b[3], 32),
                        a->ctx ? "; `fewcl plan --fit device` with the same flags finds "
                                 "settings that fit"
                               : "");
    }
    size_t buffer_bytes = size == need ? exact : size;
    chunk *c = &a->chunks[a->n_chunks];
    memset(c, 0, sizeof *c);
    if (a->ctx) {
        cl_int err;
        c->mem = clCreateBuffer(a->ctx->context, CL_MEM_READ_WRITE, buffer_bytes, NULL, &err);
        if (err != CL_SUCCESS)
            return fcl_fail_cl(err, "allocating a device buffer of %zu bytes", buffer_bytes);
    }
    if (insert_range(c, 0, 0, size) != 0) {
        if (c->mem) clReleaseMemObject(c->mem);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory arena bookkeeping");
    }
    c->size = size;
    c->buffer_bytes = buffer_bytes;
    a->n_chunks++;
    a->stats.reserved += size;
    if (a->stats.reserved > a->stats.peak_reserved) a->stats.peak_reserved = a->stats.reserved;
    return FEWCL_OK;
}

/* Takes [offset, offset + size) out of the chunk's free list; 0 when that range is not free. */
static int carve(chunk *c, size_t offset, size_t size) {
    for (int i = 0; i < c->n_free; i++) {
        free_range r = c->free[i];
        if (r.offset > offset) return 0;
        if (offset + size > r.offset + r.size) continue;
        size_t left = offset - r.offset, right = r.offset + r.size - (offset + size);
        if (left && right) {
            c->free[i].size = left;
            return insert_range(c, i + 1, offset + size, right) == 0;
        }
        if (left)
            c->free[i].size = left;
        else if (right)
            c->free[i] = (free_range){offset + size, right};
        else
            remove_range(c, i);
        return 1;
    }
    return 0;
}

/* The layout's place for this request: the first of the next planned allocations with the
 * same size and category whose range is free; else (`slack`) the first with room for it (a
 * workspace planned for the largest algorithm a choice made at run time may pick). */
static int place_planned_at(fcl_arena *a, size_t size, fcl_mem_category cat, int slack,
                            fcl_block *out) {
    follow_state *f = &a->follow;
    for (long j = f->cursor; j < f->n && j < f->cursor + FOLLOW_LOOKAHEAD; j++) {
        const fcl_placement *p = &f->at[j];
        if (p->category != cat || (slack ? p->size < size : p->size != size)) continue;
        int ci = f->first_chunk + p->buffer;
        if (!carve(&a->chunks[ci], p->offset, size)) continue;
        f->cursor = j + 1;
        out->chunk = ci;
        out->offset = p->offset;
        out->size = size;
        a->stats.followed++;
        return 1;
    }
    return 0;
}

static int place_planned(fcl_arena *a, size_t size, fcl_mem_category cat, fcl_block *out) {
    return place_planned_at(a, size, cat, 0, out) || place_planned_at(a, size, cat, 1, out);
}

int fcl_arena_follows_layouts(const fcl_arena *a) { return a->ctx && !a->chunk_env; }

int fcl_arena_following(const fcl_arena *a) { return a->follow.at != NULL; }

fewcl_status fcl_arena_follow(fcl_arena *a, const fcl_layout *l) {
    if (!fcl_arena_follows_layouts(a) || l->n == 0) return FEWCL_OK;
    fcl_arena_unfollow(a);
    follow_state f = {.n = l->n, .first_chunk = a->n_chunks, .marks = l->marks};
    f.at = malloc((size_t)l->n * sizeof *f.at);
    if (!f.at) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "memory layout (%ld allocations)", l->n);
    memcpy(f.at, l->at, (size_t)l->n * sizeof *f.at);
    a->follow = f;
    for (int b = 0; b < l->n_buffers; b++) {
        fewcl_status s = add_chunk(a, l->buffer_bytes[b], l->buffer_bytes[b]);
        if (s != FEWCL_OK) {
            free(a->follow.at);
            a->follow = (follow_state){0};
            return s;
        }
    }
    return FEWCL_OK;
}

void fcl_arena_unfollow(fcl_arena *a) {
    free(a->follow.at);
    a->follow = (follow_state){0};
    if (a->stats.in_use > 0) return;
    for (int i = 0; i < a->n_chunks; i++) {
        if (a->chunks[i].mem) clReleaseMemObject(a->chunks[i].mem);
        free(a->chunks[i].free);
    }
    a->n_chunks = 0;
    a->stats.reserved = 0;
}

/* A tracing arena records the request instead of placing it. */
static fewcl_status trace_alloc(fcl_arena *a, size_t size, fcl_mem_category cat, fcl_block *out) {
    if (a->stats.in_use + size > a->limit) {
        char b[3][32];
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "device memory: a request for %s more did not fit: %s of the %s "
                        "budget already live",
                        fcl_format_bytes((double)size, b[0], 32),
                        fcl_format_bytes((double)a->stats.in_use, b[1], 32),
                        fcl_format_bytes((double)a->limit, b[2], 32));
    }
    if (a->n_trace == a->cap_trace) {
        long cap = a->cap_trace ? 2 * a->cap_trace : 1024;
        fcl_alloc_record *grown = realloc(a->trace, (size_t)cap * sizeof *grown);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "allocation trace");
        a->trace = grown;
        a->cap_trace = cap;
    }
    a->trace[a->n_trace] = (fcl_alloc_record){size, cat, a->clock++, FCL_NEVER_FREED};
    out->chunk = 0;
    out->offset = 0;
    out->size = size;
    out->seq = a->n_trace++;
    return FEWCL_OK;
}

/* First fit: `size` aligned bytes whose first `exact` bytes lie inside the chunk's buffer. */
static int place(fcl_arena *a, size_t size, size_t exact, fcl_block *out) {
    for (int ci = 0; ci < a->n_chunks; ci++) {
        chunk *c = &a->chunks[ci];
        for (int i = 0; i < c->n_free; i++) {
            if (c->free[i].size < size || c->free[i].offset + exact > c->buffer_bytes) continue;
            out->chunk = ci;
            out->offset = c->free[i].offset;
            out->size = size;
            c->free[i].offset += size;
            c->free[i].size -= size;
            if (c->free[i].size == 0) remove_range(c, i);
            return 1;
        }
    }
    return 0;
}

size_t fcl_arena_largest_buffer(const fcl_limits *limits) {
    return limits->max_alloc < CHUNK_CAP ? limits->max_alloc : CHUNK_CAP;
}

fewcl_status fcl_arena_alloc(fcl_arena *a, size_t bytes, fcl_mem_category cat, fcl_block *out) {
    size_t size = round_up(bytes ? bytes : 1, a->align);
    if (size > a->chunk_max) {
        char b[2][32];
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "device memory: one buffer of %s exceeds the largest buffer fewcl can "
                        "use on this device, %s (CL_DEVICE_MAX_MEM_ALLOC_SIZE, at most 4 GiB "
                        "for 32-bit offsets)%s",
                        fcl_format_bytes((double)bytes, b[0], 32),
                        fcl_format_bytes((double)a->chunk_max, b[1], 32),
                        a->ctx ? "; `fewcl plan --fit device` with the same flags finds "
                                 "settings that fit"
                               : "");
    }
    size_t exact = bytes ? bytes : 1;
    out->seq = -1;
    if (a->tracing) {
        FCL_TRY(trace_alloc(a, size, cat, out));
    } else if (a->follow.at && place_planned(a, size, cat, out)) {
        /* placed where the layout said */
    } else if (!place(a, size, exact, out)) {
        FCL_TRY(add_chunk(a, size, exact));
        if (!place(a, size, exact, out)) return fcl_fail(FEWCL_ERR_INTERNAL, "arena placement");
    }
    out->category = cat;
    fcl_arena_stats *s = &a->stats;
    s->in_use += size;
    s->by_category[cat] += size;
    if (s->by_category[cat] > s->category_peak[cat]) s->category_peak[cat] = s->by_category[cat];
    s->allocations++;
    if (s->in_use > s->peak) {
        s->peak = s->in_use;
        memcpy(s->by_category_at_peak, s->by_category, sizeof s->by_category);
    }
    return FEWCL_OK;
}

void fcl_arena_free(fcl_arena *a, fcl_block *b) {
    if (!a || !b || b->chunk < 0 || b->size == 0) return;
    if (a->tracing) {
        if (b->seq >= 0 && b->seq < a->n_trace) a->trace[b->seq].death = a->clock++;
        a->stats.in_use -= b->size;
        a->stats.by_category[b->category] -= b->size;
        b->chunk = -1;
        b->size = 0;
        return;
    }
    chunk *c = &a->chunks[b->chunk];
    int i = 0;
    while (i < c->n_free && c->free[i].offset < b->offset)
        i++;
    int merged_prev = i > 0 && c->free[i - 1].offset + c->free[i - 1].size == b->offset;
    int merged_next = i < c->n_free && b->offset + b->size == c->free[i].offset;
    if (merged_prev && merged_next) {
        c->free[i - 1].size += b->size + c->free[i].size;
        remove_range(c, i);
    } else if (merged_prev) {
        c->free[i - 1].size += b->size;
    } else if (merged_next) {
        c->free[i].offset = b->offset;
        c->free[i].size += b->size;
    } else if (insert_range(c, i, b->offset, b->size) != 0) {
        return; /* out of host memory: the range leaks, accounting stays conservative */
    }
    a->stats.in_use -= b->size;
    a->stats.by_category[b->category] -= b->size;
    b->chunk = -1;
    b->size = 0;
}

cl_mem fcl_arena_buffer(const fcl_arena *a, const fcl_block *b) {
    return b->chunk >= 0 && !a->tracing ? a->chunks[b->chunk].mem : NULL;
}

fewcl_status fcl_arena_sub_buffer(const fcl_arena *a, const fcl_block *b, cl_mem *out) {
    *out = NULL;
    if (a->tracing) return FEWCL_OK;
    cl_buffer_region region = {b->offset, b->size};
    cl_int err;
    *out = clCreateSubBuffer(a->chunks[b->chunk].mem, CL_MEM_READ_WRITE,
                             CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err != CL_SUCCESS)
        return fcl_fail_cl(err, "sub-buffer of %zu bytes at offset %zu", b->size, b->offset);
    return FEWCL_OK;
}

const fcl_arena_stats *fcl_arena_stats_get(const fcl_arena *a) { return &a->stats; }

size_t fcl_arena_limit(const fcl_arena *a) { return a->limit; }

void fcl_arena_reset_peak(fcl_arena *a) {
    a->stats.peak = a->stats.in_use;
    a->stats.peak_reserved = a->stats.reserved;
    memcpy(a->stats.by_category_at_peak, a->stats.by_category, sizeof a->stats.by_category);
    memcpy(a->stats.category_peak, a->stats.by_category, sizeof a->stats.by_category);
}
