/* Training and evaluation (lib/train): checkpoints round-trip exactly (weights, BatchNorm
 * buffers, AdamW moments and step, config); a run stopped mid-epoch (stop request) or killed
 * (SIGKILL, through the fewcl tool) and resumed ends with exactly the metrics and weights of an
 * uninterrupted run; the accuracy interval; the refusals (existing run, nothing to resume,
 * over the memory limit, non-finite loss) with messages that say what to do.
 * Model: conv4 at 16x16 (features 64, projection to 32), 3-way 2-shot 2-query, on a small
 * rendered glyph dataset: episodes take milliseconds. Exact equality is expected where
 * claimed: the same kernels on the same data in the same order give the same bits. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/demo.h"
#include "harness.h"
#include "plan/episode_plan.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static char g_dir[64];
static fcl_dataset *g_base, *g_val;

static fcl_model_config small_config(void) {
    fcl_model_config c = fcl_config_default();
    c.image_size = 16;
    c.n_way = 3, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    return c;
}

#define SMALL_FLAGS                                                                                \
    "--image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32 --heads 2 --dim-head 8 "    \
    "--mlp-dim 16"

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fewcl-train-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    fcl_demo_options o = {
        .out_dir = g_dir, .images_per_class = 6, .size = 16, .min_faces = 8, .seed = 5};
    fcl_demo_summary s;
    char path[128];
    if (fcl_demo_render(&o, &s) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/base.json", g_dir);
    if (fcl_dataset_load_json(path, NULL, &g_base) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/val.json", g_dir);
    return fcl_dataset_load_json(path, NULL, &g_val) == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) {
    fcl_dataset_free(g_base);
    fcl_dataset_free(g_val);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? th_teardown(state) : -1;
}

static fcl_train_options options(const char *run) {
    static char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, run);
    return (fcl_train_options){.cfg = small_config(),
                               .train = g_base,
                               .val = g_val,
                               .run_dir = dir,
                               .epochs = 2,
                               .episodes = 4,
                               .val_episodes = 3,
                               .adam = fcl_adamw_defaults(),
                               .seed = 7,
                               .augment = 1,
                               .data = {.workers = 1, .cache_bytes = 1 << 20}};
}

static void test_mean_ci95(void **state) {
    (void)state;
    double acc[] = {50, 100}, mean, ci;
    fcl_mean_ci95(acc, 2, &mean, &ci);
    /* population σ = 25: 1.96·25/√2 */
    assert_float_equal(mean, 75, 1e-12);
    assert_float_equal(ci, 1.96 * 25 / sqrt(2.0), 1e-12);
}

/* Every tensor of two safetensors files with the same keys is bitwise equal. */
static void assert_same_tensors(const char *a_path, const char *b_path) {
    fcl_safetensors *a, *b;
    TH_OK(fcl_st_load(a_path, &a));
    TH_OK(fcl_st_load(b_path, &b));
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const fcl_st_tensor *ta = &a->tensors[i], *tb = fcl_st_find(b, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->end - ta->begin, tb->end - tb->begin);
        if (memcmp(a->data + ta->begin, b->data + tb->begin, ta->end - ta->begin) != 0)
            fail_msg("%s differs between %s and %s", ta->name, a_path, b_path);
    }
    fcl_st_free(a);
    fcl_st_free(b);
}

