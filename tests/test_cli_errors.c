/* Robustness of the tool (issue 8): bad data, weights, arguments and devices, and faults in the
 * middle of training, each run through `fewcl` as a user would. Every case asserts the exit
 * code (1 runtime failure, 2 usage error, before any device work) and a message naming the
 * thing at fault; the training faults also assert that the last checkpoint is byte for byte
 * what it was (nothing lost) and that no temporary file is left behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/demo.h"
#include "harness.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

#define MODEL                                                                                      \
    "--image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32 --heads 2 --dim-head 8 "    \
    "--mlp-dim 16"
#define SHORT "--epochs 1 --episodes 2 --val-episodes 1 --workers 1 --quiet " MODEL

static char g_dir[64];

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

static void sh(const char *cmd) { assert_int_equal(system(cmd), 0); }

/* A class folder f/<class>/ with 6 glyph images per class, copied from a rendered demo set. */
static void make_folder(const char *name, int classes) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p %s && for c in $(ls demo/images/latin_upper | head -%d); do "
             "cp -r demo/images/latin_upper/$c %s/$c; done",
             g_dir, name, classes, name);
    sh(cmd);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fewcl-cli-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    char out[128];
    snprintf(out, sizeof out, "%s/demo", g_dir);
    fcl_demo_options o = {
        .out_dir = out, .images_per_class = 6, .size = 16, .min_faces = 8, .seed = 2};
    fcl_demo_summary s;
    return fcl_demo_render(&o, &s) == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? th_teardown(state) : -1;
}

/* Runs `fewcl <args>` (with `env` before it, in g_dir) and checks the exit code and that
 * stderr holds every |-separated part of `expect`. */
static void expect_run(const char *env, const char *args, int code, const char *expect) {
    char cmd[4096], err[128];
    snprintf(err, sizeof err, "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "cd %s && %s '%s' %s > /dev/null 2> %s", g_dir, env ? env : "",
             FEWCL_BIN, args, err);
    int status = system(cmd);
    size_t n;
    char *text = read_all(err, &n);
    assert_non_null(text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
        fail_msg("fewcl %s: exit %d, expected %d; stderr:\n%s", args,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, code, text);
    char parts[512];
    snprintf(parts, sizeof parts, "%s", expect);
    for (char *p = strtok(parts, "|"); p; p = strtok(NULL, "|"))
        if (!strstr(text, p)) fail_msg("fewcl %s: stderr lacks \"%s\":\n%s", args, p, text);
    free(text);
}

static void test_bad_data(void **state) {
    (void)state;
    make_folder("f3", 3);
    expect_run(NULL, "train --data nowhere " SHORT, 1, "nowhere/base.json does not exist");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && cp -r f3 empty && mkdir empty/zzz", g_dir);
    sh(cmd);
    expect_run(NULL, "train --train-list empty --run-dir r-empty " SHORT, 1,
               "empty/zzz holds no images");
    expect_run(NULL, "train --train-list f3 --run-dir r-few " SHORT " --k-shot 5", 1,
               "has 6 images, fewer than k_shot + n_query = 7");
    expect_run(NULL, "train --train-list f3 --run-dir r-way " SHORT " --n-way 5", 1,
               "3 classes, fewer than --n-way 5");
    /* Bad images: garbage, a truncated PNG, an empty file, a header claiming 100000x100000. */
    const char *bad[] = {"garbage", "truncated", "empty", "huge"};
    for (int i = 0; i < 4; i++) {
        char dir[128], path[200];
        snprintf(cmd, sizeof cmd, "cd %s && rm -rf b && cp -r f3 b", g_dir);
        sh(cmd);
        snprintf(dir, sizeof dir, "%s/b/%s", g_dir, "U+0041");
        snprintf(path, sizeof path, "%s/zz-%s.png", dir, bad[i]);
        if (i == 0) write_bytes(path, "not an image at all", 19);
        if (i == 1) {
            snprintf(cmd, sizeof cmd, "head -c 60 %s/00.png > %s", dir, path);
            sh(cmd);
        }
        if (i == 2) write_bytes(path, "", 0);
        if (i == 3)
            write_bytes(path,
                        "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\1\x86\xa0\0\1\x86\xa0\x08\x02\0\0\0"
                        "\0\0\0\0",
                        33);
        char args[512], want[128];
        snprintf(args, sizeof args,
                 "train --train-list b --run-dir r-bad%d " SHORT " --episodes 12", i);
        snprintf(want, sizeof want, "zz-%s.png|--skip-bad-images", bad[i]);
        expect_run(NULL, args, 1, want);
        snprintf(
            args, sizeof args,
            "train --train-list b --run-dir r-skip%d --skip-bad-images " SHORT " --episodes 12", i);
        snprintf(want, sizeof want, "zz-%s.png", bad[i]);
        expect_run(NULL, args, 0, want); /* a warning naming the file */
    }
    /* Filelists: wrong types, a missing key, arrays of different lengths. */
    const char *lists[][2] = {
        {"{\"image_names\": 3, \"image_labels\": []}", "image_names"},
        {"{\"image_names\": [\"a.png\"]}", "image_labels"},
        {"{\"image_names\": [\"a.png\", \"b.png\"], \"image_labels\": [0]}", "2"},
        {"{\"image_names\": [\"a.png\"], \"image_labels\": [\"x\"]}", "image_labels"},
        {"[1, 2", "list.json"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        char path[128], args[256], want[128];
        snprintf(path, sizeof path, "%s/list.json", g_dir);
        write_bytes(path, lists[i][0], strlen(lists[i][0]));
        snprintf(args, sizeof args, "train --train-list list.json --run-dir r-json " SHORT);
        snprintf(want, sizeof want, "list.json|%s", lists[i][1]);
        expect_run(NULL, args, 1, want);
    }
    /* A file name that is not UTF-8 is just bytes: it loads. */
    snprintf(cmd, sizeof cmd,
             "cd %s && rm -rf u && cp -r f3 u && mv u/U+0041/00.png \"u/U+0041/$(printf "
             "'x\\377\\376.png')\"",
             g_dir);
    sh(cmd);
    expect_run(NULL, "train --train-list u --run-dir r-utf " SHORT, 0, "");
}

/* Weights of the small model without a config (as exported from PyTorch), optionally with
 * another projection size or without one tensor. */
static void write_weights(const char *path, int reduced_dim, const char *skip) {
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = fcl_config_default();
    c.image_size = 16, c.n_way = 3, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = reduced_dim, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 1, &m));
    fcl_st_writer *w = fcl_st_writer_new();
    for (int i = 0; i < m->params.n; i++)
        if (!skip || strcmp(m->params.items[i].name, skip))
            TH_OK(fcl_st_writer_add_tensor(ctx, w, m->params.items[i].name,
                                           &m->params.items[i].value));
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    fcl_model_destroy(ctx, m);
}

