/* Training jobs (see train_report.h). */
#include "train_report.h"

#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint_open.h"
#include "cli.h"
#include "data/image.h"
#include "io/atomic_file.h"
#include "plan/episode_plan.h"

void train_job_init(train_job *j) {
    *j = (train_job){0};
    j->opt.cfg = fcl_config_default();
    j->opt.epochs = 50;
    j->opt.episodes = 200;
    j->opt.val_episodes = 200;
    j->opt.adam = fcl_adamw_defaults();
    j->opt.seed = 1;
    j->opt.augment = 1;
    j->cmd = "train";
}

cJSON *test_result_json(const fcl_eval_result *r, const char *split, const char *weights,
                        const fcl_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
    cJSON_AddNumberToObject(o, "ci95", r->ci95);
    cJSON_AddNumberToObject(o, "episodes", r->episodes);
    cJSON_AddStringToObject(o, "split", split);
    cJSON_AddStringToObject(o, "weights", weights);
    cJSON_AddNumberToObject(o, "n_way", c->n_way);
    cJSON_AddNumberToObject(o, "k_shot", c->k_shot);
    cJSON_AddNumberToObject(o, "n_query", c->n_query);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    return o;
}

void save_test_result(const char *cmd, const char *weights, const char *split,
                      const cJSON *result) {
    char dir[4096], base[4096], path[8400];
    snprintf(dir, sizeof dir, "%s", weights);
    snprintf(base, sizeof base, "%s", weights);
    char *d = dirname(dir), *stem = basename(base), *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    struct stat sb;
    snprintf(path, sizeof path, "%s/config.json", d);
    if (stat(path, &sb) != 0) return;
    const cJSON *episodes = cJSON_GetObjectItemCaseSensitive(result, "episodes");
    const cJSON *way = cJSON_GetObjectItemCaseSensitive(result, "n_way");
    const cJSON *shot = cJSON_GetObjectItemCaseSensitive(result, "k_shot");
    snprintf(path, sizeof path, "%s/test_%s_%s_%dw%ds_%d.json", d, split, stem,
             cJSON_IsNumber(way) ? way->valueint : 0, cJSON_IsNumber(shot) ? shot->valueint : 0,
             cJSON_IsNumber(episodes) ? episodes->valueint : 0);
    char *text = cJSON_Print(result);
    if (text && fcl_atomic_write_text(path, text) != FEWCL_OK)
        fprintf(stderr, "fewcl %s: warning: %s\n", cmd, fewcl_last_error());
    else if (text)
        fprintf(stderr, "fewcl %s: result saved in %s\n", cmd, path);
    free(text);
}

void print_test_result(const char *what, const fcl_eval_result *r) {
    printf("%s: %d episodes: %.2f%% ± %.2f%% (95%% CI) in %.1f s\n", what, r->episodes, r->accuracy,
           r->ci95, r->seconds);
}

/* The trainer has one user pointer, the job; progress lives inside it. */
static void on_progress(void *user, const fcl_progress *p) {
    train_job *j = user;
    progress_update(&j->progress, p);
}

static void on_epoch(void *user, const fcl_epoch_metrics *m) {
    train_job *j = user;
    progress_break(&j->progress);
    if (j->json) return;
    char val[64] = "", mem[32];
    if (!isnan(m->val_acc))
        snprintf(val, sizeof val, " val %.2f%% ± %.2f%%", m->val_acc, m->val_ci95);
    printf("epoch %3d/%d  loss %.4f (ce %.4f var %.4f cov %.4f)  train %.2f%%%s  %.2f ep/s  "
           "(loader %.0f img/s)  %.0f s  device peak %s\n",
           m->epoch, j->opt.epochs, m->loss, m->loss_ce, m->loss_var, m->loss_cov, m->train_acc,
           val, m->episodes_per_s, m->images_per_s, m->seconds,
           cli_bytes(m->device_peak, mem, sizeof mem));
    fflush(stdout);
}

