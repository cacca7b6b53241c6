/* Elementwise family: fill, add, scale, axpy, ReLU forward/backward against the C reference,
 * and the ReLU reference's gradient against finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref.h"

static int n_elems(void) { return th_small() ? 37 : 100003; } /* odd: exercises the bounds check */

static void test_fill(void **state) {
    int n = n_elems();
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &t, FCL_MEM_ACTIVATION, n));
    TH_OK(fcl_fill(th_ctx(), &t, 2.5f));
    float *got = th_download(&t);
    for (int i = 0; i < n; i++)
        assert_true(got[i] == 2.5f);
    free(got);
    th_free(&t);
}

static void test_add_scale_axpy(void **state) {
    int n = n_elems();
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    th_random(a, n, 1, -2, 2);
    th_random(b, n, 2, -2, 2);
    fcl_tensor ta, tb, out;
    th_upload(&ta, 1, &n, a);
    th_upload(&tb, 1, &n, b);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &out, FCL_MEM_ACTIVATION, n));
    double *want = malloc(n * sizeof *want);

    TH_OK(fcl_add(th_ctx(), &ta, &tb, &out));
    float *got = th_download(&out);
    for (int i = 0; i < n; i++)
        want[i] = (double)a[i] + b[i];
    th_assert_close("add", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);

    const float alpha = -0.37f;
    TH_OK(fcl_scale(th_ctx(), &ta, alpha, &out));
    got = th_download(&out);
    for (int i = 0; i < n; i++)
        want[i] = (double)alpha * a[i];
    th_assert_close("scale", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);

    TH_OK(fcl_axpy(th_ctx(), alpha, &ta, &tb)); /* b += alpha·a */
    got = th_download(&tb);
    for (int i = 0; i < n; i++)
        want[i] = b[i] + (double)alpha * a[i];
    th_assert_close("axpy", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);

    TH_OK(fcl_add(th_ctx(), &ta, &ta, &ta)); /* in place: a = a + a */
    got = th_download(&ta);
    for (int i = 0; i < n; i++)
        want[i] = 2.0 * a[i];
    th_assert_close("add in place", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);

    th_free(&out), th_free(&tb), th_free(&ta);
    free(a), free(b), free(want);
}

static void test_relu(void **state) {
    int n = n_elems();
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    th_random(x, n, 3, -1, 1);
    x[0] = 0.0f; /* the kink: forward 0, gradient 0 as in PyTorch */
    th_random(dy, n, 4, -1, 1);
    fcl_tensor tx, tdy, ty, tdx;
    th_upload(&tx, 1, &n, x);
    th_upload(&tdy, 1, &n, dy);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &ty, FCL_MEM_ACTIVATION, n));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &tdx, FCL_MEM_ACTIVATION, n));
    TH_OK(fcl_relu_forward(th_ctx(), &tx, &ty));
    TH_OK(fcl_relu_backward(th_ctx(), &ty, &tdy, &tdx));
    double *xd = th_to_double(x, n), *dyd = th_to_double(dy, n);
    double *y = malloc(n * sizeof *y), *dx = malloc(n * sizeof *dx);
    ref_relu_forward(xd, y, n);
    ref_relu_backward(xd, dyd, dx, n);
    float *got = th_download(&ty);
    th_assert_close("relu forward", got, y, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    got = th_download(&tdx);
    th_assert_close("relu backward", got, dx, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got);
    th_free(&tdx), th_free(&ty), th_free(&tdy), th_free(&tx);
    free(x), free(dy), free(xd), free(dyd), free(y), free(dx);
}

typedef struct {
    const double *x;
    size_t n;
} relu_ud;

static void relu_fwd(void *ud, double *y) {
    relu_ud *u = ud;
    ref_relu_forward(u->x, y, u->n);
}

static void test_relu_reference_gradient(void **state) {
    enum { N = 64 };
    float xf[N], dyf[N];
    th_random_away_from_zero(xf, N, 5, 1, 1e-3f); /* keep clear of the kink by >> the step */
    th_random(dyf, N, 6, -1, 1);
    double x[N], dy[N], dx[N];
    for (int i = 0; i < N; i++)
        x[i] = xf[i], dy[i] = dyf[i];
    ref_relu_backward(x, dy, dx, N);
    relu_ud u = {x, N};
    double err = th_fd_error(relu_fwd, &u, x, N, dx, dy, N);
    assert_true(err < 1e-8); /* piecewise linear: central differences are exact up to rounding */
}

/* PyTorch (tools/reference/ops.py): torch.relu and its autograd gradient. */
static void test_relu_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_elementwise");
    fcl_tensor x, dy, y, dx;
    th_fixture_upload(fx, "x", &x);
    th_fixture_upload(fx, "dy", &dy);
    TH_OK(fcl_tensor_alloc(th_ctx(), &y, FCL_MEM_ACTIVATION, x.ndim, x.shape));
    TH_OK(fcl_tensor_alloc(th_ctx(), &dx, FCL_MEM_ACTIVATION, x.ndim, x.shape));
    TH_OK(fcl_relu_forward(th_ctx(), &x, &y));
    TH_OK(fcl_relu_backward(th_ctx(), &y, &dy, &dx));
    size_t n;
    const float *ref = th_fixture_data(fx, "relu", &n);
    double *want = th_to_double(ref, n);
    float *got = th_download(&y);
    th_assert_close("relu vs torch", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got), free(want);
    ref = th_fixture_data(fx, "relu_dx", &n);
    want = th_to_double(ref, n);
    got = th_download(&dx);
    th_assert_close("relu backward vs torch", got, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(got), free(want);
    th_free(&dx), th_free(&y), th_free(&dy), th_free(&x);
    th_fixture_free(fx);
}

static void test_shape_mismatch_is_an_error(void **state) {
    fcl_tensor a, b;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &a, FCL_MEM_ACTIVATION, 4));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &b, FCL_MEM_ACTIVATION, 5));
    assert_int_equal(fcl_add(th_ctx(), &a, &b, &a), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "[4] and [5]"));
    th_free(&b), th_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_add_scale_axpy),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_relu_reference_gradient),
        cmocka_unit_test(test_relu_matches_pytorch),
        cmocka_unit_test(test_shape_mismatch_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
