/* The backbone table: every backbone is one fcl_backbone_ops entry (its name, feature shape
 * and operations), found by its id (fcl_model_config.backbone) or its name. The built-in
 * entries (lib/nn/backbone.c: conv4, conv6, resnet18, resnet34) have the ids of the
 * fcl_backbone enum; fcl_backbone_register appends others (tests/test_toy_backbone.c adds one).
 * Configuration parsing, validation and the model use nothing but this table; the dispatch of
 * fcl_backbone_create/forward/backward/release/destroy (model.h) is lib/nn/backbone_table.c. */
#ifndef FEWCL_NN_BACKBONE_H
#define FEWCL_NN_BACKBONE_H

#include <stdint.h>

#include "config.h"
#include "params.h"

typedef struct fcl_backbone_net fcl_backbone_net;
typedef struct fcl_backbone_ops fcl_backbone_ops;

struct fcl_backbone_ops {
    const char *name; /* as on the command line and in a checkpoint's config */
    /* The feature map's channels and side for a square image of side s; a side below 1 means
     * the image is too small (the smallest usable size is found from this). */
    void (*feature_shape)(const fcl_backbone_ops *self, int s, int *channels, int *side);
    /* Registers the parameters in P under `prefix`, initialised from `seed` (see
     * fcl_backbone_create in model.h). *out's first member is a `fcl_backbone_net`. */
    fewcl_status (*create)(const fcl_backbone_ops *self, fewcl_context *ctx,
                           const fcl_model_config *cfg, fcl_params *P, const char *prefix,
                           uint64_t seed, fcl_backbone_net **out);
    /* As fcl_backbone_forward / _backward / _release / _destroy; forward gets an input whose
     * shape was checked ([B, 3, S, S], S = cfg->image_size). */
    fewcl_status (*forward)(fewcl_context *ctx, fcl_backbone_net *net, const fcl_tensor *x,
                            int training, const fcl_tensor **features);
    fewcl_status (*backward)(fewcl_context *ctx, fcl_backbone_net *net,
                             const fcl_tensor *dfeatures);
    void (*release)(fewcl_context *ctx, fcl_backbone_net *net);
    void (*destroy)(fewcl_context *ctx, fcl_backbone_net *net);
    const int *layers; /* the entry's own shape data (ConvNet: depth; ResNet: blocks per stage) */
    /* What PyTorch's model registers (parameters and BatchNorm running statistics, without
     * num_batches_tracked): tests compare every entry's fcl_params with these. */
    size_t torch_numel;
    int torch_tensors;
};

/* The first member of every backbone's own struct; fcl_backbone_create fills it in. */
struct fcl_backbone_net {
    const fcl_backbone_ops *ops;
    int image_size;  /* S: forward's input is [B, 3, S, S] */
    int no_backward; /* the next forward is an evaluation's (fcl_backbone_no_backward) */
};

/* The built-in entries, indexed by fcl_backbone (lib/nn/backbone.c). */
extern const fcl_backbone_ops *const fcl_builtin_backbones[FCL_N_BACKBONES];

/* How many entries the table has (built-in ones first); the entry of an id, NULL when the id
 * is not one; the id of a name, -1 when none has it. */
int fcl_backbone_count(void);
const fcl_backbone_ops *fcl_backbone_entry(int id);
int fcl_backbone_find(const char *name);
/* Adds an entry (kept by pointer: it must outlive every use) and returns its id; a name that is
 * taken or a full table is an error (-1, message set). Not thread-safe: register before
 * creating models. */
int fcl_backbone_register(const fcl_backbone_ops *ops);
/* The names of all entries, ", "-separated, into buf (for help texts and messages). */
void fcl_backbone_list(char *buf, size_t cap);
/* The smallest image side with a non-empty feature map, or 0 when none up to 4096 is. */
int fcl_backbone_min_image_size(const fcl_backbone_ops *ops);

#endif
