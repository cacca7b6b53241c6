/* Public API: memory plans of one episode (lib/plan), as `fewcl plan` makes them. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "../plan/episode_plan.h"
#include "../plan/fit.h"
#include "api.h"
#include "fewcl/jobs.h"

_Static_assert(FEWCL_MEM_CATEGORIES == FCL_MEM_CATEGORIES, "memory categories match");

fewcl_status fewcl_plan_params_default(fewcl_plan_params *p, size_t struct_size) {
    API_REQUIRE(p, "fewcl_plan_params_default", "p");
    FCL_TRY(api_check_size("fewcl_plan_params_default", "p", struct_size));
    fewcl_plan_params full = {.struct_size = sizeof full, .training = 1, .meta_batch = 1};
    api_copy_out(p, struct_size, &full, sizeof full);
    return FEWCL_OK;
}

const char *fewcl_mem_category_name(int i) {
    return i >= 0 && i < FCL_MEM_CATEGORIES ? fcl_mem_category_name((fcl_mem_category)i) : NULL;
}

fewcl_status fewcl_plan(fewcl_context *ctx, const fewcl_model_config *config,
                        const fewcl_plan_params *params, fewcl_plan_result *r) {
    const char *fn = "fewcl_plan";
    API_REQUIRE(ctx, fn, "ctx");
    API_REQUIRE(params, fn, "the parameters");
    API_REQUIRE(r, fn, "the result");
    FCL_TRY(api_check_size(fn, "the parameters", params->struct_size));
    FCL_TRY(api_check_size(fn, "the result", r->struct_size));
    fcl_model_config cfg;
    FCL_TRY(api_read_config(fn, config, &cfg));
    FCL_TRY(fcl_config_validate(&cfg));
    fewcl_plan_params p;
    fewcl_plan_params_default(&p, sizeof p);
    api_copy_in(&p, sizeof p, params, params->struct_size);
    /* The device planned for: this one, or one of device_memory bytes; the budget: its memory,
     * FEWCL_MEM_LIMIT (for this device), or p.budget. */
    if (p.info) FCL_TRY(api_check_size(fn, "the plan info", p.info->struct_size));
    if (p.meta_batch < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: meta_batch %d: at least 1 episode per step", fn,
                        p.meta_batch);
    /* The schedule planned: evaluation (0) or training with M episodes per step; a replica
     * other than ctx's its share (episode_plan.h). */
    int schedule = p.training ? p.meta_batch : 0;
    if (p.replica) schedule = fcl_replica_schedule(schedule);
    fcl_limits target = ctx->limits;
    size_t limit = 0;
    if (p.device_memory) {
        target.global_mem = p.device_memory;
        target.max_alloc = p.max_alloc ? p.max_alloc : p.device_memory / 4;
        if (!target.profile) fcl_limits_apply_profile(&target, "gpu"); /* its GPU paths */
    } else {
        if (p.max_alloc) target.max_alloc = p.max_alloc;
        const char *env = getenv("FEWCL_MEM_LIMIT");
        if (env && *env) fcl_parse_bytes(env, &limit);
    }
    if (p.budget) limit = p.budget;
    fcl_fit_result fr = {0};
    fewcl_status s;
    if (p.fit) {
        s = fcl_plan_fit(ctx, &cfg, schedule, &target, limit, &fr);
    } else {
        fr.cfg = cfg;
        s = fcl_episode_plan_as(ctx, &cfg, schedule, &target, limit, &fr.stats);
        fr.fits = s == FEWCL_OK;
        if (s == FEWCL_ERR_OUT_OF_MEMORY) {
            snprintf(fr.first_failure, sizeof fr.first_failure, "%s", fewcl_last_error());
            s = FEWCL_OK;
        }
    }
    FCL_TRY(s);
    fewcl_plan_result full = {.struct_size = sizeof full,
                              .fits = fr.fits,
                              .peak_bytes = fr.stats.peak,
                              .reserved_bytes = fr.stats.peak_reserved,
                              .config = api_config_out(&fr.cfg)};
    for (int k = 0; k < FCL_MEM_CATEGORIES; k++) {
        full.at_peak[k] = fr.stats.by_category_at_peak[k];
        full.category_peak[k] = fr.stats.category_peak[k];
    }
    snprintf(full.reason, sizeof full.reason, "%.500s", fr.first_failure);
    snprintf(full.changes, sizeof full.changes, "%s", fr.changes);
    api_copy_out(r, r->struct_size, &full, sizeof full);
    api_fix_nested_size(r, r->struct_size, offsetof(fewcl_plan_result, config), sizeof full.config);
    if (p.info) {
        fewcl_plan_info info = {sizeof info,          target.global_mem,
                                target.max_alloc,     limit ? limit : target.global_mem,
                                p.fit ? fr.tried : 1, ""};
        snprintf(info.reason, sizeof info.reason, "%s", fr.first_failure);
        api_copy_out(p.info, p.info->struct_size, &info, sizeof info);
    }
    return FEWCL_OK;
}
