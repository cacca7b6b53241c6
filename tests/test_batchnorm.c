/* BatchNorm2d: device against the double reference (training and evaluation, forward and
 * backward, running-statistics update), the reference's gradients against finite
 * differences, PyTorch's F.batch_norm, and the meta-batch's record and replay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/batchnorm.h"
#include "ops/ops.h"
#include "ref/ref_batchnorm.h"

/* Prints the measured errors (for the record) and returns the normalised error. */
static double measure(const char *what, const float *got, const double *want, size_t n) {
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d, den += want[i] * want[i];
        worst = fmax(worst, fabs(d));
    }
    double e = den > 0 ? num / den : num;
    fprintf(stderr, "  %-34s max|err| %.3e  normerr %.3e\n", what, worst, e);
    return e;
}

static double *dup_d(const float *x, size_t n) { return th_to_double(x, n); }

/* Per-element bound of a per-channel sum of `terms`: in float each work-item adds
 * ceil(M/wg) terms in sequence and the tree adds log2(wg) levels, so Higham's bound is
 * γ_K·Σ|term| with K = ceil(M/wg) + log2(wg); 8 more roundings cover forming each term
 * (x − mean, ·inv, ·dy) and the float mean/inv it uses. */
static double sum_bound(size_t m, double abs_sum) {
    size_t wg = fcl_wg_1d(th_ctx()), lg = 0;
    while ((1u << lg) < wg)
        lg++;
    return th_gamma((int)((m + wg - 1) / wg + lg + 8)) * abs_sum;
}

