/* The original FS-CT head (lib/nn/fsct.c) against PyTorch (tools/reference/fam_fsct.py, which
 * builds the head from docs/maths.md §5 with torch.nn.utils.weight_norm for the cosine output).
 * Both sides fill parameter i (registration = state_dict order) with pattern(700 + i) by the
 * same rule (fill_rule) and the features with pattern(99); training forward, mean cross-entropy,
 * backward from the loss.
 *
 * Configurations: small (n=3, k=2, q=3, D=40, 2 heads x 8, mlp 24), cosine and softmax, depth 1
 * and 2, and cosine with linear.1 scaled by 1e-5 ("cT": Y ~ 1e-5, so that the +1e-5 outside the
 * root of CosineDistLinear's class-axis norm moves the logits by ~100%: a test of that quirk):
 * logits, loss, every parameter gradient and dfeatures in full. Default shapes (n=5, k=5,
 * q=8, D=1600, 8 x 64, mlp 512, depth 1), both variants: logits, loss, and per-gradient
 * summaries Σg² and Σg·r (r = pattern(900 + i), dfeatures 899). Evaluation mode: logits only.
 *
 * Tolerances (docs/spec.md §10): logits and loss 1e-4 relative, measured as max|got − want| /
 * max|want| over the tensor (the logits of an episode share one scale); gradients 1e-3 relative,
 * the same measure per parameter. Summaries: Σg² within 2e-3 relative (a 1e-3 error on g moves Σg²
 * by at most about twice that); Σg·r within 1e-3 of √(Σg²·Σr²), its Cauchy–Schwarz scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "nn/model.h"

#define LOGIT_TOL 1e-4
#define GRAD_TOL 1e-3
#define SUM2_TOL 2e-3

typedef struct cfg_def {
    const char *name;
    int n, k, q, D, heads, dim_head, mlp;
    fcl_variant variant;
    int depth, full;
    int tiny; /* linear.1 scaled by TINY: Y ~ 1e-5, where CosineDistLinear's +1e-5 matters */
} cfg_def;

#define TINY 1e-5

static const cfg_def SMALL[] = {
    {"c1", 3, 2, 3, 40, 2, 8, 24, FCL_VARIANT_COSINE, 1, 1, 0},
    {"c2", 3, 2, 3, 40, 2, 8, 24, FCL_VARIANT_COSINE, 2, 1, 0},
    {"s1", 3, 2, 3, 40, 2, 8, 24, FCL_VARIANT_SOFTMAX, 1, 1, 0},
    {"s2", 3, 2, 3, 40, 2, 8, 24, FCL_VARIANT_SOFTMAX, 2, 1, 0},
    {"cT", 3, 2, 3, 40, 2, 8, 24, FCL_VARIANT_COSINE, 1, 1, 1},
};
static const cfg_def LARGE[] = {
    {"cL", 5, 5, 8, 1600, 8, 64, 512, FCL_VARIANT_COSINE, 1, 0, 0},
    {"sL", 5, 5, 8, 1600, 8, 64, 512, FCL_VARIANT_SOFTMAX, 1, 0, 0},
};

static const char *NAMES_COMMON[] = {"proto_weight",
                                     "ATTN.input_linear.0.weight",
                                     "ATTN.input_linear.0.bias",
                                     "ATTN.input_linear.1.weight",
                                     "ATTN.output_linear.weight",
                                     "ATTN.output_linear.bias",
                                     "FFN.0.weight",
                                     "FFN.0.bias",
                                     "FFN.1.weight",
                                     "FFN.1.bias",
                                     "FFN.3.weight",
                                     "FFN.3.bias",
                                     "linear.0.weight",
                                     "linear.0.bias",
                                     "linear.1.weight",
                                     "linear.1.bias"};
#define N_COMMON 16
#define N_PARAMS 18

static fcl_model_config make_config(const cfg_def *c) {
    fcl_model_config cfg = fcl_config_default();
    fcl_config_set_method(&cfg, FCL_METHOD_FSCT);
    cfg.variant = c->variant;
    cfg.n_way = c->n, cfg.k_shot = c->k, cfg.n_query = c->q;
    cfg.depth = c->depth, cfg.heads = c->heads, cfg.dim_head = c->dim_head, cfg.mlp_dim = c->mlp;
    return cfg;
}

