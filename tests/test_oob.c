/* A deliberately broken kernel: the last work-item writes one element past the end of its
 * buffer. Registered only under oclgrind, where the expected outcome is oclgrind's
 * "Invalid write" report; it proves that the oclgrind run catches real kernel bugs. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static const char *k_broken = "kernel void off_by_one(global float *x, uint xo, uint n) {\n"
                              "    uint i = get_global_id(0);\n"
                              "    if (i < n) x[xo + i + 1] = 1.0f; /* BUG: i + 1 reaches n */\n"
                              "}\n";

static void test_out_of_bounds_write(void **state) {
    fewcl_context *ctx = th_ctx();
    cl_program prog;
    TH_OK(fcl_program_build(ctx, "off_by_one", k_broken, strlen(k_broken), "-cl-std=CL1.2", &prog));
    cl_int err;
    cl_kernel k = clCreateKernel(prog, "off_by_one", &err);
    assert_int_equal(err, CL_SUCCESS);
    const cl_uint n = 16;
    cl_mem buf = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, n * sizeof(float), NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_uint zero = 0;
    clSetKernelArg(k, 0, sizeof buf, &buf);
    clSetKernelArg(k, 1, sizeof zero, &zero);
    clSetKernelArg(k, 2, sizeof n, &n);
    size_t gws = n;
    assert_int_equal(clEnqueueNDRangeKernel(ctx->queue, k, 1, NULL, &gws, NULL, 0, NULL, NULL),
                     CL_SUCCESS);
    clFinish(ctx->queue);
    clReleaseMemObject(buf);
    clReleaseKernel(k);
    clReleaseProgram(prog);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_out_of_bounds_write)};
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
