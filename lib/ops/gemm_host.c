/* Host-BLAS GEMMs over mapped buffers (see gemm_host.h).
 *
 * Zero copy: on PoCL's CPU device a map of a 256 MiB chunk returns in microseconds and its
 * pointer is the buffer's storage, so a map costs the wait for the queue and nothing more.
 * Determinism: OpenBLAS's level-3 threading splits the output into blocks, each summed by one
 * thread over the whole k in a fixed order, so results are identical run to run for a given
 * thread count (checked by test_gemm). */
#include "gemm_host.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostmap.h"

#ifdef FEWCL_HOST_BLAS
#include <cblas.h>
#endif

double fcl_host_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int fcl_host_blas_available(void) {
#ifdef FEWCL_HOST_BLAS
    return 1;
#else
    return 0;
#endif
}

/* Open replica groups with more than one replica in this process (fcl_host_blas_pin). */
static atomic_int pinned;

#ifdef FEWCL_HOST_BLAS
/* OpenBLAS threads: FEWCL_BLAS_THREADS if set, else 1, because OpenBLAS's idle threads spin
 * after each call on the cores PoCL's kernels need next (conv4 84x84 training step on 2 cores:
 * 12.0-12.2 s with 1 thread, 12.5-24.6 s with 2). 0 leaves OpenBLAS's own choice. While
 * pinned, nothing changes it (it stays 1; see fcl_host_blas_pin). */
static void set_threads(void) {
    if (atomic_load(&pinned)) return;
    const char *env = getenv("FEWCL_BLAS_THREADS");
    int n = env && *env ? atoi(env) : 1;
    if (n > 0) openblas_set_num_threads(n);
}
#endif

void fcl_host_blas_single_thread(void) {
#ifdef FEWCL_HOST_BLAS
    if (!atomic_load(&pinned)) openblas_set_num_threads(1);
#endif
}

void fcl_host_blas_restore_threads(void) {
#ifdef FEWCL_HOST_BLAS
    set_threads();
#endif
}

void fcl_host_blas_pin(int on) {
    if (on) {
        if (atomic_fetch_add(&pinned, 1) > 0) return;
        const char *env = getenv("FEWCL_BLAS_THREADS");
        if (env && atoi(env) != 1 && fcl_host_blas_available())
            fprintf(stderr,
                    "fewcl: FEWCL_BLAS_THREADS=%s is ignored while several devices run in "
                    "this process: each runs its BLAS calls on one thread (OpenBLAS's "
                    "thread count is process-wide, and results repeat only for a given "
                    "count)\n",
                    env);
#ifdef FEWCL_HOST_BLAS
        openblas_set_num_threads(1);
#endif
    } else if (atomic_fetch_sub(&pinned, 1) == 1) {
        fcl_host_blas_restore_threads();
    }
}

fewcl_status fcl_gemm_path(fewcl_context *ctx, int *path) {
    if (!ctx->gemm_path) {
        const char *env = getenv("FEWCL_GEMM");
        int want = 0;
        if (env && *env) {
            if (strcmp(env, "clblast") == 0)
                want = FCL_GEMM_CLBLAST;
            else if (strcmp(env, "host") == 0)
                want = FCL_GEMM_HOST;
            else if (strcmp(env, "tiled") == 0)
                want = FCL_GEMM_TILED;
            else
                return fcl_fail(FEWCL_ERR_ARGUMENT,
                                "FEWCL_GEMM='%s' (expected clblast, tiled or host)", env);
            if (want == FCL_GEMM_HOST && !fcl_host_blas_available())
                return fcl_fail(FEWCL_ERR_ARGUMENT,
                                "FEWCL_GEMM=host, but fewcl was built without host BLAS "
                                "(cmake -DFEWCL_HOST_BLAS=ON with OpenBLAS installed)");
        } else {
            want = fcl_host_blas_available() && ctx->info.is_cpu && !ctx->info.is_gpu
                       ? FCL_GEMM_HOST
                       : FCL_GEMM_CLBLAST;
        }
#ifdef FEWCL_HOST_BLAS
        if (want == FCL_GEMM_HOST) set_threads();
#endif
        ctx->gemm_path = want;
    }
    *path = ctx->gemm_path;
    return FEWCL_OK;
}

