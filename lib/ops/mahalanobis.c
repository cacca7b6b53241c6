/* The Mahalanobis classifier (cl/mahalanobis.cl + CLBlast GEMMs); maths in mahalanobis.h. */
#include "mahalanobis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cholesky block size: 32 (4 KiB of local memory per block), smaller on devices whose
 * work-groups cannot hold 32 items; the build option makes it a compile-time constant. */
static int block_size(const fewcl_context *ctx) {
    size_t wg = fcl_wg_1d(ctx);
    return wg >= 32 ? 32 : (int)wg;
}

static void bs_option(const fewcl_context *ctx, char *buf, size_t cap) {
    snprintf(buf, cap, "-DBS=%d", block_size(ctx));
}

#define MAHALANOBIS_HANDLE(name)                                                                   \
    { "mahalanobis", (name), NULL, bs_option, 0, 0 }
#define MAHALANOBIS_ROWS_HANDLE(name)                                                              \
    { "mahalanobis", (name), NULL, bs_option, 1, 0 }
static fcl_kernel_handle k_potrf_diag = MAHALANOBIS_HANDLE("potrf_diag");
static fcl_kernel_handle k_trsm_panel = MAHALANOBIS_HANDLE("trsm_panel");
static fcl_kernel_handle k_copy_add_diag = MAHALANOBIS_ROWS_HANDLE("copy_add_diag");
static fcl_kernel_handle k_tri_inverse_wg = MAHALANOBIS_HANDLE("tri_inverse_wg");
static fcl_kernel_handle k_tri_inverse_rows = MAHALANOBIS_HANDLE("tri_inverse_rows");
static fcl_kernel_handle k_center_rows = MAHALANOBIS_HANDLE("center_rows");
static fcl_kernel_handle k_class_diff = MAHALANOBIS_HANDLE("class_diff");
static fcl_kernel_handle k_neg_quadratic = MAHALANOBIS_HANDLE("neg_quadratic");
static fcl_kernel_handle k_scale_by_dlogits = MAHALANOBIS_HANDLE("scale_by_dlogits");
static fcl_kernel_handle k_sum_over_classes = MAHALANOBIS_HANDLE("sum_over_classes");
static fcl_kernel_handle k_neg_sum_over_queries = MAHALANOBIS_HANDLE("neg_sum_over_queries");

/* Matrices first..first+count−1 of a [B,…] tensor, as a view. */
static fcl_tensor batch_view(const fcl_tensor *t, int first, int count) {
    fcl_tensor v = *t;
    size_t per = t->numel / (size_t)t->shape[0];
    v.owner = 0;
    v.offset += per * (size_t)first;
    v.shape[0] = count;
    v.numel = per * (size_t)count;
    return v;
}

static int is_square_batch(const fcl_tensor *t) {
    return t->ndim == 3 && t->shape[1] == t->shape[2] && t->shape[0] > 0 && t->shape[1] > 0;
}

