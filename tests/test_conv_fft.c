/* The FFT convolution through clFFT (table entry `fft`, lib/ops/conv_fft.c) in each direction
 * against the double C reference; its workspace against what it allocates; and the probe that
 * makes it ineligible where clFFT fails (an injected fault).
 *
 * The bound. Per output plane (image n, output channel o) the forward result is
 * y = IDFT(Σ_c conj(W_c) · X_c) / N, N = FH·FW, with W_c, X_c the spectra of the zero-padded
 * kernel w_c and input x_c. Take for the computed length-N transform F̂ both
 *   normwise     ‖F̂v − Fv‖₂ ≤ η‖Fv‖₂ = η·√N·‖v‖₂        (Higham, "Accuracy and Stability of
 *   componentwise |F̂v − Fv|_f ≤ η‖v‖₁                    Numerical Algorithms", Thm 24.2)
 * with η = γ_T, T = 10·⌈log₂N⌉ + 10: a radix-r stage (clFFT's r ≤ 8) rounds each output ≤ r + 2
 * times, and its matrix |F_r| has norm √r·‖F_r‖, which is ≤ 10 roundings per halving of the
 * length for every r; + 10 for the real-to-complex post-processing and rounded twiddles.
 * Then, with |W_c|_∞ ≤ ‖w_c‖₁ and ‖X_c‖₂ = √N‖x_c‖₂, the spectral errors of X̂_c (η√N‖x_c‖₂
 * times ‖w_c‖₁), of Ŵ_c (η‖w_c‖₁ times √N‖x_c‖₂), of the products and the sum over c
 * (γ_{K+2}, K terms), each mapped back by IDFT/N (2-norm × 1/√N), and the inverse
 * transform's own error (η‖Z‖₂/√N) give, for every output of the plane,
 *     |ŷ − y| ≤ ‖ŷ − y‖₂ ≤ (3η + γ_{K+2} + 3u) · Σ_k ‖a_k‖₁‖b_k‖₂
 * where the sum runs over the summed index with a_k the factor bounded componentwise:
 *   forward  k = c, a = w[o,c], b = x[n,c] (+ u|b[o]| for the bias);
 *   data     k = o, a = w[o,c], b = dy[n,o];
 *   weights  k = n, a, b = dy[n,o], x[n,c], whichever order gives the smaller product
 *            (+ u·|old dW| + u·|dW|: the sum into dW).
 * The measured error is printed against it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/conv.h"
#include "ops/conv_algo.h"
#include "ops/conv_fft.h"
#include "ops/conv_impl.h"
#include "ops/gemm_host.h"
#include "ref/ref_conv.h"
#include "runtime/arena.h"

static ref_conv_shape shape(int n, int cin, int h, int w, int cout, int k, int pad) {
    ref_conv_shape s = {.n = n,
                        .cin = cin,
                        .h = h,
                        .w = w,
                        .cout = cout,
                        .kh = k,
                        .kw = k,
                        .stride = 1,
                        .pad = pad};
    ref_conv_shape_init(&s);
    return s;
}

/* 1 when the convolutions run on the OpenCL path, where `fft` lives. */
static int on_opencl_path(void) {
    int host = th_host_path(NULL);
    if (host) print_message("  skipped: the FFT convolution is the OpenCL path's\n");
    return !host;
}

static int fft_here(void) {
    if (!on_opencl_path()) return 0;
    if (!fcl_conv_fft_usable(th_ctx())) {
        print_message("  skipped: %s\n", fcl_conv_fft_why(th_ctx()));
        return 0;
    }
    return 1;
}

static double norm(const double *v, size_t n, int p) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += p == 1 ? fabs(v[i]) : v[i] * v[i];
    return p == 1 ? s : sqrt(s);
}

/* Σ_k min(‖a_k‖₁‖b_k‖₂, ‖a_k‖₂‖b_k‖₁) over planes a_k = a[k·sa], b_k = b[k·sb] of na, nb. */
static double pair_sum(const double *a, size_t sa, size_t na, const double *b, size_t sb, size_t nb,
                       int nk) {
    double s = 0;
    for (int k = 0; k < nk; k++) {
        const double *ak = a + k * sa, *bk = b + k * sb;
        s += fmin(norm(ak, na, 1) * norm(bk, nb, 2), norm(ak, na, 2) * norm(bk, nb, 1));
    }
    return s;
}

