/* 2-D convolution as im2col + GEMM (see cl/conv.cl for the column layout).
 *
 * Memory: the im2col matrix of a whole batch can be large (Conv4's second block at 84x84 is
 * 576 x 1764 floats, 4 MiB, per image), so each call works through the batch in chunks whose
 * columns fit the workspace bound: several whole images at a time when one image fits, else
 * one image in ranges of output pixels. The columns of a chunk's images sit side by side, so
 * that on the OpenCL path one GEMM covers the chunk (forward, dW and dx each), with the
 * GEMM's output [Cout, images·pixels] in the workspace too, moved to/from NCHW by a kernel.
 * The host path (CPU devices) writes NCHW directly with one BLAS call per image, which is as
 * fast there and needs no second buffer. The workspace comes from the arena
 * (FCL_MEM_WORKSPACE) and is freed before returning. */
#include "conv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm_host.h"
#include "hostmap.h"

int fcl_conv2d_out_size(int in, int k, int stride, int pad) {
    int span = in + 2 * pad - k;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
}

/* Shapes of one convolution, and how its columns are cut into chunks. */
typedef struct geom {
    int n, cin, h, w, cout, kh, kw, oh, ow, stride, pad;
    int taps, plane;     /* K = Cin·KH·KW, P = OH·OW */
    int host;            /* the host path (gemm_host.h): no GEMM-output workspace */
    int images, columns; /* per chunk: `images` whole images, or 1 image and `columns` pixels */
} geom;

static fewcl_status on_host(fewcl_context *ctx, int *yes) {
    int path;
    FCL_TRY(fcl_gemm_path(ctx, &path));
    *yes = path == FCL_GEMM_HOST;
    return FEWCL_OK;
}

size_t fcl_conv2d_column_bytes(int host, int taps, int cout) {
    return (size_t)(host ? taps : taps + cout) * sizeof(float);
}

static fewcl_status make_geom(fewcl_context *ctx, const char *op, const fcl_tensor *x,
                              const fcl_tensor *w, const fcl_tensor *b, const fcl_tensor *y,
                              const fcl_conv2d_params *p, geom *g) {
    char sx[64], sw[64], sy[64];
    FCL_TRY(on_host(ctx, &g->host));
    if (!p || p->stride < 1 || p->pad < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: stride %d and padding %d (need >= 1 and >= 0)", op,
                        p ? p->stride : 0, p ? p->pad : 0);
    int ok = x->ndim == 4 && w->ndim == 4 && y->ndim == 4 && x->shape[1] == w->shape[1];
    if (ok) {
        g->n = x->shape[0], g->cin = x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
        g->cout = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
        g->stride = p->stride, g->pad = p->pad;
        g->oh = fcl_conv2d_out_size(g->h, g->kh, g->stride, g->pad);
        g->ow = fcl_conv2d_out_size(g->w, g->kw, g->stride, g->pad);
        ok = g->oh > 0 && g->ow > 0 && y->shape[0] == g->n && y->shape[1] == g->cout &&
             y->shape[2] == g->oh && y->shape[3] == g->ow &&
             (!b || (b->ndim == 1 && b->shape[0] == g->cout));
    }
    if (!ok)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: x %s, weight %s, output %s do not fit y[N,Cout,OH,OW] = "
                        "conv(x[N,Cin,H,W], W[Cout,Cin,KH,KW]) with stride %d, padding %d%s",
                        op, fcl_shape_str(x, sx, sizeof sx), fcl_shape_str(w, sw, sizeof sw),
                        fcl_shape_str(y, sy, sizeof sy), p->stride, p->pad,
                        b ? " and bias [Cout]" : "");
    g->taps = g->cin * g->kh * g->kw;
    g->plane = g->oh * g->ow;
    size_t limit = p->workspace_bytes ? p->workspace_bytes : FCL_CONV_WORKSPACE_DEFAULT;
    if (limit > ctx->limits.max_alloc) limit = ctx->limits.max_alloc;
    if (limit > ((size_t)1 << 31)) limit = (size_t)1 << 31; /* element counts stay in int/uint */
    /* One output pixel's workspace: its im2col column, and on the OpenCL path its column of
     * the chunk's GEMM output (or of the output gradient) in the same layout. */
    size_t col_bytes = fcl_conv2d_column_bytes(g->host, g->taps, g->cout);
    size_t image_bytes = col_bytes * (size_t)g->plane;
    if (image_bytes <= limit) {
        size_t fit = limit / image_bytes;
        g->images = fit < (size_t)g->n ? (int)fit : g->n;
        g->columns = g->plane;
    } else { /* one image does not fit: ranges of its output pixels (at least one column) */
        size_t fit = limit / col_bytes;
        g->images = 1;
        g->columns = fit < 1 ? 1 : (int)fit;
    }
    return FEWCL_OK;
}