fewcl_status fcl_cholesky_batched(fewcl_context *ctx, fcl_tensor *a, fcl_tensor *status) {
    char sa[64], ss[64];
    if (!is_square_batch(a) || status->ndim != 1 || status->shape[0] != a->shape[0])
        return fcl_fail(FEWCL_ERR_ARGUMENT, "cholesky: a %s and status %s do not fit [B,D,D], [B]",
                        fcl_shape_str(a, sa, sizeof sa), fcl_shape_str(status, ss, sizeof ss));
    int count = a->shape[0], d = a->shape[1], bs = block_size(ctx);
    fcl_kernel_entry *kd, *kp;
    FCL_TRY(fcl_kernel_get(ctx, &k_potrf_diag, &kd));
    FCL_TRY(fcl_kernel_get(ctx, &k_trsm_panel, &kp));
    size_t ts = fcl_kernel_wg_1d(ctx, kp) >= 64 ? 64 : fcl_kernel_wg_1d(ctx, kp);
    FCL_TRY(fcl_fill(ctx, status, 0.0f));
    /* Right-looking blocked Cholesky: factor the diagonal block, solve the panel under it,
     * then A22 −= L21·L21ᵀ on the trailing matrix (one GEMM per matrix, CLBlast). */
    for (int j0 = 0; j0 < d; j0 += bs) {
        int nb = d - j0 < bs ? d - j0 : bs, rest = d - j0 - nb;
        FCL_TRY(fcl_args(kd, "ttuuu", a, status, (unsigned)d, (unsigned)j0, (unsigned)nb));
        size_t gws = (size_t)bs * (size_t)count, lws = (size_t)bs;
        FCL_TRY(fcl_launch(ctx, kd, 1, &gws, &lws));
        if (rest == 0) break;
        FCL_TRY(fcl_args(kp, "tuuu", a, (unsigned)d, (unsigned)j0, (unsigned)nb));
        size_t gws2[2] = {(size_t)rest, (size_t)count}, lws2[2] = {ts, 1};
        FCL_TRY(fcl_launch(ctx, kp, 2, gws2, lws2));
        size_t panel = (size_t)(j0 + nb) * d + j0, trail = (size_t)(j0 + nb) * d + j0 + nb;
        FCL_TRY(fcl_gemm_strided_batched(ctx, 0, 1, rest, rest, nb, -1.0f,
                                         (fcl_matrix){a, panel, d}, (size_t)d * d,
                                         (fcl_matrix){a, panel, d}, (size_t)d * d, 1.0f,
                                         (fcl_matrix){a, trail, d}, (size_t)d * d, count));
    }
    return FEWCL_OK;
}

static fewcl_status copy_add_diag(fewcl_context *ctx, const fcl_tensor *src, fcl_tensor *dst,
                                  float jitter) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_copy_add_diag, &k));
    FCL_TRY(fcl_args(k, "ttuuf", src, dst, (unsigned)src->shape[1], (unsigned)src->shape[0],
                     (double)jitter));
    /* the _rows variant (CPU devices): a work-item per matrix row */
    size_t gws = ctx->limits.row_kernels ? src->numel / (size_t)src->shape[1] : src->numel;
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &gws, &lws);
}

/* Factor a copy of a into l, retrying failed matrices once with the jitter. */
static fewcl_status factor_with_retry(fewcl_context *ctx, const fcl_tensor *a, fcl_tensor *l,
                                      fcl_tensor *status, const char *what, int *jittered) {
    int count = a->shape[0];
    FCL_TRY(copy_add_diag(ctx, a, l, 0.0f));
    FCL_TRY(fcl_cholesky_batched(ctx, l, status));
    if (ctx->dry_run) return FEWCL_OK;
    float *flags = malloc((size_t)count * sizeof *flags);
    if (!flags) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: host flags", what);
    fewcl_status s = fcl_tensor_download(ctx, status, flags);
    for (int b = 0; s == FEWCL_OK && b < count; b++) {
        if (jittered) jittered[b] = flags[b] != 0.0f;
        if (flags[b] == 0.0f) continue;
        fcl_tensor ab = batch_view(a, b, 1), lb = batch_view(l, b, 1),
                   sb = batch_view(status, b, 1);
        float again = 0.0f;
        s = copy_add_diag(ctx, &ab, &lb, FCL_SPD_JITTER);
        if (s == FEWCL_OK) s = fcl_cholesky_batched(ctx, &lb, &sb);
        if (s == FEWCL_OK) s = fcl_tensor_download(ctx, &sb, &again);
        if (s == FEWCL_OK && again != 0.0f)
            s = fcl_fail(FEWCL_ERR_NUMERIC,
                         "%s %d: covariance is not positive definite (Cholesky pivot %d <= 0, "
                         "also after adding %g to the diagonal)",
                         what, b, (int)again, (double)FCL_SPD_JITTER);
    }
    free(flags);
    return s;
}

/* Loop iterations of tri_inverse_wg's busiest item (column 0): d − 1 steps, each striding
 * with wg items over the rows below it, and the first and last passes over the column. */
