/* Model configuration: what docs/spec.md §3, §7 lets a user choose, with the reference's defaults
 * (enhanced V-D: depth 2, 4 heads of 64, mlp 512, reduced_dim 512, VIC on), its validation, and
 * the shapes that follow from it (backbone feature size D, working size D′). */
#ifndef FEWCL_NN_CONFIG_H
#define FEWCL_NN_CONFIG_H

#include <stddef.h>

#include "../runtime/runtime.h"

/* The built-in backbones' ids in the backbone table (lib/nn/backbone.h); registered ones follow
 * FCL_N_BACKBONES. */
typedef enum { FCL_CONV4, FCL_CONV6, FCL_RESNET18, FCL_RESNET34, FCL_N_BACKBONES } fcl_backbone;
typedef enum { FCL_METHOD_ENHANCED, FCL_METHOD_FSCT } fcl_method;
typedef enum { FCL_VARIANT_COSINE, FCL_VARIANT_SOFTMAX } fcl_variant;
typedef enum { FCL_MAHA_AUTO, FCL_MAHA_DENSE, FCL_MAHA_LOWRANK } fcl_mahalanobis;
typedef enum { FCL_CKPT_NONE, FCL_CKPT_BLOCKS, FCL_CKPT_BACKBONE, FCL_CKPT_ALL } fcl_checkpointing;

typedef struct fcl_model_config {
    fcl_backbone backbone;
    int image_size;
    fcl_method method;
    fcl_variant variant;
    int n_way, k_shot, n_query;
    int reduced_dim; /* 0: no projection */
    int depth, heads, dim_head, mlp_dim;
    fcl_mahalanobis mahalanobis;
    int vic;
    fcl_checkpointing checkpoint;
    int freeze_backbone;
    int bn_batch_stats_at_test; /* the published ResNet runs' behaviour (docs/maths.md §2.8) */
} fcl_model_config;

/* The defaults: conv4 at 84, enhanced cosine, 5-way 5-shot 16-query, reduced_dim 512, depth 2,
 * 4 heads x 64, mlp 512, Mahalanobis auto, VIC on, no checkpointing. For fsct, depth 1 and
 * 8 heads (docs/maths.md §5.1) apply when the method is set with fcl_config_set_method. */
fcl_model_config fcl_config_default(void);
void fcl_config_set_method(fcl_model_config *c, fcl_method m);
/* Every value in range and consistent; the message names the flag (--image-size ...). */
fewcl_status fcl_config_validate(const fcl_model_config *c);
/* Backbone output: channels, height, width (D = c·h·w); image too small gives an error. */
fewcl_status fcl_config_feature_shape(const fcl_model_config *c, int *ch, int *h, int *w);
/* D′: reduced_dim when the projection is active (enhanced, reduced_dim > 0 and D > it), else D. */
int fcl_config_working_dim(const fcl_model_config *c, int feature_dim);

/* As a JSON object (malloc'd text, NULL when out of memory) and back; reading validates every
 * field and names the one at fault with `label` (the file). */
char *fcl_config_to_json(const fcl_model_config *c);
fewcl_status fcl_config_from_json(const char *label, const char *json, fcl_model_config *c);
/* Differences that change the parameters' shapes or meaning (not episode sizes, paths or
 * checkpointing), as "--flag a vs b" items in buf; returns how many. */
int fcl_config_architecture_diff(const fcl_model_config *a, const fcl_model_config *b, char *buf,
                                 size_t cap);

/* Names as on the command line; parsing returns -1 for an unknown name. Backbone names come
 * from the backbone table (an unknown id is named "unknown"). */
const char *fcl_backbone_name(fcl_backbone b);
int fcl_backbone_parse(const char *s);
const char *fcl_method_name(fcl_method m);
int fcl_method_parse(const char *s);
const char *fcl_variant_name(fcl_variant v);
int fcl_variant_parse(const char *s);
const char *fcl_mahalanobis_name(fcl_mahalanobis m);
int fcl_mahalanobis_parse(const char *s);
const char *fcl_checkpointing_name(fcl_checkpointing c);
int fcl_checkpointing_parse(const char *s);

#endif