/* fill_rule of fam_fsct.py: (scale, offset) of a parameter's test pattern. */
static void fill_rule(const char *name, const fcl_tensor *t, int tiny, float *scale,
                      float *offset) {
    size_t len = strlen(name);
    *offset = 0.0f;
    if (tiny && strncmp(name, "linear.1.", 9) == 0) {
        *scale = (float)(t->ndim == 2 ? TINY / sqrt((double)t->shape[1]) : TINY);
    } else if (strcmp(name, "proto_weight") == 0) {
        *scale = 1.0f;
    } else if (len > 9 && strcmp(name + len - 9, ".0.weight") == 0) { /* LayerNorm gamma */
        *scale = 0.2f, *offset = 1.0f;
    } else if (strcmp(name, "linear.2.L.weight_g") == 0) {
        *scale = 0.5f, *offset = 1.0f;
    } else if (t->ndim == 2) {
        *scale = (float)(1.0 / sqrt((double)t->shape[1]));
    } else {
        *scale = 0.1f;
    }
}

static float *pattern_host(uint32_t seed, size_t n, float scale, float offset) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = fcl_pattern_value(seed, i, scale) + offset;
    return x;
}

static void fill_params(fcl_params *P, int tiny) {
    for (int i = 0; i < P->n; i++) {
        fcl_param *p = &P->items[i];
        float scale, offset;
        fill_rule(p->name, &p->value, tiny, &scale, &offset);
        float *x = pattern_host(700u + (uint32_t)i, p->value.numel, scale, offset);
        TH_OK(fcl_tensor_upload(th_ctx(), &p->value, x));
        free(x);
    }
}

static double rel_error(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)got[i] - want[i]));
        den = fmax(den, fabs((double)want[i]));
    }
    return num / (den > 0 ? den : 1);
}

/* Compares a device tensor with fixture key `cfg.what` (factor scales the fixture values). */
static double expect_tensor(const struct fcl_safetensors *fx, const char *cfg, const char *what,
                            const fcl_tensor *t, double factor, double tol) {
    char key[200];
    snprintf(key, sizeof key, "%s.%s", cfg, what);
    size_t numel;
    const float *want = th_fixture_data(fx, key, &numel);
    assert_int_equal(numel, t->numel);
    float *scaled = malloc(numel * sizeof *scaled);
    for (size_t i = 0; i < numel; i++)
        scaled[i] = (float)(factor * want[i]);
    float *got = th_download(t);
    double err = rel_error(got, scaled, numel);
    printf("  %-3s %-34s max relative error %.2e (tolerance %.0e)\n", cfg, what, err, tol);
    free(got);
    free(scaled);
    assert_true(err <= tol);
    return err;
}

/* Σg² and Σg·r of a device gradient against the fixture's summaries. */
static void expect_summary(const struct fcl_safetensors *fx, const char *cfg, const char *name,
                           const fcl_tensor *g, uint32_t seed) {
    char key[200];
    size_t one;
    snprintf(key, sizeof key, "%s.sum2.%s", cfg, name);
    double want2 = th_fixture_data(fx, key, &one)[0];
    snprintf(key, sizeof key, "%s.dot.%s", cfg, name);
    double wantr = th_fixture_data(fx, key, &one)[0];
    float *got = th_download(g);
    double s2 = 0, sr = 0, rr = 0;
    for (size_t i = 0; i < g->numel; i++) {
        double r = fcl_pattern_value(seed, i, 1.0f);
        s2 += (double)got[i] * got[i];
        sr += (double)got[i] * r;
        rr += r * r;
    }
    free(got);
    double e2 = fabs(s2 - want2) / want2, er = fabs(sr - wantr) / sqrt(want2 * rr);
    printf("  %-3s %-34s Σg² error %.2e (tolerance %.0e), Σg·r error %.2e (tolerance %.0e)\n", cfg,
           name, e2, SUM2_TOL, er, GRAD_TOL);
    assert_true(want2 > 0);
    assert_true(e2 <= SUM2_TOL);
    assert_true(er <= GRAD_TOL);
}

/* In the softmax variant every logit row r gets one shared bias and Σ_c ∂L/∂logit[r,c] = 0
 * (cross-entropy), so the gradients of linear.2.bias, linear.1.bias and linear.0.bias are 0 in
 * exact arithmetic: both sides hold rounding noise (PyTorch ~1e-8 against weight gradients of
 * ~1e-2) and a relative comparison would compare noise. Instead: the noise stays below 1e-5 of
 * the scale of the gradient of linear.1.weight (the output head's first weight), on both sides. */
