/* Kernel handles (resolved once per context, then an array index) and the debug check of
 * fcl_args against the kernel's parameters (FEWCL_CHECK_ARGS: clGetKernelArgInfo of programs
 * built with -cl-kernel-arg-info). The check is switched on here by the environment variable,
 * so it runs in every build type. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static fcl_kernel_handle k_fill = FCL_KERNEL_HANDLE("elementwise", "fill");
static fcl_kernel_handle k_scale = FCL_KERNEL_HANDLE("elementwise", "scale");
static fcl_kernel_handle k_pool = FCL_KERNEL_ROWS_HANDLE("pool", "maxpool_forward");
static fcl_kernel_handle k_l2n = FCL_KERNEL_HANDLE("rowwise", "l2n_forward");

/* A handle is looked up by name once per context: later calls return the same entry without
 * creating kernels, and another context resolves it to its own entry. */
static void test_handles_resolve_once_per_context(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_kernel_entry *a, *b;
    TH_OK(fcl_kernel_get(ctx, &k_fill, &a));
    const int kernels = ctx->n_kernels;
    TH_OK(fcl_kernel_get(ctx, &k_fill, &b));
    assert_ptr_equal(a, b);
    assert_int_equal(ctx->n_kernels, kernels);
    const int slot = atomic_load(&k_fill.slot);
    assert_true(slot > 0);
    assert_ptr_equal(ctx->by_handle[slot - 1], a);
    assert_string_equal(a->name, "fill");
    /* The name lookup finds the same kernel (one entry per kernel and program). */
    fcl_kernel_entry *by_name;
    TH_OK(fcl_kernel(ctx, "elementwise", NULL, "fill", &by_name));
    assert_ptr_equal(by_name, a);

    /* A row handle names the _rows variant where the context launches by rows. */
    TH_OK(fcl_kernel_get(ctx, &k_pool, &a));
    assert_string_equal(a->name,
                        ctx->limits.row_kernels ? "maxpool_forward_rows" : "maxpool_forward");

    fewcl_context *other;
    TH_OK(fewcl_context_create(NULL, &other));
    assert_null(other->by_handle[slot - 1]);
    TH_OK(fcl_kernel_get(other, &k_fill, &b));
    assert_ptr_equal(other->by_handle[slot - 1], b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(atomic_load(&k_fill.slot), slot); /* one number per handle */
    fewcl_context_destroy(other);
}

/* The kinds clGetKernelArgInfo gives for fill(global float *x, uint xo, uint n, float value)
 * and l2n_forward(global const float *x, uint xo, global float *y, uint yo, uint rows,
 * uint cols, float eps, local float *scratch). */
static void test_kinds_recorded(void **state) {
    (void)state;
    fcl_kernel_entry *k;
    TH_OK(fcl_kernel_get(th_ctx(), &k_fill, &k));
    assert_string_equal(k->arg_kinds, "guuf");
    TH_OK(fcl_kernel_get(th_ctx(), &k_l2n, &k));
    assert_string_equal(k->arg_kinds, "guguuufl");
    /* 'L' is a local pointer: passing a size where the kernel takes eps fails. */
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc1(th_ctx(), &t, FCL_MEM_ACTIVATION, 16));
    assert_int_equal(fcl_args(k, "ttuuLf", &t, &t, 1u, 16u, (size_t)64, 1e-12), FEWCL_ERR_INTERNAL);
    assert_non_null(strstr(fewcl_last_error(), "kernel l2n_forward: argument 6 is a float"));
    TH_OK(fcl_args(k, "ttuufL", &t, &t, 1u, 16u, 1e-12, (size_t)64));
    fcl_tensor_free(th_ctx(), &t);
}

/* Right argument lists pass and launch; a wrong kind, one too few and one too many fail with
 * the kernel's name and the argument's index. */
static void test_wrong_arguments_are_named(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_tensor x, y;
    TH_OK(fcl_tensor_alloc1(ctx, &x, FCL_MEM_ACTIVATION, 64));
    TH_OK(fcl_tensor_alloc1(ctx, &y, FCL_MEM_ACTIVATION, 64));
    TH_OK(fcl_fill(ctx, &x, 2.0f));
    TH_OK(fcl_scale(ctx, &x, 0.5f, &y));
    float *h = th_download(&y);
    assert_true(h[0] == 1.0f && h[63] == 1.0f);
    free(h);

    fcl_kernel_entry *k;
    TH_OK(fcl_kernel_get(ctx, &k_fill, &k));
    /* n passed as a float: argument 2. */
    assert_int_equal(fcl_args(k, "tff", &x, 64.0, 1.0), FEWCL_ERR_INTERNAL);
    print_message("    %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "kernel fill: argument 2 is a uint"));
    assert_non_null(strstr(fewcl_last_error(), "'f' of format \"tff\" passes a float"));
    /* The value left out: argument 3 is missing. */
    assert_int_equal(fcl_args(k, "tu", &x, 64u), FEWCL_ERR_INTERNAL);
    print_message("    %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "kernel fill: format \"tu\" passes 3 arguments"));
    assert_non_null(strstr(fewcl_last_error(), "takes 4 (argument 3 is missing)"));
    /* A tensor where the value goes: argument 4 is one too many. */
    assert_int_equal(fcl_args(k, "tut", &x, 64u, &y), FEWCL_ERR_INTERNAL);
    print_message("    %s\n", fewcl_last_error());
    assert_non_null(strstr(fewcl_last_error(), "kernel fill: argument 3 is a float"));
    /* Two tensors swapped for a tensor and a scalar of scale: argument 2 is a global pointer. */
    TH_OK(fcl_kernel_get(ctx, &k_scale, &k));
    assert_int_equal(fcl_args(k, "tuuuf", &x, 0u, 0u, 64u, 1.0), FEWCL_ERR_INTERNAL);
    assert_non_null(strstr(fewcl_last_error(), "kernel scale: argument 2 is a global pointer"));
    TH_OK(fcl_args(k, "ttuf", &x, &y, 64u, 1.0));
    fcl_tensor_free(ctx, &y);
    fcl_tensor_free(ctx, &x);
}

int main(void) {
    setenv("FEWCL_CHECK_ARGS", "1", 1); /* before the shared context exists */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handles_resolve_once_per_context),
        cmocka_unit_test(test_kinds_recorded),
        cmocka_unit_test(test_wrong_arguments_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
