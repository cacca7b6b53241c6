/* Implicit-GEMM convolution on the OpenCL path (table entries `implicit` and `implicit_wide`):
 * the im2col GEMM with the columns staged from x inside the kernel, so no column buffer and
 * no workspace. Forward: any kernel, stride and padding. Data gradient (stride 1): the same
 * kernel as a convolution of dy with the flipped, transposed kernels.
 *   implicit       cl/conv_implicit.cl: 64x64 tiles, 4x4 outputs per item, 9 KiB of local
 *                  memory (as fewcl's tiled GEMM);
 *   implicit_wide  cl/conv_implicit_wide.cl: 128x128 tiles, 8x8 outputs per item, 19 KiB:
 *                  for GPUs with registers for 64 accumulators per item; the find step keeps
 *                  whichever of the two is faster per device and shape.
 * Both run 256-item (16x16) work-groups, which must fit the device and the compiled kernel.
 * `implicit` also runs the weight gradient (cl/conv_implicit.cl: conv_implicit_wgrad): the
 * columns staged from x as well, the reduction over N·OH·OW split across work-groups into
 * partial sums in a workspace, added in a fixed order (see wgrad_slices). */
#include "conv_algo.h"
#include "conv_impl.h"

/* The taps one launch's items loop over, as fewcl's tiled GEMM bounds its k (lib/ops/gemm.c):
 * a k-step of 16 taps costs an item ~30 loop iterations (two staging loops of 4 and their exits,
 * 16 products and the exit, the step), 1536 steps stay within FCL_ITEM_LOOP_BUDGET. The wide
 * kernel's step costs ~36 (staging loops of 8): 1536 steps, ~55000, still within it. */
#define IMPLICIT_MAX_TAPS 24576

/* One kernel variant: its handle, its tile (rows = output channels, columns = pixels) and
 * the local memory it declares (bytes, with room for the implementation's own). */
typedef struct implicit_variant {
    fcl_kernel_handle *kernel;
    unsigned tile_rows, tile_cols;
    size_t local_mem;
} implicit_variant;

static fcl_kernel_handle k_kernel = FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_forward");
static fcl_kernel_handle k_wgrad = FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_wgrad");
static fcl_kernel_handle k_wgrad_sum =
    FCL_KERNEL_HANDLE("conv_implicit", "conv_implicit_wgrad_sum");
static fcl_kernel_handle k_wide =
    FCL_KERNEL_HANDLE("conv_implicit_wide", "conv_implicit_wide_forward");

/* conv_implicit.cl: 2·16·65 floats + 8·64 + 4·16 ints = 10.6 KiB; asked as before, 16 KiB. */
static const implicit_variant v_small = {&k_kernel, 64, 64, 16384};
/* conv_implicit_wide.cl: 16·129 + 16·128 floats + 4·128 + 4·16 ints = 18.3 KiB; 20 KiB. */
static const implicit_variant v_wide = {&k_wide, 128, 128, 20480};

/* ---- the weight gradient's split of the reduction ----
 * The reduction over the batch's N·OH·OW pixels is cut into `slices` of whole 16-pixel steps;
 * a slice's partial sums go to a slot of their own in the workspace and a second kernel adds
 * the slots in order. The number of slices is a function of the shape alone (not of the
 * device's compute units, unlike gemm_tiled's split), so every device adds the same partial
 * sums in the same order: ~WGRAD_GROUPS work-groups in all (enough to fill the largest GPUs
 * several times over), slices of at least WGRAD_MIN_SLICE pixels (each work-group's tile
 * loads amortised over as many steps), of at most WGRAD_MAX_SLICE (the loop budget: a 16-pixel
 * step costs an item ~30 iterations, as the forward kernel's), and partial sums within the
 * call's workspace bound (g->limit; halving the slices until they fit). */
#define WGRAD_GROUPS 1024
#define WGRAD_MIN_SLICE 256
#define WGRAD_MAX_SLICE 24576

typedef struct wgrad_split {
    unsigned slice, slices; /* pixels per slice (a multiple of 16), slices */
    size_t bytes;           /* workspace: slices · Cout · K floats, 0 with one slice */
} wgrad_split;

