/* The original FS-CT head (docs/maths.md §5), with the published code's quirks kept: one shared
 * LayerNorm + projection for q, k and v; prototypes as the attention queries; the cosine
 * attention without ε; the softmax variant's softmax over a singleton axis (identically 1);
 * CosineDistLinear normalising over the class axis with +1e-5 outside the square root and a
 * WeightNorm weight, logit = 2·g·⟨v, Ŷ⟩/‖v‖; depth > 1 reusing the same weights.
 *
 * Forward, features [B, D] (class c: k supports, then q queries) →
 *   w = softmax_k(proto_weight);  X⁰[c] = Σ_i w[c,i]·Zs[c,i]                    [n, D]
 *   Z = query rows [Q, D];  Fk = Fv = LN_a(Z)·W_inᵀ                             [Q, I]
 *   per block (input Xq: X⁰ for the first, shared by every query; then [Q·n, D]):
 *     cosine: Fq = LN_a(Xq)·W_inᵀ, A[r,c,h] = ⟨Fq,Fk⟩/(‖Fq‖‖Fk‖), O[r,c,f] = A·Fv[r,f]
 *     softmax: O[r,c,f] = Fv[r,f]
 *     X¹ = O·W_oᵀ + b_o + Xq;  X² = X¹ + GELU(LN_f(X¹)·W₁ᵀ + b₁)·W₂ᵀ + b₂          [Q·n, D]
 *   Y = LN_h(X²)·W_hᵀ + b_h                                                        [Q·n, 64]
 *   cosine: logit = 2·⟨g·v/‖v‖, Y/(‖Y‖_classes + 1e-5)⟩;  softmax: logit = ⟨u, Y⟩ + b
 *   loss = mean cross-entropy with labels ⌊r/q⌋.
 *
 * Checkpointing (cfg->checkpoint blocks or all, docs/spec.md §3): in a training forward each block
 * keeps only its output X² (the next block's q input); its backward first recomputes the block's
 * intermediates from its input with the same kernels on the same values (bit-identical).
 *
 * Memory: every tensor forward allocates goes on a stack (the outputs first); backward frees
 * each stage's saved tensors once it is done with them, in reverse order; release frees what is
 * left. fcl_tensor_free zeroes a freed tensor, so freeing early and popping later is safe. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/loss.h"
#include "../ops/rowwise.h"
#include "model.h"

static fcl_kernel_handle k_gather_queries = FCL_KERNEL_HANDLE("fsct", "gather_queries");
static fcl_kernel_handle k_scatter_queries = FCL_KERNEL_HANDLE("fsct", "scatter_queries");
static fcl_kernel_handle k_attn_cos_scores = FCL_KERNEL_HANDLE("fsct", "attn_cos_scores");
static fcl_kernel_handle k_attn_mix = FCL_KERNEL_HANDLE("fsct", "attn_mix");
static fcl_kernel_handle k_add_broadcast_rows = FCL_KERNEL_HANDLE("fsct", "add_broadcast_rows");
static fcl_kernel_handle k_weightnorm_forward = FCL_KERNEL_HANDLE("fsct", "weightnorm_forward");
static fcl_kernel_handle k_classnorm_forward = FCL_KERNEL_HANDLE("fsct", "classnorm_forward");
static fcl_kernel_handle k_weightnorm_backward = FCL_KERNEL_HANDLE("fsct", "weightnorm_backward");
static fcl_kernel_handle k_classnorm_backward = FCL_KERNEL_HANDLE("fsct", "classnorm_backward");
static fcl_kernel_handle k_attn_cos_coeffs = FCL_KERNEL_HANDLE("fsct", "attn_cos_coeffs");
static fcl_kernel_handle k_attn_dk = FCL_KERNEL_HANDLE("fsct", "attn_dk");
static fcl_kernel_handle k_attn_cos_dq = FCL_KERNEL_HANDLE("fsct", "attn_cos_dq");

#define FSCT_OUT_DIM 64 /* linear.1: D → 64, then CosineDistLinear / Linear 64 → 1 */
#define FSCT_NORM_EPS 1e-5f

/* Parameters in registration order (docs/maths.md §5.1). The last two are weight_g and
 * weight_v of linear.2.L (cosine) or weight and bias of linear.2 (softmax). */
enum {
    P_PROTO,
    P_LNA_W,
    P_LNA_B,
    P_WIN,
    P_WO,
    P_BO,
    P_LNF_W,
    P_LNF_B,
    P_W1,
    P_B1,
    P_W2,
    P_B2,
    P_LNH_W,
    P_LNH_B,
    P_WH,
    P_BH,
    P_OUT_A,
    P_OUT_B,
    P_COUNT
};

typedef struct fsct_block {
    fcl_tensor lnq, lnq_mean, lnq_rstd, fq, a; /* cosine only */
    fcl_tensor o, x1, lnf, lnf_mean, lnf_rstd, h1, g1, x2;
} fsct_block;

typedef struct fsct_head {
    fcl_head base;
    fcl_params *P;
    int idx[P_COUNT]; /* positions in P (its item array may move as it grows) */
    int n, k, q, Q, D, H, dh, I, M, depth, cosine;
    int checkpoint; /* --checkpoint blocks|all: blocks keep only their output X² */

    const fcl_tensor *features;
    int training, forwarded;
    fcl_tensor **stack;
    int top, cap;

    /* outputs */
    fcl_tensor logits, labels, loss, dfeatures;
    /* saved by forward */
    fcl_tensor wsm, x0, zq, lnz, lnz_mean, lnz_rstd, fk;
    fsct_block *blocks;
    fcl_tensor lnh, lnh_mean, lnh_rstd, y, weff, yhat;
    /* backward temporaries */
    fcl_tensor ones, dlogits, dweff, dy, dln, dx, dg, dout, coef, dfqf, dfq, dlq, dx0, dfk, dlz,
        dwsm;
} fsct_head;

