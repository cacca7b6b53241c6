/* Opening trained models (see checkpoint_open.h). */
#include "checkpoint_open.h"

#include "train/checkpoint.h"

/* The saved architecture with the episode and run settings of `run`. */
static fcl_model_config merge(const fcl_model_config *saved, const fcl_model_config *run) {
    fcl_model_config c = *saved;
    c.n_way = run->n_way, c.k_shot = run->k_shot, c.n_query = run->n_query;
    c.mahalanobis = run->mahalanobis;
    c.checkpoint = run->checkpoint;
    c.bn_batch_stats_at_test = run->bn_batch_stats_at_test;
    return c;
}

fewcl_status read_weights_config(const char *path, fcl_model_config *cfg, int *found) {
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(path, &st));
    fewcl_status s = fcl_checkpoint_config(st, cfg, found);
    fcl_st_free(st);
    return s;
}

fewcl_status open_trained_model(fewcl_context *ctx, const char *path, fcl_model_config *cfg,
                                fcl_model **out) {
    *out = NULL;
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(path, &st));
    fcl_model_config saved;
    int found = 0;
    fewcl_status s = fcl_checkpoint_config(st, &saved, &found);
    if (s == FEWCL_OK && found) *cfg = merge(&saved, cfg);
    if (s == FEWCL_OK) s = fcl_model_create(ctx, cfg, 1, out);
    if (s == FEWCL_OK) s = fcl_checkpoint_load(ctx, *out, st, 0);
    if (s != FEWCL_OK && *out) {
        fcl_model_destroy(ctx, *out);
        *out = NULL;
    }
    fcl_st_free(st);
    return s;
}
