/* Several devices in one process (lib/train/replicas, lib/runtime/device_list.c): device lists
 * and their errors; evaluation split over replicas gives the one-device run's per-episode
 * accuracies, mean and CI bit for bit (here the same device opened two and three times, as
 * `--devices P:D,P:D` does); a replica's failure names its device and the lowest failing
 * replica; files replaced atomically from two threads at once; `fewcl test --devices`;
 * `fewcl plan --devices` (the trainer's replica and the copies' plans).
 * Model: conv4 at 16x16, 3-way 2-shot 2-query on a small rendered glyph dataset (the fixture
 * of test_train.c); FEWCL_FIND=off (the harness's default). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/demo.h"
#include "harness.h"
#include "io/atomic_file.h"
#include "train/checkpoint.h"
#include "train/replicas.h"

static char g_dir[64];
static fcl_dataset *g_novel, *g_base, *g_val;
static char g_here[64]; /* "P:D" of the test's device */

static fcl_model_config small_config(void) {
    fcl_model_config c = fcl_config_default();
    c.image_size = 16;
    c.n_way = 3, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    return c;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fewcl-devices-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    fcl_demo_options o = {
        .out_dir = g_dir, .images_per_class = 6, .size = 16, .min_faces = 8, .seed = 5};
    fcl_demo_summary s;
    char path[128];
    if (fcl_demo_render(&o, &s) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/base.json", g_dir);
    if (fcl_dataset_load_json(path, NULL, &g_base) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/val.json", g_dir);
    if (fcl_dataset_load_json(path, NULL, &g_val) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/novel.json", g_dir);
    const fewcl_device_info *d = fewcl_context_device(th_ctx());
    snprintf(g_here, sizeof g_here, "%d:%d", d->platform_index, d->device_index);
    return fcl_dataset_load_json(path, NULL, &g_novel) == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) {
    fcl_dataset_free(g_novel);
    fcl_dataset_free(g_base);
    fcl_dataset_free(g_val);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? th_teardown(state) : -1;
}

/* "P:D,P:D,..." of the test's device, n times. */
static const char *here_times(int n) {
    static char list[256];
    list[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", g_here);
    return list;
}

static void test_device_lists(void **state) {
    (void)state;
    fewcl_device_info *d;
    int n;
    TH_OK(fewcl_parse_device_list(here_times(2), &d, &n));
    assert_int_equal(n, 2); /* a repeated entry is two replicas */
    assert_string_equal(d[0].name, d[1].name);
    assert_string_equal(d[0].name, fewcl_context_device(th_ctx())->name);
    fewcl_free_device_list(d);
    TH_OK(fewcl_parse_device_list("all", &d, &n));
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) { /* all GPUs or all CPUs, each physical device once */
        assert_int_equal(d[i].is_gpu, d[0].is_gpu);
        for (int j = 0; j < i; j++)
            assert_false(d[i].platform_index != d[j].platform_index &&
                         !strcmp(d[i].name, d[j].name) && !strcmp(d[i].vendor, d[j].vendor));
    }
    fewcl_free_device_list(d);
    struct {
        const char *list, *names;
        fewcl_status want;
    } bad[] = {{"", "empty list", FEWCL_ERR_ARGUMENT},
               {"x", "entry 1 'x' is not a P:D index", FEWCL_ERR_ARGUMENT},
               {"0:0,", "entry 2 '' is not a P:D index", FEWCL_ERR_ARGUMENT},
               {"0:0,1:2:3", "entry 2 '1:2:3' is not a P:D index", FEWCL_ERR_ARGUMENT},
               {"0:0,99:0", "entry 2 '99:0' names no device", FEWCL_ERR_NO_DEVICE}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = NULL;
        assert_int_equal(fewcl_parse_device_list(bad[i].list, &d, &n), bad[i].want);
        print_message("  '%s': %.120s...\n", bad[i].list, fewcl_last_error());
        assert_null(d);
        assert_non_null(strstr(fewcl_last_error(), bad[i].names));
        if (*bad[i].list) /* the devices there are, to choose from */
            assert_non_null(strstr(fewcl_last_error(), g_here));
    }
}

static void test_shard_blocks(void **state) {
    (void)state;
    /* {first, n, replicas, w, start, count} */
    long cases[][6] = {{0, 7, 2, 0, 0, 3},   {0, 7, 2, 1, 3, 4},      {0, 7, 3, 0, 0, 2},
                       {0, 7, 3, 1, 2, 2},   {0, 7, 3, 2, 4, 3},      {10, 1, 2, 0, 10, 0},
                       {10, 1, 2, 1, 10, 1}, {5, 600, 4, 3, 455, 150}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long start, count;
        fcl_shard_block(cases[i][0], cases[i][1], (int)cases[i][2], (int)cases[i][3], &start,
                        &count);
        assert_int_equal(start, cases[i][4]);
        assert_int_equal(count, cases[i][5]);
    }
}

/* One device's accuracies of episodes first .. first+n-1, then the same split over `replicas`
 * replicas of that device: every accuracy, the mean and the CI bit for bit. */
static void check_sharded(fcl_model *m, long first, int n, int replicas) {
    double one[16], many[16];
    fcl_eval_options o = {.data = g_novel,
                          .episodes = n,
                          .seed = 11,
                          .io = {.workers = 1, .cache_bytes = 1 << 20},
                          .first = first,
                          .accuracies = one};
    fcl_eval_result a, b;
    TH_OK(fcl_evaluate(th_ctx(), m, &o, &a));
    fcl_replica_group *g;
    TH_OK(fcl_replicas_open(here_times(replicas), th_ctx(), m, 0, &g));
    assert_int_equal(g->n, replicas);
    assert_true(g->r[0].on_caller && g->r[0].ctx == th_ctx());
    for (int w = 1; w < replicas; w++)
        assert_true(!g->r[w].on_caller && g->r[w].ctx != th_ctx() && g->r[w].model != m);
    memset(many, 0xff, sizeof many); /* NaNs: an episode left out shows */
    o.accuracies = many;
    TH_OK(fcl_evaluate_sharded(g, &o, &b));
    fcl_replicas_close(g);
    print_message("  episodes %ld..%ld on %d replicas: %.6f%% ± %.6f%% (one device %.6f%% ± "
                  "%.6f%%)\n",
                  first, first + n - 1, replicas, b.accuracy, b.ci95, a.accuracy, a.ci95);
    for (int i = 0; i < n; i++)
        if (memcmp(&one[i], &many[i], sizeof one[i]) != 0)
            fail_msg("episode %ld: %.17g on one device, %.17g sharded", first + i, one[i], many[i]);
    assert_int_equal(b.episodes, n);
    assert_memory_equal(&a.accuracy, &b.accuracy, sizeof a.accuracy);
    assert_memory_equal(&a.ci95, &b.ci95, sizeof a.ci95);
}

static void test_sharded_evaluation(void **state) {
    (void)state;
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(th_ctx(), &c, 3, &m));
    check_sharded(m, 0, 7, 2); /* blocks 3 + 4 */
    check_sharded(m, 5, 7, 3); /* a share of a longer run (first 5): 2 + 2 + 3 */
    check_sharded(m, 0, 1, 2); /* the first replica idle: the second leads */
    fcl_model_destroy(th_ctx(), m);
}

/* Training with validation split over two replicas: each epoch's validation accuracy and CI,
 * and so the best epoch, are the one-device run's bit for bit (the replicas get the weights
 * trained so far before each validation). */
static void test_sharded_validation(void **state) {
    (void)state;
    fcl_train_result r[2];
    for (int i = 0; i < 2; i++) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s/run-%d", g_dir, i);
        fcl_train_options o = {.cfg = small_config(),
                               .train = g_base,
                               .val = g_val,
                               .run_dir = dir,
                               .epochs = 2,
                               .episodes = 2,
                               .val_episodes = 5,
                               .adam = fcl_adamw_defaults(),
                               .seed = 7,
                               .data = {.workers = 1, .cache_bytes = 1 << 20},
                               .devices = i ? here_times(2) : NULL};
        TH_OK(fcl_train(th_ctx(), &o, &r[i]));
    }
    print_message("  validation %.6f%% ± %.6f%% on one device, %.6f%% ± %.6f%% on two\n",
                  r[0].last.val_acc, r[0].last.val_ci95, r[1].last.val_acc, r[1].last.val_ci95);
    assert_memory_equal(&r[0].last.val_acc, &r[1].last.val_acc, sizeof(double));
    assert_memory_equal(&r[0].last.val_ci95, &r[1].last.val_ci95, sizeof(double));
    assert_memory_equal(&r[0].best_val_acc, &r[1].best_val_acc, sizeof(double));
    assert_int_equal(r[0].best_epoch, r[1].best_epoch);
}

/* A replica that cannot open (its context gets a 1 KiB memory limit) is named with its
 * device; of two failing, the lower replica is reported. */
static void test_replica_errors(void **state) {
    (void)state;
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(th_ctx(), &c, 3, &m));
    setenv("FEWCL_MEM_LIMIT", "1K", 1); /* read by the contexts the replicas open */
    fcl_replica_group *g = NULL;
    fewcl_status s = fcl_replicas_open(here_times(3), th_ctx(), m, 0, &g);
    unsetenv("FEWCL_MEM_LIMIT");
    print_message("  %.200s\n", fewcl_last_error());
    assert_int_equal(s, FEWCL_ERR_OUT_OF_MEMORY);
    assert_null(g);
    char want[300];
    snprintf(want, sizeof want, "device %s (%s, replica 2 of 3): ", g_here,
             fewcl_context_device(th_ctx())->name);
    assert_non_null(strstr(fewcl_last_error(), want));
    fcl_model_destroy(th_ctx(), m);
}

