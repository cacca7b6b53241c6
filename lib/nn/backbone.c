/* The built-in backbones (entries of the backbone table, backbone.h): the FS-CT ConvNet (conv4,
 * conv6; docs/maths.md §2.4) and torchvision's ResNet-18/34 up to layer4 (docs/maths.md §2.5),
 * forward and backward over the whole episode batch (docs/maths.md §1.2).
 *
 * Both are chains of "units" (conv → BatchNorm, docs/maths.md §2.2) joined by ReLU,
 * max-pool and, in the ResNets, residual adds:
 *
 *   plain block (ConvBlock, ResNet stem):  x → conv → BN → ReLU → [max-pool] → out
 *   BasicBlock:  x → conv1(s) → bn1 → ReLU → conv2 → bn2 → (+ x, or + bn(conv1x1 s (x))) → ReLU
 *
 * What backward needs, per unit: the conv input (the previous block's output, or the image) and
 * the conv output c (BatchNorm's input; batch-statistics BN also keeps its mean and 1/σ). ReLU
 * backward reads the ReLU output (the pooled one where a pool follows: see block_backward),
 * max-pool backward its argmax indices. Everything else is freed as soon as forward has
 * consumed it. With --freeze-backbone nothing is kept at all: each activation is freed once the
 * next one exists, and backward only releases the output.
 *
 * BatchNorm modes: training → batch statistics, running statistics updated (momentum 0.1, as
 * PyTorch). Evaluation → running statistics, unless cfg->bn_batch_stats_at_test, which uses batch
 * statistics *without* updating the running ones: evaluation must not change the model's state (a
 * checkpoint written after validation would otherwise depend on the validation episodes). PyTorch's
 * train-mode module would update them; the original never reads them (docs/maths.md §2.8), so the
 * difference is unobservable there. Backward follows the forward's mode (batch-statistics BN
 * backward, or the eval backward with constant running statistics).
 *
 * --freeze-backbone changes gradients only: a training-mode forward still normalises with batch
 * statistics and updates the running ones (as PyTorch does for a module in train mode whose
 * parameters have requires_grad=False).
 *
 * Checkpointing (--checkpoint backbone|all; docs/spec.md §3): the stages are the blocks (ConvNet
 * blocks; the ResNet stem and each BasicBlock). Forward keeps of each block only its output, which
 * is the next block's input (plain blocks also keep their pool indices and BN statistics, and drop
 * the conv output); backward recomputes a block's internals from its input right before
 * differentiating it, so at most one block's internals exist at a time. The recompute runs the same
 * kernels on the same values as the first forward, so every value, and thus every gradient, is
 * bit-identical to the run without checkpointing; BatchNorm's running statistics are updated only
 * by the first forward (once per training step, as without). See block_keep_output and
 * block_recompute.
 *
 * The image passed to forward is not copied: it must stay valid until backward or release
 * (the first conv's weight gradient reads it). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/batchnorm.h"
#include "../ops/conv.h"
#include "../ops/pool.h"

typedef struct unit {
    int w, b, g, beta, rm, rv; /* indices into P->items (b = -1: no bias) */
    int cin, cout, k, stride, pad;
    fcl_tensor c;            /* conv output = BN input (saved for BN backward) */
    fcl_tensor mean, invstd; /* batch statistics (saved) */
} unit;

typedef struct block {
    int residual; /* 0: plain block (unit 0, ReLU, pool?); 1: BasicBlock (units 0, 1, [2]) */
    int nu;
    unit u[3];
    fcl_pool2d_params pool; /* plain blocks; kernel 0: no pool */
    fcl_tensor r;           /* plain: ReLU output (kept only without a pool); BasicBlock:
                               ReLU(bn1) (conv2's input) */
    fcl_tensor idx;         /* max-pool argmax */
    fcl_tensor out;         /* the block's output (owned, except a plain block without pool:
                               then out is a view of r) */
} block;

typedef struct blocks_net {
    fcl_backbone_net base;
    fcl_params *P; /* indices stay valid when later stages grow the table */
    fcl_model_config cfg;
    int frozen;
    int lean;       /* this forward keeps nothing for a backward: frozen, or evaluation */
    int checkpoint; /* --checkpoint backbone|all: forward keeps only each block's output */
    int nblocks;
    block *blocks;
    fcl_tensor x_keep;   /* the image's descriptor (not owned) */
    int have_forward;    /* saved state exists */
    int batch_stats;     /* the forward's BN mode */
    fcl_tensor features; /* view of the last block's output */
} blocks_net;

