/* The convolution's host path (CPU devices with host BLAS, see gemm_host.h): the tensors are
 * mapped once per call and the work runs on the CPU, the images of each chunk split over
 * threads. Two of the table's algorithms (conv_algo.h) live here:
 *   - im2col + one GEMM per image, as the OpenCL path (any shape);
 *   - 'same' convolutions (stride 1, odd square kernel, padding k/2, the ConvNets' and most
 *     of the ResNets' 3x3 layers) as k² GEMMs over shifted views of the zero-padded image,
 *     with no column matrix: see forward_same.
 * and the driver every host algorithm runs in, fcl_conv_host_run. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conv_impl.h"
#include "gemm_host.h"
#include "hostmap.h"

typedef fcl_conv_geom geom;

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

/* d[0, n) = the input row's values at columns lo·stride, (lo+1)·stride, ... for j in [lo, hi),
 * zero elsewhere (row: the row seen from output column 0's first tap column). */
static inline void gather_row(const geom *g, const float *row, float *d, int lo, int hi, int n) {
    for (int j = 0; j < lo; j++)
        d[j] = 0.0f;
    if (g->stride == 1)
        memcpy(d + lo, row + lo, (size_t)(hi - lo) * sizeof *d);
    else if (g->stride == 2) /* the ResNets' downsampling layers: a constant stride vectorises */
        for (int j = lo; j < hi; j++)
            d[j] = row[2 * j];
    else
        for (int j = lo; j < hi; j++)
            d[j] = row[j * g->stride];
    for (int j = hi; j < n; j++)
        d[j] = 0.0f;
}

/* im2col over whole output rows [oh0, oh0 + rows): every row's span of valid columns is the
 * same for a given kw, so it is found once per tap. */
static void im2col_rows(const geom *g, const float *x, float *cols, int n0, int nb, int i, int oh0,
                        int rows) {
    size_t pc = (size_t)rows * g->ow;
    for (int k = 0; k < g->taps; k++) {
        int kw = k % g->kw, kh = (k / g->kw) % g->kh, c = k / (g->kw * g->kh), lo, hi;
        const float *src = x + ((size_t)(n0 + i) * g->cin + c) * g->h * g->w + kw - g->pad;
        float *dst = cols + ((size_t)k * nb + i) * pc;
        valid_span(g, kw, 0, g->ow, &lo, &hi);
        for (int r = 0; r < rows; r++) {
            int ih = (oh0 + r) * g->stride - g->pad + kh;
            if (ih < 0 || ih >= g->h)
                gather_row(g, src, dst + (size_t)r * g->ow, 0, 0, g->ow);
            else
                gather_row(g, src + (size_t)ih * g->w, dst + (size_t)r * g->ow, lo, hi, g->ow);
        }
    }
}

/* cols[k][i·pc + q] for image i of the chunk, exactly as the im2col kernel writes it
 * (cl/conv.cl). One image at a time, so that its GEMM reads the columns while they are still
 * in cache. */