static void test_bad_weights(void **state) {
    (void)state;
    char path[128], cmd[512];
    const char *test = "test --data demo --episodes 2 --quiet " MODEL " --weights ";
    char args[512];
    snprintf(path, sizeof path, "%s/w-ok.safetensors", g_dir);
    write_weights(path, 32, NULL);
    snprintf(args, sizeof args, "%sw-ok.safetensors", test);
    expect_run(NULL, args, 0, "");
    snprintf(cmd, sizeof cmd, "cd %s && head -c 1000 w-ok.safetensors > w-trunc.safetensors",
             g_dir);
    sh(cmd);
    snprintf(args, sizeof args, "%sw-trunc.safetensors", test);
    expect_run(NULL, args, 1, "w-trunc.safetensors");
    unsigned char big_header[16] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, '{', '}'};
    snprintf(path, sizeof path, "%s/w-header.safetensors", g_dir);
    write_bytes(path, big_header, sizeof big_header);
    snprintf(args, sizeof args, "%sw-header.safetensors", test);
    expect_run(NULL, args, 1, "w-header.safetensors|header");
    snprintf(path, sizeof path, "%s/w-64.safetensors", g_dir);
    write_weights(path, 64, NULL);
    snprintf(args, sizeof args, "%sw-64.safetensors", test);
    expect_run(NULL, args, 1, "w-64.safetensors|dim_reduction.0.weight");
    snprintf(path, sizeof path, "%s/w-missing.safetensors", g_dir);
    write_weights(path, 32, "proto_weight");
    snprintf(args, sizeof args, "%sw-missing.safetensors", test);
    expect_run(NULL, args, 1, "w-missing.safetensors|proto_weight");
}