static size_t tri_inverse_wg_loops(size_t d, size_t wg) {
    return d * d / (2 * wg) + 3 * d + 2 * (d / wg + 2);
}

/* A work-group per column where the column fits in local memory (GPUs), unless its busiest
 * item would loop beyond the budget; *done 0 leaves it to tri_inverse_rows (CPU devices, and
 * larger d). */
static fewcl_status try_tri_inverse_wg(fewcl_context *ctx, const fcl_tensor *l, fcl_tensor *inv,
                                       int *done) {
    unsigned d = (unsigned)l->shape[1], count = (unsigned)l->shape[0];
    *done = 0;
    if (ctx->limits.row_kernels || (size_t)d * sizeof(float) > ctx->limits.local_mem / 2)
        return FEWCL_OK;
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_tri_inverse_wg, &k));
    size_t wg = fcl_kernel_wg_1d(ctx, k);
    if (tri_inverse_wg_loops(d, wg) > FCL_ITEM_LOOP_BUDGET) return FEWCL_OK;
    FCL_TRY(fcl_args(k, "ttuuL", l, inv, d, count, (size_t)d * sizeof(float)));
    size_t gws[2] = {(size_t)d * wg, count}, lws[2] = {wg, 1};
    *done = 1;
    return fcl_launch(ctx, k, 2, gws, lws);
}

/* Rows per tri_inverse_rows launch: a row costs an item at most d/8 float8 steps, a scalar
 * tail of 7 and three loop exits; the last slice also moves d − 1 values into place. */
static unsigned tri_inverse_slice_rows(unsigned d) {
    size_t per_row = d / 8 + 11, move = (size_t)d + 1;
    size_t rows =
        FCL_ITEM_LOOP_BUDGET > move + per_row ? (FCL_ITEM_LOOP_BUDGET - move) / per_row : 1;
    return rows < d ? (unsigned)rows : d;
}

static fewcl_status tri_inverse_rows(fewcl_context *ctx, const fcl_tensor *l, fcl_tensor *inv) {
    unsigned d = (unsigned)l->shape[1], count = (unsigned)l->shape[0];
    unsigned slice = tri_inverse_slice_rows(d);
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_tri_inverse_rows, &k));
    size_t wg = fcl_kernel_wg_1d(ctx, k), side = wg >= 64 ? 64 : wg;
    size_t gws[2] = {d, count}, lws[2] = {side, 1};
    for (unsigned i0 = 0; i0 < d; i0 += slice) {
        unsigned i1 = d - i0 < slice ? d : i0 + slice;
        FCL_TRY(fcl_args(k, "ttuuuu", l, inv, d, count, i0, i1));
        FCL_TRY(fcl_launch(ctx, k, 2, gws, lws));
    }
    return FEWCL_OK;
}

/* inv = L⁻¹ from the factor in the lower triangle of l, the upper triangle zero. */
static fewcl_status tri_inverse(fewcl_context *ctx, const fcl_tensor *l, fcl_tensor *inv) {
    int done;
    FCL_TRY(try_tri_inverse_wg(ctx, l, inv, &done));
    return done ? FEWCL_OK : tri_inverse_rows(ctx, l, inv);
}