/* Two threads replacing one file, over and over: every write succeeds (each thread writes
 * under its own temporary name), the file is always one writer's whole content, and no
 * temporary file is left. */
typedef struct writer {
    const char *path;
    char fill;
    int failures;
    char error[256];
} writer;

#define WRITE_BYTES (64 * 1024)
#define WRITES 150

static void *write_many(void *arg) {
    writer *w = arg;
    char *text = malloc(WRITE_BYTES + 1);
    memset(text, w->fill, WRITE_BYTES);
    text[WRITE_BYTES] = 0;
    for (int i = 0; i < WRITES; i++)
        if (fcl_atomic_write_text(w->path, text) != FEWCL_OK && !w->failures++)
            snprintf(w->error, sizeof w->error, "%s", fewcl_last_error());
    free(text);
    return NULL;
}

static void test_atomic_writes_from_two_threads(void **state) {
    (void)state;
    char path[128], a[300], b[300];
    snprintf(path, sizeof path, "%s/shared.txt", g_dir);
    fcl_temp_path(path, a, sizeof a);
    fcl_temp_path(path, b, sizeof b);
    print_message("  temporary names: %s, %s\n", a, b);
    assert_string_not_equal(a, b);
    writer w[2] = {{path, 'a', 0, ""}, {path, 'b', 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (w[i].failures)
            fail_msg("%d writes of '%c' failed: %s", w[i].failures, w[i].fill, w[i].error);
    size_t len;
    char *text = th_read_file(path, &len);
    assert_int_equal(len, WRITE_BYTES);
    for (size_t i = 1; i < len; i++)
        if (text[i] != text[0]) fail_msg("byte %zu is '%c' after '%c': a mix", i, text[i], text[0]);
    free(text);
    DIR *dir = opendir(g_dir);
    for (struct dirent *e; (e = readdir(dir));)
        if (strstr(e->d_name, "shared.txt.tmp")) fail_msg("left behind: %s", e->d_name);
    closedir(dir);
}

/* The tool: `fewcl test --devices P:D,P:D --json` prints the accuracy and CI of the run on
 * one device, character for character; a bad list is refused naming the entry. */
static char *json_field(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    if (!at) fail_msg("no %s in %s", key, json);
    at += strlen(pattern);
    return strndup(at, strcspn(at, ",}"));
}

static void test_cli_sharded_test(void **state) {
    (void)state;
    fcl_model_config c = small_config();
    fcl_model *m;
    char weights[128], cmd[1024];
    TH_OK(fcl_model_create(th_ctx(), &c, 4, &m));
    snprintf(weights, sizeof weights, "%s/w.safetensors", g_dir);
    TH_OK(fcl_checkpoint_save(th_ctx(), m, 0, NULL, weights));
    fcl_model_destroy(th_ctx(), m);
    const char *lists[] = {"", here_times(2)};
    char *acc[2], *ci[2];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "'%s' test --weights %s --test-list %s/novel.json --episodes 7 --seed 3 "
                 "--workers 1 --json %s%s 2>&1",
                 FEWCL_BIN, weights, g_dir, *lists[i] ? "--devices " : "", lists[i]);
        char *out = th_capture(cmd);
        print_message("  %s\n", out);
        acc[i] = json_field(out, "accuracy");
        ci[i] = json_field(out, "ci95");
        free(out);
    }
    assert_string_equal(acc[0], acc[1]);
    assert_string_equal(ci[0], ci[1]);
    for (int i = 0; i < 2; i++)
        free(acc[i]), free(ci[i]);
    snprintf(cmd, sizeof cmd,
             "'%s' test --weights %s --test-list %s/novel.json --episodes 7 --devices %s,0:x "
             "2>&1; echo \"exit $?\"",
             FEWCL_BIN, weights, g_dir, g_here);
    char *out = th_capture(cmd);
    print_message("  %s", out);
    assert_non_null(strstr(out, "entry 2 '0:x' is not a P:D index"));
    assert_null(strstr(out, "exit 0"));
    free(out);
}

