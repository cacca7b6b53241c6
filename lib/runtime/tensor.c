/* Tensors in the arena, and the explicit host transfers. */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

const char *fcl_shape_str(const fcl_tensor *t, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ",%d" : "%d", t->shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

int fcl_same_shape(const fcl_tensor *a, const fcl_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static fewcl_status set_shape(fcl_tensor *t, int ndim, const int *shape) {
    if (ndim < 1 || ndim > FCL_MAX_DIMS)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "tensor with %d dimensions (1 to %d allowed)", ndim,
                        FCL_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return fcl_fail(FEWCL_ERR_ARGUMENT, "tensor dimension %d is %d (must be positive)", i,
                            shape[i]);
        n *= (size_t)shape[i];
        t->shape[i] = shape[i];
    }
    t->ndim = ndim;
    t->numel = n;
    return FEWCL_OK;
}

fewcl_status fcl_tensor_alloc(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int ndim,
                              const int *shape) {
    memset(t, 0, sizeof *t);
    t->block.chunk = -1;
    FCL_TRY(set_shape(t, ndim, shape));
    FCL_TRY(fcl_arena_alloc(ctx->arena, t->numel * sizeof(float), cat, &t->block));
    t->mem = fcl_arena_buffer(ctx->arena, &t->block);
    t->offset = t->block.offset / sizeof(float);
    t->owner = 1;
    return FEWCL_OK;
}

fewcl_status fcl_tensor_alloc1(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int n0) {
    return fcl_tensor_alloc(ctx, t, cat, 1, &n0);
}

fewcl_status fcl_tensor_alloc2(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat, int n0,
                               int n1) {
    int shape[2] = {n0, n1};
    return fcl_tensor_alloc(ctx, t, cat, 2, shape);
}

void fcl_tensor_free(fewcl_context *ctx, fcl_tensor *t) {
    if (t->owner) fcl_arena_free(ctx->arena, &t->block);
    memset(t, 0, sizeof *t);
    t->block.chunk = -1;
}

fewcl_status fcl_tensor_view(const fcl_tensor *t, int ndim, const int *shape, fcl_tensor *view) {
    fcl_tensor v = *t;
    v.owner = 0;
    FCL_TRY(set_shape(&v, ndim, shape));
    if (v.numel != t->numel) {
        char a[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT, "view of %s with %zu elements as %zu elements",
                        fcl_shape_str(t, a, sizeof a), t->numel, v.numel);
    }
    *view = v;
    return FEWCL_OK;
}

fewcl_status fcl_tensor_upload(fewcl_context *ctx, fcl_tensor *t, const float *host) {
    if (ctx->dry_run) return FEWCL_OK;
    cl_int err = clEnqueueWriteBuffer(ctx->queue, t->mem, CL_TRUE, t->offset * sizeof(float),
                                      t->numel * sizeof(float), host, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        char s[64];
        return fcl_fail_cl(err, "copying tensor %s to the device", fcl_shape_str(t, s, sizeof s));
    }
    return FEWCL_OK;
}

fewcl_status fcl_tensor_download(fewcl_context *ctx, const fcl_tensor *t, float *host) {
    if (ctx->dry_run) { /* planning: no device data; zeros keep host-side checks quiet */
        memset(host, 0, t->numel * sizeof *host);
        return FEWCL_OK;
    }
    cl_int err = clEnqueueReadBuffer(ctx->queue, t->mem, CL_TRUE, t->offset * sizeof(float),
                                     t->numel * sizeof(float), host, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        char s[64];
        return fcl_fail_cl(err,
                           "copying tensor %s from the device (a failed kernel before this "
                           "copy also shows here)",
                           fcl_shape_str(t, s, sizeof s));
    }
    return FEWCL_OK;
}
