/* The convolution's algorithm table (lib/ops/conv_algo.h): Winograd F(2x2,3x3), F(3x3,3x3)
 * (host path only) and F(4x4,3x3) in each direction against the C references, on the host
 * path and on the OpenCL path (lib/ops/conv_winograd_cl.c, which follows the host's order of
 * operations, so the roundings counted below are its own too, but for F(4x4)'s weight
 * transforms, counted apart; its GEMMs sum in any order, which the count allows: a sum of n
 * terms in any order rounds at most n − 1 times on any path); the OpenCL entries' workspace
 * and plans against their allocations; the overrides' errors, the find database's file
 * handling, and plans that stay exact while the find step runs.
 *
 * Winograd's rounding error. Every step of the algorithm is a sum or a product (the ½ of G
 * are exact), so by the componentwise analysis of such programs (Higham, "Accuracy and
 * Stability of Numerical Algorithms", §3.1: each computed term carries at most one factor
 * (1 + δ), |δ| ≤ u, per operation on its path) the float32 result obeys
 *     |ŷ − y| ≤ γ_T · ȳ,   γ_T = T·u / (1 − T·u),  u = 2⁻²⁴,
 * where y is the exact result, ȳ the same program run on absolute values (inputs and
 * transform entries: ref_winograd with abs = 1) and T the most roundings on any path from an
 * input to an output; a product carries both factors' roundings plus its own:
 *   forward   G w Gᵀ 4 (two passes of a 3-term sum), Bᵀ d B 2 (two passes of a 2-term sum),
 *             product 1, Σ over Cin (Cin − 1), Aᵀ M A with the bias 5:     T = Cin + 11
 *   data      G w Gᵀ 4, A dY Aᵀ 2, product 1, Σ over Cout (Cout − 1), B dV Bᵀ 4 (3-term
 *             sums), a pixel's ≤ 2x2 overlapping tiles 2:                  T = Cout + 12
 *   weights   Bᵀ d B 2 and A dY Aᵀ 2, product 1, Σ over the N·T tiles (N·T − 1, in any
 *             order, threads' partial sums included), Gᵀ dU G 4, + old dW 1: T = N·tiles + 9
 * F(4x4,3x3) (lib/ops/conv_winograd4_host.c): U = G w Gᵀ and Gᵀ dU G run in double and
 * round once (counted 2: the rounding, and the double sums' error far below u); the data
 * transforms in float, a pass's output being a sum of ≤ 6 terms with integer coefficients
 * (×2, ×4, ×8 exact, ×5 one rounding):
 *   forward   U 2, Bᵀ d B 6 (two passes, ≤ 3 roundings each), product 1, Σ over Cin
 *             (Cin − 1), Aᵀ M A 8 (two passes of ≤ 5 terms), + bias 1:      T = Cin + 17
 *   data      U 2, A dY Aᵀ 6, product 1, Σ over Cout (Cout − 1), B dV Bᵀ 10 (two passes,
 *             ≤ 5 roundings each), a pixel's ≤ 2x2 overlapping tiles 4:    T = Cout + 22
 *   weights   Bᵀ d B 6 and A dY Aᵀ 6, product 1, Σ over the N·T tiles (N·T − 1), Gᵀ dU G
 *             2, + old dW 1:                                                T = N·tiles + 15
 * F(3x3,3x3) (lib/ops/conv_winograd3_host.c, host path only) as F(4x4), with 5-point passes
 * (roundings per pass: Bᵀ d ≤ 3, a sum of ≤ 4 terms or of 3 with one ×3; B v ≤ 4; Aᵀ m ≤ 3;
 * A v ≤ 2; ×2 and ×4 exact):
 *   forward   U 2, Bᵀ d B 6, product 1, Σ over Cin (Cin − 1), Aᵀ M A 6, + bias 1: T = Cin + 15
 *   data      U 2, A dY Aᵀ 4, product 1, Σ over Cout (Cout − 1), B dV Bᵀ 8, a pixel's ≤ 2x2
 *             overlapping tiles 4:                                          T = Cout + 18
 *   weights   Bᵀ d B 6 and A dY Aᵀ 4, product 1, Σ over the N·T tiles (N·T − 1), Gᵀ dU G 2,
 *             + old dW 1:                                                   T = N·tiles + 13
 * On the OpenCL path (cl/conv_winograd.cl) F(4x4,3x3)'s weight transforms run in float (a
 * device need not have doubles): G's entries are rounded to floats once (a factor (1 + δ) per
 * product, counted as a rounding), so a pass G w of ≤ 3 terms per row takes ≤ 4 roundings
 * (entry, product, 2 sums) and U = G w Gᵀ 8 instead of 2: T = Cin + 23 and Cout + 28; a pass
 * of Gᵀ dU of ≤ 5 terms per column (entry, product, 4 sums) 6, Gᵀ dU G 12 instead of 2:
 * T = N·tiles + 25.
 * (th_gamma adds one more rounding for the final store). ȳ is larger than the direct
 * convolution's Σ|w||x| (the transforms mix neighbours with weights up to 1 and ½ in F(2,3),
 * up to 8 and 5 in F(4,3)), which is Winograd's known price and grows with the tile: the test
 * prints the error against the bound and in units of u·Σ|w||x| so the growth is visible.
 * Against the direct reference the exact results agree to double rounding (checked first,
 * 1e-12 relative). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ops/conv.h"
#include "ops/conv_algo.h"
#include "ops/conv_find.h"
#include "ops/conv_winograd.h"
#include "ops/gemm_host.h"
#include "plan/plan.h"
#include "ref/ref_conv.h"
#include "ref/ref_winograd.h"
#include "runtime/arena.h"

static ref_conv_shape shape(int n, int cin, int h, int w, int cout, int pad) {
    ref_conv_shape s = {.n = n,
                        .cin = cin,
                        .h = h,
                        .w = w,
                        .cout = cout,
                        .kh = 3,
                        .kw = 3,
                        .stride = 1,
                        .pad = pad};
    ref_conv_shape_init(&s);
    return s;
}

static float *random_floats(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    th_random(x, n, seed, lo, hi);
    return x;
}

static double *abs_of(const double *x, size_t n) {
    double *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = fabs(x[i]);
    return a;
}

/* max |got − want| / bound, and max |got − want| / direct (Σ|w||x|): how close to the
 * bound, and how large the error is in the direct algorithm's own terms. */
