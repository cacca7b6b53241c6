/* Backbone weights from a foreign state_dict (fcl_model_load_backbone) and the safetensors
 * pieces it needs: files holding non-F32 tensors (torchvision's I64 num_batches_tracked) are
 * read, those tensors skipped unless asked for as F32; every load error names key and file and
 * changes nothing. The torchvision resnet34 parity itself (features against torchvision) is in
 * test_episode.c, which runs outside oclgrind; this file is small enough for it (a conv4 model:
 * its backbone keys are trunk.<i>.C/BN.*, and the loader does not care which backbone). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/safetensors.h"
#include "nn/model.h"

static void temp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/fewcl-backbone-weights-%d-%s.safetensors", (int)getpid(), tag);
}

/* I64, F16 and U8 tensors next to F32 ones: written with fcl_st_writer_add_raw, read back with
 * their dtype, shape and bytes; fcl_st_f32 refuses them by name; unknown dtypes are refused. */
static void test_non_f32_tensors(void **state) {
    char path[256];
    temp_path(path, sizeof path, "dtypes");
    fcl_st_writer *w = fcl_st_writer_new();
    int64_t counter = 123456789012345LL, two[1] = {2}, three[2] = {1, 3};
    uint16_t half[2] = {0x3c00, 0xc000}; /* 1.0, -2.0 */
    uint8_t bytes[3] = {1, 2, 255};
    float f[2] = {0.5f, -1.5f};
    TH_OK(fcl_st_writer_add(w, "a.weight", 1, two, f));
    TH_OK(fcl_st_writer_add_raw(w, "a.num_batches_tracked", "I64", 0, NULL, &counter));
    TH_OK(fcl_st_writer_add_raw(w, "h", "F16", 1, two, half));
    TH_OK(fcl_st_writer_add_raw(w, "u", "U8", 2, three, bytes));
    assert_int_equal(fcl_st_writer_add_raw(w, "bad", "F12", 1, two, f), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "unknown dtype 'F12'"));
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);

    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    unlink(path);
    assert_int_equal(st->n, 4);
    const fcl_st_tensor *t = fcl_st_find(st, "a.num_batches_tracked");
    assert_non_null(t);
    assert_string_equal(t->dtype, "I64");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->end - t->begin, 8);
    int64_t back;
    memcpy(&back, st->data + t->begin, 8);
    assert_true(back == counter);
    t = fcl_st_find(st, "u");
    assert_string_equal(t->dtype, "U8");
    assert_int_equal(t->shape[1], 3);
    assert_memory_equal(st->data + t->begin, bytes, 3);
    t = fcl_st_find(st, "h");
    assert_string_equal(t->dtype, "F16");
    assert_memory_equal(st->data + t->begin, half, 4);
    const float *data;
    size_t n;
    TH_OK(fcl_st_f32(st, "a.weight", 1, two, &data, &n));
    assert_true(n == 2 && data[0] == 0.5f && data[1] == -1.5f);
    assert_int_equal(fcl_st_f32(st, "a.num_batches_tracked", 0, NULL, &data, &n), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "'a.num_batches_tracked' is I64"));
    fcl_st_free(st);
}

static fcl_model *small_model(void) {
    fcl_model_config c = fcl_config_default();
    c.image_size = 16, c.n_way = 2, c.k_shot = 1, c.n_query = 1;
    c.reduced_dim = 0, c.heads = 1, c.dim_head = 4, c.mlp_dim = 4, c.depth = 1;
    fcl_model *m;
    TH_OK(fcl_model_create(th_ctx(), &c, 3, &m));
    return m;
}

/* Writes the backbone of `m` as a foreign state_dict: keys prefix + K (K without "feature."),
 * value j of parameter i = i + j/1000; `skip` left out, `reshape` with its first axis doubled,
 * `as_f16` stored as F16; plus an fc.weight, an I64 counter per BN and a head key to ignore. */
