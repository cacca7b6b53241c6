/* The public API's second version (FEWCL_API_VERSION 2; 3 adds the meta-batch): what the fewcl
 * tool needed to become a client of the API alone. Settings' names, a config's sizes and
 * differences, a weights file's config, loading for another episode shape, datasets and their
 * episodes (those of fewcl_test), run folders, the epoch metrics' new fields, plan targets,
 * sizes, glyph data and image dimensions; the meta-batch fields. Model: conv4 at 16x16, 3-way
 * 2-shot 2-query, initialised. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fewcl/fewcl.h"
#include "harness.h"

enum { S = 16, N = 3, K = 2, Q = 2, IMG = 3 * S * S };

static char g_dir[64];
static char g_weights[128]; /* initialised weights */
static char g_run[128];     /* a short training run: run/best.safetensors are trained weights */

typedef struct epochs_seen {
    int n;
    fewcl_epoch_metrics last;
} epochs_seen;
static epochs_seen g_seen;
static fewcl_train_result g_trained = {.struct_size = sizeof g_trained};

static void on_epoch(void *user, const fewcl_epoch_metrics *m) {
    epochs_seen *e = user;
    e->n++;
    e->last = *m;
}

static fewcl_model_config small_config(void) { return th_small_public_config(N, K, Q); }

static int setup(void **state) {
    (void)state;
    if (th_glyph_folder(g_dir, sizeof g_dir, "apitool", 4, 1)) return -1;
    fewcl_model_config c = small_config();
    fewcl_model *m;
    if (fewcl_model_create(th_ctx(), &c, 2, &m) != FEWCL_OK) return -1;
    snprintf(g_weights, sizeof g_weights, "%s/w.safetensors", g_dir);
    fewcl_status s = fewcl_model_save(m, g_weights);
    fewcl_model_destroy(m);
    /* A few training episodes (on an open dataset, validation by path): weights whose
     * predictions vary from episode to episode, and a run folder to read back. */
    char base[160], val[160];
    snprintf(g_run, sizeof g_run, "%s/run", g_dir);
    snprintf(base, sizeof base, "%s/demo/base.json", g_dir);
    snprintf(val, sizeof val, "%s/demo/val.json", g_dir);
    fewcl_dataset *train = NULL;
    if (s == FEWCL_OK) s = fewcl_dataset_open(base, NULL, &train);
    fewcl_train_params p;
    fewcl_train_params_default(&p, sizeof p);
    p.model = &c, p.train_dataset = train, p.val_data = val, p.run_dir = g_run;
    p.epochs = 1, p.episodes = 8, p.val_episodes = 1, p.seed = 12345678901ull, p.workers = 1;
    p.cosine_lr = 1, p.lr = 0.002, p.augment = 0;
    p.epoch_done = on_epoch, p.user = &g_seen;
    if (s == FEWCL_OK) s = fewcl_train(th_ctx(), &p, &g_trained);
    fewcl_dataset_destroy(train);
    if (s != FEWCL_OK) fprintf(stderr, "setup: %s\n", fewcl_last_error());
    return s == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) { return th_glyph_teardown(g_dir, state); }

/* The call fails with status `want` and a message that contains `part`. */
static void expect_fail(fewcl_status got, fewcl_status want, const char *part) {
    if (got != want)
        fail_msg("status %s, expected %s (%s)", fewcl_status_name(got), fewcl_status_name(want),
                 fewcl_last_error());
    if (!strstr(fewcl_last_error(), part))
        fail_msg("message \"%s\" lacks \"%s\"", fewcl_last_error(), part);
}

static void test_version(void **state) {
    (void)state;
    assert_int_equal(fewcl_api_version(), 3);
    assert_int_equal(FEWCL_API_VERSION, 3);
}

/* API 3: the meta-batch defaults to one episode per step; 0 is refused naming the field; a run
 * folder's M reads back (1 for setup's run, which did not set it). */