void fcl_conv_host_im2col_image(const geom *g, const float *x, float *cols, int n0, int nb, int i,
                                int p0, int pc) {
    if (p0 % g->ow == 0 && pc % g->ow == 0) {
        im2col_rows(g, x, cols, n0, nb, i, p0 / g->ow, pc / g->ow);
        return;
    }
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
void fcl_conv_host_col2im_image(const geom *g, const float *dcols, float *dx, int n0, int nb, int i,
                                int p0, int pc) {
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
#define MAX_HOST_THREADS FCL_CONV_MAX_THREADS

typedef struct host_share host_share;
typedef void (*image_fn)(host_share *s, int n0, int nb, int i, int p0, int pc);

/* One thread's share of a chunk: images [i0, i1). */
struct host_share {
    const geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *cols; /* dw: dW itself (share 0) or this share's partial */
    const float *wk;           /* 'same' convolutions: W as k² matrices [Cout, Cin] */
    image_fn image;
    int n0, nb, p0, pc, i0, i1, profiling;
    double t, gemm_ms, host_ms; /* profiling: this share's wall time in GEMMs and other work */
};

int fcl_conv_host_threads(void) {
    static atomic_int kept; /* contexts on several threads ask at once */
    int n = atomic_load(&kept);
    if (!n) {
        const char *env = getenv("FEWCL_HOST_THREADS");
        long v = env && *env ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);
        n = v < 1 ? 1 : v > MAX_HOST_THREADS ? MAX_HOST_THREADS : (int)v;
        atomic_store(&kept, n);
    }
    return n;
}

typedef struct range_job {
    void (*fn)(void *arg, long i0, long i1);
    void *arg;
    long i0, i1;
} range_job;

static void *run_range(void *p) {
    const range_job *j = p;
    if (j->i1 > j->i0) j->fn(j->arg, j->i0, j->i1);
    return NULL;
}

void fcl_host_parallel(long n, void (*fn)(void *arg, long i0, long i1), void *arg) {
    int threads = fcl_conv_host_threads() < n ? fcl_conv_host_threads() : (int)(n > 0 ? n : 1);
    range_job jobs[MAX_HOST_THREADS];
    pthread_t tid[MAX_HOST_THREADS];
    int started[MAX_HOST_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t] = (range_job){fn, arg, n * t / threads, n * (t + 1) / threads};
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, run_range, &jobs[t]) == 0;
    }
    run_range(&jobs[0]);
    for (int t = 1; t < threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_range(&jobs[t]);
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
    fcl_conv_host_im2col_image(g, s->x, s->cols, n0, nb, i, p0, pc);
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
        fcl_conv_host_im2col_image(g, s->x, s->cols, n0, nb, i, p0, pc);
        mark(s, 0);
        fcl_host_sgemm(0, 1, g->cout, g->taps, pc, 1.0f, dyi, g->plane, ci, nb * pc, 1.0f, s->dw,
                       g->taps);
        mark(s, 1);
    }
    if (s->dx) {
        fcl_host_sgemm(1, 0, g->taps, pc, g->cout, 1.0f, s->w, g->taps, dyi, g->plane, 0.0f, ci,
                       nb * pc);
        mark(s, 1);
        fcl_conv_host_col2im_image(g, s->cols, s->dx, n0, nb, i, p0, pc);
        mark(s, 0);
    }
}

/* ---- 'same' convolutions without columns ----
 * Stride 1, an odd k x k kernel and padding p = k/2: with the image zero-padded to Hp x Wp
 * (Hp = H + 2p, Wp = W + 2p), tap (kh, kw) of output pixel (oh, ow) reads the padded image at
 * oh·Wp + ow + kh·Wp + kw. On the Wp-wide grid of output positions the convolution is then
 * y = Σ_taps W[:, :, kh, kw] · X_pad[:, shift(kh, kw) ...] — k² GEMMs with K = Cin over
 * views of the padded image, no k²-times larger column matrix. The grid's last 2p columns
 * of each row lie past the image: dropped (y, dx) or met by zeros (dW). Each channel's
 * padded plane is followed by k zeros, so the last views stay inside the scratch. */

static int same_pad(const geom *g) { return g->pad; }
static int grid_w(const geom *g) { return g->w + 2 * g->pad; }
static size_t chan_stride(const geom *g) {
    return (size_t)(g->h + 2 * g->pad) * grid_w(g) + (size_t)g->kh;
}

/* Scratch floats per image: padded input, padded dy, and the Wp-wide result (y or dx). */
static size_t same_scratch(const geom *g) {
    size_t cs = chan_stride(g), grid = (size_t)g->h * grid_w(g);
    size_t fwd = (size_t)g->cin * cs + (size_t)g->cout * grid;
    size_t bwd = (size_t)(g->cin + g->cout) * cs + (size_t)g->cin * grid;
    return fwd > bwd ? fwd : bwd;
}

/* Whether the shifted-view algorithm can take this call: a 'same' convolution, whole images
 * per chunk, and each image's scratch inside its share of the columns' workspace (the first
 * ConvNet layer, 3 → 64 channels, is not: its result grid outgrows 27 columns per pixel). */
int fcl_conv_host_shifted_eligible(const geom *g) {
    return g->stride == 1 && g->kh == g->kw && g->kh > 1 && g->kh % 2 == 1 && g->pad == g->kh / 2 &&
           g->columns == g->plane && same_scratch(g) <= (size_t)g->taps * g->plane;
}

