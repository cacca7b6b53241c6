/* The cheapest configuration that fits (see fit.h). */
#include "fit.h"

#include <stdio.h>
#include <string.h>

#include "episode_plan.h"

/* The flags that turn `from` into `to`, as a user would type them. */
static void describe(const fcl_model_config *from, const fcl_model_config *to, char *buf,
                     size_t cap) {
    buf[0] = 0;
    size_t used = 0;
    if (to->mahalanobis != from->mahalanobis)
        used += (size_t)snprintf(buf + used, cap - used, "--mahalanobis %s ",
                                 fcl_mahalanobis_name(to->mahalanobis));
    if (used < cap && to->checkpoint != from->checkpoint)
        used += (size_t)snprintf(buf + used, cap - used, "--checkpoint %s ",
                                 fcl_checkpointing_name(to->checkpoint));
    if (used < cap && to->reduced_dim != from->reduced_dim)
        used += (size_t)snprintf(buf + used, cap - used, "--reduced-dim %d ", to->reduced_dim);
    if (used > 0 && used <= cap) buf[used - 1] = 0;
}

/* Plans one candidate; OUT_OF_MEMORY means "does not fit", other failures are errors. */
static fewcl_status try_one(fewcl_context *ctx, const fcl_model_config *c, int training,
                            const fcl_limits *device, size_t limit, fcl_fit_result *r, int *fits) {
    r->tried++;
    fewcl_status s = fcl_episode_plan_as(ctx, c, training, device, limit, &r->stats);
    r->cfg = *c;
    *fits = s == FEWCL_OK;
    if (s == FEWCL_ERR_OUT_OF_MEMORY && r->tried == 1)
        snprintf(r->first_failure, sizeof r->first_failure, "%s", fewcl_last_error());
    return s == FEWCL_ERR_OUT_OF_MEMORY ? FEWCL_OK : s;
}

fewcl_status fcl_plan_fit(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                          const fcl_limits *device, size_t limit, fcl_fit_result *r) {
    memset(r, 0, sizeof *r);
    FCL_TRY(fcl_config_validate(cfg));
    int ch, h, w;
    FCL_TRY(fcl_config_feature_shape(cfg, &ch, &h, &w));
    int D = ch * h * w;
    /* Projection sizes: as given, then halvings while the projection stays active. A config
     * without projection (reduced_dim 0 or D <= r) first tries the default 512. */
    int dims[8], n_dims = 0;
    dims[n_dims++] = cfg->reduced_dim;
    if (cfg->method == FCL_METHOD_ENHANCED) {
        int r0 = cfg->reduced_dim > 0 && cfg->reduced_dim < D ? cfg->reduced_dim / 2 : 512;
        for (int rd = r0; rd >= 64 && n_dims < 8; rd /= 2)
            if (rd < D) dims[n_dims++] = rd;
    }
    fcl_checkpointing ckpts[] = {FCL_CKPT_NONE, FCL_CKPT_BLOCKS, FCL_CKPT_BACKBONE, FCL_CKPT_ALL};
    fcl_mahalanobis mahas[] = {cfg->mahalanobis, FCL_MAHA_LOWRANK};
    int n_mahas =
        cfg->method == FCL_METHOD_ENHANCED && cfg->mahalanobis != FCL_MAHA_LOWRANK ? 2 : 1;
    for (int di = 0; di < n_dims; di++)
        for (int mi = 0; mi < n_mahas; mi++)
            for (int ci = 0; ci < 4; ci++) {
                /* Checkpointing only grows from what was asked (ALL covers both kinds). */
                if (ci > 0 && ckpts[ci] <= cfg->checkpoint) continue;
                fcl_model_config c = *cfg;
                c.reduced_dim = dims[di];
                c.mahalanobis = mahas[mi];
                c.checkpoint = ckpts[ci] == FCL_CKPT_NONE ? cfg->checkpoint : ckpts[ci];
                if (!training && c.checkpoint != cfg->checkpoint) continue; /* no backward */
                int fits;
                FCL_TRY(try_one(ctx, &c, training, device, limit, r, &fits));
                if (fits) {
                    r->fits = 1;
                    describe(cfg, &c, r->changes, sizeof r->changes);
                    return FEWCL_OK;
                }
            }
    return FEWCL_OK;
}