static void test_bad_arguments(void **state) {
    (void)state;
    expect_run(NULL, "train --data demo --episodes abc", 2, "--episodes 'abc'");
    expect_run(NULL, "train --data demo --epochs 0", 2, "--epochs '0'");
    expect_run(NULL, "train --data demo --n-way -3", 2, "--n-way");
    expect_run(NULL, "train --data demo --image-size 8", 2, "--image-size 8 is too small");
    expect_run(NULL, "train --data demo --backbone vgg", 2, "'vgg'");
    expect_run(NULL, "train --data demo --device no-such-device", 2, "no-such-device");
    expect_run("FEWCL_DEVICE=no-such-device", "plan", 2, "no-such-device");
    expect_run(NULL, "train " MODEL, 2, "no training data");
    expect_run(NULL, "test --data demo", 2, "--weights");
    expect_run(NULL, "train --data demo --resume", 2, "--run-dir");
    expect_run(NULL, "frobnicate", 2, "unknown command");
}

static void test_device_limits_and_cache(void **state) {
    (void)state;
    expect_run("FEWCL_MEM_LIMIT=2M", "train --data demo --run-dir r-mem " SHORT, 1,
               "does not fit|fewcl plan --fit");
    char path[128];
    snprintf(path, sizeof path, "%s/r-mem", g_dir);
    assert_int_equal(access(path, F_OK), -1); /* refused before anything was written */
    expect_run("FEWCL_CACHE_DIR=/etc/hostname/sub", "train --data demo --run-dir r-cache " SHORT, 0,
               "warning: cannot write the program cache in /etc/hostname/sub");
}

/* A one-epoch run, then a resumed second epoch under a fault: the fault is reported and the
 * checkpoint of epoch 1 is untouched, with no temporary file left. */
static void fault_in_epoch_two(const char *name, const char *env, const char *expect) {
    char args[1024], last[200], cmd[512];
    snprintf(args, sizeof args, "train --data demo --run-dir %s " SHORT, name);
    expect_run(NULL, args, 0, "");
    snprintf(last, sizeof last, "%s/%s/last.safetensors", g_dir, name);
    size_t n0, n1;
    char *before = read_all(last, &n0);
    assert_non_null(before);
    snprintf(args, sizeof args, "train --data demo --run-dir %s --resume " SHORT " --epochs 2",
             name);
    expect_run(env, args, 1, expect);
    char *after = read_all(last, &n1);
    assert_non_null(after);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s/%s | grep tmp)\"", g_dir, name);
    sh(cmd);
    free(before);
    free(after);
}

/* Kernels from a modified copy of cl/ (FEWCL_KERNEL_DIR) inject device faults. */
static void mutated_kernels(const char *dir, const char *file, const char *sed) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s/%s && cp -r %s/../../cl %s/%s && sed -i '%s' %s/%s/%s && "
             "! cmp -s %s/../../cl/%s %s/%s/%s",
             g_dir, dir, FEWCL_TEST_FIXTURES, g_dir, dir, sed, g_dir, dir, file,
             FEWCL_TEST_FIXTURES, file, g_dir, dir, file);
    sh(cmd);
}

static void test_training_faults_keep_the_checkpoint(void **state) {
    (void)state;
    char env[512];
    /* An OpenCL error mid-run: relu_forward demands a work-group size nobody launches. */
    mutated_kernels("cl-error", "elementwise.cl",
                    "s/^kernel void relu_forward/__attribute__((reqd_work_group_size(3, "
                    "1, 1))) kernel void relu_forward/");
    snprintf(env, sizeof env, "FEWCL_CACHE=off FEWCL_KERNEL_DIR=%s/cl-error", g_dir);
    fault_in_epoch_two("r-clerr", env, "relu_forward|epoch 2, episode 1|is intact");
    /* A loss that becomes NaN: the cross-entropy kernel writes NaN. */
    mutated_kernels("cl-nan", "loss.cl", "s|loss\\[oo\\] = total / (float)rows|loss[oo] = NAN|");
    snprintf(env, sizeof env, "FEWCL_CACHE=off FEWCL_KERNEL_DIR=%s/cl-nan", g_dir);
    fault_in_epoch_two("r-nan", env, "epoch 2, episode 1|is intact|loss is");
    /* A full disk when the checkpoints of epoch 2 are written (fault injection: writes fail
     * with ENOSPC after 1000 bytes; no file of ours is that small). */
    fault_in_epoch_two("r-disk", "FEWCL_FAULT_DISK_FULL=1000", "No space left on device|intact");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_device_limits_and_cache),
        cmocka_unit_test(test_training_faults_keep_the_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