static int ceil_log2(long n) {
    int l = 0;
    while ((1L << l) < n)
        l++;
    return l;
}

static double worst_ratio;

static void check(const char *what, const float *got, const double *want, const double *bound,
                  size_t n) {
    double r = 0;
    for (size_t i = 0; i < n; i++)
        r = fmax(r, fabs(got[i] - want[i]) / bound[i]);
    th_assert_bound(what, got, want, bound, n);
    print_message("    %-3s error/bound %.2e\n", what, r);
    worst_ratio = fmax(worst_ratio, r);
}

/* One shape through `fft` forced, all three directions, against the reference. */
static void check_fft(const char *name, ref_conv_shape s, int bias, size_t workspace) {
    size_t plane = (size_t)s.h * s.w, kplane = (size_t)s.kh * s.kw, oplane = (size_t)s.oh * s.ow;
    size_t nx = (size_t)s.n * s.cin * plane, nw = (size_t)s.cout * s.cin * kplane;
    size_t ny = (size_t)s.n * s.cout * oplane;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(s.cout * 4), *dy = malloc(ny * 4);
    float *dw0 = malloc(nw * 4);
    th_random(x, nx, 800, -1, 1), th_random(w, nw, 801, -0.5f, 0.5f);
    th_random(b, s.cout, 802, -0.5f, 0.5f), th_random(dy, ny, 803, -1, 1);
    th_random(dw0, nw, 804, -1, 1);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, s.kh, s.kw};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, B, Y, DY, DX, DW;
    th_upload(&X, 4, sx, x), th_upload(&W, 4, sw, w), th_upload(&B, 1, &s.cout, b);
    th_upload(&DY, 4, sy, dy), th_upload(&DW, 4, sw, dw0);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    fcl_conv2d_params p = {1, s.pad, workspace};
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, bias ? &B : NULL, &p, &Y));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, NULL));
    for (int d = 0; d < FCL_CONV_DIRS; d++)
        assert_string_equal(fcl_conv_algo_last(th_ctx(), d)->name, "fft");
    float *y = th_download(&Y), *dx = th_download(&DX), *dw = th_download(&DW);

    double *xd = th_to_double(x, nx), *wd = th_to_double(w, nw), *bd = th_to_double(b, s.cout);
    double *dyd = th_to_double(dy, ny), *dw0d = th_to_double(dw0, nw);
    double *ry = malloc(ny * 8), *rdx = malloc(nx * 8), *rdw = malloc(nw * 8);
    double *by = malloc(ny * 8), *bdx = malloc(nx * 8), *bdw = malloc(nw * 8);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, ry);
    ref_conv2d_backward(&s, xd, wd, dyd, rdx, rdw, NULL);
    long fh = fcl_conv_fft_length(s.h + 2 * s.pad, 0), fw = fcl_conv_fft_length(s.w + 2 * s.pad, 1);
    double u = 0x1.0p-24, eta = th_gamma(10 * ceil_log2(fh * fw) + 10);
    double gf = 3 * eta + th_gamma(s.cin + 2) + 3 * u, gd = 3 * eta + th_gamma(s.cout + 2) + 3 * u;
    double gw = 3 * eta + th_gamma(s.n + 2) + 3 * u;
    for (int n = 0; n < s.n; n++)
        for (int o = 0; o < s.cout; o++) {
            /* Σ_c over w[o,c,·] (stride kplane) and x[n,c,·] (stride plane) */
            double sum = pair_sum(wd + (size_t)o * s.cin * kplane, kplane, kplane,
                                  xd + (size_t)n * s.cin * plane, plane, plane, s.cin);
            for (size_t i = 0; i < oplane; i++)
                by[((size_t)n * s.cout + o) * oplane + i] = gf * sum + (bias ? u * fabs(bd[o]) : 0);
        }
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.cin; c++) {
            /* Σ_o over w[o,c,·] (stride Cin·kplane) and dy[n,o,·] (stride oplane) */
            double sum = pair_sum(wd + (size_t)c * kplane, (size_t)s.cin * kplane, kplane,
                                  dyd + (size_t)n * s.cout * oplane, oplane, oplane, s.cout);
            for (size_t i = 0; i < plane; i++)
                bdx[((size_t)n * s.cin + c) * plane + i] = gd * sum;
        }
    for (int o = 0; o < s.cout; o++)
        for (int c = 0; c < s.cin; c++) {
            /* Σ_n over dy[n,o,·] (stride Cout·oplane) and x[n,c,·] (stride Cin·plane) */
            double sum = pair_sum(dyd + (size_t)o * oplane, (size_t)s.cout * oplane, oplane,
                                  xd + (size_t)c * plane, (size_t)s.cin * plane, plane, s.n);
            for (size_t i = 0; i < kplane; i++) {
                size_t at = ((size_t)o * s.cin + c) * kplane + i;
                rdw[at] += dw0d[at];
                bdw[at] = gw * sum + u * fabs(dw0d[at]) + u * fabs(rdw[at]);
            }
        }
    print_message("  %s: x [%d,%d,%d,%d], W [%d,%d,%d,%d], padding %d%s, planes %ldx%ld\n", name,
                  s.n, s.cin, s.h, s.w, s.cout, s.cin, s.kh, s.kw, s.pad, bias ? ", bias" : "", fh,
                  fw);
    check("y", y, ry, by, ny);
    check("dx", dx, rdx, bdx, nx);
    check("dW", dw, rdw, bdw, nw);
    double *all[] = {xd, wd, bd, dyd, dw0d, ry, rdx, rdw, by, bdx, bdw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    free(y), free(dx), free(dw), free(x), free(w), free(b), free(dy), free(dw0);
    th_free(&DX), th_free(&Y), th_free(&DW), th_free(&DY), th_free(&B), th_free(&W), th_free(&X);
}

