/* Gradient checkpointing (docs/spec.md §3, --checkpoint none|blocks|backbone|all): one training
 * step (forward, backward) of the whole model from the same weights and the same episode, once per
 * mode. Checkpointing only frees activations in forward and recomputes them in backward with
 * the same kernels on the same values, so everything must be bit-identical to the run without
 * it: logits, features, every loss, every parameter gradient, every BatchNorm running
 * statistic (updated once per step, not again by a recompute), and the logits of an evaluation
 * episode run after the step.
 *
 * Tolerance: 0. Every float is compared bit for bit (a -0/+0 difference would count too); a
 * mismatch reports how many elements differ and the largest absolute difference.
 *
 * Small (th_small: the slow portable variants) whole steps take minutes: there the backbone
 * (conv4 at 16, two images) and the heads run alone, from given inputs and upstream gradients.
 * (Not run under oclgrind: tests/CMakeLists.txt says why.)
 *
 * Memory: with checkpointing the training step's peak must drop where the activations that it
 * frees are what sets the peak, measured on the device's arena and planned (fcl_episode_plan;
 * tests/test_plan.c shows plan == measured with checkpointing on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/model.h"
#include "plan/episode_plan.h"
#include "runtime/arena.h"

#define MAX_T 512

/* What one training step produced, downloaded. */
typedef struct step {
    int n;
    char what[MAX_T][160];
    float *data[MAX_T];
    size_t numel[MAX_T];
    size_t peak; /* arena peak during forward + backward, above the bytes live before */
} step;

static void keep(step *s, const char *what, const fcl_tensor *t) {
    assert_true(s->n < MAX_T);
    snprintf(s->what[s->n], sizeof s->what[0], "%s", what);
    s->data[s->n] = th_download(t);
    s->numel[s->n] = t->numel;
    s->n++;
}

static void step_free(step *s) {
    for (int i = 0; i < s->n; i++)
        free(s->data[i]);
    memset(s, 0, sizeof *s);
}

/* Builds the model (seed 3: the same weights whatever the mode), trains one step on the
 * pattern episode, and keeps the outputs, the gradients and the BatchNorm buffers. */
static void train_step(fcl_model_config c, fcl_checkpointing mode, step *s) {
    fewcl_context *ctx = th_ctx();
    c.checkpoint = mode;
    memset(s, 0, sizeof *s);
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 3, &m));
    fcl_tensor x;
    int B = c.n_way * (c.k_shot + c.n_query);
    TH_OK(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4,
                           (int[]){B, 3, c.image_size, c.image_size}));
    TH_OK(fcl_pattern_fill(ctx, &x, 11, 1.0f));
    TH_OK(fewcl_finish(ctx));
    fcl_arena_reset_peak(ctx->arena);
    size_t before = fcl_arena_stats_get(ctx->arena)->in_use;
    fcl_head_out out;
    TH_OK(fcl_model_forward(ctx, m, &x, 1, &out));
    /* the outputs live in the head's saved state, which backward frees: read them first */
    keep(s, "features", out.features);
    keep(s, "logits", out.logits);
    const fcl_tensor *losses[] = {out.loss, out.loss_ce, out.loss_var, out.loss_cov};
    const char *loss_names[] = {"loss", "loss_ce", "loss_var", "loss_cov"};
    for (int i = 0; i < 4; i++)
        if (losses[i]) keep(s, loss_names[i], losses[i]);
    TH_OK(fcl_model_backward(ctx, m));
    TH_OK(fewcl_finish(ctx));
    s->peak = fcl_arena_stats_get(ctx->arena)->peak - before;
    /* An evaluation episode after the step (checkpointing frees activations there too): it
     * normalises with the running statistics the step left. */
    TH_OK(fcl_model_forward(ctx, m, &x, 0, &out));
    keep(s, "evaluation logits", out.logits);
    fcl_model_release(ctx, m);
    for (int i = 0; i < m->params.n; i++) {
        const fcl_param *p = &m->params.items[i];
        char what[160];
        snprintf(what, sizeof what, "%s %s", p->is_buffer ? "buffer" : "grad", p->name);
        keep(s, what, p->is_buffer ? &p->value : &p->grad);
    }
    fcl_tensor_free(ctx, &x);
    fcl_model_destroy(ctx, m);
}

