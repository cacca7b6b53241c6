/* Public API: models (create, load, save, query). */
#include <stdlib.h>

#include "../train/checkpoint.h"
#include "api.h"

static fewcl_status wrap(fewcl_context *ctx, fcl_model *m, fewcl_model **out) {
    fewcl_model *h = calloc(1, sizeof *h);
    if (!h) {
        fcl_model_destroy(ctx, m);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "model: out of host memory");
    }
    h->ctx = ctx, h->m = m;
    *out = h;
    return FEWCL_OK;
}

fewcl_status fewcl_model_create(fewcl_context *ctx, const fewcl_model_config *cfg, uint64_t seed,
                                fewcl_model **out) {
    API_REQUIRE(out, "fewcl_model_create", "out");
    *out = NULL;
    API_REQUIRE(ctx, "fewcl_model_create", "ctx");
    fcl_model_config c;
    FCL_TRY(api_read_config("fewcl_model_create", cfg, &c));
    fcl_model *m;
    FCL_TRY(fcl_model_create(ctx, &c, seed, &m));
    return wrap(ctx, m, out);
}

fewcl_status fewcl_model_load(fewcl_context *ctx, const char *path, const fewcl_model_config *cfg,
                              fewcl_model **out) {
    API_REQUIRE(out, "fewcl_model_load", "out");
    *out = NULL;
    API_REQUIRE(ctx, "fewcl_model_load", "ctx");
    API_REQUIRE(path, "fewcl_model_load", "path");
    fcl_model_config c = fcl_config_default(), saved;
    if (cfg) FCL_TRY(api_read_config("fewcl_model_load", cfg, &c));
    int found = 0;
    FCL_TRY(fcl_checkpoint_read_config(path, &saved, &found));
    if (!found && !cfg)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fewcl_model_load: %s stores no fewcl config (weights exported from "
                        "PyTorch?): pass the model config that describes them",
                        path);
    /* The training episode shape stored in the file: the learned prototype weights are shaped
     * by it, and enrolment handles any other shape. */
    if (found && !cfg) c = saved;
    if (found) c.n_way = saved.n_way, c.k_shot = saved.k_shot, c.n_query = saved.n_query;
    fcl_model *m;
    FCL_TRY(fcl_checkpoint_open_model(ctx, path, &c, &m, NULL));
    return wrap(ctx, m, out);
}

fewcl_status fewcl_model_load_as(fewcl_context *ctx, const char *path,
                                 const fewcl_model_config *cfg, fewcl_model **out,
                                 int *uniform_weights) {
    const char *fn = "fewcl_model_load_as";
    API_REQUIRE(out, fn, "out");
    *out = NULL;
    if (uniform_weights) *uniform_weights = 0;
    API_REQUIRE(ctx, fn, "ctx");
    API_REQUIRE(path, fn, "path");
    fcl_model_config c;
    FCL_TRY(api_read_config(fn, cfg, &c));
    /* The checkpoint's architecture with cfg's episode shape and run settings: the path
     * `fewcl test` has always taken, so its results are unchanged. */
    int uniform = 0;
    fcl_model *m;
    FCL_TRY(fcl_checkpoint_open_model(ctx, path, &c, &m, &uniform));
    if (uniform_weights) *uniform_weights = uniform;
    return wrap(ctx, m, out);
}

fewcl_status fewcl_model_read_config(const char *path, fewcl_model_config *cfg, int *found) {
    const char *fn = "fewcl_model_read_config";
    API_REQUIRE(path, fn, "path");
    API_REQUIRE(cfg, fn, "cfg");
    API_REQUIRE(found, fn, "found");
    FCL_TRY(api_check_size(fn, "cfg", cfg->struct_size));
    fcl_model_config c;
    *found = 0;
    FCL_TRY(fcl_checkpoint_read_config(path, &c, found));
    if (*found) {
        fewcl_model_config full = api_config_out(&c);
        api_copy_out(cfg, cfg->struct_size, &full, sizeof full);
    }
    return FEWCL_OK;
}

fewcl_status fewcl_model_load_backbone(fewcl_model *m, const char *path, const char *prefix) {
    API_REQUIRE(m, "fewcl_model_load_backbone", "the model");
    API_REQUIRE(path, "fewcl_model_load_backbone", "path");
    return fcl_model_load_backbone(m->ctx, m->m, path, prefix ? prefix : "");
}

fewcl_status fewcl_model_save(fewcl_model *m, const char *path) {
    API_REQUIRE(m, "fewcl_model_save", "the model");
    API_REQUIRE(path, "fewcl_model_save", "path");
    return fcl_checkpoint_save(m->ctx, m->m, 0, NULL, path);
}

fewcl_status fewcl_model_get_config(const fewcl_model *m, fewcl_model_config *cfg) {
    API_REQUIRE(m, "fewcl_model_get_config", "the model");
    API_REQUIRE(cfg, "fewcl_model_get_config", "cfg");
    FCL_TRY(api_check_size("fewcl_model_get_config", "cfg", cfg->struct_size));
    fewcl_model_config full = api_config_out(&m->m->cfg);
    api_copy_out(cfg, cfg->struct_size, &full, sizeof full);
    return FEWCL_OK;
}

int fewcl_model_embedding_dim(const fewcl_model *m) { return m ? m->m->working_dim : 0; }

void fewcl_model_destroy(fewcl_model *m) {
    if (!m) return;
    fcl_model_destroy(m->ctx, m->m);
    free(m);
}
