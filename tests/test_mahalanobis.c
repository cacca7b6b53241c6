/* The Mahalanobis classifier (lib/ops/mahalanobis.h): the batched blocked Cholesky and SPD
 * inverse, the non-SPD detection and jitter fallback, the dense and low-rank paths forward and
 * backward against the double reference, against each other and against PyTorch (V-D's
 * MahalanobisClassifier: cholesky + cholesky_inverse, autograd), and the reference's gradients
 * against finite differences.
 *
 * Tolerances (docs/spec.md §3, §10): distances, the inverse and the gradients that
 * pass through it within 1e-4 relative, measured as max|got − want| / max|want| (the logits of
 * one batch share a scale, and a per-element relative bound would be meaningless for gradient
 * entries that cancel to ~0); the covariance, a GEMM, within normalised error 1e-6. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "ops/mahalanobis.h"
#include "ref/ref_mahalanobis.h"

#define REL_TOL 1e-4

/* The batched GEMMs loop over classes: 2 classes under oclgrind, 5 (5-way) otherwise. */
static int classes(void) { return th_small() ? 2 : 5; }

static double rel_error(const float *got, const double *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(got[i] - want[i]));
        den = fmax(den, fabs(want[i]));
    }
    return num / (den > 0 ? den : 1);
}

static double expect_rel(const char *what, const fcl_tensor *t, const double *want, double tol) {
    float *got = th_download(t);
    double err = rel_error(got, want, t->numel);
    printf("  %-34s max relative error %.2e (tolerance %.0e)\n", what, err, tol);
    free(got);
    assert_true(err <= tol);
    return err;
}

static fcl_tensor alloc3(int a, int b, int c) {
    fcl_tensor t;
    int s[3] = {a, b, c};
    TH_OK(fcl_tensor_alloc(th_ctx(), &t, FCL_MEM_ACTIVATION, 3, s));
    return t;
}

static fcl_tensor alloc2(int a, int b) {
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc2(th_ctx(), &t, FCL_MEM_ACTIVATION, a, b));
    return t;
}

/* count SPD matrices A = MᵀM/d + 0.5·I (eigenvalues in [0.5, ~2]). */
static float *random_spd(int count, int d, uint64_t seed) {
    size_t dd = (size_t)d * d;
    float *m = malloc(dd * sizeof *m), *a = malloc(count * dd * sizeof *a);
    for (int b = 0; b < count; b++) {
        th_random(m, dd, seed + b, -1, 1);
        for (int i = 0; i < d; i++)
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += (double)m[t * d + i] * m[t * d + j];
                a[b * dd + i * d + j] = a[b * dd + j * d + i] = (float)(s / d + (i == j ? 0.5 : 0));
            }
    }
    free(m);
    return a;
}

static void check_inverse(int count, int d) {
    size_t dd = (size_t)d * d;
    float *a = random_spd(count, d, 200 + d);
    fcl_tensor A, L, INV, ST;
    int s[3] = {count, d, d};
    th_upload(&A, 3, s, a);
    th_upload(&L, 3, s, a);
    INV = alloc3(count, d, d);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &ST, FCL_MEM_ACTIVATION, count));
    TH_OK(fcl_cholesky_batched(th_ctx(), &L, &ST));
    int jit[8];
    TH_OK(fcl_spd_inverse(th_ctx(), &A, &INV, "test: matrix", jit));
    float *lf = th_download(&L), *st = th_download(&ST);
    double *ad = th_to_double(a, count * dd), *want_l = malloc(count * dd * sizeof *want_l);
    double *want_inv = malloc(count * dd * sizeof *want_inv);
    for (int b = 0; b < count; b++) {
        assert_true(st[b] == 0.0f && jit[b] == 0);
        assert_int_equal(ref_cholesky(ad + b * dd, d, want_l + b * dd), 0);
        assert_int_equal(ref_inverse(ad + b * dd, d, want_inv + b * dd), 0);
        for (int i = 0; i < d; i++) /* only the lower triangle holds the factor */
            for (int j = i + 1; j < d; j++)
                lf[b * dd + i * d + j] = 0.0f;
    }
    /* The factor of a matrix with condition ~4 is accurate to ~d·u: 1e-5 relative. */
    char what[64];
    snprintf(what, sizeof what, "cholesky factor D=%d", d);
    double err = rel_error(lf, want_l, count * dd);
    printf("  %-34s max relative error %.2e (tolerance 1e-05)\n", what, err);
    assert_true(err <= 1e-5);
    snprintf(what, sizeof what, "spd inverse D=%d", d);
    expect_rel(what, &INV, want_inv, REL_TOL);
    free(lf), free(st), free(ad), free(want_l), free(want_inv), free(a);
    th_free(&ST), th_free(&INV), th_free(&L), th_free(&A);
}