void fcl_host_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc) {
#ifdef FEWCL_HOST_BLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
    (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
#endif
}

/* One thread's rows [r0, r1) of C in fcl_host_sgemm_rows. */
typedef struct rows_job {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} rows_job;

static void *rows_run(void *arg) {
    const rows_job *j = arg;
    fcl_host_blas_single_thread();
    fcl_host_sgemm(j->trans_a, j->trans_b, j->m, j->n, j->k, j->alpha, j->a, j->lda, j->b, j->ldb,
                   j->beta, j->c, j->ldc);
    return NULL;
}

enum { ROWS_MAX_THREADS = 16, ROWS_BLOCK = 16 /* rows: a multiple of the BLAS kernels' tile */ };

void fcl_host_sgemm_rows(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc) {
    int blocks = (m + ROWS_BLOCK - 1) / ROWS_BLOCK;
    if (threads > ROWS_MAX_THREADS) threads = ROWS_MAX_THREADS;
    if (threads > blocks) threads = blocks;
    if (threads <= 1 || atomic_load(&pinned)) {
        fcl_host_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    rows_job jobs[ROWS_MAX_THREADS];
    pthread_t tid[ROWS_MAX_THREADS];
    int started[ROWS_MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        int r0 = ROWS_BLOCK * (blocks * t / threads);
        int r1 = ROWS_BLOCK * (blocks * (t + 1) / threads);
        if (r1 > m) r1 = m;
        /* op(A)'s rows r0.. are A's rows (no transpose) or A's columns (transposed) */
        const float *at = trans_a ? a + r0 : a + (size_t)r0 * lda;
        jobs[t] = (rows_job){trans_a,
                             trans_b,
                             r1 - r0,
                             n,
                             k,
                             lda,
                             ldb,
                             ldc,
                             alpha,
                             beta,
                             at,
                             b,
                             c + (size_t)r0 * ldc};
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, rows_run, &jobs[t]) == 0;
    }
    rows_run(&jobs[0]);
    for (int t = 1; t < threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            rows_run(&jobs[t]);
    fcl_host_blas_restore_threads();
}

fewcl_status fcl_gemm_host_batched(fewcl_context *ctx, int trans_a, int trans_b, int m, int n,
                                   int k, float alpha, fcl_matrix a, size_t stride_a, fcl_matrix b,
                                   size_t stride_b, float beta, fcl_matrix c, size_t stride_c,
                                   int batch) {
    if (ctx->dry_run) return FEWCL_OK; /* no temp buffers on this path: nothing to count */
    fcl_host_map map = {0};
    FCL_TRY(fcl_host_map_add(&map, a.t));
    FCL_TRY(fcl_host_map_add(&map, b.t));
    FCL_TRY(fcl_host_map_add(&map, c.t));
    FCL_TRY(fcl_host_map_begin(ctx, &map));
    double t0 = ctx->profiling ? fcl_host_seconds() : 0;
    const float *pa = fcl_host_ptr(&map, a.t) + a.offset;
    const float *pb = fcl_host_ptr(&map, b.t) + b.offset;
    float *pc = fcl_host_ptr(&map, c.t) + c.offset;
    for (int i = 0; i < batch; i++)
        fcl_host_sgemm(trans_a, trans_b, m, n, k, alpha, pa + (size_t)i * stride_a, a.ld,
                       pb + (size_t)i * stride_b, b.ld, beta, pc + (size_t)i * stride_c, c.ld);
    if (ctx->profiling) {
        ctx->gemm_profile_ms += (fcl_host_seconds() - t0) * 1e3;
        ctx->gemm_calls += batch;
    }
    return fcl_host_map_end(ctx, &map);
}
