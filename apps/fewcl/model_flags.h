/* The model flags shared by every subcommand (docs/spec.md §7) and their parsing into a config. */
#ifndef FEWCL_APP_MODEL_FLAGS_H
#define FEWCL_APP_MODEL_FLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "fewcl/fewcl.h"

/* Option codes start here, above any short option letter. */
#define MODEL_FLAG_BASE 1000

/* getopt_long entries for the model flags, to splice into a command's own table. */
#define MODEL_FLAG_OPTIONS                                                                         \
    {"backbone", required_argument, 0, MODEL_FLAG_BASE + 0},                                       \
        {"image-size", required_argument, 0, MODEL_FLAG_BASE + 1},                                 \
        {"method", required_argument, 0, MODEL_FLAG_BASE + 2},                                     \
        {"variant", required_argument, 0, MODEL_FLAG_BASE + 3},                                    \
        {"n-way", required_argument, 0, MODEL_FLAG_BASE + 4},                                      \
        {"k-shot", required_argument, 0, MODEL_FLAG_BASE + 5},                                     \
        {"n-query", required_argument, 0, MODEL_FLAG_BASE + 6},                                    \
        {"reduced-dim", required_argument, 0, MODEL_FLAG_BASE + 7},                                \
        {"depth", required_argument, 0, MODEL_FLAG_BASE + 8},                                      \
        {"heads", required_argument, 0, MODEL_FLAG_BASE + 9},                                      \
        {"dim-head", required_argument, 0, MODEL_FLAG_BASE + 10},                                  \
        {"mlp-dim", required_argument, 0, MODEL_FLAG_BASE + 11},                                   \
        {"mahalanobis", required_argument, 0, MODEL_FLAG_BASE + 12},                               \
        {"no-vic", no_argument, 0, MODEL_FLAG_BASE + 13},                                          \
        {"checkpoint", required_argument, 0, MODEL_FLAG_BASE + 14},                                \
        {"freeze-backbone", no_argument, 0, MODEL_FLAG_BASE + 15}, {                               \
        "bn-batch-stats", no_argument, 0, MODEL_FLAG_BASE + 16                                     \
    }

/* The model flags with their defaults, taken from `d` (the config the command starts from);
 * `note` (or NULL) goes in the heading, e.g. where the values come from otherwise. */
void model_flags_help(FILE *f, const fewcl_model_config *d, const char *note);

/* Applies option `code` (from getopt_long) to cfg. Returns 1 when it was a model flag, 0 when
 * it is not one, and -1 after printing a usage error (exit 2). The method flag resets depth and
 * heads to that method's defaults, so give --depth/--heads after --method. */
int model_flag(int code, const char *arg, fewcl_model_config *cfg, const char *cmd);

/* The projection size as it acts: a reduced_dim above the feature size D means no projection,
 * recorded as D (so config.json and checkpoints say what the model is). */
void model_config_effective(fewcl_model_config *c);
/* The default model config (fewcl_model_config_default). */
fewcl_model_config model_config_default(void);
/* The name of a setting's value (fewcl_setting_name; "?" out of range). */
const char *setting_name(fewcl_setting s, int value);

#endif