fewcl_status fcl_spd_inverse(fewcl_context *ctx, const fcl_tensor *a, fcl_tensor *inv,
                             const char *what, int *jittered) {
    char sa[64], si[64];
    if (!is_square_batch(a) || !fcl_same_shape(a, inv))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "spd inverse: a %s and inverse %s do not fit [B,D,D]",
                        fcl_shape_str(a, sa, sizeof sa), fcl_shape_str(inv, si, sizeof si));
    int count = a->shape[0], d = a->shape[1];
    fcl_tensor l, status;
    FCL_TRY(fcl_tensor_alloc(ctx, &l, FCL_MEM_COVARIANCE, 3, a->shape));
    fewcl_status s = fcl_tensor_alloc1(ctx, &status, FCL_MEM_WORKSPACE, count);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &l);
        return s;
    }
    s = factor_with_retry(ctx, a, &l, &status, what, jittered);
    fcl_tensor_free(ctx, &status);
    /* L⁻¹ into inv, then inv = (L⁻¹)ᵀL⁻¹ into l (the factor is no longer needed), copied back. */
    if (s == FEWCL_OK) s = tri_inverse(ctx, &l, inv);
    size_t stride = (size_t)d * d;
    if (s == FEWCL_OK)
        s = fcl_gemm_strided_batched(ctx, 1, 0, d, d, d, 1.0f, (fcl_matrix){inv, 0, d}, stride,
                                     (fcl_matrix){inv, 0, d}, stride, 0.0f, (fcl_matrix){&l, 0, d},
                                     stride, count);
    if (s == FEWCL_OK) s = copy_add_diag(ctx, &l, inv, 0.0f);
    fcl_tensor_free(ctx, &l);
    return s;
}

/* ---- the classifier --------------------------------------------------------------------- */

typedef struct dims {
    int n, k, d, q;
    float alpha, beta;
} dims;

static void shrinkage(dims *m) {
    m->alpha = (float)m->d / (float)(m->k + m->d);
    m->beta = (1.0f - m->alpha) / ((float)(m->k - 1) + FCL_MAHA_EPS);
}

static fewcl_status center(fewcl_context *ctx, const fcl_tensor *e, fcl_tensor *x) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_center_rows, &k));
    int n = e->shape[0], rows = e->shape[1], cols = e->shape[2];
    FCL_TRY(fcl_args(k, "ttuuu", e, x, (unsigned)n, (unsigned)rows, (unsigned)cols));
    size_t side = fcl_kernel_wg_1d(ctx, k);
    size_t gws[2] = {(size_t)cols, (size_t)n}, lws[2] = {side, 1};
    return fcl_launch(ctx, k, 2, gws, lws);
}

fewcl_status fcl_mahalanobis_covariance(fewcl_context *ctx, const fcl_tensor *e, fcl_tensor *x,
                                        fcl_tensor *sigma) {
    char se[64], ss[64];
    if (e->ndim != 3 || !fcl_same_shape(e, x) || !is_square_batch(sigma) ||
        sigma->shape[0] != e->shape[0] || sigma->shape[1] != e->shape[2])
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis covariance: supports %s and sigma %s do not fit [n,k,D], "
                        "[n,D,D]",
                        fcl_shape_str(e, se, sizeof se), fcl_shape_str(sigma, ss, sizeof ss));
    dims m = {e->shape[0], e->shape[1], e->shape[2], 0, 0, 0};
    shrinkage(&m);
    FCL_TRY(center(ctx, e, x));
    size_t kd = (size_t)m.k * m.d, dd = (size_t)m.d * m.d;
    FCL_TRY(fcl_gemm_strided_batched(ctx, 1, 0, m.d, m.d, m.k, m.beta, (fcl_matrix){x, 0, m.d}, kd,
                                     (fcl_matrix){x, 0, m.d}, kd, 0.0f, (fcl_matrix){sigma, 0, m.d},
                                     dd, m.n));
    /* Σ = β·XᵀX + α on the diagonal, in place: no identity matrix. */
    return copy_add_diag(ctx, sigma, sigma, m.alpha);
}

