/* Inside the convolution (conv.c: geometry, the OpenCL path, the dispatch; conv_algo.c: the
 * algorithm table and the choice; conv_host.c, conv_winograd_host.c: the host path). */
#ifndef FEWCL_OPS_CONV_IMPL_H
#define FEWCL_OPS_CONV_IMPL_H

#include "ops.h"

/* Shapes of one convolution, and how its columns are cut into chunks. */
typedef struct fcl_conv_geom {
    int n, cin, h, w, cout, kh, kw, oh, ow, stride, pad;
    int taps, plane;     /* K = Cin·KH·KW, P = OH·OW */
    int host;            /* the host path (gemm_host.h): no GEMM-output workspace */
    int images, columns; /* per chunk: `images` whole images, or 1 image and `columns` pixels */
    size_t limit;        /* the workspace bound of the call, bytes */
    fewcl_context *ctx;  /* the call's context (NULL: a shape alone, as in some tests) */
} fcl_conv_geom;

/* The tensors of one call: forward (x, w, b → y) or backward (x, w, dy → dx, dw, db; any of
 * the three outputs may be NULL). */
typedef struct fcl_conv_args {
    const fcl_tensor *x, *w, *b, *dy;
    fcl_tensor *y, *dx, *dw, *db;
} fcl_conv_args;

/* ---- the OpenCL path (conv.c) ---- */
size_t fcl_conv_cl_im2col_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_cl_im2col(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a);

/* FFT convolution through clFFT (conv_fft.c): stride 1, the kernels' spectra and one image's
 * within the workspace bound, on a device where clFFT passed its probe (conv_fft.h). */
int fcl_conv_cl_fft_eligible(const fcl_conv_geom *g);
size_t fcl_conv_cl_fft_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_cl_fft(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a);

/* Implicit GEMM (conv_implicit.c): forward, and the data gradient at stride 1, where its
 * kernel fits the device; the weight gradient (split-K partial sums in the workspace, within
 * the bound). `dir` is an fcl_conv_dir (conv_algo.h). */
int fcl_conv_cl_implicit_eligible(const fcl_conv_geom *g, int dir);
size_t fcl_conv_cl_implicit_workspace(const fcl_conv_geom *g, int dir);
fewcl_status fcl_conv_cl_implicit(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a);
/* The same with 128x128 tiles and 8x8 outputs per item (`implicit_wide`, for GPUs). */
int fcl_conv_cl_implicit_wide_eligible(const fcl_conv_geom *g, int dir);
fewcl_status fcl_conv_cl_implicit_wide(fewcl_context *ctx, const fcl_conv_geom *g,
                                       const fcl_conv_args *a);

/* Winograd F(2x2,3x3) on the OpenCL path (conv_winograd_cl.c): 3x3 stride 1, any padding, all three
 * directions, whole images per chunk within the workspace bound (the host path's layout and bytes).
 */
int fcl_conv_cl_winograd_eligible(const fcl_conv_geom *g);
size_t fcl_conv_cl_winograd_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_cl_winograd(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a);
/* Winograd F(4x4,3x3) (conv_winograd_cl.c): the same calls. */
int fcl_conv_cl_winograd4_eligible(const fcl_conv_geom *g);
size_t fcl_conv_cl_winograd4_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_cl_winograd4(fewcl_context *ctx, const fcl_conv_geom *g,
                                   const fcl_conv_args *a);

/* ---- the host path (conv_host.c) ----
 * Every host algorithm maps the call's tensors once and runs on the CPU; the workspace is
 * one arena tensor (so that plans and peaks are those of the device's memory). */

/* The mapped tensors of one host call (NULL where the call has none). */
typedef struct fcl_conv_ptrs {
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
} fcl_conv_ptrs;

/* The body of a host algorithm: runs with the tensors mapped and `ws` the workspace. Returns
 * FEWCL_OK or a status it has recorded with fcl_fail. */
typedef fewcl_status (*fcl_conv_host_body)(fewcl_context *ctx, const fcl_conv_geom *g,
                                           const fcl_conv_ptrs *p, float *ws);

/* Allocates `ws_bytes` of workspace (none when 0), maps the tensors, adds the bias gradient
 * when a->db is set, runs `body` unless the call is only that, unmaps and frees. Nothing but
 * the allocation happens in a dry run (planning). */
