/* Winograd F(2x2,3x3) and F(4x4,3x3) on the OpenCL path (table entries `winograd2` and
 * `winograd4` of the OpenCL path; the host path's are conv_winograd_host.c and
 * conv_winograd4_host.c, whose maths and order of operations these follow, so that
 * tests/test_conv_algo.c's rounding bounds hold for both; F(4x4)'s weight transforms run in
 * float here, counted there). 3x3 kernels, stride 1, any padding, the three directions, with
 * α = m + 2 and α² products per chunk:
 *     forward   V = Bᵀ d B (kernel), M_k = U_k · V_k (α² GEMMs), y = Aᵀ M A + b (kernel)
 *     data      M = A dY Aᵀ, dV_k = U_kᵀ · M_k, dx = Σ_tiles B dV Bᵀ (a gather kernel)
 *     weights   M = A dY Aᵀ, V = Bᵀ d B, dU_k (+)= M_k · V_kᵀ over the chunks, dW += Gᵀ dU G
 * with U = G w Gᵀ (kernels in cl/conv_winograd.cl). The α² products of a chunk are one call of
 * fcl_gemm_strided_batched (CLBlast, or fewcl's tiled GEMM in one batched launch).
 *
 * Memory: one workspace tensor, for every direction, laid out as
 *     V [α²][Cin][L] | M [α²][Cout][L] | U (or dU) [α²][Cout][Cin]
 * with L = nb·T columns, T the tiles of an image and nb the whole images per chunk: as many as
 * the workspace bound holds beside U (the host path's rule, hence the same bytes). A call with
 * both gradients runs the weight pass over the batch first (dU in U's place), then the data
 * pass (U again there): the queue is in order. */
#include "conv_algo.h"
#include "conv_impl.h"

#include "ops.h"

typedef fcl_conv_geom geom;

/* A kind: F(m x m, 3x3) with α² = (m + 2)² planes, and its kernels. */
typedef struct wino_cl_kind {
    int m, planes;
    fcl_kernel_handle *weights, *weight_grad, *input, *output, *grad_output, *grad_input;
} wino_cl_kind;

typedef struct wino_cl_layout {
    int tiles_h, tiles_w, tiles, nb; /* tiles per image (rows, columns, all); images per chunk */
    size_t v_at, m_at, u_at, floats; /* parts' float offsets in the workspace; its size */
} wino_cl_layout;

/* The layout of g's chunks; 0 when U and one image's V and M exceed the workspace bound. */
static int layout_of(const wino_cl_kind *kind, const geom *g, wino_cl_layout *l) {
    size_t a2 = (size_t)kind->planes;
    l->tiles_h = (g->oh + kind->m - 1) / kind->m, l->tiles_w = (g->ow + kind->m - 1) / kind->m;
    l->tiles = l->tiles_h * l->tiles_w;
    size_t per_image = a2 * (size_t)(g->cin + g->cout) * l->tiles * sizeof(float);
    size_t u = a2 * (size_t)g->cout * g->cin * sizeof(float);
    if (g->limit <= u || (g->limit - u) / per_image < 1) return 0;
    size_t fit = (g->limit - u) / per_image;
    l->nb = fit < (size_t)g->n ? (int)fit : g->n;
    size_t len = (size_t)l->nb * l->tiles;
    l->v_at = 0;
    l->m_at = a2 * (size_t)g->cin * len;
    l->u_at = l->m_at + a2 * (size_t)g->cout * len;
    l->floats = l->u_at + a2 * (size_t)g->cout * g->cin;
    return 1;
}

#define HANDLE(name) FCL_KERNEL_HANDLE("conv_winograd", name)
static fcl_kernel_handle k2[6] = {HANDLE("wino2_weights"),     HANDLE("wino2_weight_grad"),
                                  HANDLE("wino2_input"),       HANDLE("wino2_output"),
                                  HANDLE("wino2_grad_output"), HANDLE("wino2_grad_input")};
static fcl_kernel_handle k4[6] = {HANDLE("wino4_weights"),     HANDLE("wino4_weight_grad"),
                                  HANDLE("wino4_input"),       HANDLE("wino4_output"),
                                  HANDLE("wino4_grad_output"), HANDLE("wino4_grad_input")};
static const wino_cl_kind f2 = {2, 16, &k2[0], &k2[1], &k2[2], &k2[3], &k2[4], &k2[5]};
static const wino_cl_kind f4 = {4, 36, &k4[0], &k4[1], &k4[2], &k4[3], &k4[4], &k4[5]};

static int eligible(const wino_cl_kind *kind, const geom *g) {
    wino_cl_layout l;
    return !g->host && g->ctx && g->kh == 3 && g->kw == 3 && g->stride == 1 &&
           layout_of(kind, g, &l);
}