static fewcl_status launch_1d(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_wg_1d(ctx);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

/* cols[k][i·pc + q] for images n0 .. n0+nb-1 and output pixels p0 .. p0+pc-1. */
static fewcl_status im2col(fewcl_context *ctx, const geom *g, const fcl_tensor *x, fcl_tensor *cols,
                           int n0, int nb, int p0, int pc) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel(ctx, "conv", NULL, "im2col", &k));
    FCL_TRY(fcl_args(k, "ttuuuuuuuuuuuu", x, cols, (unsigned)n0, (unsigned)nb, (unsigned)g->cin,
                     (unsigned)g->h, (unsigned)g->w, (unsigned)g->kh, (unsigned)g->kw,
                     (unsigned)g->stride, (unsigned)g->pad, (unsigned)g->ow, (unsigned)p0,
                     (unsigned)pc));
    return launch_1d(ctx, k, (size_t)nb * g->taps * pc);
}

/* The chunk loop shared by forward and backward: `step` runs on each chunk after its
 * workspace (cols [K, nb·pc] and t [Cout, nb·pc]) is allocated; it is freed on every path. */
typedef fewcl_status (*chunk_fn)(fewcl_context *ctx, const geom *g, fcl_tensor *cols, fcl_tensor *t,
                                 int n0, int nb, int p0, int pc, void *ud);

static fewcl_status for_each_chunk(fewcl_context *ctx, const geom *g, chunk_fn step, void *ud) {
    fcl_tensor cols, t;
    int chunk = g->images * g->columns;
    FCL_TRY(fcl_tensor_alloc1(ctx, &cols, FCL_MEM_WORKSPACE, g->taps * chunk));
    fewcl_status s = fcl_tensor_alloc1(ctx, &t, FCL_MEM_WORKSPACE, g->cout * chunk);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &cols);
        return s;
    }
    for (int n0 = 0; n0 < g->n && s == FEWCL_OK; n0 += g->images) {
        int nb = g->n - n0 < g->images ? g->n - n0 : g->images;
        for (int p0 = 0; p0 < g->plane && s == FEWCL_OK; p0 += g->columns) {
            int pc = g->plane - p0 < g->columns ? g->plane - p0 : g->columns;
            s = step(ctx, g, &cols, &t, n0, nb, p0, pc, ud);
        }
    }
    fcl_tensor_free(ctx, &t);
    fcl_tensor_free(ctx, &cols);
    return s;
}

/* Moves a chunk between NCHW and the GEMM layout [Cout, nb·pc] (chunk_to_nchw adds the bias
 * when b is given; nchw_to_chunk ignores b). */
static fewcl_status reshuffle(fewcl_context *ctx, const geom *g, const char *kernel,
                              const fcl_tensor *from, fcl_tensor *to, const fcl_tensor *b, int n0,
                              int nb, int p0, int pc) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel(ctx, "conv", NULL, kernel, &k));
    if (strcmp(kernel, "chunk_to_nchw") == 0)
        FCL_TRY(fcl_args(k, "tttiuuuuuu", from, to, b ? b : from, b != NULL, (unsigned)n0,
                         (unsigned)nb, (unsigned)g->cout, (unsigned)g->plane, (unsigned)p0,
                         (unsigned)pc));
    else
        FCL_TRY(fcl_args(k, "ttuuuuuu", from, to, (unsigned)n0, (unsigned)nb, (unsigned)g->cout,
                         (unsigned)g->plane, (unsigned)p0, (unsigned)pc));
    return launch_1d(ctx, k, (size_t)g->cout * nb * pc);
}