/* Bit-for-bit equality of two steps, tensor by tensor. */
static void assert_identical(const char *mode, const step *want, const step *got) {
    assert_int_equal(want->n, got->n);
    int bad = 0;
    for (int i = 0; i < want->n; i++) {
        assert_string_equal(want->what[i], got->what[i]);
        assert_int_equal(want->numel[i], got->numel[i]);
        size_t differ = 0;
        double worst = 0;
        for (size_t j = 0; j < want->numel[i]; j++)
            if (memcmp(&want->data[i][j], &got->data[i][j], sizeof(float)) != 0) {
                differ++;
                worst = fmax(worst, fabs((double)want->data[i][j] - got->data[i][j]));
            }
        if (differ) {
            print_message("    %s: %s differs in %zu of %zu elements (max |diff| %.3e)\n", mode,
                          want->what[i], differ, want->numel[i], worst);
            bad++;
        }
    }
    if (bad) fail_msg("checkpoint %s: %d tensors differ from the run without", mode, bad);
}

static void check_modes(const char *name, fcl_model_config c) {
    step none, other;
    train_step(c, FCL_CKPT_NONE, &none);
    /* The step did something: running statistics moved and some gradient is nonzero. */
    int moved = 0, nonzero = 0;
    for (int i = 0; i < none.n; i++)
        for (size_t j = 0; j < none.numel[i]; j++) {
            float v = none.data[i][j];
            if (!strncmp(none.what[i], "buffer", 6) && strstr(none.what[i], "running_mean"))
                moved |= v != 0.0f;
            if (!strncmp(none.what[i], "grad", 4)) nonzero |= v != 0.0f;
        }
    assert_true(moved && nonzero);
    const fcl_checkpointing modes[] = {FCL_CKPT_BLOCKS, FCL_CKPT_BACKBONE, FCL_CKPT_ALL};
    for (int k = 0; k < 3; k++) {
        train_step(c, modes[k], &other);
        print_message("  %-28s %-8s %d tensors bit-identical to none; step peak %zu bytes "
                      "(none %zu)\n",
                      name, fcl_checkpointing_name(modes[k]), other.n, other.peak, none.peak);
        assert_identical(fcl_checkpointing_name(modes[k]), &none, &other);
        step_free(&other);
    }
    step_free(&none);
}

/* A small episode and head (3-way 2-shot 3-query; 2-way 2-shot 1-query when small), depth 2
 * so that a block's recompute starts from the previous block's kept output. */
static fcl_model_config small_config(fcl_backbone bb, int size, fcl_method method,
                                     fcl_variant variant) {
    fcl_model_config c = fcl_config_default();
    c.backbone = bb, c.image_size = size;
    fcl_config_set_method(&c, method);
    c.variant = variant;
    c.n_way = th_small() ? 2 : 3, c.k_shot = 2, c.n_query = th_small() ? 1 : 3;
    c.reduced_dim = 32, c.depth = 2, c.heads = 2, c.dim_head = 8, c.mlp_dim = 24;
    return c;
}

static void test_conv4(void **state) {
    if (th_small()) skip(); /* small: the stages alone, below (whole steps take minutes) */
    int size = 32;
    check_modes("conv4 enhanced cosine",
                small_config(FCL_CONV4, size, FCL_METHOD_ENHANCED, FCL_VARIANT_COSINE));
    check_modes("conv4 fsct cosine",
                small_config(FCL_CONV4, size, FCL_METHOD_FSCT, FCL_VARIANT_COSINE));
}