/* ---- initialisation ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* Host-side init, uploaded once: kind 0 = N(0, a²) (Box–Muller), 1 = U(±a), 2 = constant a.
 * The stream of parameter number i is splitmix64 seeded seed·2^20 + i, so every tensor's values
 * depend only on (seed, registration index). */
static fewcl_status init_tensor(fewcl_context *ctx, fcl_tensor *t, uint64_t seed, int index,
                                int kind, double a) {
    float *h = malloc(t->numel * sizeof *h);
    if (!h) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "backbone init: %zu floats", t->numel);
    uint64_t s = (seed << 20) + (uint64_t)index;
    for (size_t i = 0; i < t->numel; i++) {
        if (kind == 0) {
            double u1 = uniform01(&s), u2 = uniform01(&s);
            h[i] = (float)(a * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        } else if (kind == 1) {
            h[i] = (float)(a * (2.0 * uniform01(&s) - 1.0));
        } else {
            h[i] = (float)a;
        }
    }
    fewcl_status st = fcl_tensor_upload(ctx, t, h);
    free(h);
    return st;
}

typedef struct builder {
    fewcl_context *ctx;
    fcl_params *P;
    const char *prefix;
    uint64_t seed;
    int trainable;
    int convnet; /* init scheme: ConvNet (docs/maths.md §2.7) or ResNet Kaiming fan_out */
} builder;

static fewcl_status add_param(builder *bd, const char *name, int ndim, const int *shape, int buffer,
                              int kind, double a, int *index) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", bd->prefix, name);
    fcl_tensor *t;
    if (buffer)
        FCL_TRY(fcl_params_add_buffer(bd->ctx, bd->P, full, ndim, shape, &t));
    else
        FCL_TRY(fcl_params_add(bd->ctx, bd->P, full, ndim, shape, bd->trainable, &t));
    *index = bd->P->n - 1;
    return init_tensor(bd->ctx, t, bd->seed, *index, kind, a);
}

/* Registers conv `cname` (+ bias when `bias`) and BatchNorm `bname` (weight, bias, running_mean,
 * running_var: the names PyTorch's state_dict uses; num_batches_tracked is not kept). */
static fewcl_status add_unit(builder *bd, unit *u, const char *cname, const char *bname, int cin,
                             int cout, int k, int stride, int pad, int bias) {
    char n[160];
    u->cin = cin, u->cout = cout, u->k = k, u->stride = stride, u->pad = pad;
    /* ConvNet: N(0, 2/(3·3·64)) whatever the layer (the original's formula,
     * docs/maths.md §2.7); bias U(±1/√(in·9)). ResNet: Kaiming normal, fan_out:
     * N(0, 2/(out·k·k)). */
    double sd = bd->convnet ? sqrt(2.0 / (9.0 * 64.0)) : sqrt(2.0 / ((double)cout * k * k));
    snprintf(n, sizeof n, "%s.weight", cname);
    FCL_TRY(add_param(bd, n, 4, (int[]){cout, cin, k, k}, 0, 0, sd, &u->w));
    u->b = -1;
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", cname);
        FCL_TRY(add_param(bd, n, 1, &cout, 0, 1, 1.0 / sqrt(cin * 9.0), &u->b));
    }
    snprintf(n, sizeof n, "%s.weight", bname);
    FCL_TRY(add_param(bd, n, 1, &cout, 0, 2, 1.0, &u->g));
    snprintf(n, sizeof n, "%s.bias", bname);
    FCL_TRY(add_param(bd, n, 1, &cout, 0, 2, 0.0, &u->beta));
    snprintf(n, sizeof n, "%s.running_mean", bname);
    FCL_TRY(add_param(bd, n, 1, &cout, 1, 2, 0.0, &u->rm));
    snprintf(n, sizeof n, "%s.running_var", bname);
    FCL_TRY(add_param(bd, n, 1, &cout, 1, 2, 1.0, &u->rv));
    return FEWCL_OK;
}

