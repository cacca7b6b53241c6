/* 2-D convolution by the GEMM algorithms (im2col + CLBlast or host GEMMs, and the host path's
 * shifted views; forced with fcl_conv_algo_force, as FEWCL_CONV_ALGO does: Winograd and the
 * choice itself are tested in test_conv_algo.c), forward and backward, against the C reference in
 * double and PyTorch's F.conv2d; the reference's gradients against finite differences; the
 * chunked workspace path against the unchunked one.
 *
 * Tolerances (docs/spec.md §10, GEMM-like): normalised error Σ(got−want)²/Σwant² <= 1e-6, and per
 * element the float32 summation bound γ_T·Σ|terms| (th_gamma) with T the number of terms
 * each output sums: y: Cin·KH·KW products + bias; dx: Cout·KH·KW products (a GEMM over Cout,
 * then the col2im gather over at most KH·KW taps); dW: N·OH·OW products + the old dW; db:
 * N·OH·OW terms + the old db. The bound is the reference run on absolute values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "ops/conv.h"
#include "ops/conv_algo.h"
#include "ops/gemm_host.h"
#include "ref/ref_conv.h"
#include "runtime/arena.h"

/* The algorithms this file tests: the GEMM ones, as chosen before the table had others. */
#define GEMM_ALGOS "shifted,im2col"

static int force_gemm_algos(void **state) {
    (void)state;
    return fcl_conv_algo_force(th_ctx(), GEMM_ALGOS) == FEWCL_OK ? 0 : -1;
}

static double *abs_copy(const float *x, size_t n) {
    double *d = th_to_double(x, n);
    for (size_t i = 0; i < n; i++)
        d[i] = fabs(d[i]);
    return d;
}

static float *random_floats(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    th_random(x, n, seed, lo, hi);
    return x;
}

static double max_abs_error(const float *got, const double *want, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)got[i] - want[i]));
    return m;
}

/* Checks one output against its reference and bound; prints the measured errors. */
static void check_output(const char *what, const float *got, const double *want,
                         const double *bound, size_t n) {
    if (bound) th_assert_bound(what, got, want, bound, n);
    double ne = th_assert_normerr(what, got, want, n, TH_NORMERR);
    print_message("    %-28s max abs error %.2e, normalised error %.2e (tolerance %.0e)\n", what,
                  max_abs_error(got, want, n), ne, TH_NORMERR);
}

typedef struct sizes {
    size_t x, w, y;
} sizes;

static sizes sizes_of(const ref_conv_shape *s) {
    return (sizes){(size_t)s->n * s->cin * s->h * s->w, (size_t)s->cout * s->cin * s->kh * s->kw,
                   (size_t)s->n * s->cout * s->oh * s->ow};
}

/* Device outputs of one forward + backward. */
typedef struct conv_out {
    float *y, *dx, *dw, *db;
    size_t workspace_peak; /* bytes above the inputs' use while the op ran */
} conv_out;

static void conv_out_free(conv_out *o) { free(o->y), free(o->dx), free(o->dw), free(o->db); }

static void run_device(const ref_conv_shape *s, const float *x, const float *w, const float *b,
                       const float *dy, const float *dw0, const float *db0, size_t workspace,
                       conv_out *out) {
    int sx[4] = {s->n, s->cin, s->h, s->w}, sw[4] = {s->cout, s->cin, s->kh, s->kw};
    int sy[4] = {s->n, s->cout, s->oh, s->ow};
    fcl_tensor X, W, B, Y, DY, DX, DW, DB;
    th_upload(&X, 4, sx, x);
    th_upload(&W, 4, sw, w);
    th_upload(&DY, 4, sy, dy);
    th_upload(&DW, 4, sw, dw0);
    if (b) th_upload(&B, 1, &s->cout, b), th_upload(&DB, 1, &s->cout, db0);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    fcl_conv2d_params p = {s->stride, s->pad, workspace};
    fcl_arena *arena = th_ctx()->arena;
    size_t base = fcl_arena_stats_get(arena)->in_use;
    fcl_arena_reset_peak(arena);
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, b ? &B : NULL, &p, &Y));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, b ? &DB : NULL));
    out->workspace_peak = fcl_arena_stats_get(arena)->peak - base;
    assert_int_equal(fcl_arena_stats_get(arena)->in_use, base); /* workspace freed */
    out->y = th_download(&Y);
    out->dx = th_download(&DX);
    out->dw = th_download(&DW);
    out->db = b ? th_download(&DB) : NULL;
    th_free(&DX), th_free(&Y);
    if (b) th_free(&DB), th_free(&B);
    th_free(&DW), th_free(&DY), th_free(&W), th_free(&X);
}

/* Forward and backward of one shape on random data against the reference; the device
 * outputs are returned in *keep when it is not NULL. */