typedef struct forward_ud {
    const fcl_tensor *x, *w, *b;
    fcl_tensor *y;
} forward_ud;

/* t[Cout, nb·pc] = W[Cout,K] · cols[K, nb·pc]: one GEMM for the chunk; then y = t (+ b). */
static fewcl_status forward_chunk(fewcl_context *ctx, const geom *g, fcl_tensor *cols,
                                  fcl_tensor *t, int n0, int nb, int p0, int pc, void *ud) {
    forward_ud *u = ud;
    int cn = nb * pc;
    FCL_TRY(im2col(ctx, g, u->x, cols, n0, nb, p0, pc));
    FCL_TRY(fcl_gemm(ctx, 0, 0, g->cout, cn, g->taps, 1.0f, (fcl_matrix){u->w, 0, g->taps},
                     (fcl_matrix){cols, 0, cn}, 0.0f, (fcl_matrix){t, 0, cn}));
    return reshuffle(ctx, g, "chunk_to_nchw", t, u->y, u->b, n0, nb, p0, pc);
}

/* ---- the host path (CPU devices, see gemm_host.h) -------------------------------------------
 * The same chunks and workspace as the kernels, but im2col, col2im, the bias and db run as C
 * loops on the mapped buffers and the GEMMs call the host BLAS directly: one map set per call
 * instead of one per GEMM, and no PoCL launches of the element-per-work-item kernels. */

/* Walks the output pixels [p0, p0+pc) in runs along output rows: in the body (the last
 * arguments), q0 is the run's first column of the chunk (p − p0), oh its output row, ow0 its
 * first output column, and run its length. */
#define FOR_EACH_RUN(g, p0, pc, ...)                                                               \
    for (int q0 = 0, p_ = (p0); q0 < (pc);) {                                                      \
        int oh = p_ / (g)->ow, ow0 = p_ % (g)->ow;                                                 \
        int run = (g)->ow - ow0 < (pc)-q0 ? (g)->ow - ow0 : (pc)-q0;                               \
        __VA_ARGS__;                                                                               \
        q0 += run, p_ += run;                                                                      \
    }

/* The part [*lo, *hi) of a run of `run` output columns from ow0 whose input column
 * iw = (ow0 + j)·stride − pad + kw lies inside [0, w): the rest reads the zero padding. */
static void valid_span(const geom *g, int kw, int ow0, int run, int *lo, int *hi) {
    int first = g->pad - kw, last = g->w - 1 + g->pad - kw; /* (ow0 + j)·stride in [first, last] */
    int a = first <= 0 ? 0 : (first + g->stride - 1) / g->stride;
    int b = last < 0 ? -1 : last / g->stride;
    *lo = a - ow0 < 0 ? 0 : a - ow0 > run ? run : a - ow0;
    *hi = b + 1 - ow0 < *lo ? *lo : b + 1 - ow0 > run ? run : b + 1 - ow0;
}

/* cols[k][i·pc + q] for image i of the chunk, exactly as the im2col kernel writes it
 * (cl/conv.cl). One image at a time, so that its GEMM reads the columns while they are still
 * in cache. */
static void im2col_host(const geom *g, const float *x, float *cols, int n0, int nb, int i, int p0,
                        int pc) {
    for (int k = 0; k < g->taps; k++) {
        int kw = k % g->kw, kh = (k / g->kw) % g->kh, c = k / (g->kw * g->kh);
        const float *src = x + ((size_t)(n0 + i) * g->cin + c) * g->h * g->w;
        float *dst = cols + ((size_t)k * nb + i) * pc;
        FOR_EACH_RUN(g, p0, pc, {
            int ih = oh * g->stride - g->pad + kh;
            float *d = dst + q0;
            if (ih < 0 || ih >= g->h) {
                memset(d, 0, (size_t)run * sizeof *d);
            } else {
                int lo, hi;
                valid_span(g, kw, ow0, run, &lo, &hi);
                const float *row = src + (size_t)ih * g->w + (ow0 * g->stride - g->pad + kw);
                memset(d, 0, (size_t)lo * sizeof *d);
                if (g->stride == 1)
                    memcpy(d + lo, row + lo, (size_t)(hi - lo) * sizeof *d);
                else
                    for (int j = lo; j < hi; j++)
                        d[j] = row[j * g->stride];
                memset(d + hi, 0, (size_t)(run - hi) * sizeof *d);
            }
        })
    }
}

