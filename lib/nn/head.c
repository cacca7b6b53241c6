/* Dispatch of the head operations (see model.h). */
#include "model.h"

fewcl_status fcl_head_forward(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features,
                              int training, fcl_head_out *out) {
    return h->ops->forward(ctx, h, features, training, out);
}

fewcl_status fcl_head_backward(fewcl_context *ctx, fcl_head *h, const fcl_tensor **dfeatures) {
    return h->ops->backward(ctx, h, dfeatures);
}

void fcl_head_release(fewcl_context *ctx, fcl_head *h) { h->ops->release(ctx, h); }

void fcl_head_destroy(fewcl_context *ctx, fcl_head *h) {
    if (h) h->ops->destroy(ctx, h);
}

static fewcl_status unsupported(const fcl_head *h, const char *what) {
    return fcl_fail(FEWCL_ERR_ARGUMENT,
                    "%s: not available for the %s head",
                    what, h->ops->name);
}

fewcl_status fcl_head_embed(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features,
                            fcl_tensor *out) {
    if (!h->ops->embed) return unsupported(h, "embed");
    return h->ops->embed(ctx, h, features, out);
}

fewcl_status fcl_head_enroll(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features, int n,
                             int k, fcl_head_support **out) {
    *out = NULL;
    if (!h->ops->enroll) return unsupported(h, "enroll");
    return h->ops->enroll(ctx, h, features, n, k, out);
}

fewcl_status fcl_head_classify(fewcl_context *ctx, fcl_head *h, const fcl_head_support *sup,
                               const fcl_tensor *features, fcl_tensor *logits) {
    if (!h->ops->classify) return unsupported(h, "classify");
    return h->ops->classify(ctx, h, sup, features, logits);
}

void fcl_head_support_free(fewcl_context *ctx, fcl_head *h, fcl_head_support *sup) {
    if (sup && h->ops->support_free) h->ops->support_free(ctx, h, sup);
}

int fcl_head_support_uniform(const fcl_head_support *sup) { return sup ? sup->uniform : 0; }
