/* Model configuration (see config.h). Backbones come from the backbone table (backbone.h);
 * the other choices from the name tables below, whose order is their enum's. */
#include "config.h"

#include <string.h>

#include "backbone.h"

#define COUNT(names) ((int)(sizeof names / sizeof *names))

static const char *const methods[] = {"enhanced", "fsct"};
static const char *const variants[] = {"cosine", "softmax"};
static const char *const mahas[] = {"auto", "dense", "lowrank"};
static const char *const ckpts[] = {"none", "blocks", "backbone", "all"};

static int parse(const char *s, const char *const *names, int n) {
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *fcl_backbone_name(fcl_backbone b) {
    const fcl_backbone_ops *e = fcl_backbone_entry((int)b);
    return e ? e->name : "unknown";
}
int fcl_backbone_parse(const char *s) { return fcl_backbone_find(s); }
const char *fcl_method_name(fcl_method m) { return methods[m]; }
int fcl_method_parse(const char *s) { return parse(s, methods, COUNT(methods)); }
const char *fcl_variant_name(fcl_variant v) { return variants[v]; }
int fcl_variant_parse(const char *s) { return parse(s, variants, COUNT(variants)); }
const char *fcl_mahalanobis_name(fcl_mahalanobis m) { return mahas[m]; }
int fcl_mahalanobis_parse(const char *s) { return parse(s, mahas, COUNT(mahas)); }
const char *fcl_checkpointing_name(fcl_checkpointing c) { return ckpts[c]; }
int fcl_checkpointing_parse(const char *s) { return parse(s, ckpts, COUNT(ckpts)); }

fcl_model_config fcl_config_default(void) {
    return (fcl_model_config){.backbone = FCL_CONV4,
                              .image_size = 84,
                              .method = FCL_METHOD_ENHANCED,
                              .variant = FCL_VARIANT_COSINE,
                              .n_way = 5,
                              .k_shot = 5,
                              .n_query = 16,
                              .reduced_dim = 512,
                              .depth = 2,
                              .heads = 4,
                              .dim_head = 64,
                              .mlp_dim = 512,
                              .mahalanobis = FCL_MAHA_AUTO,
                              .vic = 1};
}

void fcl_config_set_method(fcl_model_config *c, fcl_method m) {
    c->method = m;
    c->depth = m == FCL_METHOD_FSCT ? 1 : 2;
    c->heads = m == FCL_METHOD_FSCT ? 8 : 4;
}

fewcl_status fcl_config_feature_shape(const fcl_model_config *c, int *ch, int *h, int *w) {
    const fcl_backbone_ops *e = fcl_backbone_entry((int)c->backbone);
    if (!e) {
        char names[256];
        fcl_backbone_list(names, sizeof names);
        return fcl_fail(FEWCL_ERR_ARGUMENT, "backbone %d is not one of %s", (int)c->backbone,
                        names);
    }
    int side;
    e->feature_shape(e, c->image_size, ch, &side);
    if (side < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "--image-size %d is too small for %s (the feature map "
                        "would be empty; use at least %d)",
                        c->image_size, e->name, fcl_backbone_min_image_size(e));
    *h = *w = side;
    return FEWCL_OK;
}

int fcl_config_working_dim(const fcl_model_config *c, int feature_dim) {
    return c->method == FCL_METHOD_ENHANCED && c->reduced_dim > 0 && feature_dim > c->reduced_dim
               ? c->reduced_dim
               : feature_dim;
}

fewcl_status fcl_config_validate(const fcl_model_config *c) {
    struct {
        const char *flag;
        int value, lo, hi;
    } ranges[] = {{"--image-size", c->image_size, 8, 1024},
                  {"--n-way", c->n_way, 2, 1000},
                  {"--k-shot", c->k_shot, 1, 1000},
                  {"--n-query", c->n_query, 1, 1000},
                  {"--reduced-dim", c->reduced_dim, 0, 65536},
                  {"--depth", c->depth, 1, 64},
                  {"--heads", c->heads, 1, 256},
                  {"--dim-head", c->dim_head, 1, 4096},
                  {"--mlp-dim", c->mlp_dim, 1, 65536}};
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (ranges[i].value < ranges[i].lo || ranges[i].value > ranges[i].hi)
            return fcl_fail(FEWCL_ERR_ARGUMENT, "%s %d is out of range (%d to %d)", ranges[i].flag,
                            ranges[i].value, ranges[i].lo, ranges[i].hi);
    int ch, h, w;
    return fcl_config_feature_shape(c, &ch, &h, &w);
}