fewcl_status fcl_conv_host_run(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a,
                               size_t ws_bytes, fcl_conv_host_body body);

/* im2col + one GEMM per image (any shape). */
size_t fcl_conv_host_im2col_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_im2col(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a);
/* 'same' convolutions by k² GEMMs over shifted views (stride 1, odd square kernel, padding
 * k/2, whole images per chunk, the scratch within im2col's workspace, which it takes). */
int fcl_conv_host_shifted_eligible(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_shifted(fewcl_context *ctx, const fcl_conv_geom *g,
                                   const fcl_conv_args *a);

/* Image i of a chunk of nb images starting at n0, output pixels [p0, p0 + pc): its im2col
 * columns cols[k][i·pc + q], and (col2im) their gradient scattered into dx (the image's
 * first column chunk overwrites it, later ones add). */
void fcl_conv_host_im2col_image(const fcl_conv_geom *g, const float *x, float *cols, int n0, int nb,
                                int i, int p0, int pc);
void fcl_conv_host_col2im_image(const fcl_conv_geom *g, const float *dcols, float *dx, int n0,
                                int nb, int i, int p0, int pc);

/* One GEMM per direction over a chunk's images (conv_batched_host.c): planes of at most
 * FCL_CONV_BATCHED_MAX_PLANE pixels (the late layers), whole images, at least two per chunk. */
#define FCL_CONV_BATCHED_MAX_PLANE 256
int fcl_conv_host_batched_eligible(const fcl_conv_geom *g);
size_t fcl_conv_host_batched_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_batched(fewcl_context *ctx, const fcl_conv_geom *g,
                                   const fcl_conv_args *a);

/* W[co][ci][tap] → wk[tap][co][ci] for the output channels [co0, co1) (the k² matrices of the
 * shifted views and of `taps`), and back: dW[co][ci][tap] += dwk[tap][co][ci]. */
void fcl_conv_host_taps_major(const fcl_conv_geom *g, const float *w, float *wk, long co0,
                              long co1);
void fcl_conv_host_add_taps_major(const fcl_conv_geom *g, const float *dwk, float *dw, long co0,
                                  long co1);
/* Profiling of a host algorithm run on the caller's thread: the time since *t goes to the
 * context's GEMM or other-work counter. */
void fcl_conv_host_mark(fewcl_context *ctx, double *t, int gemm);

/* One GEMM per kernel tap over the pixels it reads (conv_taps_host.c): planes of at most
 * FCL_CONV_BATCHED_MAX_PLANE pixels, any kernel, stride and padding, whole images. */
int fcl_conv_host_taps_eligible(const fcl_conv_geom *g);
size_t fcl_conv_host_taps_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_taps(fewcl_context *ctx, const fcl_conv_geom *g,
                                const fcl_conv_args *a);

/* Winograd F(2x2,3x3) (conv_winograd_host.c): 3x3 stride 1, any padding, whole images. */
int fcl_conv_host_winograd_eligible(const fcl_conv_geom *g);
size_t fcl_conv_host_winograd_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_winograd(fewcl_context *ctx, const fcl_conv_geom *g,
                                    const fcl_conv_args *a);
/* Winograd F(3x3,3x3) (conv_winograd3_host.c): the same calls. */
int fcl_conv_host_winograd3_eligible(const fcl_conv_geom *g);
size_t fcl_conv_host_winograd3_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_winograd3(fewcl_context *ctx, const fcl_conv_geom *g,
                                     const fcl_conv_args *a);
/* Winograd F(4x4,3x3) (conv_winograd4_host.c): the same calls. */
int fcl_conv_host_winograd4_eligible(const fcl_conv_geom *g);
size_t fcl_conv_host_winograd4_workspace(const fcl_conv_geom *g);
fewcl_status fcl_conv_host_winograd4(fewcl_context *ctx, const fcl_conv_geom *g,
                                     const fcl_conv_args *a);

/* The host path's threads over a chunk's images (FEWCL_HOST_THREADS, default the online
 * cores, at most FCL_CONV_MAX_THREADS). */
#define FCL_CONV_MAX_THREADS 16
int fcl_conv_host_threads(void);
/* fn(arg, i0, i1) over contiguous ranges of [0, n) on the host threads (the caller's among
 * them; a thread that cannot be started has its range run by the caller). */
void fcl_host_parallel(long n, void (*fn)(void *arg, long i0, long i1), void *arg);

#endif
