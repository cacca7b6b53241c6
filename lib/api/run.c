/* Public API (API 2): reading a run folder (config.json and the trainer state in
 * last.safetensors) for `fewcl train --resume` and any other client. The trainer
 * (lib/train/trainer.c) writes both. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../train/trainer.h"
#include "api.h"
#include "fewcl/jobs.h"

/* A whole small file as text (NULL when it cannot be read). */
static char *slurp(const char *path, long max) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n <= max && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                buf[n] = 0;
            }
        }
    }
    fclose(f);
    return buf;
}

static double number(const cJSON *o, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static void string(const cJSON *o, const char *key, char *buf, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(buf, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static fewcl_status read_config(const char *path, fewcl_run_info *r) {
    char *text = slurp(path, 1 << 20);
    if (!text) return fcl_fail(FEWCL_ERR_IO, "cannot read %s (the run's settings)", path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "training");
    char *model_text = model ? cJSON_PrintUnformatted(model) : NULL;
    fcl_model_config cfg;
    fewcl_status s =
        model_text && cJSON_IsObject(t)
            ? fcl_config_from_json(path, model_text, &cfg)
            : fcl_fail(FEWCL_ERR_FORMAT, "%s: no \"model\" and \"training\" objects", path);
    free(model_text);
    if (s == FEWCL_OK) {
        char text_value[64];
        fcl_lr_schedule schedule;
        r->model = api_config_out(&cfg);
        r->epochs = (int)number(t, "epochs", 0);
        r->episodes = (int)number(t, "episodes", 0);
        r->val_episodes = (int)number(t, "val_episodes", 0);
        r->augment = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "augment"));
        r->lr = number(t, "lr", NAN);
        r->weight_decay = number(t, "weight_decay", NAN);
        string(t, "lr_schedule", text_value, sizeof text_value);
        r->cosine_lr =
            fcl_lr_schedule_parse(text_value, &schedule) == 0 && schedule == FCL_LR_COSINE;
        string(t, "seed", text_value, sizeof text_value);
        r->seed = strtoull(text_value, NULL, 10);
        string(t, "train_data", r->train_data, sizeof r->train_data);
        string(t, "val_data", r->val_data, sizeof r->val_data);
        if (r->epochs < 1 || r->episodes < 1 || isnan(r->lr) || isnan(r->weight_decay))
            s = fcl_fail(FEWCL_ERR_FORMAT, "%s: the training settings are incomplete", path);
    }
    cJSON_Delete(root);
    return s;
}

/* The "training" entry of a safetensors file's __metadata__, from its header alone. */
static fewcl_status read_state(const char *path, fewcl_run_info *r) {
    FILE *f = fopen(path, "rb");
    if (!f) return fcl_fail(FEWCL_ERR_IO, "cannot open %s", path);
    unsigned char len8[8];
    unsigned long long n = 0;
    char *header = NULL;
    if (fread(len8, 1, 8, f) == 8) {
        for (int i = 7; i >= 0; i--)
            n = n << 8 | len8[i];
        if (n > 0 && n < (100u << 20) && (header = malloc(n + 1))) {
            if (fread(header, 1, n, f) == n)
                header[n] = 0;
            else
                free(header), header = NULL;
        }
    }
    fclose(f);
    cJSON *h = header ? cJSON_Parse(header) : NULL;
    free(header);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    const cJSON *training = cJSON_GetObjectItemCaseSensitive(meta, "training");
    cJSON *st = cJSON_IsString(training) ? cJSON_Parse(training->valuestring) : NULL;
    fewcl_status s = FEWCL_OK;
    if (!cJSON_IsObject(st))
        s = fcl_fail(FEWCL_ERR_FORMAT,
                     "%s has no trainer state (\"training\" in __metadata__): not the last "
                     "checkpoint of a fewcl run",
                     path);
    r->epochs_done = (int)number(st, "epoch", 0);
    r->episodes_done = (long)number(st, "in_epoch", 0);
    r->best_epoch = (int)number(st, "best_epoch", 0);
    r->best_val_accuracy = number(st, "best_val", NAN);
    cJSON_Delete(st);
    cJSON_Delete(h);
    return s;
}

fewcl_status fewcl_run_meta_batch(const char *run_dir, int *meta_batch) {
    API_REQUIRE(run_dir, "fewcl_run_meta_batch", "run_dir");
    API_REQUIRE(meta_batch, "fewcl_run_meta_batch", "meta_batch");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    char *text = slurp(path, 1 << 20);
    if (!text) return fcl_fail(FEWCL_ERR_IO, "cannot read %s (the run's settings)", path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "training");
    *meta_batch = (int)number(t, "meta_batch", 1); /* runs from before API 3: one episode */
    fewcl_status s = cJSON_IsObject(t) && *meta_batch >= 1
                         ? FEWCL_OK
                         : fcl_fail(FEWCL_ERR_FORMAT, "%s: no valid \"training\" settings", path);
    cJSON_Delete(root);
    return s;
}

fewcl_status fewcl_run_read(const char *run_dir, fewcl_run_info *info) {
    API_REQUIRE(run_dir, "fewcl_run_read", "run_dir");
    API_REQUIRE(info, "fewcl_run_read", "info");
    FCL_TRY(api_check_size("fewcl_run_read", "info", info->struct_size));
    fewcl_run_info full;
    memset(&full, 0, sizeof full);
    full.struct_size = sizeof full;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    FCL_TRY(read_config(path, &full));
    snprintf(path, sizeof path, "%s/last.safetensors", run_dir);
    FCL_TRY(read_state(path, &full));
    api_copy_out(info, info->struct_size, &full, sizeof full);
    api_fix_nested_size(info, info->struct_size, offsetof(fewcl_run_info, model),
                        sizeof full.model);
    return FEWCL_OK;
}