/* A net without blocks yet: the settings common to both families. */
static fewcl_status net_new(const fcl_model_config *cfg, fcl_params *P, int nblocks,
                            blocks_net **out) {
    blocks_net *net = calloc(1, sizeof *net);
    block *blocks = calloc((size_t)nblocks, sizeof *blocks);
    if (!net || !blocks) {
        free(blocks);
        free(net);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "backbone");
    }
    net->P = P;
    net->cfg = *cfg;
    net->frozen = cfg->freeze_backbone;
    /* Frozen, nothing is kept anyway (and there is no backward to recompute for). */
    net->checkpoint =
        !net->frozen && (cfg->checkpoint == FCL_CKPT_BACKBONE || cfg->checkpoint == FCL_CKPT_ALL);
    net->blocks = blocks;
    *out = net;
    return FEWCL_OK;
}

/* *out = net, or on failure the net freed: its parameters stay in P (the caller frees P). */
static fewcl_status net_done(blocks_net *net, fewcl_status st, fcl_backbone_net **out) {
    if (st != FEWCL_OK) {
        free(net->blocks);
        free(net);
        return st;
    }
    *out = &net->base;
    return FEWCL_OK;
}

/* Output side of a k x k convolution or pooling with stride s and padding p. */
static int out_side(int in, int k, int s, int p) {
    return in + 2 * p < k ? 0 : (in + 2 * p - k) / s + 1;
}

/* ConvNet (layers[0] blocks; the first four pool 2x2, the 3x3 pad-1 convolutions keep the side). */
static void convnet_feature_shape(const fcl_backbone_ops *self, int s, int *channels, int *side) {
    for (int i = 0; i < self->layers[0] && i < 4; i++)
        s = out_side(s, 2, 2, 0);
    *channels = 64;
    *side = s;
}

static fewcl_status convnet_create(const fcl_backbone_ops *self, fewcl_context *ctx,
                                   const fcl_model_config *cfg, fcl_params *P, const char *prefix,
                                   uint64_t seed, fcl_backbone_net **out) {
    const int depth = self->layers[0];
    blocks_net *net;
    FCL_TRY(net_new(cfg, P, depth, &net));
    builder bd = {ctx, P, prefix, seed, !cfg->freeze_backbone, 1};
    fewcl_status st = FEWCL_OK;
    char cn[96], bn[96];
    for (int i = 0; i < depth && st == FEWCL_OK; i++) {
        block *b = &net->blocks[net->nblocks++];
        b->nu = 1;
        if (i < 4) b->pool = (fcl_pool2d_params){2, 2, 0};
        snprintf(cn, sizeof cn, "trunk.%d.C", i);
        snprintf(bn, sizeof bn, "trunk.%d.BN", i);
        st = add_unit(&bd, &b->u[0], cn, bn, i ? 64 : 3, 64, 3, 1, 1, 1);
    }
    return net_done(net, st, out);
}

/* ResNet: the stem (7x7/2 conv, 3x3/2 max-pool), then stages 2..4 halve the side (3x3/2 pad 1). */
static void resnet_feature_shape(const fcl_backbone_ops *self, int s, int *channels, int *side) {
    (void)self;
    s = out_side(s, 7, 2, 3); /* stem */
    s = out_side(s, 3, 2, 1); /* max-pool */
    for (int i = 0; i < 3; i++)
        s = out_side(s, 3, 2, 1); /* layer2..4 */
    *channels = 512;
    *side = s;
}

static fewcl_status resnet_create(const fcl_backbone_ops *self, fewcl_context *ctx,
                                  const fcl_model_config *cfg, fcl_params *P, const char *prefix,
                                  uint64_t seed, fcl_backbone_net **out) {
    const int *counts = self->layers;
    blocks_net *net;
    FCL_TRY(net_new(cfg, P, 1 + counts[0] + counts[1] + counts[2] + counts[3], &net));
    builder bd = {ctx, P, prefix, seed, !cfg->freeze_backbone, 0};
    char cn[96], bn[96];
    block *b = &net->blocks[net->nblocks++];
    b->nu = 1;
    b->pool = (fcl_pool2d_params){3, 2, 1};
    fewcl_status st = add_unit(&bd, &b->u[0], "conv1", "bn1", 3, 64, 7, 2, 3, 0);
    int cin = 64;
    for (int L = 0; L < 4 && st == FEWCL_OK; L++) {
        int cout = 64 << L;
        for (int j = 0; j < counts[L] && st == FEWCL_OK; j++) {
            b = &net->blocks[net->nblocks++];
            int stride = (L > 0 && j == 0) ? 2 : 1;
            b->residual = 1;
            b->nu = (stride != 1 || cin != cout) ? 3 : 2;
            char base[64];
            snprintf(base, sizeof base, "layer%d.%d", L + 1, j);
            snprintf(cn, sizeof cn, "%s.conv1", base);
            snprintf(bn, sizeof bn, "%s.bn1", base);
            st = add_unit(&bd, &b->u[0], cn, bn, cin, cout, 3, stride, 1, 0);
            if (st != FEWCL_OK) break;
            snprintf(cn, sizeof cn, "%s.conv2", base);
            snprintf(bn, sizeof bn, "%s.bn2", base);
            st = add_unit(&bd, &b->u[1], cn, bn, cout, cout, 3, 1, 1, 0);
            if (st != FEWCL_OK || b->nu < 3) {
                cin = cout;
                continue;
            }
            snprintf(cn, sizeof cn, "%s.downsample.0", base);
            snprintf(bn, sizeof bn, "%s.downsample.1", base);
            st = add_unit(&bd, &b->u[2], cn, bn, cin, cout, 1, stride, 0, 0);
            cin = cout;
        }
    }
    return net_done(net, st, out);
}