/* 70 = 32 + 32 + 6: full panels and a ragged last one; 512 is the model's D′ and 1024 the
 * largest the task asks for (both skipped under oclgrind). */
static void test_cholesky_and_inverse_match_reference(void **state) {
    check_inverse(classes(), th_small() ? 5 : 70);
    if (th_small()) return;
    check_inverse(2, 512);
    check_inverse(1, 1024);
}

/* Non-SPD input: the pivot is flagged, the jitter retry rescues a matrix that is only just
 * indefinite, and a clearly indefinite (or NaN) matrix gives FEWCL_ERR_NUMERIC naming it. */
static void test_non_spd_detection_and_fallback(void **state) {
    const int d = th_small() ? 5 : 40, bad = d - 3; /* in the second panel when d = 40 */
    size_t dd = (size_t)d * d;
    float *a = random_spd(3, d, 300);
    /* Matrix 1: diag(1, …, −5e-5, …, 1), indefinite, SPD after +1e-4. */
    memset(a + dd, 0, dd * sizeof *a);
    for (int i = 0; i < d; i++)
        a[dd + i * d + i] = i == bad ? -5e-5f : 1.0f;
    int s[3] = {3, d, d};
    fcl_tensor A, L, INV, ST;
    th_upload(&A, 3, s, a);
    th_upload(&L, 3, s, a);
    INV = alloc3(3, d, d);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &ST, FCL_MEM_ACTIVATION, 3));
    TH_OK(fcl_cholesky_batched(th_ctx(), &L, &ST));
    float *st = th_download(&ST);
    assert_true(st[0] == 0.0f && st[2] == 0.0f);
    assert_int_equal((int)st[1], bad + 1);
    free(st);
    int jit[3];
    TH_OK(fcl_spd_inverse(th_ctx(), &A, &INV, "test: matrix", jit));
    assert_int_equal(jit[0], 0);
    assert_int_equal(jit[1], 1);
    assert_int_equal(jit[2], 0);
    float *inv = th_download(&INV);
    /* The jittered matrix is diagonal: its inverse has 1/(a_ii + 1e-4) on the diagonal. */
    for (int i = 0; i < d; i++) {
        double want = 1.0 / ((i == bad ? -5e-5 : 1.0) + 1e-4);
        assert_true(fabs(inv[dd + i * d + i] - want) <= 1e-3 * fabs(want));
    }
    free(inv);
    /* Matrix 2 clearly indefinite: an error that names it. */
    a[2 * dd + 2 * d + 2] = -1.0f;
    fcl_tensor A2;
    th_upload(&A2, 3, s, a);
    assert_int_equal(fcl_spd_inverse(th_ctx(), &A2, &INV, "test: matrix", jit), FEWCL_ERR_NUMERIC);
    printf("  message: %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "test: matrix 2"));
    /* NaN is not a positive pivot either. */
    a[2 * dd + 2 * d + 2] = NAN;
    fcl_tensor A3;
    th_upload(&A3, 3, s, a);
    assert_int_equal(fcl_spd_inverse(th_ctx(), &A3, &INV, "test: matrix", jit), FEWCL_ERR_NUMERIC);
    free(a);
    th_free(&A3), th_free(&A2), th_free(&ST), th_free(&INV), th_free(&L), th_free(&A);
}

typedef struct {
    int n, k, d, q;
    float *e, *p, *h, *dl;
    double *ed, *pd, *hd, *dld;
} problem;

