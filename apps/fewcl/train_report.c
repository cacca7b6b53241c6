/* Training jobs (see train_report.h). */
#include "train_report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "model_flags.h"

void train_job_init(train_job *j) {
    *j = (train_job){0};
    fewcl_train_params_default(&j->opt, sizeof j->opt); /* 50 x 200 episodes, AdamW, seed 1 */
    j->cfg = model_config_default();
    j->cmd = "train";
}

cJSON *test_result_json(const fewcl_test_result *r, const char *split, const char *weights,
                        const fewcl_model_config *c) {
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

/* Writes text to path through a temporary file and a rename, so that a reader never sees half
 * a file; returns 0, or -1 after a message in `why`. */
static int write_atomically(const char *path, const char *text, char *why, size_t cap) {
    char tmp[8500];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(why, cap, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0) return 0;
    if (errno) e = errno;
    unlink(tmp);
    snprintf(why, cap, "writing %s failed: %s (the previous file, if any, is intact)", path,
             strerror(e));
    return -1;
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
    char *text = cJSON_Print(result), why[8800];
    if (text && write_atomically(path, text, why, sizeof why) != 0)
        fprintf(stderr, "fewcl %s: warning: %s\n", cmd, why);
    else if (text)
        fprintf(stderr, "fewcl %s: result saved in %s\n", cmd, path);
    free(text);
}

void print_test_result(const char *what, const fewcl_test_result *r) {
    printf("%s: %d episodes: %.2f%% ± %.2f%% (95%% CI) in %.1f s\n", what, r->episodes, r->accuracy,
           r->ci95, r->seconds);
}

/* The trainer has one user pointer, the job; progress lives inside it. */
static int on_progress(void *user, const fewcl_progress *p) {
    train_job *j = user;
    return progress_update(&j->progress, p);
}

static void on_epoch(void *user, const fewcl_epoch_metrics *m) {
    train_job *j = user;
    progress_break(&j->progress);
    if (j->json) return;
    char val[64] = "", mem[32];
    if (!isnan(m->val_accuracy))
        snprintf(val, sizeof val, " val %.2f%% ± %.2f%%", m->val_accuracy, m->val_ci95);
    printf("epoch %3d/%d  loss %.4f (ce %.4f var %.4f cov %.4f)  train %.2f%%%s  %.2f ep/s  "
           "(loader %.0f img/s)  %.0f s  device peak %s\n",
           m->epoch, j->opt.epochs, m->loss, m->loss_ce, m->loss_var, m->loss_cov,
           m->train_accuracy, val, m->episodes_per_s, m->images_per_s, m->seconds,
           cli_bytes(m->device_peak_bytes, mem, sizeof mem));
    fflush(stdout);
}

/* JSON has no NaN: absent values (no validation) are written as null. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isnan(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

/* An epoch's metrics with the keys of metrics.csv (as the trainer's history has them). */
static cJSON *metrics_json(const fewcl_epoch_metrics *m) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "epoch", m->epoch);
    add_number(e, "loss", m->loss);
    add_number(e, "loss_ce", m->loss_ce);
    add_number(e, "loss_var", m->loss_var);
    add_number(e, "loss_cov", m->loss_cov);
    add_number(e, "train_acc", m->train_accuracy);
    add_number(e, "val_acc", m->val_accuracy);
    add_number(e, "val_ci95", m->val_ci95);
    add_number(e, "episodes_per_s", m->episodes_per_s);
    add_number(e, "images_per_s", m->images_per_s);
    add_number(e, "seconds", m->seconds);
    add_number(e, "device_peak", m->device_peak_bytes);
    return e;
}

