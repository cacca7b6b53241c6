/* Named parameters: registration, save/load round trip through safetensors, the messages for
 * missing, unexpected and mismatched keys, AdamW over all parameters, and the weight pattern
 * against its Python twin (tools/reference/pattern.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nn/params.h"

static void build(fcl_params *P) {
    fcl_params_init(P);
    fcl_tensor *t;
    TH_OK(fcl_params_add(th_ctx(), P, "head.w", 2, (int[]){4, 3}, 1, &t));
    TH_OK(fcl_pattern_fill(th_ctx(), t, 11, 0.5f));
    TH_OK(fcl_params_add(th_ctx(), P, "head.b", 1, (int[]){4}, 1, &t));
    TH_OK(fcl_pattern_fill(th_ctx(), t, 12, 0.5f));
    TH_OK(fcl_params_add_buffer(th_ctx(), P, "bn.running_mean", 1, (int[]){3}, &t));
    TH_OK(fcl_fill(th_ctx(), t, 0.25f));
}

static char *save_tmp(fcl_params *P) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fewcl-params-%d.safetensors", (int)getpid());
    fcl_st_writer *w = fcl_st_writer_new();
    TH_OK(fcl_params_store(th_ctx(), P, w));
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    return path;
}

static void test_round_trip(void **state) {
    fcl_params A, B;
    build(&A);
    assert_int_equal(fcl_params_count(&A), 16); /* buffers are not trainable */
    char *path = save_tmp(&A);
    build(&B);
    TH_OK(fcl_fill(th_ctx(), &fcl_params_find(&B, "head.w")->value, 0));
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    TH_OK(fcl_params_load(th_ctx(), &B, st, "", FCL_LOAD_STRICT));
    for (int i = 0; i < A.n; i++) {
        float *a = th_download(&A.items[i].value), *b = th_download(&B.items[i].value);
        assert_memory_equal(a, b, A.items[i].value.numel * sizeof *a);
        free(a), free(b);
    }
    fcl_st_free(st);
    unlink(path);
    fcl_params_free(th_ctx(), &B);
    fcl_params_free(th_ctx(), &A);
}

static void test_mismatches_are_named(void **state) {
    fcl_params A, B;
    build(&A);
    char *path = save_tmp(&A);
    fcl_params_init(&B);
    fcl_tensor *t;
    TH_OK(fcl_params_add(th_ctx(), &B, "head.w", 2, (int[]){3, 4}, 1, &t)); /* transposed */
    TH_OK(fcl_params_add(th_ctx(), &B, "head.extra", 1, (int[]){2}, 1, &t));
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    assert_int_equal(fcl_params_load(th_ctx(), &B, st, "", FCL_LOAD_STRICT), FEWCL_ERR_FORMAT);
    const char *msg = fewcl_last_error();
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "has shape [4,3], expected [3,4]"));
    assert_non_null(strstr(msg, "missing head.extra"));
    assert_non_null(strstr(msg, "unexpected head.b"));
    assert_non_null(strstr(msg, "unexpected bn.running_mean"));
    /* Complete loading ignores unexpected keys but not missing ones. */
    assert_int_equal(fcl_params_load(th_ctx(), &B, st, "", FCL_LOAD_COMPLETE), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "missing head.extra"));
    assert_null(strstr(fewcl_last_error(), "unexpected"));
    /* Partial loading ignores missing and unexpected keys but never a wrong shape. */
    assert_int_equal(fcl_params_load(th_ctx(), &B, st, "", FCL_LOAD_PARTIAL), FEWCL_ERR_FORMAT);
    fcl_st_free(st);
    unlink(path);
    fcl_params_free(th_ctx(), &B);
    fcl_params_free(th_ctx(), &A);
}

static void test_prefix_and_partial(void **state) {
    fcl_params A, B;
    build(&A);
    fcl_st_writer *w = fcl_st_writer_new();
    float v[3] = {1, 2, 3};
    TH_OK(fcl_st_writer_add(w, "feature.bn.running_mean", 1, (int64_t[]){3}, v));
    TH_OK(fcl_st_writer_add(w, "other.thing", 1, (int64_t[]){3}, v));
    char path[64];
    snprintf(path, sizeof path, "/tmp/fewcl-prefix-%d.safetensors", (int)getpid());
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    fcl_params_init(&B);
    fcl_tensor *t;
    TH_OK(fcl_params_add_buffer(th_ctx(), &B, "bn.running_mean", 1, (int[]){3}, &t));
    TH_OK(fcl_params_load(th_ctx(), &B, st, "feature.", FCL_LOAD_PARTIAL));
    float *got = th_download(t);
    assert_memory_equal(got, v, sizeof v);
    free(got);
    fcl_st_free(st);
    unlink(path);
    fcl_params_free(th_ctx(), &B);
    fcl_params_free(th_ctx(), &A);
}

static void test_adamw_over_parameters(void **state) {
    fcl_params A;
    build(&A);
    fcl_param *w = fcl_params_find(&A, "head.w");
    float *before = th_download(&w->value);
    TH_OK(fcl_fill(th_ctx(), &w->grad, 1.0f));
    fcl_adamw_config cfg = fcl_adamw_defaults();
    TH_OK(fcl_params_adamw(th_ctx(), &A, &cfg));
    /* Step 1 with g = 1: m̂ = 1, v̂ = 1, so p ← p(1 − lr·wd) − lr/(1 + eps). */
    float *after = th_download(&w->value);
    for (size_t i = 0; i < w->value.numel; i++) {
        double want = before[i] * (1 - cfg.lr * cfg.weight_decay) - cfg.lr / (1 + cfg.eps);
        assert_true(fabs(after[i] - want) <= 1e-6);
    }
    /* head.b had a zero gradient: only the decay moved it. */
    TH_OK(fcl_params_zero_grad(th_ctx(), &A));
    float *g = th_download(&w->grad);
    for (size_t i = 0; i < w->value.numel; i++)
        assert_true(g[i] == 0);
    free(g), free(before), free(after);
    assert_int_equal(A.step, 1);
    fcl_params_free(th_ctx(), &A);
}

static void test_pattern_matches_python(void **state) {
    struct fcl_safetensors *fx = th_fixture("pattern");
    struct {
        const char *key;
        uint32_t seed;
        float scale;
    } cases[] = {{"seed1_scale1", 1, 1.0f},
                 {"seed7_scale0.05", 7, 0.05f},
                 {"seed4294967295_scale2", 4294967295u, 2.0f}};
    for (int c = 0; c < 3; c++) {
        size_t n;
        const float *want = th_fixture_data(fx, cases[c].key, &n);
        for (size_t i = 0; i < n; i++)
            assert_true(fcl_pattern_value(cases[c].seed, i, cases[c].scale) == want[i]);
    }
    th_fixture_free(fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_mismatches_are_named),
        cmocka_unit_test(test_prefix_and_partial),
        cmocka_unit_test(test_adamw_over_parameters),
        cmocka_unit_test(test_pattern_matches_python),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
