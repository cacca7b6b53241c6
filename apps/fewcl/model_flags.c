/* Model flags (see model_flags.h). */
#include "model_flags.h"

#include "cli.h"

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

/* The setting's names, from the library's table, joined by `sep` ("conv4, conv6, ..."). */
static void setting_names(fewcl_setting setting, const char *sep, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int v = 0; fewcl_setting_name(setting, v) && n < cap; v++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", v ? sep : "",
                              fewcl_setting_name(setting, v));
}

static int choice(const char *cmd, const char *flag, const char *arg, fewcl_setting setting,
                  int *out) {
    if (fewcl_setting_parse(setting, arg, out) != FEWCL_OK) {
        char allowed[256];
        setting_names(setting, ", ", allowed, sizeof allowed);
        fprintf(stderr, "fewcl %s: --%s must be one of %s, not '%s'\n", cmd, flag, allowed, arg);
        return -1;
    }
    return 1;
}

fewcl_model_config model_config_default(void) {
    fewcl_model_config c;
    fewcl_model_config_default(&c, sizeof c);
    return c;
}

const char *setting_name(fewcl_setting s, int value) {
    const char *name = fewcl_setting_name(s, value);
    return name ? name : "?";
}

int model_flag(int code, const char *arg, fewcl_model_config *c, const char *cmd) {
    int v, r;
    switch (code - MODEL_FLAG_BASE) {
    case 0:
        r = choice(cmd, "backbone", arg, FEWCL_SETTING_BACKBONE, &v);
        if (r > 0) c->backbone = (fewcl_backbone)v;
        return r;
    case 1: return number(cmd, "image-size", arg, &c->image_size);
    case 2:
        r = choice(cmd, "method", arg, FEWCL_SETTING_METHOD, &v);
        if (r > 0) fewcl_model_config_set_method(c, (fewcl_method)v);
        return r;
    case 3:
        r = choice(cmd, "variant", arg, FEWCL_SETTING_VARIANT, &v);
        if (r > 0) c->variant = (fewcl_variant)v;
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
        r = choice(cmd, "mahalanobis", arg, FEWCL_SETTING_MAHALANOBIS, &v);
        if (r > 0) c->mahalanobis = (fewcl_mahalanobis)v;
        return r;
    case 13: c->vic = 0; return 1;
    case 14:
        r = choice(cmd, "checkpoint", arg, FEWCL_SETTING_CHECKPOINTING, &v);
        if (r > 0) c->checkpointing = (fewcl_checkpointing)v;
        return r;
    case 15: c->freeze_backbone = 1; return 1;
    case 16: c->bn_batch_stats_at_test = 1; return 1;
    }
    return 0;
}

void model_flags_help(FILE *f, const fewcl_model_config *d, const char *note) {
    char v[16][48];
    fewcl_model_config fsct = *d;
    fewcl_model_config_set_method(&fsct, FEWCL_METHOD_FSCT);
    snprintf(v[0], 48, "%s", setting_name(FEWCL_SETTING_BACKBONE, d->backbone));
    snprintf(v[1], 48, "%d", d->image_size);
    snprintf(v[2], 48, "%s", setting_name(FEWCL_SETTING_METHOD, d->method));
    snprintf(v[3], 48, "%s", setting_name(FEWCL_SETTING_VARIANT, d->variant));
    snprintf(v[4], 48, "%d", d->n_way);
    snprintf(v[5], 48, "%d", d->k_shot);
    snprintf(v[6], 48, "%d", d->n_query);
    snprintf(v[7], 48, "%d", d->reduced_dim);
    snprintf(v[8], 48, "%d; fsct: %d", d->depth, fsct.depth);
    snprintf(v[9], 48, "%d; fsct: %d", d->heads, fsct.heads);
    snprintf(v[10], 48, "%d", d->dim_head);
    snprintf(v[11], 48, "%d", d->mlp_dim);
    snprintf(v[12], 48, "%s", setting_name(FEWCL_SETTING_MAHALANOBIS, d->mahalanobis));
    snprintf(v[13], 48, "%s", d->vic ? "with VIC" : "without");
    snprintf(v[14], 48, "%s", setting_name(FEWCL_SETTING_CHECKPOINTING, d->checkpointing));
    snprintf(v[15], 48, "%s", d->freeze_backbone ? "on" : "off");
    char backbones[128];
    setting_names(FEWCL_SETTING_BACKBONE, ", ", backbones, sizeof backbones);
    const cli_flag_help items[] = {
        {"--backbone NAME", backbones, v[0]},
        {"--image-size N", "side of the (square) model input", v[1]},
        {"--method NAME", "enhanced or fsct (the original head)", v[2]},
        {"--variant NAME", "attention: cosine or softmax", v[3]},
        {"--n-way N", "classes per episode", v[4]},
        {"--k-shot N", "labelled images per class", v[5]},
        {"--n-query N", "query images per class", v[6]},
        {"--reduced-dim N", "feature projection (0, >= D: none)", v[7]},
        {"--depth N", "attention blocks", v[8]},
        {"--heads N", "heads (after --method)", v[9]},
        {"--dim-head N", "size of each head", v[10]},
        {"--mlp-dim N", "hidden size of the MLPs", v[11]},
        {"--mahalanobis PATH", "dense, lowrank or auto", v[12]},
        {"--no-vic", "no VIC losses", v[13]},
        {"--checkpoint WHAT", "recompute none|blocks|backbone|all", v[14]},
        {"--freeze-backbone", "train the head only", v[15]},
        {"--bn-batch-stats", "episode BatchNorm stats at test",
         d->bn_batch_stats_at_test ? "on" : "off"},
    };
    char heading[160];
    snprintf(heading, sizeof heading, "model flags%s%s%s:", note ? " (" : "", note ? note : "",
             note ? ")" : "");
    cli_help_flags(f, heading, items, (int)(sizeof items / sizeof *items));
}

void model_config_effective(fewcl_model_config *c) {
    int D;
    if (c->method != FEWCL_METHOD_ENHANCED || fewcl_model_config_dims(c, &D, NULL) != FEWCL_OK)
        return;
    if (c->reduced_dim > D) c->reduced_dim = D;
}