static void check_conv(const char *name, ref_conv_shape s, int bias, size_t workspace,
                       conv_out *keep) {
    ref_conv_shape_init(&s);
    sizes z = sizes_of(&s);
    float *x = random_floats(z.x, 100, -1, 1), *w = random_floats(z.w, 101, -0.5f, 0.5f);
    float *b = random_floats(s.cout, 102, -0.5f, 0.5f), *dy = random_floats(z.y, 103, -1, 1);
    /* Nonzero old gradients: dW and db must accumulate onto them. */
    float *dw0 = random_floats(z.w, 104, -1, 1), *db0 = random_floats(s.cout, 105, -1, 1);
    conv_out got;
    run_device(&s, x, w, bias ? b : NULL, dy, dw0, db0, workspace, &got);

    double *xd = th_to_double(x, z.x), *wd = th_to_double(w, z.w), *bd = th_to_double(b, s.cout);
    double *dyd = th_to_double(dy, z.y);
    double *y = malloc(z.y * sizeof *y), *dx = malloc(z.x * sizeof *dx);
    double *dw = malloc(z.w * sizeof *dw), *db = malloc(s.cout * sizeof *db);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, y);
    ref_conv2d_backward(&s, xd, wd, dyd, dx, dw, db);
    double *ax = abs_copy(x, z.x), *aw = abs_copy(w, z.w), *ab = abs_copy(b, s.cout);
    double *ady = abs_copy(dy, z.y);
    double *by = malloc(z.y * sizeof *by), *bdx = malloc(z.x * sizeof *bdx);
    double *bdw = malloc(z.w * sizeof *bdw), *bdb = malloc(s.cout * sizeof *bdb);
    ref_conv2d_forward(&s, ax, aw, bias ? ab : NULL, by);
    ref_conv2d_backward(&s, ax, aw, ady, bdx, bdw, bdb);
    int taps = s.cin * s.kh * s.kw, pixels = s.n * s.oh * s.ow;
    for (size_t i = 0; i < z.y; i++)
        by[i] *= th_gamma(taps + 1);
    for (size_t i = 0; i < z.x; i++)
        bdx[i] *= th_gamma(s.cout * s.kh * s.kw);
    for (size_t i = 0; i < z.w; i++) {
        dw[i] += dw0[i];
        bdw[i] = (bdw[i] + fabs(dw0[i])) * th_gamma(pixels + 1);
    }
    for (int i = 0; i < s.cout; i++) {
        db[i] += db0[i];
        bdb[i] = (bdb[i] + fabs(db0[i])) * th_gamma(pixels + 1);
    }

    char what[96];
    print_message("  conv %s: x [%d,%d,%d,%d], W [%d,%d,%d,%d], stride %d, pad %d%s\n", name, s.n,
                  s.cin, s.h, s.w, s.cout, s.cin, s.kh, s.kw, s.stride, s.pad,
                  bias ? ", bias" : "");
    snprintf(what, sizeof what, "%s y", name);
    check_output(what, got.y, y, by, z.y);
    snprintf(what, sizeof what, "%s dx", name);
    check_output(what, got.dx, dx, bdx, z.x);
    snprintf(what, sizeof what, "%s dW", name);
    check_output(what, got.dw, dw, bdw, z.w);
    if (bias) {
        snprintf(what, sizeof what, "%s db", name);
        check_output(what, got.db, db, bdb, s.cout);
    }
    if (keep)
        *keep = got;
    else
        conv_out_free(&got);
    free(ax), free(aw), free(ab), free(ady), free(by), free(bdx), free(bdw), free(bdb);
    free(xd), free(wd), free(bd), free(dyd), free(y), free(dx), free(dw), free(db);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
}

/* Under oclgrind each CLBlast GEMM takes seconds: the variants beyond the four convolutions
 * of the backbones run at full test size only. */
static int skipped_when_small(void) {
    if (th_small())
        print_message("  skipped under FEWCL_TEST_SMALL (covered by the cases above)\n");
    return th_small();
}

/* Odd, non-square images so that floor division and every padded edge are exercised. */
static ref_conv_shape shape(int cin, int cout, int k, int stride, int pad) {
    int small = th_small();
    return (ref_conv_shape){.n = small ? 1 : 3,
                            .cin = cin,
                            .h = small ? 7 : 13,
                            .w = small ? 6 : 10,
                            .cout = cout,
                            .kh = k,
                            .kw = k,
                            .stride = stride,
                            .pad = pad};
}