static void test_meta_batch_fields(void **state) {
    (void)state;
    fewcl_train_params tp;
    TH_OK(fewcl_train_params_default(&tp, sizeof tp));
    assert_int_equal(tp.meta_batch, 1);
    fewcl_plan_params pp;
    TH_OK(fewcl_plan_params_default(&pp, sizeof pp));
    assert_int_equal(pp.meta_batch, 1);
    tp.train_data = "unused", tp.run_dir = "unused", tp.meta_batch = 0;
    expect_fail(fewcl_train(th_ctx(), &tp, NULL), FEWCL_ERR_ARGUMENT, "meta_batch 0");
    int M = 0;
    TH_OK(fewcl_run_meta_batch(g_run, &M));
    assert_int_equal(M, 1);
    expect_fail(fewcl_run_meta_batch(g_dir, &M), FEWCL_ERR_IO, "config.json");
}

/* Every value's name parses back to it; the names are the command line's. */
static void test_setting_names(void **state) {
    (void)state;
    static const struct {
        fewcl_setting s;
        int n;
        const char *names[4];
    } all[] = {{FEWCL_SETTING_BACKBONE, 4, {"conv4", "conv6", "resnet18", "resnet34"}},
               {FEWCL_SETTING_METHOD, 2, {"enhanced", "fsct"}},
               {FEWCL_SETTING_VARIANT, 2, {"cosine", "softmax"}},
               {FEWCL_SETTING_MAHALANOBIS, 3, {"auto", "dense", "lowrank"}},
               {FEWCL_SETTING_CHECKPOINTING, 4, {"none", "blocks", "backbone", "all"}},
               {FEWCL_SETTING_LR_SCHEDULE, 2, {"constant", "cosine"}}};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) {
        for (int v = 0; v < all[k].n; v++) {
            assert_string_equal(fewcl_setting_name(all[k].s, v), all[k].names[v]);
            int back = -1;
            TH_OK(fewcl_setting_parse(all[k].s, all[k].names[v], &back));
            assert_int_equal(back, v);
        }
        assert_null(fewcl_setting_name(all[k].s, all[k].n));
        assert_null(fewcl_setting_name(all[k].s, -1));
    }
    assert_int_equal(FEWCL_SETTING_BACKBONE, 0); /* the enums' own values */
    assert_int_equal(FEWCL_RESNET18, 2);
    int v = 99;
    expect_fail(fewcl_setting_parse(FEWCL_SETTING_BACKBONE, "resnet50", &v), FEWCL_ERR_ARGUMENT,
                "'resnet50' is not a backbone (conv4, conv6, resnet18, resnet34)");
    assert_int_equal(v, 99);
    expect_fail(fewcl_setting_parse((fewcl_setting)17, "x", &v), FEWCL_ERR_ARGUMENT, "17");
    assert_null(fewcl_setting_name((fewcl_setting)17, 0));
    expect_fail(fewcl_setting_parse(FEWCL_SETTING_METHOD, NULL, &v), FEWCL_ERR_ARGUMENT, "name");
}

/* D = c·h·w of the backbone's output, D′ the projection's when active. */
static void test_dims_and_diff(void **state) {
    (void)state;
    fewcl_model_config c;
    TH_OK(fewcl_model_config_default(&c, sizeof c)); /* conv4 at 84: 64 x 5 x 5 */
    int D = 0, Dp = 0;
    TH_OK(fewcl_model_config_dims(&c, &D, &Dp));
    assert_int_equal(D, 1600);
    assert_int_equal(Dp, 512);
    c = small_config(); /* 16 px: 64 x 1 x 1, projected to 32 */
    TH_OK(fewcl_model_config_dims(&c, &D, &Dp));
    assert_int_equal(D, 64);
    assert_int_equal(Dp, 32);
    c.reduced_dim = 128; /* above D: no projection */
    TH_OK(fewcl_model_config_dims(&c, NULL, &Dp));
    assert_int_equal(Dp, 64);
    c = small_config();
    TH_OK(fewcl_model_config_set_method(&c, FEWCL_METHOD_FSCT)); /* no projection */
    TH_OK(fewcl_model_config_dims(&c, &D, &Dp));
    assert_int_equal(Dp, D);
    c.image_size = 8;
    assert_int_not_equal(fewcl_model_config_dims(&c, &D, &Dp), FEWCL_OK);

    fewcl_model_config a = small_config(), b = small_config();
    char buf[256] = "x";
    int n = -1;
    b.n_way = 5, b.k_shot = 1, b.checkpointing = FEWCL_CKPT_ALL; /* not the architecture */
    TH_OK(fewcl_model_config_diff(&a, &b, buf, sizeof buf, &n));
    assert_int_equal(n, 0);
    assert_string_equal(buf, "");
    b.backbone = FEWCL_CONV6, b.depth = 3;
    TH_OK(fewcl_model_config_diff(&a, &b, buf, sizeof buf, &n));
    assert_int_equal(n, 2);
    assert_string_equal(buf, "--backbone conv4 vs conv6, --depth 2 vs 3");
    TH_OK(fewcl_model_config_diff(&a, &b, buf, 10, NULL)); /* truncated, terminated */
    assert_int_equal(strlen(buf), 9);
    expect_fail(fewcl_model_config_diff(&a, &b, buf, 0, &n), FEWCL_ERR_ARGUMENT, "cap");
}

