/* The enhanced FS-CT head, fork version V-D (docs/maths.md §4, docs/spec.md §3), forward and
 * backward.
 *
 * features [B,D], B = n·(k+q) class-major (docs/maths.md §1.2)
 *   → projection Z = ReLU(LN(x·Wrᵀ + br)) when D > reduced_dim > 0, else Z = x
 *     (docs/maths.md §4.1)
 *   → supports S [n,k,D′], queries Zq [Q,D′] (row r = c·q + j)
 *   → prototypes p_c = Σ_i softmax_i(proto_weight[c,:])·S[c,i]
 *   → depth blocks (docs/maths.md §4.3): U = LN1(H), P̃ = LN1(p) (one LN),
 *     q = U·Wqᵀ, k = P̃·Wkᵀ, v = P̃·Wvᵀ,
 *     heads split head-major; cosine: A = q̂·k̂ᵀ per head (x̂ = x/max(‖x‖,1e-12)), no softmax;
 *     softmax: A = softmax_c(q·kᵀ/√dim_head); H += merge(A·v)·Woᵀ + bo;
 *     H += W2·GELU(W1·LN2(H) + b1) + b2. H starts at Zq; the keys stay p in every block.
 *   → logits = Mahalanobis(S, p, H) [Q,n] (docs/maths.md §4.4; supports and prototypes before
 *     attention)
 *   → training: L_I = CE(logits, ⌊r/q⌋); VIC on E = [S as (n·k)×D′; p] (docs/maths.md §4.8);
 *     total = Σ_k L_k·e^{−s_k} + s_k, s = weight_controller.log_vars (docs/maths.md §4.9).
 *
 * Mahalanobis path (fcl_enh_maha_path): cfg->mahalanobis dense or lowrank as asked; auto
 * takes the Woodbury low-rank path whenever its k×k systems are smaller than the D′×D′ ones
 * (k < D′), dense otherwise. Both are exact (docs/spec.md §3); low-rank needs no D′×D′ buffer
 * and no Cholesky of one (ResNet-18 84 evaluation on PoCL: 0.49 s dense, 0.44 s low-rank).
 *
 * VIC off (cfg->vic = 0): total = L_I alone, unweighted; loss_var and loss_cov are NULL (not
 * computed: their D′×D′ covariance is pure cost then). weight_controller.log_vars is still
 * registered, so checkpoints keep the same keys, but it takes no part in the loss: its gradient
 * stays 0 (AdamW's decoupled weight decay alone moves it, harmlessly).
 *
 * Checkpointing (cfg->checkpoint blocks or all, docs/spec.md §3): each attention block (attention
 * and FFN) keeps only its output H2, the next block's input, in forward; backward recomputes the
 * block's intermediates from its input (the previous H2, or Zq) with the same kernels on the same
 * values, so bit-identically, differentiates it and frees them, so that at most one block's
 * intermediates exist at a time.
 *
 * Initialisation (documented scheme, deterministic from `seed`): parameter i in registration
 * order gets fcl_pattern_fill(seed32 + i) — Linear weights and biases uniform in ±1/√fan_in (the
 * bound of PyTorch's default init); LayerNorm γ = 1, β = 0; proto_weight 0; log_vars
 * (−ln 9, −ln 0.5, −ln 0.5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/mahalanobis.h"

#include "../ops/colstats.h"
#include "../ops/loss.h"
#include "../ops/rowwise.h"
#include "enhanced_impl.h"

static fcl_kernel_handle k_copy = FCL_KERNEL_HANDLE("enhanced", "copy");
static fcl_kernel_handle k_split_episode = FCL_KERNEL_HANDLE("enhanced", "split_episode");
static fcl_kernel_handle k_merge_episode = FCL_KERNEL_HANDLE("enhanced", "merge_episode");
static fcl_kernel_handle k_uncertainty_forward =
    FCL_KERNEL_HANDLE("enhanced", "uncertainty_forward");
static fcl_kernel_handle k_uncertainty_backward =
    FCL_KERNEL_HANDLE("enhanced", "uncertainty_backward");

static fcl_tensor *value(enhanced *h, int i) { return &h->P->items[i].value; }
static fcl_tensor *grad(enhanced *h, int i) { return &h->P->items[i].grad; }
static int bparam(enhanced *h, int b, int which) { return h->ip_blocks + b * BP_N + which; }

/* ---- small helpers -------------------------------------------------------------------- */

fewcl_status fcl_enh_save(fewcl_context *ctx, enhanced *h, int ndim, const int *shape,
                          fcl_tensor **out) {
    if (h->n_saved >= MAX_SAVED)
        return fcl_fail(FEWCL_ERR_INTERNAL, "enhanced head: more than %d saved tensors", MAX_SAVED);
    fcl_tensor *t = &h->saved[h->n_saved];
    FCL_TRY(fcl_tensor_alloc(ctx, t, FCL_MEM_ACTIVATION, ndim, shape));
    h->n_saved++;
    *out = t;
    return FEWCL_OK;
}
static fewcl_status save2(fewcl_context *ctx, enhanced *h, int a, int b, fcl_tensor **out) {
    return fcl_enh_save(ctx, h, 2, (int[]){a, b}, out);
}
static fewcl_status save1(fewcl_context *ctx, enhanced *h, int a, fcl_tensor **out) {
    return fcl_enh_save(ctx, h, 1, (int[]){a}, out);
}

/* A view of `t` starting `off` elements in, with another shape. */
static fcl_tensor sub(const fcl_tensor *t, size_t off, int ndim, const int *shape) {
    fcl_tensor v = *t;
    v.owner = 0;
    v.offset += off;
    v.ndim = ndim;
    v.numel = 1;
    for (int i = 0; i < ndim; i++)
        v.shape[i] = shape[i], v.numel *= (size_t)shape[i];
    return v;
}
static fcl_tensor view2(const fcl_tensor *t, int a, int b) { return sub(t, 0, 2, (int[]){a, b}); }

