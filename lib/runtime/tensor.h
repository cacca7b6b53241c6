/* The one tensor type: a contiguous row-major float32 array in an arena block.
 * Kernels receive it as (buffer, element offset); views share the block. */
#ifndef FEWCL_TENSOR_H
#define FEWCL_TENSOR_H

#include "arena.h"

#define FCL_MAX_DIMS 6

typedef struct fcl_tensor {
    int ndim;
    int shape[FCL_MAX_DIMS];
    size_t numel;
    cl_mem mem;    /* chunk buffer (NULL in a dry run) */
    size_t offset; /* in elements, from the chunk's start */
    fcl_block block;
    int owner; /* 1: frees the block; 0: a view */
} fcl_tensor;

/* Allocates an uninitialised tensor of `ndim` dims from the context's arena. */
fewcl_status fcl_tensor_alloc(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int ndim,
                              const int *shape);
/* Shorthands for 1- and 2-D tensors. */
fewcl_status fcl_tensor_alloc1(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int n0);
fewcl_status fcl_tensor_alloc2(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int n0,
                               int n1);
void fcl_tensor_free(fewcl_context *ctx, fcl_tensor *t);
/* A view of the same elements with another shape (same element count). */
fewcl_status fcl_tensor_view(const fcl_tensor *t, int ndim, const int *shape, fcl_tensor *view);
/* Copies host → device (blocking: the host array may be reused at once). */
fewcl_status fcl_tensor_upload(fewcl_context *ctx, fcl_tensor *t, const float *host);
/* Copies device → host (blocking, waits for the queued work that writes t). */
fewcl_status fcl_tensor_download(fewcl_context *ctx, const fcl_tensor *t, float *host);
/* Formats the shape as "[8,64]" into buf. */
const char *fcl_shape_str(const fcl_tensor *t, char *buf, size_t cap);
/* 1 when both tensors have the same shape. */
int fcl_same_shape(const fcl_tensor *a, const fcl_tensor *b);

#endif