/* ---- forward -------------------------------------------------------------------------------- */

static fcl_tensor *pv(blocks_net *net, int i) { return &net->P->items[i].value; }
static fcl_tensor *pg(blocks_net *net, int i) { return i < 0 ? NULL : &net->P->items[i].grad; }

static fewcl_status alloc4(fewcl_context *ctx, fcl_tensor *t, int n, int c, int h, int w) {
    return fcl_tensor_alloc(ctx, t, FCL_MEM_ACTIVATION, 4, (int[]){n, c, h, w});
}

/* u->c (allocated here) = conv(x): forward's first step, and all that a plain block's
 * checkpoint recomputes. */
static fewcl_status unit_conv(fewcl_context *ctx, blocks_net *net, unit *u, const fcl_tensor *x) {
    const int n = x->shape[0];
    const int oh = fcl_conv2d_out_size(x->shape[2], u->k, u->stride, u->pad);
    const int ow = fcl_conv2d_out_size(x->shape[3], u->k, u->stride, u->pad);
    fcl_conv2d_params cp = {u->stride, u->pad, 0};
    FCL_TRY(alloc4(ctx, &u->c, n, u->cout, oh, ow));
    return fcl_conv2d_forward(ctx, x, pv(net, u->w), u->b >= 0 ? pv(net, u->b) : NULL, &cp, &u->c);
}

/* y (allocated here) = BN(conv(x)) (+ add when not NULL) (ReLU'd when relu). Keeps u->c and
 * the batch statistics for backward (not in a lean forward). With running statistics the sum
 * and the ReLU run in the BatchNorm's own pass (the same bits as separate ops). */
static fewcl_status unit_forward(fewcl_context *ctx, blocks_net *net, unit *u, const fcl_tensor *x,
                                 int update_running, const fcl_tensor *add, int relu,
                                 fcl_tensor *y) {
    FCL_TRY(unit_conv(ctx, net, u, x));
    FCL_TRY(fcl_tensor_alloc(ctx, y, FCL_MEM_ACTIVATION, 4, u->c.shape));
    if (net->batch_stats) {
        FCL_TRY(fcl_tensor_alloc1(ctx, &u->mean, FCL_MEM_ACTIVATION, u->cout));
        FCL_TRY(fcl_tensor_alloc1(ctx, &u->invstd, FCL_MEM_ACTIVATION, u->cout));
        fcl_tensor rm = *pv(net, u->rm), rv = *pv(net, u->rv);
        fcl_tensor scratch_m = {0}, scratch_v = {0};
        if (!update_running) {
            /* Batch statistics at test: the op always updates running statistics, so give it
             * throwaway ones (see the file comment). */
            FCL_TRY(fcl_tensor_alloc1(ctx, &scratch_m, FCL_MEM_WORKSPACE, u->cout));
            FCL_TRY(fcl_tensor_alloc1(ctx, &scratch_v, FCL_MEM_WORKSPACE, u->cout));
            FCL_TRY(fcl_fill(ctx, &scratch_m, 0));
            FCL_TRY(fcl_fill(ctx, &scratch_v, 1));
        }
        fcl_params *P = net->P;
        fewcl_status st;
        if (update_running && P->bn_record) { /* a meta-batch episode: record, the replay updates */
            st = fcl_batchnorm_forward_train_record(
                ctx, &u->c, pv(net, u->g), pv(net, u->beta), P->bn_record,
                fcl_params_buffer_offset(P, u->rm), fcl_params_buffer_offset(P, u->rv), FCL_BN_EPS,
                add, relu, y, &u->mean, &u->invstd);
            P->bn_recorded += 2 * (size_t)u->cout;
        } else {
            st = fcl_batchnorm_forward_train(ctx, &u->c, pv(net, u->g), pv(net, u->beta),
                                             update_running ? &rm : &scratch_m,
                                             update_running ? &rv : &scratch_v, FCL_BN_MOMENTUM,
                                             FCL_BN_EPS, add, relu, y, &u->mean, &u->invstd);
        }
        fcl_tensor_free(ctx, &scratch_v);
        fcl_tensor_free(ctx, &scratch_m);
        FCL_TRY(st);
    } else {
        FCL_TRY(fcl_batchnorm_forward_eval_fused(ctx, &u->c, pv(net, u->g), pv(net, u->beta),
                                                 pv(net, u->rm), pv(net, u->rv), FCL_BN_EPS, add,
                                                 relu, y));
    }
    if (net->lean) {
        fcl_tensor_free(ctx, &u->invstd);
        fcl_tensor_free(ctx, &u->mean);
        fcl_tensor_free(ctx, &u->c);
    }
    return FEWCL_OK;
}

