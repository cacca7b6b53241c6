/* The model's two stages and how they meet. Data flows: episode tensor → backbone → features
 * [B, D] (B = n·(k+q), class-major, support then query per class, docs/maths.md §1.2) → head →
 * logits [Q, n] and the losses. Each stage registers its parameters under the PyTorch
 * state_dict names in an fcl_params, saves in forward what its backward needs (freed by
 * backward or by release), and accumulates parameter gradients in backward.
 *
 * Outputs of forward are allocated by the stage from the context's arena (FCL_MEM_ACTIVATION)
 * and stay valid until the stage's backward or release. */
#ifndef FEWCL_NN_MODEL_H
#define FEWCL_NN_MODEL_H

#include "backbone.h"
#include "config.h"
#include "params.h"

/* ---- backbone: an entry of the backbone table (backbone.h), dispatched by backbone_table.c;
 * the built-in conv4, conv6, resnet18 and resnet34 are lib/nn/backbone.c ------------------ */

/* The backbone of cfg->backbone (an unknown one or a too small image is an argument error):
 * registers its parameters and BatchNorm buffers in P under `prefix` (the model uses
 * "feature."), initialised from `seed` (the built-in ones as docs/maths.md §2.7 says: ResNet
 * convs Kaiming-normal fan_out, BN γ=1 β=0, ConvNet convs N(0, 2/(9·64)), conv bias
 * U(±1/√(in·9))). With cfg->freeze_backbone the parameters are registered as not trainable. */
fewcl_status fcl_backbone_create(fewcl_context *ctx, const fcl_model_config *cfg, fcl_params *P,
                                 const char *prefix, uint64_t seed, fcl_backbone_net **out);
/* x [B, 3, S, S] → *features [B, D] (a view of the last activation, flattened channel-major).
 * training: BatchNorm uses batch statistics and updates the running ones (momentum 0.1);
 * otherwise running statistics, unless cfg->bn_batch_stats_at_test. */
fewcl_status fcl_backbone_forward(fewcl_context *ctx, fcl_backbone_net *net, const fcl_tensor *x,
                                  int training, const fcl_tensor **features);
/* Says that the next forward (not in training) is followed by no backward, only by release:
 * the backbone may then free each tensor as soon as the next layer has read it, so that an
 * evaluation peaks at one block's tensors (fcl_eval_step, the API's inference). */
void fcl_backbone_no_backward(fcl_backbone_net *net);
/* dfeatures [B, D] → parameter gradients (skipped when frozen). dx is not computed. */
fewcl_status fcl_backbone_backward(fewcl_context *ctx, fcl_backbone_net *net,
                                   const fcl_tensor *dfeatures);
/* Frees what forward saved (after evaluation, or instead of backward). */
void fcl_backbone_release(fewcl_context *ctx, fcl_backbone_net *net);
void fcl_backbone_destroy(fewcl_context *ctx, fcl_backbone_net *net);

/* ---- heads (lib/nn/enhanced.c, lib/nn/fsct.c) ------------------------------------------ */

typedef struct fcl_head fcl_head;
typedef struct fcl_head_out fcl_head_out;
/* A support set enrolled by a head (its prototypes and classifier factors on the device):
 * this common part is the first member of each head's own record. */
typedef struct fcl_head_support {
    int n, k;    /* classes and shots per class */
    int uniform; /* the shots are weighted uniformly (n × k is not the trained shape) */
} fcl_head_support;

/* A head is an implementation struct whose first member is `fcl_head` (its table of
 * operations); the fcl_head_* functions below dispatch through it (lib/nn/head.c). */
typedef struct fcl_head_ops {
    const char *name;
    fewcl_status (*forward)(fewcl_context *, fcl_head *, const fcl_tensor *, int, fcl_head_out *);
    fewcl_status (*backward)(fewcl_context *, fcl_head *, const fcl_tensor **);
    void (*release)(fewcl_context *, fcl_head *);
    void (*destroy)(fewcl_context *, fcl_head *);
    /* Optional (NULL: the head does not offer it); see fcl_head_embed and below. */
    fewcl_status (*embed)(fewcl_context *, fcl_head *, const fcl_tensor *, fcl_tensor *);
    fewcl_status (*enroll)(fewcl_context *, fcl_head *, const fcl_tensor *, int, int,
                           fcl_head_support **);
    fewcl_status (*classify)(fewcl_context *, fcl_head *, const fcl_head_support *,
                             const fcl_tensor *, fcl_tensor *);
    void (*support_free)(fewcl_context *, fcl_head *, fcl_head_support *);
} fcl_head_ops;

struct fcl_head {
    const fcl_head_ops *ops;
};

struct fcl_head_out {
    const fcl_tensor *features; /* [B, D′]: after the projection (enhanced), else the input */
    const fcl_tensor *logits;   /* [Q, n], Q = n·q, row r has label r / q */
    /* [1] device scalars (training forward only, else NULL): the total loss that backward
     * differentiates, and its parts (enhanced: CE, variance, covariance; fsct: CE only). */
    const fcl_tensor *loss, *loss_ce, *loss_var, *loss_cov;
};

/* Enhanced FS-CT V-D (docs/maths.md §4): projection, weighted prototypes, depth attention blocks,
 * Mahalanobis classifier, VIC and uncertainty weighting. Parameter names: docs/maths.md §4.10. */
