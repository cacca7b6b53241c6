/* GEMMs through CLBlast's C API, row-major, with temp buffers taken from the arena
 * (CLBlastSgemmWithTempBuffer) so that the planner accounts for every byte; or, on CPU
 * devices, through a host BLAS over mapped buffers (gemm_host.c chooses). */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemm_host.h"
#include "ops.h"

static const char *clblast_status_text(CLBlastStatusCode s) {
    switch (s) {
    case CLBlastNotImplemented: return "not implemented";
    case CLBlastInvalidDimension: return "invalid dimension";
    case CLBlastInvalidLeadDimA: return "leading dimension of A too small";
    case CLBlastInvalidLeadDimB: return "leading dimension of B too small";
    case CLBlastInvalidLeadDimC: return "leading dimension of C too small";
    case CLBlastInsufficientMemoryA: return "buffer of A too small";
    case CLBlastInsufficientMemoryB: return "buffer of B too small";
    case CLBlastInsufficientMemoryC: return "buffer of C too small";
    case CLBlastInsufficientMemoryTemp: return "temp buffer too small";
    case CLBlastInvalidLocalMemUsage: return "not enough local memory on this device";
    case CLBlastDatabaseError: return "no tuning entry for this device";
    default: return s > -1000 ? fcl_cl_error_name((cl_int)s) : "CLBlast error";
    }
}

/* Elements spanned by a row-major rows x cols matrix with leading dimension ld. */
static size_t span(int rows, int cols, int ld) {
    return (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
}

static fewcl_status check_operand(const char *name, fcl_matrix x, int rows, int cols,
                                  size_t extra) {
    char s[64];
    if (x.ld < cols)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "GEMM operand %s: leading dimension %d < %d columns",
                        name, x.ld, cols);
    if (x.offset + extra + span(rows, cols, x.ld) > x.t->numel)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "GEMM operand %s: a %dx%d matrix (ld %d) at offset %zu does not fit in "
                        "tensor %s",
                        name, rows, cols, x.ld, x.offset + extra, fcl_shape_str(x.t, s, sizeof s));
    return FEWCL_OK;
}

static fewcl_status gemm_one(fewcl_context *ctx, int ta, int tb, int m, int n, int k, float alpha,
                             fcl_matrix a, size_t ao, fcl_matrix b, size_t bo, float beta,
                             fcl_matrix c, size_t co) {
    CLBlastTranspose cta = ta ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose ctb = tb ? CLBlastTransposeYes : CLBlastTransposeNo;
    size_t a_off = a.t->offset + a.offset + ao, b_off = b.t->offset + b.offset + bo,
           c_off = c.t->offset + c.offset + co;
    /* CLBlast's indirect GEMM copies an operand into its temporary buffer when the operand's
     * offset is nonzero, even where the shape needs no padding; so the size asked for treats
     * every offset as nonzero. Otherwise the size would depend on where the arena placed a
     * tensor, and a plan (placed by its dry run) and the run that follows its layout could
     * reserve different bytes (seen on an NVIDIA H200: one 64x576 weight copy). A larger
     * buffer than CLBlast needs is fine: it uses what it needs. */
    size_t temp_bytes = 0;
    CLBlastStatusCode st = CLBlastSGemmTempBufferSize(
        CLBlastLayoutRowMajor, cta, ctb, (size_t)m, (size_t)n, (size_t)k, a_off ? a_off : 1,
        (size_t)a.ld, b_off ? b_off : 1, (size_t)b.ld, c_off ? c_off : 1, (size_t)c.ld,
        &ctx->queue, &temp_bytes);
    if (st != CLBlastSuccess) goto fail;
    fcl_block temp = {.chunk = -1};
    cl_mem temp_mem = NULL;
    if (temp_bytes > 0) {
        FCL_TRY(fcl_arena_alloc(ctx->arena, temp_bytes, FCL_MEM_WORKSPACE, &temp));
        if (!ctx->dry_run) {
            fewcl_status s = fcl_arena_sub_buffer(ctx->arena, &temp, &temp_mem);
            if (s != FEWCL_OK) {
                fcl_arena_free(ctx->arena, &temp);
                return s;
            }
        }
    }
    /* Profiling: the wall time from an idle queue to the GEMM's end, so that CLBlast's
     * helper kernels (pad, transpose) and launch costs count too, not only its last kernel. */
    double t0 = ctx->profiling && !ctx->dry_run && clFinish(ctx->queue) == CL_SUCCESS
                    ? fcl_host_seconds()
                    : 0;
    if (!ctx->dry_run)
        st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, cta, ctb, (size_t)m, (size_t)n,
                                        (size_t)k, alpha, a.t->mem, a_off, (size_t)a.ld, b.t->mem,
                                        b_off, (size_t)b.ld, beta, c.t->mem, c_off, (size_t)c.ld,
                                        &ctx->queue, NULL, temp_mem);
    if (t0 > 0 && st == CLBlastSuccess && clFinish(ctx->queue) == CL_SUCCESS) {
        double ms = (fcl_host_seconds() - t0) * 1e3;
        ctx->gemm_profile_ms += ms;
        ctx->gemm_calls++;
        if (getenv("FEWCL_PROFILE_GEMMS")) /* one line per GEMM, to aggregate by shape */
            fprintf(stderr, "gemm %c%c m=%d n=%d k=%d %.4f ms\n", ta ? 'T' : 'N', tb ? 'T' : 'N', m,
                    n, k, ms);
    }
    /* The queue is in order, so the block may be reused by the next command at once;
     * releasing the sub-buffer defers its destruction until the GEMM is done. */
    if (temp_mem) clReleaseMemObject(temp_mem);
    fcl_arena_free(ctx->arena, &temp);
    if (st == CLBlastSuccess) return FEWCL_OK;