static const char *param_name(int cosine, int i) {
    static const char *names[P_COUNT] = {"proto_weight",
                                         "ATTN.input_linear.0.weight",
                                         "ATTN.input_linear.0.bias",
                                         "ATTN.input_linear.1.weight",
                                         "ATTN.output_linear.weight",
                                         "ATTN.output_linear.bias",
                                         "FFN.0.weight",
                                         "FFN.0.bias",
                                         "FFN.1.weight",
                                         "FFN.1.bias",
                                         "FFN.3.weight",
                                         "FFN.3.bias",
                                         "linear.0.weight",
                                         "linear.0.bias",
                                         "linear.1.weight",
                                         "linear.1.bias",
                                         NULL,
                                         NULL};
    if (i == P_OUT_A) return cosine ? "linear.2.L.weight_g" : "linear.2.weight";
    if (i == P_OUT_B) return cosine ? "linear.2.L.weight_v" : "linear.2.bias";
    return names[i];
}

static fcl_tensor *val(fsct_head *h, int i) { return &h->P->items[h->idx[i]].value; }
static fcl_tensor *grad(fsct_head *h, int i) { return &h->P->items[h->idx[i]].grad; }

/* ---- tensor bookkeeping --------------------------------------------------------------- */

static fewcl_status alloc(fewcl_context *ctx, fsct_head *h, fcl_tensor *t, fcl_mem_category cat,
                          int ndim, const int *shape) {
    if (h->top == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        fcl_tensor **grown = realloc(h->stack, (size_t)cap * sizeof *grown);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fsct head: tensor list");
        h->stack = grown;
        h->cap = cap;
    }
    FCL_TRY(fcl_tensor_alloc(ctx, t, cat, ndim, shape));
    h->stack[h->top++] = t;
    return FEWCL_OK;
}

static fewcl_status act2(fewcl_context *ctx, fsct_head *h, fcl_tensor *t, int a, int b) {
    return alloc(ctx, h, t, FCL_MEM_ACTIVATION, 2, (int[]){a, b});
}
static fewcl_status act1(fewcl_context *ctx, fsct_head *h, fcl_tensor *t, int a) {
    return alloc(ctx, h, t, FCL_MEM_ACTIVATION, 1, &a);
}
static fewcl_status ws2(fewcl_context *ctx, fsct_head *h, fcl_tensor *t, int a, int b) {
    return alloc(ctx, h, t, FCL_MEM_WORKSPACE, 2, (int[]){a, b});
}

/* Frees (in reverse) everything allocated after the stack held `mark` tensors. */
static void pop_to(fewcl_context *ctx, fsct_head *h, int mark) {
    while (h->top > mark)
        fcl_tensor_free(ctx, h->stack[--h->top]);
}

static fcl_matrix mat(const fcl_tensor *t, size_t offset, int ld) {
    return (fcl_matrix){t, offset, ld};
}

static fewcl_status view2(const fcl_tensor *t, int a, int b, fcl_tensor *v) {
    return fcl_tensor_view(t, 2, (int[]){a, b}, v);
}

/* ---- kernels of cl/fsct.cl -------------------------------------------------------------- */

static fewcl_status launch2(fewcl_context *ctx, fcl_kernel_entry *k, size_t x, size_t y) {
    size_t side = fcl_kernel_wg_side(ctx, k);
    size_t gws[2] = {x, y}, lws[2] = {side, side};
    return fcl_launch(ctx, k, 2, gws, lws);
}

static fewcl_status launch1(fewcl_context *ctx, fcl_kernel_entry *k, size_t x) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &x, &lws);
}

/* Copies the query rows of the episode into a [Q, D] tensor (to_episode 0), or back into the
 * query rows of an episode-shaped tensor (to_episode 1). */
static fewcl_status move_queries(fewcl_context *ctx, fsct_head *h, const fcl_tensor *src,
                                 fcl_tensor *dst, int to_episode) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, to_episode ? &k_scatter_queries : &k_gather_queries, &k));
    FCL_TRY(fcl_args(k, "ttuuuu", src, dst, (unsigned)h->Q, (unsigned)h->D, (unsigned)h->k,
                     (unsigned)h->q));
    return launch2(ctx, k, (size_t)h->D, (size_t)h->Q);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Fq = LN_a(x)·W_inᵀ for the q input x [rows, D]. */
static fewcl_status project(fewcl_context *ctx, fsct_head *h, const fcl_tensor *x, fcl_tensor *ln,
                            fcl_tensor *mean, fcl_tensor *rstd, fcl_tensor *f) {
    int rows = x->shape[0];
    FCL_TRY(act2(ctx, h, ln, rows, h->D));
    FCL_TRY(act1(ctx, h, mean, rows));
    FCL_TRY(act1(ctx, h, rstd, rows));
    FCL_TRY(act2(ctx, h, f, rows, h->I));
    FCL_TRY(fcl_layernorm_forward(ctx, x, val(h, P_LNA_W), val(h, P_LNA_B), FCL_LN_EPS, ln, mean,
                                  rstd));
    return fcl_linear_forward(ctx, ln, val(h, P_WIN), NULL, f);
}

/* Frees a block's saved tensors in reverse order of allocation (all but X² with keep_x2). */
static void free_block(fewcl_context *ctx, fsct_block *b, int keep_x2) {
    fcl_tensor *saved[] = {&b->x2, &b->g1, &b->h1, &b->lnf_rstd, &b->lnf_mean, &b->lnf, &b->x1,
                           &b->o,  &b->a,  &b->fq, &b->lnq_rstd, &b->lnq_mean, &b->lnq};
    for (size_t i = keep_x2 ? 1 : 0; i < sizeof saved / sizeof saved[0]; i++)
        fcl_tensor_free(ctx, saved[i]);
}

/* One attention + FFN block on the q input xq ([n, D] shared by every query when first).
 * recompute: a checkpointed block's second run, in backward, which stops once everything
 * backward reads exists (X² is not among it and stays the first run's). */