static fewcl_status check_forward(const fcl_tensor *e, const fcl_tensor *p, const fcl_tensor *h,
                                  const fcl_tensor *logits, const fcl_tensor *x,
                                  const fcl_tensor *y, dims *m) {
    char se[64], sp[64], sh[64], sl[64];
    if (e->ndim != 3 || p->ndim != 2 || h->ndim != 2 || logits->ndim != 2 ||
        p->shape[0] != e->shape[0] || p->shape[1] != e->shape[2] || h->shape[1] != e->shape[2] ||
        logits->shape[0] != h->shape[0] || logits->shape[1] != e->shape[0])
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis: supports %s, prototypes %s, queries %s, logits %s do not "
                        "fit [n,k,D], [n,D], [Q,D], [Q,n]",
                        fcl_shape_str(e, se, sizeof se), fcl_shape_str(p, sp, sizeof sp),
                        fcl_shape_str(h, sh, sizeof sh), fcl_shape_str(logits, sl, sizeof sl));
    *m = (dims){e->shape[0], e->shape[1], e->shape[2], h->shape[0], 0, 0};
    if (!fcl_same_shape(x, e) || y->ndim != 3 || y->shape[0] != m->n || y->shape[1] != m->q ||
        y->shape[2] != m->d)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis: saved x must be [%d,%d,%d] and y [%d,%d,%d]", m->n, m->k,
                        m->d, m->n, m->q, m->d);
    shrinkage(m);
    return FEWCL_OK;
}

static fewcl_status class_diff(fewcl_context *ctx, const fcl_tensor *h, const fcl_tensor *p,
                               fcl_tensor *diff, const dims *m) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_class_diff, &k));
    FCL_TRY(fcl_args(k, "tttuuu", h, p, diff, (unsigned)m->q, (unsigned)m->n, (unsigned)m->d));
    size_t side = fcl_kernel_wg_1d(ctx, k);
    size_t gws[3] = {(size_t)m->d, (size_t)m->q, (size_t)m->n}, lws[3] = {side, 1, 1};
    return fcl_launch(ctx, k, 3, gws, lws);
}

/* The query-independent half (see mahalanobis.h). Dense: Σ_c formed and inverted (Σ⁻¹
 * symmetric, so row vectors work); low-rank: K = (α/β)·I_k + X·Xᵀ inverted. */
fewcl_status fcl_mahalanobis_factor(fewcl_context *ctx, fcl_maha_path path, const fcl_tensor *e,
                                    fcl_tensor *x, fcl_maha_factor *f) {
    char se[64], sx[64];
    memset(f, 0, sizeof *f);
    if (e->ndim != 3 || !fcl_same_shape(e, x))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis factor: supports %s and centred supports %s must both be "
                        "[n,k,D]",
                        fcl_shape_str(e, se, sizeof se), fcl_shape_str(x, sx, sizeof sx));
    f->path = path;
    f->x = x;
    f->n = e->shape[0], f->k = e->shape[1], f->d = e->shape[2];
    dims m = {f->n, f->k, f->d, 0, 0, 0};
    shrinkage(&m);
    f->alpha = m.alpha, f->beta = m.beta;
    if (path == FCL_MAHA_PATH_DENSE) {
        int shape[3] = {m.n, m.d, m.d};
        fcl_tensor sigma;
        FCL_TRY(fcl_tensor_alloc(ctx, &sigma, FCL_MEM_COVARIANCE, 3, shape));
        fewcl_status s = fcl_tensor_alloc(ctx, &f->inv, FCL_MEM_COVARIANCE, 3, shape);
        if (s != FEWCL_OK) {
            fcl_tensor_free(ctx, &sigma);
            return s;
        }
        s = fcl_mahalanobis_covariance(ctx, e, x, &sigma);
        if (s == FEWCL_OK) s = fcl_spd_inverse(ctx, &sigma, &f->inv, "mahalanobis: class", NULL);
        fcl_tensor_free(ctx, &sigma);
        if (s != FEWCL_OK) fcl_mahalanobis_factor_free(ctx, f);
        return s;
    }
    FCL_TRY(center(ctx, e, x));
    int kk[3] = {m.n, m.k, m.k};
    fcl_tensor kmat;
    FCL_TRY(fcl_tensor_alloc(ctx, &kmat, FCL_MEM_WORKSPACE, 3, kk));
    fewcl_status s = fcl_tensor_alloc(ctx, &f->kinv, FCL_MEM_WORKSPACE, 3, kk);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &kmat);
        return s;
    }
    size_t kd = (size_t)m.k * m.d, k2 = (size_t)m.k * m.k;
    s = fcl_gemm_strided_batched(ctx, 0, 1, m.k, m.k, m.d, 1.0f, (fcl_matrix){x, 0, m.d}, kd,
                                 (fcl_matrix){x, 0, m.d}, kd, 0.0f, (fcl_matrix){&kmat, 0, m.k}, k2,
                                 m.n);
    if (s == FEWCL_OK) s = copy_add_diag(ctx, &kmat, &kmat, m.alpha / m.beta);
    if (s == FEWCL_OK)
        s = fcl_spd_inverse(ctx, &kmat, &f->kinv, "mahalanobis (low-rank): class", NULL);
    fcl_tensor_free(ctx, &kmat);
    if (s != FEWCL_OK) fcl_mahalanobis_factor_free(ctx, f);
    return s;
}