/* dx[n0+i] (+)= col2im(dcols[i]) as a scatter in the order k = (c, kh, kw) ascending: every
 * input pixel receives its terms in the kernel's gather order (kh, kw ascending). The first
 * column chunk of an image overwrites (dx is zeroed first), later ones add. */
static void col2im_host(const geom *g, const float *dcols, float *dx, int n0, int nb, int i, int p0,
                        int pc) {
    size_t image = (size_t)g->cin * g->h * g->w;
    if (p0 == 0) memset(dx + (size_t)(n0 + i) * image, 0, image * sizeof *dx);
    for (int k = 0; k < g->taps; k++) {
        int kw = k % g->kw, kh = (k / g->kw) % g->kh, c = k / (g->kw * g->kh);
        float *dst = dx + (size_t)(n0 + i) * image + (size_t)c * g->h * g->w;
        const float *src = dcols + ((size_t)k * nb + i) * pc;
        FOR_EACH_RUN(g, p0, pc, {
            int ih = oh * g->stride - g->pad + kh;
            if (ih >= 0 && ih < g->h) {
                int lo, hi;
                valid_span(g, kw, ow0, run, &lo, &hi);
                float *row = dst + (size_t)ih * g->w + (ow0 * g->stride - g->pad + kw);
                const float *from = src + q0;
                for (int j = lo; j < hi; j++)
                    row[j * g->stride] += from[j];
            }
        })
    }
}

/* The host path runs the images of each chunk on FEWCL_HOST_THREADS threads (default: the
 * online cores, at most 16): contiguous shares, each image in its own slice of the columns, so
 * y and dx are written by one thread each; dW is summed per share (share 0 into dW itself,
 * the others into private partials added afterwards in share order), so results are
 * deterministic for a given thread count. The BLAS calls inside run single-threaded. */
#define MAX_HOST_THREADS 16

typedef struct host_args {
    const fcl_tensor *x, *w, *b, *dy;
    fcl_tensor *y, *dx, *dw, *db;
} host_args;

typedef struct host_share host_share;
typedef void (*image_fn)(host_share *s, int n0, int nb, int i, int p0, int pc);

/* One thread's share of a chunk: images [i0, i1). */
struct host_share {
    const geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *cols; /* dw: dW itself (share 0) or this share's partial */
    image_fn image;
    int n0, nb, p0, pc, i0, i1, profiling;
    double t, gemm_ms, host_ms; /* profiling: this share's wall time in GEMMs and other work */
};

static int host_threads(void) {
    static int n;
    if (!n) {
        const char *env = getenv("FEWCL_HOST_THREADS");
        long v = env && *env ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);
        n = v < 1 ? 1 : v > MAX_HOST_THREADS ? MAX_HOST_THREADS : (int)v;
    }
    return n;
}

/* Adds the time since the last mark to the share's GEMM or other-work counter. */
static void mark(host_share *s, int gemm) {
    if (!s->profiling) return;
    double t = fcl_host_seconds();
    *(gemm ? &s->gemm_ms : &s->host_ms) += (t - s->t) * 1e3;
    s->t = t;
}

static void *run_share(void *arg) {
    host_share *s = arg;
    fcl_host_blas_single_thread();
    if (s->profiling) s->t = fcl_host_seconds();
    for (int i = s->i0; i < s->i1; i++)
        s->image(s, s->n0, s->nb, i, s->p0, s->pc);
    return NULL;
}