static void report(const char *what, const float *got, const double *want, const double *bound,
                   const double *direct, size_t n) {
    double to_bound = 0, to_direct = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (bound[i] > 0) to_bound = fmax(to_bound, e / bound[i]);
        if (direct[i] > 0) to_direct = fmax(to_direct, e / direct[i]);
    }
    th_assert_bound(what, got, want, bound, n);
    print_message("    %-9s error/bound %.2e, error/(Σ|w||x|·u) %.2f\n", what, to_bound,
                  to_direct / 0x1.0p-24);
}

/* The algorithm's name of F(m x m, 3x3). */
static const char *wino_name(int m) {
    return m == 4 ? "winograd4" : m == 3 ? "winograd3" : "winograd2";
}

/* The workspace bound of check_winograd's calls (0: the default). */
static size_t winograd_bound;

/* One shape through the device's convolution with `algo` forced, all three directions, each
 * against the direct reference with Winograd's bound. */
static void check_winograd(const char *name, int m, ref_conv_shape s, int bias) {
    size_t nx = (size_t)s.n * s.cin * s.h * s.w, nw = (size_t)s.cout * s.cin * 9;
    size_t ny = (size_t)s.n * s.cout * s.oh * s.ow;
    size_t nt = (size_t)((s.oh + m - 1) / m) * ((s.ow + m - 1) / m);
    const char *algo = wino_name(m);
    float *x = random_floats(nx, 700, -1, 1), *w = random_floats(nw, 701, -0.5f, 0.5f);
    float *b = random_floats(s.cout, 702, -0.5f, 0.5f), *dy = random_floats(ny, 703, -1, 1);
    float *dw0 = random_floats(nw, 704, -1, 1);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, 3, 3};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, B, Y, DY, DX, DW;
    th_upload(&X, 4, sx, x), th_upload(&W, 4, sw, w), th_upload(&B, 1, &s.cout, b);
    th_upload(&DY, 4, sy, dy), th_upload(&DW, 4, sw, dw0);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    fcl_conv2d_params p = {1, s.pad, winograd_bound};
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, bias ? &B : NULL, &p, &Y));
    TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &DY, &p, &DX, &DW, NULL));
    for (int d = 0; d < FCL_CONV_DIRS; d++)
        assert_string_equal(fcl_conv_algo_last(th_ctx(), d)->name, algo);
    float *y = th_download(&Y), *dx = th_download(&DX), *dw = th_download(&DW);

    double *xd = th_to_double(x, nx), *wd = th_to_double(w, nw), *bd = th_to_double(b, s.cout);
    double *dyd = th_to_double(dy, ny), *dw0d = th_to_double(dw0, nw);
    double *ax = abs_of(xd, nx), *aw = abs_of(wd, nw), *ab = abs_of(bd, s.cout);
    double *ady = abs_of(dyd, ny), *adw0 = abs_of(dw0d, nw);
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    double *rdw = malloc(nw * sizeof *rdw), *wy = malloc(ny * sizeof *wy);
    double *wdx = malloc(nx * sizeof *wdx), *wdw = malloc(nw * sizeof *wdw);
    double *by = malloc(ny * sizeof *by), *bdx = malloc(nx * sizeof *bdx);
    double *bdw = malloc(nw * sizeof *bdw), *cy = malloc(ny * sizeof *cy);
    double *cdx = malloc(nx * sizeof *cdx), *cdw = malloc(nw * sizeof *cdw);
    ref_conv2d_forward(&s, xd, wd, bias ? bd : NULL, ry);
    ref_conv2d_backward(&s, xd, wd, dyd, rdx, rdw, NULL);
    /* The exact Winograd results are the convolution's (up to double rounding, relative to
     * the program's magnitudes ȳ: F(4,3)'s 1/6 are not binary fractions, so a tap that reads
     * only padding comes out as a tiny residue rather than 0). */
    ref_winograd_forward(&s, m, xd, wd, bias ? bd : NULL, wy, 0);
    ref_winograd_data(&s, m, wd, dyd, wdx, 0);
    ref_winograd_weights(&s, m, xd, dyd, wdw, 0);
    ref_conv2d_forward(&s, ax, aw, bias ? ab : NULL, cy); /* the direct sums' magnitudes */
    ref_conv2d_backward(&s, ax, aw, ady, cdx, cdw, NULL);
    ref_winograd_forward(&s, m, ax, aw, bias ? ab : NULL, by, 1); /* ȳ, for the bounds */
    ref_winograd_data(&s, m, aw, ady, bdx, 1);
    ref_winograd_weights(&s, m, ax, ady, bdw, 1);
    for (size_t i = 0; i < ny; i++)
        assert_true(fabs(wy[i] - ry[i]) <= 1e-12 * by[i]);
    for (size_t i = 0; i < nx; i++)
        assert_true(fabs(wdx[i] - rdx[i]) <= 1e-12 * bdx[i]);
    for (size_t i = 0; i < nw; i++)
        assert_true(fabs(wdw[i] - rdw[i]) <= 1e-12 * bdw[i]);
    /* The bounds: γ_T times the program on absolute values. */
    static const int roundings[3][3] = {{11, 12, 9}, {15, 18, 13}, {17, 22, 15}}; /* F(m) */
    const int *t = roundings[m - 2];
    int tiles = (int)((size_t)s.n * nt), path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    int cl4 = m == 4 && path != FCL_GEMM_HOST; /* F(4x4,3x3)'s weight transforms in float */
    double gf = th_gamma(s.cin + t[0] + (cl4 ? 6 : 0));
    double gd = th_gamma(s.cout + t[1] + (cl4 ? 6 : 0));
    double gw = th_gamma(tiles + t[2] + (cl4 ? 10 : 0));
    for (size_t i = 0; i < ny; i++)
        by[i] *= gf;
    for (size_t i = 0; i < nx; i++)
        bdx[i] *= gd;
    for (size_t i = 0; i < nw; i++) {
        rdw[i] += dw0d[i], bdw[i] = gw * (bdw[i] + adw0[i]), cdw[i] += adw0[i];
    }
    print_message("  %s, %s: x [%d,%d,%d,%d], W [%d,%d,3,3], padding %d%s\n", algo, name, s.n,
                  s.cin, s.h, s.w, s.cout, s.cin, s.pad, bias ? ", bias" : "");
    report("y", y, ry, by, cy, ny);
    report("dx", dx, rdx, bdx, cdx, nx);
    report("dW", dw, rdw, bdw, cdw, nw);
    free(y), free(dx), free(dw), free(x), free(w), free(b), free(dy), free(dw0);
    double *all[] = {xd,  wd,  bd, dyd, dw0d, ax, aw,  ab,  ady, adw0, ry,
                     rdx, rdw, wy, wdx, wdw,  by, bdx, bdw, cy,  cdx,  cdw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    th_free(&DX), th_free(&Y), th_free(&DW), th_free(&DY), th_free(&B), th_free(&W), th_free(&X);
}