void fcl_mahalanobis_factor_free(fewcl_context *ctx, fcl_maha_factor *f) {
    fcl_tensor_free(ctx, &f->kinv);
    fcl_tensor_free(ctx, &f->inv);
}

/* y[c] = diff[c]·Σ_c⁻¹. */
static fewcl_status dense_apply(fewcl_context *ctx, const fcl_maha_factor *f, const fcl_tensor *h,
                                const fcl_tensor *p, fcl_tensor *y, const dims *m) {
    fcl_tensor diff;
    FCL_TRY(fcl_tensor_alloc(ctx, &diff, FCL_MEM_WORKSPACE, 3, y->shape));
    fewcl_status s = class_diff(ctx, h, p, &diff, m);
    size_t qd = (size_t)m->q * m->d, dd = (size_t)m->d * m->d;
    if (s == FEWCL_OK)
        s = fcl_gemm_strided_batched(
            ctx, 0, 0, m->q, m->d, m->d, 1.0f, (fcl_matrix){&diff, 0, m->d}, qd,
            (fcl_matrix){&f->inv, 0, m->d}, dd, 0.0f, (fcl_matrix){y, 0, m->d}, qd, m->n);
    fcl_tensor_free(ctx, &diff);
    return s;
}

/* Woodbury, with Σ = αI + β·XᵀX and K = (α/β)·I_k + X·Xᵀ:
 *   Σ⁻¹ = (1/α)·[I − Xᵀ·K⁻¹·X],
 * applied to the rows of diff: y = (1/α)·[diff − (diff·Xᵀ)·K⁻¹·X]. */
static fewcl_status lowrank_apply(fewcl_context *ctx, const fcl_maha_factor *f, const fcl_tensor *h,
                                  const fcl_tensor *p, fcl_tensor *y, const dims *m) {
    const fcl_tensor *x = f->x;
    int qk[3] = {m->n, m->q, m->k};
    fcl_tensor t, u;
    size_t kd = (size_t)m->k * m->d, k2 = (size_t)m->k * m->k, qd = (size_t)m->q * m->d,
           qk2 = (size_t)m->q * m->k;
    FCL_TRY(class_diff(ctx, h, p, y, m)); /* y holds diff until the last GEMM */
    FCL_TRY(fcl_tensor_alloc(ctx, &t, FCL_MEM_WORKSPACE, 3, qk));
    fewcl_status s = fcl_tensor_alloc(ctx, &u, FCL_MEM_WORKSPACE, 3, qk);
    if (s != FEWCL_OK) {
        fcl_tensor_free(ctx, &t);
        return s;
    }
    /* t = diff·Xᵀ [Q,k]; u = t·K⁻¹; y = (1/α)(diff − u·X). */
    s = fcl_gemm_strided_batched(ctx, 0, 1, m->q, m->k, m->d, 1.0f, (fcl_matrix){y, 0, m->d}, qd,
                                 (fcl_matrix){x, 0, m->d}, kd, 0.0f, (fcl_matrix){&t, 0, m->k}, qk2,
                                 m->n);
    if (s == FEWCL_OK)
        s = fcl_gemm_strided_batched(ctx, 0, 0, m->q, m->k, m->k, 1.0f, (fcl_matrix){&t, 0, m->k},
                                     qk2, (fcl_matrix){&f->kinv, 0, m->k}, k2, 0.0f,
                                     (fcl_matrix){&u, 0, m->k}, qk2, m->n);
    if (s == FEWCL_OK)
        s = fcl_gemm_strided_batched(ctx, 0, 0, m->q, m->d, m->k, -1.0f / m->alpha,
                                     (fcl_matrix){&u, 0, m->k}, qk2, (fcl_matrix){x, 0, m->d}, kd,
                                     1.0f / m->alpha, (fcl_matrix){y, 0, m->d}, qd, m->n);
    fcl_tensor_free(ctx, &u);
    fcl_tensor_free(ctx, &t);
    return s;
}