static void test_checkpoint_roundtrip(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    fcl_model *m, *back;
    TH_OK(fcl_model_create(ctx, &c, 3, &m));
    int shape[4] = {c.n_way * (c.k_shot + c.n_query), 3, 16, 16};
    fcl_tensor x = {0};
    float *host = malloc((size_t)shape[0] * 3 * 16 * 16 * sizeof *host);
    th_random(host, (size_t)shape[0] * 3 * 16 * 16, 11, -1, 1);
    th_upload(&x, 4, shape, host);
    fcl_adamw_config adam = fcl_adamw_defaults();
    fcl_step_result r;
    for (int i = 0; i < 2; i++)
        TH_OK(fcl_train_step(ctx, m, &x, &adam, &r));
    assert_true(isfinite(r.loss) && r.queries == 6);
    char path[128], again[128];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", g_dir);
    snprintf(again, sizeof again, "%s/ckpt2.safetensors", g_dir);
    TH_OK(fcl_checkpoint_save(ctx, m, 1, "{\"note\":1}", path));
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    fcl_model_config saved;
    int found = 0;
    TH_OK(fcl_checkpoint_config(st, &saved, &found));
    assert_true(found);
    char diff[256];
    assert_int_equal(fcl_config_architecture_diff(&saved, &c, diff, sizeof diff), 0);
    assert_int_equal(saved.n_query, c.n_query);
    char *training = fcl_checkpoint_training(st);
    assert_string_equal(training, "{\"note\":1}");
    free(training);
    /* A different seed, so equality below comes from the load. */
    TH_OK(fcl_model_create(ctx, &c, 99, &back));
    TH_OK(fcl_checkpoint_load(ctx, back, st, 1));
    assert_int_equal(back->params.step, 2);
    TH_OK(fcl_checkpoint_save(ctx, back, 1, "{\"note\":1}", again));
    assert_same_tensors(path, again);
    /* One more step from both gives the same weights: moments and step were restored. */
    TH_OK(fcl_train_step(ctx, m, &x, &adam, &r));
    TH_OK(fcl_train_step(ctx, back, &x, &adam, &r));
    TH_OK(fcl_checkpoint_save(ctx, m, 1, NULL, path));
    TH_OK(fcl_checkpoint_save(ctx, back, 1, NULL, again));
    assert_same_tensors(path, again);
    /* A weights file is not a training checkpoint. */
    fcl_st_free(st);
    TH_OK(fcl_checkpoint_save(ctx, m, 0, NULL, path));
    fcl_model_destroy(ctx, back);
    TH_OK(fcl_model_create(ctx, &c, 99, &back));
    TH_OK(fcl_st_load(path, &st));
    strcpy(st->metadata, "{}"); /* as in a file exported from PyTorch */
    assert_int_equal(fcl_checkpoint_load(ctx, back, st, 1), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "not a training checkpoint"));
    fcl_st_free(st);
    fcl_model_destroy(ctx, back);
    fcl_model_destroy(ctx, m);
    th_free(&x);
    free(host);
}

static void read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* The metrics a resumed run must reproduce: every CSV column up to val_ci95 (the rest are
 * timings and memory). */
static void csv_metrics(const char *path, char *out, size_t cap) {
    char text[8192];
    read_file(path, text, sizeof text);
    out[0] = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = line;
        for (int comma = 0; *p && comma < 8; p++)
            comma += *p == ',';
        strncat(out, line, (size_t)(p - line));
        strncat(out, "\n", cap - strlen(out) - 1);
    }
}

static struct {
    int epoch;
    long done;
    volatile sig_atomic_t flag;
} g_stop_at;

static void stop_when(void *user, const fcl_progress *p) {
    (void)user;
    if (!strcmp(p->phase, "train") && p->epoch == g_stop_at.epoch && p->done == g_stop_at.done)
        g_stop_at.flag = 1;
}

static void test_resume_after_stop(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_train_result whole, part;
    fcl_train_options a = options("whole");
    TH_OK(fcl_train(ctx, &a, &whole));
    assert_int_equal(whole.epochs_done, 2);
    assert_true(whole.last.train_acc >= 0 && !isnan(whole.last.val_acc));
    /* The plan made before training is the device peak training reaches (docs/spec.md §8). */
    assert_int_equal((size_t)whole.last.device_peak, whole.planned_peak);
    /* ... and the run reserved exactly the footprint of the plan's layout (issue 18). */
    const char *exact_buffers = getenv("FEWCL_ARENA_CHUNK"); /* oclgrind: no layouts */
    if (!exact_buffers || !*exact_buffers)
        assert_int_equal(fcl_arena_stats_get(ctx->arena)->peak_reserved, whole.planned_footprint);
    assert_true(whole.planned_footprint >= whole.planned_peak);
    char a_dir[256], a_csv[300], b_csv[300], a_last[300], b_last[300], ma[4096], mb[4096];
    snprintf(a_dir, sizeof a_dir, "%s", a.run_dir);

    /* Stop after episode 3 of epoch 2 (mid-epoch), then resume. */
    fcl_train_options b = options("stopped");
    g_stop_at.epoch = 2, g_stop_at.done = 3, g_stop_at.flag = 0;
    b.progress = stop_when;
    b.stop = &g_stop_at.flag;
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_INTERRUPTED);
    assert_non_null(strstr(fewcl_last_error(), "--resume"));
    g_stop_at.flag = 0, g_stop_at.epoch = 0;
    b.resume = 1;
    TH_OK(fcl_train(ctx, &b, &part));
    assert_int_equal(part.epochs_done, 2);
    snprintf(a_csv, sizeof a_csv, "%s/metrics.csv", a_dir);
    snprintf(b_csv, sizeof b_csv, "%s/metrics.csv", b.run_dir);
    csv_metrics(a_csv, ma, sizeof ma);
    csv_metrics(b_csv, mb, sizeof mb);
    assert_string_equal(ma, mb);
    snprintf(a_last, sizeof a_last, "%s/best.safetensors", a_dir);
    snprintf(b_last, sizeof b_last, "%s/best.safetensors", b.run_dir);
    assert_same_tensors(a_last, b_last);
    snprintf(a_last, sizeof a_last, "%s/last.safetensors", a_dir);
    snprintf(b_last, sizeof b_last, "%s/last.safetensors", b.run_dir);
    assert_same_tensors(a_last, b_last);

    /* Training longer continues from the finished run; a second fresh run into the same
     * folder is refused and changes nothing. */
    b.epochs = 3;
    TH_OK(fcl_train(ctx, &b, &part));
    assert_int_equal(part.epochs_done, 3);
    b.resume = 0;
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "--resume"));
    /* Resuming with other flags is refused, naming them. */
    b.resume = 1, b.cfg.k_shot = 3;
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "3-way 2-shot"));

    fcl_train_options c = options("never-ran");
    c.resume = 1;
    assert_int_equal(fcl_train(ctx, &c, &part), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "nothing to resume"));
}