/* planes [h, w] → [h + 2p, w + 2p] with zero borders, cs floats apart (zeros after each). */
static void pad_planes(const float *src, int planes, int h, int w, int p, size_t cs, float *dst) {
    int wp = w + 2 * p;
    for (int c = 0; c < planes; c++) {
        const float *in = src + (size_t)c * h * w;
        float *out = dst + (size_t)c * cs;
        memset(out, 0, ((size_t)p * wp + p) * sizeof *out);
        for (int r = 0; r < h; r++) {
            float *row = out + (size_t)(r + p) * wp + p;
            memcpy(row, in + (size_t)r * w, (size_t)w * sizeof *row);
            memset(row + w, 0, 2 * (size_t)p * sizeof *row); /* right border, next left */
        }
        size_t used = (size_t)(h + p) * wp + p;
        memset(out + used, 0, (cs - used) * sizeof *out);
    }
}

/* Forward, image i: y[n] = crop(Σ_taps Wk · view) + b. */
static void forward_same(host_share *s, int n0, int nb, int i, int p0, int pc) {
    (void)nb, (void)p0, (void)pc;
    const geom *g = s->g;
    int k = g->kh, p = same_pad(g), wp = grid_w(g), grid = g->h * wp;
    size_t cs = chan_stride(g);
    float *xp = s->cols + (size_t)i * g->taps * g->plane, *yf = xp + (size_t)g->cin * cs;
    pad_planes(s->x + (size_t)(n0 + i) * g->cin * g->h * g->w, g->cin, g->h, g->w, p, cs, xp);
    mark(s, 0);
    for (int t = 0; t < k * k; t++)
        fcl_host_sgemm(0, 0, g->cout, grid, g->cin, 1.0f, s->wk + (size_t)t * g->cout * g->cin,
                       g->cin, xp + (t / k) * wp + t % k, (int)cs, t ? 1.0f : 0.0f, yf, grid);
    mark(s, 1);
    float *y = s->y + (size_t)(n0 + i) * g->cout * g->plane;
    for (int c = 0; c < g->cout; c++) {
        float b = s->b ? s->b[c] : 0.0f;
        for (int r = 0; r < g->h; r++) {
            const float *from = yf + (size_t)c * grid + (size_t)r * wp;
            float *to = y + (size_t)c * g->plane + (size_t)r * g->w;
            for (int q = 0; q < g->w; q++)
                to[q] = from[q] + b;
        }
    }
    mark(s, 0);
}

/* Backward, image i: dWk[t] += dy_grid · viewᵀ (dy on the Wp-wide grid is the padded dy seen
 * from (p, p): zeros past each row), and dx = crop(Σ_taps Wkᵀ · dy_pad from the mirrored
 * shift (2p − kh)·Wp + 2p − kw). */
static void backward_same(host_share *s, int n0, int nb, int i, int p0, int pc) {
    (void)nb, (void)p0, (void)pc;
    const geom *g = s->g;
    int k = g->kh, p = same_pad(g), wp = grid_w(g), grid = g->h * wp;
    size_t cs = chan_stride(g), image = (size_t)g->h * g->w;
    float *xp = s->cols + (size_t)i * g->taps * g->plane, *dyp = xp + (size_t)g->cin * cs;
    float *dxf = dyp + (size_t)g->cout * cs;
    pad_planes(s->dy + (size_t)(n0 + i) * g->cout * image, g->cout, g->h, g->w, p, cs, dyp);
    if (s->dw) {
        pad_planes(s->x + (size_t)(n0 + i) * g->cin * image, g->cin, g->h, g->w, p, cs, xp);
        mark(s, 0);
        for (int t = 0; t < k * k; t++)
            fcl_host_sgemm(0, 1, g->cout, g->cin, grid, 1.0f, dyp + (size_t)p * wp + p, (int)cs,
                           xp + (t / k) * wp + t % k, (int)cs, 1.0f,
                           s->dw + (size_t)t * g->cout * g->cin, g->cin);
        mark(s, 1);
    }
    if (s->dx) {
        for (int t = 0; t < k * k; t++)
            fcl_host_sgemm(1, 0, g->cin, grid, g->cout, 1.0f, s->wk + (size_t)t * g->cout * g->cin,
                           g->cin, dyp + (2 * p - t / k) * wp + 2 * p - t % k, (int)cs,
                           t ? 1.0f : 0.0f, dxf, grid);
        mark(s, 1);
        float *dx = s->dx + (size_t)(n0 + i) * g->cin * image;
        for (int c = 0; c < g->cin; c++)
            for (int r = 0; r < g->h; r++)
                memcpy(dx + (size_t)c * image + (size_t)r * g->w,
                       dxf + (size_t)c * grid + (size_t)r * wp, (size_t)g->w * sizeof *dx);
        mark(s, 0);
    }
}