/* Whether this context's path has F(m x m, 3x3): the host path all three, the OpenCL path
 * F(2x2) and F(4x4). */
static int winograd_here(int m) {
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    const char *name = wino_name(m);
    int here = fcl_conv_algo_find(name, path == FCL_GEMM_HOST) != NULL;
    if (!here)
        print_message("  skipped: no %s on the %s path\n", name,
                      path == FCL_GEMM_HOST ? "host" : "OpenCL");
    return here;
}

/* The ResNets' and ConvNets' 3x3 stride-1 layers (batch reduced, planes as in the models:
 * ResNet-34 at 224 has 56, 28, 14 and 7 pixel planes at 64..512 channels, Conv4 at 84 has 84,
 * 42, 21, 10 at 64; the widest two of ResNet's, and Conv4's at 21 and 10, keep the test's
 * double-precision references within CI's time). */
static void test_winograd_model_shapes(void **state) {
    (void)state;
    for (int m = 2; m <= 4; m++) {
        if (!winograd_here(m)) continue;
        TH_OK(fcl_conv_algo_force(th_ctx(), wino_name(m)));
        /* Under oclgrind (th_small) each of these took one to two minutes (the batched
         * products' 64x64 tiles interpreted item by item): one model shape there, F(2x2)'s;
         * the odd-shape test runs the same kernels of both sizes on small planes. */
        if (!th_small()) check_winograd("Conv4 block 0", m, shape(2, 3, 21, 21, 64, 1), 1);
        if (!th_small() || m == 2)
            check_winograd("Conv4 block 3", m, shape(2, 64, 10, 10, 64, 1), 1);
        /* Under the sanitizers, whose instrumented double references of these two took
         * most of conv_algo.clblast's 140 s in CI, the smaller shapes run the same code. */
        if (!th_small() && !th_sanitized()) {
            check_winograd("ResNet layer3", m, shape(1, 256, 14, 14, 256, 1), 0);
            check_winograd("ResNet layer4", m, shape(1, 512, 7, 7, 512, 1), 0);
        }
    }
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
}

/* 1x1 planes, odd planes (a partial tile on each side), channel counts that fit no block,
 * batch 1, padding 0 (Conv4NP) and 2. */
static void test_winograd_odd_shapes(void **state) {
    (void)state;
    for (int m = 2; m <= 4; m++) {
        if (!winograd_here(m)) continue;
        TH_OK(fcl_conv_algo_force(th_ctx(), wino_name(m)));
        /* Under oclgrind (each shape ~10 s there) the kernels' edge cases once per size:
         * F(2x2) a 1x1 plane, no padding and several tiles each way; F(4x4) partial tiles
         * (odd plane) and padding 2. */
        int small = th_small(), f2 = m == 2;
        if (!small || f2) check_winograd("1x1 plane", m, shape(2, 5, 1, 1, 3, 1), 1);
        if (!small || !f2) check_winograd("odd plane", m, shape(1, 7, 7, 5, 9, 1), 1);
        if (!small || f2) check_winograd("no padding", m, shape(3, 3, 8, 9, 5, 0), 1);
        if (!small || !f2) check_winograd("padding 2", m, shape(2, 4, 5, 6, 3, 2), 0);
        if (!small) check_winograd("3x3 plane, no padding", m, shape(1, 2, 3, 3, 2, 0), 0);
        if (!small || f2) check_winograd("10x13 plane", m, shape(2, 3, 10, 13, 4, 1), 1);
    }
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
}