static void test_parse_size(void **state) {
    (void)state;
    uint64_t v = 0;
    TH_OK(fewcl_parse_size("1073741824", &v));
    assert_true(v == 1073741824ull);
    TH_OK(fewcl_parse_size("512M", &v));
    assert_true(v == 512ull << 20);
    TH_OK(fewcl_parse_size("8gb", &v));
    assert_true(v == 8ull << 30);
    TH_OK(fewcl_parse_size("1.5GiB", &v));
    assert_true(v == 3ull << 29);
    v = 5;
    expect_fail(fewcl_parse_size("lots", &v), FEWCL_ERR_ARGUMENT, "'lots' is not a size");
    assert_true(v == 5);
}

/* The stored config, and a model loaded for another shape: the same architecture and weights,
 * the asked shape, uniform shot weights reported when the shape is not the trained one. */
static void test_read_config_load_as(void **state) {
    (void)state;
    fewcl_model_config want = small_config(), got;
    TH_OK(fewcl_model_config_default(&got, sizeof got));
    int found = -1;
    TH_OK(fewcl_model_read_config(g_weights, &got, &found));
    assert_int_equal(found, 1);
    char diff[256];
    int n = -1;
    TH_OK(fewcl_model_config_diff(&want, &got, diff, sizeof diff, &n));
    assert_int_equal(n, 0);
    assert_int_equal(got.k_shot, K);
    expect_fail(fewcl_model_read_config("/nonexistent.safetensors", &got, &found), FEWCL_ERR_IO,
                "/nonexistent.safetensors");

    fewcl_context *ctx = th_ctx();
    fewcl_model *same, *one_shot, *plain;
    int uniform = -1;
    fewcl_model_config ask = small_config();
    TH_OK(fewcl_model_load_as(ctx, g_weights, &ask, &same, &uniform));
    assert_int_equal(uniform, 0);
    ask.k_shot = 1, ask.n_query = 3;
    TH_OK(fewcl_model_load_as(ctx, g_weights, &ask, &one_shot, &uniform));
    assert_int_equal(uniform, 1);
    TH_OK(fewcl_model_get_config(one_shot, &got));
    assert_int_equal(got.k_shot, 1);
    assert_int_equal(got.n_query, 3);
    TH_OK(fewcl_model_load(ctx, g_weights, NULL, &plain));
    /* load_as at the trained shape is fewcl_model_load: the same logits, bit for bit */
    float *x = malloc((size_t)N * (K + Q) * IMG * sizeof(float));
    th_random(x, (size_t)N * (K + Q) * IMG, 9, -2.0f, 2.0f);
    fewcl_images sup = {x, N * K, 3, S, S}, qry = {x + N * K * IMG, N * Q, 3, S, S};
    float a[N * Q * N], b[N * Q * N];
    TH_OK(fewcl_classify_episode(same, &sup, N, K, &qry, a, NULL, NULL, NULL));
    TH_OK(fewcl_classify_episode(plain, &sup, N, K, &qry, b, NULL, NULL, NULL));
    assert_memory_equal(a, b, sizeof a);
    free(x);
    fewcl_model_destroy(plain);
    fewcl_model_destroy(one_shot);
    fewcl_model_destroy(same);
    expect_fail(fewcl_model_load_as(ctx, g_weights, NULL, &same, NULL), FEWCL_ERR_ARGUMENT,
                "model config");
    assert_null(same);
}