#define SMALL_FLAGS                                                                                \
    "--image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32 --heads 2 --dim-head 8 "    \
    "--mlp-dim 16"

static double number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number %s", key);
    return v->valuedouble;
}

static cJSON *plan_json(const char *flags) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' plan --json %s " SMALL_FLAGS, FEWCL_BIN, flags);
    char *out = th_capture(cmd);
    cJSON *o = cJSON_Parse(out);
    if (!o) fail_msg("`%s` printed no JSON: %s", cmd, out);
    free(out);
    return o;
}

/* `fewcl plan --devices P:D,P:D [--meta-batch M]`: replica 1 (the trainer's context) is the
 * one-device plan; replica 2 holds a model copy: with M = 1 it only validates (the evaluation
 * plan), with M = 3 its share (fewcl_plan with `replica`, what test_meta_batch checks a run
 * reserves); the device holds the sum of the two. */
static void test_cli_plan_devices(void **state) {
    (void)state;
    char flags[256];
    for (int M = 1; M <= 3; M += 2) {
        snprintf(flags, sizeof flags, "--device %s --meta-batch %d", g_here, M);
        cJSON *one = plan_json(flags);
        double copy_footprint, copy_peak;
        if (M == 1) {
            snprintf(flags, sizeof flags, "--device %s --eval", g_here);
            cJSON *eval = plan_json(flags);
            copy_footprint = number(eval, "footprint_bytes"),
            copy_peak = number(eval, "peak_bytes");
            cJSON_Delete(eval);
        } else {
            fewcl_model_config c;
            fewcl_model_config_default(&c, sizeof c);
            c.image_size = 16, c.n_way = 3, c.k_shot = 2, c.n_query = 2;
            c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
            fewcl_plan_params p;
            fewcl_plan_params_default(&p, sizeof p);
            p.meta_batch = M, p.replica = 1;
            fewcl_plan_result r = {.struct_size = sizeof r};
            TH_OK(fewcl_plan(th_ctx(), &c, &p, &r));
            copy_footprint = (double)r.reserved_bytes, copy_peak = (double)r.peak_bytes;
        }
        snprintf(flags, sizeof flags, "--devices %s --meta-batch %d", here_times(2), M);
        cJSON *two = plan_json(flags);
        const cJSON *reps = cJSON_GetObjectItem(two, "replicas"),
                    *devs = cJSON_GetObjectItem(two, "devices");
        assert_int_equal(cJSON_GetArraySize(reps), 2);
        assert_int_equal(cJSON_GetArraySize(devs), 1);
        const cJSON *trainer = cJSON_GetArrayItem(reps, 0), *copy = cJSON_GetArrayItem(reps, 1);
        assert_true(number(trainer, "footprint_bytes") == number(one, "footprint_bytes"));
        assert_true(number(trainer, "peak_bytes") == number(one, "peak_bytes"));
        assert_true(number(copy, "footprint_bytes") == copy_footprint);
        assert_true(number(copy, "peak_bytes") == copy_peak);
        assert_true(copy_footprint < number(one, "footprint_bytes"));
        const cJSON *dev = cJSON_GetArrayItem(devs, 0);
        print_message("  M = %d: replica 1 %.0f bytes, replica 2 %.0f; the device: %.0f\n", M,
                      number(trainer, "footprint_bytes"), copy_footprint,
                      number(dev, "footprint_bytes"));
        assert_true(number(dev, "replicas") == 2);
        assert_true(number(dev, "footprint_bytes") ==
                    number(one, "footprint_bytes") + copy_footprint);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(dev, "fits")));
        cJSON_Delete(one);
        cJSON_Delete(two);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_lists),
        cmocka_unit_test(test_shard_blocks),
        cmocka_unit_test(test_sharded_evaluation),
        cmocka_unit_test(test_sharded_validation),
        cmocka_unit_test(test_replica_errors),
        cmocka_unit_test(test_atomic_writes_from_two_threads),
        cmocka_unit_test(test_cli_sharded_test),
        cmocka_unit_test(test_cli_plan_devices),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
