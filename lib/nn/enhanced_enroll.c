/* Enrolment and classification with the enhanced head (see fcl_head_enroll in model.h): the
 * episode forward of enhanced.c cut in two at the support/query boundary. Enrolment projects
 * the supports and keeps S [n,k,D′], the prototypes p [n,D′] and the Mahalanobis factors;
 * classification projects the queries, runs the attention blocks against p and applies the
 * factors. Every step is the forward's own function on the same values (fcl_enh_project,
 * fcl_enh_block_forward, fcl_mahalanobis_factor/apply), so at the trained support shape the
 * logits of an episode's queries are the forward's. Temporaries go on the head's saved list
 * and are popped before returning. */
#include <stdlib.h>

#include "../ops/rowwise.h"
#include "enhanced_impl.h"

typedef struct enh_support {
    fcl_head_support base;
    fcl_tensor s, p, x; /* supports [n,k,D′], prototypes [n,D′], centred supports [n,k,D′] */
    fcl_maha_factor factor;
} enh_support;

static fewcl_status check_features(const enhanced *h, const fcl_tensor *x, const char *what) {
    char s[64];
    if (x->ndim != 2 || x->shape[1] != h->D || x->shape[0] < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "enhanced head %s: features %s, expected [rows,%d]",
                        what, fcl_shape_str(x, s, sizeof s), h->D);
    return FEWCL_OK;
}

fewcl_status fcl_enh_embed(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features,
                           fcl_tensor *out) {
    enhanced *h = (enhanced *)base;
    FCL_TRY(check_features(h, features, "embed"));
    if (out->ndim != 2 || out->shape[0] != features->shape[0] || out->shape[1] != h->Dp)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "enhanced head embed: output must be [%d,%d]",
                        features->shape[0], h->Dp);
    fcl_enh_release(ctx, base);
    fewcl_status s = fcl_enh_project(ctx, h, features);
    if (s == FEWCL_OK) s = fcl_enh_copy(ctx, h->z, out);
    fcl_enh_release(ctx, base);
    return s;
}

static fewcl_status enroll_impl(fewcl_context *ctx, enhanced *h, const fcl_tensor *features,
                                enh_support *e) {
    const int n = e->base.n, k = e->base.k, d = h->Dp;
    FCL_TRY(fcl_enh_project(ctx, h, features));
    FCL_TRY(fcl_tensor_alloc(ctx, &e->s, FCL_MEM_ACTIVATION, 3, (int[]){n, k, d}));
    FCL_TRY(fcl_enh_copy(ctx, h->z, &e->s));
    /* shot weights: softmax of the learned proto_weight, or of zeros for another shape */
    fcl_tensor *w, *zeros;
    FCL_TRY(fcl_enh_save(ctx, h, 2, (int[]){n, k}, &w));
    if (e->base.uniform) {
        FCL_TRY(fcl_enh_save(ctx, h, 2, (int[]){n, k}, &zeros));
        FCL_TRY(fcl_fill(ctx, zeros, 0.0f));
        FCL_TRY(fcl_softmax_forward(ctx, zeros, 1.0f, w));
    } else {
        fcl_tensor pw = h->P->items[h->ip_proto].value;
        pw.owner = 0, pw.ndim = 2, pw.shape[0] = n, pw.shape[1] = k;
        FCL_TRY(fcl_softmax_forward(ctx, &pw, 1.0f, w));
    }
    FCL_TRY(fcl_tensor_alloc2(ctx, &e->p, FCL_MEM_ACTIVATION, n, d));
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, 1, d, k, 1.0f, (fcl_matrix){w, 0, k}, (size_t)k,
                                     (fcl_matrix){&e->s, 0, d}, (size_t)k * d, 0.0f,
                                     (fcl_matrix){&e->p, 0, d}, (size_t)d, n));
    FCL_TRY(fcl_tensor_alloc(ctx, &e->x, FCL_MEM_ACTIVATION, 3, (int[]){n, k, d}));
    return fcl_mahalanobis_factor(ctx, fcl_enh_maha_path(h, e->base.k), &e->s, &e->x, &e->factor);
}

fewcl_status fcl_enh_enroll(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features, int n,
                            int k, fcl_head_support **out) {
    enhanced *h = (enhanced *)base;
    *out = NULL;
    FCL_TRY(check_features(h, features, "enroll"));
    if (n < 1 || k < 1 || features->shape[0] != n * k)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "enhanced head enroll: %d support rows for %d classes x %d shots",
                        features->shape[0], n, k);
    enh_support *e = calloc(1, sizeof *e);
    if (!e) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "enroll: out of host memory");
    e->base = (fcl_head_support){n, k, n != h->cfg.n_way || k != h->cfg.k_shot};
    fcl_enh_release(ctx, base);
    fewcl_status s = enroll_impl(ctx, h, features, e);
    fcl_enh_release(ctx, base);
    if (s != FEWCL_OK) {
        fcl_enh_support_free(ctx, base, &e->base);
        return s;
    }
    *out = &e->base;
    return FEWCL_OK;
}

static fewcl_status classify_impl(fewcl_context *ctx, enhanced *h, const enh_support *e,
                                  const fcl_tensor *features, fcl_tensor *logits) {
    const int Q = features->shape[0], n = e->base.n, d = h->Dp;
    FCL_TRY(fcl_enh_project(ctx, h, features));
    /* the blocks read the episode sizes and the prototypes from the head */
    h->n = n, h->Q = Q;
    h->p = (fcl_tensor *)&e->p;
    fcl_tensor *hcur = h->z;
    for (int b = 0; b < h->cfg.depth; b++) {
        FCL_TRY(fcl_enh_block_forward(ctx, h, b, hcur, &h->blk[b], 0));
        if (h->checkpoint) fcl_enh_block_keep_output(ctx, &h->blk[b]);
        hcur = h->blk[b].h2;
    }
    fcl_tensor *y;
    FCL_TRY(fcl_enh_save(ctx, h, 3, (int[]){n, Q, d}, &y));
    return fcl_mahalanobis_apply(ctx, &e->factor, &e->p, hcur, logits, y);
}

fewcl_status fcl_enh_classify(fewcl_context *ctx, fcl_head *base, const fcl_head_support *sup,
                              const fcl_tensor *features, fcl_tensor *logits) {
    enhanced *h = (enhanced *)base;
    const enh_support *e = (const enh_support *)sup;
    FCL_TRY(check_features(h, features, "classify"));
    if (logits->ndim != 2 || logits->shape[0] != features->shape[0] ||
        logits->shape[1] != e->base.n)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "enhanced head classify: logits must be [%d,%d]",
                        features->shape[0], e->base.n);
    fcl_enh_release(ctx, base);
    const int n = h->n, Q = h->Q;
    fcl_tensor *p = h->p;
    fewcl_status s = classify_impl(ctx, h, e, features, logits);
    h->n = n, h->Q = Q, h->p = p;
    fcl_enh_release(ctx, base);
    return s;
}

void fcl_enh_support_free(fewcl_context *ctx, fcl_head *base, fcl_head_support *sup) {
    enh_support *e = (enh_support *)sup;
    if (!e) return;
    fcl_mahalanobis_factor_free(ctx, &e->factor);
    fcl_tensor_free(ctx, &e->x);
    fcl_tensor_free(ctx, &e->p);
    fcl_tensor_free(ctx, &e->s);
    free(e);
}