/* A resumed run follows the layout a fresh run plans (issue 18): on a device limited to
 * exactly the planned footprint, a run stopped mid-epoch and resumed (AdamW moments read back
 * from the checkpoint) reserves exactly that footprint, every allocation where planned, and
 * peaks at the planned peak. */
static void test_resume_follows_the_plan(void **state) {
    (void)state;
    fcl_train_options b = options("resumed-at-the-footprint");
    fcl_arena_stats plan;
    TH_OK(fcl_episode_plan(th_ctx(), &b.cfg, 1, 0, &plan));
    char limit[32];
    snprintf(limit, sizeof limit, "%zu", plan.peak_reserved);
    setenv("FEWCL_MEM_LIMIT", limit, 1);
    fewcl_context *ctx;
    fewcl_status s = fewcl_context_create(getenv("FEWCL_DEVICE"), &ctx);
    unsetenv("FEWCL_MEM_LIMIT");
    TH_OK(s);
    fcl_train_result r;
    g_stop_at.epoch = 1, g_stop_at.done = 2, g_stop_at.flag = 0;
    b.progress = stop_when;
    b.stop = &g_stop_at.flag;
    assert_int_equal(fcl_train(ctx, &b, &r), FEWCL_ERR_INTERRUPTED);
    g_stop_at.flag = 0, g_stop_at.epoch = 0;
    b.resume = 1;
    fcl_arena_stats start = *fcl_arena_stats_get(ctx->arena);
    TH_OK(fcl_train(ctx, &b, &r));
    const fcl_arena_stats *a = fcl_arena_stats_get(ctx->arena);
    print_message("  planned peak %zu, footprint %zu (the limit); resumed: peak %.0f, reserved "
                  "%zu, %ld of %ld allocations where planned\n",
                  r.planned_peak, r.planned_footprint, r.last.device_peak, a->peak_reserved,
                  a->followed - start.followed, a->allocations - start.allocations);
    assert_int_equal(r.epochs_done, 2);
    assert_int_equal(r.planned_footprint, plan.peak_reserved);
    assert_int_equal((size_t)r.last.device_peak, r.planned_peak);
    if (fcl_arena_follows_layouts(ctx->arena)) {
        assert_int_equal(a->peak_reserved, r.planned_footprint);
        assert_int_equal(a->followed - start.followed, a->allocations - start.allocations);
    }
    fewcl_context_destroy(ctx);
}

/* The schedules' values: constant is lr everywhere; cosine starts at lr, is lr/2 half-way,
 * falls strictly and ends within (π/total)²/4 of 0 (1 − cos x ≤ x²/2). */