static size_t workspace(const wino_cl_kind *kind, const geom *g) {
    wino_cl_layout l;
    return eligible(kind, g) && layout_of(kind, g, &l) ? l.floats * sizeof(float) : 0;
}

/* ---- the run ---- */

typedef struct wino_run {
    fewcl_context *ctx;
    const wino_cl_kind *kind;
    const geom *g;
    wino_cl_layout l;
    fcl_tensor ws; /* the workspace; the parts are offsets into it */
} wino_run;

static fewcl_status launch_1d(fewcl_context *ctx, fcl_kernel_entry *k, size_t n) {
    size_t lws = fcl_kernel_wg_1d(ctx, k);
    return fcl_launch(ctx, k, 1, &n, &lws);
}

/* The workspace from float offset `at` on, as a tensor argument. */
static fcl_tensor part(const wino_run *r, size_t at) {
    fcl_tensor t = r->ws;
    t.owner = 0;
    t.offset += at;
    t.numel -= at;
    return t;
}

static fewcl_status get(wino_run *r, fcl_kernel_handle *h, fcl_kernel_entry **k) {
    return fcl_kernel_get(r->ctx, h, k);
}

/* U = G w Gᵀ into U's place. */
static fewcl_status weights(wino_run *r, const fcl_tensor *w) {
    fcl_kernel_entry *k;
    fcl_tensor u = part(r, r->l.u_at);
    unsigned pairs = (unsigned)(r->g->cout * r->g->cin);
    FCL_TRY(get(r, r->kind->weights, &k));
    FCL_TRY(fcl_args(k, "ttu", w, &u, pairs));
    return launch_1d(r->ctx, k, pairs);
}

/* V from x for the chunk's nb images from n0. */
static fewcl_status input(wino_run *r, const fcl_tensor *x, int n0, int nb) {
    const geom *g = r->g;
    fcl_kernel_entry *k;
    fcl_tensor v = part(r, r->l.v_at);
    unsigned len = (unsigned)(nb * r->l.tiles);
    FCL_TRY(get(r, r->kind->input, &k));
    FCL_TRY(fcl_args(k, "ttuuuuuuuu", x, &v, (unsigned)n0, (unsigned)g->cin, (unsigned)g->h,
                     (unsigned)g->w, (unsigned)g->pad, (unsigned)r->l.tiles_w, (unsigned)r->l.tiles,
                     len));
    return launch_1d(r->ctx, k, (size_t)g->cin * len);
}

/* M from dy for the chunk. */
static fewcl_status grad_output(wino_run *r, const fcl_tensor *dy, int n0, int nb) {
    const geom *g = r->g;
    fcl_kernel_entry *k;
    fcl_tensor m = part(r, r->l.m_at);
    unsigned len = (unsigned)(nb * r->l.tiles);
    FCL_TRY(get(r, r->kind->grad_output, &k));
    FCL_TRY(fcl_args(k, "ttuuuuuuu", dy, &m, (unsigned)n0, (unsigned)g->cout, (unsigned)g->oh,
                     (unsigned)g->ow, (unsigned)r->l.tiles_w, (unsigned)r->l.tiles, len));
    return launch_1d(r->ctx, k, (size_t)g->cout * len);
}

/* The chunk's α² products C_k = op(A_k) · op(B_k), one strided batched GEMM: a, b, c are the
 * parts' offsets, each matrix k at k·(its rows·columns). */
static fewcl_status products(wino_run *r, int ta, int tb, int m, int n, int kk, size_t a_at,
                             int lda, size_t b_at, int ldb, float beta, size_t c_at, int ldc) {
    fcl_matrix a = {&r->ws, a_at, lda}, b = {&r->ws, b_at, ldb}, c = {&r->ws, c_at, ldc};
    return fcl_gemm_strided_batched(r->ctx, ta, tb, m, n, kk, 1.0f, a, (size_t)m * kk, b,
                                    (size_t)kk * n, beta, c, (size_t)m * n, r->kind->planes);
}

static fewcl_status forward(wino_run *r, const fcl_conv_args *a) {
    const geom *g = r->g;
    FCL_TRY(weights(r, a->w));
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb, len = nb * r->l.tiles;
        FCL_TRY(input(r, a->x, n0, nb));
        /* M_k[Cout, L] = U_k[Cout, Cin] · V_k[Cin, L] */
        FCL_TRY(products(r, 0, 0, g->cout, len, g->cin, r->l.u_at, g->cin, r->l.v_at, len, 0.0f,
                         r->l.m_at, len));
        fcl_kernel_entry *k;
        fcl_tensor m = part(r, r->l.m_at);
        FCL_TRY(get(r, r->kind->output, &k));
        FCL_TRY(fcl_args(k, "tttiuuuuuuu", &m, a->y, a->b ? a->b : &m, a->b != NULL, (unsigned)n0,
                         (unsigned)g->cout, (unsigned)g->oh, (unsigned)g->ow,
                         (unsigned)r->l.tiles_w, (unsigned)r->l.tiles, (unsigned)len));
        FCL_TRY(launch_1d(r->ctx, k, (size_t)g->cout * len));
    }
    return FEWCL_OK;
}