/* Runs `image` over every image of every chunk, each chunk's images in shares on threads
 * (a share whose thread cannot be started runs on the caller's). Share 0 is the caller's:
 * its times go to the profile. Partial dW sums are added into dW at the end. Returns -1,
 * having done nothing, when the shifted-view path finds no memory for share 0's partial. */
static int for_each_image(fewcl_context *ctx, const geom *g, const host_share *proto,
                          image_fn image) {
    int threads = fcl_conv_host_threads() < g->images ? fcl_conv_host_threads() : g->images;
    host_share sh[MAX_HOST_THREADS];
    float *partial[MAX_HOST_THREADS] = {0};
    size_t dw_len = (size_t)g->cout * g->taps;
    int own = proto->wk != NULL; /* shifted views: every share sums dWk[tap][Cout][Cin] */
    for (int t = 0; t < threads; t++) {
        sh[t] = *proto;
        sh[t].image = image, sh[t].profiling = ctx->profiling;
        if ((t > 0 || own) && proto->dw &&
            !(sh[t].dw = partial[t] = calloc(dw_len, sizeof(float)))) {
            if (t == 0) return -1;
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
    int taps = g->kh * g->kw;
    for (int t = own ? 0 : 1; t < threads; t++) {
        if (!partial[t]) continue;
        if (!own)
            for (size_t j = 0; j < dw_len; j++)
                proto->dw[j] += partial[t][j];
        else
            fcl_conv_host_add_taps_major(g, partial[t], proto->dw, 0, g->cout);
        free(partial[t]);
    }
    if (ctx->profiling) {
        ctx->gemm_profile_ms += sh[0].gemm_ms, ctx->host_profile_ms += sh[0].host_ms;
        ctx->gemm_calls += (long)g->n * (proto->dx && proto->dw ? 2 : 1) * (own ? taps : 1);
    }
    return 0;
}

void fcl_conv_host_taps_major(const geom *g, const float *w, float *wk, long co0, long co1) {
    int taps = g->kh * g->kw;
    for (int tap = 0; tap < taps; tap++)
        for (long co = co0; co < co1; co++) {
            const float *from = w + (size_t)co * g->taps + tap;
            float *to = wk + ((size_t)tap * g->cout + co) * g->cin;
            for (int c = 0; c < g->cin; c++)
                to[c] = from[(size_t)c * taps];
        }
}

void fcl_conv_host_add_taps_major(const geom *g, const float *dwk, float *dw, long co0,
                                  long co1) {
    int taps = g->kh * g->kw;
    for (int tap = 0; tap < taps; tap++)
        for (long co = co0; co < co1; co++) {
            const float *from = dwk + ((size_t)tap * g->cout + co) * g->cin;
            float *to = dw + (size_t)co * g->taps + tap;
            for (int c = 0; c < g->cin; c++)
                to[(size_t)c * taps] += from[c];
        }
}

void fcl_conv_host_mark(fewcl_context *ctx, double *t, int gemm) {
    if (!ctx->profiling) return;
    double now = fcl_host_seconds();
    *(gemm ? &ctx->gemm_profile_ms : &ctx->host_profile_ms) += (now - *t) * 1e3;
    *t = now;
}

/* The tap-major weights of the shifted-view path (NULL: no memory; the caller uses im2col). */
static float *taps_major(const geom *g, const float *w) {
    float *wk = malloc((size_t)g->cout * g->taps * sizeof *wk);
    if (wk) fcl_conv_host_taps_major(g, w, wk, 0, g->cout);
    return wk;
}

/* One pass over the images with the shifted-view algorithm: falls back to im2col's image
 * functions (same workspace) when there is no host memory for the tap-major weights or the
 * partial sums. */
static void run_shifted(fewcl_context *ctx, const geom *g, host_share *proto, image_fn same,
                        image_fn columns) {
    float *wk = taps_major(g, proto->w);
    proto->wk = wk;
    if (!wk || for_each_image(ctx, g, proto, same) != 0) {
        proto->wk = NULL;
        for_each_image(ctx, g, proto, columns);
    }
    free(wk);
}

static host_share share_of(const geom *g, const fcl_conv_ptrs *p, float *cols) {
    return (host_share){.g = g,
                        .x = p->x,
                        .w = p->w,
                        .b = p->b,
                        .dy = p->dy,
                        .y = p->y,
                        .dx = p->dx,
                        .dw = p->dw,
                        .cols = cols};
}

static fewcl_status im2col_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p,
                                float *ws) {
    host_share proto = share_of(g, p, ws);
    for_each_image(ctx, g, &proto, p->y ? forward_image : backward_image);
    return FEWCL_OK;
}

static fewcl_status shifted_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p,
                                 float *ws) {
    host_share proto = share_of(g, p, ws);
    if (p->y)
        run_shifted(ctx, g, &proto, forward_same, forward_image);
    else
        run_shifted(ctx, g, &proto, backward_same, backward_image);
    return FEWCL_OK;
}

