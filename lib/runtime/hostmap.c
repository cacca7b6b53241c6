/* Map sets: one read+write map per buffer over the union of its tensors' ranges. */
#include "hostmap.h"


fewcl_status fcl_host_map_add(fcl_host_map *m, const fcl_tensor *t) {
    if (!t) return FEWCL_OK;
    size_t lo = t->offset * sizeof(float), hi = lo + t->numel * sizeof(float);
    for (int i = 0; i < m->n; i++)
        if (m->mem[i] == t->mem) {
            if (lo < m->lo[i]) m->lo[i] = lo;
            if (hi > m->hi[i]) m->hi[i] = hi;
            return FEWCL_OK;
        }
    if (m->n == FCL_HOST_MAP_MAX)
        return fcl_fail(FEWCL_ERR_INTERNAL, "host map: more than %d buffers", FCL_HOST_MAP_MAX);
    m->mem[m->n] = t->mem;
    m->lo[m->n] = lo;
    m->hi[m->n] = hi;
    m->ptr[m->n] = NULL;
    m->n++;
    return FEWCL_OK;
}

fewcl_status fcl_host_map_begin(fewcl_context *ctx, fcl_host_map *m) {
    for (int i = 0; i < m->n; i++) {
        cl_int err;
        m->ptr[i] = clEnqueueMapBuffer(ctx->queue, m->mem[i], CL_TRUE, CL_MAP_READ | CL_MAP_WRITE,
                                       m->lo[i], m->hi[i] - m->lo[i], 0, NULL, NULL, &err);
        if (err != CL_SUCCESS) {
            m->ptr[i] = NULL;
            fcl_host_map_end(ctx, m);
            return fcl_fail_cl(err, "mapping %zu bytes of a device buffer to the host",
                               m->hi[i] - m->lo[i]);
        }
    }
    return FEWCL_OK;
}

float *fcl_host_ptr(const fcl_host_map *m, const fcl_tensor *t) {
    for (int i = 0; i < m->n; i++)
        if (m->mem[i] == t->mem && m->ptr[i])
            return (float *)(m->ptr[i] + (t->offset * sizeof(float) - m->lo[i]));
    return NULL;
}

fewcl_status fcl_host_map_end(fewcl_context *ctx, fcl_host_map *m) {
    cl_int first = CL_SUCCESS;
    for (int i = 0; i < m->n; i++) {
        if (!m->ptr[i]) continue;
        cl_int err = clEnqueueUnmapMemObject(ctx->queue, m->mem[i], m->ptr[i], 0, NULL, NULL);
        if (err != CL_SUCCESS && first == CL_SUCCESS) first = err;
        m->ptr[i] = NULL;
    }
    if (first != CL_SUCCESS) return fcl_fail_cl(first, "unmapping a device buffer");
    return FEWCL_OK;
}