static fewcl_status launch1(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

fewcl_status fcl_enh_copy(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_copy, &k));
    FCL_TRY(fcl_args(k, "ttu", x, y, (unsigned)x->numel));
    return launch1(ctx, k, x->numel);
}

static fewcl_status ws2(fewcl_context *ctx, fcl_tensor *t, int a, int b) {
    return fcl_tensor_alloc2(ctx, t, FCL_MEM_WORKSPACE, a, b);
}

static fcl_matrix M(const fcl_tensor *t, int ld) { return (fcl_matrix){t, 0, ld}; }

/* ---- creation ------------------------------------------------------------------------- */

static fewcl_status add_param(fewcl_context *ctx, enhanced *h, const char *name, int ndim,
                              const int *shape, uint32_t seed, float scale, float constant) {
    fcl_tensor *t;
    FCL_TRY(fcl_params_add(ctx, h->P, name, ndim, shape, 1, &t));
    uint32_t s = seed + (uint32_t)(h->P->n - 1);
    return scale > 0 ? fcl_pattern_fill(ctx, t, s, scale) : fcl_fill(ctx, t, constant);
}

static fewcl_status add_linear(fewcl_context *ctx, enhanced *h, const char *prefix, int out, int in,
                               int bias, uint32_t seed) {
    char name[128];
    float bound = 1.0f / sqrtf((float)in);
    snprintf(name, sizeof name, "%s.weight", prefix);
    FCL_TRY(add_param(ctx, h, name, 2, (int[]){out, in}, seed, bound, 0));
    if (!bias) return FEWCL_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(ctx, h, name, 1, (int[]){out}, seed, bound, 0);
}

static fewcl_status add_ln(fewcl_context *ctx, enhanced *h, const char *prefix, int d,
                           uint32_t seed) {
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    FCL_TRY(add_param(ctx, h, name, 1, (int[]){d}, seed, 0, 1.0f));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(ctx, h, name, 1, (int[]){d}, seed, 0, 0.0f);
}

static const fcl_head_ops enhanced_ops;

fcl_maha_path fcl_enh_maha_path(const enhanced *h, int k) {
    if (h->cfg.mahalanobis == FCL_MAHA_DENSE) return FCL_MAHA_PATH_DENSE;
    if (h->cfg.mahalanobis == FCL_MAHA_LOWRANK) return FCL_MAHA_PATH_LOWRANK;
    return k < h->Dp ? FCL_MAHA_PATH_LOWRANK : FCL_MAHA_PATH_DENSE;
}

fewcl_status fcl_enhanced_create(fewcl_context *ctx, const fcl_model_config *cfg, int feature_dim,
                                 fcl_params *P, uint64_t seed, fcl_head **out) {
    *out = NULL;
    if (feature_dim < 1 || cfg->n_way < 1 || cfg->k_shot < 1 || cfg->n_query < 1 ||
        cfg->depth < 1 || cfg->heads < 1 || cfg->dim_head < 1 || cfg->mlp_dim < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "enhanced head: feature size %d, %d-way %d-shot %d-query, depth %d, "
                        "%d heads x %d, mlp %d: every size must be positive",
                        feature_dim, cfg->n_way, cfg->k_shot, cfg->n_query, cfg->depth, cfg->heads,
                        cfg->dim_head, cfg->mlp_dim);
    enhanced *h = calloc(1, sizeof *h);
    if (!h) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "enhanced head: out of host memory");
    h->base.ops = &enhanced_ops;
    h->cfg = *cfg;
    h->P = P;
    h->D = feature_dim;
    h->proj = cfg->reduced_dim > 0 && feature_dim > cfg->reduced_dim;
    h->Dp = h->proj ? cfg->reduced_dim : feature_dim;
    h->n = cfg->n_way, h->k = cfg->k_shot, h->q = cfg->n_query;
    h->Q = h->n * h->q, h->B = h->n * (h->k + h->q);
    h->inner = cfg->heads * cfg->dim_head;
    h->checkpoint = cfg->checkpoint == FCL_CKPT_BLOCKS || cfg->checkpoint == FCL_CKPT_ALL;
    h->blk = calloc((size_t)cfg->depth, sizeof *h->blk);
    if (!h->blk) {
        free(h);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "enhanced head: out of host memory");
    }
    uint32_t s32 = (uint32_t)(seed ^ (seed >> 32));
    int d = h->Dp, I = h->inner;
    fewcl_status st = FEWCL_OK;
#define ADD(expr)                                                                                  \
    do {                                                                                           \
        if (st == FEWCL_OK) st = (expr);                                                           \
    } while (0)
    h->ip_proj = P->n;
    if (h->proj) {
        ADD(add_linear(ctx, h, "dim_reduction.0", d, h->D, 1, s32));
        ADD(add_ln(ctx, h, "dim_reduction.1", d, s32));
    }
    h->ip_proto = P->n;
    ADD(add_param(ctx, h, "proto_weight", 3, (int[]){h->n, h->k, 1}, s32, 0, 0.0f));
    h->ip_blocks = P->n;
    for (int b = 0; b < cfg->depth && st == FEWCL_OK; b++) {
        char pre[96];
#define PRE(fmt) (snprintf(pre, sizeof pre, "attention_blocks.%d." fmt, b), pre)
        ADD(add_linear(ctx, h, PRE("attention.to_q"), I, d, 0, s32));
        ADD(add_linear(ctx, h, PRE("attention.to_k"), I, d, 0, s32));
        ADD(add_linear(ctx, h, PRE("attention.to_v"), I, d, 0, s32));
        ADD(add_linear(ctx, h, PRE("attention.to_out"), d, I, 1, s32));
        ADD(add_ln(ctx, h, PRE("norm1"), d, s32));
        ADD(add_ln(ctx, h, PRE("norm2"), d, s32));
        ADD(add_linear(ctx, h, PRE("ffn.net.0"), cfg->mlp_dim, d, 1, s32));
        ADD(add_linear(ctx, h, PRE("ffn.net.2"), d, cfg->mlp_dim, 1, s32));
#undef PRE
    }
    h->ip_logvars = P->n;
    ADD(add_param(ctx, h, "weight_controller.log_vars", 1, (int[]){3}, s32, 0, 0.0f));
    if (st == FEWCL_OK) {
        /* s_k = −ln λ_k with λ = (9, 0.5, 0.5) (docs/maths.md §4.9) */
        float lv[3] = {-logf(9.0f), -logf(0.5f), -logf(0.5f)};
        st = fcl_tensor_upload(ctx, value(h, h->ip_logvars), lv);
    }
