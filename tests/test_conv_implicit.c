/* The implicit-GEMM convolutions (table entries `implicit` and `implicit_wide`,
 * lib/ops/conv_implicit.c, cl/conv_implicit.cl and cl/conv_implicit_wide.cl), forward and data
 * gradient, against the double C reference. Both kernels run every shape below: the wide one's
 * fused multiply-adds round once per tap where the small one's round twice, within the same
 * bound.
 *
 * The bound: each output is a direct sum, forward b[o] + Σ_k W[o,k]·col[k] over K = Cin·KH·KW
 * taps, data Σ W[o,c,kh,kw]·dy[..] over Cout·KH·KW taps (accumulated in tap order in one float
 * per item; the padding's taps add exact zeros), so by the standard analysis of a dot product
 * (Higham §3.1, "Accuracy and Stability of Numerical Algorithms") |ŷ − y| ≤ γ_{T+1}·ȳ, T the
 * taps and ȳ the reference run on absolute values (th_gamma adds one rounding for the store). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv.h"
#include "ops/conv_algo.h"
#include "ops/conv_impl.h"
#include "ops/gemm_host.h"
#include "plan/plan.h"
#include "ref/ref_conv.h"

static ref_conv_shape shape(int n, int cin, int h, int w, int cout, int k, int stride, int pad) {
    ref_conv_shape s = {.n = n,
                        .cin = cin,
                        .h = h,
                        .w = w,
                        .cout = cout,
                        .kh = k,
                        .kw = k,
                        .stride = stride,
                        .pad = pad};
    ref_conv_shape_init(&s);
    return s;
}

/* 1 when `algo` can run here: the OpenCL path, a device that fits its work-groups. */
static int implicit_here(const char *algo) {
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    if (path == FCL_GEMM_HOST) {
        print_message("  skipped: the implicit GEMM is the OpenCL path's\n");
        return 0;
    }
    fcl_conv_geom g = {.n = 1,
                       .cin = 1,
                       .h = 3,
                       .w = 3,
                       .cout = 1,
                       .kh = 3,
                       .kw = 3,
                       .oh = 1,
                       .ow = 1,
                       .stride = 1,
                       .taps = 9,
                       .plane = 1,
                       .ctx = th_ctx()};
    if (!fcl_conv_algo_eligible(fcl_conv_algo_find(algo, 0), &g, FCL_CONV_FORWARD)) {
        print_message("  skipped: the device does not fit %s's work-groups or local memory\n",
                      algo);
        return 0;
    }
    return 1;
}

static void check_implicit(const char *algo, const char *name, ref_conv_shape s, int bias) {
    size_t nx = (size_t)s.n * s.cin * s.h * s.w, nw = (size_t)s.cout * s.cin * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.cout * s.oh * s.ow;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)s.cout * 4);
    float *dy = malloc(ny * 4);
    th_random(x, nx, 900, -1, 1), th_random(w, nw, 901, -0.5f, 0.5f);
    th_random(b, (size_t)s.cout, 902, -0.5f, 0.5f), th_random(dy, ny, 903, -1, 1);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, s.kh, s.kw};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, B, Y, DY, DX;
    th_upload(&X, 4, sx, x), th_upload(&W, 4, sw, w), th_upload(&B, 1, &s.cout, b);
    th_upload(&DY, 4, sy, dy);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    fcl_conv2d_params p = {s.stride, s.pad, 0};
    int data = s.stride == 1; /* the data gradient runs at stride 1 */
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, bias ? &B : NULL, &p, &Y));
    assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_FORWARD)->name, algo);
    if (data) {
        TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, NULL, NULL));
        assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_DATA)->name, algo);
    }
    float *y = th_download(&Y), *dx = th_download(&DX);
    double *xd = th_to_double(x, nx), *wd = th_to_double(w, nw), *bd = th_to_double(b, s.cout);
    double *dyd = th_to_double(dy, ny);
    double *ry = malloc(ny * 8), *by = malloc(ny * 8), *rdx = malloc(nx * 8), *bdx = malloc(nx * 8);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, ry);
    ref_conv2d_backward(&s, xd, wd, dyd, rdx, NULL, NULL);
    for (size_t i = 0; i < nx; i++)
        xd[i] = fabs(xd[i]);
    for (size_t i = 0; i < nw; i++)
        wd[i] = fabs(wd[i]);
    for (int i = 0; i < s.cout; i++)
        bd[i] = fabs(bd[i]);
    for (size_t i = 0; i < ny; i++)
        dyd[i] = fabs(dyd[i]);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, by);
    ref_conv2d_backward(&s, xd, wd, dyd, bdx, NULL, NULL);
    double g = th_gamma(s.cin * s.kh * s.kw + 1), gd = th_gamma(s.cout * s.kh * s.kw + 1);
    double worst = 0, worst_dx = 0;
    for (size_t i = 0; i < ny; i++) {
        by[i] *= g;
        if (by[i] > 0) worst = fmax(worst, fabs(y[i] - ry[i]) / by[i]);
    }
    for (size_t i = 0; i < nx; i++) {
        bdx[i] *= gd;
        if (bdx[i] > 0) worst_dx = fmax(worst_dx, fabs(dx[i] - rdx[i]) / bdx[i]);
    }
    print_message("  %s %s: x [%d,%d,%d,%d], W [%d,%d,%d,%d], stride %d, padding %d%s: "
                  "error/bound y %.2e, dx %.2e\n",
                  algo, name, s.n, s.cin, s.h, s.w, s.cout, s.cin, s.kh, s.kw, s.stride, s.pad,
                  bias ? ", bias" : "", worst, data ? worst_dx : 0.0);
    th_assert_bound("y", y, ry, by, ny);
    if (data) th_assert_bound("dx", dx, rdx, bdx, nx);
    free(y), free(dx), free(x), free(w), free(b), free(dy);
    double *all[] = {xd, wd, bd, dyd, ry, by, rdx, bdx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    th_free(&DX), th_free(&DY), th_free(&Y), th_free(&B), th_free(&W), th_free(&X);
}