/* Forward, image i: im2col and y[n][:, p0:] = W · cols[i] (+ b). */
static void forward_image(host_share *s, int n0, int nb, int i, int p0, int pc) {
    const geom *g = s->g;
    im2col_host(g, s->x, s->cols, n0, nb, i, p0, pc);
    mark(s, 0);
    float *yi = s->y + (size_t)(n0 + i) * g->cout * g->plane + p0;
    fcl_host_sgemm(0, 0, g->cout, pc, g->taps, 1.0f, s->w, g->taps, s->cols + (size_t)i * pc,
                   nb * pc, 0.0f, yi, g->plane);
    mark(s, 1);
    for (int c = 0; s->b && c < g->cout; c++) /* the bias, while y[n] is in cache */
        for (int q = 0; q < pc; q++)
            yi[(size_t)c * g->plane + q] += s->b[c];
}

/* Backward, image i: dW += dy[n] · cols[i]ᵀ (the share's images in order) and
 * dx = col2im(Wᵀ · dy[n]) over the same columns, hot in cache. */
static void backward_image(host_share *s, int n0, int nb, int i, int p0, int pc) {
    const geom *g = s->g;
    const float *dyi = s->dy + (size_t)(n0 + i) * g->cout * g->plane + p0;
    float *ci = s->cols + (size_t)i * pc;
    if (s->dw) {
        im2col_host(g, s->x, s->cols, n0, nb, i, p0, pc);
        mark(s, 0);
        fcl_host_sgemm(0, 1, g->cout, g->taps, pc, 1.0f, dyi, g->plane, ci, nb * pc, 1.0f, s->dw,
                       g->taps);
        mark(s, 1);
    }
    if (s->dx) {
        fcl_host_sgemm(1, 0, g->taps, pc, g->cout, 1.0f, s->w, g->taps, dyi, g->plane, 0.0f, ci,
                       nb * pc);
        mark(s, 1);
        col2im_host(g, s->cols, s->dx, n0, nb, i, p0, pc);
        mark(s, 0);
    }
}

/* Runs `image` over every image of every chunk, each chunk's images in shares on threads
 * (a share whose thread cannot be started runs on the caller's). Share 0 is the caller's:
 * its times go to the profile. Partial dW sums are added into dW at the end. */
static void for_each_image(fewcl_context *ctx, const geom *g, const host_share *proto,
                           image_fn image) {
    int threads = host_threads() < g->images ? host_threads() : g->images;
    host_share sh[MAX_HOST_THREADS];
    float *partial[MAX_HOST_THREADS] = {0};
    size_t dw_len = (size_t)g->cout * g->taps;
    for (int t = 0; t < threads; t++) {
        sh[t] = *proto;
        sh[t].image = image, sh[t].profiling = ctx->profiling;
        if (t > 0 && proto->dw && !(sh[t].dw = partial[t] = calloc(dw_len, sizeof(float)))) {
            threads = t; /* no memory for another partial: fewer shares */
            break;
        }
    }
    for (int n0 = 0; n0 < g->n; n0 += g->images) {
        int nb = g->n - n0 < g->images ? g->n - n0 : g->images;
        for (int p0 = 0; p0 < g->plane; p0 += g->columns) {
            int pc = g->plane - p0 < g->columns ? g->plane - p0 : g->columns;
            pthread_t tid[MAX_HOST_THREADS];
            int started[MAX_HOST_THREADS] = {0};
            for (int t = 0; t < threads; t++) {
                sh[t].n0 = n0, sh[t].nb = nb, sh[t].p0 = p0, sh[t].pc = pc;
                sh[t].i0 = nb * t / threads, sh[t].i1 = nb * (t + 1) / threads;
                if (t > 0 && sh[t].i1 > sh[t].i0)
                    started[t] = pthread_create(&tid[t], NULL, run_share, &sh[t]) == 0;
            }
            run_share(&sh[0]);
            for (int t = 1; t < threads; t++)
                if (started[t])
                    pthread_join(tid[t], NULL);
                else
                    run_share(&sh[t]);
        }
    }
    fcl_host_blas_restore_threads();
    for (int t = 1; t < threads; t++) {
        for (size_t j = 0; partial[t] && j < dw_len; j++)
            proto->dw[j] += partial[t][j];
        free(partial[t]);
    }
    if (ctx->profiling) {
        ctx->gemm_profile_ms += sh[0].gemm_ms, ctx->host_profile_ms += sh[0].host_ms;
        ctx->gemm_calls += (long)g->n * (proto->dx && proto->dw ? 2 : 1);
    }
}

