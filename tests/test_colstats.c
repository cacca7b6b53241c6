/* VIC column statistics (lib/ops/colstats.h): device against the double reference, the
 * reference's gradients against finite differences, and PyTorch (torch.var/std, the V-D
 * standardisation and covariance) through a fixture. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/colstats.h"
#include "ref/ref_colstats.h"

#define EPS ((double)FCL_VIC_EPS)

/* N = n(k+1) rows as in VIC for 5-way 5-shot; an odd D. Tiny under oclgrind. */
static void dims(int *n, int *d) {
    *n = th_small() ? 6 : 30;
    *d = th_small() ? 5 : 37;
}

static fcl_tensor vec(int d) {
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &t, FCL_MEM_ACTIVATION, d));
    return t;
}

static fcl_tensor mat(int r, int c) {
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc2(th_ctx(), &t, FCL_MEM_ACTIVATION, r, c));
    return t;
}

/* Tolerances. Each statistic is a sum of N <= 30 terms of size <= 1 followed by at most a
 * division and a square root: float32 error <= ~N·u·max|term| ≈ 2e-6, so docs/spec.md §10's
 * elementwise bound (1e-5 abs + 1e-5 rel) holds with margin; sums of products (covariance,
 * gradients) also meet the normalised error 1e-6 of GEMM-like ops. */
static void expect_cond(const char *what, const fcl_tensor *t, const double *want,
                        const double *cond, int d) {
    float *got = th_download(t);
    double *bound = malloc(t->numel * sizeof *bound);
    for (size_t i = 0; i < t->numel; i++)
        bound[i] = TH_EW_ATOL + TH_EW_RTOL * fabs(want[i]) + (cond ? cond[i % (size_t)d] : 0);
    th_assert_bound(what, got, want, bound, t->numel);
    free(bound);
    double ne = th_assert_normerr(what, got, want, t->numel, TH_NORMERR);
    printf("  %-22s normalised error %.2e\n", what, ne);
    free(got);
}

static void expect(const char *what, const fcl_tensor *t, const double *want) {
    expect_cond(what, t, want, NULL, 1);
}

