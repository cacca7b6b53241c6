/* The enhanced head's state and the pieces of its forward that enrolment reuses
 * (lib/nn/enhanced.c, lib/nn/enhanced_enroll.c). Private to those two files. */
#ifndef FEWCL_NN_ENHANCED_IMPL_H
#define FEWCL_NN_ENHANCED_IMPL_H

#include "../ops/mahalanobis.h"
#include "model.h"

#define MAX_SAVED 512

enum { BW_Q, BW_K, BW_V, BW_O, BB_O, BN1_G, BN1_B, BN2_G, BN2_B, BW_1, BB_1, BW_2, BB_2, BP_N };

typedef struct {
    /* saved by forward (indices into the head's saved list are not needed: pointers into it) */
    fcl_tensor *h_in;                                       /* the block's input H [Q,D′] */
    fcl_tensor *mean_u, *rstd_u, *u, *mean_p, *rstd_p, *pn; /* LN1 of H and of the prototypes */
    fcl_tensor *q, *k, *v, *qh, *kh;                        /* qh/kh: normalised (cosine) or q/k */
    fcl_tensor *a;                                          /* [heads,Q,n] attention weights */
    fcl_tensor *o, *h1, *mean2, *rstd2, *ln2, *f1, *g, *h2;
} block_saved;

typedef struct enhanced {
    fcl_head base;
    fcl_model_config cfg;
    fcl_params *P;
    int D, Dp, proj, n, k, q, Q, B, inner;
    int ip_proj, ip_proto, ip_blocks, ip_logvars; /* parameter indices in P */
    int checkpoint; /* --checkpoint blocks|all: blocks keep only their output (file comment) */
    /* forward state */
    int training, have;
    const fcl_tensor *x;
    fcl_tensor saved[MAX_SAVED];
    int n_saved;
    fcl_tensor *y0, *mean0, *rstd0, *z; /* projection */
    fcl_tensor zview;                   /* z when there is no projection (a view of x) */
    fcl_tensor *s, *zq, *w, *p, *logits, *mx, *my, *labels;
    fcl_tensor *e, *cmean, *cvar, *cstd, *cz, *cc;
    fcl_tensor *lce, *lv, *lc, *total;
    block_saved *blk;
    fcl_tensor dfeat; /* owned; valid until release */
    int have_dfeat;
} enhanced;

/* The Mahalanobis path for k supports per class (lib/nn/enhanced.c's file comment). */
fcl_maha_path fcl_enh_maha_path(const enhanced *h, int k);
/* A tensor of the forward's saved list (freed by release or backward). */
fewcl_status fcl_enh_save(fewcl_context *ctx, enhanced *h, int ndim, const int *shape,
                          fcl_tensor **out);
fewcl_status fcl_enh_copy(fewcl_context *ctx, const fcl_tensor *x, fcl_tensor *y);
fewcl_status fcl_enh_project(fewcl_context *ctx, enhanced *h, const fcl_tensor *x);
/* Attention block b on hin [h->Q, D′] against the prototypes h->p [h->n, D′]. */
fewcl_status fcl_enh_block_forward(fewcl_context *ctx, enhanced *h, int b, fcl_tensor *hin,
                                   block_saved *bs, int recompute);
void fcl_enh_block_keep_output(fewcl_context *ctx, block_saved *bs);
void fcl_enh_release(fewcl_context *ctx, fcl_head *base);

/* The head operations of enhanced_enroll.c (see fcl_head_ops). */
fewcl_status fcl_enh_embed(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features,
                           fcl_tensor *out);
fewcl_status fcl_enh_enroll(fewcl_context *ctx, fcl_head *base, const fcl_tensor *features, int n,
                            int k, fcl_head_support **out);
fewcl_status fcl_enh_classify(fewcl_context *ctx, fcl_head *base, const fcl_head_support *sup,
                              const fcl_tensor *features, fcl_tensor *logits);
void fcl_enh_support_free(fewcl_context *ctx, fcl_head *base, fcl_head_support *sup);

#endif