static void test_lr_schedule_values(void **state) {
    (void)state;
    const long total = 800;
    for (long i = 0; i < total; i += 37)
        assert_true(fcl_lr_at(FCL_LR_CONSTANT, 1e-3, i, total) == 1e-3);
    assert_true(fcl_lr_at(FCL_LR_COSINE, 1e-3, 0, total) == 1e-3);
    assert_true(fabs(fcl_lr_at(FCL_LR_COSINE, 1e-3, total / 2, total) - 5e-4) < 1e-18);
    assert_true(fabs(fcl_lr_at(FCL_LR_COSINE, 1e-3, total / 4, total) -
                     1e-3 * (1 + sqrt(0.5)) / 2) < 1e-18);
    double last = fcl_lr_at(FCL_LR_COSINE, 1e-3, total - 1, total);
    assert_true(last > 0 &&
                last <= 1e-3 * 0.25 * (3.1415927 / total) * (3.1415927 / total) * 1.0001);
    for (long i = 1; i < total; i++)
        assert_true(fcl_lr_at(FCL_LR_COSINE, 1e-3, i, total) <
                    fcl_lr_at(FCL_LR_COSINE, 1e-3, i - 1, total));
    fcl_lr_schedule s = FCL_LR_CONSTANT;
    assert_int_equal(fcl_lr_schedule_parse("cosine", &s), 0);
    assert_int_equal(s, FCL_LR_COSINE);
    assert_string_equal(fcl_lr_schedule_name(s), "cosine");
    assert_int_equal(fcl_lr_schedule_parse("constant", &s), 0);
    assert_string_equal(fcl_lr_schedule_name(s), "constant");
    assert_int_equal(fcl_lr_schedule_parse("Cosine", &s), -1);
}

/* The trainer gives episode e (counted over the whole run) the rate fcl_lr_at(e): a cosine
 * run of 2 epochs x 1 episode (rates lr, lr/2 — cos(π/2) rounds away in 1 + cos) ends with
 * the weights and moments of a constant-rate run whose second epoch is resumed at lr/2.
 * A cosine run stopped mid-epoch and resumed ends exactly as an uninterrupted one, and
 * resuming it with another schedule or run length is refused. */
static void test_lr_schedule_training(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_train_result r;
    char a_last[300], b_last[300];
    fcl_train_options a = options("cosine-2x1");
    a.epochs = 2, a.episodes = 1, a.lr_schedule = FCL_LR_COSINE;
    TH_OK(fcl_train(ctx, &a, &r));
    snprintf(a_last, sizeof a_last, "%s/last.safetensors", a.run_dir);
    fcl_train_options b = options("constant-then-half");
    b.epochs = 1, b.episodes = 1;
    TH_OK(fcl_train(ctx, &b, &r));
    b.epochs = 2, b.resume = 1, b.adam.lr = a.adam.lr / 2;
    TH_OK(fcl_train(ctx, &b, &r));
    snprintf(b_last, sizeof b_last, "%s/last.safetensors", b.run_dir);
    assert_same_tensors(a_last, b_last);

    fcl_train_options w = options("cosine-whole");
    w.lr_schedule = FCL_LR_COSINE;
    TH_OK(fcl_train(ctx, &w, &r));
    fcl_train_options p = options("cosine-stopped");
    p.lr_schedule = FCL_LR_COSINE;
    g_stop_at.epoch = 1, g_stop_at.done = 2, g_stop_at.flag = 0;
    p.progress = stop_when;
    p.stop = &g_stop_at.flag;
    assert_int_equal(fcl_train(ctx, &p, &r), FEWCL_ERR_INTERRUPTED);
    g_stop_at.flag = 0, g_stop_at.epoch = 0;
    /* The schedule and its length are the run's: other values are refused, naming them. */
    p.resume = 1, p.lr_schedule = FCL_LR_CONSTANT;
    assert_int_equal(fcl_train(ctx, &p, &r), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "--lr-schedule cosine over 2 epochs"));
    p.lr_schedule = FCL_LR_COSINE, p.epochs = 3;
    assert_int_equal(fcl_train(ctx, &p, &r), FEWCL_ERR_ARGUMENT);
    p.epochs = 2;
    TH_OK(fcl_train(ctx, &p, &r));
    char ma[4096], mb[4096], a_csv[300], b_csv[300];
    snprintf(a_csv, sizeof a_csv, "%s/metrics.csv", w.run_dir);
    snprintf(b_csv, sizeof b_csv, "%s/metrics.csv", p.run_dir);
    csv_metrics(a_csv, ma, sizeof ma);
    csv_metrics(b_csv, mb, sizeof mb);
    assert_string_equal(ma, mb);
    snprintf(a_last, sizeof a_last, "%s/last.safetensors", w.run_dir);
    snprintf(b_last, sizeof b_last, "%s/last.safetensors", p.run_dir);
    assert_same_tensors(a_last, b_last);
    /* config.json names the schedule. */
    char cfg[300], text[8192];
    snprintf(cfg, sizeof cfg, "%s/config.json", w.run_dir);
    read_file(cfg, text, sizeof text);
    assert_non_null(strstr(text, "\"lr_schedule\":\t\"cosine\""));
}

