/* Robustness of the tool (issue 8): bad data, weights, arguments and devices, and faults in the
 * middle of training, each run through `fewcl` as a user would. Every case asserts the exit
 * code (1 runtime failure, 2 usage error, before any device work) and a message naming the
 * thing at fault; the training faults also assert that the last checkpoint is byte for byte
 * what it was (nothing lost) and that no temporary file is left behind. */
#include <math.h>
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
 * stderr holds every |-separated part of `expect`. stdout is kept in stdout.txt (see
 * expect_stdout). */
static void expect_run(const char *env, const char *args, int code, const char *expect) {
    char cmd[4096], err[128];
    snprintf(err, sizeof err, "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "cd %s && %s '%s' %s > stdout.txt 2> %s", g_dir, env ? env : "",
             FEWCL_BIN, args, err);
    int status = system(cmd);
    size_t n;
    char *text = th_read_file(err, &n);
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

/* The last run's stdout (or stderr) holds every |-separated part of `expect` and none of the
 * |-separated parts of `absent` (NULL: no check). */
static void expect_output(const char *file, const char *expect, const char *absent) {
    char path[128], parts[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    size_t n;
    char *text = th_read_file(path, &n);
    assert_non_null(text);
    snprintf(parts, sizeof parts, "%s", expect);
    for (char *p = strtok(parts, "|"); p; p = strtok(NULL, "|"))
        if (!strstr(text, p)) fail_msg("%s lacks \"%s\":\n%s", file, p, text);
    snprintf(parts, sizeof parts, "%s", absent ? absent : "");
    for (char *p = strtok(parts, "|"); p; p = strtok(NULL, "|"))
        if (strstr(text, p)) fail_msg("%s holds \"%s\":\n%s", file, p, text);
    free(text);
}

static void expect_stdout(const char *expect, const char *absent) {
    expect_output("stdout.txt", expect, absent);
}

static int count_lines(const char *file) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    size_t n;
    char *text = th_read_file(path, &n);
    assert_non_null(text);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    free(text);
    return lines;
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
    expect_run(NULL, "train --data demo --meta-batch 0", 2, "--meta-batch '0'");
    expect_run(NULL, "train --data demo --episodes 6 --meta-batch 4", 2,
               "--episodes 6 is not a multiple of --meta-batch 4|give --episodes 4 or 8");
    expect_run(NULL, "plan --eval --meta-batch 2", 2, "--meta-batch 2 plans training steps");
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
    char *before = th_read_file(last, &n0);
    assert_non_null(before);
    snprintf(args, sizeof args, "train --data demo --run-dir %s --resume " SHORT " --epochs 2",
             name);
    expect_run(env, args, 1, expect);
    char *after = th_read_file(last, &n1);
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

/* Typos and help: a mistyped flag gets one line naming it, a suggestion and a pointer to
 * --help (not the whole usage); -h and --help print the usage on stdout and exit 0 on every
 * command; every usage error exits 2 and starts "fewcl CMD:". */
static void test_usage_errors_and_help(void **state) {
    (void)state;
    expect_run(NULL, "train --data demo --epsiodes 3", 2,
               "fewcl train: unknown option '--epsiodes'|did you mean --episodes?|"
               "see `fewcl train --help`");
    assert_true(count_lines("stderr.txt") <= 3);
    expect_run(NULL, "test --weights w --data demo --epizodes 3", 2,
               "fewcl test: unknown option '--epizodes'|did you mean --episodes?");
    assert_true(count_lines("stderr.txt") <= 3);
    expect_run(NULL, "plan --reduced-dimm 64", 2, "fewcl plan:|did you mean --reduced-dim?");
    expect_run(NULL, "train --data demo --ep 3", 2, "'--ep' is ambiguous|--epochs|--episodes");
    expect_run(NULL, "train --data demo --epochs", 2, "fewcl train: --epochs needs a value");
    expect_run(NULL, "train --data demo --quiet=yes", 2, "fewcl train: --quiet takes no value");
    expect_run(NULL, "demo -x", 2, "fewcl demo: unknown option '-x'");
    expect_run(NULL, "train --data demo -epochs 3", 2,
               "fewcl train: unknown option '-epochs'|did you mean --epochs?");
    expect_run(NULL, "predict --weigths w", 2,
               "fewcl predict: unknown option '--weigths'|did you mean --weights?");
    expect_run(NULL, "tarin", 2, "unknown command 'tarin'|did you mean `fewcl train`?");
    const char *commands[] = {"devices", "bench", "plan",    "train",
                              "test",    "demo",  "episode", "predict"};
    for (int i = 0; i < 8; i++)
        for (int dash = 0; dash < 2; dash++) {
            char args[64], want[64];
            snprintf(args, sizeof args, "%s %s", commands[i], dash ? "--help" : "-h");
            expect_run(NULL, args, 0, "");
            assert_int_equal(count_lines("stderr.txt"), 0);
            snprintf(want, sizeof want, "usage: fewcl %s", commands[i]);
            expect_stdout(want, NULL);
        }
    expect_run(NULL, "bench --model -h", 0, "");
    expect_stdout("usage: fewcl bench --model|model flags:", NULL);
    /* A resume of nothing is a usage error (a folder that holds a run: see below). */
    expect_run(NULL, "train --run-dir r-nothing --resume", 2,
               "fewcl train: --resume: nothing to resume in r-nothing");
    expect_run(NULL, "train --data demo --resume", 2, "fewcl train: --resume needs the --run-dir");
}

/* One "(default X)" per flag that has one, in the usage of train, with the model defaults of
 * the library (the parser's starting point), so help and behaviour cannot drift apart. */
static void test_help_shows_defaults(void **state) {
    (void)state;
    expect_run(NULL, "train --help", 0, "");
    fcl_model_config d = fcl_config_default();
    char want[1024];
    snprintf(want, sizeof want,
             "--image-size N|(default %d)|--n-query N|(default %d)|--reduced-dim N|(default %d)|"
             "(default %s)|--epochs N|(default 50)|--episodes N|(default 200)|--lr X|"
             "(default 0.001)|--workers N|(default 2)|--cache-mb N|(default 1024)|--heads N|"
             "(default %d; fsct: 8)|--depth N|(default %d; fsct: 1)|--dim-head N|--mlp-dim N|"
             "--checkpoint WHAT",
             d.image_size, d.n_query, d.reduced_dim, fcl_backbone_name(d.backbone), d.heads,
             d.depth);
    expect_stdout(want, NULL);
    /* Every flag line says its default, but for the few that have none. */
    char path[128];
    snprintf(path, sizeof path, "%s/stdout.txt", g_dir);
    size_t n;
    char *text = th_read_file(path, &n);
    const char *no_default[] = {
        "--weights ", "--backbone-weights", "--resume",   "--quiet",    "--json",
        "--data ",    "--train-list",       "--val-list", "--test-list"};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  --", 4) != 0) continue;
        int exempt = 0;
        for (int i = 0; i < 9; i++)
            exempt |= strncmp(line + 2, no_default[i], strlen(no_default[i])) == 0;
        char *next = line + strlen(line) + 1; /* a long default goes on the next line */
        if (!exempt && !strstr(line, "(default") && !(next < text + n && strstr(next, "(default")))
            fail_msg("train --help: no default on \"%s\"", line);
    }
    free(text);
    expect_run(NULL, "test --help", 0, "");
    expect_stdout("(default 600)|a fewcl checkpoint's own values|--workers N", NULL);
    expect_run(NULL, "plan --help", 0, "");
    snprintf(want, sizeof want, "--image-size N|(default %d)|8gb", d.image_size);
    expect_stdout(want, NULL);
    expect_run(NULL, "demo --help", 0, "");
    expect_stdout("(default 56)|(default 8)|(default 600)|(default cosine)", NULL);
}

/* Images smaller than --image-size: a warning naming their size and the flag; config.json
 * records the projection as it acts (reduced_dim above D: none, recorded as D). */
static void test_upscaling_and_effective_config(void **state) {
    (void)state;
    /* conv4 at 32 px: D = 64 x 2 x 2 = 256 < 512. */
    expect_run(NULL, "train --data demo --run-dir r-up " SHORT " --image-size 32 --reduced-dim 512",
               0, "warning: the images are 16x16 px|--image-size is 32|give --image-size 16");
    expect_output("r-up/config.json", "\"reduced_dim\":\t256", NULL);
}

/* Resume takes the settings from the run folder and refuses only contradictions; a finished
 * run says so; `fewcl test` keeps one result file per weights and length. */
static void test_resume_and_results(void **state) {
    (void)state;
    expect_run(NULL, "train --data demo --run-dir r-res " SHORT, 0, "");
    expect_output("stderr.txt", "", "upscaled"); /* 16 px images, --image-size 16 */
    /* One epoch: the point in the middle of the plot area (x0 + half its width). */
    expect_output("r-res/curves.svg",
                  "best: epoch 1|<path d=\"M|x=\"233.0\" y=\"246.0\" text-anchor=\"middle\">1<",
                  "<polygon");
    expect_run(NULL, "train --data demo --run-dir r-res " SHORT, 2,
               "fewcl train: r-res already holds a run|--resume");
    expect_run(NULL, "train --run-dir r-res --resume --epochs 2 --quiet", 0, "");
    expect_stdout("resuming r-res at epoch 2, episode 1 (1 of 2 epochs done", NULL);
    expect_output("r-res/metrics.csv", "\n2,", NULL);
    expect_run(NULL, "train --run-dir r-res --resume", 0, "");
    expect_stdout("the run in r-res is already finished: 2 of 2 epochs", "resuming");
    expect_run(NULL, "train --run-dir r-res --resume --image-size 32 --seed 5 --n-way 3", 2,
               "fewcl train: --resume:|stored vs given|--image-size 16 vs 32|--seed 1 vs 5");
    expect_output("stderr.txt", "", "--n-way"); /* agrees with the stored value */
    expect_run(NULL, "train --run-dir r-res --resume --meta-batch 2", 2,
               "stored vs given|--meta-batch 1 vs 2");
    /* The data is recorded with absolute paths; the same data given again is no news, other
     * data is said. */
    expect_output("r-res/config.json", "\"train_data\":\t\"/", NULL);
    expect_run(NULL, "train --run-dir r-res --resume --data demo", 0, "");
    expect_output("stderr.txt", "", "warning");
    expect_run(NULL, "train --run-dir r-res --resume --train-list demo/val.json", 0,
               "warning: the run in r-res was trained on|goes on with demo/val.json");
    /* Tests of other lengths are kept side by side, and the tool says where. */
    expect_run(NULL, "test --weights r-res/best.safetensors --data demo --episodes 2 --quiet", 0,
               "saved in r-res/test_novel_best_3w2s_2.json");
    expect_run(NULL, "test --weights r-res/best.safetensors --data demo --episodes 3 --quiet", 0,
               "saved in r-res/test_novel_best_3w2s_3.json");
    expect_output("r-res/test_novel_best_3w2s_2.json", "\"episodes\":\t2", NULL);
    expect_output("r-res/test_novel_best_3w2s_3.json", "\"episodes\":\t3", NULL);
}

/* `fewcl plan`: reasons in human units with the shortfall, advice that fits a plan, size
 * suffixes in any case. */
static void test_plan_messages(void **state) {
    (void)state;
    expect_run("FEWCL_MEM_LIMIT=2M", "plan " MODEL " --n-query 16", 1, "");
    expect_stdout("fits: no|MiB|planned buffers take|over the budget|budget 2.00 MiB (FEWCL_MEM_LIMIT)",
                  "bytes|run `fewcl plan`");
    expect_run(NULL, "plan --fit 64K " MODEL, 1, "");
    expect_stdout("nothing fits|over the budget|--image-size", "bytes|run `fewcl plan`");
    expect_run(NULL, "plan --fit 64K --reduced-dim 0 " MODEL, 1, "");
    expect_stdout("nothing fits", "lower --reduced-dim|run `fewcl plan`");
    const char *sizes[] = {"8gb", "8GiB", "8G", "8gib"};
    for (int i = 0; i < 4; i++) {
        char args[256];
        snprintf(args, sizeof args, "plan --fit %s " MODEL, sizes[i]);
        expect_run(NULL, args, 0, "");
        expect_stdout("budget 8.00 GiB (--fit)|fits: yes", NULL);
    }
    expect_run(NULL, "plan --fit 8qb", 2, "fewcl plan: --fit '8qb' is not a size");
}

/* Data errors that point to the fix. */
static void test_data_errors_point_to_the_fix(void **state) {
    (void)state;
    expect_run(NULL, "train --data nowhere " SHORT, 1,
               "nowhere/base.json does not exist|fsct_filelists.py|--train-list");
    /* A filelist whose relative paths resolve elsewhere: --data-root is the fix. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p lists && cp demo/base.json lists/base.json",
             g_dir);
    sh(cmd);
    expect_run(NULL, "train --train-list lists/base.json --run-dir r-rel " SHORT, 1,
               "lists/base.json: its first image|does not exist|--data-root");
    expect_run(NULL, "train --train-list lists/base.json --data-root demo --run-dir r-rel " SHORT,
               0, "");
    expect_run(NULL, "test --weights w.safetensors --test-list demo/novel.json --split val", 2,
               "no data for the val split|--val-list");
}

/* curves.svg: round tick values, the validation interval as a band, the best epoch marked,
 * and a one-epoch run drawn in the middle of its panel. Progress on a redirected stderr:
 * plain lines, no carriage returns. */
static void test_curves_and_progress(void **state) {
    (void)state;
    expect_run(NULL,
               "train --data demo --run-dir r-svg --epochs 3 --episodes 2 --val-episodes 2 "
               "--workers 1 " MODEL,
               0, "epoch 1/3 train: 2/2 episodes|took");
    expect_output("stderr.txt", "", "\r|[#");
    expect_output("r-svg/curves.svg", "<polygon|its 95% CI|best: epoch|stroke-dasharray", NULL);
    /* Every y tick label is a multiple of a step of 1, 2 or 5 times a power of ten. */
    char path[128];
    snprintf(path, sizeof path, "%s/r-svg/curves.svg", g_dir);
    size_t n;
    char *svg = th_read_file(path, &n);
    double ticks[32];
    int k = 0;
    for (char *p = svg; (p = strstr(p, "text-anchor=\"end\">")) && k < 32; p++)
        ticks[k++] = strtod(p + strlen("text-anchor=\"end\">"), NULL);
    assert_true(k >= 6); /* two panels, three or more ticks each */
    for (int i = 1; i < k; i++) {
        double step = ticks[i] - ticks[i - 1];
        if (step <= 0) continue; /* the next panel starts */
        double mag = pow(10, floor(log10(step) + 1e-9)), f = step / mag;
        assert_true(fabs(f - 1) < 1e-6 || fabs(f - 2) < 1e-6 || fabs(f - 5) < 1e-6);
        assert_true(fabs(ticks[i] / step - floor(ticks[i] / step + 0.5)) < 1e-6);
    }
    free(svg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_device_limits_and_cache),
        cmocka_unit_test(test_training_faults_keep_the_checkpoint),
        cmocka_unit_test(test_usage_errors_and_help),
        cmocka_unit_test(test_help_shows_defaults),
        cmocka_unit_test(test_upscaling_and_effective_config),
        cmocka_unit_test(test_resume_and_results),
        cmocka_unit_test(test_plan_messages),
        cmocka_unit_test(test_data_errors_point_to_the_fix),
        cmocka_unit_test(test_curves_and_progress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