#undef ADD
    if (st != FEWCL_OK) {
        free(h->blk);
        free(h);
        return st;
    }
    *out = &h->base;
    return FEWCL_OK;
}

/* ---- forward -------------------------------------------------------------------------- */

/* Block b on its input hin; every intermediate is saved for backward. recompute: the
 * checkpointed block's second run, in backward, which stops once everything backward reads
 * exists (the output H2 is not among it and stays the first run's). */
fewcl_status fcl_enh_block_forward(fewcl_context *ctx, enhanced *h, int b, fcl_tensor *hin,
                                   block_saved *bs, int recompute) {
    const int Q = h->Q, n = h->n, d = h->Dp, I = h->inner, H = h->cfg.heads;
    const int dh = h->cfg.dim_head, Mh = h->cfg.mlp_dim;
    const int cosine = h->cfg.variant == FCL_VARIANT_COSINE;
    bs->h_in = hin;
    /* U = LN1(H), P̃ = LN1(p), with the same parameters */
    FCL_TRY(save2(ctx, h, Q, d, &bs->u));
    FCL_TRY(save1(ctx, h, Q, &bs->mean_u));
    FCL_TRY(save1(ctx, h, Q, &bs->rstd_u));
    FCL_TRY(fcl_layernorm_forward(ctx, hin, value(h, bparam(h, b, BN1_G)),
                                  value(h, bparam(h, b, BN1_B)), FCL_LN_EPS, bs->u, bs->mean_u,
                                  bs->rstd_u));
    FCL_TRY(save2(ctx, h, n, d, &bs->pn));
    FCL_TRY(save1(ctx, h, n, &bs->mean_p));
    FCL_TRY(save1(ctx, h, n, &bs->rstd_p));
    FCL_TRY(fcl_layernorm_forward(ctx, h->p, value(h, bparam(h, b, BN1_G)),
                                  value(h, bparam(h, b, BN1_B)), FCL_LN_EPS, bs->pn, bs->mean_p,
                                  bs->rstd_p));
    FCL_TRY(save2(ctx, h, Q, I, &bs->q));
    FCL_TRY(save2(ctx, h, n, I, &bs->k));
    FCL_TRY(save2(ctx, h, n, I, &bs->v));
    FCL_TRY(fcl_linear_forward(ctx, bs->u, value(h, bparam(h, b, BW_Q)), NULL, bs->q));
    FCL_TRY(fcl_linear_forward(ctx, bs->pn, value(h, bparam(h, b, BW_K)), NULL, bs->k));
    FCL_TRY(fcl_linear_forward(ctx, bs->pn, value(h, bparam(h, b, BW_V)), NULL, bs->v));
    if (cosine) { /* per head: rows of dim_head, head-major inside each row */
        FCL_TRY(save2(ctx, h, Q, I, &bs->qh));
        FCL_TRY(save2(ctx, h, n, I, &bs->kh));
        fcl_tensor a = view2(bs->q, Q * H, dh), ah = view2(bs->qh, Q * H, dh);
        FCL_TRY(fcl_l2norm_forward(ctx, &a, FCL_L2N_EPS, &ah));
        fcl_tensor c = view2(bs->k, n * H, dh), ch = view2(bs->kh, n * H, dh);
        FCL_TRY(fcl_l2norm_forward(ctx, &c, FCL_L2N_EPS, &ch));
    } else {
        bs->qh = bs->q, bs->kh = bs->k;
    }
    /* A_h = q̂_h·k̂_hᵀ [Q,n] for each head h, stored [H,Q,n] */
    FCL_TRY(fcl_enh_save(ctx, h, 3, (int[]){H, Q, n}, &bs->a));
    if (cosine) {
        FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 1, Q, n, dh, 1.0f, M(bs->qh, I), (size_t)dh,
                                         M(bs->kh, I), (size_t)dh, 0.0f, M(bs->a, n), (size_t)Q * n,
                                         H));
    } else {
        fcl_tensor raw;
        FCL_TRY(fcl_tensor_alloc(ctx, &raw, FCL_MEM_WORKSPACE, 3, (int[]){H, Q, n}));
        fewcl_status st =
            fcl_gemm_strided_batched(ctx, 0, 1, Q, n, dh, 1.0f, M(bs->qh, I), (size_t)dh,
                                     M(bs->kh, I), (size_t)dh, 0.0f, M(&raw, n), (size_t)Q * n, H);
        if (st == FEWCL_OK) st = fcl_softmax_forward(ctx, &raw, 1.0f / sqrtf((float)dh), bs->a);
        fcl_tensor_free(ctx, &raw);
        FCL_TRY(st);
    }
    /* out_h = A_h·v_h → o [Q,I] (heads merged head-major) */
    FCL_TRY(save2(ctx, h, Q, I, &bs->o));
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, Q, dh, n, 1.0f, M(bs->a, n), (size_t)Q * n,
                                     M(bs->v, I), (size_t)dh, 0.0f, M(bs->o, I), (size_t)dh, H));
    /* H1 = H + o·Woᵀ + bo */
    FCL_TRY(save2(ctx, h, Q, d, &bs->h1));
    FCL_TRY(fcl_linear_forward(ctx, bs->o, value(h, bparam(h, b, BW_O)),
                               value(h, bparam(h, b, BB_O)), bs->h1));
    FCL_TRY(fcl_add(ctx, bs->h1, hin, bs->h1));
    /* H2 = H1 + W2·GELU(W1·LN2(H1) + b1) + b2 */
    FCL_TRY(save2(ctx, h, Q, d, &bs->ln2));
    FCL_TRY(save1(ctx, h, Q, &bs->mean2));
    FCL_TRY(save1(ctx, h, Q, &bs->rstd2));
    FCL_TRY(fcl_layernorm_forward(ctx, bs->h1, value(h, bparam(h, b, BN2_G)),
                                  value(h, bparam(h, b, BN2_B)), FCL_LN_EPS, bs->ln2, bs->mean2,
                                  bs->rstd2));
    FCL_TRY(save2(ctx, h, Q, Mh, &bs->f1));
    FCL_TRY(save2(ctx, h, Q, Mh, &bs->g));
    FCL_TRY(fcl_linear_forward(ctx, bs->ln2, value(h, bparam(h, b, BW_1)),
                               value(h, bparam(h, b, BB_1)), bs->f1));
    FCL_TRY(fcl_gelu_forward(ctx, bs->f1, bs->g));
    if (recompute) return FEWCL_OK;
    FCL_TRY(save2(ctx, h, Q, d, &bs->h2));
    FCL_TRY(fcl_linear_forward(ctx, bs->g, value(h, bparam(h, b, BW_2)),
                               value(h, bparam(h, b, BB_2)), bs->h2));
    return fcl_add(ctx, bs->h2, bs->h1, bs->h2);
}