static fewcl_status block_forward(fewcl_context *ctx, fsct_head *h, fsct_block *b,
                                  const fcl_tensor *xq, int first, int recompute) {
    int rows = h->Q * h->n;
    fcl_kernel_entry *k;
    if (h->cosine) {
        FCL_TRY(project(ctx, h, xq, &b->lnq, &b->lnq_mean, &b->lnq_rstd, &b->fq));
        FCL_TRY(act1(ctx, h, &b->a, rows * h->H));
        FCL_TRY(fcl_kernel_get(ctx, &k_attn_cos_scores, &k));
        FCL_TRY(fcl_args(k, "tttuuuui", &b->fq, &h->fk, &b->a, (unsigned)h->Q, (unsigned)h->n,
                         (unsigned)h->H, (unsigned)h->dh, first));
        FCL_TRY(launch1(ctx, k, (size_t)rows * h->H));
    }
    FCL_TRY(act2(ctx, h, &b->o, rows, h->I));
    FCL_TRY(fcl_kernel_get(ctx, &k_attn_mix, &k));
    FCL_TRY(fcl_args(k, "tttuuuui", h->cosine ? &b->a : &h->fk, &h->fk, &b->o, (unsigned)h->Q,
                     (unsigned)h->n, (unsigned)h->H, (unsigned)h->dh, h->cosine));
    FCL_TRY(launch2(ctx, k, (size_t)h->I, (size_t)rows));

    /* X¹ = O·W_oᵀ + b_o + Xq */
    FCL_TRY(act2(ctx, h, &b->x1, rows, h->D));
    FCL_TRY(fcl_linear_forward(ctx, &b->o, val(h, P_WO), val(h, P_BO), &b->x1));
    if (first) {
        FCL_TRY(fcl_kernel_get(ctx, &k_add_broadcast_rows, &k));
        unsigned cols = (unsigned)(h->n * h->D);
        FCL_TRY(fcl_args(k, "ttuu", xq, &b->x1, (unsigned)h->Q, cols));
        FCL_TRY(launch2(ctx, k, cols, (size_t)h->Q));
    } else {
        FCL_TRY(fcl_add(ctx, &b->x1, xq, &b->x1));
    }

    /* X² = X¹ + GELU(LN_f(X¹)·W₁ᵀ + b₁)·W₂ᵀ + b₂ */
    FCL_TRY(act2(ctx, h, &b->lnf, rows, h->D));
    FCL_TRY(act1(ctx, h, &b->lnf_mean, rows));
    FCL_TRY(act1(ctx, h, &b->lnf_rstd, rows));
    FCL_TRY(act2(ctx, h, &b->h1, rows, h->M));
    FCL_TRY(act2(ctx, h, &b->g1, rows, h->M));
    FCL_TRY(fcl_layernorm_forward(ctx, &b->x1, val(h, P_LNF_W), val(h, P_LNF_B), FCL_LN_EPS,
                                  &b->lnf, &b->lnf_mean, &b->lnf_rstd));
    FCL_TRY(fcl_linear_forward(ctx, &b->lnf, val(h, P_W1), val(h, P_B1), &b->h1));
    FCL_TRY(fcl_gelu_forward(ctx, &b->h1, &b->g1));
    if (recompute) return FEWCL_OK;
    FCL_TRY(act2(ctx, h, &b->x2, rows, h->D));
    FCL_TRY(fcl_linear_forward(ctx, &b->g1, val(h, P_W2), val(h, P_B2), &b->x2));
    return fcl_add(ctx, &b->x2, &b->x1, &b->x2);
}

/* LN_h → Linear(D→64) → CosineDistLinear(64→1) or Linear(64→1): logits [Q, n]. */
static fewcl_status output_forward(fewcl_context *ctx, fsct_head *h, const fcl_tensor *x) {
    int rows = h->Q * h->n;
    FCL_TRY(act2(ctx, h, &h->lnh, rows, h->D));
    FCL_TRY(act1(ctx, h, &h->lnh_mean, rows));
    FCL_TRY(act1(ctx, h, &h->lnh_rstd, rows));
    FCL_TRY(act2(ctx, h, &h->y, rows, FSCT_OUT_DIM));
    FCL_TRY(fcl_layernorm_forward(ctx, x, val(h, P_LNH_W), val(h, P_LNH_B), FCL_LN_EPS, &h->lnh,
                                  &h->lnh_mean, &h->lnh_rstd));
    FCL_TRY(fcl_linear_forward(ctx, &h->lnh, val(h, P_WH), val(h, P_BH), &h->y));
    fcl_tensor col;
    FCL_TRY(view2(&h->logits, rows, 1, &col));
    if (!h->cosine) return fcl_linear_forward(ctx, &h->y, val(h, P_OUT_A), val(h, P_OUT_B), &col);

    fcl_kernel_entry *k;
    FCL_TRY(act2(ctx, h, &h->weff, 1, FSCT_OUT_DIM));
    FCL_TRY(act2(ctx, h, &h->yhat, rows, FSCT_OUT_DIM));
    FCL_TRY(fcl_kernel_get(ctx, &k_weightnorm_forward, &k));
    FCL_TRY(
        fcl_args(k, "tttu", val(h, P_OUT_A), val(h, P_OUT_B), &h->weff, (unsigned)FSCT_OUT_DIM));
    FCL_TRY(launch1(ctx, k, FSCT_OUT_DIM));
    FCL_TRY(fcl_kernel_get(ctx, &k_classnorm_forward, &k));
    FCL_TRY(fcl_args(k, "ttuuu", &h->y, &h->yhat, (unsigned)h->Q, (unsigned)h->n,
                     (unsigned)FSCT_OUT_DIM));
    FCL_TRY(launch2(ctx, k, FSCT_OUT_DIM, (size_t)h->Q));
    /* logit = 2·Ŷ·wᵀ: the scale of CosineDistLinear for one output (≤ 200) */
    return fcl_gemm(ctx, 0, 1, rows, 1, FSCT_OUT_DIM, 2.0f, mat(&h->yhat, 0, FSCT_OUT_DIM),
                    mat(&h->weff, 0, FSCT_OUT_DIM), 0.0f, mat(&col, 0, 1));
}

