/* GEMM (CLBlast) and the linear layer, forward and backward, against the C reference with
 * the worst-case float32 bound per element; the reference's gradients against finite
 * differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ops/gemm_host.h"
#include "ref/ref.h"

/* Odd sizes so that CLBlast's padding paths run; tiny under oclgrind. */
static void dims(int *n, int *in, int *out) {
    *n = th_small() ? 5 : 37;
    *in = th_small() ? 7 : 70;
    *out = th_small() ? 6 : 53;
}

static double *abs_copy(const float *x, size_t n) {
    double *d = th_to_double(x, n);
    for (size_t i = 0; i < n; i++)
        d[i] = fabs(d[i]);
    return d;
}

/* bound[i] = γ_K·scale[i] (+ terms that were exact inputs: none). */
static void scale_to_bound(double *scale, size_t n, int k) {
    for (size_t i = 0; i < n; i++)
        scale[i] *= th_gamma(k);
}

/* C = alpha·op(A)·op(B) + beta·C on random data against the reference, through fcl_gemm
 * (slices 0) or directly through fewcl's tiled kernel (cl/gemm.cl) with k cut into `slices`
 * (every path also runs it through fcl_gemm in the ctest variant linear.tiled,
 * FEWCL_GEMM=tiled). ld > cols and a nonzero offset into each tensor; nothing outside C may
 * change. The bound is γ_{k+1} (plus the slices' partial sums) of the |terms|. With beta = 0,
 * C starts as NaN: it must not be read. */
static void check_product(int ta, int tb, int m, int n, int k, float beta, int slices,
                          uint64_t seed) {
    const int pad = 3, off = 5;
    int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
    int na = off + a_rows * lda, nb = off + b_rows * ldb, nc = off + m * ldc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    th_random(a, na, seed + ta, -1, 1);
    th_random(b, nb, seed + 10 + tb, -1, 1);
    th_random(c, nc, seed + 20, -1, 1);
    for (int i = 0; beta == 0.0f && i < m; i++)
        for (int j = 0; j < n; j++)
            c[off + i * ldc + j] = NAN;
    fcl_tensor A, B, C;
    th_upload(&A, 1, &na, a);
    th_upload(&B, 1, &nb, b);
    th_upload(&C, 1, &nc, c);
    const float alpha = 0.75f;
    fcl_matrix ma = {&A, off, lda}, mb = {&B, off, ldb}, mc = {&C, off, ldc};
    if (slices)
        TH_OK(
            fcl_gemm_tiled(th_ctx(), ta, tb, m, n, k, alpha, ma, 0, mb, 0, beta, mc, 0, 1, slices));
    else
        TH_OK(fcl_gemm(th_ctx(), ta, tb, m, n, k, alpha, ma, mb, beta, mc));
    double *ad = th_to_double(a, na), *bd = th_to_double(b, nb), *want = th_to_double(c, nc);
    double *abs_a = abs_copy(a, na), *abs_b = abs_copy(b, nb), *bound = abs_copy(c, nc);
    for (int i = 0; beta == 0.0f && i < m; i++) /* the reference computes 0·C */
        for (int j = 0; j < n; j++)
            bound[off + i * ldc + j] = want[off + i * ldc + j] = 0.0;
    ref_gemm(ta, tb, m, n, k, alpha, ad + off, lda, bd + off, ldb, beta, want + off, ldc);
    ref_gemm(ta, tb, m, n, k, fabs(alpha), abs_a + off, lda, abs_b + off, ldb, fabs(beta),
             bound + off, ldc);
    scale_to_bound(bound, nc, k + 1 + slices);
    float *got = th_download(&C);
    for (int i = 0; i < off; i++)
        assert_true(got[i] == c[i]); /* nothing before the offset */
    for (int i = 0; i < m; i++)
        for (int j = n; j < ldc; j++) /* the padding columns stay untouched */
            assert_true(got[off + i * ldc + j] == c[off + i * ldc + j]);
    char what[64];
    snprintf(what, sizeof what, "%s %c%c %dx%dx%d in %d", slices ? "tiled" : "gemm", ta ? 'T' : 'N',
             tb ? 'T' : 'N', m, n, k, slices);
    th_assert_bound(what, got, want, bound, nc);
    th_assert_normerr(what, got + off, want + off, nc - off, TH_NORMERR);
    free(got), free(abs_a), free(abs_b), free(bound), free(ad), free(bd), free(want);
    free(a), free(b), free(c);
    th_free(&C), th_free(&B), th_free(&A);
}