/* The host path's Winograd runs each share's images in passes whose buffers stay in cache
 * (4 MiB of V and M): with passes of one image, every direction within the bound of the
 * reference (the weight gradient's sum over tiles split at each image). */
static void test_winograd_host_passes(void **state) {
    (void)state;
    if (!th_host_path("the OpenCL path runs a chunk at once")) return;
    fcl_conv_host_wino_pass_bytes(1);
    for (int m = 2; m <= 4; m++) {
        TH_OK(fcl_conv_algo_force(th_ctx(), wino_name(m)));
        check_winograd("one-image passes", m, shape(5, 3, 7, 5, 6, 1), 1);
        check_winograd("one-image passes", m, shape(4, 8, 10, 13, 4, 0), 0);
    }
    fcl_conv_host_wino_pass_bytes(0);
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
}

/* Small planes split the channels over the threads instead of the images (phase by phase:
 * the transforms of a thread's channels, the GEMMs' rows of its output or input channels),
 * forced here on shapes whose channel counts cut the 16-channel blocks unevenly (5, 20 and 40
 * channels over FEWCL_HOST_THREADS = 3, see main), with one-image passes too: every direction
 * within the bound of the reference. */
static void test_winograd_host_split(void **state) {
    (void)state;
    if (!th_host_path("the OpenCL path runs a chunk at once")) return;
    fcl_conv_host_wino_split(1);
    for (int m = 2; m <= 4; m++) {
        TH_OK(fcl_conv_algo_force(th_ctx(), wino_name(m)));
        check_winograd("channels split", m, shape(3, 20, 3, 3, 40, 1), 1);
        check_winograd("channels split", m, shape(4, 40, 7, 5, 5, 0), 0);
        fcl_conv_host_wino_pass_bytes(1);
        check_winograd("channels split, one-image passes", m, shape(3, 5, 6, 6, 20, 1), 1);
        fcl_conv_host_wino_pass_bytes(0);
    }
    fcl_conv_host_wino_split(-1);
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
}

/* The workspace bound that holds U and exactly one image's V and M of F(m x m,3x3) (the host
 * path's layout, which the OpenCL path's shares). */
static size_t one_image_bound(ref_conv_shape s, int m) {
    size_t tiles = (size_t)((s.oh + m - 1) / m) * ((s.ow + m - 1) / m), a2 = (m + 2) * (m + 2);
    return (a2 * (s.cin + s.cout) * tiles + a2 * s.cout * s.cin) * sizeof(float);
}

/* Chunks: a workspace bound holding one image's Winograd buffers runs the batch image by image
 * within the bound, with the results of one chunk (the same sums per output; the GEMMs' blocking
 * may differ with their width, so to the normalised-error tolerance, not bit for bit); and
 * every direction, image by image (the weight gradient summed over the chunks), within
 * Winograd's bound of the reference. */
static void test_winograd_chunks(void **state) {
    (void)state;
    if (!winograd_here(2)) return;
    TH_OK(fcl_conv_algo_force(th_ctx(), "winograd2"));
    ref_conv_shape s = shape(3, 4, 6, 6, 5, 1);
    size_t one = one_image_bound(s, 2);
    int sx[4] = {3, 4, 6, 6}, sw[4] = {5, 4, 3, 3}, sy[4] = {3, 5, 6, 6};
    size_t nx = 3 * 4 * 36, nw = 5 * 4 * 9, ny = 3 * 5 * 36;
    float *x = random_floats(nx, 800, -1, 1), *w = random_floats(nw, 801, -1, 1);
    fcl_tensor X, W, Y1, Y2;
    th_upload(&X, 4, sx, x), th_upload(&W, 4, sw, w);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y1, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y2, FCL_MEM_ACTIVATION, 4, sy));
    fcl_arena *arena = th_ctx()->arena;
    size_t base = fcl_arena_stats_get(arena)->in_use;
    fcl_arena_reset_peak(arena);
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &(fcl_conv2d_params){1, 1, one}, &Y1));
    size_t peak = fcl_arena_stats_get(arena)->peak - base;
    TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &(fcl_conv2d_params){1, 1, 0}, &Y2));
    print_message("  one-image chunks: workspace peak %zu bytes, bound %zu\n", peak, one);
    /* The workspace within the bound; on the OpenCL path CLBlast's temporary buffers come on
     * top of it, as for every algorithm's GEMMs (lib/ops/gemm.c), and are not the bound's. */
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    if (path == FCL_GEMM_HOST || path == FCL_GEMM_TILED)
        assert_true(peak <= one + 2 * th_ctx()->limits.base_align);
    float *y1 = th_download(&Y1), *y2 = th_download(&Y2);
    double *want = th_to_double(y2, ny);
    th_assert_normerr("one-image chunks vs one chunk", y1, want, ny, TH_NORMERR);
    free(want);
    free(y1), free(y2), free(x), free(w);
    th_free(&Y2), th_free(&Y1), th_free(&W), th_free(&X);
    ref_conv_shape shapes[] = {s, shape(4, 3, 7, 5, 6, 0), shape(2, 5, 9, 4, 3, 1)};
    for (int m = 2; m <= 4; m++) {
        if (!winograd_here(m)) continue;
        TH_OK(fcl_conv_algo_force(th_ctx(), wino_name(m)));
        for (int i = 0; i < 3; i++) {
            /* Under oclgrind one shape, F(2x2)'s: the chunk driver is the same code for both
             * sizes (conv_winograd_cl.c), and F(4x4)'s one-image chunks took a minute there. */
            if (th_small() && (m == 4 || i != 0)) continue;
            winograd_bound = one_image_bound(shapes[i], m);
            check_winograd("one-image chunks", m, shapes[i], i != 1);
        }
    }
    winograd_bound = 0;
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
}