fail:
    return fcl_fail(st == CLBlastTempBufferAllocFailure || st == CLBlastOpenCLOutOfHostMemory
                        ? FEWCL_ERR_OUT_OF_MEMORY
                        : FEWCL_ERR_OPENCL,
                    "CLBlast SGEMM %s%s m=%d n=%d k=%d on %s: %s (%d)", ta ? "T" : "N",
                    tb ? "T" : "N", m, n, k, ctx->info.name, clblast_status_text(st), (int)st);
}

/* ---- fewcl's tiled GEMM (cl/gemm.cl) ---- */

#define TILE 64              /* the kernel's tile of C */
#define SPLITK_MIN_SLICE 512 /* k per slice: enough work to hide a tile's loads */
#define SPLITK_MAX_BYTES ((size_t)64 << 20)
/* k per launch: a k-step of 16 costs each item 28 loop iterations (two staging loops of 4
 * and their exits, the 16 steps of q and its exit, the step itself; measured on llvmpipe),
 * so 32768 stays within FCL_ITEM_LOOP_BUDGET. Longer products run as several launches. */
#define TILED_MAX_K 32768

static int device_fits_tiled(const fewcl_context *ctx) {
    const fcl_limits *l = &ctx->limits;
    return l->max_work_group >= 256 && l->max_items[0] >= 16 && l->max_items[1] >= 16 &&
           l->local_mem >= 16384;
}

/* One program per transposition pair [ta][tb]; gemm_splitk_sum comes from the same one. */
#define GEMM_HANDLE(name, options) {"gemm", (name), (options), NULL, 0, 0}
static fcl_kernel_handle k_tiled[2][2] = {
    {GEMM_HANDLE("gemm_tiled", "-DTA=0 -DTB=0"), GEMM_HANDLE("gemm_tiled", "-DTA=0 -DTB=1")},
    {GEMM_HANDLE("gemm_tiled", "-DTA=1 -DTB=0"), GEMM_HANDLE("gemm_tiled", "-DTA=1 -DTB=1")}};
static fcl_kernel_handle k_splitk_sum[2][2] = {
    {GEMM_HANDLE("gemm_splitk_sum", "-DTA=0 -DTB=0"),
     GEMM_HANDLE("gemm_splitk_sum", "-DTA=0 -DTB=1")},
    {GEMM_HANDLE("gemm_splitk_sum", "-DTA=1 -DTB=0"),
     GEMM_HANDLE("gemm_splitk_sum", "-DTA=1 -DTB=1")}};

/* The compiled kernel for this transposition pair. Its register use may leave it fewer than
 * the 256 items of its reqd_work_group_size (CL_KERNEL_WORK_GROUP_SIZE): then it cannot run. */
static fewcl_status tiled_kernel(fewcl_context *ctx, int ta, int tb, fcl_kernel_entry **k) {
    return fcl_kernel_get(ctx, &k_tiled[ta ? 1 : 0][tb ? 1 : 0], k);
}

int fcl_gemm_tiled_runs(fewcl_context *ctx, int ta, int tb) {
    fcl_kernel_entry *k;
    return device_fits_tiled(ctx) && tiled_kernel(ctx, ta, tb, &k) == FEWCL_OK &&
           k->max_wg >= 256;
}