/* Conv4's block convolution. */
static void test_conv_3x3_s1_p1_bias(void **state) {
    check_conv("3x3/1/1+b", shape(3, th_small() ? 4 : 16, 3, 1, 1), 1, 0, NULL);
}
static void test_conv_3x3_s1_p1(void **state) {
    if (skipped_when_small()) return;
    check_conv("3x3/1/1", shape(5, 6, 3, 1, 1), 0, 0, NULL);
}
/* ResNet's downsampling 3x3 convolution. */
static void test_conv_3x3_s2_p1(void **state) {
    check_conv("3x3/2/1", shape(4, th_small() ? 5 : 12, 3, 2, 1), 0, 0, NULL);
}
static void test_conv_3x3_s2_p1_bias(void **state) {
    if (skipped_when_small()) return;
    check_conv("3x3/2/1+b", shape(4, 5, 3, 2, 1), 1, 0, NULL);
}
/* The ResNet stem. */
static void test_conv_7x7_s2_p3(void **state) {
    check_conv("7x7/2/3", shape(3, th_small() ? 4 : 8, 7, 2, 3), 0, 0, NULL);
}
/* ResNet's 1x1 downsample shortcut. */
static void test_conv_1x1_s2_p0(void **state) {
    check_conv("1x1/2/0", shape(6, 7, 1, 2, 0), 0, 0, NULL);
}
/* Conv4NP's unpadded blocks, and a kernel wider than stride + padding covers. */
static void test_conv_3x3_s1_p0_bias(void **state) {
    if (skipped_when_small()) return;
    check_conv("3x3/1/0+b", shape(3, 4, 3, 1, 0), 1, 0, NULL);
}

/* The host path's shifted-view algorithm for 'same' convolutions (lib/ops/conv_host.c): a
 * ConvNet middle layer and a 5x5 kernel against the reference, and against the im2col
 * algorithm (forced, as FEWCL_CONV_ALGO=im2col does) on the same inputs; on the host path the
 * algorithm table records which one ran, and the GEMM count agrees (k² per image against one). */
static void check_same(const char *name, ref_conv_shape s) {
    ref_conv_shape_init(&s);
    fewcl_context *ctx = th_ctx();
    int path;
    TH_OK(fcl_gemm_path(ctx, &path));
    fewcl_context_set_profiling(ctx, 1);
    ctx->gemm_calls = 0;
    conv_out views, columns;
    TH_OK(fcl_conv_algo_force(ctx, "shifted,im2col"));
    check_conv(name, s, 1, 0, &views);
    long calls_views = ctx->gemm_calls;
    const char *views_algo = fcl_conv_algo_last(ctx, FCL_CONV_FORWARD)->name;
    TH_OK(fcl_conv_algo_force(ctx, "im2col"));
    ctx->gemm_calls = 0;
    check_conv(name, s, 1, 0, &columns);
    long calls_columns = ctx->gemm_calls;
    TH_OK(fcl_conv_algo_force(ctx, GEMM_ALGOS));
    fewcl_context_set_profiling(ctx, 0);
    if (path == FCL_GEMM_HOST) { /* forward + dW + dx */
        assert_string_equal(views_algo, "shifted");
        assert_int_equal(calls_views, 3L * s.n * s.kh * s.kw);
        assert_int_equal(calls_columns, 3L * s.n);
    }
    sizes z = sizes_of(&s);
    const char *names[4] = {"y", "dx", "dW", "db"};
    float *a[4] = {columns.y, columns.dx, columns.dw, columns.db};
    float *b[4] = {views.y, views.dx, views.dw, views.db};
    size_t n[4] = {z.y, z.x, z.w, (size_t)s.cout};
    for (int i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s: views vs columns %s", name, names[i]);
        double *ref = th_to_double(a[i], n[i]);
        check_output(what, b[i], ref, NULL, n[i]);
        free(ref);
    }
    conv_out_free(&views), conv_out_free(&columns);
}

static void test_conv_same_by_shifted_views(void **state) {
    (void)state;
    int small = th_small();
    check_same("3x3/1/1 16->16+b", shape(small ? 6 : 16, small ? 5 : 16, 3, 1, 1));
    if (!small) check_same("5x5/1/2 8->8+b", shape(8, 8, 5, 1, 2));
}

/* The host path's batched GEMMs for small planes (lib/ops/conv_batched_host.c): forced alone
 * (so that a call it cannot take fails instead of falling back), on the late layers' shapes —
 * ResNet's 3x3 at 7x7, the stride-2 3x3 and 1x1 downsamples into 7x7, Conv4's last 10x10 —
 * and an odd non-square plane with a 3-image batch cut into 2 + 1 image chunks, each against
 * the reference with the summation bounds of the file's comment (each output is the same sum
 * as im2col's, in the GEMM's order); the table records that it ran. Batch 1 and planes over
 * FCL_CONV_BATCHED_MAX_PLANE pixels are not its (nothing to batch; im2col's GEMMs are wide
 * enough there). */