static int zero_in_softmax(const char *name) {
    return strcmp(name, "linear.0.bias") == 0 || strcmp(name, "linear.1.bias") == 0 ||
           strcmp(name, "linear.2.bias") == 0;
}

static double grad_scale(const fcl_tensor *g) {
    float *x = th_download(g);
    double s = 0;
    for (size_t i = 0; i < g->numel; i++)
        s = fmax(s, fabs(x[i]));
    free(x);
    return s;
}

static void expect_rounding_zero(const struct fcl_safetensors *fx, const cfg_def *c, fcl_params *P,
                                 int i, int passes) {
    char key[200];
    size_t numel;
    double ref_scale, want = 0;
    const fcl_param *w = fcl_params_find(P, "linear.1.weight");
    if (c->full) {
        snprintf(key, sizeof key, "%s.grad.linear.1.weight", c->name);
        const float *x = th_fixture_data(fx, key, &numel);
        ref_scale = 0;
        for (size_t j = 0; j < numel; j++)
            ref_scale = fmax(ref_scale, fabs(x[j]));
        snprintf(key, sizeof key, "%s.grad.%s", c->name, P->items[i].name);
        x = th_fixture_data(fx, key, &numel);
        for (size_t j = 0; j < numel; j++)
            want = fmax(want, fabs(x[j]));
    } else { /* root-mean-square scales from the summaries */
        snprintf(key, sizeof key, "%s.sum2.linear.1.weight", c->name);
        ref_scale = sqrt(th_fixture_data(fx, key, &numel)[0] / (double)w->grad.numel);
        snprintf(key, sizeof key, "%s.sum2.%s", c->name, P->items[i].name);
        want = sqrt(th_fixture_data(fx, key, &numel)[0] / (double)P->items[i].grad.numel);
    }
    double got = grad_scale(&P->items[i].grad), scale = passes * ref_scale;
    printf("  %-3s grad.%-29s zero in exact arithmetic: |got| %.1e, |PyTorch| %.1e, bound "
           "%.1e\n",
           c->name, P->items[i].name, got, want, 1e-5 * scale);
    assert_true(got <= 1e-5 * scale);
    assert_true(want <= 1e-5 * ref_scale);
}

typedef struct run_state {
    fcl_params P;
    fcl_head *head;
    fcl_tensor features;
} run_state;

static void setup_run(const cfg_def *c, run_state *r) {
    fcl_model_config cfg = make_config(c);
    fcl_params_init(&r->P);
    TH_OK(fcl_fsct_create(th_ctx(), &cfg, c->D, &r->P, 42, &r->head));
    assert_int_equal(r->P.n, N_PARAMS);
    for (int i = 0; i < N_COMMON; i++)
        assert_string_equal(r->P.items[i].name, NAMES_COMMON[i]);
    int cos = c->variant == FCL_VARIANT_COSINE;
    assert_string_equal(r->P.items[16].name, cos ? "linear.2.L.weight_g" : "linear.2.weight");
    assert_string_equal(r->P.items[17].name, cos ? "linear.2.L.weight_v" : "linear.2.bias");
    fill_params(&r->P, c->tiny);
    int B = c->n * (c->k + c->q);
    float *x = pattern_host(99, (size_t)B * c->D, 1.0f, 0.0f);
    th_upload(&r->features, 2, (int[]){B, c->D}, x);
    free(x);
}

static void teardown_run(run_state *r) {
    fcl_head_destroy(th_ctx(), r->head);
    th_free(&r->features);
    fcl_params_free(th_ctx(), &r->P);
}

