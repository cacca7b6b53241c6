/* Public API (API 2): the settings' names, the sizes a config gives, config differences and
 * byte sizes, over the library's own tables (lib/nn/config.c, lib/train, lib/runtime). */
#include <stdio.h>

#include "../runtime/arena.h"
#include "../train/trainer.h"
#include "api.h"

/* The names of each setting's values, in the order of its public enum. */
static int names_of(fewcl_setting s, const char **names) {
    switch (s) {
    case FEWCL_SETTING_BACKBONE:
        for (int i = 0; i <= FCL_RESNET34; i++)
            names[i] = fcl_backbone_name((fcl_backbone)i);
        return FCL_RESNET34 + 1;
    case FEWCL_SETTING_METHOD:
        for (int i = 0; i <= FCL_METHOD_FSCT; i++)
            names[i] = fcl_method_name((fcl_method)i);
        return FCL_METHOD_FSCT + 1;
    case FEWCL_SETTING_VARIANT:
        for (int i = 0; i <= FCL_VARIANT_SOFTMAX; i++)
            names[i] = fcl_variant_name((fcl_variant)i);
        return FCL_VARIANT_SOFTMAX + 1;
    case FEWCL_SETTING_MAHALANOBIS:
        for (int i = 0; i <= FCL_MAHA_LOWRANK; i++)
            names[i] = fcl_mahalanobis_name((fcl_mahalanobis)i);
        return FCL_MAHA_LOWRANK + 1;
    case FEWCL_SETTING_CHECKPOINTING:
        for (int i = 0; i <= FCL_CKPT_ALL; i++)
            names[i] = fcl_checkpointing_name((fcl_checkpointing)i);
        return FCL_CKPT_ALL + 1;
    case FEWCL_SETTING_LR_SCHEDULE:
        names[0] = fcl_lr_schedule_name(FCL_LR_CONSTANT);
        names[1] = fcl_lr_schedule_name(FCL_LR_COSINE);
        return 2;
    }
    return 0;
}

static const char *setting_title(fewcl_setting s) {
    static const char *titles[] = {"backbone",         "method",        "variant",
                                   "mahalanobis path", "checkpointing", "lr schedule"};
    return (int)s >= 0 && (int)s <= FEWCL_SETTING_LR_SCHEDULE ? titles[s] : "setting";
}

const char *fewcl_setting_name(fewcl_setting s, int value) {
    const char *names[8];
    int n = names_of(s, names);
    return value >= 0 && value < n ? names[value] : NULL;
}

fewcl_status fewcl_setting_parse(fewcl_setting s, const char *name, int *value) {
    API_REQUIRE(name, "fewcl_setting_parse", "name");
    API_REQUIRE(value, "fewcl_setting_parse", "value");
    const char *names[8];
    int n = names_of(s, names);
    if (!n) return fcl_fail(FEWCL_ERR_ARGUMENT, "fewcl_setting_parse: unknown setting %d", (int)s);
    char list[160] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(name, names[i])) {
            *value = i;
            return FEWCL_OK;
        }
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    return fcl_fail(FEWCL_ERR_ARGUMENT, "'%s' is not a %s (%s)", name, setting_title(s), list);
}

fewcl_status fewcl_model_config_dims(const fewcl_model_config *cfg, int *feature_dim,
                                     int *embedding_dim) {
    fcl_model_config c;
    FCL_TRY(api_read_config("fewcl_model_config_dims", cfg, &c));
    int ch, h, w;
    FCL_TRY(fcl_config_feature_shape(&c, &ch, &h, &w));
    if (feature_dim) *feature_dim = ch * h * w;
    if (embedding_dim) *embedding_dim = fcl_config_working_dim(&c, ch * h * w);
    return FEWCL_OK;
}

fewcl_status fewcl_model_config_diff(const fewcl_model_config *a, const fewcl_model_config *b,
                                     char *buf, size_t cap, int *count) {
    const char *fn = "fewcl_model_config_diff";
    API_REQUIRE(buf, fn, "buf");
    if (!cap) return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: cap is 0", fn);
    fcl_model_config x, y;
    FCL_TRY(api_read_config(fn, a, &x));
    FCL_TRY(api_read_config(fn, b, &y));
    buf[0] = 0;
    int n = fcl_config_architecture_diff(&x, &y, buf, cap);
    if (count) *count = n;
    return FEWCL_OK;
}

fewcl_status fewcl_parse_size(const char *text, uint64_t *bytes) {
    API_REQUIRE(text, "fewcl_parse_size", "text");
    API_REQUIRE(bytes, "fewcl_parse_size", "bytes");
    size_t v;
    if (fcl_parse_bytes(text, &v) != 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "'%s' is not a size (examples: 1073741824, 512M, 8gb, 1.5GiB)", text);
    *bytes = v;
    return FEWCL_OK;
}