static problem make_problem(int n, int k, int d, int q, uint64_t seed) {
    problem pr = {.n = n, .k = k, .d = d, .q = q};
    size_t ne = (size_t)n * k * d, np = (size_t)n * d, nh = (size_t)q * d, nl = (size_t)q * n;
    pr.e = malloc(ne * sizeof *pr.e), pr.p = malloc(np * sizeof *pr.p);
    pr.h = malloc(nh * sizeof *pr.h), pr.dl = malloc(nl * sizeof *pr.dl);
    th_random(pr.e, ne, seed, -1, 1);
    th_random(pr.p, np, seed + 1, -0.5f, 0.5f);
    th_random(pr.h, nh, seed + 2, -1, 1);
    th_random(pr.dl, nl, seed + 3, -1, 1);
    pr.ed = th_to_double(pr.e, ne), pr.pd = th_to_double(pr.p, np);
    pr.hd = th_to_double(pr.h, nh), pr.dld = th_to_double(pr.dl, nl);
    return pr;
}

static void free_problem(problem *pr) {
    free(pr->e), free(pr->p), free(pr->h), free(pr->dl);
    free(pr->ed), free(pr->pd), free(pr->hd), free(pr->dld);
}

/* Device outputs of one path. */
typedef struct {
    fcl_tensor logits, de, dp, dh;
} outputs;

static outputs run(const problem *pr, fcl_maha_path path, int backward) {
    int se[3] = {pr->n, pr->k, pr->d}, sp[2] = {pr->n, pr->d}, sh[2] = {pr->q, pr->d};
    int sl[2] = {pr->q, pr->n};
    fcl_tensor E, P, H, DL, X, Y;
    th_upload(&E, 3, se, pr->e);
    th_upload(&P, 2, sp, pr->p);
    th_upload(&H, 2, sh, pr->h);
    th_upload(&DL, 2, sl, pr->dl);
    outputs o;
    o.logits = alloc2(pr->q, pr->n);
    X = alloc3(pr->n, pr->k, pr->d);
    Y = alloc3(pr->n, pr->q, pr->d);
    TH_OK(fcl_mahalanobis_forward(th_ctx(), path, &E, &P, &H, &o.logits, &X, &Y));
    if (backward) {
        o.de = alloc3(pr->n, pr->k, pr->d), o.dp = alloc2(pr->n, pr->d);
        o.dh = alloc2(pr->q, pr->d);
        TH_OK(fcl_mahalanobis_backward(th_ctx(), &X, &Y, &DL, &o.de, &o.dp, &o.dh));
    }
    th_free(&Y), th_free(&X), th_free(&DL), th_free(&H), th_free(&P), th_free(&E);
    return o;
}

static void free_outputs(outputs *o, int backward) {
    if (backward) th_free(&o->dh), th_free(&o->dp), th_free(&o->de);
    th_free(&o->logits);
}

static void test_covariance_matches_reference(void **state) {
    problem pr = make_problem(classes(), 5, th_small() ? 6 : 45, 1, 400);
    int se[3] = {pr.n, pr.k, pr.d};
    fcl_tensor E, X = alloc3(pr.n, pr.k, pr.d), S = alloc3(pr.n, pr.d, pr.d);
    th_upload(&E, 3, se, pr.e);
    TH_OK(fcl_mahalanobis_covariance(th_ctx(), &E, &X, &S));
    size_t ns = (size_t)pr.n * pr.d * pr.d;
    double *want = malloc(ns * sizeof *want);
    ref_mahalanobis_covariance(pr.ed, pr.n, pr.k, pr.d, want);
    float *got = th_download(&S);
    printf("  covariance normalised error %.2e (tolerance 1e-06)\n",
           th_assert_normerr("sigma", got, want, ns, TH_NORMERR));
    free(got), free(want);
    th_free(&S), th_free(&X), th_free(&E);
    free_problem(&pr);
}

