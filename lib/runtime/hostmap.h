/* Host access to tensors on CPU devices, where device buffers live in host memory and
 * clEnqueueMapBuffer returns a pointer into them without copying (PoCL: a 256 MiB map returns
 * in microseconds, see lib/ops/gemm_host.c). Used by the host path (lib/ops/gemm_host.c,
 * lib/ops/conv_host.c).
 *
 * Several tensors of one op often share an arena chunk (one cl_mem). OpenCL leaves
 * overlapping maps for writing undefined, so a map set maps each buffer once, over the union
 * of the byte ranges of its tensors, for reading and writing. The maps are blocking: they wait
 * for the in-order queue, so the host sees every earlier command's results; the unmaps are
 * enqueued, so later commands see the host's writes. */
#ifndef FEWCL_HOSTMAP_H
#define FEWCL_HOSTMAP_H

#include "tensor.h"

#define FCL_HOST_MAP_MAX 8

typedef struct fcl_host_map {
    int n;
    cl_mem mem[FCL_HOST_MAP_MAX];
    size_t lo[FCL_HOST_MAP_MAX], hi[FCL_HOST_MAP_MAX]; /* bytes from the buffer's start */
    char *ptr[FCL_HOST_MAP_MAX];                       /* host address of byte lo */
} fcl_host_map;

/* Adds a tensor's elements to the set (NULL: ignored). Up to FCL_HOST_MAP_MAX buffers. */
fewcl_status fcl_host_map_add(fcl_host_map *m, const fcl_tensor *t);
/* Maps every buffer of the set (blocking). On failure nothing stays mapped. */
fewcl_status fcl_host_map_begin(fewcl_context *ctx, fcl_host_map *m);
/* The host address of a tensor's element 0 (the tensor must have been added). */
float *fcl_host_ptr(const fcl_host_map *m, const fcl_tensor *t);
/* Unmaps every buffer of the set. */
fewcl_status fcl_host_map_end(fewcl_context *ctx, fcl_host_map *m);

#endif