static void fsct_release(fewcl_context *ctx, fcl_head *base) {
    fsct_head *h = (fsct_head *)base;
    pop_to(ctx, h, 0);
    h->forwarded = 0;
    h->features = NULL;
}

static fewcl_status forward_inner(fewcl_context *ctx, fsct_head *h, const fcl_tensor *features,
                                  int training, fcl_head_out *out) {
    int n = h->n, k = h->k, q = h->q, Q = h->Q, D = h->D, B = n * (k + q);
    if (features->ndim != 2 || features->shape[0] != B || features->shape[1] != D) {
        char s[64];
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fsct head: features %s do not fit [n·(k+q), D] = [%d, %d] (%d-way "
                        "%d-shot %d-query)",
                        fcl_shape_str(features, s, sizeof s), B, D, n, k, q);
    }
    h->features = features;
    h->training = training;

    /* outputs first, so that they sit below what backward frees */
    FCL_TRY(act2(ctx, h, &h->logits, Q, n));
    if (training) {
        FCL_TRY(act1(ctx, h, &h->labels, Q));
        FCL_TRY(act1(ctx, h, &h->loss, 1));
        FCL_TRY(fcl_episode_labels(ctx, &h->labels, q));
    }
    int saved = h->top;

    /* prototypes X⁰[c] = Σ_i softmax_k(proto_weight)[c,i]·Zs[c,i] */
    fcl_tensor pw;
    FCL_TRY(view2(val(h, P_PROTO), n, k, &pw));
    FCL_TRY(act2(ctx, h, &h->wsm, n, k));
    FCL_TRY(fcl_softmax_forward(ctx, &pw, 1.0f, &h->wsm));
    FCL_TRY(act2(ctx, h, &h->x0, n, D));
    size_t per_class = (size_t)(k + q) * D;
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, 1, D, k, 1.0f, mat(&h->wsm, 0, k), (size_t)k,
                                     mat(features, 0, D), per_class, 0.0f, mat(&h->x0, 0, D),
                                     (size_t)D, n));

    /* keys = values: the query images through the shared projection */
    FCL_TRY(act2(ctx, h, &h->zq, Q, D));
    FCL_TRY(move_queries(ctx, h, features, &h->zq, 0));
    FCL_TRY(project(ctx, h, &h->zq, &h->lnz, &h->lnz_mean, &h->lnz_rstd, &h->fk));

    if (!training) { /* evaluation keeps only what the next step reads */
        fcl_tensor *done[] = {&h->lnz_rstd, &h->lnz_mean, &h->lnz, &h->zq, &h->wsm};
        for (size_t i = 0; i < sizeof done / sizeof done[0]; i++)
            fcl_tensor_free(ctx, done[i]);
    }
    const fcl_tensor *x = &h->x0;
    for (int t = 0; t < h->depth; t++) {
        FCL_TRY(block_forward(ctx, h, &h->blocks[t], x, t == 0, 0));
        x = &h->blocks[t].x2;
        if (training && h->checkpoint) free_block(ctx, &h->blocks[t], 1);
        if (!training) {
            free_block(ctx, &h->blocks[t], 1);
            fcl_tensor_free(ctx, t ? &h->blocks[t - 1].x2 : &h->x0);
        }
    }
    FCL_TRY(output_forward(ctx, h, x));

    out->features = features;
    out->logits = &h->logits;
    out->loss = out->loss_ce = out->loss_var = out->loss_cov = NULL;
    if (training) {
        FCL_TRY(fcl_cross_entropy_forward(ctx, &h->logits, &h->labels, &h->loss));
        out->loss = out->loss_ce = &h->loss;
    } else {
        pop_to(ctx, h, saved); /* evaluation: only the logits stay */
    }
    h->forwarded = 1;
    return FEWCL_OK;
}

static fewcl_status fsct_forward(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features,
                                 int training, fcl_head_out *out) {
    fsct_head *h = (fsct_head *)base;
    fsct_release(ctx, base); /* a previous episode's outputs */
    memset(out, 0, sizeof *out);
    fewcl_status s = forward_inner(ctx, h, features, training, out);
    if (s != FEWCL_OK) fsct_release(ctx, base);
    return s;
}

/* ---- backward --------------------------------------------------------------------------- */

/* From dx = ∂L/∂Fq (rows of x) back through W_in and LN_a: *dxin = ∂L/∂x (overwritten). */
static fewcl_status project_backward(fewcl_context *ctx, fsct_head *h, const fcl_tensor *x,
                                     const fcl_tensor *ln, const fcl_tensor *mean,
                                     const fcl_tensor *rstd, const fcl_tensor *df,
                                     fcl_tensor *dxin) {
    FCL_TRY(fcl_linear_backward(ctx, ln, val(h, P_WIN), df, dxin, grad(h, P_WIN), NULL));
    return fcl_layernorm_backward(ctx, x, val(h, P_LNA_W), mean, rstd, dxin, dxin, grad(h, P_LNA_W),
                                  grad(h, P_LNA_B));
}

