/* AdamW: device against the double reference over several steps, and against
 * torch.optim.AdamW. Elementwise tolerance (docs/spec.md §10): 1e-5 abs + 1e-5 rel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/adamw.h"
#include "ref/ref_adamw.h"

static void test_adamw_matches_reference(void **state) {
    int n = th_small() ? 33 : 4099;
    const int steps = 5;
    fcl_adamw_config cfg = fcl_adamw_defaults();
    cfg.lr = 3e-3, cfg.weight_decay = 0.01;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g), *zero = calloc(n, sizeof *zero);
    th_random(p, n, 70, -1, 1);
    fcl_tensor P, G, M, V;
    th_upload(&P, 1, &n, p);
    th_upload(&M, 1, &n, zero);
    th_upload(&V, 1, &n, zero);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &G, FCL_MEM_GRAD, n));
    double *pd = th_to_double(p, n), *md = calloc(n, sizeof *md), *vd = calloc(n, sizeof *vd);
    for (long t = 1; t <= steps; t++) {
        th_random(g, n, 80 + (uint64_t)t, -1, 1);
        if (t == 2) g[0] = 0; /* a zero gradient: only decay and momentum move it */
        TH_OK(fcl_tensor_upload(th_ctx(), &G, g));
        TH_OK(fcl_adamw_step(th_ctx(), &cfg, t, &P, &G, &M, &V));
        double *gd = th_to_double(g, n);
        ref_adamw_step(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, t, pd, gd, md, vd,
                       n);
        free(gd);
    }
    float *got = th_download(&P);
    th_assert_close("adamw param", got, pd, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&V);
    th_assert_close("adamw second moment", got, vd, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    free(p), free(g), free(zero), free(pd), free(md), free(vd);
    th_free(&G), th_free(&V), th_free(&M), th_free(&P);
}

static void test_adamw_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_adamw");
    fcl_tensor P, G, M, V;
    th_fixture_upload(fx, "p0", &P);
    TH_OK(fcl_tensor_alloc(th_ctx(), &G, FCL_MEM_GRAD, P.ndim, P.shape));
    TH_OK(fcl_tensor_alloc(th_ctx(), &M, FCL_MEM_OPTIM, P.ndim, P.shape));
    TH_OK(fcl_tensor_alloc(th_ctx(), &V, FCL_MEM_OPTIM, P.ndim, P.shape));
    TH_OK(fcl_fill(th_ctx(), &M, 0));
    TH_OK(fcl_fill(th_ctx(), &V, 0));
    fcl_adamw_config cfg = {
        .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    for (long t = 1; t <= 3; t++) {
        char key[8];
        size_t n;
        snprintf(key, sizeof key, "g%ld", t);
        TH_OK(fcl_tensor_upload(th_ctx(), &G, th_fixture_data(fx, key, &n)));
        TH_OK(fcl_adamw_step(th_ctx(), &cfg, t, &P, &G, &M, &V));
        snprintf(key, sizeof key, "p%ld", t);
        const float *ref = th_fixture_data(fx, key, &n);
        double *want = th_to_double(ref, n);
        float *got = th_download(&P);
        th_assert_close(key, got, want, n, TH_EW_ATOL, TH_EW_RTOL);
        free(got), free(want);
    }
    th_free(&V), th_free(&M), th_free(&G), th_free(&P);
    th_fixture_free(fx);
}

static void test_adamw_rejects_bad_input(void **state) {
    fcl_tensor a, b;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &a, FCL_MEM_PARAM, 4));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &b, FCL_MEM_GRAD, 5));
    fcl_adamw_config cfg = fcl_adamw_defaults();
    assert_int_equal(fcl_adamw_step(th_ctx(), &cfg, 1, &a, &b, &a, &a), FEWCL_ERR_ARGUMENT);
    assert_int_equal(fcl_adamw_step(th_ctx(), &cfg, 0, &a, &a, &a, &a), FEWCL_ERR_ARGUMENT);
    th_free(&b), th_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_reference),
        cmocka_unit_test(test_adamw_matches_pytorch),
        cmocka_unit_test(test_adamw_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