static fewcl_status block_forward(fewcl_context *ctx, blocks_net *net, block *b,
                                  const fcl_tensor *x, int update_running) {
    if (!b->residual) {
        FCL_TRY(unit_forward(ctx, net, &b->u[0], x, update_running, NULL, 1, &b->r));
        if (!b->pool.kernel) {
            b->out = b->r;
            b->out.owner = 0;
            return FEWCL_OK;
        }
        const int oh = fcl_pool2d_out_size(b->r.shape[2], &b->pool);
        const int ow = fcl_pool2d_out_size(b->r.shape[3], &b->pool);
        FCL_TRY(alloc4(ctx, &b->out, b->r.shape[0], b->r.shape[1], oh, ow));
        FCL_TRY(alloc4(ctx, &b->idx, b->r.shape[0], b->r.shape[1], oh, ow));
        FCL_TRY(fcl_maxpool2d_forward(ctx, &b->r, &b->pool, &b->out, &b->idx));
        /* Backward masks by the pooled output instead of r (see block_backward). */
        fcl_tensor_free(ctx, &b->r);
        if (net->lean) fcl_tensor_free(ctx, &b->idx);
        return FEWCL_OK;
    }
    FCL_TRY(unit_forward(ctx, net, &b->u[0], x, update_running, NULL, 1, &b->r));
    if (b->nu == 2) { /* out = ReLU(BN(conv(r)) + x) */
        FCL_TRY(unit_forward(ctx, net, &b->u[1], &b->r, update_running, x, 1, &b->out));
        if (net->lean) fcl_tensor_free(ctx, &b->r);
        return FEWCL_OK;
    }
    /* The projection shortcut: main = BN(conv(r)), then out = ReLU(BN(conv_sc(x)) + main)
     * (the sum's operands swapped, which float addition allows bit for bit). */
    fcl_tensor main = {0};
    FCL_TRY(unit_forward(ctx, net, &b->u[1], &b->r, update_running, NULL, 0, &main));
    if (net->lean) fcl_tensor_free(ctx, &b->r);
    fewcl_status st = unit_forward(ctx, net, &b->u[2], x, update_running, &main, 1, &b->out);
    fcl_tensor_free(ctx, &main);
    return st;
}

/* Frees every saved tensor of block b (and its output unless keep_out), latest first. */
static void block_release(fewcl_context *ctx, block *b, int keep_out) {
    if (!keep_out) fcl_tensor_free(ctx, &b->out);
    fcl_tensor_free(ctx, &b->idx);
    for (int i = b->nu - 1; i >= 0; i--) {
        fcl_tensor_free(ctx, &b->u[i].invstd);
        fcl_tensor_free(ctx, &b->u[i].mean);
        fcl_tensor_free(ctx, &b->u[i].c);
    }
    fcl_tensor_free(ctx, &b->r);
}

/* Checkpointing, after block b's forward: frees what backward will recompute. A plain block
 * keeps its output (the next block's input, and the ReLU mask), its pool indices and its
 * BatchNorm statistics (C floats each) and drops only the conv output, which is the big
 * tensor; a BasicBlock keeps only its output. */