static int unforce(void **state) {
    (void)state;
    return fcl_conv_algo_force(th_ctx(), NULL) == FEWCL_OK ? 0 : -1;
}

/* The models' kinds of layer (batch and planes reduced): Conv4's 3 → 64 and 64 → 64 3x3, the
 * ResNets' 7x7/2 stem, a 3x3/2 and a 1x1/2 downsample, a 3x3 layer with 96 output channels
 * (two row tiles of the small kernel, the second partial), one with 136 output channels and 338
 * columns (two row tiles and three column tiles of the wide kernel, the last ones partial);
 * and odd ones: 1x1 planes, channels 7 → 9 (K = 63, not a multiple of the 16-tap step), batch
 * 1, a plane whose columns end mid-tile, padding 2 and 0, a non-square kernel's plane (5x3
 * input, 5x5 kernel: every tap of some columns in the padding). The data gradient on the
 * stride-1 ones. */
static void implicit_shapes(const char *algo) {
    if (!implicit_here(algo)) return;
    TH_OK(fcl_conv_algo_force(th_ctx(), algo));
    if (!th_small()) { /* oclgrind's run: the small ones below */
        check_implicit(algo, "Conv4 block 0", shape(2, 3, 12, 12, 64, 3, 1, 1), 1);
        check_implicit(algo, "Conv4 block 3", shape(2, 64, 10, 10, 64, 3, 1, 1), 1);
        check_implicit(algo, "ResNet stem", shape(1, 3, 22, 22, 16, 7, 2, 3), 0);
        check_implicit(algo, "96 channels", shape(1, 32, 7, 7, 96, 3, 1, 1), 1);
        check_implicit(algo, "136 channels", shape(2, 16, 13, 13, 136, 3, 1, 1), 1);
        check_implicit(algo, "3x3/2", shape(2, 16, 14, 14, 24, 3, 2, 1), 0);
        check_implicit(algo, "1x1/2", shape(2, 16, 14, 14, 24, 1, 2, 0), 0);
    }
    check_implicit(algo, "small 3x3/2", shape(1, 5, 7, 7, 6, 3, 2, 1), 1);
    check_implicit(algo, "1x1 plane", shape(3, 5, 1, 1, 3, 3, 1, 1), 1);
    check_implicit(algo, "odd", shape(1, 7, 9, 11, 9, 3, 1, 1), 1);
    check_implicit(algo, "padding 2", shape(2, 4, 5, 6, 3, 5, 1, 2), 0);
    check_implicit(algo, "no padding", shape(2, 3, 8, 9, 5, 3, 1, 0), 1);
    ref_conv_shape wide = shape(2, 3, 5, 3, 4, 5, 1, 2); /* 5x3 image, 5x5 kernel */
    check_implicit(algo, "5x3 image", wide, 1);
}