static int unforce(void **state) {
    (void)state;
    return fcl_conv_algo_force(th_ctx(), NULL) == FEWCL_OK ? 0 : -1;
}

/* Conv4's first and last 3x3 layers (the first at a 10x10 plane), a ResNet layer4 3x3 layer
 * (batch and channels reduced), a 7x7 kernel (the ResNet stem's size, at stride 1). The planes
 * are chosen to share three FFT sizes (12x12, 9x10 and the 1x1 plane's 3x4): each new size
 * costs clFFT a kernel build (seconds on PoCL with a cold cache). */
static void test_fft_model_shapes(void **state) {
    (void)state;
    if (!fft_here()) return;
    if (th_small()) { /* oclgrind's run: the odd shapes' small planes only */
        print_message("  skipped: FEWCL_TEST_SMALL\n");
        return;
    }
    TH_OK(fcl_conv_algo_force(th_ctx(), "fft"));
    check_fft("Conv4 block 0", shape(2, 3, 10, 10, 64, 3, 1), 1, 0);
    check_fft("Conv4 block 3", shape(2, 64, 10, 10, 64, 3, 1), 1, 0);
    check_fft("ResNet layer4", shape(1, 64, 7, 7, 96, 3, 1), 0, 0);
    check_fft("7x7 kernel", shape(2, 3, 6, 6, 8, 7, 3), 1, 0);
}

/* 1x1 planes, a 1x1 kernel, odd planes and channel counts, batch 1, padding 0 and 2, and a
 * workspace bound of one image per chunk (3 images: three chunks). */
static void test_fft_odd_shapes(void **state) {
    (void)state;
    if (!fft_here()) return;
    TH_OK(fcl_conv_algo_force(th_ctx(), "fft"));
    check_fft("1x1 plane", shape(2, 5, 1, 1, 3, 3, 1), 1, 0);
    check_fft("odd plane", shape(1, 7, 7, 8, 9, 3, 1), 1, 0);
    if (!th_small()) {
        check_fft("1x1 kernel", shape(2, 6, 9, 10, 4, 1, 0), 1, 0);
        check_fft("5x5, pad 2", shape(2, 4, 8, 7, 3, 5, 2), 0, 0);
        check_fft("no padding", shape(3, 3, 9, 10, 5, 3, 0), 1, 0);
    }
    /* planes 12x12 (rows of 14 floats, 672 B a plane): the kernels' spectra 15 planes (12 KiB
     * aligned), an image 8 planes + two alignments */
    check_fft("chunks", shape(3, 3, 10, 10, 5, 3, 1), 1, 12288 + 8 * 672 + 8192);
}