static wgrad_split wgrad_slices(const fcl_conv_geom *g) {
    long columns = (long)g->n * g->plane, cout = g->cout, taps = g->taps;
    long tiles = ((cout + 63) / 64) * ((taps + 63) / 64);
    long least = (columns + WGRAD_MAX_SLICE - 1) / WGRAD_MAX_SLICE;
    long slices = (WGRAD_GROUPS + tiles - 1) / tiles, most = columns / WGRAD_MIN_SLICE;
    if (slices > most) slices = most;
    while (slices > least && (size_t)slices * cout * taps * sizeof(float) > g->limit)
        slices /= 2;
    if (slices < least) slices = least;
    if (slices < 1) slices = 1;
    long slice = (columns + slices - 1) / slices;
    slice = (slice + 15) / 16 * 16; /* whole steps of the kernel */
    slices = (columns + slice - 1) / slice;
    wgrad_split s = {(unsigned)slice, (unsigned)slices, 0};
    if (slices > 1) s.bytes = (size_t)slices * cout * taps * sizeof(float);
    return s;
}

size_t fcl_conv_cl_implicit_workspace(const fcl_conv_geom *g, int dir) {
    return dir == FCL_CONV_WEIGHTS ? wgrad_slices(g).bytes : 0;
}

static int fits(const fcl_kernel_handle *h, const fcl_conv_geom *g) {
    fcl_kernel_entry *k; /* the compiled kernel's own limit (registers: the wide one's 64
                          * accumulators may not fit 256 items on every device) */
    return fcl_kernel_get(g->ctx, (fcl_kernel_handle *)h, &k) == FEWCL_OK && k->max_wg >= 256;
}

static int eligible(const implicit_variant *v, const fcl_conv_geom *g, int dir) {
    if (g->host || !g->ctx) return 0;
    const fcl_limits *l = &g->ctx->limits;
    if (l->max_work_group < 256 || l->max_items[0] < 16 || l->max_items[1] < 16 ||
        l->local_mem < v->local_mem)
        return 0;
    if (dir == FCL_CONV_WEIGHTS) { /* `implicit` only; partial sums within the bound */
        if (v->kernel != &k_kernel) return 0;
        size_t count = (size_t)g->cout * g->taps;
        return count <= (size_t)1 << 30 && wgrad_slices(g).bytes <= g->limit &&
               fits(&k_wgrad, g);
    }
    int taps = dir == FCL_CONV_DATA ? g->cout * g->kh * g->kw : g->taps;
    if ((dir == FCL_CONV_DATA && g->stride != 1) || taps > IMPLICIT_MAX_TAPS) return 0;
    return fits(v->kernel, g);
}

int fcl_conv_cl_implicit_eligible(const fcl_conv_geom *g, int dir) {
    return eligible(&v_small, g, dir);
}
int fcl_conv_cl_implicit_wide_eligible(const fcl_conv_geom *g, int dir) {
    return eligible(&v_wide, g, dir);
}

/* One launch: out [N, rows, out_plane] from in [N, chans, h, w] and W (see the kernel). */
typedef struct implicit_call {
    const fcl_tensor *in, *w, *b;
    fcl_tensor *out;
    int chans, h, w_, rows, out_w, out_plane, flip, a_row, a_chan;
} implicit_call;

