/* Row-wise family: layer norm, GELU, L2 normalisation, softmax. Device against the double
 * reference, the reference's gradients against finite differences, and PyTorch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/rowwise.h"
#include "ref/ref_rowwise.h"

/* Outputs of these ops are O(1) (or scaled by a known factor), and their row statistics carry
 * float relative errors of order γ_K with K ≈ cols/wg + log2(wg) ≪ 100, i.e. ≲ 1e-5 of the
 * output scale: the elementwise tolerance 1e-5 abs + 1e-5 rel per element, plus the
 * normalised error ≤ 1e-6 of docs/spec.md §10 for the whole tensor. */
static void check(const char *what, const fcl_tensor *t, const double *want) {
    float *got = th_download(t);
    th_measure(what, got, want, t->numel);
    th_assert_close(what, got, want, t->numel, TH_EW_ATOL, TH_EW_RTOL);
    th_assert_normerr(what, got, want, t->numel, TH_NORMERR);
    free(got);
}

static fcl_tensor alloc_like(const fcl_tensor *x) {
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc(th_ctx(), &t, FCL_MEM_ACTIVATION, x->ndim, x->shape));
    return t;
}

/* ---- layer norm ------------------------------------------------------------------------ */

static void check_layernorm(int rows, int cols, uint64_t seed) {
    size_t n = (size_t)rows * cols;
    int shape[2] = {rows, cols};
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *g = malloc(cols * sizeof *g), *b = malloc(cols * sizeof *b);
    float *dg0 = malloc(cols * sizeof *dg0), *db0 = malloc(cols * sizeof *db0);
    th_random(x, n, seed, -2, 3);
    th_random(dy, n, seed + 1, -1, 1);
    th_random(g, cols, seed + 2, 0.5f, 1.5f);
    th_random(b, cols, seed + 3, -0.5f, 0.5f);
    th_random(dg0, cols, seed + 4, -1, 1); /* nonzero: the parameter gradients accumulate */
    th_random(db0, cols, seed + 5, -1, 1);
    fcl_tensor tx, tdy, tg, tb, tdg, tdb, tm, ts;
    th_upload(&tx, 2, shape, x);
    th_upload(&tdy, 2, shape, dy);
    th_upload(&tg, 1, &cols, g);
    th_upload(&tb, 1, &cols, b);
    th_upload(&tdg, 1, &cols, dg0);
    th_upload(&tdb, 1, &cols, db0);
    fcl_tensor ty = alloc_like(&tx), tdx = alloc_like(&tx);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &tm, FCL_MEM_ACTIVATION, rows));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &ts, FCL_MEM_ACTIVATION, rows));
    TH_OK(fcl_layernorm_forward(th_ctx(), &tx, &tg, &tb, FCL_LN_EPS, &ty, &tm, &ts));
    TH_OK(fcl_layernorm_backward(th_ctx(), &tx, &tg, &tm, &ts, &tdy, &tdx, &tdg, &tdb));
    double *xd = th_to_double(x, n), *dyd = th_to_double(dy, n), *gd = th_to_double(g, cols);
    double *bd = th_to_double(b, cols), *yd = malloc(n * sizeof *yd),
           *dxd = malloc(n * sizeof *dxd);
    double *dgd = malloc(cols * sizeof *dgd), *dbd = malloc(cols * sizeof *dbd);
    ref_layernorm_forward(xd, gd, bd, 1e-5, yd, rows, cols);
    ref_layernorm_backward(xd, gd, dyd, 1e-5, dxd, dgd, dbd, rows, cols);
    check("layernorm y", &ty, yd);
    check("layernorm dx", &tdx, dxd);
    /* dgamma, dbeta: start + a sum over the rows walked in order by one item, so per
     * element |err| ≤ γ_{rows+8}·Σ|term| (8 roundings for forming dy·x̂ and the start). */
    double *bound = malloc(cols * sizeof *bound);
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < cols; j++) {
            double a = fabs(pass ? db0[j] : dg0[j]);
            for (int r = 0; r < rows; r++) {
                size_t k = (size_t)r * cols + j;
                a += fabs(dyd[k] * (pass ? 1.0 : (yd[k] - bd[j]) / gd[j]));
            }
            if (pass)
                dbd[j] += db0[j];
            else
                dgd[j] += dg0[j];
            bound[j] = th_gamma(rows + 8) * a;
        }
        const char *what = pass ? "layernorm dbeta" : "layernorm dgamma";
        float *got = th_download(pass ? &tdb : &tdg);
        th_measure(what, got, pass ? dbd : dgd, cols);
        th_assert_bound(what, got, pass ? dbd : dgd, bound, cols);
        th_assert_normerr(what, got, pass ? dbd : dgd, cols, TH_NORMERR);
        free(got);
    }
    th_free(&ts), th_free(&tm), th_free(&tdx), th_free(&ty), th_free(&tdb), th_free(&tdg);
    th_free(&tb), th_free(&tg), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(g), free(b), free(dg0), free(db0), free(xd), free(dyd), free(gd);
    free(bd), free(yd), free(dxd), free(dgd), free(dbd), free(bound);
}

