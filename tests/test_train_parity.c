/* Training parity with PyTorch (issue 5): the golden trajectory of tools/reference/train.py —
 * the episode_conv4 model (conv4 at 32 px, enhanced head, projection 256→64, VIC, dense
 * Mahalanobis) from its pattern weights, 20 AdamW steps (lr 1e-3) on the fixed episodes
 * x_e = pattern(100 + e) — replayed with fcl_train_step, the trainer's own step.
 *
 * Tolerances. Adam's first steps move every parameter by about lr·sign(g), whatever |g|; where
 * a gradient element is at rounding level (the conv biases in front of training-mode
 * BatchNorm, whose true gradient is 0, and here ~20% of the last FFN weights) its sign is
 * noise, so any two float32 implementations leave the float64 trajectory at a rate that
 * doubles every few steps. Measured on this trajectory: PyTorch itself with a float32 head
 * differs from the float64-head reference by 4e-5 at step 2, 3e-3 at step 9 and 16% at step 20;
 * fewcl by 7e-5, 2e-3 and 1e-2. So: the 1e-3 relative holds for steps 1–8 on the
 * total loss and cross-entropy, and on the variance/covariance parts measured against the
 * total (they are small terms); steps 9–20 must stay within 5e-2, which still catches a wrong
 * optimiser (eps inside the root fails at step 4) or a broken gradient. After 20 steps the
 * parameters are reported (max difference over max value), not asserted, for the same reason. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train/step.h"

#define STEPS 20

static void test_twenty_steps_match_pytorch(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = fcl_config_default();
    c.image_size = 32, c.n_way = 3, c.k_shot = 2, c.n_query = 3;
    c.reduced_dim = 64, c.heads = 2, c.dim_head = 16, c.mlp_dim = 32;
    c.mahalanobis = FCL_MAHA_DENSE;
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 1, &m));
    struct fcl_safetensors *w = th_fixture("episode_conv4_weights");
    struct fcl_safetensors *want = th_fixture("train_conv4_losses");
    TH_OK(fcl_params_load(ctx, &m->params, w, "", FCL_LOAD_COMPLETE));
    int shape[4] = {c.n_way * (c.k_shot + c.n_query), 3, 32, 32};
    size_t numel = (size_t)shape[0] * 3 * 32 * 32;
    float *host = malloc(numel * sizeof *host);
    fcl_tensor x = {0};
    th_upload(&x, 4, shape, host);
    const char *keys[4] = {"loss", "loss_ce", "loss_var", "loss_cov"};
    const float *expect[4];
    for (int i = 0; i < 4; i++) {
        size_t n;
        expect[i] = th_fixture_data(want, keys[i], &n);
        assert_int_equal(n, STEPS);
    }
    fcl_adamw_config adam = fcl_adamw_defaults();
    double worst = 0;
    for (int e = 0; e < STEPS; e++) {
        for (size_t i = 0; i < numel; i++)
            host[i] = fcl_pattern_value(100 + (uint32_t)e, i, 1.0f);
        TH_OK(fcl_tensor_upload(ctx, &x, host));
        fcl_step_result r;
        TH_OK(fcl_train_step(ctx, m, &x, &adam, &r));
        double got[4] = {r.loss, r.loss_ce, r.loss_var, r.loss_cov};
        double tol = e < 8 ? 1e-3 : 5e-2, step_worst = 0;
        for (int i = 0; i < 4; i++) {
            double scale = i < 2 ? fabs(expect[i][e]) : fabs(expect[0][e]);
            double rel = fabs(got[i] - expect[i][e]) / scale;
            step_worst = fmax(step_worst, rel);
            if (rel > tol)
                fail_msg("step %d %s: fewcl %.7g, PyTorch %.7g (relative %.2e > %.0e)", e + 1,
                         keys[i], got[i], expect[i][e], rel, tol);
        }
        if (e < 8) worst = fmax(worst, step_worst);
        printf("  step %2d: loss %.6f (PyTorch %.6f), worst part %.1e\n", e + 1, r.loss,
               expect[0][e], step_worst);
    }
    printf("  steps 1-8: worst relative error %.2e (tolerance 1e-3)\n", worst);
    int checked = 0;
    for (int i = 0; i < want->n; i++) {
        const char *key = want->tensors[i].name;
        if (strncmp(key, "final.", 6) != 0) continue;
        fcl_param *p = fcl_params_find(&m->params, key + 6);
        assert_non_null(p);
        size_t n;
        const float *ref = th_fixture_data(want, key, &n);
        assert_int_equal(n, p->value.numel);
        float *got = th_download(&p->value);
        double diff = 0, scale = 0;
        for (size_t j = 0; j < n; j++) {
            diff = fmax(diff, fabs((double)got[j] - ref[j]));
            scale = fmax(scale, fabs(ref[j]));
        }
        printf("  %-40s after 20 steps: %.2e of max\n", key + 6, diff / scale);
        free(got);
        checked++;
    }
    assert_int_equal(checked, 6);
    th_free(&x);
    free(host);
    th_fixture_free(w);
    th_fixture_free(want);
    fcl_model_destroy(ctx, m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_twenty_steps_match_pytorch)};
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