static void check_gemm(int ta, int tb) {
    int small = th_small();
    check_product(ta, tb, small ? 4 : 33, small ? 5 : 47, small ? 6 : 29, -0.5f, 0, 10);
}

static void check_tiled(int ta, int tb, int m, int n, int k, int slices, float beta) {
    check_product(ta, tb, m, n, k, beta, slices, 40);
}

/* A dW-like shape (64 x 27 over a long k), a result wider than one tile in both directions,
 * slices that do not divide k, one slice, and beta = 0, in every transposition. */
static void test_gemm_tiled(void **state) {
    (void)state;
    int small = th_small();
    if (!fcl_gemm_tiled_runs(th_ctx(), 0, 1)) { /* a clear refusal instead (rusticl: 32 items) */
        int four = 4;
        fcl_tensor t;
        TH_OK(fcl_tensor_alloc1(th_ctx(), &t, FCL_MEM_ACTIVATION, four));
        fcl_matrix x = {&t, 0, 2};
        assert_int_equal(
            fcl_gemm_tiled(th_ctx(), 0, 1, 2, 2, 2, 1.0f, x, 0, x, 0, 0.0f, x, 0, 1, 1),
            FEWCL_ERR_ARGUMENT);
        assert_non_null(strstr(fewcl_last_error(), "256-item work-groups"));
        th_free(&t);
        skip();
    }
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        check_tiled(ta, tb, small ? 5 : 64, small ? 3 : 27, small ? 70 : 5000, small ? 3 : 7, 0.5f);
        check_tiled(ta, tb, small ? 66 : 70, small ? 65 : 130, small ? 40 : 1001, 4, 1.0f);
        check_tiled(ta, tb, small ? 4 : 33, small ? 4 : 9, small ? 33 : 300, 1, 0.0f);
        check_tiled(ta, tb, small ? 4 : 64, small ? 4 : 27, small ? 50 : 4000, small ? 2 : 9, 0.0f);
    }
    if (small) return;
    /* k beyond one launch's 32768 (TILED_MAX_K): the launches add onto C. On rusticl's
     * llvmpipe a single launch stopped its k loop after ~37,000 (its loop limiter). */
    check_tiled(0, 1, 64, 27, 40000, 1, 0.5f);
    check_tiled(1, 0, 9, 70, 70001, 5, 0.0f);
}

/* fcl_gemm splits the long-K NT products, and only those, on the OpenCL path. */
static void test_gemm_splitk_choice(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    assert_true(fcl_gemm_splitk_slices(ctx, 64, 27, 183456) > 1);  /* conv4 layer-1 dW at 84 px */
    assert_int_equal(fcl_gemm_splitk_slices(ctx, 64, 27, 500), 1); /* short k */
    assert_int_equal(fcl_gemm_splitk_slices(ctx, 4096, 4096, 100000), 1); /* many tiles */
}

static void test_gemm_nn(void **state) { check_gemm(0, 0); }
static void test_gemm_nt(void **state) { check_gemm(0, 1); }
static void test_gemm_tn(void **state) { check_gemm(1, 0); }
static void test_gemm_tt(void **state) { check_gemm(1, 1); }

/* Both GEMM paths in one run, whatever FEWCL_GEMM chose: the host-BLAS path over mapped
 * buffers (when built in) and CLBlast, each against the reference with the bounds above
 * (including: nothing outside the C matrix is written, which the union maps must keep). */