/* 80 query rows of the widest backbone feature (ResNet-18/34 on 224: 512·7·7 = 25,088) and
 * Conv4's 1,600; small: rows wider than a work-group and narrower than one. */
static void test_layernorm(void **state) {
    if (th_small()) {
        check_layernorm(3, 300, 100);
        check_layernorm(4, 5, 101);
    } else {
        check_layernorm(80, 25088, 100);
        check_layernorm(85, 1600, 101);
    }
}

/* ---- GELU ------------------------------------------------------------------------------ */

static void test_gelu(void **state) {
    int n = th_small() ? 37 : 100003;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    th_random(x, n, 110, -6, 6);
    x[0] = 0.0f, x[1] = -12.0f, x[2] = 12.0f, x[3] = -1e-20f; /* Φ saturates; tiny values */
    th_random(dy, n, 111, -1, 1);
    fcl_tensor tx, tdy;
    th_upload(&tx, 1, &n, x);
    th_upload(&tdy, 1, &n, dy);
    fcl_tensor ty = alloc_like(&tx);
    TH_OK(fcl_gelu_forward(th_ctx(), &tx, &ty));
    TH_OK(fcl_gelu_backward(th_ctx(), &tx, &tdy, &tdy)); /* in place over dy */
    double *xd = th_to_double(x, n), *dyd = th_to_double(dy, n);
    double *yd = malloc(n * sizeof *yd), *dxd = malloc(n * sizeof *dxd);
    ref_gelu_forward(xd, yd, n);
    ref_gelu_backward(xd, dyd, dxd, n);
    check("gelu y", &ty, yd);
    check("gelu dx", &tdy, dxd);
    th_free(&ty), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(xd), free(dyd), free(yd), free(dxd);
}

/* ---- L2 normalisation ------------------------------------------------------------------ */

