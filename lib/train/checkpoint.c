/* Checkpoint files (see checkpoint.h). */
#include "checkpoint.h"

#include "../ops/ops.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A moment on the device, or still on the host (read back by a resume, no step since). */
static fewcl_status add_moment(fewcl_context *ctx, fcl_st_writer *w, const char *kind,
                               const fcl_param *p, const fcl_tensor *t, const float *pending) {
    char key[160];
    snprintf(key, sizeof key, "adamw.%s.%s", kind, p->name);
    if (t->numel) return fcl_st_writer_add_tensor(ctx, w, key, t);
    int64_t shape[FCL_MAX_DIMS];
    for (int d = 0; d < p->value.ndim; d++)
        shape[d] = p->value.shape[d];
    return fcl_st_writer_add(w, key, p->value.ndim, shape, pending);
}

static fewcl_status add_moments(fewcl_context *ctx, fcl_st_writer *w, const fcl_params *P) {
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        if (!p->trainable || (!p->m.numel && !p->pending_m)) continue;
        FCL_TRY(add_moment(ctx, w, "m", p, &p->m, p->pending_m));
        FCL_TRY(add_moment(ctx, w, "v", p, &p->v, p->pending_v));
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

/* Into the device tensor when the model has its moments already, else kept on the host for
 * the next AdamW step to upload (params.h: where a fresh run allocates them). */
static fewcl_status load_moment(fewcl_context *ctx, const fcl_safetensors *st, const char *kind,
                                fcl_param *p, fcl_tensor *t, float **pending) {
    char key[160];
    snprintf(key, sizeof key, "adamw.%s.%s", kind, p->name);
    int64_t shape[FCL_MAX_DIMS];
    for (int d = 0; d < p->value.ndim; d++)
        shape[d] = p->value.shape[d];
    const float *data;
    size_t numel;
    FCL_TRY(fcl_st_f32(st, key, p->value.ndim, shape, &data, &numel));
    if (t->numel) return fcl_tensor_upload(ctx, t, data);
    if (!*pending && !(*pending = malloc(numel * sizeof **pending)))
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "reading %s (%zu floats)", key, numel);
    memcpy(*pending, data, numel * sizeof **pending);
    return FEWCL_OK;
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
        FCL_TRY(load_moment(ctx, st, "m", p, &p->m, &p->pending_m));
        FCL_TRY(load_moment(ctx, st, "v", p, &p->v, &p->pending_v));
    }
    return FEWCL_OK;
}

fewcl_status fcl_checkpoint_read_config(const char *path, fcl_model_config *cfg, int *found) {
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(path, &st));
    fewcl_status s = fcl_checkpoint_config(st, cfg, found);
    fcl_st_free(st);
    return s;
}

/* The saved architecture with the episode and run settings of `run`. */
static fcl_model_config merge(const fcl_model_config *saved, const fcl_model_config *run) {
    fcl_model_config c = *saved;
    c.n_way = run->n_way, c.k_shot = run->k_shot, c.n_query = run->n_query;
    c.mahalanobis = run->mahalanobis;
    c.checkpoint = run->checkpoint;
    c.bn_batch_stats_at_test = run->bn_batch_stats_at_test;
    return c;
}

/* 1 when the file's proto_weight exists with another shape than the model's. */
static int protos_reshaped(const fcl_safetensors *st, fcl_model *m) {
    const fcl_st_tensor *t = fcl_st_find(st, "proto_weight");
    fcl_param *p = fcl_params_find(&m->params, "proto_weight");
    if (!t || !p || t->ndim != p->value.ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != p->value.shape[d]) return 1;
    return 0;
}

fewcl_status fcl_checkpoint_open_model(fewcl_context *ctx, const char *path, fcl_model_config *cfg,
                                       fcl_model **out, int *uniform_protos) {
    *out = NULL;
    if (uniform_protos) *uniform_protos = 0;
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(path, &st));
    fcl_model_config saved;
    int found = 0, reshaped = 0;
    fewcl_status s = fcl_checkpoint_config(st, &saved, &found);
    if (s == FEWCL_OK && found) *cfg = merge(&saved, cfg);
    if (s == FEWCL_OK) s = fcl_model_create(ctx, cfg, 1, out);
    if (s == FEWCL_OK) {
        reshaped = protos_reshaped(st, *out);
        s = fcl_params_load_except(ctx, &(*out)->params, st, "", FCL_LOAD_COMPLETE,
                                   reshaped ? "proto_weight" : NULL);
    }
    if (s == FEWCL_OK && reshaped) {
        s = fcl_fill(ctx, &fcl_params_find(&(*out)->params, "proto_weight")->value, 0.0f);
        if (uniform_protos) *uniform_protos = 1;
    }
    if (s != FEWCL_OK && *out) {
        fcl_model_destroy(ctx, *out);
        *out = NULL;
    }
    fcl_st_free(st);
    return s;
}