static void test_forward_and_backward_match_reference(void **state) {
    int n, d;
    dims(&n, &d);
    int ne = n * d;
    float *e = malloc(ne * sizeof *e), *dz = malloc(ne * sizeof *dz);
    float dmean[64], dvar[64], dstd[64];
    th_random(e, ne, 100, -1, 1);
    for (int r = 0; r < n; r++) /* a shifted column: the two-pass variance must not cancel */
        e[r * d + 1] += 50.0f;
    th_random(dz, ne, 101, -1, 1);
    th_random(dmean, d, 102, -1, 1);
    th_random(dvar, d, 103, -1, 1);
    th_random(dstd, d, 104, -1, 1);
    int s[2] = {n, d};
    fcl_tensor E, DZ, DM, DV, DS;
    th_upload(&E, 2, s, e);
    th_upload(&DZ, 2, s, dz);
    th_upload(&DM, 1, &d, dmean);
    th_upload(&DV, 1, &d, dvar);
    th_upload(&DS, 1, &d, dstd);
    fcl_tensor M = vec(d), V = vec(d), S = vec(d), Z = mat(n, d), DE = mat(n, d);
    TH_OK(fcl_colstats_forward(th_ctx(), &E, &M, &V, &S, &Z));

    double *ed = th_to_double(e, ne), *dzd = th_to_double(dz, ne);
    double *dmd = th_to_double(dmean, d), *dvd = th_to_double(dvar, d),
           *dsd = th_to_double(dstd, d);
    double *m = malloc(d * sizeof *m), *v = malloc(d * sizeof *v), *sd = malloc(d * sizeof *sd);
    double *z = malloc(ne * sizeof *z), *de = malloc(ne * sizeof *de);
    ref_colstats_forward(ed, n, d, EPS, m, v, sd, z);
    expect("mean", &M, m);
    expect("var", &V, v);
    expect("std", &S, sd);
    /* z and the gradients depend on x = e − mean: the float32 mean carries an error up to
     * γ_N·|mean| (Higham §3.1), which x inherits, and z = x/(std+eps) scales it by 1/(std+eps).
     * So a column far from zero (column 1, mean ~50) gets (N+2)·u·|mean|/(std+eps) more. The
     * same term, times the largest upstream gradient (<= 1) over (std+eps)², covers de. */
    double *cond = malloc(d * sizeof *cond), *cond2 = malloc(d * sizeof *cond2);
    for (int j = 0; j < d; j++) {
        cond[j] = (n + 2) * 0x1p-24 * fabs(m[j]) / (sd[j] + EPS);
        cond2[j] = 4 * cond[j] / (sd[j] + EPS);
    }
    expect_cond("z", &Z, z, cond, d);

    /* Every gradient together, then each one alone (the absent ones must read as zero). */
    const double *gm[5] = {dmd, dmd, NULL, NULL, NULL}, *gv[5] = {dvd, NULL, dvd, NULL, NULL};
    const double *gs[5] = {dsd, NULL, NULL, dsd, NULL}, *gz[5] = {dzd, NULL, NULL, NULL, dzd};
    for (int c = 0; c < 5; c++) {
        TH_OK(fcl_colstats_backward(th_ctx(), &E, &M, &S, &Z, gm[c] ? &DM : NULL,
                                    gv[c] ? &DV : NULL, gs[c] ? &DS : NULL, gz[c] ? &DZ : NULL,
                                    &DE));
        ref_colstats_backward(ed, n, d, EPS, gm[c], gv[c], gs[c], gz[c], de);
        char what[32];
        snprintf(what, sizeof what, "de (case %d)", c);
        /* The gradient through a large column mean (column 1, ~50) is still O(1): no
         * cancellation makes the elementwise bound too tight. */
        expect_cond(what, &DE, de, cond2, d);
    }
    free(cond), free(cond2);
    free(ed), free(dzd), free(dmd), free(dvd), free(dsd), free(m), free(v), free(sd), free(z),
        free(de);
    free(e), free(dz);
    th_free(&DE), th_free(&Z), th_free(&S), th_free(&V), th_free(&M);
    th_free(&DS), th_free(&DV), th_free(&DM), th_free(&DZ), th_free(&E);
}

static void test_covariance_matches_reference(void **state) {
    int n, d;
    dims(&n, &d);
    int nz = n * d, nc = d * d;
    float *z = malloc(nz * sizeof *z), *dc = malloc(nc * sizeof *dc);
    th_random(z, nz, 110, -2, 2);
    th_random(dc, nc, 111, -1, 1); /* not symmetric: the backward must use dc + dcᵀ */
    int s[2] = {n, d}, sc[2] = {d, d};
    fcl_tensor Z, DC, C = mat(d, d), DZ = mat(n, d);
    th_upload(&Z, 2, s, z);
    th_upload(&DC, 2, sc, dc);
    TH_OK(fcl_colcov_forward(th_ctx(), &Z, &C));
    TH_OK(fcl_colcov_backward(th_ctx(), &Z, &DC, &DZ));
    double *zd = th_to_double(z, nz), *dcd = th_to_double(dc, nc);
    double *c = malloc(nc * sizeof *c), *dzd = malloc(nz * sizeof *dzd);
    ref_colcov_forward(zd, n, d, EPS, c);
    ref_colcov_backward(zd, n, d, EPS, dcd, dzd);
    float *got = th_download(&C);
    /* docs/spec.md §10 for GEMMs: normalised error <= 1e-6. */
    printf("  covariance normalised error %.2e\n", th_assert_normerr("c", got, c, nc, TH_NORMERR));
    free(got);
    got = th_download(&DZ);
    printf("  dz normalised error %.2e\n", th_assert_normerr("dz", got, dzd, nz, TH_NORMERR));
    free(got);
    free(zd), free(dcd), free(c), free(dzd), free(z), free(dc);
    th_free(&DZ), th_free(&C), th_free(&DC), th_free(&Z);
}

typedef struct {
    double *e, *z;
    int n, d;
} stats_ud;