static void test_evaluate(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 3, &m));
    fcl_eval_options o = {.data = g_val, .episodes = 5, .seed = 2, .io = {.workers = 2}};
    fcl_eval_result r1, r2;
    TH_OK(fcl_evaluate(ctx, m, &o, &r1));
    o.io.workers = 0;
    TH_OK(fcl_evaluate(ctx, m, &o, &r2));
    assert_int_equal(r1.episodes, 5);
    assert_true(r1.accuracy >= 0 && r1.accuracy <= 100 && r1.ci95 >= 0);
    assert_true(r1.accuracy == r2.accuracy && r1.ci95 == r2.ci95); /* same episodes */
    /* Shares [0,2) and [2,5) evaluate the same episodes as the whole run: their accuracies,
     * joined in episode order, give its mean and CI exactly (sharded evaluation rests on it). */
    double whole[5], parts[5], mean, ci95;
    o.accuracies = whole;
    TH_OK(fcl_evaluate(ctx, m, &o, &r2));
    o.accuracies = parts, o.episodes = 2;
    TH_OK(fcl_evaluate(ctx, m, &o, &r2));
    o.accuracies = parts + 2, o.first = 2, o.episodes = 3;
    TH_OK(fcl_evaluate(ctx, m, &o, &r2));
    assert_memory_equal(whole, parts, sizeof whole);
    fcl_mean_ci95(parts, 5, &mean, &ci95);
    assert_true(mean == r1.accuracy && ci95 == r1.ci95);
    o.first = -1;
    assert_int_equal(fcl_evaluate(ctx, m, &o, &r1), FEWCL_ERR_ARGUMENT);
    o.first = 0, o.accuracies = NULL;
    o.episodes = 0;
    assert_int_equal(fcl_evaluate(ctx, m, &o, &r1), FEWCL_ERR_ARGUMENT);
    fcl_model_destroy(ctx, m);
}

/* The model's weights and buffers, downloaded in order into one array (*n floats). */
static float *model_values(fewcl_context *ctx, fcl_model *m, size_t *n) {
    *n = 0;
    for (int i = 0; i < m->params.n; i++)
        *n += m->params.items[i].value.numel;
    float *all = malloc(*n * sizeof *all), *at = all;
    assert_non_null(all);
    for (int i = 0; i < m->params.n; i++) {
        TH_OK(fcl_tensor_download(ctx, &m->params.items[i].value, at));
        at += m->params.items[i].value.numel;
    }
    return all;
}

/* Evaluation follows its plan as the trainer does (issue 18): with the model all the context
 * holds, fcl_evaluate moves it to where the plan puts it, reserves exactly the planned
 * footprint, peaks at the planned peak and places every allocation where planned; the weights
 * and the accuracies are those of an evaluation that did not follow (another tensor live). */
static void test_evaluate_follows_its_plan(void **state) {
    (void)state;
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(getenv("FEWCL_DEVICE"), &ctx));
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 3, &m));
    double online[3], followed[3];
    fcl_eval_options o = {.data = g_val, .episodes = 3, .seed = 2, .io = {.workers = 1}};
    fcl_eval_result r;
    fcl_tensor other;
    TH_OK(fcl_tensor_alloc1(ctx, &other, FCL_MEM_ACTIVATION, 1));
    o.accuracies = online;
    TH_OK(fcl_evaluate(ctx, m, &o, &r)); /* not alone: first fit, as before */
    fcl_tensor_free(ctx, &other);
    size_t n;
    float *before = model_values(ctx, m, &n);
    fcl_arena_reset_peak(ctx->arena);
    fcl_arena_stats start = *fcl_arena_stats_get(ctx->arena);
    o.accuracies = followed;
    TH_OK(fcl_evaluate(ctx, m, &o, &r));
    const fcl_arena_stats *s = fcl_arena_stats_get(ctx->arena);
    print_message("  planned peak %zu, footprint %zu; measured peak %zu, reserved %zu, %ld of "
                  "%ld allocations where planned\n",
                  r.planned_peak, r.planned_footprint, s->peak, s->reserved,
                  s->followed - start.followed, s->allocations - start.allocations);
    assert_true(r.planned_peak > 0 && r.planned_footprint >= r.planned_peak);
    assert_int_equal(s->peak, r.planned_peak);
    if (fcl_arena_follows_layouts(ctx->arena)) {
        assert_int_equal(s->reserved, r.planned_footprint);
        assert_int_equal(s->followed - start.followed, s->allocations - start.allocations);
    }
    float *after = model_values(ctx, m, &n);
    assert_memory_equal(before, after, n * sizeof *after);
    assert_memory_equal(online, followed, sizeof online);
    free(before), free(after);
    fcl_model_destroy(ctx, m);
    fewcl_context_destroy(ctx);
}