static void check_against_reference(fcl_maha_path path) {
    const char *name = path == FCL_MAHA_PATH_DENSE ? "dense" : "low-rank";
    int d = th_small() ? 8 : 70, q = th_small() ? 4 : 12;
    int n = classes();
    problem pr = make_problem(n, 5, d, q, 500);
    outputs o = run(&pr, path, 1);
    double *logits = malloc((size_t)q * n * sizeof *logits);
    double *de = malloc((size_t)n * 5 * d * sizeof *de), *dp = malloc((size_t)n * d * sizeof *dp);
    double *dh = malloc((size_t)q * d * sizeof *dh);
    ref_mahalanobis_forward(pr.ed, pr.pd, pr.hd, n, 5, d, q, logits);
    ref_mahalanobis_backward(pr.ed, pr.pd, pr.hd, n, 5, d, q, pr.dld, de, dp, dh);
    char what[64];
    snprintf(what, sizeof what, "%s logits vs reference", name);
    expect_rel(what, &o.logits, logits, REL_TOL);
    snprintf(what, sizeof what, "%s dsupports vs reference", name);
    expect_rel(what, &o.de, de, REL_TOL);
    snprintf(what, sizeof what, "%s dprotos vs reference", name);
    expect_rel(what, &o.dp, dp, REL_TOL);
    snprintf(what, sizeof what, "%s dqueries vs reference", name);
    expect_rel(what, &o.dh, dh, REL_TOL);
    free(logits), free(de), free(dp), free(dh);
    free_outputs(&o, 1);
    free_problem(&pr);
}

static void test_dense_matches_reference(void **state) {
    check_against_reference(FCL_MAHA_PATH_DENSE);
}
static void test_lowrank_matches_reference(void **state) {
    check_against_reference(FCL_MAHA_PATH_LOWRANK);
}

/* docs/spec.md §3: the two paths agree to 1e-4 relative, forward and backward. */
static void test_dense_and_lowrank_agree(void **state) {
    int d = th_small() ? 12 : 96, q = th_small() ? 3 : 16;
    problem pr = make_problem(classes(), 5, d, q, 600);
    outputs a = run(&pr, FCL_MAHA_PATH_DENSE, 1), b = run(&pr, FCL_MAHA_PATH_LOWRANK, 1);
    const char *names[] = {"logits", "dsupports", "dprotos", "dqueries"};
    fcl_tensor *ta[] = {&a.logits, &a.de, &a.dp, &a.dh}, *tb[] = {&b.logits, &b.de, &b.dp, &b.dh};
    for (int i = 0; i < 4; i++) {
        float *fa = th_download(ta[i]);
        double *da = th_to_double(fa, ta[i]->numel);
        char what[64];
        snprintf(what, sizeof what, "low-rank vs dense %s", names[i]);
        expect_rel(what, tb[i], da, REL_TOL);
        free(fa), free(da);
    }
    free_outputs(&a, 1), free_outputs(&b, 1);
    free_problem(&pr);
}

/* The low-rank path at the unreduced ResNet feature size D′ = 25,088 (memory O(n·k·D′)),
 * against the double Woodbury reference. */
static void test_lowrank_large_dimension(void **state) {
    int d = th_small() ? 200 : 25088;
    problem pr = make_problem(5, 5, d, 10, 700);
    outputs o = run(&pr, FCL_MAHA_PATH_LOWRANK, 1);
    double *logits = malloc(50 * sizeof *logits);
    ref_mahalanobis_lowrank_forward(pr.ed, pr.pd, pr.hd, 5, 5, d, 10, logits);
    char what[64];
    snprintf(what, sizeof what, "low-rank logits D=%d", d);
    expect_rel(what, &o.logits, logits, REL_TOL);
    free(logits);
    free_outputs(&o, 1);
    free_problem(&pr);
}

typedef struct {
    problem *pr;
} fd_ud;

static void fd_forward(void *ud, double *y) {
    problem *pr = ((fd_ud *)ud)->pr;
    ref_mahalanobis_forward(pr->ed, pr->pd, pr->hd, pr->n, pr->k, pr->d, pr->q, y);
}