/* Checkpointing, after block b's forward: frees its intermediates (latest first) and keeps its
 * output, the next block's input. Their slots in the saved list stay, empty (freeing an empty
 * tensor does nothing). */
void fcl_enh_block_keep_output(fewcl_context *ctx, block_saved *bs) {
    fcl_tensor *t[] = {bs->g,      bs->f1, bs->rstd2,  bs->mean2,  bs->ln2, bs->h1, bs->o,
                       bs->a,      bs->kh, bs->qh,     bs->v,      bs->k,   bs->q,  bs->rstd_p,
                       bs->mean_p, bs->pn, bs->rstd_u, bs->mean_u, bs->u};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        fcl_tensor_free(ctx, t[i]); /* softmax: qh, kh are q, k (freed once, then empty) */
}

void fcl_enh_release(fewcl_context *ctx, fcl_head *base) {
    enhanced *h = (enhanced *)base;
    if (h->have_dfeat) fcl_tensor_free(ctx, &h->dfeat), h->have_dfeat = 0;
    while (h->n_saved > 0)
        fcl_tensor_free(ctx, &h->saved[--h->n_saved]);
    h->have = 0;
}

/* Z = ReLU(LN(x·Wrᵀ + br)) for the rows of x [rows,D] (saved), or a view of x without the
 * projection; h->z points at it. */
fewcl_status fcl_enh_project(fewcl_context *ctx, enhanced *h, const fcl_tensor *x) {
    const int rows = x->shape[0], d = h->Dp;
    if (!h->proj) {
        h->zview = *x;
        h->zview.owner = 0;
        h->z = &h->zview;
        return FEWCL_OK;
    }
    int ip = h->ip_proj;
    FCL_TRY(save2(ctx, h, rows, d, &h->y0));
    FCL_TRY(save1(ctx, h, rows, &h->mean0));
    FCL_TRY(save1(ctx, h, rows, &h->rstd0));
    FCL_TRY(save2(ctx, h, rows, d, &h->z));
    FCL_TRY(fcl_linear_forward(ctx, x, value(h, ip), value(h, ip + 1), h->y0));
    FCL_TRY(fcl_layernorm_forward(ctx, h->y0, value(h, ip + 2), value(h, ip + 3), FCL_LN_EPS, h->z,
                                  h->mean0, h->rstd0));
    return fcl_relu_forward(ctx, h->z, h->z);
}

/* The projection of an episode. Its linear part runs on the supports [n·k, D] and on the
 * queries [Q, D] separately, as enrolment and classification run it (enhanced_enroll.c): a
 * GEMM's rows may round differently with the number of rows, and so the enrolled path gives
 * this forward's logits bit for bit. LN and ReLU (row by row) then run over all B rows in the
 * episode's order, which is what the backward differentiates. */
static fewcl_status project_episode(fewcl_context *ctx, enhanced *h, const fcl_tensor *x) {
    if (!h->proj) return fcl_enh_project(ctx, h, x);
    const int n = h->n, k = h->k, q = h->q, Q = h->Q, B = h->B, d = h->Dp, D = h->D;
    const int ip = h->ip_proj;
    FCL_TRY(save2(ctx, h, B, d, &h->y0));
    FCL_TRY(save1(ctx, h, B, &h->mean0));
    FCL_TRY(save1(ctx, h, B, &h->rstd0));
    FCL_TRY(save2(ctx, h, B, d, &h->z));
    enum { XS, XQ, YS, YQ, T_N };
    const int rows[T_N] = {n * k, Q, n * k, Q}, cols[T_N] = {D, D, d, d};
    fcl_tensor t[T_N];
    int have = 0;
    fewcl_status st = FEWCL_OK;
    for (; have < T_N && st == FEWCL_OK; have++)
        st = ws2(ctx, &t[have], rows[have], cols[have]);
    if (st != FEWCL_OK) have--;
    fcl_kernel_entry *kk;
    if (st == FEWCL_OK) st = fcl_kernel_get(ctx, &k_split_episode, &kk);
    if (st == FEWCL_OK)
        st = fcl_args(kk, "tttuuuu", x, &t[XS], &t[XQ], (unsigned)n, (unsigned)k, (unsigned)q,
                      (unsigned)D);
    if (st == FEWCL_OK) st = launch1(ctx, kk, (size_t)B * D);
    if (st == FEWCL_OK)
        st = fcl_linear_forward(ctx, &t[XS], value(h, ip), value(h, ip + 1), &t[YS]);
    if (st == FEWCL_OK)
        st = fcl_linear_forward(ctx, &t[XQ], value(h, ip), value(h, ip + 1), &t[YQ]);
    if (st == FEWCL_OK) st = fcl_kernel_get(ctx, &k_merge_episode, &kk);
    if (st == FEWCL_OK)
        st = fcl_args(kk, "tttuuuu", &t[YS], &t[YQ], h->y0, (unsigned)n, (unsigned)k, (unsigned)q,
                      (unsigned)d);
    if (st == FEWCL_OK) st = launch1(ctx, kk, (size_t)B * d);
    while (have > 0)
        fcl_tensor_free(ctx, &t[--have]);
    FCL_TRY(st);
    FCL_TRY(fcl_layernorm_forward(ctx, h->y0, value(h, ip + 2), value(h, ip + 3), FCL_LN_EPS, h->z,
                                  h->mean0, h->rstd0));
    return fcl_relu_forward(ctx, h->z, h->z);
}