static void test_gemm_both_paths(void **state) {
    fewcl_context *ctx = th_ctx();
    int chosen;
    TH_OK(fcl_gemm_path(ctx, &chosen));
    for (int path = FCL_GEMM_CLBLAST; path <= FCL_GEMM_HOST; path++) {
        if (path == FCL_GEMM_HOST && !fcl_host_blas_available()) {
            print_message("    host BLAS not built in: CLBlast path only\n");
            continue;
        }
        ctx->gemm_path = path;
        for (int t = 0; t < 4; t++)
            check_gemm(t >> 1, t & 1);
    }
    ctx->gemm_path = chosen;
}

/* Run to run determinism of the chosen path on a GEMM big enough for OpenBLAS to split it over
 * its threads: two runs agree bit for bit. */
static void test_gemm_is_deterministic(void **state) {
    fewcl_context *ctx = th_ctx();
    int path;
    TH_OK(fcl_gemm_path(ctx, &path));
    const int m = th_small() ? 9 : 256, n = th_small() ? 7 : 300, k = th_small() ? 5 : 200;
    int na = m * k, nb = k * n, nc = m * n;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    th_random(a, na, 50, -1, 1);
    th_random(b, nb, 51, -1, 1);
    fcl_tensor A, B, C;
    th_upload(&A, 1, &na, a);
    th_upload(&B, 1, &nb, b);
    TH_OK(fcl_tensor_alloc1(ctx, &C, FCL_MEM_ACTIVATION, nc));
    float *got[2];
    for (int r = 0; r < 2; r++) {
        TH_OK(fcl_fill(ctx, &C, (float)r)); /* different old contents; beta = 0 ignores them */
        TH_OK(fcl_gemm(ctx, 0, 0, m, n, k, 1.0f, (fcl_matrix){&A, 0, k}, (fcl_matrix){&B, 0, n},
                       0.0f, (fcl_matrix){&C, 0, n}));
        got[r] = th_download(&C);
    }
    print_message("    %s path: two runs of a %dx%dx%d GEMM agree bit for bit\n",
                  path == FCL_GEMM_HOST ? "host BLAS" : "CLBlast", m, n, k);
    assert_memory_equal(got[0], got[1], nc * sizeof(float));
    free(got[0]), free(got[1]), free(a), free(b);
    th_free(&C), th_free(&B), th_free(&A);
}

static void test_gemm_strided_batched(void **state) {
    /* Per-head products as in attention: batch of q[h]·k[h]ᵀ. */
    const int batch = 4, m = th_small() ? 3 : 20, n = 5, k = th_small() ? 4 : 64;
    int na = batch * m * k, nb = batch * n * k, nc = batch * m * n;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    th_random(a, na, 40, -1, 1);
    th_random(b, nb, 41, -1, 1);
    fcl_tensor A, B, C;
    th_upload(&A, 1, &na, a);
    th_upload(&B, 1, &nb, b);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &C, FCL_MEM_ACTIVATION, nc));
    TH_OK(fcl_gemm_strided_batched(th_ctx(), 0, 1, m, n, k, 1.0f, (fcl_matrix){&A, 0, k}, m * k,
                                   (fcl_matrix){&B, 0, k}, n * k, 0.0f, (fcl_matrix){&C, 0, n},
                                   m * n, batch));
    double *ad = th_to_double(a, na), *bd = th_to_double(b, nb);
    double *want = calloc(nc, sizeof *want), *bound = calloc(nc, sizeof *bound);
    double *abs_a = abs_copy(a, na), *abs_b = abs_copy(b, nb);
    for (int i = 0; i < batch; i++) {
        ref_gemm(0, 1, m, n, k, 1, ad + i * m * k, k, bd + i * n * k, k, 0, want + i * m * n, n);
        ref_gemm(0, 1, m, n, k, 1, abs_a + i * m * k, k, abs_b + i * n * k, k, 0, bound + i * m * n,
                 n);
    }
    scale_to_bound(bound, nc, k);
    float *got = th_download(&C);
    th_assert_bound("strided batched gemm", got, want, bound, nc);
    free(got), free(abs_a), free(abs_b), free(bound), free(want), free(ad), free(bd);
    free(a), free(b);
    th_free(&C), th_free(&B), th_free(&A);
}