/* y = [mean, var, std, z] */
static void stats_fwd(void *ud, double *y) {
    stats_ud *u = ud;
    int d = u->d;
    ref_colstats_forward(u->e, u->n, d, EPS, y, y + d, y + 2 * d, y + 3 * d);
}

static void cov_fwd(void *ud, double *y) {
    stats_ud *u = ud;
    ref_colcov_forward(u->z, u->n, u->d, EPS, y);
}

static void test_reference_gradients(void **state) {
    enum { N = 6, D = 4, NY = 3 * D + N * D };
    float ef[N * D], dyf[NY];
    th_random(ef, N * D, 120, -1, 1);
    th_random(dyf, NY, 121, -1, 1);
    double e[N * D], dy[NY], de[N * D];
    for (int i = 0; i < N * D; i++)
        e[i] = ef[i];
    for (int i = 0; i < NY; i++)
        dy[i] = dyf[i];
    ref_colstats_backward(e, N, D, EPS, dy, dy + D, dy + 2 * D, dy + 3 * D, de);
    stats_ud u = {e, NULL, N, D};
    /* Central differences with step 1e-6: truncation O(h²·f''') ≈ 1e-12 and rounding
     * O(u_double/h) ≈ 1e-10 relative, so 1e-6 leaves margin and still catches any wrong term. */
    double err = th_fd_error(stats_fwd, &u, e, N * D, de, dy, NY);
    printf("  colstats reference vs finite differences %.2e\n", err);
    assert_true(err < 1e-6);
    double dc[D * D], dz[N * D];
    for (int i = 0; i < D * D; i++)
        dc[i] = dy[i];
    ref_colcov_backward(e, N, D, EPS, dc, dz);
    u.z = e;
    err = th_fd_error(cov_fwd, &u, e, N * D, dz, dc, D * D);
    printf("  colcov reference vs finite differences %.2e\n", err);
    assert_true(err < 1e-6);
}

/* PyTorch: var/std (unbiased), the V-D standardisation and covariance, and autograd's dE of
 * Σ dvar·var + Σ dz·z + Σ dc·C (tools/reference/fam_mahalanobis.py). The device composes it as
 * dz' = dz + colcov_backward(dc), then colstats_backward(dvar, dz'). */
static void test_colstats_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_colstats");
    fcl_tensor E, DV, DZ, DC;
    th_fixture_upload(fx, "e", &E);
    th_fixture_upload(fx, "dvar", &DV);
    th_fixture_upload(fx, "dz", &DZ);
    th_fixture_upload(fx, "dc", &DC);
    int n = E.shape[0], d = E.shape[1];
    fcl_tensor M = vec(d), V = vec(d), S = vec(d), Z = mat(n, d), C = mat(d, d), DZC = mat(n, d),
               DE = mat(n, d);
    TH_OK(fcl_colstats_forward(th_ctx(), &E, &M, &V, &S, &Z));
    TH_OK(fcl_colcov_forward(th_ctx(), &Z, &C));
    TH_OK(fcl_colcov_backward(th_ctx(), &Z, &DC, &DZC));
    TH_OK(fcl_axpy(th_ctx(), 1.0f, &DZ, &DZC));
    TH_OK(fcl_colstats_backward(th_ctx(), &E, &M, &S, &Z, NULL, &DV, NULL, &DZC, &DE));
    const char *keys[] = {"mean", "var", "std", "z", "c", "de"};
    fcl_tensor *outs[] = {&M, &V, &S, &Z, &C, &DE};
    for (int i = 0; i < 6; i++) {
        size_t cnt;
        const float *ref = th_fixture_data(fx, keys[i], &cnt);
        assert_int_equal(cnt, outs[i]->numel);
        double *want = th_to_double(ref, cnt);
        float *got = th_download(outs[i]);
        /* Both sides are float32 with different summation orders: docs/spec.md §10's normalised
         * error 1e-6 for reductions. */
        double err = th_assert_normerr(keys[i], got, want, cnt, TH_NORMERR);
        printf("  pytorch %-5s normalised error %.2e\n", keys[i], err);
        free(got), free(want);
    }
    th_free(&DE), th_free(&DZC), th_free(&C), th_free(&Z), th_free(&S), th_free(&V), th_free(&M);
    th_free(&DC), th_free(&DZ), th_free(&DV), th_free(&E);
    th_fixture_free(fx);
}

