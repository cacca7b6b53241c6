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
