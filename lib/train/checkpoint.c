/* Checkpoint files (see checkpoint.h). */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fewcl_status add_moments(fewcl_context *ctx, fcl_st_writer *w, const fcl_params *P) {
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        if (!p->trainable || !p->m.numel) continue;
        char key[160];
        snprintf(key, sizeof key, "adamw.m.%s", p->name);
        FCL_TRY(fcl_st_writer_add_tensor(ctx, w, key, &p->m));
        snprintf(key, sizeof key, "adamw.v.%s", p->name);
        FCL_TRY(fcl_st_writer_add_tensor(ctx, w, key, &p->v));
    }
    return FEWCL_OK;
}

fewcl_status fcl_checkpoint_save(fewcl_context *ctx, const fcl_model *m, int with_optimizer,
                                 const char *training_json, const char *path) {
    fcl_st_writer *w = fcl_st_writer_new();
    char *config = fcl_config_to_json(&m->cfg);
    if (!w || !config) {
        fcl_st_writer_free(w);
        free(config);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "checkpoint %s", path);
    }
    char step[32];
    snprintf(step, sizeof step, "%ld", m->params.step);
    fewcl_status s = fcl_st_writer_meta(w, "format", FCL_CHECKPOINT_FORMAT);
    if (s == FEWCL_OK) s = fcl_st_writer_meta(w, "config", config);
    if (s == FEWCL_OK) s = fcl_st_writer_meta(w, "adamw_step", step);
    if (s == FEWCL_OK && training_json) s = fcl_st_writer_meta(w, "training", training_json);
    if (s == FEWCL_OK) s = fcl_params_store(ctx, &m->params, w);
    if (s == FEWCL_OK && with_optimizer) s = add_moments(ctx, w, &m->params);
    if (s == FEWCL_OK) s = fcl_st_writer_save(w, path);
    fcl_st_writer_free(w);
    free(config);
    return s;
}

/* A malloc'd copy of the string metadata entry `key`, or NULL. */
static char *metadata_string(const fcl_safetensors *st, const char *key) {
    if (!st->metadata) return NULL;
    cJSON *meta = cJSON_Parse(st->metadata);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    char *copy = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(meta);
    return copy;
}

char *fcl_checkpoint_training(const fcl_safetensors *st) { return metadata_string(st, "training"); }

fewcl_status fcl_checkpoint_config(const fcl_safetensors *st, fcl_model_config *cfg, int *found) {
    char *text = metadata_string(st, "config");
    *found = text != NULL;
    fewcl_status s = text ? fcl_config_from_json(st->path, text, cfg) : FEWCL_OK;
    free(text);
    return s;
}

static fewcl_status load_moment(fewcl_context *ctx, const fcl_safetensors *st, const char *kind,
                                fcl_param *p, fcl_tensor *t) {
    char key[160];
    snprintf(key, sizeof key, "adamw.%s.%s", kind, p->name);
    int64_t shape[FCL_MAX_DIMS];
    for (int d = 0; d < p->value.ndim; d++)
        shape[d] = p->value.shape[d];
    const float *data;
    size_t numel;
    FCL_TRY(fcl_st_f32(st, key, p->value.ndim, shape, &data, &numel));
    if (!t->numel) FCL_TRY(fcl_tensor_alloc(ctx, t, FCL_MEM_OPTIM, p->value.ndim, p->value.shape));
    return fcl_tensor_upload(ctx, t, data);
}

fewcl_status fcl_checkpoint_load(fewcl_context *ctx, fcl_model *m, const fcl_safetensors *st,
                                 int with_optimizer) {
    FCL_TRY(fcl_params_load(ctx, &m->params, st, "", FCL_LOAD_COMPLETE));
    if (!with_optimizer) return FEWCL_OK;
    char step[32];
    fcl_st_metadata_get(st, "adamw_step", step, sizeof step);
    char *end;
    long steps = strtol(step, &end, 10);
    if (!step[0] || *end || steps < 0)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s has no optimiser step count (\"adamw_step\" in __metadata__): it is a "
                        "weights file, not a training checkpoint",
                        st->path);
    m->params.step = steps;
    if (steps == 0) return FEWCL_OK; /* no moments yet */
    for (int i = 0; i < m->params.n; i++) {
        fcl_param *p = &m->params.items[i];
        if (!p->trainable) continue;
        FCL_TRY(load_moment(ctx, st, "m", p, &p->m));
        FCL_TRY(load_moment(ctx, st, "v", p, &p->v));
    }
    return FEWCL_OK;
}
