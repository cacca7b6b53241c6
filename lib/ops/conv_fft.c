/* FFT convolution on the OpenCL path (table entry `fft`): stride 1, any kernel and padding.
 *
 * Every plane (an image's channel, a kernel, an output gradient) is zero-padded into an
 * FH x FW plane, FH >= H + 2·pad and FW >= W + 2·pad, so that the circular correlations and
 * convolutions of the transforms never wrap into the outputs; clFFT transforms them in place
 * (conv_fft.h), one product of spectra per frequency sums over the shared index, and one
 * inverse transform per output plane goes back:
 *   forward  Y[n,o]  = Σ_c conj(W[o,c]) · X[n,c]     y = crop(Y)/N + b   (correlation)
 *   data     DX[n,c] = Σ_o W[o,c] · DY[n,o]           dx = crop(DX, pad)/N (convolution)
 *   weights  DW[o,c] = Σ_n conj(DY[n,o]) · X[n,c]     dW += crop(DW)/N   (correlation)
 * with N = FH·FW (clFFT's inverse runs unscaled). One workspace for all three directions:
 * the kernels' spectra [Cout·Cin], a chunk's input-side spectra [nb·Cin] and output-side
 * spectra [nb·Cout], and clFFT's temporary buffer, each part at a 4096-byte boundary (clFFT
 * takes sub-buffers, whose origins must be aligned). nb, the images per chunk, is as many as
 * the workspace bound holds beside the kernels' spectra. */
#include "conv_fft.h"
#include "conv_algo.h"
#include "conv_impl.h"

#include <string.h>

#define PART_ALIGN 4096 /* bytes: a multiple of every device's base address alignment */

typedef struct fft_layout {
    int fh, fw, row, nb;                       /* plane, row length in floats, images per chunk */
    size_t plane;                              /* floats per plane (fh·row) */
    size_t w_at, in_at, out_at, tmp_at, bytes; /* parts' byte offsets, total */
} fft_layout;

static size_t round_part(size_t bytes) {
    return (bytes + PART_ALIGN - 1) / PART_ALIGN * PART_ALIGN;
}

/* The plane and the chunk of g; 0 when the kernels' spectra and one image do not fit the
 * workspace bound. The temporary buffer is laid out by with_tmp. */
static int layout_of(const fcl_conv_geom *g, fft_layout *l) {
    memset(l, 0, sizeof *l);
    l->fh = fcl_conv_fft_length(g->h + 2 * g->pad, 0);
    l->fw = fcl_conv_fft_length(g->w + 2 * g->pad, 1);
    l->row = 2 * (l->fw / 2 + 1);
    l->plane = (size_t)l->fh * l->row;
    size_t plane_bytes = l->plane * sizeof(float);
    size_t kernels = round_part((size_t)g->cout * g->cin * plane_bytes);
    size_t per_image = (size_t)(g->cin + g->cout) * plane_bytes + 2 * PART_ALIGN;
    if (kernels + per_image > g->limit) return 0;
    size_t fit = (g->limit - kernels) / per_image;
    l->nb = fit < (size_t)g->n ? (int)fit : g->n;
    l->w_at = 0;
    l->in_at = kernels;
    l->out_at = l->in_at + round_part((size_t)l->nb * g->cin * plane_bytes);
    l->tmp_at = l->out_at + round_part((size_t)l->nb * g->cout * plane_bytes);
    l->bytes = l->tmp_at;
    return 1;
}

/* The batches the run transforms: kernels (Cout·Cin), full and last chunks' planes. */
static int batches(const fcl_conv_geom *g, const fft_layout *l, int *out) {
    int last = g->n % l->nb ? g->n % l->nb : l->nb, k = 0;
    out[k++] = g->cout * g->cin;
    out[k++] = l->nb * g->cin, out[k++] = l->nb * g->cout;
    out[k++] = last * g->cin, out[k++] = last * g->cout;
    return k;
}

