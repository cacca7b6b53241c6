/* Max pooling forward (values and argmax) and backward against the C reference in double and
 * PyTorch's F.max_pool2d; the reference's gradient against finite differences.
 *
 * Tolerances: the forward selects an input, so the values and the indices must be equal
 * exactly. The backward sums dy over the outputs whose argmax a position is: with a 3x3/2
 * window at most 4 of them, so the float32 sum is within γ_4·Σ|dy| of the exact one
 * (th_gamma bound per element); against PyTorch, whose CPU kernel adds the same terms in
 * the same (output) order, it must agree to 1e-6 absolute. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/pool.h"
#include "ref/ref_conv.h"

static void assert_exact(const char *what, const float *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((double)got[i] == want[i])) {
            fprintf(stderr, "%s: element %zu is %.9g, expected exactly %.9g\n", what, i, got[i],
                    want[i]);
            fail();
        }
}

static double max_abs_error(const float *got, const double *want, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)got[i] - want[i]));
    return m;
}

/* Inputs from x_host (n values); returns y, idx and dx of the device. */
static void run_device(const ref_pool_shape *s, const float *x, const float *dy, float **y,
                       float **idx, float **dx) {
    int sx[4] = {s->n, s->c, s->h, s->w}, sy[4] = {s->n, s->c, s->oh, s->ow};
    fcl_tensor X, Y, I, DY, DX;
    th_upload(&X, 4, sx, x);
    th_upload(&DY, 4, sy, dy);
    TH_OK(fcl_tensor_alloc(th_ctx(), &Y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &I, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &DX, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_fill(th_ctx(), &DX, 12345.0f)); /* dx must be overwritten everywhere */
    fcl_pool2d_params p = {s->k, s->stride, s->pad};
    assert_int_equal(fcl_pool2d_out_size(s->h, &p), s->oh);
    TH_OK(fcl_maxpool2d_forward(th_ctx(), &X, &p, &Y, &I));
    TH_OK(fcl_maxpool2d_backward(th_ctx(), &I, &DY, &p, &DX));
    *y = th_download(&Y);
    *idx = th_download(&I);
    *dx = th_download(&DX);
    th_free(&DX), th_free(&I), th_free(&Y), th_free(&DY), th_free(&X);
}

/* x in [-1, 1), quantised to 1/levels when levels > 0 so that windows hold ties. */
static void check_pool(const char *name, ref_pool_shape s, int levels) {
    ref_pool_shape_init(&s);
    size_t nx = (size_t)s.n * s.c * s.h * s.w, ny = (size_t)s.n * s.c * s.oh * s.ow;
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
    th_random(x, nx, 400, -1, 1);
    if (levels > 0)
        for (size_t i = 0; i < nx; i++)
            x[i] = roundf(x[i] * levels) / levels;
    th_random(dy, ny, 401, -1, 1);
    float *y, *idx, *dx;
    run_device(&s, x, dy, &y, &idx, &dx);
    double *xd = th_to_double(x, nx), *dyd = th_to_double(dy, ny);
    double *yr = malloc(ny * sizeof *yr), *idxr = malloc(ny * sizeof *idxr);
    double *dxr = malloc(nx * sizeof *dxr), *bound = malloc(nx * sizeof *bound);
    double *ady = malloc(ny * sizeof *ady);
    int *ir = malloc(ny * sizeof *ir);
    ref_maxpool_forward(&s, xd, yr, ir);
    ref_maxpool_backward(&s, ir, dyd, dxr);
    for (size_t i = 0; i < ny; i++)
        idxr[i] = ir[i], ady[i] = fabs(dyd[i]);
    ref_maxpool_backward(&s, ir, ady, bound);
    for (size_t i = 0; i < nx; i++)
        bound[i] *= th_gamma(4);
    char what[64];
    snprintf(what, sizeof what, "%s y", name);
    assert_exact(what, y, yr, ny);
    snprintf(what, sizeof what, "%s argmax", name);
    assert_exact(what, idx, idxr, ny);
    snprintf(what, sizeof what, "%s dx", name);
    th_assert_bound(what, dx, dxr, bound, nx);
    print_message("  pool %s: x [%d,%d,%d,%d], y exact, argmax exact, dx max abs error %.2e "
                  "(bound γ_4·Σ|dy|)\n",
                  name, s.n, s.c, s.h, s.w, max_abs_error(dx, dxr, nx));
    free(x), free(dy), free(y), free(idx), free(dx), free(xd), free(dyd), free(yr), free(idxr);
    free(dxr), free(bound), free(ady), free(ir);
}

static ref_pool_shape shape(int k, int stride, int pad) {
    int small = th_small();
    return (ref_pool_shape){.n = 2,
                            .c = small ? 2 : 5,
                            .h = small ? 7 : 21,
                            .w = small ? 9
                                       : 23, /* 23: the CPU kernel's 4-window steps, then a rest */
                            .k = k,
                            .stride = stride,
                            .pad = pad};
}

/* Conv4's pool: odd H floors away the last row. */
static void test_maxpool_2x2_s2(void **state) { check_pool("2x2/2", shape(2, 2, 0), 0); }
static void test_maxpool_2x2_s2_ties(void **state) { check_pool("2x2/2 ties", shape(2, 2, 0), 2); }
/* The ResNet stem's pool: overlapping windows, padding as -inf. */
static void test_maxpool_3x3_s2_p1(void **state) { check_pool("3x3/2/1", shape(3, 2, 1), 0); }
static void test_maxpool_3x3_s2_p1_ties(void **state) {
    check_pool("3x3/2/1 ties", shape(3, 2, 1), 2);
}

/* Constant and all-negative inputs: every window is one tie, the first in-image pixel wins;
 * padding never wins over a value, however negative. */
static void test_maxpool_first_maximum_wins(void **state) {
    ref_pool_shape s = {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 2, .pad = 1};
    ref_pool_shape_init(&s);
    float x[25], dy[9];
    for (int i = 0; i < 25; i++)
        x[i] = -1e30f;
    for (int i = 0; i < 9; i++)
        dy[i] = 1;
    float *y, *idx, *dx;
    run_device(&s, x, dy, &y, &idx, &dx);
    /* Window (oh, ow) starts at max(2·oh − 1, 0). */
    const float want[9] = {0, 1, 3, 5, 6, 8, 15, 16, 18};
    for (int i = 0; i < 9; i++) {
        assert_true(y[i] == -1e30f);
        assert_true(idx[i] == want[i]);
    }
    free(y), free(idx), free(dx);
}

typedef struct pool_ud {
    const ref_pool_shape *s;
    double *x;
    int *idx;
} pool_ud;

static void pool_fwd(void *ud, double *y) {
    pool_ud *u = ud;
    ref_maxpool_forward(u->s, u->x, y, u->idx);
}

/* Max pooling is linear near inputs without ties (the argmax does not move under a 1e-6
 * step; th_random's values are ~1e-2 apart and the seed is fixed), so central differences
 * match the reference gradient up to rounding; a wrong index would be an O(1) error. */
static void test_maxpool_reference_gradient(void **state) {
    ref_pool_shape shapes[2] = {{.n = 1, .c = 2, .h = 5, .w = 7, .k = 2, .stride = 2},
                                {.n = 1, .c = 2, .h = 6, .w = 5, .k = 3, .stride = 2, .pad = 1}};
    for (int t = 0; t < 2; t++) {
        ref_pool_shape s = shapes[t];
        ref_pool_shape_init(&s);
        size_t nx = (size_t)s.n * s.c * s.h * s.w, ny = (size_t)s.n * s.c * s.oh * s.ow;
        float *xf = malloc(nx * sizeof *xf), *dyf = malloc(ny * sizeof *dyf);
        th_random(xf, nx, 500 + t, -1, 1);
        th_random(dyf, ny, 510 + t, -1, 1);
        double *x = th_to_double(xf, nx), *dy = th_to_double(dyf, ny);
        double *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
        int *idx = malloc(ny * sizeof *idx);
        ref_maxpool_forward(&s, x, y, idx);
        ref_maxpool_backward(&s, idx, dy, dx);
        pool_ud u = {&s, x, idx};
        double e = th_fd_error(pool_fwd, &u, x, nx, dx, dy, ny);
        print_message("  fd %dx%d/%d/%d: dx %.1e (tolerance 1e-8)\n", s.k, s.k, s.stride, s.pad, e);
        assert_true(e < 1e-8);
        free(xf), free(dyf), free(x), free(dy), free(y), free(dx), free(idx);
    }
}

/* PyTorch (tools/reference/fam_conv.py): F.max_pool2d with return_indices on inputs with
 * ties, and its autograd gradient. */
static void test_maxpool_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_pool");
    const char *cases[] = {"k2s2p0", "k3s2p1"};
    for (int c = 0; c < 2; c++) {
        char key[64];
        size_t n;
        snprintf(key, sizeof key, "%s.geom", cases[c]);
        const float *geom = th_fixture_data(fx, key, &n);
        assert_int_equal(n, 3);
        fcl_pool2d_params p = {(int)geom[0], (int)geom[1], (int)geom[2]};
        fcl_tensor x, dy, y, idx, dx;
        snprintf(key, sizeof key, "%s.x", cases[c]);
        th_fixture_upload(fx, key, &x);
        snprintf(key, sizeof key, "%s.dy", cases[c]);
        th_fixture_upload(fx, key, &dy);
        TH_OK(fcl_tensor_alloc(th_ctx(), &y, FCL_MEM_ACTIVATION, 4, dy.shape));
        TH_OK(fcl_tensor_alloc(th_ctx(), &idx, FCL_MEM_ACTIVATION, 4, dy.shape));
        TH_OK(fcl_tensor_alloc(th_ctx(), &dx, FCL_MEM_ACTIVATION, 4, x.shape));
        TH_OK(fcl_maxpool2d_forward(th_ctx(), &x, &p, &y, &idx));
        TH_OK(fcl_maxpool2d_backward(th_ctx(), &idx, &dy, &p, &dx));
        const char *names[] = {"y", "idx", "dx"};
        fcl_tensor *outs[] = {&y, &idx, &dx};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "%s.%s", cases[c], names[i]);
            const float *ref = th_fixture_data(fx, key, &n);
            assert_int_equal(n, outs[i]->numel);
            double *want = th_to_double(ref, n);
            float *got = th_download(outs[i]);
            if (i < 2)
                assert_exact(key, got, want, n);
            else
                th_assert_close(key, got, want, n, 1e-6, 0);
            print_message("  PyTorch %-10s max abs error %.2e (%s)\n", key,
                          max_abs_error(got, want, n), i < 2 ? "must be exact" : "tolerance 1e-6");
            free(got), free(want);
        }
        th_free(&dx), th_free(&idx), th_free(&y), th_free(&dy), th_free(&x);
    }
    th_fixture_free(fx);
}