/* A constant column (std 0: a feature that ReLU zeroed in every row, as happens after the
 * enhanced head's projection) gets no gradient through its std, as PyTorch's std_backward masks
 * std == 0; before that fix the column's de was 0/0 = NaN. There x = 0 and z = 0, so
 * de_ij = (dz_ij − mean_i dz_ij)/(0 + 1e-4) exactly in real arithmetic. */
static void test_constant_column_has_finite_gradient(void **state) {
    (void)state;
    const int n = 6, d = 4, dead = 2;
    float e[6 * 4], dz[6 * 4], dv[4], ds[4];
    th_random(e, (size_t)n * d, 71, -1, 1);
    th_random(dz, (size_t)n * d, 72, -1, 1);
    th_random(dv, (size_t)d, 73, -1, 1);
    th_random(ds, (size_t)d, 74, -1, 1);
    for (int i = 0; i < n; i++)
        e[i * d + dead] = 0.0f;
    fcl_tensor E, DZ, DV, DS;
    th_upload(&E, 2, (int[]){n, d}, e);
    th_upload(&DZ, 2, (int[]){n, d}, dz);
    th_upload(&DV, 1, (int[]){d}, dv);
    th_upload(&DS, 1, (int[]){d}, ds);
    fcl_tensor M = vec(d), V = vec(d), S = vec(d), Z = mat(n, d), DE = mat(n, d);
    TH_OK(fcl_colstats_forward(th_ctx(), &E, &M, &V, &S, &Z));
    TH_OK(fcl_colstats_backward(th_ctx(), &E, &M, &S, &Z, NULL, &DV, &DS, &DZ, &DE));
    float *de = th_download(&DE);
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += dz[i * d + dead] / n;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++)
            assert_true(isfinite(de[i * d + j]));
        double want = (dz[i * d + dead] - mean) / 1e-4;
        /* float32 division by 1e-4 of O(1) values: 1e-5 relative is ~100 ulp of slack */
        assert_float_equal(de[i * d + dead], want, 1e-5 * fabs(want) + 1e-3);
    }
    free(de);
    th_free(&DE), th_free(&Z), th_free(&S), th_free(&V), th_free(&M);
    th_free(&DS), th_free(&DV), th_free(&DZ), th_free(&E);
}

static fcl_tensor scalar(float v) {
    fcl_tensor t;
    int one = 1;
    th_upload(&t, 1, &one, &v);
    return t;
}

/* L_C of a 4500 x 4500 covariance: 20 M terms, more than one work-group's items may loop over
 * in one launch (FCL_ITEM_LOOP_BUDGET; rusticl's llvmpipe stops loops beyond 65535), so the
 * sum runs as several launches. Positive terms: float32 error <= γ_{n/32 + 8} relative. */
static void test_vic_covariance_loss_in_launches(void **state) {
    if (th_small()) skip();
    int d = 4500, sc[2] = {d, d};
    size_t n = (size_t)d * d;
    float *c = malloc(n * sizeof *c);
    th_random(c, n, 133, -1, 1);
    fcl_tensor C, LC = vec(1);
    th_upload(&C, 2, sc, c);
    TH_OK(fcl_vic_covariance_loss_forward(th_ctx(), &C, &LC));
    double *cd = th_to_double(c, n), lc = ref_vic_covariance_loss(cd, d, EPS);
    float *got = th_download(&LC);
    th_assert_close("L_C (20 M terms)", got, &lc, 1, 0.0, th_gamma((int)(n / 32) + 8));
    printf("  L_C %.8f vs %.8f\n", got[0], lc);
    free(got), free(cd), free(c);
    th_free(&LC), th_free(&C);
}

/* The VIC losses against the reference. Each loss is a sum of D (or D²) non-negative terms:
 * float32 error <= γ_n·sum, i.e. relative ~n·u <= 1e-4 for n = D² = 1369, so the bound is
 * 1e-5 abs + γ_{D²} relative; the gradients are elementwise (1e-5 abs + 1e-5 rel). */
