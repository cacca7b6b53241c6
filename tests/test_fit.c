/* `fewcl plan --fit` (lib/plan/fit.c): the seed's failing configuration (ResNet-34 at 224, raw
 * 25,088-d dense covariances, a 16 GiB device with 4 GiB buffers) is fixed by the exact
 * low-rank path; a configuration that fits is left alone; under a tighter budget the choice
 * fits and its plan is what planning the chosen configuration alone gives; an impossible
 * budget finds nothing. Plans only: no kernel runs. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "plan/episode_plan.h"
#include "plan/fit.h"

static fcl_limits nvidia16(void) {
    fcl_limits l = th_ctx()->limits;
    l.global_mem = (size_t)16 << 30;
    l.max_alloc = (size_t)4 << 30;
    return l;
}

static void test_seed_configuration_needs_lowrank(void **state) {
    (void)state;
    fcl_model_config c = fcl_config_default();
    c.backbone = FCL_RESNET34, c.image_size = 224, c.n_query = 8;
    c.reduced_dim = 0, c.mahalanobis = FCL_MAHA_DENSE;
    fcl_limits dev = nvidia16();
    fcl_fit_result r;
    TH_OK(fcl_plan_fit(th_ctx(), &c, 1, &dev, 0, &r));
    assert_true(r.fits);
    assert_string_equal(r.changes, "--mahalanobis lowrank");
    assert_non_null(strstr(r.first_failure, "largest buffer"));
    assert_true(r.stats.peak <= dev.global_mem);
    assert_true(r.stats.category_peak[FCL_MEM_COVARIANCE] < 4096); /* no D′×D′ matrix */
}

static void test_fitting_configuration_is_kept(void **state) {
    (void)state;
    fcl_model_config c = fcl_config_default();
    fcl_fit_result r;
    TH_OK(fcl_plan_fit(th_ctx(), &c, 1, &th_ctx()->limits, 0, &r));
    assert_true(r.fits);
    assert_int_equal(r.tried, 1);
    assert_string_equal(r.changes, "");
    assert_string_equal(r.first_failure, "");
}

/* A budget between the dense and the low-rank plan of a configuration whose peak is the
 * Mahalanobis head: 10-way 1-shot 1-query on conv4 at 84 without projection (D′ = 1600: three
 * 10×1600×1600 matrices, 307 MB, against 20 images of activations and the convolution
 * workspace, up to 64 MiB + the GEMM output on GPUs; 5 ways left the gap at < 100 MB on an
 * H200). The budget bounds the
 * footprint, the device buffers a run following the plan's layout reserves (issue 18). */
static void test_tighter_budget(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = fcl_config_default(), low;
    c.n_way = 10, c.k_shot = 1, c.n_query = 1;
    c.reduced_dim = 0, c.mahalanobis = FCL_MAHA_DENSE;
    low = c;
    low.mahalanobis = FCL_MAHA_LOWRANK;
    fcl_arena_stats dense, lowrank;
    TH_OK(fcl_episode_plan(ctx, &c, 1, 0, &dense));
    TH_OK(fcl_episode_plan(ctx, &low, 1, 0, &lowrank));
    size_t budget = lowrank.peak_reserved;
    assert_true(dense.peak_reserved > budget + ((size_t)100 << 20)); /* the premise */
    fcl_fit_result r;
    TH_OK(fcl_plan_fit(ctx, &c, 1, &ctx->limits, budget, &r));
    assert_true(r.fits);
    assert_string_equal(r.changes, "--mahalanobis lowrank");
    assert_true(r.stats.peak_reserved <= budget);
    fcl_arena_stats again; /* the reported plan is the chosen configuration's own plan */
    TH_OK(fcl_episode_plan(ctx, &r.cfg, 1, 0, &again));
    assert_int_equal(again.peak, r.stats.peak);
    TH_OK(fcl_plan_fit(ctx, &c, 1, &ctx->limits, (size_t)1 << 20, &r));
    assert_false(r.fits);
    assert_true(r.tried > 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_configuration_needs_lowrank),
        cmocka_unit_test(test_fitting_configuration_is_kept),
        cmocka_unit_test(test_tighter_budget),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
