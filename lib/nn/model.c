/* The whole model: backbone then head (see model.h). */
#include "model.h"

#include "../ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fewcl_status fcl_model_create(fewcl_context *ctx, const fcl_model_config *cfg, uint64_t seed,
                              fcl_model **out) {
    *out = NULL;
    FCL_TRY(fcl_config_validate(cfg));
    int ch, h, w;
    FCL_TRY(fcl_config_feature_shape(cfg, &ch, &h, &w));
    fcl_model *m = calloc(1, sizeof *m);
    if (!m) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "model");
    m->cfg = *cfg;
    fcl_params_init(&m->params);
    m->feature_dim = ch * h * w;
    m->working_dim = fcl_config_working_dim(cfg, m->feature_dim);
    /* Distinct seeds per stage, so that adding a stage never shifts another's weights. */
    fewcl_status s =
        fcl_backbone_create(ctx, cfg, &m->params, "feature.", seed * 2 + 1, &m->backbone);
    if (s == FEWCL_OK)
        s = cfg->method == FCL_METHOD_ENHANCED
                ? fcl_enhanced_create(ctx, cfg, m->feature_dim, &m->params, seed * 2 + 2, &m->head)
                : fcl_fsct_create(ctx, cfg, m->feature_dim, &m->params, seed * 2 + 2, &m->head);
    if (s != FEWCL_OK) {
        fcl_model_destroy(ctx, m);
        return s;
    }
    *out = m;
    return FEWCL_OK;
}

void fcl_model_destroy(fewcl_context *ctx, fcl_model *m) {
    if (!m) return;
    fcl_head_destroy(ctx, m->head);
    if (m->backbone) fcl_backbone_destroy(ctx, m->backbone);
    fcl_params_free(ctx, &m->params);
    free(m);
}

fewcl_status fcl_model_forward(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int training,
                               fcl_head_out *out) {
    const fcl_model_config *c = &m->cfg;
    int want[4] = {c->n_way * (c->k_shot + c->n_query), 3, c->image_size, c->image_size};
    if (x->ndim != 4 || x->shape[0] != want[0] || x->shape[1] != 3 || x->shape[2] != want[2] ||
        x->shape[3] != want[3]) {
        char got[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "episode tensor %s does not fit %d-way %d-shot %d-query at %dx%d (expected "
                        "[%d,3,%d,%d])",
                        fcl_shape_str(x, got, sizeof got), c->n_way, c->k_shot, c->n_query,
                        c->image_size, c->image_size, want[0], want[2], want[3]);
    }
    const fcl_tensor *features;
    FCL_TRY(fcl_backbone_forward(ctx, m->backbone, x, training, &features));
    fewcl_status s = fcl_head_forward(ctx, m->head, features, training, out);
    if (s != FEWCL_OK) fcl_backbone_release(ctx, m->backbone);
    return s;
}

fewcl_status fcl_model_backward(fewcl_context *ctx, fcl_model *m) {
    const fcl_tensor *dfeatures;
    fewcl_status s = fcl_head_backward(ctx, m->head, &dfeatures);
    if (s == FEWCL_OK) s = fcl_backbone_backward(ctx, m->backbone, dfeatures);
    fcl_head_release(ctx, m->head);
    fcl_backbone_release(ctx, m->backbone);
    return s;
}

void fcl_model_release(fewcl_context *ctx, fcl_model *m) {
    fcl_head_release(ctx, m->head);
    fcl_backbone_release(ctx, m->backbone);
}