/* as_2d: x is [N,C] (BatchNorm1d-like use; needs h = w = 1). */
static void check_train(int n, int c, int h, int w, uint64_t seed, int as_2d) {
    int shape[4] = {n, c, h, w}, hw = h * w, nd = as_2d ? 2 : 4;
    size_t numel = (size_t)n * c * hw, m = (size_t)n * hw;
    float *x = malloc(numel * sizeof *x), *dy = malloc(numel * sizeof *dy);
    float g[512], b[512], rm[512], rv[512], dg0[512], db0[512];
    assert_true(c <= 512);
    th_random(x, numel, seed, -2, 3); /* mean ≠ 0: the two-pass variance matters */
    th_random(dy, numel, seed + 1, -1, 1);
    th_random(g, c, seed + 2, 0.5f, 1.5f);
    th_random(b, c, seed + 3, -0.5f, 0.5f);
    th_random(rm, c, seed + 4, -0.2f, 0.2f);
    th_random(rv, c, seed + 5, 0.5f, 1.5f);
    th_random(dg0, c, seed + 6, -1, 1); /* nonzero start: the parameter grads accumulate */
    th_random(db0, c, seed + 7, -1, 1);
    fcl_tensor tx, tdy, tg, tb, trm, trv, ty, tsm, tsi, tdx, tdg, tdb;
    th_upload(&tx, nd, shape, x);
    th_upload(&tdy, nd, shape, dy);
    th_upload(&tg, 1, &c, g);
    th_upload(&tb, 1, &c, b);
    th_upload(&trm, 1, &c, rm);
    th_upload(&trv, 1, &c, rv);
    th_upload(&tdg, 1, &c, dg0);
    th_upload(&tdb, 1, &c, db0);
    fewcl_context *ctx = th_ctx();
    TH_OK(fcl_tensor_alloc(ctx, &ty, FCL_MEM_ACTIVATION, nd, shape));
    TH_OK(fcl_tensor_alloc(ctx, &tdx, FCL_MEM_ACTIVATION, nd, shape));
    TH_OK(fcl_tensor_alloc1(ctx, &tsm, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_tensor_alloc1(ctx, &tsi, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_batchnorm_forward_train(ctx, &tx, &tg, &tb, &trm, &trv, FCL_BN_MOMENTUM, FCL_BN_EPS,
                                      NULL, 0, &ty, &tsm, &tsi));
    TH_OK(fcl_batchnorm_backward_train(ctx, &tx, &tg, &tsm, &tsi, &tdy, &tdx, &tdg, &tdb));

    double *xd = dup_d(x, numel), *dyd = dup_d(dy, numel), *gd = dup_d(g, c), *bd = dup_d(b, c);
    double *rmd = dup_d(rm, c), *rvd = dup_d(rv, c), *smd = malloc(c * sizeof *smd),
           *sid = malloc(c * sizeof *sid), *yd = malloc(numel * sizeof *yd),
           *dxd = malloc(numel * sizeof *dxd), *dgd = malloc(c * sizeof *dgd),
           *dbd = malloc(c * sizeof *dbd);
    ref_bn_forward_train(xd, gd, bd, rmd, rvd, 0.1, 1e-5, yd, smd, sid, n, c, hw);
    ref_bn_backward_train(xd, gd, dyd, 1e-5, dxd, dgd, dbd, n, c, hw);

    /* The outputs are O(1) after normalisation; the float statistics carry relative errors
     * of order γ_K (K ≈ M/wg, well below 1e-5), so y, dx and the per-channel statistics
     * meet the elementwise tolerance 1e-5 abs + 1e-5 rel, and normerr ≤ 1e-6 overall. */
    float *got = th_download(&ty);
    measure("bn train y", got, yd, numel);
    th_assert_close("bn train y", got, yd, numel, TH_EW_ATOL, TH_EW_RTOL);
    th_assert_normerr("bn train y", got, yd, numel, TH_NORMERR);
    free(got);
    got = th_download(&tsm);
    th_assert_close("bn save_mean", got, smd, c, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&tsi);
    th_assert_close("bn save_invstd", got, sid, c, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&trm);
    measure("bn running_mean", got, rmd, c);
    th_assert_close("bn running_mean", got, rmd, c, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&trv);
    measure("bn running_var", got, rvd, c);
    th_assert_close("bn running_var", got, rvd, c, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&tdx);
    measure("bn train dx", got, dxd, numel);
    th_assert_close("bn train dx", got, dxd, numel, TH_EW_ATOL, TH_EW_RTOL);
    th_assert_normerr("bn train dx", got, dxd, numel, TH_NORMERR);
    free(got);

    /* dgamma, dbeta: start + per-channel sums; bound from sum_bound on Σ|term|. */
    double *want = malloc(c * sizeof *want), *bound = malloc(c * sizeof *bound);
    for (int ch = 0; ch < c; ch++) {
        double ag = 0, ab = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                size_t k = ((size_t)i * c + ch) * hw + p;
                ag += fabs(dyd[k] * (xd[k] - smd[ch]) * sid[ch]);
                ab += fabs(dyd[k]);
            }
        want[ch] = dg0[ch] + dgd[ch];
        bound[ch] = sum_bound(m, ag) + 1e-7 * fabs(want[ch]); /* + the final += rounding */
    }
    got = th_download(&tdg);
    measure("bn train dgamma", got, want, c);
    th_assert_bound("bn train dgamma", got, want, bound, c);
    th_assert_normerr("bn train dgamma", got, want, c, TH_NORMERR);
    free(got);
    for (int ch = 0; ch < c; ch++) {
        double ab = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
                ab += fabs(dyd[((size_t)i * c + ch) * hw + p]);
        want[ch] = db0[ch] + dbd[ch];
        bound[ch] = sum_bound(m, ab) + 1e-7 * fabs(want[ch]);
    }
    got = th_download(&tdb);
    measure("bn train dbeta", got, want, c);
    th_assert_bound("bn train dbeta", got, want, bound, c);
    th_assert_normerr("bn train dbeta", got, want, c, TH_NORMERR);
    free(got);

    th_free(&tsi), th_free(&tsm), th_free(&tdx), th_free(&ty), th_free(&tdb), th_free(&tdg);
    th_free(&trv), th_free(&trm), th_free(&tb), th_free(&tg), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(xd), free(dyd), free(gd), free(bd), free(rmd), free(rvd), free(smd);
    free(sid), free(yd), free(dxd), free(dgd), free(dbd), free(want), free(bound);
}

/* Conv4's first block on an 84x84 episode of 5·21 images, and a ResNet's last stage. */
static void test_train_conv4_block(void **state) {
    if (th_small())
        check_train(3, 5, 7, 7, 10, 0); /* hw = 49 < wg: items with no work */
    else
        check_train(105, 64, 42, 42, 10, 0);
}

static void test_train_resnet_stage(void **state) {
    if (th_small())
        check_train(3, 3, 1, 1, 20, 0); /* M = 3, [N,C,1,1]; (M = 2 makes dx ≡ 0: x̂ = ±1) */
    else
        check_train(105, 512, 7, 7, 20, 0);
    check_train(th_small() ? 4 : 105, 6, 1, 1, 21, 1); /* x [N,C] */
}

/* The fused evaluation pass (a residual block's BN + add + ReLU, lib/nn/backbone.c) gives the
 * bits of the separate BN, fcl_add and fcl_relu_forward: the same float operations in the same
 * order, so equality is exact on any device. hw = 11x11 = 121 exercises the row kernel's 8-wide
 * loop and its tail; the residual is also given as the output itself (aliased, in place). */
/* BatchNorm (mode 0: evaluation, 1: training, 2: training recording the statistics) into
 * y, then the residual and the ReLU: separately (fused 0) or in BatchNorm's pass. The
 * training modes start from the same running statistics each time. */
static void bn_then(int mode, int fused, const fcl_tensor *x, const fcl_tensor *g,
                    const fcl_tensor *b, const float *rm, const float *rv, fcl_tensor *rec,
                    const fcl_tensor *add, int relu, fcl_tensor *y) {
    fewcl_context *ctx = th_ctx();
    int c = x->shape[1];
    fcl_tensor trm, trv, sm, si;
    th_upload(&trm, 1, &c, rm);
    th_upload(&trv, 1, &c, rv);
    TH_OK(fcl_tensor_alloc1(ctx, &sm, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_tensor_alloc1(ctx, &si, FCL_MEM_ACTIVATION, c));
    const fcl_tensor *a = fused ? add : NULL;
    int r = fused ? relu : 0;
    if (mode == 0)
        TH_OK(fcl_batchnorm_forward_eval_fused(ctx, x, g, b, &trm, &trv, FCL_BN_EPS, a, r, y));
    else if (mode == 1)
        TH_OK(fcl_batchnorm_forward_train(ctx, x, g, b, &trm, &trv, FCL_BN_MOMENTUM, FCL_BN_EPS, a,
                                          r, y, &sm, &si));
    else
        TH_OK(fcl_batchnorm_forward_train_record(ctx, x, g, b, rec, 0, (size_t)c, FCL_BN_EPS, a, r,
                                                 y, &sm, &si));
    if (!fused && add) TH_OK(fcl_add(ctx, y, add, y));
    if (!fused && relu) TH_OK(fcl_relu_forward(ctx, y, y));
    th_free(&si), th_free(&sm), th_free(&trv), th_free(&trm);
}

static void test_fused_is_the_separate_ops(void **state) {
    int n = th_small() ? 2 : 5, c = th_small() ? 3 : 16, h = 11, w = 11;
    int shape[4] = {n, c, h, w};
    size_t numel = (size_t)n * c * h * w;
    float *x = malloc(numel * sizeof *x), *r = malloc(numel * sizeof *r);
    float g[16], b[16], rm[16], rv[16];
    th_random(x, numel, 40, -2, 3);
    th_random(r, numel, 41, -2, 2);
    th_random(g, c, 42, -1.5f, 1.5f); /* negative gammas too: ReLU's zeros on both sides */
    th_random(b, c, 43, -0.5f, 0.5f);
    th_random(rm, c, 44, -0.2f, 0.2f);
    th_random(rv, c, 45, 0.5f, 1.5f);
    fcl_tensor tx, tr, tg, tb, rec, sep, fused;
    th_upload(&tx, 4, shape, x);
    th_upload(&tr, 4, shape, r);
    th_upload(&tg, 1, &c, g);
    th_upload(&tb, 1, &c, b);
    fewcl_context *ctx = th_ctx();
    TH_OK(fcl_tensor_alloc1(ctx, &rec, FCL_MEM_ACTIVATION, 2 * c));
    TH_OK(fcl_tensor_alloc(ctx, &sep, FCL_MEM_ACTIVATION, 4, shape));
    TH_OK(fcl_tensor_alloc(ctx, &fused, FCL_MEM_ACTIVATION, 4, shape));
    const char *names[3] = {"evaluation", "training", "training, recording"};
    for (int bn = 0; bn < 3; bn++)
        for (int mode = 0; mode < 4; mode++) { /* bit 0: the residual, bit 1: ReLU */
            int add = mode & 1, relu = mode >> 1;
            bn_then(bn, 0, &tx, &tg, &tb, rm, rv, &rec, add ? &tr : NULL, relu, &sep);
            /* the residual in the output's own memory when there is one */
            if (add) TH_OK(fcl_tensor_upload(ctx, &fused, r));
            bn_then(bn, 1, &tx, &tg, &tb, rm, rv, &rec, add ? &fused : NULL, relu, &fused);
            float *a = th_download(&sep), *f = th_download(&fused);
            size_t zeros = 0;
            for (size_t i = 0; i < numel; i++)
                zeros += a[i] == 0.0f;
            assert_memory_equal(a, f, numel * sizeof(float));
            if (relu) assert_true(zeros > 0 && zeros < numel);
            print_message("    %s, add %d relu %d: %zu values, %zu zeros, equal bit for bit\n",
                          names[bn], add, relu, numel, zeros);
            free(a), free(f);
        }
    th_free(&fused), th_free(&sep), th_free(&rec), th_free(&tb), th_free(&tg), th_free(&tr);
    th_free(&tx);
    free(x), free(r);
}

static void test_eval(void **state) {
    int n = th_small() ? 2 : 21, c = th_small() ? 3 : 64, h = th_small() ? 3 : 11, w = h;
    int shape[4] = {n, c, h, w}, hw = h * w;
    size_t numel = (size_t)n * c * hw;
    float *x = malloc(numel * sizeof *x), *dy = malloc(numel * sizeof *dy);
    float g[64], b[64], rm[64], rv[64], dg0[64], db0[64];
    th_random(x, numel, 30, -2, 3);
    th_random(dy, numel, 31, -1, 1);
    th_random(g, c, 32, 0.5f, 1.5f);
    th_random(b, c, 33, -0.5f, 0.5f);
    th_random(rm, c, 34, -0.2f, 0.2f);
    th_random(rv, c, 35, 0.5f, 1.5f);
    th_random(dg0, c, 36, -1, 1);
    th_random(db0, c, 37, -1, 1);
    fcl_tensor tx, tdy, tg, tb, trm, trv, ty, tdg, tdb;
    th_upload(&tx, 4, shape, x);
    th_upload(&tdy, 4, shape, dy);
    th_upload(&tg, 1, &c, g);
    th_upload(&tb, 1, &c, b);
    th_upload(&trm, 1, &c, rm);
    th_upload(&trv, 1, &c, rv);
    th_upload(&tdg, 1, &c, dg0);
    th_upload(&tdb, 1, &c, db0);
    fewcl_context *ctx = th_ctx();
    TH_OK(fcl_tensor_alloc(ctx, &ty, FCL_MEM_ACTIVATION, 4, shape));
    TH_OK(fcl_batchnorm_forward_eval(ctx, &tx, &tg, &tb, &trm, &trv, FCL_BN_EPS, &ty));
    float *y_dev = th_download(&ty);
    /* dx written over dy (in place): the kernel reads each dy before writing that dx */
    TH_OK(
        fcl_batchnorm_backward_eval(ctx, &tx, &tg, &trm, &trv, FCL_BN_EPS, &tdy, &tdy, &tdg, &tdb));
    double *xd = dup_d(x, numel), *dyd = dup_d(dy, numel), *gd = dup_d(g, c), *bd = dup_d(b, c);
    double *rmd = dup_d(rm, c), *rvd = dup_d(rv, c), *yd = malloc(numel * sizeof *yd),
           *dxd = malloc(numel * sizeof *dxd), dgd[64], dbd[64];
    ref_bn_forward_eval(xd, gd, bd, rmd, rvd, 1e-5, yd, n, c, hw);
    ref_bn_backward_eval(xd, gd, rmd, rvd, dyd, 1e-5, dxd, dgd, dbd, n, c, hw);
    /* elementwise ops: 1e-5 abs + 1e-5 rel */
    measure("bn eval y", y_dev, yd, numel);
    th_assert_close("bn eval y", y_dev, yd, numel, TH_EW_ATOL, TH_EW_RTOL);
    float *got = th_download(&tdy);
    measure("bn eval dx", got, dxd, numel);
    th_assert_close("bn eval dx", got, dxd, numel, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    for (int ch = 0; ch < c; ch++)
        dgd[ch] += dg0[ch], dbd[ch] += db0[ch];
    /* per-channel sums of n·hw terms: normerr ≤ 1e-6 */
    got = th_download(&tdg);
    measure("bn eval dgamma", got, dgd, c);
    th_assert_normerr("bn eval dgamma", got, dgd, c, TH_NORMERR);
    free(got);
    got = th_download(&tdb);
    measure("bn eval dbeta", got, dbd, c);
    th_assert_normerr("bn eval dbeta", got, dbd, c, TH_NORMERR);
    free(got);
    th_free(&ty), th_free(&tdb), th_free(&tdg), th_free(&trv), th_free(&trm), th_free(&tb);
    th_free(&tg), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(y_dev), free(xd), free(dyd), free(gd), free(bd), free(rmd), free(rvd);
    free(yd), free(dxd);
}

/* ---- finite differences on the reference --------------------------------------------- */

enum { FN = 3, FC = 2, FHW = 5, FNUM = FN * FC * FHW };

typedef struct {
    double *x, *g, *b, *rm, *rv;
    int train;
} bn_ud;

static void bn_fwd(void *ud, double *y) {
    bn_ud *u = ud;
    if (u->train)
        ref_bn_forward_train(u->x, u->g, u->b, NULL, NULL, 0.1, 1e-5, y, NULL, NULL, FN, FC, FHW);
    else
        ref_bn_forward_eval(u->x, u->g, u->b, u->rm, u->rv, 1e-5, y, FN, FC, FHW);
}

static void test_reference_gradients(void **state) {
    float xf[FNUM], dyf[FNUM];
    th_random(xf, FNUM, 40, -2, 3);
    th_random(dyf, FNUM, 41, -1, 1);
    double x[FNUM], dy[FNUM], dx[FNUM], g[FC] = {0.7, 1.3}, b[FC] = {0.1, -0.2},
                                        rm[FC] = {0.05, -0.1}, rv[FC] = {0.8, 1.2}, dg[FC], db[FC];
    for (int i = 0; i < FNUM; i++)
        x[i] = xf[i], dy[i] = dyf[i];
    bn_ud u = {x, g, b, rm, rv, 1};
    /* Smooth in every input: central differences with h = 1e-6 have truncation error
     * O(h²) and rounding error O(1e-16/h) = 1e-10 relative, so 1e-6 is a safe bound that
     * still catches any wrong term (those are O(1) relative). */
    ref_bn_backward_train(x, g, dy, 1e-5, dx, dg, db, FN, FC, FHW);
    double e1 = th_fd_error(bn_fwd, &u, x, FNUM, dx, dy, FNUM);
    double e2 = th_fd_error(bn_fwd, &u, g, FC, dg, dy, FNUM);
    double e3 = th_fd_error(bn_fwd, &u, b, FC, db, dy, FNUM);
    u.train = 0;
    ref_bn_backward_eval(x, g, rm, rv, dy, 1e-5, dx, dg, db, FN, FC, FHW);
    double e4 = th_fd_error(bn_fwd, &u, x, FNUM, dx, dy, FNUM);
    double e5 = th_fd_error(bn_fwd, &u, g, FC, dg, dy, FNUM);
    double e6 = th_fd_error(bn_fwd, &u, b, FC, db, dy, FNUM);
    fprintf(stderr, "  bn fd: train dx %.2e dg %.2e db %.2e; eval dx %.2e dg %.2e db %.2e\n", e1,
            e2, e3, e4, e5, e6);
    assert_true(e1 < 1e-6 && e2 < 1e-6 && e3 < 1e-6);
    assert_true(e4 < 1e-6 && e5 < 1e-6 && e6 < 1e-6);
}

/* ---- PyTorch --------------------------------------------------------------------------- */

static void expect(const struct fcl_safetensors *fx, const char *key, const fcl_tensor *t,
                   const char *what) {
    size_t n;
    const float *ref = th_fixture_data(fx, key, &n);
    assert_int_equal(n, t->numel);
    double *want = th_to_double(ref, n);
    float *got = th_download(t);
    measure(what, got, want, n);
    /* PyTorch computes in float32 too: both sides carry float rounding, so the
     * elementwise tolerance applies (the reductions here are over 75 values). */
    th_assert_close(what, got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got), free(want);
}

static void test_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_batchnorm");
    fewcl_context *ctx = th_ctx();
    fcl_tensor x, g, b, rm, rv, dy, y, sm, si, dx, dg, db;
    th_fixture_upload(fx, "x", &x);
    th_fixture_upload(fx, "gamma", &g);
    th_fixture_upload(fx, "beta", &b);
    th_fixture_upload(fx, "running_mean", &rm);
    th_fixture_upload(fx, "running_var", &rv);
    th_fixture_upload(fx, "dy", &dy);
    int c = x.shape[1];
    TH_OK(fcl_tensor_alloc(ctx, &y, FCL_MEM_ACTIVATION, x.ndim, x.shape));
    TH_OK(fcl_tensor_alloc(ctx, &dx, FCL_MEM_ACTIVATION, x.ndim, x.shape));
    TH_OK(fcl_tensor_alloc1(ctx, &sm, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_tensor_alloc1(ctx, &si, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_tensor_alloc1(ctx, &dg, FCL_MEM_ACTIVATION, c));
    TH_OK(fcl_tensor_alloc1(ctx, &db, FCL_MEM_ACTIVATION, c));

    /* evaluation first, while the running statistics are the "before" ones */
    TH_OK(fcl_batchnorm_forward_eval(ctx, &x, &g, &b, &rm, &rv, FCL_BN_EPS, &y));
    expect(fx, "y_eval", &y, "bn eval y vs torch");
    TH_OK(fcl_fill(ctx, &dg, 0.0f));
    TH_OK(fcl_fill(ctx, &db, 0.0f));
    TH_OK(fcl_batchnorm_backward_eval(ctx, &x, &g, &rm, &rv, FCL_BN_EPS, &dy, &dx, &dg, &db));
    expect(fx, "dx_eval", &dx, "bn eval dx vs torch");
    expect(fx, "dgamma_eval", &dg, "bn eval dgamma vs torch");
    expect(fx, "dbeta_eval", &db, "bn eval dbeta vs torch");

    TH_OK(fcl_batchnorm_forward_train(ctx, &x, &g, &b, &rm, &rv, FCL_BN_MOMENTUM, FCL_BN_EPS, NULL,
                                      0, &y, &sm, &si));
    expect(fx, "y", &y, "bn train y vs torch");
    expect(fx, "running_mean_after", &rm, "bn running_mean vs torch");
    expect(fx, "running_var_after", &rv, "bn running_var vs torch");
    TH_OK(fcl_fill(ctx, &dg, 0.0f));
    TH_OK(fcl_fill(ctx, &db, 0.0f));
    TH_OK(fcl_batchnorm_backward_train(ctx, &x, &g, &sm, &si, &dy, &dx, &dg, &db));
    expect(fx, "dx", &dx, "bn train dx vs torch");
    expect(fx, "dgamma", &dg, "bn train dgamma vs torch");
    expect(fx, "dbeta", &db, "bn train dbeta vs torch");
    th_free(&db), th_free(&dg), th_free(&si), th_free(&sm), th_free(&dx), th_free(&y);
    th_free(&dy), th_free(&rv), th_free(&rm), th_free(&b), th_free(&g), th_free(&x);
    th_fixture_free(fx);
}

static void test_shape_errors(void **state) {
    fewcl_context *ctx = th_ctx();
    int shape[4] = {2, 3, 4, 4};
    fcl_tensor x, y, p3, p4;
    TH_OK(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, shape));
    TH_OK(fcl_tensor_alloc(ctx, &y, FCL_MEM_ACTIVATION, 4, shape));
    TH_OK(fcl_tensor_alloc1(ctx, &p3, FCL_MEM_ACTIVATION, 3));
    TH_OK(fcl_tensor_alloc1(ctx, &p4, FCL_MEM_ACTIVATION, 4));
    assert_int_equal(fcl_batchnorm_forward_eval(ctx, &x, &p3, &p4, &p3, &p3, 1e-5f, &y),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "beta [4] does not fit 3 channels"));
    assert_int_equal(fcl_batchnorm_forward_train(ctx, &x, &p3, &p3, &p3, &p3, 0.1f, 1e-5f, NULL, 0,
                                                 &p4, &p3, &p3),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "x [2,3,4,4] and y [4] do not fit"));
    int one[4] = {1, 3, 1, 1}; /* one value per channel: PyTorch refuses to train on it */
    fcl_tensor x1;
    TH_OK(fcl_tensor_alloc(ctx, &x1, FCL_MEM_ACTIVATION, 4, one));
    assert_int_equal(fcl_batchnorm_forward_train(ctx, &x1, &p3, &p3, &p3, &p3, 0.1f, 1e-5f, NULL, 0,
                                                 &x1, &p3, &p3),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "N·H·W = 1"));
    th_free(&x1);
    th_free(&p4), th_free(&p3), th_free(&y), th_free(&x);
}