static void print_json(const train_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run_dir", j->opt.run_dir);
    cJSON_AddNumberToObject(o, "epochs", j->result.epochs_done);
    cJSON_AddNumberToObject(o, "best_epoch", j->result.best_epoch);
    if (!isnan(j->result.best_val_accuracy))
        cJSON_AddNumberToObject(o, "best_val_acc", j->result.best_val_accuracy);
    cJSON_AddNumberToObject(o, "planned_peak_bytes", (double)j->result.planned_peak_bytes);
    cJSON_AddNumberToObject(o, "planned_footprint_bytes",
                            (double)j->memory.planned_footprint_bytes);
    cJSON_AddNumberToObject(o, "reserved_bytes", (double)j->memory.reserved_bytes);
    if (j->result.epochs_done) cJSON_AddItemToObject(o, "final", metrics_json(&j->result.last));
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

/* The memory plan of one training episode (step of a meta-batch), before anything is
 * allocated (a configuration that does not fit is refused by fewcl_train with the planner's
 * message). */
static void print_plan(fewcl_context *ctx, const fewcl_model_config *cfg, int meta_batch) {
    fewcl_plan_info info = {.struct_size = sizeof info};
    fewcl_plan_params pp;
    fewcl_plan_result r = {.struct_size = sizeof r};
    fewcl_plan_params_default(&pp, sizeof pp);
    pp.training = 1, pp.info = &info, pp.meta_batch = meta_batch;
    if (fewcl_plan(ctx, cfg, &pp, &r) != FEWCL_OK || !r.fits) return;
    char b[FEWCL_MEM_CATEGORIES + 3][32], what[64] = "training episode";
    if (meta_batch > 1) snprintf(what, sizeof what, "training step of %d episodes", meta_batch);
    printf("memory plan of a %s: peak %s, footprint %s of %s", what,
           cli_bytes((double)r.peak_bytes, b[0], 32), cli_bytes((double)r.reserved_bytes, b[1], 32),
           cli_bytes((double)info.budget, b[2], 32));
    for (int k = 0; k < FEWCL_MEM_CATEGORIES; k++)
        printf("%s%s %s", k ? ", " : " (", fewcl_mem_category_name(k),
               cli_bytes((double)r.at_peak[k], b[k + 3], 32));
    printf(" at the peak)\n");
}

/* Tests run_dir/best.safetensors on the novel split. */
static fewcl_status run_test(fewcl_context *ctx, train_job *j, const fewcl_dataset *novel) {
    char path[4200];
    snprintf(path, sizeof path, "%s/best.safetensors", j->opt.run_dir);
    fewcl_model *m;
    fewcl_status s = fewcl_model_load_as(ctx, path, &j->cfg, &m, NULL);
    if (s != FEWCL_OK) return s;
    fewcl_model_get_config(m, &j->cfg);
    fewcl_test_params tp;
    fewcl_test_params_default(&tp, sizeof tp);
    tp.dataset = novel;
    tp.episodes = j->test_episodes;
    tp.seed = j->opt.seed;
    tp.workers = j->opt.workers, tp.cache_bytes = j->opt.cache_bytes;
    tp.skip_bad_images = j->opt.skip_bad_images, tp.scale_115 = j->opt.scale_115;
    tp.progress = progress_update, tp.user = &j->progress, tp.cancel = g_stop_token;
    /* As the training: over its devices and ranks (rank 0 prints and writes the result) */
    tp.devices = j->opt.devices;
    tp.distributed = j->opt.distributed;
    j->test.struct_size = sizeof j->test;
    s = fewcl_test(m, &tp, &j->test);
    progress_break(&j->progress);
    if (s == FEWCL_OK && cli_dist.rank == 0) {
        cJSON *o = test_result_json(&j->test, "novel", path, &j->cfg);
        save_test_result(j->cmd, path, "novel", o);
        cJSON_Delete(o);
    }
    fewcl_model_destroy(m);
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
    case 7: return parse_real(j->cmd, "lr", arg, &j->opt.lr) ? -1 : 1;
    case 8:
        if (fewcl_setting_parse(FEWCL_SETTING_LR_SCHEDULE, arg, &j->opt.cosine_lr) == FEWCL_OK)
            return 1;
        fprintf(stderr, "fewcl %s: --lr-schedule '%s': expected constant or cosine\n", j->cmd, arg);
        return -1;
    default: return 0;
    }
}

/* Images smaller than --image-size are upscaled: more memory and time for no new detail,
 * usually a forgotten flag. The first image of the split stands for the others. */
static void warn_upscaling(const train_job *j, const fewcl_dataset *ds) {
    const char *first = fewcl_dataset_image_path(ds, 0);
    int w, h;
    if (!first || fewcl_image_dimensions(first, &w, &h) != FEWCL_OK) return;
    int side = w < h ? w : h, want = j->cfg.image_size;
    if (side >= want) return;
    fprintf(stderr,
            "fewcl %s: warning: the images are %dx%d px (%s) and --image-size is %d: every "
            "image is upscaled %.1fx, which costs memory and time (%.0fx the pixels) for no "
            "new detail; give --image-size %d to train at their size\n",
            j->cmd, w, h, first, want, (double)want / side,
            (double)want * want / ((double)side * side), side < 16 ? 16 : side);
}