/* A NaN in the initial weights makes the first loss NaN: the run stops naming the episode,
 * with no checkpoint written over anything. */
static void test_non_finite_loss_stops(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 3, &m));
    fcl_param *p = fcl_params_find(&m->params, "proto_weight");
    assert_non_null(p);
    float *w = th_download(&p->value);
    w[0] = NAN;
    TH_OK(fcl_tensor_upload(ctx, &p->value, w));
    free(w);
    char path[128];
    snprintf(path, sizeof path, "%s/nan.safetensors", g_dir);
    TH_OK(fcl_checkpoint_save(ctx, m, 0, NULL, path));
    fcl_model_destroy(ctx, m);
    fcl_train_options o = options("nan");
    o.init_weights = path;
    fcl_train_result r;
    assert_int_equal(fcl_train(ctx, &o, &r), FEWCL_ERR_NUMERIC);
    assert_non_null(strstr(fewcl_last_error(), "epoch 1, episode 1"));
    char last[300];
    snprintf(last, sizeof last, "%s/last.safetensors", o.run_dir);
    assert_int_equal(access(last, F_OK), -1);
}

/* --backbone-weights: the backbone starts from a state_dict in its own layout (no "feature."
 * prefix, as torchvision writes it). With lr 0 (AdamW then changes nothing: the decay is
 * lr·wd) the trained backbone is exactly the file. */
static void test_backbone_weights_initialise(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    fcl_model *donor;
    TH_OK(fcl_model_create(ctx, &c, 42, &donor));
    fcl_st_writer *w = fcl_st_writer_new();
    for (int i = 0; i < donor->params.n; i++) {
        const fcl_param *p = &donor->params.items[i];
        if (!strncmp(p->name, "feature.", 8))
            TH_OK(fcl_st_writer_add_tensor(ctx, w, p->name + 8, &p->value));
    }
    char path[128], best[300];
    snprintf(path, sizeof path, "%s/backbone.safetensors", g_dir);
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    fcl_train_options o = options("from-backbone");
    o.epochs = 1, o.episodes = 1, o.adam.lr = 0;
    o.backbone_weights = path;
    fcl_train_result r;
    TH_OK(fcl_train(ctx, &o, &r));
    snprintf(best, sizeof best, "%s/best.safetensors", o.run_dir);
    fcl_safetensors *got, *want;
    TH_OK(fcl_st_load(best, &got));
    TH_OK(fcl_st_load(path, &want));
    int compared = 0;
    for (int i = 0; i < want->n; i++) {
        const fcl_st_tensor *tw = &want->tensors[i];
        char key[160];
        snprintf(key, sizeof key, "feature.%s", tw->name);
        const fcl_st_tensor *tg = fcl_st_find(got, key);
        assert_non_null(tg);
        if (strstr(key, "running_")) continue; /* BatchNorm statistics move in training */
        assert_memory_equal(got->data + tg->begin, want->data + tw->begin, tw->end - tw->begin);
        compared++;
    }
    assert_true(compared >= 12); /* conv4: 4 x (conv weight, bias, BN weight, bias) */
    fcl_st_free(got);
    fcl_st_free(want);
    fcl_model_destroy(ctx, donor);
}

/* Over FEWCL_MEM_LIMIT the run is refused by the plan, before the run folder exists. */
static void test_refused_by_plan(void **state) {
    (void)state;
    setenv("FEWCL_MEM_LIMIT", "2M", 1);
    fewcl_context *ctx;
    fewcl_status s = fewcl_context_create(getenv("FEWCL_DEVICE"), &ctx);
    unsetenv("FEWCL_MEM_LIMIT");
    TH_OK(s);
    fcl_train_options o = options("too-big");
    fcl_train_result r;
    assert_int_equal(fcl_train(ctx, &o, &r), FEWCL_ERR_OUT_OF_MEMORY);
    assert_non_null(strstr(fewcl_last_error(), "fewcl plan --fit"));
    assert_int_equal(access(o.run_dir, F_OK), -1);
    fewcl_context_destroy(ctx);
}