static fewcl_status forward_impl(fewcl_context *ctx, enhanced *h, const fcl_tensor *x, int training,
                                 fcl_head_out *out) {
    const int n = h->n, k = h->k, q = h->q, Q = h->Q, B = h->B, d = h->Dp;
    if (x->ndim != 2 || x->shape[0] != B || x->shape[1] != h->D) {
        char s[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "enhanced head: features %s do not fit [%d,%d] (%d-way, %d-shot, "
                        "%d-query, feature size %d)",
                        fcl_shape_str(x, s, sizeof s), B, h->D, n, k, q, h->D);
    }
    h->x = x;
    h->training = training;
    h->have = 1;
    /* 1. projection */
    FCL_TRY(project_episode(ctx, h, x));
    out->features = h->z;
    /* 2. supports and queries */
    FCL_TRY(fcl_enh_save(ctx, h, 3, (int[]){n, k, d}, &h->s));
    FCL_TRY(save2(ctx, h, Q, d, &h->zq));
    {
        fcl_kernel_entry *kk;
        FCL_TRY(fcl_kernel_get(ctx, &k_split_episode, &kk));
        FCL_TRY(fcl_args(kk, "tttuuuu", h->z, h->s, h->zq, (unsigned)n, (unsigned)k, (unsigned)q,
                         (unsigned)d));
        FCL_TRY(launch1(ctx, kk, (size_t)B * d));
    }
    /* 3. prototypes p_c = w_c·S_c, w = softmax over the shots of proto_weight */
    FCL_TRY(save2(ctx, h, n, k, &h->w));
    {
        fcl_tensor pw = view2(value(h, h->ip_proto), n, k);
        FCL_TRY(fcl_softmax_forward(ctx, &pw, 1.0f, h->w));
    }
    FCL_TRY(save2(ctx, h, n, d, &h->p));
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, 1, d, k, 1.0f, M(h->w, k), (size_t)k, M(h->s, d),
                                     (size_t)k * d, 0.0f, M(h->p, d), (size_t)d, n));
    /* 4. attention blocks */
    fcl_tensor *hcur = h->zq;
    for (int b = 0; b < h->cfg.depth; b++) {
        FCL_TRY(fcl_enh_block_forward(ctx, h, b, hcur, &h->blk[b], 0));
        if (h->checkpoint) fcl_enh_block_keep_output(ctx, &h->blk[b]);
        hcur = h->blk[b].h2;
    }
    /* 5. Mahalanobis logits */
    FCL_TRY(save2(ctx, h, Q, n, &h->logits));
    FCL_TRY(fcl_enh_save(ctx, h, 3, (int[]){n, k, d}, &h->mx));
    FCL_TRY(fcl_enh_save(ctx, h, 3, (int[]){n, Q, d}, &h->my));
    fcl_maha_path path = fcl_enh_maha_path(h, k);
    FCL_TRY(fcl_mahalanobis_forward(ctx, path, h->s, h->p, hcur, h->logits, h->mx, h->my));
    out->logits = h->logits;
    out->loss = out->loss_ce = out->loss_var = out->loss_cov = NULL;
    if (!training) return FEWCL_OK;
    /* 6. losses */
    FCL_TRY(save1(ctx, h, Q, &h->labels));
    FCL_TRY(fcl_episode_labels(ctx, h->labels, q));
    FCL_TRY(save1(ctx, h, 1, &h->lce));
    FCL_TRY(fcl_cross_entropy_forward(ctx, h->logits, h->labels, h->lce));
    out->loss_ce = h->lce;
    if (!h->cfg.vic) {
        out->loss = h->lce;
        return FEWCL_OK;
    }
    const int N = n * (k + 1);
    FCL_TRY(save2(ctx, h, N, d, &h->e));
    {
        fcl_tensor es = sub(h->e, 0, 2, (int[]){n * k, d});
        fcl_tensor ep = sub(h->e, (size_t)n * k * d, 2, (int[]){n, d});
        fcl_tensor s2 = view2(h->s, n * k, d);
        FCL_TRY(fcl_enh_copy(ctx, &s2, &es));
        FCL_TRY(fcl_enh_copy(ctx, h->p, &ep));
    }
    FCL_TRY(save1(ctx, h, d, &h->cmean));
    FCL_TRY(save1(ctx, h, d, &h->cvar));
    FCL_TRY(save1(ctx, h, d, &h->cstd));
    FCL_TRY(save2(ctx, h, N, d, &h->cz));
    FCL_TRY(fcl_colstats_forward(ctx, h->e, h->cmean, h->cvar, h->cstd, h->cz));
    FCL_TRY(save2(ctx, h, d, d, &h->cc));
    FCL_TRY(fcl_colcov_forward(ctx, h->cz, h->cc));
    FCL_TRY(save1(ctx, h, 1, &h->lv));
    FCL_TRY(save1(ctx, h, 1, &h->lc));
    FCL_TRY(fcl_vic_variance_loss_forward(ctx, h->cvar, h->lv));
    FCL_TRY(fcl_vic_covariance_loss_forward(ctx, h->cc, h->lc));
    FCL_TRY(save1(ctx, h, 1, &h->total));
    {
        fcl_kernel_entry *kk;
        FCL_TRY(fcl_kernel_get(ctx, &k_uncertainty_forward, &kk));
        FCL_TRY(fcl_args(kk, "ttttt", h->lce, h->lv, h->lc, value(h, h->ip_logvars), h->total));
        FCL_TRY(launch1(ctx, kk, 1));
    }
    out->loss = h->total, out->loss_var = h->lv, out->loss_cov = h->lc;
    return FEWCL_OK;
}

