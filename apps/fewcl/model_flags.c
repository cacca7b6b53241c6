/* Model flags (see model_flags.h). */
#include "model_flags.h"

#include <stdio.h>
#include <stdlib.h>

static int number(const char *cmd, const char *flag, const char *arg, int *out) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || v < -1000000000L || v > 1000000000L) {
        fprintf(stderr, "fewcl %s: --%s needs an integer, not '%s'\n", cmd, flag, arg);
        return -1;
    }
    *out = (int)v;
    return 1;
}

static int choice(const char *cmd, const char *flag, const char *arg, int parsed, int *out,
                  const char *allowed) {
    if (parsed < 0) {
        fprintf(stderr, "fewcl %s: --%s must be one of %s, not '%s'\n", cmd, flag, allowed, arg);
        return -1;
    }
    *out = parsed;
    return 1;
}

int model_flag(int code, const char *arg, fcl_model_config *c, const char *cmd) {
    int v, r;
    switch (code - MODEL_FLAG_BASE) {
    case 0:
        r = choice(cmd, "backbone", arg, fcl_backbone_parse(arg), &v,
                   "conv4, conv6, resnet18, resnet34");
        if (r > 0) c->backbone = (fcl_backbone)v;
        return r;
    case 1: return number(cmd, "image-size", arg, &c->image_size);
    case 2:
        r = choice(cmd, "method", arg, fcl_method_parse(arg), &v, "enhanced, fsct");
        if (r > 0) fcl_config_set_method(c, (fcl_method)v);
        return r;
    case 3:
        r = choice(cmd, "variant", arg, fcl_variant_parse(arg), &v, "cosine, softmax");
        if (r > 0) c->variant = (fcl_variant)v;
        return r;
    case 4: return number(cmd, "n-way", arg, &c->n_way);
    case 5: return number(cmd, "k-shot", arg, &c->k_shot);
    case 6: return number(cmd, "n-query", arg, &c->n_query);
    case 7: return number(cmd, "reduced-dim", arg, &c->reduced_dim);
    case 8: return number(cmd, "depth", arg, &c->depth);
    case 9: return number(cmd, "heads", arg, &c->heads);
    case 10: return number(cmd, "dim-head", arg, &c->dim_head);
    case 11: return number(cmd, "mlp-dim", arg, &c->mlp_dim);
    case 12:
        r = choice(cmd, "mahalanobis", arg, fcl_mahalanobis_parse(arg), &v, "dense, lowrank, auto");
        if (r > 0) c->mahalanobis = (fcl_mahalanobis)v;
        return r;
    case 13: c->vic = 0; return 1;
    case 14:
        r = choice(cmd, "checkpoint", arg, fcl_checkpointing_parse(arg), &v,
                   "none, blocks, backbone, all");
        if (r > 0) c->checkpoint = (fcl_checkpointing)v;
        return r;
    case 15: c->freeze_backbone = 1; return 1;
    case 16: c->bn_batch_stats_at_test = 1; return 1;
    }
    return 0;
}
