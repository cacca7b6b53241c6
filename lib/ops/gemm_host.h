/* The host-BLAS GEMM path: on CPU OpenCL devices (PoCL) the device buffers are host memory,
 * and OpenBLAS over zero-copy mapped buffers beats CLBlast's kernels compiled by PoCL by an
 * order of magnitude (2 cores: ~450 vs 23-34 GFLOP/s). fcl_gemm and fcl_gemm_strided_batched
 * take this path by themselves; the convolution follows the same choice (lib/ops/conv.c asks
 * fcl_gemm_path; on the host path its algorithms are those of conv_host.c and
 * conv_winograd_host.c, chosen in conv_algo.c). */
#ifndef FEWCL_OPS_GEMM_HOST_H
#define FEWCL_OPS_GEMM_HOST_H

#include "ops.h"

enum { FCL_GEMM_CLBLAST = 1, FCL_GEMM_HOST = 2, FCL_GEMM_TILED = 3 };

/* The path of this context, chosen once: FEWCL_GEMM=clblast|tiled|host forces one
 * (tiled: fewcl's own kernel for every product on the OpenCL path); otherwise host
 * when the library was built with FEWCL_HOST_BLAS and the device is a CPU and nothing else
 * (oclgrind reports CPU and GPU at once and keeps the OpenCL kernels it is there to check).
 * FEWCL_GEMM=host in a build without host BLAS is an error. */
fewcl_status fcl_gemm_path(fewcl_context *ctx, int *path);

/* 1 when the host path is compiled in. */
int fcl_host_blas_available(void);

/* Row-major C = alpha·op(A)·op(B) + beta·C on host memory (cblas_sgemm). */
void fcl_host_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The same product with C's rows split over `threads` threads (blocks of 16 rows), each
 * running a single-threaded BLAS call over the whole k: every element of C is the sum one
 * call makes, whatever the thread count. For the large products of fewcl's own host code;
 * fewcl's threads, unlike OpenBLAS's, do not spin on the cores PoCL needs after the call.
 * One thread while replicas are pinned (fcl_host_blas_pin). */
void fcl_host_sgemm_rows(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);

/* fcl_gemm_strided_batched on the host path: maps the three tensors, runs the batch in order,
 * unmaps. Operands already checked by the caller. */
fewcl_status fcl_gemm_host_batched(fewcl_context *ctx, int trans_a, int trans_b, int m, int n,
                                   int k, float alpha, fcl_matrix a, size_t stride_a, fcl_matrix b,
                                   size_t stride_b, float beta, fcl_matrix c, size_t stride_c,
                                   int batch);

/* Around fewcl's own host threads (the convolution's image shares): BLAS calls made inside
 * them run single-threaded. Called in each thread: with OpenBLAS's OpenMP build the thread
 * count is per calling thread (a new thread would otherwise start OMP_NUM_THREADS of its
 * own); with the pthread build it is global, so the caller restores FEWCL_BLAS_THREADS
 * after joining. */
void fcl_host_blas_single_thread(void);
void fcl_host_blas_restore_threads(void);
/* While replicas on several contexts run BLAS calls at once (lib/train/replicas.c), the
 * process-wide thread count is one and the two calls above leave it alone, so that no thread
 * changes it under another's call; pin(1) ... pin(0) nest. pin(1) warns once when
 * FEWCL_BLAS_THREADS asks for another count. */
void fcl_host_blas_pin(int on);

/* Wall-clock seconds (for the profiling counters of host work). */
double fcl_host_seconds(void);

#endif
