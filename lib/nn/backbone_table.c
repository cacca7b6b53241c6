/* The backbone table and the dispatch of the backbone operations (see backbone.h, model.h). */
#include "backbone.h"

#include <stdio.h>
#include <string.h>

#include "model.h"

/* Room for the built-in entries and a few registered ones. */
#define MAX_BACKBONES (FCL_N_BACKBONES + 12)

static const fcl_backbone_ops *registered[MAX_BACKBONES - FCL_N_BACKBONES];
static int n_registered;

int fcl_backbone_count(void) { return FCL_N_BACKBONES + n_registered; }

const fcl_backbone_ops *fcl_backbone_entry(int id) {
    if (id < 0 || id >= fcl_backbone_count()) return NULL;
    return id < FCL_N_BACKBONES ? fcl_builtin_backbones[id] : registered[id - FCL_N_BACKBONES];
}

int fcl_backbone_find(const char *name) {
    for (int id = 0; name && id < fcl_backbone_count(); id++)
        if (strcmp(fcl_backbone_entry(id)->name, name) == 0) return id;
    return -1;
}

int fcl_backbone_register(const fcl_backbone_ops *ops) {
    if (fcl_backbone_find(ops->name) >= 0) {
        fcl_fail(FEWCL_ERR_ARGUMENT, "backbone '%s' is registered already", ops->name);
        return -1;
    }
    if (fcl_backbone_count() == MAX_BACKBONES) {
        fcl_fail(FEWCL_ERR_ARGUMENT, "backbone '%s': the table holds %d backbones", ops->name,
                 MAX_BACKBONES);
        return -1;
    }
    registered[n_registered++] = ops;
    return fcl_backbone_count() - 1;
}

void fcl_backbone_list(char *buf, size_t cap) {
    size_t used = 0;
    if (cap) buf[0] = 0;
    for (int id = 0; id < fcl_backbone_count() && used < cap; id++) {
        int n =
            snprintf(buf + used, cap - used, "%s%s", id ? ", " : "", fcl_backbone_entry(id)->name);
        used += n > 0 ? (size_t)n : 0;
    }
}

int fcl_backbone_min_image_size(const fcl_backbone_ops *ops) {
    for (int s = 1; s <= 4096; s++) {
        int channels, side;
        ops->feature_shape(ops, s, &channels, &side);
        if (side >= 1) return s;
    }
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

fewcl_status fcl_backbone_create(fewcl_context *ctx, const fcl_model_config *cfg, fcl_params *P,
                                 const char *prefix, uint64_t seed, fcl_backbone_net **out) {
    *out = NULL;
    int ch, h, w; /* also rejects an unknown backbone and a too small image */
    FCL_TRY(fcl_config_feature_shape(cfg, &ch, &h, &w));
    const fcl_backbone_ops *e = fcl_backbone_entry((int)cfg->backbone);
    FCL_TRY(e->create(e, ctx, cfg, P, prefix, seed, out));
    (*out)->ops = e;
    (*out)->image_size = cfg->image_size;
    return FEWCL_OK;
}

void fcl_backbone_no_backward(fcl_backbone_net *net) { net->no_backward = 1; }

fewcl_status fcl_backbone_forward(fewcl_context *ctx, fcl_backbone_net *net, const fcl_tensor *x,
                                  int training, const fcl_tensor **features) {
    *features = NULL;
    const int S = net->image_size;
    if (x->ndim != 4 || x->shape[1] != 3 || x->shape[2] != S || x->shape[3] != S ||
        x->shape[0] < 1) {
        char a[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "backbone: input %s does not fit [B,3,%d,%d] (--image-size %d)",
                        fcl_shape_str(x, a, sizeof a), S, S, S);
    }
    fewcl_status s = net->ops->forward(ctx, net, x, training, features);
    net->no_backward = 0; /* one forward's */
    return s;
}

fewcl_status fcl_backbone_backward(fewcl_context *ctx, fcl_backbone_net *net,
                                   const fcl_tensor *dfeatures) {
    return net->ops->backward(ctx, net, dfeatures);
}

void fcl_backbone_release(fewcl_context *ctx, fcl_backbone_net *net) {
    if (net) net->ops->release(ctx, net);
}

void fcl_backbone_destroy(fewcl_context *ctx, fcl_backbone_net *net) {
    if (net) net->ops->destroy(ctx, net);
}