static void test_reference_gradients(void **state) {
    problem pr = make_problem(2, 3, 4, 3, 800);
    double de[24], dp[8], dh[12], l1[6], l2[6];
    ref_mahalanobis_backward(pr.ed, pr.pd, pr.hd, 2, 3, 4, 3, pr.dld, de, dp, dh);
    fd_ud u = {&pr};
    /* Central differences, step 1e-6: truncation and rounding both ≲ 1e-9 relative here. */
    double err_e = th_fd_error(fd_forward, &u, pr.ed, 24, de, pr.dld, 6);
    double err_p = th_fd_error(fd_forward, &u, pr.pd, 8, dp, pr.dld, 6);
    double err_h = th_fd_error(fd_forward, &u, pr.hd, 12, dh, pr.dld, 6);
    printf("  reference vs finite differences: supports %.1e, prototypes %.1e, queries %.1e\n",
           err_e, err_p, err_h);
    assert_true(err_e < 1e-6 && err_p < 1e-6 && err_h < 1e-6);
    /* The two references (Gauss-Jordan inverse and Woodbury) agree in double. */
    ref_mahalanobis_forward(pr.ed, pr.pd, pr.hd, 2, 3, 4, 3, l1);
    ref_mahalanobis_lowrank_forward(pr.ed, pr.pd, pr.hd, 2, 3, 4, 3, l2);
    for (int i = 0; i < 6; i++)
        assert_true(fabs(l1[i] - l2[i]) <= 1e-10 * fabs(l1[i]));
    free_problem(&pr);
}

/* PyTorch: V-D's MahalanobisClassifier (tools/reference/fam_mahalanobis.py), both paths. */
static void test_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_mahalanobis");
    fcl_tensor E, P, H, DL;
    th_fixture_upload(fx, "supports", &E);
    th_fixture_upload(fx, "prototypes", &P);
    th_fixture_upload(fx, "queries", &H);
    th_fixture_upload(fx, "dlogits", &DL);
    int n = E.shape[0], k = E.shape[1], d = E.shape[2], q = H.shape[0];
    for (int path = 0; path < 2; path++) {
        fcl_tensor L = alloc2(q, n), X = alloc3(n, k, d), Y = alloc3(n, q, d);
        fcl_tensor DE = alloc3(n, k, d), DP = alloc2(n, d), DH = alloc2(q, d);
        TH_OK(fcl_mahalanobis_forward(th_ctx(), (fcl_maha_path)path, &E, &P, &H, &L, &X, &Y));
        TH_OK(fcl_mahalanobis_backward(th_ctx(), &X, &Y, &DL, &DE, &DP, &DH));
        const char *keys[] = {"logits", "dsupports", "dprototypes", "dqueries"};
        fcl_tensor *outs[] = {&L, &DE, &DP, &DH};
        for (int i = 0; i < 4; i++) {
            size_t cnt;
            const float *ref = th_fixture_data(fx, keys[i], &cnt);
            assert_int_equal(cnt, outs[i]->numel);
            double *want = th_to_double(ref, cnt);
            char what[64];
            snprintf(what, sizeof what, "pytorch %s %s", path ? "low-rank" : "dense", keys[i]);
            expect_rel(what, outs[i], want, REL_TOL);
            free(want);
        }
        th_free(&DH), th_free(&DP), th_free(&DE), th_free(&Y), th_free(&X), th_free(&L);
    }
    th_free(&DL), th_free(&H), th_free(&P), th_free(&E);
    th_fixture_free(fx);
}

static void test_shape_errors(void **state) {
    fcl_tensor E = alloc3(3, 4, 8), P = alloc2(3, 7), H = alloc2(5, 8), L = alloc2(5, 3);
    fcl_tensor X = alloc3(3, 4, 8), Y = alloc3(3, 5, 8);
    assert_int_equal(fcl_mahalanobis_forward(th_ctx(), FCL_MAHA_PATH_DENSE, &E, &P, &H, &L, &X, &Y),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "supports [3,4,8], prototypes [3,7]"));
    fcl_tensor A = alloc3(2, 3, 4), ST;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &ST, FCL_MEM_ACTIVATION, 2));
    assert_int_equal(fcl_cholesky_batched(th_ctx(), &A, &ST), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "a [2,3,4]"));
    th_free(&ST), th_free(&A), th_free(&Y), th_free(&X), th_free(&L), th_free(&H), th_free(&P),
        th_free(&E);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cholesky_and_inverse_match_reference),
        cmocka_unit_test(test_non_spd_detection_and_fallback),
        cmocka_unit_test(test_covariance_matches_reference),
        cmocka_unit_test(test_dense_matches_reference),
        cmocka_unit_test(test_lowrank_matches_reference),
        cmocka_unit_test(test_dense_and_lowrank_agree),
        cmocka_unit_test(test_lowrank_large_dimension),
        cmocka_unit_test(test_reference_gradients),
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