static fewcl_status enhanced_forward(fewcl_context *ctx, fcl_head *base, const fcl_tensor *x,
                                     int training, fcl_head_out *out) {
    enhanced *h = (enhanced *)base;
    fcl_enh_release(ctx, base); /* a forward replaces whatever the previous one kept */
    memset(out, 0, sizeof *out);
    fewcl_status st = forward_impl(ctx, h, x, training, out);
    if (st != FEWCL_OK) fcl_enh_release(ctx, base), memset(out, 0, sizeof *out);
    return st;
}

/* ---- backward ------------------------------------------------------------------------- */

/* dH [Q,D′] holds the gradient of the block's output on entry and of its input on return;
 * dp [n,D′] accumulates the gradient of the prototypes. */
static fewcl_status block_backward(fewcl_context *ctx, enhanced *h, int b, block_saved *bs,
                                   fcl_tensor *dH, fcl_tensor *dp) {
    const int Q = h->Q, n = h->n, d = h->Dp, I = h->inner, H = h->cfg.heads;
    const int dh = h->cfg.dim_head, Mh = h->cfg.mlp_dim;
    const int cosine = h->cfg.variant == FCL_VARIANT_COSINE;
    enum { T_G, T_LN2, T_O, T_A, T_V, T_QH, T_KH, T_U, T_PN, T_PN2, T_N };
    fcl_tensor t[T_N];
    int have[T_N] = {0};
    fewcl_status st = FEWCL_OK;
#define W(i, a, bb)                                                                                \
    do {                                                                                           \
        if (st == FEWCL_OK) st = ws2(ctx, &t[i], a, bb);                                           \
        if (st == FEWCL_OK) have[i] = 1;                                                           \
    } while (0)
#define DO(expr)                                                                                   \
    do {                                                                                           \
        if (st == FEWCL_OK) st = (expr);                                                           \
    } while (0)
    /* FFN: H2 = H1 + W2·GELU(W1·LN2(H1) + b1) + b2 */
    W(T_G, Q, Mh);
    DO(fcl_linear_backward(ctx, bs->g, value(h, bparam(h, b, BW_2)), dH, &t[T_G],
                           grad(h, bparam(h, b, BW_2)), grad(h, bparam(h, b, BB_2))));
    DO(fcl_gelu_backward(ctx, bs->f1, &t[T_G], &t[T_G]));
    W(T_LN2, Q, d);
    DO(fcl_linear_backward(ctx, bs->ln2, value(h, bparam(h, b, BW_1)), &t[T_G], &t[T_LN2],
                           grad(h, bparam(h, b, BW_1)), grad(h, bparam(h, b, BB_1))));
    DO(fcl_layernorm_backward(ctx, bs->h1, value(h, bparam(h, b, BN2_G)), bs->mean2, bs->rstd2,
                              &t[T_LN2], &t[T_LN2], grad(h, bparam(h, b, BN2_G)),
                              grad(h, bparam(h, b, BN2_B))));
    DO(fcl_add(ctx, dH, &t[T_LN2], dH)); /* dH1 */
    /* H1 = H + o·Woᵀ + bo */
    W(T_O, Q, I);
    DO(fcl_linear_backward(ctx, bs->o, value(h, bparam(h, b, BW_O)), dH, &t[T_O],
                           grad(h, bparam(h, b, BW_O)), grad(h, bparam(h, b, BB_O))));
    /* o_h = A_h·v_h: dA_h = do_h·v_hᵀ, dv_h = A_hᵀ·do_h */
    if (st == FEWCL_OK) {
        st = fcl_tensor_alloc(ctx, &t[T_A], FCL_MEM_WORKSPACE, 3, (int[]){H, Q, n});
        if (st == FEWCL_OK) have[T_A] = 1;
    }
    DO(fcl_gemm_strided_batched(ctx, 0, 1, Q, n, dh, 1.0f, M(&t[T_O], I), (size_t)dh, M(bs->v, I),
                                (size_t)dh, 0.0f, M(&t[T_A], n), (size_t)Q * n, H));
    W(T_V, n, I);
    DO(fcl_gemm_strided_batched(ctx, 1, 0, n, dh, Q, 1.0f, M(bs->a, n), (size_t)Q * n,
                                M(&t[T_O], I), (size_t)dh, 0.0f, M(&t[T_V], I), (size_t)dh, H));
    if (!cosine) DO(fcl_softmax_backward(ctx, bs->a, &t[T_A], 1.0f / sqrtf((float)dh), &t[T_A]));
    /* scores_h = q̂_h·k̂_hᵀ: dq̂_h = dS_h·k̂_h, dk̂_h = dS_hᵀ·q̂_h */
    W(T_QH, Q, I);
    W(T_KH, n, I);
    DO(fcl_gemm_strided_batched(ctx, 0, 0, Q, dh, n, 1.0f, M(&t[T_A], n), (size_t)Q * n,
                                M(bs->kh, I), (size_t)dh, 0.0f, M(&t[T_QH], I), (size_t)dh, H));
    DO(fcl_gemm_strided_batched(ctx, 1, 0, n, dh, Q, 1.0f, M(&t[T_A], n), (size_t)Q * n,
                                M(bs->qh, I), (size_t)dh, 0.0f, M(&t[T_KH], I), (size_t)dh, H));
    if (cosine && st == FEWCL_OK) {
        fcl_tensor a = view2(bs->q, Q * H, dh), da = view2(&t[T_QH], Q * H, dh);
        DO(fcl_l2norm_backward(ctx, &a, &da, FCL_L2N_EPS, &da));
        fcl_tensor c = view2(bs->k, n * H, dh), dc = view2(&t[T_KH], n * H, dh);
        DO(fcl_l2norm_backward(ctx, &c, &dc, FCL_L2N_EPS, &dc));
    }
    /* projections */
    W(T_U, Q, d);
    DO(fcl_linear_backward(ctx, bs->u, value(h, bparam(h, b, BW_Q)), &t[T_QH], &t[T_U],
                           grad(h, bparam(h, b, BW_Q)), NULL));
    W(T_PN, n, d);
    W(T_PN2, n, d);
    DO(fcl_linear_backward(ctx, bs->pn, value(h, bparam(h, b, BW_K)), &t[T_KH], &t[T_PN],
                           grad(h, bparam(h, b, BW_K)), NULL));
    DO(fcl_linear_backward(ctx, bs->pn, value(h, bparam(h, b, BW_V)), &t[T_V], &t[T_PN2],
                           grad(h, bparam(h, b, BW_V)), NULL));
    DO(fcl_add(ctx, &t[T_PN], &t[T_PN2], &t[T_PN]));
    /* LN1 of H and of the prototypes (shared γ, β: both accumulate) */
    DO(fcl_layernorm_backward(ctx, bs->h_in, value(h, bparam(h, b, BN1_G)), bs->mean_u, bs->rstd_u,
                              &t[T_U], &t[T_U], grad(h, bparam(h, b, BN1_G)),
                              grad(h, bparam(h, b, BN1_B))));
    DO(fcl_add(ctx, dH, &t[T_U], dH));
    DO(fcl_layernorm_backward(ctx, h->p, value(h, bparam(h, b, BN1_G)), bs->mean_p, bs->rstd_p,
                              &t[T_PN], &t[T_PN], grad(h, bparam(h, b, BN1_G)),
                              grad(h, bparam(h, b, BN1_B))));
    DO(fcl_add(ctx, dp, &t[T_PN], dp));
#undef W
#undef DO
    for (int i = T_N - 1; i >= 0; i--)
        if (have[i]) fcl_tensor_free(ctx, &t[i]);
    return st;
}