/* Multi-head attention's batched products with heads split head-major inside the feature axis:
 * q [Q, H·d] and k [n, H·d]; head h is the column block h·d..(h+1)·d, so one strided batch with
 * leading dimension H·d and stride d gives scores[h] = q_h·k_hᵀ [Q, n] for every head, and the
 * backward products (dq_h = dS_h·k_h, dk_h = dS_hᵀ·q_h) write back into the same blocks. */
static void test_attention_head_split(void **state) {
    const int H = 4, d = th_small() ? 3 : 64, Q = th_small() ? 5 : 40, n = 5, I = H * d;
    float *q = malloc(Q * I * sizeof *q), *k = malloc(n * I * sizeof *k);
    float *ds = malloc(H * Q * n * sizeof *ds);
    th_random(q, Q * I, 90, -1, 1);
    th_random(k, n * I, 91, -1, 1);
    th_random(ds, H * Q * n, 92, -1, 1);
    fcl_tensor tq, tk, tS, tdS, tdq, tdk;
    th_upload(&tq, 2, (int[]){Q, I}, q);
    th_upload(&tk, 2, (int[]){n, I}, k);
    th_upload(&tdS, 3, (int[]){H, Q, n}, ds);
    TH_OK(fcl_tensor_alloc(th_ctx(), &tS, FCL_MEM_ACTIVATION, 3, (int[]){H, Q, n}));
    TH_OK(fcl_tensor_alloc(th_ctx(), &tdq, FCL_MEM_ACTIVATION, 2, (int[]){Q, I}));
    TH_OK(fcl_tensor_alloc(th_ctx(), &tdk, FCL_MEM_ACTIVATION, 2, (int[]){n, I}));
    TH_OK(fcl_gemm_strided_batched(th_ctx(), 0, 1, Q, n, d, 1.0f, (fcl_matrix){&tq, 0, I}, d,
                                   (fcl_matrix){&tk, 0, I}, d, 0.0f, (fcl_matrix){&tS, 0, n},
                                   (size_t)Q * n, H));
    TH_OK(fcl_gemm_strided_batched(th_ctx(), 0, 0, Q, d, n, 1.0f, (fcl_matrix){&tdS, 0, n},
                                   (size_t)Q * n, (fcl_matrix){&tk, 0, I}, d, 0.0f,
                                   (fcl_matrix){&tdq, 0, I}, d, H));
    TH_OK(fcl_gemm_strided_batched(th_ctx(), 1, 0, n, d, Q, 1.0f, (fcl_matrix){&tdS, 0, n},
                                   (size_t)Q * n, (fcl_matrix){&tq, 0, I}, d, 0.0f,
                                   (fcl_matrix){&tdk, 0, I}, d, H));
    double *S = calloc(H * Q * n, sizeof *S), *bS = calloc(H * Q * n, sizeof *bS);
    double *dq = calloc(Q * I, sizeof *dq), *bdq = calloc(Q * I, sizeof *bdq);
    double *dk = calloc(n * I, sizeof *dk), *bdk = calloc(n * I, sizeof *bdk);
    for (int h = 0; h < H; h++)
        for (int r = 0; r < Q; r++)
            for (int c = 0; c < n; c++)
                for (int e = 0; e < d; e++) {
                    double a = q[r * I + h * d + e], b = k[c * I + h * d + e];
                    double g = ds[(h * Q + r) * n + c];
                    S[(h * Q + r) * n + c] += a * b, bS[(h * Q + r) * n + c] += fabs(a * b);
                    dq[r * I + h * d + e] += g * b, bdq[r * I + h * d + e] += fabs(g * b);
                    dk[c * I + h * d + e] += g * a, bdk[c * I + h * d + e] += fabs(g * a);
                }
    scale_to_bound(bS, H * Q * n, d);
    scale_to_bound(bdq, Q * I, n);
    scale_to_bound(bdk, n * I, Q);
    float *got = th_download(&tS);
    th_assert_bound("head-split scores", got, S, bS, H * Q * n);
    free(got);
    got = th_download(&tdq);
    th_assert_bound("head-split dq", got, dq, bdq, Q * I);
    free(got);
    got = th_download(&tdk);
    th_assert_bound("head-split dk", got, dk, bdk, n * I);
    free(got);
    free(S), free(bS), free(dq), free(bdq), free(dk), free(bdk), free(q), free(k), free(ds);
    th_free(&tdk), th_free(&tdq), th_free(&tS), th_free(&tdS), th_free(&tk), th_free(&tq);
}