/* The output head: h->dx = ∂L/∂X² of the last block. */
static fewcl_status output_backward(fewcl_context *ctx, fsct_head *h, const fcl_tensor *x) {
    int rows = h->Q * h->n;
    FCL_TRY(alloc(ctx, h, &h->ones, FCL_MEM_WORKSPACE, 1, (int[]){1}));
    FCL_TRY(ws2(ctx, h, &h->dlogits, h->Q, h->n));
    FCL_TRY(fcl_fill(ctx, &h->ones, 1.0f));
    FCL_TRY(fcl_cross_entropy_backward(ctx, &h->logits, &h->labels, &h->ones, &h->dlogits));
    fcl_tensor dcol;
    FCL_TRY(view2(&h->dlogits, rows, 1, &dcol));
    FCL_TRY(ws2(ctx, h, &h->dy, rows, FSCT_OUT_DIM));
    if (h->cosine) {
        fcl_kernel_entry *k;
        /* ∂L/∂w = 2·Σ_rows dlogit·Ŷ, then through the WeightNorm to g and v */
        FCL_TRY(ws2(ctx, h, &h->dweff, 1, FSCT_OUT_DIM));
        FCL_TRY(fcl_gemm(ctx, 1, 0, 1, FSCT_OUT_DIM, rows, 2.0f, mat(&dcol, 0, 1),
                         mat(&h->yhat, 0, FSCT_OUT_DIM), 0.0f, mat(&h->dweff, 0, FSCT_OUT_DIM)));
        FCL_TRY(fcl_kernel_get(ctx, &k_weightnorm_backward, &k));
        FCL_TRY(fcl_args(k, "tttttu", val(h, P_OUT_A), val(h, P_OUT_B), &h->dweff, grad(h, P_OUT_A),
                         grad(h, P_OUT_B), (unsigned)FSCT_OUT_DIM));
        FCL_TRY(launch1(ctx, k, FSCT_OUT_DIM));
        FCL_TRY(fcl_kernel_get(ctx, &k_classnorm_backward, &k));
        FCL_TRY(fcl_args(k, "ttttuuuf", &h->y, &h->dlogits, &h->weff, &h->dy, (unsigned)h->Q,
                         (unsigned)h->n, (unsigned)FSCT_OUT_DIM, 2.0));
        FCL_TRY(launch2(ctx, k, FSCT_OUT_DIM, (size_t)h->Q));
        fcl_tensor_free(ctx, &h->dweff);
        fcl_tensor_free(ctx, &h->yhat);
        fcl_tensor_free(ctx, &h->weff);
    } else {
        FCL_TRY(fcl_linear_backward(ctx, &h->y, val(h, P_OUT_A), &dcol, &h->dy, grad(h, P_OUT_A),
                                    grad(h, P_OUT_B)));
    }
    fcl_tensor_free(ctx, &h->dlogits);
    fcl_tensor_free(ctx, &h->ones);
    FCL_TRY(ws2(ctx, h, &h->dln, rows, h->D));
    FCL_TRY(fcl_linear_backward(ctx, &h->lnh, val(h, P_WH), &h->dy, &h->dln, grad(h, P_WH),
                                grad(h, P_BH)));
    fcl_tensor_free(ctx, &h->dy);
    FCL_TRY(ws2(ctx, h, &h->dx, rows, h->D));
    FCL_TRY(fcl_layernorm_backward(ctx, x, val(h, P_LNH_W), &h->lnh_mean, &h->lnh_rstd, &h->dln,
                                   &h->dx, grad(h, P_LNH_W), grad(h, P_LNH_B)));
    fcl_tensor_free(ctx, &h->dln);
    fcl_tensor_free(ctx, &h->y);
    fcl_tensor_free(ctx, &h->lnh_rstd);
    fcl_tensor_free(ctx, &h->lnh_mean);
    fcl_tensor_free(ctx, &h->lnh);
    return FEWCL_OK;
}

/* Block t backward: h->dx holds ∂L/∂X² on entry and ∂L/∂Xq on exit (for t = 0, h->dx0
 * receives ∂L/∂X⁰ instead). ∂L/∂Fk accumulates in h->dfk. */