/* The class folder of an image path (.../<class>/NN.png). */
static void class_of(const char *path, char *out, size_t cap) {
    const char *end = strrchr(path, '/'), *start = end;
    while (start > path && start[-1] != '/')
        start--;
    snprintf(out, cap, "%.*s", (int)(end - start), start);
}

/* Datasets: what they hold, and episodes drawn as fewcl_test draws them: the accuracy of
 * fewcl_test equals, to the last bit, that of fewcl_classify_episode over
 * fewcl_dataset_episode's images prepared by fewcl_image_load. */
static void test_dataset_episodes(void **state) {
    (void)state;
    char path[160];
    snprintf(path, sizeof path, "%s/demo/novel.json", g_dir);
    fewcl_dataset *ds;
    TH_OK(fewcl_dataset_open(path, NULL, &ds));
    fewcl_dataset_info info = {.struct_size = sizeof info};
    TH_OK(fewcl_dataset_get_info(ds, &info));
    assert_true(info.n_classes >= N);
    assert_int_equal(info.n_images, 6 * info.n_classes); /* th_glyph_folder: 6 per class */
    assert_string_equal(info.source, path);
    assert_non_null(fewcl_dataset_image_path(ds, info.n_images - 1));
    assert_null(fewcl_dataset_image_path(ds, info.n_images));
    assert_null(fewcl_dataset_image_path(ds, -1));
    int w = 0, h = 0;
    TH_OK(fewcl_image_dimensions(fewcl_dataset_image_path(ds, 0), &w, &h));
    assert_int_equal(w, S);
    assert_int_equal(h, S);

    enum { E = 6, PER = K + Q };
    int classes[N], images[N * PER], again[N * PER];
    for (int e = 0; e < E; e++) {
        TH_OK(fewcl_dataset_episode(ds, N, K, Q, 11, e, classes, images));
        TH_OK(fewcl_dataset_episode(ds, N, K, Q, 11, e, classes, again));
        assert_memory_equal(images, again, sizeof images); /* a function of (seed, e) */
        for (int c = 0; c < N; c++) {
            char first[64], other[64];
            class_of(fewcl_dataset_image_path(ds, images[c * PER]), first, sizeof first);
            for (int i = 0; i < PER; i++) {
                class_of(fewcl_dataset_image_path(ds, images[c * PER + i]), other, sizeof other);
                assert_string_equal(first, other); /* one class per row */
                for (int j = 0; j < i; j++)
                    assert_int_not_equal(images[c * PER + i], images[c * PER + j]);
            }
            assert_true(classes[c] >= 0 && classes[c] < info.n_classes);
            for (int d = 0; d < c; d++)
                assert_int_not_equal(classes[c], classes[d]);
        }
    }
    TH_OK(fewcl_dataset_episode(ds, N, K, Q, 11, 1, classes, again));
    TH_OK(fewcl_dataset_episode(ds, N, K, Q, 11, 0, classes, images));
    assert_memory_not_equal(images, again, sizeof images);

    /* fewcl_test's accuracy = its episodes through fewcl_classify_episode */
    fewcl_model *m;
    char trained[160];
    snprintf(trained, sizeof trained, "%s/best.safetensors", g_run);
    TH_OK(fewcl_model_load(th_ctx(), trained, NULL, &m));
    fewcl_test_params tp;
    TH_OK(fewcl_test_params_default(&tp, sizeof tp));
    tp.dataset = ds, tp.episodes = E, tp.seed = 11, tp.workers = 1;
    fewcl_test_result tr = {.struct_size = sizeof tr};
    TH_OK(fewcl_test(m, &tp, &tr));
    float *x = malloc((size_t)N * PER * IMG * sizeof(float));
    double acc[E], sum = 0, sq = 0;
    for (int e = 0; e < E; e++) {
        TH_OK(fewcl_dataset_episode(ds, N, K, Q, 11, e, classes, images));
        for (int c = 0; c < N; c++)
            for (int i = 0; i < PER; i++) { /* supports class by class, then the queries */
                size_t at = i < K ? (size_t)c * K + i : (size_t)N * K + c * Q + (i - K);
                TH_OK(fewcl_image_load(fewcl_dataset_image_path(ds, images[c * PER + i]), S,
                                       x + at * IMG));
            }
        fewcl_images sup = {x, N * K, 3, S, S}, qry = {x + N * K * IMG, N * Q, 3, S, S};
        int labels[N * Q], correct = 0;
        TH_OK(fewcl_classify_episode(m, &sup, N, K, &qry, NULL, NULL, labels, NULL));
        for (int q = 0; q < N * Q; q++)
            correct += labels[q] == q / Q;
        acc[e] = 100.0 * correct / (N * Q);
        sum += acc[e];
        printf("episode %d: %d of %d right\n", e, correct, N * Q);
    }
    double mean = sum / E;
    for (int e = 0; e < E; e++)
        sq += (acc[e] - mean) * (acc[e] - mean);
    double ci95 = 1.96 * sqrt(sq / E) / sqrt((double)E); /* as lib/train's fcl_mean_ci95 */
    printf("fewcl_test %.17g ± %.17g; its episodes through enrol + classify %.17g ± %.17g\n",
           tr.accuracy, tr.ci95, mean, ci95);
    assert_true(tr.accuracy == mean);
    assert_true(tr.ci95 == ci95);
    free(x);
    fewcl_model_destroy(m);

    expect_fail(fewcl_dataset_episode(ds, info.n_classes + 1, K, Q, 1, 0, classes, images),
                FEWCL_ERR_ARGUMENT, "");
    expect_fail(fewcl_dataset_episode(ds, N, 5, 2, 1, 0, classes, images), FEWCL_ERR_ARGUMENT, "");
    expect_fail(fewcl_dataset_episode(ds, N, 0, Q, 1, 0, classes, images), FEWCL_ERR_ARGUMENT,
                "k_shot");
    fewcl_dataset_destroy(ds);
    fewcl_dataset_destroy(NULL);
    expect_fail(fewcl_dataset_open("/nonexistent/novel.json", NULL, &ds), FEWCL_ERR_IO,
                "/nonexistent/novel.json");
    assert_null(ds);
    expect_fail(fewcl_image_dimensions("/nonexistent.png", &w, &h), FEWCL_ERR_IO,
                "/nonexistent.png");
}