static void test_maxpool_shape_errors(void **state) {
    fcl_tensor x, y, idx;
    int sx[4] = {2, 3, 9, 9}, sy[4] = {2, 3, 4, 4};
    TH_OK(fcl_tensor_alloc(th_ctx(), &x, FCL_MEM_ACTIVATION, 4, sx));
    TH_OK(fcl_tensor_alloc(th_ctx(), &y, FCL_MEM_ACTIVATION, 4, sy));
    TH_OK(fcl_tensor_alloc(th_ctx(), &idx, FCL_MEM_ACTIVATION, 4, sy));
    fcl_pool2d_params p = {2, 2, 0};
    TH_OK(fcl_maxpool2d_forward(th_ctx(), &x, &p, &y, &idx));
    p = (fcl_pool2d_params){3, 2, 1}; /* gives 5x5, not 4x4 */
    assert_int_equal(fcl_maxpool2d_forward(th_ctx(), &x, &p, &y, &idx), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "x [2,3,9,9], output [2,3,4,4]"));
    p = (fcl_pool2d_params){2, 2, 2}; /* padding over half the window: PyTorch refuses it */
    assert_int_equal(fcl_maxpool2d_forward(th_ctx(), &x, &p, &y, &idx), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "padding 2"));
    th_free(&idx), th_free(&y), th_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_2x2_s2),
        cmocka_unit_test(test_maxpool_2x2_s2_ties),
        cmocka_unit_test(test_maxpool_3x3_s2_p1),
        cmocka_unit_test(test_maxpool_3x3_s2_p1_ties),
        cmocka_unit_test(test_maxpool_first_maximum_wins),
        cmocka_unit_test(test_maxpool_reference_gradient),
        cmocka_unit_test(test_maxpool_matches_pytorch),
        cmocka_unit_test(test_maxpool_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