static void check_forced(const char *algo, const char *name, ref_conv_shape s, int bias,
                         size_t workspace) {
    fewcl_context *ctx = th_ctx();
    TH_OK(fcl_conv_algo_force(ctx, algo));
    conv_out got;
    check_conv(name, s, bias, workspace, &got);
    for (int d = 0; d < FCL_CONV_DIRS; d++)
        assert_string_equal(fcl_conv_algo_last(ctx, d)->name, algo);
    if (workspace) assert_true(got.workspace_peak <= workspace + 2 * ctx->limits.base_align);
    conv_out_free(&got);
    TH_OK(fcl_conv_algo_force(ctx, GEMM_ALGOS));
}

static void check_batched(const char *name, ref_conv_shape s, int bias, size_t workspace) {
    check_forced("batched", name, s, bias, workspace);
}

static void test_conv_batched_small_planes(void **state) {
    (void)state;
    if (!th_host_path("the batched GEMMs run on the host path only")) return;
    int small = th_small();
    ref_conv_shape l4 = {.n = small ? 2 : 4, .cin = small ? 8 : 32, .h = 7, .w = 7,
                         .cout = small ? 8 : 32, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    check_batched("ResNet layer4 3x3", l4, 0, 0);
    ref_conv_shape down = {.n = 3, .cin = 16, .h = 14, .w = 14, .cout = 24, .kh = 3, .kw = 3,
                           .stride = 2, .pad = 1};
    check_batched("ResNet 3x3/2 into 7x7", down, 0, 0);
    down.kh = down.kw = 1, down.pad = 0;
    check_batched("ResNet 1x1/2 into 7x7", down, 0, 0);
    ref_conv_shape c4 = {.n = 3, .cin = 16, .h = 10, .w = 10, .cout = 16, .kh = 3, .kw = 3,
                         .stride = 1, .pad = 1};
    check_batched("Conv4 block 3", c4, 1, 0);
    ref_conv_shape odd = shape(5, 7, 3, 1, 1); /* 13x10 (7x6 small) */
    odd.n = 3;
    ref_conv_shape_init(&odd);
    size_t two = 2 * (size_t)odd.oh * odd.ow * (5 * 9 + 7) * sizeof(float);
    check_batched("odd plane, 2-image chunks", odd, 1, two);
    /* Not the batched GEMMs': batch 1, and a plane of 17x16 = 272 pixels. */
    fcl_conv_geom g = {.n = 1, .cin = 8, .h = 7, .w = 7, .cout = 8, .kh = 3, .kw = 3, .oh = 7,
                       .ow = 7, .stride = 1, .pad = 1, .taps = 72, .plane = 49, .host = 1,
                       .images = 1, .columns = 49, .limit = 1 << 20};
    const fcl_conv_algo *batched = fcl_conv_algo_find("batched", 1);
    assert_false(fcl_conv_algo_eligible(batched, &g, FCL_CONV_FORWARD));
    g.n = g.images = 2;
    assert_true(fcl_conv_algo_eligible(batched, &g, FCL_CONV_FORWARD));
    g.h = g.oh = 17, g.w = g.ow = 16, g.plane = g.columns = 272;
    assert_false(fcl_conv_algo_eligible(batched, &g, FCL_CONV_WEIGHTS));
}

/* The host path's per-tap GEMMs (lib/ops/conv_taps_host.c), forced alone as the batched ones
 * above, against the reference with the same summation bounds: ResNet-18's layer4 at 84 px
 * (a 3x3 plane, where each corner output reads 4 of the 9 taps), a 7x7 plane, the stride-2
 * 3x3 and 1x1 downsamples, an odd plane with a bias, a 5x5 kernel with padding 2 (rectangles
 * of 1 to 5 rows), padding 0, a 1x1 plane (eight of the nine taps read only padding: their
 * dW terms are zero), batch 1, and a bound that splits the batch into chunks (the weight
 * gradient summed over them, onto the old dW). */
static void check_taps(const char *name, ref_conv_shape s, int bias, size_t workspace) {
    check_forced("taps", name, s, bias, workspace);
}

static ref_conv_shape conv_shape(int n, int cin, int h, int w, int cout, int k, int stride,
                                 int pad) {
    return (ref_conv_shape){.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .kh = k, .kw = k,
                            .stride = stride, .pad = pad};
}

static void test_conv_taps_small_planes(void **state) {
    (void)state;
    if (!th_host_path("the per-tap GEMMs run on the host path only")) return;
    check_taps("ResNet-18 layer4 at 84 px", conv_shape(4, 24, 3, 3, 20, 3, 1, 1), 0, 0);
    check_taps("7x7 plane", conv_shape(3, 16, 7, 7, 16, 3, 1, 1), 0, 0);
    check_taps("3x3/2 into 7x7", conv_shape(3, 16, 14, 14, 24, 3, 2, 1), 0, 0);
    check_taps("1x1/2 into 7x7", conv_shape(3, 16, 14, 14, 24, 1, 2, 0), 0, 0);
    check_taps("odd plane", conv_shape(3, 5, 13, 10, 7, 3, 1, 1), 1, 0);
    check_taps("5x5, padding 2", conv_shape(2, 4, 6, 5, 6, 5, 1, 2), 1, 0);
    check_taps("padding 0", conv_shape(2, 3, 8, 9, 5, 3, 1, 0), 0, 0);
    check_taps("1x1 plane", conv_shape(3, 6, 1, 1, 5, 3, 1, 1), 1, 0);
    check_taps("batch 1", conv_shape(1, 8, 5, 5, 8, 3, 2, 1), 0, 0);
    /* A bound of one image's im2col columns (below it the call goes in column ranges, which
     * are not this algorithm's): the per-tap buffers of two images and W's take 2,682 of its
     * 2,835 floats, so the 3 images go as 2 + 1. */
    ref_conv_shape odd = conv_shape(3, 5, 9, 7, 6, 3, 1, 1);
    ref_conv_shape_init(&odd);
    size_t one = fcl_conv2d_column_bytes(1, 5 * 9, 6) * (size_t)odd.oh * odd.ow;
    check_taps("2 + 1 image chunks", odd, 1, one);
    fcl_conv_geom g = {.n = 2, .cin = 8, .h = 17, .w = 16, .cout = 8, .kh = 3, .kw = 3, .oh = 17,
                       .ow = 16, .stride = 1, .pad = 1, .taps = 72, .plane = 272, .host = 1,
                       .images = 2, .columns = 272, .limit = 1 << 20};
    const fcl_conv_algo *taps = fcl_conv_algo_find("taps", 1);
    assert_false(fcl_conv_algo_eligible(taps, &g, FCL_CONV_FORWARD)); /* over 256 pixels */
    g.h = g.oh = 16, g.plane = g.columns = 256;
    assert_true(fcl_conv_algo_eligible(taps, &g, FCL_CONV_FORWARD));
    g.limit = 2 * 9 * 64 * sizeof(float); /* the weights alone: not one image */
    assert_false(fcl_conv_algo_eligible(taps, &g, FCL_CONV_WEIGHTS));
    assert_null(fcl_conv_algo_find("taps", 0)); /* the OpenCL path has none */
}

/* The chunked path: workspace bounds that hold two images (so a batch of three goes as 2 + 1:
 * one GEMM over two images' columns, then one over the last image's) and one image (1 + 1 + 1),
 * and one that holds a few columns (so each image goes in ranges of output pixels, and dx is
 * accumulated over the ranges) give the reference's results, and agree with the unchunked run
 * to the normalised-error tolerance (the GEMMs then sum in another order, so not bit for bit);
 * the workspace never exceeds the bound. A column's bytes depend on the path (the OpenCL path
 * also holds the GEMM's output column): fcl_conv2d_column_bytes. */
static void test_conv_chunked_matches_unchunked(void **state) {
    ref_conv_shape s = shape(3, 5, 3, 2, 1);
    ref_conv_shape_init(&s);
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    size_t column = fcl_conv2d_column_bytes(path == FCL_GEMM_HOST, s.cin * s.kh * s.kw, s.cout);
    size_t image = column * s.oh * s.ow;
    conv_out whole, by_image, by_one, by_columns;
    if (th_small()) {
        /* Under oclgrind only the column chunks (they also loop over the images), against the
         * reference; the comparison with the unchunked run is for full-size runs. */
        check_conv("7-column chunks", s, 1, 7 * column, &by_columns);
        assert_true(by_columns.workspace_peak <= 7 * column + 2 * th_ctx()->limits.base_align);
        conv_out_free(&by_columns);
        return;
    }
    check_conv("unchunked", s, 1, 0, &whole);
    check_conv("2-image chunks", s, 1, 2 * image, &by_image);
    check_conv("1-image chunks", s, 1, image, &by_one);
    check_conv("7-column chunks", s, 1, 7 * column, &by_columns);
    print_message("    workspace peaks: %zu bytes unchunked, %zu (bound %zu), %zu (bound %zu), "
                  "%zu (bound %zu)\n",
                  whole.workspace_peak, by_image.workspace_peak, 2 * image, by_one.workspace_peak,
                  image, by_columns.workspace_peak, 7 * column);
    /* The bound covers the im2col matrix; CLBlast's temp buffer for these small GEMMs, when
     * it needs one, is measured with the unchunked run minus its full-batch columns. */
    size_t all_columns = image * s.n;
    size_t clblast = whole.workspace_peak > all_columns ? whole.workspace_peak - all_columns : 0;
    size_t align = th_ctx()->limits.base_align;
    assert_true(by_image.workspace_peak <= 2 * image + 2 * align + clblast);
    assert_true(by_one.workspace_peak <= image + 2 * align + clblast);
    assert_true(by_image.workspace_peak > by_one.workspace_peak); /* 2 images did go together */
    assert_true(by_columns.workspace_peak <= 7 * column + 2 * align + clblast);
    assert_true(whole.workspace_peak >= all_columns); /* the unchunked run was one chunk */
    sizes z = sizes_of(&s);
    conv_out *chunked[3] = {&by_image, &by_one, &by_columns};
    for (int c = 0; c < 3; c++) {
        double *ref;
        const char *names[4] = {"y", "dx", "dW", "db"};
        float *a[4] = {whole.y, whole.dx, whole.dw, whole.db};
        float *b[4] = {chunked[c]->y, chunked[c]->dx, chunked[c]->dw, chunked[c]->db};
        size_t n[4] = {z.y, z.x, z.w, (size_t)s.cout};
        for (int i = 0; i < 4; i++) {
            char what[64];
            snprintf(what, sizeof what, "chunked %d vs unchunked %s", c, names[i]);
            ref = th_to_double(a[i], n[i]);
            check_output(what, b[i], ref, NULL, n[i]);
            free(ref);
        }
    }
    conv_out_free(&whole), conv_out_free(&by_image), conv_out_free(&by_one);
    conv_out_free(&by_columns);
}

/* Determinism: no atomics and fixed summation orders, so two runs on the same inputs give the
 * same bits (dx through the col2im gather, db through the per-channel tree). */
static void test_conv_backward_is_deterministic(void **state) {
    if (skipped_when_small()) return;
    ref_conv_shape s = shape(4, 6, 3, 2, 1);
    ref_conv_shape_init(&s);
    sizes z = sizes_of(&s);
    float *x = random_floats(z.x, 600, -1, 1), *w = random_floats(z.w, 601, -1, 1);
    float *b = random_floats(s.cout, 602, -1, 1), *dy = random_floats(z.y, 603, -1, 1);
    float *dw0 = calloc(z.w, sizeof *dw0), *db0 = calloc(s.cout, sizeof *db0);
    conv_out first, second;
    run_device(&s, x, w, b, dy, dw0, db0, 0, &first);
    run_device(&s, x, w, b, dy, dw0, db0, 0, &second);
    assert_memory_equal(first.y, second.y, z.y * sizeof(float));
    assert_memory_equal(first.dx, second.dx, z.x * sizeof(float));
    assert_memory_equal(first.dw, second.dw, z.w * sizeof(float));
    assert_memory_equal(first.db, second.db, s.cout * sizeof(float));
    conv_out_free(&first), conv_out_free(&second);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
}

/* The backbones' first layers at full size, forward (skipped under oclgrind: too slow). */
static void check_forward_only(const char *name, ref_conv_shape s, int bias) {
    ref_conv_shape_init(&s);
    sizes z = sizes_of(&s);
    float *x = random_floats(z.x, 200, 0, 1), *w = random_floats(z.w, 201, -0.2f, 0.2f);
    float *b = random_floats(s.cout, 202, -0.2f, 0.2f);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, s.kh, s.kw};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, B, Y;
    th_upload(&X, 4, sx, x);
    th_upload(&W, 4, sw, w);
    th_upload(&B, 1, &s.cout, b);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    fcl_conv2d_params p = {s.stride, s.pad, 0};
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, bias ? &B : NULL, &p, &Y));
    float *got = th_download(&Y);
    double *xd = th_to_double(x, z.x), *wd = th_to_double(w, z.w), *bd = th_to_double(b, s.cout);
    double *ax = abs_copy(x, z.x), *aw = abs_copy(w, z.w), *ab = abs_copy(b, s.cout);
    double *y = malloc(z.y * sizeof *y), *bound = malloc(z.y * sizeof *bound);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, y);
    ref_conv2d_forward(&s, ax, aw, bias ? ab : NULL, bound);
    for (size_t i = 0; i < z.y; i++)
        bound[i] *= th_gamma(s.cin * s.kh * s.kw + 1);
    print_message("  %s\n", name);
    check_output("y", got, y, bound, z.y);
    free(got), free(xd), free(wd), free(bd), free(ax), free(aw), free(ab), free(y), free(bound);
    free(x), free(w), free(b);
    th_free(&Y), th_free(&B), th_free(&W), th_free(&X);
}