/* The workspace a CLBlast GEMM reserves does not depend on where its operands sit: CLBlast
 * copies an operand at a nonzero offset that it would use in place at offset 0, and a plan's
 * dry run places tensors elsewhere than the run that follows its layout (lib/ops/gemm.c). The
 * same product with every operand at offset 0, then at offset 64, reserves the same bytes. */
static void test_gemm_workspace_ignores_placement(void **state) {
    /* Small runs (oclgrind): a product small enough for oclgrind takes CLBlast's direct
     * kernel, which has no temporary buffer at all: nothing to compare. */
    if (th_small()) skip();
    fewcl_context *ctx = th_ctx();
    int chosen;
    TH_OK(fcl_gemm_path(ctx, &chosen));
    ctx->gemm_path = FCL_GEMM_CLBLAST;
    /* Aᵀ·B (row-major: the layout CLBlast's kernel reads A and B in, where an operand at
     * offset 0 needs no copy), large enough for the indirect kernel (the one with the copies)
     * on any device's switch point, and a multiple of any tile size. */
    const int d = 1024, pad = 64, total = d * d + pad;
    fcl_tensor A, B, C;
    TH_OK(fcl_tensor_alloc1(ctx, &A, FCL_MEM_ACTIVATION, total));
    TH_OK(fcl_tensor_alloc1(ctx, &B, FCL_MEM_ACTIVATION, total));
    TH_OK(fcl_tensor_alloc1(ctx, &C, FCL_MEM_ACTIVATION, total));
    TH_OK(fcl_fill(ctx, &A, 0.5f));
    TH_OK(fcl_fill(ctx, &B, 0.25f));
    size_t reserved[2];
    for (int placed = 0; placed < 2; placed++) {
        size_t off = placed ? (size_t)pad : 0;
        size_t before = fcl_arena_stats_get(ctx->arena)->in_use;
        fcl_arena_reset_peak(ctx->arena);
        TH_OK(fcl_gemm(ctx, 1, 0, d, d, d, 1.0f, (fcl_matrix){&A, off, d},
                       (fcl_matrix){&B, off, d}, 0.0f, (fcl_matrix){&C, off, d}));
        reserved[placed] = fcl_arena_stats_get(ctx->arena)->peak - before;
    }
    print_message("    %dx%dx%d CLBlast GEMM: %zu workspace bytes at offset 0, %zu at offset %d\n",
                  d, d, d, reserved[0], reserved[1], pad);
    assert_int_equal(reserved[0], reserved[1]);
    ctx->gemm_path = chosen;
    th_free(&C), th_free(&B), th_free(&A);
}

static void test_gemm_rejects_out_of_bounds_operands(void **state) {
    fcl_tensor A;
    int n = 10;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &A, FCL_MEM_ACTIVATION, n));
    fcl_matrix m = {&A, 0, 4};
    assert_int_equal(fcl_gemm(th_ctx(), 0, 0, 3, 4, 4, 1, m, m, 0, m), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "does not fit"));
    th_free(&A);
}