static host_share share_of(const fcl_host_map *map, const geom *g, const host_args *a,
                           float *cols) {
    return (host_share){.g = g,
                        .x = a->x ? fcl_host_ptr(map, a->x) : NULL,
                        .w = fcl_host_ptr(map, a->w),
                        .b = a->b ? fcl_host_ptr(map, a->b) : NULL,
                        .dy = a->dy ? fcl_host_ptr(map, a->dy) : NULL,
                        .y = a->y ? fcl_host_ptr(map, a->y) : NULL,
                        .dx = a->dx ? fcl_host_ptr(map, a->dx) : NULL,
                        .dw = a->dw ? fcl_host_ptr(map, a->dw) : NULL,
                        .cols = cols};
}

static void forward_host(fewcl_context *ctx, const geom *g, const fcl_host_map *map,
                         const host_args *a, float *cols) {
    host_share proto = share_of(map, g, a, cols);
    for_each_image(ctx, g, &proto, forward_image);
}

/* Backward: db += Σ dy (per channel: images, then pixels, in order), then dW and dx. */
static void backward_host(fewcl_context *ctx, const geom *g, const fcl_host_map *map,
                          const host_args *a, float *cols) {
    host_share proto = share_of(map, g, a, cols);
    double t = ctx->profiling ? fcl_host_seconds() : 0;
    if (a->db) {
        float *db = fcl_host_ptr(map, a->db);
        size_t y_image = (size_t)g->cout * g->plane;
        for (int c = 0; c < g->cout; c++) {
            float s = 0.0f;
            for (int n = 0; n < g->n; n++) {
                const float *row = proto.dy + (size_t)n * y_image + (size_t)c * g->plane;
                for (int p = 0; p < g->plane; p++)
                    s += row[p];
            }
            db[c] += s;
        }
        if (ctx->profiling) ctx->host_profile_ms += (fcl_host_seconds() - t) * 1e3;
    }
    if (proto.dx || proto.dw) for_each_image(ctx, g, &proto, backward_image);
}

/* The host path of one call: the kernels' workspace (so that plans and peaks do not
 * depend on the path), every tensor mapped once, `run` over all chunks, then unmapped.
 */
static fewcl_status run_host(fewcl_context *ctx, const geom *g, const host_args *a,
                             void (*run)(fewcl_context *, const geom *, const fcl_host_map *,
                                         const host_args *, float *)) {
    fcl_tensor cols = {0};
    int need_cols = !a->dy || a->dx || a->dw; /* db alone needs no columns (as with kernels) */
    if (need_cols)
        FCL_TRY(fcl_tensor_alloc1(ctx, &cols, FCL_MEM_WORKSPACE, g->images * g->taps * g->columns));
    fewcl_status s = FEWCL_OK;
    if (!ctx->dry_run) {
        fcl_host_map map = {0};
        const fcl_tensor *all[] = {
            a->x, a->w, a->b, a->dy, a->y, a->dx, a->dw, a->db, need_cols ? &cols : NULL};
        for (size_t i = 0; i < sizeof all / sizeof *all && s == FEWCL_OK; i++)
            s = fcl_host_map_add(&map, all[i]);
        if (s == FEWCL_OK) s = fcl_host_map_begin(ctx, &map);
        if (s == FEWCL_OK) {
            run(ctx, g, &map, a, need_cols ? fcl_host_ptr(&map, &cols) : NULL);
            s = fcl_host_map_end(ctx, &map);
        }
    }
    if (need_cols) fcl_tensor_free(ctx, &cols);
    return s;
}

fewcl_status fcl_conv2d_forward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                const fcl_tensor *b, const fcl_conv2d_params *p, fcl_tensor *y) {
    geom g;
    FCL_TRY(make_geom(ctx, "conv2d forward", x, w, b, y, p, &g));
    if (g.host)
        return run_host(ctx, &g, &(host_args){.x = x, .w = w, .b = b, .y = y}, forward_host);
    forward_ud u = {x, w, b, y};
    return for_each_chunk(ctx, &g, forward_chunk, &u);
}

