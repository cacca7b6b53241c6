/* `fewcl predict` and `fewcl test` at another support shape, through the tool:
 * - `fewcl test --k-shot 1` on 5-way 5-shot weights runs with uniform shot weights, says so in
 *   one line and in its JSON (it used to fail on proto_weight's shape);
 * - `fewcl predict` prints the class of each query, the same classes and probabilities as the
 *   API's fewcl_enroll + fewcl_classify, all probabilities with --json, 'unknown' below
 *   --unknown-below, and bad input as a message naming it with exit 1 or 2.
 * Model: conv4 at 16x16, 5-way 5-shot, initialised (not trained): the tool's behaviour does
 * not need a trained one, and the weights are saved in a few milliseconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fewcl/fewcl.h"
#include "harness.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    if (th_glyph_folder(g_dir, sizeof g_dir, "predict", 2, 0)) return -1;
    fewcl_model_config c;
    fewcl_model_config_default(&c, sizeof c);
    c.image_size = 16, c.n_way = 5, c.k_shot = 5, c.n_query = 1;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    fewcl_model *m;
    if (fewcl_model_create(th_ctx(), &c, 1, &m) != FEWCL_OK) return -1;
    char weights[160];
    snprintf(weights, sizeof weights, "%s/w5s5.safetensors", g_dir);
    fewcl_status st = fewcl_model_save(m, weights);
    fewcl_model_destroy(m);
    return st == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) { return th_glyph_teardown(g_dir, state); }

/* Runs `fewcl <args>` in g_dir, checks the exit code and that stderr holds `expect` (may be
 * NULL); returns stdout (malloc'd). */
static char *run(const char *args, int code, const char *expect) {
    char cmd[4096], out[128], err[128];
    snprintf(out, sizeof out, "%s/stdout.txt", g_dir);
    snprintf(err, sizeof err, "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "cd %s && '%s' %s > %s 2> %s", g_dir, FEWCL_BIN, args, out, err);
    int status = system(cmd);
    char *text = th_read_file(err, NULL), *stdout_text = th_read_file(out, NULL);
    assert_non_null(text);
    assert_non_null(stdout_text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
        fail_msg("fewcl %s: exit %d, expected %d; stderr:\n%s", args,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, code, text);
    if (expect && !strstr(text, expect))
        fail_msg("fewcl %s: stderr lacks \"%s\":\n%s", args, expect, text);
    free(text);
    return stdout_text;
}

static int json_bool(const char *text, const char *key) {
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsBool(v));
    int b = cJSON_IsTrue(v);
    cJSON_Delete(o);
    return b;
}

static void test_test_other_shot(void **state) {
    (void)state;
    const char *base = "test --weights w5s5.safetensors --data demo --episodes 2 --n-query 1 "
                       "--workers 1 --json";
    char args[512];
    snprintf(args, sizeof args, "%s --k-shot 1", base);
    char *out = run(args, 0, "averaged uniformly");
    assert_true(json_bool(out, "uniform_prototype_weights"));
    free(out);
    out = run(base, 0, NULL);
    assert_false(json_bool(out, "uniform_prototype_weights"));
    free(out);
}

/* The API's classes and probabilities for the same support set and queries. */
static void api_predictions(char names[6][64], int *labels, float *probs) {
    fewcl_context *ctx = th_ctx();
    fewcl_model *m;
    char path[256];
    snprintf(path, sizeof path, "%s/w5s5.safetensors", g_dir);
    TH_OK(fewcl_model_load(ctx, path, NULL, &m));
    enum { S = 16, IMG = 3 * S * S };
    static float sup[6 * IMG], qry[6 * IMG];
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/support", g_dir);
    FILE *p = popen(cmd, "r");
    char cls[3][64];
    for (int c = 0; c < 3; c++) {
        assert_non_null(fgets(cls[c], sizeof cls[c], p));
        cls[c][strcspn(cls[c], "\n")] = 0;
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/support/%s/0%d.png", g_dir, cls[c], i);
            TH_OK(fewcl_image_load(path, S, sup + (size_t)(2 * c + i) * IMG));
            snprintf(names[2 * c + i], 64, "%s-0%d.png", cls[c], i + 2);
            snprintf(path, sizeof path, "%s/queries/%s", g_dir, names[2 * c + i]);
            TH_OK(fewcl_image_load(path, S, qry + (size_t)(2 * c + i) * IMG));
        }
    }
    pclose(p);
    fewcl_enrollment *e;
    fewcl_images s = {sup, 6, 3, S, S}, q = {qry, 6, 3, S, S};
    TH_OK(fewcl_enroll(m, &s, (int[]){2, 2, 2}, 3, &e));
    TH_OK(fewcl_classify(e, &q, NULL, probs, labels));
    for (int r = 0; r < 6; r++) /* the label as the class name */
        snprintf(names[r] + strlen(names[r]), 64 - strlen(names[r]), " %s", cls[labels[r]]);
    fewcl_enrollment_destroy(e);
    fewcl_model_destroy(m);
}