fewcl_status fcl_mahalanobis_apply(fewcl_context *ctx, const fcl_maha_factor *f,
                                   const fcl_tensor *protos, const fcl_tensor *queries,
                                   fcl_tensor *logits, fcl_tensor *y) {
    dims m;
    FCL_TRY(check_forward(f->x, protos, queries, logits, f->x, y, &m));
    if (f->path == FCL_MAHA_PATH_DENSE)
        FCL_TRY(dense_apply(ctx, f, queries, protos, y, &m));
    else
        FCL_TRY(lowrank_apply(ctx, f, queries, protos, y, &m));
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, &k_neg_quadratic, &k));
    size_t side = fcl_kernel_wg_1d(ctx, k);
    FCL_TRY(fcl_args(k, "ttttuuuL", queries, protos, y, logits, (unsigned)m.q, (unsigned)m.n,
                     (unsigned)m.d, side * sizeof(float)));
    size_t gws[2] = {side, (size_t)m.q * m.n}, lws[2] = {side, 1};
    return fcl_launch(ctx, k, 2, gws, lws);
}

fewcl_status fcl_mahalanobis_forward(fewcl_context *ctx, fcl_maha_path path,
                                     const fcl_tensor *supports, const fcl_tensor *protos,
                                     const fcl_tensor *queries, fcl_tensor *logits, fcl_tensor *x,
                                     fcl_tensor *y) {
    dims m;
    FCL_TRY(check_forward(supports, protos, queries, logits, x, y, &m));
    fcl_maha_factor f;
    FCL_TRY(fcl_mahalanobis_factor(ctx, path, supports, x, &f));
    fewcl_status s = fcl_mahalanobis_apply(ctx, &f, protos, queries, logits, y);
    fcl_mahalanobis_factor_free(ctx, &f);
    return s;
}