fewcl_status fcl_enhanced_create(fewcl_context *ctx, const fcl_model_config *cfg, int feature_dim,
                                 fcl_params *P, uint64_t seed, fcl_head **out);
/* The original FS-CT head (docs/maths.md §5), parameter names as docs/maths.md §5.1. */
fewcl_status fcl_fsct_create(fewcl_context *ctx, const fcl_model_config *cfg, int feature_dim,
                             fcl_params *P, uint64_t seed, fcl_head **out);
/* features [B, D] → out. training selects the loss computation (and what backward needs). */
fewcl_status fcl_head_forward(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features,
                              int training, fcl_head_out *out);
/* Backward from the total loss (gradient 1): parameter gradients accumulate, and *dfeatures
 * [B, D] (allocated by the head, valid until release) is the gradient for the backbone. */
fewcl_status fcl_head_backward(fewcl_context *ctx, fcl_head *h, const fcl_tensor **dfeatures);
void fcl_head_release(fewcl_context *ctx, fcl_head *h);
void fcl_head_destroy(fewcl_context *ctx, fcl_head *h);

/* Evaluation-mode pieces of the forward, for classifying queries one batch at a time against a
 * support set processed once (the public fewcl_enroll / fewcl_classify). The head's forward
 * state is released first; nothing is kept but what is returned.
 *   embed:    features [B, D] → out [B, D′] (after the projection; a copy without one).
 *   enroll:   support features [n·k, D] (class-major) → prototypes and Mahalanobis factors.
 *             The learned prototype weights are shaped by the training n_way × k_shot; for any
 *             other n × k the shots are weighted uniformly (softmax of zeros, the plain mean)
 *             and fcl_head_support_uniform says so.
 *   classify: query features [Q, D] → logits [Q, n] (caller-allocated), any Q ≥ 1. The same
 *             kernels as the episode forward, so at the trained n × k the logits of an
 *             episode's queries are those of fcl_head_forward.
 * Both heads enroll and classify (fsct keeps its prototypes); embed is the enhanced head's
 * (fsct has no projection). A head without an operation returns FEWCL_ERR_ARGUMENT. */
fewcl_status fcl_head_embed(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features,
                            fcl_tensor *out);
fewcl_status fcl_head_enroll(fewcl_context *ctx, fcl_head *h, const fcl_tensor *features, int n,
                             int k, fcl_head_support **out);
fewcl_status fcl_head_classify(fewcl_context *ctx, fcl_head *h, const fcl_head_support *sup,
                               const fcl_tensor *features, fcl_tensor *logits);
void fcl_head_support_free(fewcl_context *ctx, fcl_head *h, fcl_head_support *sup);
/* 1 when the enrolment weighted the shots uniformly (its n × k is not the trained one). */
int fcl_head_support_uniform(const fcl_head_support *sup);

/* ---- the whole model (lib/nn/model.c) --------------------------------------------------- */

typedef struct fcl_model {
    fcl_model_config cfg;
    fcl_params params;
    fcl_backbone_net *backbone;
    fcl_head *head;
    int feature_dim, working_dim; /* D and D′ */
} fcl_model;

/* Builds backbone + head (method from cfg) with parameters initialised from `seed`. */
fewcl_status fcl_model_create(fewcl_context *ctx, const fcl_model_config *cfg, uint64_t seed,
                              fcl_model **out);
void fcl_model_destroy(fewcl_context *ctx, fcl_model *m);
/* One episode x [n·(k+q), 3, S, S] (class-major) through backbone and head. */
fewcl_status fcl_model_forward(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int training,
                               fcl_head_out *out);
/* After a training forward: gradients of the total loss accumulate into the parameters'
 * gradients (zero them first with fcl_params_zero_grad). Frees the saved activations. */
fewcl_status fcl_model_backward(fewcl_context *ctx, fcl_model *m);
/* After an evaluation forward (or to drop a training one): frees the saved activations. */
void fcl_model_release(fewcl_context *ctx, fcl_model *m);
/* A model of another episode shape (cfg's n_way, k_shot, n_query; same architecture) with the
 * values of src's parameters and buffers. The prototype weights are shaped by n_way × k_shot:
 * when that differs they stay uniform (zeros: softmax gives the plain mean of the shots) and
 * *uniform_protos is set (may be NULL). */
fewcl_status fcl_model_reshape(fewcl_context *ctx, fcl_model *src, const fcl_model_config *cfg,
                               fcl_model **out, int *uniform_protos);
/* Loads the backbone's parameters and BN buffers from a safetensors file holding a state_dict
 * in the backbone's own layout (for the ResNets: torchvision's resnet18/34 keys): the model's
 * `feature.K` is read from key `<prefix>K` (prefix "" for a plain torchvision state_dict).
 * Other keys (torchvision's fc.*, the I64 num_batches_tracked, a head's weights) are ignored;
 * a missing key, a wrong shape or a non-F32 tensor is an error naming the key and the file,
 * and then nothing is changed. The head keeps its values. */
fewcl_status fcl_model_load_backbone(fewcl_context *ctx, fcl_model *m, const char *path,
                                     const char *prefix);

#endif