static void write_foreign(const fcl_model *m, const char *path, const char *prefix,
                          const char *skip, const char *reshape, const char *as_f16) {
    fcl_st_writer *w = fcl_st_writer_new();
    for (int i = 0; i < m->params.n; i++) {
        const fcl_param *p = &m->params.items[i];
        if (strncmp(p->name, "feature.", 8) || (skip && !strcmp(p->name, skip))) continue;
        char key[256];
        snprintf(key, sizeof key, "%s%s", prefix, p->name + 8);
        int64_t shape[FCL_MAX_DIMS];
        size_t n = 1;
        for (int d = 0; d < p->value.ndim; d++)
            shape[d] = p->value.shape[d], n *= (size_t)shape[d];
        if (reshape && !strcmp(p->name, reshape)) shape[0] *= 2, n *= 2;
        float *v = malloc(n * sizeof *v);
        assert_non_null(v);
        for (size_t j = 0; j < n; j++)
            v[j] = (float)i + (float)j / 1000;
        if (as_f16 && !strcmp(p->name, as_f16))
            TH_OK(fcl_st_writer_add_raw(w, key, "F16", p->value.ndim, shape, v)); /* n·2 bytes */
        else
            TH_OK(fcl_st_writer_add(w, key, p->value.ndim, shape, v));
        if (strstr(p->name, ".BN.weight")) {
            int64_t zero = 0;
            char counter[256];
            snprintf(counter, sizeof counter, "%.*snum_batches_tracked",
                     (int)(strlen(key) - strlen("weight")), key);
            TH_OK(fcl_st_writer_add_raw(w, counter, "I64", 0, NULL, &zero));
        }
        free(v);
    }
    int64_t fc[2] = {10, 64};
    float *zeros = calloc(640, sizeof *zeros);
    char key[256];
    snprintf(key, sizeof key, "%sfc.weight", prefix);
    TH_OK(fcl_st_writer_add(w, key, 2, fc, zeros));
    TH_OK(fcl_st_writer_add(w, "proto_weight", 2, fc, zeros)); /* a head key: not the backbone's */
    free(zeros);
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
}

/* Every backbone value equals what write_foreign wrote (or, with `untouched`, what it held). */
static void check_values(fcl_model *m, float **untouched) {
    for (int i = 0; i < m->params.n; i++) {
        const fcl_param *p = &m->params.items[i];
        float *got = th_download(&p->value);
        for (size_t j = 0; j < p->value.numel; j++) {
            float want = untouched                         ? untouched[i][j]
                         : strncmp(p->name, "feature.", 8) ? got[j]
                                                           : (float)i + (float)j / 1000;
            if (got[j] != want) fail_msg("%s[%zu] = %g, expected %g", p->name, j, got[j], want);
        }
        free(got);
    }
}

static void test_load_with_prefix(void **state) {
    fcl_model *m = small_model();
    char path[256];
    temp_path(path, sizeof path, "ok");
    write_foreign(m, path, "module.backbone.", NULL, NULL, NULL);
    /* the head's values before: the loader must leave them */
    fcl_param *head = fcl_params_find(&m->params, "proto_weight");
    assert_non_null(head);
    float *before = th_download(&head->value);
    TH_OK(fcl_model_load_backbone(th_ctx(), m, path, "module.backbone."));
    check_values(m, NULL);
    float *after = th_download(&head->value);
    assert_memory_equal(before, after, head->value.numel * sizeof *before);
    free(before);
    free(after);
    unlink(path);
    fcl_model_destroy(th_ctx(), m);
}

/* Each error names the key and the file, and leaves every value as it was. */
static void expect_error(fcl_model *m, const char *path, const char *prefix, const char *what) {
    float **held = calloc((size_t)m->params.n, sizeof *held);
    for (int i = 0; i < m->params.n; i++)
        held[i] = th_download(&m->params.items[i].value);
    assert_int_equal(fcl_model_load_backbone(th_ctx(), m, path, prefix), FEWCL_ERR_FORMAT);
    const char *msg = fewcl_last_error();
    print_message("    %s\n", msg);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, what));
    check_values(m, held);
    for (int i = 0; i < m->params.n; i++)
        free(held[i]);
    free(held);
}

static void test_load_errors(void **state) {
    fcl_model *m = small_model();
    char path[256];
    temp_path(path, sizeof path, "bad");
    write_foreign(m, path, "", "feature.trunk.2.BN.running_var", NULL, NULL);
    expect_error(m, path, "",
                 "'trunk.2.BN.running_var' (for feature.trunk.2.BN.running_var) is "
                 "missing (problems with 1 of the backbone's 24 keys)");
    write_foreign(m, path, "", NULL, "feature.trunk.1.C.weight", NULL);
    expect_error(m, path, "", "'trunk.1.C.weight' has shape [128,64,3,3], expected [64,64,3,3]");
    write_foreign(m, path, "", NULL, NULL, "feature.trunk.3.BN.bias");
    expect_error(m, path, "", "'trunk.3.BN.bias' is F16");
    write_foreign(m, path, "", NULL, NULL, NULL);
    expect_error(m, path, "net.",
                 "'net.trunk.0.C.weight' (for feature.trunk.0.C.weight) is "
                 "missing (problems with 24 of the backbone's 24 keys; is the key "
                 "prefix right?)");
    TH_OK(fcl_model_load_backbone(th_ctx(), m, path, "")); /* and the good file loads */
    check_values(m, NULL);
    assert_int_equal(fcl_model_load_backbone(th_ctx(), m, "/nonexistent.safetensors", ""),
                     FEWCL_ERR_IO);
    assert_non_null(strstr(fewcl_last_error(), "/nonexistent.safetensors"));
    unlink(path);
    fcl_model_destroy(th_ctx(), m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_f32_tensors),
        cmocka_unit_test(test_load_with_prefix),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