typedef struct backward_ud {
    const fcl_tensor *x, *w, *dy;
    fcl_tensor *dx, *dw;
} backward_ud;

static fewcl_status backward_chunk(fewcl_context *ctx, const geom *g, fcl_tensor *cols,
                                   fcl_tensor *t, int n0, int nb, int p0, int pc, void *ud) {
    backward_ud *u = ud;
    int cn = nb * pc;
    /* t[Cout, nb·pc] = the chunk of dy, in the layout of the GEMMs. */
    FCL_TRY(reshuffle(ctx, g, "nchw_to_chunk", u->dy, t, NULL, n0, nb, p0, pc));
    fcl_matrix dy = {t, 0, cn};
    if (u->dw) {
        /* dW[Cout,K] += t[Cout, nb·pc] · cols[K, nb·pc]ᵀ: one GEMM over the chunk's
         * pixels. */
        FCL_TRY(im2col(ctx, g, u->x, cols, n0, nb, p0, pc));
        FCL_TRY(fcl_gemm(ctx, 0, 1, g->cout, g->taps, cn, 1.0f, dy, (fcl_matrix){cols, 0, cn}, 1.0f,
                         (fcl_matrix){u->dw, 0, g->taps}));
    }
    if (u->dx) {
        /* dcols[K, nb·pc] = W[Cout,K]ᵀ · t[Cout, nb·pc] (reusing the workspace: the
         * queue is in order, so the dW GEMM has read the columns before they are
         * overwritten). */
        FCL_TRY(fcl_gemm(ctx, 1, 0, g->taps, cn, g->cout, 1.0f, (fcl_matrix){u->w, 0, g->taps}, dy,
                         0.0f, (fcl_matrix){cols, 0, cn}));
        fcl_kernel_entry *k;
        FCL_TRY(fcl_kernel(ctx, "conv", NULL, "col2im", &k));
        FCL_TRY(fcl_args(k, "ttuuuuuuuuuuuuui", cols, u->dx, (unsigned)n0, (unsigned)nb,
                         (unsigned)g->cin, (unsigned)g->h, (unsigned)g->w, (unsigned)g->kh,
                         (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad, (unsigned)g->oh,
                         (unsigned)g->ow, (unsigned)p0, (unsigned)pc, p0 > 0));
        FCL_TRY(launch_1d(ctx, k, (size_t)nb * g->cin * g->h * g->w));
    }
    return FEWCL_OK;
}

fewcl_status fcl_conv2d_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *w,
                                 const fcl_tensor *dy, const fcl_conv2d_params *p, fcl_tensor *dx,
                                 fcl_tensor *dw, fcl_tensor *db) {
    geom g;
    FCL_TRY(make_geom(ctx, "conv2d backward", x, w, db, dy, p, &g));
    if ((dx && !fcl_same_shape(dx, x)) || (dw && !fcl_same_shape(dw, w))) {
        char s1[64], s2[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "conv2d backward: dx %s / dW %s do not have the shapes of x and W",
                        dx ? fcl_shape_str(dx, s1, sizeof s1) : "-",
                        dw ? fcl_shape_str(dw, s2, sizeof s2) : "-");
    }
    if (g.host)
        return run_host(ctx, &g,
                        &(host_args){.x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db},
                        backward_host);
    if (db) {
        fcl_kernel_entry *k;
        FCL_TRY(fcl_kernel(ctx, "conv", NULL, "channel_sum", &k));
        size_t lws = fcl_wg_1d(ctx), gws = lws * (size_t)g.cout;
        FCL_TRY(fcl_args(k, "ttuuuL", dy, db, (unsigned)g.n, (unsigned)g.cout, (unsigned)g.plane,
                         lws * sizeof(float)));
        FCL_TRY(fcl_launch(ctx, k, 1, &gws, &lws));
    }
    if (!dx && !dw) return FEWCL_OK;
    backward_ud u = {x, w, dy, dx, dw};
    return for_each_chunk(ctx, &g, backward_chunk, &u);
}