static fewcl_status data(wino_run *r, const fcl_conv_args *a) {
    const geom *g = r->g;
    FCL_TRY(weights(r, a->w));
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb, len = nb * r->l.tiles;
        FCL_TRY(grad_output(r, a->dy, n0, nb));
        /* dV_k[Cin, L] = U_k[Cout, Cin]ᵀ · M_k[Cout, L], into V's place */
        FCL_TRY(products(r, 1, 0, g->cin, len, g->cout, r->l.u_at, g->cin, r->l.m_at, len, 0.0f,
                         r->l.v_at, len));
        fcl_kernel_entry *k;
        fcl_tensor v = part(r, r->l.v_at);
        FCL_TRY(get(r, r->kind->grad_input, &k));
        FCL_TRY(fcl_args(k, "ttuuuuuuuuu", &v, a->dx, (unsigned)n0, (unsigned)nb, (unsigned)g->cin,
                         (unsigned)g->h, (unsigned)g->w, (unsigned)g->pad, (unsigned)r->l.tiles_h,
                         (unsigned)r->l.tiles_w, (unsigned)len));
        FCL_TRY(
            launch_1d(r->ctx, k, (size_t)nb * g->cin * (r->l.tiles_h + 1) * (r->l.tiles_w + 1)));
    }
    return FEWCL_OK;
}

static fewcl_status weight_grad(wino_run *r, const fcl_conv_args *a) {
    const geom *g = r->g;
    for (int n0 = 0; n0 < g->n; n0 += r->l.nb) {
        int nb = g->n - n0 < r->l.nb ? g->n - n0 : r->l.nb, len = nb * r->l.tiles;
        FCL_TRY(grad_output(r, a->dy, n0, nb));
        FCL_TRY(input(r, a->x, n0, nb));
        /* dU_k[Cout, Cin] (+)= M_k[Cout, L] · V_k[Cin, L]ᵀ, summed over the chunks */
        FCL_TRY(products(r, 0, 1, g->cout, g->cin, len, r->l.m_at, len, r->l.v_at, len,
                         n0 > 0 ? 1.0f : 0.0f, r->l.u_at, g->cin));
    }
    fcl_kernel_entry *k;
    fcl_tensor du = part(r, r->l.u_at);
    unsigned pairs = (unsigned)(g->cout * g->cin);
    FCL_TRY(get(r, r->kind->weight_grad, &k));
    FCL_TRY(fcl_args(k, "ttu", &du, a->dw, pairs));
    return launch_1d(r->ctx, k, pairs);
}

static fewcl_status run_directions(wino_run *r, const fcl_conv_args *a) {
    if (a->y) return forward(r, a);
    if (a->dw) FCL_TRY(weight_grad(r, a));
    if (a->dx) FCL_TRY(data(r, a));
    return FEWCL_OK;
}

static fewcl_status run_kind(fewcl_context *ctx, const wino_cl_kind *kind, const geom *g,
                             const fcl_conv_args *a) {
    if (a->db) { /* the bias gradient: the im2col algorithm's kernel, alone */
        fcl_conv_args bias = {.x = a->x, .w = a->w, .dy = a->dy, .db = a->db};
        FCL_TRY(fcl_conv_cl_im2col(ctx, g, &bias));
    }
    if (!a->y && !a->dx && !a->dw) return FEWCL_OK;
    wino_run r = {.ctx = ctx, .kind = kind, .g = g};
    if (!layout_of(kind, g, &r.l))
        return fcl_fail(FEWCL_ERR_INTERNAL, "Winograd convolution: not eligible for this shape");
    FCL_TRY(fcl_tensor_alloc1(ctx, &r.ws, FCL_MEM_WORKSPACE, (int)r.l.floats));
    /* In a plan nothing runs, but the GEMMs' temporary buffers are allocated as for real. */
    fewcl_status s = run_directions(&r, a);
    fcl_tensor_free(ctx, &r.ws);
    return s;
}

int fcl_conv_cl_winograd_eligible(const geom *g) { return eligible(&f2, g); }
size_t fcl_conv_cl_winograd_workspace(const geom *g) { return workspace(&f2, g); }
fewcl_status fcl_conv_cl_winograd(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return run_kind(ctx, &f2, g, a);
}

int fcl_conv_cl_winograd4_eligible(const geom *g) { return eligible(&f4, g); }
size_t fcl_conv_cl_winograd4_workspace(const geom *g) { return workspace(&f4, g); }
fewcl_status fcl_conv_cl_winograd4(fewcl_context *ctx, const geom *g, const fcl_conv_args *a) {
    return run_kind(ctx, &f4, g, a);
}