/* meta_bn_replay (docs/maths.md §7.1): E training forwards that record their batch statistics
 * (and change no running statistic), then the replay of the records, give the running
 * statistics of E forwards that update them in the kernel, bit for bit on this device (the two
 * kernels share the update code, and this is the check that no compiler contracts them
 * differently), and the same outputs. */
static void test_bn_replay_equals_sequential_updates(void **state) {
    (void)state;
    enum { N = 4, C = 37, H = 5, W = 3, E = 3 };
    int shape[4] = {N, C, H, W};
    size_t nx = (size_t)N * C * H * W;
    float *host = malloc(nx * sizeof *host), r0[C], v0[C];
    fcl_tensor x[E], y = {0}, sm = {0}, si = {0}, gamma = {0}, beta = {0};
    fcl_tensor rm = {0}, rv = {0}, rec_rm = {0}, rec_rv = {0}, rec = {0};
    for (int e = 0; e < E; e++) {
        th_random(host, nx, 100 + e, -3, 5);
        memset(&x[e], 0, sizeof x[e]);
        th_upload(&x[e], 4, shape, host);
    }
    th_random(r0, C, 7, -1, 1);
    th_random(v0, C, 8, 0.5f, 2);
    th_upload(&gamma, 1, (int[]){C}, r0);
    th_upload(&beta, 1, (int[]){C}, v0);
    th_upload(&rm, 1, (int[]){C}, r0), th_upload(&rv, 1, (int[]){C}, v0);
    th_upload(&rec_rm, 1, (int[]){C}, r0), th_upload(&rec_rv, 1, (int[]){C}, v0);
    fewcl_context *ctx = th_ctx();
    TH_OK(fcl_tensor_alloc(ctx, &y, FCL_MEM_ACTIVATION, 4, shape));
    TH_OK(fcl_tensor_alloc1(ctx, &sm, FCL_MEM_ACTIVATION, C));
    TH_OK(fcl_tensor_alloc1(ctx, &si, FCL_MEM_ACTIVATION, C));
    TH_OK(fcl_tensor_alloc1(ctx, &rec, FCL_MEM_ACTIVATION, E * 2 * C));
    float *y_seq[E], *y_rec[E];
    for (int e = 0; e < E; e++) { /* sequential: the running statistics updated E times */
        TH_OK(fcl_batchnorm_forward_train(ctx, &x[e], &gamma, &beta, &rm, &rv, FCL_BN_MOMENTUM,
                                          FCL_BN_EPS, NULL, 0, &y, &sm, &si));
        y_seq[e] = th_download(&y);
    }
    for (int e = 0; e < E; e++) { /* recorded: record e holds mean at e·2C, variance at e·2C+C */
        TH_OK(fcl_batchnorm_forward_train_record(ctx, &x[e], &gamma, &beta, &rec, e * 2 * C,
                                                 e * 2 * C + C, FCL_BN_EPS, NULL, 0, &y, &sm, &si));
        y_rec[e] = th_download(&y);
    }
    float *untouched = th_download(&rec_rm);
    assert_memory_equal(untouched, r0, sizeof r0); /* recording updates nothing */
    TH_OK(fcl_batchnorm_running_replay(ctx, &rec_rm, &rec, 0, 2 * C, E, FCL_BN_MOMENTUM));
    TH_OK(fcl_batchnorm_running_replay(ctx, &rec_rv, &rec, C, 2 * C, E, FCL_BN_MOMENTUM));
    float *a = th_download(&rm), *b = th_download(&rec_rm);
    float *av = th_download(&rv), *bv = th_download(&rec_rv);
    assert_memory_equal(a, b, sizeof r0);
    assert_memory_equal(av, bv, sizeof v0);
    assert_memory_not_equal(a, r0, sizeof r0); /* the updates happened */
    for (int e = 0; e < E; e++) {
        assert_memory_equal(y_seq[e], y_rec[e], nx * sizeof(float));
        free(y_seq[e]), free(y_rec[e]);
    }
    free(a), free(b), free(av), free(bv), free(untouched), free(host);
    fcl_tensor *all[] = {&rec, &si, &sm, &y, &rec_rv, &rec_rm, &rv, &rm, &beta, &gamma};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        th_free(all[i]);
    for (int e = E - 1; e >= 0; e--)
        th_free(&x[e]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_conv4_block),
        cmocka_unit_test(test_train_resnet_stage),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_fused_is_the_separate_ops),
        cmocka_unit_test(test_reference_gradients),
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_bn_replay_equals_sequential_updates),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