static void check_l2norm(int rows, int cols, uint64_t seed) {
    size_t n = (size_t)rows * cols;
    int shape[2] = {rows, cols};
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    th_random(x, n, seed, -1, 1);
    th_random(dy, n, seed + 1, -1, 1);
    /* row 0: zero (clamped: y = 0, dx = dy/eps); row 1: norm ≈ 1e-13·√cols·0.58, below eps
     * for these widths; row 2: tiny but above eps (1e-9 scale) */
    for (int j = 0; j < cols; j++)
        x[j] = 0.0f, x[cols + j] *= 1e-13f / sqrtf((float)cols), x[2 * cols + j] *= 1e-9f;
    fcl_tensor tx, tdy;
    th_upload(&tx, 2, shape, x);
    th_upload(&tdy, 2, shape, dy);
    fcl_tensor ty = alloc_like(&tx), tdx = alloc_like(&tx);
    TH_OK(fcl_l2norm_forward(th_ctx(), &tx, FCL_L2N_EPS, &ty));
    TH_OK(fcl_l2norm_backward(th_ctx(), &tx, &tdy, FCL_L2N_EPS, &tdx));
    double *xd = th_to_double(x, n), *dyd = th_to_double(dy, n);
    double *yd = malloc(n * sizeof *yd), *dxd = malloc(n * sizeof *dxd);
    ref_l2norm_forward(xd, 1e-12, yd, rows, cols);
    ref_l2norm_backward(xd, dyd, 1e-12, dxd, rows, cols);
    check("l2norm y", &ty, yd);
    /* dx = (dy − y·⟨y,dy⟩)/d with d = max(‖x‖, eps): the bracket is O(1) and is what float
     * computes with elementwise-level error (cancellation included); the division adds one
     * rounding. Rows with tiny d (1e12·dy for the clamped ones) would make any absolute
     * tolerance meaningless, so the check is on d·dx, for every row. */
    float *got = th_download(&tdx);
    double *want_s = malloc(n * sizeof *want_s);
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int j = 0; j < cols; j++)
            ss += xd[(size_t)r * cols + j] * xd[(size_t)r * cols + j];
        double d = fmax(sqrt(ss), 1e-12);
        for (int j = 0; j < cols; j++) {
            size_t k = (size_t)r * cols + j;
            got[k] = (float)(got[k] * d); /* float holds d·dx = O(1) exactly enough (1 ulp) */
            want_s[k] = dxd[k] * d;
        }
    }
    th_measure("l2norm dx·max(|x|,eps)", got, want_s, n);
    th_assert_close("l2norm dx·max(|x|,eps)", got, want_s, n, TH_EW_ATOL, TH_EW_RTOL);
    th_assert_normerr("l2norm dx·max(|x|,eps)", got, want_s, n, TH_NORMERR);
    free(got), free(want_s);
    if (rows > 3) { /* the ordinary rows unscaled too */
        fcl_tensor rest;
        int rshape[2] = {rows - 3, cols};
        float *all = th_download(&tdx);
        th_upload(&rest, 2, rshape, all + 3 * (size_t)cols);
        check("l2norm dx (normal rows)", &rest, dxd + 3 * (size_t)cols);
        th_free(&rest);
        free(all);
    }
    th_free(&tdx), th_free(&ty), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(xd), free(dyd), free(yd), free(dxd);
}

static void test_l2norm(void **state) {
    if (th_small())
        check_l2norm(5, 300, 120);
    else {
        check_l2norm(80, 25088, 120);
        check_l2norm(40, 64, 121); /* one attention head's width */
    }
}

/* ---- softmax --------------------------------------------------------------------------- */

static void check_softmax(int rows, int cols, float scale, float range, uint64_t seed) {
    int saturated = range * fabsf(scale) > 50; /* y one-hot to float precision */
    size_t n = (size_t)rows * cols;
    int shape[2] = {rows, cols};
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    th_random(x, n, seed, -range, range);
    th_random(dy, n, seed + 1, -1, 1);
    fcl_tensor tx, tdy;
    th_upload(&tx, 2, shape, x);
    th_upload(&tdy, 2, shape, dy);
    fcl_tensor ty = alloc_like(&tx), tdx = alloc_like(&tx);
    TH_OK(fcl_softmax_forward(th_ctx(), &tx, scale, &ty));
    TH_OK(fcl_softmax_backward(th_ctx(), &ty, &tdy, scale, &tdx));
    double *xd = th_to_double(x, n), *dyd = th_to_double(dy, n);
    double *yd = malloc(n * sizeof *yd), *dxd = malloc(n * sizeof *dxd);
    ref_softmax_forward(xd, scale, yd, rows, cols);
    ref_softmax_backward(xd, dyd, scale, dxd, rows, cols);
    char what[64];
    snprintf(what, sizeof what, "softmax y (scale %g, |x|<%g)", scale, range);
    check(what, &ty, yd);
    snprintf(what, sizeof what, "softmax dx (scale %g, |x|<%g)", scale, range);
    if (saturated) {
        /* The exact dx = scale·y·(dy − ⟨y,dy⟩) is ~0 everywhere (y one-hot), while float
         * evaluates dy_max − ⟨y,dy⟩ with an absolute error of a few ulps of |dy|: the
         * normalised error is meaningless, the elementwise tolerance still applies. */
        float *got = th_download(&tdx);
        th_measure(what, got, dxd, n);
        th_assert_close(what, got, dxd, n, TH_EW_ATOL, TH_EW_RTOL);
        free(got);
    } else {
        check(what, &tdx, dxd);
    }
    th_free(&tdx), th_free(&ty), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(xd), free(dyd), free(yd), free(dxd);
}