int fcl_gemm_splitk_slices(const fewcl_context *ctx, int m, int n, int k) {
    if (!device_fits_tiled(ctx)) return 1;
    long tiles = (long)((m + TILE - 1) / TILE) * ((n + TILE - 1) / TILE);
    long want = 4L * (long)(ctx->info.compute_units ? ctx->info.compute_units : 1);
    if (tiles >= want) return 1; /* enough output tiles to fill the device */
    long slices = (want + tiles - 1) / tiles, most = k / SPLITK_MIN_SLICE;
    if (slices > most) slices = most;
    while (slices > 1 && (size_t)slices * m * n * sizeof(float) > SPLITK_MAX_BYTES)
        slices /= 2;
    return slices < 2 ? 1 : (int)slices;
}

static fcl_tensor matrix_view(fcl_matrix x) {
    fcl_tensor v = *x.t;
    v.offset += x.offset;
    v.owner = 0;
    return v;
}

/* One launch of gemm_tiled (and gemm_splitk_sum) over k <= TILED_MAX_K; operands checked. */
static fewcl_status tiled_launch(fewcl_context *ctx, fcl_kernel_entry *k1, int m, int n, int k,
                                 float alpha, fcl_matrix a, size_t stride_a, fcl_matrix b,
                                 size_t stride_b, float beta, fcl_matrix c, size_t stride_c,
                                 int batch, int slices, fcl_kernel_handle *sum) {
    unsigned slice = (unsigned)((k + slices - 1) / slices);
    slice = (slice + 15) / 16 * 16; /* whole k-steps of the kernel */
    slices = (int)((k + slice - 1) / slice);
    fcl_tensor part = {0}, av = matrix_view(a), bv = matrix_view(b), cv = matrix_view(c);
    if (slices > 1) FCL_TRY(fcl_tensor_alloc1(ctx, &part, FCL_MEM_WORKSPACE, slices * m * n));
    const fcl_tensor *out = slices > 1 ? &part : &cv;
    unsigned ldo = slices > 1 ? (unsigned)n : (unsigned)c.ld;
    unsigned slab = slices > 1 ? (unsigned)(m * n) : (unsigned)stride_c;
    fewcl_status s =
        fcl_args(k1, "tuutuutuuuuuuuff", &av, (unsigned)a.ld, (unsigned)stride_a, &bv,
                 (unsigned)b.ld, (unsigned)stride_b, out, ldo, slab, m, n, k, slice, slices,
                 slices > 1 ? 1.0 : (double)alpha, slices > 1 ? 0.0 : (double)beta);
    if (s == FEWCL_OK) {
        size_t gws[3] = {(size_t)(n + TILE - 1) / TILE * 16, (size_t)(m + TILE - 1) / TILE * 16,
                         (size_t)(slices > 1 ? slices : batch)};
        size_t lws[3] = {16, 16, 1};
        s = fcl_launch(ctx, k1, 3, gws, lws);
    }
    if (slices > 1) {
        fcl_kernel_entry *k2;
        if (s == FEWCL_OK) s = fcl_kernel_get(ctx, sum, &k2);
        if (s == FEWCL_OK)
            s = fcl_args(k2, "ttuuuuff", &part, &cv, (unsigned)c.ld, m, n, slices, (double)alpha,
                         (double)beta);
        if (s == FEWCL_OK) {
            size_t gws[2] = {(size_t)n, (size_t)m};
            s = fcl_launch(ctx, k2, 2, gws, NULL);
        }
        fcl_tensor_free(ctx, &part);
    }
    return s;
}

/* Operand x moved on by k0 along k: a column offset where k runs along its rows. */
static fcl_matrix advance_k(fcl_matrix x, int k_along_rows, int k0) {
    x.offset += k_along_rows ? (size_t)k0 : (size_t)k0 * (size_t)x.ld;
    return x;
}

