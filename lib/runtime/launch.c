/* Setting kernel arguments and enqueueing launches, with optional profiling. */
#include <stdarg.h>
#include <string.h>

#include "tensor.h"

static const char *kind_name(char kind) {
    switch (kind) {
    case 'g': return "a global pointer";
    case 'l': return "a local pointer";
    case 'u': return "a uint";
    case 'i': return "an int";
    case 'f': return "a float";
    default: return "of another type";
    }
}

/* The kinds format letter f sets, in order ('t' is a buffer and its uint offset). */
static const char *kinds_of(char f) {
    switch (f) {
    case 't': return "gu";
    case 'i': return "i";
    case 'u': return "u";
    case 'f': return "f";
    case 'L': return "l";
    default: return NULL;
    }
}

/* With kinds recorded (ctx->check_args): the format's arguments, kind by kind and in number,
 * against the kernel's parameters. */
static fewcl_status check_format(const fcl_kernel_entry *k, const char *fmt) {
    const size_t n = strlen(k->arg_kinds);
    size_t index = 0;
    for (const char *f = fmt; *f; f++) {
        const char *kinds = kinds_of(*f);
        if (!kinds) break; /* fcl_args reports it */
        for (; *kinds; kinds++, index++) {
            if (index >= n)
                return fcl_fail(FEWCL_ERR_INTERNAL,
                                "kernel %s: argument %zu ('%c' of format \"%s\") is one more than "
                                "its %zu parameters",
                                k->name, index, *f, fmt, n);
            if (k->arg_kinds[index] != *kinds)
                return fcl_fail(FEWCL_ERR_INTERNAL,
                                "kernel %s: argument %zu is %s, but '%c' of format \"%s\" passes "
                                "%s",
                                k->name, index, kind_name(k->arg_kinds[index]), *f, fmt,
                                kind_name(*kinds));
        }
    }
    if (index < n)
        return fcl_fail(FEWCL_ERR_INTERNAL,
                        "kernel %s: format \"%s\" passes %zu arguments, the kernel takes %zu "
                        "(argument %zu is missing)",
                        k->name, fmt, index, n, index);
    return FEWCL_OK;
}

fewcl_status fcl_args(fcl_kernel_entry *k, const char *fmt, ...) {
    if (k->arg_kinds[0]) FCL_TRY(check_format(k, fmt));
    va_list ap;
    va_start(ap, fmt);
    cl_uint index = 0;
    cl_int err = CL_SUCCESS;
    k->local_args = 0;
    for (const char *f = fmt; *f && err == CL_SUCCESS; f++) {
        switch (*f) {
        case 't': {
            const fcl_tensor *t = va_arg(ap, const fcl_tensor *);
            cl_uint offset = (cl_uint)t->offset;
            err = clSetKernelArg(k->kernel, index++, sizeof(cl_mem), &t->mem);
            if (err == CL_SUCCESS) err = clSetKernelArg(k->kernel, index++, sizeof offset, &offset);
            break;
        }
        case 'i': {
            cl_int v = va_arg(ap, int);
            err = clSetKernelArg(k->kernel, index++, sizeof v, &v);
            break;
        }
        case 'u': {
            cl_uint v = va_arg(ap, unsigned);
            err = clSetKernelArg(k->kernel, index++, sizeof v, &v);
            break;
        }
        case 'f': {
            cl_float v = (cl_float)va_arg(ap, double);
            err = clSetKernelArg(k->kernel, index++, sizeof v, &v);
            break;
        }
        case 'L': {
            size_t bytes = va_arg(ap, size_t);
            err = clSetKernelArg(k->kernel, index++, bytes, NULL);
            k->local_args += bytes;
            break;
        }
        default:
            va_end(ap);
            return fcl_fail(FEWCL_ERR_INTERNAL, "kernel %s: bad argument format '%c'", k->name, *f);
        }
    }
    va_end(ap);
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "kernel %s argument %u", k->name, index - 1);
    return FEWCL_OK;
}