static void test_softmax(void **state) {
    /* the attention's softmax(q·kᵀ/8) over n = 5 prototypes; a wide row; and logits of
     * ±200 (exp would overflow without the max subtracted) */
    check_softmax(th_small() ? 6 : 320, 5, 0.125f, 20, 130);
    check_softmax(th_small() ? 3 : 40, th_small() ? 300 : 25088, 1.0f, 3, 131);
    check_softmax(4, 7, 1.0f, 200, 132);
    check_softmax(4, 7, -2.0f, 50, 133); /* a negative scale: the max is of scale·x */
}

/* ---- finite differences on the reference --------------------------------------------- */

enum { FR = 3, FC = 6, FN = FR * FC };
typedef struct {
    double *x, *g, *b, scale;
    int op;
} rw_ud;

static void rw_fwd(void *ud, double *y) {
    rw_ud *u = ud;
    switch (u->op) {
    case 0: ref_layernorm_forward(u->x, u->g, u->b, 1e-5, y, FR, FC); break;
    case 1: ref_gelu_forward(u->x, y, FN); break;
    case 2: ref_l2norm_forward(u->x, 1e-12, y, FR, FC); break;
    default: ref_softmax_forward(u->x, u->scale, y, FR, FC); break;
    }
}

/* All four are smooth at these inputs (the L2 rows have norms ≈ 1, far from the clamp; its
 * clamped branch y = x/eps is linear and checked against PyTorch). Central differences with
 * h = 1e-6: truncation O(h²), rounding O(1e-16/h) = 1e-10 relative; bound 1e-6. */
static void test_reference_gradients(void **state) {
    float xf[FN], dyf[FN], gf[FC], bf[FC];
    th_random(xf, FN, 140, -2, 2);
    th_random(dyf, FN, 141, -1, 1);
    th_random(gf, FC, 142, 0.5f, 1.5f);
    th_random(bf, FC, 143, -0.5f, 0.5f);
    double x[FN], dy[FN], dx[FN], g[FC], b[FC], dg[FC], db[FC], e[6];
    for (int i = 0; i < FN; i++)
        x[i] = xf[i], dy[i] = dyf[i];
    for (int j = 0; j < FC; j++)
        g[j] = gf[j], b[j] = bf[j];
    rw_ud u = {x, g, b, 0.7, 0};
    ref_layernorm_backward(x, g, dy, 1e-5, dx, dg, db, FR, FC);
    e[0] = th_fd_error(rw_fwd, &u, x, FN, dx, dy, FN);
    e[1] = fmax(th_fd_error(rw_fwd, &u, g, FC, dg, dy, FN),
                th_fd_error(rw_fwd, &u, b, FC, db, dy, FN));
    u.op = 1;
    ref_gelu_backward(x, dy, dx, FN);
    e[2] = th_fd_error(rw_fwd, &u, x, FN, dx, dy, FN);
    u.op = 2;
    ref_l2norm_backward(x, dy, 1e-12, dx, FR, FC);
    e[3] = th_fd_error(rw_fwd, &u, x, FN, dx, dy, FN);
    u.op = 3;
    ref_softmax_backward(x, dy, 0.7, dx, FR, FC);
    e[4] = th_fd_error(rw_fwd, &u, x, FN, dx, dy, FN);
    fprintf(stderr,
            "  fd: layernorm dx %.2e dgamma/dbeta %.2e gelu %.2e l2norm %.2e softmax %.2e\n", e[0],
            e[1], e[2], e[3], e[4]);
    for (int i = 0; i < 5; i++)
        assert_true(e[i] < 1e-6);
}

/* ---- PyTorch --------------------------------------------------------------------------- */

static void expect(const struct fcl_safetensors *fx, const char *key, const fcl_tensor *t,
                   const char *what) {
    size_t n;
    const float *ref = th_fixture_data(fx, key, &n);
    assert_int_equal(n, t->numel);
    double *want = th_to_double(ref, n);
    float *got = th_download(t);
    th_measure(what, got, want, n);
    /* both sides are float32 with short rows (≤ 37): the elementwise tolerance */
    th_assert_close(what, got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got), free(want);
}