fewcl_status fcl_gemm_tiled(fewcl_context *ctx, int ta, int tb, int m, int n, int k, float alpha,
                            fcl_matrix a, size_t stride_a, fcl_matrix b, size_t stride_b,
                            float beta, fcl_matrix c, size_t stride_c, int batch, int slices) {
    if (m <= 0 || n <= 0 || k <= 0 || batch <= 0 || slices < 1 || slices > k ||
        (slices > 1 && batch > 1))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "tiled GEMM with m=%d n=%d k=%d batch=%d in %d slices (split-K: batch 1)",
                        m, n, k, batch, slices);
    if (!device_fits_tiled(ctx))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fewcl's tiled GEMM needs 256-item work-groups and 16 KiB of local "
                        "memory; %s has %zu and %zu bytes",
                        ctx->info.name, ctx->limits.max_work_group, ctx->limits.local_mem);
    fcl_kernel_entry *k1;
    FCL_TRY(tiled_kernel(ctx, ta, tb, &k1));
    if (k1->max_wg < 256)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fewcl's tiled GEMM needs 256-item work-groups; %s allows %zu for it "
                        "(CL_KERNEL_WORK_GROUP_SIZE)",
                        ctx->info.name, k1->max_wg);
    size_t last = (size_t)(batch - 1);
    FCL_TRY(check_operand("A", a, ta ? k : m, ta ? m : k, last * stride_a));
    FCL_TRY(check_operand("B", b, tb ? n : k, tb ? k : n, last * stride_b));
    FCL_TRY(check_operand("C", c, m, n, last * stride_c));
    fcl_kernel_handle *sum = &k_splitk_sum[ta ? 1 : 0][tb ? 1 : 0];
    /* k in launches of at most TILED_MAX_K, each adding onto C; the slices shared out. */
    int launches = (k + TILED_MAX_K - 1) / TILED_MAX_K;
    int per_launch = (slices + launches - 1) / launches;
    for (int k0 = 0; k0 < k; k0 += TILED_MAX_K) {
        int kc = k - k0 < TILED_MAX_K ? k - k0 : TILED_MAX_K;
        FCL_TRY(tiled_launch(ctx, k1, m, n, kc, alpha, advance_k(a, !ta, k0), stride_a,
                             advance_k(b, tb, k0), stride_b, k0 == 0 ? beta : 1.0f, c, stride_c,
                             batch, per_launch < kc ? per_launch : kc, sum));
    }
    return FEWCL_OK;
}

fewcl_status fcl_gemm_strided_batched(fewcl_context *ctx, int trans_a, int trans_b, int m, int n,
                                      int k, float alpha, fcl_matrix a, size_t stride_a,
                                      fcl_matrix b, size_t stride_b, float beta, fcl_matrix c,
                                      size_t stride_c, int batch) {
    if (m <= 0 || n <= 0 || k <= 0 || batch <= 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "GEMM with m=%d n=%d k=%d batch=%d (all must be > 0)",
                        m, n, k, batch);
    size_t last = (size_t)(batch - 1);
    FCL_TRY(check_operand("A", a, trans_a ? k : m, trans_a ? m : k, last * stride_a));
    FCL_TRY(check_operand("B", b, trans_b ? n : k, trans_b ? k : n, last * stride_b));
    FCL_TRY(check_operand("C", c, m, n, last * stride_c));
    int path;
    FCL_TRY(fcl_gemm_path(ctx, &path));
    if (path == FCL_GEMM_HOST)
        return fcl_gemm_host_batched(ctx, trans_a, trans_b, m, n, k, alpha, a, stride_a, b,
                                     stride_b, beta, c, stride_c, batch);
    /* fewcl's tiled kernel: for every product where chosen (FEWCL_GEMM=tiled), else for the
     * long-K A·Bᵀ products (convolution weight gradients) that CLBlast leaves on a few
     * work-groups. */
    if (path == FCL_GEMM_TILED && fcl_gemm_tiled_runs(ctx, trans_a, trans_b))
        return fcl_gemm_tiled(ctx, trans_a, trans_b, m, n, k, alpha, a, stride_a, b, stride_b, beta,
                              c, stride_c, batch,
                              batch == 1 ? fcl_gemm_splitk_slices(ctx, m, n, k) : 1);
    /* Several products: the tiled kernel runs them all in one launch, where CLBlast's routine
     * takes a call (with its pad/transpose copies) per product (Winograd's 16 or 36 per chunk,
     * the attention heads). */
    if (batch > 1 && fcl_gemm_tiled_runs(ctx, trans_a, trans_b))
        return fcl_gemm_tiled(ctx, trans_a, trans_b, m, n, k, alpha, a, stride_a, b, stride_b, beta,
                              c, stride_c, batch, 1);
    int slices = !trans_a && trans_b && batch == 1 ? fcl_gemm_splitk_slices(ctx, m, n, k) : 1;
    if (slices > 1 && fcl_gemm_tiled_runs(ctx, 0, 1))
        return fcl_gemm_tiled(ctx, 0, 1, m, n, k, alpha, a, 0, b, 0, beta, c, 0, 1, slices);
    FCL_TRY(fcl_gemm_tune(ctx));
    for (int i = 0; i < batch; i++)
        FCL_TRY(gemm_one(ctx, trans_a, trans_b, m, n, k, alpha, a, i * stride_a, b, i * stride_b,
                         beta, c, i * stride_c));
    return FEWCL_OK;
}

fewcl_status fcl_gemm(fewcl_context *ctx, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, fcl_matrix a, fcl_matrix b, float beta, fcl_matrix c) {
    return fcl_gemm_strided_batched(ctx, trans_a, trans_b, m, n, k, alpha, a, 0, b, 0, beta, c, 0,
                                    1);
}