static void test_conv_model_shapes(void **state) {
    if (th_small()) {
        print_message("  skipped under FEWCL_TEST_SMALL (full-size images)\n");
        return;
    }
    check_forward_only("Conv4 block 0: x [2,3,84,84], W [64,3,3,3], stride 1, pad 1, bias",
                       (ref_conv_shape){.n = 2,
                                        .cin = 3,
                                        .h = 84,
                                        .w = 84,
                                        .cout = 64,
                                        .kh = 3,
                                        .kw = 3,
                                        .stride = 1,
                                        .pad = 1},
                       1);
    check_forward_only("ResNet stem: x [1,3,224,224], W [64,3,7,7], stride 2, pad 3",
                       (ref_conv_shape){.n = 1,
                                        .cin = 3,
                                        .h = 224,
                                        .w = 224,
                                        .cout = 64,
                                        .kh = 7,
                                        .kw = 7,
                                        .stride = 2,
                                        .pad = 3},
                       0);
}

typedef struct conv_ud {
    const ref_conv_shape *s;
    double *x, *w, *b;
} conv_ud;

static void conv_fwd(void *ud, double *y) {
    conv_ud *u = ud;
    ref_conv2d_forward(u->s, u->x, u->w, u->b, y);
}

/* The reference's gradients by central differences. The convolution is linear in each of
 * x, W, b, so the differences are exact up to rounding (~1e-10 relative): 1e-8 has margin
 * and still catches any wrong index (an O(1) error). */
