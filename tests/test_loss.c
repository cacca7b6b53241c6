/* Cross-entropy and accuracy: device against the double reference, the reference's gradient
 * against finite differences, PyTorch's F.cross_entropy / argmax, and the label rules. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/loss.h"
#include "ref/ref_loss.h"

static float download_scalar(const fcl_tensor *t) {
    float *h = th_download(t), v = h[0];
    free(h);
    return v;
}

static void check_ce(int rows, int classes, uint64_t seed) {
    size_t n = (size_t)rows * classes;
    int shape[2] = {rows, classes}, one = 1;
    float *z = malloc(n * sizeof *z), *lab = malloc(rows * sizeof *lab), g = 0.7f;
    int *labi = malloc(rows * sizeof *labi);
    th_random(z, n, seed, -5, 5);
    th_random(lab, rows, seed + 1, 0, (float)classes);
    for (int r = 0; r < rows; r++)
        labi[r] = (int)lab[r] < classes ? (int)lab[r] : classes - 1, lab[r] = (float)labi[r];
    for (int k = 0; k < classes; k++)
        z[k] += 40.0f;           /* row 0: large logits, exp(z) would overflow float at 89 */
    if (rows > 1 && classes > 2) /* row 1: a tie between classes 1 and 2; label 2 */
        z[classes + 1] = z[classes + 2] = 9.0f, lab[1] = 2.0f, labi[1] = 2;
    fcl_tensor tz, tl, tg, loss, dz, correct;
    th_upload(&tz, 2, shape, z);
    th_upload(&tl, 1, &rows, lab);
    th_upload(&tg, 1, &one, &g);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &loss, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &correct, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_tensor_alloc(th_ctx(), &dz, FCL_MEM_ACTIVATION, 2, shape));
    TH_OK(fcl_cross_entropy_forward(th_ctx(), &tz, &tl, &loss));
    TH_OK(fcl_cross_entropy_backward(th_ctx(), &tz, &tl, &tg, &dz));
    TH_OK(fcl_accuracy(th_ctx(), &tz, &tl, &correct));
    double *zd = th_to_double(z, n), *dzd = malloc(n * sizeof *dzd);
    double want = ref_cross_entropy(zd, labi, rows, classes);
    ref_cross_entropy_backward(zd, labi, g, dzd, rows, classes);
    /* loss: each row's log(s) + (m − z_y) has a few ulps of relative error (m − z_y is
     * exact when the two are within a factor 2, log(s) is ≤ 1 ulp off for s ∈ [1, K]),
     * and the mean adds γ_K: the elementwise tolerance 1e-5 abs + 1e-5 rel holds. */
    float got = download_scalar(&loss);
    char what[64];
    snprintf(what, sizeof what, "cross-entropy [%d,%d]", rows, classes);
    th_measure(what, &got, &want, 1);
    th_assert_close(what, &got, &want, 1, TH_EW_ATOL, TH_EW_RTOL);
    /* dlogits: softmax − onehot per element, elementwise error; normerr ≤ 1e-6 overall */
    float *gd = th_download(&dz);
    snprintf(what, sizeof what, "cross-entropy dlogits [%d,%d]", rows, classes);
    th_measure(what, gd, dzd, n);
    th_assert_close(what, gd, dzd, n, TH_EW_ATOL, TH_EW_RTOL);
    th_assert_normerr(what, gd, dzd, n, TH_NORMERR);
    /* accuracy is a count: exact */
    int want_correct = ref_correct(zd, labi, rows, classes);
    assert_true(rows < 2 || classes < 3 || want_correct < rows); /* the tie row is wrong */
    assert_int_equal((int)download_scalar(&correct), want_correct);
    fprintf(stderr, "  accuracy [%d,%d]: %d of %d correct (exact)\n", rows, classes, want_correct,
            rows);
    th_free(&dz), th_free(&correct), th_free(&loss), th_free(&tg), th_free(&tl), th_free(&tz);
    free(z), free(lab), free(labi), free(zd), free(dzd), free(gd);
}

static void test_cross_entropy(void **state) {
    check_ce(th_small() ? 7 : 80, 5, 200); /* 5-way, 16 queries per class */
    check_ce(th_small() ? 130 : 1000, th_small() ? 3 : 64,
             201);       /* full: > wg rows, several per item */
    check_ce(1, 1, 202); /* one class: loss 0, gradient 0 */
}

/* fcl_episode_labels gives ⌊r/q⌋; a label outside [0, classes) or not an integer makes the
 * loss NaN and is never counted correct. */