typedef struct {
    double *x, *w, *b;
    int n, in, out;
} linear_ud;

static void linear_fwd(void *ud, double *y) {
    linear_ud *u = ud;
    ref_linear_forward(u->x, u->w, u->b, y, u->n, u->in, u->out);
}

static void check_linear(int with_bias) {
    int n, in, out;
    dims(&n, &in, &out);
    int nx = n * in, nw = out * in, ny = n * out;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(out * sizeof *b);
    float *dy = malloc(ny * sizeof *dy), *dw0 = malloc(nw * sizeof *dw0);
    float *db0 = malloc(out * sizeof *db0);
    th_random(x, nx, 50, -1, 1);
    th_random(w, nw, 51, -0.5f, 0.5f);
    th_random(b, out, 52, -0.5f, 0.5f);
    th_random(dy, ny, 53, -1, 1);
    th_random(dw0, nw, 54, -1, 1); /* nonzero: gradients must accumulate onto it */
    th_random(db0, out, 55, -1, 1);
    int sx[2] = {n, in}, sw[2] = {out, in}, sy[2] = {n, out};
    fcl_tensor X, W, B, Y, DY, DX, DW, DB;
    th_upload(&X, 2, sx, x);
    th_upload(&W, 2, sw, w);
    th_upload(&B, 1, &out, b);
    th_upload(&DY, 2, sy, dy);
    th_upload(&DW, 2, sw, dw0);
    th_upload(&DB, 1, &out, db0);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 2, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 2, sx));
    TH_OK(fcl_linear_forward(th_ctx(), &X, &W, with_bias ? &B : NULL, &Y));
    TH_OK(fcl_linear_backward(th_ctx(), &X, &W, &DY, &DX, &DW, with_bias ? &DB : NULL));

    double *xd = th_to_double(x, nx), *wd = th_to_double(w, nw), *bd = th_to_double(b, out);
    double *dyd = th_to_double(dy, ny);
    double *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
    double *dw = malloc(nw * sizeof *dw), *db = malloc(out * sizeof *db);
    ref_linear_forward(xd, wd, with_bias ? bd : NULL, y, n, in, out);
    ref_linear_backward(xd, wd, dyd, dx, dw, db, n, in, out);
    for (int i = 0; i < nw; i++)
        dw[i] += dw0[i];
    for (int i = 0; i < out; i++)
        db[i] = with_bias ? db[i] + db0[i] : db0[i];

    /* Bounds from the same products on absolute values. */
    double *ax = abs_copy(x, nx), *aw = abs_copy(w, nw), *ab = abs_copy(b, out);
    double *ady = abs_copy(dy, ny), *adw0 = abs_copy(dw0, nw), *adb0 = abs_copy(db0, out);
    double *by = malloc(ny * sizeof *by), *bdx = malloc(nx * sizeof *bdx);
    double *bdw = malloc(nw * sizeof *bdw), *bdb = malloc(out * sizeof *bdb);
    ref_linear_forward(ax, aw, with_bias ? ab : NULL, by, n, in, out);
    ref_linear_backward(ax, aw, ady, bdx, bdw, bdb, n, in, out);
    for (int i = 0; i < nw; i++)
        bdw[i] += adw0[i];
    for (int i = 0; i < out; i++)
        bdb[i] = with_bias ? bdb[i] + adb0[i] : 0;
    scale_to_bound(by, ny, in + 1);
    scale_to_bound(bdx, nx, out);
    scale_to_bound(bdw, nw, n + 1);
    scale_to_bound(bdb, out, n + 1);

    float *got = th_download(&Y);
    th_assert_bound("linear y", got, y, by, ny);
    th_assert_normerr("linear y", got, y, ny, TH_NORMERR);
    free(got);
    got = th_download(&DX);
    th_assert_bound("linear dx", got, dx, bdx, nx);
    free(got);
    got = th_download(&DW);
    th_assert_bound("linear dW", got, dw, bdw, nw);
    free(got);
    got = th_download(&DB);
    th_assert_bound("linear db", got, db, bdb, out);
    free(got);

    free(ax), free(aw), free(ab), free(ady), free(adw0), free(adb0);
    free(by), free(bdx), free(bdw), free(bdb);
    free(xd), free(wd), free(bd), free(dyd), free(y), free(dx), free(dw), free(db);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    th_free(&DX), th_free(&Y), th_free(&DB), th_free(&DW), th_free(&DY), th_free(&B);
    th_free(&W), th_free(&X);
}