/* The OpenCL path's winograd2 and winograd4: the workspace the table reports is what a run
 * allocates (the planner's exactness), in each direction. With fewcl's tiled GEMM nothing else is
 * allocated, so the peak is the workspace rounded up to the arena's alignment; CLBlast's temporary
 * buffers come on top (lib/ops/gemm.c), so there the peak is at least the workspace. */
static void cl_workspace(int m) {
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    ref_conv_shape s = shape(3, 5, 9, 7, 6, 1);
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
    const char *name = wino_name(m);
    const fcl_conv_algo *wino = fcl_conv_algo_find(name, 0);
    assert_non_null(wino);
    /* V and M of the 3 images' tiles (9x7 outputs: 5x4 tiles of 2x2, 3x2 of 4x4), α² planes
     * each, and U: α²·(5 + 6)·tiles + α²·30 */
    size_t a2 = (size_t)(m + 2) * (m + 2), tiles = m == 4 ? 6 : 20;
    size_t planned = wino->workspace(&g, FCL_CONV_FORWARD);
    assert_int_equal(planned, (a2 * 11 * 3 * tiles + a2 * 30) * sizeof(float));
    for (int d = 0; d < FCL_CONV_DIRS; d++) {
        assert_true(fcl_conv_algo_eligible(wino, &g, d));
        assert_int_equal(wino->workspace(&g, d), planned);
    }
    g.stride = 2;
    assert_false(fcl_conv_algo_eligible(wino, &g, FCL_CONV_FORWARD));
    g.stride = 1, g.limit = (a2 * 11 * tiles + a2 * 30) * sizeof(float); /* one image beside U */
    assert_int_equal(wino->workspace(&g, FCL_CONV_FORWARD), g.limit);
    g.limit--; /* not one image */
    assert_false(fcl_conv_algo_eligible(wino, &g, FCL_CONV_FORWARD));
    assert_int_equal(wino->workspace(&g, FCL_CONV_FORWARD), 0);
    int sx[4] = {s.n, s.cin, s.h, s.w}, sw[4] = {s.cout, s.cin, 3, 3};
    int sy[4] = {s.n, s.cout, s.oh, s.ow};
    fcl_tensor X, W, Y, DX, DW;
    TH_OK(fcl_tensor_alloc(th_ctx(), &X, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &W, FCL_MEM_PARAM, 4, sw));
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_GRAD, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DW, FCL_MEM_GRAD, 4, sw));
    TH_OK(fcl_fill(th_ctx(), &X, 0.5f)), TH_OK(fcl_fill(th_ctx(), &W, 0.25f));
    TH_OK(fcl_fill(th_ctx(), &Y, 1.0f)), TH_OK(fcl_fill(th_ctx(), &DW, 0.0f));
    TH_OK(fcl_conv_algo_force(th_ctx(), name));
    int exact = path == FCL_GEMM_TILED && fcl_gemm_tiled_runs(th_ctx(), 0, 0) &&
                fcl_gemm_tiled_runs(th_ctx(), 1, 0) && fcl_gemm_tiled_runs(th_ctx(), 0, 1);
    size_t align = fcl_arena_align(th_ctx()->arena),
           rounded = (planned + align - 1) / align * align;
    for (int call = 0; call < 3; call++) { /* forward; dx and dW together; dW alone */
        fcl_conv2d_params p = {1, 1, 0};
        fcl_arena_reset_peak(th_ctx()->arena);
        size_t before = fcl_arena_stats_get(th_ctx()->arena)->in_use;
        if (call == 0)
            TH_OK(fcl_conv2d_forward(th_ctx(), &X, &W, NULL, &p, &Y));
        else
            TH_OK(fcl_conv2d_backward(th_ctx(), &X, &W, &Y, &p, call == 1 ? &DX : NULL, &DW, NULL));
        size_t peak = fcl_arena_stats_get(th_ctx()->arena)->peak - before;
        print_message("  %s call %d: workspace planned %zu B, peak %zu B%s\n", name, call, planned,
                      peak, exact ? "" : " (with CLBlast's buffers)");
        assert_true(peak >= planned);
        if (exact) assert_int_equal(peak, rounded); /* the arena's blocks are whole alignments */
    }
    TH_OK(fcl_conv_algo_force(th_ctx(), NULL));
    th_free(&DW), th_free(&DX), th_free(&Y), th_free(&W), th_free(&X);
}

static void test_winograd_cl_workspace(void **state) {
    (void)state;
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    if (path == FCL_GEMM_HOST) {
        print_message("  skipped: the host path (its Winograd is conv_winograd_host.c's)\n");
        return;
    }
    cl_workspace(2);
    if (!th_small()) cl_workspace(4); /* under oclgrind the same code: workspace sizes */
}