/* Adds the largest temporary buffer of the run's plans (both ways) to the layout. */
static fewcl_status with_tmp(fewcl_context *ctx, const fcl_conv_geom *g, fft_layout *l) {
    int b[8], nbatch = batches(g, l, b);
    size_t most = 0;
    for (int i = 0; i < nbatch; i++)
        for (int inverse = 0; inverse < 2; inverse++) {
            size_t t;
            FCL_TRY(fcl_conv_fft_tmp_bytes(ctx, l->fh, l->fw, b[i], inverse, &t));
            if (t > most) most = t;
        }
    l->bytes = l->tmp_at + round_part(most);
    return FEWCL_OK;
}

int fcl_conv_cl_fft_eligible(const fcl_conv_geom *g) {
    fft_layout l;
    return g->ctx && !g->host && g->stride == 1 && layout_of(g, &l) && fcl_conv_fft_usable(g->ctx);
}

size_t fcl_conv_cl_fft_workspace(const fcl_conv_geom *g) {
    fft_layout l;
    if (!fcl_conv_cl_fft_eligible(g) || !layout_of(g, &l) || with_tmp(g->ctx, g, &l) != FEWCL_OK)
        return 0;
    return l.bytes;
}

/* ---- the run ---- */

static fcl_kernel_handle k_pad = FCL_KERNEL_HANDLE("conv_fft", "fft_pad");
static fcl_kernel_handle k_cmul = FCL_KERNEL_HANDLE("conv_fft", "fft_cmul");
static fcl_kernel_handle k_crop = FCL_KERNEL_HANDLE("conv_fft", "fft_crop");

typedef struct fft_run {
    fewcl_context *ctx;
    const fcl_conv_geom *g;
    fft_layout l;
    fcl_tensor ws, kernels, in, out; /* the workspace and views of its parts */
    cl_mem tmp;                      /* clFFT's temporary buffer (NULL: none) */
} fft_run;

static fcl_tensor part(const fcl_tensor *ws, size_t at, size_t floats) {
    fcl_tensor t = *ws;
    t.owner = 0;
    t.offset += at / sizeof(float);
    t.numel = floats;
    t.ndim = 1, t.shape[0] = (int)floats;
    return t;
}

/* A tensor's image n0 onwards, as a view. */
static fcl_tensor from_image(const fcl_tensor *t, int n0) {
    fcl_tensor v = *t;
    size_t per = t->numel / (size_t)t->shape[0];
    v.owner = 0;
    v.offset += (size_t)n0 * per;
    v.numel -= (size_t)n0 * per;
    return v;
}

/* A 3-D launch whose work-groups run along x only (at most what the kernel allows). */
static fewcl_status launch3(fewcl_context *ctx, fcl_kernel_entry *k, size_t x, size_t y, size_t z) {
    size_t most = fcl_kernel_wg_1d(ctx, k);
    size_t gws[3] = {x, y, z}, lws[3] = {x < most ? x : most, 1, 1};
    if (lws[0] < 1) lws[0] = 1;
    return fcl_launch(ctx, k, 3, gws, lws);
}

/* planes of `p` = src (count planes of h x w) at offset `off`, zero elsewhere. */
static fewcl_status pad_planes(fft_run *r, const fcl_tensor *src, const fcl_tensor *p, int count,
                               int h, int w, int off) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(r->ctx, &k_pad, &k));
    FCL_TRY(fcl_args(k, "ttuuuuuu", src, p, (unsigned)count, (unsigned)h, (unsigned)w,
                     (unsigned)off, (unsigned)r->l.fh, (unsigned)r->l.row));
    return launch3(r->ctx, k, (size_t)r->l.row, (size_t)r->l.fh, (size_t)count);
}

/* clFFT on `count` planes of the part `p`, through a sub-buffer of the workspace. */
static fewcl_status transform(fft_run *r, const fcl_tensor *p, int count, int inverse) {
    cl_buffer_region region = {p->offset * sizeof(float), (size_t)count * r->l.plane * 4};
    cl_int err;
    cl_mem sub =
        clCreateSubBuffer(p->mem, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err != CL_SUCCESS)
        return fcl_fail_cl(err, "FFT convolution: sub-buffer of %zu bytes at %zu", region.size,
                           region.origin);
    fewcl_status s = fcl_conv_fft_transform(r->ctx, r->l.fh, r->l.fw, count, inverse, sub, r->tmp);
    clReleaseMemObject(sub);
    return s;
}