size_t fcl_conv_host_im2col_workspace(const geom *g) {
    return (size_t)g->images * g->taps * g->columns * sizeof(float);
}

/* Workspace only when there is more than the bias gradient to do (as on the OpenCL path). */
static size_t body_workspace(const geom *g, const fcl_conv_args *a) {
    return a->y || a->dx || a->dw ? fcl_conv_host_im2col_workspace(g) : 0;
}

fewcl_status fcl_conv_host_im2col(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return fcl_conv_host_run(ctx, g, a, body_workspace(g, a), im2col_body);
}

fewcl_status fcl_conv_host_shifted(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return fcl_conv_host_run(ctx, g, a, body_workspace(g, a), shifted_body);
}

/* db += Σ dy (per channel: images, then pixels, in order). */
static void bias_grad_host(fewcl_context *ctx, const geom *g, const float *dy, float *db) {
    double t = ctx->profiling ? fcl_host_seconds() : 0;
    size_t y_image = (size_t)g->cout * g->plane;
    for (int c = 0; c < g->cout; c++) {
        float s = 0.0f;
        for (int n = 0; n < g->n; n++) {
            const float *row = dy + (size_t)n * y_image + (size_t)c * g->plane;
            for (int q = 0; q < g->plane; q++)
                s += row[q];
        }
        db[c] += s;
    }
    if (ctx->profiling) ctx->host_profile_ms += (fcl_host_seconds() - t) * 1e3;
}

fewcl_status fcl_conv_host_run(fewcl_context *ctx, const geom *g, const fcl_conv_args *a,
                               size_t ws_bytes, fcl_conv_host_body body) {
    fcl_tensor ws = {0};
    if (ws_bytes)
        FCL_TRY(fcl_tensor_alloc1(ctx, &ws, FCL_MEM_WORKSPACE, (int)(ws_bytes / sizeof(float))));
    fewcl_status s = FEWCL_OK;
    if (!ctx->dry_run) {
        fcl_host_map map = {0};
        const fcl_tensor *all[] = {
            a->x, a->w, a->b, a->dy, a->y, a->dx, a->dw, a->db, ws_bytes ? &ws : NULL};
        for (size_t i = 0; i < sizeof all / sizeof *all && s == FEWCL_OK; i++)
            s = fcl_host_map_add(&map, all[i]);
        if (s == FEWCL_OK) s = fcl_host_map_begin(ctx, &map);
        if (s == FEWCL_OK) {
#define PTR(t) ((t) ? fcl_host_ptr(&map, (t)) : NULL)
            fcl_conv_ptrs p = {PTR(a->x), PTR(a->w),  PTR(a->b), PTR(a->dy),
                               PTR(a->y), PTR(a->dx), PTR(a->dw)};
#undef PTR
            if (a->db) bias_grad_host(ctx, g, p.dy, fcl_host_ptr(&map, a->db));
            if (a->y || a->dx || a->dw)
                s = body(ctx, g, &p, ws_bytes ? fcl_host_ptr(&map, &ws) : NULL);
            fewcl_status e = fcl_host_map_end(ctx, &map);
            if (s == FEWCL_OK) s = e;
        }
    }
    if (ws_bytes) fcl_tensor_free(ctx, &ws);
    return s;
}
