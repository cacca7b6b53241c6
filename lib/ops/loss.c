/* Cross-entropy and accuracy launchers (cl/loss.cl). */
#include "loss.h"

static fcl_kernel_handle k_ce_forward = FCL_KERNEL_HANDLE("loss", "ce_forward");
static fcl_kernel_handle k_ce_backward = FCL_KERNEL_HANDLE("loss", "ce_backward");
static fcl_kernel_handle k_accuracy = FCL_KERNEL_HANDLE("loss", "accuracy");
static fcl_kernel_handle k_episode_labels = FCL_KERNEL_HANDLE("loss", "episode_labels");

static fewcl_status check(const char *op, const fcl_tensor *z, const fcl_tensor *labels,
                          const char *what, const fcl_tensor *out, size_t out_numel) {
    char sz[64], sl[64], so[64];
    if (z->ndim != 2 || z->shape[0] < 1 || labels->numel != (size_t)z->shape[0] ||
        out->numel != out_numel)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: logits %s, labels %s and %s %s do not fit logits [rows,classes], "
                        "labels [rows], %s of %zu elements",
                        op, fcl_shape_str(z, sz, sizeof sz), fcl_shape_str(labels, sl, sizeof sl),
                        what, fcl_shape_str(out, so, sizeof so), what, out_numel);
    return FEWCL_OK;
}

/* The scalar reductions run as one work-group. */
static fewcl_status launch_one_group(fewcl_context *ctx, fcl_kernel_entry *k) {
    size_t lws = fcl_kernel_wg_1d(ctx, k), gws = lws;
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_cross_entropy_forward(fewcl_context *ctx, const fcl_tensor *logits,
                                       const fcl_tensor *labels, fcl_tensor *loss) {
    FCL_TRY(check("cross-entropy forward", logits, labels, "loss", loss, 1));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_ce_forward, &k));
    FCL_TRY(fcl_args(k, "tttuuL", logits, labels, loss, (unsigned)logits->shape[0],
                     (unsigned)logits->shape[1], fcl_kernel_wg_1d(ctx, k) * sizeof(float)));
    return launch_one_group(ctx, k);
}

fewcl_status fcl_cross_entropy_backward(fewcl_context *ctx, const fcl_tensor *logits,
                                        const fcl_tensor *labels, const fcl_tensor *dloss,
                                        fcl_tensor *dlogits) {
    FCL_TRY(check("cross-entropy backward", logits, labels, "dlogits", dlogits, logits->numel));
    if (dloss->numel != 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "cross-entropy backward: dloss has %zu elements, "
                        "need 1",
                        dloss->numel);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_ce_backward, &k));
    FCL_TRY(fcl_args(k, "ttttuu", logits, labels, dloss, dlogits, (unsigned)logits->shape[0],
                     (unsigned)logits->shape[1]));
    size_t gws = (size_t)logits->shape[0], lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

fewcl_status fcl_accuracy(fewcl_context *ctx, const fcl_tensor *logits, const fcl_tensor *labels,
                          fcl_tensor *correct) {
    FCL_TRY(check("accuracy", logits, labels, "correct", correct, 1));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_accuracy, &k));
    FCL_TRY(fcl_args(k, "tttuuL", logits, labels, correct, (unsigned)logits->shape[0],
                     (unsigned)logits->shape[1], fcl_kernel_wg_1d(ctx, k) * sizeof(float)));
    return launch_one_group(ctx, k);
}

fewcl_status fcl_episode_labels(fewcl_context *ctx, fcl_tensor *labels, int per_class) {
    if (per_class < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "episode labels: %d rows per class", per_class);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_episode_labels, &k));
    FCL_TRY(fcl_args(k, "tuu", labels, (unsigned)labels->numel, (unsigned)per_class));
    size_t gws = labels->numel, lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}