/* out[i·soi + j·soj] (+)= Σ_k op(a[i·sai + k·sak]) · b[j·sbj + k·sbk], spectrum by spectrum. */
typedef struct cmul_spec {
    int ni, nj, nk, sai, sak, sbj, sbk, soi, soj, conj_a, accumulate;
} cmul_spec;

static fewcl_status cmul(fft_run *r, const fcl_tensor *a, const fcl_tensor *b, fcl_tensor *out,
                         cmul_spec s) {
    fcl_kernel_entry *k;
    unsigned nf = (unsigned)(r->l.plane / 2);
    FCL_TRY(fcl_kernel_get(r->ctx, &k_cmul, &k));
    FCL_TRY(fcl_args(k, "tttuuuuuuuuuuii", a, b, out, nf, (unsigned)s.ni, (unsigned)s.nj,
                     (unsigned)s.nk, (unsigned)s.sai, (unsigned)s.sak, (unsigned)s.sbj,
                     (unsigned)s.sbk, (unsigned)s.soi, (unsigned)s.soj, s.conj_a, s.accumulate));
    return launch3(r->ctx, k, nf, (size_t)s.ni, (size_t)s.nj);
}

/* dst (count planes of oh x ow) (+)= the planes of `p` from (off, off), / N, + bias. */
static fewcl_status crop(fft_run *r, const fcl_tensor *p, const fcl_tensor *dst, int count, int oh,
                         int ow, int off, const fcl_tensor *bias, int accumulate) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(r->ctx, &k_crop, &k));
    float scale = 1.0f / ((float)r->l.fh * (float)r->l.fw);
    FCL_TRY(fcl_args(k, "ttuuuuuuftiui", p, dst, (unsigned)count, (unsigned)oh, (unsigned)ow,
                     (unsigned)off, (unsigned)r->l.fh, (unsigned)r->l.row, (double)scale,
                     bias ? bias : p, bias != NULL, (unsigned)(bias ? bias->numel : 1),
                     accumulate));
    return launch3(r->ctx, k, (size_t)ow, (size_t)oh, (size_t)count);
}

/* The kernels' spectra W[o,c] into r->kernels. */
static fewcl_status kernel_spectra(fft_run *r, const fcl_tensor *w) {
    const fcl_conv_geom *g = r->g;
    FCL_TRY(pad_planes(r, w, &r->kernels, g->cout * g->cin, g->kh, g->kw, 0));
    return transform(r, &r->kernels, g->cout * g->cin, 0);
}

static fewcl_status forward(fft_run *r, const fcl_conv_args *a) {
    const fcl_conv_geom *g = r->g;
    FCL_TRY(kernel_spectra(r, a->w));
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb;
        fcl_tensor x = from_image(a->x, n0), y = from_image(a->y, n0);
        FCL_TRY(pad_planes(r, &x, &r->in, nb * g->cin, g->h, g->w, g->pad));
        FCL_TRY(transform(r, &r->in, nb * g->cin, 0));
        /* Y[n,o] = Σ_c conj(W[o·Cin + c]) · X[n·Cin + c] */
        FCL_TRY(cmul(r, &r->kernels, &r->in, &r->out,
                     (cmul_spec){g->cout, nb, g->cin, g->cin, 1, g->cin, 1, 1, g->cout, 1, 0}));
        FCL_TRY(transform(r, &r->out, nb * g->cout, 1));
        FCL_TRY(crop(r, &r->out, &y, nb * g->cout, g->oh, g->ow, 0, a->b, 0));
    }
    return FEWCL_OK;
}

