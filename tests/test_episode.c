/* `fewcl episode` end to end against the whole-model golden states of
 * tools/reference/episode.py (conv4 backbone + enhanced head, projection active, VIC on; conv4 +
 * the original FS-CT head):
 * the tool is run as a user would, and every output compared. Tolerances, SPEC §10: logits,
 * losses and features 1e-4 relative; gradients 1e-3 relative; relative means max|Δ|/max|want|
 * per tensor. A gradient whose true value is zero (the conv biases in front of training-mode
 * BatchNorm) holds only rounding noise on both sides, so gradients are measured against
 * max(max|want|, 1e-3·G), G the largest gradient of the model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/safetensors.h"

/* The golden states of tools/reference/episode.py and the flags that describe their models. */
typedef struct golden {
    const char *name, *flags;
    int losses;         /* how many of loss, loss_ce, loss_var, loss_cov the head writes */
    int grads, running; /* parameters and BN buffers */
} golden;

static const golden k_enhanced = {
    "conv4", "--k-shot 2 --reduced-dim 64 --heads 2 --dim-head 16 --mlp-dim 32 --mahalanobis dense",
    4, 4 * 4 + 4 + 1 + 2 * 13 + 1, 8}; /* conv4, projection, proto, blocks, log_vars */
static const golden k_fsct = {
    "conv4_fsct", "--k-shot 2 --method fsct --heads 2 --dim-head 8 --mlp-dim 24", 2, 4 * 4 + 18, 8};

static fcl_safetensors *run_tool(const golden *g, int train, char *out, size_t cap) {
    const char *dir = getenv("FEWCL_FIXTURE_DIR");
    dir = dir && *dir ? dir : FEWCL_TEST_FIXTURES;
    snprintf(out, cap, "/tmp/fewcl-episode-%d-%d.safetensors", (int)getpid(), train);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' episode --weights '%s/episode_%s_weights.safetensors' --input "
             "'%s/episode_%s_input.safetensors' --out '%s' %s %s",
             FEWCL_BIN, dir, g->name, dir, g->name, out, train ? "--train" : "", g->flags);
    assert_int_equal(system(cmd), 0);
    fcl_safetensors *st;
    TH_OK(fcl_st_load(out, &st));
    return st;
}

static double rel_error(const fcl_safetensors *got, const char *gkey, struct fcl_safetensors *fx,
                        const char *wkey, double floor) {
    size_t n, m;
    const float *w = th_fixture_data(fx, wkey, &n), *g;
    TH_OK(fcl_st_f32(got, gkey, 0, NULL, &g, &m));
    assert_int_equal(n, m);
    double diff = 0, scale = floor;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)g[i] - w[i]));
        scale = fmax(scale, fabs(w[i]));
    }
    return diff / scale;
}

static void check_training(const golden *gd) {
    char fixture[96];
    snprintf(fixture, sizeof fixture, "episode_%s_expected", gd->name);
    struct fcl_safetensors *fx = th_fixture(fixture);
    char out[256];
    fcl_safetensors *got = run_tool(gd, 1, out, sizeof out);
    const char *exact[] = {"features", "logits", "loss", "loss_ce", "loss_var", "loss_cov"};
    for (int i = 0; i < 2 + gd->losses; i++) {
        double e = rel_error(got, exact[i], fx, exact[i], 0);
        print_message("  %-40s %.2e (tolerance 1e-4)\n", exact[i], e);
        assert_true(e <= 1e-4);
    }
    double G = 0; /* the largest gradient of the model */
    for (int i = 0; i < fx->n; i++)
        if (!strncmp(fx->tensors[i].name, "grad.", 5)) {
            size_t n;
            const float *w = th_fixture_data(fx, fx->tensors[i].name, &n);
            for (size_t j = 0; j < n; j++)
                G = fmax(G, fabs(w[j]));
        }
    int grads = 0, running = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < fx->n; i++) {
        const char *key = fx->tensors[i].name;
        int is_grad = !strncmp(key, "grad.", 5), is_running = !strncmp(key, "running.", 8);
        if (!is_grad && !is_running) continue;
        double e = rel_error(got, key, fx, key, is_grad ? 1e-3 * G : 0);
        assert_true(e <= (is_grad ? 1e-3 : 1e-4));
        if (e > worst) worst = e, worst_name = key;
        grads += is_grad, running += is_running;
    }
    print_message("  %d gradients and %d running statistics; worst %s %.2e\n", grads, running,
                  worst_name, worst);
    assert_int_equal(grads, gd->grads);
    assert_int_equal(running, gd->running);
    fcl_st_free(got);
    unlink(out);
    th_fixture_free(fx);
}

static void check_evaluation(const golden *gd) {
    char fixture[96];
    snprintf(fixture, sizeof fixture, "episode_%s_expected", gd->name);
    struct fcl_safetensors *fx = th_fixture(fixture);
    char out[256];
    fcl_safetensors *got = run_tool(gd, 0, out, sizeof out);
    double e = rel_error(got, "logits", fx, "eval.logits", 0);
    print_message("  eval logits %.2e (tolerance 1e-4)\n", e);
    assert_true(e <= 1e-4);
    assert_null(fcl_st_find(got, "loss")); /* no losses and no gradients in evaluation */
    assert_null(fcl_st_find(got, "grad.proto_weight"));
    fcl_st_free(got);
    unlink(out);
    th_fixture_free(fx);
}

static void test_enhanced_training(void **state) { check_training(&k_enhanced); }
static void test_enhanced_evaluation(void **state) { check_evaluation(&k_enhanced); }
static void test_fsct_training(void **state) { check_training(&k_fsct); }
static void test_fsct_evaluation(void **state) { check_evaluation(&k_fsct); }

static void test_bad_invocations(void **state) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' episode --input /nonexistent.safetensors 2>/dev/null",
             FEWCL_BIN);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2); /* usage: --weights and --out missing */
    snprintf(cmd, sizeof cmd,
             "'%s' episode --weights w --input /nonexistent.safetensors --out o 2>/dev/null",
             FEWCL_BIN);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1); /* runtime: the file is missing */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enhanced_training), cmocka_unit_test(test_enhanced_evaluation),
        cmocka_unit_test(test_fsct_training),     cmocka_unit_test(test_fsct_evaluation),
        cmocka_unit_test(test_bad_invocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