static void test_implicit_shapes(void **state) {
    (void)state;
    implicit_shapes("implicit");
}

static void test_implicit_wide_shapes(void **state) {
    (void)state;
    implicit_shapes("implicit_wide");
}

/* The weight gradient of `implicit` (conv_implicit_wgrad): dW += dy ⋆ x over the batch's N·P
 * pixels, with dW holding earlier values (the op accumulates). The bound: each weight is dW₀
 * plus a dot product over T = N·P pixels computed as slices' running sums added in order, then
 * onto dW₀: a product passes through at most T + 2 roundings, so |ŵ − w| ≤ γ_{T+2}·w̄, w̄ =
 * |dW₀| + Σ|dy||col|. Also checks the workspace: the arena's at the call's peak is what
 * `workspace()` says (to the arena's alignment), and a plan of the call predicts it exactly. */
static void check_weights(const char *name, ref_conv_shape s) {
    size_t nx = (size_t)s.n * s.cin * s.h * s.w, nw = (size_t)s.cout * s.cin * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.cout * s.oh * s.ow;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dw0 = malloc(nw * 4), *dy = malloc(ny * 4);
    th_random(x, nx, 910, -1, 1), th_random(w, nw, 911, -0.5f, 0.5f);
    th_random(dw0, nw, 912, -1, 1), th_random(dy, ny, 913, -1, 1);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, s.kh, s.kw};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, DY, DW;
    th_upload(&X, 4, sx, x), th_upload(&W, 4, sw, w), th_upload(&DY, 4, sy, dy);
    th_upload(&DW, 4, sw, dw0);
    fcl_conv2d_params p = {s.stride, s.pad, 0};
    /* the plan of the call, then the call */
    fcl_arena_stats plan;
    TH_OK(fcl_plan_begin(th_ctx(), 0));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, NULL, &DW, NULL));
    fcl_plan_end(th_ctx(), &plan);
    fcl_arena *arena = th_ctx()->arena;
    fcl_arena_reset_peak(arena);
    size_t base = fcl_arena_stats_get(arena)->in_use;
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, NULL, &DW, NULL));
    TH_OK(fewcl_finish(th_ctx()));
    const fcl_arena_stats *real = fcl_arena_stats_get(arena);
    const fcl_conv_algo *algo = fcl_conv_algo_last(th_ctx(), FCL_CONV_WEIGHTS);
    assert_string_equal(algo->name, "implicit");
    fcl_conv_geom g = {.n = s.n,
                       .cin = s.cin,
                       .h = s.h,
                       .w = s.w,
                       .cout = s.cout,
                       .kh = s.kh,
                       .kw = s.kw,
                       .oh = s.oh,
                       .ow = s.ow,
                       .stride = s.stride,
                       .pad = s.pad,
                       .taps = s.cin * s.kh * s.kw,
                       .plane = s.oh * s.ow,
                       .limit = FCL_CONV_WORKSPACE_DEFAULT,
                       .ctx = th_ctx()};
    size_t want_ws = algo->workspace(&g, FCL_CONV_WEIGHTS), align = fcl_arena_align(arena);
    size_t got_ws = real->by_category_at_peak[FCL_MEM_WORKSPACE];
    print_message("  workspace %zu bytes (workspace() %zu), planned peak %zu, measured %zu\n",
                  got_ws, want_ws, plan.peak, real->peak - base);
    assert_true(got_ws >= want_ws && got_ws <= (want_ws + align - 1) / align * align);
    assert_int_equal(plan.peak, real->peak - base);
    assert_int_equal(plan.by_category_at_peak[FCL_MEM_WORKSPACE], got_ws);

    float *dw = th_download(&DW);
    double *xd = th_to_double(x, nx), *wd = th_to_double(w, nw), *dyd = th_to_double(dy, ny);
    double *rdw = malloc(nw * 8), *bdw = malloc(nw * 8);
    ref_conv2d_backward(&s, xd, wd, dyd, NULL, rdw, NULL);
    for (size_t i = 0; i < nx; i++)
        xd[i] = fabs(xd[i]);
    for (size_t i = 0; i < ny; i++)
        dyd[i] = fabs(dyd[i]);
    ref_conv2d_backward(&s, xd, wd, dyd, NULL, bdw, NULL);
    double gam = th_gamma(s.n * s.oh * s.ow + 2), worst = 0;
    for (size_t i = 0; i < nw; i++) {
        rdw[i] += dw0[i];
        bdw[i] = gam * (bdw[i] + fabs(dw0[i]));
        if (bdw[i] > 0) worst = fmax(worst, fabs(dw[i] - rdw[i]) / bdw[i]);
    }
    print_message("  implicit weights %s: x [%d,%d,%d,%d], W [%d,%d,%d,%d], stride %d, padding "
                  "%d: error/bound dW %.2e\n",
                  name, s.n, s.cin, s.h, s.w, s.cout, s.cin, s.kh, s.kw, s.stride, s.pad, worst);
    th_assert_bound("dW", dw, rdw, bdw, nw);
    free(dw), free(x), free(w), free(dw0), free(dy), free(xd), free(wd), free(dyd), free(rdw),
        free(bdw);
    th_free(&DW), th_free(&DY), th_free(&W), th_free(&X);
}

