/* Model configuration (see config.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

static const char *backbones[] = {"conv4", "conv6", "resnet18", "resnet34"};
static const char *methods[] = {"enhanced", "fsct"};
static const char *variants[] = {"cosine", "softmax"};
static const char *mahas[] = {"auto", "dense", "lowrank"};
static const char *ckpts[] = {"none", "blocks", "backbone", "all"};

static int parse(const char *s, const char *const *names, int n) {
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *fcl_backbone_name(fcl_backbone b) { return backbones[b]; }
int fcl_backbone_parse(const char *s) { return parse(s, backbones, 4); }
const char *fcl_method_name(fcl_method m) { return methods[m]; }
int fcl_method_parse(const char *s) { return parse(s, methods, 2); }
const char *fcl_variant_name(fcl_variant v) { return variants[v]; }
int fcl_variant_parse(const char *s) { return parse(s, variants, 2); }
const char *fcl_mahalanobis_name(fcl_mahalanobis m) { return mahas[m]; }
int fcl_mahalanobis_parse(const char *s) { return parse(s, mahas, 3); }
const char *fcl_checkpointing_name(fcl_checkpointing c) { return ckpts[c]; }
int fcl_checkpointing_parse(const char *s) { return parse(s, ckpts, 4); }

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

/* Output side of a k x k convolution or pooling with stride s and padding p. */
static int out_side(int in, int k, int s, int p) {
    return in + 2 * p < k ? 0 : (in + 2 * p - k) / s + 1;
}

fewcl_status fcl_config_feature_shape(const fcl_model_config *c, int *ch, int *h, int *w) {
    int s = c->image_size;
    if (c->backbone == FCL_CONV4 || c->backbone == FCL_CONV6) {
        for (int i = 0; i < 4; i++)
            s = out_side(s, 2, 2, 0); /* 3x3 pad 1 keeps the side */
        *ch = 64;
    } else {
        s = out_side(s, 7, 2, 3); /* stem */
        s = out_side(s, 3, 2, 1); /* max-pool */
        for (int i = 0; i < 3; i++)
            s = out_side(s, 3, 2, 1); /* layer2..4 */
        *ch = 512;
    }
    if (s < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "--image-size %d is too small for %s (the feature map "
                        "would be empty; use at least %d)",
                        c->image_size, fcl_backbone_name(c->backbone),
                        c->backbone <= FCL_CONV6 ? 16 : 33);
    *h = *w = s;
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