fewcl_status fcl_model_reshape(fewcl_context *ctx, fcl_model *src, const fcl_model_config *cfg,
                               fcl_model **out, int *uniform_protos) {
    *out = NULL;
    if (uniform_protos) *uniform_protos = 0;
    char diff[512];
    if (fcl_config_architecture_diff(&src->cfg, cfg, diff, sizeof diff))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "reshape: another architecture (%s)", diff);
    fcl_model *m;
    FCL_TRY(fcl_model_create(ctx, cfg, 1, &m));
    fewcl_status s = FEWCL_OK;
    float *host = NULL;
    for (int i = 0; i < m->params.n && s == FEWCL_OK; i++) {
        fcl_param *p = &m->params.items[i];
        fcl_param *q = fcl_params_find(&src->params, p->name);
        if (!q) {
            s = fcl_fail(FEWCL_ERR_INTERNAL, "reshape: %s missing from the source model", p->name);
        } else if (!fcl_same_shape(&p->value, &q->value)) {
            /* only the prototype weights depend on the episode shape: zeros, i.e. uniform */
            if (strcmp(p->name, "proto_weight") != 0) {
                char a[64], b[64];
                s = fcl_fail(FEWCL_ERR_INTERNAL, "reshape: %s is %s here and %s in the source",
                             p->name, fcl_shape_str(&p->value, a, sizeof a),
                             fcl_shape_str(&q->value, b, sizeof b));
            } else {
                s = fcl_fill(ctx, &p->value, 0.0f);
                if (uniform_protos) *uniform_protos = 1;
            }
        } else {
            float *grown = realloc(host, p->value.numel * sizeof *host);
            if (!grown) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "reshape: out of host memory");
            host = grown ? grown : host;
            if (s == FEWCL_OK) s = fcl_tensor_download(ctx, &q->value, host);
            if (s == FEWCL_OK) s = fcl_tensor_upload(ctx, &p->value, host);
        }
    }
    free(host);
    if (s != FEWCL_OK) {
        fcl_model_destroy(ctx, m);
        return s;
    }
    *out = m;
    return FEWCL_OK;
}

/* The model's backbone keys all start with this (fcl_model_create registers them so). */
#define BACKBONE_KEYS "feature."

/* The file key of backbone parameter p, or NULL when p is not part of the backbone. */
static const char *backbone_key(const fcl_param *p, const char *prefix, char *buf, size_t cap) {
    size_t own = strlen(BACKBONE_KEYS);
    if (strncmp(p->name, BACKBONE_KEYS, own) != 0) return NULL;
    snprintf(buf, cap, "%s%s", prefix, p->name + own);
    return buf;
}

fewcl_status fcl_model_load_backbone(fewcl_context *ctx, fcl_model *m, const char *path,
                                     const char *prefix) {
    prefix = prefix ? prefix : "";
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(path, &st));
    /* Every key checked before anything is uploaded, so a bad file leaves the model as it was;
     * the message names the first problem and counts the others. */
    char first[600] = "";
    int problems = 0, wanted = 0;
    for (int i = 0; i < m->params.n; i++) {
        const fcl_param *p = &m->params.items[i];
        char buf[300];
        const char *key = backbone_key(p, prefix, buf, sizeof buf);
        if (!key) continue;
        wanted++;
        int64_t shape[FCL_MAX_DIMS];
        for (int d = 0; d < p->value.ndim; d++)
            shape[d] = p->value.shape[d];
        const float *data;
        size_t numel;
        if (!fcl_st_find(st, key)) {
            if (!problems++)
                snprintf(first, sizeof first, "%s: backbone key '%s' (for %s) is missing", path,
                         key, p->name);
        } else if (fcl_st_f32(st, key, p->value.ndim, shape, &data, &numel) != FEWCL_OK) {
            if (!problems++) snprintf(first, sizeof first, "%s", fewcl_last_error());
        }
    }
    fewcl_status s = FEWCL_OK;
    if (problems)
        s = fcl_fail(FEWCL_ERR_FORMAT, "%s (problems with %d of the backbone's %d keys%s)", first,
                     problems, wanted, problems == wanted ? "; is the key prefix right?" : "");
    for (int i = 0; i < m->params.n && s == FEWCL_OK; i++) {
        fcl_param *p = &m->params.items[i];
        char buf[300];
        const char *key = backbone_key(p, prefix, buf, sizeof buf);
        const float *data;
        size_t numel;
        if (!key) continue;
        s = fcl_st_f32(st, key, 0, NULL, &data, &numel);
        if (s == FEWCL_OK) s = fcl_tensor_upload(ctx, &p->value, data);
    }
    fcl_st_free(st);
    return s;
}