/* The model-like shapes split the reduction (800 and more pixels: 3 and more slices, in the
 * workspace), the small ones add onto dW in one slice; strides, 1x1, 7x7, padding 0 and 2,
 * a 5x3 image, tiles of taps and channels ending mid-tile (K = 63, 96 channels). */
static void test_implicit_weights(void **state) {
    (void)state;
    if (!implicit_here("implicit")) return;
    TH_OK(fcl_conv_algo_force(th_ctx(), "implicit"));
    if (!th_small()) {
        check_weights("Conv4 block 3", shape(2, 16, 20, 20, 64, 3, 1, 1));
        check_weights("96 channels", shape(3, 32, 14, 14, 96, 3, 1, 1));
        check_weights("ResNet stem", shape(2, 3, 40, 40, 16, 7, 2, 3));
        check_weights("3x3/2", shape(4, 16, 28, 28, 24, 3, 2, 1));
        check_weights("1x1/2", shape(4, 16, 28, 28, 24, 1, 2, 0));
    }
    check_weights("split", shape(2, 3, 16, 17, 5, 3, 1, 1)); /* 544 pixels: 2 slices */
    check_weights("small 3x3/2", shape(1, 5, 7, 7, 6, 3, 2, 1));
    check_weights("odd", shape(1, 7, 9, 11, 9, 3, 1, 1));
    check_weights("padding 2", shape(2, 4, 5, 6, 3, 5, 1, 2));
    check_weights("no padding", shape(2, 3, 8, 9, 5, 3, 1, 0));
    check_weights("5x3 image", shape(2, 3, 5, 3, 4, 5, 1, 2));
}

/* implicit_wide has no weight gradient: forcing it alone for dW is an error, a fallback
 * listed after it runs; `implicit` runs both gradients in one call. */
static void test_implicit_wide_no_weights(void **state) {
    (void)state;
    if (!implicit_here("implicit_wide")) return;
    ref_conv_shape s = shape(1, 2, 5, 5, 3, 3, 1, 1);
    int sx[4] = {1, 2, 5, 5}, sw[4] = {3, 2, 3, 3}, sy[4] = {1, 3, s.oh, s.ow};
    fcl_tensor X, W, DY, DX, DW;
    TH_OK(fcl_tensor_alloc(th_ctx(), &X, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &W, FCL_MEM_ACTIVATION, 4, sw));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DY, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DW, FCL_MEM_ACTIVATION, 4, sw));
    TH_OK(fcl_fill(th_ctx(), &DW, 0.0f));
    fcl_conv2d_params p = {1, 1, 0};
    TH_OK(fcl_conv_algo_force(th_ctx(), "implicit_wide"));
    assert_int_equal(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, NULL),
                     FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "cannot run the weights convolution"));
    TH_OK(fcl_conv_algo_force(th_ctx(), "implicit_wide,implicit"));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, NULL));
    assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_DATA)->name, "implicit_wide");
    assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_WEIGHTS)->name, "implicit");
    TH_OK(fcl_conv_algo_force(th_ctx(), "implicit"));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, NULL));
    assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_DATA)->name, "implicit");
    assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_WEIGHTS)->name, "implicit");
    th_free(&DW), th_free(&DX), th_free(&DY), th_free(&W), th_free(&X);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_implicit_shapes, unforce),
        cmocka_unit_test_teardown(test_implicit_wide_shapes, unforce),
        cmocka_unit_test_teardown(test_implicit_weights, unforce),
        cmocka_unit_test_teardown(test_implicit_wide_no_weights, unforce),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