static int run(const char *cmd) {
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last number of the last line of a metrics.csv: the epoch's device peak, bytes. */
static double csv_last_device_peak(const char *path) {
    char text[8192];
    read_file(path, text, sizeof text);
    char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
        *--end = 0;
    char *comma = strrchr(text, ',');
    return comma ? atof(comma + 1) : -1;
}

/* A number from the JSON `fewcl plan --json` printed: "key":<value>. */
static double json_number(const char *path, const char *key) {
    char text[16384], pattern[64];
    read_file(path, text, sizeof text);
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    char *p = strstr(text, pattern);
    return p ? atof(p + strlen(pattern)) : -1;
}

/* Through the tool on the defaults (conv4 84x84, 5-way 5-shot 16-query; issue 18): the device
 * peak of a training epoch with validation equals `fewcl plan`'s, to the byte. */
static void test_defaults_train_peak_is_the_plan(void **state) {
    (void)state;
    if (th_small()) skip(); /* a whole 84x84 episode: minutes under oclgrind */
    char cmd[2048], csv[300], json[300];
    /* 5 classes of 24 images (each rendered glyph four times): enough for 5 + 16 per class. */
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p d84 && for c in $(ls images/latin_upper | head -5); do "
             "mkdir -p d84/$c && for f in images/latin_upper/$c/*.png; do for k in 1 2 3 4; do "
             "cp $f d84/$c/${k}_$(basename $f); done; done; done",
             g_dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "cd %s && '%s' train --train-list d84 --val-list d84 --run-dir defaults --epochs 1 "
             "--episodes 2 --val-episodes 1 --workers 1 --quiet > /dev/null && '%s' plan --json "
             "> defaults/plan.json",
             g_dir, FEWCL_BIN, FEWCL_BIN);
    assert_int_equal(run(cmd), 0);
    snprintf(csv, sizeof csv, "%s/defaults/metrics.csv", g_dir);
    snprintf(json, sizeof json, "%s/defaults/plan.json", g_dir);
    double measured = csv_last_device_peak(csv), planned = json_number(json, "peak_bytes");
    print_message("  defaults: planned peak %.0f bytes, footprint %.0f; trained peak %.0f\n",
                  planned, json_number(json, "footprint_bytes"), measured);
    assert_true(planned > 0);
    assert_true(measured == planned);
}

/* The tool killed with SIGKILL right after its first checkpoint (during epoch 2), then
 * resumed, ends with the metrics of an uninterrupted run. */