static void test_vic_losses_match_reference(void **state) {
    int n, d;
    dims(&n, &d);
    float *var = malloc(d * sizeof *var), *c = malloc(d * d * sizeof *c);
    th_random(var, d, 130, 0.05f, 2.0f); /* both sides of the hinge at var ≈ 0.98 */
    th_random(c, d * d, 131, -1, 1);
    int sc[2] = {d, d};
    fcl_tensor V, C, DL = scalar(-1.7f), LV = vec(1), LC = vec(1), DV = vec(d), DC = mat(d, d);
    th_upload(&V, 1, &d, var);
    th_upload(&C, 2, sc, c);
    TH_OK(fcl_vic_variance_loss_forward(th_ctx(), &V, &LV));
    TH_OK(fcl_vic_covariance_loss_forward(th_ctx(), &C, &LC));
    TH_OK(fcl_vic_variance_loss_backward(th_ctx(), &V, &DL, &DV));
    TH_OK(fcl_vic_covariance_loss_backward(th_ctx(), &C, &DL, &DC));
    double *vd = th_to_double(var, d), *cd = th_to_double(c, d * d);
    double lv = ref_vic_variance_loss(vd, d, EPS), lc = ref_vic_covariance_loss(cd, d, EPS);
    double *dv = malloc(d * sizeof *dv), *dc = malloc(d * d * sizeof *dc);
    ref_vic_variance_loss_backward(vd, d, EPS, -1.7f, dv);
    ref_vic_covariance_loss_backward(cd, d, EPS, -1.7f, dc);
    float *got = th_download(&LV);
    th_assert_close("L_V", got, &lv, 1, TH_EW_ATOL, th_gamma(d));
    printf("  L_V %.8f vs %.8f\n", got[0], lv);
    free(got);
    got = th_download(&LC);
    th_assert_close("L_C", got, &lc, 1, TH_EW_ATOL, th_gamma(d * d));
    printf("  L_C %.8f vs %.8f\n", got[0], lc);
    free(got);
    expect("dvar of L_V", &DV, dv);
    expect("dc of L_C", &DC, dc);
    int active = 0;
    for (int j = 0; j < d; j++)
        active += dv[j] != 0;
    assert_true(active > 0 && active < d); /* the test sees both sides of the hinge */
    free(vd), free(cd), free(dv), free(dc), free(var), free(c);
    th_free(&DC), th_free(&DV), th_free(&LC), th_free(&LV), th_free(&DL), th_free(&C), th_free(&V);
}

typedef struct {
    double *x;
    int d;
} loss_ud;

static void lv_fwd(void *ud, double *y) {
    loss_ud *u = ud;
    y[0] = ref_vic_variance_loss(u->x, u->d, EPS);
}

static void lc_fwd(void *ud, double *y) {
    loss_ud *u = ud;
    y[0] = ref_vic_covariance_loss(u->x, u->d, EPS);
}

static void test_vic_reference_gradients(void **state) {
    enum { D = 5 };
    /* var away from the hinge's kink at (1 − 1e-4)² − 1e-4 ≈ 0.9997 */
    double var[D] = {0.2, 0.5, 1.5, 0.8, 2.5}, c[D * D], dvar[D], dc[D * D], dl = 0.7;
    float cf[D * D];
    th_random(cf, D * D, 140, -1, 1);
    for (int i = 0; i < D * D; i++)
        c[i] = cf[i];
    ref_vic_variance_loss_backward(var, D, EPS, dl, dvar);
    ref_vic_covariance_loss_backward(c, D, EPS, dl, dc);
    loss_ud u = {var, D};
    double e1 = th_fd_error(lv_fwd, &u, var, D, dvar, &dl, 1);
    u.x = c;
    double e2 = th_fd_error(lc_fwd, &u, c, D * D, dc, &dl, 1);
    printf("  VIC loss references vs finite differences: L_V %.1e, L_C %.1e\n", e1, e2);
    assert_true(e1 < 1e-6 && e2 < 1e-6);
}

/* PyTorch end to end: L_V + L_C of V-D's VICRegularization on E, and autograd's dE, against
 * the device chain colstats → colcov → losses → their backwards → colcov/colstats backward. */