static void test_linear_with_bias(void **state) { check_linear(1); }
static void test_linear_without_bias(void **state) { check_linear(0); }

static void test_linear_reference_gradients(void **state) {
    enum { N = 3, IN = 5, OUT = 4 };
    float xf[N * IN], wf[OUT * IN], bf[OUT], dyf[N * OUT];
    th_random(xf, N * IN, 60, -1, 1);
    th_random(wf, OUT * IN, 61, -1, 1);
    th_random(bf, OUT, 62, -1, 1);
    th_random(dyf, N * OUT, 63, -1, 1);
    double x[N * IN], w[OUT * IN], b[OUT], dy[N * OUT], dx[N * IN], dw[OUT * IN], db[OUT];
    for (int i = 0; i < N * IN; i++)
        x[i] = xf[i];
    for (int i = 0; i < OUT * IN; i++)
        w[i] = wf[i];
    for (int i = 0; i < OUT; i++)
        b[i] = bf[i];
    for (int i = 0; i < N * OUT; i++)
        dy[i] = dyf[i];
    ref_linear_backward(x, w, dy, dx, dw, db, N, IN, OUT);
    linear_ud u = {x, w, b, N, IN, OUT};
    /* Linear in each input: central differences are exact up to rounding (~1e-10). */
    assert_true(th_fd_error(linear_fwd, &u, x, N * IN, dx, dy, N * OUT) < 1e-8);
    assert_true(th_fd_error(linear_fwd, &u, w, OUT * IN, dw, dy, N * OUT) < 1e-8);
    assert_true(th_fd_error(linear_fwd, &u, b, OUT, db, dy, N * OUT) < 1e-8);
}

/* PyTorch (tools/reference/ops.py): F.linear and its autograd gradients; docs/spec.md §10 bound. */
static void test_linear_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_linear");
    fcl_tensor x, w, b, dy, y, dx, dw, db;
    th_fixture_upload(fx, "x", &x);
    th_fixture_upload(fx, "w", &w);
    th_fixture_upload(fx, "b", &b);
    th_fixture_upload(fx, "dy", &dy);
    TH_OK(fcl_tensor_alloc2(th_ctx(), &y, FCL_MEM_ACTIVATION, x.shape[0], w.shape[0]));
    TH_OK(fcl_tensor_alloc(th_ctx(), &dx, FCL_MEM_ACTIVATION, 2, x.shape));
    TH_OK(fcl_tensor_alloc(th_ctx(), &dw, FCL_MEM_GRAD, 2, w.shape));
    TH_OK(fcl_tensor_alloc(th_ctx(), &db, FCL_MEM_GRAD, 1, b.shape));
    TH_OK(fcl_fill(th_ctx(), &dw, 0));
    TH_OK(fcl_fill(th_ctx(), &db, 0));
    TH_OK(fcl_linear_forward(th_ctx(), &x, &w, &b, &y));
    TH_OK(fcl_linear_backward(th_ctx(), &x, &w, &dy, &dx, &dw, &db));
    const char *keys[] = {"y", "dx", "dw", "db"};
    fcl_tensor *outs[] = {&y, &dx, &dw, &db};
    for (int i = 0; i < 4; i++) {
        size_t n;
        const float *ref = th_fixture_data(fx, keys[i], &n);
        double *want = th_to_double(ref, n);
        assert_int_equal(n, outs[i]->numel);
        float *got = th_download(outs[i]);
        th_assert_normerr(keys[i], got, want, n, TH_NORMERR);
        free(got), free(want);
    }
    th_free(&db), th_free(&dw), th_free(&dx), th_free(&y);
    th_free(&dy), th_free(&b), th_free(&w), th_free(&x);
    th_fixture_free(fx);
}