enum { G_DLOGITS, G_DS, G_DP, G_DH, G_DZ, G_DW, G_SC, G_DVAR, G_DC, G_DZC, G_DE, G_N };

static fewcl_status backward_impl(fewcl_context *ctx, enhanced *h, fcl_tensor *g, int *have) {
    const int n = h->n, k = h->k, q = h->q, Q = h->Q, B = h->B, d = h->Dp;
#define A2(i, a, b)                                                                                \
    do {                                                                                           \
        FCL_TRY(ws2(ctx, &g[i], a, b));                                                            \
        have[i] = 1;                                                                               \
    } while (0)
    /* d total → dL_I (and dL_V, dL_C): scalars G_SC [3] on the device */
    FCL_TRY(fcl_tensor_alloc1(ctx, &g[G_SC], FCL_MEM_WORKSPACE, 3));
    have[G_SC] = 1;
    fcl_tensor dce = sub(&g[G_SC], 0, 1, (int[]){1}), dlv = sub(&g[G_SC], 1, 1, (int[]){1}),
               dlc = sub(&g[G_SC], 2, 1, (int[]){1});
    if (h->cfg.vic) {
        fcl_kernel_entry *kk;
        FCL_TRY(fcl_kernel_get(ctx, &k_uncertainty_backward, &kk));
        FCL_TRY(fcl_args(kk, "tttttttt", h->lce, h->lv, h->lc, value(h, h->ip_logvars), &dce, &dlv,
                         &dlc, grad(h, h->ip_logvars)));
        FCL_TRY(launch1(ctx, kk, 1));
    } else {
        FCL_TRY(fcl_fill(ctx, &g[G_SC], 1.0f));
    }
    /* CE → Mahalanobis */
    A2(G_DLOGITS, Q, n);
    FCL_TRY(fcl_cross_entropy_backward(ctx, h->logits, h->labels, &dce, &g[G_DLOGITS]));
    FCL_TRY(fcl_tensor_alloc(ctx, &g[G_DS], FCL_MEM_WORKSPACE, 3, (int[]){n, k, d}));
    have[G_DS] = 1;
    A2(G_DP, n, d);
    A2(G_DH, Q, d);
    FCL_TRY(
        fcl_mahalanobis_backward(ctx, h->mx, h->my, &g[G_DLOGITS], &g[G_DS], &g[G_DP], &g[G_DH]));
    /* blocks, last first */
    for (int b = h->cfg.depth - 1; b >= 0; b--) {
        if (!h->checkpoint) {
            FCL_TRY(block_backward(ctx, h, b, &h->blk[b], &g[G_DH], &g[G_DP]));
            continue;
        }
        /* Recompute the block's intermediates from its input (the same kernels on the same
         * values as in forward: bit-identical), differentiate, and free them again. */
        int mark = h->n_saved;
        fcl_tensor *hin = b ? h->blk[b - 1].h2 : h->zq;
        fewcl_status st = fcl_enh_block_forward(ctx, h, b, hin, &h->blk[b], 1);
        if (st == FEWCL_OK) st = block_backward(ctx, h, b, &h->blk[b], &g[G_DH], &g[G_DP]);
        while (h->n_saved > mark)
            fcl_tensor_free(ctx, &h->saved[--h->n_saved]);
        FCL_TRY(st);
    }
    /* VIC on E = [S; p] */
    if (h->cfg.vic) {
        const int N = n * (k + 1);
        A2(G_DVAR, 1, d);
        fcl_tensor dvar = sub(&g[G_DVAR], 0, 1, (int[]){d});
        FCL_TRY(fcl_vic_variance_loss_backward(ctx, h->cvar, &dlv, &dvar));
        A2(G_DC, d, d);
        FCL_TRY(fcl_vic_covariance_loss_backward(ctx, h->cc, &dlc, &g[G_DC]));
        A2(G_DZC, N, d);
        FCL_TRY(fcl_colcov_backward(ctx, h->cz, &g[G_DC], &g[G_DZC]));
        A2(G_DE, N, d);
        FCL_TRY(fcl_colstats_backward(ctx, h->e, h->cmean, h->cstd, h->cz, NULL, &dvar, NULL,
                                      &g[G_DZC], &g[G_DE]));
        fcl_tensor des = sub(&g[G_DE], 0, 3, (int[]){n, k, d});
        fcl_tensor dep = sub(&g[G_DE], (size_t)n * k * d, 2, (int[]){n, d});
        FCL_TRY(fcl_add(ctx, &g[G_DS], &des, &g[G_DS]));
        FCL_TRY(fcl_add(ctx, &g[G_DP], &dep, &g[G_DP]));
    }
    /* prototypes p_c = w_c·S_c: dw_c = S_c·dp_c [k], dS_c += w_cᵀ·dp_c; w = softmax(proto_weight)
     */
    A2(G_DW, n, k);
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, k, 1, d, 1.0f, M(h->s, d), (size_t)k * d,
                                     M(&g[G_DP], 1), (size_t)d, 0.0f, M(&g[G_DW], 1), (size_t)k,
                                     n));
    FCL_TRY(fcl_gemm_strided_batched(ctx, 1, 0, k, d, 1, 1.0f, M(h->w, k), (size_t)k,
                                     M(&g[G_DP], d), (size_t)d, 1.0f, M(&g[G_DS], d), (size_t)k * d,
                                     n));
    FCL_TRY(fcl_softmax_backward(ctx, h->w, &g[G_DW], 1.0f, &g[G_DW]));
    {
        fcl_tensor gp = view2(grad(h, h->ip_proto), n, k);
        FCL_TRY(fcl_axpy(ctx, 1.0f, &g[G_DW], &gp));
    }
    /* merge supports and queries back to [B,D′] */
    fcl_tensor *dz;
    if (h->proj) {
        A2(G_DZ, B, d);
        dz = &g[G_DZ];
    } else {
        FCL_TRY(fcl_tensor_alloc2(ctx, &h->dfeat, FCL_MEM_ACTIVATION, B, d));
        h->have_dfeat = 1;
        dz = &h->dfeat;
    }
    {
        fcl_kernel_entry *kk;
        FCL_TRY(fcl_kernel_get(ctx, &k_merge_episode, &kk));
        FCL_TRY(fcl_args(kk, "tttuuuu", &g[G_DS], &g[G_DH], dz, (unsigned)n, (unsigned)k,
                         (unsigned)q, (unsigned)d));
        FCL_TRY(launch1(ctx, kk, (size_t)B * d));
    }
    /* projection: Z = ReLU(LN(x·Wrᵀ + br)) */
    if (h->proj) {
        int ip = h->ip_proj;
        FCL_TRY(fcl_relu_backward(ctx, h->z, dz, dz));
        FCL_TRY(fcl_layernorm_backward(ctx, h->y0, value(h, ip + 2), h->mean0, h->rstd0, dz, dz,
                                       grad(h, ip + 2), grad(h, ip + 3)));
        FCL_TRY(fcl_tensor_alloc2(ctx, &h->dfeat, FCL_MEM_ACTIVATION, B, h->D));
        h->have_dfeat = 1;
        FCL_TRY(fcl_linear_backward(ctx, h->x, value(h, ip), dz, &h->dfeat, grad(h, ip),
                                    grad(h, ip + 1)));
    }