static void test_labels(void **state) {
    int rows = 10, classes = 5, shape[2] = {rows, classes};
    fcl_tensor tl, tz, loss, correct;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &tl, FCL_MEM_ACTIVATION, rows));
    TH_OK(fcl_episode_labels(th_ctx(), &tl, 2));
    float *lab = th_download(&tl);
    for (int r = 0; r < rows; r++)
        assert_true(lab[r] == (float)(r / 2));
    float z[50];
    for (int i = 0; i < 50; i++)
        z[i] = (i % classes == (i / classes) / 2) ? 1.0f : 0.0f; /* argmax = label */
    th_upload(&tz, 2, shape, z);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &loss, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &correct, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_accuracy(th_ctx(), &tz, &tl, &correct));
    assert_true(download_scalar(&correct) == 10.0f);
    TH_OK(fcl_cross_entropy_forward(th_ctx(), &tz, &tl, &loss));
    assert_true(isfinite(download_scalar(&loss)));
    static const float bad[3] = {5.0f, -1.0f, 1.5f};
    for (int i = 0; i < 3; i++) {
        lab[3] = bad[i];
        TH_OK(fcl_tensor_upload(th_ctx(), &tl, lab));
        TH_OK(fcl_cross_entropy_forward(th_ctx(), &tz, &tl, &loss));
        assert_true(isnan(download_scalar(&loss)));
        TH_OK(fcl_accuracy(th_ctx(), &tz, &tl, &correct));
        assert_true(download_scalar(&correct) == 9.0f);
    }
    th_free(&correct), th_free(&loss), th_free(&tz), th_free(&tl);
    free(lab);
}

typedef struct {
    const double *z;
    const int *labels;
    int rows, classes;
} ce_ud;

static void ce_fwd(void *ud, double *y) {
    ce_ud *u = ud;
    y[0] = ref_cross_entropy(u->z, u->labels, u->rows, u->classes);
}

/* Smooth in the logits: central differences (h = 1e-6) agree to O(h²) + O(1e-16/h); bound
 * 1e-6 relative. */
static void test_reference_gradient(void **state) {
    enum { R = 4, K = 5 };
    float zf[R * K];
    th_random(zf, R * K, 210, -3, 3);
    double z[R * K], dz[R * K], g = 0.7;
    for (int i = 0; i < R * K; i++)
        z[i] = zf[i];
    int labels[R] = {0, 4, 2, 2};
    ref_cross_entropy_backward(z, labels, g, dz, R, K);
    ce_ud u = {z, labels, R, K};
    double e = th_fd_error(ce_fwd, &u, z, R * K, dz, &g, 1);
    fprintf(stderr, "  fd: cross-entropy dlogits %.2e\n", e);
    assert_true(e < 1e-6);
}

static void test_matches_pytorch(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_loss");
    fcl_tensor z, lab, g, loss, dz, correct;
    th_fixture_upload(fx, "logits", &z);
    th_fixture_upload(fx, "labels", &lab);
    th_fixture_upload(fx, "dloss", &g);
    TH_OK(fcl_tensor_alloc1(th_ctx(), &loss, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &correct, FCL_MEM_ACTIVATION, 1));
    TH_OK(fcl_tensor_alloc(th_ctx(), &dz, FCL_MEM_ACTIVATION, 2, z.shape));
    TH_OK(fcl_cross_entropy_forward(th_ctx(), &z, &lab, &loss));
    TH_OK(fcl_cross_entropy_backward(th_ctx(), &z, &lab, &g, &dz));
    TH_OK(fcl_accuracy(th_ctx(), &z, &lab, &correct));
    size_t n;
    double want = th_fixture_data(fx, "loss", &n)[0];
    float got = download_scalar(&loss);
    /* float32 on both sides: the elementwise tolerance */
    th_measure("cross-entropy vs torch", &got, &want, 1);
    th_assert_close("cross-entropy vs torch", &got, &want, 1, TH_EW_ATOL, TH_EW_RTOL);
    const float *ref = th_fixture_data(fx, "dlogits", &n);
    double *wd = th_to_double(ref, n);
    float *gd = th_download(&dz);
    th_measure("cross-entropy dlogits vs torch", gd, wd, n);
    th_assert_close("cross-entropy dlogits vs torch", gd, wd, n, TH_EW_ATOL, TH_EW_RTOL);
    assert_true(download_scalar(&correct) == th_fixture_data(fx, "correct", &n)[0]);
    free(wd), free(gd);
    th_free(&dz), th_free(&correct), th_free(&loss), th_free(&g), th_free(&lab), th_free(&z);
    th_fixture_free(fx);
}

static void test_shape_errors(void **state) {
    fcl_tensor z, lab, loss;
    TH_OK(fcl_tensor_alloc2(th_ctx(), &z, FCL_MEM_ACTIVATION, 6, 5));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &lab, FCL_MEM_ACTIVATION, 5));
    TH_OK(fcl_tensor_alloc1(th_ctx(), &loss, FCL_MEM_ACTIVATION, 1));
    assert_int_equal(fcl_cross_entropy_forward(th_ctx(), &z, &lab, &loss), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "logits [6,5], labels [5]"));
    th_free(&loss), th_free(&lab), th_free(&z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy),      cmocka_unit_test(test_labels),
        cmocka_unit_test(test_reference_gradient), cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