static void test_sigkill_and_resume(void **state) {
    (void)state;
    char common[1024], cmd[2048], a_csv[300], b_csv[300], last[300], ma[4096], mb[4096];
    snprintf(common, sizeof common,
             "--train-list %s/base.json --val-list %s/val.json --epochs 3 --episodes 6 "
             "--val-episodes 2 --seed 4 --workers 1 --quiet " SMALL_FLAGS,
             g_dir, g_dir);
    snprintf(cmd, sizeof cmd, "'%s' train --run-dir %s/cli-whole %s > /dev/null", FEWCL_BIN, g_dir,
             common);
    assert_int_equal(run(cmd), 0);
    snprintf(last, sizeof last, "%s/cli-killed/last.safetensors", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        snprintf(cmd, sizeof cmd, "exec '%s' train --run-dir %s/cli-killed %s > /dev/null",
                 FEWCL_BIN, g_dir, common);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    while (access(last, F_OK) != 0) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) fail_msg("training ended before the kill");
        usleep(2000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    snprintf(cmd, sizeof cmd, "'%s' train --run-dir %s/cli-killed --resume %s > /dev/null",
             FEWCL_BIN, g_dir, common);
    assert_int_equal(run(cmd), 0);
    snprintf(a_csv, sizeof a_csv, "%s/cli-whole/metrics.csv", g_dir);
    snprintf(b_csv, sizeof b_csv, "%s/cli-killed/metrics.csv", g_dir);
    csv_metrics(a_csv, ma, sizeof ma);
    csv_metrics(b_csv, mb, sizeof mb);
    assert_string_equal(ma, mb);
    /* Each run records its convolutions' algorithms: every direction of a training step, each
     * line "key<TAB>algorithm<TAB>how" (the tests' FEWCL_FIND=off: the heuristic); the
     * resumed run met the same shapes and wrote the same file. */
    char ca[8192], cb[8192];
    snprintf(a_csv, sizeof a_csv, "%s/cli-whole/conv-algorithms.txt", g_dir);
    snprintf(b_csv, sizeof b_csv, "%s/cli-killed/conv-algorithms.txt", g_dir);
    read_file(a_csv, ca, sizeof ca);
    read_file(b_csv, cb, sizeof cb);
    assert_string_equal(ca, cb);
    int lines = 0;
    for (char *l = strchr(ca, '\n'); l && l[1]; l = strchr(l + 1, '\n'), lines++) {
        char *tab1 = strchr(l + 1, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        assert_non_null(tab2);
        assert_true(tab2 < strchr(l + 1, '\n'));
        assert_int_equal(strncmp(tab2 + 1, "heuristic", 9), 0);
    }
    print_message("  conv-algorithms.txt: %d convolutions\n", lines);
    assert_non_null(strstr(ca, " forward "));
    assert_non_null(strstr(ca, " data "));
    assert_non_null(strstr(ca, " weights "));
    /* The test command reads the config from the checkpoint and refuses contradicting flags. */
    snprintf(cmd, sizeof cmd,
             "'%s' test --weights %s/cli-whole/best.safetensors --test-list %s/novel.json "
             "--episodes 4 --n-way 3 --k-shot 2 --n-query 2 --quiet > /dev/null",
             FEWCL_BIN, g_dir, g_dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' test --weights %s/cli-whole/best.safetensors --test-list %s/novel.json "
             "--n-way 3 --k-shot 2 --n-query 2 --reduced-dim 64 2> /dev/null",
             FEWCL_BIN, g_dir, g_dir);
    assert_int_equal(run(cmd), 2);
}

/* Ctrl-C (SIGINT) once the run has started: the tool finishes the episode, saves a
 * checkpoint, says how to resume and exits 130 (128 + SIGINT, not a failure); resuming with
 * the run folder alone (its config.json holds the rest) ends like an uninterrupted run. */
static void test_sigint_saves_and_resumes(void **state) {
    (void)state;
    char common[1024], cmd[2048], config[300], err[300], text[4096], a_csv[300], b_csv[300];
    char ma[4096], mb[4096];
    snprintf(common, sizeof common,
             "--train-list %s/base.json --val-list %s/val.json --epochs 3 --episodes 6 "
             "--val-episodes 2 --seed 4 --workers 1 --quiet " SMALL_FLAGS,
             g_dir, g_dir);
    snprintf(config, sizeof config, "%s/cli-int/config.json", g_dir);
    snprintf(err, sizeof err, "%s/cli-int.err", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        snprintf(cmd, sizeof cmd, "exec '%s' train --run-dir %s/cli-int %s > /dev/null 2> %s",
                 FEWCL_BIN, g_dir, common, err);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    while (access(config, F_OK) != 0) /* written once the plan has passed */
        usleep(1000);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGINT);
    read_file(err, text, sizeof text);
    assert_non_null(strstr(text, "interrupted"));
    assert_non_null(strstr(text, "--resume"));
    snprintf(cmd, sizeof cmd, "'%s' train --run-dir %s/cli-int --resume --quiet > /dev/null",
             FEWCL_BIN, g_dir);
    assert_int_equal(run(cmd), 0);
    snprintf(a_csv, sizeof a_csv, "%s/cli-whole/metrics.csv", g_dir);
    snprintf(b_csv, sizeof b_csv, "%s/cli-int/metrics.csv", g_dir);
    csv_metrics(a_csv, ma, sizeof ma);
    csv_metrics(b_csv, mb, sizeof mb);
    assert_string_equal(ma, mb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_ci95),
        cmocka_unit_test(test_checkpoint_roundtrip),
        cmocka_unit_test(test_evaluate),
        cmocka_unit_test(test_evaluate_follows_its_plan),
        cmocka_unit_test(test_resume_follows_the_plan),
        cmocka_unit_test(test_resume_after_stop),
        cmocka_unit_test(test_lr_schedule_values),
        cmocka_unit_test(test_lr_schedule_training),
        cmocka_unit_test(test_non_finite_loss_stops),
        cmocka_unit_test(test_backbone_weights_initialise),
        cmocka_unit_test(test_refused_by_plan),
        cmocka_unit_test(test_defaults_train_peak_is_the_plan),
        cmocka_unit_test(test_sigkill_and_resume),
        cmocka_unit_test(test_sigint_saves_and_resumes), /* after: uses cli-whole */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
