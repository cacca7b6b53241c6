/* Inside the convolution (conv.c: geometry, OpenCL path; conv_host.c: host path). */
#ifndef FEWCL_OPS_CONV_IMPL_H
#define FEWCL_OPS_CONV_IMPL_H

#include "ops.h"

/* Shapes of one convolution, and how its columns are cut into chunks. */
typedef struct fcl_conv_geom {
    int n, cin, h, w, cout, kh, kw, oh, ow, stride, pad;
    int taps, plane;     /* K = Cin·KH·KW, P = OH·OW */
    int host;            /* the host path (gemm_host.h): no GEMM-output workspace */
    int images, columns; /* per chunk: `images` whole images, or 1 image and `columns` pixels */
} fcl_conv_geom;

/* The tensors of one call: forward (x, w, b → y) or backward (x, w, dy → dx, dw, db; any of
 * the three outputs may be NULL). */
typedef struct fcl_conv_host_args {
    const fcl_tensor *x, *w, *b, *dy;
    fcl_tensor *y, *dx, *dw, *db;
} fcl_conv_host_args;

/* The host path of one call (forward when a->y is set, else backward): the OpenCL path's
 * workspace is taken from the arena (so that plans and peaks do not depend on the path),
 * every tensor mapped once, the work done on the CPU, then unmapped. */
fewcl_status fcl_conv_host_run(fewcl_context *ctx, const fcl_conv_geom *g,
                               const fcl_conv_host_args *a);

#endif