#undef A2
    return FEWCL_OK;
}

static fewcl_status enhanced_backward(fewcl_context *ctx, fcl_head *base,
                                      const fcl_tensor **dfeatures) {
    enhanced *h = (enhanced *)base;
    *dfeatures = NULL;
    if (!h->have || !h->training)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "enhanced head: backward needs a training forward first");
    if (h->have_dfeat) fcl_tensor_free(ctx, &h->dfeat), h->have_dfeat = 0;
    fcl_tensor g[G_N];
    int have[G_N] = {0};
    fewcl_status st = backward_impl(ctx, h, g, have);
    for (int i = G_N - 1; i >= 0; i--)
        if (have[i]) fcl_tensor_free(ctx, &g[i]);
    /* the saved activations go (in reverse order); dfeatures stays until release */
    while (h->n_saved > 0)
        fcl_tensor_free(ctx, &h->saved[--h->n_saved]);
    h->have = 0;
    if (st != FEWCL_OK) {
        if (h->have_dfeat) fcl_tensor_free(ctx, &h->dfeat), h->have_dfeat = 0;
        return st;
    }
    *dfeatures = &h->dfeat;
    return FEWCL_OK;
}

static void enhanced_destroy(fewcl_context *ctx, fcl_head *base) {
    enhanced *h = (enhanced *)base;
    fcl_enh_release(ctx, base);
    free(h->blk);
    free(h);
}

static const fcl_head_ops enhanced_ops = {"enhanced",      enhanced_forward, enhanced_backward,
                                          fcl_enh_release, enhanced_destroy, fcl_enh_embed,
                                          fcl_enh_enroll,  fcl_enh_classify, fcl_enh_support_free};