/* One training step's convolutions with `name` forced: forward, both gradients, dW alone. */
static fewcl_status winograd_step(fewcl_context *ctx, const char *name) {
    int sx[4] = {3, 5, 9, 7}, sw[4] = {6, 5, 3, 3}, sy[4] = {3, 6, 9, 7};
    fcl_tensor x, w, b, y, dx, dw, db;
    FCL_TRY(fcl_conv_algo_force(ctx, name));
    FCL_TRY(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, sx));
    FCL_TRY(fcl_tensor_alloc(ctx, &w, FCL_MEM_PARAM, 4, sw));
    FCL_TRY(fcl_tensor_alloc(ctx, &b, FCL_MEM_PARAM, 1, &sw[0]));
    FCL_TRY(fcl_tensor_alloc(ctx, &y, FCL_MEM_ACTIVATION, 4, sy));
    FCL_TRY(fcl_tensor_alloc(ctx, &dx, FCL_MEM_GRAD, 4, sx));
    FCL_TRY(fcl_tensor_alloc(ctx, &dw, FCL_MEM_GRAD, 4, sw));
    FCL_TRY(fcl_tensor_alloc(ctx, &db, FCL_MEM_GRAD, 1, &sw[0]));
    fcl_tensor *all[] = {&x, &w, &b, &y, &dx, &dw, &db};
    for (int i = 0; i < 7; i++)
        FCL_TRY(fcl_fill(ctx, all[i], 0.25f));
    fcl_conv2d_params p = {1, 1, 0};
    FCL_TRY(fcl_conv2d_forward(ctx, &x, &w, &b, &p, &y));
    FCL_TRY(fcl_conv2d_backward(ctx, &x, &w, &y, &p, &dx, &dw, &db));
    FCL_TRY(fcl_conv2d_backward(ctx, &x, &w, &y, &p, NULL, &dw, NULL));
    for (int i = 6; i >= 0; i--)
        fcl_tensor_free(ctx, all[i]);
    return FEWCL_OK;
}

/* A plan of the OpenCL path's Winograd runs is the real run's peak, by category (the planner
 * counts the dry run's allocations: the workspace and the GEMMs' temporary buffers). */
static void test_winograd_cl_plan(void **state) {
    (void)state;
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    if (path == FCL_GEMM_HOST) {
        print_message("  skipped: the host path\n");
        return;
    }
    /* Under oclgrind left out: the planner's count is host logic (the plain, GPU-profile and
     * sanitizer runs check it), and each fresh context's kernels took ~25 s there. */
    if (th_small()) {
        print_message("  skipped: FEWCL_TEST_SMALL (oclgrind)\n");
        return;
    }
    for (int m = 2; m <= 4; m += 2) { /* the OpenCL path's two */
        const char *name = wino_name(m);
        fewcl_context *ctx;
        TH_OK(fewcl_context_create(NULL, &ctx));
        fcl_arena_stats plan;
        TH_OK(fcl_plan_begin(ctx, 0));
        TH_OK(winograd_step(ctx, name));
        fcl_plan_end(ctx, &plan);
        fcl_arena_reset_peak(ctx->arena);
        size_t base = fcl_arena_stats_get(ctx->arena)->in_use;
        TH_OK(winograd_step(ctx, name));
        TH_OK(fewcl_finish(ctx));
        assert_string_equal(fcl_conv_algo_last(ctx, FCL_CONV_WEIGHTS)->name, name);
        const fcl_arena_stats *real = fcl_arena_stats_get(ctx->arena);
        print_message("  %s: planned peak %zu bytes, measured %zu\n", name, plan.peak,
                      real->peak - base);
        assert_int_equal(plan.peak, real->peak - base);
        for (int c = 0; c < FCL_MEM_CATEGORIES; c++)
            assert_int_equal(plan.by_category_at_peak[c], real->by_category_at_peak[c]);
        fewcl_context_destroy(ctx);
    }
}

/* A small convolution whose algorithm choice is under test: runs forward once. */
static fewcl_status one_conv(fewcl_context *ctx, int k, int stride) {
    fcl_tensor x, w, y;
    int side = 6, out = fcl_conv2d_out_size(side, k, stride, k / 2);
    FCL_TRY(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, (int[]){2, 3, side, side}));
    FCL_TRY(fcl_tensor_alloc(ctx, &w, FCL_MEM_PARAM, 4, (int[]){4, 3, k, k}));
    FCL_TRY(fcl_tensor_alloc(ctx, &y, FCL_MEM_ACTIVATION, 4, (int[]){2, 4, out, out}));
    FCL_TRY(fcl_fill(ctx, &x, 0.5f));
    FCL_TRY(fcl_fill(ctx, &w, 0.25f));
    fewcl_status s =
        fcl_conv2d_forward(ctx, &x, &w, NULL, &(fcl_conv2d_params){stride, k / 2, 0}, &y);
    fcl_tensor_free(ctx, &y), fcl_tensor_free(ctx, &w), fcl_tensor_free(ctx, &x);
    return s;
}

/* FEWCL_CONV_ALGO: an unknown name is a usage error listing the algorithms; a forced one that
 * cannot run a call says so and names the eligible ones; a list falls back in order. */