static void check_reference_gradients(ref_conv_shape s) {
    ref_conv_shape_init(&s);
    sizes z = sizes_of(&s);
    float *xf = random_floats(z.x, 300, -1, 1), *wf = random_floats(z.w, 301, -1, 1);
    float *bf = random_floats(s.cout, 302, -1, 1), *dyf = random_floats(z.y, 303, -1, 1);
    double *x = th_to_double(xf, z.x), *w = th_to_double(wf, z.w), *b = th_to_double(bf, s.cout);
    double *dy = th_to_double(dyf, z.y);
    double *dx = malloc(z.x * sizeof *dx), *dw = malloc(z.w * sizeof *dw);
    double *db = malloc(s.cout * sizeof *db);
    ref_conv2d_backward(&s, x, w, dy, dx, dw, db);
    conv_ud u = {&s, x, w, b};
    double ex = th_fd_error(conv_fwd, &u, x, z.x, dx, dy, z.y);
    double ew = th_fd_error(conv_fwd, &u, w, z.w, dw, dy, z.y);
    double eb = th_fd_error(conv_fwd, &u, b, s.cout, db, dy, z.y);
    print_message("  fd %dx%d/%d/%d: dx %.1e, dW %.1e, db %.1e (tolerance 1e-8)\n", s.kh, s.kw,
                  s.stride, s.pad, ex, ew, eb);
    assert_true(ex < 1e-8 && ew < 1e-8 && eb < 1e-8);
    free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db);
    free(xf), free(wf), free(bf), free(dyf);
}