/* Forward + backward `passes` times (gradients accumulate), compared with passes × PyTorch. */
static void check_training(const cfg_def *c, int passes) {
    struct fcl_safetensors *fx = th_fixture("ops_fsct");
    run_state r;
    setup_run(c, &r);
    const fcl_arena_stats *st = fcl_arena_stats_get(th_ctx()->arena);
    size_t in_use = st->in_use;
    float *first_logits = NULL;
    for (int pass = 0; pass < passes; pass++) {
        fcl_head_out out;
        TH_OK(fcl_head_forward(th_ctx(), r.head, &r.features, 1, &out));
        assert_ptr_equal(out.features, &r.features);
        assert_non_null(out.loss);
        assert_ptr_equal(out.loss, out.loss_ce);
        assert_null(out.loss_var);
        assert_null(out.loss_cov);
        assert_int_equal(out.logits->shape[0], c->n * c->q);
        assert_int_equal(out.logits->shape[1], c->n);
        expect_tensor(fx, c->name, "logits", out.logits, 1.0, LOGIT_TOL);
        expect_tensor(fx, c->name, "loss", out.loss, 1.0, LOGIT_TOL);
        float *logits = th_download(out.logits);
        if (pass) /* deterministic: the same episode gives the same bits */
            assert_memory_equal(logits, first_logits, out.logits->numel * sizeof(float));
        free(first_logits);
        first_logits = logits;
        const fcl_tensor *df;
        TH_OK(fcl_head_backward(th_ctx(), r.head, &df));
        assert_int_equal(df->shape[0], c->n * (c->k + c->q));
        assert_int_equal(df->shape[1], c->D);
        if (c->full) {
            expect_tensor(fx, c->name, "grad.dfeatures", df, 1.0, GRAD_TOL);
        } else {
            expect_summary(fx, c->name, "dfeatures", df, 899);
        }
        fcl_head_release(th_ctx(), r.head);
        assert_int_equal(st->in_use, in_use); /* everything forward/backward took is back */
    }
    free(first_logits);
    for (int i = 0; i < r.P.n; i++) {
        char what[160];
        snprintf(what, sizeof what, "grad.%s", r.P.items[i].name);
        if (c->variant == FCL_VARIANT_SOFTMAX && zero_in_softmax(r.P.items[i].name))
            expect_rounding_zero(fx, c, &r.P, i, passes);
        else if (c->full)
            expect_tensor(fx, c->name, what, &r.P.items[i].grad, passes, GRAD_TOL);
        else
            expect_summary(fx, c->name, r.P.items[i].name, &r.P.items[i].grad, 900u + (uint32_t)i);
    }
    teardown_run(&r);
    th_fixture_free(fx);
}

static void test_small_configs_match_pytorch(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof SMALL / sizeof SMALL[0]; i++)
        if (!th_small() || (i != 0 && i != 2)) check_training(&SMALL[i], 1);
}

static void test_gradients_accumulate_over_episodes(void **state) {
    (void)state;
    check_training(&SMALL[1], 2);
}

static void test_default_shapes_match_pytorch(void **state) {
    (void)state;
    if (th_small())
        return; /* D = 1600 GEMMs are too slow under oclgrind; the kernels are the
                   same as in the small configurations */
    for (size_t i = 0; i < sizeof LARGE / sizeof LARGE[0]; i++)
        check_training(&LARGE[i], 1);
}

/* Evaluation: the same logits, no loss, no backward, nothing left behind after release. */
static void test_evaluation_mode(void **state) {
    (void)state;
    struct fcl_safetensors *fx = th_fixture("ops_fsct");
    for (size_t i = 0; i < sizeof SMALL / sizeof SMALL[0]; i++) {
        run_state r;
        setup_run(&SMALL[i], &r);
        const fcl_arena_stats *st = fcl_arena_stats_get(th_ctx()->arena);
        size_t in_use = st->in_use;
        fcl_head_out out;
        /* the peak of a training forward, then of an evaluation one: evaluation frees each
         * block's activations as it goes, so with depth 2 it needs less */
        fcl_arena_reset_peak(th_ctx()->arena);
        TH_OK(fcl_head_forward(th_ctx(), r.head, &r.features, 1, &out));
        size_t train_peak = st->peak;
        fcl_head_release(th_ctx(), r.head);
        fcl_arena_reset_peak(th_ctx()->arena);
        TH_OK(fcl_head_forward(th_ctx(), r.head, &r.features, 0, &out));
        size_t eval_peak = st->peak;
        printf("  %-3s peak during forward: training %zu bytes, evaluation %zu\n", SMALL[i].name,
               train_peak - in_use, eval_peak - in_use);
        assert_true(eval_peak <= train_peak);
        if (SMALL[i].depth > 1) assert_true(eval_peak < train_peak);
        assert_null(out.loss);
        assert_null(out.loss_ce);
        /* only the logits stay allocated (256-byte aligned blocks at most) */
        assert_true(st->in_use - in_use <= out.logits->numel * sizeof(float) + 4096);
        expect_tensor(fx, SMALL[i].name, "logits", out.logits, 1.0, LOGIT_TOL);
        const fcl_tensor *df;
        assert_int_equal(fcl_head_backward(th_ctx(), r.head, &df), FEWCL_ERR_ARGUMENT);
        fcl_head_release(th_ctx(), r.head);
        assert_int_equal(st->in_use, in_use);
        teardown_run(&r);
    }
    th_fixture_free(fx);
}

