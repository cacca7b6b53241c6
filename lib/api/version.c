/* Versions, versioned structs and model configurations of the public API. */
#include "api.h"

#include "fewcl/model.h"

_Static_assert((int)FEWCL_RESNET34 == (int)FCL_RESNET34, "backbone enums match");
_Static_assert((int)FEWCL_METHOD_FSCT == (int)FCL_METHOD_FSCT, "method enums match");
_Static_assert((int)FEWCL_VARIANT_SOFTMAX == (int)FCL_VARIANT_SOFTMAX, "variant enums match");
_Static_assert((int)FEWCL_MAHA_LOWRANK == (int)FCL_MAHA_LOWRANK, "mahalanobis enums match");
_Static_assert((int)FEWCL_CKPT_ALL == (int)FCL_CKPT_ALL, "checkpointing enums match");

const char *fewcl_version(void) { return FEWCL_VERSION; }
int fewcl_api_version(void) { return FEWCL_API_VERSION; }

fewcl_status api_check_size(const char *fn, const char *what, size_t struct_size) {
    if (struct_size < sizeof(size_t))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: %s has struct_size %zu; fill it with its *_default function "
                        "(passing sizeof the struct) first",
                        fn, what, struct_size);
    return FEWCL_OK;
}

void api_copy_in(void *dst, size_t full, const void *src, size_t struct_size) {
    memcpy(dst, src, struct_size < full ? struct_size : full);
    *(size_t *)dst = full;
}

void api_copy_out(void *dst, size_t struct_size, const void *src, size_t full) {
    memcpy(dst, src, struct_size < full ? struct_size : full);
    *(size_t *)dst = struct_size;
}

void api_fix_nested_size(void *dst, size_t struct_size, size_t at, size_t nested_full) {
    if (struct_size < at + sizeof(size_t)) return;
    size_t room = struct_size - at;
    *(size_t *)((char *)dst + at) = room < nested_full ? room : nested_full;
}

fcl_model_config api_config_in(const fewcl_model_config *c) {
    return (fcl_model_config){.backbone = (fcl_backbone)c->backbone,
                              .image_size = c->image_size,
                              .method = (fcl_method)c->method,
                              .variant = (fcl_variant)c->variant,
                              .n_way = c->n_way,
                              .k_shot = c->k_shot,
                              .n_query = c->n_query,
                              .reduced_dim = c->reduced_dim,
                              .depth = c->depth,
                              .heads = c->heads,
                              .dim_head = c->dim_head,
                              .mlp_dim = c->mlp_dim,
                              .mahalanobis = (fcl_mahalanobis)c->mahalanobis,
                              .vic = c->vic,
                              .checkpoint = (fcl_checkpointing)c->checkpointing,
                              .freeze_backbone = c->freeze_backbone,
                              .bn_batch_stats_at_test = c->bn_batch_stats_at_test};
}

fewcl_model_config api_config_out(const fcl_model_config *c) {
    return (fewcl_model_config){.struct_size = sizeof(fewcl_model_config),
                                .backbone = (fewcl_backbone)c->backbone,
                                .image_size = c->image_size,
                                .method = (fewcl_method)c->method,
                                .variant = (fewcl_variant)c->variant,
                                .n_way = c->n_way,
                                .k_shot = c->k_shot,
                                .n_query = c->n_query,
                                .reduced_dim = c->reduced_dim,
                                .depth = c->depth,
                                .heads = c->heads,
                                .dim_head = c->dim_head,
                                .mlp_dim = c->mlp_dim,
                                .mahalanobis = (fewcl_mahalanobis)c->mahalanobis,
                                .vic = c->vic,
                                .checkpointing = (fewcl_checkpointing)c->checkpoint,
                                .freeze_backbone = c->freeze_backbone,
                                .bn_batch_stats_at_test = c->bn_batch_stats_at_test};
}

/* The enum fields hold one of their values (the library's own checks start from there). */
static fewcl_status check_enums(const char *fn, const fewcl_model_config *c) {
    struct {
        const char *name;
        int value, last;
    } e[] = {{"backbone", (int)c->backbone, FEWCL_RESNET34},
             {"method", (int)c->method, FEWCL_METHOD_FSCT},
             {"variant", (int)c->variant, FEWCL_VARIANT_SOFTMAX},
             {"mahalanobis", (int)c->mahalanobis, FEWCL_MAHA_LOWRANK},
             {"checkpointing", (int)c->checkpointing, FEWCL_CKPT_ALL}};
    for (size_t i = 0; i < sizeof e / sizeof *e; i++)
        if (e[i].value < 0 || e[i].value > e[i].last)
            return fcl_fail(FEWCL_ERR_ARGUMENT,
                            "%s: model config %s %d is not one of its values (0 to %d)", fn,
                            e[i].name, e[i].value, e[i].last);
    return FEWCL_OK;
}

fewcl_status api_read_config(const char *fn, const fewcl_model_config *c, fcl_model_config *out) {
    API_REQUIRE(c, fn, "the model config");
    FCL_TRY(api_check_size(fn, "the model config", c->struct_size));
    fcl_model_config d = fcl_config_default();
    fewcl_model_config full = api_config_out(&d);
    api_copy_in(&full, sizeof full, c, c->struct_size);
    FCL_TRY(check_enums(fn, &full));
    *out = api_config_in(&full);
    return FEWCL_OK;
}

fewcl_status fewcl_model_config_default(fewcl_model_config *cfg, size_t struct_size) {
    API_REQUIRE(cfg, "fewcl_model_config_default", "cfg");
    FCL_TRY(api_check_size("fewcl_model_config_default", "cfg", struct_size));
    fcl_model_config d = fcl_config_default();
    fewcl_model_config full = api_config_out(&d);
    api_copy_out(cfg, struct_size, &full, sizeof full);
    return FEWCL_OK;
}

fewcl_status fewcl_model_config_set_method(fewcl_model_config *cfg, fewcl_method m) {
    fcl_model_config c;
    FCL_TRY(api_read_config("fewcl_model_config_set_method", cfg, &c));
    if (m != FEWCL_METHOD_ENHANCED && m != FEWCL_METHOD_FSCT)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fewcl_model_config_set_method: unknown method %d",
                        (int)m);
    fcl_config_set_method(&c, (fcl_method)m);
    fewcl_model_config full = api_config_out(&c);
    api_copy_out(cfg, cfg->struct_size, &full, sizeof full);
    return FEWCL_OK;
}

fewcl_status fewcl_model_config_validate(const fewcl_model_config *cfg) {
    fcl_model_config c;
    FCL_TRY(api_read_config("fewcl_model_config_validate", cfg, &c));
    return fcl_config_validate(&c);
}