static void block_keep_output(fewcl_context *ctx, block *b) {
    if (!b->residual)
        fcl_tensor_free(ctx, &b->u[0].c);
    else
        block_release(ctx, b, 1);
}

/* Checkpointing, before block b's backward: recomputes what block_keep_output dropped from the
 * block's input x, by the kernels forward ran on the same values, so bit-identically. A plain
 * block needs only its conv output again. A BasicBlock runs its whole forward again, with
 * update_running 0 so that BatchNorm's running statistics, updated (in a meta-batch episode:
 * recorded) by the first forward, are not updated (recorded) twice (the op gets throwaway
 * ones); the batch statistics it recomputes are the first forward's. Its recomputed output replaces
 * the kept one, equal to it and no longer read by anything else (the next block's backward is
 * done). */
static fewcl_status block_recompute(fewcl_context *ctx, blocks_net *net, block *b,
                                    const fcl_tensor *x) {
    if (!b->residual) return unit_conv(ctx, net, &b->u[0], x);
    fcl_tensor_free(ctx, &b->out);
    return block_forward(ctx, net, b, x, 0);
}

static void net_release(fewcl_context *ctx, blocks_net *net) {
    for (int i = net->nblocks - 1; i >= 0; i--)
        block_release(ctx, &net->blocks[i], 0);
    memset(&net->features, 0, sizeof net->features);
    net->have_forward = 0;
}

static fewcl_status blocks_forward(fewcl_context *ctx, fcl_backbone_net *base, const fcl_tensor *x,
                                   int training, const fcl_tensor **features) {
    blocks_net *net = (blocks_net *)base;
    net_release(ctx, net); /* a forward without backward/release before */
    net->batch_stats = training || net->cfg.bn_batch_stats_at_test;
    /* No backward follows (frozen, or the caller said so: fcl_backbone_no_backward): each
     * tensor is freed as soon as the next layer has read it, so an evaluation peaks at one
     * block's tensors. */
    net->lean = net->frozen || (!training && base->no_backward);
    net->x_keep = *x;
    net->x_keep.owner = 0;
    const fcl_tensor *in = &net->x_keep;
    fewcl_status st = FEWCL_OK;
    for (int i = 0; i < net->nblocks && st == FEWCL_OK; i++) {
        block *b = &net->blocks[i];
        st = block_forward(ctx, net, b, in, training);
        /* Lean: the previous output was only needed as this block's input. */
        if (st == FEWCL_OK && net->lean && i > 0) block_release(ctx, &net->blocks[i - 1], 0);
        if (st == FEWCL_OK && net->checkpoint) block_keep_output(ctx, b);
        in = &b->out;
    }
    net->have_forward = 1;
    if (st == FEWCL_OK) {
        const int B = x->shape[0];
        st = fcl_tensor_view(in, 2, (int[]){B, (int)(in->numel / (size_t)B)}, &net->features);
    }
    if (st != FEWCL_OK) {
        net_release(ctx, net);
        return st;
    }
    *features = &net->features;
    return FEWCL_OK;
}

/* ---- backward ------------------------------------------------------------------------------- */

/* dy (the gradient of this unit's BN output; overwritten when in_place) → conv input gradient
 * into *dx (allocated here when dx is not NULL), parameter gradients accumulated. Frees the
 * unit's saved tensors. */
static fewcl_status unit_backward(fewcl_context *ctx, blocks_net *net, unit *u, const fcl_tensor *x,
                                  fcl_tensor *dy, int in_place, fcl_tensor *dx) {
    fcl_tensor dc = {0}, *dcp = dy;
    fewcl_status st = FEWCL_OK;
    if (!in_place) {
        st = fcl_tensor_alloc(ctx, &dc, FCL_MEM_ACTIVATION, dy->ndim, dy->shape);
        dcp = &dc;
    }
    if (st == FEWCL_OK) {
        if (net->batch_stats)
            st = fcl_batchnorm_backward_train(ctx, &u->c, pv(net, u->g), &u->mean, &u->invstd, dy,
                                              dcp, pg(net, u->g), pg(net, u->beta));
        else
            st = fcl_batchnorm_backward_eval(ctx, &u->c, pv(net, u->g), pv(net, u->rm),
                                             pv(net, u->rv), FCL_BN_EPS, dy, dcp, pg(net, u->g),
                                             pg(net, u->beta));
    }
    fcl_tensor_free(ctx, &u->invstd);
    fcl_tensor_free(ctx, &u->mean);
    fcl_tensor_free(ctx, &u->c);
    if (st == FEWCL_OK && dx) st = fcl_tensor_alloc(ctx, dx, FCL_MEM_ACTIVATION, 4, x->shape);
    if (st == FEWCL_OK) {
        fcl_conv2d_params cp = {u->stride, u->pad, 0};
        st = fcl_conv2d_backward(ctx, x, pv(net, u->w), dcp, &cp, dx, pg(net, u->w), pg(net, u->b));
    }
    fcl_tensor_free(ctx, &dc);
    return st;
}