/* Initial values (docs/maths.md §5.1): proto_weight and LayerNorm weights 1, LayerNorm biases
 * 0, Linear weights and biases in ±1/√fan_in and not constant, WeightNorm g = ‖v‖, v in ±1/8. */
static void test_initialisation(void **state) {
    (void)state;
    for (int v = 0; v < 2; v++) {
        cfg_def c = SMALL[v ? 2 : 0];
        fcl_model_config cfg = make_config(&c);
        fcl_params P;
        fcl_params_init(&P);
        fcl_head *head;
        TH_OK(fcl_fsct_create(th_ctx(), &cfg, c.D, &P, 7, &head));
        int fan_in[N_PARAMS] = {0, 0, 0, 40, 16, 16, 0, 0, 40, 40, 24, 24, 0, 0, 40, 40, 64, 64};
        float *vv = NULL;
        double vnorm = 0;
        for (int i = 0; i < P.n; i++) {
            const fcl_param *p = &P.items[i];
            float *x = th_download(&p->value);
            const char *nm = p->name;
            size_t len = strlen(nm);
            int is_ln_w = len > 9 && strcmp(nm + len - 9, ".0.weight") == 0;
            int is_ln_b = len > 7 && strcmp(nm + len - 7, ".0.bias") == 0;
            if (i == 0 || is_ln_w || is_ln_b) {
                for (size_t j = 0; j < p->value.numel; j++)
                    assert_true(x[j] == (is_ln_b ? 0.0f : 1.0f));
            } else if (strcmp(nm, "linear.2.L.weight_g") == 0) {
                vv = x; /* checked against v below */
                continue;
            } else {
                double bound = 1.0 / sqrt((double)fan_in[i]), lo = 1e9, hi = -1e9;
                for (size_t j = 0; j < p->value.numel; j++) {
                    assert_true(fabs(x[j]) <= bound);
                    lo = fmin(lo, x[j]), hi = fmax(hi, x[j]);
                }
                assert_true(hi > lo || p->value.numel == 1);
                if (strcmp(nm, "linear.2.L.weight_v") == 0)
                    for (size_t j = 0; j < p->value.numel; j++)
                        vnorm += (double)x[j] * x[j];
            }
            free(x);
        }
        if (v == 0) {
            assert_non_null(vv);
            assert_true(fabs(vv[0] - sqrt(vnorm)) <= 1e-6 * sqrt(vnorm));
        }
        free(vv);
        fcl_head_destroy(th_ctx(), head);
        fcl_params_free(th_ctx(), &P);
    }
}

static void test_shape_errors(void **state) {
    (void)state;
    run_state r;
    setup_run(&SMALL[0], &r);
    const fcl_tensor *df;
    assert_int_equal(fcl_head_backward(th_ctx(), r.head, &df), FEWCL_ERR_ARGUMENT);
    fcl_tensor wrong;
    TH_OK(fcl_tensor_alloc2(th_ctx(), &wrong, FCL_MEM_ACTIVATION, 14, 40));
    fcl_head_out out;
    assert_int_equal(fcl_head_forward(th_ctx(), r.head, &wrong, 1, &out), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "[14,40]"));
    assert_non_null(strstr(fewcl_last_error(), "[15, 40]"));
    th_free(&wrong);
    teardown_run(&r);

    cfg_def bad = SMALL[0];
    bad.heads = 0;
    fcl_model_config cfg = make_config(&bad);
    fcl_params P;
    fcl_params_init(&P);
    fcl_head *head = (fcl_head *)&P;
    assert_int_equal(fcl_fsct_create(th_ctx(), &cfg, 40, &P, 1, &head), FEWCL_ERR_ARGUMENT);
    assert_null(head);
    fcl_params_free(th_ctx(), &P);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initialisation),
        cmocka_unit_test(test_small_configs_match_pytorch),
        cmocka_unit_test(test_gradients_accumulate_over_episodes),
        cmocka_unit_test(test_evaluation_mode),
        cmocka_unit_test(test_default_shapes_match_pytorch),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