int train_job_run(train_job *j, const data_flags *data) {
    fewcl_dataset *sets[SPLITS] = {0};
    fewcl_context *ctx = NULL;
    install_stop_handler();
    /* Several ranks: rank 0 reports (the others' results are the same) */
    if (cli_dist.rank > 0 && !freopen("/dev/null", "w", stdout)) return EXIT_RUNTIME;
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
        j->opt.model = &j->cfg;
        j->opt.train_data = j->opt.val_data = NULL;
        j->opt.train_dataset = sets[SPLIT_BASE];
        j->opt.val_dataset = j->opt.val_episodes ? sets[SPLIT_VAL] : NULL;
        j->opt.progress = on_progress;
        j->opt.workers = data->io.workers, j->opt.cache_bytes = data->io.cache_bytes;
        j->opt.skip_bad_images = data->io.skip_bad, j->opt.scale_115 = data->io.scale_115;
        j->opt.epoch_done = on_epoch;
        j->opt.user = j;
        j->opt.cancel = g_stop_token;
        const fewcl_device_info *dev = fewcl_context_device(ctx);
        fewcl_dataset_info train = {.struct_size = sizeof train}, val = {.struct_size = sizeof val};
        fewcl_dataset_get_info(j->opt.train_dataset, &train);
        if (j->opt.val_dataset) fewcl_dataset_get_info(j->opt.val_dataset, &val);
        if (!j->json)
            printf("device: %s (%s)\ntraining: %d classes, %d images (%s); validation: %s\nrun "
                   "folder: %s\n",
                   dev->name, dev->platform, train.n_classes, train.n_images, train.source,
                   j->opt.val_dataset ? val.source : "none", j->opt.run_dir);
        if (!j->json) print_plan(ctx, &j->cfg, j->opt.meta_batch);
        j->result.struct_size = sizeof j->result;
        j->memory.struct_size = sizeof j->memory;
        j->opt.memory = &j->memory;
        s = fewcl_train(ctx, &j->opt, &j->result);
        progress_break(&j->progress);
    }
    if (s == FEWCL_OK && !j->json) {
        if (!isnan(j->result.best_val_accuracy))
            printf("best validation accuracy %.2f%% at epoch %d (best.safetensors)\n",
                   j->result.best_val_accuracy, j->result.best_epoch);
        char b[3][32];
        printf("device memory: planned peak %s, footprint %s; the run reserved %s\n",
               cli_bytes((double)j->memory.planned_peak_bytes, b[0], 32),
               cli_bytes((double)j->memory.planned_footprint_bytes, b[1], 32),
               cli_bytes((double)j->memory.reserved_bytes, b[2], 32));
        /* --devices: every other replica's plan (`fewcl plan --devices`) and what it held */
        for (int w = 1; w < j->memory.replicas && w < FEWCL_REPLICAS_REPORTED; w++)
            printf("replica %d: planned footprint %s; it reserved %s\n", w + 1,
                   cli_bytes((double)j->memory.replica_footprint_bytes[w], b[0], 32),
                   cli_bytes((double)j->memory.replica_reserved_bytes[w], b[1], 32));
    }
    if (s == FEWCL_OK && j->test_episodes) {
        s = run_test(ctx, j, sets[SPLIT_NOVEL]);
        if (s == FEWCL_OK && !j->json) print_test_result("novel classes, best weights", &j->test);
    }
    if (s == FEWCL_OK && j->json) print_json(j);
    if (s == FEWCL_OK && !j->json)
        printf("run folder: %s (metrics.csv, curves.svg, conv-algorithms.txt, best.safetensors, "
               "last.safetensors)\n",
               j->opt.run_dir);
    /* Several ranks: a failure the ranks did not all see (rank 0 writing the run folder)
     * must end the whole job, not leave the others waiting; a stop is every rank's. */
    if (s != FEWCL_OK && cli_dist.size > 1 && s != FEWCL_ERR_INTERRUPTED) cli_fail_alone(j->cmd, s);
    if (s != FEWCL_OK) code = cli_fail(j->cmd, s);
    for (int i = 0; i < SPLITS; i++)
        fewcl_dataset_destroy(sets[i]);
    if (ctx) fewcl_context_destroy(ctx);
    return code;
}
