/* Batched GEMMs on the host path, for small planes (the late layers: 7x7 and 14x14 at 224 px,
 * 3x3 .. 11x11 at 84 px). im2col's per-image GEMMs there are thin: a 7x7 plane gives
 * [Cout, K]·[K, 49] products whose 49 columns leave the BLAS kernels' blocking mostly empty,
 * and dW += dy·colsᵀ sums over only 49 pixels per call. Here the columns of a chunk's images
 * sit side by side and each direction is one GEMM over all of them:
 *     forward   t[Cout, nb·P] = W[Cout, K] · cols[K, nb·P], then y = t (+ b) per image
 *     weights   dW[Cout, K] += t[Cout, nb·P] · cols[K, nb·P]ᵀ     (t: the chunk's dy)
 *     data      cols[K, nb·P] = W[Cout, K]ᵀ · t[Cout, nb·P], then dx = col2im(cols)
 * as the OpenCL path does (conv.c), each GEMM's output rows split over the host threads
 * (fcl_host_sgemm_rows; OpenBLAS's own threads are off by default, gemm_host.c) and the
 * reshuffles, im2col and col2im split image by image.
 * Workspace: cols and t of the chunk, (K + Cout)·P floats per image, as the OpenCL path's.
 * Rounding: each output is the same sum as im2col's (K products + bias, Cout products then at
 * most KH·KW col2im terms, N·P products + the old dW), only the GEMM's order of summation
 * differs; tests/test_conv_algo.c checks the summation bound. */
#include <pthread.h>
#include <string.h>

#include "conv_impl.h"
#include "gemm_host.h"

typedef fcl_conv_geom geom;

/* Whole images per chunk within the workspace bound (0: not even one). */
static int chunk_images(const geom *g) {
    size_t per = (size_t)g->plane * (g->taps + g->cout) * sizeof(float);
    size_t fit = g->limit / per;
    return fit < (size_t)g->n ? (int)fit : g->n;
}

int fcl_conv_host_batched_eligible(const geom *g) {
    return g->plane <= FCL_CONV_BATCHED_MAX_PLANE && g->columns == g->plane && chunk_images(g) >= 2;
}

size_t fcl_conv_host_batched_workspace(const geom *g) {
    return (size_t)chunk_images(g) * g->plane * (g->taps + g->cout) * sizeof(float);
}

/* ---- the per-image steps, on the host threads ---- */

enum { GATHER_DY, IM2COL, COL2IM, SCATTER_Y };

typedef struct job {
    const geom *g;
    const fcl_conv_ptrs *p;
    float *cols, *t; /* [K, nb·P] and [Cout, nb·P] */
    int step, n0, nb, i0, i1;
} job;

static void *run_job(void *arg) {
    const job *j = arg;
    const geom *g = j->g;
    size_t P = (size_t)g->plane, row = (size_t)j->nb * P, image = (size_t)g->cout * P;
    for (int i = j->i0; i < j->i1; i++) {
        float *t = j->t + (size_t)i * P;
        if (j->step == GATHER_DY) { /* t[c][i·P + q] = dy[n0 + i][c][q] */
            const float *dy = j->p->dy + (size_t)(j->n0 + i) * image;
            for (int c = 0; c < g->cout; c++)
                memcpy(t + c * row, dy + c * P, P * sizeof *t);
        } else if (j->step == SCATTER_Y) { /* y[n0 + i][c][q] = t[c][i·P + q] (+ b[c]) */
            float *y = j->p->y + (size_t)(j->n0 + i) * image;
            for (int c = 0; c < g->cout; c++) {
                float b = j->p->b ? j->p->b[c] : 0.0f, *to = y + c * P;
                const float *from = t + c * row;
                for (size_t q = 0; q < P; q++)
                    to[q] = from[q] + b;
            }
        } else if (j->step == IM2COL) {
            fcl_conv_host_im2col_image(g, j->p->x, j->cols, j->n0, j->nb, i, 0, g->plane);
        } else {
            fcl_conv_host_col2im_image(g, j->cols, j->p->dx, j->n0, j->nb, i, 0, g->plane);
        }
    }
    return NULL;
}

/* One step over the chunk's images, in contiguous shares on the host threads (a share whose
 * thread cannot be started runs on the caller's). Each image's output is written by one
 * thread: the result does not depend on the thread count. */
static void each_image(const geom *g, const fcl_conv_ptrs *p, float *cols, float *t, int step,
                       int n0, int nb) {
    int threads = fcl_conv_host_threads() < nb ? fcl_conv_host_threads() : nb;
    job jobs[FCL_CONV_MAX_THREADS];
    pthread_t tid[FCL_CONV_MAX_THREADS];
    int started[FCL_CONV_MAX_THREADS] = {0};
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){g, p, cols, t, step, n0, nb, nb * k / threads, nb * (k + 1) / threads};
        if (k > 0) started[k] = pthread_create(&tid[k], NULL, run_job, &jobs[k]) == 0;
    }
    run_job(&jobs[0]);
    for (int k = 1; k < threads; k++)
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            run_job(&jobs[k]);
}

static fewcl_status batched_body(fewcl_context *ctx, const geom *g, const fcl_conv_ptrs *p,
                                 float *ws) {
    int images = chunk_images(g), K = g->taps, co = g->cout;
    double t0 = ctx->profiling ? fcl_host_seconds() : 0;
    for (int n0 = 0; n0 < g->n; n0 += images) {
        int nb = g->n - n0 < images ? g->n - n0 : images, cn = nb * g->plane;
        float *cols = ws, *t = ws + (size_t)K * cn;
        if (p->y) {
            each_image(g, p, cols, t, IM2COL, n0, nb);
            fcl_conv_host_mark(ctx, &t0, 0);
            fcl_host_sgemm_rows(fcl_conv_host_threads(), 0, 0, co, cn, K, 1.0f, p->w, K, cols, cn,
                                0.0f, t, cn);
            fcl_conv_host_mark(ctx, &t0, 1);
            each_image(g, p, cols, t, SCATTER_Y, n0, nb);
            fcl_conv_host_mark(ctx, &t0, 0);
            continue;
        }
        each_image(g, p, cols, t, GATHER_DY, n0, nb);
        if (p->dw) {
            each_image(g, p, cols, t, IM2COL, n0, nb);
            fcl_conv_host_mark(ctx, &t0, 0);
            fcl_host_sgemm_rows(fcl_conv_host_threads(), 0, 1, co, K, cn, 1.0f, t, cn, cols, cn,
                                1.0f, p->dw, K);
            fcl_conv_host_mark(ctx, &t0, 1);
        }
        if (p->dx) { /* the columns' gradient into the columns: the dW GEMM has read them */
            fcl_host_sgemm_rows(fcl_conv_host_threads(), 1, 0, K, cn, co, 1.0f, p->w, K, t, cn,
                                0.0f, cols, cn);
            fcl_conv_host_mark(ctx, &t0, 1);
            each_image(g, p, cols, t, COL2IM, n0, nb);
            fcl_conv_host_mark(ctx, &t0, 0);
        }
    }
    if (ctx->profiling)
        ctx->gemm_calls +=
            (long)((g->n + images - 1) / images) * (p->y ? 1 : (p->dx != NULL) + (p->dw != NULL));
    return FEWCL_OK;
}

fewcl_status fcl_conv_host_batched(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    size_t ws = a->y || a->dx || a->dw ? fcl_conv_host_batched_workspace(g) : 0;
    return fcl_conv_host_run(ctx, g, a, ws, batched_body);
}