/* dout (owned, the gradient of b->out; consumed) → *dx (allocated, the gradient of the block's
 * input x) unless dx is NULL. Frees the block's saved tensors and its output. */
static fewcl_status block_backward(fewcl_context *ctx, blocks_net *net, block *b,
                                   const fcl_tensor *x, fcl_tensor *dout, fcl_tensor *dx) {
    fewcl_status st = FEWCL_OK;
    if (!b->residual) {
        fcl_tensor dr = {0};
        if (b->pool.kernel) {
            /* ReLU then pool: the pool sends each output's gradient to its argmax i only, where
             * r[i] equals that output. So masking dout by out > 0 before unpooling gives
             * exactly (bit for bit: every term of a position is kept or every one zeroed) what
             * masking the unpooled gradient by r > 0 gives, and r need not be kept. */
            st = fcl_relu_backward(ctx, &b->out, dout, dout);
            fcl_tensor_free(ctx, &b->out);
            const int n = x->shape[0], c = b->u[0].cout;
            const int h = b->u[0].c.shape[2], w = b->u[0].c.shape[3];
            if (st == FEWCL_OK) st = alloc4(ctx, &dr, n, c, h, w);
            if (st == FEWCL_OK) st = fcl_maxpool2d_backward(ctx, &b->idx, dout, &b->pool, &dr);
            fcl_tensor_free(ctx, dout);
            fcl_tensor_free(ctx, &b->idx);
        } else {
            dr = *dout; /* take ownership */
            memset(dout, 0, sizeof *dout);
            fcl_tensor_free(ctx, &b->out); /* a view of r */
            if (st == FEWCL_OK) st = fcl_relu_backward(ctx, &b->r, &dr, &dr);
        }
        fcl_tensor_free(ctx, &b->r);
        if (st == FEWCL_OK) st = unit_backward(ctx, net, &b->u[0], x, &dr, 1, dx);
        fcl_tensor_free(ctx, &dr);
        return st;
    }
    /* out = ReLU(bn2(...) + shortcut): the ReLU mask first, then the sum's gradient goes to
     * both branches unchanged. */
    st = fcl_relu_backward(ctx, &b->out, dout, dout);
    fcl_tensor_free(ctx, &b->out);
    if (st == FEWCL_OK && b->nu == 3) {
        /* Downsample branch first (it reads dout, which the main branch then overwrites); its
         * input gradient starts dx. */
        st = unit_backward(ctx, net, &b->u[2], x, dout, 0, dx);
    }
    fcl_tensor dr = {0};
    /* With an identity shortcut dout is also dx, so the main branch must not overwrite it. */
    if (st == FEWCL_OK) st = unit_backward(ctx, net, &b->u[1], &b->r, dout, b->nu == 3 || !dx, &dr);
    if (b->nu == 2 && st == FEWCL_OK && dx) {
        /* Identity shortcut: dx starts as dout itself (the main branch wrote a copy). */
        *dx = *dout;
        memset(dout, 0, sizeof *dout);
    }
    fcl_tensor_free(ctx, dout);
    if (st == FEWCL_OK) st = fcl_relu_backward(ctx, &b->r, &dr, &dr);
    fcl_tensor_free(ctx, &b->r);
    fcl_tensor d1 = {0};
    if (st == FEWCL_OK) st = unit_backward(ctx, net, &b->u[0], x, &dr, 1, dx ? &d1 : NULL);
    fcl_tensor_free(ctx, &dr);
    if (st == FEWCL_OK && dx) st = fcl_add(ctx, dx, &d1, dx);
    fcl_tensor_free(ctx, &d1);
    return st;
}