static void test_vic_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_vic");
    fcl_tensor E, DLV, DLC;
    th_fixture_upload(fx, "e", &E);
    th_fixture_upload(fx, "dlv", &DLV);
    th_fixture_upload(fx, "dlc", &DLC);
    int n = E.shape[0], d = E.shape[1];
    fcl_tensor M = vec(d), V = vec(d), S = vec(d), Z = mat(n, d), C = mat(d, d), LV = vec(1),
               LC = vec(1), DV = vec(d), DC = mat(d, d), DZ = mat(n, d), DE = mat(n, d);
    TH_OK(fcl_colstats_forward(th_ctx(), &E, &M, &V, &S, &Z));
    TH_OK(fcl_colcov_forward(th_ctx(), &Z, &C));
    TH_OK(fcl_vic_variance_loss_forward(th_ctx(), &V, &LV));
    TH_OK(fcl_vic_covariance_loss_forward(th_ctx(), &C, &LC));
    TH_OK(fcl_vic_variance_loss_backward(th_ctx(), &V, &DLV, &DV));
    TH_OK(fcl_vic_covariance_loss_backward(th_ctx(), &C, &DLC, &DC));
    TH_OK(fcl_colcov_backward(th_ctx(), &Z, &DC, &DZ));
    TH_OK(fcl_colstats_backward(th_ctx(), &E, &M, &S, &Z, NULL, &DV, NULL, &DZ, &DE));
    const char *keys[] = {"lv", "lc", "de"};
    fcl_tensor *outs[] = {&LV, &LC, &DE};
    for (int i = 0; i < 3; i++) {
        size_t cnt;
        const float *ref = th_fixture_data(fx, keys[i], &cnt);
        assert_int_equal(cnt, outs[i]->numel);
        double *want = th_to_double(ref, cnt);
        float *got = th_download(outs[i]);
        /* float32 on both sides, different summation orders: normalised error 1e-6. */
        double err = th_assert_normerr(keys[i], got, want, cnt, TH_NORMERR);
        printf("  pytorch VIC %-3s normalised error %.2e\n", keys[i], err);
        free(got), free(want);
    }
    th_free(&DE), th_free(&DZ), th_free(&DC), th_free(&DV), th_free(&LC), th_free(&LV);
    th_free(&C), th_free(&Z), th_free(&S), th_free(&V), th_free(&M);
    th_free(&DLC), th_free(&DLV), th_free(&E);
    th_fixture_free(fx);
}

static void test_shape_errors(void **state) {
    fcl_tensor E = mat(1, 4), M = vec(4), V = vec(4), S = vec(3), Z = mat(1, 4);
    assert_int_equal(fcl_colstats_forward(th_ctx(), &E, &M, &V, &S, &Z), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "N >= 2"));
    fcl_tensor E2 = mat(3, 4), Z2 = mat(3, 4);
    assert_int_equal(fcl_colstats_forward(th_ctx(), &E2, &M, &V, &S, &Z2), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "e [3,4]"));
    fcl_tensor C = mat(4, 3);
    assert_int_equal(fcl_colcov_forward(th_ctx(), &Z2, &C), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "c [4,3]"));
    fcl_tensor L = vec(1);
    assert_int_equal(fcl_vic_covariance_loss_forward(th_ctx(), &C, &L), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "input [4,3] must be [D,D]"));
    th_free(&L);
    th_free(&C), th_free(&Z2), th_free(&E2), th_free(&Z), th_free(&S), th_free(&V), th_free(&M),
        th_free(&E);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_backward_match_reference),
        cmocka_unit_test(test_covariance_matches_reference),
        cmocka_unit_test(test_reference_gradients),
        cmocka_unit_test(test_colstats_matches_pytorch),
        cmocka_unit_test(test_constant_column_has_finite_gradient),
        cmocka_unit_test(test_vic_losses_match_reference),
        cmocka_unit_test(test_vic_covariance_loss_in_launches),
        cmocka_unit_test(test_vic_reference_gradients),
        cmocka_unit_test(test_vic_matches_pytorch),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