static fewcl_status block_backward(fewcl_context *ctx, fsct_head *h, int t) {
    fsct_block *b = &h->blocks[t];
    int rows = h->Q * h->n, first = t == 0;
    const fcl_tensor *xq = first ? &h->x0 : &h->blocks[t - 1].x2;
    fcl_kernel_entry *k;
    /* Checkpointed: the block's intermediates again, from its input (same kernels, same values:
     * bit-identical); the frees below drop them as they drop the first run's otherwise. */
    if (h->checkpoint) FCL_TRY(block_forward(ctx, h, b, xq, first, 1));

    /* FFN: dX¹ = dX² + LN_f′(W₁′(GELU′(W₂′(dX²)))) */
    FCL_TRY(ws2(ctx, h, &h->dg, rows, h->M));
    FCL_TRY(fcl_linear_backward(ctx, &b->g1, val(h, P_W2), &h->dx, &h->dg, grad(h, P_W2),
                                grad(h, P_B2)));
    FCL_TRY(fcl_gelu_backward(ctx, &b->h1, &h->dg, &h->dg));
    FCL_TRY(ws2(ctx, h, &h->dln, rows, h->D));
    FCL_TRY(fcl_linear_backward(ctx, &b->lnf, val(h, P_W1), &h->dg, &h->dln, grad(h, P_W1),
                                grad(h, P_B1)));
    fcl_tensor_free(ctx, &h->dg);
    FCL_TRY(fcl_layernorm_backward(ctx, &b->x1, val(h, P_LNF_W), &b->lnf_mean, &b->lnf_rstd,
                                   &h->dln, &h->dln, grad(h, P_LNF_W), grad(h, P_LNF_B)));
    FCL_TRY(fcl_add(ctx, &h->dx, &h->dln, &h->dx));
    fcl_tensor_free(ctx, &h->dln);

    /* attention output: dO = dX¹·W_o */
    FCL_TRY(ws2(ctx, h, &h->dout, rows, h->I));
    FCL_TRY(fcl_linear_backward(ctx, &b->o, val(h, P_WO), &h->dx, &h->dout, grad(h, P_WO),
                                grad(h, P_BO)));
    int accumulate = t != h->depth - 1; /* the last block runs first and writes dFk */
    if (h->cosine) {
        FCL_TRY(alloc(ctx, h, &h->coef, FCL_MEM_WORKSPACE, 1, (int[]){rows * h->H * 3}));
        FCL_TRY(fcl_kernel_get(ctx, &k_attn_cos_coeffs, &k));
        FCL_TRY(fcl_args(k, "ttttuuuui", &b->fq, &h->fk, &h->dout, &h->coef, (unsigned)h->Q,
                         (unsigned)h->n, (unsigned)h->H, (unsigned)h->dh, first));
        FCL_TRY(launch1(ctx, k, (size_t)rows * h->H));
    }
    FCL_TRY(fcl_kernel_get(ctx, &k_attn_dk, &k));
    const fcl_tensor *a = h->cosine ? &b->a : &h->fk, *fq = h->cosine ? &b->fq : &h->fk;
    const fcl_tensor *coef = h->cosine ? &h->coef : &h->fk;
    FCL_TRY(fcl_args(k, "ttttttuuuuiii", a, fq, &h->fk, &h->dout, coef, &h->dfk, (unsigned)h->Q,
                     (unsigned)h->n, (unsigned)h->H, (unsigned)h->dh, first, h->cosine,
                     accumulate));
    FCL_TRY(launch2(ctx, k, (size_t)h->I, (size_t)h->Q));
    fcl_tensor_free(ctx, &h->dout);

    /* ∂L/∂Xq: the residual, plus (cosine) the q path back through W_in and LN_a */
    fcl_tensor *target = &h->dx;
    if (first) {
        fcl_tensor wide;
        FCL_TRY(ws2(ctx, h, &h->dx0, h->n, h->D));
        FCL_TRY(view2(&h->dx, h->Q, h->n * h->D, &wide));
        FCL_TRY(fcl_sum_rows(ctx, &wide, &h->dx0, 0));
        target = &h->dx0;
    }
    if (h->cosine) {
        int qrows = first ? h->n : rows;
        FCL_TRY(ws2(ctx, h, &h->dfqf, rows, h->I));
        FCL_TRY(fcl_kernel_get(ctx, &k_attn_cos_dq, &k));
        FCL_TRY(fcl_args(k, "ttttuuuui", &h->coef, &b->fq, &h->fk, &h->dfqf, (unsigned)h->Q,
                         (unsigned)h->n, (unsigned)h->H, (unsigned)h->dh, first));
        FCL_TRY(launch2(ctx, k, (size_t)h->I, (size_t)rows));
        fcl_tensor_free(ctx, &h->coef);
        const fcl_tensor *dfq = &h->dfqf;
        if (first) { /* the prototypes are shared by every query: sum over r */
            fcl_tensor wide;
            FCL_TRY(ws2(ctx, h, &h->dfq, h->n, h->I));
            FCL_TRY(view2(&h->dfqf, h->Q, h->n * h->I, &wide));
            FCL_TRY(fcl_sum_rows(ctx, &wide, &h->dfq, 0));
            dfq = &h->dfq;
        }
        FCL_TRY(ws2(ctx, h, &h->dlq, qrows, h->D));
        FCL_TRY(project_backward(ctx, h, xq, &b->lnq, &b->lnq_mean, &b->lnq_rstd, dfq, &h->dlq));
        FCL_TRY(fcl_add(ctx, target, &h->dlq, target));
        fcl_tensor_free(ctx, &h->dlq);
        fcl_tensor_free(ctx, &h->dfq);
        fcl_tensor_free(ctx, &h->dfqf);
    }
    if (first) fcl_tensor_free(ctx, &h->dx);
    free_block(ctx, b, 0);
    return FEWCL_OK;
}

static fewcl_status backward_inner(fewcl_context *ctx, fsct_head *h) {
    int n = h->n, k = h->k, q = h->q, Q = h->Q, D = h->D;
    FCL_TRY(output_backward(ctx, h, &h->blocks[h->depth - 1].x2));
    FCL_TRY(ws2(ctx, h, &h->dfk, Q, h->I));
    for (int t = h->depth - 1; t >= 0; t--)
        FCL_TRY(block_backward(ctx, h, t));

    /* keys and values: ∂L/∂Z back through the shared projection, into the query rows */
    FCL_TRY(alloc(ctx, h, &h->dfeatures, FCL_MEM_ACTIVATION, 2, (int[]){n * (k + q), D}));
    FCL_TRY(fcl_fill(ctx, &h->dfeatures, 0.0f)); /* the GEMM below runs with beta 0 on it */
    FCL_TRY(ws2(ctx, h, &h->dlz, Q, D));
    FCL_TRY(
        project_backward(ctx, h, &h->zq, &h->lnz, &h->lnz_mean, &h->lnz_rstd, &h->dfk, &h->dlz));
    fcl_tensor_free(ctx, &h->dfk);
    FCL_TRY(move_queries(ctx, h, &h->dlz, &h->dfeatures, 1));
    fcl_tensor_free(ctx, &h->dlz);

    /* prototypes: ∂L/∂Zs[c,i] = w[c,i]·∂L/∂X⁰[c]; ∂L/∂w[c,i] = ⟨∂L/∂X⁰[c], Zs[c,i]⟩ */
    size_t per_class = (size_t)(k + q) * D;
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 0, k, D, 1, 1.0f, mat(&h->wsm, 0, 1), (size_t)k,
                                     mat(&h->dx0, 0, D), (size_t)D, 0.0f, mat(&h->dfeatures, 0, D),
                                     per_class, n));
    FCL_TRY(ws2(ctx, h, &h->dwsm, n, k));
    FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 1, 1, k, D, 1.0f, mat(&h->dx0, 0, D), (size_t)D,
                                     mat(h->features, 0, D), per_class, 0.0f, mat(&h->dwsm, 0, k),
                                     (size_t)k, n));
    fcl_tensor_free(ctx, &h->dx0);
    FCL_TRY(fcl_softmax_backward(ctx, &h->wsm, &h->dwsm, 1.0f, &h->dwsm));
    fcl_tensor gp;
    FCL_TRY(view2(grad(h, P_PROTO), n, k, &gp));
    FCL_TRY(fcl_axpy(ctx, 1.0f, &h->dwsm, &gp));
    fcl_tensor_free(ctx, &h->dwsm);
    fcl_tensor *base[] = {&h->fk, &h->lnz_rstd, &h->lnz_mean, &h->lnz, &h->zq, &h->x0, &h->wsm};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        fcl_tensor_free(ctx, base[i]);
    return FEWCL_OK;
}