fewcl_status fcl_mahalanobis_backward(fewcl_context *ctx, const fcl_tensor *x, const fcl_tensor *y,
                                      const fcl_tensor *dlogits, fcl_tensor *dsupports,
                                      fcl_tensor *dprotos, fcl_tensor *dqueries) {
    char sx[64], sy[64], sl[64];
    if (x->ndim != 3 || y->ndim != 3 || dlogits->ndim != 2 || y->shape[0] != x->shape[0] ||
        y->shape[2] != x->shape[2] || dlogits->shape[0] != y->shape[1] ||
        dlogits->shape[1] != x->shape[0])
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis backward: x %s, y %s, dlogits %s do not fit [n,k,D], "
                        "[n,Q,D], [Q,n]",
                        fcl_shape_str(x, sx, sizeof sx), fcl_shape_str(y, sy, sizeof sy),
                        fcl_shape_str(dlogits, sl, sizeof sl));
    dims m = {x->shape[0], x->shape[1], x->shape[2], y->shape[1], 0, 0};
    shrinkage(&m);
    int ps[2] = {m.n, m.d}, hs[2] = {m.q, m.d};
    if ((dsupports && !fcl_same_shape(dsupports, x)) ||
        (dprotos &&
         (dprotos->ndim != 2 || dprotos->shape[0] != ps[0] || dprotos->shape[1] != ps[1])) ||
        (dqueries &&
         (dqueries->ndim != 2 || dqueries->shape[0] != hs[0] || dqueries->shape[1] != hs[1])))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "mahalanobis backward: gradients must be [%d,%d,%d], [%d,%d], [%d,%d]", m.n,
                        m.k, m.d, m.n, m.d, m.q, m.d);
    fcl_tensor g;
    FCL_TRY(fcl_tensor_alloc(ctx, &g, FCL_MEM_WORKSPACE, 3, y->shape));
    fcl_kernel_entry *k;
    fewcl_status s = fcl_kernel_get(ctx, &k_scale_by_dlogits, &k);
    size_t side = s == FEWCL_OK ? fcl_kernel_wg_1d(ctx, k) : 1;
    if (s == FEWCL_OK)
        s = fcl_args(k, "tttuuu", y, dlogits, &g, (unsigned)m.q, (unsigned)m.n, (unsigned)m.d);
    size_t gws3[3] = {(size_t)m.d, (size_t)m.q, (size_t)m.n}, lws3[3] = {side, 1, 1};
    if (s == FEWCL_OK) s = fcl_launch(ctx, k, 3, gws3, lws3);
    if (s == FEWCL_OK && dqueries) {
        s = fcl_kernel_get(ctx, &k_sum_over_classes, &k);
        if (s == FEWCL_OK) side = fcl_kernel_wg_1d(ctx, k);
        if (s == FEWCL_OK)
            s = fcl_args(k, "ttuuu", &g, dqueries, (unsigned)m.q, (unsigned)m.n, (unsigned)m.d);
        size_t gws[2] = {(size_t)m.d, (size_t)m.q}, lws[2] = {side, 1};
        if (s == FEWCL_OK) s = fcl_launch(ctx, k, 2, gws, lws);
    }
    if (s == FEWCL_OK && dprotos) {
        s = fcl_kernel_get(ctx, &k_neg_sum_over_queries, &k);
        if (s == FEWCL_OK) side = fcl_kernel_wg_1d(ctx, k);
        if (s == FEWCL_OK)
            s = fcl_args(k, "ttuuu", &g, dprotos, (unsigned)m.q, (unsigned)m.n, (unsigned)m.d);
        size_t gws[2] = {(size_t)m.d, (size_t)m.n}, lws[2] = {side, 1};
        if (s == FEWCL_OK) s = fcl_launch(ctx, k, 2, gws, lws);
    }
    if (s == FEWCL_OK && dsupports) {
        /* t = X·Gᵀ [k,Q]; dX = −β·t·Y [k,D] (into dsupports); dE = dX centred per class. */
        int tk[3] = {m.n, m.k, m.q};
        fcl_tensor t;
        s = fcl_tensor_alloc(ctx, &t, FCL_MEM_WORKSPACE, 3, tk);
        if (s == FEWCL_OK) {
            size_t kd = (size_t)m.k * m.d, qd = (size_t)m.q * m.d, kq = (size_t)m.k * m.q;
            s = fcl_gemm_strided_batched(ctx, 0, 1, m.k, m.q, m.d, 1.0f, (fcl_matrix){x, 0, m.d},
                                         kd, (fcl_matrix){&g, 0, m.d}, qd, 0.0f,
                                         (fcl_matrix){&t, 0, m.q}, kq, m.n);
            if (s == FEWCL_OK)
                s = fcl_gemm_strided_batched(ctx, 0, 0, m.k, m.d, m.q, -m.beta,
                                             (fcl_matrix){&t, 0, m.q}, kq, (fcl_matrix){y, 0, m.d},
                                             qd, 0.0f, (fcl_matrix){dsupports, 0, m.d}, kd, m.n);
            fcl_tensor_free(ctx, &t);
        }
        if (s == FEWCL_OK) s = center(ctx, dsupports, dsupports);
    }
    fcl_tensor_free(ctx, &g);
    return s;
}