static void test_conv6(void **state) {
    if (th_small()) skip(); /* small: conv4 alone keeps it short */
    check_modes("conv6 enhanced softmax",
                small_config(FCL_CONV6, 32, FCL_METHOD_ENHANCED, FCL_VARIANT_SOFTMAX));
    check_modes("conv6 fsct softmax",
                small_config(FCL_CONV6, 32, FCL_METHOD_FSCT, FCL_VARIANT_SOFTMAX));
}

/* ResNet-18 at 16x16 (layers 3 and 4 at 1x1: every BasicBlock kind still runs, downsample
 * included) and a 2-way 2-shot 2-query episode: its wide convolutions make it the slow case. */
static void test_resnet18(void **state) {
    if (th_small()) skip();
    const fcl_method methods[] = {FCL_METHOD_ENHANCED, FCL_METHOD_FSCT};
    for (int i = 0; i < 2; i++) {
        fcl_model_config c = small_config(FCL_RESNET18, 16, methods[i], FCL_VARIANT_COSINE);
        c.n_way = 2, c.n_query = 2;
        check_modes(i ? "resnet18 fsct cosine" : "resnet18 enhanced cosine", c);
    }
}

/* Where the backbone's saved activations set the peak (conv4 at 32, or 16 when small: the
 * first block's backward is not yet the largest moment), backbone checkpointing lowers it,
 * measured and planned alike. */
static void test_peak_drops(void **state) {
    fcl_model_config c =
        small_config(FCL_CONV4, th_small() ? 16 : 32, FCL_METHOD_ENHANCED, FCL_VARIANT_COSINE);
    step none = {0}, all = {0};
    if (!th_small()) { /* small: the plans alone (they run no kernels) */
        train_step(c, FCL_CKPT_NONE, &none);
        train_step(c, FCL_CKPT_ALL, &all);
        assert_true(all.peak < none.peak);
    }
    fcl_arena_stats plan_none, plan_all;
    c.checkpoint = FCL_CKPT_NONE;
    TH_OK(fcl_episode_plan(th_ctx(), &c, 1, 0, &plan_none));
    c.checkpoint = FCL_CKPT_ALL;
    TH_OK(fcl_episode_plan(th_ctx(), &c, 1, 0, &plan_all));
    print_message(
        "  conv4 %dx%d training step peak: none %zu, all %zu bytes (measured; 0 = not run here); "
        "episode plan: none %zu, all %zu\n",
        c.image_size, c.image_size, none.peak, all.peak, plan_none.peak, plan_all.peak);
    assert_true(plan_all.peak < plan_none.peak);
    step_free(&all);
    step_free(&none);
}

/* The stages alone, from given inputs and upstream gradients: what the small variants run (a
 * whole step takes them minutes), and the head's own peak, which blocks checkpointing lowers once
 * the blocks' intermediates are what the head holds (depth 3, rows x mlp). */
