/* One checkpoint, the same test episodes, four ways in (issue 13's proof):
 *   1. `fewcl test` (the installed tool): accuracy ± 95% CI over E random episodes;
 *   2. `fewcl predict` (the installed tool) on each of those episodes, written out as folders;
 *   3. examples/classify.c, compiled against the installed library with pkg-config only;
 *   4. the Python binding (bindings/python) over the installed libfewcl.so.
 * 2, 3 and 4 must give every query the same class, and 2 and 4 the same probabilities (the
 * same floats; 3 prints them to 4 decimals: the same digits); the accuracy and CI that 2's
 * classes give, computed as `fewcl test` computes them, must equal 1's to the last bit.
 * The episodes are fewcl_dataset_episode's draws, which the API promises to be `fewcl test`'s
 * for the same seed: if they were not, or if the tool's episode forward and enrol + classify
 * differed, or the image paths (loader vs fewcl_image_load) did, the accuracies would part.
 *
 * Why a small checkpoint trained here is the same proof as the demo's: the four ways share only
 * the weights file and the image files, so their agreement does not depend on which weights
 * (the claim is about code paths, not accuracy). What matters is that the weights exercise
 * every path the demo's do, and these do: conv4 with the enhanced head, the projection active
 * (features 64 -> 32 at 16 px; the demo: 576 -> 128 at 56 px), Mahalanobis, and learned
 * prototype weights used at the trained 3-way 2-shot shape; and that they are trained (a few
 * AdamW episodes, so not the initial weights), so that the classes vary from query to query
 * and the episodes' accuracies differ (a wrong episode or a wrong class then shows). They take
 * seconds, where the demo's take minutes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "fewcl/fewcl.h"
#include "harness.h"

enum { N_WAY = 3, K_SHOT = 2, N_QUERY = 2, EPISODES = 5, QUERIES = N_WAY * N_QUERY };
#define SEED 7

static char g_dir[64];

/* A few training episodes on the glyphs' base split: trained weights in dir/run. */
static int setup(void **state) {
    (void)state;
    if (th_glyph_folder(g_dir, sizeof g_dir, "same", 5, 1)) return -1;
    fewcl_model_config c = th_small_public_config(N_WAY, K_SHOT, N_QUERY);
    char train[160], run[160];
    snprintf(train, sizeof train, "%s/demo/base.json", g_dir);
    snprintf(run, sizeof run, "%s/run", g_dir);
    fewcl_train_params p;
    fewcl_train_params_default(&p, sizeof p);
    p.model = &c, p.train_data = train, p.run_dir = run;
    p.epochs = 1, p.episodes = 6, p.workers = 0, p.augment = 0;
    fewcl_status s = fewcl_train(th_ctx(), &p, NULL);
    if (s != FEWCL_OK) fprintf(stderr, "training: %s\n", fewcl_last_error());
    return s == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) { return th_glyph_teardown(g_dir, state); }

/* Episode e of the novel split as folders: ep<e>/support/c<j>/s<i>.png (class j of the
 * episode, its i-th support) and ep<e>/queries/q<jj>.png (class-major: query jj is of class
 * jj / N_QUERY), so that sorted names give the episode's order everywhere. */
static void write_episode(const fewcl_dataset *ds, int e) {
    int classes[N_WAY], images[N_WAY * (K_SHOT + N_QUERY)];
    TH_OK(fewcl_dataset_episode(ds, N_WAY, K_SHOT, N_QUERY, SEED, e, classes, images));
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "cd %s && mkdir -p ep%d/queries", g_dir, e);
    for (int j = 0; j < N_WAY; j++)
        for (int i = 0; i < K_SHOT + N_QUERY; i++) {
            const char *src = fewcl_dataset_image_path(ds, images[j * (K_SHOT + N_QUERY) + i]);
            assert_non_null(src);
            if (i < K_SHOT)
                n += snprintf(cmd + n, sizeof cmd - (size_t)n,
                              " && mkdir -p ep%d/support/c%d && cp '%s' ep%d/support/c%d/s%d.png",
                              e, j, src, e, j, i);
            else
                n += snprintf(cmd + n, sizeof cmd - (size_t)n, " && cp '%s' ep%d/queries/q%02d.png",
                              src, e, j * N_QUERY + i - K_SHOT);
        }
    assert_true(n < (int)sizeof cmd);
    th_sh(cmd);
}