static void test_conv_reference_gradients(void **state) {
    check_reference_gradients((ref_conv_shape){
        .n = 2, .cin = 2, .h = 5, .w = 4, .cout = 3, .kh = 3, .kw = 3, .stride = 2, .pad = 1});
    check_reference_gradients((ref_conv_shape){
        .n = 1, .cin = 2, .h = 6, .w = 5, .cout = 2, .kh = 7, .kw = 7, .stride = 2, .pad = 3});
    check_reference_gradients((ref_conv_shape){
        .n = 2, .cin = 3, .h = 5, .w = 5, .cout = 2, .kh = 1, .kw = 1, .stride = 2, .pad = 0});
}

/* PyTorch (tools/reference/fam_conv.py): F.conv2d and its autograd gradients, docs/spec.md §10
 * normalised error 1e-6. */
static void test_conv_matches_pytorch(void **state) {
    if (skipped_when_small()) return; /* the same kernels as the reference tests above */
    struct fcl_safetensors *fx = th_fixture("ops_conv");
    const char *cases[] = {"k3s1p1b", "k3s2p1", "k7s2p3", "k1s2p0"};
    for (int c = 0; c < 4; c++) {
        char key[64];
        size_t n;
        snprintf(key, sizeof key, "%s.geom", cases[c]);
        const float *geom = th_fixture_data(fx, key, &n);
        assert_int_equal(n, 2);
        fcl_conv2d_params p = {(int)geom[0], (int)geom[1], 0};
        snprintf(key, sizeof key, "%s.b", cases[c]);
        int bias = fcl_st_find(fx, key) != NULL;
        fcl_tensor x, w, b, dy, y, dx, dw, db;
        snprintf(key, sizeof key, "%s.x", cases[c]);
        th_fixture_upload(fx, key, &x);
        snprintf(key, sizeof key, "%s.w", cases[c]);
        th_fixture_upload(fx, key, &w);
        snprintf(key, sizeof key, "%s.dy", cases[c]);
        th_fixture_upload(fx, key, &dy);
        if (bias) {
            snprintf(key, sizeof key, "%s.b", cases[c]);
            th_fixture_upload(fx, key, &b);
            TH_OK(fcl_tensor_alloc(th_ctx(), &db, FCL_MEM_GRAD, 1, b.shape));
            TH_OK(fcl_fill(th_ctx(), &db, 0));
        }
        TH_OK(fcl_tensor_alloc(th_ctx(), &y, FCL_MEM_ACTIVATION, 4, dy.shape));
        TH_OK(fcl_tensor_alloc(th_ctx(), &dx, FCL_MEM_ACTIVATION, 4, x.shape));
        TH_OK(fcl_tensor_alloc(th_ctx(), &dw, FCL_MEM_GRAD, 4, w.shape));
        TH_OK(fcl_fill(th_ctx(), &dw, 0));
        TH_OK(fcl_conv2d_forward(th_ctx(), &x, &w, bias ? &b : NULL, &p, &y));
        TH_OK(fcl_conv2d_backward(th_ctx(), &x, &w, &dy, &p, &dx, &dw, bias ? &db : NULL));
        print_message("  PyTorch %s\n", cases[c]);
        const char *names[] = {"y", "dx", "dw", "db"};
        fcl_tensor *outs[] = {&y, &dx, &dw, &db};
        for (int i = 0; i < (bias ? 4 : 3); i++) {
            snprintf(key, sizeof key, "%s.%s", cases[c], names[i]);
            const float *ref = th_fixture_data(fx, key, &n);
            assert_int_equal(n, outs[i]->numel);
            double *want = th_to_double(ref, n);
            float *got = th_download(outs[i]);
            check_output(key, got, want, NULL, n);
            free(got), free(want);
        }
        th_free(&dw), th_free(&dx), th_free(&y);
        if (bias) th_free(&db), th_free(&b);
        th_free(&dy), th_free(&w), th_free(&x);
    }
    th_fixture_free(fx);
}