static fewcl_status blocks_backward(fewcl_context *ctx, fcl_backbone_net *base,
                                    const fcl_tensor *dfeatures) {
    blocks_net *net = (blocks_net *)base;
    if (!net->have_forward)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "backbone: backward without a forward");
    if (dfeatures->numel != net->features.numel || dfeatures->ndim != 2 ||
        dfeatures->shape[0] != net->features.shape[0]) {
        char a[64], b[64];
        net_release(ctx, net);
        return fcl_fail(FEWCL_ERR_ARGUMENT, "backbone: dfeatures %s do not fit features %s",
                        fcl_shape_str(dfeatures, a, sizeof a),
                        fcl_shape_str(&net->features, b, sizeof b));
    }
    if (net->frozen) {
        net_release(ctx, net);
        return FEWCL_OK;
    }
    /* The caller's dfeatures must not be overwritten: the last block's gradient starts as a
     * copy (ReLU/BN backward work in place on it). */
    const block *last = &net->blocks[net->nblocks - 1];
    fcl_tensor dcur = {0}, dview;
    fewcl_status st = fcl_tensor_alloc(ctx, &dcur, FCL_MEM_ACTIVATION, 4, last->out.shape);
    if (st == FEWCL_OK) st = fcl_tensor_view(dfeatures, 4, last->out.shape, &dview);
    if (st == FEWCL_OK) st = fcl_scale(ctx, &dview, 1.0f, &dcur);
    for (int i = net->nblocks - 1; i >= 0 && st == FEWCL_OK; i--) {
        const fcl_tensor *x = i ? &net->blocks[i - 1].out : &net->x_keep;
        block *b = &net->blocks[i];
        if (net->checkpoint && (st = block_recompute(ctx, net, b, x)) != FEWCL_OK) break;
        fcl_tensor dx = {0};
        st = block_backward(ctx, net, b, x, &dcur, i ? &dx : NULL);
        fcl_tensor_free(ctx, &dcur);
        dcur = dx;
    }
    fcl_tensor_free(ctx, &dcur);
    net_release(ctx, net);
    return st;
}

static void blocks_release(fewcl_context *ctx, fcl_backbone_net *base) {
    net_release(ctx, (blocks_net *)base);
}

static void blocks_destroy(fewcl_context *ctx, fcl_backbone_net *base) {
    blocks_net *net = (blocks_net *)base;
    net_release(ctx, net);
    free(net->blocks);
    free(net);
}

/* ---- the table entries ---------------------------------------------------------------------- */

#define CONVNET_OPS                                                                                \
    .feature_shape = convnet_feature_shape, .create = convnet_create, .forward = blocks_forward,   \
    .backward = blocks_backward, .release = blocks_release, .destroy = blocks_destroy
#define RESNET_OPS                                                                                 \
    .feature_shape = resnet_feature_shape, .create = resnet_create, .forward = blocks_forward,     \
    .backward = blocks_backward, .release = blocks_release, .destroy = blocks_destroy

/* torch_numel, PyTorch's parameter count: 4 or 6 ConvBlocks of 64·cin·9 + 64 (conv) + 2·64
 * (BatchNorm); torchvision's resnet18/34 counts less fc (513,000). torch_tensors, the
 * state_dict's tensors: 6 per ConvBlock; 5 for the ResNet stem, 10 per BasicBlock and 5 per
 * downsample. */
static const fcl_backbone_ops conv4 = {.name = "conv4",
                                       CONVNET_OPS,
                                       .layers = (const int[]){4},
                                       .torch_numel = 113088,
                                       .torch_tensors = 4 * 6};
static const fcl_backbone_ops conv6 = {.name = "conv6",
                                       CONVNET_OPS,
                                       .layers = (const int[]){6},
                                       .torch_numel = 187200,
                                       .torch_tensors = 6 * 6};
static const fcl_backbone_ops resnet18 = {.name = "resnet18",
                                          RESNET_OPS,
                                          .layers = (const int[]){2, 2, 2, 2},
                                          .torch_numel = 11689512 - 513000,
                                          .torch_tensors = 5 + 8 * 10 + 3 * 5};
static const fcl_backbone_ops resnet34 = {.name = "resnet34",
                                          RESNET_OPS,
                                          .layers = (const int[]){3, 4, 6, 3},
                                          .torch_numel = 21797672 - 513000,
                                          .torch_tensors = 5 + 16 * 10 + 3 * 5};

const fcl_backbone_ops *const fcl_builtin_backbones[FCL_N_BACKBONES] = {
    [FCL_CONV4] = &conv4,
    [FCL_CONV6] = &conv6,
    [FCL_RESNET18] = &resnet18,
    [FCL_RESNET34] = &resnet34,
};