static void stage_step(fcl_model_config c, int head, fcl_checkpointing mode, step *s) {
    fewcl_context *ctx = th_ctx();
    c.checkpoint = mode;
    memset(s, 0, sizeof *s);
    const int B = c.n_way * (c.k_shot + c.n_query), D = 48;
    fcl_params P;
    fcl_params_init(&P);
    fcl_backbone_net *net = NULL;
    fcl_head *h = NULL;
    fcl_tensor x;
    if (head) {
        if (c.method == FCL_METHOD_ENHANCED)
            TH_OK(fcl_enhanced_create(ctx, &c, D, &P, 5, &h));
        else
            TH_OK(fcl_fsct_create(ctx, &c, D, &P, 5, &h));
        TH_OK(fcl_tensor_alloc2(ctx, &x, FCL_MEM_ACTIVATION, B, D));
    } else {
        TH_OK(fcl_backbone_create(ctx, &c, &P, "feature.", 5, &net));
        TH_OK(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4,
                               (int[]){B, 3, c.image_size, c.image_size}));
    }
    TH_OK(fcl_pattern_fill(ctx, &x, 13, 1.0f));
    TH_OK(fewcl_finish(ctx));
    fcl_arena_reset_peak(ctx->arena);
    size_t before = fcl_arena_stats_get(ctx->arena)->in_use;
    if (head) {
        fcl_head_out out;
        const fcl_tensor *dx;
        TH_OK(fcl_head_forward(ctx, h, &x, 1, &out));
        keep(s, "logits", out.logits);
        keep(s, "loss", out.loss);
        TH_OK(fcl_head_backward(ctx, h, &dx));
        keep(s, "dfeatures", dx);
    } else {
        const fcl_tensor *f;
        TH_OK(fcl_backbone_forward(ctx, net, &x, 1, &f));
        keep(s, "features", f);
        fcl_tensor df;
        TH_OK(fcl_tensor_alloc(ctx, &df, FCL_MEM_ACTIVATION, 2, f->shape));
        TH_OK(fcl_pattern_fill(ctx, &df, 17, 1.0f));
        TH_OK(fcl_backbone_backward(ctx, net, &df));
        fcl_tensor_free(ctx, &df);
    }
    TH_OK(fewcl_finish(ctx));
    s->peak = fcl_arena_stats_get(ctx->arena)->peak - before;
    for (int i = 0; i < P.n; i++) {
        const fcl_param *p = &P.items[i];
        char what[160];
        snprintf(what, sizeof what, "%s %s", p->is_buffer ? "buffer" : "grad", p->name);
        keep(s, what, p->is_buffer ? &p->value : &p->grad);
    }
    if (head) {
        fcl_head_release(ctx, h);
        fcl_head_destroy(ctx, h);
    } else {
        fcl_backbone_destroy(ctx, net);
    }
    fcl_tensor_free(ctx, &x);
    fcl_params_free(ctx, &P);
}

static void test_backbone_alone(void **state) {
    /* conv4 at 16 with 2 images (as test_backbone when small), resnet18 in the full test */
    fcl_model_config c = fcl_config_default();
    c.image_size = 16, c.n_way = 2, c.k_shot = 1, c.n_query = 0;
    const fcl_backbone bbs[] = {FCL_CONV4, FCL_RESNET18};
    for (int i = 0; i < (th_small() ? 1 : 2); i++) {
        c.backbone = bbs[i];
        step none, ckpt;
        stage_step(c, 0, FCL_CKPT_NONE, &none);
        stage_step(c, 0, FCL_CKPT_BACKBONE, &ckpt);
        print_message("  %s alone: %d tensors bit-identical; peak none %zu, backbone %zu bytes\n",
                      fcl_backbone_name(bbs[i]), ckpt.n, none.peak, ckpt.peak);
        assert_identical("backbone", &none, &ckpt);
        step_free(&ckpt);
        step_free(&none);
    }
}

static void test_heads_alone(void **state) {
    const fcl_method methods[] = {FCL_METHOD_ENHANCED, FCL_METHOD_FSCT};
    for (int i = 0; i < 2; i++) {
        fcl_model_config c = small_config(FCL_CONV4, 16, methods[i], FCL_VARIANT_COSINE);
        c.reduced_dim = 0, c.depth = 3, c.mlp_dim = 64;
        step none, blocks;
        stage_step(c, 1, FCL_CKPT_NONE, &none);
        stage_step(c, 1, FCL_CKPT_BLOCKS, &blocks);
        print_message("  %s head alone, depth 3: %d tensors bit-identical; peak none %zu, "
                      "blocks %zu bytes\n",
                      fcl_method_name(methods[i]), blocks.n, none.peak, blocks.peak);
        assert_identical("blocks", &none, &blocks);
        assert_true(blocks.peak < none.peak);
        step_free(&blocks);
        step_free(&none);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv4),          cmocka_unit_test(test_conv6),
        cmocka_unit_test(test_resnet18),       cmocka_unit_test(test_peak_drops),
        cmocka_unit_test(test_backbone_alone), cmocka_unit_test(test_heads_alone),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