static void test_conv_shape_errors(void **state) {
    fcl_tensor x, w, y;
    int sx[4] = {2, 3, 8, 8}, sw[4] = {4, 2, 3, 3}, sy[4] = {2, 4, 8, 8};
    TH_OK(fcl_tensor_alloc(th_ctx(), &x, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &w, FCL_MEM_PARAM, 4, sw));
    TH_OK(fcl_tensor_alloc(th_ctx(), &y, FCL_MEM_ACTIVATION, 4, sy));
    fcl_conv2d_params p = {1, 1, 0};
    /* Cin of x (3) and W (2) differ. */
    assert_int_equal(fcl_conv2d_forward(th_ctx(), &x, &w, NULL, &p, &y), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "x [2,3,8,8], weight [4,2,3,3]"));
    th_free(&w);
    sw[1] = 3;
    TH_OK(fcl_tensor_alloc(th_ctx(), &w, FCL_MEM_PARAM, 4, sw));
    TH_OK(fcl_conv2d_forward(th_ctx(), &x, &w, NULL, &p, &y));
    /* Stride 2 gives 4x4, not the 8x8 output. */
    p.stride = 2;
    assert_int_equal(fcl_conv2d_forward(th_ctx(), &x, &w, NULL, &p, &y), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "output [2,4,8,8]"));
    p.stride = 0;
    assert_int_equal(fcl_conv2d_forward(th_ctx(), &x, &w, NULL, &p, &y), FEWCL_ERR_ARGUMENT);
    p.stride = 1;
    /* dx of the wrong shape. */
    assert_int_equal(fcl_conv2d_backward(th_ctx(), &x, &w, &y, &p, &y, NULL, NULL),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "dx [2,4,8,8]"));
    th_free(&y), th_free(&w), th_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_3x3_s1_p1_bias),
        cmocka_unit_test(test_conv_same_by_shifted_views),
        /* restores the GEMM algorithms even when it fails half-way */
        cmocka_unit_test_teardown(test_conv_batched_small_planes, force_gemm_algos),
        cmocka_unit_test_teardown(test_conv_taps_small_planes, force_gemm_algos),
        cmocka_unit_test(test_conv_3x3_s1_p1),
        cmocka_unit_test(test_conv_3x3_s2_p1),
        cmocka_unit_test(test_conv_3x3_s2_p1_bias),
        cmocka_unit_test(test_conv_7x7_s2_p3),
        cmocka_unit_test(test_conv_1x1_s2_p0),
        cmocka_unit_test(test_conv_3x3_s1_p0_bias),
        cmocka_unit_test(test_conv_chunked_matches_unchunked),
        cmocka_unit_test(test_conv_backward_is_deterministic),
        cmocka_unit_test(test_conv_model_shapes),
        cmocka_unit_test(test_conv_reference_gradients),
        cmocka_unit_test(test_conv_matches_pytorch),
        cmocka_unit_test(test_conv_shape_errors),
    };
    return cmocka_run_group_tests(tests, force_gemm_algos, th_teardown);
}