static void test_predict(void **state) {
    (void)state;
    char names[6][64];
    int labels[6];
    float probs[6 * 3];
    api_predictions(names, labels, probs);
    char *out = run("predict --weights w5s5.safetensors --support support --query queries --json",
                    0, "averaged uniformly");
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "uniform_prototype_weights")));
    const cJSON *list = cJSON_GetObjectItem(o, "predictions");
    assert_int_equal(cJSON_GetArraySize(list), 6);
    for (int r = 0; r < 6; r++) {
        const cJSON *p = cJSON_GetArrayItem(list, r);
        const char *query = cJSON_GetObjectItem(p, "query")->valuestring;
        const char *cls = cJSON_GetObjectItem(p, "class")->valuestring;
        char expect[160];
        snprintf(expect, sizeof expect, "queries/%s", names[r]);
        *strchr(expect, ' ') = 0;
        assert_string_equal(query, expect);
        assert_string_equal(cls, strchr(names[r], ' ') + 1); /* the API's class */
        /* the API's probability, as printed by cJSON (%.17g of the float): the same value */
        double best = cJSON_GetObjectItem(p, "probability")->valuedouble;
        assert_true((float)best == probs[r * 3 + labels[r]]);
        const cJSON *all = cJSON_GetObjectItem(p, "probabilities");
        assert_int_equal(cJSON_GetArraySize(all), 3);
    }
    cJSON_Delete(o);
    free(out);
    /* text: one line per query; a single file query; everything 'unknown' below 1 */
    out = run("predict --weights w5s5.safetensors --support support --query queries "
              "--unknown-below 1",
              0, NULL);
    int lines = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"), lines++)
        assert_non_null(strstr(l, "\tunknown\t"));
    assert_int_equal(lines, 6);
    free(out);
    char args[256];
    snprintf(args, sizeof args,
             "predict --weights w5s5.safetensors --support support --query queries/%.*s",
             (int)(strchr(names[0], ' ') - names[0]), names[0]);
    out = run(args, 0, NULL);
    assert_non_null(strstr(out, strchr(names[0], ' ') + 1));
    free(out);
}

static void test_predict_errors(void **state) {
    (void)state;
    free(run("predict --support support --query queries", 2, "--weights"));
    free(run("predict --weights w5s5.safetensors --query queries", 2, "--support"));
    free(run("predict --weights w5s5.safetensors --support support", 2, "--query"));
    free(run("predict --weights w5s5.safetensors --support support --query queries "
             "--unknown-below 2",
             2, "--unknown-below '2'"));
    free(run("predict --weights w5s5.safetensors --support nowhere --query queries", 2, "nowhere"));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cd %s && cp -r support empty && mkdir empty/zzz", g_dir);
    assert_int_equal(system(cmd), 0);
    free(run("predict --weights w5s5.safetensors --support empty --query queries", 2,
             "empty/zzz has no images"));
    free(run("predict --weights w5s5.safetensors --support support --query missing.png", 1,
             "missing.png"));
    free(run("predict --weights missing.safetensors --support support --query queries", 1,
             "missing.safetensors"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_test_other_shot),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_predict_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