/* The run folder of setup's training read back: its settings, where it stands; the epoch
 * metrics' new fields. */
static void test_run_folder(void **state) {
    (void)state;
    fewcl_model_config c = small_config();
    assert_int_equal(g_seen.n, 1);
    assert_true(g_seen.last.episodes_per_s > 0);
    assert_true(g_seen.last.device_peak_bytes > 0);
    assert_true(g_seen.last.images_per_s >= 0);
    assert_true(g_trained.last.device_peak_bytes == g_seen.last.device_peak_bytes);
    assert_int_equal(g_trained.last.struct_size, sizeof g_trained.last);
    const char *run = g_run;

    fewcl_run_info info = {.struct_size = sizeof info};
    TH_OK(fewcl_run_read(run, &info));
    assert_int_equal(info.epochs, 1);
    assert_int_equal(info.episodes, 8);
    assert_int_equal(info.val_episodes, 1);
    assert_int_equal(info.augment, 0);
    assert_true(info.lr == 0.002);
    assert_int_equal(info.cosine_lr, 1);
    assert_true(info.seed == 12345678901ull); /* above 2^32: kept whole */
    assert_non_null(strstr(info.train_data, "demo/base.json"));
    assert_non_null(strstr(info.val_data, "demo/val.json"));
    assert_int_equal(info.epochs_done, 1);
    assert_int_equal(info.episodes_done, 0);
    assert_int_equal(info.best_epoch, 1);
    assert_int_equal(info.model.struct_size, sizeof info.model);
    char diff[256];
    int n = -1;
    TH_OK(fewcl_model_config_diff(&c, &info.model, diff, sizeof diff, &n));
    assert_int_equal(n, 0);
    assert_int_equal(info.model.n_way, N);
    /* an older caller's struct: only the fields it knows are written */
    size_t old = offsetof(fewcl_run_info, seed);
    fewcl_run_info small;
    memset(&small, 0x5a, sizeof small);
    small.struct_size = old;
    TH_OK(fewcl_run_read(run, &small));
    assert_int_equal(small.epochs, 1);
    assert_int_equal(small.struct_size, old);
    assert_int_equal(small.epochs_done, 0x5a5a5a5a);
    expect_fail(fewcl_run_read(g_dir, &info), FEWCL_ERR_IO, "config.json");
}