static void test_linear_shape_errors(void **state) {
    fcl_tensor x, w, y;
    TH_OK(fcl_tensor_alloc2(th_ctx(), &x, FCL_MEM_ACTIVATION, 4, 8));
    TH_OK(fcl_tensor_alloc2(th_ctx(), &w, FCL_MEM_PARAM, 3, 7));
    TH_OK(fcl_tensor_alloc2(th_ctx(), &y, FCL_MEM_ACTIVATION, 4, 3));
    assert_int_equal(fcl_linear_forward(th_ctx(), &x, &w, NULL, &y), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "x [4,8], weight [3,7]"));
    th_free(&y), th_free(&w), th_free(&x);
}

/* FEWCL_CLBLAST_TUNING: tuner output files are applied, and GEMMs stay correct with them. */
static void test_clblast_tuning_folder(void **state) {
    char dir[] = "/tmp/fewcl-tuning-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/clblast_xgemm_direct_1_32.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"kernel_family\": \"xgemm_direct_1\", \"best_time\": \"0.05\",\n"
          " \"best_parameters\": \"KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 "
          "PRECISION=32 VWMD=1 VWND=1 WGD=8\"}\n",
          f);
    fclose(f);
    setenv("FEWCL_CLBLAST_TUNING", dir, 1);
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    TH_OK(fcl_gemm_tune(ctx));
    fewcl_context_destroy(ctx);
    /* A file that is not tuner output is named in the error. */
    snprintf(path, sizeof path, "%s/clblast_bogus_32.json", dir);
    f = fopen(path, "w");
    fputs("{\"something\": 1}", f);
    fclose(f);
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(fcl_gemm_tune(ctx), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "clblast_bogus_32.json"));
    fewcl_context_destroy(ctx);
    unlink(path);
    snprintf(path, sizeof path, "%s/clblast_xgemm_direct_1_32.json", dir);
    unlink(path);
    rmdir(dir);
    setenv("FEWCL_CLBLAST_TUNING", "/nonexistent/fewcl-tuning", 1);
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(fcl_gemm_tune(ctx), FEWCL_ERR_IO);
    fewcl_context_destroy(ctx);
    unsetenv("FEWCL_CLBLAST_TUNING");
    /* CLBlast keeps overrides per device for the whole process: GEMMs run after them must
     * still be right. */
    check_gemm(0, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_tiled),
        cmocka_unit_test(test_gemm_splitk_choice),
        cmocka_unit_test(test_gemm_nn),
        cmocka_unit_test(test_gemm_nt),
        cmocka_unit_test(test_gemm_tn),
        cmocka_unit_test(test_gemm_tt),
        cmocka_unit_test(test_gemm_both_paths),
        cmocka_unit_test(test_gemm_workspace_ignores_placement),
        cmocka_unit_test(test_gemm_is_deterministic),
        cmocka_unit_test(test_gemm_strided_batched),
        cmocka_unit_test(test_attention_head_split),
        cmocka_unit_test(test_gemm_rejects_out_of_bounds_operands),
        cmocka_unit_test(test_linear_with_bias),
        cmocka_unit_test(test_linear_without_bias),
        cmocka_unit_test(test_linear_reference_gradients),
        cmocka_unit_test(test_linear_matches_pytorch),
        cmocka_unit_test(test_linear_shape_errors),
        cmocka_unit_test(test_clblast_tuning_folder),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