static void print_json(const train_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run_dir", j->opt.run_dir);
    cJSON_AddNumberToObject(o, "epochs", j->result.epochs_done);
    cJSON_AddNumberToObject(o, "best_epoch", j->result.best_epoch);
    if (!isnan(j->result.best_val_acc))
        cJSON_AddNumberToObject(o, "best_val_acc", j->result.best_val_acc);
    cJSON_AddNumberToObject(o, "planned_peak_bytes", (double)j->result.planned_peak);
    if (j->result.epochs_done)
        cJSON_AddItemToObject(o, "final", fcl_epoch_metrics_json(&j->result.last));
    if (j->test.episodes) {
        cJSON *t = cJSON_AddObjectToObject(o, "test");
        cJSON_AddNumberToObject(t, "accuracy", j->test.accuracy);
        cJSON_AddNumberToObject(t, "ci95", j->test.ci95);
        cJSON_AddNumberToObject(t, "episodes", j->test.episodes);
    }
    char *text = cJSON_PrintUnformatted(o);
    if (text) puts(text);
    free(text);
    cJSON_Delete(o);
}

/* The memory plan of one training episode, before anything is allocated (a configuration
 * that does not fit is refused by fcl_train with the planner's message). */
static void print_plan(fewcl_context *ctx, const fcl_model_config *cfg) {
    fcl_arena_stats st;
    if (fcl_episode_plan(ctx, cfg, 1, fcl_arena_limit(ctx->arena), &st) != FEWCL_OK) return;
    char b[FCL_MEM_CATEGORIES + 2][32];
    printf("memory plan of a training episode: peak %s of %s", cli_bytes((double)st.peak, b[0], 32),
           cli_bytes((double)fcl_arena_limit(ctx->arena), b[1], 32));
    for (int k = 0; k < FCL_MEM_CATEGORIES; k++)
        printf("%s%s %s", k ? ", " : " (", fcl_mem_category_name((fcl_mem_category)k),
               cli_bytes((double)st.by_category_at_peak[k], b[k + 2], 32));
    printf(" at the peak)\n");
}

/* Tests run_dir/best.safetensors on the novel split. */
static fewcl_status run_test(fewcl_context *ctx, train_job *j, const fcl_dataset *novel) {
    char path[4200];
    snprintf(path, sizeof path, "%s/best.safetensors", j->opt.run_dir);
    fcl_model *m;
    FCL_TRY(open_trained_model(ctx, path, &j->opt.cfg, &m));
    fcl_eval_options eo = {.data = novel,
                           .episodes = j->test_episodes,
                           .seed = j->opt.seed,
                           .io = j->opt.data,
                           .progress = progress_update,
                           .user = &j->progress,
                           .stop = &g_stop_requested};
    fewcl_status s = fcl_evaluate(ctx, m, &eo, &j->test);
    progress_break(&j->progress);
    if (s == FEWCL_OK) {
        cJSON *o = test_result_json(&j->test, "novel", path, &j->opt.cfg);
        save_test_result(j->cmd, path, "novel", o);
        cJSON_Delete(o);
    }
    fcl_model_destroy(ctx, m);
    return s;
}

int job_flag(int code, const char *arg, train_job *j) {
    long v;
    switch (code - JOB_FLAG_BASE) {
    case 0:
        if (parse_count(j->cmd, "epochs", arg, 1, &v)) return -1;
        j->opt.epochs = (int)v;
        return 1;
    case 1:
        if (parse_count(j->cmd, "episodes", arg, 1, &v)) return -1;
        j->opt.episodes = (int)v;
        return 1;
    case 2:
        if (parse_count(j->cmd, "test-episodes", arg, 0, &v)) return -1;
        j->test_episodes = (int)v;
        return 1;
    case 3:
        if (parse_count(j->cmd, "seed", arg, 0, &v)) return -1;
        j->opt.seed = (uint64_t)v;
        return 1;
    case 4: j->device = arg; return 1;
    case 5: j->quiet = 1; return 1;
    case 6: j->json = 1; return 1;
    case 7: return parse_real(j->cmd, "lr", arg, &j->opt.adam.lr) ? -1 : 1;
    case 8:
        if (fcl_lr_schedule_parse(arg, &j->opt.lr_schedule) == 0) return 1;
        fprintf(stderr, "fewcl %s: --lr-schedule '%s': expected constant or cosine\n", j->cmd, arg);
        return -1;
    default: return 0;
    }
}

