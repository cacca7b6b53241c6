/* Setting kernel arguments and enqueueing launches, with optional profiling. */
#include <string.h>

#include "tensor.h"

fewcl_status fcl_args(fcl_kernel_entry *k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cl_uint index = 0;
    cl_int err = CL_SUCCESS;
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

size_t fcl_wg_1d(const fewcl_context *ctx) {
    size_t wg = 256;
    while (wg > ctx->limits.max_work_group)
        wg /= 2;
    return wg;
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