/* 256 items: a multiple of every vendor's SIMD width (AMD 64, NVIDIA 32, Intel 8-32) that
 * all of them run (ROCm's and Intel Gen9's maximum); powers of two below that on smaller
 * devices, as the tree reductions need. */
static size_t pow2_within(size_t limit) {
    size_t wg = 256;
    while (wg > 1 && wg > limit)
        wg /= 2;
    return wg;
}

size_t fcl_wg_1d(const fewcl_context *ctx) { return pow2_within(ctx->limits.max_work_group); }

size_t fcl_kernel_wg_1d(const fewcl_context *ctx, const fcl_kernel_entry *k) {
    size_t wg = fcl_wg_1d(ctx);
    return wg <= k->max_wg ? wg : pow2_within(k->max_wg);
}

size_t fcl_kernel_wg_side(const fewcl_context *ctx, const fcl_kernel_entry *k) {
    size_t side = 16, wg = fcl_kernel_wg_1d(ctx, k);
    while (side > 1 && side * side > wg)
        side /= 2;
    return side;
}

/* A launch that exceeds the limits fails here with the numbers, rather than with the driver's
 * bare CL_INVALID_WORK_GROUP_SIZE or, under FEWCL_DEVICE_PROFILE, not at all on PoCL. */
static fewcl_status check_group(fewcl_context *ctx, fcl_kernel_entry *k, int dims,
                                const size_t *lws) {
    const fcl_limits *l = &ctx->limits;
    const char *why = l->profile ? " (FEWCL_DEVICE_PROFILE=" : "";
    const char *name = l->profile ? l->profile : "", *close = l->profile ? ")" : "";
    size_t items = 1;
    for (int i = 0; i < dims; i++) {
        if (lws[i] > l->max_items[i])
            return fcl_fail(FEWCL_ERR_INTERNAL,
                            "kernel %s: %zu work-items in dimension %d, %s allows %zu%s%s%s",
                            k->name, lws[i], i, ctx->info.name, l->max_items[i], why, name, close);
        items *= lws[i];
    }
    if (items > k->max_wg)
        return fcl_fail(FEWCL_ERR_INTERNAL,
                        "kernel %s: work-groups of %zu items, %s allows %zu for it%s%s%s", k->name,
                        items, ctx->info.name, k->max_wg, why, name, close);
    /* The static arrays (queried once, when the kernel was created) and the local arguments
     * counted by fcl_args: no driver query per launch, and right also where a driver (rusticl
     * 22.3 for one) leaves the arguments out of CL_KERNEL_LOCAL_MEM_SIZE. */
    size_t local = k->local_static + k->local_args;
    if (local > l->local_mem)
        return fcl_fail(FEWCL_ERR_INTERNAL,
                        "kernel %s: %zu bytes of local memory, %s has %zu%s%s%s", k->name, local,
                        ctx->info.name, l->local_mem, why, name, close);
    return FEWCL_OK;
}

fewcl_status fcl_launch(fewcl_context *ctx, fcl_kernel_entry *k, int dims, const size_t *gws,
                        const size_t *lws) {
    if (ctx->dry_run) return FEWCL_OK;
    size_t global[3];
    for (int i = 0; i < dims; i++) {
        global[i] = gws[i];
        if (lws && lws[i]) global[i] = (gws[i] + lws[i] - 1) / lws[i] * lws[i];
        if (global[i] == 0) return FEWCL_OK; /* nothing to do */
    }
    if (lws) FCL_TRY(check_group(ctx, k, dims, lws));
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, k->kernel, (cl_uint)dims, NULL, global, lws, 0,
                                        NULL, ctx->profiling ? &ev : NULL);
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "launching kernel %s", k->name);
    k->launches++;
    if (ev) {
        cl_ulong t0 = 0, t1 = 0;
        err = clWaitForEvents(1, &ev);
        if (err == CL_SUCCESS) {
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
            k->profile_ms += (double)(t1 - t0) / 1e6;
        }
        clReleaseEvent(ev);
        if (err != CL_SUCCESS) return fcl_fail_cl(err, "running kernel %s", k->name);
    }
    return FEWCL_OK;
}