/* Images smaller than --image-size are upscaled: more memory and time for no new detail,
 * usually a forgotten flag. The first image of the split stands for the others. */
static void warn_upscaling(const train_job *j, const fcl_dataset *ds) {
    fcl_image im = {0};
    if (!ds->n_images || fcl_image_load(ds->paths[0], &im) != FEWCL_OK) return;
    int w = im.w, h = im.h, side = w < h ? w : h, want = j->opt.cfg.image_size;
    fcl_image_free(&im);
    if (side >= want) return;
    fprintf(stderr,
            "fewcl %s: warning: the images are %dx%d px (%s) and --image-size is %d: every "
            "image is upscaled %.1fx, which costs memory and time (%.0fx the pixels) for no "
            "new detail; give --image-size %d to train at their size\n",
            j->cmd, w, h, ds->paths[0], want, (double)want / side,
            (double)want * want / ((double)side * side), side < 16 ? 16 : side);
}

int train_job_run(train_job *j, const data_flags *data) {
    fcl_dataset *sets[SPLITS] = {0};
    fewcl_context *ctx = NULL;
    install_stop_handler();
    int rc_open = cli_open_device(j->cmd, j->device, &ctx);
    if (rc_open) return rc_open;
    fewcl_status s = data_open_split(data, SPLIT_BASE, &sets[SPLIT_BASE]);
    if (s == FEWCL_OK && data_has_split(data, SPLIT_VAL))
        s = data_open_split(data, SPLIT_VAL, &sets[SPLIT_VAL]);
    if (s == FEWCL_OK && j->test_episodes)
        s = data_open_split(data, SPLIT_NOVEL, &sets[SPLIT_NOVEL]);
    int code = 0;
    if (s == FEWCL_OK && j->check_image_size) warn_upscaling(j, sets[SPLIT_BASE]);
    if (s == FEWCL_OK) {
        progress_init(&j->progress, j->quiet || j->json);
        j->opt.train = sets[SPLIT_BASE];
        j->opt.val = j->opt.val_episodes ? sets[SPLIT_VAL] : NULL;
        j->opt.progress = on_progress;
        j->opt.data = data->io;
        j->opt.epoch_done = on_epoch;
        j->opt.user = j;
        j->opt.stop = &g_stop_requested;
        if (!j->json)
            printf("device: %s (%s)\ntraining: %d classes, %d images (%s); validation: %s\nrun "
                   "folder: %s\n",
                   ctx->info.name, ctx->info.platform, j->opt.train->n_classes,
                   j->opt.train->n_images, j->opt.train->source,
                   j->opt.val ? j->opt.val->source : "none", j->opt.run_dir);
        if (!j->json) print_plan(ctx, &j->opt.cfg);
        s = fcl_train(ctx, &j->opt, &j->result);
        progress_break(&j->progress);
    }
    if (s == FEWCL_OK && !j->json) {
        if (!isnan(j->result.best_val_acc))
            printf("best validation accuracy %.2f%% at epoch %d (best.safetensors)\n",
                   j->result.best_val_acc, j->result.best_epoch);
    }
    if (s == FEWCL_OK && j->test_episodes) {
        s = run_test(ctx, j, sets[SPLIT_NOVEL]);
        if (s == FEWCL_OK && !j->json) print_test_result("novel classes, best weights", &j->test);
    }
    if (s == FEWCL_OK && j->json) print_json(j);
    if (s == FEWCL_OK && !j->json)
        printf("run folder: %s (metrics.csv, curves.svg, best.safetensors, last.safetensors)\n",
               j->opt.run_dir);
    if (s != FEWCL_OK) code = cli_fail(j->cmd, s);
    for (int i = 0; i < SPLITS; i++)
        fcl_dataset_free(sets[i]);
    if (ctx) fewcl_context_destroy(ctx);
    return code;
}