static fewcl_status data(fft_run *r, const fcl_conv_args *a) {
    const fcl_conv_geom *g = r->g;
    FCL_TRY(kernel_spectra(r, a->w));
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb;
        fcl_tensor dy = from_image(a->dy, n0), dx = from_image(a->dx, n0);
        FCL_TRY(pad_planes(r, &dy, &r->out, nb * g->cout, g->oh, g->ow, 0));
        FCL_TRY(transform(r, &r->out, nb * g->cout, 0));
        /* DX[n,c] = Σ_o W[o·Cin + c] · DY[n·Cout + o] */
        FCL_TRY(cmul(r, &r->kernels, &r->out, &r->in,
                     (cmul_spec){g->cin, nb, g->cout, 1, g->cin, g->cout, 1, 1, g->cin, 0, 0}));
        FCL_TRY(transform(r, &r->in, nb * g->cin, 1));
        FCL_TRY(crop(r, &r->in, &dx, nb * g->cin, g->h, g->w, g->pad, NULL, 0));
    }
    return FEWCL_OK;
}

static fewcl_status weights(fft_run *r, const fcl_conv_args *a) {
    const fcl_conv_geom *g = r->g;
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb;
        fcl_tensor x = from_image(a->x, n0), dy = from_image(a->dy, n0);
        FCL_TRY(pad_planes(r, &x, &r->in, nb * g->cin, g->h, g->w, g->pad));
        FCL_TRY(transform(r, &r->in, nb * g->cin, 0));
        FCL_TRY(pad_planes(r, &dy, &r->out, nb * g->cout, g->oh, g->ow, 0));
        FCL_TRY(transform(r, &r->out, nb * g->cout, 0));
        /* DW[o,c] (+)= Σ_n conj(DY[n·Cout + o]) · X[n·Cin + c], summed over the chunks */
        FCL_TRY(
            cmul(r, &r->out, &r->in, &r->kernels,
                 (cmul_spec){g->cout, g->cin, nb, 1, g->cout, 1, g->cin, g->cin, 1, 1, n0 > 0}));
    }
    FCL_TRY(transform(r, &r->kernels, g->cout * g->cin, 1));
    return crop(r, &r->kernels, a->dw, g->cout * g->cin, g->kh, g->kw, 0, NULL, 1);
}

static fewcl_status run_directions(fft_run *r, const fcl_conv_args *a) {
    if (a->y) return forward(r, a);
    if (a->dw) FCL_TRY(weights(r, a));
    if (a->dx) FCL_TRY(data(r, a));
    return FEWCL_OK;
}

fewcl_status fcl_conv_cl_fft(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a) {
    if (a->db) { /* the bias gradient: the im2col algorithm's kernel, alone */
        fcl_conv_args bias = {.x = a->x, .w = a->w, .dy = a->dy, .db = a->db};
        FCL_TRY(fcl_conv_cl_im2col(ctx, g, &bias));
    }
    if (!a->y && !a->dx && !a->dw) return FEWCL_OK;
    fft_run r = {.ctx = ctx, .g = g};
    if (!layout_of(g, &r.l))
        return fcl_fail(FEWCL_ERR_INTERNAL, "FFT convolution: not eligible for this shape");
    FCL_TRY(with_tmp(ctx, g, &r.l));
    FCL_TRY(fcl_tensor_alloc1(ctx, &r.ws, FCL_MEM_WORKSPACE, (int)(r.l.bytes / sizeof(float))));
    fewcl_status s = FEWCL_OK;
    if (!ctx->dry_run && r.ws.mem) {
        r.kernels = part(&r.ws, r.l.w_at, (size_t)g->cout * g->cin * r.l.plane);
        r.in = part(&r.ws, r.l.in_at, (size_t)r.l.nb * g->cin * r.l.plane);
        r.out = part(&r.ws, r.l.out_at, (size_t)r.l.nb * g->cout * r.l.plane);
        if (r.l.bytes > r.l.tmp_at) {
            cl_buffer_region region = {r.ws.offset * sizeof(float) + r.l.tmp_at,
                                       r.l.bytes - r.l.tmp_at};
            cl_int err;
            r.tmp = clCreateSubBuffer(r.ws.mem, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION,
                                      &region, &err);
            if (err != CL_SUCCESS) s = fcl_fail_cl(err, "FFT convolution: clFFT's buffer");
        }
        if (s == FEWCL_OK) s = run_directions(&r, a);
        if (r.tmp) clReleaseMemObject(r.tmp);
    }
    fcl_tensor_free(ctx, &r.ws);
    return s;
}