/* mean ± 1.96·σ/√n (population σ) in the order of lib/train's fcl_mean_ci95, which
 * `fewcl test` reports, so that equal per-episode accuracies give equal bits. */
static void mean_ci95(const double *acc, int n, double *mean, double *ci95) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += acc[i];
    *mean = sum / n;
    for (int i = 0; i < n; i++)
        sq += (acc[i] - *mean) * (acc[i] - *mean);
    *ci95 = 1.96 * sqrt(sq / n) / sqrt((double)n);
}

static double json_number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number \"%s\" in the JSON", key);
    return v->valuedouble;
}

static void test_four_ways(void **state) {
    (void)state;
    char cmd[4096], pre[512];
    snprintf(cmd, sizeof cmd, "cmake --install '%s' --prefix '%s/prefix' > /dev/null",
             FEWCL_BUILD_DIR, g_dir);
    th_sh(cmd);
    snprintf(pre, sizeof pre,
             "cd %s && export PKG_CONFIG_PATH=$(dirname $(find prefix -name fewcl.pc)) "
             "LD_LIBRARY_PATH=$(dirname $(find $PWD/prefix -name libfewcl.so)) && ",
             g_dir);
    snprintf(cmd, sizeof cmd,
             "%s cc -Wall -Wextra -Werror '%s/examples/classify.c' "
             "$(pkg-config --cflags --libs fewcl) -o classify",
             pre, FEWCL_SOURCE_DIR);
    th_sh(cmd);

    /* 1. fewcl test */
    const char *weights = "run/best.safetensors";
    snprintf(cmd, sizeof cmd,
             "%s prefix/bin/fewcl test --weights %s --test-list demo/novel.json --episodes %d "
             "--seed %d --workers 1 --json",
             pre, weights, EPISODES, SEED);
    char *text = th_capture(cmd);
    cJSON *tool = cJSON_Parse(text);
    assert_non_null(tool);
    double tool_acc = json_number(tool, "accuracy"), tool_ci = json_number(tool, "ci95");
    assert_int_equal((int)json_number(tool, "n_way"), N_WAY);
    assert_int_equal((int)json_number(tool, "k_shot"), K_SHOT);
    cJSON_Delete(tool);
    free(text);

    /* The same episodes as folders. */
    char novel[160];
    snprintf(novel, sizeof novel, "%s/demo/novel.json", g_dir);
    fewcl_dataset *ds;
    TH_OK(fewcl_dataset_open(novel, NULL, &ds));
    for (int e = 0; e < EPISODES; e++)
        write_episode(ds, e);
    fewcl_dataset_destroy(ds);

    /* 4. the Python binding, every episode in one process */
    snprintf(cmd, sizeof cmd,
             "%s PYTHONPATH='%s/bindings/python' FEWCL_LIBRARY=$LD_LIBRARY_PATH/libfewcl.so "
             "%s '%s/tests/same_answers.py' %s $(for e in $(seq 0 %d); do echo ep$e; done)",
             pre, FEWCL_SOURCE_DIR, FEWCL_PYTHON, FEWCL_SOURCE_DIR, weights, EPISODES - 1);
    char *python = th_capture(cmd), *python_line = python;

    double acc[EPISODES];
    for (int e = 0; e < EPISODES; e++) {
        /* 2. fewcl predict */
        snprintf(cmd, sizeof cmd,
                 "%s prefix/bin/fewcl predict --weights %s --support ep%d/support "
                 "--query ep%d/queries --json",
                 pre, weights, e, e);
        text = th_capture(cmd);
        cJSON *pred = cJSON_Parse(text);
        assert_non_null(pred);
        free(text);
        assert_false(
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pred, "uniform_prototype_weights")));
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pred, "predictions");
        assert_int_equal(cJSON_GetArraySize(list), QUERIES);
        /* 3. the C example */
        snprintf(cmd, sizeof cmd, "%s ./classify %s ep%d/support ep%d/queries/*.png", pre, weights,
                 e, e);
        char *example = th_capture(cmd), *line = strtok(example, "\n");
        /* 4.'s line for this episode */
        char *end = strchr(python_line, '\n');
        assert_non_null(end);
        *end = 0;
        cJSON *py = cJSON_Parse(python_line);
        assert_non_null(py);
        python_line = end + 1;
        const cJSON *py_classes = cJSON_GetObjectItemCaseSensitive(py, "classes");
        const cJSON *py_probs = cJSON_GetObjectItemCaseSensitive(py, "probabilities");

        int correct = 0;
        for (int q = 0; q < QUERIES; q++) {
            const cJSON *p = cJSON_GetArrayItem(list, q);
            const char *cls = cJSON_GetObjectItemCaseSensitive(p, "class")->valuestring;
            const char *query = cJSON_GetObjectItemCaseSensitive(p, "query")->valuestring;
            double prob = json_number(p, "probability");
            char want[16], q_name[16], digits[32];
            snprintf(want, sizeof want, "c%d", q / N_QUERY);
            snprintf(q_name, sizeof q_name, "q%02d.png", q);
            assert_non_null(strstr(query, q_name)); /* the episode's query order */
            correct += !strcmp(cls, want);
            /* the example's line: path, class, probability to 4 decimals */
            assert_non_null(line);
            snprintf(digits, sizeof digits, "\t%s\t%.4f", cls, prob);
            if (!strstr(line, q_name) || !strstr(line, digits))
                fail_msg("episode %d query %d: the example printed \"%s\", predict %s %.4f", e, q,
                         line, cls, prob);
            line = strtok(NULL, "\n");
            /* Python: the same class and the same float for every class */
            assert_string_equal(cJSON_GetArrayItem(py_classes, q)->valuestring, cls);
            const cJSON *row = cJSON_GetArrayItem(py_probs, q);
            const cJSON *all = cJSON_GetObjectItemCaseSensitive(p, "probabilities");
            for (int c = 0; c < N_WAY; c++) {
                char name[8];
                snprintf(name, sizeof name, "c%d", c);
                double tool_p = json_number(all, name),
                       py_p = cJSON_GetArrayItem(row, c)->valuedouble;
                /* float32 values: cJSON prints predict's with 15 significant digits, which
                 * identify a float32 exactly (9 do), so compare them as floats */
                if ((float)tool_p != (float)py_p)
                    fail_msg("episode %d query %d class %d: predict %.9g, Python %.9g", e, q, c,
                             tool_p, py_p);
            }
        }
        assert_null(line);                  /* no more lines than queries */
        acc[e] = 100.0 * correct / QUERIES; /* as fewcl test scores an episode */
        printf("episode %d: %d of %d queries right\n", e, correct, QUERIES);
        cJSON_Delete(py);
        cJSON_Delete(pred);
        free(example);
    }
    free(python);
    double mean, ci95;
    mean_ci95(acc, EPISODES, &mean, &ci95);
    printf("fewcl test: %.17g%% ± %.17g; the episodes through predict, the example and Python: "
           "%.17g%% ± %.17g\n",
           tool_acc, tool_ci, mean, ci95);
    if (mean != tool_acc || ci95 != tool_ci)
        fail_msg("fewcl test says %.17g ± %.17g, its episodes through predict %.17g ± %.17g",
                 tool_acc, tool_ci, mean, ci95);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_ways),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