static fewcl_status fsct_backward(fewcl_context *ctx, fcl_head *base,
                                  const fcl_tensor **dfeatures) {
    fsct_head *h = (fsct_head *)base;
    if (!h->forwarded || !h->training)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fsct head: backward needs a training forward first");
    if (h->dfeatures.numel)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fsct head: backward ran already for this forward");
    fewcl_status s = backward_inner(ctx, h);
    if (s != FEWCL_OK) {
        fsct_release(ctx, base);
        return s;
    }
    *dfeatures = &h->dfeatures;
    return FEWCL_OK;
}

static void fsct_destroy(fewcl_context *ctx, fcl_head *base) {
    fsct_head *h = (fsct_head *)base;
    fsct_release(ctx, base);
    free(h->stack);
    free(h->blocks);
    free(h);
}

/* ---- enrolment (fcl_head_enroll): the evaluation forward cut at the prototypes ----------- */

typedef struct fsct_support {
    fcl_head_support base;
    fcl_tensor x0; /* prototypes [n, D] */
} fsct_support;

static void fsct_support_free(fewcl_context *ctx, fcl_head *base, fcl_head_support *sup) {
    fsct_support *e = (fsct_support *)sup;
    if (!e) return;
    fcl_tensor_free(ctx, &e->x0);
    free(e);
}

/* Prototypes as the forward makes them: softmax of proto_weight (zeros for another shape)
 * over the shots of support features [n·k, D]. */
static fewcl_status enroll_inner(fewcl_context *ctx, fsct_head *h, const fcl_tensor *features,
                                 fsct_support *e) {
    const int n = e->base.n, k = e->base.k, D = h->D;
    fcl_tensor *w = &h->wsm;
    FCL_TRY(act2(ctx, h, w, n, k));
    if (e->base.uniform) { /* a local temporary: not on the head's stack, which outlives it */
        fcl_tensor zeros;
        FCL_TRY(fcl_tensor_alloc2(ctx, &zeros, FCL_MEM_WORKSPACE, n, k));
        fewcl_status st = fcl_fill(ctx, &zeros, 0.0f);
        if (st == FEWCL_OK) st = fcl_softmax_forward(ctx, &zeros, 1.0f, w);
        fcl_tensor_free(ctx, &zeros);
        FCL_TRY(st);
    } else {
        fcl_tensor pw;
        FCL_TRY(view2(val(h, P_PROTO), n, k, &pw));
        FCL_TRY(fcl_softmax_forward(ctx, &pw, 1.0f, w));
    }
    FCL_TRY(fcl_tensor_alloc2(ctx, &e->x0, FCL_MEM_ACTIVATION, n, D));
    return fcl_gemm_strided_batched(ctx, 0, 0, 1, D, k, 1.0f, mat(w, 0, k), (size_t)k,
                                    mat(features, 0, D), (size_t)k * D, 0.0f, mat(&e->x0, 0, D),
                                    (size_t)D, n);
}

static fewcl_status fsct_enroll(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features,
                                int n, int k, fcl_head_support **out) {
    fsct_head *h = (fsct_head *)base;
    *out = NULL;
    char s[64];
    if (n < 1 || k < 1 || features->ndim != 2 || features->shape[0] != n * k ||
        features->shape[1] != h->D)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fsct head enroll: features %s for %d x %d, D %d",
                        fcl_shape_str(features, s, sizeof s), n, k, h->D);
    fsct_support *e = calloc(1, sizeof *e);
    if (!e) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "enroll: out of host memory");
    e->base = (fcl_head_support){n, k, n != h->n || k != h->k};
    fsct_release(ctx, base);
    fewcl_status st = enroll_inner(ctx, h, features, e);
    fsct_release(ctx, base);
    if (st != FEWCL_OK) {
        fsct_support_free(ctx, base, &e->base);
        return st;
    }
    *out = &e->base;
    return FEWCL_OK;
}

/* The forward's query path for query features [Q, D] against the enrolled prototypes. */
static fewcl_status classify_inner(fewcl_context *ctx, fsct_head *h, const fsct_support *e,
                                   const fcl_tensor *features) {
    FCL_TRY(project(ctx, h, features, &h->lnz, &h->lnz_mean, &h->lnz_rstd, &h->fk));
    const fcl_tensor *x = &e->x0;
    for (int t = 0; t < h->depth; t++) {
        FCL_TRY(block_forward(ctx, h, &h->blocks[t], x, t == 0, 0));
        free_block(ctx, &h->blocks[t], 1);
        if (t) fcl_tensor_free(ctx, &h->blocks[t - 1].x2);
        x = &h->blocks[t].x2;
    }
    return output_forward(ctx, h, x);
}

static fewcl_status fsct_classify(fewcl_context *ctx, fcl_head *base, const fcl_head_support *sup,
                                  const fcl_tensor *features, fcl_tensor *logits) {
    fsct_head *h = (fsct_head *)base;
    const fsct_support *e = (const fsct_support *)sup;
    char s[64], l[64];
    if (features->ndim != 2 || features->shape[1] != h->D || features->shape[0] < 1 ||
        logits->ndim != 2 || logits->shape[0] != features->shape[0] ||
        logits->shape[1] != e->base.n)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fsct head classify: features %s and logits %s, expected [Q,%d], [Q,%d]",
                        fcl_shape_str(features, s, sizeof s), fcl_shape_str(logits, l, sizeof l),
                        h->D, e->base.n);
    fsct_release(ctx, base);
    const int n = h->n, Q = h->Q;
    h->n = e->base.n, h->Q = features->shape[0];
    h->logits = *logits; /* written in place: a view, not on the stack */
    h->logits.owner = 0;
    fewcl_status st = classify_inner(ctx, h, e, features);
    h->n = n, h->Q = Q;
    memset(&h->logits, 0, sizeof h->logits);
    fsct_release(ctx, base);
    return st;
}