static void test_forced_algorithm_errors(void **state) {
    (void)state;
    fewcl_context *ctx;
    setenv("FEWCL_CONV_ALGO", "fastest", 1);
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(one_conv(ctx, 3, 1), FEWCL_ERR_ARGUMENT);
    print_message("  %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "FEWCL_CONV_ALGO='fastest'"));
    assert_non_null(strstr(fewcl_last_error(), "im2col, shifted, winograd2"));
    fewcl_context_destroy(ctx);
    setenv("FEWCL_CONV_ALGO", "im2col,,shifted", 1); /* an empty name is not one */
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(one_conv(ctx, 3, 1), FEWCL_ERR_ARGUMENT);
    fewcl_context_destroy(ctx);
    setenv("FEWCL_CONV_ALGO", "winograd2", 1);
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(one_conv(ctx, 1, 2), FEWCL_ERR_ARGUMENT); /* 1x1 stride 2: not Winograd */
    print_message("  %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "cannot run the forward convolution"));
    assert_non_null(strstr(fewcl_last_error(), "eligible there: im2col"));
    fewcl_context_destroy(ctx);
    setenv("FEWCL_CONV_ALGO", "winograd2,im2col", 1);
    TH_OK(fewcl_context_create(NULL, &ctx));
    TH_OK(one_conv(ctx, 1, 2));
    assert_string_equal(fcl_conv_algo_last(ctx, FCL_CONV_FORWARD)->name, "im2col");
    TH_OK(one_conv(ctx, 3, 1)); /* both paths have winograd2 */
    assert_string_equal(fcl_conv_algo_last(ctx, FCL_CONV_FORWARD)->name, "winograd2");
    fewcl_context_destroy(ctx);
    unsetenv("FEWCL_CONV_ALGO");
    setenv("FEWCL_FIND", "sometimes", 1);
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(one_conv(ctx, 3, 1), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "FEWCL_FIND='sometimes'"));
    fewcl_context_destroy(ctx);
    setenv("FEWCL_FIND", "off", 1);
}

/* A fresh cache folder for the find database; 0 where the caller turned the cache off (the
 * oclgrind runs: oclgrind's program binaries are not to be cached), then the file handling,
 * which runs no kernels, is left to the other runs. */
static int fresh_cache(char *dir, size_t size) {
    const char *cache = getenv("FEWCL_CACHE");
    if (cache && strcmp(cache, "off") == 0) {
        print_message("  skipped: FEWCL_CACHE=off\n");
        return 0;
    }
    snprintf(dir, size, "/tmp/fewcl-test-find-XXXXXX");
    assert_non_null(mkdtemp(dir));
    setenv("FEWCL_CACHE_DIR", dir, 1);
    setenv("FEWCL_FIND", "on", 1);
    return 1;
}

static void remove_cache(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("FEWCL_CACHE_DIR");
    setenv("FEWCL_FIND", "off", 1);
}

/* The find database on disk: written after the first choice, read back by the next context,
 * and, damaged, ignored and rewritten. No timing is asserted: which algorithm wins is the
 * machine's business; the file's handling is not. */
static void test_find_database_file(void **state) {
    (void)state;
    char dir[64], path[800];
    if (!fresh_cache(dir, sizeof dir)) return;
    fewcl_context *ctx;
    fcl_conv_find_db *db;
    TH_OK(fewcl_context_create(NULL, &ctx));
    TH_OK(one_conv(ctx, 3, 1));
    TH_OK(fcl_conv_find_db_open(ctx, &db));
    snprintf(path, sizeof path, "%s", fcl_conv_find_db_path(db));
    int path_kind;
    TH_OK(fcl_gemm_path(ctx, &path_kind));
    /* The host path always has a choice for this 3x3 stride-1 call; the OpenCL path has one
     * where fft or implicit can run it too on this implementation (rusticl: fft), else only
     * im2col and nothing to record. */
    int choices = fcl_conv_find_db_count(db);
    print_message("  %s: %d choice(s)\n", path, choices);
    if (path_kind == FCL_GEMM_HOST)
        assert_int_equal(choices, 1);
    else
        assert_true(choices == 0 || choices == 1);
    assert_false(fcl_conv_find_db_was_damaged(db));
    fcl_conv_find_db_free(db);
    if (!choices) { /* the file handling without a choice to make: written directly */
        TH_OK(fcl_conv_find_db_open(ctx, &db));
        TH_OK(fcl_conv_find_db_put(db, "cl forward test", "im2col", 1.0));
        fcl_conv_find_db_free(db);
    }
    fewcl_context_destroy(ctx);
    /* Damage one byte of a choice: the checksum no longer matches. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -3, SEEK_END);
    fputc('#', f);
    fclose(f);
    TH_OK(fewcl_context_create(NULL, &ctx));
    TH_OK(fcl_conv_find_db_open(ctx, &db));
    assert_true(fcl_conv_find_db_was_damaged(db));
    assert_int_equal(fcl_conv_find_db_count(db), 0);
    fcl_conv_find_db_free(db);
    TH_OK(one_conv(ctx, 3, 1)); /* finds again (host), rewriting the file */
    if (!choices) {
        TH_OK(fcl_conv_find_db_open(ctx, &db));
        TH_OK(fcl_conv_find_db_put(db, "cl forward test", "im2col", 1.0));
        fcl_conv_find_db_free(db);
    }
    TH_OK(fcl_conv_find_db_open(ctx, &db));
    assert_false(fcl_conv_find_db_was_damaged(db));
    assert_int_equal(fcl_conv_find_db_count(db), 1);
    fcl_conv_find_db_free(db);
    fewcl_context_destroy(ctx);
    /* Not a database at all (truncated to its header's start): ignored, then rewritten. */
    f = fopen(path, "wb");
    fputs("FEWCL-CONV-FI", f);
    fclose(f);
    TH_OK(fewcl_context_create(NULL, &ctx));
    TH_OK(fcl_conv_find_db_open(ctx, &db));
    assert_true(fcl_conv_find_db_was_damaged(db));
    fcl_conv_find_db_free(db);
    fewcl_context_destroy(ctx);
    remove_cache(dir);
}

/* A plan made while the find step is on and the shapes are new makes the find's allocations
 * and then the largest eligible workspace: its peak is the real run's, whichever algorithm the
 * timing picks. */
static void test_plan_exact_with_find(void **state) {
    (void)state;
    char dir[64];
    if (!fresh_cache(dir, sizeof dir)) return;
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    fcl_arena_stats plan;
    TH_OK(fcl_plan_begin(ctx, 0));
    TH_OK(one_conv(ctx, 3, 1));
    fcl_plan_end(ctx, &plan);
    fcl_arena_reset_peak(ctx->arena);
    size_t base = fcl_arena_stats_get(ctx->arena)->in_use;
    TH_OK(one_conv(ctx, 3, 1));
    TH_OK(fewcl_finish(ctx));
    const fcl_arena_stats *real = fcl_arena_stats_get(ctx->arena);
    print_message("  planned peak %zu bytes, measured %zu\n", plan.peak, real->peak - base);
    assert_int_equal(plan.peak, real->peak - base);
    assert_int_equal(plan.by_category_at_peak[FCL_MEM_WORKSPACE],
                     real->by_category_at_peak[FCL_MEM_WORKSPACE]);
    fewcl_context_destroy(ctx);
    remove_cache(dir);
}

/* Teardown: no algorithm forced any more, even after a test that failed half-way. */
static int unforce(void **state) {
    (void)state;
    fcl_conv_host_wino_pass_bytes(0), fcl_conv_host_wino_split(-1); /* after a failed test */
    return fcl_conv_algo_force(th_ctx(), NULL) == FEWCL_OK ? 0 : -1;
}

/* The find step's choices exported from one context and imported into another, which then
 * runs the shape with the imported algorithm, not its own pick (replicas share choices so
 * that they compute the same bits); the import is kept in memory, not written to the file.
 * Where the call has a single algorithm (the OpenCL path) only the text's round trip is
 * checked. */
static void test_choices_export_import(void **state) {
    (void)state;
    char dir[64];
    if (!fresh_cache(dir, sizeof dir)) return;
    fewcl_context *a, *b;
    TH_OK(fewcl_context_create(NULL, &a));
    TH_OK(fewcl_context_create(NULL, &b));
    TH_OK(one_conv(a, 3, 1)); /* the find step times it, on the host path */
    char *text, *back;
    TH_OK(fcl_conv_algo_export(a, &text));
    int path;
    TH_OK(fcl_gemm_path(a, &path));
    char given[400], key[200] = "cl forward test", *tab;
    const char *other = "im2col";
    if (path == FCL_GEMM_HOST) {
        /* one line: "<key>\t<algorithm>\t<ms>"; import another eligible algorithm for it */
        assert_non_null(tab = strchr(text, '\t'));
        snprintf(key, sizeof key, "%.*s", (int)(tab - text), text);
        const fcl_conv_algo *mine = fcl_conv_algo_last(a, FCL_CONV_FORWARD);
        other = strcmp(mine->name, "im2col") ? "im2col" : "winograd2"; /* both run 3x3 */
        print_message("  %s chose %s; importing %s\n", key, mine->name, other);
    }
    snprintf(given, sizeof given, "%s\t%s\t1\n", key, other);
    TH_OK(fcl_conv_algo_import(b, given));
    TH_OK(fcl_conv_algo_export(b, &back));
    assert_non_null(strstr(back, given));
    if (path == FCL_GEMM_HOST) {
        TH_OK(one_conv(b, 3, 1));
        assert_string_equal(fcl_conv_algo_last(b, FCL_CONV_FORWARD)->name, other);
        fcl_conv_find_db *db; /* the file keeps what a timed */
        TH_OK(fcl_conv_find_db_open(b, &db));
        assert_string_equal(fcl_conv_find_db_get(db, key),
                            fcl_conv_algo_last(a, FCL_CONV_FORWARD)->name);
        fcl_conv_find_db_free(db);
    }
    assert_int_equal(fcl_conv_algo_import(b, "no tabs here\n"), FEWCL_ERR_ARGUMENT);
    assert_int_equal(fcl_conv_algo_import(b, "k\tnot-an-algorithm\t1\n"), FEWCL_ERR_ARGUMENT);
    free(text), free(back);
    fewcl_context_destroy(b);
    fewcl_context_destroy(a);
    remove_cache(dir);
}

int main(void) {
    /* Three host threads (unless the caller chose): the host path's shares and channel splits
     * then cut unevenly on any machine, whatever its core count. */
    setenv("FEWCL_HOST_THREADS", "3", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_winograd_model_shapes, unforce),
        cmocka_unit_test_teardown(test_winograd_odd_shapes, unforce),
        cmocka_unit_test_teardown(test_winograd_chunks, unforce),
        cmocka_unit_test_teardown(test_winograd_host_passes, unforce),
        cmocka_unit_test_teardown(test_winograd_host_split, unforce),
        cmocka_unit_test_teardown(test_winograd_cl_workspace, unforce),
        cmocka_unit_test(test_winograd_cl_plan),
        cmocka_unit_test(test_forced_algorithm_errors),
        cmocka_unit_test(test_find_database_file),
        cmocka_unit_test(test_choices_export_import),
        cmocka_unit_test(test_plan_exact_with_find),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