static void test_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_rowwise");
    fewcl_context *ctx = th_ctx();
    fcl_tensor x, w, b, dy, y, dx, m, s, dw, db;
    th_fixture_upload(fx, "ln_x", &x);
    th_fixture_upload(fx, "ln_w", &w);
    th_fixture_upload(fx, "ln_b", &b);
    th_fixture_upload(fx, "ln_dy", &dy);
    y = alloc_like(&x), dx = alloc_like(&x), dw = alloc_like(&w), db = alloc_like(&b);
    TH_OK(fcl_tensor_alloc1(ctx, &m, FCL_MEM_ACTIVATION, x.shape[0]));
    TH_OK(fcl_tensor_alloc1(ctx, &s, FCL_MEM_ACTIVATION, x.shape[0]));
    TH_OK(fcl_fill(ctx, &dw, 0.0f));
    TH_OK(fcl_fill(ctx, &db, 0.0f));
    TH_OK(fcl_layernorm_forward(ctx, &x, &w, &b, FCL_LN_EPS, &y, &m, &s));
    TH_OK(fcl_layernorm_backward(ctx, &x, &w, &m, &s, &dy, &dx, &dw, &db));
    expect(fx, "ln_y", &y, "layernorm y vs torch");
    expect(fx, "ln_dx", &dx, "layernorm dx vs torch");
    expect(fx, "ln_dw", &dw, "layernorm dgamma vs torch");
    expect(fx, "ln_db", &db, "layernorm dbeta vs torch");
    th_free(&s), th_free(&m), th_free(&db), th_free(&dw), th_free(&dx), th_free(&y);
    th_free(&dy), th_free(&b), th_free(&w), th_free(&x);

    static const char *names[3] = {"gelu", "l2", "sm"};
    for (int op = 0; op < 3; op++) {
        char key[32], what[64];
        snprintf(key, sizeof key, "%s_x", names[op]);
        th_fixture_upload(fx, key, &x);
        snprintf(key, sizeof key, "%s_dy", names[op]);
        th_fixture_upload(fx, key, &dy);
        y = alloc_like(&x), dx = alloc_like(&x);
        if (op == 0) {
            TH_OK(fcl_gelu_forward(ctx, &x, &y));
            TH_OK(fcl_gelu_backward(ctx, &x, &dy, &dx));
        } else if (op == 1) {
            TH_OK(fcl_l2norm_forward(ctx, &x, FCL_L2N_EPS, &y));
            TH_OK(fcl_l2norm_backward(ctx, &x, &dy, FCL_L2N_EPS, &dx));
        } else {
            TH_OK(fcl_softmax_forward(ctx, &x, 0.125f, &y));
            TH_OK(fcl_softmax_backward(ctx, &y, &dy, 0.125f, &dx));
        }
        snprintf(key, sizeof key, "%s_y", names[op]);
        snprintf(what, sizeof what, "%s y vs torch", names[op]);
        expect(fx, key, &y, what);
        snprintf(key, sizeof key, "%s_dx", names[op]);
        snprintf(what, sizeof what, "%s dx vs torch", names[op]);
        expect(fx, key, &dx, what);
        th_free(&dx), th_free(&y), th_free(&dy), th_free(&x);
    }
    th_fixture_free(fx);
}

static void test_shape_errors(void **state) {
    fewcl_context *ctx = th_ctx();
    fcl_tensor x, y, p, r;
    TH_OK(fcl_tensor_alloc2(ctx, &x, FCL_MEM_ACTIVATION, 4, 8));
    TH_OK(fcl_tensor_alloc2(ctx, &y, FCL_MEM_ACTIVATION, 4, 8));
    TH_OK(fcl_tensor_alloc1(ctx, &p, FCL_MEM_ACTIVATION, 7));
    TH_OK(fcl_tensor_alloc1(ctx, &r, FCL_MEM_ACTIVATION, 4));
    assert_int_equal(fcl_layernorm_forward(ctx, &x, &p, &p, 1e-5f, &y, &r, &r), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "gamma [7] does not fit 8 features"));
    assert_int_equal(fcl_softmax_forward(ctx, &x, 1.0f, &p), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "x [4,8] and y [7] do not fit"));
    th_free(&r), th_free(&p), th_free(&y), th_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_l2norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_reference_gradients),
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