static const fcl_head_ops fsct_ops = {"fsct",       fsct_forward,  fsct_backward,
                                      fsct_release, fsct_destroy,  NULL,
                                      fsct_enroll,  fsct_classify, fsct_support_free};

/* ---- creation --------------------------------------------------------------------------- */

/* Values of parameter i at initialisation (docs/maths.md §5.1): proto_weight and LN weights
 * 1, LN biases 0, Linear weights and biases uniform in ±1/√fan_in (PyTorch's default),
 * WeightNorm v uniform in ±1/8 and g = ‖v‖. The uniform draws are fcl_pattern_value with
 * pattern seed (uint32)(seed) + 1 + i, i the parameter's position in the enum above. */
static void init_values(int i, int cosine, uint64_t seed, const int *fan_in, float *x,
                        size_t count) {
    uint32_t s = (uint32_t)seed + 1u + (uint32_t)i;
    switch (i) {
    case P_PROTO:
    case P_LNA_W:
    case P_LNF_W:
    case P_LNH_W:
        for (size_t j = 0; j < count; j++)
            x[j] = 1.0f;
        return;
    case P_LNA_B:
    case P_LNF_B:
    case P_LNH_B: memset(x, 0, count * sizeof *x); return;
    default: break;
    }
    float bound = 1.0f / sqrtf((float)fan_in[i]);
    if (cosine && i == P_OUT_A) { /* g = ‖v‖ of the v drawn below */
        double ss = 0;
        for (int j = 0; j < FSCT_OUT_DIM; j++) {
            double v = fcl_pattern_value(s + 1u, (uint64_t)j, bound);
            ss += v * v;
        }
        x[0] = (float)sqrt(ss);
        return;
    }
    for (size_t j = 0; j < count; j++)
        x[j] = fcl_pattern_value(s, j, bound);
}

fewcl_status fcl_fsct_create(fewcl_context *ctx, const fcl_model_config *cfg, int feature_dim,
                             fcl_params *P, uint64_t seed, fcl_head **out) {
    *out = NULL;
    if (cfg->n_way < 2 || cfg->k_shot < 1 || cfg->n_query < 1 || cfg->depth < 1 || cfg->heads < 1 ||
        cfg->dim_head < 1 || cfg->mlp_dim < 1 || feature_dim < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "fsct head: n_way %d (>= 2), k_shot %d, n_query %d, depth %d, heads %d, "
                        "dim_head %d, mlp_dim %d, feature size %d must be positive",
                        cfg->n_way, cfg->k_shot, cfg->n_query, cfg->depth, cfg->heads,
                        cfg->dim_head, cfg->mlp_dim, feature_dim);
    fsct_head *h = calloc(1, sizeof *h);
    if (!h) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fsct head");
    h->base.ops = &fsct_ops;
    h->P = P;
    h->n = cfg->n_way;
    h->k = cfg->k_shot;
    h->q = cfg->n_query;
    h->Q = h->n * h->q;
    h->D = feature_dim;
    h->H = cfg->heads;
    h->dh = cfg->dim_head;
    h->I = h->H * h->dh;
    h->M = cfg->mlp_dim;
    h->depth = cfg->depth;
    h->cosine = cfg->variant == FCL_VARIANT_COSINE;
    h->checkpoint = cfg->checkpoint == FCL_CKPT_BLOCKS || cfg->checkpoint == FCL_CKPT_ALL;
    h->blocks = calloc((size_t)h->depth, sizeof *h->blocks);
    if (!h->blocks) {
        free(h);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fsct head");
    }

    int D = h->D, I = h->I, M = h->M, F = FSCT_OUT_DIM;
    int shapes[P_COUNT][3] = {{h->n, h->k, 1}, {D}, {D},    {I, D}, {D, I}, {D}, {D},    {D},
                              {M, D},          {M}, {D, M}, {D},    {D},    {D}, {F, D}, {F},
                              {1, F},          {0}};
    int ndims[P_COUNT] = {3, 1, 1, 2, 2, 1, 1, 1, 2, 1, 2, 1, 1, 1, 2, 1, 2, 0};
    int fan_in[P_COUNT] = {0, 0, 0, D, I, I, 0, 0, D, D, M, M, 0, 0, D, D, F, F};
    if (h->cosine) { /* weight_g (1,1), weight_v (1,64) */
        shapes[P_OUT_A][1] = 1;
        shapes[P_OUT_B][0] = 1;
        shapes[P_OUT_B][1] = F;
        ndims[P_OUT_B] = 2;
    } else { /* weight (1,64), bias (1) */
        shapes[P_OUT_B][0] = 1;
        ndims[P_OUT_B] = 1;
    }
    fewcl_status s = FEWCL_OK;
    float *host = NULL;
    for (int i = 0; i < P_COUNT && s == FEWCL_OK; i++) {
        fcl_tensor *t;
        h->idx[i] = P->n;
        s = fcl_params_add(ctx, P, param_name(h->cosine, i), ndims[i], shapes[i], 1, &t);
        if (s != FEWCL_OK) break;
        float *grown = realloc(host, t->numel * sizeof *grown);
        if (!grown) {
            s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fsct head: initial values");
            break;
        }
        host = grown;
        init_values(i, h->cosine, seed, fan_in, host, t->numel);
        s = fcl_tensor_upload(ctx, t, host);
    }
    free(host);
    if (s != FEWCL_OK) {
        fsct_destroy(ctx, &h->base);
        return s;
    }
    *out = &h->base;
    return FEWCL_OK;
}