static fewcl_status launch(fewcl_context *ctx, const implicit_variant *v,
                           const fcl_conv_geom *g, implicit_call c) {
    fcl_kernel_entry *k;
    FCL_TRY(fcl_kernel_get(ctx, v->kernel, &k));
    unsigned columns = (unsigned)g->n * (unsigned)c.out_plane;
    FCL_TRY(fcl_args(k, "tttituuuuuuuuuuuiuu", c.in, c.w, c.b ? c.b : c.in, c.b != NULL, c.out,
                     (unsigned)c.chans, (unsigned)c.h, (unsigned)c.w_, (unsigned)c.rows,
                     (unsigned)g->kh, (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad,
                     (unsigned)c.out_w, (unsigned)c.out_plane, columns, c.flip, (unsigned)c.a_row,
                     (unsigned)c.a_chan));
    size_t gws[2] = {(columns + v->tile_cols - 1) / v->tile_cols * 16,
                     ((size_t)c.rows + v->tile_rows - 1) / v->tile_rows * 16};
    size_t lws[2] = {16, 16};
    return fcl_launch(ctx, k, 2, gws, lws);
}

/* dW += dy ⋆ x: conv_implicit_wgrad over the slices (onto dW with one slice, else into the
 * workspace's slots and conv_implicit_wgrad_sum in order). */
static fewcl_status weights(fewcl_context *ctx, const fcl_conv_geom *g, const fcl_conv_args *a) {
    wgrad_split sp = wgrad_slices(g);
    unsigned columns = (unsigned)g->n * (unsigned)g->plane, count = (unsigned)g->cout * g->taps;
    fcl_tensor part = {0};
    if (sp.slices > 1)
        FCL_TRY(fcl_tensor_alloc1(ctx, &part, FCL_MEM_WORKSPACE, (int)(sp.bytes / sizeof(float))));
    fcl_kernel_entry *k;
    fewcl_status s = fcl_kernel_get(ctx, &k_wgrad, &k);
    if (s == FEWCL_OK)
        s = fcl_args(k, "tttuuuuuuuuuuuuu", a->x, a->dy, sp.slices > 1 ? &part : a->dw,
                     (unsigned)g->cin, (unsigned)g->h, (unsigned)g->w, (unsigned)g->cout,
                     (unsigned)g->kh, (unsigned)g->kw, (unsigned)g->stride, (unsigned)g->pad,
                     (unsigned)g->ow, (unsigned)g->plane, columns, sp.slice, sp.slices);
    if (s == FEWCL_OK) {
        size_t gws[3] = {((size_t)g->taps + 63) / 64 * 16, ((size_t)g->cout + 63) / 64 * 16,
                         sp.slices};
        size_t lws[3] = {16, 16, 1};
        s = fcl_launch(ctx, k, 3, gws, lws);
    }
    if (s == FEWCL_OK && sp.slices > 1) {
        s = fcl_kernel_get(ctx, &k_wgrad_sum, &k);
        if (s == FEWCL_OK) s = fcl_args(k, "ttuu", &part, a->dw, count, sp.slices);
        if (s == FEWCL_OK) {
            size_t lws = fcl_kernel_wg_1d(ctx, k), gws = (count + lws - 1) / lws * lws;
            s = fcl_launch(ctx, k, 1, &gws, &lws);
        }
    }
    if (sp.slices > 1) fcl_tensor_free(ctx, &part);
    return s;
}

static fewcl_status run(fewcl_context *ctx, const implicit_variant *v, const fcl_conv_geom *g,
                        const fcl_conv_args *a) {
    int kk = g->kh * g->kw;
    if (a->y) /* y [N, Cout, OH·OW] = W [Cout, Cin·KK] · cols(x) (+ b) */
        return launch(ctx, v, g,
                      (implicit_call){a->x, a->w, a->b, a->y, g->cin, g->h, g->w, g->cout, g->ow,
                                      g->plane, 0, g->taps, kk});
    if (a->db) { /* the bias gradient: the im2col algorithm's kernel, alone */
        fcl_conv_args bias = {.x = a->x, .w = a->w, .dy = a->dy, .db = a->db};
        FCL_TRY(fcl_conv_cl_im2col(ctx, g, &bias));
    }
    if (a->dw) {
        if (v->kernel != &k_kernel)
            return fcl_fail(FEWCL_ERR_INTERNAL, "implicit_wide: no weight gradient (see eligible)");
        FCL_TRY(weights(ctx, g, a));
    }
    if (!a->dx) return FEWCL_OK;
    /* dx [N, Cin, H·W] = Wᵀ-flipped [Cin, Cout·KK] · cols(dy), stride 1 */
    return launch(ctx, v, g,
                  (implicit_call){a->dy, a->w, NULL, a->dx, g->cout, g->oh, g->ow, g->cin, g->w,
                                  g->h * g->w, 1, kk, g->cin * kk});
}

fewcl_status fcl_conv_cl_implicit(fewcl_context *ctx, const fcl_conv_geom *g,
                                  const fcl_conv_args *a) {
    return run(ctx, &v_small, g, a);
}
fewcl_status fcl_conv_cl_implicit_wide(fewcl_context *ctx, const fcl_conv_geom *g,
                                       const fcl_conv_args *a) {
    return run(ctx, &v_wide, g, a);
}