/* The workspace the table reports is what a run allocates (the planner's exactness). */
static void test_fft_workspace(void **state) {
    (void)state;
    if (!fft_here()) return;
    ref_conv_shape s = shape(2, 5, 7, 8, 6, 3, 1);
    fcl_conv_geom g = {.n = s.n,
                       .cin = s.cin,
                       .h = s.h,
                       .w = s.w,
                       .cout = s.cout,
                       .kh = 3,
                       .kw = 3,
                       .oh = s.oh,
                       .ow = s.ow,
                       .stride = 1,
                       .pad = 1,
                       .taps = s.cin * 9,
                       .plane = s.oh * s.ow,
                       .host = 0,
                       .limit = FCL_CONV_WORKSPACE_DEFAULT,
                       .ctx = th_ctx()};
    const fcl_conv_algo *fft = fcl_conv_algo_find("fft", 0);
    assert_non_null(fft);
    assert_true(fcl_conv_algo_eligible(fft, &g, FCL_CONV_FORWARD));
    size_t planned = fft->workspace(&g, FCL_CONV_FORWARD);
    /* planes 9x10 (rows of 12 floats, 432 B): kernels 30 planes (16 KiB aligned), inputs 10
     * planes (8 KiB), outputs 12 (8 KiB), and clFFT's temporary buffer if it takes one */
    assert_true(planned >= 32768);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, 3, 3};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, Y;
    TH_OK(fcl_tensor_alloc(th_ctx(), &X, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &W, FCL_MEM_ACTIVATION, 4, sw));
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_conv_algo_force(th_ctx(), "fft"));
    fcl_arena_reset_peak(th_ctx()->arena);
    size_t before = fcl_arena_stats_get(th_ctx()->arena)->in_use;
    fcl_conv2d_params p = {1, 1, 0};
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &p, &Y));
    size_t peak = fcl_arena_stats_get(th_ctx()->arena)->peak;
    print_message("  workspace planned %zu B, allocated %zu B\n", planned, peak - before);
    assert_int_equal(peak - before, planned);
    th_free(&Y), th_free(&W), th_free(&X);
}

/* Where clFFT fails (its set-up, or wrong results), the probe makes `fft` ineligible and
 * forcing it names the algorithms that remain; a good probe afterwards brings it back. */
static void test_fft_probe_fault(void **state) {
    (void)state;
    int works = fcl_conv_fft_usable(th_ctx());
    ref_conv_shape s = shape(1, 2, 6, 6, 3, 3, 1);
    int sx[4] = {1, 2, 6, 6}, sw[4] = {3, 2, 3, 3}, sy[4] = {1, 3, s.oh, s.ow};
    fcl_tensor X, W, Y;
    TH_OK(fcl_tensor_alloc(th_ctx(), &X, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &W, FCL_MEM_ACTIVATION, 4, sw));
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    fcl_conv2d_params p = {1, 1, 0};
    for (int fault = 1; fault <= 2; fault++) {
        fcl_conv_fft_reprobe(th_ctx(), fault);
        assert_false(fcl_conv_fft_usable(th_ctx()));
        print_message("  fault %d: %s\n", fault, fcl_conv_fft_why(th_ctx()));
        assert_non_null(strstr(fcl_conv_fft_why(th_ctx()), "clFFT"));
        TH_OK(fcl_conv_algo_force(th_ctx(), "fft"));
        assert_int_equal(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &p, &Y), FEWCL_ERR_ARGUMENT);
        assert_non_null(strstr(fewcl_last_error(), "eligible there: im2col"));
        TH_OK(fcl_conv_algo_force(th_ctx(), "fft,im2col"));
        TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &p, &Y));
        assert_string_equal(fcl_conv_algo_last(th_ctx(), FCL_CONV_FORWARD)->name, "im2col");
    }
    fcl_conv_fft_reprobe(th_ctx(), 0);
    assert_int_equal(fcl_conv_fft_usable(th_ctx()), works);
    th_free(&Y), th_free(&W), th_free(&X);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fft_model_shapes, unforce),
        cmocka_unit_test_teardown(test_fft_odd_shapes, unforce),
        cmocka_unit_test_teardown(test_fft_workspace, unforce),
        cmocka_unit_test_teardown(test_fft_probe_fault, unforce),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