/* What a plan is made against: this device, or one of device_memory bytes; the budget. */
static void test_plan_info(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    const fewcl_device_info *dev = fewcl_context_device(ctx);
    fewcl_model_config c = small_config();
    fewcl_plan_info info = {.struct_size = sizeof info};
    fewcl_plan_params p;
    TH_OK(fewcl_plan_params_default(&p, sizeof p));
    fewcl_plan_result r = {.struct_size = sizeof r};
    p.info = &info, p.budget = 1ull << 40;
    TH_OK(fewcl_plan(ctx, &c, &p, &r));
    assert_true(info.device_memory == dev->global_mem);
    assert_true(info.max_alloc == dev->max_alloc);
    assert_true(info.budget == 1ull << 40);
    assert_int_equal(info.candidates, 1);
    p.device_memory = 1ull << 30, p.budget = 0;
    TH_OK(fewcl_plan(ctx, &c, &p, &r));
    assert_true(info.device_memory == 1ull << 30);
    assert_true(info.max_alloc == 1ull << 28); /* a quarter */
    assert_true(info.budget == 1ull << 30);
    assert_true(r.fits);
    /* max_alloc without device_memory: this device with a smaller largest buffer */
    p.device_memory = 0, p.max_alloc = 4096;
    TH_OK(fewcl_plan(ctx, &c, &p, &r));
    assert_true(info.max_alloc == 4096);
    assert_false(r.fits);
    assert_true(r.reason[0] != 0);
    assert_int_equal(strncmp(info.reason, r.reason, 500), 0); /* the whole of it */
    p.max_alloc = 0, p.fit = 1, p.budget = 1ull << 30;
    TH_OK(fewcl_plan(ctx, &c, &p, &r));
    assert_true(info.candidates >= 1);
    fewcl_plan_info bad = {0};
    p.info = &bad;
    expect_fail(fewcl_plan(ctx, &c, &p, &r), FEWCL_ERR_ARGUMENT, "plan info");
}

/* The demo's glyph data, rendered small. */
static void test_glyphs(void **state) {
    (void)state;
    fewcl_glyph_params p;
    TH_OK(fewcl_glyph_params_default(&p, sizeof p));
    assert_int_equal(p.images_per_class, 20);
    assert_int_equal(p.size, 84);
    char out[160];
    snprintf(out, sizeof out, "%s/glyphs", g_dir);
    p.out_dir = out, p.images_per_class = 1, p.size = 16, p.min_faces = 8;
    fewcl_glyph_summary s = {.struct_size = sizeof s};
    TH_OK(fewcl_glyph_render(&p, &s));
    assert_true(s.faces >= 8);
    assert_true(s.classes[0] > 0 && s.classes[1] > 0 && s.classes[2] > 0);
    assert_int_equal(s.images, s.classes[0] + s.classes[1] + s.classes[2]);
    char path[200];
    snprintf(path, sizeof path, "%s/version", out);
    char *text = th_read_file(path, NULL);
    assert_non_null(text);
    assert_int_equal(atoi(text), fewcl_glyph_data_version());
    free(text);
    snprintf(path, sizeof path, "%s/novel.json", out);
    fewcl_dataset *ds;
    TH_OK(fewcl_dataset_open(path, NULL, &ds));
    fewcl_dataset_destroy(ds);
    p.out_dir = NULL;
    expect_fail(fewcl_glyph_render(&p, NULL), FEWCL_ERR_ARGUMENT, "out_dir");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),          cmocka_unit_test(test_meta_batch_fields),
        cmocka_unit_test(test_setting_names),    cmocka_unit_test(test_dims_and_diff),
        cmocka_unit_test(test_parse_size),       cmocka_unit_test(test_read_config_load_as),
        cmocka_unit_test(test_dataset_episodes), cmocka_unit_test(test_run_folder),
        cmocka_unit_test(test_plan_info),        cmocka_unit_test(test_glyphs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
