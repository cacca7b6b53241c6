/* The model configuration as JSON, for checkpoints' __metadata__ (docs/spec.md §6) and run folders:
 * names as on the command line, so a file reads like the flags that made it. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "config.h"

/* The integer fields, by flag name. */
#define INT_FIELDS(X)                                                                              \
    X("image_size", image_size)                                                                    \
    X("n_way", n_way)                                                                              \
    X("k_shot", k_shot)                                                                            \
    X("n_query", n_query)                                                                          \
    X("reduced_dim", reduced_dim)                                                                  \
    X("depth", depth)                                                                              \
    X("heads", heads)                                                                              \
    X("dim_head", dim_head)                                                                        \
    X("mlp_dim", mlp_dim)                                                                          \
    X("vic", vic)                                                                                  \
    X("freeze_backbone", freeze_backbone)                                                          \
    X("bn_batch_stats_at_test", bn_batch_stats_at_test)

char *fcl_config_to_json(const fcl_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "backbone", fcl_backbone_name(c->backbone));
    cJSON_AddStringToObject(o, "method", fcl_method_name(c->method));
    cJSON_AddStringToObject(o, "variant", fcl_variant_name(c->variant));
    cJSON_AddStringToObject(o, "mahalanobis", fcl_mahalanobis_name(c->mahalanobis));
    cJSON_AddStringToObject(o, "checkpoint", fcl_checkpointing_name(c->checkpoint));
#define ADD(key, field) cJSON_AddNumberToObject(o, key, c->field);
    INT_FIELDS(ADD)
#undef ADD
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static fewcl_status get_name(const char *label, const cJSON *o, const char *key,
                             int (*parse)(const char *), int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    int i = cJSON_IsString(v) ? parse(v->valuestring) : -1;
    if (i < 0)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: model config: \"%s\" is missing or not a known name",
                        label, key);
    *out = i;
    return FEWCL_OK;
}

static fewcl_status get_int(const char *label, const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: model config: \"%s\" is missing or not an integer",
                        label, key);
    *out = (int)v->valuedouble;
    return FEWCL_OK;
}

fewcl_status fcl_config_from_json(const char *label, const char *json, fcl_model_config *c) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: model config is not a JSON object", label);
    }
    fcl_model_config r = fcl_config_default();
    int b = 0, m = 0, v = 0, h = 0, k = 0;
    fewcl_status s = get_name(label, o, "backbone", fcl_backbone_parse, &b);
    if (s == FEWCL_OK) s = get_name(label, o, "method", fcl_method_parse, &m);
    if (s == FEWCL_OK) s = get_name(label, o, "variant", fcl_variant_parse, &v);
    if (s == FEWCL_OK) s = get_name(label, o, "mahalanobis", fcl_mahalanobis_parse, &h);
    if (s == FEWCL_OK) s = get_name(label, o, "checkpoint", fcl_checkpointing_parse, &k);
#define GET(key, field)                                                                            \
    if (s == FEWCL_OK) s = get_int(label, o, key, &r.field);
    INT_FIELDS(GET)
#undef GET
    cJSON_Delete(o);
    FCL_TRY(s);
    r.backbone = (fcl_backbone)b, r.method = (fcl_method)m, r.variant = (fcl_variant)v;
    r.mahalanobis = (fcl_mahalanobis)h, r.checkpoint = (fcl_checkpointing)k;
    if (fcl_config_validate(&r) != FEWCL_OK)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: model config: %s", label, fewcl_last_error());
    *c = r;
    return FEWCL_OK;
}

int fcl_config_architecture_diff(const fcl_model_config *a, const fcl_model_config *b, char *buf,
                                 size_t cap) {
    int n = 0;
    size_t used = 0;
    buf[0] = 0;
#define DIFF(cond, flag, fmt, va, vb)                                                              \
    if (cond) {                                                                                    \
        if (used < cap)                                                                            \
            used += (size_t)snprintf(buf + used, cap - used, "%s--" flag " " fmt " vs " fmt,       \
                                     n ? ", " : "", va, vb);                                       \
        n++;                                                                                       \
    }
    DIFF(a->backbone != b->backbone, "backbone", "%s", fcl_backbone_name(a->backbone),
         fcl_backbone_name(b->backbone))
    DIFF(a->method != b->method, "method", "%s", fcl_method_name(a->method),
         fcl_method_name(b->method))
    DIFF(a->variant != b->variant, "variant", "%s", fcl_variant_name(a->variant),
         fcl_variant_name(b->variant))
    DIFF(a->image_size != b->image_size, "image-size", "%d", a->image_size, b->image_size)
    /* The projection as it acts: reduced_dim >= D (or 0) all mean none. */
    int ch, h, w, same_proj = a->reduced_dim == b->reduced_dim;
    if (!same_proj && a->method == b->method && a->backbone == b->backbone &&
        a->image_size == b->image_size && fcl_config_feature_shape(a, &ch, &h, &w) == FEWCL_OK)
        same_proj = fcl_config_working_dim(a, ch * h * w) == fcl_config_working_dim(b, ch * h * w);
    DIFF(!same_proj, "reduced-dim", "%d", a->reduced_dim, b->reduced_dim)
    DIFF(a->depth != b->depth, "depth", "%d", a->depth, b->depth)
    DIFF(a->heads != b->heads, "heads", "%d", a->heads, b->heads)
    DIFF(a->dim_head != b->dim_head, "dim-head", "%d", a->dim_head, b->dim_head)
    DIFF(a->mlp_dim != b->mlp_dim, "mlp-dim", "%d", a->mlp_dim, b->mlp_dim)
#undef DIFF
    return n;
}
