/* Runtime: SHA-256, size parsing, the arena's accounting, device choice, the program-binary
 * cache, build errors, the memory limit, the device profiles and the launch checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "runtime/sha256.h"

static void test_sha256_known_answers(void **state) {
    /* FIPS 180-2 appendix B examples. */
    char hex[65];
    fcl_sha256_hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fcl_sha256_hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    fcl_sha256_hex_of(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in uneven pieces to exercise block boundaries. */
    fcl_sha256 h;
    uint8_t d[32];
    char a[997];
    memset(a, 'a', sizeof a);
    fcl_sha256_init(&h);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        fcl_sha256_update(&h, a, n);
        left -= n;
    }
    fcl_sha256_final(&h, d);
    fcl_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_parse_bytes(void **state) {
    size_t v;
    assert_int_equal(fcl_parse_bytes("123", &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(fcl_parse_bytes("64K", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(fcl_parse_bytes("1.5GiB", &v), 0);
    assert_int_equal(v, (size_t)3 << 29);
    assert_int_equal(fcl_parse_bytes("512M", &v), 0);
    assert_int_equal(v, (size_t)512 << 20);
    assert_int_not_equal(fcl_parse_bytes("lots", &v), 0);
    assert_int_not_equal(fcl_parse_bytes("12X", &v), 0);
    /* Units in any case, with or without i and B. */
    const char *eight_gib[] = {"8G", "8g", "8GB", "8gb", "8GiB", "8gib", "8Gb"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(fcl_parse_bytes(eight_gib[i], &v), 0);
        assert_int_equal(v, (size_t)8 << 30);
    }
    assert_int_equal(fcl_parse_bytes("2t", &v), 0);
    assert_int_equal(v, (size_t)2 << 40);
    assert_int_equal(fcl_parse_bytes("100b", &v), 0);
    assert_int_equal(v, 100);
    assert_int_not_equal(fcl_parse_bytes("8gbb", &v), 0);
    assert_int_not_equal(fcl_parse_bytes("8ib", &v), 0);
    assert_int_not_equal(fcl_parse_bytes("inf", &v), 0);
    assert_int_not_equal(fcl_parse_bytes("-1G", &v), 0);
    char buf[32];
    assert_string_equal(fcl_format_bytes(2517630976.0, buf, sizeof buf), "2.34 GiB");
    assert_string_equal(fcl_format_bytes(512, buf, sizeof buf), "512 B");
}

static fcl_limits toy_limits(void) {
    fcl_limits l = {.max_work_group = 256,
                    .local_mem = 48 << 10,
                    .max_alloc = (size_t)1 << 30,
                    .global_mem = (size_t)4 << 30,
                    .base_align = 128};
    return l;
}

static void test_arena_accounting(void **state) {
    fcl_limits l = toy_limits();
    fcl_arena *a;
    TH_OK(fcl_arena_create(NULL, &l, 0, &a));
    fcl_block b1, b2, b3;
    TH_OK(fcl_arena_alloc(a, 1000, FCL_MEM_PARAM, &b1)); /* rounds to 1024 (256-byte align) */
    TH_OK(fcl_arena_alloc(a, 256, FCL_MEM_ACTIVATION, &b2));
    TH_OK(fcl_arena_alloc(a, 10, FCL_MEM_WORKSPACE, &b3));
    const fcl_arena_stats *s = fcl_arena_stats_get(a);
    assert_int_equal(b1.offset, 0);
    assert_int_equal(b2.offset, 1024);
    assert_int_equal(b3.offset, 1280);
    assert_int_equal(s->in_use, 1024 + 256 + 256);
    assert_int_equal(s->by_category[FCL_MEM_PARAM], 1024);
    fcl_arena_free(a, &b2);
    assert_int_equal(s->in_use, 1024 + 256);
    assert_int_equal(s->peak, 1024 + 256 + 256);
    assert_int_equal(s->by_category_at_peak[FCL_MEM_ACTIVATION], 256);
    /* The hole of b2 is reused first-fit; freeing everything coalesces to one range. */
    fcl_block b4;
    TH_OK(fcl_arena_alloc(a, 200, FCL_MEM_ACTIVATION, &b4));
    assert_int_equal(b4.offset, 1024);
    fcl_arena_free(a, &b1);
    fcl_arena_free(a, &b3);
    fcl_arena_free(a, &b4);
    assert_int_equal(s->in_use, 0);
    fcl_block big;
    TH_OK(fcl_arena_alloc(a, 2048, FCL_MEM_ACTIVATION, &big));
    assert_int_equal(big.offset, 0);
    fcl_arena_free(a, &big);
    fcl_arena_destroy(a);
}

static void test_arena_limits(void **state) {
    fcl_limits l = toy_limits();
    fcl_arena *a;
    TH_OK(fcl_arena_create(NULL, &l, (size_t)3 << 30, &a)); /* 3 GiB limit, 1 GiB max alloc */
    fcl_block b;
    assert_int_equal(fcl_arena_alloc(a, ((size_t)1 << 30) + 1, FCL_MEM_ACTIVATION, &b),
                     FEWCL_ERR_OUT_OF_MEMORY);
    assert_non_null(strstr(fewcl_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
    fcl_block g[3];
    for (int i = 0; i < 3; i++)
        TH_OK(fcl_arena_alloc(a, (size_t)1 << 30, FCL_MEM_PARAM, &g[i]));
    assert_int_equal(fcl_arena_alloc(a, 1, FCL_MEM_ACTIVATION, &b), FEWCL_ERR_OUT_OF_MEMORY);
    /* In human units; a counting arena (a plan) leaves the advice to its caller. */
    assert_non_null(strstr(fewcl_last_error(), "of the 3.00 GiB budget already reserved"));
    assert_null(strstr(fewcl_last_error(), "fewcl plan"));
    assert_int_equal(fcl_arena_stats_get(a)->reserved, (size_t)3 << 30);
    fcl_arena_destroy(a);
}

/* FEWCL_ARENA_CHUNK=1 (the oclgrind runs): every tensor gets a buffer of exactly its size, and
 * a freed buffer is only reused by a request that fits in its real bytes. */
static void test_exact_buffers(void **state) {
    setenv("FEWCL_ARENA_CHUNK", "1", 1);
    fcl_limits l = toy_limits();
    fcl_arena *a;
    TH_OK(fcl_arena_create(NULL, &l, 0, &a));
    unsetenv("FEWCL_ARENA_CHUNK");
    fcl_block b1, b2, b3;
    TH_OK(fcl_arena_alloc(a, 100, FCL_MEM_ACTIVATION, &b1));
    fcl_arena_free(a, &b1);
    TH_OK(fcl_arena_alloc(a, 144, FCL_MEM_ACTIVATION, &b2)); /* same 256-byte slot, too big */
    assert_int_equal(b2.chunk, 1);
    TH_OK(fcl_arena_alloc(a, 60, FCL_MEM_ACTIVATION, &b3)); /* fits the first buffer */
    assert_int_equal(b3.chunk, 0);
    assert_int_equal(fcl_arena_stats_get(a)->reserved, 512);
    fcl_arena_destroy(a);
    setenv("FEWCL_ARENA_CHUNK", "lots", 1);
    assert_int_equal(fcl_arena_create(NULL, &l, 0, &a), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "FEWCL_ARENA_CHUNK"));
    unsetenv("FEWCL_ARENA_CHUNK");
}

static void test_counting_and_real_arenas_agree(void **state) {
    /* The same request sequence gives the same offsets and peak on a counting arena and on
     * the device: the basis of the planner's exactness. */
    fewcl_context *ctx = th_ctx();
    fcl_arena *count;
    TH_OK(fcl_arena_create(NULL, &ctx->limits, 0, &count));
    size_t sizes[] = {4000, 123, 70000, 1, 65536, 999};
    fcl_block real[6], counted[6];
    const fcl_arena_stats *rs = fcl_arena_stats_get(ctx->arena);
    size_t base_in_use = rs->in_use;
    for (int i = 0; i < 6; i++) {
        TH_OK(fcl_arena_alloc(ctx->arena, sizes[i], FCL_MEM_ACTIVATION, &real[i]));
        TH_OK(fcl_arena_alloc(count, sizes[i], FCL_MEM_ACTIVATION, &counted[i]));
        if (i % 2) {
            fcl_arena_free(ctx->arena, &real[i - 1]);
            fcl_arena_free(count, &counted[i - 1]);
        }
    }
    assert_int_equal(rs->in_use - base_in_use, fcl_arena_stats_get(count)->in_use);
    for (int i = 1; i < 6; i += 2) {
        assert_int_equal(real[i].size, counted[i].size);
        assert_int_equal(real[i].offset % ctx->limits.base_align, 0);
        fcl_arena_free(ctx->arena, &real[i]);
    }
    fcl_arena_destroy(count);
}

static void test_device_choice(void **state) {
    fewcl_context *ctx = th_ctx();
    cl_platform_id p;
    cl_device_id d;
    fewcl_device_info info;
    char spec[32];
    snprintf(spec, sizeof spec, "%d:%d", ctx->info.platform_index, ctx->info.device_index);
    TH_OK(fcl_device_select(spec, &p, &d, &info));
    assert_true(d == ctx->device);
    /* A name substring, in another case. */
    char name[8] = {0};
    for (int i = 0; i < 4 && ctx->info.name[i]; i++)
        name[i] = (char)(ctx->info.name[i] ^
                         (ctx->info.name[i] >= 'a' && ctx->info.name[i] <= 'z' ? 32 : 0));
    TH_OK(fcl_device_select(name, &p, &d, &info));
    assert_int_equal(fcl_device_select("no-such-device-xyz", &p, &d, &info), FEWCL_ERR_NO_DEVICE);
    assert_non_null(strstr(fewcl_last_error(), "no-such-device-xyz"));
    assert_non_null(strstr(fewcl_last_error(), ctx->info.name)); /* lists the devices */
    assert_int_equal(fcl_device_select("9:9", &p, &d, &info), FEWCL_ERR_NO_DEVICE);
    /* PoCL's names do not say "pocl"; its version string does. */
    if (strstr(ctx->info.device_version, "PoCL")) {
        TH_OK(fcl_device_select("pocl", &p, &d, &info));
        assert_true(d == ctx->device);
    }
}

static const char *k_source =
    "kernel void twice(global float *x, uint xo) { x[xo + get_global_id(0)] *= 2.0f; }";

static void test_program_cache(void **state) {
    char dir[] = "/tmp/fewcl-cache-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("FEWCL_CACHE_DIR", dir, 1);
    unsetenv("FEWCL_CACHE");
    fewcl_context *a, *b;
    TH_OK(fewcl_context_create(NULL, &a));
    assert_true(a->cache_enabled);
    cl_program prog;
    TH_OK(fcl_program_build(a, "test", k_source, strlen(k_source), "-cl-std=CL1.2", &prog));
    clReleaseProgram(prog);
    assert_int_equal(a->cache.misses, 1);
    assert_int_equal(a->cache.stores, 1);
    char key[65], path[256];
    fcl_program_cache_key(a, k_source, strlen(k_source), "-cl-std=CL1.2", key);
    snprintf(path, sizeof path, "%s/%s.bin", dir, key);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* Another context finds it. */
    TH_OK(fewcl_context_create(NULL, &b));
    TH_OK(fcl_program_build(b, "test", k_source, strlen(k_source), "-cl-std=CL1.2", &prog));
    clReleaseProgram(prog);
    assert_int_equal(b->cache.hits, 1);
    /* Other options give another key. */
    char key2[65];
    fcl_program_cache_key(a, k_source, strlen(k_source), "-cl-std=CL1.2 -DX=1", key2);
    assert_string_not_equal(key, key2);
    /* A damaged entry is detected by its checksum and rebuilt. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -3, SEEK_END);
    fputc('#', f);
    fclose(f);
    TH_OK(fcl_program_build(b, "test", k_source, strlen(k_source), "-cl-std=CL1.2", &prog));
    clReleaseProgram(prog);
    assert_int_equal(b->cache.misses, 1);
    assert_int_equal(b->cache.stores, 1);
    fewcl_context_destroy(b);
    fewcl_context_destroy(a);
    /* FEWCL_CACHE=off writes nothing. */
    setenv("FEWCL_CACHE", "off", 1);
    TH_OK(fewcl_context_create(NULL, &a));
    assert_false(a->cache_enabled);
    fewcl_context_destroy(a);
    unsetenv("FEWCL_CACHE");
    unsetenv("FEWCL_CACHE_DIR");
    unlink(path);
    rmdir(dir);
}

static void test_build_error_carries_the_log(void **state) {
    const char *bad = "kernel void broken(global float *x) { x[0] = undefined_name; }";
    cl_program prog;
    setenv("FEWCL_CACHE", "off", 1);
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_int_equal(fcl_program_build(ctx, "bad.cl", bad, strlen(bad), "", &prog),
                     FEWCL_ERR_BUILD);
    assert_non_null(strstr(fewcl_last_error(), "bad.cl"));
    assert_non_null(strstr(fewcl_last_error(), "undefined_name"));
    fewcl_context_destroy(ctx);
    unsetenv("FEWCL_CACHE");
}

static void test_memory_limit(void **state) {
    setenv("FEWCL_MEM_LIMIT", "1M", 1);
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    fcl_tensor t;
    assert_int_equal(fcl_tensor_alloc1(ctx, &t, FCL_MEM_ACTIVATION, 1 << 20),
                     FEWCL_ERR_OUT_OF_MEMORY);
    TH_OK(fcl_tensor_alloc1(ctx, &t, FCL_MEM_ACTIVATION, 1 << 16));
    fcl_tensor_free(ctx, &t);
    fewcl_context_destroy(ctx);
    setenv("FEWCL_MEM_LIMIT", "much", 1);
    assert_int_equal(fewcl_context_create(NULL, &ctx), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "FEWCL_MEM_LIMIT"));
    unsetenv("FEWCL_MEM_LIMIT");
}

static void test_gpu_profile_limits(void **state) {
    setenv("FEWCL_DEVICE_PROFILE", "gpu", 1);
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    assert_true(ctx->limits.max_work_group <= 256);
    assert_true(ctx->limits.local_mem <= 48 * 1024);
    fewcl_context_destroy(ctx);
    unsetenv("FEWCL_DEVICE_PROFILE");
}

/* Every FEWCL_DEVICE_PROFILE caps the limits and takes the GPU kernel variants; an unknown
 * name is an error that lists the known ones. */
static void test_device_profiles(void **state) {
    static const struct {
        const char *name;
        size_t work_group, local_mem, simd;
    } want[] = {{"gpu", 256, 48 * 1024, 32},
                {"amd-like", 256, 32 * 1024, 64},
                {"intel-like", 256, 64 * 1024, 8}};
    fewcl_context *ctx;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        setenv("FEWCL_DEVICE_PROFILE", want[i].name, 1);
        TH_OK(fewcl_context_create(NULL, &ctx));
        assert_true(ctx->limits.max_work_group <= want[i].work_group);
        assert_true(ctx->limits.local_mem <= want[i].local_mem);
        assert_int_equal(ctx->limits.simd, want[i].simd);
        assert_string_equal(ctx->limits.profile, want[i].name);
        assert_false(ctx->limits.row_kernels);
        fewcl_context_destroy(ctx);
    }
    setenv("FEWCL_DEVICE_PROFILE", "nvidia", 1);
    assert_int_equal(fewcl_context_create(NULL, &ctx), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "'nvidia' is not a device profile"));
    assert_non_null(strstr(fewcl_last_error(), "amd-like"));
    unsetenv("FEWCL_DEVICE_PROFILE");
}

/* A launch beyond the limits fails with the numbers, before the driver: on PoCL under a
 * profile (amd-like: 256 items, 32 KiB) the driver itself would have run it. */
static void test_launch_checks_limits(void **state) {
    setenv("FEWCL_DEVICE_PROFILE", "amd-like", 1);
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    fcl_tensor t;
    TH_OK(fcl_tensor_alloc1(ctx, &t, FCL_MEM_ACTIVATION, 1024));
    fcl_kernel_entry *k;
    TH_OK(fcl_kernel(ctx, "elementwise", NULL, "fill", &k));
    TH_OK(fcl_args(k, "tuf", &t, 1024u, 1.0));
    size_t gws = 1024, lws = 512;
    assert_int_equal(fcl_launch(ctx, k, 1, &gws, &lws), FEWCL_ERR_INTERNAL);
    assert_non_null(strstr(fewcl_last_error(), "work-groups of 512 items"));
    assert_non_null(strstr(fewcl_last_error(), "FEWCL_DEVICE_PROFILE=amd-like"));
    lws = fcl_kernel_wg_1d(ctx, k);
    TH_OK(fcl_launch(ctx, k, 1, &gws, &lws));
    TH_OK(fcl_kernel(ctx, "rowwise", NULL, "l2n_forward", &k));
    TH_OK(fcl_args(k, "ttuufL", &t, &t, 1u, 16u, 1e-12, (size_t)40 * 1024));
    assert_int_equal(fcl_launch(ctx, k, 1, &lws, &lws), FEWCL_ERR_INTERNAL);
    assert_non_null(strstr(fewcl_last_error(), "bytes of local memory"));
    fcl_tensor_free(ctx, &t);
    fewcl_context_destroy(ctx);
    unsetenv("FEWCL_DEVICE_PROFILE");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_answers),
        cmocka_unit_test(test_parse_bytes),
        cmocka_unit_test(test_arena_accounting),
        cmocka_unit_test(test_arena_limits),
        cmocka_unit_test(test_exact_buffers),
        cmocka_unit_test(test_counting_and_real_arenas_agree),
        cmocka_unit_test(test_device_choice),
        cmocka_unit_test(test_program_cache),
        cmocka_unit_test(test_build_error_carries_the_log),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_gpu_profile_limits),
        cmocka_unit_test(test_device_profiles),
        cmocka_unit_test(test_launch_checks_limits),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
